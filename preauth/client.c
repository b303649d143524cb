/* client.c - the server side's half of the upload protocol (clpreauth). */
/*
 * Answers the KDC's offer with an upload, and reads the signed
 * acknowledgement in the AS-REP.  Nothing is sent before the KDC's signature
 * is verified against the session's anchors (chain, id-pkinit-KPKdc, a SAN
 * naming krbtgt/REALM) and the signed offer found valid by this host's clock
 * (with the clock skew allowed).  The offer's per-principal facts are not
 * signed (the KDC signs the realm-wide part once a minute): they are hints,
 * and a forged one can only get the upload refused.  A version 1 KeyRequest,
 * signed whole by an older KDC, is accepted too.  The upload is signed with
 * the server's key and encrypted to the certificate that signed the offer;
 * the AS-REP is decrypted with the new key.  The module works only with a
 * session set by the program driving it (tk_client_set_session).
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <krb5/clpreauth_plugin.h>
#include <profile.h>

#include <openssl/crypto.h>

#include "tkclient.h"

static tk_client_session *current;

void
tk_client_set_session(tk_client_session *s)
{
    current = s;
}

void
tk_client_session_clear(tk_client_session *s)
{
    size_t i;

    tk_key_request_free(s->request);
    s->request = NULL;
    tk_ack_free(s->ack);
    s->ack = NULL;
    tk_held_keys_free(s->held, s->nheld);
    s->held = NULL;
    s->nheld = 0;
    s->fetch = s->idle = FALSE;
    for (i = 0; i < s->nkeys; i++)
        krb5_free_keyblock_contents(NULL, &s->keys[i]);
    s->nkeys = 0;
}

/* Per-exchange state: the freshness token and the KDC's certificate. */
struct krb5_clpreauth_modreq_st {
    krb5_data token;
    X509 *kdc_cert;
};

static krb5_error_code
fail(krb5_context ctx, tk_client_session *s, krb5_error_code code,
     const char *fmt, const char *detail)
{
    snprintf(s->message, sizeof(s->message), fmt, detail);
    krb5_set_error_message(ctx, code, "%s", s->message);
    return code;
}

static int
tk_cl_flags(krb5_context ctx, krb5_preauthtype pa_type)
{
    return (pa_type == KRB5_PADATA_AS_FRESHNESS) ? PA_INFO : PA_REAL;
}

static void
tk_cl_request_init(krb5_context ctx, krb5_clpreauth_moddata md,
                   krb5_clpreauth_modreq *modreq_out)
{
    *modreq_out = calloc(1, sizeof(**modreq_out));
}

static void
tk_cl_request_fini(krb5_context ctx, krb5_clpreauth_moddata md,
                   krb5_clpreauth_modreq modreq)
{
    if (modreq == NULL)
        return;
    free(modreq->token.data);
    X509_free(modreq->kdc_cert);
    free(modreq);
}

/* Check that cert may speak for the KDC of realm. */
static krb5_error_code
check_kdc(krb5_context ctx, tk_client_session *s, X509 *cert,
          STACK_OF(X509) *certs, const krb5_data *realm)
{
    krb5_error_code ret;
    krb5_principal tgs = NULL, *names = NULL, *p;
    krb5_boolean ok = FALSE;
    const char *msg;
    int reason;

    reason = tk_verify_chain(ctx, s->kdc_trust, cert, certs);
    if (reason) {
        msg = krb5_get_error_message(ctx, tk_reason_code(reason));
        ret = fail(ctx, s, KRB5KDC_ERR_KDC_NOT_TRUSTED, "the KDC's "
                   "certificate is not trusted: %s", msg);
        krb5_free_error_message(ctx, msg);
        return ret;
    }
    ret = tk_cert_has_eku(ctx, cert, "pkinit-kdc", &ok);
    if (ret == 0 && !ok)
        return fail(ctx, s, KRB5KDC_ERR_KDC_NOT_TRUSTED, "the KDC's "
                    "certificate lacks the PKINIT KDC key purpose%s", "");
    ret = krb5_build_principal_ext(ctx, &tgs, realm->length, realm->data,
                                   KRB5_TGS_NAME_SIZE, KRB5_TGS_NAME,
                                   realm->length, realm->data, 0);
    if (ret == 0)
        ret = tk_cert_principals(ctx, cert, &names);
    for (ok = FALSE, p = names; ret == 0 && p != NULL && *p != NULL; p++)
        ok = ok || krb5_principal_compare(ctx, *p, tgs);
    tk_free_principals(ctx, names);
    krb5_free_principal(ctx, tgs);
    if (ret == 0 && !ok)
        ret = fail(ctx, s, KRB5KDC_ERR_KDC_NOT_TRUSTED, "the KDC's "
                   "certificate does not name krbtgt of its realm%s", "");
    return ret;
}

