/*
 * store.h -- the mail store as the core sees it.
 *
 * On disk (see storage/README.md for the byte layout):
 *   <root>/<user>/<escaped mailbox name>          mboxrd, LF line ends; only
 *                                                 grows between compactions
 *   <root>/<user>/.<escaped mailbox name>.state   append-only checksummed log
 *   <root>/<user>/.subscriptions                  one name a line
 * Every syscall goes through the st_vfs file-ops table (vfs.h), so tests
 * can fail or tear any write or sync.
 *
 * Model: an open mailbox (st_box) is shared by every session that has it
 * selected; st_box_open() on an open mailbox returns the same object with
 * its reference count raised. Mutations append records but do not sync;
 * st_box_commit() makes everything so far durable (one fsync for all the
 * changes the loop made in a turn). A tagged OK is sent only after it.
 *
 * Messages are handed in and out in wire form (CRLF line ends, no mboxrd
 * quoting); the store converts. RFC822.SIZE is the wire size.
 *
 * Names given to the store are already validated by the core (modified
 * UTF-7, '/' separated, no empty, "." or ".." component, INBOX spelled
 * "INBOX"). The store escapes them into file names.
 *
 * Errors are the negative ST_E* codes below; 0 is success.
 */
#ifndef STORE_H
#define STORE_H

#include <stddef.h>
#include <stdint.h>
#include "config.h"

struct st_vfs;

enum {
    ST_OK = 0,
    ST_ENOENT = -1,     /* no such mailbox / file */
    ST_EEXIST = -2,     /* already exists */
    ST_EIO = -3,        /* I/O error */
    ST_ENOSPC = -4,     /* disk full */
    ST_EQUOTA = -5,     /* over the user's quota */
    ST_ENOMEM = -6,
    ST_EINVAL = -7,     /* bad argument or name */
    ST_ECORRUPT = -8,   /* unrecoverable damage */
    ST_EFULL = -9,      /* keyword table full */
    ST_EBUSY = -10,     /* locked by someone else, try later */
    ST_ETOOBIG = -11,   /* message larger than allowed */
    ST_EPERM = -12,     /* not allowed (e.g. delete INBOX) */
};
const char *st_strerror(int err);

/* System flags as stored. \Recent is not stored per message: see recent_uid. */
#define ST_F_SEEN      0x01
#define ST_F_ANSWERED  0x02
#define ST_F_FLAGGED   0x04
#define ST_F_DELETED   0x08
#define ST_F_DRAFT     0x10
#define ST_F_SYSMASK   0x1f
/* Expunged in the store (durably) but the entry is kept in msg[] until the
 * core calls st_box_purge(), so sessions that were not yet told keep their
 * sequence numbers. Never set by the core through st_set_flags(). */
#define ST_F_EXPUNGED  0x80

typedef struct st_msg {
    uint32_t uid;        /* unique, increasing; never reused */
    uint32_t size;       /* RFC822.SIZE: wire form (CRLF, unquoted) */
    uint64_t off;        /* offset in the mbox file of the first byte of the
                            message as delivered (after our own headers) */
    uint32_t dlen;       /* bytes on disk from off (LF, mboxrd-quoted) */
    uint8_t  flags;      /* ST_F_* */
    int16_t  tz;         /* INTERNALDATE zone, minutes east of UTC */
    int64_t  idate;      /* INTERNALDATE, seconds since the epoch */
    uint64_t kw;         /* bit i set: keyword box->kw[i] */
    uint64_t modseq;     /* RFC 7162 MODSEQ of the last change */
} st_msg;

typedef struct st_box {
    /* read-only for the core */
    st_msg  *msg;            /* sorted by uid; may hold ST_F_EXPUNGED entries */
    uint32_t count;          /* entries in msg[] */
    uint32_t nexpunged;      /* entries of msg[] with ST_F_EXPUNGED: a SELECT
                                counts EXISTS without reading msg[] */
    uint32_t seen_below;     /* hint: every live message with a UID below
                                this has \Seen (0: nothing known). Kept
                                in the STATE record; st_box_first_unseen
                                starts there and moves it */
    uint32_t uidvalidity;
    uint32_t uidnext;
    uint64_t highestmodseq;
    uint32_t recent_uid;     /* messages with uid >= this are \Recent for the
                                next session that claims them */
    char    *kw[CONFIG_MAX_KEYWORDS]; /* keyword names, NUL-terminated */
    unsigned nkw;
    int      deleted;        /* the mailbox was deleted or renamed away */
    char    *name;           /* mailbox name */
    char    *user;           /* owner */
    uint64_t change;         /* bumped on every change seen (own or outside) */
    /* the core's shared view of this mailbox (core/view.c) */
    void    *view;
} st_box;

