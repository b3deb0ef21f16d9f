/*
 * meta.c -- a per-mailbox cache file of data derived from messages (the
 * core keeps serialized MIME trees with their seek points in it), so that
 * a restart does not read every message again to answer BODYSTRUCTURE.
 *
 * It is a cache, never a source of truth: nothing is synced, a record is
 * used only if its checksum holds and it names the message exactly (UID,
 * wire size, disk size, INTERNALDATE and a CRC of its first 256 disk bytes,
 * under the file's UIDVALIDITY), and a
 * file that is missing, short, torn or garbled costs a parse, nothing
 * more. Format (big-endian, see storage/README.md):
 *   header  "PIMC" | u32 version | u32 UIDVALIDITY | u32 crc32(first 12)
 *   record  u32 len | u32 uid | u32 size | u32 dlen | i64 idate |
 *           u32 crc32(first 256 disk bytes of the message) |
 *           payload[len] | u32 crc32(everything before in the record)
 * Records are appended; a later record for a UID wins. Appends are made
 * under the cache file's own lock (never waited for: a busy file means the
 * record is simply not written), so the daemon and deliver processes can
 * share it.
 *
 * Memory: the file is never loaded. An index of (UID, offset) pairs,
 * 8 bytes per cached message, is built on the first lookup by reading the
 * record headers, and grown as this or another process appends; a process
 * that only appends (deliver) never builds it. Records are read when
 * asked for.
 *
 * Message bytes never change under one (UIDVALIDITY, UID): compaction
 * copies them unchanged (storage/compact.c), so offsets inside a message
 * stay true and records survive it; records of expunged messages become
 * garbage, and the file is rewritten without them once they are the
 * majority. A new UIDVALIDITY empties the file.
 */
#include <stdlib.h>
#include <string.h>

#include "st_int.h"

#define META_MAGIC   0x50494d43u /* "PIMC" */
#define META_VERSION 1u
#define META_HDR     16u
#define REC_HEAD     28u
/* Disk bytes at the start of a message whose CRC a record carries: the
 * header's Date and Message-ID tell apart two messages that got the same
 * UID, size and INTERNALDATE (a UID handed out again after a crash lost
 * an unacknowledged append, or a mailbox rewritten by another tool). One
 * small read per lookup, never the body. */
#define HEAD_BYTES   256u
/* A record's payload may not exceed this: a MIME tree is capped at 1,024
 * parts, 256 KiB of strings and 8,192 seek points, well under 1 MiB. */
#define META_REC_MAX (1u << 20)
/* Rewrite the file without garbage only past this size (below, the
 * garbage costs less flash than the rewrite). */
#define META_GC_MIN  (256u << 10)
/* Records are read through a window of this many bytes: a FETCH 1:*
 * BODYSTRUCTURE asks for records in the order they were written, so one
 * read serves a hundred or more of them (a pread per record was most of
 * the cost of a repeated BODYSTRUCTURE). Allocated on the first read,
 * freed with the handle. */
#define META_WIN     (64u << 10)
/* Record offsets fit in 31 bits; the top bit of ment.off says the record
 * passed its CRC and was checked against its message's first bytes
 * (HEAD_BYTES) by this process. A message's bytes never change under one UID while a process
 * sees it (compaction copies them; a UID is handed out again only after a
 * crash, and this process's memory goes with it, or through a new record,
 * which clears the bit), so a checked record needs no mbox read again. */
#define OFF_CHECKED  0x80000000u
#define META_FILE_MAX 0x7fffffffu

typedef struct ment {
    uint32_t uid;   /* message */
    uint32_t off;   /* its latest record in the file, | OFF_CHECKED */
} ment;

