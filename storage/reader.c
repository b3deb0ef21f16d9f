/*
 * reader.c -- a message streamed back in wire form, in slices: LF becomes
 * CRLF and one '>' is dropped from lines matching /^>+From / (mboxrd).
 * The quoting decision may need bytes from the next slice (">Fr" | "om "),
 * so a line-start '>' is held back in the reader's state until it is known.
 *
 * Seek points (st_reader_track/st_reader_seek): the reader counts the wire
 * bytes it produces (wpos), so wherever no '>' is held back the pair
 * (disk position, wpos) plus bol is its whole state; a reader put there
 * produces exactly what a reader that came from the start would.
 */
#include <string.h>

#include "st_int.h"

int st_reader_open(st_reader *r, st_box *bx, uint32_t idx)
{
    stbox *b = (stbox *)bx;
    const st_vfs *v = b->s->vfs;
    st_file *f;
    st_stat st;
    memset(r, 0, sizeof *r);
    if (idx >= bx->count) {
        return ST_EINVAL;
    }
    if (bx->msg[idx].off == UINT64_MAX) {
        return ST_ENOENT; /* expunged, and compacted away by another process */
    }
    /* Our own handle: compaction may rename a new file over the path while
     * we stream, and this one keeps the bytes our offsets refer to. */
    int e = v->open(v, b->mbox_path, ST_O_READ, &f);
    if (e) {
        return e;
    }
    if ((e = st_vfstat(f, &st)) != 0 || st.ino != b->mbox_ino) {
        st_vclose(f);
        return e ? e : ST_EBUSY; /* replaced and not yet followed: retry */
    }
    r->box = bx;
    r->file = f;
    r->pos = bx->msg[idx].off;
    r->end = r->pos + bx->msg[idx].dlen;
    r->start = r->pos;
    r->bol = 1;
    return 0;
}

void st_reader_track(st_reader *r, uint32_t every,
                     void (*cb)(void *ctx, const st_seekpt *pt), void *ctx)
{
    r->ck_every = every;
    r->ck_cb = cb;
    r->ck_ctx = ctx;
    r->ck_next = r->pos + every;
}

int st_reader_seek(st_reader *r, const st_seekpt *pt)
{
    if (!r->file || (uint64_t)pt->disk > r->end - r->start || pt->bol > 1) {
        return ST_EINVAL;
    }
    r->pos = r->start + pt->disk;
    r->wpos = pt->wire;
    r->bol = pt->bol;
    r->qmatch = 0;
    r->m = 0;
    r->ncarry = r->icarry = 0;
    if (r->ck_every) {
        r->ck_next = r->pos + r->ck_every;
    }
    return 0;
}

/* Called where a slice of disk bytes was consumed: report a point if one
 * is due and the state is clean there. A pending quoting decision defers
 * it to the next slice end (a few bytes on). */
static void track(st_reader *r)
{
    if (!r->ck_every || r->pos < r->ck_next || r->qmatch) {
        return;
    }
    st_seekpt pt;
    pt.disk = (uint32_t)(r->pos - r->start);
    pt.wire = (uint32_t)r->wpos;
    pt.bol = (uint8_t)(r->bol != 0);
    r->ck_cb(r->ck_ctx, &pt);
    while (r->ck_next <= r->pos) {
        r->ck_next += r->ck_every;
    }
}

void st_reader_close(st_reader *r)
{
    if (r->file) {
        st_vclose(r->file);
        r->file = NULL;
    }
}

/* Copy s to the caller's buffer; what does not fit is owed (carry). */
static void emit(st_reader *r, char *out, size_t n, size_t *k, const char *s, size_t len)
{
    size_t room = n - *k;
    size_t c = len < room ? len : room;
    r->wpos += len;
    memcpy(out + *k, s, c);
    *k += c;
    if (c < len) {
        memcpy(r->carry, s + c, len - c);
        r->ncarry = (unsigned)(len - c);
        r->icarry = 0;
    }
}

static const char from[] = "From ";

/* Hand over output owed from last time; 1 if some is still owed. */
static int give_carry(st_reader *r, char *out, size_t n, size_t *k)
{
    if (r->icarry < r->ncarry) {
        size_t c = r->ncarry - r->icarry;
        if (c > n - *k) {
            c = n - *k;
        }
        memcpy(out + *k, r->carry + r->icarry, c);
        r->icarry += (unsigned)c;
        *k += c;
        if (r->icarry < r->ncarry) {
            return 1;
        }
    }
    r->ncarry = r->icarry = 0;
    return 0;
}

/* The message ended inside ">From": give back the '>' and all. */
static void conv_end(st_reader *r, char *out, size_t n, size_t *k)
{
    if (r->qmatch) {
        char h[6];
        h[0] = '>';
        memcpy(h + 1, from, r->m);
        r->qmatch = 0;
        emit(r, out, n, k, h, 1 + r->m);
    }
}

/* Convert disk bytes tmp[0..got) to wire bytes at out[*k..n). Stops when
 * the output is full or owes a carry; returns the disk bytes consumed
 * (the caller advances pos by that much). */
