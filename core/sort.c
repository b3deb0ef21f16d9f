/*
 * sort.c -- SORT and THREAD (RFC 5256), behind CONFIG_SORT.
 *
 * SORT: the search criteria select messages, a key record per message
 * holds only what the sort criteria need (strings cut at SORT_KEY_MAX,
 * kept in one arena), qsort orders them; ties go by mailbox order.
 *
 * THREAD: ORDEREDSUBJECT groups by base subject; REFERENCES is the
 * algorithm of RFC 5256 section 3. Nodes live in one array and link by
 * index (parent, first child, next sibling), Message-IDs in an arena
 * with an open-addressing hash. Nothing recurses over the tree, so a
 * chain of 100,000 replies cannot overflow a small embedded stack.
 */
#include "sort.h"
#include "cmd.h"
#include "mime.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ strings */

int sort_casemap_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    /* Each public entry point returns at once when the option is off, so
     * the optimizer drops everything behind it (STYLE: still compiled). */
    if (!CONFIG_SORT) {
        return 0;
    }
    size_t n = an < bn ? an : bn;
    for (size_t i = 0; i < n; i++) {
        int x = ascii_upper((unsigned char)a[i]), y = ascii_upper((unsigned char)b[i]);
        if (x != y) {
            return x < y ? -1 : 1;
        }
    }
    return an < bn ? -1 : an > bn ? 1 : 0;
}

static int wsp(int c)
{
    return c == ' ' || c == '\t';
}

/* subj-blob = "[" *BLOBCHAR "]" *WSP at p: the end, or 0 if none. */
static size_t subj_blob(const char *s, size_t p, size_t e)
{
    if (p >= e || s[p] != '[') {
        return 0;
    }
    for (size_t i = p + 1; i < e; i++) {
        if (s[i] == '[') {
            return 0;
        }
        if (s[i] == ']') {
            i++;
            while (i < e && wsp((unsigned char)s[i])) {
                i++;
            }
            return i;
        }
    }
    return 0;
}

/* *subj-blob subj-refwd at p, where subj-refwd = ("re" / ("fw" ["d"]))
 * *WSP [subj-blob] ":". Returns the end, or 0. */
static size_t subj_leader_refwd(const char *s, size_t p, size_t e)
{
    size_t k;
    while ((k = subj_blob(s, p, e)) != 0) {
        p = k;
    }
    if (e - p >= 2 && ascii_ncasecmp(s + p, "re", 2) == 0) {
        p += 2;
    } else if (e - p >= 2 && ascii_ncasecmp(s + p, "fw", 2) == 0) {
        p += 2;
        if (p < e && (s[p] == 'd' || s[p] == 'D')) {
            p++;
        }
    } else {
        return 0;
    }
    while (p < e && wsp((unsigned char)s[p])) {
        p++;
    }
    if ((k = subj_blob(s, p, e)) != 0) {
        p = k;
    }
    return p < e && s[p] == ':' ? p + 1 : 0;
}

int sort_base_subject(const char *s, size_t n, dbuf *out)
{
    if (!CONFIG_SORT) {
        return 0;
    }
    /* (1) Decode encoded words; tabs become spaces; runs of spaces one. */
    dbuf d = {0};
    mime_decode_header(s ? s : "", s ? n : 0, &d);
    size_t len = 0;
    for (size_t i = 0; i < d.len; i++) {
        char ch = d.p[i] == '\t' ? ' ' : d.p[i];
        if (ch == ' ' && len > 0 && d.p[len - 1] == ' ') {
            continue;
        }
        d.p[len++] = ch;
    }
    const char *t = d.p ? d.p : "";
    size_t b = 0, e = len;
    int refwd = 0;
    for (;;) {
        /* (2) Trailers: WSP and "(fwd)", repeatedly. */
        for (;;) {
            if (e > b && wsp((unsigned char)t[e - 1])) {
                e--;
            } else if (e - b >= 5 && ascii_ncasecmp(t + e - 5, "(fwd)", 5) == 0) {
                e -= 5;
                refwd = 1;
            } else {
                break;
            }
        }
        /* (3)-(5) Leaders, then a blob if something is left after it. */
        for (;;) {
            size_t before = b, k;
            for (;;) {
                if (b < e && wsp((unsigned char)t[b])) {
                    b++;
                } else if ((k = subj_leader_refwd(t, b, e)) != 0) {
                    b = k;
                    refwd = 1;
                } else {
                    break;
                }
            }
            k = subj_blob(t, b, e);
            if (k && k < e) {
                b = k;
            }
            if (b == before) {
                break;
            }
        }
        /* (6) "[fwd:" ... "]": unwrap and start again at (2). */
        if (e - b >= 6 && ascii_ncasecmp(t + b, "[fwd:", 5) == 0 && t[e - 1] == ']') {
            b += 5;
            e--;
            refwd = 1;
            continue;
        }
        break;
    }
    dbuf_add(out, t + b, e - b);
    dbuf_free(&d);
    return refwd;
}

/* ------------------------------------------------------------ dates */

static size_t skip_cfws(const char *s, size_t i, size_t n)
{
    int depth = 0;
    while (i < n) {
        char c = s[i];
        if (c == '(') {
            depth++;
        } else if (c == ')' && depth > 0) {
            depth--;
        } else if (!(depth > 0 || c == ' ' || c == '\t' || c == '\r' || c == '\n')) {
            break;
        }
        i++;
    }
    return i;
}

static int read_num(const char *s, size_t *i, size_t n, int maxd, int *v)
{
    int d = 0, x = 0;
    while (*i < n && s[*i] >= '0' && s[*i] <= '9' && d < maxd) {
        x = x * 10 + (s[*i] - '0');
        (*i)++;
        d++;
    }
    *v = x;
    return d;
}

