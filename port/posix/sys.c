/* sys.c -- logging sinks and start-up helpers for POSIX hosts. */
#include "port.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
