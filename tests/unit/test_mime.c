/* test_mime.c -- the MIME parser, its renderings and its serialization.
 *
 * Corpus: tests/corpus/NAME.eml with NAME.expected holding, one a line,
 *   BODYSTRUCTURE <text>, BODY <text>, ENVELOPE <text> and
 *   SECTION <spec> <off> <len> for sections resolved by mime_section_range.
 * Part boundaries in the expectations were cross-checked with Python's
 * email package. Run `test_mime --write` to regenerate (then review!). */
#include "mime.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *p = malloc(cap + 1);
    size_t k;
    while ((k = fread(p + len, 1, cap - len, f)) > 0) {
        len += k;
        if (len == cap) {
            cap *= 2;
            p = realloc(p, cap + 1);
        }
    }
    fclose(f);
    p[len] = 0;
    *n = len;
    return p;
}

/* Every section spec worth checking for a tree: each part's number path
 * with "", .MIME, .HEADER, .TEXT. */
static void sections(const mime_tree *t, dbuf *o)
{
    /* Walk number paths up to depth 4, numbers up to 4. */
    uint32_t path[4];
    static const char *const kinds[] = {"", "MIME", "HEADER", "TEXT"};
    static const int kv[] = {MIME_SEC_ALL, MIME_SEC_MIME, MIME_SEC_HEADER, MIME_SEC_TEXT};
    for (int depth = 0; depth <= 4; depth++) {
        uint32_t total = 1;
        for (int d = 0; d < depth; d++) {
            total *= 4;
        }
        for (uint32_t v = 0; v < total; v++) {
            uint32_t x = v;
            for (int d = 0; d < depth; d++) {
                path[d] = x % 4 + 1;
                x /= 4;
            }
            for (int k = 0; k < 4; k++) {
                uint32_t off, len;
                if (mime_section_range(t, path, (unsigned)depth, kv[k], &off, &len) < 0) {
                    continue;
                }
                dbuf_adds(o, "SECTION ");
                for (int d = 0; d < depth; d++) {
                    dbuf_printf(o, "%s%u", d ? "." : "", path[d]);
                }
                if (depth && k) {
                    dbuf_addc(o, '.');
                }
                dbuf_printf(o, "%s %u %u\n", kinds[k], off, len);
            }
        }
    }
}

/* Everything checked for one message, as text. */
static void render(const mime_tree *t, dbuf *o)
{
    dbuf_adds(o, "BODYSTRUCTURE ");
    mime_out_body(o, t, 0, 1);
    dbuf_adds(o, "\nBODY ");
    mime_out_body(o, t, 0, 0);
    dbuf_adds(o, "\nENVELOPE ");
    mime_out_envelope(o, t, 0);
    dbuf_addc(o, '\n');
    sections(t, o);
}