/* Sign der with the session's identity, encrypt it to the KDC and make it
 * the padata to send. */
static krb5_error_code
seal_request(krb5_context ctx, tk_client_session *s,
             krb5_clpreauth_modreq modreq, const krb5_data *der,
             krb5_pa_data ***pa_out)
{
    krb5_error_code ret;
    krb5_data sig = { 0, 0, NULL }, env = { 0, 0, NULL };
    krb5_pa_data **list = NULL;

    ret = tk_cms_sign(ctx, s->id, der, &sig);
    if (ret == 0 && s->tamper_signed != NULL)
        s->tamper_signed(s, &sig);
    if (ret == 0)
        ret = tk_cms_encrypt(ctx, s->recipient != NULL ? s->recipient :
                             modreq->kdc_cert, &sig, &env);
    if (ret == 0 && s->tamper_padata != NULL)
        s->tamper_padata(s, &env);
    if (ret)
        goto cleanup;
    list = calloc(2, sizeof(*list));
    if (list == NULL || (list[0] = calloc(1, sizeof(**list))) == NULL) {
        free(list);
        ret = ENOMEM;
        goto cleanup;
    }
    list[0]->magic = KV5M_PA_DATA;
    list[0]->pa_type = TK_PADATA;
    list[0]->contents = (krb5_octet *)env.data;
    list[0]->length = env.length;
    env.data = NULL;
    *pa_out = list;
    s->uploaded = TRUE;

cleanup:
    if (sig.data != NULL)
        OPENSSL_cleanse(sig.data, sig.length);
    free(sig.data);
    free(env.data);
    return ret;
}

/* Build the padata carrying the upload. */
static krb5_error_code
make_upload(krb5_context ctx, tk_client_session *s,
            krb5_clpreauth_modreq modreq, krb5_data *body,
            krb5_pa_data ***pa_out)
{
    krb5_error_code ret;
    tk_upload up;
    krb5_data der = { 0, 0, NULL };
    krb5_deltat life;
    size_t i;

    memset(&up, 0, sizeof(up));
    if (modreq->token.length == 0)
        return fail(ctx, s, KRB5_PREAUTH_FAILED, "the KDC sent no freshness "
                    "token%s", "");
    life = s->lifetime;
    if (life <= 0 || life > s->request->max_lifetime)
        life = (krb5_deltat)s->request->max_lifetime;
    /* In the KDC's time, so clock skew cannot push it past the maximum. */
    s->requested_expiry = s->request->kdc_time + life;
    up.realm = s->request->realm;
    up.principal = s->request->principal;
    ret = tk_cert_hash(ctx, modreq->kdc_cert, up.kdc_cert_hash);
    if (ret)
        return ret;
    up.freshness_token = modreq->token;
    tk_sha256(body->data, body->length, up.body_checksum);
    up.kvno = s->kvno;
    up.expiry = s->requested_expiry;
    up.nkeys = s->nkeys;
    for (i = 0; i < s->nkeys; i++)
        up.keys[i] = s->keys[i];
    if (s->tamper_upload != NULL)
        s->tamper_upload(s, &up);
    ret = tk_encode_upload(ctx, &up, &der);
    OPENSSL_cleanse(&up, sizeof(up));
    if (ret == 0)
        ret = seal_request(ctx, s, modreq, &der, pa_out);
    if (der.data != NULL)
        OPENSSL_cleanse(der.data, der.length);
    free(der.data);
    return ret;
}

/* Build the padata carrying a fetch: the upload's binding, no key. */
static krb5_error_code
make_fetch(krb5_context ctx, tk_client_session *s,
           krb5_clpreauth_modreq modreq, krb5_data *body,
           krb5_pa_data ***pa_out)
{
    krb5_error_code ret;
    tk_fetch fetch;
    krb5_data der = { 0, 0, NULL };

    memset(&fetch, 0, sizeof(fetch));
    if (modreq->token.length == 0)
        return fail(ctx, s, KRB5_PREAUTH_FAILED, "the KDC sent no freshness "
                    "token%s", "");
    fetch.realm = s->request->realm;
    fetch.principal = s->request->principal;
    ret = tk_cert_hash(ctx, modreq->kdc_cert, fetch.kdc_cert_hash);
    if (ret)
        return ret;
    fetch.freshness_token = modreq->token;
    tk_sha256(body->data, body->length, fetch.body_checksum);
    ret = tk_encode_fetch(ctx, &fetch, &der);
    if (ret == 0)
        ret = seal_request(ctx, s, modreq, &der, pa_out);
    free(der.data);
    return ret;
}

