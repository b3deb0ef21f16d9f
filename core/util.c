/* util.c -- bounded buffers, ASCII helpers and calendar math. */
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dbuf_add(dbuf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 64;
        while (nc < b->len + n + 1) {
            nc *= 2;
        }
        char *np = realloc(b->p, nc);
        if (!np) {
            return -1;
        }
        b->p = np;
        b->cap = nc;
    }
    if (n) {
        memcpy(b->p + b->len, p, n);
    }
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

int dbuf_addc(dbuf *b, char ch)
{
    return dbuf_add(b, &ch, 1);
}

int dbuf_adds(dbuf *b, const char *s)
{
    return dbuf_add(b, s, strlen(s));
}

int dbuf_vprintf(dbuf *b, const char *fmt, va_list ap)
{
    char tmp[256];
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        return -1;
    }
    if ((size_t)n < sizeof tmp) {
        return dbuf_add(b, tmp, (size_t)n);
    }
    /* Rare: a long line. Make room and format in place. */
    if (dbuf_add(b, "", 0) < 0) {
        return -1;
    }
    size_t need = b->len + (size_t)n + 1;
    if (need > b->cap) {
        char *np = realloc(b->p, need);
        if (!np) {
            return -1;
        }
        b->p = np;
        b->cap = need;
    }
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int dbuf_printf(dbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = dbuf_vprintf(b, fmt, ap);
    va_end(ap);
    return r;
}

void dbuf_free(dbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void dbuf_reset(dbuf *b)
{
    b->len = 0;
    if (b->p) {
        b->p[0] = 0;
    }
}

int ascii_upper(int ch)
{
    return (ch >= 'a' && ch <= 'z') ? ch - 32 : ch;
}

int ascii_lower(int ch)
{
    return (ch >= 'A' && ch <= 'Z') ? ch + 32 : ch;
}

int ascii_casecmp(const char *a, const char *b)
{
    for (;; a++, b++) {
        int x = ascii_lower((unsigned char)*a), y = ascii_lower((unsigned char)*b);
        if (x != y || !x) {
            return x - y;
        }
    }
}

int ascii_ncasecmp(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int x = ascii_lower((unsigned char)a[i]), y = ascii_lower((unsigned char)b[i]);
        if (x != y || !x) {
            return x - y;
        }
    }
    return 0;
}

int ascii_casefind(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
    if (nlen == 0) {
        return 1;
    }
    if (nlen > hlen) {
        return 0;
    }
    int first = ascii_lower((unsigned char)needle[0]);
    for (size_t i = 0; i + nlen <= hlen; i++) {
        if (ascii_lower((unsigned char)hay[i]) != first) {
            continue;
        }
        size_t j = 1;
        while (j < nlen && ascii_lower((unsigned char)hay[i + j]) == ascii_lower((unsigned char)needle[j])) {
            j++;
        }
        if (j == nlen) {
            return 1;
        }
    }
    return 0;
}

