/* entry.c - rules for managed principal entries: what the KDC may see, what
 * a write may store, and how temporary keys are added and removed. */
#include "tkentry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kadm5/admin.h>
#include <kadm5/kadm_err.h>
#include <profile.h>
#include <openssl/crypto.h>

/* Prefix the context's message for code with the principal's name. */
static krb5_error_code
name_error(krb5_context ctx, krb5_error_code code, krb5_const_principal princ)
{
    char *name = NULL;

    if (princ != NULL && krb5_unparse_name(ctx, princ, &name) == 0) {
        krb5_prepend_error_message(ctx, code, "tempkey: %s", name);
        krb5_free_unparsed_name(ctx, name);
    }
    return code;
}

krb5_kvno
tk_entry_top_kvno(const krb5_db_entry *entry)
{
    krb5_kvno top = 0;
    int i;

    for (i = 0; i < entry->n_key_data; i++) {
        if (entry->key_data[i].key_data_kvno > top)
            top = entry->key_data[i].key_data_kvno;
    }
    return top;
}

/*
 * Whether entry carries the string attribute key, read in place: the KDC
 * asks this of every entry it looks up, and krb5_dbe_get_string() would
 * copy them all.  The format is libkdb5's: key, NUL, value, NUL, repeated.
 */
static krb5_boolean
has_string(krb5_db_entry *entry, const char *want)
{
    krb5_tl_data *tl;
    const char *p, *end, *key;
    size_t len, want_len = strlen(want);

    for (tl = entry->tl_data; tl != NULL; tl = tl->tl_data_next) {
        if (tl->tl_data_type != KRB5_TL_STRING_ATTRS)
            continue;
        p = (const char *)tl->tl_data_contents;
        end = p + tl->tl_data_length;
        while (p < end) {
            key = p;
            len = strnlen(key, end - key);
            if (key + len == end)
                break;
            p = key + len + 1;                  /* the value */
            p += strnlen(p, end - p) + 1;       /* the next key */
            if (len == want_len && memcmp(key, want, len) == 0)
                return TRUE;
        }
    }
    return FALSE;
}

krb5_error_code
tk_entry_is_managed(krb5_context ctx, krb5_db_entry *entry, krb5_boolean *out)
{
    *out = has_string(entry, TK_ATTR_MANAGED);
    return 0;
}

krb5_deltat
tk_entry_share_delay(krb5_context ctx, krb5_db_entry *entry)
{
    char *value = NULL;
    krb5_deltat delay = 0;

    if (!has_string(entry, TK_ATTR_SHARE) ||
        krb5_dbe_get_string(ctx, entry, TK_ATTR_SHARE, &value) != 0 ||
        value == NULL)
        return 0;
    /* tempkey-admin share writes seconds; kadmin setstr may say "10m". */
    if (krb5_string_to_deltat(value, &delay) != 0 || delay < 0)
        delay = 0;
    krb5_dbe_free_string(ctx, value);
    return delay;
}

int64_t
tk_entry_active_at(krb5_context ctx, krb5_db_entry *entry, int64_t now)
{
    tk_meta *meta = NULL;
    int64_t at;
    krb5_deltat delay = tk_entry_share_delay(ctx, entry);

    if (delay == 0)
        return 0;
    if (tk_entry_get_meta(ctx, entry, &meta) != 0)
        krb5_clear_error_message(ctx);
    at = now;
    if (meta != NULL && tk_meta_newest_active(meta, now) != NULL)
        at += delay;
    tk_meta_free(meta);
    return at;
}

krb5_boolean
tk_entry_is_adopting(krb5_db_entry *entry)
{
    /* Managed wins: the switch removes the mark, an administrator may have
     * set both. */
    return has_string(entry, TK_ATTR_ADOPT) &&
        !has_string(entry, TK_ATTR_MANAGED);
}

krb5_error_code
tk_entry_get_meta(krb5_context ctx, krb5_db_entry *entry, tk_meta **meta_out)
{
    krb5_error_code ret;
    krb5_tl_data tl;

    *meta_out = NULL;
    memset(&tl, 0, sizeof(tl));
    tl.tl_data_type = TK_TL_META;
    ret = krb5_dbe_lookup_tl_data(ctx, entry, &tl);
    if (ret)
        return ret;
    if (tl.tl_data_contents == NULL)
        return 0;
    ret = tk_meta_decode(ctx, tl.tl_data_contents, tl.tl_data_length,
                         meta_out);
    return ret ? name_error(ctx, ret, entry->princ) : 0;
}

krb5_error_code
tk_entry_set_meta(krb5_context ctx, krb5_db_entry *entry, tk_meta *meta)
{
    krb5_error_code ret;
    krb5_tl_data tl;
    unsigned char *der = NULL;
    size_t len;

    meta->generation++;
    ret = tk_meta_encode(ctx, meta, &der, &len);
    if (ret)
        return ret;
    memset(&tl, 0, sizeof(tl));
    tl.tl_data_type = TK_TL_META;
    tl.tl_data_length = (krb5_ui_2)len;
    tl.tl_data_contents = der;
    ret = krb5_dbe_update_tl_data(ctx, entry, &tl);
    free(der);
    return ret;
}

/* Keep only the keys whose kvno has a record in meta that is live at now
 * (any record if now is 0), and active if only_active.  Return how many key
 * versions were dropped. */
