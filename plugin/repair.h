/* repair.h - uploads a KDC acknowledged without a database lock, checked
 * again once replication has settled (repair.c). */
#ifndef TK_REPAIR_H
#define TK_REPAIR_H

#include "tkentry.h"
#include "tkproto.h"

/* At most this many acknowledged uploads wait for their check; beyond it the
 * oldest is forgotten unchecked (and the next check says how many were). */
#define TK_REPAIR_MAX 8192

typedef struct tk_repair tk_repair;

/*
 * Remember *up (the upload as decoded, stored for princ by uploader) for a
 * check at least settle_time after now.  The list takes *up over and sets
 * it to NULL; *list_out is made on first use.  A failure is logged, never
 * returned: the upload is stored whether or not it can be remembered.
 */
void tk_repair_remember(krb5_context ctx, tk_repair **list_out,
                        krb5_const_principal princ, tk_upload **up,
                        const unsigned char *uploader, int64_t now);

/*
 * Check every upload remembered at least settle seconds before now: store
 * it again through writer (keys under keyctx's master key) if a replicated
 * write took it away, logging one line; forget it once it is found in
 * place, superseded by a later kvno, expired or refused.  list may be NULL.
 */
void tk_repair_check(krb5_context keyctx, krb5_context writer,
                     const tk_policy *pol, tk_repair *list, int64_t now,
                     krb5_deltat settle);

/* Forget every remembered upload, zeroing its keys.  Accepts NULL. */
void tk_repair_free(krb5_context ctx, tk_repair *list);

#endif /* TK_REPAIR_H */
