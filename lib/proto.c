/* proto.c - DER codec of the upload protocol's messages (OpenSSL ASN.1
 * templates; the ASN.1 module is in doc/protocol.md). */
#include "tkproto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1t.h>
#include <openssl/crypto.h>

typedef struct {
    ASN1_INTEGER *version;
    ASN1_UTF8STRING *realm;
    ASN1_UTF8STRING *principal;
    STACK_OF(ASN1_INTEGER) *enctypes;
    ASN1_INTEGER *max_lifetime;
    ASN1_INTEGER *current_kvno;
    ASN1_INTEGER *kdc_time;
} TK_KEYREQ;

typedef struct {
    ASN1_INTEGER *version;
    ASN1_UTF8STRING *realm;
    STACK_OF(ASN1_INTEGER) *enctypes;
    ASN1_INTEGER *max_lifetime;
    ASN1_INTEGER *signed_at;
    ASN1_INTEGER *valid_until;
} TK_OFFER;

/* Not a TempkeyMessage: the padata around a signed one. */
typedef struct {
    ASN1_INTEGER *kvno;
    ASN1_INTEGER *expiry;
    ASN1_INTEGER *active_at;    /* optional */
} TK_KEYINFO;

DEFINE_STACK_OF(TK_KEYINFO)

typedef struct {
    ASN1_INTEGER *delay;
    STACK_OF(TK_KEYINFO) *held;
} TK_SHARED;

typedef struct {
    ASN1_OCTET_STRING *signed_offer;
    ASN1_UTF8STRING *principal;
    ASN1_INTEGER *current_kvno;
    ASN1_INTEGER *kdc_time;
    TK_SHARED *shared;          /* optional: a shared principal */
} TK_KEYOFFER;

typedef struct {
    ASN1_INTEGER *enctype;
    ASN1_OCTET_STRING *key;
} TK_UPKEY;

DEFINE_STACK_OF(TK_UPKEY)

typedef struct {
    ASN1_INTEGER *version;
    ASN1_UTF8STRING *realm;
    ASN1_UTF8STRING *principal;
    ASN1_OCTET_STRING *kdc_cert_hash;
    ASN1_OCTET_STRING *freshness_token;
    ASN1_OCTET_STRING *body_checksum;
    ASN1_INTEGER *kvno;
    STACK_OF(TK_UPKEY) *keys;
    ASN1_INTEGER *expiry;
} TK_UPLOAD;

/* An adopted principal's long-term keys, in the Ack. */
typedef struct {
    ASN1_INTEGER *version;
    ASN1_UTF8STRING *realm;
    ASN1_UTF8STRING *principal;
    ASN1_OCTET_STRING *kdc_cert_hash;
    ASN1_OCTET_STRING *freshness_token;
    ASN1_OCTET_STRING *body_checksum;
} TK_FETCH;

typedef struct {
    ASN1_INTEGER *kvno;
    ASN1_INTEGER *expiry;
    ASN1_INTEGER *active_at;    /* optional */
    STACK_OF(TK_UPKEY) *keys;
} TK_HELDKEY;

DEFINE_STACK_OF(TK_HELDKEY)

typedef struct {
    STACK_OF(TK_HELDKEY) *keys;
} TK_HELDKEYS;

typedef struct {
    ASN1_INTEGER *kvno;
    ASN1_INTEGER *until;
} TK_LONGTERM;

typedef struct {
    ASN1_INTEGER *version;
    ASN1_UTF8STRING *principal;
    ASN1_INTEGER *kvno;
    ASN1_INTEGER *expiry;
    ASN1_INTEGER *refresh_by;
    TK_LONGTERM *long_term;     /* optional */
    ASN1_OCTET_STRING *shared_keys;     /* optional, and the rest too */
    ASN1_INTEGER *share_delay;
    ASN1_INTEGER *fetched;
    ASN1_INTEGER *active_at;
} TK_ACK;

typedef struct {
    int type;
    union {
        TK_KEYREQ *key_request;
        TK_UPLOAD *upload;
        TK_ACK *ack;
        TK_OFFER *offer;
        TK_FETCH *fetch;
    } value;
} TK_MSG;

typedef struct {
    ASN1_INTEGER *reason;
    ASN1_UTF8STRING *text;
    ASN1_UTF8STRING *primary;   /* not-primary refusals, when known */
} TK_ERR;

#define MSG_KEY_REQUEST 0
#define MSG_UPLOAD 1
#define MSG_ACK 2
#define MSG_OFFER 3
#define MSG_FETCH 4

DECLARE_ASN1_FUNCTIONS(TK_KEYREQ)
DECLARE_ASN1_FUNCTIONS(TK_OFFER)
DECLARE_ASN1_FUNCTIONS(TK_KEYINFO)
DECLARE_ASN1_FUNCTIONS(TK_SHARED)
DECLARE_ASN1_FUNCTIONS(TK_KEYOFFER)
DECLARE_ASN1_FUNCTIONS(TK_FETCH)
DECLARE_ASN1_FUNCTIONS(TK_HELDKEY)
DECLARE_ASN1_FUNCTIONS(TK_HELDKEYS)
DECLARE_ASN1_FUNCTIONS(TK_UPKEY)
DECLARE_ASN1_FUNCTIONS(TK_UPLOAD)
DECLARE_ASN1_FUNCTIONS(TK_LONGTERM)
DECLARE_ASN1_FUNCTIONS(TK_ACK)
DECLARE_ASN1_FUNCTIONS(TK_MSG)
DECLARE_ASN1_FUNCTIONS(TK_ERR)

ASN1_SEQUENCE(TK_KEYREQ) = {
    ASN1_EXP(TK_KEYREQ, version, ASN1_INTEGER, 0),
    ASN1_EXP(TK_KEYREQ, realm, ASN1_UTF8STRING, 1),
    ASN1_EXP(TK_KEYREQ, principal, ASN1_UTF8STRING, 2),
    ASN1_EXP_SEQUENCE_OF(TK_KEYREQ, enctypes, ASN1_INTEGER, 3),
    ASN1_EXP(TK_KEYREQ, max_lifetime, ASN1_INTEGER, 4),
    ASN1_EXP(TK_KEYREQ, current_kvno, ASN1_INTEGER, 5),
    ASN1_EXP(TK_KEYREQ, kdc_time, ASN1_INTEGER, 6),
} ASN1_SEQUENCE_END(TK_KEYREQ)

ASN1_SEQUENCE(TK_OFFER) = {
    ASN1_EXP(TK_OFFER, version, ASN1_INTEGER, 0),
    ASN1_EXP(TK_OFFER, realm, ASN1_UTF8STRING, 1),
    ASN1_EXP_SEQUENCE_OF(TK_OFFER, enctypes, ASN1_INTEGER, 2),
    ASN1_EXP(TK_OFFER, max_lifetime, ASN1_INTEGER, 3),
    ASN1_EXP(TK_OFFER, signed_at, ASN1_INTEGER, 4),
    ASN1_EXP(TK_OFFER, valid_until, ASN1_INTEGER, 5),
} ASN1_SEQUENCE_END(TK_OFFER)

ASN1_SEQUENCE(TK_KEYINFO) = {
    ASN1_EXP(TK_KEYINFO, kvno, ASN1_INTEGER, 0),
    ASN1_EXP(TK_KEYINFO, expiry, ASN1_INTEGER, 1),
    ASN1_EXP_OPT(TK_KEYINFO, active_at, ASN1_INTEGER, 2),
} ASN1_SEQUENCE_END(TK_KEYINFO)

ASN1_SEQUENCE(TK_SHARED) = {
    ASN1_EXP(TK_SHARED, delay, ASN1_INTEGER, 0),
    ASN1_EXP_SEQUENCE_OF(TK_SHARED, held, TK_KEYINFO, 1),
} ASN1_SEQUENCE_END(TK_SHARED)

