/*
 * store.c -- the store as a whole: users' folders, mailboxes by name
 * (create, delete, rename, list), subscriptions, UIDVALIDITY allocation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_int.h"


int st_store_open(st_store **out, const char *root, const st_vfs *vfs)
{
    *out = NULL;
    if (!vfs) {
        vfs = st_vfs_posix();
    }
    st_store *s = calloc(1, sizeof *s);
    if (!s) {
        return ST_ENOMEM;
    }
    s->vfs = vfs;
    s->root = st_strdup(root);
    if (!s->root) {
        free(s);
        return ST_ENOMEM;
    }
    int r = vfs->mkdir(vfs, root);
    if (r && r != ST_EEXIST) {
        free(s->root);
        free(s);
        return r;
    }
    *out = s;
    return 0;
}

void st_store_close(st_store *s)
{
    if (!s) {
        return;
    }
    st_box_free_all(s);
    free(s->root);
    free(s);
}

/* One slot of .uidvalidity: "%010u %08x\n", the value and its CRC. */
#define UIDV_SLOT 20

static uint32_t uidv_slot(const char *p)
{
    char d[11];
    memcpy(d, p, 10);
    d[10] = 0;
    if (p[10] != ' ' || p[19] != '\n' || strspn(d, "0123456789") != 10) {
        return 0;
    }
    uint32_t v = (uint32_t)strtoul(d, NULL, 10);
    return strtoul(p + 11, NULL, 16) == st_crc32(0, d, 10) ? v : 0;
}

/*
 * A UIDVALIDITY never handed out before in this folder: the clock, or one
 * more than the last one if the clock is behind it (routers without an RTC
 * boot in 1970 until NTP answers; a mailbox deleted and recreated within a
 * second). The last value is kept in <dir>/.uidvalidity in two checksummed
 * slots written alternately, so a torn write loses only the value being
 * written (never used: it is synced before any log names it).
 */
int st_new_uidvalidity(st_store *s, const char *dir, uint32_t *out)
{
    const st_vfs *v = s->vfs;
    char *path = st_path(dir, ".uidvalidity", NULL);
    st_file *f;
    char buf[2 * UIDV_SLOT + 1];
    if (!path) {
        return ST_ENOMEM;
    }
    int r = v->open(v, path, ST_O_WRITE | ST_O_CREATE, &f);
    free(path);
    if (r) {
        return r;
    }
    if ((r = st_vlock(f, ST_LOCK_EX, 1)) != 0) {
        st_vclose(f);
        return r;
    }
    memset(buf, 0, sizeof buf);
    long n = st_vpread(f, buf, 2 * UIDV_SLOT, 0);
    if (n < 0) {
        /* never guess: a restarted counter could repeat a UIDVALIDITY */
        st_vlock(f, ST_LOCK_UN, 0);
        st_vclose(f);
        return (int)n;
    }
    uint32_t a = uidv_slot(buf), b = uidv_slot(buf + UIDV_SLOT);
    uint32_t last = a > b ? a : b;
    int64_t now = st_now();
    uint32_t val = now > 0 && now < UINT32_MAX ? (uint32_t)now : 1;
    if (val <= last) {
        val = last + 1;
    }
    if (val == 0) {
        val = 1; /* wrapped after 4 billion creations: never 0 */
    }
    char d[11];
    snprintf(d, sizeof d, "%010u", (unsigned)val);
    snprintf(buf, sizeof buf, "%s %08x\n", d, (unsigned)st_crc32(0, d, 10));
    r = st_vpwrite(f, buf, UIDV_SLOT, (val & 1) * UIDV_SLOT);
    if (!r) {
        r = st_vsync(f);
    }
    st_vlock(f, ST_LOCK_UN, 0);
    st_vclose(f);
    if (!r) {
        *out = val;
    }
    return r;
}

int st_user_ensure(st_store *s, const char *user)
{
    char *dir;
    int r = st_user_dir(s, user, &dir);
    if (r) {
        return r;
    }
    r = s->vfs->mkdir(s->vfs, dir);
    if (!r) {
        r = s->vfs->sync_dir(s->vfs, s->root);
    }
    free(dir);
    if (r && r != ST_EEXIST) {
        return r;
    }
    r = st_mailbox_create(s, user, "INBOX");
    return r == ST_EEXIST ? 0 : r;
}