struct st_meta {
    char    *path;
    st_file *f;          /* NULL until opened (or after a failure) */
    uint64_t ino;        /* identity of the file f is */
    uint64_t scanned;    /* the index covers records up to here */
    ment    *ix;         /* sorted by uid */
    uint32_t n, cap;
    uint32_t dups;       /* records superseded by a later one (garbage) */
    int      indexed;    /* the index was built (on the first lookup: a
                            process that only appends, like deliver, never
                            reads the file) */
    uint8_t *win;        /* META_WIN bytes of the file, or NULL */
    uint64_t win_off;    /* file offset of win[0] */
    size_t   win_len;    /* valid bytes in win (0: empty) */
    uint8_t *peek_big;   /* the last st_meta_peek record too big for the
                            window (malloc'd), freed by the next call */
    uint32_t hint;       /* index position of the last lookup: FETCH 1:*
                            asks for UIDs in order, so the next is hint+1 */
};

/* Counters for tests and the debug log. */
static st_meta_counters counters;

void st_meta_stats(st_meta_counters *out)
{
    *out = counters;
}

static void ix_reset(st_meta *mt)
{
    mt->win_len = 0;    /* whatever file comes next, the window is not it */
    mt->n = 0;
    mt->dups = 0;
    mt->scanned = META_HDR;
    mt->indexed = 0;
}

static void meta_close_file(st_meta *mt)
{
    if (mt->f) {
        st_vclose(mt->f);
        mt->f = NULL;
    }
    ix_reset(mt);
}

void st_meta_free(st_meta *mt)
{
    if (!mt) {
        return;
    }
    meta_close_file(mt);
    free(mt->peek_big);
    free(mt->win);
    free(mt->ix);
    free(mt->path);
    free(mt);
}

