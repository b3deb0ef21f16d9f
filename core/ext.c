/*
 * ext.c -- IMAP extensions beyond IMAP4rev1 (see ext.h and core/Kconfig.ext).
 *
 * Each extension is compiled in or out by its CONFIG_EXT_* bool; code behind
 * a disabled one is still type-checked (if (CONFIG_X)) and then dropped.
 */
#include "ext.h"

#include <stdlib.h>
#include <string.h>

/* ---- CAPABILITY and ENABLE ---- */

void ext_capability_list(imap_conn *c)
{
    if (c->state == S_NOTAUTH) {
        return;   /* the full list comes with the login's OK */
    }
    if (CONFIG_EXT_ENABLE) {
        out_puts(c, " ENABLE");
    }
    if (CONFIG_EXT_MOVE) {
        out_puts(c, " MOVE");
    }
    if (CONFIG_EXT_MULTIAPPEND) {
        out_puts(c, " MULTIAPPEND");
    }
    if (CONFIG_EXT_STATUS_SIZE) {
        out_printf(c, " STATUS=SIZE APPENDLIMIT=%llu", (unsigned long long)EXT_APPENDLIMIT);
    }
    if (CONFIG_EXT_LIST_EXTENDED) {
        out_puts(c, " LIST-EXTENDED LIST-STATUS");
    }
    if (CONFIG_EXT_SPECIAL_USE) {
        out_puts(c, " SPECIAL-USE CREATE-SPECIAL-USE");
    }
    if (CONFIG_EXT_ESEARCH) {
        out_puts(c, " ESEARCH SEARCHRES");
    }
    if (CONFIG_EXT_CONDSTORE) {
        out_puts(c, " CONDSTORE");
    }
    if (CONFIG_EXT_QRESYNC) {
        out_puts(c, " QRESYNC");
    }
    if (CONFIG_EXT_UTF8_ACCEPT) {
        out_puts(c, " UTF8=ACCEPT");
    }
    if (CONFIG_EXT_QUOTA) {
        out_puts(c, " QUOTA QUOTA=RES-STORAGE");
    }
    if (CONFIG_EXT_IMAP4REV2) {
        /* RFC 3516 in full (fetch.c, binary.c): IMAP4rev2 needs its FETCH
         * side; APPEND takes a literal8 anyway. */
        out_puts(c, " BINARY");
    }
}

void cmd_enable(imap_conn *c, args *a)
{
    const char *s;
    uint32_t n;
    unsigned now = 0;
    if (!CONFIG_EXT_ENABLE) {
        reply(c, "BAD", "Unknown command");
        return;
    }
    if (!arg_peek(a)) {
        reply(c, "BAD", "Usage: ENABLE capability...");
        return;
    }
    while (arg_atom(a, &s, &n) == 0) {
        unsigned bit = 0;
        if (CONFIG_EXT_CONDSTORE && !ascii_casecmp(s, "CONDSTORE")) {
            bit = EXT_CONDSTORE;
        } else if (CONFIG_EXT_QRESYNC && !ascii_casecmp(s, "QRESYNC")) {
            bit = EXT_QRESYNC | EXT_CONDSTORE;
        } else if (CONFIG_EXT_UTF8_ACCEPT && !ascii_casecmp(s, "UTF8=ACCEPT")) {
            bit = EXT_UTF8;
        } else if (CONFIG_EXT_IMAP4REV2 && !ascii_casecmp(s, "IMAP4rev2")) {
            bit = EXT_REV2;
        }
        /* Unknown names are ignored (RFC 5161 3.1). */
        now |= bit & ~c->ext_on;
    }
    if (arg_end(a) < 0) {
        reply(c, "BAD", "Usage: ENABLE capability...");
        return;
    }
    c->ext_on |= now;
    out_puts(c, "* ENABLED");
    /* QRESYNC implies CONDSTORE but ENABLED names only what was asked
     * (RFC 7162 3.2.3 allows either); name both so the client knows. */
    if (now & EXT_CONDSTORE) {
        out_puts(c, " CONDSTORE");
    }
    if (now & EXT_QRESYNC) {
        out_puts(c, " QRESYNC");
    }
    if (now & EXT_UTF8) {
        out_puts(c, " UTF8=ACCEPT");
    }
    if (now & EXT_REV2) {
        out_puts(c, " IMAP4rev2");
    }
    out_puts(c, "\r\n");
    reply(c, "OK", "ENABLE completed");
}

