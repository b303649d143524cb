/* config.c - the module's kdc.conf settings, checked once at open. */
#include "tempkey.h"
#include "tkproto.h"

#include <errno.h>
#include <fnmatch.h>
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

/* Read one optional duration setting at names into *out; zero_ok for MIT
 * settings where 0 is valid (a max_life of 0 means no limit). */
static krb5_error_code
read_duration(krb5_context ctx, profile_t profile, const char *section,
              const char *subsection, const char *setting,
              krb5_boolean zero_ok, krb5_deltat *out)
{
    krb5_error_code ret;
    char *text = NULL, label[256];
    krb5_deltat d;

    ret = profile_get_string(profile, section, subsection, setting, NULL,
                             &text);
    if (ret || text == NULL)
        return ret;
    snprintf(label, sizeof(label), "[%s] %s %s", section, subsection,
             setting);
    if (zero_ok && krb5_string_to_deltat(text, &d) == 0 && d == 0)
        *out = 0;
    else
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
    free(cfg->ratchet_file);
    free(cfg->db_base);
    tk_policy_free(&cfg->policy);
    memset(cfg, 0, sizeof(*cfg));
}

void
tk_policy_free(tk_policy *pol)
{
    char **p;

    for (p = pol->enroll; p != NULL && *p != NULL; p++)
        free(*p);
    free(pol->enroll);
    free(pol->realm);
    free(pol->eku);
    free(pol->enctypes);
    memset(pol, 0, sizeof(*pol));
}

/* Split every value of [realms] realm setting on white space and commas into
 * a NULL-terminated list (empty if unset). */
static krb5_error_code
read_words(profile_t profile, const char *realm, const char *setting,
           const char *def, char ***words_out)
{
    const char *path[4] = { "realms", realm, setting, NULL };
    char **values = NULL, **words = NULL, **grown, *copy, *tok, *save;
    const char *one[2] = { def, NULL };
    const char *const *v;
    size_t n = 0;
    krb5_error_code ret;

    *words_out = NULL;
    ret = profile_get_values(profile, path, &values);
    if (ret && ret != PROF_NO_RELATION && ret != PROF_NO_SECTION)
        return ret;
    v = (values != NULL) ? (const char *const *)values : one;
    words = calloc(1, sizeof(*words));
    if (words == NULL) {
        ret = ENOMEM;
        goto cleanup;
    }
    for (ret = 0; *v != NULL; v++) {
        copy = strdup(*v);
        if (copy == NULL) {
            ret = ENOMEM;
            goto cleanup;
        }
        for (tok = strtok_r(copy, " \t,", &save); tok != NULL;
             tok = strtok_r(NULL, " \t,", &save)) {
            grown = realloc(words, (n + 2) * sizeof(*words));
            if (grown == NULL || (grown[n] = strdup(tok)) == NULL) {
                words = (grown != NULL) ? grown : words;
                words[n] = NULL;
                free(copy);
                ret = ENOMEM;
                goto cleanup;
            }
            words = grown;
            words[++n] = NULL;
        }
        free(copy);
    }
    *words_out = words;
    words = NULL;

cleanup:
    for (n = 0; words != NULL && words[n] != NULL; n++)
        free(words[n]);
    free(words);
    profile_free_list(values);
    return ret;
}

/* The accepted upload enctypes, parsed as every enctype list is: supported,
 * not weak, no duplicates, at most as many as one upload carries. */
