/*
 * failsync.c -- LD_PRELOAD shim for tests/integration/test_sync_failure.py:
 * while the file named by $FAILSYNC_TRIGGER exists, fsync() and fdatasync()
 * fail with EIO (a disk that reports a write-back error), so the real server
 * binary can be driven through the paths a failing sync takes. Nothing else
 * is changed. Built by the test with `cc -shared -fPIC`.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
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
