/* check_ratchet.c - unit tests of the ratchet: file, steps, wrapping, and
 * every way the file can be wrong. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <kdb.h>

#include "tkratchet.h"

#define EPOCH 60
/* A clock well inside an epoch. */
#define T0 ((int64_t)1800000000 / EPOCH * EPOCH + 7)

static krb5_context ctx;
static char dir[64], path[128];

static void
setup(void)
{
    ck_assert_int_eq(krb5_init_context(&ctx), 0);
    strcpy(dir, "/tmp/check-ratchet-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/ratchet", dir);
}

static void
teardown(void)
{
    char lock[160];

    snprintf(lock, sizeof(lock), "%s.lock", path);
    unlink(path);
    unlink(lock);
    rmdir(path);                /* one test makes it a directory */
    rmdir(dir);
    krb5_free_context(ctx);
}

static const char *
message(krb5_error_code code)
{
    static char buf[1024];
    const char *msg = krb5_get_error_message(ctx, code);

    snprintf(buf, sizeof(buf), "%s", msg);
    krb5_free_error_message(ctx, msg);
    return buf;
}

static void
assert_message(krb5_error_code code, const char *part)
{
    const char *msg = message(code);

    ck_assert_msg(strstr(msg, part) != NULL, "message \"%s\" lacks \"%s\"",
                  msg, part);
    ck_assert_msg(strstr(msg, path) != NULL, "message \"%s\" lacks the "
                  "file's name", msg);
}

static tk_ratchet *
open_primary(int64_t now)
{
    tk_ratchet *r = NULL;

    ck_assert_int_eq(tk_ratchet_open(ctx, path, EPOCH, TK_RATCHET_CREATE,
                                     now, &r), 0);
    return r;
}

static void
read_bytes(unsigned char *buf, size_t len)
{
    FILE *f = fopen(path, "rb");

    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fread(buf, 1, len, f), len);
    fclose(f);
}

static void
write_bytes(const unsigned char *buf, size_t len)
{
    FILE *f = fopen(path, "wb");

    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
    fclose(f);
}

/* A key of kvno 3 wrapped for a key expiring at expiry. */
static void
wrap_key(tk_ratchet *r, int64_t expiry, unsigned char *marker,
         krb5_keyblock *key, krb5_keyblock *wrapped)
{
    krb5_data md = { 0, TK_RATCHET_MARKER_LEN, (char *)marker };

    ck_assert_int_eq(krb5_c_make_random_key(ctx,
                                            ENCTYPE_AES256_CTS_HMAC_SHA1_96,
                                            key), 0);
    ck_assert_int_eq(tk_ratchet_marker(ctx, r, expiry, marker), 0);
    ck_assert_int_eq(tk_ratchet_wrap(ctx, r, &md, 3, key, wrapped), 0);
    ck_assert_uint_eq(wrapped->length, key->length + TK_RATCHET_OVERHEAD);
}

static krb5_error_code
unwrap(tk_ratchet *r, unsigned char *marker, krb5_kvno kvno,
       const krb5_keyblock *wrapped, const krb5_keyblock *expect)
{
    krb5_data md = { 0, TK_RATCHET_MARKER_LEN, (char *)marker };
    krb5_keyblock out;
    krb5_error_code ret;

    ret = tk_ratchet_unwrap(ctx, r, &md, kvno, wrapped, &out);
    if (ret == 0) {
        ck_assert_uint_eq(out.length, expect->length);
        ck_assert_mem_eq(out.contents, expect->contents, out.length);
        krb5_free_keyblock_contents(ctx, &out);
    }
    return ret;
}

