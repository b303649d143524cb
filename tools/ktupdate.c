/* ktupdate.c - give a service a fresh temporary key: make it, put it in the
 * keytab, upload it to the KDC with the service's certificate, settle. */
/*
 * Order of events (doc/ktupdate.8.pod): the KDC's signed key request is
 * verified first; the new key goes into the keytab as pending before it is
 * sent, because the KDC may store it and lose its reply.  It stays pending
 * only while a KDC may hold it, since initiators (kinit -k) take the
 * keytab's newest key and one the KDC lacks counts toward lockout: a
 * refusal, or an upload that never left (we send it over TCP ourselves to
 * tell), takes it out in the same run; a lost reply is asked again a few
 * times, each re-sending the same key, which the KDC accepts again at the
 * same kvno; a key left pending is what the next run sends first.  Old keys
 * stay in the keytab until no ticket in them can still be presented (their
 * expiry plus the clock skew), recorded beside the keytab in
 * KEYTAB.tempkey.  Other principals' entries are never touched.  Uploads go
 * to the primary KDC ("Which KDC" below); the pending key stays through
 * not-primary redirects.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <profile.h>

#include <openssl/rand.h>

#include "tkclient.h"
#include "ktstatus.h"

/* Exported by libkrb5 for registering built-in modules; not in its public
 * headers.  Registering ours avoids any krb5.conf change on servers. */
krb5_error_code k5_plugin_register(krb5_context context, int interface_id,
                                   const char *modname,
                                   krb5_plugin_initvt_fn module);
#define PLUGIN_INTERFACE_CLPREAUTH 2

enum {
    EXIT_OK = 0,
    EXIT_LOCAL = 1,             /* files, certificate, keytab, configuration */
    EXIT_USAGE = 2,
    EXIT_KDC_UNTRUSTED = 3,     /* the KDC's signature did not verify */
    EXIT_REFUSED = 4,           /* the KDC refused the upload */
    EXIT_UNREACHABLE = 5,       /* no answer; any sent key stays pending */
    EXIT_SELF_TEST = 6          /* the new key did not read a new ticket */
};

#define STATE_SUFFIX ".tempkey"
/* The key records of every principal sharing the keytab: with hourly
 * rotation of day-long keys each holds about 25, and a host keytab holds a
 * few principals.  The bound only stops a runaway file. */
#define MAX_RECORDS 65536
#define MAX_REDIRECTS 3         /* not-primary refusals followed in a run */
#define MAX_PRIMARIES 8         /* primary_kdc values tried */
#define MAX_TRIED (MAX_PRIMARIES + MAX_REDIRECTS + 1)
#define KDC_NAME_LEN 256        /* host[:port], as tk_client_session has */
/* Exchanges for one upload in a run while the KDC may hold the key and no
 * answer comes (a lost reply): each re-sends the same key. */
#define UPLOAD_TRIES 3
#define UPLOAD_TIMEOUT 30       /* seconds to connect, send, and to wait for
                                 * each part of the reply */
#define MAX_REPLY_LEN (1024 * 1024)     /* an AS-REP is a few KB */

static const char *progname = "ktupdate";
static volatile sig_atomic_t stop_requested;

static void pause_for(double seconds);

typedef struct {
    const char *cert_file, *key_file, *anchors_file, *keytab_arg;
    const char *principal_arg, *enctypes_arg, *lifetime_arg;
    const char *prometheus_arg;
    int daemon, dry_run, status, verbose;
    int rotate;                 /* a shared principal: upload now, not
                                 * when due */
} options;

/* One line of KEYTAB.tempkey: a key version of a principal and its expiry. */
typedef struct {
    char *principal;
    krb5_kvno kvno;
    int64_t expiry;
    int pending;                /* written, not yet acknowledged */
    int long_term;              /* a long-term key of an adopted principal:
                                 * expiry is when tickets in it end */
} record;

typedef struct {
    krb5_context ctx;
    options opt;
    krb5_principal princ;
    char *princ_name;
    char keytab[PATH_MAX];
    char state_file[PATH_MAX + sizeof(STATE_SUFFIX)];
    tk_identity *id;
    tk_trust *trust;
    krb5_enctype enctypes[TK_MAX_KEYS];
    size_t nenctypes;
    krb5_deltat lifetime;
    krb5_deltat skew;
    record *records;
    size_t nrecords, records_size;
    tk_client_session session;
    krb5_get_init_creds_opt *gic;
    int64_t refresh_by;
    int trace_fd;               /* KRB5_TRACE, kept open by our tracer */
    char *answer;               /* the current exchange's "answered" */
    krb5_boolean answer_direct; /* ... over UDP or TCP, not HTTPS */
    /* The run's pending key (ktupdate(8), THE PENDING KEY). */
    krb5_kvno pending;          /* its version, 0 if none */
    krb5_boolean kdc_may_hold;  /* an earlier run or an unanswered upload
                                 * may have given it to a KDC */
    krb5_kvno stale;            /* a version the KDC refused as holding
                                 * other keys there, or 0 */
    char fate[512];             /* what became of it, once decided */
    /* The current exchange's upload. */
    krb5_boolean upload_left;   /* a KDC took our connection carrying it */
    krb5_boolean upload_unseen; /* the library sent it: we cannot tell */
    krb5_boolean long_term_reply;       /* the KDC answered in the
                                         * principal's long-term key */
    krb5_deltat share_delay;    /* a shared principal's, as the KDC last
                                 * said; 0: not shared */
} updater;

static void
usage(FILE *out)
{
    fprintf(out, "usage: %s --cert FILE --key FILE [--anchors FILE] "
            "[--keytab FILE]\n    [--principal NAME] [--lifetime DURATION] "
            "[--enctypes LIST]\n    [--daemon] [--dry-run] [--rotate] "
            "[--status [--prometheus FILE|-]] [--verbose]\n", progname);
}

/* One line on stderr: the principal, what failed and why; return status. */
static int
say_error(updater *u, int status, krb5_error_code code, const char *what)
{
    const char *msg = code ? krb5_get_error_message(u->ctx, code) : NULL;

    fprintf(stderr, "%s: %s%s%s%s%s\n", progname,
            u->princ_name != NULL ? u->princ_name : "",
            u->princ_name != NULL ? ": " : "", what, msg != NULL ? ": " : "",
            msg != NULL ? msg : "");
    krb5_free_error_message(u->ctx, msg);
    return status;
}

static void
verbose(updater *u, const char *fmt, ...)
{
    va_list ap;

    if (!u->opt.verbose)
        return;
    fprintf(stderr, "%s: ", progname);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---- KEYTAB.tempkey */

static void
free_records(updater *u)
{
    size_t i;

    for (i = 0; i < u->nrecords; i++)
        free(u->records[i].principal);
    u->nrecords = 0;
}

/* Room for one more record. */
static krb5_error_code
grow_records(updater *u)
{
    record *grown;
    size_t size;

    if (u->nrecords < u->records_size)
        return 0;
    if (u->nrecords >= MAX_RECORDS) {
        krb5_set_error_message(u->ctx, ENOSPC, "%s holds %d key records, "
                               "the most it may", u->state_file,
                               MAX_RECORDS);
        return ENOSPC;
    }
    size = u->records_size ? 2 * u->records_size : 64;
    grown = realloc(u->records, size * sizeof(*grown));
    if (grown == NULL)
        return ENOMEM;
    u->records = grown;
    u->records_size = size;
    return 0;
}

static krb5_error_code
load_records(updater *u)
{
    krb5_error_code ret = 0;
    FILE *f;
    char line[1024], name[1000], status[16];
    unsigned int kvno;
    long long expiry;

    free_records(u);
    f = fopen(u->state_file, "r");
    if (f == NULL && errno == ENOENT)
        return 0;
    if (f == NULL) {
        ret = errno;
        krb5_set_error_message(u->ctx, ret, "cannot read %s: %s",
                               u->state_file, strerror(ret));
        return ret;
    }
    while (ret == 0 && fgets(line, sizeof(line), f) != NULL) {
        record *r;

        if (sscanf(line, "%999s %u %lld %15s", name, &kvno, &expiry,
                   status) != 4 || kvno == 0 || kvno > TK_KVNO_MAX)
            continue;           /* skip what we did not write */
        ret = grow_records(u);
        if (ret)
            break;
        r = &u->records[u->nrecords];
        r->principal = strdup(name);
        if (r->principal == NULL) {
            ret = ENOMEM;
            break;
        }
        r->kvno = kvno;
        r->expiry = expiry;
        r->pending = (strcmp(status, "pending") == 0);
        r->long_term = (strcmp(status, "long-term") == 0);
        u->nrecords++;
    }
    fclose(f);
    return ret;
}

/* Write the records atomically, like the keytab, through a new file of
 * our own (O_EXCL: never one another process made or a link to elsewhere),
 * readable by the owner only. */
static krb5_error_code
save_records(updater *u)
{
    char tmp[sizeof(u->state_file) + 32];
    unsigned char rnd[6];
    char rhex[sizeof(rnd) * 2 + 1];
    FILE *f;
    size_t i;
    int ok, fd;

    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return KRB5_CRYPTO_INTERNAL;
    tk_hex(rnd, sizeof(rnd), rhex);
    snprintf(tmp, sizeof(tmp), "%s.%ld-%s", u->state_file, (long)getpid(),
             rhex);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    f = (fd >= 0) ? fdopen(fd, "w") : NULL;
    if (f == NULL) {
        int err = errno;

        if (fd >= 0)
            close(fd);
        krb5_set_error_message(u->ctx, err, "cannot write %s: %s",
                               u->state_file, strerror(err));
        return err;
    }
    for (i = 0; i < u->nrecords; i++) {
        fprintf(f, "%s %u %lld %s\n", u->records[i].principal,
                u->records[i].kvno, (long long)u->records[i].expiry,
                u->records[i].pending ? "pending" :
                u->records[i].long_term ? "long-term" : "stored");
    }
    ok = (fflush(f) == 0 && fsync(fileno(f)) == 0);
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, u->state_file) != 0) {
        int err = errno;

        unlink(tmp);
        krb5_set_error_message(u->ctx, err, "cannot write %s: %s",
                               u->state_file, strerror(err));
        return err;
    }
    return 0;
}

static record *
find_record(updater *u, krb5_kvno kvno)
{
    size_t i;

    for (i = 0; i < u->nrecords; i++) {
        if (u->records[i].kvno == kvno &&
            strcmp(u->records[i].principal, u->princ_name) == 0)
            return &u->records[i];
    }
    return NULL;
}

static void
drop_record(updater *u, record *r)
{
    free(r->principal);
    *r = u->records[--u->nrecords];
}

