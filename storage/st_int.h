/*
 * st_int.h -- internals shared by the storage/ files. Not for the core.
 */
#ifndef ST_INT_H
#define ST_INT_H

#include <stddef.h>
#include <stdint.h>
#include "store.h"
#include "vfs.h"

/* ---- limits (each with its reason) ---- */
/* Messages up to this many bytes are assembled in memory at APPEND; larger
 * ones are spooled to an anonymous temp file so a slow 50 MB upload costs no
 * RAM and never holds the mailbox lock while it trickles in. */
#define ST_APPEND_MEM_MAX   (128u * 1024u)
/* Copy/verify/scan chunk: big enough for few syscalls, small for the stack
 * budget of a router (always heap-allocated). */
#define ST_CHUNK            (64u * 1024u)
/* Longest keyword name we store; RFC 3501 sets none, real clients use < 64. */
#define ST_KW_NAME_MAX      200
/* Largest record payload: a keyword record is the biggest. */
#define ST_REC_MAX          1024
/* The log is rewritten as a checkpoint when it is bigger than this and more
 * than twice what a fresh checkpoint would take, or when the records after
 * its checkpoint reach half the checkpoint's size (st_box_commit): replay
 * stays short and the amortised extra writing stays below one checkpoint
 * per half a checkpoint's size of records. */
#define ST_LOG_CKPT_MIN     (64u * 1024u)
/* ... and the records after the checkpoint reach 1/ST_CKPT_TAIL_DIV of its
 * size: what the open of a big mailbox costs beyond its mapped block
 * (replaying APPEND records) against how often the block is rewritten
 * (see st_box_commit). */
#define ST_CKPT_TAIL_DIV    4u
/* How long a mutation waits for another process's lock (deliver, an MDA)
 * before giving up with ST_EBUSY, in milliseconds. Holders keep it for one
 * message write, so this is generous. */
#define ST_LOCK_WAIT_MS     5000
/* Longest path we build. */
#define ST_PATH_MAX         4096
/* Longest escaped file name: stays under NAME_MAX (255) with ".state". */
#define ST_NAME_FILE_MAX    240
/* Automatic compaction waits for at least this many reclaimable bytes:
 * it rewrites the whole mailbox file, so below that it would wear the
 * flash more than the space is worth (at 16 KiB a busy mailbox of 40 KB
 * messages was rewritten on nearly every EXPUNGE). */
#define ST_COMPACT_MIN_DEAD (1024u * 1024u)
#define ST_IMPORT_BATCH     1024u           /* import: sync every so many messages */
#define ST_IMPORT_BATCH_BYTES (32u << 20)   /* ... or bytes */
/* Bytes just before the end of the indexed mbox whose CRC is kept to see
 * that another program rewrote the file in place (same inode, same or
 * larger size): any shift of the messages before the end changes them.
 * One small read per refresh; on the stack. */
#define ST_FP_LEN           512u
/* Our header block per message (From line, X-UID, Status, X-Status,
 * X-Keywords, separator) as the compaction threshold estimates it. */
#define ST_HDR_EST          100u
/* A mailbox whose last st_box_open() was closed keeps its index (and its
 * two open files) for a reopen, so a client that logs out and back in, or
 * a STATUS/APPEND after the SELECT ended, does not reload it: the reopen
 * checks it with st_box_refresh() (two stats and a 512-byte read) instead
 * of reading the log (about 3 ms and 4.8 MB read for 100,000 messages).
 * At most this many closed mailboxes and this many bytes of their indexes
 * (48 bytes a message: 8 MiB holds one of 170,000 messages) stay; beyond,
 * the least recently closed go. 0 mailboxes: free at the last close. */
#define ST_KEEP_CLOSED_MAX   ((unsigned)CONFIG_KEEP_CLOSED_BOXES)
#define ST_KEEP_CLOSED_BYTES ((uint64_t)CONFIG_KEEP_CLOSED_KB * 1024u)
/* With a compaction slice set, at most this many compaction jobs copy in
 * slices at once (st_store_compact_work), on open mailboxes and on kept
 * closed ones; a mailbox whose job goes on after its last close keeps its
 * index until the job ends, outside the two bounds above. */
#define ST_COMPACT_JOBS ((unsigned)CONFIG_COMPACT_JOBS)

