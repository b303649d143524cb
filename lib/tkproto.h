/* tkproto.h - the upload protocol's messages (doc/protocol.md) and the
 * certificate and CMS operations around them (OpenSSL and libkrb5 only). */
#ifndef TKPROTO_H
#define TKPROTO_H

#include <stddef.h>
#include <stdint.h>
#include <krb5.h>

#include <openssl/x509.h>

/* The padata type of every message of the protocol: unassigned in the IANA
 * "Pre-authentication and Typed Data" registry, far above the assigned
 * numbers, and a two-byte DER INTEGER. */
#define TK_PADATA 16931
#define TK_PROTO_VERSION 1
#define TK_HASH_LEN 32
#define TK_MAX_KEYS 8
/* Bounds on hostile input (DESIGN section 12), each checked before the work
 * it bounds and refused with a reason of its own.  Uploads are a few KB;
 * anything far larger is refused unread. */
#define TK_MAX_MESSAGE 65536
/* Certificates one SignedData may carry: a leaf, its intermediates and
 * perhaps the root, with room to spare. */
#define TK_MAX_CERTS 8
/* Intermediate CAs between a leaf and its anchor (OpenSSL's verify depth). */
#define TK_MAX_CHAIN_DEPTH 4
/* RSA (and DSA) modulus of any certificate a SignedData carries: a larger
 * one costs the verifier quadratically more for no security it needs. */
#define TK_MAX_KEY_BITS 4096
/* id-pkinit-san principal names one certificate may carry. */
#define TK_MAX_NAMES 16

/*
 * The KDC signs the realm-wide part of its offer once per TK_OFFER_INTERVAL
 * seconds and sends that same SignedData with every PREAUTH_REQUIRED in the
 * meantime: no private-key operation per unauthenticated request (DESIGN
 * 12).  An offer is valid for TK_OFFER_VALIDITY seconds from its signing, so
 * that the last copy sent still has an interval to be used in.
 */
#define TK_OFFER_INTERVAL 60
#define TK_OFFER_VALIDITY (2 * TK_OFFER_INTERVAL)

/* Key versions one shared principal's answer may carry: the cap on live
 * versions of the KDB module (TK_MAX_KEY_VERSIONS). */
#define TK_MAX_HELD 64

/* A key version a shared principal's KDC holds, without the key: the
 * KeyOffer's hint of what a member may lack. */
typedef struct tk_key_info {
    krb5_kvno kvno;
    int64_t expiry;
    int64_t active_at;          /* the KDC issues no ticket in it before
                                 * then; 0: from the start */
} tk_key_info;

/* A key version with its keys, as the KDC hands it to a member. */
typedef struct tk_held_key {
    krb5_kvno kvno;
    int64_t expiry;
    int64_t active_at;
    krb5_keyblock keys[TK_MAX_KEYS];
    size_t nkeys;
} tk_held_key;

/* The realm-wide offer (an Offer), signed by the KDC. */
typedef struct tk_offer {
    char *realm;
    krb5_enctype *enctypes;
    size_t nenctypes;
    int64_t max_lifetime;       /* seconds */
    int64_t signed_at;          /* the KDC's clock when it signed */
    int64_t valid_until;        /* not before signed_at */
} tk_offer;

/* The padata of PA-TEMPKEY in PREAUTH_REQUIRED (a KeyOffer): the signed
 * offer as the KDC signed it, and per-principal facts that are not signed,
 * which the client takes as hints. */
typedef struct tk_key_offer {
    krb5_data signed_offer;     /* CMS SignedData of an Offer */
    char *principal;            /* the AS-REQ client, unparsed */
    krb5_kvno current_kvno;     /* highest stored, 0 if none */
    int64_t kdc_time;           /* the KDC's clock when it answered */
    /* A shared principal (share_delay > 0): the live versions it holds. */
    krb5_deltat share_delay;
    tk_key_info *held;
    size_t nheld;
} tk_key_offer;

/* The KDC's offer as the client takes it (the session's, which ktupdate
 * reads): from a verified Offer and its hints, or from a version 1
 * KeyRequest, which older KDCs sign whole for each request. */
typedef struct tk_key_request {
    char *realm;
    char *principal;            /* unparsed client principal */
    krb5_enctype *enctypes;
    size_t nenctypes;
    int64_t max_lifetime;       /* seconds */
    krb5_kvno current_kvno;     /* highest stored, 0 if none */
    int64_t kdc_time;
    krb5_deltat share_delay;    /* 0: not shared (the KeyOffer's hints) */
    tk_key_info *held;
    size_t nheld;
} tk_key_request;

