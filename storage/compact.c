/*
 * compact.c -- compaction (rewrite a mailbox without its expunged messages,
 * with fresh X-UID/Status/X-Status/X-Keywords headers) and per-user quota.
 *
 * Two files must change as one: the mbox and its log (the log's offsets are
 * only true for one mbox). Everything happens under the mailbox lock, and
 * the new mbox is locked too before it takes the name, so that a process
 * that opens the name in the middle waits like everyone else:
 *   1. write the new mbox T (".<name>.state.compact"), sync it;
 *   2. write the new log L' (".<name>.state.new"): HDR, KEYWORDs, a MSGS
 *      block of the live messages at their new offsets, STATE, COMPACT{size,
 *      crc32 of all of T}, MARK; sync it;
 *   3. rename T over the mbox, sync the directory      <- the commit point
 *   4. rename L' over the log, sync the directory.
 * A crash before 3 leaves the old pair (plus temp files); after 3 it leaves
 * the new mbox with the old log and a whole L'. st_compact_recover() tells
 * the two apart -- it runs whenever a process first locks a mailbox or finds
 * its mbox file replaced, before anything reads the log against the mbox:
 * if L' is whole, has the UIDVALIDITY of the current log, and its COMPACT
 * record matches the mbox byte for byte (size and CRC), step 3 happened and
 * step 4 is finished; otherwise L' is removed. A leftover T is always
 * removed (step 3 renames it away).
 *
 * Who may compact: a process whose index holds no ST_F_EXPUNGED entries --
 * sessions keep sequence numbers of expunged messages until the core calls
 * st_box_purge(), and those entries' offsets die with the old file. So
 * st_box_purge() (the core's purge point: every session has been told) and
 * the last st_box_close() call st_box_maybe_compact(). Other processes that
 * still hold expunged entries find them voided (off = UINT64_MAX, the reader
 * answers ST_ENOENT) when they follow the new file; readers already
 * streaming keep their own handle on the old file and get the old bytes.
 */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "st_int.h"

char *st_compact_tmp(const char *log_path) { return st_cat(log_path, ".compact"); }
char *st_compact_newlog(const char *log_path) { return st_cat(log_path, ".new"); }

uint64_t st_compact_min_dead = ST_COMPACT_MIN_DEAD;
unsigned long st_compactions;

void st_store_set_compact_ratio(st_store *s, unsigned permille)
{
    s->compact_permille = permille > 1000 ? 1000 : permille;
}

/* Bytes a compaction would free: the mbox minus what the live messages and
 * their headers take. */
uint64_t st_box_reclaimable(const stbox *b)
{
    uint64_t live = 0;
    for (uint32_t i = 0; i < b->pub.count; i++) {
        const st_msg *m = &b->pub.msg[i];
        if (!(m->flags & ST_F_EXPUNGED)) {
            live += m->dlen + ST_HDR_EST;
        }
    }
    return b->mbox_end > live ? b->mbox_end - live : 0;
}

/* ---------------- recovery ---------------- */

/* Read L' whole: 1 and its COMPACT values if it is a complete compaction
 * log (HDR first, COMPACT, MARK last, no torn tail), 0 if not, <0 on I/O. */
static int read_newlog(const st_vfs *v, const char *path, uint32_t *uidv,
                       uint64_t *size, uint32_t *crc)
{
    st_file *f;
    st_stat st;
    st_logrd rd;
    int r = v->open(v, path, ST_O_READ, &f);
    if (r) {
        return r == ST_ENOENT ? 0 : r;
    }
    if ((r = st_vfstat(f, &st)) != 0) {
        st_vclose(f);
        return r;
    }
    int type = 0, last = 0, have = 0, first = 1;
    const uint8_t *p;
    size_t len;
    uint64_t off;
    *uidv = 0;
    st_logrd_init(&rd, f, 0, st.size);
    while ((r = st_logrd_next(&rd, &type, &p, &len, &off)) == 1) {
        if (first && type != REC_HDR) {
            break;
        }
        if (first) {
            *uidv = st_get32(p + 8);
        }
        first = 0;
        if (type == REC_COMPACT && len >= 12) {
            *size = st_get64(p);
            *crc = st_get32(p + 8);
            have = 1;
        }
        last = type;
    }
    st_logrd_free(&rd);
    st_vclose(f);
    if (r < 0 && r != ST_ECORRUPT) {
        return r;
    }
    return r == 0 && have && last == REC_MARK && *uidv != 0;
}

