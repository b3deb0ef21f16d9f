/* compress.c -- COMPRESS=DEFLATE over zlib (see compress.h). */
#include "compress.h"

#include "config.h"

#if CONFIG_EXT_COMPRESS
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define ZIN_MAX 16384   /* compressed bytes held while c->in is full */
#define DEFLATE_WBITS 11 /* 2 KiB window: most of the gain for IMAP text,
                            a fraction of the memory of 32 KiB */
#define DEFLATE_MEMLEVEL 3

struct imap_z {
    z_stream in;            /* inflate state */
    z_stream out;           /* deflate state */
    unsigned char zin[ZIN_MAX]; /* compressed input not yet inflated */
    size_t   zin_len;
    int      in_more;       /* inflate may have output without new input */
};

imap_z *z_new(void)
{
    imap_z *z = calloc(1, sizeof *z);
    if (!z) {
        return NULL;
    }
    if (inflateInit2(&z->in, -15) != Z_OK) {
        free(z);
        return NULL;
    }
    if (deflateInit2(&z->out, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -DEFLATE_WBITS, DEFLATE_MEMLEVEL,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        inflateEnd(&z->in);
        free(z);
        return NULL;
    }
    return z;
}

void z_free(imap_z *z)
{
    if (z) {
        inflateEnd(&z->in);
        deflateEnd(&z->out);
        free(z);
    }
}

size_t z_feed_room(const imap_z *z)
{
    return ZIN_MAX - z->zin_len;
}

size_t z_feed(imap_z *z, const void *p, size_t n)
{
    size_t k = n < z_feed_room(z) ? n : z_feed_room(z);
    if (k == 0) {
        return 0;   /* p may be NULL when there is nothing to feed */
    }
    memcpy(z->zin + z->zin_len, p, k);
    z->zin_len += k;
    return k;
}

int z_pending_in(const imap_z *z)
{
    return z->zin_len > 0 || z->in_more;
}

long z_inflate(imap_z *z, void *out, size_t cap)
{
    if (cap == 0) {
        return 0;
    }
    z->in.next_in = z->zin;
    z->in.avail_in = (uInt)z->zin_len;
    z->in.next_out = out;
    z->in.avail_out = (uInt)cap;
    int r = inflate(&z->in, Z_SYNC_FLUSH);
    if (r != Z_OK && r != Z_BUF_ERROR && r != Z_STREAM_END) {
        return -1;
    }
    size_t used = z->zin_len - z->in.avail_in;
    memmove(z->zin, z->zin + used, z->in.avail_in);
    z->zin_len = z->in.avail_in;
    long produced = (long)(cap - z->in.avail_out);
    /* A full output buffer may leave output inside zlib. */
    z->in_more = z->in.avail_out == 0;
    return produced;
}

int z_deflate(imap_z *z, const void *p, size_t n, dbuf *out, int flush)
{
    unsigned char buf[4096];
    z->out.next_in = (unsigned char *)(uintptr_t)p;
    z->out.avail_in = (uInt)n;
    do {
        z->out.next_out = buf;
        z->out.avail_out = sizeof buf;
        int r = deflate(&z->out, flush ? Z_SYNC_FLUSH : Z_NO_FLUSH);
        if (r != Z_OK && r != Z_BUF_ERROR) {
            return -1;
        }
        if (dbuf_add(out, buf, sizeof buf - z->out.avail_out) < 0) {
            return -1;
        }
    } while (z->out.avail_in > 0 || z->out.avail_out == 0);
    return 0;
}

#else
/* Compiled out: the command is not offered, so none of this is called. */
imap_z *z_new(void)
{
    return NULL;
}
void z_free(imap_z *z)
{
    (void)z;
}
size_t z_feed(imap_z *z, const void *p, size_t n)
{
    (void)z;
    (void)p;
    (void)n;
    return 0;
}
size_t z_feed_room(const imap_z *z)
{
    (void)z;
    return 0;
}
long z_inflate(imap_z *z, void *out, size_t cap)
{
    (void)z;
    (void)out;
    (void)cap;
    return -1;
}
int z_pending_in(const imap_z *z)
{
    (void)z;
    return 0;
}
int z_deflate(imap_z *z, const void *p, size_t n, dbuf *out, int flush)
{
    (void)z;
    (void)p;
    (void)n;
    (void)out;
    (void)flush;
    return -1;
}
#endif