/* ---- QUOTA (RFC 9208): one root "" for all of the user's mail ---- */

static void out_quota(imap_conn *c)
{
    uint64_t used = 0, limit = 0;
    st_quota_get(g_srv->store, c->user, &used, &limit);
    out_puts(c, "* QUOTA \"\" (");
    if (limit) {
        /* STORAGE counts KiB (RFC 9208 5.1), rounded up. */
        out_printf(c, "STORAGE %llu %llu", (unsigned long long)((used + 1023) / 1024),
                   (unsigned long long)(limit / 1024));
    }
    out_puts(c, ")\r\n");
}

void cmd_getquota(imap_conn *c, args *a)
{
    const char *s;
    uint32_t n;
    if (arg_astring(a, &s, &n) < 0 || arg_end(a) < 0) {
        reply(c, "BAD", "Usage: GETQUOTA root");
        return;
    }
    if (n != 0) {
        reply(c, "NO", "[NONEXISTENT] No such quota root");
        return;
    }
    out_quota(c);
    reply(c, "OK", "GETQUOTA completed");
}

void cmd_getquotaroot(imap_conn *c, args *a)
{
    const char *s, *why;
    uint32_t n;
    if (arg_astring(a, &s, &n) < 0 || arg_end(a) < 0) {
        reply(c, "BAD", "Usage: GETQUOTAROOT mailbox");
        return;
    }
    char *name = mailbox_name_in(c, s, n, &why);
    if (!name || !st_mailbox_exists(g_srv->store, c->user, name)) {
        free(name);
        reply(c, "NO", "[NONEXISTENT] Mailbox does not exist");
        return;
    }
    out_puts(c, "* QUOTAROOT ");
    out_mailbox(c, name);
    out_puts(c, " \"\"\r\n");
    out_quota(c);
    free(name);
    reply(c, "OK", "GETQUOTAROOT completed");
}

void cmd_setquota(imap_conn *c, args *a)
{
    reply(c, "NO", "[NOPERM] Quotas are set in the server's configuration");
}

/* ---- message sets, saved results ---- */

void ext_numset(dbuf *b, const uint32_t *v, uint32_t n)
{
    for (uint32_t i = 0; i < n;) {
        uint32_t j = i;
        while (j + 1 < n && v[j + 1] == v[j] + 1) {
            j++;
        }
        if (i) {
            dbuf_addc(b, ',');
        }
        if (j > i) {
            dbuf_printf(b, "%u:%u", v[i], v[j]);
        } else {
            dbuf_printf(b, "%u", v[i]);
        }
        i = j + 1;
    }
}

int ext_msgset(imap_sess *s, const char *str, uint32_t len, int uid, uint32_t star, seqset *set)
{
    if (!(CONFIG_EXT_ESEARCH && len == 1 && str[0] == '$')) {
        return seqset_parse(set, str, len, star);
    }
    memset(set, 0, sizeof *set);
    set->dollar = 1;
    if (!s->nsaved) {
        return 0;
    }
    set->r = malloc(s->nsaved * sizeof *set->r);
    if (!set->r) {
        return -1;
    }
    /* Saved UIDs ascend, and so do the sequence numbers of those still
     * here, so the ranges come out sorted. */
    for (uint32_t k = 0; k < s->nsaved; k++) {
        uint32_t v = s->saved[k];
        if (!uid) {
            long idx = st_box_find(s->box, v);
            v = idx >= 0 && !(s->box->msg[idx].flags & ST_F_EXPUNGED) ? view_idx2seq(s, (uint32_t)idx) : 0;
            if (!v) {
                continue;
            }
        }
        if (set->n && set->r[set->n - 1][1] + 1 == v) {
            set->r[set->n - 1][1] = v;
        } else {
            set->r[set->n][0] = set->r[set->n][1] = v;
            set->n++;
        }
    }
    return 0;
}

void ext_save_result(imap_sess *s, const uint32_t *uids, uint32_t n)
{
    free(s->saved);
    s->saved = NULL;
    s->nsaved = 0;
    if (n && (s->saved = malloc(n * sizeof *uids)) != NULL) {
        memcpy(s->saved, uids, n * sizeof *uids);
        s->nsaved = n;
    }
}

/* ---- CONDSTORE / QRESYNC ---- */

