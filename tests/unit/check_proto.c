/* check_proto.c - unit tests of the upload protocol's codec: round trips
 * and every decoding error path. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "derbuf.h"
#include "tkproto.h"

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

/* ---- Messages crafted with derbuf.h. */

/* [tag] EXPLICIT around a primitive. */
static void
field(buf *o, int tag, unsigned char type, const void *p, size_t n)
{
    buf prim = { .n = 0 }, raw = { .n = 0 };

    put(&raw, p, n);
    tlv(&prim, type, &raw);
    tlv(o, 0xa0 | tag, &prim);
}

static void
int_field(buf *o, int tag, long long v)
{
    buf c = { .n = 0 };

    integer(&c, v);
    tlv(o, 0xa0 | tag, &c);
}

static void
str_field(buf *o, int tag, const char *s, size_t n)
{
    field(o, tag, 0x0c, s, n);
}

static void
oct_field(buf *o, int tag, size_t n, unsigned char fill)
{
    unsigned char v[8192] = { 0 };

    memset(v, fill, n);
    field(o, tag, 0x04, v, n);
}

/* Wrap fields as SEQUENCE and the SEQUENCE as TempkeyMessage choice tag. */
static void
message(buf *o, int choice, const buf *fields)
{
    buf seq = { .n = 0 };

    tlv(&seq, 0x30, fields);
    tlv(o, 0xa0 | choice, &seq);
}

/* An Ack's fields with one of them changed. */
static void
ack_fields(buf *f, long long version, const char *principal,
           long long kvno, long long expiry)
{
    int_field(f, 0, version);
    str_field(f, 1, principal, strlen(principal));
    int_field(f, 2, kvno);
    int_field(f, 3, expiry);
    int_field(f, 4, expiry - 10);
}

static void
expect_ack_error(const buf *o, krb5_error_code code, const char *what)
{
    krb5_data d = { 0, (unsigned int)o->n, (char *)o->b };
    tk_ack *ack = (tk_ack *)1;
    const char *msg;

    ck_assert_int_eq(tk_decode_ack(ctx, &d, &ack), code);
    ck_assert_ptr_null(ack);
    msg = krb5_get_error_message(ctx, code);
    ck_assert_msg(strstr(msg, what) != NULL, "\"%s\" lacks \"%s\"", msg,
                  what);
    krb5_free_error_message(ctx, msg);
}

/* Upload fields; which selects a field to corrupt (0: none). */
static void
upload_fields(buf *f, int which)
{
    buf keys = { .n = 0 }, key = { .n = 0 }, k = { .n = 0 }, wrapped;

    int_field(f, 0, which == 1 ? 2 : 1);
    str_field(f, 1, "R", 1);
    str_field(f, 2, which == 2 ? "a\0b" : "HTTP/x@R", which == 2 ? 3 : 8);
    oct_field(f, 3, which == 3 ? 31 : 32, 1);
    oct_field(f, 4, which == 4 ? 5000 : 16, 2);
    oct_field(f, 5, 32, 3);
    int_field(f, 6, which == 5 ? 70000 : 7);
    int_field(&k, 0, 18);
    oct_field(&k, 1, which == 6 ? 65 : 32, 4);
    tlv(&key, 0x30, &k);
    if (which != 7)
        put(&keys, key.b, key.n);
    wrapped.n = 0;
    tlv(&wrapped, 0x30, &keys);
    tlv(f, 0xa7, &wrapped);
    int_field(f, 8, which == 8 ? 0 : 2000000000);
}

