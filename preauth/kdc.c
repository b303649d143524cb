/* kdc.c - the KDC side of the upload protocol (kdcpreauth). */
/*
 * PREAUTH_REQUIRED for a managed or enrolling principal carries our offer
 * (and, through the KDC, a freshness token): the realm-wide part signed
 * once per TK_OFFER_INTERVAL and sent as is, with the principal's facts
 * unsigned beside it, so that no unauthenticated request costs a
 * private-key operation.  An AS-REQ carrying an upload is decrypted, its
 * signature, certificate, names, freshness, request binding, keys, expiry
 * and key version are checked in that order (tk_kdc_verify), and only then
 * is it handed to the tempkey KDB module's put_principal, which stores it
 * (the write path lives there).  The reply is encrypted in the new key and
 * carries a signed acknowledgement.  Every refusal logs one line and
 * answers with an error code MIT's KDC passes on, our reason in the
 * e-data.  The module keeps per-realm state built lazily in the realm's
 * context; it never writes to the database itself.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <com_err.h>
#include <kdb.h>
#include <profile.h>
#include <krb5/kdcpreauth_plugin.h>

#include <openssl/crypto.h>

#include "tempkey.h"
#include "tkproto.h"

/* libkdb5 is part of krb5kdc, not of this module (which is also loaded by
 * clients for its other half): resolve the one function we call at run
 * time. */
#pragma weak krb5_db_put_principal

/* Per-realm configuration and credentials. */
typedef struct realm_state {
    struct realm_state *next;
    char *realm;
    tk_policy policy;
    tk_identity *id;            /* pkinit_identity */
    tk_trust *trust;            /* pkinit_anchors, _pool, _revoke */
    unsigned char cert_hash[TK_HASH_LEN];
    krb5_boolean replica;       /* the database's role = replica */
    char *primary;              /* the primary KDC a replica names, or
                                 * NULL if unknown */
    krb5_data offer;            /* the signed Offer sent meanwhile; each
                                 * worker (krb5kdc -w) signs its own */
    int64_t offer_signed_at;
} realm_state;

struct krb5_kdcpreauth_moddata_st {
    realm_state *realms;
};

/* A verified upload, for return_padata. */
struct krb5_kdcpreauth_modreq_st {
    tk_ack ack;
};

#define EMPTY_DATA { 0, 0, NULL }

static void
free_realm(realm_state *rs)
{
    if (rs == NULL)
        return;
    free(rs->realm);
    free(rs->primary);
    free(rs->offer.data);
    tk_policy_free(&rs->policy);
    tk_identity_free(rs->id);
    tk_trust_free(rs->trust);
    free(rs);
}

static char **
get_values(profile_t profile, const char *realm, const char *name)
{
    const char *path[4] = { "realms", realm, name, NULL };
    char **values = NULL;

    if (profile_get_values(profile, path, &values) != 0)
        return NULL;
    return values;
}

/* Read realm's settings and credentials. */
static krb5_error_code
load_realm(krb5_context ctx, const char *realm, realm_state **rs_out)
{
    krb5_error_code ret;
    profile_t profile = NULL;
    realm_state *rs;
    char **identity = NULL, **anchors = NULL, **pool = NULL, **crls = NULL;

    *rs_out = NULL;
    rs = calloc(1, sizeof(*rs));
    if (rs == NULL)
        return ENOMEM;
    rs->realm = strdup(realm);
    if (rs->realm == NULL) {
        ret = ENOMEM;
        goto cleanup;
    }
    ret = tk_config_read_role(ctx, realm, &rs->replica);
    if (ret == 0)
        ret = tk_policy_read(ctx, realm, &rs->policy);
    if (ret == 0)
        ret = tk_check_eku(ctx, rs->policy.eku);
    if (ret == 0 && rs->replica)
        ret = tk_primary_kdc(ctx, realm, &rs->primary);
    if (ret)
        goto cleanup;
    ret = krb5_get_profile(ctx, &profile);
    if (ret)
        goto cleanup;
    identity = get_values(profile, realm, "pkinit_identity");
    anchors = get_values(profile, realm, "pkinit_anchors");
    pool = get_values(profile, realm, "pkinit_pool");
    crls = get_values(profile, realm, "pkinit_revoke");
    if (identity == NULL || anchors == NULL) {
        ret = KRB5_CONFIG_BADFORMAT;
        krb5_set_error_message(ctx, ret, "tempkey: [realms] %s needs "
                               "pkinit_identity and pkinit_anchors", realm);
        goto cleanup;
    }
    ret = tk_identity_load_pkinit(ctx, identity[0], &rs->id);
    if (ret == 0)
        ret = tk_trust_load(ctx, anchors, pool, crls, &rs->trust);
    if (ret == 0)
        ret = tk_cert_hash(ctx, rs->id->cert, rs->cert_hash);
    if (ret) {
        krb5_prepend_error_message(ctx, ret, "tempkey: realm %s", realm);
        goto cleanup;
    }
    *rs_out = rs;
    rs = NULL;

cleanup:
    profile_free_list(identity);
    profile_free_list(anchors);
    profile_free_list(pool);
    profile_free_list(crls);
    profile_release(profile);
    free_realm(rs);
    return ret;
}

static realm_state *
find_realm(krb5_kdcpreauth_moddata md, const krb5_data *realm)
{
    realm_state *rs;

    for (rs = md->realms; rs != NULL; rs = rs->next) {
        if (strlen(rs->realm) == realm->length &&
            memcmp(rs->realm, realm->data, realm->length) == 0)
            return rs;
    }
    return NULL;
}

/* Credentials are read at start so that a broken configuration is reported
 * at once; they hold no database state, so they survive krb5kdc's fork. */
