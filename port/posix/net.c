/* net.c -- BSD sockets + poll(2): the host network port (see port.h). */
#include "port.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#if CONFIG_POSIX_EPOLL
#include <sys/epoll.h>
#endif
#include <unistd.h>

struct port_listener {
    int fd;     /* listening socket */
    int kind;   /* handed to imap_on_accept */
    char *path; /* UNIX-domain socket file, removed at exit; NULL for TCP */
    dev_t dev;  /* identity of that file as we made it, so that exit never */
    ino_t ino;  /* removes a socket a newer instance has put there */
};

struct port_conn {
    int   fd;       /* the socket */
    int   events;   /* POLLIN/POLLOUT wanted (same bits as EPOLLIN/OUT) */
    int   ep_events; /* what epoll has registered for it */
    int   slot;     /* index in the poll table */
    void *ctx;      /* the core's context */
    struct sockaddr_storage peer; /* for port_peer */
    int   dead;     /* closed; freed at the end of the loop turn */
    struct port_conn *next_dead;  /* in dead_list */
};

/* The poll table: listeners first, then connections. Rebuilt lazily. */
static port_listener *listeners[8];
static unsigned nlisteners;
static port_conn **conns;          /* by slot */
static unsigned nconns, capconns;
static volatile sig_atomic_t stop_flag;
static port_conn *dead_list;       /* closed, not yet freed */
#if CONFIG_POSIX_EPOLL
/* epoll: the cost of a loop turn follows the active connections, not all
 * of them (poll() over 10,000 idle ones spent most of the time in the
 * kernel's sock_poll). Listeners are tagged 1..8 in data.u64, connections
 * by their pointer. */
static int epfd = -1;

static int ep_fd(void)
{
    if (epfd < 0) {
        epfd = epoll_create1(EPOLL_CLOEXEC);
        if (epfd < 0) {
            port_fatal("epoll_create1: %s", strerror(errno));
        }
    }
    return epfd;
}

static void ep_add(int fd, uint64_t tag, void *ptr)
{
    struct epoll_event e;
    memset(&e, 0, sizeof e);
    e.events = EPOLLIN;
    if (ptr) {
        e.data.ptr = ptr;
    } else {
        e.data.u64 = tag;
    }
    if (epoll_ctl(ep_fd(), EPOLL_CTL_ADD, fd, &e) < 0) {
        log_warn("epoll_ctl: %s", strerror(errno));
    }
}
#endif

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void setup_signals(void)
{
    static int done;
    if (done) {
        return;
    }
    done = 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* SIGHUP reloads what can be reloaded (the TLS layer installs its own
     * handler); without TLS it must not kill the daemon. */
    struct sigaction old;
    if (sigaction(SIGHUP, NULL, &old) == 0 && old.sa_handler == SIG_DFL) {
        signal(SIGHUP, SIG_IGN);
    }
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

port_listener *port_listen(const char *addr, unsigned port, int kind)
{
    setup_signals();
    if (nlisteners >= sizeof listeners / sizeof listeners[0]) {
        log_err("too many listeners");
        return NULL;
    }
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    char ps[16];
    snprintf(ps, sizeof ps, "%u", port);
    int rc = getaddrinfo(addr, ps, &hints, &ai);
    if (rc != 0) {
        log_err("listen %s:%u: %s", addr, port, gai_strerror(rc));
        return NULL;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0) {
        log_err("socket: %s", strerror(errno));
        freeaddrinfo(ai);
        return NULL;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ai->ai_family == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    }
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0 || set_nonblock(fd) < 0) {
        log_err("listen %s:%u: %s", addr, port, strerror(errno));
        close(fd);
        freeaddrinfo(ai);
        return NULL;
    }
    freeaddrinfo(ai);
    port_listener *l = calloc(1, sizeof *l);
    if (!l) {
        close(fd);
        return NULL;
    }
    l->fd = fd;
    l->kind = kind;
    listeners[nlisteners++] = l;
#if CONFIG_POSIX_EPOLL
    ep_add(fd, nlisteners, NULL);
#endif
    log_info("listening on %s:%u", addr, port);
    return l;
}

/* Remove our UNIX-domain socket files at exit (after SIGTERM's drain).
 * Best effort: after the privilege drop the directory may no longer be
 * writable for us, and then the next start replaces the stale file. */
static void unlink_sockets(void)
{
    for (unsigned i = 0; i < nlisteners; i++) {
        port_listener *l = listeners[i];
        struct stat st;
        if (l->path && lstat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino &&
            unlink(l->path) < 0) {
            log_debug("unlink %s: %s", l->path, strerror(errno));
        }
    }
}

/* A socket file at path that nothing accepts on is left over from a run
 * that did not exit cleanly: remove it. Returns 0 when the path is free. */
