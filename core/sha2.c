/*
 * sha2.c -- SHA-256 and SHA-512 (FIPS 180-4), HMAC (RFC 2104), PBKDF2
 * (RFC 8018). Straightforward rolled loops: on the boards we target the
 * password hashes run a few thousand compressions per login, and the
 * smaller code matters more than the last 20% of speed.
 */
#include <stdint.h>
#include <string.h>

#include "sha2.h"

/* Big-endian loads and stores byte by byte, so neither the host's byte
 * order nor its alignment rules matter. */
static uint32_t load32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void store32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint64_t load64(const uint8_t *p)
{
    return ((uint64_t)load32(p) << 32) | load32(p + 4);
}

static void store64(uint8_t *p, uint64_t v)
{
    store32(p, (uint32_t)(v >> 32));
    store32(p + 4, (uint32_t)v);
}

void sha2_wipe(void *p, size_t n)
{
    /* A plain memset of a buffer that is about to die is a dead store the
     * optimizer may delete; writing through a volatile pointer is not. */
    volatile uint8_t *v = p;
    while (n--) {
        *v++ = 0;
    }
}

int sha2_equal(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    uint8_t diff = 0;
    size_t i;

    /* No early exit: the time must not say how many leading bytes of a
     * guess were right. */
    for (i = 0; i < n; i++) {
        diff |= (uint8_t)(x[i] ^ y[i]);
    }
    return diff == 0;
}

/* ---- SHA-256 ---- */

static const uint32_t k256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t ror32(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

static void sha256_block(sha256_ctx *c, const uint8_t *p)
{
    uint32_t w[64], a, b, cc, d, e, f, g, h, t1, t2;
    int i;

    for (i = 0; i < 16; i++) {
        w[i] = load32(p + 4 * i);
    }
    for (i = 16; i < 64; i++) {
        uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    /* FIPS 180-4's working variables a..h in locals, not an array, so
     * they can live in registers (twice as fast); cc because c is taken. */
    a = c->h[0]; b = c->h[1]; cc = c->h[2]; d = c->h[3];
    e = c->h[4]; f = c->h[5]; g = c->h[6]; h = c->h[7];
    for (i = 0; i < 64; i++) {
        t1 = h + (ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25)) + ((e & f) ^ (~e & g)) + k256[i] + w[i];
        t2 = (ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22)) + ((a & b) ^ (a & cc) ^ (b & cc));
        h = g; g = f; f = e; e = d + t1;
        d = cc; cc = b; b = a; a = t1 + t2;
    }
    c->h[0] += a; c->h[1] += b; c->h[2] += cc; c->h[3] += d;
    c->h[4] += e; c->h[5] += f; c->h[6] += g; c->h[7] += h;
}

void sha256_init(sha256_ctx *c)
{
    static const uint32_t iv[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    };
    memcpy(c->h, iv, sizeof iv);
    c->len = 0;
    c->buflen = 0;
}

void sha256_update(sha256_ctx *c, const void *data, size_t n)
{
    const uint8_t *p = data;

    c->len += n;
    while (n > 0) {
        size_t take = SHA256_BLOCK_LEN - c->buflen;
        if (take > n) {
            take = n;
        }
        /* Whole blocks straight from the input save a copy; a partial one
         * waits in buf. */
        if (c->buflen == 0 && take == SHA256_BLOCK_LEN) {
            sha256_block(c, p);
        } else {
            memcpy(c->buf + c->buflen, p, take);
            c->buflen += take;
            if (c->buflen < SHA256_BLOCK_LEN) {
                break;
            }
            sha256_block(c, c->buf);
            c->buflen = 0;
        }
        p += take;
        n -= take;
    }
}