static krb5_error_code
tk_kdc_init(krb5_context ctx, krb5_kdcpreauth_moddata *md_out,
            const char **realmnames)
{
    krb5_error_code ret = 0, broken = 0;
    krb5_kdcpreauth_moddata md;
    realm_state *rs;
    const char *msg;

    md = calloc(1, sizeof(*md));
    if (md == NULL)
        return ENOMEM;
    /* Each realm stands alone: one whose database is not tempkey is not
     * ours, and one whose settings are broken is reported and left out, so
     * that it cannot take the other realms of a KDC down with it. */
    for (; realmnames != NULL && *realmnames != NULL; realmnames++) {
        ret = load_realm(ctx, *realmnames, &rs);
        if (ret == KRB5_PLUGIN_NO_HANDLE) {
            ret = 0;
            continue;
        }
        if (ret == ENOMEM)
            break;
        if (ret) {
            msg = krb5_get_error_message(ctx, ret);
            com_err("tempkey", 0, "realm %s: %s; no uploads in this realm",
                    *realmnames, msg);
            krb5_free_error_message(ctx, msg);
            broken = ret;
            ret = 0;
            continue;
        }
        rs->next = md->realms;
        md->realms = rs;
    }
    /* Failing only when nothing is left keeps MIT's "failed to initialize"
     * report for a KDC whose every tempkey realm is broken. */
    if (ret == 0 && md->realms == NULL)
        ret = broken;
    if (ret) {
        while ((rs = md->realms) != NULL) {
            md->realms = rs->next;
            free_realm(rs);
        }
        free(md);
        return ret;
    }
    if (krb5_db_put_principal == NULL) {
        free(md);
        krb5_set_error_message(ctx, KRB5_PLUGIN_NO_HANDLE, "tempkey: the KDC "
                               "side runs only inside krb5kdc");
        return KRB5_PLUGIN_NO_HANDLE;
    }
    *md_out = md;
    return 0;
}

static void
tk_kdc_fini(krb5_context ctx, krb5_kdcpreauth_moddata md)
{
    realm_state *rs;

    if (md == NULL)
        return;
    while ((rs = md->realms) != NULL) {
        md->realms = rs->next;
        free_realm(rs);
    }
    free(md);
}

static int
tk_kdc_flags(krb5_context ctx, krb5_preauthtype pa_type)
{
    return PA_SUFFICIENT | PA_REPLACES_KEY;
}

/* The stored key records of the client entry, or NULL. */
static tk_meta *
client_meta(krb5_context ctx, krb5_kdcpreauth_callbacks cb,
            krb5_kdcpreauth_rock rock)
{
    krb5_db_entry *entry = cb->client_entry(ctx, rock);
    krb5_tl_data *tl;
    tk_meta *meta = NULL;

    for (tl = entry->tl_data; tl != NULL; tl = tl->tl_data_next) {
        if (tl->tl_data_type == TK_TL_META) {
            if (tk_meta_decode(ctx, tl->tl_data_contents, tl->tl_data_length,
                               &meta) != 0)
                krb5_clear_error_message(ctx);
            break;
        }
    }
    return meta;
}

/* Whether the client carries the string attribute key. */
static krb5_boolean
has_string(krb5_context ctx, krb5_kdcpreauth_callbacks cb,
           krb5_kdcpreauth_rock rock, const char *key)
{
    char *value = NULL;

    if (cb->get_string(ctx, rock, key, &value) != 0 || value == NULL)
        return FALSE;
    cb->free_string(ctx, rock, value);
    return TRUE;
}

/* Whether the client is ours: managed (or enrolling, which the KDB module
 * marks the same way), keyless and allowed to enroll, or marked for
 * adoption.  The KDB module decides again when it stores. */
static krb5_boolean
is_ours(krb5_context ctx, krb5_kdcpreauth_callbacks cb,
        krb5_kdcpreauth_rock rock, realm_state *rs)
{
    if (rs == NULL)
        return FALSE;
    /* Managed, or the KDB module's in-memory entry for a name that may
     * enroll: both carry the attribute. */
    return has_string(ctx, cb, rock, TK_ATTR_MANAGED) ||
        has_string(ctx, cb, rock, TK_ATTR_ADOPT);
}

/* The highest kvno the client has had: its records' (which outlive its
 * keys), or an adopting principal's long-term keys', which its first
 * temporary key must be above. */
static krb5_kvno
client_kvno(krb5_context ctx, krb5_kdcpreauth_callbacks cb,
            krb5_kdcpreauth_rock rock)
{
    krb5_db_entry *entry = cb->client_entry(ctx, rock);
    tk_meta *meta = client_meta(ctx, cb, rock);
    krb5_kvno kvno = (meta != NULL) ? meta->highest_kvno : 0;
    int i;

    for (i = 0; entry != NULL && i < entry->n_key_data; i++) {
        if (entry->key_data[i].key_data_kvno > kvno)
            kvno = entry->key_data[i].key_data_kvno;
    }
    tk_meta_free(meta);
    return kvno;
}

/* A shared principal's delay (tempkey_share), 0 if it is not shared. */
static krb5_deltat
share_delay(krb5_context ctx, krb5_kdcpreauth_callbacks cb,
            krb5_kdcpreauth_rock rock)
{
    char *value = NULL;
    krb5_deltat delay = 0;

    if (cb->get_string(ctx, rock, TK_ATTR_SHARE, &value) != 0 ||
        value == NULL)
        return 0;
    if (krb5_string_to_deltat(value, &delay) != 0 || delay < 0)
        delay = 0;
    cb->free_string(ctx, rock, value);
    return delay;
}

/* For a shared principal, the hints of its KeyOffer: its delay and the
 * live key versions it holds, so that a member knows what it lacks and
 * whether a key is pending. */
static krb5_error_code
shared_hints(krb5_context ctx, krb5_kdcpreauth_callbacks cb,
             krb5_kdcpreauth_rock rock, int64_t now, tk_key_offer *ko)
{
    tk_meta *meta;
    size_t i;

    ko->share_delay = share_delay(ctx, cb, rock);
    if (ko->share_delay == 0)
        return 0;
    meta = client_meta(ctx, cb, rock);
    if (meta != NULL && meta->nkeys > 0) {
        ko->held = calloc(meta->nkeys, sizeof(*ko->held));
        if (ko->held == NULL) {
            tk_meta_free(meta);
            return ENOMEM;
        }
    }
    for (i = 0; meta != NULL && i < meta->nkeys && ko->nheld < TK_MAX_HELD;
         i++) {
        if (meta->keys[i].expiry <= now)
            continue;
        ko->held[ko->nheld].kvno = meta->keys[i].kvno;
        ko->held[ko->nheld].expiry = meta->keys[i].expiry;
        ko->held[ko->nheld].active_at = meta->keys[i].active_at;
        ko->nheld++;
    }
    tk_meta_free(meta);
    return 0;
}

