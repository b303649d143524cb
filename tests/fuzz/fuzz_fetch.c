/* fuzz_fetch.c - libFuzzer target: tk_decode_fetch, a shared principal's
 * member asking for its keys (decoded by the KDC after the signature is
 * checked); anything it accepts must round-trip. */
#include "fuzz.h"
#include "tkproto.h"

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
    tk_fetch *fetch = (tk_fetch *)1, *again = NULL;

    if (tk_decode_fetch(ctx, &in, &fetch) != 0) {
        FUZZ_CHECK(fetch == NULL);
        return 0;
    }
    FUZZ_CHECK(fetch->realm != NULL && fetch->principal != NULL);
    FUZZ_CHECK(tk_encode_fetch(ctx, fetch, &der) == 0);
    FUZZ_CHECK(tk_decode_fetch(ctx, &der, &again) == 0);
    FUZZ_CHECK(strcmp(fetch->realm, again->realm) == 0 &&
               strcmp(fetch->principal, again->principal) == 0 &&
               memcmp(fetch->kdc_cert_hash, again->kdc_cert_hash,
                      TK_HASH_LEN) == 0 &&
               memcmp(fetch->body_checksum, again->body_checksum,
                      TK_HASH_LEN) == 0 &&
               fuzz_data_eq(&fetch->freshness_token,
                            &again->freshness_token));
    FUZZ_CHECK(tk_encode_fetch(ctx, again, &der2) == 0);
    FUZZ_CHECK(fuzz_data_eq(&der, &der2));
    tk_fetch_free(again);
    tk_fetch_free(fetch);
    free(der.data);
    free(der2.data);
    return 0;
}