/* Index position of uid, or where it would go (*found says which). */
static uint32_t ix_find(st_meta *mt, uint32_t uid, int *found)
{
    /* The last position or the one after it first: a FETCH of a range
     * asks for UIDs in rising order. */
    for (uint32_t h = mt->hint; h < mt->n && h <= mt->hint + 1; h++) {
        if (mt->ix[h].uid == uid) {
            *found = 1;
            mt->hint = h;
            return h;
        }
    }
    uint32_t lo = 0, hi = mt->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (mt->ix[mid].uid < uid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = lo < mt->n && mt->ix[lo].uid == uid;
    if (*found) {
        mt->hint = lo;
    }
    return lo;
}

/* uid's latest record is at off (records come in file order, so a later
 * one replaces an earlier one). -1 on no memory. */
static int ix_set(st_meta *mt, uint32_t uid, uint32_t off)
{
    int found;
    uint32_t at = ix_find(mt, uid, &found);
    if (found) {
        mt->ix[at].off = off;
        mt->dups++;
        return 0;
    }
    if (mt->n == mt->cap) {
        uint32_t nc = mt->cap ? mt->cap * 2 : 64;
        ment *ni = realloc(mt->ix, nc * sizeof *ni);
        if (!ni) {
            return -1;
        }
        mt->ix = ni;
        mt->cap = nc;
    }
    /* Mostly at the end: UIDs are parsed and delivered in rising order. */
    memmove(mt->ix + at + 1, mt->ix + at, (mt->n - at) * sizeof *mt->ix);
    mt->ix[at].uid = uid;
    mt->ix[at].off = off;
    mt->n++;
    return 0;
}

/* Index the complete records in [mt->scanned, to). Returns the end of the
 * last complete record: short of `to` when the rest is torn, garbled, or
 * still being written by another process. */
static uint64_t scan(st_meta *mt, uint64_t to)
{
    uint8_t *buf = malloc(ST_CHUNK);
    uint64_t pos = mt->scanned, base = 0;
    size_t have = 0;
    if (!buf) {
        return pos;
    }
    while (pos + REC_HEAD <= to) {
        if (pos < base || pos + REC_HEAD > base + have) {
            /* Refill: headers are read in chunks, big payloads skipped. */
            uint64_t want = to - pos < ST_CHUNK ? to - pos : ST_CHUNK;
            long got = st_vpread(mt->f, buf, (size_t)want, pos);
            if (got < (long)REC_HEAD) {
                break;
            }
            base = pos;
            have = (size_t)got;
        }
        const uint8_t *h = buf + (pos - base);
        uint32_t len = st_get32(h);
        uint64_t next = pos + REC_HEAD + len + 4;
        if (len > META_REC_MAX || next > to || next > META_FILE_MAX) {
            break;
        }
        if (ix_set(mt, st_get32(h + 4), (uint32_t)pos) < 0) {
            break;
        }
        counters.indexed++;
        pos = next;
    }
    free(buf);
    mt->scanned = pos;
    return pos;
}

/* A fresh header for uidvalidity at the start of an emptied file. */
static int write_header(st_file *f, uint32_t uidvalidity)
{
    uint8_t h[META_HDR];
    st_put32(h, META_MAGIC);
    st_put32(h + 4, META_VERSION);
    st_put32(h + 8, uidvalidity);
    st_put32(h + 12, st_crc32(0, h, 12));
    int r = st_vtruncate(f, 0);
    return r ? r : st_vpwrite(f, h, sizeof h, 0);
}

static int header_ok(st_file *f, uint32_t uidvalidity)
{
    uint8_t h[META_HDR];
    return st_vread_full(f, h, sizeof h, 0) == 0 && st_get32(h) == META_MAGIC &&
           st_get32(h + 4) == META_VERSION && st_get32(h + 8) == uidvalidity &&
           st_get32(h + 12) == st_crc32(0, h, 12);
}

static void maybe_gc(stbox *b, st_meta *mt);

/* Open the file and index it, emptying it when it belongs to another
 * UIDVALIDITY (or is not ours at all). 0 or <0 (then mt->f is NULL). */
static int meta_open(stbox *b, st_meta *mt)
{
    const st_vfs *v = b->s->vfs;
    st_stat st;
    meta_close_file(mt);
    int r = v->open(v, mt->path, ST_O_WRITE | ST_O_CREATE, &mt->f);
    if (r) {
        mt->f = NULL;
        return r;
    }
    if ((r = st_vfstat(mt->f, &st)) != 0) {
        meta_close_file(mt);
        return r;
    }
    mt->ino = st.ino;
    if (!header_ok(mt->f, b->pub.uidvalidity)) {
        /* Only with the lock: someone may be appending right now. */
        if ((r = st_vlock(mt->f, ST_LOCK_EX, 0)) != 0) {
            meta_close_file(mt);
            return r;
        }
        if (!header_ok(mt->f, b->pub.uidvalidity)) {
            counters.resets++;
            r = write_header(mt->f, b->pub.uidvalidity);
        }
        st_vlock(mt->f, ST_LOCK_UN, 0);
        if (r || (r = st_vfstat(mt->f, &st)) != 0) {
            meta_close_file(mt);
            return r;
        }
    }
    return 0;
}

/* Build the index on first use (and rewrite a file that is mostly
 * garbage then). */
static void ensure_index(stbox *b, st_meta *mt)
{
    st_stat st;
    if (mt->indexed || !mt->f || st_vfstat(mt->f, &st) != 0) {
        return;
    }
    scan(mt, st.size);
    mt->indexed = 1;
    maybe_gc(b, mt);
}

static char *path_for(const char *log_path);

/* The handle of box b, opened on first use; NULL if the file cannot be
 * used now. */
static st_meta *meta_get_handle(stbox *b)
{
    st_meta *mt = b->meta;
    if (!mt) {
        mt = calloc(1, sizeof *mt);
        if (!mt) {
            return NULL;
        }
        /* Our own files start with '.', so it cannot clash with a
         * mailbox. */
        mt->path = path_for(b->log_path);
        if (!mt->path) {
            free(mt);
            return NULL;
        }
        ix_reset(mt);
        b->meta = mt;
    }
    if (!mt->f && meta_open(b, mt) != 0) {
        return NULL;
    }
    return mt;
}

/* Follow what other processes did: index records they appended; if the
 * file was replaced, emptied or removed, start over. 0: same file,
 * 1: reopened (a lock held on the old handle is gone), <0: unusable. */
static int meta_refresh(stbox *b, st_meta *mt)
{
    const st_vfs *v = b->s->vfs;
    st_stat ps, fs;
    if (v->stat(v, mt->path, &ps) != 0 || ps.ino != mt->ino || st_vfstat(mt->f, &fs) != 0 ||
        fs.size < mt->scanned || !header_ok(mt->f, b->pub.uidvalidity)) {
        int was = mt->indexed;
        int r = meta_open(b, mt);
        if (!r && was) {
            ensure_index(b, mt);
        }
        return r ? r : 1;
    }
    if (mt->indexed && fs.size > mt->scanned) {
        scan(mt, fs.size);
    }
    return 0;
}

/* CRC of the first disk bytes of message m (see HEAD_BYTES). */
static int head_crc(stbox *b, const st_msg *m, uint32_t *crc)
{
    uint8_t h[HEAD_BYTES];
    size_t n = m->dlen < HEAD_BYTES ? m->dlen : HEAD_BYTES;
    if (m->off == UINT64_MAX) {
        return ST_ENOENT;
    }
    int r = n ? st_vread_full(b->mbox, h, n, m->off) : 0;
    if (!r) {
        *crc = st_crc32(0, h, n);
    }
    return r;
}

/* n bytes of the file at off: from the window when it holds them, else
 * through a fresh window read there (records are asked for in file order,
 * so the next ones come with it). A record bigger than the window is read
 * into *big (malloc'd; the caller frees it). *fresh says the bytes were
 * read now. NULL if unreadable. */
static const uint8_t *win_get(st_meta *mt, uint64_t off, size_t n, uint8_t **big, int *fresh)
{
    *big = NULL;
    if (mt->win_len && off >= mt->win_off && off + n <= mt->win_off + mt->win_len) {
        return mt->win + (off - mt->win_off);
    }
    *fresh = 1;
    if (n > META_WIN) {
        *big = malloc(n);
        if (*big && st_vread_full(mt->f, *big, n, off) != 0) {
            free(*big);
            *big = NULL;
        }
        return *big;
    }
    if (!mt->win && !(mt->win = malloc(META_WIN))) {
        return NULL;
    }
    mt->win_len = 0;
    long got = st_vpread(mt->f, mt->win, META_WIN, off);
    if (got < (long)n) {
        return NULL;
    }
    mt->win_off = off;
    mt->win_len = (size_t)got;
    return mt->win;
}

/* One try of view_rec: the checked payload of index entry e for message
 * m, in the window or in *big (malloc'd, the caller frees it). 1 when the
 * bytes came from an old window and did not check out (another process
 * may have cut a torn tail the window still showed and written a record
 * there). */
static int view_rec1(stbox *b, st_meta *mt, ment *e, const st_msg *m, const uint8_t **pl, size_t *len,
                     uint8_t **big)
{
    uint32_t off = e->off & ~OFF_CHECKED;
    int fresh = 0;
    const uint8_t *h = win_get(mt, off, REC_HEAD, big, &fresh);
    if (!h) {
        return ST_ENOENT;
    }
    uint32_t plen = st_get32(h);
    if (plen > META_REC_MAX || st_get32(h + 4) != m->uid) {
        return fresh ? ST_ENOENT : 1;
    }
    if (st_get32(h + 8) != m->size || st_get32(h + 12) != m->dlen || (int64_t)st_get64(h + 16) != m->idate) {
        return ST_ENOENT;
    }
    if (!(e->off & OFF_CHECKED)) {
        uint32_t hc;
        if (head_crc(b, m, &hc) != 0 || st_get32(h + 24) != hc) {
            counters.stale++;
            return ST_ENOENT;
        }
    }
    size_t total = REC_HEAD + (size_t)plen + 4;
    const uint8_t *r = win_get(mt, off, total, big, &fresh);
    if (!r) {
        return ST_ENOENT;
    }
    /* A record this process checked is not checked again: records are
     * never rewritten in place (a cut only ever removes a torn tail after
     * the last whole record, and a rewrite is a new file, which resets the
     * index), so its bytes are the ones that passed. */
    if (!(e->off & OFF_CHECKED) && st_get32(r + REC_HEAD + plen) != st_crc32(0, r, REC_HEAD + plen)) {
        free(*big);
        *big = NULL;
        if (!fresh) {
            return 1;
        }
        mt->win_len = 0;
        counters.bad++;
        return ST_ENOENT;
    }
    e->off |= OFF_CHECKED;
    *pl = r + REC_HEAD;
    *len = plen;
    return 0;
}

/* The checked payload of the record of index entry e for message m: 0 and
 * a pointer into the window (valid until the next read of this handle)
 * or into *big, or ST_ENOENT. */
static int view_rec(stbox *b, st_meta *mt, ment *e, const st_msg *m, const uint8_t **pl, size_t *len,
                    uint8_t **big)
{
    int r = view_rec1(b, mt, e, m, pl, len, big);
    if (r == 1) {
        mt->win_len = 0;    /* read it afresh */
        r = view_rec1(b, mt, e, m, pl, len, big);
    }
    return r == 1 ? ST_ENOENT : r;
}

/* The index entry of message idx's record, or NULL (no file, no record). */
static ment *meta_entry(stbox *b, uint32_t idx, st_meta **out)
{
    st_box *bx = &b->pub;
    const st_msg *m = &bx->msg[idx];
    int found = 0;
    st_meta *mt = meta_get_handle(b);
    if (mt) {
        ensure_index(b, mt);
    }
    uint32_t at = mt ? ix_find(mt, m->uid, &found) : 0;
    if (mt && !found) {
        /* Maybe another process (a delivery) wrote it since. */
        if (meta_refresh(b, mt) >= 0 && mt->f) {
            at = ix_find(mt, m->uid, &found);
        }
    }
    if (!mt || !mt->f || !found) {
        return NULL;
    }
    *out = mt;
    return &mt->ix[at];
}

int st_meta_peek(st_box *bx, uint32_t idx, const void **blob, size_t *len)
{
    stbox *b = (stbox *)bx;
    *blob = NULL;
    *len = 0;
    if (idx >= bx->count || bx->msg[idx].off == UINT64_MAX) {
        return ST_EINVAL;
    }
    st_meta *mt = NULL;
    ment *e = meta_entry(b, idx, &mt);
    if (mt) {
        free(mt->peek_big);
        mt->peek_big = NULL;
    }
    const uint8_t *pl;
    int r = e ? view_rec(b, mt, e, &bx->msg[idx], &pl, len, &mt->peek_big) : ST_ENOENT;
    if (r == 0) {
        counters.hits++;
        *blob = pl;
    } else {
        counters.misses++;
    }
    return r;
}

int st_meta_get(st_box *bx, uint32_t idx, void **blob, size_t *len)
{
    stbox *b = (stbox *)bx;
    *blob = NULL;
    *len = 0;
    if (idx >= bx->count || bx->msg[idx].off == UINT64_MAX) {
        return ST_EINVAL;
    }
    st_meta *mt = NULL;
    ment *e = meta_entry(b, idx, &mt);
    const uint8_t *pl;
    size_t n = 0;
    uint8_t *big = NULL;
    int r = e ? view_rec(b, mt, e, &bx->msg[idx], &pl, &n, &big) : ST_ENOENT;
    if (r == 0) {
        uint8_t *p = malloc(n + 1);
        if (p) {
            memcpy(p, pl, n);
            *blob = p;
            *len = n;
        } else {
            r = ST_ENOMEM;
        }
    }
    free(big);
    if (r == 0) {
        counters.hits++;
    } else {
        counters.misses++;
    }
    return r;
}

int st_meta_put(st_box *bx, uint32_t idx, const void *blob, size_t len)
{
    stbox *b = (stbox *)bx;
    if (idx >= bx->count || len > META_REC_MAX) {
        return ST_EINVAL;
    }
    const st_msg *m = &bx->msg[idx];
    st_meta *mt = meta_get_handle(b);
    if (!mt) {
        return ST_EIO;
    }
    /* Under the lock nobody else is writing: follow what others did, and
     * cut anything that is not a whole record (a torn tail from a crash)
     * so that what we append can be found again. */
    int r = st_vlock(mt->f, ST_LOCK_EX, 0);
    if (!r && (r = meta_refresh(b, mt)) == 1) {
        r = mt->f ? st_vlock(mt->f, ST_LOCK_EX, 0) : ST_EIO;
    }
    if (r) {
        if (r != ST_EBUSY && mt->f) {
            st_vlock(mt->f, ST_LOCK_UN, 0);
        }
        return r;      /* busy: another process is writing; skip it */
    }
    st_stat st;
    uint8_t *rec = NULL;
    if ((r = st_vfstat(mt->f, &st)) != 0) {
        goto out;
    }
    if (mt->indexed && st.size > mt->scanned) {
        counters.cut++;
        mt->win_len = 0;    /* it may show the bytes cut */
        if ((r = st_vtruncate(mt->f, mt->scanned)) != 0) {
            goto out;
        }
    }
    /* Without an index the tail is not checked: a record after a torn
     * one is lost until an indexing writer cuts the tail (harmless). */
    uint64_t at = mt->indexed ? mt->scanned : st.size;
    size_t total = REC_HEAD + len + 4;
    if (at + total > META_FILE_MAX) {
        r = ST_ENOSPC;     /* a 2 GB cache file: enough */
        goto out;
    }
    rec = malloc(total);
    if (!rec) {
        r = ST_ENOMEM;
        goto out;
    }
    st_put32(rec, (uint32_t)len);
    st_put32(rec + 4, m->uid);
    st_put32(rec + 8, m->size);
    st_put32(rec + 12, m->dlen);
    st_put64(rec + 16, (uint64_t)m->idate);
    uint32_t hc;
    if ((r = head_crc(b, m, &hc)) != 0) {
        goto out;
    }
    st_put32(rec + 24, hc);
    memcpy(rec + REC_HEAD, blob, len);
    st_put32(rec + REC_HEAD + len, st_crc32(0, rec, REC_HEAD + len));
    if ((r = st_vpwrite(mt->f, rec, total, at)) != 0) {
        st_vtruncate(mt->f, at);
        goto out;
    }
    counters.puts++;
    /* Checked by construction: its head CRC was taken from the message
     * just now, and its bytes are the ones written. */
    if (mt->indexed && ix_set(mt, m->uid, (uint32_t)at | OFF_CHECKED) == 0) {
        mt->scanned = at + total;
    }
out:
    free(rec);
    if (mt->f) {
        st_vlock(mt->f, ST_LOCK_UN, 0);
    }
    return r;
}

/* Copy one record (checked) from mt's file to w at *at. */
static int copy_rec(st_meta *mt, uint32_t off, st_file *w, uint64_t *at)
{
    uint8_t h[REC_HEAD];
    int r = st_vread_full(mt->f, h, sizeof h, off);
    if (r) {
        return r;
    }
    uint32_t plen = st_get32(h);
    if (plen > META_REC_MAX) {
        return ST_ECORRUPT;
    }
    size_t total = REC_HEAD + (size_t)plen + 4;
    uint8_t *p = malloc(total);
    if (!p) {
        return ST_ENOMEM;
    }
    r = st_vread_full(mt->f, p, total, off);
    if (!r && st_get32(p + REC_HEAD + plen) != st_crc32(0, p, REC_HEAD + plen)) {
        r = ST_ECORRUPT;
    }
    if (!r) {
        r = st_vpwrite(w, p, total, *at);
        *at += total;
    }
    free(p);
    /* a bad record is simply left out */
    return r == ST_ECORRUPT ? 0 : r;
}

/* Rewrite the file without records of messages that are gone and without
 * superseded ones, once they are most of it. Best effort: on any failure
 * the old file stays. Not synced (a cache); a crash leaves the old file
 * or a new one whose torn records fail their checksums. */
static void maybe_gc(stbox *b, st_meta *mt)
{
    uint32_t live = 0;
    for (uint32_t i = 0; i < mt->n; i++) {
        long k = st_box_find(&b->pub, mt->ix[i].uid);
        live += k >= 0 && !(b->pub.msg[k].flags & ST_F_EXPUNGED);
    }
    uint32_t dead = mt->n - live + mt->dups;
    if (mt->scanned < META_GC_MIN || dead <= live) {
        return;
    }
    const st_vfs *v = b->s->vfs;
    char *tmp = st_cat(mt->path, ".tmp");
    st_file *w = NULL;
    int r = tmp ? 0 : ST_ENOMEM;
    if (!r) {
        r = st_vlock(mt->f, ST_LOCK_EX, 0);
    }
    if (r) {
        free(tmp);
        return;
    }
    r = v->open(v, tmp, ST_O_WRITE | ST_O_CREATE | ST_O_TRUNC, &w);
    if (!r) {
        r = write_header(w, b->pub.uidvalidity);
    }
    uint64_t at = META_HDR;
    for (uint32_t i = 0; !r && i < mt->n; i++) {
        long k = st_box_find(&b->pub, mt->ix[i].uid);
        if (k >= 0 && !(b->pub.msg[k].flags & ST_F_EXPUNGED)) {
            r = copy_rec(mt, mt->ix[i].off & ~OFF_CHECKED, w, &at);
        }
    }
    if (w) {
        st_vclose(w);
    }
    if (!r) {
        r = v->rename(v, tmp, mt->path);
    }
    if (r) {
        v->remove(v, tmp);
    }
    st_vlock(mt->f, ST_LOCK_UN, 0);
    free(tmp);
    if (!r) {
        counters.rewrites++;
        /* index the new file (its records moved) */
        st_stat st;
        meta_close_file(mt);
        if (v->open(v, mt->path, ST_O_WRITE, &mt->f) != 0) {
            mt->f = NULL;
            return;
        }
        if (st_vfstat(mt->f, &st) != 0) {
            meta_close_file(mt);
            return;
        }
        mt->ino = st.ino;
        scan(mt, st.size);
    }
}

/* ".<name>.state" -> ".<name>.mime" (malloc'd), or NULL. */
static char *path_for(const char *log_path)
{
    size_t l = strlen(log_path);
    char *p = l > 6 && !strcmp(log_path + l - 6, ".state") ? malloc(l) : NULL;
    if (p) {
        memcpy(p, log_path, l - 6);
        memcpy(p + l - 6, ".mime", 6);
    }
    return p;
}

int st_meta_remove(st_store *s, const char *log_path)
{
    char *p = path_for(log_path);
    int r = p ? s->vfs->remove(s->vfs, p) : ST_ENOMEM;
    free(p);
    return r;
}

int st_meta_rename(st_store *s, const char *from_log, const char *to_log)
{
    char *a = path_for(from_log), *b = path_for(to_log);
    int r = a && b ? s->vfs->rename(s->vfs, a, b) : ST_ENOMEM;
    if (r && b) {
        /* whatever the new name had belongs to an older mailbox */
        s->vfs->remove(s->vfs, b);
    }
    free(a);
    free(b);
    return r;
}