static krb5_pa_data *
make_pa(krb5_data *der)
{
    krb5_pa_data *pa = calloc(1, sizeof(*pa));

    if (pa == NULL)
        return NULL;
    pa->magic = KV5M_PA_DATA;
    pa->pa_type = TK_PADATA;
    pa->contents = (krb5_octet *)der->data;
    pa->length = der->length;
    der->data = NULL;
    der->length = 0;
    return pa;
}

/* Sign message with the realm's KDC identity into a padata. */
static krb5_error_code
signed_pa(krb5_context ctx, realm_state *rs, krb5_data *message,
          krb5_pa_data **pa_out)
{
    krb5_error_code ret;
    krb5_data sig = EMPTY_DATA;

    *pa_out = NULL;
    ret = tk_cms_sign(ctx, rs->id, message, &sig);
    if (ret)
        return ret;
    *pa_out = make_pa(&sig);
    free(sig.data);
    return (*pa_out == NULL) ? ENOMEM : 0;
}

/*
 * The realm's signed Offer, signed anew when the one in use is
 * TK_OFFER_INTERVAL old (or from the future: the clock went back).  What it
 * holds is read from kdc.conf at start only, so a configuration change
 * takes a restart, which signs a new one.
 */
static krb5_error_code
current_offer(krb5_context ctx, realm_state *rs, int64_t now,
              const krb5_data **offer_out)
{
    krb5_error_code ret;
    tk_offer offer;
    krb5_data der = EMPTY_DATA, sig = EMPTY_DATA;

    *offer_out = NULL;
    if (rs->offer.data == NULL || now < rs->offer_signed_at ||
        now >= rs->offer_signed_at + TK_OFFER_INTERVAL) {
        offer.realm = rs->realm;
        offer.enctypes = rs->policy.enctypes;
        offer.nenctypes = rs->policy.nenctypes;
        offer.max_lifetime = rs->policy.max_life;
        offer.signed_at = now;
        offer.valid_until = now + TK_OFFER_VALIDITY;
        ret = tk_encode_offer(ctx, &offer, &der);
        if (ret == 0)
            ret = tk_cms_sign(ctx, rs->id, &der, &sig);
        free(der.data);
        if (ret)
            return ret;
        free(rs->offer.data);
        rs->offer = sig;
        rs->offer_signed_at = now;
    }
    *offer_out = &rs->offer;
    return 0;
}

static void
tk_kdc_edata(krb5_context ctx, krb5_kdc_req *request,
             krb5_kdcpreauth_callbacks cb, krb5_kdcpreauth_rock rock,
             krb5_kdcpreauth_moddata md, krb5_preauthtype pa_type,
             krb5_kdcpreauth_edata_respond_fn respond, void *arg)
{
    krb5_error_code ret;
    krb5_principal client = cb->client_name(ctx, rock);
    realm_state *rs = find_realm(md, &client->realm);
    tk_key_offer ko;
    const krb5_data *offer;
    krb5_data der = EMPTY_DATA;
    krb5_pa_data *pa = NULL;
    char *name = NULL;

    if (!is_ours(ctx, cb, rock, rs)) {
        (*respond)(arg, ENOENT, NULL);
        return;
    }
    memset(&ko, 0, sizeof(ko));
    ret = krb5_unparse_name(ctx, client, &name);
    if (ret)
        goto cleanup;
    ko.kdc_time = time(NULL);
    ret = current_offer(ctx, rs, ko.kdc_time, &offer);
    if (ret)
        goto cleanup;
    /* The facts of this principal: hints, unsigned (doc/protocol.md). */
    ko.signed_offer = *offer;
    ko.principal = name;
    ko.current_kvno = client_kvno(ctx, cb, rock);
    ret = shared_hints(ctx, cb, rock, ko.kdc_time, &ko);
    if (ret == 0)
        ret = tk_encode_key_offer(ctx, &ko, &der);
    if (ret == 0 && (pa = make_pa(&der)) == NULL)
        ret = ENOMEM;
    if (ret == 0)
        cb->send_freshness_token(ctx, rock);

cleanup:
    if (ret) {
        const char *msg = krb5_get_error_message(ctx, ret);

        com_err("tempkey", 0, "cannot offer an upload to %s: %s",
                name != NULL ? name : "?", msg);
        krb5_free_error_message(ctx, msg);
    }
    free(der.data);
    free(ko.held);
    krb5_free_unparsed_name(ctx, name);
    (*respond)(arg, ret, pa);
}

/* ---- verify */
/*
 * tk_kdc_verify runs the steps of an upload in the order of the protocol,
 * each a function that records a refusal in the state it is given:
 * check_client, open_upload (decrypt, check the signature), check_certificate
 * (chain, key purpose, names), decode_upload, check_binding (names, KDC,
 * freshness, request), check_keys (enctypes, lengths, expiry), check_kvno,
 * choose_reply_key, store, accept_upload; then respond_verdict answers.
 */

typedef struct {
    krb5_context ctx;
    realm_state *rs;
    krb5_principal client;
    char *client_name;
    int64_t now;                /* when verification began */
    X509 *signer;
    char signer_desc[256];      /* subject and fingerprint, for the log */
    int reason;
    char detail[256];
    const char *primary;        /* named in a not-primary refusal */
    krb5_kvno long_term_kvno;   /* an adopted principal's, from the store */
    int64_t long_term_until;
    const char *what;           /* "upload" or "fetch", for the log */
    /* A shared principal's, from the store. */
    krb5_deltat share_delay;
    krb5_boolean fetched;       /* nothing stored: answered with the keys */
    int64_t active_at;
    tk_held_key *held;          /* every live key version */
    size_t nheld;
} check_state;

/* Record a refusal and return its Kerberos error code.  The detail, for
 * the KDC log, is fmt's, or without fmt the context's message for code. */
static krb5_error_code
refuse(check_state *st, int reason, krb5_error_code code, const char *fmt,
       ...) __attribute__((format(printf, 4, 5)));

static krb5_error_code
refuse(check_state *st, int reason, krb5_error_code code, const char *fmt,
       ...)
{
    va_list ap;
    const char *msg;

    st->reason = reason;
    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(st->detail, sizeof(st->detail), fmt, ap);
        va_end(ap);
    } else {
        msg = krb5_get_error_message(st->ctx, code);
        snprintf(st->detail, sizeof(st->detail), "%s", msg);
        krb5_free_error_message(st->ctx, msg);
    }
    return tk_reason_code(reason);
}

