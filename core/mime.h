/*
 * mime.h -- MIME structure of a message (RFC 2045, 2046, 2822) and its
 * IMAP renderings (RFC 3501 ENVELOPE, BODY, BODYSTRUCTURE, sections).
 *
 * The parser is fed a message's wire bytes (CRLF, or bare LF) in slices of
 * any size, so it runs over st_reader without the message ever being in
 * memory. It produces a part tree: for every part the wire offsets of its
 * header and body, its line count and the MIME fields BODYSTRUCTURE needs;
 * for every message node (the root and the child of each message/rfc822
 * part) also the raw header values ENVELOPE needs. FETCH then serves any
 * section from offsets.
 *
 * Memory is bounded by what is kept, not by what is scanned: a header value
 * keeps at most MIME_FIELD_MAX bytes, a tree at most MIME_MAX_PARTS parts
 * nested at most MIME_MAX_DEPTH deep and MIME_POOL_MAX bytes of strings.
 * Past a cap the message is still scanned to the end (offsets stay exact);
 * deeper structure is simply not recorded.
 *
 * A tree serializes to a compact byte string (mime_serialize) so it can be
 * cached: the core keeps an in-memory LRU of them keyed by (mailbox,
 * UIDVALIDITY, UID), and the store keeps them in a per-mailbox cache file
 * (st_meta_get/st_meta_put) so a restart does not parse again -- see
 * mime_tree_get(). A full tree also carries seek points (disk/wire offset
 * pairs, see st_seekpt) so a section or partial FETCH starts reading near
 * its origin instead of at the message start.
 */
#ifndef MIME_H
#define MIME_H

#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "util.h"
#include "store.h"

/* A header value longer than this is cut when kept (8 KiB holds a To:
 * with a couple of hundred recipients; the scan goes on regardless). */
#define MIME_FIELD_MAX 8192
/* Parts recorded per message: mail with more is machine-made (digests of
 * digests); the rest of it is served as part of the last recorded body. */
#define MIME_MAX_PARTS 1024
/* Nesting recorded; BODYSTRUCTURE output recurses this deep at most. */
#define MIME_MAX_DEPTH 40
/* Bytes of kept strings per tree (parameters, envelope sources). */
#define MIME_POOL_MAX (256u << 10)
/* Seek points kept with a full tree: one per this many disk bytes, so a
 * partial FETCH from the middle of a 50 MB part reads at most this much
 * before its origin (64 KiB: about 6 bytes of cache per 64 KiB of mail). */
#define MIME_SEEK_EVERY (64u << 10)
/* At most this many points a message (a 4 GB message gets one every
 * 512 KiB); keeps a tree's cache record small. */
#define MIME_SEEK_MAX 8192
/* RFC 2046 allows 70; real mail sometimes has a few more. */
#define MIME_BOUNDARY_MAX 200

#define MIME_NONE UINT32_MAX

/* mime_part.flags */
enum {
    MIME_PF_MULTIPART = 0x01,   /* multipart/any with children */
    MIME_PF_RFC822 = 0x02,      /* message/rfc822 with one child message */
    MIME_PF_MESSAGE = 0x04,     /* a message node: its header is an RFC 2822
                                   header (root, or child of an rfc822 part) */
    MIME_PF_TEXT = 0x08,        /* text/any: BODYSTRUCTURE gives lines */
    MIME_PF_DEFTYPE = 0x10,     /* no (valid) Content-Type: default used */
    MIME_PF_OPEN = 0x80,        /* parser-internal: not yet closed */
};

/* Kept strings of a part. Params, disposition params and language are
 * lists of NUL-separated items ("name\0value\0name\0value\0"). */