/* The server's upload, signed by the server and encrypted to the KDC. */
typedef struct tk_upload {
    char *realm;
    char *principal;
    unsigned char kdc_cert_hash[TK_HASH_LEN];
    krb5_data freshness_token;
    unsigned char body_checksum[TK_HASH_LEN];
    krb5_kvno kvno;
    krb5_keyblock keys[TK_MAX_KEYS];
    size_t nkeys;
    int64_t expiry;             /* requested */
} tk_upload;

/* A member's request for the keys of a shared principal: bound to the
 * exchange as an upload is, with no key of its own. */
typedef struct tk_fetch {
    char *realm;
    char *principal;
    unsigned char kdc_cert_hash[TK_HASH_LEN];
    krb5_data freshness_token;
    unsigned char body_checksum[TK_HASH_LEN];
} tk_fetch;

/* The KDC's acknowledgement, in the AS-REP. */
typedef struct tk_ack {
    char *principal;
    krb5_kvno kvno;
    int64_t expiry;             /* accepted */
    int64_t refresh_by;
    /* For an adopted principal (doc/design.md, "Adoption"): its long-term
     * keys, up to this kvno (0: not adopted), are gone from the KDC, and
     * no ticket in them ends after long_term_until. */
    krb5_kvno long_term_kvno;
    int64_t long_term_until;
    /* For a shared principal: every live key version it holds (a
     * HeldKeys), encrypted to the certificate that signed the request;
     * the delay; whether nothing was stored (fetched: kvno is then the
     * newest version held); when the KDC starts issuing tickets in kvno
     * (0: already). */
    krb5_data shared_keys;
    krb5_deltat share_delay;
    krb5_boolean fetched;
    int64_t active_at;
} tk_ack;

/* Why the KDC refused an upload: carried in the error's e-data. */
typedef enum {
    TK_REASON_MALFORMED = 1,
    TK_REASON_NOT_FOR_THIS_KDC = 2,
    TK_REASON_BAD_SIGNATURE = 3,
    TK_REASON_UNTRUSTED_CERTIFICATE = 4,
    TK_REASON_CERTIFICATE_EXPIRED = 5,
    TK_REASON_CERTIFICATE_REVOKED = 6,
    TK_REASON_WRONG_KEY_PURPOSE = 7,
    TK_REASON_NAME_MISMATCH = 8,
    TK_REASON_PINNED_KEY_MISMATCH = 9,
    TK_REASON_KDC_CERTIFICATE_MISMATCH = 10,
    TK_REASON_STALE_FRESHNESS_TOKEN = 11,
    TK_REASON_REQUEST_CHECKSUM_MISMATCH = 12,
    TK_REASON_KVNO_NOT_ABOVE_STORED = 13,
    TK_REASON_EXPIRY_NOT_ALLOWED = 14,
    TK_REASON_ENCTYPE_NOT_ALLOWED = 15,
    TK_REASON_BAD_KEY_LENGTH = 16,
    TK_REASON_NOT_ENROLLABLE = 17,
    TK_REASON_NOT_PRIMARY = 18,
    TK_REASON_STORE_FAILED = 19,
    TK_REASON_TOO_MANY_KEYS = 20,
    TK_REASON_KVNO_NOT_NEXT = 21,
    TK_REASON_CRL_EXPIRED = 22,
    TK_REASON_MESSAGE_TOO_LARGE = 23,
    TK_REASON_TOO_MANY_CERTIFICATES = 24,
    TK_REASON_CHAIN_TOO_LONG = 25,
    TK_REASON_KEY_TOO_LARGE = 26,
    TK_REASON_TOO_MANY_NAMES = 27,
    TK_REASON_NOT_ADOPTED = 28,
    TK_REASON_NOT_SHARED = 29,
    TK_REASON_NO_KEY_TO_FETCH = 30
} tk_reason;
/* The highest reason: every one up to it has a name, code and text. */
#define TK_REASON_MAX TK_REASON_NO_KEY_TO_FETCH

/*
 * The one rule for an upload's key version, given the highest one ever
 * stored: it must be the next one, or the newest again (a retransmission,
 * which the store tells from a replay by comparing the keys).  Returns 0,
 * or a tk_reason with a message on ctx.
 */
int tk_upload_kvno_reason(krb5_context ctx, krb5_kvno stored,
                          krb5_kvno kvno);

/*
 * When a member of a shared principal should upload the next key, given
 * the newest key version the KDC holds: two thirds into that key's use
 * (from active_at, or from now if it was used at once), and early enough
 * that the next key's delay ends before this key expires.
 */
int64_t tk_shared_refresh_by(int64_t expiry, int64_t active_at, int64_t now,
                             krb5_deltat delay);

/* The short name of a reason ("kvno-not-above-stored"), never NULL. */
const char *tk_reason_name(int reason);
/* The fixed sentence a refusal for reason tells the client, never NULL. */
const char *tk_reason_text(int reason);
/* The Kerberos error code that carries a reason through MIT's KDC, which
 * keeps e-data only for some codes. */