/* UIDVALIDITY in the current log's header, 0 if it has none. */
static uint32_t log_uidv(const st_vfs *v, const char *path)
{
    st_file *f;
    uint8_t h[12 + REC_OVERHEAD];
    uint32_t u = 0;
    if (v->open(v, path, ST_O_READ, &f)) {
        return 0;
    }
    if (st_vread_full(f, h, sizeof h, 0) == 0 && h[0] == REC_HDR && st_get16(h + 2) == 12 &&
        st_crc32(0, h, 16) == st_get32(h + 16)) {
        u = st_get32(h + 12);
    }
    st_vclose(f);
    return u;
}

/* Does the whole file have this size and CRC? */
static int file_matches(st_file *f, uint64_t size, uint32_t crc)
{
    st_stat st;
    int r = st_vfstat(f, &st);
    if (r) {
        return r;
    }
    if (st.size != size) {
        return 0;
    }
    uint8_t *buf = malloc(ST_CHUNK);
    if (!buf) {
        return ST_ENOMEM;
    }
    uint32_t c = 0;
    for (uint64_t at = 0; at < size;) {
        size_t k = size - at > ST_CHUNK ? ST_CHUNK : (size_t)(size - at);
        if ((r = st_vread_full(f, buf, k, at)) != 0) {
            free(buf);
            return r;
        }
        c = st_crc32(c, buf, k);
        at += k;
    }
    free(buf);
    return c == crc;
}

/* Finish or undo a compaction that a crash (or a killed process) left
 * half-done. The lock of `mbox` (the open mailbox file) is held. */
int st_compact_recover_paths(st_store *s, const char *dir, st_file *mbox, const char *log_path)
{
    const st_vfs *v = s->vfs;
    char *tpath = st_compact_tmp(log_path), *lpath = st_compact_newlog(log_path);
    st_stat st;
    int r = tpath && lpath ? 0 : ST_ENOMEM;
    if (!r && v->stat(v, lpath, &st) == 0) {
        uint32_t uidv = 0, crc = 0;
        uint64_t size = 0;
        r = read_newlog(v, lpath, &uidv, &size, &crc);
        if (r == 1) {
            uint32_t cur = log_uidv(v, log_path);
            r = (cur == 0 || cur == uidv) ? file_matches(mbox, size, crc) : 0;
        }
        if (r == 1) {
            /* step 3 happened: finish step 4 */
            r = v->rename(v, lpath, log_path);
            if (!r) {
                r = v->sync_dir(v, dir);
            }
        } else if (r == 0) {
            r = v->remove(v, lpath);
            r = r == ST_ENOENT ? 0 : r;
        }
    }
    if (!r && v->stat(v, tpath, &st) == 0) {
        /* A new mbox that a live compaction job holds locked (it copies
         * across loop turns without the mailbox lock) is not a leftover;
         * the job checks the file is still there before its commit. */
        st_file *t;
        int busy = 0;
        if (v->open(v, tpath, ST_O_WRITE, &t) == 0) {
            busy = st_vlock(t, ST_LOCK_EX, 0) == ST_EBUSY;
            if (!busy) {
                r = v->remove(v, tpath);   /* removed while we hold it */
                r = r == ST_ENOENT ? 0 : r;
            }
            st_vclose(t);
        } else {
            r = v->remove(v, tpath);
            r = r == ST_ENOENT ? 0 : r;
        }
    }
    free(tpath);
    free(lpath);
    return r;
}

