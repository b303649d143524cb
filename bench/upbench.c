/* upbench.c - an upload (and fetch) load generator, and the crypto bound of
 * uploads and fetches. */
/*
 * usage: upbench upload|fetch --certs LIST --anchors CA.pem --seconds N
 *                [--start-at EPOCH] [--lifetime DUR] [--samples FILE]
 *        upbench crypto|crypto-fetch --kdc-cert KDC.pem --kdc-key KDCKEY.pem
 *                --cert CERT.pem --key KEY.pem --anchors CA.pem --seconds N
 *                [--versions V]
 *
 * upload: LIST has one server a line, "principal cert.pem key.pem" (blank
 *      lines and lines starting with '#' are skipped).  Every identity is
 *      loaded once; then, round-robin over the servers, each iteration is
 *      one real upload to the realm's KDC (KRB5_CONFIG from the
 *      environment) through the tempkey client module, as ktupdate makes
 *      it: a random aes256 key at the next kvno, for --lifetime (default:
 *      the KDC's maximum).  The keys are written nowhere.  Each upload is
 *      timed, from the first AS-REQ to the verified acknowledgement.  Runs
 *      that share servers race for their kvnos, so give concurrent
 *      processes disjoint lists.  Prints one line:
 *
 *          uploads=N failures=F seconds=S rate=R p50_ms=A p99_ms=B max_ms=C
 *
 *      where N counts acknowledged uploads (an upload that a shared
 *      principal's KDC answers as a fetch, storing nothing, is a failure),
 *      R is N/S and the latencies are those of the acknowledged uploads
 *      (--samples FILE also writes each of them, in milliseconds, one a
 *      line, so that a driver can merge several processes' percentiles).
 *      The first failure's message goes to stderr; the exit status is 1 if
 *      any upload failed.
 *
 * fetch: the same, but each iteration is one real fetch of a shared
 *      principal's keys (LIST names members: certificates naming shared
 *      principals), as ktupdate makes it when its keytab lacks a version
 *      the KDC holds.  It succeeds when the KDC's signed acknowledgement
 *      says fetched and carries at least one key version, decrypted with
 *      the member's key.  Nothing is stored, so processes may share
 *      servers.  The line is the upload's with fetches=N for uploads=N.
 *
 * crypto: the public-key work of one upload, in process, without a KDC.
 *      KDC side: put the offer, signed once up front as the KDC signs it
 *      once a minute, in a KeyOffer; decrypt the upload's EnvelopedData
 *      (made once up front by the client side), open the SignedData in it,
 *      checking its signature, check the signer's chain to the anchors,
 *      decode the upload; sign an Ack.  Client side: encode, sign and
 *      encrypt an upload to the KDC certificate; and, for the full client
 *      share, also read the KeyOffer, open and chain-check the signed offer
 *      and a signed Ack as the client module does.  Each of the three loops
 *      runs for --seconds, so the mode takes three times that.  Prints:
 *
 *          ops=N seconds=S rate=R cpu_seconds=C
 *          client_ops=N client_seconds=S client_rate=R client_cpu_seconds=C
 *          client_full_ops=N client_full_seconds=S client_full_rate=R
 *              client_full_cpu_seconds=C
 *
 *      the first line being uploads' worth of KDC crypto per second, and
 *      C the CPU time the loop took (C/N is the crypto-bound CPU time of
 *      one upload).
 *
 * crypto-fetch: the same three loops and lines for one fetch of a shared
 *      principal holding V key versions (--versions, default 3).  KDC side:
 *      the KeyOffer (with the versions as hints), decrypt, open and
 *      chain-check the Fetch as for an upload, decode it; encode the V
 *      versions' keys and encrypt them to the member's certificate, sign
 *      the Ack carrying them.  Client side: sign and encrypt a Fetch; the
 *      full share also reads the offer and the Ack and decrypts the keys
 *      in it with the member's key.
 *
 * --start-at EPOCH waits for that wall-clock time before the timed loop, so
 * that several processes start together.  Exit status: 0, 1 on a failure,
 * 2 on a usage error.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "benchutil.h"
#include "tkclient.h"

/* libkrb5's registration of a built-in module, as ktupdate uses it. */
krb5_error_code k5_plugin_register(krb5_context context, int interface_id,
                                   const char *modname,
                                   krb5_plugin_initvt_fn module);
#define PLUGIN_INTERFACE_CLPREAUTH 2

#define EMPTY_DATA { 0, 0, NULL }
#define UPLOAD_ENCTYPE ENCTYPE_AES256_CTS_HMAC_SHA1_96

const char *progname = "upbench";

typedef enum { MODE_UPLOAD, MODE_FETCH, MODE_CRYPTO, MODE_CRYPTO_FETCH }
    bench_mode;

static const struct {
    const char *name;
    bench_mode mode;
} mode_names[] = {
    { "upload", MODE_UPLOAD },
    { "fetch", MODE_FETCH },
    { "crypto", MODE_CRYPTO },
    { "crypto-fetch", MODE_CRYPTO_FETCH },
};

/* Key versions a crypto-fetch answer carries unless --versions says. */
#define DEFAULT_VERSIONS 3

