/*
 * search.c -- SEARCH and UID SEARCH (RFC 3501 6.4.4).
 *
 * The criteria are parsed into a small tree, then evaluated per message.
 * Keys that need the message text (HEADER, BODY, TEXT, SENT*) read it
 * from the store only for messages the cheap keys did not already decide.
 *
 * Text keys compare decoded, case-folded UTF-8: search strings are folded
 * once at parse time; headers have their RFC 2047 encoded words decoded;
 * bodies are walked part by part over the MIME tree (mime.h), decoded
 * from base64/quoted-printable and their charset, in one sequential pass
 * over the message with a window of needle-1 bytes between slices, so no
 * message is ever held in memory.
 */
#include "cmd.h"
#include "mime.h"
#include "ext.h"

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
    K_MODSEQ,     /* RFC 7162: MODSEQ >= num */
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
    int        latin1;       /* CHARSET ISO-8859-1: strings are converted */
    int        modseq;       /* a MODSEQ key was used: report the highest */
    /* per-message state */
    uint32_t   idx;
    mime_tree  tree;         /* MIME tree of msg idx */
    int        tree_kind;    /* 0 none, 1 header only, 2 full */
    dbuf       scratch;      /* decoded text being matched */
    dbuf       htmp;         /* a header field decoded for matching */
    char      *field;        /* MIME_FIELD_MAX bytes for the header scan,
                                allocated on first use */
    char      *rbuf;         /* SEARCH_READ bytes for reading text,
                                allocated on first use */
} sctx;

/* Bytes read from a message at a time when searching its text: the
 * reader reads the mbox straight into a buffer this big (one pread per
 * 32 KiB of disk instead of per 4 KiB); held only while SEARCH runs. */
#define SEARCH_READ (64u << 10)

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

