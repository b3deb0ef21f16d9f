/*
 * mime.c -- streaming MIME parser, part tree, its serialization, and the
 * IMAP renderings of it (ENVELOPE, BODY, BODYSTRUCTURE, section ranges).
 *
 * The parser works line by line over slices. For each line it needs only
 * its first few bytes (to recognize a boundary) -- or, inside a header, up
 * to MIME_FIELD_MAX bytes of it (to keep a field's value). Offsets and LF
 * counts are tracked for every byte, so ranges and line counts are exact
 * whatever was kept.
 *
 * Ranges follow RFC 2046 5.1.1: the line break before a boundary line
 * belongs to the boundary, so a part's body ends before it. An enclosing
 * multipart's boundary also ends every part inside it, and a missing close
 * delimiter ends a multipart at its parent's end.
 */
#include "mime.h"
#include "store.h"

#include <stdlib.h>
#include <string.h>

/* Bytes of a body line kept to recognize a boundary: "--", the boundary,
 * "--" and a little trailing white space. */
#define BLINE_KEEP (MIME_BOUNDARY_MAX + 16)

struct mime_parser {
    mime_tree t;            /* being built */
    uint32_t  capparts;     /* allocated entries of t.part */
    dbuf      pool;         /* kept strings */
    uint32_t  pos;          /* wire offset of the next byte fed */
    uint32_t  nlf;          /* LFs fed so far */
    int       header_only;  /* stop after the root header */
    int       stopped;      /* header_only and the header is done */
    int       oom;          /* an allocation failed: result is unusable */
    uint32_t  cur;          /* deepest open part */
    int       in_header;    /* cur's header is being read */
    /* the line being read */
    uint32_t  line_off;     /* its first byte */
    uint32_t  line_len;     /* bytes of it so far (line break included) */
    uint32_t  line_lf;      /* LFs before it */
    int       bol;          /* next byte starts a line */
    char      last;         /* the last byte fed */
    size_t    kept;         /* bytes of it in line[] */
    char      line[MIME_FIELD_MAX];
    /* the line before it */
    uint32_t  prev_eol;     /* offset of its line break (CR of CRLF, or LF) */
    uint32_t  prev_clen;    /* its length without the line break */
    int       have_prev;
    /* header field being assembled (unfolded) */
    char      field[MIME_FIELD_MAX];
    size_t    flen;
    int       fhave;        /* a field is in field[] */
    /* open multiparts, outermost first */
    struct mp {
        uint32_t part;                  /* the multipart */
        uint8_t  blen;                  /* boundary length */
        char     b[MIME_BOUNDARY_MAX];  /* boundary */
    } mp[MIME_MAX_DEPTH];
    unsigned  nmp;
};

/* ---------------------------------------------------------------- pool */

static int pool_init(dbuf *pool)
{
    /* Offset 0 means "absent", so the pool starts with one unused byte. */
    return dbuf_addc(pool, 0);
}

/* Keep s in the pool as string `which` of part pi (first value wins). */
static void keep(mime_parser *p, uint32_t pi, int which, const char *s, size_t n)
{
    mime_part *pt = &p->t.part[pi];
    if (pt->s[which].off) {
        return;
    }
    if (p->pool.len + n + 1 > MIME_POOL_MAX) {
        return;     /* over the cap: the field reads as absent */
    }
    uint32_t off = (uint32_t)p->pool.len;
    if (dbuf_add(&p->pool, s, n) < 0) {
        p->oom = 1;
        return;
    }
    pt->s[which].off = off;
    pt->s[which].len = (uint32_t)n;
}

const char *mime_get(const mime_tree *t, uint32_t part, int which, size_t *n)
{
    const mime_str *s = &t->part[part].s[which];
    if (!s->off) {
        *n = 0;
        return NULL;
    }
    *n = s->len;
    return t->pool + s->off;
}

/* A kept string while parsing (the pool is still the parser's). */
static const char *pget(const mime_parser *p, uint32_t pi, int which, size_t *n)
{
    const mime_str *s = &p->t.part[pi].s[which];
    *n = s->len;
    return s->off ? p->pool.p + s->off : NULL;
}

/* ---------------------------------------------------------- lexing help */