int sort_parse_date(const char *s, size_t n, int64_t *t)
{
    if (!CONFIG_SORT) {
        return -1;
    }
    size_t i = skip_cfws(s, 0, n);
    const char *comma = memchr(s + i, ',', n - i);
    if (comma && comma - (s + i) <= 12) {
        i = skip_cfws(s, (size_t)(comma - s) + 1, n);
    }
    int day, year, hh, mm, ss = 0, nd;
    if (read_num(s, &i, n, 2, &day) == 0) {
        return -1;
    }
    i = skip_cfws(s, i, n);
    if (i < n && s[i] == '-') {
        i++;
    }
    if (n - i < 3) {
        return -1;
    }
    char mon[4] = {s[i], s[i + 1], s[i + 2], 0};
    int m = month_from_name(mon);
    i += 3;
    while (i < n && s[i] >= 'a' && s[i] <= 'z') {
        i++;    /* "June" */
    }
    i = skip_cfws(s, i, n);
    if (i < n && s[i] == '-') {
        i++;
    }
    nd = read_num(s, &i, n, 4, &year);
    if (nd == 2) {
        year += year < 50 ? 2000 : 1900;
    } else if (nd == 3) {
        year += 1900;
    } else if (nd != 4) {
        return -1;
    }
    i = skip_cfws(s, i, n);
    if (!m || day < 1 || day > 31 || read_num(s, &i, n, 2, &hh) == 0 || i >= n || s[i] != ':') {
        return -1;
    }
    i++;
    if (read_num(s, &i, n, 2, &mm) == 0) {
        return -1;
    }
    if (i < n && s[i] == ':') {
        i++;
        if (read_num(s, &i, n, 2, &ss) == 0) {
            return -1;
        }
    }
    if (hh > 23 || mm > 59 || ss > 60) {
        return -1;
    }
    i = skip_cfws(s, i, n);
    int zone = 0;   /* minutes east; unknown zones count as UTC (RFC 5322 4.3) */
    if (i < n && (s[i] == '+' || s[i] == '-')) {
        int z;
        size_t j = i + 1;
        if (read_num(s, &j, n, 4, &z) == 4) {
            zone = (z / 100) * 60 + z % 100;
            if (s[i] == '-') {
                zone = -zone;
            }
        }
    } else if (n - i >= 3) {
        static const struct { char name[4]; int h; } zones[] = {
            {"EDT", -4}, {"EST", -5}, {"CDT", -5}, {"CST", -6},
            {"MDT", -6}, {"MST", -7}, {"PDT", -7}, {"PST", -8},
        };
        for (size_t k = 0; k < sizeof zones / sizeof zones[0]; k++) {
            if (ascii_ncasecmp(s + i, zones[k].name, 3) == 0) {
                zone = zones[k].h * 60;
            }
        }
    }
    *t = days_from_civil(year, (unsigned)m, (unsigned)day) * 86400 + hh * 3600 + mm * 60 + ss -
         (int64_t)zone * 60;
    return 0;
}

/* ------------------------------------------------------------ addresses */

/* Read one IMAP string (quoted or literal) or NIL from an address list
 * mime_out_addresses wrote. Returns the position after it, or 0. */
static size_t imap_str(const char *s, size_t i, size_t n, dbuf *out, int *nil)
{
    *nil = 0;
    if (i + 3 <= n && memcmp(s + i, "NIL", 3) == 0) {
        *nil = 1;
        return i + 3;
    }
    if (i < n && s[i] == '"') {
        for (i++; i < n && s[i] != '"'; i++) {
            if (s[i] == '\\' && i + 1 < n) {
                i++;
            }
            dbuf_addc(out, s[i]);
        }
        return i < n ? i + 1 : 0;
    }
    if (i < n && s[i] == '{') {
        uint32_t len = 0;
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            len = len * 10 + (uint32_t)(s[i] - '0');
        }
        if (i + 3 > n || memcmp(s + i, "}\r\n", 3) != 0 || n - (i + 3) < len) {
            return 0;
        }
        dbuf_add(out, s + i + 3, len);
        return i + 3 + len;
    }
    return 0;
}

void sort_addr_mailbox(const char *s, size_t n, dbuf *out)
{
    if (!CONFIG_SORT) {
        return;
    }
    /* The address parser of ENVELOPE does the RFC 5322 work (comments,
     * quoting, groups, route addresses); take the first address with a
     * host from its output, skipping group markers. */
    dbuf o = {0};
    mime_out_addresses(&o, s, n);
    size_t i = 1;
    while (o.p && i < o.len && o.p[i] == '(') {
        dbuf f[4] = {{0}};
        int nil[4];
        size_t j = i + 1;
        for (int k = 0; k < 4 && j; k++) {
            j = imap_str(o.p, j, o.len, &f[k], &nil[k]);
            if (j && k < 3) {
                j = j < o.len && o.p[j] == ' ' ? j + 1 : 0;
            }
        }
        int done = 0;
        if (j && !nil[2] && !nil[3]) {
            dbuf_add(out, f[2].p ? f[2].p : "", f[2].len);
            done = 1;
        }
        for (int k = 0; k < 4; k++) {
            dbuf_free(&f[k]);
        }
        if (done || !j || j >= o.len || o.p[j] != ')') {
            break;
        }
        i = j + 1;
    }
    dbuf_free(&o);
}

/* ------------------------------------------------------------ threading */

#define T_NONE UINT32_MAX

typedef struct tnode {
    uint32_t parent, child, next;   /* links, T_NONE if none */
    uint32_t msg;                   /* index in t->msg[], T_NONE for a dummy */
    uint32_t id_off, id_len;        /* Message-ID in the arena; len 0 = none */
} tnode;

