/* tkbench.c - a libkrb5 load generator: timed AS or TGS requests to a KDC. */
/*
 * usage: tkbench as|tgs --principal P --password PW [--service S]
 *                (--seconds N | --count N) [--start-at EPOCH]
 *                [--latency] [--trace FILE] [--stoppable]
 *
 * as:  each request is a full AS exchange, krb5_get_init_creds_password()
 *      for P (with whatever preauthentication the realm asks for); nothing
 *      is stored.
 * tgs: a TGT for P is obtained once into a MEMORY ccache; each request asks
 *      the KDC for a ticket to S with krb5_get_credentials() and
 *      KRB5_GC_NO_STORE, so the ccache never answers and every request is
 *      a TGS exchange with the KDC.
 *
 * The timed loop starts at once, or at the wall-clock time --start-at (so
 * several processes can be started together), and runs for --seconds or
 * until --count requests have been made.  One line is printed on stdout:
 *
 *     requests=N failures=F seconds=S rate=R
 *
 * where N counts successful requests and R is N/S.  Options for the scale
 * benchmark (bench/scale.py), none of which changes that line:
 *
 *   --latency    a second line, over every request (failed ones too):
 *                    latency p50_us=A p90_us=B p99_us=C p999_us=D max_us=E
 *                    max_at=EPOCH
 *                nearest-rank percentiles of each request's duration in
 *                microseconds; max_at is when the slowest request started
 *                (wall clock, seconds since the epoch).
 *   --trace F    write every request to F, one a line, in the order made:
 *                "START_EPOCH DURATION_US OK" (OK 1, or 0 for a failure).
 *   --stoppable  SIGTERM ends the timed loop between two requests (it is
 *                blocked while one is in flight, so none is cut short); the
 *                results so far are printed as usual.
 *
 * The exit status is 0 if
 * every request succeeded, 1 if any request or the setup failed (the first
 * failure's message goes to stderr), 2 on a usage error.
 */

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <krb5.h>

#include "benchutil.h"

const char *progname = "tkbench";

typedef enum { MODE_AS, MODE_TGS } bench_mode;

typedef struct {
    bench_mode mode;
    const char *principal;
    const char *password;
    const char *service;
    double seconds;             /* 0: not given */
    unsigned long count;        /* 0: not given */
    double start_at;            /* 0: start at once */
    int latency;                /* --latency */
    const char *trace;          /* --trace FILE, or NULL */
    int stoppable;              /* --stoppable */
} bench_args;

/* One request of --latency or --trace. */
typedef struct {
    double start;               /* CLOCK_MONOTONIC */
    float us;                   /* duration */
    unsigned char ok;
} sample;

typedef struct {
    sample *v;
    size_t n, cap;
} samples;

typedef struct {
    krb5_context ctx;
    const char *password;
    krb5_principal client;      /* as given, for AS; from the ccache, TGS */
    krb5_principal server;      /* TGS only */
    krb5_get_init_creds_opt *opts;
    krb5_ccache ccache;         /* TGS only */
} bench;

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: %s as|tgs --principal P --password PW [--service S]\n"
            "       (--seconds N | --count N) [--start-at EPOCH]\n"
            "       [--latency] [--trace FILE] [--stoppable]\n"
            "  as   AS exchanges (krb5_get_init_creds_password) for P\n"
            "  tgs  TGS exchanges for service S with P's TGT\n"
            "prints: requests=N failures=F seconds=S rate=R\n"
            "--latency adds: latency p50_us= p90_us= p99_us= p999_us= "
            "max_us= max_at=\n",
            progname);
}

