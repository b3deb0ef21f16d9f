/*
 * cmd.c -- the command table and the handlers of IMAP4rev1 (RFC 3501).
 *
 * Commands are data: {name, states where allowed, handler}. A handler
 * reads its arguments through an args cursor, writes untagged responses,
 * and ends with reply() -- or sets c->cont to finish later.
 */
#include "cmd.h"
#include "b64.h"
#include "passwd.h"
#include "sasl.h"
#include "ext.h"
#include "sort.h"

#include <stdlib.h>
#include <string.h>

/* ---- argument cursor ---- */

const tok *arg_peek(args *a)
{
    return a->i < a->n ? &a->c->ps.toks[a->i] : NULL;
}

const char *arg_str(args *a, uint32_t i)
{
    return tok_s(&a->c->ps, i);
}

int arg_atom(args *a, const char **s, uint32_t *len)
{
    const tok *t = arg_peek(a);
    if (!t || t->type != TOK_ATOM) {
        return -1;
    }
    *s = arg_str(a, a->i);
    *len = t->len;
    a->i++;
    return 0;
}

int arg_astring(args *a, const char **s, uint32_t *len)
{
    const tok *t = arg_peek(a);
    if (!t || (t->type != TOK_ATOM && t->type != TOK_QUOTED && t->type != TOK_LITERAL)) {
        return -1;
    }
    *s = arg_str(a, a->i);
    *len = t->len;
    a->i++;
    return 0;
}

int arg_lparen(args *a)
{
    const tok *t = arg_peek(a);
    if (!t || t->type != TOK_LPAREN) {
        return -1;
    }
    a->i++;
    return 0;
}

int arg_rparen(args *a)
{
    const tok *t = arg_peek(a);
    if (!t || t->type != TOK_RPAREN) {
        return -1;
    }
    a->i++;
    return 0;
}

int arg_end(args *a)
{
    return a->i < a->n ? -1 : 0;
}

int arg_is_nil(args *a)
{
    const tok *t = arg_peek(a);
    return t && t->type == TOK_ATOM && ascii_casecmp(arg_str(a, a->i), "NIL") == 0;
}

/* ---- responses ---- */

void reply_st_err(imap_conn *c, int err, const char *what)
{
    switch (err) {
    case ST_ENOENT:
        reply(c, "NO", "[NONEXISTENT] %s: mailbox does not exist", what);
        break;
    case ST_EEXIST:
        reply(c, "NO", "[ALREADYEXISTS] %s: mailbox already exists", what);
        break;
    case ST_ENOSPC:
    case ST_EQUOTA:
        reply(c, "NO", "[OVERQUOTA] %s: %s", what, st_strerror(err));
        break;
    case ST_ETOOBIG:
        reply(c, "NO", "[TOOBIG] %s: %s", what, st_strerror(err));
        break;
    case ST_EFULL:
        reply(c, "NO", "[LIMIT] %s: too many keywords", what);
        break;
    case ST_EPERM:
        reply(c, "NO", "[CANNOT] %s: %s", what, st_strerror(err));
        break;
    default:
        log_err("%s: %s: %s", c->peer, what, st_strerror(err));
        reply(c, "NO", "[SERVERBUG] %s failed: %s", what, st_strerror(err));
        break;
    }
}

/* Whether a password may be sent now: over TLS always; in clear only
 * when the operator allowed it, or from loopback (unless turned off). */
static int plaintext_ok(imap_conn *c)
{
    return c->tls || g_srv->cfg->allow_plaintext || (c->loopback && g_srv->cfg->plaintext_loopback);
}

void cmd_capability_list(imap_conn *c)
{
    out_puts(c, "IMAP4rev1");
    if (CONFIG_EXT_IMAP4REV2) {
        out_puts(c, " IMAP4rev2");
    }
#if CONFIG_LITERAL_PLUS
    out_puts(c, " LITERAL+");
#elif CONFIG_EXT_LITERAL_MINUS
    out_puts(c, " LITERAL-");
#endif
    static const struct { int on; const char *name; } base[] = {
        {CONFIG_EXT_SASL_IR, " SASL-IR"}, {CONFIG_EXT_ID, " ID"}, {CONFIG_EXT_IDLE, " IDLE"},
        {CONFIG_EXT_UIDPLUS, " UIDPLUS"}, {CONFIG_EXT_UNSELECT, " UNSELECT"},
        {CONFIG_EXT_NAMESPACE, " NAMESPACE"}, {CONFIG_EXT_CHILDREN, " CHILDREN"},
    };
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++) {
        if (base[i].on) {
            out_puts(c, base[i].name);
        }
    }
    ext_capability_list(c);
#if CONFIG_SORT
    out_puts(c, " SORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES");
#endif
    if (CONFIG_EXT_COMPRESS && c->state != S_NOTAUTH && !c->z) {
        out_puts(c, " COMPRESS=DEFLATE");
    }
    if (c->state == S_NOTAUTH) {
        if (CONFIG_TLS && !c->tls && g_srv->cfg->tls_cert) {
            out_puts(c, " STARTTLS");
        }
        if (!plaintext_ok(c)) {
            out_puts(c, " LOGINDISABLED");
        } else {
#if CONFIG_AUTH_PLAIN
            out_puts(c, " AUTH=PLAIN");
#endif
#if CONFIG_AUTH_LOGIN
            out_puts(c, " AUTH=LOGIN");
#endif
#if CONFIG_AUTH_SCRAM
            out_puts(c, " AUTH=SCRAM-SHA-256");
#endif
        }
    }
}

void cmd_greeting(imap_conn *c)
{
    out_puts(c, "* OK [CAPABILITY ");
    cmd_capability_list(c);
    out_puts(c, "] picoimapd ready\r\n");
}

/* ---- helpers ---- */

static void unselect(imap_conn *c)
{
    if (c->sess) {
        view_close(c->sess);
        c->sess = NULL;
    }
    fetch_job_free(c);
}

void cmd_append_abort(imap_conn *c)
{
    ext_mappend_abort(c);
    if (c->append) {
        st_append_abort(c->append);
        c->append = NULL;
    }
    if (c->append_box) {
        st_box_close(c->append_box);
        c->append_box = NULL;
    }
    c->append_err = 0;
}

void cmd_conn_gone(imap_conn *c)
{
    sasl_free(c);
    cmd_append_abort(c);
    unselect(c);
}

/* Untagged updates before the tagged reply of a command in the selected
 * state; a deleted mailbox ends the session as Dovecot does. */
static void notify(imap_conn *c, int allow_expunge)
{
    if (!c->sess) {
        return;
    }
    if (c->sess->box->deleted) {
        out_puts(c, "* BYE Selected mailbox was deleted or renamed\r\n");
        conn_close(c, "mailbox deleted");
        return;
    }
    view_notify(c->sess, allow_expunge);
}

/* Get a validated mailbox name argument; replies BAD/NO itself on error. */
static char *arg_mailbox(imap_conn *c, args *a)
{
    const char *s;
    uint32_t n;
    const char *why;
    if (arg_astring(a, &s, &n) < 0) {
        reply(c, "BAD", "Missing mailbox name");
        return NULL;
    }
    char *name = mailbox_name_in(c, s, n, &why);
    if (!name) {
        reply(c, "NO", "[CANNOT] %s", why);
    }
    return name;
}

/* ---- any state ---- */

static void cmd_capability(imap_conn *c, args *a)
{
    if (arg_end(a) < 0) {
        reply(c, "BAD", "CAPABILITY takes no arguments");
        return;
    }
    out_puts(c, "* CAPABILITY ");
    cmd_capability_list(c);
    out_puts(c, "\r\n");
    reply(c, "OK", "CAPABILITY completed");
}

static void cmd_noop(imap_conn *c, args *a)
{
    if (arg_end(a) < 0) {
        reply(c, "BAD", "NOOP takes no arguments");
        return;
    }
    notify(c, 1);
    reply(c, "OK", "NOOP completed");
}

static void cmd_logout(imap_conn *c, args *a)
{
    if (arg_end(a) < 0) {
        reply(c, "BAD", "LOGOUT takes no arguments");
        return;
    }
    out_puts(c, "* BYE Logging out\r\n");
    reply(c, "OK", "LOGOUT completed");
    unselect(c);
    conn_enter_state(c, S_LOGOUT);
    conn_close(c, "logout");
}

static void cmd_id(imap_conn *c, args *a)
{
    /* RFC 2971: the client's list is for logs; answer with our name. */
    out_puts(c, "* ID (\"name\" \"picoimapd\" \"version\" \"0.1\")\r\n");
    reply(c, "OK", "ID completed");
}

/* ---- not authenticated ---- */

static int user_name_ok(const char *u, size_t n)
{
    if (n == 0 || n > 64 || u[0] == '.') {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = u[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-' || ch == '@' || ch == '+')) {
            return 0;
        }
    }
    return 1;
}

/* Check a user's password; on success enter the authenticated state. */
void cmd_login_check(imap_conn *c, const char *user, size_t ulen, const char *pass, size_t plen)
{
    char *text = NULL;
    size_t tlen = 0;
    int ok = 0;
    /* A locked-out address costs us no hashing. */
    if (user_name_ok(user, ulen) && !lockout_locked(c->peer, now_ms())) {
        int rc = st_slurp(st_vfs_posix(), g_srv->cfg->passwd, &text, &tlen, 16 << 20);
        if (rc < 0) {
            log_err("cannot read passwd file %s: %s", g_srv->cfg->passwd, st_strerror(rc));
            reply(c, "NO", "[UNAVAILABLE] Authentication backend unavailable");
            return;
        }
        ok = pw_verify(text, tlen, user, ulen, pass, plen);
        free(text);
    }
    cmd_login_done(c, user, ulen, ok);
}