krb5_deltat
tk_clock_skew(krb5_context ctx)
{
    profile_t profile = NULL;
    char *text = NULL;
    krb5_deltat skew = 300;

    if (krb5_get_profile(ctx, &profile) == 0 &&
        profile_get_string(profile, "libdefaults", "clockskew", NULL, NULL,
                           &text) == 0 && text != NULL)
        (void)krb5_string_to_deltat(text, &skew);
    profile_release_string(text);
    profile_release(profile);
    return skew;
}

/* A signed offer is used only within its validity, by this host's clock
 * give or take the clock skew: an old one replayed is refused. */
static krb5_error_code
check_validity(krb5_context ctx, tk_client_session *s, int64_t signed_at,
               int64_t valid_until)
{
    int64_t now = time(NULL), skew = tk_clock_skew(ctx);
    char detail[128];

    if (now + skew >= signed_at && now - skew <= valid_until)
        return 0;
    snprintf(detail, sizeof(detail), "signed %+lld s from now, valid for "
             "%lld s; clockskew is %lld s", (long long)(signed_at - now),
             (long long)(valid_until - signed_at), (long long)skew);
    return fail(ctx, s, KRB5KDC_ERR_KDC_NOT_TRUSTED, "the KDC's offer is "
                "not valid now (%s)", detail);
}

/* Whether principal (unparsed) and realm name the AS-REQ's client. */
static krb5_boolean
names_client(krb5_context ctx, const char *realm, const char *principal,
             krb5_const_principal client)
{
    krb5_principal named = NULL;
    krb5_boolean ours;

    ours = (krb5_parse_name(ctx, principal, &named) == 0 &&
            krb5_principal_compare(ctx, named, client) &&
            strlen(realm) == client->realm.length &&
            memcmp(realm, client->realm.data, client->realm.length) == 0);
    krb5_free_principal(ctx, named);
    return ours;
}

/* Check a version 1 KeyRequest, signed whole by an older KDC. */
static krb5_error_code
check_request_v1(krb5_context ctx, tk_client_session *s,
                 krb5_kdc_req *request, const tk_key_request *req)
{
    if (!names_client(ctx, req->realm, req->principal, request->client))
        return fail(ctx, s, KRB5KDC_ERR_KDC_NOT_TRUSTED, "the KDC's key "
                    "request is for another principal%s", "");
    /* Signed for this very request: as fresh as its time says. */
    return check_validity(ctx, s, req->kdc_time,
                          req->kdc_time + TK_OFFER_VALIDITY);
}

/* A verified Offer (content) and the hints beside it as the session's
 * request.  The hints are checked against what is signed; a forged one
 * that passes can only get the upload refused. */
