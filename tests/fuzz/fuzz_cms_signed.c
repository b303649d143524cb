/* fuzz_cms_signed.c - libFuzzer target: tk_cms_open_signed and then
 * tk_verify_chain against the test CA, the SignedData layer that the KDC
 * reaches after decryption (and ktupdate with the KDC's signed offer). */
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
    krb5_data in = { 0, (unsigned int)size, (char *)data };

    (void)fuzz_signed(fuzz_context(), &in);
    return 0;
}
