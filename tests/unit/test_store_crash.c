/*
 * test_store_crash.c -- power cut at every write/sync/rename point of a
 * scripted workload (vfs_crash), and an error at every file call (vfs_fault).
 *
 * A reference run records, after each step, the store as a fresh process
 * sees it from disk, and how many crash events (or calls) the step took.
 * Then for every event N: a fresh store, the workload until the power goes
 * at N, everything closed, the store reopened with the plain vfs, and the
 * state must equal the reference after the last acknowledged step or after
 * the step in flight -- nothing acknowledged lost, nothing half there. UIDs
 * strictly increase, UIDVALIDITY of existing mailboxes is unchanged, and a
 * new append gets a UID above every UID acknowledged before.
 *
 * CRASH_SEEDS=n (env) repeats the crash sweep with n seeds (default 1;
 * each seed picks other keep/drop/tear fates for the unsynced writes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ftw.h>
#include <sys/stat.h>

#include "st_int.h"
#include "mime.h"
#include "unit.h"

#define NFLAG 12            /* steps of one flag change each */
#define NSTEPS (32 + NFLAG)
/* the step number of a kind (see step()) */
#define KSTEP(kind) ((kind) < 12 ? (kind) : (kind) + NFLAG - 1)
#define STATE_MAX (64 * 1024)

static char root[256];
static int64_t fixed_clock(void) { return 1700000000; }

/* ---- the workload ---- */

static char *big;      /* 200 KB message: spooled */
static size_t big_len;

static int put(st_box *b, const char *m, size_t n, uint8_t flags, uint64_t kw)
{
    st_append *a;
    uint32_t uid;
    int r = st_append_begin(b, 1600000000, 0, flags, kw, n, &a);
    if (r) {
        return r;
    }
    for (size_t i = 0; i < n; i += 1000) {
        if ((r = st_append_data(a, m + i, n - i < 1000 ? n - i : 1000)) != 0) {
            st_append_abort(a);
            return r;
        }
    }
    return st_append_end(a, &uid);
}

/* The third sweep runs the workload as the server does: the core's MIME
 * watcher parses every new message (the 200 KB one gets its cache record
 * at once) and step 6 builds the tree of every INBOX message as a FETCH
 * BODYSTRUCTURE does (the small ones get their records then), so cache
 * writes are among the power-cut and failure points. */
static int with_mime;

/* Commits through st_box_commit_start, the server's way: the layers'
 * syncs are "in flight" until reaped (vfs.h st_vdefer), so the phases of
 * a commit run from the reap, and its result comes by the callback. */
static int async_commits;
static st_box *ended_box;
static int ended_rc;

static void on_commit(void *ctx, st_box *b, int rc)
{
    (void)ctx;
    ended_box = b;
    ended_rc = rc;
}

static int wl_open(st_store **s, const st_vfs *v)
{
    int r = st_store_open(s, root, v);
    if (!r && with_mime) {
        mime_watch_appends(*s);
    }
    if (!r && async_commits) {
        st_store_set_async(*s, 1, on_commit, NULL);
    }
    return r;
}

static int commit(st_store *s, st_box *b)
{
    if (!async_commits) {
        return st_box_commit(b);
    }
    ended_box = NULL;
    int r = st_box_commit_start(b);
    if (r != 1) {
        return r;
    }
    (void)s; /* the box's own store: step 11 and 19's is another process's */
    for (int i = 0; i < 100 && ended_box != b; i++) {
        st_store_sync_reap(((stbox *)b)->s, 1);
    }
    return ended_box == b ? ended_rc : ST_EIO;
}

/* Steps 22-24 keep "Old" open across steps while a compaction job copies
 * it in slices (what the server does between loop turns). */
static st_box *held;
#define MID_LEN (100 * 1024)
#define M8 "Subject: 8\r\n\r\ndelivered meanwhile\r\n"
#define M9 "Subject: 9\r\n\r\nappended meanwhile\r\n"
static st_crash crash;
static unsigned job_slices;   /* st_store_compact_work() calls that had more */
static unsigned long job_done; /* st_compactions after step 24 */
/* Steps 31-33: a job on Old after its last close (kept index) */
static int closed_job;         /* step 31's close left Old a job */
static unsigned long closed_at31, closed_at33; /* st_compactions then */

