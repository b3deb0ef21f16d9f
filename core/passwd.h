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

#endif
