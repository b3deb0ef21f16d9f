/* binary.h -- Content-Transfer-Encoding decoding for FETCH BINARY[]
 * (RFC 3516, part of IMAP4rev2: RFC 9051 6.4.5).
 *
 * Streaming and lenient the way mail needs it: base64 skips line breaks
 * and stray characters; quoted-printable drops soft line breaks and the
 * whitespace RFC 2045 6.7 (3) says to drop, and passes broken "="
 * sequences through as they are. Decoding never writes more than it was
 * given plus BIN_SLACK bytes it held back from earlier input, so a caller
 * decodes slice by slice into a buffer of (slice + BIN_SLACK) bytes.
 */
#ifndef BINARY_H
#define BINARY_H

#include <stddef.h>
#include <stdint.h>

/* What a part's Content-Transfer-Encoding asks for. */
enum {
    BIN_UNKNOWN = -1,   /* not one RFC 2045 defines: NO [UNKNOWN-CTE] */
    BIN_IDENT = 0,      /* 7bit, 8bit, binary, none: the bytes as they are */
    BIN_BASE64,
    BIN_QP,
};

/* Whitespace held back by quoted-printable while it may still turn out
 * to be trailing (deleted); past this it is let through. */
#define BIN_WS_MAX 64
/* Most bytes a decode call writes beyond the bytes it was given. */
#define BIN_SLACK (BIN_WS_MAX + 4)

typedef struct bin_dec {
    int      enc;               /* BIN_IDENT, BIN_BASE64, BIN_QP */
    uint32_t bits;              /* base64: bits not yet written */
    int      nbits;             /* base64: how many */
    int      st;                /* quoted-printable: state (binary.c) */
    char     hex1;              /* quoted-printable: first digit after '=' */
    char     ws[BIN_WS_MAX];    /* quoted-printable: whitespace held back */
    int      nws;
} bin_dec;

/* The encoding named by a Content-Transfer-Encoding value (NULL or
 * empty: none, i.e. 7bit). */
int    bin_cte(const char *enc, size_t n);
void   bin_init(bin_dec *d, int enc);
/* Decode n bytes of src into dst (room for n + BIN_SLACK); returns the
 * bytes written. */
size_t bin_decode(bin_dec *d, const char *src, size_t n, char *dst);
/* End of input: write what was held (room for BIN_SLACK). */
size_t bin_finish(bin_dec *d, char *dst);

#endif
