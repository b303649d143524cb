/* tempkey.c - the tempkey KDB module: an overlay on an ordinary MIT module. */
/*
 * Every operation is delegated to a backing module (db2, klmdb or kldap)
 * opened on a second krb5 context, whose profile answers "[realms] REALM
 * database_module" with our backing_module and passes every other query
 * through.  The backing store holds everything, temporary keys included:
 * they are ordinary key data encrypted under the master key, described by a
 * TK_TL_META record (kvno, expiry, uploader) and marked by the "tempkey"
 * string attribute, so dumps, loads and propagation carry them unchanged.
 *
 * Invariants:
 * - Admin tools (kadmind, kdb5_util, kadmin.local, kpropd) see raw entries,
 *   so a dump/load round trip is exact.
 * - The KDC (KRB5_KDB_SRV_TYPE_KDC) sees a managed entry with only its live
 *   keys and no password expiry; its ticket lifetimes, as a server and as a
 *   client, end at the newest key's expiry; as a server with no live key
 *   the lookup fails and the KDC log says why; as a client with no live key
 *   (an enrolling name is one) it serves the upload exchange only
 *   (check_policy_as).  Only replicated data and the local clock decide, so
 *   every replica agrees.
 * - Every write passes tk_entry_check_put(): no long-term key on a managed
 *   principal, no temporary key left on an unmanaged one.
 * - A principal marked for adoption (TK_ATTR_ADOPT) is not managed: the KDC
 *   serves its long-term keys as MIT does, only asking it to
 *   preauthenticate as a client (adopting_view), and its first accepted
 *   upload switches it over (lib/dbwrite.c, doc/design.md "Adoption").
 * - Key state (keys, versions, records) changes only through the module's
 *   own writers, which it opens itself (tk_db_open_for_writes, marked by
 *   TK_WRITER_ARG): others' writes must leave it as stored
 *   (tk_entry_check_foreign), a stale copy is refused where the write is
 *   logged and otherwise yields to the stored keys.
 * - On an iprop primary the own writers log every write; a replica
 *   (role = replica) has none: it refuses uploads, never purges, and stores
 *   what kpropd replays.
 * - The backing module's AS audit (lockout, last success) writes back what it
 *   is given, so it is given a freshly fetched raw entry, never a rewritten
 *   one.
 * - In the KDC expired keys are removed from the database every
 *   purge_interval by a pass in a child process (housekeeping.c), never in
 *   the request loop.
 *   Where the backing module has no lock (kldap over multi-provider LDAP),
 *   the same tick stores again any upload this KDC acknowledged that a
 *   replicated write rolled back (repair.c).
 * - Uploads from the preauth module arrive as put_principal of an entry
 *   carrying TK_TL_UPLOAD and are stored through an admin context under the
 *   database lock, on a freshly fetched entry (checked writes where the
 *   backing module has no lock, as kldap: lib/dbwrite.c).
 * - All state lives in the context: krb5kdc -w reopens the database in each
 *   worker after fork.
 */

#include <errno.h>
#include <stdint.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <com_err.h>
#include <profile.h>

#include "housekeeping.h"
#include "repair.h"
#include "tkentry.h"
#include "tkproto.h"

typedef struct purger purger;

/* Decoded key records of recently seen managed entries, keyed by their
 * exact DER: a hit is the same record by construction, so the KDC decodes
 * each record once rather than on every request. */
#define META_CACHE_SLOTS 256

typedef struct {
    unsigned char *der;
    size_t len;
    tk_meta *meta;
} meta_slot;

typedef struct {
    krb5_context inner;         /* context whose database is the backing */
    tk_config cfg;
    krb5_boolean kdc;           /* opened by krb5kdc: rewrite managed ones */
    purger *purger;
    pid_t housekeeper;          /* KDC only: the running purge pass */
    krb5_context writer;        /* KDC only: admin context for uploads,
                                 * opened on the first one (after fork) */
    tk_repair *acked;           /* KDC without a lock: uploads to check
                                 * after replication (repair.c) */
    krb5_boolean own_writer;    /* opened by tk_db_open_for_writes: the
                                 * module's own writes */
    char **db_args;             /* krb5kdc -d/-x, for the writer */
    tk_ratchet *ratchet;        /* wraps temporary keys at rest */
    krb5_boolean told_lost;     /* logged that keys of a lost ratchet are
                                 * treated as absent */
    meta_slot meta_cache[META_CACHE_SLOTS];     /* KDC only */
} tk_db;

static krb5_error_code purger_start(krb5_context ctx, tk_db *db,
                                    purger **out);
static void purger_stop(purger *p);
static krb5_boolean purge_due(tk_db *db);
static void log_ratchet_notice(tk_db *db);
static void sync_ratchet(krb5_context ctx, tk_db *db);
static void drop_unreadable_keys(krb5_context ctx, tk_db *db,
                                 krb5_db_entry *entry);
static krb5_error_code get_writer(krb5_context ctx, tk_db *db,
                                  krb5_context *writer_out);

/* Copy the inner context's message for code to the outer context. */
static krb5_error_code
relay(krb5_context outer, krb5_context inner, krb5_error_code code)
{
    const char *msg;

    /* "Unsupported method" answers are frequent (issue_pac and
     * check_policy_tgs on db2) and carry no message worth the copies. */
    if (code == 0 || code == KRB5_PLUGIN_OP_NOTSUPP ||
        code == KRB5_PLUGIN_NO_HANDLE)
        return code;
    msg = krb5_get_error_message(inner, code);
    krb5_set_error_message(outer, code, "%s", msg);
    krb5_free_error_message(inner, msg);
    return code;
}

/* Make a context for realm whose database is the backing section: its
 * profile answers "[realms] REALM database_module" with it. */
static krb5_error_code
make_inner(krb5_context ctx, const char *realm, const char *backing,
           krb5_context *inner_out)
{
    krb5_error_code ret;
    const char *path[] = { "realms", realm, "database_module", NULL };
    const char *values[] = { backing, NULL };
    tk_profile_setting setting = { path, values };
    krb5_context inner = NULL;

    *inner_out = NULL;
    ret = tk_context_override(ctx, &setting, 1, KRB5_INIT_CONTEXT_KDC,
                              &inner);
    if (ret == 0)
        ret = krb5_set_default_realm(inner, realm);
    if (ret) {
        krb5_free_context(inner);
        return ret;
    }
    *inner_out = inner;
    return 0;
}

/* ---- Opening and closing. */

static tk_db *
get_db(krb5_context ctx)
{
    void *db = NULL;

    if (krb5_db_get_context(ctx, &db) != 0)
        return NULL;
    return db;
}

static void
free_args(char **args)
{
    char **p;

    for (p = args; p != NULL && *p != NULL; p++)
        free(*p);
    free(args);
}

/* A copy of db_args without the writer's mark; set *own_out if it was
 * there. */
static krb5_error_code
split_args(char **db_args, char ***args_out, krb5_boolean *own_out)
{
    char **args;
    size_t n = 0, i;

    *args_out = NULL;
    *own_out = FALSE;
    for (i = 0; db_args != NULL && db_args[i] != NULL; i++)
        ;
    args = calloc(i + 1, sizeof(*args));
    if (args == NULL)
        return ENOMEM;
    for (i = 0; db_args != NULL && db_args[i] != NULL; i++) {
        if (strcmp(db_args[i], TK_WRITER_ARG) == 0) {
            *own_out = TRUE;
            continue;
        }
        args[n] = strdup(db_args[i]);
        if (args[n++] == NULL) {
            free_args(args);
            return ENOMEM;
        }
    }
    *args_out = args;
    return 0;
}