static krb5_error_code
set_record(updater *u, krb5_kvno kvno, int64_t expiry, int pending)
{
    record *r = find_record(u, kvno);
    krb5_error_code ret;

    if (r == NULL) {
        ret = grow_records(u);
        if (ret)
            return ret;
        r = &u->records[u->nrecords];
        r->principal = strdup(u->princ_name);
        if (r->principal == NULL)
            return ENOMEM;
        u->nrecords++;
    }
    r->kvno = kvno;
    r->expiry = expiry;
    r->pending = pending;
    r->long_term = 0;
    return 0;
}

/* ---- The keytab. */

typedef struct {
    updater *u;
    krb5_kvno drop, add;        /* drop these versions of our principal */
    int64_t now;
    int prune;                  /* also drop versions past their use */
    const tk_held_key *held;    /* and these, which the KDC's replace */
    size_t nheld;
} keep_state;

/* Keep other principals' entries, and ours unless dropped or useless: a key
 * whose recorded expiry plus the clock skew has passed can no longer read
 * any ticket a client may present. */
static krb5_boolean
keep_entry(krb5_context ctx, const krb5_keytab_entry *e, void *arg)
{
    keep_state *ks = arg;
    record *r;
    size_t i;

    if (!krb5_principal_compare(ctx, e->principal, ks->u->princ))
        return TRUE;
    if (e->vno == ks->drop || e->vno == ks->add)
        return FALSE;
    for (i = 0; i < ks->nheld; i++) {
        if (e->vno == ks->held[i].kvno)
            return FALSE;
    }
    if (!ks->prune)
        return TRUE;
    r = find_record(ks->u, e->vno);
    return r == NULL || r->expiry + ks->u->skew > ks->now;
}

/* Rewrite the keytab without our version drop (0: none), and with keys
 * (if any) replacing our version kvno. */
static krb5_error_code
rewrite_keytab(updater *u, krb5_kvno drop, int prune,
               const krb5_keyblock *keys, size_t nkeys, krb5_kvno kvno)
{
    krb5_keytab_entry add[TK_MAX_KEYS];
    keep_state ks = { u, drop, nkeys > 0 ? kvno : 0, time(NULL), prune, NULL,
                      0 };
    size_t i;

    memset(add, 0, sizeof(add));
    for (i = 0; i < nkeys; i++) {
        add[i].principal = u->princ;
        add[i].timestamp = (krb5_timestamp)time(NULL);
        add[i].vno = kvno;
        add[i].key = keys[i];
    }
    return tk_keytab_rewrite(u->ctx, u->keytab, keep_entry, &ks, add, nkeys);
}

/* Something done with each of our principal's keytab entries. */
typedef krb5_error_code (*own_entry_fn)(updater *u,
                                        const krb5_keytab_entry *e,
                                        void *arg);

/* Call fn with each of our principal's entries in the keytab, until one
 * call fails. */
static krb5_error_code
walk_own_entries(updater *u, own_entry_fn fn, void *arg)
{
    krb5_error_code ret;
    krb5_keytab kt = NULL;
    krb5_kt_cursor cursor;
    krb5_keytab_entry e;
    char name[PATH_MAX + 6];

    snprintf(name, sizeof(name), "FILE:%s", u->keytab);
    ret = krb5_kt_resolve(u->ctx, name, &kt);
    if (ret == 0)
        ret = krb5_kt_start_seq_get(u->ctx, kt, &cursor);
    if (ret)
        goto cleanup;
    while (ret == 0 && krb5_kt_next_entry(u->ctx, kt, &e, &cursor) == 0) {
        if (krb5_principal_compare(u->ctx, e.principal, u->princ))
            ret = fn(u, &e, arg);
        krb5_free_keytab_entry_contents(u->ctx, &e);
    }
    krb5_kt_end_seq_get(u->ctx, kt, &cursor);

cleanup:
    if (kt != NULL)
        krb5_kt_close(u->ctx, kt);
    return ret;
}

typedef struct {
    krb5_kvno kvno;
    krb5_keyblock *keys;
    size_t n;
} read_state;

static krb5_error_code
read_key(updater *u, const krb5_keytab_entry *e, void *arg)
{
    read_state *rs = arg;

    if (e->vno != rs->kvno || rs->n == TK_MAX_KEYS)
        return 0;
    return krb5_copy_keyblock_contents(u->ctx, &e->key, &rs->keys[rs->n++]);
}

/* Read our keys of version kvno from the keytab. */
static krb5_error_code
read_keys(updater *u, krb5_kvno kvno, krb5_keyblock *keys, size_t *nkeys_out)
{
    read_state rs = { kvno, keys, 0 };
    krb5_error_code ret;

    ret = walk_own_entries(u, read_key, &rs);
    *nkeys_out = rs.n;
    return ret;
}

typedef struct {
    krb5_kvno lt_kvno;
    int64_t until;
} long_term_state;

static krb5_error_code
note_long_term_key(updater *u, const krb5_keytab_entry *e, void *arg)
{
    long_term_state *ls = arg;
    krb5_error_code ret;
    char when[TK_TIME_LEN];
    record *r;

    if (e->vno > ls->lt_kvno || find_record(u, e->vno) != NULL)
        return 0;
    ret = set_record(u, e->vno, ls->until, 0);
    r = find_record(u, e->vno);
    if (ret || r == NULL)
        return ret;
    r->long_term = 1;
    tk_format_time(ls->until, when);
    verbose(u, "long-term key version %u stays in the keytab while tickets "
            "in it may be presented (they end by %s)", e->vno, when);
    return 0;
}

/*
 * The KDC adopted the principal (its Ack says so): its long-term keys, up to
 * version lt_kvno, are gone from the KDC, and no ticket in them ends after
 * until.  The keytab's entries of those versions have no record (ktadd
 * made them, not ktupdate): record until as their end, so that they stay
 * while such a ticket may be presented (until plus the clock skew) and
 * are pruned after, like any key past use.
 */
static krb5_error_code
note_long_term_keys(updater *u, krb5_kvno lt_kvno, int64_t until)
{
    long_term_state ls = { lt_kvno, until };

    return walk_own_entries(u, note_long_term_key, &ls);
}

/* ---- The exchange. */

static krb5_boolean
kdc_accepts(const tk_key_request *req, krb5_enctype et)
{
    size_t i;

    for (i = 0; i < req->nenctypes; i++) {
        if (req->enctypes[i] == et)
            return TRUE;
    }
    return FALSE;
}

/* The lifetime to ask for: --lifetime, capped by the KDC's maximum. */
static krb5_deltat
key_life(const updater *u, const tk_key_request *req)
{
    return (u->lifetime > 0 && u->lifetime < req->max_lifetime) ?
        u->lifetime : (krb5_deltat)req->max_lifetime;
}

/* This principal's pending key record, or NULL. */
static record *
pending_record(updater *u)
{
    record *pending = NULL;
    size_t i;

    for (i = 0; i < u->nrecords; i++) {
        if (u->records[i].pending &&
            strcmp(u->records[i].principal, u->princ_name) == 0)
            pending = &u->records[i];
    }
    return pending;
}

/* Take key version kvno out of the keytab and the records.  Only the keytab
 * can fail it: it is what initiators read, while a record left for a key
 * the keytab lacks is dropped by the next run. */
static krb5_error_code
drop_key(updater *u, krb5_kvno kvno)
{
    krb5_error_code ret;
    record *r;

    ret = rewrite_keytab(u, kvno, 0, NULL, 0, 0);
    if (ret)
        return ret;
    if (kvno == u->pending)
        u->pending = 0;
    r = find_record(u, kvno);
    if (r != NULL) {
        drop_record(u, r);
        (void)save_records(u);
    }
    return 0;
}

/* Load the pending key into the session to send it again; FALSE if the
 * keytab no longer holds it. */
static krb5_boolean
resend_pending(updater *u, tk_client_session *s, const record *pending)
{
    krb5_error_code ret;
    size_t i;

    ret = read_keys(u, pending->kvno, s->keys, &s->nkeys);
    if (ret || s->nkeys == 0) {
        for (i = 0; i < s->nkeys; i++)
            krb5_free_keyblock_contents(u->ctx, &s->keys[i]);
        s->nkeys = 0;
        return FALSE;
    }
    s->kvno = pending->kvno;
    verbose(u, "re-sending pending key version %u", s->kvno);
    return TRUE;
}

/* Make random keys at the version after the KDC's, one per enctype that
 * both we and the KDC accept. */
static krb5_error_code
make_keys(updater *u, tk_client_session *s)
{
    const tk_key_request *req = s->request;
    krb5_error_code ret;
    size_t i;

    s->kvno = req->current_kvno + 1;
    if (s->kvno > TK_KVNO_MAX) {
        krb5_set_error_message(u->ctx, KRB5_KDB_BAD_VERSION, "key version "
                               "numbers are exhausted");
        return KRB5_KDB_BAD_VERSION;
    }
    for (i = 0; i < u->nenctypes; i++) {
        if (!kdc_accepts(req, u->enctypes[i]))
            continue;
        ret = krb5_c_make_random_key(u->ctx, u->enctypes[i],
                                     &s->keys[s->nkeys]);
        if (ret)
            return ret;
        s->nkeys++;
    }
    if (s->nkeys == 0) {
        krb5_set_error_message(u->ctx, KRB5_PROG_ETYPE_NOSUPP, "the KDC "
                               "accepts none of the requested enctypes");
        return KRB5_PROG_ETYPE_NOSUPP;
    }
    return 0;
}

/* Write the session's keys to the keytab and the records as pending,
 * before they are sent, in place of the pending key of version stale (0:
 * none): one rewrite, since a keytab may hold nothing else. */
static krb5_error_code
add_pending(updater *u, tk_client_session *s, krb5_kvno stale)
{
    krb5_error_code ret;
    record *r;

    ret = rewrite_keytab(u, stale, 0, s->keys, s->nkeys, s->kvno);
    if (ret)
        return ret;
    /* In the keytab now, and no KDC has seen it yet. */
    u->pending = s->kvno;
    u->kdc_may_hold = FALSE;
    r = (stale != 0) ? find_record(u, stale) : NULL;
    if (r != NULL)
        drop_record(u, r);
    ret = set_record(u, s->kvno,
                     s->request->kdc_time + key_life(u, s->request), 1);
    if (ret == 0)
        ret = save_records(u);
    verbose(u, "wrote pending key version %u", s->kvno);
    return ret;
}

/* ---- Shared principals (ktupdate(8), SHARED SERVICES). */

/* Whether the keytab holds our keys of version kvno. */
static krb5_boolean
keytab_has(updater *u, krb5_kvno kvno)
{
    krb5_keyblock keys[TK_MAX_KEYS];
    size_t n = 0, i;
    krb5_error_code ret = read_keys(u, kvno, keys, &n);

    for (i = 0; i < n; i++)
        krb5_free_keyblock_contents(u->ctx, &keys[i]);
    return ret == 0 && n > 0;
}

