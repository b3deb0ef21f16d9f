/*
 * store_open.c -- time st_box_open() of a big mailbox, the storage part of
 * a SELECT (issue 3). Not built by default; with the storage objects of
 * a build (BUILD=build-x, its config.h and storage .o files):
 *   gcc -O2 -D_GNU_SOURCE -Ibuild-x -Istorage -o store_open
 *       tests/bench/store_open.c build-x/storage/[a-z]*.o
 *   ./store_open DIR 100000 [ckpt]   make DIR with 100,000 messages, one
 *                                    commit each, as an import does; with
 *                                    ckpt, end with a checkpoint
 *   ONCE=1 ./store_open DIR          one open in this (fresh) process, ms
 *   ./store_open DIR                 15 opens, each in a fresh store, then
 *                                    15 reopens of the kept mailbox
 * A fresh process per open is a restart: its index memory is new (page
 * faults), where repeated opens in one process reuse freed memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"
#include "st_int.h"

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int make_box(const char *root, int n, int ckpt)
{
    st_store *s;
    st_box *b;
    char msg[200];
    if (st_store_open(&s, root, NULL) || st_user_ensure(s, "u") || st_box_open(s, "u", "INBOX", &b)) {
        return 1;
    }
    for (int i = 0; i < n; i++) {
        st_append *a;
        uint32_t uid;
        int l = snprintf(msg, sizeof msg, "Subject: %d\r\n\r\nbody %d\r\n", i, i);
        if (st_append_begin(b, 1700000000 + i, 0, 0, 0, (size_t)l, &a) ||
            st_append_data(a, msg, (size_t)l) || st_append_end(a, &uid) || st_box_commit(b)) {
            return 2;
        }
    }
    if (ckpt) {
        stbox *x = (stbox *)b;
        if (st_box_lock(x) == 0) {
            st_log_write_snapshot(x->s, x->dir, x->log_path, b->uidvalidity, b, x->mbox_end, NULL);
            st_box_unlock(x);
        }
    }
    st_box_close(b);
    st_store_close(s);
    return 0;
}

int main(int argc, char **argv)
{
    st_store *s;
    st_box *b;
    double t[15];
    int reps = 15;
    uint32_t count = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: store_open DIR [N [ckpt]]\n");
        return 2;
    }
    if (argc > 2) {
        return make_box(argv[1], atoi(argv[2]), argc > 3);
    }
    if (getenv("ONCE")) {
        if (st_store_open(&s, argv[1], NULL)) {
            return 1;
        }
        double t0 = now_ms();
        if (st_box_open(s, "u", "INBOX", &b)) {
            return 4;
        }
        printf("%.3f\n", now_ms() - t0);
        return 0;
    }
    for (int i = 0; i < reps; i++) {
        if (st_store_open(&s, argv[1], NULL)) {
            return 1;
        }
        double t0 = now_ms();
        if (st_box_open(s, "u", "INBOX", &b)) {
            return 4;
        }
        t[i] = now_ms() - t0;
        count = b->count;
        st_box_close(b);
        st_store_close(s);
    }
    qsort(t, (size_t)reps, sizeof t[0], cmpd);
    printf("open in a fresh store: %u messages, median %.3f ms, min %.3f ms\n", count, t[reps / 2], t[0]);
    if (st_store_open(&s, argv[1], NULL) || st_box_open(s, "u", "INBOX", &b)) {
        return 1;
    }
    st_box_close(b);
    for (int i = 0; i < reps; i++) {
        double t0 = now_ms();
        if (st_box_open(s, "u", "INBOX", &b)) {
            return 4;
        }
        t[i] = now_ms() - t0;
        st_box_close(b);
    }
    qsort(t, (size_t)reps, sizeof t[0], cmpd);
    printf("reopen of the kept mailbox: median %.3f ms, min %.3f ms\n", t[reps / 2], t[0]);
    st_store_close(s);
    return 0;
}