/* A replica's refusal, naming the primary when the realm says which. */
static krb5_error_code
refuse_not_primary(check_state *st)
{
    st->primary = st->rs->primary;
    if (st->primary == NULL)
        return refuse(st, TK_REASON_NOT_PRIMARY, 0, "this KDC is a replica "
                      "and knows no primary KDC (set primary_kdc or "
                      "admin_server for the realm)");
    return refuse(st, TK_REASON_NOT_PRIMARY, 0, "this KDC is a replica; "
                  "upload to the primary KDC %s", st->primary);
}

static void
describe_signer(check_state *st)
{
    unsigned char hash[TK_HASH_LEN];
    char hex[2 * TK_HASH_LEN + 1], subject[100];

    X509_NAME_oneline(X509_get_subject_name(st->signer), subject,
                      sizeof(subject));
    if (tk_cert_hash(st->ctx, st->signer, hash) == 0) {
        tk_hex(hash, 8, hex);
        snprintf(st->signer_desc, sizeof(st->signer_desc), "%s (sha256 %s...)",
                 subject, hex);
    }
}

/* The client: ours to serve, on a KDC that may store. */
static krb5_error_code
check_client(check_state *st, krb5_kdcpreauth_callbacks cb,
             krb5_kdcpreauth_rock rock)
{
    /* The KDC found it, so it exists: only an adoption lets an upload
     * take it over. */
    if (!is_ours(st->ctx, cb, rock, st->rs))
        return refuse(st, TK_REASON_NOT_ADOPTED, 0, "the principal exists "
                      "and is neither managed by tempkey nor being adopted; "
                      "a certificate alone never takes it over: an "
                      "administrator adopts it first (tempkey-admin adopt)");
    /* Before any key is decrypted: a replica never stores one. */
    if (st->rs->replica)
        return refuse_not_primary(st);
    return 0;
}

/* Decrypt the padata (EnvelopedData to this KDC) and open the SignedData
 * inside, checking its signature: *content_out is the Upload DER (the
 * caller cleanses and frees it), *certs_out the chain sent with it. */
static krb5_error_code
open_upload(check_state *st, const krb5_pa_data *data,
            krb5_data *content_out, STACK_OF(X509) **certs_out)
{
    krb5_error_code ret;
    krb5_data env, inner = EMPTY_DATA;
    int reason = 0;

    /* Unread, before any private-key operation. */
    if (data->length > TK_MAX_MESSAGE)
        return refuse(st, TK_REASON_MESSAGE_TOO_LARGE, 0, "an upload of %u "
                      "bytes; at most %d are read", data->length,
                      TK_MAX_MESSAGE);
    env.data = (char *)data->contents;
    env.length = data->length;
    ret = tk_cms_decrypt(st->ctx, st->rs->id, &env, &inner);
    if (ret)
        return refuse(st, ret == KRB5KDC_ERR_CERTIFICATE_MISMATCH ?
                      TK_REASON_NOT_FOR_THIS_KDC : TK_REASON_MALFORMED, ret,
                      NULL);
    ret = tk_cms_open_signed_bounded(st->ctx, &inner, content_out,
                                     &st->signer, certs_out, &reason);
    if (inner.data != NULL)
        OPENSSL_cleanse(inner.data, inner.length);
    free(inner.data);
    if (ret)
        return reason ? refuse(st, reason, ret, NULL) : ret;
    describe_signer(st);
    return 0;
}

static krb5_boolean
principal_listed(krb5_context ctx, krb5_principal *list, krb5_principal p)
{
    for (; list != NULL && *list != NULL; list++) {
        if (krb5_principal_compare(ctx, *list, p))
            return TRUE;
    }
    return FALSE;
}

static void
report_crl(void *arg, const char *spec, int ncrls, const char *error)
{
    realm_state *rs = arg;

    if (error != NULL)
        com_err("tempkey", 0, "realm %s: %s; keeping the revocation lists "
                "read from it before", rs->realm, error);
    else
        com_err("tempkey", 0, "realm %s: reloaded pkinit_revoke %s (%d "
                "CRLs)", rs->realm, spec, ncrls);
}

/* Whether hex is one of the pins, separated by commas or spaces (a shared
 * principal pins each member's key). */
static krb5_boolean
pin_listed(const char *pins, const char *hex)
{
    size_t len = strlen(hex), n;
    const char *p = pins;

    while (*p != '\0') {
        p += strspn(p, ", \t");
        n = strcspn(p, ", \t");
        if (n == len && strncasecmp(p, hex, len) == 0)
            return TRUE;
        p += n;
    }
    return FALSE;
}

/* The signer: a pinned key, or a chain to the anchors with the right key
 * purpose naming exactly the client. */
static krb5_error_code
check_certificate(check_state *st, krb5_kdcpreauth_callbacks cb,
                  krb5_kdcpreauth_rock rock, STACK_OF(X509) *certs)
{
    krb5_error_code ret;
    unsigned char spki[TK_HASH_LEN];
    char hex[2 * TK_HASH_LEN + 1], *pin = NULL;
    krb5_principal *names = NULL;
    krb5_boolean eku_ok;
    int reason;

    if (cb->get_string(st->ctx, rock, TK_ATTR_SPKI, &pin) == 0 &&
        pin != NULL) {
        ret = tk_spki_hash(st->ctx, st->signer, spki);
        tk_hex(spki, TK_HASH_LEN, hex);
        if (ret == 0 && !pin_listed(pin, hex))
            ret = refuse(st, TK_REASON_PINNED_KEY_MISMATCH, 0, "the %s is "
                         "not signed by a key pinned in tempkey_spki",
                         st->what);
        cb->free_string(st->ctx, rock, pin);
        return ret;
    }
    /* A CRL file replaced while the KDC runs is used from the next upload
     * on: one stat() per file here, a read only when it changed. */
    ret = tk_trust_refresh(st->ctx, st->rs->trust, report_crl, st->rs);
    if (ret)
        return ret;
    reason = tk_verify_chain(st->ctx, st->rs->trust, st->signer, certs);
    if (reason)
        return refuse(st, reason, tk_reason_code(reason), NULL);
    ret = tk_cert_has_eku(st->ctx, st->signer, st->rs->policy.eku, &eku_ok);
    if (ret)
        return refuse(st, TK_REASON_WRONG_KEY_PURPOSE, ret, NULL);
    if (!eku_ok)
        return refuse(st, TK_REASON_WRONG_KEY_PURPOSE, 0, "the certificate "
                      "lacks the extended key usage tempkey_eku requires");
    ret = tk_cert_principals(st->ctx, st->signer, &names);
    if (ret == KRB5KDC_ERR_CLIENT_NAME_MISMATCH)
        return refuse(st, TK_REASON_TOO_MANY_NAMES, ret, NULL);
    if (ret)
        return ret;
    if (!principal_listed(st->ctx, names, st->client))
        ret = refuse(st, TK_REASON_NAME_MISMATCH, 0, "the certificate does "
                     "not name the client principal");
    tk_free_principals(st->ctx, names);
    return ret;
}