static int is_wsp(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* RFC 2045 tspecials plus space and controls end a token. */
static int is_token_char(int c)
{
    if (c <= ' ' || c == 0x7f) {
        return 0;
    }
    return !strchr("()<>@,;:\\\"/[]?=", c);
}

/* Skip white space and (nested) comments. */
static size_t skip_cfws(const char *s, size_t n, size_t i)
{
    while (i < n) {
        if (is_wsp((unsigned char)s[i])) {
            i++;
        } else if (s[i] == '(') {
            int depth = 0;
            while (i < n) {
                if (s[i] == '\\' && i + 1 < n) {
                    i += 2;
                    continue;
                }
                if (s[i] == '(') {
                    depth++;
                } else if (s[i] == ')' && --depth == 0) {
                    i++;
                    break;
                }
                i++;
            }
        } else {
            break;
        }
    }
    return i;
}

static size_t scan_token(const char *s, size_t n, size_t i)
{
    while (i < n && is_token_char((unsigned char)s[i])) {
        i++;
    }
    return i;
}

/* A quoted string at s[i] == '"': unquoted into out; returns the index
 * after it. An unterminated one runs to the end. */
static size_t scan_quoted(const char *s, size_t n, size_t i, dbuf *out)
{
    i++;
    while (i < n && s[i] != '"') {
        if (s[i] == '\\' && i + 1 < n) {
            i++;
        }
        if (s[i] != '\r' && s[i] != '\n') {
            dbuf_addc(out, s[i]);
        }
        i++;
    }
    return i < n ? i + 1 : i;
}

/* "; name=value" parameters into a NUL-separated list. Lenient: a value
 * may be a token, a quoted string, or anything up to the next ';'. */
static void parse_params(const char *s, size_t n, size_t i, dbuf *out)
{
    dbuf tmp = {0};
    while (i < n) {
        i = skip_cfws(s, n, i);
        if (i < n && s[i] != ';') {
            /* junk before the next parameter */
            while (i < n && s[i] != ';') {
                i++;
            }
        }
        if (i >= n) {
            break;
        }
        i = skip_cfws(s, n, i + 1);
        size_t a = i;
        i = scan_token(s, n, i);
        size_t alen = i - a;
        i = skip_cfws(s, n, i);
        if (alen == 0 || i >= n || s[i] != '=') {
            continue;
        }
        i = skip_cfws(s, n, i + 1);
        dbuf_reset(&tmp);
        if (i < n && s[i] == '"') {
            i = scan_quoted(s, n, i, &tmp);
        } else {
            size_t v = i;
            while (i < n && s[i] != ';' && !is_wsp((unsigned char)s[i])) {
                i++;
            }
            dbuf_add(&tmp, s + v, i - v);
        }
        dbuf_add(out, s + a, alen);
        dbuf_addc(out, 0);
        if (tmp.len) {
            dbuf_add(out, tmp.p, tmp.len);
        }
        dbuf_addc(out, 0);
    }
    dbuf_free(&tmp);
}

/* Value of parameter `name` in a NUL-separated list, or NULL. */
static const char *param_find(const char *list, size_t n, const char *name, size_t *vlen)
{
    size_t i = 0;
    while (i < n) {
        const char *k = list + i;
        size_t kl = strnlen(k, n - i);
        i += kl + 1;
        if (i > n) {
            break;
        }
        const char *v = list + i;
        size_t vl = strnlen(v, n - i);
        i += vl + 1;
        if (strlen(name) == kl && !ascii_ncasecmp(k, name, kl)) {
            *vlen = vl;
            return v;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------- fields */

static const struct { const char *name; int which; int msg_only; } kept_fields[] = {
    {"content-type", MIME_S_TYPE, 0},
    {"content-transfer-encoding", MIME_S_ENC, 0},
    {"content-id", MIME_S_ID, 0},
    {"content-description", MIME_S_DESC, 0},
    {"content-disposition", MIME_S_DISP, 0},
    {"content-language", MIME_S_LANG, 0},
    {"content-location", MIME_S_LOC, 0},
    {"content-md5", MIME_S_MD5, 0},
    {"date", MIME_S_DATE, 1},
    {"subject", MIME_S_SUBJECT, 1},
    {"from", MIME_S_FROM, 1},
    {"sender", MIME_S_SENDER, 1},
    {"reply-to", MIME_S_REPLY_TO, 1},
    {"to", MIME_S_TO, 1},
    {"cc", MIME_S_CC, 1},
    {"bcc", MIME_S_BCC, 1},
    {"in-reply-to", MIME_S_IN_REPLY_TO, 1},
    {"message-id", MIME_S_MESSAGE_ID, 1},
};

static void content_type(mime_parser *p, uint32_t pi, const char *v, size_t n)
{
    size_t i = skip_cfws(v, n, 0);
    size_t t0 = i;
    i = scan_token(v, n, i);
    size_t t1 = i;
    i = skip_cfws(v, n, i);
    if (t1 == t0 || i >= n || v[i] != '/') {
        return;     /* invalid: the default applies (RFC 2045 5.2) */
    }
    i = skip_cfws(v, n, i + 1);
    size_t s0 = i;
    i = scan_token(v, n, i);
    if (i == s0) {
        return;
    }
    keep(p, pi, MIME_S_TYPE, v + t0, t1 - t0);
    keep(p, pi, MIME_S_SUBTYPE, v + s0, i - s0);
    dbuf params = {0};
    parse_params(v, n, i, &params);
    if (params.len) {
        keep(p, pi, MIME_S_PARAMS, params.p, params.len);
    }
    dbuf_free(&params);
}

static void content_disposition(mime_parser *p, uint32_t pi, const char *v, size_t n)
{
    size_t i = skip_cfws(v, n, 0);
    size_t t0 = i;
    i = scan_token(v, n, i);
    if (i == t0) {
        return;
    }
    keep(p, pi, MIME_S_DISP, v + t0, i - t0);
    dbuf params = {0};
    parse_params(v, n, i, &params);
    if (params.len) {
        keep(p, pi, MIME_S_DISP_PARAMS, params.p, params.len);
    }
    dbuf_free(&params);
}

static void content_language(mime_parser *p, uint32_t pi, const char *v, size_t n)
{
    dbuf l = {0};
    size_t i = 0;
    while (i < n) {
        i = skip_cfws(v, n, i);
        size_t t0 = i;
        while (i < n && v[i] != ',' && v[i] != '(' && !is_wsp((unsigned char)v[i])) {
            i++;
        }
        if (i > t0) {
            dbuf_add(&l, v + t0, i - t0);
            dbuf_addc(&l, 0);
        }
        i = skip_cfws(v, n, i);
        if (i < n && v[i] == ',') {
            i++;
        } else if (i < n && i == t0) {
            i++;
        }
    }
    if (l.len) {
        keep(p, pi, MIME_S_LANG, l.p, l.len);
    }
    dbuf_free(&l);
}

/* A complete header field is in p->field: keep what BODYSTRUCTURE and
 * ENVELOPE need. */
static void field_done(mime_parser *p)
{
    if (!p->fhave) {
        return;
    }
    p->fhave = 0;
    const char *f = p->field;
    size_t n = p->flen;
    const char *colon = memchr(f, ':', n);
    if (!colon) {
        return;
    }
    size_t nl = (size_t)(colon - f);
    while (nl > 0 && (f[nl - 1] == ' ' || f[nl - 1] == '\t')) {
        nl--;
    }
    const char *v = colon + 1;
    size_t vl = n - (size_t)(v - f);
    while (vl > 0 && is_wsp((unsigned char)v[0])) {
        v++;
        vl--;
    }
    while (vl > 0 && is_wsp((unsigned char)v[vl - 1])) {
        vl--;
    }
    uint32_t pi = p->cur;
    int is_msg = (p->t.part[pi].flags & MIME_PF_MESSAGE) != 0;
    for (size_t k = 0; k < sizeof kept_fields / sizeof kept_fields[0]; k++) {
        if (strlen(kept_fields[k].name) != nl || ascii_ncasecmp(f, kept_fields[k].name, nl)) {
            continue;
        }
        if (kept_fields[k].msg_only && !is_msg) {
            return;
        }
        int w = kept_fields[k].which;
        if (w == MIME_S_TYPE) {
            content_type(p, pi, v, vl);
        } else if (w == MIME_S_DISP) {
            content_disposition(p, pi, v, vl);
        } else if (w == MIME_S_LANG) {
            content_language(p, pi, v, vl);
        } else if (w == MIME_S_ENC) {
            size_t i = skip_cfws(v, vl, 0);
            size_t e = scan_token(v, vl, i);
            if (e > i) {
                keep(p, pi, w, v + i, e - i);
            }
        } else {
            keep(p, pi, w, v, vl);
        }
        return;
    }
}

/* Append a header line's bytes (no line break) to the field. */
static void field_add(mime_parser *p, const char *s, size_t n)
{
    for (size_t i = 0; i < n && p->flen < sizeof p->field; i++) {
        if (s[i] != 0) {       /* NUL can never be sent in an IMAP string */
            p->field[p->flen++] = s[i];
        }
    }
}

/* ---------------------------------------------------------------- parts */

static uint32_t new_part(mime_parser *p, uint32_t parent, uint32_t off)
{
    if (p->t.nparts >= MIME_MAX_PARTS) {
        return MIME_NONE;
    }
    if (p->t.nparts == p->capparts) {
        uint32_t nc = p->capparts ? p->capparts * 2 : 4;
        mime_part *np = realloc(p->t.part, nc * sizeof *np);
        if (!np) {
            p->oom = 1;
            return MIME_NONE;
        }
        p->t.part = np;
        p->capparts = nc;
    }
    uint32_t i = p->t.nparts++;
    mime_part *pt = &p->t.part[i];
    memset(pt, 0, sizeof *pt);
    pt->hdr_off = off;
    pt->body_off = off;
    pt->parent = parent;
    pt->child = pt->next = MIME_NONE;
    pt->flags = MIME_PF_OPEN;
    if (parent != MIME_NONE) {
        mime_part *pp = &p->t.part[parent];
        pt->depth = (uint16_t)(pp->depth + 1);
        if (pp->child == MIME_NONE) {
            pp->child = i;
        } else {
            uint32_t c = pp->child;
            while (p->t.part[c].next != MIME_NONE) {
                c = p->t.part[c].next;
            }
            p->t.part[c].next = i;
        }
        pp->nchild++;
    }
    return i;
}

/* The header of part pi ended; its body starts at body_off (with lf LFs
 * before it). Decide what the body holds. open_children: 0 when the part
 * is being closed at once (nothing can follow). */
static void header_done(mime_parser *p, uint32_t pi, uint32_t body_off, uint32_t lf, int open_children)
{
    field_done(p);
    mime_part *pt = &p->t.part[pi];
    pt->hdr_len = body_off - pt->hdr_off;
    pt->body_off = body_off;
    pt->lines = lf;     /* LFs before the body, until the part is closed */
    size_t tl, sl;
    const char *type = pget(p, pi, MIME_S_TYPE, &tl);
    const char *sub = pget(p, pi, MIME_S_SUBTYPE, &sl);
    int in_digest = 0;
    if (pt->parent != MIME_NONE) {
        size_t ds;
        const char *d = pget(p, pt->parent, MIME_S_SUBTYPE, &ds);
        in_digest = (p->t.part[pt->parent].flags & MIME_PF_MULTIPART) && d && ds == 6 && !ascii_ncasecmp(d, "digest", 6);
    }
    if (!type) {
        /* RFC 2046 5.1.5: in a digest the default is message/rfc822. */
        pt->flags |= MIME_PF_DEFTYPE;
        if (in_digest) {
            keep(p, pi, MIME_S_TYPE, "message", 7);
            keep(p, pi, MIME_S_SUBTYPE, "rfc822", 6);
        } else {
            keep(p, pi, MIME_S_TYPE, "text", 4);
            keep(p, pi, MIME_S_SUBTYPE, "plain", 5);
            keep(p, pi, MIME_S_PARAMS, "charset\0us-ascii\0", 17);
        }
        pt = &p->t.part[pi];
        type = pget(p, pi, MIME_S_TYPE, &tl);
        sub = pget(p, pi, MIME_S_SUBTYPE, &sl);
        if (!type || !sub) {
            return;     /* pool full: stays a leaf of unknown type */
        }
    }
    int full = p->t.nparts >= MIME_MAX_PARTS || pt->depth + 1 >= MIME_MAX_DEPTH || p->header_only;
    if (tl == 4 && !ascii_ncasecmp(type, "text", 4)) {
        pt->flags |= MIME_PF_TEXT;
    } else if (tl == 9 && !ascii_ncasecmp(type, "multipart", 9)) {
        size_t pl, bl = 0;
        const char *params = pget(p, pi, MIME_S_PARAMS, &pl);
        const char *b = params ? param_find(params, pl, "boundary", &bl) : NULL;
        pt->flags |= MIME_PF_MULTIPART;
        if (!b || bl == 0 || bl > MIME_BOUNDARY_MAX || full || !open_children || p->nmp >= MIME_MAX_DEPTH) {
            /* No boundary to look for: no children; an empty one is made
             * at close so the structure stays valid. */
            return;
        }
        struct mp *m = &p->mp[p->nmp++];
        m->part = pi;
        m->blen = (uint8_t)bl;
        memcpy(m->b, b, bl);
    } else if (tl == 7 && !ascii_ncasecmp(type, "message", 7) && sl == 6 && !ascii_ncasecmp(sub, "rfc822", 6)) {
        pt->flags |= MIME_PF_RFC822;
        if (!open_children) {
            return;     /* closed at once: an empty child is made at close */
        }
        if (full) {
            return;
        }
        uint32_t c = new_part(p, pi, body_off);
        if (c == MIME_NONE) {
            return;
        }
        p->t.part[c].flags |= MIME_PF_MESSAGE;
        p->cur = c;
        p->in_header = 1;
        return;
    }
}

/* Close part pi at end offset e; lf_e LFs lie before e; last_lf: the byte
 * before e is a LF. */
static void close_part(mime_parser *p, uint32_t pi, uint32_t e, uint32_t lf_e, int last_lf)
{
    mime_part *pt = &p->t.part[pi];
    if (!(pt->flags & MIME_PF_OPEN)) {
        return;
    }
    if (p->cur == pi && p->in_header) {
        /* Ended inside its header: no body separator. */
        uint32_t he = e > pt->hdr_off ? e : pt->hdr_off;
        header_done(p, pi, he, lf_e, 0);
        p->in_header = 0;
        pt = &p->t.part[pi];
    }
    pt->flags &= (uint16_t)~MIME_PF_OPEN;
    uint32_t be = e > pt->body_off ? e : pt->body_off;
    pt->body_len = be - pt->body_off;
    if (pt->body_len == 0) {
        pt->lines = 0;
    } else {
        uint32_t lf0 = pt->lines;
        pt->lines = (lf_e >= lf0 ? lf_e - lf0 : 0) + (last_lf ? 0 : 1);
    }
    /* A multipart without parts, or an rfc822 part without its message,
     * gets an empty one: the IMAP grammar needs at least one. */
    if ((pt->flags & (MIME_PF_MULTIPART | MIME_PF_RFC822)) && pt->child == MIME_NONE) {
        uint32_t c = new_part(p, pi, be);
        if (c != MIME_NONE) {
            mime_part *cp = &p->t.part[c];
            cp->flags = (uint16_t)(MIME_PF_TEXT | MIME_PF_DEFTYPE | ((pt->flags & MIME_PF_RFC822) ? MIME_PF_MESSAGE : 0));
            uint32_t save = p->cur;
            p->cur = c;
            keep(p, c, MIME_S_TYPE, "text", 4);
            keep(p, c, MIME_S_SUBTYPE, "plain", 5);
            keep(p, c, MIME_S_PARAMS, "charset\0us-ascii\0", 17);
            p->cur = save;
        } else {
            /* Cannot even add that: present it as a plain leaf. */
            pt = &p->t.part[pi];
            pt->flags &= (uint16_t)~(MIME_PF_MULTIPART | MIME_PF_RFC822);
        }
    }
}

/* Close cur and its ancestors up to (not including) `upto`. */
static void close_chain(mime_parser *p, uint32_t upto, uint32_t e, uint32_t lf_e, int last_lf)
{
    uint32_t c = p->cur;
    while (c != MIME_NONE && c != upto) {
        close_part(p, c, e, lf_e, last_lf);
        p->in_header = 0;
        c = p->t.part[c].parent;
    }
}

/* 1: delimiter, 2: close delimiter, 0: not this boundary. */
static int boundary_match(const char *l, size_t n, const struct mp *m)
{
    if (n < 2u + m->blen || l[0] != '-' || l[1] != '-' || memcmp(l + 2, m->b, m->blen)) {
        return 0;
    }
    size_t i = 2u + m->blen;
    int close = 0;
    if (i + 2 <= n && l[i] == '-' && l[i + 1] == '-') {
        close = 1;
        i += 2;
    }
    while (i < n && (l[i] == ' ' || l[i] == '\t')) {
        i++;
    }
    return i == n ? 1 + close : 0;
}

/* A complete line: line[] holds its first `kept` bytes; clen is its length
 * without the line break, eol the break's length. */
static void line_done(mime_parser *p, uint32_t clen, uint32_t eol)
{
    const char *l = p->line;
    size_t kn = p->kept < clen ? p->kept : clen;
    uint32_t next_off = p->line_off + clen + eol;
    uint32_t lf_after = p->line_lf + (eol ? 1 : 0);
    /* A boundary of any open multipart ends the parts inside it; the
     * innermost is tried first, and matching is exact, so boundaries that
     * are prefixes of each other are told apart. */
    if (p->nmp && kn == clen && clen >= 2 && l[0] == '-' && l[1] == '-') {
        for (unsigned k = p->nmp; k-- > 0;) {
            int r = boundary_match(l, kn, &p->mp[k]);
            if (!r) {
                continue;
            }
            uint32_t mpart = p->mp[k].part;
            uint32_t e = p->have_prev ? p->prev_eol : p->line_off;
            uint32_t lf_e = p->line_lf ? p->line_lf - 1 : 0;
            int last_lf = p->have_prev && p->prev_clen == 0;
            close_chain(p, mpart, e, lf_e, last_lf);
            p->nmp = k + 1;
            p->cur = mpart;
            p->in_header = 0;
            if (r == 2) {
                /* Close delimiter: the rest is epilogue, in mpart's body. */
                p->nmp = k;
            } else {
                uint32_t c = new_part(p, mpart, next_off);
                if (c != MIME_NONE) {
                    p->cur = c;
                    p->in_header = 1;
                } else {
                    /* Too many parts: the rest goes into the last one... but
                     * it is closed; treat it as epilogue instead. */
                    p->nmp = k;
                }
            }
            goto done;
        }
    }
    if (p->in_header) {
        if (clen == 0) {
            uint32_t hp = p->cur;
            header_done(p, hp, next_off, lf_after, 1);
            if (p->cur == hp) {
                p->in_header = 0;   /* else a child message's header follows */
            }
            if (p->header_only && hp == 0) {
                p->stopped = 1;
            }
        } else if (l[0] == ' ' || l[0] == '\t') {
            field_add(p, l, kn);
        } else {
            field_done(p);
            p->flen = 0;
            p->fhave = 1;
            field_add(p, l, kn);
        }
    }
done:
    p->have_prev = 1;
    p->prev_eol = p->line_off + clen;
    p->prev_clen = clen;
}

mime_parser *mime_parser_new(int header_only)
{
    mime_parser *p = calloc(1, sizeof *p);
    if (!p) {
        return NULL;
    }
    p->header_only = header_only;
    p->bol = 1;
    if (pool_init(&p->pool) < 0 || new_part(p, MIME_NONE, 0) == MIME_NONE) {
        mime_parser_free(p);
        return NULL;
    }
    p->t.part[0].flags |= MIME_PF_MESSAGE;
    p->cur = 0;
    p->in_header = 1;
    return p;
}

void mime_parser_free(mime_parser *p)
{
    if (!p) {
        return;
    }
    free(p->t.part);
    dbuf_free(&p->pool);
    free(p);
}

/* Body lines that cannot be a boundary (no multipart is open, or they do
 * not start with '-') change nothing but the counts: take whole ones from
 * buf[i..n) in one sweep, without line_done. Most of a message is such
 * lines (base64 attachments are 78-byte lines). Returns the bytes taken. */
static size_t body_sweep(mime_parser *p, const char *buf, size_t i, size_t n)
{
    const char *s = buf + i, *e = buf + n, *last = NULL, *last_lf = NULL;
    uint32_t lines = 0;
    while (s < e && !(p->nmp && *s == '-')) {
        const char *lf = memchr(s, '\n', (size_t)(e - s));
        if (!lf) {
            break;
        }
        last = s;
        last_lf = lf;
        lines++;
        s = lf + 1;
    }
    if (!lines) {
        return 0;
    }
    /* The state line_done leaves after the last of them. */
    uint32_t clen = (uint32_t)(last_lf - last);
    if (clen > 0 && last_lf[-1] == '\r') {
        clen--;
    }
    size_t took = (size_t)(s - (buf + i));
    p->have_prev = 1;
    p->prev_eol = p->pos + (uint32_t)(last - (buf + i)) + clen;
    p->prev_clen = clen;
    p->nlf += lines;
    p->pos += (uint32_t)took;
    return took;
}

int mime_parser_feed(mime_parser *p, const char *buf, size_t n)
{
    size_t i = 0;
    while (i < n && !p->stopped) {
        if (p->bol && !p->in_header) {
            i += body_sweep(p, buf, i, n);
            if (i == n) {
                break;
            }
        }
        if (p->bol) {
            p->bol = 0;
            p->line_off = p->pos;
            p->line_len = 0;
            p->line_lf = p->nlf;
            p->kept = 0;
        }
        const char *lf = memchr(buf + i, '\n', n - i);
        size_t seg = lf ? (size_t)(lf - (buf + i)) + 1 : n - i;
        /* Keep what this line may need: a header line up to the field
         * cap, a body line enough to see a boundary. */
        size_t cap = p->in_header ? sizeof p->line : (p->nmp ? BLINE_KEEP : 2);
        if (p->kept < cap) {
            size_t k = seg < cap - p->kept ? seg : cap - p->kept;
            memcpy(p->line + p->kept, buf + i, k);
            p->kept += k;
        }
        p->line_len += (uint32_t)seg;
        p->pos += (uint32_t)seg;
        i += seg;
        if (lf) {
            p->nlf++;
            p->bol = 1;
            uint32_t clen = p->line_len - 1, eol = 1;
            /* A CR before the LF makes it a CRLF; that CR may have come in
             * the previous slice. */
            if (clen > 0 && (lf > buf ? lf[-1] : p->last) == '\r') {
                clen--;
                eol = 2;
            }
            line_done(p, clen, eol);
        }
    }
    if (n > 0 && i == n) {
        p->last = buf[n - 1];
    }
    if (p->oom) {
        return -1;
    }
    return p->stopped;
}

int mime_parser_finish(mime_parser *p, uint32_t total, mime_tree *out)
{
    memset(out, 0, sizeof *out);
    if (!p->stopped && !p->bol) {
        /* A last line without a line break ("--b--" at the very end). */
        uint32_t clen = p->line_len;
        line_done(p, clen, 0);
    }
    if (p->stopped) {
        /* header_only: the root body runs to the end of the message. */
        mime_part *r = &p->t.part[0];
        r->flags &= (uint16_t)~MIME_PF_OPEN;
        r->body_len = total > r->body_off ? total - r->body_off : 0;
        r->lines = 0;
        p->t.header_only = 1;
    } else {
        uint32_t e = p->pos;
        /* LFs before e, and whether the byte before e is a LF. */
        int last_lf = p->bol && p->pos > 0;
        p->nmp = 0;
        close_chain(p, MIME_NONE, e, p->nlf, last_lf);
    }
    if (p->oom) {
        mime_parser_free(p);
        return -1;
    }
    p->t.size = p->stopped ? total : p->pos;
    p->t.pool = p->pool.p;
    p->t.pool_len = (uint32_t)p->pool.len;
    p->pool.p = NULL;
    *out = p->t;
    p->t.part = NULL;
    mime_parser_free(p);
    return 0;
}

int mime_parse_buf(const char *buf, size_t n, int header_only, mime_tree *out)
{
    mime_parser *p = mime_parser_new(header_only);
    if (!p) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    if (mime_parser_feed(p, buf, n) < 0) {
        mime_parser_free(p);
        memset(out, 0, sizeof *out);
        return -1;
    }
    return mime_parser_finish(p, (uint32_t)n, out);
}

void mime_tree_free(mime_tree *t)
{
    free(t->part);
    free(t->pool);
    free(t->seek);
    memset(t, 0, sizeof *t);
}

/* -------------------------------------------------------- serialization */

/* Format (version 3): "MT3", the renderings a FETCH copies as they are --
 * varint length and bytes of the root's ENVELOPE, then of its
 * BODYSTRUCTURE (length 0: not kept, because the tree is header-only or
 * the text is longer than MIME_RENDERED_MAX) -- then the tree as in
 * version 2. Version 2 ("MT2", written before the renderings were kept)
 * is the tree alone and is still read.
 * The tree: varints: nparts, size, header_only, pool_len, the
 * pool bytes, then per part: hdr_off, hdr_len, body_off - (hdr_off +
 * hdr_len), body_len, lines, parent + 1 (0 = none), flags, depth implicit,
 * a bitmap of present strings, and (off, len) of each present one; then
 * nseek and per seek point (disk delta << 1 | bol, wire delta) from the
 * previous point. Children and siblings are rebuilt from the parents
 * (parts are in document order). A plain message's tree is about 30 bytes
 * plus its envelope strings; seek points cost about 6 bytes each. */

static void put_varint(dbuf *o, uint64_t v)
{
    while (v >= 0x80) {
        dbuf_addc(o, (char)(0x80 | (v & 0x7f)));
        v >>= 7;
    }
    dbuf_addc(o, (char)v);
}

static int get_varint(const unsigned char *p, size_t n, size_t *i, uint32_t *v)
{
    if (*i < n && p[*i] < 0x80) {
        *v = p[(*i)++];     /* most values are under 128: one byte */
        return 0;
    }
    uint64_t r = 0;
    for (int shift = 0; shift < 35; shift += 7) {
        if (*i >= n) {
            return -1;
        }
        unsigned char c = p[(*i)++];
        r |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            if (r > UINT32_MAX) {
                return -1;
            }
            *v = (uint32_t)r;
            return 0;
        }
    }
    return -1;
}

/* One kept rendering: its length and bytes, or 0 when it is too long. */
static void put_rendering(dbuf *o, const dbuf *r)
{
    if (r->p && r->len > 0 && r->len <= MIME_RENDERED_MAX) {
        put_varint(o, r->len);
        dbuf_add(o, r->p, r->len);
    } else {
        put_varint(o, 0);
    }
}

int mime_serialize(const mime_tree *t, dbuf *o)
{
    size_t start = o->len;
    dbuf_add(o, "MT3", 3);
    if (t->header_only || MIME_RENDERED_MAX == 0) {
        put_varint(o, 0);
        put_varint(o, 0);
    } else {
        /* Rendered once here, when the tree is stored, so that a later
         * FETCH ENVELOPE or BODYSTRUCTURE copies bytes instead of
         * rebuilding the tree and walking it. */
        dbuf r = {0};
        mime_out_envelope(&r, t, 0);
        put_rendering(o, &r);
        dbuf_reset(&r);
        mime_out_body(&r, t, 0, 1);
        put_rendering(o, &r);
        dbuf_free(&r);
    }
    put_varint(o, t->nparts);
    put_varint(o, t->size);
    put_varint(o, (uint64_t)t->header_only);
    put_varint(o, t->pool_len);
    dbuf_add(o, t->pool, t->pool_len);
    for (uint32_t i = 0; i < t->nparts; i++) {
        const mime_part *pt = &t->part[i];
        put_varint(o, pt->hdr_off);
        put_varint(o, pt->hdr_len);
        put_varint(o, pt->body_off - (pt->hdr_off + pt->hdr_len));
        put_varint(o, pt->body_len);
        put_varint(o, pt->lines);
        put_varint(o, pt->parent == MIME_NONE ? 0 : (uint64_t)pt->parent + 1);
        put_varint(o, pt->flags & ~MIME_PF_OPEN);
        uint32_t bits = 0;
        for (int k = 0; k < MIME_S_COUNT; k++) {
            if (pt->s[k].off) {
                bits |= 1u << k;
            }
        }
        put_varint(o, bits);
        for (int k = 0; k < MIME_S_COUNT; k++) {
            if (pt->s[k].off) {
                put_varint(o, pt->s[k].off);
                put_varint(o, pt->s[k].len);
            }
        }
    }
    put_varint(o, t->nseek);
    uint32_t pd = 0, pw = 0;
    for (uint32_t i = 0; i < t->nseek; i++) {
        const st_seekpt *sp = &t->seek[i];
        put_varint(o, ((uint64_t)(sp->disk - pd) << 1) | sp->bol);
        put_varint(o, sp->wire - pw);
        pd = sp->disk;
        pw = sp->wire;
    }
    /* dbuf reports allocation failure per call; check the result once. */
    return o->p && o->len > start ? 0 : -1;
}

/* The renderings of a version 3 blob: 0 and where they are (a pointer is
 * NULL when that one is not kept), *end past them; -1 if the blob is not
 * version 3 or is cut short. */
static int rendered_split(const unsigned char *p, size_t n, mime_rendered *r, size_t *end)
{
    size_t i = 3;
    uint32_t l;
    memset(r, 0, sizeof *r);
    if (n < 3 || memcmp(p, "MT3", 3)) {
        return -1;
    }
    for (int k = 0; k < 2; k++) {
        if (get_varint(p, n, &i, &l) < 0 || l > n - i || l > MIME_RENDERED_LIMIT) {
            return -1;
        }
        /* A rendering is one parenthesized list; anything else (a record
         * that passed its CRC but is not ours) is not sent. */
        if (l && (l < 2 || p[i] != '(' || p[i + l - 1] != ')')) {
            return -1;
        }
        const char *s = l ? (const char *)p + i : NULL;
        if (k == 0) {
            r->env = s;
            r->env_len = l;
        } else {
            r->bs = s;
            r->bs_len = l;
        }
        i += l;
    }
    *end = i;
    return 0;
}

int mime_rendered_parse(const void *blob, size_t n, mime_rendered *r)
{
    size_t end;
    return rendered_split(blob, n, r, &end);
}

int mime_deserialize(const void *data, size_t n, mime_tree *t)
{
    const unsigned char *p = data;
    size_t i = 3;
    uint32_t np, size, ho, pl;
    memset(t, 0, sizeof *t);
    mime_rendered rd;
    if (rendered_split(p, n, &rd, &i) < 0) {
        i = 3;
        if (n < 3 || memcmp(p, "MT2", 3)) {
            return -1;
        }
    }
    if (get_varint(p, n, &i, &np) < 0 || np == 0 ||
        np > MIME_MAX_PARTS || get_varint(p, n, &i, &size) < 0 || get_varint(p, n, &i, &ho) < 0 ||
        get_varint(p, n, &i, &pl) < 0 || pl == 0 || pl > MIME_POOL_MAX || pl > n - i) {
        return -1;
    }
    t->pool = malloc(pl + 1);
    t->part = calloc(np, sizeof *t->part);
    if (!t->pool || !t->part) {
        mime_tree_free(t);
        return -1;
    }
    memcpy(t->pool, p + i, pl);
    t->pool[pl] = 0;
    t->pool_len = pl;
    t->size = size;
    t->header_only = ho != 0;
    i += pl;
    for (uint32_t k = 0; k < np; k++) {
        mime_part *pt = &t->part[k];
        uint32_t gap, par, fl, bits;
        if (get_varint(p, n, &i, &pt->hdr_off) < 0 || get_varint(p, n, &i, &pt->hdr_len) < 0 ||
            get_varint(p, n, &i, &gap) < 0 || get_varint(p, n, &i, &pt->body_len) < 0 ||
            get_varint(p, n, &i, &pt->lines) < 0 || get_varint(p, n, &i, &par) < 0 ||
            get_varint(p, n, &i, &fl) < 0 || get_varint(p, n, &i, &bits) < 0) {
            goto bad;
        }
        uint64_t bo = (uint64_t)pt->hdr_off + pt->hdr_len + gap;
        if (bo + pt->body_len > size || (par == 0) != (k == 0) || par > k || fl > 0xff ||
            bits >> MIME_S_COUNT) {
            goto bad;
        }
        pt->body_off = (uint32_t)bo;
        pt->flags = (uint16_t)fl;
        pt->parent = par ? par - 1 : MIME_NONE;
        pt->child = pt->next = MIME_NONE;
        for (int s = 0; s < MIME_S_COUNT; s++) {
            if (!(bits & (1u << s))) {
                continue;
            }
            if (get_varint(p, n, &i, &pt->s[s].off) < 0 || get_varint(p, n, &i, &pt->s[s].len) < 0 ||
                pt->s[s].off == 0 || pt->s[s].off > pl || pt->s[s].len > pl - pt->s[s].off) {
                goto bad;
            }
        }
        if (pt->parent != MIME_NONE) {
            mime_part *pp = &t->part[pt->parent];
            pt->depth = (uint16_t)(pp->depth + 1);
            if (pt->depth >= MIME_MAX_DEPTH + 2) {
                goto bad;
            }
            /* Document order: the new child goes last; find the last one
             * by walking (trees are small). */
            if (pp->child == MIME_NONE) {
                pp->child = k;
            } else {
                uint32_t c = pp->child;
                while (t->part[c].next != MIME_NONE) {
                    c = t->part[c].next;
                }
                t->part[c].next = k;
            }
            pp->nchild++;
        }
        t->nparts = k + 1;
    }
    /* The renderings rely on these: composite parts have children. */
    for (uint32_t k = 0; k < np; k++) {
        mime_part *pt = &t->part[k];
        if ((pt->flags & (MIME_PF_MULTIPART | MIME_PF_RFC822)) && pt->child == MIME_NONE) {
            goto bad;
        }
        if ((pt->flags & MIME_PF_RFC822) && pt->nchild != 1) {
            goto bad;
        }
    }
    /* Seek points: strictly increasing on disk, never backwards on the
     * wire, never past the message. */
    uint32_t ns;
    if (get_varint(p, n, &i, &ns) < 0 || ns > MIME_SEEK_MAX || ns > n - i) {
        goto bad;
    }
    if (ns) {
        t->seek = malloc(ns * sizeof *t->seek);
        if (!t->seek) {
            goto bad;
        }
    }
    uint64_t pd = 0, pw = 0;
    for (uint32_t k = 0; k < ns; k++) {
        uint32_t dd, dw;
        if (get_varint(p, n, &i, &dd) < 0 || get_varint(p, n, &i, &dw) < 0 || (dd >> 1) == 0 ||
            pd + (dd >> 1) > UINT32_MAX || pw + dw > size) {
            goto bad;
        }
        pd += dd >> 1;
        pw += dw;
        t->seek[k].disk = (uint32_t)pd;
        t->seek[k].wire = (uint32_t)pw;
        t->seek[k].bol = (uint8_t)(dd & 1);
        t->nseek = k + 1;
    }
    if (i != n) {
        goto bad;
    }
    return 0;
bad:
    mime_tree_free(t);
    return -1;
}

/* ------------------------------------------------------- IMAP strings */

/* Renderings append a hundred small pieces per message into a buffer the
 * caller reuses: copy in place while it has room, and leave growing (and
 * its failure) to dbuf_add. Keeps dbuf's NUL after the bytes. */
static inline void put_s(dbuf *o, const void *s, size_t n)
{
    if (o->len + n < o->cap) {
        memcpy(o->p + o->len, s, n);
        o->len += n;
        o->p[o->len] = 0;
    } else {
        dbuf_add(o, s, n);
    }
}

static inline void put_c(dbuf *o, char ch)
{
    if (o->len + 1 < o->cap) {
        o->p[o->len++] = ch;
        o->p[o->len] = 0;
    } else {
        dbuf_add(o, &ch, 1);
    }
}

void mime_out_string(dbuf *o, const char *s, size_t n)
{
    /* The same choice as dbuf_add_imap_string (quoted when short and 7-bit
     * without NUL/CR/LF), but copying runs instead of byte by byte:
     * BODYSTRUCTURE and ENVELOPE are mostly such strings. */
    if (n > 255) {
        dbuf_add_imap_string(o, s, n);   /* rare: keep the stack small */
        return;
    }
    char q[255 * 2 + 2];
    size_t k = 0;
    q[k++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == 0 || ch == '\r' || ch == '\n' || ch >= 0x80) {
            dbuf_add_imap_string(o, s, n);
            return;
        }
        if (ch == '"' || ch == '\\') {
            q[k++] = '\\';
        }
        q[k++] = (char)ch;
    }
    q[k++] = '"';
    put_s(o, q, k);
}

/* " <n>" without printf's cost (BODYSTRUCTURE has a few per part). */
static void out_sp_num(dbuf *o, uint32_t v)
{
    char b[12];
    size_t k = sizeof b;
    do {
        b[--k] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    b[--k] = ' ';
    put_s(o, b + k, sizeof b - k);
}

void mime_out_nstring(dbuf *o, const char *s, size_t n)
{
    if (!s) {
        put_s(o, "NIL", 3);
    } else {
        mime_out_string(o, s, n);
    }
}

/* ------------------------------------------------------------ addresses */

/* A cursor over an address list (RFC 2822 3.4, with the obsolete forms
 * real mail still has: routes, dots and spaces in odd places). */
typedef struct acur {
    const char *s;
    size_t      n, i;
    dbuf        comment;     /* last comment seen (a fallback display name) */
} acur;

static void a_skip(acur *a)
{
    while (a->i < a->n) {
        char c = a->s[a->i];
        if (is_wsp((unsigned char)c)) {
            a->i++;
        } else if (c == '(') {
            size_t j = skip_cfws(a->s, a->n, a->i);
            dbuf_reset(&a->comment);
            size_t b = a->i + 1, e = j > b && a->s[j - 1] == ')' ? j - 1 : j;
            dbuf_add(&a->comment, a->s + b, e > b ? e - b : 0);
            a->i = j;
        } else {
            break;
        }
    }
}

static int a_special(char c)
{
    return strchr("()<>[]:;@\\,\"", c) != NULL;
}

/* One word (atom, with dots, or quoted string) appended to out; 0 if none. */
static int a_word(acur *a, dbuf *out)
{
    a_skip(a);
    if (a->i >= a->n) {
        return 0;
    }
    if (a->s[a->i] == '"') {
        a->i = scan_quoted(a->s, a->n, a->i, out);
        return 1;
    }
    size_t b = a->i;
    while (a->i < a->n && !a_special(a->s[a->i]) && !is_wsp((unsigned char)a->s[a->i])) {
        a->i++;
    }
    if (a->i == b) {
        return 0;
    }
    dbuf_add(out, a->s + b, a->i - b);
    return 1;
}

/* A domain (dot-atoms or a domain literal) up to a delimiter. */
static void a_domain(acur *a, dbuf *out)
{
    for (;;) {
        a_skip(a);
        if (a->i >= a->n) {
            return;
        }
        if (a->s[a->i] == '[') {
            size_t b = a->i;
            while (a->i < a->n && a->s[a->i] != ']') {
                a->i++;
            }
            if (a->i < a->n) {
                a->i++;
            }
            dbuf_add(out, a->s + b, a->i - b);
            continue;
        }
        if (!a_word(a, out)) {
            return;
        }
    }
}

static void out_addr(dbuf *o, const dbuf *name, const dbuf *adl, const dbuf *mbox, const dbuf *host)
{
    put_c(o, '(');
    mime_out_nstring(o, name && name->len ? name->p : NULL, name ? name->len : 0);
    put_c(o, ' ');
    mime_out_nstring(o, adl && adl->len ? adl->p : NULL, adl ? adl->len : 0);
    put_c(o, ' ');
    mime_out_nstring(o, mbox ? (mbox->p ? mbox->p : "") : NULL, mbox ? mbox->len : 0);
    put_c(o, ' ');
    mime_out_nstring(o, host ? (host->p ? host->p : "") : NULL, host ? host->len : 0);
    put_c(o, ')');
}

/* One mailbox: [phrase] <[route:]local@domain> or local@domain (comment).
 * Returns 1 if one was written, 0 if nothing usable was there. */
static int a_mailbox(acur *a, dbuf *o)
{
    dbuf phrase = {0}, local = {0}, dom = {0}, route = {0};
    int words = 0, wrote = 0;
    dbuf_reset(&a->comment);
    /* Words up to a delimiter: a display name, or a local part. */
    for (;;) {
        a_skip(a);
        if (a->i >= a->n) {
            break;
        }
        char c = a->s[a->i];
        if (c == '<' || c == '@' || c == ',' || c == ';' || c == ':' || c == '>') {
            break;
        }
        dbuf w = {0};
        if (!a_word(a, &w)) {
            dbuf_free(&w);
            a->i++;     /* a stray special: skip it */
            continue;
        }
        if (words) {
            dbuf_addc(&phrase, ' ');
        }
        if (w.len) {
            dbuf_add(&phrase, w.p, w.len);
            dbuf_add(&local, w.p, w.len);
        }
        dbuf_free(&w);
        words++;
    }
    char c = a->i < a->n ? a->s[a->i] : 0;
    if (c == '<') {
        a->i++;
        a_skip(a);
        /* obs-route: "@a,@b:" */
        if (a->i < a->n && a->s[a->i] == '@') {
            size_t b = a->i;
            while (a->i < a->n && a->s[a->i] != ':' && a->s[a->i] != '>') {
                a->i++;
            }
            if (a->i < a->n && a->s[a->i] == ':') {
                dbuf_add(&route, a->s + b, a->i - b);
                a->i++;
            } else {
                a->i = b;
            }
        }
        dbuf_reset(&local);
        while (a_word(a, &local)) {
        }
        a_skip(a);
        if (a->i < a->n && a->s[a->i] == '@') {
            a->i++;
            a_domain(a, &dom);
        }
        a_skip(a);
        while (a->i < a->n && a->s[a->i] != '>' && a->s[a->i] != ',') {
            a->i++;
        }
        if (a->i < a->n && a->s[a->i] == '>') {
            a->i++;
        }
        if (local.len || dom.len) {
            if (!local.p) {
                dbuf_adds(&local, "MISSING_MAILBOX");
            }
            if (!dom.p) {
                dbuf_adds(&dom, "MISSING_DOMAIN");
            }
            out_addr(o, &phrase, &route, &local, &dom);
            wrote = 1;
        }
    } else if (words) {
        if (c == '@') {
            a->i++;
            a_domain(a, &dom);
        }
        /* A trailing comment is the display name by old convention. */
        a_skip(a);
        if (!dom.p) {
            dbuf_adds(&dom, "MISSING_DOMAIN");
        }
        out_addr(o, a->comment.len ? &a->comment : NULL, NULL, &local, &dom);
        wrote = 1;
    } else if (c == '@') {
        a->i++;
        a_domain(a, &dom);
    }
    dbuf_free(&phrase);
    dbuf_free(&local);
    dbuf_free(&dom);
    dbuf_free(&route);
    return wrote;
}

void mime_out_addresses(dbuf *o, const char *s, size_t n)
{
    acur a = {s, n, 0, {0}};
    size_t start = o->len;
    int any = 0;
    put_c(o, '(');
    while (a.i < a.n) {
        a_skip(&a);
        if (a.i >= a.n) {
            break;
        }
        char c = a.s[a.i];
        if (c == ',' || c == ';' || c == '>') {
            a.i++;
            continue;
        }
        /* A group? Look for ':' before any of '<' '@' ',' (outside quotes). */
        size_t save = a.i;
        dbuf name = {0};
        int is_group = 0;
        for (;;) {
            a_skip(&a);
            if (a.i >= a.n) {
                break;
            }
            char d = a.s[a.i];
            if (d == ':') {
                is_group = 1;
                break;
            }
            if (d == '<' || d == '@' || d == ',' || d == ';' || d == '>') {
                break;
            }
            size_t before = name.len;
            if (name.len) {
                dbuf_addc(&name, ' ');
            }
            if (!a_word(&a, &name)) {
                name.len = before;
                a.i++;
            }
        }
        if (is_group) {
            a.i++;
            /* RFC 3501: start of group (NIL NIL name NIL), end (NIL NIL NIL NIL). */
            dbuf empty = {0};
            out_addr(o, NULL, NULL, name.p ? &name : &empty, NULL);
            dbuf_free(&empty);
            for (;;) {
                a_skip(&a);
                if (a.i >= a.n) {
                    break;
                }
                if (a.s[a.i] == ';') {
                    a.i++;
                    break;
                }
                if (a.s[a.i] == ',') {
                    a.i++;
                    continue;
                }
                size_t at = a.i;
                a_mailbox(&a, o);
                if (a.i == at) {
                    a.i++;
                }
            }
            out_addr(o, NULL, NULL, NULL, NULL);
            any = 1;
        } else {
            a.i = save;
            if (a_mailbox(&a, o)) {
                any = 1;
            }
            if (a.i == save) {
                a.i++;
            }
        }
        dbuf_free(&name);
    }
    dbuf_free(&a.comment);
    if (!any) {
        o->len = start;
        if (o->p) {
            o->p[start] = 0;
        }
        put_s(o, "NIL", 3);
        return;
    }
    put_c(o, ')');
}

/* ------------------------------------------------------------- envelope */

static void out_field(dbuf *o, const mime_tree *t, uint32_t m, int which)
{
    size_t n;
    const char *s = mime_get(t, m, which, &n);
    mime_out_nstring(o, s, n);
}

static void out_addr_field(dbuf *o, const mime_tree *t, uint32_t m, int which, int fallback)
{
    size_t n;
    const char *s = mime_get(t, m, which, &n);
    if ((!s || n == 0) && fallback >= 0) {
        /* RFC 3501 7.4.2: an absent or empty Sender / Reply-To is From. */
        s = mime_get(t, m, fallback, &n);
    }
    if (!s || n == 0) {
        put_s(o, "NIL", 3);
        return;
    }
    mime_out_addresses(o, s, n);
}

void mime_out_envelope(dbuf *o, const mime_tree *t, uint32_t m)
{
    put_c(o, '(');
    out_field(o, t, m, MIME_S_DATE);
    put_c(o, ' ');
    out_field(o, t, m, MIME_S_SUBJECT);
    put_c(o, ' ');
    out_addr_field(o, t, m, MIME_S_FROM, -1);
    put_c(o, ' ');
    out_addr_field(o, t, m, MIME_S_SENDER, MIME_S_FROM);
    put_c(o, ' ');
    out_addr_field(o, t, m, MIME_S_REPLY_TO, MIME_S_FROM);
    put_c(o, ' ');
    out_addr_field(o, t, m, MIME_S_TO, -1);
    put_c(o, ' ');
    out_addr_field(o, t, m, MIME_S_CC, -1);
    put_c(o, ' ');
    out_addr_field(o, t, m, MIME_S_BCC, -1);
    put_c(o, ' ');
    out_field(o, t, m, MIME_S_IN_REPLY_TO);
    put_c(o, ' ');
    out_field(o, t, m, MIME_S_MESSAGE_ID);
    put_c(o, ')');
}

/* -------------------------------------------------------- bodystructure */

/* body-fld-param: ("name" "value" ...) or NIL. */
static void out_params(dbuf *o, const mime_tree *t, uint32_t pi, int which)
{
    size_t n;
    const char *l = mime_get(t, pi, which, &n);
    if (!l || n == 0) {
        put_s(o, "NIL", 3);
        return;
    }
    put_c(o, '(');
    size_t i = 0;
    int first = 1;
    while (i < n) {
        size_t kl = strnlen(l + i, n - i);
        size_t vi = i + kl + 1;
        if (vi > n) {
            break;
        }
        size_t vl = strnlen(l + vi, n - vi);
        if (!first) {
            put_c(o, ' ');
        }
        first = 0;
        mime_out_string(o, l + i, kl);
        put_c(o, ' ');
        mime_out_string(o, l + vi, vl);
        i = vi + vl + 1;
    }
    put_c(o, ')');
}

/* body-fld-dsp SP body-fld-lang SP body-fld-loc */
static void out_ext_common(dbuf *o, const mime_tree *t, uint32_t pi)
{
    size_t n;
    const char *d = mime_get(t, pi, MIME_S_DISP, &n);
    if (d) {
        put_c(o, '(');
        mime_out_string(o, d, n);
        put_c(o, ' ');
        out_params(o, t, pi, MIME_S_DISP_PARAMS);
        put_c(o, ')');
    } else {
        put_s(o, "NIL", 3);
    }
    put_c(o, ' ');
    const char *l = mime_get(t, pi, MIME_S_LANG, &n);
    if (!l || n == 0) {
        put_s(o, "NIL", 3);
    } else {
        size_t first = strnlen(l, n);
        if (first + 1 >= n) {
            mime_out_string(o, l, first);
        } else {
            put_c(o, '(');
            for (size_t i = 0; i < n;) {
                size_t k = strnlen(l + i, n - i);
                if (i) {
                    put_c(o, ' ');
                }
                mime_out_string(o, l + i, k);
                i += k + 1;
            }
            put_c(o, ')');
        }
    }
    put_c(o, ' ');
    out_field(o, t, pi, MIME_S_LOC);
}

static void out_body(dbuf *o, const mime_tree *t, uint32_t pi, int ext)
{
    const mime_part *pt = &t->part[pi];
    size_t n;
    put_c(o, '(');
    if (pt->flags & MIME_PF_MULTIPART) {
        for (uint32_t c = pt->child; c != MIME_NONE; c = t->part[c].next) {
            out_body(o, t, c, ext);
        }
        put_c(o, ' ');
        const char *sub = mime_get(t, pi, MIME_S_SUBTYPE, &n);
        mime_out_string(o, sub ? sub : "mixed", sub ? n : 5);
        if (ext) {
            put_c(o, ' ');
            out_params(o, t, pi, MIME_S_PARAMS);
            put_c(o, ' ');
            out_ext_common(o, t, pi);
        }
        put_c(o, ')');
        return;
    }
    const char *ty = mime_get(t, pi, MIME_S_TYPE, &n);
    mime_out_string(o, ty ? ty : "application", ty ? n : 11);
    put_c(o, ' ');
    ty = mime_get(t, pi, MIME_S_SUBTYPE, &n);
    mime_out_string(o, ty ? ty : "octet-stream", ty ? n : 12);
    put_c(o, ' ');
    out_params(o, t, pi, MIME_S_PARAMS);
    put_c(o, ' ');
    out_field(o, t, pi, MIME_S_ID);
    put_c(o, ' ');
    out_field(o, t, pi, MIME_S_DESC);
    put_c(o, ' ');
    const char *enc = mime_get(t, pi, MIME_S_ENC, &n);
    mime_out_string(o, enc ? enc : "7bit", enc ? n : 4);
    out_sp_num(o, pt->body_len);
    if ((pt->flags & MIME_PF_RFC822) && pt->child != MIME_NONE) {
        put_c(o, ' ');
        mime_out_envelope(o, t, pt->child);
        put_c(o, ' ');
        out_body(o, t, pt->child, ext);
        out_sp_num(o, pt->lines);
    } else if (pt->flags & MIME_PF_TEXT) {
        out_sp_num(o, pt->lines);
    }
    if (ext) {
        put_c(o, ' ');
        out_field(o, t, pi, MIME_S_MD5);
        put_c(o, ' ');
        out_ext_common(o, t, pi);
    }
    put_c(o, ')');
}

void mime_out_body(dbuf *o, const mime_tree *t, uint32_t part, int extended)
{
    out_body(o, t, part, extended);
}

/* ------------------------------------------------------------- sections */

int mime_section_range(const mime_tree *t, const uint32_t *nums, unsigned n,
                       int kind, uint32_t *off, uint32_t *len)
{
    uint32_t cur = 0;
    int is_msg = 1;     /* cur stands for a whole message, not a part */
    for (unsigned k = 0; k < n; k++) {
        const mime_part *pt = &t->part[cur];
        uint32_t num = nums[k];
        if (!is_msg && (pt->flags & MIME_PF_RFC822) && pt->child != MIME_NONE) {
            /* Numbers below a message/rfc822 part address its message. */
            cur = pt->child;
            pt = &t->part[cur];
        }
        if (pt->flags & MIME_PF_MULTIPART) {
            uint32_t c = pt->child;
            while (c != MIME_NONE && --num > 0) {
                c = t->part[c].next;
            }
            if (c == MIME_NONE || nums[k] == 0) {
                return -1;
            }
            cur = c;
        } else if (num != 1 || (!is_msg && !(t->part[cur].flags & MIME_PF_MESSAGE))) {
            /* A single-part message has part 1 (its body) and no other. */
            return -1;
        }
        is_msg = 0;
    }
    if (t->header_only && cur != 0) {
        return -1;
    }
    const mime_part *pt = &t->part[cur];
    if (kind == MIME_SEC_MIME) {
        if (n == 0) {
            return -1;
        }
        *off = pt->hdr_off;
        *len = pt->hdr_len;
        return 0;
    }
    if (kind == MIME_SEC_HEADER || kind == MIME_SEC_TEXT) {
        if (!is_msg && (pt->flags & MIME_PF_RFC822) && pt->child != MIME_NONE) {
            pt = &t->part[pt->child];
        }
        if (kind == MIME_SEC_HEADER) {
            *off = pt->hdr_off;
            *len = pt->hdr_len;
        } else {
            *off = pt->body_off;
            *len = pt->body_len;
        }
        return 0;
    }
    if (is_msg) {
        *off = 0;
        *len = t->size;
    } else {
        *off = pt->body_off;
        *len = pt->body_len;
    }
    return 0;
}

/* ------------------------------------------------------------- decoding */

/* Sextet of each byte, -1 for bytes that are not base64 digits: the
 * decoder looks bytes up instead of testing ranges. Filled on first use
 * (b64_tab[0] is -1 once it is). */
static signed char b64_tab[256];

static void b64_tab_init(void)
{
    static const char dig[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    memset(b64_tab, -1, sizeof b64_tab);
    for (int i = 0; i < 64; i++) {
        b64_tab[(unsigned char)dig[i]] = (signed char)i;
    }
}

static int hex_val(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = ascii_upper(c);
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

void mime_fold_utf8(const char *s, size_t n, dbuf *out)
{
    /* The decoder's folding rules, with nothing to decode. */
    mime_decoder d;
    mime_decoder_init(&d, MIME_ENC_PLAIN, MIME_CS_UTF8);
    mime_decode(&d, s, n, out);
}

void mime_decoder_init(mime_decoder *d, int enc, int cs)
{
    memset(d, 0, sizeof *d);
    d->enc = enc;
    d->cs = cs;
}

/* Decoded bytes are staged in a block on the stack and handed to the dbuf
 * a block at a time: a dbuf_addc() per byte was most of the time of SEARCH
 * BODY/TEXT over mail whose structure was already known. */
typedef struct dsink {
    dbuf         *out;
    size_t        n;            /* bytes staged in b */
    unsigned char b[1024];
} dsink;

static void sink_flush(dsink *s)
{
    if (s->n) {
        dbuf_add(s->out, s->b, s->n);
        s->n = 0;
    }
}

/* Append a run of decoded bytes to the sink: charset conversion to UTF-8,
 * then folding (ASCII, and Latin-1 letters as UTF-8 C3 80..C3 9E). */
static void emit_run(mime_decoder *d, const unsigned char *p, size_t n, dsink *s)
{
    int c3 = d->fold_c3, latin1 = d->cs == MIME_CS_LATIN1;
    size_t i = 0;
    while (i < n) {
        if (sizeof s->b - s->n < 2) {
            sink_flush(s);
        }
        /* Each input byte gives at most two: no bound check inside. */
        size_t lim = i + (sizeof s->b - s->n) / 2;
        if (lim > n) {
            lim = n;
        }
        unsigned char *o = s->b + s->n;
        while (i < lim) {
            if (lim - i >= 8) {
                /* Eight ASCII bytes at once: a byte gets 0x20 where it is
                 * >= 'A' (+0x3f sets its top bit) but not > 'Z' (+0x25
                 * does); no carry crosses bytes below 0x80. */
                uint64_t x;
                memcpy(&x, p + i, 8);
                if (!(x & 0x8080808080808080u)) {
                    uint64_t up = ((x + 0x3f3f3f3f3f3f3f3fu) ^ (x + 0x2525252525252525u)) & 0x8080808080808080u;
                    x |= up >> 2;
                    memcpy(o, &x, 8);
                    o += 8;
                    i += 8;
                    c3 = 0;
                    continue;
                }
            }
            unsigned char c = p[i++];
            if (c < 0x80) {
                *o++ = (unsigned char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
                c3 = 0;
            } else if (latin1) {
                unsigned char lo = (unsigned char)(0x80 | (c & 0x3f));
                if (c >= 0xC0 && c <= 0xDE && c != 0xD7) {
                    lo = (unsigned char)(lo + 0x20);    /* folded */
                }
                *o++ = (unsigned char)(0xC0 | (c >> 6));
                *o++ = lo;
                c3 = 0;
            } else {
                if (c3 && c <= 0x9E && c != 0x97) {
                    c = (unsigned char)(c + 0x20);
                }
                c3 = c == 0xC3;
                *o++ = c;
            }
        }
        s->n = (size_t)(o - s->b);
    }
    d->fold_c3 = c3;
}

void mime_decode(mime_decoder *d, const char *src, size_t n, dbuf *out)
{
    dsink s;
    s.out = out;
    s.n = 0;
    const unsigned char *p = (const unsigned char *)src;
    if (d->enc == MIME_ENC_BASE64) {
        unsigned char q[192];   /* decoded bytes, converted in runs */
        size_t nq = 0;
        if (b64_tab[0] == 0) {
            b64_tab_init();
        }
        for (size_t i = 0; i < n; i++) {
            unsigned char c = p[i];
            if (nq > sizeof q - 3) {
                emit_run(d, q, nq, &s);
                nq = 0;
            }
            if (d->b64n == 0 && n - i >= 4) {
                /* The common case, a whole group of 4 digits: one test. */
                int a = b64_tab[c], b = b64_tab[p[i + 1]], e = b64_tab[p[i + 2]], f = b64_tab[p[i + 3]];
                if ((a | b | e | f) >= 0) {
                    uint32_t g = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)e << 6 | (uint32_t)f;
                    q[nq++] = (unsigned char)(g >> 16);
                    q[nq++] = (unsigned char)(g >> 8);
                    q[nq++] = (unsigned char)g;
                    i += 3;
                    continue;
                }
            }
            int v = b64_tab[c];
            if (c == '=' && d->b64n >= 2) {
                /* Padding ends a group early: 2 sextets hold one byte, 3 two. */
                q[nq++] = (unsigned char)(d->b64 >> (d->b64n == 2 ? 4 : 10));
                if (d->b64n == 3) {
                    q[nq++] = (unsigned char)(d->b64 >> 2);
                }
                d->b64 = 0;
                d->b64n = 0;
                continue;
            }
            if (v < 0) {
                continue;   /* line breaks, extra padding, junk */
            }
            d->b64 = (d->b64 << 6) | (uint32_t)v;
            if (++d->b64n == 4) {
                q[nq++] = (unsigned char)(d->b64 >> 16);
                q[nq++] = (unsigned char)(d->b64 >> 8);
                q[nq++] = (unsigned char)d->b64;
                d->b64 = 0;
                d->b64n = 0;
            }
        }
        emit_run(d, q, nq, &s);
    } else if (d->enc == MIME_ENC_QP) {
        size_t i = 0;
        while (i < n) {
            if (d->nqp == 0) {
                /* Up to the next '=' the text is literal. */
                const unsigned char *eq = memchr(p + i, '=', n - i);
                size_t run = eq ? (size_t)(eq - (p + i)) : n - i;
                emit_run(d, p + i, run, &s);
                i += run;
                if (i == n) {
                    break;
                }
            }
            unsigned char c = p[i++];
            d->qp[d->nqp++] = (char)c;
            if (d->nqp < 3) {
                if (d->nqp == 2 && (c == '\n')) {
                    d->nqp = 0;     /* soft line break "=\n" */
                }
                continue;
            }
            d->nqp = 0;
            if (d->qp[1] == '\r' && d->qp[2] == '\n') {
                continue;           /* soft line break "=\r\n" */
            }
            int h = hex_val((unsigned char)d->qp[1]), l = hex_val((unsigned char)d->qp[2]);
            unsigned char e[3];
            if (h >= 0 && l >= 0) {
                e[0] = (unsigned char)(h * 16 + l);
                emit_run(d, e, 1, &s);
            } else {
                /* Not an escape: keep it as it was. */
                memcpy(e, d->qp, 3);
                emit_run(d, e, 3, &s);
            }
        }
    } else {
        emit_run(d, p, n, &s);
    }
    sink_flush(&s);
}

static int charset_of(const char *cs, size_t n)
{
    if (!cs) {
        return MIME_CS_UTF8;    /* us-ascii default; UTF-8 is a superset */
    }
    static const char *const latin1[] = {"iso-8859-1", "iso8859-1", "latin1", "l1", "windows-1252", "cp1252", "iso-8859-15"};
    static const char *const utf8[] = {"utf-8", "utf8", "us-ascii", "ascii", "ansi_x3.4-1968"};
    for (size_t i = 0; i < sizeof latin1 / sizeof latin1[0]; i++) {
        if (strlen(latin1[i]) == n && !ascii_ncasecmp(cs, latin1[i], n)) {
            return MIME_CS_LATIN1;
        }
    }
    for (size_t i = 0; i < sizeof utf8 / sizeof utf8[0]; i++) {
        if (strlen(utf8[i]) == n && !ascii_ncasecmp(cs, utf8[i], n)) {
            return MIME_CS_UTF8;
        }
    }
    return MIME_CS_OTHER;
}

int mime_part_decoder(const mime_tree *t, uint32_t pi, mime_decoder *d)
{
    const mime_part *pt = &t->part[pi];
    if (pt->flags & (MIME_PF_MULTIPART | MIME_PF_RFC822)) {
        return -1;      /* the parts inside are searched instead */
    }
    size_t tl, el, pl, cl = 0;
    const char *ty = mime_get(t, pi, MIME_S_TYPE, &tl);
    if (ty && !(tl == 4 && !ascii_ncasecmp(ty, "text", 4)) &&
        !(tl == 7 && !ascii_ncasecmp(ty, "message", 7))) {
        return -1;      /* images, archives: not text to search */
    }
    const char *enc = mime_get(t, pi, MIME_S_ENC, &el);
    int e = MIME_ENC_PLAIN;
    if (enc && el == 6 && !ascii_ncasecmp(enc, "base64", 6)) {
        e = MIME_ENC_BASE64;
    } else if (enc && el == 16 && !ascii_ncasecmp(enc, "quoted-printable", 16)) {
        e = MIME_ENC_QP;
    }
    const char *params = mime_get(t, pi, MIME_S_PARAMS, &pl);
    const char *cs = params ? param_find(params, pl, "charset", &cl) : NULL;
    int c = charset_of(cs, cl);
    /* An unknown charset is searched as if UTF-8: ASCII words still match. */
    mime_decoder_init(d, e, c == MIME_CS_OTHER ? MIME_CS_UTF8 : c);
    return 0;
}

void mime_latin1_to_utf8(const char *s, size_t n, dbuf *out)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            dbuf_addc(out, (char)c);
        } else {
            dbuf_addc(out, (char)(0xC0 | (c >> 6)));
            dbuf_addc(out, (char)(0x80 | (c & 0x3f)));
        }
    }
}

/* One encoded word "=?cs?X?text?=" at s (RFC 2047); appends the decoded
 * text and returns its length, or 0 if s does not start one. */
static size_t encoded_word(const char *s, size_t n, dbuf *out)
{
    if (n < 8 || s[0] != '=' || s[1] != '?') {
        return 0;
    }
    size_t i = 2;
    while (i < n && s[i] != '?' && !is_wsp((unsigned char)s[i])) {
        i++;
    }
    if (i + 2 >= n || s[i] != '?' || s[i + 2] != '?') {
        return 0;
    }
    size_t csl = i - 2;
    const char *cs = s + 2;
    const char *star = memchr(cs, '*', csl);      /* RFC 2231 language */
    if (star) {
        csl = (size_t)(star - cs);
    }
    int X = ascii_upper((unsigned char)s[i + 1]);
    if (X != 'B' && X != 'Q') {
        return 0;
    }
    size_t t0 = i + 3, t1 = t0;
    while (t1 + 1 < n && !(s[t1] == '?' && s[t1 + 1] == '=')) {
        if (is_wsp((unsigned char)s[t1])) {
            return 0;
        }
        t1++;
    }
    if (t1 + 1 >= n) {
        return 0;
    }
    int c = charset_of(cs, csl);
    mime_decoder d;
    mime_decoder_init(&d, X == 'B' ? MIME_ENC_BASE64 : MIME_ENC_PLAIN, c == MIME_CS_LATIN1 ? MIME_CS_LATIN1 : MIME_CS_UTF8);
    if (X == 'B') {
        mime_decode(&d, s + t0, t1 - t0, out);
    } else {
        dsink sk;
        sk.out = out;
        sk.n = 0;
        for (size_t k = t0; k < t1; k++) {
            unsigned char ch = (unsigned char)s[k];
            if (s[k] == '_') {
                ch = ' ';
            } else if (s[k] == '=' && k + 2 < t1 && hex_val((unsigned char)s[k + 1]) >= 0 &&
                       hex_val((unsigned char)s[k + 2]) >= 0) {
                ch = (unsigned char)(hex_val((unsigned char)s[k + 1]) * 16 + hex_val((unsigned char)s[k + 2]));
                k += 2;
            }
            emit_run(&d, &ch, 1, &sk);
        }
        sink_flush(&sk);
    }
    return t1 + 2;
}

void mime_decode_header(const char *s, size_t n, dbuf *out)
{
    /* Output is folded too (it is only used for matching). White space
     * between two encoded words is dropped (RFC 2047 6.2). */
    mime_decoder plain;
    mime_decoder_init(&plain, MIME_ENC_PLAIN, MIME_CS_UTF8);
    dsink sk;           /* plain text between encoded words */
    sk.out = out;
    sk.n = 0;
    size_t i = 0;
    int after_word = 0;
    while (i < n) {
        if (s[i] == '\r' || s[i] == '\n') {
            i++;
            continue;
        }
        size_t k = 0;
        if (s[i] == '=') {
            sink_flush(&sk);    /* an encoded word appends to out itself */
            k = encoded_word(s + i, n - i, out);
        }
        if (k) {
            i += k;
            after_word = 1;
            continue;
        }
        if (after_word && is_wsp((unsigned char)s[i])) {
            size_t j = i;
            while (j < n && is_wsp((unsigned char)s[j])) {
                j++;
            }
            dbuf probe = {0};
            if (encoded_word(s + j, n - j, &probe)) {
                dbuf_free(&probe);
                i = j;
                continue;
            }
            dbuf_free(&probe);
        }
        after_word = 0;
        emit_run(&plain, (const unsigned char *)s + i, 1, &sk);
        i++;
    }
    sink_flush(&sk);
}

int64_t mime_date_days(const char *s, size_t n)
{
    /* [day-of-week ","] day month year ... (RFC 2822 3.3, obsolete forms
     * tolerated: two-digit years, extra spaces, comments). */
    size_t i = 0;
    while (i < n && (is_wsp((unsigned char)s[i]))) {
        i++;
    }
    const char *comma = memchr(s + i, ',', n - i);
    if (comma) {
        i = (size_t)(comma - s) + 1;
    }
    while (i < n && is_wsp((unsigned char)s[i])) {
        i++;
    }
    int d = 0, y = 0, nd = 0, dd = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9' && dd < 2) {
        d = d * 10 + (s[i++] - '0');
        dd++;
    }
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '-')) {
        i++;
    }
    if (n - i < 3 || !dd) {
        return -1;
    }
    char mon[4] = {s[i], s[i + 1], s[i + 2], 0};
    int m = month_from_name(mon);
    i += 3;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '-')) {
        i++;
    }
    while (i < n && s[i] >= '0' && s[i] <= '9' && nd < 4) {
        y = y * 10 + (s[i++] - '0');
        nd++;
    }
    if (nd == 2) {
        y += y < 50 ? 2000 : 1900;
    } else if (nd == 3) {
        y += 1900;
    }
    if (!m || d < 1 || d > 31 || nd < 2) {
        return -1;
    }
    return days_from_civil(y, (unsigned)m, (unsigned)d);
}

