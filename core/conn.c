/*
 * conn.c -- connections, the output queue and the server loop.
 *
 * Events a connection reacts to (all from imap_on_event or the loop):
 *   readable   read into c->in, then parse and run commands
 *   writable   flush c->out; when it drops below CONFIG_OUT_HIGH, resume
 *              the command in progress (c->cont) and then parse more input
 *   timeout    c->deadline passed: BYE and close
 *   wake       c->wake_at passed: send the held-back reply (failed login)
 *   closed     the peer went away: free at once
 * Back-pressure: a connection whose output passes CONFIG_OUT_HIGH is not
 * read and its command is not resumed until the client reads.
 */
#include "imap.h"
#include "mime.h"
#include "lmtp.h"
#include "view.h"
#include "compress.h"
#include "ext.h"
#include "cmd.h"
#include "vfs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

imap_server *g_srv;

#define READ_CHUNK 16384   /* bytes read per call; also the most input held */
#define CLOSE_GRACE_MS 5000 /* how long a closing connection may take to drain */

uint64_t now_ms(void)
{
    return port_now_ms();
}

/* ---- output queue ---- */

/* Chunks after the first: a quarter of the high-water mark (16 KiB by
 * default), so a full queue goes out in about four sends. */
#define OUT_CHUNK_BULK ((size_t)(CONFIG_OUT_HIGH / 4 > 4096 ? CONFIG_OUT_HIGH / 4 : 4096))

int out_full(const imap_conn *c)
{
    return c->out.bytes >= CONFIG_OUT_HIGH;
}

void out_write(imap_conn *c, const void *p, size_t n)
{
    const char *s = p;
    if (c->closing == 2) {
        return;
    }
    while (n > 0) {
        outchunk *t = c->out.tail;
        if (!t || t->len == t->cap) {
            /* A first chunk is small (most replies are a line); behind a
             * full one comes bulk output (FETCH of many messages), which
             * leaves in one send per chunk: bigger chunks, fewer sends
             * (a FETCH 1:10000 BODYSTRUCTURE took 700 sends of 4 KiB). */
            size_t cap = t ? OUT_CHUNK_BULK : 4096;
            cap = n > cap ? n : cap;
            t = malloc(sizeof *t + cap);
            if (!t) {
                c->closing = 2;
                return;
            }
            t->next = NULL;
            t->len = t->off = 0;
            t->cap = cap;
            if (c->out.tail) {
                c->out.tail->next = t;
            } else {
                c->out.head = t;
            }
            c->out.tail = t;
        }
        size_t k = t->cap - t->len < n ? t->cap - t->len : n;
        memcpy(t->data + t->len, s, k);
        t->len += k;
        s += k;
        n -= k;
        c->out.bytes += k;
    }
}

void out_puts(imap_conn *c, const char *s)
{
    out_write(c, s, strlen(s));
}

void out_printf(imap_conn *c, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n < sizeof tmp) {
        out_write(c, tmp, (size_t)n);
        return;
    }
    dbuf b = {0};
    va_start(ap, fmt);
    dbuf_vprintf(&b, fmt, ap);
    va_end(ap);
    out_write(c, b.p, b.len);
    dbuf_free(&b);
}

void out_string(imap_conn *c, const char *s, size_t n)
{
    if (n >= 1024) {
        /* A literal: no need to copy the bytes through a buffer. */
        out_printf(c, "{%zu}\r\n", n);
        out_write(c, s, n);
        return;
    }
    dbuf b = {0};
    dbuf_add_imap_string(&b, s, n);
    out_write(c, b.p, b.len);
    dbuf_free(&b);
}

void out_nstring(imap_conn *c, const char *s, size_t n)
{
    if (!s) {
        out_puts(c, "NIL");
    } else {
        out_string(c, s, n);
    }
}

void out_mailbox(imap_conn *c, const char *name)
{
    if (mailbox_utf8_names(c)) {
        /* RFC 6855, 9051: after ENABLE UTF8=ACCEPT or IMAP4rev2 names go
         * out as UTF-8. */
        char *u = mailbox_mutf7_to_utf8(name);
        if (u) {
            out_string(c, u, strlen(u));
            free(u);
            return;
        }
    }
    out_string(c, name, strlen(name));
}

void reply_line(imap_conn *c, const char *line, size_t n)
{
    if (c->cwait[0]) {
        /* Held until the change it reports is durable (group_commit). */
        if (dbuf_add(&c->cwait_out, line, n) < 0) {
            c->closing = 2;
        }
        return;
    }
    out_write(c, line, n);
}

void reply(imap_conn *c, const char *status, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    dbuf b = {0};
    dbuf_printf(&b, "%s %s %s\r\n", c->tag ? c->tag : "*", status, tmp);
    if (b.p) {
        reply_line(c, b.p, b.len);
    } else {
        c->closing = 2;
    }
    dbuf_free(&b);
    log_trace("%s > %s %s %s", c->peer, c->tag ? c->tag : "*", status, tmp);
}

/* Bytes to and from the peer below compression: TLS or the socket. */
static long raw_read(imap_conn *c, void *p, size_t n)
{
    return c->tls ? port_tls_read(c->tls, p, n) : port_read(c->pc, p, n);
}

static long raw_write(imap_conn *c, const void *p, size_t n)
{
    /* After a 0 from port_tls_write the same bytes are offered again, as
     * mbedTLS requires: callers keep them until written. */
    return c->tls ? port_tls_write(c->tls, p, n) : port_write(c->pc, p, n);
}

/* COMPRESS=DEFLATE: deflate one queued chunk at a time (a sync flush after
 * the last), and write the result before taking the next. */
