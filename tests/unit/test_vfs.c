/* test_vfs.c -- the file-ops tables: posix, fault, crash. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "vfs.h"
#include "unit.h"

static char dir[256];

static char *P(const char *name)
{
    static char p[2][512];
    static int i;
    i ^= 1;
    snprintf(p[i], sizeof p[i], "%s/%s", dir, name);
    return p[i];
}

static int count_cb(void *ctx, const char *name)
{
    (*(int *)ctx)++;
    return 0;
}

static void test_posix(void)
{
    const st_vfs *v = st_vfs_posix();
    st_file *f, *g;
    st_stat st;
    char buf[16];
    st_vfs_counters before = *st_vfs_posix_counters();
    CHECK_EQ_INT(v->open(v, P("a"), ST_O_READ, &f), ST_ENOENT);
    CHECK_EQ_INT(v->open(v, P("a"), ST_O_WRITE | ST_O_CREATE | ST_O_EXCL, &f), 0);
    CHECK_EQ_INT(v->open(v, P("a"), ST_O_WRITE | ST_O_CREATE | ST_O_EXCL, &g), ST_EEXIST);
    CHECK_EQ_INT(st_vpwrite(f, "hello world", 11, 0), 0);
    CHECK_EQ_INT(st_vpread(f, buf, sizeof buf, 6), 5);
    CHECK(memcmp(buf, "world", 5) == 0);
    CHECK_EQ_INT(st_vtruncate(f, 5), 0);
    CHECK_EQ_INT(st_vfstat(f, &st), 0);
    CHECK_EQ_INT(st.size, 5);
    CHECK_EQ_INT(st_vsync(f), 0);
    CHECK(st_vfs_posix_counters()->bytes_written - before.bytes_written == 11);
    CHECK(st_vfs_posix_counters()->syncs - before.syncs == 1);
    /* writeback only starts the writes: contents unchanged, not a sync */
    CHECK(v->writeback != NULL);
    CHECK_EQ_INT(st_vpwrite(f, "HELLO", 5, 0), 0);
    st_vwriteback(f);
    CHECK(st_vfs_posix_counters()->syncs - before.syncs == 1);
    CHECK_EQ_INT(st_vpread(f, buf, sizeof buf, 0), 5);
    CHECK(memcmp(buf, "HELLO", 5) == 0);
    /* locks belong to the open file: a second open is excluded */
    CHECK_EQ_INT(v->open(v, P("a"), ST_O_WRITE, &g), 0);
    CHECK_EQ_INT(st_vlock(f, ST_LOCK_EX, 0), 0);
    CHECK_EQ_INT(st_vlock(g, ST_LOCK_EX, 0), ST_EBUSY);
    CHECK_EQ_INT(st_vlock(g, ST_LOCK_SH, 0), ST_EBUSY);
    CHECK_EQ_INT(st_vlock(f, ST_LOCK_UN, 0), 0);
    CHECK_EQ_INT(st_vlock(g, ST_LOCK_SH, 0), 0);
    CHECK_EQ_INT(st_vlock(f, ST_LOCK_SH, 0), 0);
    CHECK_EQ_INT(st_vlock(f, ST_LOCK_EX, 0), ST_EBUSY);
    st_vclose(g);
    CHECK_EQ_INT(st_vlock(f, ST_LOCK_EX, 0), 0);
    st_vclose(f);
    CHECK_EQ_INT(v->rename(v, P("a"), P("b")), 0);
    CHECK_EQ_INT(v->stat(v, P("a"), &st), ST_ENOENT);
    CHECK_EQ_INT(v->stat(v, P("b"), &st), 0);
    CHECK_EQ_INT(v->mkdir(v, P("d")), 0);
    CHECK_EQ_INT(v->mkdir(v, P("d")), ST_EEXIST);
    int n = 0;
    CHECK_EQ_INT(v->list(v, dir, count_cb, &n), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(v->sync_dir(v, dir), 0);
    CHECK_EQ_INT(v->rmdir(v, P("d")), 0);
    CHECK_EQ_INT(v->remove(v, P("b")), 0);
    CHECK_EQ_INT(v->remove(v, P("b")), ST_ENOENT);
    char *data;
    size_t len;
    CHECK_EQ_INT(st_slurp(v, P("none"), &data, &len, 10), ST_ENOENT);
}

