/* seqset.c -- IMAP sequence sets: parsed, sorted and merged so lookups
 * are a binary search. */
#include "cmd.h"

#include <stdlib.h>
#include <string.h>

static int range_cmp(const void *x, const void *y)
{
    const uint32_t *a = x, *b = y;
    return a[0] < b[0] ? -1 : a[0] > b[0];
}

static int seq_num(const char *s, size_t n, uint32_t star, uint32_t *out)
{
    if (n == 1 && s[0] == '*') {
        *out = star;
        return 0;
    }
    if (n == 0 || s[0] == '0' || parse_u32(s, n, out) < 0) {
        return -1;
    }
    return 0;
}

int seqset_parse(seqset *set, const char *s, uint32_t len, uint32_t star)
{
    memset(set, 0, sizeof *set);
    if (len == 1 && s[0] == '$') {
        set->dollar = 1;
        return -1;
    }
    uint32_t cap = 0;
    const char *end = s + len;
    while (s < end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *e = comma ? comma : end;
        const char *colon = memchr(s, ':', (size_t)(e - s));
        uint32_t lo, hi;
        if (colon) {
            if (seq_num(s, (size_t)(colon - s), star, &lo) < 0 ||
                seq_num(colon + 1, (size_t)(e - colon - 1), star, &hi) < 0) {
                seqset_free(set);
                return -1;
            }
        } else {
            if (seq_num(s, (size_t)(e - s), star, &lo) < 0) {
                seqset_free(set);
                return -1;
            }
            hi = lo;
        }
        if (lo > hi) {
            uint32_t t = lo;
            lo = hi;
            hi = t;
        }
        if (set->n == cap) {
            cap = cap ? cap * 2 : 4;
            uint32_t(*nr)[2] = realloc(set->r, cap * sizeof *nr);
            if (!nr) {
                seqset_free(set);
                return -1;
            }
            set->r = nr;
        }
        set->r[set->n][0] = lo;
        set->r[set->n][1] = hi;
        set->n++;
        if (!comma) {
            break;
        }
        s = comma + 1;
        if (s == end) {
            seqset_free(set);
            return -1;
        }
    }
    if (set->n == 0) {
        return -1;
    }
    /* Sort and merge so lookups can binary-search. */
    qsort(set->r, set->n, sizeof set->r[0], range_cmp);
    uint32_t k = 0;
    for (uint32_t i = 1; i < set->n; i++) {
        if (set->r[i][0] <= set->r[k][1] + 1 && set->r[k][1] != UINT32_MAX) {
            if (set->r[i][1] > set->r[k][1]) {
                set->r[k][1] = set->r[i][1];
            }
        } else if (set->r[i][0] <= set->r[k][1]) {
            /* overlaps a range that already ends at UINT32_MAX */
        } else {
            k++;
            set->r[k][0] = set->r[i][0];
            set->r[k][1] = set->r[i][1];
        }
    }
    set->n = k + 1;
    return 0;
}

int seqset_has(const seqset *set, uint32_t v)
{
    uint32_t lo = 0, hi = set->n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (set->r[mid][1] < v) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < set->n && set->r[lo][0] <= v;
}

void seqset_free(seqset *set)
{
    free(set->r);
    set->r = NULL;
    set->n = 0;
}

