/* tk-upload.c - a test client that performs one upload, optionally with one
 * deliberate fault, and reports the KDC's verdict. */
/*
 * usage: tk-upload --cert FILE --key FILE --anchors FILE [--principal NAME]
 *        [--kvno N] [--enctype NAME] [--lifetime DUR] [--fault NAME]
 *        [--other-cert FILE] [--save-token FILE] [--token FILE]
 *        [--before-upload COMMAND] [--send-cert FILE] [--fetch]
 * Faults: kdc-hash, no-token, checksum, expiry, short-key, other-principal,
 * bad-signature, other-kdc (with --other-cert), empty, truncated, garbage,
 * oversized; and, in what the KDC sent, the unsigned hints of its offer
 * (hint-kvno: current kvno + 5, hint-principal: another principal,
 * hint-time: the KDC's time an hour on) or its signature
 * (offer-signature).  --before-upload runs COMMAND (sh -c) once the
 * KDC's offer is verified and before the upload is sent, so that a test
 * can change the principal between the two requests of one exchange.
 * Prints "stored kvno N expires T ticket-ends E renew-till R"
 * (exit 0), "refused REASON: TEXT" and, when the refusal names one,
 * "primary KDC: HOST[:PORT]" (exit 4), or an error (exit 1).  The keys are
 * random and written nowhere.  --send-cert adds the certificate in FILE to
 * the chain the upload carries, as a previous version of the client sent
 * the root along.  --fetch asks for a shared principal's keys instead of
 * uploading one and prints "fetched kvno N held K,K,..." (exit 0).
 */

#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/rand.h>

#include "tkclient.h"

krb5_error_code k5_plugin_register(krb5_context context, int interface_id,
                                   const char *modname,
                                   krb5_plugin_initvt_fn module);

static const char *fault = "";
static int fetch_only;
static long forced_kvno;
static krb5_enctype forced_enctype = ENCTYPE_AES256_CTS_HMAC_SHA1_96;
static const char *save_token_file, *token_file, *before_upload;
static char token_buf[4096], other_principal[256];

/* What an attacker on the path could do to the KDC's offer. */
static void
tamper_offer(tk_client_session *s, krb5_data *der)
{
    krb5_context ctx;
    tk_key_offer *ko = NULL;
    krb5_data out = { 0, 0, NULL };

    if (strncmp(fault, "hint-", 5) != 0 &&
        strcmp(fault, "offer-signature") != 0)
        return;
    if (krb5_init_context(&ctx) != 0)
        return;
    /* Only the KeyOffer, not the acknowledgement. */
    if (tk_decode_key_offer(ctx, der, &ko) == 0) {
        if (strcmp(fault, "hint-kvno") == 0)
            ko->current_kvno += 5;
        else if (strcmp(fault, "hint-principal") == 0)
            ko->principal[0] ^= 0x20;
        else if (strcmp(fault, "hint-time") == 0)
            ko->kdc_time += 3600;
        else        /* the signature value ends the SignedData */
            ko->signed_offer.data[ko->signed_offer.length - 1] ^= 0x01;
        if (tk_encode_key_offer(ctx, ko, &out) == 0) {
            free(der->data);
            *der = out;
        }
    }
    tk_key_offer_free(ko);
    krb5_free_context(ctx);
}

static krb5_error_code
prepare(krb5_context ctx, tk_client_session *s)
{
    if (before_upload != NULL && system(before_upload) != 0) {
        snprintf(s->message, sizeof(s->message), "--before-upload failed");
        return EINVAL;
    }
    if (fetch_only) {
        s->fetch = TRUE;
        return 0;
    }
    s->kvno = forced_kvno ? (krb5_kvno)forced_kvno :
        s->request->current_kvno + 1;
    s->nkeys = 1;
    return krb5_c_make_random_key(ctx, forced_enctype, &s->keys[0]);
}