/* What a run does for a shared principal. */
typedef enum { SHARED_UPLOAD, SHARED_FETCH, SHARED_IDLE } shared_plan;

/*
 * For a shared principal, what the run sends once the KDC's offer is
 * verified: a new key only when the KDC holds none pending and the newest
 * one it holds is due for rotation (or it holds none, or --rotate says
 * now); otherwise a fetch if the keytab lacks a version the KDC holds
 * (leaving out version ignore, a pending key of ours the KDC moved past);
 * otherwise nothing.  Sets u->refresh_by; changes nothing else.
 */
static shared_plan
plan_shared(updater *u, const tk_key_request *req, krb5_kvno ignore)
{
    const tk_key_info *newest = NULL;
    krb5_boolean pending_at_kdc = FALSE;
    size_t i;

    for (i = 0; i < req->nheld; i++) {
        if (newest == NULL || req->held[i].kvno > newest->kvno)
            newest = &req->held[i];
        if (req->held[i].active_at > req->kdc_time)
            pending_at_kdc = TRUE;
    }
    u->refresh_by = (newest == NULL) ? req->kdc_time :
        tk_shared_refresh_by(newest->expiry, newest->active_at,
                             req->kdc_time, req->share_delay);
    if (!pending_at_kdc && (u->opt.rotate || u->refresh_by <= req->kdc_time))
        return SHARED_UPLOAD;
    for (i = 0; i < req->nheld; i++) {
        if (req->held[i].kvno == ignore || !keytab_has(u, req->held[i].kvno))
            return SHARED_FETCH;
    }
    return SHARED_IDLE;
}

/* Act on the plan: *upload_out for the caller to make and send the key,
 * or a fetch or nothing, once a pending key of ours that the KDC moved
 * past is out of the keytab. */
static krb5_error_code
prepare_shared(updater *u, tk_client_session *s, record *pending,
               krb5_boolean *upload_out)
{
    shared_plan plan = plan_shared(u, s->request,
                                   pending != NULL ? pending->kvno : 0);
    krb5_error_code ret;

    *upload_out = (plan == SHARED_UPLOAD);
    if (plan == SHARED_UPLOAD)
        return 0;
    if (pending != NULL) {
        verbose(u, "the KDC moved on without pending key version %u",
                pending->kvno);
        ret = drop_key(u, pending->kvno);
        if (ret)
            return ret;
    }
    if (plan == SHARED_FETCH)
        verbose(u, "fetching the key versions the keytab lacks");
    s->fetch = (plan == SHARED_FETCH);
    s->idle = (plan == SHARED_IDLE);
    return 0;
}

/* The KDC's keys of a shared principal into the keytab (in place of any
 * we hold at those versions, and without our pending key when the KDC
 * answered without storing it) and the records, pruning keys past use:
 * one rewrite. */
static krb5_error_code
install_held(updater *u)
{
    const tk_client_session *s = &u->session;
    keep_state ks = { u, 0, 0, time(NULL), 1, s->held, s->nheld };
    krb5_keytab_entry *add;
    krb5_error_code ret;
    krb5_boolean ours_held = FALSE;
    size_t i, j, n = 0;
    record *r;

    for (i = 0; i < s->nheld; i++)
        ours_held = ours_held || s->held[i].kvno == u->pending;
    if (s->ack->fetched && u->pending != 0 && !ours_held)
        ks.drop = u->pending;
    add = calloc(s->nheld * TK_MAX_KEYS, sizeof(*add));
    if (add == NULL)
        return ENOMEM;
    for (i = 0; i < s->nheld; i++) {
        for (j = 0; j < s->held[i].nkeys; j++) {
            add[n].principal = u->princ;
            add[n].timestamp = (krb5_timestamp)ks.now;
            add[n].vno = s->held[i].kvno;
            add[n].key = s->held[i].keys[j];
            n++;
        }
    }
    ret = tk_keytab_rewrite(u->ctx, u->keytab, keep_entry, &ks, add, n);
    free(add);
    if (ret)
        return ret;
    if (ks.drop != 0 && (r = find_record(u, ks.drop)) != NULL)
        drop_record(u, r);
    for (i = 0; ret == 0 && i < s->nheld; i++)
        ret = set_record(u, s->held[i].kvno, s->held[i].expiry, 0);
    return ret;
}

/* The kvnos of the KDC's answer, for the line ("3,4,5"). */
static void
held_list(const tk_client_session *s, char *buf, size_t size)
{
    size_t i, used = 0;

    buf[0] = '\0';
    for (i = 0; i < s->nheld && used + 8 < size; i++) {
        used += snprintf(buf + used, size - used, "%s%u", i ? "," : "",
                         s->held[i].kvno);
    }
}

/*
 * Choose the key to send, once the KDC's key request is verified: the
 * pending one if the KDC has not moved past it (it may have stored it and
 * lost the reply), otherwise fresh random keys at the next version, written
 * to the keytab as pending before anything is sent.
 */
static krb5_error_code
prepare_keys(updater *u, tk_client_session *s)
{
    const tk_key_request *req = s->request;
    record *pending = pending_record(u);
    krb5_error_code ret;
    krb5_boolean upload;

    if (pending != NULL && pending->kvno != u->stale &&
        (req->current_kvno + 1 == pending->kvno ||
         req->current_kvno == pending->kvno) &&
        resend_pending(u, s, pending))
        return 0;
    if (req->share_delay > 0) {
        ret = prepare_shared(u, s, pending, &upload);
        if (ret || !upload)
            return ret;
    }
    /* Otherwise the KDC moved on without it, or refused its version: that
     * key is of no use, and the new one takes its place. */
    ret = make_keys(u, s);
    if (ret == 0)
        ret = add_pending(u, s, pending != NULL ? pending->kvno : 0);
    return ret;
}

/* Choose the key to send; on failure say why in the session (a local
 * problem: nothing was sent).  ctx is the exchange's; messages are set on
 * u->ctx, where the keytab is written. */
static krb5_error_code
prepare(krb5_context ctx, tk_client_session *s)
{
    updater *u = s->arg;
    krb5_error_code ret = prepare_keys(u, s);
    const char *msg;

    if (ret) {
        msg = krb5_get_error_message(u->ctx, ret);
        snprintf(s->message, sizeof(s->message), "cannot prepare the new "
                 "key: %s", msg);
        krb5_free_error_message(u->ctx, msg);
    }
    return ret;
}

/* Whether the KDC's answer for a shared principal held version kvno. */
static krb5_boolean
held_version(const tk_client_session *s, krb5_kvno kvno)
{
    size_t i;

    for (i = 0; i < s->nheld; i++) {
        if (s->held[i].kvno == kvno)
            return TRUE;
    }
    return FALSE;
}

/* Get a ticket to ourselves with the new TGT, from the KDC that stored the
 * key (ctx), and read it with the keytab: in key version kvno, or for a
 * shared principal (kvno 0) in any version the KDC handed us, since it
 * issues tickets in the new key only once its delay is over. */
static krb5_error_code
self_test(updater *u, krb5_context ctx, krb5_creds *tgt, krb5_kvno kvno)
{
    krb5_error_code ret;
    krb5_ccache cc = NULL;
    krb5_creds in, *out = NULL;
    krb5_ticket *tkt = NULL;
    krb5_keytab kt = NULL;
    char name[PATH_MAX + 6];

    memset(&in, 0, sizeof(in));
    ret = krb5_cc_new_unique(ctx, "MEMORY", NULL, &cc);
    if (ret == 0)
        ret = krb5_cc_initialize(ctx, cc, u->princ);
    if (ret == 0)
        ret = krb5_cc_store_cred(ctx, cc, tgt);
    if (ret)
        goto cleanup;
    in.client = u->princ;
    in.server = u->princ;
    ret = krb5_get_credentials(ctx, KRB5_GC_NO_STORE, cc, &in, &out);
    if (ret == 0)
        ret = krb5_decode_ticket(&out->ticket, &tkt);
    snprintf(name, sizeof(name), "FILE:%s", u->keytab);
    if (ret == 0)
        ret = krb5_kt_resolve(ctx, name, &kt);
    if (ret == 0)
        ret = krb5_server_decrypt_ticket_keytab(ctx, kt, tkt);
    if (ret == 0 && kvno == 0 && !held_version(&u->session,
                                               tkt->enc_part.kvno)) {
        ret = KRB5KRB_AP_ERR_BADKEYVER;
        krb5_set_error_message(ctx, ret, "the KDC issued a ticket in key "
                               "version %u, which it did not hand us",
                               tkt->enc_part.kvno);
    } else if (ret == 0 && kvno != 0 && tkt->enc_part.kvno != kvno) {
        ret = KRB5KRB_AP_ERR_BADKEYVER;
        krb5_set_error_message(ctx, ret, "the KDC issued a ticket in key "
                               "version %u, not %u", tkt->enc_part.kvno,
                               kvno);
    }

cleanup:
    if (kt != NULL)
        krb5_kt_close(ctx, kt);
    krb5_free_ticket(ctx, tkt);
    krb5_free_creds(ctx, out);
    if (cc != NULL)
        krb5_cc_destroy(ctx, cc);
    return ret;
}

/* The success line; other programs parse its fields, so new ones go at the
 * end. */
static void
print_result(updater *u, const char *verb, const char *kdc,
             const char *extra)
{
    char when[TK_TIME_LEN], ename[64];
    size_t i;

    tk_format_time(u->session.ack->expiry, when);
    printf("%s %s kvno %u expires %s enctypes", u->princ_name, verb,
           u->session.kvno, when);
    for (i = 0; i < u->session.nkeys; i++) {
        if (krb5_enctype_to_name(u->session.keys[i].enctype, FALSE, ename,
                                 sizeof(ename)) != 0)
            snprintf(ename, sizeof(ename), "%d",
                     u->session.keys[i].enctype);
        printf("%s%s", i ? "," : " ", ename);
    }
    printf(" keytab %s kdc %s%s\n", u->keytab, kdc, extra);
    fflush(stdout);
}

/* Whether code is an answer from a KDC rather than a failure to reach one.
 */
static krb5_boolean
is_kdc_answer(krb5_error_code code)
{
    return code == KRB5_PREAUTH_FAILED ||
        (code > ERROR_TABLE_BASE_krb5 &&
         code <= ERROR_TABLE_BASE_krb5 + 127);
}

/* ---- Which KDC: the primary (ktupdate(8), MANY KDCS). */

/*
 * Only the primary KDC stores keys; a replica refuses with not-primary and
 * names the primary when it knows it.  An exchange goes either to one
 * chosen KDC, through a context whose profile names that KDC alone as the
 * realm's kdc and primary_kdc (so the library cannot wander to another), or
 * to the realm's own list through the updater's context.  The pending key
 * stays in the keytab across redirects: every KDC is offered the same key,
 * which the primary accepts again at the same kvno.
 */

