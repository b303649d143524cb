/* mkseeds.c - write the fuzz targets' seed corpora with the project's own
 * encoders and the test PKI: mkseeds DATADIR CORPUSDIR writes
 * CORPUSDIR/<target>/<name> for every target (make fuzz-seeds). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tempkey.h"
#include "tkproto.h"

static krb5_context ctx;
static const char *datadir, *corpus;

static void
die(const char *what, krb5_error_code ret)
{
    const char *msg = krb5_get_error_message(ctx, ret);

    fprintf(stderr, "mkseeds: %s: %s\n", what, msg);
    exit(1);
}

static void
check(krb5_error_code ret, const char *what)
{
    if (ret)
        die(what, ret);
}

static void
write_seed(const char *target, const char *name, const void *p, size_t len)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", corpus, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        die(path, errno);
    snprintf(path, sizeof(path), "%s/%s/%s", corpus, target, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, len, f) != len || fclose(f) != 0)
        die(path, errno);
}

static void
write_data(const char *target, const char *name, krb5_data *d)
{
    write_seed(target, name, d->data, d->length);
    free(d->data);
    d->data = NULL;
}

static const char *
data_file(const char *name)
{
    static char path[2][4096];
    static int i;

    i = !i;
    snprintf(path[i], sizeof(path[i]), "%s/%s", datadir, name);
    return path[i];
}

static void
key_requests(void)
{
    krb5_enctype one[1] = { 18 }, all[TK_MAX_KEYS] = { 18, 17, 20, 19, 16,
                                                        23, 25, 26 };
    tk_key_request r1 = { "FUZZ.TEST", "HTTP/www.fuzz.test@FUZZ.TEST", one,
                          1, 86400, 0, 1700000000 };
    tk_key_request r2 = { "FUZZ.TEST", "host/a.fuzz.test@FUZZ.TEST", all,
                          TK_MAX_KEYS, 2147483647, 65535,
                          9223372036854775807LL };
    krb5_data d;

    check(tk_encode_key_request(ctx, &r1, &d), "key request");
    write_data("key_request", "one-enctype", &d);
    check(tk_encode_key_request(ctx, &r2, &d), "key request");
    write_data("key_request", "limits", &d);
}

/* Offers as the KDC signs them, and KeyOffers: one around a real signed
 * offer (sig), one at the limits. */
static void
offers(const krb5_data *sig)
{
    krb5_enctype one[1] = { 18 }, all[TK_MAX_KEYS] = { 18, 17, 20, 19, 16,
                                                        23, 25, 26 };
    tk_offer o1 = { "FUZZ.TEST", one, 1, 86400, 1700000000, 1700000120 };
    tk_offer o2 = { "FUZZ.TEST", all, TK_MAX_KEYS, 2147483647,
                    9223372036854775807LL, 9223372036854775807LL };
    tk_key_offer k1 = { *sig, "HTTP/www.fuzz.test@FUZZ.TEST", 6,
                        1700000030 };
    tk_key_offer k2 = { { 0, 1, "\x30" }, "host/a.fuzz.test@FUZZ.TEST", 65535,
                        9223372036854775807LL };
    krb5_data d;

    check(tk_encode_offer(ctx, &o1, &d), "offer");
    write_data("offer", "offer-one-enctype", &d);
    check(tk_encode_offer(ctx, &o2, &d), "offer");
    write_data("offer", "offer-limits", &d);
    check(tk_encode_key_offer(ctx, &k1, &d), "key offer");
    write_data("offer", "key-offer", &d);
    check(tk_encode_key_offer(ctx, &k2, &d), "key offer");
    write_data("offer", "key-offer-limits", &d);
}

/* An upload as ktupdate makes it; nkeys keys of the first enctypes. */
static void
make_upload(tk_upload *up, unsigned char keys[][32], size_t nkeys,
            const char *token)
{
    static const krb5_enctype et[TK_MAX_KEYS] = { 18, 17, 20, 19, 18, 17,
                                                  20, 19 };
    size_t i;

    memset(up, 0, sizeof(*up));
    up->realm = "FUZZ.TEST";
    up->principal = "HTTP/www.fuzz.test@FUZZ.TEST";
    memset(up->kdc_cert_hash, 0xa5, TK_HASH_LEN);
    up->freshness_token.data = (char *)token;
    up->freshness_token.length = strlen(token);
    memset(up->body_checksum, 0x5a, TK_HASH_LEN);
    up->kvno = 7;
    for (i = 0; i < nkeys; i++) {
        memset(keys[i], 0x10 + (int)i, 32);
        up->keys[i].enctype = et[i];
        up->keys[i].contents = keys[i];
        up->keys[i].length = (et[i] == 17 || et[i] == 19) ? 16 : 32;
    }
    up->nkeys = nkeys;
    up->expiry = 1700086400;
}

