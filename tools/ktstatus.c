/* ktstatus.c - ktupdate's record of how its runs ended (KEYTAB.tempkey-status)
 * and the metrics made from it. */
/*
 * The file holds one line per principal of the keytab, fields separated by
 * tabs (krb5_unparse_name quotes a tab in a name): principal, last run,
 * its exit status, last success, the kvno, expiry and refresh-by the KDC
 * acknowledged then, last failure, its exit status, and the line that said
 * why.  Times are Unix seconds, 0 for never.  Like the keytab and the key
 * records it is replaced atomically, under the keytab's lock, so that runs
 * of several principals sharing a keytab keep each other's lines.
 */

#define _GNU_SOURCE             /* fopencookie */

#include "ktstatus.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tempkey.h"
#include "tkmonitor.h"

/* A host keytab holds a few principals; the bound only stops a runaway
 * file. */
#define MAX_STATUS_FILE (1024 * 1024)

/* ---- The last line written to stderr. */

static krb5_boolean capturing;
static char partial[KT_ERROR_LEN], last_line[KT_ERROR_LEN];
static size_t partial_len;

/* Pass the bytes on to file descriptor 2 and keep the last line. */
static ssize_t
tee_write(void *cookie, const char *buf, size_t size)
{
    size_t i, done = 0;
    ssize_t n;

    while (done < size) {
        n = write(STDERR_FILENO, buf + done, size - done);
        if (n < 0 && errno != EINTR)
            break;
        if (n > 0)
            done += (size_t)n;
    }
    for (i = 0; i < size; i++) {
        if (buf[i] == '\n') {
            partial[partial_len] = '\0';
            memcpy(last_line, partial, partial_len + 1);
            partial_len = 0;
        } else if (partial_len < sizeof(partial) - 1) {
            partial[partial_len++] = (buf[i] == '\t') ? ' ' : buf[i];
        }
    }
    return (ssize_t)size;
}

void
kt_capture_reset(void)
{
    static cookie_io_functions_t io = { NULL, tee_write, NULL, NULL };
    FILE *tee;

    if (!capturing) {
        /* Without it the record keeps the exit status alone. */
        tee = fopencookie(NULL, "w", io);
        if (tee != NULL && setvbuf(tee, NULL, _IONBF, 0) == 0) {
            fflush(stderr);
            stderr = tee;
            capturing = TRUE;
        } else if (tee != NULL) {
            fclose(tee);
        }
    }
    partial_len = 0;
    last_line[0] = '\0';
}

const char *
kt_captured_line(void)
{
    return last_line;
}

/* ---- The file. */

/* The whole file at path into *text_out (NULL if it does not exist); free
 * it with free(). */
static krb5_error_code
slurp(krb5_context ctx, const char *path, char **text_out)
{
    FILE *f;
    char *text;
    size_t n;
    int err = 0;

    *text_out = NULL;
    f = fopen(path, "r");
    if (f == NULL)
        return (errno == ENOENT) ? 0 : tk_file_error(ctx, errno,
                                                     "cannot read", path);
    text = malloc(MAX_STATUS_FILE + 1);
    if (text == NULL) {
        fclose(f);
        return ENOMEM;
    }
    n = fread(text, 1, MAX_STATUS_FILE + 1, f);
    if (ferror(f))
        err = errno ? errno : EIO;
    else if (n > MAX_STATUS_FILE)
        err = EFBIG;
    fclose(f);
    if (err) {
        free(text);
        return tk_file_error(ctx, err, "cannot read", path);
    }
    text[n] = '\0';
    *text_out = text;
    return 0;
}

#define NFIELDS 10
#define MAX_LINE (KT_ERROR_LEN + 1024)

/* Split line (len bytes, not NUL-ended) at its first NFIELDS - 1 tabs into
 * buf; FALSE if it is longer than a record or has fewer fields. */
static krb5_boolean
split_line(const char *line, size_t len, char *buf, char **fields)
{
    char *p;
    int i;

    if (len >= MAX_LINE)
        return FALSE;
    memcpy(buf, line, len);
    buf[len] = '\0';
    p = buf;
    for (i = 0; i < NFIELDS - 1; i++) {
        fields[i] = p;
        p = strchr(p, '\t');
        if (p == NULL)
            return FALSE;
        *p++ = '\0';
    }
    fields[NFIELDS - 1] = p;
    return TRUE;
}