/* s's job on Old, kept after its last close, if any. */
static int old_has_closed_job(st_store *s)
{
    for (stbox *k = s->boxes; k; k = k->next) {
        if (strcmp(k->pub.name, "Old") == 0 && !k->refs && k->cjob) {
            return 1;
        }
    }
    return 0;
}

static void drop_held(void)
{
    if (held) {
        st_box_close(held);
        held = NULL;
    }
}

/* Step k (1-based); returns 0 when the step is acknowledged. */
static int step(st_store *s, const st_vfs *v, int k)
{
    st_box *b = NULL, *d = NULL;
    int r = 0;
    int kind = k < 12 ? k : k < 12 + NFLAG ? 12 : k - NFLAG + 1;
    switch (kind) {
    case 1:
        return st_user_ensure(s, "u");
    case 2:
        return st_mailbox_create(s, "u", "A");
    case 3:
    case 4:
    case 5:
        if ((r = st_box_open(s, "u", "INBOX", &b)) != 0) {
            return r;
        }
        if (k == 3) {
            r = put(b, "Subject: 1\r\n\r\nFrom the start\r\n", 31, 0, 0);
        } else if (k == 4) {
            r = put(b, big, big_len, ST_F_SEEN, 0);
        } else {
            int kw = st_keyword(b, "k1", 2, 1);
            r = kw < 0 ? kw : put(b, "Subject: 3\r\n\r\n>From quoted", 27, ST_F_ANSWERED, 1u << kw);
        }
        break;
    case 6:
        if ((r = st_box_open(s, "u", "INBOX", &b)) != 0) {
            return r;
        }
        r = st_set_flags(b, 0, ST_F_FLAGGED | ST_F_SEEN, 0);
        for (uint32_t i = 0; !r && with_mime && i < b->count; i++) {
            mime_tree t;
            mime_cache_clear();     /* from the cache file, or parsed */
            if (mime_tree_get(b, i, 1, &t) == 0) {
                mime_tree_free(&t);
            }
        }
        break;
    case 7:
        if ((r = st_box_open(s, "u", "INBOX", &b)) != 0) {
            return r;
        }
        r = st_expunge(b, 1);
        break;
    case 8: {
        uint32_t nu;
        if ((r = st_box_open(s, "u", "INBOX", &b)) != 0) {
            return r;
        }
        if ((r = st_box_open(s, "u", "A", &d)) != 0) {
            break;
        }
        r = st_copy(b, 1, d, &nu); /* msg 2 was expunged and purged */
        if (!r) {
            r = commit(s, d);
        }
        break;
    }
    case 9:
        if ((r = st_box_open(s, "u", "A", &b)) != 0) {
            return r;
        }
        r = put(b, "Subject: 4\r\n\r\nin A\r\n", 20, ST_F_DRAFT, 0);
        break;
    case 10:
        return st_mailbox_rename(s, "u", "A", "B");
    case 11: {
        /* another process (deliver) appends to INBOX */
        st_store *s2;
        if ((r = wl_open(&s2, v)) != 0) {
            return r;
        }
        if ((r = st_box_open(s2, "u", "INBOX", &b)) == 0) {
            r = put(b, "Subject: 5\r\n\r\ndelivered\r\n", 25, 0, 0);
            if (!r) {
                r = commit(s2, b);
            }
            st_box_close(b);
        }
        st_store_close(s2);
        return r;
    }
    case 12:
        /* flag churn, one change a step: forces log checkpoints
         * (st_ckpt_min is small) */
        if ((r = st_box_open(s, "u", "INBOX", &b)) != 0) {
            return r;
        }
        r = st_set_flags(b, (uint32_t)k % b->count, (uint8_t)(k & 7), 0);
        break;
    case 13:
        return st_mailbox_create(s, "u", "C");
    case 14:
        if ((r = st_box_open(s, "u", "C", &b)) != 0) {
            return r;
        }
        r = put(b, "x\r\n", 3, 0, 0);
        break;
    case 15:
        return st_mailbox_delete(s, "u", "C");
    case 16:
        return st_mailbox_rename(s, "u", "INBOX", "Old");
    case 17:
        if ((r = st_box_open(s, "u", "INBOX", &b)) != 0) {
            return r;
        }
        r = put(b, "Subject: 6\r\n\r\nafter rename\r\n", 28, 0, 0);
        break;
    case 18:
        /* expunge the big one, then compact on demand (headers refreshed) */
        if ((r = st_box_open(s, "u", "Old", &b)) != 0) {
            return r;
        }
        for (uint32_t i = 0; i < b->count; i++) {
            if (b->msg[i].size > 100000) {
                r = st_expunge(b, i);
            }
        }
        if (!r) {
            r = commit(s, b);
        }
        if (!r) {
            st_box_purge(b); /* the core's purge point (ratio 0: no auto) */
            r = st_box_compact(b);
        }
        break;
    case 19: {
        /* a second process delivers into the compacted mailbox */
        st_store *s2;
        if ((r = wl_open(&s2, v)) != 0) {
            return r;
        }
        if ((r = st_box_open(s2, "u", "Old", &d)) == 0) {
            r = put(d, "Subject: 7\r\n\r\nafter compaction\r\n", 32, 0, 0);
            if (!r) {
                r = commit(s, d);
            }
            st_box_close(d);
        }
        st_store_close(s2);
        return r;
    }
    case 20:
        /* automatic compaction at the last close, past the ratio */
        if ((r = st_box_open(s, "u", "Old", &b)) != 0) {
            return r;
        }
        r = st_expunge(b, 0);
        if (!r) {
            r = commit(s, b);
        }
        st_store_set_compact_ratio(s, 1);
        st_box_close(b);
        st_store_set_compact_ratio(s, 0);
        if (r) {
            return r;
        }
        /* the close compacted (best effort, errors swallowed); a power cut
         * in it must still fail the step: the reopen does */
        return st_box_open(s, "u", "Old", &b) || (st_box_close(b), 0);
    case 21:
        /* a flag change in the twice compacted mailbox */
        if ((r = st_box_open(s, "u", "Old", &b)) != 0) {
            return r;
        }
        r = st_set_flags(b, b->count - 1, ST_F_FLAGGED, 0);
        break;
    case 22:
    case 23:
        /* steps 22-28 keep Old open while a compaction job copies it in
         * slices, as the server does between loop turns; two big messages
         * first, so that the job has slices to copy */
        if (!held && (r = st_box_open(s, "u", "Old", &held)) != 0) {
            held = NULL;
            return r;
        }
        /* 100 KB: kept in memory by the append (a spooled one costs a
         * hundred more crash points per step for nothing new here) */
        r = put(held, big, MID_LEN, kind == 22 ? ST_F_SEEN : 0, 0);
        return r ? r : commit(s, held);
    case 24:
    case 25:
    case 26:
    case 27:
    case 28:
        if (!held) {
            return ST_EIO;
        }
        if (kind == 24) {
            /* expunge the first big one: the purge starts the job */
            r = st_expunge(held, held->count - 2);
        } else if (kind == 25) {
            r = st_set_flags(held, held->count - 1, ST_F_FLAGGED | ST_F_SEEN, 0);
        } else if (kind == 26) {
            /* another process delivers; its first lock (a recovery) must
             * leave the job's file alone */
            st_store *s2;
            if ((r = wl_open(&s2, v)) != 0) {
                return r;
            }
            if ((r = st_box_open(s2, "u", "Old", &d)) == 0) {
                r = put(d, M8, sizeof M8 - 1, 0, 0);
                if (!r) {
                    r = commit(s, d);
                }
                st_box_close(d);
                d = NULL;
            }
            st_store_close(s2);
        } else if (kind == 27) {
            /* a message the job copied already */
            r = st_expunge(held, 0);
        } else {
            r = put(held, M9, sizeof M9 - 1, 0, 0);
        }
        if (!r) {
            r = commit(s, held);
        }
        if (r) {
            return r;
        }
        if (kind == 24 || kind == 27) {
            st_store_set_compact_ratio(s, 1);
            st_store_set_compact_slice(s, 8192);
            st_box_purge(held); /* 24: starts the job (best effort) */
            st_store_set_compact_ratio(s, 0);
        }
        if (kind < 28) {
            job_slices += st_store_compact_work(s);
        } else {
            /* to the commit point */
            for (int i = 0; i < 1000 && st_store_compact_work(s); i++) {
                job_slices++;
            }
            job_done = st_compactions;
            drop_held();
        }
        /* a power cut in the job's work (best effort, errors swallowed)
         * must still fail the step */
        return crash.crashed ? ST_EIO : 0;
    case 30:
        /* steps 30-33: the last close of Old past the threshold (a
         * client's LOGOUT) starts a job that goes on in slices on the kept
         * index (or, closed mailboxes freed, compacts in the close). A
         * big message first, so that the job has slices to copy. */
        if ((r = st_box_open(s, "u", "Old", &b)) != 0) {
            return r;
        }
        r = put(b, big, MID_LEN, 0, 0);
        break;
    case 31:
        if ((r = st_box_open(s, "u", "Old", &b)) != 0) {
            return r;
        }
        r = ST_EIO;
        for (uint32_t i = 0; i < b->count; i++) {
            if (b->msg[i].size >= MID_LEN) {
                r = st_expunge(b, i);   /* the big one of step 23 */
                break;
            }
        }
        if (!r) {
            r = st_box_commit(b);
        }
        st_store_set_compact_ratio(s, 1);
        st_store_set_compact_slice(s, 8192);
        st_box_close(b);   /* the purge and the job's start (best effort) */
        st_store_set_compact_ratio(s, 0);
        b = NULL;
        if (r) {
            return r;
        }
        closed_job = old_has_closed_job(s);
        closed_at31 = st_compactions;
        job_slices += st_store_compact_work(s);
        return crash.crashed ? ST_EIO : 0;
    case 32:
        /* another process delivers into Old; its first lock (a recovery)
         * must leave the closed mailbox's job file alone */
        {
            st_store *s2;
            if ((r = wl_open(&s2, v)) != 0) {
                return r;
            }
            if ((r = st_box_open(s2, "u", "Old", &d)) == 0) {
                r = put(d, M8, sizeof M8 - 1, 0, 0);
                if (!r) {
                    r = st_box_commit(d);
                }
                st_box_close(d);
                d = NULL;
            }
            st_store_close(s2);
        }
        if (r) {
            return r;
        }
        job_slices += st_store_compact_work(s);
        return crash.crashed ? ST_EIO : 0;
    case 33:
        /* the closed mailbox's job to its commit (catching up with the
         * delivery), then the kept index is trimmed like any other */
        for (int i = 0; i < 1000 && st_store_compact_work(s); i++) {
            job_slices++;
        }
        closed_at33 = st_compactions;
        st_store_set_compact_slice(s, 0);
        return crash.crashed ? ST_EIO : 0;
    case 29:
        /* a flag change, then a forced checkpoint (as at the end of an
         * import): its commit and the rewrite of the log (one mutation a
         * step, so that the state is before or after it) */
        if ((r = st_box_open(s, "u", "INBOX", &b)) != 0) {
            return r;
        }
        r = st_set_flags(b, 0, ST_F_SEEN | ST_F_DRAFT, 0);
        if (!r) {
            r = st_box_checkpoint(b);
        }
        break;
    }
    if (!r && b) {
        r = commit(s, b);
    }
    st_box_close(d);
    st_box_close(b);
    return r;
}