static size_t
keep_keys(krb5_context ctx, krb5_db_entry *entry, const tk_meta *meta,
          int64_t now, krb5_boolean only_active)
{
    const tk_key_record *rec;
    krb5_kvno last_dropped = 0;
    size_t dropped = 0;
    int i, out = 0;

    for (i = 0; i < entry->n_key_data; i++) {
        krb5_key_data *kd = &entry->key_data[i];

        rec = tk_meta_find(meta, kd->key_data_kvno);
        if (rec != NULL && (now == 0 || rec->expiry > now) &&
            !(only_active && tk_record_pending(rec, now))) {
            entry->key_data[out++] = *kd;
            continue;
        }
        if (kd->key_data_kvno != last_dropped) {
            dropped++;
            last_dropped = kd->key_data_kvno;
        }
        krb5_dbe_free_key_data_contents(ctx, kd);
    }
    entry->n_key_data = (krb5_int16)out;
    if (out == 0) {
        free(entry->key_data);
        entry->key_data = NULL;
    }
    return dropped;
}

static size_t
keep_recorded_keys(krb5_context ctx, krb5_db_entry *entry,
                   const tk_meta *meta, int64_t now)
{
    return keep_keys(ctx, entry, meta, now, FALSE);
}

/* The time the newest unusable key of meta stopped being usable at now. */
static int64_t
last_end(const tk_meta *meta, int64_t now)
{
    int64_t end = meta->last_expiry;
    size_t i;

    for (i = 0; i < meta->nkeys; i++) {
        if (meta->keys[i].expiry <= now && meta->keys[i].expiry > end)
            end = meta->keys[i].expiry;
    }
    return end;
}

krb5_error_code
tk_entry_kdc_view(krb5_context ctx, krb5_db_entry *entry, int64_t now,
                  krb5_boolean server_lookup)
{
    krb5_error_code ret;
    tk_meta *meta = NULL;

    ret = tk_entry_get_meta(ctx, entry, &meta);
    if (ret == 0)
        ret = tk_entry_kdc_view_meta(ctx, entry, meta, now, server_lookup);
    tk_meta_free(meta);
    return ret;
}

/*
 * Cap entry's ticket lifetimes at the expiry of its newest live key (entry
 * holds live keys only): as a server no ticket outlives the key it is
 * encrypted in, and as a client no ticket ends or renews after the key that
 * proved it is gone.
 */
static krb5_error_code
cap_at_newest(krb5_db_entry *entry, const tk_meta *meta, int64_t now)
{
    const tk_key_record *newest;

    /* The KDC encrypts in the highest kvno; kldap returns keys unsorted. */
    newest = tk_meta_find(meta, tk_entry_top_kvno(entry));
    if (newest == NULL)
        return KRB5_KDB_NO_MATCHING_KEY;
    entry->max_life = tk_cap_life(entry->max_life, newest->expiry, now);
    if (entry->max_renewable_life != 0) {
        entry->max_renewable_life = tk_cap_life(entry->max_renewable_life,
                                                newest->expiry, now);
    }
    /* A postdated ticket could start after its key has expired. */
    entry->attributes |= KRB5_KDB_DISALLOW_POSTDATED;
    return 0;
}

krb5_error_code
tk_entry_kdc_view_meta(krb5_context ctx, krb5_db_entry *entry,
                       const tk_meta *meta, int64_t now,
                       krb5_boolean server_lookup)
{
    krb5_error_code ret = 0;
    tk_meta empty;
    char when[TK_TIME_LEN];
    int64_t end;

    memset(&empty, 0, sizeof(empty));
    /* A shared principal's pending key is for its members to fetch: the KDC
     * issues no ticket in it before its time, unless no other key is live
     * (a delay longer than the previous key's life), when refusing would
     * help no member. */
    keep_keys(ctx, entry, meta != NULL ? meta : &empty, now,
              meta != NULL && tk_meta_newest_active(meta, now) != NULL);
    /* No password: a policy's password lifetime (pw_expiration) or a
     * forced change would stop the uploads that keep the principal
     * usable. */
    entry->pw_expiration = 0;
    entry->attributes &= ~KRB5_KDB_REQUIRES_PWCHANGE;
    if (!server_lookup) {
        /* As a client only an upload or a temporary key may prove it.  (On
         * a server the flag would refuse users' unpreauthenticated TGTs.)
         * With no live key only the upload exchange is left (the module's
         * check_policy_as), whose ticket the preauth module caps. */
        entry->attributes |= KRB5_KDB_REQUIRES_PRE_AUTH;
        return entry->n_key_data > 0 ? cap_at_newest(entry, meta, now) : 0;
    }
    if (entry->n_key_data == 0) {
        ret = KRB5_KDB_NO_MATCHING_KEY;
        end = (meta != NULL) ? last_end(meta, now) : 0;
        if (end == 0) {
            krb5_set_error_message(ctx, ret, "no live temporary key (it "
                                   "has never had one)");
        } else {
            tk_format_time(end, when);
            krb5_set_error_message(ctx, ret, "no live temporary key (the "
                                   "last one, up to kvno %u, ended at %s)",
                                   meta->highest_kvno, when);
        }
        return name_error(ctx, ret, entry->princ);
    }
    return cap_at_newest(entry, meta, now);
}

krb5_error_code
tk_entry_check_put(krb5_context ctx, krb5_db_entry *entry)
{
    krb5_error_code ret;
    krb5_boolean managed;
    tk_meta *meta = NULL;
    int i;

    ret = tk_entry_is_managed(ctx, entry, &managed);
    if (ret)
        return ret;
    ret = tk_entry_get_meta(ctx, entry, &meta);
    if (ret)
        return ret;
    if (managed) {
        for (i = 0; i < entry->n_key_data; i++) {
            if (tk_meta_find(meta, entry->key_data[i].key_data_kvno) != NULL)
                continue;
            ret = KADM5_PROTECT_PRINCIPAL;
            krb5_set_error_message(ctx, ret, "is managed by tempkey: its "
                                   "keys come from ktupdate, so it cannot "
                                   "take a password or long-term key (key "
                                   "version %u has no temporary-key record; "
                                   "a principal that holds long-term keys "
                                   "moves over with tempkey-admin adopt)",
                                   entry->key_data[i].key_data_kvno);
            break;
        }
    } else if (meta != NULL && meta->nkeys > 0) {
        ret = KADM5_PROTECT_PRINCIPAL;
        krb5_set_error_message(ctx, ret, "still holds %zu temporary key "
                               "version(s); revoke them (tempkey-admin "
                               "revoke) before removing the '%s' attribute",
                               meta->nkeys, TK_ATTR_MANAGED);
    }
    tk_meta_free(meta);
    return ret ? name_error(ctx, ret, entry->princ) : 0;
}

