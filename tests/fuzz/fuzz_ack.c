/* fuzz_ack.c - libFuzzer target: tk_decode_ack, the KDC's acknowledgement
 * that ktupdate parses; anything it accepts must round-trip. */
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
    tk_ack *ack = (tk_ack *)1, *again = NULL;

    if (tk_decode_ack(ctx, &in, &ack) != 0) {
        FUZZ_CHECK(ack == NULL);
        return 0;
    }
    FUZZ_CHECK(ack->kvno >= 1 && ack->kvno <= 65535);
    FUZZ_CHECK(ack->long_term_kvno < ack->kvno);
    FUZZ_CHECK(tk_encode_ack(ctx, ack, &der) == 0);
    FUZZ_CHECK(tk_decode_ack(ctx, &der, &again) == 0);
    FUZZ_CHECK(strcmp(ack->principal, again->principal) == 0 &&
               ack->kvno == again->kvno && ack->expiry == again->expiry &&
               ack->refresh_by == again->refresh_by &&
               ack->long_term_kvno == again->long_term_kvno &&
               ack->long_term_until == again->long_term_until &&
               fuzz_data_eq(&ack->shared_keys, &again->shared_keys) &&
               ack->share_delay == again->share_delay &&
               ack->fetched == again->fetched &&
               ack->active_at == again->active_at);
    FUZZ_CHECK(tk_encode_ack(ctx, again, &der2) == 0);
    FUZZ_CHECK(fuzz_data_eq(&der, &der2));
    tk_ack_free(again);
    tk_ack_free(ack);
    free(der.data);
    free(der2.data);
    return 0;
}
