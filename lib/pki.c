/* pki.c - certificates, trust and CMS for the upload protocol (OpenSSL). */
#include "tkproto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/asn1t.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

/* KRB5PrincipalName (RFC 4556 section 3.2.2), the value of id-pkinit-san. */
typedef struct {
    ASN1_INTEGER *name_type;
    STACK_OF(ASN1_GENERALSTRING) *name_string;
} TK_PRINCIPAL_NAME;

typedef struct {
    ASN1_GENERALSTRING *realm;
    TK_PRINCIPAL_NAME *principal_name;
} TK_KRB5_PRINCIPAL_NAME;

DECLARE_ASN1_FUNCTIONS(TK_PRINCIPAL_NAME)
DECLARE_ASN1_FUNCTIONS(TK_KRB5_PRINCIPAL_NAME)

ASN1_SEQUENCE(TK_PRINCIPAL_NAME) = {
    ASN1_EXP(TK_PRINCIPAL_NAME, name_type, ASN1_INTEGER, 0),
    ASN1_EXP_SEQUENCE_OF(TK_PRINCIPAL_NAME, name_string, ASN1_GENERALSTRING,
                         1),
} ASN1_SEQUENCE_END(TK_PRINCIPAL_NAME)

ASN1_SEQUENCE(TK_KRB5_PRINCIPAL_NAME) = {
    ASN1_EXP(TK_KRB5_PRINCIPAL_NAME, realm, ASN1_GENERALSTRING, 0),
    ASN1_EXP(TK_KRB5_PRINCIPAL_NAME, principal_name, TK_PRINCIPAL_NAME, 1),
} ASN1_SEQUENCE_END(TK_KRB5_PRINCIPAL_NAME)

IMPLEMENT_ASN1_FUNCTIONS(TK_PRINCIPAL_NAME)
IMPLEMENT_ASN1_FUNCTIONS(TK_KRB5_PRINCIPAL_NAME)

#define OID_PKINIT_SAN "1.3.6.1.5.2.2"
#define OID_PKINIT_CLIENT "1.3.6.1.5.2.3.4"
#define OID_PKINIT_KDC "1.3.6.1.5.2.3.5"
#define OID_CLIENT_AUTH "1.3.6.1.5.5.7.3.2"

krb5_error_code
tk_openssl_error(krb5_context ctx, krb5_error_code code, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256];

    if (e != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
        krb5_set_error_message(ctx, code, "%s: %s", what, buf);
    } else {
        krb5_set_error_message(ctx, code, "%s", what);
    }
    ERR_clear_error();
    return code;
}

void
tk_sha256(const void *data, size_t len, unsigned char hash[TK_HASH_LEN])
{
    unsigned int n = TK_HASH_LEN;

    EVP_Digest(data, len, hash, &n, EVP_sha256(), NULL);
}

krb5_error_code
tk_cert_hash(krb5_context ctx, X509 *cert, unsigned char hash[TK_HASH_LEN])
{
    unsigned int n = TK_HASH_LEN;

    if (!X509_digest(cert, EVP_sha256(), hash, &n))
        return tk_openssl_error(ctx, ENOMEM, "hashing a certificate");
    return 0;
}

krb5_error_code
tk_spki_hash(krb5_context ctx, X509 *cert, unsigned char hash[TK_HASH_LEN])
{
    unsigned char *der = NULL;
    int len;

    len = i2d_PUBKEY(X509_get0_pubkey(cert), &der);
    if (len <= 0)
        return tk_openssl_error(ctx, ENOMEM, "encoding a public key");
    tk_sha256(der, len, hash);
    OPENSSL_free(der);
    return 0;
}

/* ---- Identities and trust. */

void
tk_identity_free(tk_identity *id)
{
    if (id == NULL)
        return;
    X509_free(id->cert);
    EVP_PKEY_free(id->key);
    sk_X509_pop_free(id->chain, X509_free);
    free(id);
}

/* Read every certificate of a PEM file into *certs_out (the first one first).
 */
static krb5_error_code
read_certs(krb5_context ctx, const char *file, STACK_OF(X509) **certs_out)
{
    STACK_OF(X509) *certs;
    X509 *x;
    FILE *f;

    *certs_out = NULL;
    f = fopen(file, "r");
    if (f == NULL) {
        krb5_set_error_message(ctx, errno, "cannot read %s: %s", file,
                               strerror(errno));
        return errno;
    }
    certs = sk_X509_new_null();
    while (certs != NULL && (x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_push(certs, x)) {
            X509_free(x);
            break;
        }
    }
    fclose(f);
    ERR_clear_error();          /* the end of the file */
    if (certs == NULL || sk_X509_num(certs) == 0) {
        sk_X509_pop_free(certs, X509_free);
        krb5_set_error_message(ctx, KRB5_CONFIG_BADFORMAT, "%s holds no PEM "
                               "certificate", file);
        return KRB5_CONFIG_BADFORMAT;
    }
    *certs_out = certs;
    return 0;
}

/* Key files are read whole; a PEM private key is a few KB. */
#define MAX_KEY_FILE (1024 * 1024)

/*
 * Read a PEM private key file into *key_out (NULL if it holds none).  Read
 * with read(2) into a buffer zeroed afterwards, not through stdio, whose
 * buffer would be freed by fclose() with the key's text in it.
 */
