/*
 * net.c -- the lwIP network port (see port.h): lwIP 2.1's raw TCP API with
 * NO_SYS=1, driven from one poll loop.
 *
 * One turn of port_poll(): push out what the core wrote (tcp_output), poll
 * the TAP device's fd until the nearest lwIP timer or the core's deadline,
 * feed the frames to lwIP, run lwIP's timers, then hand the core its
 * events. lwIP's callbacks (accept, recv, sent, err) only record state in
 * the port_conn; the core is called back from the dispatch step alone, so it
 * never re-enters lwIP from inside lwIP.
 *
 * Events are level-triggered, as poll(2) is for the posix port: READ while
 * received bytes (or the peer's FIN) wait and the core wants to read, WRITE
 * while lwIP's send buffer has room past its low-water marks and the core
 * wants to write, READ|HUP once lwIP has dropped the connection.
 *
 * Received data is copied out of lwIP's pbufs into a per-connection buffer
 * at once, so pool pbufs are never held by a slow reader; the window is
 * reopened (tcp_recved) only as the core reads, which bounds that buffer by
 * TCP_WND and pushes back on the client like a full socket buffer does.
 *
 * Run-time settings (environment; defaults from Kconfig):
 *   PICOIMAPD_LWIP_IF    TAP device name            (CONFIG_LWIP_TAP_IFNAME)
 *   PICOIMAPD_LWIP_ADDR  our IPv4 address/prefix    (CONFIG_LWIP_IPADDR)
 *   PICOIMAPD_LWIP_GW    default gateway, or empty  (CONFIG_LWIP_GATEWAY)
 */
#include "port.h"
#include "lwip_port.h"

#include "lwip/init.h"
#include "lwip/ip_addr.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"
#include "lwip/timeouts.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Frames taken from the TAP device per loop turn: enough to empty the
 * device's queue under a full window from several clients, few enough that
 * the core gets a turn between bursts. */
#define FRAMES_PER_TURN 256

/* How long the process lingers at exit so lwIP can deliver what the core
 * wrote last (BYE) and close with FIN; the kernel does this for the posix
 * port, here nobody else would. */
#define EXIT_DRAIN_MS 2000

/* lwIP's coarse poll interval (in 500 ms ticks) at which a connection whose
 * write failed for want of memory is retried. */
#define RETRY_POLL_TICKS 2

struct port_listener {
    struct tcp_pcb *pcb;   /* lwIP's listening pcb */
    int             kind;  /* handed to imap_on_accept */
};

struct port_conn {
    struct port_conn *next, *prev; /* all connections, closed ones until reaped */
    struct tcp_pcb *pcb;    /* NULL once lwIP dropped it or we closed it */
    void           *ctx;    /* the core's context; NULL until accepted */
    int             kind;   /* listener kind */
    int             accepted; /* imap_on_accept has been called */
    int             want_rd;  /* the core wants PORT_EV_READ */
    int             want_wr;  /* the core wants PORT_EV_WRITE */
    int             fin;      /* the peer has sent FIN */
    err_t           err;      /* lwIP's error once it freed the pcb, else ERR_OK */
    int             dead;     /* port_close was called; freed by reap() */
    int             unflushed; /* tcp_write since the last tcp_output */
    int             blocked;  /* a write failed for want of memory; cleared by sent/poll */
    unsigned char  *rx;       /* received, not yet read bytes: rx[rx_off..rx_off+rx_len) */
    size_t          rx_off, rx_len, rx_cap;
    ip_addr_t       peer;     /* the client's address */
};

static struct port_conn *conn_head, *conn_tail; /* every connection */
static int pending_accepts;          /* accepted by lwIP, not yet by the core */
static int any_dead;                 /* reap() has work */
static struct netif tap_netif;       /* the one interface */
static int tap_fd = -1;              /* its fd, polled by port_poll */
static int net_ready;                /* lwIP and the netif are up */
static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v ? v : def;
}

static void flush_output(void);
static void exit_drain(void);

