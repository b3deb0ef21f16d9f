/* test_compact.c -- compaction and quota (storage/compact.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "st_int.h"
#include "unit.h"

static char root[256];

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    b[got] = 0;
    fclose(f);
    if (len) {
        *len = got;
    }
    return b;
}

static long fsize(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static uint32_t put_msg(st_box *b, const char *data, size_t len, uint8_t flags, uint64_t kw)
{
    st_append *a;
    uint32_t uid = 0;
    if (st_append_begin(b, 1700000000, 0, flags, kw, len, &a)) {
        return 0;
    }
    if (st_append_data(a, data, len)) {
        st_append_abort(a);
        return 0;
    }
    if (st_append_end(a, &uid)) {
        return 0;
    }
    return st_box_commit(b) ? 0 : uid;
}

static char *get_msg(st_box *b, uint32_t idx, size_t *len)
{
    st_reader r;
    size_t n = 0, cap = b->msg[idx].size + 16;
    char *out = malloc(cap);
    long k;
    if (st_reader_open(&r, b, idx)) {
        free(out);
        return NULL;
    }
    while ((k = st_reader_read(&r, out + n, 100)) > 0) {
        n += (size_t)k;
    }
    st_reader_close(&r);
    out[n] = 0;
    *len = n;
    return k < 0 ? (free(out), NULL) : out;
}

#define NMSG 40

static void make_msg(char *buf, size_t cap, int i, size_t *len)
{
    size_t n = (size_t)snprintf(buf, cap, "Subject: m%d\r\nX-Status: bogus\r\n\r\nFrom here %d\r\n>From there\r\n", i, i);
    for (int j = 0; j < i * 50 && n + 80 < cap; j++) {
        n += (size_t)snprintf(buf + n, cap - n, "line %d of message %d, padding padding padding\r\n", j, i);
    }
    if (i % 7 == 3) {
        n -= 2; /* no final newline */
    }
    *len = n;
}

/* Jobs in slices on two open mailboxes: one work call copies one slice in
 * all (not one per mailbox) and commits at most one; a job whose finish
 * waits for a purge does not ask to be called again at once. */
