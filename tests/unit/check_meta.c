/* check_meta.c - unit tests of the metadata DER codec and its error paths. */
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "derbuf.h"
#include "tempkey.h"

static krb5_context ctx;

static void
setup(void)
{
    ck_assert_int_eq(krb5_init_context(&ctx), 0);
}

static void
teardown(void)
{
    krb5_free_context(ctx);
}

/* ---- Records crafted with derbuf.h. */

static void
record(buf *o, long long kvno, long long expiry, int uploader_len)
{
    buf c = { .n = 0 }, s = { .n = 0 };
    unsigned char fp[64];

    integer(&c, kvno);
    integer(&c, expiry);
    if (uploader_len >= 0) {
        memset(fp, 0xab, sizeof(fp));
        put(&s, fp, uploader_len);
        tlv(&c, 0x04, &s);
    }
    tlv(o, 0x30, &c);
}

/* TempkeyMeta with the given header and already-encoded records. */
static void
meta(buf *o, long long version, long long highest, long long last,
     const buf *records)
{
    buf c = { .n = 0 };

    integer(&c, version);
    integer(&c, highest);
    integer(&c, last);
    integer(&c, 7);             /* generation */
    tlv(&c, 0x30, records);
    tlv(o, 0x30, &c);
}

/* Decode o, expecting code and a message containing what. */
static void
expect_error(const buf *o, krb5_error_code code, const char *what)
{
    tk_meta *m = (tk_meta *)1;
    krb5_error_code ret;
    const char *msg;

    ret = tk_meta_decode(ctx, o->b, o->n, &m);
    ck_assert_int_eq(ret, code);
    ck_assert_ptr_null(m);
    msg = krb5_get_error_message(ctx, ret);
    ck_assert_msg(strstr(msg, what) != NULL, "message \"%s\" lacks \"%s\"",
                  msg, what);
    krb5_free_error_message(ctx, msg);
}

START_TEST(round_trip)
{
    tk_meta in, *out = NULL;
    tk_key_record recs[3];
    unsigned char *der = NULL;
    size_t len, i;

    memset(recs, 0, sizeof(recs));
    recs[0].kvno = 1;
    recs[0].expiry = 1700000000;
    recs[1].kvno = 7;
    recs[1].expiry = 4102444800LL;     /* past 2038 */
    recs[1].has_uploader = 1;
    for (i = 0; i < TK_UPLOADER_LEN; i++)
        recs[1].uploader[i] = (unsigned char)i;
    /* A shared principal's key, used from then. */
    recs[1].active_at = 4102440000LL;
    recs[2].kvno = TK_KVNO_MAX;
    recs[2].expiry = 1;
    in.highest_kvno = TK_KVNO_MAX;
    in.last_expiry = 1699999999;
    in.generation = 12345678901LL;
    in.nkeys = 3;
    in.keys = recs;

    ck_assert_int_eq(tk_meta_encode(ctx, &in, &der, &len), 0);
    ck_assert_int_eq(tk_meta_decode(ctx, der, len, &out), 0);
    ck_assert_uint_eq(out->highest_kvno, TK_KVNO_MAX);
    ck_assert_int_eq(out->last_expiry, 1699999999);
    ck_assert_uint_eq(out->generation, 12345678901LL);
    ck_assert_uint_eq(out->nkeys, 3);
    ck_assert_mem_eq(out->keys, recs, sizeof(recs));
    tk_meta_free(out);
    free(der);
}
END_TEST

/* An activation time must be a time. */
START_TEST(bad_activation_time)
{
    tk_meta in, *out = NULL;
    tk_key_record rec;
    unsigned char *der = NULL;
    const char *msg;
    size_t len;

    memset(&in, 0, sizeof(in));
    memset(&rec, 0, sizeof(rec));
    rec.kvno = 1;
    rec.expiry = 1700000000;
    rec.active_at = -5;
    in.highest_kvno = 1;
    in.nkeys = 1;
    in.keys = &rec;
    ck_assert_int_eq(tk_meta_encode(ctx, &in, &der, &len), 0);
    ck_assert_int_eq(tk_meta_decode(ctx, der, len, &out), ASN1_BAD_FORMAT);
    ck_assert_ptr_null(out);
    msg = krb5_get_error_message(ctx, ASN1_BAD_FORMAT);
    ck_assert_msg(strstr(msg, "activation time out of range") != NULL,
                  "message \"%s\"", msg);
    krb5_free_error_message(ctx, msg);
    free(der);
}
END_TEST

START_TEST(round_trip_empty)
{
    tk_meta in, *out = NULL;
    unsigned char *der = NULL;
    size_t len;

    memset(&in, 0, sizeof(in));
    in.highest_kvno = 4;
    in.generation = 0;
    ck_assert_int_eq(tk_meta_encode(ctx, &in, &der, &len), 0);
    ck_assert_int_eq(tk_meta_decode(ctx, der, len, &out), 0);
    ck_assert_uint_eq(out->highest_kvno, 4);
    ck_assert_uint_eq(out->nkeys, 0);
    ck_assert_ptr_null(out->keys);
    tk_meta_free(out);
    free(der);
}
END_TEST

START_TEST(crafted_valid_record_decodes)
{
    buf recs = { .n = 0 }, o = { .n = 0 };
    tk_meta *m = NULL;

    record(&recs, 2, 1000, 32);
    record(&recs, 3, 2000, -1);
    meta(&o, 1, 3, 0, &recs);
    ck_assert_int_eq(tk_meta_decode(ctx, o.b, o.n, &m), 0);
    ck_assert_uint_eq(m->nkeys, 2);
    ck_assert_int_eq(m->keys[0].has_uploader, 1);
    ck_assert_int_eq(m->keys[1].has_uploader, 0);
    tk_meta_free(m);
}
END_TEST

