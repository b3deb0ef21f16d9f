/*
 * fetch.c -- FETCH and UID FETCH.
 *
 * A FETCH becomes a job: the list of messages and the parsed items. The
 * job writes one message at a time and streams bodies in slices; when the
 * connection's output passes its high-water mark the job pauses (c->cont)
 * and resumes when the client has read, so a 50 MB body never sits in
 * memory and never delays other clients.
 */
#include "cmd.h"

#include <stdlib.h>
#include <string.h>

#define SLICE 16384         /* bytes read from the store per step */
#define HEADER_MAX (8u << 20) /* a header larger than this is served raw */

enum {
    FI_FLAGS = 1, FI_UID, FI_IDATE, FI_SIZE, FI_BODY,
};
enum {
    SEC_ALL = 0, SEC_HEADER, SEC_TEXT, SEC_FIELDS, SEC_FIELDS_NOT,
};

typedef struct fitem {
    uint8_t  kind;      /* FI_* */
    uint8_t  sect;      /* SEC_* for FI_BODY */
    uint8_t  peek;      /* does not set \Seen */
    uint8_t  partial;   /* <origin.octets> given */
    uint32_t p_off, p_len;
    char   **fields;    /* HEADER.FIELDS names */
    unsigned nfields;
    char    *label;     /* response item name, e.g. "BODY[HEADER]" */
} fitem;

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
    uint64_t  skip, left;   /* bytes to skip, then to send */
    dbuf      hdr;          /* header of the current message, when needed */
    int       hdr_loaded;
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
    dbuf_free(&j->hdr);
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

/* Parse "BODY[...]<...>" style items; `s` starts after "BODY[" or
 * "BODY.PEEK[". The section may continue over a parenthesized list of
 * header names in the following tokens. Returns 0 or -1. */
static int parse_section(args *a, fitem *it, const char *s, const char *prefix)
{
    dbuf lab = {0};
    dbuf_adds(&lab, prefix);
    const char *close = strchr(s, ']');
    const char *sec = s;
    size_t sl = close ? (size_t)(close - s) : strlen(s);
    int ok = 0;
    if (sl == 0) {
        it->sect = SEC_ALL;
        ok = close != NULL;
    } else if (sl == 6 && !ascii_ncasecmp(sec, "HEADER", 6)) {
        it->sect = SEC_HEADER;
        ok = close != NULL;
    } else if (sl == 4 && !ascii_ncasecmp(sec, "TEXT", 4)) {
        it->sect = SEC_TEXT;
        ok = close != NULL;
    } else if (!close && (!ascii_casecmp(sec, "HEADER.FIELDS") || !ascii_casecmp(sec, "HEADER.FIELDS.NOT"))) {
        it->sect = sec[13] ? SEC_FIELDS_NOT : SEC_FIELDS;
        dbuf_adds(&lab, it->sect == SEC_FIELDS ? "HEADER.FIELDS (" : "HEADER.FIELDS.NOT (");
        if (arg_lparen(a) < 0) {
            dbuf_free(&lab);
            return -1;
        }
        const char *f;
        uint32_t fl;
        while (arg_astring(a, &f, &fl) == 0) {
            char **nf = realloc(it->fields, (it->nfields + 1) * sizeof *nf);
            if (!nf) {
                dbuf_free(&lab);
                return -1;
            }
            it->fields = nf;
            it->fields[it->nfields++] = xstrndup(f, fl);
            dbuf_printf(&lab, "%s%s", it->nfields > 1 ? " " : "", it->fields[it->nfields - 1]);
        }
        if (arg_rparen(a) < 0 || it->nfields == 0) {
            dbuf_free(&lab);
            return -1;
        }
        dbuf_adds(&lab, ")");
        /* The closing "]" and any partial come as the next atom. */
        const char *r;
        uint32_t rl;
        if (arg_atom(a, &r, &rl) < 0 || r[0] != ']') {
            dbuf_free(&lab);
            return -1;
        }
        close = r;
        ok = 1;
        sec = NULL;
    }
    if (!ok) {
        dbuf_free(&lab);
        return -1;
    }
    if (sec) {
        for (size_t i = 0; i < sl; i++) {
            dbuf_addc(&lab, (char)ascii_upper((unsigned char)sec[i]));
        }
    }
    dbuf_adds(&lab, "]");
    const char *rest = close + 1;
    if (*rest == '<') {
        const char *dot = strchr(rest, '.');
        const char *gt = strchr(rest, '>');
        if (!dot || !gt || dot > gt || gt[1] != 0 ||
            parse_u32(rest + 1, (size_t)(dot - rest - 1), &it->p_off) < 0 ||
            parse_u32(dot + 1, (size_t)(gt - dot - 1), &it->p_len) < 0 || it->p_len == 0) {
            dbuf_free(&lab);
            return -1;
        }
        it->partial = 1;
        dbuf_printf(&lab, "<%u>", it->p_off);
    } else if (*rest) {
        dbuf_free(&lab);
        return -1;
    }
    it->label = lab.p;
    return 0;
}

