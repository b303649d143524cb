/* check_pki.c - unit tests of lib/pki.c and lib/proto.c: no copy of a key
 * is ever freed without being cleansed first. */
/*
 * This program replaces free() (forwarding to glibc's __libc_free) and
 * realloc() (always moving, so that a grown block's old copy is freed
 * through free() too) with versions that scan every block released, by
 * anyone (libkrb5, libcrypto, libc's stdio, the code under test), for a
 * marker: the bytes of a test key, or a piece of a private key's PEM text.
 * A test counts the blocks that still held the marker when they were freed;
 * it must be none.  Stack buffers inside OpenSSL are out of reach of this
 * check (and of any fix of ours).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <execinfo.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tkproto.h"

extern void __libc_free(void *p);
extern void *__libc_malloc(size_t n);

static unsigned char marker[64];
static size_t marker_len;
static int dirty_frees;

static void
scan(void *p)
{
    size_t n;

    if (p == NULL || marker_len == 0)
        return;
    n = malloc_usable_size(p);
    if (memmem(p, n, marker, marker_len) != NULL) {
        dirty_frees++;
        /* CHECK_PKI_TRACE=1 shows who freed it (backtrace_symbols_fd does
         * not allocate). */
        if (getenv("CHECK_PKI_TRACE") != NULL) {
            void *frames[16];

            backtrace_symbols_fd(frames, backtrace(frames, 16), 2);
            /* A trace for a person to read: a short write loses nothing. */
            if (write(2, "--\n", 3) < 0)
                return;
        }
    }
}

/* Under AddressSanitizer, which owns the allocator, the replacement is
 * left out and the test skips (main). */
#ifndef __SANITIZE_ADDRESS__
void
free(void *p)
{
    scan(p);
    __libc_free(p);
}

void *
realloc(void *p, size_t n)
{
    void *q;
    size_t old;

    if (p == NULL)
        return __libc_malloc(n);
    if (n == 0) {
        free(p);
        return NULL;
    }
    q = __libc_malloc(n);
    if (q == NULL)
        return NULL;
    old = malloc_usable_size(p);
    memcpy(q, p, old < n ? old : n);
    free(p);
    return q;
}
#endif

static krb5_context ctx;
static tk_identity *server, *kdc;

