/*
 * sasl.c -- AUTHENTICATE LOGIN and SCRAM-SHA-256, and the lock-out table.
 *
 * An exchange is a connection in line mode (c->linefn): every client line
 * is one base64 SASL response, "*" cancels. The tag is copied while the
 * exchange runs, as for AUTHENTICATE PLAIN in cmd.c. The password check
 * and its outcome (delay, lock-out, state change) go through cmd.c's
 * cmd_login_check()/cmd_login_done() so every mechanism is treated alike.
 */
#include "sasl.h"
#include "b64.h"
#include "imap.h"
#include "sha2.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- SCRAM-SHA-256 messages (RFC 5802 section 7) ---- */

/* Decode a saslname (",", "=" written as "=2C", "=3D") into a new string.
 * NULL if it has a bare '=', a NUL, or is empty. */
static char *saslname(const char *s, size_t n)
{
    if (n == 0) {
        return NULL;
    }
    char *out = malloc(n + 1);
    if (!out) {
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == 0) {
            free(out);
            return NULL;
        }
        if (s[i] != '=') {
            out[o++] = s[i];
        } else if (i + 2 < n && s[i + 1] == '2' && s[i + 2] == 'C') {
            out[o++] = ',';
            i += 2;
        } else if (i + 2 < n && s[i + 1] == '3' && s[i + 2] == 'D') {
            out[o++] = '=';
            i += 2;
        } else {
            free(out);
            return NULL;
        }
    }
    out[o] = 0;
    return out;
}

/* Length of the attribute value at s (up to ',' or the end). */
static size_t attr_len(const char *s, size_t n)
{
    const char *c = memchr(s, ',', n);
    return c ? (size_t)(c - s) : n;
}

static int nonce_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e || s[i] == ',') {
            return 0;
        }
    }
    return n > 0;
}

int scram_client_first(scram_server *s, const char *msg, size_t n)
{
    size_t p = 0;
    char *authz = NULL;
    /* gs2-cbind-flag: we offer no channel binding (no -PLUS mechanism),
     * so "p=" is refused; "y" means the client could but thinks we can't. */
    if (n < 3 || (msg[0] != 'n' && msg[0] != 'y') || msg[1] != ',') {
        return -1;
    }
    p = 2;
    if (msg[p] != ',') {
        if (n - p < 3 || msg[p] != 'a' || msg[p + 1] != '=') {
            return -1;
        }
        size_t l = attr_len(msg + p + 2, n - p - 2);
        if (p + 2 + l >= n) {
            return -1;
        }
        authz = saslname(msg + p + 2, l);
        if (!authz) {
            return -1;
        }
        p += 2 + l;
    }
    p++;   /* the ',' ending the gs2 header */
    size_t gs2len = p;
    const char *bare = msg + p;
    size_t blen = n - p;
    /* "m=" is reserved for a future mandatory extension: must fail. */
    if (blen < 2 || bare[0] != 'n' || bare[1] != '=') {
        free(authz);
        return -1;
    }
    size_t ul = attr_len(bare + 2, blen - 2);
    char *user = saslname(bare + 2, ul);
    size_t q = 2 + ul;
    if (!user || q + 3 > blen || bare[q] != ',' || bare[q + 1] != 'r' || bare[q + 2] != '=') {
        free(user);
        free(authz);
        return -1;
    }
    q += 3;
    size_t nl = attr_len(bare + q, blen - q);
    if (!nonce_ok(bare + q, nl) || nl > 256 || (authz && strcmp(authz, user) != 0)) {
        free(user);
        free(authz);
        return -1;
    }
    free(authz);
    s->user = user;
    s->gs2 = xstrndup(msg, gs2len);
    s->gs2len = gs2len;
    s->nonce = xstrndup(bare + q, nl);
    dbuf_reset(&s->auth_msg);
    if (!s->gs2 || !s->nonce || dbuf_add(&s->auth_msg, bare, blen) < 0) {
        return -1;
    }
    return 0;
}

