/* loadgen.c -- IMAP load generator for the picoimapd / Dovecot benchmark.
 *
 * One process, one thread, one epoll loop driving N simulated clients. Each
 * client connects (optionally over TLS), logs in, selects INBOX and runs a
 * weighted mix of commands, one at a time, checking every tagged status and,
 * where it can, the content of the answer (a fetched body must equal, byte for
 * byte, the corpus message it was appended from). Errors are counted per
 * command and kind and never as throughput.
 *
 * Modes:
 *   mix      closed-loop workload for --duration seconds after --warmup
 *   hold     N clients log in, select INBOX, print "READY n" and sit idle
 *   preload  every client's INBOX is filled to --preload messages, then exit
 *   probe    one client tries each command type once and reports which work
 *   corpus   write the generated corpus as an mboxrd file (--write-mbox)
 *
 * Build: cc -O2 -o loadgen loadgen.c [-DLG_TLS=1 -lssl -lcrypto]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef LG_TLS
#define LG_TLS 0
#endif
#if LG_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#endif

/* ------------------------------------------------------------------ */
/* Command types                                                       */

enum {
    OP_CONNECT,     /* TCP (+TLS) connect to greeting */
    OP_LOGIN,
    OP_SELECT,
    OP_APPEND,
    OP_FETCH_FLAGS, /* UID FETCH 1:* (FLAGS) */
    OP_FETCH_HDR,   /* FETCH a:b (BODY.PEEK[HEADER]) */
    OP_FETCH_BS,    /* FETCH n (BODYSTRUCTURE) */
    OP_FETCH_BODY,  /* FETCH n (BODY.PEEK[]) */
    OP_STORE,       /* STORE n +FLAGS (...) */
    OP_SEARCH,      /* SEARCH on flags, size, dates */
    OP_SEARCH_HDR,  /* SEARCH FROM / SUBJECT */
    OP_STORE_DEL,   /* STORE a:b +FLAGS.SILENT (\Deleted), first half of expunge */
    OP_EXPUNGE,
    OP_IDLE,        /* IDLE, hold --idle-ms, DONE; latency excludes the hold */
    OP_NOOP,
    OP_LOGOUT,
    OP_N
};

static const char *const op_name[OP_N] = {
    "connect", "login", "select", "append", "fetch_flags", "fetch_hdr", "fetch_bs", "fetch_body",
    "store", "search", "search_hdr", "store_del", "expunge", "idle", "noop", "logout",
};

/* Weight of each command in the mix; the ones that cannot be picked
 * directly (connect, login, select, store_del, logout) stay 0. */
static int mix_w[OP_N];
static const int mix_default[OP_N] = {
    [OP_APPEND] = 8,     [OP_FETCH_FLAGS] = 6, [OP_FETCH_HDR] = 12, [OP_FETCH_BS] = 8,
    [OP_FETCH_BODY] = 15, [OP_STORE] = 12,     [OP_SEARCH] = 8,     [OP_SEARCH_HDR] = 2,
    [OP_EXPUNGE] = 4,    [OP_IDLE] = 3,        [OP_NOOP] = 10,
};

/* ------------------------------------------------------------------ */
/* Options                                                             */

static struct {
    const char *host;
    int port;
    int tls;
    int clients;
    double duration, warmup;
    const char *mode;
    const char *user_fmt, *pass_fmt;
    int users;          /* clients share users round-robin; 0 = one each */
    int user_base;
    int per_session;    /* commands per session before LOGOUT; 0 = never */
    int think_ms;
    int idle_ms;
    int max_msgs, min_msgs, preload;
    int corpus_n;
    uint64_t seed;
    int max_pending;
    int src_ips;
    int literal_plus;
    int verify;
    double timeout;
    const char *out;
    const char *write_mbox;
    const char *label;
    int progress;
    int big_max_kb;
    double deadline;    /* give up after this many seconds in all (0: never) */
} opt = {
    .host = "127.0.0.1",
    .port = 143,
    .clients = 10,
    .duration = 20,
    .warmup = 3,
    .mode = "mix",
    .user_fmt = "bench%d",
    .pass_fmt = "pw%d",
    .user_base = 1,
    .idle_ms = 20,
    .max_msgs = 300,
    .min_msgs = 20,
    .corpus_n = 300,
    .seed = 1,
    .max_pending = 32,
    .verify = 1,
    .timeout = 30,
    .label = "",
    .big_max_kb = 300,
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p && n) {
        die("out of memory");
    }
    return p;
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 2685821657736338717ull;
}
static uint32_t rndn(uint32_t n) { return n ? (uint32_t)(rnd() % n) : 0; }
/* Log-uniform size in [lo, hi]. */
static size_t rnd_logsize(size_t lo, size_t hi)
{
    double u = (double)(rnd() >> 11) / 9007199254740992.0;
    double l = log((double)lo), h = log((double)hi);
    return (size_t)exp(l + u * (h - l));
}

/* Growable byte buffer. */
typedef struct {
    char *p;
    size_t len, cap;
} buf;

