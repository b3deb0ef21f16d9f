/*
 * priv.h -- dropping root after start-up (port/posix/priv.c implements it).
 *
 * The server starts as root to bind ports below 1024 and read the TLS key,
 * then calls port_drop_privileges() once, before it opens the store or
 * accepts a client (the store's files are then created by the right user).
 */
#ifndef PORT_PRIV_H
#define PORT_PRIV_H

#include <stddef.h>

/* user: switch to this user's uid, gid and only that group (NULL: stay).
 * root_dir: chroot there first (NULL: no chroot); each *paths[i] must lie
 * inside it and is rewritten to its path inside the chroot.
 * allow_root: 0 refuses to go on running as root.
 * Returns 0, or -1 with the reason in err; the caller must not go on
 * (a failed drop is fatal, never ignored). */
int port_drop_privileges(const char *user, const char *root_dir, int allow_root, char **paths[],
                         size_t npaths, char *err, size_t errlen);

#endif