/* Bring up lwIP and the TAP netif, once, before the first listener. */
static int net_init(void)
{
    if (net_ready) {
        return 0;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    const char *ifname = env_or("PICOIMAPD_LWIP_IF", CONFIG_LWIP_TAP_IFNAME);
    const char *addr = env_or("PICOIMAPD_LWIP_ADDR", CONFIG_LWIP_IPADDR);
    const char *gw = env_or("PICOIMAPD_LWIP_GW", CONFIG_LWIP_GATEWAY);
    char a[32];
    unsigned prefix = 24;
    const char *slash = strchr(addr, '/');
    size_t alen = slash ? (size_t)(slash - addr) : strlen(addr);
    if (alen >= sizeof a) {
        log_err("PICOIMAPD_LWIP_ADDR: bad address %s", addr);
        return -1;
    }
    memcpy(a, addr, alen);
    a[alen] = 0;
    if (slash) {
        char *end;
        unsigned long pl = strtoul(slash + 1, &end, 10);
        if (*end || pl > 32) {
            log_err("PICOIMAPD_LWIP_ADDR: bad prefix in %s", addr);
            return -1;
        }
        prefix = (unsigned)pl;
    }
    ip4_addr_t ip, mask, gwa;
    if (!ip4addr_aton(a, &ip)) {
        log_err("PICOIMAPD_LWIP_ADDR: bad address %s", addr);
        return -1;
    }
    ip4_addr_set_u32(&mask, prefix ? lwip_htonl(0xffffffffu << (32 - prefix)) : 0);
    ip4_addr_set_zero(&gwa);
    if (gw[0] && !ip4addr_aton(gw, &gwa)) {
        log_err("PICOIMAPD_LWIP_GW: bad address %s", gw);
        return -1;
    }
    lwip_init();
    tap_fd = tapif_open(&tap_netif, ifname, &ip, &mask, &gwa);
    if (tap_fd < 0) {
        return -1;
    }
    net_ready = 1;
    atexit(exit_drain);
    log_info("lwIP %s on %s, address %s/%u", LWIP_VERSION_STRING, ifname, a, prefix);
    return 0;
}

/* ---- lwIP callbacks: record state only ---- */

static void conn_link(struct port_conn *c)
{
    c->prev = conn_tail;
    if (conn_tail) {
        conn_tail->next = c;
    } else {
        conn_head = c;
    }
    conn_tail = c;
}

static void conn_unlink(struct port_conn *c)
{
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        conn_head = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    } else {
        conn_tail = c->prev;
    }
}

/* Append a received pbuf chain to c's buffer. -1: out of memory (lwIP then
 * keeps the data and offers it again later). */
static int rx_append(struct port_conn *c, const struct pbuf *p)
{
    size_t need = p->tot_len;
    if (c->rx_off + c->rx_len + need > c->rx_cap && c->rx_off) {
        memmove(c->rx, c->rx + c->rx_off, c->rx_len);
        c->rx_off = 0;
    }
    if (c->rx_len + need > c->rx_cap) {
        /* The receive window bounds this: at most TCP_WND unread bytes. */
        size_t cap = c->rx_cap ? c->rx_cap : 2048;
        while (cap < c->rx_len + need) {
            cap *= 2;
        }
        unsigned char *np = realloc(c->rx, cap);
        if (!np) {
            return -1;
        }
        c->rx = np;
        c->rx_cap = cap;
    }
    pbuf_copy_partial(p, c->rx + c->rx_off + c->rx_len, p->tot_len, 0);
    c->rx_len += need;
    return 0;
}

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
    struct port_conn *c = arg;
    (void)pcb;
    if (!p) {
        c->fin = 1;
        return ERR_OK;
    }
    if (err != ERR_OK) {
        pbuf_free(p);
        return ERR_OK;
    }
    if (rx_append(c, p) < 0) {
        return ERR_MEM;
    }
    pbuf_free(p);
    return ERR_OK;
}