static krb5_error_code
request_from_offer(krb5_context ctx, tk_client_session *s,
                   krb5_kdc_req *request, const krb5_data *content,
                   const tk_key_offer *ko, tk_key_request **req_out)
{
    krb5_error_code ret;
    tk_offer *offer = NULL;
    tk_key_request *req = NULL;
    const krb5_data *realm = &request->client->realm;

    *req_out = NULL;
    ret = tk_decode_offer(ctx, content, &offer);
    if (ret)
        return fail(ctx, s, ret, "the KDC's offer is malformed%s", "");
    if (strlen(offer->realm) != realm->length ||
        memcmp(offer->realm, realm->data, realm->length) != 0)
        ret = fail(ctx, s, KRB5KDC_ERR_KDC_NOT_TRUSTED, "the KDC's offer is "
                   "for another realm%s", "");
    if (ret == 0)
        ret = check_validity(ctx, s, offer->signed_at, offer->valid_until);
    /* The expiry is reckoned from the KDC's time: within what it signed. */
    if (ret == 0 && (ko->kdc_time < offer->signed_at ||
                     ko->kdc_time > offer->valid_until))
        ret = fail(ctx, s, KRB5KDC_ERR_KDC_NOT_TRUSTED, "the KDC's time is "
                   "outside the validity of its offer%s", "");
    if (ret == 0 && !names_client(ctx, offer->realm, ko->principal,
                                  request->client))
        ret = fail(ctx, s, KRB5KDC_ERR_KDC_NOT_TRUSTED, "the KDC's key "
                   "request is for another principal%s", "");
    if (ret)
        goto cleanup;
    ret = ENOMEM;
    req = calloc(1, sizeof(*req));
    if (req == NULL)
        goto cleanup;
    /* Named as this client, not as the hint spells it: the upload and the
     * acknowledgement then agree whatever the hint's spelling. */
    ret = krb5_unparse_name(ctx, request->client, &req->principal);
    if (ret)
        goto cleanup;
    req->realm = offer->realm;
    offer->realm = NULL;
    req->enctypes = offer->enctypes;
    offer->enctypes = NULL;
    req->nenctypes = offer->nenctypes;
    req->max_lifetime = offer->max_lifetime;
    req->current_kvno = ko->current_kvno;
    req->kdc_time = ko->kdc_time;
    req->share_delay = ko->share_delay;
    if (ko->nheld > 0) {
        req->held = calloc(ko->nheld, sizeof(*req->held));
        if (req->held == NULL) {
            ret = ENOMEM;
            goto cleanup;
        }
        memcpy(req->held, ko->held, ko->nheld * sizeof(*req->held));
        req->nheld = ko->nheld;
    }
    *req_out = req;
    req = NULL;

cleanup:
    tk_key_request_free(req);
    tk_offer_free(offer);
    return ret;
}

/* Answer the KDC's verified offer (req, taken over), signed by signer. */
static krb5_error_code
answer_offer(krb5_context ctx, tk_client_session *s,
             krb5_clpreauth_modreq modreq, krb5_data *body,
             tk_key_request *req, X509 *signer, krb5_pa_data ***pa_out)
{
    krb5_error_code ret;

    tk_key_request_free(s->request);
    s->request = req;
    X509_free(modreq->kdc_cert);
    modreq->kdc_cert = signer;
    X509_up_ref(signer);
    if (s->dry_run)
        return fail(ctx, s, TK_DRY_RUN_STOP, "dry run: stopping before the "
                    "upload%s", "");
    s->fetch = s->idle = FALSE;
    ret = s->prepare(ctx, s);
    if (ret)
        return ret;
    if (s->idle)
        return fail(ctx, s, TK_DRY_RUN_STOP, "nothing to send: the keytab "
                    "holds every key the KDC holds%s", "");
    if (s->fetch)
        return make_fetch(ctx, s, modreq, body, pa_out);
    return make_upload(ctx, s, modreq, body, pa_out);
}

/* A shared principal's keys in the acknowledgement, encrypted to our
 * certificate, into the session. */
static krb5_error_code
open_shared_keys(krb5_context ctx, tk_client_session *s, const tk_ack *ack)
{
    krb5_error_code ret;
    krb5_data der = { 0, 0, NULL };

    tk_held_keys_free(s->held, s->nheld);
    s->held = NULL;
    s->nheld = 0;
    ret = tk_cms_decrypt(ctx, s->id, &ack->shared_keys, &der);
    if (ret)
        return fail(ctx, s, KRB5KDC_ERR_KDC_NOT_TRUSTED, "the KDC's keys "
                    "for this shared principal are not encrypted to our "
                    "certificate%s", "");
    ret = tk_decode_held_keys(ctx, &der, &s->held, &s->nheld);
    OPENSSL_cleanse(der.data, der.length);
    free(der.data);
    if (ret)
        return fail(ctx, s, ret, "the KDC's keys for this shared principal "
                    "are malformed%s", "");
    return 0;
}

/* The reply key: in the acknowledged version, of the reply's enctype. */
static krb5_error_code
reply_key(krb5_context ctx, tk_client_session *s, const tk_ack *ack,
          krb5_enctype etype, const krb5_keyblock **key_out)
{
    size_t i, j;

    *key_out = NULL;
    if (!ack->fetched) {
        for (i = 0; i < s->nkeys; i++) {
            if (s->keys[i].enctype == etype)
                *key_out = &s->keys[i];
        }
    }
    for (i = 0; ack->fetched && i < s->nheld; i++) {
        for (j = 0; s->held[i].kvno == ack->kvno && j < s->held[i].nkeys;
             j++) {
            if (s->held[i].keys[j].enctype == etype)
                *key_out = &s->held[i].keys[j];
        }
    }
    if (*key_out == NULL)
        return fail(ctx, s, KRB5_PROG_ETYPE_NOSUPP, "the reply is encrypted "
                    "in an enctype we hold no key of%s", "");
    return 0;
}