static krb5_error_code
decode_upload(check_state *st, const krb5_data *content, tk_upload **up_out)
{
    krb5_error_code ret;

    ret = tk_decode_upload(st->ctx, content, up_out);
    return ret ? refuse(st, TK_REASON_MALFORMED, ret, NULL) : 0;
}

/* What binds a request (an upload or a fetch) to this exchange: the client,
 * this KDC, the freshness token it sent, this AS-REQ's body. */
static krb5_error_code
check_binding(check_state *st, krb5_kdcpreauth_callbacks cb,
              krb5_kdcpreauth_rock rock, const char *realm,
              const char *principal, const unsigned char *kdc_cert_hash,
              const krb5_data *token, const unsigned char *body_checksum)
{
    krb5_principal named = NULL;
    unsigned char sum[TK_HASH_LEN];
    krb5_data *body;
    krb5_boolean same;

    same = (krb5_parse_name(st->ctx, principal, &named) == 0 &&
            strcmp(realm, st->rs->realm) == 0 &&
            krb5_principal_compare(st->ctx, named, st->client));
    krb5_free_principal(st->ctx, named);
    if (!same)
        return refuse(st, TK_REASON_NAME_MISMATCH, 0, "the %s names "
                      "another principal than the AS-REQ client", st->what);
    if (CRYPTO_memcmp(kdc_cert_hash, st->rs->cert_hash, TK_HASH_LEN) != 0)
        return refuse(st, TK_REASON_KDC_CERTIFICATE_MISMATCH, 0, "the %s "
                      "was made for another KDC certificate", st->what);
    if (token->length == 0 ||
        cb->check_freshness_token(st->ctx, rock, token) != 0)
        return refuse(st, TK_REASON_STALE_FRESHNESS_TOKEN, 0, "missing or "
                      "stale freshness token");
    body = cb->request_body(st->ctx, rock);
    tk_sha256(body->data, body->length, sum);
    if (CRYPTO_memcmp(sum, body_checksum, TK_HASH_LEN) != 0)
        return refuse(st, TK_REASON_REQUEST_CHECKSUM_MISMATCH, 0, "the "
                      "%s is bound to another AS-REQ body", st->what);
    return 0;
}

/* The keys against the realm's policy: allowed enctypes, once each, of
 * their length, with an expiry within tempkey_max_life. */
static krb5_error_code
check_keys(check_state *st, const tk_upload *up)
{
    int64_t now = time(NULL);
    size_t i, j, keylen;

    for (i = 0; i < up->nkeys; i++) {
        for (j = 0; j < st->rs->policy.nenctypes; j++) {
            if (st->rs->policy.enctypes[j] == up->keys[i].enctype)
                break;
        }
        if (j == st->rs->policy.nenctypes)
            return refuse(st, TK_REASON_ENCTYPE_NOT_ALLOWED, 0, "enctype %d "
                          "is not in tempkey_enctypes", up->keys[i].enctype);
        for (j = 0; j < i; j++) {
            if (up->keys[j].enctype == up->keys[i].enctype)
                return refuse(st, TK_REASON_ENCTYPE_NOT_ALLOWED, 0, "an "
                              "enctype appears twice");
        }
        if (krb5_c_keylengths(st->ctx, up->keys[i].enctype, NULL,
                              &keylen) != 0 || keylen != up->keys[i].length)
            return refuse(st, TK_REASON_BAD_KEY_LENGTH, 0, "a %u-byte key "
                          "for enctype %d", up->keys[i].length,
                          up->keys[i].enctype);
    }
    if (up->expiry <= now || up->expiry > now + st->rs->policy.max_life)
        return refuse(st, TK_REASON_EXPIRY_NOT_ALLOWED, 0, "requested expiry "
                      "%+lld s from now; tempkey_max_life is %d s",
                      (long long)(up->expiry - now),
                      (int)st->rs->policy.max_life);
    return 0;
}

/* A first look at the key version; the store decides again on a fresh
 * entry. */
static krb5_error_code
check_kvno(check_state *st, krb5_kdcpreauth_callbacks cb,
           krb5_kdcpreauth_rock rock, const tk_upload *up)
{
    int reason;

    reason = tk_upload_kvno_reason(st->ctx, client_kvno(st->ctx, cb, rock),
                                   up->kvno);
    return reason ? refuse(st, reason, tk_reason_code(reason), NULL) : 0;
}

/* The uploaded key that must encrypt the reply: the first requested enctype
 * we were given a key for. */
static krb5_error_code
choose_reply_key(check_state *st, const krb5_kdc_req *request,
                 const tk_upload *up, const krb5_keyblock **key_out)
{
    int i;
    size_t j;

    for (i = 0; i < request->nktypes; i++) {
        for (j = 0; j < up->nkeys; j++) {
            if (up->keys[j].enctype == request->ktype[i]) {
                *key_out = &up->keys[j];
                return 0;
            }
        }
    }
    return refuse(st, TK_REASON_ENCTYPE_NOT_ALLOWED, 0, "no uploaded key "
                  "matches the AS-REQ enctypes");
}

/* Free the entry made by store(), with what the KDB module added. */
static void
free_upload_entry(krb5_context ctx, krb5_db_entry *e)
{
    krb5_tl_data *tl, *next;

    for (tl = e->tl_data; tl != NULL; tl = next) {
        next = tl->tl_data_next;
        free(tl->tl_data_contents);
        free(tl);
    }
    krb5_free_principal(ctx, e->princ);
    free(e);
}

/* An adopted principal's long-term keys, from the store's result. */
static void
read_long_term(check_state *st, const unsigned char *result)
{
    uint64_t until = 0;
    uint32_t kvno = 0;
    int i;

    for (i = 0; i < 4; i++)
        kvno = (kvno << 8) | result[12 + i];
    for (i = 0; i < 8; i++)
        until = (until << 8) | result[16 + i];
    st->long_term_kvno = kvno;
    st->long_term_until = (int64_t)until;
}

