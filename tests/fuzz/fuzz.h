/* fuzz.h - what the libFuzzer harnesses share: one krb5 context that reads
 * no system configuration, and a check that turns a broken invariant into a
 * crash libFuzzer reports. */
#ifndef TK_FUZZ_H
#define TK_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <krb5.h>

/* Where the test PKI lives; TK_FUZZ_DATA in the environment overrides the
 * source directory compiled in. */
#ifndef TK_FUZZ_DATA
#define TK_FUZZ_DATA "tests/fuzz/data"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A failed invariant is a finding: abort so that libFuzzer saves the
 * input. */
#define FUZZ_CHECK(cond)                                                \
    do {                                                                \
        if (!(cond)) {                                                  \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,      \
                    __LINE__, #cond);                                   \
            abort();                                                    \
        }                                                               \
    } while (0)

static krb5_context fuzz_ctx;

/* The context every input uses.  KRB5_CONFIG=/dev/null: a harness never
 * reads /etc/krb5.conf. */
static inline krb5_context
fuzz_context(void)
{
    if (fuzz_ctx == NULL) {
        setenv("KRB5_CONFIG", "/dev/null", 1);
        FUZZ_CHECK(krb5_init_context(&fuzz_ctx) == 0);
    }
    return fuzz_ctx;
}

/* The path of a file of the test PKI, in a static buffer. */
static inline const char *
fuzz_data_file(const char *name)
{
    static char path[4096];
    const char *dir = getenv("TK_FUZZ_DATA");

    snprintf(path, sizeof(path), "%s/%s", dir != NULL ? dir : TK_FUZZ_DATA,
             name);
    return path;
}

static inline int
fuzz_data_eq(const krb5_data *a, const krb5_data *b)
{
    return a->length == b->length &&
        (a->length == 0 || memcmp(a->data, b->data, a->length) == 0);
}

#endif /* TK_FUZZ_H */
