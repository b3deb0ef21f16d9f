/*
 * sasl.h -- AUTHENTICATE LOGIN and SCRAM-SHA-256 (PLAIN lives in cmd.c),
 * and the per-address lock-out after repeated login failures.
 *
 * The SCRAM message functions are pure (no connection, no I/O) so that
 * unit tests and the libFuzzer target (tests/fuzz/fuzz_sasl.c) drive them
 * directly; sasl_start() is the glue to a connection.
 */
#ifndef SASL_H
#define SASL_H

#include <stddef.h>
#include <stdint.h>
#include "passwd.h"
#include "util.h"

/* Longest SASL message accepted from a client, decoded. SCRAM's client
 * messages are about 100 bytes plus the user name; LOGIN's are a name or
 * a password (PW_PASS_MAX). 2 KiB leaves room for extensions. */
#define SASL_MSG_MAX 2048
/* Random bytes in our half of the SCRAM nonce (RFC 5802 wants it
 * unpredictable; 18 bytes encode to 24 base64 characters). */
#define SCRAM_NONCE_BYTES 18

/* Server side of one SCRAM-SHA-256 exchange. */
typedef struct scram_server {
    char    *user;          /* authcid, decoded (=2C, =3D), NUL-terminated */
    char    *gs2;           /* gs2 header as sent ("n,,"), for c= check */
    size_t   gs2len;
    dbuf     auth_msg;      /* client-first-bare "," server-first: the start of AuthMessage */
    char    *nonce;         /* client nonce + our nonce */
    pw_scram keys;          /* the user's keys (or dummies for an unknown user) */
    int      have_keys;     /* keys are real: the user exists and has SCRAM keys */
} scram_server;

/* Parse client-first-message. Returns 0 and fills s->user, or -1 if it is
 * malformed or asks for what we do not offer (channel binding, m=, an
 * authzid other than the user). */
int scram_client_first(scram_server *s, const char *msg, size_t n);

/* Build server-first-message into out (not base64). rnd: SCRAM_NONCE_BYTES
 * random bytes. s->keys must be set first (have_keys or dummy). 0 or -1. */
int scram_server_first(scram_server *s, const uint8_t *rnd, dbuf *out);

/* Check client-final-message. Returns 1 and writes server-final-message
 * ("v=...") into out when the proof is right, 0 when it is wrong (or the
 * keys were dummies), -1 when the message is malformed. */
int scram_client_final(scram_server *s, const char *msg, size_t n, dbuf *out);

void scram_free(scram_server *s);

struct imap_conn;

/* AUTHENTICATE mech [ir] for LOGIN and SCRAM-SHA-256. Returns 0 if it
 * took the command (and will reply), -1 if mech is not one of them. */
int sasl_start(struct imap_conn *c, const char *mech, const char *ir, size_t irlen, int have_ir);

/* Free an exchange in progress (connection closing). */
void sasl_free(struct imap_conn *c);

/* ---- per-address lock-out (CONFIG_LOCKOUT_*) ---- */

/* 1 if logins from addr are refused now. */
int lockout_locked(const char *addr, uint64_t now);
/* Count a failed login from addr. Returns 1 if this failure locked the
 * address out (the CONFIG_LOCKOUT_FAILS-th inside the window). The window
 * runs from the latest failure, so an address that keeps trying while
 * locked stays locked. */
int lockout_fail(const char *addr, uint64_t now);
/* A success does not forget failures: behind one NAT address, a real
 * user's login must not reset an attacker's count. Failures expire with
 * CONFIG_LOCKOUT_WINDOW. */

#endif