typedef struct st_store st_store;

/* Open a store rooted at `root` (a directory, created if missing). */
int  st_store_open(st_store **out, const char *root, const struct st_vfs *vfs);
void st_store_close(st_store *s);

/* Create the user's folder and INBOX if missing. */
int  st_user_ensure(st_store *s, const char *user);

/* ---- mailboxes by name ---- */
int  st_mailbox_create(st_store *s, const char *user, const char *name);
/* Removes messages and files. Children are not touched. INBOX: ST_EPERM. */
int  st_mailbox_delete(st_store *s, const char *user, const char *name);
/* Renames name and every name below it (name/...). Renaming INBOX moves
 * its messages to a new mailbox `to` and leaves INBOX empty (RFC 3501). */
int  st_mailbox_rename(st_store *s, const char *user, const char *from, const char *to);
/* 1 if the mailbox exists (selectable), 0 if not. */
int  st_mailbox_exists(st_store *s, const char *user, const char *name);
/* Calls cb for every existing mailbox of the user, in no set order. */
int  st_mailbox_list(st_store *s, const char *user,
                     void (*cb)(void *ctx, const char *name), void *ctx);

/* ---- subscriptions ---- */
int  st_subscribe(st_store *s, const char *user, const char *name, int on);
int  st_subs_list(st_store *s, const char *user,
                  void (*cb)(void *ctx, const char *name), void *ctx);

/* ---- an open mailbox ---- */
int  st_box_open(st_store *s, const char *user, const char *name, st_box **out);
void st_box_close(st_box *b);
/* 1 if the mailbox has changes not yet made durable by st_box_commit. */
int  st_box_dirty(const st_box *b);
/* One more reference to an open mailbox (released by st_box_close). */
void st_box_ref(st_box *b);
/* Notice changes made by other processes (deliver, outside MDAs). Returns
 * >0 when something changed (new messages, flags, expunges), 0 if not,
 * <0 on error. Cheap when nothing changed (one stat). */
int  st_box_refresh(st_box *b);
/* Make every change so far durable. When that fails (EIO or ENOSPC at a
 * write or a sync), the messages this process appended since its last good
 * commit were never acknowledged: they are taken back (marked expunged, so
 * sessions that saw them get an EXPUNGE, and a fresh log written without
 * them) and a reopen does not show them, while their UIDs stay used. Flag
 * changes and expunges of the failed commit stay pending for the next. */
int  st_box_commit(st_box *b);
/* The same without waiting for the disk, where the vfs can start syncs
 * (vfs.h sync_start) and st_store_set_async allowed it: 1 when syncs are
 * in flight (the store's on_commit callback gets the result when the
 * commit ends; until then the lock stays held, st_box_dirty says 1, and
 * anything that changes the mailbox first waits for the commit to end),
 * 0 when everything is durable already, <0 when the commit failed (as
 * st_box_commit). Called while one is in flight: 1 (it covers every
 * change, since none could be made during it). */
int  st_box_commit_start(st_box *b);
/* 1 while a commit begun by st_box_commit_start has syncs in flight. */
int  st_box_commit_busy(const st_box *b);
/* Let st_box_commit_start leave syncs in flight (on=1; only if the vfs
 * can), and name who hears when such a commit ends (in st_store_sync_reap
 * or wherever the store had to wait for one): cb(ctx, box, rc), rc 0 or
 * the error of st_box_commit. The callback must not call into the store. */
void st_store_set_async(st_store *s, int on, void (*cb)(void *ctx, st_box *b, int rc), void *ctx);
/* A descriptor that becomes readable when a sync in flight ends (for the
 * server's poll loop), or -1. */
int  st_store_sync_fd(st_store *s);
/* Run on the commits whose syncs ended (wait=1: block for one if any is
 * in flight). Returns how many syncs ended. */
int  st_store_sync_reap(st_store *s, int wait);
/* Open for a SELECT: a checkpoint block mapped in place (version 3, with
 * its maxima) may be handed over before its pass over every entry, which
 * then runs at the first lock or st_box_verify. Only the counts a SELECT
 * answers with (EXISTS, RECENT, UNSEEN) may be read before that. */
int  st_box_open_lazy(st_store *s, const char *user, const char *name, st_box **out);
/* Give a lazily opened index its pass if it has not had it: 0, or
 * ST_ECORRUPT if the block was damaged: this handle is then of no use
 * (close it), and the next st_box_open loads the mailbox afresh, which
 * rebuilds it from the mbox. */
