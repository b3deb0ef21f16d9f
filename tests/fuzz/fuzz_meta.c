/* fuzz_meta.c -- libFuzzer target for the store's MIME cache file
 * (storage/meta.c): the input becomes a mailbox's ".INBOX.mime" (after a
 * valid file header when the first byte is odd, so records are reached),
 * then every message's tree is asked for. Whatever the file holds, each
 * answer must be a tree whose ranges lie inside its message, and the
 * store must go on working (a put after a garbled tail, a rewrite). The
 * records' CRCs and the message fingerprint keep garbage out; this checks
 * that nothing before those checks can be tricked into a bad read.
 * Records are version 3 (tree plus rendered ENVELOPE and BODYSTRUCTURE,
 * read in place by mime_rendered_get) or version 2 (tree alone, upgraded
 * when read); the seeds have both. */
#include "mime.h"
#include "store.h"
#include "vfs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char root[64];
static char path[128];
static st_store *store;

static const char *const msgs[] = {
    "Subject: one\r\n\r\nbody\r\n",
    "From: a@b.c\r\nSubject: two\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n"
    "--x\r\nContent-Type: text/plain\r\n\r\nFrom here\r\n>From there\r\n--x\r\n"
    "Content-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\ninner\r\n--x--\r\n",
    "Subject: three\r\n\r\n",
};

static void put(st_box *b, const char *m)
{
    st_append *a;
    uint32_t uid;
    if (st_append_begin(b, 1700000000, 0, 0, 0, strlen(m), &a) == 0) {
        if (st_append_data(a, m, strlen(m)) == 0) {
            st_append_end(a, &uid);
        } else {
            st_append_abort(a);
        }
    }
}

static void cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", root);
    }
}

static int setup(void)
{
    snprintf(root, sizeof root, "/tmp/fuzz_meta.XXXXXX");
    if (!mkdtemp(root)) {
        return -1;
    }
    atexit(cleanup);
    if ( st_store_open(&store, root, st_vfs_posix()) != 0 ||
        st_user_ensure(store, "u") != 0) {
        return -1;
    }
    st_box *b;
    if (st_box_open(store, "u", "INBOX", &b) != 0) {
        return -1;
    }
    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
        put(b, msgs[i]);
    }
    st_box_commit(b);
    st_box_close(b);
    snprintf(path, sizeof path, "%s/u/.INBOX.mime", root);
    return 0;
}

static void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* The header meta.c writes (crc32 as in storage/util.c: IEEE, reflected). */
static uint32_t crc32_ieee(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) {
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
        }
    }
    return c ^ 0xffffffffu;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        if (setup() != 0) {
            abort();
        }
        ready = 1;
    }
    st_box *b;
    if (st_box_open(store, "u", "INBOX", &b) != 0) {
        abort();
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        abort();
    }
    if (size > 0 && (data[0] & 1)) {
        unsigned char h[16];
        memcpy(h, "PIMC", 4);
        be32(h + 4, 1);
        be32(h + 8, b->uidvalidity);
        be32(h + 12, crc32_ieee(h, 12));
        fwrite(h, 1, sizeof h, f);
        data++;
        size--;
    }
    fwrite(data, 1, size, f);
    fclose(f);
    mime_cache_clear();
    for (uint32_t i = 0; i < b->count; i++) {
        /* Kept renderings (version 3 records) straight from the file's
         * read window: only ever one parenthesized list each, inside the
         * record (ASan sees a read past it). */
        mime_rendered r;
        if (mime_rendered_get(b, i, &r) == 0) {
            dbuf cp = {0};
            if ((r.env && (r.env_len < 2 || r.env[0] != '(' || r.env[r.env_len - 1] != ')')) ||
                (r.bs && (r.bs_len < 2 || r.bs[0] != '(' || r.bs[r.bs_len - 1] != ')')) ||
                r.env_len > MIME_RENDERED_LIMIT || r.bs_len > MIME_RENDERED_LIMIT) {
                abort();
            }
            if (r.env) {
                dbuf_add(&cp, r.env, r.env_len);
            }
            if (r.bs) {
                dbuf_add(&cp, r.bs, r.bs_len);
            }
            dbuf_free(&cp);
        }
        mime_tree t;
        if (mime_tree_get(b, i, 1, &t) != 0) {
            abort();    /* the message is there: a tree must come back */
        }
        for (uint32_t k = 0; k < t.nparts; k++) {
            const mime_part *pt = &t.part[k];
            if ((uint64_t)pt->body_off + pt->body_len > t.size || (uint64_t)pt->hdr_off + pt->hdr_len > t.size) {
                abort();
            }
        }
        dbuf o = {0};
        mime_out_body(&o, &t, 0, 1);
        mime_out_envelope(&o, &t, 0);
        dbuf_free(&o);
        mime_tree_free(&t);
        /* Whatever the tree path stored or kept (an upgrade of a version 2
         * record, a parse) reads back. */
        if (mime_rendered_get(b, i, &r) == 0 && r.bs && r.bs[0] != '(') {
            abort();
        }
    }
    st_box_close(b);
    return 0;
}