/* ---- log record types ---- */
enum {
    REC_HDR = 1,     /* magic, version, uidvalidity; first in the file */
    REC_APPEND = 2,  /* a message entered the mailbox */
    REC_FLAGS = 3,   /* flags/keywords of one message changed */
    REC_EXPUNGE = 4, /* a message was expunged */
    REC_KEYWORD = 5, /* keyword name for an index */
    REC_RECENT = 6,  /* recent_uid advanced */
    REC_MARK = 7,    /* every mbox byte referenced so far is synced */
    REC_STATE = 8,   /* uidnext, highestmodseq, recent_uid, mbox_end */
    REC_COMPACT = 9, /* u64 size, u32 crc32 of the whole mbox this log was
                        written for by a compaction (see compact.c) */
    REC_MSGS = 10,   /* u32 count, u16 entry size, u16 check; then, outside
                        the record, count entries and a u32 checksum of
                        them: the index of a checkpoint in one block
                        (log.c). check 0: crc32 (version 2), 1: CRC-32C */
    REC_PAD = 11,    /* zero bytes: puts a MSGS block's entries at a file
                        offset that is a multiple of 8, so a mapped block
                        is an aligned st_msg array (log.c) */
};
#define ST_LOG_MAGIC   0x50494d53u /* "PIMS" */
/* 2: checkpoints and compaction logs carry REC_MSGS (a reader of version 1
 * would take the block after it for a torn tail); version 1 logs, one
 * APPEND record a message, are still read.
 * 3: the MSGS block's checksum is CRC-32C (check 1) and its entries are
 * 8-aligned in the file (REC_PAD); a version 2 reader refuses such a block
 * (check != 0) and rebuilds from the mbox. Version 2 blocks are still read. */
#define ST_LOG_VERSION 3u
#define ST_MSGS_CHECK_CRC32  0u
#define ST_MSGS_CHECK_CRC32C 1u
/* tests: the block version st_logw_msgs writes (2 or 3) */
extern unsigned st_msgs_version;
/* Bytes of one REC_MSGS entry as written now (little-endian: uid, size,
 * off, dlen, flags, 0, tz, idate, kw, modseq); readers take entries of at
 * least this size and skip what a newer writer adds after these fields. */
#define ST_MSGS_ENTRY  48u
/* record = u8 type, u8 0, u16 len, payload[len], u32 crc32(all before) */
#define REC_OVERHEAD 8u

/* A decoded APPEND record. */
typedef struct st_rec_append {
    st_msg   m;
    uint16_t hlen;   /* bytes from the "From " line to m.off */
    uint8_t  tail;   /* bytes after the message that belong to it ("\n\n") */
    uint32_t crc;    /* crc32 of [off-hlen, off+dlen+tail) */
} st_rec_append;

/* Memory an index array lies in when it is a mapped checkpoint block
 * (p NULL: the array is malloc'd). Released with st_msgs_release. */
typedef struct st_imap {
    void *p;              /* what st_vmap returned */
    size_t len;           /* its length */
    const st_vfs *vfs;    /* the table that mapped it */
} st_imap;

/* A mailbox open in this process. st_box first: st_box* casts to stbox*. */
typedef struct stbox {
    st_box   pub;
    st_store *s;
    struct stbox *next;     /* in s->boxes */
    unsigned refs;          /* st_box_open()s not yet closed */
    uint32_t cap;           /* allocated entries of pub.msg */
    st_imap  map;           /* pub.msg lies in this mapped checkpoint block
                               (log.c; p NULL: malloc'd). Growing copies it
                               out once (st_msg_push); freeing goes through
                               st_msgs_release */
    char    *dir;           /* user folder */
    char    *mbox_path;
    char    *log_path;
    st_file *mbox;
    st_file *log;
    uint64_t mbox_ino, log_ino; /* identity of the files we have open */
    uint64_t log_end;       /* valid end of the log (replayed or written) */
    uint64_t mbox_end;      /* end of the last indexed message's bytes */
    uint64_t ckpt_size;     /* where the log's checkpoint (its MSGS block)
                               ends; 0: it has none (a version 1 log) */
    uint64_t dead_bytes;    /* bytes of expunged messages, for compaction */
    int      locked;        /* lock depth held by this process */
    int      dirty_mbox;    /* mbox bytes written since the last sync */
    int      dirty_log;     /* log records written since the last sync */
    int      need_recover;  /* look for an unfinished compaction before
                               trusting the files (first lock, new mbox) */
    int      mbox_replaced; /* the mbox was replaced (compacted) since the
                               index was loaded: offsets of entries missing
                               from the new log are void */
    /* fingerprint of the indexed mbox: crc32 of the ST_FP_LEN bytes (fewer
     * in a small file) before fp_end, in the file fp_ino (mbox_tail) */
    int      fp_valid;
    int      fp_synced;     /* box_sync checked the file under this lock
                               hold: the unlock may take a new fingerprint */
    uint32_t fp_crc;
    uint64_t fp_end, fp_ino;
    struct st_meta *meta;   /* the cache file (meta.c), NULL until used */
    uint64_t closed_seq;    /* nonzero: closed (refs 0), kept for a reopen;
                               smaller = closed longer ago (st_box_close) */
    /* A version 3 block mapped at a SELECT's open and not yet given its
     * pass (st_box_verify): msg[0..lazy_n) as they lie in the file. */
    int      lazy_ok;       /* this load may leave the pass for later */
    uint32_t lazy_n, lazy_crc;
    uint64_t lazy_hms, lazy_end;
    int      broken;        /* the pass failed: no more use; not kept */
    uint32_t *own;          /* UIDs this process appended since its last
                               good commit (taken back if a commit fails) */
    uint32_t nown, capown;
    int      own_lost;      /* own[] could not grow: a failed commit cannot
                               say which messages to take back */
    struct st_cjob *cjob;   /* a compaction copying across loop turns
                               (compact.c), NULL if none */
    /* A commit begun by st_box_commit_start whose syncs are in flight
     * (ST_CP_*): the lock stays held and nothing may change the mailbox
     * until it ends (st_box_lock waits for it: box_drain). */
    int      cphase;
} stbox;