static void
free_db(tk_db *db)
{
    int i;

    if (db == NULL)
        return;
    for (i = 0; i < META_CACHE_SLOTS; i++) {
        free(db->meta_cache[i].der);
        tk_meta_free(db->meta_cache[i].meta);
    }
    purger_stop(db->purger);
    tk_housekeeping_stop(&db->housekeeper);
    tk_ratchet_close(db->ratchet);
    tk_repair_free(db->inner, db->acked);
    if (db->writer != NULL) {
        tk_db_close_for_writes(db->writer);
        krb5_free_context(db->writer);
    }
    if (db->inner != NULL) {
        (void)krb5_db_fini(db->inner);
        krb5_free_context(db->inner);
    }
    tk_config_free(&db->cfg);
    free_args(db->db_args);
    free(db);
}

static krb5_error_code
tk_fini_module(krb5_context ctx)
{
    tk_db *db = get_db(ctx);

    if (db != NULL) {
        free_db(db);
        krb5_db_set_context(ctx, NULL);
    }
    return 0;
}

/* Read the configuration, make the inner context and open (or create) the
 * backing database. */
static krb5_error_code
open_db(krb5_context ctx, char *section, char **db_args, int mode,
        krb5_boolean create)
{
    krb5_error_code ret;
    tk_db *db = NULL;
    char *realm = NULL;

    tk_fini_module(ctx);        /* init_module may come on an open context */
    ret = krb5_get_default_realm(ctx, &realm);
    if (ret)
        return ret;
    db = calloc(1, sizeof(*db));
    if (db == NULL) {
        ret = ENOMEM;
        goto cleanup;
    }
    db->kdc = !create && (mode & KRB5_KDB_SRV_TYPE_KDC) != 0;
    ret = split_args(db_args, &db->db_args, &db->own_writer);
    if (ret == 0)
        ret = tk_config_read(ctx, realm, section, &db->cfg);
    if (ret)
        goto cleanup;
    ret = make_inner(ctx, realm, db->cfg.backing, &db->inner);
    if (ret)
        goto cleanup;
    /* A replica's ratchet is a copy of the primary's, made once: one of
     * its own would open none of the keys it receives. */
    ret = tk_ratchet_open(ctx, db->cfg.ratchet_file, db->cfg.key_epoch,
                          db->cfg.replica ? 0 : TK_RATCHET_CREATE,
                          time(NULL), &db->ratchet);
    if (ret)
        goto cleanup;
    log_ratchet_notice(db);
    if (create)
        ret = krb5_db_create(db->inner, db->db_args);
    else
        ret = krb5_db_open(db->inner, db->db_args, mode);
    if (ret) {
        relay(ctx, db->inner, ret);
        krb5_prepend_error_message(ctx, ret, "tempkey: backing module '%s'",
                                   db->cfg.backing);
        goto cleanup;
    }
    if (db->kdc) {
        ret = purger_start(ctx, db, &db->purger);
        if (ret)
            goto cleanup;
    }
    ret = krb5_db_set_context(ctx, db);
    if (ret)
        goto cleanup;
    db = NULL;

cleanup:
    free_db(db);
    krb5_free_default_realm(ctx, realm);
    return ret;
}

static krb5_error_code
tk_init_library(void)
{
    return 0;
}

static krb5_error_code
tk_fini_library(void)
{
    return 0;
}

static krb5_error_code
tk_init_module(krb5_context ctx, char *section, char **db_args, int mode)
{
    return open_db(ctx, section, db_args, mode, FALSE);
}

/* kdb5_util load creates a "temporary" side database and leaves it open for
 * its puts until promote. */
static krb5_error_code
tk_create(krb5_context ctx, char *section, char **db_args)
{
    return open_db(ctx, section, db_args, KRB5_KDB_SRV_TYPE_OTHER, TRUE);
}

/* Called with the database open (kdb5_util destroy) or not. */
static krb5_error_code
tk_destroy(krb5_context ctx, char *section, char **db_args)
{
    krb5_error_code ret;
    tk_db *db = get_db(ctx);
    tk_config cfg;
    krb5_context inner = NULL;
    char *realm = NULL;

    if (db != NULL)
        return relay(ctx, db->inner, krb5_db_destroy(db->inner, db_args));
    ret = krb5_get_default_realm(ctx, &realm);
    if (ret)
        return ret;
    ret = tk_config_read(ctx, realm, section, &cfg);
    if (ret)
        goto cleanup;
    ret = make_inner(ctx, realm, cfg.backing, &inner);
    if (ret == 0)
        ret = relay(ctx, inner, krb5_db_destroy(inner, db_args));
    tk_config_free(&cfg);

cleanup:
    if (inner != NULL) {
        (void)krb5_db_fini(inner);
        krb5_free_context(inner);
    }
    krb5_free_default_realm(ctx, realm);
    return ret;
}

static krb5_error_code
tk_promote_db(krb5_context ctx, char *section, char **db_args)
{
    krb5_error_code ret;
    tk_db *db = get_db(ctx);

    if (db == NULL)
        return KRB5_KDB_DBNOTINITED;
    ret = relay(ctx, db->inner, krb5_db_promote(db->inner, db_args));
    if (ret == 0)
        tk_fini_module(ctx);    /* promote finalizes the database */
    return ret;
}

/* ---- Delegation.  Each function fetches the state or fails cleanly. */

#define GET_DB(ctx, db)                                 \
    tk_db *db = get_db(ctx);                            \
    if (db == NULL)                                     \
        return KRB5_KDB_DBNOTINITED

static krb5_error_code
tk_lock(krb5_context ctx, int mode)
{
    GET_DB(ctx, db);
    return relay(ctx, db->inner, krb5_db_lock(db->inner, mode));
}

static krb5_error_code
tk_unlock(krb5_context ctx)
{
    GET_DB(ctx, db);
    return relay(ctx, db->inner, krb5_db_unlock(db->inner));
}

/* The decoded records of entry (NULL if none), from the cache if the same
 * record was seen before.  The result belongs to the cache. */
static krb5_error_code
cached_meta(krb5_context ctx, tk_db *db, krb5_db_entry *entry,
            const tk_meta **meta_out)
{
    krb5_error_code ret;
    krb5_tl_data *tl;
    meta_slot *slot;
    tk_meta *meta;
    uint32_t h = 2166136261u;
    unsigned char *copy;
    int i;

    *meta_out = NULL;
    for (tl = entry->tl_data; tl != NULL; tl = tl->tl_data_next) {
        if (tl->tl_data_type == TK_TL_META)
            break;
    }
    if (tl == NULL)
        return 0;
    for (i = 0; i < tl->tl_data_length; i++)
        h = (h ^ tl->tl_data_contents[i]) * 16777619u;      /* FNV-1a */
    slot = &db->meta_cache[h % META_CACHE_SLOTS];
    if (slot->der != NULL && slot->len == tl->tl_data_length &&
        memcmp(slot->der, tl->tl_data_contents, slot->len) == 0) {
        *meta_out = slot->meta;
        return 0;
    }
    ret = tk_entry_get_meta(ctx, entry, &meta);
    if (ret)
        return ret;
    copy = malloc(tl->tl_data_length);
    if (copy == NULL) {
        tk_meta_free(meta);
        return ENOMEM;
    }
    memcpy(copy, tl->tl_data_contents, tl->tl_data_length);
    free(slot->der);
    tk_meta_free(slot->meta);
    slot->der = copy;
    slot->len = tl->tl_data_length;
    slot->meta = meta;
    *meta_out = meta;
    return 0;
}