typedef struct {
    bench_mode mode;
    const char *certs;          /* upload, fetch */
    const char *anchors;
    const char *lifetime;       /* upload; NULL: the KDC's maximum */
    const char *samples;        /* upload, fetch; NULL: no latency file */
    const char *kdc_cert;       /* crypto, crypto-fetch */
    const char *kdc_key;
    const char *cert;
    const char *key;
    size_t versions;            /* crypto-fetch; 0: not given */
    double seconds;
    double start_at;            /* 0: start at once */
} bench_args;

/* One uploading server of the list. */
typedef struct {
    krb5_principal princ;
    tk_identity *id;
} server;

typedef struct {
    krb5_context ctx;
    krb5_boolean fetch;         /* fetch mode: members fetching */
    server *servers;
    size_t nservers;
    tk_trust *kdc_trust;
    krb5_deltat lifetime;
    krb5_get_init_creds_opt *gic;
} upload_bench;

/* Latencies in milliseconds, in the order measured. */
typedef struct {
    double *ms;
    size_t n, cap;
} samples;

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: %s upload|fetch --certs LIST --anchors CA.pem "
            "--seconds N\n"
            "           [--start-at EPOCH] [--lifetime DUR] [--samples FILE]\n"
            "       %s crypto|crypto-fetch --kdc-cert KDC.pem "
            "--kdc-key KDCKEY.pem\n"
            "           --cert CERT.pem --key KEY.pem --anchors CA.pem "
            "--seconds N\n"
            "           [--versions V]\n"
            "LIST: lines \"principal cert.pem key.pem\"\n",
            progname, progname);
}