static void flush_z(imap_conn *c)
{
    for (;;) {
        while (c->zoff < c->zout.len) {
            long w = raw_write(c, c->zout.p + c->zoff, c->zout.len - c->zoff);
            if (w < 0) {
                c->closing = 2;
                return;
            }
            if (w == 0) {
                return;
            }
            c->zoff += (size_t)w;
        }
        c->zoff = 0;
        if (!c->out.head || c->closing == 2) {
            dbuf_free(&c->zout);   /* idle connections keep no buffer */
            return;
        }
        dbuf_reset(&c->zout);
        outchunk *h = c->out.head;
        if (z_deflate(c->z, h->data + h->off, h->len - h->off, &c->zout, h->next == NULL) < 0) {
            c->closing = 2;
            return;
        }
        c->out.bytes -= h->len - h->off;
        c->out.head = h->next;
        if (!c->out.head) {
            c->out.tail = NULL;
        }
        free(h);
    }
}

/* Bytes for c->in: inflated when compressing. >0 bytes, 0 none now, -1
 * closed or a corrupt stream. */
static long conn_get(imap_conn *c, void *p, size_t n)
{
    if (!c->z) {
        return raw_read(c, p, n);
    }
    for (;;) {
        long k = z_inflate(c->z, p, n);
        if (k != 0) {
            return k < 0 ? -1 : k;
        }
        char buf[4096];
        size_t room = z_feed_room(c->z);
        if (room == 0) {
            return -1;   /* 16 KiB of input that inflates to nothing */
        }
        long r = raw_read(c, buf, room < sizeof buf ? room : sizeof buf);
        if (r <= 0) {
            return r;
        }
        z_feed(c->z, buf, (size_t)r);
    }
}

/* ---- the connections a commit's end concerns ---- */

#define GL_WAIT 0   /* waits for a commit, or parked on a busy mailbox */
#define GL_HELD 1   /* its output is held for a commit (conn_flush) */
#define GL_TURN 2   /* had an event or ran in this loop turn (timers) */

static imap_conn **gl_head(int k, int on)
{
    return on == 1 ? &g_srv->gl[k] : &g_srv->gl_taken[k];
}

static void gl_add(imap_conn *c, int k)
{
    if (c->gl_on[k]) {
        return;
    }
    imap_conn **h = gl_head(k, 1);
    c->gl_prev[k] = NULL;
    c->gl_next[k] = *h;
    if (*h) {
        (*h)->gl_prev[k] = c;
    }
    *h = c;
    c->gl_on[k] = 1;
}

static void gl_del(imap_conn *c, int k)
{
    if (!c->gl_on[k]) {
        return;
    }
    if (c->gl_prev[k]) {
        c->gl_prev[k]->gl_next[k] = c->gl_next[k];
    } else {
        *gl_head(k, c->gl_on[k]) = c->gl_next[k];
    }
    if (c->gl_next[k]) {
        c->gl_next[k]->gl_prev[k] = c->gl_prev[k];
    }
    c->gl_on[k] = 0;
}

/* Move list k to its taken part, to be worked through with gl_pop while
 * the work adds to the list again. */
static void gl_take(int k)
{
    imap_conn *c;
    while ((c = g_srv->gl[k]) != NULL) {
        gl_del(c, k);
        c->gl_prev[k] = NULL;
        c->gl_next[k] = g_srv->gl_taken[k];
        if (c->gl_next[k]) {
            c->gl_next[k]->gl_prev[k] = c;
        }
        g_srv->gl_taken[k] = c;
        c->gl_on[k] = 2;
    }
}

static imap_conn *gl_pop(int k)
{
    imap_conn *c = g_srv->gl_taken[k];
    if (c) {
        gl_del(c, k);
    }
    return c;
}

/* Whether c's output must wait for this turn's group commit: it waits for
 * a commit itself, or its selected mailbox changed in this turn. (STATUS or
 * LIST-STATUS from another connection may show a UIDNEXT not yet synced;
 * a UID is never bound to a message there.) */
static int held(const imap_conn *c)
{
    if (c->cwait[0]) {
        return 1;
    }
    if (!c->sess || !c->sess->box) {
        return 0;
    }
    for (unsigned i = 0; i < g_srv->ngc; i++) {
        if (g_srv->gc[i] == c->sess->box) {
            return 1;
        }
    }
    /* its mailbox's commit is in flight */
    return CONFIG_COMMIT_ASYNC && g_srv->nfl && st_box_commit_busy(c->sess->box);
}

void conn_flush(imap_conn *c)
{
    if (g_srv && (g_srv->ngc || g_srv->nfl) && held(c)) {
        gl_add(c, GL_HELD);   /* flush_all lets it go */
        /* Changes made this turn to c's mailbox are not durable yet: what
         * c is told may not leave before the sync (a message a client was
         * told of and then lost in a power cut could see its UID reused).
         * The turn ends with group_commit(), which flushes. */
        return;
    }
    if (c->tls_hs) {
        return;   /* nothing goes out in clear, or into a half-made session */
    }
    if (c->z) {
        flush_z(c);
        return;
    }
    while (c->out.head && c->closing != 2) {
        outchunk *h = c->out.head;
        long w = raw_write(c, h->data + h->off, h->len - h->off);
        if (w < 0) {
            c->closing = 2;
            break;
        }
        if (w == 0) {
            break;
        }
        h->off += (size_t)w;
        c->out.bytes -= (size_t)w;
        if (h->off < h->len) {
            break;
        }
        c->out.head = h->next;
        if (!c->out.head) {
            c->out.tail = NULL;
        }
        free(h);
    }
}

static void out_free(imap_conn *c)
{
    while (c->out.head) {
        outchunk *h = c->out.head;
        c->out.head = h->next;
        free(h);
    }
    c->out.tail = NULL;
    c->out.bytes = 0;
}

/* ---- state ---- */

static void set_limits(imap_conn *c)
{
    int pre = c->state == S_NOTAUTH;
    c->ps.line_max = pre ? CONFIG_PREAUTH_LINE_MAX : CONFIG_LINE_MAX;
    c->ps.arena_max = pre ? CONFIG_PREAUTH_LINE_MAX + 2 * CONFIG_PREAUTH_LITERAL_MAX : CONFIG_ARG_MEM_MAX;
    c->ps.tok_max = CONFIG_MAX_ARGS;
}