/* The outcome of any password check (LOGIN, AUTHENTICATE PLAIN, LOGIN,
 * SCRAM-SHA-256): failures are answered late on this connection's timer,
 * counted per address, and lock the address out at CONFIG_LOCKOUT_FAILS. */
void cmd_login_done(imap_conn *c, const char *user, size_t ulen, int ok)
{
    uint64_t now = now_ms();
    if (lockout_locked(c->peer, now)) {
        lockout_fail(c->peer, now);   /* trying on while locked extends the lock */
        log_warn("%s: login for user '%.*s' refused: address locked out", c->peer,
                 (int)(ulen > 64 ? 64 : ulen), user);
        dbuf b = {0};
        dbuf_printf(&b, "%s NO [UNAVAILABLE] Too many failed logins from your address; try again later\r\n"
                        "* BYE Locked out\r\n", c->tag);
        free(c->delayed);
        c->delayed = b.p;
        c->close_after_wake = 1;
        c->wake_at = now + CONFIG_FAIL_DELAY_MS;
        return;
    }
    if (ok && !user_name_ok(user, ulen)) {
        ok = 0;   /* SCRAM's names come from elsewhere; store paths need a safe one */
    }
    if (!ok) {
        c->login_fails++;
        int locked = lockout_fail(c->peer, now);
        log_info("%s: login failed for user '%.*s'", c->peer, (int)(ulen > 64 ? 64 : ulen), user);
        if (locked) {
            log_warn("%s: locked out for %d s after %d failed logins", c->peer, CONFIG_LOCKOUT_WINDOW,
                     CONFIG_LOCKOUT_FAILS);
        }
        /* Answer later on this connection's own timer; others go on. */
        dbuf b = {0};
        dbuf_printf(&b, "%s NO [AUTHENTICATIONFAILED] Authentication failed\r\n", c->tag);
        if (locked) {
            dbuf_adds(&b, "* BYE Too many failed logins from your address\r\n");
            c->close_after_wake = 1;
        } else if (c->login_fails >= CONFIG_MAX_LOGIN_FAILS) {
            dbuf_adds(&b, "* BYE Too many failed logins\r\n");
            c->close_after_wake = 1;
        }
        free(c->delayed);
        c->delayed = b.p;
        c->wake_at = now + CONFIG_FAIL_DELAY_MS;
        return;
    }
    c->user = xstrndup(user, ulen);
    int new_user = c->user && !st_mailbox_exists(g_srv->store, c->user, "INBOX");
    int rc = st_user_ensure(g_srv->store, c->user);
    if (rc < 0) {
        log_err("%s: cannot prepare store for %s: %s", c->peer, c->user, st_strerror(rc));
        free(c->user);
        c->user = NULL;
        reply(c, "NO", "[UNAVAILABLE] Mail store unavailable");
        return;
    }
    ext_user_setup(c, new_user);
    log_info("%s: user %s logged in", c->peer, c->user);
    conn_enter_state(c, S_AUTH);
    out_printf(c, "%s OK [CAPABILITY ", c->tag);
    cmd_capability_list(c);
    out_puts(c, "] Logged in\r\n");
}

static void cmd_login(imap_conn *c, args *a)
{
    const char *u, *p;
    uint32_t ul, pl;
    if (arg_astring(a, &u, &ul) < 0 || arg_astring(a, &p, &pl) < 0 || arg_end(a) < 0) {
        reply(c, "BAD", "Usage: LOGIN user password");
        return;
    }
    if (!plaintext_ok(c)) {
        reply(c, "NO", "[PRIVACYREQUIRED] Plaintext authentication disallowed");
        return;
    }
    cmd_login_check(c, u, ul, p, pl);
}

/* SASL PLAIN message: [authzid] NUL authcid NUL passwd */
static void auth_plain(imap_conn *c, const char *b64, size_t n)
{
    unsigned char *raw = malloc(n + 4);
    long rl = raw ? b64_decode(b64, n, raw, n + 4) : -1;
    if (rl < 0) {
        free(raw);
        reply(c, "BAD", "Invalid base64");
        return;
    }
    const char *r = (const char *)raw;
    const char *z1 = memchr(r, 0, (size_t)rl);
    const char *z2 = z1 ? memchr(z1 + 1, 0, (size_t)(r + rl - z1 - 1)) : NULL;
    if (!z2) {
        free(raw);
        reply(c, "BAD", "Invalid PLAIN message");
        return;
    }
    size_t zl = (size_t)(z1 - r), ul = (size_t)(z2 - z1 - 1), pl = (size_t)(r + rl - z2 - 1);
    if (zl && (zl != ul || memcmp(r, z1 + 1, ul) != 0)) {
        free(raw);
        reply(c, "NO", "[AUTHORIZATIONFAILED] Proxy authorization not supported");
        return;
    }
    cmd_login_check(c, z1 + 1, ul, z2 + 1, pl);
    memset(raw, 0, (size_t)rl);
    free(raw);
}

static void auth_line(imap_conn *c, const char *line, size_t n)
{
    c->linefn = NULL;
    if (n == 1 && line[0] == '*') {
        reply(c, "BAD", "Authentication cancelled");
    } else {
        auth_plain(c, line, n);
    }
    free(c->tag);
    c->tag = NULL;
}

static void cmd_authenticate(imap_conn *c, args *a)
{
    const char *mech, *ir = NULL;
    uint32_t ml, il = 0;
    if (arg_atom(a, &mech, &ml) < 0) {
        reply(c, "BAD", "Usage: AUTHENTICATE mechanism [initial-response]");
        return;
    }
    if (arg_peek(a) && arg_atom(a, &ir, &il) < 0) {
        reply(c, "BAD", "Invalid initial response");
        return;
    }
    if (arg_end(a) < 0) {
        reply(c, "BAD", "Too many arguments");
        return;
    }
    if (!plaintext_ok(c)) {
        reply(c, "NO", "[PRIVACYREQUIRED] Plaintext authentication disallowed");
        return;
    }
    if (!CONFIG_AUTH_PLAIN || ascii_casecmp(mech, "PLAIN") != 0) {
        /* LOGIN and SCRAM-SHA-256 live in sasl.c. */
        if (sasl_start(c, mech, ir, il, ir != NULL) < 0) {
            reply(c, "NO", "Unsupported authentication mechanism");
        }
        return;
    }
    if (ir && !CONFIG_EXT_SASL_IR) {
        reply(c, "BAD", "Initial response not supported");
        return;
    }
    if (ir) {
        auth_plain(c, il == 1 && ir[0] == '=' ? "" : ir, il == 1 && ir[0] == '=' ? 0 : il);
        return;
    }
    /* Wait for the client's response line; keep the tag for the reply. */
    out_puts(c, "+ \r\n");
    c->linefn = auth_line;
    c->tag = xstrdup(c->tag);
}

/* RFC 3501 6.2.1. The engine starts TLS once this OK has been written,
 * and throws away whatever the client sent after this line. */
static void cmd_starttls(imap_conn *c, args *a)
{
    if (arg_end(a) < 0) {
        reply(c, "BAD", "STARTTLS takes no arguments");
    } else if (!CONFIG_TLS || !g_srv->cfg->tls_cert) {
        reply(c, "BAD", "STARTTLS is not available");
    } else if (c->tls) {
        reply(c, "BAD", "TLS is already active");
    } else {
        reply(c, "OK", "Begin TLS negotiation now");
        c->starttls = 1;
    }
}

/* ---- authenticated ---- */

static void write_flags_list(imap_conn *c, st_box *box, int perm)
{
    out_puts(c, "(\\Answered \\Flagged \\Deleted \\Seen \\Draft");
    for (unsigned k = 0; k < box->nkw; k++) {
        out_printf(c, " %s", box->kw[k]);
    }
    out_puts(c, perm ? " \\*)" : ")");
}

