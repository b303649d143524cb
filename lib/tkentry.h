/* tkentry.h - rules for managed principal entries (KDC-host side, libkdb5). */
#ifndef TKENTRY_H
#define TKENTRY_H

#include <kdb.h>
#include "tempkey.h"

/* The first tl_data of type in entry, or NULL. */
krb5_tl_data *tk_entry_find_tl(krb5_db_entry *entry, krb5_int16 type);
/* Whether kldap keeps tl_data of this type in an attribute of its own,
 * rather than in the krbExtraData that every write replaces. */
krb5_boolean tk_tl_kept_apart(krb5_int16 type);
/* Remove the string attribute key, and the string-attribute record if that
 * leaves it empty (and kldap still writes krbExtraData without it): an
 * attribute set and then unset leaves the entry as it was. */
krb5_error_code tk_entry_unset_string(krb5_context ctx, krb5_db_entry *entry,
                                      const char *key);
/* Whether two copies of an entry hold the same key state: the same records
 * and the same keys (in any order, since kldap does not sort; the same key
 * under another master key counts as the same, which ctx's master keys
 * show). */
krb5_boolean tk_entry_same_key_state(krb5_context ctx, krb5_db_entry *entry,
                                     krb5_db_entry *stored);

/* Set *out to whether entry carries the tempkey string attribute. */
krb5_error_code tk_entry_is_managed(krb5_context ctx, krb5_db_entry *entry,
                                    krb5_boolean *out);
/* Whether entry is marked for adoption (TK_ATTR_ADOPT) and not managed:
 * until its first accepted upload it is an ordinary principal, served with
 * its long-term keys as MIT serves them. */
krb5_boolean tk_entry_is_adopting(krb5_db_entry *entry);
/* Decode the entry's metadata into *meta_out, or set it to NULL if the entry
 * has none.  A corrupt record is an error whose message names the
 * principal. */
krb5_error_code tk_entry_get_meta(krb5_context ctx, krb5_db_entry *entry,
                                  tk_meta **meta_out);
/* Store meta in the entry's tl_data, advancing its generation. */
krb5_error_code tk_entry_set_meta(krb5_context ctx, krb5_db_entry *entry,
                                  tk_meta *meta);

/*
 * Before storing entry for a writer that does not own the key records
 * (kadmind, kadmin.local, kdb5_util load -update): if the stored copy's
 * records are of a later generation, the writer read them before a
 * temporary-key change and would undo it.
 *
 * Without an update log, take the stored keys and records instead, keeping
 * the writer's other changes.
 */
krb5_error_code tk_entry_keep_newer_keys(krb5_context ctx,
                                         krb5_db_entry *entry,
                                         krb5_db_entry *stored);
/*
 * On an iprop primary libkdb5 has already logged the entry as given, so a
 * merge would make the replicas diverge: refuse the stale copy with
 * KRB5_KDB_DB_CHANGED and a message asking to retry.
 */
krb5_error_code tk_entry_check_current(krb5_context ctx,
                                       krb5_db_entry *entry,
                                       krb5_db_entry *stored);

/*
 * Rewrite a managed entry into what the KDC may use at now: only keys whose
 * record is live remain.  For a server lookup the entry must keep at least
 * one key; its ticket lifetimes are capped at the newest key's expiry and
 * postdated tickets are refused.  Errors carry a message naming the
 * principal and, where there is no live key, when the last one ended.
 */
krb5_error_code tk_entry_kdc_view(krb5_context ctx, krb5_db_entry *entry,
                                  int64_t now, krb5_boolean server_lookup);
/* The same with the entry's records already decoded (NULL if it has
 * none). */
krb5_error_code tk_entry_kdc_view_meta(krb5_context ctx,
                                       krb5_db_entry *entry,
                                       const tk_meta *meta, int64_t now,
                                       krb5_boolean server_lookup);

/* Refuse an entry that no write may store: a managed principal holding a key
 * without a temporary-key record (a long-term key), or an unmanaged one still
 * holding temporary keys. */
krb5_error_code tk_entry_check_put(krb5_context ctx, krb5_db_entry *entry);

/* Remove the keys of kvno (all kvnos if kvno is 0) and their records;
 * *removed_out counts the key versions removed.  Revoking all keys also
 * repairs an unreadable record. */
krb5_error_code tk_entry_revoke(krb5_context ctx, krb5_db_entry *entry,
                                krb5_kvno kvno, int64_t now,
                                size_t *removed_out);
/* Remove the keys and records that have expired at now. */
krb5_error_code tk_entry_purge(krb5_context ctx, krb5_db_entry *entry,
                               int64_t now, size_t *removed_out);

