/*
 * passwd.h -- checking passwords against a Dovecot-style passwd-file.
 *
 * The file is handed in as text (the caller reads it; core/ does no I/O).
 * One user a line:
 *
 *     user:{SCHEME}hash:uid:gid:gecos:home:shell:extra
 *
 * Only the first two fields are used and the rest may be missing
 * ("user:{SCHEME}hash" is a whole line). Lines that are empty, start with
 * '#' or ':', or have no ':' are skipped. A trailing CR is ignored so files
 * edited on Windows still work. User names compare exactly (case and all).
 * If a user appears twice the first line wins, as in Dovecot.
 *
 * Schemes (names case-insensitive):
 *   {PLAIN} {CLEARTEXT}     the password itself
 *   {SHA512-CRYPT} $6$...   SHA-crypt (Drepper), optional rounds=N
 *   {SHA256-CRYPT} $5$...
 *   {CRYPT}                 $5$ or $6$ only; also assumed when there is no
 *                           {SCHEME} prefix. DES, MD5, bcrypt and yescrypt
 *                           crypt strings are refused.
 *   {SHA256} {SHA512}       base64 (or hex) of the bare digest
 *   {SSHA256} {SSHA512}     base64 (or hex) of digest(pass || salt) || salt
 * Any other scheme, or a hash that does not parse, refuses the login.
 *
 * Timing: the final comparison is constant-time. The time still differs
 * between "no such user" (no hashing at all) and a wrong password; callers
 * that care about user enumeration should spend equal effort themselves.
 */
#ifndef PASSWD_H
#define PASSWD_H

#include <stddef.h>
#include <stdint.h>

/* Longest password accepted, in bytes. SHA-crypt's cost grows with the
 * password: every round hashes it about twice more, and one step hashes it
 * len(P) times. At 1 KiB one attempt cost 13x a normal one, a cheap way
 * for an unauthenticated client to burn CPU; 256 caps that near 3x, is
 * musl's limit for the same reason, and is far longer than any real
 * passphrase. Longer passwords fail for every scheme. */
#define PW_PASS_MAX 256

/* SHA-crypt round limits from the spec: fewer than MIN are raised to MIN,
 * more than MAX lowered to MAX, no rounds=N means DEFAULT. */
#define PW_CRYPT_ROUNDS_MIN     1000
#define PW_CRYPT_ROUNDS_MAX     999999999UL
#define PW_CRYPT_ROUNDS_DEFAULT 5000

/* Our own ceiling, below the spec's: the server is one thread, so a hash
 * with rounds=999999999 would stall every client for minutes on each
 * login attempt. A million is 200x the default, more than any distribution
 * configures; hashes asking for more are refused, not computed. */
#define PW_CRYPT_ROUNDS_LIMIT 1000000UL

/* SHA-crypt salts are cut to 16 characters (spec). */
#define PW_CRYPT_SALT_MAX 16

/* Buffer size that always holds pw_sha_crypt's output and NUL:
 * "$6$rounds=1000000$" + 16 salt + "$" + 86 hash = 121. */
#define PW_SHA_CRYPT_MAX 128

/* Buffer size for pw_hash_sha512_crypt: "{SHA512-CRYPT}" + 3 + 16 + 1 + 86
 * + NUL = 121. */
#define PW_SHA512_CRYPT_MAX 128

/* 1 if user/pass match the user's entry in the passwd-file text, 0 if not
 * (unknown user, wrong password, unsupported scheme or malformed hash,
 * password longer than PW_PASS_MAX). The final comparison is
 * constant-time. Neither string needs a NUL; both may hold any bytes. */
int pw_verify(const char *text, size_t textlen, const char *user, size_t ulen,
              const char *pass, size_t plen);

/* 1 if the user has an entry in the passwd-file text, 0 if not. */
int pw_user_exists(const char *text, size_t textlen, const char *user, size_t ulen);

/* Write "{SHA512-CRYPT}$6$<salt>$<hash>" and a NUL to out, for an admin
 * tool or first-run setup. salt is a NUL-terminated string of 1 to 16
 * characters from [./0-9A-Za-z]; the caller draws them at random (16 of
 * them, from port_random). Returns the length written without the NUL, or
 * -1 for a bad salt, a password longer than PW_PASS_MAX, or outsz too small
 * (PW_SHA512_CRYPT_MAX always suffices). */
int pw_hash_sha512_crypt(const char *pass, size_t plen, const char *salt,
                         char *out, size_t outsz);

/* SHA-crypt itself, as crypt(3) does it: setting is "$5$" or "$6$",
 * optionally "rounds=N$", then the salt (cut at '$' or 16 characters); a
 * complete hash string works as the setting too. Writes the full crypt
 * string and a NUL to out. Returns its length, or -1 if the setting does
 * not parse, rounds exceed PW_CRYPT_ROUNDS_LIMIT, plen > PW_PASS_MAX or
 * outsz is too small (PW_SHA_CRYPT_MAX always suffices). */
int pw_sha_crypt(const char *pass, size_t plen, const char *setting, size_t slen,
                 char *out, size_t outsz);

/* ---- SCRAM-SHA-256 (RFC 5802, RFC 7677), Dovecot's {SCRAM-SHA-256} ----
 * Stored form: {SCRAM-SHA-256}<iterations>,<b64 salt>,<b64 StoredKey>,
 * <b64 ServerKey>. LOGIN/PLAIN check a password against it too. */

/* Salt bytes accepted (Dovecot writes 16). */
#define PW_SCRAM_SALT_MAX 64
/* PBKDF2 iterations accepted in a stored hash: as for SHA-crypt, one
 * thread must not be stalled by a hostile or mistaken hash. */
#define PW_SCRAM_ITER_LIMIT 1000000UL
/* Buffer that always holds pw_hash_scram_sha256's output and NUL. */
#define PW_SCRAM_HASH_MAX (15 + 8 + 88 + 2 * 44 + 4)

typedef struct pw_scram {
    uint32_t iter;                  /* PBKDF2 iteration count */
    uint8_t  salt[PW_SCRAM_SALT_MAX];
    size_t   saltlen;               /* bytes used in salt */
    uint8_t  stored_key[32];        /* H(HMAC(SaltedPassword, "Client Key")) */
    uint8_t  server_key[32];        /* HMAC(SaltedPassword, "Server Key") */
} pw_scram;

/* Derive the SCRAM keys from a password. 0, or -1 for bad arguments. */
int pw_scram_from_pass(const char *pass, size_t plen, const uint8_t *salt, size_t slen,
                       uint32_t iter, pw_scram *out);

/* Parse the part after "{SCRAM-SHA-256}". 0 or -1. */
int pw_scram_parse(const char *v, size_t vlen, pw_scram *out);

/* The SCRAM keys of user: from a {SCRAM-SHA-256} entry, or derived from a
 * {PLAIN}/{CLEARTEXT} entry with the caller's salt and iter. 1 if found
 * and usable, 0 otherwise (unknown user, or a one-way scheme such as
 * {SHA512-CRYPT} from which SCRAM keys cannot be made). */
int pw_scram_lookup(const char *text, size_t textlen, const char *user, size_t ulen,
                    const uint8_t *salt, size_t slen, uint32_t iter, pw_scram *out);

/* Write "{SCRAM-SHA-256}..." and a NUL for a new user. Returns its length
 * or -1 (bad arguments, outsz < PW_SCRAM_HASH_MAX). */
int pw_hash_scram_sha256(const char *pass, size_t plen, const uint8_t *salt, size_t slen,
                         uint32_t iter, char *out, size_t outsz);

#endif
