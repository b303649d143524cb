/* meta.c - DER codec and rules for a managed principal's key records. */
#include "tempkey.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1t.h>

/*
 * TempkeyMeta ::= SEQUENCE {
 *     version      INTEGER (1),
 *     highestKvno  INTEGER (0..65535),
 *     lastExpiry   INTEGER,          -- seconds since the epoch, 0 = none
 *     generation   INTEGER,          -- advanced by every change of records
 *     keys         SEQUENCE OF TempkeyRecord
 * }
 * TempkeyRecord ::= SEQUENCE {
 *     kvno         INTEGER (1..65535),
 *     expiry       INTEGER,          -- seconds since the epoch
 *     uploader     OCTET STRING (SIZE (32)) OPTIONAL,
 *     activeAt     [0] IMPLICIT INTEGER OPTIONAL  -- a shared principal's
 *                  -- key: the KDC issues no ticket in it before then
 * }
 */
typedef struct {
    ASN1_INTEGER *kvno;
    ASN1_INTEGER *expiry;
    ASN1_OCTET_STRING *uploader;
    ASN1_INTEGER *active_at;
} TK_RECORD;

DECLARE_ASN1_FUNCTIONS(TK_RECORD)

ASN1_SEQUENCE(TK_RECORD) = {
    ASN1_SIMPLE(TK_RECORD, kvno, ASN1_INTEGER),
    ASN1_SIMPLE(TK_RECORD, expiry, ASN1_INTEGER),
    ASN1_OPT(TK_RECORD, uploader, ASN1_OCTET_STRING),
    ASN1_IMP_OPT(TK_RECORD, active_at, ASN1_INTEGER, 0),
} ASN1_SEQUENCE_END(TK_RECORD)

DEFINE_STACK_OF(TK_RECORD)

typedef struct {
    ASN1_INTEGER *version;
    ASN1_INTEGER *highest_kvno;
    ASN1_INTEGER *last_expiry;
    ASN1_INTEGER *generation;
    STACK_OF(TK_RECORD) *keys;
} TK_META;

DECLARE_ASN1_FUNCTIONS(TK_META)

ASN1_SEQUENCE(TK_META) = {
    ASN1_SIMPLE(TK_META, version, ASN1_INTEGER),
    ASN1_SIMPLE(TK_META, highest_kvno, ASN1_INTEGER),
    ASN1_SIMPLE(TK_META, last_expiry, ASN1_INTEGER),
    ASN1_SIMPLE(TK_META, generation, ASN1_INTEGER),
    ASN1_SEQUENCE_OF(TK_META, keys, TK_RECORD),
} ASN1_SEQUENCE_END(TK_META)

IMPLEMENT_ASN1_FUNCTIONS(TK_RECORD)
IMPLEMENT_ASN1_FUNCTIONS(TK_META)

/* Metadata larger than this cannot come from any sane key history. */
#define TK_META_MAX_DER 16384

krb5_error_code
tk_meta_new(tk_meta **meta_out)
{
    *meta_out = calloc(1, sizeof(**meta_out));
    return (*meta_out == NULL) ? ENOMEM : 0;
}

void
tk_meta_free(tk_meta *meta)
{
    if (meta == NULL)
        return;
    free(meta->keys);
    free(meta);
}

static krb5_error_code
bad_meta(krb5_context ctx, krb5_error_code code, const char *what)
{
    krb5_set_error_message(ctx, code, "tempkey metadata is corrupt: %s",
                           what);
    return code;
}

static int
get_int64(const ASN1_INTEGER *ai, int64_t *out)
{
    return ASN1_INTEGER_get_int64(out, ai) == 1;
}