static void touch(imap_conn *c)
{
    uint64_t t = c->state == S_NOTAUTH ? CONFIG_TIMEOUT_PREAUTH : CONFIG_TIMEOUT_AUTH;
    if (c->idling) {
        t = CONFIG_TIMEOUT_IDLE;
    }
    c->deadline = now_ms() + t * 1000;
    gl_add(c, GL_TURN);   /* timers() sees the new deadline */
}

void conn_enter_state(imap_conn *c, int state)
{
    if (c->state == S_NOTAUTH && state != S_NOTAUTH) {
        g_srv->npreauth--;
    }
    c->state = state;
    set_limits(c);
    touch(c);
}

void conn_close(imap_conn *c, const char *why)
{
    if (!c->closing) {
        log_debug("%s: closing: %s", c->peer, why);
        c->closing = 1;
        c->deadline = now_ms() + CLOSE_GRACE_MS;
        gl_add(c, GL_TURN);
    }
}

static void conn_destroy(imap_conn *c)
{
    gl_del(c, GL_WAIT);
    gl_del(c, GL_HELD);
    gl_del(c, GL_TURN);
    cmd_conn_gone(c);
    lmtp_free(c);
    if (c->state == S_NOTAUTH) {
        g_srv->npreauth--;
    }
    port_tls_close(c->tls);   /* close_notify, then free the session */
    port_close(c->pc);
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        g_srv->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    g_srv->nconns--;
    parse_free(&c->ps);
    dbuf_free(&c->in);
    out_free(c);
    z_free(c->z);
    dbuf_free(&c->zout);
    free(c->tag);
    free(c->user);
    free(c->delayed);
    dbuf_free(&c->cwait_out);
    free(c);
}

/* ---- loop turn statistics (CONFIG_SLOW_TURN_MS) ---- */

#define SLOW_TURN_LOGS_PER_S 10  /* enough to see a pattern, not a flood */

/* What one loop turn did, for the slow-turn log: every client waits while
 * a turn runs, so a long one is everyone's tail latency. */
static struct {
    uint64_t start_us;   /* its first event (0: no turn open) */
    uint64_t gc_us;      /* time in group_commit() */
    unsigned cmds;       /* commands dispatched */
    unsigned gc_boxes;   /* mailboxes synced by group_commit() */
    unsigned gc_rounds;  /* its rounds */
    st_vfs_counters io;  /* vfs counters at the start */
    unsigned long compactions; /* st_compactions at the start */
} turn_stat;

/* The turn starts at its first event (the poll dispatches them itself),
 * or at turn_end() when only timers ran. */
static void turn_begin(void)
{
    if (!CONFIG_SLOW_TURN_MS || turn_stat.start_us) {
        return;
    }
    const st_vfs_counters *k = st_vfs_posix_counters();
    turn_stat.start_us = port_now_us();
    turn_stat.gc_us = 0;
    turn_stat.cmds = turn_stat.gc_boxes = turn_stat.gc_rounds = 0;
    if (k) {
        turn_stat.io = *k;
    }
    turn_stat.compactions = st_compactions;
}

#if CONFIG_SLOW_TURN_MS == 0
static void turn_report(void)
{
}
#else
static void turn_report(void)
{
    if (!turn_stat.start_us) {
        return;
    }
    static uint64_t last_log_ms;
    static unsigned unlogged;
    uint64_t us = port_now_us() - turn_stat.start_us;
    turn_stat.start_us = 0;
    if (us < (uint64_t)CONFIG_SLOW_TURN_MS * 1000) {
        return;
    }
    /* a loaded server has many: at most SLOW_TURN_LOGS_PER_S lines a
     * second, the rest counted in the next line */
    uint64_t now = now_ms();
    if (now - last_log_ms < 1000 / SLOW_TURN_LOGS_PER_S) {
        unlogged++;
        return;
    }
    last_log_ms = now;
    const st_vfs_counters *k = st_vfs_posix_counters();
    st_vfs_counters d = {0};
    if (k) {
        d.writes = k->writes - turn_stat.io.writes;
        d.bytes_written = k->bytes_written - turn_stat.io.bytes_written;
        d.syncs = k->syncs - turn_stat.io.syncs;
        d.bytes_read = k->bytes_read - turn_stat.io.bytes_read;
    }
    log_info("slow turn: %llu.%03llu ms, %u command%s, %llu B written in %llu writes, %llu syncs, "
             "%llu B read, %lu compaction%s, group commit %llu.%03llu ms (%u mailbox%s, %u round%s)"
             "%s%.0u%s",
             (unsigned long long)(us / 1000), (unsigned long long)(us % 1000), turn_stat.cmds,
             turn_stat.cmds == 1 ? "" : "s", (unsigned long long)d.bytes_written,
             (unsigned long long)d.writes, (unsigned long long)d.syncs, (unsigned long long)d.bytes_read,
             st_compactions - turn_stat.compactions, st_compactions - turn_stat.compactions == 1 ? "" : "s",
             (unsigned long long)(turn_stat.gc_us / 1000), (unsigned long long)(turn_stat.gc_us % 1000),
             turn_stat.gc_boxes, turn_stat.gc_boxes == 1 ? "" : "es", turn_stat.gc_rounds,
             turn_stat.gc_rounds == 1 ? "" : "s", unlogged ? "; " : "", unlogged,
             unlogged ? " more not logged" : "");
    unlogged = 0;
}
#endif

/* ---- input ---- */

/* Whether c's mailbox has a commit in flight: its next command waits for
 * the commit's end (gc_release), so that a change neither stops the loop
 * to wait (st_box_lock) nor misses the group commit after it. */
