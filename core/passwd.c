/*
 * passwd.c -- passwd-file lookup and the password schemes, see passwd.h.
 *
 * Everything works on (pointer, length) pairs and indexes into them: the
 * file text and the credentials may hold any bytes, NULs included, and
 * nothing here reads past the lengths it was given.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "b64.h"
#include "passwd.h"
#include "sha2.h"

/* Longest salt accepted in {SSHA256}/{SSHA512}. Dovecot writes 4 bytes,
 * other tools 8 or 16; 64 leaves room for any of them while keeping the
 * decode buffer on the stack small. */
#define PW_SSHA_SALT_MAX 64

enum pw_scheme {
    PW_S_PLAIN,         /* the password itself */
    PW_S_CRYPT,         /* $5$ or $6$ */
    PW_S_SHA256_CRYPT,  /* $5$ only */
    PW_S_SHA512_CRYPT,  /* $6$ only */
    PW_S_SHA256,        /* encoded SHA-256(pass) */
    PW_S_SHA512,        /* encoded SHA-512(pass) */
    PW_S_SSHA256,       /* base64(SHA-256(pass || salt) || salt) */
    PW_S_SSHA512,       /* base64(SHA-512(pass || salt) || salt) */
    PW_S_SCRAM_SHA256,  /* iter,b64(salt),b64(StoredKey),b64(ServerKey) */
};

static const struct {
    const char *name;       /* as written between the braces, any case */
    enum pw_scheme scheme;  /* how to check it */
} pw_schemes[] = {
    { "PLAIN", PW_S_PLAIN },
    { "CLEARTEXT", PW_S_PLAIN },
    { "CRYPT", PW_S_CRYPT },
    { "SHA256-CRYPT", PW_S_SHA256_CRYPT },
    { "SHA512-CRYPT", PW_S_SHA512_CRYPT },
    { "SHA256", PW_S_SHA256 },
    { "SHA512", PW_S_SHA512 },
    { "SSHA256", PW_S_SSHA256 },
    { "SSHA512", PW_S_SSHA512 },
    { "SCRAM-SHA-256", PW_S_SCRAM_SHA256 },
};

/* ---- SHA-crypt ---- */

/* SHA-crypt runs the same steps over SHA-256 or SHA-512; this picks one at
 * run time so the algorithm is written once. */
typedef struct pw_hash {
    int is512;              /* 1: SHA-512, 0: SHA-256 */
    union {
        sha256_ctx s256;
        sha512_ctx s512;
    } u;                    /* the context for whichever it is */
} pw_hash;

static void ph_init(pw_hash *h, int is512)
{
    h->is512 = is512;
    if (is512) {
        sha512_init(&h->u.s512);
    } else {
        sha256_init(&h->u.s256);
    }
}

static void ph_update(pw_hash *h, const void *p, size_t n)
{
    if (h->is512) {
        sha512_update(&h->u.s512, p, n);
    } else {
        sha256_update(&h->u.s256, p, n);
    }
}

static void ph_final(pw_hash *h, uint8_t *out)
{
    if (h->is512) {
        sha512_final(&h->u.s512, out);
    } else {
        sha256_final(&h->u.s256, out);
    }
}

/* Feed n bytes of seq, seq, seq, ... (the last copy cut short). The spec's
 * "add B for each block of the password, then the first bytes of B" and
 * its P sequence are both this, and streaming it needs no buffer as long
 * as the password. */
static void ph_update_repeat(pw_hash *h, const uint8_t *seq, size_t seqlen, size_t n)
{
    while (n > 0) {
        size_t take = n < seqlen ? n : seqlen;
        ph_update(h, seq, take);
        n -= take;
    }
}

/* crypt(3)'s own base64 alphabet, which is not RFC 4648's. */
static const char pw_crypt_alphabet[] =
    "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* Append n characters for the 24 bits b2:b1:b0, least significant 6 bits
 * first, as the spec's b64_from_24bit does. */
static size_t pw_crypt_b64(char *out, size_t o, uint8_t b2, uint8_t b1, uint8_t b0, int n)
{
    uint32_t w = ((uint32_t)b2 << 16) | ((uint32_t)b1 << 8) | b0;
    while (n-- > 0) {
        out[o++] = pw_crypt_alphabet[w & 63];
        w >>= 6;
    }
    return o;
}