/* ---------------------------------------------------------------- cache */

/* An LRU of serialized trees. The key names the mailbox by a hash of its
 * owner and name, plus UIDVALIDITY and UID: a message's bytes never change
 * under one (UIDVALIDITY, UID), so entries never go stale, they only age
 * out. A FETCH 1:* walks every message once per command, so lookups go
 * through a chained hash table (the list alone made a lookup cost a walk
 * of every cached tree). */
typedef struct centry {
    struct centry *prev, *next;   /* LRU list, most recent first */
    struct centry *hnext;         /* next in the same hash bucket */
    uint64_t  box;                /* hash of user and mailbox name */
    uint32_t  uidvalidity, uid;
    size_t    len;                /* bytes of blob */
    unsigned char blob[];
} centry;

static struct {
    centry  *head, *tail;
    centry **bucket;              /* nbucket heads (NULL until first put) */
    uint32_t nbucket;             /* a power of two, >= n where it can grow */
    uint32_t n;
    size_t   bytes;
    uint64_t hits, misses;
    uint64_t disk_hits;           /* found in the store's cache file */
    uint64_t parsed_at_append;    /* trees made as messages arrived */
} cache;

static uint64_t box_hash(const st_box *b)
{
    /* FNV-1a over "user\0name". */
    uint64_t h = 1469598103934665603ull;
    const char *parts[2] = {b->user ? b->user : "", b->name ? b->name : ""};
    for (int k = 0; k < 2; k++) {
        for (const char *p = parts[k]; *p; p++) {
            h = (h ^ (unsigned char)*p) * 1099511628211ull;
        }
        h = (h ^ 0) * 1099511628211ull;
    }
    return h;
}

