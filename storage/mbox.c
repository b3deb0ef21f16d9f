/*
 * mbox.c -- mboxrd on disk: wire -> disk conversion for APPEND, our header
 * block, and the scanner that indexes messages found in the file (an
 * outside MDA's deliveries, or the whole file when the state log is lost).
 *
 * Disk form: LF line ends; a line matching /^>*From / gets one more '>'
 * (mboxrd, so the quoting is reversible); every message is
 *   From <sender> <asctime UTC>\n
 *   X-UID: <uid>\n Status: <R>\n X-Status: <AFTD>\n X-Keywords: <kw ...>\n
 *   <message>[\n]\n
 * The four headers are always written, in this order, so a rebuild can tell
 * them from the message's own headers. The trailing blank line separates
 * messages (and an LF is added first when the message did not end in one).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_int.h"

/* ---------------- wire -> disk ---------------- */

void st_enc_init(st_enc *e, int (*put)(void *, const char *, size_t), void *ctx)
{
    memset(e, 0, sizeof *e);
    e->bol = 1;
    e->last = -1;
    e->put = put;
    e->ctx = ctx;
}

static int enc_flush(st_enc *e)
{
    int r = 0;
    if (e->nbuf) {
        r = e->put(e->ctx, e->buf, e->nbuf);
        e->nbuf = 0;
    }
    return r;
}

static int enc_out(st_enc *e, char c)
{
    if (e->nbuf == sizeof e->buf) {
        int r = enc_flush(e);
        if (r) {
            return r;
        }
    }
    e->buf[e->nbuf++] = c;
    e->dlen++;
    e->last = (unsigned char)c;
    return 0;
}

static int enc_gts(st_enc *e, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        int r = enc_out(e, '>');
        if (r) {
            return r;
        }
    }
    return 0;
}

/* One disk-form character (CRs before LFs already removed). */
static int enc_char(st_enc *e, char c)
{
    static const char from[] = "From ";
    int r;
    e->size += c == '\n' ? 2 : 1;
    if (e->bol) {
        e->bol = 0;
        e->qmatch = 1;
        e->ngt = 0;
        e->m = 0;
    }
    if (e->qmatch) {
        if (e->m == 0 && c == '>') {
            e->ngt++;
            return 0;
        }
        if (c == from[e->m]) {
            if (++e->m == 5) {
                /* /^>*From /: one more '>' than the message had */
                e->qmatch = 0;
                if ((r = enc_gts(e, e->ngt + 1)) != 0) {
                    return r;
                }
                for (int i = 0; i < 5; i++) {
                    if ((r = enc_out(e, from[i])) != 0) {
                        return r;
                    }
                }
            }
            return 0;
        }
        /* no match: give back what was held, then c as usual */
        e->qmatch = 0;
        if ((r = enc_gts(e, e->ngt)) != 0) {
            return r;
        }
        for (unsigned i = 0; i < e->m; i++) {
            if ((r = enc_out(e, from[i])) != 0) {
                return r;
            }
        }
    }
    if ((r = enc_out(e, c)) != 0) {
        return r;
    }
    if (c == '\n') {
        e->bol = 1;
    }
    return 0;
}

int st_enc_feed(st_enc *e, const void *p, size_t n)
{
    const char *s = p;
    int r;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (e->cr) {
            e->cr = 0;
            if (c != '\n' && (r = enc_char(e, '\r')) != 0) {
                return r;
            }
        }
        if (c == '\r') {
            e->cr = 1;
            continue;
        }
        /* fast path: a run of ordinary bytes in the middle of a line */
        if (!e->bol && !e->qmatch && c != '\n') {
            size_t j = i;
            while (j < n && s[j] != '\r' && s[j] != '\n') {
                j++;
            }
            size_t k = j - i;
            if (e->nbuf + k > sizeof e->buf) {
                if ((r = enc_flush(e)) != 0) {
                    return r;
                }
            }
            if (k > sizeof e->buf) {
                if ((r = e->put(e->ctx, s + i, k)) != 0) {
                    return r;
                }
            } else {
                memcpy(e->buf + e->nbuf, s + i, k);
                e->nbuf += (unsigned)k;
            }
            e->dlen += k;
            e->size += k;
            e->last = (unsigned char)s[j - 1];
            i = j - 1;
            continue;
        }
        if ((r = enc_char(e, c)) != 0) {
            return r;
        }
    }
    return 0;
}

int st_enc_finish(st_enc *e)
{
    static const char from[] = "From ";
    int r;
    if (e->cr) {
        e->cr = 0;
        if ((r = enc_char(e, '\r')) != 0) {
            return r;
        }
    }
    if (e->qmatch) {
        e->qmatch = 0;
        if ((r = enc_gts(e, e->ngt)) != 0) {
            return r;
        }
        for (unsigned i = 0; i < e->m; i++) {
            if ((r = enc_out(e, from[i])) != 0) {
                return r;
            }
        }
    }
    return enc_flush(e);
}