int  st_box_verify(st_box *b);
/* Commit, then rewrite the log as a checkpoint if it holds records after
 * its last one, so that the next open maps one block and replays nothing
 * (the end of an import of many messages). */
int  st_box_checkpoint(st_box *b);
/* Drop ST_F_EXPUNGED entries from msg[] (indexes of the rest shift). */
void st_box_purge(st_box *b);
/* Record that messages below `uid` have been claimed as \Recent. */
int  st_box_set_recent(st_box *b, uint32_t uid);
/* Index of a uid in msg[], or -1. */
long st_box_find(const st_box *b, uint32_t uid);
/* Index of the first entry whose UID is uid or more (count if none). */
uint32_t st_box_lower_bound(const st_box *b, uint32_t uid);
/* Index of the first live (not expunged) message without \Seen, or -1:
 * a SELECT's [UNSEEN] without reading the seen prefix of msg[]. Starts at
 * the seen_below hint (found by UID) and moves the hint to what it found. */
long st_box_first_unseen(st_box *b);
/* Keyword index of name (case-insensitive), creating it if `create`.
 * Returns the index, ST_ENOENT, or ST_EFULL. */
int  st_keyword(st_box *b, const char *name, size_t len, int create);

/* Set a message's flags and keywords (absolute). Bumps its MODSEQ and
 * HIGHESTMODSEQ; appends one record. A no-op change writes nothing. */
int  st_set_flags(st_box *b, uint32_t idx, uint8_t flags, uint64_t kw);
/* Mark a message expunged (ST_F_EXPUNGED); appends one record. */
int  st_expunge(st_box *b, uint32_t idx);

/* ---- append, streamed ---- */
typedef struct st_append st_append;
int  st_append_begin(st_box *b, int64_t idate, int tz, uint8_t flags,
                     uint64_t kw, uint64_t size_hint, st_append **out);
/* Wire bytes of the message, in any slicing. */
int  st_append_data(st_append *a, const void *p, size_t n);
/* The message is complete: it gets its UID and enters msg[] (commit still
 * needed for durability). Frees a. */
int  st_append_end(st_append *a, uint32_t *uid);
void st_append_abort(st_append *a);

/* Copy message idx of src into dst keeping flags, keywords and INTERNALDATE.
 * src and dst may be the same mailbox. */
int  st_copy(st_box *src, uint32_t idx, st_box *dst, uint32_t *newuid);

/* ---- compaction ---- */
/* Rewrite the mailbox without its expunged messages, with fresh
 * X-UID/Status/X-Status/X-Keywords headers (see storage/compact.c for the
 * crash-safe sequence). ST_EBUSY while msg[] holds ST_F_EXPUNGED entries:
 * sessions may still refer to them, so the core compacts only from its purge
 * point. st_box_purge() and the last st_box_close() call
 * st_box_maybe_compact() themselves, so the core needs no extra call. */
int  st_box_compact(st_box *b);
/* Compact if the reclaimable bytes pass the store's ratio (and
 * ST_COMPACT_MIN_DEAD, 1 MiB). 1: compacted, 0: not needed or not possible
 * now, or (with a compact slice set) a job started or going on, or waiting
 * for one of ST_COMPACT_JOBS to end, <0: error (the mailbox is whole either
 * way). */
int  st_box_maybe_compact(st_box *b);
/* Compactions this process has finished (diagnostics: the loop's slow-turn
 * log). */
extern unsigned long st_compactions;
/* Incremental compaction. With a slice (bytes) set, an automatic
 * compaction of a mailbox that is still open (st_box_purge) does not
 * rewrite it at once: it starts a job that st_store_compact_work() advances
 * (about `slice` bytes a call for all jobs together), without the lock (an mbox's indexed bytes
 * do not change between compactions), and finishes like a whole compaction
 * under the lock (messages that arrived meanwhile are copied then; those
 * expunged after they were copied stay in the new file as dead bytes).
 * A job also goes on after the mailbox's last close, on its kept index
 * (unless closed mailboxes are not kept): the last close does not copy
 * either. At most ST_COMPACT_JOBS (CONFIG_COMPACT_JOBS) jobs at once.
 * 0 (the default) compacts inside the call. A server calls the work
 * function once a loop turn, so no turn copies more than a slice;
 * st_store_close() gives up jobs in progress (the old files stay). */
void st_store_set_compact_slice(st_store *s, uint64_t slice);
/* Copy one slice of the compaction jobs in progress, or commit one that
 * is done. Returns 1 while a job has bytes to copy or a commit to do (call
 * again soon), 0 otherwise (none, or one waiting for a purge). */