static uint32_t c_slot(uint64_t box, uint32_t uv, uint32_t uid)
{
    /* UIDs are dense: mixing them with a multiply spreads neighbours. */
    uint64_t h = (box ^ ((uint64_t)uv << 32 | uid)) * 0x9e3779b97f4a7c15ull;
    return (uint32_t)(h >> 32) & (cache.nbucket - 1);
}

static void h_unlink(centry *e)
{
    centry **pp = &cache.bucket[c_slot(e->box, e->uidvalidity, e->uid)];
    while (*pp && *pp != e) {
        pp = &(*pp)->hnext;
    }
    if (*pp) {
        *pp = e->hnext;
    }
    e->hnext = NULL;
}

static void h_link(centry *e)
{
    centry **pp = &cache.bucket[c_slot(e->box, e->uidvalidity, e->uid)];
    e->hnext = *pp;
    *pp = e;
}

/* Double the buckets once entries outnumber them; a failed allocation
 * only makes chains longer. */
static void h_grow(void)
{
    uint32_t nb = cache.nbucket ? cache.nbucket * 2 : 256;
    centry **nbk = calloc(nb, sizeof *nbk);
    if (!nbk) {
        return;
    }
    free(cache.bucket);
    cache.bucket = nbk;
    cache.nbucket = nb;
    for (centry *e = cache.head; e; e = e->next) {
        h_link(e);
    }
}

