/*
 * fuzz_passwd.c -- arbitrary passwd-file text and credentials into
 * pw_verify / pw_user_exists, plus base64 round trips.
 *
 * Input layout: [ulen][plen][mode] user pass rest
 *   ulen, plen   lengths of the user and password (mod 32 / mod 300, so
 *                the PW_PASS_MAX edge is reachable)
 *   mode         0: rest is the whole file text
 *                otherwise: the file is one of the well-formed lines below
 *                with rest spliced in at a position mode picks, so the
 *                fuzzer starts from every scheme without a seed corpus
 * Every piece is copied into its own exact-size heap block, so reading one
 * byte past a length is an ASan report, not a silent read of the next piece.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "passwd.h"

static const char *const templates[] = {
    "u:{PLAIN}pw\n",
    "u:{CLEARTEXT}pw:1000:1000::/home/u:/bin/sh\n",
    "u:{SHA512-CRYPT}$6$Hyv4edSd0N461GQY$SEIilUuZCMMRvmaCZrh6J1e2zsBP/zS8uEm4wINADc54TdNT9xzevne3"
    "M5yhXleZFgAFy429XbzkMWgtVZXzL1\n",
    "u:{SHA256-CRYPT}$5$rounds=1000$yAp9cMATUCHEKcGI$LZ74mmO/wiDveiwZkRi.st5QXKpllunc1Df/mpO.aZ7\n",
    "u:$6$rounds=1000$short$x\n",
    "u:{SHA256}SEhuFRToQjRv9AWx5F9EBZroJhnyMG+Z0JQNyzhukfc=\n",
    "u:{SHA512}c72bb621c7040cf4b6474063a9a7972690e252f35adbe7cfaff5b1ee2316efe7382e723d41e013"
    "a2bfbc33c3007c50c5847d21a889cce838536eac727808de40\n",
    "u:{SSHA256}q356oq8yVUmEBroUVJn//Eelj7bNddWjPuJ7tDlYDnmnVfDk\n",
    "u:{SSHA512}FV97JsH28WVLMlw9SNjRYxM7jzbIosXQVNQgkpqVcQeV+MlflW6emBLVrRxj9naVG1PEo3W8y8Otw"
    "VGJ3o0GNEgz9sc=\n",
    "# comment\n\nal:{PLAIN}a\r\nu:{crypt}$5$s$x\n",
};

/* Rounds counts above this make one input take seconds under ASan; the
 * code path is the same as for small counts, so skip them. */
#define FUZZ_ROUNDS_MAX 20000

static int too_slow(const char *t, size_t n)
{
    size_t i;
    for (i = 0; i + 7 <= n; i++) {
        if (memcmp(t + i, "rounds=", 7) == 0) {
            unsigned long r = 0;
            size_t d = i + 7;
            while (d < n && t[d] >= '0' && t[d] <= '9' && r <= FUZZ_ROUNDS_MAX) {
                r = r * 10 + (unsigned long)(t[d] - '0');
                d++;
            }
            if (r > FUZZ_ROUNDS_MAX) {
                return 1;
            }
        }
    }
    return 0;
}

static char *dup_exact(const void *p, size_t n)
{
    /* malloc(0) may return NULL; one byte keeps the pointer valid while
     * the length still says zero. */
    char *q = malloc(n ? n : 1);
    if (q != NULL && n > 0) {
        memcpy(q, p, n);
    }
    return q;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t ulen, plen, rlen, tlen;
    const uint8_t *rest;
    char *user, *pass, *text;
    int v, e;

    if (size < 3) {
        return 0;
    }
    ulen = data[0] % 32;
    plen = ((size_t)data[1] * 3) % 300;
    if (ulen + plen > size - 3) {
        plen = 0;
        if (ulen > size - 3) {
            ulen = size - 3;
        }
    }
    rest = data + 3 + ulen + plen;
    rlen = size - 3 - ulen - plen;

    if (data[2] == 0) {
        text = dup_exact(rest, rlen);
        tlen = rlen;
    } else {
        const char *t = templates[data[2] % (sizeof templates / sizeof templates[0])];
        size_t tl = strlen(t), at = (size_t)(data[2] >> 4) * tl / 16;
        tlen = tl + rlen;
        text = malloc(tlen);
        if (text != NULL) {
            memcpy(text, t, at);
            memcpy(text + at, rest, rlen);
            memcpy(text + at + rlen, t + at, tl - at);
        }
    }
    user = dup_exact(data + 3, ulen);
    pass = dup_exact(data + 3 + ulen, plen);
    if (text == NULL || user == NULL || pass == NULL || too_slow(text, tlen)) {
        free(text);
        free(user);
        free(pass);
        return 0;
    }

    v = pw_verify(text, tlen, user, ulen, pass, plen);
    e = pw_user_exists(text, tlen, user, ulen);
    if ((v != 0 && v != 1) || (e != 0 && e != 1) || (v == 1 && e == 0)) {
        abort();
    }
    /* The template user with the fuzzed password too, so every scheme's
     * checker sees arbitrary passwords, not only unknown users. */
    v = pw_verify(text, tlen, "u", 1, pass, plen);
    if (v == 1 && !pw_user_exists(text, tlen, "u", 1)) {
        abort();
    }

    /* Base64: whatever decodes re-encodes to the same text (strict decoding
     * means one spelling per value), and encoding round-trips. */
    {
        /* Room for decoding the text (3/4 of it) and the round trip (all). */
        size_t cap = tlen + 1;
        uint8_t *bin = malloc(cap);
        char *enc = malloc(B64_ENCODED_LEN(tlen) + 1);
        if (bin != NULL && enc != NULL) {
            int n = b64_decode(text, tlen, bin, cap);
            if (n >= 0) {
                int m = b64_encode(bin, (size_t)n, enc, B64_ENCODED_LEN(tlen) + 1);
                if (m < 0 || (size_t)m != tlen || memcmp(enc, text, tlen) != 0) {
                    abort();
                }
            }
            n = b64_encode(text, tlen, enc, B64_ENCODED_LEN(tlen) + 1);
            if (n < 0 || b64_decode(enc, (size_t)n, bin, cap) != (int)tlen
                || memcmp(bin, text, tlen) != 0) {
                abort();
            }
        }
        free(bin);
        free(enc);
    }

    free(text);
    free(user);
    free(pass);
    return 0;
}