START_TEST(empty_input)
{
    buf o = { .n = 0 };

    expect_error(&o, ASN1_BAD_LENGTH, "empty record");
}
END_TEST

START_TEST(garbage)
{
    buf o = { .n = 0 };

    put(&o, "\xff\x00\x13garbage", 10);
    expect_error(&o, ASN1_PARSE_ERROR, "not a DER TempkeyMeta");
}
END_TEST

START_TEST(truncated)
{
    buf recs = { .n = 0 }, o = { .n = 0 };

    record(&recs, 1, 1000, 32);
    meta(&o, 1, 1, 0, &recs);
    o.n -= 5;
    expect_error(&o, ASN1_PARSE_ERROR, "not a DER TempkeyMeta");
}
END_TEST

START_TEST(trailing_bytes)
{
    buf recs = { .n = 0 }, o = { .n = 0 };

    meta(&o, 1, 0, 0, &recs);
    put(&o, "\x00", 1);
    expect_error(&o, ASN1_BAD_LENGTH, "trailing bytes");
}
END_TEST

START_TEST(oversized)
{
    buf recs = { .n = 0 }, o = { .n = 0 };
    int i;

    for (i = 1; i <= 400; i++)
        record(&recs, i, 1000, 32);
    meta(&o, 1, 400, 0, &recs);
    expect_error(&o, ASN1_BAD_LENGTH, "too large");
}
END_TEST

START_TEST(wrong_version)
{
    buf recs = { .n = 0 }, o = { .n = 0 };

    meta(&o, 2, 0, 0, &recs);
    expect_error(&o, KRB5_KDB_BAD_VERSION, "unknown version");
}
END_TEST

START_TEST(highest_kvno_out_of_range)
{
    buf recs = { .n = 0 }, o = { .n = 0 };

    meta(&o, 1, 65536, 0, &recs);
    expect_error(&o, ASN1_BAD_FORMAT, "highest kvno out of range");
}
END_TEST

START_TEST(negative_last_expiry)
{
    buf recs = { .n = 0 }, o = { .n = 0 };

    meta(&o, 1, 0, -1, &recs);
    expect_error(&o, ASN1_BAD_FORMAT, "last expiry out of range");
}
END_TEST

START_TEST(kvno_zero)
{
    buf recs = { .n = 0 }, o = { .n = 0 };

    record(&recs, 0, 1000, -1);
    meta(&o, 1, 1, 0, &recs);
    expect_error(&o, ASN1_BAD_FORMAT, "key version out of range");
}
END_TEST

START_TEST(kvno_above_highest)
{
    buf recs = { .n = 0 }, o = { .n = 0 };

    record(&recs, 5, 1000, -1);
    meta(&o, 1, 4, 0, &recs);
    expect_error(&o, ASN1_BAD_FORMAT, "key version out of range");
}
END_TEST

START_TEST(kvno_not_ascending)
{
    buf recs = { .n = 0 }, o = { .n = 0 };

    record(&recs, 3, 1000, -1);
    record(&recs, 3, 2000, -1);
    meta(&o, 1, 3, 0, &recs);
    expect_error(&o, ASN1_BAD_FORMAT, "not strictly ascending");
}
END_TEST

START_TEST(expiry_not_positive)
{
    buf recs = { .n = 0 }, o = { .n = 0 };

    record(&recs, 1, 0, -1);
    meta(&o, 1, 1, 0, &recs);
    expect_error(&o, ASN1_BAD_FORMAT, "expiry out of range");
}
END_TEST

START_TEST(uploader_wrong_length)
{
    buf recs = { .n = 0 }, o = { .n = 0 };

    record(&recs, 1, 1000, 31);
    meta(&o, 1, 1, 0, &recs);
    expect_error(&o, ASN1_BAD_FORMAT, "not 32 bytes");
}
END_TEST

START_TEST(integer_too_wide)
{
    buf recs = { .n = 0 }, o = { .n = 0 }, c = { .n = 0 }, r = { .n = 0 };

    /* A 9-byte INTEGER does not fit in 64 bits. */
    put(&c, "\x01\x00\x00\x00\x00\x00\x00\x00\x00", 9);
    integer(&r, 1);
    tlv(&r, 0x02, &c);
    tlv(&recs, 0x30, &r);
    meta(&o, 1, 1, 0, &recs);
    expect_error(&o, ASN1_BAD_FORMAT, "expiry out of range");
}
END_TEST

static Suite *
meta_suite(void)
{
    Suite *s = suite_create("meta");
    TCase *tc = tcase_create("codec");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, bad_activation_time);
    tcase_add_test(tc, round_trip_empty);
    tcase_add_test(tc, crafted_valid_record_decodes);
    tcase_add_test(tc, empty_input);
    tcase_add_test(tc, garbage);
    tcase_add_test(tc, truncated);
    tcase_add_test(tc, trailing_bytes);
    tcase_add_test(tc, oversized);
    tcase_add_test(tc, wrong_version);
    tcase_add_test(tc, highest_kvno_out_of_range);
    tcase_add_test(tc, negative_last_expiry);
    tcase_add_test(tc, kvno_zero);
    tcase_add_test(tc, kvno_above_highest);
    tcase_add_test(tc, kvno_not_ascending);
    tcase_add_test(tc, expiry_not_positive);
    tcase_add_test(tc, uploader_wrong_length);
    tcase_add_test(tc, integer_too_wide);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(meta_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