static krb5_error_code
read_enctypes(krb5_context ctx, profile_t profile, const char *realm,
              tk_policy *pol)
{
    krb5_error_code ret;
    char **words = NULL, *list = NULL, label[256];
    size_t i, len = 1;

    ret = read_words(profile, realm, "tempkey_enctypes", TK_DEFAULT_ENCTYPES,
                     &words);
    for (i = 0; ret == 0 && words[i] != NULL; i++)
        len += strlen(words[i]) + 1;
    if (ret == 0 && (list = calloc(1, len)) == NULL)
        ret = ENOMEM;
    for (i = 0; ret == 0 && words[i] != NULL; i++) {
        strcat(list, words[i]);
        strcat(list, " ");
    }
    if (ret == 0 &&
        (pol->enctypes = calloc(TK_MAX_KEYS, sizeof(*pol->enctypes))) == NULL)
        ret = ENOMEM;
    if (ret == 0) {
        snprintf(label, sizeof(label), "tempkey: [realms] %s "
                 "tempkey_enctypes", realm);
        ret = tk_parse_enctypes(ctx, label, list, pol->enctypes, TK_MAX_KEYS,
                                &pol->nenctypes);
        if (ret && ret != ENOMEM) {
            /* A configuration error, whatever the list's fault. */
            const char *msg = krb5_get_error_message(ctx, ret);

            krb5_set_error_message(ctx, KRB5_CONFIG_BADFORMAT, "%s", msg);
            krb5_free_error_message(ctx, msg);
            ret = KRB5_CONFIG_BADFORMAT;
        }
    }
    for (i = 0; words != NULL && words[i] != NULL; i++)
        free(words[i]);
    free(words);
    free(list);
    return ret;
}

krb5_error_code
tk_policy_read(krb5_context ctx, const char *realm, tk_policy *pol)
{
    krb5_error_code ret;
    profile_t profile = NULL;
    char *eku = NULL;

    memset(pol, 0, sizeof(*pol));
    pol->max_life = TK_DEFAULT_MAX_LIFE;
    pol->realm = strdup(realm);
    if (pol->realm == NULL)
        return ENOMEM;
    ret = krb5_get_profile(ctx, &profile);
    if (ret) {
        tk_policy_free(pol);
        return ret;
    }
    ret = read_duration(ctx, profile, "realms", realm, "tempkey_max_life",
                        FALSE, &pol->max_life);
    if (ret)
        goto cleanup;
    /* Enrolled principals get the realm's ticket lifetimes, as kadmin's new
     * principals do. */
    pol->entry_max_life = 86400;
    ret = read_duration(ctx, profile, "realms", realm, "max_life", TRUE,
                        &pol->entry_max_life);
    if (ret == 0)
        ret = read_duration(ctx, profile, "realms", realm,
                            "max_renewable_life", TRUE,
                            &pol->entry_max_renewable);
    if (ret)
        goto cleanup;
    ret = read_words(profile, realm, "tempkey_enroll", NULL, &pol->enroll);
    if (ret)
        goto cleanup;
    ret = profile_get_string(profile, "realms", realm, "tempkey_eku",
                             TK_DEFAULT_EKU, &eku);
    if (ret)
        goto cleanup;
    pol->eku = strdup(eku);
    if (pol->eku == NULL) {
        ret = ENOMEM;
        goto cleanup;
    }
    ret = read_enctypes(ctx, profile, realm, pol);

cleanup:
    if (ret)
        tk_policy_free(pol);
    profile_release_string(eku);
    profile_release(profile);
    return ret;
}

/* Names that carry the realm's own machinery: a temporary key on one of
 * them would hand its keys to whoever holds a matching certificate. */
static krb5_boolean
is_reserved(const char *name)
{
    static const char *const services[] = {
        "krbtgt/", "kadmin/", "kiprop/", "WELLKNOWN/", NULL
    };
    const char *const *s;

    if (strcmp(name, "K/M") == 0)
        return TRUE;
    for (s = services; *s != NULL; s++) {
        if (strncmp(name, *s, strlen(*s)) == 0)
            return TRUE;
    }
    return FALSE;
}

krb5_boolean
tk_policy_may_enroll(krb5_context ctx, const tk_policy *pol,
                     krb5_const_principal princ)
{
    char *name = NULL, **p;
    krb5_boolean ok = FALSE;

    if (pol->realm == NULL || princ->realm.length != strlen(pol->realm) ||
        memcmp(princ->realm.data, pol->realm, princ->realm.length) != 0)
        return FALSE;
    if (krb5_unparse_name_flags(ctx, princ, KRB5_PRINCIPAL_UNPARSE_NO_REALM,
                                &name) != 0)
        return FALSE;
    for (p = pol->enroll; !ok && p != NULL && *p != NULL; p++)
        ok = (fnmatch(*p, name, FNM_PATHNAME) == 0);
    if (ok && is_reserved(name))
        ok = FALSE;
    krb5_free_unparsed_name(ctx, name);
    return ok;
}