static void test_fault(void)
{
    st_fault fl;
    memset(&fl, 0, sizeof fl);
    fl.kind = ST_FK_WRITE;
    fl.fail_at = 2;
    fl.err = ST_ENOSPC;
    st_vfs *v = st_vfs_fault(st_vfs_posix(), &fl);
    st_file *f;
    CHECK_EQ_INT(v->open(v, P("f"), ST_O_WRITE | ST_O_CREATE, &f), 0);
    CHECK_EQ_INT(st_vpwrite(f, "1234", 4, 0), 0);
    CHECK_EQ_INT(st_vpwrite(f, "5678", 4, 4), ST_ENOSPC);
    CHECK(fl.fired);
    CHECK_EQ_INT(st_vpwrite(f, "5678", 4, 4), 0); /* one-shot */
    CHECK_EQ_INT(fl.calls[ST_FK_WRITE], 3);
    st_vclose(f);
    fl.kind = ST_FK_SYNC;
    fl.fail_at = fl.calls[ST_FK_SYNC] + 1;
    fl.persist = 1;
    fl.err = ST_EIO;
    CHECK_EQ_INT(v->open(v, P("f"), ST_O_WRITE, &f), 0);
    CHECK_EQ_INT(st_vsync(f), ST_EIO);
    CHECK_EQ_INT(st_vsync(f), ST_EIO);
    st_vclose(f);
    st_vfs_layer_free(v);
    st_vfs_posix()->remove(st_vfs_posix(), P("f"));
}

static void test_crash(void)
{
    /* synced bytes survive; unsynced ones are kept, dropped or torn; after
     * the cut every call fails */
    int dropped_or_torn = 0, kept = 0;
    for (uint32_t seed = 1; seed <= 20; seed++) {
        st_crash c;
        memset(&c, 0, sizeof c);
        c.crash_at = 4; /* write, sync, write, write(boom) */
        c.seed = seed;
        st_vfs *v = st_vfs_crash(st_vfs_posix(), &c);
        st_file *f;
        CHECK_EQ_INT(v->open(v, P("c"), ST_O_WRITE | ST_O_CREATE | ST_O_TRUNC, &f), 0);
        CHECK_EQ_INT(st_vpwrite(f, "AAAA", 4, 0), 0);
        CHECK_EQ_INT(st_vsync(f), 0);
        CHECK_EQ_INT(st_vpwrite(f, "BBBB", 4, 4), 0);
        st_vwriteback(f); /* no event and no promise: BBBB may still go */
        CHECK_EQ_INT(st_vpwrite(f, "CCCC", 4, 8), ST_EIO);
        CHECK(c.crashed);
        CHECK_EQ_INT(st_vpwrite(f, "DDDD", 4, 12), ST_EIO);
        CHECK_EQ_INT(st_vsync(f), ST_EIO);
        st_vclose(f);
        st_vfs_layer_free(v);
        char *data;
        size_t len;
        CHECK_EQ_INT(st_slurp(st_vfs_posix(), P("c"), &data, &len, 100), 0);
        CHECK(len >= 4 && memcmp(data, "AAAA", 4) == 0);
        CHECK(len <= 12);
        if (len == 12 && memcmp(data, "AAAABBBBCCCC", 12) == 0) {
            kept++;
        } else {
            dropped_or_torn++;
        }
        free(data);
    }
    CHECK(kept > 0);
    CHECK(dropped_or_torn > 0);
    st_vfs_posix()->remove(st_vfs_posix(), P("c"));
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_vfs.XXXXXX");
    if (!mkdtemp(dir)) {
        return 2;
    }
    test_posix();
    test_fault();
    test_crash();
    rmdir(dir);
    return unit_done("test_vfs");
}
