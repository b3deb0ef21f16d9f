/*
 * compact_time.c -- time one automatic compaction of a 4.5 MB mailbox
 * (150 messages of 30 KB, every other one expunged), at once and in
 * slices, through the store API with the posix vfs.
 *
 *   cc -std=c11 -D_GNU_SOURCE -O2 -Icore -Iport -Istorage -Ibuild \
 *      -o build/compact_time tests/bench/compact_time.c storage/[a-z]*.c
 *   build/compact_time /var/tmp/somewhere [slice_kib]   (the folder must not exist)
 *
 * Prints the purge (which compacts at once, or starts the job) and every
 * st_store_compact_work() call: what one loop turn of the server spends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "st_int.h"

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    st_store *s;
    st_box *b;
    st_append *a;
    uint32_t uid;
    static char msg[30000];
    if (argc < 2) {
        fprintf(stderr, "usage: %s NEW-FOLDER [slice_kib]\n", argv[0]);
        return 2;
    }
    unsigned slice = argc > 2 ? (unsigned)atoi(argv[2]) : 256;
    for (size_t i = 0; i < sizeof msg; i++) {
        msg[i] = (i % 72 == 71) ? '\n' : (char)('a' + i % 26);
    }
    memcpy(msg, "Subject: x\r\n\r\n", 14);
    if (st_store_open(&s, argv[1], NULL) || st_user_ensure(s, "u") || st_box_open(s, "u", "INBOX", &b)) {
        fprintf(stderr, "cannot make a store in %s\n", argv[1]);
        return 1;
    }
    for (int i = 0; i < 150; i++) {
        if (st_append_begin(b, 1700000000, 0, 0, 0, sizeof msg, &a) || st_append_data(a, msg, sizeof msg) ||
            st_append_end(a, &uid)) {
            return 1;
        }
    }
    st_box_commit(b);
    for (uint32_t i = 0; i < 150; i += 2) {
        st_expunge(b, i);
    }
    st_box_commit(b);
    st_store_set_compact_ratio(s, 300);
    st_store_set_compact_slice(s, (uint64_t)slice * 1024);
    unsigned long c0 = st_compactions;
    double t0 = now_ms();
    st_box_purge(b);
    printf("purge: %.3f ms%s\n", now_ms() - t0, slice ? " (starts the job)" : " (compacts)");
    double sum = 0, max = 0;
    int n = 0, r;
    do {
        t0 = now_ms();
        r = st_store_compact_work(s);
        double d = now_ms() - t0;
        if (st_compactions == c0 || n == 0 || d > 0.001) {
            printf("work call %d: %.3f ms\n", ++n, d);
        }
        sum += d;
        max = d > max ? d : max;
    } while (r);
    printf("compactions: %lu; work calls %d, longest %.3f ms, total %.3f ms\n", st_compactions - c0, n, max, sum);
    st_box_close(b);
    st_store_close(s);
    return 0;
}
