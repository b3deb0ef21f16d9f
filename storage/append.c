/*
 * append.c -- APPEND streamed into the store, and COPY.
 *
 * While the client sends the literal, bytes are converted to disk form
 * (LF, mboxrd-quoted) into memory, or into an anonymous spool file in the
 * user's folder once past ST_APPEND_MEM_MAX. Nothing touches the mailbox
 * until st_append_end(), which takes the lock for just the final write: a
 * client sending one byte a second never blocks others appending to the
 * same mailbox.
 *
 * A watcher (st_store_set_append_watch) is shown the disk bytes turned
 * back into wire form by the reader's own conversion as they are
 * produced, so what it derives from them (MIME offsets, seek points) is
 * exactly what a reader of the stored message would see.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "st_int.h"

struct st_append {
    stbox   *b;
    int64_t  idate;
    int      tz;
    uint8_t  flags;
    uint64_t kw;
    st_enc   enc;       /* wire -> disk conversion state, counts size/dlen */
    char    *mem;       /* disk bytes while small */
    size_t   mlen, mcap;
    st_file *spool;     /* disk bytes once large (unlinked at creation) */
    uint64_t slen;
    int      err;       /* first error: later calls fail with it */
    const st_append_watch *watch; /* the store's watcher, if it wanted this one */
    void    *wst;       /* its state for this message */
    st_reader wire;     /* disk -> wire conversion state for it */
};

void st_store_set_append_watch(st_store *s, const st_append_watch *w)
{
    s->watch = w;
}

static void watch_abort(st_append *a)
{
    if (a->wst) {
        a->watch->abort(a->wst);
        a->wst = NULL;
    }
}

static int spool_open(st_append *a)
{
    st_store *s = a->b->s;
    const st_vfs *v = s->vfs;
    char name[64];
    snprintf(name, sizeof name, ".spool.%ld.%u", (long)getpid(), s->seq++);
    char *path = st_path(a->b->dir, name, NULL);
    if (!path) {
        return ST_ENOMEM;
    }
    int r = v->open(v, path, ST_O_WRITE | ST_O_CREATE | ST_O_EXCL, &a->spool);
    if (!r) {
        /* anonymous from now on: a crash leaves nothing behind */
        v->remove(v, path);
    }
    free(path);
    return r;
}

/* Sink of the encoder: memory, then the spool. */
static int put_store(st_append *a, const char *p, size_t n);

static int put(void *ctx, const char *p, size_t n)
{
    st_append *a = ctx;
    int r = put_store(a, p, n);
    if (!r && a->wst) {
        st_wire_feed(&a->wire, p, n, a->watch->data, a->wst);
    }
    return r;
}

static int put_store(st_append *a, const char *p, size_t n)
{
    int r;
    if (!a->spool && a->mlen + n > ST_APPEND_MEM_MAX) {
        if ((r = spool_open(a)) != 0) {
            return r;
        }
        if (a->mlen && (r = st_vpwrite(a->spool, a->mem, a->mlen, 0)) != 0) {
            return r;
        }
        a->slen = a->mlen;
        free(a->mem);
        a->mem = NULL;
        a->mlen = a->mcap = 0;
    }
    if (a->spool) {
        if ((r = st_vpwrite(a->spool, p, n, a->slen)) != 0) {
            return r;
        }
        a->slen += n;
        return 0;
    }
    if (a->mlen + n > a->mcap) {
        size_t nc = a->mcap ? a->mcap : 4096;
        while (nc < a->mlen + n) {
            nc *= 2;
        }
        char *m = realloc(a->mem, nc);
        if (!m) {
            return ST_ENOMEM;
        }
        a->mem = m;
        a->mcap = nc;
    }
    memcpy(a->mem + a->mlen, p, n);
    a->mlen += n;
    return 0;
}