static void
uploads(void)
{
    unsigned char keys[TK_MAX_KEYS][32];
    tk_upload up;
    krb5_data d;

    make_upload(&up, keys, 1, "");
    check(tk_encode_upload(ctx, &up, &d), "upload");
    write_data("upload", "one-key-no-token", &d);
    make_upload(&up, keys, TK_MAX_KEYS, "a freshness token from the KDC");
    up.kvno = 65535;
    check(tk_encode_upload(ctx, &up, &d), "upload");
    write_data("upload", "all-keys", &d);
}

/* A shared principal's: a member's fetch and the keys it gets. */
static void
fetch_and_held_keys(void)
{
    tk_fetch fetch;
    tk_held_key held[2];
    unsigned char k1[32], k2[16];
    krb5_data d;

    memset(&fetch, 0, sizeof(fetch));
    fetch.realm = "FUZZ.TEST";
    fetch.principal = "HTTP/www.fuzz.test@FUZZ.TEST";
    memset(fetch.kdc_cert_hash, 0x11, TK_HASH_LEN);
    memset(fetch.body_checksum, 0x22, TK_HASH_LEN);
    fetch.freshness_token.data = "freshness-token";
    fetch.freshness_token.length = 15;
    check(tk_encode_fetch(ctx, &fetch, &d), "fetch");
    write_data("fetch", "fetch", &d);
    memset(held, 0, sizeof(held));
    memset(k1, 0x41, sizeof(k1));
    memset(k2, 0x42, sizeof(k2));
    held[0].kvno = 6;
    held[0].expiry = 1700086400;
    held[0].active_at = 1700000000;
    held[0].nkeys = 2;
    held[0].keys[0].enctype = ENCTYPE_AES256_CTS_HMAC_SHA1_96;
    held[0].keys[0].length = 32;
    held[0].keys[0].contents = k1;
    held[0].keys[1].enctype = ENCTYPE_AES128_CTS_HMAC_SHA1_96;
    held[0].keys[1].length = 16;
    held[0].keys[1].contents = k2;
    held[1] = held[0];
    held[1].kvno = 7;
    held[1].active_at = 1700050600;
    check(tk_encode_held_keys(ctx, held, 2, &d), "held keys");
    write_data("held_keys", "two-versions", &d);
}

static void
acks_and_errors(void)
{
    tk_ack ack = { "HTTP/www.fuzz.test@FUZZ.TEST", 7, 1700086400,
                   1700050000 };
    krb5_data d;

    check(tk_encode_ack(ctx, &ack, &d), "ack");
    write_data("ack", "ack", &d);
    /* An adopted principal's, naming its long-term keys. */
    ack.long_term_kvno = 6;
    ack.long_term_until = 1700036000;
    check(tk_encode_ack(ctx, &ack, &d), "ack");
    write_data("ack", "adopted", &d);
    /* A shared principal's, with its (here not really encrypted) keys. */
    ack.long_term_kvno = 0;
    ack.shared_keys.data = "\x30\x80";
    ack.shared_keys.length = 2;
    ack.share_delay = 600;
    ack.fetched = TRUE;
    ack.active_at = 1700050600;
    check(tk_encode_ack(ctx, &ack, &d), "ack");
    write_data("ack", "shared", &d);
    check(tk_encode_error(ctx, TK_REASON_KVNO_NOT_ABOVE_STORED,
                          "kvno 3 is not above the stored kvno 7", NULL, &d),
          "error");
    write_data("error", "kvno", &d);
    check(tk_encode_error(ctx, TK_REASON_NOT_PRIMARY, "this KDC is a "
                          "replica", "kdc1.fuzz.test:88", &d), "error");
    write_data("error", "not-primary", &d);
}