static int box_busy(const imap_conn *c)
{
    return CONFIG_COMMIT_ASYNC && g_srv->nfl && c->sess && c->sess->box && st_box_commit_busy(c->sess->box);
}

static int can_process(const imap_conn *c)
{
    return !c->closing && !c->cont && !c->wake_at && !out_full(c) && !c->starttls && !c->tls_hs &&
           !c->compress_pending && !c->cwait[0] && !box_busy(c);
}

static void process(imap_conn *c)
{
    size_t pos = 0;
    while (pos < c->in.len && can_process(c)) {
        if (c->linefn) {
            const char *s = c->in.p + pos;
            const char *lf = memchr(s, '\n', c->in.len - pos);
            if (!lf) {
                if (c->in.len - pos > CONFIG_PREAUTH_LINE_MAX) {
                    out_puts(c, "* BYE Line too long\r\n");
                    conn_close(c, "line too long");
                }
                break;
            }
            size_t n = (size_t)(lf - s);
            pos += n + 1;
            if (n && s[n - 1] == '\r') {
                n--;
            }
            c->linefn(c, s, n);
            continue;
        }
        size_t used = 0;
        int r = parse_feed(&c->ps, c->in.p + pos, c->in.len - pos, &used);
        pos += used;
        switch (r) {
        case PARSE_DONE:
            touch(c);
            turn_stat.cmds++;
            cmd_dispatch(c);
            parse_clear(&c->ps);
            if (c->starttls) {
                /* CVE-2011-0411: whatever the client pipelined in clear
                 * after STARTTLS must never run as if it came over TLS. */
                pos = c->in.len;
            }
            break;
        case PARSE_LITERAL:
            cmd_literal(c);
            break;
        case PARSE_ERROR: {
            const imap_parser *p = &c->ps;
            /* Only a finished tag token is a tag (the error may have
             * struck inside the first word). */
            if (p->ntok > 1 && p->toks[0].type == TOK_ATOM && cmd_tag_ok(tok_s(p, 0), p->toks[0].len)) {
                out_printf(c, "%.*s BAD %s\r\n", (int)p->toks[0].len, tok_s(p, 0), p->err);
            } else {
                out_printf(c, "* BAD %s\r\n", p->err);
            }
            parse_clear(&c->ps);
            cmd_append_abort(c);
            break;
        }
        case PARSE_FATAL:
            out_printf(c, "* BYE %s\r\n", c->ps.err);
            conn_close(c, c->ps.err);
            break;
        default:
            break;
        }
    }
    if (pos >= c->in.len) {
        /* Idle connections give their input buffer back. */
        dbuf_free(&c->in);
    } else if (pos > 0) {
        memmove(c->in.p, c->in.p + pos, c->in.len - pos);
        c->in.len -= pos;
    }
}

static void conn_read(imap_conn *c)
{
    /* After STARTTLS nothing more is read in clear: the next bytes are
     * the client's TLS handshake. */
    while (!c->closing && !c->starttls && c->in.len < READ_CHUNK) {
        size_t room = READ_CHUNK - c->in.len;
        if (c->in.cap < READ_CHUNK + 1) {
            char *np = realloc(c->in.p, READ_CHUNK + 1);
            if (!np) {
                c->closing = 2;
                return;
            }
            c->in.p = np;
            c->in.cap = READ_CHUNK + 1;
        }
        long r = conn_get(c, c->in.p + c->in.len, room);
        if (r < 0) {
            c->closing = 2;
            return;
        }
        if (r == 0) {
            if (c->in.len == 0) {
                dbuf_free(&c->in);   /* idle: give the READ_CHUNK buffer back */
            }
            break;
        }
        c->in.len += (size_t)r;
        c->in.p[c->in.len] = 0;
        if (!can_process(c)) {
            break;
        }
        process(c);
    }
}

/* Resume the command in progress while there is room for its output. A
 * command that set wake_at (a long job done a slice per loop turn, e.g.
 * FETCH parsing a big message) is resumed by the timer instead. */
static void run_cont(imap_conn *c)
{
    while (c->cont && !c->closing && !out_full(c) && !c->wake_at) {
        if (c->cont(c)) {
            c->cont = NULL;
        }
        conn_flush(c);
    }
}

#define PUMP_ROUNDS 64  /* output rounds per event, so one client cannot
                           hold the loop (64 x CONFIG_OUT_HIGH bytes) */

/* Run the command in progress and then pipelined input for as long as the
 * socket takes the output. */
static void pump(imap_conn *c)
{
    gl_add(c, GL_TURN);
    for (int i = 0; i < PUMP_ROUNDS; i++) {
        run_cont(c);
        int skipped = 0;
        if (!c->cont && c->in.len) {
            if (can_process(c)) {
                process(c);
            } else {
                skipped = 1;
                if (box_busy(c)) {
                    gl_add(c, GL_WAIT);   /* gc_release runs it */
                }
            }
        }
        conn_flush(c);
        if (c->closing || c->wake_at) {
            break;
        }
        if (c->cont && !out_full(c)) {
            continue;   /* room for more of the command in progress */
        }
        if (!c->cont && skipped && c->in.len && can_process(c)) {
            /* Pipelined input waited for room (or for a commit) and the
             * flush just made it: no event comes for bytes already read,
             * so run it now. */
            continue;
        }
        break;
    }
}

static int conn_start_tls(imap_conn *c);

/* Whether c should be read now (also: whether TLS-buffered bytes of c
 * must be drained before the loop sleeps). */
static int wants_read(const imap_conn *c)
{
    return !c->closing && !c->cont && !c->wake_at && !out_full(c) && c->in.len < READ_CHUNK &&
           !c->starttls && !c->tls_hs && !c->cwait[0];
}