static void cmd_select(imap_conn *c, args *a, int readonly)
{
    int was_selected = c->state == S_SELECTED;
    unselect(c);
    if (c->state == S_SELECTED) {
        conn_enter_state(c, S_AUTH);
    }
    if (was_selected && ((c->ext_on & EXT_CONDSTORE) || ext_rev2(c))) {
        /* RFC 7162 3.2.11, RFC 9051 6.3.2 */
        out_puts(c, "* OK [CLOSED] Previous mailbox closed\r\n");
    }
    char *name = arg_mailbox(c, a);
    if (!name) {
        return;
    }
    ext_select q;
    if (ext_select_parse(c, a, &q) < 0) {
        free(name);
        return;
    }
    st_box *box;
    /* Lazily: a big index is checked in full before the session's next
     * command, not before this answer, which reads only counts. QRESYNC
     * reads MODSEQs and UIDs: checked first. */
    int rc = q.qresync ? st_box_open(g_srv->store, c->user, name, &box)
                       : st_box_open_lazy(g_srv->store, c->user, name, &box);
    free(name);
    if (rc < 0) {
        ext_select_done(c, &q);
        reply_st_err(c, rc, readonly ? "EXAMINE" : "SELECT");
        return;
    }
    imap_sess *s = view_open(c, box, readonly);
    if (!s) {
        ext_select_done(c, &q);
        st_box_close(box);
        reply(c, "NO", "[SERVERBUG] Out of memory");
        return;
    }
    c->sess = s;
    conn_enter_state(c, S_SELECTED);
    out_puts(c, "* FLAGS ");
    write_flags_list(c, box, 0);
    out_puts(c, "\r\n* OK [PERMANENTFLAGS ");
    if (readonly) {
        out_puts(c, "()");
    } else {
        write_flags_list(c, box, 1);
    }
    out_puts(c, "] Flags permitted\r\n");
    out_printf(c, "* %u EXISTS\r\n", s->exists);
    if (ext_rev2(c)) {
        /* RFC 9051 6.3.2: a LIST of the mailbox instead of RECENT and
         * [UNSEEN] (both gone from IMAP4rev2). */
        ext_select_list(c, box->name);
    } else {
        out_printf(c, "* %u RECENT\r\n", s->recent_count);
    }
    if (!ext_rev2(c)) {
        /* from the store's hint: the seen prefix of msg[] is not read */
        long idx = st_box_first_unseen(box);
        uint32_t seq = idx >= 0 ? view_idx2seq(s, (uint32_t)idx) : 0;
        if (seq) {
            out_printf(c, "* OK [UNSEEN %u] First unseen\r\n", seq);
        }
    }
    out_printf(c, "* OK [UIDVALIDITY %u] UIDs valid\r\n", box->uidvalidity);
    out_printf(c, "* OK [UIDNEXT %u] Predicted next UID\r\n", box->uidnext);
    ext_select_done(c, &q);
    reply(c, "OK", "[%s] %s completed", readonly ? "READ-ONLY" : "READ-WRITE", readonly ? "EXAMINE" : "SELECT");
}

static void cmd_create(imap_conn *c, args *a)
{
    char *name = arg_mailbox(c, a);
    if (!name) {
        return;
    }
    if (ext_create_use(c, a, name) < 0) {
        free(name);
        return;
    }
    if (arg_end(a) < 0) {
        free(name);
        reply(c, "BAD", "Too many arguments");
        return;
    }
    if (strpbrk(name, "*%")) {
        free(name);
        reply(c, "NO", "[CANNOT] Mailbox names may not contain * or %%");
        return;
    }
    int rc = strcmp(name, "INBOX") == 0 ? ST_EEXIST : st_mailbox_create(g_srv->store, c->user, name);
    free(name);
    if (rc < 0) {
        reply_st_err(c, rc, "CREATE");
        return;
    }
    notify(c, 1);
    reply(c, "OK", "CREATE completed");
}

static void cmd_delete(imap_conn *c, args *a)
{
    char *name = arg_mailbox(c, a);
    if (!name) {
        return;
    }
    if (arg_end(a) < 0) {
        free(name);
        reply(c, "BAD", "Too many arguments");
        return;
    }
    if (strcmp(name, "INBOX") == 0) {
        free(name);
        reply(c, "NO", "[CANNOT] INBOX cannot be deleted");
        return;
    }
    /* Deleting the mailbox this session has selected ends the selection. */
    if (c->sess && strcmp(c->sess->box->name, name) == 0) {
        unselect(c);
        conn_enter_state(c, S_AUTH);
    }
    int rc = st_mailbox_delete(g_srv->store, c->user, name);
    free(name);
    if (rc < 0) {
        reply_st_err(c, rc, "DELETE");
        return;
    }
    notify(c, 1);
    reply(c, "OK", "DELETE completed");
}

/* Collects the names below a \Noselect parent for rename_tree. */
struct below { const char *prefix; size_t plen; char **names; size_t n; };

static void below_cb(void *ctx, const char *name)
{
    struct below *b = ctx;
    if (strncmp(name, b->prefix, b->plen) == 0 && name[b->plen] == '/') {
        char **nn = realloc(b->names, (b->n + 1) * sizeof *nn);
        if (nn) {
            b->names = nn;
            b->names[b->n++] = xstrdup(name);
        }
    }
}

