/* test_store.c -- the mail store against storage/store.h, on a temp dir. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <time.h>

#include "store.h"
#include "vfs.h"
#include "st_int.h"
#include "unit.h"

static char root[256];

static char *path_of(const char *user, const char *file)
{
    static char p[1024];
    snprintf(p, sizeof p, "%s/%s/%s", root, user, file);
    return p;
}

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

static void append_file(const char *path, const char *data)
{
    FILE *f = fopen(path, "ab");
    fputs(data, f);
    fclose(f);
}

/* Append in slices of `slice` bytes; returns the UID or 0. */
static uint32_t put_msg(st_box *b, const char *data, size_t len, uint8_t flags, uint64_t kw, size_t slice)
{
    st_append *a;
    uint32_t uid = 0;
    if (st_append_begin(b, 1700000000, 60, flags, kw, len, &a)) {
        return 0;
    }
    for (size_t i = 0; i < len; i += slice) {
        size_t k = len - i < slice ? len - i : slice;
        if (st_append_data(a, data + i, k)) {
            st_append_abort(a);
            return 0;
        }
    }
    if (st_append_end(a, &uid)) {
        return 0;
    }
    return st_box_commit(b) ? 0 : uid;
}

/* The wire form of message idx, read in slices of `slice`. */
static char *get_msg(st_box *b, uint32_t idx, size_t slice, size_t *len)
{
    st_reader r;
    size_t cap = 1024, n = 0;
    char *out = malloc(cap);
    if (st_reader_open(&r, b, idx)) {
        free(out);
        return NULL;
    }
    for (;;) {
        if (n + slice + 1 > cap) {
            cap = (n + slice + 1) * 2;
            out = realloc(out, cap);
        }
        long k = st_reader_read(&r, out + n, slice);
        if (k < 0) {
            free(out);
            st_reader_close(&r);
            return NULL;
        }
        if (k == 0) {
            break;
        }
        n += (size_t)k;
    }
    st_reader_close(&r);
    out[n] = 0;
    *len = n;
    return out;
}

static int same_msg(st_box *b, uint32_t idx, const char *want, size_t wlen, size_t slice)
{
    size_t n;
    char *got = get_msg(b, idx, slice, &n);
    int ok = got && n == wlen && memcmp(got, want, n) == 0 && b->msg[idx].size == wlen;
    if (!ok) {
        fprintf(stderr, "message %u (slice %zu): got %zu bytes, want %zu, size %u\n",
                idx, slice, got ? n : 0, wlen, b->msg[idx].size);
    }
    free(got);
    return ok;
}

static void collect(void *ctx, const char *name)
{
    char *buf = ctx;
    strcat(buf, name);
    strcat(buf, ";");
}

static int has_name(const char *list, const char *name)
{
    char pat[300];
    snprintf(pat, sizeof pat, ";%s;", name);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, ";%s", list);
    return strstr(tmp, pat) != NULL;
}

static void test_basic(void)
{
    st_store *s;
    st_box *b, *b2;
    CHECK_EQ_INT(st_store_open(&s, root, NULL), 0);
    CHECK_EQ_INT(st_user_ensure(s, "alice"), 0);
    CHECK_EQ_INT(st_user_ensure(s, "alice"), 0);
    CHECK_EQ_INT(st_mailbox_exists(s, "alice", "INBOX"), 1);
    CHECK_EQ_INT(st_mailbox_create(s, "alice", "Work"), 0);
    CHECK_EQ_INT(st_mailbox_create(s, "alice", "Work"), ST_EEXIST);
    CHECK_EQ_INT(st_mailbox_create(s, "alice", ".hidden/../x%"), 0);
    CHECK_EQ_INT(st_mailbox_exists(s, "alice", ".hidden/../x%"), 1);
    CHECK(access(path_of("alice", "%2Ehidden%2F..%2Fx%25"), F_OK) == 0);

    CHECK_EQ_INT(st_box_open(s, "alice", "Work", &b), 0);
    CHECK_EQ_INT(st_box_open(s, "alice", "Work", &b2), 0);
    CHECK(b == b2);
    st_box_close(b2);
    CHECK_EQ_INT(b->count, 0);
    CHECK_EQ_INT(b->uidnext, 1);
    CHECK(b->uidvalidity > 0);
    uint32_t uidv = b->uidvalidity;

    const char m1[] = "Subject: one\r\nFrom: a@b\r\n\r\nHello\r\n";
    uint32_t u1 = put_msg(b, m1, sizeof m1 - 1, 0, 0, 5);
    CHECK_EQ_INT(u1, 1);
    CHECK_EQ_INT(b->count, 1);
    CHECK(same_msg(b, 0, m1, sizeof m1 - 1, 3));
    CHECK(same_msg(b, 0, m1, sizeof m1 - 1, 1));

    /* 5 MB with long lines, "From " lines and quoted lines; spooled */
    size_t big = 5u * 1024 * 1024;
    char *m2 = malloc(big);
    size_t o = 0;
    o += (size_t)sprintf(m2, "Subject: big\r\n\r\n");
    for (unsigned i = 0; o + 200 < big; i++) {
        if (i % 7 == 0) {
            o += (size_t)sprintf(m2 + o, "From line %u\r\n", i);
        } else if (i % 11 == 0) {
            o += (size_t)sprintf(m2 + o, ">>From quoted %u\r\n", i);
        } else {
            memset(m2 + o, 'a' + (char)(i % 26), 150);
            o += 150;
            m2[o++] = '\r';
            m2[o++] = '\n';
        }
    }
    uint32_t u2 = put_msg(b, m2, o, ST_F_SEEN, 0, 65536 + 17);
    CHECK_EQ_INT(u2, 2);
    CHECK(same_msg(b, 1, m2, o, 16384));
    CHECK(same_msg(b, 1, m2, o, 4093));

    /* flags and keywords */
    int k1 = st_keyword(b, "$Junk", 5, 1);
    int k2 = st_keyword(b, "work", 4, 1);
    CHECK_EQ_INT(k1, 0);
    CHECK_EQ_INT(k2, 1);
    CHECK_EQ_INT(st_keyword(b, "WORK", 4, 0), 1);
    CHECK_EQ_INT(st_keyword(b, "nope", 4, 0), ST_ENOENT);
    uint64_t ms = b->highestmodseq;
    CHECK_EQ_INT(st_set_flags(b, 0, ST_F_FLAGGED | ST_F_ANSWERED, 1u << k2), 0);
    CHECK(b->highestmodseq == ms + 1);
    CHECK(b->msg[0].modseq == ms + 1);
    CHECK_EQ_INT(st_set_flags(b, 0, ST_F_FLAGGED | ST_F_ANSWERED, 1u << k2), 0);
    CHECK(b->highestmodseq == ms + 1); /* no-op writes nothing */
    uint32_t u3 = put_msg(b, "x\r\n", 3, ST_F_DRAFT, 3, 1);
    CHECK_EQ_INT(u3, 3);
    CHECK_EQ_INT(st_expunge(b, 1), 0);
    CHECK(b->msg[1].flags & ST_F_EXPUNGED);
    CHECK_EQ_INT(st_box_commit(b), 0);
    st_box_purge(b);
    CHECK_EQ_INT(b->count, 2);
    CHECK_EQ_INT(b->msg[1].uid, 3);
    CHECK_EQ_INT(st_box_set_recent(b, 4), 0);
    CHECK_EQ_INT(st_box_commit(b), 0);
    st_box_close(b);
    st_store_close(s);

    /* reopen: the same UIDs, UIDVALIDITY, flags, keywords */
    CHECK_EQ_INT(st_store_open(&s, root, NULL), 0);
    CHECK_EQ_INT(st_box_open(s, "alice", "Work", &b), 0);
    CHECK_EQ_INT(b->uidvalidity, uidv);
    CHECK_EQ_INT(b->count, 2);
    CHECK_EQ_INT(b->uidnext, 4);
    CHECK_EQ_INT(b->recent_uid, 4);
    CHECK_EQ_INT(b->msg[0].uid, 1);
    CHECK_EQ_INT(b->msg[1].uid, 3);
    CHECK_EQ_INT(b->msg[0].flags, ST_F_FLAGGED | ST_F_ANSWERED);
    CHECK(b->msg[0].kw == 2);
    CHECK_EQ_INT(b->msg[1].flags, ST_F_DRAFT);
    CHECK(b->msg[1].kw == 3);
    CHECK_EQ_INT(b->nkw, 2);
    CHECK_EQ_STR(b->kw[0], "$Junk");
    CHECK_EQ_INT(b->msg[0].idate, 1700000000);
    CHECK_EQ_INT(b->msg[0].tz, 60);
    CHECK(same_msg(b, 0, m1, sizeof m1 - 1, 100));
    CHECK(b->highestmodseq >= 5);

    /* copy, into another mailbox and into itself */
    st_box *inbox;
    uint32_t nu;
    CHECK_EQ_INT(st_box_open(s, "alice", "INBOX", &inbox), 0);
    CHECK_EQ_INT(st_copy(b, 0, inbox, &nu), 0);
    CHECK_EQ_INT(nu, 1);
    CHECK_EQ_INT(inbox->count, 1);
    CHECK_EQ_INT(inbox->msg[0].flags, ST_F_FLAGGED | ST_F_ANSWERED);
    CHECK_EQ_INT(inbox->nkw, 1);
    CHECK_EQ_STR(inbox->kw[0], "work");
    CHECK(inbox->msg[0].kw == 1);
    CHECK(inbox->msg[0].idate == 1700000000);
    CHECK(same_msg(inbox, 0, m1, sizeof m1 - 1, 7));
    CHECK_EQ_INT(st_copy(b, 0, b, &nu), 0);
    CHECK_EQ_INT(nu, 4);
    CHECK(same_msg(b, 2, m1, sizeof m1 - 1, 7));
    CHECK_EQ_INT(st_box_commit(inbox), 0);
    CHECK_EQ_INT(st_box_commit(b), 0);
    st_box_close(inbox);
    free(m2);

    /* the mbox alone says the flags, for other tools */
    char *mb = read_file(path_of("alice", "Work"), NULL);
    const char head[] = "From MAILER-DAEMON Tue Nov 14 22:13:20 2023\nX-UID: 1\nStatus: \nX-Status: \nX-Keywords:\nSubject: one\n";
    CHECK(mb && strncmp(mb, head, sizeof head - 1) == 0);
    CHECK(mb && strstr(mb, "X-UID: 3\nStatus: \nX-Status: T\nX-Keywords: $Junk work\nx\n\n"));
    free(mb);
    st_box_close(b);
    st_store_close(s);
}