krb5_boolean
tk_name_is_reserved(krb5_context ctx, krb5_const_principal princ)
{
    char *name = NULL;
    krb5_boolean reserved;

    /* Unprintable: treat as reserved, so that nothing keys it. */
    if (krb5_unparse_name_flags(ctx, princ, KRB5_PRINCIPAL_UNPARSE_NO_REALM,
                                &name) != 0)
        return TRUE;
    reserved = is_reserved(name);
    krb5_free_unparsed_name(ctx, name);
    return reserved;
}

/* The database's base name: the backing section's database_name, else the
 * realm's, else MIT's default; the files the module keeps beside the
 * database are named after it.  The ratchet file: [dbmodules] section
 * ratchet_file, else the base name + ".ratchet". */
static krb5_error_code
read_db_paths(profile_t profile, const char *realm, const char *section,
              const char *backing, char **base_out, char **ratchet_out)
{
    krb5_error_code ret;
    char *value = NULL, *base = NULL, *ratchet = NULL;

    *base_out = *ratchet_out = NULL;
    ret = profile_get_string(profile, "dbmodules", backing, "database_name",
                             NULL, &value);
    if (ret == 0 && value == NULL)
        ret = profile_get_string(profile, "realms", realm, "database_name",
                                 TK_DEFAULT_KDB_FILE, &value);
    if (ret)
        return ret;
    base = strdup(value);
    profile_release_string(value);
    value = NULL;
    if (base == NULL)
        return ENOMEM;
    ret = profile_get_string(profile, "dbmodules", section, "ratchet_file",
                             NULL, &value);
    if (ret == 0 && value != NULL) {
        ratchet = strdup(value);
    } else if (ret == 0) {
        ratchet = malloc(strlen(base) + sizeof(".ratchet"));
        if (ratchet != NULL)
            sprintf(ratchet, "%s.ratchet", base);
    }
    profile_release_string(value);
    if (ret == 0 && ratchet == NULL)
        ret = ENOMEM;
    if (ret) {
        free(base);
        return ret;
    }
    *base_out = base;
    *ratchet_out = ratchet;
    return 0;
}

/* Read [dbmodules] section role: primary (the default) or replica. */
static krb5_error_code
read_role(krb5_context ctx, profile_t profile, const char *section,
          krb5_boolean *replica_out)
{
    krb5_error_code ret;
    char *role = NULL;

    *replica_out = FALSE;
    ret = profile_get_string(profile, "dbmodules", section, "role", "primary",
                             &role);
    if (ret)
        return ret;
    if (strcmp(role, "replica") == 0)
        *replica_out = TRUE;
    else if (strcmp(role, "primary") != 0)
        ret = config_error(ctx, "tempkey: [dbmodules] %s role = %s: must be "
                           "primary or replica", section, role);
    profile_release_string(role);
    return ret;
}

krb5_error_code
tk_config_read_role(krb5_context ctx, const char *realm,
                    krb5_boolean *replica_out)
{
    krb5_error_code ret;
    profile_t profile = NULL;
    char *section = NULL, *library = NULL;

    *replica_out = FALSE;
    ret = krb5_get_profile(ctx, &profile);
    if (ret == 0)
        ret = profile_get_string(profile, "realms", realm, "database_module",
                                 realm, &section);
    if (ret == 0)
        ret = profile_get_string(profile, "dbmodules", section, "db_library",
                                 "", &library);
    if (ret == 0 && strcmp(library, "tempkey") != 0)
        ret = KRB5_PLUGIN_NO_HANDLE;
    if (ret == 0)
        ret = read_role(ctx, profile, section, replica_out);
    profile_release_string(library);
    profile_release_string(section);
    profile_release(profile);
    return ret;
}