START_TEST(create_wrap_unwrap)
{
    tk_ratchet *r = open_primary(T0);
    unsigned char marker[TK_RATCHET_MARKER_LEN];
    krb5_keyblock key, wrapped;
    struct stat st;
    const char *notice;

    notice = tk_ratchet_notice(r);
    ck_assert_ptr_nonnull(notice);
    ck_assert_ptr_nonnull(strstr(notice, "made the ratchet file"));
    ck_assert_ptr_null(tk_ratchet_notice(r));
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_size, TK_RATCHET_FILE_SIZE);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_uint_eq(tk_ratchet_epoch(r), T0 / EPOCH);

    wrap_key(r, T0 + 10 * EPOCH, marker, &key, &wrapped);
    ck_assert_int_eq(unwrap(r, marker, 3, &wrapped, &key), 0);
    /* The kvno and the enctype are bound to the wrapped key. */
    ck_assert_int_eq(unwrap(r, marker, 4, &wrapped, &key), TK_ERR_UNREADABLE);
    wrapped.enctype = ENCTYPE_AES128_CTS_HMAC_SHA1_96;
    ck_assert_int_eq(unwrap(r, marker, 3, &wrapped, &key), TK_ERR_UNREADABLE);
    wrapped.enctype = key.enctype;
    wrapped.contents[20] ^= 1;
    ck_assert_int_eq(unwrap(r, marker, 3, &wrapped, &key), TK_ERR_UNREADABLE);
    wrapped.contents[20] ^= 1;

    /* Another process opening the same file reads the same key. */
    {
        tk_ratchet *r2 = open_primary(T0 + 2 * EPOCH);

        ck_assert_ptr_null(tk_ratchet_notice(r2));
        ck_assert_int_eq(unwrap(r2, marker, 3, &wrapped, &key), 0);
        tk_ratchet_close(r2);
    }
    krb5_free_keyblock_contents(ctx, &key);
    krb5_free_keyblock_contents(ctx, &wrapped);
    tk_ratchet_close(r);
}
END_TEST

START_TEST(ended_epoch_cannot_be_read)
{
    tk_ratchet *r = open_primary(T0), *late;
    unsigned char marker[TK_RATCHET_MARKER_LEN], before[TK_RATCHET_FILE_SIZE];
    unsigned char after[TK_RATCHET_FILE_SIZE];
    krb5_keyblock key, wrapped;
    int64_t expiry = T0 + 3 * EPOCH + 5;

    wrap_key(r, expiry, marker, &key, &wrapped);
    read_bytes(before, sizeof(before));
    /* Still readable in the epoch of its expiry, even after it. */
    ck_assert_int_eq(tk_ratchet_sync(ctx, r, expiry + 1), 0);
    ck_assert_int_eq(unwrap(r, marker, 3, &wrapped, &key), 0);
    /* Not once that epoch is over, here or in any later process. */
    ck_assert_int_eq(tk_ratchet_sync(ctx, r, (expiry / EPOCH + 1) * EPOCH),
                     0);
    ck_assert_int_eq(unwrap(r, marker, 3, &wrapped, &key), TK_ERR_UNREADABLE);
    assert_message(TK_ERR_UNREADABLE, "");
    ck_assert_ptr_nonnull(strstr(message(TK_ERR_UNREADABLE), "is over"));
    late = open_primary(expiry + EPOCH);
    ck_assert_int_eq(unwrap(late, marker, 3, &wrapped, &key),
                     TK_ERR_UNREADABLE);
    /* Both slots were overwritten, and hold the same. */
    read_bytes(after, sizeof(after));
    ck_assert_mem_ne(before, after, TK_RATCHET_FILE_SIZE / 2);
    ck_assert_mem_ne(before + TK_RATCHET_FILE_SIZE / 2,
                     after + TK_RATCHET_FILE_SIZE / 2,
                     TK_RATCHET_FILE_SIZE / 2);
    ck_assert_mem_eq(after, after + TK_RATCHET_FILE_SIZE / 2,
                     TK_RATCHET_FILE_SIZE / 2);
    /* A key cannot be wrapped for an epoch that is over. */
    ck_assert_int_eq(tk_ratchet_marker(ctx, late, expiry, marker),
                     TK_ERR_UNREADABLE);
    krb5_free_keyblock_contents(ctx, &key);
    krb5_free_keyblock_contents(ctx, &wrapped);
    tk_ratchet_close(late);
    tk_ratchet_close(r);
}
END_TEST