/* A big-endian number of len bytes at p. */
static uint64_t
get_be(const unsigned char *p, int len)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < len; i++)
        v = (v << 8) | p[i];
    return v;
}

/* A shared principal's part of the store's result, and its keys. */
static krb5_error_code
read_shared(check_state *st, const unsigned char *result,
            const krb5_tl_data *held)
{
    krb5_data der;

    st->fetched = (result[24] == 1);
    st->active_at = (int64_t)get_be(result + 25, 8);
    st->share_delay = (krb5_deltat)get_be(result + 33, 4);
    if (st->share_delay == 0 || held == NULL)
        return 0;
    der.data = (char *)held->tl_data_contents;
    der.length = held->tl_data_length;
    return tk_decode_held_keys(st->ctx, &der, &st->held, &st->nheld);
}

/*
 * Hand the verified request to the KDB module, as the tl_data type says
 * (TK_TL_UPLOAD with the Upload DER, or TK_TL_FETCH), and read back its
 * verdict; a shared principal's keys come back in the clear and are
 * zeroed here with the entry.
 */
static krb5_error_code
store(check_state *st, krb5_int16 type, const krb5_data *der,
      int64_t *expiry_out)
{
    krb5_error_code ret;
    krb5_db_entry *e;
    krb5_tl_data *tl, *result = NULL, *held = NULL;
    unsigned char *p;
    int reason = 0;
    int64_t expiry = 0;

    e = calloc(1, sizeof(*e));
    tl = calloc(1, sizeof(*tl));
    p = malloc(TK_UPLOADER_LEN + der->length);
    if (e == NULL || tl == NULL || p == NULL) {
        free(e);
        free(tl);
        free(p);
        return ENOMEM;
    }
    ret = tk_cert_hash(st->ctx, st->signer, p);
    if (der->length > 0)
        memcpy(p + TK_UPLOADER_LEN, der->data, der->length);
    tl->tl_data_type = type;
    tl->tl_data_length = TK_UPLOADER_LEN + der->length;
    tl->tl_data_contents = p;
    e->magic = KRB5_KDB_MAGIC_NUMBER;
    e->len = KRB5_KDB_V1_BASE_LENGTH;
    e->tl_data = tl;
    e->n_tl_data = 1;
    if (ret == 0)
        ret = krb5_copy_principal(st->ctx, st->client, &e->princ);
    if (ret == 0)
        ret = krb5_db_put_principal(st->ctx, e);
    for (tl = e->tl_data; tl != NULL; tl = tl->tl_data_next) {
        if (tl->tl_data_type == TK_TL_UPLOAD_RESULT &&
            tl->tl_data_length == TK_UPLOAD_RESULT_LEN)
            result = tl;
        if (tl->tl_data_type == TK_TL_HELD_KEYS)
            held = tl;
    }
    if (result != NULL) {
        reason = (int)get_be(result->tl_data_contents, 4);
        expiry = (int64_t)get_be(result->tl_data_contents + 4, 8);
        read_long_term(st, result->tl_data_contents);
        if (ret == 0)
            ret = read_shared(st, result->tl_data_contents, held);
    }
    if (ret)
        ret = refuse(st, reason != 0 ? reason : TK_REASON_STORE_FAILED, ret,
                     NULL);
    else if (result == NULL)
        ret = refuse(st, TK_REASON_STORE_FAILED, 0, "the KDB module is not "
                     "tempkey");
    *expiry_out = expiry;
    for (tl = e->tl_data; tl != NULL; tl = tl->tl_data_next) {
        if (tl->tl_data_type == TK_TL_UPLOAD ||
            tl->tl_data_type == TK_TL_HELD_KEYS)
            OPENSSL_cleanse(tl->tl_data_contents, tl->tl_data_length);
    }
    free_upload_entry(st->ctx, e);
    return ret;
}

/* The ticket of an upload exchange was proved by the new key alone: it
 * neither ends nor renews after that key expires.  (The KDC computed its
 * times before preauthentication, from the entry as it was.) */
static void
cap_ticket(krb5_ticket_times *times, int64_t expiry)
{
    /* MIT's timestamps are unsigned 32-bit seconds. */
    if ((int64_t)(uint32_t)times->endtime > expiry)
        times->endtime = (krb5_timestamp)expiry;
    if ((int64_t)(uint32_t)times->renew_till > expiry)
        times->renew_till = (krb5_timestamp)expiry;
}

/* The newest key version a shared principal's answer carries, or NULL. */
static const tk_held_key *
newest_held(const check_state *st)
{
    const tk_held_key *newest = NULL;
    size_t i;

    for (i = 0; i < st->nheld; i++) {
        if (newest == NULL || st->held[i].kvno > newest->kvno)
            newest = &st->held[i];
    }
    return newest;
}

/* For an answer with keys and nothing stored: the reply goes in the newest
 * version held, in the first requested enctype it has. */
static krb5_error_code
choose_held_key(check_state *st, const krb5_kdc_req *request,
                const tk_held_key *newest, const krb5_keyblock **key_out)
{
    int i;
    size_t j;

    for (i = 0; newest != NULL && i < request->nktypes; i++) {
        for (j = 0; j < newest->nkeys; j++) {
            if (newest->keys[j].enctype == request->ktype[i]) {
                *key_out = &newest->keys[j];
                return 0;
            }
        }
    }
    return refuse(st, TK_REASON_ENCTYPE_NOT_ALLOWED, 0, "no key of the "
                  "newest version held matches the AS-REQ enctypes");
}

/* A shared principal's part of the acknowledgement: the keys, encrypted to
 * the member that signed, and when the next rotation is due. */
static krb5_error_code
shared_ack(check_state *st, const tk_held_key *newest, tk_ack *ack)
{
    krb5_error_code ret;
    krb5_data der = EMPTY_DATA;

    ret = tk_encode_held_keys(st->ctx, st->held, st->nheld, &der);
    if (ret == 0)
        ret = tk_cms_encrypt(st->ctx, st->signer, &der, &ack->shared_keys);
    if (der.data != NULL)
        OPENSSL_cleanse(der.data, der.length);
    free(der.data);
    if (ret)
        return ret;
    ack->share_delay = st->share_delay;
    ack->fetched = st->fetched;
    ack->refresh_by = tk_shared_refresh_by(newest->expiry, newest->active_at,
                                           st->now, st->share_delay);
    return 0;
}