/* Print "tkbench: what: message for code" on stderr (ctx may be NULL). */
/* Fill args from the command line; return 0, or -1 after a message. */
static int
parse_args(int argc, char **argv, bench_args *args)
{
    static const struct option longopts[] = {
        { "principal", required_argument, NULL, 'p' },
        { "password", required_argument, NULL, 'w' },
        { "service", required_argument, NULL, 's' },
        { "seconds", required_argument, NULL, 't' },
        { "count", required_argument, NULL, 'n' },
        { "start-at", required_argument, NULL, 'a' },
        { "latency", no_argument, NULL, 'L' },
        { "trace", required_argument, NULL, 'T' },
        { "stoppable", no_argument, NULL, 'S' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    double v;
    int c;

    memset(args, 0, sizeof(*args));
    while ((c = getopt_long(argc, argv, "p:w:s:t:n:a:h", longopts,
                            NULL)) != -1) {
        switch (c) {
        case 'p':
            args->principal = optarg;
            break;
        case 'w':
            args->password = optarg;
            break;
        case 's':
            args->service = optarg;
            break;
        case 't':
            if (parse_number("--seconds", optarg, 0, &args->seconds) != 0)
                return -1;
            break;
        case 'n':
            if (parse_number("--count", optarg, 1, &v) != 0)
                return -1;
            args->count = (unsigned long)v;
            break;
        case 'a':
            if (parse_number("--start-at", optarg, 0, &args->start_at) != 0)
                return -1;
            break;
        case 'L':
            args->latency = 1;
            break;
        case 'T':
            args->trace = optarg;
            break;
        case 'S':
            args->stoppable = 1;
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
    if (strcmp(argv[optind], "as") == 0) {
        args->mode = MODE_AS;
    } else if (strcmp(argv[optind], "tgs") == 0) {
        args->mode = MODE_TGS;
    } else {
        fprintf(stderr, "%s: unknown mode \"%s\" (as or tgs)\n", progname,
                argv[optind]);
        return -1;
    }
    if (args->principal == NULL || args->password == NULL) {
        fprintf(stderr, "%s: --principal and --password are required\n",
                progname);
        return -1;
    }
    if ((args->mode == MODE_TGS) != (args->service != NULL)) {
        fprintf(stderr, "%s: --service goes with tgs, and only with tgs\n",
                progname);
        return -1;
    }
    if ((args->seconds > 0) == (args->count > 0)) {
        fprintf(stderr, "%s: give one of --seconds and --count\n", progname);
        return -1;
    }
    return 0;
}

static void
bench_free(bench *b)
{
    if (b->ctx == NULL)
        return;
    if (b->ccache != NULL)
        krb5_cc_destroy(b->ctx, b->ccache);
    krb5_get_init_creds_opt_free(b->ctx, b->opts);
    krb5_free_principal(b->ctx, b->server);
    krb5_free_principal(b->ctx, b->client);
    krb5_free_context(b->ctx);
    memset(b, 0, sizeof(*b));
}

/* Make the context and principals; for TGS, get the TGT.  Return 0 or 1
 * after a message. */
static int
bench_setup(const bench_args *args, bench *b)
{
    krb5_error_code ret;
    krb5_principal ccprinc = NULL;
    krb5_creds tgt;
    int status = 1;

    memset(b, 0, sizeof(*b));
    memset(&tgt, 0, sizeof(tgt));
    b->password = args->password;
    ret = krb5_init_context(&b->ctx);
    if (ret) {
        complain(NULL, ret, "initializing the krb5 context");
        return 1;
    }
    ret = krb5_parse_name(b->ctx, args->principal, &b->client);
    if (ret) {
        complain(b->ctx, ret, "parsing %s", args->principal);
        goto cleanup;
    }
    ret = krb5_get_init_creds_opt_alloc(b->ctx, &b->opts);
    if (ret) {
        complain(b->ctx, ret, "allocating init_creds options");
        goto cleanup;
    }
    if (args->mode == MODE_AS) {
        status = 0;
        goto cleanup;
    }

    ret = krb5_parse_name(b->ctx, args->service, &b->server);
    if (ret) {
        complain(b->ctx, ret, "parsing %s", args->service);
        goto cleanup;
    }
    ret = krb5_cc_new_unique(b->ctx, "MEMORY", NULL, &b->ccache);
    if (ret) {
        complain(b->ctx, ret, "creating a MEMORY ccache");
        goto cleanup;
    }
    ret = krb5_get_init_creds_opt_set_out_ccache(b->ctx, b->opts, b->ccache);
    if (ret) {
        complain(b->ctx, ret, "setting the output ccache");
        goto cleanup;
    }
    ret = krb5_get_init_creds_password(b->ctx, &tgt, b->client, b->password,
                                       NULL, NULL, 0, NULL, b->opts);
    if (ret) {
        complain(b->ctx, ret, "getting a TGT for %s", args->principal);
        goto cleanup;
    }
    /* Ask as the client the KDC named in the TGT. */
    ret = krb5_cc_get_principal(b->ctx, b->ccache, &ccprinc);
    if (ret) {
        complain(b->ctx, ret, "reading the ccache principal");
        goto cleanup;
    }
    krb5_free_principal(b->ctx, b->client);
    b->client = ccprinc;
    ccprinc = NULL;
    status = 0;

cleanup:
    krb5_free_cred_contents(b->ctx, &tgt);
    krb5_free_principal(b->ctx, ccprinc);
    if (status != 0)
        bench_free(b);
    return status;
}

/* One AS exchange; the credentials are discarded. */
static krb5_error_code
as_request(bench *b)
{
    krb5_error_code ret;
    krb5_creds creds;

    memset(&creds, 0, sizeof(creds));
    ret = krb5_get_init_creds_password(b->ctx, &creds, b->client,
                                       b->password, NULL, NULL, 0, NULL,
                                       b->opts);
    krb5_free_cred_contents(b->ctx, &creds);
    return ret;
}

/* One TGS exchange; nothing is stored, so the next one asks the KDC too. */
static krb5_error_code
tgs_request(bench *b)
{
    krb5_error_code ret;
    krb5_creds in, *out = NULL;

    memset(&in, 0, sizeof(in));
    in.client = b->client;
    in.server = b->server;
    ret = krb5_get_credentials(b->ctx, KRB5_GC_NO_STORE, b->ccache, &in,
                               &out);
    krb5_free_creds(b->ctx, out);
    return ret;
}

static int
samples_add(samples *s, double start, double end, int ok)
{
    sample *v;
    size_t cap;

    if (s->n == s->cap) {
        cap = s->cap ? s->cap * 2 : 65536;
        v = realloc(s->v, cap * sizeof(*v));
        if (v == NULL)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n].start = start;
    s->v[s->n].us = (float)((end - start) * 1e6);
    s->v[s->n].ok = ok != 0;
    s->n++;
    return 0;
}

static int
cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;

    return (x > y) - (x < y);
}

/* The nearest-rank percentile p (0 < p <= 100) of n sorted values. */
static double
percentile(const float *sorted, size_t n, double p)
{
    size_t rank;

    if (n == 0)
        return 0.0;
    rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

/* The --latency line; wall = the wall clock minus the monotonic one.
 * Return 0, or -1 after a message. */
static int
print_latency(const samples *s, double wall)
{
    float *us;
    size_t i, slowest = 0;

    us = malloc((s->n ? s->n : 1) * sizeof(*us));
    if (us == NULL) {
        fprintf(stderr, "%s: out of memory\n", progname);
        return -1;
    }
    for (i = 0; i < s->n; i++) {
        us[i] = s->v[i].us;
        if (s->v[i].us > s->v[slowest].us)
            slowest = i;
    }
    qsort(us, s->n, sizeof(*us), cmp_float);
    printf("latency p50_us=%.0f p90_us=%.0f p99_us=%.0f p999_us=%.0f "
           "max_us=%.0f max_at=%.6f\n", percentile(us, s->n, 50),
           percentile(us, s->n, 90), percentile(us, s->n, 99),
           percentile(us, s->n, 99.9), percentile(us, s->n, 100),
           s->n ? s->v[slowest].start + wall : 0.0);
    free(us);
    return 0;
}

/* The --trace file; return 0, or -1 after a message. */
static int
write_trace(const samples *s, double wall, const char *file)
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
    for (i = 0; i < s->n; i++) {
        fprintf(f, "%.6f %.0f %d\n", s->v[i].start + wall, s->v[i].us,
                s->v[i].ok);
    }
    bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        fprintf(stderr, "%s: writing %s failed\n", progname, file);
        return -1;
    }
    return 0;
}

/* The wall clock minus the monotonic clock, in seconds. */
static double
wall_offset(void)
{
    struct timespec ts;
    double mono = monotonic_now();

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 - mono;
}

int
main(int argc, char **argv)
{
    krb5_error_code ret;
    bench_args args;
    bench b;
    unsigned long done = 0, failed = 0;
    double start, elapsed, t0, wall = 0;
    samples lat;
    sigset_t term, pending;
    int status = 1, keep;

    memset(&lat, 0, sizeof(lat));
    if (parse_args(argc, argv, &args) != 0)
        return 2;
    keep = args.latency || args.trace != NULL;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    /* Blocked, SIGTERM stays pending until the loop looks for it. */
    if (args.stoppable)
        sigprocmask(SIG_BLOCK, &term, NULL);
    if (bench_setup(&args, &b) != 0)
        return 1;

    if (args.start_at > 0)
        wait_until(args.start_at);
    start = monotonic_now();
    if (keep)
        wall = wall_offset();
    for (;;) {
        if (args.count > 0 && done + failed >= args.count)
            break;
        t0 = monotonic_now();
        if (args.seconds > 0 && t0 - start >= args.seconds)
            break;
        if (args.stoppable && sigpending(&pending) == 0 &&
            sigismember(&pending, SIGTERM))
            break;
        ret = (args.mode == MODE_AS) ? as_request(&b) : tgs_request(&b);
        if (keep && samples_add(&lat, t0, monotonic_now(), ret == 0) != 0) {
            fprintf(stderr, "%s: out of memory\n", progname);
            goto cleanup;
        }
        if (ret == 0) {
            done++;
            continue;
        }
        if (failed++ == 0) {
            complain(b.ctx, ret, "%s request failed",
                     (args.mode == MODE_AS) ? "AS" : "TGS");
        }
    }
    elapsed = monotonic_now() - start;

    printf("requests=%lu failures=%lu seconds=%.3f rate=%.1f\n", done,
           failed, elapsed, elapsed > 0 ? (double)done / elapsed : 0.0);
    if (args.latency && print_latency(&lat, wall) != 0)
        goto cleanup;
    if (args.trace != NULL && write_trace(&lat, wall, args.trace) != 0)
        goto cleanup;
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "%s: writing the result: %s\n", progname,
                strerror(errno));
        goto cleanup;
    }
    if (failed > 0) {
        fprintf(stderr, "%s: %lu of %lu requests failed\n", progname, failed,
                done + failed);
        goto cleanup;
    }
    status = 0;

cleanup:
    free(lat.v);
    bench_free(&b);
    return status;
}