static void test_quoting(void)
{
    st_store *s;
    st_box *b;
    CHECK_EQ_INT(st_store_open(&s, root, NULL), 0);
    CHECK_EQ_INT(st_mailbox_create(s, "alice", "Q"), 0);
    CHECK_EQ_INT(st_box_open(s, "alice", "Q", &b), 0);
    const char q1[] = "From x\r\n>From y\r\n>>From z\r\n>Fro\r\nFromage\r\n>\r\nno newline at end";
    const char q2[] = "From x";            /* all of it a quoted line, no LF */
    const char q3[] = ">From";             /* not "From " */
    const char q4[] = "a\nb\n\nFrom c\n";  /* bare LFs: come back as CRLF */
    const char q4w[] = "a\r\nb\r\n\r\nFrom c\r\n";
    const char q5[] = "a\rb\r\r\nc\r";     /* lone CRs stay */
    const char q6[] = "";
    const char *in[] = { q1, q2, q3, q4, q5, q6 };
    const char *want[] = { q1, q2, q3, q4w, q5, q6 };
    for (int i = 0; i < 6; i++) {
        for (size_t slice = 1; slice <= 4096; slice = slice * 3 + 1) {
            uint32_t before = b->count;
            CHECK(put_msg(b, in[i], strlen(in[i]), 0, 0, slice) > 0);
            CHECK_EQ_INT(b->count, before + 1);
            for (size_t rs = 1; rs < 40; rs += 2) {
                CHECK(same_msg(b, b->count - 1, want[i], strlen(want[i]), rs));
            }
        }
    }
    char *mb = read_file(path_of("alice", "Q"), NULL);
    CHECK(mb && strstr(mb, "\n>From x\n>>From y\n>>>From z\n>Fro\nFromage\n>\nno newline at end\n\n"));
    /* every separator line of the file is one of ours */
    int seps = 0;
    for (char *p = mb; p && (p = strstr(p, "From ")) != NULL; p++) {
        if (p == mb || p[-1] == '\n') {
            seps++;
            CHECK(strncmp(p, "From MAILER-DAEMON ", 19) == 0);
        }
    }
    CHECK_EQ_INT(seps, (int)b->count);
    free(mb);
    st_box_close(b);
    st_store_close(s);
}