static krb5_error_code
read_key(krb5_context ctx, const char *file, EVP_PKEY **key_out)
{
    krb5_error_code ret = 0;
    unsigned char *buf = NULL;
    size_t len = 0;
    ssize_t n;
    BIO *bio;
    int fd;

    *key_out = NULL;
    fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        ret = errno;
        goto cleanup;
    }
    buf = malloc(MAX_KEY_FILE);
    if (buf == NULL) {
        ret = ENOMEM;
        goto cleanup;
    }
    while (len < MAX_KEY_FILE) {
        n = read(fd, buf + len, MAX_KEY_FILE - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ret = errno;
            goto cleanup;
        }
        if (n == 0)
            break;
        len += n;
    }
    if (len == MAX_KEY_FILE) {
        ret = EFBIG;
        goto cleanup;
    }
    bio = BIO_new_mem_buf(buf, (int)len);
    if (bio == NULL) {
        ret = ENOMEM;
        goto cleanup;
    }
    *key_out = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);

cleanup:
    if (ret)
        krb5_set_error_message(ctx, ret, "cannot read %s: %s", file,
                               strerror(ret));
    if (fd >= 0)
        close(fd);
    if (buf != NULL)
        OPENSSL_cleanse(buf, len);
    free(buf);
    return ret;
}

/*
 * Drop the self-signed certificates from the chain to send.  A verifier
 * accepts a self-signed certificate only as one of its own trust anchors
 * (RFC 5280, 6.1), so sending it adds nothing but the cost of decoding it:
 * with OpenSSL 3 the key decoder set-up of each certificate is a large
 * share of a KDC's work per upload.  Verifiers that still receive one (from
 * a previous version) use their own copy, as before.
 */
static void
drop_anchors(STACK_OF(X509) *chain)
{
    int i;

    for (i = sk_X509_num(chain) - 1; i >= 0; i--) {
        /* Names and key identifiers only: nothing to verify here. */
        if (X509_self_signed(sk_X509_value(chain, i), 0) == 1)
            X509_free(sk_X509_delete(chain, i));
    }
    ERR_clear_error();
}

krb5_error_code
tk_identity_load(krb5_context ctx, const char *cert_file,
                 const char *key_file, tk_identity **id_out)
{
    krb5_error_code ret;
    tk_identity *id;

    *id_out = NULL;
    id = calloc(1, sizeof(*id));
    if (id == NULL)
        return ENOMEM;
    ret = read_certs(ctx, cert_file, &id->chain);
    if (ret)
        goto cleanup;
    id->cert = sk_X509_shift(id->chain);
    drop_anchors(id->chain);
    ret = read_key(ctx, key_file, &id->key);
    if (ret)
        goto cleanup;
    if (id->key == NULL) {
        char what[PATH_MAX + 64];

        /* OpenSSL's reason (a decoder's) says little by itself. */
        snprintf(what, sizeof(what), "%s holds no PEM private key", key_file);
        ret = tk_openssl_error(ctx, KRB5_CONFIG_BADFORMAT, what);
        goto cleanup;
    }
    if (X509_check_private_key(id->cert, id->key) != 1) {
        ret = KRB5_CONFIG_BADFORMAT;
        ERR_clear_error();
        krb5_set_error_message(ctx, ret, "the key in %s does not belong to "
                               "the certificate in %s", key_file, cert_file);
        goto cleanup;
    }
    *id_out = id;
    id = NULL;

cleanup:
    tk_identity_free(id);
    return ret;
}

krb5_error_code
tk_identity_load_pkinit(krb5_context ctx, const char *spec,
                        tk_identity **id_out)
{
    krb5_error_code ret;
    char *copy, *comma;

    *id_out = NULL;
    if (strncmp(spec, "FILE:", 5) != 0 || strchr(spec, ',') == NULL) {
        krb5_set_error_message(ctx, KRB5_CONFIG_BADFORMAT, "pkinit_identity "
                               "\"%s\": tempkey needs FILE:cert.pem,key.pem",
                               spec);
        return KRB5_CONFIG_BADFORMAT;
    }
    copy = strdup(spec + 5);
    if (copy == NULL)
        return ENOMEM;
    comma = strchr(copy, ',');
    *comma = '\0';
    ret = tk_identity_load(ctx, copy, comma + 1, id_out);
    free(copy);
    return ret;
}

/* One pkinit_revoke file: the CRLs last read from it and which version of
 * the file was last looked at (read, or found unusable). */
typedef struct {
    char *spec;                 /* as configured, for messages */
    char *path;
    struct stat seen;
    STACK_OF(X509_CRL) *crls;   /* the last good contents */
} crl_file;

struct tk_trust {
    X509_STORE *store;          /* anchors */
    STACK_OF(X509) *pool;       /* untrusted intermediates */
    crl_file *crl_files;
    size_t ncrl_files;
    STACK_OF(X509_CRL) *crls;   /* every file's, for the verifier */
};

/* CRL files are read whole; a real one is far smaller. */
#define MAX_CRL_FILE (64 * 1024 * 1024)

void
tk_trust_free(tk_trust *trust)
{
    size_t i;

    if (trust == NULL)
        return;
    X509_STORE_free(trust->store);
    sk_X509_pop_free(trust->pool, X509_free);
    for (i = 0; i < trust->ncrl_files; i++) {
        free(trust->crl_files[i].spec);
        free(trust->crl_files[i].path);
        sk_X509_CRL_pop_free(trust->crl_files[i].crls, X509_CRL_free);
    }
    free(trust->crl_files);
    sk_X509_CRL_pop_free(trust->crls, X509_CRL_free);
    free(trust);
}