static void c_unlink(centry *e)
{
    if (e->prev) {
        e->prev->next = e->next;
    } else {
        cache.head = e->next;
    }
    if (e->next) {
        e->next->prev = e->prev;
    } else {
        cache.tail = e->prev;
    }
    e->prev = e->next = NULL;
}

static void c_push(centry *e)
{
    e->prev = NULL;
    e->next = cache.head;
    if (cache.head) {
        cache.head->prev = e;
    }
    cache.head = e;
    if (!cache.tail) {
        cache.tail = e;
    }
}

/* Take e out of the cache and free it. */
static void c_drop(centry *e)
{
    h_unlink(e);
    c_unlink(e);
    cache.n--;
    cache.bytes -= sizeof *e + e->len;
    free(e);
}

static centry *c_find(uint64_t box, uint32_t uv, uint32_t uid)
{
    if (!cache.nbucket) {
        return NULL;
    }
    for (centry *e = cache.bucket[c_slot(box, uv, uid)]; e; e = e->hnext) {
        if (e->uid == uid && e->box == box && e->uidvalidity == uv) {
            return e;
        }
    }
    return NULL;
}

static void c_put(uint64_t box, uint32_t uv, uint32_t uid, const void *blob, size_t len)
{
    if (len > MIME_CACHE_BYTES / 4) {
        return;     /* one huge tree must not flush everything else */
    }
    if (cache.n >= cache.nbucket) {
        h_grow();
    }
    if (!cache.nbucket) {
        return;
    }
    centry *old = c_find(box, uv, uid);
    if (old) {
        c_drop(old);    /* a re-parse replaces it (one entry per key) */
    }
    centry *e = malloc(sizeof *e + len);
    if (!e) {
        return;
    }
    e->box = box;
    e->uidvalidity = uv;
    e->uid = uid;
    e->len = len;
    memcpy(e->blob, blob, len);
    c_push(e);
    h_link(e);
    cache.n++;
    cache.bytes += sizeof *e + e->len;
    while (cache.bytes > MIME_CACHE_BYTES && cache.tail && cache.tail != e) {
        c_drop(cache.tail);
    }
}