ASN1_SEQUENCE(TK_KEYOFFER) = {
    ASN1_EXP(TK_KEYOFFER, signed_offer, ASN1_OCTET_STRING, 0),
    ASN1_EXP(TK_KEYOFFER, principal, ASN1_UTF8STRING, 1),
    ASN1_EXP(TK_KEYOFFER, current_kvno, ASN1_INTEGER, 2),
    ASN1_EXP(TK_KEYOFFER, kdc_time, ASN1_INTEGER, 3),
    ASN1_EXP_OPT(TK_KEYOFFER, shared, TK_SHARED, 4),
} ASN1_SEQUENCE_END(TK_KEYOFFER)

ASN1_SEQUENCE(TK_UPKEY) = {
    ASN1_EXP(TK_UPKEY, enctype, ASN1_INTEGER, 0),
    ASN1_EXP(TK_UPKEY, key, ASN1_OCTET_STRING, 1),
} ASN1_SEQUENCE_END(TK_UPKEY)

ASN1_SEQUENCE(TK_UPLOAD) = {
    ASN1_EXP(TK_UPLOAD, version, ASN1_INTEGER, 0),
    ASN1_EXP(TK_UPLOAD, realm, ASN1_UTF8STRING, 1),
    ASN1_EXP(TK_UPLOAD, principal, ASN1_UTF8STRING, 2),
    ASN1_EXP(TK_UPLOAD, kdc_cert_hash, ASN1_OCTET_STRING, 3),
    ASN1_EXP(TK_UPLOAD, freshness_token, ASN1_OCTET_STRING, 4),
    ASN1_EXP(TK_UPLOAD, body_checksum, ASN1_OCTET_STRING, 5),
    ASN1_EXP(TK_UPLOAD, kvno, ASN1_INTEGER, 6),
    ASN1_EXP_SEQUENCE_OF(TK_UPLOAD, keys, TK_UPKEY, 7),
    ASN1_EXP(TK_UPLOAD, expiry, ASN1_INTEGER, 8),
} ASN1_SEQUENCE_END(TK_UPLOAD)

ASN1_SEQUENCE(TK_FETCH) = {
    ASN1_EXP(TK_FETCH, version, ASN1_INTEGER, 0),
    ASN1_EXP(TK_FETCH, realm, ASN1_UTF8STRING, 1),
    ASN1_EXP(TK_FETCH, principal, ASN1_UTF8STRING, 2),
    ASN1_EXP(TK_FETCH, kdc_cert_hash, ASN1_OCTET_STRING, 3),
    ASN1_EXP(TK_FETCH, freshness_token, ASN1_OCTET_STRING, 4),
    ASN1_EXP(TK_FETCH, body_checksum, ASN1_OCTET_STRING, 5),
} ASN1_SEQUENCE_END(TK_FETCH)

ASN1_SEQUENCE(TK_HELDKEY) = {
    ASN1_EXP(TK_HELDKEY, kvno, ASN1_INTEGER, 0),
    ASN1_EXP(TK_HELDKEY, expiry, ASN1_INTEGER, 1),
    ASN1_EXP_OPT(TK_HELDKEY, active_at, ASN1_INTEGER, 2),
    ASN1_EXP_SEQUENCE_OF(TK_HELDKEY, keys, TK_UPKEY, 3),
} ASN1_SEQUENCE_END(TK_HELDKEY)

ASN1_SEQUENCE(TK_HELDKEYS) = {
    ASN1_SEQUENCE_OF(TK_HELDKEYS, keys, TK_HELDKEY),
} ASN1_SEQUENCE_END(TK_HELDKEYS)

ASN1_SEQUENCE(TK_LONGTERM) = {
    ASN1_EXP(TK_LONGTERM, kvno, ASN1_INTEGER, 0),
    ASN1_EXP(TK_LONGTERM, until, ASN1_INTEGER, 1),
} ASN1_SEQUENCE_END(TK_LONGTERM)

ASN1_SEQUENCE(TK_ACK) = {
    ASN1_EXP(TK_ACK, version, ASN1_INTEGER, 0),
    ASN1_EXP(TK_ACK, principal, ASN1_UTF8STRING, 1),
    ASN1_EXP(TK_ACK, kvno, ASN1_INTEGER, 2),
    ASN1_EXP(TK_ACK, expiry, ASN1_INTEGER, 3),
    ASN1_EXP(TK_ACK, refresh_by, ASN1_INTEGER, 4),
    ASN1_EXP_OPT(TK_ACK, long_term, TK_LONGTERM, 5),
    ASN1_EXP_OPT(TK_ACK, shared_keys, ASN1_OCTET_STRING, 6),
    ASN1_EXP_OPT(TK_ACK, share_delay, ASN1_INTEGER, 7),
    ASN1_EXP_OPT(TK_ACK, fetched, ASN1_INTEGER, 8),
    ASN1_EXP_OPT(TK_ACK, active_at, ASN1_INTEGER, 9),
} ASN1_SEQUENCE_END(TK_ACK)

ASN1_CHOICE(TK_MSG) = {
    ASN1_EXP(TK_MSG, value.key_request, TK_KEYREQ, MSG_KEY_REQUEST),
    ASN1_EXP(TK_MSG, value.upload, TK_UPLOAD, MSG_UPLOAD),
    ASN1_EXP(TK_MSG, value.ack, TK_ACK, MSG_ACK),
    ASN1_EXP(TK_MSG, value.offer, TK_OFFER, MSG_OFFER),
    ASN1_EXP(TK_MSG, value.fetch, TK_FETCH, MSG_FETCH),
} ASN1_CHOICE_END(TK_MSG)

ASN1_SEQUENCE(TK_ERR) = {
    ASN1_EXP(TK_ERR, reason, ASN1_INTEGER, 0),
    ASN1_EXP(TK_ERR, text, ASN1_UTF8STRING, 1),
    ASN1_EXP_OPT(TK_ERR, primary, ASN1_UTF8STRING, 2),
} ASN1_SEQUENCE_END(TK_ERR)

IMPLEMENT_ASN1_FUNCTIONS(TK_KEYREQ)
IMPLEMENT_ASN1_FUNCTIONS(TK_OFFER)
IMPLEMENT_ASN1_FUNCTIONS(TK_KEYINFO)
IMPLEMENT_ASN1_FUNCTIONS(TK_SHARED)
IMPLEMENT_ASN1_FUNCTIONS(TK_KEYOFFER)
IMPLEMENT_ASN1_FUNCTIONS(TK_FETCH)
IMPLEMENT_ASN1_FUNCTIONS(TK_HELDKEY)
IMPLEMENT_ASN1_FUNCTIONS(TK_HELDKEYS)
IMPLEMENT_ASN1_FUNCTIONS(TK_UPKEY)
IMPLEMENT_ASN1_FUNCTIONS(TK_UPLOAD)
IMPLEMENT_ASN1_FUNCTIONS(TK_LONGTERM)
IMPLEMENT_ASN1_FUNCTIONS(TK_ACK)
IMPLEMENT_ASN1_FUNCTIONS(TK_MSG)
IMPLEMENT_ASN1_FUNCTIONS(TK_ERR)

/* ---- Reasons. */

