/*
 * fetch.c -- FETCH and UID FETCH.
 *
 * A FETCH becomes a job: the list of messages and the parsed items. The
 * job writes one message at a time and streams bodies in slices; when the
 * connection's output passes its high-water mark the job pauses (c->cont)
 * and resumes when the client has read, so a 50 MB body never sits in
 * memory and never delays other clients.
 *
 * Sections are byte ranges of the message found in its MIME tree (mime.h),
 * parsed once and cached; only HEADER.FIELDS(.NOT) is filtered, in one
 * streaming pass over the header's range. A range is read from the tree's
 * seek point nearest before it, not from the message start, so a partial
 * FETCH from the middle of a 50 MB part reads at most MIME_SEEK_EVERY
 * bytes it does not send. The full tree of a big message that no cache
 * holds is parsed before its response starts, MIME_BG_SLICE bytes per
 * loop turn (c->wake_at), so other clients are served meanwhile.
 */
#include "cmd.h"
#include "mime.h"
#include "ext.h"
#include "binary.h"

#include <stdlib.h>
#include <string.h>

#define SLICE 16384         /* bytes read from the store per step */
/* HEADER.FIELDS output is built in memory to know its length first; past
 * this the remaining matching fields are left out (a header of that size
 * is an attack, not mail). */
#define FIELDS_MAX (1u << 20)
/* Part numbers in one section: deeper than the MIME parser records is
 * pointless. */
#define PATH_MAX_PARTS MIME_MAX_DEPTH

enum {
    FI_FLAGS = 1, FI_UID, FI_IDATE, FI_SIZE, FI_BODY,
    FI_ENVELOPE, FI_BODYSTRUCTURE, FI_BODYNX,
    FI_MODSEQ,          /* RFC 7162 */
    FI_BINARY,          /* RFC 3516 BINARY[] / BINARY.PEEK[] */
    FI_BINSIZE,         /* RFC 3516 BINARY.SIZE[] */
};
enum {
    SEC_ALL = 0, SEC_HEADER, SEC_TEXT, SEC_FIELDS, SEC_FIELDS_NOT, SEC_MIME,
};

typedef struct fitem {
    uint8_t  kind;      /* FI_* */
    uint8_t  sect;      /* SEC_* for FI_BODY */
    uint8_t  peek;      /* does not set \Seen */
    uint8_t  partial;   /* <origin.octets> given */
    uint32_t p_off, p_len;
    char   **fields;    /* HEADER.FIELDS names */
    unsigned nfields;
    uint32_t path[PATH_MAX_PARTS]; /* part numbers, e.g. 1.2 */
    unsigned npath;
    char    *label;     /* response item name, e.g. "BODY[HEADER]" */
} fitem;

/* A BINARY[] being streamed (bin_start, bin_pump): `hdr` first, then the
 * encoded range of the reader decoded slice by slice. */
typedef struct fetch_bin {
    int      on;            /* j->rd serves this, not a BODY[] range */
    bin_dec  dec;
    dbuf     hdr;           /* BINARY[] of a message with an encoded body:
                               its header, Content-Transfer-Encoding fixed */
    size_t   hdr_pos;       /* bytes of hdr already passed on */
    uint64_t raw_skip;      /* reader bytes before the encoded range */
    uint64_t raw_left;      /* encoded bytes still to read */
    uint64_t skip, left;    /* decoded bytes to drop (partial), then send */
} fetch_bin;

typedef struct fetch_job {
    int       uid;          /* UID FETCH */
    fitem    *items;
    unsigned  nitems;
    uint32_t *uids;         /* messages to send, by UID (indexes shift) */
    uint32_t  n, cur;
    unsigned  item;         /* next item of the current message */
    int       started;      /* "* n FETCH (" written for cur */
    int       add_flags;    /* \Seen was set: append FLAGS */
    int       skipped;      /* expunged messages skipped */
    int       err;          /* store error */
    st_reader rd;           /* body being streamed */
    int       rd_open;
    int       has_modseq;   /* MODSEQ asked for (or implied by CHANGEDSINCE) */
    uint64_t  skip, left;   /* bytes to skip, then to send */
    mime_tree tree;         /* MIME tree of the current message */
    int       tree_kind;    /* 0 none, 1 header only, 2 full */
    uint32_t  tree_uid;     /* the message tree belongs to */
    int       needs_full;   /* some item needs the full tree */
    mime_bg  *bg;           /* full tree being parsed a slice a turn */
    uint32_t  bg_uid;       /* the message bg belongs to */
    fetch_bin bin;          /* BINARY[] in progress */
    int       unknown_cte;  /* a BINARY item met an encoding we cannot undo */
    dbuf      render;       /* ENVELOPE/BODYSTRUCTURE text, reused from
                               message to message (no allocation each) */
    int       rend_want;    /* 1: ENVELOPE asked for, 2: BODYSTRUCTURE */
    int       tree_other;   /* an item other than those needs the full tree */
    uint32_t  rend_uid;     /* the message rend belongs to (0: none) */
    int       rend_ok;      /* rend holds every rendering asked for */
    dbuf      rend;         /* cached renderings of rend_uid, copied out
                               of the MIME cache: ENVELOPE then
                               BODYSTRUCTURE */
    size_t    rend_env;     /* bytes of ENVELOPE at the start of rend */
    uint32_t  last_idx;     /* index of the message served last */
} fetch_job;

static void items_free(fitem *it, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        for (unsigned k = 0; k < it[i].nfields; k++) {
            free(it[i].fields[k]);
        }
        free(it[i].fields);
        free(it[i].label);
    }
    free(it);
}

void fetch_job_free(imap_conn *c)
{
    fetch_job *j = c->fetch;
    if (!j) {
        return;
    }
    if (j->rd_open) {
        st_reader_close(&j->rd);
    }
    items_free(j->items, j->nitems);
    free(j->uids);
    mime_tree_free(&j->tree);
    mime_bg_free(j->bg);
    dbuf_free(&j->bin.hdr);
    dbuf_free(&j->render);
    dbuf_free(&j->rend);
    free(j);
    c->fetch = NULL;
}

static fitem *add_item(fitem **items, unsigned *n, int kind)
{
    fitem *ni = realloc(*items, (*n + 1) * sizeof *ni);
    if (!ni) {
        return NULL;
    }
    *items = ni;
    fitem *it = &ni[(*n)++];
    memset(it, 0, sizeof *it);
    it->kind = (uint8_t)kind;
    return it;
}

