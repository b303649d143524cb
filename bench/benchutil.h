/* benchutil.h - helpers shared by the benchmark load generators. */
#ifndef BENCHUTIL_H
#define BENCHUTIL_H

#include <stdio.h>
#include <krb5.h>

/* The program's name, for messages; set by each main(). */
extern const char *progname;

/* "progname: <fmt>: <krb5 message for code>" on stderr. */
void complain(krb5_context ctx, krb5_error_code code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Seconds on the monotonic clock. */
double monotonic_now(void);
/* Sleep until the wall clock reads epoch (no-op if it is already past), so
 * that several processes start together. */
void wait_until(double epoch);
/* Parse a positive decimal number (fractions allowed unless integer);
 * return 0, or -1 after a message naming opt. */
int parse_number(const char *opt, const char *text, int integer,
                 double *out);

#endif /* BENCHUTIL_H */