/*
 * An adopting principal is served as MIT serves it, with its long-term
 * keys, until its first upload.  Only as a client must it be
 * preauthenticated: otherwise the KDC would answer the upload exchange's
 * first request with a ticket in its long-term key, and the upload could
 * not even start.  Keytab initiators (kinit -k) preauthenticate as asked.
 */
static void
adopting_view(krb5_db_entry *entry, unsigned int flags)
{
    if ((flags & KRB5_KDB_FLAG_CLIENT) && tk_entry_is_adopting(entry))
        entry->attributes |= KRB5_KDB_REQUIRES_PRE_AUTH;
}

/* Rewrite a managed entry for the KDC; log a refusal. */
static krb5_error_code
kdc_view(krb5_context ctx, tk_db *db, krb5_db_entry *entry,
         unsigned int flags)
{
    krb5_error_code ret;
    krb5_boolean managed;
    const tk_meta *meta;
    const char *msg;

    ret = tk_entry_is_managed(ctx, entry, &managed);
    if (ret == 0 && !managed)
        adopting_view(entry, flags);
    if (ret || !managed)
        return ret;
    sync_ratchet(ctx, db);
    drop_unreadable_keys(ctx, db, entry);
    ret = cached_meta(ctx, db, entry, &meta);
    if (ret == 0)
        ret = tk_entry_kdc_view_meta(ctx, entry, meta, time(NULL),
                                     (flags & KRB5_KDB_FLAG_CLIENT) == 0);
    if (ret) {
        msg = krb5_get_error_message(ctx, ret);
        com_err("tempkey", 0, "%s; refusing it", msg);
        krb5_free_error_message(ctx, msg);
    }
    return ret;
}

/* The KDC's view of a name that may enroll but has no entry yet: keyless,
 * preauthentication required, marked as enrolling.  It exists only in
 * memory until an upload stores it. */
static krb5_error_code
enrolling_entry(krb5_context ctx, krb5_const_principal princ,
                krb5_db_entry **entry_out)
{
    krb5_error_code ret;
    krb5_db_entry *e;

    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return ENOMEM;
    e->magic = KRB5_KDB_MAGIC_NUMBER;
    e->len = KRB5_KDB_V1_BASE_LENGTH;
    e->attributes = KRB5_KDB_REQUIRES_PRE_AUTH | KRB5_KDB_DISALLOW_SVR;
    ret = krb5_copy_principal(ctx, princ, &e->princ);
    if (ret == 0)
        ret = krb5_dbe_set_string(ctx, e, TK_ATTR_MANAGED,
                                  TK_ATTR_ENROLLING);
    if (ret) {
        krb5_db_free_principal(ctx, e);
        return ret;
    }
    *entry_out = e;
    return 0;
}

static krb5_error_code
tk_get_principal(krb5_context ctx, krb5_const_principal search_for,
                 unsigned int flags, krb5_db_entry **entry_out)
{
    krb5_error_code ret;
    krb5_db_entry *entry = NULL;

    GET_DB(ctx, db);
    ret = krb5_db_get_principal(db->inner, search_for, flags, &entry);
    if (ret == KRB5_KDB_NOENTRY && db->kdc && (flags & KRB5_KDB_FLAG_CLIENT) &&
        tk_policy_may_enroll(ctx, &db->cfg.policy, search_for))
        return enrolling_entry(ctx, search_for, entry_out);
    if (ret)
        return relay(ctx, db->inner, ret);
    if (db->kdc) {
        ret = kdc_view(ctx, db, entry, flags);
        if (ret) {
            krb5_db_free_principal(ctx, entry);
            return ret;
        }
    }
    *entry_out = entry;
    return 0;
}

/* Hand db_args to the backing module the way libkdb5 passes them: as
 * KRB5_TL_DB_ARGS tl_data, which it strips before storing. */
static krb5_error_code
attach_db_args(krb5_db_entry *entry, char **db_args)
{
    krb5_tl_data *tl;
    size_t len;

    for (; db_args != NULL && *db_args != NULL; db_args++) {
        len = strlen(*db_args) + 1;
        if (len > 65535)
            return EINVAL;
        tl = calloc(1, sizeof(*tl));
        if (tl == NULL)
            return ENOMEM;
        tl->tl_data_contents = malloc(len);
        if (tl->tl_data_contents == NULL) {
            free(tl);
            return ENOMEM;
        }
        memcpy(tl->tl_data_contents, *db_args, len);
        tl->tl_data_type = KRB5_TL_DB_ARGS;
        tl->tl_data_length = (krb5_ui_2)len;
        tl->tl_data_next = entry->tl_data;
        entry->tl_data = tl;
        entry->n_tl_data++;
    }
    return 0;
}

/* The admin context that uploads and purges are written through: opened
 * read-write on first use in this process (after krb5kdc forks its
 * workers), with the update log mapped on an iprop primary. */
static krb5_error_code
get_writer(krb5_context ctx, tk_db *db, krb5_context *writer_out)
{
    krb5_error_code ret;
    krb5_context writer = NULL;
    profile_t profile = NULL;
    char *realm = NULL;

    if (db->writer == NULL) {
        ret = krb5_get_profile(ctx, &profile);
        if (ret == 0)
            ret = krb5_init_context_profile(profile, KRB5_INIT_CONTEXT_KDC,
                                            &writer);
        if (ret == 0)
            ret = krb5_get_default_realm(ctx, &realm);
        if (ret == 0)
            ret = krb5_set_default_realm(writer, realm);
        if (ret == 0)
            ret = tk_db_open_for_writes(writer, realm, &db->cfg,
                                        db->db_args);
        if (ret && writer != NULL) {
            relay(ctx, writer, ret);
            tk_db_close_for_writes(writer);
        }
        krb5_free_default_realm(ctx, realm);
        profile_release(profile);
        if (ret) {
            krb5_free_context(writer);
            krb5_prepend_error_message(ctx, ret, "tempkey: cannot open the "
                                       "database for writing");
            return ret;
        }
        db->writer = writer;
    }
    *writer_out = db->writer;
    return 0;
}

/* Report an upload's outcome in the caller's entry (TK_TL_UPLOAD_RESULT). */
static krb5_error_code
set_result(krb5_db_entry *entry, int reason, const tk_store_result *res)
{
    int64_t expiry = (res != NULL) ? res->expiry : 0;
    uint32_t lt_kvno = (res != NULL) ? res->long_term_kvno : 0;
    int64_t lt_until = (res != NULL) ? res->long_term_until : 0;
    krb5_tl_data *tl;
    unsigned char *p;
    int i;

    tl = calloc(1, sizeof(*tl));
    p = malloc(TK_UPLOAD_RESULT_LEN);
    if (tl == NULL || p == NULL) {
        free(tl);
        free(p);
        return ENOMEM;
    }
    for (i = 0; i < 4; i++)
        p[i] = (unsigned char)((uint32_t)reason >> (24 - 8 * i));
    for (i = 0; i < 8; i++)
        p[4 + i] = (unsigned char)((uint64_t)expiry >> (56 - 8 * i));
    for (i = 0; i < 4; i++)
        p[12 + i] = (unsigned char)(lt_kvno >> (24 - 8 * i));
    for (i = 0; i < 8; i++)
        p[16 + i] = (unsigned char)((uint64_t)lt_until >> (56 - 8 * i));
    p[24] = (res != NULL && res->fetched) ? 1 : 0;
    for (i = 0; i < 8; i++) {
        p[25 + i] = (unsigned char)((uint64_t)(res != NULL ? res->active_at :
                                               0) >> (56 - 8 * i));
    }
    for (i = 0; i < 4; i++) {
        p[33 + i] = (unsigned char)((uint32_t)(res != NULL ?
                                               res->share_delay : 0) >>
                                    (24 - 8 * i));
    }
    tl->tl_data_type = TK_TL_UPLOAD_RESULT;
    tl->tl_data_length = TK_UPLOAD_RESULT_LEN;
    tl->tl_data_contents = p;
    tl->tl_data_next = entry->tl_data;
    entry->tl_data = tl;
    entry->n_tl_data++;
    return 0;
}