int parse_u64(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 20) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return -1;
        }
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int parse_u32(const char *s, size_t n, uint32_t *out)
{
    uint64_t v;
    if (parse_u64(s, n, &v) < 0 || v > UINT32_MAX) {
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

char *xstrndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

/* Howard Hinnant's days_from_civil: exact for every Gregorian date. */
int64_t days_from_civil(int y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t yy = (int64_t)yoe + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yy + (*m <= 2));
}

const char *const month_names[12] = {
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

int month_from_name(const char *s)
{
    for (int i = 0; i < 12; i++) {
        if (ascii_ncasecmp(s, month_names[i], 3) == 0) {
            return i + 1;
        }
    }
    return 0;
}

static int days_in_month(int y, unsigned m)
{
    static const unsigned char dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) {
        return 29;
    }
    return dm[m - 1];
}

/* Parses "d-Mon-yyyy" at s (n bytes available), returns bytes used or -1. */
static int parse_dmy(const char *s, size_t n, int *y, unsigned *m, unsigned *d)
{
    size_t i = 0;
    unsigned dd = 0;
    if (i < n && s[i] == ' ') {
        i++;
    }
    size_t st = i;
    while (i < n && i - st < 2 && s[i] >= '0' && s[i] <= '9') {
        dd = dd * 10 + (unsigned)(s[i++] - '0');
    }
    if (i == st || i + 9 > n || s[i] != '-' || s[i + 4] != '-') {
        return -1;
    }
    char mon[4] = {s[i + 1], s[i + 2], s[i + 3], 0};
    int mm = month_from_name(mon);
    if (!mm) {
        return -1;
    }
    i += 5;
    int yy = 0;
    for (int k = 0; k < 4; k++) {
        if (s[i + k] < '0' || s[i + k] > '9') {
            return -1;
        }
        yy = yy * 10 + (s[i + k] - '0');
    }
    i += 4;
    if (dd < 1 || (int)dd > days_in_month(yy, (unsigned)mm)) {
        return -1;
    }
    *y = yy;
    *m = (unsigned)mm;
    *d = dd;
    return (int)i;
}

int parse_date(const char *s, size_t n, int64_t *days)
{
    int y;
    unsigned m, d;
    int used = parse_dmy(s, n, &y, &m, &d);
    if (used < 0 || (size_t)used != n || s[0] == ' ') {
        return -1;
    }
    *days = days_from_civil(y, m, d);
    return 0;
}

static int two(const char *s)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9') {
        return -1;
    }
    return (s[0] - '0') * 10 + (s[1] - '0');
}

int parse_date_time(const char *s, size_t n, int64_t *t, int *tz)
{
    int y;
    unsigned m, d;
    int used = parse_dmy(s, n, &y, &m, &d);
    if (used < 0 || (size_t)used + 15 != n) {
        return -1;
    }
    const char *p = s + used;
    if (p[0] != ' ' || p[3] != ':' || p[6] != ':' || p[9] != ' ' || (p[10] != '+' && p[10] != '-')) {
        return -1;
    }
    int hh = two(p + 1), mi = two(p + 4), ss = two(p + 7), zh = two(p + 11), zm = two(p + 13);
    if (hh < 0 || hh > 23 || mi < 0 || mi > 59 || ss < 0 || ss > 60 || zh < 0 || zh > 23 || zm < 0 || zm > 59) {
        return -1;
    }
    int zone = (zh * 60 + zm) * (p[10] == '-' ? -1 : 1);
    *t = days_from_civil(y, m, d) * 86400 + hh * 3600 + mi * 60 + ss - (int64_t)zone * 60;
    *tz = zone;
    return 0;
}

void format_date_time(int64_t t, int tz, char out[32])
{
    int64_t local = t + (int64_t)tz * 60;
    int64_t days = local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
    int64_t secs = local - days * 86400;
    int y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    int az = tz < 0 ? -tz : tz;
    snprintf(out, 32, "%02u-%s-%04d %02d:%02d:%02d %c%02d%02d", d, month_names[m - 1], y,
             (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60), tz < 0 ? '-' : '+',
             az / 60, az % 60);
}

void dbuf_add_imap_string(dbuf *o, const char *s, size_t n)
{
    /* Quoted only when short and 7-bit without NUL/CR/LF (RFC 3501 quoted);
     * otherwise a literal, which may carry 8-bit bytes. */
    int quotable = n < 1024;
    for (size_t i = 0; quotable && i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == 0 || ch == '\r' || ch == '\n' || ch >= 0x80) {
            quotable = 0;
        }
    }
    if (!quotable) {
        dbuf_printf(o, "{%zu}\r\n", n);
        dbuf_add(o, s, n);
        return;
    }
    dbuf_addc(o, '"');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            dbuf_addc(o, '\\');
        }
        dbuf_addc(o, s[i]);
    }
    dbuf_addc(o, '"');
}