int st_compact_recover(stbox *b)
{
    const st_vfs *v = b->s->vfs;
    char *lpath = st_compact_newlog(b->log_path);
    st_stat st;
    if (lpath && v->stat(v, lpath, &st) == 0) {
        st_note(b, "finished or undid an interrupted compaction");
    }
    free(lpath);
    return st_compact_recover_paths(b->s, b->dir, b->mbox, b->log_path);
}

/* Remove compaction leftovers of a mailbox that does not exist (create and
 * delete call this, so a namesake never inherits them). */
int st_compact_clean(st_store *s, const char *log_path)
{
    const st_vfs *v = s->vfs;
    char *tpath = st_compact_tmp(log_path), *lpath = st_compact_newlog(log_path);
    int r = tpath && lpath ? 0 : ST_ENOMEM;
    if (!r) {
        r = v->remove(v, lpath);
        r = r == ST_ENOENT ? 0 : r;
    }
    if (!r) {
        r = v->remove(v, tpath);
        r = r == ST_ENOENT ? 0 : r;
    }
    free(tpath);
    free(lpath);
    return r;
}

/* ---------------- writing ---------------- */

/* Buffered writer for the new mbox; the CRC of the whole file. */
typedef struct cw {
    st_file *f;
    uint64_t pos;     /* file offset of the next byte to add */
    uint8_t *buf;     /* ST_CHUNK */
    size_t n;         /* bytes buffered (they end at pos) */
    uint32_t crc_all; /* of the whole file */
    int err;
} cw;

static void cw_flush(cw *w)
{
    if (!w->err && w->n) {
        w->err = st_vpwrite(w->f, w->buf, w->n, w->pos - w->n);
    }
    w->n = 0;
}

static void cw_put(cw *w, const void *p, size_t n)
{
    const uint8_t *q = p;
    w->crc_all = st_crc32(w->crc_all, p, n);
    while (n) {
        if (w->n == ST_CHUNK) {
            cw_flush(w);
        }
        size_t k = ST_CHUNK - w->n < n ? ST_CHUNK - w->n : n;
        memcpy(w->buf + w->n, q, k);
        w->n += k;
        w->pos += k;
        q += k;
        n -= k;
    }
}

/* One message of the job's list: where it is in the old file and, once its
 * header is written, where its bytes start in the new one. */
typedef struct cjob_msg {
    uint32_t uid;
    uint32_t dlen;
    uint64_t off;   /* in the old mbox */
    uint64_t noff;  /* in the new mbox; UINT64_MAX: not copied (expunged) */
} cjob_msg;

/* A compaction in progress (struct st_cjob in st_int.h). It copies the
 * messages that were live when it started, in UID order, a slice at a
 * time and without the lock: between compactions the bytes of indexed
 * messages never change (the mbox only grows), and every change to the
 * file's identity or to a message's place is checked again under the lock
 * before the commit point (cjob_finish). */
typedef struct st_cjob {
    char *tpath, *lpath;  /* the new mbox and the new log, before rename */
    cw o;                 /* writer of the new mbox (o.f its file) */
    uint64_t t_ino;       /* its inode, to see it was not removed meanwhile */
    uint64_t mbox_ino;    /* the mbox it copies from */
    uint8_t *in;          /* ST_CHUNK read buffer */
    cjob_msg *m;          /* the messages live at the start, UID order */
    uint32_t n;           /* entries of m */
    uint32_t next;        /* the one being copied */
    uint64_t at;          /* its bytes copied so far */
    int hdr_done;         /* its header is written */
    uint8_t lastc;        /* its last byte copied */
    uint32_t written;     /* messages written (the first gets X-IMAPbase) */
} st_cjob;

void st_compact_job_free(stbox *b)
{
    st_cjob *j = b->cjob;
    if (!j) {
        return;
    }
    b->cjob = NULL;
    if (j->o.f) {
        /* ours only if we locked it and nobody removed it and made another
         * meanwhile; removed while still locked */
        st_stat st;
        const st_vfs *v = b->s->vfs;
        if (j->t_ino && j->tpath && v->stat(v, j->tpath, &st) == 0 && st.ino == j->t_ino) {
            v->remove(v, j->tpath);
        }
        st_vclose(j->o.f);
    }
    free(j->tpath);
    free(j->lpath);
    free(j->o.buf);
    free(j->in);
    free(j->m);
    free(j);
}

