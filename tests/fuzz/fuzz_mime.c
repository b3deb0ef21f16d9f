/* fuzz_mime.c -- libFuzzer target for the MIME parser and its renderings.
 * The first input byte picks the slice size, so resumption across slices
 * is exercised; the result must not depend on it. Also: the serialized
 * tree must round-trip, every section range must lie inside the message,
 * and the raw input fed to the deserializer (a cache record, as the
 * store's cache file would hand it back) must be refused or accepted
 * without harm, its seek points in order and inside the message. */
#include "mime.h"

#include <stdlib.h>
#include <string.h>

static void render(const mime_tree *t, dbuf *o)
{
    mime_out_body(o, t, 0, 1);
    mime_out_body(o, t, 0, 0);
    mime_out_envelope(o, t, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    size_t step = (size_t)(data[0] % 64) + 1;
    const char *msg = (const char *)data + 1;
    size_t n = size - 1;

    mime_tree whole, sliced;
    if (mime_parse_buf(msg, n, 0, &whole) < 0) {
        return 0;
    }
    mime_parser *p = mime_parser_new(0);
    if (!p) {
        mime_tree_free(&whole);
        return 0;
    }
    for (size_t i = 0; i < n; i += step) {
        mime_parser_feed(p, msg + i, n - i < step ? n - i : step);
    }
    if (mime_parser_finish(p, (uint32_t)n, &sliced) < 0) {
        mime_tree_free(&whole);
        return 0;
    }
    dbuf a = {0}, b = {0};
    render(&whole, &a);
    render(&sliced, &b);
    if (a.len != b.len || memcmp(a.p, b.p, a.len)) {
        abort();    /* slicing changed the result */
    }
    for (uint32_t i = 0; i < whole.nparts; i++) {
        const mime_part *pt = &whole.part[i];
        if ((uint64_t)pt->hdr_off + pt->hdr_len > n || (uint64_t)pt->body_off + pt->body_len > n) {
            abort();
        }
    }
    uint32_t path[3];
    for (uint32_t x = 0; x < 27; x++) {
        path[0] = x % 3 + 1;
        path[1] = x / 3 % 3 + 1;
        path[2] = x / 9 + 1;
        for (unsigned depth = 0; depth <= 3; depth++) {
            for (int kind = MIME_SEC_ALL; kind <= MIME_SEC_MIME; kind++) {
                uint32_t off, len;
                if (mime_section_range(&whole, path, depth, kind, &off, &len) == 0 && (uint64_t)off + len > n) {
                    abort();
                }
            }
        }
    }
    dbuf blob = {0};
    if (mime_serialize(&whole, &blob) == 0) {
        mime_tree back;
        if (mime_deserialize(blob.p, blob.len, &back) != 0) {
            abort();
        }
        dbuf c = {0};
        render(&back, &c);
        if (c.len != a.len || memcmp(c.p, a.p, a.len)) {
            abort();
        }
        dbuf_free(&c);
        mime_tree_free(&back);
    }
    mime_tree junk;
    if (mime_deserialize(msg, n, &junk) == 0) {
        dbuf c = {0};
        render(&junk, &c);
        dbuf_free(&c);
        /* Seek points from a cache record are trusted for offsets only
         * after these checks: increasing, inside the message. */
        for (uint32_t i = 0; i < junk.nseek; i++) {
            if (junk.seek[i].wire > junk.size || junk.seek[i].bol > 1 ||
                (i && (junk.seek[i].disk <= junk.seek[i - 1].disk || junk.seek[i].wire < junk.seek[i - 1].wire))) {
                abort();
            }
            st_seekpt sp;
            mime_seek_point(&junk, junk.seek[i].wire + (uint32_t)(i & 1), &sp);
            if (sp.wire > junk.seek[i].wire + (i & 1)) {
                abort();
            }
        }
        mime_tree_free(&junk);
    }
    mime_tree h;
    if (mime_parse_buf(msg, n, 1, &h) == 0) {
        dbuf c = {0};
        mime_out_envelope(&c, &h, 0);
        dbuf_free(&c);
        mime_tree_free(&h);
    }
    dbuf_free(&blob);
    dbuf_free(&a);
    dbuf_free(&b);
    mime_tree_free(&whole);
    mime_tree_free(&sliced);
    return 0;
}
