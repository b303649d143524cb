/* fuzz_held_keys.c - libFuzzer target: tk_decode_held_keys, the keys of a
 * shared principal that a member decrypts from the KDC's Ack; anything it
 * accepts must round-trip. */
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
    tk_held_key *keys = (tk_held_key *)1, *again = NULL;
    size_t n = 1, n2 = 0, i, j;

    if (tk_decode_held_keys(ctx, &in, &keys, &n) != 0) {
        FUZZ_CHECK(keys == NULL && n == 0);
        return 0;
    }
    FUZZ_CHECK(n >= 1 && n <= TK_MAX_HELD);
    for (i = 0; i < n; i++) {
        FUZZ_CHECK(keys[i].kvno >= 1 && keys[i].kvno <= 65535);
        FUZZ_CHECK(keys[i].nkeys >= 1 && keys[i].nkeys <= TK_MAX_KEYS);
        for (j = 0; j < keys[i].nkeys; j++)
            FUZZ_CHECK(keys[i].keys[j].length >= 1 &&
                       keys[i].keys[j].length <= 64);
    }
    FUZZ_CHECK(tk_encode_held_keys(ctx, keys, n, &der) == 0);
    FUZZ_CHECK(tk_decode_held_keys(ctx, &der, &again, &n2) == 0);
    FUZZ_CHECK(n2 == n);
    for (i = 0; i < n; i++) {
        FUZZ_CHECK(keys[i].kvno == again[i].kvno &&
                   keys[i].expiry == again[i].expiry &&
                   keys[i].active_at == again[i].active_at &&
                   keys[i].nkeys == again[i].nkeys);
    }
    FUZZ_CHECK(tk_encode_held_keys(ctx, again, n2, &der2) == 0);
    FUZZ_CHECK(fuzz_data_eq(&der, &der2));
    tk_held_keys_free(again, n2);
    tk_held_keys_free(keys, n);
    free(der.data);
    free(der2.data);
    return 0;
}