/* A shared principal's live keys in the caller's entry (TK_TL_HELD_KEYS),
 * in the clear: the preauth module encrypts them to the member and zeroes
 * them. */
static krb5_error_code
set_held(krb5_context ctx, krb5_db_entry *entry, const tk_store_result *res)
{
    krb5_error_code ret;
    krb5_tl_data *tl;
    krb5_data der = { 0, 0, NULL };

    if (res->nheld == 0)
        return 0;
    ret = tk_encode_held_keys(ctx, res->held, res->nheld, &der);
    if (ret)
        return ret;
    tl = calloc(1, sizeof(*tl));
    if (tl == NULL || der.length > 65535) {
        OPENSSL_cleanse(der.data, der.length);
        free(der.data);
        free(tl);
        return ENOMEM;
    }
    tl->tl_data_type = TK_TL_HELD_KEYS;
    tl->tl_data_length = (krb5_ui_2)der.length;
    tl->tl_data_contents = (krb5_octet *)der.data;
    tl->tl_data_next = entry->tl_data;
    entry->tl_data = tl;
    entry->n_tl_data++;
    return 0;
}

/* The outcome in the caller's entry: the result, and a shared principal's
 * keys. */
static krb5_error_code
report_outcome(krb5_context ctx, krb5_db_entry *entry,
               const tk_store_result *res, krb5_error_code ret)
{
    if (ret && res->reason == 0)
        return ret;
    if (set_result(entry, res->reason, res) != 0 ||
        (ret == 0 && set_held(ctx, entry, res) != 0))
        return ENOMEM;
    return ret;
}

/* A fetch the preauth module has verified: a shared principal's keys,
 * read through the admin context (the KDC's own handle serves its view,
 * without pending keys). */
static krb5_error_code
fetch_keys(krb5_context ctx, tk_db *db, krb5_db_entry *entry)
{
    krb5_error_code ret;
    krb5_context writer;
    tk_store_result res;

    memset(&res, 0, sizeof(res));
    ret = get_writer(ctx, db, &writer);
    if (ret == 0) {
        ret = tk_db_fetch_held(writer, ctx, entry->princ, &res);
        relay(ctx, writer, ret);
    }
    ret = report_outcome(ctx, entry, &res, ret);
    tk_store_result_clear(&res);
    return ret;
}

/* One KDC line for the switch of an adopted principal. */
static void
log_switch(krb5_context ctx, krb5_const_principal princ,
           const tk_store_result *res)
{
    char *name = NULL, until[TK_TIME_LEN];

    if (krb5_unparse_name(ctx, princ, &name) != 0)
        return;
    if (res->long_term_kvno == 0) {
        com_err("tempkey", 0, "adopted %s: it had no key", name);
    } else {
        tk_format_time(res->long_term_until, until);
        com_err("tempkey", 0, "adopted %s: its long-term keys (up to kvno "
                "%u) are removed; tickets in them end by %s", name,
                res->long_term_kvno, until);
    }
    krb5_free_unparsed_name(ctx, name);
}

/*
 * Store an upload the preauth module has verified.  Its tl_data holds the
 * uploader's certificate hash followed by the Upload DER; the write goes
 * through the admin context under the database lock, on a freshly fetched
 * entry, with keys encrypted under this context's master key.  Without a
 * lock, a write replicated from another LDAP provider may still undo it:
 * the upload is remembered and checked once replication has settled.
 */
static krb5_error_code
store_upload(krb5_context ctx, tk_db *db, krb5_db_entry *entry)
{
    krb5_error_code ret;
    krb5_tl_data *tl = tk_entry_find_tl(entry, TK_TL_UPLOAD);
    krb5_context writer;
    tk_upload *up = NULL;
    krb5_data der;
    tk_store_result res;

    if (db->cfg.replica) {
        krb5_set_error_message(ctx, tk_reason_code(TK_REASON_NOT_PRIMARY),
                               "this KDC is a replica (role = replica): "
                               "uploads go to the primary");
        return set_result(entry, TK_REASON_NOT_PRIMARY, NULL) ? ENOMEM :
            tk_reason_code(TK_REASON_NOT_PRIMARY);
    }
    if (tl->tl_data_length <= TK_UPLOADER_LEN)
        return EINVAL;
    der.data = (char *)tl->tl_data_contents + TK_UPLOADER_LEN;
    der.length = tl->tl_data_length - TK_UPLOADER_LEN;
    ret = tk_decode_upload(ctx, &der, &up);
    if (ret)
        return ret;
    memset(&res, 0, sizeof(res));
    ret = get_writer(ctx, db, &writer);
    if (ret == 0) {
        ret = tk_db_store_upload(writer, ctx, &db->cfg.policy, entry->princ,
                                 up, tl->tl_data_contents, &res);
        relay(ctx, writer, ret);
    }
    if (ret == 0 && res.switched)
        log_switch(ctx, entry->princ, &res);
    if (ret == 0 && res.checked && !res.fetched) {
        tk_repair_remember(ctx, &db->acked, entry->princ, &up,
                           tl->tl_data_contents, time(NULL));
    }
    tk_upload_free(up);
    ret = report_outcome(ctx, entry, &res, ret);
    tk_store_result_clear(&res);
    return ret;
}

/* Check and store entry in the backing module. */
static krb5_error_code
put_checked(krb5_context ctx, tk_db *db, krb5_db_entry *entry,
            char **db_args)
{
    krb5_error_code ret;

    ret = tk_entry_check_put(ctx, entry);
    if (ret)
        return ret;
    ret = attach_db_args(entry, db_args);
    if (ret)
        return ret;
    return relay(ctx, db->inner, krb5_db_put_principal(db->inner, entry));
}

typedef struct {
    krb5_context ctx;
    tk_db *db;
    char **db_args;
} put_call;

static krb5_error_code
put_call_fn(krb5_db_entry *entry, void *arg)
{
    put_call *call = arg;

    return put_checked(call->ctx, call->db, entry, call->db_args);
}

static krb5_error_code
tk_put_principal(krb5_context ctx, krb5_db_entry *entry, char **db_args)
{
    put_call call;

    GET_DB(ctx, db);
    if (db->kdc && tk_entry_find_tl(entry, TK_TL_UPLOAD) != NULL)
        return store_upload(ctx, db, entry);
    if (db->kdc && tk_entry_find_tl(entry, TK_TL_FETCH) != NULL)
        return fetch_keys(ctx, db, entry);
    /* The module's own writes decided on a fresh entry already. */
    if (db->own_writer || tk_entry_find_tl(entry, TK_TL_META) == NULL)
        return put_checked(ctx, db, entry, db_args);
    /*
     * A writer's copy of temporary keys may be older than the stored ones
     * (kadmind does not lock between its get and put).  Without an update
     * log the stored keys win over the copy's; on an iprop primary a merge
     * would store something other than what libkdb5 has already logged and
     * the replicas would diverge, so the copy is refused and the writer
     * retries.  A replica (not logged) merges too: libkdb5 logs a write
     * after storing it, so an upload stored between an administrator's put
     * and its log entry is logged first, and the replica then replays the
     * administrator's older copy of the records after it; keeping the
     * newer key state ends with what the primary stored.  Any other change
     * of a managed principal's key state by such a writer is refused.
     * Compared under the lock that uploads take, or checked where there is
     * none (tk_db_put_foreign, tk_entry_check_foreign).
     */
    call.ctx = ctx;
    call.db = db;
    call.db_args = db_args;
    return tk_db_put_foreign(ctx, db->inner, entry,
                             db->cfg.replica ? TK_FOREIGN_REPLICA :
                             db->cfg.logged ? TK_FOREIGN_LOGGED :
                             TK_FOREIGN_UNLOGGED, put_call_fn, &call);
}