static void check_corpus(const char *name, int write)
{
    char path[512];
    size_t n, en;
    snprintf(path, sizeof path, "tests/corpus/%s.eml", name);
    char *msg = slurp(path, &n);
    CHECK(msg != NULL);
    if (!msg) {
        fprintf(stderr, "missing %s (run from the repository root)\n", path);
        return;
    }
    mime_tree t;
    CHECK_EQ_INT(mime_parse_buf(msg, n, 0, &t), 0);
    dbuf o = {0};
    render(&t, &o);
    snprintf(path, sizeof path, "tests/corpus/%s.expected", name);
    if (write) {
        FILE *f = fopen(path, "wb");
        fwrite(o.p, 1, o.len, f);
        fclose(f);
    }
    char *exp = slurp(path, &en);
    CHECK(exp != NULL);
    if (exp && (en != o.len || memcmp(exp, o.p, en))) {
        CHECK_EQ_STR(o.p, exp);
        fprintf(stderr, "  (corpus message %s)\n", name);
    } else {
        CHECK(1);
    }
    /* Any slicing gives the same tree: feed 1, 2, 3, 7 and 64 bytes at a time. */
    static const size_t steps[] = {1, 2, 3, 7, 64};
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        mime_parser *p = mime_parser_new(0);
        for (size_t i = 0; i < n; i += steps[s]) {
            mime_parser_feed(p, msg + i, n - i < steps[s] ? n - i : steps[s]);
        }
        mime_tree t2;
        CHECK_EQ_INT(mime_parser_finish(p, (uint32_t)n, &t2), 0);
        dbuf o2 = {0};
        render(&t2, &o2);
        CHECK(o2.len == o.len && !memcmp(o2.p, o.p, o.len));
        dbuf_free(&o2);
        mime_tree_free(&t2);
    }
    /* Serialization round trip. */
    dbuf blob = {0};
    CHECK_EQ_INT(mime_serialize(&t, &blob), 0);
    mime_tree t3;
    CHECK_EQ_INT(mime_deserialize(blob.p, blob.len, &t3), 0);
    dbuf o3 = {0};
    render(&t3, &o3);
    CHECK(o3.len == o.len && !memcmp(o3.p, o.p, o.len));
    /* Every truncation of the blob is refused, never misread. */
    for (size_t cut = 0; cut < blob.len; cut++) {
        mime_tree bad;
        mime_rendered br;
        CHECK(mime_deserialize(blob.p, cut, &bad) < 0);
        /* A cut inside the renderings is refused too. */
        if (mime_rendered_parse(blob.p, cut, &br) == 0) {
            CHECK(br.bs && br.bs + br.bs_len <= blob.p + cut);
        }
    }
    /* The blob carries ENVELOPE and BODYSTRUCTURE exactly as rendered
     * from the tree (FETCH sends them without building one). */
    {
        mime_rendered rr;
        dbuf env = {0}, bs = {0};
        mime_out_envelope(&env, &t, 0);
        mime_out_body(&bs, &t, 0, 1);
        CHECK_EQ_INT(mime_rendered_parse(blob.p, blob.len, &rr), 0);
        CHECK(rr.env && rr.env_len == env.len && !memcmp(rr.env, env.p, env.len));
        CHECK(rr.bs && rr.bs_len == bs.len && !memcmp(rr.bs, bs.p, bs.len));
        /* A version 2 blob (the same tree without renderings, as older
         * builds wrote it) still reads, and has no renderings. */
        if (rr.bs) {
            size_t rest = (size_t)(rr.bs + rr.bs_len - blob.p);
            dbuf v2 = {0};
            dbuf_add(&v2, "MT2", 3);
            dbuf_add(&v2, blob.p + rest, blob.len - rest);
            mime_tree t4;
            CHECK_EQ_INT(mime_deserialize(v2.p, v2.len, &t4), 0);
            dbuf o4 = {0};
            render(&t4, &o4);
            CHECK(o4.len == o.len && !memcmp(o4.p, o.p, o.len));
            CHECK(mime_rendered_parse(v2.p, v2.len, &rr) < 0);
            dbuf_free(&o4);
            mime_tree_free(&t4);
            dbuf_free(&v2);
        }
        dbuf_free(&env);
        dbuf_free(&bs);
    }
    /* The header-only parse agrees on the envelope and the root header. */
    mime_tree h;
    CHECK_EQ_INT(mime_parse_buf(msg, n, 1, &h), 0);
    CHECK_EQ_INT(h.part[0].hdr_len, t.part[0].hdr_len);
    CHECK_EQ_INT(h.part[0].body_len, t.part[0].body_len);
    dbuf e1 = {0}, e2 = {0};
    mime_out_envelope(&e1, &t, 0);
    mime_out_envelope(&e2, &h, 0);
    CHECK_EQ_STR(e1.p, e2.p);
    dbuf_free(&e1);
    dbuf_free(&e2);
    /* A header-only tree keeps no renderings: its BODYSTRUCTURE would be
     * wrong (nothing below the root is known). */
    {
        dbuf hb = {0};
        mime_rendered hr;
        CHECK_EQ_INT(mime_serialize(&h, &hb), 0);
        CHECK_EQ_INT(mime_rendered_parse(hb.p, hb.len, &hr), 0);
        /* (a message that ends with its header is parsed whole) */
        CHECK(!h.header_only || (hr.env == NULL && hr.bs == NULL));
        dbuf_free(&hb);
    }
    mime_tree_free(&h);
    dbuf_free(&o3);
    mime_tree_free(&t3);
    dbuf_free(&blob);
    dbuf_free(&o);
    free(exp);
    mime_tree_free(&t);
    free(msg);
}

static void check_addr(const char *in, const char *want)
{
    dbuf o = {0};
    mime_out_addresses(&o, in, strlen(in));
    CHECK_EQ_STR(o.p, want);
    dbuf_free(&o);
}