static int name_cmp(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* RENAME of a mailbox, or of a \Noselect parent that exists only through
 * its children: then each top-most child moves (with its own children). */
static int rename_tree(imap_conn *c, const char *from, const char *to)
{
    if (st_mailbox_exists(g_srv->store, c->user, from) || strcmp(from, "INBOX") == 0) {
        return st_mailbox_rename(g_srv->store, c->user, from, to);
    }
    struct below b = {from, strlen(from), NULL, 0};
    st_mailbox_list(g_srv->store, c->user, below_cb, &b);
    if (b.n == 0) {
        return ST_ENOENT;
    }
    if (b.n > 1) {
        qsort(b.names, b.n, sizeof b.names[0], name_cmp);
    }
    int rc = 0;
    const char *top = NULL;
    for (size_t i = 0; i < b.n; i++) {
        const char *nm = b.names[i];
        size_t tl = top ? strlen(top) : 0;
        if (top && strncmp(nm, top, tl) == 0 && nm[tl] == '/') {
            continue;   /* moved along with its ancestor */
        }
        top = nm;
        dbuf dst = {0};
        dbuf_printf(&dst, "%s%s", to, nm + b.plen);
        if (rc == 0 && st_mailbox_exists(g_srv->store, c->user, dst.p)) {
            rc = ST_EEXIST;
        }
        if (rc == 0) {
            rc = st_mailbox_rename(g_srv->store, c->user, nm, dst.p);
        }
        dbuf_free(&dst);
    }
    for (size_t i = 0; i < b.n; i++) {
        free(b.names[i]);
    }
    free(b.names);
    return rc;
}

static void cmd_rename(imap_conn *c, args *a)
{
    char *from = arg_mailbox(c, a);
    if (!from) {
        return;
    }
    char *to = arg_mailbox(c, a);
    if (!to) {
        free(from);
        return;
    }
    int rc;
    if (arg_end(a) < 0) {
        reply(c, "BAD", "Too many arguments");
    } else if (strpbrk(to, "*%")) {
        reply(c, "NO", "[CANNOT] Mailbox names may not contain * or %%");
    } else if (strcmp(to, "INBOX") == 0) {
        reply(c, "NO", "[ALREADYEXISTS] INBOX exists");
    } else if (strcmp(from, to) == 0) {
        reply(c, "NO", "[ALREADYEXISTS] Same name");
    } else if (strncmp(to, from, strlen(from)) == 0 && to[strlen(from)] == '/' && strcmp(from, "INBOX") != 0) {
        reply(c, "NO", "[CANNOT] Cannot rename a mailbox below itself");
    } else if ((rc = rename_tree(c, from, to)) < 0) {
        reply_st_err(c, rc, "RENAME");
    } else {
        notify(c, 1);
        reply(c, "OK", "RENAME completed");
    }
    free(from);
    free(to);
}

static void cmd_subscribe_common(imap_conn *c, args *a, int on)
{
    char *name = arg_mailbox(c, a);
    if (!name) {
        return;
    }
    if (arg_end(a) < 0) {
        free(name);
        reply(c, "BAD", "Too many arguments");
        return;
    }
    int rc = st_subscribe(g_srv->store, c->user, name, on);
    free(name);
    if (rc < 0) {
        reply_st_err(c, rc, on ? "SUBSCRIBE" : "UNSUBSCRIBE");
        return;
    }
    notify(c, 1);
    reply(c, "OK", "%s completed", on ? "SUBSCRIBE" : "UNSUBSCRIBE");
}

/* LIST/LSUB name collection. */
typedef struct namelist {
    struct nameent { char *name; uint8_t exists, implied, children, subscribed; } *e;
    size_t n, cap;
} namelist;

static struct nameent *nl_find(namelist *nl, const char *name)
{
    for (size_t i = 0; i < nl->n; i++) {
        if (strcmp(nl->e[i].name, name) == 0) {
            return &nl->e[i];
        }
    }
    return NULL;
}

static struct nameent *nl_add(namelist *nl, const char *name, size_t len)
{
    char *nm = xstrndup(name, len);
    if (!nm) {
        return NULL;
    }
    struct nameent *f = nl_find(nl, nm);
    if (f) {
        free(nm);
        return f;
    }
    if (nl->n == nl->cap) {
        size_t nc = nl->cap ? nl->cap * 2 : 16;
        struct nameent *ne = realloc(nl->e, nc * sizeof *ne);
        if (!ne) {
            free(nm);
            return NULL;
        }
        nl->e = ne;
        nl->cap = nc;
    }
    struct nameent *e = &nl->e[nl->n++];
    memset(e, 0, sizeof *e);
    e->name = nm;
    return e;
}

/* Add a name and its implied parents. */
static void nl_add_tree(namelist *nl, const char *name, int subscribed)
{
    struct nameent *e = nl_add(nl, name, strlen(name));
    if (!e) {
        return;
    }
    if (subscribed) {
        e->subscribed = 1;
    } else {
        e->exists = 1;
    }
    for (const char *p = strchr(name, '/'); p; p = strchr(p + 1, '/')) {
        struct nameent *par = nl_add(nl, name, (size_t)(p - name));
        if (par) {
            par->children = 1;
            if (!par->exists && !subscribed) {
                par->implied = 1;
            }
        }
    }
}

static void nl_cb_exists(void *ctx, const char *name)
{
    nl_add_tree(ctx, name, 0);
}

static void nl_cb_subs(void *ctx, const char *name)
{
    nl_add_tree(ctx, name, 1);
}

static void nl_free(namelist *nl)
{
    for (size_t i = 0; i < nl->n; i++) {
        free(nl->e[i].name);
    }
    free(nl->e);
}

static int nl_cmp(const void *x, const void *y)
{
    const struct nameent *a = x, *b = y;
    int ai = strcmp(a->name, "INBOX") == 0, bi = strcmp(b->name, "INBOX") == 0;
    if (ai != bi) {
        return bi - ai;
    }
    return strcmp(a->name, b->name);
}

/* Wildcard match: '*' matches anything, '%' anything but the separator. */
static int wild_match(const char *pat, const char *name)
{
    for (;;) {
        if (*pat == 0) {
            return *name == 0;
        }
        if (*pat == '*' || *pat == '%') {
            int star = *pat == '*';
            pat++;
            for (const char *n = name;; n++) {
                if (wild_match(pat, n)) {
                    return 1;
                }
                if (*n == 0 || (!star && *n == '/')) {
                    return 0;
                }
            }
        }
        if (*pat != *name) {
            return 0;
        }
        pat++;
        name++;
    }
}

/* INBOX is case-insensitive: match a pattern that spells it otherwise. */
static int name_match(const char *pat, const char *name)
{
    if (wild_match(pat, name)) {
        return 1;
    }
    if (strncmp(name, "INBOX", 5) == 0 && ascii_ncasecmp(pat, "INBOX", 5) == 0) {
        char *p2 = xstrdup(pat);
        int r = 0;
        if (p2) {
            memcpy(p2, "INBOX", 5);
            r = wild_match(p2, name);
            free(p2);
        }
        return r;
    }
    return 0;
}

static void cmd_list_common(imap_conn *c, args *a, int lsub)
{
    const char *ref, *pat;
    uint32_t rl, pl;
    if (arg_astring(a, &ref, &rl) < 0 || arg_astring(a, &pat, &pl) < 0 || arg_end(a) < 0) {
        reply(c, "BAD", "Usage: %s reference pattern", lsub ? "LSUB" : "LIST");
        return;
    }
    const char *cmd = lsub ? "LSUB" : "LIST";
    if (pl == 0) {
        /* The hierarchy delimiter and root name. */
        out_printf(c, "* %s (\\Noselect) \"/\" \"\"\r\n", cmd);
        notify(c, 1);
        reply(c, "OK", "%s completed", cmd);
        return;
    }
    dbuf full = {0};
    dbuf_add(&full, ref, rl);
    if (rl && ref[rl - 1] != '/' && pat[0] != '/') {
        /* Reference and pattern join as given (RFC 3501 6.3.8). */
    }
    dbuf_add(&full, pat, pl);
    namelist all = {0};
    st_mailbox_list(g_srv->store, c->user, nl_cb_exists, &all);
    if (!nl_find(&all, "INBOX")) {
        nl_add_tree(&all, "INBOX", 0);
    }
    if (lsub) {
        namelist subs = {0};
        st_subs_list(g_srv->store, c->user, nl_cb_subs, &subs);
        if (subs.n) {
            qsort(subs.e, subs.n, sizeof subs.e[0], nl_cmp);
        }
        for (size_t i = 0; i < subs.n; i++) {
            struct nameent *e = &subs.e[i];
            if (!name_match(full.p, e->name)) {
                continue;
            }
            if (e->subscribed) {
                struct nameent *x = nl_find(&all, e->name);
                out_printf(c, "* LSUB (%s) \"/\" ", x && x->exists ? "" : "\\Noselect");
            } else {
                /* A parent of subscribed names is listed only where '%'
                 * cut a subscribed name below it from the match. */
                size_t pl2 = strlen(e->name);
                int cut = 0;
                for (size_t k = 0; k < subs.n && !cut; k++) {
                    const char *d = subs.e[k].name;
                    cut = subs.e[k].subscribed && strncmp(d, e->name, pl2) == 0 && d[pl2] == '/' &&
                          !name_match(full.p, d);
                }
                if (!cut) {
                    continue;
                }
                out_puts(c, "* LSUB (\\Noselect) \"/\" ");
            }
            out_mailbox(c, e->name);
            out_puts(c, "\r\n");
        }
        nl_free(&subs);
    } else {
        if (all.n) {
            qsort(all.e, all.n, sizeof all.e[0], nl_cmp);
        }
        for (size_t i = 0; i < all.n; i++) {
            struct nameent *e = &all.e[i];
            if (!name_match(full.p, e->name)) {
                continue;
            }
            const char *su = e->exists ? ext_special_use(e->name) : NULL;
            out_printf(c, "* LIST (%s%s%s%s) \"/\" ", e->exists ? "" : "\\Noselect ",
                       !CONFIG_EXT_CHILDREN ? "" : e->children ? "\\HasChildren" : "\\HasNoChildren",
                       su ? " " : "", su ? su : "");
            out_mailbox(c, e->name);
            out_puts(c, "\r\n");
        }
    }
    nl_free(&all);
    dbuf_free(&full);
    notify(c, 1);
    reply(c, "OK", "%s completed", cmd);
}

static void cmd_list(imap_conn *c, args *a)
{
    /* Extended syntax: selection options, several patterns or RETURN. */
    if (CONFIG_EXT_LIST_EXTENDED && a->n > a->i &&
        (c->ps.toks[a->i].type == TOK_LPAREN || (a->n > a->i + 1 && c->ps.toks[a->i + 1].type == TOK_LPAREN) ||
         a->n > a->i + 2)) {
        ext_list(c, a);
        return;
    }
    cmd_list_common(c, a, 0);
}

static void cmd_namespace(imap_conn *c, args *a)
{
    out_puts(c, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
    reply(c, "OK", "NAMESPACE completed");
}

static void cmd_status(imap_conn *c, args *a)
{
    char *name = arg_mailbox(c, a);
    if (!name) {
        return;
    }
    enum { M = 1, R = 2, UN = 4, UV = 8, US = 16, HM = 32, SZ = 64, AL = 128, DE = 256 };
    int want = 0;
    int order[9], no = 0;
    if (arg_lparen(a) < 0) {
        free(name);
        reply(c, "BAD", "Usage: STATUS mailbox (items)");
        return;
    }
    const char *it;
    uint32_t il;
    while (arg_atom(a, &it, &il) == 0) {
        /* RFC 9051 6.3.11: IMAP4rev2 adds DELETED and drops RECENT. */
        int bit = !ascii_casecmp(it, "MESSAGES") ? M : !ascii_casecmp(it, "RECENT") && !ext_rev2(c) ? R
                : !ascii_casecmp(it, "UIDNEXT") ? UN : !ascii_casecmp(it, "UIDVALIDITY") ? UV
                : !ascii_casecmp(it, "UNSEEN") ? US
                : CONFIG_EXT_CONDSTORE && !ascii_casecmp(it, "HIGHESTMODSEQ") ? HM
                : CONFIG_EXT_STATUS_SIZE && !ascii_casecmp(it, "SIZE") ? SZ
                : CONFIG_EXT_STATUS_SIZE && !ascii_casecmp(it, "APPENDLIMIT") ? AL
                : CONFIG_EXT_IMAP4REV2 && !ascii_casecmp(it, "DELETED") ? DE : 0;
        if (!bit) {
            free(name);
            reply(c, "BAD", "Unknown STATUS item");
            return;
        }
        if (!(want & bit) && no < 9) {
            order[no++] = bit;
        }
        want |= bit;
    }
    if (arg_rparen(a) < 0 || arg_end(a) < 0 || !want) {
        free(name);
        reply(c, "BAD", "Usage: STATUS mailbox (items)");
        return;
    }
    st_box *box;
    int rc = st_box_open(g_srv->store, c->user, name, &box);
    if (rc < 0) {
        free(name);
        reply_st_err(c, rc, "STATUS");
        return;
    }
    st_box_refresh(box);
    uint32_t msgs = 0, recent = 0, unseen = 0, deleted = 0;
    uint64_t size = 0;
    if (want & HM) {
        c->ext_on |= EXT_CONDSTORE;   /* a CONDSTORE-enabling command */
    }
    for (uint32_t i = 0; i < box->count; i++) {
        const st_msg *m = &box->msg[i];
        if (m->flags & ST_F_EXPUNGED) {
            continue;
        }
        msgs++;
        size += m->size;
        recent += m->uid >= box->recent_uid;
        unseen += !(m->flags & ST_F_SEEN);
        deleted += (m->flags & ST_F_DELETED) != 0;
    }
    out_puts(c, "* STATUS ");
    out_mailbox(c, name);
    out_puts(c, " (");
    for (int i = 0; i < no; i++) {
        if (i) {
            out_puts(c, " ");
        }
        switch (order[i]) {
        case M: out_printf(c, "MESSAGES %u", msgs); break;
        case R: out_printf(c, "RECENT %u", recent); break;
        case UN: out_printf(c, "UIDNEXT %u", box->uidnext); break;
        case UV: out_printf(c, "UIDVALIDITY %u", box->uidvalidity); break;
        case US: out_printf(c, "UNSEEN %u", unseen); break;
        case HM: out_printf(c, "HIGHESTMODSEQ %llu", (unsigned long long)ext_modseq(box->highestmodseq)); break;
        case SZ: out_printf(c, "SIZE %llu", (unsigned long long)size); break;
        case AL: out_printf(c, "APPENDLIMIT %llu", (unsigned long long)EXT_APPENDLIMIT); break;
        case DE: out_printf(c, "DELETED %u", deleted); break;
        }
    }
    out_puts(c, ")\r\n");
    st_box_close(box);
    free(name);
    notify(c, 1);
    reply(c, "OK", "STATUS completed");
}

int parse_flag_list(imap_conn *c, args *a, st_box *box, uint8_t *flags, uint64_t *kw, int create_kw)
{
    static const char *const sys[] = {"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"};
    int paren = arg_lparen(a) == 0;
    *flags = 0;
    *kw = 0;
    const char *f;
    uint32_t fl;
    while (arg_atom(a, &f, &fl) == 0) {
        int done = 0;
        if (f[0] == '\\') {
            for (int i = 0; i < 5; i++) {
                if (ascii_casecmp(f, sys[i]) == 0) {
                    *flags |= (uint8_t)(1u << i);
                    done = 1;
                }
            }
            if (!done) {
                return -1;  /* \Recent and unknown system flags */
            }
            continue;
        }
        for (uint32_t i = 0; i < fl; i++) {
            unsigned char ch = (unsigned char)f[i];
            if (ch <= 0x20 || ch >= 0x7f || strchr("(){%*\"\\]", ch)) {
                return -1;
            }
        }
        if (box) {
            int k = st_keyword(box, f, fl, create_kw);
            if (k == ST_EFULL) {
                return -2;
            }
            if (k >= 0) {
                *kw |= (uint64_t)1 << k;
            }
        }
        if (!paren) {
            break;
        }
    }
    if (paren && arg_rparen(a) < 0) {
        return -1;
    }
    return 0;
}

/* APPEND: the message literal streams into the store (cmd_literal), the
 * command completes here when its line ends. */
static void cmd_append(imap_conn *c, args *a)
{
    st_append *ap = c->append;
    st_box *box = c->append_box;
    int err = c->append_err;
    c->append = NULL;
    c->append_box = NULL;
    c->append_err = 0;
    if (!ap) {
        if (box) {
            st_box_close(box);
        }
        reply(c, "BAD", "Usage: APPEND mailbox [(flags)] [date-time] literal");
        return;
    }
    /* Skip to the last literal and make sure nothing follows it. */
    for (uint32_t i = a->i; i < a->n; i++) {
        if (c->ps.toks[i].type == TOK_STREAMED) {
            a->i = i;
        }
    }
    a->i++;
    if (CONFIG_EXT_UTF8_ACCEPT && arg_peek(a) && arg_peek(a)->type == TOK_RPAREN) {
        a->i++;   /* the end of UTF8 (~{n}...) */
    }
    if (err || arg_end(a) < 0) {
        st_append_abort(ap);
        st_box_close(box);
        if (err) {
            reply_st_err(c, err, "APPEND");
        } else {
            reply(c, "BAD", "Unexpected arguments after the message");
        }
        return;
    }
    dbuf uids = {0};
    int rc;
    if (c->mappend) {
        rc = ext_mappend_finish(c, box, ap, &uids);
    } else {
        uint32_t uid = 0;
        rc = st_append_end(ap, &uid);
        if (rc == 0) {
            rc = conn_commit(c, box, "APPEND");
        }
        dbuf_printf(&uids, "%u", uid);
    }
    if (rc < 0) {
        dbuf_free(&uids);
        st_box_close(box);
        reply_st_err(c, rc, "APPEND");
        return;
    }
    uint32_t uidv = box->uidvalidity;
    view_kick(box, c->sess);
    st_box_close(box);
    notify(c, 1);
    if (CONFIG_EXT_UIDPLUS) {
        dbuf line = {0};   /* the set may be long */
        dbuf_printf(&line, "%s OK [APPENDUID %u ", c->tag, uidv);
        dbuf_add(&line, uids.p, uids.len);
        dbuf_adds(&line, "] APPEND completed\r\n");
        reply_line(c, line.p, line.len);
        dbuf_free(&line);
    } else {
        reply(c, "OK", "APPEND completed");
    }
    dbuf_free(&uids);
}

static void append_sink(void *ctx, const char *p, size_t n)
{
    imap_conn *c = ctx;
    if (c->append && !c->append_err) {
        int rc = st_append_data(c->append, p, n);
        if (rc < 0) {
            c->append_err = rc;
        }
    }
}

/* Refuse a literal: BAD for the command, then skip or close. */
static void refuse_literal(imap_conn *c, const char *tag, const char *status, const char *msg)
{
    out_printf(c, "%s %s %s\r\n", tag, status, msg);
    if (parse_literal_refuse(&c->ps, c->state == S_NOTAUTH ? 0 : CONFIG_LITERAL_MAX)) {
        out_puts(c, "* BYE Literal too large\r\n");
        conn_close(c, "literal too large");
    }
    /* The rest of the command will not come (synchronizing) or is skipped. */
    parse_clear(&c->ps);
}

/* MULTIAPPEND (RFC 3502): the literal of a further message of the APPEND
 * in progress. The previous one is set aside whole (not yet given a UID);
 * this one streams to its own st_append on the same mailbox. */
static void append_next(imap_conn *c, const char *tag)
{
    imap_parser *p = &c->ps;
    uint32_t last = 0;
    for (uint32_t i = 0; i < p->ntok; i++) {
        if (p->toks[i].type == TOK_STREAMED) {
            last = i;
        }
    }
    args a = {c, last + 1, p->ntok};
    char *tagcopy = xstrdup(tag);
    uint8_t flags = 0;
    uint64_t kw = 0;
    int tz = 0;
    int64_t idate = port_time(&tz);
    const char *s;
    uint32_t n;
    int rc;
    if (c->append_err) {
        refuse_literal(c, tagcopy, "NO", c->append_err == ST_EQUOTA || c->append_err == ST_ENOSPC
                                             ? "[OVERQUOTA] Not enough space" : "[SERVERBUG] Cannot append");
        goto fail;
    }
    if (p->lit_len > CONFIG_LITERAL_MAX) {
        refuse_literal(c, tagcopy, "NO", "[TOOBIG] Message too large");
        goto fail;
    }
    if (arg_peek(&a) && arg_peek(&a)->type == TOK_LPAREN) {
        int fr = parse_flag_list(c, &a, c->append_box, &flags, &kw, 1);
        if (fr < 0) {
            refuse_literal(c, tagcopy, fr == -2 ? "NO" : "BAD", fr == -2 ? "[LIMIT] Too many keywords" : "Invalid flag list");
            goto fail;
        }
    }
    if (arg_peek(&a) && (arg_astring(&a, &s, &n) < 0 || parse_date_time(s, n, &idate, &tz) < 0)) {
        refuse_literal(c, tagcopy, "BAD", "Invalid date-time");
        goto fail;
    }
    if (arg_end(&a) < 0) {
        refuse_literal(c, tagcopy, "BAD", "Invalid APPEND arguments");
        goto fail;
    }
    if ((rc = ext_mappend_push(c)) < 0) {
        refuse_literal(c, tagcopy, "NO", "[SERVERBUG] Out of memory");
        goto fail;
    }
    rc = st_append_begin(c->append_box, idate, tz, flags, kw, p->lit_len, &c->append);
    if (rc < 0) {
        c->append = NULL;
        refuse_literal(c, tagcopy, "NO", rc == ST_EQUOTA || rc == ST_ENOSPC ? "[OVERQUOTA] Not enough space" : "[SERVERBUG] Cannot append");
        goto fail;
    }
    parse_literal_accept(p, LIT_SINK, append_sink, c);
    if (!p->lit_plus) {
        out_puts(c, "+ Ready for literal data\r\n");
    }
    free(tagcopy);
    return;
fail:
    cmd_append_abort(c);
    free(tagcopy);
}

void cmd_literal(imap_conn *c)
{
    imap_parser *p = &c->ps;
    const char *tag = p->ntok > 0 && p->toks[0].type == TOK_ATOM ? tok_s(p, 0) : "*";
    if (CONFIG_EXT_MULTIAPPEND && c->append && c->state != S_NOTAUTH && p->depth == 0 && p->ntok >= 3 &&
        p->toks[1].type == TOK_ATOM && ascii_casecmp(tok_s(p, 1), "APPEND") == 0) {
        append_next(c, tag);
        return;
    }
    /* RFC 6855: APPEND ... UTF8 (~{n}...) puts the message one level down. */
    int utf8_form = CONFIG_EXT_UTF8_ACCEPT && p->depth == 1 && p->ntok >= 5 &&
                    p->toks[p->ntok - 1].type == TOK_LPAREN && p->toks[p->ntok - 2].type == TOK_ATOM &&
                    ascii_casecmp(tok_s(p, p->ntok - 2), "UTF8") == 0;
    int is_append = c->state != S_NOTAUTH && p->ntok >= 3 && p->toks[1].type == TOK_ATOM &&
                    ascii_casecmp(tok_s(p, 1), "APPEND") == 0 && (p->depth == 0 || utf8_form) && !c->append;
    if (is_append) {
        args a = {c, 2, p->ntok};
        char *tagcopy = xstrdup(tag);
        const char *s, *why;
        uint32_t n;
        char *name = NULL;
        uint8_t flags = 0;
        uint64_t kw = 0;
        int tz = 0;
        int64_t idate = port_time(&tz);
        st_box *box = NULL;
        int rc = 0;
        if (p->lit_len > CONFIG_LITERAL_MAX) {
            refuse_literal(c, tagcopy, "NO", "[TOOBIG] Message too large");
            goto done;
        }
        if (arg_astring(&a, &s, &n) < 0 || !(name = mailbox_name_in(c, s, n, &why))) {
            refuse_literal(c, tagcopy, "NO", "[CANNOT] Invalid mailbox name");
            goto done;
        }
        rc = st_box_open(g_srv->store, c->user, name, &box);
        if (rc == ST_ENOENT) {
            refuse_literal(c, tagcopy, "NO", "[TRYCREATE] Mailbox does not exist");
            goto done;
        }
        if (rc < 0) {
            refuse_literal(c, tagcopy, "NO", "[SERVERBUG] Cannot open mailbox");
            goto done;
        }
        if (arg_peek(&a) && arg_peek(&a)->type == TOK_LPAREN) {
            int fr = parse_flag_list(c, &a, box, &flags, &kw, 1);
            if (fr < 0) {
                refuse_literal(c, tagcopy, fr == -2 ? "NO" : "BAD", fr == -2 ? "[LIMIT] Too many keywords" : "Invalid flag list");
                goto done;
            }
        }
        if (arg_peek(&a) && !(utf8_form && a.i == a.n - 2)) {
            if (arg_astring(&a, &s, &n) < 0 || parse_date_time(s, n, &idate, &tz) < 0) {
                refuse_literal(c, tagcopy, "BAD", "Invalid date-time");
                goto done;
            }
        }
        if (utf8_form) {
            a.i += 2;   /* UTF8 ( */
        }
        if (arg_end(&a) < 0) {
            refuse_literal(c, tagcopy, "BAD", "Invalid APPEND arguments");
            goto done;
        }
        rc = st_append_begin(box, idate, tz, flags, kw, p->lit_len, &c->append);
        if (rc < 0) {
            c->append = NULL;
            refuse_literal(c, tagcopy, "NO", rc == ST_EQUOTA || rc == ST_ENOSPC ? "[OVERQUOTA] Not enough space" : "[SERVERBUG] Cannot append");
            goto done;
        }
        c->append_box = box;
        box = NULL;
        c->append_err = 0;
        parse_literal_accept(p, LIT_SINK, append_sink, c);
        if (!p->lit_plus) {
            out_puts(c, "+ Ready for literal data\r\n");
        }
    done:
        if (box) {
            st_box_close(box);
        }
        free(name);
        free(tagcopy);
        return;
    }
    uint64_t cap = c->state == S_NOTAUTH ? CONFIG_PREAUTH_LITERAL_MAX : p->arena_max;
    if (p->lit_len > cap || p->alen + p->lit_len + 1 > p->arena_max) {
        char *tagcopy = xstrdup(tag);
        refuse_literal(c, tagcopy, "BAD", "Literal too large");
        free(tagcopy);
        return;
    }
    parse_literal_accept(p, LIT_MEM, NULL, NULL);
    if (!p->lit_plus) {
        out_puts(c, "+ Ready for literal data\r\n");
    }
}

/* ---- selected ---- */

static void cmd_check(imap_conn *c, args *a)
{
    if (arg_end(a) < 0) {
        reply(c, "BAD", "CHECK takes no arguments");
        return;
    }
    int rc = conn_commit(c, c->sess->box, "CHECK");
    if (rc < 0) {
        reply_st_err(c, rc, "CHECK");
        return;
    }
    notify(c, 1);
    reply(c, "OK", "CHECK completed");
}

/* Expunge \Deleted messages (within uids when given). Returns 0 or error. */
static int expunge_deleted(imap_conn *c, const seqset *uids)
{
    imap_sess *s = c->sess;
    st_box *box = s->box;
    int rc = 0, any = 0;
    for (uint32_t i = 0; i < box->count; i++) {
        st_msg *m = &box->msg[i];
        if ((m->flags & ST_F_DELETED) && !(m->flags & ST_F_EXPUNGED) && view_visible(s, i) &&
            (!uids || seqset_has(uids, m->uid))) {
            rc = st_expunge(box, i);
            if (rc < 0) {
                break;
            }
            any = 1;
        }
    }
    if (any) {
        int rc2 = conn_commit(c, box, "EXPUNGE");
        if (rc == 0) {
            rc = rc2;
        }
        view_sync(box);
        view_kick(box, s);
    }
    return rc;
}

static void cmd_close_common(imap_conn *c, args *a, int expunge)
{
    if (arg_end(a) < 0) {
        reply(c, "BAD", "No arguments allowed");
        return;
    }
    if (expunge && !c->sess->readonly) {
        expunge_deleted(c, NULL);
    }
    unselect(c);
    conn_enter_state(c, S_AUTH);
    reply(c, "OK", "%s completed", expunge ? "CLOSE" : "UNSELECT");
}

static void cmd_expunge(imap_conn *c, args *a)
{
    if (arg_end(a) < 0) {
        reply(c, "BAD", "EXPUNGE takes no arguments");
        return;
    }
    if (c->sess->readonly) {
        reply(c, "NO", "[READ-ONLY] Mailbox is read-only");
        return;
    }
    int rc = expunge_deleted(c, NULL);
    notify(c, 1);
    if (rc < 0) {
        reply_st_err(c, rc, "EXPUNGE");
        return;
    }
    reply(c, "OK", "EXPUNGE completed");
}

/* Parse a message set argument for this session: sequence numbers or UIDs. */
static int arg_msgset(imap_conn *c, args *a, int uid, seqset *set)
{
    const char *s;
    uint32_t n;
    imap_sess *sess = c->sess;
    if (arg_atom(a, &s, &n) < 0) {
        reply(c, "BAD", "Missing message set");
        return -1;
    }
    uint32_t star;
    if (uid) {
        star = 0;
        for (uint32_t i = sess->box->count; i-- > 0;) {
            if (view_visible(sess, i)) {
                star = sess->box->msg[i].uid;
                break;
            }
        }
        if (!star) {
            star = sess->uidmax ? sess->uidmax : 1;
        }
    } else {
        star = sess->exists;
    }
    if (ext_msgset(sess, s, n, uid, star, set) < 0) {
        reply(c, "BAD", "Invalid message set");
        return -1;
    }
    if (!uid && !set->dollar && (sess->exists == 0 || set->r[set->n - 1][1] > sess->exists)) {
        seqset_free(set);
        reply(c, "BAD", "Invalid message sequence number");
        return -1;
    }
    return 0;
}

/* Calls fn for every visible message of the set, in msg[] order. */
static void for_each_msg(imap_sess *s, const seqset *set, int uid,
                         void (*fn)(imap_sess *s, uint32_t idx, void *ctx), void *ctx)
{
    st_box *box = s->box;
    for (uint32_t i = 0; i < box->count; i++) {
        if (!view_visible(s, i)) {
            continue;
        }
        uint32_t key = uid ? box->msg[i].uid : view_idx2seq(s, i);
        if (seqset_has(set, key)) {
            fn(s, i, ctx);
        }
    }
}

struct store_ctx {
    int      op;        /* 0 replace, 1 add, -1 remove */
    int      silent;
    int      uid;
    uint8_t  flags;
    uint64_t kw;
    int      err;
    uint32_t *changed;  /* indexes to report */
    uint32_t nchanged;
    int      has_unchanged;  /* UNCHANGEDSINCE given (RFC 7162) */
    uint64_t unchanged;      /* its value */
    uint32_t *failed;   /* UIDs or sequence numbers that failed it */
    uint32_t nfailed;
};

static int u32_cmp(const void *p, const void *q)
{
    uint32_t x = *(const uint32_t *)p, y = *(const uint32_t *)q;
    return x < y ? -1 : x > y;
}

static void store_one(imap_sess *s, uint32_t idx, void *vctx)
{
    struct store_ctx *x = vctx;
    st_msg *m = &s->box->msg[idx];
    if (x->err || (m->flags & ST_F_EXPUNGED)) {
        return;
    }
    if (x->has_unchanged && m->modseq > x->unchanged) {
        x->failed[x->nfailed++] = x->uid ? m->uid : view_idx2seq(s, idx);
        return;
    }
    uint8_t nf = m->flags;
    uint64_t nk = m->kw;
    if (x->op == 0) {
        nf = (uint8_t)((nf & ~ST_F_SYSMASK) | x->flags);
        nk = x->kw;
    } else if (x->op > 0) {
        nf |= x->flags;
        nk |= x->kw;
    } else {
        nf = (uint8_t)(nf & ~x->flags);
        nk &= ~x->kw;
    }
    if (nf != m->flags || nk != m->kw) {
        int rc = st_set_flags(s->box, idx, nf, nk);
        if (rc < 0) {
            x->err = rc;
            return;
        }
    }
    x->changed[x->nchanged++] = idx;
}

static void cmd_store(imap_conn *c, args *a, int uid)
{
    imap_sess *s = c->sess;
    seqset set;
    notify(c, uid);
    if (arg_msgset(c, a, uid, &set) < 0) {
        return;
    }
    const char *item;
    uint32_t il;
    struct store_ctx x = {0};
    x.uid = uid;
    if (CONFIG_EXT_CONDSTORE && arg_lparen(a) == 0) {
        /* (UNCHANGEDSINCE n), the only STORE modifier we know */
        const char *m;
        uint32_t ml;
        if (arg_atom(a, &m, &ml) < 0 || ascii_casecmp(m, "UNCHANGEDSINCE") != 0 ||
            arg_atom(a, &m, &ml) < 0 || parse_u64(m, ml, &x.unchanged) < 0 || arg_rparen(a) < 0) {
            seqset_free(&set);
            reply(c, "BAD", "Invalid STORE modifier");
            return;
        }
        x.has_unchanged = 1;
        c->ext_on |= EXT_CONDSTORE;
    }
    if (arg_atom(a, &item, &il) < 0) {
        seqset_free(&set);
        reply(c, "BAD", "Missing STORE item");
        return;
    }
    const char *it = item;
    if (*it == '+' || *it == '-') {
        x.op = *it == '+' ? 1 : -1;
        it++;
    }
    if (ascii_ncasecmp(it, "FLAGS", 5) != 0 || (it[5] && ascii_casecmp(it + 5, ".SILENT") != 0)) {
        seqset_free(&set);
        reply(c, "BAD", "Unknown STORE item");
        return;
    }
    x.silent = it[5] != 0;
    int fr = parse_flag_list(c, a, s->readonly ? NULL : s->box, &x.flags, &x.kw, x.op >= 0);
    if (fr < 0 || arg_end(a) < 0) {
        seqset_free(&set);
        if (fr == -2) {
            reply(c, "NO", "[LIMIT] Too many keywords");
        } else {
            reply(c, "BAD", "Invalid flag list");
        }
        return;
    }
    if (s->readonly) {
        seqset_free(&set);
        reply(c, "NO", "[READ-ONLY] Mailbox is read-only");
        return;
    }
    x.changed = malloc((s->box->count ? s->box->count : 1) * sizeof *x.changed);
    x.failed = malloc((s->box->count ? s->box->count : 1) * sizeof *x.failed);
    if (!x.changed || !x.failed) {
        free(x.changed);
        free(x.failed);
        seqset_free(&set);
        reply(c, "NO", "[SERVERBUG] Out of memory");
        return;
    }
    for_each_msg(s, &set, uid, store_one, &x);
    int rc = x.err ? x.err : conn_commit(c, s->box, "STORE");
    int modseq = (c->ext_on & EXT_CONDSTORE) != 0;
    for (uint32_t k = 0; k < x.nchanged && (!x.silent || modseq); k++) {
        uint32_t idx = x.changed[k];
        out_printf(c, "* %u FETCH (", view_idx2seq(s, idx));
        if (uid) {
            out_printf(c, "UID %u ", s->box->msg[idx].uid);
        }
        if (!x.silent) {
            out_puts(c, "FLAGS ");
            view_out_flags(s, idx);
        }
        if (modseq) {
            out_printf(c, "%sMODSEQ (%llu)", x.silent ? "" : " ",
                       (unsigned long long)ext_modseq(s->box->msg[idx].modseq));
        }
        out_puts(c, ")\r\n");
    }
    s->told_modseq = s->box->highestmodseq;
    free(x.changed);
    dbuf mod = {0};
    if (x.nfailed) {
        qsort(x.failed, x.nfailed, sizeof *x.failed, u32_cmp);
        ext_numset(&mod, x.failed, x.nfailed);
    }
    free(x.failed);
    seqset_free(&set);
    view_kick(s->box, s);
    if (rc < 0) {
        dbuf_free(&mod);
        reply_st_err(c, rc, "STORE");
        return;
    }
    if (mod.len) {
        /* Not reply(): the set may be longer than its line buffer. */
        out_printf(c, "%s OK [MODIFIED ", c->tag);
        out_write(c, mod.p, mod.len);
        out_printf(c, "] Conditional %sSTORE failed for some\r\n", uid ? "UID " : "");
    } else {
        reply(c, "OK", "%sSTORE completed", uid ? "UID " : "");
    }
    dbuf_free(&mod);
}

struct copy_ctx {
    st_box *dst;
    int     err;
    dbuf    src, dstuids;
    uint32_t n;
};

static void copy_one(imap_sess *s, uint32_t idx, void *vctx)
{
    struct copy_ctx *x = vctx;
    if (x->err || (s->box->msg[idx].flags & ST_F_EXPUNGED)) {
        return;
    }
    uint32_t nu = 0;
    int rc = st_copy(s->box, idx, x->dst, &nu);
    if (rc < 0) {
        x->err = rc;
        return;
    }
    dbuf_printf(&x->src, "%s%u", x->n ? "," : "", s->box->msg[idx].uid);
    dbuf_printf(&x->dstuids, "%s%u", x->n ? "," : "", nu);
    x->n++;
}

static void expunge_one(imap_sess *s, uint32_t idx, void *vctx)
{
    struct copy_ctx *x = vctx;
    if (!x->err && !(s->box->msg[idx].flags & ST_F_EXPUNGED)) {
        int rc = st_expunge(s->box, idx);
        if (rc < 0) {
            x->err = rc;
        }
    }
}

/* COPY, or MOVE (RFC 6851): copy, commit the copies, then expunge the
 * originals; COPYUID goes in an untagged OK before the EXPUNGEs. */
static void cmd_copy_move(imap_conn *c, args *a, int uid, int move)
{
    imap_sess *s = c->sess;
    seqset set;
    const char *what = move ? (uid ? "UID MOVE" : "MOVE") : (uid ? "UID COPY" : "COPY");
    notify(c, uid);
    if (arg_msgset(c, a, uid, &set) < 0) {
        return;
    }
    if (move && s->readonly) {
        seqset_free(&set);
        reply(c, "NO", "[READ-ONLY] Mailbox is read-only");
        return;
    }
    char *name = arg_mailbox(c, a);
    if (!name) {
        seqset_free(&set);
        return;
    }
    if (arg_end(a) < 0) {
        seqset_free(&set);
        free(name);
        reply(c, "BAD", "Too many arguments");
        return;
    }
    struct copy_ctx x = {0};
    int rc = st_box_open(g_srv->store, c->user, name, &x.dst);
    free(name);
    if (rc == ST_ENOENT) {
        seqset_free(&set);
        reply(c, "NO", "[TRYCREATE] Mailbox does not exist");
        return;
    }
    if (rc < 0) {
        seqset_free(&set);
        reply_st_err(c, rc, "COPY");
        return;
    }
    for_each_msg(s, &set, uid, copy_one, &x);
    /* MOVE: the copies are durable before the originals go (the source
     * may be synced first in a group commit); COPY joins the group. */
    rc = x.err ? x.err : move ? st_box_commit(x.dst) : conn_commit(c, x.dst, what);
    if (rc < 0) {
        seqset_free(&set);
        /* Messages already copied stay; the client was told NO. A later
         * issue makes COPY all-or-nothing. */
        st_box_close(x.dst);
        dbuf_free(&x.src);
        dbuf_free(&x.dstuids);
        reply_st_err(c, rc, what);
        return;
    }
    uint32_t uidv = x.dst->uidvalidity;
    view_kick(x.dst, s);
    st_box_close(x.dst);
    if (move) {
        if (x.n && CONFIG_EXT_UIDPLUS) {
            out_printf(c, "* OK [COPYUID %u %s %s] Moved\r\n", uidv, x.src.p, x.dstuids.p);
        }
        for_each_msg(s, &set, uid, expunge_one, &x);
        rc = x.err ? x.err : conn_commit(c, s->box, what);
        view_sync(s->box);
        view_kick(s->box, s);
        notify(c, 1);
        seqset_free(&set);
        dbuf_free(&x.src);
        dbuf_free(&x.dstuids);
        if (rc < 0) {
            reply_st_err(c, rc, what);
        } else {
            reply(c, "OK", "%s completed", what);
        }
        return;
    }
    seqset_free(&set);
    notify(c, uid);
    if (x.n && CONFIG_EXT_UIDPLUS) {
        reply(c, "OK", "[COPYUID %u %s %s] %sCOPY completed", uidv, x.src.p, x.dstuids.p, uid ? "UID " : "");
    } else {
        reply(c, "OK", "%sCOPY completed", uid ? "UID " : "");
    }
    dbuf_free(&x.src);
    dbuf_free(&x.dstuids);
}

static void cmd_copy(imap_conn *c, args *a, int uid)
{
    cmd_copy_move(c, a, uid, 0);
}

static void cmd_move(imap_conn *c, args *a, int uid)
{
    cmd_copy_move(c, a, uid, 1);
}

static void cmd_uid(imap_conn *c, args *a)
{
    const char *sub;
    uint32_t sl;
    if (arg_atom(a, &sub, &sl) < 0) {
        reply(c, "BAD", "Usage: UID FETCH|STORE|COPY|SEARCH|EXPUNGE ...");
        return;
    }
    if (!ascii_casecmp(sub, "FETCH")) {
        cmd_fetch(c, a, 1);
    } else if (!ascii_casecmp(sub, "STORE")) {
        cmd_store(c, a, 1);
    } else if (!ascii_casecmp(sub, "COPY")) {
        cmd_copy(c, a, 1);
    } else if (CONFIG_EXT_MOVE && !ascii_casecmp(sub, "MOVE")) {
        cmd_move(c, a, 1);
    } else if (!ascii_casecmp(sub, "SEARCH")) {
        cmd_search(c, a, 1);
    } else if (CONFIG_SORT && !ascii_casecmp(sub, "SORT")) {
        cmd_sort(c, a, 1);
    } else if (CONFIG_SORT && !ascii_casecmp(sub, "THREAD")) {
        cmd_thread(c, a, 1);
    } else if (CONFIG_EXT_UIDPLUS && !ascii_casecmp(sub, "EXPUNGE")) {
        seqset set;
        if (arg_msgset(c, a, 1, &set) < 0) {
            return;
        }
        if (arg_end(a) < 0) {
            seqset_free(&set);
            reply(c, "BAD", "Too many arguments");
            return;
        }
        if (c->sess->readonly) {
            seqset_free(&set);
            reply(c, "NO", "[READ-ONLY] Mailbox is read-only");
            return;
        }
        int rc = expunge_deleted(c, &set);
        seqset_free(&set);
        notify(c, 1);
        if (rc < 0) {
            reply_st_err(c, rc, "UID EXPUNGE");
            return;
        }
        reply(c, "OK", "UID EXPUNGE completed");
    } else {
        reply(c, "BAD", "Unknown UID command");
    }
}

/* IDLE (RFC 2177): updates are pushed by view_kick until DONE. */
static void idle_line(imap_conn *c, const char *line, size_t n)
{
    c->linefn = NULL;
    c->idling = 0;
    if (n == 4 && ascii_ncasecmp(line, "DONE", 4) == 0) {
        reply(c, "OK", "IDLE terminated");
    } else {
        reply(c, "BAD", "Expected DONE");
    }
    free(c->tag);
    c->tag = NULL;
    conn_enter_state(c, c->state);
}

static void cmd_idle(imap_conn *c, args *a)
{
    if (arg_end(a) < 0) {
        reply(c, "BAD", "IDLE takes no arguments");
        return;
    }
    notify(c, 1);
    out_puts(c, "+ idling\r\n");
    c->idling = 1;
    c->linefn = idle_line;
    c->tag = xstrdup(c->tag);
    conn_enter_state(c, c->state);
}

/* COMPRESS DEFLATE (RFC 4978): the OK goes out plain, then the engine
 * deflates both ways (conn.c). */
static void cmd_compress(imap_conn *c, args *a)
{
    const char *mech;
    uint32_t ml;
    if (!CONFIG_EXT_COMPRESS) {
        reply(c, "BAD", "Unknown command");
        return;
    }
    if (arg_atom(a, &mech, &ml) < 0 || arg_end(a) < 0) {
        reply(c, "BAD", "Usage: COMPRESS DEFLATE");
        return;
    }
    if (ascii_casecmp(mech, "DEFLATE") != 0) {
        reply(c, "NO", "Unknown compression mechanism");
        return;
    }
    if (c->z || c->compress_pending) {
        reply(c, "NO", "[COMPRESSIONACTIVE] Already compressing");
        return;
    }
    reply(c, "OK", "DEFLATE active");
    c->compress_pending = 1;
}

/* ---- the table ---- */

typedef struct cmd_def {
    const char *name;
    int         states;   /* S_* where allowed */
    void      (*fn)(imap_conn *c, args *a);
    /* or a handler shared by variants of one command: v says which
     * (1 = UID form, read-only, subscribe, LSUB, expunging CLOSE) */
    void      (*fnv)(imap_conn *c, args *a, int v);
    int         v;
    int         off;      /* compiled out (Kconfig): answered as unknown */
} cmd_def;

#define AUTHED (S_AUTH | S_SELECTED)

static const cmd_def commands[] = {
    {.name = "CAPABILITY", .states = S_ANY, .fn = cmd_capability},
    {.name = "NOOP", .states = S_ANY, .fn = cmd_noop},
    {.name = "LOGOUT", .states = S_ANY, .fn = cmd_logout},
    {.name = "ID", .states = S_ANY, .fn = cmd_id, .off = !CONFIG_EXT_ID},
    {.name = "LOGIN", .states = S_NOTAUTH, .fn = cmd_login},
    {.name = "AUTHENTICATE", .states = S_NOTAUTH, .fn = cmd_authenticate},
    {.name = "STARTTLS", .states = S_NOTAUTH, .fn = cmd_starttls},
    {.name = "SELECT", .states = AUTHED, .fnv = cmd_select, .v = 0},
    {.name = "EXAMINE", .states = AUTHED, .fnv = cmd_select, .v = 1},
    {.name = "CREATE", .states = AUTHED, .fn = cmd_create},
    {.name = "DELETE", .states = AUTHED, .fn = cmd_delete},
    {.name = "RENAME", .states = AUTHED, .fn = cmd_rename},
    {.name = "SUBSCRIBE", .states = AUTHED, .fnv = cmd_subscribe_common, .v = 1},
    {.name = "UNSUBSCRIBE", .states = AUTHED, .fnv = cmd_subscribe_common, .v = 0},
    {.name = "LIST", .states = AUTHED, .fn = cmd_list},
    {.name = "LSUB", .states = AUTHED, .fnv = cmd_list_common, .v = 1},
    {.name = "NAMESPACE", .states = AUTHED, .fn = cmd_namespace, .off = !CONFIG_EXT_NAMESPACE},
    {.name = "STATUS", .states = AUTHED, .fn = cmd_status},
    {.name = "APPEND", .states = AUTHED, .fn = cmd_append},
    {.name = "IDLE", .states = AUTHED, .fn = cmd_idle, .off = !CONFIG_EXT_IDLE},
    {.name = "COMPRESS", .states = AUTHED, .fn = cmd_compress, .off = !CONFIG_EXT_COMPRESS},
    {.name = "CHECK", .states = S_SELECTED, .fn = cmd_check},
    {.name = "CLOSE", .states = S_SELECTED, .fnv = cmd_close_common, .v = 1},
    {.name = "UNSELECT", .states = S_SELECTED, .fnv = cmd_close_common, .v = 0, .off = !CONFIG_EXT_UNSELECT},
    {.name = "EXPUNGE", .states = S_SELECTED, .fn = cmd_expunge},
    {.name = "SEARCH", .states = S_SELECTED, .fnv = cmd_search},
    {.name = "FETCH", .states = S_SELECTED, .fnv = cmd_fetch},
    {.name = "STORE", .states = S_SELECTED, .fnv = cmd_store},
    {.name = "COPY", .states = S_SELECTED, .fnv = cmd_copy},
    {.name = "UID", .states = S_SELECTED, .fn = cmd_uid},
    /* Extensions (ext.c, sort.c) */
    {.name = "ENABLE", .states = AUTHED, .fn = cmd_enable},
    {.name = "MOVE", .states = S_SELECTED, .fnv = cmd_move, .off = !CONFIG_EXT_MOVE},
    {.name = "GETQUOTA", .states = AUTHED, .fn = cmd_getquota, .off = !CONFIG_EXT_QUOTA},
    {.name = "GETQUOTAROOT", .states = AUTHED, .fn = cmd_getquotaroot, .off = !CONFIG_EXT_QUOTA},
    {.name = "SETQUOTA", .states = AUTHED, .fn = cmd_setquota, .off = !CONFIG_EXT_QUOTA},
    {.name = "SORT", .states = S_SELECTED, .fnv = cmd_sort, .off = !CONFIG_SORT},
    {.name = "THREAD", .states = S_SELECTED, .fnv = cmd_thread, .off = !CONFIG_SORT},
};

int cmd_tag_ok(const char *t, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)t[i];
        if (ch <= 0x20 || ch >= 0x7f || strchr("(){%*\"\\+", ch)) {
            return 0;
        }
    }
    return n > 0;
}

