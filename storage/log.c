/*
 * log.c -- the state log's record codec, reader and checkpoint writer.
 *
 * Every record is   u8 type | u8 0 | u16 len | payload[len] | u32 crc32
 * big-endian, the CRC covering everything before it. A reader stops at the
 * first record that is short or fails its CRC: that is a torn tail.
 *
 * One record carries more than its frame: REC_MSGS, the index of a
 * checkpoint, is followed by count fixed-size entries and one CRC over
 * them. Opening a 100,000-message mailbox then checks one CRC over 4.8 MB
 * and decodes in one loop into an array allocated once, instead of
 * framing, checking and applying 100,000 APPEND records (2.5x the bytes).
 * The entries are little-endian, the byte order of nearly every host this
 * runs on, so the decode compiles to plain loads there.
 *
 * Version 3 blocks go further: their checksum is CRC-32C (hardware
 * instructions, crc32c.c) and their entries start at a file offset that
 * is a multiple of 8, so the reader maps the block (st_vmap: a private,
 * copy-on-write view of the file) and, on a little-endian host, uses the
 * entries in place as the st_msg array: nothing is copied or decoded, and
 * a flag change copies only the page it touches. Big-endian hosts and
 * entries of another size decode from the mapping as before.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "st_int.h"

unsigned st_msgs_version = 3;

size_t st_rec_encode(uint8_t *buf, int type, const uint8_t *payload, size_t len)
{
    buf[0] = (uint8_t)type;
    buf[1] = 0;
    st_put16(buf + 2, (uint16_t)len);
    if (len) {
        memmove(buf + 4, payload, len);
    }
    st_put32(buf + 4 + len, st_crc32(0, buf, 4 + len));
    return len + REC_OVERHEAD;
}

/* APPEND payload, 54 bytes. */
#define APPEND_LEN 54
size_t st_rec_append_payload(uint8_t *p, const st_rec_append *a)
{
    const st_msg *m = &a->m;
    st_put32(p + 0, m->uid);
    st_put64(p + 4, m->off);
    st_put16(p + 12, a->hlen);
    st_put32(p + 14, m->dlen);
    p[18] = a->tail;
    st_put32(p + 19, m->size);
    st_put64(p + 23, (uint64_t)m->idate);
    st_put16(p + 31, (uint16_t)m->tz);
    p[33] = m->flags & ST_F_SYSMASK;
    st_put64(p + 34, m->kw);
    st_put64(p + 42, m->modseq);
    st_put32(p + 50, a->crc);
    return APPEND_LEN;
}

void st_rec_append_decode(const uint8_t *p, st_rec_append *a)
{
    st_msg *m = &a->m;
    memset(a, 0, sizeof *a);
    m->uid = st_get32(p + 0);
    m->off = st_get64(p + 4);
    a->hlen = st_get16(p + 12);
    m->dlen = st_get32(p + 14);
    a->tail = p[18];
    m->size = st_get32(p + 19);
    m->idate = (int64_t)st_get64(p + 23);
    m->tz = (int16_t)st_get16(p + 31);
    m->flags = p[33] & ST_F_SYSMASK;
    m->kw = st_get64(p + 34);
    m->modseq = st_get64(p + 42);
    a->crc = st_get32(p + 50);
}

