/* ratchet.c - the forward-secure ratchet: file, steps and key wrapping. */
/*
 * The file is TK_RATCHET_FILE_SIZE bytes: two slots of SLOT_SIZE, each
 *
 *   0  magic "TKRATCH1"     8
 *   8  key_epoch (BE)       4
 *  12  zero                 4
 *  16  epoch (BE)           8
 *  24  ratchet id          16
 *  40  secret S(epoch)     32
 *  72  SHA-256 of 0..71    32
 * 104  zero to the end
 *
 * An advance writes one slot, syncs, then the other, and syncs again: a
 * crash leaves at least one slot whole, and once both are written the old
 * secret is gone from the file (overwritten in place, never renamed: a
 * rename would leave the old blocks on disk).  Whoever finds the slots
 * different (a crash between the writes) writes the stale one again.
 * Writers serialize on PATH.lock, which is never removed.
 */
#include "tkratchet.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <kdb.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#define SECRET_LEN 32
#define KEYED_SLOTS 16
#define SLOT_SIZE (TK_RATCHET_FILE_SIZE / 2)
#define SLOT_SUMMED 72
#define NONCE_LEN 12
#define TAG_LEN 16
static const char slot_magic[8] = "TKRATCH1";
static const char marker_magic[4] = "tkr1";
static const char request_magic[4] = "tkw1";
static const char step_label[] = "tempkey ratchet";
static const char wrap_label[] = "tempkey wrap";

typedef struct {
    krb5_deltat key_epoch;
    uint64_t epoch;
    unsigned char id[TK_RATCHET_ID_LEN];
    unsigned char secret[SECRET_LEN];
} slot;

/* Field by field: the struct has padding after key_epoch. */
static int
same_slot(const slot *a, const slot *b)
{
    return a->key_epoch == b->key_epoch && a->epoch == b->epoch &&
        memcmp(a->id, b->id, sizeof(a->id)) == 0 &&
        CRYPTO_memcmp(a->secret, b->secret, sizeof(a->secret)) == 0;
}

struct tk_ratchet {
    char *path;
    krb5_deltat key_epoch;
    int flags;
    slot cur;                   /* the current epoch and S(cur.epoch) */
    /* W(cur.epoch + i) for i < nwrap, and S(cur.epoch + nwrap) to derive
     * the next one: only secrets of the current epoch or later. */
    unsigned char (*wrap)[SECRET_LEN];
    size_t nwrap, capwrap;
    unsigned char far[SECRET_LEN];
    /* Cipher contexts keyed with W(epoch) for the epochs last used: the key
     * schedule costs more than the wrapping of one key, which the KDC does
     * for every ticket to a managed service. */
    struct {
        uint64_t epoch;
        EVP_CIPHER_CTX *c;
    } keyed[KEYED_SLOTS];
    EVP_KDF *kdf;
    EVP_CIPHER *gcm;
    char notice[512];
    krb5_boolean has_notice;
};

static void
store_be(unsigned char *p, uint64_t v, int len)
{
    while (len-- > 0) {
        p[len] = v & 0xff;
        v >>= 8;
    }
}

static uint64_t
load_be(const unsigned char *p, int len)
{
    uint64_t v = 0;

    while (len-- > 0)
        v = (v << 8) | *p++;
    return v;
}

static void
set_notice(tk_ratchet *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
set_notice(tk_ratchet *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->notice, sizeof(r->notice), fmt, ap);
    va_end(ap);
    r->has_notice = TRUE;
}

static krb5_error_code
file_error(krb5_context ctx, krb5_error_code code, const char *path,
           const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Set a message "tempkey: ratchet file PATH: ..." and return code. */
static krb5_error_code
file_error(krb5_context ctx, krb5_error_code code, const char *path,
           const char *fmt, ...)
{
    char what[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    krb5_set_error_message(ctx, code, "tempkey: ratchet file %s: %s", path,
                           what);
    return code;
}

/* out = HKDF-Expand(SHA-256, key, label), SECRET_LEN bytes. */
static krb5_error_code
expand(tk_ratchet *r, const unsigned char *key, const char *label,
       unsigned char *out)
{
    EVP_KDF_CTX *kctx;
    OSSL_PARAM params[5], *p = params;
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY, ok;

    kctx = EVP_KDF_CTX_new(r->kdf);
    if (kctx == NULL)
        return ENOMEM;
    *p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
    *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                            (char *)"SHA256", 0);
    *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                             (void *)key, SECRET_LEN);
    *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                             (void *)label, strlen(label));
    *p = OSSL_PARAM_construct_end();
    ok = EVP_KDF_derive(kctx, out, SECRET_LEN, params);
    EVP_KDF_CTX_free(kctx);
    return ok == 1 ? 0 : KRB5_CRYPTO_INTERNAL;
}

