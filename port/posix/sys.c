/* sys.c -- logging sinks, clock and randomness for POSIX hosts. The lwIP
 * port links this file too: only net.c is specific to BSD sockets. */
#include "port.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <syslog.h>
#include <time.h>

static int log_level = LOG_INFO_;
static int use_syslog;

void port_log_setup(const char *sink, int level)
{
    log_level = level;
#if CONFIG_LOG_SYSLOG
    if (sink && strcmp(sink, "syslog") == 0) {
        openlog("picoimapd", LOG_PID | LOG_NDELAY, LOG_MAIL);
        use_syslog = 1;
        return;
    }
#endif
    use_syslog = 0;
}

void port_vlog(int level, const char *fmt, va_list ap)
{
    static const char *const names[] = {"error", "warning", "info", "debug", "trace"};
    if (level > log_level) {
        return;
    }
#if CONFIG_LOG_SYSLOG
    if (use_syslog) {
        static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG, LOG_DEBUG};
        vsyslog(prio[level], fmt, ap);
        return;
    }
#endif
    char ts[32];
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
    fprintf(stderr, "%s picoimapd %s: ", ts, names[level]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void port_log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    port_vlog(level, fmt, ap);
    va_end(ap);
}

void port_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    port_vlog(LOG_ERR_, fmt, ap);
    va_end(ap);
    exit(1);
}

uint64_t port_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)(ts.tv_nsec / 1000000);
}

uint64_t port_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)(ts.tv_nsec / 1000);
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