static const struct {
    int reason;
    const char *name;
    krb5_error_code code;
    /* What the client is told: fixed, so that nothing an unauthenticated
     * peer reads comes from the verifier or OpenSSL (the KDC log has the
     * detail). */
    const char *text;
} reasons[] = {
    /* Not BAD_INTEGRITY, which the backing module's lockout would count as
     * a failed password. */
    { TK_REASON_MALFORMED, "malformed", KRB5KDC_ERR_INVALID_SIG,
      "the upload could not be decoded" },
    { TK_REASON_NOT_FOR_THIS_KDC, "not-for-this-kdc",
      KRB5KDC_ERR_CERTIFICATE_MISMATCH,
      "the upload is not encrypted to this KDC's certificate" },
    { TK_REASON_BAD_SIGNATURE, "bad-signature", KRB5KDC_ERR_INVALID_SIG,
      "the signature did not verify" },
    { TK_REASON_UNTRUSTED_CERTIFICATE, "untrusted-certificate",
      KRB5KDC_ERR_CANT_VERIFY_CERTIFICATE,
      "the certificate chain was not verified" },
    { TK_REASON_CERTIFICATE_EXPIRED, "certificate-expired",
      KRB5KDC_ERR_INVALID_CERTIFICATE,
      "a certificate of the chain has expired or is not yet valid" },
    { TK_REASON_CERTIFICATE_REVOKED, "certificate-revoked",
      KRB5KDC_ERR_REVOKED_CERTIFICATE,
      "a certificate of the chain is revoked" },
    { TK_REASON_WRONG_KEY_PURPOSE, "wrong-key-purpose",
      KRB5KDC_ERR_INCONSISTENT_KEY_PURPOSE,
      "the certificate lacks the extended key usage the KDC requires" },
    { TK_REASON_NAME_MISMATCH, "name-mismatch",
      KRB5KDC_ERR_CLIENT_NAME_MISMATCH,
      "the certificate or the upload names another principal" },
    { TK_REASON_PINNED_KEY_MISMATCH, "pinned-key-mismatch",
      KRB5KDC_ERR_CERTIFICATE_MISMATCH,
      "the upload is not signed by the pinned key" },
    { TK_REASON_KDC_CERTIFICATE_MISMATCH, "kdc-certificate-mismatch",
      KRB5KDC_ERR_CERTIFICATE_MISMATCH,
      "the upload was made for another KDC certificate" },
    { TK_REASON_STALE_FRESHNESS_TOKEN, "stale-freshness-token",
      KRB5KDC_ERR_PA_CHECKSUM_MUST_BE_INCLUDED,
      "the freshness token is missing or stale" },
    { TK_REASON_REQUEST_CHECKSUM_MISMATCH, "request-checksum-mismatch",
      KRB5KDC_ERR_PA_CHECKSUM_MUST_BE_INCLUDED,
      "the upload is bound to another request" },
    { TK_REASON_KVNO_NOT_ABOVE_STORED, "kvno-not-above-stored",
      KRB5KDC_ERR_CLIENT_NOT_TRUSTED,
      "the key version is below the stored one" },
    { TK_REASON_EXPIRY_NOT_ALLOWED, "expiry-not-allowed",
      KRB5KDC_ERR_CLIENT_NOT_TRUSTED,
      "the requested expiry is past or beyond the longest lifetime" },
    { TK_REASON_ENCTYPE_NOT_ALLOWED, "enctype-not-allowed",
      KRB5KDC_ERR_ETYPE_NOSUPP,
      "an enctype is not allowed or appears twice" },
    { TK_REASON_BAD_KEY_LENGTH, "bad-key-length", KRB5KDC_ERR_ETYPE_NOSUPP,
      "a key has the wrong length for its enctype" },
    { TK_REASON_NOT_ENROLLABLE, "not-enrollable",
      KRB5KDC_ERR_CLIENT_NOT_TRUSTED,
      "the principal is neither managed nor allowed to enroll" },
    { TK_REASON_NOT_PRIMARY, "not-primary", KRB5KDC_ERR_CLIENT_NOT_TRUSTED,
      "this KDC is a replica; upload to the primary KDC" },
    { TK_REASON_STORE_FAILED, "store-failed",
      KRB5KDC_ERR_REVOCATION_STATUS_UNAVAILABLE,
      "the KDC could not store the key; try again later" },
    { TK_REASON_KVNO_NOT_NEXT, "kvno-not-next", KRB5KDC_ERR_CLIENT_NOT_TRUSTED,
      "the key version is not the next one after the stored one" },
    { TK_REASON_TOO_MANY_KEYS, "too-many-live-keys",
      KRB5KDC_ERR_CLIENT_NOT_TRUSTED,
      "the principal holds the most live key versions allowed" },
    { TK_REASON_CRL_EXPIRED, "crl-expired",
      KRB5KDC_ERR_REVOCATION_STATUS_UNKNOWN,
      "a revocation list covering the chain has expired" },
    { TK_REASON_MESSAGE_TOO_LARGE, "message-too-large",
      KRB5KDC_ERR_INVALID_SIG,
      "the upload is larger than the KDC reads" },
    { TK_REASON_TOO_MANY_CERTIFICATES, "too-many-certificates",
      KRB5KDC_ERR_CANT_VERIFY_CERTIFICATE,
      "the upload carries more certificates than the KDC reads" },
    { TK_REASON_CHAIN_TOO_LONG, "chain-too-long",
      KRB5KDC_ERR_CANT_VERIFY_CERTIFICATE,
      "the certificate chain has more intermediates than the KDC allows" },
    { TK_REASON_KEY_TOO_LARGE, "key-too-large",
      KRB5KDC_ERR_INVALID_CERTIFICATE,
      "a certificate's public key is larger than the KDC allows" },
    { TK_REASON_TOO_MANY_NAMES, "too-many-names",
      KRB5KDC_ERR_CLIENT_NAME_MISMATCH,
      "the certificate names more principals than the KDC reads" },
    { TK_REASON_NOT_ADOPTED, "not-adopted", KRB5KDC_ERR_CLIENT_NOT_TRUSTED,
      "the principal exists and is not managed by tempkey; an "
      "administrator must adopt it first (tempkey-admin adopt)" },
    { TK_REASON_NOT_SHARED, "not-shared", KRB5KDC_ERR_CLIENT_NOT_TRUSTED,
      "the principal is not shared: its keys are fetched by no one "
      "(tempkey-admin share)" },
    { TK_REASON_NO_KEY_TO_FETCH, "no-key-to-fetch",
      KRB5KDC_ERR_CLIENT_NOT_TRUSTED,
      "the KDC holds no live key for the principal; upload one" },
};

int
tk_upload_kvno_reason(krb5_context ctx, krb5_kvno stored, krb5_kvno kvno)
{
    krb5_error_code code;

    if (kvno == stored + 1 || (kvno == stored && stored > 0))
        return 0;
    if (kvno < stored) {
        code = tk_reason_code(TK_REASON_KVNO_NOT_ABOVE_STORED);
        krb5_set_error_message(ctx, code, "key version %u is not above the "
                               "stored key version %u", kvno, stored);
        return TK_REASON_KVNO_NOT_ABOVE_STORED;
    }
    /* A jump would burn key versions: one upload at 65535 would exhaust
     * the principal. */
    code = tk_reason_code(TK_REASON_KVNO_NOT_NEXT);
    krb5_set_error_message(ctx, code, "key version %u is not the next one "
                           "after the stored key version %u", kvno, stored);
    return TK_REASON_KVNO_NOT_NEXT;
}

int64_t
tk_shared_refresh_by(int64_t expiry, int64_t active_at, int64_t now,
                     krb5_deltat delay)
{
    int64_t start = (active_at != 0) ? active_at : now;
    int64_t by = start + (expiry - start) * 2 / 3;

    return (by > expiry - delay) ? expiry - delay : by;
}

const char *
tk_reason_name(int reason)
{
    size_t i;

    for (i = 0; i < sizeof(reasons) / sizeof(*reasons); i++) {
        if (reasons[i].reason == reason)
            return reasons[i].name;
    }
    return "unknown-reason";
}

const char *
tk_reason_text(int reason)
{
    size_t i;

    for (i = 0; i < sizeof(reasons) / sizeof(*reasons); i++) {
        if (reasons[i].reason == reason)
            return reasons[i].text;
    }
    return "the upload was refused";
}

krb5_error_code
tk_reason_code(int reason)
{
    size_t i;

    for (i = 0; i < sizeof(reasons) / sizeof(*reasons); i++) {
        if (reasons[i].reason == reason)
            return reasons[i].code;
    }
    return KRB5KDC_ERR_CLIENT_NOT_TRUSTED;
}