int pw_sha_crypt(const char *pass, size_t plen, const char *setting, size_t slen,
                 char *out, size_t outsz)
{
    uint8_t a[SHA512_DIGEST_LEN], b[SHA512_DIGEST_LEN];
    uint8_t dp[SHA512_DIGEST_LEN], ds[SHA512_DIGEST_LEN];
    char res[PW_SHA_CRYPT_MAX];
    pw_hash h;
    size_t pos, saltlen, hl, i, o;
    const char *salt;
    unsigned long rounds = PW_CRYPT_ROUNDS_DEFAULT, r;
    int is512, custom = 0, n;

    if (plen > PW_PASS_MAX || slen < 3 || setting[0] != '$' || setting[2] != '$') {
        return -1;
    }
    if (setting[1] == '6') {
        is512 = 1;
    } else if (setting[1] == '5') {
        is512 = 0;
    } else {
        return -1;
    }
    hl = is512 ? SHA512_DIGEST_LEN : SHA256_DIGEST_LEN;
    pos = 3;
    if (slen - pos >= 7 && memcmp(setting + pos, "rounds=", 7) == 0) {
        size_t d = pos + 7;
        r = 0;
        while (d < slen && setting[d] >= '0' && setting[d] <= '9') {
            /* Saturate rather than wrap (unsigned long may be 32 bits):
             * any huge count clamps to MAX below, as strtoul's ULONG_MAX
             * does in the reference code. */
            if (r > PW_CRYPT_ROUNDS_MAX / 10) {
                r = PW_CRYPT_ROUNDS_MAX + 1;
            } else {
                r = r * 10 + (unsigned long)(setting[d] - '0');
            }
            d++;
        }
        /* The reference code would take a malformed "rounds=" as part of
         * the salt; nobody writes such hashes, so refuse them instead. */
        if (d == pos + 7 || d >= slen || setting[d] != '$') {
            return -1;
        }
        if (r < PW_CRYPT_ROUNDS_MIN) {
            r = PW_CRYPT_ROUNDS_MIN;
        } else if (r > PW_CRYPT_ROUNDS_MAX) {
            r = PW_CRYPT_ROUNDS_MAX;
        }
        rounds = r;
        custom = 1;
        pos = d + 1;
    }
    if (rounds > PW_CRYPT_ROUNDS_LIMIT) {
        return -1;
    }
    salt = setting + pos;
    saltlen = 0;
    while (pos + saltlen < slen && saltlen < PW_CRYPT_SALT_MAX && salt[saltlen] != '$') {
        saltlen++;
    }

    /* Steps 1-3: digest B = H(P S P). */
    ph_init(&h, is512);
    ph_update(&h, pass, plen);
    ph_update(&h, salt, saltlen);
    ph_update(&h, pass, plen);
    ph_final(&h, b);

    /* Steps 4-8: digest A = H(P S, B for len(P) bytes, then per bit of
     * len(P) from the lowest: B for a 1, P for a 0). */
    ph_init(&h, is512);
    ph_update(&h, pass, plen);
    ph_update(&h, salt, saltlen);
    ph_update_repeat(&h, b, hl, plen);
    for (i = plen; i > 0; i >>= 1) {
        if (i & 1) {
            ph_update(&h, b, hl);
        } else {
            ph_update(&h, pass, plen);
        }
    }
    ph_final(&h, a);

    /* Steps 13-16: DP = H(P repeated len(P) times); the P sequence is DP
     * repeated to len(P) bytes and is fed with ph_update_repeat. */
    ph_init(&h, is512);
    for (i = 0; i < plen; i++) {
        ph_update(&h, pass, plen);
    }
    ph_final(&h, dp);

    /* Steps 17-20: DS = H(S repeated 16 + A[0] times); the S sequence is
     * its first len(S) bytes, never more than one digest as len(S) <= 16. */
    ph_init(&h, is512);
    for (i = 0; i < 16u + a[0]; i++) {
        ph_update(&h, salt, saltlen);
    }
    ph_final(&h, ds);

    /* Step 21: the rounds, each mixing the previous result with the P and
     * S sequences in an order set by the round number. */
    for (r = 0; r < rounds; r++) {
        ph_init(&h, is512);
        if (r & 1) {
            ph_update_repeat(&h, dp, hl, plen);
        } else {
            ph_update(&h, a, hl);
        }
        if (r % 3 != 0) {
            ph_update(&h, ds, saltlen);
        }
        if (r % 7 != 0) {
            ph_update_repeat(&h, dp, hl, plen);
        }
        if (r & 1) {
            ph_update(&h, a, hl);
        } else {
            ph_update_repeat(&h, dp, hl, plen);
        }
        ph_final(&h, a);
    }

    /* Step 22: "$N$[rounds=R$]salt$" and the digest in crypt base64, its
     * bytes taken in the spec's interleaved order, which works out to a
     * stride of 22 (SHA-512) or 21 (SHA-256) around the digest. */
    if (custom) {
        n = snprintf(res, sizeof res, "$%c$rounds=%lu$", setting[1], rounds);
    } else {
        n = snprintf(res, sizeof res, "$%c$", setting[1]);
    }
    o = (size_t)n;
    memcpy(res + o, salt, saltlen);
    o += saltlen;
    res[o++] = '$';
    if (is512) {
        for (i = 0; i < 21; i++) {
            o = pw_crypt_b64(res, o, a[(22 * i) % 63], a[(22 * i + 21) % 63],
                             a[(22 * i + 42) % 63], 4);
        }
        o = pw_crypt_b64(res, o, 0, 0, a[63], 2);
    } else {
        for (i = 0; i < 10; i++) {
            o = pw_crypt_b64(res, o, a[(21 * i) % 30], a[(21 * i + 10) % 30],
                             a[(21 * i + 20) % 30], 4);
        }
        o = pw_crypt_b64(res, o, 0, a[31], a[30], 3);
    }
    res[o] = '\0';

    sha2_wipe(a, sizeof a);
    sha2_wipe(b, sizeof b);
    sha2_wipe(dp, sizeof dp);
    sha2_wipe(ds, sizeof ds);
    if (o + 1 > outsz) {
        sha2_wipe(res, sizeof res);
        return -1;
    }
    memcpy(out, res, o + 1);
    sha2_wipe(res, sizeof res);
    return (int)o;
}