int st_mailbox_create(st_store *s, const char *user, const char *name)
{
    const st_vfs *v = s->vfs;
    char *dir, *mbox, *log;
    st_file *f;
    uint32_t uidv;
    int r = st_box_paths(s, user, name, &dir, &mbox, &log);
    if (r) {
        return r;
    }
    /* a deleted namesake's compaction leftovers must not be taken for ours */
    st_stat ms;
    if (v->stat(v, mbox, &ms) == ST_ENOENT) {
        st_compact_clean(s, log);
    }
    /* the mbox first, exclusively: it is what says the mailbox exists, and a
     * crash before the log is written leaves a mailbox that opens (rebuild) */
    r = v->open(v, mbox, ST_O_WRITE | ST_O_CREATE | ST_O_EXCL, &f);
    if (!r) {
        st_vclose(f);
        r = st_new_uidvalidity(s, dir, &uidv);
        if (!r) {
            st_box empty;
            memset(&empty, 0, sizeof empty);
            empty.uidnext = 1;
            empty.recent_uid = 1;
            empty.highestmodseq = 1;
            /* a stale log of a deleted namesake is replaced here */
            r = st_log_write_snapshot(s, dir, log, uidv, &empty, 0, NULL);
        }
        if (r) {
            v->remove(v, mbox);
        }
    }
    free(dir);
    free(mbox);
    free(log);
    return r;
}

/*
 * INBOX always exists (RFC 3501). A crash between moving INBOX's messages
 * away (RENAME INBOX) and creating the new one leaves none: make it again
 * whenever it is found missing in an existing user folder.
 */
int st_inbox_heal(st_store *s, const char *user)
{
    char *dir, *mbox, *log;
    st_stat st;
    int r = st_box_paths(s, user, "INBOX", &dir, &mbox, &log);
    if (r) {
        return r;
    }
    if (s->vfs->stat(s->vfs, mbox, &st) == ST_ENOENT && s->vfs->stat(s->vfs, dir, &st) == 0) {
        r = st_mailbox_create(s, user, "INBOX");
        r = r == ST_EEXIST ? 0 : r;
    }
    free(dir);
    free(mbox);
    free(log);
    return r;
}

int st_mailbox_exists(st_store *s, const char *user, const char *name)
{
    if (strcmp(name, "INBOX") == 0) {
        st_inbox_heal(s, user);
    }
    char *dir, *mbox, *log;
    st_stat st;
    if (st_box_paths(s, user, name, &dir, &mbox, &log)) {
        return 0;
    }
    int r = s->vfs->stat(s->vfs, mbox, &st);
    free(dir);
    free(mbox);
    free(log);
    return r == 0 && !st.isdir;
}

int st_mailbox_delete(st_store *s, const char *user, const char *name)
{
    const st_vfs *v = s->vfs;
    char *dir, *mbox, *log;
    if (strcmp(name, "INBOX") == 0) {
        return ST_EPERM;
    }
    int r = st_box_paths(s, user, name, &dir, &mbox, &log);
    if (r) {
        return r;
    }
    /* the mbox first: once it is gone the mailbox is gone; a leftover log
     * is replaced by the next create of the name */
    r = v->remove(v, mbox);
    if (!r) {
        int e = v->remove(v, log);
        r = e == ST_ENOENT ? 0 : e;
        if (!r) {
            r = st_compact_clean(s, log);
        }
        if (!r) {
            st_meta_remove(s, log); /* a cache: a leftover is harmless */
            r = v->sync_dir(v, dir);
        }
        st_mark_gone(s, user, name);
    }
    free(dir);
    free(mbox);
    free(log);
    return r;
}

/* ---- listing ---- */

typedef struct list_ctx {
    void (*cb)(void *ctx, const char *name);
    void *ctx;
    /* rename collects names instead */
    char **names;
    size_t n, cap;
    int err;
} list_ctx;

static int list_one(void *ctx, const char *file)
{
    list_ctx *c = ctx;
    char name[1024];
    if (file[0] == '.' || st_unescape(file, name, sizeof name)) {
        return 0; /* ours (state, spool) or not a name we write */
    }
    if (c->cb) {
        c->cb(c->ctx, name);
        return 0;
    }
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 16;
        char **nn = realloc(c->names, nc * sizeof *nn);
        if (!nn) {
            return c->err = ST_ENOMEM;
        }
        c->names = nn;
        c->cap = nc;
    }
    if (!(c->names[c->n] = st_strdup(name))) {
        return c->err = ST_ENOMEM;
    }
    c->n++;
    return 0;
}

int st_mailbox_list(st_store *s, const char *user,
                    void (*cb)(void *ctx, const char *name), void *ctx)
{
    char *dir;
    list_ctx c = { cb, ctx, NULL, 0, 0, 0 };
    st_inbox_heal(s, user);
    int r = st_user_dir(s, user, &dir);
    if (r) {
        return r;
    }
    r = s->vfs->list(s->vfs, dir, list_one, &c);
    free(dir);
    return r;
}

/* ---- rename ---- */