/* A self-signed identity with a new P-256 key. */
static tk_identity *
make_identity(const char *cn)
{
    tk_identity *id = calloc(1, sizeof(*id));
    X509_NAME *name;

    ck_assert_ptr_nonnull(id);
    id->key = EVP_EC_gen("P-256");
    id->cert = X509_new();
    id->chain = sk_X509_new_null();
    ck_assert_ptr_nonnull(id->key);
    ck_assert_ptr_nonnull(id->cert);
    ASN1_INTEGER_set(X509_get_serialNumber(id->cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(id->cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(id->cert), 3600);
    name = X509_get_subject_name(id->cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(id->cert, name);
    X509_set_pubkey(id->cert, id->key);
    ck_assert_int_gt(X509_sign(id->cert, id->key, EVP_sha256()), 0);
    return id;
}

static void
setup(void)
{
    ck_assert_int_eq(krb5_init_context(&ctx), 0);
    server = make_identity("server");
    kdc = make_identity("kdc");
    /* A 32-byte key that appears nowhere else. */
    for (marker_len = 0; marker_len < 32; marker_len++)
        marker[marker_len] = (unsigned char)(0xa5 ^ (marker_len * 37));
    dirty_frees = 0;
}

static void
teardown(void)
{
    marker_len = 0;
    tk_identity_free(server);
    tk_identity_free(kdc);
    krb5_free_context(ctx);
}

/* Zero and free a buffer the code under test handed us. */
static void
drop(krb5_data *d)
{
    if (d->data != NULL)
        OPENSSL_cleanse(d->data, d->length);
    free(d->data);
    d->data = NULL;
    d->length = 0;
}

/* The DER of an upload whose one key is the marker. */
static void
upload_der(krb5_data *der_out)
{
    tk_upload up;
    unsigned char token[16] = "token";

    memset(&up, 0, sizeof(up));
    up.realm = "TEMPKEY.TEST";
    up.principal = "HTTP/www.test@TEMPKEY.TEST";
    up.freshness_token.data = (char *)token;
    up.freshness_token.length = sizeof(token);
    up.kvno = 2;
    up.expiry = 2000000000;
    up.nkeys = 1;
    up.keys[0].magic = KV5M_KEYBLOCK;
    up.keys[0].enctype = ENCTYPE_AES256_CTS_HMAC_SHA1_96;
    up.keys[0].length = 32;
    up.keys[0].contents = marker;
    ck_assert_int_eq(tk_encode_upload(ctx, &up, der_out), 0);
}

/* What the client does: encode, sign, encrypt. */
static void
client_side(krb5_data *env_out)
{
    krb5_data der = { 0, 0, NULL }, sig = { 0, 0, NULL };

    upload_der(&der);
    ck_assert_int_eq(tk_cms_sign(ctx, server, &der, &sig), 0);
    ck_assert_int_eq(tk_cms_encrypt(ctx, kdc->cert, &sig, env_out), 0);
    drop(&der);
    drop(&sig);
}

START_TEST(upload_round_trip_leaves_no_key_behind)
{
    krb5_data env = { 0, 0, NULL }, inner = { 0, 0, NULL };
    krb5_data content = { 0, 0, NULL };
    STACK_OF(X509) *certs = NULL;
    X509 *signer = NULL;
    tk_upload *up = NULL;

    client_side(&env);
    ck_assert_int_eq(dirty_frees, 0);
    /* What the KDC does. */
    ck_assert_int_eq(tk_cms_decrypt(ctx, kdc, &env, &inner), 0);
    ck_assert_int_eq(tk_cms_open_signed(ctx, &inner, &content, &signer,
                                        &certs), 0);
    ck_assert_int_eq(tk_decode_upload(ctx, &content, &up), 0);
    ck_assert_int_eq(up->keys[0].length, 32);
    ck_assert_mem_eq(up->keys[0].contents, marker, 32);
    tk_upload_free(up);
    drop(&content);
    drop(&inner);
    free(env.data);
    X509_free(signer);
    sk_X509_pop_free(certs, X509_free);
    ck_assert_int_eq(dirty_frees, 0);
}
END_TEST

START_TEST(refused_messages_leave_no_key_behind)
{
    krb5_data der = { 0, 0, NULL }, sig = { 0, 0, NULL };
    krb5_data env = { 0, 0, NULL }, inner = { 0, 0, NULL };
    krb5_data content = { 0, 0, NULL }, longer;
    STACK_OF(X509) *certs = NULL;
    X509 *signer = NULL;
    tk_upload *up = NULL;
    tk_ack *ack = NULL;

    upload_der(&der);
    /* Trailing bytes, and the wrong message type. */
    longer.length = der.length + 1;
    longer.data = calloc(1, longer.length);
    memcpy(longer.data, der.data, der.length);
    ck_assert_int_ne(tk_decode_upload(ctx, &longer, &up), 0);
    ck_assert_int_ne(tk_decode_ack(ctx, &der, &ack), 0);
    drop(&longer);
    /* A signature that does not verify. */
    ck_assert_int_eq(tk_cms_sign(ctx, server, &der, &sig), 0);
    sig.data[sig.length - 1] ^= 1;
    ck_assert_int_ne(tk_cms_open_signed(ctx, &sig, &content, &signer,
                                        &certs), 0);
    /* Encrypted to another key. */
    ck_assert_int_eq(tk_cms_encrypt(ctx, server->cert, &sig, &env), 0);
    ck_assert_int_ne(tk_cms_decrypt(ctx, kdc, &env, &inner), 0);
    drop(&env);
    drop(&sig);
    drop(&der);
    ck_assert_ptr_null(signer);
    ck_assert_int_eq(dirty_frees, 0);
}
END_TEST

START_TEST(private_key_file_leaves_no_copy_behind)
{
    char dir[] = "/tmp/check_pki.XXXXXX", cert_file[64], key_file[64];
    char pem[4096], *body;
    tk_identity *id = NULL;
    BIO *bio;
    FILE *f;
    int fd, n;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cert_file, sizeof(cert_file), "%s/cert.pem", dir);
    snprintf(key_file, sizeof(key_file), "%s/key.pem", dir);
    f = fopen(cert_file, "w");
    ck_assert_ptr_nonnull(f);
    PEM_write_X509(f, server->cert);
    fclose(f);
    bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, server->key, NULL, NULL, 0, NULL, NULL);
    n = BIO_read(bio, pem, sizeof(pem) - 1);
    ck_assert_int_gt(n, 100);
    pem[n] = '\0';
    BIO_free(bio);
    fd = open(key_file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_eq(write(fd, pem, n), n);
    close(fd);
    /* A piece of the base64 of the key. */
    body = strchr(pem, '\n') + 1;
    memcpy(marker, body + 20, 24);
    marker_len = 24;
    dirty_frees = 0;
    ck_assert_int_eq(tk_identity_load(ctx, cert_file, key_file, &id), 0);
    tk_identity_free(id);
    marker_len = 0;
    unlink(cert_file);
    unlink(key_file);
    rmdir(dir);
    OPENSSL_cleanse(pem, sizeof(pem));
    ck_assert_int_eq(dirty_frees, 0);
}
END_TEST

/* ---- The chain an identity sends. */

/* A certificate for cn with a new P-256 key, issued by issuer (a CA made
 * by make_identity or by this function with ca set). */
static tk_identity *
issue_identity(const tk_identity *issuer, const char *cn, int ca)
{
    tk_identity *id = make_identity(cn);
    X509V3_CTX v3;
    X509_EXTENSION *ext;

    X509_set_issuer_name(id->cert, X509_get_subject_name(issuer->cert));
    X509V3_set_ctx(&v3, issuer->cert, id->cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
                              ca ? "critical,CA:TRUE" : "CA:FALSE");
    ck_assert_ptr_nonnull(ext);
    X509_add_ext(id->cert, ext, -1);
    X509_EXTENSION_free(ext);
    ck_assert_int_gt(X509_sign(id->cert, issuer->key, EVP_sha256()), 0);
    return id;
}

/* A root CA (self-signed, CA:TRUE). */
static tk_identity *
make_root(const char *cn)
{
    tk_identity *id = make_identity(cn);
    X509V3_CTX v3;
    X509_EXTENSION *ext;

    X509V3_set_ctx(&v3, id->cert, id->cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
                              "critical,CA:TRUE");
    ck_assert_ptr_nonnull(ext);
    X509_add_ext(id->cert, ext, -1);
    X509_EXTENSION_free(ext);
    ck_assert_int_gt(X509_sign(id->cert, id->key, EVP_sha256()), 0);
    return id;
}

static void
write_pem_certs(const char *file, X509 *a, X509 *b, X509 *c)
{
    FILE *f = fopen(file, "w");

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(PEM_write_X509(f, a), 1);
    if (b != NULL)
        ck_assert_int_eq(PEM_write_X509(f, b), 1);
    if (c != NULL)
        ck_assert_int_eq(PEM_write_X509(f, c), 1);
    ck_assert_int_eq(fclose(f), 0);
}

static void
write_pem_key(const char *file, EVP_PKEY *key)
{
    FILE *f = fopen(file, "w");

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL,
                                          NULL), 1);
    ck_assert_int_eq(fclose(f), 0);
}

