/* tempkey.h - shared metadata codec and utilities (OpenSSL, libkrb5). */
#ifndef TEMPKEY_H
#define TEMPKEY_H

#include <stddef.h>
#include <stdint.h>
#include <krb5.h>
#include <profile.h>

#include "tkratchet.h"

/* tl_data type holding a managed principal's metadata (DER, doc/protocol.md).
 * Chosen far from MIT's own types (0x0001-0x0700, 0x7fff). */
#define TK_TL_META 0x7e54
/* String attribute marking a principal whose keys come from tempkey.  The
 * KDC's in-memory entry for a name that may enroll carries the value below. */
#define TK_ATTR_MANAGED "tempkey"
#define TK_ATTR_ENROLLING "enroll"
/* String attribute pinning the SHA-256 of the uploader's public key. */
#define TK_ATTR_SPKI "tempkey_spki"
/* String attribute marking an unmanaged principal (usually one with
 * long-term keys) for adoption: its first accepted upload replaces its keys
 * and makes it managed.  The value says when it was marked. */
#define TK_ATTR_ADOPT "tempkey_adopt"
/* String attribute marking a shared principal (one service on several
 * hosts, doc/design.md "Shared services"): the delay in seconds between an
 * upload and the moment the KDC starts issuing tickets in its key, during
 * which every member fetches it. */
#define TK_ATTR_SHARE "tempkey_share"
/* Set by that upload: "KVNO UNTIL", the highest long-term kvno it removed
 * and the time (seconds since the epoch) after which no ticket in those
 * keys can still be presented. */
#define TK_ATTR_ADOPTED "tempkey_adopted"
/* tl_data type of an upload handed from the preauth module to this module's
 * put_principal inside krb5kdc; never stored. */
#define TK_TL_UPLOAD 0x7e55
/* tl_data the module adds to that entry to report the outcome, big-endian:
 * a 4-byte tk_reason (0: stored), the 8-byte stored expiry, for an adopted
 * principal the 4-byte highest long-term kvno (0: none) and the 8-byte end
 * of tickets in those keys (TK_ATTR_ADOPTED); for a shared principal a
 * byte that is 1 if the upload was answered as a fetch, the 8-byte time
 * the stored key is used from (0: at once) and the 4-byte delay (0: not
 * shared). */
#define TK_TL_UPLOAD_RESULT 0x7e56
#define TK_UPLOAD_RESULT_LEN 37
/* tl_data of a shared principal's result: its live keys as a HeldKeys DER
 * (doc/protocol.md), in the clear, for the preauth module to encrypt to
 * the member; in memory only, never stored. */
#define TK_TL_HELD_KEYS 0x7e57
/* tl_data of a fetch handed from the preauth module to put_principal: the
 * uploader's certificate hash; the module answers as for an upload. */
#define TK_TL_FETCH 0x7e58
/* Key versions are stored in 16 bits by every MIT backing module. */
#define TK_KVNO_MAX 65535
#define TK_UPLOADER_LEN 32
/* Live key versions one principal may hold: hourly rotation of one-day
 * keys needs 25; the cap keeps a runaway client from growing the entry
 * without bound. */
#define TK_MAX_KEY_VERSIONS 64
#define TK_META_VERSION 1

typedef struct tk_key_record {
    krb5_kvno kvno;
    int64_t expiry;             /* seconds since the epoch */
    int has_uploader;           /* 0: set by an administrator */
    unsigned char uploader[TK_UPLOADER_LEN]; /* SHA-256 of the uploader's
                                              * certificate */
    int64_t active_at;          /* a shared principal's key: no ticket is
                                 * issued in it before then (0: from the
                                 * start) */
} tk_key_record;

typedef struct tk_meta {
    krb5_kvno highest_kvno;     /* highest kvno ever stored; never decreases */
    int64_t last_expiry;        /* when the newest removed key stopped being
                                 * usable (expiry or revocation), or 0 */
    uint64_t generation;        /* advanced by every change of the records:
                                 * tells a stale copy from the stored one */
    size_t nkeys;
    tk_key_record *keys;        /* ascending kvno, no duplicates */
} tk_meta;

/* Allocate an empty record set.  Free with tk_meta_free(). */
krb5_error_code tk_meta_new(tk_meta **meta_out);
void tk_meta_free(tk_meta *meta);

/* Decode DER metadata; every malformation is an error naming what is wrong.
 * The caller frees *meta_out with tk_meta_free(). */
krb5_error_code tk_meta_decode(krb5_context ctx, const unsigned char *der,
                               size_t len, tk_meta **meta_out);
/* Encode to DER; the caller frees *der_out with free(). */
krb5_error_code tk_meta_encode(krb5_context ctx, const tk_meta *meta,
                               unsigned char **der_out, size_t *len_out);