typedef struct tmsg {
    uint32_t num;                   /* printed number */
    uint32_t seq;                   /* order added (mailbox order) */
    int64_t  date;                  /* sent date */
    uint32_t subj_off, subj_len;    /* base subject in the arena */
    int      refwd;                 /* subject marks a reply or forward */
} tmsg;

struct sort_threader {
    int      algo;                  /* SORT_THREAD_* */
    tmsg    *msg;                   /* messages, mailbox order */
    uint32_t nmsg, capmsg;
    tnode   *node;                  /* containers (REFERENCES) */
    uint32_t nnode, capnode;
    uint32_t *hash;                 /* node indexes by Message-ID; T_NONE empty */
    uint32_t hcap;                  /* power of two */
    uint32_t hused;
    dbuf     arena;                 /* subjects and Message-IDs */
    int      oom;                   /* an allocation failed */
};

sort_threader *sort_threader_new(int algo)
{
    if (!CONFIG_SORT) {
        return NULL;
    }
    sort_threader *t = calloc(1, sizeof *t);
    if (t) {
        t->algo = algo;
    }
    return t;
}

void sort_threader_free(sort_threader *t)
{
    if (t) {
        free(t->msg);
        free(t->node);
        free(t->hash);
        dbuf_free(&t->arena);
        free(t);
    }
}

static const char *arena(const sort_threader *t, uint32_t off)
{
    return t->arena.p + off;
}

static uint32_t id_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    }
    return h;
}

static uint32_t new_node(sort_threader *t)
{
    if (t->nnode == t->capnode) {
        uint32_t cap = t->capnode ? t->capnode * 2 : 64;
        tnode *p = realloc(t->node, cap * sizeof *p);
        if (!p) {
            t->oom = 1;
            return T_NONE;
        }
        t->node = p;
        t->capnode = cap;
    }
    tnode *x = &t->node[t->nnode];
    x->parent = x->child = x->next = x->msg = T_NONE;
    x->id_off = x->id_len = 0;
    return t->nnode++;
}

static int hash_grow(sort_threader *t)
{
    uint32_t cap = t->hcap ? t->hcap * 2 : 256;
    uint32_t *h = malloc(cap * sizeof *h);
    if (!h) {
        t->oom = 1;
        return -1;
    }
    memset(h, 0xff, cap * sizeof *h);
    for (uint32_t i = 0; i < t->hcap; i++) {
        uint32_t k = t->hash[i];
        if (k != T_NONE) {
            uint32_t j = id_hash(arena(t, t->node[k].id_off), t->node[k].id_len) & (cap - 1);
            while (h[j] != T_NONE) {
                j = (j + 1) & (cap - 1);
            }
            h[j] = k;
        }
    }
    free(t->hash);
    t->hash = h;
    t->hcap = cap;
    return 0;
}

/* The node of a Message-ID; created (a dummy) if create and missing. */
static uint32_t id_node(sort_threader *t, const char *id, size_t n, int create)
{
    if (t->hused * 2 >= t->hcap && hash_grow(t) < 0) {
        return T_NONE;
    }
    uint32_t j = id_hash(id, n) & (t->hcap - 1);
    while (t->hash[j] != T_NONE) {
        tnode *x = &t->node[t->hash[j]];
        if (x->id_len == n && memcmp(arena(t, x->id_off), id, n) == 0) {
            return t->hash[j];
        }
        j = (j + 1) & (t->hcap - 1);
    }
    if (!create) {
        return T_NONE;
    }
    uint32_t off = (uint32_t)t->arena.len;
    uint32_t k = new_node(t);
    if (k == T_NONE || dbuf_add(&t->arena, id, n) < 0) {
        t->oom = 1;
        return T_NONE;
    }
    t->node[k].id_off = off;
    t->node[k].id_len = (uint32_t)n;
    t->hash[j] = k;
    t->hused++;
    return k;
}

/* The next msg-id "<...>" of s from *i (RFC 5322 3.6.4, leniently: no
 * white space or angle bracket inside, an '@' required). */
static int next_msgid(const char *s, size_t n, size_t *i, const char **id, size_t *len)
{
    while (s && *i < n) {
        const char *lt = memchr(s + *i, '<', n - *i);
        if (!lt) {
            *i = n;
            return 0;
        }
        size_t a = (size_t)(lt - s), k = a + 1;
        int at = 0;
        while (k < n && s[k] != '>' && s[k] != '<' && s[k] != ' ' && s[k] != '\t' &&
               s[k] != '\r' && s[k] != '\n') {
            at |= s[k] == '@';
            k++;
        }
        if (k < n && s[k] == '>' && at && k - a - 1 <= SORT_ID_MAX) {
            *id = s + a;
            *len = k - a + 1;
            *i = k + 1;
            return 1;
        }
        *i = k;
    }
    return 0;
}

static int is_ancestor(const sort_threader *t, uint32_t anc, uint32_t x)
{
    for (uint32_t p = x; p != T_NONE; p = t->node[p].parent) {
        if (p == anc) {
            return 1;
        }
    }
    return 0;
}

static void unlink_node(sort_threader *t, uint32_t x)
{
    uint32_t p = t->node[x].parent;
    if (p == T_NONE) {
        return;
    }
    uint32_t *pp = &t->node[p].child;
    while (*pp != x) {
        pp = &t->node[*pp].next;
    }
    *pp = t->node[x].next;
    t->node[x].next = T_NONE;
    t->node[x].parent = T_NONE;
}