static void test_names(void)
{
    st_store *s;
    st_box *b, *old;
    char list[4096];
    CHECK_EQ_INT(st_store_open(&s, root, NULL), 0);
    CHECK_EQ_INT(st_user_ensure(s, "bob"), 0);
    CHECK_EQ_INT(st_mailbox_create(s, "bob", "a"), 0);
    CHECK_EQ_INT(st_mailbox_create(s, "bob", "a/b"), 0);
    CHECK_EQ_INT(st_mailbox_create(s, "bob", "a/b/c"), 0);
    CHECK_EQ_INT(st_mailbox_create(s, "bob", "ab"), 0);
    CHECK_EQ_INT(st_box_open(s, "bob", "a/b", &old), 0);
    CHECK(put_msg(old, "m\r\n", 3, ST_F_SEEN, 0, 3) == 1);
    uint32_t uidv = old->uidvalidity;
    CHECK_EQ_INT(st_mailbox_rename(s, "bob", "a", "ab"), ST_EEXIST);
    CHECK_EQ_INT(st_mailbox_rename(s, "bob", "a", "a/x"), ST_EINVAL);
    CHECK_EQ_INT(st_mailbox_rename(s, "bob", "zz", "yy"), ST_ENOENT);
    CHECK_EQ_INT(st_mailbox_rename(s, "bob", "a", "z"), 0);
    CHECK(old->deleted);
    st_box_close(old);
    list[0] = 0;
    CHECK_EQ_INT(st_mailbox_list(s, "bob", collect, list), 0);
    CHECK(has_name(list, "z") && has_name(list, "z/b") && has_name(list, "z/b/c"));
    CHECK(has_name(list, "ab") && has_name(list, "INBOX"));
    CHECK(!has_name(list, "a") && !has_name(list, "a/b"));
    CHECK_EQ_INT(st_box_open(s, "bob", "z/b", &b), 0);
    CHECK_EQ_INT(b->count, 1);
    CHECK_EQ_INT(b->uidvalidity, uidv);
    CHECK_EQ_INT(b->msg[0].flags, ST_F_SEEN);
    st_box_close(b);

    /* INBOX: its messages move, INBOX stays, empty, new UIDVALIDITY */
    CHECK_EQ_INT(st_mailbox_create(s, "bob", "INBOX/kid"), 0);
    CHECK_EQ_INT(st_box_open(s, "bob", "INBOX", &b), 0);
    CHECK(put_msg(b, "i1\r\n", 4, 0, 0, 4) == 1);
    CHECK(put_msg(b, "i2\r\n", 4, 0, 0, 4) == 2);
    uidv = b->uidvalidity;
    CHECK_EQ_INT(st_mailbox_rename(s, "bob", "INBOX", "old-in"), 0);
    CHECK(b->deleted);
    st_box_close(b);
    CHECK_EQ_INT(st_box_open(s, "bob", "INBOX", &b), 0);
    CHECK_EQ_INT(b->count, 0);
    CHECK(b->uidvalidity != uidv);
    st_box_close(b);
    CHECK_EQ_INT(st_box_open(s, "bob", "old-in", &b), 0);
    CHECK_EQ_INT(b->count, 2);
    CHECK_EQ_INT(b->uidvalidity, uidv);
    st_box_close(b);
    CHECK_EQ_INT(st_mailbox_exists(s, "bob", "INBOX/kid"), 1);

    /* delete */
    CHECK_EQ_INT(st_mailbox_delete(s, "bob", "INBOX"), ST_EPERM);
    CHECK_EQ_INT(st_box_open(s, "bob", "ab", &b), 0);
    CHECK_EQ_INT(st_mailbox_delete(s, "bob", "ab"), 0);
    CHECK(b->deleted);
    CHECK(put_msg(b, "x\r\n", 3, 0, 0, 3) == 0);
    st_box_close(b);
    CHECK_EQ_INT(st_mailbox_exists(s, "bob", "ab"), 0);
    CHECK_EQ_INT(st_mailbox_delete(s, "bob", "ab"), ST_ENOENT);
    CHECK_EQ_INT(st_box_open(s, "bob", "ab", &b), ST_ENOENT);
    /* recreate: a new UIDVALIDITY even within the same second */
    CHECK_EQ_INT(st_mailbox_create(s, "bob", "ab"), 0);
    CHECK_EQ_INT(st_box_open(s, "bob", "ab", &b), 0);
    CHECK_EQ_INT(b->count, 0);
    CHECK(b->uidvalidity > uidv);
    st_box_close(b);

    /* subscriptions */
    list[0] = 0;
    CHECK_EQ_INT(st_subs_list(s, "bob", collect, list), 0);
    CHECK_EQ_STR(list, "");
    CHECK_EQ_INT(st_subscribe(s, "bob", "z", 1), 0);
    CHECK_EQ_INT(st_subscribe(s, "bob", "gone", 1), 0);
    CHECK_EQ_INT(st_subscribe(s, "bob", "z", 1), 0);
    CHECK_EQ_INT(st_subscribe(s, "bob", "gone", 0), 0);
    CHECK_EQ_INT(st_subscribe(s, "bob", "z/b", 1), 0);
    CHECK_EQ_INT(st_subs_list(s, "bob", collect, list), 0);
    CHECK_EQ_STR(list, "z;z/b;");
    st_store_close(s);
}

static void test_two_processes(void)
{
    st_store *s1, *s2;
    st_box *b1, *b2;
    CHECK_EQ_INT(st_store_open(&s1, root, NULL), 0);
    CHECK_EQ_INT(st_store_open(&s2, root, NULL), 0);
    CHECK_EQ_INT(st_user_ensure(s1, "carol"), 0);
    CHECK_EQ_INT(st_box_open(s1, "carol", "INBOX", &b1), 0);
    CHECK_EQ_INT(st_box_open(s2, "carol", "INBOX", &b2), 0);
    CHECK(b1 != b2);
    CHECK_EQ_INT(st_box_refresh(b1), 0);
    CHECK(put_msg(b2, "one\r\n", 5, 0, 0, 5) == 1);
    CHECK(put_msg(b1, "two\r\n", 5, 0, 0, 5) == 2); /* b1 catches up first */
    CHECK_EQ_INT(b1->count, 2);
    CHECK(same_msg(b1, 0, "one\r\n", 5, 64));
    CHECK_EQ_INT(st_box_refresh(b2), 1);
    CHECK_EQ_INT(b2->count, 2);
    CHECK(same_msg(b2, 1, "two\r\n", 5, 64));
    CHECK_EQ_INT(st_box_refresh(b2), 0);
    int k = st_keyword(b2, "shared", 6, 1);
    CHECK_EQ_INT(st_set_flags(b2, 0, ST_F_SEEN, 1u << k), 0);
    CHECK_EQ_INT(st_expunge(b2, 1), 0);
    CHECK_EQ_INT(st_box_commit(b2), 0);
    CHECK_EQ_INT(st_box_refresh(b1), 1);
    CHECK_EQ_INT(b1->msg[0].flags, ST_F_SEEN);
    CHECK_EQ_INT(b1->nkw, 1);
    CHECK(b1->msg[0].kw == 1);
    CHECK(b1->msg[1].flags & ST_F_EXPUNGED);
    CHECK_EQ_INT(b1->highestmodseq, b2->highestmodseq);

    /* an outside MDA appends plain mboxrd */
    append_file(path_of("carol", "INBOX"),
                "From someone@example.org Mon Jan  1 10:00:00 2024\n"
                "Subject: outside\nStatus: RO\n\nbody\n>From here\n\n"
                "From other@example.org Mon Jan  1 11:00:00 2024\n"
                "Subject: second\n\nno blank line after");
    CHECK_EQ_INT(st_box_refresh(b1), 1);
    CHECK_EQ_INT(b1->count, 4);
    CHECK_EQ_INT(b1->msg[2].uid, 3);
    CHECK_EQ_INT(b1->msg[3].uid, 4);
    CHECK_EQ_INT(b1->msg[2].flags, ST_F_SEEN);
    CHECK_EQ_INT(b1->msg[2].idate, 1704103200);
    const char w3[] = "Subject: outside\r\nStatus: RO\r\n\r\nbody\r\nFrom here\r\n";
    const char w4[] = "Subject: second\r\n\r\nno blank line after";
    CHECK(same_msg(b1, 2, w3, sizeof w3 - 1, 5));
    CHECK(same_msg(b1, 3, w4, sizeof w4 - 1, 5));
    CHECK_EQ_INT(st_box_refresh(b2), 1);
    CHECK_EQ_INT(b2->count, 4);
    CHECK_EQ_INT(b2->msg[3].uid, 4);
    /* our next append goes after it, separated properly */
    CHECK(put_msg(b2, "five\r\n", 6, 0, 0, 6) == 5);
    CHECK(same_msg(b2, 3, w4, sizeof w4 - 1, 5));
    CHECK(same_msg(b2, 4, "five\r\n", 6, 5));
    CHECK_EQ_INT(st_box_refresh(b1), 1);
    CHECK(same_msg(b1, 4, "five\r\n", 6, 5));
    st_box_close(b1);
    st_box_close(b2);
    st_store_close(s1);
    st_store_close(s2);

    /* and everything is there after a restart */
    CHECK_EQ_INT(st_store_open(&s1, root, NULL), 0);
    CHECK_EQ_INT(st_box_open(s1, "carol", "INBOX", &b1), 0);
    CHECK_EQ_INT(b1->count, 4);
    CHECK_EQ_INT(b1->msg[1].uid, 3);
    CHECK_EQ_INT(b1->uidnext, 6);
    st_box_close(b1);
    st_store_close(s1);
}

