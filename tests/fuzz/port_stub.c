/*
 * port_stub.c -- the port layer for fuzz targets: no network, no clock
 * surprises, no log output. Every function is weak so a target that wants
 * to observe port calls (say, capture port_write output) can define its own.
 */
#include <stdlib.h>
#include <string.h>
#include "port.h"

__attribute__((weak)) port_listener *port_listen(const char *addr, unsigned port, int kind)
{
    return NULL;
}

__attribute__((weak)) port_listener *port_listen_unix(const char *path, unsigned mode,
                                                      const char *group, int kind)
{
    return NULL;
}

__attribute__((weak)) long port_read(port_conn *c, void *buf, size_t n)
{
    return -1;
}

/* Accept all output so producers run to completion. */
__attribute__((weak)) long port_write(port_conn *c, const void *buf, size_t n)
{
    return (long)n;
}

__attribute__((weak)) void port_want(port_conn *c, int read, int write)
{
}

__attribute__((weak)) void port_close(port_conn *c)
{
}

__attribute__((weak)) void port_peer(port_conn *c, char *buf, size_t n)
{
    if (n > 0) {
        strncpy(buf, "127.0.0.1", n - 1);
        buf[n - 1] = '\0';
    }
}

__attribute__((weak)) int port_peer_is_loopback(port_conn *c)
{
    return 1;
}

__attribute__((weak)) int port_poll(int timeout_ms)
{
    return -1;
}

/* A fixed clock: fuzz runs must be reproducible. */
__attribute__((weak)) uint64_t port_now_ms(void)
{
    return 1000;
}

__attribute__((weak)) int port_watch_fd(int fd)
{
    (void)fd;
    return -1;
}

__attribute__((weak)) uint64_t port_now_us(void)
{
    return 1000000;
}

__attribute__((weak)) int64_t port_time(int *tz_minutes)
{
    if (tz_minutes) {
        *tz_minutes = 0;
    }
    return 1767225600; /* 2026-01-01T00:00:00Z */
}

/* Deterministic "random" bytes, again for reproducibility. */
__attribute__((weak)) void port_random(void *buf, size_t n)
{
    unsigned char *p = buf;
    for (size_t i = 0; i < n; i++) {
        p[i] = (unsigned char)(i * 131 + 7);
    }
}

__attribute__((weak)) void port_vlog(int level, const char *fmt, va_list ap)
{
}

__attribute__((weak)) void port_log(int level, const char *fmt, ...)
{
}

__attribute__((weak)) void port_log_setup(const char *sink, int level)
{
}

__attribute__((weak)) void port_fatal(const char *fmt, ...)
{
    abort();
}

__attribute__((weak)) void port_set_ctx(port_conn *c, void *ctx)
{
}

/* port/tls.h and port/priv.h (issue 6): no TLS and no privileges here. */
#include "tls.h"
#include "priv.h"

#if CONFIG_TLS
__attribute__((weak)) int port_tls_setup(const char *cert, const char *key, char *err, size_t errlen)
{
    return -1;
}

__attribute__((weak)) int port_tls_reload(char *err, size_t errlen)
{
    return -1;
}

__attribute__((weak)) int port_tls_hup_requested(void)
{
    return 0;
}

__attribute__((weak)) port_tls *port_tls_new(port_conn *pc)
{
    return NULL;
}

__attribute__((weak)) int port_tls_handshake(port_tls *t, int *want)
{
    return PORT_TLS_FAILED;
}

__attribute__((weak)) long port_tls_read(port_tls *t, void *buf, size_t n)
{
    return -1;
}

__attribute__((weak)) long port_tls_write(port_tls *t, const void *buf, size_t n)
{
    return -1;
}

__attribute__((weak)) int port_tls_pending(const port_tls *t)
{
    return 0;
}

__attribute__((weak)) void port_tls_close(port_tls *t)
{
}

__attribute__((weak)) void port_tls_shutdown(void)
{
}
#endif

__attribute__((weak)) int port_drop_privileges(const char *user, const char *root_dir, int allow_root,
                                               char **paths[], size_t npaths, char *err, size_t errlen)
{
    return 0;
}