/* Replace secret by its successor, leaving no copy of the old one. */
static krb5_error_code
step(tk_ratchet *r, unsigned char *secret)
{
    unsigned char next[SECRET_LEN];
    krb5_error_code ret;

    ret = expand(r, secret, step_label, next);
    if (ret == 0)
        memcpy(secret, next, SECRET_LEN);
    OPENSSL_cleanse(next, sizeof(next));
    return ret;
}

/* Free the keyed contexts of epochs before below (all: UINT64_MAX). */
static void
drop_keyed(tk_ratchet *r, uint64_t below)
{
    int i;

    for (i = 0; i < KEYED_SLOTS; i++) {
        if (r->keyed[i].c != NULL && r->keyed[i].epoch < below) {
            EVP_CIPHER_CTX_free(r->keyed[i].c);
            r->keyed[i].c = NULL;
        }
    }
}

static void
drop_wraps(tk_ratchet *r)
{
    if (r->wrap != NULL)
        OPENSSL_cleanse(r->wrap, r->capwrap * SECRET_LEN);
    r->nwrap = 0;
    memcpy(r->far, r->cur.secret, SECRET_LEN);
}

/* Step the state in memory to epoch target (later than the current one). */
static krb5_error_code
advance_memory(tk_ratchet *r, uint64_t target)
{
    krb5_error_code ret;
    uint64_t n = target - r->cur.epoch, i;
    unsigned char secret[SECRET_LEN];

    memcpy(secret, r->cur.secret, SECRET_LEN);
    for (i = 0; i < n; i++) {
        ret = step(r, secret);
        if (ret) {
            OPENSSL_cleanse(secret, sizeof(secret));
            return ret;
        }
    }
    memcpy(r->cur.secret, secret, SECRET_LEN);
    OPENSSL_cleanse(secret, sizeof(secret));
    r->cur.epoch = target;
    drop_keyed(r, target);
    if (n < r->nwrap) {
        /* The cached wrapping keys of the new epoch onwards stay valid. */
        memmove(r->wrap, r->wrap + n, (r->nwrap - n) * SECRET_LEN);
        OPENSSL_cleanse(r->wrap + (r->nwrap - n), n * SECRET_LEN);
        r->nwrap -= n;
    } else {
        drop_wraps(r);
    }
    return 0;
}

static void
encode_slot(const slot *s, unsigned char *buf)
{
    unsigned int len;

    memset(buf, 0, SLOT_SIZE);
    memcpy(buf, slot_magic, 8);
    store_be(buf + 8, (uint64_t)s->key_epoch, 4);
    store_be(buf + 16, s->epoch, 8);
    memcpy(buf + 24, s->id, TK_RATCHET_ID_LEN);
    memcpy(buf + 40, s->secret, SECRET_LEN);
    EVP_Digest(buf, SLOT_SUMMED, buf + SLOT_SUMMED, &len, EVP_sha256(),
               NULL);
}

/* Decode a slot; FALSE if it is not whole (magic or checksum). */
static krb5_boolean
decode_slot(const unsigned char *buf, slot *s)
{
    unsigned char sum[EVP_MAX_MD_SIZE];
    unsigned int len;

    if (memcmp(buf, slot_magic, 8) != 0 ||
        EVP_Digest(buf, SLOT_SUMMED, sum, &len, EVP_sha256(), NULL) != 1 ||
        CRYPTO_memcmp(sum, buf + SLOT_SUMMED, 32) != 0)
        return FALSE;
    s->key_epoch = (krb5_deltat)load_be(buf + 8, 4);
    s->epoch = load_be(buf + 16, 8);
    memcpy(s->id, buf + 24, TK_RATCHET_ID_LEN);
    memcpy(s->secret, buf + 40, SECRET_LEN);
    return TRUE;
}

