/* dbwrite.c - locked get-modify-put of managed entries, and the purge. */
#include "tkentry.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

krb5_error_code
tk_db_update(krb5_context ctx, krb5_const_principal princ, tk_update_fn fn,
             void *arg)
{
    krb5_error_code ret;
    krb5_db_entry *entry = NULL;
    krb5_boolean changed = FALSE;

    ret = krb5_db_lock(ctx, KRB5_DB_LOCKMODE_EXCLUSIVE);
    if (ret)
        return ret;
    ret = krb5_db_get_principal(ctx, princ, 0, &entry);
    if (ret == 0)
        ret = fn(ctx, entry, arg, &changed);
    if (ret == 0 && changed)
        ret = krb5_db_put_principal(ctx, entry);
    krb5_db_unlock(ctx);
    krb5_db_free_principal(ctx, entry);
    return ret;
}

typedef struct {
    krb5_context ctx;
    int64_t now;
    krb5_principal *names;
    size_t count;
    krb5_error_code error;
} expired_list;

/* Note each managed principal holding an expired key; write nothing while
 * iterating. */
static int
collect_expired(krb5_pointer arg, krb5_db_entry *entry)
{
    expired_list *list = arg;
    tk_meta *meta = NULL;
    krb5_principal *names;
    size_t i;

    if (tk_entry_get_meta(list->ctx, entry, &meta) != 0 || meta == NULL)
        return 0;
    for (i = 0; i < meta->nkeys && meta->keys[i].expiry > list->now; i++)
        ;
    if (i < meta->nkeys) {
        names = realloc(list->names, (list->count + 1) * sizeof(*names));
        if (names == NULL) {
            list->error = ENOMEM;
        } else {
            list->names = names;
            list->error = krb5_copy_principal(list->ctx, entry->princ,
                                              &names[list->count]);
            if (list->error == 0)
                list->count++;
        }
    }
    tk_meta_free(meta);
    return list->error != 0;
}

typedef struct {
    int64_t now;
    size_t removed;
} purge_state;

static krb5_error_code
purge_entry(krb5_context ctx, krb5_db_entry *entry, void *arg,
            krb5_boolean *changed)
{
    purge_state *st = arg;
    krb5_error_code ret;

    ret = tk_entry_purge(ctx, entry, st->now, &st->removed);
    *changed = (ret == 0 && st->removed > 0);
    return ret;
}

krb5_error_code
tk_db_purge_expired(krb5_context ctx, int64_t now, tk_purge_report_fn report,
                    void *arg)
{
    krb5_error_code ret, err;
    expired_list list;
    purge_state st;
    size_t i;

    memset(&list, 0, sizeof(list));
    list.ctx = ctx;
    list.now = now;
    ret = krb5_db_iterate(ctx, NULL, collect_expired, &list, 0);
    if (ret == 0)
        ret = list.error;
    for (i = 0; i < list.count; i++) {
        st.now = now;
        st.removed = 0;
        err = tk_db_update(ctx, list.names[i], purge_entry, &st);
        /* Gone since the listing: nothing left to purge. */
        if (err != KRB5_KDB_NOENTRY)
            report(ctx, list.names[i], st.removed, err, arg);
        krb5_free_principal(ctx, list.names[i]);
    }
    free(list.names);
    return ret;
}