static void
expect_upload_error(int which, const char *what)
{
    buf f = { .n = 0 }, o = { .n = 0 };
    krb5_data d;
    tk_upload *up = (tk_upload *)1;
    krb5_error_code ret;
    const char *msg;

    upload_fields(&f, which);
    message(&o, 1, &f);
    d.data = (char *)o.b;
    d.length = o.n;
    ret = tk_decode_upload(ctx, &d, &up);
    ck_assert_int_eq(ret, ASN1_BAD_FORMAT);
    ck_assert_ptr_null(up);
    msg = krb5_get_error_message(ctx, ret);
    ck_assert_msg(strstr(msg, what) != NULL, "\"%s\" lacks \"%s\"", msg,
                  what);
    krb5_free_error_message(ctx, msg);
}

START_TEST(key_request_round_trip)
{
    krb5_enctype et[2] = { 18, 20 };
    tk_key_request in = { "R", "HTTP/x@R", et, 2, 86400, 65535,
                          4102444800LL }, *out = NULL;
    krb5_data der = { 0, 0, NULL };

    ck_assert_int_eq(tk_encode_key_request(ctx, &in, &der), 0);
    ck_assert_int_eq(tk_decode_key_request(ctx, &der, &out), 0);
    ck_assert_str_eq(out->realm, "R");
    ck_assert_str_eq(out->principal, "HTTP/x@R");
    ck_assert_uint_eq(out->nenctypes, 2);
    ck_assert_int_eq(out->enctypes[1], 20);
    ck_assert_int_eq(out->max_lifetime, 86400);
    ck_assert_uint_eq(out->current_kvno, 65535);
    ck_assert_int_eq(out->kdc_time, 4102444800LL);
    tk_key_request_free(out);
    free(der.data);
}
END_TEST

START_TEST(offer_round_trip)
{
    krb5_enctype et[2] = { 18, 17 };
    tk_offer in = { "R", et, 2, 86400, 1700000000, 1700000120 }, *out = NULL;
    krb5_data der = { 0, 0, NULL };

    ck_assert_int_eq(tk_encode_offer(ctx, &in, &der), 0);
    ck_assert_int_eq(tk_decode_offer(ctx, &der, &out), 0);
    ck_assert_str_eq(out->realm, "R");
    ck_assert_uint_eq(out->nenctypes, 2);
    ck_assert_int_eq(out->enctypes[1], 17);
    ck_assert_int_eq(out->max_lifetime, 86400);
    ck_assert_int_eq(out->signed_at, 1700000000);
    ck_assert_int_eq(out->valid_until, 1700000120);
    tk_offer_free(out);
    free(der.data);
}
END_TEST

START_TEST(key_offer_round_trip)
{
    tk_key_offer in = { { 0, 5, "\x30\x03\x02\x01\x01" }, "HTTP/x@R", 65535,
                        4102444800LL }, *out = NULL;
    krb5_data der = { 0, 0, NULL };

    ck_assert_int_eq(tk_encode_key_offer(ctx, &in, &der), 0);
    ck_assert_int_eq(tk_decode_key_offer(ctx, &der, &out), 0);
    ck_assert_uint_eq(out->signed_offer.length, 5);
    ck_assert_mem_eq(out->signed_offer.data, in.signed_offer.data, 5);
    ck_assert_str_eq(out->principal, "HTTP/x@R");
    ck_assert_uint_eq(out->current_kvno, 65535);
    ck_assert_int_eq(out->kdc_time, 4102444800LL);
    tk_key_offer_free(out);
    free(der.data);
    /* Nothing to send without a signed offer. */
    in.signed_offer.length = 0;
    ck_assert_int_eq(tk_encode_key_offer(ctx, &in, &der), ENOMEM);
}
END_TEST