static const char *
strip_prefix(const char *spec, const char *prefix)
{
    size_t n = strlen(prefix);

    return (strncmp(spec, prefix, n) == 0) ? spec + n : NULL;
}

/* Whether two stat results are the same version of a file.  The change time
 * catches a rewrite in place that keeps size and modification time. */
static int
same_version(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
        a->st_size == b->st_size &&
        a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
        a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
        a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
        a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Parse a CRL file's contents: PEM CRLs (one or more), else one DER CRL. */
static STACK_OF(X509_CRL) *
parse_crls(const unsigned char *data, size_t len)
{
    STACK_OF(X509_CRL) *crls = sk_X509_CRL_new_null();
    const unsigned char *p = data;
    unsigned long e;
    X509_CRL *crl;
    BIO *bio;

    if (crls == NULL)
        return NULL;
    bio = BIO_new_mem_buf(data, (int)len);
    while (bio != NULL &&
           (crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_CRL_push(crls, crl)) {
            X509_CRL_free(crl);
            goto fail;
        }
    }
    BIO_free(bio);
    /* Only the end of the input may stop the PEM reader: a damaged or
     * truncated block makes the whole file unusable. */
    e = ERR_peek_last_error();
    if (bio == NULL || (e != 0 && !(ERR_GET_LIB(e) == ERR_LIB_PEM &&
                                    ERR_GET_REASON(e) ==
                                    PEM_R_NO_START_LINE)))
        goto fail;
    ERR_clear_error();
    if (sk_X509_CRL_num(crls) > 0)
        return crls;
    crl = d2i_X509_CRL(NULL, &p, (long)len);
    if (crl != NULL && p == data + len && sk_X509_CRL_push(crls, crl))
        return crls;
    X509_CRL_free(crl);

fail:
    ERR_clear_error();
    sk_X509_CRL_pop_free(crls, X509_CRL_free);
    return NULL;
}

/* Read file f anew: its CRLs into f->crls (unchanged on failure) and the
 * version read into f->seen (also on failure, so that it is reported once).
 */
static krb5_error_code
read_crl_file(krb5_context ctx, crl_file *f)
{
    krb5_error_code ret;
    STACK_OF(X509_CRL) *crls = NULL;
    unsigned char *data = NULL;
    struct stat st;
    size_t len = 0;
    ssize_t n;
    int fd;

    fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        ret = errno;
        /* Remember a missing file's absence as its version. */
        memset(&f->seen, 0, sizeof(f->seen));
        goto cleanup;
    }
    f->seen = st;
    if (!S_ISREG(st.st_mode)) {
        ret = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        goto cleanup;
    }
    if (st.st_size > MAX_CRL_FILE) {
        ret = EFBIG;
        goto cleanup;
    }
    data = malloc(st.st_size + 1);
    if (data == NULL) {
        ret = ENOMEM;
        goto cleanup;
    }
    /* Bounded by the size fstat gave: a file growing meanwhile has a new
     * version, read at the next refresh. */
    while (len < (size_t)st.st_size) {
        n = read(fd, data + len, st.st_size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ret = errno;
            goto cleanup;
        }
        if (n == 0)
            break;
        len += n;
    }
    crls = parse_crls(data, len);
    if (crls == NULL) {
        krb5_set_error_message(ctx, KRB5_CONFIG_BADFORMAT, "pkinit_revoke "
                               "%s: holds no CRL (PEM or DER)", f->spec);
        ret = KRB5_CONFIG_BADFORMAT;
        goto done;
    }
    sk_X509_CRL_pop_free(f->crls, X509_CRL_free);
    f->crls = crls;
    ret = 0;
    goto done;

cleanup:
    krb5_set_error_message(ctx, ret, "pkinit_revoke %s: cannot read it: %s",
                           f->spec, strerror(ret));
done:
    if (fd >= 0)
        close(fd);
    free(data);
    return ret;
}

/* Gather every file's CRLs for the verifier, each with a reference of its
 * own: a failure leaves the CRLs gathered before in place and valid. */
static krb5_error_code
collect_crls(tk_trust *trust)
{
    STACK_OF(X509_CRL) *all = sk_X509_CRL_new_null();
    X509_CRL *crl;
    size_t i;
    int j;

    if (all == NULL)
        return ENOMEM;
    for (i = 0; i < trust->ncrl_files; i++) {
        for (j = 0; j < sk_X509_CRL_num(trust->crl_files[i].crls); j++) {
            crl = sk_X509_CRL_value(trust->crl_files[i].crls, j);
            if (!sk_X509_CRL_push(all, crl)) {
                sk_X509_CRL_pop_free(all, X509_CRL_free);
                return ENOMEM;
            }
            X509_CRL_up_ref(crl);
        }
    }
    sk_X509_CRL_pop_free(trust->crls, X509_CRL_free);
    trust->crls = all;
    return 0;
}

static krb5_error_code
add_crl_file(krb5_context ctx, tk_trust *trust, const char *spec)
{
    crl_file *grown, *f;
    const char *path;

    if (strip_prefix(spec, "DIR:") != NULL) {
        krb5_set_error_message(ctx, KRB5_CONFIG_BADFORMAT, "pkinit_revoke "
                               "%s: tempkey reads FILE: lists", spec);
        return KRB5_CONFIG_BADFORMAT;
    }
    path = strip_prefix(spec, "FILE:");
    grown = realloc(trust->crl_files,
                    (trust->ncrl_files + 1) * sizeof(*grown));
    if (grown == NULL)
        return ENOMEM;
    trust->crl_files = grown;
    f = &trust->crl_files[trust->ncrl_files];
    memset(f, 0, sizeof(*f));
    f->spec = strdup(spec);
    f->path = strdup(path != NULL ? path : spec);
    trust->ncrl_files++;
    if (f->spec == NULL || f->path == NULL)
        return ENOMEM;
    return read_crl_file(ctx, f);
}

