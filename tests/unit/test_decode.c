/* test_decode.c -- SEARCH's text decoder (mime_decode, mime_decode_header)
 * against a byte-at-a-time reference of the same rules, on fixed cases and
 * on random input cut into random slices: the fast paths (eight ASCII
 * bytes at once, runs up to the next QP '=', output staged in blocks) must
 * give exactly what the plain rules give, wherever the slices fall. */
#include <stdint.h>
#include <stdlib.h>

#include "mime.h"
#include "unit.h"

/* ---- the reference: RFC 2045 base64 and quoted-printable, Latin-1 to
 * UTF-8, folding of ASCII and of Latin-1 letters (UTF-8 C3 80..C3 9E but
 * not C3 97, the multiplication sign), one byte at a time ---- */

typedef struct ref {
    int      enc, cs;
    uint32_t bits;
    int      nbits;      /* sextets held */
    char     qp[3];
    int      nqp;
    int      c3;         /* the last byte out was C3 */
} ref;

static void ref_out(ref *r, unsigned char c, dbuf *o)
{
    if (r->cs == MIME_CS_LATIN1 && c >= 0x80) {
        int letter = c >= 0xC0 && c <= 0xDE && c != 0xD7;
        dbuf_addc(o, (char)(0xC0 | (c >> 6)));
        dbuf_addc(o, (char)((0x80 | (c & 0x3f)) + (letter ? 0x20 : 0)));
        r->c3 = 0;
        return;
    }
    if (c >= 'A' && c <= 'Z') {
        c = (unsigned char)(c + 32);
    } else if (r->c3 && c >= 0x80 && c <= 0x9E && c != 0x97) {
        c = (unsigned char)(c + 0x20);
    }
    r->c3 = c == 0xC3;
    dbuf_addc(o, (char)c);
}

static int ref_b64(unsigned char c)
{
    const char *al = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = c ? strchr(al, c) : NULL;
    return p ? (int)(p - al) : -1;
}

static int ref_hex(unsigned char c)
{
    const char *p = c ? strchr("0123456789ABCDEF", c >= 'a' && c <= 'f' ? c - 32 : c) : NULL;
    return p ? (int)(p - "0123456789ABCDEF") : -1;
}

static void ref_byte(ref *r, unsigned char c, dbuf *o)
{
    if (r->enc == MIME_ENC_BASE64) {
        if (c == '=' && r->nbits >= 2) {
            ref_out(r, (unsigned char)(r->bits >> (r->nbits == 2 ? 4 : 10)), o);
            if (r->nbits == 3) {
                ref_out(r, (unsigned char)(r->bits >> 2), o);
            }
            r->bits = 0;
            r->nbits = 0;
        } else if (ref_b64(c) >= 0) {
            r->bits = (r->bits << 6) | (uint32_t)ref_b64(c);
            if (++r->nbits == 4) {
                ref_out(r, (unsigned char)(r->bits >> 16), o);
                ref_out(r, (unsigned char)(r->bits >> 8), o);
                ref_out(r, (unsigned char)r->bits, o);
                r->bits = 0;
                r->nbits = 0;
            }
        }
        return;
    }
    if (r->enc == MIME_ENC_QP && (r->nqp || c == '=')) {
        r->qp[r->nqp++] = (char)c;
        if (r->nqp == 2 && c == '\n') {
            r->nqp = 0;                 /* "=\n" */
        } else if (r->nqp == 3) {
            r->nqp = 0;
            if (r->qp[1] == '\r' && r->qp[2] == '\n') {
                return;                 /* "=\r\n" */
            }
            int h = ref_hex((unsigned char)r->qp[1]), l = ref_hex((unsigned char)r->qp[2]);
            if (h >= 0 && l >= 0) {
                ref_out(r, (unsigned char)(h * 16 + l), o);
            } else {
                for (int k = 0; k < 3; k++) {
                    ref_out(r, (unsigned char)r->qp[k], o);
                }
            }
        }
        return;
    }
    ref_out(r, c, o);
}

/* Decodes in[0..n) with both, cut at the given slice lengths (cycled). */
static int same_as_ref(int enc, int cs, const unsigned char *in, size_t n, const size_t *cuts, size_t ncuts)
{
    mime_decoder d;
    mime_decoder_init(&d, enc, cs);
    ref r = {enc, cs, 0, 0, {0}, 0, 0};
    dbuf a = {0}, b = {0};
    size_t o = 0, k = 0;
    while (o < n) {
        size_t len = cuts[k++ % ncuts];
        len = len > n - o ? n - o : len;
        mime_decode(&d, (const char *)in + o, len, &a);
        for (size_t i = 0; i < len; i++) {
            ref_byte(&r, in[o + i], &b);
        }
        o += len;
    }
    int same = a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
    if (!same) {
        fprintf(stderr, "enc %d cs %d n %zu: %zu bytes out, reference %zu\n", enc, cs, n, a.len, b.len);
    }
    dbuf_free(&a);
    dbuf_free(&b);
    return same;
}

/* Every ASCII byte, in every alignment to the eight-byte steps. */
static void test_ascii_fold(void)
{
    unsigned char in[200];
    for (int shift = 0; shift < 8; shift++) {
        size_t n = 0;
        for (int k = 0; k < shift; k++) {
            in[n++] = 'x';
        }
        for (int c = 0; c < 128; c++) {
            in[n++] = (unsigned char)c;
        }
        mime_decoder d;
        mime_decoder_init(&d, MIME_ENC_PLAIN, MIME_CS_UTF8);
        dbuf o = {0};
        mime_decode(&d, (const char *)in, n, &o);
        int ok = o.len == n;
        for (size_t i = 0; ok && i < n; i++) {
            unsigned char want = in[i] >= 'A' && in[i] <= 'Z' ? (unsigned char)(in[i] + 32) : in[i];
            ok = (unsigned char)o.p[i] == want;
        }
        CHECK(ok);
        dbuf_free(&o);
    }
}

