/*
 * tls.h -- the TLS porting contract (port/tls_mbedtls.c implements it).
 *
 * TLS sits between the network port's byte stream (port_read/port_write)
 * and the core's buffers. Everything is non-blocking and runs on the one
 * loop thread: a call that cannot finish says which socket event it waits
 * for, and the core turns that into port_want().
 *
 * Memory: nothing is allocated per connection until port_tls_new(), so a
 * plaintext connection costs nothing extra. With Debian's mbedTLS the
 * record buffers are 16 KiB each way; a board build of mbedTLS with a
 * smaller MBEDTLS_SSL_OUT_CONTENT_LEN shrinks the session accordingly.
 *
 * Decrypted bytes: one TLS record may carry more plaintext than the core
 * asked for. port_tls_pending() says so; the loop must not sleep in
 * poll() while a connection that wants to read still has such bytes,
 * because the socket will not become readable for them.
 *
 * With CONFIG_TLS=0 the core's calls still compile, against the inline
 * stubs at the end of this header: c->tls is then always NULL, the
 * optimizer drops the TLS paths, and the binary has no TLS library in it.
 *
 * SIGHUP: port_tls_setup() installs the handler (the flag that
 * port_tls_hup_requested() reports) when TLS is configured; without TLS
 * configured, SIGHUP keeps whatever the network port set up.
 */
#ifndef PORT_TLS_H
#define PORT_TLS_H

#include <stddef.h>
#include "port.h"

typedef struct port_tls port_tls;   /* one TLS session over one port_conn */

/* Result of port_tls_handshake(). */
#define PORT_TLS_DONE     1    /* handshake complete: read and write data */
#define PORT_TLS_AGAIN    0    /* in progress: wait for *want, call again */
#define PORT_TLS_FAILED (-1)   /* failed (logged at debug): close */

#if CONFIG_TLS

/* Start-up: load the PEM certificate chain and private key (RSA or
 * ECDSA), check that they belong together, and build the server
 * configuration (TLS 1.2, ECDHE with AES-GCM or ChaCha20-Poly1305 only).
 * Returns 0, or -1 with a message naming the file and the problem in err.
 * May be called again (port_tls_reload does): sessions already running
 * keep the configuration they started with. */
int port_tls_setup(const char *cert, const char *key, char *err, size_t errlen);

/* Load the certificate and key again from the paths given to
 * port_tls_setup (SIGHUP). On error the old ones stay in use and err says
 * why. Returns 0 or -1. */
int port_tls_reload(char *err, size_t errlen);

/* 1 once after the process received SIGHUP (the request to reload the
 * certificate), else 0. Cheap; the core calls it every loop turn. */
int port_tls_hup_requested(void);

/* Allocate a server session over pc. NULL if out of memory or
 * port_tls_setup() never succeeded. */
port_tls *port_tls_new(port_conn *pc);

/* Drive the handshake. Returns PORT_TLS_DONE, PORT_TLS_AGAIN with *want
 * set to PORT_EV_READ or PORT_EV_WRITE, or PORT_TLS_FAILED. */
int port_tls_handshake(port_tls *t, int *want);

/* Like port_read/port_write over the encrypted stream: >0 bytes, 0 if
 * nothing can be done now, -1 on error or when the peer sent
 * close_notify. port_tls_write() may keep part of a record queued inside
 * the TLS library: after it returns 0, call it again with the same
 * buffer (the core's output queue does exactly that). */
long port_tls_read(port_tls *t, void *buf, size_t n);
long port_tls_write(port_tls *t, const void *buf, size_t n);

/* Nonzero when the session holds decrypted (or received but not yet
 * decrypted) bytes the socket will not signal. */
int port_tls_pending(const port_tls *t);

/* Send close_notify (best effort, never waits) and free the session.
 * Call before port_close(). NULL is fine. */
void port_tls_close(port_tls *t);

/* Free the configuration at exit (for leak checkers). */
void port_tls_shutdown(void);

#else /* TLS compiled out: every call is a no-op the compiler removes. */

static inline int port_tls_setup(const char *cert, const char *key, char *err, size_t errlen)
{
    (void)cert; (void)key; (void)err; (void)errlen;
    return -1;
}
static inline int port_tls_reload(char *err, size_t errlen) { (void)err; (void)errlen; return -1; }
static inline int port_tls_hup_requested(void) { return 0; }
static inline port_tls *port_tls_new(port_conn *pc) { (void)pc; return NULL; }
static inline int port_tls_handshake(port_tls *t, int *want) { (void)t; (void)want; return PORT_TLS_FAILED; }
static inline long port_tls_read(port_tls *t, void *b, size_t n) { (void)t; (void)b; (void)n; return -1; }
static inline long port_tls_write(port_tls *t, const void *b, size_t n) { (void)t; (void)b; (void)n; return -1; }
static inline int port_tls_pending(const port_tls *t) { (void)t; return 0; }
static inline void port_tls_close(port_tls *t) { (void)t; }
static inline void port_tls_shutdown(void) { }

#endif
#endif