int scram_server_first(scram_server *s, const uint8_t *rnd, dbuf *out)
{
    char nb[B64_ENCODED_LEN(SCRAM_NONCE_BYTES) + 1];
    char sb[B64_ENCODED_LEN(PW_SCRAM_SALT_MAX) + 1];
    if (!s->nonce || b64_encode(rnd, SCRAM_NONCE_BYTES, nb, sizeof nb) < 0 ||
        b64_encode(s->keys.salt, s->keys.saltlen, sb, sizeof sb) < 0) {
        return -1;
    }
    dbuf full = {0};
    if (dbuf_printf(&full, "%s%s", s->nonce, nb) < 0) {
        return -1;
    }
    free(s->nonce);
    s->nonce = full.p;
    dbuf_reset(out);
    if (dbuf_printf(out, "r=%s,s=%s,i=%u", s->nonce, sb, (unsigned)s->keys.iter) < 0 ||
        dbuf_addc(&s->auth_msg, ',') < 0 || dbuf_add(&s->auth_msg, out->p, out->len) < 0) {
        return -1;
    }
    return 0;
}

int scram_client_final(scram_server *s, const char *msg, size_t n, dbuf *out)
{
    if (!s->nonce || !s->gs2) {
        return -1;
    }
    /* The proof is the last attribute; everything before it is signed. */
    size_t pp = n;
    while (pp >= 3 && !(msg[pp - 3] == ',' && msg[pp - 2] == 'p' && msg[pp - 1] == '=')) {
        pp--;
    }
    if (pp < 3) {
        return -1;
    }
    size_t wl = pp - 3;   /* client-final-message-without-proof */
    if (wl < 2 || msg[0] != 'c' || msg[1] != '=') {
        return -1;
    }
    size_t cl = attr_len(msg + 2, wl - 2);
    uint8_t cb[128];
    long cbl = b64_decode(msg + 2, cl, cb, sizeof cb);
    if (cbl < 0 || (size_t)cbl != s->gs2len || memcmp(cb, s->gs2, s->gs2len) != 0) {
        return -1;
    }
    size_t q = 2 + cl;
    size_t nlen = strlen(s->nonce);
    if (q + 3 > wl || msg[q] != ',' || msg[q + 1] != 'r' || msg[q + 2] != '=') {
        return -1;
    }
    q += 3;
    size_t rl = attr_len(msg + q, wl - q);
    if (rl != nlen || memcmp(msg + q, s->nonce, nlen) != 0) {
        return -1;
    }
    uint8_t proof[SHA256_DIGEST_LEN + 3];
    if (b64_decode(msg + pp, n - pp, proof, sizeof proof) != SHA256_DIGEST_LEN) {
        return -1;
    }
    if (dbuf_addc(&s->auth_msg, ',') < 0 || dbuf_add(&s->auth_msg, msg, wl) < 0) {
        return -1;
    }
    uint8_t sig[SHA256_DIGEST_LEN], ckey[SHA256_DIGEST_LEN], stored[SHA256_DIGEST_LEN];
    sha256_hmac(s->keys.stored_key, SHA256_DIGEST_LEN, s->auth_msg.p, s->auth_msg.len, sig);
    for (int i = 0; i < SHA256_DIGEST_LEN; i++) {
        ckey[i] = proof[i] ^ sig[i];
    }
    sha256(ckey, sizeof ckey, stored);
    int ok = sha2_equal(stored, s->keys.stored_key, SHA256_DIGEST_LEN) & s->have_keys;
    sha2_wipe(ckey, sizeof ckey);
    if (!ok) {
        return 0;
    }
    char vb[B64_ENCODED_LEN(SHA256_DIGEST_LEN) + 1];
    sha256_hmac(s->keys.server_key, SHA256_DIGEST_LEN, s->auth_msg.p, s->auth_msg.len, sig);
    b64_encode(sig, sizeof sig, vb, sizeof vb);
    dbuf_reset(out);
    return dbuf_printf(out, "v=%s", vb) < 0 ? -1 : 1;
}

void scram_free(scram_server *s)
{
    free(s->user);
    free(s->gs2);
    free(s->nonce);
    dbuf_free(&s->auth_msg);
    sha2_wipe(&s->keys, sizeof s->keys);
    memset(s, 0, sizeof *s);
}

/* ---- the exchange on a connection ---- */

enum { MECH_LOGIN = 1, MECH_SCRAM = 2 };

struct sasl_state {
    int          mech;    /* MECH_* */
    int          step;    /* messages received so far */
    char        *user;    /* LOGIN: the user name from the first message */
    size_t       ulen;
    scram_server scram;   /* SCRAM: its state */
};

void sasl_free(imap_conn *c)
{
    struct sasl_state *st = c->sasl;
    if (!st) {
        return;
    }
    if (st->user) {
        sha2_wipe(st->user, st->ulen);
        free(st->user);
    }
    scram_free(&st->scram);
    free(st);
    c->sasl = NULL;
}