krb5_error_code tk_reason_code(int reason);

void tk_key_request_free(tk_key_request *req);
void tk_offer_free(tk_offer *offer);
void tk_key_offer_free(tk_key_offer *ko);
void tk_upload_free(tk_upload *up);       /* zeroes the keys */
void tk_ack_free(tk_ack *ack);
void tk_fetch_free(tk_fetch *fetch);
/* Free n held keys and the array, zeroing the keys. */
void tk_held_keys_free(tk_held_key *keys, size_t n);

/* Encoders return DER in *der_out (free with free(); an upload's DER holds
 * keys: zero it before freeing). */
krb5_error_code tk_encode_key_request(krb5_context ctx,
                                      const tk_key_request *req,
                                      krb5_data *der_out);
krb5_error_code tk_encode_offer(krb5_context ctx, const tk_offer *offer,
                                krb5_data *der_out);
/* The KDC's per-request work: signed_offer is copied into the DER as is. */
krb5_error_code tk_encode_key_offer(krb5_context ctx, const tk_key_offer *ko,
                                    krb5_data *der_out);
krb5_error_code tk_encode_upload(krb5_context ctx, const tk_upload *up,
                                 krb5_data *der_out);
krb5_error_code tk_encode_ack(krb5_context ctx, const tk_ack *ack,
                              krb5_data *der_out);
krb5_error_code tk_encode_fetch(krb5_context ctx, const tk_fetch *fetch,
                                krb5_data *der_out);
/* HeldKeys, 1 to TK_MAX_HELD versions: not a TempkeyMessage (it travels
 * encrypted inside an Ack).  The DER holds keys: zero it. */
krb5_error_code tk_encode_held_keys(krb5_context ctx,
                                    const tk_held_key *keys, size_t n,
                                    krb5_data *der_out);
/* primary (may be NULL) names the primary KDC, host[:port], in a
 * not-primary refusal. */
krb5_error_code tk_encode_error(krb5_context ctx, int reason,
                                const char *text, const char *primary,
                                krb5_data *der_out);

/* Decoders refuse anything malformed with KRB5KDC_ERR_PREAUTH_FAILED-free
 * codes: ASN1_PARSE_ERROR or ASN1_BAD_FORMAT, and a message saying what. */
krb5_error_code tk_decode_key_request(krb5_context ctx, const krb5_data *der,
                                      tk_key_request **req_out);
krb5_error_code tk_decode_offer(krb5_context ctx, const krb5_data *der,
                                tk_offer **offer_out);
krb5_error_code tk_decode_key_offer(krb5_context ctx, const krb5_data *der,
                                    tk_key_offer **ko_out);
krb5_error_code tk_decode_upload(krb5_context ctx, const krb5_data *der,
                                 tk_upload **up_out);
krb5_error_code tk_decode_ack(krb5_context ctx, const krb5_data *der,
                              tk_ack **ack_out);
krb5_error_code tk_decode_fetch(krb5_context ctx, const krb5_data *der,
                                tk_fetch **fetch_out);
krb5_error_code tk_decode_held_keys(krb5_context ctx, const krb5_data *der,
                                    tk_held_key **keys_out, size_t *n_out);
/* *primary_out is NULL unless the error names the primary KDC. */
krb5_error_code tk_decode_error(krb5_context ctx, const krb5_data *der,
                                int *reason_out, char **text_out,
                                char **primary_out);

/* ---- Certificates and CMS (pki.c). */

/* A certificate, its private key and the chain to send with it. */
typedef struct tk_identity {
    X509 *cert;
    EVP_PKEY *key;
    STACK_OF(X509) *chain;      /* intermediates, may be empty */
} tk_identity;

/* What a verifier trusts: anchors, a pool of intermediates and revocation
 * lists (pki.c). */
typedef struct tk_trust tk_trust;

/* Load an identity from a certificate file (PEM, the leaf first, then any
 * intermediates and the root) and a key file (PEM).  The chain to send
 * keeps the intermediates only: a self-signed certificate (the trust
 * anchor) is not sent, since the peer verifies against its own copy. */
krb5_error_code tk_identity_load(krb5_context ctx, const char *cert_file,
                                 const char *key_file, tk_identity **id_out);
/* Load a PKINIT-style identity string: "FILE:cert.pem,key.pem". */
krb5_error_code tk_identity_load_pkinit(krb5_context ctx, const char *spec,
                                        tk_identity **id_out);
void tk_identity_free(tk_identity *id);

/* Build trust from PKINIT-style lists ("FILE:path" or "DIR:path" anchors,
 * "FILE:path" pool and CRL files); any list may be NULL.  A CRL file holds
 * one or more PEM CRLs or one DER CRL; one that cannot be read or holds no
 * CRL is an error naming it. */