/* Start a job: create the new mbox, list the live messages. */
static int cjob_start(stbox *b) __attribute__((noinline));
static int cjob_start(stbox *b)
{
    st_box *bx = &b->pub;
    const st_vfs *v = b->s->vfs;
    st_cjob *j = calloc(1, sizeof *j);
    if (!j) {
        return ST_ENOMEM;
    }
    b->cjob = j;
    j->tpath = st_compact_tmp(b->log_path);
    j->lpath = st_compact_newlog(b->log_path);
    j->o.buf = malloc(ST_CHUNK);
    j->in = malloc(ST_CHUNK);
    j->m = malloc(((size_t)bx->count + 1) * sizeof *j->m);
    int r = j->tpath && j->lpath && j->o.buf && j->in && j->m ? 0 : ST_ENOMEM;
    if (!r) {
        r = v->open(v, j->tpath, ST_O_WRITE | ST_O_CREATE, &j->o.f);
    }
    if (!r) {
        /* Held for the whole job: a job of another process may be copying
         * into this file without the mailbox lock, so it is emptied only
         * once it is ours. (A recovery may still remove the name; a new
         * file under it is then another inode, which the finish notices.)
         * It also makes whoever opens the name after the rename wait. */
        r = st_vlock(j->o.f, ST_LOCK_EX, 0);
    }
    if (!r) {
        r = st_vtruncate(j->o.f, 0);
    }
    st_stat st;
    if (!r && (r = st_vfstat(j->o.f, &st)) == 0) {
        j->t_ino = st.ino;
    }
    if (r) {
        st_compact_job_free(b);
        return r;
    }
    j->mbox_ino = b->mbox_ino;
    for (uint32_t i = 0; i < bx->count; i++) {
        const st_msg *m = &bx->msg[i];
        if (!(m->flags & ST_F_EXPUNGED)) {
            j->m[j->n].uid = m->uid;
            j->m[j->n].dlen = m->dlen;
            j->m[j->n].off = m->off;
            j->m[j->n].noff = UINT64_MAX;
            j->n++;
        }
    }
    return 0;
}

/* Write message cm's header block (current flags and keywords). */
static int cjob_header(stbox *b, st_cjob *j, cjob_msg *cm, const st_msg *m)
{
    st_box *bx = &b->pub;
    char hdr[ST_KW_NAME_MAX * 64 + 256];
    int hl = st_header_block(hdr, sizeof hdr, bx, m->uid, m->idate, m->flags & ST_F_SYSMASK, m->kw);
    if (hl < 0) {
        return hl;
    }
    if (j->written == 0) {
        /* Dovecot's mbox driver trusts X-UID headers (gaps and all)
         * only when the first message carries X-IMAPbase: UIDVALIDITY,
         * UIDNEXT and the keyword names. Ours is part of our header
         * block, hidden from IMAP clients like the others. */
        int xl = snprintf(hdr + hl, sizeof hdr - (size_t)hl, "X-IMAPbase: %u %010u",
                          (unsigned)bx->uidvalidity, (unsigned)bx->uidnext);
        for (unsigned k = 0; xl > 0 && k < bx->nkw; k++) {
            int l = snprintf(hdr + hl + xl, sizeof hdr - (size_t)(hl + xl), " %s", bx->kw[k]);
            xl = l < 0 ? -1 : xl + l;
        }
        if (xl < 0 || (size_t)(hl + xl + 1) >= sizeof hdr) {
            return ST_EINVAL;
        }
        hdr[hl + xl] = '\n';
        hl += xl + 1;
    }
    cw_put(&j->o, hdr, (size_t)hl);
    cm->noff = j->o.pos;
    j->written++;
    return 0;
}