static void buf_reserve(buf *b, size_t extra)
{
    if (b->len + extra > b->cap) {
        size_t c = b->cap ? b->cap : 1024;
        while (c < b->len + extra) {
            c *= 2;
        }
        b->p = xrealloc(b->p, c);
        b->cap = c;
    }
}
static void buf_add(buf *b, const void *d, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->len, d, n);
    b->len += n;
}
static void buf_adds(buf *b, const char *s) { buf_add(b, s, strlen(s)); }
static void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}
static void buf_free(buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------------ */
/* Latency histogram: log-linear, ~3% resolution, microseconds.        */

#define HBUCKETS (64 + 40 * 32)
typedef struct {
    uint64_t ok, no, bad, verify, io; /* io: disconnect, timeout, protocol */
    uint64_t h[HBUCKETS];
    uint64_t sum_us, max_us;
    uint64_t bytes_in;
} opstat;
static opstat st[OP_N];
static uint64_t notes_noexists;

static int hidx(uint64_t v)
{
    if (v < 64) {
        return (int)v;
    }
    int e = 63 - __builtin_clzll(v); /* >= 6 */
    int sub = (int)((v >> (e - 5)) & 31);
    int i = 64 + (e - 6) * 32 + sub;
    return i < HBUCKETS ? i : HBUCKETS - 1;
}
static uint64_t hval(int i)
{
    if (i < 64) {
        return (uint64_t)i;
    }
    int e = (i - 64) / 32 + 6, sub = (i - 64) % 32;
    uint64_t lo = ((uint64_t)1 << e) + ((uint64_t)sub << (e - 5));
    return lo + ((uint64_t)1 << (e - 5)) / 2;
}
static uint64_t hpct(const opstat *s, double p)
{
    if (!s->ok) {
        return 0;
    }
    uint64_t want = (uint64_t)(p * (double)s->ok);
    if (want >= s->ok) {
        want = s->ok - 1;
    }
    uint64_t acc = 0;
    for (int i = 0; i < HBUCKETS; i++) {
        acc += s->h[i];
        if (acc > want) {
            return hval(i);
        }
    }
    return s->max_us;
}

/* ------------------------------------------------------------------ */
/* Corpus of varied MIME mail                                          */

typedef struct {
    char *data;
    size_t len, hdr_len; /* hdr_len: header including the blank line */
    int kind;
} msg;
static msg *corpus;
static int ncorpus;

static const char *const words[] = {
    "the", "report", "meeting", "budget", "quarter", "server", "invoice", "please", "review",
    "attached", "schedule", "project", "update", "thanks", "regards", "team", "deadline", "draft",
    "customer", "release", "mailbox", "storage", "flash", "router", "network", "weekend", "lunch",
    "agenda", "minutes", "contract", "shipping", "order", "ticket", "backup", "holiday", "photos",
    "family", "garden", "train", "coffee", "tomorrow", "morning", "question", "answer", "notes",
};
static const char *const names[] = {"Alice Martin", "Bob Keller", "Carol Nguyen", "Dave Okafor",
                                    "Eve Larsen", "Frank Moreau", "Grace Ito", "Heidi Brandt"};
static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const wday[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};

static void addr_of(char *out, size_t n, const char *name)
{
    char first[32];
    size_t i = 0;
    while (name[i] && name[i] != ' ' && i < sizeof first - 1) {
        first[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
        i++;
    }
    first[i] = 0;
    snprintf(out, n, "%s@example.org", first);
}

static void text_lines(buf *b, size_t bytes, int from_lines)
{
    size_t start = b->len;
    while (b->len - start < bytes) {
        size_t ll = 0;
        if (from_lines && rndn(40) == 0) {
            /* Lines that an mbox store must quote and unquote. */
            buf_adds(b, rndn(2) ? "From the desk of the team, more notes follow" : ">From a quoted line");
            buf_adds(b, "\r\n");
            continue;
        }
        int target = 40 + (int)rndn(36);
        while ((int)ll < target) {
            const char *w = words[rndn(sizeof words / sizeof words[0])];
            if (ll) {
                buf_add(b, " ", 1);
                ll++;
            }
            buf_adds(b, w);
            ll += strlen(w);
        }
        buf_adds(b, rndn(8) == 0 ? ".\r\n\r\n" : "\r\n");
    }
}

static void b64_lines(buf *b, size_t raw)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t chars = (raw + 2) / 3 * 4;
    buf_reserve(b, chars + chars / 76 * 2 + 4);
    for (size_t i = 0; i < chars; i++) {
        b->p[b->len++] = al[rnd() & 63];
        if (i % 76 == 75) {
            b->p[b->len++] = '\r';
            b->p[b->len++] = '\n';
        }
    }
    if (chars % 76) {
        buf_adds(b, "\r\n");
    }
}

static void gen_msg(msg *m, int id)
{
    buf b = {0};
    int kind;
    uint32_t r = rndn(100);
    kind = r < 45 ? 0 : r < 75 ? 1 : r < 95 ? 2 : 3;
    const char *from = names[rndn(8)], *to = names[rndn(8)];
    char fa[64], ta[64];
    addr_of(fa, sizeof fa, from);
    addr_of(ta, sizeof ta, to);
    int y = 2019 + (int)rndn(7), mo = (int)rndn(12), d = 1 + (int)rndn(28);
    int hh = (int)rndn(24), mm = (int)rndn(60), ss = (int)rndn(60);
    buf_printf(&b, "Return-Path: <%s>\r\n", fa);
    buf_printf(&b,
               "Received: from mx%d.example.org (mx%d.example.org [192.0.2.%d])\r\n"
               "\tby mail.example.net with ESMTPS id %08" PRIx64 "\r\n"
               "\tfor <%s>; %s, %d %s %d %02d:%02d:%02d +0000\r\n",
               (int)rndn(9), (int)rndn(9), 1 + (int)rndn(250), rnd() & 0xffffffffu, ta, wday[rndn(7)], d,
               mon[mo], y, hh, mm, ss);
    buf_printf(&b, "From: %s <%s>\r\nTo: %s <%s>\r\n", from, fa, to, ta);
    if (rndn(3) == 0) {
        buf_printf(&b, "Cc: %s <%s>\r\n", names[0], "alice@example.org");
    }
    buf_printf(&b, "Subject: %s%s %s %s\r\n", rndn(4) == 0 ? "Re: " : "", words[rndn(45)], words[rndn(45)],
               words[rndn(45)]);
    buf_printf(&b, "Date: %s, %d %s %d %02d:%02d:%02d +0000\r\n", wday[rndn(7)], d, mon[mo], y, hh, mm, ss);
    buf_printf(&b, "Message-ID: <%d.%08" PRIx64 "@bench.example.org>\r\n", id, rnd() & 0xffffffffu);
    buf_adds(&b, "MIME-Version: 1.0\r\n");
    buf_printf(&b, "X-Bench-Id: %d\r\n", id);
    char bnd[64];
    snprintf(bnd, sizeof bnd, "=_bench_%d_%08" PRIx64, id, rnd() & 0xffffffffu);
    if (kind == 0) {
        buf_adds(&b, "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
        m->hdr_len = b.len;
        text_lines(&b, rnd_logsize(300, 20000), 1);
    } else if (kind == 1) {
        buf_printf(&b, "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n", bnd);
        m->hdr_len = b.len;
        buf_adds(&b, "This is a multi-part message in MIME format.\r\n");
        size_t sz = rnd_logsize(1000, 20000);
        buf_printf(&b, "\r\n--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", bnd);
        text_lines(&b, sz, 1);
        buf_printf(&b,
                   "\r\n--%s\r\nContent-Type: text/html; charset=utf-8\r\n"
                   "Content-Transfer-Encoding: quoted-printable\r\n\r\n<html><body><p>\r\n",
                   bnd);
        text_lines(&b, sz * 3 / 2, 0);
        buf_printf(&b, "</p></body></html>\r\n\r\n--%s--\r\n", bnd);
    } else {
        buf_printf(&b, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n", bnd);
        m->hdr_len = b.len;
        buf_adds(&b, "This is a multi-part message in MIME format.\r\n");
        if (kind == 3) {
            char ib[80];
            snprintf(ib, sizeof ib, "%s_alt", bnd);
            buf_printf(&b, "\r\n--%s\r\nContent-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n", bnd, ib);
            buf_printf(&b, "--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n", ib);
            text_lines(&b, 1500, 0);
            buf_printf(&b, "\r\n--%s\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n<p>\r\n", ib);
            text_lines(&b, 2000, 0);
            buf_printf(&b, "</p>\r\n--%s--\r\n", ib);
            buf_printf(&b,
                       "\r\n--%s\r\nContent-Type: message/rfc822\r\n"
                       "Content-Disposition: inline\r\n\r\n"
                       "From: %s <%s>\r\nTo: %s <%s>\r\nSubject: Fwd: %s\r\n"
                       "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <fwd.%d@bench.example.org>\r\n"
                       "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
                       bnd, to, ta, from, fa, words[rndn(45)], id);
            text_lines(&b, 1200, 0);
        } else {
            buf_printf(&b, "\r\n--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", bnd);
            text_lines(&b, rnd_logsize(200, 4000), 1);
        }
        int natt = 1 + (int)rndn(kind == 3 ? 1 : 2);
        for (int a = 0; a < natt; a++) {
            static const char *const ct[] = {"application/pdf", "image/jpeg", "application/zip",
                                             "application/vnd.oasis.opendocument.text"};
            static const char *const ext[] = {"pdf", "jpg", "zip", "odt"};
            int t = (int)rndn(4);
            buf_printf(&b,
                       "\r\n--%s\r\nContent-Type: %s; name=\"%s_%d.%s\"\r\n"
                       "Content-Transfer-Encoding: base64\r\n"
                       "Content-Disposition: attachment; filename=\"%s_%d.%s\"\r\n\r\n",
                       bnd, ct[t], words[rndn(45)], a, ext[t], words[rndn(45)], a, ext[t]);
            b64_lines(&b, rnd_logsize(4000, (size_t)opt.big_max_kb * 1000));
        }
        buf_printf(&b, "\r\n--%s--\r\n", bnd);
    }
    m->data = b.p;
    m->len = b.len;
    m->kind = kind;
}

static void gen_corpus(void)
{
    uint64_t save = rng_state;
    rng_state = 0x9e3779b97f4a7c15ull ^ (opt.seed * 0x2545F4914F6CDD1Dull);
    corpus = calloc((size_t)opt.corpus_n, sizeof *corpus);
    for (int i = 0; i < opt.corpus_n; i++) {
        gen_msg(&corpus[i], i);
    }
    ncorpus = opt.corpus_n;
    rng_state = save;
}

static void write_mbox(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        die("%s: %s", path, strerror(errno));
    }
    for (int i = 0; i < ncorpus; i++) {
        fprintf(f, "From bench@example.org Mon Jan  1 10:00:00 2024\n");
        const char *p = corpus[i].data, *e = p + corpus[i].len;
        while (p < e) {
            const char *nl = memchr(p, '\n', (size_t)(e - p));
            size_t n = nl ? (size_t)(nl - p) : (size_t)(e - p);
            size_t tn = n && p[n - 1] == '\r' ? n - 1 : n;
            size_t q = 0; /* mboxrd: ">*From " gets one more '>' */
            while (q < tn && p[q] == '>') {
                q++;
            }
            if (tn - q >= 5 && memcmp(p + q, "From ", 5) == 0) {
                fputc('>', f);
            }
            fwrite(p, 1, tn, f);
            fputc('\n', f);
            p += n + (nl ? 1 : 0);
        }
        fputc('\n', f);
    }
    fclose(f);
}

/* ------------------------------------------------------------------ */
/* Clients                                                             */

enum {
    ST_WAITCONN,  /* waiting for a connect slot or a reconnect timer */
    ST_CONNECTING,
    ST_TLS_HS,
    ST_GREETING,
    ST_CMD,       /* a command is in flight, waiting for its tagged response */
    ST_WAITPLUS,  /* waiting for "+" (APPEND literal or IDLE) */
    ST_IDLING,    /* in IDLE, holding until the timer sends DONE */
    ST_THINK,     /* between commands, timer pending */
    ST_HOLD,      /* hold mode: logged in, selected, silent */
    ST_GATE,      /* mix mode: selected, waiting until every client is */
    ST_DONE,
};

typedef struct client {
    int id, fd, state;
    int user;
#if LG_TLS
    SSL *ssl;
#endif
    buf in, out;
    size_t out_off;
    size_t rs_scan;      /* where scanning for the end of the response resumes */
    size_t rs_line;      /* start of the current line of the response */
    size_t lit_off[4], lit_len[4];
    int nlit;
    int want_out;        /* EPOLLOUT registered */
    uint32_t tagn;
    char tag[16];
    int op;              /* command in flight */
    uint64_t t0, t_plus, t_done;
    uint64_t deadline;   /* command timeout */
    uint32_t exists;
    int saw_exists, nfetch, nsearch, nexpunge, bad_verify;
    int append_msg;      /* corpus index of the APPEND in flight */
    uint32_t fetch_lo, fetch_hi;
    int session_cmds;
    int in_pending;      /* counted in the connect/login ramp */
    int selected_once;
    uint64_t timer_gen;
} client;

static client *cl;
static int epfd;
static uint64_t t_begin, t_measure, t_end;
static int measuring_started;
static int n_ready;
static int n_selected; /* clients that have selected INBOX at least once */
static int pending_now;
static int *waitq;
static int wq_head, wq_tail, wq_cap;
static volatile sig_atomic_t stop_flag;
static int probe_op = -1;
#if LG_TLS
static SSL_CTX *ssl_ctx;
#endif

/* Timer heap. */
typedef struct {
    uint64_t at;
    int id;
    uint64_t gen;
} tmr;
static tmr *heap;
static int nheap, capheap;

static void heap_push(uint64_t at, int id, uint64_t gen)
{
    if (nheap == capheap) {
        capheap = capheap ? capheap * 2 : 256;
        heap = xrealloc(heap, (size_t)capheap * sizeof *heap);
    }
    int i = nheap++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (heap[p].at <= at) {
            break;
        }
        heap[i] = heap[p];
        i = p;
    }
    heap[i] = (tmr){at, id, gen};
}
static tmr heap_pop(void)
{
    tmr top = heap[0], last = heap[--nheap];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= nheap) {
            break;
        }
        if (c + 1 < nheap && heap[c + 1].at < heap[c].at) {
            c++;
        }
        if (last.at <= heap[c].at) {
            break;
        }
        heap[i] = heap[c];
        i = c;
    }
    if (nheap) {
        heap[i] = last;
    }
    return top;
}
static void set_timer(client *c, uint64_t at)
{
    c->timer_gen++;
    heap_push(at, c->id, c->timer_gen);
}

