/* check_proto.c - unit tests of the upload protocol's codec (round trips
 * and every decoding error path) and of the client module's reading of the
 * KDC's offer (every refusal), with the test PKI of tests/fuzz/data. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>
#include <krb5/clpreauth_plugin.h>

#include "derbuf.h"
#include "tkclient.h"
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
    ck_assert_uint_eq(out->long_term_kvno, 0);
    tk_ack_free(out);
    free(der.data);
    /* An adopted principal's: its long-term keys lie below. */
    in.long_term_kvno = 2;
    in.long_term_until = 1999000000;
    ck_assert_int_eq(tk_encode_ack(ctx, &in, &der), 0);
    ck_assert_int_eq(tk_decode_ack(ctx, &der, &out), 0);
    ck_assert_uint_eq(out->long_term_kvno, 2);
    ck_assert_int_eq(out->long_term_until, 1999000000);
    tk_ack_free(out);
    free(der.data);
    in.long_term_kvno = 3;
    ck_assert_int_eq(tk_encode_ack(ctx, &in, &der), 0);
    out = (tk_ack *)1;
    ck_assert_int_eq(tk_decode_ack(ctx, &der, &out), ASN1_BAD_FORMAT);
    ck_assert_ptr_null(out);
    free(der.data);
    in.long_term_kvno = 0;
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

/* A shared principal's KeyOffer hints: its delay and live versions. */
START_TEST(shared_key_offer_round_trip)
{
    tk_key_info held[2] = { { 4, 2000000000, 0 }, { 5, 2000003600,
                                                    1999990060 } };
    tk_key_offer in = { { 0, 5, "\x30\x03\x02\x01\x01" }, "HTTP/x@R", 5,
                        1999990000, 600, held, 2 }, *out = NULL;
    krb5_data der = { 0, 0, NULL };

    ck_assert_int_eq(tk_encode_key_offer(ctx, &in, &der), 0);
    ck_assert_int_eq(tk_decode_key_offer(ctx, &der, &out), 0);
    ck_assert_int_eq(out->share_delay, 600);
    ck_assert_uint_eq(out->nheld, 2);
    ck_assert_uint_eq(out->held[0].kvno, 4);
    ck_assert_int_eq(out->held[0].active_at, 0);
    ck_assert_uint_eq(out->held[1].kvno, 5);
    ck_assert_int_eq(out->held[1].expiry, 2000003600);
    ck_assert_int_eq(out->held[1].active_at, 1999990060);
    tk_key_offer_free(out);
    free(der.data);
    /* Not shared: no hints at all, as before. */
    in.share_delay = 0;
    ck_assert_int_eq(tk_encode_key_offer(ctx, &in, &der), 0);
    ck_assert_int_eq(tk_decode_key_offer(ctx, &der, &out), 0);
    ck_assert_int_eq(out->share_delay, 0);
    ck_assert_uint_eq(out->nheld, 0);
    tk_key_offer_free(out);
    free(der.data);
    /* A kvno out of range in a hint is malformed. */
    in.share_delay = 600;
    held[0].kvno = 70000;
    ck_assert_int_eq(tk_encode_key_offer(ctx, &in, &der), 0);
    out = (tk_key_offer *)1;
    ck_assert_int_eq(tk_decode_key_offer(ctx, &der, &out), ASN1_BAD_FORMAT);
    ck_assert_ptr_null(out);
    free(der.data);
}
END_TEST