static void add_child(sort_threader *t, uint32_t parent, uint32_t x)
{
    t->node[x].parent = parent;
    t->node[x].next = t->node[parent].child;
    t->node[parent].child = x;
}

/* RFC 5256 3, step 1 for one message: its own container, the chain of
 * its references, and its link to the last one. */
static void thread_link(sort_threader *t, uint32_t mi, const char *msgid, size_t il,
                        const char *refs, size_t rl, const char *irt, size_t irl)
{
    const char *id;
    size_t len, i = 0;
    uint32_t self = T_NONE;
    if (next_msgid(msgid, il, &i, &id, &len)) {
        self = id_node(t, id, len, 1);
        if (self != T_NONE && t->node[self].msg != T_NONE) {
            self = T_NONE;  /* duplicate: only the first message keeps it */
        }
    }
    if (self == T_NONE) {
        self = new_node(t);
        if (self == T_NONE) {
            return;
        }
    }
    t->node[self].msg = mi;
    /* (A) link the references in order, never changing a parent already
     * set, never making a loop. */
    const char *src = refs;
    size_t sn = rl;
    i = 0;
    if (!next_msgid(refs, rl, &i, &id, &len)) {
        src = irt;   /* no References: the first valid In-Reply-To id */
        sn = irl;
    }
    i = 0;
    uint32_t prev = T_NONE;
    int only_one = src == irt;
    while (next_msgid(src, sn, &i, &id, &len)) {
        uint32_t k = id_node(t, id, len, 1);
        if (k == T_NONE) {
            return;
        }
        if (prev != T_NONE && prev != k && t->node[k].parent == T_NONE && !is_ancestor(t, k, prev)) {
            add_child(t, prev, k);
        }
        prev = k;
        if (only_one) {
            break;
        }
    }
    /* (B) the last reference is the parent; an earlier guess is replaced,
     * and no references means no parent. */
    unlink_node(t, self);
    if (prev != T_NONE && prev != self && !is_ancestor(t, self, prev)) {
        add_child(t, prev, self);
    }
}

int sort_threader_add(sort_threader *t, uint32_t num, int64_t date,
                      const char *subject, size_t sl, const char *msgid, size_t il,
                      const char *refs, size_t rl, const char *irt, size_t irl)
{
    if (!CONFIG_SORT || t->oom) {
        return -1;
    }
    if (t->nmsg == t->capmsg) {
        uint32_t cap = t->capmsg ? t->capmsg * 2 : 64;
        tmsg *p = realloc(t->msg, cap * sizeof *p);
        if (!p) {
            t->oom = 1;
            return -1;
        }
        t->msg = p;
        t->capmsg = cap;
    }
    tmsg *m = &t->msg[t->nmsg];
    m->num = num;
    m->seq = t->nmsg;
    m->date = date;
    m->subj_off = (uint32_t)t->arena.len;
    m->refwd = sort_base_subject(subject, sl, &t->arena);
    if (t->arena.len - m->subj_off > SORT_KEY_MAX) {
        t->arena.len = m->subj_off + SORT_KEY_MAX;
    }
    m->subj_len = (uint32_t)(t->arena.len - m->subj_off);
    t->nmsg++;
    if (t->algo == SORT_THREAD_REFERENCES) {
        thread_link(t, t->nmsg - 1, msgid, il, refs, rl, irt, irl);
    }
    return t->oom ? -1 : 0;
}

/* The message a node sorts and is named by: its own, or for a dummy its
 * first child's (children are sorted before their parents' lists). */
static const tmsg *node_msg(const sort_threader *t, uint32_t x)
{
    while (x != T_NONE && t->node[x].msg == T_NONE) {
        x = t->node[x].child;
    }
    return x == T_NONE ? NULL : &t->msg[t->node[x].msg];
}

static const sort_threader *g_t;  /* qsort context: the loop is single-threaded */