/* Copy up to budget bytes of the listed messages (UINT64_MAX: all of them).
 * A message expunged before its turn is left out. Returns 0 or <0. */
static int cjob_copy(stbox *b, st_cjob *j, uint64_t budget)
{
    st_box *bx = &b->pub;
    int r = 0;
    if (b->mbox_ino != j->mbox_ino) {
        return ST_EBUSY;   /* another process compacted: start again later */
    }
    while (!r && j->next < j->n && budget) {
        cjob_msg *cm = &j->m[j->next];
        if (!j->hdr_done) {
            long at = st_box_find(bx, cm->uid);
            const st_msg *m = at >= 0 ? &bx->msg[at] : NULL;
            if (!m || (m->flags & ST_F_EXPUNGED)) {
                j->next++;   /* gone already: its bytes stay behind */
                continue;
            }
            if (m->off != cm->off || m->dlen != cm->dlen) {
                return ST_EBUSY;   /* re-indexed (rewritten elsewhere) */
            }
            if ((r = cjob_header(b, j, cm, m)) != 0) {
                break;
            }
            j->hdr_done = 1;
            j->at = 0;
            j->lastc = 0;
        }
        while (!r && j->at < cm->dlen && budget) {
            uint64_t k = cm->dlen - j->at;
            k = k > ST_CHUNK ? ST_CHUNK : k;
            k = k > budget ? budget : k;
            r = st_vread_full(b->mbox, j->in, (size_t)k, cm->off + j->at);
            if (!r) {
                cw_put(&j->o, j->in, (size_t)k);
                j->lastc = j->in[k - 1];
                j->at += k;
                budget = budget == UINT64_MAX ? budget : budget - k;
            }
        }
        if (!r && j->at == cm->dlen) {
            /* the same separator an APPEND writes: a blank line after a final LF */
            int tail = cm->dlen && j->lastc == '\n' ? 1 : 2;
            cw_put(&j->o, "\n\n", (size_t)tail);
            j->hdr_done = 0;
            j->next++;
        }
        if (!r) {
            r = j->o.err;
        }
    }
    return r;
}

static int holds_expunged(const st_box *bx)
{
    for (uint32_t i = 0; i < bx->count; i++) {
        if (bx->msg[i].flags & ST_F_EXPUNGED) {
            return 1;
        }
    }
    return 0;
}

/* The end of a job; lock held, no ST_F_EXPUNGED entries, all committed.
 * Copies what is left and what arrived since the start, writes and syncs
 * the new log, and renames both into place. Frees the job either way.
 * ST_EBUSY: the mailbox changed under the job in a way it cannot follow
 * (compacted, re-indexed, renamed, deleted); nothing was changed. */