/* The "<origin.octets>" that ends a section (at p, up to the end of the
 * string): sets the item's partial range and appends "<origin>" to the
 * response label. 0 or -1. */
static int parse_partial(fitem *it, const char *p, dbuf *lab)
{
    const char *dot = strchr(p, '.'), *gt = strchr(p, '>');
    if (!dot || !gt || dot > gt || gt[1] != 0 || parse_u32(p + 1, (size_t)(dot - p - 1), &it->p_off) < 0 ||
        parse_u32(dot + 1, (size_t)(gt - dot - 1), &it->p_len) < 0 || it->p_len == 0) {
        return -1;
    }
    it->partial = 1;
    dbuf_printf(lab, "<%u>", it->p_off);
    return 0;
}

/* Parse "BODY[...]<...>" style items; `s` starts after "BODY[" or
 * "BODY.PEEK[". section = [part *("." part)] ["." spec] | spec, where spec
 * is HEADER, TEXT, MIME (after a part number only) or HEADER.FIELDS(.NOT)
 * followed by a parenthesized list of header names in the next tokens.
 * Returns 0 or -1. */
static int parse_section(args *a, fitem *it, const char *s, const char *prefix)
{
    dbuf lab = {0};
    dbuf_adds(&lab, prefix);
    const char *close = strchr(s, ']');
    size_t sl = close ? (size_t)(close - s) : strlen(s);
    size_t i = 0;
    /* Part numbers. */
    while (i < sl && s[i] >= '0' && s[i] <= '9') {
        size_t b = i;
        while (i < sl && s[i] >= '0' && s[i] <= '9') {
            i++;
        }
        uint32_t v;
        if (parse_u32(s + b, i - b, &v) < 0 || v == 0 || it->npath >= PATH_MAX_PARTS) {
            goto bad;
        }
        it->path[it->npath++] = v;
        dbuf_printf(&lab, "%s%u", it->npath > 1 ? "." : "", v);
        if (i < sl) {
            if (s[i] != '.' || i + 1 >= sl) {
                goto bad;
            }
            i++;
            if (!(s[i] >= '0' && s[i] <= '9')) {
                break;
            }
        }
    }
    const char *sec = s + i;
    size_t rl = sl - i;
    if (it->npath && rl) {
        dbuf_addc(&lab, '.');
    }
    if (rl == 0) {
        it->sect = SEC_ALL;
        if (!close) {
            goto bad;
        }
    } else if (close && rl == 6 && !ascii_ncasecmp(sec, "HEADER", 6)) {
        it->sect = SEC_HEADER;
    } else if (close && rl == 4 && !ascii_ncasecmp(sec, "TEXT", 4)) {
        it->sect = SEC_TEXT;
    } else if (close && rl == 4 && it->npath && !ascii_ncasecmp(sec, "MIME", 4)) {
        it->sect = SEC_MIME;
    } else if (!close && (!ascii_casecmp(sec, "HEADER.FIELDS") || !ascii_casecmp(sec, "HEADER.FIELDS.NOT"))) {
        it->sect = sec[13] ? SEC_FIELDS_NOT : SEC_FIELDS;
        dbuf_adds(&lab, it->sect == SEC_FIELDS ? "HEADER.FIELDS (" : "HEADER.FIELDS.NOT (");
        if (arg_lparen(a) < 0) {
            goto bad;
        }
        const char *f;
        uint32_t fl;
        while (arg_astring(a, &f, &fl) == 0) {
            char **nf = realloc(it->fields, (it->nfields + 1) * sizeof *nf);
            if (!nf) {
                goto bad;
            }
            it->fields = nf;
            it->fields[it->nfields++] = xstrndup(f, fl);
            if (it->nfields > 1) {
                dbuf_addc(&lab, ' ');
            }
            /* Echo each name as an astring the client can read back. */
            int atom = fl > 0;
            for (uint32_t k = 0; k < fl; k++) {
                unsigned char ch = (unsigned char)f[k];
                if (ch <= ' ' || ch >= 0x7f || strchr("(){%*\"\\]", ch)) {
                    atom = 0;
                }
            }
            if (atom) {
                dbuf_add(&lab, f, fl);
            } else {
                mime_out_string(&lab, f, fl);
            }
        }
        if (arg_rparen(a) < 0 || it->nfields == 0) {
            goto bad;
        }
        dbuf_adds(&lab, ")");
        /* The closing "]" and any partial come as the next atom. */
        const char *r;
        uint32_t rl2;
        if (arg_atom(a, &r, &rl2) < 0 || r[0] != ']') {
            goto bad;
        }
        close = r;
        sec = NULL;
    } else {
        goto bad;
    }
    if (sec) {
        for (size_t k = 0; k < rl; k++) {
            dbuf_addc(&lab, (char)ascii_upper((unsigned char)sec[k]));
        }
    }
    dbuf_adds(&lab, "]");
    const char *rest = close + 1;
    if (*rest == '<') {
        if (parse_partial(it, rest, &lab) < 0) {
            goto bad;
        }
    } else if (*rest) {
        goto bad;
    }
    it->label = lab.p;
    return 0;
bad:
    dbuf_free(&lab);
    return -1;
}

/* "BINARY[1.2]<0.100>", "BINARY.PEEK[...]", "BINARY.SIZE[...]" (RFC 3516
 * 4.2; RFC 9051 section-binary): part numbers only, no HEADER/TEXT/MIME,
 * and no partial for SIZE. 0 or -1. */
static int parse_binary(fitem **items, unsigned *n, const char *s)
{
    int kind = FI_BINARY, peek = 0;
    const char *p = s + 6;
    if (!ascii_ncasecmp(p, ".PEEK[", 6)) {
        peek = 1;
        p += 5;
    } else if (!ascii_ncasecmp(p, ".SIZE[", 6)) {
        kind = FI_BINSIZE;
        p += 5;
    }
    if (*p++ != '[') {
        return -1;
    }
    fitem *it = add_item(items, n, kind);
    if (!it) {
        return -1;
    }
    it->peek = (uint8_t)(peek || kind == FI_BINSIZE);
    dbuf lab = {0};
    dbuf_adds(&lab, kind == FI_BINSIZE ? "BINARY.SIZE[" : "BINARY[");
    while (*p != ']') {
        uint32_t v;
        size_t k = 0;
        while (p[k] >= '0' && p[k] <= '9') {
            k++;
        }
        if (parse_u32(p, k, &v) < 0 || v == 0 || it->npath >= PATH_MAX_PARTS) {
            goto bad;
        }
        it->path[it->npath++] = v;
        dbuf_printf(&lab, "%s%u", it->npath > 1 ? "." : "", v);
        p += k;
        if (*p == '.' && p[1] >= '0' && p[1] <= '9') {
            p++;
        } else if (*p != ']') {
            goto bad;
        }
    }
    dbuf_adds(&lab, "]");
    p++;
    if (*p == '<' && kind == FI_BINARY) {
        if (parse_partial(it, p, &lab) < 0) {
            goto bad;
        }
    } else if (*p) {
        goto bad;
    }
    if (!lab.p) {
        return -1;
    }
    it->label = lab.p;
    return 0;
bad:
    dbuf_free(&lab);
    return -1;
}

