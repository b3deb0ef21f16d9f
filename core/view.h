/*
 * view.h -- what each session has been told about a shared mailbox.
 *
 * All sessions that select a mailbox share one st_box (msg[] sorted by
 * UID). A session's sequence numbers are positions in msg[] counting only
 * the entries it can see: those with uid <= its uidmax (it was told they
 * exist) and not expunged-and-reported to it. Expunged entries stay in
 * msg[] until every session has been told (then st_box_purge()), so no
 * session needs its own copy of the UID list: the cost per session is a
 * few counters, and a transient sequence map only while holes exist.
 */
#ifndef VIEW_H
#define VIEW_H

#include "imap.h"

typedef struct imap_sess {
    struct imap_sess *next;   /* other sessions on the same mailbox */
    st_box   *box;            /* the shared mailbox */
    imap_conn *conn;          /* owner */
    int       readonly;       /* EXAMINE */
    uint32_t  exists;         /* messages the client believes exist */
    uint32_t  uidmax;         /* highest UID announced to the client */
    uint32_t  told_gen;       /* expunges up to this generation reported */
    uint64_t  told_modseq;    /* flag changes up to this MODSEQ reported */
    uint32_t  recent_lo;      /* this session's \Recent UIDs: [lo, hi) */
    uint32_t  recent_hi;
    uint32_t  recent_count;   /* RECENT last announced */
    uint32_t *map;            /* seq-1 -> msg[] index while holes exist */
    uint32_t  nmap;
    uint64_t  map_change;     /* box->change the map was built at */
    uint32_t *saved;          /* SEARCHRES "$": UIDs, ascending (ext.c) */
    uint32_t  nsaved;
} imap_sess;

/* Per-mailbox shared state, hung on st_box.view. */
typedef struct imap_mview {
    imap_sess *sessions;
    uint32_t   gen;           /* expunge generation counter */
    struct vexp { uint32_t uid, gen; } *exp;  /* retained expunged entries */
    uint32_t   nexp, capexp;
} imap_mview;

imap_sess *view_open(imap_conn *c, st_box *box, int readonly);
void view_close(imap_sess *s);
/* Refresh from disk and account for changes (new expunged entries). */
void view_sync(st_box *box);
/* msg[] index of sequence number seq (1-based), or -1. */
long view_seq2idx(imap_sess *s, uint32_t seq);
/* Sequence number of msg[] index idx as this session sees it, 0 if none. */
uint32_t view_idx2seq(imap_sess *s, uint32_t idx);
/* Is msg[idx] visible to the session (told, not reported expunged)? */
int view_visible(imap_sess *s, uint32_t idx);
/* Is msg[idx] expunged (whether or not reported)? */
int view_is_expunged(imap_sess *s, uint32_t idx);
/* Send pending untagged updates: EXPUNGE (if allowed), EXISTS, RECENT,
 * FETCH FLAGS. */
void view_notify(imap_sess *s, int allow_expunge);
/* Is msg[idx] \Recent for this session? */
int view_is_recent(imap_sess *s, uint32_t idx);
/* Wake sessions in IDLE on this box after a change. */
void view_kick(st_box *box, imap_sess *except);
/* Write the flag list of msg[idx] "(\Seen $Foo)". */
void view_out_flags(imap_sess *s, uint32_t idx);

#endif