/* ---- the state as a fresh process sees it ---- */

typedef struct mstate {
    char name[32];
    uint32_t uidv, uidnext;
    int has_mime;           /* its MIME cache file exists */
    char msgs[2048];
} mstate;

typedef struct state {
    int n;
    mstate m[8];
} state;

static void add_name(void *ctx, const char *name)
{
    state *st = ctx;
    if (st->n < 8) {
        snprintf(st->m[st->n++].name, sizeof st->m[0].name, "%s", name);
    }
}

static int cmp_m(const void *a, const void *b)
{
    return strcmp(((const mstate *)a)->name, ((const mstate *)b)->name);
}

/* Message idx of b (wire bytes msg[0..n)): whatever the cache file holds
 * for it agrees with a fresh parse. 0 or ST_ECORRUPT. */
static int mime_check(st_box *b, uint32_t idx, const char *msg, size_t n)
{
    mime_tree t, c;
    mime_rendered r;
    int bad = 0;
    if (mime_parse_buf(msg, n, 0, &t) != 0) {
        return 0;   /* no memory: nothing to compare */
    }
    dbuf env = {0}, bs = {0}, e2 = {0}, b2 = {0};
    mime_out_envelope(&env, &t, 0);
    mime_out_body(&bs, &t, 0, 1);
    mime_cache_clear();
    if (mime_rendered_get(b, idx, &r) == 0) {
        bad |= r.env && (r.env_len != env.len || memcmp(r.env, env.p, env.len));
        bad |= r.bs && (r.bs_len != bs.len || memcmp(r.bs, bs.p, bs.len));
    }
    void *blob;
    size_t blen;
    /* The tree itself, read only (mime_tree_get would write a record
     * where there is none, and the reference run must not change). */
    if (st_meta_get(b, idx, &blob, &blen) == 0 && mime_deserialize(blob, blen, &c) == 0) {
        free(blob);
        blob = NULL;
        mime_out_envelope(&e2, &c, 0);
        mime_out_body(&b2, &c, 0, 1);
        bad |= e2.len != env.len || memcmp(e2.p, env.p, env.len) || b2.len != bs.len ||
               memcmp(b2.p, bs.p, bs.len);
        mime_tree_free(&c);
    }
    free(blob);
    mime_cache_clear();
    dbuf_free(&env);
    dbuf_free(&bs);
    dbuf_free(&e2);
    dbuf_free(&b2);
    mime_tree_free(&t);
    return bad ? ST_ECORRUPT : 0;
}

