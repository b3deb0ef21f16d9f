/*
 * failsync.c -- LD_PRELOAD shim for tests/integration/test_sync_failure.py:
 * while the file named by $FAILSYNC_TRIGGER exists, fsync() and fdatasync()
 * fail with EIO (a disk that reports a write-back error), so the real server
 * binary can be driven through the paths a failing sync takes. io_uring is
 * refused (as kernel.io_uring_disabled does), so the server syncs through
 * these two calls; its commits with syncs in flight, and their failures,
 * are tested in the store (tests/unit/test_store.c test_async_commit and
 * the fourth sweep of test_store_crash.c). Nothing else is changed. Built
 * by the test with `cc -shared -fPIC`.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int armed(void)
{
    const char *t = getenv("FAILSYNC_TRIGGER");
    struct stat st;
    return t && stat(t, &st) == 0;
}

static int pass(const char *name, int fd)
{
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, name);
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    return real(fd);
}

int fdatasync(int fd)
{
    if (armed()) {
        errno = EIO;
        return -1;
    }
    return pass("fdatasync", fd);
}

int fsync(int fd)
{
    if (armed()) {
        errno = EIO;
        return -1;
    }
    return pass("fsync", fd);
}

long syscall(long n, ...)
{
#ifdef __NR_io_uring_setup
    if (n == __NR_io_uring_setup) {
        errno = ENOSYS;
        return -1;
    }
#endif
    va_list ap;
    va_start(ap, n);
    long a[6];
    for (int i = 0; i < 6; i++) {
        a[i] = va_arg(ap, long);
    }
    va_end(ap);
    long (*real)(long, ...) = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    return real(n, a[0], a[1], a[2], a[3], a[4], a[5]);
}
