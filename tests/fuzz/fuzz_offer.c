/* fuzz_offer.c - libFuzzer target: tk_decode_key_offer, the padata of the
 * KDC's PREAUTH_REQUIRED that ktupdate reads before any signature is
 * checked, and tk_decode_offer, the signed Offer inside it; anything either
 * accepts must re-encode to a message that decodes to the same fields. */
#include "fuzz.h"
#include "tkproto.h"

static int
same_offer(const tk_offer *a, const tk_offer *b)
{
    return strcmp(a->realm, b->realm) == 0 && a->nenctypes == b->nenctypes &&
        memcmp(a->enctypes, b->enctypes,
               a->nenctypes * sizeof(*a->enctypes)) == 0 &&
        a->max_lifetime == b->max_lifetime && a->signed_at == b->signed_at &&
        a->valid_until == b->valid_until;
}

static int
same_key_offer(const tk_key_offer *a, const tk_key_offer *b)
{
    return fuzz_data_eq(&a->signed_offer, &b->signed_offer) &&
        strcmp(a->principal, b->principal) == 0 &&
        a->current_kvno == b->current_kvno && a->kdc_time == b->kdc_time;
}

static void
key_offer(krb5_context ctx, const krb5_data *in)
{
    krb5_data der = { 0, 0, NULL }, der2 = { 0, 0, NULL };
    tk_key_offer *ko = (tk_key_offer *)1, *again = NULL;

    if (tk_decode_key_offer(ctx, in, &ko) != 0) {
        FUZZ_CHECK(ko == NULL);
        return;
    }
    FUZZ_CHECK(ko->signed_offer.length >= 1 &&
               ko->signed_offer.length <= TK_MAX_MESSAGE);
    FUZZ_CHECK(tk_encode_key_offer(ctx, ko, &der) == 0);
    FUZZ_CHECK(tk_decode_key_offer(ctx, &der, &again) == 0);
    FUZZ_CHECK(same_key_offer(ko, again));
    FUZZ_CHECK(tk_encode_key_offer(ctx, again, &der2) == 0);
    FUZZ_CHECK(fuzz_data_eq(&der, &der2));
    tk_key_offer_free(again);
    tk_key_offer_free(ko);
    free(der.data);
    free(der2.data);
}

static void
offer(krb5_context ctx, const krb5_data *in)
{
    krb5_data der = { 0, 0, NULL }, der2 = { 0, 0, NULL };
    tk_offer *o = (tk_offer *)1, *again = NULL;

    if (tk_decode_offer(ctx, in, &o) != 0) {
        FUZZ_CHECK(o == NULL);
        return;
    }
    FUZZ_CHECK(o->nenctypes >= 1 && o->nenctypes <= TK_MAX_KEYS);
    FUZZ_CHECK(o->valid_until >= o->signed_at);
    FUZZ_CHECK(tk_encode_offer(ctx, o, &der) == 0);
    FUZZ_CHECK(tk_decode_offer(ctx, &der, &again) == 0);
    FUZZ_CHECK(same_offer(o, again));
    FUZZ_CHECK(tk_encode_offer(ctx, again, &der2) == 0);
    FUZZ_CHECK(fuzz_data_eq(&der, &der2));
    tk_offer_free(again);
    tk_offer_free(o);
    free(der.data);
    free(der2.data);
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

    key_offer(ctx, &in);
    offer(ctx, &in);
    return 0;
}