static int in_window(uint64_t t)
{
    return measuring_started && t >= t_measure && t <= t_end;
}

static uint64_t all_ok; /* successful commands, ramp and warm-up included */

static void record(client *c, int op, int kind, uint64_t lat)
{
    uint64_t t = now_us();
    if (kind == 0 && op != OP_CONNECT) {
        all_ok++;
    }
    if (!in_window(t) && strcmp(opt.mode, "probe") != 0) {
        return;
    }
    opstat *s = &st[op];
    switch (kind) {
    case 0:
        s->ok++;
        s->h[hidx(lat)]++;
        s->sum_us += lat;
        if (lat > s->max_us) {
            s->max_us = lat;
        }
        break;
    case 1: s->no++; break;
    case 2: s->bad++; break;
    case 3: s->verify++; break;
    default: s->io++; break;
    }
    (void)c;
}

static void client_connect(client *c);
static void next_command(client *c);
static void enqueue_connect(client *c);

static void ep_mod(client *c, int want_out)
{
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
    if (c->want_out != want_out) {
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = want_out;
    }
}

static void ramp_done(client *c)
{
    if (c->in_pending) {
        c->in_pending = 0;
        pending_now--;
        while (pending_now < opt.max_pending && wq_head != wq_tail) {
            client *n = &cl[waitq[wq_head]];
            wq_head = (wq_head + 1) % wq_cap;
            client_connect(n);
        }
    }
}

static void client_close(client *c, int reconnect_ms)
{
    ramp_done(c);
#if LG_TLS
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
#endif
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    buf_free(&c->in);
    buf_free(&c->out);
    c->out_off = c->rs_scan = c->rs_line = 0;
    c->nlit = 0;
    c->want_out = 0;
    c->session_cmds = 0;
    c->state = ST_WAITCONN;
    if (stop_flag || !strcmp(opt.mode, "probe")) {
        c->state = ST_DONE;
        return;
    }
    if (reconnect_ms > 0) {
        set_timer(c, now_us() + (uint64_t)reconnect_ms * 1000);
    } else {
        enqueue_connect(c);
    }
}

/* A failed command or connection: count it, close, reconnect later. */
static void client_fail(client *c, const char *why)
{
    if (c->state == ST_CMD || c->state == ST_WAITPLUS || c->state == ST_IDLING) {
        record(c, c->op, 4, 0);
    } else if (c->state == ST_CONNECTING || c->state == ST_TLS_HS || c->state == ST_GREETING) {
        record(c, OP_CONNECT, 4, 0);
    } else if (c->state == ST_HOLD) {
        record(c, OP_NOOP, 4, 0);
    }
    if (opt.progress || !strcmp(opt.mode, "probe")) {
        fprintf(stderr, "loadgen: client %d: %s (op %s)\n", c->id, why, op_name[c->op]);
    }
    if (c->state == ST_HOLD) {
        n_ready--;
    }
    client_close(c, 200);
}