/* ---- Helpers. */

static krb5_error_code
bad(krb5_context ctx, krb5_error_code code, const char *what)
{
    krb5_set_error_message(ctx, code, "malformed tempkey message: %s", what);
    return code;
}

static int
set_int(ASN1_INTEGER **ai, int64_t v)
{
    if (*ai == NULL && (*ai = ASN1_INTEGER_new()) == NULL)
        return 0;
    return ASN1_INTEGER_set_int64(*ai, v);
}

static int
set_str(ASN1_UTF8STRING **s, const char *text)
{
    if (*s == NULL && (*s = ASN1_UTF8STRING_new()) == NULL)
        return 0;
    return ASN1_STRING_set(*s, text, -1);
}

static int
set_oct(ASN1_OCTET_STRING **s, const void *p, size_t len)
{
    if (*s == NULL && (*s = ASN1_OCTET_STRING_new()) == NULL)
        return 0;
    return ASN1_OCTET_STRING_set(*s, p, (int)len);
}

static int
get_int(const ASN1_INTEGER *ai, int64_t min, int64_t max, int64_t *out)
{
    return ai != NULL && ASN1_INTEGER_get_int64(out, ai) == 1 &&
        *out >= min && *out <= max;
}

/* A copy of a UTF8String: non-empty, no NUL inside. */
static char *
get_str(const ASN1_UTF8STRING *s)
{
    const unsigned char *p = ASN1_STRING_get0_data(s);
    int len = ASN1_STRING_length(s);
    char *out;

    if (len <= 0 || len > 1024 || memchr(p, '\0', len) != NULL)
        return NULL;
    out = malloc(len + 1);
    if (out == NULL)
        return NULL;
    memcpy(out, p, len);
    out[len] = '\0';
    return out;
}

static int
get_hash(const ASN1_OCTET_STRING *s, unsigned char out[TK_HASH_LEN])
{
    if (ASN1_STRING_length(s) != TK_HASH_LEN)
        return 0;
    memcpy(out, ASN1_STRING_get0_data(s), TK_HASH_LEN);
    return 1;
}

/* A copy of a freshness token (an upload's or a fetch's), at most 4096
 * bytes; empty stays empty, for the KDC to refuse as stale. */
static krb5_error_code
get_token(krb5_context ctx, const ASN1_OCTET_STRING *s, krb5_data *out)
{
    int len = ASN1_STRING_length(s);

    if (len > 4096)
        return bad(ctx, ASN1_BAD_FORMAT, "freshness token too long");
    if (len == 0)
        return 0;
    out->data = malloc(len);
    if (out->data == NULL)
        return ENOMEM;
    memcpy(out->data, ASN1_STRING_get0_data(s), len);
    out->length = len;
    return 0;
}

/* Encode msg into *der_out, a malloc'd copy that the caller owns. */
static krb5_error_code
encode_msg(krb5_context ctx, TK_MSG *msg, krb5_data *der_out)
{
    unsigned char *der = NULL;
    int len;

    len = i2d_TK_MSG(msg, &der);
    if (len <= 0)
        return tk_openssl_error(ctx, ENOMEM, "encoding a tempkey message");
    der_out->data = malloc(len);
    if (der_out->data == NULL) {
        OPENSSL_clear_free(der, len);
        return ENOMEM;
    }
    memcpy(der_out->data, der, len);
    der_out->length = len;
    OPENSSL_clear_free(der, len);
    return 0;
}

static void cleanse_upload_keys(TK_UPLOAD *u);

/* Free a decoded message, zeroing an upload's keys first. */
static void
msg_free_clean(TK_MSG *msg)
{
    if (msg != NULL && msg->type == MSG_UPLOAD)
        cleanse_upload_keys(msg->value.upload);
    TK_MSG_free(msg);
}

/* Decode a message of the wanted type. */
static krb5_error_code
decode_msg(krb5_context ctx, const krb5_data *der, int type, TK_MSG **out)
{
    const unsigned char *p = (const unsigned char *)der->data;
    TK_MSG *msg;

    *out = NULL;
    if (der->length == 0)
        return bad(ctx, ASN1_BAD_LENGTH, "empty");
    if (der->length > TK_MAX_MESSAGE)
        return bad(ctx, ASN1_BAD_LENGTH, "too large");
    msg = d2i_TK_MSG(NULL, &p, der->length);
    if (msg == NULL)
        return bad(ctx, ASN1_PARSE_ERROR, "not DER of a TempkeyMessage");
    /* A refused upload's keys are zeroed as well as an accepted one's. */
    if (p != (const unsigned char *)der->data + der->length) {
        msg_free_clean(msg);
        return bad(ctx, ASN1_BAD_LENGTH, "trailing bytes");
    }
    if (msg->type != type) {
        msg_free_clean(msg);
        return bad(ctx, ASN1_BAD_FORMAT, "unexpected message type");
    }
    *out = msg;
    return 0;
}

static int
version_ok(const ASN1_INTEGER *v)
{
    int64_t n;

    return get_int(v, TK_PROTO_VERSION, TK_PROTO_VERSION, &n);
}

static int
set_enctypes(STACK_OF(ASN1_INTEGER) *list, const krb5_enctype *enctypes,
             size_t n)
{
    ASN1_INTEGER *et;
    size_t i;

    for (i = 0; i < n; i++) {
        et = NULL;
        if (!set_int(&et, enctypes[i]) || !sk_ASN1_INTEGER_push(list, et)) {
            ASN1_INTEGER_free(et);
            return 0;
        }
    }
    return 1;
}

/* 1 to TK_MAX_KEYS positive enctypes into a new array; 0 if malformed or
 * out of memory. */
static int
get_enctypes(const STACK_OF(ASN1_INTEGER) *list, krb5_enctype **out,
             size_t *n_out)
{
    int i, n = sk_ASN1_INTEGER_num(list);
    int64_t v;

    *out = NULL;
    *n_out = 0;
    if (n < 1 || n > TK_MAX_KEYS || (*out = calloc(n, sizeof(**out))) == NULL)
        return 0;
    for (i = 0; i < n; i++) {
        if (!get_int(sk_ASN1_INTEGER_value(list, i), 1, INT32_MAX, &v)) {
            free(*out);
            *out = NULL;
            return 0;
        }
        (*out)[i] = (krb5_enctype)v;
    }
    *n_out = n;
    return 1;
}

/* ---- KeyRequest. */

void
tk_key_request_free(tk_key_request *req)
{
    if (req == NULL)
        return;
    free(req->realm);
    free(req->principal);
    free(req->enctypes);
    free(req->held);
    free(req);
}

krb5_error_code
tk_encode_key_request(krb5_context ctx, const tk_key_request *req,
                      krb5_data *der_out)
{
    krb5_error_code ret = ENOMEM;
    TK_MSG *msg = TK_MSG_new();
    TK_KEYREQ *kr = TK_KEYREQ_new();

    if (msg == NULL || kr == NULL)
        goto cleanup;
    if (!set_int(&kr->version, TK_PROTO_VERSION) ||
        !set_str(&kr->realm, req->realm) ||
        !set_str(&kr->principal, req->principal) ||
        !set_int(&kr->max_lifetime, req->max_lifetime) ||
        !set_int(&kr->current_kvno, req->current_kvno) ||
        !set_int(&kr->kdc_time, req->kdc_time) ||
        !set_enctypes(kr->enctypes, req->enctypes, req->nenctypes))
        goto cleanup;
    msg->type = MSG_KEY_REQUEST;
    msg->value.key_request = kr;
    kr = NULL;
    ret = encode_msg(ctx, msg, der_out);

cleanup:
    TK_KEYREQ_free(kr);
    TK_MSG_free(msg);
    return ret;
}

