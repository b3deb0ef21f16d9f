/*
 * search.c -- SEARCH and UID SEARCH (RFC 3501 6.4.4).
 *
 * The criteria are parsed into a small tree, then evaluated per message.
 * Keys that need the message text (HEADER, BODY, TEXT, SENT*) read it
 * from the store only for messages the cheap keys did not already decide.
 */
#include "cmd.h"

#include <stdlib.h>
#include <string.h>

enum {
    K_ALL = 1, K_AND, K_OR, K_NOT,
    K_FLAG,       /* flag set: u.flag */
    K_UNFLAG,     /* flag clear */
    K_KW, K_UNKW, /* keyword index (or -1: no such keyword) */
    K_NEW, K_OLD, K_RECENT,
    K_LARGER, K_SMALLER,
    K_BEFORE, K_ON, K_SINCE,               /* INTERNALDATE, days */
    K_SENTBEFORE, K_SENTON, K_SENTSINCE,   /* Date: header, days */
    K_SEQ, K_UID,
    K_HEADER, K_BODY, K_TEXT,
};

typedef struct skey {
    int          op;
    struct skey *a, *b;      /* children (AND uses a list via next) */
    struct skey *next;       /* sibling in an AND list */
    int64_t      num;        /* size, days, flag bit, keyword index */
    seqset       set;        /* K_SEQ / K_UID */
    char        *field;      /* K_HEADER */
    char        *str;        /* search string */
    size_t       slen;
} skey;

typedef struct sctx {
    imap_conn *c;
    imap_sess *s;
    args      *a;
    const char *err;         /* parse error for BAD */
    int        badcharset;
    /* per-message cache */
    uint32_t   idx;
    int        hdr_ok;
    dbuf       hdr;
} sctx;

static void skey_free(skey *k)
{
    while (k) {
        skey *nx = k->next;
        skey_free(k->a);
        skey_free(k->b);
        seqset_free(&k->set);
        free(k->field);
        free(k->str);
        free(k);
        k = nx;
    }
}

static skey *new_key(int op)
{
    skey *k = calloc(1, sizeof *k);
    if (k) {
        k->op = op;
    }
    return k;
}

static skey *parse_key(sctx *x);

static int get_astring(sctx *x, char **out, size_t *len)
{
    const char *s;
    uint32_t n;
    if (arg_astring(x->a, &s, &n) < 0) {
        x->err = "Missing search string";
        return -1;
    }
    *out = xstrndup(s, n);
    *len = n;
    return *out ? 0 : -1;
}

static int get_number(sctx *x, int64_t *v)
{
    const char *s;
    uint32_t n;
    uint32_t u;
    if (arg_atom(x->a, &s, &n) < 0 || parse_u32(s, n, &u) < 0) {
        x->err = "Invalid number";
        return -1;
    }
    *v = u;
    return 0;
}

static int get_date(sctx *x, int64_t *days)
{
    const char *s;
    uint32_t n;
    if (arg_astring(x->a, &s, &n) < 0 || parse_date(s, n, days) < 0) {
        x->err = "Invalid date";
        return -1;
    }
    return 0;
}

/* A parenthesized list or a run of keys at the top level: an AND. */
static skey *parse_and_until_rparen(sctx *x)
{
    skey *and = new_key(K_AND);
    skey **tail = &and->a;
    while (arg_peek(x->a) && arg_peek(x->a)->type != TOK_RPAREN) {
        skey *k = parse_key(x);
        if (!k) {
            skey_free(and);
            return NULL;
        }
        *tail = k;
        tail = &k->next;
    }
    if (!and->a) {
        x->err = "Empty search list";
        skey_free(and);
        return NULL;
    }
    return and;
}