static krb5_boolean
number(const char *text, long long *out)
{
    char *end;

    errno = 0;
    *out = strtoll(text, &end, 10);
    return errno == 0 && end != text && *end == '\0';
}

/* Whether line (len bytes, not NUL-ended) is principal's record, read
 * into *st if st is not NULL. */
static krb5_boolean
parse_line(const char *line, size_t len, const char *principal, kt_state *st)
{
    char buf[MAX_LINE], *f[NFIELDS];
    long long v[NFIELDS - 2];
    int i;

    if (!split_line(line, len, buf, f) || strcmp(f[0], principal) != 0)
        return FALSE;
    for (i = 0; i < NFIELDS - 2; i++) {
        if (!number(f[i + 1], &v[i]))
            return FALSE;
    }
    if (st == NULL)
        return TRUE;
    st->last_run = v[0];
    st->last_status = (int)v[1];
    st->last_success = v[2];
    st->kvno = (krb5_kvno)v[3];
    st->expiry = v[4];
    st->refresh_by = v[5];
    st->last_error = v[6];
    st->error_status = (int)v[7];
    snprintf(st->error, sizeof(st->error), "%s", f[NFIELDS - 1]);
    return TRUE;
}

/* Call fn for each line of text (a whole file, NUL-ended): its start and
 * length without the newline.  Stops when fn returns TRUE. */
static krb5_boolean
each_line(const char *text, krb5_boolean (*fn)(const char *, size_t, void *),
          void *arg)
{
    const char *line, *end;

    for (line = text; *line != '\0'; line = end + 1) {
        end = strchr(line, '\n');
        if (end == NULL)
            return fn(line, strlen(line), arg);
        if (fn(line, (size_t)(end - line), arg))
            return TRUE;
    }
    return FALSE;
}

typedef struct {
    const char *principal;
    kt_state *st;
    FILE *out;
} line_job;

static krb5_boolean
find_line(const char *line, size_t len, void *arg)
{
    line_job *job = arg;

    return parse_line(line, len, job->principal, job->st);
}

/* Copy every line but principal's record. */
static krb5_boolean
copy_line(const char *line, size_t len, void *arg)
{
    line_job *job = arg;

    if (!parse_line(line, len, job->principal, NULL))
        fprintf(job->out, "%.*s\n", (int)len, line);
    return FALSE;
}

krb5_error_code
kt_state_read(krb5_context ctx, const char *path, const char *principal,
              kt_state *state_out, krb5_boolean *found_out)
{
    krb5_error_code ret;
    char *text = NULL;

    memset(state_out, 0, sizeof(*state_out));
    *found_out = FALSE;
    ret = slurp(ctx, path, &text);
    if (ret == 0 && text != NULL) {
        line_job job = { principal, state_out, NULL };

        *found_out = each_line(text, find_line, &job);
    }
    free(text);
    return ret;
}

/* text without principal's record, then its new one, st. */
static krb5_error_code
new_text(const char *text, const char *principal, const kt_state *st,
         char **out, size_t *len_out)
{
    line_job job = { principal, NULL, NULL };

    *out = NULL;
    job.out = open_memstream(out, len_out);
    if (job.out == NULL)
        return ENOMEM;
    (void)each_line(text, copy_line, &job);
    fprintf(job.out, "%s\t%lld\t%d\t%lld\t%u\t%lld\t%lld\t%lld\t%d\t%s\n",
            principal, (long long)st->last_run, st->last_status,
            (long long)st->last_success, st->kvno, (long long)st->expiry,
            (long long)st->refresh_by, (long long)st->last_error,
            st->error_status, st->error);
    if (fclose(job.out) != 0) {
        free(*out);
        *out = NULL;
        return ENOMEM;
    }
    return 0;
}