START_TEST(fetch_round_trip)
{
    tk_fetch in, *out = NULL;
    tk_upload *up = NULL;
    krb5_data der = { 0, 0, NULL };

    memset(&in, 0, sizeof(in));
    in.realm = "R";
    in.principal = "HTTP/x@R";
    memset(in.kdc_cert_hash, 0x11, TK_HASH_LEN);
    memset(in.body_checksum, 0x22, TK_HASH_LEN);
    in.freshness_token.data = "token";
    in.freshness_token.length = 5;
    ck_assert_int_eq(tk_encode_fetch(ctx, &in, &der), 0);
    ck_assert_int_eq(tk_decode_fetch(ctx, &der, &out), 0);
    ck_assert_str_eq(out->principal, "HTTP/x@R");
    ck_assert_str_eq(out->realm, "R");
    ck_assert_mem_eq(out->kdc_cert_hash, in.kdc_cert_hash, TK_HASH_LEN);
    ck_assert_mem_eq(out->body_checksum, in.body_checksum, TK_HASH_LEN);
    ck_assert_uint_eq(out->freshness_token.length, 5);
    tk_fetch_free(out);
    /* Neither is the other. */
    ck_assert_int_eq(tk_decode_upload(ctx, &der, &up), ASN1_BAD_FORMAT);
    ck_assert_ptr_null(up);
    free(der.data);
}
END_TEST

