/*
 * port.h -- the porting layer contract.
 *
 * The core (core/) and the store (storage/) see the outside world only
 * through the functions declared here. Exactly one network port is linked
 * (port/posix today; port/lwip later): the functions are resolved at link
 * time, as lwIP's sys_arch is, so there is no indirection on the hot path.
 *
 * Threading: none. port_poll() runs one turn of the loop and calls back into
 * the core from the same thread.
 *
 * Events delivered to the core (imap_on_event):
 *   PORT_EV_READ   the connection may have bytes to read; call port_read()
 *                  until it returns 0 (would block) or the core stops wanting.
 *   PORT_EV_WRITE  the connection can take more output; call port_write().
 *   PORT_EV_HUP    the peer closed or an error occurred; port_read() will
 *                  say so too. The core must call port_close() eventually.
 */
#ifndef PORT_H
#define PORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include "config.h"

typedef struct port_conn port_conn;     /* one accepted client connection */
typedef struct port_listener port_listener;

#define PORT_EV_READ  1
#define PORT_EV_WRITE 2
#define PORT_EV_HUP   4

/* ---- implemented by the port ---- */

/* Listen on addr ("127.0.0.1", "::", "0.0.0.0") and port. `kind` is handed
 * back to imap_on_accept() so the core can tell listeners apart (plain,
 * implicit TLS, LMTP). Returns NULL and logs on failure. */
port_listener *port_listen(const char *addr, unsigned port, int kind);

/* Listen on a UNIX-domain stream socket at `path` (LMTP from a local MTA:
 * Postfix's `lmtp:unix:/path`). The socket file gets permission bits `mode`
 * (connecting needs write permission) and, when `group` is not NULL, that
 * group, so an MTA running as its own user (postfix) can connect while
 * others cannot. Called before privileges are dropped. A socket file left
 * by an earlier run (nothing accepts on it) is replaced; a live one, or a
 * path that is not a socket, is an error. The file is removed at exit.
 * Ports without UNIX-domain sockets (lwIP) log why and return NULL. */
port_listener *port_listen_unix(const char *path, unsigned mode, const char *group, int kind);

/* Read up to n bytes. Returns >0 bytes read, 0 if nothing is available now,
 * -1 if the connection is closed or failed. */
long port_read(port_conn *c, void *buf, size_t n);

/* Write up to n bytes. Returns bytes accepted (possibly 0), -1 on error. */
long port_write(port_conn *c, const void *buf, size_t n);

/* Tell the loop which events the core wants for this connection. */
void port_want(port_conn *c, int read, int write);

/* Close and free the connection. No callback follows. */
void port_close(port_conn *c);

/* The peer's numeric address ("192.0.2.1" / "2001:db8::1") into buf. */
void port_peer(port_conn *c, char *buf, size_t n);

/* Nonzero when the peer's address is a loopback address. */
int port_peer_is_loopback(port_conn *c);

/* Run one turn of the loop: wait at most timeout_ms (-1 = forever) for
 * events and dispatch them. Returns -1 when the process was asked to stop
 * (SIGTERM/SIGINT), 0 otherwise. */
int port_poll(int timeout_ms);

/* Wake the loop when fd becomes readable: port_poll then calls
 * imap_on_wake() (the store's descriptor for syncs in flight; the core
 * reads what woke it). Returns 0, or -1 when the port cannot watch a
 * descriptor (the core then does without). */
int port_watch_fd(int fd);

/* Monotonic milliseconds, for timers. */
uint64_t port_now_ms(void);
/* Monotonic microseconds, for measuring loop turns. */
uint64_t port_now_us(void);

/* Wall-clock seconds since the epoch and the local zone offset in minutes
 * east of UTC at that time (for INTERNALDATE). */
int64_t port_time(int *tz_minutes);

/* Cryptographically strong random bytes (getrandom on Linux). */
void port_random(void *buf, size_t n);

/* Log levels. */
enum { LOG_ERR_ = 0, LOG_WARN_ = 1, LOG_INFO_ = 2, LOG_DEBUG_ = 3, LOG_TRACE_ = 4 };
void port_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void port_vlog(int level, const char *fmt, va_list ap);
void port_log_setup(const char *sink, int level);  /* "stderr" or "syslog" */

/* Start-up only: log and exit. */
void port_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* ---- implemented by the core, called by the port ---- */

/* A new connection was accepted on a listener of `kind`. Return the core's
 * context for it, or NULL to have the port close it at once. */
void *imap_on_accept(port_conn *c, int kind);

/* Events for a connection whose context is ctx. */
void imap_on_event(void *ctx, int events);

/* A descriptor given to port_watch_fd became readable. */
void imap_on_wake(void);

/* Set the core context of a connection (used by the port at accept time). */
void port_set_ctx(port_conn *c, void *ctx);

#define log_err(...)   port_log(LOG_ERR_, __VA_ARGS__)
#define log_warn(...)  port_log(LOG_WARN_, __VA_ARGS__)
#define log_info(...)  port_log(LOG_INFO_, __VA_ARGS__)
#define log_debug(...) port_log(LOG_DEBUG_, __VA_ARGS__)
#if CONFIG_DEBUG_TRACE
#define log_trace(...) port_log(LOG_TRACE_, __VA_ARGS__)
#else
#define log_trace(...) do { } while (0)
#endif

#endif