/* Print "upbench: what: message for code" on stderr (ctx may be NULL). */
/* Fill args from the command line; return 0, or -1 after a message. */
static int
parse_args(int argc, char **argv, bench_args *args)
{
    static const struct option longopts[] = {
        { "certs", required_argument, NULL, 'l' },
        { "anchors", required_argument, NULL, 'a' },
        { "lifetime", required_argument, NULL, 'L' },
        { "samples", required_argument, NULL, 'S' },
        { "kdc-cert", required_argument, NULL, 'C' },
        { "kdc-key", required_argument, NULL, 'K' },
        { "cert", required_argument, NULL, 'c' },
        { "key", required_argument, NULL, 'k' },
        { "seconds", required_argument, NULL, 't' },
        { "start-at", required_argument, NULL, 's' },
        { "versions", required_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    double versions;
    size_t i;
    int c;

    memset(args, 0, sizeof(*args));
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'l': args->certs = optarg; break;
        case 'a': args->anchors = optarg; break;
        case 'L': args->lifetime = optarg; break;
        case 'S': args->samples = optarg; break;
        case 'C': args->kdc_cert = optarg; break;
        case 'K': args->kdc_key = optarg; break;
        case 'c': args->cert = optarg; break;
        case 'k': args->key = optarg; break;
        case 't':
            if (parse_number("--seconds", optarg, 0, &args->seconds) != 0)
                return -1;
            break;
        case 's':
            if (parse_number("--start-at", optarg, 0, &args->start_at) != 0)
                return -1;
            break;
        case 'V':
            if (parse_number("--versions", optarg, 1, &versions) != 0)
                return -1;
            if (versions > TK_MAX_HELD) {
                fprintf(stderr, "%s: --versions: at most %d\n", progname,
                        TK_MAX_HELD);
                return -1;
            }
            args->versions = (size_t)versions;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind + 1 != argc) {
        usage(stderr);
        return -1;
    }
    for (i = 0; i < sizeof(mode_names) / sizeof(*mode_names); i++) {
        if (strcmp(argv[optind], mode_names[i].name) == 0)
            break;
    }
    if (i == sizeof(mode_names) / sizeof(*mode_names)) {
        fprintf(stderr, "%s: unknown mode \"%s\" (upload, fetch, crypto or "
                "crypto-fetch)\n", progname, argv[optind]);
        return -1;
    }
    args->mode = mode_names[i].mode;
    if (args->anchors == NULL || args->seconds <= 0) {
        fprintf(stderr, "%s: --anchors and --seconds are required\n",
                progname);
        return -1;
    }
    if ((args->mode == MODE_UPLOAD || args->mode == MODE_FETCH) &&
        args->certs == NULL) {
        fprintf(stderr, "%s: %s needs --certs\n", progname, argv[optind]);
        return -1;
    }
    if ((args->mode == MODE_CRYPTO || args->mode == MODE_CRYPTO_FETCH) &&
        (args->kdc_cert == NULL || args->kdc_key == NULL ||
         args->cert == NULL || args->key == NULL)) {
        fprintf(stderr, "%s: %s needs --kdc-cert, --kdc-key, --cert and "
                "--key\n", progname, argv[optind]);
        return -1;
    }
    if (args->versions != 0 && args->mode != MODE_CRYPTO_FETCH) {
        fprintf(stderr, "%s: --versions is for crypto-fetch only\n",
                progname);
        return -1;
    }
    if (args->mode == MODE_CRYPTO_FETCH && args->versions == 0)
        args->versions = DEFAULT_VERSIONS;
    return 0;
}

static int
samples_add(samples *s, double ms)
{
    double *grown;
    size_t cap;

    if (s->n == s->cap) {
        cap = (s->cap == 0) ? 1024 : 2 * s->cap;
        grown = realloc(s->ms, cap * sizeof(*grown));
        if (grown == NULL)
            return -1;
        s->ms = grown;
        s->cap = cap;
    }
    s->ms[s->n++] = ms;
    return 0;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* The nearest-rank percentile p (0 < p <= 100) of sorted samples. */
static double
percentile(const samples *s, double p)
{
    size_t rank;

    if (s->n == 0)
        return 0.0;
    rank = (size_t)(p / 100.0 * (double)s->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > s->n)
        rank = s->n;
    return s->ms[rank - 1];
}

/* Print the result line and flush it; return 0, or -1 after a message. */
static int
print_result(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "%s: writing the result: %s\n", progname,
                strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- upload */

/* The module's callback once the KDC's key request is verified: the next
 * kvno and a fresh random key, as ktupdate makes them (without a keytab). */
static krb5_error_code
prepare(krb5_context ctx, tk_client_session *s)
{
    s->kvno = s->request->current_kvno + 1;
    s->nkeys = 1;
    return krb5_c_make_random_key(ctx, UPLOAD_ENCTYPE, &s->keys[0]);
}

/* A member's callback: ask for the keys the KDC holds instead, as ktupdate
 * does when its keytab lacks a version. */
static krb5_error_code
prepare_fetch(krb5_context ctx, tk_client_session *s)
{
    (void)ctx;
    s->fetch = TRUE;
    return 0;
}

static void
upload_bench_free(upload_bench *b)
{
    size_t i;

    if (b->ctx == NULL)
        return;
    for (i = 0; i < b->nservers; i++) {
        krb5_free_principal(b->ctx, b->servers[i].princ);
        tk_identity_free(b->servers[i].id);
    }
    free(b->servers);
    tk_trust_free(b->kdc_trust);
    krb5_get_init_creds_opt_free(b->ctx, b->gic);
    krb5_free_context(b->ctx);
    memset(b, 0, sizeof(*b));
}

/* Add one line's server to b; return 0 or 1 after a message. */
static int
add_server(upload_bench *b, const char *file, unsigned int lineno,
           const char *princ, const char *cert, const char *key)
{
    krb5_error_code ret;
    server *grown, *sv;

    grown = realloc(b->servers, (b->nservers + 1) * sizeof(*grown));
    if (grown == NULL) {
        complain(b->ctx, ENOMEM, "%s:%u", file, lineno);
        return 1;
    }
    b->servers = grown;
    sv = &b->servers[b->nservers];
    memset(sv, 0, sizeof(*sv));
    ret = krb5_parse_name(b->ctx, princ, &sv->princ);
    if (ret == 0)
        ret = tk_identity_load(b->ctx, cert, key, &sv->id);
    if (ret) {
        complain(b->ctx, ret, "%s:%u: %s", file, lineno, princ);
        krb5_free_principal(b->ctx, sv->princ);
        return 1;
    }
    b->nservers++;
    return 0;
}

/* Read the list of servers, loading each identity; return 0 or 1 after a
 * message. */
static int
read_list(upload_bench *b, const char *file)
{
    FILE *f;
    char *line = NULL, *princ, *cert, *key, *extra, *save;
    size_t size = 0;
    unsigned int lineno = 0;
    int status = 1;

    f = fopen(file, "r");
    if (f == NULL) {
        fprintf(stderr, "%s: cannot read %s: %s\n", progname, file,
                strerror(errno));
        return 1;
    }
    while (getline(&line, &size, f) != -1) {
        lineno++;
        princ = strtok_r(line, " \t\r\n", &save);
        if (princ == NULL || *princ == '#')
            continue;
        cert = strtok_r(NULL, " \t\r\n", &save);
        key = strtok_r(NULL, " \t\r\n", &save);
        extra = strtok_r(NULL, " \t\r\n", &save);
        if (key == NULL || extra != NULL) {
            fprintf(stderr, "%s: %s:%u: expected \"principal cert.pem "
                    "key.pem\"\n", progname, file, lineno);
            goto cleanup;
        }
        if (add_server(b, file, lineno, princ, cert, key) != 0)
            goto cleanup;
    }
    if (b->nservers == 0) {
        fprintf(stderr, "%s: %s names no server\n", progname, file);
        goto cleanup;
    }
    status = 0;

cleanup:
    free(line);
    fclose(f);
    return status;
}

/* Make the context, register the client module, load the anchors and the
 * servers.  Return 0 or 1 after a message. */
static int
upload_setup(const bench_args *args, upload_bench *b)
{
    static krb5_preauthtype pa_list[1] = { TK_PADATA };
    static krb5_enctype etypes[1] = { UPLOAD_ENCTYPE };
    krb5_error_code ret;
    char *anchor_spec[2] = { NULL, NULL };
    int status = 1;

    memset(b, 0, sizeof(*b));
    ret = krb5_init_context(&b->ctx);
    if (ret) {
        complain(NULL, ret, "initializing the krb5 context");
        return 1;
    }
    ret = k5_plugin_register(b->ctx, PLUGIN_INTERFACE_CLPREAUTH, "tempkey",
                             clpreauth_tempkey_initvt);
    if (ret) {
        complain(b->ctx, ret, "registering the tempkey client module");
        goto cleanup;
    }
    if (asprintf(&anchor_spec[0], "FILE:%s", args->anchors) < 0) {
        anchor_spec[0] = NULL;
        complain(b->ctx, ENOMEM, "loading the anchors");
        goto cleanup;
    }
    ret = tk_trust_load(b->ctx, anchor_spec, NULL, NULL, &b->kdc_trust);
    if (ret) {
        complain(b->ctx, ret, "loading %s", args->anchors);
        goto cleanup;
    }
    if (args->lifetime != NULL) {
        ret = tk_parse_duration(b->ctx, "--lifetime", args->lifetime,
                                &b->lifetime);
        if (ret) {
            complain(b->ctx, ret, "--lifetime");
            goto cleanup;
        }
    }
    ret = krb5_get_init_creds_opt_alloc(b->ctx, &b->gic);
    if (ret) {
        complain(b->ctx, ret, "allocating init_creds options");
        goto cleanup;
    }
    /* Only our padata, and a reply in the enctype of the uploaded key. */
    krb5_get_init_creds_opt_set_preauth_list(b->gic, pa_list, 1);
    krb5_get_init_creds_opt_set_etype_list(b->gic, etypes, 1);
    status = read_list(b, args->certs);

cleanup:
    free(anchor_spec[0]);
    if (status != 0)
        upload_bench_free(b);
    return status;
}

/* Whether the exchange got what it asked for: an acknowledgement that
 * stored the upload's key, or for a fetch one that stored nothing and
 * carried keys.  (A shared principal's KDC answers an upload while a key
 * is pending as a fetch.) */
static krb5_boolean
answered(const upload_bench *b, const tk_client_session *s)
{
    if (s->ack == NULL)
        return FALSE;
    if (!b->fetch)
        return !s->ack->fetched;
    return s->ack->fetched && s->nheld > 0;
}

/*
 * One upload (or fetch) for sv.  Return 0 if the KDC acknowledged it;
 * otherwise nonzero, with the reason in msg (msgsize bytes) if msg is not
 * NULL.
 */
static int
exchange_one(upload_bench *b, const server *sv, char *msg, size_t msgsize)
{
    krb5_error_code ret;
    tk_client_session s;
    krb5_creds creds;
    const char *emsg;
    int status = 1;

    memset(&s, 0, sizeof(s));
    memset(&creds, 0, sizeof(creds));
    s.principal = sv->princ;
    s.id = sv->id;
    s.kdc_trust = b->kdc_trust;
    s.lifetime = b->lifetime;
    s.prepare = b->fetch ? prepare_fetch : prepare;
    tk_client_set_session(&s);
    ret = krb5_get_init_creds_password(b->ctx, &creds, sv->princ, NULL, NULL,
                                       NULL, 0, NULL, b->gic);
    tk_client_set_session(NULL);
    if (ret == 0 && answered(b, &s)) {
        status = 0;
        goto cleanup;
    }
    if (msg == NULL)
        goto cleanup;
    /* The module's message names the KDC's reason; libkrb5's would only
     * give the error code that carried it. */
    if (s.message[0] != '\0') {
        snprintf(msg, msgsize, "%s", s.message);
    } else if (ret) {
        emsg = krb5_get_error_message(b->ctx, ret);
        snprintf(msg, msgsize, "%s", emsg);
        krb5_free_error_message(b->ctx, emsg);
    } else if (s.ack == NULL) {
        snprintf(msg, msgsize, "the KDC sent no acknowledgement");
    } else if (!b->fetch) {
        snprintf(msg, msgsize, "the KDC answered the upload as a fetch and "
                 "stored nothing: a key of this shared principal is "
                 "pending");
    } else if (!s.ack->fetched) {
        snprintf(msg, msgsize, "the KDC stored a key instead of answering "
                 "the fetch");
    } else {
        snprintf(msg, msgsize, "the KDC's answer carried no key version");
    }

cleanup:
    krb5_free_cred_contents(b->ctx, &creds);
    tk_client_session_clear(&s);
    return status;
}

/* Write the latencies to file, one a line; return 0 or -1 after a
 * message. */
static int
write_samples(const samples *lat, const char *file)
{
    FILE *f;
    size_t i;
    int bad;

    f = fopen(file, "w");
    if (f == NULL) {
        fprintf(stderr, "%s: cannot write %s: %s\n", progname, file,
                strerror(errno));
        return -1;
    }
    for (i = 0; i < lat->n; i++)
        fprintf(f, "%.3f\n", lat->ms[i]);
    bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        fprintf(stderr, "%s: writing %s failed\n", progname, file);
        return -1;
    }
    return 0;
}

static int
run_exchanges(const bench_args *args)
{
    upload_bench b;
    samples lat;
    unsigned long done = 0, failed = 0;
    double start, t0, t1, elapsed;
    char msg[768], *name;
    const char *what, *counted;
    size_t next = 0;
    int status = 1, r;

    memset(&lat, 0, sizeof(lat));
    if (upload_setup(args, &b) != 0)
        return 1;
    b.fetch = (args->mode == MODE_FETCH);
    what = b.fetch ? "fetch" : "upload";
    counted = b.fetch ? "fetches" : "uploads";
    if (args->start_at > 0)
        wait_until(args->start_at);
    start = monotonic_now();
    for (;;) {
        t0 = monotonic_now();
        if (t0 - start >= args->seconds)
            break;
        r = exchange_one(&b, &b.servers[next], failed == 0 ? msg : NULL,
                         sizeof(msg));
        t1 = monotonic_now();
        if (r == 0) {
            done++;
            if (samples_add(&lat, (t1 - t0) * 1000.0) != 0) {
                fprintf(stderr, "%s: out of memory\n", progname);
                goto cleanup;
            }
        } else if (failed++ == 0) {
            if (krb5_unparse_name(b.ctx, b.servers[next].princ, &name) != 0)
                name = NULL;
            fprintf(stderr, "%s: %s %lu (%s) failed: %s\n", progname,
                    what, done + failed, name != NULL ? name : "?", msg);
            krb5_free_unparsed_name(b.ctx, name);
        }
        next = (next + 1) % b.nservers;
    }
    elapsed = monotonic_now() - start;
    qsort(lat.ms, lat.n, sizeof(*lat.ms), cmp_double);
    if (args->samples != NULL && write_samples(&lat, args->samples) != 0)
        goto cleanup;
    if (print_result("%s=%lu failures=%lu seconds=%.3f rate=%.1f "
                     "p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n", counted, done,
                     failed, elapsed, elapsed > 0 ? (double)done / elapsed : 0.0,
                     percentile(&lat, 50), percentile(&lat, 99),
                     percentile(&lat, 100)) != 0)
        goto cleanup;
    if (failed > 0) {
        fprintf(stderr, "%s: %lu of %lu %s failed\n", progname, failed,
                done + failed, counted);
        goto cleanup;
    }
    status = 0;

cleanup:
    free(lat.ms);
    upload_bench_free(&b);
    return status;
}

/* ---- crypto */

/* A shared principal's delay in crypto-fetch's messages. */
#define SHARE_DELAY 3600

typedef struct {
    krb5_context ctx;
    krb5_boolean fetch;         /* crypto-fetch */
    tk_identity *kdc;           /* the KDC's certificate and key */
    tk_identity *srv;           /* the uploading server's, or the member's */
    tk_trust *trust;            /* the anchors, for both directions */
    char *principal;            /* the server's, unparsed */
    char *realm;
    tk_offer offer;
    tk_key_offer key_offer;     /* its hints; the signed offer in it */
    tk_upload up;
    tk_fetch fetch_req;
    tk_ack ack;                 /* crypto-fetch: with the held keys as the
                                 * member receives them, made once */
    krb5_keyblock key;          /* the uploaded key */
    tk_key_info *held_info;     /* crypto-fetch: the KeyOffer's hints */
    tk_held_key *held;          /* and the versions its answer carries */
    size_t nheld;
    unsigned char token[128];   /* stands in for the freshness token */
    krb5_data envelope;         /* the request as sent, made once */
    krb5_data signed_offer;     /* the KDC's messages, made once */
    krb5_data sent_offer;       /* the KeyOffer as sent */
    krb5_data signed_ack;
} crypto_bench;

static void
crypto_bench_free(crypto_bench *b)
{
    if (b->ctx == NULL)
        return;
    tk_identity_free(b->kdc);
    tk_identity_free(b->srv);
    tk_trust_free(b->trust);
    krb5_free_unparsed_name(b->ctx, b->principal);
    free(b->realm);
    krb5_free_keyblock_contents(b->ctx, &b->key);
    free(b->held_info);
    tk_held_keys_free(b->held, b->nheld);
    free(b->ack.shared_keys.data);
    free(b->envelope.data);
    free(b->signed_offer.data);
    free(b->sent_offer.data);
    free(b->signed_ack.data);
    krb5_free_context(b->ctx);
    memset(b, 0, sizeof(*b));
}

/* Encode and sign with id, as the KDC and the client module do. */
typedef krb5_error_code (*encode_fn)(krb5_context ctx, const void *msg,
                                     krb5_data *der_out);

static krb5_error_code
enc_offer(krb5_context ctx, const void *msg, krb5_data *der_out)
{
    return tk_encode_offer(ctx, msg, der_out);
}

static krb5_error_code
enc_upload(krb5_context ctx, const void *msg, krb5_data *der_out)
{
    return tk_encode_upload(ctx, msg, der_out);
}

static krb5_error_code
enc_fetch(krb5_context ctx, const void *msg, krb5_data *der_out)
{
    return tk_encode_fetch(ctx, msg, der_out);
}

static krb5_error_code
enc_ack(krb5_context ctx, const void *msg, krb5_data *der_out)
{
    return tk_encode_ack(ctx, msg, der_out);
}

static krb5_error_code
sign_message(krb5_context ctx, const tk_identity *id, encode_fn encode,
             const void *msg, krb5_data *sig_out)
{
    krb5_error_code ret;
    krb5_data der = EMPTY_DATA;

    ret = encode(ctx, msg, &der);
    if (ret == 0)
        ret = tk_cms_sign(ctx, id, &der, sig_out);
    if (der.data != NULL)
        OPENSSL_cleanse(der.data, der.length);
    free(der.data);
    return ret;
}

/* The client side of one request's sending (an upload, or a fetch):
 * encode, sign, encrypt. */
static krb5_error_code
client_seal(crypto_bench *b, krb5_data *env_out)
{
    krb5_error_code ret;
    krb5_data sig = EMPTY_DATA;

    if (b->fetch)
        ret = sign_message(b->ctx, b->srv, enc_fetch, &b->fetch_req, &sig);
    else
        ret = sign_message(b->ctx, b->srv, enc_upload, &b->up, &sig);
    if (ret == 0)
        ret = tk_cms_encrypt(b->ctx, b->kdc->cert, &sig, env_out);
    free(sig.data);
    return ret;
}

/* Open a signed message and check its signer's chain to the anchors. */
static krb5_error_code
open_and_check(crypto_bench *b, const krb5_data *der, krb5_data *content_out,
               X509 **signer_out)
{
    krb5_error_code ret;
    STACK_OF(X509) *certs = NULL;
    int reason;

    ret = tk_cms_open_signed(b->ctx, der, content_out, signer_out, &certs);
    if (ret)
        return ret;
    reason = tk_verify_chain(b->ctx, b->trust, *signer_out, certs);
    sk_X509_pop_free(certs, X509_free);
    return reason ? tk_reason_code(reason) : 0;
}

/* The KDC's answer to a member: every held version's keys, encrypted to
 * the member's certificate (shared_ack). */
static krb5_error_code
seal_held(crypto_bench *b, krb5_data *env_out)
{
    krb5_error_code ret;
    krb5_data der = EMPTY_DATA;

    ret = tk_encode_held_keys(b->ctx, b->held, b->nheld, &der);
    if (ret == 0)
        ret = tk_cms_encrypt(b->ctx, b->srv->cert, &der, env_out);
    if (der.data != NULL)
        OPENSSL_cleanse(der.data, der.length);
    free(der.data);
    return ret;
}

/* For crypto-fetch: the shared principal holds kvno 1 to versions, all in
 * use and a day to live, each with the keys ktupdate makes by default; the
 * KeyOffer carries them as hints, the Fetch has the upload's binding, and
 * the Ack is a fetch's with the keys. */
static krb5_error_code
shared_setup(crypto_bench *b, size_t versions)
{
    static const krb5_enctype held_enctypes[] = {
        ENCTYPE_AES256_CTS_HMAC_SHA1_96, ENCTYPE_AES128_CTS_HMAC_SHA1_96
    };
    krb5_error_code ret;
    size_t i, j;

    b->held = calloc(versions, sizeof(*b->held));
    b->held_info = calloc(versions, sizeof(*b->held_info));
    if (b->held == NULL || b->held_info == NULL)
        return ENOMEM;
    for (i = 0; i < versions; i++) {
        b->held[i].kvno = b->held_info[i].kvno = (krb5_kvno)(i + 1);
        b->held[i].expiry = b->held_info[i].expiry =
            b->offer.signed_at + 86400;
        b->nheld++;
        for (j = 0; j < sizeof(held_enctypes) / sizeof(*held_enctypes);
             j++) {
            ret = krb5_c_make_random_key(b->ctx, held_enctypes[j],
                                         &b->held[i].keys[j]);
            if (ret)
                return ret;
            b->held[i].nkeys++;
        }
    }
    b->key_offer.current_kvno = (krb5_kvno)versions;
    b->key_offer.share_delay = SHARE_DELAY;
    b->key_offer.held = b->held_info;
    b->key_offer.nheld = versions;

    b->fetch_req.realm = b->up.realm;
    b->fetch_req.principal = b->up.principal;
    memcpy(b->fetch_req.kdc_cert_hash, b->up.kdc_cert_hash, TK_HASH_LEN);
    b->fetch_req.freshness_token = b->up.freshness_token;
    memcpy(b->fetch_req.body_checksum, b->up.body_checksum, TK_HASH_LEN);

    b->ack.kvno = (krb5_kvno)versions;
    b->ack.expiry = b->held[versions - 1].expiry;
    b->ack.fetched = TRUE;
    b->ack.share_delay = SHARE_DELAY;
    return seal_held(b, &b->ack.shared_keys);
}

/* Make the identities and the messages that the loops take as input.
 * Return 0 or 1 after a message. */
static int
crypto_setup(const bench_args *args, crypto_bench *b)
{
    krb5_error_code ret;
    krb5_principal *names = NULL;
    char *anchor_spec[2] = { NULL, NULL };
    int status = 1;

    memset(b, 0, sizeof(*b));
    ret = krb5_init_context(&b->ctx);
    if (ret) {
        complain(NULL, ret, "initializing the krb5 context");
        return 1;
    }
    b->fetch = (args->mode == MODE_CRYPTO_FETCH);
    if (asprintf(&anchor_spec[0], "FILE:%s", args->anchors) < 0) {
        anchor_spec[0] = NULL;
        ret = ENOMEM;
    }
    if (ret == 0)
        ret = tk_trust_load(b->ctx, anchor_spec, NULL, NULL, &b->trust);
    if (ret == 0)
        ret = tk_identity_load(b->ctx, args->kdc_cert, args->kdc_key,
                               &b->kdc);
    if (ret == 0)
        ret = tk_identity_load(b->ctx, args->cert, args->key, &b->srv);
    if (ret) {
        complain(b->ctx, ret, "loading the certificates");
        goto cleanup;
    }
    /* The messages name the server its certificate names, as they would. */
    ret = tk_cert_principals(b->ctx, b->srv->cert, &names);
    if (ret == 0 && (names == NULL || names[0] == NULL)) {
        ret = KRB5_CONFIG_BADFORMAT;
        krb5_set_error_message(b->ctx, ret, "no id-pkinit-san");
    }
    if (ret == 0)
        ret = krb5_unparse_name(b->ctx, names[0], &b->principal);
    if (ret == 0 && (b->realm = strndup(names[0]->realm.data,
                                        names[0]->realm.length)) == NULL)
        ret = ENOMEM;
    if (ret == 0)
        ret = krb5_c_make_random_key(b->ctx, UPLOAD_ENCTYPE, &b->key);
    if (ret) {
        complain(b->ctx, ret, "the server certificate %s", args->cert);
        goto cleanup;
    }
    b->offer.realm = b->realm;
    b->offer.enctypes = &b->key.enctype;
    b->offer.nenctypes = 1;
    b->offer.max_lifetime = 86400;
    b->offer.signed_at = time(NULL);
    b->offer.valid_until = b->offer.signed_at + TK_OFFER_VALIDITY;
    b->key_offer.principal = b->principal;
    b->key_offer.current_kvno = 1;
    b->key_offer.kdc_time = b->offer.signed_at;

    b->up.realm = b->realm;
    b->up.principal = b->principal;
    ret = tk_cert_hash(b->ctx, b->kdc->cert, b->up.kdc_cert_hash);
    RAND_bytes(b->token, sizeof(b->token));
    b->up.freshness_token.data = (char *)b->token;
    b->up.freshness_token.length = sizeof(b->token);
    RAND_bytes(b->up.body_checksum, sizeof(b->up.body_checksum));
    b->up.kvno = 2;
    b->up.keys[0] = b->key;
    b->up.nkeys = 1;
    b->up.expiry = b->offer.signed_at + 3600;

    b->ack.principal = b->principal;
    b->ack.kvno = 2;
    b->ack.expiry = b->up.expiry;
    b->ack.refresh_by = b->offer.signed_at + 2400;

    if (ret == 0 && b->fetch)
        ret = shared_setup(b, args->versions);
    if (ret == 0)
        ret = client_seal(b, &b->envelope);
    if (ret == 0)
        ret = sign_message(b->ctx, b->kdc, enc_offer, &b->offer,
                           &b->signed_offer);
    b->key_offer.signed_offer = b->signed_offer;
    if (ret == 0)
        ret = tk_encode_key_offer(b->ctx, &b->key_offer, &b->sent_offer);
    if (ret == 0)
        ret = sign_message(b->ctx, b->kdc, enc_ack, &b->ack, &b->signed_ack);
    if (ret) {
        complain(b->ctx, ret, "making the messages");
        goto cleanup;
    }
    status = 0;

cleanup:
    tk_free_principals(b->ctx, names);
    free(anchor_spec[0]);
    if (status != 0)
        crypto_bench_free(b);
    return status;
}

/* The KDC's public-key work of one upload or fetch (tk_kdc_edata,
 * tk_kdc_verify, tk_kdc_return), without the database and the Kerberos
 * exchange: put the offer in a KeyOffer (its signature is made once a
 * minute, not per request), decrypt the request, open the SignedData in
 * it, checking its signature, check the signer's chain, decode it; for a
 * fetch encrypt the held keys to the member; sign the Ack. */
static krb5_error_code
kdc_op(crypto_bench *b)
{
    krb5_error_code ret;
    krb5_data sent = EMPTY_DATA, inner = EMPTY_DATA, content = EMPTY_DATA;
    krb5_data signed_ack = EMPTY_DATA;
    X509 *signer = NULL;
    tk_upload *up = NULL;
    tk_fetch *fetch = NULL;
    tk_ack ack = b->ack;

    ack.shared_keys.data = NULL;
    ack.shared_keys.length = 0;
    ret = tk_encode_key_offer(b->ctx, &b->key_offer, &sent);
    if (ret == 0)
        ret = tk_cms_decrypt(b->ctx, b->kdc, &b->envelope, &inner);
    if (ret == 0)
        ret = open_and_check(b, &inner, &content, &signer);
    if (ret == 0 && b->fetch)
        ret = tk_decode_fetch(b->ctx, &content, &fetch);
    else if (ret == 0)
        ret = tk_decode_upload(b->ctx, &content, &up);
    if (ret == 0 && b->fetch)
        ret = seal_held(b, &ack.shared_keys);
    if (ret == 0)
        ret = sign_message(b->ctx, b->kdc, enc_ack, &ack, &signed_ack);

    if (inner.data != NULL)
        OPENSSL_cleanse(inner.data, inner.length);
    if (content.data != NULL)
        OPENSSL_cleanse(content.data, content.length);
    free(sent.data);
    free(inner.data);
    free(content.data);
    free(ack.shared_keys.data);
    free(signed_ack.data);
    tk_upload_free(up);
    tk_fetch_free(fetch);
    X509_free(signer);
    return ret;
}

/* The client's sending work: sign and encrypt a request. */
static krb5_error_code
client_op(crypto_bench *b)
{
    krb5_error_code ret;
    krb5_data env = EMPTY_DATA;

    ret = client_seal(b, &env);
    free(env.data);
    return ret;
}

/* A member's reading of the keys in a fetch's Ack (open_shared_keys). */
static krb5_error_code
open_held(crypto_bench *b, const krb5_data *env)
{
    krb5_error_code ret;
    krb5_data der = EMPTY_DATA;
    tk_held_key *keys = NULL;
    size_t n = 0;

    ret = tk_cms_decrypt(b->ctx, b->srv, env, &der);
    if (ret == 0)
        ret = tk_decode_held_keys(b->ctx, &der, &keys, &n);
    if (der.data != NULL)
        OPENSSL_cleanse(der.data, der.length);
    free(der.data);
    tk_held_keys_free(keys, n);
    return ret;
}

/* All the client module's public-key work of one upload (or fetch): read
 * the offer and check its signature, sign and encrypt, check the Ack (and
 * decrypt the keys a fetch's carries). */
static krb5_error_code
client_full_op(crypto_bench *b)
{
    krb5_error_code ret;
    krb5_data content = EMPTY_DATA, ack_content = EMPTY_DATA;
    X509 *signer = NULL, *ack_signer = NULL;
    tk_key_offer *ko = NULL;
    tk_offer *offer = NULL;
    tk_ack *ack = NULL;

    ret = tk_decode_key_offer(b->ctx, &b->sent_offer, &ko);
    if (ret == 0)
        ret = open_and_check(b, &ko->signed_offer, &content, &signer);
    if (ret == 0)
        ret = tk_decode_offer(b->ctx, &content, &offer);
    if (ret == 0)
        ret = client_op(b);
    if (ret == 0)
        ret = open_and_check(b, &b->signed_ack, &ack_content, &ack_signer);
    if (ret == 0)
        ret = tk_decode_ack(b->ctx, &ack_content, &ack);
    if (ret == 0 && ack->shared_keys.length > 0)
        ret = open_held(b, &ack->shared_keys);
    free(content.data);
    free(ack_content.data);
    X509_free(signer);
    X509_free(ack_signer);
    tk_key_offer_free(ko);
    tk_offer_free(offer);
    tk_ack_free(ack);
    return ret;
}

/* CPU seconds this process has used: a loop's rate alone would count time
 * the machine gave to others. */
static double
process_cpu_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run op for seconds; print "<prefix>ops=N <prefix>seconds=S
 * <prefix>rate=R <prefix>cpu_seconds=C".  Return 0, or 1 after a
 * message. */
static int
time_op(crypto_bench *b, krb5_error_code (*op)(crypto_bench *b),
        double seconds, const char *prefix)
{
    krb5_error_code ret;
    unsigned long n = 0;
    double start, elapsed, cpu_start;

    cpu_start = process_cpu_now();
    start = monotonic_now();
    do {
        ret = op(b);
        if (ret) {
            complain(b->ctx, ret, "%sop %lu failed", prefix, n + 1);
            return 1;
        }
        n++;
        elapsed = monotonic_now() - start;
    } while (elapsed < seconds);
    if (print_result("%sops=%lu %sseconds=%.3f %srate=%.1f "
                     "%scpu_seconds=%.4f\n", prefix, n, prefix, elapsed,
                     prefix, (double)n / elapsed, prefix,
                     process_cpu_now() - cpu_start) != 0)
        return 1;
    return 0;
}

static int
run_crypto(const bench_args *args)
{
    crypto_bench b;
    int status;

    if (crypto_setup(args, &b) != 0)
        return 1;
    if (args->start_at > 0)
        wait_until(args->start_at);
    status = time_op(&b, kdc_op, args->seconds, "");
    if (status == 0)
        status = time_op(&b, client_op, args->seconds, "client_");
    if (status == 0)
        status = time_op(&b, client_full_op, args->seconds, "client_full_");
    crypto_bench_free(&b);
    return status;
}

int
main(int argc, char **argv)
{
    bench_args args;

    if (parse_args(argc, argv, &args) != 0)
        return 2;
    if (args.mode == MODE_UPLOAD || args.mode == MODE_FETCH)
        return run_exchanges(&args);
    return run_crypto(&args);
}