static int cjob_finish(stbox *b)
{
    st_box *bx = &b->pub;
    st_cjob *j = b->cjob;
    const st_vfs *v = b->s->vfs;
    uint8_t p[ST_REC_MAX];
    st_logw w = { 0 };
    uint64_t *noff = malloc(((size_t)bx->count + 1) * sizeof *noff);
    int r = noff ? 0 : ST_ENOMEM, committed = 0;
    char *tnow = st_compact_tmp(b->log_path);
    st_stat ts;
    if (!r && (!tnow || strcmp(tnow, j->tpath) != 0)) {
        r = tnow ? ST_EBUSY : ST_ENOMEM;   /* renamed meanwhile */
    }
    free(tnow);
    if (!r && (bx->deleted || b->mbox_ino != j->mbox_ino)) {
        r = ST_EBUSY;
    }
    if (!r && (v->stat(v, j->tpath, &ts) != 0 || ts.ino != j->t_ino)) {
        r = ST_EBUSY;   /* a recovery (rename, another process) removed it */
    }
    if (!r) {
        r = cjob_copy(b, j, UINT64_MAX);
    }
    /* every live message at its new offset: the listed ones were copied;
     * newer UIDs (arrived since the start) are copied now, in UID order
     * after them, so the new file stays in UID order */
    uint32_t k = 0, maxuid = j->n ? j->m[j->n - 1].uid : 0;
    for (uint32_t i = 0; !r && i < bx->count; i++) {
        const st_msg *m = &bx->msg[i];
        while (k < j->n && j->m[k].uid < m->uid) {
            k++;
        }
        if (k < j->n && j->m[k].uid == m->uid && j->m[k].noff != UINT64_MAX) {
            noff[i] = j->m[k].noff;
            continue;
        }
        if (m->uid <= maxuid || m->off == UINT64_MAX) {
            r = ST_EBUSY;   /* cannot happen while UIDs only grow; be safe */
            break;
        }
        cjob_msg cm = { m->uid, m->dlen, m->off, UINT64_MAX };
        if ((r = cjob_header(b, j, &cm, m)) != 0) {
            break;
        }
        uint8_t lastc = 0;
        for (uint64_t at = 0; !r && at < m->dlen;) {
            size_t n = m->dlen - at > ST_CHUNK ? ST_CHUNK : (size_t)(m->dlen - at);
            r = st_vread_full(b->mbox, j->in, n, m->off + at);
            if (!r) {
                cw_put(&j->o, j->in, n);
                lastc = j->in[n - 1];
            }
            at += n;
        }
        cw_put(&j->o, "\n\n", m->dlen && lastc == '\n' ? 1 : 2);
        noff[i] = cm.noff;
        if (!r) {
            r = j->o.err;
        }
    }
    if (!r) {
        w.buf = malloc(ST_CHUNK);
        r = w.buf ? 0 : ST_ENOMEM;
    }
    if (!r) {
        r = v->open(v, j->lpath, ST_O_WRITE | ST_O_CREATE | ST_O_TRUNC, &w.f);
    }
    if (!r) {
        cw_flush(&j->o);
        st_logw_head(&w, bx->uidvalidity, bx);
        /* every message at its new offset, as one MSGS block (log.c) */
        st_logw_msgs(&w, bx, noff);
        st_logw_state(&w, bx, j->o.pos);
        st_put64(p, j->o.pos);
        st_put32(p + 8, j->o.crc_all);
        st_logw_rec(&w, REC_COMPACT, p, 12);
        st_logw_rec(&w, REC_MARK, p, 0);
        st_logw_flush(&w);
        r = j->o.err ? j->o.err : w.err;
    }
    if (!r) {
        r = st_vsync(j->o.f);
    }
    if (!r) {
        r = st_vsync(w.f);
    }
    if (w.f) {
        int rc = st_vclose(w.f);
        r = r ? r : rc;
        w.f = NULL;
    }
    if (!r) {
        r = v->rename(v, j->tpath, b->mbox_path);
    }
    if (!r) {
        /* committed: the new file is the mailbox, whatever happens next */
        committed = 1;
        st_compactions++;
        st_file *old = b->mbox;
        b->mbox = j->o.f;
        j->o.f = NULL;
        st_vlock(old, ST_LOCK_UN, 0);
        st_vclose(old);
        b->mbox_ino = j->t_ino;
        for (uint32_t i = 0; i < bx->count; i++) {
            bx->msg[i].off = noff[i];
        }
        b->mbox_end = j->o.pos;
        b->dead_bytes = 0;
        b->dirty_mbox = 0;
        bx->change++;
        r = v->sync_dir(v, b->dir);
        if (!r) {
            r = v->rename(v, j->lpath, b->log_path);
        }
        if (!r) {
            r = v->sync_dir(v, b->dir);
        }
        st_file *nl = NULL;
        st_stat ls;
        if (!r) {
            r = v->open(v, b->log_path, ST_O_WRITE, &nl);
        }
        if (!r && (r = st_vfstat(nl, &ls)) != 0) {
            st_vclose(nl);
        }
        if (!r) {
            st_vclose(b->log);
            b->log = nl;
            b->log_ino = ls.ino;
            b->log_end = ls.size;
            b->ckpt_size = ls.size;
            b->dirty_log = 0;
        } else {
            /* the new log is not in place yet: the next lock finishes it */
            b->need_recover = 1;
        }
    }
    if (!committed) {
        if (j->lpath) {
            v->remove(v, j->lpath);
        }
    }
    free(w.buf);
    free(noff);
    st_compact_job_free(b);   /* removes the new mbox if it was not renamed */
    return r;
}

