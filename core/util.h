/* util.h -- bounded buffers and small string helpers for the core.
 * No pointer arithmetic on wire data outside these helpers. */
#ifndef UTIL_H
#define UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

/* A growable byte buffer. `cap` never passes `max` (0 = no cap). */
typedef struct dbuf {
    char  *p;       /* bytes, always NUL-terminated when p != NULL */
    size_t len;     /* bytes used (not counting the NUL) */
    size_t cap;     /* bytes allocated */
} dbuf;

int   dbuf_add(dbuf *b, const void *p, size_t n);       /* 0 or -1 (no memory) */
int   dbuf_addc(dbuf *b, char ch);
int   dbuf_adds(dbuf *b, const char *s);
int   dbuf_printf(dbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int   dbuf_vprintf(dbuf *b, const char *fmt, va_list ap);
/* s as an IMAP string: quoted when it can be, else a literal. */
void  dbuf_add_imap_string(dbuf *b, const char *s, size_t n);
void  dbuf_free(dbuf *b);
void  dbuf_reset(dbuf *b);                              /* len = 0, keep memory */

/* ASCII-only helpers: IMAP keywords are ASCII and locale must not matter. */
int   ascii_casecmp(const char *a, const char *b);
int   ascii_ncasecmp(const char *a, const char *b, size_t n);
int   ascii_upper(int ch);
int   ascii_lower(int ch);
/* Case-insensitive substring search; returns 1 if needle is in hay. */
int   ascii_casefind(const char *hay, size_t hlen, const char *needle, size_t nlen);

/* Parse a non-negative decimal number that fits in 32 (or 64) bits; the
 * whole string must be digits. Returns 0 or -1. */
int   parse_u32(const char *s, size_t n, uint32_t *out);
int   parse_u64(const char *s, size_t n, uint64_t *out);

char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* ---- dates (no OS time functions in the core) ---- */
/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
int64_t days_from_civil(int y, unsigned m, unsigned d);
void    civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d);
/* "dd-Mon-yyyy hh:mm:ss +zzzz" (RFC 3501 date-time, day may be space-
 * padded or 1 digit). Returns 0 and seconds since epoch (UTC) and zone. */
int     parse_date_time(const char *s, size_t n, int64_t *t, int *tz);
/* "d-Mon-yyyy" (RFC 3501 date). Returns days since epoch or -1. */
int     parse_date(const char *s, size_t n, int64_t *days);
/* Format an INTERNALDATE as "dd-Mon-yyyy hh:mm:ss +zzzz" into 27 bytes. */
void    format_date_time(int64_t t, int tz, char out[32]);
/* Month "Jan".."Dec" (case-insensitive) -> 1..12, or 0. */
int     month_from_name(const char *s);
extern const char *const month_names[12];

#endif