static int parse_one_item(args *a, fitem **items, unsigned *n)
{
    const char *s;
    uint32_t sl;
    if (arg_atom(a, &s, &sl) < 0) {
        return -1;
    }
    fitem *it;
    if (!ascii_casecmp(s, "FLAGS")) {
        return add_item(items, n, FI_FLAGS) ? 0 : -1;
    }
    if (!ascii_casecmp(s, "UID")) {
        return add_item(items, n, FI_UID) ? 0 : -1;
    }
    if (!ascii_casecmp(s, "INTERNALDATE")) {
        return add_item(items, n, FI_IDATE) ? 0 : -1;
    }
    if (!ascii_casecmp(s, "RFC822.SIZE")) {
        return add_item(items, n, FI_SIZE) ? 0 : -1;
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
    return -2;   /* not known (yet): ENVELOPE, BODYSTRUCTURE, ... */
}

static int parse_items(args *a, fitem **items, unsigned *n)
{
    const tok *t = arg_peek(a);
    if (!t) {
        return -1;
    }
    if (t->type == TOK_ATOM) {
        const char *s = arg_str(a, a->i);
        static const char *const fast[] = {"FLAGS", "INTERNALDATE", "RFC822.SIZE"};
        if (!ascii_casecmp(s, "FAST")) {
            a->i++;
            for (int i = 0; i < 3; i++) {
                fitem *it = add_item(items, n, i == 0 ? FI_FLAGS : i == 1 ? FI_IDATE : FI_SIZE);
                if (!it) {
                    return -1;
                }
                (void)fast;
            }
            return 0;
        }
        if (!ascii_casecmp(s, "ALL") || !ascii_casecmp(s, "FULL")) {
            return -2;  /* need ENVELOPE (MIME support) */
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

/* Read the header of msg idx (through the blank line) into j->hdr. */
static int load_header(imap_sess *s, uint32_t idx, fetch_job *j)
{
    if (j->hdr_loaded) {
        return 0;
    }
    dbuf_reset(&j->hdr);
    st_reader rd;
    int rc = st_reader_open(&rd, s->box, idx);
    if (rc < 0) {
        return rc;
    }
    char buf[4096];
    size_t scanned = 0;
    for (;;) {
        long n = st_reader_read(&rd, buf, sizeof buf);
        if (n < 0) {
            st_reader_close(&rd);
            return (int)n;
        }
        if (n == 0) {
            break;
        }
        if (dbuf_add(&j->hdr, buf, (size_t)n) < 0) {
            st_reader_close(&rd);
            return ST_ENOMEM;
        }
        /* Look for the blank line from slightly before the new bytes. */
        size_t from = scanned > 3 ? scanned - 3 : 0;
        const char *p = j->hdr.p;
        size_t end = 0;
        if (j->hdr.len >= 2 && from == 0 && p[0] == '\r' && p[1] == '\n') {
            end = 2;  /* no header at all */
        }
        for (size_t i = from; !end && i + 3 < j->hdr.len; i++) {
            if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') {
                end = i + 4;
            }
        }
        scanned = j->hdr.len;
        if (end) {
            j->hdr.len = end;
            j->hdr.p[end] = 0;
            break;
        }
        if (j->hdr.len > HEADER_MAX) {
            break;
        }
    }
    st_reader_close(&rd);
    j->hdr_loaded = 1;
    return 0;
}

/* Header fields of hdr matching (or not) the list, with the blank line. */
static void filter_fields(const dbuf *hdr, const fitem *it, dbuf *out)
{
    const char *p = hdr->p, *end = hdr->p + hdr->len;
    while (p < end) {
        /* One field: a line and its continuation lines. */
        const char *q = p;
        do {
            const char *lf = memchr(q, '\n', (size_t)(end - q));
            q = lf ? lf + 1 : end;
        } while (q < end && (*q == ' ' || *q == '\t'));
        const char *colon = memchr(p, ':', (size_t)(q - p));
        if (colon && p[0] != '\r') {
            size_t nl = (size_t)(colon - p);
            while (nl > 0 && (p[nl - 1] == ' ' || p[nl - 1] == '\t')) {
                nl--;
            }
            int match = 0;
            for (unsigned k = 0; k < it->nfields; k++) {
                if (strlen(it->fields[k]) == nl && !ascii_ncasecmp(p, it->fields[k], nl)) {
                    match = 1;
                }
            }
            if (match == (it->sect == SEC_FIELDS)) {
                dbuf_add(out, p, (size_t)(q - p));
            }
        }
        p = q;
    }
    dbuf_add(out, "\r\n", 2);
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

static void fetch_reply(imap_conn *c, fetch_job *j)
{
    int uid = j->uid;
    int err = j->err, skipped = j->skipped;
    imap_sess *s = c->sess;
    if (s) {
        int rc = st_box_commit(s->box);
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
        long li = st_box_find(s->box, j->uids[j->cur]);
        if (li < 0 || (!j->started && ((s->box->msg[li].flags & ST_F_EXPUNGED) || !view_visible(s, (uint32_t)li)))) {
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
        if (!j->started) {
            j->started = 1;
            j->hdr_loaded = 0;
            j->add_flags = 0;
            out_printf(c, "* %u FETCH (", view_idx2seq(s, idx));
            int has_flags = 0, sets_seen = 0;
            for (unsigned k = 0; k < j->nitems; k++) {
                has_flags |= j->items[k].kind == FI_FLAGS;
                sets_seen |= j->items[k].kind == FI_BODY && !j->items[k].peek;
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
            case FI_BODY: {
                out_printf(c, "%s ", it->label);
                if (it->sect == SEC_HEADER || it->sect == SEC_FIELDS || it->sect == SEC_FIELDS_NOT || it->sect == SEC_TEXT) {
                    int rc = load_header(s, idx, j);
                    if (rc < 0) {
                        j->err = rc;
                        out_puts(c, "NIL");
                        break;
                    }
                }
                if (it->sect == SEC_HEADER) {
                    out_partial_mem(c, it, j->hdr.p, j->hdr.len);
                    break;
                }
                if (it->sect == SEC_FIELDS || it->sect == SEC_FIELDS_NOT) {
                    dbuf f = {0};
                    filter_fields(&j->hdr, it, &f);
                    out_partial_mem(c, it, f.p, f.len);
                    dbuf_free(&f);
                    break;
                }
                /* Whole message or text: stream from the store. */
                uint64_t start = it->sect == SEC_TEXT ? (j->hdr.len < m->size ? j->hdr.len : m->size) : 0;
                uint64_t total = m->size - start;
                uint64_t off = 0, len = total;
                if (it->partial) {
                    off = it->p_off < total ? it->p_off : total;
                    len = total - off < it->p_len ? total - off : it->p_len;
                }
                out_printf(c, "{%llu}\r\n", (unsigned long long)len);
                if (len == 0) {
                    break;
                }
                int rc = st_reader_open(&j->rd, s->box, idx);
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
                j->skip = start + off;
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
    if (r == 0 && arg_end(a) < 0) {
        r = -1;
    }
    if (r < 0) {
        items_free(j->items, j->nitems);
        free(j);
        reply(c, "BAD", r == -2 ? "FETCH item not supported yet" : "Invalid FETCH items");
        return;
    }
    /* The set: reparse against this session's view. */
    a->i = 2 + (uid ? 1 : 0);
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
    if (seqset_parse(&set, set_s, set_l, star) < 0 ||
        (!uid && (s->exists == 0 || set.r[set.n - 1][1] > s->exists))) {
        seqset_free(&set);
        items_free(j->items, j->nitems);
        free(j);
        reply(c, "BAD", "Invalid message set");
        return;
    }
    view_notify(s, uid);
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
        if (seqset_has(&set, key)) {
            j->uids[j->n++] = s->box->msg[i].uid;
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
