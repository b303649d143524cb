/* housekeeping.c - the KDC's purge pass, out of its request loop. */
/*
 * A pass lists the managed principals holding an expired key (a walk of
 * the whole database: seconds at 10^6 principals on db2) and purges each,
 * so it never runs in the request loop: at its purge tick a KDC process
 * forks a child that does the pass and exits, and only reaps it at later
 * ticks.  The child takes BASE.purge.lock (flock, without waiting, never
 * removed) and reads there when the last pass started: one pass at a time
 * per database, and one per tick however many krb5kdc -w workers tick.  The names a pass has still to purge are written to
 * BASE.purge.left first, so that a pass cut short (a restart, a kill) is
 * resumed by the next one before it walks again.  On db2 the walk runs
 * with unlockiter, so the database lock is free between entries and
 * uploads are not held up behind it.
 */
#include "housekeeping.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <com_err.h>
#include <profile.h>

/* The pause after each principal's write is as long as the write, within
 * these bounds (purge_name). */
#define PASS_YIELD_MIN_US 200
#define PASS_YIELD_MAX_US 20000

static void
log_error(krb5_context ctx, krb5_error_code code, const char *what)
{
    const char *msg = krb5_get_error_message(ctx, code);

    com_err("tempkey", 0, "purge: %s: %s", what, msg);
    krb5_free_error_message(ctx, msg);
}

static char *
path_with(const char *base, const char *suffix)
{
    char *p = malloc(strlen(base) + strlen(suffix) + 1);

    if (p != NULL)
        sprintf(p, "%s%s", base, suffix);
    return p;
}

/* The sockets are the KDC's (its ports, its LDAP connections): closing the
 * child's copies keeps a port from outliving the KDC, and the child opens
 * the database afresh. */
static void
close_sockets(void)
{
    struct stat st;
    long fd, max = sysconf(_SC_OPEN_MAX);

    if (max < 0 || max > 65536)
        max = 65536;
    for (fd = 3; fd < max; fd++) {
        if (fstat((int)fd, &st) == 0 && S_ISSOCK(st.st_mode))
            close((int)fd);
    }
}

/* db_args for the child's writer: the KDC's, and unlockiter on db2. */
static char **
child_args(krb5_context ctx, const tk_config *cfg, char **db_args)
{
    char **args;
    size_t n = 0, i;

    while (db_args != NULL && db_args[n] != NULL)
        n++;
    args = calloc(n + 2, sizeof(*args));
    if (args == NULL)
        return NULL;
    for (i = 0; i < n; i++)
        args[i] = db_args[i];
    if (tk_backing_is_db2(ctx, cfg))
        args[n] = "unlockiter";
    return args;
}

typedef struct {
    int64_t last;               /* when the last pass started */
    unsigned long passes;       /* how many have run (for the tests) */
} stamp;

static void
read_stamp(int fd, stamp *s)
{
    char buf[128];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    long long last = 0;

    memset(s, 0, sizeof(*s));
    if (n <= 0)
        return;
    buf[n] = '\0';
    if (sscanf(buf, "last %lld passes %lu", &last, &s->passes) >= 1)
        s->last = last;
}

static void
write_stamp(int fd, const stamp *s)
{
    char buf[128];
    int n = snprintf(buf, sizeof(buf), "last %lld passes %lu\n",
                     (long long)s->last, s->passes);

    if (ftruncate(fd, 0) == 0 && pwrite(fd, buf, n, 0) == n)
        (void)fdatasync(fd);
}

static void
purge_name(krb5_context ctx, krb5_const_principal princ, int64_t now,
           size_t *total)
{
    krb5_error_code ret;
    size_t removed = 0;
    char *name = NULL;
    struct timespec t0, t1;
    long held_us;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    ret = tk_db_purge_one(ctx, princ, now, &removed);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* Let a writer waiting for the database lock (kadmind, an upload in
     * the KDC) have it.  Lock waiters are not queued: one woken late (a
     * busy machine) finds the pass holding the lock again, and under ASan
     * a fixed 200 us pause kept kadmin.local out for over a minute.  A
     * pause as long as the write holds the lock at most half the time, in
     * windows that grow with the machine's slowness. */
    held_us = (t1.tv_sec - t0.tv_sec) * 1000000 +
        (t1.tv_nsec - t0.tv_nsec) / 1000;
    usleep(held_us < PASS_YIELD_MIN_US ? PASS_YIELD_MIN_US :
           held_us > PASS_YIELD_MAX_US ? PASS_YIELD_MAX_US : held_us);
    if (ret == KRB5_KDB_NOENTRY)        /* gone since the listing */
        return;
    if (krb5_unparse_name(ctx, princ, &name) != 0)
        return;
    if (ret)
        log_error(ctx, ret, name);
    else if (removed > 0)
        com_err("tempkey", 0, "purged %zu expired key version(s) of %s",
                removed, name);
    *total += removed;
    krb5_free_unparsed_name(ctx, name);
}

/* Purge the names a cut-short pass left in the file left; return how
 * many. */
static size_t
resume(krb5_context ctx, const char *left, int64_t now, size_t *total)
{
    FILE *f = fopen(left, "r");
    char line[4096];
    krb5_principal princ;
    size_t n = 0;

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '\0' || krb5_parse_name(ctx, line, &princ) != 0)
            continue;
        purge_name(ctx, princ, now, total);
        krb5_free_principal(ctx, princ);
        n++;
    }
    fclose(f);
    return n;
}

/* Write names to the file left (through a temporary file and a rename: a reader
 * sees the whole list or none). */
