/*
 * tools.c -- messages from outside (local delivery, LMTP, import) and the
 * store's admin tools: import of an mbox file or a Maildir, export as
 * Maildir++, check.
 *
 * st_msgin turns a message as an MTA or another store hands it over (LF or
 * CRLF line ends, maybe an mbox envelope line, maybe mboxrd quoting) into
 * wire form for st_append, and drops the headers that carry our state
 * (X-UID, Status, X-Status, X-Keywords) from the header section: a sender
 * must not be able to set flags or a UID by putting them in a message.
 * Bytes stream through; only the start of each line is held (ST_IN_PFX).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "st_int.h"

/* Bytes of a line start held back to decide its fate: longer than every
 * header name we drop and than any sane ">>>From " quote run. */
#define ST_IN_PFX 64

struct st_msgin {
    st_append *a;
    int mode;          /* ST_IN_* */
    int first;         /* on the first line */
    int hdr;           /* in the header section */
    int skip;          /* dropping a header and its continuation lines */
    int decided;       /* the current line passes (1) or is dropped (2) */
    int cr;            /* a CR is held: "\r\n" if an LF follows */
    char pfx[ST_IN_PFX];
    size_t npfx;       /* bytes in pfx (the current line's start) */
    char out[4096];    /* batches st_append_data calls */
    size_t nout;
    int err;
};

static void in_flush(st_msgin *m)
{
    if (!m->err && m->nout) {
        m->err = st_append_data(m->a, m->out, m->nout);
    }
    m->nout = 0;
}

/* One byte of a passing line, LF -> CRLF (a CR before an LF stays one). */
static void in_out(st_msgin *m, char c)
{
    if (m->nout + 3 > sizeof m->out) {
        in_flush(m);
    }
    if (m->cr) {
        m->cr = 0;
        if (c == '\n') {
            m->out[m->nout++] = '\r';
            m->out[m->nout++] = '\n';
            return;
        }
        m->out[m->nout++] = '\r';
    }
    if (c == '\r') {
        m->cr = 1;
    } else if (c == '\n') {
        m->out[m->nout++] = '\r';
        m->out[m->nout++] = '\n';
    } else {
        m->out[m->nout++] = c;
    }
}

static int hdr_is(const char *p, size_t n, const char *name)
{
    size_t l = strlen(name);
    return n >= l && strncasecmp(p, name, l) == 0;
}

/* Decide the current line from its start; eol: the line ended in pfx. */
static void in_decide(st_msgin *m, int eol)
{
    const char *p = m->pfx;
    size_t n = m->npfx;
    size_t body = n;  /* bytes without the line end */
    if (eol && body && p[body - 1] == '\n') {
        body--;
    }
    if (eol && body && p[body - 1] == '\r') {
        body--;
    }
    int drop = 0, unquote = 0;
    if (m->first && (m->mode & ST_IN_ENVELOPE) && hdr_is(p, n, "From ")) {
        drop = 1;
    } else if (m->hdr) {
        if (body == 0) {
            m->hdr = 0; /* the blank line ending the header section */
            m->skip = 0;
        } else if (p[0] == ' ' || p[0] == '\t') {
            drop = m->skip;
        } else {
            m->skip = hdr_is(p, n, "X-UID:") || hdr_is(p, n, "Status:") ||
                      hdr_is(p, n, "X-Status:") || hdr_is(p, n, "X-Keywords:");
            drop = m->skip;
        }
    }
    if (!drop && (m->mode & ST_IN_MBOXRD) && n && p[0] == '>') {
        size_t i = 0;
        while (i < n && p[i] == '>') {
            i++;
        }
        unquote = hdr_is(p + i, n - i, "From ");
    }
    m->first = 0;
    m->decided = drop ? 2 : 1;
    if (!drop) {
        for (size_t i = unquote ? 1 : 0; i < n; i++) {
            in_out(m, p[i]);
        }
    }
    m->npfx = 0;
}

/* Enough of the line start to decide? */
static int in_enough(const st_msgin *m)
{
    if (m->npfx == ST_IN_PFX) {
        return 1;
    }
    if ((m->mode & ST_IN_MBOXRD) && m->npfx && m->pfx[0] == '>') {
        size_t i = 0;
        while (i < m->npfx && m->pfx[i] == '>') {
            i++;
        }
        return m->npfx - i >= 5;
    }
    return m->npfx >= 16;
}

