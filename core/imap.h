/*
 * imap.h -- the protocol engine's shared types.
 *
 * One imap_server owns the listeners, the store and every imap_conn. A
 * connection moves between states only through conn_enter_state(). A
 * command either completes inside its handler or leaves a continuation
 * (c->cont) that the loop calls again when the client has drained output,
 * so a 50 MB FETCH never blocks the other clients.
 */
#ifndef IMAP_H
#define IMAP_H

#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "port.h"
#include "store.h"
#include "parse.h"
#include "util.h"
#include "tls.h"
#include "priv.h"

/* Connection states (RFC 3501 section 3). Bit values so the command table
 * can say where a command is allowed. */
enum {
    S_NOTAUTH = 1,
    S_AUTH = 2,
    S_SELECTED = 4,
    S_LOGOUT = 8,
};
#define S_ANY (S_NOTAUTH | S_AUTH | S_SELECTED)

/* Listener kinds. */
enum { LISTEN_IMAP = 1, LISTEN_IMAPS = 2 /* implicit TLS */, LISTEN_LMTP = 3 };

/* Runtime configuration (the config file). */
typedef struct imap_cfg {
    char    *listen[8];        /* "host:port" */
    unsigned nlisten;
    char    *store;            /* store root */
    char    *passwd;           /* passwd-file path */
    char    *log;              /* "stderr" or "syslog" */
    int      log_level;        /* LOG_*_ */
    int      allow_plaintext;  /* plaintext LOGIN/AUTHENTICATE allowed */
    int      plaintext_loopback; /* ...and on loopback without TLS (default yes) */
    char    *listen_tls[8];    /* "host:port" of implicit-TLS listeners */
    unsigned nlisten_tls;
    char    *tls_cert;         /* PEM certificate chain */
    char    *tls_key;          /* PEM private key */
    unsigned tls_handshake_timeout; /* seconds a TLS handshake may take */
    char    *user;             /* drop root to this user after start-up */
    char    *chroot;           /* chroot here before dropping root */
    int      allow_root;       /* keep running as root (not advised) */
    int      special_folders;  /* new users get Drafts, Sent, Trash, Junk, Archive (default yes) */
    char    *lmtp[4];          /* LMTP listeners: "host:port" or "unix:/path" (see core/lmtp.c) */
    unsigned nlmtp;
    unsigned lmtp_mode;        /* permission bits of unix: LMTP sockets (0660) */
    char    *lmtp_group;       /* their group (the MTA's, e.g. postfix), or NULL */
    uint64_t quota;            /* per-user bytes of mail, 0 = none ("100M") */
    unsigned compact_permille; /* compact a mailbox when this share of it is
                                  expunged mail (compact_ratio = 0.3) */
} imap_cfg;

int  cfg_parse(imap_cfg *cfg, const char *text, const char *basedir, char *err, size_t errlen);
void cfg_free(imap_cfg *cfg);

/* One queued piece of output. */
typedef struct outchunk {
    struct outchunk *next;
    size_t len;     /* bytes in data */
    size_t off;     /* bytes already written */
    size_t cap;     /* bytes allocated for data */
    char   data[];
} outchunk;

typedef struct outq {
    outchunk *head, *tail;
    size_t    bytes;       /* unsent bytes */
} outq;

struct imap_sess;
struct fetch_job;

typedef struct imap_conn {
    struct imap_conn *next, *prev;  /* all connections */
    port_conn  *pc;                 /* the port's handle */
    int         state;              /* S_* */
    int         closing;            /* 1: close once output is flushed */
    int         kind;               /* listener kind */
    char        peer[64];           /* peer address, for logs */
    int         loopback;           /* peer is loopback */
    imap_parser ps;                 /* command being read */
    dbuf        in;                 /* input read but not yet consumed */
    outq        out;                /* output not yet written */
    uint64_t    deadline;           /* idle timeout (monotonic ms) */
    uint64_t    wake_at;            /* continuation timer, 0 = none */
    /* The command in progress, when it did not finish in its handler. */
    int       (*cont)(struct imap_conn *c);   /* returns 1 when finished */
    /* Line mode: input lines go here instead of the parser (AUTHENTICATE,
     * IDLE). */
    void      (*linefn)(struct imap_conn *c, const char *line, size_t len);
    char       *tag;                /* tag of the command in progress */
    char       *user;               /* logged-in user */
    struct imap_sess *sess;         /* selected mailbox, or NULL */
    int         login_fails;        /* failed logins on this connection */
    int         idling;             /* in IDLE */
    struct fetch_job *fetch;        /* FETCH in progress */
    struct st_append *append;       /* APPEND literal being streamed */
    int         append_err;         /* error while streaming it */
    st_box     *append_box;         /* its mailbox */
    uint64_t    append_size;        /* its announced size */
    char       *delayed;            /* response held back (failed login) */
    int         close_after_wake;   /* close once the delayed reply is out */
    struct imap_z *z;               /* COMPRESS=DEFLATE state, or NULL */
    dbuf        zout;               /* deflated bytes not yet written */
    size_t      zoff;               /* of zout, bytes already written */
    int         compress_pending;   /* start deflating once the OK is out */
    port_tls   *tls;                /* TLS session, NULL while plaintext */
    int         tls_hs;             /* handshake in progress */
    int         tls_want;           /* PORT_EV_* the handshake waits for */
    int         starttls;           /* STARTTLS answered: start TLS once output is out */
    struct sasl_state *sasl;        /* AUTHENTICATE exchange in progress */
    unsigned    ext_on;             /* EXT_* switched on by ENABLE or use (ext.h) */
    struct ext_append *mappend;     /* MULTIAPPEND messages streamed so far (ext.c) */
    struct lmtp_state *lmtp;        /* LMTP session (LISTEN_LMTP, lmtp.c), or NULL */
    /* Group commit (conn_commit): the command's changes wait for this
     * turn's one sync per mailbox; until then its tagged reply is held in
     * cwait_out and the connection reads no further command. */
    st_box     *cwait[2];           /* mailboxes it waits for */
    const char *cwait_what;         /* command name, for a NO */
    unsigned    cwait_round;        /* group it belongs to */
    int         cwait_err;          /* a commit it waited for failed */
    /* On the server's lists of connections a commit's end concerns
     * (conn.c, GL_*): so that its end need not visit every connection. */
    struct imap_conn *gl_next[3], *gl_prev[3];
    unsigned char gl_on[3];         /* 0 no, 1 on the list, 2 on its taken part */
    dbuf        cwait_out;          /* the held tagged reply */
} imap_conn;

