/* test_sort.c -- RFC 5256: base subject extraction, sent dates, address
 * keys, and both threading algorithms over keys (no store needed). The
 * thread shapes are the ones RFC 5256 uses in its examples. */
#include "config.h"
#include "sort.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

static int refwd_of;

static const char *base(const char *s)
{
    static dbuf o;
    dbuf_reset(&o);
    refwd_of = sort_base_subject(s, strlen(s), &o);
    dbuf_addc(&o, 0);
    return o.p;
}

static void test_base_subject(void)
{
    CHECK_EQ_STR(base("Re: test"), "test");
    CHECK_EQ_INT(refwd_of, 1);
    CHECK_EQ_STR(base("test"), "test");
    CHECK_EQ_INT(refwd_of, 0);
    CHECK_EQ_STR(base("re: RE: Re: test"), "test");
    CHECK_EQ_STR(base("Fwd: test"), "test");
    CHECK_EQ_INT(refwd_of, 1);
    CHECK_EQ_STR(base("Fw: Fwd: RE: hello"), "hello");
    CHECK_EQ_STR(base("[PATCH] test"), "test");
    CHECK_EQ_INT(refwd_of, 0);
    CHECK_EQ_STR(base("[PATCH]"), "[patch]");           /* blob kept: nothing after it */
    CHECK_EQ_STR(base("[a][b] test"), "test");
    CHECK_EQ_STR(base("[a] [b]"), "[b]");
    CHECK_EQ_STR(base("Re: [list] Re: test (fwd)"), "test");
    CHECK_EQ_STR(base("test (fwd) (FWD)  "), "test");
    CHECK_EQ_INT(refwd_of, 1);
    CHECK_EQ_STR(base("[fwd: Re: test]"), "test");
    CHECK_EQ_INT(refwd_of, 1);
    CHECK_EQ_STR(base("Re: [fwd: hello] (fwd)"), "hello");
    CHECK_EQ_STR(base("[Fwd: [fwd: x]]"), "x");
    CHECK_EQ_STR(base("  test \t  foo  "), "test foo");
    CHECK_EQ_STR(base("Re [x]: test"), "test");
    CHECK_EQ_STR(base("Re  : test"), "test");
    CHECK_EQ_STR(base("[x] Re: test"), "test");         /* *subj-blob subj-refwd */
    CHECK_EQ_STR(base("Reply: test"), "reply: test");   /* "re" must end the word */
    CHECK_EQ_INT(refwd_of, 0);
    CHECK_EQ_STR(base("Re:"), "");
    CHECK_EQ_STR(base(""), "");
    CHECK_EQ_STR(base("Re: =?UTF-8?Q?caf=C3=A9?="), "caf\xc3\xa9");
    CHECK_EQ_STR(base("=?ISO-8859-1?Q?Re:_hall=F6?="), "hall\xc3\xb6");   /* decoded first */
    CHECK_EQ_STR(base("[fwd: ]"), "");                  /* step (6) unwraps, (2) trims */
}

static void test_casemap(void)
{
    CHECK(sort_casemap_cmp("abc", 3, "ABC", 3) == 0);
    CHECK(sort_casemap_cmp("a", 1, "_", 1) < 0);        /* 'A' 0x41 < '_' 0x5f */
    CHECK(sort_casemap_cmp("ab", 2, "abc", 3) < 0);
    CHECK(sort_casemap_cmp("b", 1, "A", 1) > 0);
}

static int64_t date(const char *s)
{
    int64_t t = -1;
    if (sort_parse_date(s, strlen(s), &t) < 0) {
        return -1;
    }
    return t;
}

static void test_dates(void)
{
    CHECK_EQ_INT(date("Mon, 7 Feb 1994 21:52:25 -0800"), 760686745);
    CHECK_EQ_INT(date("Tue, 1 Jul 2003 10:52:37 +0200"), 1057049557);
    CHECK_EQ_INT(date("Tue,  1 Jul 2003 10:52:37 +0200 (CEST)"), 1057049557);
    CHECK_EQ_INT(date("1 Jan 2000 00:00 GMT"), 946684800);
    CHECK_EQ_INT(date("1 Jan 00 00:00 GMT"), 946684800);
    CHECK_EQ_INT(date("Mon, 7 Feb 1994 21:52:25 PST"), 760686745);
    CHECK_EQ_INT(date("Mon, 7 Feb 1994"), -1);          /* no time: INTERNALDATE then */
    CHECK_EQ_INT(date("garbage"), -1);
    CHECK_EQ_INT(date(""), -1);
}

static const char *mbox(const char *s)
{
    static dbuf o;
    dbuf_reset(&o);
    sort_addr_mailbox(s, strlen(s), &o);
    dbuf_addc(&o, 0);
    return o.p;
}