/* Apply a change to the records and drop the keys left without one. */
static krb5_error_code
store_records(krb5_context ctx, krb5_db_entry *entry, tk_meta *meta)
{
    keep_recorded_keys(ctx, entry, meta, 0);
    return tk_entry_set_meta(ctx, entry, meta);
}

/* Replace an unreadable record: drop every key and start a record above
 * every kvno the entry holds. */
static krb5_error_code
reset_records(krb5_context ctx, krb5_db_entry *entry, int64_t now,
              size_t *removed_out)
{
    krb5_error_code ret;
    tk_meta *meta = NULL;
    krb5_kvno last = 0;
    size_t versions = 0;
    int i;

    ret = tk_meta_new(&meta);
    if (ret)
        return ret;
    for (i = 0; i < entry->n_key_data; i++) {
        krb5_kvno kv = entry->key_data[i].key_data_kvno;

        if (kv != last)
            versions++;
        last = kv;
        if (kv > meta->highest_kvno)
            meta->highest_kvno = kv;
    }
    meta->last_expiry = now;
    ret = store_records(ctx, entry, meta);
    if (ret == 0)
        *removed_out = versions;
    tk_meta_free(meta);
    return ret;
}

krb5_error_code
tk_entry_revoke(krb5_context ctx, krb5_db_entry *entry, krb5_kvno kvno,
                int64_t now, size_t *removed_out)
{
    krb5_error_code ret;
    tk_meta *meta = NULL;
    size_t removed = 0;

    *removed_out = 0;
    ret = tk_entry_get_meta(ctx, entry, &meta);
    if (ret && kvno == 0)
        return reset_records(ctx, entry, now, removed_out);
    if (ret)
        return ret;
    if (meta != NULL && kvno == 0) {
        while (meta->nkeys > 0)
            removed += tk_meta_remove(meta, meta->keys[0].kvno, now);
    } else if (meta != NULL) {
        removed = tk_meta_remove(meta, kvno, now);
    }
    if (kvno != 0 && removed == 0) {
        ret = KRB5_KDB_NO_MATCHING_KEY;
        krb5_set_error_message(ctx, ret, "has no temporary key with kvno %u",
                               kvno);
        name_error(ctx, ret, entry->princ);
        goto cleanup;
    }
    if (meta != NULL)
        ret = store_records(ctx, entry, meta);
    if (ret == 0)
        *removed_out = removed;

cleanup:
    tk_meta_free(meta);
    return ret;
}

krb5_error_code
tk_entry_purge(krb5_context ctx, krb5_db_entry *entry, int64_t now,
               size_t *removed_out)
{
    krb5_error_code ret;
    tk_meta *meta = NULL;
    size_t removed;

    *removed_out = 0;
    ret = tk_entry_get_meta(ctx, entry, &meta);
    if (ret || meta == NULL)
        return ret;
    removed = tk_meta_drop_expired(meta, now);
    if (removed > 0)
        ret = store_records(ctx, entry, meta);
    if (ret == 0)
        *removed_out = removed;
    tk_meta_free(meta);
    return ret;
}

krb5_error_code
tk_entry_next_kvno(krb5_context ctx, krb5_db_entry *entry,
                   krb5_kvno *kvno_out)
{
    krb5_error_code ret;
    tk_meta *meta = NULL;
    krb5_kvno top = tk_entry_top_kvno(entry);

    ret = tk_entry_get_meta(ctx, entry, &meta);
    if (ret)
        return ret;
    if (meta != NULL && meta->highest_kvno > top)
        top = meta->highest_kvno;
    tk_meta_free(meta);
    if (top >= TK_KVNO_MAX) {
        krb5_set_error_message(ctx, KRB5_KDB_BAD_VERSION, "key version "
                               "numbers are exhausted (%u)", top);
        return name_error(ctx, KRB5_KDB_BAD_VERSION, entry->princ);
    }
    *kvno_out = top + 1;
    return 0;
}

krb5_error_code
tk_active_mkey(krb5_context ctx, krb5_context reader,
               krb5_const_principal princ, krb5_kvno *mkvno_out,
               krb5_keyblock **mkey_out)
{
    krb5_error_code ret;
    krb5_principal mprinc = NULL;
    krb5_actkvno_node *act = NULL;
    char *realm = NULL;
    const char *msg;

    realm = strndup(princ->realm.data, princ->realm.length);
    if (realm == NULL)
        return ENOMEM;
    ret = krb5_db_setup_mkey_name(ctx, NULL, realm, NULL, &mprinc);
    if (ret)
        goto cleanup;
    ret = krb5_dbe_fetch_act_key_list(reader, mprinc, &act);
    if (ret && reader != ctx) {
        msg = krb5_get_error_message(reader, ret);
        krb5_set_error_message(ctx, ret, "%s", msg);
        krb5_free_error_message(reader, msg);
    }
    if (ret)
        goto cleanup;
    ret = krb5_dbe_find_act_mkey(ctx, act, mkvno_out, mkey_out);

cleanup:
    if (ret)
        krb5_prepend_error_message(ctx, ret, "cannot find the active master "
                                   "key of realm %s", realm);
    krb5_dbe_free_actkvno_list(ctx, act);
    krb5_free_principal(ctx, mprinc);
    free(realm);
    return ret;
}