/* Little-endian fields of REC_MSGS entries: on a little-endian host a
 * plain (unaligned-safe) load or store, which -Os also inlines; elsewhere
 * byte by byte. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ST_HOST_LE 1
#else
#define ST_HOST_LE 0
#endif

static inline uint16_t le16(const uint8_t *p)
{
    uint16_t v;
    if (ST_HOST_LE) {
        memcpy(&v, p, 2);
        return v;
    }
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t le32(const uint8_t *p)
{
    uint32_t v;
    if (ST_HOST_LE) {
        memcpy(&v, p, 4);
        return v;
    }
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t le64(const uint8_t *p)
{
    uint64_t v;
    if (ST_HOST_LE) {
        memcpy(&v, p, 8);
        return v;
    }
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    put_le16(p, (uint16_t)v);
    put_le16(p + 2, (uint16_t)(v >> 16));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32(p + 4, (uint32_t)(v >> 32));
}

/* One REC_MSGS entry (ST_MSGS_ENTRY bytes). */
static void msgs_entry_put(uint8_t *p, const st_msg *m, uint64_t off)
{
    put_le32(p + 0, m->uid);
    put_le32(p + 4, m->size);
    put_le64(p + 8, off);
    put_le32(p + 16, m->dlen);
    p[20] = m->flags & ST_F_SYSMASK;
    p[21] = 0;
    put_le16(p + 22, (uint16_t)m->tz);
    put_le64(p + 24, (uint64_t)m->idate);
    put_le64(p + 32, m->kw);
    put_le64(p + 40, m->modseq);
}

/* REC_MSGS record payload: u32 count, u16 entry size, u16 checksum kind
 * (big-endian, like every frame); a version 3 writer adds u64 largest
 * MODSEQ and u64 largest message end of the entries (MSGS_LEN_MAX), so
 * that a reader may use the block before its pass over every entry
 * (st_msgs_verify). The record stays 8-aligned (8 + 24 bytes). */
#define MSGS_LEN 8
#define MSGS_LEN_MAX 24

int st_rec_min_len(int type)
{
    switch (type) {
    case REC_HDR: return 12;
    case REC_APPEND: return APPEND_LEN;
    case REC_FLAGS: return 21;
    case REC_EXPUNGE: return 12;
    case REC_KEYWORD: return 2;
    case REC_RECENT: return 4;
    case REC_MARK: return 0;
    case REC_STATE: return 24;
    case REC_MSGS: return MSGS_LEN;
    default: return 0;
    }
}

/* ---- reader ---- */
void st_logrd_init(st_logrd *r, st_file *f, uint64_t from, uint64_t fsize)
{
    memset(r, 0, sizeof *r);
    r->f = f;
    r->base = from;
    r->fsize = fsize;
}

void st_msgs_release(st_msg *m, st_imap *map)
{
    if (map->p) {
        st_vunmap(map->vfs, map->p, map->len);
    } else {
        free(m);
    }
    memset(map, 0, sizeof *map);
}

void st_logrd_free(st_logrd *r)
{
    free(r->buf);
    r->buf = NULL;
    st_msgs_release(r->msgs, &r->map);
    r->msgs = NULL;
    r->nmsgs = 0;
}

st_msg *st_logrd_take_msgs_map(st_logrd *r, uint32_t *count, st_imap *map)
{
    st_msg *m = r->msgs;
    *count = r->nmsgs;
    *map = r->map;
    memset(&r->map, 0, sizeof r->map);
    r->msgs = NULL;
    r->nmsgs = 0;
    return m;
}

st_msg *st_logrd_take_msgs(st_logrd *r, uint32_t *count)
{
    st_imap map;
    st_msg *m = st_logrd_take_msgs_map(r, count, &map);
    if (map.p) {
        st_msg *c = malloc((size_t)*count * sizeof *c + 1);
        if (c) {
            memcpy(c, m, (size_t)*count * sizeof *c);
        } else {
            *count = 0;
        }
        st_msgs_release(m, &map);
        m = c;
    }
    return m;
}

/* Have at least `need` bytes from buf[i] in the buffer, if the file has
 * them (need <= ST_CHUNK); reads as much as fits. <0: I/O error. */