START_TEST(held_keys_round_trip_and_errors)
{
    unsigned char k1[32], k2[16];
    tk_held_key in[2], *out = NULL;
    krb5_data der = { 0, 0, NULL };
    size_t n = 9;

    memset(in, 0, sizeof(in));
    memset(k1, 0x41, sizeof(k1));
    memset(k2, 0x42, sizeof(k2));
    in[0].kvno = 3;
    in[0].expiry = 2000000000;
    in[0].nkeys = 1;
    in[0].keys[0].enctype = 18;
    in[0].keys[0].length = 32;
    in[0].keys[0].contents = k1;
    in[1] = in[0];
    in[1].kvno = 4;
    in[1].active_at = 1999990600;
    in[1].nkeys = 2;
    in[1].keys[1].enctype = 17;
    in[1].keys[1].length = 16;
    in[1].keys[1].contents = k2;
    ck_assert_int_eq(tk_encode_held_keys(ctx, in, 2, &der), 0);
    ck_assert_int_eq(tk_decode_held_keys(ctx, &der, &out, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(out[0].kvno, 3);
    ck_assert_int_eq(out[0].active_at, 0);
    ck_assert_uint_eq(out[1].nkeys, 2);
    ck_assert_int_eq(out[1].active_at, 1999990600);
    ck_assert_int_eq(out[1].keys[1].enctype, 17);
    ck_assert_mem_eq(out[1].keys[1].contents, k2, 16);
    tk_held_keys_free(out, n);
    /* Trailing bytes, truncation, nothing at all. */
    der.data = realloc(der.data, der.length + 1);
    der.data[der.length++] = 0;
    out = (tk_held_key *)1;
    ck_assert_int_eq(tk_decode_held_keys(ctx, &der, &out, &n),
                     ASN1_BAD_FORMAT);
    ck_assert_ptr_null(out);
    ck_assert_uint_eq(n, 0);
    der.length -= 10;
    ck_assert_int_eq(tk_decode_held_keys(ctx, &der, &out, &n),
                     ASN1_PARSE_ERROR);
    free(der.data);
    ck_assert_int_eq(tk_encode_held_keys(ctx, in, 0, &der), EINVAL);
    /* A version without a key is not encoded. */
    in[0].nkeys = 0;
    ck_assert_int_eq(tk_encode_held_keys(ctx, in, 2, &der), ENOMEM);
}
END_TEST

/* The Ack's shared part: the encrypted keys, the delay, whether nothing was
 * stored, and when the kvno is used. */
START_TEST(shared_ack_round_trip)
{
    tk_ack in = { "HTTP/x@R", 3, 2000000000, 1999990000 }, *out = NULL;
    krb5_data der = { 0, 0, NULL };

    in.shared_keys.data = "ciphertext";
    in.shared_keys.length = 10;
    in.share_delay = 600;
    in.fetched = TRUE;
    in.active_at = 1999990600;
    ck_assert_int_eq(tk_encode_ack(ctx, &in, &der), 0);
    ck_assert_int_eq(tk_decode_ack(ctx, &der, &out), 0);
    ck_assert_uint_eq(out->shared_keys.length, 10);
    ck_assert_mem_eq(out->shared_keys.data, "ciphertext", 10);
    ck_assert_int_eq(out->share_delay, 600);
    ck_assert(out->fetched);
    ck_assert_int_eq(out->active_at, 1999990600);
    tk_ack_free(out);
    free(der.data);
    in.fetched = FALSE;
    in.active_at = 0;
    ck_assert_int_eq(tk_encode_ack(ctx, &in, &der), 0);
    ck_assert_int_eq(tk_decode_ack(ctx, &der, &out), 0);
    ck_assert(!out->fetched);
    ck_assert_int_eq(out->active_at, 0);
    tk_ack_free(out);
    free(der.data);
    /* A shared principal's delay is positive. */
    in.share_delay = 0;
    ck_assert_int_eq(tk_encode_ack(ctx, &in, &der), 0);
    out = (tk_ack *)1;
    ck_assert_int_eq(tk_decode_ack(ctx, &der, &out), ASN1_BAD_FORMAT);
    ck_assert_ptr_null(out);
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
    ck_assert_str_eq(tk_reason_name(TK_REASON_NOT_ADOPTED), "not-adopted");
    ck_assert_int_eq(tk_reason_code(TK_REASON_NOT_ADOPTED),
                     KRB5KDC_ERR_CLIENT_NOT_TRUSTED);
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

/* ---- The client module against crafted offers. */

#define CL_REALM "FUZZ.TEST"
#define CL_CLIENT "HTTP/www.fuzz.test@FUZZ.TEST"
#define CL_TOKEN "a freshness token"

static struct krb5_clpreauth_vtable_st cl_vt;
static tk_identity *cl_kdc, *cl_server;
static tk_trust *cl_trust;
static krb5_principal cl_client;
static tk_client_session cl_s;
static krb5_kdc_req cl_req;
static int64_t cl_now;

static const char *
data_file(const char *name)
{
    static char path[2][4096];
    static int i;
    const char *dir = getenv("TK_SRCDIR");

    i = !i;
    snprintf(path[i], sizeof(path[i]), "%s/tests/fuzz/data/%s",
             dir != NULL ? dir : ".", name);
    return path[i];
}

static krb5_error_code
cl_prepare(krb5_context c, tk_client_session *s)
{
    s->kvno = s->request->current_kvno + 1;
    s->nkeys = 1;
    return krb5_c_make_random_key(c, ENCTYPE_AES256_CTS_HMAC_SHA1_96,
                                  &s->keys[0]);
}

static void
client_setup(void)
{
    char spec[4200], *anchors[2] = { spec, NULL };

    setenv("KRB5_CONFIG", "/dev/null", 1);      /* clockskew 300 s */
    setup();
    ck_assert_int_eq(clpreauth_tempkey_initvt(ctx, 1, 1,
                                              (krb5_plugin_vtable)&cl_vt),
                     0);
    ck_assert_int_eq(tk_identity_load(ctx, data_file("kdc.pem"),
                                      data_file("kdc-TEST-KEY.pem"),
                                      &cl_kdc), 0);
    ck_assert_int_eq(tk_identity_load(ctx, data_file("server-chain.pem"),
                                      data_file("server-TEST-KEY.pem"),
                                      &cl_server), 0);
    snprintf(spec, sizeof(spec), "FILE:%s", data_file("ca.pem"));
    ck_assert_int_eq(tk_trust_load(ctx, anchors, NULL, NULL, &cl_trust), 0);
    ck_assert_int_eq(krb5_parse_name(ctx, CL_CLIENT, &cl_client), 0);
    memset(&cl_s, 0, sizeof(cl_s));
    cl_s.principal = cl_client;
    cl_s.id = cl_server;
    cl_s.kdc_trust = cl_trust;
    cl_s.lifetime = 3600;
    cl_s.prepare = cl_prepare;
    memset(&cl_req, 0, sizeof(cl_req));
    cl_req.client = cl_client;
    cl_now = time(NULL);
    tk_client_set_session(&cl_s);
}

static void
client_teardown(void)
{
    tk_client_set_session(NULL);
    tk_client_session_clear(&cl_s);
    krb5_free_principal(ctx, cl_client);
    tk_trust_free(cl_trust);
    tk_identity_free(cl_server);
    tk_identity_free(cl_kdc);
    teardown();
}

/* der signed by id (the KDC unless told), freeing der. */
static krb5_data
signed_by(const tk_identity *id, krb5_data der)
{
    krb5_data sig = { 0, 0, NULL };

    ck_assert_int_eq(tk_cms_sign(ctx, id, &der, &sig), 0);
    free(der.data);
    return sig;
}

static krb5_data
signed_offer(const char *realm, int64_t signed_at, int64_t valid_until)
{
    krb5_enctype et[2] = { 18, 17 };
    tk_offer offer = { (char *)realm, et, 2, 86400, signed_at, valid_until };
    krb5_data der = { 0, 0, NULL };

    ck_assert_int_eq(tk_encode_offer(ctx, &offer, &der), 0);
    return signed_by(cl_kdc, der);
}

/* A KeyOffer around signed (freed). */
static krb5_data
key_offer_pa(krb5_data signed_der, const char *principal, krb5_kvno kvno,
             int64_t kdc_time)
{
    tk_key_offer ko = { signed_der, (char *)principal, kvno, kdc_time };
    krb5_data der = { 0, 0, NULL };

    ck_assert_int_eq(tk_encode_key_offer(ctx, &ko, &der), 0);
    free(signed_der.data);
    return der;
}

/* A good KeyOffer: signed now, for the client, current kvno 6. */
static krb5_data
good_offer(void)
{
    return key_offer_pa(signed_offer(CL_REALM, cl_now,
                                     cl_now + TK_OFFER_VALIDITY),
                        CL_CLIENT, 6, cl_now + 5);
}

static void
free_pa_list(krb5_pa_data **list)
{
    size_t i;

    for (i = 0; list != NULL && list[i] != NULL; i++) {
        free(list[i]->contents);
        free(list[i]);
    }
    free(list);
}

/* Hand the module the KDC's freshness token, as the first padata. */
static void
give_token(krb5_clpreauth_modreq modreq, krb5_data *body)
{
    krb5_pa_data tok, **out = NULL;

    memset(&tok, 0, sizeof(tok));
    tok.pa_type = KRB5_PADATA_AS_FRESHNESS;
    tok.contents = (krb5_octet *)CL_TOKEN;
    tok.length = strlen(CL_TOKEN);
    ck_assert_int_eq(cl_vt.process(ctx, NULL, modreq, NULL, NULL, NULL,
                                   &cl_req, body, NULL, &tok, NULL, NULL,
                                   &out), 0);
    ck_assert_ptr_null(out);
}

/* Hand the module a freshness token, then pa (freed) as the KDC's
 * PA-TEMPKEY; return its verdict, and the upload it made in *up_out (NULL
 * if none) once decrypted and opened with the KDC's key. */
static krb5_error_code
process(krb5_data pa, tk_upload **up_out)
{
    krb5_clpreauth_modreq modreq = NULL;
    krb5_pa_data in, **out = NULL;
    krb5_data body = { 0, 4, "body" }, env, inner = { 0, 0, NULL };
    krb5_data content = { 0, 0, NULL };
    krb5_error_code ret;
    X509 *signer = NULL;
    STACK_OF(X509) *certs = NULL;

    *up_out = NULL;
    cl_s.message[0] = '\0';
    cl_s.uploaded = FALSE;
    cl_vt.request_init(ctx, NULL, &modreq);
    ck_assert_ptr_nonnull(modreq);
    give_token(modreq, &body);
    memset(&in, 0, sizeof(in));
    in.pa_type = TK_PADATA;
    in.contents = (krb5_octet *)pa.data;
    in.length = pa.length;
    ret = cl_vt.process(ctx, NULL, modreq, NULL, NULL, NULL, &cl_req, &body,
                        NULL, &in, NULL, NULL, &out);
    cl_vt.request_fini(ctx, NULL, modreq);
    free(pa.data);
    if (ret) {
        ck_assert_ptr_null(out);
        return ret;
    }
    ck_assert_ptr_nonnull(out);
    ck_assert_ptr_nonnull(out[0]);
    env.data = (char *)out[0]->contents;
    env.length = out[0]->length;
    ck_assert_int_eq(tk_cms_decrypt(ctx, cl_kdc, &env, &inner), 0);
    ck_assert_int_eq(tk_cms_open_signed(ctx, &inner, &content, &signer,
                                        &certs), 0);
    ck_assert_int_eq(tk_decode_upload(ctx, &content, up_out), 0);
    free(inner.data);
    free(content.data);
    X509_free(signer);
    sk_X509_pop_free(certs, X509_free);
    free_pa_list(out);
    return 0;
}

/* The module's verdict on the KDC's Ack (signed by the KDC, sent in pa,
 * freed) in the AS-REP after it answered good_offer(). */
static krb5_error_code
process_ack(krb5_data ack_pa)
{
    krb5_clpreauth_modreq modreq = NULL;
    krb5_pa_data in, **out = NULL;
    krb5_data body = { 0, 4, "body" }, offer = good_offer();
    krb5_error_code ret;

    /* A fresh session: the offer makes new keys. */
    tk_client_session_clear(&cl_s);
    cl_s.message[0] = '\0';
    cl_vt.request_init(ctx, NULL, &modreq);
    give_token(modreq, &body);
    memset(&in, 0, sizeof(in));
    in.pa_type = TK_PADATA;
    in.contents = (krb5_octet *)offer.data;
    in.length = offer.length;
    ck_assert_int_eq(cl_vt.process(ctx, NULL, modreq, NULL, NULL, NULL,
                                   &cl_req, &body, NULL, &in, NULL, NULL,
                                   &out), 0);
    free_pa_list(out);
    out = NULL;
    in.contents = (krb5_octet *)ack_pa.data;
    in.length = ack_pa.length;
    ret = cl_vt.process(ctx, NULL, modreq, NULL, NULL, NULL, &cl_req, &body,
                        NULL, &in, NULL, NULL, &out);
    ck_assert_ptr_null(out);
    cl_vt.request_fini(ctx, NULL, modreq);
    free(offer.data);
    free(ack_pa.data);
    return ret;
}

/* An Ack answering without a store, whose shared keys are content
 * encrypted to recipient. */
static krb5_data
shared_ack(X509 *recipient, const char *content)
{
    tk_ack ack = { CL_CLIENT, 6, cl_now + 3600, cl_now + 2400 };
    krb5_data plain = { 0, (unsigned int)strlen(content), (char *)content };
    krb5_data der = { 0, 0, NULL };

    ck_assert_int_eq(tk_cms_encrypt(ctx, recipient, &plain,
                                    &ack.shared_keys), 0);
    ack.share_delay = 600;
    ack.fetched = TRUE;
    ck_assert_int_eq(tk_encode_ack(ctx, &ack, &der), 0);
    free(ack.shared_keys.data);
    return signed_by(cl_kdc, der);
}

/* A shared principal's keys that are not for this member, or not keys,
 * are refused with a line saying so. */
START_TEST(client_refuses_shared_keys_it_cannot_read)
{
    ck_assert_int_ne(process_ack(shared_ack(cl_kdc->cert, "anything")), 0);
    ck_assert_msg(strstr(cl_s.message, "are not encrypted to our "
                         "certificate") != NULL, "%s", cl_s.message);
    ck_assert_int_ne(process_ack(shared_ack(cl_server->cert, "not DER")),
                     0);
    ck_assert_msg(strstr(cl_s.message, "for this shared principal are "
                         "malformed") != NULL, "%s", cl_s.message);
    ck_assert_ptr_null(cl_s.held);
}
END_TEST

/* pa is refused before anything is sent, saying what. */
static void
expect_refused(krb5_data pa, const char *what)
{
    tk_upload *up = NULL;

    ck_assert_int_ne(process(pa, &up), 0);
    ck_assert_ptr_null(up);
    ck_assert_msg(strstr(cl_s.message, what) != NULL, "\"%s\" lacks \"%s\"",
                  cl_s.message, what);
    ck_assert(!cl_s.uploaded);
}

START_TEST(client_answers_an_offer_with_its_hints)
{
    tk_upload *up = NULL;
    unsigned char hash[TK_HASH_LEN];

    ck_assert_int_eq(process(good_offer(), &up), 0);
    /* The hints: the next kvno, the expiry from the KDC's time. */
    ck_assert_uint_eq(up->kvno, 7);
    ck_assert_int_eq(up->expiry, cl_now + 5 + 3600);
    ck_assert_str_eq(up->principal, CL_CLIENT);
    ck_assert_str_eq(up->realm, CL_REALM);
    ck_assert_int_eq(tk_cert_hash(ctx, cl_kdc->cert, hash), 0);
    ck_assert_mem_eq(up->kdc_cert_hash, hash, TK_HASH_LEN);
    ck_assert_uint_eq(up->freshness_token.length, strlen(CL_TOKEN));
    ck_assert_uint_eq(cl_s.request->nenctypes, 2);
    ck_assert_int_eq(cl_s.request->max_lifetime, 86400);
    tk_upload_free(up);
}
END_TEST

START_TEST(client_names_itself_whatever_the_hint_spelling)
{
    tk_upload *up = NULL;

    ck_assert_int_eq(process(key_offer_pa(signed_offer(CL_REALM, cl_now,
                                                       cl_now + 120),
                                          "HTTP/www\\.fuzz.test@FUZZ.TEST",
                                          0, cl_now), &up), 0);
    ck_assert_str_eq(up->principal, CL_CLIENT);
    ck_assert_str_eq(cl_s.request->principal, CL_CLIENT);
    ck_assert_uint_eq(up->kvno, 1);
    tk_upload_free(up);
}
END_TEST

START_TEST(client_accepts_a_version_1_key_request)
{
    krb5_enctype et[1] = { 18 };
    tk_key_request req = { CL_REALM, CL_CLIENT, et, 1, 7200, 2, 0 };
    krb5_data der = { 0, 0, NULL };
    tk_upload *up = NULL;

    req.kdc_time = cl_now;
    ck_assert_int_eq(tk_encode_key_request(ctx, &req, &der), 0);
    ck_assert_int_eq(process(signed_by(cl_kdc, der), &up), 0);
    ck_assert_uint_eq(up->kvno, 3);
    ck_assert_int_eq(up->expiry, cl_now + 3600);
    tk_upload_free(up);
    tk_client_session_clear(&cl_s);
    /* Under the same freshness rule as an offer. */
    req.kdc_time = cl_now - 1000;
    ck_assert_int_eq(tk_encode_key_request(ctx, &req, &der), 0);
    /* -1000 s, or -1001 on a slow machine whose clock ticked since the
     * test took its time. */
    expect_refused(signed_by(cl_kdc, der), "the KDC's offer is not valid "
                   "now (signed -100");
    ck_assert_msg(strstr(cl_s.message, " s from now, valid for 120 s; "
                         "clockskew is 300 s)") != NULL, "%s", cl_s.message);
    req.kdc_time = cl_now;
    req.principal = "HTTP/other.fuzz.test@FUZZ.TEST";
    ck_assert_int_eq(tk_encode_key_request(ctx, &req, &der), 0);
    expect_refused(signed_by(cl_kdc, der), "for another principal");
}
END_TEST

START_TEST(client_refuses_an_offer_out_of_its_validity)
{
    tk_upload *up = NULL;

    /* Expired, and not yet valid, beyond the clock skew... */
    expect_refused(key_offer_pa(signed_offer(CL_REALM, cl_now - 1000,
                                             cl_now - 880),
                                CL_CLIENT, 0, cl_now - 990),
                   "the KDC's offer is not valid now");
    expect_refused(key_offer_pa(signed_offer(CL_REALM, cl_now + 400,
                                             cl_now + 520),
                                CL_CLIENT, 0, cl_now + 400),
                   "the KDC's offer is not valid now");
    /* ...but within it, accepted. */
    ck_assert_int_eq(process(key_offer_pa(signed_offer(CL_REALM,
                                                       cl_now - 400,
                                                       cl_now - 280),
                                          CL_CLIENT, 0, cl_now - 290),
                             &up), 0);
    tk_upload_free(up);
}
END_TEST

START_TEST(client_refuses_hints_that_do_not_fit)
{
    /* The KDC's time outside what it signed, either way. */
    expect_refused(key_offer_pa(signed_offer(CL_REALM, cl_now, cl_now + 120),
                                CL_CLIENT, 0, cl_now - 1),
                   "the KDC's time is outside the validity of its offer");
    expect_refused(key_offer_pa(signed_offer(CL_REALM, cl_now, cl_now + 120),
                                CL_CLIENT, 0, cl_now + 121),
                   "the KDC's time is outside the validity of its offer");
    expect_refused(key_offer_pa(signed_offer(CL_REALM, cl_now, cl_now + 120),
                                "HTTP/other.fuzz.test@FUZZ.TEST", 0, cl_now),
                   "the KDC's key request is for another principal");
    /* The realm is signed. */
    expect_refused(key_offer_pa(signed_offer("OTHER.TEST", cl_now,
                                             cl_now + 120),
                                CL_CLIENT, 0, cl_now),
                   "the KDC's offer is for another realm");
}
END_TEST

START_TEST(client_refuses_what_the_kdc_did_not_sign)
{
    tk_ack ack = { CL_CLIENT, 1, 2000000000, 1999990000 };
    krb5_data der = { 0, 0, NULL }, pa;

    /* A signature broken in the last byte. */
    pa = signed_offer(CL_REALM, cl_now, cl_now + 120);
    pa.data[pa.length - 1] ^= 1;
    expect_refused(key_offer_pa(pa, CL_CLIENT, 0, cl_now),
                   "the KDC's message does not carry a valid signature");
    /* Signed by a certificate that does not speak for the KDC. */
    ck_assert_int_eq(tk_encode_offer(ctx, &(tk_offer){ CL_REALM,
                                                      (krb5_enctype[]){ 18 },
                                                      1, 86400, cl_now,
                                                      cl_now + 120 }, &der),
                     0);
    expect_refused(key_offer_pa(signed_by(cl_server, der), CL_CLIENT, 0,
                                cl_now),
                   "the KDC's certificate lacks the PKINIT KDC key purpose");
    /* Something else the KDC signed, where an offer must be. */
    ck_assert_int_eq(tk_encode_ack(ctx, &ack, &der), 0);
    expect_refused(key_offer_pa(signed_by(cl_kdc, der), CL_CLIENT, 0,
                                cl_now),
                   "the KDC's offer is malformed");
    /* Neither a KeyOffer nor a SignedData. */
    der.data = strdup("\x30\x03\x02\x01\x01");
    der.length = 5;
    expect_refused(der, "the KDC's message does not carry a valid "
                   "signature");
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("proto");
    TCase *tc = tcase_create("codec"), *tcc = tcase_create("client");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, key_request_round_trip);
    tcase_add_test(tc, offer_round_trip);
    tcase_add_test(tc, key_offer_round_trip);
    tcase_add_test(tc, upload_round_trip);
    tcase_add_test(tc, ack_and_error_round_trip);
    tcase_add_test(tc, shared_key_offer_round_trip);
    tcase_add_test(tc, fetch_round_trip);
    tcase_add_test(tc, held_keys_round_trip_and_errors);
    tcase_add_test(tc, shared_ack_round_trip);
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
    tcase_add_checked_fixture(tcc, client_setup, client_teardown);
    tcase_add_test(tcc, client_answers_an_offer_with_its_hints);
    tcase_add_test(tcc, client_names_itself_whatever_the_hint_spelling);
    tcase_add_test(tcc, client_accepts_a_version_1_key_request);
    tcase_add_test(tcc, client_refuses_an_offer_out_of_its_validity);
    tcase_add_test(tcc, client_refuses_hints_that_do_not_fit);
    tcase_add_test(tcc, client_refuses_what_the_kdc_did_not_sign);
    tcase_add_test(tcc, client_refuses_shared_keys_it_cannot_read);
    suite_add_tcase(s, tcc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
