/* test_binary.c -- the FETCH BINARY decoders (core/binary.c): every input
 * is decoded whole and again split at every byte boundary into two slices
 * and byte by byte, since FETCH feeds them store slices of any size and
 * each escape, padding run and soft break may straddle two. */
#include "binary.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

/* Decode src in slices of `step` bytes (0: two slices split at `cut`). */
static size_t run(int enc, const char *src, size_t n, size_t step, size_t cut, char *out)
{
    bin_dec d;
    bin_init(&d, enc);
    size_t o = 0;
    char tmp[512 + BIN_SLACK];
    for (size_t i = 0; i < n;) {
        size_t k = step ? step : (i == 0 ? cut : n - i);
        if (k > n - i) {
            k = n - i;
        }
        size_t w = bin_decode(&d, src + i, k, tmp);
        CHECK(w <= k + BIN_SLACK);
        memcpy(out + o, tmp, w);
        o += w;
        i += k;
    }
    o += bin_finish(&d, out + o);
    return o;
}

static void check(int enc, const char *src, const char *want, size_t wn)
{
    size_t n = strlen(src);
    char out[1024];
    size_t o = run(enc, src, n, n ? n : 1, 0, out);
    CHECK(o == wn && memcmp(out, want, wn) == 0);
    o = run(enc, src, n, 1, 0, out);
    CHECK(o == wn && memcmp(out, want, wn) == 0);
    for (size_t cut = 1; cut < n; cut++) {
        o = run(enc, src, n, 0, cut, out);
        if (!(o == wn && memcmp(out, want, wn) == 0)) {
            fprintf(stderr, "split at %zu: got %zu bytes \"%.*s\"\n", cut, o, (int)o, out);
            CHECK(0);
        }
    }
}

int main(void)
{
    CHECK_EQ_INT(bin_cte(NULL, 0), BIN_IDENT);
    CHECK_EQ_INT(bin_cte(" 7BIT ", 6), BIN_IDENT);
    CHECK_EQ_INT(bin_cte("8bit", 4), BIN_IDENT);
    CHECK_EQ_INT(bin_cte("Binary", 6), BIN_IDENT);
    CHECK_EQ_INT(bin_cte("Base64", 6), BIN_BASE64);
    CHECK_EQ_INT(bin_cte("quoted-printable", 16), BIN_QP);
    CHECK_EQ_INT(bin_cte("x-uuencode", 10), BIN_UNKNOWN);
    CHECK_EQ_INT(bin_cte("base64x", 7), BIN_UNKNOWN);

    /* base64: line breaks and strays skipped, padding ends a quantum. */
    check(BIN_BASE64, "aGVsbG8g\r\nd29y\r\nbGQ=\r\n", "hello world", 11);
    check(BIN_BASE64, "AAEC/w==", "\x00\x01\x02\xff", 4);
    check(BIN_BASE64, "YQ==YWI=", "aab", 3);
    check(BIN_BASE64, "Y W\tJ j", "abc", 3);
    check(BIN_BASE64, "", "", 0);

    /* quoted-printable (RFC 2045 6.7). */
    check(BIN_QP, "a=3Db=3d=C3=BC", "a=b=\xc3\xbc", 6);
    check(BIN_QP, "soft=\r\nbreak", "softbreak", 9);
    check(BIN_QP, "pad= \t \r\nded", "padded", 6);
    check(BIN_QP, "bare=\nLF", "bareLF", 6);
    check(BIN_QP, "trail  \t\r\nnext  ", "trail\r\nnext", 11);
    check(BIN_QP, "in  the middle", "in  the middle", 14);
    check(BIN_QP, "bad =ZZ =4\r\n=", "bad =ZZ =4\r\n=", 13);
    check(BIN_QP, "end=4", "end=4", 5);
    check(BIN_QP, "eq= x", "eq= x", 5);
    check(BIN_QP, "", "", 0);

    /* Identity. */
    check(BIN_IDENT, "as =3D is\r\n", "as =3D is\r\n", 11);

    /* More whitespace than is held back: passed through, never lost. */
    char ws[200], want[200];
    memset(ws, ' ', 150);
    ws[150] = 'x';
    ws[151] = 0;
    memcpy(want, ws, 152);
    check(BIN_QP, ws, want, 151);
    return unit_done("test_binary");
}
