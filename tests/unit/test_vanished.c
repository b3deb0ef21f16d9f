/* test_vanished.c -- st_box_vanished: exact VANISHED from the state log,
 * and the honest "cannot say" once a checkpoint forgot older expunges. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "st_int.h"
#include "unit.h"



static uint32_t got[64];
static unsigned ngot;

static void collect(void *ctx, uint32_t uid)
{
    (void)ctx;
    if (ngot < 64) {
        got[ngot++] = uid;
    }
}

static uint32_t put_msg(st_box *b, const char *s)
{
    st_append *a;
    uint32_t uid = 0;
    if (st_append_begin(b, 1700000000, 0, 0, 0, strlen(s), &a) || st_append_data(a, s, strlen(s)) ||
        st_append_end(a, &uid) || st_box_commit(b)) {
        return 0;
    }
    return uid;
}

static int expunge_uid(st_box *b, uint32_t uid)
{
    long i = st_box_find(b, uid);
    return i < 0 ? -1 : st_expunge(b, (uint32_t)i) || st_box_commit(b);
}

int main(void)
{
    char root[] = "/tmp/test_vanished.XXXXXX";
    if (!mkdtemp(root)) {
        return 1;
    }
    st_store *s;
    st_box *b;
    CHECK_EQ_INT(st_store_open(&s, root, st_vfs_posix()), 0);
    CHECK_EQ_INT(st_user_ensure(s, "u"), 0);
    CHECK_EQ_INT(st_box_open(s, "u", "INBOX", &b), 0);
    for (int i = 0; i < 6; i++) {
        CHECK_EQ_INT(put_msg(b, "Subject: x\r\n\r\nbody\r\n"), i + 1);
    }
    uint64_t m0 = b->highestmodseq;
    CHECK_EQ_INT(expunge_uid(b, 2), 0);
    uint64_t m1 = b->highestmodseq;
    CHECK(m1 > m0);
    CHECK_EQ_INT(expunge_uid(b, 5), 0);
    CHECK_EQ_INT(expunge_uid(b, 6), 0);

    ngot = 0;
    CHECK_EQ_INT(st_box_vanished(b, m0, collect, NULL), 1);
    CHECK_EQ_INT(ngot, 3);
    CHECK(ngot == 3 && got[0] == 2 && got[1] == 5 && got[2] == 6);
    ngot = 0;
    CHECK_EQ_INT(st_box_vanished(b, m1, collect, NULL), 1);
    CHECK(ngot == 2 && got[0] == 5 && got[1] == 6);
    ngot = 0;
    CHECK_EQ_INT(st_box_vanished(b, b->highestmodseq, collect, NULL), 1);
    CHECK_EQ_INT(ngot, 0);

    /* Reopened by another handle (another process): same answer. */
    st_box_purge(b);
    st_box_close(b);
    CHECK_EQ_INT(st_box_open(s, "u", "INBOX", &b), 0);
    ngot = 0;
    CHECK_EQ_INT(st_box_vanished(b, m1, collect, NULL), 1);
    CHECK(ngot == 2 && got[0] == 5 && got[1] == 6);

    /* A checkpoint rewrites the log: older expunges are forgotten, and the
     * store says so instead of answering with too few UIDs. */
    st_ckpt_min = 0;
    uint32_t u7 = put_msg(b, "Subject: y\r\n\r\nmore\r\n");
    CHECK_EQ_INT(u7, 7);
    uint64_t m2 = b->highestmodseq;
    ngot = 0;
    int r = st_box_vanished(b, m0, collect, NULL);
    CHECK_EQ_INT(r, 0);   /* the checkpoint happened and set the floor */
    CHECK_EQ_INT(expunge_uid(b, 7), 0);
    ngot = 0;
    CHECK_EQ_INT(st_box_vanished(b, m2, collect, NULL), 1);
    CHECK(ngot == 1 && got[0] == 7);
    st_box_close(b);
    st_store_close(s);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    CHECK_EQ_INT(system(cmd), 0);
    return unit_done("test_vanished");
}