/* The kvnos of a shared principal's answer, for the log ("3-5"). */
static void
held_range(const check_state *st, char *buf, size_t size)
{
    krb5_kvno lo = 0, hi = 0;
    size_t i;

    for (i = 0; i < st->nheld; i++) {
        if (lo == 0 || st->held[i].kvno < lo)
            lo = st->held[i].kvno;
        if (st->held[i].kvno > hi)
            hi = st->held[i].kvno;
    }
    if (lo == hi)
        snprintf(buf, size, "%u", hi);
    else
        snprintf(buf, size, "%u-%u", lo, hi);
}

/* One KDC line for what was done. */
static void
log_accepted(const check_state *st, const tk_upload *up, const tk_ack *ack)
{
    char range[32], when[TK_TIME_LEN];

    if (st->share_delay == 0) {
        com_err("tempkey", 0, "stored kvno %u of %s, expires in %lld s, "
                "uploaded by %s", up->kvno, st->client_name,
                (long long)(ack->expiry - st->now), st->signer_desc);
        return;
    }
    held_range(st, range, sizeof(range));
    tk_format_time(ack->active_at != 0 ? ack->active_at : st->now, when);
    if (!st->fetched) {
        com_err("tempkey", 0, "stored kvno %u of %s, expires in %lld s, "
                "uploaded by %s; shared: tickets in it from %s, sent kvno %s",
                up->kvno, st->client_name,
                (long long)(ack->expiry - st->now), st->signer_desc, when,
                range);
    } else if (up != NULL && ack->active_at != 0) {
        com_err("tempkey", 0, "answered upload of kvno %u for %s as a "
                "fetch: kvno %u is pending until %s; sent kvno %s to %s",
                up->kvno, st->client_name, ack->kvno, when, range,
                st->signer_desc);
    } else if (up != NULL) {
        com_err("tempkey", 0, "answered upload of kvno %u for %s as a "
                "fetch: kvno %u came first; sent kvno %s to %s", up->kvno,
                st->client_name, ack->kvno, range, st->signer_desc);
    } else {
        com_err("tempkey", 0, "fetch for %s: sent kvno %s (tickets in kvno "
                "%u from %s) to %s", st->client_name, range, ack->kvno, when,
                st->signer_desc);
    }
}

/*
 * The answer: the reply in key (the uploaded one, or for an answer with
 * keys and nothing stored the newest held), the ticket within that key's
 * life, and the acknowledgement for return_padata in *modreq_out.
 */
static krb5_error_code
accept_request(check_state *st, krb5_kdcpreauth_callbacks cb,
               krb5_kdcpreauth_rock rock, const krb5_kdc_req *request,
               const krb5_keyblock *key, const tk_upload *up, int64_t expiry,
               krb5_enc_tkt_part *enc_tkt_reply,
               krb5_kdcpreauth_modreq *modreq_out)
{
    krb5_error_code ret;
    krb5_kdcpreauth_modreq modreq;
    const tk_held_key *newest = newest_held(st);
    krb5_kvno kvno = (up != NULL) ? up->kvno : 0;
    int64_t active_at = st->active_at;

    *modreq_out = NULL;
    if (st->share_delay > 0 && newest == NULL)
        return refuse(st, TK_REASON_STORE_FAILED, 0, "the KDB module "
                      "returned no key of the shared principal");
    if (st->fetched) {
        ret = choose_held_key(st, request, newest, &key);
        if (ret)
            return ret;
        kvno = newest->kvno;
        expiry = newest->expiry;
        active_at = newest->active_at;
    }
    ret = cb->replace_reply_key(st->ctx, rock, key, FALSE);
    if (ret)
        return ret;
    enc_tkt_reply->flags |= TKT_FLG_PRE_AUTH;
    cap_ticket(&enc_tkt_reply->times, expiry);
    modreq = calloc(1, sizeof(*modreq));
    if (modreq == NULL)
        return ENOMEM;
    modreq->ack.principal = strdup(st->client_name);
    if (modreq->ack.principal == NULL) {
        free(modreq);
        return ENOMEM;
    }
    modreq->ack.kvno = kvno;
    modreq->ack.expiry = expiry;
    modreq->ack.long_term_kvno = st->long_term_kvno;
    modreq->ack.long_term_until = st->long_term_until;
    /* Refresh with two thirds of the key's life gone, leaving time to
     * retry before it expires. */
    modreq->ack.refresh_by = st->now + (expiry - st->now) * 2 / 3;
    modreq->ack.active_at = (active_at > st->now) ? active_at : 0;
    if (st->share_delay > 0) {
        ret = shared_ack(st, newest, &modreq->ack);
        if (ret) {
            free(modreq->ack.principal);
            free(modreq);
            return ret;
        }
    }
    log_accepted(st, up, &modreq->ack);
    *modreq_out = modreq;
    return 0;
}

/* The e-data of a refusal: our reason, for ktupdate to report, with the
 * reason's fixed text.  The detail (OpenSSL's and the verifier's words, the
 * numbers compared) goes to the KDC log only: the peer may be anyone. */
static krb5_pa_data **
refusal_edata(check_state *st)
{
    krb5_pa_data **list = calloc(2, sizeof(*list));
    krb5_data der = EMPTY_DATA;
    const char *text = tk_reason_text(st->reason);

    /* Also fixed: ktupdate tells its operator that the realm's
     * configuration, not this KDC, lacks the primary. */
    if (st->reason == TK_REASON_NOT_PRIMARY && st->primary == NULL)
        text = "this KDC is a replica and knows no primary KDC";
    if (list == NULL || tk_encode_error(st->ctx, st->reason, text,
                                        st->primary, &der) != 0 ||
        (list[0] = make_pa(&der)) == NULL) {
        free(der.data);
        free(list);
        return NULL;
    }
    return list;
}

/* Answer the KDC: a refusal logged with its reason and carried in the
 * e-data, another failure logged, or the acknowledgement, which respond
 * takes over. */
