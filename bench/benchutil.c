/* benchutil.c - helpers shared by the benchmark load generators. */
#define _GNU_SOURCE
#include "benchutil.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void
complain(krb5_context ctx, krb5_error_code code, const char *fmt, ...)
{
    const char *msg;
    va_list ap;

    fprintf(stderr, "%s: ", progname);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    msg = krb5_get_error_message(ctx, code);
    fprintf(stderr, ": %s\n", msg != NULL ? msg : "unknown error");
    krb5_free_error_message(ctx, msg);
}

double
monotonic_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleep until the wall clock reads epoch (no-op if it is already past). */
void
wait_until(double epoch)
{
    struct timespec ts;

    ts.tv_sec = (time_t)epoch;
    ts.tv_nsec = (long)((epoch - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec < 0 || ts.tv_nsec > 999999999)
        ts.tv_nsec = 0;
    while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* Parse a positive decimal number (fractions allowed unless integer). */
int
parse_number(const char *opt, const char *text, int integer, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = integer ? (double)strtoul(text, &end, 10) : strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !(v > 0) ||
        (integer && strchr(text, '-') != NULL)) {
        fprintf(stderr, "%s: %s: bad value \"%s\"\n", progname, opt, text);
        return -1;
    }
    *out = v;
    return 0;
}