uint64_t ext_modseq(uint64_t m)
{
    return m ? m : 1;
}

struct vlist { uint32_t *u; uint32_t n, cap; };

static void vlist_add(void *ctx, uint32_t uid)
{
    struct vlist *v = ctx;
    if (v->n == v->cap) {
        uint32_t nc = v->cap ? v->cap * 2 : 64;
        uint32_t *nu = realloc(v->u, nc * sizeof *nu);
        if (!nu) {
            return;
        }
        v->u = nu;
        v->cap = nc;
    }
    v->u[v->n++] = uid;
}

static int u32_cmp(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return a < b ? -1 : a > b;
}

/* Exact answer from the store's log: the UIDs expunged after `since`
 * (within the client's set, and never one that still exists). Returns 0 if
 * the store cannot answer exactly. */
static int vanished_exact(imap_conn *c, st_box *box, uint64_t since, const seqset *within)
{
    struct vlist v = {0};
    if (st_box_vanished(box, since, vlist_add, &v) != 1) {
        free(v.u);
        return 0;
    }
    if (v.n > 1) {
        qsort(v.u, v.n, sizeof v.u[0], u32_cmp);
    }
    dbuf b = {0};
    uint32_t lo = 0, hi = 0;
    int have = 0;
    for (uint32_t i = 0; i <= v.n; i++) {
        int take = 0;
        uint32_t u = 0;
        if (i < v.n) {
            u = v.u[i];
            long li = st_box_find(box, u);
            take = (li < 0 || (box->msg[li].flags & ST_F_EXPUNGED)) && (!within || seqset_has(within, u));
            if (!take || (have && (u == hi || u == hi + 1))) {
                if (take) {
                    hi = u;
                }
                continue;
            }
        }
        if (have) {
            dbuf_printf(&b, b.len ? ",%u" : "%u", lo);
            if (hi > lo) {
                dbuf_printf(&b, ":%u", hi);
            }
        }
        if (take) {
            lo = hi = u;
            have = 1;
        }
    }
    if (b.len) {
        out_puts(c, "* VANISHED (EARLIER) ");
        out_write(c, b.p, b.len);
        out_puts(c, "\r\n");
    }
    dbuf_free(&b);
    free(v.u);
    return 1;
}

void ext_vanished_earlier(imap_conn *c, st_box *box, uint64_t since, const seqset *within)
{
    if (vanished_exact(c, box, since, within)) {
        return;
    }
    /* The log was rewritten since `since`: the answer is every UID below
     * UIDNEXT (within the client's set) that is not here -- a superset of
     * those expunged after `since`, which RFC 7162 3.2.5.1 allows, and
     * never a UID that still exists. */
    dbuf b = {0};
    uint32_t i = 0, lo = 0, hi = 0;
    int first = 1;
    uint32_t top = box->uidnext ? box->uidnext - 1 : 0;
    /* Walk the UIDs 1..top in runs between live messages. */
    uint32_t next = 1;
    for (;;) {
        while (i < box->count && (box->msg[i].flags & ST_F_EXPUNGED)) {
            i++;
        }
        uint32_t live = i < box->count ? box->msg[i].uid : top + 1;
        if (live > top + 1) {
            live = top + 1;
        }
        /* Gap [next, live-1] is gone; clip it to `within`. */
        if (live > next) {
            uint32_t glo = next, ghi = live - 1;
            if (!within) {
                dbuf_printf(&b, first ? "%u" : ",%u", glo);
                if (ghi > glo) {
                    dbuf_printf(&b, ":%u", ghi);
                }
                first = 0;
            } else {
                for (uint32_t r = 0; r < within->n; r++) {
                    lo = within->r[r][0] > glo ? within->r[r][0] : glo;
                    hi = within->r[r][1] < ghi ? within->r[r][1] : ghi;
                    if (lo <= hi) {
                        dbuf_printf(&b, first ? "%u" : ",%u", lo);
                        if (hi > lo) {
                            dbuf_printf(&b, ":%u", hi);
                        }
                        first = 0;
                    }
                }
            }
        }
        if (live > top) {
            break;
        }
        next = live + 1;
        i++;
    }
    if (b.len) {
        out_puts(c, "* VANISHED (EARLIER) ");
        out_write(c, b.p, b.len);
        out_puts(c, "\r\n");
    }
    dbuf_free(&b);
}

