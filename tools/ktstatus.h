/* ktstatus.h - ktupdate's record of how its runs ended, kept beside the
 * keytab in KEYTAB.tempkey-status, for --status and its metrics. */
#ifndef KTSTATUS_H
#define KTSTATUS_H

#include <stdint.h>
#include <krb5.h>

#define KT_STATUS_SUFFIX ".tempkey-status"
#define KT_ERROR_LEN 512

/* How one principal's runs ended: the last one, the last success and the
 * last failure (times in seconds since the epoch, 0 for never). */
typedef struct kt_state {
    int64_t last_run;
    int last_status;            /* its exit status */
    int64_t last_success;
    krb5_kvno kvno;             /* the key the KDC acknowledged then */
    int64_t expiry;
    int64_t refresh_by;         /* when the KDC asked to be sent the next */
    int64_t last_error;
    int error_status;
    char error[KT_ERROR_LEN];   /* the line that said why */
} kt_state;

/*
 * Remember from now on the last line written to stderr (it still goes
 * out): a failed run ends with one line saying why, which the record keeps
 * as it was said.  kt_capture_reset() forgets it before a run;
 * kt_captured_line() is "" when none was written since.
 */
void kt_capture_reset(void);
const char *kt_captured_line(void);

/* Read principal's record from the status file at path; *found_out is
 * FALSE (and *state_out zero) if it has none or the file does not exist. */
krb5_error_code kt_state_read(krb5_context ctx, const char *path,
                              const char *principal, kt_state *state_out,
                              krb5_boolean *found_out);

/* How one run ended. */
typedef struct kt_run {
    int64_t time;
    int status;                 /* its exit status */
    krb5_kvno kvno;             /* on success: the KDC's acknowledgement */
    int64_t expiry;
    int64_t refresh_by;
    const char *error;          /* on failure: the line that said why */
} kt_run;

/* Record run of principal into the status file at path, atomically and
 * under the lock of keytab (the keytab's path), keeping the other
 * principals' records. */
krb5_error_code kt_state_record(krb5_context ctx, const char *path,
                                const char *keytab, const char *principal,
                                const kt_run *run);

/* Print the record as lines for --status. */
void kt_state_print(const char *principal, const kt_state *state,
                    krb5_boolean found, const char *path);

/* Write the record as Prometheus metrics to out ("-": stdout), with
 * newest_expiry, the expiry of the newest key in the keytab the KDC
 * acknowledged (0: none). */
krb5_error_code kt_state_prometheus(krb5_context ctx, const char *out,
                                    const char *principal,
                                    const kt_state *state,
                                    krb5_boolean found,
                                    int64_t newest_expiry);

#endif /* KTSTATUS_H */