static void flush_out(client *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n;
#if LG_TLS
        if (c->ssl) {
            int r = SSL_write(c->ssl, c->out.p + c->out_off, (int)(c->out.len - c->out_off));
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
                    ep_mod(c, 1);
                    return;
                }
                client_fail(c, "tls write error");
                return;
            }
            n = r;
        } else
#endif
        {
            n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR) {
                    ep_mod(c, 1);
                    return;
                }
                client_fail(c, "write error");
                return;
            }
        }
        c->out_off += (size_t)n;
    }
    c->out.len = c->out_off = 0;
    if (c->out.cap > 65536) {
        buf_free(&c->out);
    }
    ep_mod(c, 0);
}

static void send_cmd(client *c, int op, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void send_cmd(client *c, int op, const char *fmt, ...)
{
    c->tagn++;
    snprintf(c->tag, sizeof c->tag, "a%u", c->tagn);
    buf_printf(&c->out, "%s ", c->tag);
    va_list ap;
    va_start(ap, fmt);
    char tmp[512];
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    buf_adds(&c->out, tmp);
    buf_adds(&c->out, "\r\n");
    c->op = op;
    c->t0 = now_us();
    c->deadline = c->t0 + (uint64_t)(opt.timeout * 1e6);
    c->saw_exists = c->nfetch = c->nsearch = c->nexpunge = c->bad_verify = 0;
    c->state = ST_CMD;
    c->session_cmds++;
    flush_out(c);
}

static void do_login(client *c)
{
    char u[64], p[64];
    snprintf(u, sizeof u, opt.user_fmt, c->user);
    snprintf(p, sizeof p, opt.pass_fmt, c->user);
    send_cmd(c, OP_LOGIN, "LOGIN \"%s\" \"%s\"", u, p);
}

static void enqueue_connect(client *c)
{
    if (pending_now < opt.max_pending) {
        client_connect(c);
        return;
    }
    waitq[wq_tail] = c->id;
    wq_tail = (wq_tail + 1) % wq_cap;
}

static void client_connect(client *c)
{
    c->in_pending = 1;
    pending_now++;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        die("socket: %s", strerror(errno));
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opt.src_ips > 0) {
        struct sockaddr_in sa = {.sin_family = AF_INET};
        sa.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(c->id % opt.src_ips));
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            die("bind: %s", strerror(errno));
        }
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    inet_pton(AF_INET, opt.host, &sa.sin_addr);
    c->state = ST_CONNECTING;
    c->t0 = now_us();
    c->op = OP_CONNECT;
    c->deadline = c->t0 + (uint64_t)(opt.timeout * 1e6);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    c->want_out = 1;
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        client_fail(c, strerror(errno));
    }
}

/* ---- choosing and sending the next command ---- */

static int pick_op(void)
{
    int total = 0;
    for (int i = 0; i < OP_N; i++) {
        total += mix_w[i];
    }
    int r = (int)rndn((uint32_t)total);
    for (int i = 0; i < OP_N; i++) {
        if (r < mix_w[i]) {
            return i;
        }
        r -= mix_w[i];
    }
    return OP_NOOP;
}

static void send_append(client *c)
{
    int id = (int)rndn((uint32_t)ncorpus);
    c->append_msg = id;
    uint32_t r = rndn(10);
    const char *fl = r < 5 ? "(\\Seen)" : r < 6 ? "(\\Seen \\Flagged)" : "()";
    int d = 1 + (int)rndn(28), y = 2019 + (int)rndn(7);
    send_cmd(c, OP_APPEND, "APPEND INBOX %s \"%2d-%s-%d 10:%02d:%02d +0000\" {%zu%s}", fl, d, mon[rndn(12)], y,
             (int)rndn(60), (int)rndn(60), corpus[id].len, opt.literal_plus ? "+" : "");
    if (opt.literal_plus) {
        buf_add(&c->out, corpus[id].data, corpus[id].len);
        buf_adds(&c->out, "\r\n");
        flush_out(c);
    } else {
        c->state = ST_WAITPLUS;
    }
}

static void send_op(client *c, int op)
{
    uint32_t n = c->exists;
    if (op == OP_APPEND && n >= (uint32_t)opt.max_msgs && mix_w[OP_EXPUNGE]) {
        op = OP_EXPUNGE;
    }
    if (op == OP_EXPUNGE && n <= (uint32_t)opt.min_msgs && mix_w[OP_APPEND]) {
        op = OP_APPEND;
    }
    if (n == 0 && (op == OP_FETCH_HDR || op == OP_FETCH_BS || op == OP_FETCH_BODY || op == OP_STORE ||
                   op == OP_EXPUNGE)) {
        op = mix_w[OP_APPEND] || probe_op >= 0 ? OP_APPEND : OP_NOOP;
    }
    switch (op) {
    case OP_APPEND:
        send_append(c);
        break;
    case OP_FETCH_FLAGS:
        send_cmd(c, op, "UID FETCH 1:* (FLAGS)");
        break;
    case OP_FETCH_HDR: {
        uint32_t lo = 1 + rndn(n), hi = lo + rndn(10);
        if (hi > n) {
            hi = n;
        }
        c->fetch_lo = lo;
        c->fetch_hi = hi;
        send_cmd(c, op, "FETCH %u:%u (BODY.PEEK[HEADER])", lo, hi);
        break;
    }
    case OP_FETCH_BS: {
        uint32_t m = 1 + rndn(n);
        c->fetch_lo = c->fetch_hi = m;
        send_cmd(c, op, "FETCH %u (BODYSTRUCTURE)", m);
        break;
    }
    case OP_FETCH_BODY: {
        uint32_t m = 1 + rndn(n);
        c->fetch_lo = c->fetch_hi = m;
        send_cmd(c, op, "FETCH %u (BODY.PEEK[])", m);
        break;
    }
    case OP_STORE: {
        static const char *const fl[] = {"(\\Seen)", "(\\Flagged)", "(\\Answered)", "(\\Seen \\Flagged)",
                                         "($Label1)"};
        uint32_t m = 1 + rndn(n);
        c->fetch_lo = c->fetch_hi = m;
        int f = (int)rndn(5);
        if (f == 4 && rndn(2)) {
            send_cmd(c, op, "STORE %u -FLAGS (\\Seen)", m);
        } else {
            send_cmd(c, op, "STORE %u +FLAGS %s", m, fl[f]);
        }
        break;
    }
    case OP_SEARCH: {
        static const char *const q[] = {"UNSEEN", "FLAGGED", "LARGER 20000", "SINCE 1-Jan-2023 NOT DELETED",
                                        "OR ANSWERED FLAGGED", "SMALLER 5000 SEEN"};
        send_cmd(c, op, "SEARCH %s", q[rndn(6)]);
        break;
    }
    case OP_SEARCH_HDR: {
        static const char *const q[] = {"FROM \"alice\"", "SUBJECT \"budget\"", "TO \"grace\""};
        send_cmd(c, op, "SEARCH %s", q[rndn(3)]);
        break;
    }
    case OP_EXPUNGE: {
        uint32_t lo = 1 + rndn(n), hi = lo + rndn(3);
        if (hi > n) {
            hi = n;
        }
        send_cmd(c, OP_STORE_DEL, "STORE %u:%u +FLAGS.SILENT (\\Deleted)", lo, hi);
        break;
    }
    case OP_IDLE:
        send_cmd(c, op, "IDLE");
        c->state = ST_WAITPLUS;
        break;
    case OP_LOGOUT:
        send_cmd(c, op, "LOGOUT");
        break;
    default:
        send_cmd(c, OP_NOOP, "NOOP");
        break;
    }
}