/*
 * The active master key of princ's realm (an alias into ctx's master key
 * list, which must be loaded), as the master key entry read through reader
 * (ctx, or another handle of the same database) names it.  It reads the
 * database: with reader's write lock held, or before taking a write lock
 * on another handle.
 */
krb5_error_code tk_active_mkey(krb5_context ctx, krb5_context reader,
                               krb5_const_principal princ,
                               krb5_kvno *mkvno_out,
                               krb5_keyblock **mkey_out);

/*
 * The cap on live key versions, the one rule for every store of a new
 * version: 0 if meta (NULL: no records) leaves room for one more, else
 * KRB5_KDB_BAD_VERSION with a message.  Records expired at now do not
 * count, for a caller that drops them before the store (an upload); with
 * now 0 every record counts.
 */
krb5_error_code tk_entry_check_room(krb5_context ctx, const tk_meta *meta,
                                    int64_t now);

/*
 * Add keys[0..nkeys-1] at version kvno with the given expiry and uploader
 * fingerprint (NULL for an administrator), encrypted under the master key
 * mkey (version mkvno), and mark the entry managed, within the cap of
 * tk_entry_check_room() (every record held counts).  Existing keys are
 * re-encrypted if they use another master key.  An unmanaged entry holding
 * (long-term) keys is refused with a message saying to adopt it.  Reads no
 * database.  On failure the entry must be discarded.
 */
krb5_error_code tk_entry_add_keys(krb5_context ctx, krb5_db_entry *entry,
                                  krb5_kvno kvno, const krb5_keyblock *keys,
                                  size_t nkeys, int64_t expiry,
                                  const unsigned char *uploader,
                                  krb5_kvno mkvno,
                                  const krb5_keyblock *mkey);
/* The same for a shared principal's key, which the KDC issues no ticket in
 * before active_at (0: at once). */
krb5_error_code tk_entry_add_keys_at(krb5_context ctx, krb5_db_entry *entry,
                                     krb5_kvno kvno,
                                     const krb5_keyblock *keys, size_t nkeys,
                                     int64_t expiry, int64_t active_at,
                                     const unsigned char *uploader,
                                     krb5_kvno mkvno,
                                     const krb5_keyblock *mkey);
/* The delay (seconds) of a shared principal (TK_ATTR_SHARE), 0 if entry
 * is not shared or the attribute does not read as a positive number. */
krb5_deltat tk_entry_share_delay(krb5_context ctx, krb5_db_entry *entry);
/*
 * When a key added to entry at now is used (its active_at): 0 (at once)
 * for a principal that is not shared; for a shared one now plus its delay,
 * or now if it holds no live active key (its first key, or the only live
 * one after a gap: no member can be holding another).  Both are recorded,
 * so that members reckon the next rotation from when a key came into use.
 */
int64_t tk_entry_active_at(krb5_context ctx, krb5_db_entry *entry,
                           int64_t now);

/*
 * Decrypt kd, a key of entry, with the master key entry names, from ctx's
 * list and without reading the database: libkdb5's own fallback reloads
 * the list from the database, which under another handle's exclusive lock
 * would wait for ever (krb5_lock_file takes per-descriptor locks).  A
 * master key missing from the list is KRB5_KDB_NO_MATCHING_KEY: reload it
 * with tk_reload_master_keys() once no lock is held.
 */
krb5_error_code tk_entry_decrypt_key(krb5_context ctx, krb5_db_entry *entry,
                                     const krb5_key_data *kd,
                                     krb5_keyblock *key_out,
                                     krb5_keysalt *salt_out);
/* Reload ctx's master key list from the database (after a master key
 * change by another process).  Takes the database's shared lock. */
krb5_error_code tk_reload_master_keys(krb5_context ctx, const char *realm);

/*
 * The switch of an adopting entry, at its first accepted upload and before
 * that upload's keys are added: its keys go (all long-term; with the old
 * keys of its password history, which are long-term too), it becomes
 * managed with key versions going on above them, and TK_ATTR_ADOPTED
 * notes the highest long-term kvno and until, the time after which no
 * ticket in those keys can end: now plus the longest ticket life the KDC
 * gives it (its max_life, capped at realm_max_life, the realm's).
 * *lt_kvno_out is 0 (and nothing is noted) if it had no key.  Attributes,
 * policy and every other field stay.  Reads no database; on failure
 * discard the entry.
 */
krb5_error_code tk_entry_switch_over(krb5_context ctx, krb5_db_entry *entry,
                                     int64_t now, krb5_deltat realm_max_life,
                                     krb5_kvno *lt_kvno_out,
                                     int64_t *until_out);
/* What the switch noted in entry (TK_ATTR_ADOPTED); *lt_kvno_out is 0 if
 * it was never adopted (or the note is not ours). */