static skey *parse_key(sctx *x)
{
    const tok *t = arg_peek(x->a);
    if (!t) {
        x->err = "Missing search key";
        return NULL;
    }
    if (t->type == TOK_LPAREN) {
        x->a->i++;
        skey *k = parse_and_until_rparen(x);
        if (k && arg_rparen(x->a) < 0) {
            x->err = "Unbalanced parentheses";
            skey_free(k);
            return NULL;
        }
        return k;
    }
    const char *s;
    uint32_t n;
    if (arg_atom(x->a, &s, &n) < 0) {
        x->err = "Invalid search key";
        return NULL;
    }
    static const struct { const char *name; int op; int64_t num; } simple[] = {
        {"ALL", K_ALL, 0},
        {"ANSWERED", K_FLAG, ST_F_ANSWERED}, {"UNANSWERED", K_UNFLAG, ST_F_ANSWERED},
        {"DELETED", K_FLAG, ST_F_DELETED}, {"UNDELETED", K_UNFLAG, ST_F_DELETED},
        {"DRAFT", K_FLAG, ST_F_DRAFT}, {"UNDRAFT", K_UNFLAG, ST_F_DRAFT},
        {"FLAGGED", K_FLAG, ST_F_FLAGGED}, {"UNFLAGGED", K_UNFLAG, ST_F_FLAGGED},
        {"SEEN", K_FLAG, ST_F_SEEN}, {"UNSEEN", K_UNFLAG, ST_F_SEEN},
        {"NEW", K_NEW, 0}, {"OLD", K_OLD, 0}, {"RECENT", K_RECENT, 0},
    };
    for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++) {
        if (!ascii_casecmp(s, simple[i].name)) {
            skey *k = new_key(simple[i].op);
            if (k) {
                k->num = simple[i].num;
            }
            return k;
        }
    }
    skey *k = NULL;
    if (!ascii_casecmp(s, "NOT")) {
        k = new_key(K_NOT);
        if (k && !(k->a = parse_key(x))) {
            skey_free(k);
            return NULL;
        }
        return k;
    }
    if (!ascii_casecmp(s, "OR")) {
        k = new_key(K_OR);
        if (k && (!(k->a = parse_key(x)) || !(k->b = parse_key(x)))) {
            skey_free(k);
            return NULL;
        }
        return k;
    }
    if (!ascii_casecmp(s, "LARGER") || !ascii_casecmp(s, "SMALLER")) {
        k = new_key(s[0] == 'L' || s[0] == 'l' ? K_LARGER : K_SMALLER);
        if (k && get_number(x, &k->num) < 0) {
            skey_free(k);
            return NULL;
        }
        return k;
    }
    static const struct { const char *name; int op; } dates[] = {
        {"BEFORE", K_BEFORE}, {"ON", K_ON}, {"SINCE", K_SINCE},
        {"SENTBEFORE", K_SENTBEFORE}, {"SENTON", K_SENTON}, {"SENTSINCE", K_SENTSINCE},
    };
    for (size_t i = 0; i < sizeof dates / sizeof dates[0]; i++) {
        if (!ascii_casecmp(s, dates[i].name)) {
            k = new_key(dates[i].op);
            if (k && get_date(x, &k->num) < 0) {
                skey_free(k);
                return NULL;
            }
            return k;
        }
    }
    if (!ascii_casecmp(s, "KEYWORD") || !ascii_casecmp(s, "UNKEYWORD")) {
        k = new_key(s[0] == 'K' || s[0] == 'k' ? K_KW : K_UNKW);
        const char *w;
        uint32_t wl;
        if (!k || arg_atom(x->a, &w, &wl) < 0) {
            x->err = "Missing keyword";
            skey_free(k);
            return NULL;
        }
        k->num = st_keyword(x->s->box, w, wl, 0);
        return k;
    }
    if (!ascii_casecmp(s, "UID")) {
        const char *w;
        uint32_t wl;
        k = new_key(K_UID);
        if (!k || arg_atom(x->a, &w, &wl) < 0) {
            x->err = "Missing UID set";
            skey_free(k);
            return NULL;
        }
        uint32_t star = x->s->uidmax ? x->s->uidmax : 1;
        if (seqset_parse(&k->set, w, wl, star) < 0) {
            x->err = "Invalid UID set";
            skey_free(k);
            return NULL;
        }
        return k;
    }
    if (!ascii_casecmp(s, "HEADER")) {
        k = new_key(K_HEADER);
        if (!k || get_astring(x, &k->field, &k->slen) < 0 || get_astring(x, &k->str, &k->slen) < 0) {
            skey_free(k);
            return NULL;
        }
        return k;
    }
    static const struct { const char *name; const char *field; } hdrs[] = {
        {"FROM", "From"}, {"TO", "To"}, {"CC", "Cc"}, {"BCC", "Bcc"}, {"SUBJECT", "Subject"},
    };
    for (size_t i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++) {
        if (!ascii_casecmp(s, hdrs[i].name)) {
            k = new_key(K_HEADER);
            if (!k || !(k->field = xstrdup(hdrs[i].field)) || get_astring(x, &k->str, &k->slen) < 0) {
                skey_free(k);
                return NULL;
            }
            return k;
        }
    }
    if (!ascii_casecmp(s, "BODY") || !ascii_casecmp(s, "TEXT")) {
        k = new_key(s[0] == 'B' || s[0] == 'b' ? K_BODY : K_TEXT);
        if (!k || get_astring(x, &k->str, &k->slen) < 0) {
            skey_free(k);
            return NULL;
        }
        return k;
    }
    /* A sequence set. */
    if ((s[0] >= '0' && s[0] <= '9') || s[0] == '*') {
        k = new_key(K_SEQ);
        if (!k || seqset_parse(&k->set, s, n, x->s->exists ? x->s->exists : 1) < 0) {
            x->err = "Invalid sequence set";
            skey_free(k);
            return NULL;
        }
        return k;
    }
    x->err = "Unknown search key";
    return NULL;
}

