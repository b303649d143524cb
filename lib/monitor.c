/* monitor.c - Prometheus text exposition format and atomic file
 * replacement, for tempkey-admin report and ktupdate --status. */
#include "tkmonitor.h"
#include "tempkey.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

struct tk_prom {
    FILE *out;                  /* an open_memstream() over text */
    char *text;
    size_t len;
    krb5_boolean failed;        /* a write to out failed (no memory) */
};

krb5_error_code
tk_file_error(krb5_context ctx, int err, const char *what, const char *path)
{
    krb5_set_error_message(ctx, err, "%s %s: %s", what, path, strerror(err));
    return err;
}

krb5_error_code
tk_file_replace(krb5_context ctx, const char *path, const void *data,
                size_t len, int mode)
{
    const char *p = data;
    unsigned char rnd[6];
    char rhex[sizeof(rnd) * 2 + 1], tmp[PATH_MAX];
    ssize_t n;
    int fd, err = 0;

    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return KRB5_CRYPTO_INTERNAL;
    tk_hex(rnd, sizeof(rnd), rhex);
    if (snprintf(tmp, sizeof(tmp), "%s.%ld-%s.tmp", path, (long)getpid(),
                 rhex) >= (int)sizeof(tmp))
        return tk_file_error(ctx, ENAMETOOLONG, "cannot write", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
              0600);
    if (fd < 0)
        return tk_file_error(ctx, errno, "cannot write", path);
    while (err == 0 && len > 0) {
        n = write(fd, p, len);
        if (n < 0) {
            if (errno != EINTR)
                err = errno;
            continue;
        }
        p += n;
        len -= (size_t)n;
    }
    /* fchmod, not the umask, decides who may read it. */
    if (err == 0 && fchmod(fd, (mode_t)mode) != 0)
        err = errno;
    if (err == 0 && fsync(fd) != 0)
        err = errno;
    if (close(fd) != 0 && err == 0)
        err = errno;
    if (err == 0 && rename(tmp, path) != 0)
        err = errno;
    if (err) {
        (void)unlink(tmp);
        return tk_file_error(ctx, err, "cannot write", path);
    }
    tk_sync_dir(path);   /* the renamed entry must reach the disk */
    return 0;
}

krb5_error_code
tk_prom_new(tk_prom **prom_out)
{
    tk_prom *prom;

    *prom_out = NULL;
    prom = calloc(1, sizeof(*prom));
    if (prom == NULL)
        return ENOMEM;
    prom->out = open_memstream(&prom->text, &prom->len);
    if (prom->out == NULL) {
        free(prom);
        return ENOMEM;
    }
    *prom_out = prom;
    return 0;
}

void
tk_prom_free(tk_prom *prom)
{
    if (prom == NULL)
        return;
    if (prom->out != NULL)
        fclose(prom->out);
    free(prom->text);
    free(prom);
}

static void
put(tk_prom *prom, const char *s, size_t len)
{
    if (fwrite(s, 1, len, prom->out) != len)
        prom->failed = TRUE;
}

/* s escaped as the format asks: backslash and newline everywhere, and the
 * double quote inside a label value. */
static void
put_escaped(tk_prom *prom, const char *s, krb5_boolean label_value)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            put(prom, "\\\\", 2);
        else if (*s == '\n')
            put(prom, "\\n", 2);
        else if (*s == '"' && label_value)
            put(prom, "\\\"", 2);
        else
            put(prom, s, 1);
    }
}

void
tk_prom_family(tk_prom *prom, const char *name, const char *type,
               const char *help)
{
    put(prom, "# HELP ", 7);
    put(prom, name, strlen(name));
    put(prom, " ", 1);
    put_escaped(prom, help, FALSE);
    put(prom, "\n# TYPE ", 8);
    put(prom, name, strlen(name));
    put(prom, " ", 1);
    put(prom, type, strlen(type));
    put(prom, "\n", 1);
}

void
tk_prom_sample(tk_prom *prom, const char *name, const char *const *labels,
               int64_t value)
{
    char number[32];
    size_t i;

    put(prom, name, strlen(name));
    for (i = 0; labels != NULL && labels[i] != NULL; i += 2) {
        put(prom, i == 0 ? "{" : ",", 1);
        put(prom, labels[i], strlen(labels[i]));
        put(prom, "=\"", 2);
        put_escaped(prom, labels[i + 1], TRUE);
        put(prom, "\"", 1);
    }
    if (i > 0)
        put(prom, "}", 1);
    snprintf(number, sizeof(number), " %lld\n", (long long)value);
    put(prom, number, strlen(number));
}

krb5_error_code
tk_prom_write(krb5_context ctx, tk_prom *prom, const char *path)
{
    if (fflush(prom->out) != 0 || prom->failed)
        return ENOMEM;
    if (strcmp(path, "-") != 0)
        return tk_file_replace(ctx, path, prom->text, prom->len, 0644);
    if (fwrite(prom->text, 1, prom->len, stdout) != prom->len ||
        fflush(stdout) != 0)
        return tk_file_error(ctx, errno, "cannot write", "to standard output");
    return 0;
}
