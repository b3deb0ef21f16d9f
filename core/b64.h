/*
 * b64.h -- base64 (RFC 4648 section 4, standard alphabet, '=' padding).
 *
 * Used for SASL exchanges (RFC 4422 requires the standard alphabet with
 * padding) and for the {SHA256}/{SSHA256}-style hashes in passwd files.
 * Decoding is strict because every input is untrusted: anything but the
 * canonical encoding of some byte string is refused, so one value has one
 * spelling and nothing is silently skipped.
 */
#ifndef B64_H
#define B64_H

#include <stddef.h>

/* Characters b64_encode writes for n input bytes, not counting the NUL. */
#define B64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4)
/* Most bytes b64_decode can produce from n characters. */
#define B64_DECODED_MAX(n) (((n) / 4) * 3)

/* Encode n bytes and NUL-terminate. Returns the length written (without
 * the NUL), or -1 if outsz < B64_ENCODED_LEN(n) + 1 or the length would
 * not fit in an int. */
int b64_encode(const void *in, size_t n, char *out, size_t outsz);

/* Decode exactly n characters (no NUL needed). Returns the number of bytes
 * written, or -1 if the input is not canonical base64 -- a character
 * outside the alphabet (whitespace included), a length that is not a
 * multiple of 4, '=' anywhere but the last one or two places, nonzero bits
 * under the padding -- or if the result would not fit in outsz. An empty
 * input decodes to 0 bytes. */
int b64_decode(const char *in, size_t n, void *out, size_t outsz);
/* Value of one character of the standard alphabet, or -1. */
int b64_value(unsigned char ch);

#endif