/* ---- evaluation ---- */

static int load_hdr(sctx *x)
{
    if (x->hdr_ok) {
        return 0;
    }
    dbuf_reset(&x->hdr);
    st_reader rd;
    if (st_reader_open(&rd, x->s->box, x->idx) < 0) {
        return -1;
    }
    char buf[4096];
    for (;;) {
        long n = st_reader_read(&rd, buf, sizeof buf);
        if (n <= 0) {
            break;
        }
        size_t old = x->hdr.len;
        dbuf_add(&x->hdr, buf, (size_t)n);
        size_t from = old > 3 ? old - 3 : 0;
        const char *e = NULL;
        for (size_t i = from; i + 3 < x->hdr.len; i++) {
            if (!memcmp(x->hdr.p + i, "\r\n\r\n", 4)) {
                e = x->hdr.p + i + 2;
                break;
            }
        }
        if (x->hdr.len >= 2 && !memcmp(x->hdr.p, "\r\n", 2)) {
            e = x->hdr.p;
        }
        if (e) {
            x->hdr.len = (size_t)(e - x->hdr.p);
            break;
        }
        if (x->hdr.len > (8u << 20)) {
            break;
        }
    }
    st_reader_close(&rd);
    x->hdr_ok = 1;
    return 0;
}

/* Calls fn on each field value (unfolded naively) of `name`; stops at 1. */
static int header_has(sctx *x, const char *name, const char *needle, size_t nlen)
{
    if (load_hdr(x) < 0) {
        return 0;
    }
    size_t namelen = strlen(name);
    const char *p = x->hdr.p, *end = x->hdr.p + x->hdr.len;
    while (p && p < end) {
        const char *q = p;
        do {
            const char *lf = memchr(q, '\n', (size_t)(end - q));
            q = lf ? lf + 1 : end;
        } while (q < end && (*q == ' ' || *q == '\t'));
        if ((size_t)(q - p) > namelen && !ascii_ncasecmp(p, name, namelen) && p[namelen] == ':') {
            const char *v = p + namelen + 1;
            if (ascii_casefind(v, (size_t)(q - v), needle, nlen)) {
                return 1;
            }
            if (nlen == 0) {
                return 1;
            }
        }
        p = q;
    }
    return 0;
}

/* Scan the message (from the body when skip_header) for needle. */
static int text_has(sctx *x, const char *needle, size_t nlen, int skip_header)
{
    size_t skip = 0;
    if (skip_header) {
        if (load_hdr(x) < 0) {
            return 0;
        }
        skip = x->hdr.len + 2;
    }
    st_reader rd;
    if (st_reader_open(&rd, x->s->box, x->idx) < 0) {
        return 0;
    }
    /* Keep nlen-1 bytes between slices so a match across them is found. */
    size_t keep = nlen ? nlen - 1 : 0;
    char *buf = malloc(16384 + keep);
    size_t have = 0;
    int found = nlen == 0;
    while (buf && !found) {
        long n = st_reader_read(&rd, buf + have, 16384);
        if (n <= 0) {
            break;
        }
        size_t off = 0;
        if (skip) {
            size_t k = (size_t)n < skip ? (size_t)n : skip;
            skip -= k;
            off = k;
            memmove(buf + have, buf + have + k, (size_t)n - k);
            n -= (long)k;
            (void)off;
        }
        size_t tot = have + (size_t)n;
        found = ascii_casefind(buf, tot, needle, nlen);
        if (tot > keep) {
            memmove(buf, buf + tot - keep, keep);
            have = keep;
        } else {
            have = tot;
        }
    }
    free(buf);
    st_reader_close(&rd);
    return found;
}

/* Days of the Date: header, disregarding time and zone; -1 if none. */
static int64_t sent_days(sctx *x)
{
    if (load_hdr(x) < 0) {
        return -1;
    }
    const char *p = x->hdr.p, *end = x->hdr.p + x->hdr.len;
    while (p < end) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        const char *q = lf ? lf + 1 : end;
        if (q - p > 5 && !ascii_ncasecmp(p, "Date:", 5)) {
            /* [Day,] DD Mon YYYY */
            const char *v = p + 5;
            while (v < q && (*v == ' ' || *v == '\t')) {
                v++;
            }
            const char *comma = memchr(v, ',', (size_t)(q - v));
            if (comma) {
                v = comma + 1;
            }
            while (v < q && (*v == ' ' || *v == '\t')) {
                v++;
            }
            int d = 0, y = 0;
            while (v < q && *v >= '0' && *v <= '9') {
                d = d * 10 + (*v++ - '0');
            }
            while (v < q && *v == ' ') {
                v++;
            }
            if (q - v < 8) {
                return -1;
            }
            char mon[4] = {v[0], v[1], v[2], 0};
            int m = month_from_name(mon);
            v += 3;
            while (v < q && *v == ' ') {
                v++;
            }
            int nd = 0;
            while (v < q && *v >= '0' && *v <= '9' && nd < 4) {
                y = y * 10 + (*v++ - '0');
                nd++;
            }
            if (nd == 2) {
                y += y < 50 ? 2000 : 1900;
            }
            if (!m || d < 1 || d > 31 || nd < 2) {
                return -1;
            }
            return days_from_civil(y, (unsigned)m, (unsigned)d);
        }
        p = q;
    }
    return -1;
}