static int logrd_fill(st_logrd *r, size_t need)
{
    if (r->len - r->i >= need || r->base + r->len >= r->fsize) {
        return 0;
    }
    memmove(r->buf, r->buf + r->i, r->len - r->i);
    r->base += r->i;
    r->len -= r->i;
    r->i = 0;
    uint64_t want = r->fsize - (r->base + r->len);
    if (want > ST_CHUNK - r->len) {
        want = ST_CHUNK - r->len;
    }
    long got = st_vpread(r->f, r->buf + r->len, (size_t)want, r->base + r->len);
    if (got < 0) {
        return (int)got;
    }
    r->len += (size_t)got;
    if ((uint64_t)got < want) {
        r->fsize = r->base + r->len; /* shrank under us */
    }
    return 0;
}

/* Decode k entries of esize bytes at e into out[n...]; returns the new n.
 * An entry whose UID does not grow is left out, as replay leaves out such
 * an APPEND (branch-free: it is overwritten by the next). */
static uint32_t msgs_decode(st_msg *out, uint32_t n, uint32_t *lastp, const uint8_t *e,
                            size_t k, size_t esize)
{
    uint32_t last = *lastp;
    for (size_t j = 0; j < k; j++, e += esize) {
        st_msg *m = &out[n];
        m->uid = le32(e);
        m->size = le32(e + 4);
        m->off = le64(e + 8);
        m->dlen = le32(e + 16);
        m->flags = e[20] & ST_F_SYSMASK;
        m->tz = (int16_t)le16(e + 22);
        m->idate = (int64_t)le64(e + 24);
        m->kw = le64(e + 32);
        m->modseq = le64(e + 40);
        uint32_t ok = m->uid > last;
        last = ok ? m->uid : last;
        n += ok;
    }
    *lastp = last;
    return n;
}

/* On a little-endian host an entry of ST_MSGS_ENTRY bytes is an st_msg:
 * the same fields at the same offsets (the byte after flags is padding). */
_Static_assert(sizeof(st_msg) == ST_MSGS_ENTRY && offsetof(st_msg, uid) == 0 &&
                   offsetof(st_msg, size) == 4 && offsetof(st_msg, off) == 8 &&
                   offsetof(st_msg, dlen) == 16 && offsetof(st_msg, flags) == 20 &&
                   offsetof(st_msg, tz) == 22 && offsetof(st_msg, idate) == 24 &&
                   offsetof(st_msg, kw) == 32 && offsetof(st_msg, modseq) == 40,
               "a REC_MSGS entry is the in-memory st_msg");

/* Largest MODSEQ and message end of decoded entries (the index's
 * HIGHESTMODSEQ and mbox end, before STATE says them). */
static void msgs_maxes(st_logrd *r)
{
    uint64_t hms = 0, end = 0;
    for (uint32_t i = 0; i < r->nmsgs; i++) {
        const st_msg *m = &r->msgs[i];
        hms = m->modseq > hms ? m->modseq : hms;
        end = m->off + m->dlen > end ? m->off + m->dlen : end;
    }
    r->msgs_hms = hms;
    r->msgs_end = end;
}

/* Entries per slice of the mapped block's check: 96 KiB, so that the
 * scan after the CRC of a slice finds it in the cache. */
#define MSGS_SLICE 2048u

/* The pass a mapped block gets before its entries are trusted: CRC-32C of
 * the bytes, UIDs that grow, only system flags (what our writer writes),
 * and, if the record gave them (hms/end not 0), the same largest MODSEQ
 * and message end. m must be the entries as they lie in the file
 * (little-endian host, unmodified). 0 or ST_ECORRUPT. */
int st_msgs_verify(const st_msg *m, uint32_t count, uint32_t crc_want, uint64_t hms_want,
                   uint64_t end_want)
{
    uint32_t crc = 0, last = 0, bad = 0;
    uint64_t hms = 0, mend = 0;
    for (uint32_t i = 0; i < count; i += MSGS_SLICE) {
        uint32_t k = count - i < MSGS_SLICE ? count - i : MSGS_SLICE;
        crc = st_crc32c(crc, m + i, (size_t)k * sizeof *m);
        for (uint32_t j = i; j < i + k; j++) {
            bad |= (m[j].uid <= last) | ((m[j].flags & ~ST_F_SYSMASK) != 0);
            last = m[j].uid;
            hms = m[j].modseq > hms ? m[j].modseq : hms;
            mend = m[j].off + m[j].dlen > mend ? m[j].off + m[j].dlen : mend;
        }
    }
    if (crc != crc_want || bad || (end_want && (hms != hms_want || mend != end_want))) {
        return ST_ECORRUPT;
    }
    return 0;
}