static void test_recovery(void)
{
    st_store *s;
    st_box *b;
    CHECK_EQ_INT(st_store_open(&s, root, NULL), 0);
    CHECK_EQ_INT(st_user_ensure(s, "dave"), 0);
    CHECK_EQ_INT(st_box_open(s, "dave", "INBOX", &b), 0);
    for (int i = 0; i < 5; i++) {
        char m[64];
        snprintf(m, sizeof m, "Subject: %d\r\n\r\nbody %d\r\n", i, i);
        CHECK(put_msg(b, m, strlen(m), i == 2 ? ST_F_SEEN | ST_F_FLAGGED : 0, 0, 9) == (uint32_t)i + 1);
    }
    int k = st_keyword(b, "Later", 5, 1);
    CHECK_EQ_INT(st_set_flags(b, 3, ST_F_DELETED, 1u << k), 0);
    CHECK_EQ_INT(st_expunge(b, 4), 0);
    CHECK_EQ_INT(st_box_commit(b), 0);
    uint32_t uidv = b->uidvalidity;
    st_box_close(b);
    st_store_close(s);

    /* garbage after the last record: dropped, the rest stands */
    append_file(path_of("dave", ".INBOX.state"), "\x02\x00\x00\x36garbage that is not a record");
    CHECK_EQ_INT(st_store_open(&s, root, NULL), 0);
    CHECK_EQ_INT(st_box_open(s, "dave", "INBOX", &b), 0);
    CHECK_EQ_INT(b->count, 4);
    CHECK_EQ_INT(b->uidvalidity, uidv);
    CHECK_EQ_INT(b->msg[3].flags, ST_F_DELETED);
    CHECK(put_msg(b, "six\r\n", 5, 0, 0, 5) == 6);
    st_box_close(b);
    st_store_close(s);

    /* our own unlogged write at the mbox tail (writer died before its
     * record): trimmed, never doubled */
    size_t before;
    free(read_file(path_of("dave", "INBOX"), &before));
    append_file(path_of("dave", "INBOX"),
                "\nFrom MAILER-DAEMON Mon Jan  1 10:00:00 2024\nX-UID: 7\nStatus: \nX-Status: \nX-Key");
    CHECK_EQ_INT(st_store_open(&s, root, NULL), 0);
    CHECK_EQ_INT(st_box_open(s, "dave", "INBOX", &b), 0);
    CHECK_EQ_INT(b->count, 5);
    CHECK_EQ_INT(b->uidnext, 7);
    size_t after;
    free(read_file(path_of("dave", "INBOX"), &after));
    CHECK_EQ_INT(after, before);
    st_box_close(b);
    st_store_close(s);

    /* the state log is lost: rebuilt from the mbox, X-UIDs kept; flags as
     * written at delivery; the expunged message (bytes not yet reclaimed)
     * comes back */
    CHECK_EQ_INT(unlink(path_of("dave", ".INBOX.state")), 0);
    CHECK_EQ_INT(st_store_open(&s, root, NULL), 0);
    CHECK_EQ_INT(st_box_open(s, "dave", "INBOX", &b), 0);
    CHECK_EQ_INT(b->count, 6);
    for (uint32_t i = 0; i < b->count; i++) {
        CHECK_EQ_INT(b->msg[i].uid, i + 1);
    }
    CHECK_EQ_INT(b->uidnext, 7);
    CHECK_EQ_INT(b->msg[2].flags, ST_F_SEEN | ST_F_FLAGGED);
    CHECK_EQ_INT(b->msg[0].flags, 0);
    const char w[] = "Subject: 1\r\n\r\nbody 1\r\n";
    CHECK(same_msg(b, 1, w, sizeof w - 1, 3));
    CHECK(b->uidvalidity != 0);
    CHECK(put_msg(b, "seven\r\n", 7, 0, 0, 7) == 7);
    st_box_close(b);
    st_store_close(s);

    /* a log whose header is garbage is treated as lost */
    FILE *f = fopen(path_of("dave", ".INBOX.state"), "r+b");
    fputs("XXXX", f);
    fclose(f);
    CHECK_EQ_INT(st_store_open(&s, root, NULL), 0);
    CHECK_EQ_INT(st_box_open(s, "dave", "INBOX", &b), 0);
    CHECK_EQ_INT(b->count, 7);
    CHECK_EQ_INT(b->msg[6].uid, 7);
    st_box_close(b);
    st_store_close(s);

    /* many flag changes: the log is checkpointed, replay stays short */
    CHECK_EQ_INT(st_store_open(&s, root, NULL), 0);
    CHECK_EQ_INT(st_box_open(s, "dave", "INBOX", &b), 0);
    for (int i = 0; i < 5000; i++) {
        CHECK_EQ_INT(st_set_flags(b, (uint32_t)i % b->count, (uint8_t)(i & ST_F_SYSMASK), 0), 0);
        if (i % 50 == 0) {
            CHECK_EQ_INT(st_box_commit(b), 0);
        }
    }
    CHECK_EQ_INT(st_box_commit(b), 0);
    uint8_t last = b->msg[4999 % b->count].flags;
    uint64_t hm = b->highestmodseq;
    st_box_close(b);
    st_store_close(s);
    struct stat sb;
    CHECK(stat(path_of("dave", ".INBOX.state"), &sb) == 0 && sb.st_size < 100000);
    CHECK_EQ_INT(st_store_open(&s, root, NULL), 0);
    CHECK_EQ_INT(st_box_open(s, "dave", "INBOX", &b), 0);
    CHECK_EQ_INT(b->count, 7);
    CHECK_EQ_INT(b->msg[4999 % 7].flags, last);
    CHECK(b->highestmodseq == hm);
    st_box_close(b);
    st_store_close(s);
}

