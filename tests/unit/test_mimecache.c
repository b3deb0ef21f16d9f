/* test_mimecache.c -- seek points (disk/wire offset pairs) and the
 * per-mailbox cache file of MIME trees, through the store API on a temp
 * dir with the posix vfs (whose counters prove what was read).
 *
 * Exactness is checked against the plain reader: reading from any seek
 * point, and skipping to any origin from the nearest one, must give the
 * same bytes as reading the whole message and slicing it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "mime.h"
#include "store.h"
#include "vfs.h"
#include "unit.h"

static char root[256];

/* Deterministic pseudo-random numbers (xorshift). */
static uint32_t rnd_state = 2463534242u;
static uint32_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 17;
    rnd_state ^= rnd_state << 5;
    return rnd_state;
}

static uint32_t put_msg(st_box *b, const char *data, size_t len)
{
    st_append *a;
    uint32_t uid = 0;
    if (st_append_begin(b, 1700000000, 60, 0, 0, len, &a)) {
        return 0;
    }
    /* odd slices: the encoder's state crosses them */
    for (size_t i = 0; i < len; i += 1021) {
        size_t k = len - i < 1021 ? len - i : 1021;
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

/* Read from r to the end in slices of `slice`. */
static void read_rest(st_reader *r, size_t slice, dbuf *out)
{
    char buf[70000];
    for (;;) {
        long n = st_reader_read(r, buf, slice);
        if (n <= 0) {
            if (n) {
                fprintf(stderr, "read -> %ld\n", n);
            }
            CHECK(n == 0);
            return;
        }
        dbuf_add(out, buf, (size_t)n);
    }
}

static void wire_of(st_box *b, uint32_t idx, dbuf *out)
{
    st_reader r;
    CHECK_EQ_INT(st_reader_open(&r, b, idx), 0);
    read_rest(&r, 8192, out);
    st_reader_close(&r);
}

typedef struct pts {
    st_seekpt p[200000];
    uint32_t  n;
} pts;

static void collect(void *ctx, const st_seekpt *pt)
{
    pts *ps = ctx;
    if (ps->n < sizeof ps->p / sizeof ps->p[0]) {
        ps->p[ps->n++] = *pt;
    }
}

/* Every point of message idx, tracked `every` disk bytes apart while
 * reading in slices of `slice`, must be a place where reading resumes
 * exactly; then random origins are reached from the nearest point. */
static void check_points(st_box *b, uint32_t idx, const dbuf *w, uint32_t every, size_t slice, int expect_deferral)
{
    static pts ps;
    ps.n = 0;
    st_reader r;
    CHECK_EQ_INT(st_reader_open(&r, b, idx), 0);
    st_reader_track(&r, every, collect, &ps);
    dbuf all = {0};
    read_rest(&r, slice, &all);
    st_reader_close(&r);
    /* tracking does not change what is read */
    CHECK(all.len == w->len && !memcmp(all.p, w->p, w->len));
    dbuf_free(&all);
    CHECK(ps.n > 0);
    int deferred = 0, bad = 0;
    for (uint32_t i = 0; i < ps.n; i++) {
        if (i > 0) {
            CHECK(ps.p[i].disk > ps.p[i - 1].disk && ps.p[i].wire >= ps.p[i - 1].wire);
            /* a point lands on the multiple unless a quoted prefix was
             * pending there */
            deferred |= ps.p[i].disk % every != 0 || ps.p[i].disk - ps.p[i - 1].disk > every;
        }
        /* Every point when they are few, else a sample. */
        if (ps.n > 3000 && rnd() % (ps.n / 1000) != 0) {
            continue;
        }
        CHECK_EQ_INT(st_reader_open(&r, b, idx), 0);
        CHECK_EQ_INT(st_reader_seek(&r, &ps.p[i]), 0);
        dbuf rest = {0};
        read_rest(&r, 1 + rnd() % 9000, &rest);
        st_reader_close(&r);
        if (ps.p[i].wire > w->len || rest.len != w->len - ps.p[i].wire ||
            (rest.len && memcmp(rest.p, w->p + ps.p[i].wire, rest.len))) {
            bad++;
        }
        dbuf_free(&rest);
    }
    CHECK_EQ_INT(bad, 0);
    if (expect_deferral) {
        CHECK(deferred);
    }
    /* Random origins through a tree holding the points (as FETCH does). */
    mime_tree t;
    memset(&t, 0, sizeof t);
    t.seek = ps.p;
    t.nseek = ps.n;
    bad = 0;
    for (int k = 0; k < 300; k++) {
        uint32_t o = rnd() % (uint32_t)(w->len + 1), len = 1 + rnd() % 5000;
        if (len > w->len - o) {
            len = (uint32_t)(w->len - o);
        }
        st_seekpt sp;
        mime_seek_point(&t, o, &sp);
        CHECK(sp.wire <= o);
        CHECK_EQ_INT(st_reader_open(&r, b, idx), 0);
        CHECK_EQ_INT(st_reader_seek(&r, &sp), 0);
        char *buf = malloc((size_t)(o - sp.wire) + len + 1);
        size_t got = 0, want = (size_t)(o - sp.wire) + len;
        while (got < want) {
            long n = st_reader_read(&r, buf + got, want - got < 777 ? want - got : 777);
            if (n <= 0) {
                break;
            }
            got += (size_t)n;
        }
        st_reader_close(&r);
        if (got != want || memcmp(buf + (o - sp.wire), w->p + o, len)) {
            bad++;
        }
        free(buf);
    }
    CHECK_EQ_INT(bad, 0);
    /* A point outside the message is refused. */
    st_seekpt out = {(uint32_t)b->msg[idx].dlen + 1, 0, 1};
    CHECK_EQ_INT(st_reader_open(&r, b, idx), 0);
    CHECK_EQ_INT(st_reader_seek(&r, &out), ST_EINVAL);
    st_reader_close(&r);
}

/* Messages that make disk and wire offsets drift apart. */
static void make_tricky(dbuf *m, int crlf)
{
    const char *nl = crlf ? "\r\n" : "\n";
    dbuf_printf(m, "From: a@example.com%sSubject: tricky%sMIME-Version: 1.0%s", nl, nl, nl);
    dbuf_printf(m, "Content-Type: multipart/mixed; boundary=\"b1\"%s%s--b1%s", nl, nl, nl);
    dbuf_printf(m, "Content-Type: text/plain%s%s", nl, nl);
    for (int i = 0; i < 3000; i++) {
        switch (i % 7) {
        case 0: dbuf_printf(m, "From the start %d%s", i, nl); break;           /* quoted on disk */
        case 1: dbuf_printf(m, ">From quoted %d%s", i, nl); break;             /* two '>' on disk */
        case 2: dbuf_printf(m, ">>>From deep %d%s", i, nl); break;
        case 3: dbuf_printf(m, ">Fro not quoted %d%s", i, nl); break;          /* a near miss */
        case 4: dbuf_printf(m, "lone\rCR and tab\t%d%s", i, nl); break;
        case 5: dbuf_printf(m, "%s", nl); break;                               /* empty line */
        default: dbuf_printf(m, "plain line %d%s", i, nl); break;
        }
    }
    dbuf_printf(m, "--b1%sContent-Type: application/octet-stream%s%s", nl, nl, nl);
    /* one long line without a break, then more */
    for (int i = 0; i < 150000; i++) {
        dbuf_addc(m, (char)('a' + i % 26));
    }
    dbuf_printf(m, "%sFrom %s>From %s", nl, nl, nl);
    dbuf_printf(m, "%s--b1--%s>From", nl, nl);    /* ends inside a quoted prefix */
}

static void test_seek_points(void)
{
    st_store *s;
    st_box *b;
    CHECK_EQ_INT(st_store_open(&s, root, st_vfs_posix()), 0);
    CHECK_EQ_INT(st_user_ensure(s, "u"), 0);
    CHECK_EQ_INT(st_box_open(s, "u", "INBOX", &b), 0);
    for (int crlf = 0; crlf < 2; crlf++) {
        dbuf m = {0};
        make_tricky(&m, crlf);
        CHECK(put_msg(b, m.p, m.len) != 0);
        uint32_t idx = b->count - 1;
        dbuf w = {0};
        wire_of(b, idx, &w);
        CHECK_EQ_INT(w.len, b->msg[idx].size);
        /* every=1: a point after every slice, so inside every CRLF
         * (before its LF on disk) and after every quoted prefix. */
        check_points(b, idx, &w, 1, 1, 1);
        check_points(b, idx, &w, 1, 3, 1);
        check_points(b, idx, &w, 7, 5000, 0);
        check_points(b, idx, &w, 4096, 8192, 0);
        check_points(b, idx, &w, MIME_SEEK_EVERY, 8192, 0);
        dbuf_free(&w);
        dbuf_free(&m);
    }
    /* A point due inside ">From " is put off until the prefix is decided:
     * with the spacing set to land exactly there, no point sits in it. */
    dbuf m = {0};
    dbuf_adds(&m, "Subject: x\r\n\r\n");
    size_t at = m.len;
    dbuf_adds(&m, "From here\r\n>From there\r\nend\r\n");
    CHECK(put_msg(b, m.p, m.len) != 0);
    uint32_t idx = b->count - 1;
    dbuf w = {0};
    wire_of(b, idx, &w);
    /* on disk the body is ">From here\n>>From there\n": offsets 12..17
     * (after the LF-only header) are inside a quoted prefix */
    for (uint32_t every = (uint32_t)at - 1; every < at + 20; every++) {
        static pts ps;
        ps.n = 0;
        st_reader r;
        CHECK_EQ_INT(st_reader_open(&r, b, idx), 0);
        st_reader_track(&r, every, collect, &ps);
        dbuf all = {0};
        read_rest(&r, 4096, &all);
        st_reader_close(&r);
        for (uint32_t i = 0; i < ps.n; i++) {
            st_reader_open(&r, b, idx);
            st_reader_seek(&r, &ps.p[i]);
            dbuf rest = {0};
            read_rest(&r, 2, &rest);
            st_reader_close(&r);
            CHECK(rest.len == w.len - ps.p[i].wire &&
                  (rest.len == 0 || !memcmp(rest.p, w.p + ps.p[i].wire, rest.len)));
            dbuf_free(&rest);
        }
        dbuf_free(&all);
    }
    dbuf_free(&w);
    dbuf_free(&m);
    st_box_close(b);
    st_store_close(s);
}

/* The whole rendering of a tree, to compare two trees. */
static void render(const mime_tree *t, dbuf *o)
{
    mime_out_body(o, t, 0, 1);
    mime_out_envelope(o, t, 0);
    for (uint32_t i = 0; i < t->nparts; i++) {
        dbuf_printf(o, " %u/%u/%u/%u", t->part[i].hdr_off, t->part[i].hdr_len, t->part[i].body_off,
                    t->part[i].body_len);
    }
    for (uint32_t i = 0; i < t->nseek; i++) {
        dbuf_printf(o, " %u:%u:%u", t->seek[i].disk, t->seek[i].wire, t->seek[i].bol);
    }
}

/* Sections through the tree's seek points equal the plain slices. */
static void check_sections(st_box *b, uint32_t idx, const mime_tree *t)
{
    dbuf w = {0};
    wire_of(b, idx, &w);
    int bad = 0;
    for (uint32_t p = 1; p < t->nparts; p++) {
        const mime_part *pt = &t->part[p];
        for (int k = 0; k < 20; k++) {
            uint32_t o = pt->body_len ? rnd() % pt->body_len : 0;
            uint32_t len = 1 + rnd() % 3000;
            if (len > pt->body_len - o) {
                len = pt->body_len - o;
            }
            uint64_t at = (uint64_t)pt->body_off + o;
            st_seekpt sp;
            mime_seek_point(t, (uint32_t)at, &sp);
            st_reader r;
            st_reader_open(&r, b, idx);
            st_reader_seek(&r, &sp);
            size_t want = (size_t)(at - sp.wire) + len, got = 0;
            char *buf = malloc(want + 1);
            while (got < want) {
                long n = st_reader_read(&r, buf + got, want - got);
                if (n <= 0) {
                    break;
                }
                got += (size_t)n;
            }
            st_reader_close(&r);
            bad += got != want || memcmp(buf + (at - sp.wire), w.p + at, len) != 0;
            free(buf);
        }
    }
    CHECK_EQ_INT(bad, 0);
    dbuf_free(&w);
}

static char *meta_path(const char *user, const char *box)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/%s/.%s.mime", root, user, box);
    return p;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void poke(const char *path, long off, const char *bytes, size_t n)
{
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (f) {
        fseek(f, off, SEEK_SET);
        fwrite(bytes, 1, n, f);
        fclose(f);
    }
}

/* The tree survives a restart in the cache file: BODYSTRUCTURE of a big
 * message after a restart reads the record, not the message. */
static void test_restart(void)
{
    st_store *s;
    st_box *b;
    st_meta_counters mc0, mc1;
    CHECK_EQ_INT(st_store_open(&s, root, st_vfs_posix()), 0);
    CHECK_EQ_INT(st_user_ensure(s, "r"), 0);
    CHECK_EQ_INT(st_mailbox_create(s, "r", "Big"), 0);
    CHECK_EQ_INT(st_box_open(s, "r", "Big", &b), 0);
    dbuf m = {0};
    make_tricky(&m, 1);
    /* make it big: 4 MB of attachment */
    dbuf_adds(&m, "\r\n--b1\r\nContent-Type: text/plain\r\n\r\n");
    for (int i = 0; i < 40000; i++) {
        dbuf_printf(&m, "%05d From a line of the attachment, 100 bytes long ..........................\r\n", i);
    }
    CHECK(put_msg(b, m.p, m.len) != 0);
    uint32_t small = put_msg(b, "Subject: small\r\n\r\nhi\r\n", 22);
    CHECK(small != 0);
    mime_cache_clear();
    mime_tree t1, h1;
    CHECK_EQ_INT(mime_tree_get(b, 0, 1, &t1), 0);
    CHECK(t1.nseek >= b->msg[0].dlen / MIME_SEEK_EVERY);
    CHECK_EQ_INT(mime_tree_get(b, 1, 0, &h1), 0);   /* header only: not stored */
    CHECK(h1.header_only);
    mime_tree_free(&h1);
    check_sections(b, 0, &t1);
    dbuf r1 = {0};
    render(&t1, &r1);
    mime_tree_free(&t1);
    st_box_close(b);
    st_store_close(s);

    /* "restart": nothing in memory, the cache file on disk */
    mime_cache_clear();
    CHECK_EQ_INT(st_store_open(&s, root, st_vfs_posix()), 0);
    CHECK_EQ_INT(st_box_open(s, "r", "Big", &b), 0);
    st_vfs_counters *vc = st_vfs_posix_counters();
    uint64_t before = vc->bytes_read;
    st_meta_stats(&mc0);
    mime_tree t2;
    CHECK_EQ_INT(mime_tree_get(b, 0, 1, &t2), 0);
    uint64_t read = vc->bytes_read - before;
    st_meta_stats(&mc1);
    CHECK_EQ_INT(mc1.hits - mc0.hits, 1);
    /* the record and the file's record headers, not 4 MB of message */
    CHECK(read < 64 * 1024);
    CHECK(read < b->msg[0].dlen / 50);
    printf("test_mimecache: BODYSTRUCTURE after restart read %llu bytes (message %u bytes)\n",
           (unsigned long long)read, b->msg[0].dlen);
    dbuf r2 = {0};
    render(&t2, &r2);
    CHECK(r1.len == r2.len && !memcmp(r1.p, r2.p, r1.len));
    check_sections(b, 0, &t2);
    mime_tree_free(&t2);

    /* Damage: a flipped payload byte fails the checksum; the tree is
     * parsed again, right, and stored again. */
    const char *mp = meta_path("r", "Big");
    long sz = file_size(mp);
    CHECK(sz > 16);
    poke(mp, 16 + 24 + 10, "\xff\xfe", 2);
    mime_cache_clear();
    /* Reopened: the open box keeps a window of the file's bytes it read
     * (the good ones); the damage is for the next process to find. */
    st_box_close(b);
    CHECK_EQ_INT(st_box_open(s, "r", "Big", &b), 0);
    st_meta_stats(&mc0);
    CHECK_EQ_INT(mime_tree_get(b, 0, 1, &t2), 0);
    st_meta_stats(&mc1);
    CHECK_EQ_INT(mc1.bad - mc0.bad, 1);
    CHECK_EQ_INT(mc1.puts - mc0.puts, 1);
    dbuf_reset(&r2);
    render(&t2, &r2);
    CHECK(r1.len == r2.len && !memcmp(r1.p, r2.p, r1.len));
    mime_tree_free(&t2);
    /* and now the new record is used */
    mime_cache_clear();
    st_meta_stats(&mc0);
    CHECK_EQ_INT(mime_tree_get(b, 0, 1, &t2), 0);
    st_meta_stats(&mc1);
    CHECK_EQ_INT(mc1.hits - mc0.hits, 1);
    mime_tree_free(&t2);

    /* A record that does not name the message exactly is not used: the
     * same UID with another size (a changed message) misses. */
    mime_cache_clear();
    uint32_t keep = b->msg[0].size;
    b->msg[0].dlen++;
    void *blob;
    size_t blen;
    CHECK_EQ_INT(st_meta_get(b, 0, &blob, &blen), ST_ENOENT);
    b->msg[0].dlen--;
    CHECK_EQ_INT(b->msg[0].size, keep);
    CHECK_EQ_INT(st_meta_get(b, 0, &blob, &blen), 0);
    free(blob);
    st_box_close(b);
    st_store_close(s);

    /* A torn tail (a crash while appending): ignored, then cut before the
     * next record is appended, which is found again after a restart. */
    sz = file_size(mp);
    poke(mp, sz, "\0\0\0\x20garbage", 11);
    mime_cache_clear();
    CHECK_EQ_INT(st_store_open(&s, root, st_vfs_posix()), 0);
    CHECK_EQ_INT(st_box_open(s, "r", "Big", &b), 0);
    CHECK_EQ_INT(mime_tree_get(b, 1, 1, &t2), 0);   /* the small one: parsed, stored */
    mime_tree_free(&t2);
    st_meta_stats(&mc0);
    CHECK(mc0.cut >= 1);
    st_box_close(b);
    st_store_close(s);
    mime_cache_clear();
    CHECK_EQ_INT(st_store_open(&s, root, st_vfs_posix()), 0);
    CHECK_EQ_INT(st_box_open(s, "r", "Big", &b), 0);
    st_meta_stats(&mc0);
    CHECK_EQ_INT(mime_tree_get(b, 1, 1, &t2), 0);
    CHECK_EQ_INT(mime_tree_get(b, 0, 1, &t1), 0);
    st_meta_stats(&mc1);
    CHECK_EQ_INT(mc1.hits - mc0.hits, 2);
    mime_tree_free(&t2);
    mime_tree_free(&t1);

    /* A garbled header: the file is emptied and refilled. */
    st_box_close(b);
    st_store_close(s);
    poke(mp, 0, "XXXX", 4);
    mime_cache_clear();
    CHECK_EQ_INT(st_store_open(&s, root, st_vfs_posix()), 0);
    CHECK_EQ_INT(st_box_open(s, "r", "Big", &b), 0);
    st_meta_stats(&mc0);
    CHECK_EQ_INT(mime_tree_get(b, 0, 1, &t2), 0);
    st_meta_stats(&mc1);
    CHECK_EQ_INT(mc1.resets - mc0.resets, 1);
    CHECK_EQ_INT(mc1.hits - mc0.hits, 0);
    dbuf_reset(&r2);
    render(&t2, &r2);
    CHECK(r1.len == r2.len && !memcmp(r1.p, r2.p, r1.len));
    mime_tree_free(&t2);
    /* Lost entirely: same. */
    st_box_close(b);
    st_store_close(s);
    CHECK_EQ_INT(unlink(mp), 0);
    mime_cache_clear();
    CHECK_EQ_INT(st_store_open(&s, root, st_vfs_posix()), 0);
    CHECK_EQ_INT(st_box_open(s, "r", "Big", &b), 0);
    CHECK_EQ_INT(mime_tree_get(b, 0, 1, &t2), 0);
    dbuf_reset(&r2);
    render(&t2, &r2);
    CHECK(r1.len == r2.len && !memcmp(r1.p, r2.p, r1.len));
    mime_tree_free(&t2);
    st_box_close(b);
    st_store_close(s);
    mime_tree_free(&t1);
    dbuf_free(&r1);
    dbuf_free(&r2);
    dbuf_free(&m);
}

/* Compaction moves messages but not their bytes: records stay valid and
 * are used afterwards; records of expunged messages are dropped when they
 * become most of the file. A new UIDVALIDITY empties the file. */
static void test_compaction(void)
{
    st_store *s;
    st_box *b;
    st_meta_counters mc0, mc1;
    CHECK_EQ_INT(st_store_open(&s, root, st_vfs_posix()), 0);
    CHECK_EQ_INT(st_user_ensure(s, "c"), 0);
    CHECK_EQ_INT(st_mailbox_create(s, "c", "Box"), 0);
    CHECK_EQ_INT(st_box_open(s, "c", "Box", &b), 0);
    dbuf m = {0};
    enum { N = 120 };
    for (int i = 0; i < N; i++) {
        dbuf_reset(&m);
        dbuf_printf(&m, "Subject: message %d\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n"
                        "--q\r\nContent-Type: text/plain\r\n\r\n", i);
        for (int k = 0; k < 300 + i * 10; k++) {
            dbuf_printf(&m, "%sline %d of %d\r\n", k % 5 ? "" : "From ", k, i);
        }
        dbuf_adds(&m, "--q\r\nContent-Type: text/plain; name=\"");
        for (int k = 0; k < 3000; k++) {
            dbuf_addc(&m, (char)('a' + k % 26));    /* big kept strings: big records */
        }
        dbuf_adds(&m, "\"\r\n\r\nx\r\n--q--\r\n");
        CHECK(put_msg(b, m.p, m.len) != 0);
    }
    dbuf want[N];
    for (int i = 0; i < N; i++) {
        mime_tree t;
        memset(&want[i], 0, sizeof want[i]);
        CHECK_EQ_INT(mime_tree_get(b, (uint32_t)i, 1, &t), 0);
        render(&t, &want[i]);
        mime_tree_free(&t);
    }
    const char *mp = meta_path("c", "Box");
    long before = file_size(mp);
    CHECK(before > 256 * 1024);
    /* expunge all but every fourth, then compact */
    for (int i = 0; i < N; i++) {
        if (i % 4) {
            CHECK_EQ_INT(st_expunge(b, (uint32_t)i), 0);
        }
    }
    CHECK_EQ_INT(st_box_commit(b), 0);
    st_box_purge(b);
    CHECK_EQ_INT(st_box_compact(b), 0);
    CHECK_EQ_INT(b->count, N / 4);
    st_box_close(b);
    st_store_close(s);
    mime_cache_clear();
    CHECK_EQ_INT(st_store_open(&s, root, st_vfs_posix()), 0);
    CHECK_EQ_INT(st_box_open(s, "c", "Box", &b), 0);
    st_meta_stats(&mc0);
    st_vfs_counters *vc = st_vfs_posix_counters();
    uint64_t rsum = 0, dsum = 0;
    for (uint32_t i = 0; i < b->count; i++) {
        mime_tree t;
        uint64_t r0 = vc->bytes_read;
        CHECK_EQ_INT(mime_tree_get(b, i, 1, &t), 0);
        if (i > 0) {    /* the first one also indexed the file */
            rsum += vc->bytes_read - r0;
            dsum += b->msg[i].dlen;
        }
        dbuf got = {0};
        render(&t, &got);
        const dbuf *w = &want[i * 4];
        CHECK(got.len == w->len && !memcmp(got.p, w->p, w->len));
        check_sections(b, i, &t);
        dbuf_free(&got);
        mime_tree_free(&t);
    }
    /* records read (in windows), not the messages */
    printf("test_mimecache: %u trees after compaction read %llu bytes (messages %llu)\n", b->count - 1,
           (unsigned long long)rsum, (unsigned long long)dsum);
    CHECK(rsum < dsum);
    st_meta_stats(&mc1);
    CHECK_EQ_INT(mc1.hits - mc0.hits, N / 4);
    CHECK_EQ_INT(mc1.rewrites - mc0.rewrites, 1);
    long after = file_size(mp);
    CHECK(after > 0 && after < before / 2);
    st_box_close(b);
    /* Renamed: the cache file goes along and is used under the new name. */
    CHECK_EQ_INT(st_mailbox_rename(s, "c", "Box", "Moved"), 0);
    CHECK(file_size(mp) < 0);
    CHECK(file_size(meta_path("c", "Moved")) == after);
    mime_cache_clear();
    CHECK_EQ_INT(st_box_open(s, "c", "Moved", &b), 0);
    st_meta_stats(&mc0);
    mime_tree tm;
    CHECK_EQ_INT(mime_tree_get(b, 1, 1, &tm), 0);
    st_meta_stats(&mc1);
    CHECK_EQ_INT(mc1.hits - mc0.hits, 1);
    mime_tree_free(&tm);
    st_box_close(b);
    CHECK_EQ_INT(st_mailbox_rename(s, "c", "Moved", "Box"), 0);
    /* Deleted: the cache file goes too. Created again: a new UIDVALIDITY,
     * so nothing of an old file may be used for the new UID 1. */
    CHECK_EQ_INT(st_mailbox_delete(s, "c", "Box"), 0);
    CHECK(file_size(mp) < 0);
    FILE *stale = fopen(mp, "wb");     /* as if the removal had failed */
    CHECK(stale != NULL);
    if (stale) {
        fwrite("PIMC\0\0\0\1", 1, 8, stale);
        fclose(stale);
    }
    CHECK_EQ_INT(st_mailbox_create(s, "c", "Box"), 0);
    CHECK_EQ_INT(st_box_open(s, "c", "Box", &b), 0);
    CHECK(put_msg(b, "Subject: new\r\n\r\nnew\r\n", 21) != 0);
    mime_cache_clear();
    void *blob;
    size_t blen;
    CHECK(st_meta_get(b, 0, &blob, &blen) != 0);
    mime_tree t;
    CHECK_EQ_INT(mime_tree_get(b, 0, 1, &t), 0);
    size_t n;
    const char *subj = mime_get(&t, 0, MIME_S_SUBJECT, &n);
    CHECK(subj && n == 3 && !memcmp(subj, "new", 3));
    mime_tree_free(&t);
    st_box_close(b);
    st_store_close(s);
    for (int i = 0; i < N; i++) {
        dbuf_free(&want[i]);
    }
    dbuf_free(&m);
}

/* Parsing at delivery: with the watch on, a new message's tree is in the
 * cache file once it is appended (or copied), before anyone asks, and it
 * equals what parsing the stored message gives. */
static void test_parse_at_append(void)
{
    st_store *s;
    st_box *b, *b2;
    CHECK_EQ_INT(st_store_open(&s, root, st_vfs_posix()), 0);
    mime_watch_appends(s);
    CHECK_EQ_INT(st_user_ensure(s, "a"), 0);
    CHECK_EQ_INT(st_mailbox_create(s, "a", "Copy"), 0);
    CHECK_EQ_INT(st_box_open(s, "a", "INBOX", &b), 0);
    CHECK_EQ_INT(st_box_open(s, "a", "Copy", &b2), 0);
    uint64_t dh0, pa0, dh1, pa1;
    mime_cache_stats2(&dh0, &pa0);
    dbuf m = {0};
    for (int k = 0; k < 3; k++) {
        dbuf_reset(&m);
        make_tricky(&m, k != 1);
        if (k == 2) {
            /* bigger than MIME_SEEK_MAX points would cover at 64 KiB...
             * not needed; a 2 MB tail is enough for many points */
            for (int i = 0; i < 20000; i++) {
                dbuf_printf(&m, "%s tail line %d ....................................................................\r\n",
                            i % 3 ? ">From" : "From", i);
            }
        }
        CHECK(put_msg(b, m.p, m.len) != 0);
    }
    uint32_t nu;
    CHECK_EQ_INT(st_copy(b, 2, b2, &nu), 0);
    CHECK_EQ_INT(st_box_commit(b2), 0);
    mime_cache_stats2(&dh1, &pa1);
    CHECK_EQ_INT(pa1 - pa0, 4);
    /* Served from the cache file, reading no message bytes. */
    st_box *boxes[2] = {b, b2};
    for (int bi = 0; bi < 2; bi++) {
        st_box *x = boxes[bi];
        for (uint32_t i = 0; i < x->count; i++) {
            mime_cache_clear();
            st_vfs_counters *vc = st_vfs_posix_counters();
            uint64_t r0 = vc->bytes_read;
            st_meta_counters mc0, mc1;
            st_meta_stats(&mc0);
            mime_tree t1, t2;
            CHECK_EQ_INT(mime_tree_get(x, i, 1, &t1), 0);
            st_meta_stats(&mc1);
            CHECK_EQ_INT(mc1.hits - mc0.hits, 1);
            CHECK(vc->bytes_read - r0 < 40000);
            CHECK(t1.nseek >= x->msg[i].dlen / MIME_SEEK_EVERY - 1);
            check_sections(x, i, &t1);
            /* the same tree as a parse of the stored message: without
             * the cache file, through a handle that never saw it */
            mime_cache_clear();
            unlink(meta_path("a", bi ? "Copy" : "INBOX"));
            st_store *s2;
            st_box *x2;
            st_meta_stats(&mc0);
            CHECK_EQ_INT(st_store_open(&s2, root, st_vfs_posix()), 0);
            CHECK_EQ_INT(st_box_open(s2, "a", bi ? "Copy" : "INBOX", &x2), 0);
            CHECK_EQ_INT(mime_tree_get(x2, i, 1, &t2), 0);
            st_box_close(x2);
            st_store_close(s2);
            st_meta_stats(&mc1);
            CHECK_EQ_INT(mc1.hits - mc0.hits, 0);
            dbuf r1 = {0}, r2 = {0};
            uint32_t ns1 = t1.nseek, ns2 = t2.nseek;
            t1.nseek = t2.nseek = 0;     /* deferred points may sit apart */
            render(&t1, &r1);
            render(&t2, &r2);
            CHECK(r1.len == r2.len && !memcmp(r1.p, r2.p, r1.len));
            CHECK(ns1 + 2 >= ns2 && ns2 + 2 >= ns1);
            t1.nseek = ns1;
            t2.nseek = ns2;
            dbuf_free(&r1);
            dbuf_free(&r2);
            mime_tree_free(&t1);
            mime_tree_free(&t2);
        }
    }
    st_box_close(b2);
    st_box_close(b);
    st_store_close(s);
    dbuf_free(&m);
}

/* The reader converts in place when the caller's buffer is big enough
 * (reader.c INPLACE_MIN): every buffer size around that bound, and big
 * ones, give back the message byte for byte, with mboxrd-quoted lines,
 * held '>' prefixes and line breaks falling on every slice edge. */
static void test_read_inplace(void)
{
    st_store *s;
    st_box *b;
    CHECK_EQ_INT(st_store_open(&s, root, st_vfs_posix()), 0);
    CHECK_EQ_INT(st_user_ensure(s, "i"), 0);
    CHECK_EQ_INT(st_box_open(s, "i", "INBOX", &b), 0);
    dbuf m = {0};
    dbuf_adds(&m, "Subject: quoting\r\n\r\n");
    static const char *const lines[] = {"From a", ">From b", ">>From c", ">Fro", ">", "From", "",
                                        ">>>>>>>>>>From d", "plain text line", ">From"};
    for (int i = 0; m.len < 300000; i++) {
        dbuf_adds(&m, lines[rnd() % 10]);
        for (uint32_t k = rnd() % 90; k > 0; k--) {
            dbuf_addc(&m, (char)('a' + k % 26));
        }
        dbuf_adds(&m, "\r\n");
    }
    /* empty lines: the output is twice the disk bytes, the most there is */
    for (int i = 0; i < 40000; i++) {
        dbuf_adds(&m, i % 1000 == 999 ? ">From x\r\n" : "\r\n");
    }
    CHECK(put_msg(b, m.p, m.len) != 0);
    static const size_t sizes[] = {1, 8191, 8199, 8200, 8201, 8207, 8208, 8209, 12345, 65536, 70000};
    for (unsigned k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        st_reader r;
        dbuf got = {0};
        CHECK_EQ_INT(st_reader_open(&r, b, 0), 0);
        read_rest(&r, sizes[k], &got);
        st_reader_close(&r);
        CHECK(got.len == m.len && !memcmp(got.p, m.p, m.len));
        dbuf_free(&got);
    }
    /* and with slice sizes that change from read to read */
    st_reader r;
    dbuf got = {0};
    char *buf = malloc(70000);
    CHECK_EQ_INT(st_reader_open(&r, b, 0), 0);
    for (;;) {
        long n = st_reader_read(&r, buf, 1 + rnd() % 70000);
        CHECK(n >= 0);
        if (n <= 0) {
            break;
        }
        dbuf_add(&got, buf, (size_t)n);
    }
    st_reader_close(&r);
    CHECK(got.len == m.len && !memcmp(got.p, m.p, m.len));
    free(buf);
    dbuf_free(&got);
    dbuf_free(&m);
    st_box_close(b);
    st_store_close(s);
}

/* One plain message of n wire bytes. */
static void plain_msg(dbuf *m, size_t n, int seq)
{
    dbuf_reset(m);
    dbuf_printf(m, "From: Alice Martin <alice@example.com>\r\nTo: Bob Stone <bob@example.org>\r\n"
                "Subject: budget %d\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
                "Message-ID: <m%d@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
                seq, seq);
    while (m->len + 2 < n) {
        dbuf_addc(m, m->len % 72 == 70 ? '\r' : (char)('a' + m->len % 26));
        if (m->p[m->len - 1] == '\r') {
            dbuf_addc(m, '\n');
        }
    }
    while (m->len < n) {
        dbuf_add(m, "\r\n", n - m->len >= 2 ? 2 : 1);
    }
}

/* Issue 4: an APPEND of a small message writes at most the message plus
 * 256 bytes (mbox headers and the log; no cache-file record: its tree is
 * kept in memory and recorded if it is ever parsed again), while a big
 * message gets its record at once. */
static void test_append_budget(void)
{
    st_store *s;
    st_box *b;
    CHECK_EQ_INT(st_store_open(&s, root, st_vfs_posix()), 0);
    mime_watch_appends(s);
    CHECK_EQ_INT(st_user_ensure(s, "w"), 0);
    CHECK_EQ_INT(st_box_open(s, "w", "INBOX", &b), 0);
    st_vfs_counters *vc = st_vfs_posix_counters();
    st_meta_counters mc0, mc1;
    dbuf m = {0};
    /* the first append opens and creates files: measure the second */
    plain_msg(&m, 4096, 0);
    CHECK(put_msg(b, m.p, m.len) != 0);
    plain_msg(&m, 4096, 1);
    st_meta_stats(&mc0);
    uint64_t w0 = vc->bytes_written;
    CHECK(put_msg(b, m.p, m.len) != 0);
    uint64_t wrote = vc->bytes_written - w0;
    st_meta_stats(&mc1);
    printf("test_mimecache: APPEND of 4096 bytes wrote %llu bytes\n", (unsigned long long)wrote);
    CHECK(wrote <= 4096 + 256);
    CHECK_EQ_INT(mc1.puts - mc0.puts, 0);
    /* its tree is in memory: no message bytes read */
    uint32_t e;
    size_t by;
    uint64_t h0, h1, mi0, mi1;
    mime_cache_stats(&e, &by, &h0, &mi0);
    uint64_t r0 = vc->bytes_read;
    mime_tree t1, t2;
    CHECK_EQ_INT(mime_tree_get(b, 1, 1, &t1), 0);
    mime_cache_stats(&e, &by, &h1, &mi1);
    CHECK_EQ_INT(h1 - h0, 1);
    CHECK(vc->bytes_read == r0);
    dbuf r1 = {0}, r2 = {0};
    render(&t1, &r1);
    mime_tree_free(&t1);
    /* memory lost it: parsed again, and recorded now */
    mime_cache_clear();
    st_meta_stats(&mc0);
    CHECK_EQ_INT(mime_tree_get(b, 1, 1, &t2), 0);
    st_meta_stats(&mc1);
    CHECK_EQ_INT(mc1.puts - mc0.puts, 1);
    render(&t2, &r2);
    CHECK(r1.len == r2.len && r1.len > 0 && !memcmp(r1.p, r2.p, r1.len));
    mime_tree_free(&t2);
    /* after a restart the record serves it */
    st_box_close(b);
    st_store_close(s);
    mime_cache_clear();
    CHECK_EQ_INT(st_store_open(&s, root, st_vfs_posix()), 0);
    CHECK_EQ_INT(st_box_open(s, "w", "INBOX", &b), 0);
    st_meta_stats(&mc0);
    CHECK_EQ_INT(mime_tree_get(b, 1, 1, &t2), 0);
    st_meta_stats(&mc1);
    CHECK_EQ_INT(mc1.hits - mc0.hits, 1);
    dbuf_reset(&r2);
    render(&t2, &r2);
    CHECK(r1.len == r2.len && !memcmp(r1.p, r2.p, r1.len));
    mime_tree_free(&t2);
    /* a message of MIME_APPEND_RECORD_MIN or more is recorded at APPEND */
    mime_watch_appends(s);
    plain_msg(&m, MIME_APPEND_RECORD_MIN + 4096, 2);   /* disk bytes: LF only */
    st_meta_stats(&mc0);
    CHECK(put_msg(b, m.p, m.len) != 0);
    st_meta_stats(&mc1);
    CHECK_EQ_INT(mc1.puts - mc0.puts, 1);
    st_box_close(b);
    st_store_close(s);
    dbuf_free(&r1);
    dbuf_free(&r2);
    dbuf_free(&m);
}

/* Both renderings of message idx from a freshly parsed tree. */
static void rendered_of(st_box *b, uint32_t idx, dbuf *env, dbuf *bs)
{
    dbuf w = {0};
    mime_tree t;
    wire_of(b, idx, &w);
    dbuf_reset(env);
    dbuf_reset(bs);
    CHECK_EQ_INT(mime_parse_buf(w.p, w.len, 0, &t), 0);
    mime_out_envelope(env, &t, 0);
    mime_out_body(bs, &t, 0, 1);
    mime_tree_free(&t);
    dbuf_free(&w);
}

static int rendered_is(const mime_rendered *r, const dbuf *env, const dbuf *bs)
{
    return r->env && r->bs && r->env_len == env->len && !memcmp(r->env, env->p, env->len) &&
           r->bs_len == bs->len && !memcmp(r->bs, bs->p, bs->len);
}

static void restart(st_store **s, st_box **b, const char *user, const char *box)
{
    st_box_close(*b);
    st_store_close(*s);
    mime_cache_clear();
    CHECK_EQ_INT(st_store_open(s, root, st_vfs_posix()), 0);
    CHECK_EQ_INT(st_box_open(*s, user, box, b), 0);
}

/* ENVELOPE and BODYSTRUCTURE kept rendered with the tree: served after a
 * restart from the cache file without a tree, a version 2 record is
 * upgraded once, damage in the kept text is caught by the record's CRC,
 * and an import records every message at once. */
static void test_rendered(void)
{
    st_store *s;
    st_box *b;
    st_meta_counters mc0, mc1;
    st_vfs_counters *vc = st_vfs_posix_counters();
    CHECK_EQ_INT(st_store_open(&s, root, st_vfs_posix()), 0);
    CHECK_EQ_INT(st_user_ensure(s, "v"), 0);
    CHECK_EQ_INT(st_box_open(s, "v", "INBOX", &b), 0);
    dbuf m = {0};
    make_tricky(&m, 1);
    CHECK(put_msg(b, m.p, m.len) != 0);
    CHECK(put_msg(b, "Subject: two\r\nFrom: A <a@b.c>\r\n\r\nhi\r\n", 38) != 0);
    dbuf env[2] = {{0}}, bs[2] = {{0}};
    mime_rendered r;
    for (uint32_t i = 0; i < 2; i++) {
        rendered_of(b, i, &env[i], &bs[i]);
        /* nothing cached yet (no watcher on this store) */
        CHECK(mime_rendered_get(b, i, &r) < 0);
        mime_tree t;
        CHECK_EQ_INT(mime_tree_get(b, i, 1, &t), 0);   /* parsed, stored */
        mime_tree_free(&t);
        /* in memory now */
        CHECK_EQ_INT(mime_rendered_get(b, i, &r), 0);
        CHECK(rendered_is(&r, &env[i], &bs[i]));
    }
    /* After a restart: from the cache file, a few hundred bytes read,
     * no message byte. */
    restart(&s, &b, "v", "INBOX");
    for (uint32_t i = 0; i < 2; i++) {
        st_meta_stats(&mc0);
        uint64_t r0 = vc->bytes_read;
        CHECK_EQ_INT(mime_rendered_get(b, i, &r), 0);
        st_meta_stats(&mc1);
        CHECK_EQ_INT(mc1.hits - mc0.hits, 1);
        CHECK(rendered_is(&r, &env[i], &bs[i]));
        CHECK(vc->bytes_read - r0 < 4096);
    }

    /* A version 2 record (the tree alone, as older builds wrote it):
     * no renderings, the tree path reads it and stores it again as
     * version 3, then the renderings are served. */
    dbuf blob = {0}, v2 = {0};
    {
        mime_tree t;
        mime_rendered rr;
        CHECK_EQ_INT(mime_tree_get(b, 0, 1, &t), 0);
        CHECK_EQ_INT(mime_serialize(&t, &blob), 0);
        mime_tree_free(&t);
        CHECK_EQ_INT(mime_rendered_parse(blob.p, blob.len, &rr), 0);
        size_t rest = (size_t)(rr.bs + rr.bs_len - blob.p);
        dbuf_add(&v2, "MT2", 3);
        dbuf_add(&v2, blob.p + rest, blob.len - rest);
        CHECK_EQ_INT(st_meta_put(b, 0, v2.p, v2.len), 0);
    }
    restart(&s, &b, "v", "INBOX");
    CHECK(mime_rendered_get(b, 0, &r) < 0);
    st_meta_stats(&mc0);
    {
        mime_tree t;
        CHECK_EQ_INT(mime_tree_get(b, 0, 1, &t), 0);
        mime_tree_free(&t);
    }
    st_meta_stats(&mc1);
    CHECK_EQ_INT(mc1.hits - mc0.hits, 1);
    CHECK_EQ_INT(mc1.puts - mc0.puts, 1);   /* the upgrade */
    restart(&s, &b, "v", "INBOX");
    CHECK_EQ_INT(mime_rendered_get(b, 0, &r), 0);
    CHECK(rendered_is(&r, &env[0], &bs[0]));

    /* Damage inside the kept BODYSTRUCTURE text: the record fails its
     * CRC, nothing of it is sent; the tree is parsed again and stored. */
    st_box_close(b);
    st_store_close(s);
    {
        const char *mp = meta_path("v", "INBOX");
        long sz = file_size(mp);
        char *f = malloc((size_t)sz);
        FILE *fp = fopen(mp, "rb");
        CHECK(fp && fread(f, 1, (size_t)sz, fp) == (size_t)sz);
        if (fp) {
            fclose(fp);
        }
        /* the last copy of message 1's text: its latest record */
        char *hit = NULL;
        for (char *p = f; (p = memmem(p, (size_t)(f + sz - p), bs[1].p, bs[1].len)) != NULL; p++) {
            hit = p;
        }
        CHECK(hit != NULL);
        if (hit) {
            poke(mp, (long)(hit - f) + 3, "#", 1);
        }
        free(f);
    }
    mime_cache_clear();
    CHECK_EQ_INT(st_store_open(&s, root, st_vfs_posix()), 0);
    CHECK_EQ_INT(st_box_open(s, "v", "INBOX", &b), 0);
    st_meta_stats(&mc0);
    CHECK(mime_rendered_get(b, 1, &r) < 0);
    st_meta_stats(&mc1);
    CHECK_EQ_INT(mc1.bad - mc0.bad, 1);
    {
        mime_tree t;
        CHECK_EQ_INT(mime_tree_get(b, 1, 1, &t), 0);
        mime_tree_free(&t);
    }
    restart(&s, &b, "v", "INBOX");
    CHECK_EQ_INT(mime_rendered_get(b, 1, &r), 0);
    CHECK(rendered_is(&r, &env[1], &bs[1]));
    st_box_close(b);

    /* Import: every message is recorded as it is written, small ones
     * too (an APPEND keeps a small one's tree in memory only). */
    mime_watch_imports(s);
    CHECK_EQ_INT(st_mailbox_create(s, "v", "Imp"), 0);
    CHECK_EQ_INT(st_box_open(s, "v", "Imp", &b), 0);
    st_meta_stats(&mc0);
    CHECK(put_msg(b, "Subject: two\r\nFrom: A <a@b.c>\r\n\r\nhi\r\n", 38) != 0);
    st_meta_stats(&mc1);
    CHECK(b->msg[0].dlen < MIME_APPEND_RECORD_MIN);
    CHECK_EQ_INT(mc1.puts - mc0.puts, 1);
    mime_watch_appends(s);
    restart(&s, &b, "v", "Imp");
    CHECK_EQ_INT(mime_rendered_get(b, 0, &r), 0);
    CHECK(rendered_is(&r, &env[1], &bs[1]));
    st_box_close(b);
    st_store_close(s);
    for (int i = 0; i < 2; i++) {
        dbuf_free(&env[i]);
        dbuf_free(&bs[i]);
    }
    dbuf_free(&blob);
    dbuf_free(&v2);
    dbuf_free(&m);
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/test_mimecache.XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 2;
    }
    test_seek_points();
    test_restart();
    test_compaction();
    test_parse_at_append();
    test_append_budget();
    test_rendered();
    test_read_inplace();
    mime_cache_clear();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (unit_fail == 0 && system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", root);
    }
    return unit_done("test_mimecache");
}