static void next_command(client *c)
{
    uint64_t t = now_us();
    if (stop_flag || (measuring_started && t > t_end)) {
        c->state = ST_DONE;
        return;
    }
    if (!measuring_started && !strcmp(opt.mode, "mix")) {
        /* Start the mix only once all clients are in, so the ramp of a
         * slow-to-log-in server is not starved by the first ones. */
        c->state = ST_GATE;
        return;
    }
    if (!strcmp(opt.mode, "hold")) {
        c->state = ST_HOLD;
        n_ready++;
        return;
    }
    if (!strcmp(opt.mode, "preload")) {
        if (c->exists >= (uint32_t)opt.preload) {
            c->state = ST_DONE;
            n_ready++;
            return;
        }
        send_append(c);
        return;
    }
    if (!strcmp(opt.mode, "probe")) {
        /* Preload a few messages, then each op once. */
        if (c->exists < 5) {
            send_append(c);
            return;
        }
        probe_op++;
        while (probe_op < OP_N &&
               (probe_op == OP_CONNECT || probe_op == OP_LOGIN || probe_op == OP_SELECT ||
                probe_op == OP_STORE_DEL || probe_op == OP_LOGOUT)) {
            probe_op++;
        }
        if (probe_op >= OP_N) {
            send_cmd(c, OP_LOGOUT, "LOGOUT");
            return;
        }
        send_op(c, probe_op);
        return;
    }
    if (opt.per_session > 0 && c->session_cmds >= opt.per_session) {
        send_cmd(c, OP_LOGOUT, "LOGOUT");
        return;
    }
    if (opt.think_ms > 0) {
        c->state = ST_THINK;
        set_timer(c, t + (uint64_t)opt.think_ms * 1000);
        return;
    }
    send_op(c, pick_op());
}

/* ---- response handling ---- */

static int starts(const char *p, size_t n, const char *s)
{
    size_t l = strlen(s);
    return n >= l && strncasecmp(p, s, l) == 0;
}

static int verify_fetched(client *c, const char *lit, size_t len, int header_only)
{
    const char *p = memmem(lit, len < 8192 ? len : 8192, "X-Bench-Id: ", 12);
    if (!p) {
        return 0;
    }
    int id = atoi(p + 12);
    if (id < 0 || id >= ncorpus) {
        return 0;
    }
    const msg *m = &corpus[id];
    size_t want = header_only ? m->hdr_len : m->len;
    if (len != want || memcmp(lit, m->data, want) != 0) {
        if (opt.progress) {
            fprintf(stderr, "loadgen: client %d: %s mismatch on corpus %d: got %zu bytes, want %zu\n", c->id,
                    op_name[c->op], id, len, want);
        }
        return 0;
    }
    return 1;
}

static void on_tagged(client *c, const char *p, size_t n)
{
    uint64_t t = now_us();
    size_t tl = strlen(c->tag);
    const char *s = p + tl + 1;
    size_t sn = n - tl - 1;
    int kind = starts(s, sn, "OK") ? 0 : starts(s, sn, "NO") ? 1 : starts(s, sn, "BAD") ? 2 : 4;
    int op = c->op;
    uint64_t lat = t - c->t0;
    if (op == OP_IDLE) {
        lat = (c->t_plus - c->t0) + (t - c->t_done);
    }
    if (kind == 0 && opt.verify) {
        int ok = !c->bad_verify;
        switch (op) {
        case OP_FETCH_FLAGS:
            ok = ok && (opt.users ? c->nfetch >= (c->exists ? 1 : 0) : (uint32_t)c->nfetch == c->exists);
            break;
        case OP_FETCH_HDR:
        case OP_FETCH_BODY:
            ok = ok && (uint32_t)c->nfetch == c->fetch_hi - c->fetch_lo + 1;
            break;
        case OP_FETCH_BS:
            ok = ok && c->nfetch == 1;
            break;
        case OP_STORE:
            /* Dovecot leaves out the FETCH when the flags did not change. */
            ok = ok && c->nfetch <= 1;
            break;
        case OP_SEARCH:
        case OP_SEARCH_HDR:
            ok = ok && c->nsearch == 1;
            break;
        case OP_EXPUNGE:
            ok = ok && (opt.users || c->nexpunge >= 1);
            break;
        case OP_SELECT:
            ok = ok && c->saw_exists;
            break;
        default:
            break;
        }
        if (!ok) {
            kind = 3;
            if (opt.progress || !strcmp(opt.mode, "probe")) {
                fprintf(stderr, "loadgen: client %d: %s answer failed checks (fetch=%d search=%d exp=%d)\n",
                        c->id, op_name[op], c->nfetch, c->nsearch, c->nexpunge);
            }
        }
    }
    if (op == OP_APPEND && kind == 0 && !c->saw_exists) {
        notes_noexists++;
    }
    if (kind != 0 && (opt.progress || !strcmp(opt.mode, "probe"))) {
        fprintf(stderr, "loadgen: client %d: %s -> %.*s\n", c->id, op_name[op], (int)(n > 200 ? 200 : n), p);
    }
    record(c, op, kind, lat);
    c->state = ST_THINK;
    if (op == OP_LOGIN) {
        if (kind != 0) {
            client_fail(c, "login failed");
            return;
        }
        send_cmd(c, OP_SELECT, "SELECT INBOX");
        return;
    }
    if (op == OP_SELECT) {
        if (kind != 0) {
            client_fail(c, "select failed");
            return;
        }
        ramp_done(c);
        c->session_cmds = 0;
        if (!c->selected_once) {
            c->selected_once = 1;
            n_selected++;
        }
    }
    if (op == OP_LOGOUT) {
        client_close(c, 0);
        return;
    }
    if (op == OP_STORE_DEL && kind == 0) {
        send_cmd(c, OP_EXPUNGE, "EXPUNGE");
        return;
    }
    next_command(c);
}