static int parse_one_item(args *a, fitem **items, unsigned *n)
{
    const char *s;
    uint32_t sl;
    if (arg_atom(a, &s, &sl) < 0) {
        return -1;
    }
    fitem *it;
    static const struct { const char *name; int kind; } plain[] = {
        {"FLAGS", FI_FLAGS}, {"UID", FI_UID}, {"INTERNALDATE", FI_IDATE},
        {"RFC822.SIZE", FI_SIZE}, {"ENVELOPE", FI_ENVELOPE},
        {"BODYSTRUCTURE", FI_BODYSTRUCTURE}, {"BODY", FI_BODYNX},
        {CONFIG_EXT_CONDSTORE ? "MODSEQ" : "", FI_MODSEQ},
    };
    for (size_t k = 0; k < sizeof plain / sizeof plain[0]; k++) {
        if (!ascii_casecmp(s, plain[k].name)) {
            return add_item(items, n, plain[k].kind) ? 0 : -1;
        }
    }
    if (!ascii_casecmp(s, "RFC822") || !ascii_casecmp(s, "RFC822.HEADER") || !ascii_casecmp(s, "RFC822.TEXT")) {
        if (!(it = add_item(items, n, FI_BODY))) {
            return -1;
        }
        it->sect = s[6] == 0 ? SEC_ALL : (s[7] == 'H' || s[7] == 'h') ? SEC_HEADER : SEC_TEXT;
        it->peek = it->sect == SEC_HEADER;
        it->label = xstrdup(it->sect == SEC_ALL ? "RFC822" : it->sect == SEC_HEADER ? "RFC822.HEADER" : "RFC822.TEXT");
        return 0;
    }
    if (!ascii_ncasecmp(s, "BODY[", 5)) {
        if (!(it = add_item(items, n, FI_BODY))) {
            return -1;
        }
        return parse_section(a, it, s + 5, "BODY[");
    }
    if (!ascii_ncasecmp(s, "BODY.PEEK[", 10)) {
        if (!(it = add_item(items, n, FI_BODY))) {
            return -1;
        }
        it->peek = 1;
        return parse_section(a, it, s + 10, "BODY[");
    }
    if (CONFIG_EXT_IMAP4REV2 && !ascii_ncasecmp(s, "BINARY", 6)) {
        return parse_binary(items, n, s);
    }
    return -1;
}

static int parse_items(args *a, fitem **items, unsigned *n)
{
    const tok *t = arg_peek(a);
    if (!t) {
        return -1;
    }
    if (t->type == TOK_ATOM) {
        /* Macros (RFC 3501 6.4.5); not allowed inside parentheses. */
        static const int fast[] = {FI_FLAGS, FI_IDATE, FI_SIZE};
        static const int all[] = {FI_FLAGS, FI_IDATE, FI_SIZE, FI_ENVELOPE};
        static const int full[] = {FI_FLAGS, FI_IDATE, FI_SIZE, FI_ENVELOPE, FI_BODYNX};
        const char *s = arg_str(a, a->i);
        const int *m = NULL;
        unsigned mn = 0;
        if (!ascii_casecmp(s, "FAST")) {
            m = fast;
            mn = 3;
        } else if (!ascii_casecmp(s, "ALL")) {
            m = all;
            mn = 4;
        } else if (!ascii_casecmp(s, "FULL")) {
            m = full;
            mn = 5;
        }
        if (m) {
            a->i++;
            for (unsigned i = 0; i < mn; i++) {
                if (!add_item(items, n, m[i])) {
                    return -1;
                }
            }
            return 0;
        }
        return parse_one_item(a, items, n);
    }
    if (arg_lparen(a) < 0) {
        return -1;
    }
    while (arg_peek(a) && arg_peek(a)->type != TOK_RPAREN) {
        int r = parse_one_item(a, items, n);
        if (r < 0) {
            return r;
        }
    }
    return arg_rparen(a) < 0 || *n == 0 ? -1 : 0;
}

/* The MIME tree of msg idx: `full` for part numbers and BODYSTRUCTURE,
 * else the root header is enough. */
static int need_tree(imap_sess *s, uint32_t idx, fetch_job *j, int full)
{
    if (j->tree_kind >= (full ? 2 : 1)) {
        return 0;
    }
    mime_tree_free(&j->tree);
    j->tree_kind = 0;
    int rc = mime_tree_get(s->box, idx, full, &j->tree);
    if (rc < 0) {
        return rc;
    }
    j->tree_kind = j->tree.header_only ? 1 : 2;
    j->tree_uid = s->box->msg[idx].uid;
    return 0;
}

/* The renderings the job asks for, of message idx, from the MIME cache
 * into j->rend: 1 if all of them are there (then no tree is built for
 * them), 0 if not. Copied because the cache's memory may move while
 * other items of the message are served. */
static int rendered_load(imap_sess *s, uint32_t idx, fetch_job *j)
{
    mime_rendered r;
    if (mime_rendered_get(s->box, idx, &r) < 0 || ((j->rend_want & 1) && !r.env) ||
        ((j->rend_want & 2) && !r.bs)) {
        return 0;
    }
    dbuf_reset(&j->rend);
    if (r.env) {
        dbuf_add(&j->rend, r.env, r.env_len);
    }
    if (r.bs) {
        dbuf_add(&j->rend, r.bs, r.bs_len);
    }
    j->rend_env = r.env ? r.env_len : 0;
    return j->rend.p != NULL;   /* dbuf_add failed: render from the tree */
}

/* "* n FETCH (" without printf's cost (once per message). */
static void out_fetch_open(imap_conn *c, uint32_t seq)
{
    char b[32] = "* ";
    size_t k = 2;
    char d[10];
    size_t nd = 0;
    do {
        d[nd++] = (char)('0' + seq % 10);
        seq /= 10;
    } while (seq);
    while (nd) {
        b[k++] = d[--nd];
    }
    memcpy(b + k, " FETCH (", 8);
    out_write(c, b, k + 8);
}