krb5_error_code
tk_entry_decrypt_key(krb5_context ctx, krb5_db_entry *entry,
                     const krb5_key_data *kd, krb5_keyblock *key_out,
                     krb5_keysalt *salt_out)
{
    krb5_error_code ret;
    krb5_keyblock *mkey;
    krb5_kvno mkvno = 0;

    ret = krb5_dbe_find_mkey(ctx, entry, &mkey);
    if (ret == KRB5_KDB_NO_MATCHING_KEY) {
        (void)krb5_dbe_get_mkvno(ctx, entry, &mkvno);
        krb5_set_error_message(ctx, ret, "master key version %u is not "
                               "loaded here (the master key changed)",
                               mkvno);
        return name_error(ctx, ret, entry->princ);
    }
    if (ret)
        return ret;
    return krb5_dbe_decrypt_key_data(ctx, mkey, kd, key_out, salt_out);
}

krb5_error_code
tk_reload_master_keys(krb5_context ctx, const char *realm)
{
    krb5_error_code ret;
    krb5_keylist_node *list = krb5_db_mkey_list_alias(ctx);
    krb5_principal mprinc = NULL;
    profile_t profile = NULL;
    char *name = NULL;

    if (list == NULL)
        return KRB5_KDB_DBNOTINITED;
    ret = krb5_get_profile(ctx, &profile);
    if (ret == 0)
        ret = profile_get_string(profile, "realms", realm, "master_key_name",
                                 NULL, &name);
    if (ret == 0)
        ret = krb5_db_setup_mkey_name(ctx, name, realm, NULL, &mprinc);
    if (ret == 0)
        ret = krb5_db_fetch_mkey_list(ctx, mprinc, &list->keyblock);
    krb5_free_principal(ctx, mprinc);
    profile_release_string(name);
    profile_release(profile);
    return ret;
}

/* Whether kd is wrapped by the ratchet (its salt is a marker). */
static krb5_boolean
is_wrapped(const krb5_key_data *kd)
{
    krb5_data salt;

    if (kd->key_data_ver < 2 ||
        kd->key_data_type[1] != KRB5_KDB_SALTTYPE_SPECIAL)
        return FALSE;
    salt.length = kd->key_data_length[1];
    salt.data = (char *)kd->key_data_contents[1];
    return tk_ratchet_parse_marker(&salt, NULL, NULL);
}

/* Encrypt key (version kvno, expiring at expiry) under mkey into *kd,
 * wrapped by the ratchet: the salt asks the module's encrypt hook to. */
static krb5_error_code
encrypt_wrapped(krb5_context ctx, const krb5_keyblock *mkey,
                const krb5_keyblock *key, krb5_kvno kvno, int64_t expiry,
                krb5_key_data *kd)
{
    unsigned char request[TK_RATCHET_REQUEST_LEN];
    krb5_keysalt salt;

    tk_ratchet_request(expiry, request);
    salt.type = KRB5_KDB_SALTTYPE_SPECIAL;
    salt.data.length = sizeof(request);
    salt.data.data = (char *)request;
    memset(kd, 0, sizeof(*kd));
    return krb5_dbe_encrypt_key_data(ctx, mkey, key, &salt, kvno, kd);
}

/*
 * Bring every key of the entry to the form a store writes: under the
 * master key mkey and wrapped by the ratchet under its record's expiry.
 * This re-encrypts keys after a master key change and wraps keys stored
 * before the ratchet; a wrapped key the ratchet can no longer open (a lost
 * ratchet) is dropped with its record, being as good as expired.
 */
static krb5_error_code
bring_keys_current(krb5_context ctx, krb5_db_entry *entry, tk_meta *meta,
                   krb5_kvno mkvno, const krb5_keyblock *mkey)
{
    krb5_error_code ret = 0;
    krb5_kvno cur;
    krb5_keyblock kb;
    krb5_keysalt salt;
    krb5_key_data fresh;
    const tk_key_record *rec;
    int i, out = 0;

    if (entry->n_key_data == 0)
        return 0;
    ret = krb5_dbe_get_mkvno(ctx, entry, &cur);
    if (ret)
        return ret;
    for (i = 0; i < entry->n_key_data; i++) {
        krb5_key_data *kd = &entry->key_data[i];
        krb5_boolean wrapped = is_wrapped(kd);

        rec = tk_meta_find(meta, kd->key_data_kvno);
        if ((cur == mkvno && wrapped) || rec == NULL) {
            entry->key_data[out++] = *kd;
            continue;
        }
        memset(&kb, 0, sizeof(kb));
        memset(&salt, 0, sizeof(salt));
        ret = tk_entry_decrypt_key(ctx, entry, kd, &kb, &salt);
        if (ret == TK_ERR_UNREADABLE && wrapped) {
            (void)tk_meta_remove(meta, kd->key_data_kvno, time(NULL));
            krb5_dbe_free_key_data_contents(ctx, kd);
            krb5_clear_error_message(ctx);
            continue;
        }
        if (ret)
            goto fail;
        if (wrapped) {
            /* The marker came back as the salt: the same epoch. */
            memset(&fresh, 0, sizeof(fresh));
            ret = krb5_dbe_encrypt_key_data(ctx, mkey, &kb, &salt,
                                            kd->key_data_kvno, &fresh);
        } else {
            ret = encrypt_wrapped(ctx, mkey, &kb, kd->key_data_kvno,
                                  rec->expiry, &fresh);
        }
        krb5_free_keyblock_contents(ctx, &kb);
        free(salt.data.data);
        if (ret)
            goto fail;
        krb5_dbe_free_key_data_contents(ctx, kd);
        entry->key_data[out++] = fresh;
    }
    entry->n_key_data = (krb5_int16)out;
    return 0;

fail:
    /* Keep the array whole for the caller, who discards the entry. */
    for (; i < entry->n_key_data; i++)
        entry->key_data[out++] = entry->key_data[i];
    entry->n_key_data = (krb5_int16)out;
    return ret;
}

