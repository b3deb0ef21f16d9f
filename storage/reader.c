/*
 * reader.c -- a message streamed back in wire form, in slices: LF becomes
 * CRLF and one '>' is dropped from lines matching /^>+From / (mboxrd).
 * The quoting decision may need bytes from the next slice (">Fr" | "om "),
 * so a line-start '>' is held back in the reader's state until it is known.
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
    r->bol = 1;
    return 0;
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
    memcpy(out + *k, s, c);
    *k += c;
    if (c < len) {
        memcpy(r->carry, s + c, len - c);
        r->ncarry = (unsigned)(len - c);
        r->icarry = 0;
    }
}

long st_reader_read(st_reader *r, void *buf, size_t n)
{
    static const char from[] = "From ";
    char *out = buf;
    size_t k = 0;
    char tmp[4096];
    if (!r->file) {
        return ST_EINVAL;
    }
    while (k < n) {
        if (r->icarry < r->ncarry) {
            size_t c = r->ncarry - r->icarry;
            if (c > n - k) {
                c = n - k;
            }
            memcpy(out + k, r->carry + r->icarry, c);
            r->icarry += (unsigned)c;
            k += c;
            continue;
        }
        r->ncarry = r->icarry = 0;
        if (r->pos >= r->end) {
            if (r->qmatch) {
                /* the message ended inside ">From": give back the '>' and all */
                char h[6];
                h[0] = '>';
                memcpy(h + 1, from, r->m);
                r->qmatch = 0;
                emit(r, out, n, &k, h, 1 + r->m);
                continue;
            }
            break;
        }
        uint64_t want = r->end - r->pos;
        if (want > sizeof tmp) {
            want = sizeof tmp;
        }
        if (want > n - k) {
            want = n - k; /* output is at least as long as input */
        }
        long got = st_vpread(r->file, tmp, (size_t)want, r->pos);
        if (got <= 0) {
            return got < 0 ? got : ST_EIO; /* truncated under us */
        }
        size_t i = 0;
        while (i < (size_t)got && k < n && r->ncarry == 0) {
            char c = tmp[i];
            if (r->qmatch) {
                if (r->m == 0 && c == '>') {
                    emit(r, out, n, &k, ">", 1); /* '>'s are alike: the held one is the first */
                    i++;
                    continue;
                }
                if (c == from[r->m]) {
                    i++;
                    if (++r->m == 5) {
                        r->qmatch = 0;
                        emit(r, out, n, &k, from, 5);
                    }
                    continue;
                }
                char h[6];
                h[0] = '>';
                memcpy(h + 1, from, r->m);
                r->qmatch = 0;
                emit(r, out, n, &k, h, 1 + r->m);
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
                emit(r, out, n, &k, "\r\n", 2);
                r->bol = 1;
                i++;
                continue;
            }
            /* a run of ordinary bytes */
            size_t j = i;
            size_t lim = (size_t)got - i < n - k ? (size_t)got : i + (n - k);
            while (j < lim && tmp[j] != '\n') {
                j++;
            }
            memcpy(out + k, tmp + i, j - i);
            k += j - i;
            i = j;
            r->bol = 0;
        }
        r->pos += i;
    }
    return (long)k;
}