/* Skip n wire bytes of a reader by reading them (LF on disk, CRLF on the
 * wire: offsets differ, so only a seek point says where a wire offset is
 * on disk; reader_at() gets close with one first). */
static int reader_skip(st_reader *rd, uint64_t n)
{
    char buf[SLICE];
    while (n > 0) {
        long k = st_reader_read(rd, buf, n < sizeof buf ? (size_t)n : sizeof buf);
        if (k <= 0) {
            return k < 0 ? (int)k : ST_EIO;
        }
        n -= (uint64_t)k;
    }
    return 0;
}

/* Open a reader on message idx for wire offset `at`: started at the seek
 * point of tree t (may be NULL) nearest before it, so only the bytes from
 * there (at most MIME_SEEK_EVERY of disk) are read and skipped; *skip
 * gets their count. */
static int reader_at(imap_sess *s, uint32_t idx, const mime_tree *t, uint64_t at, st_reader *rd,
                     uint64_t *skip)
{
    int rc = st_reader_open(rd, s->box, idx);
    if (rc < 0) {
        return rc;
    }
    *skip = at;
    if (t && t->nseek && at <= UINT32_MAX) {
        st_seekpt pt;
        mime_seek_point(t, (uint32_t)at, &pt);
        if (pt.wire > 0 && st_reader_seek(rd, &pt) == 0) {
            *skip = at - pt.wire;
        }
    }
    return 0;
}

/* HEADER.FIELDS(.NOT): the matching fields of the header at [off, off+len)
 * with the blank line, in one streaming pass. */
static int filter_fields(imap_sess *s, uint32_t idx, const mime_tree *t, const fitem *it, uint32_t off,
                         uint32_t len, dbuf *out)
{
    st_reader rd;
    uint64_t skip;
    int rc = reader_at(s, idx, t, off, &rd, &skip);
    if (rc < 0) {
        return rc;
    }
    if ((rc = reader_skip(&rd, skip)) < 0) {
        st_reader_close(&rd);
        return rc;
    }
    enum { BOL, NAME, LINE, DONE } st = BOL;
    char name[256];
    size_t nl = 0;
    int match = 0;
    char buf[SLICE];
    uint64_t left = len;
    while (left > 0 && st != DONE) {
        long k = st_reader_read(&rd, buf, left < sizeof buf ? (size_t)left : sizeof buf);
        if (k <= 0) {
            rc = k < 0 ? (int)k : ST_EIO;
            break;
        }
        left -= (uint64_t)k;
        for (long i = 0; i < k && st != DONE; i++) {
            char ch = buf[i];
            if (st == BOL) {
                if (ch == ' ' || ch == '\t') {
                    st = LINE;      /* continuation: same decision */
                } else if (ch == '\r' || ch == '\n') {
                    st = DONE;      /* the blank line: we add our own */
                    break;
                } else {
                    st = NAME;
                    nl = 0;
                    match = 0;
                }
            }
            if (st == NAME) {
                if (nl < sizeof name) {
                    name[nl++] = ch;
                }
                if (ch == ':' || nl == sizeof name || ch == '\n') {
                    size_t n = nl - 1;
                    while (n > 0 && (name[n - 1] == ' ' || name[n - 1] == '\t')) {
                        n--;
                    }
                    int found = 0;
                    for (unsigned f = 0; ch == ':' && f < it->nfields; f++) {
                        if (strlen(it->fields[f]) == n && !ascii_ncasecmp(name, it->fields[f], n)) {
                            found = 1;
                        }
                    }
                    /* A line that is not a field is nobody's to keep. */
                    match = ch == ':' && found == (it->sect == SEC_FIELDS);
                    if (match && out->len + nl < FIELDS_MAX) {
                        dbuf_add(out, name, nl);
                    } else {
                        match = 0;
                    }
                    st = ch == '\n' ? BOL : LINE;
                }
                continue;
            }
            if (match && out->len < FIELDS_MAX) {
                dbuf_addc(out, ch);
            }
            if (ch == '\n') {
                st = BOL;
            }
        }
    }
    st_reader_close(&rd);
    dbuf_add(out, "\r\n", 2);
    return rc < 0 ? rc : 0;
}

/* Write a literal from memory, honouring a partial range. */
static void out_partial_mem(imap_conn *c, const fitem *it, const char *p, size_t n)
{
    size_t off = 0, len = n;
    if (it->partial) {
        off = it->p_off < n ? it->p_off : n;
        len = n - off < it->p_len ? n - off : it->p_len;
    }
    out_printf(c, "{%zu}\r\n", len);
    out_write(c, p + off, len);
}

/* ---- BINARY[] (RFC 3516; RFC 9051 6.4.5) ---- */

/* Bytes read from the store per decoding step. */
#define BIN_IN 8192

/* What BINARY[path] of a message is: a header to send first (hlen; only
 * for BINARY[] of a message whose own body is encoded), then the range
 * [off, off+len) of the message decoded as `enc`. */
typedef struct bin_sect {
    uint32_t hoff, hlen;
    uint32_t off, len;
    int      enc;           /* BIN_* */
} bin_sect;

static int bin_part_enc(const mime_tree *t, uint32_t p)
{
    if (t->part[p].flags & (MIME_PF_MULTIPART | MIME_PF_RFC822)) {
        return BIN_IDENT;   /* RFC 2045 6.4: composites are never encoded */
    }
    size_t n;
    const char *e = mime_get(t, p, MIME_S_ENC, &n);
    return bin_cte(e, e ? n : 0);
}

/* 0, 1 if the part does not exist, or an ST_E* error. */
static int bin_resolve(imap_sess *s, uint32_t idx, fetch_job *j, const fitem *it, bin_sect *b)
{
    int rc = need_tree(s, idx, j, 1);
    if (rc < 0) {
        return rc;
    }
    const mime_tree *t = &j->tree;
    memset(b, 0, sizeof *b);
    if (it->npath == 0) {
        /* The whole message: its header as it is unless the body under it
         * is decoded, and then without the field that says it is not. */
        const mime_part *r = &t->part[0];
        b->len = s->box->msg[idx].size;
        b->enc = bin_part_enc(t, 0);
        if (b->enc == BIN_BASE64 || b->enc == BIN_QP) {
            b->hoff = r->hdr_off;
            b->hlen = r->hdr_len;
            b->off = r->body_off;
            b->len = r->body_len;
        }
        return 0;
    }
    if (mime_section_range(t, it->path, it->npath, MIME_SEC_ALL, &b->off, &b->len) < 0) {
        return 1;
    }
    /* The part whose body that is: the outermost one (a message/rfc822
     * part's body is also its child message's header and body). */
    b->enc = BIN_IDENT;
    for (uint32_t p = 0; p < t->nparts; p++) {
        if (t->part[p].body_off == b->off && t->part[p].body_len == b->len) {
            b->enc = bin_part_enc(t, p);
            break;
        }
    }
    return 0;
}