static krb5_error_code
write_left(krb5_context ctx, const char *left, krb5_principal *names,
           size_t count)
{
    char *tmp = path_with(left, ".new"), *name;
    FILE *f;
    size_t i;
    int ok;

    if (tmp == NULL)
        return ENOMEM;
    f = fopen(tmp, "w");
    if (f == NULL) {
        free(tmp);
        return errno;
    }
    for (i = 0; i < count; i++) {
        if (krb5_unparse_name(ctx, names[i], &name) == 0) {
            fprintf(f, "%s\n", name);
            krb5_free_unparsed_name(ctx, name);
        }
    }
    ok = fflush(f) == 0 && fdatasync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    if (ok && rename(tmp, left) == 0) {
        free(tmp);
        return 0;
    }
    unlink(tmp);
    free(tmp);
    return EIO;
}

/* The workers' purge timers tick at the same instants (multiples of
 * purge_interval on the wall clock), so a pass started within this window
 * was another worker's for the same tick.  It is short, so that an
 * administrator's SIGHUP still starts a pass. */
static int64_t
dedup_window(const tk_config *cfg)
{
    int64_t w = cfg->purge_interval / 2;

    return w < 1 ? 1 : w > 5 ? 5 : w;
}

/* The child: one pass, if it is this process's turn. */
static void
run_pass(krb5_context kdc_ctx, const tk_config *cfg, char **db_args,
         pid_t parent)
{
    krb5_error_code ret;
    krb5_context ctx = NULL;
    profile_t profile = NULL;
    char *realm = NULL;
    krb5_principal *names = NULL;
    char *lock = path_with(cfg->db_base, ".purge.lock");
    char *left = path_with(cfg->db_base, ".purge.left");
    char **args = NULL;
    size_t count = 0, i, resumed, total = 0;
    struct timespec t0, t1;
    int64_t now;
    stamp s;
    int fd;

    /* The tick comes at a whole second; time() may still say the one
     * before, and so miss the keys that expire at it. */
    clock_gettime(CLOCK_REALTIME, &t0);
    now = t0.tv_sec;
    /* Die with the KDC process, even if it is killed. */
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0);
    signal(SIGHUP, SIG_IGN);
    close_sockets();
    if (lock == NULL || left == NULL)
        _exit(1);
    fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0)
        _exit(0);               /* another pass is running */
    read_stamp(fd, &s);
    if (now - s.last < dedup_window(cfg) && access(left, F_OK) != 0)
        _exit(0);               /* another worker's pass of this tick ran */
    s.last = now;
    s.passes++;
    write_stamp(fd, &s);

    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* The KDC's own configuration (kdc.conf included), as its writer. */
    ret = krb5_get_profile(kdc_ctx, &profile);
    if (ret == 0)
        ret = krb5_init_context_profile(profile, KRB5_INIT_CONTEXT_KDC,
                                        &ctx);
    if (ret == 0)
        ret = krb5_get_default_realm(kdc_ctx, &realm);
    if (ret == 0)
        ret = krb5_set_default_realm(ctx, realm);
    args = (ret == 0) ? child_args(ctx, cfg, db_args) : NULL;
    if (ret == 0 && args == NULL)
        ret = ENOMEM;
    if (ret == 0)
        ret = tk_db_open_for_writes(ctx, realm, cfg, args);
    if (ret) {
        if (ctx != NULL)
            log_error(ctx, ret, "opening the database");
        _exit(1);
    }
    resumed = resume(ctx, left, now, &total);
    if (resumed > 0)
        com_err("tempkey", 0, "purge: resumed an interrupted pass (%zu "
                "principals)", resumed);
    ret = tk_db_list_expired(ctx, now, &names, &count);
    if (ret) {
        log_error(ctx, ret, "listing principals");
        _exit(1);
    }
    if (count > 0 && write_left(ctx, left, names, count) != 0)
        com_err("tempkey", 0, "purge: cannot write %s; a pass cut short "
                "will walk again", left);
    for (i = 0; i < count; i++) {
        purge_name(ctx, names[i], now, &total);
        krb5_free_principal(ctx, names[i]);
    }
    unlink(left);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (total > 0 || resumed > 0) {
        com_err("tempkey", 0, "purge: pass done: %zu key version(s) of %zu "
                "principal(s) in %ld ms", total, count + resumed,
                (long)((t1.tv_sec - t0.tv_sec) * 1000 +
                       (t1.tv_nsec - t0.tv_nsec) / 1000000));
    }
    /* Freed although the process ends, so that memcheck of the KDC
     * (make valgrind-kdc) reports no leak of the pass. */
    tk_db_close_for_writes(ctx);
    free(names);
    free(args);
    krb5_free_default_realm(kdc_ctx, realm);
    krb5_free_context(ctx);
    profile_release(profile);
    free(lock);
    free(left);
    /* Nothing of the KDC's may run here: no exit handlers. */
    _exit(0);
}

void
tk_housekeeping_tick(krb5_context ctx, const tk_config *cfg, char **db_args,
                     pid_t *child)
{
    pid_t pid, parent = getpid();

    if (*child > 0) {
        if (waitpid(*child, NULL, WNOHANG) == 0)
            return;             /* the last pass is still running */
        *child = 0;
    }
    pid = fork();
    if (pid < 0) {
        log_error(ctx, errno, "cannot start a pass");
        return;
    }
    if (pid == 0)
        run_pass(ctx, cfg, db_args, parent);
    *child = pid;
}

void
tk_housekeeping_stop(pid_t *child)
{
    if (*child <= 0)
        return;
    kill(*child, SIGKILL);
    (void)waitpid(*child, NULL, 0);
    *child = 0;
}
