/* fuzz_error.c - libFuzzer target: tk_decode_error, the refusal e-data
 * that ktupdate parses from any KDC; anything it accepts must
 * round-trip. */
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
    char *text = (char *)1, *primary = (char *)1, *text2 = NULL;
    char *primary2 = NULL;
    int reason = -1, reason2 = -1;

    if (tk_decode_error(ctx, &in, &reason, &text, &primary) != 0) {
        FUZZ_CHECK(text == NULL && primary == NULL);
        return 0;
    }
    FUZZ_CHECK(reason >= 0 && text != NULL);
    /* What ktupdate prints of it. */
    FUZZ_CHECK(tk_reason_name(reason) != NULL);
    FUZZ_CHECK(tk_encode_error(ctx, reason, text, primary, &der) == 0);
    FUZZ_CHECK(tk_decode_error(ctx, &der, &reason2, &text2, &primary2) == 0);
    FUZZ_CHECK(reason == reason2 && strcmp(text, text2) == 0);
    FUZZ_CHECK((primary == NULL && primary2 == NULL) ||
               (primary != NULL && primary2 != NULL &&
                strcmp(primary, primary2) == 0));
    FUZZ_CHECK(tk_encode_error(ctx, reason2, text2, primary2, &der2) == 0);
    FUZZ_CHECK(fuzz_data_eq(&der, &der2));
    free(text);
    free(primary);
    free(text2);
    free(primary2);
    free(der.data);
    free(der2.data);
    return 0;
}