int st_msgin_data(st_msgin *m, const void *data, size_t n)
{
    const char *p = data;
    for (size_t i = 0; i < n && !m->err; i++) {
        char c = p[i];
        if (m->decided) {
            if (m->decided == 1) {
                in_out(m, c);
            }
            if (c == '\n') {
                m->decided = 0;
            }
            continue;
        }
        m->pfx[m->npfx++] = c;
        if (c == '\n') {
            in_decide(m, 1);
            m->decided = 0;
        } else if (in_enough(m)) {
            in_decide(m, 0);
        }
    }
    return m->err;
}

int st_msgin_begin(st_box *b, int64_t idate, int tz, uint8_t flags, uint64_t kw,
                   int mode, st_msgin **out)
{
    st_msgin *m = calloc(1, sizeof *m);
    if (!m) {
        return ST_ENOMEM;
    }
    int r = st_append_begin(b, idate, tz, flags, kw, 0, &m->a);
    if (r) {
        free(m);
        return r;
    }
    m->mode = mode;
    m->first = 1;
    m->hdr = 1;
    *out = m;
    return 0;
}

void st_msgin_abort(st_msgin *m)
{
    if (m) {
        st_append_abort(m->a);
        free(m);
    }
}

int st_msgin_end(st_msgin *m, uint32_t *uid)
{
    if (!m->err && m->npfx) {
        in_decide(m, 1); /* a last line without a line end */
    }
    if (!m->err && m->cr) {
        m->cr = 0;
        m->out[m->nout++] = '\r';
    }
    in_flush(m);
    int r = m->err;
    if (r) {
        st_msgin_abort(m);
        return r;
    }
    r = st_append_end(m->a, uid);
    free(m);
    return r;
}

/* ---------------- import ---------------- */

typedef struct imp_ctx {
    st_box *b;
    st_file *src;
    unsigned n;
    int err;
    unsigned pending;      /* messages appended since the last commit */
    uint64_t pending_bytes;
} imp_ctx;

static int imp_commit(imp_ctx *c);

/* An import is acknowledged by its exit status, not per message, so it
 * syncs once per batch (ST_IMPORT_BATCH messages or ST_IMPORT_BATCH_BYTES)
 * and at the end: one fdatasync pair per message made a 100,000-message
 * import take minutes. A failure reports only the committed count. */
static int imp_added(imp_ctx *c, uint64_t bytes)
{
    c->pending++;
    c->pending_bytes += bytes;
    if (c->pending < ST_IMPORT_BATCH && c->pending_bytes < ST_IMPORT_BATCH_BYTES) {
        return 0;
    }
    return imp_commit(c);
}

static int imp_commit(imp_ctx *c)
{
    int r = c->pending ? st_box_commit(c->b) : 0;
    if (!r) {
        c->n += c->pending;
        c->pending = 0;
        c->pending_bytes = 0;
    }
    return r;
}

static uint64_t kw_mask(st_box *b, const char *v)
{
    uint64_t mask = 0;
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',' || *v == '\r' || *v == '\n') {
            v++;
        }
        size_t n = 0;
        while (v[n] && v[n] != ' ' && v[n] != '\t' && v[n] != ',' && v[n] != '\r' && v[n] != '\n') {
            n++;
        }
        if (!n) {
            break;
        }
        int k = st_keyword(b, v, n, 1);
        if (k >= 0) {
            mask |= (uint64_t)1 << k;
        }
        v += n;
    }
    return mask;
}