START_TEST(read_only_does_not_step)
{
    tk_ratchet *r = open_primary(T0), *ro = NULL;
    unsigned char before[TK_RATCHET_FILE_SIZE], after[TK_RATCHET_FILE_SIZE];

    tk_ratchet_close(r);
    read_bytes(before, sizeof(before));
    ck_assert_int_eq(tk_ratchet_open(ctx, path, EPOCH, TK_RATCHET_READ_ONLY,
                                     T0 + 50 * EPOCH, &ro), 0);
    ck_assert_uint_eq(tk_ratchet_epoch(ro), T0 / EPOCH);
    read_bytes(after, sizeof(after));
    ck_assert_mem_eq(before, after, sizeof(before));
    tk_ratchet_close(ro);
}
END_TEST

START_TEST(missing_file_on_a_replica)
{
    tk_ratchet *r = NULL;
    krb5_error_code ret;

    ret = tk_ratchet_open(ctx, path, EPOCH, 0, T0, &r);
    ck_assert_int_eq(ret, KRB5_KDB_CANTREAD_STORED);
    ck_assert_ptr_null(r);
    assert_message(ret, "is missing; a replica needs a copy");
    ck_assert_int_eq(access(path, F_OK), -1);
}
END_TEST

START_TEST(wrong_size)
{
    unsigned char buf[TK_RATCHET_FILE_SIZE];
    tk_ratchet *r = open_primary(T0), *again = NULL;
    krb5_error_code ret;
    const char *notice;

    tk_ratchet_close(r);
    read_bytes(buf, sizeof(buf));
    write_bytes(buf, 100);
    ret = tk_ratchet_open(ctx, path, EPOCH, 0, T0, &again);
    ck_assert_int_eq(ret, KRB5_KDB_CANTREAD_STORED);
    assert_message(ret, "it has the wrong size");
    /* A primary starts a new ratchet in its place. */
    again = open_primary(T0);
    notice = tk_ratchet_notice(again);
    ck_assert_ptr_nonnull(notice);
    ck_assert_ptr_nonnull(strstr(notice, "wrong size; started a new "
                                 "ratchet"));
    tk_ratchet_close(again);
    again = open_primary(T0);
    ck_assert_ptr_null(tk_ratchet_notice(again));
    tk_ratchet_close(again);
}
END_TEST

START_TEST(bad_checksums)
{
    unsigned char buf[TK_RATCHET_FILE_SIZE], fixed[TK_RATCHET_FILE_SIZE];
    unsigned char marker[TK_RATCHET_MARKER_LEN];
    krb5_keyblock key, wrapped;
    tk_ratchet *r = open_primary(T0), *again = NULL;
    krb5_error_code ret;

    wrap_key(r, T0 + EPOCH, marker, &key, &wrapped);
    tk_ratchet_close(r);
    read_bytes(buf, sizeof(buf));

    /* One bad slot (a crash mid-write): the other serves, and the bad one
     * is written again. */
    buf[50] ^= 0xff;
    write_bytes(buf, sizeof(buf));
    again = open_primary(T0);
    ck_assert_int_eq(unwrap(again, marker, 3, &wrapped, &key), 0);
    tk_ratchet_close(again);
    read_bytes(fixed, sizeof(fixed));
    ck_assert_mem_eq(fixed, fixed + TK_RATCHET_FILE_SIZE / 2,
                     TK_RATCHET_FILE_SIZE / 2);

    /* Both bad: no ratchet. */
    buf[50 + TK_RATCHET_FILE_SIZE / 2] ^= 0xff;
    write_bytes(buf, sizeof(buf));
    ret = tk_ratchet_open(ctx, path, EPOCH, 0, T0, &again);
    ck_assert_int_eq(ret, KRB5_KDB_CANTREAD_STORED);
    assert_message(ret, "neither of its slots has a good checksum");
    again = open_primary(T0);
    ck_assert_ptr_nonnull(strstr(tk_ratchet_notice(again),
                                 "started a new ratchet"));
    /* The keys wrapped under the lost one are gone. */
    ck_assert_int_eq(unwrap(again, marker, 3, &wrapped, &key),
                     TK_ERR_UNREADABLE);
    ck_assert_ptr_nonnull(strstr(message(TK_ERR_UNREADABLE),
                                 "another ratchet"));
    krb5_free_keyblock_contents(ctx, &key);
    krb5_free_keyblock_contents(ctx, &wrapped);
    tk_ratchet_close(again);
}
END_TEST