/* Decide what to wait for next; free the connection when it is done. */
static void conn_update(imap_conn *c)
{
    int unsent = c->out.head != NULL || c->zoff < c->zout.len;
    if (c->closing == 1 && !unsent) {
        c->closing = 2;
    }
    if (c->closing == 2) {
        conn_destroy(c);
        return;
    }
    if (c->starttls && !c->out.head && !c->closing) {
        /* The tagged OK is out in clear; from here on only TLS. */
        c->starttls = 0;
        if (conn_start_tls(c) < 0) {
            conn_destroy(c);
            return;
        }
    }
    if (c->compress_pending && !unsent && !c->closing) {
        /* The OK went out plain; everything after it is deflated, including
         * any bytes the client sent right after the OK arrived. */
        c->compress_pending = 0;
        c->z = z_new();
        if (!c->z) {
            conn_destroy(c);
            return;
        }
        z_feed(c->z, c->in.p, c->in.len);
        dbuf_free(&c->in);
        imap_on_event(c, PORT_EV_READ);
        return;
    }
    if (c->tls_hs) {
        port_want(c->pc, c->tls_want == PORT_EV_READ, c->tls_want == PORT_EV_WRITE);
        return;
    }
    /* A paused command with room for output is resumed next turn. */
    port_want(c->pc, wants_read(c), unsent || (c->cont && !c->closing && !c->wake_at));
}

/* ---- group commit ---- */

int conn_commit(imap_conn *c, st_box *box, const char *what)
{
    imap_server *sv = g_srv;
    unsigned i;
    if (!st_box_dirty(box)) {
        return 0;   /* all of it is durable already */
    }
    for (i = 0; i < sv->ngc && sv->gc[i] != box; i++) {
    }
    if (i == sv->ngc) {
        if (sv->ngc == sv->gccap) {
            unsigned cap = sv->gccap ? 2 * sv->gccap : 8;
            st_box **nb = realloc(sv->gc, cap * sizeof *nb);
            if (!nb) {
                return st_box_commit(box);   /* no memory: the old way */
            }
            sv->gc = nb;
            sv->gccap = cap;
        }
        st_box_ref(box);
        sv->gc[sv->ngc++] = box;
    }
    if (!c) {
        return 0;
    }
    if (c->cwait[0] && c->cwait[0] != box && c->cwait[1] && c->cwait[1] != box) {
        return st_box_commit(box);   /* a third mailbox (not done by any command) */
    }
    if (!c->cwait[0]) {
        c->cwait[0] = box;
    } else if (c->cwait[0] != box) {
        c->cwait[1] = box;
    }
    gl_add(c, GL_WAIT);
    c->cwait_what = what;
    c->cwait_round = sv->gc_round;
    return 0;
}

struct gc_flight {
    st_box  *box;
    unsigned round;   /* the group that waits for it */
    int      done, rc;
};

/* The store's word that a commit in flight ended (it may come from inside
 * a command, when a change had to wait for the commit: only note it). */
static void on_commit(void *ctx, st_box *box, int rc)
{
    imap_server *sv = ctx;
    for (unsigned i = 0; i < sv->nfl; i++) {
        if (sv->fl[i].box == box && !sv->fl[i].done) {
            sv->fl[i].done = 1;
            sv->fl[i].rc = rc;
        }
    }
}

void imap_on_wake(void)
{
    g_srv->wake = 1;
}

/* Commits that ended, for gc_release. */
typedef struct gc_end {
    st_box  *box;
    unsigned round;
    int      rc;
} gc_end;

/* Each command that waited for commits among the n that ended, and for
 * nothing else, gets its tagged reply, and its connection runs what it
 * pipelined; sessions that only waited for their mailbox's commit to end
 * (can_process) run theirs. One pass over the connections for all. */
static unsigned gc_release(const gc_end *e, unsigned n)
{
    unsigned released = 0;
    imap_conn *c;
    gl_take(GL_WAIT);
    while ((c = gl_pop(GL_WAIT)) != NULL) {
        int hit = 0;
        for (unsigned i = 0; i < n && c->cwait[0]; i++) {
            if (c->cwait_round != e[i].round || (c->cwait[0] != e[i].box && c->cwait[1] != e[i].box)) {
                continue;
            }
            hit = 1;
            if (c->cwait[0] == e[i].box) {
                c->cwait[0] = c->cwait[1];
            }
            c->cwait[1] = NULL;
            if (e[i].rc < 0 && !c->cwait_err) {
                c->cwait_err = e[i].rc;
            }
        }
        if (hit && !c->cwait[0]) {
            int err = c->cwait_err;
            c->cwait_err = 0;
            released++;
            if (err) {
                /* The held reply said OK; the change is not durable. */
                const char *t = c->cwait_out.p ? c->cwait_out.p : "*";
                size_t tl = strcspn(t, " ");
                char *tag = malloc(tl + 1);
                if (tag) {
                    memcpy(tag, t, tl);
                    tag[tl] = 0;
                }
                char *keep = c->tag;
                c->tag = tag;
                reply_st_err(c, err, c->cwait_what ? c->cwait_what : "command");
                c->tag = keep;
                free(tag);
            } else {
                out_write(c, c->cwait_out.p, c->cwait_out.len);
            }
            dbuf_free(&c->cwait_out);
        } else if (!hit && !c->cwait[0] && c->sess && c->sess->box && c->in.len) {
            for (unsigned i = 0; i < n && !hit; i++) {
                hit = c->sess->box == e[i].box;
            }
        }
        if (hit && !c->cwait[0]) {
            pump(c);   /* held: its pipelined commands run now */
            conn_update(c);   /* reads again (may free c) */
        } else if (c->cwait[0] || (c->in.len && box_busy(c))) {
            gl_add(c, GL_WAIT);   /* not this time */
        }
    }
    return released;
}

/* Collect the commits in flight that ended, and release their groups.
 * Returns 1 if any ended. */
