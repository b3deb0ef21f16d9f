/* fuzz_binary.c -- libFuzzer target for the FETCH BINARY decoders
 * (core/binary.c). The first byte picks the encoding and a slice size;
 * the rest is decoded whole and again slice by slice, as FETCH feeds store
 * slices. Checked: both give the same bytes (the state carried between
 * slices loses and invents nothing), no call writes more than its input
 * plus BIN_SLACK, and the output is never longer than the input. */
#include "config.h"
#include "binary.h"

#include <stdlib.h>
#include <string.h>

static size_t decode(int enc, const char *p, size_t n, size_t step, char *out)
{
    bin_dec d;
    bin_init(&d, enc);
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = n - i < step ? n - i : step;
        size_t w = bin_decode(&d, p + i, k, out + o);
        if (w > k + BIN_SLACK) {
            abort();
        }
        o += w;
        i += k;
    }
    size_t w = bin_finish(&d, out + o);
    if (w > BIN_SLACK) {
        abort();
    }
    return o + w;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 1 || size > 65536) {
        return 0;
    }
    static const int encs[] = {BIN_IDENT, BIN_BASE64, BIN_QP, BIN_QP};
    int enc = encs[data[0] & 3];
    size_t step = (size_t)(data[0] >> 2) + 1;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    char *a = malloc(n + BIN_SLACK + 1), *b = malloc(n + BIN_SLACK + 1);
    if (!a || !b) {
        free(a);
        free(b);
        return 0;
    }
    size_t la = decode(enc, p, n, n ? n : 1, a);
    size_t lb = decode(enc, p, n, step, b);
    if (la != lb || memcmp(a, b, la) != 0 || la > n) {
        abort();
    }
    free(a);
    free(b);
    return 0;
}
