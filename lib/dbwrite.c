/* dbwrite.c - locked get-modify-put of managed entries, and the purge. */
#include "tkentry.h"
#include "tkproto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

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

/* A fresh entry for an enrolling principal, like one kadmin would create
 * with no keys. */
static krb5_error_code
new_entry(krb5_context ctx, const tk_policy *pol, krb5_const_principal princ,
          krb5_db_entry **entry_out)
{
    krb5_error_code ret;
    krb5_db_entry *e;
    krb5_timestamp now = (krb5_timestamp)time(NULL);

    *entry_out = NULL;
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return ENOMEM;
    e->magic = KRB5_KDB_MAGIC_NUMBER;
    e->len = KRB5_KDB_V1_BASE_LENGTH;
    /* The KDC's view requires preauthentication of it as a client. */
    e->attributes = 0;
    e->max_life = pol->entry_max_life;
    e->max_renewable_life = pol->entry_max_renewable;
    ret = krb5_copy_principal(ctx, princ, &e->princ);
    if (ret == 0)
        ret = krb5_dbe_update_mod_princ_data(ctx, e, now, princ);
    if (ret == 0)
        ret = krb5_dbe_update_last_pwd_change(ctx, e, now);
    if (ret) {
        krb5_db_free_principal(ctx, e);
        return ret;
    }
    *entry_out = e;
    return 0;
}

/* Whether entry already holds exactly up's keys at up->kvno from the same
 * uploader. */
static krb5_boolean
same_upload(krb5_context ctx, krb5_db_entry *entry, const tk_meta *meta,
            const tk_upload *up, const unsigned char *uploader)
{
    const tk_key_record *rec = tk_meta_find(meta, up->kvno);
    krb5_keyblock kb;
    size_t i, matched = 0;
    int k, held = 0;
    krb5_boolean same;

    if (rec == NULL || !rec->has_uploader ||
        memcmp(rec->uploader, uploader, TK_UPLOADER_LEN) != 0)
        return FALSE;
    for (k = 0; k < entry->n_key_data; k++) {
        krb5_key_data *kd = &entry->key_data[k];

        if (kd->key_data_kvno != up->kvno)
            continue;
        held++;
        memset(&kb, 0, sizeof(kb));
        if (krb5_dbe_decrypt_key_data(ctx, NULL, kd, &kb, NULL) != 0)
            return FALSE;
        for (i = 0; i < up->nkeys; i++) {
            same = (up->keys[i].enctype == kb.enctype &&
                    up->keys[i].length == kb.length &&
                    CRYPTO_memcmp(up->keys[i].contents, kb.contents,
                                  kb.length) == 0);
            if (same) {
                matched++;
                break;
            }
        }
        krb5_free_keyblock_contents(ctx, &kb);
    }
    return held == (int)up->nkeys && matched == up->nkeys;
}

static krb5_error_code
refuse(krb5_context ctx, int reason, int *reason_out, const char *msg)
{
    krb5_error_code code = tk_reason_code(reason);

    *reason_out = reason;
    krb5_set_error_message(ctx, code, "%s", msg);
    return code;
}

krb5_error_code
tk_db_store_upload(krb5_context writer, krb5_context keyctx,
                   const tk_policy *pol, krb5_const_principal princ,
                   const tk_upload *up, const unsigned char *uploader,
                   int64_t *expiry_out, int *reason_out)
{
    krb5_error_code ret;
    krb5_db_entry *entry = NULL;
    krb5_boolean managed = FALSE;
    tk_meta *meta = NULL;
    krb5_keyblock *mkey;
    krb5_kvno next, mkvno;
    size_t purged = 0;
    char msg[128];

    *reason_out = 0;
    /* Before the lock: this reads the database through keyctx's handle. */
    ret = tk_active_mkey(keyctx, princ, &mkvno, &mkey);
    if (ret)
        return ret;
    ret = krb5_db_lock(writer, KRB5_DB_LOCKMODE_EXCLUSIVE);
    if (ret)
        return ret;
    ret = krb5_db_get_principal(writer, princ, 0, &entry);
    if (ret == KRB5_KDB_NOENTRY && tk_policy_may_enroll(writer, pol, princ))
        ret = new_entry(keyctx, pol, princ, &entry);
    else if (ret == 0)
        ret = tk_entry_is_managed(writer, entry, &managed);
    if (ret == KRB5_KDB_NOENTRY ||
        (ret == 0 && !managed &&
         (entry->n_key_data > 0 || !tk_policy_may_enroll(writer, pol,
                                                         princ)))) {
        ret = refuse(writer, TK_REASON_NOT_ENROLLABLE, reason_out,
                     "neither managed by tempkey nor allowed to enroll by "
                     "tempkey_enroll");
        goto cleanup;
    }
    if (ret)
        goto cleanup;
    ret = tk_entry_get_meta(writer, entry, &meta);
    if (ret == 0)
        ret = tk_entry_next_kvno(writer, entry, &next);
    if (ret)
        goto cleanup;
    if (up->kvno == next - 1 && meta != NULL &&
        same_upload(keyctx, entry, meta, up, uploader)) {
        *expiry_out = tk_meta_find(meta, up->kvno)->expiry;
        goto cleanup;           /* already stored: a retransmission */
    }
    if (up->kvno < next) {
        snprintf(msg, sizeof(msg), "key version %u is not above the "
                 "stored key version %u", up->kvno, next - 1);
        ret = refuse(writer, TK_REASON_KVNO_NOT_ABOVE_STORED, reason_out,
                     msg);
        goto cleanup;
    }
    /* Expired keys go now rather than at the next purge, so that only live
     * ones count against the cap. */
    ret = tk_entry_purge(keyctx, entry, time(NULL), &purged);
    if (ret)
        goto cleanup;
    if (meta != NULL && meta->nkeys - purged >= TK_MAX_KEY_VERSIONS) {
        snprintf(msg, sizeof(msg), "already holds %d live key versions; "
                 "upload again when older ones expire", TK_MAX_KEY_VERSIONS);
        ret = refuse(writer, TK_REASON_TOO_MANY_KEYS, reason_out, msg);
        goto cleanup;
    }
    ret = tk_entry_add_keys(keyctx, entry, up->kvno, up->keys, up->nkeys,
                            up->expiry, uploader, mkvno, mkey);
    if (ret == 0)
        ret = krb5_db_put_principal(writer, entry);
    if (ret == 0)
        *expiry_out = up->expiry;

cleanup:
    krb5_db_unlock(writer);
    tk_meta_free(meta);
    krb5_db_free_principal(writer, entry);
    return ret;
}