static int get_u64(args *a, uint64_t *v)
{
    const char *s;
    uint32_t n;
    return arg_atom(a, &s, &n) < 0 || parse_u64(s, n, v) < 0 ? -1 : 0;
}

int ext_select_parse(imap_conn *c, args *a, ext_select *q)
{
    memset(q, 0, sizeof *q);
    if (!arg_peek(a)) {
        return 0;
    }
    const char *s;
    uint32_t n;
    if (arg_lparen(a) < 0) {
        reply(c, "BAD", "Too many arguments");
        return -1;
    }
    while (arg_atom(a, &s, &n) == 0) {
        if (CONFIG_EXT_CONDSTORE && !ascii_casecmp(s, "CONDSTORE")) {
            q->condstore = 1;
        } else if (CONFIG_EXT_QRESYNC && !ascii_casecmp(s, "QRESYNC")) {
            uint64_t uv;
            if (!(c->ext_on & EXT_QRESYNC)) {
                reply(c, "BAD", "QRESYNC is not enabled");
                return -1;
            }
            if (arg_lparen(a) < 0 || get_u64(a, &uv) < 0 || uv == 0 || uv > UINT32_MAX ||
                get_u64(a, &q->modseq) < 0) {
                goto bad;
            }
            q->qresync = q->condstore = 1;
            q->uidvalidity = (uint32_t)uv;
            if (arg_atom(a, &s, &n) == 0 && seqset_parse(&q->known, s, n, UINT32_MAX) < 0) {
                goto bad;
            }
            if (arg_lparen(a) == 0) {
                const char *s2;
                uint32_t n2;
                if (arg_atom(a, &s, &n) < 0 || arg_atom(a, &s2, &n2) < 0 ||
                    seqset_parse(&q->mseq, s, n, UINT32_MAX) < 0 ||
                    seqset_parse(&q->muid, s2, n2, UINT32_MAX) < 0 || arg_rparen(a) < 0) {
                    goto bad;
                }
            }
            if (arg_rparen(a) < 0) {
                goto bad;
            }
        } else {
            goto bad;
        }
    }
    if (arg_rparen(a) < 0 || arg_end(a) < 0) {
        goto bad;
    }
    if (q->condstore) {
        c->ext_on |= EXT_CONDSTORE;
    }
    return 0;
bad:
    seqset_free(&q->known);
    seqset_free(&q->mseq);
    seqset_free(&q->muid);
    reply(c, "BAD", "Invalid SELECT parameters");
    return -1;
}

void ext_select_done(imap_conn *c, ext_select *q)
{
    imap_sess *s = c->sess;
    st_box *box = s ? s->box : NULL;
    if (CONFIG_EXT_CONDSTORE && box) {
        out_printf(c, "* OK [HIGHESTMODSEQ %llu] Highest\r\n", (unsigned long long)ext_modseq(box->highestmodseq));
    }
    if (CONFIG_EXT_QRESYNC && box && q->qresync && q->uidvalidity == box->uidvalidity) {
        ext_vanished_earlier(c, box, q->modseq, q->known.n ? &q->known : NULL);
        for (uint32_t i = 0; i < box->count; i++) {
            const st_msg *m = &box->msg[i];
            if (!view_visible(s, i) || (m->flags & ST_F_EXPUNGED) || m->modseq <= q->modseq ||
                (q->known.n && !seqset_has(&q->known, m->uid))) {
                continue;
            }
            out_printf(c, "* %u FETCH (UID %u FLAGS ", view_idx2seq(s, i), m->uid);
            view_out_flags(s, i);
            out_printf(c, " MODSEQ (%llu))\r\n", (unsigned long long)ext_modseq(m->modseq));
        }
    }
    seqset_free(&q->known);
    seqset_free(&q->mseq);
    seqset_free(&q->muid);
}

/* ---- SPECIAL-USE (RFC 6154) ---- */

static const struct { const char *name, *attr; } special[] = {
    {"Drafts", "\\Drafts"}, {"Sent", "\\Sent"}, {"Trash", "\\Trash"},
    {"Junk", "\\Junk"}, {"Archive", "\\Archive"},
};

const char *ext_special_use(const char *name)
{
    if (!CONFIG_EXT_SPECIAL_USE) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) {
        if (!strcmp(name, special[i].name)) {
            return special[i].attr;
        }
    }
    return NULL;
}

