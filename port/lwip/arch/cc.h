/*
 * arch/cc.h -- what lwIP asks of the compiler and C library (see lwIP's
 * doc/sys_arch.txt). Ours: a hosted C11 compiler with glibc or musl.
 */
#ifndef PICO_LWIP_ARCH_CC_H
#define PICO_LWIP_ARCH_CC_H

#include <endian.h>   /* BYTE_ORDER, LITTLE_ENDIAN, BIG_ENDIAN for lwIP */
#include <stdio.h>
#include <stdlib.h>

/* Diagnostics and assertions go to picoimapd's log; an assertion inside
 * lwIP is a bug in the stack or in our use of it, so it stops the process
 * (a corrupted stack would otherwise serve corrupted mail). */
void lwip_port_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void lwip_port_assert(const char *msg, int line, const char *file) __attribute__((noreturn));
#define LWIP_PLATFORM_DIAG(x) do { lwip_port_diag x; } while (0)
#define LWIP_PLATFORM_ASSERT(x) lwip_port_assert((x), __LINE__, __FILE__)

/* lwIP's random source (used for e.g. ARP and port numbers). */
unsigned int lwip_port_rand(void);
#define LWIP_RAND() lwip_port_rand()

/* errno values come from the C library. */
#define LWIP_ERRNO_STDINCLUDE 1

#endif
