/*
 * b64.c -- base64 encode/decode, see b64.h.
 */
#include <limits.h>
#include <stdint.h>

#include "b64.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Arithmetic on ranges rather than a 256-byte table: smaller, and fine on
 * any ASCII host. */
int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z') {
        return ch - 'A';
    }
    if (ch >= 'a' && ch <= 'z') {
        return ch - 'a' + 26;
    }
    if (ch >= '0' && ch <= '9') {
        return ch - '0' + 52;
    }
    if (ch == '+') {
        return 62;
    }
    if (ch == '/') {
        return 63;
    }
    return -1;
}

int b64_encode(const void *in, size_t n, char *out, size_t outsz)
{
    const unsigned char *p = in;
    size_t need, i, o = 0;

    /* Checked before computing the size so the multiplication cannot wrap. */
    if (n > (size_t)INT_MAX / 4 * 3 - 3) {
        return -1;
    }
    need = B64_ENCODED_LEN(n);
    if (outsz < need + 1) {
        return -1;
    }
    for (i = 0; i + 3 <= n; i += 3) {
        uint32_t v = ((uint32_t)p[i] << 16) | ((uint32_t)p[i + 1] << 8) | p[i + 2];
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = b64_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = ((uint32_t)p[i] << 16) | ((uint32_t)p[i + 1] << 8);
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
    return (int)o;
}

int b64_decode(const char *in, size_t n, void *out, size_t outsz)
{
    unsigned char *q = out;
    size_t i, o = 0, pad = 0;

    if (n % 4 != 0 || n / 4 * 3 > (size_t)INT_MAX) {
        return -1;
    }
    if (n > 0 && in[n - 1] == '=') {
        pad = (in[n - 2] == '=') ? 2 : 1;
    }
    /* Checked up front so a too-small buffer is refused before anything is
     * written, not half way through. */
    if (n / 4 * 3 - pad > outsz) {
        return -1;
    }
    for (i = 0; i < n; i += 4) {
        int last = (i + 4 == n);
        /* Only the final quantum may carry padding; a '=' anywhere else
         * fails b64_value below. */
        size_t chars = last ? 4 - pad : 4;
        uint32_t v = 0;
        size_t j;

        for (j = 0; j < chars; j++) {
            int d = b64_value((unsigned char)in[i + j]);
            if (d < 0) {
                return -1;
            }
            v = (v << 6) | (uint32_t)d;
        }
        v <<= 6 * (4 - chars);
        /* Bits under the padding must be zero, or two spellings would decode
         * to the same bytes. */
        if ((chars == 2 && (v & 0xffff) != 0) || (chars == 3 && (v & 0xff) != 0)) {
            return -1;
        }
        q[o++] = (unsigned char)(v >> 16);
        if (chars >= 3) {
            q[o++] = (unsigned char)(v >> 8);
        }
        if (chars == 4) {
            q[o++] = (unsigned char)v;
        }
    }
    return (int)o;
}