static krb5_error_code
tk_delete_principal(krb5_context ctx, krb5_const_principal search_for)
{
    GET_DB(ctx, db);
    return relay(ctx, db->inner,
                 krb5_db_delete_principal(db->inner,
                                          (krb5_principal)search_for));
}

static krb5_error_code
tk_iterate(krb5_context ctx, char *match_entry,
           int (*func)(krb5_pointer, krb5_db_entry *), krb5_pointer func_arg,
           krb5_flags iterflags)
{
    GET_DB(ctx, db);
    return relay(ctx, db->inner, krb5_db_iterate(db->inner, match_entry, func,
                                                 func_arg, iterflags));
}

static krb5_error_code
tk_create_policy(krb5_context ctx, osa_policy_ent_t policy)
{
    GET_DB(ctx, db);
    return relay(ctx, db->inner, krb5_db_create_policy(db->inner, policy));
}

static krb5_error_code
tk_get_policy(krb5_context ctx, char *name, osa_policy_ent_t *policy)
{
    GET_DB(ctx, db);
    return relay(ctx, db->inner, krb5_db_get_policy(db->inner, name, policy));
}

static krb5_error_code
tk_put_policy(krb5_context ctx, osa_policy_ent_t policy)
{
    GET_DB(ctx, db);
    return relay(ctx, db->inner, krb5_db_put_policy(db->inner, policy));
}

static krb5_error_code
tk_iter_policy(krb5_context ctx, char *match_entry,
               osa_adb_iter_policy_func func, void *data)
{
    GET_DB(ctx, db);
    return relay(ctx, db->inner,
                 krb5_db_iter_policy(db->inner, match_entry, func, data));
}

static krb5_error_code
tk_delete_policy(krb5_context ctx, char *policy)
{
    GET_DB(ctx, db);
    return relay(ctx, db->inner, krb5_db_delete_policy(db->inner, policy));
}

static krb5_error_code
tk_check_transited_realms(krb5_context ctx, const krb5_data *tr_contents,
                          const krb5_data *client_realm,
                          const krb5_data *server_realm)
{
    GET_DB(ctx, db);
    return relay(ctx, db->inner,
                 krb5_db_check_transited_realms(db->inner, tr_contents,
                                                client_realm, server_realm));
}

/* Whether request carries nothing but what a tempkey upload (or the round
 * that asks for one) carries.  PKINIT, S4U2Self's PA-TGS-REQ or any other
 * mechanism make it another exchange. */
static krb5_boolean
is_upload_exchange(const krb5_kdc_req *request)
{
    krb5_pa_data **pa;

    for (pa = request->padata; pa != NULL && *pa != NULL; pa++) {
        switch ((*pa)->pa_type) {
        case TK_PADATA:
        case KRB5_PADATA_FX_COOKIE:
        case KRB5_PADATA_AS_FRESHNESS:
        case KRB5_ENCPADATA_REQ_ENC_PA_REP:
        case KRB5_PADATA_PAC_REQUEST:
        case KRB5_PADATA_PAC_OPTIONS:
            continue;
        default:
            return FALSE;
        }
    }
    return TRUE;
}

/* Whether client is a managed entry without a live key, as the KDC sees it;
 * *enrolling_out says whether it is the in-memory entry of a name that may
 * enroll (not a principal yet). */
static krb5_boolean
is_keyless_managed(krb5_context ctx, krb5_db_entry *client,
                   krb5_boolean *enrolling_out)
{
    krb5_boolean managed = FALSE;
    char *value = NULL;

    *enrolling_out = FALSE;
    if (client == NULL || client->n_key_data > 0 ||
        tk_entry_is_managed(ctx, client, &managed) != 0 || !managed)
        return FALSE;
    if (krb5_dbe_get_string(ctx, client, TK_ATTR_MANAGED, &value) == 0 &&
        value != NULL && strcmp(value, TK_ATTR_ENROLLING) == 0)
        *enrolling_out = TRUE;
    krb5_dbe_free_string(ctx, value);
    return TRUE;
}

/*
 * A managed client without a live key (the in-memory entry of a name that
 * may enroll is one) exists for the upload exchange only: it must not log
 * in by PKINIT or be impersonated by S4U2Self.  Such an entry has no key,
 * so no other mechanism can succeed on it anyway, but a certificate can,
 * and S4U2Self needs none.  The KDC runs check_policy_as for a local
 * S4U2Self client too, with the TGS request (validate_as_request from
 * check_tgs_s4u2self); it carries PA-FOR-USER or PA-S4U-X509-USER, so it
 * is never an upload exchange.
 */
static krb5_error_code
check_keyless_client(krb5_context ctx, krb5_kdc_req *request,
                     krb5_db_entry *client, const char **status)
{
    krb5_boolean enrolling, s4u = request->msg_type == KRB5_TGS_REQ;

    if (!is_keyless_managed(ctx, client, &enrolling) ||
        is_upload_exchange(request))
        return 0;
    if (enrolling) {
        /* Not a principal yet: as if the name were unknown. */
        *status = s4u ? "CLIENT_NOT_FOUND (tempkey: an enrolling name "
            "cannot be impersonated by S4U2Self)" :
            "CLIENT_NOT_FOUND (tempkey: an enrolling name is only for the "
            "upload exchange)";
        return KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN;
    }
    *status = s4u ? "tempkey: no live temporary key; no S4U2Self for it" :
        "tempkey: no live temporary key; only an upload is accepted";
    return KRB5KDC_ERR_POLICY;
}

static krb5_error_code
tk_check_policy_as(krb5_context ctx, krb5_kdc_req *request,
                   krb5_db_entry *client, krb5_db_entry *server,
                   krb5_timestamp kdc_time, const char **status,
                   krb5_pa_data ***e_data)
{
    krb5_error_code ret;

    GET_DB(ctx, db);
    if (db->kdc) {
        ret = check_keyless_client(ctx, request, client, status);
        if (ret)
            return ret;
    }
    return relay(ctx, db->inner,
                 krb5_db_check_policy_as(db->inner, request, client, server,
                                         kdc_time, status, e_data));
}

static krb5_error_code
tk_check_policy_tgs(krb5_context ctx, krb5_kdc_req *request,
                    krb5_db_entry *server, krb5_ticket *ticket,
                    const char **status, krb5_pa_data ***e_data)
{
    GET_DB(ctx, db);
    return relay(ctx, db->inner,
                 krb5_db_check_policy_tgs(db->inner, request, server, ticket,
                                          status, e_data));
}

typedef struct {
    krb5_context inner;
    krb5_kdc_req *request;
    const krb5_address *local_addr, *remote_addr;
    krb5_db_entry *server;
    krb5_timestamp authtime;
    krb5_error_code error_code;
} audit_call;

static void
audit_fresh(krb5_db_entry *fresh, void *arg)
{
    audit_call *a = arg;

    krb5_db_audit_as_req(a->inner, a->request, a->local_addr,
                         a->remote_addr, fresh, a->server, a->authtime,
                         a->error_code);
}