int st_append_begin(st_box *bx, int64_t idate, int tz, uint8_t flags,
                    uint64_t kw, uint64_t size_hint, st_append **out)
{
    *out = NULL;
    if (bx->deleted) {
        return ST_ENOENT;
    }
    if (size_hint > UINT32_MAX) {
        return ST_ETOOBIG;
    }
    st_append *a = calloc(1, sizeof *a);
    if (!a) {
        return ST_ENOMEM;
    }
    a->b = (stbox *)bx;
    a->idate = idate;
    a->tz = tz;
    a->flags = flags & ST_F_SYSMASK;
    a->kw = kw;
    st_enc_init(&a->enc, put, a);
    if (size_hint > ST_APPEND_MEM_MAX) {
        int r = spool_open(a);
        if (r) {
            free(a);
            return r;
        }
    }
    a->watch = a->b->s->watch;
    if (a->watch) {
        a->wst = a->watch->begin(bx);
        st_wire_init(&a->wire);
        if (a->wst && a->watch->point && a->watch->every) {
            st_reader_track(&a->wire, a->watch->every, a->watch->point, a->wst);
        }
    }
    *out = a;
    return 0;
}

int st_append_data(st_append *a, const void *p, size_t n)
{
    if (a->err) {
        return a->err;
    }
    a->err = st_enc_feed(&a->enc, p, n);
    if (!a->err && (a->enc.size > UINT32_MAX || a->enc.dlen > UINT32_MAX)) {
        a->err = ST_ETOOBIG;
    }
    return a->err;
}

void st_append_abort(st_append *a)
{
    if (!a) {
        return;
    }
    watch_abort(a);
    st_vclose(a->spool);
    free(a->mem);
    free(a);
}

/* Bytes needed before a new "From " line at `end` so that a blank line
 * separates it from what is there (mboxrd readers want a line start; most
 * also want the blank line). */
static int pad_needed(stbox *b, uint64_t end, int *pad)
{
    uint8_t t[2];
    *pad = 0;
    if (end == 0) {
        return 0;
    }
    size_t k = end >= 2 ? 2 : 1;
    int r = st_vread_full(b->mbox, t, k, end - k);
    if (r) {
        return r;
    }
    if (t[k - 1] != '\n') {
        *pad = 2;
    } else if (k == 2 && t[0] != '\n') {
        *pad = 1;
    }
    return 0;
}

/* Write the message at the mbox end and its record. Lock held. */
static int write_locked(st_append *a, uint32_t *uidp)
{
    stbox *b = a->b;
    st_box *bx = &b->pub;
    char hdr[ST_KW_NAME_MAX * 64 + 256];
    uint64_t kw = a->kw;
    int pad, r;
    if (bx->nkw < 64) {
        kw &= ((uint64_t)1 << bx->nkw) - 1;
    }
    uint64_t start = b->mbox_end;
    if ((r = pad_needed(b, start, &pad)) != 0) {
        return r;
    }
    memcpy(hdr, "\n\n", (size_t)pad);
    uint32_t uid = bx->uidnext;
    int hl = st_header_block(hdr + pad, sizeof hdr - (size_t)pad, bx, uid, a->idate, a->flags, kw);
    if (hl < 0) {
        return hl;
    }
    uint64_t dlen = a->enc.dlen;
    int tail = a->enc.last == '\n' ? 1 : 2;
    uint64_t off = start + (uint64_t)pad + (uint64_t)hl;
    uint32_t crc = st_crc32(0, hdr + pad, (size_t)hl);
    if ((r = st_quota_check(b, (uint64_t)pad + (uint64_t)hl + dlen + (uint64_t)tail)) != 0) {
        return r;
    }
    b->dirty_mbox = 1;
    if (!a->spool) {
        /* one write for the whole thing */
        size_t tot = (size_t)pad + (size_t)hl + a->mlen + (size_t)tail;
        char *w = malloc(tot);
        if (!w) {
            return ST_ENOMEM;
        }
        memcpy(w, hdr, (size_t)pad + (size_t)hl);
        if (a->mlen) {
            memcpy(w + pad + hl, a->mem, a->mlen);
        }
        memcpy(w + pad + hl + a->mlen, "\n\n", (size_t)tail);
        crc = st_crc32(0, w + pad, tot - (size_t)pad);
        r = st_vpwrite(b->mbox, w, tot, start);
        free(w);
    } else {
        char *buf = malloc(ST_CHUNK);
        uint64_t at = start + (uint64_t)pad + (uint64_t)hl;
        r = buf ? st_vpwrite(b->mbox, hdr, (size_t)pad + (size_t)hl, start) : ST_ENOMEM;
        for (uint64_t i = 0; !r && i < a->slen;) {
            size_t k = a->slen - i > ST_CHUNK ? ST_CHUNK : (size_t)(a->slen - i);
            r = st_vread_full(a->spool, buf, k, i);
            if (!r) {
                crc = st_crc32(crc, buf, k);
                r = st_vpwrite(b->mbox, buf, k, at);
            }
            i += k;
            at += k;
        }
        if (!r) {
            crc = st_crc32(crc, "\n\n", (size_t)tail);
            r = st_vpwrite(b->mbox, "\n\n", (size_t)tail, at);
        }
        free(buf);
    }
    st_rec_append rec;
    uint8_t p[64];
    memset(&rec, 0, sizeof rec);
    rec.m.uid = uid;
    rec.m.size = (uint32_t)a->enc.size;
    rec.m.off = off;
    rec.m.dlen = (uint32_t)dlen;
    rec.m.flags = a->flags;
    rec.m.tz = (int16_t)a->tz;
    rec.m.idate = a->idate;
    rec.m.kw = kw;
    rec.m.modseq = bx->highestmodseq + 1;
    rec.hlen = (uint16_t)hl;
    rec.tail = (uint8_t)tail;
    rec.crc = crc;
    if (!r) {
        r = st_log_add(b, REC_APPEND, p, st_rec_append_payload(p, &rec));
    }
    if (!r) {
        r = st_msg_push(bx, &rec.m);
        if (r) {
            /* cannot index it now; the record stands and a reopen shows it */
            return r;
        }
    }
    if (r) {
        /* leave the mailbox exactly as it was (disk full, I/O error) */
        st_vtruncate(b->mbox, start);
        return r;
    }
    bx->uidnext = uid + 1;
    bx->highestmodseq = rec.m.modseq;
    b->mbox_end = off + dlen + (uint64_t)tail;
    bx->change++;
    *uidp = uid;
    return 0;
}