krb5_error_code
tk_trust_refresh(krb5_context ctx, tk_trust *trust, tk_crl_report_fn report,
                 void *arg)
{
    krb5_error_code ret;
    struct stat st;
    crl_file *f;
    const char *msg;
    size_t i;
    int reloaded = 0;

    for (i = 0; i < trust->ncrl_files; i++) {
        f = &trust->crl_files[i];
        if (stat(f->path, &st) != 0)
            memset(&st, 0, sizeof(st));
        if (same_version(&st, &f->seen))
            continue;
        ret = read_crl_file(ctx, f);
        if (ret == 0)
            reloaded = 1;
        if (report == NULL)
            continue;
        msg = (ret != 0) ? krb5_get_error_message(ctx, ret) : NULL;
        report(arg, f->spec, sk_X509_CRL_num(f->crls), msg);
        krb5_free_error_message(ctx, msg);
    }
    return reloaded ? collect_crls(trust) : 0;
}

krb5_error_code
tk_trust_load(krb5_context ctx, char **anchors, char **pool, char **crls,
              tk_trust **trust_out)
{
    krb5_error_code ret = 0;
    tk_trust *trust;
    STACK_OF(X509) *certs = NULL;
    const char *path;
    struct stat st;
    int i;

    *trust_out = NULL;
    trust = calloc(1, sizeof(*trust));
    if (trust == NULL)
        return ENOMEM;
    trust->store = X509_STORE_new();
    trust->pool = sk_X509_new_null();
    if (trust->store == NULL || trust->pool == NULL) {
        ret = ENOMEM;
        goto cleanup;
    }
    for (; anchors != NULL && *anchors != NULL; anchors++) {
        if ((path = strip_prefix(*anchors, "FILE:")) != NULL) {
            ret = read_certs(ctx, path, &certs);
            for (i = 0; ret == 0 && i < sk_X509_num(certs); i++)
                X509_STORE_add_cert(trust->store, sk_X509_value(certs, i));
            sk_X509_pop_free(certs, X509_free);
            certs = NULL;
        } else if ((path = strip_prefix(*anchors, "DIR:")) != NULL) {
            /* OpenSSL looks into the directory only when verifying, where
             * a missing one would read as an untrusted KDC. */
            if (stat(path, &st) != 0)
                ret = errno;
            else if (!S_ISDIR(st.st_mode))
                ret = ENOTDIR;
            if (ret) {
                krb5_set_error_message(ctx, ret, "pkinit_anchors \"%s\": "
                                       "cannot read it: %s", *anchors,
                                       strerror(ret));
            } else if (!X509_STORE_load_path(trust->store, path)) {
                ret = tk_openssl_error(ctx, KRB5_CONFIG_BADFORMAT, path);
            }
        } else {
            ret = KRB5_CONFIG_BADFORMAT;
            krb5_set_error_message(ctx, ret, "pkinit_anchors \"%s\": tempkey "
                                   "reads FILE: and DIR: anchors", *anchors);
        }
        if (ret)
            goto cleanup;
    }
    for (; pool != NULL && *pool != NULL; pool++) {
        path = strip_prefix(*pool, "FILE:");
        ret = read_certs(ctx, path != NULL ? path : *pool, &certs);
        if (ret)
            goto cleanup;
        while (sk_X509_num(certs) > 0)
            sk_X509_push(trust->pool, sk_X509_shift(certs));
        sk_X509_free(certs);
        certs = NULL;
    }
    /* At start every file must be usable: a broken one is reported now
     * rather than silently checking nothing. */
    for (; crls != NULL && *crls != NULL; crls++) {
        ret = add_crl_file(ctx, trust, *crls);
        if (ret)
            goto cleanup;
    }
    ret = collect_crls(trust);
    if (ret)
        goto cleanup;
    *trust_out = trust;
    trust = NULL;

cleanup:
    tk_trust_free(trust);
    return ret;
}

/* ---- CMS. */

/*
 * An upload's keys pass through CMS twice: as the content of the server's
 * SignedData, and as the plaintext of the EnvelopedData around it.  Every
 * copy of that content this file makes or owns is zeroed before it is freed:
 * output BIOs are secure-heap memory BIOs zeroed before BIO_free, DER from
 * i2d is freed with OPENSSL_clear_free, and a CMS structure's content is
 * zeroed before CMS_ContentInfo_free (which does not).  Content is written
 * into CMS with CMS_dataInit/CMS_dataFinal rather than CMS_final, whose
 * buffering copy OpenSSL frees without zeroing.
 */

/* Zero what a memory BIO holds, then free it. */
static void
bio_free_clean(BIO *bio)
{
    char *p;
    long len;

    if (bio == NULL)
        return;
    len = BIO_get_mem_data(bio, &p);
    if (len > 0)
        OPENSSL_cleanse(p, len);
    BIO_free(bio);
}

/* Copy a memory BIO's contents into out (the caller zeroes it before
 * freeing it), then zero and free the BIO. */