START_TEST(key_epoch_changed)
{
    tk_ratchet *r = open_primary(T0), *other = NULL;
    krb5_error_code ret;

    tk_ratchet_close(r);
    ret = tk_ratchet_open(ctx, path, EPOCH * 2, TK_RATCHET_CREATE, T0,
                          &other);
    ck_assert_int_eq(ret, KRB5_CONFIG_BADFORMAT);
    assert_message(ret, "made with key_epoch = 60s but the setting is now "
                   "120s");
    ck_assert_ptr_null(other);
}
END_TEST

START_TEST(epoch_ahead_of_the_clock)
{
    tk_ratchet *r = open_primary(T0 + 10 * EPOCH), *behind;
    const char *notice;

    tk_ratchet_close(r);
    /* One epoch ahead is a clock step at a boundary: no word. */
    behind = open_primary(T0 + 9 * EPOCH);
    ck_assert_ptr_null(tk_ratchet_notice(behind));
    tk_ratchet_close(behind);
    behind = open_primary(T0);
    ck_assert_uint_eq(tk_ratchet_epoch(behind), T0 / EPOCH + 10);
    notice = tk_ratchet_notice(behind);
    ck_assert_ptr_nonnull(notice);
    ck_assert_ptr_nonnull(strstr(notice, "ahead of this host's clock"));
    ck_assert_ptr_nonnull(strstr(notice, path));
    tk_ratchet_close(behind);
}
END_TEST

START_TEST(unreadable_file)
{
    tk_ratchet *r = NULL;
    krb5_error_code ret;

    ck_assert_int_eq(mkdir(path, 0700), 0);
    ret = tk_ratchet_open(ctx, path, EPOCH, TK_RATCHET_CREATE, T0, &r);
    ck_assert_int_ne(ret, 0);
    ck_assert_ptr_null(r);
    assert_message(ret, "cannot");
}
END_TEST

START_TEST(init_never_overwrites)
{
    unsigned char before[TK_RATCHET_FILE_SIZE], after[TK_RATCHET_FILE_SIZE];
    krb5_error_code ret;

    ck_assert_int_eq(tk_ratchet_init(ctx, path, EPOCH, T0), 0);
    read_bytes(before, sizeof(before));
    ret = tk_ratchet_init(ctx, path, EPOCH, T0);
    ck_assert_int_eq(ret, EEXIST);
    assert_message(ret, "it exists; a ratchet file is never overwritten");
    read_bytes(after, sizeof(after));
    ck_assert_mem_eq(before, after, sizeof(before));
}
END_TEST

START_TEST(lost_while_running_is_written_again)
{
    tk_ratchet *r = open_primary(T0), *fresh;
    unsigned char marker[TK_RATCHET_MARKER_LEN];
    krb5_keyblock key, wrapped;

    (void)tk_ratchet_notice(r);
    wrap_key(r, T0 + 5 * EPOCH, marker, &key, &wrapped);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(tk_ratchet_sync(ctx, r, T0 + EPOCH), 0);
    ck_assert_ptr_nonnull(strstr(tk_ratchet_notice(r), "was missing; "
                                 "written again"));
    fresh = open_primary(T0 + EPOCH);
    ck_assert_int_eq(unwrap(fresh, marker, 3, &wrapped, &key), 0);
    tk_ratchet_close(fresh);

    /* Replaced by a new ratchet: the file is the authority. */
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(tk_ratchet_init(ctx, path, EPOCH, T0 + EPOCH), 0);
    ck_assert_int_eq(tk_ratchet_sync(ctx, r, T0 + 2 * EPOCH), 0);
    ck_assert_ptr_nonnull(strstr(tk_ratchet_notice(r), "was replaced"));
    ck_assert_int_eq(unwrap(r, marker, 3, &wrapped, &key),
                     TK_ERR_UNREADABLE);
    krb5_free_keyblock_contents(ctx, &key);
    krb5_free_keyblock_contents(ctx, &wrapped);
    tk_ratchet_close(r);
}
END_TEST