static void
tamper_upload(tk_client_session *s, tk_upload *up)
{
    FILE *f;
    size_t n;

    if (save_token_file != NULL && (f = fopen(save_token_file, "w"))) {
        fwrite(up->freshness_token.data, 1, up->freshness_token.length, f);
        fclose(f);
    }
    if (token_file != NULL && (f = fopen(token_file, "r"))) {
        n = fread(token_buf, 1, sizeof(token_buf), f);
        fclose(f);
        up->freshness_token.data = token_buf;
        up->freshness_token.length = n;
    }
    if (strcmp(fault, "kdc-hash") == 0)
        up->kdc_cert_hash[0] ^= 0xff;
    else if (strcmp(fault, "no-token") == 0)
        up->freshness_token.length = 0;
    else if (strcmp(fault, "checksum") == 0)
        up->body_checksum[0] ^= 0xff;
    else if (strcmp(fault, "expiry") == 0)
        up->expiry += s->request->max_lifetime + 3600;
    else if (strcmp(fault, "short-key") == 0)
        up->keys[0].length -= 1;
    else if (strcmp(fault, "other-principal") == 0)
        up->principal = other_principal;
}

static void
tamper_signed(tk_client_session *s, krb5_data *der)
{
    /* The signature value ends the SignedData. */
    if (strcmp(fault, "bad-signature") == 0)
        der->data[der->length - 1] ^= 0x01;
}

static void
tamper_padata(tk_client_session *s, krb5_data *der)
{
    char *p;

    if (strcmp(fault, "empty") == 0) {
        der->length = 0;
    } else if (strcmp(fault, "truncated") == 0) {
        der->length /= 2;
    } else if (strcmp(fault, "garbage") == 0) {
        RAND_bytes((unsigned char *)der->data, der->length);
    } else if (strcmp(fault, "oversized") == 0) {
        p = realloc(der->data, TK_MAX_MESSAGE + 1000);
        if (p == NULL)
            return;
        memset(p + der->length, 0, TK_MAX_MESSAGE + 1000 - der->length);
        der->data = p;
        der->length = TK_MAX_MESSAGE + 1000;
    }
}