/* Commit, lock, check, then finish the job (starting one first if there
 * is none and `start`). ST_EBUSY while sessions hold expunged entries. */
static int cjob_finish_locked(stbox *b, int start)
{
    st_box *bx = &b->pub;
    int r;
    if (!b->refs) {
        st_box_purge_only(bx);   /* closed: no session holds an index */
    }
    if (holds_expunged(bx)) {
        return ST_EBUSY; /* sessions still need those entries: purge first */
    }
    if ((r = st_box_commit(bx)) != 0) {
        return r;
    }
    if ((r = st_box_lock(b)) != 0) {
        return r;
    }
    /* catching up may have brought another process's expunges; a job in
     * progress is finished here rather than started again */
    if (!b->refs) {
        st_box_purge_only(bx);
    }
    if (holds_expunged(bx)) {
        r = ST_EBUSY;
    } else {
        r = b->cjob || !start ? 0 : cjob_start(b);
        if (!r) {
            r = cjob_finish(b);
        }
    }
    st_box_unlock(b);
    return r;
}

int st_box_compact(st_box *bx)
{
    if (bx->deleted) {
        return ST_ENOENT;
    }
    return cjob_finish_locked((stbox *)bx, 1);
}

unsigned st_compact_jobs_max = ST_COMPACT_JOBS;

/* Compaction jobs in progress in s, open mailboxes and closed ones. */
static unsigned jobs(const st_store *s)
{
    unsigned n = 0;
    for (const stbox *k = s->boxes; k; k = k->next) {
        n += k->cjob != NULL;
    }
    return n;
}

/* With a slice set, does b's compaction go (or go on) in slices across
 * loop turns rather than at once inside this call? While it is open, yes.
 * At its last close too, if its index will be kept (st_box_close: not
 * gone, nothing left unsynced, closed mailboxes kept at all): the job goes
 * on on the kept index, which st_keep_trim leaves alone until it ends. The
 * LOGOUT that closes a busy INBOX past the threshold, or in mid-job, would
 * otherwise copy and sync the rest of it in one loop turn with every
 * client waiting (tests/bench/README.md, session churn). */
static int sliced(const stbox *b)
{
    return b->s->compact_slice &&
           (b->refs || (st_keep_closed_max && !b->pub.deleted && !b->dirty_log && !b->dirty_mbox));
}

int st_box_maybe_compact(st_box *bx)
{
    stbox *b = (stbox *)bx;
    unsigned pm = b->s->compact_permille;
    if (b->cjob) {
        if (sliced(b)) {
            return 0;   /* in progress: st_store_compact_work() */
        }
        /* the last close, and the index goes: finish the job now */
        if (bx->deleted) {
            st_compact_job_free(b);
            return 0;
        }
        int r = cjob_finish_locked(b, 0);
        st_compact_job_free(b);
        return r ? r : 1;
    }
    if (!pm || bx->deleted || holds_expunged(bx)) {
        return 0;
    }
    uint64_t dead = st_box_reclaimable(b);
    if (dead < st_compact_min_dead || dead * 1000 < b->mbox_end * pm) {
        return 0;
    }
    if (sliced(b)) {
        if (jobs(b->s) >= st_compact_jobs_max) {
            /* as many as allowed are copying (one slice a turn in all
             * anyway): a later purge or close starts this one */
            return 0;
        }
        /* sessions are waiting on this loop: copy in slices (work below);
         * the job starts under the lock like any compaction */
        int r = st_box_lock(b);
        if (!r) {
            r = holds_expunged(bx) ? 0 : cjob_start(b);
            st_box_unlock(b);
        }
        return r;
    }
    int r = st_box_compact(bx);
    return r ? r : 1;
}