static int clear_stale_socket(const char *path, const struct sockaddr_un *sa)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT) {
            return 0;
        }
        log_err("listen unix:%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        /* a typo in the config must not delete a file */
        log_err("listen unix:%s: exists and is not a socket", path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_err("socket: %s", strerror(errno));
        return -1;
    }
    int live = connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0;
    int err = errno;
    close(fd);
    if (live || (err != ECONNREFUSED && err != ENOENT)) {
        log_err("listen unix:%s: %s", path, live ? "in use by another process" : strerror(err));
        return -1;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        log_err("listen unix:%s: removing the stale socket: %s", path, strerror(errno));
        return -1;
    }
    log_info("replaced the stale socket %s", path);
    return 0;
}

port_listener *port_listen_unix(const char *path, unsigned mode, const char *group, int kind)
{
    static int hooked;
    setup_signals();
    if (nlisteners >= sizeof listeners / sizeof listeners[0]) {
        log_err("too many listeners");
        return NULL;
    }
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path) {
        log_err("listen unix:%s: path longer than %zu bytes", path, sizeof sa.sun_path - 1);
        return NULL;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    gid_t gid = (gid_t)-1;
    if (group) {
        struct group *gr = getgrnam(group);
        if (!gr) {
            log_err("listen unix:%s: unknown group %s", path, group);
            return NULL;
        }
        gid = gr->gr_gid;
    }
    if (clear_stale_socket(path, &sa) < 0) {
        return NULL;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_err("socket: %s", strerror(errno));
        return NULL;
    }
    /* bind() makes the file with the umask's bits; chmod/chown before
     * listen() so nobody can connect while the bits are still the umask's */
    struct stat st;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        log_err("listen unix:%s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (chmod(path, (mode_t)mode) < 0 || (group && chown(path, (uid_t)-1, gid) < 0) ||
        lstat(path, &st) < 0 || listen(fd, 128) < 0 || set_nonblock(fd) < 0) {
        log_err("listen unix:%s: %s", path, strerror(errno));
        unlink(path);
        close(fd);
        return NULL;
    }
    port_listener *l = calloc(1, sizeof *l);
    char *p = l ? strdup(path) : NULL;
    if (!p) {
        free(l);
        unlink(path);
        close(fd);
        return NULL;
    }
    l->fd = fd;
    l->kind = kind;
    l->path = p;
    l->dev = st.st_dev;
    l->ino = st.st_ino;
    listeners[nlisteners++] = l;
#if CONFIG_POSIX_EPOLL
    ep_add(fd, nlisteners, NULL);
#endif
    if (!hooked) {
        hooked = 1;
        atexit(unlink_sockets);
    }
    log_info("listening on unix:%s (mode %04o%s%s)", path, mode, group ? ", group " : "",
             group ? group : "");
    return l;
}

static void accept_all(port_listener *l)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) {
                log_warn("accept: %s", strerror(errno));
            }
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        port_conn *c = calloc(1, sizeof *c);
        if (!c || (nconns == capconns && !(capconns = capconns ? capconns * 2 : 64,
                                            conns = realloc(conns, capconns * sizeof *conns)))) {
            free(c);
            close(fd);
            return;
        }
        c->fd = fd;
        c->peer = ss;
        c->events = POLLIN;
        c->slot = (int)nconns;
        conns[nconns++] = c;
#if CONFIG_POSIX_EPOLL
        c->ep_events = EPOLLIN;
        ep_add(fd, 0, c);
#endif
        void *ctx = imap_on_accept(c, l->kind);
        if (!ctx) {
            port_close(c);
            continue;
        }
        c->ctx = ctx;
    }
}

void port_set_ctx(port_conn *c, void *ctx)
{
    c->ctx = ctx;
}

long port_read(port_conn *c, void *buf, size_t n)
{
    ssize_t r = recv(c->fd, buf, n, 0);
    if (r > 0) {
        return (long)r;
    }
    if (r == 0) {
        return -1;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        return 0;
    }
    return -1;
}

long port_write(port_conn *c, const void *buf, size_t n)
{
    ssize_t r = send(c->fd, buf, n, MSG_NOSIGNAL);
    if (r >= 0) {
        return (long)r;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        return 0;
    }
    return -1;
}

void port_want(port_conn *c, int rd, int wr)
{
    c->events = (rd ? POLLIN : 0) | (wr ? POLLOUT : 0);
#if CONFIG_POSIX_EPOLL
    if (c->events != c->ep_events && !c->dead) {
        struct epoll_event e;
        memset(&e, 0, sizeof e);
        e.events = (uint32_t)c->events;
        e.data.ptr = c;
        if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e) == 0) {
            c->ep_events = c->events;
        }
    }
#endif
}

void port_close(port_conn *c)
{
    /* Swap the last connection into this slot; free the memory only after
     * the dispatch loop, which may still hold a pointer to it. */
    unsigned s = (unsigned)c->slot;
    if (s < nconns && conns[s] == c) {
        conns[s] = conns[--nconns];
        conns[s]->slot = (int)s;
    }
    close(c->fd);
    c->dead = 1;
    c->ctx = NULL;
    c->next_dead = dead_list;
    dead_list = c;
}