int ext_create_use(imap_conn *c, args *a, const char *name)
{
    const char *s;
    uint32_t n;
    if (!arg_peek(a)) {
        return 0;
    }
    if (!CONFIG_EXT_SPECIAL_USE || arg_lparen(a) < 0 || arg_atom(a, &s, &n) < 0 || ascii_casecmp(s, "USE") ||
        arg_lparen(a) < 0) {
        reply(c, "BAD", "Invalid CREATE parameters");
        return -1;
    }
    const char *su = ext_special_use(name);
    while (arg_atom(a, &s, &n) == 0) {
        /* Attributes are tied to the names (ext_special_use), so a USE
         * that names anything else cannot be honoured. */
        if (!su || ascii_casecmp(s, su)) {
            reply(c, "NO", "[USEATTR] %s can only be used for the mailbox of that name", s);
            return -1;
        }
    }
    if (arg_rparen(a) < 0 || arg_rparen(a) < 0 || arg_end(a) < 0) {
        reply(c, "BAD", "Invalid CREATE parameters");
        return -1;
    }
    return 0;
}

void ext_user_setup(imap_conn *c, int new_user)
{
    if (!CONFIG_EXT_SPECIAL_USE || !new_user || !g_srv->cfg->special_folders) {
        return;
    }
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) {
        int rc = st_mailbox_create(g_srv->store, c->user, special[i].name);
        if (rc == 0) {
            st_subscribe(g_srv->store, c->user, special[i].name, 1);
        } else if (rc != ST_EEXIST) {
            log_warn("%s: cannot create %s for %s: %s", c->peer, special[i].name, c->user, st_strerror(rc));
        }
    }
}

/* ---- MULTIAPPEND (RFC 3502) ---- */

/* The messages of one APPEND whose literals have been read: each is a
 * store append in progress (memory, then spool); none has a UID yet, so
 * dropping them leaves no trace. */
typedef struct ext_append {
    st_append **a;      /* in the order sent */
    uint32_t    n, cap;
} ext_append;

int ext_mappend_push(imap_conn *c)
{
    ext_append *m = c->mappend;
    if (!m && !(m = c->mappend = calloc(1, sizeof *m))) {
        return ST_ENOMEM;
    }
    if (m->n == m->cap) {
        uint32_t nc = m->cap ? m->cap * 2 : 4;
        st_append **na = realloc(m->a, nc * sizeof *na);
        if (!na) {
            return ST_ENOMEM;
        }
        m->a = na;
        m->cap = nc;
    }
    m->a[m->n++] = c->append;
    c->append = NULL;
    return 0;
}

void ext_mappend_abort(imap_conn *c)
{
    ext_append *m = c->mappend;
    if (!m) {
        return;
    }
    for (uint32_t i = 0; i < m->n; i++) {
        st_append_abort(m->a[i]);
    }
    free(m->a);
    free(m);
    c->mappend = NULL;
}

int ext_mappend_finish(imap_conn *c, st_box *box, st_append *last, dbuf *uids)
{
    ext_append *m = c->mappend;
    uint32_t total = (m ? m->n : 0) + 1, done = 0;
    uint32_t *u = malloc(total * sizeof *u);
    int rc = u ? 0 : ST_ENOMEM;
    for (uint32_t i = 0; i < total; i++) {
        st_append *ap = i + 1 < total ? m->a[i] : last;
        if (rc == 0) {
            rc = st_append_end(ap, &u[done]);
            done += rc == 0;
        } else {
            st_append_abort(ap);
        }
    }
    if (m) {
        m->n = 0;
        ext_mappend_abort(c);
    }
    if (rc < 0) {
        /* All or nothing: take back the ones that got a UID. */
        for (uint32_t i = 0; u && i < done; i++) {
            long idx = st_box_find(box, u[i]);
            if (idx >= 0) {
                st_expunge(box, (uint32_t)idx);
            }
        }
        st_box_commit(box);
        free(u);
        return rc;
    }
    rc = conn_commit(c, box, "APPEND");
    if (rc == 0) {
        ext_numset(uids, u, done);
    }
    free(u);
    return rc;
}

/* ---- LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819) ---- */

/* One name LIST may report. */
typedef struct lent {
    char   *name;
    uint8_t exists;       /* a selectable mailbox */
    uint8_t subscribed;
    uint8_t children;     /* an existing mailbox below it */
    uint8_t sub_child;    /* a subscribed name below it */
} lent;

