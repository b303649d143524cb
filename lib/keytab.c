/* keytab.c - atomic replacement of a FILE keytab. */
#include "tempkey.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

static krb5_error_code
sys_error(krb5_context ctx, int err, const char *what, const char *path)
{
    krb5_set_error_message(ctx, err, "%s %s: %s", what, path, strerror(err));
    return err;
}

/* Copy the entries of the keytab at path accepted by keep into out.  A
 * missing file contributes nothing. */
static krb5_error_code
copy_entries(krb5_context ctx, const char *path, krb5_keytab out,
             tk_keytab_keep_fn keep, void *keep_arg)
{
    krb5_error_code ret;
    krb5_keytab in = NULL;
    krb5_kt_cursor cursor;
    krb5_keytab_entry entry;
    char name[PATH_MAX + 6];

    if (access(path, F_OK) != 0)
        return (errno == ENOENT) ? 0 : sys_error(ctx, errno, "cannot read",
                                                 path);
    snprintf(name, sizeof(name), "FILE:%s", path);
    ret = krb5_kt_resolve(ctx, name, &in);
    if (ret)
        return ret;
    ret = krb5_kt_start_seq_get(ctx, in, &cursor);
    if (ret) {
        krb5_prepend_error_message(ctx, ret, "reading keytab %s", path);
        goto cleanup;
    }
    while ((ret = krb5_kt_next_entry(ctx, in, &entry, &cursor)) == 0) {
        if (keep == NULL || keep(ctx, &entry, keep_arg))
            ret = krb5_kt_add_entry(ctx, out, &entry);
        krb5_free_keytab_entry_contents(ctx, &entry);
        if (ret)
            break;
    }
    krb5_kt_end_seq_get(ctx, in, &cursor);
    if (ret == KRB5_KT_END)
        ret = 0;
    if (ret)
        krb5_prepend_error_message(ctx, ret, "reading keytab %s", path);

cleanup:
    krb5_kt_close(ctx, in);
    return ret;
}

static krb5_error_code
sync_file(krb5_context ctx, const char *path, const struct stat *old)
{
    int fd, err = 0;

    fd = open(path, O_RDONLY);
    if (fd < 0)
        return sys_error(ctx, errno, "cannot open", path);
    if (old != NULL && (fchown(fd, old->st_uid, old->st_gid) != 0 ||
                        fchmod(fd, old->st_mode & 07777) != 0))
        err = errno;
    else if (old == NULL && fchmod(fd, 0600) != 0)
        err = errno;
    else if (fsync(fd) != 0)
        err = errno;
    close(fd);
    return err ? sys_error(ctx, err, "cannot set up", path) : 0;
}

void
tk_sync_dir(const char *path)
{
    char *copy = strdup(path);
    int fd;

    if (copy == NULL)
        return;
    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(copy);
}

krb5_error_code
tk_keytab_lock(krb5_context ctx, const char *path, int *fd_out)
{
    char lock[PATH_MAX];
    int fd;

    *fd_out = -1;
    if (snprintf(lock, sizeof(lock), "%s.lock", path) >= (int)sizeof(lock))
        return sys_error(ctx, ENAMETOOLONG, "cannot lock", path);
    fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return sys_error(ctx, errno, "cannot lock keytab with", lock);
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            int err = errno;

            close(fd);
            return sys_error(ctx, err, "cannot lock keytab with", lock);
        }
    }
    *fd_out = fd;
    return 0;
}

void
tk_keytab_unlock(int fd)
{
    if (fd >= 0)
        close(fd);              /* closing releases the flock */
}

krb5_error_code
tk_keytab_rewrite(krb5_context ctx, const char *path_arg,
                  tk_keytab_keep_fn keep, void *keep_arg,
                  const krb5_keytab_entry *add, size_t nadd)
{
    krb5_error_code ret;
    krb5_keytab out = NULL;
    struct stat st;
    int have_old;
    unsigned char rnd[6];
    char tmp[PATH_MAX], rhex[sizeof(rnd) * 2 + 1], name[PATH_MAX + 6];
    char real[PATH_MAX];
    const char *path = path_arg;
    size_t i;

    /* A symlinked keytab is rewritten where it points: renaming over the
     * link would replace it with a file. */
    if (realpath(path_arg, real) != NULL)
        path = real;
    have_old = (stat(path, &st) == 0);
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return KRB5_CRYPTO_INTERNAL;
    tk_hex(rnd, sizeof(rnd), rhex);
    if (snprintf(tmp, sizeof(tmp), "%s.tk-%ld-%s", path, (long)getpid(),
                 rhex) >= (int)sizeof(tmp))
        return sys_error(ctx, ENAMETOOLONG, "cannot write", path);
    snprintf(name, sizeof(name), "FILE:%s", tmp);

    ret = krb5_kt_resolve(ctx, name, &out);
    if (ret)
        return ret;
    ret = copy_entries(ctx, path, out, keep, keep_arg);
    for (i = 0; ret == 0 && i < nadd; i++) {
        ret = krb5_kt_add_entry(ctx, out, (krb5_keytab_entry *)&add[i]);
        if (ret)
            krb5_prepend_error_message(ctx, ret, "cannot write keytab %s",
                                       path);
    }
    krb5_kt_close(ctx, out);
    if (ret == 0 && access(tmp, F_OK) != 0) {
        /* Nothing was written: refuse rather than leave an empty file. */
        krb5_set_error_message(ctx, KRB5_KT_NOTFOUND,
                               "keytab %s would be left with no keys", path);
        return KRB5_KT_NOTFOUND;
    }
    if (ret == 0)
        ret = sync_file(ctx, tmp, have_old ? &st : NULL);
    if (ret == 0 && rename(tmp, path) != 0)
        ret = sys_error(ctx, errno, "cannot replace", path);
    if (ret) {
        (void)unlink(tmp);
        return ret;
    }
    tk_sync_dir(path);
    return 0;
}