krb5_error_code
tk_entry_check_room(krb5_context ctx, const tk_meta *meta, int64_t now)
{
    size_t i, live = 0;

    for (i = 0; meta != NULL && i < meta->nkeys; i++)
        live += (now == 0 || meta->keys[i].expiry > now);
    if (live < TK_MAX_KEY_VERSIONS)
        return 0;
    krb5_set_error_message(ctx, KRB5_KDB_BAD_VERSION, "already holds %d "
                           "live key versions, the most allowed; more can "
                           "be added as older ones expire",
                           TK_MAX_KEY_VERSIONS);
    return KRB5_KDB_BAD_VERSION;
}

/*
 * A temporary key never joins long-term keys: an unmanaged principal that
 * holds keys gets its first temporary key only at the switch of an
 * adoption, which removes them (tk_entry_switch_over).  The refusal says
 * what to do, naming the principal.
 */
static krb5_error_code
refuse_long_term_keys(krb5_context ctx, krb5_db_entry *entry)
{
    krb5_error_code ret = KADM5_PROTECT_PRINCIPAL;
    krb5_boolean managed;
    char *name = NULL;

    if (tk_entry_is_managed(ctx, entry, &managed) != 0 || managed ||
        entry->n_key_data == 0)
        return 0;
    if (krb5_unparse_name(ctx, entry->princ, &name) != 0)
        return ENOMEM;
    if (tk_entry_is_adopting(entry)) {
        krb5_set_error_message(ctx, ret, "tempkey: %s is being adopted: its "
                               "long-term keys (up to kvno %u) serve until "
                               "its service's ktupdate uploads its first "
                               "key, which replaces them (or stop with "
                               "tempkey-admin adopt --cancel %s)", name,
                               tk_entry_top_kvno(entry), name);
    } else {
        krb5_set_error_message(ctx, ret, "tempkey: %s holds long-term keys "
                               "(up to kvno %u) and is not managed by "
                               "tempkey; run tempkey-admin adopt %s first: "
                               "its service's first upload then replaces "
                               "them", name, tk_entry_top_kvno(entry), name);
    }
    krb5_free_unparsed_name(ctx, name);
    return ret;
}

krb5_error_code
tk_entry_add_keys(krb5_context ctx, krb5_db_entry *entry, krb5_kvno kvno,
                  const krb5_keyblock *keys, size_t nkeys, int64_t expiry,
                  const unsigned char *uploader, krb5_kvno mkvno,
                  const krb5_keyblock *mkey)
{
    return tk_entry_add_keys_at(ctx, entry, kvno, keys, nkeys, expiry, 0,
                                uploader, mkvno, mkey);
}

krb5_error_code
tk_entry_add_keys_at(krb5_context ctx, krb5_db_entry *entry, krb5_kvno kvno,
                     const krb5_keyblock *keys, size_t nkeys, int64_t expiry,
                     int64_t active_at, const unsigned char *uploader,
                     krb5_kvno mkvno, const krb5_keyblock *mkey)
{
    krb5_error_code ret;
    tk_meta *meta = NULL;
    tk_key_record rec;
    krb5_kvno next;
    krb5_key_data *kd;
    krb5_boolean managed;
    size_t i;

    ret = refuse_long_term_keys(ctx, entry);
    if (ret)
        return ret;
    ret = tk_entry_next_kvno(ctx, entry, &next);
    if (ret)
        return ret;
    if (kvno < next) {
        krb5_set_error_message(ctx, KRB5_KDB_BAD_VERSION, "key version %u "
                               "is not above the stored ones (next is %u)",
                               kvno, next);
        return name_error(ctx, KRB5_KDB_BAD_VERSION, entry->princ);
    }
    ret = tk_entry_get_meta(ctx, entry, &meta);
    if (ret)
        return ret;
    if (meta == NULL && (ret = tk_meta_new(&meta)) != 0)
        return ret;
    /* Every record it holds is stored again: they all count. */
    ret = tk_entry_check_room(ctx, meta, 0);
    if (ret) {
        name_error(ctx, ret, entry->princ);
        goto cleanup;
    }
    memset(&rec, 0, sizeof(rec));
    rec.kvno = kvno;
    rec.expiry = expiry;
    rec.active_at = active_at;
    if (uploader != NULL) {
        rec.has_uploader = 1;
        memcpy(rec.uploader, uploader, TK_UPLOADER_LEN);
    }
    ret = tk_meta_add(ctx, meta, &rec);
    if (ret)
        goto cleanup;

    ret = bring_keys_current(ctx, entry, meta, mkvno, mkey);
    if (ret)
        goto cleanup;
    kd = realloc(entry->key_data,
                 (entry->n_key_data + nkeys) * sizeof(*kd));
    if (kd == NULL) {
        ret = ENOMEM;
        goto cleanup;
    }
    entry->key_data = kd;
    for (i = 0; i < nkeys; i++) {
        kd = &entry->key_data[entry->n_key_data];
        ret = encrypt_wrapped(ctx, mkey, &keys[i], kvno, expiry, kd);
        if (ret)
            goto cleanup;
        entry->n_key_data++;
    }
    krb5_dbe_sort_key_data(entry->key_data, entry->n_key_data);
    ret = krb5_dbe_update_mkvno(ctx, entry, mkvno);
    if (ret)
        goto cleanup;
    ret = tk_entry_set_meta(ctx, entry, meta);
    if (ret)
        goto cleanup;
    ret = tk_entry_is_managed(ctx, entry, &managed);
    if (ret == 0 && !managed)
        ret = krb5_dbe_set_string(ctx, entry, TK_ATTR_MANAGED, "1");

cleanup:
    tk_meta_free(meta);
    return ret;
}

