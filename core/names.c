/* names.c -- mailbox names: modified UTF-7 (RFC 3501 5.1.3) and safety. */
#include "cmd.h"
#include "ext.h"
#include "b64.h"

#include <stdlib.h>
#include <string.h>

#define MAILBOX_NAME_MAX 512  /* bytes; deeper or longer names are refused */

/* Modified base64 (RFC 3501 5.1.3): ',' in place of '/'. */
static int mb64(int ch)
{
    return ch == ',' ? 63 : ch == '/' ? -1 : b64_value((unsigned char)ch);
}

/* Check a modified UTF-7 run "&...-" starting after '&'; returns bytes used
 * up to and including '-', or -1 when it is not valid. */
static int check_b64_run(const char *s, size_t n)
{
    uint32_t bits = 0;
    int nbits = 0;
    uint32_t hi_surrogate = 0;
    size_t i = 0;
    size_t units = 0;
    for (; i < n && s[i] != '-'; i++) {
        int v = mb64((unsigned char)s[i]);
        if (v < 0) {
            return -1;
        }
        bits = (bits << 6) | (uint32_t)v;
        nbits += 6;
        if (nbits >= 16) {
            nbits -= 16;
            uint32_t u = (bits >> nbits) & 0xffff;
            units++;
            if (hi_surrogate) {
                if (u < 0xdc00 || u > 0xdfff) {
                    return -1;
                }
                hi_surrogate = 0;
            } else if (u >= 0xd800 && u <= 0xdbff) {
                hi_surrogate = u;
            } else if (u >= 0xdc00 && u <= 0xdfff) {
                return -1;
            } else if (u <= 0x7f || (u >= 0x80 && u <= 0x9f)) {
                /* Printable ASCII must be written directly; controls
                 * (NUL above all) have no place in a name. */
                return -1;
            }
        }
    }
    if (i == n || units == 0 || hi_surrogate) {
        return -1;
    }
    /* Leftover bits must be zero padding of fewer than 6 bits. */
    if (nbits >= 6 || (bits & ((1u << nbits) - 1)) != 0) {
        return -1;
    }
    return (int)i + 1;
}

char *mailbox_name(const char *s, uint32_t len, const char **why)
{
    *why = "Invalid mailbox name";
    if (len == 0 || len > MAILBOX_NAME_MAX) {
        *why = len ? "Mailbox name too long" : "Empty mailbox name";
        return NULL;
    }
    for (uint32_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch >= 0x7f) {
            *why = "Mailbox name is not valid modified UTF-7 (8-bit or control characters)";
            return NULL;
        }
        if (ch == '&') {
            if (i + 1 < len && s[i + 1] == '-') {
                i++;
                continue;
            }
            int used = check_b64_run(s + i + 1, len - i - 1);
            /* Two runs back to back must be written as one (RFC 3501). */
            if (used >= 0 && i + 1 + (uint32_t)used < len && s[i + 1 + used] == '&' &&
                !(i + 2 + (uint32_t)used < len && s[i + 2 + used] == '-')) {
                used = -1;
            }
            if (used < 0) {
                *why = "Mailbox name is not valid modified UTF-7";
                return NULL;
            }
            i += (uint32_t)used;
        }
    }
    /* A trailing separator only says "a name with inferiors". */
    while (len > 1 && s[len - 1] == '/') {
        len--;
    }
    char *n = xstrndup(s, len);
    if (!n) {
        return NULL;
    }
    /* Components: no empty, ".", ".." (the store maps names to files). */
    const char *p = n;
    for (;;) {
        const char *e = strchr(p, '/');
        size_t cl = e ? (size_t)(e - p) : strlen(p);
        if (cl == 0 || (cl == 1 && p[0] == '.') || (cl == 2 && p[0] == '.' && p[1] == '.')) {
            *why = "Invalid hierarchy in mailbox name";
            free(n);
            return NULL;
        }
        if (!e) {
            break;
        }
        p = e + 1;
    }
    if (ascii_ncasecmp(n, "INBOX", 5) == 0 && (n[5] == 0 || n[5] == '/')) {
        memcpy(n, "INBOX", 5);
    }
    return n;
}

/* ---- UTF8=ACCEPT (RFC 6855): names travel as UTF-8, stored as mUTF-7 ---- */

static const char mb64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/* Decode one UTF-8 sequence; returns its length and the code point, or -1
 * for anything not well-formed (overlong, surrogate, above U+10FFFF). */
static int utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    int len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 0;
    if (!len || s[0] >= 0xf5 || (size_t)len > n) {
        return -1;
    }
    uint32_t v = s[0] & (0x7f >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return -1;
        }
        v = (v << 6) | (s[i] & 0x3f);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[len] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
        return -1;
    }
    *cp = v;
    return len;
}