void cmd_dispatch(imap_conn *c)
{
    imap_parser *p = &c->ps;
    args a = {c, 0, p->ntok};
    if (p->toks[0].type != TOK_ATOM || !cmd_tag_ok(tok_s(p, 0), p->toks[0].len)) {
        out_puts(c, "* BAD Missing or invalid tag\r\n");
        cmd_append_abort(c);
        return;
    }
    free(c->tag);
    c->tag = NULL;
    const char *tag = tok_s(p, 0);
    c->tag = (char *)tag;   /* borrowed until the tokens are cleared */
    if (p->ntok < 2 || p->toks[1].type != TOK_ATOM) {
        reply(c, "BAD", "Missing command");
        c->tag = NULL;
        return;
    }
    const char *name = tok_s(p, 1);
    log_trace("%s < %s %s", c->peer, tag, name);
    a.i = 2;
    const cmd_def *d = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (!commands[i].off && ascii_casecmp(commands[i].name, name) == 0) {
            d = &commands[i];
            break;
        }
    }
    if (c->sess && st_box_verify(c->sess->box) < 0) {
        /* the index the SELECT mapped failed its check (st_box_open_lazy):
         * nothing of it may be used; a new SELECT rebuilds it */
        out_puts(c, "* BYE [UNAVAILABLE] The mailbox index is damaged; reconnect to rebuild it\r\n");
        unselect(c);
        conn_close(c, "damaged mailbox index");
    } else if (!d) {
        reply(c, "BAD", "Unknown command");
    } else if (!(d->states & c->state)) {
        reply(c, "BAD", "%s is not allowed %s", d->name,
              c->state == S_NOTAUTH ? "before login" : c->state == S_AUTH ? "without a selected mailbox" : "now");
    } else {
        if (d->fn) {
            d->fn(c, &a);
        } else {
            d->fnv(c, &a, d->v);
        }
    }
    /* Handlers that keep running (linefn, cont) made their own copy. */
    if (c->tag == tag) {
        c->tag = NULL;
    }
    cmd_append_abort(c);
}