static int gc_progress(void)
{
    imap_server *sv = g_srv;
    if (!CONFIG_COMMIT_ASYNC || (!sv->nfl && !sv->wake)) {
        return 0;
    }
    sv->wake = 0;
    st_store_sync_reap(sv->store, 0);
    gc_end e[32];
    unsigned n = 0;
    for (unsigned i = 0; i < sv->nfl && n < 32;) {
        if (!sv->fl[i].done) {
            i++;
            continue;
        }
        e[n++] = (gc_end){sv->fl[i].box, sv->fl[i].round, sv->fl[i].rc};
        sv->fl[i] = sv->fl[--sv->nfl];
    }
    if (!n) {
        return 0;
    }
    unsigned k = gc_release(e, n);
    log_debug("group commit: %u mailbox%s synced for %u command%s", n, n == 1 ? "" : "es", k, k == 1 ? "" : "s");
    for (unsigned i = 0; i < n; i++) {
        st_box_close(e[i].box);
    }
    if (sv->nfl) {
        sv->wake = 1; /* more than 32 ended: the rest next time */
    }
    return 1;
}

/* Let all the output held for commits go (the connections still held
 * keep theirs). */
static void flush_all(void)
{
    imap_conn *c;
    gl_take(GL_HELD);
    while ((c = gl_pop(GL_HELD)) != NULL) {
        if (c->out.head || c->zoff < c->zout.len || c->closing || c->cont) {
            conn_flush(c);   /* still held: back on the list */
            pump(c);
            conn_update(c);
        }
    }
}

/* The end of a loop turn: start one sync of each mailbox changed in it,
 * and give the commands that waited for a commit that ended their tagged
 * replies (now, when the vfs cannot sync without waiting; otherwise in a
 * later turn, when the sync comes back: gc_progress), run what they
 * pipelined (which may change mailboxes again: a few more rounds), then
 * let the output go. Until a mailbox's commit ends, the sessions on it
 * keep their output (held()) and any change to it waits for the commit
 * (st_box_lock); sessions on other mailboxes go on. */
static void group_commit(void)
{
    imap_server *sv = g_srv;
    uint64_t t0 = CONFIG_SLOW_TURN_MS && (sv->ngc || sv->nfl) ? port_now_us() : 0;
    int any = gc_progress();
    for (int round = 0; round < 8 && sv->ngc; round++) {
        any = 1;
        st_box **list = sv->gc;
        unsigned n = sv->ngc;
        turn_stat.gc_boxes += n;
        turn_stat.gc_rounds++;
        unsigned this_round = sv->gc_round++;
        sv->gc = NULL;
        sv->ngc = sv->gccap = 0;
        /* room for every record first, so a commit that is started can
         * always be followed (without it, they are synced here) */
        int room = 1;
        if (sv->nfl + n > sv->flcap) {
            unsigned cap = 2 * (sv->nfl + n);
            struct gc_flight *nf = realloc(sv->fl, cap * sizeof *nf);
            if (nf) {
                sv->fl = nf;
                sv->flcap = cap;
            } else {
                room = 0;
            }
        }
        int rcs[64];
        int *rc = n <= 64 ? rcs : malloc(n * sizeof *rc);
        for (unsigned i = 0; i < n; i++) {
            int r = room ? st_box_commit_start(list[i]) : st_box_commit(list[i]);
            if (r == 1) {
                /* in flight: the reference goes with the record */
                sv->fl[sv->nfl++] = (struct gc_flight){list[i], this_round, 0, 0};
            }
            if (rc) {
                rc[i] = r;
            }
        }
        gc_end es[64];
        gc_end *e = n <= 64 ? es : malloc(n * sizeof *e);
        unsigned ne = 0;
        for (unsigned i = 0; i < n && e; i++) {
            int r = rc ? rc[i] : ST_ENOMEM;
            if (r != 1) {
                e[ne++] = (gc_end){list[i], this_round, r};
            }
        }
        if (!e) {
            /* no memory even for this: one pass each */
            for (unsigned i = 0; i < n; i++) {
                gc_end one = {list[i], this_round, rc ? rc[i] : ST_ENOMEM};
                if (one.rc != 1) {
                    gc_release(&one, 1);
                }
            }
        } else if (ne) {
            unsigned k = gc_release(e, ne);
            log_debug("group commit: %u mailbox%s synced for %u command%s", ne, ne == 1 ? "" : "es", k,
                      k == 1 ? "" : "s");
        }
        for (unsigned i = 0; i < n; i++) {
            if (!rc || rc[i] != 1) {
                st_box_close(list[i]);
            }
        }
        if (e != es) {
            free(e);
        }
        if (rc != rcs) {
            free(rc);
        }
        free(list);
    }
    /* a command run above may have waited for a commit in flight */
    any |= gc_progress();
    if (t0) {
        turn_stat.gc_us += port_now_us() - t0;
    }
    if (any && !sv->ngc) {
        flush_all();
    }
}

/* Start a TLS session on c (implicit TLS at accept, or after STARTTLS).
 * The handshake gets its own, shorter deadline. */
static int conn_start_tls(imap_conn *c)
{
    dbuf_free(&c->in);
    c->tls = port_tls_new(c->pc);
    if (!c->tls) {
        log_warn("%s: cannot start TLS (out of memory or no certificate)", c->peer);
        return -1;
    }
    c->tls_hs = 1;
    c->tls_want = PORT_EV_READ;
    c->deadline = now_ms() + (uint64_t)g_srv->cfg->tls_handshake_timeout * 1000;
    gl_add(c, GL_TURN);
    return 0;
}

/* One handshake step. Returns 1 when it completed just now. */
static int conn_tls_step(imap_conn *c)
{
    int r = port_tls_handshake(c->tls, &c->tls_want);
    if (r == PORT_TLS_AGAIN) {
        return 0;
    }
    if (r == PORT_TLS_FAILED) {
        log_info("%s: TLS handshake failed", c->peer);
        c->closing = 2;
        return 0;
    }
    c->tls_hs = 0;
    conn_enter_state(c, c->state);   /* the login timer starts now */
    if (c->kind == LISTEN_IMAPS) {
        cmd_greeting(c);
    }
    return 1;
}