/* Before "* n FETCH (": -1 if a BINARY item of message idx asks for an
 * encoding we cannot undo. */
static int bin_check(imap_sess *s, uint32_t idx, fetch_job *j)
{
    for (unsigned k = 0; k < j->nitems; k++) {
        bin_sect b;
        if ((j->items[k].kind == FI_BINARY || j->items[k].kind == FI_BINSIZE) &&
            bin_resolve(s, idx, j, &j->items[k], &b) == 0 && b.enc == BIN_UNKNOWN) {
            return -1;
        }
    }
    return 0;
}

/* The decoded size of the section (after `hdr`) and whether it holds a
 * NUL, which only a literal8 may carry. Reads the encoded range once; the
 * client is told the size before the first byte, so there is no other
 * way short of holding the decoded part in memory. */
static int bin_measure(imap_sess *s, uint32_t idx, const mime_tree *t, const bin_sect *b, const dbuf *hdr,
                       uint64_t *size, int *nul)
{
    *size = hdr->len;
    *nul = hdr->len && memchr(hdr->p, 0, hdr->len) != NULL;
    if (b->len == 0) {
        return 0;
    }
    st_reader rd;
    uint64_t skip;
    int rc = reader_at(s, idx, t, b->off, &rd, &skip);
    if (rc < 0) {
        return rc;
    }
    rc = reader_skip(&rd, skip);
    bin_dec d;
    bin_init(&d, b->enc);
    char in[BIN_IN], out[BIN_IN + BIN_SLACK];
    for (uint64_t left = b->len; rc == 0 && left > 0;) {
        long k = st_reader_read(&rd, in, left < sizeof in ? (size_t)left : sizeof in);
        if (k <= 0) {
            rc = k < 0 ? (int)k : ST_EIO;
            break;
        }
        left -= (uint64_t)k;
        size_t o = bin_decode(&d, in, (size_t)k, out);
        if (left == 0) {
            o += bin_finish(&d, out + o);
        }
        *size += o;
        *nul |= o && memchr(out, 0, o) != NULL;
    }
    st_reader_close(&rd);
    return rc;
}

/* Write a BINARY item of message idx. 1: a literal is being streamed by
 * bin_pump (the item is not done yet); 0: the item is written. */
static int bin_start(imap_conn *c, fetch_job *j, imap_sess *s, uint32_t idx, const fitem *it)
{
    bin_sect b;
    dbuf hdr = {0};
    uint64_t size = 0;
    int nul = 0;
    int rc = bin_resolve(s, idx, j, it, &b);
    if (rc == 0 && b.enc == BIN_UNKNOWN) {
        j->unknown_cte = 1;     /* bin_check passed it: changed under us */
        rc = 1;
    }
    if (rc == 0 && b.hlen) {
        static char cte[] = "Content-Transfer-Encoding";
        char *names[1] = {cte};
        fitem f = {.sect = SEC_FIELDS_NOT, .fields = names, .nfields = 1};
        rc = filter_fields(s, idx, &j->tree, &f, b.hoff, b.hlen, &hdr);
        if (rc == 0 && hdr.len >= 2) {
            hdr.len -= 2;   /* before the blank line: say what it is now */
            dbuf_adds(&hdr, "Content-Transfer-Encoding: binary\r\n\r\n");
        }
    }
    if (rc == 0) {
        rc = bin_measure(s, idx, &j->tree, &b, &hdr, &size, &nul);
    }
    if (rc < 0) {
        j->err = rc;
    }
    if (it->kind == FI_BINSIZE) {
        /* No such part has nothing in it. */
        out_printf(c, "%s %llu", it->label, rc == 0 ? (unsigned long long)size : 0ULL);
        dbuf_free(&hdr);
        return 0;
    }
    if (rc != 0) {
        out_printf(c, "%s NIL", it->label);
        dbuf_free(&hdr);
        return 0;
    }
    uint64_t off = 0, len = size;
    if (it->partial) {
        off = it->p_off < size ? it->p_off : size;
        len = size - off < it->p_len ? size - off : it->p_len;
    }
    /* RFC 3516 4.2: a literal8 only when there is a NUL to carry. */
    out_printf(c, "%s %s{%llu}\r\n", it->label, nul ? "~" : "", (unsigned long long)len);
    uint64_t skip = 0;
    if (len > 0 && (rc = reader_at(s, idx, &j->tree, b.off, &j->rd, &skip)) < 0) {
        j->err = rc;
        char sp[256];
        memset(sp, ' ', sizeof sp);
        for (uint64_t left = len; left > 0;) {
            size_t k = left < sizeof sp ? (size_t)left : sizeof sp;
            out_write(c, sp, k);
            left -= k;
        }
    }
    if (len == 0 || rc < 0) {
        dbuf_free(&hdr);
        return 0;
    }
    fetch_bin *fb = &j->bin;
    dbuf_free(&fb->hdr);
    memset(fb, 0, sizeof *fb);
    fb->on = 1;
    bin_init(&fb->dec, b.enc);
    fb->hdr = hdr;
    fb->raw_skip = skip;
    fb->raw_left = b.len;
    fb->skip = off;
    fb->left = len;
    j->rd_open = 1;
    return 1;
}

/* Go on with the BINARY[] literal bin_start began: 1 when it is complete
 * (reader closed), 0 when the output is full. */
