/*
 * binary.c -- Content-Transfer-Encoding decoders for FETCH BINARY[] (see
 * binary.h). The search decoders in mime.c fold case and convert
 * charsets; these give back the exact octets the sender encoded.
 */
#include "binary.h"
#include "b64.h"
#include "util.h"

#include <string.h>

int bin_cte(const char *enc, size_t n)
{
    if (!enc) {
        return BIN_IDENT;   /* RFC 2045 6.1: no field means 7bit */
    }
    while (n > 0 && (enc[n - 1] == ' ' || enc[n - 1] == '\t')) {
        n--;
    }
    while (n > 0 && (enc[0] == ' ' || enc[0] == '\t')) {
        enc++;
        n--;
    }
    static const struct { const char *name; int enc; } names[] = {
        {"7bit", BIN_IDENT}, {"8bit", BIN_IDENT}, {"binary", BIN_IDENT},
        {"base64", BIN_BASE64}, {"quoted-printable", BIN_QP},
    };
    if (n == 0) {
        return BIN_IDENT;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strlen(names[i].name) == n && !ascii_ncasecmp(enc, names[i].name, n)) {
            return names[i].enc;
        }
    }
    return BIN_UNKNOWN;
}

void bin_init(bin_dec *d, int enc)
{
    memset(d, 0, sizeof *d);
    d->enc = enc;
}

static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    ch = (unsigned char)ascii_upper(ch);
    return ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

/* Quoted-printable states. */
enum {
    QP_TEXT = 0,    /* plain text; d->ws holds whitespace seen last */
    QP_EQ,          /* after '=' */
    QP_EQ_HEX,      /* after '=' and one hex digit (d->hex1) */
    QP_EQ_CR,       /* after "=\r": a soft line break */
    QP_EQ_WS,       /* after '=' and whitespace (d->ws): a soft break if
                       the line ends here (RFC 2045 6.7 (3)) */
};

static size_t flush_ws(bin_dec *d, char *dst)
{
    size_t n = (size_t)d->nws;
    memcpy(dst, d->ws, n);
    d->nws = 0;
    return n;
}

/* One byte of quoted-printable; returns bytes written. */
static size_t qp_byte(bin_dec *d, char ch, char *dst)
{
    size_t o = 0;
    for (;;) {
        switch (d->st) {
        case QP_TEXT:
            if (ch == ' ' || ch == '\t') {
                if (d->nws == BIN_WS_MAX) {
                    o += flush_ws(d, dst + o);   /* too long to be padding */
                }
                d->ws[d->nws++] = ch;
            } else if (ch == '\r' || ch == '\n') {
                d->nws = 0;                      /* trailing: deleted */
                dst[o++] = ch;
            } else {
                o += flush_ws(d, dst + o);
                if (ch == '=') {
                    d->st = QP_EQ;
                } else {
                    dst[o++] = ch;
                }
            }
            return o;
        case QP_EQ:
            if (hexval((unsigned char)ch) >= 0) {
                d->hex1 = ch;
                d->st = QP_EQ_HEX;
            } else if (ch == '\r') {
                d->st = QP_EQ_CR;
            } else if (ch == '\n') {
                d->st = QP_TEXT;
            } else if (ch == ' ' || ch == '\t') {
                d->ws[d->nws++] = ch;
                d->st = QP_EQ_WS;
            } else {
                dst[o++] = '=';                  /* not an escape: keep it */
                d->st = QP_TEXT;
                continue;
            }
            return o;
        case QP_EQ_HEX:
            d->st = QP_TEXT;
            if (hexval((unsigned char)ch) >= 0) {
                dst[o++] = (char)(hexval((unsigned char)d->hex1) * 16 + hexval((unsigned char)ch));
                return o;
            }
            dst[o++] = '=';
            dst[o++] = d->hex1;
            continue;
        case QP_EQ_CR:
            d->st = QP_TEXT;
            if (ch == '\n') {
                return o;
            }
            continue;                            /* "=\r" alone: a break too */
        case QP_EQ_WS:
            if ((ch == ' ' || ch == '\t') && d->nws < BIN_WS_MAX) {
                d->ws[d->nws++] = ch;
                return o;
            }
            if (ch == '\r' || ch == '\n') {
                d->nws = 0;
                d->st = ch == '\r' ? QP_EQ_CR : QP_TEXT;
                return o;
            }
            dst[o++] = '=';
            o += flush_ws(d, dst + o);
            d->st = QP_TEXT;
            continue;
        }
        return o;
    }
}

size_t bin_decode(bin_dec *d, const char *src, size_t n, char *dst)
{
    size_t o = 0;
    if (d->enc == BIN_BASE64) {
        for (size_t i = 0; i < n; i++) {
            int v = b64_value((unsigned char)src[i]);
            if (v < 0) {
                if (src[i] == '=') {
                    d->nbits = 0;   /* padding ends a quantum */
                    d->bits = 0;
                }
                continue;           /* line breaks and strays */
            }
            d->bits = (d->bits << 6) | (uint32_t)v;
            d->nbits += 6;
            if (d->nbits >= 8) {
                d->nbits -= 8;
                dst[o++] = (char)((d->bits >> d->nbits) & 0xff);
            }
        }
        return o;
    }
    if (d->enc == BIN_QP) {
        for (size_t i = 0; i < n; i++) {
            o += qp_byte(d, src[i], dst + o);
        }
        return o;
    }
    memcpy(dst, src, n);
    return n;
}

size_t bin_finish(bin_dec *d, char *dst)
{
    size_t o = 0;
    if (d->enc == BIN_QP) {
        /* A broken escape at the very end stays as it was; whitespace at
         * the end of the last line is trailing. */
        if (d->st == QP_EQ || d->st == QP_EQ_HEX || d->st == QP_EQ_WS) {
            dst[o++] = '=';
        }
        if (d->st == QP_EQ_HEX) {
            dst[o++] = d->hex1;
        }
        if (d->st == QP_EQ_WS) {
            o += flush_ws(d, dst + o);
        }
    }
    d->nws = 0;
    d->st = QP_TEXT;
    d->nbits = 0;
    return o;
}