static int imp_mbox_cb(void *ctx, st_found *f)
{
    imp_ctx *c = ctx;
    st_msgin *m;
    uint32_t uid;
    uint64_t kw = kw_mask(c->b, f->kw);
    int r = st_msgin_begin(c->b, f->idate, 0, f->flags & ST_F_SYSMASK, kw, ST_IN_MBOXRD, &m);
    if (r) {
        return c->err = r, 1;
    }
    char *buf = malloc(ST_CHUNK);
    if (!buf) {
        st_msgin_abort(m);
        return c->err = ST_ENOMEM, 1;
    }
    for (uint64_t at = 0; !r && at < f->dlen;) {
        size_t k = f->dlen - at > ST_CHUNK ? ST_CHUNK : (size_t)(f->dlen - at);
        r = st_vread_full(c->src, buf, k, f->off + at);
        if (!r) {
            r = st_msgin_data(m, buf, k);
        }
        at += k;
    }
    free(buf);
    if (r) {
        st_msgin_abort(m);
        return c->err = r, 1;
    }
    if ((r = st_msgin_end(m, &uid)) != 0 || (r = imp_added(c, f->dlen)) != 0) {
        return c->err = r, 1;
    }
    return 0;
}

static int open_target(st_store *s, const char *user, const char *mailbox, st_box **b)
{
    int r = st_user_ensure(s, user);
    if (!r && !st_mailbox_exists(s, user, mailbox)) {
        r = st_mailbox_create(s, user, mailbox);
    }
    return r ? r : st_box_open(s, user, mailbox, b);
}

int st_import_mbox(st_store *s, const char *user, const char *mailbox, const char *path,
                   unsigned *count)
{
    const st_vfs *v = s->vfs;
    imp_ctx c = { 0 };
    st_stat st;
    int garbage;
    *count = 0;
    int r = v->open(v, path, ST_O_READ, &c.src);
    if (r) {
        return r;
    }
    r = st_vfstat(c.src, &st);
    if (!r) {
        r = open_target(s, user, mailbox, &c.b);
    }
    if (!r) {
        r = st_scan_mbox(c.src, 0, st.size, imp_mbox_cb, &c, &garbage);
        r = r < 0 ? r : c.err;
        if (!r) {
            r = imp_commit(&c);
        }
        if (!r) {
            /* a log of APPEND records: the first open should map one
             * block instead of replaying them (failure only costs that) */
            (void)st_box_checkpoint(c.b);
        }
        st_box_close(c.b);
    }
    st_vclose(c.src);
    *count = c.n;
    return r;
}

/* Maildir: one file a message, flags after ":2," in its name. */
typedef struct md_ent {
    char *name;
    int64_t t;     /* the delivery time the name starts with */
} md_ent;

typedef struct md_list {
    md_ent *e;
    size_t n, cap;
    int err;
} md_list;

static int md_add(void *ctx, const char *name)
{
    md_list *l = ctx;
    if (name[0] == '.') {
        return 0;
    }
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64;
        md_ent *ne = realloc(l->e, nc * sizeof *ne);
        if (!ne) {
            return l->err = ST_ENOMEM;
        }
        l->e = ne;
        l->cap = nc;
    }
    l->e[l->n].name = st_strdup(name);
    l->e[l->n].t = strtoll(name, NULL, 10);
    if (!l->e[l->n].name) {
        return l->err = ST_ENOMEM;
    }
    l->n++;
    return 0;
}

static int md_cmp(const void *a, const void *b)
{
    const md_ent *x = a, *y = b;
    return x->t != y->t ? (x->t < y->t ? -1 : 1) : strcmp(x->name, y->name);
}

static uint8_t md_flags(const char *name)
{
    const char *i = strstr(name, ":2,");
    uint8_t f = 0;
    for (i = i ? i + 3 : ""; *i; i++) {
        f |= *i == 'S' ? ST_F_SEEN : *i == 'R' ? ST_F_ANSWERED : *i == 'F' ? ST_F_FLAGGED
           : *i == 'T' ? ST_F_DELETED : *i == 'D' ? ST_F_DRAFT : 0;
    }
    return f;
}