int  st_store_compact_work(st_store *s);
/* Automatic compaction threshold in thousandths of the mbox size
 * (config compact_ratio; 300 = 0.3). 0 (the default) = only on demand. */
void st_store_set_compact_ratio(st_store *s, unsigned permille);

/* ---- quota ---- */
/* Per-user limit in bytes of mail (0 = none, the default). APPEND, COPY and
 * delivery over it fail with ST_EQUOTA and change nothing. */
void st_store_set_quota(st_store *s, uint64_t bytes);
/* Bytes used by the user's mailboxes (expunged mail in mailboxes open in
 * this process does not count) and the limit (0 = none). For QUOTA. */
int  st_quota_get(st_store *s, const char *user, uint64_t *used, uint64_t *limit);

/* RFC 7162 VANISHED: calls cb for each UID expunged with a MODSEQ above
 * `since` (in log order). Returns 1 when that list is exact, 0 when the log
 * was rewritten after `since` so older expunges are forgotten (cb not
 * called: answer with every UID that is gone), <0 on error. */
int  st_box_vanished(st_box *b, uint64_t since, void (*cb)(void *ctx, uint32_t uid), void *ctx);

/* ---- messages from outside, admin tools (storage/tools.c) ---- */
/* A message as an MTA or another store hands it over, streamed into an
 * append: LF or CRLF line ends become CRLF, and X-UID, Status, X-Status and
 * X-Keywords are dropped from the header section (only the store sets
 * those). */
typedef struct st_msgin st_msgin;
#define ST_IN_ENVELOPE 1  /* a first line "From ..." is an mbox envelope: dropped */
#define ST_IN_MBOXRD   2  /* mboxrd-quoted: one '>' comes off /^>+From / lines */
int  st_msgin_begin(st_box *b, int64_t idate, int tz, uint8_t flags, uint64_t kw,
                    int mode, st_msgin **out);
int  st_msgin_data(st_msgin *m, const void *p, size_t n);
/* Like st_append_end (st_box_commit still needed). Frees m. */
int  st_msgin_end(st_msgin *m, uint32_t *uid);
void st_msgin_abort(st_msgin *m);
/* Import every message of an mbox file (flags from Status/X-Status,
 * keywords from X-Keywords) or a Maildir (new/ and cur/, flags from the
 * ":2," info) into user's mailbox (created if missing). Each message is
 * committed as it goes; *count says how many made it. Paths go through the
 * store's vfs. */
int  st_import_mbox(st_store *s, const char *user, const char *mailbox, const char *path,
                    unsigned *count);
int  st_import_maildir(st_store *s, const char *user, const char *mailbox, const char *path,
                       unsigned *count);
/* Write every mailbox of the user as Maildir++ under dir (INBOX at the top,
 * "a/b" as ".a.b"), flags in the ":2," info, keywords as Dovecot's letters
 * with a dovecot-keywords file. */
int  st_export_maildir(st_store *s, const char *user, const char *dir, unsigned *count);
/* Open every mailbox of `user` (NULL: of every user) -- which repairs what
 * a crash left -- read every message back, and compact if asked. say() gets
 * one line for each repair, problem and compaction. */
int  st_check(st_store *s, const char *user, int compact,
              void (*say)(void *ctx, const char *line), void *ctx,
              unsigned *boxes, unsigned *msgs, unsigned *bad);

/* ---- reading a message in wire form ---- */
struct st_seekpt;    /* below: a point of a message where a reader can start */
typedef struct st_reader {
    st_box  *box;
    void    *file;       /* the reader's own handle on the mbox: it stays
                            valid (old bytes) if compaction replaces the file */
    uint64_t pos, end;   /* disk position and end of the message */
    int      bol;        /* at the beginning of a line */
    int      qmatch;     /* a line-start '>' is held back: ">+From " drops one */
    unsigned m;          /* bytes of "From " matched while qmatch */
    char     carry[16];  /* output owed to the caller (did not fit last time) */
    unsigned ncarry, icarry;
    uint64_t start;      /* disk position of the message's first byte */
    uint64_t wpos;       /* wire bytes produced so far (carry included) */
    /* seek-point tracking (st_reader_track); every == 0: off */
    uint32_t ck_every;
    uint64_t ck_next;    /* disk position of the next point wanted */
    void   (*ck_cb)(void *ctx, const struct st_seekpt *pt);
    void    *ck_ctx;
} st_reader;
int  st_reader_open(st_reader *r, st_box *b, uint32_t idx);
/* Up to n wire bytes; 0 at the end; <0 on error. */
long st_reader_read(st_reader *r, void *buf, size_t n);
void st_reader_close(st_reader *r);

