/*
 * box.c -- an open mailbox: loading and replaying the state log, noticing
 * other processes' changes, locking, flag/expunge/keyword records, commit
 * and checkpoints.
 *
 * Concurrency: the daemon and `picoimapd deliver` processes may all write
 * one mailbox. Every mutation takes the mbox file lock, catches up with the
 * log (st_box_lock -> box_sync), appends, and unlocks. Records are applied
 * in log order, so all processes agree.
 *
 * Crash safety of appends: message bytes and their APPEND record are written
 * unsynced; a commit syncs the mbox, then appends a MARK record and syncs
 * the log. Every APPEND before a MARK therefore points to durable bytes.
 * APPENDs after the last MARK may point to torn bytes after a power cut, so
 * the reader checks them against the CRC of the message bytes carried in
 * the record, and cuts the log (and the mbox) at the first that fails: what
 * is cut was never acknowledged, since its commit never finished.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "st_int.h"

/* A repair happened: tell whoever asked (picoimapd check). */
void st_note(stbox *b, const char *what)
{
    if (b->s->note) {
        b->s->note(b->s->note_ctx, b->pub.user, b->pub.name, what);
    }
}

/* ---------------- the in-memory index ---------------- */

/* m's flags changed (or m is new): keep the seen_below hint true. */
static inline void unseen_at(st_box *bx, const st_msg *m)
{
    if (!(m->flags & (ST_F_SEEN | ST_F_EXPUNGED)) && m->uid < bx->seen_below) {
        bx->seen_below = m->uid;
    }
}

int st_msg_push(st_box *bx, const st_msg *m)
{
    stbox *b = (stbox *)bx; /* only cap is used; temp boxes are stbox too */
    if (bx->count == b->cap) {
        uint32_t ncap = b->cap ? b->cap * 2 : 64;
        st_msg *n;
        if (b->map.p) {
            /* the index is a mapped checkpoint block: copy it out once */
            n = malloc((size_t)ncap * sizeof *n);
            if (n) {
                memcpy(n, bx->msg, (size_t)bx->count * sizeof *n);
                st_msgs_release(bx->msg, &b->map);
            }
        } else {
            n = realloc(bx->msg, (size_t)ncap * sizeof *n);
        }
        if (!n) {
            return ST_ENOMEM;
        }
        bx->msg = n;
        b->cap = ncap;
    }
    bx->nexpunged += (m->flags & ST_F_EXPUNGED) != 0;
    bx->msg[bx->count++] = *m;
    unseen_at(bx, m);
    return 0;
}

