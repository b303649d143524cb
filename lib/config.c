/* config.c - the module's kdc.conf settings, checked once at open. */
#include "tempkey.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <profile.h>

static krb5_error_code
config_error(krb5_context ctx, const char *fmt, const char *a, const char *b)
{
    krb5_set_error_message(ctx, KRB5_CONFIG_BADFORMAT, fmt, a, b);
    return KRB5_CONFIG_BADFORMAT;
}

/* Read one optional duration setting at names into *out. */
static krb5_error_code
read_duration(krb5_context ctx, profile_t profile, const char *section,
              const char *subsection, const char *setting, krb5_deltat *out)
{
    krb5_error_code ret;
    char *text = NULL, label[256];

    ret = profile_get_string(profile, section, subsection, setting, NULL,
                             &text);
    if (ret || text == NULL)
        return ret;
    snprintf(label, sizeof(label), "[%s] %s %s", section, subsection,
             setting);
    ret = tk_parse_duration(ctx, label, text, out);
    profile_release_string(text);
    return ret;
}

static int
has_name(char **names, const char *name)
{
    for (; names != NULL && *names != NULL; names++) {
        if (strcmp(*names, name) == 0)
            return 1;
    }
    return 0;
}

void
tk_config_free(tk_config *cfg)
{
    free(cfg->section);
    free(cfg->backing);
    memset(cfg, 0, sizeof(*cfg));
}

krb5_error_code
tk_config_read(krb5_context ctx, const char *realm, const char *section,
               tk_config *cfg)
{
    krb5_error_code ret;
    profile_t profile = NULL;
    char *value = NULL, *library = NULL, **names = NULL;
    const char *path[2];

    memset(cfg, 0, sizeof(*cfg));
    cfg->purge_interval = TK_DEFAULT_PURGE_INTERVAL;
    cfg->max_life = TK_DEFAULT_MAX_LIFE;
    ret = krb5_get_profile(ctx, &profile);
    if (ret)
        return ret;

    if (section == NULL) {
        ret = profile_get_string(profile, "realms", realm, "database_module",
                                 realm, &value);
        if (ret)
            goto cleanup;
        section = value;
    }
    cfg->section = strdup(section);
    if (cfg->section == NULL) {
        ret = ENOMEM;
        goto cleanup;
    }

    if (value != NULL) {
        /* Asked for the realm's module: it must be this one. */
        ret = profile_get_string(profile, "dbmodules", section, "db_library",
                                 "", &library);
        if (ret)
            goto cleanup;
        if (strcmp(library, "tempkey") != 0) {
            ret = config_error(ctx, "tempkey: the database of this realm "
                               "([dbmodules] %s, db_library = %s) is not "
                               "tempkey", section, library);
            goto cleanup;
        }
        profile_release_string(library);
        library = NULL;
    }
    ret = profile_get_string(profile, "dbmodules", section, "backing_module",
                             NULL, &cfg->backing);
    if (ret)
        goto cleanup;
    if (cfg->backing == NULL) {
        ret = config_error(ctx, "tempkey: [dbmodules] %s: backing_module is "
                           "not set; name the [dbmodules] section of the "
                           "database that holds the realm%s", section, "");
        goto cleanup;
    }
    path[0] = "dbmodules";
    path[1] = NULL;
    if (profile_get_subsection_names(profile, path, &names) != 0 ||
        !has_name(names, cfg->backing)) {
        ret = config_error(ctx, "tempkey: backing_module = %s: there is no "
                           "[dbmodules] %s section", cfg->backing,
                           cfg->backing);
        goto cleanup;
    }
    ret = profile_get_string(profile, "dbmodules", cfg->backing, "db_library",
                             "", &library);
    if (ret)
        goto cleanup;
    if (strcmp(cfg->backing, section) == 0 ||
        strcmp(library, "tempkey") == 0) {
        ret = config_error(ctx, "tempkey: backing_module = %s: the backing "
                           "module must be an ordinary database (db2, klmdb "
                           "or kldap), not tempkey itself%s", cfg->backing,
                           "");
        goto cleanup;
    }

    ret = read_duration(ctx, profile, "dbmodules", section, "purge_interval",
                        &cfg->purge_interval);
    if (ret)
        goto cleanup;
    ret = read_duration(ctx, profile, "realms", realm, "tempkey_max_life",
                        &cfg->max_life);

cleanup:
    if (ret) {
        free(cfg->section);
        free(cfg->backing);
        memset(cfg, 0, sizeof(*cfg));
    }
    profile_free_list(names);
    profile_release_string(library);
    profile_release_string(value);
    profile_release(profile);
    return ret;
}