/* ---- Adoption: an existing principal moves over (doc/design.md). */

#define OSA_ADB_PRINC_VERSION_1 0x12345C01

static uint32_t
get_be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
        ((uint32_t)p[2] << 8) | p[3];
}

/*
 * Drop the old keys of the password history kadmin keeps in the entry's
 * KRB5_TL_KADM_DATA: they are long-term keys too.  The record is libkadm5's
 * osa_princ_ent_rec in XDR (src/lib/kadm5/srv/adb_xdr.c): version, policy
 * name (counted, padded to 4), aux attributes, old_key_next,
 * admin_history_kvno, then the counted array of old keys, which ends it.
 * Everything before the array stays (the policy, above all).
 */
static krb5_error_code
drop_password_history(krb5_context ctx, krb5_db_entry *entry)
{
    krb5_tl_data *tl = tk_entry_find_tl(entry, KRB5_TL_KADM_DATA);
    unsigned char *p;
    size_t len, pos;
    uint32_t name_len;

    if (tl == NULL)
        return 0;
    p = tl->tl_data_contents;
    len = tl->tl_data_length;
    if (len < 8 || get_be32(p) != OSA_ADB_PRINC_VERSION_1)
        goto unreadable;
    name_len = get_be32(p + 4);
    if (name_len > len)
        goto unreadable;
    pos = 8 + (((size_t)name_len + 3) & ~(size_t)3);
    /* aux_attributes, old_key_next, admin_history_kvno, old_key_len */
    if (pos + 16 > len)
        goto unreadable;
    if (get_be32(p + pos + 12) == 0)
        return 0;
    memset(p + pos + 4, 0, 4);
    memset(p + pos + 12, 0, 4);
    OPENSSL_cleanse(p + pos + 16, len - pos - 16);
    tl->tl_data_length = (krb5_ui_2)(pos + 16);
    /* kldap keeps the history in an attribute it writes only when told. */
    entry->mask |= KADM5_KEY_HIST;
    return 0;

unreadable:
    krb5_set_error_message(ctx, KRB5_KDB_TRUNCATED_RECORD, "its password "
                           "history (tl_data %d) cannot be read, so its old "
                           "long-term keys cannot be removed",
                           KRB5_TL_KADM_DATA);
    return name_error(ctx, KRB5_KDB_TRUNCATED_RECORD, entry->princ);
}

/* The longest life the KDC gives a ticket to entry: kdc_get_ticket_endtime
 * caps it at the principal's max_life and at the realm's, where set. */
static int64_t
longest_ticket(const krb5_db_entry *entry, krb5_deltat realm_max_life)
{
    krb5_deltat life = entry->max_life;

    if (life == 0 || (realm_max_life != 0 && realm_max_life < life))
        life = realm_max_life;
    /* Neither caps it: tickets end with the TGTs they came from, which
     * may be renewed; keep the keys for as long as one can say. */
    return life != 0 ? life : INT32_MAX;
}

krb5_error_code
tk_entry_switch_over(krb5_context ctx, krb5_db_entry *entry, int64_t now,
                     krb5_deltat realm_max_life, krb5_kvno *lt_kvno_out,
                     int64_t *until_out)
{
    krb5_error_code ret;
    tk_meta *meta = NULL;
    krb5_kvno top = tk_entry_top_kvno(entry);
    int64_t until = now + longest_ticket(entry, realm_max_life);
    char value[64];
    int i;

    *lt_kvno_out = 0;
    *until_out = 0;
    ret = tk_entry_get_meta(ctx, entry, &meta);
    if (ret == 0 && meta == NULL)
        ret = tk_meta_new(&meta);
    if (ret == 0)
        ret = drop_password_history(ctx, entry);
    if (ret)
        goto cleanup;
    /* Versions go on from the long-term ones: tickets in those keep their
     * kvno, and the service's keytab tells the two apart by it. */
    if (top > meta->highest_kvno)
        meta->highest_kvno = top;
    while (meta->nkeys > 0)
        (void)tk_meta_remove(meta, meta->keys[0].kvno, now);
    for (i = 0; i < entry->n_key_data; i++)
        krb5_dbe_free_key_data_contents(ctx, &entry->key_data[i]);
    free(entry->key_data);
    entry->key_data = NULL;
    entry->n_key_data = 0;
    ret = tk_entry_set_meta(ctx, entry, meta);
    if (ret == 0)
        ret = krb5_dbe_set_string(ctx, entry, TK_ATTR_MANAGED, "1");
    if (ret == 0)
        ret = tk_entry_unset_string(ctx, entry, TK_ATTR_ADOPT);
    if (ret == 0 && top != 0) {
        snprintf(value, sizeof(value), "%u %lld", top, (long long)until);
        ret = krb5_dbe_set_string(ctx, entry, TK_ATTR_ADOPTED, value);
    }
    if (ret == 0 && top != 0) {
        *lt_kvno_out = top;
        *until_out = until;
    }

cleanup:
    tk_meta_free(meta);
    return ret;
}

void
tk_entry_adoption(krb5_context ctx, krb5_db_entry *entry,
                  krb5_kvno *lt_kvno_out, int64_t *until_out)
{
    char *value = NULL;
    unsigned int kvno;
    long long until;
    int end = 0;

    *lt_kvno_out = 0;
    *until_out = 0;
    if (!has_string(entry, TK_ATTR_ADOPTED) ||
        krb5_dbe_get_string(ctx, entry, TK_ATTR_ADOPTED, &value) != 0 ||
        value == NULL)
        return;
    /* Written by tk_entry_switch_over(); anything else says nothing. */
    if (sscanf(value, "%u %lld%n", &kvno, &until, &end) == 2 &&
        value[end] == '\0' && kvno >= 1 && kvno <= TK_KVNO_MAX &&
        until > 0) {
        *lt_kvno_out = kvno;
        *until_out = until;
    }
    krb5_dbe_free_string(ctx, value);
}

