/* repair.c - uploads acknowledged without a database lock, stored again if
 * replication between LDAP providers rolled them back. */
/*
 * Over kldap with OpenLDAP multi-provider replication, each KDC writes to
 * its own server and syncrepl resolves a conflict per entry: the entry
 * with the newest CSN wins whole (kldap replaces krbPrincipalKey and
 * krbExtraData whole anyway).  So a write that KDC A makes (a purge, a
 * login audit, kadmin) from a copy that does not yet hold an upload which
 * KDC B has just stored and acknowledged replaces B's entry once it
 * replicates: the newest key is lost, though the service already uses it.
 * The checked write (lib/dbwrite.c) cannot see that coming; it happens
 * after B's write returned.
 *
 * The writer of such a rollback started from a copy without the upload,
 * so it wrote before the upload reached its server (within one
 * replication delay), and its entry reaches B's server within another.
 * So B remembers each upload it acknowledged and, at the first
 * housekeeping tick once settle_time has passed (set it above twice the
 * replication delay), stores it again through the ordinary store path,
 * which is idempotent: an upload in place writes nothing; one rolled back
 * is written again; one superseded by a later kvno (or purged or revoked:
 * the highest kvno survives those) is refused as kvno-not-above-stored;
 * an expired one is not tried.  Any of those ends its remembering, except
 * a store: that write could be rolled back the same way, so it is checked
 * again one settle_time later.  A rollback arriving later than settle_time
 * (replication stalled or partitioned longer than that) is not repaired:
 * doc/design.md says what remains.
 *
 * Only a KDC whose store has no lock remembers anything (db2 and klmdb
 * never do: their writes cannot be undone this way).  The list lives in
 * the context's state (each krb5kdc -w worker has its own), oldest first,
 * and is bounded by TK_REPAIR_MAX so that a flood of uploads cannot grow
 * the KDC's memory.  It holds keys: every node is zeroed when forgotten.
 */

#include <com_err.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "repair.h"

typedef struct acked {
    struct acked *next;
    krb5_principal princ;
    tk_upload *up;
    unsigned char uploader[TK_UPLOADER_LEN];
    int64_t when;               /* acknowledged, or last stored again */
} acked;

struct tk_repair {
    acked *head, *tail;         /* oldest first */
    size_t count;
    size_t dropped;             /* forgotten unchecked since the last check */
};

static void
forget(krb5_context ctx, acked *a)
{
    if (a == NULL)
        return;
    krb5_free_principal(ctx, a->princ);
    tk_upload_free(a->up);      /* zeroes the keys */
    free(a);
}

/* Append a to the list; nodes come in the order of their when. */
static void
append(tk_repair *list, acked *a)
{
    a->next = NULL;
    if (list->tail != NULL)
        list->tail->next = a;
    else
        list->head = a;
    list->tail = a;
    list->count++;
}

static acked *
pop(tk_repair *list)
{
    acked *a = list->head;

    if (a == NULL)
        return NULL;
    list->head = a->next;
    if (list->head == NULL)
        list->tail = NULL;
    list->count--;
    a->next = NULL;
    return a;
}

void
tk_repair_remember(krb5_context ctx, tk_repair **list_out,
                   krb5_const_principal princ, tk_upload **up,
                   const unsigned char *uploader, int64_t now)
{
    tk_repair *list = *list_out;
    acked *a;

    if (list == NULL) {
        list = calloc(1, sizeof(*list));
        if (list == NULL)
            goto nomem;
        *list_out = list;
    }
    a = calloc(1, sizeof(*a));
    if (a == NULL)
        goto nomem;
    if (krb5_copy_principal(ctx, princ, &a->princ) != 0) {
        free(a);
        goto nomem;
    }
    memcpy(a->uploader, uploader, TK_UPLOADER_LEN);
    a->when = now;
    a->up = *up;
    *up = NULL;
    if (list->count >= TK_REPAIR_MAX) {
        forget(ctx, pop(list));
        list->dropped++;
    }
    append(list, a);
    return;

nomem:
    com_err("tempkey", ENOMEM, "cannot remember an upload for its check "
            "after replication");
}

static void
log_outcome(krb5_context writer, const acked *a, krb5_error_code code,
            const char *what)
{
    const char *msg = NULL;
    char *name = NULL;

    if (krb5_unparse_name(writer, a->princ, &name) != 0)
        return;
    if (code != 0)
        msg = krb5_get_error_message(writer, code);
    com_err("tempkey", 0, "%s kvno %u %s%s%s", name, a->up->kvno, what,
            msg != NULL ? ": " : "", msg != NULL ? msg : "");
    krb5_free_error_message(writer, msg);
    krb5_free_unparsed_name(writer, name);
}

/* Store a's upload again if it is no longer stored; whether to check it
 * again later. */
static krb5_boolean
check_one(krb5_context keyctx, krb5_context writer, const tk_policy *pol,
          acked *a, int64_t now)
{
    krb5_error_code ret;
    tk_store_result res;

    if (a->up->expiry <= now)
        return FALSE;           /* no longer usable: nothing to repair */
    ret = tk_db_store_upload_again(writer, keyctx, pol, a->princ, a->up,
                                   a->uploader, &res);
    if (ret == 0 && res.wrote) {
        log_outcome(writer, a, 0, "was rolled back by a replicated write; "
                    "stored again");
        return TRUE;            /* this write could be rolled back too */
    }
    if (ret == 0 || res.reason == TK_REASON_KVNO_NOT_ABOVE_STORED)
        return FALSE;           /* in place, or a later kvno since */
    if (res.reason != 0) {
        log_outcome(writer, a, ret, "is no longer stored and cannot be "
                    "stored again");
        return FALSE;
    }
    log_outcome(writer, a, ret, "could not be checked after replication; "
                "trying again later");
    return TRUE;
}

void
tk_repair_check(krb5_context keyctx, krb5_context writer,
                const tk_policy *pol, tk_repair *list, int64_t now,
                krb5_deltat settle)
{
    acked *ripe = NULL, **tailp = &ripe, *a;

    if (list == NULL)
        return;
    if (list->dropped > 0) {
        com_err("tempkey", 0, "%zu acknowledged upload(s) forgotten "
                "unchecked: more than %d were waiting for their check "
                "after replication", list->dropped, TK_REPAIR_MAX);
        list->dropped = 0;
    }
    /* Detach the settled ones first: those kept go back at the tail with
     * a fresh time, and must not come round again in this pass. */
    while (list->head != NULL && list->head->when + settle <= now) {
        *tailp = pop(list);
        tailp = &(*tailp)->next;
    }
    while ((a = ripe) != NULL) {
        ripe = a->next;
        if (check_one(keyctx, writer, pol, a, now)) {
            a->when = now;
            append(list, a);
        } else {
            forget(keyctx, a);
        }
    }
}

void
tk_repair_free(krb5_context ctx, tk_repair *list)
{
    if (list == NULL)
        return;
    while (list->head != NULL)
        forget(ctx, pop(list));
    free(list);
}