/* The CRC-32 of the log records and message checks, bit by bit: what the
 * table-driven st_crc32 must agree with. */
static uint32_t crc_bitwise(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) {
            crc = (crc & 1) ? 0xedb88320u ^ (crc >> 1) : crc >> 1;
        }
    }
    return ~crc;
}

/* The byte-at-a-time table loop st_crc32 used before slice-by-8, kept here
 * only as the benchmark's baseline. */
static uint32_t crc_bytewise(uint32_t crc, const uint8_t *p, size_t n)
{
    static uint32_t tab[256];
    if (!tab[1]) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) {
                c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
            }
            tab[i] = c;
        }
    }
    crc = ~crc;
    while (n--) {
        crc = tab[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    }
    return ~crc;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_crc(void)
{
    /* the standard check value, and zlib's crc32() of "hello world" */
    CHECK(st_crc32(0, "123456789", 9) == 0xcbf43926u);
    CHECK(st_crc32(0, "hello world", 11) == 0x0d4a1185u);
    CHECK(st_crc32(0, "", 0) == 0);
    /* every length and alignment around the 8-byte steps, fed whole and in
     * two pieces (the scanner and verify chain calls) */
    uint8_t buf[300];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof buf; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    int bad = 0;
    for (size_t off = 0; off < 8; off++) {
        for (size_t n = 0; n + off <= 280; n++) {
            uint32_t want = crc_bitwise(0, buf + off, n);
            if (st_crc32(0, buf + off, n) != want ||
                st_crc32(st_crc32(0, buf + off, n / 3), buf + off + n / 3, n - n / 3) != want) {
                bad++;
            }
        }
    }
    CHECK_EQ_INT(bad, 0);

    /* Micro-benchmark, printed, never a pass/fail: 16 MiB through the old
     * byte-wise loop and through st_crc32, 64 KiB at a time (ST_CHUNK, the
     * size verify and the scanner use). */
    size_t len = 64 * 1024, reps = 256;
    uint8_t *big = malloc(len);
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        big[i] = (uint8_t)(x >> 16);
    }
    uint32_t c1 = 0, c2 = 0;
    double t0 = now_s();
    for (size_t r = 0; r < reps; r++) {
        c1 = crc_bytewise(c1, big, len);
    }
    double t1 = now_s();
    for (size_t r = 0; r < reps; r++) {
        c2 = st_crc32(c2, big, len);
    }
    double t2 = now_s();
    CHECK(c1 == c2);
    double mb = (double)(len * reps) / (1024.0 * 1024.0);
    printf("crc32 bench: byte-wise %.0f MiB/s, slice-by-8 %.0f MiB/s (%.1fx), %.0f MiB\n",
           mb / (t1 - t0), mb / (t2 - t1), (t1 - t0) / (t2 - t1), mb);
    free(big);
}

/* CRC-32C bit by bit: what both st_crc32c paths must agree with. */
static uint32_t crc32c_bitwise(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) {
            crc = (crc & 1) ? 0x82f63b78u ^ (crc >> 1) : crc >> 1;
        }
    }
    return ~crc;
}

/* st_crc32c (MSGS blocks of version 3): the hardware path (when this CPU
 * has it) and the tables against the bit-wise definition, at every
 * alignment, at lengths around the 8-byte steps and around the three
 * interleaved 32 KiB streams (96 KiB), whole and chained. */
static void test_crc32c(void)
{
    CHECK(st_crc32c(0, "123456789", 9) == 0xe3069283u); /* the check value */
    CHECK(st_crc32c(0, "", 0) == 0);
    size_t max = 2 * 3 * 32768 + 300;
    uint8_t *buf = malloc(max + 16);
    uint32_t x = 777;
    for (size_t i = 0; i < max + 16; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    static const size_t lens[] = {0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 100, 4095, 4096, 32767,
                                  32768, 98303, 98304, 98305, 98311, 2 * 98304 - 1, 2 * 98304,
                                  2 * 98304 + 5, 2 * 98304 + 300};
    int bad = 0;
    for (int soft = 0; soft < 2; soft++) {
        st_crc32c_soft = soft;
        for (size_t off = 0; off < 9; off++) {
            for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
                size_t n = lens[k];
                uint32_t want = crc32c_bitwise(0, buf + off, n);
                if (st_crc32c(0, buf + off, n) != want ||
                    st_crc32c(st_crc32c(0, buf + off, n / 3), buf + off + n / 3, n - n / 3) != want) {
                    bad++;
                }
            }
            for (size_t n = 0; n < 100; n++) {
                bad += st_crc32c(0, buf + off, n) != crc32c_bitwise(0, buf + off, n);
            }
        }
    }
    CHECK_EQ_INT(bad, 0);
    /* speed, printed only: 4.8 MB (a 100,000-message index) */
    size_t len = 100000 * 48;
    uint8_t *big = malloc(len);
    memset(big, 0x5a, len);
    double t[3];
    uint32_t c[2];
    t[0] = now_s();
    st_crc32c_soft = 1;
    c[0] = st_crc32c(0, big, len);
    t[1] = now_s();
    st_crc32c_soft = 0;
    c[1] = st_crc32c(0, big, len);
    t[2] = now_s();
    CHECK(c[0] == c[1]);
    printf("crc32c of 4.8 MB: tables %.2f ms, %s %.2f ms\n", (t[1] - t[0]) * 1e3,
           st_crc32c_hw() ? "hardware" : "tables (no hardware)", (t[2] - t[1]) * 1e3);
    free(big);
    free(buf);
}

/* Overwrite a file in place (same inode, as an editor or mutt's folder
 * sync does), without truncating it. */
static void rewrite_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "r+b");
    fwrite(data, 1, len, f);
    fclose(f);
}

