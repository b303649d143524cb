/* fuzz_upload.c - libFuzzer target: tk_decode_upload, which the KDC runs
 * on the content of any SignedData that verifies (the signer's key need not
 * be trusted yet) and the KDB module on the upload handed to it; anything
 * it accepts must round-trip. */
#include "fuzz.h"
#include "tkproto.h"

static int
same(const tk_upload *a, const tk_upload *b)
{
    size_t i;

    if (strcmp(a->realm, b->realm) != 0 ||
        strcmp(a->principal, b->principal) != 0 ||
        memcmp(a->kdc_cert_hash, b->kdc_cert_hash, TK_HASH_LEN) != 0 ||
        !fuzz_data_eq(&a->freshness_token, &b->freshness_token) ||
        memcmp(a->body_checksum, b->body_checksum, TK_HASH_LEN) != 0 ||
        a->kvno != b->kvno || a->nkeys != b->nkeys || a->expiry != b->expiry)
        return 0;
    for (i = 0; i < a->nkeys; i++) {
        if (a->keys[i].enctype != b->keys[i].enctype ||
            a->keys[i].length != b->keys[i].length ||
            memcmp(a->keys[i].contents, b->keys[i].contents,
                   a->keys[i].length) != 0)
            return 0;
    }
    return 1;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_context();
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    krb5_context ctx = fuzz_context();
    krb5_data in = { 0, (unsigned int)size, (char *)data };
    krb5_data der = { 0, 0, NULL }, der2 = { 0, 0, NULL };
    tk_upload *up = (tk_upload *)1, *again = NULL;
    size_t i;

    if (tk_decode_upload(ctx, &in, &up) != 0) {
        FUZZ_CHECK(up == NULL);
        return 0;
    }
    FUZZ_CHECK(up->nkeys >= 1 && up->nkeys <= TK_MAX_KEYS);
    FUZZ_CHECK(up->kvno >= 1 && up->kvno <= 65535);
    for (i = 0; i < up->nkeys; i++)
        FUZZ_CHECK(up->keys[i].length >= 1 && up->keys[i].length <= 64);
    FUZZ_CHECK(up->freshness_token.length <= 4096);
    FUZZ_CHECK(tk_encode_upload(ctx, up, &der) == 0);
    FUZZ_CHECK(tk_decode_upload(ctx, &der, &again) == 0);
    FUZZ_CHECK(same(up, again));
    FUZZ_CHECK(tk_encode_upload(ctx, again, &der2) == 0);
    FUZZ_CHECK(fuzz_data_eq(&der, &der2));
    tk_upload_free(again);
    tk_upload_free(up);
    free(der.data);
    free(der2.data);
    return 0;
}
