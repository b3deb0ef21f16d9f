/*
 * crc32c.c -- CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the
 * checksum of version 3 MSGS blocks (log.c).
 *
 * Why a second CRC: the index of a 100,000-message mailbox is a 4.8 MB
 * block that every open after a restart checks before it is used. The
 * IEEE CRC of the rest of the log has no instruction on x86; CRC-32C has
 * one (SSE4.2 `crc32`, and ARMv8's CRC extension), 8 bytes a cycle when
 * three independent streams run interleaved, against about 1 byte a cycle
 * for the slice-by-8 tables. The tables stay as the portable fallback and
 * give the same results (test_store compares them at every length and
 * alignment); which one runs is chosen at the first call (x86: cpuid;
 * ARM: the compiler's target flags).
 *
 * Three streams: the CRC register is linear over GF(2), so the state
 * after A|B|C (|B| = |C| = L) is shift(a, 2L) ^ shift(b, L) ^ c, where a
 * started from the incoming state and b, c from zero, and shift(x, L) is
 * x times x^(8L) modulo the polynomial: a fixed 32x32 bit matrix, built
 * once by squaring the one-bit operator (18 squarings for 32 KiB).
 */
#include <string.h>

#include "st_int.h"

#define POLY 0x82f63b78u

static uint32_t tab[8][256];
static int tab_ready;

static void tab_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
        }
        tab[0][i] = c;
    }
    for (int k = 1; k < 8; k++) {
        for (int i = 0; i < 256; i++) {
            uint32_t c = tab[k - 1][i];
            tab[k][i] = tab[0][c & 0xff] ^ (c >> 8);
        }
    }
    tab_ready = 1;
}

/* The register (no pre/post inversion) over p with the tables. */
static uint32_t soft(uint32_t crc, const uint8_t *b, size_t n)
{
    while (n >= 8) {
        uint32_t lo = crc ^ ((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                             (uint32_t)b[3] << 24);
        crc = tab[7][lo & 0xff] ^ tab[6][(lo >> 8) & 0xff] ^ tab[5][(lo >> 16) & 0xff] ^
              tab[4][lo >> 24] ^ tab[3][b[4]] ^ tab[2][b[5]] ^ tab[1][b[6]] ^ tab[0][b[7]];
        b += 8;
        n -= 8;
    }
    while (n--) {
        crc = tab[0][(crc ^ *b++) & 0xff] ^ (crc >> 8);
    }
    return crc;
}

/* ---- shifting a register state past L zero bytes ---- */
/* Bytes per stream of the interleaved loop. */
#define STREAM 32768u

static uint32_t mat_times(const uint32_t *mat, uint32_t v)
{
    uint32_t s = 0;
    for (; v; v >>= 1, mat++) {
        if (v & 1) {
            s ^= *mat;
        }
    }
    return s;
}

static void mat_square(uint32_t *sq, const uint32_t *mat)
{
    for (int i = 0; i < 32; i++) {
        sq[i] = mat_times(mat, mat[i]);
    }
}

static uint32_t shift1[32], shift2[32]; /* past STREAM, 2 * STREAM bytes */

static void shift_init(void)
{
    uint32_t a[32], b[32];
    /* one zero bit: the register moves right, the polynomial comes in */
    a[0] = POLY;
    for (int i = 1; i < 32; i++) {
        a[i] = 1u << (i - 1);
    }
    /* 2, 4, 8 bits: one byte after three squarings; then 2, 4, ... bytes */
    uint32_t *cur = a, *nxt = b;
    for (unsigned bits = 1; bits < 8u * STREAM; bits *= 2) {
        mat_square(nxt, cur);
        uint32_t *t = cur;
        cur = nxt;
        nxt = t;
    }
    memcpy(shift1, cur, sizeof shift1);
    mat_square(shift2, shift1);
}

int st_crc32c_soft; /* tests: 1 forces the tables */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define HAVE_HW 1

__attribute__((target("sse4.2"))) static uint32_t hw(uint32_t crc, const uint8_t *b, size_t n)
{
    while (n && ((uintptr_t)b & 7)) {
        crc = _mm_crc32_u8(crc, *b++);
        n--;
    }
    while (n >= 3 * STREAM) {
        uint64_t c0 = crc, c1 = 0, c2 = 0, w0, w1, w2;
        for (size_t i = 0; i < STREAM; i += 8) {
            memcpy(&w0, b + i, 8);
            memcpy(&w1, b + STREAM + i, 8);
            memcpy(&w2, b + 2 * STREAM + i, 8);
            c0 = _mm_crc32_u64(c0, w0);
            c1 = _mm_crc32_u64(c1, w1);
            c2 = _mm_crc32_u64(c2, w2);
        }
        crc = mat_times(shift2, (uint32_t)c0) ^ mat_times(shift1, (uint32_t)c1) ^ (uint32_t)c2;
        b += 3 * STREAM;
        n -= 3 * STREAM;
    }
    uint64_t c = crc, w;
    while (n >= 8) {
        memcpy(&w, b, 8);
        c = _mm_crc32_u64(c, w);
        b += 8;
        n -= 8;
    }
    crc = (uint32_t)c;
    while (n--) {
        crc = _mm_crc32_u8(crc, *b++);
    }
    return crc;
}

static int hw_ok(void)
{
    return __builtin_cpu_supports("sse4.2");
}
#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
#include <arm_acle.h>
#define HAVE_HW 1

static uint32_t hw(uint32_t crc, const uint8_t *b, size_t n)
{
    while (n && ((uintptr_t)b & 7)) {
        crc = __crc32cb(crc, *b++);
        n--;
    }
    while (n >= 3 * STREAM) {
        uint32_t c0 = crc, c1 = 0, c2 = 0;
        uint64_t w0, w1, w2;
        for (size_t i = 0; i < STREAM; i += 8) {
            memcpy(&w0, b + i, 8);
            memcpy(&w1, b + STREAM + i, 8);
            memcpy(&w2, b + 2 * STREAM + i, 8);
            c0 = __crc32cd(c0, w0);
            c1 = __crc32cd(c1, w1);
            c2 = __crc32cd(c2, w2);
        }
        crc = mat_times(shift2, c0) ^ mat_times(shift1, c1) ^ c2;
        b += 3 * STREAM;
        n -= 3 * STREAM;
    }
    uint64_t w;
    while (n >= 8) {
        memcpy(&w, b, 8);
        crc = __crc32cd(crc, w);
        b += 8;
        n -= 8;
    }
    while (n--) {
        crc = __crc32cb(crc, *b++);
    }
    return crc;
}

static int hw_ok(void)
{
    return 1;
}
#else
#define HAVE_HW 0
static uint32_t hw(uint32_t crc, const uint8_t *b, size_t n)
{
    return soft(crc, b, n);
}

static int hw_ok(void)
{
    return 0;
}
#endif

static int use_hw = -1; /* unknown until the first call */

int st_crc32c_hw(void)
{
    if (use_hw < 0) {
        use_hw = HAVE_HW && hw_ok();
        if (use_hw) {
            shift_init();
        }
    }
    return use_hw;
}

uint32_t st_crc32c(uint32_t crc, const void *p, size_t n)
{
    crc = ~crc;
    if (st_crc32c_hw() && !st_crc32c_soft) {
        crc = hw(crc, p, n);
    } else {
        if (!tab_ready) {
            tab_init();
        }
        crc = soft(crc, p, n);
    }
    return ~crc;
}