static void check_whole(int enc, int cs, const char *in, const char *want)
{
    mime_decoder d;
    mime_decoder_init(&d, enc, cs);
    dbuf o = {0};
    mime_decode(&d, in, strlen(in), &o);
    CHECK_EQ_STR(o.p ? o.p : "", want);
    dbuf_free(&o);
}

static void test_fixed(void)
{
    /* Long runs, so the eight-byte path and its hand-over meet C3 folding. */
    check_whole(MIME_ENC_PLAIN, MIME_CS_UTF8, "ABCDEFGHIJKLMNOP\xc3\x89TUDE \xc3\x97 ZZZZZZZZ",
                "abcdefghijklmnop\xc3\xa9tude \xc3\x97 zzzzzzzz");
    check_whole(MIME_ENC_QP, MIME_CS_LATIN1, "STRA=DFE UND GR=DCNKOHL M=C4RZ ODER =D7 SO", "stra\xc3\x9f" "e und gr"
                "\xc3\xbcnkohl m\xc3\xa4rz oder \xc3\x97 so");
    check_whole(MIME_ENC_QP, MIME_CS_UTF8, "ZANZI=\r\nBARITE ZANZI=\nBARITE =3D=3d =G1",
                "zanzibarite zanzibarite == =g1");
    check_whole(MIME_ENC_BASE64, MIME_CS_UTF8, "WkFOWklCQVJJVEUgw5xCRVI=", "zanzibarite \xc3\xbc" "ber");
    /* C3 at the end of one slice, its second byte in the next. */
    mime_decoder d;
    mime_decoder_init(&d, MIME_ENC_PLAIN, MIME_CS_UTF8);
    dbuf o = {0};
    mime_decode(&d, "ABCDEFGHIJKLMNOPQRS\xc3", 20, &o);
    mime_decode(&d, "\x89" "COLE", 5, &o);
    CHECK_EQ_STR(o.p, "abcdefghijklmnopqrs\xc3\xa9" "cole");
    /* More output than one staging block: 3,000 Latin-1 bytes become 6,000. */
    unsigned char big[3000];
    memset(big, 0xC9, sizeof big);
    dbuf_reset(&o);
    mime_decoder_init(&d, MIME_ENC_PLAIN, MIME_CS_LATIN1);
    mime_decode(&d, (const char *)big, sizeof big, &o);
    int ok = o.len == 6000;
    for (size_t i = 0; ok && i < o.len; i += 2) {
        ok = (unsigned char)o.p[i] == 0xC3 && (unsigned char)o.p[i + 1] == 0xA9;
    }
    CHECK(ok);
    /* Headers: plain text between encoded words goes through the same
     * staging; the order of the pieces must hold. */
    dbuf_reset(&o);
    const char *h = "RE: =?utf-8?q?J=C3=9CRGEN?= =?ISO-8859-1?Q?M=DCLLER?= SAYS =?x?q?A?= =ZZ \xc3\x9c" "BER";
    mime_decode_header(h, strlen(h), &o);
    CHECK_EQ_STR(o.p, "re: j\xc3\xbcrgenm\xc3\xbcller says a =zz \xc3\xbc" "ber");
    dbuf_free(&o);
}

/* Random text (letters, 8-bit bytes, '=', line ends, base64 alphabet)
 * under every decoder, cut at random slice lengths. */
static void test_random(void)
{
    static const char pick[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\r\n \t_?";
    unsigned char in[6000];
    srand(4);
    int bad = 0;
    for (int it = 0; it < 3000; it++) {
        size_t n = (size_t)(rand() % (int)sizeof in);
        int ascii_run = rand() % 2;
        for (size_t i = 0; i < n; i++) {
            int r = rand() % 16;
            if (ascii_run && r < 12) {
                in[i] = (unsigned char)("ZANZIBARITE zanzibarite"[rand() % 23]);
            } else if (r < 13) {
                in[i] = (unsigned char)(0x80 + rand() % 0x80);
            } else if (r == 13) {
                in[i] = 0xC3;
            } else {
                in[i] = (unsigned char)pick[rand() % (int)(sizeof pick - 1)];
            }
        }
        size_t cuts[4];
        for (int k = 0; k < 4; k++) {
            cuts[k] = 1 + (size_t)(rand() % (k < 2 ? 9 : 3000));
        }
        bad += !same_as_ref(rand() % 3, rand() % 2, in, n, cuts, 4);
        /* mime_fold_utf8 (search strings, header names): the plain rules. */
        dbuf a = {0}, b = {0};
        ref r = {MIME_ENC_PLAIN, MIME_CS_UTF8, 0, 0, {0}, 0, 0};
        mime_fold_utf8((const char *)in, n, &a);
        for (size_t i = 0; i < n; i++) {
            ref_byte(&r, in[i], &b);
        }
        bad += a.len != b.len || (a.len && memcmp(a.p, b.p, a.len));
        dbuf_free(&a);
        dbuf_free(&b);
    }
    CHECK_EQ_INT(bad, 0);
}

int main(void)
{
    test_ascii_fold();
    test_fixed();
    test_random();
    return unit_done("test_decode");
}