static krb5_error_code
bio_take_clean(BIO *bio, krb5_data *out)
{
    char *p = NULL;
    long len = BIO_get_mem_data(bio, &p);

    if (len < 0)
        len = 0;
    out->data = malloc(len > 0 ? len : 1);
    if (out->data == NULL) {
        bio_free_clean(bio);
        return ENOMEM;
    }
    if (len > 0)
        memcpy(out->data, p, len);
    out->length = len > 0 ? len : 0;
    bio_free_clean(bio);
    return 0;
}

/* Zero the content a CMS structure carries (the eContent of a SignedData;
 * ciphertext for an EnvelopedData), then free it. */
static void
cms_free_clean(CMS_ContentInfo *cms)
{
    ASN1_OCTET_STRING **pos;

    if (cms == NULL)
        return;
    pos = CMS_get0_content(cms);
    if (pos != NULL && *pos != NULL && (*pos)->data != NULL)
        OPENSSL_cleanse((*pos)->data, (*pos)->length);
    CMS_ContentInfo_free(cms);
    ERR_clear_error();
}

static krb5_error_code
cms_to_der(krb5_context ctx, CMS_ContentInfo *cms, krb5_data *der_out)
{
    unsigned char *der = NULL;
    int len;

    len = i2d_CMS_ContentInfo(cms, &der);
    if (len <= 0)
        return tk_openssl_error(ctx, ENOMEM, "encoding CMS");
    der_out->data = malloc(len);
    if (der_out->data == NULL) {
        OPENSSL_clear_free(der, len);
        return ENOMEM;
    }
    memcpy(der_out->data, der, len);
    der_out->length = len;
    /* A SignedData's DER holds its content in the clear. */
    OPENSSL_clear_free(der, len);
    return 0;
}

static CMS_ContentInfo *
der_to_cms(const krb5_data *der)
{
    const unsigned char *p = (const unsigned char *)der->data;
    CMS_ContentInfo *cms;

    if (der->length == 0 || der->length > TK_MAX_MESSAGE)
        return NULL;
    cms = d2i_CMS_ContentInfo(NULL, &p, der->length);
    if (cms != NULL && p != (const unsigned char *)der->data + der->length) {
        cms_free_clean(cms);
        return NULL;
    }
    return cms;
}

/* Put content into a CMS structure made with CMS_PARTIAL and finish it. */
static int
cms_put_content(CMS_ContentInfo *cms, const krb5_data *content)
{
    BIO *bio;
    int ok;

    bio = CMS_dataInit(cms, NULL);
    if (bio == NULL)
        return 0;
    ok = (content->length == 0 ||
          BIO_write(bio, content->data, content->length) ==
          (int)content->length);
    /* The flush ends a cipher: the last block is written then. */
    ok = ok && BIO_flush(bio) == 1 && CMS_dataFinal(cms, bio);
    BIO_free_all(bio);
    return ok;
}

krb5_error_code
tk_cms_sign(krb5_context ctx, const tk_identity *id, const krb5_data *content,
            krb5_data *der_out)
{
    krb5_error_code ret;
    CMS_ContentInfo *cms;

    cms = CMS_sign(id->cert, id->key, id->chain, NULL,
                   CMS_BINARY | CMS_NOSMIMECAP | CMS_PARTIAL);
    if (cms == NULL || !cms_put_content(cms, content)) {
        cms_free_clean(cms);
        return tk_openssl_error(ctx, KRB5_CRYPTO_INTERNAL, "CMS signing");
    }
    ret = cms_to_der(ctx, cms, der_out);
    cms_free_clean(cms);
    return ret;
}

/* Refuse a message (reason) with a message on ctx; return code. */
static krb5_error_code
refuse_msg(krb5_context ctx, int *reason_out, int reason,
           krb5_error_code code, const char *fmt, int n, int max)
{
    *reason_out = reason;
    krb5_set_error_message(ctx, code, fmt, n, max);
    return code;
}

/* The bounds a SignedData must keep before its signature is checked. */
static krb5_error_code
check_signed_bounds(krb5_context ctx, CMS_ContentInfo *cms,
                    STACK_OF(X509) *certs, int *reason_out)
{
    EVP_PKEY *pk;
    int i, n, bits, max;

    /* One signature to check, never one per SignerInfo. */
    n = sk_CMS_SignerInfo_num(CMS_get0_SignerInfos(cms));
    if (n != 1)
        return refuse_msg(ctx, reason_out, TK_REASON_BAD_SIGNATURE,
                          KRB5KDC_ERR_INVALID_SIG, "CMS message has %d "
                          "signers; it must have %d", n, 1);
    n = sk_X509_num(certs);
    if (n > TK_MAX_CERTS)
        return refuse_msg(ctx, reason_out, TK_REASON_TOO_MANY_CERTIFICATES,
                          KRB5KDC_ERR_CANT_VERIFY_CERTIFICATE, "the message "
                          "carries %d certificates; at most %d are read", n,
                          TK_MAX_CERTS);
    for (i = 0; i < n; i++) {
        pk = X509_get0_pubkey(sk_X509_value(certs, i));
        if (pk == NULL)
            continue;           /* unusable: the verifier refuses it */
        bits = EVP_PKEY_get_bits(pk);
        /* Elliptic curves are at most 571 bits (sect571); every other
         * kind is bounded like RSA. */
        max = (EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC) ? 571 :
            TK_MAX_KEY_BITS;
        if (bits > max)
            return refuse_msg(ctx, reason_out, TK_REASON_KEY_TOO_LARGE,
                              KRB5KDC_ERR_INVALID_CERTIFICATE, "a %d-bit "
                              "public key in the message; at most %d bits",
                              bits, max);
    }
    ERR_clear_error();
    return 0;
}

