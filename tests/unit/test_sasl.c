/*
 * test_sasl.c -- SCRAM-SHA-256 messages, {SCRAM-SHA-256} passwd entries
 * and the lock-out table (core/sasl.c, core/passwd.c).
 *
 * Where the expected values come from: RFC 7677 section 3 (user "user",
 * password "pencil"), whose exchange is replayed here byte for byte.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "b64.h"
#include "passwd.h"
#include "sasl.h"
#include "unit.h"

static const char cfirst[] = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
static const char sfirst[] =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
static const char cfinal[] =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
static const char sfinal[] = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

/* Replay RFC 7677's exchange; our server nonce is theirs, set by hand. */
static int rfc7677(const char *final, size_t flen, const pw_scram *keys, dbuf *out)
{
    scram_server s;
    memset(&s, 0, sizeof s);
    int r = -2;
    if (scram_client_first(&s, cfirst, strlen(cfirst)) == 0) {
        free(s.nonce);
        s.nonce = strdup("rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
        dbuf_addc(&s.auth_msg, ',');
        dbuf_adds(&s.auth_msg, sfirst);
        s.keys = *keys;
        s.have_keys = 1;
        r = scram_client_final(&s, final, flen, out);
    }
    scram_free(&s);
    return r;
}

static void test_rfc7677(void)
{
    uint8_t salt[16];
    pw_scram k;
    dbuf out = {0};
    CHECK_EQ_INT(b64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", 24, salt, sizeof salt), 16);
    CHECK_EQ_INT(pw_scram_from_pass("pencil", 6, salt, 16, 4096, &k), 0);
    CHECK_EQ_INT(rfc7677(cfinal, strlen(cfinal), &k, &out), 1);
    dbuf_addc(&out, 0);
    CHECK_EQ_STR(out.p, sfinal);
    dbuf_free(&out);

    /* The same with keys from a stored entry. */
    char line[PW_SCRAM_HASH_MAX];
    CHECK(pw_hash_scram_sha256("pencil", 6, salt, 16, 4096, line, sizeof line) > 0);
    pw_scram k2;
    CHECK_EQ_INT(pw_scram_parse(line + 15, strlen(line + 15), &k2), 0);
    CHECK(memcmp(k.stored_key, k2.stored_key, 32) == 0 && memcmp(k.server_key, k2.server_key, 32) == 0);
    CHECK_EQ_INT(rfc7677(cfinal, strlen(cfinal), &k2, &out), 1);
    dbuf_free(&out);

    /* A wrong proof (one bit) is 0, a wrong nonce or c= is malformed. */
    char bad[sizeof cfinal];
    memcpy(bad, cfinal, sizeof cfinal);
    bad[strstr(bad, ",p=") - bad + 3] = 'e';   /* "dHzb" -> "eHzb": still base64 */
    CHECK_EQ_INT(rfc7677(bad, strlen(bad), &k, &out), 0);
    memcpy(bad, cfinal, sizeof cfinal);
    bad[10] = 'X';
    CHECK_EQ_INT(rfc7677(bad, strlen(bad), &k, &out), -1);
    memcpy(bad, cfinal, sizeof cfinal);
    bad[2] = 'e';   /* c=eiws: a different gs2 header */
    CHECK_EQ_INT(rfc7677(bad, strlen(bad), &k, &out), -1);
    CHECK_EQ_INT(rfc7677("c=biws", 6, &k, &out), -1);
    dbuf_free(&out);
}

static void test_client_first(void)
{
    static const struct {
        const char *msg;
        int ok;
        const char *user;
    } cases[] = {
        {"n,,n=user,r=abc", 0, "user"},
        {"y,,n=user,r=abc", 0, "user"},
        {"n,a=user,n=user,r=abc", 0, "user"},
        {"n,,n=a=2Cb=3Dc,r=abc,ext=1", 0, "a,b=c"},
        {"n,a=other,n=user,r=abc", -1, NULL},
        {"p=tls-server-end-point,,n=user,r=abc", -1, NULL},
        {"n,,m=ext,n=user,r=abc", -1, NULL},
        {"n,,n=us=er,r=abc", -1, NULL},
        {"n,,n=,r=abc", -1, NULL},
        {"n,,n=user,r=", -1, NULL},
        {"n,,n=user", -1, NULL},
        {"n,,r=abc", -1, NULL},
        {"n,", -1, NULL},
        {"", -1, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        scram_server s;
        memset(&s, 0, sizeof s);
        int r = scram_client_first(&s, cases[i].msg, strlen(cases[i].msg));
        CHECK_EQ_INT(r, cases[i].ok);
        if (r == 0) {
            CHECK_EQ_STR(s.user, cases[i].user);
        }
        scram_free(&s);
    }
}

static void test_passwd_entries(void)
{
    /* `doveadm pw -s SCRAM-SHA-256 -p pencil` form, RFC 7677's salt. */
    uint8_t salt[16];
    char line[PW_SCRAM_HASH_MAX], text[400];
    b64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", 24, salt, sizeof salt);
    pw_hash_scram_sha256("pencil", 6, salt, 16, 4096, line, sizeof line);
    snprintf(text, sizeof text, "bob:{PLAIN}x\nuser:%s::::\n", line);
    CHECK_EQ_INT(pw_verify(text, strlen(text), "user", 4, "pencil", 6), 1);
    CHECK_EQ_INT(pw_verify(text, strlen(text), "user", 4, "pencil2", 7), 0);
    pw_scram k;
    CHECK_EQ_INT(pw_scram_lookup(text, strlen(text), "user", 4, salt, 16, 4096, &k), 1);
    CHECK_EQ_INT(k.iter, 4096);
    CHECK_EQ_INT(pw_scram_lookup(text, strlen(text), "bob", 3, salt, 16, 2, &k), 1);
    CHECK_EQ_INT(k.iter, 2);
    CHECK_EQ_INT(pw_scram_lookup(text, strlen(text), "eve", 3, salt, 16, 2, &k), 0);
    static const char *const bad[] = {
        "0,W22ZaJ0SNY7soEsUEjb6gQ==,AAAA,AAAA",
        "4096,,a,b",
        "4096,W22ZaJ0SNY7soEsUEjb6gQ==",
        "99999999,W22ZaJ0SNY7soEsUEjb6gQ==,x,y",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(pw_scram_parse(bad[i], strlen(bad[i]), &k), -1);
    }
    /* A trailing field is refused. */
    char extra[PW_SCRAM_HASH_MAX + 4];
    snprintf(extra, sizeof extra, "%s,x", line + 15);
    CHECK_EQ_INT(pw_scram_parse(extra, strlen(extra), &k), -1);
}

static void test_lockout(void)
{
    uint64_t t = 1000000;
    for (int i = 1; i < CONFIG_LOCKOUT_FAILS; i++) {
        CHECK_EQ_INT(lockout_fail("192.0.2.1", t + (uint64_t)i), 0);
        CHECK_EQ_INT(lockout_locked("192.0.2.1", t + (uint64_t)i), 0);
    }
    CHECK_EQ_INT(lockout_fail("192.0.2.1", t + 100), CONFIG_LOCKOUT_FAILS > 0);
    CHECK_EQ_INT(lockout_locked("192.0.2.1", t + 101), CONFIG_LOCKOUT_FAILS > 0);
    CHECK_EQ_INT(lockout_locked("192.0.2.2", t + 101), 0);
    /* The window runs from the latest failure. */
    CHECK_EQ_INT(lockout_locked("192.0.2.1", t + 100 + CONFIG_LOCKOUT_WINDOW * 1000ULL - 1),
                 CONFIG_LOCKOUT_FAILS > 0);
    CHECK_EQ_INT(lockout_locked("192.0.2.1", t + 100 + CONFIG_LOCKOUT_WINDOW * 1000ULL), 0);
    /* A flood of addresses never grows the table, and recycles the
     * oldest entries. */
    uint64_t t2 = t + 10 * CONFIG_LOCKOUT_WINDOW * 1000ULL;
    char a[32];
    for (int i = 0; i < 3 * CONFIG_LOCKOUT_TRACK; i++) {
        snprintf(a, sizeof a, "198.51.100.%d", i);
        lockout_fail(a, t2 + (uint64_t)i);
    }
    for (int i = 0; i < CONFIG_LOCKOUT_FAILS; i++) {
        lockout_fail("203.0.113.9", t2 + 5000);
    }
    CHECK_EQ_INT(lockout_locked("203.0.113.9", t2 + 5001), CONFIG_LOCKOUT_FAILS > 0);
}

int main(void)
{
    test_rfc7677();
    test_client_first();
    test_passwd_entries();
    test_lockout();
    return unit_done("test_sasl");
}