/* Send a challenge (raw bytes, base64-encoded here) and wait for a line. */
static void challenge(imap_conn *c, const void *p, size_t n);

/* Server-side secret for the salts of users without stored SCRAM keys, so
 * that an unknown user gets the same salt every time (no enumeration by
 * comparing salts). */
static uint8_t scram_secret[32];
static int scram_secret_set;

static void scram_fake_salt(const char *user, uint8_t out[16])
{
    uint8_t d[SHA256_DIGEST_LEN];
    if (!scram_secret_set) {
        port_random(scram_secret, sizeof scram_secret);
        scram_secret_set = 1;
    }
    sha256_hmac(scram_secret, sizeof scram_secret, user, strlen(user), d);
    memcpy(out, d, 16);
}

/* Step the mechanism with one decoded client message. Returns 1 when the
 * exchange is over (a reply was sent or is scheduled), 0 when a challenge
 * was sent and the next line is awaited. */
static int sasl_step(imap_conn *c, const char *m, size_t n)
{
    struct sasl_state *st = c->sasl;
    st->step++;
    if (st->mech == MECH_LOGIN) {
        if (st->step == 1) {
            st->user = xstrndup(m, n);
            st->ulen = n;
            challenge(c, "Password:", 9);
            return 0;
        }
        cmd_login_check(c, st->user, st->ulen, m, n);
        return 1;
    }
    /* SCRAM-SHA-256 */
    if (st->step == 1) {
        scram_server *s = &st->scram;
        if (scram_client_first(s, m, n) < 0) {
            reply(c, "BAD", "Invalid SCRAM client-first-message");
            return 1;
        }
        uint8_t salt[16];
        scram_fake_salt(s->user, salt);
        char *text = NULL;
        size_t tlen = 0;
        int rc = st_slurp(st_vfs_posix(), g_srv->cfg->passwd, &text, &tlen, 16 << 20);
        if (rc < 0) {
            log_err("cannot read passwd file %s: %s", g_srv->cfg->passwd, st_strerror(rc));
            reply(c, "NO", "[UNAVAILABLE] Authentication backend unavailable");
            return 1;
        }
        s->have_keys = !lockout_locked(c->peer, now_ms()) &&
                       pw_scram_lookup(text, tlen, s->user, strlen(s->user), salt, sizeof salt,
                                       CONFIG_SCRAM_ITERATIONS, &s->keys);
        free(text);
        if (!s->have_keys) {
            /* Go through the motions with keys nobody knows. */
            port_random(s->keys.stored_key, sizeof s->keys.stored_key);
            port_random(s->keys.server_key, sizeof s->keys.server_key);
            memcpy(s->keys.salt, salt, sizeof salt);
            s->keys.saltlen = sizeof salt;
            s->keys.iter = CONFIG_SCRAM_ITERATIONS;
        }
        uint8_t rnd[SCRAM_NONCE_BYTES];
        port_random(rnd, sizeof rnd);
        dbuf out = {0};
        if (scram_server_first(s, rnd, &out) < 0) {
            dbuf_free(&out);
            reply(c, "NO", "[SERVERBUG] Out of memory");
            return 1;
        }
        challenge(c, out.p, out.len);
        dbuf_free(&out);
        return 0;
    }
    if (st->step == 2) {
        scram_server *s = &st->scram;
        dbuf out = {0};
        int r = scram_client_final(s, m, n, &out);
        if (r < 0) {
            dbuf_free(&out);
            reply(c, "BAD", "Invalid SCRAM client-final-message");
            return 1;
        }
        if (r == 0) {
            dbuf_free(&out);
            cmd_login_done(c, s->user, strlen(s->user), 0);
            return 1;
        }
        /* IMAP4rev1 has no "additional data with success": the server
         * signature goes in a last challenge, answered by an empty line. */
        challenge(c, out.p, out.len);
        dbuf_free(&out);
        return 0;
    }
    if (n != 0) {
        reply(c, "BAD", "Expected an empty response");
        return 1;
    }
    cmd_login_done(c, st->scram.user, strlen(st->scram.user), 1);
    return 1;
}