/* The backing module may write back the client entry (lockout, last
 * success), so a rewritten managed entry is replaced by a fresh raw one. */
static void
tk_audit_as_req(krb5_context ctx, krb5_kdc_req *request,
                const krb5_address *local_addr,
                const krb5_address *remote_addr, krb5_db_entry *client,
                krb5_db_entry *server, krb5_timestamp authtime,
                krb5_error_code error_code)
{
    tk_db *db = get_db(ctx);
    krb5_boolean managed = FALSE, enrolling;
    audit_call a;

    if (db == NULL)
        return;
    /* An adopting client's entry is our view too (adopting_view), and its
     * first upload may have replaced it since. */
    if (!db->kdc || client == NULL ||
        tk_entry_is_managed(ctx, client, &managed) != 0 ||
        (!managed && !tk_entry_is_adopting(client))) {
        krb5_db_audit_as_req(db->inner, request, local_addr, remote_addr,
                             client, server, authtime, error_code);
        return;
    }
    /* A name that may enroll, answered from the in-memory entry: nothing
     * is stored to audit, and the backing module must not store that
     * entry.  Anyone can send such requests for any number of names, so
     * they take no lock either.  Only a stored upload succeeds (the entry
     * exists then, and is audited below). */
    if (error_code != 0 && is_keyless_managed(ctx, client, &enrolling) &&
        enrolling)
        return;
    /* MIT's backing modules (db2, klmdb, kldap) write back only a success
     * or a failed preauthentication (lockout): any other outcome, such as
     * the PREAUTH_REQUIRED that anyone can get for a stored service, has
     * nothing to audit and takes no lock. */
    if (error_code != 0 && error_code != KRB5KDC_ERR_PREAUTH_FAILED &&
        error_code != KRB5KRB_AP_ERR_BAD_INTEGRITY)
        return;
    /* Under the lock uploads take, so that an upload stored by another
     * worker between the fetch and the write-back is not undone (see
     * tk_db_audit for a backing module without one). */
    a.inner = db->inner;
    a.request = request;
    a.local_addr = local_addr;
    a.remote_addr = remote_addr;
    a.server = server;
    a.authtime = authtime;
    a.error_code = error_code;
    tk_db_audit(db->inner, client->princ, audit_fresh, &a);
}

/* krb5kdc calls this on SIGHUP, which the KDC's timers send: its
 * housekeeping tick. */
static void
tk_refresh_config(krb5_context ctx)
{
    tk_db *db = get_db(ctx);

    if (db == NULL)
        return;
    krb5_db_refresh_config(db->inner);
    sync_ratchet(ctx, db);
    if (!db->kdc || db->cfg.replica || !purge_due(db))
        return;
    /* Uploads were remembered only if stored through db->writer. */
    if (db->acked != NULL) {
        tk_repair_check(ctx, db->writer, &db->cfg.policy, db->acked,
                        time(NULL), db->cfg.settle_time);
    }
    tk_housekeeping_tick(ctx, &db->cfg, db->db_args, &db->housekeeper);
}

/*
 * S4U2Proxy: client is the evidence ticket's, which can outlive what the
 * client was when it was issued: a managed principal revoked since, or
 * one deleted since whose name may enroll (the KDC's client lookup now
 * answers with the in-memory entry).  Nobody may act for either.  A name
 * with no entry at all keeps MIT's rule: the KDC does not look it up.
 */
static krb5_error_code
check_evidence_client(krb5_context ctx, krb5_const_principal client)
{
    krb5_error_code ret;
    krb5_db_entry *entry = NULL;
    krb5_boolean enrolling;
    char *name = NULL;

    ret = tk_get_principal(ctx, client, KRB5_KDB_FLAG_CLIENT, &entry);
    if (ret == KRB5_KDB_NOENTRY)
        return 0;
    if (ret)
        return ret;
    if (is_keyless_managed(ctx, entry, &enrolling)) {
        /* Not KDC_ERR_BADOPTION, after which the KDC would try
         * resource-based delegation.  Its TGS_REQ line ends with this
         * message. */
        ret = KRB5KDC_ERR_POLICY;
        if (krb5_unparse_name(ctx, client, &name) != 0)
            name = NULL;
        krb5_set_error_message(ctx, ret, "tempkey: %s %s: no S4U2Proxy on "
                               "its behalf", name ? name : "(unprintable)",
                               enrolling ? "is an enrolling name, not a "
                               "principal" : "has no live temporary key");
        krb5_free_unparsed_name(ctx, name);
    }
    krb5_db_free_principal(ctx, entry);
    return ret;
}

/*
 * The KDC asks this first on every S4U2Proxy request whose target is named
 * in the impersonator's realm, as an initial request always is, whatever
 * the backing module can answer: also one it then answers with a referral
 * to another realm, where it asks nothing else.  Without a client it asks
 * whether server may delegate at all (s4u2self_forwardable).
 */
static krb5_error_code
tk_check_allowed_to_delegate(krb5_context ctx, krb5_const_principal client,
                             const krb5_db_entry *server,
                             krb5_const_principal proxy)
{
    krb5_error_code ret;

    GET_DB(ctx, db);
    if (db->kdc && client != NULL) {
        ret = check_evidence_client(ctx, client);
        if (ret)
            return ret;
    }
    return relay(ctx, db->inner,
                 krb5_db_check_allowed_to_delegate(db->inner, client, server,
                                                   proxy));
}

/* The backing module frees its own e_data; hand it over in an empty entry. */
static void
tk_free_principal_e_data(krb5_context ctx, krb5_octet *e_data)
{
    tk_db *db = get_db(ctx);
    krb5_db_entry *shell;

    if (db == NULL || e_data == NULL)
        return;
    shell = calloc(1, sizeof(*shell));
    if (shell == NULL)
        return;
    shell->e_data = e_data;
    krb5_db_free_principal(db->inner, shell);
}

static krb5_error_code
tk_get_s4u_x509_principal(krb5_context ctx, const krb5_data *client_cert,
                          krb5_const_principal in_princ, unsigned int flags,
                          krb5_db_entry **entry_out)
{
    krb5_error_code ret;
    krb5_db_entry *entry = NULL;

    GET_DB(ctx, db);
    ret = krb5_db_get_s4u_x509_principal(db->inner, client_cert, in_princ,
                                         flags, &entry);
    if (ret)
        return relay(ctx, db->inner, ret);
    if (db->kdc) {
        ret = kdc_view(ctx, db, entry, flags | KRB5_KDB_FLAG_CLIENT);
        if (ret) {
            krb5_db_free_principal(ctx, entry);
            return ret;
        }
    }
    *entry_out = entry;
    return 0;
}

static krb5_error_code
tk_allowed_to_delegate_from(krb5_context ctx, krb5_const_principal client,
                            krb5_const_principal server, krb5_pac server_pac,
                            const krb5_db_entry *proxy)
{
    krb5_error_code ret;

    GET_DB(ctx, db);
    ret = relay(ctx, db->inner,
                krb5_db_allowed_to_delegate_from(db->inner, client, server,
                                                 server_pac, proxy));
    /* The final request of a cross-realm delegation, whose evidence client
     * comes from the PAC. */
    if (ret == 0 && db->kdc)
        ret = check_evidence_client(ctx, client);
    return ret;
}

static krb5_error_code
tk_issue_pac(krb5_context ctx, unsigned int flags, krb5_db_entry *client,
             krb5_keyblock *replaced_reply_key, krb5_db_entry *server,
             krb5_db_entry *signing_krbtgt, krb5_timestamp authtime,
             krb5_pac old_pac, krb5_pac new_pac, krb5_data ***auth_indicators)
{
    GET_DB(ctx, db);
    return relay(ctx, db->inner,
                 krb5_db_issue_pac(db->inner, flags, client,
                                   replaced_reply_key, server, signing_krbtgt,
                                   authtime, old_pac, new_pac,
                                   auth_indicators));
}