START_TEST(upload_round_trip)
{
    tk_upload in, *out = NULL;
    unsigned char k1[32], k2[16];
    krb5_data der = { 0, 0, NULL };

    memset(&in, 0, sizeof(in));
    memset(k1, 0x11, sizeof(k1));
    memset(k2, 0x22, sizeof(k2));
    in.realm = "R";
    in.principal = "HTTP/x@R";
    memset(in.kdc_cert_hash, 0xaa, TK_HASH_LEN);
    in.freshness_token.data = "token";
    in.freshness_token.length = 5;
    memset(in.body_checksum, 0xbb, TK_HASH_LEN);
    in.kvno = 9;
    in.keys[0].enctype = 18;
    in.keys[0].contents = k1;
    in.keys[0].length = 32;
    in.keys[1].enctype = 17;
    in.keys[1].contents = k2;
    in.keys[1].length = 16;
    in.nkeys = 2;
    in.expiry = 2000000000;
    ck_assert_int_eq(tk_encode_upload(ctx, &in, &der), 0);
    ck_assert_int_eq(tk_decode_upload(ctx, &der, &out), 0);
    ck_assert_str_eq(out->principal, "HTTP/x@R");
    ck_assert_mem_eq(out->kdc_cert_hash, in.kdc_cert_hash, TK_HASH_LEN);
    ck_assert_mem_eq(out->body_checksum, in.body_checksum, TK_HASH_LEN);
    ck_assert_uint_eq(out->freshness_token.length, 5);
    ck_assert_mem_eq(out->freshness_token.data, "token", 5);
    ck_assert_uint_eq(out->kvno, 9);
    ck_assert_uint_eq(out->nkeys, 2);
    ck_assert_int_eq(out->keys[1].enctype, 17);
    ck_assert_mem_eq(out->keys[1].contents, k2, 16);
    ck_assert_int_eq(out->expiry, 2000000000);
    tk_upload_free(out);
    free(der.data);
}
END_TEST

START_TEST(ack_and_error_round_trip)
{
    tk_ack in = { "HTTP/x@R", 3, 2000000000, 1999990000 }, *out = NULL;
    krb5_data der = { 0, 0, NULL };
    char *text = NULL, *primary = NULL;
    int reason = 0;

    ck_assert_int_eq(tk_encode_ack(ctx, &in, &der), 0);
    ck_assert_int_eq(tk_decode_ack(ctx, &der, &out), 0);
    ck_assert_uint_eq(out->kvno, 3);
    ck_assert_int_eq(out->refresh_by, 1999990000);
    tk_ack_free(out);
    free(der.data);
    ck_assert_int_eq(tk_encode_error(ctx, TK_REASON_NAME_MISMATCH, "why",
                                     NULL, &der), 0);
    ck_assert_int_eq(tk_decode_error(ctx, &der, &reason, &text, &primary),
                     0);
    ck_assert_int_eq(reason, TK_REASON_NAME_MISMATCH);
    ck_assert_str_eq(text, "why");
    ck_assert_ptr_null(primary);
    free(text);
    free(der.data);
    ck_assert_int_eq(tk_encode_error(ctx, TK_REASON_NOT_PRIMARY, "replica",
                                     "kdc1.example.test:88", &der), 0);
    ck_assert_int_eq(tk_decode_error(ctx, &der, &reason, &text, &primary),
                     0);
    ck_assert_int_eq(reason, TK_REASON_NOT_PRIMARY);
    ck_assert_str_eq(tk_reason_name(reason), "not-primary");
    ck_assert_str_eq(primary, "kdc1.example.test:88");
    free(text);
    free(primary);
    free(der.data);
}
END_TEST

START_TEST(reasons_have_names_and_passing_codes)
{
    int r;

    for (r = TK_REASON_MALFORMED; r <= TK_REASON_MAX; r++) {
        ck_assert_str_ne(tk_reason_name(r), "unknown-reason");
        ck_assert_str_ne(tk_reason_text(r), "the upload was refused");
        /* None may be PREAUTH_FAILED: MIT's KDC would drop the e-data. */
        ck_assert_int_ne(tk_reason_code(r), KRB5KDC_ERR_PREAUTH_FAILED);
    }
    ck_assert_str_eq(tk_reason_name(999), "unknown-reason");
}
END_TEST