typedef struct llist {
    lent  *e;
    size_t n, cap;
} llist;

static lent *ll_get(llist *l, const char *name, size_t len)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strlen(l->e[i].name) == len && !memcmp(l->e[i].name, name, len)) {
            return &l->e[i];
        }
    }
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        lent *ne = realloc(l->e, nc * sizeof *ne);
        if (!ne) {
            return NULL;
        }
        l->e = ne;
        l->cap = nc;
    }
    char *nm = xstrndup(name, len);
    if (!nm) {
        return NULL;
    }
    lent *e = &l->e[l->n++];
    memset(e, 0, sizeof *e);
    e->name = nm;
    return e;
}

static void ll_add(llist *l, const char *name, int subscribed)
{
    lent *e = ll_get(l, name, strlen(name));
    if (!e) {
        return;
    }
    if (subscribed) {
        e->subscribed = 1;
    } else {
        e->exists = 1;
    }
    for (const char *p = strchr(name, '/'); p; p = strchr(p + 1, '/')) {
        lent *par = ll_get(l, name, (size_t)(p - name));
        if (par) {
            if (subscribed) {
                par->sub_child = 1;
            } else {
                par->children = 1;
            }
        }
    }
}

static void ll_cb_exists(void *ctx, const char *name)
{
    ll_add(ctx, name, 0);
}

static void ll_cb_subs(void *ctx, const char *name)
{
    ll_add(ctx, name, 1);
}

static int ll_cmp(const void *x, const void *y)
{
    const lent *a = x, *b = y;
    int ai = !strcmp(a->name, "INBOX"), bi = !strcmp(b->name, "INBOX");
    return ai != bi ? bi - ai : strcmp(a->name, b->name);
}

/* '*' matches anything, '%' anything but the separator. */
static int wild(const char *pat, const char *name)
{
    for (;;) {
        if (*pat == 0) {
            return *name == 0;
        }
        if (*pat == '*' || *pat == '%') {
            int star = *pat++ == '*';
            for (const char *n = name;; n++) {
                if (wild(pat, n)) {
                    return 1;
                }
                if (*n == 0 || (!star && *n == '/')) {
                    return 0;
                }
            }
        }
        if (*pat++ != *name++) {
            return 0;
        }
    }
}

static int pat_match(char **pats, unsigned np, const char *name)
{
    for (unsigned i = 0; i < np; i++) {
        if (wild(pats[i], name)) {
            return 1;
        }
        /* INBOX in any case */
        if (!strncmp(name, "INBOX", 5) && !ascii_ncasecmp(pats[i], "INBOX", 5)) {
            char *p2 = xstrdup(pats[i]);
            int r = p2 && (memcpy(p2, "INBOX", 5), wild(p2, name));
            free(p2);
            if (r) {
                return 1;
            }
        }
    }
    return 0;
}

/* STATUS items for LIST-STATUS. */
enum { LS_MESSAGES = 1, LS_RECENT = 2, LS_UIDNEXT = 4, LS_UIDVALIDITY = 8, LS_UNSEEN = 16,
       LS_HIGHESTMODSEQ = 32, LS_SIZE = 64, LS_DELETED = 128 };

static void list_status(imap_conn *c, const char *name, int want)
{
    st_box *box;
    if (st_box_open(g_srv->store, c->user, name, &box) < 0) {
        return;   /* RFC 5819: skip, the LIST line already went out */
    }
    st_box_refresh(box);
    uint32_t msgs = 0, recent = 0, unseen = 0, deleted = 0;
    uint64_t size = 0;
    for (uint32_t i = 0; i < box->count; i++) {
        const st_msg *m = &box->msg[i];
        if (!(m->flags & ST_F_EXPUNGED)) {
            msgs++;
            recent += m->uid >= box->recent_uid;
            unseen += !(m->flags & ST_F_SEEN);
            deleted += (m->flags & ST_F_DELETED) != 0;
            size += m->size;
        }
    }
    out_puts(c, "* STATUS ");
    out_mailbox(c, name);
    const char *sp = " (";
    if (want & LS_MESSAGES) {
        out_printf(c, "%sMESSAGES %u", sp, msgs);
        sp = " ";
    }
    if (want & LS_RECENT) {
        out_printf(c, "%sRECENT %u", sp, recent);
        sp = " ";
    }
    if (want & LS_UIDNEXT) {
        out_printf(c, "%sUIDNEXT %u", sp, box->uidnext);
        sp = " ";
    }
    if (want & LS_UIDVALIDITY) {
        out_printf(c, "%sUIDVALIDITY %u", sp, box->uidvalidity);
        sp = " ";
    }
    if (want & LS_UNSEEN) {
        out_printf(c, "%sUNSEEN %u", sp, unseen);
        sp = " ";
    }
    if (want & LS_HIGHESTMODSEQ) {
        out_printf(c, "%sHIGHESTMODSEQ %llu", sp, (unsigned long long)ext_modseq(box->highestmodseq));
        sp = " ";
    }
    if (want & LS_SIZE) {
        out_printf(c, "%sSIZE %llu", sp, (unsigned long long)size);
        sp = " ";
    }
    if (want & LS_DELETED) {
        out_printf(c, "%sDELETED %u", sp, deleted);
    }
    out_puts(c, ")\r\n");
    st_box_close(box);
}

