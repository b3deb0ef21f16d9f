/* unit.h -- the smallest test harness that still says what failed.
 * Each test program ends with `return unit_done();`, which prints
 * "<file>: N passed, N failed" for tests/run-unit.sh to add up. */
#ifndef UNIT_H
#define UNIT_H
#include <stdio.h>
#include <string.h>

static int unit_pass, unit_fail;

#define CHECK(c) do { \
    if (c) { unit_pass++; } \
    else { unit_fail++; fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); } \
} while (0)

#define CHECK_EQ_INT(a, b) do { \
    long long a_ = (long long)(a), b_ = (long long)(b); \
    if (a_ == b_) { unit_pass++; } \
    else { unit_fail++; fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", \
                                __FILE__, __LINE__, #a, a_, #b, b_); } \
} while (0)

#define CHECK_EQ_STR(a, b) do { \
    const char *a_ = (a), *b_ = (b); \
    if (a_ && b_ && strcmp(a_, b_) == 0) { unit_pass++; } \
    else { unit_fail++; fprintf(stderr, "%s:%d: %s is \"%s\", expected \"%s\"\n", \
                                __FILE__, __LINE__, #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); } \
} while (0)

static inline int unit_done(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, unit_pass, unit_fail);
    return unit_fail ? 1 : 0;
}
#endif
