/*
 * lmtp.c -- LMTP (RFC 2033) in the main poll loop, and local delivery.
 *
 * States: greeted -> LHLO -> MAIL FROM -> RCPT TO (one or more) -> DATA ->
 * one reply per accepted recipient -> back to LHLO'd. Lines come from the
 * connection engine without their CRLF (c->linefn). During DATA each line
 * is dot-unstuffed and streamed to one st_msgin per recipient, so memory
 * stays bounded (st_append spools past 128 KiB). A recipient's reply is
 * 250 only after st_box_commit(): the message is durable.
 */
#include "lmtp.h"
#include "mime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passwd.h"

/* Recipients per transaction: RFC 5321 asks servers to take at least 100;
 * each costs an open mailbox and an append spool while DATA streams, so a
 * router keeps it small. Postfix's lmtp_destination_recipient_limit
 * defaults to 50 and simply sends the rest in another transaction (452). */
#define LMTP_MAX_RCPT 32
/* Longest user name taken from a RCPT address (the store escapes it). */
#define LMTP_USER_MAX 64

enum { L_GREETED, L_READY, L_MAIL, L_DATA };

typedef struct lmtp_rcpt {
    char     user[LMTP_USER_MAX + 1]; /* local part */
    st_box  *box;                     /* its INBOX while DATA streams */
    st_msgin *in;                     /* the message going in */
    int      err;                     /* ST_E* that sank it, 0 = fine */
} lmtp_rcpt;

typedef struct lmtp_state {
    int       st;                     /* L_* */
    lmtp_rcpt rcpt[LMTP_MAX_RCPT];
    unsigned  nrcpt;
    uint64_t  bytes;                  /* of the message so far */
} lmtp_state;

int tool_user_known(const char *text, size_t tlen, const char *u, size_t n)
{
    if (n == 0 || n > LMTP_USER_MAX || u[0] == '.') {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = u[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-' || ch == '@' || ch == '+')) {
            return 0;
        }
    }
    return pw_user_exists(text, tlen, u, n);
}

static void reset(lmtp_state *l)
{
    for (unsigned i = 0; i < l->nrcpt; i++) {
        st_msgin_abort(l->rcpt[i].in);
        st_box_close(l->rcpt[i].box);
    }
    memset(l->rcpt, 0, sizeof l->rcpt);
    l->nrcpt = 0;
    l->bytes = 0;
    if (l->st != L_GREETED) {
        l->st = L_READY;
    }
}

void lmtp_free(imap_conn *c)
{
    if (c->lmtp) {
        reset(c->lmtp);
        free(c->lmtp);
        c->lmtp = NULL;
    }
}

static int cmd_is(const char *s, size_t n, const char *cmd)
{
    size_t k = strlen(cmd);
    return n >= k && ascii_ncasecmp(s, cmd, k) == 0 && (n == k || s[k] == ' ' || s[k] == ':' ||
                                                        cmd[k - 1] == ':');
}

/* "<local@domain> params" -> local part; 0 or -1. */
static int rcpt_user(const char *s, size_t n, char *out)
{
    while (n && *s == ' ') {
        s++;
        n--;
    }
    if (!n || *s != '<') {
        return -1;
    }
    const char *e = memchr(s, '>', n);
    if (!e) {
        return -1;
    }
    s++;
    size_t k = (size_t)(e - s);
    const char *at = memchr(s, '@', k);
    if (at) {
        k = (size_t)(at - s);
    }
    if (k == 0 || k > LMTP_USER_MAX) {
        return -1;
    }
    memcpy(out, s, k);
    out[k] = 0;
    return 0;
}

static const char *st_reply(int err)
{
    switch (err) {
    case ST_EQUOTA:
        return "552 5.2.2 Mailbox full";
    case ST_ETOOBIG:
        return "552 5.3.4 Message too big";
    case ST_ENOSPC:
        return "452 4.3.1 Insufficient system storage";
    default:
        return "451 4.3.0 Temporary failure in the mail store";
    }
}