/* ---- The KDC's ticks: removing expired keys, advancing the ratchet. */
/*
 * db2 serializes its calls with a process-wide mutex and waits for file
 * locks while holding it, so a second thread using the database would
 * deadlock against an upload, which holds the database lock across calls;
 * and any second thread makes glibc lock its allocator on every call, which
 * costs the KDC a few percent.  So there is no thread: POSIX timers send
 * SIGHUP to the process, which krb5kdc's main loop turns into
 * refresh_config on each realm (it also reopens its log files).  One timer
 * ticks every purge_interval (a primary's purge pass, which runs in a
 * child process: housekeeping.c); the other at the start of every ratchet
 * epoch (wall clock), so that the ratchet file steps on time even when no
 * request comes.
 */

struct purger {
    timer_t purge_timer, epoch_timer;
    krb5_boolean has_purge_timer, has_epoch_timer;
};

/* How long after its expiry a timer's SIGHUP can still be taken for that
 * timer's: krb5kdc handles a signal once the request in hand is done. */
#define TICK_SLACK_MS 250

/* Whether timer (of period interval seconds) expired in the last
 * TICK_SLACK_MS (a quarter period for short periods). */
static krb5_boolean
just_fired(timer_t timer, int64_t interval)
{
    struct itimerspec cur;
    int64_t left_ms, since_ms, slack_ms = interval * 1000 / 4;

    if (timer_gettime(timer, &cur) != 0)
        return FALSE;
    left_ms = (int64_t)cur.it_value.tv_sec * 1000 +
        cur.it_value.tv_nsec / 1000000;
    since_ms = interval * 1000 - left_ms;
    if (slack_ms > TICK_SLACK_MS)
        slack_ms = TICK_SLACK_MS;
    return since_ms >= 0 && since_ms <= slack_ms;
}

/* Whether this SIGHUP asks for a purge: the purge timer's and an
 * administrator's do, the epoch timer's does not.  Told apart by which
 * timer has just expired, on the clock: whether the ratchet stepped says
 * nothing, since under load a request steps it before the signal is
 * handled. */
static krb5_boolean
purge_due(tk_db *db)
{
    purger *p = db->purger;

    if (p == NULL)
        return TRUE;
    if (p->has_purge_timer &&
        just_fired(p->purge_timer, db->cfg.purge_interval))
        return TRUE;
    return !(p->has_epoch_timer &&
             just_fired(p->epoch_timer, db->cfg.key_epoch));
}

/* A phase in [0, interval) seconds, in milliseconds, from name. */
static int64_t
phase_of(const char *name, int64_t interval)
{
    uint32_t h = 2166136261u;

    for (; *name != '\0'; name++)
        h = (h ^ (unsigned char)*name) * 16777619u;         /* FNV-1a */
    return (int64_t)(h % (uint32_t)(interval * 1000));
}

/* The first instant after now that is phase_ms past a multiple of
 * interval. */
static struct timespec
next_tick(int64_t interval, int64_t phase_ms)
{
    struct timespec now, t;
    int64_t ms, period = interval * 1000, next;

    clock_gettime(CLOCK_REALTIME, &now);
    ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    next = (ms - phase_ms) / period * period + period + phase_ms;
    t.tv_sec = next / 1000;
    t.tv_nsec = (next % 1000) * 1000000;
    return t;
}

static krb5_error_code
make_timer(krb5_context ctx, clockid_t clock, int flags,
           const struct itimerspec *its, timer_t *out)
{
    struct sigevent sev;

    memset(&sev, 0, sizeof(sev));
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGHUP;
    if (timer_create(clock, &sev, out) != 0) {
        krb5_set_error_message(ctx, errno, "tempkey: cannot create a "
                               "timer: %s", strerror(errno));
        return errno;
    }
    if (timer_settime(*out, flags, its, NULL) != 0) {
        timer_delete(*out);
        krb5_set_error_message(ctx, errno, "tempkey: cannot start a "
                               "timer: %s", strerror(errno));
        return errno;
    }
    return 0;
}

/* Arm the periodic SIGHUPs for this process, but only once krb5kdc has its
 * handler installed: a SIGHUP without it would end the process.  (krb5kdc
 * opens the database once before installing handlers, then again.) */
static krb5_error_code
purger_start(krb5_context ctx, tk_db *db, purger **out)
{
    krb5_error_code ret;
    struct sigaction sa;
    struct itimerspec its;
    purger *p;
    int64_t step = db->cfg.key_epoch;

    *out = NULL;
    if (sigaction(SIGHUP, NULL, &sa) != 0 || sa.sa_handler == SIG_DFL ||
        sa.sa_handler == SIG_IGN)
        return 0;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return ENOMEM;
    /* A replica learns of purges from the primary's update log. */
    if (!db->cfg.replica && db->cfg.purge_interval > 0) {
        /* On the wall clock, at multiples of the interval shifted by a
         * phase of the database's name: every -w worker of this KDC ticks
         * at the same instants, so one pass serves them all, while KDCs
         * over one LDAP directory (other names) do not all write at
         * once. */
        memset(&its, 0, sizeof(its));
        its.it_value = next_tick(db->cfg.purge_interval,
                                 phase_of(db->cfg.db_base,
                                          db->cfg.purge_interval));
        its.it_interval.tv_sec = db->cfg.purge_interval;
        ret = make_timer(ctx, CLOCK_REALTIME, TIMER_ABSTIME, &its,
                         &p->purge_timer);
        if (ret)
            goto fail;
        p->has_purge_timer = TRUE;
    }
    memset(&its, 0, sizeof(its));
    its.it_value.tv_sec = (time(NULL) / step + 1) * step;
    its.it_interval.tv_sec = step;
    ret = make_timer(ctx, CLOCK_REALTIME, TIMER_ABSTIME, &its,
                     &p->epoch_timer);
    if (ret)
        goto fail;
    p->has_epoch_timer = TRUE;
    *out = p;
    return 0;

fail:
    purger_stop(p);
    return ret;
}

static void
purger_stop(purger *p)
{
    if (p == NULL)
        return;
    if (p->has_purge_timer)
        timer_delete(p->purge_timer);
    if (p->has_epoch_timer)
        timer_delete(p->epoch_timer);
    free(p);
}

/* ---- Temporary keys at rest: the ratchet (DESIGN 10, lib/ratchet.c). */
/*
 * libkdb5 decrypts and encrypts every key through these two methods, on
 * this context: the KDC, kadmind (ktadd -norandkey), kdb5_util
 * (update_princ_encryption, dump -mkey_convert) and the module's own
 * stores.  A wrapped key's salt is its ratchet marker, which libkdb5 hands
 * back when it re-encrypts a key, so a key stays wrapped under its epoch
 * through a master key change.  Keys stored before the ratchet have no
 * marker and pass through unchanged until their principal's next store.
 */

static void
log_ratchet_notice(tk_db *db)
{
    const char *notice = tk_ratchet_notice(db->ratchet);

    if (notice != NULL)
        com_err("tempkey", 0, "%s", notice);
}

/* Step the ratchet to the clock.  A file that cannot be written is logged
 * and the process goes on: it has stepped in memory all the same. */