int pw_hash_sha512_crypt(const char *pass, size_t plen, const char *salt,
                         char *out, size_t outsz)
{
    static const char prefix[] = "{SHA512-CRYPT}";
    char setting[3 + PW_CRYPT_SALT_MAX];
    char res[PW_SHA_CRYPT_MAX];
    size_t saltlen = 0;
    int n;

    /* The salt ends up inside a passwd-file line, so only characters that
     * cannot end a field or a line, or the salt, are allowed. */
    while (saltlen <= PW_CRYPT_SALT_MAX && salt[saltlen] != '\0') {
        if (strchr(pw_crypt_alphabet, salt[saltlen]) == NULL) {
            return -1;
        }
        saltlen++;
    }
    if (saltlen == 0 || saltlen > PW_CRYPT_SALT_MAX) {
        return -1;
    }
    memcpy(setting, "$6$", 3);
    memcpy(setting + 3, salt, saltlen);
    n = pw_sha_crypt(pass, plen, setting, 3 + saltlen, res, sizeof res);
    if (n < 0 || sizeof prefix - 1 + (size_t)n + 1 > outsz) {
        sha2_wipe(res, sizeof res);
        return -1;
    }
    memcpy(out, prefix, sizeof prefix - 1);
    memcpy(out + sizeof prefix - 1, res, (size_t)n + 1);
    sha2_wipe(res, sizeof res);
    return (int)(sizeof prefix - 1) + n;
}

/* ---- the passwd file ---- */

/* Find the first line for user. On success points *hash and *hlen at its
 * second field (possibly empty) and returns 1. */