krb5_error_code
tk_cms_open_signed_bounded(krb5_context ctx, const krb5_data *der,
                           krb5_data *content_out, X509 **signer_out,
                           STACK_OF(X509) **certs_out, int *reason_out)
{
    krb5_error_code ret;
    CMS_ContentInfo *cms;
    STACK_OF(X509) *signers = NULL, *certs = NULL;
    BIO *out = NULL;

    *signer_out = NULL;
    *certs_out = NULL;
    *reason_out = 0;
    content_out->data = NULL;
    content_out->length = 0;
    if (der->length > TK_MAX_MESSAGE)
        return refuse_msg(ctx, reason_out, TK_REASON_MESSAGE_TOO_LARGE,
                          KRB5KDC_ERR_INVALID_SIG, "a CMS message of %d "
                          "bytes; at most %d are read", (int)der->length,
                          TK_MAX_MESSAGE);
    *reason_out = TK_REASON_MALFORMED;
    cms = der_to_cms(der);
    if (cms == NULL)
        return tk_openssl_error(ctx, ASN1_PARSE_ERROR, "not a CMS message");
    if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
        ret = ASN1_BAD_FORMAT;
        krb5_set_error_message(ctx, ret, "not a CMS SignedData");
        goto cleanup;
    }
    certs = CMS_get1_certs(cms);
    ret = check_signed_bounds(ctx, cms, certs, reason_out);
    if (ret)
        goto cleanup;
    out = BIO_new(BIO_s_secmem());
    if (out == NULL) {
        *reason_out = 0;
        ret = ENOMEM;
        goto cleanup;
    }
    /* The chain is checked by the caller, against its own anchors. */
    if (CMS_verify(cms, NULL, NULL, NULL, out,
                   CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY) != 1) {
        *reason_out = TK_REASON_BAD_SIGNATURE;
        ret = tk_openssl_error(ctx, KRB5KDC_ERR_INVALID_SIG,
                               "CMS signature does not verify");
        goto cleanup;
    }
    signers = CMS_get0_signers(cms);
    if (signers == NULL || sk_X509_num(signers) != 1) {
        *reason_out = TK_REASON_BAD_SIGNATURE;
        ret = KRB5KDC_ERR_INVALID_SIG;
        krb5_set_error_message(ctx, ret, "CMS message must have one signer");
        goto cleanup;
    }
    *reason_out = 0;
    ret = bio_take_clean(out, content_out);
    out = NULL;
    if (ret)
        goto cleanup;
    *signer_out = sk_X509_value(signers, 0);
    X509_up_ref(*signer_out);
    *certs_out = certs;
    certs = NULL;

cleanup:
    sk_X509_free(signers);
    sk_X509_pop_free(certs, X509_free);
    bio_free_clean(out);
    cms_free_clean(cms);
    return ret;
}

krb5_error_code
tk_cms_open_signed(krb5_context ctx, const krb5_data *der,
                   krb5_data *content_out, X509 **signer_out,
                   STACK_OF(X509) **certs_out)
{
    int reason;

    return tk_cms_open_signed_bounded(ctx, der, content_out, signer_out,
                                      certs_out, &reason);
}

/* Like PKINIT without pkinit_require_crl_checking: a certificate whose
 * issuer has no CRL configured is not refused for want of one, while every
 * certificate whose issuer has one is checked against it. */
static int
verify_cb(int ok, X509_STORE_CTX *sctx)
{
    if (!ok && X509_STORE_CTX_get_error(sctx) == X509_V_ERR_UNABLE_TO_GET_CRL)
        return 1;
    return ok;
}

int
tk_verify_chain(krb5_context ctx, const tk_trust *trust, X509 *cert,
                STACK_OF(X509) *extra)
{
    X509_STORE_CTX *sctx = NULL;
    STACK_OF(X509) *untrusted = NULL;
    X509 *bad;
    char subject[100] = "?";
    int reason = TK_REASON_UNTRUSTED_CERTIFICATE, err, i;

    sctx = X509_STORE_CTX_new();
    untrusted = sk_X509_dup(trust->pool);
    if (sctx == NULL || untrusted == NULL)
        goto cleanup;
    for (i = 0; extra != NULL && i < sk_X509_num(extra); i++)
        sk_X509_push(untrusted, sk_X509_value(extra, i));
    if (!X509_STORE_CTX_init(sctx, trust->store, cert, untrusted))
        goto cleanup;
    /* Bounds chain building too, whatever the pool and the message hold. */
    X509_STORE_CTX_set_depth(sctx, TK_MAX_CHAIN_DEPTH);
    if (trust->ncrl_files > 0) {
        /* The CRLs are ours, only lent to the context. */
        X509_STORE_CTX_set0_crls(sctx, trust->crls);
        X509_STORE_CTX_set_flags(sctx, X509_V_FLAG_CRL_CHECK |
                                 X509_V_FLAG_CRL_CHECK_ALL);
        X509_STORE_CTX_set_verify_cb(sctx, verify_cb);
    }
    if (X509_verify_cert(sctx) == 1) {
        reason = 0;
        goto cleanup;
    }
    err = X509_STORE_CTX_get_error(sctx);
    if (err == X509_V_ERR_CERT_HAS_EXPIRED ||
        err == X509_V_ERR_CERT_NOT_YET_VALID)
        reason = TK_REASON_CERTIFICATE_EXPIRED;
    else if (err == X509_V_ERR_CERT_REVOKED)
        reason = TK_REASON_CERTIFICATE_REVOKED;
    else if (err == X509_V_ERR_CRL_HAS_EXPIRED ||
             err == X509_V_ERR_CRL_NOT_YET_VALID)
        reason = TK_REASON_CRL_EXPIRED;
    else if (err == X509_V_ERR_CERT_CHAIN_TOO_LONG)
        reason = TK_REASON_CHAIN_TOO_LONG;
    bad = X509_STORE_CTX_get_current_cert(sctx);
    if (bad != NULL)
        X509_NAME_oneline(X509_get_subject_name(bad), subject,
                          sizeof(subject));
    /* For the KDC log only: the client is told the reason alone. */
    krb5_set_error_message(ctx, tk_reason_code(reason), "certificate not "
                           "trusted: %s at depth %d (%s)",
                           X509_verify_cert_error_string(err),
                           X509_STORE_CTX_get_error_depth(sctx), subject);

cleanup:
    if (reason && sctx == NULL)
        krb5_set_error_message(ctx, ENOMEM, "out of memory");
    sk_X509_free(untrusted);
    X509_STORE_CTX_free(sctx);
    ERR_clear_error();
    return reason;
}

