/* priv.c -- privilege drop on POSIX hosts (see port/priv.h). */
#include "priv.h"
#include "port.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Rewrite *p (absolute, inside root) to its path after chroot(root). */
static int rebase(char **p, const char *root, char *err, size_t errlen)
{
    size_t rl = strlen(root);
    while (rl > 1 && root[rl - 1] == '/') {
        rl--;
    }
    const char *s = *p;
    if (!s) {
        return 0;
    }
    if (strncmp(s, root, rl) != 0 || (s[rl] != '/' && s[rl] != 0)) {
        snprintf(err, errlen, "%s is outside chroot %s", s, root);
        return -1;
    }
    char *n = strdup(s[rl] ? s + rl : "/");
    if (!n) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    free(*p);
    *p = n;
    return 0;
}

int port_drop_privileges(const char *user, const char *root_dir, int allow_root, char **paths[],
                         size_t npaths, char *err, size_t errlen)
{
    if (!CONFIG_PRIV_DROP) {
        return 0;
    }
    if (root_dir && !user) {
        snprintf(err, errlen, "chroot = %s needs user = ... as well", root_dir);
        return -1;
    }
    if (user) {
        errno = 0;
        struct passwd *pw = getpwnam(user);
        if (!pw) {
            snprintf(err, errlen, "user = %s: %s", user, errno ? strerror(errno) : "no such user");
            return -1;
        }
        uid_t uid = pw->pw_uid;
        gid_t gid = pw->pw_gid;
        if (geteuid() != 0) {
            if (geteuid() == uid) {
                return 0;   /* started as that user already */
            }
            snprintf(err, errlen, "user = %s: must be started as root or as %s", user, user);
            return -1;
        }
        if (root_dir) {
            if (root_dir[0] != '/') {
                snprintf(err, errlen, "chroot = %s: must be an absolute path", root_dir);
                return -1;
            }
            for (size_t i = 0; i < npaths; i++) {
                if (rebase(paths[i], root_dir, err, errlen) < 0) {
                    return -1;
                }
            }
            if (chroot(root_dir) < 0 || chdir("/") < 0) {
                snprintf(err, errlen, "chroot %s: %s", root_dir, strerror(errno));
                return -1;
            }
        }
        /* Groups first: after setuid we could no longer change them. */
        if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
            snprintf(err, errlen, "cannot switch to user %s: %s", user, strerror(errno));
            return -1;
        }
        if (uid != 0 && (setuid(0) == 0 || geteuid() == 0)) {
            snprintf(err, errlen, "dropped to %s but could regain root; refusing to run", user);
            return -1;
        }
        log_info("running as user %s%s%s", user, root_dir ? " in chroot " : "", root_dir ? root_dir : "");
    }
    if (geteuid() == 0 && !allow_root) {
        snprintf(err, errlen,
                 "refusing to run as root: set user = NAME in the config file (or allow_root = yes)");
        return -1;
    }
    return 0;
}