static void test_addr(void)
{
    CHECK_EQ_STR(mbox("Alice Example <alice@example.org>"), "alice");
    CHECK_EQ_STR(mbox("bob@example.org, carol@example.org"), "bob");
    CHECK_EQ_STR(mbox("\"Doe, John\" <jdoe@x.org>"), "jdoe");
    CHECK_EQ_STR(mbox("undisclosed-recipients:;"), "");
    CHECK_EQ_STR(mbox("friends: zed@x.org, amy@x.org;"), "zed");
    CHECK_EQ_STR(mbox("x@y (Comment)"), "x");
    CHECK_EQ_STR(mbox(""), "");
}

/* A message for the threader. */
typedef struct tm_ {
    uint32_t num;
    int64_t date;
    const char *subject, *msgid, *refs, *irt;
} tm_;

static const char *thread(int algo, const tm_ *m, size_t n)
{
    static dbuf out;
    dbuf_reset(&out);
    sort_threader *t = sort_threader_new(algo);
    for (size_t i = 0; i < n; i++) {
        const tm_ *x = &m[i];
        sort_threader_add(t, x->num, x->date, x->subject, x->subject ? strlen(x->subject) : 0,
                          x->msgid, x->msgid ? strlen(x->msgid) : 0, x->refs, x->refs ? strlen(x->refs) : 0,
                          x->irt, x->irt ? strlen(x->irt) : 0);
    }
    CHECK_EQ_INT(sort_threader_finish(t, &out), 0);
    sort_threader_free(t);
    dbuf_addc(&out, 0);
    return out.p;
}

#define R SORT_THREAD_REFERENCES
#define O SORT_THREAD_ORDEREDSUBJECT
#define N(a) (sizeof (a) / sizeof (a)[0])

