/* test_parse.c -- the resumable command tokenizer, sequence sets, names
 * and dates. */
#include "cmd.h"
#include "parse.h"
#include "unit.h"
#include "util.h"

#include <stdlib.h>

/* Feed s in slices of `step` bytes; accept literals into memory. Returns
 * the last result and leaves tokens in p. */
static int feed(imap_parser *p, const char *s, size_t step, int *nlit)
{
    size_t n = strlen(s), pos = 0;
    int r = PARSE_MORE;
    while (pos < n) {
        size_t chunk = n - pos < step ? n - pos : step;
        size_t used = 0;
        r = parse_feed(p, s + pos, chunk, &used);
        pos += used;
        if (r == PARSE_LITERAL) {
            if (nlit) {
                (*nlit)++;
            }
            parse_literal_accept(p, LIT_MEM, NULL, NULL);
            continue;
        }
        if (r == PARSE_DONE || r == PARSE_ERROR) {
            return r;
        }
    }
    return r;
}

static void test_tokens(void)
{
    for (size_t step = 1; step <= 64; step = step * 2 + 1) {
        imap_parser p;
        parse_init(&p, 1024, 4096, 100);
        int nlit = 0;
        int r = feed(&p, "a1 LOGIN {4}\r\nuser \"pa ss\\\"w\" (\\Seen  $Junk) BODY[HEADER.FIELDS (From To)]<0.10> NIL\r\n", step, &nlit);
        CHECK_EQ_INT(r, PARSE_DONE);
        CHECK_EQ_INT(nlit, 1);
        CHECK_EQ_INT(p.ntok, 15);
        CHECK_EQ_STR(tok_s(&p, 0), "a1");
        CHECK_EQ_STR(tok_s(&p, 2), "user");
        CHECK_EQ_INT(p.toks[2].type, TOK_LITERAL);
        CHECK_EQ_STR(tok_s(&p, 3), "pa ss\"w");
        CHECK_EQ_INT(p.toks[3].type, TOK_QUOTED);
        CHECK_EQ_INT(p.toks[4].type, TOK_LPAREN);
        CHECK_EQ_STR(tok_s(&p, 5), "\\Seen");
        CHECK_EQ_INT(p.toks[5].depth, 1);
        CHECK_EQ_STR(tok_s(&p, 8), "BODY[HEADER.FIELDS");
        CHECK_EQ_STR(tok_s(&p, 13), "]<0.10>");
        CHECK_EQ_STR(tok_s(&p, 14), "NIL");
        parse_free(&p);
    }
}