/*
 * Decode the records of a writer's copy (entry) and of the stored entry and
 * tell whether the copy is stale: the stored records are of a later
 * generation, or the copy lost them.  KRB5_PLUGIN_NO_HANDLE (no message)
 * if the stored record is unreadable: no rule applies, since the writer may
 * be repairing it (tempkey-admin revoke).
 */
static krb5_error_code
compare_records(krb5_context ctx, krb5_db_entry *entry,
                krb5_db_entry *stored, tk_meta **mine_out,
                tk_meta **theirs_out, krb5_boolean *stale_out)
{
    krb5_error_code ret;

    *mine_out = *theirs_out = NULL;
    *stale_out = FALSE;
    if (tk_entry_get_meta(ctx, stored, theirs_out) != 0) {
        krb5_clear_error_message(ctx);
        *theirs_out = NULL;
        return KRB5_PLUGIN_NO_HANDLE;
    }
    ret = tk_entry_get_meta(ctx, entry, mine_out);
    if (ret) {
        tk_meta_free(*theirs_out);
        *theirs_out = NULL;
        return ret;
    }
    *stale_out = *theirs_out != NULL &&
        (*mine_out == NULL || (*mine_out)->generation <
         (*theirs_out)->generation);
    return 0;
}

/* Give entry the stored keys, their records and master key version. */
static krb5_error_code
take_stored_key_state(krb5_context ctx, krb5_db_entry *entry,
                      krb5_db_entry *stored)
{
    krb5_error_code ret = 0;
    krb5_tl_data tl;
    int i;

    for (i = 0; i < entry->n_key_data; i++)
        krb5_dbe_free_key_data_contents(ctx, &entry->key_data[i]);
    free(entry->key_data);
    entry->key_data = stored->key_data;
    entry->n_key_data = stored->n_key_data;
    stored->key_data = NULL;
    stored->n_key_data = 0;
    memset(&tl, 0, sizeof(tl));
    tl.tl_data_type = TK_TL_META;
    if (krb5_dbe_lookup_tl_data(ctx, stored, &tl) == 0 &&
        tl.tl_data_contents != NULL)
        ret = krb5_dbe_update_tl_data(ctx, entry, &tl);
    memset(&tl, 0, sizeof(tl));
    tl.tl_data_type = KRB5_TL_MKVNO;
    if (ret == 0 && krb5_dbe_lookup_tl_data(ctx, stored, &tl) == 0 &&
        tl.tl_data_contents != NULL)
        ret = krb5_dbe_update_tl_data(ctx, entry, &tl);
    return ret;
}

/* The refusal of a stale copy, whose write would undo a newer one. */
static krb5_error_code
refuse_stale(krb5_context ctx, krb5_db_entry *entry, const tk_meta *mine,
             const tk_meta *theirs)
{
    krb5_error_code ret = KRB5_KDB_DB_CHANGED;
    char *name = NULL;

    if (krb5_unparse_name(ctx, entry->princ, &name) != 0)
        name = NULL;
    krb5_set_error_message(ctx, ret, "tempkey: %s: its temporary keys "
                           "changed while this change was being made "
                           "(record generation %llu stored, %llu in this "
                           "copy); nothing was written, retry the change",
                           name != NULL ? name : "principal",
                           (unsigned long long)theirs->generation,
                           (unsigned long long)(mine != NULL ?
                                                mine->generation : 0));
    krb5_free_unparsed_name(ctx, name);
    return ret;
}

krb5_error_code
tk_entry_keep_newer_keys(krb5_context ctx, krb5_db_entry *entry,
                         krb5_db_entry *stored)
{
    krb5_error_code ret;
    tk_meta *mine, *theirs;
    krb5_boolean stale;

    ret = compare_records(ctx, entry, stored, &mine, &theirs, &stale);
    if (ret == 0 && stale)
        ret = take_stored_key_state(ctx, entry, stored);
    tk_meta_free(mine);
    tk_meta_free(theirs);
    return ret == KRB5_PLUGIN_NO_HANDLE ? 0 : ret;
}

krb5_error_code
tk_entry_check_current(krb5_context ctx, krb5_db_entry *entry,
                       krb5_db_entry *stored)
{
    krb5_error_code ret;
    tk_meta *mine, *theirs;
    krb5_boolean stale;

    ret = compare_records(ctx, entry, stored, &mine, &theirs, &stale);
    if (ret == 0 && stale)
        ret = refuse_stale(ctx, entry, mine, theirs);
    tk_meta_free(mine);
    tk_meta_free(theirs);
    return ret == KRB5_PLUGIN_NO_HANDLE ? 0 : ret;
}

/* ---- Writers that do not own the key records. */

krb5_tl_data *
tk_entry_find_tl(krb5_db_entry *entry, krb5_int16 type)
{
    krb5_tl_data *tl;

    for (tl = entry->tl_data; tl != NULL; tl = tl->tl_data_next) {
        if (tl->tl_data_type == type)
            return tl;
    }
    return NULL;
}

/* kldap's tl_data type for its own bookkeeping (the entry's DN). */
#define KLDAP_TL_USER_INFO 0xff

krb5_boolean
tk_tl_kept_apart(krb5_int16 type)
{
    return type == KRB5_TL_LAST_PWD_CHANGE || type == KRB5_TL_KADM_DATA ||
        type == KLDAP_TL_USER_INFO ||
        type == KRB5_TL_CONSTRAINED_DELEGATION_ACL ||
        type == KRB5_TL_LAST_ADMIN_UNLOCK;
}