static void sasl_line(imap_conn *c, const char *line, size_t n)
{
    c->linefn = NULL;
    if (n == 1 && line[0] == '*') {
        reply(c, "BAD", "Authentication cancelled");
    } else {
        char *raw = malloc(B64_DECODED_MAX(n) + 1);
        long rl = -1;
        if (raw && n <= B64_ENCODED_LEN(SASL_MSG_MAX)) {
            rl = b64_decode(line, n, raw, B64_DECODED_MAX(n) + 1);
        }
        if (rl < 0) {
            reply(c, "BAD", "Invalid base64");
        } else if (!sasl_step(c, raw, (size_t)rl)) {
            if (raw) {
                sha2_wipe(raw, (size_t)rl);
            }
            free(raw);
            return;   /* challenge sent; c->linefn set again */
        }
        if (raw && rl > 0) {
            sha2_wipe(raw, (size_t)rl);
        }
        free(raw);
    }
    sasl_free(c);
    free(c->tag);   /* our copy, made in sasl_start */
    c->tag = NULL;
}

static void challenge(imap_conn *c, const void *p, size_t n)
{
    char *b = malloc(B64_ENCODED_LEN(n) + 1);
    if (!b || b64_encode(p, n, b, B64_ENCODED_LEN(n) + 1) < 0) {
        free(b);
        c->closing = 2;
        return;
    }
    out_printf(c, "+ %s\r\n", b);
    free(b);
    c->linefn = sasl_line;
}

int sasl_start(imap_conn *c, const char *mech, const char *ir, size_t irlen, int have_ir)
{
    int m = 0;
    if (CONFIG_AUTH_LOGIN && ascii_casecmp(mech, "LOGIN") == 0) {
        m = MECH_LOGIN;
    } else if (CONFIG_AUTH_SCRAM && ascii_casecmp(mech, "SCRAM-SHA-256") == 0) {
        m = MECH_SCRAM;
    } else {
        return -1;
    }
    sasl_free(c);
    c->sasl = calloc(1, sizeof *c->sasl);
    if (!c->sasl) {
        reply(c, "NO", "[SERVERBUG] Out of memory");
        return 0;
    }
    c->sasl->mech = m;
    /* From here the exchange outlives the command line: own the tag. */
    c->tag = xstrdup(c->tag);
    if (have_ir) {
        /* SASL-IR (RFC 4959): "=" is an empty initial response. */
        sasl_line(c, irlen == 1 && ir[0] == '=' ? "" : ir, irlen == 1 && ir[0] == '=' ? 0 : irlen);
        return 0;
    }
    if (m == MECH_LOGIN) {
        challenge(c, "Username:", 9);
    } else {
        out_puts(c, "+ \r\n");
        c->linefn = sasl_line;
    }
    return 0;
}

/* ---- per-address lock-out ---- */

typedef struct lock_ent {
    char     addr[64];   /* peer address as port_peer wrote it; "" = free */
    uint32_t fails;      /* failures inside the window */
    uint64_t last;       /* monotonic ms of the latest failure */
} lock_ent;

static lock_ent *locks;   /* CONFIG_LOCKOUT_TRACK entries, made on first failure */

static lock_ent *lock_find(const char *addr, uint64_t now, int create)
{
    if (!locks) {
        if (!create) {
            return NULL;
        }
        locks = calloc(CONFIG_LOCKOUT_TRACK, sizeof *locks);
        if (!locks) {
            return NULL;
        }
    }
    /* A free entry if there is one, else the one with the oldest failure:
     * a flood of addresses recycles the table, it never grows. */
    lock_ent *victim = NULL;
    for (unsigned i = 0; i < CONFIG_LOCKOUT_TRACK; i++) {
        lock_ent *e = &locks[i];
        if (e->addr[0] && now - e->last >= (uint64_t)CONFIG_LOCKOUT_WINDOW * 1000) {
            e->addr[0] = 0;   /* expired: forget */
        }
        if (e->addr[0] && strcmp(e->addr, addr) == 0) {
            return e;
        }
        if (!victim || (victim->addr[0] && (!e->addr[0] || e->last < victim->last))) {
            victim = e;
        }
    }
    if (!create) {
        return NULL;
    }
    memset(victim, 0, sizeof *victim);
    snprintf(victim->addr, sizeof victim->addr, "%s", addr);
    return victim;
}

int lockout_locked(const char *addr, uint64_t now)
{
    if (CONFIG_LOCKOUT_FAILS == 0) {
        return 0;
    }
    lock_ent *e = lock_find(addr, now, 0);
    return e && e->fails >= CONFIG_LOCKOUT_FAILS;
}

int lockout_fail(const char *addr, uint64_t now)
{
    if (CONFIG_LOCKOUT_FAILS == 0) {
        return 0;
    }
    lock_ent *e = lock_find(addr, now, 1);
    if (!e) {
        return 0;
    }
    e->last = now;
    return ++e->fails == CONFIG_LOCKOUT_FAILS;
}