/* The acknowledgement, in the AS-REP: also the moment to hand libkrb5 the
 * key that encrypts the reply (the uploaded one, or for an answer that
 * stored nothing, the newest key of a shared principal it carries). */
static krb5_error_code
acknowledgement(krb5_context ctx, tk_client_session *s,
                krb5_clpreauth_modreq modreq, krb5_clpreauth_callbacks cb,
                krb5_clpreauth_rock rock, const krb5_data *content,
                X509 *signer)
{
    krb5_error_code ret;
    tk_ack *ack = NULL;
    const krb5_keyblock *key;

    if (modreq->kdc_cert == NULL || X509_cmp(signer, modreq->kdc_cert) != 0)
        return fail(ctx, s, KRB5KDC_ERR_KDC_NOT_TRUSTED, "the "
                    "acknowledgement is signed by another certificate than "
                    "the key request%s", "");
    ret = tk_decode_ack(ctx, content, &ack);
    if (ret)
        return fail(ctx, s, ret, "the KDC's acknowledgement is "
                    "malformed%s", "");
    if (strcmp(ack->principal, s->request->principal) != 0 ||
        (!ack->fetched && (s->fetch || ack->kvno != s->kvno)) ||
        (ack->fetched && ack->shared_keys.length == 0)) {
        tk_ack_free(ack);
        return fail(ctx, s, KRB5KDC_ERR_KDC_NOT_TRUSTED, "the KDC "
                    "acknowledged another key%s", "");
    }
    tk_ack_free(s->ack);
    s->ack = ack;
    if (ack->shared_keys.length > 0) {
        ret = open_shared_keys(ctx, s, ack);
        if (ret)
            return ret;
    }
    ret = reply_key(ctx, s, ack, cb->get_etype(ctx, rock), &key);
    if (ret)
        return ret;
    return cb->set_as_key(ctx, rock, key);
}

/* Open a SignedData from the KDC: its content and signer, once the signer
 * is found to speak for the KDC of realm. */
static krb5_error_code
open_from_kdc(krb5_context ctx, tk_client_session *s, const krb5_data *der,
              const krb5_data *realm, krb5_data *content_out,
              X509 **signer_out)
{
    krb5_error_code ret;
    X509 *signer = NULL;
    STACK_OF(X509) *certs = NULL;
    const char *msg;

    *signer_out = NULL;
    ret = tk_cms_open_signed(ctx, der, content_out, &signer, &certs);
    if (ret) {
        msg = krb5_get_error_message(ctx, ret);
        ret = fail(ctx, s, KRB5KDC_ERR_KDC_NOT_TRUSTED, "the KDC's message "
                   "does not carry a valid signature: %s", msg);
        krb5_free_error_message(ctx, msg);
        return ret;
    }
    ret = check_kdc(ctx, s, signer, certs, realm);
    sk_X509_pop_free(certs, X509_free);
    if (ret) {
        X509_free(signer);
        free(content_out->data);
        content_out->data = NULL;
        return ret;
    }
    *signer_out = signer;
    return 0;
}