krb5_error_code
tk_decode_key_request(krb5_context ctx, const krb5_data *der,
                      tk_key_request **req_out)
{
    krb5_error_code ret;
    TK_MSG *msg = NULL;
    TK_KEYREQ *kr;
    tk_key_request *req = NULL;
    int64_t v;

    *req_out = NULL;
    ret = decode_msg(ctx, der, MSG_KEY_REQUEST, &msg);
    if (ret)
        return ret;
    kr = msg->value.key_request;
    ret = ENOMEM;
    req = calloc(1, sizeof(*req));
    if (req == NULL)
        goto cleanup;
    ret = ASN1_BAD_FORMAT;
    if (!version_ok(kr->version)) {
        bad(ctx, ret, "key request version");
        goto cleanup;
    }
    req->realm = get_str(kr->realm);
    req->principal = get_str(kr->principal);
    if (req->realm == NULL || req->principal == NULL) {
        bad(ctx, ret, "key request names");
        goto cleanup;
    }
    if (!get_enctypes(kr->enctypes, &req->enctypes, &req->nenctypes)) {
        bad(ctx, ret, "key request enctypes");
        goto cleanup;
    }
    if (!get_int(kr->max_lifetime, 1, INT32_MAX, &req->max_lifetime) ||
        !get_int(kr->current_kvno, 0, 65535, &v) ||
        !get_int(kr->kdc_time, 1, INT64_MAX, &req->kdc_time)) {
        bad(ctx, ret, "key request numbers");
        goto cleanup;
    }
    req->current_kvno = (krb5_kvno)v;
    *req_out = req;
    req = NULL;
    ret = 0;

cleanup:
    tk_key_request_free(req);
    TK_MSG_free(msg);
    return ret;
}

/* ---- Offer, and the KeyOffer around it. */

void
tk_offer_free(tk_offer *offer)
{
    if (offer == NULL)
        return;
    free(offer->realm);
    free(offer->enctypes);
    free(offer);
}

krb5_error_code
tk_encode_offer(krb5_context ctx, const tk_offer *offer, krb5_data *der_out)
{
    krb5_error_code ret = ENOMEM;
    TK_MSG *msg = TK_MSG_new();
    TK_OFFER *o = TK_OFFER_new();

    if (msg == NULL || o == NULL)
        goto cleanup;
    if (!set_int(&o->version, TK_PROTO_VERSION) ||
        !set_str(&o->realm, offer->realm) ||
        !set_enctypes(o->enctypes, offer->enctypes, offer->nenctypes) ||
        !set_int(&o->max_lifetime, offer->max_lifetime) ||
        !set_int(&o->signed_at, offer->signed_at) ||
        !set_int(&o->valid_until, offer->valid_until))
        goto cleanup;
    msg->type = MSG_OFFER;
    msg->value.offer = o;
    o = NULL;
    ret = encode_msg(ctx, msg, der_out);

cleanup:
    TK_OFFER_free(o);
    TK_MSG_free(msg);
    return ret;
}

krb5_error_code
tk_decode_offer(krb5_context ctx, const krb5_data *der, tk_offer **offer_out)
{
    krb5_error_code ret;
    TK_MSG *msg = NULL;
    TK_OFFER *o;
    tk_offer *offer = NULL;

    *offer_out = NULL;
    ret = decode_msg(ctx, der, MSG_OFFER, &msg);
    if (ret)
        return ret;
    o = msg->value.offer;
    ret = ENOMEM;
    offer = calloc(1, sizeof(*offer));
    if (offer == NULL)
        goto cleanup;
    ret = ASN1_BAD_FORMAT;
    if (!version_ok(o->version)) {
        bad(ctx, ret, "offer version");
        goto cleanup;
    }
    offer->realm = get_str(o->realm);
    if (offer->realm == NULL) {
        bad(ctx, ret, "offer realm");
        goto cleanup;
    }
    if (!get_enctypes(o->enctypes, &offer->enctypes, &offer->nenctypes)) {
        bad(ctx, ret, "offer enctypes");
        goto cleanup;
    }
    if (!get_int(o->max_lifetime, 1, INT32_MAX, &offer->max_lifetime) ||
        !get_int(o->signed_at, 1, INT64_MAX, &offer->signed_at) ||
        !get_int(o->valid_until, offer->signed_at, INT64_MAX,
                 &offer->valid_until)) {
        bad(ctx, ret, "offer numbers");
        goto cleanup;
    }
    *offer_out = offer;
    offer = NULL;
    ret = 0;

cleanup:
    tk_offer_free(offer);
    TK_MSG_free(msg);
    return ret;
}

void
tk_key_offer_free(tk_key_offer *ko)
{
    if (ko == NULL)
        return;
    free(ko->signed_offer.data);
    free(ko->principal);
    free(ko->held);
    free(ko);
}

/* The KeyOffer's hints of a shared principal. */
static int
set_shared(TK_KEYOFFER *k, const tk_key_offer *ko)
{
    TK_KEYINFO *info;
    size_t i;

    if (ko->nheld > TK_MAX_HELD || (k->shared = TK_SHARED_new()) == NULL ||
        !set_int(&k->shared->delay, ko->share_delay))
        return 0;
    for (i = 0; i < ko->nheld; i++) {
        info = TK_KEYINFO_new();
        if (info == NULL || !set_int(&info->kvno, ko->held[i].kvno) ||
            !set_int(&info->expiry, ko->held[i].expiry) ||
            (ko->held[i].active_at != 0 &&
             !set_int(&info->active_at, ko->held[i].active_at)) ||
            !sk_TK_KEYINFO_push(k->shared->held, info)) {
            TK_KEYINFO_free(info);
            return 0;
        }
    }
    return 1;
}

static int
get_shared(const TK_SHARED *sh, tk_key_offer *ko)
{
    int i, n = sk_TK_KEYINFO_num(sh->held);
    int64_t v;

    if (n < 0 || n > TK_MAX_HELD || !get_int(sh->delay, 1, INT32_MAX, &v))
        return 0;
    ko->share_delay = (krb5_deltat)v;
    if (n > 0 && (ko->held = calloc(n, sizeof(*ko->held))) == NULL)
        return 0;
    for (i = 0; i < n; i++) {
        const TK_KEYINFO *info = sk_TK_KEYINFO_value(sh->held, i);
        tk_key_info *out = &ko->held[i];

        if (!get_int(info->kvno, 1, 65535, &v) ||
            !get_int(info->expiry, 1, INT64_MAX, &out->expiry) ||
            (info->active_at != NULL &&
             !get_int(info->active_at, 1, INT64_MAX, &out->active_at)))
            return 0;
        out->kvno = (krb5_kvno)v;
        ko->nheld++;
    }
    return 1;
}

krb5_error_code
tk_encode_key_offer(krb5_context ctx, const tk_key_offer *ko,
                    krb5_data *der_out)
{
    krb5_error_code ret = ENOMEM;
    TK_KEYOFFER *k = TK_KEYOFFER_new();
    unsigned char *der = NULL;
    int len;

    if (k == NULL || ko->signed_offer.length == 0 ||
        !set_oct(&k->signed_offer, ko->signed_offer.data,
                 ko->signed_offer.length) ||
        !set_str(&k->principal, ko->principal) ||
        !set_int(&k->current_kvno, ko->current_kvno) ||
        !set_int(&k->kdc_time, ko->kdc_time) ||
        (ko->share_delay > 0 && !set_shared(k, ko)))
        goto cleanup;
    len = i2d_TK_KEYOFFER(k, &der);
    if (len <= 0)
        goto cleanup;
    der_out->data = malloc(len);
    if (der_out->data == NULL)
        goto cleanup;
    memcpy(der_out->data, der, len);
    der_out->length = len;
    ret = 0;

cleanup:
    OPENSSL_free(der);
    TK_KEYOFFER_free(k);
    return ret;
}

