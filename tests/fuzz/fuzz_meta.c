/* fuzz_meta.c - libFuzzer target: tk_meta_decode, the key-record codec the
 * KDC and every admin tool run on each managed entry's tl_data (which a
 * kdb5_util load or a replica's kpropd may bring from elsewhere).  Anything
 * it accepts must satisfy the record invariants, survive the rules the KDC
 * applies, and round-trip. */
#include "fuzz.h"
#include "tempkey.h"

static int
same(const tk_meta *a, const tk_meta *b)
{
    size_t i;

    if (a->highest_kvno != b->highest_kvno ||
        a->last_expiry != b->last_expiry || a->generation != b->generation ||
        a->nkeys != b->nkeys)
        return 0;
    for (i = 0; i < a->nkeys; i++) {
        const tk_key_record *x = &a->keys[i], *y = &b->keys[i];

        if (x->kvno != y->kvno || x->expiry != y->expiry ||
            x->has_uploader != y->has_uploader ||
            (x->has_uploader &&
             memcmp(x->uploader, y->uploader, TK_UPLOADER_LEN) != 0))
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
    tk_meta *meta = (tk_meta *)1, *again = NULL;
    unsigned char *der = NULL, *der2 = NULL;
    size_t len = 0, len2 = 0, i, n;
    tk_key_record rec;
    int64_t now = 1700000000;

    if (tk_meta_decode(ctx, data, size, &meta) != 0) {
        FUZZ_CHECK(meta == NULL);
        return 0;
    }
    for (i = 0; i < meta->nkeys; i++) {
        FUZZ_CHECK(meta->keys[i].kvno >= 1 &&
                   meta->keys[i].kvno <= meta->highest_kvno);
        FUZZ_CHECK(i == 0 || meta->keys[i - 1].kvno < meta->keys[i].kvno);
        FUZZ_CHECK(tk_meta_find(meta, meta->keys[i].kvno) == &meta->keys[i]);
    }
    FUZZ_CHECK(tk_meta_encode(ctx, meta, &der, &len) == 0);
    FUZZ_CHECK(tk_meta_decode(ctx, der, len, &again) == 0);
    FUZZ_CHECK(same(meta, again));
    FUZZ_CHECK(tk_meta_encode(ctx, again, &der2, &len2) == 0);
    FUZZ_CHECK(len == len2 && memcmp(der, der2, len) == 0);

    /* The rules the KDC and the purge apply to a decoded record set. */
    (void)tk_meta_newest_live(again, now);
    (void)tk_meta_next_expiry(again);
    n = again->nkeys;
    FUZZ_CHECK(tk_meta_drop_expired(again, now) <= n);
    for (i = 0; i < again->nkeys; i++)
        FUZZ_CHECK(again->keys[i].expiry > now);
    if (again->highest_kvno < TK_KVNO_MAX) {
        memset(&rec, 0, sizeof(rec));
        rec.kvno = again->highest_kvno + 1;
        rec.expiry = now + 3600;
        FUZZ_CHECK(tk_meta_add(ctx, again, &rec) == 0);
        FUZZ_CHECK(tk_meta_newest_live(again, now)->kvno == rec.kvno);
    }
    tk_meta_free(again);
    tk_meta_free(meta);
    free(der);
    free(der2);
    return 0;
}