static err_t on_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
    struct port_conn *c = arg;
    (void)pcb;
    (void)len;
    c->blocked = 0;
    return ERR_OK;
}

static err_t on_tcp_poll(void *arg, struct tcp_pcb *pcb)
{
    struct port_conn *c = arg;
    (void)pcb;
    c->blocked = 0;
    return ERR_OK;
}

/* lwIP has freed the pcb (reset by the peer, retransmissions exhausted). */
static void on_err(void *arg, err_t err)
{
    struct port_conn *c = arg;
    if (!c) {
        return;
    }
    c->pcb = NULL;
    c->err = err != ERR_OK ? err : ERR_ABRT;
}

static err_t on_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
    struct port_listener *l = arg;
    if (err != ERR_OK || !pcb) {
        return ERR_VAL;
    }
    struct port_conn *c = calloc(1, sizeof *c);
    if (!c) {
        tcp_abort(pcb);
        return ERR_ABRT;
    }
    c->pcb = pcb;
    c->kind = l->kind;
    c->want_rd = 1;
    ip_addr_copy(c->peer, pcb->remote_ip);
    conn_link(c);
    pending_accepts++;
    tcp_arg(pcb, c);
    tcp_recv(pcb, on_recv);
    tcp_sent(pcb, on_sent);
    tcp_err(pcb, on_err);
    tcp_poll(pcb, on_tcp_poll, RETRY_POLL_TICKS);
    /* Replies are written whole by the core; Nagle would only delay the
     * last segment of each (the posix port sets TCP_NODELAY too). */
    tcp_nagle_disable(pcb);
    return ERR_OK;
}

/* ---- port.h ---- */

port_listener *port_listen(const char *addr, unsigned port, int kind)
{
    if (net_init() < 0) {
        return NULL;
    }
    ip_addr_t ip;
    if (strcmp(addr, "0.0.0.0") == 0 || strcmp(addr, "::") == 0 || strcmp(addr, "*") == 0) {
        /* IPv4 only in this build: "::" means every address we have. */
        ip_addr_set_any(0, &ip);
    } else if (!ipaddr_aton(addr, &ip)) {
        log_err("listen %s:%u: not an IPv4 address", addr, port);
        return NULL;
    }
    struct port_listener *l = calloc(1, sizeof *l);
    struct tcp_pcb *pcb = tcp_new();
    if (!l || !pcb) {
        log_err("listen %s:%u: out of memory", addr, port);
        free(l);
        if (pcb) {
            tcp_abort(pcb);
        }
        return NULL;
    }
    err_t e = tcp_bind(pcb, &ip, (u16_t)port);
    if (e != ERR_OK) {
        log_err("listen %s:%u: %s", addr, port,
                e == ERR_USE ? "address in use" : e == ERR_VAL ? "not our address" : "lwIP error");
        tcp_abort(pcb);
        free(l);
        return NULL;
    }
    struct tcp_pcb *lp = tcp_listen_with_backlog(pcb, TCP_DEFAULT_LISTEN_BACKLOG);
    if (!lp) {
        log_err("listen %s:%u: out of memory", addr, port);
        tcp_abort(pcb);
        free(l);
        return NULL;
    }
    l->pcb = lp;
    l->kind = kind;
    tcp_arg(lp, l);
    tcp_accept(lp, on_accept);
    log_info("listening on %s:%u (lwIP)", addr, port);
    return l;
}

/* lwIP is a TCP/IP stack only: there is no file system name space for a
 * socket to live in, so a UNIX-domain listener cannot exist here. */
port_listener *port_listen_unix(const char *path, unsigned mode, const char *group, int kind)
{
    (void)mode;
    (void)group;
    (void)kind;
    log_err("listen unix:%s: UNIX-domain sockets are not available in the lwIP port; "
            "use lmtp = host:port", path);
    return NULL;
}

void port_set_ctx(port_conn *c, void *ctx)
{
    c->ctx = ctx;
}