void mime_cache_clear(void)
{
    while (cache.head) {
        c_drop(cache.head);
    }
    free(cache.bucket);
    cache.bucket = NULL;
    cache.nbucket = 0;
    cache.n = 0;
    cache.bytes = 0;
}

void mime_cache_stats2(uint64_t *disk_hits, uint64_t *parsed_at_append)
{
    *disk_hits = cache.disk_hits;
    *parsed_at_append = cache.parsed_at_append;
}

void mime_cache_stats(uint32_t *entries, size_t *bytes, uint64_t *hits, uint64_t *misses)
{
    *entries = cache.n;
    *bytes = cache.bytes;
    *hits = cache.hits;
    *misses = cache.misses;
}

uint32_t mime_seek_every = MIME_SEEK_EVERY;

void mime_seek_point(const mime_tree *t, uint32_t wire, st_seekpt *out)
{
    memset(out, 0, sizeof *out);
    out->bol = 1;
    /* The last point at or before wire (binary search: points increase). */
    uint32_t lo = 0, hi = t->nseek;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (t->seek[mid].wire <= wire) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo > 0) {
        *out = t->seek[lo - 1];
    }
}

/* Seek points gathered while the parser reads the message. */
typedef struct seekbuf {
    st_seekpt *p;
    uint32_t   n, cap;
    uint32_t   stride;   /* keep one point in this many (0 = 1) */
    uint32_t   seen;     /* points offered */
    int        oom;
} seekbuf;