static void
metas(void)
{
    tk_key_record recs[3];
    tk_meta meta;
    unsigned char *der;
    size_t len;

    memset(&meta, 0, sizeof(meta));
    check(tk_meta_encode(ctx, &meta, &der, &len), "meta");
    write_seed("meta", "empty", der, len);
    free(der);
    memset(recs, 0, sizeof(recs));
    recs[0].kvno = 5;
    recs[0].expiry = 1700000000;
    recs[1].kvno = 6;
    recs[1].expiry = 1700003600;
    recs[1].has_uploader = 1;
    memset(recs[1].uploader, 0xcc, TK_UPLOADER_LEN);
    recs[2].kvno = 65535;
    recs[2].expiry = 9223372036854775807LL;
    recs[2].has_uploader = 1;
    meta.highest_kvno = 65535;
    meta.last_expiry = 1699990000;
    meta.generation = 42;
    meta.keys = recs;
    meta.nkeys = 3;
    check(tk_meta_encode(ctx, &meta, &der, &len), "meta");
    write_seed("meta", "three-records", der, len);
    free(der);
}

/* Real CMS: the upload as ktupdate signs it and encrypts it to the test KDC,
 * the KDC's signed offer (and an older KDC's key request). */
static void
cms(void)
{
    unsigned char keys[TK_MAX_KEYS][32];
    tk_identity *server, *kdc;
    tk_upload up;
    krb5_enctype et[2] = { 18, 17 };
    tk_key_request req = { "FUZZ.TEST", "HTTP/www.fuzz.test@FUZZ.TEST", et,
                           2, 86400, 6, 1700000000 };
    tk_offer offer = { "FUZZ.TEST", et, 2, 86400, 1700000000, 1700000120 };
    krb5_data der, sig, env;

    check(tk_identity_load(ctx, data_file("server-chain.pem"),
                           data_file("server-TEST-KEY.pem"), &server),
          "server identity");
    check(tk_identity_load(ctx, data_file("kdc.pem"),
                           data_file("kdc-TEST-KEY.pem"), &kdc),
          "KDC identity");
    make_upload(&up, keys, 2, "token");
    check(tk_cert_hash(ctx, kdc->cert, up.kdc_cert_hash), "hash");
    check(tk_encode_upload(ctx, &up, &der), "upload");
    check(tk_cms_sign(ctx, server, &der, &sig), "signing");
    free(der.data);
    check(tk_cms_encrypt(ctx, kdc->cert, &sig, &env), "encrypting");
    write_data("cms_enveloped", "upload", &env);
    write_data("cms_signed", "upload", &sig);
    check(tk_encode_key_request(ctx, &req, &der), "key request");
    check(tk_cms_sign(ctx, kdc, &der, &sig), "signing");
    free(der.data);
    write_data("cms_signed", "key-request", &sig);
    check(tk_encode_offer(ctx, &offer, &der), "offer");
    check(tk_cms_sign(ctx, kdc, &der, &sig), "signing");
    free(der.data);
    offers(&sig);
    write_data("cms_signed", "offer", &sig);
    tk_identity_free(server);
    tk_identity_free(kdc);
}

/* A ratchet file as a primary makes it (key_epoch 60 s), and one whose
 * first slot a crash cut short. */
static void
ratchets(void)
{
    char path[4096];
    unsigned char buf[TK_RATCHET_FILE_SIZE];
    FILE *f;

    snprintf(path, sizeof(path), "%s/ratchet.tmp", corpus);
    unlink(path);
    check(tk_ratchet_init(ctx, path, 60, 1700000000), "ratchet");
    f = fopen(path, "rb");
    if (f == NULL || fread(buf, 1, sizeof(buf), f) != sizeof(buf))
        die(path, EIO);
    fclose(f);
    unlink(path);
    strcat(path, ".lock");
    unlink(path);
    write_seed("ratchet", "made", buf, sizeof(buf));
    memset(buf + 40, 0, 32);
    write_seed("ratchet", "first-slot-torn", buf, sizeof(buf));
}

int
main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: mkseeds DATADIR CORPUSDIR\n");
        return 2;
    }
    datadir = argv[1];
    corpus = argv[2];
    setenv("KRB5_CONFIG", "/dev/null", 1);
    if (krb5_init_context(&ctx) != 0)
        return 1;
    if (mkdir(corpus, 0755) != 0 && errno != EEXIST)
        die(corpus, errno);
    key_requests();
    uploads();
    acks_and_errors();
    fetch_and_held_keys();
    metas();
    cms();
    ratchets();
    krb5_free_context(ctx);
    return 0;
}
