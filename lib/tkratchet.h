/* tkratchet.h - the forward-secure ratchet behind temporary keys at rest. */
#ifndef TKRATCHET_H
#define TKRATCHET_H

#include <stdint.h>
#include <krb5.h>

/*
 * DESIGN 10.  Time is cut into epochs e = floor(t / key_epoch).  The ratchet
 * file holds the current epoch's secret S(e) only; S(e+1) =
 * HKDF-Expand(S(e), "tempkey ratchet") is one-way, and a temporary key
 * expiring at t is stored wrapped (AES-256-GCM) under W(epoch(t)) =
 * HKDF-Expand(S(epoch(t)), "tempkey wrap").  Once the file and every
 * process have stepped past epoch(t), no copy of the wrapped key can be
 * opened again, even with the master key.
 *
 * A wrapped key's salt is its marker: salt type KRB5_KDB_SALTTYPE_SPECIAL,
 * contents TK_RATCHET_MARKER_LEN bytes ("tkr1", the ratchet's id, the
 * epoch).  libkdb5 hands the salt from decrypt_key_data to
 * encrypt_key_data when it re-encrypts a key (master key change, cpw
 * -keepold), so the module's hooks wrap the key again under the same
 * epoch.  Callers outside the KDC never see the wrapped form.
 */

/* Why a wrapped key cannot be opened (its epoch is over, or it belongs to
 * another ratchet): the key has expired, whatever its record says. */
#define TK_ERR_UNREADABLE KRB5KDC_ERR_KEY_EXP

#define TK_RATCHET_ID_LEN 16
#define TK_RATCHET_MARKER_LEN (4 + TK_RATCHET_ID_LEN + 8)
/* What wrapping adds to a key: the GCM nonce and tag. */
#define TK_RATCHET_OVERHEAD (12 + 16)
/* The farthest epoch a key may be wrapped for, counted from the current
 * one: its wrapping keys are derived (and cached) one step at a time. */
#define TK_RATCHET_MAX_AHEAD 65536
#define TK_DEFAULT_KEY_EPOCH 300
#define TK_RATCHET_FILE_SIZE 256

typedef struct tk_ratchet tk_ratchet;

/* Flags of tk_ratchet_open(). */
#define TK_RATCHET_CREATE 1     /* a primary: make the file if it is missing
                                 * and start a new ratchet in place of a
                                 * corrupt one */
#define TK_RATCHET_READ_ONLY 2  /* inspect the file as found: no lock, no
                                 * write, no step (the forensic test tool) */

/*
 * Open the ratchet at path for key_epoch and bring it to the epoch of now
 * (advancing the file under its lock, PATH.lock).  Every error names the
 * file: missing (without TK_RATCHET_CREATE), unreadable, of the wrong size,
 * with no slot whose checksum verifies, or made for another key_epoch.  A
 * file ahead of the clock is taken as it is (a ratchet never steps back).
 */
krb5_error_code tk_ratchet_open(krb5_context ctx, const char *path,
                                krb5_deltat key_epoch, int flags,
                                int64_t now, tk_ratchet **out);
/* Make a new ratchet file at path; refuse if one exists. */
krb5_error_code tk_ratchet_init(krb5_context ctx, const char *path,
                                krb5_deltat key_epoch, int64_t now);
void tk_ratchet_close(tk_ratchet *r);

/*
 * Advance to the epoch of now, if later, in memory and in the file (under
 * its lock), zeroing the old secret.  The file is the authority: one made
 * again by another process (a new id) is adopted; a missing or corrupt one
 * is written again from this process's state, which keeps the live keys.
 */
krb5_error_code tk_ratchet_sync(krb5_context ctx, tk_ratchet *r,
                                int64_t now);

/* A line saying what the last open or sync did beyond the usual (made the
 * file, replaced a corrupt one, adopted a new one, found it ahead of the
 * clock), or NULL; each notice is returned once. */
const char *tk_ratchet_notice(tk_ratchet *r);

uint64_t tk_ratchet_epoch(const tk_ratchet *r);
krb5_deltat tk_ratchet_key_epoch(const tk_ratchet *r);
const char *tk_ratchet_path(const tk_ratchet *r);
const unsigned char *tk_ratchet_id(const tk_ratchet *r);

/* Fill marker (TK_RATCHET_MARKER_LEN bytes) for a key expiring at expiry;
 * TK_ERR_UNREADABLE if that epoch is over or out of reach. */
krb5_error_code tk_ratchet_marker(krb5_context ctx, const tk_ratchet *r,
                                  int64_t expiry, unsigned char *marker);
/* Whether salt is a ratchet marker; if so set *epoch_out and copy the id
 * (either may be NULL). */
krb5_boolean tk_ratchet_parse_marker(const krb5_data *salt,
                                     unsigned char *id_out,
                                     uint64_t *epoch_out);
/* Whether a key with this marker can still be opened here: this ratchet's
 * id and an epoch not yet over. */
krb5_boolean tk_ratchet_readable(const tk_ratchet *r, const krb5_data *salt);

/*
 * A request to wrap: the salt a store passes to krb5_dbe_encrypt_key_data
 * for a key expiring at expiry (salt type KRB5_KDB_SALTTYPE_SPECIAL,
 * TK_RATCHET_REQUEST_LEN bytes).  The module's encrypt hook, which knows
 * the ratchet, stores the marker in its place.
 */
#define TK_RATCHET_REQUEST_LEN 12
void tk_ratchet_request(int64_t expiry, unsigned char *request);
krb5_boolean tk_ratchet_parse_request(const krb5_data *salt,
                                      int64_t *expiry_out);

/* Wrap key (version kvno) for the marker's epoch: *wrapped_out gets the
 * same enctype and key->length + TK_RATCHET_OVERHEAD bytes.  The marker,
 * kvno and enctype are authenticated with it. */
krb5_error_code tk_ratchet_wrap(krb5_context ctx, tk_ratchet *r,
                                const krb5_data *marker, krb5_kvno kvno,
                                const krb5_keyblock *key,
                                krb5_keyblock *wrapped_out);
/* The reverse; TK_ERR_UNREADABLE with a message if the epoch is
 * over, the id is another ratchet's, or the wrapped key does not verify. */
krb5_error_code tk_ratchet_unwrap(krb5_context ctx, tk_ratchet *r,
                                  const krb5_data *marker, krb5_kvno kvno,
                                  const krb5_keyblock *wrapped,
                                  krb5_keyblock *key_out);

#endif /* TKRATCHET_H */