struct st_store {
    const st_vfs *vfs;
    char   *root;
    stbox  *boxes;          /* every open mailbox (deleted ones too) */
    unsigned seq;           /* for unique temp file names */
    unsigned compact_permille; /* compact when reclaimable bytes pass this
                                  share of the mbox; 0 = only on demand */
    uint64_t compact_slice; /* nonzero: an automatic compaction of an open
                               mailbox copies this many bytes a
                               st_store_compact_work() call; 0: all at once */
    uint64_t quota;         /* per-user limit in bytes; 0 = none */
    const st_append_watch *watch; /* shown every new message (may be NULL) */
    /* told about every repair (st_check reports them); may be NULL */
    void (*note)(void *ctx, const char *user, const char *box, const char *what);
    void *note_ctx;
    uint64_t close_seq;     /* last stbox.closed_seq handed out */
    int      async;         /* st_box_commit_start may leave syncs in flight */
    unsigned inflight;      /* commits with syncs in flight */
    /* told when a commit begun by st_box_commit_start ends */
    void (*on_commit)(void *ctx, st_box *b, int rc);
    void *on_commit_ctx;
};

/* stbox.cphase */
#define ST_CP_NONE 0
#define ST_CP_MBOX 1   /* the mbox's sync is in flight; the MARK follows */
#define ST_CP_LOG  2   /* the MARK is written; the log's sync is in flight */

/* util.c */
uint32_t st_crc32(uint32_t crc, const void *p, size_t n);
/* crc32c.c: CRC-32C (Castagnoli), chained like st_crc32 (start with 0);
 * SSE4.2 / ARMv8 instructions where the CPU has them, else tables, with
 * the same results. st_crc32c_hw() says which; st_crc32c_soft = 1 forces
 * the tables (tests). */
uint32_t st_crc32c(uint32_t crc, const void *p, size_t n);
int st_crc32c_hw(void);
extern int st_crc32c_soft;
int  st_escape(const char *name, char *out, size_t outsz);
int  st_unescape(const char *file, char *out, size_t outsz);
char *st_strdup(const char *s);
char *st_path(const char *a, const char *b, const char *c);
char *st_cat(const char *a, const char *b);
int  st_user_dir(st_store *s, const char *user, char **dir);
int  st_box_paths(st_store *s, const char *user, const char *name,
                  char **dir, char **mbox, char **log);
void st_put16(uint8_t *p, uint16_t v);
void st_put32(uint8_t *p, uint32_t v);
void st_put64(uint8_t *p, uint64_t v);
uint16_t st_get16(const uint8_t *p);
uint32_t st_get32(const uint8_t *p);
uint64_t st_get64(const uint8_t *p);
/* "From " line date (asctime form, UTC) */
int  st_fmt_asctime(int64_t t, char *buf, size_t n);
int  st_parse_asctime(const char *p, size_t n, int64_t *t);
int64_t st_now(void);
/* tests: a fixed clock (deterministic UIDVALIDITY), a small checkpoint size */
extern int64_t (*st_clock_hook)(void);
extern uint64_t st_ckpt_min;
extern uint64_t st_compact_min_dead; /* ST_COMPACT_MIN_DEAD; tests lower it */
extern unsigned st_keep_closed_max;   /* ST_KEEP_CLOSED_MAX; tests change it */
extern uint64_t st_keep_closed_bytes; /* ST_KEEP_CLOSED_BYTES */
extern unsigned st_compact_jobs_max; /* ST_COMPACT_JOBS; tests change it */
void st_sleep_ms(unsigned ms);

