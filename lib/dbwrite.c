/* dbwrite.c - get-modify-put of managed entries (locked, or checked where
 * the backing module has no lock), the purge, and the KDC's audit. */
/*
 * Every write of temporary-key state goes through write_entry():
 * - With a lock (db2, klmdb): lock, fetch, change, put, unlock.
 * - Without one (kldap answers KRB5_PLUGIN_OP_NOTSUPP): fetch, change (the
 *   change's own kvno checks run on that fresh copy), fetch again just
 *   before the put and start over if the records or keys moved meanwhile,
 *   put with a mask naming what changed (kldap writes nothing else), then
 *   fetch once more and confirm the change is in place: every record added
 *   is stored, or was removed since with the highest kvno kept (a purge or
 *   revocation, never a rollback), and every record removed is still gone.
 *   A change undone by another writer is applied again on the fresh copy,
 *   at most TK_WRITE_TRIES times.  Changes are re-runnable: a purge or a
 *   revocation that finds its work done changes nothing.
 */
#include "tkentry.h"
#include "tkproto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kadm5/admin.h>
#include <openssl/crypto.h>

#define TK_WRITE_TRIES 5

/* A change of *entry (NULL: no such principal; the change may create it).
 * Set *changed if the entry must be stored. */
typedef krb5_error_code (*change_fn)(krb5_context ctx,
                                     krb5_db_entry **entry, void *arg,
                                     krb5_boolean *changed);

/* Whether two copies of an entry (either may be NULL: none) hold the same
 * records and keys. */
static krb5_boolean
same_state(krb5_context ctx, krb5_db_entry *a, krb5_db_entry *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return tk_entry_same_key_state(ctx, a, b);
}

static int
count_keys(const krb5_db_entry *entry, krb5_kvno kvno)
{
    int i, n = 0;

    for (i = 0; i < entry->n_key_data; i++)
        n += (entry->key_data[i].key_data_kvno == kvno);
    return n;
}

/*
 * Whether the change from records base to mine (either NULL for none) is in
 * place in stored.  An added record may have gone since only with the
 * highest kvno kept at or above it; a rollback lowers it.
 */
static krb5_error_code
change_holds(krb5_context ctx, const tk_meta *base, const tk_meta *mine,
             krb5_db_entry *stored, krb5_boolean *holds_out)
{
    krb5_error_code ret;
    tk_meta *now = NULL;
    const tk_key_record *rec;
    krb5_kvno top;
    size_t i;

    *holds_out = FALSE;
    if (stored == NULL)
        return 0;
    ret = tk_entry_get_meta(ctx, stored, &now);
    if (ret)
        return ret;
    top = (now != NULL) ? now->highest_kvno : 0;
    if (mine != NULL && mine->highest_kvno > top)
        goto cleanup;
    for (i = 0; mine != NULL && i < mine->nkeys; i++) {
        rec = &mine->keys[i];
        if (tk_meta_find(base, rec->kvno) != NULL)
            continue;
        if (tk_meta_find(now, rec->kvno) != NULL &&
            count_keys(stored, rec->kvno) == 0)
            goto cleanup;
    }
    for (i = 0; base != NULL && i < base->nkeys; i++) {
        rec = &base->keys[i];
        if (tk_meta_find(mine, rec->kvno) == NULL &&
            tk_meta_find(now, rec->kvno) != NULL)
            goto cleanup;
    }
    *holds_out = TRUE;

cleanup:
    tk_meta_free(now);
    return 0;
}

/* What kldap must write: the keys and tl_data always (it writes keys only
 * when told), and for a new entry what it needs to create one.  db2 and
 * klmdb store the whole entry whatever the mask says. */
static void
set_write_mask(krb5_db_entry *entry, krb5_boolean is_new)
{
    entry->mask |= KADM5_KEY_DATA | KADM5_TL_DATA;
    if (is_new) {
        entry->mask |= KADM5_PRINCIPAL | KADM5_ATTRIBUTES | KADM5_MAX_LIFE |
            KADM5_MAX_RLIFE;
    }
}

/* Copy inner's message for code to ctx. */
static krb5_error_code
copy_message(krb5_context ctx, krb5_context inner, krb5_error_code code)
{
    const char *msg;

    if (code == 0 || ctx == inner)
        return code;
    msg = krb5_get_error_message(inner, code);
    krb5_set_error_message(ctx, code, "%s", msg);
    krb5_free_error_message(inner, msg);
    return code;
}

static krb5_error_code
fetch(krb5_context ctx, krb5_const_principal princ, krb5_db_entry **out)
{
    krb5_error_code ret;

    *out = NULL;
    ret = krb5_db_get_principal(ctx, princ, 0, out);
    if (ret == KRB5_KDB_NOENTRY) {
        krb5_clear_error_message(ctx);
        *out = NULL;
        return 0;
    }
    return ret;
}

/* Fetch and decode the records of the entry the change was computed on,
 * and of its result; either may be NULL. */