/* Reopen the window by n bytes (tcp_recved takes 16 bits at a time). */
static void window_update(struct tcp_pcb *pcb, size_t n)
{
    while (n > 0) {
        u16_t k = n > 0xffff ? 0xffff : (u16_t)n;
        tcp_recved(pcb, k);
        n -= k;
    }
}

long port_read(port_conn *c, void *buf, size_t n)
{
    if (c->rx_len) {
        size_t m = n < c->rx_len ? n : c->rx_len;
        memcpy(buf, c->rx + c->rx_off, m);
        c->rx_off += m;
        c->rx_len -= m;
        if (!c->rx_len) {
            /* Idle connections give their buffers back. */
            free(c->rx);
            c->rx = NULL;
            c->rx_off = c->rx_cap = 0;
        }
        if (c->pcb) {
            window_update(c->pcb, m);
        }
        return (long)m;
    }
    if (c->err != ERR_OK || c->fin || !c->pcb) {
        return -1;
    }
    return 0;
}

long port_write(port_conn *c, const void *buf, size_t n)
{
    if (!c->pcb || c->err != ERR_OK) {
        return -1;
    }
    if (n == 0 || tcp_sndqueuelen(c->pcb) >= TCP_SND_QUEUELEN) {
        return 0;
    }
    size_t m = tcp_sndbuf(c->pcb);
    if (m > n) {
        m = n;
    }
    if (m > 0xffff) {
        m = 0xffff;
    }
    if (m == 0) {
        return 0;
    }
    err_t e = tcp_write(c->pcb, buf, (u16_t)m, TCP_WRITE_FLAG_COPY);
    /* ERR_MEM: the segment queue or memory is short; a smaller piece may
     * still fit. */
    while (e == ERR_MEM && m > TCP_MSS) {
        m /= 2;
        e = tcp_write(c->pcb, buf, (u16_t)m, TCP_WRITE_FLAG_COPY);
    }
    if (e == ERR_MEM) {
        c->blocked = 1;
        return 0;
    }
    if (e != ERR_OK) {
        return -1;
    }
    c->unflushed = 1;
    return (long)m;
}

void port_want(port_conn *c, int rd, int wr)
{
    c->want_rd = rd;
    c->want_wr = wr;
}

void port_close(port_conn *c)
{
    if (c->dead) {
        return;
    }
    c->dead = 1;
    c->ctx = NULL;
    any_dead = 1;
    if (!c->accepted) {
        pending_accepts--;
        c->accepted = 1;
    }
    struct tcp_pcb *pcb = c->pcb;
    c->pcb = NULL;
    if (pcb) {
        tcp_arg(pcb, NULL);
        tcp_recv(pcb, NULL);
        tcp_sent(pcb, NULL);
        tcp_err(pcb, NULL);
        tcp_poll(pcb, NULL, 0);
        /* Count unread bytes as read: lwIP, like Linux, answers a close
         * with unread data by a reset, which would throw away the reply
         * (BYE) still queued for the client. */
        window_update(pcb, c->rx_len);
        if (tcp_close(pcb) != ERR_OK) {
            tcp_abort(pcb);
        }
    }
    free(c->rx);
    c->rx = NULL;
    c->rx_len = c->rx_off = c->rx_cap = 0;
}

/* Free the connections closed during this turn, after dispatch. */
static void reap(void)
{
    if (!any_dead) {
        return;
    }
    any_dead = 0;
    struct port_conn *c = conn_head;
    while (c) {
        struct port_conn *nx = c->next;
        if (c->dead) {
            conn_unlink(c);
            free(c);
        }
        c = nx;
    }
}

void port_peer(port_conn *c, char *buf, size_t n)
{
    if (!ipaddr_ntoa_r(&c->peer, buf, (int)n) && n) {
        snprintf(buf, n, "unknown");
    }
}

int port_peer_is_loopback(port_conn *c)
{
    return ip4_addr_isloopback(ip_2_ip4(&c->peer));
}