int st_import_maildir(st_store *s, const char *user, const char *mailbox, const char *path,
                      unsigned *count)
{
    const st_vfs *v = s->vfs;
    imp_ctx c = { 0 };
    char *buf = malloc(ST_CHUNK);
    int r = buf ? open_target(s, user, mailbox, &c.b) : ST_ENOMEM;
    st_box *b = c.b;
    *count = 0;
    for (int sub = 0; !r && sub < 2; sub++) {
        md_list l = { 0 };
        char *dir = st_path(path, sub ? "new" : "cur", NULL);
        if (!dir) {
            r = ST_ENOMEM;
            break;
        }
        r = v->list(v, dir, md_add, &l);
        r = r ? r : l.err;
        if (l.n) {
            qsort(l.e, l.n, sizeof *l.e, md_cmp);
        }
        for (size_t i = 0; !r && i < l.n; i++) {
            char *fp = st_path(dir, l.e[i].name, NULL);
            st_file *f = NULL;
            st_msgin *m = NULL;
            st_stat st;
            uint32_t uid;
            r = fp ? v->open(v, fp, ST_O_READ, &f) : ST_ENOMEM;
            if (!r) {
                r = st_vfstat(f, &st);
            }
            if (!r) {
                r = st_msgin_begin(b, l.e[i].t > 0 ? l.e[i].t : st.mtime, 0,
                                   sub ? 0 : md_flags(l.e[i].name), 0, 0, &m);
            }
            for (uint64_t at = 0; !r && at < st.size;) {
                size_t k = st.size - at > ST_CHUNK ? ST_CHUNK : (size_t)(st.size - at);
                r = st_vread_full(f, buf, k, at);
                if (!r) {
                    r = st_msgin_data(m, buf, k);
                }
                at += k;
            }
            if (!r) {
                r = st_msgin_end(m, &uid);
                m = NULL;
            }
            if (!r) {
                r = imp_added(&c, st.size);
            }
            st_msgin_abort(m);
            st_vclose(f);
            free(fp);
        }
        for (size_t i = 0; i < l.n; i++) {
            free(l.e[i].name);
        }
        free(l.e);
        free(dir);
    }
    if (!r) {
        r = imp_commit(&c);
    }
    if (!r) {
        (void)st_box_checkpoint(b); /* as after an mbox import */
    }
    *count = c.n;
    st_box_close(b);
    free(buf);
    return r;
}

/* ---------------- export as Maildir++ ---------------- */

typedef struct exp_ctx {
    st_store *s;
    const char *user;
    const char *dir;
    unsigned n;
    int err;
} exp_ctx;

static int mkdir_ok(const st_vfs *v, const char *p)
{
    int r = v->mkdir(v, p);
    return r == ST_EEXIST ? 0 : r;
}

/* Write a small file durably (tmp, sync, rename). */
static int write_file(const st_vfs *v, const char *tmp, const char *final, const char *data, size_t n)
{
    st_file *f;
    int r = v->open(v, tmp, ST_O_WRITE | ST_O_CREATE | ST_O_TRUNC, &f);
    if (r) {
        return r;
    }
    r = n ? st_vpwrite(f, data, n, 0) : 0;
    if (!r) {
        r = st_vsync(f);
    }
    int rc = st_vclose(f);
    r = r ? r : rc;
    return r ? r : v->rename(v, tmp, final);
}