krb5_error_code tk_trust_load(krb5_context ctx, char **anchors, char **pool,
                              char **crls, tk_trust **trust_out);
void tk_trust_free(tk_trust *trust);
/*
 * Reload the CRL files that changed (device, inode, size, modification or
 * change time) since they were last read: one stat() per file, no read when
 * nothing changed.  A changed file that cannot be used leaves the CRLs read
 * from it before in force.  report (may be NULL) is called once for each
 * file read anew, with error NULL and the number of CRLs it holds, or with
 * what is wrong (that version of the file is not reported again).  Returns
 * 0, or ENOMEM with the CRLs in force unchanged.  Not thread-safe.
 */
typedef void (*tk_crl_report_fn)(void *arg, const char *spec, int ncrls,
                                 const char *error);
krb5_error_code tk_trust_refresh(krb5_context ctx, tk_trust *trust,
                                 tk_crl_report_fn report, void *arg);

/* SHA-256 of a certificate's DER, and of its SubjectPublicKeyInfo. */
krb5_error_code tk_cert_hash(krb5_context ctx, X509 *cert,
                             unsigned char hash[TK_HASH_LEN]);
krb5_error_code tk_spki_hash(krb5_context ctx, X509 *cert,
                             unsigned char hash[TK_HASH_LEN]);
void tk_sha256(const void *data, size_t len, unsigned char hash[TK_HASH_LEN]);

/* CMS SignedData of content by id, with id's certificate and chain. */
krb5_error_code tk_cms_sign(krb5_context ctx, const tk_identity *id,
                            const krb5_data *content, krb5_data *der_out);
/*
 * Check a SignedData's signature against the signer certificate it carries
 * and return the content, the signer certificate and the certificates the
 * SignedData carries (for chain building).  The chain is not checked here.
 */
krb5_error_code tk_cms_open_signed(krb5_context ctx, const krb5_data *der,
                                   krb5_data *content_out, X509 **signer_out,
                                   STACK_OF(X509) **certs_out);
/*
 * The same, bounded for hostile input: before the signature is checked,
 * the message's size (TK_MAX_MESSAGE), its one signer, the number of
 * certificates (TK_MAX_CERTS) and each one's key size (TK_MAX_KEY_BITS).
 * On failure *reason_out is the tk_reason to refuse with (0 if the failure
 * is not the message's, e.g. ENOMEM).
 */
krb5_error_code tk_cms_open_signed_bounded(krb5_context ctx,
                                           const krb5_data *der,
                                           krb5_data *content_out,
                                           X509 **signer_out,
                                           STACK_OF(X509) **certs_out,
                                           int *reason_out);
/* Check cert's chain to the trust anchors (with intermediates from extra
 * and the pool), its validity and, if CRLs were given, the revocation of
 * every certificate in it whose issuer has a CRL (an expired CRL refuses).
 * Returns a reason (tk_reason) with a message, 0 if trusted. */
int tk_verify_chain(krb5_context ctx, const tk_trust *trust, X509 *cert,
                    STACK_OF(X509) *extra);
/* EnvelopedData of content to recipient's public key (RSA-OAEP or ECDH,
 * AES-256-CBC). */
krb5_error_code tk_cms_encrypt(krb5_context ctx, X509 *recipient,
                               const krb5_data *content, krb5_data *der_out);
/* Decrypt an EnvelopedData with id's key; the caller zeroes and frees the
 * content. */
krb5_error_code tk_cms_decrypt(krb5_context ctx, const tk_identity *id,
                               const krb5_data *der, krb5_data *content_out);

/* Whether cert carries the extended key usage named by eku: "pkinit"
 * (id-pkinit-KPClientAuth), "pkinit-kdc", "client" (id-kp-clientAuth),
 * "none" (no requirement), or a dotted OID. */
krb5_error_code tk_cert_has_eku(krb5_context ctx, X509 *cert,
                                const char *eku, krb5_boolean *out);
/* Check that eku is a value tk_cert_has_eku() understands. */
krb5_error_code tk_check_eku(krb5_context ctx, const char *eku);
/* The principals named by cert's id-pkinit-san otherNames (RFC 4556);
 * *princs_out is NULL-terminated, free with tk_free_principals().  More
 * than TK_MAX_NAMES of them: KRB5KDC_ERR_CLIENT_NAME_MISMATCH. */
krb5_error_code tk_cert_principals(krb5_context ctx, X509 *cert,
                                   krb5_principal **princs_out);
void tk_free_principals(krb5_context ctx, krb5_principal *princs);

/* Turn the OpenSSL error queue into a message on ctx for code. */
krb5_error_code tk_openssl_error(krb5_context ctx, krb5_error_code code,
                                 const char *what);

#endif /* TKPROTO_H */
