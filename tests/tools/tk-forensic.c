/* tk-forensic.c - look for temporary keys in a KDC host's files the way a
 * thief with those files would. */
/*
 * usage: tk-forensic --stash FILE --keytab FILE [--ratchet FILE
 *        --key-epoch SECONDS] [--ahead N] FILE...
 *
 * Every FILE (a db2 file with its free pages, a dump, an update log, a
 * backup) is searched for key data encrypted under a master key from the
 * stash: at every byte offset, and inside every run of hex digits (dumps
 * write keys in hex).  Each blob that decrypts is compared with the keys of
 * --keytab (the keys sought).  A blob that is a ratchet-wrapped key is
 * then attacked with the ratchet file as found (--ratchet): its wrapping
 * keys for the epochs the files' ratchet markers name and for the file's
 * epoch and the N after it (--ahead, default 64), as anyone can step a
 * ratchet forward, never back.
 *
 * Prints "ratchet epoch: E" (the file's, as found), per file "FILE: B blobs, C clear keys, W wrapped keys opened" and
 * one line "found: K" with the number of distinct sought keys recovered.
 * Exit 0 whatever is found; 1 on an error.
 */

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <krb5.h>

#include "tkratchet.h"

typedef struct {
    krb5_keyblock key;
    krb5_kvno kvno;
    int found;
} sought_key;

static krb5_context ctx;
static krb5_keyblock *mkeys;
static size_t nmkeys;
static sought_key *sought;
static size_t nsought;
static tk_ratchet *ratchet;
static unsigned long ahead = 64;
static unsigned long blobs, clear_hits, wrapped_hits;
/* Epochs named by ratchet markers seen in the files searched so far (the
 * salt beside each wrapped key says which epoch wraps it). */
static uint64_t *seen_epochs;
static size_t nseen;

static void
die(krb5_error_code code, const char *what)
{
    const char *msg = code ? krb5_get_error_message(ctx, code) : "";

    fprintf(stderr, "tk-forensic: %s%s%s\n", what, code ? ": " : "", msg);
    exit(1);
}

/* Append every key of the keytab at path to *list. */
static void
read_keytab(const char *path, krb5_keyblock **keys, sought_key **entries,
            size_t *count)
{
    krb5_error_code ret;
    krb5_keytab kt;
    krb5_kt_cursor cur;
    krb5_keytab_entry e;
    char name[4096];

    snprintf(name, sizeof(name), "FILE:%s", path);
    ret = krb5_kt_resolve(ctx, name, &kt);
    if (ret == 0)
        ret = krb5_kt_start_seq_get(ctx, kt, &cur);
    if (ret)
        die(ret, path);
    while (krb5_kt_next_entry(ctx, kt, &e, &cur) == 0) {
        if (keys != NULL) {
            *keys = realloc(*keys, (*count + 1) * sizeof(**keys));
            if (*keys == NULL)
                die(ENOMEM, "memory");
            krb5_copy_keyblock_contents(ctx, &e.key, &(*keys)[*count]);
        } else {
            *entries = realloc(*entries, (*count + 1) * sizeof(**entries));
            if (*entries == NULL)
                die(ENOMEM, "memory");
            memset(&(*entries)[*count], 0, sizeof(**entries));
            krb5_copy_keyblock_contents(ctx, &e.key, &(*entries)[*count].key);
            (*entries)[*count].kvno = e.vno;
        }
        (*count)++;
        krb5_free_keytab_entry_contents(ctx, &e);
    }
    krb5_kt_end_seq_get(ctx, kt, &cur);
    krb5_kt_close(ctx, kt);
}

static void
note_clear(const unsigned char *p, size_t len)
{
    size_t i;

    for (i = 0; i < nsought; i++) {
        if (sought[i].key.length == len &&
            memcmp(sought[i].key.contents, p, len) == 0) {
            clear_hits++;
            sought[i].found = 1;
        }
    }
}