static void test_slices(void)
{
    st_store *s;
    st_box *b[2];
    static char buf[64 * 1024];
    size_t len;
    const char *names[2] = { "S1", "S2" };
    char path[2][512];
    long size0[2];
    CHECK_EQ_INT(st_store_open(&s, root, st_vfs_posix()), 0);
    for (int m = 0; m < 2; m++) {
        snprintf(path[m], sizeof path[m], "%s/u/%s", root, names[m]);
        CHECK_EQ_INT(st_mailbox_create(s, "u", names[m]), 0);
        CHECK_EQ_INT(st_box_open(s, "u", names[m], &b[m]), 0);
        for (int i = 0; i < NMSG; i++) {
            make_msg(buf, sizeof buf, i, &len);
            CHECK(put_msg(b[m], buf, len, 0, 0) != 0);
        }
        for (uint32_t i = 0; i < NMSG; i += 2) {
            CHECK_EQ_INT(st_expunge(b[m], i), 0);
        }
        CHECK_EQ_INT(st_box_commit(b[m]), 0);
        size0[m] = fsize(path[m]);
    }
    st_store_set_compact_ratio(s, 300);
    st_store_set_compact_slice(s, 16 * 1024);
    for (int m = 0; m < 2; m++) {
        st_box_purge(b[m]); /* starts a job, copies nothing yet */
        CHECK(((stbox *)b[m])->cjob != NULL);
        CHECK_EQ_INT(fsize(path[m]), size0[m]);
    }
    unsigned long done0 = st_compactions;
    int calls = 0, r;
    do {
        uint64_t w0 = st_vfs_posix_counters()->bytes_written;
        r = st_store_compact_work(s);
        uint64_t w = st_vfs_posix_counters()->bytes_written - w0;
        /* a slice, plus headers of the messages it started, or one commit
         * (the new log, and what arrived: nothing here) */
        CHECK(w <= 16 * 1024 + 4096);
        calls++;
    } while (r && calls < 1000);
    CHECK_EQ_INT((int)(st_compactions - done0), 2);
    CHECK(calls > 2 * 4);
    for (int m = 0; m < 2; m++) {
        CHECK(fsize(path[m]) < size0[m] * 7 / 10);
        CHECK_EQ_INT(b[m]->count, NMSG / 2);
        int same = 1;
        for (uint32_t i = 0; i < b[m]->count; i++) {
            size_t n;
            char *got = get_msg(b[m], i, &n);
            make_msg(buf, sizeof buf, (int)b[m]->msg[i].uid - 1, &len);
            same &= got && n == len && memcmp(got, buf, len) == 0;
            free(got);
        }
        CHECK(same);
    }

    /* a job copied to the end waits for the purge of a later expunge
     * without asking to be called again at once */
    make_msg(buf, sizeof buf, 0, &len);
    for (int i = 0; i < 40; i++) {
        CHECK(put_msg(b[0], buf, len, 0, 0) != 0);
    }
    for (uint32_t i = 0; i < b[0]->count; i += 2) {
        CHECK_EQ_INT(st_expunge(b[0], i), 0);
    }
    CHECK_EQ_INT(st_box_commit(b[0]), 0);
    st_box_purge(b[0]);
    CHECK(((stbox *)b[0])->cjob != NULL);
    CHECK_EQ_INT(st_expunge(b[0], 0), 0); /* not purged: sessions hold it */
    CHECK_EQ_INT(st_box_commit(b[0]), 0);
    done0 = st_compactions;
    calls = 0;
    while (st_store_compact_work(s) && calls < 1000) {
        calls++;
    }
    CHECK(calls < 1000);
    CHECK(((stbox *)b[0])->cjob != NULL);        /* waiting */
    CHECK_EQ_INT((int)(st_compactions - done0), 0);
    st_box_purge(b[0]);
    CHECK_EQ_INT(st_store_compact_work(s), 0); /* the commit */
    CHECK_EQ_INT((int)(st_compactions - done0), 1);
    CHECK(((stbox *)b[0])->cjob == NULL);
    st_store_set_compact_slice(s, 0);
    st_box_close(b[0]);
    st_box_close(b[1]);
    st_store_close(s);
}

/* The mailbox of name `name` in s's list (open, kept, or held by its job). */
static stbox *in_list(st_store *s, const char *name)
{
    for (stbox *k = s->boxes; k; k = k->next) {
        if (strcmp(k->pub.name, name) == 0) {
            return k;
        }
    }
    return NULL;
}

/* Fill mailbox `name` with NMSG messages and expunge every other one
 * (about half the bytes reclaimable); its mbox size. */
static long fill_half_expunged(st_store *s, const char *name, char *path, size_t cap)
{
    static char buf[64 * 1024];
    size_t len;
    st_box *b;
    snprintf(path, cap, "%s/u/%s", root, name);
    CHECK_EQ_INT(st_mailbox_create(s, "u", name), 0);
    CHECK_EQ_INT(st_box_open(s, "u", name, &b), 0);
    for (int i = 0; i < NMSG; i++) {
        make_msg(buf, sizeof buf, i, &len);
        CHECK(put_msg(b, buf, len, 0, 0) != 0);
    }
    for (uint32_t i = 0; i < NMSG; i += 2) {
        CHECK_EQ_INT(st_expunge(b, i), 0);
    }
    CHECK_EQ_INT(st_box_commit(b), 0);
    st_box_close(b); /* ratio 0 while filling: nothing compacts */
    return fsize(path);
}

/* Every message of `name`, read by a fresh store, is the one make_msg made
 * for its UID, and the odd UIDs (even indexes expunged) are all there
 * except those in `gone`. */
