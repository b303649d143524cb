/* tempkey-admin.c - list, show, set, revoke and purge temporary keys, adopt
 * principals with long-term keys and share principals among several hosts,
 * on the KDC host, through libkdb5 and the realm's tempkey module. */

#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <profile.h>

#include "tkentry.h"
#include "report.h"

#define MAX_ENCTYPES 8

static const char *progname = "tempkey-admin";

typedef struct {
    krb5_context ctx;
    char *realm;
    tk_config cfg;
    int json;
    int problems;               /* entries that could not be read */
} admin;

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: %s [-r REALM] [--json] COMMAND\n"
            "  list                        managed principals and their keys\n"
            "  show PRINCIPAL              one principal's keys\n"
            "  set PRINCIPAL [--lifetime DURATION] [--keytab FILE]\n"
            "      [--enctypes LIST]        store a new random temporary key\n"
            "  revoke PRINCIPAL [--kvno N] remove keys now\n"
            "  purge                       remove expired keys\n"
            "  adopt PRINCIPAL | --matching PATTERN [--cancel] [--dry-run]\n"
            "                              let the first upload replace a\n"
            "                              principal's long-term keys\n"
            "  share PRINCIPAL --delay DURATION\n"
            "                              serve one principal from several "
            "hosts:\n"
            "                              a new key is used DURATION after "
            "its upload\n"
            "  unshare PRINCIPAL           a new key is used at once again\n"
            "  ratchet status              the ratchet's file and epoch\n"
            "  ratchet init                make a ratchet file where none "
            "is\n"
            "  report [--log FILE] [--prometheus FILE|-]\n"
            "                              keys, services and refusals for "
            "monitoring\n",
            progname);
}

/* Print the context's message for code with what, and return 1. */
static int
fail(admin *a, krb5_error_code code, const char *what)
{
    const char *msg = krb5_get_error_message(a->ctx, code);

    fprintf(stderr, "%s: %s: %s\n", progname, what, msg);
    krb5_free_error_message(a->ctx, msg);
    return 1;
}