START_TEST(markers_and_requests)
{
    unsigned char buf[TK_RATCHET_REQUEST_LEN], id[TK_RATCHET_ID_LEN];
    krb5_data d = { 0, sizeof(buf), (char *)buf };
    tk_ratchet *r = open_primary(T0);
    unsigned char marker[TK_RATCHET_MARKER_LEN];
    krb5_data md = { 0, sizeof(marker), (char *)marker };
    int64_t expiry = 0;
    uint64_t epoch = 0;

    tk_ratchet_request(T0 + 99, buf);
    ck_assert(tk_ratchet_parse_request(&d, &expiry));
    ck_assert_int_eq(expiry, T0 + 99);
    ck_assert(!tk_ratchet_parse_marker(&d, NULL, NULL));
    d.length--;
    ck_assert(!tk_ratchet_parse_request(&d, &expiry));

    ck_assert_int_eq(tk_ratchet_marker(ctx, r, T0 + 99, marker), 0);
    ck_assert(tk_ratchet_parse_marker(&md, id, &epoch));
    ck_assert_uint_eq(epoch, (T0 + 99) / EPOCH);
    ck_assert_mem_eq(id, tk_ratchet_id(r), TK_RATCHET_ID_LEN);
    ck_assert(tk_ratchet_readable(r, &md));
    ck_assert(!tk_ratchet_parse_request(&md, &expiry));
    /* Out of reach ahead. */
    ck_assert_int_eq(tk_ratchet_marker(ctx, r, T0 + (int64_t)EPOCH *
                                       TK_RATCHET_MAX_AHEAD, marker),
                     TK_ERR_UNREADABLE);
    tk_ratchet_close(r);
}
END_TEST

/*
 * kill -9 at any moment of an advance never leaves the file unreadable:
 * a child steps the ratchet as fast as it can (each step writes both
 * slots) and is killed after a varying delay, 150 times.
 */
START_TEST(killed_during_advances)
{
    tk_ratchet *r = open_primary(T0), *check_r;
    int i, status;
    pid_t pid;

    tk_ratchet_close(r);
    for (i = 0; i < 150; i++) {
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            tk_ratchet *c = NULL;
            int64_t t;

            /* The file is ahead of T0 by now: it is taken as found. */
            if (tk_ratchet_open(ctx, path, EPOCH, 0, T0, &c) != 0)
                _exit(2);
            t = (int64_t)tk_ratchet_epoch(c) * EPOCH;
            for (;;) {
                t += EPOCH;
                if (tk_ratchet_sync(ctx, c, t) != 0)
                    _exit(3);
            }
        }
        usleep(200 + (i * 37) % 3000);
        kill(pid, SIGKILL);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFSIGNALED(status), "child exited %d",
                      WEXITSTATUS(status));
        check_r = NULL;
        ck_assert_int_eq(tk_ratchet_open(ctx, path, EPOCH,
                                         TK_RATCHET_READ_ONLY, T0,
                                         &check_r), 0);
        if (i == 149)
            ck_assert_uint_gt(tk_ratchet_epoch(check_r), T0 / EPOCH);
        tk_ratchet_close(check_r);
    }
}
END_TEST

static Suite *
ratchet_suite(void)
{
    Suite *s = suite_create("ratchet");
    TCase *tc = tcase_create("file");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, create_wrap_unwrap);
    tcase_add_test(tc, ended_epoch_cannot_be_read);
    tcase_add_test(tc, read_only_does_not_step);
    tcase_add_test(tc, missing_file_on_a_replica);
    tcase_add_test(tc, wrong_size);
    tcase_add_test(tc, bad_checksums);
    tcase_add_test(tc, key_epoch_changed);
    tcase_add_test(tc, epoch_ahead_of_the_clock);
    tcase_add_test(tc, unreadable_file);
    tcase_add_test(tc, init_never_overwrites);
    tcase_add_test(tc, lost_while_running_is_written_again);
    tcase_add_test(tc, markers_and_requests);
    tcase_add_test(tc, killed_during_advances);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(ratchet_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