static void test_errors(void)
{
    imap_parser p;
    parse_init(&p, 64, 4096, 100);
    size_t used;
    /* Unbalanced parentheses: error at the end of the line, then the next
     * command parses normally. */
    const char *s = "a1 FETCH 1 (FLAGS\r\na2 NOOP\r\n";
    int r = parse_feed(&p, s, strlen(s), &used);
    CHECK_EQ_INT(r, PARSE_ERROR);
    CHECK_EQ_STR(tok_s(&p, 0), "a1");
    parse_clear(&p);
    r = parse_feed(&p, s + used, strlen(s) - used, &used);
    CHECK_EQ_INT(r, PARSE_DONE);
    CHECK_EQ_STR(tok_s(&p, 0), "a2");
    parse_clear(&p);

    /* A line over the limit is skipped to its end. */
    char big[300];
    memset(big, 'x', sizeof big);
    memcpy(big, "a3 NOOP ", 8);
    r = parse_feed(&p, big, sizeof big, &used);
    CHECK_EQ_INT(r, PARSE_ERROR);
    parse_clear(&p);
    r = parse_feed(&p, big + used, sizeof big - used, &used);
    CHECK_EQ_INT(r, PARSE_MORE);
    r = parse_feed(&p, "xx\r\na4 NOOP\r\n", 13, &used);
    CHECK_EQ_INT(r, PARSE_DONE);
    CHECK_EQ_STR(tok_s(&p, 0), "a4");
    parse_clear(&p);

    /* Extra ')' */
    r = parse_feed(&p, "a5 X)\r\n", 7, &used);
    CHECK_EQ_INT(r, PARSE_ERROR);
    parse_clear(&p);
    r = parse_feed(&p, "\r\n", 2, &used);
    CHECK_EQ_INT(r, PARSE_MORE);
    CHECK(!parse_busy(&p));

    /* A refused {n+} literal is skipped, then parsing resumes. */
    r = parse_feed(&p, "a6 X {5+}\r\n", 11, &used);
    CHECK_EQ_INT(r, PARSE_LITERAL);
    CHECK_EQ_INT(p.lit_len, 5);
    CHECK_EQ_INT(p.lit_plus, 1);
    CHECK_EQ_INT(parse_literal_refuse(&p, 100), 0);
    parse_clear(&p);
    r = parse_feed(&p, "hello more\r\na7 NOOP\r\n", 21, &used);
    CHECK_EQ_INT(r, PARSE_DONE);
    CHECK_EQ_STR(tok_s(&p, 0), "a7");
    parse_clear(&p);

    /* A refused synchronizing literal ends the command. */
    r = parse_feed(&p, "a8 X {500}\r\n", 12, &used);
    CHECK_EQ_INT(r, PARSE_LITERAL);
    CHECK_EQ_INT(parse_literal_refuse(&p, 100), 0);
    parse_clear(&p);
    r = parse_feed(&p, "a9 NOOP\r\n", 9, &used);
    CHECK_EQ_INT(r, PARSE_DONE);
    CHECK_EQ_STR(tok_s(&p, 0), "a9");
    /* A too-big {n+} asks the caller to close. */
    parse_clear(&p);
    r = parse_feed(&p, "b1 X {100000000+}\r\n", 19, &used);
    CHECK_EQ_INT(r, PARSE_LITERAL);
    CHECK_EQ_INT(parse_literal_refuse(&p, 1024), 1);
    parse_free(&p);

    /* Bare LF line ends are accepted. */
    parse_init(&p, 64, 4096, 100);
    r = parse_feed(&p, "c1 NOOP\n", 8, &used);
    CHECK_EQ_INT(r, PARSE_DONE);
    parse_free(&p);

    /* Token and arena caps. */
    parse_init(&p, 4096, 4096, 4);
    r = parse_feed(&p, "d1 A B C D E\r\n", 14, &used);
    CHECK_EQ_INT(r, PARSE_ERROR);
    parse_free(&p);
}

static void test_seqset(void)
{
    seqset s;
    CHECK_EQ_INT(seqset_parse(&s, "1:3,7,5:*", 9, 10), 0);
    CHECK(seqset_has(&s, 1) && seqset_has(&s, 3) && !seqset_has(&s, 4));
    CHECK(seqset_has(&s, 5) && seqset_has(&s, 10) && !seqset_has(&s, 11));
    seqset_free(&s);
    CHECK_EQ_INT(seqset_parse(&s, "1:4294967295", 12, 0), 0);
    CHECK(seqset_has(&s, 4294967295u));
    seqset_free(&s);
    CHECK_EQ_INT(seqset_parse(&s, "0", 1, 5), -1);
    CHECK_EQ_INT(seqset_parse(&s, "1,", 2, 5), -1);
    CHECK_EQ_INT(seqset_parse(&s, "4294967296", 10, 5), -1);
    CHECK_EQ_INT(seqset_parse(&s, "a", 1, 5), -1);
    CHECK_EQ_INT(seqset_parse(&s, "5:2", 3, 5), 0);
    CHECK(seqset_has(&s, 3));
    seqset_free(&s);
}