/* Copy file `from` to `to` durably: temp, sync, rename. */
static int copy_file(st_store *s, const char *dir, const char *from, const char *to)
{
    const st_vfs *v = s->vfs;
    st_file *in, *out = NULL;
    char *tmp = st_cat(to, ".tmp");
    char *buf = malloc(ST_CHUNK);
    int r = tmp && buf ? v->open(v, from, ST_O_READ, &in) : ST_ENOMEM;
    if (r) {
        free(tmp);
        free(buf);
        return r;
    }
    r = v->open(v, tmp, ST_O_WRITE | ST_O_CREATE | ST_O_TRUNC, &out);
    for (uint64_t off = 0; !r;) {
        long n = st_vpread(in, buf, ST_CHUNK, off);
        if (n <= 0) {
            r = n < 0 ? (int)n : 0;
            break;
        }
        r = st_vpwrite(out, buf, (size_t)n, off);
        off += (uint64_t)n;
    }
    if (!r) {
        r = st_vsync(out);
    }
    if (out) {
        int c = st_vclose(out);
        r = r ? r : c;
    }
    st_vclose(in);
    if (!r) {
        r = v->rename(v, tmp, to);
    }
    if (r) {
        v->remove(v, tmp);
    }
    free(tmp);
    free(buf);
    return r;
}

/*
 * Rename one mailbox so that a crash at any point leaves it whole under one
 * of the names: with its lock held (no process writes its log meanwhile),
 * copy the log to the new name, rename the mbox (the commit point), then
 * drop the old log. A log without its mbox is stale and ignored; the next
 * create of that name replaces it.
 */
static int rename_one(st_store *s, const char *user, const char *from, const char *to)
{
    const st_vfs *v = s->vfs;
    char *d1, *m1, *l1, *d2, *m2, *l2;
    st_file *lk = NULL;
    st_stat st;
    int r = st_box_paths(s, user, from, &d1, &m1, &l1);
    if (r) {
        return r;
    }
    r = st_box_paths(s, user, to, &d2, &m2, &l2);
    if (r) {
        free(d1);
        free(m1);
        free(l1);
        return r;
    }
    r = v->open(v, m1, ST_O_WRITE, &lk);
    if (!r) {
        r = st_vlock(lk, ST_LOCK_EX, 1);
    }
    if (!r) {
        /* the log must describe this mbox before it is carried over */
        r = st_compact_recover_paths(s, d1, lk, l1);
    }
    if (!r) {
        r = v->stat(v, l1, &st);
        if (r == 0) {
            r = copy_file(s, d1, l1, l2);
        } else if (r == ST_ENOENT) {
            /* no log to carry: the new name must not inherit a stale one */
            r = v->remove(v, l2);
            r = r == ST_ENOENT ? 0 : r;
        }
    }
    if (!r) {
        r = v->sync_dir(v, d1);
    }
    if (!r) {
        r = v->rename(v, m1, m2);
    }
    if (!r) {
        r = v->sync_dir(v, d1);
        st_mark_gone(s, user, from);
        v->remove(v, l1); /* stale now; failing to remove it is harmless */
        st_meta_rename(s, l1, l2); /* the cache follows; best effort */
    }
    if (lk) {
        st_vlock(lk, ST_LOCK_UN, 0);
        st_vclose(lk);
    }
    free(d1);
    free(m1);
    free(l1);
    free(d2);
    free(m2);
    free(l2);
    return r;
}

int st_mailbox_rename(st_store *s, const char *user, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to);
    char *dir;
    int r;
    if (strcmp(to, "INBOX") == 0 || st_mailbox_exists(s, user, to)) {
        return ST_EEXIST;
    }
    if (strncmp(to, from, fl) == 0 && (to[fl] == '/' || to[fl] == 0)) {
        return ST_EINVAL; /* into itself */
    }
    if ((r = st_user_dir(s, user, &dir)) != 0) {
        return r;
    }
    if (strcmp(from, "INBOX") == 0) {
        /* RFC 3501: INBOX's messages move to the new name and INBOX stays,
         * empty (a new UIDVALIDITY); INBOX's children do not move. */
        if (!st_mailbox_exists(s, user, "INBOX")) {
            r = ST_ENOENT;
        } else {
            r = rename_one(s, user, from, to);
            if (!r) {
                r = st_mailbox_create(s, user, "INBOX");
            }
            if (!r) {
                r = s->vfs->sync_dir(s->vfs, dir);
            }
        }
        free(dir);
        return r;
    }
    list_ctx c = { NULL, NULL, NULL, 0, 0, 0 };
    r = s->vfs->list(s->vfs, dir, list_one, &c);
    if (!r) {
        r = c.err;
    }
    int found = 0;
    /* check every target first: rename all or nothing (short of a crash) */
    for (size_t i = 0; !r && i < c.n; i++) {
        const char *n = c.names[i];
        if (strcmp(n, from) == 0) {
            found = 1;
        } else if (strncmp(n, from, fl) == 0 && n[fl] == '/') {
            char *t = malloc(tl + strlen(n) - fl + 1);
            if (!t) {
                r = ST_ENOMEM;
                break;
            }
            sprintf(t, "%s%s", to, n + fl);
            if (st_mailbox_exists(s, user, t)) {
                r = ST_EEXIST;
            }
            free(t);
        }
    }
    if (!r && !found) {
        r = ST_ENOENT;
    }
    for (size_t i = 0; !r && i < c.n; i++) {
        const char *n = c.names[i];
        if (strcmp(n, from) == 0 || (strncmp(n, from, fl) == 0 && n[fl] == '/')) {
            char *t = malloc(tl + strlen(n) - fl + 1);
            if (!t) {
                r = ST_ENOMEM;
                break;
            }
            sprintf(t, "%s%s", to, n + fl);
            r = rename_one(s, user, n, t);
            free(t);
        }
    }
    if (!r) {
        r = s->vfs->sync_dir(s->vfs, dir);
    }
    for (size_t i = 0; i < c.n; i++) {
        free(c.names[i]);
    }
    free(c.names);
    free(dir);
    return r;
}

