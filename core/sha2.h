/*
 * sha2.h -- SHA-256, SHA-512, HMAC-SHA-256 and PBKDF2-HMAC-SHA-256.
 *
 * Written here rather than linked so the binary needs nothing but libc at
 * run time (no libcrypt, no OpenSSL on the smallest boards). Portable C11:
 * words are assembled byte by byte, so the host's endianness and alignment
 * never matter.
 *
 * Streaming use: *_init, any number of *_update, then *_final, which writes
 * the digest and wipes the context (it held key-dependent state). A context
 * may be copied by assignment to fork a computation (PBKDF2 does this).
 *
 * Nothing here allocates, fails or touches the OS, except sha256_pbkdf2,
 * which refuses bad arguments.
 */
#ifndef SHA2_H
#define SHA2_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN 32    /* FIPS 180-4 output size */
#define SHA256_BLOCK_LEN  64    /* compression-function input; HMAC pads keys to it */
#define SHA512_DIGEST_LEN 64
#define SHA512_BLOCK_LEN  128

typedef struct sha256_ctx {
    uint32_t h[8];                  /* chaining state */
    uint64_t len;                   /* bytes hashed so far; the padding encodes it in bits */
    uint8_t buf[SHA256_BLOCK_LEN];  /* partial block waiting for more input */
    size_t buflen;                  /* bytes used in buf, always < SHA256_BLOCK_LEN */
} sha256_ctx;

typedef struct sha512_ctx {
    uint64_t h[8];                  /* chaining state */
    uint64_t len;                   /* bytes hashed so far (2^64 bytes is enough for us) */
    uint8_t buf[SHA512_BLOCK_LEN];  /* partial block waiting for more input */
    size_t buflen;                  /* bytes used in buf, always < SHA512_BLOCK_LEN */
} sha512_ctx;

typedef struct sha256_hmac_ctx {
    sha256_ctx inner;   /* H(K ^ ipad || ...) in progress */
    sha256_ctx outer;   /* H(K ^ opad) with the key block already absorbed */
} sha256_hmac_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t n);
void sha256_final(sha256_ctx *c, uint8_t out[SHA256_DIGEST_LEN]);
void sha256(const void *data, size_t n, uint8_t out[SHA256_DIGEST_LEN]);

void sha512_init(sha512_ctx *c);
void sha512_update(sha512_ctx *c, const void *data, size_t n);
void sha512_final(sha512_ctx *c, uint8_t out[SHA512_DIGEST_LEN]);
void sha512(const void *data, size_t n, uint8_t out[SHA512_DIGEST_LEN]);

/* HMAC-SHA-256 (RFC 2104); keys of any length. */
void sha256_hmac_init(sha256_hmac_ctx *c, const void *key, size_t klen);
void sha256_hmac_update(sha256_hmac_ctx *c, const void *data, size_t n);
void sha256_hmac_final(sha256_hmac_ctx *c, uint8_t out[SHA256_DIGEST_LEN]);
void sha256_hmac(const void *key, size_t klen, const void *data, size_t n,
                 uint8_t out[SHA256_DIGEST_LEN]);

/* PBKDF2 (RFC 8018) with HMAC-SHA-256, as SCRAM-SHA-256 (RFC 7677) uses it.
 * Writes dklen bytes to out. Returns 0, or -1 if iterations is 0 or dklen
 * is 0 or too large for the 32-bit block counter. */
int sha256_pbkdf2(const void *pass, size_t plen, const void *salt, size_t slen,
                  uint32_t iterations, uint8_t *out, size_t dklen);

/* 1 if the n bytes at a and b are equal, 0 if not, in time that depends
 * only on n: for comparing digests and MACs an attacker is probing. */
int sha2_equal(const void *a, const void *b, size_t n);

/* Overwrite n bytes with zeros in a way the compiler may not drop, for
 * passwords and keys on the stack. */
void sha2_wipe(void *p, size_t n);

#endif
