/*
 * sys.c -- clock, randomness and the few OS services lwIP asks of a
 * NO_SYS=1 port (sys_now, LWIP_RAND, diagnostics), on Linux.
 *
 * port_now_ms/port_time/port_random, logging and main() are port/posix's
 * sys.c and main.c, linked as they are: both ports run on Linux.
 */
#include "port.h"

#include "lwip/arch.h"
#include "lwip/sys.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* lwIP's clock: milliseconds that wrap at 2^32, as its timers expect. */
u32_t sys_now(void)
{
    return (u32_t)port_now_ms();
}

/* Random numbers for lwIP (ARP, ephemeral ports): buffered so a busy stack
 * does not make one getrandom call per number. */
unsigned int lwip_port_rand(void)
{
    static unsigned int pool[64];
    static unsigned left;
    if (left == 0) {
        port_random(pool, sizeof pool);
        left = sizeof pool / sizeof pool[0];
    }
    return pool[--left];
}

/* TCP initial sequence numbers: unpredictable per connection (RFC 6528's
 * goal), without lwIP's tick-based counter. */
unsigned int lwip_port_tcp_isn(void)
{
    return lwip_port_rand();
}

void lwip_port_diag(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    port_vlog(LOG_DEBUG_, fmt, ap);
    va_end(ap);
}

void lwip_port_assert(const char *msg, int line, const char *file)
{
    port_log(LOG_ERR_, "lwIP assertion \"%s\" failed at %s:%d", msg, file, line);
    abort();
}