static int pw_find(const char *text, size_t textlen, const char *user, size_t ulen,
                   const char **hash, size_t *hlen)
{
    size_t pos = 0;

    while (pos < textlen) {
        size_t start = pos, end, len, ufield, h;
        const char *nl = memchr(text + pos, '\n', textlen - pos);

        end = nl ? (size_t)(nl - text) : textlen;
        pos = end + 1;
        len = end - start;
        if (len > 0 && text[start + len - 1] == '\r') {
            len--;
        }
        if (len == 0 || text[start] == '#' || text[start] == ':') {
            continue;
        }
        for (ufield = 0; ufield < len && text[start + ufield] != ':'; ufield++) {
        }
        /* A line with no ':' has no password field: malformed, skipped. */
        if (ufield == len) {
            continue;
        }
        if (ufield != ulen || memcmp(text + start, user, ulen) != 0) {
            continue;
        }
        for (h = ufield + 1; h < len && text[start + h] != ':'; h++) {
        }
        *hash = text + start + ufield + 1;
        *hlen = h - (ufield + 1);
        return 1;
    }
    return 0;
}

int pw_user_exists(const char *text, size_t textlen, const char *user, size_t ulen)
{
    const char *hash;
    size_t hlen;
    return pw_find(text, textlen, user, ulen, &hash, &hlen);
}

/* ASCII case-insensitive equality of a length-counted name and a C string;
 * the locale must not matter (a Turkish 'I' would break strcasecmp). */
static int pw_name_eq(const char *s, size_t n, const char *lit)
{
    size_t i;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'a' && c <= 'z') {
            c = (char)(c - 'a' + 'A');
        }
        if (lit[i] == '\0' || c != lit[i]) {
            return 0;
        }
    }
    return lit[n] == '\0';
}

static int pw_hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Decode a {SHA256}-family value. Dovecot's rule: exactly twice the digest
 * length means hex, anything else base64 -- but hex only for the unsalted
 * schemes, whose length is fixed. Returns the byte count or -1. */
