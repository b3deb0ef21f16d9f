/*
 * vfs.h -- the file-ops table every store syscall goes through.
 *
 * Modelled on SQLite's sqlite3_vfs / sqlite3_io_methods: one table of
 * function pointers, a base struct (st_file) that implementations extend
 * by putting it first. Three implementations:
 *   vfs_posix.c  the real thing (open/pread/pwrite/fsync/OFD locks ...)
 *   vfs_fault.c  wraps another vfs and fails the Nth call of a kind
 *   vfs_crash.c  wraps another vfs, remembers unsynced writes, and at the
 *                Nth write or sync "cuts the power": drops or tears them
 * Layers are stackable because every method receives its own table.
 *
 * All methods return 0 (or a byte count) on success and a negative ST_E*
 * code (store.h) on failure. Short reads happen only at end of file;
 * pwrite writes everything or fails.
 */
#ifndef ST_VFS_H
#define ST_VFS_H

#include <stddef.h>
#include <stdint.h>

typedef struct st_vfs st_vfs;

/* An open file. Implementations embed this first and add their own. */
typedef struct st_file {
    const st_vfs *vfs;  /* the table that opened it (its methods are used) */
} st_file;

/* open flags */
#define ST_O_READ   0x01
#define ST_O_WRITE  0x02  /* read and write */
#define ST_O_CREATE 0x04  /* create if missing */
#define ST_O_EXCL   0x08  /* with CREATE: fail with ST_EEXIST if present */
#define ST_O_TRUNC  0x10

/* lock kinds */
#define ST_LOCK_UN  0
#define ST_LOCK_SH  1
#define ST_LOCK_EX  2

typedef struct st_stat {
    uint64_t size;   /* bytes */
    uint64_t ino;    /* identity: changes when a file is replaced by rename */
    uint64_t dev;    /* with ino */
    int64_t  mtime;  /* seconds */
    int      isdir;  /* a directory */
} st_stat;

/* Counters kept by every implementation (benchmarks, write-amplification
 * reports, and the crash/fault layers' "call number" bookkeeping). */
typedef struct st_vfs_counters {
    uint64_t writes;        /* pwrite calls */
    uint64_t bytes_written; /* bytes passed to pwrite */
    uint64_t syncs;         /* fsync of files and directories */
    uint64_t reads;         /* pread calls */
    uint64_t bytes_read;    /* bytes returned by pread */
} st_vfs_counters;

struct st_vfs {
    const char *name;     /* "posix", "fault", "crash" */
    void *ctx;            /* implementation state (layers: the config) */
    st_vfs_counters *cnt; /* may be NULL */

    int  (*open)(const st_vfs *v, const char *path, int flags, st_file **out);
    int  (*close)(st_file *f);
    /* Returns bytes read (short only at end of file) or <0. */
    long (*pread)(st_file *f, void *buf, size_t n, uint64_t off);
    /* Writes all n bytes at off or fails; returns 0 or <0. */
    int  (*pwrite)(st_file *f, const void *buf, size_t n, uint64_t off);
    int  (*truncate)(st_file *f, uint64_t size);
    int  (*sync)(st_file *f);                 /* fdatasync/fsync */
    int  (*fstat)(st_file *f, st_stat *st);
    /* how: ST_LOCK_*. wait=0: ST_EBUSY at once if held elsewhere.
     * Locks belong to the open file (OFD locks / flock), so two opens of the
     * same file in one process exclude each other like two processes do. */
    int  (*lock)(st_file *f, int how, int wait);

    int  (*stat)(const st_vfs *v, const char *path, st_stat *st); /* ST_ENOENT */
    int  (*rename)(const st_vfs *v, const char *from, const char *to);
    int  (*remove)(const st_vfs *v, const char *path);
    int  (*mkdir)(const st_vfs *v, const char *path);  /* ST_EEXIST if there */
    int  (*rmdir)(const st_vfs *v, const char *path);
    /* Calls cb for each entry except "." and ".."; cb returning nonzero stops
     * the listing and that value is returned. */
    int  (*list)(const st_vfs *v, const char *dir,
                 int (*cb)(void *ctx, const char *name), void *ctx);
    int  (*sync_dir)(const st_vfs *v, const char *path);
    /* Optional (NULL: st_vmap reads a copy through pread). A private view
     * of bytes [off, off+n) of f followed by `extra` bytes of private
     * memory (room to grow in place), readable and writable: writes never
     * reach the file (copy on write), it stays valid after f is closed,
     * and pages never touched cost nothing. ST_EIO if the file is shorter.
     * The file must not be cut below off+n while mapped (the store only
     * maps checkpoint blocks, which are never truncated: logs are cut
     * only after their valid end, and replaced by rename). */
    int  (*map)(st_file *f, uint64_t off, size_t n, size_t extra, void **out);
    /* Releases what map returned, given n + extra (NULL: free()). */
    void (*unmap)(const st_vfs *v, void *p, size_t n);
    /* Optional (NULL: nothing): start writing the file's dirty pages to
     * disk without waiting (Linux sync_file_range), so a later sync has
     * less to wait for. Promises nothing about durability; the crash
     * layer leaves it out for that reason. */
    void (*writeback)(st_file *f);
    /* Optional (NULL: the store calls sync and waits), the three together.
     * sync_start begins a sync of f and returns at once: 0 when started,
     * <0 when not (the caller then syncs the usual way). Its result comes
     * back later through sync_reap, with `tag`; f stays open until then.
     * A write made after sync_start may or may not be covered by it.
     * sync_reap calls done(ctx, tag, rc) for every finished one (wait=1:
     * blocks until one finishes, if any is in flight) and returns how many.
     * sync_fd is a descriptor that becomes readable when one finishes, for
     * the server's poll loop (-1: none; then reap must be called). */
    int  (*sync_start)(st_file *f, void *tag);
    int  (*sync_reap)(const st_vfs *v, int wait, void (*done)(void *ctx, void *tag, int rc), void *ctx);
    int  (*sync_fd)(const st_vfs *v);
};