/* 0 or an error; UIDs must strictly increase */
static int capture(state *st)
{
    st_store *s;
    memset(st, 0, sizeof *st);
    int r = st_store_open(&s, root, NULL);
    if (r) {
        return r;
    }
    char *dir = NULL;
    st_stat ds;
    if (st_user_dir(s, "u", &dir) == 0 && s->vfs->stat(s->vfs, dir, &ds) == 0) {
        r = st_mailbox_list(s, "u", add_name, st);
    }
    free(dir);
    qsort(st->m, (size_t)st->n, sizeof st->m[0], cmp_m);
    char *buf = malloc(big_len * 2 + 64);
    for (int i = 0; !r && i < st->n; i++) {
        st_box *b;
        mstate *m = &st->m[i];
        if ((r = st_box_open(s, "u", m->name, &b)) != 0) {
            break;
        }
        m->uidv = b->uidvalidity;
        m->uidnext = b->uidnext;
        char mp[512];
        st_stat ms;
        snprintf(mp, sizeof mp, "%s/u/.%s.mime", root, m->name);
        m->has_mime = s->vfs->stat(s->vfs, mp, &ms) == 0;
        size_t o = 0;
        for (uint32_t j = 0; j < b->count; j++) {
            st_reader rd;
            size_t n = 0;
            long k;
            if (j && b->msg[j].uid <= b->msg[j - 1].uid) {
                r = ST_ECORRUPT;
            }
            if (b->msg[j].uid >= b->uidnext) {
                r = ST_ECORRUPT;
            }
            if ((r = r ? r : st_reader_open(&rd, b, j)) != 0) {
                break;
            }
            while ((k = st_reader_read(&rd, buf + n, 777)) > 0) {
                n += (size_t)k;
            }
            st_reader_close(&rd);
            if (k < 0 || n != b->msg[j].size) {
                r = ST_ECORRUPT;
                break;
            }
            /* What the MIME cache file says of the message (a record
             * that survived the power cut) must be what a parse says:
             * damage is detected, never sent. Only where the file exists:
             * opening it creates it, which would change the workload. */
            if (m->has_mime && (r = mime_check(b, j, buf, n)) != 0) {
                break;
            }
            char kw[256] = "";
            for (unsigned q = 0; q < b->nkw; q++) {
                if (b->msg[j].kw & ((uint64_t)1 << q)) {
                    strcat(kw, b->kw[q]);
                }
            }
            o += (size_t)snprintf(m->msgs + o, sizeof m->msgs - o, "%u:%x:%s:%08x:%zu;",
                                  b->msg[j].uid, b->msg[j].flags, kw,
                                  st_crc32(0, buf, n), n);
        }
        st_box_close(b);
    }
    free(buf);
    st_store_close(s);
    return r;
}