static int bin_pump(imap_conn *c, fetch_job *j)
{
    fetch_bin *b = &j->bin;
    char in[BIN_IN], out[BIN_IN + BIN_SLACK];
    while (b->left > 0 && !out_full(c)) {
        const char *p = out;
        size_t k;
        if (b->hdr_pos < b->hdr.len) {
            p = b->hdr.p + b->hdr_pos;
            k = b->hdr.len - b->hdr_pos;
            b->hdr_pos += k;
        } else {
            size_t want = sizeof in;
            uint64_t rem = b->raw_skip ? b->raw_skip : b->raw_left;
            if (want > rem) {
                want = (size_t)rem;
            }
            long n = want ? st_reader_read(&j->rd, in, want) : 0;
            if (n <= 0) {
                /* The store failed or shrank under us: keep the literal's
                 * promise; the tagged reply says NO. */
                j->err = n < 0 ? (int)n : ST_EIO;
                memset(in, ' ', sizeof in);
                while (b->left > 0) {
                    k = b->left < sizeof in ? (size_t)b->left : sizeof in;
                    out_write(c, in, k);
                    b->left -= k;
                }
                break;
            }
            if (b->raw_skip) {
                b->raw_skip -= (uint64_t)n;
                continue;
            }
            b->raw_left -= (uint64_t)n;
            k = bin_decode(&b->dec, in, (size_t)n, out);
            if (b->raw_left == 0) {
                k += bin_finish(&b->dec, out + k);
            }
        }
        size_t drop = b->skip < k ? (size_t)b->skip : k;
        b->skip -= drop;
        p += drop;
        k -= drop;
        if (k > b->left) {
            k = (size_t)b->left;
        }
        out_write(c, p, k);
        b->left -= k;
    }
    if (b->left > 0) {
        return 0;
    }
    st_reader_close(&j->rd);
    j->rd_open = 0;
    b->on = 0;
    dbuf_free(&b->hdr);
    return 1;
}

static void fetch_reply(imap_conn *c, fetch_job *j)
{
    int uid = j->uid;
    int err = j->err, skipped = j->skipped, unknown_cte = j->unknown_cte;
    imap_sess *s = c->sess;
    if (s) {
        int rc = conn_commit(c, s->box, "FETCH");
        if (!err) {
            err = rc;
        }
        s->told_modseq = s->box->highestmodseq;
        view_kick(s->box, s);
    }
    fetch_job_free(c);
    if (s) {
        view_notify(s, uid);
    }
    if (err < 0) {
        reply_st_err(c, err, "FETCH");
    } else if (unknown_cte) {
        reply(c, "NO", "[UNKNOWN-CTE] Cannot decode a Content-Transfer-Encoding for BINARY");
    } else if (skipped) {
        reply(c, "NO", "[EXPUNGEISSUED] Some messages were expunged");
    } else {
        reply(c, "OK", "%sFETCH completed", uid ? "UID " : "");
    }
}