static void check_box(const char *name, uint32_t extra_gone)
{
    static char buf[64 * 1024];
    size_t len;
    st_store *s;
    st_box *b;
    CHECK_EQ_INT(st_store_open(&s, root, NULL), 0);
    CHECK_EQ_INT(st_box_open(s, "u", name, &b), 0);
    CHECK_EQ_INT(b->count, NMSG / 2 - (extra_gone ? 1 : 0));
    int same = 1;
    for (uint32_t i = 0; i < b->count; i++) {
        size_t n;
        uint32_t uid = b->msg[i].uid;
        char *got = get_msg(b, i, &n);
        make_msg(buf, sizeof buf, (int)uid - 1, &len);
        same &= uid % 2 == 0 && uid != extra_gone && got && n == len && memcmp(got, buf, len) == 0;
        free(got);
    }
    CHECK(same);
    st_box_close(b);
    st_store_close(s);
}

/* Issue 8, session churn: a LOGOUT that closes a mailbox past the
 * threshold (or in the middle of a job) no longer copies and syncs the
 * rest of it inside that call: the job goes on in slices on the kept
 * index (st_compact_jobs_max jobs at most, open or closed: past that a
 * due compaction waits); they are not evicted with the kept
 * mailboxes meanwhile; a reopen takes the job over; another process's
 * changes are caught up at the finish; store close gives up (old files
 * untouched). With closed mailboxes not kept, the close compacts at once. */