/* Refuse a change, with a message (fmt) saying why. */
static krb5_error_code
refuse(krb5_context ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static krb5_error_code
refuse(krb5_context ctx, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    krb5_vset_error_message(ctx, EINVAL, fmt, ap);
    va_end(ap);
    return EINVAL;
}

/* ---- Output. */

static void
json_string(const char *s)
{
    putchar('"');
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void
uploader_text(const tk_key_record *rec, char *buf)
{
    if (rec->has_uploader)
        tk_hex(rec->uploader, TK_UPLOADER_LEN, buf);
    else
        strcpy(buf, "admin");
}

/* Whether the keys of kvno in entry are wrapped by the ratchet; a key
 * stored before the ratchet is not, until its principal's next store. */
static krb5_boolean
kvno_wrapped(krb5_db_entry *entry, krb5_kvno kvno)
{
    krb5_data salt;
    int i;

    for (i = 0; i < entry->n_key_data; i++) {
        krb5_key_data *kd = &entry->key_data[i];

        if (kd->key_data_kvno != kvno)
            continue;
        if (kd->key_data_ver < 2 ||
            kd->key_data_type[1] != KRB5_KDB_SALTTYPE_SPECIAL)
            return FALSE;
        salt.length = kd->key_data_length[1];
        salt.data = (char *)kd->key_data_contents[1];
        if (!tk_ratchet_parse_marker(&salt, NULL, NULL))
            return FALSE;
    }
    return TRUE;
}

/* The end of a list line of a shared principal (DESIGN 11): show has a
 * line of its own for it (print_shared). */
static void
print_share_note(krb5_deltat delay, krb5_boolean listing)
{
    if (listing && delay > 0)
        printf("  shared (delay %ld s)", (long)delay);
}

/* show's line saying whether the principal is shared, and its delay. */
static void
print_shared(krb5_deltat delay)
{
    if (delay > 0)
        printf("shared: delay %ld s\n", (long)delay);
    else
        printf("shared: no\n");
}

/* An adopting principal's line: its long-term keys serve until its first
 * upload (doc/deploying.md). */
static void
print_adopting(admin *a, const char *name, krb5_db_entry *entry, int first,
               krb5_boolean listing)
{
    krb5_deltat delay = tk_entry_share_delay(a->ctx, entry);
    char *since = NULL;

    if (krb5_dbe_get_string(a->ctx, entry, TK_ATTR_ADOPT, &since) != 0)
        since = NULL;
    if (a->json) {
        printf("%s{\"principal\": ", first ? "" : ",\n ");
        json_string(name);
        printf(", \"highest_kvno\": %u, \"keys\": [], \"adopting\": ",
               tk_entry_top_kvno(entry));
        json_string(since != NULL ? since : "");
        printf(", \"share_delay\": %ld}", (long)delay);
    } else {
        printf("%-40s %5u  %-20s  adopting since %s", name,
               tk_entry_top_kvno(entry), "long-term",
               since != NULL ? since : "?");
        print_share_note(delay, listing);
        printf("\n");
    }
    krb5_dbe_free_string(a->ctx, since);
}

/* What the switch of an adopted principal left: for how long tickets in
 * its long-term keys may still be presented. */
static void
print_adopted(admin *a, krb5_db_entry *entry)
{
    krb5_kvno kvno;
    int64_t until;
    char when[TK_TIME_LEN];

    tk_entry_adoption(a->ctx, entry, &kvno, &until);
    if (kvno == 0)
        return;
    tk_format_time(until, when);
    if (a->json) {
        printf(", \"adopted\": {\"long_term_kvno\": %u, "
               "\"tickets_end_by\": \"%s\"}", kvno, when);
    } else {
        printf("adopted: its long-term keys (up to kvno %u) are gone; "
               "tickets in them end by %s\n", kvno, when);
    }
}

/* Print one managed entry, as a JSON object or as text lines (with
 * listing, as list does). */
static void
print_entry(admin *a, const char *name, krb5_db_entry *entry,
            const tk_meta *meta, int first, krb5_boolean listing)
{
    char when[TK_TIME_LEN], up[TK_UPLOADER_LEN * 2 + 1];
    char active[TK_TIME_LEN];
    krb5_deltat delay = tk_entry_share_delay(a->ctx, entry);
    int64_t now = time(NULL);
    size_t i;

    if (a->json) {
        printf("%s{\"principal\": ", first ? "" : ",\n ");
        json_string(name);
        printf(", \"highest_kvno\": %u, \"keys\": [", meta->highest_kvno);
        for (i = 0; i < meta->nkeys; i++) {
            const tk_key_record *rec = &meta->keys[i];

            tk_format_time(rec->expiry, when);
            uploader_text(rec, up);
            printf("%s{\"kvno\": %u, \"expires\": \"%s\", \"expired\": %s, "
                   "\"uploader\": \"%s\", \"wrapped\": %s", i ? ", " : "",
                   rec->kvno, when, rec->expiry <= now ? "true" : "false", up,
                   kvno_wrapped(entry, rec->kvno) ? "true" : "false");
            /* A shared principal's keys record when they came into use;
             * other keys are used from their store (null). */
            if (rec->active_at != 0) {
                tk_format_time(rec->active_at, active);
                printf(", \"active_at\": \"%s\"", active);
            } else {
                printf(", \"active_at\": null");
            }
            printf(", \"pending\": %s}",
                   tk_record_pending(rec, now) ? "true" : "false");
        }
        printf("]");
        print_adopted(a, entry);
        printf(", \"share_delay\": %ld}", (long)delay);
        return;
    }
    if (meta->nkeys == 0) {
        printf("%-40s %5s  %-20s  %s", name, "-", "no key", "-");
        print_share_note(delay, listing);
        printf("\n");
        return;
    }
    for (i = 0; i < meta->nkeys; i++) {
        const tk_key_record *rec = &meta->keys[i];

        tk_format_time(rec->expiry, when);
        uploader_text(rec, up);
        printf("%-40s %5u  %-20s%s  %s%s", name, rec->kvno, when,
               rec->expiry <= now ? " (expired)" : "", up,
               kvno_wrapped(entry, rec->kvno) ? "" :
               "  (stored before the ratchet)");
        if (tk_record_pending(rec, now)) {
            tk_format_time(rec->active_at, active);
            printf("  pending until %s", active);
        }
        print_share_note(delay, listing);
        printf("\n");
    }
}

typedef struct {
    admin *a;
    int count;
} list_state;

static int
list_one(krb5_pointer arg, krb5_db_entry *entry)
{
    list_state *st = arg;
    admin *a = st->a;
    krb5_error_code ret;
    krb5_boolean managed;
    tk_meta *meta = NULL, empty;
    char *name = NULL;

    if (tk_entry_is_managed(a->ctx, entry, &managed) != 0 ||
        (!managed && !tk_entry_is_adopting(entry)))
        return 0;
    if (krb5_unparse_name(a->ctx, entry->princ, &name) != 0)
        return 0;
    if (!managed) {
        print_adopting(a, name, entry, st->count++ == 0, TRUE);
        krb5_free_unparsed_name(a->ctx, name);
        return 0;
    }
    ret = tk_entry_get_meta(a->ctx, entry, &meta);
    if (ret) {
        fail(a, ret, "list");
        a->problems++;
    } else {
        memset(&empty, 0, sizeof(empty));
        print_entry(a, name, entry, meta != NULL ? meta : &empty,
                    st->count == 0, TRUE);
        st->count++;
    }
    tk_meta_free(meta);
    krb5_free_unparsed_name(a->ctx, name);
    return 0;
}

static int
cmd_list(admin *a)
{
    krb5_error_code ret;
    list_state st = { a, 0 };

    if (a->json)
        printf("[");
    else
        printf("%-40s %5s  %-20s  %s\n", "PRINCIPAL", "KVNO", "EXPIRES",
               "UPLOADER");
    ret = krb5_db_iterate(a->ctx, NULL, list_one, &st, 0);
    if (a->json)
        printf("]\n");
    if (ret)
        return fail(a, ret, "listing principals");
    return a->problems ? 1 : 0;
}

static int
cmd_show(admin *a, const char *name)
{
    krb5_error_code ret;
    krb5_principal princ = NULL;
    krb5_db_entry *entry = NULL;
    krb5_boolean managed;
    tk_meta *meta = NULL, empty;
    char when[TK_TIME_LEN];
    int status = 1;

    ret = krb5_parse_name(a->ctx, name, &princ);
    if (ret)
        return fail(a, ret, name);
    ret = krb5_db_get_principal(a->ctx, princ, 0, &entry);
    if (ret) {
        fail(a, ret, name);
        goto cleanup;
    }
    ret = tk_entry_is_managed(a->ctx, entry, &managed);
    if (ret == 0)
        ret = tk_entry_get_meta(a->ctx, entry, &meta);
    if (ret) {
        fail(a, ret, name);
        goto cleanup;
    }
    if (!managed && !tk_entry_is_adopting(entry)) {
        fprintf(stderr, "%s: %s is not managed by tempkey (no '%s' string "
                "attribute)\n", progname, name, TK_ATTR_MANAGED);
        goto cleanup;
    }
    memset(&empty, 0, sizeof(empty));
    if (!a->json) {
        printf("%-40s %5s  %-20s  %s\n", "PRINCIPAL", "KVNO", "EXPIRES",
               "UPLOADER");
    }
    if (!managed) {
        print_adopting(a, name, entry, 1, FALSE);
        if (a->json)
            printf("\n");
        else
            print_shared(tk_entry_share_delay(a->ctx, entry));
        status = 0;
        goto cleanup;
    }
    print_entry(a, name, entry, meta != NULL ? meta : &empty, 1, FALSE);
    if (a->json) {
        printf("\n");
    } else {
        if (meta != NULL && meta->last_expiry != 0) {
            tk_format_time(meta->last_expiry, when);
            printf("highest kvno ever stored: %u; last key removed: %s\n",
                   meta->highest_kvno, when);
        }
        print_adopted(a, entry);
        print_shared(tk_entry_share_delay(a->ctx, entry));
    }
    status = 0;

cleanup:
    tk_meta_free(meta);
    krb5_db_free_principal(a->ctx, entry);
    krb5_free_principal(a->ctx, princ);
    return status;
}

/* ---- set: new random keys, into the keytab first, then the database. */

typedef struct {
    krb5_kvno kvno;
    int64_t expiry;
    krb5_keyblock keys[MAX_ENCTYPES];
    size_t nkeys;
    const char *keytab;
    krb5_principal princ;
    krb5_kvno mkvno;
    krb5_keyblock *mkey;
    int64_t active_at;          /* a shared principal's key: used from */
} set_state;

static krb5_boolean
keep_unless_pending(krb5_context ctx, const krb5_keytab_entry *entry,
                    void *arg)
{
    const set_state *st = arg;

    return !(entry->vno == st->kvno &&
             krb5_principal_compare(ctx, entry->principal, st->princ));
}

static krb5_error_code
write_pending_keys(krb5_context ctx, set_state *st)
{
    krb5_keytab_entry add[MAX_ENCTYPES];
    size_t i;

    memset(add, 0, sizeof(add));
    for (i = 0; i < st->nkeys; i++) {
        add[i].principal = st->princ;
        add[i].timestamp = (krb5_timestamp)time(NULL);
        add[i].vno = st->kvno;
        add[i].key = st->keys[i];
    }
    return tk_keytab_rewrite(ctx, st->keytab, NULL, NULL, add, st->nkeys);
}

static krb5_error_code
set_entry(krb5_context ctx, krb5_db_entry *entry, void *arg,
          krb5_boolean *changed)
{
    set_state *st = arg;
    krb5_error_code ret;

    ret = tk_entry_next_kvno(ctx, entry, &st->kvno);
    if (ret)
        return ret;
    if (st->keytab != NULL) {
        ret = write_pending_keys(ctx, st);
        if (ret)
            return ret;
    }
    /* A shared principal's key waits for its members as an upload's does. */
    st->active_at = tk_entry_active_at(ctx, entry, time(NULL));
    ret = tk_entry_add_keys_at(ctx, entry, st->kvno, st->keys, st->nkeys,
                               st->expiry, st->active_at, NULL, st->mkvno,
                               st->mkey);
    *changed = (ret == 0);
    return ret;
}

/* Random keys for each enctype of list. */
static krb5_error_code
make_keys(admin *a, const char *list, set_state *st)
{
    krb5_error_code ret;
    krb5_enctype enctypes[MAX_ENCTYPES];
    size_t i, n;

    ret = tk_parse_enctypes(a->ctx, "--enctypes", list, enctypes,
                            MAX_ENCTYPES, &n);
    for (i = 0; ret == 0 && i < n; i++) {
        ret = krb5_c_make_random_key(a->ctx, enctypes[i], &st->keys[i]);
        if (ret == 0)
            st->nkeys++;
    }
    return ret;
}

/* Load the master key list, needed to encrypt new keys. */
static krb5_error_code
load_master_key(admin *a)
{
    krb5_error_code ret;
    krb5_principal mname = NULL;
    krb5_keyblock mkey;
    krb5_kvno mkvno = 0;
    char *stash = NULL;
    profile_t profile = NULL;

    memset(&mkey, 0, sizeof(mkey));
    ret = krb5_get_profile(a->ctx, &profile);
    if (ret)
        return ret;
    ret = profile_get_string(profile, "realms", a->realm, "key_stash_file",
                             NULL, &stash);
    if (ret)
        goto cleanup;
    ret = krb5_db_setup_mkey_name(a->ctx, NULL, a->realm, NULL, &mname);
    if (ret)
        goto cleanup;
    ret = krb5_db_fetch_mkey(a->ctx, mname, ENCTYPE_UNKNOWN, FALSE, FALSE,
                             stash, &mkvno, NULL, &mkey);
    if (ret) {
        krb5_prepend_error_message(a->ctx, ret, "reading the master key "
                                   "stash %s (key_stash_file)", stash != NULL ?
                                   stash : "of the realm");
        goto cleanup;
    }
    ret = krb5_db_fetch_mkey_list(a->ctx, mname, &mkey);

cleanup:
    krb5_free_keyblock_contents(a->ctx, &mkey);
    krb5_free_principal(a->ctx, mname);
    profile_release_string(stash);
    profile_release(profile);
    return ret;
}

static int
cmd_set(admin *a, const char *name, const char *lifetime,
        const char *keytab, const char *enctypes)
{
    krb5_error_code ret;
    set_state st;
    krb5_deltat life = a->cfg.policy.max_life;
    char when[TK_TIME_LEN], ename[64];
    const char *msg;
    size_t i;
    int status = 1, lock = -1;

    memset(&st, 0, sizeof(st));
    st.keytab = keytab;
    if (lifetime != NULL) {
        ret = tk_parse_duration(a->ctx, "--lifetime", lifetime, &life);
        if (ret)
            return fail(a, ret, name);
        if (life > a->cfg.policy.max_life) {
            fprintf(stderr, "%s: %s: --lifetime %s is longer than "
                    "tempkey_max_life (%ld seconds)\n", progname, name,
                    lifetime, (long)a->cfg.policy.max_life);
            return 1;
        }
    }
    ret = krb5_parse_name(a->ctx, name, &st.princ);
    if (ret)
        return fail(a, ret, name);
    ret = make_keys(a, enctypes != NULL ? enctypes : TK_DEFAULT_KEY_ENCTYPES,
                    &st);
    if (ret) {
        fail(a, ret, name);
        goto cleanup;
    }
    ret = load_master_key(a);
    if (ret == 0)
        ret = tk_active_mkey(a->ctx, a->ctx, st.princ, &st.mkvno,
                                 &st.mkey);
    if (ret) {
        fail(a, ret, name);
        goto cleanup;
    }
    st.expiry = (int64_t)time(NULL) + life;
    /* As ktupdate does: no other writer of this keytab in between. */
    if (keytab != NULL) {
        ret = tk_keytab_lock(a->ctx, keytab, &lock);
        if (ret) {
            fail(a, ret, name);
            goto cleanup;
        }
    }
    ret = tk_db_update(a->ctx, st.princ, set_entry, &st);
    if (ret == KRB5_KDB_NOENTRY)
        krb5_set_error_message(a->ctx, ret, "no such principal; create it "
                               "first with kadmin addprinc -nokey");
    if (ret) {
        /* The pending key must not outlive a refused store.  Taking it out
         * touches the keytab, which would replace the store's message. */
        msg = krb5_get_error_message(a->ctx, ret);
        if (keytab != NULL && st.kvno != 0)
            (void)tk_keytab_rewrite(a->ctx, keytab, keep_unless_pending, &st,
                                    NULL, 0);
        fprintf(stderr, "%s: %s: %s\n", progname, name, msg);
        krb5_free_error_message(a->ctx, msg);
        goto cleanup;
    }
    tk_format_time(st.expiry, when);
    printf("%s kvno %u expires %s enctypes", name, st.kvno, when);
    for (i = 0; i < st.nkeys; i++) {
        if (krb5_enctype_to_name(st.keys[i].enctype, FALSE, ename,
                                 sizeof(ename)) != 0)
            snprintf(ename, sizeof(ename), "%d", st.keys[i].enctype);
        printf("%s%s", i ? "," : " ", ename);
    }
    printf(" keytab %s", keytab != NULL ? keytab : "(none)");
    if (st.active_at > time(NULL)) {
        tk_format_time(st.active_at, when);
        printf(" pending-until %s", when);
    }
    printf("\n");
    status = 0;

cleanup:
    tk_keytab_unlock(lock);
    for (i = 0; i < st.nkeys; i++)
        krb5_free_keyblock_contents(a->ctx, &st.keys[i]);
    krb5_free_principal(a->ctx, st.princ);
    return status;
}

/* ---- revoke and purge. */

typedef struct {
    krb5_kvno kvno;
    size_t removed;
} revoke_state;

static krb5_error_code
revoke_entry(krb5_context ctx, krb5_db_entry *entry, void *arg,
             krb5_boolean *changed)
{
    revoke_state *st = arg;
    krb5_error_code ret;
    krb5_boolean managed;

    ret = tk_entry_is_managed(ctx, entry, &managed);
    if (ret == 0 && !managed) {
        ret = EINVAL;
        krb5_set_error_message(ctx, ret, "not managed by tempkey");
    }
    if (ret == 0)
        ret = tk_entry_revoke(ctx, entry, st->kvno, time(NULL),
                              &st->removed);
    *changed = (ret == 0 && st->removed > 0);
    return ret;
}

static int
cmd_revoke(admin *a, const char *name, const char *kvno_text)
{
    krb5_error_code ret;
    krb5_principal princ = NULL;
    revoke_state st = { 0, 0 };
    char *end;
    unsigned long v;

    if (kvno_text != NULL) {
        errno = 0;
        v = strtoul(kvno_text, &end, 10);
        if (errno || *end != '\0' || v == 0 || v > TK_KVNO_MAX) {
            fprintf(stderr, "%s: --kvno %s is not a key version (1-%d)\n",
                    progname, kvno_text, TK_KVNO_MAX);
            return 1;
        }
        st.kvno = (krb5_kvno)v;
    }
    ret = krb5_parse_name(a->ctx, name, &princ);
    if (ret == 0)
        ret = tk_db_update(a->ctx, princ, revoke_entry, &st);
    krb5_free_principal(a->ctx, princ);
    if (ret)
        return fail(a, ret, name);
    printf("%s: revoked %zu key version(s)\n", name, st.removed);
    return 0;
}

static void
report_purge(krb5_context ctx, krb5_const_principal princ, size_t removed,
             krb5_error_code error, void *arg)
{
    admin *a = arg;
    char *name = NULL;

    if (krb5_unparse_name(ctx, princ, &name) != 0)
        return;
    if (error) {
        fail(a, error, name);
        a->problems++;
    } else if (removed > 0) {
        printf("%s: purged %zu expired key version(s)\n", name, removed);
    }
    krb5_free_unparsed_name(ctx, name);
}

static int
cmd_purge(admin *a)
{
    krb5_error_code ret;

    ret = tk_db_purge_expired(a->ctx, time(NULL), report_purge, a);
    if (ret)
        return fail(a, ret, "purge");
    return a->problems ? 1 : 0;
}

/* ---- adopt: an existing principal moves over (doc/deploying.md). */

typedef struct {
    krb5_boolean cancel;        /* --cancel: stop an adoption */
    krb5_boolean dry_run;       /* say what would change, write nothing */
    krb5_boolean matching;      /* one of many: quietly skip what does not
                                 * apply */
    /* What adopt_entry() found, for the line that says it. */
    krb5_kvno lt_kvno;
    krb5_boolean skip, already;
    char since[TK_TIME_LEN];
} adopt_state;

/* --cancel on entry: an adopting principal loses the mark and nothing
 * else; the switch, once made, cannot be undone. */
static krb5_error_code
cancel_entry(krb5_context ctx, krb5_db_entry *entry, adopt_state *st,
             krb5_boolean managed, krb5_boolean *changed)
{
    krb5_error_code ret = 0;
    krb5_kvno kvno;
    int64_t until;

    if (tk_entry_is_adopting(entry)) {
        if (!st->dry_run)
            ret = tk_entry_unset_string(ctx, entry, TK_ATTR_ADOPT);
        *changed = (ret == 0 && !st->dry_run);
        return ret;
    }
    st->skip = st->matching;
    if (st->matching)
        return 0;
    tk_entry_adoption(ctx, entry, &kvno, &until);
    if (managed && kvno != 0) {
        return refuse(ctx, "was adopted already: its first upload "
                      "replaced its long-term keys (up to kvno %u), which "
                      "are gone; there is nothing to cancel", kvno);
    }
    return refuse(ctx, "is not being adopted");
}

/* Mark entry for adoption, or cancel it (st->cancel), deciding on the
 * entry alone; with st->dry_run only decide. */
static krb5_error_code
adopt_entry(krb5_context ctx, krb5_db_entry *entry, void *arg,
            krb5_boolean *changed)
{
    adopt_state *st = arg;
    krb5_error_code ret;
    krb5_boolean managed;
    char *since = NULL;

    *changed = FALSE;
    st->skip = st->already = FALSE;
    st->lt_kvno = tk_entry_top_kvno(entry);
    ret = tk_entry_is_managed(ctx, entry, &managed);
    if (ret)
        return ret;
    if (st->cancel)
        return cancel_entry(ctx, entry, st, managed, changed);
    if (tk_name_is_reserved(ctx, entry->princ)) {
        return refuse(ctx, "is a reserved name: it is never adopted, "
                      "since no certificate may key it");
    }
    st->skip = st->matching && (managed || tk_entry_is_adopting(entry));
    if (st->skip)
        return 0;
    if (managed)
        return refuse(ctx, "is managed by tempkey already");
    if (tk_entry_is_adopting(entry)) {
        st->already = TRUE;
        if (krb5_dbe_get_string(ctx, entry, TK_ATTR_ADOPT, &since) == 0 &&
            since != NULL)
            snprintf(st->since, sizeof(st->since), "%s", since);
        krb5_dbe_free_string(ctx, since);
        return 0;
    }
    if (st->dry_run)
        return 0;
    tk_format_time(time(NULL), st->since);
    ret = krb5_dbe_set_string(ctx, entry, TK_ATTR_ADOPT, st->since);
    *changed = (ret == 0);
    return ret;
}

/* One principal: decide (a dry run reads it only), write, say what
 * happened; *done_out says whether it counted (not skipped). */
static int
adopt_one(admin *a, krb5_const_principal princ, adopt_state *st,
          krb5_boolean *done_out)
{
    krb5_error_code ret;
    krb5_db_entry *entry = NULL;
    krb5_boolean changed;
    char *name = NULL;
    const char *verb;
    int status = 0;

    *done_out = FALSE;
    ret = krb5_unparse_name(a->ctx, princ, &name);
    if (ret)
        return fail(a, ret, "adopt");
    if (st->dry_run) {
        ret = krb5_db_get_principal(a->ctx, princ, 0, &entry);
        if (ret == 0)
            ret = adopt_entry(a->ctx, entry, st, &changed);
        krb5_db_free_principal(a->ctx, entry);
    } else {
        ret = tk_db_update(a->ctx, princ, adopt_entry, st);
    }
    if (ret) {
        status = fail(a, ret, name);
        goto cleanup;
    }
    if (st->skip)
        goto cleanup;
    *done_out = TRUE;
    if (st->cancel) {
        printf("%s: %s: it keeps its long-term keys (up to kvno %u)\n",
               name, st->dry_run ? "would cancel its adoption" :
               "adoption cancelled", st->lt_kvno);
    } else if (st->already) {
        printf("%s: being adopted already (since %s)\n", name, st->since);
    } else {
        verb = st->dry_run ? "would adopt" : "adopting";
        if (st->lt_kvno == 0) {
            printf("%s: %s: it has no key; its first upload makes it "
                   "managed\n", name, verb);
        } else {
            printf("%s: %s: its long-term keys (up to kvno %u) serve until "
                   "its first upload replaces them\n", name, verb,
                   st->lt_kvno);
        }
    }

cleanup:
    krb5_free_unparsed_name(a->ctx, name);
    return status;
}

/* Whether entry's name matches the pattern (tempkey_enroll's syntax, in a
 * policy of its own); reserved names never do (tk_policy_may_enroll). */
static krb5_boolean
matches_pattern(krb5_context ctx, krb5_db_entry *entry, void *arg)
{
    return tk_policy_may_enroll(ctx, arg, entry->princ);
}

static int
cmd_adopt(admin *a, const char *name, const char *pattern,
          adopt_state *st)
{
    krb5_error_code ret;
    krb5_principal princ = NULL, *names = NULL;
    tk_policy match;
    char *patterns[2] = { (char *)pattern, NULL };
    krb5_boolean done;
    size_t i, count = 0, n = 0;
    int status = 0;

    if (pattern == NULL) {
        ret = krb5_parse_name(a->ctx, name, &princ);
        if (ret)
            return fail(a, ret, name);
        status = adopt_one(a, princ, st, &done);
        krb5_free_principal(a->ctx, princ);
        return status;
    }
    memset(&match, 0, sizeof(match));
    match.realm = a->realm;
    match.enroll = patterns;
    ret = tk_db_list_principals(a->ctx, matches_pattern, &match, &names,
                                &count);
    if (ret)
        return fail(a, ret, "listing principals");
    st->matching = TRUE;
    for (i = 0; i < count; i++) {
        if (adopt_one(a, names[i], st, &done) != 0)
            status = 1;
        n += done;
        krb5_free_principal(a->ctx, names[i]);
    }
    free(names);
    if (st->cancel) {
        printf("%s: %zu adoption(s) %s; %zu matching principal(s) not "
               "being adopted\n", pattern, n, st->dry_run ?
               "would be cancelled" : "cancelled", count - n);
    } else {
        printf("%s: %zu principal(s) %s; %zu matching skipped (managed, "
               "being adopted already, or refused above)\n", pattern, n,
               st->dry_run ? "would be adopted" : "adopted", count - n);
    }
    return status;
}

/* ---- share and unshare: one service on several hosts (DESIGN 11). */

typedef struct {
    krb5_deltat delay;          /* share: the new delay */
    /* What share_entry() and unshare_entry() found, for the line that says
     * it. */
    krb5_deltat old_delay;      /* 0: it was not shared */
    krb5_kvno pending_kvno;     /* unshare: a key still pending, or 0 */
    int64_t pending_at;
} share_state;

/* Refuse to share entry, which is neither managed nor being adopted: its
 * uploads would be refused as well.  The way on is adopt. */
static krb5_error_code
refuse_unmanaged(krb5_context ctx, krb5_db_entry *entry)
{
    krb5_error_code ret;
    krb5_kvno top = tk_entry_top_kvno(entry);
    char *name = NULL;

    ret = krb5_unparse_name(ctx, entry->princ, &name);
    if (ret)
        return ret;
    if (top != 0) {
        ret = refuse(ctx, "holds long-term keys (up to kvno %u) and is not "
                     "managed by tempkey; adopt it first (tempkey-admin "
                     "adopt %s), then share it", top, name);
    } else {
        ret = refuse(ctx, "exists, keyless, and is neither managed by "
                     "tempkey nor being adopted; adopt it first "
                     "(tempkey-admin adopt %s), then share it", name);
    }
    krb5_free_unparsed_name(ctx, name);
    return ret;
}

/* Set the delay of a managed or adopting entry; the keys stored keep their
 * activation times (a pending one stays pending until its own). */
static krb5_error_code
share_entry(krb5_context ctx, krb5_db_entry *entry, void *arg,
            krb5_boolean *changed)
{
    share_state *st = arg;
    krb5_error_code ret;
    krb5_boolean managed;
    char value[32];

    *changed = FALSE;
    st->old_delay = tk_entry_share_delay(ctx, entry);
    ret = tk_entry_is_managed(ctx, entry, &managed);
    if (ret)
        return ret;
    if (!managed && !tk_entry_is_adopting(entry))
        return refuse_unmanaged(ctx, entry);
    if (st->old_delay == st->delay)
        return 0;
    snprintf(value, sizeof(value), "%ld", (long)st->delay);
    ret = krb5_dbe_set_string(ctx, entry, TK_ATTR_SHARE, value);
    *changed = (ret == 0);
    return ret;
}

/* Remove the mark, leaving the entry as it was before share; a pending key
 * keeps its activation time. */
static krb5_error_code
unshare_entry(krb5_context ctx, krb5_db_entry *entry, void *arg,
              krb5_boolean *changed)
{
    share_state *st = arg;
    krb5_error_code ret;
    tk_meta *meta = NULL;
    const tk_key_record *pending;
    char *value = NULL;

    *changed = FALSE;
    st->pending_kvno = 0;
    st->pending_at = 0;
    /* The mark itself, whatever its value: one unreadable as a delay
     * (set by hand) goes too. */
    ret = krb5_dbe_get_string(ctx, entry, TK_ATTR_SHARE, &value);
    if (ret)
        return ret;
    if (value == NULL)
        return refuse(ctx, "is not shared (no '%s' string attribute)",
                      TK_ATTR_SHARE);
    krb5_dbe_free_string(ctx, value);
    ret = tk_entry_get_meta(ctx, entry, &meta);
    if (ret)
        return ret;
    pending = tk_meta_pending(meta, time(NULL));
    if (pending != NULL) {
        st->pending_kvno = pending->kvno;
        st->pending_at = pending->active_at;
    }
    tk_meta_free(meta);
    ret = tk_entry_unset_string(ctx, entry, TK_ATTR_SHARE);
    *changed = (ret == 0);
    return ret;
}

/* The name an entry created by tempkey-admin records as its last modifier,
 * as kadmin.local makes one: LOGIN/admin@REALM.  Not the principal itself,
 * which marks an enrollment (tempkey-admin report). */
static krb5_error_code
creator_name(admin *a, krb5_principal *creator_out)
{
    struct passwd *pw = getpwuid(getuid());
    const char *login = (pw != NULL) ? pw->pw_name : "root";

    return krb5_build_principal(a->ctx, creator_out, strlen(a->realm),
                                a->realm, login, "admin", (char *)NULL);
}

static int
cmd_share(admin *a, const char *name, const char *delay_text)
{
    krb5_error_code ret;
    krb5_principal princ = NULL, creator = NULL;
    krb5_boolean created = FALSE;
    share_state st;
    char *full = NULL;
    int status = 1;

    memset(&st, 0, sizeof(st));
    ret = tk_parse_duration(a->ctx, "--delay", delay_text, &st.delay);
    if (ret)
        return fail(a, ret, name);
    /* A key of the longest life would expire before it is used. */
    if (st.delay >= a->cfg.policy.max_life) {
        fprintf(stderr, "%s: %s: --delay %s (%ld s) is not below "
                "tempkey_max_life (%ld s): a new key would expire before it "
                "is used\n", progname, name, delay_text, (long)st.delay,
                (long)a->cfg.policy.max_life);
        return 1;
    }
    ret = krb5_parse_name(a->ctx, name, &princ);
    if (ret == 0)
        ret = krb5_unparse_name(a->ctx, princ, &full);
    if (ret == 0)
        ret = creator_name(a, &creator);
    if (ret) {
        fail(a, ret, name);
        goto cleanup;
    }
    if (tk_name_is_reserved(a->ctx, princ)) {
        fprintf(stderr, "%s: %s: is a reserved name: it is never shared, "
                "since no certificate may key it\n", progname, full);
        goto cleanup;
    }
    if (!krb5_realm_compare(a->ctx, princ, creator)) {
        fprintf(stderr, "%s: %s: is not a name of the realm %s\n", progname,
                full, a->realm);
        goto cleanup;
    }
    ret = tk_db_update_or_create_managed(a->ctx, &a->cfg.policy, princ,
                                         creator, share_entry, &st,
                                         &created);
    if (ret) {
        fail(a, ret, full);
        goto cleanup;
    }
    if (created) {
        printf("%s: created, managed by tempkey with no key yet, and "
               "shared: its members' keys are used %ld s after their "
               "upload (the first at once)\n", full, (long)st.delay);
    } else if (st.old_delay == st.delay) {
        printf("%s: shared already with a delay of %ld s; nothing "
               "changed\n", full, (long)st.delay);
    } else if (st.old_delay != 0) {
        printf("%s: shared already; its delay changes from %ld s to %ld s "
               "(keys stored already keep their activation times)\n", full,
               (long)st.old_delay, (long)st.delay);
    } else {
        printf("%s: shared: a new key is used %ld s after its upload, while "
               "every member fetches it\n", full, (long)st.delay);
    }
    status = 0;

cleanup:
    krb5_free_unparsed_name(a->ctx, full);
    krb5_free_principal(a->ctx, creator);
    krb5_free_principal(a->ctx, princ);
    return status;
}

static int
cmd_unshare(admin *a, const char *name)
{
    krb5_error_code ret;
    krb5_principal princ = NULL;
    share_state st;
    char *full = NULL, when[TK_TIME_LEN];
    int status = 1;

    memset(&st, 0, sizeof(st));
    ret = krb5_parse_name(a->ctx, name, &princ);
    if (ret == 0)
        ret = krb5_unparse_name(a->ctx, princ, &full);
    if (ret) {
        fail(a, ret, name);
        goto cleanup;
    }
    ret = tk_db_update(a->ctx, princ, unshare_entry, &st);
    if (ret) {
        fail(a, ret, full);
        goto cleanup;
    }
    printf("%s: no longer shared: a new key is used at once", full);
    if (st.pending_kvno != 0) {
        tk_format_time(st.pending_at, when);
        printf("; kvno %u stays pending until %s", st.pending_kvno, when);
    }
    printf("\n");
    status = 0;

cleanup:
    krb5_free_unparsed_name(a->ctx, full);
    krb5_free_principal(a->ctx, princ);
    return status;
}

/* The KDC's configuration for realm (the default realm if NULL), opening
 * no database. */
static int
read_realm(admin *a, const char *realm)
{
    krb5_error_code ret;

    ret = krb5_init_context_profile(NULL, KRB5_INIT_CONTEXT_KDC, &a->ctx);
    if (ret) {
        fprintf(stderr, "%s: cannot initialize Kerberos from %s and %s: "
                "%s\n", progname, getenv("KRB5_CONFIG") != NULL ?
                getenv("KRB5_CONFIG") : "/etc/krb5.conf",
                getenv("KRB5_KDC_PROFILE") != NULL ?
                getenv("KRB5_KDC_PROFILE") : "/etc/krb5kdc/kdc.conf",
                error_message(ret));
        return 1;
    }
    if (realm != NULL)
        ret = krb5_set_default_realm(a->ctx, realm);
    if (ret == 0)
        ret = krb5_get_default_realm(a->ctx, &a->realm);
    if (ret)
        return fail(a, ret, "finding the realm (give -r REALM, or set "
                    "default_realm in krb5.conf)");
    ret = tk_config_read(a->ctx, a->realm, NULL, &a->cfg);
    if (ret)
        return fail(a, ret, "reading the configuration");
    return 0;
}

/* ---- ratchet: the file that makes expired keys unreadable. */

static int
cmd_ratchet_status(admin *a)
{
    krb5_error_code ret;
    tk_ratchet *r = NULL;
    const char *notice;
    char since[TK_TIME_LEN], next[TK_TIME_LEN], id[TK_RATCHET_ID_LEN * 2 + 1];
    int64_t step = a->cfg.key_epoch, start;

    /* Like every process that opens the database, it steps the file. */
    ret = tk_ratchet_open(a->ctx, a->cfg.ratchet_file, step, 0, time(NULL),
                          &r);
    if (ret)
        return fail(a, ret, "ratchet");
    notice = tk_ratchet_notice(r);
    if (notice != NULL)
        fprintf(stderr, "%s: %s\n", progname, notice);
    start = (int64_t)tk_ratchet_epoch(r) * step;
    tk_format_time(start, since);
    tk_format_time(start + step, next);
    tk_hex(tk_ratchet_id(r), TK_RATCHET_ID_LEN, id);
    if (a->json) {
        printf("{\"file\": ");
        json_string(tk_ratchet_path(r));
        printf(", \"key_epoch\": %lld, \"epoch\": %llu, \"id\": \"%s\", "
               "\"oldest_readable_expiry\": \"%s\", \"next_step\": \"%s\"}\n",
               (long long)step, (unsigned long long)tk_ratchet_epoch(r), id,
               since, next);
    } else {
        printf("file: %s\nkey_epoch: %llds\nepoch: %llu\nid: %s\n"
               "oldest expiry still readable: %s\nnext step: %s\n",
               tk_ratchet_path(r), (long long)step,
               (unsigned long long)tk_ratchet_epoch(r), id, since, next);
    }
    tk_ratchet_close(r);
    return 0;
}

static int
cmd_ratchet_init(admin *a)
{
    krb5_error_code ret;

    if (a->cfg.replica) {
        fprintf(stderr, "%s: ratchet init: this KDC is a replica (role = "
                "replica): copy the primary's ratchet file to %s instead\n",
                progname, a->cfg.ratchet_file);
        return 1;
    }
    ret = tk_ratchet_init(a->ctx, a->cfg.ratchet_file, a->cfg.key_epoch,
                          time(NULL));
    if (ret)
        return fail(a, ret, "ratchet init");
    printf("made the ratchet file %s (key_epoch %llds)\n",
           a->cfg.ratchet_file, (long long)a->cfg.key_epoch);
    return 0;
}

/* The ratchet commands read the configuration only: init must run before
 * anything opens the database, which would make the file itself. */
static int
cmd_ratchet(admin *a, const char *realm, const char *what)
{
    int status = read_realm(a, realm);

    if (status)
        return status;
    if (strcmp(what, "status") == 0)
        return cmd_ratchet_status(a);
    return cmd_ratchet_init(a);
}

/* ---- report (report.c), which opens the database itself. */

static int
cmd_report(admin *a, const char *realm, const tk_report_options *opt)
{
    krb5_error_code ret;
    int status = read_realm(a, realm);

    if (status)
        return status;
    ret = tk_report_run(a->ctx, a->realm, &a->cfg, opt);
    return ret ? fail(a, ret, "report") : 0;
}

/* ---- main. */

/* Whether *name (--keytab) names a file, as a path or FILE:/WRFILE:PATH;
 * *name becomes the path.  Another keytab type would be taken for a file
 * name of that spelling. */
static krb5_boolean
keytab_file(const char **name)
{
    if (strncmp(*name, "FILE:", 5) == 0)
        *name += 5;
    else if (strncmp(*name, "WRFILE:", 7) == 0)
        *name += 7;
    else if (strchr(*name, ':') != NULL && (*name)[0] != '/' &&
             strncmp(*name, "./", 2) != 0)
        goto refuse;
    if (**name != '\0')
        return TRUE;

refuse:
    fprintf(stderr, "%s: --keytab %s: only a FILE keytab (a path) can be "
            "written\n", progname, *name);
    return FALSE;
}

/* Whether cmd is a command and nargs operands (the first is arg) are what
 * it takes; if not, say which and what it takes. */
static krb5_boolean
command_fits(const char *cmd, int nargs, const char *arg,
             krb5_boolean matching)
{
    const char *takes;
    int want = 1;

    if (strcmp(cmd, "list") == 0 || strcmp(cmd, "purge") == 0 ||
        strcmp(cmd, "report") == 0) {
        want = 0;
        takes = "no operand";
    } else if (strcmp(cmd, "show") == 0 || strcmp(cmd, "set") == 0 ||
               strcmp(cmd, "revoke") == 0 || strcmp(cmd, "share") == 0 ||
               strcmp(cmd, "unshare") == 0) {
        takes = "one principal";
    } else if (strcmp(cmd, "adopt") == 0) {
        want = matching ? 0 : 1;
        takes = matching ? "no principal with --matching" :
            "one principal, or --matching PATTERN";
    } else if (strcmp(cmd, "ratchet") == 0) {
        takes = "one of status and init";
        if (nargs == 1 && strcmp(arg, "status") != 0 &&
            strcmp(arg, "init") != 0) {
            fprintf(stderr, "%s: ratchet: unknown subcommand '%s'; it takes "
                    "%s\n", progname, arg, takes);
            return FALSE;
        }
    } else {
        fprintf(stderr, "%s: unknown command '%s'\n", progname, cmd);
        return FALSE;
    }
    if (nargs == want)
        return TRUE;
    fprintf(stderr, "%s: %s takes %s; given %d operand(s)\n", progname, cmd,
            takes, nargs);
    return FALSE;
}

/* Open the realm's database; for writes (set, revoke, purge, adopt, share,
 * unshare) as the module's own writer, which a replica refuses and an iprop
 * primary logs. */
static int
open_realm(admin *a, const char *realm, krb5_boolean writes)
{
    krb5_error_code ret;
    char *db2_args[] = { "unlockiter", NULL };
    int status = read_realm(a, realm);

    if (status)
        return status;
    /* A db2 walk (list, adopt --dry-run) holds the database's lock
     * throughout unless told otherwise: seconds at 10^6 principals, with
     * every upload waiting. */
    if (writes)
        ret = tk_db_open_for_writes(a->ctx, a->realm, &a->cfg, NULL);
    else
        ret = krb5_db_open(a->ctx,
                           tk_backing_is_db2(a->ctx, &a->cfg) ? db2_args :
                           NULL, KRB5_KDB_OPEN_RW | KRB5_KDB_SRV_TYPE_ADMIN);
    if (ret)
        return fail(a, ret, "opening the database");
    return 0;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "realm", required_argument, NULL, 'r' },
        { "json", no_argument, NULL, 'j' },
        { "lifetime", required_argument, NULL, 'l' },
        { "keytab", required_argument, NULL, 'k' },
        { "enctypes", required_argument, NULL, 'e' },
        { "kvno", required_argument, NULL, 'n' },
        { "matching", required_argument, NULL, 'm' },
        { "cancel", no_argument, NULL, 'c' },
        { "dry-run", no_argument, NULL, 'd' },
        { "log", required_argument, NULL, 'L' },
        { "prometheus", required_argument, NULL, 'P' },
        { "delay", required_argument, NULL, 'D' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    admin a;
    adopt_state adopt;
    tk_report_options report;
    const char *realm = NULL, *lifetime = NULL, *keytab = NULL;
    const char *enctypes = NULL, *kvno = NULL, *cmd, *princ = NULL;
    const char *matching = NULL, *delay = NULL;
    int c, status, nargs;

    memset(&a, 0, sizeof(a));
    memset(&adopt, 0, sizeof(adopt));
    memset(&report, 0, sizeof(report));
    while ((c = getopt_long(argc, argv, "r:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'r': realm = optarg; break;
        case 'j': a.json = 1; break;
        case 'l': lifetime = optarg; break;
        case 'k': keytab = optarg; break;
        case 'e': enctypes = optarg; break;
        case 'n': kvno = optarg; break;
        case 'm': matching = optarg; break;
        case 'c': adopt.cancel = TRUE; break;
        case 'd': adopt.dry_run = TRUE; break;
        case 'L':
            if (tk_report_add_log(&report, optarg) != 0)
                return 2;
            break;
        case 'P': report.prometheus = optarg; break;
        case 'D': delay = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "%s: no command given\n", progname);
        usage(stderr);
        return 2;
    }
    cmd = argv[optind];
    nargs = argc - optind - 1;
    if (nargs > 0)
        princ = argv[optind + 1];
    if (!command_fits(cmd, nargs, princ, matching != NULL)) {
        usage(stderr);
        return 2;
    }
    if ((lifetime != NULL || keytab != NULL || enctypes != NULL) &&
        strcmp(cmd, "set") != 0) {
        fprintf(stderr, "%s: --lifetime, --keytab and --enctypes go with "
                "set\n", progname);
        return 2;
    }
    if (keytab != NULL && !keytab_file(&keytab))
        return 2;
    if (kvno != NULL && strcmp(cmd, "revoke") != 0) {
        fprintf(stderr, "%s: --kvno goes with revoke\n", progname);
        return 2;
    }
    if ((matching != NULL || adopt.cancel || adopt.dry_run) &&
        strcmp(cmd, "adopt") != 0) {
        fprintf(stderr, "%s: --matching, --cancel and --dry-run go with "
                "adopt\n", progname);
        return 2;
    }
    if (delay != NULL && strcmp(cmd, "share") != 0) {
        fprintf(stderr, "%s: --delay goes with share\n", progname);
        return 2;
    }
    if (delay == NULL && strcmp(cmd, "share") == 0) {
        fprintf(stderr, "%s: share takes --delay DURATION: how long after "
                "its upload a new key is used\n", progname);
        return 2;
    }
    if (tk_report_check(cmd, &report, a.json) != 0)
        return 2;

    if (strcmp(cmd, "ratchet") == 0)
        status = cmd_ratchet(&a, realm, princ);
    else if (strcmp(cmd, "report") == 0)
        status = cmd_report(&a, realm, &report);
    else
        status = open_realm(&a, realm, strcmp(cmd, "list") != 0 &&
                            strcmp(cmd, "show") != 0 && !adopt.dry_run);
    if (status == 0 && strcmp(cmd, "ratchet") != 0 &&
        strcmp(cmd, "report") != 0) {
        if (strcmp(cmd, "list") == 0)
            status = cmd_list(&a);
        else if (strcmp(cmd, "show") == 0)
            status = cmd_show(&a, princ);
        else if (strcmp(cmd, "set") == 0)
            status = cmd_set(&a, princ, lifetime, keytab, enctypes);
        else if (strcmp(cmd, "revoke") == 0)
            status = cmd_revoke(&a, princ, kvno);
        else if (strcmp(cmd, "adopt") == 0)
            status = cmd_adopt(&a, princ, matching, &adopt);
        else if (strcmp(cmd, "share") == 0)
            status = cmd_share(&a, princ, delay);
        else if (strcmp(cmd, "unshare") == 0)
            status = cmd_unshare(&a, princ);
        else
            status = cmd_purge(&a);
    }
    if (a.ctx != NULL) {
        tk_db_close_for_writes(a.ctx);
        tk_config_free(&a.cfg);
        krb5_free_default_realm(a.ctx, a.realm);
        krb5_free_context(a.ctx);
    }
    return status;
}
