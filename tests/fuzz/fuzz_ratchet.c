/* fuzz_ratchet.c - libFuzzer target: the ratchet file as every process that
 * opens the database reads it (a restored backup, a copy made for a
 * replica, a disk error), then a wrapped key under it.  The input's first
 * TK_RATCHET_FILE_SIZE bytes (or all of it, if shorter) are the file; the
 * rest is a wrapped key.  An accepted file must be whole; nothing may open
 * a key the ratchet did not wrap. */
#include "fuzz.h"

#include <unistd.h>

#include "tkratchet.h"

static char dir[] = "/dev/shm/fuzz-ratchet-XXXXXX", path[64];

static void
remove_dir(void)
{
    unlink(path);
    rmdir(dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_context();
    /* In memory: the file is written once per input. */
    FUZZ_CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/ratchet", dir);
    atexit(remove_dir);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    krb5_context ctx = fuzz_context();
    size_t filelen = size < TK_RATCHET_FILE_SIZE ? size : TK_RATCHET_FILE_SIZE;
    unsigned char marker[TK_RATCHET_MARKER_LEN];
    krb5_data md = { 0, sizeof(marker), (char *)marker };
    krb5_keyblock wrapped, out;
    tk_ratchet *r = NULL;
    FILE *f;

    f = fopen(path, "wb");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(fwrite(data, 1, filelen, f) == filelen);
    fclose(f);
    /* Its own key_epoch is 60 s in the seeds; the clock is the file's. */
    if (tk_ratchet_open(ctx, path, 60, TK_RATCHET_READ_ONLY, 0, &r) != 0) {
        krb5_clear_error_message(ctx);
        return 0;
    }
    FUZZ_CHECK(filelen == TK_RATCHET_FILE_SIZE);
    if (tk_ratchet_marker(ctx, r, (int64_t)tk_ratchet_epoch(r) * 60 + 61,
                          marker) == 0) {
        wrapped.magic = KV5M_KEYBLOCK;
        wrapped.enctype = ENCTYPE_AES256_CTS_HMAC_SHA1_96;
        wrapped.length = size - filelen;
        wrapped.contents = (krb5_octet *)data + filelen;
        FUZZ_CHECK(tk_ratchet_unwrap(ctx, r, &md, 1, &wrapped, &out) != 0);
    }
    krb5_clear_error_message(ctx);
    tk_ratchet_close(r);
    return 0;
}
