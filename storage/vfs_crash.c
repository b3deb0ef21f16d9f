/*
 * vfs_crash.c -- power-cut simulation (after SQLite's test6.c).
 *
 * Writes go through to the base files at once, but every write and truncate
 * not yet covered by a sync of its file is remembered with the bytes it
 * replaced. Events are counted: each pwrite, truncate, sync, directory sync,
 * rename and remove. At event number crash_at the power goes: all unsynced
 * changes of every file are undone, then each one is, in order, kept,
 * dropped, or torn (a random prefix kept and the rest of its range filled
 * with garbage), chosen by a seeded PRNG; from then on every call fails with
 * ST_EIO. A crash at a sync or rename happens before it takes effect.
 *
 * Directory operations (create, rename, remove) are treated as durable once
 * done: the store syncs the directory after them, and a journaling file
 * system keeps them in order.
 */
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "vfs.h"

typedef struct op {
    struct op *next;
    int      trunc;     /* a truncate, else a write */
    uint64_t off, len;  /* write: the range; truncate: off = new size */
    uint64_t old_size;  /* file size before the change */
    uint8_t *newd;      /* write: the bytes written */
    uint8_t *oldd;      /* the bytes replaced (within old_size) */
    uint64_t oldlen;
} op;

typedef struct node {
    struct node *next;
    uint64_t dev, ino;
    st_file *h;         /* base handle for undo/redo, kept until release */
    op *ops, *last;     /* unsynced changes, oldest first */
} node;

typedef struct cvfs {
    st_vfs v;           /* first: the layer is freed through it */
    const st_vfs *base;
    st_crash *c;
    node *nodes;
    uint32_t rng;
    st_vdefer defer;    /* syncs "in flight": done at their start */
} cvfs;

typedef struct cfile {
    st_file base;
    st_file *in;
    node *n;
} cfile;

static uint32_t rnd(cvfs *w)
{
    uint32_t x = w->rng ? w->rng : 0x9e3779b9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return w->rng = x;
}

static void free_ops(node *n)
{
    for (op *o = n->ops, *nx; o; o = nx) {
        nx = o->next;
        free(o->newd);
        free(o->oldd);
        free(o);
    }
    n->ops = n->last = NULL;
}

static uint64_t size_of(st_file *h)
{
    st_stat st;
    return st_vfstat(h, &st) ? 0 : st.size;
}

/* The power goes: undo every unsynced change, then redo some, tear some. */
static void power_cut(cvfs *w)
{
    w->rng = w->c->seed * 2654435761u + (uint32_t)w->c->crash_at;
    for (node *n = w->nodes; n; n = n->next) {
        size_t k = 0;
        for (op *o = n->ops; o; o = o->next) {
            k++;
        }
        if (!k) {
            continue;
        }
        op **v = malloc(k * sizeof *v);
        if (!v) {
            continue;
        }
        k = 0;
        for (op *o = n->ops; o; o = o->next) {
            v[k++] = o;
        }
        for (size_t i = k; i-- > 0;) {
            op *o = v[i];
            if (o->trunc) {
                st_vtruncate(n->h, o->old_size);
                if (o->oldlen) {
                    st_vpwrite(n->h, o->oldd, o->oldlen, o->off);
                }
            } else {
                if (o->oldlen) {
                    st_vpwrite(n->h, o->oldd, o->oldlen, o->off);
                }
                st_vtruncate(n->h, o->old_size);
            }
        }
        for (size_t i = 0; i < k; i++) {
            op *o = v[i];
            unsigned fate = rnd(w) % 3; /* 0 keep, 1 drop, 2 tear */
            if (o->trunc) {
                if (fate != 1) {
                    st_vtruncate(n->h, o->off);
                }
            } else if (fate == 0) {
                st_vpwrite(n->h, o->newd, o->len, o->off);
            } else if (fate == 2 && o->len) {
                uint8_t *g = malloc(o->len);
                if (g) {
                    uint64_t keep = rnd(w) % (o->len + 1);
                    memcpy(g, o->newd, keep);
                    for (uint64_t j = keep; j < o->len; j++) {
                        g[j] = (uint8_t)rnd(w);
                    }
                    st_vpwrite(n->h, g, o->len, o->off);
                    free(g);
                }
            }
        }
        free(v);
        free_ops(n);
    }
    w->c->crashed = 1;
}