static void
respond_verdict(check_state *st, krb5_error_code ret,
                krb5_kdcpreauth_modreq modreq,
                krb5_kdcpreauth_verify_respond_fn respond, void *arg)
{
    const char *msg;

    if (ret && st->reason) {
        com_err("tempkey", 0, "refused %s for %s signed by %s: %s: %s",
                st->what, st->client_name, st->signer_desc,
                tk_reason_name(st->reason), st->detail);
        (*respond)(arg, ret, NULL, refusal_edata(st), NULL);
    } else if (ret) {
        msg = krb5_get_error_message(st->ctx, ret);
        com_err("tempkey", 0, "%s for %s failed: %s", st->what,
                st->client_name, msg);
        krb5_free_error_message(st->ctx, msg);
        (*respond)(arg, ret, NULL, NULL, NULL);
    } else {
        (*respond)(arg, 0, modreq, NULL, NULL);
    }
}

/* The request inside: an upload or (tk_decode_fetch succeeds) a fetch.
 * Looked at before the certificate only to name it in the log. */
static void
peek_fetch(check_state *st, const krb5_data *content, tk_fetch **fetch_out)
{
    if (tk_decode_fetch(st->ctx, content, fetch_out) == 0)
        st->what = "fetch";
    else
        krb5_clear_error_message(st->ctx);
}

static void
tk_kdc_verify(krb5_context ctx, krb5_data *req_pkt, krb5_kdc_req *request,
              krb5_enc_tkt_part *enc_tkt_reply, krb5_pa_data *data,
              krb5_kdcpreauth_callbacks cb, krb5_kdcpreauth_rock rock,
              krb5_kdcpreauth_moddata md,
              krb5_kdcpreauth_verify_respond_fn respond, void *arg)
{
    krb5_error_code ret;
    check_state st;
    krb5_data content = EMPTY_DATA, none = EMPTY_DATA;
    STACK_OF(X509) *certs = NULL;
    tk_upload *up = NULL;
    tk_fetch *fetch = NULL;
    const krb5_keyblock *key = NULL;
    krb5_kdcpreauth_modreq modreq = NULL;
    int64_t expiry = 0;

    memset(&st, 0, sizeof(st));
    st.ctx = ctx;
    st.client = cb->client_name(ctx, rock);
    st.rs = find_realm(md, &st.client->realm);
    st.now = time(NULL);
    st.what = "upload";
    strcpy(st.signer_desc, "no certificate");
    if (krb5_unparse_name(ctx, st.client, &st.client_name) != 0) {
        (*respond)(arg, ENOMEM, NULL, NULL, NULL);
        return;
    }

    ret = check_client(&st, cb, rock);
    if (ret == 0)
        ret = open_upload(&st, data, &content, &certs);
    if (ret == 0)
        peek_fetch(&st, &content, &fetch);
    if (ret == 0)
        ret = check_certificate(&st, cb, rock, certs);
    if (ret == 0 && fetch != NULL) {
        ret = check_binding(&st, cb, rock, fetch->realm, fetch->principal,
                            fetch->kdc_cert_hash, &fetch->freshness_token,
                            fetch->body_checksum);
        if (ret == 0)
            ret = store(&st, TK_TL_FETCH, &none, &expiry);
        st.fetched = TRUE;
    } else if (ret == 0) {
        ret = decode_upload(&st, &content, &up);
        if (ret == 0)
            ret = check_binding(&st, cb, rock, up->realm, up->principal,
                                up->kdc_cert_hash, &up->freshness_token,
                                up->body_checksum);
        if (ret == 0)
            ret = check_keys(&st, up);
        if (ret == 0)
            ret = check_kvno(&st, cb, rock, up);
        if (ret == 0)
            ret = choose_reply_key(&st, request, up, &key);
        if (ret == 0)
            ret = store(&st, TK_TL_UPLOAD, &content, &expiry);
    }
    if (ret == 0) {
        ret = accept_request(&st, cb, rock, request, key, up, expiry,
                             enc_tkt_reply, &modreq);
    }
    respond_verdict(&st, ret, modreq, respond, arg);

    if (content.data != NULL)
        OPENSSL_cleanse(content.data, content.length);
    free(content.data);
    tk_upload_free(up);
    tk_fetch_free(fetch);
    tk_held_keys_free(st.held, st.nheld);
    X509_free(st.signer);
    sk_X509_pop_free(certs, X509_free);
    krb5_free_unparsed_name(ctx, st.client_name);
}

/* The signed acknowledgement, in the AS-REP. */
static krb5_error_code
tk_kdc_return(krb5_context ctx, krb5_pa_data *padata, krb5_data *req_pkt,
              krb5_kdc_req *request, krb5_kdc_rep *reply,
              krb5_keyblock *encrypting_key, krb5_pa_data **send_pa_out,
              krb5_kdcpreauth_callbacks cb, krb5_kdcpreauth_rock rock,
              krb5_kdcpreauth_moddata md, krb5_kdcpreauth_modreq modreq)
{
    krb5_error_code ret;
    krb5_principal client = cb->client_name(ctx, rock);
    realm_state *rs = find_realm(md, &client->realm);
    krb5_data der = EMPTY_DATA;

    if (modreq == NULL || rs == NULL)
        return 0;
    ret = tk_encode_ack(ctx, &modreq->ack, &der);
    if (ret == 0)
        ret = signed_pa(ctx, rs, &der, send_pa_out);
    free(der.data);
    return ret;
}

static void
tk_kdc_free_modreq(krb5_context ctx, krb5_kdcpreauth_moddata md,
                   krb5_kdcpreauth_modreq modreq)
{
    if (modreq == NULL)
        return;
    free(modreq->ack.principal);
    free(modreq->ack.shared_keys.data);
    free(modreq);
}

krb5_error_code
kdcpreauth_tempkey_initvt(krb5_context ctx, int maj_ver, int min_ver,
                          krb5_plugin_vtable vtable);

static krb5_preauthtype kdc_pa_types[] = { TK_PADATA, 0 };

krb5_error_code
kdcpreauth_tempkey_initvt(krb5_context ctx, int maj_ver, int min_ver,
                          krb5_plugin_vtable vtable)
{
    krb5_kdcpreauth_vtable vt;

    if (maj_ver != 1)
        return KRB5_PLUGIN_VER_NOTSUPP;
    vt = (krb5_kdcpreauth_vtable)vtable;
    vt->name = "tempkey";
    vt->pa_type_list = kdc_pa_types;
    vt->init = tk_kdc_init;
    vt->fini = tk_kdc_fini;
    vt->flags = tk_kdc_flags;
    vt->edata = tk_kdc_edata;
    vt->verify = tk_kdc_verify;
    vt->return_padata = tk_kdc_return;
    vt->free_modreq = tk_kdc_free_modreq;
    return 0;
}
