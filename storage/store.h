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
/* Notice changes made by other processes (deliver, outside MDAs). Returns
 * >0 when something changed (new messages, flags, expunges), 0 if not,
 * <0 on error. Cheap when nothing changed (one stat). */
int  st_box_refresh(st_box *b);
/* Make every change so far durable. */
int  st_box_commit(st_box *b);
/* Drop ST_F_EXPUNGED entries from msg[] (indexes of the rest shift). */
void st_box_purge(st_box *b);
/* Record that messages below `uid` have been claimed as \Recent. */
int  st_box_set_recent(st_box *b, uint32_t uid);
/* Index of a uid in msg[], or -1. */
long st_box_find(const st_box *b, uint32_t uid);
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

/* ---- reading a message in wire form ---- */
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
} st_reader;
int  st_reader_open(st_reader *r, st_box *b, uint32_t idx);
/* Up to n wire bytes; 0 at the end; <0 on error. */
long st_reader_read(st_reader *r, void *buf, size_t n);
void st_reader_close(st_reader *r);

/* ---- small files (config, passwd) ---- */
/* Read a whole file of at most max bytes into a NUL-terminated malloc'd buffer. */
int  st_slurp(const struct st_vfs *vfs, const char *path, char **data, size_t *len, size_t max);

const struct st_vfs *st_vfs_posix(void);

#endif
