/*
 * vfs_fault.c -- a vfs layer that fails the Nth call of a kind (SQLite's
 * test_vfs.c idea). A failing pwrite first writes half of its bytes, as a
 * disk that fills up mid-write does, so callers must clean up partial data.
 */
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "vfs.h"

typedef struct ffile {
    st_file base;
    st_file *in;
} ffile;

/* the base vfs is kept in a small wrapper around the table */
typedef struct fvfs {
    st_vfs v;
    const st_vfs *base;
    st_vdefer defer;
} fvfs;

/* Count a call; nonzero: fail it with that code. */
static int hit(const st_vfs *v, int kind)
{
    st_fault *f = v->ctx;
    f->calls[kind]++;
    f->calls[ST_FK_ANY]++;
    if (!f->fail_at || (f->kind != kind && f->kind != ST_FK_ANY)) {
        return 0;
    }
    uint64_t n = f->calls[f->kind];
    if (n == f->fail_at || (f->persist && n > f->fail_at)) {
        f->fired = 1;
        return f->err ? f->err : ST_EIO;
    }
    return 0;
}

static const st_vfs *base_of(const st_vfs *v)
{
    return ((const fvfs *)v)->base;
}

static int f_open(const st_vfs *v, const char *path, int flags, st_file **out)
{
    int r = hit(v, ST_FK_OPEN);
    if (r) {
        return r;
    }
    ffile *f = malloc(sizeof *f);
    if (!f) {
        return ST_ENOMEM;
    }
    const st_vfs *b = base_of(v);
    if ((r = b->open(b, path, flags, &f->in)) != 0) {
        free(f);
        return r;
    }
    f->base.vfs = v;
    *out = &f->base;
    return 0;
}

static int f_close(st_file *fl)
{
    ffile *f = (ffile *)fl;
    int r = st_vclose(f->in);
    free(f);
    return r;
}

static long f_pread(st_file *fl, void *buf, size_t n, uint64_t off)
{
    ffile *f = (ffile *)fl;
    int r = hit(fl->vfs, ST_FK_READ);
    return r ? r : st_vpread(f->in, buf, n, off);
}

static int f_pwrite(st_file *fl, const void *buf, size_t n, uint64_t off)
{
    ffile *f = (ffile *)fl;
    int r = hit(fl->vfs, ST_FK_WRITE);
    if (r) {
        if (n > 1) {
            st_vpwrite(f->in, buf, n / 2, off); /* a short write, then the error */
        }
        return r;
    }
    return st_vpwrite(f->in, buf, n, off);
}

static int f_truncate(st_file *fl, uint64_t size)
{
    int r = hit(fl->vfs, ST_FK_TRUNC);
    return r ? r : st_vtruncate(((ffile *)fl)->in, size);
}

static int f_sync(st_file *fl)
{
    int r = hit(fl->vfs, ST_FK_SYNC);
    return r ? r : st_vsync(((ffile *)fl)->in);
}

static int f_fstat(st_file *fl, st_stat *st)
{
    int r = hit(fl->vfs, ST_FK_STAT);
    return r ? r : st_vfstat(((ffile *)fl)->in, st);
}

static int f_lock(st_file *fl, int how, int wait)
{
    /* unlocking never fails: a failed unlock would leave a stuck lock,
     * which no real file system does */
    int r = how == ST_LOCK_UN ? 0 : hit(fl->vfs, ST_FK_LOCK);
    return r ? r : st_vlock(((ffile *)fl)->in, how, wait);
}

static int f_stat(const st_vfs *v, const char *path, st_stat *st)
{
    int r = hit(v, ST_FK_STAT);
    return r ? r : base_of(v)->stat(base_of(v), path, st);
}

static int f_rename(const st_vfs *v, const char *a, const char *b)
{
    int r = hit(v, ST_FK_RENAME);
    return r ? r : base_of(v)->rename(base_of(v), a, b);
}

static int f_remove(const st_vfs *v, const char *path)
{
    int r = hit(v, ST_FK_REMOVE);
    return r ? r : base_of(v)->remove(base_of(v), path);
}

static int f_mkdir(const st_vfs *v, const char *path)
{
    int r = hit(v, ST_FK_MKDIR);
    return r ? r : base_of(v)->mkdir(base_of(v), path);
}

static int f_rmdir(const st_vfs *v, const char *path)
{
    int r = hit(v, ST_FK_REMOVE);
    return r ? r : base_of(v)->rmdir(base_of(v), path);
}

static int f_list(const st_vfs *v, const char *dir, int (*cb)(void *, const char *), void *ctx)
{
    int r = hit(v, ST_FK_LIST);
    return r ? r : base_of(v)->list(base_of(v), dir, cb, ctx);
}

static int f_sync_dir(const st_vfs *v, const char *path)
{
    int r = hit(v, ST_FK_SYNC);
    return r ? r : base_of(v)->sync_dir(base_of(v), path);
}

static int f_sync_start(st_file *fl, void *tag)
{
    return st_vdefer_start(&((fvfs *)fl->vfs)->defer, fl, tag);
}

static int f_sync_reap(const st_vfs *v, int wait, void (*done)(void *, void *, int), void *ctx)
{
    (void)wait;
    return st_vdefer_reap(&((fvfs *)v)->defer, done, ctx);
}

st_vfs *st_vfs_fault(const st_vfs *base, st_fault *f)
{
    fvfs *w = calloc(1, sizeof *w);
    if (!w) {
        return NULL;
    }
    w->base = base;
    w->v = (st_vfs){
        .name = "fault", .ctx = f, .cnt = base->cnt,
        .open = f_open, .close = f_close, .pread = f_pread, .pwrite = f_pwrite,
        .truncate = f_truncate, .sync = f_sync, .fstat = f_fstat, .lock = f_lock,
        .stat = f_stat, .rename = f_rename, .remove = f_remove, .mkdir = f_mkdir,
        .rmdir = f_rmdir, .list = f_list, .sync_dir = f_sync_dir,
        .sync_start = f_sync_start, .sync_reap = f_sync_reap,
    };
    return &w->v;
}

/* Layers put the st_vfs first in their wrapper, so freeing it frees all.
 * (The crash layer's state is owned by its st_crash and freed there.) */
void st_vfs_crash_release(st_vfs *v);
void st_vfs_layer_free(st_vfs *v)
{
    if (v && strcmp(v->name, "crash") == 0) {
        st_vfs_crash_release(v);
    }
    free(v);
}