/* A search string, in the form text is compared in: UTF-8, case-folded. */
static int get_text(sctx *x, char **out, size_t *len)
{
    const char *s;
    uint32_t n;
    if (arg_astring(x->a, &s, &n) < 0) {
        x->err = "Missing search string";
        return -1;
    }
    dbuf u = {0}, f = {0};
    if (x->latin1) {
        mime_latin1_to_utf8(s, n, &u);
    } else {
        dbuf_add(&u, s, n);
    }
    mime_fold_utf8(u.p ? u.p : "", u.len, &f);
    dbuf_free(&u);
    if (!f.p) {
        dbuf_addc(&f, 0);
        f.len = 0;
    }
    *out = f.p;
    *len = f.len;
    return f.p ? 0 : -1;
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
            if (simple[i].op >= K_NEW && simple[i].op <= K_RECENT && x->c && ext_rev2(x->c)) {
                /* RFC 9051 6.4.4 has no NEW, OLD or RECENT (\Recent is gone). */
                x->err = "NEW, OLD and RECENT are not IMAP4rev2 search keys";
                return NULL;
            }
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
        if (ext_msgset(x->s, w, wl, 1, star, &k->set) < 0) {
            x->err = "Invalid UID set";
            skey_free(k);
            return NULL;
        }
        return k;
    }
    if (!ascii_casecmp(s, "HEADER")) {
        k = new_key(K_HEADER);
        if (!k || get_astring(x, &k->field, &k->slen) < 0 || get_text(x, &k->str, &k->slen) < 0) {
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
            if (!k || !(k->field = xstrdup(hdrs[i].field)) || get_text(x, &k->str, &k->slen) < 0) {
                skey_free(k);
                return NULL;
            }
            return k;
        }
    }
    if (!ascii_casecmp(s, "BODY") || !ascii_casecmp(s, "TEXT")) {
        k = new_key(s[0] == 'B' || s[0] == 'b' ? K_BODY : K_TEXT);
        if (!k || get_text(x, &k->str, &k->slen) < 0) {
            skey_free(k);
            return NULL;
        }
        return k;
    }
    if (CONFIG_EXT_CONDSTORE && !ascii_casecmp(s, "MODSEQ")) {
        /* MODSEQ [entry-name entry-type-req] mod-sequence-value. Flags'
         * own MODSEQs are not kept apart, so the entry is checked only
         * for form. */
        const tok *t2 = arg_peek(x->a);
        k = new_key(K_MODSEQ);
        if (k && t2 && t2->type == TOK_QUOTED) {
            const char *e;
            uint32_t el;
            x->a->i++;
            if (arg_atom(x->a, &e, &el) < 0 || (ascii_casecmp(e, "all") && ascii_casecmp(e, "shared") &&
                                                ascii_casecmp(e, "priv"))) {
                x->err = "Invalid MODSEQ entry type";
                skey_free(k);
                return NULL;
            }
        }
        uint64_t v;
        const char *w;
        uint32_t wl;
        if (!k || arg_atom(x->a, &w, &wl) < 0 || parse_u64(w, wl, &v) < 0) {
            x->err = "Invalid MODSEQ";
            skey_free(k);
            return NULL;
        }
        k->num = (int64_t)v;
        x->modseq = 1;
        x->c->ext_on |= EXT_CONDSTORE;
        return k;
    }
    /* A sequence set. */
    if ((s[0] >= '0' && s[0] <= '9') || s[0] == '*' || (CONFIG_EXT_ESEARCH && s[0] == '$')) {
        k = new_key(K_SEQ);
        if (!k || ext_msgset(x->s, s, n, 0, x->s->exists ? x->s->exists : 1, &k->set) < 0) {
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

/* Byte substring search (both sides already folded). */
static int find_bytes(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
    if (nlen == 0) {
        return 1;
    }
    const char *p = hay, *end = hay + hlen;
    while ((size_t)(end - p) >= nlen) {
        const char *q = memchr(p, (unsigned char)needle[0], (size_t)(end - p) - nlen + 1);
        if (!q) {
            return 0;
        }
        if (!memcmp(q, needle, nlen)) {
            return 1;
        }
        p = q + 1;
    }
    return 0;
}

static int need_tree(sctx *x, int full)
{
    if (x->tree_kind >= (full ? 2 : 1)) {
        return 0;
    }
    mime_tree_free(&x->tree);
    x->tree_kind = 0;
    if (mime_tree_get(x->s->box, x->idx, full, &x->tree) < 0) {
        return -1;
    }
    x->tree_kind = x->tree.header_only ? 1 : 2;
    return 0;
}

/* Calls fn(ctx, name, nlen, value, vlen) for each field of a header fed
 * in slices of any size, values unfolded and cut at MIME_FIELD_MAX (the
 * scan goes on), until fn returns 1 or the blank line ends the header. */
typedef int (*field_fn)(void *ctx, const char *name, size_t nlen, const char *v, size_t vlen);

typedef struct fscan {
    char    *field;      /* the open field: MIME_FIELD_MAX bytes */
    size_t   fl;         /* bytes in field */
    int      have;       /* a field is open */
    int      bol;        /* the next byte starts a line */
    int      found;      /* fn returned 1: stop */
    int      done;       /* the blank line was seen: stop */
    field_fn fn;         /* called with each complete field */
    void    *ctx;        /* fn's context */
} fscan;

static void fscan_init(fscan *f, char *field, field_fn fn, void *ctx)
{
    memset(f, 0, sizeof *f);
    f->field = field;
    f->bol = 1;
    f->fn = fn;
    f->ctx = ctx;
}

/* The open field is complete: hand it to fn. */
static void fscan_emit(fscan *f)
{
    const char *colon = f->have ? memchr(f->field, ':', f->fl) : NULL;
    if (colon && f->fn(f->ctx, f->field, (size_t)(colon - f->field), colon + 1,
                       f->fl - (size_t)(colon - f->field) - 1)) {
        f->found = 1;
    }
    f->have = 0;
    f->fl = 0;
}

static void fscan_feed(fscan *f, const char *buf, size_t n)
{
    for (size_t i = 0; i < n && !f->found && !f->done; i++) {
        char ch = buf[i];
        if (f->bol) {
            f->bol = 0;
            if (ch != ' ' && ch != '\t') {
                /* not a continuation: the field before is complete */
                fscan_emit(f);
                if (f->found) {
                    break;
                }
                if (ch == '\r' || ch == '\n') {
                    f->done = 1;
                    break;
                }
                f->have = 1;
            }
        }
        if (ch == '\n') {
            f->bol = 1;
            continue;
        }
        if (ch != '\r' && f->fl < MIME_FIELD_MAX) {
            f->field[f->fl++] = ch;
        }
    }
}

/* End of input (a header cut short by the message's end). */
static int fscan_end(fscan *f)
{
    if (!f->found && !f->done) {
        fscan_emit(f);
    }
    return f->found;
}

/* The field buffer, allocated once per command. */
static char *field_buf(sctx *x)
{
    if (!x->field) {
        x->field = malloc(MIME_FIELD_MAX);
    }
    return x->field;
}

/* Scan the first len bytes of the message (its root header) by fields. */
static int scan_fields(sctx *x, uint32_t len, field_fn fn, void *ctx)
{
    st_reader rd;
    if (!field_buf(x) || st_reader_open(&rd, x->s->box, x->idx) < 0) {
        return 0;
    }
    fscan f;
    fscan_init(&f, x->field, fn, ctx);
    char buf[8192];
    uint64_t pos = 0;
    while (!f.found && !f.done && pos < len) {
        size_t want = len - pos < sizeof buf ? (size_t)(len - pos) : sizeof buf;
        long n = st_reader_read(&rd, buf, want);
        if (n <= 0) {
            break;
        }
        pos += (uint64_t)n;
        fscan_feed(&f, buf, (size_t)n);
    }
    st_reader_close(&rd);
    return fscan_end(&f);
}

typedef struct hmatch {
    const char *name;        /* field wanted, NULL = any */
    const char *needle;
    size_t      nlen;
    dbuf       *tmp;
    int         with_name;   /* match "Name: value" (TEXT) */
} hmatch;

static int hmatch_fn(void *ctx, const char *name, size_t nl, const char *v, size_t vl)
{
    hmatch *h = ctx;
    while (nl > 0 && (name[nl - 1] == ' ' || name[nl - 1] == '\t')) {
        nl--;
    }
    if (h->name && (strlen(h->name) != nl || ascii_ncasecmp(name, h->name, nl))) {
        return 0;
    }
    if (h->nlen == 0) {
        return 1;
    }
    dbuf_reset(h->tmp);
    if (h->with_name) {
        mime_fold_utf8(name, nl, h->tmp);
        dbuf_add(h->tmp, ": ", 2);
    }
    while (vl > 0 && (v[0] == ' ' || v[0] == '\t')) {
        v++;
        vl--;
    }
    mime_decode_header(v, vl, h->tmp);
    return h->tmp->p && find_bytes(h->tmp->p, h->tmp->len, h->needle, h->nlen);
}

/* The root header: [0, hdr_len) from the header-only tree. */
static int root_header(sctx *x, uint32_t *len)
{
    if (need_tree(x, 0) < 0) {
        return -1;
    }
    *len = x->tree.part[0].hdr_len;
    return 0;
}

static int header_has(sctx *x, const char *name, const char *needle, size_t nlen)
{
    uint32_t hl;
    if (root_header(x, &hl) < 0) {
        return 0;
    }
    hmatch h = {name, needle, nlen, &x->htmp, 0};
    return scan_fields(x, hl, hmatch_fn, &h);
}

/* One range of the message to search: a root header matched field by
 * field (TEXT), or text decoded with its own decoder. */
typedef struct srange {
    uint32_t     off, len;   /* wire bytes of the message */
    int          header;     /* the root header (TEXT): match by fields */
    mime_decoder dec;        /* otherwise: how to decode the text */
} srange;

/* BODY / TEXT: the root header's fields (TEXT), the decoded text of every
 * text part and the headers of enclosed messages, all in one sequential
 * read of the message: one open per message, each byte read once. */
static int text_has(sctx *x, const char *needle, size_t nlen, int with_header)
{
    if (nlen == 0) {
        return 1;
    }
    if (need_tree(x, 1) < 0) {
        return 0;
    }
    const mime_tree *t = &x->tree;
    srange *r = malloc((t->nparts * 2 + 1) * sizeof *r);
    uint32_t nr = 0;
    if (r && with_header && t->part[0].hdr_len) {
        r[nr].off = 0;
        r[nr].len = t->part[0].hdr_len;
        r[nr].header = 1;
        nr++;
    }
    for (uint32_t i = 0; r && i < t->nparts; i++) {
        const mime_part *pt = &t->part[i];
        if (i > 0 && (pt->flags & MIME_PF_MESSAGE) && pt->hdr_len) {
            r[nr].off = pt->hdr_off;
            r[nr].len = pt->hdr_len;
            r[nr].header = 0;
            mime_decoder_init(&r[nr].dec, MIME_ENC_PLAIN, MIME_CS_UTF8);
            nr++;
        }
        if (pt->child == MIME_NONE && pt->body_len && mime_part_decoder(t, i, &r[nr].dec) == 0) {
            r[nr].off = pt->body_off;
            r[nr].len = pt->body_len;
            r[nr].header = 0;
            nr++;
        }
    }
    st_reader rd;
    if (!x->rbuf) {
        x->rbuf = malloc(SEARCH_READ);
    }
    if (!r || nr == 0 || !x->rbuf || (with_header && !field_buf(x)) ||
        st_reader_open(&rd, x->s->box, x->idx) < 0) {
        free(r);
        return 0;
    }
    char *buf = x->rbuf;
    const size_t bufsz = SEARCH_READ;
    uint64_t pos = 0;       /* wire offset of buf[0] after the next read */
    int found = 0;
    dbuf *w = &x->scratch;
    hmatch h = {NULL, needle, nlen, &x->htmp, 1};
    fscan f;
    for (uint32_t k = 0; k < nr && !found; k++) {
        dbuf_reset(w);
        uint64_t off = r[k].off, end = (uint64_t)r[k].off + r[k].len;
        if (off < pos) {
            continue;       /* overlaps what was read: ranges are ordered */
        }
        if (r[k].header) {
            fscan_init(&f, x->field, hmatch_fn, &h);
        }
        if (off - pos > mime_seek_every && off <= UINT32_MAX) {
            /* Far ahead (past an attachment): jump to the seek point
             * nearest before the range instead of reading up to it. */
            st_seekpt sp;
            mime_seek_point(t, (uint32_t)off, &sp);
            if (sp.wire > pos && st_reader_seek(&rd, &sp) == 0) {
                pos = sp.wire;
            }
        }
        while (pos < end && !found) {
            /* Skip to the range, then read it in slices. */
            size_t want = bufsz;
            if (pos < off && off - pos < want) {
                want = (size_t)(off - pos);
            } else if (pos >= off && end - pos < want) {
                want = (size_t)(end - pos);
            }
            long n = st_reader_read(&rd, buf, want);
            if (n <= 0) {
                pos = UINT64_MAX;
                break;
            }
            uint64_t at = pos;
            pos += (uint64_t)n;
            if (at < off) {
                continue;
            }
            if (r[k].header) {
                fscan_feed(&f, buf, (size_t)n);
                found = f.found;
                if (f.done) {
                    break;  /* the rest of the range is the blank line */
                }
                continue;
            }
            mime_decode(&r[k].dec, buf, (size_t)n, w);
            if (w->p && find_bytes(w->p, w->len, needle, nlen)) {
                found = 1;
                break;
            }
            /* Keep nlen-1 bytes so a match across slices is found. */
            if (w->len >= nlen) {
                memmove(w->p, w->p + w->len - (nlen - 1), nlen - 1);
                w->len = nlen - 1;
            }
        }
        if (r[k].header && !found) {
            found = fscan_end(&f);
        }
    }
    st_reader_close(&rd);
    free(r);
    return found;
}

/* Days of the Date: header, disregarding time and zone; -1 if none. */
static int64_t sent_days(sctx *x)
{
    if (need_tree(x, 0) < 0) {
        return -1;
    }
    size_t n;
    const char *d = mime_get(&x->tree, 0, MIME_S_DATE, &n);
    return d ? mime_date_days(d, n) : -1;
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
        return text_has(x, k->str, k->slen, 0);
    case K_TEXT:
        return text_has(x, k->str, k->slen, 1);
    case K_MODSEQ:
        return m->modseq >= (uint64_t)k->num;
    }
    return 0;
}

/* Parse the criteria (CHARSET first if present) into *root. Returns 0,
 * -1 with a BAD reason in *why, or -2 for an unsupported charset. */
static int search_parse(sctx *x, skey **root, const char **why)
{
    args *a = x->a;
    *root = NULL;
    const tok *t = arg_peek(a);
    if (t && t->type == TOK_ATOM && !ascii_casecmp(arg_str(a, a->i), "CHARSET")) {
        a->i++;
        const char *cs;
        uint32_t cl;
        if (arg_astring(a, &cs, &cl) < 0) {
            *why = "Missing charset";
            return -1;
        }
        if (!ascii_casecmp(cs, "ISO-8859-1") || !ascii_casecmp(cs, "LATIN1")) {
            x->latin1 = 1;
        } else if (ascii_casecmp(cs, "US-ASCII") && ascii_casecmp(cs, "UTF-8")) {
            return -2;
        }
    }
    skey *k = parse_and_until_rparen(x);
    if (!k || arg_end(a) < 0) {
        skey_free(k);
        *why = x->err ? x->err : "Invalid search criteria";
        return -1;
    }
    *root = k;
    return 0;
}

/* Parse only (the fuzz target's entry; needs c->sess->box for keywords). */
int search_parse_check(imap_conn *c, args *a)
{
    sctx x = {0};
    x.c = c;
    x.s = c->sess;
    x.a = a;
    skey *root;
    const char *why;
    int r = search_parse(&x, &root, &why);
    skey_free(root);
    return r;
}

void cmd_search(imap_conn *c, args *a, int uid)
{
    sctx x = {0};
    x.c = c;
    x.s = c->sess;
    x.a = a;
    skey *root;
    const char *why = NULL;
    /* Updates first, so "*" in the criteria means what the client knows. */
    view_notify(c->sess, uid);
    imap_sess *s = c->sess;
    /* ESEARCH (RFC 4731): RETURN (MIN MAX ALL COUNT SAVE). */
    enum { R_MIN = 1, R_MAX = 2, R_ALL = 4, R_COUNT = 8, R_SAVE = 16 };
    int ret = 0, esearch = CONFIG_EXT_ESEARCH && (c->ext_on & EXT_REV2);
    const tok *t = arg_peek(a);
    if (CONFIG_EXT_ESEARCH && t && t->type == TOK_ATOM && !ascii_casecmp(arg_str(a, a->i), "RETURN")) {
        a->i++;
        const char *o;
        uint32_t ol;
        if (arg_lparen(a) < 0) {
            reply(c, "BAD", "Invalid RETURN options");
            return;
        }
        while (arg_atom(a, &o, &ol) == 0) {
            int bit = !ascii_casecmp(o, "MIN") ? R_MIN : !ascii_casecmp(o, "MAX") ? R_MAX
                    : !ascii_casecmp(o, "ALL") ? R_ALL : !ascii_casecmp(o, "COUNT") ? R_COUNT
                    : !ascii_casecmp(o, "SAVE") ? R_SAVE : 0;
            if (!bit) {
                ext_save_result(s, NULL, 0);
                reply(c, "BAD", "Unknown RETURN option");
                return;
            }
            ret |= bit;
        }
        if (arg_rparen(a) < 0) {
            reply(c, "BAD", "Invalid RETURN options");
            return;
        }
        esearch = 1;
    }
    if (esearch && !(ret & ~R_SAVE)) {
        ret |= ret ? 0 : R_ALL;   /* RETURN () means ALL */
    }
    int r = search_parse(&x, &root, &why);
    if (r < 0 && (ret & R_SAVE)) {
        ext_save_result(s, NULL, 0);   /* RFC 5182 2.1: a failed SAVE empties $ */
    }
    if (r == -2) {
        reply(c, "NO", "[BADCHARSET (US-ASCII UTF-8 ISO-8859-1)] Unsupported charset");
        return;
    }
    if (r < 0) {
        reply(c, "BAD", "%s", why);
        return;
    }
    uint32_t cap = s->box->count ? s->box->count : 1, n = 0;
    uint32_t *vals = malloc(cap * sizeof *vals), *uids = malloc(cap * sizeof *uids);
    uint64_t *mods = malloc(cap * sizeof *mods);
    if (!vals || !uids || !mods) {
        free(vals);
        free(uids);
        free(mods);
        skey_free(root);
        reply(c, "NO", "[SERVERBUG] Out of memory");
        return;
    }
    for (uint32_t i = 0; i < s->box->count; i++) {
        if (!view_visible(s, i) || (s->box->msg[i].flags & ST_F_EXPUNGED)) {
            continue;
        }
        x.idx = i;
        mime_tree_free(&x.tree);
        x.tree_kind = 0;
        if (eval(&x, root)) {
            uids[n] = s->box->msg[i].uid;
            vals[n] = uid ? uids[n] : view_idx2seq(s, i);
            mods[n] = ext_modseq(s->box->msg[i].modseq);
            n++;
        }
    }
    uint64_t hm = 0;
    if (!esearch) {
        out_puts(c, "* SEARCH");
        for (uint32_t k = 0; k < n; k++) {
            out_printf(c, " %u", vals[k]);
            hm = mods[k] > hm ? mods[k] : hm;
        }
        if (x.modseq && n) {
            out_printf(c, " (MODSEQ %llu)", (unsigned long long)hm);   /* RFC 7162 3.1.5 */
        }
        out_puts(c, "\r\n");
    } else if (ret & ~R_SAVE) {
        /* RFC 5182 2.4: SAVE alone sends no ESEARCH. */
        out_printf(c, "* ESEARCH (TAG \"%s\")%s", c->tag, uid ? " UID" : "");
        if (n && (ret & R_MIN)) {
            out_printf(c, " MIN %u", vals[0]);
            hm = mods[0] > hm ? mods[0] : hm;
        }
        if (n && (ret & R_MAX)) {
            out_printf(c, " MAX %u", vals[n - 1]);
            hm = mods[n - 1] > hm ? mods[n - 1] : hm;
        }
        if (n && (ret & R_ALL)) {
            dbuf b = {0};
            ext_numset(&b, vals, n);
            out_puts(c, " ALL ");
            out_write(c, b.p, b.len);
            dbuf_free(&b);
        }
        if (ret & R_COUNT) {
            out_printf(c, " COUNT %u", n);
        }
        for (uint32_t k = 0; (ret & (R_ALL | R_COUNT)) && k < n; k++) {
            hm = mods[k] > hm ? mods[k] : hm;
        }
        if (x.modseq && n) {
            out_printf(c, " MODSEQ %llu", (unsigned long long)hm);
        }
        out_puts(c, "\r\n");
    }
    if (ret & R_SAVE) {
        if ((ret & (R_MIN | R_MAX)) && !(ret & (R_ALL | R_COUNT)) && n) {
            /* RFC 5182 2.1: with MIN/MAX only, just those are saved. */
            uint32_t mm[2], k = 0;
            if (ret & R_MIN) {
                mm[k++] = uids[0];
            }
            if ((ret & R_MAX) && !(k && uids[n - 1] == mm[0])) {
                mm[k++] = uids[n - 1];
            }
            ext_save_result(s, mm, k);
        } else {
            ext_save_result(s, uids, n);
        }
    }
    free(vals);
    free(uids);
    free(mods);
    mime_tree_free(&x.tree);
    dbuf_free(&x.scratch);
    dbuf_free(&x.htmp);
    free(x.field);
    free(x.rbuf);
    skey_free(root);
    reply(c, "OK", "%sSEARCH completed", uid ? "UID " : "");
}

/* SORT and THREAD (sort.c) take a charset without the CHARSET keyword,
 * then the criteria. Sets match[i] = 1 for every msg[] index the session
 * sees that matches. Returns 0, -1 with a BAD reason in *why, or -2 for
 * an unsupported charset. */
int search_match(imap_conn *c, args *a, const char *charset, uint8_t *match, const char **why)
{
    if (!CONFIG_SORT) {
        *why = "SORT and THREAD are not built";
        return -1;
    }
    sctx x = {0};
    x.c = c;
    x.s = c->sess;
    x.a = a;
    if (!ascii_casecmp(charset, "ISO-8859-1") || !ascii_casecmp(charset, "LATIN1")) {
        x.latin1 = 1;
    } else if (ascii_casecmp(charset, "US-ASCII") && ascii_casecmp(charset, "UTF-8")) {
        return -2;
    }
    skey *root = parse_and_until_rparen(&x);
    if (!root || arg_end(a) < 0) {
        skey_free(root);
        *why = x.err ? x.err : "Invalid search criteria";
        return -1;
    }
    imap_sess *s = c->sess;
    for (uint32_t i = 0; i < s->box->count; i++) {
        if (!view_visible(s, i) || (s->box->msg[i].flags & ST_F_EXPUNGED)) {
            continue;
        }
        x.idx = i;
        mime_tree_free(&x.tree);
        x.tree_kind = 0;
        match[i] = (uint8_t)(eval(&x, root) != 0);
    }
    mime_tree_free(&x.tree);
    dbuf_free(&x.scratch);
    dbuf_free(&x.htmp);
    free(x.field);
    free(x.rbuf);
    skey_free(root);
    return 0;
}