/*
 * A version 3 block (CRC-32C) at the reader's position: map it, check it,
 * and use it in place or decode it (see the top of the file). The reader
 * then continues after the block.
 */
static int logrd_msgs_mapped(st_logrd *r, uint32_t count, size_t esize, uint64_t hms_rec,
                             uint64_t end_rec)
{
    uint64_t at = r->base + r->i;
    size_t body = (size_t)count * esize, n = body + 4;
    uint8_t *mp;
    /* room for appends after the checkpoint to grow the index in place:
     * the commit rule writes a checkpoint before they reach half the
     * block's size, about a third of its entries (address space only
     * until used) */
    size_t extra = r->want_msgs ? ((size_t)count / 2 + 64) * sizeof(st_msg) : 0;
    int rc = st_vmap(r->f, at, n, extra, (void **)&mp);
    if (rc) {
        return rc; /* an I/O error, not damage: the size was checked */
    }
    st_imap map = { mp, n + extra, r->f->vfs };
    /* One pass, a slice at a time: the CRC, and (where the entries may be
     * the index as they lie) whether they can: our writer writes UIDs
     * that grow and only system flags; anything else (a newer or foreign
     * writer) is decoded, which filters. The same pass finds the largest
     * MODSEQ and message end. */
    int in_place = r->want_msgs && ST_HOST_LE && esize == sizeof(st_msg) && ((uintptr_t)mp & 7) == 0;
    if (in_place && r->lazy_ok && end_rec && count) {
        /* used before its pass: the caller runs st_msgs_verify before any
         * entry is changed or leaves the store's hands (box.c, lazy) */
        r->msgs = (st_msg *)(void *)mp;
        r->nmsgs = count;
        r->map = map;
        r->msgs_hms = hms_rec;
        r->msgs_end = end_rec;
        r->lazy_n = count;
        r->lazy_crc = st_get32(mp + body);
        r->base = at + n;
        r->len = r->i = 0;
        return 0;
    }
    uint32_t crc = 0, last = 0, bad = 0;
    uint64_t hms = 0, mend = 0;
    for (uint32_t i = 0; i < count; i += MSGS_SLICE) {
        uint32_t k = count - i < MSGS_SLICE ? count - i : MSGS_SLICE;
        crc = st_crc32c(crc, mp + (size_t)i * esize, (size_t)k * esize);
        if (in_place) {
            const st_msg *m = (const st_msg *)(const void *)mp + i;
            for (uint32_t j = 0; j < k; j++) {
                bad |= (m[j].uid <= last) | ((m[j].flags & ~ST_F_SYSMASK) != 0);
                last = m[j].uid;
                hms = m[j].modseq > hms ? m[j].modseq : hms;
                mend = m[j].off + m[j].dlen > mend ? m[j].off + m[j].dlen : mend;
            }
        }
    }
    if (crc != st_get32(mp + body) || (in_place && !bad && end_rec && (hms != hms_rec || mend != end_rec))) {
        st_msgs_release(NULL, &map);
        return ST_ECORRUPT;
    }
    if (in_place && !bad) {
        r->msgs = (st_msg *)(void *)mp;
        r->nmsgs = count;
        r->map = map;
        r->msgs_hms = hms;
        r->msgs_end = mend;
    } else if (r->want_msgs) {
        st_msg *out = malloc((size_t)count * sizeof *out + 1);
        if (!out) {
            st_msgs_release(NULL, &map);
            return ST_ENOMEM;
        }
        last = 0;
        r->nmsgs = msgs_decode(out, 0, &last, mp, count, esize);
        r->msgs = out;
        msgs_maxes(r);
        st_msgs_release(NULL, &map);
    } else {
        st_msgs_release(NULL, &map);
    }
    /* continue after the block: the buffer starts afresh there */
    r->base = at + n;
    r->len = r->i = 0;
    return 0;
}