void imap_on_event(void *ctx, int ev)
{
    imap_conn *c = ctx;
    turn_begin();
    gl_add(c, GL_TURN);
    if (c->tls_hs) {
        if (!conn_tls_step(c)) {
            conn_update(c);
            return;
        }
        ev |= PORT_EV_READ;   /* a first command may follow the handshake */
    }
    if (ev & PORT_EV_WRITE) {
        conn_flush(c);
    }
    pump(c);
    if (ev & PORT_EV_READ) {
        conn_read(c);
    }
    pump(c);
    conn_update(c);
}

void *imap_on_accept(port_conn *pc, int kind)
{
    char peer[64];
    turn_begin();
    port_peer(pc, peer, sizeof peer);
    const char *refuse = NULL;
    if (g_srv->stopping) {
        refuse = "* BYE Server shutting down\r\n";
    } else if (g_srv->nconns >= CONFIG_MAX_CONNS) {
        refuse = "* BYE Too many connections\r\n";
    } else if (g_srv->npreauth >= CONFIG_MAX_PREAUTH_CONNS) {
        refuse = "* BYE Too many unauthenticated connections\r\n";
    } else {
        unsigned same = 0;
        for (imap_conn *o = g_srv->conns; o; o = o->next) {
            same += strcmp(o->peer, peer) == 0;
        }
        if (same >= CONFIG_MAX_CONNS_PER_IP) {
            refuse = "* BYE Too many connections from your address\r\n";
        }
    }
    if (refuse) {
        log_warn("%s: refused: %.*s", peer, (int)strlen(refuse) - 8, refuse + 6);
        port_write(pc, refuse, strlen(refuse));
        return NULL;
    }
    imap_conn *c = calloc(1, sizeof *c);
    if (!c) {
        return NULL;
    }
    c->pc = pc;
    c->kind = kind;
    memcpy(c->peer, peer, sizeof peer);
    c->loopback = port_peer_is_loopback(pc);
    c->state = S_NOTAUTH;
    g_srv->npreauth++;
    parse_init(&c->ps, 0, 0, 0);
    set_limits(c);
    touch(c);
    c->next = g_srv->conns;
    if (c->next) {
        c->next->prev = c;
    }
    g_srv->conns = c;
    g_srv->nconns++;
    port_set_ctx(pc, c);
    log_debug("%s: connected", c->peer);
    if (kind == LISTEN_IMAPS) {
        /* Implicit TLS: the greeting waits for the handshake. */
        if (conn_start_tls(c) < 0) {
            c->closing = 2;
        }
    } else if (kind == LISTEN_LMTP) {
        lmtp_start(c);
    } else {
        cmd_greeting(c);
    }
    conn_flush(c);
    conn_update(c);
    return c;
}

/* ---- the loop ---- */

static int listen_all(imap_cfg *cfg)
{
    for (unsigned i = 0; i < cfg->nlisten + cfg->nlisten_tls + cfg->nlmtp; i++) {
        char host[128];
        /* listen_tls lines come after listen lines, then lmtp lines */
        int lmtp = i >= cfg->nlisten + cfg->nlisten_tls;
        int tls = !lmtp && i >= cfg->nlisten;
        const char *spec = lmtp ? cfg->lmtp[i - cfg->nlisten - cfg->nlisten_tls]
                         : tls ? cfg->listen_tls[i - cfg->nlisten] : cfg->listen[i];
        if (lmtp && strncmp(spec, "unix:", 5) == 0) {
            if (!port_listen_unix(spec + 5, cfg->lmtp_mode, cfg->lmtp_group, LISTEN_LMTP)) {
                return -1;
            }
            continue;
        }
        const char *colon = strrchr(spec, ':');
        if (!colon || (size_t)(colon - spec) >= sizeof host) {
            log_err("listen %s: expected host:port", spec);
            return -1;
        }
        const char *h = spec;
        size_t hl = (size_t)(colon - spec);
        if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
            h++;
            hl -= 2;
        }
        memcpy(host, h, hl);
        host[hl] = 0;
        uint32_t port;
        if (parse_u32(colon + 1, strlen(colon + 1), &port) < 0 || port > 65535) {
            log_err("listen %s: bad port", spec);
            return -1;
        }
        if (!port_listen(host, port, lmtp ? LISTEN_LMTP : tls ? LISTEN_IMAPS : LISTEN_IMAP)) {
            return -1;
        }
    }
    return 0;
}

#define IDLE_POLL_MS 500  /* how often idling sessions look for outside changes */

/* Sessions in IDLE learn of other sessions' changes at once (view_kick);
 * changes by other processes (deliver, an outside MDA) are found by this
 * poll, so a delivered message reaches an idling client within a second. */
static void idle_poll(void)
{
    for (imap_conn *c = g_srv->conns; c; c = c->next) {
        if (c->idling && c->sess && !c->closing) {
            view_notify(c->sess, 1);
            conn_flush(c);
            port_want(c->pc, 1, c->out.head != NULL);
        }
    }
}

