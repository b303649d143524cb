/* ratchetbench.c - what the ratchet costs: an epoch step (the file's and a
 * follower's), the first unwrap after it, and a wrap and an unwrap. */
/*
 * usage: ratchetbench [--dir DIR] [--steps N] [--ops N] [--key-epoch S]
 *        [--ahead SECONDS]
 *
 * In DIR (default: a new temporary directory, removed after) it makes a
 * ratchet file and opens it twice, as two processes of a KDC host would.
 * Each of N steps moves the clock one epoch on: the first handle steps the
 * file (lock, read, derive, two slot writes each synced), the second then
 * follows (lock, read: the file is already there), and a new process
 * opens it and unwraps a key expiring --ahead seconds later (default 1d),
 * deriving the wrapping keys up to it.  Then N wraps and N unwraps of an
 * AES-256 key.
 * Prints the median and 90th percentile of each, in microseconds.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <krb5.h>

#include "tkratchet.h"

static double
now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int
cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static void
report(const char *what, double *v, int n)
{
    qsort(v, n, sizeof(*v), cmp);
    printf("%-40s median %9.1f us  p90 %9.1f us  (n=%d)\n", what, v[n / 2],
           v[n * 9 / 10], n);
}

static void
check(krb5_context ctx, krb5_error_code ret, const char *what)
{
    const char *msg;

    if (ret == 0)
        return;
    msg = krb5_get_error_message(ctx, ret);
    fprintf(stderr, "ratchetbench: %s: %s\n", what, msg);
    exit(1);
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "dir", required_argument, NULL, 'd' },
        { "steps", required_argument, NULL, 's' },
        { "ops", required_argument, NULL, 'o' },
        { "key-epoch", required_argument, NULL, 'e' },
        { "ahead", required_argument, NULL, 'a' },
        { NULL, 0, NULL, 0 }
    };
    char tmp[] = "/tmp/ratchetbench-XXXXXX", path[4096], lock[4200];
    const char *dir = NULL;
    int steps = 200, ops = 20000, i, c;
    long key_epoch = 300, ahead = 86400;
    krb5_context ctx;
    tk_ratchet *a, *b, *fresh;
    krb5_keyblock key, wrapped, out;
    unsigned char marker[TK_RATCHET_MARKER_LEN];
    krb5_data md = { 0, sizeof(marker), (char *)marker };
    double *step_v, *follow_v, *first_v, *wrap_v, *unwrap_v, t;
    int64_t clock = (int64_t)time(NULL);

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 's': steps = atoi(optarg); break;
        case 'o': ops = atoi(optarg); break;
        case 'e': key_epoch = atol(optarg); break;
        case 'a': ahead = atol(optarg); break;
        default: return 2;
        }
    }
    if (steps < 1 || ops < 1 || key_epoch < 1 || ahead < 0)
        return 2;
    if (dir == NULL && (dir = mkdtemp(tmp)) == NULL)
        return 1;
    snprintf(path, sizeof(path), "%s/bench.ratchet", dir);
    snprintf(lock, sizeof(lock), "%s.lock", path);
    unlink(path);
    if (krb5_init_context(&ctx) != 0)
        return 1;
    check(ctx, tk_ratchet_open(ctx, path, key_epoch, TK_RATCHET_CREATE,
                               clock, &a), "open");
    check(ctx, tk_ratchet_open(ctx, path, key_epoch, 0, clock, &b), "open");
    check(ctx, krb5_c_make_random_key(ctx, ENCTYPE_AES256_CTS_HMAC_SHA1_96,
                                      &key), "key");
    step_v = calloc(steps, sizeof(double));
    follow_v = calloc(steps, sizeof(double));
    first_v = calloc(steps, sizeof(double));
    wrap_v = calloc(ops, sizeof(double));
    unwrap_v = calloc(ops, sizeof(double));

    for (i = 0; i < steps; i++) {
        clock += key_epoch;
        t = now_us();
        check(ctx, tk_ratchet_sync(ctx, a, clock), "step");
        step_v[i] = now_us() - t;
        t = now_us();
        check(ctx, tk_ratchet_sync(ctx, b, clock), "follow");
        follow_v[i] = now_us() - t;
        check(ctx, tk_ratchet_marker(ctx, b, clock + ahead, marker),
              "marker");
        check(ctx, tk_ratchet_wrap(ctx, b, &md, 2, &key, &wrapped), "wrap");
        /* A new process: open, then derive up to the key's epoch. */
        t = now_us();
        check(ctx, tk_ratchet_open(ctx, path, key_epoch, 0, clock, &fresh),
              "open");
        check(ctx, tk_ratchet_unwrap(ctx, fresh, &md, 2, &wrapped, &out),
              "unwrap");
        first_v[i] = now_us() - t;
        tk_ratchet_close(fresh);
        krb5_free_keyblock_contents(ctx, &out);
        krb5_free_keyblock_contents(ctx, &wrapped);
    }
    for (i = 0; i < ops; i++) {
        t = now_us();
        check(ctx, tk_ratchet_wrap(ctx, a, &md, 2, &key, &wrapped), "wrap");
        wrap_v[i] = now_us() - t;
        t = now_us();
        check(ctx, tk_ratchet_unwrap(ctx, a, &md, 2, &wrapped, &out),
              "unwrap");
        unwrap_v[i] = now_us() - t;
        if (out.length != key.length ||
            memcmp(out.contents, key.contents, key.length) != 0) {
            fprintf(stderr, "ratchetbench: unwrap gave another key\n");
            return 1;
        }
        krb5_free_keyblock_contents(ctx, &out);
        krb5_free_keyblock_contents(ctx, &wrapped);
    }
    printf("ratchet file %s, key_epoch %lds, keys %lds ahead (%ld "
           "epochs)\n", path, key_epoch, ahead, ahead / key_epoch);
    report("epoch step, writing the file", step_v, steps);
    report("epoch step, following the file", follow_v, steps);
    report("new process: open and first unwrap", first_v, steps);
    report("wrap (AES-256 key)", wrap_v, ops);
    report("unwrap (AES-256 key)", unwrap_v, ops);
    tk_ratchet_close(a);
    tk_ratchet_close(b);
    krb5_free_keyblock_contents(ctx, &key);
    krb5_free_context(ctx);
    unlink(path);
    unlink(lock);
    if (dir == tmp)
        rmdir(tmp);
    return 0;
}