static krb5_error_code
metas(krb5_context ctx, krb5_db_entry *before, krb5_db_entry *after,
      tk_meta **base_out, tk_meta **mine_out)
{
    krb5_error_code ret;

    *base_out = *mine_out = NULL;
    if (before != NULL) {
        ret = tk_entry_get_meta(ctx, before, base_out);
        if (ret)
            return ret;
    }
    ret = tk_entry_get_meta(ctx, after, mine_out);
    if (ret) {
        tk_meta_free(*base_out);
        *base_out = NULL;
    }
    return ret;
}

/*
 * One get-modify-put.  With checked (no lock), the entry is read again
 * before the put and after it as described at the top; *again_out says
 * the try must be repeated.
 */
static krb5_error_code
write_once(krb5_context ctx, krb5_const_principal princ, change_fn fn,
           void *arg, krb5_boolean checked, krb5_boolean *again_out)
{
    krb5_error_code ret;
    krb5_db_entry *entry = NULL, *before = NULL, *check = NULL;
    tk_meta *base = NULL, *mine = NULL;
    krb5_boolean changed = FALSE, is_new, holds;

    *again_out = FALSE;
    ret = fetch(ctx, princ, &entry);
    if (ret == 0 && checked && entry != NULL)
        ret = fetch(ctx, princ, &before);   /* the state fn decides on */
    if (ret)
        goto cleanup;
    is_new = (entry == NULL);
    ret = fn(ctx, &entry, arg, &changed);
    if (ret || !changed)
        goto cleanup;
    set_write_mask(entry, is_new);
    if (checked) {
        ret = metas(ctx, before, entry, &base, &mine);
        if (ret == 0)
            ret = fetch(ctx, princ, &check);
        if (ret)
            goto cleanup;
        if (!same_state(ctx, before, check)) {
            *again_out = TRUE;          /* moved under us: decide again */
            goto cleanup;
        }
        krb5_db_free_principal(ctx, check);
        check = NULL;
    }
    ret = krb5_db_put_principal(ctx, entry);
    if (!checked)
        goto cleanup;
    if (ret && is_new && fetch(ctx, princ, &check) == 0 && check != NULL) {
        /* Another writer created it first (kldap: "already exists"). */
        krb5_clear_error_message(ctx);
        *again_out = TRUE;
        ret = 0;
        goto cleanup;
    }
    if (ret == 0)
        ret = fetch(ctx, princ, &check);
    if (ret == 0)
        ret = change_holds(ctx, base, mine, check, &holds);
    if (ret == 0 && !holds)
        *again_out = TRUE;

cleanup:
    tk_meta_free(base);
    tk_meta_free(mine);
    krb5_db_free_principal(ctx, entry);
    krb5_db_free_principal(ctx, before);
    krb5_db_free_principal(ctx, check);
    return ret;
}

/* The refusal of a checked write that other writers kept undoing for
 * TK_WRITE_TRIES tries. */
static krb5_error_code
gave_up(krb5_context ctx, krb5_const_principal princ)
{
    krb5_error_code ret = KRB5_KDB_DB_INUSE;
    char *name = NULL;

    if (krb5_unparse_name(ctx, princ, &name) != 0)
        name = NULL;
    krb5_set_error_message(ctx, ret, "tempkey: %s: other writers changed "
                           "its temporary keys during %d tries; try again",
                           name != NULL ? name : "principal",
                           TK_WRITE_TRIES);
    krb5_free_unparsed_name(ctx, name);
    return ret;
}

/* Apply fn to princ's entry under the database lock, or checked where the
 * backing module has none; *checked_out (if not NULL) says which. */
static krb5_error_code
write_entry(krb5_context ctx, krb5_const_principal princ, change_fn fn,
            void *arg, krb5_boolean *checked_out)
{
    krb5_error_code ret;
    krb5_boolean again;
    int i;

    if (checked_out != NULL)
        *checked_out = FALSE;
    ret = krb5_db_lock(ctx, KRB5_DB_LOCKMODE_EXCLUSIVE);
    if (ret == 0) {
        ret = write_once(ctx, princ, fn, arg, FALSE, &again);
        krb5_db_unlock(ctx);
        return ret;
    }
    if (ret != KRB5_PLUGIN_OP_NOTSUPP)
        return ret;
    krb5_clear_error_message(ctx);
    if (checked_out != NULL)
        *checked_out = TRUE;
    for (i = 0; i < TK_WRITE_TRIES; i++) {
        ret = write_once(ctx, princ, fn, arg, TRUE, &again);
        if (ret || !again)
            return ret;
    }
    return gave_up(ctx, princ);
}

typedef struct {
    tk_update_fn fn;
    void *arg;
} update_call;

static krb5_error_code
update_change(krb5_context ctx, krb5_db_entry **entry, void *arg,
              krb5_boolean *changed)
{
    update_call *call = arg;

    *changed = FALSE;
    if (*entry == NULL)
        return KRB5_KDB_NOENTRY;
    return call->fn(ctx, *entry, call->arg, changed);
}

krb5_error_code
tk_db_update(krb5_context ctx, krb5_const_principal princ, tk_update_fn fn,
             void *arg)
{
    update_call call = { fn, arg };

    return write_entry(ctx, princ, update_change, &call, NULL);
}