/* DATA: open every recipient's INBOX and start an append. */
static void data_begin(imap_conn *c, lmtp_state *l)
{
    int tz = 0;
    int64_t now = port_time(&tz);
    for (unsigned i = 0; i < l->nrcpt; i++) {
        lmtp_rcpt *r = &l->rcpt[i];
        r->err = st_user_ensure(g_srv->store, r->user);
        if (!r->err) {
            r->err = st_box_open(g_srv->store, r->user, "INBOX", &r->box);
        }
        if (!r->err) {
            r->err = st_msgin_begin(r->box, now, tz, 0, 0, 0, &r->in);
        }
    }
    l->st = L_DATA;
    out_puts(c, "354 Start mail input; end with <CRLF>.<CRLF>\r\n");
}

static void data_line(imap_conn *c, lmtp_state *l, const char *s, size_t n)
{
    if (n == 1 && s[0] == '.') {
        /* the end: one reply per recipient, each after its commit */
        for (unsigned i = 0; i < l->nrcpt; i++) {
            lmtp_rcpt *r = &l->rcpt[i];
            uint32_t uid = 0;
            if (!r->err) {
                r->err = st_msgin_end(r->in, &uid);
                r->in = NULL;
            }
            if (!r->err) {
                r->err = st_box_commit(r->box);
            }
            if (r->err) {
                log_warn("%s: LMTP delivery to %s failed: %s", c->peer, r->user, st_strerror(r->err));
                out_printf(c, "%s\r\n", st_reply(r->err));
            } else {
                log_info("%s: LMTP delivered to %s, UID %u", c->peer, r->user, (unsigned)uid);
                out_printf(c, "250 2.0.0 <%s> UID %u delivered\r\n", r->user, (unsigned)uid);
            }
        }
        reset(l);
        return;
    }
    if (n && s[0] == '.') {
        s++; /* dot-unstuffing (RFC 5321 4.5.2) */
        n--;
    }
    l->bytes += n + 2;
    for (unsigned i = 0; i < l->nrcpt; i++) {
        lmtp_rcpt *r = &l->rcpt[i];
        if (!r->err) {
            r->err = st_msgin_data(r->in, s, n);
        }
        if (!r->err) {
            r->err = st_msgin_data(r->in, "\r\n", 2);
        }
    }
}

static void lmtp_line(imap_conn *c, const char *s, size_t n)
{
    lmtp_state *l = c->lmtp;
    if (!l) {
        conn_close(c, "no LMTP state");
        return;
    }
    if (l->st == L_DATA) {
        data_line(c, l, s, n);
        return;
    }
    if (cmd_is(s, n, "LHLO")) {
        reset(l);
        l->st = L_READY;
        /* no SIZE: quota and disk space decide per recipient after DATA */
        out_puts(c, "250-picoimapd\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n");
    } else if (cmd_is(s, n, "QUIT")) {
        out_puts(c, "221 2.0.0 Bye\r\n");
        conn_close(c, "QUIT");
    } else if (cmd_is(s, n, "NOOP")) {
        out_puts(c, "250 2.0.0 OK\r\n");
    } else if (cmd_is(s, n, "RSET")) {
        reset(l);
        out_puts(c, "250 2.0.0 OK\r\n");
    } else if (l->st == L_GREETED) {
        out_puts(c, "503 5.5.1 LHLO first\r\n");
    } else if (cmd_is(s, n, "MAIL FROM:")) {
        if (l->st != L_READY) {
            out_puts(c, "503 5.5.1 Nested MAIL command\r\n");
        } else {
            l->st = L_MAIL;
            out_puts(c, "250 2.1.0 OK\r\n");
        }
    } else if (cmd_is(s, n, "RCPT TO:")) {
        char user[LMTP_USER_MAX + 1];
        char *text = NULL;
        size_t tlen = 0;
        if (l->st != L_MAIL) {
            out_puts(c, "503 5.5.1 MAIL first\r\n");
        } else if (rcpt_user(s + 8, n - 8, user) < 0) {
            out_puts(c, "501 5.1.3 Bad recipient address syntax\r\n");
        } else if (l->nrcpt >= LMTP_MAX_RCPT) {
            out_puts(c, "452 4.5.3 Too many recipients\r\n");
        } else if (st_slurp(st_vfs_posix(), g_srv->cfg->passwd, &text, &tlen, 16 << 20) < 0) {
            out_puts(c, "451 4.3.0 User database unavailable\r\n");
        } else {
            if (tool_user_known(text, tlen, user, strlen(user))) {
                memcpy(l->rcpt[l->nrcpt++].user, user, strlen(user) + 1);
                out_puts(c, "250 2.1.5 OK\r\n");
            } else {
                out_printf(c, "550 5.1.1 <%s> User unknown\r\n", user);
            }
        }
        free(text);
    } else if (cmd_is(s, n, "DATA")) {
        if (l->st != L_MAIL || !l->nrcpt) {
            out_puts(c, "503 5.5.1 No valid recipients\r\n");
        } else {
            data_begin(c, l);
        }
    } else {
        out_puts(c, "500 5.5.2 Command not recognized\r\n");
    }
}