uint32_t st_box_lower_bound(const st_box *bx, uint32_t uid)
{
    uint32_t lo = 0, hi = bx->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (bx->msg[mid].uid < uid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

long st_box_first_unseen(st_box *bx)
{
    for (uint32_t i = st_box_lower_bound(bx, bx->seen_below); i < bx->count; i++) {
        if (!(bx->msg[i].flags & (ST_F_SEEN | ST_F_EXPUNGED))) {
            bx->seen_below = bx->msg[i].uid;
            return (long)i;
        }
    }
    bx->seen_below = bx->uidnext;
    return -1;
}

long st_box_find(const st_box *bx, uint32_t uid)
{
    uint32_t lo = st_box_lower_bound(bx, uid);
    return lo < bx->count && bx->msg[lo].uid == uid ? (long)lo : -1;
}

static void box_free_index(stbox *b)
{
    st_msgs_release(b->pub.msg, &b->map);
    b->pub.msg = NULL;
    b->pub.count = 0;
    b->pub.nexpunged = 0;
    b->cap = 0;
    for (unsigned i = 0; i < b->pub.nkw; i++) {
        free(b->pub.kw[i]);
        b->pub.kw[i] = NULL;
    }
    b->pub.nkw = 0;
}

static void index_init(stbox *t)
{
    memset(t, 0, sizeof *t);
    t->pub.uidnext = 1;
    t->pub.recent_uid = 1;
}

/* ---------------- applying records ---------------- */

/* A block mapped for a SELECT (lazy) gets its pass here, before any of
 * its entries is changed or used beyond that SELECT's answer: at the next
 * lock, the next command of a session (st_box_verify), or a record of the
 * log that changes an entry. A failed pass breaks the mailbox: it is not
 * kept, and its next load finds the damage and rebuilds from the mbox. */
static void box_unlink(stbox *b);
static int box_open(st_store *s, const char *user, const char *name, st_box **out, int lazy);

static int box_verify(stbox *b)
{
    if (b->broken) {
        return ST_ECORRUPT;
    }
    if (!b->lazy_n) {
        return 0;
    }
    int r = st_msgs_verify(b->pub.msg, b->lazy_n, b->lazy_crc, b->lazy_hms, b->lazy_end);
    b->lazy_n = 0;
    if (r) {
        b->broken = 1;
        b->pub.change++;
        if (b->s) { /* a load's scratch index has none: its retry says it */
            st_note(b, "the state log's checkpoint is damaged");
            /* its holders keep it until they close it; the mailbox is
             * loaded afresh the usual way now, which finds the damage and
             * rebuilds the log from the mbox (kept for the next open) */
            box_unlink(b);
            st_box *nb;
            if (box_open(b->s, b->pub.user, b->pub.name, &nb, 0) == 0) {
                st_box_close(nb);
            }
        }
    }
    return r;
}

int st_box_verify(st_box *bx)
{
    return box_verify((stbox *)bx);
}

/* Apply one record to t's index. Returns 1 if it changed something. */
static int apply(stbox *t, int type, const uint8_t *p, size_t len)
{
    st_box *bx = &t->pub;
    long i;
    switch (type) {
    case REC_HDR:
        bx->uidvalidity = st_get32(p + 8);
        return 0;
    case REC_APPEND: {
        st_rec_append a;
        st_rec_append_decode(p, &a);
        if (a.m.uid == 0 || a.m.uid < bx->uidnext) {
            return 0; /* stale or doubled: UIDs only grow */
        }
        if (st_msg_push(bx, &a.m)) {
            return ST_ENOMEM;
        }
        bx->uidnext = a.m.uid + 1;
        if (a.m.modseq > bx->highestmodseq) {
            bx->highestmodseq = a.m.modseq;
        }
        if (a.m.off + a.m.dlen + a.tail > t->mbox_end) {
            t->mbox_end = a.m.off + a.m.dlen + a.tail;
        }
        return 1;
    }
    case REC_FLAGS: {
        uint64_t ms = st_get64(p + 13);
        if (box_verify(t)) {
            return ST_ECORRUPT;
        }
        if (ms > bx->highestmodseq) {
            bx->highestmodseq = ms;
        }
        if ((i = st_box_find(bx, st_get32(p))) < 0) {
            return 0;
        }
        st_msg *m = &bx->msg[i];
        m->flags = (uint8_t)((m->flags & ST_F_EXPUNGED) | (p[4] & ST_F_SYSMASK));
        m->kw = st_get64(p + 5);
        m->modseq = ms;
        unseen_at(bx, m);
        return 1;
    }
    case REC_EXPUNGE: {
        uint64_t ms = st_get64(p + 4);
        if (box_verify(t)) {
            return ST_ECORRUPT;
        }
        if (ms > bx->highestmodseq) {
            bx->highestmodseq = ms;
        }
        if ((i = st_box_find(bx, st_get32(p))) < 0 || (bx->msg[i].flags & ST_F_EXPUNGED)) {
            return 0;
        }
        bx->msg[i].flags |= ST_F_EXPUNGED;
        bx->nexpunged++;
        bx->msg[i].modseq = ms;
        t->dead_bytes += bx->msg[i].dlen;
        return 1;
    }
    case REC_KEYWORD:
        if (p[0] != bx->nkw || bx->nkw >= CONFIG_MAX_KEYWORDS || len < 2) {
            return 0;
        } else {
            char *n = malloc(len);
            if (!n) {
                return ST_ENOMEM;
            }
            memcpy(n, p + 1, len - 1);
            n[len - 1] = 0;
            bx->kw[bx->nkw++] = n;
            return 1;
        }
    case REC_RECENT:
        if (st_get32(p) > bx->recent_uid) {
            bx->recent_uid = st_get32(p);
            return 1;
        }
        return 0;
    case REC_STATE:
        if (st_get32(p) > bx->uidnext) {
            bx->uidnext = st_get32(p);
        }
        if (st_get64(p + 4) > bx->highestmodseq) {
            bx->highestmodseq = st_get64(p + 4);
        }
        if (st_get32(p + 12) > bx->recent_uid) {
            bx->recent_uid = st_get32(p + 12);
        }
        t->mbox_end = st_get64(p + 16);
        /* the hint, written with the index it is true of (checkpoints and
         * compaction logs put STATE right after their MSGS block); older
         * writers have none: 0 */
        bx->seen_below = len >= 28 ? st_get32(p + 24) : 0;
        return 0;
    default:
        return 0; /* unknown but intact: a newer writer; skip it */
    }
}

/*
 * The entries of a checkpoint's MSGS block, decoded by the log reader
 * (sorted, UIDs growing): like one APPEND record each, but the array is
 * taken as the index itself when the index is empty (a fresh load), so the
 * open of a big mailbox allocates it once and copies nothing. `end` is the
 * log offset after the block. Returns 1 if it changed something, <0 on
 * error; m is consumed either way.
 */
static int apply_msgs(stbox *t, st_msg *m, uint32_t n, st_imap *map, const uint64_t *maxes,
                      uint64_t end)
{
    st_box *bx = &t->pub;
    uint32_t i = 0;
    t->ckpt_size = end;
    while (i < n && m[i].uid < bx->uidnext) {
        i++; /* stale: UIDs only grow */
    }
    if (i == n) {
        st_msgs_release(m, map);
        return 0;
    }
    if (maxes[2] && !(bx->count == 0 && i == 0) &&
        st_msgs_verify(m, n, (uint32_t)maxes[3], maxes[0], maxes[1])) {
        st_msgs_release(m, map); /* not the index itself: checked before use */
        return ST_ECORRUPT;
    }
    uint64_t hms = bx->highestmodseq, mend = t->mbox_end;
    if (i == 0) {
        /* the whole block: the reader found its maxima in its pass */
        hms = maxes[0] > hms ? maxes[0] : hms;
        mend = maxes[1] > mend ? maxes[1] : mend;
    }
    for (uint32_t j = i; i && j < n; j++) {
        hms = m[j].modseq > hms ? m[j].modseq : hms;
        mend = m[j].off + m[j].dlen > mend ? m[j].off + m[j].dlen : mend;
    }
    bx->uidnext = m[n - 1].uid + 1;
    bx->highestmodseq = hms;
    t->mbox_end = mend;
    if (bx->count == 0 && i == 0) {
        st_msgs_release(bx->msg, &t->map);
        bx->msg = m;
        bx->count = n;
        /* a mapped block is the index as it lies, with room after it */
        t->cap = map->p ? (uint32_t)(map->len / sizeof *m) : n;
        t->map = *map;
        memset(map, 0, sizeof *map);
        t->lazy_n = (uint32_t)maxes[2];
        t->lazy_crc = (uint32_t)maxes[3];
        t->lazy_hms = maxes[0];
        t->lazy_end = maxes[1];
        return 1;
    }
    for (; i < n; i++) {
        if (st_msg_push(bx, &m[i])) {
            st_msgs_release(m, map);
            return ST_ENOMEM;
        }
    }
    st_msgs_release(m, map);
    return 1;
}

/* Records read since the last MARK, held until we know they stand. A MSGS
 * record is held as its block's slot in blk[] and its end offset. */
typedef struct pend {
    uint8_t *buf;
    size_t len, cap;
    st_msg **blk;     /* decoded MSGS blocks (NULL once applied) */
    uint32_t *nblk;   /* entries in each */
    st_imap *mblk;    /* the mapping each lies in (p NULL: malloc'd) */
    uint64_t *maxb;   /* per block: largest MODSEQ, largest message end,
                         entries not yet verified (lazy) and their CRC */
    size_t nb, capb;
} pend;

/* Hold the block the log reader just decoded; payload for pend_add. */
static int pend_block(pend *pd, st_logrd *rd, uint8_t *payload)
{
    if (pd->nb == pd->capb) {
        size_t nc = pd->capb ? pd->capb * 2 : 2;
        st_msg **b = realloc(pd->blk, nc * sizeof *b);
        if (b) {
            pd->blk = b;
        }
        uint32_t *c = b ? realloc(pd->nblk, nc * sizeof *c) : NULL;
        if (c) {
            pd->nblk = c;
        }
        st_imap *mp = c ? realloc(pd->mblk, nc * sizeof *mp) : NULL;
        if (mp) {
            pd->mblk = mp;
        }
        uint64_t *mx = mp ? realloc(pd->maxb, nc * 4 * sizeof *mx) : NULL;
        if (!mx) {
            return ST_ENOMEM;
        }
        pd->maxb = mx;
        pd->capb = nc;
    }
    pd->maxb[4 * pd->nb] = rd->msgs_hms;
    pd->maxb[4 * pd->nb + 1] = rd->msgs_end;
    pd->maxb[4 * pd->nb + 2] = rd->lazy_n;
    pd->maxb[4 * pd->nb + 3] = rd->lazy_crc;
    pd->blk[pd->nb] = st_logrd_take_msgs_map(rd, &pd->nblk[pd->nb], &pd->mblk[pd->nb]);
    st_put32(payload, (uint32_t)pd->nb);
    st_put64(payload + 4, rd->base + rd->i);
    pd->nb++;
    return 0;
}

static void pend_free(pend *pd)
{
    for (size_t i = 0; i < pd->nb; i++) {
        st_msgs_release(pd->blk[i], &pd->mblk[i]);
    }
    free(pd->blk);
    free(pd->nblk);
    free(pd->mblk);
    free(pd->maxb);
    free(pd->buf);
}

static int pend_add(pend *pd, uint64_t off, int type, const uint8_t *p, size_t len)
{
    size_t need = 8 + 1 + 2 + len;
    if (pd->len + need > pd->cap) {
        size_t nc = pd->cap ? pd->cap * 2 : 4096;
        while (nc < pd->len + need) {
            nc *= 2;
        }
        uint8_t *n = realloc(pd->buf, nc);
        if (!n) {
            return ST_ENOMEM;
        }
        pd->buf = n;
        pd->cap = nc;
    }
    uint8_t *q = pd->buf + pd->len;
    st_put64(q, off);
    q[8] = (uint8_t)type;
    st_put16(q + 9, (uint16_t)len);
    memcpy(q + 11, p, len);
    pd->len += need;
    return 0;
}

/* Apply pending records with offsets below `cut`; returns changes or <0. */
static int pend_apply(pend *pd, stbox *t, uint64_t cut)
{
    int changed = 0;
    for (size_t i = 0; i < pd->len;) {
        const uint8_t *q = pd->buf + i;
        size_t len = st_get16(q + 9);
        if (st_get64(q) >= cut) {
            break;
        }
        int r;
        if (q[8] == REC_MSGS) {
            uint32_t k = st_get32(q + 11);
            r = apply_msgs(t, pd->blk[k], pd->nblk[k], &pd->mblk[k], &pd->maxb[4 * k],
                           st_get64(q + 15));
            pd->blk[k] = NULL;
        } else {
            r = apply(t, q[8], q + 11, len);
        }
        if (r < 0) {
            return r;
        }
        changed += r;
        i += 11 + len;
    }
    pd->len = 0;
    return changed;
}

/* Does the APPEND record's message have the bytes it claims? */
static int verify_append(st_file *mbox, uint64_t msize, const uint8_t *p)
{
    st_rec_append a;
    st_rec_append_decode(p, &a);
    if (a.m.off < a.hlen || a.m.off + a.m.dlen + a.tail > msize) {
        return 0;
    }
    uint64_t from = a.m.off - a.hlen, to = a.m.off + a.m.dlen + a.tail;
    uint8_t *buf = malloc(ST_CHUNK);
    if (!buf) {
        return ST_ENOMEM;
    }
    uint32_t crc = 0;
    int ok = 1;
    while (from < to) {
        size_t k = to - from > ST_CHUNK ? ST_CHUNK : (size_t)(to - from);
        if (st_vread_full(mbox, buf, k, from)) {
            ok = 0;
            break;
        }
        crc = st_crc32(crc, buf, k);
        from += k;
    }
    free(buf);
    return ok && crc == a.crc;
}

/*
 * Replay the log of t from `from` to `fsize`. On return *good is the end of
 * the records that stand and *trim the mbox offset to cut the mbox back to
 * (UINT64_MAX: leave it). Returns the number of changes or <0.
 */
static int replay(stbox *t, st_file *log, st_file *mbox, uint64_t from, uint64_t fsize,
                  uint64_t *good, uint64_t *trim)
{
    st_logrd rd;
    pend pd = { 0 };
    int type, r, changed = 0;
    const uint8_t *p;
    size_t len;
    uint64_t off = from;
    st_stat ms;
    *trim = UINT64_MAX;
    st_logrd_init(&rd, log, from, fsize);
    rd.want_msgs = 1;
    rd.lazy_ok = t->lazy_ok && from == 0;
    for (;;) {
        r = st_logrd_next(&rd, &type, &p, &len, &off);
        if (r != 1) {
            break;
        }
        if (type == REC_HDR && off != 0) {
            r = ST_ECORRUPT; /* a header in the middle: garbage that passed a CRC */
            break;
        }
        if (type == REC_MARK) {
            if ((r = pend_apply(&pd, t, UINT64_MAX)) < 0) {
                goto out;
            }
            changed += r;
            continue;
        }
        if (type == REC_MSGS) {
            uint8_t ref[12];
            if ((r = pend_block(&pd, &rd, ref)) < 0 ||
                (r = pend_add(&pd, off, type, ref, sizeof ref)) < 0) {
                goto out;
            }
            continue;
        }
        if ((r = pend_add(&pd, off, type, p, len)) < 0) {
            goto out;
        }
    }
    if (r < 0 && r != ST_ECORRUPT) {
        goto out;
    }
    /* r == 0: clean end at fsize; ST_ECORRUPT: torn tail at off */
    uint64_t cut = off;
    if ((r = st_vfstat(mbox, &ms)) < 0) {
        goto out;
    }
    for (size_t i = 0; i < pd.len;) {
        const uint8_t *q = pd.buf + i;
        size_t l = st_get16(q + 9);
        if (q[8] == REC_APPEND) {
            int ok = verify_append(mbox, ms.size, q + 11);
            if (ok < 0) {
                r = ok;
                goto out;
            }
            if (!ok) {
                st_rec_append a;
                st_rec_append_decode(q + 11, &a);
                cut = st_get64(q);
                *trim = a.m.off >= a.hlen ? a.m.off - a.hlen : 0;
                break;
            }
        }
        if (q[8] == REC_MSGS) {
            /* only written into whole, synced files ending in MARK: one
             * without its MARK is not ours to trust, but its messages'
             * bytes are not ours to cut either */
            cut = st_get64(q);
            break;
        }
        i += 11 + l;
    }
    if ((r = pend_apply(&pd, t, cut)) < 0) {
        goto out;
    }
    changed += r;
    /* A checkpoint's block that fails its CRC is not a torn tail (it is
     * only written into whole, synced files): the index is lost, and
     * keeping the log up to it would have the mbox's messages taken for
     * our own torn writes. Nothing stands, so the caller rebuilds from
     * the mbox (X-UIDs keep the UIDs). Only a whole log starts with one. */
    *good = rd.bad_msgs && from == 0 ? 0 : cut;
    r = changed;
out:
    pend_free(&pd);
    st_logrd_free(&rd);
    return r;
}

/* ---------------- log writing ---------------- */

int st_log_add(stbox *b, int type, const uint8_t *payload, size_t len)
{
    uint8_t buf[ST_REC_MAX + REC_OVERHEAD];
    size_t n = st_rec_encode(buf, type, payload, len);
    int r = st_vpwrite(b->log, buf, n, b->log_end);
    if (r) {
        /* a partial record is garbage past log_end: cut it so that the next
         * record does not land behind it */
        st_vtruncate(b->log, b->log_end);
        return r;
    }
    b->log_end += n;
    b->dirty_log = 1;
    return 0;
}

/* ---------------- loading, rebuilding, merging ---------------- */

static int box_sync(stbox *b, int depth);

typedef struct rebuild_ctx {
    stbox *t;         /* the index being built */
    uint32_t *xuid;   /* per message: X-UID or 0 */
    uint32_t cap;
    int err;
} rebuild_ctx;

/* Next keyword name of an X-Keywords value (space, tab or comma separated):
 * sets *n to its length and returns its start, or NULL at the end. */
static const char *kw_next(const char **v, size_t *n)
{
    const char *p = *v;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ',') {
        p++;
    }
    size_t k = 0;
    while (p[k] && p[k] != ' ' && p[k] != '\t' && p[k] != '\n' && p[k] != '\r' && p[k] != ',') {
        k++;
    }
    *v = p + k;
    *n = k;
    return k ? p : NULL;
}

/* Register keyword names from an X-Keywords value; returns the bit mask. */
static uint64_t kw_from_names(st_box *bx, const char *v)
{
    uint64_t mask = 0;
    size_t n;
    for (const char *w; (w = kw_next(&v, &n)) != NULL;) {
        unsigned i;
        for (i = 0; i < bx->nkw; i++) {
            if (strlen(bx->kw[i]) == n && strncasecmp(bx->kw[i], w, n) == 0) {
                break;
            }
        }
        if (i == bx->nkw && n <= ST_KW_NAME_MAX && bx->nkw < CONFIG_MAX_KEYWORDS) {
            char *k = malloc(n + 1);
            if (k) {
                memcpy(k, w, n);
                k[n] = 0;
                bx->kw[bx->nkw++] = k;
            }
        }
        if (i < bx->nkw) {
            mask |= (uint64_t)1 << i;
        }
    }
    return mask;
}

static int rebuild_cb(void *ctx, st_found *f)
{
    rebuild_ctx *c = ctx;
    st_msg m;
    memset(&m, 0, sizeof m);
    m.off = f->off;
    m.dlen = f->dlen;
    m.size = f->size;
    m.idate = f->idate;
    m.flags = f->flags;
    m.kw = kw_from_names(&c->t->pub, f->kw);
    if (c->t->pub.count == c->cap) {
        uint32_t nc = c->cap ? c->cap * 2 : 64;
        uint32_t *n = realloc(c->xuid, nc * sizeof *n);
        if (!n) {
            return c->err = ST_ENOMEM;
        }
        c->xuid = n;
        c->cap = nc;
    }
    c->xuid[c->t->pub.count] = f->ours ? f->xuid : 0;
    if (st_msg_push(&c->t->pub, &m)) {
        return c->err = ST_ENOMEM;
    }
    if (f->off + f->dlen + f->tail > c->t->mbox_end) {
        c->t->mbox_end = f->off + f->dlen + f->tail;
    }
    return 0;
}

static int cmp_uid(const void *a, const void *b)
{
    const st_msg *x = a, *y = b;
    return x->uid < y->uid ? -1 : x->uid > y->uid;
}

/*
 * The state log is missing or unreadable, or the mbox was rewritten behind
 * our back: index the mbox from scratch. X-UIDs written at delivery keep
 * their UIDs while they increase in file order; other messages get new ones
 * after all of them. Flags come from Status/X-Status/X-Keywords. Keeps
 * `uidvalidity` if nonzero. Writes a fresh log. Lock held.
 *
 * `live` (may be NULL) is the index as this process knew it before another
 * program rewrote the file. An X-UID is then kept only where it is still
 * true: the UID is live with the same RFC822.SIZE (the message did not
 * change: a UID names one message forever), or it was never handed out
 * (>= UIDNEXT). A UID already expunged, or a message that changed, gets a
 * new UID above UIDNEXT instead, so UIDs are never reused and UIDVALIDITY
 * stays. A kept message keeps its flags, keywords, MODSEQ and INTERNALDATE
 * from the log, the truth since the headers were last written; a message
 * expunged but not yet compacted stays expunged.
 */
static int rebuild(stbox *b, uint32_t uidvalidity, uint32_t min_uidnext, const st_box *live)
{
    stbox t;
    rebuild_ctx c = { &t, NULL, 0, 0 };
    st_stat ms;
    int garbage, r = 0;
    index_init(&t);
    st_note(b, "rebuilt the state log from the mbox");
    /* kept keyword bits must mean the same names: start from live's table */
    for (unsigned i = 0; live && i < live->nkw && !r; i++) {
        t.pub.kw[i] = st_strdup(live->kw[i]);
        r = t.pub.kw[i] ? 0 : ST_ENOMEM;
        t.pub.nkw = t.pub.kw[i] ? i + 1 : i;
    }
    if (!r) {
        r = st_vfstat(b->mbox, &ms);
    }
    if (!r) {
        r = st_scan_mbox(b->mbox, 0, ms.size, rebuild_cb, &c, &garbage);
    }
    if (!r) {
        r = c.err;
    }
    if (!r) {
        uint32_t last = 0;
        for (uint32_t i = 0; i < t.pub.count; i++) {
            st_msg *m = &t.pub.msg[i];
            if (c.xuid[i] <= last) {
                continue;
            }
            if (live) {
                long j = st_box_find(live, c.xuid[i]);
                const st_msg *o = j >= 0 ? &live->msg[j] : NULL;
                if (o ? o->size != m->size : c.xuid[i] < live->uidnext) {
                    continue;
                }
                if (o) {
                    m->flags = o->flags;
                    m->kw = o->kw;
                    m->modseq = o->modseq;
                    m->idate = o->idate;
                    m->tz = o->tz;
                }
            }
            m->uid = last = c.xuid[i];
        }
        uint32_t next = last + 1 > min_uidnext ? last + 1 : min_uidnext;
        uint64_t hms = live ? live->highestmodseq : 0, newms = hms + 1;
        for (uint32_t i = 0; i < t.pub.count; i++) {
            st_msg *m = &t.pub.msg[i];
            if (!m->uid) {
                m->uid = next++;
            }
            if (!m->modseq) {
                m->modseq = newms;
            }
            if (m->modseq > hms) {
                hms = m->modseq;
            }
        }
        if (t.pub.count) {
            qsort(t.pub.msg, t.pub.count, sizeof *t.pub.msg, cmp_uid);
        }
        t.pub.uidnext = next;
        t.pub.highestmodseq = hms ? hms : 1;
        if (live) {
            t.pub.recent_uid = live->recent_uid;
        }
        if (!uidvalidity) {
            r = st_new_uidvalidity(b->s, b->dir, &uidvalidity);
        }
    }
    /* the MARK in the new log vouches for the mbox bytes: sync them first */
    if (!r) {
        r = st_vsync(b->mbox);
    }
    if (!r) {
        r = st_log_write_snapshot(b->s, b->dir, b->log_path, uidvalidity, &t.pub,
                                  t.mbox_end, NULL);
    }
    free(c.xuid);
    box_free_index(&t);
    return r;
}

/* Fold a freshly loaded index into the live one without moving entries:
 * sessions hold indexes into msg[] until they purge. */
static int merge(stbox *b, stbox *t)
{
    st_box *bx = &b->pub, *tx = &t->pub;
    int changed = 0;
    for (unsigned i = bx->nkw; i < tx->nkw; i++) {
        bx->kw[i] = tx->kw[i];
        tx->kw[i] = NULL;
        bx->nkw = i + 1;
        changed = 1;
    }
    uint32_t j = 0;
    for (uint32_t i = 0; i < bx->count; i++) {
        st_msg *m = &bx->msg[i];
        while (j < tx->count && tx->msg[j].uid < m->uid) {
            j++;
        }
        if (j < tx->count && tx->msg[j].uid == m->uid) {
            const st_msg *n = &tx->msg[j];
            if (n->modseq != m->modseq || n->off != m->off ||
                (n->flags & ST_F_SYSMASK) != (m->flags & ST_F_SYSMASK) || n->kw != m->kw) {
                changed = 1;
            }
            m->flags = (uint8_t)((m->flags & ST_F_EXPUNGED) | (n->flags & ST_F_SYSMASK));
            unseen_at(bx, m);
            m->kw = n->kw;
            m->modseq = n->modseq;
            m->off = n->off;
            m->dlen = n->dlen;
        } else {
            if (!(m->flags & ST_F_EXPUNGED)) {
                m->flags |= ST_F_EXPUNGED; /* gone from the new log: expunged */
                bx->nexpunged++;
                changed = 1;
            }
            if (b->mbox_replaced) {
                m->off = UINT64_MAX; /* its bytes left with the old file */
            }
        }
    }
    for (j = 0; j < tx->count; j++) {
        if (tx->msg[j].uid >= bx->uidnext) {
            if (st_msg_push(bx, &tx->msg[j])) {
                return ST_ENOMEM;
            }
            bx->uidnext = tx->msg[j].uid + 1;
            changed = 1;
        }
    }
    if (tx->uidnext > bx->uidnext) {
        bx->uidnext = tx->uidnext;
    }
    if (tx->highestmodseq > bx->highestmodseq) {
        bx->highestmodseq = tx->highestmodseq;
    }
    if (tx->recent_uid > bx->recent_uid) {
        bx->recent_uid = tx->recent_uid;
    }
    if (tx->uidvalidity != bx->uidvalidity) {
        bx->deleted = 1; /* a different mailbox now: sessions must go */
    }
    b->mbox_end = t->mbox_end;
    b->dead_bytes = t->dead_bytes;
    return changed;
}

/* (Re)read the whole log at log_path. Lock held. */
static int full_load(stbox *b, int depth)
{
    const st_vfs *v = b->s->vfs;
    st_file *log = NULL;
    st_stat ls;
    stbox t;
    uint64_t good, trim;
    int r, fresh = b->log == NULL && b->pub.count == 0 && b->pub.uidvalidity == 0;
    uint64_t ckpt;
    index_init(&t);
    r = v->open(v, b->log_path, ST_O_WRITE, &log);
    if (r == ST_ENOENT) {
        if (depth > 2) {
            return ST_ECORRUPT;
        }
        r = rebuild(b, b->pub.uidvalidity, b->pub.uidnext, NULL);
        return r ? r : full_load(b, depth + 1);
    }
    if (r) {
        return r;
    }
    r = st_vfstat(log, &ls);
    t.lazy_ok = fresh && b->lazy_ok;
    if (!r) {
        r = replay(&t, log, b->mbox, 0, ls.size, &good, &trim);
    }
    if (r == ST_ECORRUPT && t.lazy_ok) {
        /* a block taken unchecked failed its pass (a later record needed
         * an entry): read it again the usual way, which rebuilds */
        box_free_index(&t);
        index_init(&t);
        r = replay(&t, log, b->mbox, 0, ls.size, &good, &trim);
    }
    if (r >= 0 && (t.pub.uidvalidity == 0 || good == 0)) {
        /* no valid header, or a lost checkpoint: the log is useless;
         * rebuild it from the mbox, under the header's UIDVALIDITY if it
         * had one (a first open knows none) */
        uint32_t uidv = b->pub.uidvalidity ? b->pub.uidvalidity : t.pub.uidvalidity;
        uint32_t next = b->pub.uidnext > t.pub.uidnext ? b->pub.uidnext : t.pub.uidnext;
        if (t.pub.uidvalidity) {
            st_note(b, "the state log's checkpoint is damaged");
        }
        st_vclose(log);
        box_free_index(&t);
        if (depth > 2) {
            return ST_ECORRUPT;
        }
        r = rebuild(b, uidv, next, NULL);
        return r ? r : full_load(b, depth + 1);
    }
    if (r >= 0 && good < ls.size) {
        st_note(b, "cut a torn tail off the state log");
        r = st_vtruncate(log, good);
    }
    if (r >= 0 && trim != UINT64_MAX) {
        st_note(b, "cut an unacknowledged message off the mbox");
        r = st_vtruncate(b->mbox, trim);
        b->dirty_mbox = 1;
    }
    if (r < 0) {
        st_vclose(log);
        box_free_index(&t);
        return r;
    }
    ckpt = t.ckpt_size;
    if (fresh) {
        uint32_t cap = t.cap;
        b->pub.msg = t.pub.msg;
        b->pub.count = t.pub.count;
        b->pub.nexpunged = t.pub.nexpunged;
        b->pub.seen_below = t.pub.seen_below;
        b->cap = cap;
        b->map = t.map;
        memcpy(b->pub.kw, t.pub.kw, sizeof t.pub.kw);
        b->pub.nkw = t.pub.nkw;
        b->pub.uidvalidity = t.pub.uidvalidity;
        b->pub.uidnext = t.pub.uidnext;
        b->pub.highestmodseq = t.pub.highestmodseq;
        b->pub.recent_uid = t.pub.recent_uid;
        b->mbox_end = t.mbox_end;
        b->dead_bytes = t.dead_bytes;
        b->lazy_n = t.lazy_n;
        b->lazy_crc = t.lazy_crc;
        b->lazy_hms = t.lazy_hms;
        b->lazy_end = t.lazy_end;
        b->pub.change++;
        memset(&t, 0, sizeof t);
        /* nobody in this process has seen the expunged ones: drop them */
        st_box_purge_only(&b->pub);
    } else {
        r = merge(b, &t);
        box_free_index(&t);
        if (r < 0) {
            st_vclose(log);
            return r;
        }
        if (r) {
            b->pub.change++;
        }
    }
    st_vclose(b->log);
    b->log = log;
    b->log_ino = ls.ino;
    b->log_end = good;
    b->ckpt_size = ckpt;
    b->mbox_replaced = 0;
    (void)depth;
    return 0;
}

/* ---- messages appended to the mbox by someone who does not write our log ---- */

typedef struct tail_ctx {
    stbox *b;
    int n;       /* messages indexed */
    int trim;    /* the tail is not an outside delivery: cut it */
    uint64_t cut; /* where to cut (the start of the first bad message) */
    int err;
} tail_ctx;

static int keyword_add_locked(stbox *b, const char *name, size_t len);

static int tail_cb(void *ctx, st_found *f)
{
    tail_ctx *c = ctx;
    stbox *b = c->b;
    if ((c->n == 0 && f->ours) || !f->valid_from || !f->first_hdr_ok || f->nul ||
        (f->from_ours && !f->ours)) {
        /* our own torn or unlogged write (a writer died before its record),
         * or garbage: never acknowledged, so it goes -- from here on; an
         * outside delivery before it stays. A torn write can keep our From
         * line and lose the X-UID header we always write after it, or
         * leave zero fill. */
        c->trim = 1;
        c->cut = f->start;
        return 1;
    }
    /* keywords named in X-Keywords */
    uint64_t kw = 0;
    const char *v = f->kw;
    size_t n;
    for (const char *w; (w = kw_next(&v, &n)) != NULL;) {
        int k = st_keyword(&b->pub, w, n, 0);
        if (k == ST_ENOENT) {
            k = keyword_add_locked(b, w, n);
        }
        if (k >= 0) {
            kw |= (uint64_t)1 << k;
        }
    }
    st_rec_append a;
    uint8_t p[64];
    memset(&a, 0, sizeof a);
    a.m.uid = b->pub.uidnext;
    a.m.off = f->off;
    a.m.dlen = f->dlen;
    a.m.size = f->size;
    a.m.idate = f->idate;
    a.m.flags = f->flags;
    a.m.kw = kw;
    a.m.modseq = b->pub.highestmodseq + 1;
    a.hlen = f->hlen > 0xffff ? 0xffff : (uint16_t)f->hlen;
    a.tail = f->tail;
    a.crc = f->crc;
    size_t plen = st_rec_append_payload(p, &a);
    if ((c->err = st_log_add(b, REC_APPEND, p, plen)) != 0) {
        return 1;
    }
    if ((c->err = apply(b, REC_APPEND, p, plen)) < 0) {
        return 1;
    }
    c->err = 0;
    c->n++;
    return 0;
}

/* ---- another program rewriting the mbox in place ---- */

/* crc32 of the (up to) ST_FP_LEN bytes of the mbox before `end`. */
static int fp_read(stbox *b, uint64_t end, uint32_t *crc)
{
    uint8_t buf[ST_FP_LEN];
    size_t n = end < ST_FP_LEN ? (size_t)end : ST_FP_LEN;
    int r = st_vread_full(b->mbox, buf, n, end - n);
    *crc = r ? 0 : st_crc32(0, buf, n);
    return r;
}

/*
 * Has the indexed part of the mbox changed under the same inode? Between
 * compactions (which replace the file) the mbox only grows, so the bytes
 * before an old end stay as they were -- unless another program (an
 * editor, formail, mutt syncing a folder) rewrote it in place. Such a
 * rewrite shifts every message after its first change, so the bytes just
 * before the old end differ even when the size is the same or larger:
 * size alone cannot tell, and mtime can be set back. An edit that keeps
 * every length and leaves the last ST_FP_LEN bytes alone is not seen; it
 * moves no message, so the index still points at whole messages.
 * Returns 1 if changed, 0 if not or unknown, <0 on a read error.
 */
static int fp_changed(stbox *b, uint64_t fsize)
{
    uint32_t crc;
    if (!b->fp_valid || b->fp_ino != b->mbox_ino || b->fp_end > b->mbox_end) {
        return 0; /* none yet, another file, or we cut the file ourselves */
    }
    if (b->fp_end > fsize) {
        return 1;
    }
    int r = fp_read(b, b->fp_end, &crc);
    return r ? r : crc != b->fp_crc;
}

/* Take the fingerprint of the file as indexed now. Lock held, index and
 * file checked against each other (box_sync) during this hold. */
static void fp_update(stbox *b)
{
    if (b->fp_valid && b->fp_end == b->mbox_end && b->fp_ino == b->mbox_ino) {
        return;
    }
    b->fp_valid = fp_read(b, b->mbox_end, &b->fp_crc) == 0;
    b->fp_end = b->mbox_end;
    b->fp_ino = b->mbox_ino;
}

static int mbox_tail(stbox *b, int depth)
{
    st_stat ms;
    int r = st_vfstat(b->mbox, &ms);
    if (r) {
        return r;
    }
    int rewritten = ms.size < b->mbox_end;
    if (!rewritten && (rewritten = fp_changed(b, ms.size)) < 0) {
        return rewritten;
    }
    if (rewritten) {
        /* rewritten by another tool (mutt expunging or syncing flags, an
         * editor) or lost: index it again from its headers, keeping
         * UIDVALIDITY, and each UID whose X-UID still names the same
         * message (rebuild) */
        if (depth > 2) {
            return ST_ECORRUPT;
        }
        st_note(b, "the mbox was rewritten in place by another program");
        r = rebuild(b, b->pub.uidvalidity, b->pub.uidnext, &b->pub);
        if (r) {
            return r;
        }
        /* entries left out of the new log point into rewritten bytes:
         * merge voids their offsets, as after a compaction elsewhere */
        b->mbox_replaced = 1;
        b->fp_valid = 0;
        return box_sync(b, depth + 1);
    }
    if (ms.size == b->mbox_end) {
        return 0;
    }
    tail_ctx c = { b, 0, 0, 0, 0 };
    int garbage;
    r = st_scan_mbox(b->mbox, b->mbox_end, ms.size, tail_cb, &c, &garbage);
    if (r < 0) {
        return r;
    }
    if (c.err) {
        return c.err;
    }
    if (c.n == 0 || c.trim) {
        st_note(b, "cut unindexed bytes (an unfinished write) off the mbox");
        /* trim only what is not indexed */
        uint64_t at = c.n && c.cut > b->mbox_end ? c.cut : b->mbox_end;
        r = st_vtruncate(b->mbox, at);
        b->dirty_mbox = 1;
        if (r || c.n == 0) {
            return r;
        }
    }
    b->pub.change++;
    st_note(b, "indexed messages another program appended to the mbox");
    /* clients will see these UIDs now: make them durable at once */
    r = st_vsync(b->mbox);
    if (!r) {
        r = st_log_add(b, REC_MARK, NULL, 0);
    }
    if (!r) {
        r = st_vsync(b->log);
    }
    if (!r) {
        b->dirty_log = 0;
    }
    return r;
}

/* Catch up with the files. Lock held. */
static int box_sync(stbox *b, int depth)
{
    const st_vfs *v = b->s->vfs;
    st_stat ls;
    int r = v->stat(v, b->log_path, &ls);
    if (r == ST_ENOENT || (!r && (!b->log || ls.ino != b->log_ino || ls.size < b->log_end))) {
        r = full_load(b, depth);
    } else if (!r && ls.size > b->log_end) {
        uint64_t good, trim;
        r = replay(b, b->log, b->mbox, b->log_end, ls.size, &good, &trim);
        if (r > 0) {
            b->pub.change++;
        }
        if (r >= 0) {
            r = 0;
            b->log_end = good;
            if (good < ls.size) {
                st_note(b, "cut a torn tail off the state log");
                r = st_vtruncate(b->log, good);
            }
            if (!r && trim != UINT64_MAX) {
                st_note(b, "cut an unacknowledged message off the mbox");
                r = st_vtruncate(b->mbox, trim);
                b->dirty_mbox = 1;
            }
        }
    }
    if (r) {
        return r;
    }
    r = mbox_tail(b, depth);
    if (!r) {
        b->fp_synced = 1;
    }
    return r;
}

/* ---------------- locking ---------------- */

static void box_drain(stbox *b);

int st_box_lock(stbox *b)
{
    const st_vfs *v = b->s->vfs;
    int r;
    if (b->cphase) {
        box_drain(b); /* the commit in flight holds the lock; no change
                         may be made before it ends */
    }
    if (b->pub.deleted) {
        return ST_ENOENT;
    }
    if (!b->locked && (r = box_verify(b)) != 0) {
        return r; /* every change and catch-up starts from checked entries */
    }
    if (b->locked++) {
        return 0;
    }
    for (;;) {
        unsigned waited = 0;
        while ((r = st_vlock(b->mbox, ST_LOCK_EX, 0)) == ST_EBUSY && waited < ST_LOCK_WAIT_MS) {
            st_sleep_ms(1);
            waited++;
        }
        if (r) {
            b->locked = 0;
            return r;
        }
        st_stat ms;
        r = v->stat(v, b->mbox_path, &ms);
        if (r == 0 && ms.ino == b->mbox_ino) {
            break;
        }
        st_vlock(b->mbox, ST_LOCK_UN, 0);
        if (r) {
            b->locked = 0;
            if (r == ST_ENOENT) {
                b->pub.deleted = 1;
            }
            return r;
        }
        /* replaced under us (compaction elsewhere): follow the new file */
        st_file *nf;
        if ((r = v->open(v, b->mbox_path, ST_O_WRITE, &nf)) != 0) {
            b->locked = 0;
            return r;
        }
        st_vclose(b->mbox);
        b->mbox = nf;
        b->mbox_ino = ms.ino;
        b->mbox_replaced = 1;
        b->need_recover = 1;
    }
    /* a compaction cut short (crash, killed process) must be finished or
     * undone before the log is read against the mbox */
    r = b->need_recover ? st_compact_recover(b) : 0;
    if (!r) {
        b->need_recover = 0;
        r = box_sync(b, 0);
    }
    if (r) {
        st_box_unlock(b);
    }
    return r;
}

void st_box_unlock(stbox *b)
{
    if (b->locked > 0 && --b->locked == 0) {
        /* the file is as indexed (our own writes included) while we hold
         * the lock: remember how it ends, for st_box_refresh */
        if (b->fp_synced) {
            fp_update(b);
            b->fp_synced = 0;
        }
        st_vlock(b->mbox, ST_LOCK_UN, 0);
    }
}

/* ---------------- public ---------------- */

/* The mailbox in s->boxes, open or kept after its last close. */
static stbox *find_box(st_store *s, const char *user, const char *name)
{
    for (stbox *b = s->boxes; b; b = b->next) {
        if (!b->pub.deleted && strcmp(b->pub.user, user) == 0 && strcmp(b->pub.name, name) == 0) {
            return b;
        }
    }
    return NULL;
}

/* Open ones only: a kept one may be behind the files until its reopen
 * refreshes it. */
stbox *st_find_open(st_store *s, const char *user, const char *name)
{
    stbox *b = find_box(s, user, name);
    return b && b->refs ? b : NULL;
}

static void box_destroy(stbox *b);

static void box_unlink(stbox *b)
{
    for (stbox **pp = &b->s->boxes; *pp; pp = &(*pp)->next) {
        if (*pp == b) {
            *pp = b->next;
            break;
        }
    }
}

/* The mailbox went away (deleted, renamed): open handles see `deleted`;
 * a kept index goes. */
void st_mark_gone(st_store *s, const char *user, const char *name)
{
    stbox *b = find_box(s, user, name);
    if (b && !b->refs) {
        box_unlink(b);
        box_destroy(b);
    } else if (b) {
        b->pub.deleted = 1;
        b->pub.change++;
    }
}

static void box_destroy(stbox *b)
{
    box_drain(b); /* its descriptors are in the sync in flight */
    free(b->own);
    st_compact_job_free(b);
    st_meta_free(b->meta);
    box_free_index(b);
    st_vclose(b->mbox);
    st_vclose(b->log);
    free(b->dir);
    free(b->mbox_path);
    free(b->log_path);
    free(b->pub.name);
    free(b->pub.user);
    free(b);
}

static int box_open(st_store *s, const char *user, const char *name, st_box **out, int lazy)
{
    const st_vfs *v = s->vfs;
    stbox *b = find_box(s, user, name);
    st_stat ms;
    int r;
    *out = NULL;
    if (b && !b->refs) {
        /* kept since its last close: catch up with what others did
         * meanwhile (cheap when nothing changed) instead of reloading */
        b->refs = 1;
        b->closed_seq = 0;
        r = st_box_refresh(&b->pub);
        if (r < 0 || b->pub.deleted) {
            box_unlink(b);
            box_destroy(b);
            b = NULL; /* gone or broken: open it as new */
        } else {
            /* no session holds message indexes: drop what was expunged */
            st_box_purge_only(&b->pub);
            *out = &b->pub;
            return 0;
        }
    } else if (b) {
        b->refs++;
        *out = &b->pub;
        return 0;
    }
    b = calloc(1, sizeof *b);
    if (!b) {
        return ST_ENOMEM;
    }
    index_init(b);
    b->s = s;
    b->refs = 1;
    b->pub.name = st_strdup(name);
    b->pub.user = st_strdup(user);
    r = b->pub.name && b->pub.user ? 0 : ST_ENOMEM;
    if (!r) {
        r = st_box_paths(s, user, name, &b->dir, &b->mbox_path, &b->log_path);
    }
    if (!r && strcmp(name, "INBOX") == 0) {
        r = st_inbox_heal(s, user);
    }
    if (!r) {
        r = v->open(v, b->mbox_path, ST_O_WRITE, &b->mbox);
    }
    if (!r) {
        r = st_vfstat(b->mbox, &ms);
    }
    if (!r) {
        b->mbox_ino = ms.ino;
        b->need_recover = 1;
        b->lazy_ok = lazy;
        r = st_box_lock(b);
        b->lazy_ok = 0;
    }
    if (r) {
        box_destroy(b);
        return r;
    }
    st_box_unlock(b);
    b->next = s->boxes;
    s->boxes = b;
    *out = &b->pub;
    return 0;
}

int st_box_open_lazy(st_store *s, const char *user, const char *name, st_box **out)
{
    return box_open(s, user, name, out, 1);
}

int st_box_open(st_store *s, const char *user, const char *name, st_box **out)
{
    int r = box_open(s, user, name, out, 0);
    if (r || box_verify((stbox *)*out) == 0) {
        return r;
    }
    /* A kept or shared index whose pass failed: no longer in the store's
     * list (box_verify), so this load is afresh, finds the damage in the
     * file and rebuilds. */
    st_box_close(*out);
    *out = NULL;
    return box_open(s, user, name, out, 0);
}

unsigned st_keep_closed_max = ST_KEEP_CLOSED_MAX;
uint64_t st_keep_closed_bytes = ST_KEEP_CLOSED_BYTES;

/* Memory a kept mailbox holds (its index and keyword names). */
static uint64_t box_mem(const stbox *b)
{
    /* a mapped index's room to grow is address space, not memory */
    uint64_t n = sizeof *b + (uint64_t)(b->map.p ? b->pub.count : b->cap) * sizeof(st_msg);
    for (unsigned i = 0; i < b->pub.nkw; i++) {
        n += strlen(b->pub.kw[i]) + 1;
    }
    return n;
}

/* b's last st_box_open() was closed: keep it for a reopen, then let the
 * least recently closed go until the kept ones fit the bounds. */
static void keep_closed(stbox *b)
{
    st_store *s = b->s;
    /* appends doubled the array: a kept index holds only what it needs */
    if (b->pub.count == 0) {
        st_msgs_release(b->pub.msg, &b->map);
        b->pub.msg = NULL;
        b->cap = 0;
    } else if (b->cap > b->pub.count && !b->map.p) {
        st_msg *m = realloc(b->pub.msg, (size_t)b->pub.count * sizeof *m);
        if (m) {
            b->pub.msg = m;
            b->cap = b->pub.count;
        }
    }
    /* the MIME cache file's reader goes: it holds a window of the file,
     * and what it would save is the next reader's to find out (meta.c
     * checks every record anyway) */
    st_meta_free(b->meta);
    b->meta = NULL;
    b->closed_seq = ++s->close_seq;
    st_keep_trim(s);
}

void st_keep_trim(st_store *s)
{
    for (;;) {
        unsigned n = 0;
        uint64_t bytes = 0;
        stbox *oldest = NULL;
        for (stbox *k = s->boxes; k; k = k->next) {
            /* one whose compaction goes on in slices stays until the job
             * ends (compact.c bounds those; the work then trims again) */
            if (k->closed_seq && !k->cjob) {
                n++;
                bytes += box_mem(k);
                if (!oldest || k->closed_seq < oldest->closed_seq) {
                    oldest = k;
                }
            }
        }
        if (!oldest || (n <= st_keep_closed_max && bytes <= st_keep_closed_bytes)) {
            return;
        }
        box_unlink(oldest);
        box_destroy(oldest);
    }
}

int st_box_dirty(const st_box *bx)
{
    const stbox *b = (const stbox *)bx;
    return b->dirty_log || b->dirty_mbox || b->cphase;
}

void st_box_ref(st_box *bx)
{
    ((stbox *)bx)->refs++;
}

void st_box_close(st_box *bx)
{
    stbox *b = (stbox *)bx;
    if (!b || --b->refs > 0) {
        return;
    }
    if (b->broken) {
        box_unlink(b); /* done at the failed pass already, unless a load's */
        box_destroy(b); /* its next load rebuilds */
        return;
    }
    if (b->dirty_log || b->dirty_mbox) {
        st_box_commit(bx);
    }
    /* nobody here needs the expunged entries any more: a good moment to
     * reclaim their bytes (best effort; the store is whole either way) */
    st_box_purge_only(bx);
    st_box_maybe_compact(bx);
    if (b->pub.deleted || b->dirty_log || b->dirty_mbox) {
        box_unlink(b);
        box_destroy(b); /* gone, or its commit failed: nothing worth keeping */
        return;
    }
    keep_closed(b);
}

void st_box_free_all(st_store *s)
{
    while (s->boxes) {
        stbox *b = s->boxes;
        s->boxes = b->next;
        box_destroy(b);
    }
}

int st_box_refresh(st_box *bx)
{
    stbox *b = (stbox *)bx;
    const st_vfs *v = b->s->vfs;
    st_stat ls, ms;
    if (b->pub.deleted) {
        return 0;
    }
    /* the cheap path: both files exactly as we left them, and the bytes
     * before the mbox's end too (a rewrite in place to the same size) */
    int r1 = v->stat(v, b->log_path, &ls);
    int r2 = v->stat(v, b->mbox_path, &ms);
    if (!r1 && !r2 && ls.ino == b->log_ino && ls.size == b->log_end &&
        ms.ino == b->mbox_ino && ms.size == b->mbox_end && fp_changed(b, ms.size) == 0) {
        return 0;
    }
    if (r2 == ST_ENOENT) {
        b->pub.deleted = 1;
        b->pub.change++;
        return 1;
    }
    uint64_t before = b->pub.change;
    int r = st_box_lock(b);
    if (r == ST_EBUSY) {
        return 0; /* someone is writing; look again next turn */
    }
    if (r == ST_ENOENT) {
        return 1;
    }
    if (r) {
        return r;
    }
    st_box_unlock(b);
    return b->pub.change != before;
}

uint64_t st_ckpt_min = ST_LOG_CKPT_MIN;

static uint64_t snapshot_estimate(const st_box *bx)
{
    uint64_t live = 0;
    for (uint32_t i = 0; i < bx->count; i++) {
        live += !(bx->msg[i].flags & ST_F_EXPUNGED);
    }
    return 64 + (uint64_t)bx->nkw * (ST_KW_NAME_MAX / 4 + REC_OVERHEAD) + REC_OVERHEAD + 12 +
           live * ST_MSGS_ENTRY;
}

/* Rewrite the log as a checkpoint (HDR, keywords, one MSGS block, STATE,
 * MARK) and follow the new file. Lock held, mbox synced. */
static int box_checkpoint(stbox *b)
{
    st_box *bx = &b->pub;
    uint64_t size;
    int r = st_log_write_snapshot(b->s, b->dir, b->log_path, bx->uidvalidity, bx, b->mbox_end, &size);
    if (r) {
        return r;
    }
    const st_vfs *v = b->s->vfs;
    st_file *nl;
    st_stat ls;
    if ((r = v->open(v, b->log_path, ST_O_WRITE, &nl)) != 0) {
        return r;
    }
    if ((r = st_vfstat(nl, &ls)) != 0) {
        st_vclose(nl);
        return r;
    }
    st_vclose(b->log);
    b->log = nl;
    b->log_ino = ls.ino;
    b->log_end = ls.size;
    b->ckpt_size = ls.size;
    return 0;
}

/* Expunge entry m: an EXPUNGE record, then the index. With `anyway` the
 * index changes even if the record could not be written (a failed
 * commit's take-back, which rewrites the log next). Lock held. */
static int expunge_entry(stbox *b, st_msg *m, int anyway)
{
    st_box *bx = &b->pub;
    uint64_t ms = bx->highestmodseq + 1;
    uint8_t p[12];
    st_put32(p, m->uid);
    st_put64(p + 4, ms);
    int r = st_log_add(b, REC_EXPUNGE, p, sizeof p);
    if (!r || anyway) {
        m->flags |= ST_F_EXPUNGED;
        bx->nexpunged++;
        m->modseq = ms;
        bx->highestmodseq = ms;
        b->dead_bytes += m->dlen;
        bx->change++;
    }
    return r;
}

void st_own_add(stbox *b, uint32_t uid)
{
    if (b->nown == b->capown) {
        uint32_t cap = b->capown ? 2 * b->capown : 8;
        uint32_t *n = realloc(b->own, cap * sizeof *n);
        if (!n) {
            b->own_lost = 1;
            return;
        }
        b->own = n;
        b->capown = cap;
    }
    b->own[b->nown++] = uid;
}

/* A commit failed: nobody was told that the messages we appended since
 * the last good one are stored (their APPEND, COPY, delivery answers an
 * error), so they go. In memory they are expunged at once (sessions that
 * were shown them get an EXPUNGE; UIDNEXT stays past them). On disk an
 * EXPUNGE record each, then a fresh log without them: a sync that failed
 * may have lost log pages that a later fsync would not report (Linux
 * marks them clean), so the log is rewritten from memory rather than
 * trusted. If that fails too, the EXPUNGE records wait for the next
 * commit, as every other change of the failed one does. The lock is held. */
static void take_back(stbox *b)
{
    st_box *bx = &b->pub;
    int any = 0;
    for (uint32_t k = 0; k < b->nown; k++) {
        long i = st_box_find(bx, b->own[k]);
        if (i < 0 || (bx->msg[i].flags & ST_F_EXPUNGED)) {
            continue;
        }
        (void)expunge_entry(b, &bx->msg[i], 1);
        any = 1;
    }
    b->nown = 0;
    if (b->own_lost) {
        st_note(b, "a failed commit could not take back every unacknowledged message");
        b->own_lost = 0;
    }
    if (any && box_checkpoint(b) == 0) {
        b->dirty_log = 0;
        st_note(b, "took back messages whose commit failed");
    }
}

int st_box_checkpoint(st_box *bx)
{
    stbox *b = (stbox *)bx;
    int r = st_box_commit(bx);
    if (r || b->log_end == b->ckpt_size) {
        return r; /* nothing after the checkpoint */
    }
    if ((r = st_box_lock(b)) != 0) {
        return r;
    }
    if (b->log_end != b->ckpt_size) {
        r = box_checkpoint(b);
    }
    st_box_unlock(b);
    return r;
}

/* The end of every commit: r is what its syncs returned. Called with the
 * lock held; releases it. */
static int commit_end(stbox *b, int r)
{
    if (!r) {
        b->dirty_log = b->dirty_mbox = 0;
        uint64_t est = snapshot_estimate(&b->pub);
        if (b->log_end > st_ckpt_min &&
            (b->log_end > 2 * est || b->log_end - b->ckpt_size > b->ckpt_size / ST_CKPT_TAIL_DIV)) {
            /* checkpoint: replay stays short. Twice what a fresh log would
             * take (expunges, flag changes), or records after the
             * checkpoint of a quarter of its size (appends: a log of
             * appends alone never passes the first test). Since the block
             * is mapped and used in place (log.c), an APPEND record costs
             * some 10 times its entry to replay, so the tail, not the
             * block, is most of an open: a quarter of the block's size
             * keeps the open of 100,000 messages within a few ms (half
             * did when the block was decoded too). A checkpoint thus
             * follows at least a quarter of its size in records: the
             * log's bytes at most quintuple -- 4 bytes of checkpoint per
             * record byte, 7 % of the 4 KiB page every commit dirties
             * anyway for its 70-byte APPEND (see README). A version 1 log
             * (ckpt_size 0) gets its first one at its first commit.
             * Failure is harmless (the old log is intact), so it is not
             * reported. */
            box_checkpoint(b);
        }
        b->nown = 0;
        b->own_lost = 0;
    } else {
        take_back(b);
    }
    st_box_unlock(b);
    return r;
}

/* Sync f for b's commit, which then is in phase ph: 1 when the sync was
 * started and is in flight (async: the vfs can, and the caller may wait
 * for it through st_store_sync_reap), else 0 with its result in *rc. */
static int commit_sync(stbox *b, st_file *f, int ph, int async, int *rc)
{
    const st_vfs *v = b->s->vfs;
    if (CONFIG_COMMIT_ASYNC && async && v->sync_start && v->sync_start(f, b) == 0) {
        b->cphase = ph;
        return 1;
    }
    *rc = st_vsync(f);
    return 0;
}

/* Run b's commit on from the end of phase ph's sync (ST_CP_NONE: from its
 * start), whose result was r. The mbox first: the MARK vouches for every
 * byte the log points to, including other processes' (every path that
 * indexes new mbox bytes, ours or an outside writer's, sets dirty_mbox). A
 * flag change or an expunge alone leaves the mbox as it was synced: one
 * fsync, not two. Returns 1 while a sync is in flight, else the result. */
static int commit_run(stbox *b, int ph, int r, int async)
{
    for (;;) {
        if (!r && ph == ST_CP_NONE && b->dirty_mbox) {
            if (commit_sync(b, b->mbox, ST_CP_MBOX, async, &r)) {
                return 1;
            }
            ph = ST_CP_MBOX;
        } else if (!r && ph != ST_CP_LOG) {
            r = st_log_add(b, REC_MARK, NULL, 0);
            if (!r && commit_sync(b, b->log, ST_CP_LOG, async, &r)) {
                return 1;
            }
            ph = ST_CP_LOG;
        } else {
            return commit_end(b, r);
        }
    }
}

/* The vfs's word that a sync begun by commit_sync ended. */
static void sync_done(void *ctx, void *tag, int rc)
{
    (void)ctx;
    stbox *b = tag;
    int ph = b->cphase;
    b->cphase = ST_CP_NONE;
    int r = commit_run(b, ph, rc, 1);
    if (r != 1) {
        b->s->inflight--;
        if (b->s->on_commit) {
            b->s->on_commit(b->s->on_commit_ctx, &b->pub, r);
        }
    }
}

/* Wait for b's commit in flight, if any, to end. */
static void box_drain(stbox *b)
{
    const st_vfs *v = b->s->vfs;
    while (CONFIG_COMMIT_ASYNC && b->cphase) {
        v->sync_reap(v, 1, sync_done, NULL);
    }
}

/* Both commits: nothing to do, or lock and run it (async: may leave it
 * in flight, 1). */
static int commit_begin(stbox *b, int async)
{
    int r;
    if (!b->dirty_log && !b->dirty_mbox) {
        return 0;
    }
    if (b->pub.deleted) {
        return ST_ENOENT;
    }
    if ((r = st_box_lock(b)) != 0) {
        return r;
    }
    return commit_run(b, ST_CP_NONE, 0, async);
}

int st_box_commit(st_box *bx)
{
    stbox *b = (stbox *)bx;
    box_drain(b);
    return commit_begin(b, 0);
}

int st_box_commit_start(st_box *bx)
{
    stbox *b = (stbox *)bx;
    if (!CONFIG_COMMIT_ASYNC) {
        return st_box_commit(bx);
    }
    if (b->cphase) {
        return 1; /* nothing changed since it began (st_box_lock drains) */
    }
    int r = commit_begin(b, b->s->async);
    if (r == 1) {
        b->s->inflight++;
    }
    return r;
}

int st_box_commit_busy(const st_box *bx)
{
    return ((const stbox *)bx)->cphase != ST_CP_NONE;
}

void st_store_set_async(st_store *s, int on, void (*cb)(void *ctx, st_box *b, int rc), void *ctx)
{
    s->async = CONFIG_COMMIT_ASYNC && on && s->vfs->sync_start && s->vfs->sync_reap;
    s->on_commit = cb;
    s->on_commit_ctx = ctx;
}

int st_store_sync_fd(st_store *s)
{
    return s->vfs->sync_fd ? s->vfs->sync_fd(s->vfs) : -1;
}

int st_store_sync_reap(st_store *s, int wait)
{
    /* even with nothing in flight: the reap also clears a wakeup that
     * came after a wait for a commit (box_drain) had reaped its sync */
    if (!CONFIG_COMMIT_ASYNC || !s->vfs->sync_reap) {
        return 0;
    }
    return s->vfs->sync_reap(s->vfs, wait && s->inflight, sync_done, NULL);
}

/* The core's purge point: every session has been told about the expunged
 * messages, so their entries (and, past the threshold, their bytes) go. */
void st_box_purge(st_box *bx)
{
    st_box_purge_only(bx);
    st_box_maybe_compact(bx);
}

void st_box_purge_only(st_box *bx)
{
    /* Nothing moves before the first expunged entry: skip that prefix
     * rather than copy every entry onto itself (after a fresh load of
     * 100,000 messages with none expunged, that copy was 5 % of the open). */
    uint32_t i = 0;
    if (bx->nexpunged == 0) {
        return; /* nothing to drop: msg[] is not even read */
    }
    while (i < bx->count && !(bx->msg[i].flags & ST_F_EXPUNGED)) {
        i++;
    }
    uint32_t j = i;
    for (; i < bx->count; i++) {
        if (!(bx->msg[i].flags & ST_F_EXPUNGED)) {
            bx->msg[j++] = bx->msg[i];
        }
    }
    bx->nexpunged = 0;
    if (j != bx->count) {
        bx->count = j;
        bx->change++;
    }
}

int st_box_set_recent(st_box *bx, uint32_t uid)
{
    stbox *b = (stbox *)bx;
    uint8_t p[4];
    int r;
    if (uid <= bx->recent_uid) {
        return 0;
    }
    if ((r = st_box_lock(b)) != 0) {
        return r;
    }
    if (uid > bx->recent_uid) {
        st_put32(p, uid);
        r = st_log_add(b, REC_RECENT, p, 4);
        if (!r) {
            bx->recent_uid = uid;
        }
    }
    st_box_unlock(b);
    return r;
}

int st_set_flags(st_box *bx, uint32_t idx, uint8_t flags, uint64_t kw)
{
    stbox *b = (stbox *)bx;
    uint8_t p[21];
    int r;
    if (idx >= bx->count) {
        return ST_EINVAL;
    }
    flags &= ST_F_SYSMASK;
    if (bx->nkw < 64) {
        kw &= ((uint64_t)1 << bx->nkw) - 1;
    }
    if ((r = st_box_lock(b)) != 0) {
        return r;
    }
    st_msg *m = &bx->msg[idx];
    if ((m->flags & ST_F_EXPUNGED) || ((m->flags & ST_F_SYSMASK) == flags && m->kw == kw)) {
        st_box_unlock(b);
        return 0;
    }
    uint64_t ms = bx->highestmodseq + 1;
    st_put32(p, m->uid);
    p[4] = flags;
    st_put64(p + 5, kw);
    st_put64(p + 13, ms);
    r = st_log_add(b, REC_FLAGS, p, sizeof p);
    if (!r) {
        m->flags = flags;
        m->kw = kw;
        m->modseq = ms;
        bx->highestmodseq = ms;
        bx->change++;
        unseen_at(bx, m);
    }
    st_box_unlock(b);
    return r;
}

int st_expunge(st_box *bx, uint32_t idx)
{
    stbox *b = (stbox *)bx;
    int r;
    if (idx >= bx->count) {
        return ST_EINVAL;
    }
    if ((r = st_box_lock(b)) != 0) {
        return r;
    }
    st_msg *m = &bx->msg[idx];
    if (m->flags & ST_F_EXPUNGED) {
        st_box_unlock(b);
        return 0;
    }
    r = expunge_entry(b, m, 0);
    st_box_unlock(b);
    return r;
}

/* Add a keyword; the lock is held and the name is known to be new. */
static int keyword_add_locked(stbox *b, const char *name, size_t len)
{
    st_box *bx = &b->pub;
    uint8_t p[ST_KW_NAME_MAX + 1];
    if (len == 0 || len > ST_KW_NAME_MAX) {
        return ST_EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= ' ' || c >= 127) {
            return ST_EINVAL; /* would break X-Keywords */
        }
    }
    if (bx->nkw >= CONFIG_MAX_KEYWORDS) {
        return ST_EFULL;
    }
    char *n = malloc(len + 1);
    if (!n) {
        return ST_ENOMEM;
    }
    memcpy(n, name, len);
    n[len] = 0;
    p[0] = (uint8_t)bx->nkw;
    memcpy(p + 1, name, len);
    int r = st_log_add(b, REC_KEYWORD, p, len + 1);
    if (r) {
        free(n);
        return r;
    }
    bx->kw[bx->nkw] = n;
    bx->change++;
    return (int)bx->nkw++;
}

int st_keyword(st_box *bx, const char *name, size_t len, int create)
{
    stbox *b = (stbox *)bx;
    for (int pass = 0; pass < 2; pass++) {
        for (unsigned i = 0; i < bx->nkw; i++) {
            if (strlen(bx->kw[i]) == len && strncasecmp(bx->kw[i], name, len) == 0) {
                if (pass == 1) {
                    st_box_unlock(b);
                }
                return (int)i;
            }
        }
        if (!create) {
            return ST_ENOENT;
        }
        if (pass == 0) {
            /* another process may have added it: look again under the lock */
            int r = st_box_lock(b);
            if (r) {
                return r;
            }
        }
    }
    int r = keyword_add_locked(b, name, len);
    st_box_unlock(b);
    return r;
}
