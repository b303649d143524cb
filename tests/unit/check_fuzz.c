/* check_fuzz.c - the inputs fuzzing found crashing (tests/unit/fuzz-crashes),
 * replayed through the calls of the target that found them; under
 * scripts/check --sanitize a relapse is a sanitizer report. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "tkproto.h"

static krb5_context ctx;
static tk_identity *kdc;

static const char *
srcdir(void)
{
    const char *dir = getenv("TK_SRCDIR");

    return dir != NULL ? dir : ".";
}

static void
setup(void)
{
    char cert[4096], key[4096];

    setenv("KRB5_CONFIG", "/dev/null", 1);     /* no system krb5.conf */
    ck_assert_int_eq(krb5_init_context(&ctx), 0);
    snprintf(cert, sizeof(cert), "%s/tests/fuzz/data/kdc.pem", srcdir());
    snprintf(key, sizeof(key), "%s/tests/fuzz/data/kdc-TEST-KEY.pem",
             srcdir());
    ck_assert_int_eq(tk_identity_load(ctx, cert, key, &kdc), 0);
}

static void
teardown(void)
{
    tk_identity_free(kdc);
    krb5_free_context(ctx);
}

/* The contents of tests/unit/fuzz-crashes/name; free d->data. */
static void
crash_input(const char *name, krb5_data *d)
{
    char path[4096];
    FILE *f;
    long n;

    snprintf(path, sizeof(path), "%s/tests/unit/fuzz-crashes/%s", srcdir(),
             name);
    f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    ck_assert_int_gt(n, 0);
    rewind(f);
    d->data = malloc(n);
    ck_assert_ptr_nonnull(d->data);
    ck_assert_int_eq(fread(d->data, 1, n, f), n);
    d->length = n;
    fclose(f);
}

/* An EnvelopedData to the KDC whose content decrypts to nothing: the empty
 * memory BIO has no buffer, and copying from it passed NULL to memcpy. */
START_TEST(cms_enveloped_empty_content)
{
    krb5_data in, inner = { 0, 0, NULL }, content;
    X509 *signer;
    STACK_OF(X509) *certs;

    crash_input("cms_enveloped-empty-content", &in);
    ck_assert_int_eq(tk_cms_decrypt(ctx, kdc, &in, &inner), 0);
    ck_assert_uint_eq(inner.length, 0);
    ck_assert_ptr_nonnull(inner.data);
    /* Which is not a SignedData. */
    ck_assert_int_eq(tk_cms_open_signed(ctx, &inner, &content, &signer,
                                        &certs), ASN1_PARSE_ERROR);
    free(inner.data);
    free(in.data);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("fuzz");
    TCase *tc = tcase_create("crashes");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, cms_enveloped_empty_content);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