/* Offsets of the lines that start with "From " (message starts). */
static size_t from_lines(const char *p, size_t len, size_t *at, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i + 5 <= len && n < max; i++) {
        if ((i == 0 || p[i - 1] == '\n') && memcmp(p + i, "From ", 5) == 0) {
            at[n++] = i;
        }
    }
    return n;
}

/* Another program rewrites the mbox in place under an open mailbox: to a
 * larger size, then to the very same size. */
static void test_rewrite_in_place(void)
{
    st_store *s;
    st_box *b;
    struct stat st0, st1;
    const char *mb = NULL;
    CHECK_EQ_INT(st_store_open(&s, root, NULL), 0);
    CHECK_EQ_INT(st_user_ensure(s, "erin"), 0);
    CHECK_EQ_INT(st_box_open(s, "erin", "INBOX", &b), 0);
    const char m1[] = "Subject: one\r\n\r\nthe first message, with a body long enough\r\n"
                      "to be replaced by an outside message of the same size.\r\n";
    const char m2[] = "Subject: two\r\n\r\nsecond\r\n";
    const char m3[] = "Subject: three\r\n\r\nthird\r\n";
    CHECK(put_msg(b, m1, sizeof m1 - 1, 0, 0, 64) == 1);
    CHECK(put_msg(b, m2, sizeof m2 - 1, 0, 0, 64) == 2);
    CHECK(put_msg(b, m3, sizeof m3 - 1, 0, 0, 64) == 3);
    int k = st_keyword(b, "work", 4, 1);
    CHECK_EQ_INT(st_set_flags(b, 0, ST_F_SEEN, 1u << k), 0);
    CHECK_EQ_INT(st_set_flags(b, 2, ST_F_FLAGGED, 0), 0);
    CHECK_EQ_INT(st_box_commit(b), 0);
    uint32_t uidv = b->uidvalidity;
    uint64_t ms3 = b->msg[2].modseq;
    CHECK_EQ_INT(st_box_refresh(b), 0);

    /* 1. a header line added to message 2: everything after it moves and
     * the file grows. Before, the tail scan took the old end for the start
     * of new mail and cut the file there. */
    mb = path_of("erin", "INBOX");
    size_t len;
    char *old = read_file(mb, &len);
    size_t at[8];
    CHECK_EQ_INT(from_lines(old, len, at, 8), 3);
    const char *subj2 = strstr(old + at[1], "Subject: two\n");
    CHECK(subj2 != NULL);
    size_t cut = (size_t)(subj2 - old) + strlen("Subject: two\n");
    const char ins[] = "X-Edited: yes\n";
    char *grown = malloc(len + sizeof ins);
    memcpy(grown, old, cut);
    memcpy(grown + cut, ins, sizeof ins - 1);
    memcpy(grown + cut + sizeof ins - 1, old + cut, len - cut);
    CHECK_EQ_INT(stat(mb, &st0), 0);
    rewrite_file(mb, grown, len + sizeof ins - 1);
    CHECK_EQ_INT(stat(mb, &st1), 0);
    CHECK(st0.st_ino == st1.st_ino);
    CHECK_EQ_INT(st_box_refresh(b), 1);
    CHECK_EQ_INT(b->uidvalidity, uidv);
    CHECK_EQ_INT(b->count, 4);
    CHECK_EQ_INT(b->msg[0].uid, 1);   /* unchanged: UID, flags, keyword */
    CHECK_EQ_INT(b->msg[0].flags, ST_F_SEEN);
    CHECK(b->msg[0].kw == 1u << k);
    CHECK(same_msg(b, 0, m1, sizeof m1 - 1, 7));
    CHECK_EQ_INT(b->msg[1].uid, 2);   /* changed: expunged, bytes gone */
    CHECK(b->msg[1].flags & ST_F_EXPUNGED);
    st_reader r;
    CHECK(st_reader_open(&r, b, 1) != 0);
    CHECK_EQ_INT(b->msg[2].uid, 3);   /* moved, not changed */
    CHECK_EQ_INT(b->msg[2].flags, ST_F_FLAGGED);
    CHECK(b->msg[2].modseq == ms3);
    CHECK(same_msg(b, 2, m3, sizeof m3 - 1, 5));
    CHECK_EQ_INT(b->msg[3].uid, 4);   /* the changed message, a new UID */
    const char m2e[] = "Subject: two\r\nX-Edited: yes\r\n\r\nsecond\r\n";
    CHECK(same_msg(b, 3, m2e, sizeof m2e - 1, 5));
    CHECK_EQ_INT(b->uidnext, 5);
    CHECK(b->highestmodseq > ms3);
    CHECK_EQ_INT(stat(mb, &st1), 0);
    CHECK_EQ_INT(st1.st_size, len + sizeof ins - 1); /* nothing cut */
    st_box_purge(b);
    CHECK_EQ_INT(st_box_refresh(b), 0);
    free(old);
    free(grown);

    /* 2. the same size: message 1 taken out, an outside message of exactly
     * its length added at the end (stat sees nothing) */
    old = read_file(mb, &len);
    CHECK_EQ_INT(from_lines(old, len, at, 8), 3);
    size_t l1 = at[1];
    char *same = malloc(len + 1);
    memcpy(same, old + l1, len - l1);
    char *x = same + (len - l1);
    const char xhead[] = "From someone@example.org Mon Jan  1 10:00:00 2024\nSubject: same size\n\n";
    CHECK(l1 > sizeof xhead + 2);
    memcpy(x, xhead, sizeof xhead - 1);
    memset(x + sizeof xhead - 1, 'y', l1 - (sizeof xhead - 1) - 2);
    memcpy(x + l1 - 2, "\n\n", 2);
    rewrite_file(mb, same, len);
    CHECK_EQ_INT(stat(mb, &st1), 0);
    CHECK_EQ_INT(st1.st_size, len);
    CHECK_EQ_INT(st_box_refresh(b), 1);
    CHECK_EQ_INT(b->uidvalidity, uidv);
    CHECK_EQ_INT(b->count, 5);
    CHECK_EQ_INT(b->msg[0].uid, 1);
    CHECK(b->msg[0].flags & ST_F_EXPUNGED);
    CHECK_EQ_INT(b->msg[1].uid, 3);
    CHECK_EQ_INT(b->msg[1].flags, ST_F_FLAGGED);
    CHECK(same_msg(b, 1, m3, sizeof m3 - 1, 3));
    /* UID 4 still carries "X-UID: 2" on disk (our headers are rewritten
     * only by a compaction), and UID 2 is used up: the message is numbered
     * again rather than given a UID that named another message */
    CHECK_EQ_INT(b->msg[2].uid, 4);
    CHECK(b->msg[2].flags & ST_F_EXPUNGED);
    CHECK_EQ_INT(b->msg[3].uid, 5);
    CHECK(same_msg(b, 3, m2e, sizeof m2e - 1, 3));
    CHECK_EQ_INT(b->msg[4].uid, 6);
    CHECK_EQ_INT(b->msg[4].idate, 1704103200);
    CHECK_EQ_INT(b->msg[4].size, (l1 - (sizeof xhead - 1) - 2) + 2 + strlen("Subject: same size\r\n\r\n"));
    free(old);
    free(same);
    st_box_close(b);
    st_store_close(s);

    /* what was learnt is in the log: a restart agrees */
    CHECK_EQ_INT(st_store_open(&s, root, NULL), 0);
    CHECK_EQ_INT(st_box_open(s, "erin", "INBOX", &b), 0);
    CHECK_EQ_INT(b->uidvalidity, uidv);
    CHECK_EQ_INT(b->count, 3);
    CHECK_EQ_INT(b->msg[0].uid, 3);
    CHECK_EQ_INT(b->msg[0].flags, ST_F_FLAGGED);
    CHECK_EQ_INT(b->msg[1].uid, 5);
    CHECK_EQ_INT(b->msg[2].uid, 6);
    CHECK_EQ_INT(b->uidnext, 7);
    CHECK(put_msg(b, "seven\r\n", 7, 0, 0, 7) == 7);
    st_box_close(b);
    st_store_close(s);
}