enum {
    MIME_S_TYPE, MIME_S_SUBTYPE, MIME_S_PARAMS, MIME_S_ID, MIME_S_DESC,
    MIME_S_ENC, MIME_S_DISP, MIME_S_DISP_PARAMS, MIME_S_LANG, MIME_S_LOC,
    MIME_S_MD5,
    /* envelope sources, message nodes only: unfolded, trimmed values */
    MIME_S_DATE, MIME_S_SUBJECT, MIME_S_FROM, MIME_S_SENDER, MIME_S_REPLY_TO,
    MIME_S_TO, MIME_S_CC, MIME_S_BCC, MIME_S_IN_REPLY_TO, MIME_S_MESSAGE_ID,
    MIME_S_COUNT
};

typedef struct mime_str {
    uint32_t off;   /* offset in the pool; 0 = absent (pool byte 0 is unused) */
    uint32_t len;   /* bytes */
} mime_str;

typedef struct mime_part {
    uint32_t hdr_off, hdr_len;    /* header, blank line included, in wire
                                     coordinates of the whole message */
    uint32_t body_off, body_len;  /* body: for a part in a multipart the
                                     CRLF before the next boundary is not in
                                     it (RFC 2046 5.1.1) */
    uint32_t lines;               /* body lines (BODYSTRUCTURE) */
    uint32_t parent;              /* index, MIME_NONE for the root */
    uint32_t child;               /* first child, MIME_NONE if none */
    uint32_t next;                /* next sibling, MIME_NONE if none */
    uint32_t nchild;              /* number of children */
    uint16_t flags;               /* MIME_PF_* */
    uint16_t depth;               /* 0 for the root */
    mime_str s[MIME_S_COUNT];     /* kept strings */
} mime_part;

/* Parts are in document order; part 0 is the root (the message). */
typedef struct mime_tree {
    mime_part *part;      /* nparts entries */
    uint32_t   nparts;
    char      *pool;      /* kept strings; pool[0] unused */
    uint32_t   pool_len;
    uint32_t   size;      /* bytes of the message parsed */
    int        header_only; /* only the root header was parsed: root body is
                             known by offsets, nothing below it */
    st_seekpt *seek;      /* disk/wire meeting points, increasing; filled by
                             mime_tree_get (the parser sees wire bytes only) */
    uint32_t   nseek;
} mime_tree;

typedef struct mime_parser mime_parser;

/* A parser for one message. header_only: stop once the root header is
 * read (ENVELOPE, BODY[HEADER] need no more). NULL on no memory. */
mime_parser *mime_parser_new(int header_only);
/* Feed wire bytes. Returns 1 when no more input is needed (header_only and
 * the header is complete), 0 otherwise, -1 on no memory. */
int  mime_parser_feed(mime_parser *p, const char *buf, size_t n);
/* End of message: close every open part and hand over the tree. total is
 * the message size (for header_only, where not everything was fed).
 * Frees the parser. Returns 0 or -1 (no memory; *out is then empty). */
int  mime_parser_finish(mime_parser *p, uint32_t total, mime_tree *out);
void mime_parser_free(mime_parser *p);
/* Parse a message held in memory (tests, fuzzing). */
int  mime_parse_buf(const char *buf, size_t n, int header_only, mime_tree *out);
void mime_tree_free(mime_tree *t);
/* A kept string, or NULL if absent; *n gets its length. */
const char *mime_get(const mime_tree *t, uint32_t part, int which, size_t *n);

/* ---- cacheable form ---- */
/* A serialized full tree also carries the root's ENVELOPE and
 * BODYSTRUCTURE as FETCH sends them, each when not longer than this
 * (Kconfig MIME_RENDERED_MAX). */
#define MIME_RENDERED_MAX ((size_t)CONFIG_MIME_RENDERED_MAX)
/* What a reader accepts (the Kconfig range's top: a build configured
 * otherwise may have written the file). */
#define MIME_RENDERED_LIMIT 65536u
/* Append the tree's compact serialization to out. 0 or -1. */
int  mime_serialize(const mime_tree *t, dbuf *out);
/* Rebuild a tree, checking every offset: garbage gives -1, never a crash. */
int  mime_deserialize(const void *p, size_t n, mime_tree *out);
/* Renderings kept with a serialized tree (pointers into the blob; NULL
 * when that one is not kept). */