START_TEST(upload_kvno_rule)
{
    const char *msg;

    /* The next version, or the newest again (a retransmission). */
    ck_assert_int_eq(tk_upload_kvno_reason(ctx, 0, 1), 0);
    ck_assert_int_eq(tk_upload_kvno_reason(ctx, 4, 5), 0);
    ck_assert_int_eq(tk_upload_kvno_reason(ctx, 4, 4), 0);
    ck_assert_int_eq(tk_upload_kvno_reason(ctx, 0, 0),
                     TK_REASON_KVNO_NOT_NEXT);
    ck_assert_int_eq(tk_upload_kvno_reason(ctx, 4, 3),
                     TK_REASON_KVNO_NOT_ABOVE_STORED);
    ck_assert_int_eq(tk_upload_kvno_reason(ctx, 4, 65535),
                     TK_REASON_KVNO_NOT_NEXT);
    msg = krb5_get_error_message(ctx, tk_reason_code(TK_REASON_KVNO_NOT_NEXT));
    ck_assert_str_eq(msg, "key version 65535 is not the next one after the "
                     "stored key version 4");
    krb5_free_error_message(ctx, msg);
}
END_TEST

START_TEST(empty_too_large_garbage_trailing)
{
    buf o = { .n = 0 }, f = { .n = 0 };
    krb5_data d = { 0, 0, (char *)o.b };
    tk_ack *ack = NULL;

    ck_assert_int_eq(tk_decode_ack(ctx, &d, &ack), ASN1_BAD_LENGTH);
    d.length = TK_MAX_MESSAGE + 1;
    ck_assert_int_eq(tk_decode_ack(ctx, &d, &ack), ASN1_BAD_LENGTH);
    put(&o, "\x30\x03\x01\x02\x03", 5);
    d.length = o.n;
    ck_assert_int_eq(tk_decode_ack(ctx, &d, &ack), ASN1_PARSE_ERROR);
    o.n = 0;
    ack_fields(&f, 1, "HTTP/x@R", 1, 2000000000);
    message(&o, 2, &f);
    put(&o, "\x00", 1);
    expect_ack_error(&o, ASN1_BAD_LENGTH, "trailing bytes");
    o.n--;
    o.n = o.n - 3;              /* truncated */
    expect_ack_error(&o, ASN1_PARSE_ERROR, "not DER");
}
END_TEST

START_TEST(wrong_message_type)
{
    buf f = { .n = 0 }, o = { .n = 0 };
    krb5_data d;
    tk_upload *up = NULL;

    ack_fields(&f, 1, "HTTP/x@R", 1, 2000000000);
    message(&o, 2, &f);
    d.data = (char *)o.b;
    d.length = o.n;
    ck_assert_int_eq(tk_decode_upload(ctx, &d, &up), ASN1_BAD_FORMAT);
}
END_TEST

START_TEST(ack_field_errors)
{
    buf f = { .n = 0 }, o = { .n = 0 };

    ack_fields(&f, 2, "HTTP/x@R", 1, 2000000000);
    message(&o, 2, &f);
    expect_ack_error(&o, ASN1_BAD_FORMAT, "acknowledgement fields");
    f.n = o.n = 0;
    ack_fields(&f, 1, "", 1, 2000000000);
    message(&o, 2, &f);
    expect_ack_error(&o, ASN1_BAD_FORMAT, "acknowledgement fields");
    f.n = o.n = 0;
    ack_fields(&f, 1, "HTTP/x@R", 0, 2000000000);
    message(&o, 2, &f);
    expect_ack_error(&o, ASN1_BAD_FORMAT, "acknowledgement fields");
    f.n = o.n = 0;
    ack_fields(&f, 1, "HTTP/x@R", 1, -5);
    message(&o, 2, &f);
    expect_ack_error(&o, ASN1_BAD_FORMAT, "acknowledgement fields");
}
END_TEST