/* log.c */
size_t st_rec_encode(uint8_t *buf, int type, const uint8_t *payload, size_t len);
size_t st_rec_append_payload(uint8_t *p, const st_rec_append *a);
void   st_rec_append_decode(const uint8_t *p, st_rec_append *a);
int    st_log_write_snapshot(st_store *s, const char *dir, const char *log_path,
                             uint32_t uidvalidity, const st_box *src,
                             uint64_t mbox_end, uint64_t *size_out);
int    st_rec_min_len(int type);
void   st_own_add(stbox *b, uint32_t uid);
/* A buffered record writer over one file (checkpoints, compaction). */
typedef struct st_logw {
    st_file *f;
    uint64_t off;   /* file offset of buf[0] */
    uint8_t *buf;   /* ST_CHUNK bytes */
    size_t n;       /* bytes in buf */
    int err;        /* first write error; later writes are skipped */
} st_logw;
void   st_logw_flush(st_logw *w);
void   st_logw_rec(st_logw *w, int type, const uint8_t *payload, size_t len);
void   st_logw_head(st_logw *w, uint32_t uidvalidity, const st_box *src);
void   st_logw_state(st_logw *w, const st_box *src, uint64_t mbox_end);
/* Free an index array m, or unmap the block it lies in; clears *map. */
void st_msgs_release(st_msg *m, st_imap *map);
typedef struct st_logrd {
    st_file *f;
    uint64_t base;   /* file offset of buf[0] */
    uint64_t fsize;  /* read up to here */
    uint8_t *buf;    /* ST_CHUNK bytes */
    size_t len, i;   /* bytes in buf, next record at buf[i] */
    int      want_msgs; /* set by the caller: decode MSGS blocks (else
                            they are only checked: no memory for them) */
    st_msg  *msgs;   /* the entries of the REC_MSGS record just returned,
                        checked and decoded (the caller may take them) */
    uint32_t nmsgs;  /* entries in msgs */
    uint8_t  hdr[24]; /* that record's payload (the block moved the buffer) */
    int      lazy_ok;  /* set by the caller: a version 3 block with its
                          maxima may be handed over before its pass */
    uint32_t lazy_n;   /* the block just returned was: entries to verify */
    uint32_t lazy_crc; /* and the CRC-32C they must have */
    int      bad_msgs; /* the ST_ECORRUPT returned is a MSGS record whose
                          block is short or fails its CRC */
    st_imap  map;    /* msgs lies in this mapped block (p NULL: malloc'd) */
    uint64_t msgs_hms;  /* largest MODSEQ among msgs */
    uint64_t msgs_end;  /* largest off + dlen among msgs */
} st_logrd;
void st_logrd_init(st_logrd *r, st_file *f, uint64_t from, uint64_t fsize);
int  st_msgs_verify(const st_msg *m, uint32_t count, uint32_t crc_want, uint64_t hms_want,
                    uint64_t end_want);
int  st_logrd_next(st_logrd *r, int *type, const uint8_t **payload, size_t *len, uint64_t *off);
void st_logrd_free(st_logrd *r);
/* Take the entries of the REC_MSGS record st_logrd_next just returned
 * (malloc'd, sorted by strictly increasing UID; NULL if none or want_msgs
 * is not set): the caller frees them. */
st_msg *st_logrd_take_msgs(st_logrd *r, uint32_t *count);
/* The same without a copy: a version 3 block used in place (little-endian
 * host, our entry size) comes back with *map set; release the array with
 * st_msgs_release(m, map). */
st_msg *st_logrd_take_msgs_map(st_logrd *r, uint32_t *count, st_imap *map);
/* Write the live entries of src (not ST_F_EXPUNGED) as one REC_MSGS
 * record; noff, if not NULL, gives each entry's offset instead (compaction). */
void st_logw_msgs(st_logw *w, const st_box *src, const uint64_t *noff);