/* ---------------- our header block ---------------- */

/* From line and the four headers for a new message; returns the length or
 * ST_EINVAL when buf is too small. */
int st_header_block(char *buf, size_t n, const st_box *b, uint32_t uid,
                    int64_t idate, uint8_t flags, uint64_t kw)
{
    char date[64], xs[8];
    size_t k = 0;
    st_fmt_asctime(idate, date, sizeof date);
    if (flags & ST_F_ANSWERED) {
        xs[k++] = 'A';
    }
    if (flags & ST_F_FLAGGED) {
        xs[k++] = 'F';
    }
    if (flags & ST_F_DRAFT) {
        xs[k++] = 'T';
    }
    if (flags & ST_F_DELETED) {
        xs[k++] = 'D';
    }
    xs[k] = 0;
    int len = snprintf(buf, n, "From MAILER-DAEMON %s\nX-UID: %u\nStatus: %s\nX-Status: %s\nX-Keywords:",
                       date, (unsigned)uid, (flags & ST_F_SEEN) ? "R" : "", xs);
    if (len < 0 || (size_t)len >= n) {
        return ST_EINVAL;
    }
    for (unsigned i = 0; i < b->nkw && i < 64; i++) {
        if (kw & ((uint64_t)1 << i)) {
            int l = snprintf(buf + len, n - (size_t)len, " %s", b->kw[i]);
            if (l < 0 || (size_t)(len + l) >= n) {
                return ST_EINVAL;
            }
            len += l;
        }
    }
    if ((size_t)len + 1 >= n) {
        return ST_EINVAL;
    }
    buf[len++] = '\n';
    buf[len] = 0;
    return len;
}

/* ---------------- scanner ---------------- */

#define PFX 1024  /* bytes of each line we look at */

static int starts(const char *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n >= l && memcmp(p, lit, l) == 0;
}

static int looks_header(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && (unsigned char)p[i] > 32 && (unsigned char)p[i] < 127 && p[i] != ':') {
        i++;
    }
    return i > 0 && i < n && p[i] == ':';
}

/* Flags from Status: / X-Status: values (Dovecot/mutt conventions). */
static void parse_status(const char *v, size_t n, int x, uint8_t *flags)
{
    for (size_t i = 0; i < n && v[i] != '\n'; i++) {
        char c = v[i];
        if (!x && c == 'R') {
            *flags |= ST_F_SEEN;
        } else if (x && c == 'A') {
            *flags |= ST_F_ANSWERED;
        } else if (x && c == 'F') {
            *flags |= ST_F_FLAGGED;
        } else if (x && c == 'T') {
            *flags |= ST_F_DRAFT;
        } else if (x && c == 'D') {
            *flags |= ST_F_DELETED;
        }
    }
}

static void found_start(st_found *m, uint64_t at, const char *p, size_t plen, size_t len)
{
    memset(m, 0, sizeof *m);
    m->start = at;
    m->off = at + len;
    m->hlen = (uint32_t)len;
    m->valid_from = len < PFX && plen && p[plen - 1] == '\n' &&
                    st_parse_asctime(p, plen, &m->idate) == 0;
}

static void found_end(st_found *m, int last_blank)
{
    if (last_blank && m->dlen >= 1) {
        m->dlen -= 1;
        m->size -= 2;
        m->tail = 1;
    }
}

/*
 * Walk [from, to) of the mbox line by line and call cb for every message.
 * *garbage is set when non-blank bytes precede the first "From " line.
 * A message's crc covers its bytes from its "From " line to the next one.
 */