/* Note the epoch of every marker of this ratchet in buf. */
static void
gather_markers(const unsigned char *buf, size_t n)
{
    krb5_data d;
    unsigned char id[TK_RATCHET_ID_LEN];
    uint64_t epoch;
    size_t off, i;

    if (ratchet == NULL)
        return;
    for (off = 0; off + TK_RATCHET_MARKER_LEN <= n; off++) {
        if (memcmp(buf + off, "tkr1", 4) != 0)
            continue;
        d.data = (char *)buf + off;
        d.length = TK_RATCHET_MARKER_LEN;
        if (!tk_ratchet_parse_marker(&d, id, &epoch) ||
            memcmp(id, tk_ratchet_id(ratchet), TK_RATCHET_ID_LEN) != 0)
            continue;
        for (i = 0; i < nseen && seen_epochs[i] != epoch; i++)
            ;
        if (i < nseen)
            continue;
        seen_epochs = realloc(seen_epochs, (nseen + 1) * sizeof(uint64_t));
        if (seen_epochs == NULL)
            die(ENOMEM, "memory");
        seen_epochs[nseen++] = epoch;
    }
}

/* Try one epoch's wrapping key on a wrapped key: 1 if it opens. */
static int
try_epoch(const krb5_keyblock *wrapped, krb5_kvno kvno, uint64_t e)
{
    unsigned char marker[TK_RATCHET_MARKER_LEN];
    krb5_keyblock out;
    krb5_data md;
    size_t j;

    memcpy(marker, "tkr1", 4);
    memcpy(marker + 4, tk_ratchet_id(ratchet), TK_RATCHET_ID_LEN);
    for (j = 0; j < 8; j++)
        marker[4 + TK_RATCHET_ID_LEN + j] = (e >> (56 - 8 * j)) & 0xff;
    md.data = (char *)marker;
    md.length = sizeof(marker);
    if (tk_ratchet_unwrap(ctx, ratchet, &md, kvno, wrapped, &out) != 0)
        return 0;
    wrapped_hits++;
    for (j = 0; j < nsought; j++) {
        if (sought[j].key.length == out.length &&
            memcmp(sought[j].key.contents, out.contents, out.length) == 0)
            sought[j].found = 1;
    }
    krb5_free_keyblock_contents(ctx, &out);
    return 1;
}

/* Try to open a wrapped key with every wrapping key the file still
 * yields (the epochs its markers name, and the next few), for the kvno
 * and enctype of every sought key of that length. */
static void
attack_wrapped(const unsigned char *p, size_t len)
{
    krb5_keyblock wrapped;
    uint64_t e, first;
    size_t i, k;
    int opened;

    if (ratchet == NULL || len <= TK_RATCHET_OVERHEAD)
        return;
    first = tk_ratchet_epoch(ratchet);
    for (i = 0; i < nsought; i++) {
        if (sought[i].key.length + TK_RATCHET_OVERHEAD != len)
            continue;
        wrapped.magic = KV5M_KEYBLOCK;
        wrapped.enctype = sought[i].key.enctype;
        wrapped.length = len;
        wrapped.contents = (krb5_octet *)p;
        opened = 0;
        for (k = 0; k < nseen && !opened; k++) {
            if (seen_epochs[k] >= first)
                opened = try_epoch(&wrapped, sought[i].kvno, seen_epochs[k]);
        }
        for (e = first; e < first + ahead && !opened; e++)
            opened = try_epoch(&wrapped, sought[i].kvno, e);
    }
}

/* Every offset of buf where a master-key blob (2-byte little-endian
 * length, then the ciphertext) decrypts. */
static void
scan(const unsigned char *buf, size_t n)
{
    krb5_enc_data enc;
    krb5_data plain;
    size_t off, k, clen;
    unsigned int keylen;

    for (off = 0; off + 2 < n; off++) {
        keylen = buf[off] | (buf[off + 1] << 8);
        if (keylen < 16 || keylen > 128)
            continue;
        for (k = 0; k < nmkeys; k++) {
            if (krb5_c_encrypt_length(ctx, mkeys[k].enctype, keylen,
                                      &clen) != 0 || off + 2 + clen > n)
                continue;
            memset(&enc, 0, sizeof(enc));
            enc.enctype = ENCTYPE_UNKNOWN;
            enc.ciphertext.data = (char *)buf + off + 2;
            enc.ciphertext.length = clen;
            plain.length = clen;
            plain.data = malloc(clen);
            if (plain.data == NULL)
                die(ENOMEM, "memory");
            if (krb5_c_decrypt(ctx, &mkeys[k], 0, NULL, &enc, &plain) == 0 &&
                plain.length >= keylen) {
                blobs++;
                note_clear((unsigned char *)plain.data, keylen);
                attack_wrapped((unsigned char *)plain.data, keylen);
            }
            free(plain.data);
        }
    }
}