krb5_error_code
tk_cms_encrypt(krb5_context ctx, X509 *recipient, const krb5_data *content,
               krb5_data *der_out)
{
    krb5_error_code ret = KRB5_CRYPTO_INTERNAL;
    CMS_ContentInfo *cms = NULL;
    CMS_RecipientInfo *ri;
    EVP_PKEY_CTX *pctx;

    cms = CMS_encrypt(NULL, NULL, EVP_aes_256_cbc(),
                      CMS_BINARY | CMS_PARTIAL);
    if (cms == NULL)
        goto fail;
    ri = CMS_add1_recipient_cert(cms, recipient, CMS_KEY_PARAM);
    if (ri == NULL)
        goto fail;
    /* RSA recipients get OAEP rather than PKCS #1 v1.5. */
    if (CMS_RecipientInfo_type(ri) == CMS_RECIPINFO_TRANS) {
        pctx = CMS_RecipientInfo_get0_pkey_ctx(ri);
        if (pctx == NULL ||
            EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) <= 0)
            goto fail;
    }
    if (!cms_put_content(cms, content))
        goto fail;
    ret = cms_to_der(ctx, cms, der_out);
    goto cleanup;

fail:
    ret = tk_openssl_error(ctx, ret, "CMS encryption");
cleanup:
    cms_free_clean(cms);
    return ret;
}

krb5_error_code
tk_cms_decrypt(krb5_context ctx, const tk_identity *id, const krb5_data *der,
               krb5_data *content_out)
{
    krb5_error_code ret;
    CMS_ContentInfo *cms;
    BIO *out = NULL;

    content_out->data = NULL;
    content_out->length = 0;
    cms = der_to_cms(der);
    if (cms == NULL)
        return tk_openssl_error(ctx, ASN1_PARSE_ERROR, "not a CMS message");
    if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_enveloped) {
        ret = ASN1_BAD_FORMAT;
        krb5_set_error_message(ctx, ret, "not a CMS EnvelopedData");
        goto cleanup;
    }
    out = BIO_new(BIO_s_secmem());
    if (out == NULL) {
        ret = ENOMEM;
        goto cleanup;
    }
    /* A failure after some blocks leaves their plaintext in out: zeroed
     * below like a success's. */
    if (CMS_decrypt(cms, id->key, id->cert, NULL, out, CMS_BINARY) != 1) {
        ret = tk_openssl_error(ctx, KRB5KDC_ERR_CERTIFICATE_MISMATCH,
                               "cannot decrypt: not encrypted to this KDC's "
                               "key");
        goto cleanup;
    }
    ret = bio_take_clean(out, content_out);
    out = NULL;

cleanup:
    bio_free_clean(out);
    cms_free_clean(cms);
    return ret;
}

/* ---- Certificate contents. */

/* The OID named by a tempkey_eku value, or NULL for "none". */
static krb5_error_code
eku_object(krb5_context ctx, const char *eku, ASN1_OBJECT **obj_out)
{
    const char *oid = eku;

    *obj_out = NULL;
    if (strcmp(eku, "none") == 0)
        return 0;
    if (strcmp(eku, "pkinit") == 0)
        oid = OID_PKINIT_CLIENT;
    else if (strcmp(eku, "pkinit-kdc") == 0)
        oid = OID_PKINIT_KDC;
    else if (strcmp(eku, "client") == 0)
        oid = OID_CLIENT_AUTH;
    *obj_out = OBJ_txt2obj(oid, 1);
    if (*obj_out == NULL) {
        ERR_clear_error();
        krb5_set_error_message(ctx, KRB5_CONFIG_BADFORMAT, "tempkey_eku \"%s\""
                               " is not pkinit, client, none or an OID", eku);
        return KRB5_CONFIG_BADFORMAT;
    }
    return 0;
}

krb5_error_code
tk_check_eku(krb5_context ctx, const char *eku)
{
    ASN1_OBJECT *obj;
    krb5_error_code ret = eku_object(ctx, eku, &obj);

    ASN1_OBJECT_free(obj);
    return ret;
}