struct below_ctx { const char *name; size_t len; int children; };

static void below_cb(void *ctx, const char *name)
{
    struct below_ctx *b = ctx;
    if (!strncmp(name, b->name, b->len) && name[b->len] == '/') {
        b->children = 1;
    }
}

void ext_select_list(imap_conn *c, const char *name)
{
    struct below_ctx b = {name, strlen(name), 0};
    st_mailbox_list(g_srv->store, c->user, below_cb, &b);
    const char *su = ext_special_use(name);
    out_printf(c, "* LIST (%s%s%s) \"/\" ", b.children ? "\\HasChildren" : "\\HasNoChildren", su ? " " : "",
               su ? su : "");
    out_mailbox(c, name);
    out_puts(c, "\r\n");
}

void ext_list(imap_conn *c, args *a)
{
    enum { SEL_SUB = 1, SEL_REMOTE = 2, SEL_RECURSIVE = 4, SEL_SPECIAL = 8 };
    enum { RET_CHILDREN = 1, RET_SUB = 2, RET_STATUS = 4, RET_SPECIAL = 8 };
    int sel = 0, ret = 0, want = 0;
    char *pats[16];
    unsigned np = 0;
    const char *s, *ref;
    uint32_t n, rl;
    const char *bad = NULL;
    if (arg_lparen(a) == 0) {
        while (arg_atom(a, &s, &n) == 0) {
            sel |= !ascii_casecmp(s, "SUBSCRIBED") ? SEL_SUB : !ascii_casecmp(s, "REMOTE") ? SEL_REMOTE
                 : !ascii_casecmp(s, "RECURSIVEMATCH") ? SEL_RECURSIVE
                 : CONFIG_EXT_SPECIAL_USE && !ascii_casecmp(s, "SPECIAL-USE") ? SEL_SPECIAL : 0;
        }
        if (arg_rparen(a) < 0) {
            bad = "Invalid selection options";
        } else if ((sel & SEL_RECURSIVE) && !(sel & (SEL_SUB | SEL_SPECIAL))) {
            bad = "RECURSIVEMATCH needs another selection option";
        }
    }
    if (!bad && arg_astring(a, &ref, &rl) < 0) {
        bad = "Missing reference";
    }
    int plist = !bad && arg_lparen(a) == 0;
    while (!bad && np < 16 && arg_astring(a, &s, &n) == 0) {
        /* Reference and pattern join as given (RFC 3501 6.3.8). */
        dbuf full = {0};
        dbuf_add(&full, ref, rl);
        dbuf_add(&full, s, n);
        dbuf_addc(&full, 0);
        pats[np++] = full.p;
        if (!plist) {
            break;
        }
    }
    if (!bad && ((plist && arg_rparen(a) < 0) || np == 0)) {
        bad = "Invalid pattern";
    }
    if (!bad && arg_peek(a)) {
        if (arg_atom(a, &s, &n) < 0 || ascii_casecmp(s, "RETURN") || arg_lparen(a) < 0) {
            bad = "Invalid return options";
        }
        while (!bad && arg_atom(a, &s, &n) == 0) {
            if (!ascii_casecmp(s, "CHILDREN")) {
                ret |= RET_CHILDREN;
            } else if (!ascii_casecmp(s, "SUBSCRIBED")) {
                ret |= RET_SUB;
            } else if (CONFIG_EXT_SPECIAL_USE && !ascii_casecmp(s, "SPECIAL-USE")) {
                ret |= RET_SPECIAL;
            } else if (!ascii_casecmp(s, "STATUS") && arg_lparen(a) == 0) {
                ret |= RET_STATUS;
                while (arg_atom(a, &s, &n) == 0) {
                    /* As STATUS: IMAP4rev2 has DELETED and no RECENT. */
                    int b = !ascii_casecmp(s, "MESSAGES") ? LS_MESSAGES
                          : !ascii_casecmp(s, "RECENT") && !ext_rev2(c) ? LS_RECENT
                          : !ascii_casecmp(s, "UIDNEXT") ? LS_UIDNEXT : !ascii_casecmp(s, "UIDVALIDITY") ? LS_UIDVALIDITY
                          : !ascii_casecmp(s, "UNSEEN") ? LS_UNSEEN
                          : CONFIG_EXT_CONDSTORE && !ascii_casecmp(s, "HIGHESTMODSEQ") ? LS_HIGHESTMODSEQ
                          : CONFIG_EXT_STATUS_SIZE && !ascii_casecmp(s, "SIZE") ? LS_SIZE
                          : CONFIG_EXT_IMAP4REV2 && !ascii_casecmp(s, "DELETED") ? LS_DELETED : 0;
                    if (!b) {
                        bad = "Unknown STATUS item";
                    }
                    want |= b;
                }
                if (!bad && (arg_rparen(a) < 0 || !want)) {
                    bad = "Invalid STATUS return option";
                }
            } else {
                bad = "Unknown return option";
            }
        }
        if (!bad && (arg_rparen(a) < 0 || arg_end(a) < 0)) {
            bad = "Invalid return options";
        }
    }
    if (bad) {
        for (unsigned i = 0; i < np; i++) {
            free(pats[i]);
        }
        reply(c, "BAD", "%s", bad);
        return;
    }
    if (np == 1 && !pats[0][0] && !sel && !ret) {
        /* The hierarchy delimiter and root name. */
        out_puts(c, "* LIST (\\Noselect) \"/\" \"\"\r\n");
    } else {
        llist l = {0};
        st_mailbox_list(g_srv->store, c->user, ll_cb_exists, &l);
        ll_add(&l, "INBOX", 0);
        st_subs_list(g_srv->store, c->user, ll_cb_subs, &l);
        if (l.n) {
            qsort(l.e, l.n, sizeof l.e[0], ll_cmp);
        }
        for (size_t i = 0; i < l.n; i++) {
            lent *e = &l.e[i];
            const char *su = ext_special_use(e->name);
            int childinfo = 0;
            if (!pat_match(pats, np, e->name)) {
                continue;
            }
            if (sel & SEL_SUB) {
                if (!e->subscribed) {
                    /* RFC 5258 3.5: a parent matching only through its
                     * subscribed children, with RECURSIVEMATCH. */
                    if (!((sel & SEL_RECURSIVE) && e->sub_child)) {
                        continue;
                    }
                    childinfo = 1;
                }
            } else if (!e->exists && !e->children) {
                continue;   /* only subscribed, and not asked for */
            }
            if ((sel & SEL_SPECIAL) && !su) {
                continue;
            }
            out_puts(c, "* LIST (");
            const char *sp = "";
            if (!e->exists) {
                out_puts(c, "\\NonExistent");
                sp = " ";
            }
            if (e->subscribed && (ret & RET_SUB || sel & SEL_SUB)) {
                out_printf(c, "%s\\Subscribed", sp);
                sp = " ";
            }
            out_printf(c, "%s%s", sp, e->children ? "\\HasChildren" : "\\HasNoChildren");
            if (su && e->exists) {
                out_printf(c, " %s", su);
            }
            out_puts(c, ") \"/\" ");
            out_mailbox(c, e->name);
            if (childinfo) {
                out_puts(c, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            out_puts(c, "\r\n");
            if ((ret & RET_STATUS) && e->exists) {
                list_status(c, e->name, want);
            }
        }
        for (size_t i = 0; i < l.n; i++) {
            free(l.e[i].name);
        }
        free(l.e);
    }
    for (unsigned i = 0; i < np; i++) {
        free(pats[i]);
    }
    if (c->sess) {
        view_notify(c->sess, 1);
    }
    reply(c, "OK", "LIST completed");
}