typedef struct mime_rendered {
    const char *env;    /* ENVELOPE of the message */
    size_t      env_len;
    const char *bs;     /* BODYSTRUCTURE of the message */
    size_t      bs_len;
} mime_rendered;
/* 0 and the renderings of a serialized tree; -1 if it has none (an older
 * format) or is damaged. */
int  mime_rendered_parse(const void *blob, size_t n, mime_rendered *r);

/* ---- IMAP renderings (RFC 3501 7.4.2, 9) ---- */
/* An IMAP string: quoted when short and plain, else a literal. */
void mime_out_string(dbuf *o, const char *s, size_t n);
void mime_out_nstring(dbuf *o, const char *s, size_t n);
/* ENVELOPE of message node msg (the root is 0). */
void mime_out_envelope(dbuf *o, const mime_tree *t, uint32_t msg);
/* BODYSTRUCTURE (extended = 1) or BODY (0) of part (0 = whole message). */
void mime_out_body(dbuf *o, const mime_tree *t, uint32_t part, int extended);
/* An RFC 2822 address list as IMAP's list of addresses, or NIL. */
void mime_out_addresses(dbuf *o, const char *s, size_t n);

/* ---- sections (RFC 3501 6.4.5) ---- */
enum {
    MIME_SEC_ALL = 0,    /* BODY[] / BODY[1.2] */
    MIME_SEC_HEADER,     /* HEADER, HEADER.FIELDS(.NOT) */
    MIME_SEC_TEXT,
    MIME_SEC_MIME,
};
/* Resolve part numbers nums[0..n) and a section kind to a byte range.
 * Returns 0 and the range, or -1 if the part does not exist. For
 * MIME_SEC_HEADER the range is the header to filter. */
int  mime_section_range(const mime_tree *t, const uint32_t *nums, unsigned n,
                        int kind, uint32_t *off, uint32_t *len);

/* ---- decoding for SEARCH ---- */
/* Streaming transfer decoding + charset conversion to UTF-8 + case folding
 * (ASCII and Latin-1 letters), one part at a time. */
enum { MIME_ENC_PLAIN = 0, MIME_ENC_BASE64, MIME_ENC_QP };
enum { MIME_CS_UTF8 = 0, MIME_CS_LATIN1, MIME_CS_OTHER };
typedef struct mime_decoder {
    int      enc;       /* MIME_ENC_* */
    int      cs;        /* MIME_CS_* */
    uint32_t b64;       /* base64 bits held */
    int      b64n;      /* sextets held */
    char     qp[3];     /* QP: "=X" held across slices */
    int      nqp;
    int      fold_c3;   /* last UTF-8 byte out was 0xC3 (folding state) */
} mime_decoder;
void mime_decoder_init(mime_decoder *d, int enc, int cs);
/* Decode and fold src into out (appends). */
void mime_decode(mime_decoder *d, const char *src, size_t n, dbuf *out);
/* Which decoder a part needs (from its Content-Transfer-Encoding and
 * charset). Returns 0 if the part is text to search, -1 to skip it. */
int  mime_part_decoder(const mime_tree *t, uint32_t part, mime_decoder *d);
/* Fold UTF-8 in place semantics: append the folded form of s to out. */
void mime_fold_utf8(const char *s, size_t n, dbuf *out);
/* Latin-1 to UTF-8 (appends). */
void mime_latin1_to_utf8(const char *s, size_t n, dbuf *out);
/* Unfolded header value with RFC 2047 encoded words decoded to UTF-8
 * (charsets UTF-8, US-ASCII, ISO-8859-1; others kept raw), appended. */
void mime_decode_header(const char *s, size_t n, dbuf *out);
/* Days since the epoch of an RFC 2822 date, or -1. */
int64_t mime_date_days(const char *s, size_t n);