const tk_key_record *tk_meta_find(const tk_meta *meta, krb5_kvno kvno);
/* Add a record; its kvno must be above every kvno ever stored. */
krb5_error_code tk_meta_add(krb5_context ctx, tk_meta *meta,
                            const tk_key_record *rec);
/* Remove the record for kvno (if any), noting when it stopped being usable.
 * Return 1 if a record was removed. */
int tk_meta_remove(tk_meta *meta, krb5_kvno kvno, int64_t now);
/* Remove every record whose key has expired at now; return how many. */
size_t tk_meta_drop_expired(tk_meta *meta, int64_t now);
/* Whether rec is a shared principal's key that is live but not yet
 * active at now: its members may fetch it, the KDC issues no ticket in
 * it. */
krb5_boolean tk_record_pending(const tk_key_record *rec, int64_t now);
/* The first pending record (there is at most one), or NULL. */
const tk_key_record *tk_meta_pending(const tk_meta *meta, int64_t now);
/* The live, active record with the highest kvno, or NULL. */
const tk_key_record *tk_meta_newest_active(const tk_meta *meta, int64_t now);
/* The live record with the highest kvno, or NULL. */
const tk_key_record *tk_meta_newest_live(const tk_meta *meta, int64_t now);
/* The earliest expiry among the records, or 0 if there are none. */
int64_t tk_meta_next_expiry(const tk_meta *meta);
/* Cap a ticket lifetime (0 meaning unlimited) so that a ticket issued at now
 * ends no later than expiry.  expiry must be after now. */
krb5_deltat tk_cap_life(krb5_deltat life, int64_t expiry, int64_t now);

/* Parse a positive duration ("1d", "90m", "3600", "01:00:00") for setting,
 * with a message naming the setting on failure. */
krb5_error_code tk_parse_duration(krb5_context ctx, const char *setting,
                                  const char *text, krb5_deltat *out);
/* Parse a list of enctype names separated by commas or spaces into
 * out[0..max-1]; every name must be a supported enctype.  Errors name
 * setting and the offending word. */
krb5_error_code tk_parse_enctypes(krb5_context ctx, const char *setting,
                                  const char *list, krb5_enctype *out,
                                  size_t max, size_t *count_out);
/* Format a time as ISO 8601 UTC; buf must hold TK_TIME_LEN bytes. */
#define TK_TIME_LEN 32
void tk_format_time(int64_t t, char *buf);
/* Lowercase hex of len bytes; out must hold 2 * len + 1 bytes. */
void tk_hex(const unsigned char *in, size_t len, char *out);

/* Decide whether an existing keytab entry survives a rewrite. */
typedef krb5_boolean (*tk_keytab_keep_fn)(krb5_context ctx,
                                          const krb5_keytab_entry *entry,
                                          void *arg);
/*
 * Replace the FILE keytab at path atomically: entries that keep() accepts (all
 * if keep is NULL) followed by add[0..nadd-1] go into a new file in the same
 * directory, which is flushed to disk and renamed over path.  The new file
 * keeps an existing file's owner and mode (0600 for a new one).  On failure
 * path is unchanged.
 */
/* fsync the directory holding path, after a rename in it. */
void tk_sync_dir(const char *path);

krb5_error_code tk_keytab_rewrite(krb5_context ctx, const char *path,
                                  tk_keytab_keep_fn keep, void *keep_arg,
                                  const krb5_keytab_entry *add, size_t nadd);

/*
 * Serialize writers of the FILE keytab at path (and of the files kept
 * beside it): an exclusive lock on PATH.lock, which is created (mode 0600)
 * if needed and never removed, since a rename would break the exclusion.
 * Blocks until the lock is free.  Release with tk_keytab_unlock(*fd_out).
 */
krb5_error_code tk_keytab_lock(krb5_context ctx, const char *path,
                               int *fd_out);
void tk_keytab_unlock(int fd);

/* A realm's policy for temporary keys ([realms] settings, tempkey(5)). */
typedef struct tk_policy {
    char *realm;                /* the realm whose [realms] section it is */
    krb5_deltat max_life;       /* tempkey_max_life: longest key lifetime */
    char **enroll;              /* tempkey_enroll: name patterns, NULL-ended */
    char *eku;                  /* tempkey_eku: required key purpose */
    krb5_enctype *enctypes;     /* tempkey_enctypes: accepted in uploads */
    size_t nenctypes;
    krb5_deltat entry_max_life;         /* max_life for enrolled entries */
    krb5_deltat entry_max_renewable;    /* max_renewable_life, likewise */
} tk_policy;