/* Unlink and free tl from entry's list. */
static void
remove_tl(krb5_db_entry *entry, krb5_tl_data *tl)
{
    krb5_tl_data **p;

    for (p = &entry->tl_data; *p != NULL; p = &(*p)->tl_data_next) {
        if (*p == tl) {
            *p = tl->tl_data_next;
            free(tl->tl_data_contents);
            free(tl);
            entry->n_tl_data--;
            return;
        }
    }
}

krb5_error_code
tk_entry_unset_string(krb5_context ctx, krb5_db_entry *entry,
                      const char *key)
{
    krb5_error_code ret;
    krb5_tl_data *strings, *tl;

    ret = krb5_dbe_set_string(ctx, entry, key, NULL);
    strings = tk_entry_find_tl(entry, KRB5_TL_STRING_ATTRS);
    if (ret || strings == NULL || strings->tl_data_length > 0)
        return ret;
    /* kldap writes krbExtraData only when some tl_data goes there: without
     * another one, the old attributes would stay. */
    for (tl = entry->tl_data; tl != NULL; tl = tl->tl_data_next) {
        if (tl != strings && !tk_tl_kept_apart(tl->tl_data_type)) {
            remove_tl(entry, strings);
            break;
        }
    }
    return 0;
}

/* Whether two keys are the same key: the same version, enctype and salt,
 * and the same plaintext (decrypted with ctx's master keys if the stored
 * forms differ, as after a master key change). */
static krb5_boolean
same_key(krb5_context ctx, krb5_key_data *a, krb5_key_data *b)
{
    krb5_keyblock ka, kb;
    krb5_boolean same;
    int i;

    if (a->key_data_kvno != b->key_data_kvno ||
        a->key_data_ver != b->key_data_ver)
        return FALSE;
    for (i = 0; i < a->key_data_ver && i < 2; i++) {
        if (a->key_data_type[i] != b->key_data_type[i])
            return FALSE;
    }
    if (a->key_data_length[1] != b->key_data_length[1] ||
        (a->key_data_length[1] > 0 &&
         memcmp(a->key_data_contents[1], b->key_data_contents[1],
                a->key_data_length[1]) != 0))
        return FALSE;
    if (a->key_data_length[0] == b->key_data_length[0] &&
        memcmp(a->key_data_contents[0], b->key_data_contents[0],
               a->key_data_length[0]) == 0)
        return TRUE;
    memset(&ka, 0, sizeof(ka));
    memset(&kb, 0, sizeof(kb));
    same = krb5_dbe_decrypt_key_data(ctx, NULL, a, &ka, NULL) == 0 &&
        krb5_dbe_decrypt_key_data(ctx, NULL, b, &kb, NULL) == 0 &&
        ka.enctype == kb.enctype && ka.length == kb.length &&
        CRYPTO_memcmp(ka.contents, kb.contents, ka.length) == 0;
    krb5_free_keyblock_contents(ctx, &ka);
    krb5_free_keyblock_contents(ctx, &kb);
    krb5_clear_error_message(ctx);
    return same;
}

krb5_boolean
tk_entry_same_key_state(krb5_context ctx, krb5_db_entry *entry,
                        krb5_db_entry *stored)
{
    krb5_tl_data *ta = tk_entry_find_tl(entry, TK_TL_META);
    krb5_tl_data *tb = tk_entry_find_tl(stored, TK_TL_META);
    int i, j;

    if ((ta == NULL) != (tb == NULL) ||
        entry->n_key_data != stored->n_key_data)
        return FALSE;
    if (ta != NULL && (ta->tl_data_length != tb->tl_data_length ||
                       memcmp(ta->tl_data_contents, tb->tl_data_contents,
                              ta->tl_data_length) != 0))
        return FALSE;
    for (i = 0; i < entry->n_key_data; i++) {
        for (j = 0; j < stored->n_key_data; j++) {
            if (same_key(ctx, &entry->key_data[i], &stored->key_data[j]))
                break;
        }
        if (j == stored->n_key_data)
            return FALSE;
    }
    return TRUE;
}

krb5_error_code
tk_entry_check_foreign(krb5_context ctx, krb5_db_entry *entry,
                       krb5_db_entry *stored, tk_foreign_mode mode)
{
    krb5_error_code ret;
    krb5_boolean managed = FALSE, becomes = FALSE, stale;
    tk_meta *mine, *theirs;

    ret = compare_records(ctx, entry, stored, &mine, &theirs, &stale);
    if (ret == KRB5_PLUGIN_NO_HANDLE)
        return 0;
    if (ret)
        goto cleanup;
    if (stale) {
        ret = (mode == TK_FOREIGN_LOGGED) ?
            refuse_stale(ctx, entry, mine, theirs) :
            take_stored_key_state(ctx, entry, stored);
        goto cleanup;
    }
    if (mode == TK_FOREIGN_REPLICA)
        goto cleanup;
    /* Key state is ours to protect where either copy is managed; a keyless
     * entry may become managed (kadmin setstr P tempkey). */
    ret = tk_entry_is_managed(ctx, stored, &managed);
    if (ret == 0)
        ret = tk_entry_is_managed(ctx, entry, &becomes);
    if (ret || (!managed && !becomes) ||
        tk_entry_same_key_state(ctx, entry, stored) ||
        (!managed && entry->n_key_data == 0 &&
         (mine == NULL || mine->nkeys == 0)))
        goto cleanup;
    ret = KADM5_PROTECT_PRINCIPAL;
    krb5_set_error_message(ctx, ret, "is managed by tempkey: its keys come "
                           "from ktupdate, so it cannot take a password or "
                           "long-term key, and its key versions and their "
                           "records change only by uploads and "
                           "tempkey-admin");
    ret = name_error(ctx, ret, entry->princ);

cleanup:
    tk_meta_free(mine);
    tk_meta_free(theirs);
    return ret;
}