typedef enum {
    FILE_GOOD, FILE_MISSING, FILE_CORRUPT
} file_state;

/*
 * Read the file open on fd into *best (the whole slot of the later epoch)
 * and set *both_same if both slots hold it.  A file that cannot be read is
 * an error; one of the wrong size or with no whole slot is FILE_CORRUPT,
 * with *why saying which.
 */
static krb5_error_code
read_file(krb5_context ctx, int fd, const char *path, file_state *state,
          slot *best, krb5_boolean *both_same, const char **why)
{
    unsigned char buf[TK_RATCHET_FILE_SIZE + 1];
    slot s[2];
    krb5_boolean ok[2];
    ssize_t n;

    *state = FILE_CORRUPT;
    *both_same = FALSE;
    n = pread(fd, buf, sizeof(buf), 0);
    if (n < 0)
        return file_error(ctx, errno, path, "cannot read it: %s",
                          strerror(errno));
    if (n != TK_RATCHET_FILE_SIZE) {
        *why = "it has the wrong size";
        OPENSSL_cleanse(buf, sizeof(buf));
        return 0;
    }
    ok[0] = decode_slot(buf, &s[0]);
    ok[1] = decode_slot(buf + SLOT_SIZE, &s[1]);
    OPENSSL_cleanse(buf, sizeof(buf));
    if (!ok[0] && !ok[1]) {
        *why = "neither of its slots has a good checksum";
        return 0;
    }
    if (ok[0] && ok[1]) {
        *best = (s[1].epoch > s[0].epoch) ? s[1] : s[0];
        *both_same = same_slot(&s[0], &s[1]);
    } else {
        *best = ok[0] ? s[0] : s[1];
    }
    OPENSSL_cleanse(s, sizeof(s));
    *state = FILE_GOOD;
    return 0;
}

static krb5_error_code
write_slot(krb5_context ctx, int fd, const char *path, const slot *s,
           int index)
{
    unsigned char buf[SLOT_SIZE];
    ssize_t n;

    encode_slot(s, buf);
    n = pwrite(fd, buf, SLOT_SIZE, (off_t)index * SLOT_SIZE);
    OPENSSL_cleanse(buf, sizeof(buf));
    if (n != SLOT_SIZE)
        return file_error(ctx, n < 0 ? errno : EIO, path, "cannot write "
                          "it: %s", n < 0 ? strerror(errno) : "short write");
    if (fdatasync(fd) != 0)
        return file_error(ctx, errno, path, "cannot sync it: %s",
                          strerror(errno));
    return 0;
}

/* Write s to both slots in turn (module comment). */
static krb5_error_code
write_file(krb5_context ctx, int fd, const char *path, const slot *s)
{
    krb5_error_code ret;

    if (ftruncate(fd, TK_RATCHET_FILE_SIZE) != 0)
        return file_error(ctx, errno, path, "cannot size it: %s",
                          strerror(errno));
    ret = write_slot(ctx, fd, path, s, 1);
    if (ret == 0)
        ret = write_slot(ctx, fd, path, s, 0);
    return ret;
}

static krb5_error_code
lock_file(krb5_context ctx, const char *path, int *fd_out)
{
    char *name;
    int fd;

    *fd_out = -1;
    name = malloc(strlen(path) + sizeof(".lock"));
    if (name == NULL)
        return ENOMEM;
    sprintf(name, "%s.lock", path);
    fd = open(name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || flock(fd, LOCK_EX) != 0) {
        krb5_error_code ret = errno;

        file_error(ctx, ret, path, "cannot lock %s: %s", name,
                   strerror(ret));
        if (fd >= 0)
            close(fd);
        free(name);
        return ret;
    }
    free(name);
    *fd_out = fd;
    return 0;
}

static void
unlock_file(int fd)
{
    if (fd >= 0)
        close(fd);
}