typedef struct imap_server {
    imap_cfg   *cfg;
    st_store   *store;
    imap_conn  *conns;             /* all connections */
    unsigned    nconns;
    unsigned    npreauth;
    int         stopping;
    /* Mailboxes changed in this turn, synced once each before any output
     * leaves (conn.c group_commit); each holds a reference. */
    st_box    **gc;
    unsigned    ngc, gccap;
    unsigned    gc_round;
    /* Commits whose syncs are in flight (st_box_commit_start): the group
     * (gc_round) waiting for each, and its result once it ended; each
     * holds a reference. */
    struct gc_flight *fl;
    unsigned    nfl, flcap;
    int         wake;              /* the store's sync descriptor fired */
    /* conn.c GL_WAIT: connections waiting for a commit or parked while
     * their mailbox's is in flight; GL_HELD: output held for a commit.
     * gl[k] the list, gl_taken[k] the part being worked through. */
    struct imap_conn *gl[3], *gl_taken[3];
    /* timers(): no deadline or wake-up of any connection is due before
     * this (a bound from its last look at all of them, lowered by the
     * connections it looked at since); any of them was in IDLE */
    uint64_t    timer_next;
    int         timer_idle;
} imap_server;

extern imap_server *g_srv;

int  imap_server_run(imap_cfg *cfg);

/* conn.c */
void conn_enter_state(imap_conn *c, int state);
void conn_close(imap_conn *c, const char *why);
void out_write(imap_conn *c, const void *p, size_t n);
void out_puts(imap_conn *c, const char *s);
void out_printf(imap_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Write s as an IMAP string: atom-safe quoted, or a literal when needed. */
void out_string(imap_conn *c, const char *s, size_t n);
void out_nstring(imap_conn *c, const char *s, size_t n);
/* Write a mailbox name (quoted or literal). */
void out_mailbox(imap_conn *c, const char *name);
int  out_full(const imap_conn *c);
void conn_flush(imap_conn *c);
/* Make box's changes durable before c's tagged reply goes out: the reply
 * (through reply()/reply_line()) is held and c reads nothing more until
 * the end of this loop turn, when every changed mailbox is synced once for
 * all the commands that changed it. If the sync fails, the reply becomes
 * a NO for `what`. c may be NULL (sync at the end of the turn, nobody
 * waits). Returns 0, or an error when it had to sync at once and failed. */
int  conn_commit(imap_conn *c, st_box *box, const char *what);
/* A complete tagged line (with CRLF), held while c waits for a commit. */
void reply_line(imap_conn *c, const char *line, size_t n);
/* Tagged completion of the command in progress. */
void reply(imap_conn *c, const char *status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
uint64_t now_ms(void);

/* cmd.c */
void cmd_dispatch(imap_conn *c);
void cmd_literal(imap_conn *c);
void cmd_capability_list(imap_conn *c);
void cmd_conn_gone(imap_conn *c);
void cmd_greeting(imap_conn *c);
void cmd_append_abort(imap_conn *c);
int  cmd_tag_ok(const char *t, uint32_t n);
/* Check a password and finish the login command in progress (delayed NO,
 * lock-out, or OK and the authenticated state). */
void cmd_login_check(imap_conn *c, const char *user, size_t ulen, const char *pass, size_t plen);
/* Finish it with a result decided elsewhere (SCRAM). */
void cmd_login_done(imap_conn *c, const char *user, size_t ulen, int ok);

#endif