/* One AS exchange and where it went. */
typedef struct {
    krb5_context ctx;           /* its own, or u->ctx for the realm's list */
    char target[KDC_NAME_LEN];  /* the chosen KDC; empty for the list */
    char answered[KDC_NAME_LEN];        /* the KDC that replied last, as the
                                         * library traced it, if known */
    krb5_creds creds;
    krb5_error_code ret;
} attempt;

/* The KDCs tried in this run: a redirect never goes back to one. */
typedef struct {
    char names[MAX_TRIED][KDC_NAME_LEN];
    krb5_boolean unreached[MAX_TRIED];  /* could not be reached */
    size_t n;
} tried_set;

/* Write a traced "HOST:PORT" address to out, bracketing an IPv6 host. */
static void
format_address(const char *addr, size_t len, char *out)
{
    size_t i, colon = len, colons = 0;

    for (i = 0; i < len; i++) {
        if (addr[i] == ':') {
            colon = i;
            colons++;
        }
    }
    if (colons > 1) {
        snprintf(out, KDC_NAME_LEN, "[%.*s]:%.*s", (int)colon, addr,
                 (int)(len - colon - 1), addr + colon + 1);
    } else {
        snprintf(out, KDC_NAME_LEN, "%.*s", (int)len, addr);
    }
}

/*
 * Trace callback.  The library names the address a reply came from only in
 * its trace ("Received answer (N bytes) from stream 192.0.2.1:88"), so note
 * it for the current exchange; and keep writing KRB5_TRACE, which a
 * callback replaces.
 */
static void KRB5_CALLCONV
trace(krb5_context ctx, const krb5_trace_info *info, void *arg)
{
    updater *u = arg;
    const char *p, *transport = NULL;
    ssize_t n;

    if (info == NULL)
        return;
    if (u->trace_fd >= 0) {
        n = write(u->trace_fd, info->message, strlen(info->message));
        (void)n;                /* tracing is best effort, as in libkrb5 */
    }
    /* Only a reply in the principal's long-term key makes the library ask
     * for one: we preauthenticate by upload alone. */
    if (u->answer != NULL && strstr(info->message, "Getting AS key") != NULL)
        u->long_term_reply = TRUE;
    p = strstr(info->message, "Received answer (");
    if (p != NULL)
        p = strstr(p, ") from ");
    if (p != NULL) {
        transport = p + 7;
        p = strchr(transport, ' ');     /* after "stream" or "dgram" */
    }
    if (p != NULL && u->answer != NULL) {
        format_address(p + 1, strcspn(p + 1, " \r\n"), u->answer);
        u->answer_direct = strncmp(transport, "stream ", 7) == 0 ||
            strncmp(transport, "dgram ", 6) == 0;
    }
}

/* Split a KDC name (host, host:port, [v6]:port, maybe tcp/ or udp/ first)
 * into host and port, the port defaulting to 88; URLs stay whole. */
static void
split_kdc(const char *name, char *host, char *port)
{
    const char *colon, *close;

    if (strncmp(name, "tcp/", 4) == 0 || strncmp(name, "udp/", 4) == 0)
        name += 4;
    strcpy(port, "88");
    close = (name[0] == '[') ? strchr(name, ']') : NULL;
    colon = strchr(name, ':');
    if (close != NULL) {
        snprintf(host, KDC_NAME_LEN, "%.*s", (int)(close - name - 1),
                 name + 1);
        if (close[1] == ':')
            snprintf(port, KDC_NAME_LEN, "%s", close + 2);
    } else if (colon != NULL && strchr(colon + 1, ':') == NULL &&
               strchr(name, '/') == NULL) {
        snprintf(host, KDC_NAME_LEN, "%.*s", (int)(colon - name), name);
        snprintf(port, KDC_NAME_LEN, "%s", colon + 1);
    } else {
        snprintf(host, KDC_NAME_LEN, "%s", name);
    }
}

static krb5_boolean
same_kdc(const char *a, const char *b)
{
    char ha[KDC_NAME_LEN], pa[KDC_NAME_LEN];
    char hb[KDC_NAME_LEN], pb[KDC_NAME_LEN];

    split_kdc(a, ha, pa);
    split_kdc(b, hb, pb);
    return strcasecmp(ha, hb) == 0 && atoi(pa) == atoi(pb);
}

/* The entry for name in t, or -1. */
static int
find_tried(const tried_set *t, const char *name)
{
    size_t i;

    for (i = 0; i < t->n; i++) {
        if (same_kdc(t->names[i], name))
            return (int)i;
    }
    return -1;
}

static void
add_tried(tried_set *t, const char *name, krb5_boolean unreached)
{
    if (name[0] == '\0' || t->n == MAX_TRIED || find_tried(t, name) >= 0)
        return;
    t->unreached[t->n] = unreached;
    snprintf(t->names[t->n++], KDC_NAME_LEN, "%s", name);
}

/* ---- The upload's own transport. */

static krb5_boolean
write_all(int fd, const unsigned char *buf, size_t len)
{
    ssize_t n;

    while (len > 0) {
        n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return FALSE;
        buf += n;
        len -= (size_t)n;
    }
    return TRUE;
}