/* Convenience wrappers (vfs_posix.c): dispatch through f->vfs. */
static inline int  st_vclose(st_file *f) { return f ? f->vfs->close(f) : 0; }
static inline long st_vpread(st_file *f, void *b, size_t n, uint64_t o) { return f->vfs->pread(f, b, n, o); }
static inline int  st_vpwrite(st_file *f, const void *b, size_t n, uint64_t o) { return f->vfs->pwrite(f, b, n, o); }
static inline int  st_vtruncate(st_file *f, uint64_t s) { return f->vfs->truncate(f, s); }
static inline int  st_vsync(st_file *f) { return f->vfs->sync(f); }
static inline void st_vwriteback(st_file *f) { if (f->vfs->writeback) { f->vfs->writeback(f); } }
static inline int  st_vfstat(st_file *f, st_stat *st) { return f->vfs->fstat(f, st); }
static inline int  st_vlock(st_file *f, int how, int wait) { return f->vfs->lock(f, how, wait); }

/* Read exactly n bytes at off: ST_EIO (or the error) if fewer are there. */
int st_vread_full(st_file *f, void *buf, size_t n, uint64_t off);
/* f->vfs->map, or where a layer has none (fault, crash: so their reads
 * are failed or torn like any other), a malloc'd copy read with
 * st_vread_full. Release with st_vunmap(f->vfs, ...) -- the table that
 * mapped it, which may outlive f. */
int  st_vmap(st_file *f, uint64_t off, size_t n, size_t extra, void **out);
void st_vunmap(const st_vfs *v, void *p, size_t n);

/* Started syncs for layers (fault, crash) that have no real ones: start
 * only queues the file, and the reap syncs it through the file's own
 * table, so the store's commits in flight go through the layer's failures
 * and power cuts like any other sync, and anything the store wrongly does
 * between the start and the end (a MARK before the mbox is synced) is
 * still unsynced when the power goes. */
#define ST_VDEFER_MAX 64
typedef struct st_vdefer {
    unsigned n;
    struct { void *tag; st_file *f; } q[ST_VDEFER_MAX];
} st_vdefer;
int st_vdefer_start(st_vdefer *d, st_file *f, void *tag);
int st_vdefer_reap(st_vdefer *d, void (*done)(void *ctx, void *tag, int rc), void *ctx);

/* The process-wide posix table and its counters. */
const st_vfs *st_vfs_posix(void);
st_vfs_counters *st_vfs_posix_counters(void);

/* Map an errno value to an ST_E* code. */
int st_errno_code(int err);

/* ---- fault injection (vfs_fault.c) ---- */
/* Kinds of calls the fault layer counts separately. */
enum {
    ST_FK_OPEN, ST_FK_READ, ST_FK_WRITE, ST_FK_TRUNC, ST_FK_SYNC, ST_FK_STAT,
    ST_FK_LOCK, ST_FK_RENAME, ST_FK_REMOVE, ST_FK_MKDIR, ST_FK_LIST,
    ST_FK_ANY, /* every call above, in one count */
    ST_FK_NKINDS
};
typedef struct st_fault {
    int kind;          /* ST_FK_* counted */
    uint64_t fail_at;  /* fail the call with this 1-based number; 0 = never */
    int persist;       /* keep failing every later call of the kind too */
    int err;           /* ST_EIO or ST_ENOSPC */
    uint64_t calls[ST_FK_NKINDS]; /* calls seen so far, per kind */
    int fired;         /* a failure was returned */
} st_fault;
/* A vfs that passes calls to `base`, failing as `f` says. f stays owned by
 * the caller and may be changed between calls. Free with st_vfs_layer_free. */
st_vfs *st_vfs_fault(const st_vfs *base, st_fault *f);

/* ---- power-cut simulation (vfs_crash.c) ---- */
typedef struct st_crash {
    uint64_t crash_at;  /* cut power at this 1-based write-or-sync event; 0 = never */
    uint32_t seed;      /* picks drop / tear / keep for each unsynced write */
    uint64_t events;    /* writes and syncs seen so far */
    int crashed;        /* the power is off: every call fails with ST_EIO */
} st_crash;
/* A vfs over `base` that tracks unsynced writes of every open file. When the
 * event counter reaches crash_at, each unsynced write is kept, dropped, or
 * torn (a prefix kept, the rest garbage) on the base files, and from then on
 * every call fails with ST_EIO, as if the machine had stopped. A sync of a
 * file makes its writes safe; renames and removes count as written at once
 * (a journaling file system orders them; the store syncs the directory). */
st_vfs *st_vfs_crash(const st_vfs *base, st_crash *c);

void st_vfs_layer_free(st_vfs *v);

#endif
