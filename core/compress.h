/*
 * compress.h -- COMPRESS=DEFLATE (RFC 4978): raw deflate both ways.
 *
 * Once a client sends COMPRESS DEFLATE and gets OK, every byte after that
 * OK (and after any TLS) is deflated. The connection engine inflates what
 * it reads into c->in and deflates c->out before writing. Memory: the
 * deflate side uses a small window and memLevel (about 8 KiB); the inflate
 * side must accept a 32 KiB window, as the client chooses it.
 */
#ifndef COMPRESS_H
#define COMPRESS_H

#include <stddef.h>
#include "util.h"

typedef struct imap_z imap_z;

imap_z *z_new(void);
void    z_free(imap_z *z);

/* Take up to n compressed bytes from the peer into the pending input.
 * Returns bytes taken. */
size_t  z_feed(imap_z *z, const void *p, size_t n);
/* Room for more compressed input (bytes). */
size_t  z_feed_room(const imap_z *z);
/* Inflate pending input into out (up to cap). Returns bytes produced, 0 if
 * nothing could be produced now, -1 on a corrupt stream. */
long    z_inflate(imap_z *z, void *out, size_t cap);
/* Compressed input or inflated output still held inside. */
int     z_pending_in(const imap_z *z);

/* Deflate n bytes and append the result to out; with flush, end with a
 * sync flush so the peer can decode everything so far. 0 or -1. */
int     z_deflate(imap_z *z, const void *p, size_t n, dbuf *out, int flush);

#endif