/* Read before any signature is checked: as strict as the other decoders,
 * and the signed offer inside no larger than a message. */
krb5_error_code
tk_decode_key_offer(krb5_context ctx, const krb5_data *der,
                    tk_key_offer **ko_out)
{
    krb5_error_code ret;
    const unsigned char *p = (const unsigned char *)der->data;
    TK_KEYOFFER *k = NULL;
    tk_key_offer *ko = NULL;
    int64_t v;
    int len;

    *ko_out = NULL;
    if (der->length == 0 || der->length > TK_MAX_MESSAGE)
        return bad(ctx, ASN1_BAD_LENGTH, "key offer empty or too large");
    k = d2i_TK_KEYOFFER(NULL, &p, der->length);
    if (k == NULL)
        return bad(ctx, ASN1_PARSE_ERROR, "not DER of a KeyOffer");
    ret = ASN1_BAD_LENGTH;
    if (p != (const unsigned char *)der->data + der->length) {
        bad(ctx, ret, "trailing bytes");
        goto cleanup;
    }
    ret = ENOMEM;
    ko = calloc(1, sizeof(*ko));
    if (ko == NULL)
        goto cleanup;
    ret = ASN1_BAD_FORMAT;
    len = ASN1_STRING_length(k->signed_offer);
    ko->principal = get_str(k->principal);
    if (len < 1 || ko->principal == NULL ||
        !get_int(k->current_kvno, 0, 65535, &v) ||
        !get_int(k->kdc_time, 1, INT64_MAX, &ko->kdc_time)) {
        bad(ctx, ret, "key offer fields");
        goto cleanup;
    }
    ko->current_kvno = (krb5_kvno)v;
    if (k->shared != NULL && !get_shared(k->shared, ko)) {
        bad(ctx, ret, "key offer's shared keys");
        goto cleanup;
    }
    ret = ENOMEM;
    ko->signed_offer.data = malloc(len);
    if (ko->signed_offer.data == NULL)
        goto cleanup;
    memcpy(ko->signed_offer.data, ASN1_STRING_get0_data(k->signed_offer),
           len);
    ko->signed_offer.length = len;
    *ko_out = ko;
    ko = NULL;
    ret = 0;

cleanup:
    tk_key_offer_free(ko);
    TK_KEYOFFER_free(k);
    return ret;
}

/* ---- Upload. */

/* ASN1_OCTET_STRING_free does not zero: clear the keys before freeing. */
static void
cleanse_upload_keys(TK_UPLOAD *u)
{
    int i;

    for (i = 0; u != NULL && i < sk_TK_UPKEY_num(u->keys); i++) {
        ASN1_OCTET_STRING *key = sk_TK_UPKEY_value(u->keys, i)->key;

        if (key != NULL)
            OPENSSL_cleanse(key->data, key->length);
    }
}

void
tk_upload_free(tk_upload *up)
{
    size_t i;

    if (up == NULL)
        return;
    free(up->realm);
    free(up->principal);
    free(up->freshness_token.data);
    for (i = 0; i < up->nkeys; i++)
        krb5_free_keyblock_contents(NULL, &up->keys[i]);
    OPENSSL_cleanse(up, sizeof(*up));
    free(up);
}

krb5_error_code
tk_encode_upload(krb5_context ctx, const tk_upload *up, krb5_data *der_out)
{
    krb5_error_code ret = ENOMEM;
    TK_MSG *msg = TK_MSG_new();
    TK_UPLOAD *u = TK_UPLOAD_new();
    TK_UPKEY *k = NULL;
    size_t i;

    if (msg == NULL || u == NULL)
        goto cleanup;
    if (!set_int(&u->version, TK_PROTO_VERSION) ||
        !set_str(&u->realm, up->realm) ||
        !set_str(&u->principal, up->principal) ||
        !set_oct(&u->kdc_cert_hash, up->kdc_cert_hash, TK_HASH_LEN) ||
        !set_oct(&u->freshness_token, up->freshness_token.data,
                 up->freshness_token.length) ||
        !set_oct(&u->body_checksum, up->body_checksum, TK_HASH_LEN) ||
        !set_int(&u->kvno, up->kvno) || !set_int(&u->expiry, up->expiry))
        goto cleanup;
    for (i = 0; i < up->nkeys; i++) {
        k = TK_UPKEY_new();
        if (k == NULL || !set_int(&k->enctype, up->keys[i].enctype) ||
            !set_oct(&k->key, up->keys[i].contents, up->keys[i].length) ||
            !sk_TK_UPKEY_push(u->keys, k))
            goto cleanup;
        k = NULL;
    }
    msg->type = MSG_UPLOAD;
    msg->value.upload = u;
    u = NULL;
    ret = encode_msg(ctx, msg, der_out);

cleanup:
    if (k != NULL && k->key != NULL)
        OPENSSL_cleanse(k->key->data, k->key->length);
    TK_UPKEY_free(k);
    cleanse_upload_keys(u);
    TK_UPLOAD_free(u);
    msg_free_clean(msg);
    return ret;
}

krb5_error_code
tk_decode_upload(krb5_context ctx, const krb5_data *der, tk_upload **up_out)
{
    krb5_error_code ret;
    TK_MSG *msg = NULL;
    TK_UPLOAD *u;
    tk_upload *up = NULL;
    int64_t v;
    int i, n, len;

    *up_out = NULL;
    ret = decode_msg(ctx, der, MSG_UPLOAD, &msg);
    if (ret)
        return ret;
    u = msg->value.upload;
    ret = ENOMEM;
    up = calloc(1, sizeof(*up));
    if (up == NULL)
        goto cleanup;
    ret = ASN1_BAD_FORMAT;
    n = sk_TK_UPKEY_num(u->keys);
    if (!version_ok(u->version) || n < 1 || n > TK_MAX_KEYS) {
        bad(ctx, ret, "upload version or key count");
        goto cleanup;
    }
    up->realm = get_str(u->realm);
    up->principal = get_str(u->principal);
    if (up->realm == NULL || up->principal == NULL) {
        bad(ctx, ret, "upload names");
        goto cleanup;
    }
    if (!get_hash(u->kdc_cert_hash, up->kdc_cert_hash) ||
        !get_hash(u->body_checksum, up->body_checksum)) {
        bad(ctx, ret, "upload hash lengths");
        goto cleanup;
    }
    ret = get_token(ctx, u->freshness_token, &up->freshness_token);
    if (ret)
        goto cleanup;
    ret = ASN1_BAD_FORMAT;
    if (!get_int(u->kvno, 1, 65535, &v) ||
        !get_int(u->expiry, 1, INT64_MAX, &up->expiry)) {
        bad(ctx, ret, "upload numbers");
        goto cleanup;
    }
    up->kvno = (krb5_kvno)v;
    for (i = 0; i < n; i++) {
        TK_UPKEY *k = sk_TK_UPKEY_value(u->keys, i);
        krb5_keyblock *kb = &up->keys[up->nkeys];

        len = ASN1_STRING_length(k->key);
        if (!get_int(k->enctype, 1, INT32_MAX, &v) || len < 1 || len > 64) {
            bad(ctx, ret, "upload key");
            goto cleanup;
        }
        kb->magic = KV5M_KEYBLOCK;
        kb->enctype = (krb5_enctype)v;
        kb->contents = malloc(len);
        if (kb->contents == NULL) {
            ret = ENOMEM;
            goto cleanup;
        }
        memcpy(kb->contents, ASN1_STRING_get0_data(k->key), len);
        kb->length = len;
        up->nkeys++;
    }
    *up_out = up;
    up = NULL;
    ret = 0;

cleanup:
    tk_upload_free(up);
    msg_free_clean(msg);
    return ret;
}

/* ---- Ack. */

void
tk_ack_free(tk_ack *ack)
{
    if (ack == NULL)
        return;
    free(ack->principal);
    free(ack->shared_keys.data);
    free(ack);
}