static int pw_decode(const char *v, size_t vlen, size_t digestlen, int salted,
                     uint8_t *out, size_t outsz)
{
    size_t i;

    if (!salted && vlen == 2 * digestlen) {
        for (i = 0; i < digestlen; i++) {
            int hi = pw_hexval(v[2 * i]), lo = pw_hexval(v[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                return -1;
            }
            out[i] = (uint8_t)(hi << 4 | lo);
        }
        return (int)digestlen;
    }
    return b64_decode(v, vlen, out, outsz);
}

/* Check pass against a SHA-2 digest scheme: plain or salted, 256 or 512. */
static int pw_check_digest(const char *pass, size_t plen, const char *v, size_t vlen,
                           int is512, int salted)
{
    uint8_t stored[SHA512_DIGEST_LEN + PW_SSHA_SALT_MAX];
    uint8_t calc[SHA512_DIGEST_LEN];
    size_t dl = is512 ? SHA512_DIGEST_LEN : SHA256_DIGEST_LEN;
    size_t maxlen = salted ? dl + PW_SSHA_SALT_MAX : dl;
    pw_hash h;
    int n, ok;

    n = pw_decode(v, vlen, dl, salted, stored, maxlen);
    /* Dovecot insists on at least one salt byte for the salted schemes. */
    if (n < 0 || (size_t)n < dl + (salted ? 1 : 0) || (!salted && (size_t)n != dl)) {
        return 0;
    }
    ph_init(&h, is512);
    ph_update(&h, pass, plen);
    ph_update(&h, stored + dl, (size_t)n - dl);
    ph_final(&h, calc);
    ok = sha2_equal(calc, stored, dl);
    sha2_wipe(calc, sizeof calc);
    return ok;
}

static int pw_check_crypt(const char *pass, size_t plen, const char *v, size_t vlen,
                          char want)
{
    char calc[PW_SHA_CRYPT_MAX];
    int n, ok;

    if (vlen < 3 || v[0] != '$' || v[2] != '$' || (v[1] != '5' && v[1] != '6')) {
        return 0;
    }
    if (want != 0 && v[1] != want) {
        return 0;
    }
    n = pw_sha_crypt(pass, plen, v, vlen, calc, sizeof calc);
    /* The lengths are not secret (the stored one is public to anyone who
     * can read the file, the computed one follows from it). */
    ok = n >= 0 && (size_t)n == vlen && sha2_equal(calc, v, vlen);
    sha2_wipe(calc, sizeof calc);
    return ok;
}

int pw_verify(const char *text, size_t textlen, const char *user, size_t ulen,
              const char *pass, size_t plen)
{
    const char *hash, *v;
    size_t hlen, vlen, i;
    enum pw_scheme scheme = PW_S_CRYPT;

    if (plen > PW_PASS_MAX || !pw_find(text, textlen, user, ulen, &hash, &hlen)) {
        return 0;
    }
    v = hash;
    vlen = hlen;
    if (hlen > 0 && hash[0] == '{') {
        size_t close = 1;
        int found = 0;
        while (close < hlen && hash[close] != '}') {
            close++;
        }
        if (close == hlen) {
            return 0;
        }
        for (i = 0; i < sizeof pw_schemes / sizeof pw_schemes[0]; i++) {
            if (pw_name_eq(hash + 1, close - 1, pw_schemes[i].name)) {
                scheme = pw_schemes[i].scheme;
                found = 1;
                break;
            }
        }
        if (!found) {
            return 0;
        }
        v = hash + close + 1;
        vlen = hlen - close - 1;
    }

    switch (scheme) {
    case PW_S_PLAIN: {
        /* Compare digests rather than the strings so that neither the
         * content nor where a wrong guess first differs shows in the time. */
        uint8_t d1[SHA256_DIGEST_LEN], d2[SHA256_DIGEST_LEN];
        int ok;
        sha256(pass, plen, d1);
        sha256(v, vlen, d2);
        ok = sha2_equal(d1, d2, sizeof d1);
        sha2_wipe(d1, sizeof d1);
        sha2_wipe(d2, sizeof d2);
        /* An empty stored password never matches: Dovecot treats an empty
         * field as "no password", and an empty login must not succeed. */
        return ok && vlen > 0;
    }
    case PW_S_CRYPT:
        return pw_check_crypt(pass, plen, v, vlen, 0);
    case PW_S_SHA256_CRYPT:
        return pw_check_crypt(pass, plen, v, vlen, '5');
    case PW_S_SHA512_CRYPT:
        return pw_check_crypt(pass, plen, v, vlen, '6');
    case PW_S_SHA256:
        return pw_check_digest(pass, plen, v, vlen, 0, 0);
    case PW_S_SHA512:
        return pw_check_digest(pass, plen, v, vlen, 1, 0);
    case PW_S_SSHA256:
        return pw_check_digest(pass, plen, v, vlen, 0, 1);
    case PW_S_SSHA512:
        return pw_check_digest(pass, plen, v, vlen, 1, 1);
    case PW_S_SCRAM_SHA256: {
        pw_scram k, calc;
        int ok = pw_scram_parse(v, vlen, &k) == 0 &&
                 pw_scram_from_pass(pass, plen, k.salt, k.saltlen, k.iter, &calc) == 0 &&
                 sha2_equal(k.stored_key, calc.stored_key, SHA256_DIGEST_LEN);
        sha2_wipe(&calc, sizeof calc);
        return ok;
    }
    }
    return 0;
}

/* ---- SCRAM-SHA-256 (RFC 5802, RFC 7677) ---- */

int pw_scram_from_pass(const char *pass, size_t plen, const uint8_t *salt, size_t slen,
                       uint32_t iter, pw_scram *out)
{
    uint8_t salted[SHA256_DIGEST_LEN], ckey[SHA256_DIGEST_LEN];

    if (plen > PW_PASS_MAX || slen == 0 || slen > PW_SCRAM_SALT_MAX || iter < 1 ||
        iter > PW_SCRAM_ITER_LIMIT) {
        return -1;
    }
    if (sha256_pbkdf2(pass, plen, salt, slen, iter, salted, sizeof salted) < 0) {
        return -1;
    }
    out->iter = iter;
    memcpy(out->salt, salt, slen);
    out->saltlen = slen;
    sha256_hmac(salted, sizeof salted, "Client Key", 10, ckey);
    sha256(ckey, sizeof ckey, out->stored_key);
    sha256_hmac(salted, sizeof salted, "Server Key", 10, out->server_key);
    sha2_wipe(salted, sizeof salted);
    sha2_wipe(ckey, sizeof ckey);
    return 0;
}

/* Next comma-separated field of v at *pos; -1 at the end. */
static int pw_field(const char *v, size_t vlen, size_t *pos, const char **f, size_t *flen)
{
    size_t st = *pos, i = st;

    if (st > vlen) {
        return -1;
    }
    while (i < vlen && v[i] != ',') {
        i++;
    }
    *f = v + st;
    *flen = i - st;
    *pos = i + 1;
    return 0;
}

int pw_scram_parse(const char *v, size_t vlen, pw_scram *out)
{
    const char *f;
    size_t flen, pos = 0, i;
    uint32_t iter = 0;
    uint8_t key[SHA256_DIGEST_LEN + 3];
    int n;

    /* Dovecot: "<iterations>,<salt>,<StoredKey>,<ServerKey>", all base64. */
    if (pw_field(v, vlen, &pos, &f, &flen) < 0 || flen == 0 || flen > 7) {
        return -1;
    }
    for (i = 0; i < flen; i++) {
        if (f[i] < '0' || f[i] > '9') {
            return -1;
        }
        iter = iter * 10 + (uint32_t)(f[i] - '0');
    }
    if (iter < 1 || iter > PW_SCRAM_ITER_LIMIT) {
        return -1;
    }
    out->iter = iter;
    if (pw_field(v, vlen, &pos, &f, &flen) < 0) {
        return -1;
    }
    n = b64_decode(f, flen, out->salt, sizeof out->salt);
    if (n <= 0) {
        return -1;
    }
    out->saltlen = (size_t)n;
    if (pw_field(v, vlen, &pos, &f, &flen) < 0 ||
        b64_decode(f, flen, key, sizeof key) != SHA256_DIGEST_LEN) {
        return -1;
    }
    memcpy(out->stored_key, key, SHA256_DIGEST_LEN);
    if (pw_field(v, vlen, &pos, &f, &flen) < 0 || pos <= vlen ||
        b64_decode(f, flen, key, sizeof key) != SHA256_DIGEST_LEN) {
        return -1;
    }
    memcpy(out->server_key, key, SHA256_DIGEST_LEN);
    return 0;
}

int pw_scram_lookup(const char *text, size_t textlen, const char *user, size_t ulen,
                    const uint8_t *salt, size_t slen, uint32_t iter, pw_scram *out)
{
    const char *hash;
    size_t hlen;

    if (!pw_find(text, textlen, user, ulen, &hash, &hlen)) {
        return 0;
    }
    if (hlen > 15 && pw_name_eq(hash, 15, "{SCRAM-SHA-256}")) {
        return pw_scram_parse(hash + 15, hlen - 15, out) == 0;
    }
    /* A cleartext entry: derive keys now (costs iter HMACs per attempt). */
    if (hlen > 7 && pw_name_eq(hash, 7, "{PLAIN}")) {
        return pw_scram_from_pass(hash + 7, hlen - 7, salt, slen, iter, out) == 0;
    }
    if (hlen > 11 && pw_name_eq(hash, 11, "{CLEARTEXT}")) {
        return pw_scram_from_pass(hash + 11, hlen - 11, salt, slen, iter, out) == 0;
    }
    return 0;
}

int pw_hash_scram_sha256(const char *pass, size_t plen, const uint8_t *salt, size_t slen,
                         uint32_t iter, char *out, size_t outsz)
{
    pw_scram k;
    char s64[B64_ENCODED_LEN(PW_SCRAM_SALT_MAX) + 1];
    char k1[B64_ENCODED_LEN(SHA256_DIGEST_LEN) + 1], k2[sizeof k1];
    int n;

    if (pw_scram_from_pass(pass, plen, salt, slen, iter, &k) < 0 ||
        b64_encode(k.salt, k.saltlen, s64, sizeof s64) < 0 ||
        b64_encode(k.stored_key, SHA256_DIGEST_LEN, k1, sizeof k1) < 0 ||
        b64_encode(k.server_key, SHA256_DIGEST_LEN, k2, sizeof k2) < 0) {
        return -1;
    }
    sha2_wipe(&k, sizeof k);
    n = snprintf(out, outsz, "{SCRAM-SHA-256}%u,%s,%s,%s", (unsigned)iter, s64, k1, k2);
    return n < 0 || (size_t)n >= outsz ? -1 : n;
}