static void
sync_ratchet(krb5_context ctx, tk_db *db)
{
    krb5_error_code ret;
    const char *msg;

    struct timespec now;

    /* Not time(): at the epoch timer's tick, a whole second, its coarse
     * clock may still say the second before, and the step would wait a
     * whole epoch. */
    clock_gettime(CLOCK_REALTIME, &now);
    ret = tk_ratchet_sync(ctx, db->ratchet, now.tv_sec);
    log_ratchet_notice(db);
    if (ret) {
        msg = krb5_get_error_message(ctx, ret);
        com_err("tempkey", 0, "cannot advance the ratchet: %s", msg);
        krb5_free_error_message(ctx, msg);
    }
}

/* The marker of a wrapped key, or NULL. */
static const krb5_data *
wrap_marker(const krb5_key_data *kd, krb5_data *buf)
{
    if (kd->key_data_ver < 2 ||
        kd->key_data_type[1] != KRB5_KDB_SALTTYPE_SPECIAL)
        return NULL;
    buf->length = kd->key_data_length[1];
    buf->data = (char *)kd->key_data_contents[1];
    return tk_ratchet_parse_marker(buf, NULL, NULL) ? buf : NULL;
}

static krb5_error_code
tk_decrypt_key_data(krb5_context ctx, const krb5_keyblock *mkey,
                    const krb5_key_data *kd, krb5_keyblock *dbkey,
                    krb5_keysalt *keysalt)
{
    krb5_error_code ret;
    krb5_keyblock wrapped;
    krb5_keysalt salt;
    krb5_data buf;
    const krb5_data *marker = wrap_marker(kd, &buf);
    tk_db *db = get_db(ctx);

    if (marker == NULL)
        return krb5_dbe_def_decrypt_key_data(ctx, mkey, kd, dbkey, keysalt);
    memset(dbkey, 0, sizeof(*dbkey));
    if (keysalt != NULL)
        memset(keysalt, 0, sizeof(*keysalt));
    if (db == NULL)
        return KRB5_KDB_DBNOTINITED;
    ret = krb5_dbe_def_decrypt_key_data(ctx, mkey, kd, &wrapped, &salt);
    if (ret)
        return ret;
    sync_ratchet(ctx, db);
    ret = tk_ratchet_unwrap(ctx, db->ratchet, marker, kd->key_data_kvno,
                            &wrapped, dbkey);
    krb5_free_keyblock_contents(ctx, &wrapped);
    if (ret == 0 && keysalt != NULL)
        *keysalt = salt;
    else
        free(salt.data.data);
    return ret;
}

static krb5_error_code
tk_encrypt_key_data(krb5_context ctx, const krb5_keyblock *mkey,
                    const krb5_keyblock *dbkey, const krb5_keysalt *keysalt,
                    int keyver, krb5_key_data *kd)
{
    krb5_error_code ret;
    krb5_keyblock wrapped;
    krb5_keysalt marked;
    unsigned char marker[TK_RATCHET_MARKER_LEN];
    int64_t expiry;
    krb5_boolean is_request;
    tk_db *db = get_db(ctx);

    if (keysalt == NULL || keysalt->type != KRB5_KDB_SALTTYPE_SPECIAL)
        return krb5_dbe_def_encrypt_key_data(ctx, mkey, dbkey, keysalt,
                                             keyver, kd);
    marked = *keysalt;
    is_request = tk_ratchet_parse_request(&keysalt->data, &expiry);
    if (!is_request && !tk_ratchet_parse_marker(&keysalt->data, NULL, NULL))
        return krb5_dbe_def_encrypt_key_data(ctx, mkey, dbkey, keysalt,
                                             keyver, kd);
    if (db == NULL)
        return KRB5_KDB_DBNOTINITED;
    sync_ratchet(ctx, db);
    if (is_request) {
        ret = tk_ratchet_marker(ctx, db->ratchet, expiry, marker);
        if (ret)
            return ret;
        marked.data.data = (char *)marker;
        marked.data.length = sizeof(marker);
    }
    ret = tk_ratchet_wrap(ctx, db->ratchet, &marked.data, keyver, dbkey,
                          &wrapped);
    if (ret)
        return ret;
    ret = krb5_dbe_def_encrypt_key_data(ctx, mkey, &wrapped, &marked, keyver,
                                        kd);
    krb5_free_keyblock_contents(ctx, &wrapped);
    return ret;
}

/* Drop the KDC's copies of keys the ratchet cannot open (they were wrapped
 * under a lost ratchet, or their epoch is over): they are as good as
 * expired.  The first time a lost ratchet shows, say so. */
static void
drop_unreadable_keys(krb5_context ctx, tk_db *db, krb5_db_entry *entry)
{
    krb5_data buf;
    const krb5_data *marker;
    unsigned char id[TK_RATCHET_ID_LEN];
    char *name = NULL;
    int i, out = 0;

    for (i = 0; i < entry->n_key_data; i++) {
        krb5_key_data *kd = &entry->key_data[i];

        marker = wrap_marker(kd, &buf);
        if (marker == NULL || tk_ratchet_readable(db->ratchet, marker)) {
            entry->key_data[out++] = *kd;
            continue;
        }
        (void)tk_ratchet_parse_marker(marker, id, NULL);
        if (!db->told_lost && memcmp(id, tk_ratchet_id(db->ratchet),
                                     TK_RATCHET_ID_LEN) != 0 &&
            krb5_unparse_name(ctx, entry->princ, &name) == 0) {
            com_err("tempkey", 0, "temporary keys of %s (and maybe others) "
                    "were wrapped under another ratchet than %s's (the "
                    "file was lost or replaced): they are treated as "
                    "absent until each service uploads again", name,
                    tk_ratchet_path(db->ratchet));
            krb5_free_unparsed_name(ctx, name);
            db->told_lost = TRUE;
        }
        krb5_dbe_free_key_data_contents(ctx, kd);
    }
    entry->n_key_data = (krb5_int16)out;
}

/* ---- The entry point. */

kdb_vftabl kdb_function_table = {
    .maj_ver = KRB5_KDB_DAL_MAJOR_VERSION,
    .min_ver = 0,
    .init_library = tk_init_library,
    .fini_library = tk_fini_library,
    .init_module = tk_init_module,
    .fini_module = tk_fini_module,
    .create = tk_create,
    .destroy = tk_destroy,
    .lock = tk_lock,
    .unlock = tk_unlock,
    .get_principal = tk_get_principal,
    .put_principal = tk_put_principal,
    .delete_principal = tk_delete_principal,
    /* rename_principal: libkdb5's default (get, put, delete) runs through
     * the methods above and keeps the update log working. */
    .iterate = tk_iterate,
    .create_policy = tk_create_policy,
    .get_policy = tk_get_policy,
    .put_policy = tk_put_policy,
    .iter_policy = tk_iter_policy,
    .delete_policy = tk_delete_policy,
    /* Master keys and password changes: libkdb5's defaults on this
     * context, which reach the backing store through the methods above;
     * key encryption: theirs with the ratchet's wrapping inside. */
    .decrypt_key_data = tk_decrypt_key_data,
    .encrypt_key_data = tk_encrypt_key_data,
    .promote_db = tk_promote_db,
    .check_transited_realms = tk_check_transited_realms,
    .check_policy_as = tk_check_policy_as,
    .check_policy_tgs = tk_check_policy_tgs,
    .audit_as_req = tk_audit_as_req,
    .refresh_config = tk_refresh_config,
    .check_allowed_to_delegate = tk_check_allowed_to_delegate,
    .free_principal_e_data = tk_free_principal_e_data,
    .get_s4u_x509_principal = tk_get_s4u_x509_principal,
    .allowed_to_delegate_from = tk_allowed_to_delegate_from,
    .issue_pac = tk_issue_pac,
};
