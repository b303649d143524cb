/* tkmonitor.h - monitoring output: the Prometheus text exposition format,
 * and files replaced atomically for the readers that poll them. */
#ifndef TKMONITOR_H
#define TKMONITOR_H

#include <stddef.h>
#include <stdint.h>
#include <krb5.h>

/* Set the message "WHAT PATH: strerror(err)" for err and return it. */
krb5_error_code tk_file_error(krb5_context ctx, int err, const char *what,
                              const char *path);

/*
 * Replace the file at path with data[0..len-1]: a new file of our own in
 * the same directory (O_EXCL, so never one another process made), flushed
 * to disk, given mode, and renamed over path, so that a reader sees the old
 * content or the new, never a part.  Its name ends in ".tmp", which
 * node_exporter's textfile collector (it reads "*.prom") passes over.  On
 * failure path is unchanged and the message names it.
 */
krb5_error_code tk_file_replace(krb5_context ctx, const char *path,
                                const void *data, size_t len, int mode);

/* Metrics being written, in the text exposition format. */
typedef struct tk_prom tk_prom;

krb5_error_code tk_prom_new(tk_prom **prom_out);
void tk_prom_free(tk_prom *prom);

/* Start the family name (tempkey_..., ktupdate_...) of type "gauge" or
 * "counter": its # HELP and # TYPE lines.  Its samples follow. */
void tk_prom_family(tk_prom *prom, const char *name, const char *type,
                    const char *help);
/* One sample of the current family: labels holds label names and values
 * alternately, ended by NULL (NULL itself: no labels).  Values are escaped
 * as the format asks; value is an integer (a count, or Unix seconds). */
void tk_prom_sample(tk_prom *prom, const char *name,
                    const char *const *labels, int64_t value);

/* Write the metrics to path, replaced atomically (mode 0644: the collector
 * runs as another user), or to standard output for "-". */
krb5_error_code tk_prom_write(krb5_context ctx, tk_prom *prom,
                              const char *path);

#endif /* TKMONITOR_H */
