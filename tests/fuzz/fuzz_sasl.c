/*
 * fuzz_sasl.c -- the SASL decoders: SCRAM-SHA-256 client messages
 * (scram_client_first, scram_client_final), {SCRAM-SHA-256} passwd values
 * (pw_scram_parse, pw_scram_lookup) and the base64 layer every SASL
 * response goes through.
 *
 * Input layout: [mode] a 0xFF b
 *   mode & 3 == 0: a is a client-first-message; if it parses, the server
 *                  answers with fixed keys and b is the client-final-message
 *   mode & 3 == 1: a, b as above, but a is wrapped as "n,,n=u,r=" + a so the
 *                  fuzzer gets deep into client-final quickly, and b is
 *                  first base64-decoded (as off the wire; undecodable b is
 *                  used raw)
 *   mode & 3 == 2: a is a stored {SCRAM-SHA-256} value; b a password
 *   mode & 3 == 3: a is passwd-file text, b a user name for pw_scram_lookup
 * Pieces are copied into exact-size heap blocks so an over-read is an ASan
 * report. Iteration counts are kept small (the parse allows up to 10^6,
 * which would make single inputs take seconds).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "passwd.h"
#include "sasl.h"

static char *dup_exact(const uint8_t *p, size_t n)
{
    char *d = malloc(n ? n : 1);
    if (d && n) {
        memcpy(d, p, n);
    }
    return d;
}

static void fixed_keys(pw_scram *k)
{
    memset(k, 0, sizeof *k);
    k->iter = 4096;
    memcpy(k->salt, "0123456789abcdef", 16);
    k->saltlen = 16;
    for (int i = 0; i < 32; i++) {
        k->stored_key[i] = (uint8_t)i;
        k->server_key[i] = (uint8_t)(255 - i);
    }
}

static void exchange(const char *first, size_t fl, const char *final, size_t nl)
{
    scram_server s;
    memset(&s, 0, sizeof s);
    if (scram_client_first(&s, first, fl) == 0) {
        static const uint8_t rnd[SCRAM_NONCE_BYTES] = {1, 2, 3};
        dbuf out = {0};
        fixed_keys(&s.keys);
        s.have_keys = 1;
        if (scram_server_first(&s, rnd, &out) == 0) {
            int r = scram_client_final(&s, final, nl, &out);
            if (r == 1 && (out.len < 2 || memcmp(out.p, "v=", 2) != 0)) {
                abort();
            }
        }
        dbuf_free(&out);
    }
    scram_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    int mode = data[0] & 3;
    data++;
    size--;
    const uint8_t *sep = memchr(data, 0xFF, size);
    size_t al = sep ? (size_t)(sep - data) : size;
    size_t bl = sep ? size - al - 1 : 0;
    char *a = dup_exact(data, al);
    char *b = dup_exact(sep ? sep + 1 : data + size, bl);
    if (!a || !b) {
        free(a);
        free(b);
        return 0;
    }
    switch (mode) {
    case 0:
        exchange(a, al, b, bl);
        break;
    case 1: {
        size_t wl = 9 + al;
        char *w = malloc(wl);
        if (w) {
            memcpy(w, "n,,n=u,r=", 9);
            memcpy(w + 9, a, al);
            uint8_t *dec = malloc(B64_DECODED_MAX(bl) + 1);
            long dl = dec ? b64_decode(b, bl, dec, B64_DECODED_MAX(bl) + 1) : -1;
            if (dl >= 0) {
                char *d2 = dup_exact(dec, (size_t)dl);
                if (d2) {
                    exchange(w, wl, d2, (size_t)dl);
                }
                free(d2);
            } else {
                exchange(w, wl, b, bl);
            }
            free(dec);
            free(w);
        }
        break;
    }
    case 2: {
        pw_scram k;
        if (pw_scram_parse(a, al, &k) == 0) {
            if (k.iter < 1 || k.saltlen == 0 || k.saltlen > PW_SCRAM_SALT_MAX) {
                abort();
            }
            if (k.iter <= 64) {
                pw_scram c;
                (void)pw_scram_from_pass(b, bl, k.salt, k.saltlen, k.iter, &c);
            }
        }
        break;
    }
    default: {
        static const uint8_t salt[16] = {9};
        pw_scram k;
        /* Text spliced after a SCRAM line so the stored-key path is hit;
         * a {PLAIN} user derives keys with 2 iterations here. */
        (void)pw_scram_lookup(a, al, b, bl, salt, sizeof salt, 2, &k);
        break;
    }
    }
    free(a);
    free(b);
    return 0;
}