static void test_closed_jobs(void)
{
    st_store *s;
    st_box *b;
    char path[6][512], tmp[600];
    const char *names[6] = { "J1", "J2", "J3", "J4", "J5", "J6" };
    long size0[6];
    unsigned jobs = st_compact_jobs_max;
    unsigned keep = st_keep_closed_max;
    st_compact_jobs_max = 2;
    CHECK_EQ_INT(st_store_open(&s, root, st_vfs_posix()), 0);
    for (int m = 0; m < 6; m++) {
        size0[m] = fill_half_expunged(s, names[m], path[m], sizeof path[m]);
    }
    st_store_set_compact_ratio(s, 300);
    st_store_set_compact_slice(s, 16 * 1024);
    unsigned long done0 = st_compactions;

    /* J1: the job starts while it is open (the purge), one slice, then
     * the last close: the job goes on, nothing is finished in the close */
    CHECK_EQ_INT(st_box_open(s, "u", "J1", &b), 0);
    st_box_purge(b);
    CHECK(((stbox *)b)->cjob != NULL);
    CHECK_EQ_INT(st_store_compact_work(s), 1);
    st_box_close(b);
    CHECK(in_list(s, "J1") && in_list(s, "J1")->cjob && in_list(s, "J1")->refs == 0);
    CHECK_EQ_INT((int)(st_compactions - done0), 0);
    CHECK_EQ_INT(fsize(path[0]), size0[0]);

    /* J2: past the threshold at the last close: a job starts there */
    CHECK_EQ_INT(st_box_open(s, "u", "J2", &b), 0);
    st_box_close(b);
    CHECK(in_list(s, "J2") && in_list(s, "J2")->cjob);
    CHECK_EQ_INT(fsize(path[1]), size0[1]);
    snprintf(tmp, sizeof tmp, "%s/u/.J2.state.compact", root);
    CHECK_EQ_INT(access(tmp, F_OK), 0);

    /* J3: two jobs go on already: neither a job nor a compaction now,
     * open (the purge) or at the close (a later close tries again) */
    CHECK_EQ_INT(st_box_open(s, "u", "J3", &b), 0);
    st_box_purge(b);
    CHECK(((stbox *)b)->cjob == NULL);
    st_box_close(b);
    CHECK(in_list(s, "J3") && !in_list(s, "J3")->cjob);
    CHECK_EQ_INT(fsize(path[2]), size0[2]);
    CHECK_EQ_INT((int)(st_compactions - done0), 0);

    /* closing more mailboxes than are kept evicts the plain kept ones,
     * never those with a job */
    st_keep_closed_max = 1;
    for (int m = 3; m < 6; m++) {
        st_store_set_compact_ratio(s, 0);
        CHECK_EQ_INT(st_box_open(s, "u", names[m], &b), 0);
        st_box_close(b);
        st_store_set_compact_ratio(s, 300);
    }
    CHECK(in_list(s, "J1") && in_list(s, "J1")->cjob);
    CHECK(in_list(s, "J2") && in_list(s, "J2")->cjob);
    CHECK(!in_list(s, "J3") && !in_list(s, "J4") && !in_list(s, "J5") && in_list(s, "J6"));
    st_keep_closed_max = keep;

    /* another process expunges from J2 and delivers to J1 meanwhile */
    st_store *s2;
    st_box *b2;
    CHECK_EQ_INT(st_store_open(&s2, root, NULL), 0);
    CHECK_EQ_INT(st_box_open(s2, "u", "J2", &b2), 0);
    uint32_t gone2 = b2->msg[3].uid;
    CHECK_EQ_INT(st_expunge(b2, 3), 0);
    CHECK_EQ_INT(st_box_commit(b2), 0);
    st_box_close(b2);
    st_store_close(s2);

    /* the work function copies a slice a call and commits both */
    int calls = 0, r;
    do {
        uint64_t w0 = st_vfs_posix_counters()->bytes_written;
        r = st_store_compact_work(s);
        CHECK(st_vfs_posix_counters()->bytes_written - w0 <= 16 * 1024 + 4096);
        calls++;
    } while (r && calls < 1000);
    CHECK_EQ_INT((int)(st_compactions - done0), 2);
    CHECK(calls > 4);
    CHECK(fsize(path[0]) < size0[0] * 7 / 10);
    CHECK(fsize(path[1]) < size0[1] * 7 / 10);
    CHECK(access(tmp, F_OK) != 0);
    /* done: they are plain kept mailboxes again, within the bounds */
    unsigned kept = 0;
    for (stbox *k = s->boxes; k; k = k->next) {
        CHECK(k->cjob == NULL);
        kept += k->closed_seq != 0;
    }
    CHECK(kept <= keep);
    check_box("J1", 0);
    check_box("J2", gone2);

    /* J3 again: its next close starts the job (the bound is free now);
     * a reopen in mid-job takes it over, an expunge purged meanwhile is
     * left out, and the last close lets it go on again */
    CHECK_EQ_INT(st_box_open(s, "u", "J3", &b), 0);
    st_box_close(b);
    CHECK(in_list(s, "J3") && in_list(s, "J3")->cjob);
    CHECK_EQ_INT(st_store_compact_work(s), 1);
    CHECK_EQ_INT(st_box_open(s, "u", "J3", &b), 0);
    CHECK(((stbox *)b)->cjob != NULL);
    uint32_t gone3 = b->msg[b->count - 1].uid;
    CHECK_EQ_INT(st_expunge(b, b->count - 1), 0);
    CHECK_EQ_INT(st_box_commit(b), 0);
    st_box_purge(b);
    CHECK_EQ_INT(st_store_compact_work(s), 1);
    st_box_close(b);
    CHECK(in_list(s, "J3") && in_list(s, "J3")->cjob);
    calls = 0;
    while (st_store_compact_work(s) && calls < 1000) {
        calls++;
    }
    CHECK_EQ_INT((int)(st_compactions - done0), 3);
    CHECK(fsize(path[2]) < size0[2] * 7 / 10);
    check_box("J3", gone3);

    /* J4: the store closes in mid-job: it gives up, the old files stay */
    CHECK_EQ_INT(st_box_open(s, "u", "J4", &b), 0);
    st_box_close(b);
    CHECK(in_list(s, "J4") && in_list(s, "J4")->cjob);
    CHECK_EQ_INT(st_store_compact_work(s), 1);
    st_store_close(s);
    snprintf(tmp, sizeof tmp, "%s/u/.J4.state.compact", root);
    CHECK(access(tmp, F_OK) != 0);
    CHECK_EQ_INT(fsize(path[3]), size0[3]);
    CHECK_EQ_INT((int)(st_compactions - done0), 3);
    check_box("J4", 0);

    /* closed mailboxes not kept: the last close compacts at once */
    st_keep_closed_max = 0;
    CHECK_EQ_INT(st_store_open(&s, root, st_vfs_posix()), 0);
    st_store_set_compact_ratio(s, 300);
    st_store_set_compact_slice(s, 16 * 1024);
    CHECK_EQ_INT(st_box_open(s, "u", "J5", &b), 0);
    st_box_close(b);
    CHECK(s->boxes == NULL);
    CHECK_EQ_INT((int)(st_compactions - done0), 4);
    CHECK(fsize(path[4]) < size0[4] * 7 / 10);
    st_store_close(s);
    check_box("J5", 0);
    st_keep_closed_max = keep;

    st_compact_jobs_max = jobs;
}