krb5_error_code
tk_meta_decode(krb5_context ctx, const unsigned char *der, size_t len,
               tk_meta **meta_out)
{
    krb5_error_code ret;
    const unsigned char *p = der;
    TK_META *asn = NULL;
    tk_meta *meta = NULL;
    int64_t v, prev_kvno = 0;
    int i, n;

    *meta_out = NULL;
    if (len == 0)
        return bad_meta(ctx, ASN1_BAD_LENGTH, "empty record");
    if (len > TK_META_MAX_DER)
        return bad_meta(ctx, ASN1_BAD_LENGTH, "record too large");
    asn = d2i_TK_META(NULL, &p, (long)len);
    if (asn == NULL)
        return bad_meta(ctx, ASN1_PARSE_ERROR, "not a DER TempkeyMeta");
    if (p != der + len) {
        ret = bad_meta(ctx, ASN1_BAD_LENGTH, "trailing bytes");
        goto cleanup;
    }
    if (!get_int64(asn->version, &v) || v != TK_META_VERSION) {
        ret = bad_meta(ctx, KRB5_KDB_BAD_VERSION, "unknown version");
        goto cleanup;
    }
    ret = tk_meta_new(&meta);
    if (ret)
        goto cleanup;
    if (!get_int64(asn->highest_kvno, &v) || v < 0 || v > TK_KVNO_MAX) {
        ret = bad_meta(ctx, ASN1_BAD_FORMAT, "highest kvno out of range");
        goto cleanup;
    }
    meta->highest_kvno = (krb5_kvno)v;
    if (!get_int64(asn->last_expiry, &meta->last_expiry) ||
        meta->last_expiry < 0) {
        ret = bad_meta(ctx, ASN1_BAD_FORMAT, "last expiry out of range");
        goto cleanup;
    }
    if (!get_int64(asn->generation, &v) || v < 0) {
        ret = bad_meta(ctx, ASN1_BAD_FORMAT, "generation out of range");
        goto cleanup;
    }
    meta->generation = (uint64_t)v;
    n = sk_TK_RECORD_num(asn->keys);
    if (n > 0) {
        meta->keys = calloc(n, sizeof(*meta->keys));
        if (meta->keys == NULL) {
            ret = ENOMEM;
            goto cleanup;
        }
    }
    for (i = 0; i < n; i++) {
        TK_RECORD *r = sk_TK_RECORD_value(asn->keys, i);
        tk_key_record *rec = &meta->keys[i];

        if (!get_int64(r->kvno, &v) || v < 1 || v > TK_KVNO_MAX ||
            v > meta->highest_kvno) {
            ret = bad_meta(ctx, ASN1_BAD_FORMAT, "key version out of range");
            goto cleanup;
        }
        if (v <= prev_kvno) {
            ret = bad_meta(ctx, ASN1_BAD_FORMAT,
                           "key versions not strictly ascending");
            goto cleanup;
        }
        prev_kvno = v;
        rec->kvno = (krb5_kvno)v;
        if (!get_int64(r->expiry, &rec->expiry) || rec->expiry <= 0) {
            ret = bad_meta(ctx, ASN1_BAD_FORMAT, "expiry out of range");
            goto cleanup;
        }
        if (r->uploader != NULL) {
            if (ASN1_STRING_length(r->uploader) != TK_UPLOADER_LEN) {
                ret = bad_meta(ctx, ASN1_BAD_FORMAT,
                               "uploader fingerprint is not 32 bytes");
                goto cleanup;
            }
            memcpy(rec->uploader, ASN1_STRING_get0_data(r->uploader),
                   TK_UPLOADER_LEN);
            rec->has_uploader = 1;
        }
        if (r->active_at != NULL &&
            (!get_int64(r->active_at, &rec->active_at) ||
             rec->active_at <= 0)) {
            ret = bad_meta(ctx, ASN1_BAD_FORMAT, "activation time out of "
                           "range");
            goto cleanup;
        }
        meta->nkeys++;
    }
    *meta_out = meta;
    meta = NULL;
    ret = 0;

cleanup:
    TK_META_free(asn);
    tk_meta_free(meta);
    return ret;
}

krb5_error_code
tk_meta_encode(krb5_context ctx, const tk_meta *meta, unsigned char **der_out,
               size_t *len_out)
{
    krb5_error_code ret = ENOMEM;
    TK_META *asn = NULL;
    TK_RECORD *r = NULL;
    unsigned char *der = NULL;
    size_t i;
    int len;

    *der_out = NULL;
    *len_out = 0;
    asn = TK_META_new();
    if (asn == NULL)
        goto cleanup;
    if (!ASN1_INTEGER_set_int64(asn->version, TK_META_VERSION) ||
        !ASN1_INTEGER_set_int64(asn->highest_kvno, meta->highest_kvno) ||
        !ASN1_INTEGER_set_int64(asn->last_expiry, meta->last_expiry) ||
        !ASN1_INTEGER_set_int64(asn->generation, (int64_t)meta->generation))
        goto cleanup;
    for (i = 0; i < meta->nkeys; i++) {
        const tk_key_record *rec = &meta->keys[i];

        r = TK_RECORD_new();
        if (r == NULL ||
            !ASN1_INTEGER_set_int64(r->kvno, rec->kvno) ||
            !ASN1_INTEGER_set_int64(r->expiry, rec->expiry))
            goto cleanup;
        if (rec->has_uploader) {
            r->uploader = ASN1_OCTET_STRING_new();
            if (r->uploader == NULL ||
                !ASN1_OCTET_STRING_set(r->uploader, rec->uploader,
                                       TK_UPLOADER_LEN))
                goto cleanup;
        }
        if (rec->active_at != 0) {
            r->active_at = ASN1_INTEGER_new();
            if (r->active_at == NULL ||
                !ASN1_INTEGER_set_int64(r->active_at, rec->active_at))
                goto cleanup;
        }
        if (!sk_TK_RECORD_push(asn->keys, r))
            goto cleanup;
        r = NULL;
    }
    len = i2d_TK_META(asn, &der);
    if (len <= 0)
        goto cleanup;
    *der_out = der;
    *len_out = (size_t)len;
    der = NULL;
    ret = 0;

cleanup:
    if (ret)
        krb5_set_error_message(ctx, ret, "cannot encode tempkey metadata");
    TK_RECORD_free(r);
    TK_META_free(asn);
    OPENSSL_free(der);
    return ret;
}