/* Create the file (it must not exist) holding s; sync it and its folder. */
static krb5_error_code
create_file(krb5_context ctx, const char *path, const slot *s)
{
    krb5_error_code ret;
    char *dir, *slash;
    int fd, dfd;

    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return file_error(ctx, errno, path, "cannot create it: %s",
                          strerror(errno));
    ret = write_file(ctx, fd, path, s);
    close(fd);
    if (ret) {
        unlink(path);
        return ret;
    }
    dir = strdup(path);
    if (dir == NULL)
        return ENOMEM;
    slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash != NULL)
        *slash = '\0';
    dfd = open(slash != NULL ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    free(dir);
    return 0;
}

static krb5_error_code
new_slot(krb5_context ctx, krb5_deltat key_epoch, uint64_t epoch, slot *s)
{
    memset(s, 0, sizeof(*s));
    s->key_epoch = key_epoch;
    s->epoch = epoch;
    if (RAND_bytes(s->id, sizeof(s->id)) != 1 ||
        RAND_bytes(s->secret, sizeof(s->secret)) != 1) {
        krb5_set_error_message(ctx, KRB5_CRYPTO_INTERNAL, "tempkey: no "
                               "random bytes for a new ratchet");
        return KRB5_CRYPTO_INTERNAL;
    }
    return 0;
}

static uint64_t
epoch_of(krb5_deltat key_epoch, int64_t t)
{
    return t <= 0 ? 0 : (uint64_t)t / (uint64_t)key_epoch;
}

/* Make r's state s, zeroing what it held. */
static void
adopt(tk_ratchet *r, const slot *s)
{
    drop_keyed(r, UINT64_MAX);
    OPENSSL_cleanse(&r->cur, sizeof(r->cur));
    r->cur = *s;
    drop_wraps(r);
}

/*
 * The one locked step of open and sync: read the file, decide, write.
 * have_state tells whether r->cur already holds a ratchet (sync) or not
 * (open).
 */