static void flush_b64(dbuf *o, const uint16_t *u, size_t nu)
{
    uint32_t bits = 0;
    int nb = 0;
    dbuf_addc(o, '&');
    for (size_t i = 0; i < nu; i++) {
        bits = (bits << 16) | u[i];
        nb += 16;
        while (nb >= 6) {
            nb -= 6;
            dbuf_addc(o, mb64_chars[(bits >> nb) & 63]);
        }
    }
    if (nb > 0) {
        dbuf_addc(o, mb64_chars[(bits << (6 - nb)) & 63]);
    }
    dbuf_addc(o, '-');
}

char *mailbox_utf8_to_mutf7(const char *s, size_t n)
{
    dbuf o = {0};
    uint16_t run[256];
    size_t nr = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int k = utf8_next((const unsigned char *)s + i, n - i, &cp);
        if (k < 0 || cp == 0) {
            dbuf_free(&o);
            return NULL;
        }
        i += (size_t)k;
        if (cp >= 0x20 && cp <= 0x7e) {
            if (nr) {
                flush_b64(&o, run, nr);
                nr = 0;
            }
            if (cp == '&') {
                dbuf_adds(&o, "&-");
            } else {
                dbuf_addc(&o, (char)cp);
            }
            continue;
        }
        if (nr + 2 > sizeof run / sizeof run[0]) {
            dbuf_free(&o);   /* a name that long is refused anyway */
            return NULL;
        }
        if (cp >= 0x10000) {
            cp -= 0x10000;
            run[nr++] = (uint16_t)(0xd800 | (cp >> 10));
            run[nr++] = (uint16_t)(0xdc00 | (cp & 0x3ff));
        } else {
            run[nr++] = (uint16_t)cp;
        }
    }
    if (nr) {
        flush_b64(&o, run, nr);
    }
    if (!o.p) {
        dbuf_add(&o, "", 0);
    }
    return o.p;
}

static void put_utf8(dbuf *o, uint32_t cp)
{
    char b[4];
    if (cp < 0x80) {
        dbuf_addc(o, (char)cp);
    } else if (cp < 0x800) {
        b[0] = (char)(0xc0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3f));
        dbuf_add(o, b, 2);
    } else if (cp < 0x10000) {
        b[0] = (char)(0xe0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f));
        dbuf_add(o, b, 3);
    } else {
        b[0] = (char)(0xf0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (char)(0x80 | (cp & 0x3f));
        dbuf_add(o, b, 4);
    }
}

char *mailbox_mutf7_to_utf8(const char *s)
{
    dbuf o = {0};
    dbuf_add(&o, "", 0);
    for (size_t i = 0; s[i];) {
        if (s[i] != '&') {
            dbuf_addc(&o, s[i++]);
            continue;
        }
        if (s[i + 1] == '-') {
            dbuf_addc(&o, '&');
            i += 2;
            continue;
        }
        i++;
        uint32_t bits = 0, hi = 0;
        int nb = 0;
        while (s[i] && s[i] != '-') {
            int v = mb64((unsigned char)s[i++]);
            if (v < 0) {
                break;
            }
            bits = (bits << 6) | (uint32_t)v;
            nb += 6;
            if (nb >= 16) {
                nb -= 16;
                uint32_t u = (bits >> nb) & 0xffff;
                if (u >= 0xd800 && u <= 0xdbff) {
                    hi = u;
                } else if (u >= 0xdc00 && u <= 0xdfff && hi) {
                    put_utf8(&o, 0x10000 + ((hi - 0xd800) << 10) + (u - 0xdc00));
                    hi = 0;
                } else {
                    put_utf8(&o, u);
                }
            }
        }
        if (s[i] == '-') {
            i++;
        }
    }
    return o.p;
}

int mailbox_utf8_names(const imap_conn *c)
{
    /* RFC 9051 5.1: an IMAP4rev2 session names mailboxes in UTF-8, as
     * UTF8=ACCEPT (RFC 6855 3) does; modified UTF-7 is IMAP4rev1's. */
    return (CONFIG_EXT_UTF8_ACCEPT && (c->ext_on & EXT_UTF8)) || (CONFIG_EXT_IMAP4REV2 && (c->ext_on & EXT_REV2));
}

char *mailbox_name_in(imap_conn *c, const char *s, uint32_t len, const char **why)
{
    if (len == 5 && ascii_ncasecmp(s, "INBOX", 5) == 0) {
        return xstrdup("INBOX");
    }
    if (mailbox_utf8_names(c)) {
        char *m = mailbox_utf8_to_mutf7(s, len);
        if (!m) {
            *why = "Mailbox name is not valid UTF-8";
            return NULL;
        }
        char *n = mailbox_name(m, (uint32_t)strlen(m), why);
        free(m);
        return n;
    }
    return mailbox_name(s, len, why);
}
