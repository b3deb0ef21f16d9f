/*
 * vfs_posix.c -- the file-ops table over POSIX calls.
 *
 * Locks are Linux open-file-description locks (F_OFD_SETLK): they conflict
 * with classic fcntl() locks, which procmail, mutt and Dovecot's mbox driver
 * take, and unlike classic fcntl locks they belong to the open file, so two
 * opens in one process exclude each other (the unit tests rely on that) and
 * closing some other descriptor of the file does not drop them. Where OFD
 * locks are missing (old kernels, non-Linux) we fall back to flock().
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "vfs.h"

typedef struct pfile {
    st_file base;
    int fd;
} pfile;

static st_vfs_counters posix_cnt;

int st_errno_code(int err)
{
    switch (err) {
    case ENOENT: case ENOTDIR: return ST_ENOENT;
    case EEXIST: case ENOTEMPTY: return ST_EEXIST;
    case ENOSPC: return ST_ENOSPC;
#ifdef EDQUOT
    case EDQUOT: return ST_EQUOTA;
#endif
    case ENOMEM: return ST_ENOMEM;
    case EINVAL: case ENAMETOOLONG: return ST_EINVAL;
    case EFBIG: return ST_ETOOBIG;
    case EACCES: case EPERM: case EROFS: return ST_EPERM;
    case EAGAIN: return ST_EBUSY;
    default: return ST_EIO;
    }
}

int st_vread_full(st_file *f, void *buf, size_t n, uint64_t off)
{
    long r = st_vpread(f, buf, n, off);
    if (r < 0) {
        return (int)r;
    }
    return (size_t)r == n ? 0 : ST_EIO;
}

int st_vdefer_start(st_vdefer *d, st_file *f, void *tag)
{
    if (d->n == ST_VDEFER_MAX) {
        return ST_EBUSY;
    }
    d->q[d->n].tag = tag;
    d->q[d->n].f = f;
    d->n++;
    return 0;
}

int st_vdefer_reap(st_vdefer *d, void (*done)(void *ctx, void *tag, int rc), void *ctx)
{
    int n = 0;
    while (d->n) {
        void *tag = d->q[0].tag;
        int rc = st_vsync(d->q[0].f);
        d->n--;
        memmove(d->q, d->q + 1, d->n * sizeof d->q[0]);
        n++;
        done(ctx, tag, rc); /* may start another */
    }
    return n;
}

int st_vmap(st_file *f, uint64_t off, size_t n, size_t extra, void **out)
{
    if (f->vfs->map) {
        return f->vfs->map(f, off, n, extra, out);
    }
    void *p = malloc(n + extra ? n + extra : 1);
    if (!p) {
        return ST_ENOMEM;
    }
    int r = st_vread_full(f, p, n, off);
    if (r) {
        free(p);
        return r;
    }
    *out = p;
    return 0;
}

void st_vunmap(const st_vfs *v, void *p, size_t n)
{
    if (!p) {
        return;
    }
    if (v->unmap) {
        v->unmap(v, p, n);
    } else {
        free(p);
    }
}

static int p_open(const st_vfs *v, const char *path, int flags, st_file **out)
{
    int of = O_CLOEXEC | ((flags & ST_O_WRITE) ? O_RDWR : O_RDONLY);
    if (flags & ST_O_CREATE) {
        of |= O_CREAT;
    }
    if (flags & ST_O_EXCL) {
        of |= O_EXCL;
    }
    if (flags & ST_O_TRUNC) {
        of |= O_TRUNC;
    }
    int fd;
    do {
        fd = open(path, of, 0600);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        return st_errno_code(errno);
    }
    pfile *p = malloc(sizeof *p);
    if (!p) {
        close(fd);
        return ST_ENOMEM;
    }
    p->base.vfs = v;
    p->fd = fd;
    *out = &p->base;
    return 0;
}

static int p_close(st_file *f)
{
    pfile *p = (pfile *)f;
    int r = close(p->fd);
    free(p);
    return r < 0 && errno != EINTR ? st_errno_code(errno) : 0;
}

static long p_pread(st_file *f, void *buf, size_t n, uint64_t off)
{
    pfile *p = (pfile *)f;
    size_t got = 0;
    posix_cnt.reads++;
    while (got < n) {
        ssize_t r = pread(p->fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return st_errno_code(errno);
        }
        if (r == 0) {
            break;
        }
        got += (size_t)r;
    }
    posix_cnt.bytes_read += got;
    return (long)got;
}