static int by_date(const void *pa, const void *pb)
{
    const tmsg *a = node_msg(g_t, *(const uint32_t *)pa), *b = node_msg(g_t, *(const uint32_t *)pb);
    if (!a || !b) {
        return !a - !b;
    }
    if (a->date != b->date) {
        return a->date < b->date ? -1 : 1;
    }
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Sort a sibling list starting at *head by sent date. */
static int sort_list(sort_threader *t, uint32_t *head, uint32_t *tmp)
{
    uint32_t n = 0;
    for (uint32_t x = *head; x != T_NONE; x = t->node[x].next) {
        tmp[n++] = x;
    }
    if (n < 2) {
        return 0;
    }
    g_t = t;
    qsort(tmp, n, sizeof *tmp, by_date);
    *head = tmp[0];
    for (uint32_t k = 0; k + 1 < n; k++) {
        t->node[tmp[k]].next = tmp[k + 1];
    }
    t->node[tmp[n - 1]].next = T_NONE;
    return 0;
}

/* Thread output without recursion: walk down first children and back up
 * by parent links. A node with several children writes each of them in
 * parentheses; a single child continues the line. */
static void out_thread(const sort_threader *t, uint32_t root, dbuf *o)
{
    if (dbuf_addc(o, '(') < 0) {
        return;
    }
    uint32_t x = root;
    for (;;) {
        const tnode *nd = &t->node[x];
        if (nd->msg != T_NONE) {
            if (o->p[o->len - 1] != '(') {
                dbuf_addc(o, ' ');
            }
            dbuf_printf(o, "%u", t->msg[nd->msg].num);
        }
        if (nd->child != T_NONE) {
            if (t->node[nd->child].next != T_NONE) {
                if (o->p[o->len - 1] != '(') {
                    dbuf_addc(o, ' ');
                }
                dbuf_addc(o, '(');
            }
            x = nd->child;
            continue;
        }
        /* A leaf: close subtrees until one has a next sibling. */
        while (x != root) {
            uint32_t p = t->node[x].parent;
            int multi = t->node[t->node[p].child].next != T_NONE;
            if (multi) {
                dbuf_addc(o, ')');
            }
            if (t->node[x].next != T_NONE) {
                x = t->node[x].next;
                if (multi) {
                    dbuf_addc(o, '(');
                }
                break;
            }
            x = p;
        }
        if (x == root) {
            break;
        }
    }
    dbuf_addc(o, ')');
}

static int by_subject(const void *pa, const void *pb)
{
    const tmsg *a = &g_t->msg[*(const uint32_t *)pa], *b = &g_t->msg[*(const uint32_t *)pb];
    int r = sort_casemap_cmp(arena(g_t, a->subj_off), a->subj_len, arena(g_t, b->subj_off), b->subj_len);
    if (r) {
        return r;
    }
    if (a->date != b->date) {
        return a->date < b->date ? -1 : 1;
    }
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* ORDEREDSUBJECT (RFC 5256 3): sort by base subject then date; the first
 * of each subject is the parent of the others; threads by their first
 * message's date. Builds nodes 0..nmsg-1 (node i is message i). */
static int thread_orderedsubject(sort_threader *t, uint32_t *roots, uint32_t *nroots)
{
    uint32_t *ord = malloc((t->nmsg ? t->nmsg : 1) * sizeof *ord);
    if (!ord) {
        return -1;
    }
    for (uint32_t i = 0; i < t->nmsg; i++) {
        ord[i] = i;
        if (new_node(t) == T_NONE) {
            free(ord);
            return -1;
        }
        t->node[i].msg = i;
    }
    g_t = t;
    qsort(ord, t->nmsg, sizeof *ord, by_subject);
    uint32_t n = 0, last = T_NONE;
    for (uint32_t k = 0; k < t->nmsg; k++) {
        const tmsg *m = &t->msg[ord[k]];
        const tmsg *l = last == T_NONE ? NULL : &t->msg[last];
        if (l && sort_casemap_cmp(arena(t, l->subj_off), l->subj_len, arena(t, m->subj_off), m->subj_len) == 0) {
            /* Children in date order: append. */
            uint32_t *pp = &t->node[last].child;
            while (*pp != T_NONE) {
                pp = &t->node[*pp].next;
            }
            *pp = ord[k];
            t->node[ord[k]].parent = last;
        } else {
            last = ord[k];
            roots[n++] = last;
        }
    }
    free(ord);
    g_t = t;
    qsort(roots, n, sizeof *roots, by_date);
    *nroots = n;
    return 0;
}

/* The REFERENCES algorithm, steps 2-6 (step 1 ran as messages came). */
static int thread_references(sort_threader *t, uint32_t *roots, uint32_t *nroots, uint32_t *tmp)
{
    /* (3) Prune dummies. Below the root: a dummy gives its children to
     * its parent (in its place) and goes; order of processing does not
     * matter since each moves its current children up one level. */
    for (uint32_t x = 0; x < t->nnode; x++) {
        tnode *d = &t->node[x];
        if (d->msg != T_NONE || d->parent == T_NONE) {
            continue;
        }
        uint32_t p = d->parent;
        uint32_t *pp = &t->node[p].child;
        while (*pp != x) {
            pp = &t->node[*pp].next;
        }
        uint32_t after = d->next, c = d->child;
        if (c == T_NONE) {
            *pp = after;
        } else {
            *pp = c;
            uint32_t lastc = c;
            for (uint32_t k = c; k != T_NONE; k = t->node[k].next) {
                t->node[k].parent = p;
                lastc = k;
            }
            t->node[lastc].next = after;
        }
        d->parent = d->child = d->next = T_NONE;
        d->id_len = UINT32_MAX;     /* gone: not a root either */
    }
    /* (2) The root set, gathered before anything is promoted (a promoted
     * child later in the array must not be counted twice); then a root
     * dummy without children goes, with one child the child takes its
     * place. */
    uint32_t n = 0;
    for (uint32_t x = 0; x < t->nnode; x++) {
        tnode *d = &t->node[x];
        if (d->parent == T_NONE && !(d->msg == T_NONE && d->id_len == UINT32_MAX)) {
            roots[n++] = x;
        }
    }
    uint32_t kept = 0;
    for (uint32_t r = 0; r < n; r++) {
        tnode *d = &t->node[roots[r]];
        if (d->msg == T_NONE) {
            if (d->child == T_NONE) {
                continue;
            }
            if (t->node[d->child].next == T_NONE) {
                uint32_t c = d->child;
                t->node[c].parent = T_NONE;
                d->child = T_NONE;
                roots[kept++] = c;
                continue;
            }
        }
        roots[kept++] = roots[r];
    }
    n = kept;
    /* Children lists sorted (a dummy is named by its first child). */
    for (uint32_t x = 0; x < t->nnode; x++) {
        sort_list(t, &t->node[x].child, tmp);
    }
    /* (4) Roots by date. */
    g_t = t;
    qsort(roots, n, sizeof *roots, by_date);
    /* (5) Gather by subject. The table maps a base subject to a root
     * slot; open addressing over slot numbers. */
    uint32_t hcap = 16;
    while (hcap < n * 2) {
        hcap *= 2;
    }
    uint32_t *h = malloc(hcap * sizeof *h);
    if (!h) {
        return -1;
    }
    memset(h, 0xff, hcap * sizeof *h);
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t r = 0; r < n; r++) {
            uint32_t x = roots[r];
            if (x == T_NONE) {
                continue;
            }
            const tmsg *m = node_msg(t, x);
            if (!m || m->subj_len == 0) {
                continue;
            }
            const char *sb = arena(t, m->subj_off);
            uint32_t j = id_hash(sb, m->subj_len) & (hcap - 1);
            while (h[j] != T_NONE) {
                const tmsg *o = node_msg(t, roots[h[j]]);
                if (o && sort_casemap_cmp(arena(t, o->subj_off), o->subj_len, sb, m->subj_len) == 0) {
                    break;
                }
                j = (j + 1) & (hcap - 1);
            }
            int cur_dummy = t->node[x].msg == T_NONE;
            if (pass == 0) {
                /* (B) fill the table: a dummy, or a non-reply, wins. */
                if (h[j] == T_NONE) {
                    h[j] = r;
                    continue;
                }
                uint32_t y = roots[h[j]];
                int y_dummy = t->node[y].msg == T_NONE;
                int y_refwd = !y_dummy && t->msg[t->node[y].msg].refwd;
                if ((cur_dummy && !y_dummy) || (y_refwd && !cur_dummy && !m->refwd)) {
                    h[j] = r;
                }
                continue;
            }
            /* (C) merge with the message in the table. */
            uint32_t slot = h[j];
            uint32_t y = roots[slot];
            if (y == x) {
                continue;
            }
            int y_dummy = t->node[y].msg == T_NONE;
            int cur_refwd = !cur_dummy && m->refwd;
            int y_refwd = !y_dummy && t->msg[t->node[y].msg].refwd;
            roots[r] = T_NONE;
            if (cur_dummy && y_dummy) {
                uint32_t *pp = &t->node[y].child;
                while (*pp != T_NONE) {
                    pp = &t->node[*pp].next;
                }
                *pp = t->node[x].child;
                for (uint32_t k = t->node[x].child; k != T_NONE; k = t->node[k].next) {
                    t->node[k].parent = y;
                }
                t->node[x].child = T_NONE;
            } else if (y_dummy || (cur_refwd && !y_refwd)) {
                add_child(t, y, x);
            } else {
                /* A new dummy takes y's place: y's contents move to a new
                 * node so the table and slot keep pointing at the dummy. */
                uint32_t z = new_node(t);
                if (z == T_NONE) {
                    free(h);
                    return -1;
                }
                tnode *yy = &t->node[y];
                t->node[z] = *yy;
                t->node[z].parent = T_NONE;
                t->node[z].next = T_NONE;
                for (uint32_t k = t->node[z].child; k != T_NONE; k = t->node[k].next) {
                    t->node[k].parent = z;
                }
                yy = &t->node[y];
                yy->msg = T_NONE;
                yy->child = T_NONE;
                yy->id_len = 0;
                add_child(t, y, z);
                add_child(t, y, x);
            }
        }
    }
    free(h);
    /* (6) Every sibling list by date (dummies only at the top, so one
     * pass over the children lists, then the roots, is bottom-up). */
    for (uint32_t x = 0; x < t->nnode; x++) {
        sort_list(t, &t->node[x].child, tmp);
    }
    uint32_t k = 0;
    for (uint32_t r = 0; r < n; r++) {
        if (roots[r] != T_NONE) {
            roots[k++] = roots[r];
        }
    }
    g_t = t;
    qsort(roots, k, sizeof *roots, by_date);
    *nroots = k;
    return 0;
}