static void seek_add(void *ctx, const st_seekpt *pt)
{
    seekbuf *sb = ctx;
    uint32_t stride = sb->stride ? sb->stride : 1;
    if (sb->oom || sb->seen++ % stride != 0) {
        return;
    }
    if (sb->n >= MIME_SEEK_MAX) {
        /* A message bigger than foreseen (at APPEND its size is not known
         * up front): keep every other point and take half as many from
         * now on, so the points stay spread over the whole message. */
        for (uint32_t i = 0; i < sb->n / 2; i++) {
            sb->p[i] = sb->p[2 * i + 1];
        }
        sb->n /= 2;
        sb->stride = stride * 2;
        sb->seen = 1;
    }
    if (sb->n == sb->cap) {
        uint32_t nc = sb->cap ? sb->cap * 2 : 16;
        st_seekpt *np = realloc(sb->p, nc * sizeof *np);
        if (!np) {
            sb->oom = 1;    /* fewer points: slower seeks, same bytes */
            return;
        }
        sb->p = np;
        sb->cap = nc;
    }
    sb->p[sb->n++] = *pt;
}

/* Bytes read from the store at a time when parsing a message: the reader
 * converts in place, so a read is one pread of half of it (32 KiB of
 * disk); 4 KiB preads were a fifth of a first BODYSTRUCTURE's time.
 * Held only while the message is parsed. */