int st_scan_mbox(st_file *f, uint64_t from, uint64_t to,
                 int (*cb)(void *ctx, st_found *m), void *ctx, int *garbage)
{
    char *buf = malloc(ST_CHUNK);
    if (!buf) {
        return ST_ENOMEM;
    }
    st_found m;
    int have = 0, state = 0, ridx = 0, last_blank = 0, r = 0;
    uint64_t bbase = from; /* file offset of buf[0] */
    size_t blen = 0, bi = 0;
    uint32_t crc = 0;
    static const char *const run[4] = { "X-UID: ", "Status: ", "X-Status: ", "X-Keywords:" };
    enum { S_RUN = 1, S_HDR, S_BODY };
    *garbage = 0;
    memset(&m, 0, sizeof m);
    for (;;) {
        /* have at least PFX bytes (or the rest of the range) at buf[bi] */
        if (blen - bi < PFX && bbase + blen < to) {
            memmove(buf, buf + bi, blen - bi);
            bbase += bi;
            blen -= bi;
            bi = 0;
            uint64_t want = to - (bbase + blen);
            if (want > ST_CHUNK - blen) {
                want = ST_CHUNK - blen;
            }
            long got = st_vpread(f, buf + blen, (size_t)want, bbase + blen);
            if (got < 0) {
                r = (int)got;
                break;
            }
            blen += (size_t)got;
            if ((uint64_t)got < want) {
                to = bbase + blen;
            }
        }
        if (bi >= blen) {
            break;
        }
        uint64_t at = bbase + bi;
        const char *p = buf + bi;
        size_t avail = blen - bi;
        char *nl = memchr(p, '\n', avail);
        size_t plen = nl ? (size_t)(nl - p) + 1 : avail;
        if (plen > PFX) {
            plen = PFX;
        }
        /* copy the prefix: the buffer is refilled while we walk long lines */
        char pfx[PFX];
        memcpy(pfx, p, plen);
        /* walk to the end of the line, crc'ing as we go */
        uint64_t len = 0;
        int lf = 0;
        int is_from = starts(pfx, plen, "From ");
        if (is_from) {
            if (have) {
                found_end(&m, last_blank);
                m.crc = crc;
                if ((r = cb(ctx, &m)) != 0) {
                    break;
                }
            }
            crc = 0;
        }
        for (;;) {
            const char *q = buf + bi;
            size_t av = blen - bi;
            char *e = memchr(q, '\n', av);
            size_t k = e ? (size_t)(e - q) + 1 : av;
            crc = st_crc32(crc, q, k);
            if (have || is_from) {
                /* zero-filled blocks are what a torn write leaves */
                m.nul |= memchr(q, 0, e ? k - 1 : k) != NULL;
            }
            len += k;
            bi += k;
            if (e) {
                lf = 1;
                break;
            }
            if (bbase + blen >= to) {
                break;
            }
            bbase += blen;
            blen = bi = 0;
            uint64_t want = to - bbase;
            if (want > ST_CHUNK) {
                want = ST_CHUNK;
            }
            long got = st_vpread(f, buf, (size_t)want, bbase);
            if (got < 0) {
                r = (int)got;
                goto out;
            }
            blen = (size_t)got;
            if (got == 0) {
                to = bbase;
                break;
            }
        }
        if (is_from) {
            int nul = m.nul;
            found_start(&m, at, pfx, plen, (size_t)len);
            m.nul = nul;   /* from the From line itself */
            m.from_ours = starts(pfx, plen, "From MAILER-DAEMON ");
            have = 1;
            state = S_RUN;
            ridx = 0;
            last_blank = 0;
            continue;
        }
        if (!have) {
            if (!(len == 1 && lf)) {
                *garbage = 1;
            }
            continue;
        }
        if (state == S_RUN) {
            if (ridx < 4 && starts(pfx, plen, run[ridx]) && (ridx > 0 || !m.ours)) {
                if (ridx == 0) {
                    m.ours = 1;
                    m.xuid = (uint32_t)strtoul(pfx + 7, NULL, 10);
                } else if (ridx == 1) {
                    parse_status(pfx + 8, plen - 8, 0, &m.flags);
                } else if (ridx == 2) {
                    parse_status(pfx + 10, plen - 10, 1, &m.flags);
                } else {
                    size_t k = plen - 11 < sizeof m.kw - 1 ? plen - 11 : sizeof m.kw - 1;
                    memcpy(m.kw, pfx + 11, k);
                    m.kw[k] = 0;
                }
                ridx++;
                m.hlen += (uint32_t)len;
                m.off += len;
                continue;
            }
            if (ridx == 4 && m.ours && starts(pfx, plen, "X-IMAPbase: ")) {
                /* written by compaction into the first message, for
                 * Dovecot: part of our header block */
                ridx++;
                m.hlen += (uint32_t)len;
                m.off += len;
                continue;
            }
            if (ridx == 0) {
                m.first_hdr_ok = looks_header(pfx, plen);
            }
            state = S_HDR;
        }
        /* a content line */
        m.dlen += (uint32_t)len;
        m.size += (uint32_t)len + (lf ? 1 : 0);
        if (pfx[0] == '>') {
            size_t i = 0;
            while (i < plen && pfx[i] == '>') {
                i++;
            }
            if (starts(pfx + i, plen - i, "From ")) {
                m.size -= 1; /* the reader drops one '>' */
            }
        }
        last_blank = len == 1 && lf;
        if (state == S_HDR) {
            if (last_blank) {
                state = S_BODY;
            } else if (!m.ours && starts(pfx, plen, "Status:")) {
                parse_status(pfx + 7, plen - 7, 0, &m.flags);
            } else if (!m.ours && starts(pfx, plen, "X-Status:")) {
                parse_status(pfx + 9, plen - 9, 1, &m.flags);
            } else if (!m.ours && starts(pfx, plen, "X-Keywords:")) {
                size_t k = plen - 11 < sizeof m.kw - 1 ? plen - 11 : sizeof m.kw - 1;
                memcpy(m.kw, pfx + 11, k);
                m.kw[k] = 0;
            }
        }
    }
    if (!r && have) {
        found_end(&m, last_blank);
        m.crc = crc;
        r = cb(ctx, &m);
    }
out:
    free(buf);
    return r;
}