START_TEST(upload_field_errors)
{
    buf f = { .n = 0 }, o = { .n = 0 };
    krb5_data d;
    tk_upload *up = NULL;

    /* The crafted upload itself is valid. */
    upload_fields(&f, 0);
    message(&o, 1, &f);
    d.data = (char *)o.b;
    d.length = o.n;
    ck_assert_int_eq(tk_decode_upload(ctx, &d, &up), 0);
    tk_upload_free(up);

    expect_upload_error(1, "version or key count");
    expect_upload_error(2, "upload names");
    expect_upload_error(3, "hash lengths");
    expect_upload_error(4, "freshness token too long");
    expect_upload_error(5, "upload numbers");
    expect_upload_error(6, "upload key");
    expect_upload_error(7, "version or key count");
    expect_upload_error(8, "upload numbers");
}
END_TEST

START_TEST(key_request_field_errors)
{
    buf f = { .n = 0 }, o = { .n = 0 }, ets = { .n = 0 }, w = { .n = 0 };
    krb5_data d;
    tk_key_request *req = NULL;

    int_field(&f, 0, 1);
    str_field(&f, 1, "R", 1);
    str_field(&f, 2, "HTTP/x@R", 8);
    tlv(&w, 0x30, &ets);        /* no enctype */
    tlv(&f, 0xa3, &w);
    int_field(&f, 4, 86400);
    int_field(&f, 5, 0);
    int_field(&f, 6, 1);
    message(&o, 0, &f);
    d.data = (char *)o.b;
    d.length = o.n;
    ck_assert_int_eq(tk_decode_key_request(ctx, &d, &req), ASN1_BAD_FORMAT);
    ck_assert_ptr_null(req);
}
END_TEST

/* Offer fields; which selects a field to corrupt (0: none). */
static void
offer_fields(buf *f, int which)
{
    buf ets = { .n = 0 }, w = { .n = 0 };

    int_field(f, 0, which == 1 ? 2 : 1);
    str_field(f, 1, "R", which == 2 ? 0 : 1);
    if (which != 3)
        integer(&ets, 18);
    tlv(&w, 0x30, &ets);
    tlv(f, 0xa2, &w);
    int_field(f, 3, which == 4 ? 0 : 86400);
    int_field(f, 4, 1700000000);
    int_field(f, 5, which == 5 ? 1699999999 : 1700000120);
}

static void
expect_offer_error(int which, const char *what)
{
    buf f = { .n = 0 }, o = { .n = 0 };
    krb5_data d;
    tk_offer *offer = (tk_offer *)1;
    krb5_error_code ret;
    const char *msg;

    offer_fields(&f, which);
    message(&o, 3, &f);
    d.data = (char *)o.b;
    d.length = o.n;
    ret = tk_decode_offer(ctx, &d, &offer);
    if (which == 0) {
        ck_assert_int_eq(ret, 0);
        tk_offer_free(offer);
        return;
    }
    ck_assert_int_eq(ret, ASN1_BAD_FORMAT);
    ck_assert_ptr_null(offer);
    msg = krb5_get_error_message(ctx, ret);
    ck_assert_msg(strstr(msg, what) != NULL, "\"%s\" lacks \"%s\"", msg,
                  what);
    krb5_free_error_message(ctx, msg);
}

START_TEST(offer_field_errors)
{
    buf f = { .n = 0 }, o = { .n = 0 };
    krb5_data d;
    tk_key_request *req = NULL;

    expect_offer_error(0, "");
    expect_offer_error(1, "offer version");
    expect_offer_error(2, "offer realm");
    expect_offer_error(3, "offer enctypes");
    expect_offer_error(4, "offer numbers");
    /* Valid until before it was signed. */
    expect_offer_error(5, "offer numbers");
    /* An offer is not a version 1 key request. */
    offer_fields(&f, 0);
    message(&o, 3, &f);
    d.data = (char *)o.b;
    d.length = o.n;
    ck_assert_int_eq(tk_decode_key_request(ctx, &d, &req), ASN1_BAD_FORMAT);
}
END_TEST