krb5_error_code
tk_cert_has_eku(krb5_context ctx, X509 *cert, const char *eku,
                krb5_boolean *out)
{
    krb5_error_code ret;
    EXTENDED_KEY_USAGE *ekus;
    ASN1_OBJECT *want;
    int i;

    *out = FALSE;
    ret = eku_object(ctx, eku, &want);
    if (ret)
        return ret;
    if (want == NULL) {
        *out = TRUE;
        return 0;
    }
    ekus = X509_get_ext_d2i(cert, NID_ext_key_usage, NULL, NULL);
    for (i = 0; ekus != NULL && i < sk_ASN1_OBJECT_num(ekus); i++) {
        if (OBJ_cmp(sk_ASN1_OBJECT_value(ekus, i), want) == 0)
            *out = TRUE;
    }
    sk_ASN1_OBJECT_pop_free(ekus, ASN1_OBJECT_free);
    ASN1_OBJECT_free(want);
    ERR_clear_error();
    return 0;
}

void
tk_free_principals(krb5_context ctx, krb5_principal *princs)
{
    krb5_principal *p;

    for (p = princs; p != NULL && *p != NULL; p++)
        krb5_free_principal(ctx, *p);
    free(princs);
}

/* Build a principal from a decoded KRB5PrincipalName. */
static krb5_error_code
make_principal(krb5_context ctx, const TK_KRB5_PRINCIPAL_NAME *kn,
               krb5_principal *out)
{
    krb5_error_code ret;
    krb5_principal p = NULL;
    krb5_data *comps = NULL;
    int i, n = sk_ASN1_GENERALSTRING_num(kn->principal_name->name_string);
    int64_t type;

    if (n < 1 || n > 16 ||
        ASN1_INTEGER_get_int64(&type, kn->principal_name->name_type) != 1)
        return ASN1_BAD_FORMAT;
    comps = calloc(n, sizeof(*comps));
    p = calloc(1, sizeof(*p));
    if (comps == NULL || p == NULL) {
        ret = ENOMEM;
        goto cleanup;
    }
    for (i = 0; i < n; i++) {
        ASN1_GENERALSTRING *s =
            sk_ASN1_GENERALSTRING_value(kn->principal_name->name_string, i);

        comps[i].magic = KV5M_DATA;
        comps[i].length = ASN1_STRING_length(s);
        comps[i].data = malloc(comps[i].length + 1);
        if (comps[i].data == NULL) {
            ret = ENOMEM;
            goto cleanup;
        }
        memcpy(comps[i].data, ASN1_STRING_get0_data(s), comps[i].length);
    }
    p->magic = KV5M_PRINCIPAL;
    p->type = (krb5_int32)type;
    p->data = comps;
    p->length = n;
    comps = NULL;
    p->realm.magic = KV5M_DATA;
    p->realm.length = ASN1_STRING_length(kn->realm);
    p->realm.data = malloc(p->realm.length + 1);
    if (p->realm.data == NULL) {
        ret = ENOMEM;
        goto cleanup;
    }
    memcpy(p->realm.data, ASN1_STRING_get0_data(kn->realm), p->realm.length);
    *out = p;
    p = NULL;
    ret = 0;

cleanup:
    if (comps != NULL) {
        for (i = 0; i < n; i++)
            free(comps[i].data);
        free(comps);
    }
    krb5_free_principal(ctx, p);
    return ret;
}

krb5_error_code
tk_cert_principals(krb5_context ctx, X509 *cert, krb5_principal **princs_out)
{
    krb5_error_code ret = 0;
    GENERAL_NAMES *names;
    ASN1_OBJECT *san_oid;
    krb5_principal *princs = NULL;
    size_t count = 0;
    int i, seen = 0;

    *princs_out = NULL;
    princs = calloc(1, sizeof(*princs));
    san_oid = OBJ_txt2obj(OID_PKINIT_SAN, 1);
    if (princs == NULL || san_oid == NULL) {
        ret = ENOMEM;
        goto cleanup;
    }
    names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
        GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        TK_KRB5_PRINCIPAL_NAME *kn;
        const unsigned char *p;
        ASN1_TYPE *v;
        krb5_principal *grown;

        if (gn->type != GEN_OTHERNAME ||
            OBJ_cmp(gn->d.otherName->type_id, san_oid) != 0)
            continue;
        /* Counted before it is decoded: each costs a parse and, at the
         * KDC, a comparison. */
        if (++seen > TK_MAX_NAMES) {
            ret = KRB5KDC_ERR_CLIENT_NAME_MISMATCH;
            krb5_set_error_message(ctx, ret, "the certificate names more "
                                   "than %d principals", TK_MAX_NAMES);
            break;
        }
        v = gn->d.otherName->value;
        if (v->type != V_ASN1_SEQUENCE)
            continue;
        p = v->value.sequence->data;
        kn = d2i_TK_KRB5_PRINCIPAL_NAME(NULL, &p, v->value.sequence->length);
        if (kn == NULL)
            continue;           /* an unreadable SAN names nobody */
        grown = realloc(princs, (count + 2) * sizeof(*princs));
        if (grown == NULL) {
            TK_KRB5_PRINCIPAL_NAME_free(kn);
            ret = ENOMEM;
            break;
        }
        princs = grown;
        princs[count] = princs[count + 1] = NULL;
        if (make_principal(ctx, kn, &princs[count]) == 0)
            count++;
        TK_KRB5_PRINCIPAL_NAME_free(kn);
    }
    GENERAL_NAMES_free(names);
    if (ret == 0) {
        *princs_out = princs;
        princs = NULL;
    }

cleanup:
    ERR_clear_error();
    ASN1_OBJECT_free(san_oid);
    tk_free_principals(ctx, princs);
    return ret;
}