krb5_error_code
kt_state_record(krb5_context ctx, const char *path, const char *keytab,
                const char *principal, const kt_run *run)
{
    krb5_error_code ret;
    kt_state st;
    char *text = NULL, *out = NULL;
    size_t len = 0;
    int lock = -1;

    memset(&st, 0, sizeof(st));
    ret = tk_keytab_lock(ctx, keytab, &lock);
    if (ret == 0)
        ret = slurp(ctx, path, &text);
    if (ret)
        goto cleanup;
    if (text != NULL) {
        line_job job = { principal, &st, NULL };

        (void)each_line(text, find_line, &job);
    }
    st.last_run = run->time;
    st.last_status = run->status;
    if (run->status == 0) {
        st.last_success = run->time;
        st.kvno = run->kvno;
        st.expiry = run->expiry;
        st.refresh_by = run->refresh_by;
    } else {
        st.last_error = run->time;
        st.error_status = run->status;
        snprintf(st.error, sizeof(st.error), "%s",
                 (run->error != NULL && *run->error != '\0') ? run->error :
                 "(nothing was said)");
    }
    ret = new_text(text != NULL ? text : "", principal, &st, &out, &len);
    if (ret == 0)
        ret = tk_file_replace(ctx, path, out, len, 0600);

cleanup:
    tk_keytab_unlock(lock);
    free(text);
    free(out);
    return ret;
}

/* ---- Output. */

void
kt_state_print(const char *principal, const kt_state *st,
               krb5_boolean found, const char *path)
{
    char when[TK_TIME_LEN], expiry[TK_TIME_LEN], by[TK_TIME_LEN];

    if (!found) {
        printf("%s: no run recorded in %s\n", principal, path);
        return;
    }
    tk_format_time(st->last_run, when);
    printf("%s last run %s exit %d\n", principal, when, st->last_status);
    if (st->last_success != 0) {
        tk_format_time(st->last_success, when);
        tk_format_time(st->expiry, expiry);
        tk_format_time(st->refresh_by, by);
        printf("%s last success %s kvno %u expires %s refresh by %s\n",
               principal, when, st->kvno, expiry, by);
    }
    if (st->last_error != 0) {
        tk_format_time(st->last_error, when);
        printf("%s last error %s exit %d: %s\n", principal, when,
               st->error_status, st->error);
    }
}

/* One gauge with the principal label; a NULL value is no sample. */
static void
gauge(tk_prom *prom, const char *principal, const char *name,
      const char *help, const int64_t *value)
{
    const char *labels[] = { "principal", principal, NULL };

    tk_prom_family(prom, name, "gauge", help);
    if (value != NULL)
        tk_prom_sample(prom, name, labels, *value);
}

krb5_error_code
kt_state_prometheus(krb5_context ctx, const char *out, const char *principal,
                    const kt_state *st, krb5_boolean found,
                    int64_t newest_expiry)
{
    krb5_error_code ret;
    tk_prom *prom = NULL;
    int64_t status = st->last_status;

    ret = tk_prom_new(&prom);
    if (ret)
        return ret;
    gauge(prom, principal, "ktupdate_last_run_timestamp_seconds",
          "When ktupdate last ran for the principal, in Unix seconds "
          "(0: never).", &st->last_run);
    /* Never run: no status to show, rather than a false 0. */
    gauge(prom, principal, "ktupdate_last_run_exit_status",
          "The exit status of ktupdate's last run (0: success; the others "
          "in ktupdate(8)).", found ? &status : NULL);
    gauge(prom, principal, "ktupdate_last_success_timestamp_seconds",
          "When the KDC last acknowledged an upload, in Unix seconds "
          "(0: never).", &st->last_success);
    gauge(prom, principal, "ktupdate_last_error_timestamp_seconds",
          "When a run last failed, in Unix seconds (0: never).",
          &st->last_error);
    gauge(prom, principal, "ktupdate_refresh_by_timestamp_seconds",
          "When the KDC asked for the next key at the last success, in "
          "Unix seconds (0: never).", &st->refresh_by);
    gauge(prom, principal, "ktupdate_newest_key_expiry_timestamp_seconds",
          "When the newest key the KDC acknowledged expires, in Unix "
          "seconds (0: none in the keytab).", &newest_expiry);
    ret = tk_prom_write(ctx, prom, out);
    tk_prom_free(prom);
    return ret;
}