/* MAP_PRIVATE, read-write: the index is used in place and a flag change
 * copies only the page it touches; the file is never written through it.
 * The extra bytes are anonymous memory reserved right after (the whole
 * range is reserved first, then the file mapped over its start with
 * MAP_FIXED), so appends grow the index in place instead of copying it.
 * The size is checked first: touching a page past the end of the file
 * would be SIGBUS, not an error code (the file's last page is mapped only
 * as far as it holds bytes of the file; the pages after are anonymous).
 * Counted as one read of n bytes. */
static int p_map(st_file *f, uint64_t off, size_t n, size_t extra, void **out)
{
    pfile *p = (pfile *)f;
    struct stat st;
    if (fstat(p->fd, &st) < 0) {
        return st_errno_code(errno);
    }
    if ((uint64_t)st.st_size < off || (uint64_t)st.st_size - off < n || n == 0) {
        return ST_EIO;
    }
    long pg = sysconf(_SC_PAGESIZE);
    uint64_t lead = off % (uint64_t)(pg > 0 ? pg : 4096);
    char *m = mmap(NULL, lead + n + extra, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
        return st_errno_code(errno);
    }
    if (mmap(m, lead + n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, p->fd,
             (off_t)(off - lead)) == MAP_FAILED) {
        int e = errno;
        munmap(m, lead + n + extra);
        return st_errno_code(e);
    }
    posix_cnt.reads++;
    posix_cnt.bytes_read += n;
    *out = m + lead;
    return 0;
}

static void p_unmap(const st_vfs *v, void *p, size_t n)
{
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t lead = (uintptr_t)p % (uintptr_t)(pg > 0 ? pg : 4096);
    munmap((char *)p - lead, n + lead);
}

static int p_pwrite(st_file *f, const void *buf, size_t n, uint64_t off)
{
    pfile *p = (pfile *)f;
    size_t put = 0;
    posix_cnt.writes++;
    posix_cnt.bytes_written += n;
    while (put < n) {
        ssize_t r = pwrite(p->fd, (const char *)buf + put, n - put, (off_t)(off + put));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return st_errno_code(errno);
        }
        put += (size_t)r;
    }
    return 0;
}

static int p_truncate(st_file *f, uint64_t size)
{
    pfile *p = (pfile *)f;
    if (ftruncate(p->fd, (off_t)size) < 0) {
        return st_errno_code(errno);
    }
    return 0;
}

static int p_sync(st_file *f)
{
    pfile *p = (pfile *)f;
    posix_cnt.syncs++;
    /* fdatasync is enough: we only care about size and contents, and a
     * size change makes fdatasync flush the inode too. */
    if (fdatasync(p->fd) < 0) {
        return st_errno_code(errno);
    }
    return 0;
}

