/*
 * log.c -- the state log's record codec, reader and checkpoint writer.
 *
 * Every record is   u8 type | u8 0 | u16 len | payload[len] | u32 crc32
 * big-endian, the CRC covering everything before it. A reader stops at the
 * first record that is short or fails its CRC: that is a torn tail.
 */
#include <stdlib.h>
#include <string.h>

#include "st_int.h"

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

void st_logrd_free(st_logrd *r)
{
    free(r->buf);
    r->buf = NULL;
}

/* 1: a record (type, payload, len; *off its offset); 0: clean end of file;
 * ST_ECORRUPT: a torn or garbled record at *off; other <0: I/O error. */
int st_logrd_next(st_logrd *r, int *type, const uint8_t **payload, size_t *len, uint64_t *off)
{
    if (!r->buf) {
        r->buf = malloc(ST_CHUNK);
        if (!r->buf) {
            return ST_ENOMEM;
        }
    }
    *off = r->base + r->i;
    if (*off >= r->fsize) {
        return 0;
    }
    /* Make sure a whole maximal record is in the buffer, if the file has it. */
    if (r->len - r->i < ST_REC_MAX + REC_OVERHEAD && r->base + r->len < r->fsize) {
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
    *payload = p + 4;
    *len = n;
    r->i += n + REC_OVERHEAD;
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
    st_put32(p + 4, ST_LOG_VERSION);
    st_put32(p + 8, uidvalidity);
    st_logw_rec(w, REC_HDR, p, 12);
    for (unsigned i = 0; i < src->nkw; i++) {
        size_t l = strlen(src->kw[i]);
        p[0] = (uint8_t)i;
        memcpy(p + 1, src->kw[i], l);
        st_logw_rec(w, REC_KEYWORD, p, l + 1);
    }
}

/* STATE: what a fresh log ends with (before MARK). */
void st_logw_state(st_logw *w, const st_box *src, uint64_t mbox_end)
{
    uint8_t p[24];
    st_put32(p, src->uidnext);
    st_put64(p + 4, src->highestmodseq);
    st_put32(p + 12, src->recent_uid);
    st_put64(p + 16, mbox_end);
    st_logw_rec(w, REC_STATE, p, 24);
}

/*
 * Write `src` as a fresh log: HDR, keywords, one APPEND per live message
 * (current flags and MODSEQ), STATE, MARK. Written to a temp file, synced,
 * renamed over log_path, directory synced: a crash leaves either the old or
 * the new log, never a mix. The caller holds the mailbox lock and has synced
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
    for (uint32_t i = 0; i < src->count; i++) {
        if (src->msg[i].flags & ST_F_EXPUNGED) {
            continue;
        }
        st_rec_append a;
        memset(&a, 0, sizeof a);
        a.m = src->msg[i];
        st_logw_rec(&w, REC_APPEND, p, st_rec_append_payload(p, &a));
    }
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
