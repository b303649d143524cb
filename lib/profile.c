/* profile.c - a read-only profile that replaces some relations and passes
 * every other query to a base profile. */
/*
 * Built on profile_init_vtable(), so a krb5 context can be aimed at one KDC
 * ("[realms] REALM kdc") or at another database module without writing any
 * configuration file.  The replacements hold for lookups and iteration
 * alike: iterating a replaced relation yields its new values, and listing
 * its section shows the new values (after the base's other entries) in
 * place of the old.  The data is shared read-only between copies of the
 * profile, which libkrb5 makes freely (krb5_get_profile, every new context),
 * so the reference count is atomic.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tempkey.h"

typedef struct {
    char **path;                /* NULL-terminated */
    char **values;              /* NULL-terminated; empty: absent */
} setting;

typedef struct {
    profile_t base;
    setting *settings;
    size_t nsettings;
    int refs;
} override;

static size_t
strv_len(const char *const *v)
{
    size_t n = 0;

    while (v != NULL && v[n] != NULL)
        n++;
    return n;
}

static void
strv_free(char **v)
{
    size_t i;

    for (i = 0; v != NULL && v[i] != NULL; i++)
        free(v[i]);
    free(v);
}

/* A malloc'd copy of v (NULL giving an empty list), freed by
 * profile_free_list() or strv_free(). */
static char **
strv_copy(const char *const *v)
{
    size_t i, n = strv_len(v);
    char **copy = calloc(n + 1, sizeof(*copy));

    for (i = 0; copy != NULL && i < n; i++) {
        copy[i] = strdup(v[i]);
        if (copy[i] == NULL) {
            strv_free(copy);
            return NULL;
        }
    }
    return copy;
}

/* Whether path is names followed by exactly extra more components. */
static int
path_extends(char *const *path, const char *const *names, size_t extra)
{
    size_t i;

    for (i = 0; names != NULL && names[i] != NULL; i++) {
        if (path[i] == NULL || strcmp(path[i], names[i]) != 0)
            return 0;
    }
    return strv_len((const char *const *)path) == i + extra;
}

static const setting *
find_setting(const override *ov, const char *const *names)
{
    size_t i;

    for (i = 0; i < ov->nsettings; i++) {
        if (path_extends(ov->settings[i].path, names, 0))
            return &ov->settings[i];
    }
    return NULL;
}