static krb5_error_code
sync_locked(krb5_context ctx, tk_ratchet *r, krb5_boolean have_state,
            int64_t now)
{
    krb5_error_code ret;
    file_state state = FILE_MISSING;
    krb5_boolean same = FALSE, write = FALSE;
    const char *why = NULL;
    uint64_t clock_epoch = epoch_of(r->key_epoch, now);
    slot found;
    int fd;

    memset(&found, 0, sizeof(found));
    fd = open(r->path, ((r->flags & TK_RATCHET_READ_ONLY) ? O_RDONLY :
                        O_RDWR) | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT)
        return file_error(ctx, errno, r->path, "cannot open it: %s",
                          strerror(errno));
    if (fd >= 0) {
        ret = read_file(ctx, fd, r->path, &state, &found, &same, &why);
        if (ret)
            goto cleanup;
    }

    if (state == FILE_GOOD && found.key_epoch != r->key_epoch) {
        ret = file_error(ctx, KRB5_CONFIG_BADFORMAT, r->path, "it was made "
                         "with key_epoch = %ds but the setting is now %ds; "
                         "set it back, or move the file away to start a new "
                         "ratchet (the live temporary keys are then lost)",
                         (int)found.key_epoch, (int)r->key_epoch);
        goto cleanup;
    }
    if (state == FILE_GOOD) {
        if (have_state &&
            memcmp(found.id, r->cur.id, TK_RATCHET_ID_LEN) != 0) {
            set_notice(r, "ratchet file %s was replaced by a new "
                       "ratchet; temporary keys wrapped under the old one "
                       "are lost until each service uploads again", r->path);
            adopt(r, &found);
        } else if (have_state && found.epoch < r->cur.epoch) {
            /* Behind this process (restored from a backup?): write ours. */
            write = TRUE;
        } else if (have_state) {
            /* Another process stepped it: follow, keeping the cache. */
            ret = advance_memory(r, found.epoch);
            if (ret)
                goto cleanup;
            if (CRYPTO_memcmp(r->cur.secret, found.secret, SECRET_LEN) != 0)
                adopt(r, &found);
        } else {
            adopt(r, &found);
        }
        write = write || !same;
    } else if (have_state) {
        set_notice(r, "ratchet file %s %s; written again from this "
                   "process's state", r->path,
                   state == FILE_MISSING ? "was missing" : why);
        write = TRUE;
    } else if (!(r->flags & TK_RATCHET_CREATE)) {
        if (state == FILE_MISSING)
            ret = file_error(ctx, KRB5_KDB_CANTREAD_STORED, r->path, "it is "
                             "missing; a replica needs a copy of the "
                             "primary's ratchet file, made once like the "
                             "stash (tempkey(5))");
        else
            ret = file_error(ctx, KRB5_KDB_CANTREAD_STORED, r->path, "%s; "
                             "copy the primary's ratchet file again", why);
        goto cleanup;
    } else {
        ret = new_slot(ctx, r->key_epoch, clock_epoch, &found);
        if (ret)
            goto cleanup;
        adopt(r, &found);
        if (state == FILE_MISSING) {
            ret = create_file(ctx, r->path, &r->cur);
            if (ret)
                goto cleanup;
            set_notice(r, "made the ratchet file %s (key_epoch "
                       "%ds)", r->path, (int)r->key_epoch);
        } else {
            set_notice(r, "ratchet file %s: %s; started a new "
                       "ratchet in its place: temporary keys stored before "
                       "are lost until each service uploads again", r->path,
                       why);
            write = TRUE;
        }
    }

    if (r->cur.epoch < clock_epoch && !(r->flags & TK_RATCHET_READ_ONLY)) {
        ret = advance_memory(r, clock_epoch);
        if (ret)
            goto cleanup;
        write = TRUE;
    } else if (r->cur.epoch > clock_epoch + 1 && !have_state) {
        /* One epoch ahead is a clock step at a boundary; more is news. */
        set_notice(r, "ratchet file %s is at epoch %llu, ahead of "
                   "this host's clock (epoch %llu of %ds): is the clock "
                   "wrong?  Keys ending before then cannot be read", r->path,
                   (unsigned long long)r->cur.epoch,
                   (unsigned long long)clock_epoch, (int)r->key_epoch);
    }
    if (write && !(r->flags & TK_RATCHET_READ_ONLY)) {
        if (fd < 0) {
            fd = open(r->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
            if (fd < 0) {
                ret = file_error(ctx, errno, r->path, "cannot create it: %s",
                                 strerror(errno));
                goto cleanup;
            }
        }
        ret = write_file(ctx, fd, r->path, &r->cur);
        if (ret)
            goto cleanup;
    }
    ret = 0;

cleanup:
    OPENSSL_cleanse(&found, sizeof(found));
    if (fd >= 0)
        close(fd);
    return ret;
}

static krb5_error_code
sync_file(krb5_context ctx, tk_ratchet *r, krb5_boolean have_state,
          int64_t now)
{
    krb5_error_code ret;
    int lock = -1;

    if (!(r->flags & TK_RATCHET_READ_ONLY)) {
        ret = lock_file(ctx, r->path, &lock);
        if (ret)
            return ret;
    }
    ret = sync_locked(ctx, r, have_state, now);
    unlock_file(lock);
    return ret;
}

krb5_error_code
tk_ratchet_open(krb5_context ctx, const char *path, krb5_deltat key_epoch,
                int flags, int64_t now, tk_ratchet **out)
{
    krb5_error_code ret;
    tk_ratchet *r;

    *out = NULL;
    if (key_epoch <= 0)
        return EINVAL;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return ENOMEM;
    r->key_epoch = key_epoch;
    r->flags = flags;
    r->path = strdup(path);
    r->kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    r->gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    if (r->path == NULL || r->kdf == NULL || r->gcm == NULL) {
        tk_ratchet_close(r);
        return ENOMEM;
    }
    ret = sync_file(ctx, r, FALSE, now);
    if (ret) {
        tk_ratchet_close(r);
        return ret;
    }
    *out = r;
    return 0;
}

krb5_error_code
tk_ratchet_init(krb5_context ctx, const char *path, krb5_deltat key_epoch,
                int64_t now)
{
    krb5_error_code ret;
    slot s;
    int lock;

    ret = lock_file(ctx, path, &lock);
    if (ret)
        return ret;
    ret = new_slot(ctx, key_epoch, epoch_of(key_epoch, now), &s);
    if (ret == 0 && access(path, F_OK) == 0)
        ret = file_error(ctx, EEXIST, path, "it exists; a ratchet file is "
                         "never overwritten (move it away first: the live "
                         "temporary keys are then lost)");
    if (ret == 0)
        ret = create_file(ctx, path, &s);
    OPENSSL_cleanse(&s, sizeof(s));
    unlock_file(lock);
    return ret;
}

void
tk_ratchet_close(tk_ratchet *r)
{
    if (r == NULL)
        return;
    if (r->wrap != NULL) {
        OPENSSL_cleanse(r->wrap, r->capwrap * SECRET_LEN);
        free(r->wrap);
    }
    drop_keyed(r, UINT64_MAX);
    EVP_KDF_free(r->kdf);
    EVP_CIPHER_free(r->gcm);
    free(r->path);
    OPENSSL_cleanse(r, sizeof(*r));
    free(r);
}

krb5_error_code
tk_ratchet_sync(krb5_context ctx, tk_ratchet *r, int64_t now)
{
    if (epoch_of(r->key_epoch, now) <= r->cur.epoch)
        return 0;
    return sync_file(ctx, r, TRUE, now);
}

const char *
tk_ratchet_notice(tk_ratchet *r)
{
    if (!r->has_notice)
        return NULL;
    r->has_notice = FALSE;
    return r->notice;
}

uint64_t
tk_ratchet_epoch(const tk_ratchet *r)
{
    return r->cur.epoch;
}

krb5_deltat
tk_ratchet_key_epoch(const tk_ratchet *r)
{
    return r->key_epoch;
}

const char *
tk_ratchet_path(const tk_ratchet *r)
{
    return r->path;
}

const unsigned char *
tk_ratchet_id(const tk_ratchet *r)
{
    return r->cur.id;
}

krb5_error_code
tk_ratchet_marker(krb5_context ctx, const tk_ratchet *r, int64_t expiry,
                  unsigned char *marker)
{
    uint64_t epoch = epoch_of(r->key_epoch, expiry);

    if (epoch < r->cur.epoch || epoch - r->cur.epoch >= TK_RATCHET_MAX_AHEAD) {
        krb5_set_error_message(ctx, TK_ERR_UNREADABLE, "tempkey: a "
                               "key expiring then cannot be wrapped: its "
                               "ratchet epoch is %s", epoch < r->cur.epoch ?
                               "over" : "too far ahead (key_epoch too "
                               "short for the key's lifetime)");
        return TK_ERR_UNREADABLE;
    }
    memcpy(marker, marker_magic, 4);
    memcpy(marker + 4, r->cur.id, TK_RATCHET_ID_LEN);
    store_be(marker + 4 + TK_RATCHET_ID_LEN, epoch, 8);
    return 0;
}

krb5_boolean
tk_ratchet_parse_marker(const krb5_data *salt, unsigned char *id_out,
                        uint64_t *epoch_out)
{
    const unsigned char *p = (const unsigned char *)salt->data;

    if (salt->length != TK_RATCHET_MARKER_LEN ||
        memcmp(p, marker_magic, 4) != 0)
        return FALSE;
    if (id_out != NULL)
        memcpy(id_out, p + 4, TK_RATCHET_ID_LEN);
    if (epoch_out != NULL)
        *epoch_out = load_be(p + 4 + TK_RATCHET_ID_LEN, 8);
    return TRUE;
}

void
tk_ratchet_request(int64_t expiry, unsigned char *request)
{
    memcpy(request, request_magic, 4);
    store_be(request + 4, (uint64_t)expiry, 8);
}

krb5_boolean
tk_ratchet_parse_request(const krb5_data *salt, int64_t *expiry_out)
{
    const unsigned char *p = (const unsigned char *)salt->data;

    if (salt->length != TK_RATCHET_REQUEST_LEN ||
        memcmp(p, request_magic, 4) != 0)
        return FALSE;
    *expiry_out = (int64_t)load_be(p + 4, 8);
    return TRUE;
}

krb5_boolean
tk_ratchet_readable(const tk_ratchet *r, const krb5_data *salt)
{
    unsigned char id[TK_RATCHET_ID_LEN];
    uint64_t epoch;

    return tk_ratchet_parse_marker(salt, id, &epoch) &&
        memcmp(id, r->cur.id, TK_RATCHET_ID_LEN) == 0 &&
        epoch >= r->cur.epoch && epoch - r->cur.epoch < TK_RATCHET_MAX_AHEAD;
}

/* The wrapping key for marker's epoch, derived forward as needed. */
static krb5_error_code
wrap_key(krb5_context ctx, tk_ratchet *r, const krb5_data *marker,
         const unsigned char **key_out)
{
    krb5_error_code ret;
    unsigned char id[TK_RATCHET_ID_LEN];
    uint64_t epoch, off;
    void *grown;

    if (!tk_ratchet_parse_marker(marker, id, &epoch)) {
        krb5_set_error_message(ctx, TK_ERR_UNREADABLE, "not a "
                               "ratchet-wrapped key");
        return TK_ERR_UNREADABLE;
    }
    if (memcmp(id, r->cur.id, TK_RATCHET_ID_LEN) != 0) {
        krb5_set_error_message(ctx, TK_ERR_UNREADABLE, "the key was "
                               "wrapped under another ratchet than %s's "
                               "(lost or replaced): it cannot be read",
                               r->path);
        return TK_ERR_UNREADABLE;
    }
    if (epoch < r->cur.epoch) {
        krb5_set_error_message(ctx, TK_ERR_UNREADABLE, "the key's ratchet "
                               "epoch is over (ratchet file %s): it expired "
                               "and cannot be read", r->path);
        return TK_ERR_UNREADABLE;
    }
    off = epoch - r->cur.epoch;
    if (off >= TK_RATCHET_MAX_AHEAD) {
        krb5_set_error_message(ctx, TK_ERR_UNREADABLE, "the key's ratchet "
                               "epoch is out of reach of %s", r->path);
        return TK_ERR_UNREADABLE;
    }
    if (off >= r->capwrap) {
        size_t cap = r->capwrap ? r->capwrap : 64;

        while (cap <= off)
            cap *= 2;
        grown = calloc(cap, SECRET_LEN);
        if (grown == NULL)
            return ENOMEM;
        if (r->wrap != NULL) {
            memcpy(grown, r->wrap, r->nwrap * SECRET_LEN);
            OPENSSL_cleanse(r->wrap, r->capwrap * SECRET_LEN);
            free(r->wrap);
        }
        r->wrap = grown;
        r->capwrap = cap;
    }
    while (r->nwrap <= off) {
        ret = expand(r, r->far, wrap_label, r->wrap[r->nwrap]);
        if (ret == 0)
            ret = step(r, r->far);
        if (ret)
            return ret;
        r->nwrap++;
    }
    *key_out = r->wrap[off];
    return 0;
}

/* A cipher context keyed for marker's epoch, owned by r. */
static krb5_error_code
keyed_context(krb5_context ctx, tk_ratchet *r, const krb5_data *marker,
              EVP_CIPHER_CTX **out)
{
    krb5_error_code ret;
    const unsigned char *wk;
    uint64_t epoch;
    int slot;

    ret = wrap_key(ctx, r, marker, &wk);
    if (ret)
        return ret;
    (void)tk_ratchet_parse_marker(marker, NULL, &epoch);
    slot = (int)(epoch % KEYED_SLOTS);
    if (r->keyed[slot].c != NULL && r->keyed[slot].epoch == epoch) {
        *out = r->keyed[slot].c;
        return 0;
    }
    EVP_CIPHER_CTX_free(r->keyed[slot].c);
    r->keyed[slot].c = EVP_CIPHER_CTX_new();
    if (r->keyed[slot].c == NULL ||
        EVP_CipherInit_ex2(r->keyed[slot].c, r->gcm, wk, NULL, 1,
                           NULL) != 1) {
        EVP_CIPHER_CTX_free(r->keyed[slot].c);
        r->keyed[slot].c = NULL;
        return KRB5_CRYPTO_INTERNAL;
    }
    r->keyed[slot].epoch = epoch;
    *out = r->keyed[slot].c;
    return 0;
}

static void
make_ad(const krb5_data *marker, krb5_kvno kvno, krb5_enctype enctype,
        unsigned char *ad)
{
    memcpy(ad, marker->data, TK_RATCHET_MARKER_LEN);
    store_be(ad + TK_RATCHET_MARKER_LEN, kvno, 4);
    store_be(ad + TK_RATCHET_MARKER_LEN + 4, (uint32_t)enctype, 4);
}

krb5_error_code
tk_ratchet_wrap(krb5_context ctx, tk_ratchet *r, const krb5_data *marker,
                krb5_kvno kvno, const krb5_keyblock *key,
                krb5_keyblock *wrapped_out)
{
    krb5_error_code ret;
    unsigned char ad[TK_RATCHET_MARKER_LEN + 8], *out = NULL;
    EVP_CIPHER_CTX *c;
    int len;

    memset(wrapped_out, 0, sizeof(*wrapped_out));
    ret = keyed_context(ctx, r, marker, &c);
    if (ret)
        return ret;
    out = malloc(key->length + TK_RATCHET_OVERHEAD);
    if (out == NULL)
        return ENOMEM;
    make_ad(marker, kvno, key->enctype, ad);
    ret = KRB5_CRYPTO_INTERNAL;
    if (RAND_bytes(out, NONCE_LEN) != 1 ||
        EVP_CipherInit_ex2(c, NULL, NULL, out, 1, NULL) != 1 ||
        EVP_EncryptUpdate(c, NULL, &len, ad, sizeof(ad)) != 1 ||
        EVP_EncryptUpdate(c, out + NONCE_LEN, &len, key->contents,
                          key->length) != 1 ||
        EVP_EncryptFinal_ex(c, out + NONCE_LEN + key->length, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN,
                            out + NONCE_LEN + key->length) != 1)
        goto cleanup;
    wrapped_out->magic = KV5M_KEYBLOCK;
    wrapped_out->enctype = key->enctype;
    wrapped_out->length = key->length + TK_RATCHET_OVERHEAD;
    wrapped_out->contents = out;
    out = NULL;
    ret = 0;

cleanup:
    if (out != NULL) {
        OPENSSL_cleanse(out, key->length + TK_RATCHET_OVERHEAD);
        free(out);
    }
    return ret;
}

krb5_error_code
tk_ratchet_unwrap(krb5_context ctx, tk_ratchet *r, const krb5_data *marker,
                  krb5_kvno kvno, const krb5_keyblock *wrapped,
                  krb5_keyblock *key_out)
{
    krb5_error_code ret;
    const unsigned char *in = wrapped->contents;
    unsigned char ad[TK_RATCHET_MARKER_LEN + 8], *out = NULL;
    EVP_CIPHER_CTX *c;
    size_t keylen;
    int len;

    memset(key_out, 0, sizeof(*key_out));
    if (wrapped->length <= TK_RATCHET_OVERHEAD) {
        krb5_set_error_message(ctx, TK_ERR_UNREADABLE, "a wrapped key too "
                               "short to hold a key");
        return TK_ERR_UNREADABLE;
    }
    ret = keyed_context(ctx, r, marker, &c);
    if (ret)
        return ret;
    keylen = wrapped->length - TK_RATCHET_OVERHEAD;
    out = malloc(keylen);
    if (out == NULL)
        return ENOMEM;
    make_ad(marker, kvno, wrapped->enctype, ad);
    if (EVP_CipherInit_ex2(c, NULL, NULL, in, 0, NULL) != 1 ||
        EVP_DecryptUpdate(c, NULL, &len, ad, sizeof(ad)) != 1 ||
        EVP_DecryptUpdate(c, out, &len, in + NONCE_LEN, keylen) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN,
                            (void *)(in + NONCE_LEN + keylen)) != 1 ||
        EVP_DecryptFinal_ex(c, out + keylen, &len) != 1) {
        ret = TK_ERR_UNREADABLE;
        krb5_set_error_message(ctx, ret, "a wrapped key does not verify "
                               "under the ratchet of %s", r->path);
        OPENSSL_cleanse(out, keylen);
        free(out);
        return ret;
    }
    key_out->magic = KV5M_KEYBLOCK;
    key_out->enctype = wrapped->enctype;
    key_out->length = keylen;
    key_out->contents = out;
    return 0;
}