int st_append_end(st_append *a, uint32_t *uid)
{
    int r = a->err;
    if (!r) {
        r = st_enc_finish(&a->enc);
    }
    if (!r && (a->enc.size > UINT32_MAX || a->enc.dlen > UINT32_MAX)) {
        r = ST_ETOOBIG;
    }
    if (!r) {
        r = st_box_lock(a->b);
        if (!r) {
            r = write_locked(a, uid);
            if (!r) {
                st_own_add(a->b, *uid);
            }
            st_box_unlock(a->b);
        }
    }
    if (!r && a->wst) {
        /* Ours is the newest UID, so the last entry (outside deliveries
         * found under the lock were indexed before it). Told after the
         * lock is let go: the watcher may write files of its own. */
        st_box *bx = &a->b->pub;
        st_wire_end(&a->wire, a->watch->data, a->wst);
        a->watch->end(a->wst, bx, bx->count - 1);
        a->wst = NULL;
    }
    st_append_abort(a);
    return r;
}

int st_copy(st_box *src, uint32_t idx, st_box *dst, uint32_t *newuid)
{
    stbox *sb = (stbox *)src;
    st_append *a;
    uint64_t kw = 0;
    int r;
    if (idx >= src->count) {
        return ST_EINVAL;
    }
    st_msg m = src->msg[idx];
    if (m.flags & ST_F_EXPUNGED) {
        return ST_ENOENT;
    }
    for (unsigned i = 0; i < src->nkw; i++) {
        if (m.kw & ((uint64_t)1 << i)) {
            int k = st_keyword(dst, src->kw[i], strlen(src->kw[i]), 1);
            if (k < 0) {
                return k;
            }
            kw |= (uint64_t)1 << k;
        }
    }
    if ((r = st_append_begin(dst, m.idate, m.tz, m.flags & ST_F_SYSMASK, kw, m.dlen, &a)) != 0) {
        return r;
    }
    /* the bytes are already in disk form: bypass the encoder */
    char *buf = malloc(ST_CHUNK);
    if (!buf) {
        st_append_abort(a);
        return ST_ENOMEM;
    }
    for (uint64_t i = 0; !r && i < m.dlen;) {
        size_t k = m.dlen - i > ST_CHUNK ? ST_CHUNK : (size_t)(m.dlen - i);
        r = st_vread_full(sb->mbox, buf, k, m.off + i);
        if (!r) {
            r = put(a, buf, k);
            a->enc.last = (unsigned char)buf[k - 1];
        }
        i += k;
    }
    free(buf);
    if (r) {
        st_append_abort(a);
        return r;
    }
    a->enc.dlen = m.dlen;
    a->enc.size = m.size;
    a->enc.bol = 1;
    return st_append_end(a, newuid);
}