/* FALSE on an error or an early end (errno 0). */
static krb5_boolean
read_all(int fd, unsigned char *buf, size_t len)
{
    ssize_t n;

    while (len > 0) {
        n = recv(fd, buf, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            errno = 0;
        if (n <= 0)
            return FALSE;
        buf += n;
        len -= (size_t)n;
    }
    return TRUE;
}

/* A TCP connection to kdc (a traced host:port) whose connect, sends and
 * receives each give up after UPLOAD_TIMEOUT; -1 with errno set (0 with a
 * message in *why if the address cannot be read). */
static int
connect_kdc(const char *kdc, const char **why)
{
    char host[KDC_NAME_LEN], port[KDC_NAME_LEN];
    struct addrinfo hints, *ai = NULL;
    struct timeval tv = { UPLOAD_TIMEOUT, 0 };
    int fd, err;

    *why = NULL;
    split_kdc(kdc, host, port);
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    err = getaddrinfo(host, port, &hints, &ai);
    if (err) {
        *why = gai_strerror(err);
        errno = 0;
        return -1;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    /* On Linux SO_SNDTIMEO also bounds connect(). */
    if (fd >= 0 &&
        (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
         setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
         connect(fd, ai->ai_addr, ai->ai_addrlen) != 0)) {
        err = errno;
        close(fd);
        fd = -1;
        errno = err;
    }
    freeaddrinfo(ai);
    return fd;
}

/*
 * Send the upload over TCP to kdc (host:port), the KDC that made the offer,
 * framed as RFC 4120 says, and read its reply into *reply_out.  Doing it
 * here tells what the library cannot: a refused connection means that no
 * KDC saw the key, so it can leave the keytab at once (the library would
 * also try UDP, where a datagram's fate is never told).  Sets
 * u->upload_left once a KDC takes the connection.
 */
static krb5_error_code
send_upload(updater *u, krb5_context ctx, const char *kdc,
            const krb5_data *msg, krb5_data *reply_out)
{
    unsigned char head[4];
    uint32_t len;
    const char *why;
    int fd, err;

    memset(reply_out, 0, sizeof(*reply_out));
    fd = connect_kdc(kdc, &why);
    if (fd < 0)
        goto failed;
    u->upload_left = TRUE;
    head[0] = (unsigned char)(msg->length >> 24);
    head[1] = (unsigned char)(msg->length >> 16);
    head[2] = (unsigned char)(msg->length >> 8);
    head[3] = (unsigned char)msg->length;
    if (!write_all(fd, head, 4) ||
        !write_all(fd, (const unsigned char *)msg->data, msg->length) ||
        !read_all(fd, head, 4))
        goto failed;
    len = ((uint32_t)head[0] << 24) | ((uint32_t)head[1] << 16) |
        ((uint32_t)head[2] << 8) | head[3];
    if (len == 0 || len > MAX_REPLY_LEN) {
        errno = EMSGSIZE;
        goto failed;
    }
    reply_out->data = malloc(len);
    if (reply_out->data == NULL) {
        errno = ENOMEM;
        goto failed;
    }
    reply_out->length = len;
    if (!read_all(fd, (unsigned char *)reply_out->data, len))
        goto failed;
    close(fd);
    return 0;

failed:
    err = errno;
    if (why == NULL)
        why = err ? strerror(err) : "the connection closed before a reply";
    krb5_set_error_message(ctx, KRB5_KDC_UNREACH, "the upload to %s: %s",
                           kdc, why);
    free(reply_out->data);
    memset(reply_out, 0, sizeof(*reply_out));
    if (fd >= 0)
        close(fd);
    return KRB5_KDC_UNREACH;
}

/* The library's pre-send hook: a request that carries the upload goes
 * through send_upload() when the trace named the KDC that made the offer
 * (the library sends any other request, and the upload to an HTTPS proxy,
 * whose fate we cannot tell). */
static krb5_error_code KRB5_CALLCONV
send_hook(krb5_context ctx, void *data, const krb5_data *realm,
          const krb5_data *message, krb5_data **new_message_out,
          krb5_data **new_reply_out)
{
    updater *u = data;
    krb5_data reply;
    krb5_error_code ret;

    if (u->answer == NULL || !u->session.uploaded)
        return 0;
    if (!u->answer_direct || u->answer[0] == '\0') {
        u->upload_unseen = TRUE;
        return 0;
    }
    ret = send_upload(u, ctx, u->answer, message, &reply);
    if (ret)
        return ret;
    ret = krb5_copy_data(ctx, &reply, new_reply_out);
    free(reply.data);
    return ret;
}

/* Have ctx's exchanges traced and their uploads sent by us. */
static void
watch(updater *u, krb5_context ctx)
{
    (void)krb5_set_trace_callback(ctx, trace, u);
    krb5_set_kdc_send_hook(ctx, send_hook, u);
}

/* Copy the message for code from ctx (an exchange's context) to u->ctx,
 * which every line is said from. */
static void
relay(updater *u, krb5_context ctx, krb5_error_code code)
{
    const char *msg;

    if (ctx == u->ctx || ctx == NULL || code == 0)
        return;
    msg = krb5_get_error_message(ctx, code);
    krb5_set_error_message(u->ctx, code, "%s", msg);
    krb5_free_error_message(ctx, msg);
}

/* The realm's primary_kdc values (MIT's older name: master_kdc), or NULL;
 * free with profile_free_list(). */
static char **
realm_primaries(updater *u)
{
    profile_t profile = NULL;
    char realm[KDC_NAME_LEN], **values = NULL;
    const char *path[4] = { "realms", realm, "primary_kdc", NULL };

    snprintf(realm, sizeof(realm), "%.*s", (int)u->princ->realm.length,
             u->princ->realm.data);
    if (krb5_get_profile(u->ctx, &profile) != 0)
        return NULL;
    if (profile_get_values(profile, path, &values) != 0) {
        path[2] = "master_kdc";
        if (profile_get_values(profile, path, &values) != 0)
            values = NULL;
    }
    profile_release(profile);
    return values;
}

/* Set up an exchange with target, or with the realm's KDC list if target
 * is NULL. */
static krb5_error_code
open_attempt(updater *u, const char *target, attempt *a)
{
    krb5_error_code ret;
    char realm[KDC_NAME_LEN];
    const char *const kdc_path[] = { "realms", realm, "kdc", NULL };
    const char *const primary_path[] = { "realms", realm, "primary_kdc",
                                         NULL };
    const char *const values[] = { target, NULL };
    const tk_profile_setting settings[] = {
        { kdc_path, values }, { primary_path, values }
    };

    memset(a, 0, sizeof(*a));
    if (target == NULL) {
        a->ctx = u->ctx;
        return 0;
    }
    snprintf(a->target, sizeof(a->target), "%s", target);
    snprintf(realm, sizeof(realm), "%.*s", (int)u->princ->realm.length,
             u->princ->realm.data);
    ret = tk_context_override(u->ctx, settings, 2, 0, &a->ctx);
    if (ret == 0)
        ret = k5_plugin_register(a->ctx, PLUGIN_INTERFACE_CLPREAUTH,
                                 "tempkey", clpreauth_tempkey_initvt);
    if (ret == 0)
        watch(u, a->ctx);
    if (ret) {
        relay(u, a->ctx, ret);
        krb5_free_context(a->ctx);
        a->ctx = NULL;
    }
    return ret;
}

static void
close_attempt(updater *u, attempt *a)
{
    if (a->ctx == NULL)
        return;
    krb5_free_cred_contents(a->ctx, &a->creds);
    if (a->ctx != u->ctx)
        krb5_free_context(a->ctx);
    memset(a, 0, sizeof(*a));
}

/* Where a's exchange went, for the lines that name it. */
static const char *
kdc_of(const attempt *a)
{
    if (a->target[0] != '\0')
        return a->target;
    return (a->answered[0] != '\0') ? a->answered : "unknown";
}

/* Whether the current exchange's upload may have reached a KDC: it was
 * built, and a KDC took the connection carrying it, or the library sent it
 * (send_hook()). */
static krb5_boolean
upload_may_have_arrived(const updater *u)
{
    return u->session.uploaded && (u->upload_left || u->upload_unseen);
}

/* One AS exchange on a's context, the module uploading through the
 * session. */
static void
exchange(updater *u, attempt *a)
{
    tk_client_session *s = &u->session;
    krb5_init_creds_context icc = NULL;

    tk_client_session_clear(s);
    s->uploaded = FALSE;
    s->reason = 0;
    s->primary[0] = '\0';
    s->message[0] = '\0';
    s->dry_run = u->opt.dry_run;
    u->answer = a->answered;
    u->answer_direct = FALSE;
    u->upload_left = u->upload_unseen = FALSE;
    u->long_term_reply = FALSE;
    tk_client_set_session(s);
    a->ret = krb5_init_creds_init(a->ctx, u->princ, NULL, NULL, 0, u->gic,
                                  &icc);
    if (a->ret == 0)
        a->ret = krb5_init_creds_get(a->ctx, icc);
    if (a->ret == 0)
        a->ret = krb5_init_creds_get_creds(a->ctx, icc, &a->creds);
    tk_client_set_session(NULL);
    u->answer = NULL;
    krb5_init_creds_free(a->ctx, icc);
    relay(u, a->ctx, a->ret);
    /* Only a refusal says that this KDC did not store the upload. */
    if (upload_may_have_arrived(u) && s->reason == 0)
        u->kdc_may_hold = TRUE;
}

/* ---- The pending key when no acknowledgement comes (ktupdate(8), THE
 * PENDING KEY). */

/* Whether the KDC refused the key's version because it holds other keys
 * there, or none any more (they expired and were purged): it can never
 * take this key, and a fresh one at the next version it can. */
static krb5_boolean
stale_version(const tk_client_session *s)
{
    return s->reason == TK_REASON_KVNO_NOT_ABOVE_STORED &&
        s->request != NULL && s->kvno == s->request->current_kvno;
}

/*
 * Decide once what becomes of the run's pending key when no acknowledgement
 * came, and do it; the words for the line that says the failure go in
 * u->fate.  It stays while a KDC may hold it (an earlier run sent it, or an
 * upload got no answer), since tickets may already be encrypted in it;
 * otherwise it goes at once, so that kinit -k and other initiators, which
 * take the keytab's newest key, never pick a key no KDC holds.  A refusal
 * is the KDC's word: the key goes unless the KDC holds a key at its version
 * that may be this one (a re-send refused for another reason).  Returns
 * the error of a removal that failed.
 */
static krb5_error_code
decide_pending(updater *u)
{
    const tk_client_session *s = &u->session;
    krb5_boolean keep = u->kdc_may_hold;
    krb5_error_code ret;
    const char *msg;

    if (u->pending == 0 || u->fate[0] != '\0')
        return 0;
    if (s->reason != 0 && s->reason != TK_REASON_NOT_PRIMARY &&
        s->kvno == u->pending) {
        keep = s->request != NULL && s->kvno <= s->request->current_kvno &&
            !stale_version(s);
    }
    if (u->pending == u->stale)
        keep = FALSE;
    if (keep) {
        snprintf(u->fate, sizeof(u->fate), "the key stays pending and the "
                 "next run re-sends it");
        return 0;
    }
    ret = drop_key(u, u->pending);
    if (ret == 0) {
        snprintf(u->fate, sizeof(u->fate), "no KDC holds the new key: it "
                 "is out of the keytab again");
    } else if (ret == KRB5_KT_NOTFOUND) {
        /* It is the keytab's only key: taking it out leaves initiators no
         * better off, and the next run sends or replaces it. */
        snprintf(u->fate, sizeof(u->fate), "no KDC holds the new key, "
                 "which stays pending as the keytab's only key");
        ret = 0;
    } else {
        msg = krb5_get_error_message(u->ctx, ret);
        snprintf(u->fate, sizeof(u->fate), "no KDC holds the new key, which "
                 "could not be taken out of the keytab: %s", msg);
        krb5_free_error_message(u->ctx, msg);
    }
    return ret;
}

/* Whether the KDC may hold the pending key and gave no answer at all (a
 * lost reply, a KDC gone away): worth asking again. */
static krb5_boolean
unanswered(const updater *u, const attempt *a)
{
    const tk_client_session *s = &u->session;

    return u->pending != 0 && u->kdc_may_hold && !u->opt.dry_run &&
        a->ret != 0 && s->reason == 0 && s->message[0] == '\0' &&
        !is_kdc_answer(a->ret);
}

/* Whether a's KDC could not be reached at all: nothing was sent to it and
 * nothing came back. */
static krb5_boolean
unreached(const updater *u, const attempt *a)
{
    const tk_client_session *s = &u->session;

    return a->ret != 0 && s->request == NULL && !s->uploaded &&
        s->message[0] == '\0' && !is_kdc_answer(a->ret);
}

static krb5_boolean
not_primary(const updater *u, const attempt *a)
{
    return a->ret != 0 && u->session.reason == TK_REASON_NOT_PRIMARY;
}

/* A not-primary refusal that cannot be followed: one line, with what the
 * administrator can do.  The pending key stays for the next run. */
static int
redirect_failed(updater *u, const attempt *a, const char *why)
{
    fprintf(stderr, "%s: %s: %s (KDC %s); %s: set primary_kdc in [realms] "
            "%.*s of krb5.conf\n", progname, u->princ_name,
            u->session.message, kdc_of(a), why,
            (int)u->princ->realm.length, u->princ->realm.data);
    return EXIT_REFUSED;
}

/* Follow not-primary refusals to the KDCs they name, a few at most and
 * never back to one already tried.  Returns EXIT_OK when *a holds an
 * outcome for the caller, else the status of a line already said. */
static int
follow_redirects(updater *u, attempt *a, tried_set *tried)
{
    krb5_error_code ret;
    char named[KDC_NAME_LEN], why[3 * KDC_NAME_LEN + sizeof(u->fate)];
    int hops, seen;

    for (hops = 0; not_primary(u, a); hops++) {
        snprintf(named, sizeof(named), "%s", u->session.primary);
        if (named[0] == '\0')
            return redirect_failed(u, a, "it names no primary KDC");
        seen = find_tried(tried, named);
        if (seen >= 0 && tried->unreached[seen]) {
            /* The primary is known, just down: not a configuration error. */
            (void)decide_pending(u);
            snprintf(why, sizeof(why), "cannot reach the primary KDC %s "
                     "named by KDC %s; %s", named, kdc_of(a), u->fate);
            return say_error(u, EXIT_UNREACHABLE, 0, why);
        }
        if (seen >= 0) {
            snprintf(why, sizeof(why), "the primary it names, %s, was "
                     "already tried", named);
            return redirect_failed(u, a, why);
        }
        if (hops == MAX_REDIRECTS) {
            snprintf(why, sizeof(why), "%d redirects were followed already "
                     "and it names yet another KDC, %s", MAX_REDIRECTS,
                     named);
            return redirect_failed(u, a, why);
        }
        verbose(u, "KDC %s is not the primary; it names %s", kdc_of(a),
                named);
        add_tried(tried, named, FALSE);
        close_attempt(u, a);
        ret = open_attempt(u, named, a);
        if (ret)
            return say_error(u, EXIT_LOCAL, ret, "cannot set up an exchange "
                             "with the primary KDC");
        exchange(u, a);
    }
    return EXIT_OK;
}

/*
 * Run the exchange against the primary: primary_kdc's values in order when
 * set, then (if none can be reached) the realm's KDC list, then the KDCs
 * that not-primary refusals name.  Leaves the last exchange in *a; returns
 * as follow_redirects() does.
 */
static int
find_primary(updater *u, attempt *a)
{
    krb5_error_code ret;
    tried_set tried;
    char **primaries = realm_primaries(u);
    const char *msg;
    size_t i;

    tried.n = 0;
    for (i = 0; primaries != NULL && primaries[i] != NULL &&
             i < MAX_PRIMARIES && a->ctx == NULL; i++) {
        if (find_tried(&tried, primaries[i]) >= 0)
            continue;
        ret = open_attempt(u, primaries[i], a);
        if (ret) {
            profile_free_list(primaries);
            return say_error(u, EXIT_LOCAL, ret, "cannot set up an exchange "
                             "with the primary KDC");
        }
        verbose(u, "uploading to the primary KDC %s (primary_kdc)",
                primaries[i]);
        exchange(u, a);
        add_tried(&tried, primaries[i], unreached(u, a));
        if (unreached(u, a)) {
            msg = krb5_get_error_message(u->ctx, a->ret);
            verbose(u, "the primary KDC %s cannot be reached: %s",
                    primaries[i], msg);
            krb5_free_error_message(u->ctx, msg);
            close_attempt(u, a);
        }
    }
    if (a->ctx == NULL) {
        if (primaries != NULL)
            verbose(u, "no primary_kdc can be reached; falling back to the "
                    "realm's KDC list");
        (void)open_attempt(u, NULL, a);
        exchange(u, a);
        add_tried(&tried, a->answered, FALSE);
    }
    profile_free_list(primaries);
    return follow_redirects(u, a, &tried);
}

/* ---- The outcome. */

/* The KDC answered with an error before offering an upload: say what it
 * means for us in s->message, and return the status; EXIT_OK if a's
 * outcome is something else. */
static int
no_offer(updater *u, attempt *a)
{
    tk_client_session *s = &u->session;
    const char *why;
    int status = EXIT_REFUSED;

    if (s->request != NULL || s->message[0] != '\0')
        return EXIT_OK;
    why = krb5_get_error_message(a->ctx, a->ret);
    if (u->long_term_reply) {
        /* It does not require preauthentication, so the KDC sent a ticket
         * at once, in a key this run does not use. */
        snprintf(s->message, sizeof(s->message), "the KDC answered in this "
                 "principal's long-term key and offers no tempkey upload: "
                 "it is not managed by tempkey; an administrator adopts it "
                 "first (tempkey-admin adopt %s on the KDC)", u->princ_name);
    } else if (a->ret == KRB5KRB_ERR_GENERIC ||
        a->ret == KRB5KDC_ERR_SVC_UNAVAILABLE) {
        /* Not a verdict on the principal: the KDC failed to look it up
         * (its database unreachable, e.g. an LDAP server down). */
        snprintf(s->message, sizeof(s->message), "the KDC could not look "
                 "up this principal (is its database reachable?); nothing "
                 "was sent, try again later: %s", why);
        status = EXIT_UNREACHABLE;
    } else if (!is_kdc_answer(a->ret)) {
        status = EXIT_OK;
    } else if (a->ret == KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN) {
        snprintf(s->message, sizeof(s->message), "the KDC does not know "
                 "this principal and tempkey_enroll does not let it enroll");
    } else if (a->ret == KRB5_PREAUTH_FAILED ||
               a->ret == KRB5KDC_ERR_PREAUTH_FAILED ||
               a->ret == KRB5KDC_ERR_ETYPE_NOSUPP) {
        snprintf(s->message, sizeof(s->message), "the KDC offers no "
                 "tempkey upload for this principal: it is neither managed "
                 "nor allowed to enroll (tempkey_enroll); one that exists "
                 "already, with long-term keys, is adopted first "
                 "(tempkey-admin adopt %s on the KDC)", u->princ_name);
    } else {
        /* Refused before any offer, for a reason of the KDC's own (e.g.
         * KDC_ERR_KEY_EXP, a disabled principal). */
        snprintf(s->message, sizeof(s->message), "the KDC refused the "
                 "exchange before offering an upload: %s", why);
    }
    krb5_free_error_message(a->ctx, why);
    return status;
}

/* A failed exchange: say why (the pending key's fate is decided after, or
 * here for a KDC that did not answer, whose line says it). */
static int
failed(updater *u, attempt *a)
{
    tk_client_session *s = &u->session;
    const char *msg;
    int status;

    status = (s->reason != 0) ? EXIT_REFUSED : no_offer(u, a);
    if (status == EXIT_OK) {
        if (s->message[0] == '\0')
            status = EXIT_UNREACHABLE;
        else if (s->request == NULL)
            status = EXIT_KDC_UNTRUSTED;
        else
            status = EXIT_LOCAL;
    }
    if (s->message[0] != '\0') {
        fprintf(stderr, "%s: %s: %s\n", progname, u->princ_name, s->message);
        return status;
    }
    /* The message first: a removal that fails sets another. */
    msg = krb5_get_error_message(u->ctx, a->ret);
    (void)decide_pending(u);
    fprintf(stderr, "%s: %s: %s%s%s: %s%s%s\n", progname, u->princ_name,
            upload_may_have_arrived(u) ? "no answer from the KDC" :
            "cannot reach the KDC", a->target[0] != '\0' ? " " : "",
            a->target, msg, u->fate[0] != '\0' ? "; " : "", u->fate);
    krb5_free_error_message(u->ctx, msg);
    return status;
}

/* The line of a shared principal's answer that stored nothing. */
static void
print_fetched(updater *u, const attempt *a, krb5_kvno not_stored)
{
    const tk_ack *ack = u->session.ack;
    char list[512], when[TK_TIME_LEN];

    held_list(&u->session, list, sizeof(list));
    printf("%s fetched kvno %s keytab %s kdc %s", u->princ_name, list,
           u->keytab, kdc_of(a));
    if (ack->active_at != 0) {
        tk_format_time(ack->active_at, when);
        printf("; kvno %u is pending until %s", ack->kvno, when);
    }
    if (not_stored != 0)
        printf("; another member's key came first, so key version %u was "
               "not stored", not_stored);
    printf("\n");
    fflush(stdout);
}

/* Stored (or, for a shared principal, answered with its keys): record the
 * expiry, put the keys the KDC handed us in the keytab, prune the keys
 * past use, test, say where. */
static int
settle(updater *u, attempt *a)
{
    tk_client_session *s = &u->session;
    krb5_error_code ret = 0;
    krb5_kvno not_stored = 0;
    char extra[TK_TIME_LEN + 32] = "";
    record *r;
    size_t i;

    if (s->ack->fetched && u->pending != 0 && s->uploaded && !s->fetch)
        not_stored = u->pending;
    if (!s->ack->fetched)
        ret = set_record(u, s->kvno, s->ack->expiry, 0);
    if (ret == 0 && s->ack->long_term_kvno != 0)
        ret = note_long_term_keys(u, s->ack->long_term_kvno,
                                  s->ack->long_term_until);
    if (ret == 0 && s->nheld > 0)
        ret = install_held(u);
    else if (ret == 0)
        ret = rewrite_keytab(u, 0, 1, NULL, 0, 0);
    for (i = 0; ret == 0 && i < u->nrecords; i++) {
        r = &u->records[i];
        if (strcmp(r->principal, u->princ_name) == 0 &&
            r->kvno != s->ack->kvno && r->expiry + u->skew <= time(NULL)) {
            drop_record(u, r);
            i--;
        }
    }
    if (ret == 0)
        ret = save_records(u);
    if (ret) {
        return say_error(u, EXIT_LOCAL, ret, s->ack->fetched ? "the KDC's "
                         "keys could not be put in the keytab" : "the KDC "
                         "stored the key but the keytab could not be "
                         "settled");
    }
    u->pending = 0;
    u->refresh_by = s->ack->refresh_by;
    u->share_delay = s->ack->share_delay;
    ret = self_test(u, a->ctx, &a->creds, s->nheld > 0 ? 0 : s->kvno);
    if (ret) {
        relay(u, a->ctx, ret);
        return say_error(u, EXIT_SELF_TEST, ret, "self-test failed: the "
                         "new key does not read a new ticket");
    }
    if (s->ack->fetched) {
        print_fetched(u, a, not_stored);
        return EXIT_OK;
    }
    if (s->ack->active_at != 0) {
        memcpy(extra, " pending-until ", 15);
        tk_format_time(s->ack->active_at, extra + 15);
    }
    print_result(u, "stored", kdc_of(a), extra);
    return EXIT_OK;
}

/* A shared principal's run that had nothing to send: say so. */
static int
idle(updater *u, attempt *a)
{
    tk_client_session *s = &u->session;
    char when[TK_TIME_LEN];

    u->share_delay = s->request->share_delay;
    tk_format_time(u->refresh_by, when);
    printf("%s up to date: the keytab holds every key version the KDC holds "
           "(kvno %u is the newest); next upload due %s keytab %s kdc %s\n",
           u->princ_name, s->request->current_kvno, when, u->keytab,
           kdc_of(a));
    fflush(stdout);
    return EXIT_OK;
}

/* A dry run for a shared principal: what a run would do. */
static int
dry_run_shared(updater *u)
{
    const tk_key_request *req = u->session.request;
    const record *pending = pending_record(u);
    shared_plan plan = plan_shared(u, req,
                                   pending != NULL ? pending->kvno : 0);
    char when[TK_TIME_LEN];

    tk_format_time(u->refresh_by, when);
    printf("%s dry run: the KDC's key request verified; shared (delay %d "
           "s), the KDC holds %zu key version(s), the newest kvno %u; would "
           "%s; next upload due %s keytab %s\n", u->princ_name,
           (int)req->share_delay, req->nheld, req->current_kvno,
           plan == SHARED_UPLOAD ? "upload a new key" :
           plan == SHARED_FETCH ? "fetch the versions the keytab lacks" :
           "send nothing", when, u->keytab);
    return EXIT_OK;
}

/* The outcome of the last exchange: an exit status, with one line said. */
static int
conclude(updater *u, attempt *a)
{
    tk_client_session *s = &u->session;
    char when[TK_TIME_LEN];

    if (s->dry_run && s->request != NULL && s->request->share_delay > 0)
        return dry_run_shared(u);
    if (s->dry_run && s->request != NULL) {
        tk_format_time(s->request->kdc_time + key_life(u, s->request),
                       when);
        printf("%s dry run: the KDC's key request verified; would upload key "
               "version %u expiring about %s to keytab %s\n", u->princ_name,
               s->request->current_kvno + 1, when, u->keytab);
        return EXIT_OK;
    }
    if (s->idle && s->request != NULL)
        return idle(u, a);
    if (a->ret == 0 && s->ack == NULL)
        return say_error(u, EXIT_UNREACHABLE, 0, "the KDC answered without "
                         "an acknowledgement");
    return a->ret ? failed(u, a) : settle(u, a);
}

/*
 * The exchange (ask, make the keys and add them as pending, upload), asked
 * again while the KDC may hold the pending key and did not answer: each
 * try re-sends the same key, which the KDC accepts again at the same
 * version.  A pending key whose version the KDC refuses as holding other
 * keys goes, and one more try makes a fresh key.  Leaves the last exchange
 * in *a; returns as find_primary() does.
 */
static int
upload(updater *u, attempt *a)
{
    krb5_boolean fresh = FALSE;
    int status, tries;

    for (tries = 1;; tries++) {
        status = find_primary(u, a);
        if (status != EXIT_OK || stop_requested)
            return status;
        if (!fresh && u->pending != 0 && u->session.kvno == u->pending &&
            stale_version(&u->session)) {
            verbose(u, "%s; key version %u is of no use: making a fresh key",
                    u->session.message, u->pending);
            u->stale = u->pending;
            fresh = TRUE;
        } else if (tries < UPLOAD_TRIES && unanswered(u, a)) {
            verbose(u, "no answer to the upload of key version %u; asking "
                    "the KDC again (%d of %d)", u->pending, tries,
                    UPLOAD_TRIES - 1);
            pause_for(tries);
        } else {
            return EXIT_OK;
        }
        close_attempt(u, a);
    }
}

/* One run: returns an exit status.  The keytab and its records are locked
 * for the whole run, so that another ktupdate on the same keytab (another
 * principal, or a manual run beside the timer) cannot rewrite them from a
 * copy that lacks a key this run gives the KDC.  A pending key left by an
 * earlier run is what the exchange sends first. */
static int
run_once(updater *u)
{
    krb5_error_code ret;
    const record *left;
    attempt a;
    int status, lock;

    memset(&a, 0, sizeof(a));
    ret = tk_keytab_lock(u->ctx, u->keytab, &lock);
    if (ret)
        return say_error(u, EXIT_LOCAL, ret, "cannot lock the keytab");
    ret = load_records(u);
    if (ret) {
        tk_keytab_unlock(lock);
        return say_error(u, EXIT_LOCAL, ret, "cannot read the key records");
    }
    left = pending_record(u);
    u->pending = (left != NULL) ? left->kvno : 0;
    u->kdc_may_hold = (left != NULL);
    u->stale = 0;
    u->fate[0] = '\0';
    status = upload(u, &a);
    if (status == EXIT_OK)
        status = conclude(u, &a);
    /* Lines that did not say the pending key's fate leave it to here. */
    if (status != EXIT_OK && u->fate[0] == '\0') {
        ret = decide_pending(u);
        if (ret)
            say_error(u, status, ret, "no KDC holds the new key, which "
                      "could not be taken out of the keytab");
    }
    close_attempt(u, &a);
    tk_keytab_unlock(lock);
    return status;
}

/* ---- --status */

static int
show_status(updater *u)
{
    krb5_error_code ret;
    krb5_keytab kt = NULL;
    krb5_kt_cursor cursor;
    krb5_keytab_entry e;
    char name[PATH_MAX + 6], when[TK_TIME_LEN], ename[64];
    char what[PATH_MAX + 32];
    record *r;
    int found = 0;

    ret = load_records(u);
    if (ret)
        return say_error(u, EXIT_LOCAL, ret, "cannot read the key records");
    snprintf(name, sizeof(name), "FILE:%s", u->keytab);
    ret = krb5_kt_resolve(u->ctx, name, &kt);
    if (ret == 0)
        ret = krb5_kt_start_seq_get(u->ctx, kt, &cursor);
    if (ret) {
        snprintf(what, sizeof(what), "cannot read the keytab %s", u->keytab);
        return say_error(u, EXIT_LOCAL, ret, what);
    }
    while (krb5_kt_next_entry(u->ctx, kt, &e, &cursor) == 0) {
        if (krb5_principal_compare(u->ctx, e.principal, u->princ)) {
            r = find_record(u, e.vno);
            if (r != NULL)
                tk_format_time(r->expiry, when);
            else
                strcpy(when, "unknown");
            if (krb5_enctype_to_name(e.key.enctype, FALSE, ename,
                                     sizeof(ename)) != 0)
                snprintf(ename, sizeof(ename), "%d", e.key.enctype);
            printf("%s kvno %u %s expires %s%s\n", u->princ_name, e.vno,
                   ename, when, (r != NULL && r->pending) ? " (pending)" :
                   (r != NULL && r->long_term) ? " (long-term: tickets in "
                   "it end then)" :
                   (r != NULL && r->expiry <= time(NULL)) ? " (expired)" :
                   "");
            found++;
        }
        krb5_free_keytab_entry_contents(u->ctx, &e);
    }
    krb5_kt_end_seq_get(u->ctx, kt, &cursor);
    krb5_kt_close(u->ctx, kt);
    if (!found)
        printf("%s: no keys in %s\n", u->princ_name, u->keytab);
    return EXIT_OK;
}

/* ---- The runs' record (KEYTAB.tempkey-status) and its metrics. */

static void
status_file(const updater *u, char *path, size_t size)
{
    snprintf(path, size, "%s%s", u->keytab, KT_STATUS_SUFFIX);
}

/* line past "LABEL: ", or line if it does not start so. */
static const char *
after_label(const char *line, const char *label)
{
    size_t len = strlen(label);

    if (strncmp(line, label, len) == 0 && strncmp(line + len, ": ", 2) == 0)
        return line + len + 2;
    return line;
}

/* The newest key version the KDC's offer lists for a shared principal. */
static void
newest_held_info(const tk_client_session *s, krb5_kvno *kvno_out,
                 int64_t *expiry_out)
{
    size_t i;

    *kvno_out = 0;
    *expiry_out = 0;
    for (i = 0; s->request != NULL && i < s->request->nheld; i++) {
        if (s->request->held[i].kvno > *kvno_out) {
            *kvno_out = s->request->held[i].kvno;
            *expiry_out = s->request->held[i].expiry;
        }
    }
}

/* A run, recorded as it ended; a dry run writes nothing, not even that. */
static int
run_recorded(updater *u)
{
    krb5_error_code ret;
    const tk_ack *ack;
    kt_run run;
    char path[sizeof(u->keytab) + sizeof(KT_STATUS_SUFFIX)];

    kt_capture_reset();
    memset(&run, 0, sizeof(run));
    run.status = run_once(u);
    if (u->opt.dry_run)
        return run.status;
    ack = u->session.ack;
    run.time = time(NULL);
    if (run.status == EXIT_OK && ack != NULL) {
        run.kvno = ack->kvno;
        run.expiry = ack->expiry;
        run.refresh_by = ack->refresh_by;
    } else if (run.status == EXIT_OK && u->session.idle) {
        /* A shared principal's member with nothing to do: the newest key
         * the KDC holds, which the keytab holds too. */
        newest_held_info(&u->session, &run.kvno, &run.expiry);
        run.refresh_by = u->refresh_by;
    }
    /* The line said why, after "ktupdate: PRINCIPAL: ". */
    run.error = after_label(after_label(kt_captured_line(), progname),
                            u->princ_name);
    status_file(u, path, sizeof(path));
    ret = kt_state_record(u->ctx, path, u->keytab, u->princ_name, &run);
    /* The run's own outcome stands: the keytab and the KDC agree. */
    if (ret)
        say_error(u, run.status, ret, "cannot record the run");
    return run.status;
}

/* The expiry of this principal's newest acknowledged temporary key in the
 * records (not a pending key, nor an adopted principal's long-term one),
 * or 0. */
static int64_t
newest_expiry(updater *u)
{
    int64_t newest = 0;
    size_t i;

    for (i = 0; i < u->nrecords; i++) {
        if (!u->records[i].pending && !u->records[i].long_term &&
            u->records[i].expiry > newest &&
            strcmp(u->records[i].principal, u->princ_name) == 0)
            newest = u->records[i].expiry;
    }
    return newest;
}

/* --status: the keys and the runs, or with --prometheus the metrics. */
static int
show_recorded_status(updater *u)
{
    krb5_error_code ret;
    kt_state st;
    krb5_boolean found;
    char path[sizeof(u->keytab) + sizeof(KT_STATUS_SUFFIX)];
    int status;

    status_file(u, path, sizeof(path));
    if (u->opt.prometheus_arg == NULL) {
        status = show_status(u);
        if (status != EXIT_OK)
            return status;
    }
    ret = kt_state_read(u->ctx, path, u->princ_name, &st, &found);
    if (ret == 0 && u->opt.prometheus_arg != NULL)
        ret = load_records(u);
    if (ret)
        return say_error(u, EXIT_LOCAL, ret, "cannot read the runs' record");
    if (u->opt.prometheus_arg == NULL) {
        kt_state_print(u->princ_name, &st, found, path);
        return EXIT_OK;
    }
    ret = kt_state_prometheus(u->ctx, u->opt.prometheus_arg, u->princ_name,
                              &st, found, newest_expiry(u));
    if (ret)
        return say_error(u, EXIT_LOCAL, ret, "cannot write the metrics");
    return EXIT_OK;
}

/* ---- --daemon */

static void
on_signal(int sig)
{
    stop_requested = 1;
}

/* Sleep up to seconds, waking early on SIGTERM or SIGINT. */
static void
pause_for(double seconds)
{
    struct timespec ts;

    if (seconds < 0)
        seconds = 0;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (!stop_requested && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A uniform random fraction in [0, 1). */
static double
random_fraction(void)
{
    unsigned int r = 0;

    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
        r = (unsigned int)rand();
    return (double)r / 4294967296.0;
}

static int
run_daemon(updater *u)
{
    struct sigaction sa;
    double backoff_min, backoff, wait;
    int status;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* Retries start at a tenth of the key's life (at most 30 s) and double
     * up to an hour. */
    backoff_min = u->lifetime / 10.0;
    if (backoff_min > 30)
        backoff_min = 30;
    if (backoff_min < 1)
        backoff_min = 1;
    backoff = backoff_min;
    while (!stop_requested) {
        status = run_recorded(u);
        if (status == EXIT_OK) {
            backoff = backoff_min;
            /* Refresh at the KDC's time, up to a tenth early, so that many
             * servers started together spread out. */
            wait = (double)(u->refresh_by - time(NULL));
            /* A shared principal's member fetches what another uploaded
             * well within the delay before the KDC uses it. */
            if (u->share_delay > 0 && wait > u->share_delay / 3.0)
                wait = u->share_delay / 3.0;
            wait -= wait * 0.1 * random_fraction();
        } else {
            wait = backoff * (0.5 + random_fraction());
            backoff = (backoff * 2 > 3600) ? 3600 : backoff * 2;
        }
        verbose(u, "next run in %.0f s", wait);
        pause_for(wait);
    }
    return EXIT_OK;
}

/* ---- Setup. */

/* The keytab file: --keytab, KRB5_KTNAME, or the default keytab. */
static krb5_error_code
find_keytab(updater *u)
{
    krb5_error_code ret;
    char name[PATH_MAX], real[PATH_MAX];
    const char *path = u->opt.keytab_arg;

    if (path == NULL) {
        ret = krb5_kt_default_name(u->ctx, name, sizeof(name));
        if (ret)
            return ret;
        path = name;
    }
    if (strncmp(path, "FILE:", 5) == 0)
        path += 5;
    else if (strncmp(path, "WRFILE:", 7) == 0)
        path += 7;
    else if (strchr(path, ':') != NULL && path[0] != '/') {
        krb5_set_error_message(u->ctx, KRB5_KT_BADNAME, "keytab %s: only "
                               "FILE keytabs can be updated", path);
        return KRB5_KT_BADNAME;
    }
    /* The records and the lock go beside the file itself, so that runs
     * naming it through different links share them. */
    if (realpath(path, real) != NULL)
        path = real;
    snprintf(u->keytab, sizeof(u->keytab), "%s", path);
    snprintf(u->state_file, sizeof(u->state_file), "%s%s", u->keytab,
             STATE_SUFFIX);
    return 0;
}

/* The anchors: --anchors, else the realm's or libdefaults' pkinit_anchors. */
static krb5_error_code
load_trust(updater *u)
{
    krb5_error_code ret;
    profile_t profile = NULL;
    char **values = NULL, *arg[2] = { NULL, NULL };
    char realm[256];
    const char *path[4];

    if (u->opt.anchors_file != NULL) {
        arg[0] = (char *)u->opt.anchors_file;
        if (strchr(arg[0], ':') == NULL || arg[0][0] == '/') {
            char *spec = malloc(strlen(arg[0]) + 6);

            if (spec == NULL)
                return ENOMEM;
            sprintf(spec, "FILE:%s", u->opt.anchors_file);
            arg[0] = spec;
            ret = tk_trust_load(u->ctx, arg, NULL, NULL, &u->trust);
            free(spec);
            return ret;
        }
        return tk_trust_load(u->ctx, arg, NULL, NULL, &u->trust);
    }
    snprintf(realm, sizeof(realm), "%.*s", (int)u->princ->realm.length,
             u->princ->realm.data);
    ret = krb5_get_profile(u->ctx, &profile);
    if (ret)
        return ret;
    path[0] = "realms";
    path[1] = realm;
    path[2] = "pkinit_anchors";
    path[3] = NULL;
    if (profile_get_values(profile, path, &values) != 0) {
        path[0] = "libdefaults";
        path[1] = "pkinit_anchors";
        path[2] = NULL;
        if (profile_get_values(profile, path, &values) != 0)
            values = NULL;
    }
    profile_release(profile);
    if (values == NULL) {
        krb5_set_error_message(u->ctx, KRB5_CONFIG_BADFORMAT, "no trust "
                               "anchors for the KDC: give --anchors or set "
                               "pkinit_anchors");
        return KRB5_CONFIG_BADFORMAT;
    }
    ret = tk_trust_load(u->ctx, values, NULL, NULL, &u->trust);
    profile_free_list(values);
    return ret;
}

/* The options of every exchange: our enctypes, only our preauth. */
static krb5_error_code
make_gic(updater *u)
{
    static krb5_preauthtype pa_list[1] = { TK_PADATA };
    krb5_error_code ret;

    ret = krb5_get_init_creds_opt_alloc(u->ctx, &u->gic);
    if (ret)
        return ret;
    krb5_get_init_creds_opt_set_etype_list(u->gic, u->enctypes,
                                           (int)u->nenctypes);
    krb5_get_init_creds_opt_set_preauth_list(u->gic, pa_list, 1);
    krb5_get_init_creds_opt_set_forwardable(u->gic, 0);
    krb5_get_init_creds_opt_set_proxiable(u->gic, 0);
    return 0;
}

/* Learn which KDC answers (see trace()), keeping KRB5_TRACE's output. */
static void
start_tracing(updater *u)
{
    const char *file = getenv("KRB5_TRACE");

    if (file != NULL)
        u->trace_fd = open(file, O_WRONLY | O_CREAT | O_APPEND, 0600);
    watch(u, u->ctx);
}

/* The principal: --principal, else the certificate's first name. */
static krb5_error_code
find_principal(updater *u)
{
    krb5_error_code ret;
    krb5_principal *names = NULL;

    if (u->opt.principal_arg != NULL) {
        ret = krb5_parse_name(u->ctx, u->opt.principal_arg, &u->princ);
        if (ret)
            krb5_prepend_error_message(u->ctx, ret, "--principal %s",
                                       u->opt.principal_arg);
    } else {
        ret = tk_cert_principals(u->ctx, u->id->cert, &names);
        if (ret == 0 && (names == NULL || names[0] == NULL)) {
            ret = KRB5_CONFIG_BADFORMAT;
            krb5_set_error_message(u->ctx, ret, "the certificate names no "
                                   "Kerberos principal; give --principal");
        } else if (ret == 0) {
            ret = krb5_copy_principal(u->ctx, names[0], &u->princ);
        }
        tk_free_principals(u->ctx, names);
    }
    if (ret == 0)
        ret = krb5_unparse_name(u->ctx, u->princ, &u->princ_name);
    return ret;
}

static int
setup(updater *u)
{
    krb5_error_code ret;

    ret = krb5_init_context(&u->ctx);
    if (ret) {
        fprintf(stderr, "%s: cannot initialize Kerberos from %s: %s\n",
                progname, getenv("KRB5_CONFIG") != NULL ?
                getenv("KRB5_CONFIG") : "/etc/krb5.conf", error_message(ret));
        return EXIT_LOCAL;
    }
    ret = k5_plugin_register(u->ctx, PLUGIN_INTERFACE_CLPREAUTH, "tempkey",
                             clpreauth_tempkey_initvt);
    if (ret)
        return say_error(u, EXIT_LOCAL, ret, "cannot register the tempkey "
                         "preauth module");
    start_tracing(u);
    u->skew = tk_clock_skew(u->ctx);
    u->lifetime = 0;
    if (u->opt.lifetime_arg != NULL) {
        ret = tk_parse_duration(u->ctx, "--lifetime", u->opt.lifetime_arg,
                                &u->lifetime);
        if (ret)
            return say_error(u, EXIT_USAGE, ret, "bad option");
    }
    ret = tk_parse_enctypes(u->ctx, "--enctypes", u->opt.enctypes_arg != NULL ?
                            u->opt.enctypes_arg : TK_DEFAULT_KEY_ENCTYPES,
                            u->enctypes, TK_MAX_KEYS, &u->nenctypes);
    if (ret)
        return say_error(u, EXIT_USAGE, ret, "bad --enctypes");
    if (u->opt.status && u->opt.cert_file == NULL &&
        u->opt.principal_arg == NULL) {
        fprintf(stderr, "%s: --status needs --principal or --cert\n",
                progname);
        return EXIT_USAGE;
    }
    if (u->opt.cert_file != NULL) {
        ret = tk_identity_load(u->ctx, u->opt.cert_file,
                               u->opt.key_file != NULL ? u->opt.key_file :
                               u->opt.cert_file, &u->id);
        if (ret)
            return say_error(u, EXIT_LOCAL, ret, "cannot load the "
                             "certificate and key");
    }
    ret = find_principal(u);
    if (ret)
        return say_error(u, EXIT_LOCAL, ret, "cannot tell the principal");
    ret = find_keytab(u);
    if (ret)
        return say_error(u, EXIT_LOCAL, ret, "cannot tell the keytab");
    if (u->opt.status)
        return EXIT_OK;
    ret = load_trust(u);
    if (ret)
        return say_error(u, EXIT_LOCAL, ret, "cannot load the KDC's trust "
                         "anchors");
    u->session.principal = u->princ;
    u->session.id = u->id;
    u->session.kdc_trust = u->trust;
    u->session.lifetime = u->lifetime;
    u->session.prepare = prepare;
    u->session.arg = u;
    ret = make_gic(u);
    if (ret)
        return say_error(u, EXIT_LOCAL, ret, "cannot set up the exchange");
    return EXIT_OK;
}

/* Whether the options (and the nargs operands args, of which there must
 * be none) go together; if not, say why. */
static krb5_boolean
options_fit(const options *opt, int nargs, char **args)
{
    const char *why = NULL;

    if (nargs > 0) {
        fprintf(stderr, "%s: unexpected operand '%s': every input is an "
                "option\n", progname, args[0]);
        return FALSE;
    }
    if (opt->cert_file == NULL && !opt->status)
        why = "--cert is required (and --key, unless the certificate file "
            "holds the key too)";
    else if (opt->daemon && opt->dry_run)
        why = "--daemon and --dry-run do not go together";
    else if (opt->daemon && opt->status)
        why = "--daemon and --status do not go together";
    else if (opt->dry_run && opt->status)
        why = "--dry-run and --status do not go together";
    else if (opt->prometheus_arg != NULL && !opt->status)
        why = "--prometheus goes with --status";
    else if (opt->rotate && (opt->daemon || opt->status))
        why = "--rotate is for one run; it goes with neither --daemon nor "
            "--status";
    if (why != NULL)
        fprintf(stderr, "%s: %s\n", progname, why);
    return why == NULL;
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "cert", required_argument, NULL, 'c' },
        { "key", required_argument, NULL, 'k' },
        { "anchors", required_argument, NULL, 'a' },
        { "keytab", required_argument, NULL, 't' },
        { "principal", required_argument, NULL, 'p' },
        { "lifetime", required_argument, NULL, 'l' },
        { "enctypes", required_argument, NULL, 'e' },
        { "daemon", no_argument, NULL, 'd' },
        { "dry-run", no_argument, NULL, 'n' },
        { "status", no_argument, NULL, 's' },
        { "prometheus", required_argument, NULL, 'P' },
        { "verbose", no_argument, NULL, 'v' },
        { "rotate", no_argument, NULL, 'R' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    updater u;
    int c, status;

    memset(&u, 0, sizeof(u));
    u.trace_fd = -1;
    while ((c = getopt_long(argc, argv, "c:k:a:t:p:l:e:dnsvh", longopts,
                            NULL)) != -1) {
        switch (c) {
        case 'c': u.opt.cert_file = optarg; break;
        case 'k': u.opt.key_file = optarg; break;
        case 'a': u.opt.anchors_file = optarg; break;
        case 't': u.opt.keytab_arg = optarg; break;
        case 'p': u.opt.principal_arg = optarg; break;
        case 'l': u.opt.lifetime_arg = optarg; break;
        case 'e': u.opt.enctypes_arg = optarg; break;
        case 'd': u.opt.daemon = 1; break;
        case 'n': u.opt.dry_run = 1; break;
        case 's': u.opt.status = 1; break;
        case 'P': u.opt.prometheus_arg = optarg; break;
        case 'v': u.opt.verbose = 1; break;
        case 'R': u.opt.rotate = 1; break;
        case 'h': usage(stdout); return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (!options_fit(&u.opt, argc - optind, argv + optind)) {
        usage(stderr);
        return EXIT_USAGE;
    }
    status = setup(&u);
    if (status == EXIT_OK) {
        if (u.opt.status)
            status = show_recorded_status(&u);
        else if (u.opt.daemon)
            status = run_daemon(&u);
        else
            status = run_recorded(&u);
    }
    tk_client_session_clear(&u.session);
    free_records(&u);
    free(u.records);
    tk_identity_free(u.id);
    tk_trust_free(u.trust);
    if (u.ctx != NULL) {
        krb5_get_init_creds_opt_free(u.ctx, u.gic);
        krb5_free_unparsed_name(u.ctx, u.princ_name);
        krb5_free_principal(u.ctx, u.princ);
        krb5_free_context(u.ctx);
    }
    if (u.trace_fd >= 0)
        close(u.trace_fd);
    return status;
}