int sort_threader_finish(sort_threader *t, dbuf *out)
{
    if (!CONFIG_SORT || t->oom) {
        return -1;
    }
    uint32_t cap = (t->nnode > t->nmsg ? t->nnode : t->nmsg) * 2 + 1;
    uint32_t *roots = malloc(cap * sizeof *roots);
    uint32_t *tmp = malloc(cap * sizeof *tmp);
    uint32_t n = 0;
    int rc = -1;
    if (roots && tmp) {
        rc = t->algo == SORT_THREAD_REFERENCES ? thread_references(t, roots, &n, tmp)
                                               : thread_orderedsubject(t, roots, &n);
    }
    for (uint32_t r = 0; rc == 0 && r < n; r++) {
        out_thread(t, roots[r], out);
    }
    free(roots);
    free(tmp);
    return rc;
}

/* ------------------------------------------------------------ commands */

enum { SK_ARRIVAL = 1, SK_CC, SK_DATE, SK_FROM, SK_SIZE, SK_SUBJECT, SK_TO };
#define SORT_MAX_CRIT 16   /* more criteria than keys is a client bug */

typedef struct skeyrec {
    uint32_t idx;                   /* msg[] index */
    uint32_t num;                   /* printed number */
    int64_t  date;                  /* sent date (DATE) */
    uint32_t off[3], len[3];        /* SUBJECT/FROM, TO, CC strings (slot
                                       per needed key) in the arena */
} skeyrec;

typedef struct sortctx {
    int      key[SORT_MAX_CRIT];    /* SK_* */
    int      rev[SORT_MAX_CRIT];    /* REVERSE */
    int      slot[SORT_MAX_CRIT];   /* string slot of the key, -1 none */
    int      nkey;
    st_box  *box;
    dbuf     arena;                 /* key strings */
} sortctx;

static const sortctx *g_s;