void lmtp_start(imap_conn *c)
{
    c->lmtp = calloc(1, sizeof *c->lmtp);
    if (!c->lmtp) {
        out_puts(c, "421 4.3.0 Out of memory\r\n");
        conn_close(c, "out of memory");
        return;
    }
    /* an MTA, not a person: it gets the authenticated timeouts */
    conn_enter_state(c, S_AUTH);
    c->linefn = lmtp_line;
    out_puts(c, "220 picoimapd LMTP ready\r\n");
}

/* ---- picoimapd deliver ---- */

int tool_deliver(const imap_cfg *cfg, const char *user, const char *mailbox,
                 long (*rd)(void *ctx, void *buf, size_t n), void *ctx,
                 char *why, size_t whylen)
{
    char *text = NULL;
    size_t tlen = 0;
    int r = st_slurp(st_vfs_posix(), cfg->passwd, &text, &tlen, 16 << 20);
    if (r < 0) {
        snprintf(why, whylen, "cannot read passwd file %s: %s", cfg->passwd, st_strerror(r));
        return TOOL_EX_TEMPFAIL;
    }
    int known = tool_user_known(text, tlen, user, strlen(user));
    free(text);
    if (!known) {
        snprintf(why, whylen, "unknown user %s", user);
        return TOOL_EX_NOUSER;
    }
    st_store *s;
    if ((r = st_store_open(&s, cfg->store, st_vfs_posix())) != 0) {
        snprintf(why, whylen, "cannot open store %s: %s", cfg->store, st_strerror(r));
        return TOOL_EX_TEMPFAIL;
    }
    st_store_set_quota(s, cfg->quota);
    st_store_set_compact_ratio(s, cfg->compact_permille);
    /* new messages are parsed as they arrive (mime.c, issue 4) */
    mime_watch_appends(s);
    st_box *b = NULL;
    st_msgin *in = NULL;
    uint32_t uid = 0;
    int tz = 0;
    int64_t now = port_time(&tz);
    r = st_user_ensure(s, user);
    if (!r && !st_mailbox_exists(s, user, mailbox)) {
        r = st_mailbox_create(s, user, mailbox);
        r = r == ST_EEXIST ? 0 : r;
    }
    if (!r) {
        r = st_box_open(s, user, mailbox, &b);
    }
    if (!r) {
        r = st_msgin_begin(b, now, tz, 0, 0, ST_IN_ENVELOPE, &in);
    }
    char buf[16384];
    long got = 0;
    while (!r && (got = rd(ctx, buf, sizeof buf)) > 0) {
        r = st_msgin_data(in, buf, (size_t)got);
    }
    if (!r && got < 0) {
        r = ST_EIO;
    }
    if (!r) {
        r = st_msgin_end(in, &uid);
        in = NULL;
    }
    if (!r) {
        r = st_box_commit(b);
    }
    st_msgin_abort(in);
    st_box_close(b);
    st_store_close(s);
    if (r) {
        snprintf(why, whylen, "delivery to %s/%s failed: %s", user, mailbox, st_strerror(r));
        /* a full mailbox bounces like a full disk waits: both retry,
         * since mail may be expunged meanwhile (Postfix's default too) */
        return r == ST_EINVAL ? TOOL_EX_SOFTWARE : TOOL_EX_TEMPFAIL;
    }
    snprintf(why, whylen, "delivered to %s/%s as UID %u", user, mailbox, (unsigned)uid);
    return TOOL_EX_OK;
}