/* A commit that fails (the mbox sync, the log sync, the MARK write) takes
 * back the messages appended since the last good commit: in memory they
 * are expunged at once, a reopen does not show them, their UIDs are not
 * handed out again, and what was committed before stays. A flag change
 * of the failed commit is kept and made durable by the next one. */
static void test_failed_commit_takes_back(void)
{
    static const int kinds[] = { ST_FK_SYNC, ST_FK_SYNC, ST_FK_WRITE };
    static const int nth[] = { 1, 2, 1 }; /* mbox sync, log sync, MARK */
    for (int t = 0; t < 3; t++) {
        char name[32];
        snprintf(name, sizeof name, "Taken%d", t);
        st_fault fl;
        memset(&fl, 0, sizeof fl);
        st_vfs *v = st_vfs_fault(st_vfs_posix(), &fl);
        st_store *s;
        st_box *b;
        CHECK_EQ_INT(st_store_open(&s, root, v), 0);
        CHECK_EQ_INT(st_user_ensure(s, "tb"), 0);
        CHECK_EQ_INT(st_mailbox_create(s, "tb", name), 0);
        CHECK_EQ_INT(st_box_open(s, "tb", name, &b), 0);
        uint32_t u1 = put_msg(b, "Subject: kept\r\n\r\nkept\r\n", 23, 0, 0, 64);
        CHECK(u1 > 0);
        CHECK_EQ_INT(st_set_flags(b, 0, ST_F_FLAGGED, 0), 0);
        st_append *a;
        uint32_t u2 = 0, u3 = 0;
        CHECK_EQ_INT(st_append_begin(b, 1700000000, 0, 0, 0, 24, &a), 0);
        CHECK_EQ_INT(st_append_data(a, "Subject: gone\r\n\r\ngone!\r\n", 24), 0);
        CHECK_EQ_INT(st_append_end(a, &u2), 0);
        CHECK_EQ_INT(b->count, 2);
        /* fail the nth call of the kind from here on, once */
        fl.kind = kinds[t];
        fl.err = t == 2 ? ST_ENOSPC : ST_EIO;
        fl.fail_at = fl.calls[kinds[t]] + (uint64_t)nth[t];
        int r = st_box_commit(b);
        CHECK(r != 0);
        CHECK(fl.fired);
        CHECK(b->msg[1].uid == u2 && (b->msg[1].flags & ST_F_EXPUNGED));
        CHECK(!(b->msg[0].flags & ST_F_EXPUNGED));
        CHECK_EQ_INT(b->nexpunged, 1);
        /* the next commit works; a new message gets a fresh UID */
        fl.fail_at = 0;
        CHECK_EQ_INT(st_box_commit(b), 0);
        u3 = put_msg(b, "Subject: after\r\n\r\nafter\r\n", 25, 0, 0, 64);
        CHECK(u3 > u2);
        st_box_close(b);
        st_store_close(s);
        st_vfs_layer_free(v);
        /* reopened from the files alone: kept (with its flag) and after */
        CHECK_EQ_INT(st_store_open(&s, root, NULL), 0);
        st_keep_closed_max = 0; /* not the kept index: the files */
        CHECK_EQ_INT(st_box_open(s, "tb", name, &b), 0);
        CHECK_EQ_INT(b->count, 2);
        if (b->count == 2) {
            CHECK(b->msg[0].uid == u1 && (b->msg[0].flags & ST_F_FLAGGED));
            CHECK(b->msg[1].uid == u3);
            CHECK(same_msg(b, 1, "Subject: after\r\n\r\nafter\r\n", 25, 7));
        }
        CHECK(b->uidnext == u3 + 1);
        st_box_close(b);
        st_store_close(s);
        st_keep_closed_max = ST_KEEP_CLOSED_MAX;
    }
}

/* Commits whose syncs are in flight (st_box_commit_start). */
typedef struct { int calls, rc; st_box *box; } commit_seen;

static void seen_commit(void *ctx, st_box *b, int rc)
{
    commit_seen *cs = ctx;
    cs->calls++;
    cs->rc = rc;
    cs->box = b;
}

/* put_msg without the commit. */
static uint32_t add_msg(st_box *b, const char *data, size_t len)
{
    st_append *a;
    uint32_t uid = 0;
    if (st_append_begin(b, 1700000000, 60, 0, 0, len, &a)) {
        return 0;
    }
    if (st_append_data(a, data, len)) {
        st_append_abort(a);
        return 0;
    }
    return st_append_end(a, &uid) ? 0 : uid;
}

/* Reap until the callback came (or nothing is in flight any more). */
static void wait_commit(st_store *s, st_box *b, commit_seen *cs, int calls)
{
    for (int i = 0; i < 1000 && cs->calls < calls && st_box_commit_busy(b); i++) {
        st_store_sync_reap(s, 1);
    }
}

/* A store over v whose commits may be left in flight, telling cs, and
 * user ac's new mailbox `name` open in it. */
static void open_async(const st_vfs *v, const char *name, commit_seen *cs, st_store **s, st_box **b)
{
    CHECK_EQ_INT(st_store_open(s, root, v), 0);
    st_store_set_async(*s, 1, seen_commit, cs);
    CHECK_EQ_INT(st_user_ensure(*s, "ac"), 0);
    CHECK_EQ_INT(st_mailbox_create(*s, "ac", name), 0);
    CHECK_EQ_INT(st_box_open(*s, "ac", name, b), 0);
}

/* User ac's mailbox `name` as a fresh process finds it in the files (not
 * the kept index): the caller closes both and restores st_keep_closed_max. */
