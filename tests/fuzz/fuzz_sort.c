/* fuzz_sort.c -- libFuzzer target for the RFC 5256 key parsers and the
 * threader. The input is split at NUL bytes into fields: a subject, a
 * date, an address list, then (Message-ID, References, In-Reply-To,
 * subject) groups, one per message. Checked: base subject extraction is
 * idempotent on its own output (apart from a leading "[fwd:" wrapper
 * left alone), both threading algorithms name every message exactly
 * once, and their output's parentheses balance. */
#include "config.h"
#include "sort.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *field(const char **p, const char *end, size_t *n)
{
    const char *s = *p;
    const char *z = s < end ? memchr(s, 0, (size_t)(end - s)) : NULL;
    *n = z ? (size_t)(z - s) : (size_t)(end - s);
    *p = z ? z + 1 : end;
    return s;
}

static void check_thread(int algo, const char *p, const char *end)
{
    sort_threader *t = sort_threader_new(algo);
    if (!t) {
        return;
    }
    uint32_t nmsg = 0;
    while (p < end && nmsg < 200) {
        size_t il, rl, ql, sl;
        const char *id = field(&p, end, &il);
        const char *refs = field(&p, end, &rl);
        const char *irt = field(&p, end, &ql);
        const char *subj = field(&p, end, &sl);
        nmsg++;
        if (sort_threader_add(t, nmsg, (int64_t)(il * 7 % 5), subj, sl, id, il, refs, rl, irt, ql) < 0) {
            sort_threader_free(t);
            return;
        }
    }
    dbuf out = {0};
    if (sort_threader_finish(t, &out) == 0) {
        /* Every number 1..nmsg once; parentheses balance. */
        uint8_t *seen = calloc(nmsg + 1, 1);
        int depth = 0;
        for (size_t i = 0; i < out.len; i++) {
            char c = out.p[i];
            if (c == '(') {
                depth++;
            } else if (c == ')') {
                depth--;
                if (depth < 0) {
                    abort();
                }
            } else if (c >= '0' && c <= '9') {
                unsigned long v = strtoul(out.p + i, NULL, 10);
                while (i + 1 < out.len && out.p[i + 1] >= '0' && out.p[i + 1] <= '9') {
                    i++;
                }
                if (v == 0 || v > nmsg || seen[v]) {
                    abort();
                }
                seen[v] = 1;
            }
        }
        for (uint32_t k = 1; k <= nmsg; k++) {
            if (!seen[k]) {
                abort();
            }
        }
        if (depth != 0) {
            abort();
        }
        free(seen);
    }
    dbuf_free(&out);
    sort_threader_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!CONFIG_SORT) {
        return 0;
    }
    const char *p = (const char *)data, *end = p + size;
    size_t n;
    const char *s = field(&p, end, &n);
    dbuf a = {0}, b = {0};
    sort_base_subject(s, n, &a);
    if (a.len && !(a.len >= 5 && !strncmp(a.p, "[fwd:", 5))) {
        sort_base_subject(a.p, a.len, &b);
        if (b.len != a.len || memcmp(a.p, b.p, a.len) != 0) {
            /* Decoding may reveal new encoded-word-like text; only plain
             * ASCII input must be a fixed point. */
            int plain = 1;
            for (size_t i = 0; i < n; i++) {
                plain &= (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f && s[i] != '=';
            }
            if (plain) {
                abort();
            }
        }
    }
    dbuf_free(&a);
    dbuf_free(&b);
    int64_t t;
    const char *d = field(&p, end, &n);
    sort_parse_date(d, n, &t);
    const char *ad = field(&p, end, &n);
    dbuf m = {0};
    sort_addr_mailbox(ad, n, &m);
    dbuf_free(&m);
    check_thread(SORT_THREAD_REFERENCES, p, end);
    check_thread(SORT_THREAD_ORDEREDSUBJECT, p, end);
    return 0;
}