static krb5_error_code
tk_cl_process(krb5_context ctx, krb5_clpreauth_moddata md,
              krb5_clpreauth_modreq modreq, krb5_get_init_creds_opt *opt,
              krb5_clpreauth_callbacks cb, krb5_clpreauth_rock rock,
              krb5_kdc_req *request, krb5_data *encoded_request_body,
              krb5_data *encoded_previous_request, krb5_pa_data *pa_data,
              krb5_prompter_fct prompter, void *prompter_data,
              krb5_pa_data ***pa_data_out)
{
    krb5_error_code ret;
    tk_client_session *s = current;
    krb5_data der, copy = { 0, 0, NULL }, content = { 0, 0, NULL };
    X509 *signer = NULL;
    tk_key_offer *ko = NULL;
    tk_key_request *req = NULL;

    *pa_data_out = NULL;
    if (s == NULL || modreq == NULL)
        return KRB5_PLUGIN_NO_HANDLE;
    if (pa_data->pa_type == KRB5_PADATA_AS_FRESHNESS) {
        free(modreq->token.data);
        modreq->token.data = malloc(pa_data->length + 1);
        if (modreq->token.data == NULL)
            return ENOMEM;
        memcpy(modreq->token.data, pa_data->contents, pa_data->length);
        modreq->token.length = pa_data->length;
        return 0;
    }
    der.data = (char *)pa_data->contents;
    der.length = pa_data->length;
    /* The optimistic first request: send nothing, wait for the KDC. */
    if (pa_data->length == 0)
        return 0;
    if (s->tamper_offer != NULL) {
        copy.data = malloc(der.length);
        if (copy.data == NULL)
            return ENOMEM;
        memcpy(copy.data, der.data, der.length);
        copy.length = der.length;
        s->tamper_offer(s, &copy);
        der = copy;
    }
    if (tk_decode_key_offer(ctx, &der, &ko) == 0) {
        /* PREAUTH_REQUIRED: the signed offer and its hints. */
        ret = open_from_kdc(ctx, s, &ko->signed_offer,
                            &request->client->realm, &content, &signer);
        if (ret == 0)
            ret = request_from_offer(ctx, s, request, &content, ko, &req);
        if (ret == 0) {
            ret = answer_offer(ctx, s, modreq, encoded_request_body, req,
                               signer, pa_data_out);
        }
        goto cleanup;
    }
    krb5_clear_error_message(ctx);
    ret = open_from_kdc(ctx, s, &der, &request->client->realm, &content,
                        &signer);
    if (ret)
        goto cleanup;
    /* The content type tells an older KDC's key request from an
     * acknowledgement. */
    if (tk_decode_key_request(ctx, &content, &req) == 0) {
        ret = check_request_v1(ctx, s, request, req);
        if (ret == 0) {
            ret = answer_offer(ctx, s, modreq, encoded_request_body, req,
                               signer, pa_data_out);
        } else {
            tk_key_request_free(req);
        }
    } else {
        krb5_clear_error_message(ctx);
        ret = acknowledgement(ctx, s, modreq, cb, rock, &content, signer);
    }

cleanup:
    free(content.data);
    free(copy.data);
    X509_free(signer);
    tk_key_offer_free(ko);
    return ret;
}

/* A refusal: keep the KDC's reason for the caller. */
static krb5_error_code
tk_cl_tryagain(krb5_context ctx, krb5_clpreauth_moddata md,
               krb5_clpreauth_modreq modreq, krb5_get_init_creds_opt *opt,
               krb5_clpreauth_callbacks cb, krb5_clpreauth_rock rock,
               krb5_kdc_req *request, krb5_data *encoded_request_body,
               krb5_data *encoded_previous_request, krb5_preauthtype pa_type,
               krb5_error *error, krb5_pa_data **error_padata,
               krb5_prompter_fct prompter, void *prompter_data,
               krb5_pa_data ***pa_data_out)
{
    tk_client_session *s = current;
    krb5_data der;
    char *text = NULL, *primary = NULL;
    int reason;

    *pa_data_out = NULL;
    for (; s != NULL && error_padata != NULL && *error_padata != NULL;
         error_padata++) {
        if ((*error_padata)->pa_type != TK_PADATA)
            continue;
        der.data = (char *)(*error_padata)->contents;
        der.length = (*error_padata)->length;
        if (tk_decode_error(ctx, &der, &reason, &text, &primary) == 0) {
            s->reason = reason;
            snprintf(s->message, sizeof(s->message), "the KDC refused the "
                     "%s: %s: %s", s->fetch ? "fetch" : "upload",
                     tk_reason_name(reason), text);
            snprintf(s->primary, sizeof(s->primary), "%s",
                     primary != NULL ? primary : "");
            free(text);
            free(primary);
        }
    }
    /* Never retry: a refused upload is final. */
    return error->error + ERROR_TABLE_BASE_krb5;
}

static krb5_preauthtype client_pa_types[] = {
    TK_PADATA, KRB5_PADATA_AS_FRESHNESS, 0
};

krb5_error_code
clpreauth_tempkey_initvt(krb5_context ctx, int maj_ver, int min_ver,
                         krb5_plugin_vtable vtable)
{
    krb5_clpreauth_vtable vt;

    if (maj_ver != 1)
        return KRB5_PLUGIN_VER_NOTSUPP;
    vt = (krb5_clpreauth_vtable)vtable;
    vt->name = "tempkey";
    vt->pa_type_list = client_pa_types;
    vt->flags = tk_cl_flags;
    vt->request_init = tk_cl_request_init;
    vt->request_fini = tk_cl_request_fini;
    vt->process = tk_cl_process;
    vt->tryagain = tk_cl_tryagain;
    return 0;
}
