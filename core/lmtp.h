/*
 * lmtp.h -- an LMTP (RFC 2033) server session on a connection of the main
 * poll loop. The connection engine (conn.c) accepts on `lmtp = host:port`
 * listeners like on IMAP ones; lmtp_start() then puts the connection in
 * line mode (c->linefn), so every CRLF-stripped line reaches lmtp.c and the
 * IMAP parser never sees it.
 */
#ifndef LMTP_H
#define LMTP_H

#include "imap.h"

/* Greet and take over the connection's input. */
void lmtp_start(imap_conn *c);
/* The connection goes away: abort a message in flight, free the state. */
void lmtp_free(imap_conn *c);

/* Local delivery and its exit codes (sysexits.h values, for MTAs). */
#define TOOL_EX_OK        0
#define TOOL_EX_NOUSER    67  /* EX_NOUSER: bounce */
#define TOOL_EX_SOFTWARE  70  /* EX_SOFTWARE */
#define TOOL_EX_TEMPFAIL  75  /* EX_TEMPFAIL: the MTA retries later */
#define TOOL_EX_CONFIG    78  /* EX_CONFIG */

/* 1 if `user` (len bytes) is a name the store accepts and the passwd file
 * text has it. */
int tool_user_known(const char *passwd_text, size_t plen, const char *user, size_t len);

/* picoimapd deliver: read a message with rd() until it returns 0, append it
 * to user's mailbox, return once it is durable. Returns a TOOL_EX_* code;
 * why says what went wrong. */
int tool_deliver(const imap_cfg *cfg, const char *user, const char *mailbox,
                 long (*rd)(void *ctx, void *buf, size_t n), void *ctx,
                 char *why, size_t whylen);

#endif