static int cmp_rec(const void *pa, const void *pb)
{
    const skeyrec *a = pa, *b = pb;
    const st_msg *ma = &g_s->box->msg[a->idx], *mb = &g_s->box->msg[b->idx];
    for (int k = 0; k < g_s->nkey; k++) {
        int r = 0, sl = g_s->slot[k];
        switch (g_s->key[k]) {
        case SK_ARRIVAL:
            r = ma->idate < mb->idate ? -1 : ma->idate > mb->idate;
            break;
        case SK_DATE:
            r = a->date < b->date ? -1 : a->date > b->date;
            break;
        case SK_SIZE:
            r = ma->size < mb->size ? -1 : ma->size > mb->size;
            break;
        default:
            r = sort_casemap_cmp(g_s->arena.p + a->off[sl], a->len[sl], g_s->arena.p + b->off[sl], b->len[sl]);
            break;
        }
        if (r) {
            return g_s->rev[k] ? -r : r;
        }
    }
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* Messages the session sees that match the criteria, as a byte map over
 * msg[]. NULL after replying BAD/NO. */
static uint8_t *select_msgs(imap_conn *c, args *a)
{
    const char *cs;
    uint32_t cl;
    if (arg_astring(a, &cs, &cl) < 0) {
        reply(c, "BAD", "Missing charset");
        return NULL;
    }
    st_box *box = c->sess->box;
    uint8_t *match = calloc(box->count ? box->count : 1, 1);
    if (!match) {
        reply(c, "NO", "[SERVERBUG] Out of memory");
        return NULL;
    }
    const char *why = NULL;
    int r = search_match(c, a, cs, match, &why);
    if (r == -2) {
        reply(c, "NO", "[BADCHARSET (US-ASCII UTF-8 ISO-8859-1)] Unsupported charset");
    } else if (r < 0) {
        reply(c, "BAD", "%s", why ? why : "Invalid search criteria");
    }
    if (r < 0) {
        free(match);
        return NULL;
    }
    return match;
}

/* The sent date of a tree's root header, else INTERNALDATE. */
static int64_t sent_date(const mime_tree *tr, int have, const st_msg *m)
{
    size_t n;
    int64_t t;
    const char *d = have ? mime_get(tr, 0, MIME_S_DATE, &n) : NULL;
    return d && sort_parse_date(d, n, &t) == 0 ? t : m->idate;
}

static void put_key(dbuf *ar, skeyrec *r, int sl, const char *s, size_t n, int addr)
{
    size_t off = ar->len;
    if (s && addr) {
        sort_addr_mailbox(s, n, ar);
    } else if (s) {
        sort_base_subject(s, n, ar);
    }
    if (ar->len - off > SORT_KEY_MAX) {
        ar->len = off + SORT_KEY_MAX;
    }
    r->off[sl] = (uint32_t)off;
    r->len[sl] = (uint32_t)(ar->len - off);
}

void cmd_sort(imap_conn *c, args *a, int uid)
{
    if (!CONFIG_SORT) {
        reply(c, "BAD", "Unknown command");
        return;
    }
    sortctx x = {0};
    view_notify(c->sess, uid);
    if (arg_lparen(a) < 0) {
        reply(c, "BAD", "Missing sort criteria");
        return;
    }
    static const struct { const char *name; int key; } names[] = {
        {"ARRIVAL", SK_ARRIVAL}, {"CC", SK_CC}, {"DATE", SK_DATE}, {"FROM", SK_FROM},
        {"SIZE", SK_SIZE}, {"SUBJECT", SK_SUBJECT}, {"TO", SK_TO},
    };
    int nslot = 0, rev = 0;
    const char *s;
    uint32_t n;
    while (arg_rparen(a) < 0) {
        if (arg_atom(a, &s, &n) < 0 || x.nkey == SORT_MAX_CRIT) {
            reply(c, "BAD", "Invalid sort criteria");
            return;
        }
        if (!ascii_casecmp(s, "REVERSE") && !rev) {
            rev = 1;
            continue;
        }
        int key = 0;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            if (!ascii_casecmp(s, names[i].name)) {
                key = names[i].key;
            }
        }
        if (!key) {
            reply(c, "BAD", "Unknown sort criterion");
            return;
        }
        x.slot[x.nkey] = -1;
        if (key == SK_SUBJECT || key == SK_FROM || key == SK_TO || key == SK_CC) {
            for (int k = 0; k < x.nkey; k++) {
                if (x.key[k] == key) {
                    x.slot[x.nkey] = x.slot[k];
                }
            }
            if (x.slot[x.nkey] < 0) {
                if (nslot == 3) {
                    reply(c, "BAD", "Too many sort criteria");
                    return;
                }
                x.slot[x.nkey] = nslot++;
            }
        }
        x.key[x.nkey] = key;
        x.rev[x.nkey] = rev;
        x.nkey++;
        rev = 0;
    }
    if (x.nkey == 0 || rev) {
        reply(c, "BAD", "Invalid sort criteria");
        return;
    }
    uint8_t *match = select_msgs(c, a);
    if (!match) {
        return;
    }
    imap_sess *ss = c->sess;
    st_box *box = ss->box;
    x.box = box;
    uint32_t cnt = 0;
    for (uint32_t i = 0; i < box->count; i++) {
        cnt += match[i];
    }
    skeyrec *rec = malloc((cnt ? cnt : 1) * sizeof *rec);
    if (!rec) {
        free(match);
        reply(c, "NO", "[SERVERBUG] Out of memory");
        return;
    }
    int need_hdr = 0;
    for (int k = 0; k < x.nkey; k++) {
        need_hdr |= x.key[k] != SK_ARRIVAL && x.key[k] != SK_SIZE;
    }
    uint32_t m = 0;
    for (uint32_t i = 0; i < box->count; i++) {
        if (!match[i]) {
            continue;
        }
        skeyrec *r = &rec[m++];
        memset(r, 0, sizeof *r);
        r->idx = i;
        r->num = uid ? box->msg[i].uid : view_idx2seq(ss, i);
        mime_tree tr = {0};
        int have = need_hdr && mime_tree_get(box, i, 0, &tr) == 0;
        r->date = sent_date(&tr, have, &box->msg[i]);
        unsigned filled = 0;
        for (int k = 0; k < x.nkey; k++) {
            static const int field[] = {
                [SK_CC] = MIME_S_CC, [SK_FROM] = MIME_S_FROM, [SK_SUBJECT] = MIME_S_SUBJECT,
                [SK_TO] = MIME_S_TO,
            };
            int key = x.key[k];
            if (x.slot[k] < 0 || (filled & (1u << x.slot[k]))) {
                continue;
            }
            filled |= 1u << x.slot[k];
            size_t fl = 0;
            const char *f = have ? mime_get(&tr, 0, field[key], &fl) : NULL;
            put_key(&x.arena, r, x.slot[k], f, fl, key != SK_SUBJECT);
        }
        mime_tree_free(&tr);
    }
    free(match);
    g_s = &x;
    qsort(rec, m, sizeof *rec, cmp_rec);
    out_puts(c, "* SORT");
    for (uint32_t k = 0; k < m; k++) {
        out_printf(c, " %u", rec[k].num);
    }
    out_puts(c, "\r\n");
    free(rec);
    dbuf_free(&x.arena);
    reply(c, "OK", "%sSORT completed", uid ? "UID " : "");
}