/* ---- subscriptions: <user>/.subscriptions, one name a line ---- */

#define SUBS_MAX (1024u * 1024u) /* a megabyte of names is plenty */

static int subs_path(st_store *s, const char *user, char **dir, char **path)
{
    int r = st_user_dir(s, user, dir);
    if (r) {
        return r;
    }
    *path = st_path(*dir, ".subscriptions", NULL);
    if (!*path) {
        free(*dir);
        return ST_ENOMEM;
    }
    return 0;
}

int st_subscribe(st_store *s, const char *user, const char *name, int on)
{
    const st_vfs *v = s->vfs;
    char *dir, *path, *data = NULL, *tmp = NULL, *out = NULL;
    size_t len = 0, nl = strlen(name), o = 0;
    int r = subs_path(s, user, &dir, &path), present = 0;
    if (r) {
        return r;
    }
    if (!nl || strchr(name, '\n')) {
        r = ST_EINVAL;
        goto done;
    }
    r = st_slurp(v, path, &data, &len, SUBS_MAX);
    if (r == ST_ENOENT) {
        r = 0;
    }
    if (r) {
        goto done;
    }
    out = malloc(len + nl + 2);
    if (!out) {
        r = ST_ENOMEM;
        goto done;
    }
    /* copy every line but `name` */
    for (char *p = data; p && *p;) {
        char *e = strchr(p, '\n');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == nl && memcmp(p, name, nl) == 0) {
            present = 1;
        } else if (l) {
            memcpy(out + o, p, l);
            o += l;
            out[o++] = '\n';
        }
        p = e ? e + 1 : p + l;
    }
    if (present == on) {
        goto done; /* nothing to change */
    }
    if (on) {
        memcpy(out + o, name, nl);
        o += nl;
        out[o++] = '\n';
    }
    /* temp, sync, rename, sync dir: never a half-written list */
    tmp = st_path(dir, ".subscriptions.tmp", NULL);
    st_file *f;
    if (!tmp) {
        r = ST_ENOMEM;
        goto done;
    }
    r = v->open(v, tmp, ST_O_WRITE | ST_O_CREATE | ST_O_TRUNC, &f);
    if (!r) {
        r = o ? st_vpwrite(f, out, o, 0) : 0;
        if (!r) {
            r = st_vsync(f);
        }
        int c = st_vclose(f);
        r = r ? r : c;
    }
    if (!r) {
        r = v->rename(v, tmp, path);
    }
    if (!r) {
        r = v->sync_dir(v, dir);
    }
    if (r) {
        v->remove(v, tmp);
    }
done:
    free(out);
    free(data);
    free(tmp);
    free(path);
    free(dir);
    return r;
}

int st_subs_list(st_store *s, const char *user,
                 void (*cb)(void *ctx, const char *name), void *ctx)
{
    char *dir, *path, *data;
    size_t len;
    int r = subs_path(s, user, &dir, &path);
    if (r) {
        return r;
    }
    r = st_slurp(s->vfs, path, &data, &len, SUBS_MAX);
    free(path);
    free(dir);
    if (r == ST_ENOENT) {
        return 0;
    }
    if (r) {
        return r;
    }
    for (char *p = data; *p;) {
        char *e = strchr(p, '\n');
        if (e) {
            *e = 0;
        }
        if (*p) {
            cb(ctx, p);
        }
        if (!e) {
            break;
        }
        p = e + 1;
    }
    free(data);
    return 0;
}