/* Sign with id, open the SignedData and check the signer's chain against
 * trust; return how many certificates the message carried. */
static int
sent_certificates(const tk_identity *id, tk_trust *trust)
{
    krb5_data der = { 5, 5, "hello" }, sig = { 0, 0, NULL };
    krb5_data content = { 0, 0, NULL };
    STACK_OF(X509) *certs = NULL;
    X509 *signer = NULL;
    int n;

    ck_assert_int_eq(tk_cms_sign(ctx, id, &der, &sig), 0);
    ck_assert_int_eq(tk_cms_open_signed(ctx, &sig, &content, &signer,
                                        &certs), 0);
    ck_assert_int_eq(X509_cmp(signer, id->cert), 0);
    ck_assert_int_eq(tk_verify_chain(ctx, trust, signer, certs), 0);
    n = sk_X509_num(certs);
    free(sig.data);
    free(content.data);
    X509_free(signer);
    sk_X509_pop_free(certs, X509_free);
    return n;
}

START_TEST(identity_sends_its_chain_without_the_root)
{
    char dir[] = "/tmp/check_pki.XXXXXX", chain[64], key[64], anchor[64];
    char *anchors[2] = { NULL, NULL };
    tk_identity *root, *sub, *leaf, *direct, *id = NULL;
    tk_trust *trust = NULL;

    root = make_root("Root CA");
    sub = issue_identity(root, "Sub CA", 1);
    leaf = issue_identity(sub, "leaf", 0);
    direct = issue_identity(root, "direct", 0);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(chain, sizeof(chain), "%s/chain.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(anchor, sizeof(anchor), "FILE:%s/root.pem", dir);
    write_pem_certs(anchor + 5, root->cert, NULL, NULL);
    anchors[0] = anchor;
    ck_assert_int_eq(tk_trust_load(ctx, anchors, NULL, NULL, &trust), 0);

    /* The leaf, the intermediate and the root, as a chain file holds them:
     * the intermediate is sent, the root is not. */
    write_pem_certs(chain, leaf->cert, sub->cert, root->cert);
    write_pem_key(key, leaf->key);
    ck_assert_int_eq(tk_identity_load(ctx, chain, key, &id), 0);
    ck_assert_int_eq(sk_X509_num(id->chain), 1);
    ck_assert_int_eq(X509_cmp(sk_X509_value(id->chain, 0), sub->cert), 0);
    ck_assert_int_eq(sent_certificates(id, trust), 2);
    tk_identity_free(id);
    id = NULL;

    /* Issued by the root itself: the leaf alone. */
    write_pem_certs(chain, direct->cert, root->cert, NULL);
    write_pem_key(key, direct->key);
    ck_assert_int_eq(tk_identity_load(ctx, chain, key, &id), 0);
    ck_assert_int_eq(sk_X509_num(id->chain), 0);
    ck_assert_int_eq(sent_certificates(id, trust), 1);

    /* What a previous version sent, the root included, still verifies. */
    X509_up_ref(root->cert);
    ck_assert_int_eq(sk_X509_push(id->chain, root->cert), 1);
    ck_assert_int_eq(sent_certificates(id, trust), 2);
    tk_identity_free(id);
    id = NULL;

    /* A self-signed leaf (a pinned key) is still the signer. */
    write_pem_certs(chain, root->cert, NULL, NULL);
    write_pem_key(key, root->key);
    ck_assert_int_eq(tk_identity_load(ctx, chain, key, &id), 0);
    ck_assert_int_eq(X509_cmp(id->cert, root->cert), 0);
    ck_assert_int_eq(sk_X509_num(id->chain), 0);

    tk_identity_free(id);
    tk_trust_free(trust);
    tk_identity_free(root);
    tk_identity_free(sub);
    tk_identity_free(leaf);
    tk_identity_free(direct);
    unlink(chain);
    unlink(key);
    unlink(anchor + 5);
    rmdir(dir);
}
END_TEST

/* ---- What a bad identity file is told with. */

/* Loading cert_file and key_file fails, with a message that holds part1
 * and part2. */
static void
assert_load_fails(const char *cert_file, const char *key_file,
                  const char *part1, const char *part2)
{
    tk_identity *id = NULL;
    krb5_error_code ret = tk_identity_load(ctx, cert_file, key_file, &id);
    const char *msg;

    ck_assert_int_ne(ret, 0);
    ck_assert_ptr_null(id);
    msg = krb5_get_error_message(ctx, ret);
    ck_assert_msg(strstr(msg, part1) != NULL && strstr(msg, part2) != NULL,
                  "message \"%s\" lacks \"%s\" or \"%s\"", msg, part1,
                  part2);
    krb5_free_error_message(ctx, msg);
}

START_TEST(identity_file_errors_name_the_file)
{
    char dir[] = "/tmp/check_pki.XXXXXX", cert[64], key[64], other[64];
    char missing[64], want[128];
    tk_identity *leaf, *stranger;

    leaf = make_root("leaf");
    stranger = make_root("stranger");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(other, sizeof(other), "%s/other.pem", dir);
    snprintf(missing, sizeof(missing), "%s/missing.pem", dir);
    write_pem_certs(cert, leaf->cert, NULL, NULL);
    write_pem_key(key, leaf->key);
    write_pem_key(other, stranger->key);

    /* A certificate where the key should be: the file and what it lacks,
     * then OpenSSL's reason. */
    snprintf(want, sizeof(want), "%s holds no PEM private key: error:", cert);
    assert_load_fails(cert, cert, want, "DECODER");
    snprintf(want, sizeof(want), "%s holds no PEM certificate", key);
    assert_load_fails(key, key, want, want);
    snprintf(want, sizeof(want), "cannot read %s", missing);
    assert_load_fails(missing, key, want, "No such file or directory");
    snprintf(want, sizeof(want), "cannot read %s", dir);
    assert_load_fails(cert, dir, want, "Is a directory");
    snprintf(want, sizeof(want), "the key in %s does not belong", other);
    assert_load_fails(cert, other, want, cert);

    tk_identity_free(leaf);
    tk_identity_free(stranger);
    unlink(cert);
    unlink(key);
    unlink(other);
    rmdir(dir);
}
END_TEST

/* A DIR: anchor that is no directory is told at load, not later as an
 * untrusted certificate. */
START_TEST(anchor_directory_errors_name_it)
{
    char *anchors[2] = { NULL, NULL };
    const char *specs[2] = { "DIR:/nonexistent/anchors",
                             "DIR:/dev/null" };
    const char *why[2] = { "No such file or directory", "Not a directory" };
    char want[128];
    tk_trust *trust = NULL;
    krb5_error_code ret;
    const char *msg;
    int i;

    for (i = 0; i < 2; i++) {
        anchors[0] = (char *)specs[i];
        ret = tk_trust_load(ctx, anchors, NULL, NULL, &trust);
        ck_assert_int_ne(ret, 0);
        ck_assert_ptr_null(trust);
        snprintf(want, sizeof(want), "pkinit_anchors \"%s\": cannot read "
                 "it: %s", specs[i], why[i]);
        msg = krb5_get_error_message(ctx, ret);
        ck_assert_str_eq(msg, want);
        krb5_free_error_message(ctx, msg);
    }
}
END_TEST

int
main(void)
{
    Suite *s;
    TCase *tc;
    SRunner *sr;
    int failed;

#ifdef __SANITIZE_ADDRESS__
    /* The normal pass runs it. */
    (void)scan;
    printf("SKIP: check_pki replaces free(), which AddressSanitizer "
           "intercepts\n");
    return 77;
#endif
    s = suite_create("pki");
    tc = tcase_create("cleansing");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, upload_round_trip_leaves_no_key_behind);
    tcase_add_test(tc, refused_messages_leave_no_key_behind);
    tcase_add_test(tc, private_key_file_leaves_no_copy_behind);
    suite_add_tcase(s, tc);
    tc = tcase_create("chain");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, identity_sends_its_chain_without_the_root);
    tcase_add_test(tc, identity_file_errors_name_the_file);
    tcase_add_test(tc, anchor_directory_errors_name_it);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