/* One complete response [p, p+n) with its literals recorded in c->lit_*. */
static void on_response(client *c, const char *p, size_t n, const char *base)
{
    if (n >= 2 && p[n - 1] == '\n') {
        n -= p[n - 2] == '\r' ? 2 : 1;
    }
    if (c->state == ST_GREETING) {
        if (!starts(p, n, "* OK")) {
            client_fail(c, "bad greeting");
            return;
        }
        record(c, OP_CONNECT, 0, now_us() - c->t0);
        do_login(c);
        return;
    }
    if (p[0] == '+') {
        if (c->state != ST_WAITPLUS) {
            client_fail(c, "unexpected continuation");
            return;
        }
        if (c->op == OP_APPEND) {
            c->state = ST_CMD;
            buf_add(&c->out, corpus[c->append_msg].data, corpus[c->append_msg].len);
            buf_adds(&c->out, "\r\n");
            flush_out(c);
        } else {
            c->t_plus = now_us();
            c->state = ST_IDLING;
            set_timer(c, c->t_plus + (uint64_t)opt.idle_ms * 1000);
        }
        return;
    }
    if (p[0] == '*') {
        const char *q = p + 2;
        size_t qn = n > 2 ? n - 2 : 0;
        if (qn && q[0] >= '0' && q[0] <= '9') {
            char *e;
            unsigned long num = strtoul(q, &e, 10);
            size_t rest = qn - (size_t)(e - q);
            if (starts(e, rest, " EXISTS")) {
                c->exists = (uint32_t)num;
                c->saw_exists = 1;
            } else if (starts(e, rest, " EXPUNGE")) {
                if (c->exists) {
                    c->exists--;
                }
                c->nexpunge++;
            } else if (starts(e, rest, " FETCH")) {
                c->nfetch++;
                if (c->op == OP_FETCH_BS && !memmem(p, n, "BODYSTRUCTURE (", 15)) {
                    c->bad_verify = 1;
                }
                if ((c->op == OP_FETCH_BODY || c->op == OP_FETCH_HDR) && opt.verify) {
                    if (c->nlit < 1 ||
                        !verify_fetched(c, base + c->lit_off[0], c->lit_len[0], c->op == OP_FETCH_HDR)) {
                        c->bad_verify = 1;
                    }
                }
            }
        } else if (starts(q, qn, "SEARCH")) {
            c->nsearch++;
        } else if (starts(q, qn, "BYE") && c->op != OP_LOGOUT) {
            client_fail(c, "server said BYE");
        }
        return;
    }
    size_t tl = strlen(c->tag);
    if ((c->state == ST_CMD || c->state == ST_WAITPLUS || c->state == ST_IDLING) && n > tl &&
        memcmp(p, c->tag, tl) == 0 && p[tl] == ' ') {
        if (c->state != ST_CMD) {
            /* A tagged answer where a continuation was expected: the
             * server refused the command (e.g. IDLE unsupported). */
            if (c->op == OP_IDLE) {
                c->t_plus = c->t_done = c->t0;
            }
        }
        on_tagged(c, p, n);
        return;
    }
    client_fail(c, "unexpected response");
}

/* Split c->in into complete responses (lines plus literals). */
static void process_input(client *c)
{
    for (;;) {
        if (c->fd < 0 || c->state == ST_WAITCONN || c->state == ST_DONE) {
            return;
        }
        if (c->rs_scan > c->in.len) {
            return; /* still waiting for literal bytes */
        }
        char *nl = memchr(c->in.p + c->rs_scan, '\n', c->in.len - c->rs_scan);
        if (!nl) {
            c->rs_scan = c->in.len;
            return;
        }
        size_t end = (size_t)(nl - c->in.p); /* index of '\n' */
        /* Literal announcement at the end of the line? "{123}\r\n" */
        size_t le = end;
        if (le > 0 && c->in.p[le - 1] == '\r') {
            le--;
        }
        if (le > 2 && c->in.p[le - 1] == '}') {
            size_t k = le - 2;
            while (k > c->rs_line && c->in.p[k] >= '0' && c->in.p[k] <= '9') {
                k--;
            }
            if (c->in.p[k] == '{' && k < le - 2) {
                size_t L = strtoull(c->in.p + k + 1, NULL, 10);
                if (c->nlit < 4) {
                    c->lit_off[c->nlit] = end + 1;
                    c->lit_len[c->nlit] = L;
                    c->nlit++;
                }
                c->rs_scan = c->rs_line = end + 1 + L;
                continue;
            }
        }
        /* Complete response from 0 to end. */
        size_t rlen = end + 1;
        st[c->op].bytes_in += rlen;
        on_response(c, c->in.p, rlen, c->in.p);
        if (c->fd < 0 || c->in.p == NULL) {
            return;
        }
        memmove(c->in.p, c->in.p + rlen, c->in.len - rlen);
        c->in.len -= rlen;
        c->rs_scan = c->rs_line = 0;
        c->nlit = 0;
        if (c->in.len == 0 && c->in.cap > 65536) {
            buf_free(&c->in);
        }
    }
}

static void on_readable(client *c)
{
    for (;;) {
        buf_reserve(&c->in, 16384);
        ssize_t n;
#if LG_TLS
        if (c->ssl) {
            int r = SSL_read(c->ssl, c->in.p + c->in.len, (int)(c->in.cap - c->in.len));
            if (r <= 0) {
                int e = SSL_get_error(c->ssl, r);
                if (e == SSL_ERROR_WANT_READ) {
                    break;
                }
                if (e == SSL_ERROR_WANT_WRITE) {
                    ep_mod(c, 1);
                    break;
                }
                client_fail(c, "tls read error / eof");
                return;
            }
            n = r;
        } else
#endif
        {
            n = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len, 0);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR) {
                    break;
                }
                client_fail(c, "read error");
                return;
            }
            if (n == 0) {
                if (c->state == ST_CMD && c->op == OP_LOGOUT) {
                    client_close(c, 0);
                } else {
                    client_fail(c, "connection closed by server");
                }
                return;
            }
        }
        c->in.len += (size_t)n;
        if ((size_t)n < 16384) {
            break;
        }
    }
    process_input(c);
}

#if LG_TLS
static void tls_step(client *c)
{
    int r = SSL_connect(c->ssl);
    if (r == 1) {
        c->state = ST_GREETING;
        ep_mod(c, 0);
        on_readable(c);
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        ep_mod(c, 0);
    } else if (e == SSL_ERROR_WANT_WRITE) {
        ep_mod(c, 1);
    } else {
        client_fail(c, "tls handshake failed");
    }
}
#endif

static void on_event(client *c, uint32_t ev)
{
    if (c->state == ST_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            client_fail(c, strerror(err));
            return;
        }
        if (!(ev & (EPOLLOUT | EPOLLIN))) {
            return;
        }
#if LG_TLS
        if (opt.tls) {
            c->ssl = SSL_new(ssl_ctx);
            SSL_set_fd(c->ssl, c->fd);
            SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
            c->state = ST_TLS_HS;
            tls_step(c);
            return;
        }
#endif
        c->state = ST_GREETING;
        ep_mod(c, 0);
        if (!(ev & EPOLLIN)) {
            return;
        }
    }
#if LG_TLS
    if (c->state == ST_TLS_HS) {
        tls_step(c);
        return;
    }
#endif
    if ((ev & EPOLLOUT) && c->fd >= 0) {
        flush_out(c);
    }
    if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && c->fd >= 0) {
        on_readable(c);
    }
}

static void on_timer(client *c)
{
    switch (c->state) {
    case ST_WAITCONN:
        enqueue_connect(c);
        break;
    case ST_IDLING:
        c->t_done = now_us();
        c->state = ST_CMD;
        buf_adds(&c->out, "DONE\r\n");
        flush_out(c);
        break;
    case ST_THINK:
        send_op(c, pick_op());
        break;
    default:
        break;
    }
}

static void on_signal(int s)
{
    (void)s;
    stop_flag = 1;
}

/* ------------------------------------------------------------------ */
/* Reporting                                                           */