static int export_box(exp_ctx *c, const char *name)
{
    const st_vfs *v = c->s->vfs;
    st_box *b;
    char sub[1100], path[4096], tmpp[4096], fin[4096];
    int r;
    /* Maildir++: INBOX is the top; "a/b" becomes ".a.b" */
    if (strcmp(name, "INBOX") == 0) {
        snprintf(sub, sizeof sub, "%s", c->dir);
    } else {
        size_t k = (size_t)snprintf(sub, sizeof sub, "%s/.", c->dir);
        for (const char *p = name; *p && k + 1 < sizeof sub; p++) {
            sub[k++] = *p == '/' ? '.' : *p;
        }
        sub[k] = 0;
    }
    if ((r = mkdir_ok(v, sub)) != 0) {
        return r;
    }
    static const char *const parts[] = { "cur", "new", "tmp" };
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", sub, parts[i]);
        if ((r = mkdir_ok(v, path)) != 0) {
            return r;
        }
    }
    if ((r = st_box_open(c->s, c->user, name, &b)) != 0) {
        return r;
    }
    if (strcmp(name, "INBOX") != 0) {
        snprintf(path, sizeof path, "%s/maildirfolder", sub);
        snprintf(tmpp, sizeof tmpp, "%s/tmp/maildirfolder", sub);
        r = write_file(v, tmpp, path, "", 0);
    }
    /* keywords: Dovecot's dovecot-keywords file, letters a.. in names */
    if (!r && b->nkw) {
        char kwf[CONFIG_MAX_KEYWORDS * (ST_KW_NAME_MAX + 8) + 1];
        size_t k = 0;
        for (unsigned i = 0; i < b->nkw && i < 26; i++) {
            k += (size_t)snprintf(kwf + k, sizeof kwf - k, "%u %s\n", i, b->kw[i]);
        }
        snprintf(path, sizeof path, "%s/dovecot-keywords", sub);
        snprintf(tmpp, sizeof tmpp, "%s/tmp/dovecot-keywords", sub);
        r = write_file(v, tmpp, path, kwf, k);
    }
    char *buf = malloc(ST_CHUNK), *lf = malloc(ST_CHUNK);
    if (!buf || !lf) {
        r = r ? r : ST_ENOMEM;
    }
    for (uint32_t i = 0; !r && i < b->count; i++) {
        const st_msg *m = &b->msg[i];
        char fl[40];
        size_t k = 0;
        if (m->flags & ST_F_EXPUNGED) {
            continue;
        }
        /* Maildir wants the info letters in ASCII order */
        if (m->flags & ST_F_DRAFT) {
            fl[k++] = 'D';
        }
        if (m->flags & ST_F_FLAGGED) {
            fl[k++] = 'F';
        }
        if (m->flags & ST_F_ANSWERED) {
            fl[k++] = 'R';
        }
        if (m->flags & ST_F_SEEN) {
            fl[k++] = 'S';
        }
        if (m->flags & ST_F_DELETED) {
            fl[k++] = 'T';
        }
        for (unsigned q = 0; q < b->nkw && q < 26; q++) {
            if (m->kw & ((uint64_t)1 << q)) {
                fl[k++] = (char)('a' + q);
            }
        }
        fl[k] = 0;
        snprintf(tmpp, sizeof tmpp, "%s/tmp/%lld.P%uQ%u.picoimapd", sub, (long long)m->idate,
                 (unsigned)m->uid, (unsigned)b->uidvalidity);
        st_file *f = NULL;
        st_reader rd;
        uint64_t at = 0;
        r = v->open(v, tmpp, ST_O_WRITE | ST_O_CREATE | ST_O_TRUNC, &f);
        if (!r) {
            r = st_reader_open(&rd, b, i);
            if (!r) {
                long got;
                while ((got = st_reader_read(&rd, buf, ST_CHUNK)) > 0 && !r) {
                    /* Maildir files use LF line ends */
                    size_t n = 0;
                    for (long j = 0; j < got; j++) {
                        if (buf[j] == '\r' && ((j + 1 < got && buf[j + 1] == '\n'))) {
                            continue;
                        }
                        lf[n++] = buf[j];
                    }
                    r = st_vpwrite(f, lf, n, at);
                    at += n;
                }
                if (got < 0) {
                    r = (int)got;
                }
                st_reader_close(&rd);
            }
        }
        if (!r) {
            r = st_vsync(f);
        }
        if (f) {
            int rc = st_vclose(f);
            r = r ? r : rc;
        }
        if (!r) {
            snprintf(fin, sizeof fin, "%s/cur/%lld.P%uQ%u.picoimapd,S=%llu,W=%u:2,%s", sub,
                     (long long)m->idate, (unsigned)m->uid, (unsigned)b->uidvalidity,
                     (unsigned long long)at, (unsigned)m->size, fl);
            r = v->rename(v, tmpp, fin);
        }
        if (!r) {
            c->n++;
        }
    }
    free(buf);
    free(lf);
    st_box_close(b);
    if (!r) {
        snprintf(path, sizeof path, "%s/cur", sub);
        r = v->sync_dir(v, path);
    }
    return r;
}

static void exp_one(void *ctx, const char *name)
{
    exp_ctx *c = ctx;
    if (!c->err) {
        c->err = export_box(c, name);
    }
}

int st_export_maildir(st_store *s, const char *user, const char *dir, unsigned *count)
{
    exp_ctx c = { s, user, dir, 0, 0 };
    int r = mkdir_ok(s->vfs, dir);
    if (!r) {
        r = st_mailbox_list(s, user, exp_one, &c);
    }
    *count = c.n;
    return r ? r : c.err;
}