static void p_writeback(st_file *f)
{
#if defined(__linux__)
    /* WRITE alone queues the pages and returns; errors show at the sync */
    (void)sync_file_range(((pfile *)f)->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#else
    (void)f;
#endif
}

/* The kernel's io_uring header: cross toolchains whose libc headers lack
 * it (the boards' musl) build without syncs in flight. */
#if CONFIG_POSIX_IO_URING && defined(__linux__) && defined(__has_include)
#if __has_include(<linux/io_uring.h>)
#define ST_IO_URING 1
#endif
#endif
#ifndef ST_IO_URING
#define ST_IO_URING 0
#endif

#if ST_IO_URING
/* Syncs started without waiting: one io_uring (raw system calls, no
 * liburing) whose only operation is IORING_OP_FSYNC with DATASYNC, the
 * same fdatasync as p_sync, done by the kernel's workers while the loop
 * goes on. Completions signal an eventfd the server polls. Set up at the
 * first use; if the kernel refuses (io_uring_disabled, seccomp, an old
 * kernel), sync_start fails and the store syncs the usual way. */
#include <linux/io_uring.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>

#define UR_ENTRIES 64

static struct {
    int tried, fd, efd;
    unsigned sq_entries, inflight;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
} ur = {0, -1, -1, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};

static int ur_enter(unsigned submit, unsigned wait, unsigned flags)
{
    return (int)syscall(__NR_io_uring_enter, ur.fd, submit, wait, flags, NULL, 0);
}

static int ur_setup(void)
{
    if (ur.tried) {
        return ur.efd >= 0 ? 0 : -1;
    }
    ur.tried = 1;
    struct io_uring_params prm;
    memset(&prm, 0, sizeof prm);
    int fd = (int)syscall(__NR_io_uring_setup, UR_ENTRIES, &prm);
    if (fd < 0) {
        return -1;
    }
    size_t sqsz = prm.sq_off.array + prm.sq_entries * sizeof(unsigned);
    size_t cqsz = prm.cq_off.cqes + prm.cq_entries * sizeof(struct io_uring_cqe);
    int single = (prm.features & IORING_FEAT_SINGLE_MMAP) != 0;
    if (single && cqsz > sqsz) {
        sqsz = cqsz;
    }
    uint8_t *sq = mmap(NULL, sqsz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
    uint8_t *cq = single ? sq
                         : mmap(NULL, cqsz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
    void *sqes = mmap(NULL, prm.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED || efd < 0 ||
        syscall(__NR_io_uring_register, fd, IORING_REGISTER_EVENTFD, &efd, 1) < 0) {
        /* the maps go with the process; nothing else holds them */
        if (efd >= 0) {
            close(efd);
        }
        close(fd);
        return -1;
    }
    ur.fd = fd;
    ur.efd = efd;
    ur.sq_entries = prm.sq_entries;
    ur.sq_head = (unsigned *)(sq + prm.sq_off.head);
    ur.sq_tail = (unsigned *)(sq + prm.sq_off.tail);
    ur.sq_mask = (unsigned *)(sq + prm.sq_off.ring_mask);
    ur.sq_array = (unsigned *)(sq + prm.sq_off.array);
    ur.cq_head = (unsigned *)(cq + prm.cq_off.head);
    ur.cq_tail = (unsigned *)(cq + prm.cq_off.tail);
    ur.cq_mask = (unsigned *)(cq + prm.cq_off.ring_mask);
    ur.cqes = (struct io_uring_cqe *)(cq + prm.cq_off.cqes);
    ur.sqes = sqes;
    return 0;
}

static int p_sync_start(st_file *f, void *tag)
{
    /* at most sq_entries in flight: the completion ring (twice that)
     * can never overflow */
    if (ur_setup() < 0 || ur.inflight >= ur.sq_entries) {
        return ST_EBUSY;
    }
    unsigned tail = *ur.sq_tail;
    unsigned idx = tail & *ur.sq_mask;
    struct io_uring_sqe *e = &ur.sqes[idx];
    memset(e, 0, sizeof *e);
    e->opcode = IORING_OP_FSYNC;
    e->fd = ((pfile *)f)->fd;
    e->fsync_flags = IORING_FSYNC_DATASYNC;
    e->user_data = (uint64_t)(uintptr_t)tag;
    ur.sq_array[idx] = idx;
    __atomic_store_n(ur.sq_tail, tail + 1, __ATOMIC_RELEASE);
    int r;
    do {
        r = ur_enter(1, 0, 0);
    } while (r < 0 && errno == EINTR);
    if (r != 1) {
        /* not consumed (the kernel takes entries only inside enter, and
         * we have no SQPOLL thread): take it back, sync the usual way */
        if (__atomic_load_n(ur.sq_head, __ATOMIC_ACQUIRE) == tail) {
            __atomic_store_n(ur.sq_tail, tail, __ATOMIC_RELEASE);
        }
        return ST_EBUSY;
    }
    ur.inflight++;
    posix_cnt.syncs++;
    return 0;
}

static int p_sync_reap(const st_vfs *v, int wait, void (*done)(void *ctx, void *tag, int rc), void *ctx)
{
    (void)v;
    if (ur.efd < 0) {
        return 0;
    }
    if (wait && ur.inflight && __atomic_load_n(ur.cq_tail, __ATOMIC_ACQUIRE) == *ur.cq_head) {
        while (ur_enter(0, 1, IORING_ENTER_GETEVENTS) < 0 && errno == EINTR) {
        }
    }
    /* clear the wakeup before looking, so a completion that lands after
     * the look signals again */
    uint64_t cnt;
    ssize_t rd = read(ur.efd, &cnt, sizeof cnt);
    (void)rd;
    int n = 0;
    for (;;) {
        unsigned head = *ur.cq_head;
        if (head == __atomic_load_n(ur.cq_tail, __ATOMIC_ACQUIRE)) {
            break;
        }
        struct io_uring_cqe *e = &ur.cqes[head & *ur.cq_mask];
        void *tag = (void *)(uintptr_t)e->user_data;
        int rc = e->res < 0 ? st_errno_code(-e->res) : 0;
        __atomic_store_n(ur.cq_head, head + 1, __ATOMIC_RELEASE);
        ur.inflight--;
        n++;
        done(ctx, tag, rc);   /* may start the next sync */
    }
    return n;
}

static int p_sync_fd(const st_vfs *v)
{
    (void)v;
    return ur_setup() < 0 ? -1 : ur.efd;
}
#endif

static void fill_stat(const struct stat *s, st_stat *st)
{
    st->size = (uint64_t)s->st_size;
    st->ino = (uint64_t)s->st_ino;
    st->dev = (uint64_t)s->st_dev;
    st->mtime = (int64_t)s->st_mtime;
    st->isdir = S_ISDIR(s->st_mode) ? 1 : 0;
}

static int p_fstat(st_file *f, st_stat *st)
{
    pfile *p = (pfile *)f;
    struct stat s;
    if (fstat(p->fd, &s) < 0) {
        return st_errno_code(errno);
    }
    fill_stat(&s, st);
    return 0;
}

static int p_lock(st_file *f, int how, int wait)
{
    pfile *p = (pfile *)f;
#ifdef F_OFD_SETLK
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = how == ST_LOCK_EX ? F_WRLCK : how == ST_LOCK_SH ? F_RDLCK : F_UNLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 0;
    fl.l_len = 0; /* the whole file, as mbox lockers expect */
    for (;;) {
        if (fcntl(p->fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) == 0) {
            return 0;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EACCES) {
            return ST_EBUSY;
        }
        if (errno != EINVAL) {
            return st_errno_code(errno);
        }
        break; /* no OFD locks here: use flock */
    }
#endif
    int op = how == ST_LOCK_EX ? LOCK_EX : how == ST_LOCK_SH ? LOCK_SH : LOCK_UN;
    if (!wait) {
        op |= LOCK_NB;
    }
    while (flock(p->fd, op) < 0) {
        if (errno == EINTR) {
            continue;
        }
        return errno == EWOULDBLOCK ? ST_EBUSY : st_errno_code(errno);
    }
    return 0;
}

static int p_stat(const st_vfs *v, const char *path, st_stat *st)
{
    struct stat s;
    if (stat(path, &s) < 0) {
        return st_errno_code(errno);
    }
    fill_stat(&s, st);
    return 0;
}

static int p_rename(const st_vfs *v, const char *from, const char *to)
{
    if (rename(from, to) < 0) {
        return st_errno_code(errno);
    }
    return 0;
}

static int p_remove(const st_vfs *v, const char *path)
{
    if (unlink(path) < 0) {
        return st_errno_code(errno);
    }
    return 0;
}

static int p_mkdir(const st_vfs *v, const char *path)
{
    if (mkdir(path, 0700) < 0) {
        return st_errno_code(errno);
    }
    return 0;
}

static int p_rmdir(const st_vfs *v, const char *path)
{
    if (rmdir(path) < 0) {
        return st_errno_code(errno);
    }
    return 0;
}

static int p_list(const st_vfs *v, const char *dir,
                  int (*cb)(void *ctx, const char *name), void *ctx)
{
    DIR *d = opendir(dir);
    if (!d) {
        return st_errno_code(errno);
    }
    int r = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        r = cb(ctx, e->d_name);
        if (r) {
            break;
        }
    }
    closedir(d);
    return r;
}

static int p_sync_dir(const st_vfs *v, const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return st_errno_code(errno);
    }
    posix_cnt.syncs++;
    int r = fsync(fd);
    int e = errno;
    close(fd);
    /* Some file systems cannot fsync a directory; that is not an error. */
    if (r < 0 && e != EINVAL && e != EBADF) {
        return st_errno_code(e);
    }
    return 0;
}

static const st_vfs posix_vfs = {
    .name = "posix",
    .ctx = NULL,
    .cnt = &posix_cnt,
    .open = p_open,
    .close = p_close,
    .pread = p_pread,
    .pwrite = p_pwrite,
    .truncate = p_truncate,
    .sync = p_sync,
    .writeback = p_writeback,
    .fstat = p_fstat,
    .lock = p_lock,
    .stat = p_stat,
    .rename = p_rename,
    .remove = p_remove,
    .mkdir = p_mkdir,
    .rmdir = p_rmdir,
    .list = p_list,
    .sync_dir = p_sync_dir,
    .map = p_map,
    .unmap = p_unmap,
#if ST_IO_URING
    .sync_start = p_sync_start,
    .sync_reap = p_sync_reap,
    .sync_fd = p_sync_fd,
#endif
};

const st_vfs *st_vfs_posix(void)
{
    return &posix_vfs;
}

st_vfs_counters *st_vfs_posix_counters(void)
{
    return &posix_cnt;
}