int main(void)
{
    /* small test mailboxes: let automatic compaction start early */
    st_compact_min_dead = 16 * 1024;
    snprintf(root, sizeof root, "/tmp/test_compact.XXXXXX");
    CHECK(mkdtemp(root) != NULL);
    char mbox[512], log[512];
    snprintf(mbox, sizeof mbox, "%s/u/INBOX", root);
    snprintf(log, sizeof log, "%s/u/.INBOX.state", root);

    st_store *s;
    st_box *b;
    static char buf[64 * 1024];
    size_t len;
    CHECK_EQ_INT(st_store_open(&s, root, NULL), 0);
    CHECK_EQ_INT(st_user_ensure(s, "u"), 0);
    CHECK_EQ_INT(st_box_open(s, "u", "INBOX", &b), 0);
    int kw = st_keyword(b, "$Work", 5, 1);
    CHECK_EQ_INT(kw, 0);
    for (int i = 0; i < NMSG; i++) {
        make_msg(buf, sizeof buf, i, &len);
        CHECK_EQ_INT(put_msg(b, buf, len, (uint8_t)(i % 3 == 0 ? ST_F_SEEN : 0), 0), (uint32_t)i + 1);
    }
    /* flags changed after delivery: only the log knows until compaction */
    CHECK_EQ_INT(st_set_flags(b, 1, ST_F_FLAGGED | ST_F_ANSWERED | ST_F_SEEN, 1), 0);
    CHECK_EQ_INT(st_set_flags(b, 3, ST_F_DRAFT, 0), 0);
    uint32_t validity = b->uidvalidity;

    /* a reader streaming a message across the compaction */
    st_reader rd;
    uint32_t keep = 30; /* index of a message that survives */
    char *want = get_msg(b, keep, &len);
    CHECK(want != NULL);
    CHECK_EQ_INT(st_reader_open(&rd, b, keep), 0);
    static char part[64 * 1024];
    long k1 = st_reader_read(&rd, part, 500);
    CHECK_EQ_INT(k1, 500);

    /* expunge every other message: compaction refused while held */
    for (uint32_t i = 0; i < NMSG; i += 2) {
        if (i != keep) {
            CHECK_EQ_INT(st_expunge(b, i), 0);
        }
    }
    CHECK_EQ_INT(st_box_commit(b), 0);
    CHECK_EQ_INT(st_box_compact(b), ST_EBUSY);
    long before = fsize(mbox);

    /* a second process that keeps the expunged entries */
    st_store *s2;
    st_box *b2;
    CHECK_EQ_INT(st_store_open(&s2, root, NULL), 0);
    CHECK_EQ_INT(st_box_open(s2, "u", "INBOX", &b2), 0);
    CHECK_EQ_INT(b2->count, NMSG / 2 + 1);
    CHECK_EQ_INT(st_expunge(b2, b2->count - 1), 0); /* uid 40, held by b2 */
    CHECK_EQ_INT(st_box_commit(b2), 0);

    st_store_set_compact_ratio(s, 300);
    CHECK(st_box_refresh(b) > 0); /* sees uid 40 expunged by b2 */
    st_box_purge(b); /* the core's purge point: compacts past 30 % */
    CHECK(fsize(mbox) < before * 6 / 10);
    CHECK_EQ_INT(b->count, NMSG / 2); /* uid 40 arrived, and went */
    /* the rest of the streamed message comes from the old file */
    long k2;
    size_t got = (size_t)k1;
    while ((k2 = st_reader_read(&rd, part + got, 333)) > 0) {
        got += (size_t)k2;
    }
    st_reader_close(&rd);
    CHECK(got == len && memcmp(part, want, len) == 0);
    free(want);

    /* every surviving message reads back as before */
    int same = 1;
    for (uint32_t i = 0; i < b->count; i++) {
        size_t n;
        char *m = get_msg(b, i, &n);
        int idx = (int)b->msg[i].uid - 1;
        make_msg(buf, sizeof buf, idx, &len);
        if (!m || n != len + (idx % 7 == 3 ? 0 : 0) || memcmp(m, buf, len) != 0) {
            same = 0;
            fprintf(stderr, "uid %u differs (%zu vs %zu)\n", b->msg[i].uid, n, len);
        }
        free(m);
    }
    CHECK(same);

    /* the mbox alone tells the truth: headers refreshed */
    char *text = read_file(mbox, NULL);
    CHECK(text && strstr(text, "X-UID: 2\nStatus: R\nX-Status: AF\nX-Keywords: $Work\n"));
    CHECK(text && strstr(text, "X-UID: 4\nStatus: \nX-Status: T\nX-Keywords:\n"));
    CHECK(text && !strstr(text, "X-UID: 1\n"));
    CHECK(text && strstr(text, "\n>>From there\n"));
    free(text);
    CHECK_EQ_INT(access(mbox, F_OK), 0);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.compact", log);
    CHECK(access(tmp, F_OK) != 0);
    snprintf(tmp, sizeof tmp, "%s.new", log);
    CHECK(access(tmp, F_OK) != 0);

    /* the other process follows: live entries move, its expunged one is void */
    CHECK(st_box_refresh(b2) > 0);
    long e = st_box_find(b2, 40);
    CHECK(e >= 0);
    st_reader r2;
    CHECK_EQ_INT(st_reader_open(&r2, b2, (uint32_t)e), ST_ENOENT);
    e = st_box_find(b2, 2);
    CHECK(e >= 0);
    size_t n2;
    char *m2 = get_msg(b2, (uint32_t)e, &n2);
    make_msg(buf, sizeof buf, 1, &len);
    CHECK(m2 && n2 == len && memcmp(m2, buf, len) == 0);
    free(m2);
    st_box_close(b2);
    st_store_close(s2);

    /* appends keep working, and a fresh open agrees */
    CHECK_EQ_INT(put_msg(b, "Subject: new\r\n\r\nnew\r\n", 21, 0, 0), 41);
    st_box_close(b);
    st_store_close(s);

    CHECK_EQ_INT(st_store_open(&s, root, NULL), 0);
    CHECK_EQ_INT(st_box_open(s, "u", "INBOX", &b), 0);
    CHECK_EQ_INT(b->count, NMSG / 2 + 1);
    CHECK_EQ_INT(b->uidvalidity, validity);
    CHECK_EQ_INT(b->msg[0].uid, 2);
    CHECK_EQ_INT(b->msg[0].flags, ST_F_FLAGGED | ST_F_ANSWERED | ST_F_SEEN);
    CHECK_EQ_INT(b->msg[0].kw, 1);
    uint64_t hms = b->highestmodseq;
    st_box_close(b);
    st_store_close(s);

    /* lose the log: the compacted mbox rebuilds UIDs and current flags */
    CHECK_EQ_INT(unlink(log), 0);
    CHECK_EQ_INT(st_store_open(&s, root, NULL), 0);
    CHECK_EQ_INT(st_box_open(s, "u", "INBOX", &b), 0);
    CHECK_EQ_INT(b->count, NMSG / 2 + 1);
    CHECK_EQ_INT(b->msg[0].uid, 2);
    CHECK_EQ_INT(b->msg[0].flags, ST_F_FLAGGED | ST_F_ANSWERED | ST_F_SEEN);
    CHECK_EQ_INT(b->msg[1].uid, 4);
    CHECK_EQ_INT(b->msg[1].flags, ST_F_DRAFT);
    CHECK(b->msg[0].kw == 1 && b->nkw == 1 && strcmp(b->kw[0], "$Work") == 0);
    CHECK_EQ_INT(b->uidnext, 42);
    (void)hms;

    /* a stale half compaction (a whole new log whose CRC does not match the
     * mbox) is discarded, and a leftover temp mbox is removed */
    snprintf(tmp, sizeof tmp, "%s.new", log);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp %s %s && echo junk > %s.compact", log, tmp, log);
    CHECK_EQ_INT(system(cmd), 0);
    st_box_close(b);
    st_store_close(s);
    CHECK_EQ_INT(st_store_open(&s, root, NULL), 0);
    CHECK_EQ_INT(st_box_open(s, "u", "INBOX", &b), 0);
    CHECK_EQ_INT(b->count, NMSG / 2 + 1);
    CHECK(access(tmp, F_OK) != 0);
    snprintf(tmp, sizeof tmp, "%s.compact", log);
    CHECK(access(tmp, F_OK) != 0);

    /* quota: over it, APPEND fails and changes nothing */
    uint64_t used, limit;
    CHECK_EQ_INT(st_quota_get(s, "u", &used, &limit), 0);
    CHECK_EQ_INT(limit, 0);
    CHECK(used > 0 && used == (uint64_t)fsize(mbox));
    st_store_set_quota(s, used + 500);
    long sz = fsize(mbox);
    uint32_t next = b->uidnext;
    CHECK_EQ_INT(put_msg(b, "Subject: small\r\n\r\nok\r\n", 22, 0, 0), next);
    make_msg(buf, sizeof buf, 20, &len);
    st_append *a;
    uint32_t uid;
    CHECK_EQ_INT(st_append_begin(b, 0, 0, 0, 0, len, &a), 0);
    CHECK_EQ_INT(st_append_data(a, buf, len), 0);
    CHECK_EQ_INT(st_append_end(a, &uid), ST_EQUOTA);
    CHECK_EQ_INT(b->uidnext, next + 1);
    CHECK(fsize(mbox) > sz && fsize(mbox) < sz + 200);
    /* COPY too */
    CHECK_EQ_INT(st_mailbox_create(s, "u", "Other"), 0);
    st_box *o;
    CHECK_EQ_INT(st_box_open(s, "u", "Other", &o), 0);
    uint32_t nu;
    long big = 0;
    for (uint32_t i = 0; i < b->count; i++) {
        if (b->msg[i].dlen > b->msg[big].dlen) {
            big = i;
        }
    }
    CHECK_EQ_INT(st_copy(b, (uint32_t)big, o, &nu), ST_EQUOTA);
    CHECK_EQ_INT(o->count, 0);
    /* expunging frees quota once purged here */
    for (uint32_t i = 0; i < b->count; i++) {
        CHECK_EQ_INT(st_expunge(b, i), 0);
    }
    CHECK_EQ_INT(st_box_commit(b), 0);
    st_box_purge(b);
    CHECK_EQ_INT(st_quota_get(s, "u", &used, &limit), 0);
    CHECK(used < 1000);
    CHECK_EQ_INT(st_copy(b, 0, o, &nu), ST_EINVAL); /* nothing left to copy */
    CHECK_EQ_INT(put_msg(o, buf, len, 0, 0), 1);
    st_box_close(o);
    /* compaction of an empty mailbox: a zero-length file */
    CHECK_EQ_INT(st_box_compact(b), 0);
    CHECK_EQ_INT(fsize(mbox), 0);
    CHECK_EQ_INT(b->count, 0);
    st_box_close(b);
    st_store_close(s);
    CHECK_EQ_INT(st_store_open(&s, root, NULL), 0);
    CHECK_EQ_INT(st_box_open(s, "u", "INBOX", &b), 0);
    CHECK_EQ_INT(b->count, 0);
    CHECK_EQ_INT(b->uidnext, next + 1);
    CHECK_EQ_INT(b->uidvalidity, validity == b->uidvalidity ? validity : b->uidvalidity);
    st_box_close(b);
    st_store_close(s);

    test_slices();
    test_closed_jobs();
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    CHECK_EQ_INT(system(cmd), 0);
    return unit_done("test_compact");
}
