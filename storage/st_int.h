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
 * than twice what a fresh checkpoint would take: replay stays short and the
 * amortised extra writing stays below one checkpoint per checkpoint size of
 * records. */
#define ST_LOG_CKPT_MIN     (64u * 1024u)
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
/* Our header block per message (From line, X-UID, Status, X-Status,
 * X-Keywords, separator) as the compaction threshold estimates it. */
#define ST_HDR_EST          100u

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
};
#define ST_LOG_MAGIC   0x50494d53u /* "PIMS" */
#define ST_LOG_VERSION 1u
/* record = u8 type, u8 0, u16 len, payload[len], u32 crc32(all before) */
#define REC_OVERHEAD 8u

/* A decoded APPEND record. */
typedef struct st_rec_append {
    st_msg   m;
    uint16_t hlen;   /* bytes from the "From " line to m.off */
    uint8_t  tail;   /* bytes after the message that belong to it ("\n\n") */
    uint32_t crc;    /* crc32 of [off-hlen, off+dlen+tail) */
} st_rec_append;

/* A mailbox open in this process. st_box first: st_box* casts to stbox*. */
typedef struct stbox {
    st_box   pub;
    st_store *s;
    struct stbox *next;     /* in s->boxes */
    unsigned refs;          /* st_box_open()s not yet closed */
    uint32_t cap;           /* allocated entries of pub.msg */
    char    *dir;           /* user folder */
    char    *mbox_path;
    char    *log_path;
    st_file *mbox;
    st_file *log;
    uint64_t mbox_ino, log_ino; /* identity of the files we have open */
    uint64_t log_end;       /* valid end of the log (replayed or written) */
    uint64_t mbox_end;      /* end of the last indexed message's bytes */
    uint64_t ckpt_size;     /* log size right after the last checkpoint */
    uint64_t dead_bytes;    /* bytes of expunged messages, for compaction */
    int      locked;        /* lock depth held by this process */
    int      dirty_mbox;    /* mbox bytes written since the last sync */
    int      dirty_log;     /* log records written since the last sync */
    int      need_recover;  /* look for an unfinished compaction before
                               trusting the files (first lock, new mbox) */
    int      mbox_replaced; /* the mbox was replaced (compacted) since the
                               index was loaded: offsets of entries missing
                               from the new log are void */
} stbox;

struct st_store {
    const st_vfs *vfs;
    char   *root;
    stbox  *boxes;          /* every open mailbox (deleted ones too) */
    unsigned seq;           /* for unique temp file names */
    unsigned compact_permille; /* compact when reclaimable bytes pass this
                                  share of the mbox; 0 = only on demand */
    uint64_t quota;         /* per-user limit in bytes; 0 = none */
    /* told about every repair (st_check reports them); may be NULL */
    void (*note)(void *ctx, const char *user, const char *box, const char *what);
    void *note_ctx;
};

/* util.c */
uint32_t st_crc32(uint32_t crc, const void *p, size_t n);
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
void st_sleep_ms(unsigned ms);

/* log.c */
size_t st_rec_encode(uint8_t *buf, int type, const uint8_t *payload, size_t len);
size_t st_rec_append_payload(uint8_t *p, const st_rec_append *a);
void   st_rec_append_decode(const uint8_t *p, st_rec_append *a);
int    st_log_write_snapshot(st_store *s, const char *dir, const char *log_path,
                             uint32_t uidvalidity, const st_box *src,
                             uint64_t mbox_end, uint64_t *size_out);
int    st_rec_min_len(int type);
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
typedef struct st_logrd {
    st_file *f;
    uint64_t base;   /* file offset of buf[0] */
    uint64_t fsize;  /* read up to here */
    uint8_t *buf;    /* ST_CHUNK bytes */
    size_t len, i;   /* bytes in buf, next record at buf[i] */
} st_logrd;
void st_logrd_init(st_logrd *r, st_file *f, uint64_t from, uint64_t fsize);
int  st_logrd_next(st_logrd *r, int *type, const uint8_t **payload, size_t *len, uint64_t *off);
void st_logrd_free(st_logrd *r);

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
uint64_t st_box_reclaimable(const stbox *b);
int  st_quota_check(stbox *b, uint64_t add);
int  st_inbox_heal(st_store *s, const char *user);

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