/* ---------------- check ---------------- */

typedef struct chk_ctx {
    st_store *s;
    const char *user;
    int compact;
    void (*say)(void *, const char *);
    void *sctx;
    unsigned boxes, msgs, bad;
    int err;
} chk_ctx;

static void chk_box(void *ctx, const char *name)
{
    chk_ctx *c = ctx;
    char line[1400];
    st_box *b;
    int r = st_box_open(c->s, c->user, name, &b);
    if (r) {
        snprintf(line, sizeof line, "%s/%s: cannot open: %s", c->user, name, st_strerror(r));
        c->say(c->sctx, line);
        c->err = r;
        return;
    }
    c->boxes++;
    char *buf = malloc(ST_CHUNK);
    for (uint32_t i = 0; buf && i < b->count; i++) {
        st_reader rd;
        uint64_t n = 0;
        long k = 0;
        if (i && b->msg[i].uid <= b->msg[i - 1].uid) {
            snprintf(line, sizeof line, "%s/%s: UIDs out of order at %u", c->user, name, b->msg[i].uid);
            c->say(c->sctx, line);
            c->bad++;
        }
        if ((r = st_reader_open(&rd, b, i)) == 0) {
            while ((k = st_reader_read(&rd, buf, ST_CHUNK)) > 0) {
                n += (uint64_t)k;
            }
            st_reader_close(&rd);
        }
        if (r || k < 0 || n != b->msg[i].size) {
            snprintf(line, sizeof line, "%s/%s: message UID %u unreadable or of the wrong size",
                     c->user, name, b->msg[i].uid);
            c->say(c->sctx, line);
            c->bad++;
        }
        c->msgs++;
    }
    free(buf);
    if (c->compact) {
        stbox *sb = (stbox *)b;
        uint64_t before = sb->mbox_end, dead = st_box_reclaimable(sb);
        r = st_box_compact(b);
        if (r) {
            snprintf(line, sizeof line, "%s/%s: compaction failed: %s", c->user, name, st_strerror(r));
            c->err = r;
        } else {
            snprintf(line, sizeof line, "%s/%s: compacted %llu -> %llu bytes (about %llu reclaimable)",
                     c->user, name, (unsigned long long)before, (unsigned long long)sb->mbox_end,
                     (unsigned long long)dead);
        }
        c->say(c->sctx, line);
    }
    st_box_close(b);
}

static void chk_note(void *ctx, const char *user, const char *box, const char *what)
{
    chk_ctx *c = ctx;
    char line[1400];
    snprintf(line, sizeof line, "%s/%s: repaired: %s", user, box, what);
    c->say(c->sctx, line);
}

static int chk_user(chk_ctx *c, const char *user)
{
    c->user = user;
    return st_mailbox_list(c->s, user, chk_box, c);
}

static int chk_user_cb(void *ctx, const char *file)
{
    chk_ctx *c = ctx;
    char name[1024];
    st_stat st;
    if (file[0] == '.' || st_unescape(file, name, sizeof name)) {
        return 0;
    }
    char *p = st_path(c->s->root, file, NULL);
    int isdir = p && c->s->vfs->stat(c->s->vfs, p, &st) == 0 && st.isdir;
    free(p);
    if (isdir) {
        char *u = st_strdup(name);
        if (u) {
            chk_user(c, u);
            free(u);
        }
    }
    return 0;
}

int st_check(st_store *s, const char *user, int compact,
             void (*say)(void *ctx, const char *line), void *ctx,
             unsigned *boxes, unsigned *msgs, unsigned *bad)
{
    chk_ctx c = { s, user, compact, say, ctx, 0, 0, 0, 0 };
    s->note = chk_note;
    s->note_ctx = &c;
    int r = user ? chk_user(&c, user) : s->vfs->list(s->vfs, s->root, chk_user_cb, &c);
    s->note = NULL;
    s->note_ctx = NULL;
    *boxes = c.boxes;
    *msgs = c.msgs;
    *bad = c.bad;
    return r ? r : c.err;
}