static void reopen_files(const char *name, st_store **s, st_box **b)
{
    CHECK_EQ_INT(st_store_open(s, root, NULL), 0);
    st_keep_closed_max = 0;
    CHECK_EQ_INT(st_box_open(*s, "ac", name, b), 0);
}

static void test_async_commit_on(const st_vfs *v, const char *name, int expect_async)
{
    st_store *s;
    st_box *b;
    commit_seen cs = {0, 0, NULL};
    open_async(v, name, &cs, &s, &b);
    uint32_t u1 = add_msg(b, "Subject: one\r\n\r\none\r\n", 21);
    CHECK(u1 > 0);
    int r = st_box_commit_start(b);
    CHECK_EQ_INT(r, expect_async ? 1 : 0);
    if (r == 1) {
        /* in flight: still dirty, and a second start joins it */
        CHECK(st_box_commit_busy(b));
        CHECK(st_box_dirty(b));
        CHECK_EQ_INT(st_box_commit_start(b), 1);
        wait_commit(s, b, &cs, 1);
        CHECK_EQ_INT(cs.calls, 1);
        CHECK_EQ_INT(cs.rc, 0);
        CHECK(cs.box == b);
    }
    CHECK(!st_box_commit_busy(b));
    CHECK(!st_box_dirty(b));
    /* a change made while a commit is in flight waits for it first */
    CHECK_EQ_INT(st_set_flags(b, 0, ST_F_SEEN, 0), 0);
    uint32_t u2 = add_msg(b, "Subject: two\r\n\r\ntwo\r\n", 21);
    CHECK(u2 == u1 + 1);
    r = st_box_commit_start(b);
    CHECK_EQ_INT(r, expect_async ? 1 : 0);
    int before = cs.calls;
    CHECK_EQ_INT(st_set_flags(b, 1, ST_F_FLAGGED, 0), 0);
    CHECK(!st_box_commit_busy(b));
    CHECK_EQ_INT(cs.calls, before + (r == 1));
    CHECK(st_box_dirty(b)); /* the new flag: not durable yet */
    /* and the synchronous commit waits for one in flight too */
    r = st_box_commit_start(b);
    CHECK_EQ_INT(r, expect_async ? 1 : 0);
    before = cs.calls;
    CHECK_EQ_INT(st_box_commit(b), 0);
    CHECK_EQ_INT(cs.calls, before + (r == 1));
    CHECK(!st_box_dirty(b));
    st_box_close(b);
    st_store_close(s);
    /* from the files alone: both messages, both flags */
    reopen_files(name, &s, &b);
    CHECK_EQ_INT(b->count, 2);
    if (b->count == 2) {
        CHECK(b->msg[0].uid == u1 && b->msg[0].flags == ST_F_SEEN);
        CHECK(b->msg[1].uid == u2 && b->msg[1].flags == ST_F_FLAGGED);
        CHECK(same_msg(b, 1, "Subject: two\r\n\r\ntwo\r\n", 21, 7));
    }
    st_box_close(b);
    st_store_close(s);
    st_keep_closed_max = ST_KEEP_CLOSED_MAX;
}

/* A commit in flight whose sync fails (the mbox's, then the log's): the
 * callback hears the error and the append is taken back, as with
 * st_box_commit; the store stays usable. */
static void test_async_commit_fails(void)
{
    for (int t = 0; t < 2; t++) {
        char name[32];
        snprintf(name, sizeof name, "AsyncFail%d", t);
        st_fault fl;
        memset(&fl, 0, sizeof fl);
        st_vfs *v = st_vfs_fault(st_vfs_posix(), &fl);
        st_store *s;
        st_box *b;
        commit_seen cs = {0, 0, NULL};
        open_async(v, name, &cs, &s, &b);
        uint32_t u1 = put_msg(b, "Subject: kept\r\n\r\nkept\r\n", 23, 0, 0, 64);
        CHECK_EQ_INT(st_box_commit(b), 0);
        uint32_t u2 = add_msg(b, "Subject: gone\r\n\r\ngone!\r\n", 24);
        CHECK(u2 > u1);
        fl.kind = ST_FK_SYNC;
        fl.fail_at = fl.calls[ST_FK_SYNC] + (uint64_t)t + 1;
        CHECK_EQ_INT(st_box_commit_start(b), 1);
        wait_commit(s, b, &cs, 1);
        CHECK(fl.fired);
        CHECK_EQ_INT(cs.calls, 1);
        CHECK(cs.rc < 0);
        CHECK(!st_box_commit_busy(b));
        CHECK_EQ_INT(b->count, 2);
        CHECK(b->msg[1].uid == u2 && (b->msg[1].flags & ST_F_EXPUNGED));
        fl.fail_at = 0;
        uint32_t u3 = add_msg(b, "Subject: after\r\n\r\nafter\r\n", 25);
        CHECK(u3 > u2);
        CHECK_EQ_INT(st_box_commit_start(b), 1);
        wait_commit(s, b, &cs, 2);
        CHECK_EQ_INT(cs.calls, 2);
        CHECK_EQ_INT(cs.rc, 0);
        st_box_close(b);
        st_store_close(s);
        st_vfs_layer_free(v);
        reopen_files(name, &s, &b);
        CHECK_EQ_INT(b->count, 2);
        if (b->count == 2) {
            CHECK(b->msg[0].uid == u1);
            CHECK(b->msg[1].uid == u3);
        }
        st_box_close(b);
        st_store_close(s);
        st_keep_closed_max = ST_KEEP_CLOSED_MAX;
    }
}

static void test_async_commit(void)
{
    const st_vfs *p = st_vfs_posix();
    /* the real thing, where the kernel lets us start syncs */
    int can = 0;
    if (p->sync_fd) {
        can = p->sync_fd(p) >= 0;
    }
    if (!can) {
        fprintf(stderr, "test_store: no io_uring here; the posix async path is not tested\n");
    }
    test_async_commit_on(p, "AsyncPosix", can);
    /* a vfs that cannot: the same, synchronously */
    static st_vfs plain;
    plain = *p;
    plain.sync_start = NULL;
    plain.sync_reap = NULL;
    plain.sync_fd = NULL;
    test_async_commit_on(&plain, "AsyncPlain", 0);
    /* a layer's deferred syncs */
    st_fault fl;
    memset(&fl, 0, sizeof fl);
    st_vfs *v = st_vfs_fault(p, &fl);
    test_async_commit_on(v, "AsyncLayer", 1);
    st_vfs_layer_free(v);
    test_async_commit_fails();
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/test_store.XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 2;
    }
    test_crc();
    test_crc32c();
    test_basic();
    test_quoting();
    test_names();
    test_two_processes();
    test_recovery();
    test_rewrite_in_place();
    test_failed_commit_takes_back();
    test_async_commit();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (unit_fail == 0 && system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", root);
    }
    return unit_done("test_store");
}