static void test_addresses(void)
{
    check_addr("Mary Smith <mary@x.test>", "((\"Mary Smith\" NIL \"mary\" \"x.test\"))");
    check_addr("jdoe@example.org (John Doe)", "((\"John Doe\" NIL \"jdoe\" \"example.org\"))");
    check_addr("undisclosed-recipients:;", "((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL))");
    check_addr("A Group:Ed Jones <c@a.test>,joe@where.test;, x@y",
               "((NIL NIL \"A Group\" NIL)(\"Ed Jones\" NIL \"c\" \"a.test\")(NIL NIL \"joe\" \"where.test\")"
               "(NIL NIL NIL NIL)(NIL NIL \"x\" \"y\"))");
    check_addr("<@route1,@route2:user@host>", "((NIL \"@route1,@route2\" \"user\" \"host\"))");
    check_addr("=?utf-8?q?J=C3=B6rg?= <j@e.com>", "((\"=?utf-8?q?J=C3=B6rg?=\" NIL \"j\" \"e.com\"))");
    check_addr("\"Last, First\" <f@l.test>", "((\"Last, First\" NIL \"f\" \"l.test\"))");
    check_addr("localonly", "((NIL NIL \"localonly\" \"MISSING_DOMAIN\"))");
    check_addr("", "NIL");
    check_addr(" ,;<> ", "NIL");
    check_addr("a@[127.0.0.1]", "((NIL NIL \"a\" \"[127.0.0.1]\"))");
}

static void test_strings(void)
{
    dbuf o = {0};
    mime_out_string(&o, "a\"b\\c", 5);
    CHECK_EQ_STR(o.p, "\"a\\\"b\\\\c\"");
    dbuf_reset(&o);
    mime_out_string(&o, "x\r\ny", 4);
    CHECK_EQ_STR(o.p, "{4}\r\nx\r\ny");
    dbuf_reset(&o);
    mime_out_string(&o, "\xfc", 1);
    CHECK_EQ_STR(o.p, "{1}\r\n\xfc");
    dbuf_free(&o);
}

static void check_decode(int enc, int cs, const char *in, const char *want)
{
    mime_decoder d;
    mime_decoder_init(&d, enc, cs);
    dbuf o = {0};
    /* One byte at a time: the decoders keep state across slices. */
    for (size_t i = 0; in[i]; i++) {
        mime_decode(&d, in + i, 1, &o);
    }
    CHECK_EQ_STR(o.p ? o.p : "", want);
    dbuf_free(&o);
}

static void test_decoding(void)
{
    check_decode(MIME_ENC_BASE64, MIME_CS_UTF8, "w5xCRVI=\r\n", "\xc3\xbc" "ber");
    check_decode(MIME_ENC_QP, MIME_CS_LATIN1, "Caf=E9 =\r\nCR=C8ME=3d", "caf\xc3\xa9 cr\xc3\xa8me=");
    check_decode(MIME_ENC_QP, MIME_CS_UTF8, "a=ZZb", "a=zzb");
    check_decode(MIME_ENC_PLAIN, MIME_CS_UTF8, "\xc3\x89T\xc3\x89", "\xc3\xa9t\xc3\xa9");
    dbuf o = {0};
    const char *h = "=?ISO-8859-1?Q?Gr=FC=DFe?= =?utf-8?B?w5xCRVI=?= aus K\xc3\xb6ln";
    mime_decode_header(h, strlen(h), &o);
    CHECK_EQ_STR(o.p, "gr\xc3\xbc\xc3\x9f" "e\xc3\xbc" "ber aus k\xc3\xb6ln");
    dbuf_reset(&o);
    mime_fold_utf8("\xc3\x84\xc3\x96\xc3\x9c\xc3\x97", 8, &o);
    CHECK_EQ_STR(o.p, "\xc3\xa4\xc3\xb6\xc3\xbc\xc3\x97");
    dbuf_free(&o);
    CHECK_EQ_INT(mime_date_days("Tue, 1 Jul 2003 10:52:37 +0200", 30), days_from_civil(2003, 7, 1));
    CHECK_EQ_INT(mime_date_days("5 Jan 26 10:00 GMT", 18), days_from_civil(2026, 1, 5));
    CHECK_EQ_INT(mime_date_days("garbage", 7), -1);
}