/* Room in lwIP's send queue past the same low-water marks lwIP's own
 * netconn layer uses, so WRITE is not reported for a few spare bytes. */
static int writable(const struct port_conn *c)
{
    return c->pcb && !c->blocked && tcp_sndbuf(c->pcb) >= TCP_SNDLOWAT &&
           tcp_sndqueuelen(c->pcb) < TCP_SNDQUEUELOWAT;
}

static int conn_events(const struct port_conn *c)
{
    if (c->dead || !c->ctx) {
        return 0;
    }
    if (c->err != ERR_OK || !c->pcb) {
        return PORT_EV_READ | PORT_EV_HUP;
    }
    int ev = 0;
    if (c->want_rd && (c->rx_len || c->fin)) {
        ev |= PORT_EV_READ;
    }
    if (c->want_wr && writable(c)) {
        ev |= PORT_EV_WRITE;
    }
    return ev;
}

static void flush_output(void)
{
    for (struct port_conn *c = conn_head; c; c = c->next) {
        if (c->unflushed && c->pcb) {
            tcp_output(c->pcb);
        }
        c->unflushed = 0;
    }
}

int port_watch_fd(int fd)
{
    (void)fd;
    return -1; /* lwIP's loop polls its netif, not descriptors */
}

int port_poll(int timeout_ms)
{
    if (stop_flag) {
        return -1;
    }
    if (net_init() < 0) {
        port_fatal("lwIP: cannot bring up the network interface");
    }
    flush_output();
    int t = timeout_ms;
    if (pending_accepts) {
        t = 0;
    }
    for (struct port_conn *c = conn_head; c && t != 0; c = c->next) {
        if (conn_events(c)) {
            t = 0;
        }
    }
    u32_t sleep = sys_timeouts_sleeptime();
    if (sleep != SYS_TIMEOUTS_SLEEPTIME_INFINITE && (t < 0 || sleep < (u32_t)t)) {
        t = (int)sleep;
    }
    struct pollfd pfd = {.fd = tap_fd, .events = POLLIN, .revents = 0};
    int r = poll(&pfd, 1, t);
    if (r < 0 && errno != EINTR) {
        log_warn("poll: %s", strerror(errno));
    }
    if (r > 0 && (pfd.revents & POLLIN)) {
        tapif_input(&tap_netif, FRAMES_PER_TURN);
    }
    sys_check_timeouts();
    /* New connections, then events; a connection closed by the core during
     * either stays in the list (dead) until reap(). */
    if (pending_accepts) {
        for (struct port_conn *c = conn_head; c; c = c->next) {
            if (c->dead || c->accepted) {
                continue;
            }
            c->accepted = 1;
            pending_accepts--;
            void *ctx = imap_on_accept(c, c->kind);
            if (!ctx) {
                port_close(c);
            } else {
                c->ctx = ctx;
            }
        }
    }
    for (struct port_conn *c = conn_head; c; c = c->next) {
        int ev = conn_events(c);
        if (ev) {
            imap_on_event(c->ctx, ev);
        }
    }
    flush_output();
    reap();
    return stop_flag ? -1 : 0;
}

/* At exit: keep the stack running until everything written has been
 * acknowledged (or EXIT_DRAIN_MS passes), so the last replies and FINs
 * reach the clients. */
static void exit_drain(void)
{
    if (!net_ready) {
        return;
    }
    flush_output();
    uint64_t end = port_now_ms() + EXIT_DRAIN_MS;
    while (port_now_ms() < end) {
        int busy = 0;
        for (struct tcp_pcb *p = tcp_active_pcbs; p; p = p->next) {
            if (p->unsent || p->unacked) {
                busy = 1;
                break;
            }
        }
        if (!busy) {
            break;
        }
        struct pollfd pfd = {.fd = tap_fd, .events = POLLIN, .revents = 0};
        if (poll(&pfd, 1, 20) > 0) {
            tapif_input(&tap_netif, FRAMES_PER_TURN);
        }
        sys_check_timeouts();
    }
}