static void test_references(void)
{
    /* RFC 5256 section 4's example shape: (2)(3 6 (4 23)(44 7 96)) */
    tm_ rfc[] = {
        {2, 10, "two", "<2@x>", NULL, NULL},
        {3, 20, "three", "<3@x>", NULL, NULL},
        {6, 30, "Re: three", "<6@x>", "<3@x>", NULL},
        {4, 40, "Re: three", "<4@x>", "<3@x> <6@x>", NULL},
        {23, 50, "Re: three", "<23@x>", "<3@x>\t<6@x>\r\n <4@x>", NULL},
        {44, 60, "Re: three", "<44@x>", "<3@x> <6@x>", NULL},
        {7, 70, "Re: three", "<7@x>", "<3@x> <6@x> <44@x>", NULL},
        {96, 80, "Re: three", "<96@x>", "<3@x> <6@x> <44@x> <7@x>", NULL},
    };
    CHECK_EQ_STR(thread(R, rfc, N(rfc)), "(2)(3 6 (4 23)(44 7 96))");

    /* In-Reply-To when there is no References; its first valid id only. */
    tm_ irt[] = {
        {1, 10, "a", "<1@x>", NULL, NULL},
        {2, 20, "b", "<2@x>", NULL, "<1@x> <nothing@x>"},
        {3, 30, "c", "<3@x>", "no ids here", "<2@x>"},
    };
    CHECK_EQ_STR(thread(R, irt, N(irt)), "(1 2 3)");

    /* A missing parent with two replies: a dummy root, "((3)(5))". */
    tm_ dummy[] = {
        {3, 10, "x", "<3@x>", "<0@x>", NULL},
        {5, 20, "y", "<5@x>", "<0@x>", NULL},
    };
    CHECK_EQ_STR(thread(R, dummy, N(dummy)), "((3)(5))");

    /* A missing parent with one reply: the reply is promoted. */
    tm_ one[] = {{1, 10, "x", "<1@x>", "<0@x>", NULL}};
    CHECK_EQ_STR(thread(R, one, N(one)), "(1)");

    /* Dummies below the root are dropped, their children promoted. */
    tm_ mid[] = {
        {1, 10, "a", "<1@x>", NULL, NULL},
        {2, 20, "b", "<2@x>", "<1@x> <gone@x>", NULL},
        {3, 30, "c", "<3@x>", "<1@x> <gone@x>", NULL},
    };
    CHECK_EQ_STR(thread(R, mid, N(mid)), "(1 (2)(3))");

    /* Siblings by sent date, not by arrival. */
    tm_ order[] = {
        {1, 100, "a", "<1@x>", NULL, NULL},
        {2, 300, "b", "<2@x>", "<1@x>", NULL},
        {3, 200, "c", "<3@x>", "<1@x>", NULL},
    };
    CHECK_EQ_STR(thread(R, order, N(order)), "(1 (3)(2))");

    /* Threads by the date of their root; a dummy by its first child. */
    tm_ roots[] = {
        {1, 500, "late", "<1@x>", NULL, NULL},
        {2, 300, "p", "<2@x>", "<0@x>", NULL},
        {3, 100, "q", "<3@x>", "<0@x>", NULL},
    };
    CHECK_EQ_STR(thread(R, roots, N(roots)), "((3)(2))(1)");

    /* References making a loop are not followed. */
    tm_ loop[] = {
        {1, 10, "a", "<1@x>", "<2@x>", NULL},
        {2, 20, "b", "<2@x>", "<1@x>", NULL},
    };
    CHECK_EQ_STR(thread(R, loop, N(loop)), "(2 1)");

    /* A duplicate Message-ID stays with the first message. */
    tm_ dup[] = {
        {1, 10, "a", "<1@x>", NULL, NULL},
        {2, 20, "b", "<1@x>", NULL, NULL},
        {3, 30, "c", "<3@x>", "<1@x>", NULL},
    };
    CHECK_EQ_STR(thread(R, dup, N(dup)), "(1 3)(2)");

    /* No Message-ID: a unique one. */
    tm_ noid[] = {{1, 10, "a", NULL, NULL, NULL}, {2, 20, "b", "", NULL, NULL}};
    CHECK_EQ_STR(thread(R, noid, N(noid)), "(1)(2)");

    /* Step 5: a reply without references joins the original by subject;
     * two originals with one subject go under a dummy. */
    tm_ subj[] = {
        {1, 10, "hello", "<1@x>", NULL, NULL},
        {2, 20, "Re: hello", "<2@x>", NULL, NULL},
        {3, 30, "other", "<3@x>", NULL, NULL},
        {4, 40, "other", "<4@x>", NULL, NULL},
        {5, 50, "", "<5@x>", NULL, NULL},
        {6, 60, "", "<6@x>", NULL, NULL},
    };
    CHECK_EQ_STR(thread(R, subj, N(subj)), "(1 2)((3)(4))(5)(6)");

    /* The reply comes first: the original still becomes the parent. */
    tm_ rfirst[] = {
        {1, 10, "Re: hello", "<1@x>", NULL, NULL},
        {2, 20, "hello", "<2@x>", NULL, NULL},
    };
    CHECK_EQ_STR(thread(R, rfirst, N(rfirst)), "(2 1)");

    /* Two dummies with one subject merge their children. */
    tm_ dd[] = {
        {1, 10, "s", "<1@x>", "<p@x>", NULL},
        {2, 20, "s", "<2@x>", "<p@x>", NULL},
        {3, 30, "s", "<3@x>", "<q@x>", NULL},
        {4, 40, "s", "<4@x>", "<q@x>", NULL},
    };
    CHECK_EQ_STR(thread(R, dd, N(dd)), "((1)(2)(3)(4))");

    /* Found by fuzz_sort: a child promoted from a one-child root dummy
     * that sits later in the node array was listed as a root twice. */
    tm_ promo[] = {
        {1, 2, "t", NULL, "<a@x> <b@x>", NULL},
        {2, 2, "s", NULL, NULL, "<a@x>"},
        {3, 4, "s", "<b@x>", NULL, NULL},
    };
    CHECK_EQ_STR(thread(R, promo, N(promo)), "((2)(3 1))");

    /* A long chain: no recursion anywhere. */
    enum { CHAIN = 20000 };
    tm_ *chain = calloc(CHAIN, sizeof *chain);
    char (*ids)[24] = calloc(CHAIN, sizeof *ids);
    for (uint32_t i = 0; i < CHAIN; i++) {
        snprintf(ids[i], sizeof ids[i], "<%u@x>", i);
        chain[i].num = i + 1;
        chain[i].date = i;
        chain[i].subject = "chain";
        chain[i].msgid = ids[i];
        chain[i].refs = i ? ids[i - 1] : NULL;
    }
    const char *out = thread(R, chain, CHAIN);
    CHECK(strncmp(out, "(1 2 3 4 ", 9) == 0);
    CHECK(strlen(out) > 5 * CHAIN && out[strlen(out) - 1] == ')');
    free(chain);
    free(ids);
}

static void test_orderedsubject(void)
{
    tm_ m[] = {
        {1, 10, "b", NULL, NULL, NULL},
        {2, 20, "a", NULL, NULL, NULL},
        {3, 30, "Re: b", NULL, NULL, NULL},
        {4, 40, "A", NULL, NULL, NULL},
        {5, 35, "[fwd: a]", NULL, NULL, NULL},
    };
    CHECK_EQ_STR(thread(O, m, N(m)), "(1 3)(2 (5)(4))");
    tm_ none[] = {{7, 0, NULL, NULL, NULL, NULL}};
    CHECK_EQ_STR(thread(O, none, N(none)), "(7)");
    CHECK_EQ_STR(thread(O, NULL, 0), "");
    CHECK_EQ_STR(thread(R, NULL, 0), "");
}

int main(void)
{
    if (!CONFIG_SORT) {
        printf("test_sort: CONFIG_SORT is off, nothing to test\n");
        return unit_done("test_sort");
    }
    test_base_subject();
    test_casemap();
    test_dates();
    test_addr();
    test_references();
    test_orderedsubject();
    return unit_done("test_sort");
}