static int
hexval(int c)
{
    return isdigit(c) ? c - '0' : tolower(c) - 'a' + 10;
}

/* Call fn on every run of at least 36 hex digits of buf, decoded. */
static void
each_hex_run(const unsigned char *buf, size_t n,
             void (*fn)(const unsigned char *, size_t))
{
    size_t i = 0, start, len, j;
    unsigned char *bin;

    while (i < n) {
        if (!isxdigit(buf[i])) {
            i++;
            continue;
        }
        start = i;
        while (i < n && isxdigit(buf[i]))
            i++;
        len = (i - start) / 2;
        if (len < 18)
            continue;
        bin = malloc(len);
        if (bin == NULL)
            die(ENOMEM, "memory");
        for (j = 0; j < len; j++)
            bin[j] = hexval(buf[start + 2 * j]) << 4 |
                hexval(buf[start + 2 * j + 1]);
        fn(bin, len);
        free(bin);
    }
}

static void
scan_hex_runs(const unsigned char *buf, size_t n)
{
    each_hex_run(buf, n, scan);
}

static void
gather_hex_markers(const unsigned char *buf, size_t n)
{
    each_hex_run(buf, n, gather_markers);
}

static void
search_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0, got;
    unsigned long b0 = blobs, c0 = clear_hits, w0 = wrapped_hits;

    if (f == NULL) {
        fprintf(stderr, "tk-forensic: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 65536;
            buf = realloc(buf, cap);
            if (buf == NULL)
                die(ENOMEM, "memory");
        }
        got = fread(buf + n, 1, cap - n, f);
        if (got == 0)
            break;
        n += got;
    }
    fclose(f);
    gather_markers(buf, n);
    gather_hex_markers(buf, n);
    scan(buf, n);
    scan_hex_runs(buf, n);
    free(buf);
    printf("%s: %lu blobs, %lu clear keys, %lu wrapped keys opened\n", path,
           blobs - b0, clear_hits - c0, wrapped_hits - w0);
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "stash", required_argument, NULL, 's' },
        { "keytab", required_argument, NULL, 'k' },
        { "ratchet", required_argument, NULL, 'r' },
        { "key-epoch", required_argument, NULL, 'e' },
        { "ahead", required_argument, NULL, 'a' },
        { NULL, 0, NULL, 0 }
    };
    const char *stash = NULL, *keytab = NULL, *ratchet_file = NULL;
    long key_epoch = 0;
    krb5_error_code ret;
    size_t i, found = 0;
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's': stash = optarg; break;
        case 'k': keytab = optarg; break;
        case 'r': ratchet_file = optarg; break;
        case 'e': key_epoch = strtol(optarg, NULL, 10); break;
        case 'a': ahead = strtoul(optarg, NULL, 10); break;
        default: return 1;
        }
    }
    if (stash == NULL || keytab == NULL || optind == argc ||
        (ratchet_file != NULL && key_epoch <= 0)) {
        fprintf(stderr, "usage: tk-forensic --stash FILE --keytab FILE "
                "[--ratchet FILE --key-epoch S] [--ahead N] FILE...\n");
        return 1;
    }
    ret = krb5_init_context(&ctx);
    if (ret)
        return 1;
    read_keytab(stash, &mkeys, NULL, &nmkeys);
    read_keytab(keytab, NULL, &sought, &nsought);
    if (nmkeys == 0 || nsought == 0)
        die(0, "no master key in the stash or no key to look for");
    if (ratchet_file != NULL) {
        ret = tk_ratchet_open(ctx, ratchet_file, key_epoch,
                              TK_RATCHET_READ_ONLY, time(NULL), &ratchet);
        if (ret)
            die(ret, "opening the ratchet");
        printf("ratchet epoch: %llu\n",
               (unsigned long long)tk_ratchet_epoch(ratchet));
    }
    for (i = optind; i < (size_t)argc; i++)
        search_file(argv[i]);
    for (i = 0; i < nsought; i++)
        found += sought[i].found;
    printf("found: %zu\n", found);
    tk_ratchet_close(ratchet);
    return 0;
}
