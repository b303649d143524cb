/* fuzz_key_request.c - libFuzzer target: tk_decode_key_request, the
 * KDC's offer that ktupdate parses; anything it accepts must re-encode to
 * a message that decodes to the same request. */
#include "fuzz.h"
#include "tkproto.h"

static int
same(const tk_key_request *a, const tk_key_request *b)
{
    return strcmp(a->realm, b->realm) == 0 &&
        strcmp(a->principal, b->principal) == 0 &&
        a->nenctypes == b->nenctypes &&
        memcmp(a->enctypes, b->enctypes,
               a->nenctypes * sizeof(*a->enctypes)) == 0 &&
        a->max_lifetime == b->max_lifetime &&
        a->current_kvno == b->current_kvno && a->kdc_time == b->kdc_time;
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
    tk_key_request *req = (tk_key_request *)1, *again = NULL, *third = NULL;

    if (tk_decode_key_request(ctx, &in, &req) != 0) {
        FUZZ_CHECK(req == NULL);
        return 0;
    }
    FUZZ_CHECK(req->nenctypes >= 1 && req->nenctypes <= TK_MAX_KEYS);
    FUZZ_CHECK(tk_encode_key_request(ctx, req, &der) == 0);
    FUZZ_CHECK(tk_decode_key_request(ctx, &der, &again) == 0);
    FUZZ_CHECK(same(req, again));
    /* Our own encoding is a fixed point. */
    FUZZ_CHECK(tk_encode_key_request(ctx, again, &der2) == 0);
    FUZZ_CHECK(fuzz_data_eq(&der, &der2));
    FUZZ_CHECK(tk_decode_key_request(ctx, &der2, &third) == 0);
    tk_key_request_free(third);
    tk_key_request_free(again);
    tk_key_request_free(req);
    free(der.data);
    free(der2.data);
    return 0;
}