static X509 *
read_cert(const char *file)
{
    FILE *f = fopen(file, "r");
    X509 *x;

    if (f == NULL)
        return NULL;
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    return x;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "cert", required_argument, NULL, 'c' },
        { "key", required_argument, NULL, 'k' },
        { "anchors", required_argument, NULL, 'a' },
        { "principal", required_argument, NULL, 'p' },
        { "kvno", required_argument, NULL, 'n' },
        { "enctype", required_argument, NULL, 'e' },
        { "lifetime", required_argument, NULL, 'l' },
        { "fault", required_argument, NULL, 'f' },
        { "other-cert", required_argument, NULL, 'o' },
        { "save-token", required_argument, NULL, 's' },
        { "token", required_argument, NULL, 't' },
        { "before-upload", required_argument, NULL, 'b' },
        { "send-cert", required_argument, NULL, 'S' },
        { "fetch", no_argument, NULL, 'F' },
        { NULL, 0, NULL, 0 }
    };
    const char *cert = NULL, *key = NULL, *anchors = NULL, *princ = NULL;
    const char *other = NULL, *lifetime = "1h", *send_cert = NULL;
    X509 *extra = NULL;
    krb5_context ctx = NULL;
    krb5_error_code ret;
    tk_client_session s;
    krb5_get_init_creds_opt *gic = NULL;
    krb5_preauthtype pa_list[1] = { TK_PADATA };
    /* The reply needs an enctype the KDC accepts even if the key is not. */
    krb5_enctype etypes[2] = { 0, ENCTYPE_AES256_CTS_HMAC_SHA1_96 };
    krb5_principal client = NULL;
    krb5_creds creds;
    char *anchor_spec[2] = { NULL, NULL }, when[TK_TIME_LEN];
    int c, status = 1;
    size_t i;

    memset(&s, 0, sizeof(s));
    memset(&creds, 0, sizeof(creds));
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c': cert = optarg; break;
        case 'k': key = optarg; break;
        case 'a': anchors = optarg; break;
        case 'p': princ = optarg; break;
        case 'n': forced_kvno = strtol(optarg, NULL, 10); break;
        case 'e':
            if (krb5_string_to_enctype(optarg, &forced_enctype) != 0)
                return 2;
            break;
        case 'l': lifetime = optarg; break;
        case 'f': fault = optarg; break;
        case 'o': other = optarg; break;
        case 's': save_token_file = optarg; break;
        case 't': token_file = optarg; break;
        case 'b': before_upload = optarg; break;
        case 'S': send_cert = optarg; break;
        case 'F': fetch_only = 1; break;
        default: return 2;
        }
    }
    if (cert == NULL || key == NULL || anchors == NULL || princ == NULL)
        return 2;
    snprintf(other_principal, sizeof(other_principal), "HTTP/other.test@%s",
             strchr(princ, '@') ? strchr(princ, '@') + 1 : "");
    ret = krb5_init_context(&ctx);
    if (ret == 0)
        ret = k5_plugin_register(ctx, 2, "tempkey", clpreauth_tempkey_initvt);
    if (ret == 0)
        ret = tk_identity_load(ctx, cert, key, &s.id);
    if (ret == 0 && asprintf(&anchor_spec[0], "FILE:%s", anchors) < 0)
        ret = ENOMEM;
    if (ret == 0)
        ret = tk_trust_load(ctx, anchor_spec, NULL, NULL, &s.kdc_trust);
    if (ret == 0)
        ret = krb5_parse_name(ctx, princ, &client);
    if (ret == 0)
        ret = tk_parse_duration(ctx, "--lifetime", lifetime, &s.lifetime);
    if (ret == 0 && other != NULL && (s.recipient = read_cert(other)) == NULL)
        ret = ENOENT;
    if (ret == 0 && send_cert != NULL) {
        extra = read_cert(send_cert);
        if (extra == NULL || !sk_X509_push(s.id->chain, extra))
            ret = ENOENT;
        else
            extra = NULL;
    }
    if (ret == 0)
        ret = krb5_get_init_creds_opt_alloc(ctx, &gic);
    if (ret) {
        fprintf(stderr, "tk-upload: setup failed: %s\n",
                krb5_get_error_message(ctx, ret));
        goto cleanup;
    }
    krb5_get_init_creds_opt_set_preauth_list(gic, pa_list, 1);
    /* Ask for more than any temporary key lasts. */
    krb5_get_init_creds_opt_set_tkt_life(gic, 10 * 3600);
    krb5_get_init_creds_opt_set_renew_life(gic, 7 * 86400);
    etypes[0] = forced_enctype;
    krb5_get_init_creds_opt_set_etype_list(gic, etypes, 2);
    s.principal = client;
    s.prepare = prepare;
    s.tamper_offer = tamper_offer;
    s.tamper_upload = tamper_upload;
    s.tamper_signed = tamper_signed;
    s.tamper_padata = tamper_padata;
    tk_client_set_session(&s);
    ret = krb5_get_init_creds_password(ctx, &creds, client, NULL, NULL, NULL,
                                       0, NULL, gic);
    tk_client_set_session(NULL);
    if (ret == 0 && s.ack != NULL && s.ack->fetched) {
        printf("fetched kvno %u held", s.ack->kvno);
        for (i = 0; i < s.nheld; i++)
            printf("%s%u", i ? "," : " ", s.held[i].kvno);
        printf("\n");
        status = 0;
    } else if (ret == 0 && s.ack != NULL) {
        tk_format_time(s.ack->expiry, when);
        printf("stored kvno %u expires %s", s.ack->kvno, when);
        /* The ticket the exchange gave, for the tests of its caps. */
        tk_format_time((uint32_t)creds.times.endtime, when);
        printf(" ticket-ends %s", when);
        tk_format_time((uint32_t)creds.times.renew_till, when);
        printf(" renew-till %s\n", creds.times.renew_till ? when : "none");
        status = 0;
    } else if (s.reason != 0) {
        printf("refused %s: %s\n", tk_reason_name(s.reason), s.message);
        if (*s.primary != '\0')
            printf("primary KDC: %s\n", s.primary);
        status = 4;
    } else {
        printf("failed: %s: %s\n", s.message,
               ret ? krb5_get_error_message(ctx, ret) : "no acknowledgement");
    }

cleanup:
    krb5_free_cred_contents(ctx, &creds);
    krb5_get_init_creds_opt_free(ctx, gic);
    tk_client_session_clear(&s);
    tk_identity_free(s.id);
    tk_trust_free(s.kdc_trust);
    X509_free(s.recipient);
    X509_free(extra);
    free(anchor_spec[0]);
    krb5_free_principal(ctx, client);
    krb5_free_context(ctx);
    return status;
}