const tk_key_record *
tk_meta_find(const tk_meta *meta, krb5_kvno kvno)
{
    size_t i;

    for (i = 0; meta != NULL && i < meta->nkeys; i++) {
        if (meta->keys[i].kvno == kvno)
            return &meta->keys[i];
    }
    return NULL;
}

krb5_error_code
tk_meta_add(krb5_context ctx, tk_meta *meta, const tk_key_record *rec)
{
    tk_key_record *keys;

    if (rec->kvno <= meta->highest_kvno || rec->kvno > TK_KVNO_MAX) {
        krb5_set_error_message(ctx, KRB5_KDB_BAD_VERSION,
                               "key version %u is not above the highest "
                               "stored key version %u", rec->kvno,
                               meta->highest_kvno);
        return KRB5_KDB_BAD_VERSION;
    }
    keys = realloc(meta->keys, (meta->nkeys + 1) * sizeof(*keys));
    if (keys == NULL)
        return ENOMEM;
    meta->keys = keys;
    meta->keys[meta->nkeys++] = *rec;
    meta->highest_kvno = rec->kvno;
    return 0;
}

int
tk_meta_remove(tk_meta *meta, krb5_kvno kvno, int64_t now)
{
    size_t i;
    int64_t gone;

    for (i = 0; i < meta->nkeys; i++) {
        if (meta->keys[i].kvno != kvno)
            continue;
        gone = (meta->keys[i].expiry < now) ? meta->keys[i].expiry : now;
        if (gone > meta->last_expiry)
            meta->last_expiry = gone;
        memmove(&meta->keys[i], &meta->keys[i + 1],
                (meta->nkeys - i - 1) * sizeof(*meta->keys));
        meta->nkeys--;
        return 1;
    }
    return 0;
}

size_t
tk_meta_drop_expired(tk_meta *meta, int64_t now)
{
    size_t i = 0, removed = 0;

    while (i < meta->nkeys) {
        if (meta->keys[i].expiry <= now) {
            tk_meta_remove(meta, meta->keys[i].kvno, now);
            removed++;
        } else {
            i++;
        }
    }
    return removed;
}

krb5_boolean
tk_record_pending(const tk_key_record *rec, int64_t now)
{
    return rec->active_at > now && rec->expiry > now;
}

const tk_key_record *
tk_meta_pending(const tk_meta *meta, int64_t now)
{
    size_t i;

    for (i = 0; meta != NULL && i < meta->nkeys; i++) {
        if (tk_record_pending(&meta->keys[i], now))
            return &meta->keys[i];
    }
    return NULL;
}

const tk_key_record *
tk_meta_newest_active(const tk_meta *meta, int64_t now)
{
    size_t i;

    for (i = meta->nkeys; i > 0; i--) {
        if (meta->keys[i - 1].expiry > now &&
            !tk_record_pending(&meta->keys[i - 1], now))
            return &meta->keys[i - 1];
    }
    return NULL;
}

const tk_key_record *
tk_meta_newest_live(const tk_meta *meta, int64_t now)
{
    size_t i;

    for (i = meta->nkeys; i > 0; i--) {
        if (meta->keys[i - 1].expiry > now)
            return &meta->keys[i - 1];
    }
    return NULL;
}

int64_t
tk_meta_next_expiry(const tk_meta *meta)
{
    int64_t next = 0;
    size_t i;

    for (i = 0; i < meta->nkeys; i++) {
        if (next == 0 || meta->keys[i].expiry < next)
            next = meta->keys[i].expiry;
    }
    return next;
}

krb5_deltat
tk_cap_life(krb5_deltat life, int64_t expiry, int64_t now)
{
    int64_t left = expiry - now;

    if (left > INT32_MAX)
        left = INT32_MAX;
    if (life == 0 || life > left)
        return (krb5_deltat)left;
    return life;
}