static int timers(void)
{
    uint64_t now = now_ms();
    uint64_t next = UINT64_MAX;
    static uint64_t last_idle_poll;
    int any_idle = 0;
    if (CONFIG_TLS && port_tls_hup_requested() && g_srv->cfg->tls_cert) {
        char err[256];
        if (port_tls_reload(err, sizeof err) < 0) {
            log_err("SIGHUP: %s; keeping the old certificate", err);
        } else {
            log_info("SIGHUP: reloaded the TLS certificate and key");
        }
    }
    /* Every connection only when a deadline or wake-up may be due (the
     * bound from the last such look); otherwise those that had an event
     * or ran in this turn: nothing else can have moved its timers earlier
     * or have TLS-buffered bytes waiting. With 10,000 idle clients a look
     * at all of them in every turn cost more than the commands. */
    imap_conn *c;
    int nosleep = 0;
    int all = now >= g_srv->timer_next;
    if (all) {
        c = g_srv->conns;
        gl_take(GL_TURN);
        while (gl_pop(GL_TURN)) {
        }
    } else {
        gl_take(GL_TURN);
        c = gl_pop(GL_TURN);
        next = g_srv->timer_next;
        any_idle = g_srv->timer_idle;
    }
    while (c) {
        imap_conn *nx = all ? c->next : NULL;
        if (c->deadline && now >= c->deadline) {
            if (!c->closing) {
                out_puts(c, c->state == S_NOTAUTH ? "* BYE Login timeout\r\n" : "* BYE Autologout; idle for too long\r\n");
                conn_flush(c);
            }
            c->closing = 2;
            conn_update(c);
            c = all ? nx : gl_pop(GL_TURN);
            continue;
        }
        if (c->wake_at && now >= c->wake_at) {
            c->wake_at = 0;
            if (c->delayed) {
                out_puts(c, c->delayed);
                free(c->delayed);
                c->delayed = NULL;
            }
            if (c->close_after_wake) {
                conn_close(c, "too many failed logins");
            }
            imap_on_event(c, 0);
            /* It may have set wake_at again (a job sliced over loop turns)
             * and c may be gone: come back at once rather than look. */
            nosleep = 1;
            c = all ? nx : gl_pop(GL_TURN);
            continue;
        }
        if (((c->tls && !c->tls_hs && port_tls_pending(c->tls)) || (c->z && z_pending_in(c->z))) &&
            wants_read(c)) {
            /* Decrypted bytes the socket will never signal: drain them
             * before the loop sleeps, and do not sleep this turn. */
            imap_on_event(c, PORT_EV_READ);
            nosleep = 1;
            c = all ? nx : gl_pop(GL_TURN);
            continue;
        }
        any_idle |= c->idling;
        if (c->deadline && c->deadline < next) {
            next = c->deadline;
        }
        if (c->wake_at && c->wake_at < next) {
            next = c->wake_at;
        }
        c = all ? nx : gl_pop(GL_TURN);
    }
    g_srv->timer_next = next;
    g_srv->timer_idle = any_idle;
    if (any_idle) {
        if (now - last_idle_poll >= IDLE_POLL_MS) {
            last_idle_poll = now;
            idle_poll();
        }
        if (last_idle_poll + IDLE_POLL_MS < next) {
            next = last_idle_poll + IDLE_POLL_MS;
        }
    }
    if (nosleep) {
        return 0;   /* a connection has more to do: do not sleep */
    }
    if (next == UINT64_MAX) {
        return -1;
    }
    return next <= now ? 0 : (int)(next - now > 60000 ? 60000 : next - now);
}

/* Between two polls: sync the turn's changes, run timers, sync again
 * what the timers changed; never sleep with changes unsynced. */
static int turn_end(void)
{
    turn_begin();
    group_commit();
    int t = timers();
    group_commit();
    /* one slice of any compaction in progress; do not sleep while one
     * has slices left */
    static unsigned slices;
    static unsigned long compactions;
    if (st_store_compact_work(g_srv->store)) {
        slices++;
        t = 0;
    }
    if (st_compactions != compactions) {
        log_debug("compaction committed after %u loop turn%s of slices", slices, slices == 1 ? "" : "s");
        compactions = st_compactions;
        slices = 0;
    }
    turn_report();
    return g_srv->ngc ? 0 : t;
}

int imap_server_run(imap_cfg *cfg)
{
    static imap_server srv;
    g_srv = &srv;
    srv.cfg = cfg;
    if (cfg->tls_cert) {
        char err[512];
        if (port_tls_setup(cfg->tls_cert, cfg->tls_key, err, sizeof err) < 0) {
            log_err("%s", err);
            return 1;
        }
    }
    if (listen_all(cfg) < 0) {
        return 1;
    }
    if (CONFIG_PRIV_DROP) {
        /* After binding ports and reading the key, before touching the
         * store, so the store's files belong to the unprivileged user. */
        char err[512];
        char **paths[] = {&cfg->store, &cfg->passwd};
        if (port_drop_privileges(cfg->user, cfg->chroot, cfg->allow_root, paths, 2, err, sizeof err) < 0) {
            log_err("%s", err);
            return 1;
        }
    }
    int rc = st_store_open(&srv.store, cfg->store, st_vfs_posix());
    if (rc < 0) {
        log_err("cannot open store %s: %s", cfg->store, st_strerror(rc));
        return 1;
    }
    st_store_set_quota(srv.store, cfg->quota);
    st_store_set_compact_ratio(srv.store, cfg->compact_permille);
    st_store_set_compact_slice(srv.store, (uint64_t)CONFIG_COMPACT_SLICE_KB * 1024);
    /* new messages are parsed as they arrive (mime.c, issue 4) */
    mime_watch_appends(srv.store);
    /* commits' syncs in flight while the loop goes on, where the store's
     * vfs can start them and the port can wake the loop when they end */
    int sfd = CONFIG_COMMIT_ASYNC ? st_store_sync_fd(srv.store) : -1;
    if (sfd >= 0 && port_watch_fd(sfd) == 0) {
        st_store_set_async(srv.store, 1, on_commit, &srv);
        log_info("commits: syncs in flight while the loop goes on (io_uring)");
    } else {
        log_info("commits: the loop waits for each group commit's syncs");
    }
    while (port_poll(turn_end()) == 0) {
    }
    group_commit();
    while (srv.nfl) {
        st_store_sync_reap(srv.store, 1);
        gc_progress();
    }
    log_info("shutting down");
    srv.stopping = 1;
    while (srv.conns) {
        imap_conn *c = srv.conns;
        out_puts(c, "* BYE Server shutting down\r\n");
        conn_flush(c);
        c->closing = 2;
        conn_update(c);
    }
    st_store_close(srv.store);
    port_tls_shutdown();
    return 0;
}