#define MIME_READ (64u << 10)
/* The same for a header-only parse: a header is a few KiB, and a bigger
 * read would convert body bytes nobody looks at. */
#define MIME_READ_HDR 8192u

/* A parse of one message from the store, resumable: the reader and the
 * parser keep their state between slices. */
struct mime_bg {
    st_box      *box;
    uint32_t     uid;       /* the message (indexes shift; UIDs do not) */
    uint32_t     size;      /* its RFC822.SIZE */
    int          full;
    mime_parser *p;
    st_reader    rd;
    seekbuf      sb;
    char        *buf;       /* MIME_READ bytes: the reader reads the mbox
                               straight into it, one pread per half */
};

void mime_bg_free(mime_bg *g)
{
    if (!g) {
        return;
    }
    st_reader_close(&g->rd);
    mime_parser_free(g->p);
    free(g->sb.p);
    free(g->buf);
    free(g);
}

static int bg_open(st_box *b, uint32_t idx, int full, mime_bg **out)
{
    const st_msg *m = &b->msg[idx];
    mime_bg *g = calloc(1, sizeof *g);
    if (!g || !(g->p = mime_parser_new(!full)) || !(g->buf = malloc(full ? MIME_READ : MIME_READ_HDR))) {
        if (g) {
            mime_parser_free(g->p);
        }
        free(g);
        return ST_ENOMEM;
    }
    int rc = st_reader_open(&g->rd, b, idx);
    if (rc < 0) {
        mime_bg_free(g);
        return rc;
    }
    g->box = b;
    g->uid = m->uid;
    g->size = m->size;
    g->full = full;
    if (full) {
        /* Spacing grows for huge messages so the count stays capped. */
        uint32_t every = mime_seek_every;
        if (m->dlen / MIME_SEEK_MAX >= every) {
            every = m->dlen / MIME_SEEK_MAX + 1;
        }
        st_reader_track(&g->rd, every, seek_add, &g->sb);
    }
    *out = g;
    return 0;
}

/* Feed up to `budget` bytes (0: no limit). 1: the tree is in *out and g is
 * freed; 0: more to do; <0: error, g freed. */
static int bg_run(mime_bg *g, size_t budget, mime_tree *out)
{
    size_t bsz = g->full ? MIME_READ : MIME_READ_HDR;
    size_t done = 0;
    for (;;) {
        if (budget && done >= budget) {
            return 0;
        }
        long n = st_reader_read(&g->rd, g->buf, bsz);
        if (n < 0) {
            mime_bg_free(g);
            return (int)n;
        }
        if (n == 0) {
            break;
        }
        done += (size_t)n;
        int r = mime_parser_feed(g->p, g->buf, (size_t)n);
        if (r < 0) {
            mime_bg_free(g);
            return ST_ENOMEM;
        }
        if (r == 1) {
            break;
        }
    }
    int rc = mime_parser_finish(g->p, g->size, out);
    g->p = NULL;    /* finish freed it either way */
    if (rc < 0) {
        mime_bg_free(g);
        return ST_ENOMEM;
    }
    out->seek = g->sb.p;
    out->nseek = g->sb.n;
    g->sb.p = NULL;
    mime_bg_free(g);
    return 1;
}

/* Parse message idx from the store (only its header unless full), with
 * seek points when full, in one go. */
static int tree_parse(st_box *b, uint32_t idx, int full, mime_tree *out)
{
    mime_bg *g;
    int rc = bg_open(b, idx, full, &g);
    if (rc < 0) {
        return rc;
    }
    rc = bg_run(g, 0, out);
    return rc < 0 ? rc : 0;
}

static void tree_store(st_box *b, uint32_t idx, const mime_tree *t);

/* ---- parsing at delivery: the store shows new messages as they come ---- */

/* Every new message's record goes to the cache file (mime_watch_imports). */
static int watch_all;

typedef struct awatch {
    mime_parser *p;      /* NULL once it failed (no memory) */
    seekbuf      sb;
} awatch;

static void *aw_begin(st_box *b)
{
    awatch *w = calloc(1, sizeof *w);
    if (w && !(w->p = mime_parser_new(0))) {
        free(w);
        w = NULL;
    }
    return w;
}

static void aw_data(void *x, const char *p, size_t n)
{
    awatch *w = x;
    if (w->p && mime_parser_feed(w->p, p, n) < 0) {
        mime_parser_free(w->p);
        w->p = NULL;    /* parsed lazily on first use instead */
    }
}

static void aw_point(void *x, const st_seekpt *pt)
{
    seek_add(&((awatch *)x)->sb, pt);
}

static void aw_abort(void *x)
{
    awatch *w = x;
    mime_parser_free(w->p);
    free(w->sb.p);
    free(w);
}

/* The message is in the mailbox: its tree goes to both caches, so the
 * first BODYSTRUCTURE or section FETCH reads no message bytes. */
static void aw_end(void *x, st_box *b, uint32_t idx)
{
    awatch *w = x;
    mime_tree t;
    int rc = w->p ? mime_parser_finish(w->p, b->msg[idx].size, &t) : -1;
    w->p = NULL;    /* finish freed it either way */
    if (rc == 0) {
        t.seek = w->sb.p;
        t.nseek = w->sb.n;
        w->sb.p = NULL;
        /* The size check is a guard: the parser saw exactly the bytes a
         * reader gives, so it always holds. */
        if (!w->sb.oom && t.size == b->msg[idx].size) {
            if (watch_all || b->msg[idx].dlen >= MIME_APPEND_RECORD_MIN) {
                tree_store(b, idx, &t);
            } else {
                /* Memory only: the record is written if the tree is ever
                 * parsed again (see MIME_APPEND_RECORD_MIN). */
                dbuf d = {0};
                if (mime_serialize(&t, &d) == 0) {
                    c_put(box_hash(b), b->uidvalidity, b->msg[idx].uid, d.p, d.len);
                }
                dbuf_free(&d);
            }
            cache.parsed_at_append++;
        }
        mime_tree_free(&t);
    }
    aw_abort(w);
}

static const st_append_watch append_watch = {
    aw_begin, aw_data, aw_point, aw_end, aw_abort, MIME_SEEK_EVERY,
};

void mime_watch_appends(st_store *s)
{
    watch_all = 0;
    st_store_set_append_watch(s, &append_watch);
}

void mime_watch_imports(st_store *s)
{
    watch_all = 1;
    st_store_set_append_watch(s, &append_watch);
}

int mime_rendered_get(st_box *b, uint32_t idx, mime_rendered *r)
{
    if (idx >= b->count) {
        return -1;
    }
    const st_msg *m = &b->msg[idx];
    centry *e = c_find(box_hash(b), b->uidvalidity, m->uid);
    if (e) {
        if (mime_rendered_parse(e->blob, e->len, r) < 0) {
            return -1;  /* an older form: the tree path upgrades it */
        }
        cache.hits++;
        c_unlink(e);
        c_push(e);
        return 0;
    }
    /* Straight from the cache file's read window: no copy into the LRU
     * (a FETCH 1:* would only churn it), no tree. */
    const void *blob;
    size_t blen;
    if (st_meta_peek(b, idx, &blob, &blen) == 0 && mime_rendered_parse(blob, blen, r) == 0) {
        cache.disk_hits++;
        return 0;
    }
    return -1;
}

/* The tree of message idx from the in-memory LRU or the store's cache
 * file: 0, or -1 if neither has it. */
static int tree_lookup(st_box *b, uint32_t idx, mime_tree *out)
{
    const st_msg *m = &b->msg[idx];
    uint64_t key = box_hash(b);
    centry *e = c_find(key, b->uidvalidity, m->uid);
    if (e) {
        if (mime_deserialize(e->blob, e->len, out) == 0) {
            cache.hits++;
            c_unlink(e);
            c_push(e);
            return 0;
        }
        c_drop(e);
    }
    /* The mailbox's cache file: a tree parsed before (by this process or
     * an earlier one, or at delivery). Anything wrong with it is a miss. */
    void *blob = NULL;
    size_t blen = 0;
    if (st_meta_get(b, idx, &blob, &blen) == 0) {
        if (mime_deserialize(blob, blen, out) == 0 && !out->header_only && out->size == m->size) {
            cache.disk_hits++;
            if (blen >= 3 && !memcmp(blob, "MT2", 3)) {
                /* Written before renderings were kept: store it again in
                 * the current form, once, so later FETCHes copy them. */
                tree_store(b, idx, out);
            } else {
                c_put(key, b->uidvalidity, m->uid, blob, blen);
            }
            free(blob);
            return 0;
        }
        mime_tree_free(out);
        free(blob);
    }
    return -1;
}

/* A freshly parsed full tree of message idx goes into both caches. */
static void tree_store(st_box *b, uint32_t idx, const mime_tree *t)
{
    dbuf d = {0};
    if (mime_serialize(t, &d) == 0) {
        c_put(box_hash(b), b->uidvalidity, b->msg[idx].uid, d.p, d.len);
        st_meta_put(b, idx, d.p, d.len);
    }
    dbuf_free(&d);
}

int mime_tree_get(st_box *b, uint32_t idx, int full, mime_tree *out)
{
    memset(out, 0, sizeof *out);
    if (idx >= b->count) {
        return ST_EINVAL;
    }
    if (tree_lookup(b, idx, out) == 0) {
        return 0;
    }
    cache.misses++;
    int rc = tree_parse(b, idx, full, out);
    if (rc < 0) {
        return rc;
    }
    if (full) {
        tree_store(b, idx, out);
    }
    return 0;
}

int mime_tree_begin(st_box *b, uint32_t idx, mime_bg **bg, mime_tree *out)
{
    *bg = NULL;
    memset(out, 0, sizeof *out);
    if (idx >= b->count) {
        return ST_EINVAL;
    }
    if (tree_lookup(b, idx, out) == 0) {
        return 1;
    }
    if (b->msg[idx].dlen < MIME_BG_MIN) {
        int rc = mime_tree_get(b, idx, 1, out);
        return rc < 0 ? rc : 1;
    }
    cache.misses++;
    int rc = bg_open(b, idx, 1, bg);
    return rc < 0 ? rc : 0;
}

int mime_bg_step(mime_bg *g, mime_tree *out)
{
    st_box *b = g->box;
    uint32_t uid = g->uid;
    memset(out, 0, sizeof *out);
    int rc = bg_run(g, MIME_BG_SLICE, out);
    if (rc == 1) {
        long idx = st_box_find(b, uid);
        if (idx >= 0 && !(b->msg[idx].flags & ST_F_EXPUNGED)) {
            tree_store(b, (uint32_t)idx, out);
        }
    }
    return rc;
}