krb5_error_code
tk_encode_ack(krb5_context ctx, const tk_ack *ack, krb5_data *der_out)
{
    krb5_error_code ret = ENOMEM;
    TK_MSG *msg = TK_MSG_new();
    TK_ACK *a = TK_ACK_new();

    if (msg == NULL || a == NULL)
        goto cleanup;
    if (!set_int(&a->version, TK_PROTO_VERSION) ||
        !set_str(&a->principal, ack->principal) ||
        !set_int(&a->kvno, ack->kvno) || !set_int(&a->expiry, ack->expiry) ||
        !set_int(&a->refresh_by, ack->refresh_by))
        goto cleanup;
    if (ack->long_term_kvno != 0) {
        a->long_term = TK_LONGTERM_new();
        if (a->long_term == NULL ||
            !set_int(&a->long_term->kvno, ack->long_term_kvno) ||
            !set_int(&a->long_term->until, ack->long_term_until))
            goto cleanup;
    }
    if (ack->shared_keys.length > 0 &&
        (!set_oct(&a->shared_keys, ack->shared_keys.data,
                  ack->shared_keys.length) ||
         !set_int(&a->share_delay, ack->share_delay) ||
         (ack->fetched && !set_int(&a->fetched, 1)) ||
         (ack->active_at != 0 && !set_int(&a->active_at, ack->active_at))))
        goto cleanup;
    msg->type = MSG_ACK;
    msg->value.ack = a;
    a = NULL;
    ret = encode_msg(ctx, msg, der_out);

cleanup:
    TK_ACK_free(a);
    TK_MSG_free(msg);
    return ret;
}

krb5_error_code
tk_decode_ack(krb5_context ctx, const krb5_data *der, tk_ack **ack_out)
{
    krb5_error_code ret;
    TK_MSG *msg = NULL;
    TK_ACK *a;
    tk_ack *ack = NULL;
    int64_t v;

    *ack_out = NULL;
    ret = decode_msg(ctx, der, MSG_ACK, &msg);
    if (ret)
        return ret;
    a = msg->value.ack;
    ret = ENOMEM;
    ack = calloc(1, sizeof(*ack));
    if (ack == NULL)
        goto cleanup;
    ret = ASN1_BAD_FORMAT;
    ack->principal = get_str(a->principal);
    if (!version_ok(a->version) || ack->principal == NULL ||
        !get_int(a->kvno, 1, 65535, &v) ||
        !get_int(a->expiry, 1, INT64_MAX, &ack->expiry) ||
        !get_int(a->refresh_by, 1, INT64_MAX, &ack->refresh_by)) {
        bad(ctx, ret, "acknowledgement fields");
        goto cleanup;
    }
    ack->kvno = (krb5_kvno)v;
    if (a->long_term != NULL) {
        /* Long-term keys lie below the first temporary one. */
        if (!get_int(a->long_term->kvno, 1, ack->kvno - 1, &v) ||
            !get_int(a->long_term->until, 1, INT64_MAX,
                     &ack->long_term_until)) {
            bad(ctx, ret, "acknowledgement's long-term keys");
            goto cleanup;
        }
        ack->long_term_kvno = (krb5_kvno)v;
    }
    if (a->shared_keys != NULL) {
        int len = ASN1_STRING_length(a->shared_keys);

        if (len < 1 || len > TK_MAX_MESSAGE ||
            !get_int(a->share_delay, 1, INT32_MAX, &v) ||
            (a->fetched != NULL && !get_int(a->fetched, 1, 1, &v)) ||
            (a->active_at != NULL &&
             !get_int(a->active_at, 1, INT64_MAX, &ack->active_at))) {
            bad(ctx, ret, "acknowledgement's shared keys");
            goto cleanup;
        }
        get_int(a->share_delay, 1, INT32_MAX, &v);
        ack->share_delay = (krb5_deltat)v;
        ack->fetched = (a->fetched != NULL);
        ret = ENOMEM;
        ack->shared_keys.data = malloc(len);
        if (ack->shared_keys.data == NULL)
            goto cleanup;
        memcpy(ack->shared_keys.data, ASN1_STRING_get0_data(a->shared_keys),
               len);
        ack->shared_keys.length = len;
    } else if (a->share_delay != NULL || a->fetched != NULL ||
               a->active_at != NULL) {
        bad(ctx, ret, "acknowledgement's shared fields without keys");
        goto cleanup;
    }
    *ack_out = ack;
    ack = NULL;
    ret = 0;

cleanup:
    tk_ack_free(ack);
    TK_MSG_free(msg);
    return ret;
}

/* ---- Fetch. */

void
tk_fetch_free(tk_fetch *fetch)
{
    if (fetch == NULL)
        return;
    free(fetch->realm);
    free(fetch->principal);
    free(fetch->freshness_token.data);
    free(fetch);
}

krb5_error_code
tk_encode_fetch(krb5_context ctx, const tk_fetch *fetch, krb5_data *der_out)
{
    krb5_error_code ret = ENOMEM;
    TK_MSG *msg = TK_MSG_new();
    TK_FETCH *f = TK_FETCH_new();

    if (msg == NULL || f == NULL)
        goto cleanup;
    if (!set_int(&f->version, TK_PROTO_VERSION) ||
        !set_str(&f->realm, fetch->realm) ||
        !set_str(&f->principal, fetch->principal) ||
        !set_oct(&f->kdc_cert_hash, fetch->kdc_cert_hash, TK_HASH_LEN) ||
        !set_oct(&f->freshness_token, fetch->freshness_token.data,
                 fetch->freshness_token.length) ||
        !set_oct(&f->body_checksum, fetch->body_checksum, TK_HASH_LEN))
        goto cleanup;
    msg->type = MSG_FETCH;
    msg->value.fetch = f;
    f = NULL;
    ret = encode_msg(ctx, msg, der_out);

cleanup:
    TK_FETCH_free(f);
    TK_MSG_free(msg);
    return ret;
}

krb5_error_code
tk_decode_fetch(krb5_context ctx, const krb5_data *der, tk_fetch **fetch_out)
{
    krb5_error_code ret;
    TK_MSG *msg = NULL;
    TK_FETCH *f;
    tk_fetch *fetch = NULL;

    *fetch_out = NULL;
    ret = decode_msg(ctx, der, MSG_FETCH, &msg);
    if (ret)
        return ret;
    f = msg->value.fetch;
    ret = ENOMEM;
    fetch = calloc(1, sizeof(*fetch));
    if (fetch == NULL)
        goto cleanup;
    ret = ASN1_BAD_FORMAT;
    fetch->realm = get_str(f->realm);
    fetch->principal = get_str(f->principal);
    if (!version_ok(f->version) || fetch->realm == NULL ||
        fetch->principal == NULL ||
        !get_hash(f->kdc_cert_hash, fetch->kdc_cert_hash) ||
        !get_hash(f->body_checksum, fetch->body_checksum)) {
        bad(ctx, ret, "fetch fields");
        goto cleanup;
    }
    ret = get_token(ctx, f->freshness_token, &fetch->freshness_token);
    if (ret)
        goto cleanup;
    *fetch_out = fetch;
    fetch = NULL;
    ret = 0;

cleanup:
    tk_fetch_free(fetch);
    TK_MSG_free(msg);
    return ret;
}

/* ---- HeldKeys. */

/* ASN1_OCTET_STRING_free does not zero: clear the keys before freeing. */
static void
cleanse_heldkey(TK_HELDKEY *k)
{
    int j;

    for (j = 0; k != NULL && j < sk_TK_UPKEY_num(k->keys); j++) {
        ASN1_OCTET_STRING *key = sk_TK_UPKEY_value(k->keys, j)->key;

        if (key != NULL)
            OPENSSL_cleanse(key->data, key->length);
    }
}