static void reap(void)
{
    while (dead_list) {
        port_conn *c = dead_list;
        dead_list = c->next_dead;
        free(c);
    }
}

void port_peer(port_conn *c, char *buf, size_t n)
{
    if (c->peer.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&c->peer)->sin_addr, buf, (socklen_t)n);
    } else if (c->peer.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&c->peer)->sin6_addr, buf, (socklen_t)n);
    } else if (c->peer.ss_family == AF_UNIX) {
        snprintf(buf, n, "local");
    } else {
        snprintf(buf, n, "unknown");
    }
}

int port_peer_is_loopback(port_conn *c)
{
    if (c->peer.ss_family == AF_INET) {
        return (ntohl(((struct sockaddr_in *)&c->peer)->sin_addr.s_addr) >> 24) == 127;
    }
    if (c->peer.ss_family == AF_INET6) {
        const struct in6_addr *a = &((struct sockaddr_in6 *)&c->peer)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) ||
               (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    /* a UNIX-domain peer is on this host, as trusted as loopback */
    return c->peer.ss_family == AF_UNIX;
}

#if CONFIG_POSIX_EPOLL
/* data.u64 of a watched descriptor (listeners are 1..8) */
#define WAKE_TAG 100

int port_watch_fd(int fd)
{
    struct epoll_event e;
    memset(&e, 0, sizeof e);
    e.events = EPOLLIN;
    e.data.u64 = WAKE_TAG;
    return epoll_ctl(ep_fd(), EPOLL_CTL_ADD, fd, &e) < 0 ? -1 : 0;
}

int port_poll(int timeout_ms)
{
    struct epoll_event evs[256];
    if (stop_flag) {
        return -1;
    }
    int n = epoll_wait(ep_fd(), evs, (int)(sizeof evs / sizeof evs[0]), timeout_ms);
    for (int i = 0; i < n; i++) {
        uint32_t re = evs[i].events;
        if (evs[i].data.u64 >= 1 && evs[i].data.u64 <= nlisteners) {
            accept_all(listeners[evs[i].data.u64 - 1]);
            continue;
        }
        if (evs[i].data.u64 == WAKE_TAG) {
            imap_on_wake();
            continue;
        }
        port_conn *c = evs[i].data.ptr;
        if (c->dead || !c->ctx) {
            continue;   /* closed earlier in this turn: freed by reap() */
        }
        int ev = 0;
        if (re & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
            ev |= PORT_EV_READ;
        }
        if (re & EPOLLOUT) {
            ev |= PORT_EV_WRITE;
        }
        if (re & (EPOLLHUP | EPOLLERR)) {
            ev |= PORT_EV_HUP;
        }
        imap_on_event(c->ctx, ev);
    }
    reap();
    return stop_flag ? -1 : 0;
}
#else
int port_watch_fd(int fd)
{
    (void)fd;
    return -1; /* only the epoll loop watches other descriptors */
}

int port_poll(int timeout_ms)
{
    static struct pollfd *pfd;
    static port_conn **snap;
    static unsigned cap;
    if (stop_flag) {
        return -1;
    }
    unsigned n = nlisteners + nconns;
    if (n > cap) {
        cap = n * 2;
        pfd = realloc(pfd, cap * sizeof *pfd);
        snap = realloc(snap, cap * sizeof *snap);
        if (!pfd || !snap) {
            port_fatal("out of memory");
        }
    }
    for (unsigned i = 0; i < nlisteners; i++) {
        pfd[i].fd = listeners[i]->fd;
        pfd[i].events = POLLIN;
        pfd[i].revents = 0;
    }
    unsigned nc = nconns;
    for (unsigned i = 0; i < nc; i++) {
        pfd[nlisteners + i].fd = conns[i]->fd;
        pfd[nlisteners + i].events = (short)conns[i]->events;
        pfd[nlisteners + i].revents = 0;
        snap[i] = conns[i];
    }
    int r = poll(pfd, nlisteners + nc, timeout_ms);
    if (r < 0) {
        return stop_flag ? -1 : 0;
    }
    /* Connections may close during dispatch; check each one is still in
     * its slot before calling back. */
    for (unsigned i = 0; i < nc; i++) {
        short re = pfd[nlisteners + i].revents;
        if (!re) {
            continue;
        }
        port_conn *c = snap[i];
        if (c->dead || !c->ctx) {
            continue;
        }
        int ev = 0;
        if (re & (POLLIN | POLLHUP | POLLERR)) {
            ev |= PORT_EV_READ;
        }
        if (re & POLLOUT) {
            ev |= PORT_EV_WRITE;
        }
        if (re & (POLLHUP | POLLERR | POLLNVAL)) {
            ev |= PORT_EV_HUP;
        }
        imap_on_event(c->ctx, ev);
    }
    for (unsigned i = 0; i < nlisteners; i++) {
        if (pfd[i].revents & POLLIN) {
            accept_all(listeners[i]);
        }
    }
    reap();
    return stop_flag ? -1 : 0;
}
#endif