void tk_entry_adoption(krb5_context ctx, krb5_db_entry *entry,
                       krb5_kvno *lt_kvno_out, int64_t *until_out);

/* The highest kvno of entry's keys, 0 if it has none. */
krb5_kvno tk_entry_top_kvno(const krb5_db_entry *entry);
/* The kvno the next key for entry must have. */
krb5_error_code tk_entry_next_kvno(krb5_context ctx, krb5_db_entry *entry,
                                   krb5_kvno *kvno_out);

/* ---- The module's own writers (ulog.c). */

/*
 * Open ctx's database read-write for the module's own writes (uploads,
 * purges, tempkey-admin).  On an iprop primary the update log is mapped
 * first, as kadmind maps it, so that every write reaches the replicas.  A
 * replica (cfg->replica) refuses: only the primary changes key state.
 * db_args (may be NULL) are passed on, as krb5kdc -d/-x gave them.  Close
 * with tk_db_close_for_writes().
 */
krb5_error_code tk_db_open_for_writes(krb5_context ctx, const char *realm,
                                      const tk_config *cfg, char **db_args);
/* The db_arg by which the module knows its own writer contexts; it never
 * reaches the backing module. */
#define TK_WRITER_ARG "tempkey_writer"
void tk_db_close_for_writes(krb5_context ctx);

/* ---- Database writes (dbwrite.c): every one is a get-modify-put on a
 * context opened through the tempkey module, so its checks always apply,
 * under the database lock; where the backing module has none (kldap), a
 * checked write instead: the change is decided on a fresh copy, written
 * only if the entry is unchanged just before the put, with the mask kldap
 * needs, and confirmed in place afterwards, or applied again (at most five
 * tries, then KRB5_KDB_DB_INUSE asking to try again). */

/* Change the entry; set *changed if it must be stored. */
typedef krb5_error_code (*tk_update_fn)(krb5_context ctx,
                                        krb5_db_entry *entry, void *arg,
                                        krb5_boolean *changed);
/* Fetch princ, apply fn, store the entry if fn changed it.  fn may run
 * more than once (on fresh copies) and must decide from the entry alone. */
krb5_error_code tk_db_update(krb5_context ctx, krb5_const_principal princ,
                             tk_update_fn fn, void *arg);

/* The same, except that a missing princ is made first, as an enrollment
 * makes it (no key, pol's entry lifetimes) but marked managed and naming
 * creator as its last modifier, and handed to fn; it is stored only if fn
 * changes it, and *created_out says whether the entry stored was new. */
krb5_error_code tk_db_update_or_create_managed(krb5_context ctx,
                                               const tk_policy *pol,
                                               krb5_const_principal princ,
                                               krb5_const_principal creator,
                                               tk_update_fn fn, void *arg,
                                               krb5_boolean *created_out);

/* Told of each principal a purge touched: removed key versions or an error
 * (whose message is on ctx). */
typedef void (*tk_purge_report_fn)(krb5_context ctx,
                                   krb5_const_principal princ,
                                   size_t removed, krb5_error_code error,
                                   void *arg);
/* Remove every key that has expired at now from every managed principal.
 * Principals with corrupt records are left alone (the KDC refuses them). */
krb5_error_code tk_db_purge_expired(krb5_context ctx, int64_t now,
                                    tk_purge_report_fn report, void *arg);
/* Whether a listing keeps entry. */
typedef krb5_boolean (*tk_principal_filter_fn)(krb5_context ctx,
                                               krb5_db_entry *entry,
                                               void *arg);
/* The names of the principals keep() accepts, from a walk that writes
 * nothing (so that a write per name may follow); free each name and the
 * array. */
krb5_error_code tk_db_list_principals(krb5_context ctx,
                                      tk_principal_filter_fn keep, void *arg,
                                      krb5_principal **names_out,
                                      size_t *count_out);
/* The two steps of a purge: list the managed principals holding a key
 * expired at now (a walk that writes nothing; free each name and the array),
 * and purge one of them (KRB5_KDB_NOENTRY if it is gone). */
krb5_error_code tk_db_list_expired(krb5_context ctx, int64_t now,
                                   krb5_principal **names_out,
                                   size_t *count_out);
krb5_error_code tk_db_purge_one(krb5_context ctx, krb5_const_principal princ,
                                int64_t now, size_t *removed_out);

/* How a store treats a writer that does not own the key records. */
typedef enum {
    TK_FOREIGN_UNLOGGED,        /* a primary without an update log */
    TK_FOREIGN_LOGGED,          /* an iprop primary */
    TK_FOREIGN_REPLICA          /* kpropd replaying the primary's writes */
} tk_foreign_mode;