void st_store_set_compact_slice(st_store *s, uint64_t slice)
{
    s->compact_slice = slice;
}

int st_store_compact_work(st_store *s)
{
    /* One slice a call in all, however many mailboxes have a job (a
     * server with a hundred busy mailboxes must not copy a hundred slices
     * in one turn), and at most one commit (several syncs). */
    uint64_t budget = s->compact_slice ? s->compact_slice : UINT64_MAX;
    int more = 0, committed = 0, trim = 0;
    for (stbox *b = s->boxes; b; b = b->next) {
        st_cjob *j = b->cjob;
        if (!j) {
            continue;
        }
        /* a closed mailbox's job (sliced) goes on like an open one's;
         * its end lets the kept index go like any other (trim) */
        trim |= !b->refs;
        if (b->pub.deleted) {
            st_compact_job_free(b);
            continue;
        }
        int r = 0;
        if (j->next < j->n) {
            more = 1;
            if (!budget) {
                continue;   /* next turn */
            }
            uint64_t before = j->o.pos;
            r = cjob_copy(b, j, budget);
            if (!r) {
                cw_flush(&j->o);
                r = j->o.err;
            }
            if (!r && j->o.pos != before) {
                /* start writing each slice out now (without waiting), so
                 * the sync at the commit finds little left to write; a
                 * sync per slice would block the loop each turn */
                st_vwriteback(j->o.f);
            }
            uint64_t done = j->o.pos - before;
            budget = budget == UINT64_MAX ? budget : done >= budget ? 0 : budget - done;
            if (r) {
                st_compact_job_free(b);   /* the old file is untouched */
            }
            continue;
        }
        if (b->cphase) {
            /* not while the mailbox's commit is in flight (the lock would
             * wait for it with the loop stopped): the turn its end wakes */
            continue;
        }
        if (committed) {
            more = 1;   /* next turn */
            continue;
        }
        committed = 1;
        r = cjob_finish_locked(b, 0);
        if (r == ST_EBUSY && b->cjob) {
            /* sessions still hold expunged entries (their purge will
             * come), or the lock is held elsewhere: try again at a later
             * turn, without keeping the loop awake for it */
            continue;
        }
        st_compact_job_free(b);
    }
    if (trim) {
        /* after the loop: it may free mailboxes whose job just ended */
        st_keep_trim(s);
    }
    return more;
}

/* ---------------- quota ---------------- */

void st_store_set_quota(st_store *s, uint64_t bytes)
{
    s->quota = bytes;
}

typedef struct usage_ctx {
    st_store *s;
    const char *user;
    const char *dir;
    uint64_t used;
} usage_ctx;

static int usage_one(void *ctx, const char *file)
{
    usage_ctx *c = ctx;
    char name[1024];
    st_stat st;
    if (file[0] == '.' || st_unescape(file, name, sizeof name)) {
        return 0;
    }
    stbox *b = st_find_open(c->s, c->user, name);
    if (b) {
        /* what it holds once compacted: expunged mail does not count */
        c->used += b->mbox_end - st_box_reclaimable(b);
        return 0;
    }
    char *path = st_path(c->dir, file, NULL);
    if (path && c->s->vfs->stat(c->s->vfs, path, &st) == 0 && !st.isdir) {
        c->used += st.size;
    }
    free(path);
    return 0;
}

int st_quota_get(st_store *s, const char *user, uint64_t *used, uint64_t *limit)
{
    char *dir;
    int r = st_user_dir(s, user, &dir);
    if (r) {
        return r;
    }
    usage_ctx c = { s, user, dir, 0 };
    r = s->vfs->list(s->vfs, dir, usage_one, &c);
    free(dir);
    *used = c.used;
    *limit = s->quota;
    return r;
}

int st_quota_check(stbox *b, uint64_t add)
{
    uint64_t used, limit;
    if (!b->s->quota) {
        return 0;
    }
    int r = st_quota_get(b->s, b->pub.user, &used, &limit);
    if (r) {
        return r;
    }
    return used + add > limit ? ST_EQUOTA : 0;
}
