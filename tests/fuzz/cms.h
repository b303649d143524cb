/* cms.h - the test PKI the CMS harnesses load once (tests/fuzz/data), and
 * the checks the KDC runs on a signed upload once its signature verifies. */
#ifndef TK_FUZZ_CMS_H
#define TK_FUZZ_CMS_H

#include "fuzz.h"
#include "tkproto.h"

#include <openssl/err.h>

static tk_identity *fuzz_kdc;
static tk_trust *fuzz_trust;

static inline void
fuzz_load_pki(void)
{
    krb5_context ctx = fuzz_context();
    char anchor[4200];
    char *anchors[2] = { anchor, NULL };
    char cert[4200];
    krb5_error_code ret;

    snprintf(anchor, sizeof(anchor), "FILE:%s", fuzz_data_file("ca.pem"));
    snprintf(cert, sizeof(cert), "%s", fuzz_data_file("kdc.pem"));
    ret = tk_trust_load(ctx, anchors, NULL, NULL, &fuzz_trust);
    if (ret == 0)
        ret = tk_identity_load(ctx, cert, fuzz_data_file("kdc-TEST-KEY.pem"),
                               &fuzz_kdc);
    if (ret) {
        fprintf(stderr, "cannot load the test PKI: %s (set TK_FUZZ_DATA)\n",
                krb5_get_error_message(ctx, ret));
        exit(1);
    }
}

/*
 * What the KDC does with a SignedData (preauth/kdc.c verify): open it, check
 * the signer's chain to the anchors, its key purpose and SAN, hash its key
 * for a pinned-key principal, and decode the upload.  The certificate checks
 * run here whatever the chain's verdict: CMS_verify checks only the
 * signature over the content, so a signer certificate with mutated
 * extensions still gets this far, and the parsers must hold for it.  Return
 * whether the chain verified.
 */
static inline int
fuzz_signed(krb5_context ctx, const krb5_data *der)
{
    krb5_data content = { 0, 0, NULL };
    X509 *signer = (X509 *)1;
    STACK_OF(X509) *certs = NULL;
    krb5_principal *names = NULL;
    unsigned char hash[TK_HASH_LEN];
    krb5_boolean ok;
    tk_upload *up = NULL;
    tk_key_request *req = NULL;
    tk_offer *offer = NULL;
    int reason;

    if (tk_cms_open_signed(ctx, der, &content, &signer, &certs) != 0) {
        FUZZ_CHECK(signer == NULL && certs == NULL && content.data == NULL);
        return 0;
    }
    FUZZ_CHECK(signer != NULL);
    reason = tk_verify_chain(ctx, fuzz_trust, signer, certs);
    FUZZ_CHECK(reason >= 0 && reason <= TK_REASON_TOO_MANY_KEYS);
    FUZZ_CHECK(tk_spki_hash(ctx, signer, hash) == 0);
    FUZZ_CHECK(tk_cert_has_eku(ctx, signer, "pkinit", &ok) == 0);
    if (tk_cert_principals(ctx, signer, &names) == 0) {
        FUZZ_CHECK(names != NULL);
        tk_free_principals(ctx, names);
    }
    /* An upload for the KDC, or an offer (or an older KDC's key request)
     * for ktupdate. */
    if (tk_decode_upload(ctx, &content, &up) == 0)
        tk_upload_free(up);
    else if (tk_decode_offer(ctx, &content, &offer) == 0)
        tk_offer_free(offer);
    else if (tk_decode_key_request(ctx, &content, &req) == 0)
        tk_key_request_free(req);
    X509_free(signer);
    sk_X509_pop_free(certs, X509_free);
    free(content.data);
    ERR_clear_error();
    return reason == 0;
}

#endif /* TK_FUZZ_CMS_H */
