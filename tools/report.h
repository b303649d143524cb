/* report.h - tempkey-admin report: what a monitor needs to know about the
 * realm's temporary keys. */
#ifndef REPORT_H
#define REPORT_H

#include "tempkey.h"

#define TK_REPORT_MAX_LOGS 8

typedef struct tk_report_options {
    const char *logs[TK_REPORT_MAX_LOGS];       /* --log, in order given */
    size_t nlogs;
    const char *prometheus;     /* --prometheus FILE, "-" for stdout */
    int json;
} tk_report_options;

/* Note --log path; 2 (a usage error, said on stderr) if there are too
 * many, else 0. */
int tk_report_add_log(tk_report_options *opt, const char *path);
/* Check the report options against cmd, the command given: 2 (said on
 * stderr) if they are given without report or conflict, else 0. */
int tk_report_check(const char *cmd, tk_report_options *opt, int json);

/*
 * Report on realm, whose settings are cfg: open its database on ctx
 * (read-only, closed again after the walk), read the KDC logs of opt
 * (default: the [logging] kdc file of the profile), and give the report as
 * text, JSON, or Prometheus metrics into opt->prometheus.  A failure (the
 * database, a log, the output) has its message on ctx and writes no
 * output.
 */
krb5_error_code tk_report_run(krb5_context ctx, const char *realm,
                              const tk_config *cfg,
                              const tk_report_options *opt);

#endif /* REPORT_H */
