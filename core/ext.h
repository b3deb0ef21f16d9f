/* ext.h -- IMAP extensions beyond IMAP4rev1 (issue 5): ENABLE, MOVE,
 * MULTIAPPEND, ESEARCH/SEARCHRES, CONDSTORE/QRESYNC, LIST-EXTENDED,
 * SPECIAL-USE, STATUS=SIZE, QUOTA, UTF8=ACCEPT, IMAP4rev2. Each is a
 * CONFIG_EXT_* bool (core/Kconfig.ext). The handlers live in ext.c; the
 * hooks into the base commands are small calls from cmd.c, fetch.c,
 * search.c and view.c. */
#ifndef EXT_H
#define EXT_H

#include "cmd.h"

/* imap_conn.ext_on: what the client has switched on. */
enum {
    EXT_CONDSTORE = 1,   /* ENABLE CONDSTORE or a CONDSTORE-enabling command */
    EXT_QRESYNC = 2,     /* ENABLE QRESYNC: VANISHED instead of EXPUNGE */
    EXT_UTF8 = 4,        /* ENABLE UTF8=ACCEPT: UTF-8 mailbox names */
    EXT_REV2 = 8,        /* ENABLE IMAP4rev2: RFC 9051's responses (see
                            ext_rev2() and the callers of it) */
};

/* Whether c has enabled IMAP4rev2 (RFC 9051): no \Recent anywhere, UTF-8
 * mailbox names, ESEARCH answers, a LIST in SELECT's answer. */
#define ext_rev2(c) (CONFIG_EXT_IMAP4REV2 && ((c)->ext_on & EXT_REV2))
/* Whether mailbox names travel as UTF-8 on c (UTF8=ACCEPT or IMAP4rev2);
 * otherwise as modified UTF-7 (names.c). */
int mailbox_utf8_names(const imap_conn *c);

/* The largest message APPEND takes: APPENDLIMIT (RFC 7889). */
#define EXT_APPENDLIMIT ((uint64_t)CONFIG_LITERAL_MAX)

/* Capabilities beyond the base list, for the state c is in. */
void ext_capability_list(imap_conn *c);
void cmd_enable(imap_conn *c, args *a);
void cmd_getquota(imap_conn *c, args *a);
void cmd_getquotaroot(imap_conn *c, args *a);
void cmd_setquota(imap_conn *c, args *a);
/* LIST, plain or extended (RFC 5258). */
void ext_list(imap_conn *c, args *a);
/* IMAP4rev2 SELECT/EXAMINE: the "* LIST" of the mailbox selected, with
 * its attributes (RFC 9051 6.3.2). */
void ext_select_list(imap_conn *c, const char *name);

/* A message set that may be "$" (SEARCHRES): the saved result, as UIDs
 * or as this session's sequence numbers. 0 or -1 (invalid set). A "$" set
 * may be empty (set->n == 0). */
int  ext_msgset(imap_sess *s, const char *str, uint32_t len, int uid, uint32_t star, seqset *set);
/* Replace the saved search result (UIDs, ascending). */
void ext_save_result(imap_sess *s, const uint32_t *uids, uint32_t n);
/* Append a sorted list of numbers as a compact set "1:3,7". */
void ext_numset(dbuf *b, const uint32_t *v, uint32_t n);

/* CONDSTORE: a mod-sequence as sent (never 0). */
uint64_t ext_modseq(uint64_t m);
/* Send "* VANISHED (EARLIER) ..." for UIDs within `within` (NULL: all)
 * expunged after modseq `since`; never claims a UID that exists. */
void ext_vanished_earlier(imap_conn *c, st_box *box, uint64_t since, const seqset *within);
/* SELECT/EXAMINE parameters "(CONDSTORE)" / "(QRESYNC (...))". Returns 0
 * (q filled), -1 (BAD sent). */
typedef struct ext_select {
    int      condstore;     /* CONDSTORE or QRESYNC given */
    int      qresync;       /* QRESYNC given */
    uint32_t uidvalidity;   /* the client's */
    uint64_t modseq;        /* the client's last known */
    seqset   known;         /* known-uids (n == 0: none given) */
    seqset   mseq, muid;    /* seq-match-data (n == 0: none) */
} ext_select;
int  ext_select_parse(imap_conn *c, args *a, ext_select *q);
/* After SELECT's usual responses: HIGHESTMODSEQ, then QRESYNC's
 * VANISHED (EARLIER) and FETCHes. Frees q's sets. */
void ext_select_done(imap_conn *c, ext_select *q);

/* SPECIAL-USE attribute of a mailbox name ("\\Sent"), or NULL. */
const char *ext_special_use(const char *name);
/* CREATE's optional "(USE (...))" (RFC 6154 5.4); 0, or -1 with the
 * reply sent. */
int  ext_create_use(imap_conn *c, args *a, const char *name);
/* At login: a new user gets the special-use folders. */
void ext_user_setup(imap_conn *c, int new_user);

/* MULTIAPPEND: hold one more streamed message of the APPEND in progress. */
int  ext_mappend_push(imap_conn *c);
void ext_mappend_abort(imap_conn *c);
/* End every message held plus `last` (in order) and commit them together;
 * on failure the ones already ended are expunged again. Appends the UID
 * set to *uids. 0 or an ST_E* error. */
int  ext_mappend_finish(imap_conn *c, st_box *box, st_append *last, dbuf *uids);

#endif