/* Run the job until it finishes or the output is full. 1 = finished. */
static int fetch_step(imap_conn *c)
{
    fetch_job *j = c->fetch;
    imap_sess *s = c->sess;
    char buf[SLICE];
    while (j->cur < j->n) {
        if (out_full(c)) {
            return 0;
        }
        /* Messages go in index order: the next one is usually the
         * entry after the last (a binary search per message otherwise). */
        uint32_t wuid = j->uids[j->cur];
        long li = j->last_idx + 1 < s->box->count && s->box->msg[j->last_idx + 1].uid == wuid
                      ? (long)j->last_idx + 1
                      : st_box_find(s->box, wuid);
        if (li >= 0) {
            j->last_idx = (uint32_t)li;
        }
        /* A message another session expunged while this FETCH runs is
         * still served: this session has not been told, the entry and its
         * bytes stay until it has (view.c holds back the purge). */
        if (li < 0 || (!j->started && !view_visible(s, (uint32_t)li))) {
            if (j->started) {
                /* Gone while streaming (cannot happen while we hold back
                 * the purge, but never index a stale slot). */
                if (j->rd_open) {
                    st_reader_close(&j->rd);
                    j->rd_open = 0;
                }
                out_puts(c, ")\r\n");
                j->started = 0;
                j->item = 0;
            }
            j->skipped++;
            j->cur++;
            continue;
        }
        uint32_t idx = (uint32_t)li;
        if (j->rd_open && j->bin.on) {
            if (!bin_pump(c, j)) {
                return 0;
            }
            j->item++;
        }
        /* Streaming a body? */
        if (j->rd_open) {
            while (j->left > 0 && !out_full(c)) {
                size_t want = sizeof buf;
                if (j->skip == 0 && want > j->left) {
                    want = (size_t)j->left;
                }
                long n = st_reader_read(&j->rd, buf, want);
                if (n <= 0) {
                    /* The store failed under us: keep the literal's promise. */
                    if (n < 0) {
                        j->err = (int)n;
                    }
                    memset(buf, ' ', sizeof buf);
                    while (j->left > 0) {
                        size_t k = j->left < sizeof buf ? (size_t)j->left : sizeof buf;
                        out_write(c, buf, k);
                        j->left -= k;
                    }
                    break;
                }
                size_t off = 0;
                if (j->skip) {
                    off = (uint64_t)n < j->skip ? (size_t)n : (size_t)j->skip;
                    j->skip -= off;
                }
                size_t k = (size_t)n - off;
                if (k > j->left) {
                    k = (size_t)j->left;
                }
                out_write(c, buf + off, k);
                j->left -= k;
            }
            if (j->left > 0) {
                return 0;
            }
            st_reader_close(&j->rd);
            j->rd_open = 0;
            j->item++;
        }
        st_msg *m = &s->box->msg[idx];
        if (j->bg && j->bg_uid != m->uid) {
            mime_bg_free(j->bg);    /* its message went away meanwhile */
            j->bg = NULL;
        }
        if (!j->started && j->rend_want && j->rend_uid != m->uid) {
            /* ENVELOPE / BODYSTRUCTURE as kept rendered in the cache: a
             * copy, no tree (a repeated FETCH 1:* BODYSTRUCTURE). */
            j->rend_uid = m->uid;
            j->rend_ok = rendered_load(s, idx, j);
        }
        if (!j->started && j->needs_full && (j->tree_other || !j->rend_ok) &&
            (j->tree_kind < 2 || j->tree_uid != m->uid)) {
            /* The full tree before the response starts: a big unparsed
             * message is read a slice per loop turn (c->wake_at brings us
             * back next turn), so other clients are served meanwhile. A
             * failure here is met again, and reported, by need_tree(). */
            int rc = 0;
            if (!j->bg) {
                mime_tree_free(&j->tree);
                j->tree_kind = 0;
                rc = mime_tree_begin(s->box, idx, &j->bg, &j->tree);
                j->bg_uid = m->uid;
            }
            if (j->bg) {
                rc = mime_bg_step(j->bg, &j->tree);
                if (rc == 0) {
                    c->wake_at = port_now_ms();
                    return 0;
                }
                j->bg = NULL;   /* freed by the last step */
            }
            if (rc == 1) {
                j->tree_kind = 2;
                j->tree_uid = m->uid;
            }
        }
        if (!j->started) {
            j->started = 1;
            if (j->tree_uid != m->uid) {
                mime_tree_free(&j->tree);
                j->tree_kind = 0;
            }
            j->add_flags = 0;
            if (bin_check(s, idx, j) < 0) {
                /* RFC 3516 4.2: NO [UNKNOWN-CTE], and nothing of this
                 * message (not even \Seen). */
                j->unknown_cte = 1;
                j->started = 0;
                j->cur++;
                continue;
            }
            out_fetch_open(c, view_idx2seq(s, idx));
            int has_flags = 0, sets_seen = 0;
            for (unsigned k = 0; k < j->nitems; k++) {
                has_flags |= j->items[k].kind == FI_FLAGS;
                sets_seen |= (j->items[k].kind == FI_BODY || j->items[k].kind == FI_BINARY) && !j->items[k].peek;
            }
            if (sets_seen && !s->readonly && !(m->flags & ST_F_SEEN)) {
                int rc = st_set_flags(s->box, idx, (uint8_t)(m->flags | ST_F_SEEN), m->kw);
                if (rc < 0) {
                    j->err = rc;
                }
                m = &s->box->msg[idx];
                j->add_flags = !has_flags;
            }
            if (j->uid) {
                /* UID FETCH always reports the UID (RFC 3501 6.4.8). */
                int has_uid = 0;
                for (unsigned k = 0; k < j->nitems; k++) {
                    has_uid |= j->items[k].kind == FI_UID;
                }
                if (!has_uid) {
                    out_printf(c, "UID %u", m->uid);
                    if (j->nitems || j->add_flags) {
                        out_puts(c, " ");
                    }
                }
            }
        }
        while (j->item < j->nitems) {
            fitem *it = &j->items[j->item];
            if (j->item > 0) {
                out_puts(c, " ");
            }
            switch (it->kind) {
            case FI_FLAGS:
                out_puts(c, "FLAGS ");
                view_out_flags(s, idx);
                break;
            case FI_UID:
                out_printf(c, "UID %u", m->uid);
                break;
            case FI_IDATE: {
                char d[32];
                format_date_time(m->idate, m->tz, d);
                out_printf(c, "INTERNALDATE \"%s\"", d);
                break;
            }
            case FI_SIZE:
                out_printf(c, "RFC822.SIZE %u", m->size);
                break;
            case FI_BINARY:
            case FI_BINSIZE:
                if (bin_start(c, j, s, idx, it)) {
                    goto next_round;   /* streams; item++ when done */
                }
                break;
            case FI_MODSEQ:
                out_printf(c, "MODSEQ (%llu)", (unsigned long long)ext_modseq(m->modseq));
                break;
            case FI_ENVELOPE:
            case FI_BODYSTRUCTURE:
            case FI_BODYNX: {
                static const char *const names[] = {"ENVELOPE ", "BODYSTRUCTURE ", "BODY "};
                out_puts(c, names[it->kind - FI_ENVELOPE]);
                if (it->kind != FI_BODYNX && j->rend_ok && j->rend_uid == m->uid) {
                    if (it->kind == FI_ENVELOPE) {
                        out_write(c, j->rend.p, j->rend_env);
                    } else {
                        out_write(c, j->rend.p + j->rend_env, j->rend.len - j->rend_env);
                    }
                    break;
                }
                int rc = need_tree(s, idx, j, it->kind != FI_ENVELOPE);
                if (rc < 0) {
                    /* Keep the response well-formed; the tagged reply says NO. */
                    j->err = rc;
                    out_puts(c, it->kind == FI_ENVELOPE ? "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
                                                        : "(\"text\" \"plain\" NIL NIL NIL \"7bit\" 0 0)");
                    break;
                }
                dbuf *o = &j->render;
                dbuf_reset(o);
                if (it->kind == FI_ENVELOPE) {
                    mime_out_envelope(o, &j->tree, 0);
                } else {
                    mime_out_body(o, &j->tree, 0, it->kind == FI_BODYSTRUCTURE);
                }
                out_write(c, o->p, o->len);
                if (o->cap > (16u << 10)) {
                    dbuf_free(o);   /* a huge one is not kept for the rest */
                }
                break;
            }
            case FI_BODY: {
                out_printf(c, "%s ", it->label);
                uint32_t start = 0, total = m->size;
                if (it->npath || it->sect != SEC_ALL) {
                    static const int kinds[] = {
                        [SEC_ALL] = MIME_SEC_ALL, [SEC_HEADER] = MIME_SEC_HEADER,
                        [SEC_TEXT] = MIME_SEC_TEXT, [SEC_FIELDS] = MIME_SEC_HEADER,
                        [SEC_FIELDS_NOT] = MIME_SEC_HEADER, [SEC_MIME] = MIME_SEC_MIME,
                    };
                    int rc = need_tree(s, idx, j, it->npath > 0);
                    if (rc < 0) {
                        j->err = rc;
                        out_puts(c, "NIL");
                        break;
                    }
                    if (mime_section_range(&j->tree, it->path, it->npath, kinds[it->sect], &start, &total) < 0) {
                        out_puts(c, "NIL");     /* no such part */
                        break;
                    }
                }
                if (it->sect == SEC_FIELDS || it->sect == SEC_FIELDS_NOT) {
                    dbuf f = {0};
                    int rc = filter_fields(s, idx, j->tree_kind ? &j->tree : NULL, it, start, total, &f);
                    if (rc < 0) {
                        j->err = rc;
                    }
                    out_partial_mem(c, it, f.p, f.len);
                    dbuf_free(&f);
                    break;
                }
                /* A range of the message: stream it from the store. */
                uint64_t off = 0, len = total;
                if (it->partial) {
                    off = it->p_off < total ? it->p_off : total;
                    len = total - off < it->p_len ? total - off : it->p_len;
                }
                out_printf(c, "{%llu}\r\n", (unsigned long long)len);
                if (len == 0) {
                    break;
                }
                if (start + off >= mime_seek_every && j->tree_kind < 2) {
                    /* Far into the message: the full tree has seek points
                     * (parsed once, then cached), so this and every later
                     * partial of the message starts near its origin
                     * instead of reading everything before it. Without
                     * it the bytes are simply read and skipped. */
                    need_tree(s, idx, j, 1);
                }
                uint64_t skip = 0;
                int rc = reader_at(s, idx, j->tree_kind ? &j->tree : NULL, start + off, &j->rd, &skip);
                if (rc < 0) {
                    j->err = rc;
                    j->rd_open = 0;
                    char sp[256];
                    memset(sp, ' ', sizeof sp);
                    for (uint64_t left = len; left > 0;) {
                        size_t k = left < sizeof sp ? (size_t)left : sizeof sp;
                        out_write(c, sp, k);
                        left -= k;
                    }
                    break;
                }
                j->rd_open = 1;
                j->skip = skip;
                j->left = len;
                /* Continue streaming in the outer loop; item++ happens
                 * when the body is done. */
                goto next_round;
            }
            }
            j->item++;
        }
        if (j->add_flags) {
            out_puts(c, j->nitems ? " FLAGS " : "FLAGS ");
            view_out_flags(s, idx);
            if ((c->ext_on & EXT_CONDSTORE) && !j->has_modseq) {
                out_printf(c, " MODSEQ (%llu)", (unsigned long long)ext_modseq(m->modseq));
            }
        }
        out_puts(c, ")\r\n");
        j->started = 0;
        j->item = 0;
        j->cur++;
    next_round:;
    }
    fetch_reply(c, j);
    return 1;
}