/* ---- small files (config, passwd) ---- */
/* Read a whole file of at most max bytes into a NUL-terminated malloc'd buffer. */
int  st_slurp(const struct st_vfs *vfs, const char *path, char **data, size_t *len, size_t max);

const struct st_vfs *st_vfs_posix(void);

/* ---- seeking in a message's wire form (storage/reader.c) ---- */
/* Disk form (LF, mboxrd-quoted) and wire form (CRLF, unquoted) differ in
 * length, so a wire offset cannot be turned into a disk offset without
 * reading. A seek point is a place where the two are known to meet, with
 * the reader state there; st_reader_seek() starts reading at one. Points
 * are only taken where no quoting decision is pending, so bol is all the
 * state there is. Offsets are from the message's first byte, so a point
 * stays true as long as the message's bytes do (compaction copies them
 * unchanged). */
typedef struct st_seekpt {
    uint32_t disk;      /* disk offset from the message's first byte */
    uint32_t wire;      /* wire offset of the same place */
    uint8_t  bol;       /* the place starts a line */
} st_seekpt;
/* Report seek points to cb while reading: one at the first clean place at
 * or after each multiple of `every` disk bytes (reads are cut there, so the
 * places are deterministic unless a quoted prefix straddles one). */
void st_reader_track(st_reader *r, uint32_t every,
                     void (*cb)(void *ctx, const st_seekpt *pt), void *ctx);
/* Continue reading at pt (a point of this message). ST_EINVAL if it lies
 * outside the message. */
int  st_reader_seek(st_reader *r, const st_seekpt *pt);

/* ---- the per-mailbox cache file (storage/meta.c) ---- */
/* Data derived from a message (the core stores serialized MIME trees)
 * kept beside the mailbox in ".<name>.mime", so it survives restarts. A
 * cache: never synced, checked on every read, emptied on a new
 * UIDVALIDITY, rewritten without garbage when expunged messages' records
 * are the majority; losing or damaging it costs recomputation only. A
 * record names its message by UID, RFC822.SIZE, disk size, INTERNALDATE
 * and a CRC of its first 256 bytes, and is ignored if any differs. */
/* 0 and a malloc'd copy of message idx's record (free it), ST_ENOENT if
 * there is none to trust, or another error (treat as none). */
int  st_meta_get(st_box *b, uint32_t idx, void **blob, size_t *len);
/* The same without a copy: *blob points into the handle's read window
 * and stays valid until the next st_meta_* call on this mailbox (a FETCH
 * of many messages copies each answer out of it, nothing is allocated). */
int  st_meta_peek(st_box *b, uint32_t idx, const void **blob, size_t *len);
/* Store message idx's record (replacing any). Best effort: ST_EBUSY when
 * another process is writing the file at that moment. */
int  st_meta_put(st_box *b, uint32_t idx, const void *blob, size_t len);
typedef struct st_meta_counters {
    uint64_t hits, misses;  /* st_meta_get answers */
    uint64_t puts;          /* records written */
    uint64_t indexed;       /* record headers read to build indexes */
    uint64_t bad;           /* records failing their checksum */
    uint64_t stale;         /* records of another message under the UID */
    uint64_t cut;           /* torn or garbled tails cut off */
    uint64_t resets;        /* files emptied (new UIDVALIDITY, not ours) */
    uint64_t rewrites;      /* files rewritten without garbage */
} st_meta_counters;
/* Process-wide counters (tests, debug log). */
void st_meta_stats(st_meta_counters *out);

/* ---- watching new messages (storage/append.c) ---- */
/* A watcher sees every message that enters a mailbox through this store
 * handle (APPEND, COPY, MOVE, delivery, import) as it arrives, so that
 * whatever it derives (the core parses the MIME structure) is ready when
 * the message is. */
typedef struct st_append_watch {
    /* A message starts; returns the watcher's state for it, NULL to skip. */
    void *(*begin)(st_box *b);
    /* Its wire form, exactly as st_reader_read will give it, in slices. */
    void  (*data)(void *w, const char *p, size_t n);
    /* Its seek points, one per `every` disk bytes (see st_reader_track). */
    void  (*point)(void *w, const st_seekpt *pt);
    /* It is message idx of b now (committed by the next st_box_commit).
     * Frees w. */
    void  (*end)(void *w, st_box *b, uint32_t idx);
    /* It did not make it in. Frees w. */
    void  (*abort)(void *w);
    uint32_t every;     /* seek point spacing, disk bytes */
} st_append_watch;
/* w stays owned by the caller; NULL stops watching. */
void st_store_set_append_watch(st_store *s, const st_append_watch *w);

#endif