/*
 * The block after a REC_MSGS record (payload p): check its checksum and,
 * if the caller wants them, decode the entries into r->msgs, allocated
 * once at its final size (version 3: mapped, see logrd_msgs_mapped).
 * 0, or ST_ECORRUPT if the block is short (torn), fails its checksum or
 * has entries smaller than ours.
 */
static int logrd_msgs(st_logrd *r, const uint8_t *p, size_t plen)
{
    uint32_t count = st_get32(p);
    size_t esize = st_get16(p + 4);
    unsigned check = st_get16(p + 6);
    uint64_t at = r->base + r->i;
    if (esize < ST_MSGS_ENTRY || esize > ST_REC_MAX || check > ST_MSGS_CHECK_CRC32C ||
        (uint64_t)count * esize + 4 > r->fsize - at) {
        return ST_ECORRUPT; /* a block we cannot read, or not all there */
    }
    if (check == ST_MSGS_CHECK_CRC32C) {
        int maxes = plen >= MSGS_LEN_MAX;
        return logrd_msgs_mapped(r, count, esize, maxes ? st_get64(p + 8) : 0, maxes ? st_get64(p + 16) : 0);
    }
    st_msg *out = count && r->want_msgs ? malloc((size_t)count * sizeof *out) : NULL;
    if (count && r->want_msgs && !out) {
        return ST_ENOMEM;
    }
    uint32_t crc = 0, n = 0, last = 0, left = count;
    int r2 = 0;
    while (left && !r2) {
        if ((r2 = logrd_fill(r, esize)) != 0) {
            break;
        }
        size_t k = (r->len - r->i) / esize;
        if (k == 0) {
            r2 = ST_ECORRUPT; /* the file shrank under us */
            break;
        }
        if (k > left) {
            k = left;
        }
        const uint8_t *e = r->buf + r->i;
        crc = st_crc32(crc, e, k * esize);
        if (out) {
            n = msgs_decode(out, n, &last, e, k, esize);
        }
        r->i += k * esize;
        left -= (uint32_t)k;
    }
    if (!r2) {
        r2 = logrd_fill(r, 4);
    }
    if (!r2 && (r->len - r->i < 4 || st_get32(r->buf + r->i) != crc)) {
        r2 = ST_ECORRUPT;
    }
    if (r2) {
        free(out);
        return r2;
    }
    r->i += 4;
    r->msgs = out;
    r->nmsgs = n;
    msgs_maxes(r);
    return 0;
}

/* 1: a record (type, payload, len; *off its offset); 0: clean end of file;
 * ST_ECORRUPT: a torn or garbled record at *off; other <0: I/O error.
 * A REC_MSGS record is returned with its block checked (a bad block is
 * ST_ECORRUPT at the record, with bad_msgs set) and, if want_msgs is set,
 * decoded for st_logrd_take_msgs. */
