/* names.c -- mailbox names: modified UTF-7 (RFC 3501 5.1.3) and safety. */
#include "cmd.h"

#include <stdlib.h>
#include <string.h>

#define MAILBOX_NAME_MAX 512  /* bytes; deeper or longer names are refused */

static int mb64(int ch)
{
    if (ch >= 'A' && ch <= 'Z') {
        return ch - 'A';
    }
    if (ch >= 'a' && ch <= 'z') {
        return ch - 'a' + 26;
    }
    if (ch >= '0' && ch <= '9') {
        return ch - '0' + 52;
    }
    if (ch == '+') {
        return 62;
    }
    if (ch == ',') {
        return 63;
    }
    return -1;
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