/* A 1 MB header: kept values stay capped, offsets stay exact. */
static void test_huge_header(void)
{
    dbuf m = {0};
    dbuf_adds(&m, "From: a@example.com\r\nSubject: big\r\nX-Long: ");
    for (int i = 0; i < 1 << 20; i++) {
        dbuf_addc(&m, (char)('a' + i % 26));
        if (i % 900 == 899) {
            dbuf_adds(&m, "\r\n ");
        }
    }
    dbuf_adds(&m, "\r\nTo: ");
    for (int i = 0; i < 5000; i++) {
        dbuf_printf(&m, "user%d@example.com, ", i);
    }
    dbuf_adds(&m, "last@example.com\r\nContent-Type: text/plain\r\n\r\nbody\r\n");
    mime_tree t;
    CHECK_EQ_INT(mime_parse_buf(m.p, m.len, 0, &t), 0);
    CHECK_EQ_INT(t.part[0].hdr_len, m.len - 6);
    CHECK_EQ_INT(t.part[0].body_len, 6);
    CHECK_EQ_INT(t.part[0].lines, 1);
    size_t n;
    const char *to = mime_get(&t, 0, MIME_S_TO, &n);
    CHECK(to != NULL && n <= MIME_FIELD_MAX);
    CHECK(t.pool_len < 4 * MIME_FIELD_MAX);
    dbuf o = {0};
    mime_out_body(&o, &t, 0, 1);
    CHECK_EQ_STR(o.p, "(\"text\" \"plain\" NIL NIL NIL \"7bit\" 6 1 NIL NIL NIL NIL)");
    dbuf_free(&o);
    mime_tree_free(&t);
    dbuf_free(&m);
}

/* Deep nesting and many parts stay within the caps and stay valid. */
static void test_caps(void)
{
    dbuf m = {0};
    dbuf_adds(&m, "Subject: deep\r\n");
    for (int i = 0; i < 100; i++) {
        dbuf_printf(&m, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i);
    }
    dbuf_adds(&m, "Content-Type: text/plain\r\n\r\nleaf\r\n");
    mime_tree t;
    CHECK_EQ_INT(mime_parse_buf(m.p, m.len, 0, &t), 0);
    CHECK(t.nparts <= MIME_MAX_DEPTH + 2);
    dbuf o = {0};
    mime_out_body(&o, &t, 0, 1);
    CHECK(o.len > 0);
    dbuf_free(&o);
    mime_tree_free(&t);
    dbuf_reset(&m);
    dbuf_adds(&m, "Content-Type: multipart/mixed; boundary=x\r\n\r\n");
    for (int i = 0; i < 3000; i++) {
        dbuf_adds(&m, "--x\r\n\r\np\r\n");
    }
    dbuf_adds(&m, "--x--\r\n");
    CHECK_EQ_INT(mime_parse_buf(m.p, m.len, 0, &t), 0);
    CHECK_EQ_INT(t.nparts, MIME_MAX_PARTS);
    dbuf blob = {0};
    CHECK_EQ_INT(mime_serialize(&t, &blob), 0);
    mime_tree t2;
    CHECK_EQ_INT(mime_deserialize(blob.p, blob.len, &t2), 0);
    /* Its BODYSTRUCTURE (1,024 parts, ~60 KB) is past MIME_RENDERED_MAX:
     * not kept, so FETCH renders it from the tree; the short ENVELOPE is. */
    {
        dbuf bs = {0};
        mime_out_body(&bs, &t, 0, 1);
        CHECK(bs.len > MIME_RENDERED_MAX);
        mime_rendered rr;
        CHECK_EQ_INT(mime_rendered_parse(blob.p, blob.len, &rr), 0);
        CHECK(rr.bs == NULL && rr.env != NULL);
        dbuf_free(&bs);
    }
    mime_tree_free(&t2);
    dbuf_free(&blob);
    mime_tree_free(&t);
    dbuf_free(&m);
}

int main(int argc, char **argv)
{
    int write = argc > 1 && !strcmp(argv[1], "--write");
    static const char *const corpus[] = {
        "nested-mixed-lf", "nested-mixed-crlf", "alt-mixed-rfc822", "digest",
        "missing-final-boundary", "no-content-type", "empty-body", "no-separator",
        "eightbit-headers", "multipart-no-parts",
    };
    for (size_t i = 0; i < sizeof corpus / sizeof corpus[0]; i++) {
        check_corpus(corpus[i], write);
    }
    test_addresses();
    test_strings();
    test_decoding();
    test_huge_header();
    test_caps();
    return unit_done("test_mime");
}