int st_logrd_next(st_logrd *r, int *type, const uint8_t **payload, size_t *len, uint64_t *off)
{
    if (!r->buf) {
        r->buf = malloc(ST_CHUNK);
        if (!r->buf) {
            return ST_ENOMEM;
        }
    }
    st_msgs_release(r->msgs, &r->map);
    r->msgs = NULL;
    r->nmsgs = 0;
    *off = r->base + r->i;
    if (*off >= r->fsize) {
        return 0;
    }
    /* Make sure a whole maximal record is in the buffer, if the file has it. */
    int rf = logrd_fill(r, ST_REC_MAX + REC_OVERHEAD);
    if (rf) {
        return rf;
    }
    size_t avail = r->len - r->i;
    const uint8_t *p = r->buf + r->i;
    if (avail < REC_OVERHEAD) {
        return ST_ECORRUPT;
    }
    size_t n = st_get16(p + 2);
    if (p[1] != 0 || p[0] == 0 || n > ST_REC_MAX || avail < n + REC_OVERHEAD) {
        return ST_ECORRUPT;
    }
    if (st_crc32(0, p, 4 + n) != st_get32(p + 4 + n)) {
        return ST_ECORRUPT;
    }
    if ((int)n < st_rec_min_len(p[0])) {
        return ST_ECORRUPT;
    }
    *type = p[0];
    *len = n;
    r->i += n + REC_OVERHEAD;
    if (p[0] == REC_MSGS) {
        /* reading the block moves the buffer: the payload handed out is
         * a copy */
        size_t hl = n < MSGS_LEN_MAX ? n : MSGS_LEN_MAX;
        memcpy(r->hdr, p + 4, hl);
        r->lazy_n = 0;
        int rm = logrd_msgs(r, r->hdr, hl);
        if (rm) {
            r->bad_msgs = rm == ST_ECORRUPT;
            return rm;
        }
        *payload = r->hdr;
        return 1;
    }
    *payload = p + 4;
    return 1;
}

/* ---- buffered record writer (checkpoints, compaction) ---- */
void st_logw_flush(st_logw *w)
{
    if (!w->err && w->n) {
        w->err = st_vpwrite(w->f, w->buf, w->n, w->off);
        w->off += w->n;
    }
    w->n = 0;
}

void st_logw_rec(st_logw *w, int type, const uint8_t *payload, size_t len)
{
    if (w->n + len + REC_OVERHEAD > ST_CHUNK) {
        st_logw_flush(w);
    }
    w->n += st_rec_encode(w->buf + w->n, type, payload, len);
}

/* HDR and the keyword table: how every fresh log starts. */
void st_logw_head(st_logw *w, uint32_t uidvalidity, const st_box *src)
{
    uint8_t p[ST_REC_MAX];
    st_put32(p, ST_LOG_MAGIC);
    st_put32(p + 4, st_msgs_version >= 3 ? ST_LOG_VERSION : 2u);
    st_put32(p + 8, uidvalidity);
    st_logw_rec(w, REC_HDR, p, 12);
    for (unsigned i = 0; i < src->nkw; i++) {
        size_t l = strlen(src->kw[i]);
        p[0] = (uint8_t)i;
        memcpy(p + 1, src->kw[i], l);
        st_logw_rec(w, REC_KEYWORD, p, l + 1);
    }
}

/* The block's checksum is taken over each buffer of entries as it is
 * flushed. Version 3 (st_msgs_version): a REC_PAD first if needed so that
 * the entries start at a multiple of 8 in the file, and CRC-32C. */
