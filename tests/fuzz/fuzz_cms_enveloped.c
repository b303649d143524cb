/* fuzz_cms_enveloped.c - libFuzzer target: tk_cms_decrypt with the test
 * KDC's key, the first thing the KDC runs on an upload's padata (before any
 * authentication), then the SignedData inside as the KDC checks it. */
#include "cms.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_load_pki();
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    krb5_context ctx = fuzz_context();
    krb5_data in = { 0, (unsigned int)size, (char *)data };
    krb5_data inner = { 0, 0, NULL };

    if (tk_cms_decrypt(ctx, fuzz_kdc, &in, &inner) != 0) {
        FUZZ_CHECK(inner.data == NULL);
        ERR_clear_error();
        return 0;
    }
    (void)fuzz_signed(ctx, &inner);
    OPENSSL_cleanse(inner.data, inner.length);
    free(inner.data);
    ERR_clear_error();
    return 0;
}