void sha256_final(sha256_ctx *c, uint8_t out[SHA256_DIGEST_LEN])
{
    uint64_t bits = c->len << 3;
    int i;

    c->buf[c->buflen++] = 0x80;
    /* No room for the 8-byte length: pad out this block and use another. */
    if (c->buflen > SHA256_BLOCK_LEN - 8) {
        memset(c->buf + c->buflen, 0, SHA256_BLOCK_LEN - c->buflen);
        sha256_block(c, c->buf);
        c->buflen = 0;
    }
    memset(c->buf + c->buflen, 0, SHA256_BLOCK_LEN - 8 - c->buflen);
    store64(c->buf + SHA256_BLOCK_LEN - 8, bits);
    sha256_block(c, c->buf);
    for (i = 0; i < 8; i++) {
        store32(out + 4 * i, c->h[i]);
    }
    sha2_wipe(c, sizeof *c);
}

void sha256(const void *data, size_t n, uint8_t out[SHA256_DIGEST_LEN])
{
    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, data, n);
    sha256_final(&c, out);
}

/* ---- SHA-512 ---- */

static const uint64_t k512[80] = {
    0x428a2f98d728ae22ULL, 0x7137449123ef65cdULL, 0xb5c0fbcfec4d3b2fULL, 0xe9b5dba58189dbbcULL,
    0x3956c25bf348b538ULL, 0x59f111f1b605d019ULL, 0x923f82a4af194f9bULL, 0xab1c5ed5da6d8118ULL,
    0xd807aa98a3030242ULL, 0x12835b0145706fbeULL, 0x243185be4ee4b28cULL, 0x550c7dc3d5ffb4e2ULL,
    0x72be5d74f27b896fULL, 0x80deb1fe3b1696b1ULL, 0x9bdc06a725c71235ULL, 0xc19bf174cf692694ULL,
    0xe49b69c19ef14ad2ULL, 0xefbe4786384f25e3ULL, 0x0fc19dc68b8cd5b5ULL, 0x240ca1cc77ac9c65ULL,
    0x2de92c6f592b0275ULL, 0x4a7484aa6ea6e483ULL, 0x5cb0a9dcbd41fbd4ULL, 0x76f988da831153b5ULL,
    0x983e5152ee66dfabULL, 0xa831c66d2db43210ULL, 0xb00327c898fb213fULL, 0xbf597fc7beef0ee4ULL,
    0xc6e00bf33da88fc2ULL, 0xd5a79147930aa725ULL, 0x06ca6351e003826fULL, 0x142929670a0e6e70ULL,
    0x27b70a8546d22ffcULL, 0x2e1b21385c26c926ULL, 0x4d2c6dfc5ac42aedULL, 0x53380d139d95b3dfULL,
    0x650a73548baf63deULL, 0x766a0abb3c77b2a8ULL, 0x81c2c92e47edaee6ULL, 0x92722c851482353bULL,
    0xa2bfe8a14cf10364ULL, 0xa81a664bbc423001ULL, 0xc24b8b70d0f89791ULL, 0xc76c51a30654be30ULL,
    0xd192e819d6ef5218ULL, 0xd69906245565a910ULL, 0xf40e35855771202aULL, 0x106aa07032bbd1b8ULL,
    0x19a4c116b8d2d0c8ULL, 0x1e376c085141ab53ULL, 0x2748774cdf8eeb99ULL, 0x34b0bcb5e19b48a8ULL,
    0x391c0cb3c5c95a63ULL, 0x4ed8aa4ae3418acbULL, 0x5b9cca4f7763e373ULL, 0x682e6ff3d6b2b8a3ULL,
    0x748f82ee5defb2fcULL, 0x78a5636f43172f60ULL, 0x84c87814a1f0ab72ULL, 0x8cc702081a6439ecULL,
    0x90befffa23631e28ULL, 0xa4506cebde82bde9ULL, 0xbef9a3f7b2c67915ULL, 0xc67178f2e372532bULL,
    0xca273eceea26619cULL, 0xd186b8c721c0c207ULL, 0xeada7dd6cde0eb1eULL, 0xf57d4f7fee6ed178ULL,
    0x06f067aa72176fbaULL, 0x0a637dc5a2c898a6ULL, 0x113f9804bef90daeULL, 0x1b710b35131c471bULL,
    0x28db77f523047d84ULL, 0x32caab7b40c72493ULL, 0x3c9ebe0a15c9bebcULL, 0x431d67c49c100d4cULL,
    0x4cc5d4becb3e42b6ULL, 0x597f299cfc657e2aULL, 0x5fcb6fab3ad6faecULL, 0x6c44198c4a475817ULL,
};