static void
override_unref(override *ov)
{
    size_t i;

    if (ov == NULL || __atomic_sub_fetch(&ov->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    for (i = 0; i < ov->nsettings; i++) {
        strv_free(ov->settings[i].path);
        strv_free(ov->settings[i].values);
    }
    free(ov->settings);
    profile_release(ov->base);
    free(ov);
}

static long
ov_get_values(void *cbdata, const char *const *names, char ***ret_values)
{
    override *ov = cbdata;
    const setting *s = find_setting(ov, names);

    if (s == NULL)
        return profile_get_values(ov->base, names, ret_values);
    if (s->values[0] == NULL)
        return PROF_NO_RELATION;
    *ret_values = strv_copy((const char *const *)s->values);
    return (*ret_values == NULL) ? ENOMEM : 0;
}

static void
ov_free_values(void *cbdata, char **values)
{
    profile_free_list(values);
}

static void
ov_cleanup(void *cbdata)
{
    override_unref(cbdata);
}

static long
ov_copy(void *cbdata, void **ret_cbdata)
{
    override *ov = cbdata;

    __atomic_add_fetch(&ov->refs, 1, __ATOMIC_ACQ_REL);
    *ret_cbdata = ov;
    return 0;
}

/* ---- Iteration: the base's entries minus the replaced relations, then the
 * replacements that belong to the iterated path. */

typedef struct {
    const override *ov;
    void *base;                 /* the base's iterator; NULL once done */
    char **names;               /* the iterated path */
    int list;                   /* listing a section, not one relation */
    int relations;              /* the caller wants relations */
    size_t next_setting, next_value;    /* replacements still to emit */
} ov_iter;

static void
ov_iterator_free(void *cbdata, void *iter)
{
    ov_iter *it = iter;

    if (it == NULL)
        return;
    profile_iterator_free(&it->base);
    strv_free(it->names);
    free(it);
}

static long
ov_iterator_create(void *cbdata, const char *const *names, int flags,
                   void **ret_iter)
{
    override *ov = cbdata;
    ov_iter *it;
    long ret = 0;

    *ret_iter = NULL;
    it = calloc(1, sizeof(*it));
    if (it == NULL)
        return ENOMEM;
    it->ov = ov;
    it->list = (flags & PROFILE_ITER_LIST_SECTION) != 0;
    it->relations = (flags & PROFILE_ITER_SECTIONS_ONLY) == 0;
    it->names = strv_copy(names);
    if (it->names == NULL)
        ret = ENOMEM;
    /* A replaced relation's own values come from us alone. */
    if (ret == 0 && (it->list || find_setting(ov, names) == NULL))
        ret = profile_iterator_create(ov->base, names, flags, &it->base);
    if (ret) {
        ov_iterator_free(cbdata, it);
        return ret;
    }
    *ret_iter = it;
    return 0;
}

/* Whether the base's entry name (a relation if value is set) is replaced. */
static int
replaced(const ov_iter *it, const char *name, const char *value)
{
    size_t i;

    if (value == NULL)
        return 0;
    for (i = 0; i < it->ov->nsettings; i++) {
        char **path = it->ov->settings[i].path;

        if (path_extends(path, (const char *const *)it->names, 1) &&
            strcmp(path[strv_len((const char *const *)it->names)],
                   name) == 0)
            return 1;
    }
    return 0;
}

/* The next replacement value belonging to this iteration, if any. */
static long
next_replacement(ov_iter *it, char **ret_name, char **ret_value)
{
    const char *const *names = (const char *const *)it->names;
    size_t depth = strv_len(names);

    *ret_name = *ret_value = NULL;
    for (; it->relations && it->next_setting < it->ov->nsettings;
         it->next_setting++, it->next_value = 0) {
        const setting *s = &it->ov->settings[it->next_setting];
        const char *v = s->values[it->next_value];

        if (v == NULL || !path_extends(s->path, names, it->list ? 1 : 0))
            continue;
        *ret_name = strdup(s->path[it->list ? depth : depth - 1]);
        *ret_value = strdup(v);
        if (*ret_name == NULL || *ret_value == NULL) {
            free(*ret_name);
            free(*ret_value);
            *ret_name = *ret_value = NULL;
            return ENOMEM;
        }
        it->next_value++;
        return 0;
    }
    return 0;
}

static long
ov_iterator(void *cbdata, void *iter, char **ret_name, char **ret_value)
{
    ov_iter *it = iter;
    long ret;

    while (it->base != NULL) {
        ret = profile_iterator(&it->base, ret_name, ret_value);
        if (ret)
            return ret;
        if (*ret_name == NULL)
            break;              /* the base is done and freed its iterator */
        if (!replaced(it, *ret_name, *ret_value))
            return 0;
        profile_release_string(*ret_name);
        profile_release_string(*ret_value);
    }
    return next_replacement(it, ret_name, ret_value);
}

static void
ov_free_string(void *cbdata, char *string)
{
    free(string);
}

static struct profile_vtable override_vtable = {
    .minor_ver = 1,
    .get_values = ov_get_values,
    .free_values = ov_free_values,
    .cleanup = ov_cleanup,
    .copy = ov_copy,
    .iterator_create = ov_iterator_create,
    .iterator = ov_iterator,
    .iterator_free = ov_iterator_free,
    .free_string = ov_free_string,
};

krb5_error_code
tk_profile_override(krb5_context ctx, const tk_profile_setting *settings,
                    size_t nsettings, profile_t *profile_out)
{
    krb5_error_code ret;
    override *ov;
    size_t i;

    *profile_out = NULL;
    ov = calloc(1, sizeof(*ov));
    if (ov == NULL)
        return ENOMEM;
    ov->refs = 1;
    ov->settings = calloc(nsettings + 1, sizeof(*ov->settings));
    if (ov->settings == NULL) {
        ret = ENOMEM;
        goto cleanup;
    }
    for (ov->nsettings = 0; ov->nsettings < nsettings; ov->nsettings++) {
        setting *s = &ov->settings[ov->nsettings];

        s->path = strv_copy(settings[ov->nsettings].path);
        s->values = strv_copy(settings[ov->nsettings].values);
        if (s->path == NULL || s->values == NULL) {
            ret = ENOMEM;
            ov->nsettings++;    /* so that cleanup frees this one too */
            goto cleanup;
        }
    }
    for (i = 0; i < nsettings; i++) {
        if (ov->settings[i].path[0] == NULL) {
            ret = EINVAL;
            krb5_set_error_message(ctx, ret, "a profile override needs a "
                                   "non-empty path");
            goto cleanup;
        }
    }
    ret = krb5_get_profile(ctx, &ov->base);
    if (ret)
        goto cleanup;
    ret = profile_init_vtable(&override_vtable, ov, profile_out);
    if (ret == 0)
        ov = NULL;              /* the profile owns it now */

cleanup:
    override_unref(ov);
    return ret;
}

krb5_error_code
tk_context_override(krb5_context ctx, const tk_profile_setting *settings,
                    size_t nsettings, krb5_flags flags,
                    krb5_context *ctx_out)
{
    krb5_error_code ret;
    profile_t profile = NULL;

    *ctx_out = NULL;
    ret = tk_profile_override(ctx, settings, nsettings, &profile);
    if (ret == 0)
        ret = krb5_init_context_profile(profile, flags, ctx_out);
    profile_release(profile);
    return ret;
}