static void report(double secs)
{
    FILE *o = stdout;
    FILE *mf = opt.out ? fopen(opt.out, "a") : NULL;
    uint64_t tot_ok = 0, tot_err = 0;
    opstat all = {0};
    fprintf(o, "# %s  clients=%d  window=%.1fs  per_session=%d  tls=%d\n", opt.label, opt.clients, secs,
            opt.per_session, opt.tls);
    fprintf(o, "%-12s %9s %6s %6s %6s %6s %10s %9s %9s %9s\n", "op", "ok", "no", "bad", "verify", "io",
            "cmd/s", "p50_ms", "p99_ms", "max_ms");
    for (int i = 0; i < OP_N; i++) {
        opstat *s = &st[i];
        uint64_t err = s->no + s->bad + s->verify + s->io;
        if (!s->ok && !err) {
            continue;
        }
        fprintf(o, "%-12s %9" PRIu64 " %6" PRIu64 " %6" PRIu64 " %6" PRIu64 " %6" PRIu64 " %10.1f %9.3f %9.3f %9.3f\n",
                op_name[i], s->ok, s->no, s->bad, s->verify, s->io, (double)s->ok / secs, hpct(s, 0.5) / 1000.0,
                hpct(s, 0.99) / 1000.0, s->max_us / 1000.0);
        if (mf) {
            fprintf(mf,
                    "R label=%s op=%s ok=%" PRIu64 " no=%" PRIu64 " bad=%" PRIu64 " verify=%" PRIu64 " io=%" PRIu64
                    " cps=%.2f p50_us=%" PRIu64 " p99_us=%" PRIu64 " max_us=%" PRIu64 "\n",
                    opt.label, op_name[i], s->ok, s->no, s->bad, s->verify, s->io, (double)s->ok / secs,
                    hpct(s, 0.5), hpct(s, 0.99), s->max_us);
        }
        /* The total counts commands of the mix (and session commands),
         * not the TCP connect. */
        if (i != OP_CONNECT) {
            tot_ok += s->ok;
            tot_err += err;
            for (int k = 0; k < HBUCKETS; k++) {
                all.h[k] += s->h[k];
            }
            all.ok += s->ok;
            if (s->max_us > all.max_us) {
                all.max_us = s->max_us;
            }
        }
    }
    fprintf(o, "%-12s %9" PRIu64 " %27" PRIu64 " %10.1f %9.3f %9.3f %9.3f\n", "TOTAL", tot_ok, tot_err,
            (double)tot_ok / secs, hpct(&all, 0.5) / 1000.0, hpct(&all, 0.99) / 1000.0, all.max_us / 1000.0);
    uint64_t p50 = hpct(&all, 0.5), p99 = hpct(&all, 0.99), p50c = p50, p99c = p99;
    if (st[OP_CONNECT].ok) {
        /* With sessions, a server slow to accept (Dovecot forks a process
         * per login) keeps clients in connect, out of TOTAL, so fewer are
         * in commands at once and TOTAL's latencies look better: this line
         * counts the connects too (not in the summary tables). */
        opstat *c = &st[OP_CONNECT];
        for (int k = 0; k < HBUCKETS; k++) {
            all.h[k] += c->h[k];
        }
        all.ok += c->ok;
        if (c->max_us > all.max_us) {
            all.max_us = c->max_us;
        }
        p50c = hpct(&all, 0.5);
        p99c = hpct(&all, 0.99);
        fprintf(o, "%-12s %9" PRIu64 " %27s %10s %9.3f %9.3f %9.3f\n", "TOTAL+conn", all.ok, "", "",
                p50c / 1000.0, p99c / 1000.0, all.max_us / 1000.0);
    }
    if (notes_noexists) {
        fprintf(o, "note: %" PRIu64 " APPENDs answered OK without an EXISTS response\n", notes_noexists);
    }
    if (mf) {
        fprintf(mf,
                "T label=%s clients=%d ok=%" PRIu64 " err=%" PRIu64 " cps=%.2f p50_us=%" PRIu64 " p99_us=%" PRIu64
                " p50c_us=%" PRIu64 " p99c_us=%" PRIu64 " secs=%.2f all_ok=%" PRIu64 "\n",
                opt.label, opt.clients, tot_ok, tot_err, (double)tot_ok / secs, p50, p99, p50c, p99c, secs, all_ok);
        fclose(mf);
    }
}

static void probe_report(void)
{
    /* One line: op=ok|no|bad|verify|io|none */
    printf("PROBE");
    for (int i = OP_APPEND; i < OP_N; i++) {
        if (i == OP_STORE_DEL || i == OP_LOGOUT) {
            continue;
        }
        opstat *s = &st[i];
        const char *v = s->ok && !(s->no + s->bad + s->verify + s->io) ? "ok"
                        : s->bad                                       ? "bad"
                        : s->no                                        ? "no"
                        : s->verify                                    ? "verify"
                        : s->io                                        ? "io"
                                                                       : "none";
        printf(" %s=%s", op_name[i], v);
    }
    printf("\n");
}

/* ------------------------------------------------------------------ */

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen [options]\n"
            "  --host A --port N --tls           server (TLS: implicit, imaps-style)\n"
            "  --clients N                       simulated clients\n"
            "  --mode mix|hold|preload|probe|corpus\n"
            "  --duration S --warmup S           measured window and warm-up (after all logged in)\n"
            "  --user-fmt F --pass-fmt F         printf formats with %%d (default bench%%d / pw%%d)\n"
            "  --users K --user-base B           K users shared round-robin (0: one per client)\n"
            "  --per-session N                   LOGOUT and reconnect every N commands (0: never)\n"
            "  --mix op=w,op=w,...               weights (ops: append fetch_flags fetch_hdr fetch_bs\n"
            "                                    fetch_body store search search_hdr expunge idle noop)\n"
            "  --think MS --idle-ms MS           pause between commands; IDLE hold time\n"
            "  --min-msgs N --max-msgs N         keep each INBOX within [N, M] messages\n"
            "  --preload N                       (mode preload) fill each INBOX to N messages\n"
            "  --corpus N --seed S --big-max-kb K corpus size, seed, largest attachment\n"
            "  --max-pending N                   connections being set up at once\n"
            "  --src-ips K                       spread source addresses over 127.0.0.2..K+1\n"
            "  --literal-plus --no-verify --timeout S\n"
            "  --deadline S                      give up after S seconds in all\n"
            "  --out FILE --label L --progress   machine-readable results appended to FILE\n"
            "  --write-mbox FILE                 (mode corpus) write the corpus as mboxrd\n");
    exit(2);
}

