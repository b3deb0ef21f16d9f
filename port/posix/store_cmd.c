/* store_cmd.c -- the store's command-line tools on POSIX hosts:
 *   picoimapd deliver -u USER [-m MAILBOX] [-c CONFIG] < message
 *   picoimapd import  -u USER [-m MAILBOX] [-c CONFIG] PATH   (mbox or Maildir)
 *   picoimapd export  -u USER [-c CONFIG] DIR                 (Maildir++)
 *   picoimapd check   [-u USER] [-c CONFIG] [--compact]
 * The logic lives in core/lmtp.c (deliver) and storage/tools.c; this file
 * reads stdin and the command line. Exit codes follow sysexits.h, which is
 * what Postfix, fetchmail and procmail expect of a delivery agent. */
#include "imap.h"
#include "lmtp.h"
#include "mime.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static long read_stdin(void *ctx, void *buf, size_t n)
{
    (void)ctx;
    for (;;) {
        ssize_t k = read(0, buf, n);
        if (k >= 0 || errno != EINTR) {
            return (long)k;
        }
    }
}

static int load_cfg(const char *conf, imap_cfg *cfg)
{
    char *text = NULL, err[256];
    size_t len = 0;
    int rc = st_slurp(st_vfs_posix(), conf, &text, &len, 1 << 20);
    if (rc < 0) {
        fprintf(stderr, "picoimapd: cannot read config %s: %s\n", conf, st_strerror(rc));
        return -1;
    }
    char *dup = xstrdup(conf);
    rc = cfg_parse(cfg, text, dirname(dup), err, sizeof err);
    free(dup);
    free(text);
    if (rc < 0) {
        fprintf(stderr, "picoimapd: %s: %s\n", conf, err);
        return -1;
    }
    return 0;
}

static void say(void *ctx, const char *line)
{
    (void)ctx;
    printf("%s\n", line);
}

static int usage(void)
{
    fprintf(stderr,
            "usage: picoimapd deliver -u USER [-m MAILBOX] [-c CONFIG] < MESSAGE\n"
            "       picoimapd import -u USER [-m MAILBOX] [-c CONFIG] MBOX-OR-MAILDIR\n"
            "       picoimapd export -u USER [-c CONFIG] DIR\n"
            "       picoimapd check [-u USER] [-c CONFIG] [--compact]\n");
    return 64; /* EX_USAGE */
}

int posix_store_main(int argc, char **argv)
{
    const char *cmd = argv[0], *conf = "/etc/picoimapd.conf", *user = NULL, *mailbox = "INBOX";
    const char *arg = NULL;
    int compact = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            conf = argv[++i];
        } else if (strcmp(argv[i], "-u") == 0 && i + 1 < argc) {
            user = argv[++i];
        } else if (strcmp(argv[i], "-m") == 0 && i + 1 < argc) {
            mailbox = argv[++i];
        } else if (strcmp(argv[i], "--compact") == 0) {
            compact = 1;
        } else if (argv[i][0] != '-' && !arg) {
            arg = argv[i];
        } else {
            return usage();
        }
    }
    int needs_user = strcmp(cmd, "check") != 0, needs_arg = !strcmp(cmd, "import") || !strcmp(cmd, "export");
    if ((needs_user && !user) || (needs_arg && !arg) || (!needs_arg && arg)) {
        return usage();
    }
    imap_cfg cfg;
    if (load_cfg(conf, &cfg) < 0) {
        return TOOL_EX_CONFIG;
    }
    port_log_setup("stderr", LOG_WARN_);
    char why[512] = "";
    int rc = 0;
    if (strcmp(cmd, "deliver") == 0) {
        rc = tool_deliver(&cfg, user, mailbox, read_stdin, NULL, why, sizeof why);
        if (rc) {
            fprintf(stderr, "picoimapd deliver: %s\n", why);
        }
        cfg_free(&cfg);
        return rc;
    }
    st_store *s;
    rc = st_store_open(&s, cfg.store, st_vfs_posix());
    if (rc) {
        fprintf(stderr, "picoimapd %s: cannot open store %s: %s\n", cmd, cfg.store, st_strerror(rc));
        cfg_free(&cfg);
        return TOOL_EX_TEMPFAIL;
    }
    st_store_set_quota(s, cfg.quota);
    st_store_set_compact_ratio(s, cfg.compact_permille);
    unsigned n = 0;
    if (strcmp(cmd, "import") == 0) {
        /* Parse each message as it is written and keep its tree (and
         * renderings) in the cache file: the server's first FETCH
         * BODYSTRUCTURE or SEARCH after an import then reads no message. */
        mime_watch_imports(s);
        struct stat st;
        if (stat(arg, &st) < 0) {
            fprintf(stderr, "picoimapd import: %s: %s\n", arg, strerror(errno));
            rc = ST_ENOENT;
        } else if (S_ISDIR(st.st_mode)) {
            rc = st_import_maildir(s, user, mailbox, arg, &n);
        } else {
            rc = st_import_mbox(s, user, mailbox, arg, &n);
        }
        printf("imported %u messages into %s/%s\n", n, user, mailbox);
    } else if (strcmp(cmd, "export") == 0) {
        rc = st_export_maildir(s, user, arg, &n);
        printf("exported %u messages of %s to %s\n", n, user, arg);
    } else {
        unsigned boxes = 0, msgs = 0, bad = 0;
        rc = st_check(s, user, compact, say, NULL, &boxes, &msgs, &bad);
        printf("checked %u mailboxes, %u messages: %u problems left\n", boxes, msgs, bad);
        if (!rc && bad) {
            rc = ST_ECORRUPT;
        }
    }
    if (rc) {
        fprintf(stderr, "picoimapd %s: %s\n", cmd, st_strerror(rc));
    }
    st_store_close(s);
    cfg_free(&cfg);
    return rc ? 1 : 0;
}