static void
cleanse_held(TK_HELDKEYS *h)
{
    int i;

    for (i = 0; h != NULL && i < sk_TK_HELDKEY_num(h->keys); i++)
        cleanse_heldkey(sk_TK_HELDKEY_value(h->keys, i));
}

void
tk_held_keys_free(tk_held_key *keys, size_t n)
{
    size_t i, j;

    for (i = 0; keys != NULL && i < n; i++) {
        for (j = 0; j < keys[i].nkeys; j++)
            krb5_free_keyblock_contents(NULL, &keys[i].keys[j]);
    }
    if (keys != NULL)
        OPENSSL_cleanse(keys, n * sizeof(*keys));
    free(keys);
}

static int
add_held(TK_HELDKEYS *h, const tk_held_key *in)
{
    TK_HELDKEY *k = TK_HELDKEY_new();
    TK_UPKEY *uk = NULL;
    size_t j;

    if (k == NULL || in->nkeys < 1 || in->nkeys > TK_MAX_KEYS ||
        !set_int(&k->kvno, in->kvno) || !set_int(&k->expiry, in->expiry) ||
        (in->active_at != 0 && !set_int(&k->active_at, in->active_at)))
        goto fail;
    for (j = 0; j < in->nkeys; j++) {
        uk = TK_UPKEY_new();
        if (uk == NULL || !set_int(&uk->enctype, in->keys[j].enctype) ||
            !set_oct(&uk->key, in->keys[j].contents, in->keys[j].length) ||
            !sk_TK_UPKEY_push(k->keys, uk))
            goto fail;
        uk = NULL;
    }
    if (!sk_TK_HELDKEY_push(h->keys, k))
        goto fail;
    return 1;

fail:
    if (uk != NULL && uk->key != NULL)
        OPENSSL_cleanse(uk->key->data, uk->key->length);
    TK_UPKEY_free(uk);
    cleanse_heldkey(k);
    TK_HELDKEY_free(k);
    return 0;
}

krb5_error_code
tk_encode_held_keys(krb5_context ctx, const tk_held_key *keys, size_t n,
                    krb5_data *der_out)
{
    krb5_error_code ret = ENOMEM;
    TK_HELDKEYS *h = TK_HELDKEYS_new();
    unsigned char *der = NULL;
    size_t i;
    int len = 0;

    der_out->data = NULL;
    der_out->length = 0;
    if (h == NULL)
        goto cleanup;
    ret = EINVAL;
    if (n < 1 || n > TK_MAX_HELD)
        goto cleanup;
    ret = ENOMEM;
    for (i = 0; i < n; i++) {
        if (!add_held(h, &keys[i]))
            goto cleanup;
    }
    len = i2d_TK_HELDKEYS(h, &der);
    if (len <= 0 || (der_out->data = malloc(len)) == NULL)
        goto cleanup;
    memcpy(der_out->data, der, len);
    der_out->length = len;
    ret = 0;

cleanup:
    if (der != NULL)
        OPENSSL_clear_free(der, len);
    cleanse_held(h);
    TK_HELDKEYS_free(h);
    return ret;
}

krb5_error_code
tk_decode_held_keys(krb5_context ctx, const krb5_data *der,
                    tk_held_key **keys_out, size_t *n_out)
{
    krb5_error_code ret = ASN1_BAD_FORMAT;
    const unsigned char *p = (const unsigned char *)der->data;
    TK_HELDKEYS *h = NULL;
    tk_held_key *keys = NULL;
    size_t count = 0;
    int i, j, n, m, len;
    int64_t v;

    *keys_out = NULL;
    *n_out = 0;
    if (der->length == 0 || der->length > TK_MAX_MESSAGE)
        return bad(ctx, ASN1_BAD_LENGTH, "held keys empty or too large");
    h = d2i_TK_HELDKEYS(NULL, &p, der->length);
    if (h == NULL)
        return bad(ctx, ASN1_PARSE_ERROR, "not DER of HeldKeys");
    n = sk_TK_HELDKEY_num(h->keys);
    if (p != (const unsigned char *)der->data + der->length || n < 1 ||
        n > TK_MAX_HELD) {
        bad(ctx, ret, "held keys: trailing bytes or count");
        goto cleanup;
    }
    ret = ENOMEM;
    keys = calloc(n, sizeof(*keys));
    if (keys == NULL)
        goto cleanup;
    ret = ASN1_BAD_FORMAT;
    for (i = 0; i < n; i++) {
        TK_HELDKEY *k = sk_TK_HELDKEY_value(h->keys, i);
        tk_held_key *out = &keys[i];

        count++;
        m = sk_TK_UPKEY_num(k->keys);
        if (!get_int(k->kvno, 1, 65535, &v) || m < 1 || m > TK_MAX_KEYS ||
            !get_int(k->expiry, 1, INT64_MAX, &out->expiry) ||
            (k->active_at != NULL &&
             !get_int(k->active_at, 1, INT64_MAX, &out->active_at))) {
            bad(ctx, ret, "held key fields");
            goto cleanup;
        }
        out->kvno = (krb5_kvno)v;
        for (j = 0; j < m; j++) {
            TK_UPKEY *uk = sk_TK_UPKEY_value(k->keys, j);
            krb5_keyblock *kb = &out->keys[out->nkeys];

            len = ASN1_STRING_length(uk->key);
            if (!get_int(uk->enctype, 1, INT32_MAX, &v) || len < 1 ||
                len > 64) {
                bad(ctx, ret, "held key");
                goto cleanup;
            }
            kb->magic = KV5M_KEYBLOCK;
            kb->enctype = (krb5_enctype)v;
            kb->contents = malloc(len);
            if (kb->contents == NULL) {
                ret = ENOMEM;
                goto cleanup;
            }
            memcpy(kb->contents, ASN1_STRING_get0_data(uk->key), len);
            kb->length = len;
            out->nkeys++;
        }
    }
    *keys_out = keys;
    *n_out = count;
    keys = NULL;
    ret = 0;

cleanup:
    tk_held_keys_free(keys, count);
    cleanse_held(h);
    TK_HELDKEYS_free(h);
    return ret;
}

/* ---- Error. */

krb5_error_code
tk_encode_error(krb5_context ctx, int reason, const char *text,
                const char *primary, krb5_data *der_out)
{
    krb5_error_code ret = ENOMEM;
    TK_ERR *e = TK_ERR_new();
    unsigned char *der = NULL;
    int len;

    if (e == NULL || !set_int(&e->reason, reason) ||
        !set_str(&e->text, text) ||
        (primary != NULL && !set_str(&e->primary, primary)))
        goto cleanup;
    len = i2d_TK_ERR(e, &der);
    if (len <= 0)
        goto cleanup;
    der_out->data = malloc(len);
    if (der_out->data == NULL)
        goto cleanup;
    memcpy(der_out->data, der, len);
    der_out->length = len;
    ret = 0;

cleanup:
    OPENSSL_free(der);
    TK_ERR_free(e);
    return ret;
}

krb5_error_code
tk_decode_error(krb5_context ctx, const krb5_data *der, int *reason_out,
                char **text_out, char **primary_out)
{
    const unsigned char *p = (const unsigned char *)der->data;
    TK_ERR *e;
    int64_t v;
    krb5_error_code ret = 0;

    *text_out = NULL;
    *primary_out = NULL;
    e = d2i_TK_ERR(NULL, &p, der->length);
    if (e == NULL || p != (const unsigned char *)der->data + der->length ||
        !get_int(e->reason, 0, INT32_MAX, &v) ||
        (*text_out = get_str(e->text)) == NULL ||
        (e->primary != NULL && (*primary_out = get_str(e->primary)) == NULL))
        ret = bad(ctx, ASN1_PARSE_ERROR, "not a TempkeyError");
    else
        *reason_out = (int)v;
    if (ret) {
        free(*text_out);
        *text_out = NULL;
    }
    TK_ERR_free(e);
    return ret;
}