static void parse_mix(const char *s)
{
    memset(mix_w, 0, sizeof mix_w);
    char *d = strdup(s), *save = NULL;
    for (char *t = strtok_r(d, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        if (!eq) {
            die("bad --mix item %s", t);
        }
        *eq = 0;
        int found = 0;
        for (int i = 0; i < OP_N; i++) {
            if (!strcmp(op_name[i], t)) {
                mix_w[i] = atoi(eq + 1);
                found = 1;
            }
        }
        if (!found) {
            die("unknown op %s in --mix", t);
        }
    }
    free(d);
}

int main(int argc, char **argv)
{
    memcpy(mix_w, mix_default, sizeof mix_w);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define ARG() (i + 1 < argc ? argv[++i] : (usage(), ""))
        if (!strcmp(a, "--host")) {
            opt.host = ARG();
        } else if (!strcmp(a, "--port")) {
            opt.port = atoi(ARG());
        } else if (!strcmp(a, "--tls")) {
            opt.tls = 1;
        } else if (!strcmp(a, "--clients")) {
            opt.clients = atoi(ARG());
        } else if (!strcmp(a, "--duration")) {
            opt.duration = atof(ARG());
        } else if (!strcmp(a, "--warmup")) {
            opt.warmup = atof(ARG());
        } else if (!strcmp(a, "--mode")) {
            opt.mode = ARG();
        } else if (!strcmp(a, "--user-fmt")) {
            opt.user_fmt = ARG();
        } else if (!strcmp(a, "--pass-fmt")) {
            opt.pass_fmt = ARG();
        } else if (!strcmp(a, "--users")) {
            opt.users = atoi(ARG());
        } else if (!strcmp(a, "--user-base")) {
            opt.user_base = atoi(ARG());
        } else if (!strcmp(a, "--per-session")) {
            opt.per_session = atoi(ARG());
        } else if (!strcmp(a, "--mix")) {
            parse_mix(ARG());
        } else if (!strcmp(a, "--think")) {
            opt.think_ms = atoi(ARG());
        } else if (!strcmp(a, "--idle-ms")) {
            opt.idle_ms = atoi(ARG());
        } else if (!strcmp(a, "--min-msgs")) {
            opt.min_msgs = atoi(ARG());
        } else if (!strcmp(a, "--max-msgs")) {
            opt.max_msgs = atoi(ARG());
        } else if (!strcmp(a, "--preload")) {
            opt.preload = atoi(ARG());
        } else if (!strcmp(a, "--corpus")) {
            opt.corpus_n = atoi(ARG());
        } else if (!strcmp(a, "--seed")) {
            opt.seed = strtoull(ARG(), NULL, 10);
        } else if (!strcmp(a, "--big-max-kb")) {
            opt.big_max_kb = atoi(ARG());
        } else if (!strcmp(a, "--max-pending")) {
            opt.max_pending = atoi(ARG());
        } else if (!strcmp(a, "--src-ips")) {
            opt.src_ips = atoi(ARG());
        } else if (!strcmp(a, "--literal-plus")) {
            opt.literal_plus = 1;
        } else if (!strcmp(a, "--no-verify")) {
            opt.verify = 0;
        } else if (!strcmp(a, "--timeout")) {
            opt.timeout = atof(ARG());
        } else if (!strcmp(a, "--out")) {
            opt.out = ARG();
        } else if (!strcmp(a, "--label")) {
            opt.label = ARG();
        } else if (!strcmp(a, "--progress")) {
            opt.progress = 1;
        } else if (!strcmp(a, "--deadline")) {
            opt.deadline = atof(ARG());
        } else if (!strcmp(a, "--write-mbox")) {
            opt.write_mbox = ARG();
        } else {
            usage();
        }
    }
    if (opt.tls && !LG_TLS) {
        die("built without TLS (rebuild with -DLG_TLS=1 -lssl -lcrypto)");
    }
    if (opt.big_max_kb < 5) {
        opt.big_max_kb = 5;
    }
    gen_corpus();
    if (!strcmp(opt.mode, "corpus")) {
        if (!opt.write_mbox) {
            die("--mode corpus needs --write-mbox FILE");
        }
        write_mbox(opt.write_mbox);
        size_t tot = 0;
        for (int i = 0; i < ncorpus; i++) {
            tot += corpus[i].len;
        }
        printf("wrote %d messages, %zu bytes\n", ncorpus, tot);
        return 0;
    }
    if (!strcmp(opt.mode, "probe")) {
        opt.clients = 1;
        opt.verify = 1;
        opt.min_msgs = 0;
    }
    rng_state ^= opt.seed * 0x9E3779B97F4A7C15ull + (uint64_t)getpid();
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
#if LG_TLS
    if (opt.tls) {
        ssl_ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
    }
#endif
    epfd = epoll_create1(EPOLL_CLOEXEC);
    cl = calloc((size_t)opt.clients, sizeof *cl);
    wq_cap = opt.clients + 1;
    waitq = calloc((size_t)wq_cap, sizeof *waitq);
    t_begin = now_us();
    for (int i = 0; i < opt.clients; i++) {
        client *c = &cl[i];
        c->id = i;
        c->fd = -1;
        c->user = opt.user_base + (opt.users > 0 ? i % opt.users : i);
        c->state = ST_WAITCONN;
        enqueue_connect(c);
    }
    int is_mix = !strcmp(opt.mode, "mix");
    int is_hold = !strcmp(opt.mode, "hold");
    int announced = 0;
    struct epoll_event evs[256];
    uint64_t last_scan = now_us(), last_prog = last_scan;
    uint64_t ramp_deadline = t_begin + (uint64_t)(opt.timeout * 1e6) + (uint64_t)opt.clients * 20000;
    for (;;) {
        uint64_t t = now_us();
        int timeout = 100;
        if (nheap) {
            int64_t d = (int64_t)(heap[0].at - t);
            timeout = d <= 0 ? 0 : (int)((d + 999) / 1000);
            if (timeout > 100) {
                timeout = 100;
            }
        }
        int n = epoll_wait(epfd, evs, 256, timeout);
        for (int i = 0; i < n; i++) {
            on_event(evs[i].data.ptr, evs[i].events);
        }
        t = now_us();
        while (nheap && heap[0].at <= t) {
            tmr x = heap_pop();
            client *c = &cl[x.id];
            if (x.gen == c->timer_gen) {
                on_timer(c);
            }
        }
        /* Ramp: measurement starts once every client has selected INBOX
         * once (or the ramp deadline passes). */
        if (!measuring_started) {
            int all = n_selected >= opt.clients;
            if (all || t > ramp_deadline) {
                measuring_started = 1;
                t_measure = t + (uint64_t)(opt.warmup * 1e6);
                t_end = t_measure + (uint64_t)(opt.duration * 1e6);
                if (is_hold || !is_mix) {
                    t_end = UINT64_MAX;
                }
                for (int i = 0; i < opt.clients; i++) {
                    if (cl[i].state == ST_GATE) {
                        next_command(&cl[i]);
                    }
                }
                fprintf(stderr, "loadgen: %d clients up after %.2fs%s\n", opt.clients, (t - t_begin) / 1e6,
                        all ? "" : " (ramp deadline passed)");
            }
        }
        if (is_hold && !announced && measuring_started && n_ready >= opt.clients) {
            printf("READY %d\n", n_ready);
            fflush(stdout);
            announced = 1;
        }
        if (t - last_scan > 100000) {
            last_scan = t;
            int live = 0;
            for (int i = 0; i < opt.clients; i++) {
                client *c = &cl[i];
                if ((c->state == ST_CMD || c->state == ST_WAITPLUS || c->state == ST_CONNECTING ||
                     c->state == ST_GREETING || c->state == ST_TLS_HS) &&
                    t > c->deadline) {
                    client_fail(c, "timeout");
                }
                if (c->state != ST_DONE) {
                    live++;
                }
            }
            if (opt.progress && t - last_prog > 1000000) {
                last_prog = t;
                uint64_t ok = 0;
                for (int i = 0; i < OP_N; i++) {
                    ok += st[i].ok;
                }
                fprintf(stderr, "loadgen: t=%.1fs live=%d ready=%d ok=%" PRIu64 "\n", (t - t_begin) / 1e6, live,
                        n_ready, ok);
            }
            if (!live) {
                break;
            }
            if (is_mix && measuring_started && t > t_end) {
                break;
            }
            if (!strcmp(opt.mode, "preload") && n_ready >= opt.clients) {
                break;
            }
        }
        if (stop_flag) {
            break;
        }
        if (opt.deadline > 0 && t - t_begin > (uint64_t)(opt.deadline * 1e6)) {
            fprintf(stderr, "loadgen: deadline of %.0fs passed\n", opt.deadline);
            break;
        }
    }
    if (!strcmp(opt.mode, "probe")) {
        probe_report();
        return 0;
    }
    if (is_mix) {
        report(opt.duration);
    } else if (!strcmp(opt.mode, "preload")) {
        printf("preloaded %d clients\n", n_ready);
    } else {
        printf("held %d\n", n_ready);
    }
    uint64_t errs = 0;
    for (int i = 0; i < OP_N; i++) {
        errs += st[i].no + st[i].bad + st[i].verify + st[i].io;
    }
    return 0;
    (void)errs;
}
