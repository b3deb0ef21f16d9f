/* passwd_cmd.c -- `picoimapd passwd`: print a passwd-file hash line.
 *
 *   picoimapd passwd [-s SCRAM-SHA-256|SHA512-CRYPT] [USER]
 *
 * Reads the password from the terminal (asked twice, not echoed) or, when
 * stdin is not a terminal, from the first line of stdin (for scripts).
 * Prints "{SCHEME}hash", or "USER:{SCHEME}hash" when USER is given -- a
 * line to append to the passwd-file. {SCRAM-SHA-256} is the default: it
 * works for every mechanism (LOGIN, PLAIN, SCRAM-SHA-256) and is what
 * Dovecot writes for SCRAM, so users migrate both ways.
 */
#include "passwd.h"
#include "port.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

int posix_passwd_main(int argc, char **argv);

/* Read one line without its newline; no echo on a terminal. */
static int read_pass(const char *prompt, char *buf, size_t n)
{
    int tty = isatty(0);
    struct termios old, raw;
    if (tty) {
        fputs(prompt, stderr);
        if (tcgetattr(0, &old) == 0) {
            raw = old;
            raw.c_lflag &= ~(tcflag_t)ECHO;
            tcsetattr(0, TCSAFLUSH, &raw);
        } else {
            tty = 0;
        }
    }
    char *r = fgets(buf, (int)n, stdin);
    if (tty) {
        tcsetattr(0, TCSAFLUSH, &old);
        fputs("\n", stderr);
    }
    if (!r) {
        return -1;
    }
    size_t l = strcspn(buf, "\r\n");
    if (buf[l] == 0 && l == n - 1) {
        return -1;   /* no newline in n bytes: too long */
    }
    buf[l] = 0;
    return 0;
}

int posix_passwd_main(int argc, char **argv)
{
    const char *scheme = "SCRAM-SHA-256";
    int i = 1;
    if (i + 1 < argc && strcmp(argv[i], "-s") == 0) {
        scheme = argv[i + 1];
        i += 2;
    }
    const char *user = i < argc ? argv[i++] : NULL;
    if (i < argc || (strcmp(scheme, "SCRAM-SHA-256") != 0 && strcmp(scheme, "SHA512-CRYPT") != 0)) {
        fprintf(stderr, "usage: picoimapd passwd [-s SCRAM-SHA-256|SHA512-CRYPT] [USER]\n");
        return 2;
    }
    if (user && (!user[0] || strchr(user, ':') || strchr(user, '\n'))) {
        fprintf(stderr, "picoimapd passwd: bad user name\n");
        return 2;
    }
    char p1[PW_PASS_MAX + 2], p2[PW_PASS_MAX + 2];
    if (read_pass("Password: ", p1, sizeof p1) < 0) {
        fprintf(stderr, "picoimapd passwd: no password read (at most %d bytes)\n", PW_PASS_MAX);
        return 1;
    }
    if (isatty(0)) {
        if (read_pass("Again: ", p2, sizeof p2) < 0 || strcmp(p1, p2) != 0) {
            fprintf(stderr, "picoimapd passwd: the passwords differ\n");
            return 1;
        }
    }
    if (!p1[0]) {
        fprintf(stderr, "picoimapd passwd: empty password\n");
        return 1;
    }
    char out[PW_SCRAM_HASH_MAX > PW_SHA512_CRYPT_MAX ? PW_SCRAM_HASH_MAX : PW_SHA512_CRYPT_MAX];
    int n;
    if (strcmp(scheme, "SCRAM-SHA-256") == 0) {
        uint8_t salt[16];
        port_random(salt, sizeof salt);
        n = pw_hash_scram_sha256(p1, strlen(p1), salt, sizeof salt, CONFIG_SCRAM_ITERATIONS, out, sizeof out);
    } else {
        static const char al[] = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        uint8_t r[16];
        char salt[17];
        port_random(r, sizeof r);
        for (int k = 0; k < 16; k++) {
            salt[k] = al[r[k] & 63];
        }
        salt[16] = 0;
        n = pw_hash_sha512_crypt(p1, strlen(p1), salt, out, sizeof out);
    }
    memset(p1, 0, sizeof p1);
    memset(p2, 0, sizeof p2);
    if (n < 0) {
        fprintf(stderr, "picoimapd passwd: cannot hash that password\n");
        return 1;
    }
    printf("%s%s%s\n", user ? user : "", user ? ":" : "", out);
    return 0;
}