typedef struct {
    krb5_context ctx;
    tk_principal_filter_fn keep;
    void *arg;
    krb5_principal *names;
    size_t count;
    krb5_error_code error;
} name_list;

/* Note each principal keep() accepts; write nothing while iterating. */
static int
collect_name(krb5_pointer arg, krb5_db_entry *entry)
{
    name_list *list = arg;
    krb5_principal *names;

    if (!list->keep(list->ctx, entry, list->arg))
        return 0;
    names = realloc(list->names, (list->count + 1) * sizeof(*names));
    if (names == NULL) {
        list->error = ENOMEM;
        return 1;
    }
    list->names = names;
    list->error = krb5_copy_principal(list->ctx, entry->princ,
                                      &names[list->count]);
    if (list->error == 0)
        list->count++;
    return list->error != 0;
}

krb5_error_code
tk_db_list_principals(krb5_context ctx, tk_principal_filter_fn keep,
                      void *arg, krb5_principal **names_out,
                      size_t *count_out)
{
    krb5_error_code ret;
    name_list list;
    size_t i;

    *names_out = NULL;
    *count_out = 0;
    memset(&list, 0, sizeof(list));
    list.ctx = ctx;
    list.keep = keep;
    list.arg = arg;
    ret = krb5_db_iterate(ctx, NULL, collect_name, &list, 0);
    if (ret == 0)
        ret = list.error;
    if (ret) {
        for (i = 0; i < list.count; i++)
            krb5_free_principal(ctx, list.names[i]);
        free(list.names);
        return ret;
    }
    *names_out = list.names;
    *count_out = list.count;
    return 0;
}