static int eval(sctx *x, skey *k)
{
    st_msg *m = &x->s->box->msg[x->idx];
    switch (k->op) {
    case K_ALL:
        return 1;
    case K_AND:
        for (skey *c = k->a; c; c = c->next) {
            if (!eval(x, c)) {
                return 0;
            }
        }
        return 1;
    case K_OR:
        return eval(x, k->a) || eval(x, k->b);
    case K_NOT:
        return !eval(x, k->a);
    case K_FLAG:
        return (m->flags & k->num) != 0;
    case K_UNFLAG:
        return (m->flags & k->num) == 0;
    case K_KW:
        return k->num >= 0 && (m->kw & ((uint64_t)1 << k->num));
    case K_UNKW:
        return k->num < 0 || !(m->kw & ((uint64_t)1 << k->num));
    case K_RECENT:
        return view_is_recent(x->s, x->idx);
    case K_NEW:
        return view_is_recent(x->s, x->idx) && !(m->flags & ST_F_SEEN);
    case K_OLD:
        return !view_is_recent(x->s, x->idx);
    case K_LARGER:
        return m->size > k->num;
    case K_SMALLER:
        return m->size < k->num;
    case K_BEFORE:
    case K_ON:
    case K_SINCE: {
        int64_t local = m->idate + (int64_t)m->tz * 60;
        int64_t d = local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
        return k->op == K_BEFORE ? d < k->num : k->op == K_ON ? d == k->num : d >= k->num;
    }
    case K_SENTBEFORE:
    case K_SENTON:
    case K_SENTSINCE: {
        int64_t d = sent_days(x);
        if (d < 0) {
            return 0;
        }
        return k->op == K_SENTBEFORE ? d < k->num : k->op == K_SENTON ? d == k->num : d >= k->num;
    }
    case K_SEQ:
        return seqset_has(&k->set, view_idx2seq(x->s, x->idx));
    case K_UID:
        return seqset_has(&k->set, m->uid);
    case K_HEADER:
        return header_has(x, k->field, k->str, k->slen);
    case K_BODY:
        return text_has(x, k->str, k->slen, 1);
    case K_TEXT:
        return text_has(x, k->str, k->slen, 0);
    }
    return 0;
}

void cmd_search(imap_conn *c, args *a, int uid)
{
    sctx x = {0};
    x.c = c;
    x.s = c->sess;
    x.a = a;
    /* CHARSET must come first if present. */
    const tok *t = arg_peek(a);
    if (t && t->type == TOK_ATOM && !ascii_casecmp(arg_str(a, a->i), "CHARSET")) {
        a->i++;
        const char *cs;
        uint32_t cl;
        if (arg_astring(a, &cs, &cl) < 0) {
            reply(c, "BAD", "Missing charset");
            return;
        }
        if (ascii_casecmp(cs, "US-ASCII") && ascii_casecmp(cs, "UTF-8")) {
            reply(c, "NO", "[BADCHARSET (US-ASCII UTF-8)] Unsupported charset");
            return;
        }
    }
    skey *root = parse_and_until_rparen(&x);
    if (!root || arg_end(a) < 0) {
        skey_free(root);
        reply(c, "BAD", "%s", x.err ? x.err : "Invalid search criteria");
        return;
    }
    imap_sess *s = c->sess;
    view_notify(s, uid);
    out_puts(c, "* SEARCH");
    for (uint32_t i = 0; i < s->box->count; i++) {
        if (!view_visible(s, i) || (s->box->msg[i].flags & ST_F_EXPUNGED)) {
            continue;
        }
        x.idx = i;
        x.hdr_ok = 0;
        if (eval(&x, root)) {
            out_printf(c, " %u", uid ? s->box->msg[i].uid : view_idx2seq(s, i));
        }
    }
    out_puts(c, "\r\n");
    dbuf_free(&x.hdr);
    skey_free(root);
    reply(c, "OK", "%sSEARCH completed", uid ? "UID " : "");
}