static size_t conv(st_reader *r, const char *tmp, size_t got, char *out, size_t n, size_t *k)
{
    size_t i = 0;
    while (i < got && *k < n && r->ncarry == 0) {
        char c = tmp[i];
        if (r->qmatch) {
            if (r->m == 0 && c == '>') {
                emit(r, out, n, k, ">", 1); /* '>'s are alike: the held one is the first */
                i++;
                continue;
            }
            if (c == from[r->m]) {
                i++;
                if (++r->m == 5) {
                    r->qmatch = 0;
                    emit(r, out, n, k, from, 5);
                }
                continue;
            }
            char h[6];
            h[0] = '>';
            memcpy(h + 1, from, r->m);
            r->qmatch = 0;
            emit(r, out, n, k, h, 1 + r->m);
            continue; /* c is looked at again */
        }
        if (r->bol && c == '>') {
            r->bol = 0;
            r->qmatch = 1;
            r->m = 0;
            i++;
            continue;
        }
        if (c == '\n') {
            emit(r, out, n, k, "\r\n", 2);
            r->bol = 1;
            i++;
            continue;
        }
        /* a run of ordinary bytes up to the next LF (memchr: most of a
         * message is long runs); memmove, since st_reader_read may have
         * put tmp inside out, ahead of the output */
        size_t lim = got - i < n - *k ? got : i + (n - *k);
        const char *nl = memchr(tmp + i, '\n', lim - i);
        size_t j = nl ? (size_t)(nl - tmp) : lim;
        memmove(out + *k, tmp + i, j - i);
        *k += j - i;
        r->wpos += j - i;
        i = j;
        r->bol = 0;
        if (nl && n - *k >= 2) {
            /* its line break, here rather than in another turn */
            out[(*k)++] = '\r';
            out[(*k)++] = '\n';
            r->wpos += 2;
            r->bol = 1;
            i++;
        }
    }
    return i;
}

/* Disk bytes that may be converted in one go from r->pos: up to the next
 * seek point due, so points land on their multiples. */
static size_t slice_limit(const st_reader *r, size_t want)
{
    if (r->ck_every && r->pos < r->ck_next && want > r->ck_next - r->pos) {
        want = (size_t)(r->ck_next - r->pos);
    }
    return want;
}

/* Reads into the caller's buffer itself, at its far end, when it has room
 * for this much input (and the output it may grow to): a scan with a big
 * buffer then costs one pread per buffer, not one per 4 KiB. */
#define INPLACE_MIN (2 * 4096 + READ_SLACK)
/* Output a read may owe from bytes consumed before it: a held ">From"
 * prefix (5 bytes), rounded up. */
#define READ_SLACK 8

long st_reader_read(st_reader *r, void *buf, size_t n)
{
    char *out = buf;
    size_t k = 0;
    char tmp[4096];
    if (!r->file) {
        return ST_EINVAL;
    }
    while (k < n) {
        if (give_carry(r, out, n, &k) || k == n) {
            continue;
        }
        if (r->pos >= r->end) {
            if (r->qmatch) {
                conv_end(r, out, n, &k);
                continue;
            }
            break;
        }
        uint64_t want = r->end - r->pos;
        char *in = tmp;
        if (n - k >= INPLACE_MIN) {
            /* Input at out[n - want, n): each byte consumed yields at most
             * 2 out, plus READ_SLACK owed from before, so with 2 * want <=
             * n - k - READ_SLACK the output never passes the input. */
            size_t room = (n - k - READ_SLACK) / 2;
            if (want > room) {
                want = room;
            }
            want = slice_limit(r, (size_t)want);
            in = out + n - want;
        } else {
            if (want > sizeof tmp) {
                want = sizeof tmp;
            }
            if (want > n - k) {
                want = n - k; /* output is at least as long as input */
            }
            want = slice_limit(r, (size_t)want);
        }
        long got = st_vpread(r->file, in, (size_t)want, r->pos);
        if (got <= 0) {
            return got < 0 ? got : ST_EIO; /* truncated under us */
        }
        r->pos += conv(r, in, (size_t)got, out, n, &k);
        track(r);
    }
    return (long)k;
}

void st_wire_init(st_reader *r)
{
    memset(r, 0, sizeof *r);
    r->bol = 1;
    r->end = UINT64_MAX;
}

void st_wire_feed(st_reader *r, const char *disk, size_t n, void (*out)(void *ctx, const char *p, size_t n),
                  void *ctx)
{
    char ob[4096];
    size_t i = 0, k = 0;
    while (i < n || r->icarry < r->ncarry) {
        give_carry(r, ob, sizeof ob, &k);
        if (k < sizeof ob && i < n) {
            size_t used = conv(r, disk + i, slice_limit(r, n - i), ob, sizeof ob, &k);
            i += used;
            r->pos += used;
            track(r);
        }
        if (k == sizeof ob || i == n) {
            out(ctx, ob, k);
            k = 0;
        }
    }
}

void st_wire_end(st_reader *r, void (*out)(void *ctx, const char *p, size_t n), void *ctx)
{
    char ob[16];
    size_t k = 0;
    conv_end(r, ob, sizeof ob, &k);
    out(ctx, ob, k);
}