static void test_names(void)
{
    const char *why;
    char *n = mailbox_name("inbox", 5, &why);
    CHECK_EQ_STR(n, "INBOX");
    free(n);
    n = mailbox_name("Inbox/Sub", 9, &why);
    CHECK_EQ_STR(n, "INBOX/Sub");
    free(n);
    n = mailbox_name("Foo/", 4, &why);
    CHECK_EQ_STR(n, "Foo");
    free(n);
    n = mailbox_name("Entw&APw-rfe", 12, &why);
    CHECK_EQ_STR(n, "Entw&APw-rfe");
    free(n);
    n = mailbox_name("a&-b", 4, &why);
    CHECK_EQ_STR(n, "a&-b");
    free(n);
    CHECK(mailbox_name("Entw\xc3\xbcrfe", 9, &why) == NULL);
    CHECK(mailbox_name("&AGE-", 5, &why) == NULL);     /* encodes 'a' */
    CHECK(mailbox_name("&Jjo", 4, &why) == NULL);      /* unterminated */
    CHECK(mailbox_name("&2D0-", 5, &why) == NULL);     /* lone surrogate */
    CHECK(mailbox_name("../etc", 6, &why) == NULL);
    CHECK(mailbox_name("a/../b", 6, &why) == NULL);
    CHECK(mailbox_name("/abs", 4, &why) == NULL);
    CHECK(mailbox_name("a//b", 4, &why) == NULL);
    CHECK(mailbox_name("", 0, &why) == NULL);
    CHECK(mailbox_name("a\0b", 3, &why) == NULL);
    CHECK(mailbox_name("&ZeVnLIqe-&ZeVnLIqe-", 20, &why) == NULL); /* split run */
    CHECK(mailbox_name("&AAA-", 5, &why) == NULL);                 /* NUL */
    n = mailbox_name("&ZeVnLIqe-&-", 12, &why);
    CHECK_EQ_STR(n, "&ZeVnLIqe-&-");
    free(n);
    n = mailbox_name("&ZeVnLIqe-", 10, &why);   /* RFC 3501 example */
    CHECK_EQ_STR(n, "&ZeVnLIqe-");
    free(n);
}

static void test_utf8_names(void)
{
    char *m = mailbox_utf8_to_mutf7("Entw\xc3\xbcrfe", 9);
    CHECK_EQ_STR(m, "Entw&APw-rfe");
    char *u = m ? mailbox_mutf7_to_utf8(m) : NULL;
    CHECK_EQ_STR(u, "Entw\xc3\xbcrfe");
    free(m);
    free(u);
    /* RFC 3501's example, a surrogate pair, and '&' */
    m = mailbox_utf8_to_mutf7("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 9);
    CHECK_EQ_STR(m, "&ZeVnLIqe-");
    free(m);
    m = mailbox_utf8_to_mutf7("a&b \xf0\x9f\x93\xa7", 8);
    CHECK_EQ_STR(m, "a&-b &2D3c5w-");
    u = m ? mailbox_mutf7_to_utf8(m) : NULL;
    CHECK_EQ_STR(u, "a&b \xf0\x9f\x93\xa7");
    free(m);
    free(u);
    const char *why;
    char *n = mailbox_name("&2D3c5w-", 8, &why);   /* the pair is valid mUTF-7 */
    CHECK_EQ_STR(n, "&2D3c5w-");
    free(n);
    CHECK(mailbox_utf8_to_mutf7("\xc0\xaf", 2) == NULL);         /* overlong */
    CHECK(mailbox_utf8_to_mutf7("\xed\xa0\x80", 3) == NULL);     /* surrogate */
    CHECK(mailbox_utf8_to_mutf7("\xe6\x97", 2) == NULL);         /* truncated */
}

static void test_dates(void)
{
    int64_t t, d;
    int tz;
    CHECK_EQ_INT(parse_date_time("17-Jul-1996 02:44:25 -0700", 26, &t, &tz), 0);
    CHECK_EQ_INT(t, 837596665);
    CHECK_EQ_INT(tz, -420);
    char out[32];
    format_date_time(t, tz, out);
    CHECK_EQ_STR(out, "17-Jul-1996 02:44:25 -0700");
    CHECK_EQ_INT(parse_date_time(" 7-Jul-1996 02:44:25 +0000", 26, &t, &tz), 0);
    CHECK_EQ_INT(parse_date_time("31-Feb-1996 02:44:25 +0000", 26, &t, &tz), -1);
    CHECK_EQ_INT(parse_date_time("17-Jul-1996 25:44:25 +0000", 26, &t, &tz), -1);
    CHECK_EQ_INT(parse_date("1-Feb-1994", 10, &d), 0);
    CHECK_EQ_INT(d, days_from_civil(1994, 2, 1));
    CHECK_EQ_INT(parse_date("29-Feb-2023", 11, &d), -1);
    CHECK_EQ_INT(parse_date("29-Feb-2024", 11, &d), 0);
    int y;
    unsigned m, dd;
    civil_from_days(days_from_civil(2000, 2, 29), &y, &m, &dd);
    CHECK(y == 2000 && m == 2 && dd == 29);
}

int main(void)
{
    test_tokens();
    test_errors();
    test_seqset();
    test_names();
    test_utf8_names();
    test_dates();
    return unit_done("test_parse");
}