/* ---- the per-message tree cache ---- */
struct st_box;
/* Bytes of serialized trees kept in memory (LRU). A tree is about 40 bytes
 * plus its strings; 256 KiB holds some thousands of plain messages. */
#define MIME_CACHE_BYTES (256u << 10)
/* A message smaller than this (disk bytes) that arrives through the store
 * keeps its tree in the memory LRU only; its cache-file record is written
 * the first time the tree has to be parsed again, like that of mail from
 * outside. An APPEND then writes the message and the state log alone (the
 * record, about 230 bytes for a plain message, was more than the issue's
 * budget of 256 bytes of overhead per APPEND), and mail that is fetched
 * once while its tree is in memory never costs a record. The price is one
 * re-parse of such a message at most: measured (x86-64, page cache,
 * single-part) 6 us at 1 KiB, 10 us at 8 KiB, 43 us at 64 KiB, against
 * 1.1-1.6 us for reading its record. Bigger messages get their record at
 * once: their re-parse costs more (and a 1 MB message is parsed over
 * several loop turns), while the record is under 0.4% of their size. */
#define MIME_APPEND_RECORD_MIN (64u << 10)
/* The tree of message idx of box b: from the cache, else parsed from the
 * store (only the header when full is 0 and nothing is cached). Returns 0,
 * or a negative ST_E* error. */
int  mime_tree_get(struct st_box *b, uint32_t idx, int full, mime_tree *out);
/* ENVELOPE / BODYSTRUCTURE of message idx as kept with its cached tree
 * (in-memory LRU, else the store's cache file), without rebuilding the
 * tree: 0 and pointers valid until the next mime_* or st_meta_* call, or
 * -1 when nothing rendered is cached for it (use mime_tree_get). */
int  mime_rendered_get(struct st_box *b, uint32_t idx, mime_rendered *r);
/* The same, resumable, for FETCH, so that the first BODYSTRUCTURE of a
 * huge uncached message does not hold the loop (and every other client)
 * while it is read: 1 when *out is ready at once (cached, or smaller than
 * MIME_BG_MIN), 0 when *bg was started (call mime_bg_step once a loop turn
 * until it returns 1), <0 on error. */
typedef struct mime_bg mime_bg;
/* Messages below this are parsed at once (a few ms at most). */
#define MIME_BG_MIN (1u << 20)
/* Bytes read and parsed per step (about 1-2 ms of a loop turn on x86). */
#define MIME_BG_SLICE (512u << 10)
int  mime_tree_begin(struct st_box *b, uint32_t idx, mime_bg **bg, mime_tree *out);
/* One slice: 1 done (*out is the full tree, cached; bg is freed), 0 more
 * to do, <0 error (bg freed). */
int  mime_bg_step(mime_bg *bg, mime_tree *out);
void mime_bg_free(mime_bg *bg);
/* The seek point of t nearest before wire offset `wire` (a point at the
 * message start when t has none): read from there and skip the rest. */
void mime_seek_point(const mime_tree *t, uint32_t wire, st_seekpt *out);
/* Tests: seek point spacing (MIME_SEEK_EVERY unless changed). */
extern uint32_t mime_seek_every;
/* Drop every cached tree (tests; memory pressure). */
void mime_cache_clear(void);
/* Cache statistics for tests and benchmarks. */
void mime_cache_stats(uint32_t *entries, size_t *bytes, uint64_t *hits, uint64_t *misses);
/* Trees found in the store's cache file, and made as messages arrived. */
void mime_cache_stats2(uint64_t *disk_hits, uint64_t *parsed_at_append);
/* Parse every message that enters a mailbox through store s as it
 * arrives (st_store_set_append_watch), keeping the tree in both caches.
 * The server and delivery call it once after opening the store. */
void mime_watch_appends(st_store *s);
/* The same for a bulk import: every message's tree goes to the cache
 * file at once, whatever its size (the tool's memory LRU dies with it),
 * so the server's first FETCH BODYSTRUCTURE after an import reads no
 * message. */
void mime_watch_imports(st_store *s);

#endif