/* Count an event; 1 if the power goes now. */
static int event(cvfs *w)
{
    w->c->events++;
    return w->c->crash_at && w->c->events == w->c->crash_at;
}

static node *node_for(cvfs *w, st_file *in, const char *path)
{
    st_stat st;
    if (st_vfstat(in, &st)) {
        return NULL;
    }
    for (node *n = w->nodes; n; n = n->next) {
        if (n->dev == st.dev && n->ino == st.ino) {
            return n;
        }
    }
    node *n = calloc(1, sizeof *n);
    if (!n) {
        return NULL;
    }
    if (w->base->open(w->base, path, ST_O_WRITE, &n->h)) {
        free(n);
        return NULL;
    }
    n->dev = st.dev;
    n->ino = st.ino;
    n->next = w->nodes;
    w->nodes = n;
    return n;
}

#define W(v) ((cvfs *)(v))
#define DEAD(v) (W(v)->c->crashed)

static int c_open(const st_vfs *v, const char *path, int flags, st_file **out)
{
    cvfs *w = W(v);
    if (DEAD(v)) {
        return ST_EIO;
    }
    cfile *f = malloc(sizeof *f);
    if (!f) {
        return ST_ENOMEM;
    }
    int r = w->base->open(w->base, path, flags, &f->in);
    if (r) {
        free(f);
        return r;
    }
    f->n = node_for(w, f->in, path);
    if (!f->n) {
        st_vclose(f->in);
        free(f);
        return ST_EIO;
    }
    f->base.vfs = v;
    *out = &f->base;
    return 0;
}

static int c_close(st_file *fl)
{
    cfile *f = (cfile *)fl;
    st_vclose(f->in);
    free(f);
    return 0;
}

static long c_pread(st_file *fl, void *buf, size_t n, uint64_t off)
{
    return DEAD(fl->vfs) ? ST_EIO : st_vpread(((cfile *)fl)->in, buf, n, off);
}

static op *new_op(node *n, uint64_t from, uint64_t to)
{
    op *o = calloc(1, sizeof *o);
    if (!o) {
        return NULL;
    }
    o->old_size = size_of(n->h);
    uint64_t end = to < o->old_size ? to : o->old_size;
    if (end > from) {
        o->oldlen = end - from;
        o->oldd = malloc(o->oldlen);
        if (!o->oldd || st_vpread(n->h, o->oldd, o->oldlen, from) != (long)o->oldlen) {
            free(o->oldd);
            free(o);
            return NULL;
        }
    }
    if (n->last) {
        n->last->next = o;
    } else {
        n->ops = o;
    }
    n->last = o;
    return o;
}

static int c_pwrite(st_file *fl, const void *buf, size_t len, uint64_t off)
{
    cfile *f = (cfile *)fl;
    cvfs *w = W(fl->vfs);
    if (DEAD(w)) {
        return ST_EIO;
    }
    int boom = event(w);
    op *o = new_op(f->n, off, off + len);
    if (!o) {
        return ST_ENOMEM;
    }
    o->off = off;
    o->len = len;
    o->newd = malloc(len ? len : 1);
    if (!o->newd) {
        return ST_ENOMEM;
    }
    memcpy(o->newd, buf, len);
    int r = st_vpwrite(f->in, buf, len, off);
    if (boom) {
        power_cut(w); /* the write was in flight: it may be torn too */
        return ST_EIO;
    }
    return r;
}

static int c_truncate(st_file *fl, uint64_t size)
{
    cfile *f = (cfile *)fl;
    cvfs *w = W(fl->vfs);
    if (DEAD(w)) {
        return ST_EIO;
    }
    int boom = event(w);
    op *o = new_op(f->n, size, UINT64_MAX);
    if (!o) {
        return ST_ENOMEM;
    }
    o->trunc = 1;
    o->off = size;
    int r = st_vtruncate(f->in, size);
    if (boom) {
        power_cut(w);
        return ST_EIO;
    }
    return r;
}