static int fetch_cont(imap_conn *c)
{
    int done = fetch_step(c);
    if (done) {
        free(c->tag);
        c->tag = NULL;
    }
    return done;
}

void cmd_fetch(imap_conn *c, args *a, int uid)
{
    imap_sess *s = c->sess;
    const char *set_s;
    uint32_t set_l;
    if (arg_atom(a, &set_s, &set_l) < 0) {
        reply(c, "BAD", "Usage: FETCH set items");
        return;
    }
    fetch_job *j = calloc(1, sizeof *j);
    if (!j) {
        reply(c, "NO", "[SERVERBUG] Out of memory");
        return;
    }
    int r = parse_items(a, &j->items, &j->nitems);
    uint64_t since = 0;
    int changedsince = 0, vanished = 0;
    if (r == 0 && CONFIG_EXT_CONDSTORE && arg_lparen(a) == 0) {
        /* Modifiers (RFC 7162): CHANGEDSINCE n [VANISHED] */
        const char *ms;
        uint32_t ml;
        while (r == 0 && arg_atom(a, &ms, &ml) == 0) {
            if (!ascii_casecmp(ms, "CHANGEDSINCE") && arg_atom(a, &ms, &ml) == 0 &&
                parse_u64(ms, ml, &since) == 0) {
                changedsince = 1;
            } else if (CONFIG_EXT_QRESYNC && uid && !ascii_casecmp(ms, "VANISHED") &&
                       (c->ext_on & EXT_QRESYNC)) {
                vanished = 1;
            } else {
                r = -1;
            }
        }
        if (arg_rparen(a) < 0 || (vanished && !changedsince)) {
            r = -1;
        }
    }
    if (r == 0 && arg_end(a) < 0) {
        r = -1;
    }
    for (unsigned k = 0; r == 0 && k < j->nitems; k++) {
        const fitem *it = &j->items[k];
        j->has_modseq |= it->kind == FI_MODSEQ;
        j->tree_other |= it->kind == FI_BODYNX ||
                         (it->kind == FI_BODY && (it->npath > 0 || (it->partial && it->p_off >= mime_seek_every)));
        j->needs_full |= it->kind == FI_BODYSTRUCTURE || j->tree_other;
        j->rend_want |= it->kind == FI_ENVELOPE ? 1 : it->kind == FI_BODYSTRUCTURE ? 2 : 0;
    }
    if (r == 0 && changedsince && !j->has_modseq) {
        /* CHANGEDSINCE implies MODSEQ (RFC 7162 3.1.4.1). */
        r = add_item(&j->items, &j->nitems, FI_MODSEQ) ? 0 : -1;
        j->has_modseq = 1;
    }
    if (r == 0 && j->has_modseq) {
        c->ext_on |= EXT_CONDSTORE;
    }
    if (r < 0) {
        items_free(j->items, j->nitems);
        free(j);
        reply(c, "BAD", r == -2 ? "FETCH item not supported yet" : "Invalid FETCH items");
        return;
    }
    /* Pending updates first, so "*" means the mailbox as the client will
     * know it once this command's responses are read. */
    view_notify(s, uid);
    seqset set;
    uint32_t star = s->exists;
    if (uid) {
        star = 0;
        for (uint32_t i = s->box->count; i-- > 0;) {
            if (view_visible(s, i)) {
                star = s->box->msg[i].uid;
                break;
            }
        }
        if (!star) {
            star = s->uidmax ? s->uidmax : 1;
        }
    }
    if (ext_msgset(s, set_s, set_l, uid, star, &set) < 0 ||
        (!uid && !set.dollar && (s->exists == 0 || set.r[set.n - 1][1] > s->exists))) {
        seqset_free(&set);
        items_free(j->items, j->nitems);
        free(j);
        reply(c, "BAD", "Invalid message set");
        return;
    }
    j->uid = uid;
    j->uids = malloc((s->box->count ? s->box->count : 1) * sizeof *j->uids);
    if (!j->uids) {
        seqset_free(&set);
        items_free(j->items, j->nitems);
        free(j);
        reply(c, "NO", "[SERVERBUG] Out of memory");
        return;
    }
    for (uint32_t i = 0; i < s->box->count; i++) {
        if (!view_visible(s, i)) {
            continue;
        }
        uint32_t key = uid ? s->box->msg[i].uid : view_idx2seq(s, i);
        if (seqset_has(&set, key) && (!changedsince || s->box->msg[i].modseq > since)) {
            j->uids[j->n++] = s->box->msg[i].uid;
        }
    }
    if (vanished) {
        /* "*" reaches UIDNEXT here: 1:* asks for every UID gone. */
        seqset vset;
        if (memchr(set_s, '*', set_l) && seqset_parse(&vset, set_s, set_l, UINT32_MAX) == 0) {
            ext_vanished_earlier(c, s->box, since, &vset);
            seqset_free(&vset);
        } else {
            ext_vanished_earlier(c, s->box, since, &set);
        }
    }
    seqset_free(&set);
    fetch_job_free(c);
    c->fetch = j;
    if (!fetch_step(c)) {
        /* Finish later, as the client reads. Keep our own copy of the tag. */
        c->tag = xstrdup(c->tag);
        c->cont = fetch_cont;
    }
}