krb5_error_code
tk_primary_kdc(krb5_context ctx, const char *realm, char **name_out)
{
    krb5_error_code ret;
    profile_t profile = NULL;
    char *value = NULL, *name = NULL, *colon;

    *name_out = NULL;
    ret = krb5_get_profile(ctx, &profile);
    if (ret)
        return ret;
    ret = profile_get_string(profile, "realms", realm, "primary_kdc", NULL,
                             &value);
    if (ret == 0 && value == NULL)
        ret = profile_get_string(profile, "realms", realm, "master_kdc", NULL,
                                 &value);
    if (ret == 0 && value != NULL) {
        name = strdup(value);
    } else if (ret == 0) {
        /* admin_server's port is kadmind's, not the KDC's. */
        ret = profile_get_string(profile, "realms", realm, "admin_server",
                                 NULL, &value);
        if (ret == 0 && value != NULL) {
            name = strdup(value);
            colon = (name == NULL || name[0] == '[') ? NULL :
                strchr(name, ':');
            if (colon != NULL)
                *colon = '\0';
        }
    }
    if (ret == 0 && value != NULL && name == NULL)
        ret = ENOMEM;
    if (ret == 0)
        *name_out = name;
    profile_release_string(value);
    profile_release(profile);
    return ret;
}

krb5_error_code
tk_config_read(krb5_context ctx, const char *realm, const char *section,
               tk_config *cfg)
{
    krb5_error_code ret;
    profile_t profile = NULL;
    char *value = NULL, *library = NULL, **names = NULL;
    const char *path[2];
    int iprop = 0;

    memset(cfg, 0, sizeof(*cfg));
    cfg->purge_interval = TK_DEFAULT_PURGE_INTERVAL;
    cfg->settle_time = TK_DEFAULT_SETTLE_TIME;
    cfg->key_epoch = TK_DEFAULT_KEY_EPOCH;
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
        if (*library == '\0') {
            ret = config_error(ctx, "tempkey: realm %s has no database "
                               "module: no [dbmodules] %s section with a "
                               "db_library (is the realm name right?)",
                               realm, section);
            goto cleanup;
        }
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
                        FALSE, &cfg->purge_interval);
    if (ret == 0)
        ret = read_duration(ctx, profile, "dbmodules", section,
                            "settle_time", FALSE, &cfg->settle_time);
    if (ret == 0)
        ret = read_duration(ctx, profile, "dbmodules", section, "key_epoch",
                            FALSE, &cfg->key_epoch);
    if (ret == 0)
        ret = read_db_paths(profile, realm, section, cfg->backing,
                            &cfg->db_base, &cfg->ratchet_file);
    if (ret == 0)
        ret = read_role(ctx, profile, section, &cfg->replica);
    if (ret == 0)
        ret = profile_get_boolean(profile, "realms", realm, "iprop_enable",
                                  0, &iprop);
    if (ret)
        goto cleanup;
    cfg->logged = iprop && !cfg->replica;
    ret = tk_policy_read(ctx, realm, &cfg->policy);

cleanup:
    if (ret) {
        free(cfg->section);
        free(cfg->backing);
        free(cfg->ratchet_file);
        free(cfg->db_base);
        memset(cfg, 0, sizeof(*cfg));
    }
    profile_free_list(names);
    profile_release_string(library);
    profile_release_string(value);
    profile_release(profile);
    return ret;
}

krb5_boolean
tk_backing_is_db2(krb5_context ctx, const tk_config *cfg)
{
    profile_t profile = NULL;
    char *library = NULL;
    krb5_boolean db2 = FALSE;

    if (krb5_get_profile(ctx, &profile) == 0 &&
        profile_get_string(profile, "dbmodules", cfg->backing, "db_library",
                           "", &library) == 0)
        db2 = (strcmp(library, "db2") == 0);
    profile_release_string(library);
    profile_release(profile);
    return db2;
}