static uint64_t ror64(uint64_t x, unsigned n)
{
    return (x >> n) | (x << (64 - n));
}

static void sha512_block(sha512_ctx *c, const uint8_t *p)
{
    uint64_t w[80], a, b, cc, d, e, f, g, h, t1, t2;
    int i;

    for (i = 0; i < 16; i++) {
        w[i] = load64(p + 8 * i);
    }
    for (i = 16; i < 80; i++) {
        uint64_t s0 = ror64(w[i - 15], 1) ^ ror64(w[i - 15], 8) ^ (w[i - 15] >> 7);
        uint64_t s1 = ror64(w[i - 2], 19) ^ ror64(w[i - 2], 61) ^ (w[i - 2] >> 6);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = c->h[0]; b = c->h[1]; cc = c->h[2]; d = c->h[3];
    e = c->h[4]; f = c->h[5]; g = c->h[6]; h = c->h[7];
    for (i = 0; i < 80; i++) {
        t1 = h + (ror64(e, 14) ^ ror64(e, 18) ^ ror64(e, 41)) + ((e & f) ^ (~e & g)) + k512[i] + w[i];
        t2 = (ror64(a, 28) ^ ror64(a, 34) ^ ror64(a, 39)) + ((a & b) ^ (a & cc) ^ (b & cc));
        h = g; g = f; f = e; e = d + t1;
        d = cc; cc = b; b = a; a = t1 + t2;
    }
    c->h[0] += a; c->h[1] += b; c->h[2] += cc; c->h[3] += d;
    c->h[4] += e; c->h[5] += f; c->h[6] += g; c->h[7] += h;
}

void sha512_init(sha512_ctx *c)
{
    static const uint64_t iv[8] = {
        0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
        0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
    };
    memcpy(c->h, iv, sizeof iv);
    c->len = 0;
    c->buflen = 0;
}

void sha512_update(sha512_ctx *c, const void *data, size_t n)
{
    const uint8_t *p = data;

    c->len += n;
    while (n > 0) {
        size_t take = SHA512_BLOCK_LEN - c->buflen;
        if (take > n) {
            take = n;
        }
        if (c->buflen == 0 && take == SHA512_BLOCK_LEN) {
            sha512_block(c, p);
        } else {
            memcpy(c->buf + c->buflen, p, take);
            c->buflen += take;
            if (c->buflen < SHA512_BLOCK_LEN) {
                break;
            }
            sha512_block(c, c->buf);
            c->buflen = 0;
        }
        p += take;
        n -= take;
    }
}

void sha512_final(sha512_ctx *c, uint8_t out[SHA512_DIGEST_LEN])
{
    int i;

    c->buf[c->buflen++] = 0x80;
    /* The length field is 128 bits; its top 64 bits hold only the three
     * bits shifted out of the byte count. */
    if (c->buflen > SHA512_BLOCK_LEN - 16) {
        memset(c->buf + c->buflen, 0, SHA512_BLOCK_LEN - c->buflen);
        sha512_block(c, c->buf);
        c->buflen = 0;
    }
    memset(c->buf + c->buflen, 0, SHA512_BLOCK_LEN - 16 - c->buflen);
    store64(c->buf + SHA512_BLOCK_LEN - 16, c->len >> 61);
    store64(c->buf + SHA512_BLOCK_LEN - 8, c->len << 3);
    sha512_block(c, c->buf);
    for (i = 0; i < 8; i++) {
        store64(out + 8 * i, c->h[i]);
    }
    sha2_wipe(c, sizeof *c);
}

void sha512(const void *data, size_t n, uint8_t out[SHA512_DIGEST_LEN])
{
    sha512_ctx c;
    sha512_init(&c);
    sha512_update(&c, data, n);
    sha512_final(&c, out);
}

/* ---- HMAC-SHA-256 ---- */

void sha256_hmac_init(sha256_hmac_ctx *c, const void *key, size_t klen)
{
    uint8_t k[SHA256_BLOCK_LEN], pad[SHA256_BLOCK_LEN];
    size_t i;

    /* RFC 2104: a key longer than a block is replaced by its hash; a
     * shorter one is zero-padded to a block. */
    memset(k, 0, sizeof k);
    if (klen > SHA256_BLOCK_LEN) {
        sha256(key, klen, k);
    } else if (klen > 0) {
        memcpy(k, key, klen);
    }
    for (i = 0; i < sizeof pad; i++) {
        pad[i] = k[i] ^ 0x36;
    }
    sha256_init(&c->inner);
    sha256_update(&c->inner, pad, sizeof pad);
    for (i = 0; i < sizeof pad; i++) {
        pad[i] = k[i] ^ 0x5c;
    }
    sha256_init(&c->outer);
    sha256_update(&c->outer, pad, sizeof pad);
    sha2_wipe(k, sizeof k);
    sha2_wipe(pad, sizeof pad);
}

void sha256_hmac_update(sha256_hmac_ctx *c, const void *data, size_t n)
{
    sha256_update(&c->inner, data, n);
}

void sha256_hmac_final(sha256_hmac_ctx *c, uint8_t out[SHA256_DIGEST_LEN])
{
    uint8_t ih[SHA256_DIGEST_LEN];

    sha256_final(&c->inner, ih);
    sha256_update(&c->outer, ih, sizeof ih);
    sha256_final(&c->outer, out);
    sha2_wipe(ih, sizeof ih);
}

void sha256_hmac(const void *key, size_t klen, const void *data, size_t n,
                 uint8_t out[SHA256_DIGEST_LEN])
{
    sha256_hmac_ctx c;
    sha256_hmac_init(&c, key, klen);
    sha256_hmac_update(&c, data, n);
    sha256_hmac_final(&c, out);
}

/* ---- PBKDF2-HMAC-SHA-256 ---- */

int sha256_pbkdf2(const void *pass, size_t plen, const void *salt, size_t slen,
                  uint32_t iterations, uint8_t *out, size_t dklen)
{
    sha256_hmac_ctx keyed, c;
    uint8_t u[SHA256_DIGEST_LEN], t[SHA256_DIGEST_LEN], ctr[4];
    uint32_t block, it;
    size_t i, take;

    /* RFC 8018 5.2: dkLen may not exceed (2^32 - 1) * hLen. */
    if (iterations == 0 || dklen == 0
        || (dklen - 1) / SHA256_DIGEST_LEN >= 0xffffffffUL) {
        return -1;
    }
    /* Key the HMAC once and copy the state for every use: each iteration
     * then costs two compressions instead of four. */
    sha256_hmac_init(&keyed, pass, plen);
    for (block = 1; dklen > 0; block++) {
        store32(ctr, block);
        c = keyed;
        sha256_hmac_update(&c, salt, slen);
        sha256_hmac_update(&c, ctr, sizeof ctr);
        sha256_hmac_final(&c, u);
        memcpy(t, u, sizeof t);
        for (it = 1; it < iterations; it++) {
            c = keyed;
            sha256_hmac_update(&c, u, sizeof u);
            sha256_hmac_final(&c, u);
            for (i = 0; i < sizeof t; i++) {
                t[i] ^= u[i];
            }
        }
        take = dklen < sizeof t ? dklen : sizeof t;
        memcpy(out, t, take);
        out += take;
        dklen -= take;
    }
    sha2_wipe(&keyed, sizeof keyed);
    sha2_wipe(u, sizeof u);
    sha2_wipe(t, sizeof t);
    return 0;
}