static const mstate *find(const state *st, const char *name)
{
    for (int i = 0; i < st->n; i++) {
        if (strcmp(st->m[i].name, name) == 0) {
            return &st->m[i];
        }
    }
    return NULL;
}

/* got equals want; UIDVALIDITY compared for mailboxes existing in `prev`
 * (a mailbox whose CREATE was not acknowledged may get another one). */
static int same(const state *got, const state *want, const state *prev)
{
    if (got->n != want->n) {
        return 0;
    }
    for (int i = 0; i < got->n; i++) {
        const mstate *g = &got->m[i], *w = &want->m[i];
        if (strcmp(g->name, w->name) || strcmp(g->msgs, w->msgs)) {
            return 0;
        }
        const mstate *p = find(prev, g->name);
        if (p && p->uidv == w->uidv && g->uidv != w->uidv) {
            return 0;
        }
    }
    return 1;
}

/* After recovery: every mailbox takes a new message with a UID above the
 * acknowledged ones. */
static int no_uid_reuse(const state *got, const state *match)
{
    st_store *s;
    int ok = 1;
    if (st_store_open(&s, root, NULL)) {
        return 0;
    }
    for (int i = 0; i < got->n; i++) {
        st_box *b;
        uint32_t uid = 0;
        st_append *a;
        if (st_box_open(s, "u", got->m[i].name, &b)) {
            ok = 0;
            continue;
        }
        if (st_append_begin(b, 0, 0, 0, 0, 3, &a) || st_append_data(a, "z\r\n", 3) ||
            st_append_end(a, &uid) || st_box_commit(b)) {
            ok = 0;
        }
        const mstate *m = find(match, got->m[i].name);
        if (m && uid < m->uidnext) {
            ok = 0;
        }
        st_box_close(b);
    }
    st_store_close(s);
    return ok;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

/* in-process: thousands of fork+exec of rm would dominate the run time */
static void wipe(void)
{
    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Run the workload over v until a step fails; returns steps acknowledged. */
static int run(const st_vfs *v, uint64_t (*count)(void), uint64_t *ev_after)
{
    st_store *s;
    int done = 0;
    mime_cache_clear();     /* trees of an earlier run have the same keys */
    if (wl_open(&s, v) == 0) {
        for (int k = 1; k <= NSTEPS; k++) {
            if (step(s, v, k)) {
                break;
            }
            done = k;
            if (ev_after) {
                ev_after[k] = count();
            }
        }
        drop_held();
        st_store_set_compact_slice(s, 0);
        st_store_close(s);
    }
    return done;
}

static st_fault fault;
static uint64_t crash_events(void) { return crash.events; }
static uint64_t fault_calls(void) { return fault.calls[ST_FK_ANY]; }

static state ref[NSTEPS + 1];

/* Check one damaged run: k = the step in flight. */
static int check(int k, const char *what, uint64_t n)
{
    state got;
    int r = capture(&got);
    if (r) {
        fprintf(stderr, "%s %llu: reopen failed: %s\n", what, (unsigned long long)n, st_strerror(r));
        return 0;
    }
    const state *prev = &ref[k - 1];
    const state *m = same(&got, prev, prev) ? prev : same(&got, &ref[k], prev) ? &ref[k] : NULL;
    if (!m) {
        fprintf(stderr, "%s %llu (step %d): state is neither before nor after\n",
                what, (unsigned long long)n, k);
        for (int i = 0; i < got.n; i++) {
            fprintf(stderr, "  got  %s %u %s\n", got.m[i].name, got.m[i].uidv, got.m[i].msgs);
        }
        for (int i = 0; i < ref[k].n; i++) {
            fprintf(stderr, "  want %s %u %s\n", ref[k].m[i].name, ref[k].m[i].uidv, ref[k].m[i].msgs);
        }
        return 0;
    }
    if (!no_uid_reuse(&got, m)) {
        fprintf(stderr, "%s %llu (step %d): a UID was reused\n", what, (unsigned long long)n, k);
        return 0;
    }
    return 1;
}

/* The whole sweep (reference, power cuts, faults) with the store's
 * current settings. */
static void sweep(int seeds, const char *how)
{
    uint64_t ev[NSTEPS + 1] = { 0 }, calls[NSTEPS + 1] = { 0 };
    wipe();
    printf("%s:\n", how);

    /* reference: the state after each step, and events per step */
    memset(&crash, 0, sizeof crash);
    st_vfs *cv = st_vfs_crash(st_vfs_posix(), &crash);
    CHECK_EQ_INT(capture(&ref[0]), 0);
    st_store *s;
    mime_cache_clear();
    CHECK_EQ_INT(wl_open(&s, cv), 0);
    job_slices = 0;
    unsigned long before = st_compactions, at22 = 0;
    for (int k = 1; k <= NSTEPS; k++) {
        CHECK_EQ_INT(step(s, cv, k), 0);
        ev[k] = crash.events;
        if (k == KSTEP(23)) {
            at22 = st_compactions;   /* before the job of steps 24-28 */
        }
        CHECK_EQ_INT(capture(&ref[k]), 0);
    }
    /* the sliced job really ran: several slices, one commit, by step 28
     * (the captures between steps are other processes: their first lock
     * left the job's file alone) */
    CHECK(job_slices >= 5);
    CHECK_EQ_INT((int)(job_done - at22), 1);
    CHECK(at22 > before);
    /* steps 31-33: kept, Old's job went on after its close and committed
     * in the work of step 33; freed, the close compacted */
    if (st_keep_closed_max) {
        CHECK(closed_job);
        CHECK_EQ_INT((int)(closed_at33 - closed_at31), 1);
        CHECK_EQ_INT((int)(closed_at31 - job_done), 0);
    } else {
        CHECK(!closed_job);
        CHECK_EQ_INT((int)(closed_at33 - closed_at31), 0);
        CHECK_EQ_INT((int)(closed_at31 - job_done), 1);
    }
    drop_held();
    st_store_set_compact_slice(s, 0);
    st_store_close(s);
    st_vfs_layer_free(cv);
    CHECK_EQ_INT(ref[NSTEPS].n, 3); /* B, INBOX, Old */
    /* steps 22-28 put four messages into Old and expunged two */
    const mstate *o21 = find(&ref[KSTEP(21)], "Old"), *o24 = find(&ref[KSTEP(28)], "Old");
    CHECK(o21 && o24);
    if (o21 && o24) {
        int n21 = 0, n24 = 0;
        for (const char *q = o21->msgs; *q; q++) {
            n21 += *q == ';';
        }
        for (const char *q = o24->msgs; *q; q++) {
            n24 += *q == ';';
        }
        CHECK_EQ_INT(n24, n21 + 2);
    }
    wipe();
    /* the same with the fault layer, counting calls */
    memset(&fault, 0, sizeof fault);
    st_vfs *fv = st_vfs_fault(st_vfs_posix(), &fault);
    CHECK_EQ_INT(run(fv, fault_calls, calls), NSTEPS);
    st_vfs_layer_free(fv);
    wipe();

    /* power cut at every event */
    int bad = 0;
    uint64_t points = 0;
    for (int seed = 1; seed <= seeds; seed++) {
        for (uint64_t n = 1; n <= ev[NSTEPS]; n++) {
            memset(&crash, 0, sizeof crash);
            crash.crash_at = n;
            crash.seed = (uint32_t)seed;
            cv = st_vfs_crash(st_vfs_posix(), &crash);
            int done = run(cv, crash_events, NULL);
            st_vfs_layer_free(cv);
            int k = 1;
            while (k < NSTEPS && ev[k] < n) {
                k++;
            }
            if (done != k - 1) {
                fprintf(stderr, "crash %llu: %d steps acknowledged, expected %d\n",
                        (unsigned long long)n, done, k - 1);
                bad++;
            } else if (!check(k, "crash", n)) {
                bad++;
            }
            points++;
            wipe();
        }
    }
    printf("crash: %llu power-cut points (%llu events x %d seeds), %d bad\n",
           (unsigned long long)points, (unsigned long long)ev[NSTEPS], seeds, bad);
    CHECK_EQ_INT(bad, 0);

    /* an error at every call, EIO and ENOSPC (steps 24-28 look at
     * crash.crashed: the power is on) */
    memset(&crash, 0, sizeof crash);
    bad = 0;
    points = 0;
    for (int e = 0; e < 2; e++) {
        for (uint64_t n = getenv("FSTART") ? strtoull(getenv("FSTART"),0,10) : 1; n <= calls[NSTEPS]; n++) {
            memset(&fault, 0, sizeof fault);
            fault.kind = ST_FK_ANY;
            fault.fail_at = n;
            fault.err = e ? ST_ENOSPC : ST_EIO;
            fv = st_vfs_fault(st_vfs_posix(), &fault);
            int done = run(fv, fault_calls, NULL);
            st_vfs_layer_free(fv);
            int k = 1;
            while (k < NSTEPS && calls[k] < n) {
                k++;
            }
            /* a failed call may be absorbed (a best-effort cleanup); then
             * the workload carries on and later steps are checked alone */
            if (done >= k) {
                k = done < NSTEPS ? done + 1 : NSTEPS;
            }
            if (done != k - 1 && !(done == NSTEPS && k == NSTEPS)) {
                bad++;
            } else if (!check(done == NSTEPS ? NSTEPS : k, "fault", n)) {
                bad++;
            }
            points++;
            wipe();
        }
    }
    printf("fault: %llu failing calls (%llu calls x EIO/ENOSPC), %d bad\n",
           (unsigned long long)points, (unsigned long long)calls[NSTEPS], bad);
    CHECK_EQ_INT(bad, 0);
}

int main(void)
{
    int seeds = getenv("CRASH_SEEDS") ? atoi(getenv("CRASH_SEEDS")) : 1;
    /* thousands of runs with real fsyncs: a RAM file system if there is one */
    snprintf(root, sizeof root, "%s/test_crash.XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(root)) {
        return 2;
    }
    st_clock_hook = fixed_clock;
    st_ckpt_min = 1024;
    st_compact_min_dead = 0;
    big_len = 200 * 1024;
    big = malloc(big_len);
    for (size_t i = 0; i < big_len; i++) {
        big[i] = (i % 80 == 78) ? '\r' : (i % 80 == 79) ? '\n' : (char)('a' + i % 26);
    }
    /* A reopen in one process finds the mailbox kept since its last close
     * (refreshed) or, past the bound, loads it again: both under every
     * power cut and failing call. */
    sweep(seeds, "closed mailboxes kept");
    unsigned keep = st_keep_closed_max;
    st_keep_closed_max = 0;
    sweep(seeds, "closed mailboxes freed");
    st_keep_closed_max = keep;
    with_mime = 1;
    sweep(seeds, "MIME trees parsed at arrival and on first use, cached");
    with_mime = 0;
    async_commits = 1;
    sweep(seeds, "commits with their syncs in flight (st_box_commit_start)");
    async_commits = 0;
    free(big);
    rmdir(root);
    return unit_done("test_store_crash");
}