/* Whether entry is a managed principal holding a key expired at *arg. */
static krb5_boolean
holds_expired(krb5_context ctx, krb5_db_entry *entry, void *arg)
{
    const int64_t *now = arg;
    tk_meta *meta = NULL;
    krb5_boolean expired = FALSE;
    size_t i;

    if (tk_entry_get_meta(ctx, entry, &meta) != 0 || meta == NULL)
        return FALSE;
    for (i = 0; i < meta->nkeys && !expired; i++)
        expired = (meta->keys[i].expiry <= *now);
    tk_meta_free(meta);
    return expired;
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
tk_db_list_expired(krb5_context ctx, int64_t now, krb5_principal **names_out,
                   size_t *count_out)
{
    return tk_db_list_principals(ctx, holds_expired, &now, names_out,
                                 count_out);
}

krb5_error_code
tk_db_purge_one(krb5_context ctx, krb5_const_principal princ, int64_t now,
                size_t *removed_out)
{
    krb5_error_code ret;
    purge_state st;

    st.now = now;
    st.removed = 0;
    ret = tk_db_update(ctx, princ, purge_entry, &st);
    *removed_out = st.removed;
    return ret;
}

krb5_error_code
tk_db_purge_expired(krb5_context ctx, int64_t now, tk_purge_report_fn report,
                    void *arg)
{
    krb5_error_code ret, err;
    krb5_principal *names;
    size_t i, count, removed;

    ret = tk_db_list_expired(ctx, now, &names, &count);
    if (ret)
        return ret;
    for (i = 0; i < count; i++) {
        err = tk_db_purge_one(ctx, names[i], now, &removed);
        /* Gone since the listing: nothing left to purge. */
        if (err != KRB5_KDB_NOENTRY)
            report(ctx, names[i], removed, err, arg);
        krb5_free_principal(ctx, names[i]);
    }
    free(names);
    return 0;
}

/* ---- Storing an upload (protocol.md), on a fresh copy under the lock:
 *   1. find the entry, or enroll the principal, or take over one marked
 *      for adoption;
 *   2. the kvno rule (tk_upload_kvno_reason): the next version, or the
 *      newest again;
 *   3. the newest again is a re-send: the same keys are stored already
 *      (a retransmission, nothing to write), other keys are refused;
 *   4. drop the expired keys, so that
 *   5. only live ones count against the cap (tk_entry_check_room);
 *   6a. an adopted principal's first upload removes its long-term keys;
 *   6. add the keys, encrypted under the active master key, which the
 *      master key entry read under the same lock names.
 * A shared principal (doc/design.md, "Shared services") differs in three
 * places: before step 2, while one of its keys is pending, any upload but
 * a retransmission of that key is answered as a fetch and stores nothing;
 * at step 3 other keys at the newest version are answered so too;
 * at step 6 the key is pending for the principal's delay, unless no other
 * key is live.  Its result carries every live key version, decrypted, for
 * the preauth module to encrypt to the member. */

typedef struct {
    krb5_context keyctx;        /* crypto and the master key */
    const tk_policy *pol;
    krb5_const_principal princ;
    const tk_upload *up;
    const unsigned char *uploader;
    krb5_kvno mkvno;
    krb5_keyblock *mkey;
    krb5_boolean again;         /* a repair: never create the entry */
    krb5_deltat delay;          /* a shared principal's, else 0 */
    int64_t active_at;          /* when its new key is used, 0: at once */
    tk_store_result *res;       /* out */
} upload_state;

void
tk_store_result_clear(tk_store_result *res)
{
    tk_held_keys_free(res->held, res->nheld);
    memset(res, 0, sizeof(*res));
}

/*
 * Every key version of entry live at now, with its keys decrypted through
 * keyctx's master keys, into res (replacing what it held).  A version
 * without a key of its own in entry is left out.
 */
static krb5_error_code
collect_held(krb5_context keyctx, krb5_db_entry *entry, int64_t now,
             tk_store_result *res)
{
    krb5_error_code ret;
    tk_meta *meta = NULL;
    tk_held_key *held = NULL;
    size_t i, n = 0;
    int k;

    tk_held_keys_free(res->held, res->nheld);
    res->held = NULL;
    res->nheld = 0;
    ret = tk_entry_get_meta(keyctx, entry, &meta);
    if (ret || meta == NULL || meta->nkeys == 0)
        goto cleanup;
    ret = ENOMEM;
    held = calloc(meta->nkeys, sizeof(*held));
    if (held == NULL)
        goto cleanup;
    ret = 0;
    for (i = 0; i < meta->nkeys && n < TK_MAX_HELD; i++) {
        const tk_key_record *rec = &meta->keys[i];
        tk_held_key *h = &held[n];

        if (rec->expiry <= now)
            continue;
        for (k = 0; k < entry->n_key_data && h->nkeys < TK_MAX_KEYS; k++) {
            if (entry->key_data[k].key_data_kvno != rec->kvno)
                continue;
            ret = tk_entry_decrypt_key(keyctx, entry, &entry->key_data[k],
                                       &h->keys[h->nkeys], NULL);
            if (ret)
                goto cleanup;
            h->nkeys++;
        }
        if (h->nkeys == 0)
            continue;
        h->kvno = rec->kvno;
        h->expiry = rec->expiry;
        h->active_at = rec->active_at;
        n++;
    }
    res->held = held;
    res->nheld = n;
    held = NULL;

cleanup:
    /* Zeroed beyond what was filled: free them all. */
    tk_held_keys_free(held, held != NULL ? meta->nkeys : 0);
    tk_meta_free(meta);
    return ret;
}

/* Refuse the upload for reason and return the code that carries it.  The
 * message is fmt's, or without fmt the one ctx holds for code (from the
 * rule that refused it). */
static krb5_error_code
refuse(krb5_context ctx, upload_state *st, int reason, krb5_error_code code,
       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static krb5_error_code
refuse(krb5_context ctx, upload_state *st, int reason, krb5_error_code code,
       const char *fmt, ...)
{
    krb5_error_code rcode = tk_reason_code(reason);
    const char *msg;
    va_list ap;

    st->res->reason = reason;
    if (fmt != NULL) {
        va_start(ap, fmt);
        krb5_vset_error_message(ctx, rcode, fmt, ap);
        va_end(ap);
    } else {
        msg = krb5_get_error_message(ctx, code);
        krb5_set_error_message(ctx, rcode, "%s", msg);
        krb5_free_error_message(ctx, msg);
    }
    return rcode;
}

/* A fresh entry for an enrolling principal, like one kadmin would create
 * with no keys, naming modifier as its last modifier: an enrollment names
 * the principal itself (tempkey-admin report counts those). */
static krb5_error_code
new_entry(krb5_context ctx, const tk_policy *pol, krb5_const_principal princ,
          krb5_const_principal modifier, krb5_db_entry **entry_out)
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
        ret = krb5_dbe_update_mod_princ_data(ctx, e, now, modifier);
    if (ret == 0)
        ret = krb5_dbe_update_last_pwd_change(ctx, e, now);
    if (ret) {
        krb5_db_free_principal(ctx, e);
        return ret;
    }
    *entry_out = e;
    return 0;
}

/* tk_db_update_or_create_managed(): tempkey-admin share's write, which
 * makes a missing principal as an enrollment would. */
typedef struct {
    const tk_policy *pol;
    krb5_const_principal princ, creator;
    tk_update_fn fn;
    void *arg;
    krb5_boolean created;       /* the last try's entry was new */
} create_call;

static krb5_error_code
create_change(krb5_context ctx, krb5_db_entry **entry, void *arg,
              krb5_boolean *changed)
{
    create_call *call = arg;
    krb5_error_code ret;
    krb5_boolean is_new = (*entry == NULL);

    *changed = FALSE;
    call->created = FALSE;
    if (is_new) {
        ret = new_entry(ctx, call->pol, call->princ, call->creator, entry);
        if (ret == 0)
            ret = krb5_dbe_set_string(ctx, *entry, TK_ATTR_MANAGED, "1");
        if (ret)
            return ret;
    }
    ret = call->fn(ctx, *entry, call->arg, changed);
    call->created = (ret == 0 && is_new && *changed);
    return ret;
}

krb5_error_code
tk_db_update_or_create_managed(krb5_context ctx, const tk_policy *pol,
                               krb5_const_principal princ,
                               krb5_const_principal creator, tk_update_fn fn,
                               void *arg, krb5_boolean *created_out)
{
    krb5_error_code ret;
    create_call call = { pol, princ, creator, fn, arg, FALSE };

    ret = write_entry(ctx, princ, create_change, &call, NULL);
    *created_out = (ret == 0 && call.created);
    return ret;
}

/* An existing principal that is not managed: only an adoption lets an
 * upload take it over, and never of a reserved name, whatever marks it. */
static krb5_error_code
check_adopting(krb5_context writer, upload_state *st, krb5_db_entry *entry)
{
    krb5_kvno top = tk_entry_top_kvno(entry);

    if (tk_entry_is_adopting(entry) && !tk_name_is_reserved(writer,
                                                            st->princ))
        return 0;
    if (tk_entry_is_adopting(entry)) {
        return refuse(writer, st, TK_REASON_NOT_ADOPTED, 0, "a reserved "
                      "name is never adopted, whatever marks it");
    }
    if (top == 0) {
        return refuse(writer, st, TK_REASON_NOT_ADOPTED, 0, "the principal "
                      "exists, keyless, and is not managed by tempkey; an "
                      "administrator adopts it first (tempkey-admin adopt)");
    }
    return refuse(writer, st, TK_REASON_NOT_ADOPTED, 0, "the principal "
                  "exists with long-term keys (up to kvno %u) and is not "
                  "managed by tempkey; a certificate alone never takes it "
                  "over: an administrator adopts it first (tempkey-admin "
                  "adopt)", top);
}

/* The realm's ticket max_life as krb5kdc reads it ([realms] max_life of
 * kdc.conf, the last value, one day if unset); 0 if unreadable, which
 * leaves the principal's own. */
static krb5_deltat
realm_max_life(krb5_context ctx, const char *realm)
{
    const char *path[] = { "realms", realm, "max_life", NULL };
    profile_t profile = NULL;
    char **values = NULL;
    krb5_deltat life = 24 * 60 * 60;    /* MIT's KRB5_KDB_MAX_LIFE */
    size_t n;

    if (krb5_get_profile(ctx, &profile) != 0)
        return 0;
    if (profile_get_values(profile, path, &values) == 0 &&
        values[0] != NULL) {
        for (n = 0; values[n + 1] != NULL; n++)
            ;
        if (krb5_string_to_deltat(values[n], &life) != 0)
            life = 0;
    }
    profile_free_list(values);
    profile_release(profile);
    return life;
}

/* Step 6a.  The first upload of an adopting principal switches it over:
 * its long-term keys go, and the result tells for how long tickets in
 * them may still be presented (tk_entry_switch_over). */
static krb5_error_code
switch_over(krb5_context writer, upload_state *st, krb5_db_entry *entry)
{
    krb5_error_code ret;
    krb5_kvno kvno;
    int64_t until;

    if (!tk_entry_is_adopting(entry))
        return 0;
    ret = tk_entry_switch_over(writer, entry, time(NULL),
                               realm_max_life(writer, st->pol->realm), &kvno,
                               &until);
    if (ret == 0)
        st->res->switched = TRUE;
    return ret;
}

/* Step 1.  Refuse an entry that is not managed: enrollment creates a new
 * entry for a name that may enroll (except by a repair: a principal
 * deleted since its upload stays deleted), and never takes over one that
 * exists unless an administrator marked it for adoption (check_adopting). */
static krb5_error_code
find_or_enroll(krb5_context writer, upload_state *st, krb5_db_entry **entry)
{
    krb5_error_code ret;
    krb5_boolean managed = FALSE;

    if (*entry == NULL && st->again) {
        return refuse(writer, st, TK_REASON_NOT_ENROLLABLE, 0,
                      "deleted since its upload");
    }
    if (*entry == NULL) {
        if (tk_policy_may_enroll(writer, st->pol, st->princ))
            return new_entry(st->keyctx, st->pol, st->princ, st->princ,
                             entry);
        return refuse(writer, st, TK_REASON_NOT_ENROLLABLE, 0,
                      "neither managed by tempkey nor allowed to enroll by "
                      "tempkey_enroll");
    }
    ret = tk_entry_is_managed(writer, *entry, &managed);
    if (ret == 0 && !managed)
        ret = check_adopting(writer, st, *entry);
    return ret;
}

/* Step 2.  *resend_out says the upload is at the newest stored version. */
static krb5_error_code
check_kvno(krb5_context writer, upload_state *st, krb5_db_entry *entry,
           krb5_boolean *resend_out)
{
    krb5_error_code ret;
    krb5_kvno next;
    int reason;

    *resend_out = FALSE;
    ret = tk_entry_next_kvno(writer, entry, &next);
    if (ret)
        return ret;
    reason = tk_upload_kvno_reason(writer, next - 1, st->up->kvno);
    if (reason)
        return refuse(writer, st, reason, tk_reason_code(reason), NULL);
    *resend_out = (st->up->kvno == next - 1);
    return 0;
}

/*
 * Whether entry already holds exactly up's keys at up->kvno.  Who signed
 * does not matter: a server whose certificate was renewed after a lost
 * reply re-sends the same keys under its new certificate, and the KDC
 * holds them already (the stored record keeps the first uploader).
 */
static krb5_error_code
same_upload(krb5_context ctx, krb5_db_entry *entry, const tk_meta *meta,
            const tk_upload *up, krb5_boolean *same_out)
{
    const tk_key_record *rec = tk_meta_find(meta, up->kvno);
    krb5_error_code ret;
    krb5_keyblock kb;
    size_t i, matched = 0;
    int k, held = 0;
    krb5_boolean same;

    *same_out = FALSE;
    if (rec == NULL)
        return 0;
    for (k = 0; k < entry->n_key_data; k++) {
        krb5_key_data *kd = &entry->key_data[k];

        if (kd->key_data_kvno != up->kvno)
            continue;
        held++;
        memset(&kb, 0, sizeof(kb));
        ret = tk_entry_decrypt_key(ctx, entry, kd, &kb, NULL);
        if (ret)
            return ret;
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
    *same_out = (held == (int)up->nkeys && matched == up->nkeys);
    return 0;
}

/* Step 3.  A re-send at the newest version: the same keys are a
 * retransmission, stored already; other keys are refused. */
static krb5_error_code
check_resend(krb5_context writer, upload_state *st, krb5_db_entry *entry,
             const tk_meta *meta)
{
    krb5_error_code ret = 0;
    krb5_boolean same = FALSE;

    if (meta != NULL)
        ret = same_upload(st->keyctx, entry, meta, st->up, &same);
    if (ret)
        return ret;
    /* A shared principal's member that raced another to the same version
     * (all of them enrolling at once, say) gets the keys stored there. */
    if (!same && st->delay > 0) {
        st->res->fetched = TRUE;
        return 0;
    }
    if (!same) {
        return refuse(writer, st, TK_REASON_KVNO_NOT_ABOVE_STORED, 0,
                      "key version %u is already stored with other keys",
                      st->up->kvno);
    }
    st->res->expiry = tk_meta_find(meta, st->up->kvno)->expiry;
    st->res->active_at = tk_meta_find(meta, st->up->kvno)->active_at;
    return 0;
}

/* A shared principal with a pending key: a retransmission of that key is
 * stored already; any other upload (another member's, at the same
 * version or the next) is answered as a fetch, so that one rotation at a
 * time goes through its delay. */
static krb5_error_code
pending_answer(krb5_context writer, upload_state *st, krb5_db_entry *entry,
               const tk_meta *meta)
{
    const tk_key_record *rec = tk_meta_find(meta, st->up->kvno);
    krb5_error_code ret;
    krb5_boolean same = FALSE;

    ret = same_upload(st->keyctx, entry, meta, st->up, &same);
    if (ret)
        return ret;
    if (same && rec != NULL) {
        st->res->expiry = rec->expiry;
        st->res->active_at = rec->active_at;
    } else {
        st->res->fetched = TRUE;
    }
    return 0;
}

/* Steps 4 and 5.  Expired keys go now rather than at the next purge, so
 * that only live ones count against the cap: meta, read before, still
 * holds them, and the cap leaves out those expired at now. */
static krb5_error_code
drop_expired_and_cap(krb5_context writer, upload_state *st,
                     krb5_db_entry *entry, const tk_meta *meta)
{
    krb5_error_code ret;
    int64_t now = time(NULL);
    size_t purged;

    ret = tk_entry_purge(st->keyctx, entry, now, &purged);
    if (ret)
        return ret;
    ret = tk_entry_check_room(writer, meta, now);
    if (ret)
        return refuse(writer, st, TK_REASON_TOO_MANY_KEYS, ret, NULL);
    return 0;
}

/* Step 6.  The master key entry is read through the writer, whose lock is
 * held: no database open of its own, unlike a read through keyctx's handle
 * (which would also wait for ever on that lock). */
static krb5_error_code
add_keys(krb5_context writer, upload_state *st, krb5_db_entry *entry)
{
    const tk_upload *up = st->up;
    krb5_error_code ret;
    int64_t active_at = st->active_at;

    ret = tk_active_mkey(st->keyctx, writer, st->princ, &st->mkvno,
                         &st->mkey);
    if (ret)
        return copy_message(writer, st->keyctx, ret);
    ret = tk_entry_add_keys_at(st->keyctx, entry, up->kvno, up->keys,
                               up->nkeys, up->expiry, active_at, st->uploader,
                               st->mkvno, st->mkey);
    if (ret)
        return ret;
    st->res->expiry = up->expiry;
    st->res->active_at = active_at;
    st->res->wrote = TRUE;
    return 0;
}

/* The upload as a change of the fresh entry, step by step.  The outcome in
 * st->res is that of the last try, the one that counts. */
static krb5_error_code
upload_change(krb5_context writer, krb5_db_entry **entryp, void *arg,
              krb5_boolean *changed)
{
    upload_state *st = arg;
    krb5_error_code ret;
    tk_meta *meta = NULL;
    krb5_boolean resend;

    *changed = FALSE;
    st->res->reason = 0;
    st->res->wrote = st->res->switched = st->res->fetched = FALSE;
    ret = find_or_enroll(writer, st, entryp);
    if (ret == 0)
        ret = tk_entry_get_meta(writer, *entryp, &meta);
    if (ret)
        goto cleanup;
    st->delay = tk_entry_share_delay(writer, *entryp);
    if (st->delay > 0 && tk_meta_pending(meta, time(NULL)) != NULL) {
        ret = pending_answer(writer, st, *entryp, meta);
        goto cleanup;
    }
    ret = check_kvno(writer, st, *entryp, &resend);
    if (ret)
        goto cleanup;
    if (resend) {
        ret = check_resend(writer, st, *entryp, meta);
        goto cleanup;
    }
    /* Before the expired keys go, which changes nothing it reads. */
    st->active_at = tk_entry_active_at(writer, *entryp, time(NULL));
    ret = drop_expired_and_cap(writer, st, *entryp, meta);
    if (ret == 0)
        ret = switch_over(writer, st, *entryp);
    if (ret == 0)
        ret = add_keys(writer, st, *entryp);
    *changed = (ret == 0);

cleanup:
    /* Every Ack of an adopted principal says it, retransmissions too:
     * ktupdate learns from it when to prune the long-term keys. */
    if (ret == 0) {
        tk_entry_adoption(writer, *entryp, &st->res->long_term_kvno,
                          &st->res->long_term_until);
    }
    if (ret == 0 && st->delay > 0) {
        st->res->share_delay = st->delay;
        ret = collect_held(st->keyctx, *entryp, time(NULL), st->res);
        if (ret)
            *changed = FALSE;
    }
    tk_meta_free(meta);
    return ret;
}

/* One try of the store under the lock, with st's master key. */
static krb5_error_code
write_upload(krb5_context writer, upload_state *st)
{
    tk_store_result_clear(st->res);
    return write_entry(writer, st->princ, upload_change, st,
                       &st->res->checked);
}

static krb5_error_code
store_upload(krb5_context writer, krb5_context keyctx, const tk_policy *pol,
             krb5_const_principal princ, const tk_upload *up,
             const unsigned char *uploader, krb5_boolean again,
             tk_store_result *res_out)
{
    krb5_error_code ret;
    upload_state st = {
        .keyctx = keyctx, .pol = pol, .princ = princ, .up = up,
        .uploader = uploader, .again = again, .res = res_out
    };

    memset(res_out, 0, sizeof(*res_out));
    ret = write_upload(writer, &st);
    if (ret == KRB5_KDB_NO_MATCHING_KEY) {
        /* The master key changed (kdb5_util use_mkey or
         * update_princ_encryption): reload keyctx's list now that no lock
         * is held, and decide again. */
        ret = tk_reload_master_keys(keyctx, princ->realm.data);
        if (ret == 0)
            ret = write_upload(writer, &st);
    }
    if (ret)
        res_out->wrote = FALSE;
    return ret;
}

krb5_error_code
tk_db_store_upload(krb5_context writer, krb5_context keyctx,
                   const tk_policy *pol, krb5_const_principal princ,
                   const tk_upload *up, const unsigned char *uploader,
                   tk_store_result *res_out)
{
    return store_upload(writer, keyctx, pol, princ, up, uploader, FALSE,
                        res_out);
}

krb5_error_code
tk_db_store_upload_again(krb5_context writer, krb5_context keyctx,
                         const tk_policy *pol, krb5_const_principal princ,
                         const tk_upload *up, const unsigned char *uploader,
                         tk_store_result *res_out)
{
    return store_upload(writer, keyctx, pol, princ, up, uploader, TRUE,
                        res_out);
}

static krb5_error_code
fetch_held(krb5_context writer, krb5_context keyctx,
           krb5_const_principal princ, tk_store_result *res)
{
    krb5_error_code ret;
    krb5_db_entry *entry = NULL;
    krb5_boolean managed = FALSE;
    int reason = 0;

    tk_store_result_clear(res);
    ret = krb5_db_get_principal(writer, princ, 0, &entry);
    if (ret == KRB5_KDB_NOENTRY) {
        reason = TK_REASON_NOT_SHARED;
        krb5_set_error_message(writer, tk_reason_code(reason), "no such "
                               "principal: only a shared one's keys are "
                               "fetched");
        goto cleanup;
    }
    if (ret)
        return ret;
    (void)tk_entry_is_managed(writer, entry, &managed);
    res->share_delay = managed ? tk_entry_share_delay(writer, entry) : 0;
    if (res->share_delay == 0) {
        reason = TK_REASON_NOT_SHARED;
        krb5_set_error_message(writer, tk_reason_code(reason), "the "
                               "principal is not shared (tempkey-admin "
                               "share): its key is its one host's alone");
        goto cleanup;
    }
    ret = collect_held(keyctx, entry, time(NULL), res);
    if (ret)
        goto cleanup;
    if (res->nheld == 0) {
        reason = TK_REASON_NO_KEY_TO_FETCH;
        krb5_set_error_message(writer, tk_reason_code(reason), "it holds no "
                               "live key; a member uploads one first");
    }

cleanup:
    krb5_db_free_principal(writer, entry);
    if (reason) {
        res->reason = reason;
        return tk_reason_code(reason);
    }
    return ret;
}

krb5_error_code
tk_db_fetch_held(krb5_context writer, krb5_context keyctx,
                 krb5_const_principal princ, tk_store_result *res_out)
{
    krb5_error_code ret;

    memset(res_out, 0, sizeof(*res_out));
    ret = fetch_held(writer, keyctx, princ, res_out);
    if (ret == KRB5_KDB_NO_MATCHING_KEY) {
        /* A master key this process has not loaded yet (as for a store). */
        ret = tk_reload_master_keys(keyctx, princ->realm.data);
        if (ret == 0)
            ret = fetch_held(writer, keyctx, princ, res_out);
    }
    if (ret && res_out->reason == 0)
        tk_store_result_clear(res_out);
    return ret;
}

/* Compare a foreign writer's copy with the stored one (NULL: none). */
static krb5_error_code
reconcile(krb5_context ctx, krb5_db_entry *entry, krb5_db_entry *stored,
          tk_foreign_mode mode)
{
    return stored == NULL ? 0 :
        tk_entry_check_foreign(ctx, entry, stored, mode);
}

krb5_error_code
tk_db_put_foreign(krb5_context ctx, krb5_context inner, krb5_db_entry *entry,
                  tk_foreign_mode mode, tk_put_fn put, void *arg)
{
    krb5_error_code ret;
    krb5_db_entry *stored = NULL, *check = NULL;
    int i;

    ret = krb5_db_lock(inner, KRB5_DB_LOCKMODE_EXCLUSIVE);
    if (ret == 0) {
        ret = copy_message(ctx, inner, fetch(inner, entry->princ, &stored));
        if (ret == 0)
            ret = reconcile(ctx, entry, stored, mode);
        if (ret == 0)
            ret = put(entry, arg);
        krb5_db_unlock(inner);
        krb5_db_free_principal(inner, stored);
        return ret;
    }
    if (ret != KRB5_PLUGIN_OP_NOTSUPP)
        return copy_message(ctx, inner, ret);
    krb5_clear_error_message(inner);
    /* No lock: compare with a copy that is still the stored one just
     * before the put. */
    for (i = 0; i < TK_WRITE_TRIES; i++) {
        ret = copy_message(ctx, inner, fetch(inner, entry->princ, &stored));
        if (ret == 0)
            ret = reconcile(ctx, entry, stored, mode);
        if (ret == 0)
            ret = copy_message(ctx, inner,
                               fetch(inner, entry->princ, &check));
        if (ret == 0 && same_state(inner, stored, check))
            ret = put(entry, arg);
        else if (ret == 0)
            ret = KRB5_KDB_DB_INUSE;
        krb5_db_free_principal(inner, stored);
        krb5_db_free_principal(inner, check);
        stored = check = NULL;
        if (ret != KRB5_KDB_DB_INUSE)
            return ret;
    }
    return gave_up(ctx, entry->princ);
}

/* Drop the tl_data a lockout write-back would store in krbExtraData: with
 * no lock, that copy could undo a key change stored meanwhile. */
static void
strip_extra_data(krb5_context ctx, krb5_db_entry *entry)
{
    krb5_tl_data **tlp = &entry->tl_data, *tl;

    while (*tlp != NULL) {
        tl = *tlp;
        if (tk_tl_kept_apart(tl->tl_data_type)) {
            tlp = &tl->tl_data_next;
            continue;
        }
        *tlp = tl->tl_data_next;
        free(tl->tl_data_contents);
        free(tl);
        entry->n_tl_data--;
    }
}

void
tk_db_audit(krb5_context ctx, krb5_const_principal princ, tk_audit_fn fn,
            void *arg)
{
    krb5_error_code ret;
    krb5_db_entry *fresh = NULL;
    char *auth_ind = NULL;

    ret = krb5_db_lock(ctx, KRB5_DB_LOCKMODE_EXCLUSIVE);
    if (ret == 0) {
        if (fetch(ctx, princ, &fresh) == 0 && fresh != NULL)
            fn(fresh, arg);
        krb5_db_unlock(ctx);
        krb5_db_free_principal(ctx, fresh);
        return;
    }
    if (ret != KRB5_PLUGIN_OP_NOTSUPP || fetch(ctx, princ, &fresh) != 0 ||
        fresh == NULL)
        return;
    /* kldap rewrites its auth indicators from a require_auth string found
     * in the tl_data, and would delete them if it were stripped: skip the
     * write-back of such an entry rather than risk its keys. */
    if (krb5_dbe_get_string(ctx, fresh, KRB5_KDB_SK_REQUIRE_AUTH,
                            &auth_ind) == 0 && auth_ind == NULL) {
        strip_extra_data(ctx, fresh);
        fn(fresh, arg);
    }
    krb5_dbe_free_string(ctx, auth_ind);
    krb5_db_free_principal(ctx, fresh);
}