static int c_sync(st_file *fl)
{
    cfile *f = (cfile *)fl;
    cvfs *w = W(fl->vfs);
    if (DEAD(w)) {
        return ST_EIO;
    }
    if (event(w)) {
        power_cut(w);
        return ST_EIO;
    }
    int r = st_vsync(f->in);
    if (!r) {
        free_ops(f->n);
    }
    return r;
}

static int c_fstat(st_file *fl, st_stat *st)
{
    return DEAD(fl->vfs) ? ST_EIO : st_vfstat(((cfile *)fl)->in, st);
}

static int c_lock(st_file *fl, int how, int wait)
{
    if (DEAD(fl->vfs) && how != ST_LOCK_UN) {
        return ST_EIO;
    }
    return st_vlock(((cfile *)fl)->in, how, wait);
}

static int c_stat(const st_vfs *v, const char *path, st_stat *st)
{
    return DEAD(v) ? ST_EIO : W(v)->base->stat(W(v)->base, path, st);
}

static int c_rename(const st_vfs *v, const char *a, const char *b)
{
    if (DEAD(v)) {
        return ST_EIO;
    }
    if (event(W(v))) {
        power_cut(W(v));
        return ST_EIO;
    }
    return W(v)->base->rename(W(v)->base, a, b);
}

static int c_remove(const st_vfs *v, const char *path)
{
    if (DEAD(v)) {
        return ST_EIO;
    }
    if (event(W(v))) {
        power_cut(W(v));
        return ST_EIO;
    }
    return W(v)->base->remove(W(v)->base, path);
}

static int c_mkdir(const st_vfs *v, const char *path)
{
    return DEAD(v) ? ST_EIO : W(v)->base->mkdir(W(v)->base, path);
}

static int c_rmdir(const st_vfs *v, const char *path)
{
    return DEAD(v) ? ST_EIO : W(v)->base->rmdir(W(v)->base, path);
}

static int c_list(const st_vfs *v, const char *dir, int (*cb)(void *, const char *), void *ctx)
{
    return DEAD(v) ? ST_EIO : W(v)->base->list(W(v)->base, dir, cb, ctx);
}

static int c_sync_dir(const st_vfs *v, const char *path)
{
    if (DEAD(v)) {
        return ST_EIO;
    }
    if (event(W(v))) {
        power_cut(W(v));
        return ST_EIO;
    }
    return W(v)->base->sync_dir(W(v)->base, path);
}

static int c_sync_start(st_file *fl, void *tag)
{
    return st_vdefer_start(&W(fl->vfs)->defer, fl, tag);
}

static int c_sync_reap(const st_vfs *v, int wait, void (*done)(void *, void *, int), void *ctx)
{
    (void)wait;
    return st_vdefer_reap(&W(v)->defer, done, ctx);
}

st_vfs *st_vfs_crash(const st_vfs *base, st_crash *c)
{
    cvfs *w = calloc(1, sizeof *w);
    if (!w) {
        return NULL;
    }
    w->base = base;
    w->c = c;
    w->v = (st_vfs){
        .name = "crash", .ctx = c, .cnt = base->cnt,
        .open = c_open, .close = c_close, .pread = c_pread, .pwrite = c_pwrite,
        .truncate = c_truncate, .sync = c_sync, .fstat = c_fstat, .lock = c_lock,
        .stat = c_stat, .rename = c_rename, .remove = c_remove, .mkdir = c_mkdir,
        .rmdir = c_rmdir, .list = c_list, .sync_dir = c_sync_dir,
        .sync_start = c_sync_start, .sync_reap = c_sync_reap,
    };
    return &w->v;
}

/* Called by st_vfs_layer_free before it frees the table. */
void st_vfs_crash_release(st_vfs *v)
{
    cvfs *w = W(v);
    for (node *n = w->nodes, *nx; n; n = nx) {
        nx = n->next;
        free_ops(n);
        st_vclose(n->h);
        free(n);
    }
    w->nodes = NULL;
}