/* KeyOffer fields; which selects a field to corrupt (0: none). */
static void
key_offer(buf *o, int which)
{
    buf f = { .n = 0 };

    oct_field(&f, 0, which == 1 ? 0 : 40, 0x30);
    str_field(&f, 1, "HTTP/x@R", which == 2 ? 0 : 8);
    int_field(&f, 2, which == 3 ? 65536 : 4);
    int_field(&f, 3, which == 4 ? 0 : 1700000000);
    tlv(o, 0x30, &f);
}

static void
expect_key_offer_error(const buf *o, krb5_error_code code, const char *what)
{
    krb5_data d = { 0, (unsigned int)o->n, (char *)o->b };
    tk_key_offer *ko = (tk_key_offer *)1;
    const char *msg;

    ck_assert_int_eq(tk_decode_key_offer(ctx, &d, &ko), code);
    ck_assert_ptr_null(ko);
    msg = krb5_get_error_message(ctx, code);
    ck_assert_msg(strstr(msg, what) != NULL, "\"%s\" lacks \"%s\"", msg,
                  what);
    krb5_free_error_message(ctx, msg);
}

START_TEST(key_offer_field_errors)
{
    buf o = { .n = 0 };
    krb5_data d;
    tk_key_offer *ko = NULL;
    int which;

    key_offer(&o, 0);
    d.data = (char *)o.b;
    d.length = o.n;
    ck_assert_int_eq(tk_decode_key_offer(ctx, &d, &ko), 0);
    ck_assert_uint_eq(ko->signed_offer.length, 40);
    ck_assert_uint_eq(ko->current_kvno, 4);
    tk_key_offer_free(ko);
    for (which = 1; which <= 4; which++) {
        o.n = 0;
        key_offer(&o, which);
        expect_key_offer_error(&o, ASN1_BAD_FORMAT, "key offer fields");
    }
    o.n = 0;
    key_offer(&o, 0);
    put(&o, "\x00", 1);
    expect_key_offer_error(&o, ASN1_BAD_LENGTH, "trailing bytes");
    o.n -= 4;
    expect_key_offer_error(&o, ASN1_PARSE_ERROR, "not DER of a KeyOffer");
    o.n = 0;
    expect_key_offer_error(&o, ASN1_BAD_LENGTH, "empty or too large");
    o.n = TK_MAX_MESSAGE + 1;
    expect_key_offer_error(&o, ASN1_BAD_LENGTH, "empty or too large");
}
END_TEST

START_TEST(error_decoding)
{
    krb5_data d = { 0, 3, "\x30\x01\x00" };
    char *text = NULL, *primary = NULL;
    int reason;

    ck_assert_int_eq(tk_decode_error(ctx, &d, &reason, &text, &primary),
                     ASN1_PARSE_ERROR);
    ck_assert_ptr_null(text);
    ck_assert_ptr_null(primary);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("proto");
    TCase *tc = tcase_create("codec");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, key_request_round_trip);
    tcase_add_test(tc, offer_round_trip);
    tcase_add_test(tc, key_offer_round_trip);
    tcase_add_test(tc, upload_round_trip);
    tcase_add_test(tc, ack_and_error_round_trip);
    tcase_add_test(tc, reasons_have_names_and_passing_codes);
    tcase_add_test(tc, upload_kvno_rule);
    tcase_add_test(tc, empty_too_large_garbage_trailing);
    tcase_add_test(tc, wrong_message_type);
    tcase_add_test(tc, ack_field_errors);
    tcase_add_test(tc, upload_field_errors);
    tcase_add_test(tc, key_request_field_errors);
    tcase_add_test(tc, offer_field_errors);
    tcase_add_test(tc, key_offer_field_errors);
    tcase_add_test(tc, error_decoding);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