/* Settings read from kdc.conf (doc/tempkey.5.pod). */
typedef struct tk_config {
    char *section;              /* our [dbmodules] section */
    char *backing;              /* [dbmodules] section of the backing module */
    krb5_deltat purge_interval; /* how often the KDC removes expired keys */
    krb5_deltat settle_time;    /* without a lock: how long replication may
                                 * take to roll an upload back */
    krb5_boolean replica;       /* role = replica: never writes key state */
    krb5_boolean logged;        /* a primary with [realms] iprop_enable:
                                 * every write goes to the update log */
    krb5_deltat key_epoch;      /* the ratchet's step (DESIGN 10) */
    char *ratchet_file;         /* its file: default beside the database */
    char *db_base;              /* the database's name, which the files
                                 * kept beside it extend */
    tk_policy policy;
} tk_config;

#define TK_DEFAULT_PURGE_INTERVAL 60
/* Several times the delay of multi-provider replication on a loaded LAN
 * (well under a second): an acknowledged upload is checked once it is this
 * old (doc/design.md, "Many KDCs on LDAP"). */
#define TK_DEFAULT_SETTLE_TIME 10
#define TK_DEFAULT_MAX_LIFE 86400
/* MIT's database_name when kdc.conf sets none (Debian's build). */
#define TK_DEFAULT_KDB_FILE "/var/lib/krb5kdc/principal"
#define TK_DEFAULT_EKU "pkinit"
/* The keys a server makes (ktupdate, tempkey-admin set) unless told. */
#define TK_DEFAULT_KEY_ENCTYPES \
    "aes256-cts-hmac-sha1-96,aes128-cts-hmac-sha1-96"
/* The enctypes the KDC accepts in uploads unless tempkey_enctypes says. */
#define TK_DEFAULT_ENCTYPES \
    "aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96 " \
    "aes256-cts-hmac-sha384-192 aes128-cts-hmac-sha256-128"

/* Read and check the realm's policy; errors name the setting. */
krb5_error_code tk_policy_read(krb5_context ctx, const char *realm,
                               tk_policy *pol);
void tk_policy_free(tk_policy *pol);
/* Whether princ may enroll: a name of the policy's realm matching a
 * tempkey_enroll pattern ('*' does not cross a '/'), and not a reserved
 * name (krbtgt/, kadmin/, kiprop/, WELLKNOWN/, K/M), whatever the patterns
 * say. */
krb5_boolean tk_policy_may_enroll(krb5_context ctx, const tk_policy *pol,
                                  krb5_const_principal princ);
/* Whether princ is one of those reserved names, which no certificate may
 * ever key (nor an adoption hand to one). */
krb5_boolean tk_name_is_reserved(krb5_context ctx,
                                 krb5_const_principal princ);

/*
 * Read and check the settings of realm.  section is the module's [dbmodules]
 * section, or NULL to take the realm's database_module, which must then use
 * db_library = tempkey.  Every error names the setting at fault.  Free with
 * tk_config_free().
 */
krb5_error_code tk_config_read(krb5_context ctx, const char *realm,
                               const char *section, tk_config *cfg);
void tk_config_free(tk_config *cfg);

/* Whether cfg's backing module is db2, whose walks hold the database's lock
 * throughout unless opened with the db_arg "unlockiter". */
krb5_boolean tk_backing_is_db2(krb5_context ctx, const tk_config *cfg);

/* Set *replica_out to whether realm's tempkey database has role = replica;
 * KRB5_PLUGIN_NO_HANDLE (no message) if the realm's database is not tempkey.
 * Errors name the setting. */
krb5_error_code tk_config_read_role(krb5_context ctx, const char *realm,
                                    krb5_boolean *replica_out);
/* The realm's primary KDC as a replica names it: the first primary_kdc
 * value, else admin_server's host; *name_out is NULL if neither is set.
 * Free with free(). */
krb5_error_code tk_primary_kdc(krb5_context ctx, const char *realm,
                               char **name_out);

/* One replaced profile relation: path names it ({"realms", "R", "kdc",
 * NULL}); values (NULL-terminated) replace all its values, and an empty or
 * NULL list makes it absent. */
typedef struct tk_profile_setting {
    const char *const *path;
    const char *const *values;
} tk_profile_setting;

/*
 * A read-only profile answering the given relations with their new values
 * and every other query (lookups and iteration) from ctx's profile.  The
 * settings are copied.  Release *profile_out with profile_release().
 */
krb5_error_code tk_profile_override(krb5_context ctx,
                                    const tk_profile_setting *settings,
                                    size_t nsettings, profile_t *profile_out);
/* A new context (krb5_init_context_profile flags) on such a profile; free
 * it with krb5_free_context(). */
krb5_error_code tk_context_override(krb5_context ctx,
                                    const tk_profile_setting *settings,
                                    size_t nsettings, krb5_flags flags,
                                    krb5_context *ctx_out);

#endif /* TEMPKEY_H */