/* The References field of message idx (its tail, at most SORT_REFS_MAX
 * bytes), read from the root header. */
static void read_references(st_box *box, uint32_t idx, uint32_t hdr_len, dbuf *out)
{
    st_reader rd;
    if (st_reader_open(&rd, box, idx) < 0) {
        return;
    }
    static const char name[] = "references:";
    char buf[4096];
    uint32_t pos = 0;
    int bol = 1, in = 0;
    unsigned nm = 0;    /* bytes of name matched at line start; 99 = no */
    while (pos < hdr_len) {
        size_t want = hdr_len - pos < sizeof buf ? hdr_len - pos : sizeof buf;
        long got = st_reader_read(&rd, buf, want);
        if (got <= 0) {
            break;
        }
        pos += (uint32_t)got;
        for (long i = 0; i < got; i++) {
            char ch = buf[i];
            if (bol) {
                bol = 0;
                if (!(ch == ' ' || ch == '\t')) {
                    in = 0;
                    nm = 0;
                }
            }
            if (ch == '\n') {
                bol = 1;
                if (in) {
                    dbuf_addc(out, ' ');
                }
                continue;
            }
            if (in) {
                if (ch != '\r') {
                    dbuf_addc(out, ch);
                }
                if (out->len > 2 * SORT_REFS_MAX) {
                    memmove(out->p, out->p + out->len - SORT_REFS_MAX, SORT_REFS_MAX);
                    out->len = SORT_REFS_MAX;
                }
            } else if (nm < sizeof name - 1) {
                nm = ascii_lower((unsigned char)ch) == name[nm] ? nm + 1 : 99;
                in = nm == sizeof name - 1;
            }
        }
    }
    st_reader_close(&rd);
}

void cmd_thread(imap_conn *c, args *a, int uid)
{
    if (!CONFIG_SORT) {
        reply(c, "BAD", "Unknown command");
        return;
    }
    view_notify(c->sess, uid);
    const char *s;
    uint32_t n;
    int algo = 0;
    if (arg_atom(a, &s, &n) < 0) {
        reply(c, "BAD", "Missing threading algorithm");
        return;
    }
    if (!ascii_casecmp(s, "ORDEREDSUBJECT")) {
        algo = SORT_THREAD_ORDEREDSUBJECT;
    } else if (!ascii_casecmp(s, "REFERENCES")) {
        algo = SORT_THREAD_REFERENCES;
    } else {
        reply(c, "BAD", "Unsupported threading algorithm");
        return;
    }
    uint8_t *match = select_msgs(c, a);
    if (!match) {
        return;
    }
    imap_sess *ss = c->sess;
    st_box *box = ss->box;
    sort_threader *t = sort_threader_new(algo);
    dbuf refs = {0}, out = {0};
    int rc = t ? 0 : -1;
    for (uint32_t i = 0; rc == 0 && i < box->count; i++) {
        if (!match[i]) {
            continue;
        }
        mime_tree tr = {0};
        int have = mime_tree_get(box, i, 0, &tr) == 0;
        size_t sl = 0, il = 0, rl = 0;
        const char *subj = have ? mime_get(&tr, 0, MIME_S_SUBJECT, &sl) : NULL;
        const char *mid = have ? mime_get(&tr, 0, MIME_S_MESSAGE_ID, &il) : NULL;
        const char *irt = have ? mime_get(&tr, 0, MIME_S_IN_REPLY_TO, &rl) : NULL;
        dbuf_reset(&refs);
        if (algo == SORT_THREAD_REFERENCES && have) {
            read_references(box, i, tr.part[0].hdr_len, &refs);
        }
        rc = sort_threader_add(t, uid ? box->msg[i].uid : view_idx2seq(ss, i),
                               sent_date(&tr, have, &box->msg[i]), subj, sl, mid, il,
                               refs.p, refs.len, irt, rl);
        mime_tree_free(&tr);
    }
    free(match);
    dbuf_free(&refs);
    if (rc == 0) {
        rc = sort_threader_finish(t, &out);
    }
    sort_threader_free(t);
    if (rc < 0) {
        dbuf_free(&out);
        reply(c, "NO", "[SERVERBUG] Out of memory");
        return;
    }
    out_puts(c, "* THREAD");
    if (out.len) {
        out_puts(c, " ");
        out_write(c, out.p, out.len);
    }
    out_puts(c, "\r\n");
    dbuf_free(&out);
    reply(c, "OK", "%sTHREAD completed", uid ? "UID " : "");
}
