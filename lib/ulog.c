/* ulog.c - the update log for the module's own writes on an iprop primary. */
/*
 * krb5kdc never writes the update log; kadmind, kadmin.local and kdb5_util
 * map it on their context before opening the database, and libkdb5 then
 * logs every krb5_db_put_principal made on that context.  The module's own
 * writes (uploads, purges, tempkey-admin) go through a context of their
 * own, which maps the log the way kadmind does (kadm5_get_config_params)
 * when [realms] iprop_enable is set: iprop_logfile (default database_name
 * + ".ulog"), iprop_ulogsize (or iprop_master_ulogsize, default 1000
 * entries).
 */
#include "tkentry.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <com_err.h>
#include <profile.h>

/* Exported by libkdb5 but declared in kdb_log.h, which Debian does not
 * install. */
krb5_error_code ulog_map(krb5_context context, const char *logname,
                         uint32_t entries);
krb5_error_code ulog_set_role(krb5_context ctx, int role);
void ulog_fini(krb5_context context);
#define TK_IPROP_PRIMARY 1      /* iprop_role's IPROP_PRIMARY */
#define TK_DEFAULT_ULOG_ENTRIES 1000

/* Read [realms] realm name as a positive integer into *out (left unchanged
 * when unset or not positive, as kadmind reads it). */
static void
read_ulogsize(profile_t profile, const char *realm, const char *name,
              int *out)
{
    int value = 0;

    if (*out == 0 &&
        profile_get_integer(profile, "realms", realm, name, 0, &value) == 0 &&
        value > 0)
        *out = value;
}

/* Set *path_out and *entries_out to the update log kadmind uses. */
static krb5_error_code
ulog_settings(krb5_context ctx, const char *realm, char **path_out,
              int *entries_out)
{
    krb5_error_code ret;
    profile_t profile = NULL;
    int entries = 0;
    char *logfile = NULL, *dbname = NULL, *path = NULL;

    *path_out = NULL;
    ret = krb5_get_profile(ctx, &profile);
    if (ret)
        return ret;
    ret = profile_get_string(profile, "realms", realm, "iprop_logfile", NULL,
                             &logfile);
    if (ret == 0 && logfile == NULL)
        ret = profile_get_string(profile, "realms", realm, "database_name",
                                 TK_DEFAULT_KDB_FILE, &dbname);
    if (ret)
        goto cleanup;
    if (logfile != NULL) {
        path = strdup(logfile);
    } else {
        path = malloc(strlen(dbname) + sizeof(".ulog"));
        if (path != NULL)
            sprintf(path, "%s.ulog", dbname);
    }
    if (path == NULL) {
        ret = ENOMEM;
        goto cleanup;
    }
    read_ulogsize(profile, realm, "iprop_ulogsize", &entries);
    read_ulogsize(profile, realm, "iprop_master_ulogsize", &entries);
    *entries_out = entries ? entries : TK_DEFAULT_ULOG_ENTRIES;
    *path_out = path;

cleanup:
    profile_release_string(logfile);
    profile_release_string(dbname);
    profile_release(profile);
    return ret;
}

/* db_args (krb5kdc -d/-x, or NULL) with the writer's mark added; the
 * strings are shared. */
static char **
writer_args(char **db_args)
{
    char **args;
    size_t n = 0, i;

    while (db_args != NULL && db_args[n] != NULL)
        n++;
    args = calloc(n + 2, sizeof(*args));
    if (args == NULL)
        return NULL;
    for (i = 0; i < n; i++)
        args[i] = db_args[i];
    args[n] = TK_WRITER_ARG;
    return args;
}

krb5_error_code
tk_db_open_for_writes(krb5_context ctx, const char *realm,
                      const tk_config *cfg, char **db_args)
{
    krb5_error_code ret = 0;
    char *path = NULL, **args = NULL;
    int entries = 0;

    if (cfg->replica) {
        krb5_set_error_message(ctx, KRB5_KDB_ACCESS_ERROR, "tempkey: this "
                               "database is a replica (role = replica in "
                               "[dbmodules] %s): only the primary changes "
                               "temporary keys", cfg->section);
        return KRB5_KDB_ACCESS_ERROR;
    }
    if (cfg->logged)
        ret = ulog_settings(ctx, realm, &path, &entries);
    if (ret == 0 && path != NULL) {
        ret = ulog_set_role(ctx, TK_IPROP_PRIMARY);
        if (ret == 0)
            ret = ulog_map(ctx, path, (uint32_t)entries);
        if (ret) {
            krb5_set_error_message(ctx, ret, "tempkey: cannot map the update "
                                   "log %s: %s", path, error_message(ret));
            ulog_fini(ctx);
        }
    }
    free(path);
    if (ret == 0 && (args = writer_args(db_args)) == NULL)
        ret = ENOMEM;
    if (ret == 0)
        ret = krb5_db_open(ctx, args,
                           KRB5_KDB_OPEN_RW | KRB5_KDB_SRV_TYPE_ADMIN);
    free(args);
    return ret;
}

void
tk_db_close_for_writes(krb5_context ctx)
{
    (void)krb5_db_fini(ctx);
    ulog_fini(ctx);
}