/*
 * The rule for a writer that does not own the key records (kadmind,
 * kadmin.local, kdb5_util load -update), given the stored copy: on a
 * primary such a writer changes no key state (the keys, their versions,
 * the records).  A stale copy (an upload came between its get and its put)
 * is refused with KRB5_KDB_DB_CHANGED ("retry") where the write is logged,
 * and otherwise takes the stored key state (tk_entry_keep_newer_keys); any
 * other change of key state is refused with KADM5_PROTECT_PRINCIPAL, except
 * the same keys re-encrypted under another master key (kdb5_util
 * update_princ_encryption), which ctx's master keys show.  A replica takes
 * the stored key state of a stale copy and stores every other replay.
 */
krb5_error_code tk_entry_check_foreign(krb5_context ctx,
                                       krb5_db_entry *entry,
                                       krb5_db_entry *stored,
                                       tk_foreign_mode mode);

/*
 * Store entry, from a writer that does not own the key records, by calling
 * put after tk_entry_check_foreign() against the stored copy read from
 * inner (the backing module's context; messages go to ctx).
 */
typedef krb5_error_code (*tk_put_fn)(krb5_db_entry *entry, void *arg);
krb5_error_code tk_db_put_foreign(krb5_context ctx, krb5_context inner,
                                  krb5_db_entry *entry, tk_foreign_mode mode,
                                  tk_put_fn put, void *arg);

/*
 * Call fn with a fresh copy of princ read from ctx (the backing module's
 * context), for the backing module's AS audit to write back.  Under the
 * lock; without one the copy carries no tl_data that kldap keeps in
 * krbExtraData, so the write-back changes only the login counters and
 * never the keys' records (an entry with a require_auth string attribute
 * is then not written back at all).  Errors are not reported: an audit
 * does not fail a request.
 */
typedef void (*tk_audit_fn)(krb5_db_entry *fresh, void *arg);
void tk_db_audit(krb5_context ctx, krb5_const_principal princ,
                 tk_audit_fn fn, void *arg);

/* What became of an upload given to tk_db_store_upload(). */
typedef struct tk_store_result {
    int64_t expiry;             /* the stored expiry (on success) */
    int reason;                 /* a tk_reason on refusal, else 0 */
    krb5_boolean wrote;         /* the keys were written (FALSE: they were
                                 * already stored, a retransmission) */
    krb5_boolean checked;       /* a checked write: the backing module has
                                 * no lock, so replication from another
                                 * provider may still roll it back */
    krb5_boolean switched;      /* this store adopted the principal */
    krb5_kvno long_term_kvno;   /* an adopted principal's (see
                                 * tk_entry_adoption), else 0 */
    int64_t long_term_until;
    /* A shared principal (share_delay > 0): */
    krb5_deltat share_delay;
    krb5_boolean fetched;       /* a key was pending: answered as a fetch,
                                 * nothing stored */
    int64_t active_at;          /* when the stored key is used (0: at
                                 * once) */
    struct tk_held_key *held;   /* every live key version, decrypted */
    size_t nheld;
} tk_store_result;

/* Free what a result holds (zeroing the keys) and clear it. */
void tk_store_result_clear(tk_store_result *res);

/*
 * The keys a member of shared principal princ fetches: every live version,
 * decrypted with keyctx's master keys, read through writer.  Refused (with
 * res_out->reason) as not-shared or no-key-to-fetch.  Clear res_out with
 * tk_store_result_clear().
 */
krb5_error_code tk_db_fetch_held(krb5_context writer, krb5_context keyctx,
                                 krb5_const_principal princ,
                                 tk_store_result *res_out);

/*
 * Store a verified upload for princ, through writer (see above), with keys
 * encrypted under keyctx's active master key: the keys go in at up->kvno
 * with expiry up->expiry, creating the principal if pol lets it enroll.  An
 * identical upload at the newest stored kvno succeeds again without a write
 * (a retransmission).  On refusal res_out->reason is a tk_reason and the
 * message says why.
 */
struct tk_upload;
krb5_error_code tk_db_store_upload(krb5_context writer, krb5_context keyctx,
                                   const tk_policy *pol,
                                   krb5_const_principal princ,
                                   const struct tk_upload *up,
                                   const unsigned char *uploader,
                                   tk_store_result *res_out);
/*
 * The same for an upload acknowledged earlier, to undo a rollback by
 * replication: it writes only if the upload is missing and no later kvno
 * was stored since (refused as kvno-not-above-stored), and never creates
 * the principal (a deleted one is refused as not-enrollable).
 */
krb5_error_code tk_db_store_upload_again(krb5_context writer,
                                         krb5_context keyctx,
                                         const tk_policy *pol,
                                         krb5_const_principal princ,
                                         const struct tk_upload *up,
                                         const unsigned char *uploader,
                                         tk_store_result *res_out);

#endif /* TKENTRY_H */
