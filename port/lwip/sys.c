/*
 * sys.c -- clock, randomness and the few OS services lwIP asks of a
 * NO_SYS=1 port (sys_now, LWIP_RAND, diagnostics), on Linux.
 *
 * port_now_ms/port_time/port_random repeat port/posix's: both ports run on
 * Linux and the store is POSIX files either way. Logging and main() are
 * port/posix's sys.c and main.c, linked as they are.
 */
#include "port.h"

#include "lwip/arch.h"
#include "lwip/sys.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

uint64_t port_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)(ts.tv_nsec / 1000000);
}

int64_t port_time(int *tz_minutes)
{
    time_t t = time(NULL);
    if (tz_minutes) {
        struct tm tm;
        localtime_r(&t, &tm);
        *tz_minutes = (int)(tm.tm_gmtoff / 60);
    }
    return (int64_t)t;
}

void port_random(void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            port_fatal("getrandom: %s", strerror(errno));
        }
        p += r;
        n -= (size_t)r;
    }
}

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