/* box.c */
int  st_box_lock(stbox *b);
void st_box_unlock(stbox *b);
int  st_log_add(stbox *b, int type, const uint8_t *payload, size_t len);
int  st_msg_push(st_box *b, const st_msg *m);
int  st_new_uidvalidity(st_store *s, const char *dir, uint32_t *out);
stbox *st_find_open(st_store *s, const char *user, const char *name);
void st_mark_gone(st_store *s, const char *user, const char *name);
void st_box_free_all(st_store *s);
void st_box_purge_only(st_box *b);
void st_note(stbox *b, const char *what);

/* compact.c */
int  st_compact_recover(stbox *b);
int  st_compact_recover_paths(st_store *s, const char *dir, st_file *mbox, const char *log_path);
int  st_compact_clean(st_store *s, const char *log_path);
char *st_compact_tmp(const char *log_path);   /* the new mbox, before rename */
char *st_compact_newlog(const char *log_path);/* the new log, before rename */
void st_compact_job_free(stbox *b);           /* drop b's job and its file */
/* box.c: kept closed mailboxes past the bounds go, least recently closed
 * first (those with a compaction job stay until it ends) */
void st_keep_trim(st_store *s);
uint64_t st_box_reclaimable(const stbox *b);
int  st_quota_check(stbox *b, uint64_t add);
int  st_inbox_heal(st_store *s, const char *user);

/* reader.c: disk form to wire form over bytes in memory, exactly as
 * st_reader_read gives it (the append path shows new messages to a
 * watcher with it). r holds only the conversion state; seek points are
 * reported if st_reader_track was called on it. */
void st_wire_init(st_reader *r);
void st_wire_feed(st_reader *r, const char *disk, size_t n,
                  void (*out)(void *ctx, const char *p, size_t n), void *ctx);
void st_wire_end(st_reader *r, void (*out)(void *ctx, const char *p, size_t n), void *ctx);

/* meta.c */
typedef struct st_meta st_meta;
void st_meta_free(st_meta *mt);
/* The cache file of the mailbox whose log is log_path goes with it when
 * it is deleted or renamed (best effort: a leftover is harmless, its
 * UIDVALIDITY tells it apart). */
int  st_meta_remove(st_store *s, const char *log_path);
int  st_meta_rename(st_store *s, const char *from_log, const char *to_log);

/* mbox.c: conversions between wire and disk form */
typedef struct st_enc {
    int bol;        /* at the start of a line */
    int cr;         /* a CR is held: it becomes nothing if an LF follows */
    int qmatch;     /* matching /^>*From / at the start of a line */
    uint64_t ngt;   /* '>' seen in the current match */
    unsigned m;     /* bytes of "From " matched */
    uint64_t size;  /* wire size of what was fed */
    uint64_t dlen;  /* disk bytes produced */
    int last;       /* last disk byte produced, -1 if none */
    /* sink for disk bytes */
    int (*put)(void *ctx, const char *p, size_t n);
    void *ctx;
    char buf[512];  /* batches the sink calls */
    unsigned nbuf;
} st_enc;
void st_enc_init(st_enc *e, int (*put)(void *, const char *, size_t), void *ctx);
int  st_enc_feed(st_enc *e, const void *p, size_t n);
int  st_enc_finish(st_enc *e);
/* Wire size and disk-form checks of a disk-form region (outside messages). */
uint64_t st_disk_wire_size(const char *p, size_t n, int *bol, int *qm, unsigned *m);
/* A message found by scanning the mbox. */
typedef struct st_found {
    uint64_t start;      /* its "From " line */
    uint64_t off;        /* first byte after the From line and our headers */
    uint32_t hlen;       /* off - start */
    uint32_t dlen;       /* content bytes on disk */
    uint32_t size;       /* wire size */
    uint8_t  tail;       /* separator bytes after the content (0 or 1) */
    uint8_t  flags;      /* from Status/X-Status */
    int64_t  idate;      /* from the From line */
    uint32_t xuid;       /* our X-UID header, 0 if none */
    int      ours;       /* it starts with our four headers */
    int      valid_from; /* the From line is well formed with a date */
    int      first_hdr_ok; /* the line after the From line is a header */
    int      nul;        /* a NUL byte somewhere: torn-write fill, not mail */
    int      from_ours;  /* the From line is the one we write, so our
                            X-UID header must follow it */
    uint32_t crc;        /* crc32 from the From line to the next one */
    char     kw[256];    /* X-Keywords value */
} st_found;
int  st_scan_mbox(st_file *f, uint64_t from, uint64_t to,
                  int (*cb)(void *ctx, st_found *m), void *ctx, int *garbage);
int  st_header_block(char *buf, size_t n, const st_box *b, uint32_t uid,
                     int64_t idate, uint8_t flags, uint64_t kw);

#endif