void st_logw_msgs(st_logw *w, const st_box *src, const uint64_t *noff)
{
    uint8_t p[MSGS_LEN_MAX];
    uint32_t live = 0, crc = 0;
    uint64_t hms = 0, mend = 0;
    int v3 = st_msgs_version >= 3;
    uint32_t (*sum)(uint32_t, const void *, size_t) = v3 ? st_crc32c : st_crc32;
    for (uint32_t i = 0; i < src->count; i++) {
        const st_msg *m = &src->msg[i];
        if (!(m->flags & ST_F_EXPUNGED)) {
            uint64_t e = (noff ? noff[i] : m->off) + m->dlen;
            live++;
            hms = m->modseq > hms ? m->modseq : hms;
            mend = e > mend ? e : mend;
        }
    }
    /* entries start after the MSGS record: REC_OVERHEAD + 8 or 24 */
    uint64_t pos = w->off + w->n;
    if (v3 && pos % 8) {
        uint8_t zero[8] = { 0 };
        st_logw_rec(w, REC_PAD, zero, (size_t)(8 - pos % 8));
    }
    st_put32(p, live);
    st_put16(p + 4, ST_MSGS_ENTRY);
    st_put16(p + 6, v3 ? ST_MSGS_CHECK_CRC32C : ST_MSGS_CHECK_CRC32);
    st_put64(p + 8, hms);
    st_put64(p + 16, mend);
    st_logw_rec(w, REC_MSGS, p, v3 ? MSGS_LEN_MAX : MSGS_LEN);
    size_t from = w->n; /* entries from here in buf are not in crc yet */
    for (uint32_t i = 0; i < src->count; i++) {
        const st_msg *m = &src->msg[i];
        if (m->flags & ST_F_EXPUNGED) {
            continue;
        }
        if (w->n + ST_MSGS_ENTRY > ST_CHUNK) {
            crc = sum(crc, w->buf + from, w->n - from);
            st_logw_flush(w);
            from = 0;
        }
        msgs_entry_put(w->buf + w->n, m, noff ? noff[i] : m->off);
        w->n += ST_MSGS_ENTRY;
    }
    crc = sum(crc, w->buf + from, w->n - from);
    if (w->n + 4 > ST_CHUNK) {
        st_logw_flush(w);
    }
    st_put32(w->buf + w->n, crc);
    w->n += 4;
}

/* STATE: what a fresh log ends with (before MARK). */
void st_logw_state(st_logw *w, const st_box *src, uint64_t mbox_end)
{
    uint8_t p[28];
    st_put32(p, src->uidnext);
    st_put64(p + 4, src->highestmodseq);
    st_put32(p + 12, src->recent_uid);
    st_put64(p + 16, mbox_end);
    /* the seen_below hint, true of src (a reader of 24 bytes skips it);
     * compaction renumbers nothing, so it stays true of its log too */
    st_put32(p + 24, src->seen_below);
    st_logw_rec(w, REC_STATE, p, 28);
}

/*
 * Write `src` as a fresh log: HDR, keywords, the live messages (current
 * flags and MODSEQ) as one MSGS block, STATE, MARK. Written to a temp
 * file, synced, renamed over log_path, directory synced: a crash leaves
 * either the old or the new log, never a mix. The caller holds the mailbox lock and has synced
 * the mbox (the MARK says its bytes are durable).
 */
int st_log_write_snapshot(st_store *s, const char *dir, const char *log_path,
                          uint32_t uidvalidity, const st_box *src,
                          uint64_t mbox_end, uint64_t *size_out)
{
    const st_vfs *v = s->vfs;
    char *tmp = st_cat(log_path, ".tmp");
    st_logw w = { 0 };
    uint8_t p[ST_REC_MAX];
    int r;
    if (!tmp) {
        return ST_ENOMEM;
    }
    w.buf = malloc(ST_CHUNK);
    if (!w.buf) {
        free(tmp);
        return ST_ENOMEM;
    }
    r = v->open(v, tmp, ST_O_WRITE | ST_O_CREATE | ST_O_TRUNC, &w.f);
    if (r) {
        goto out;
    }
    st_logw_head(&w, uidvalidity, src);
    st_logw_msgs(&w, src, NULL);
    st_logw_state(&w, src, mbox_end);
    st_logw_rec(&w, REC_MARK, p, 0);
    st_logw_flush(&w);
    r = w.err;
    if (!r) {
        r = st_vsync(w.f);
    }
    int rc = st_vclose(w.f);
    if (!r) {
        r = rc;
    }
    if (!r) {
        r = v->rename(v, tmp, log_path);
    }
    if (!r) {
        r = v->sync_dir(v, dir);
    }
    if (r) {
        v->remove(v, tmp);
    } else if (size_out) {
        *size_out = w.off;
    }
out:
    free(w.buf);
    free(tmp);
    return r;
}
