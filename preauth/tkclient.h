/* tkclient.h - the client side of the upload protocol, driven by ktupdate
 * (or a test) through a session. */
#ifndef TKCLIENT_H
#define TKCLIENT_H

#include <krb5.h>
#include <krb5/plugin.h>

#include "tempkey.h"
#include "tkproto.h"

typedef struct tk_client_session tk_client_session;

/* Called once the KDC's key request is verified, before anything is sent:
 * set s->kvno and s->keys (and put them in the keytab). */
typedef krb5_error_code (*tk_prepare_fn)(krb5_context ctx,
                                         tk_client_session *s);

struct tk_client_session {
    /* Set by the caller. */
    krb5_principal principal;
    tk_identity *id;            /* the server's certificate and key */
    tk_trust *kdc_trust;        /* anchors that must sign the KDC */
    krb5_deltat lifetime;       /* requested; the KDC's maximum caps it */
    krb5_boolean dry_run;       /* stop once the key request is verified */
    tk_prepare_fn prepare;
    void *arg;

    /* Set by prepare: the key to upload, or (a shared principal's
     * member) fetch to ask for the keys the KDC holds instead, or idle to
     * send nothing (it holds them all and no upload is due). */
    krb5_kvno kvno;
    krb5_keyblock keys[TK_MAX_KEYS];
    size_t nkeys;
    krb5_boolean fetch;
    krb5_boolean idle;

    /* Set by the module. */
    tk_key_request *request;    /* the KDC's verified offer */
    int64_t requested_expiry;
    krb5_boolean uploaded;      /* an upload was sent */
    tk_ack *ack;                /* the KDC's signed acknowledgement */
    tk_held_key *held;          /* a shared principal's keys, from it */
    size_t nheld;
    int reason;                 /* the KDC's refusal (tk_reason), or 0 */
    char primary[256];          /* a not-primary refusal's primary KDC
                                 * (host or host:port), or empty */
    char message[512];          /* what went wrong, for one line */

    /* Fault injection for the tests; ktupdate leaves them NULL.  Change
     * what the KDC sent (an offer or an acknowledgement) before it is read
     * (der is a copy the hook may replace, freeing the old data), change
     * the upload before it is encoded, encrypt to another certificate, or
     * change the signed message or the padata sent. */
    void (*tamper_offer)(tk_client_session *s, krb5_data *der);
    void (*tamper_upload)(tk_client_session *s, tk_upload *up);
    X509 *recipient;
    void (*tamper_signed)(tk_client_session *s, krb5_data *der);
    void (*tamper_padata)(tk_client_session *s, krb5_data *der);
};

/*
 * Make s the session of the module's next exchanges (NULL to clear).  The
 * module keeps no other state between krb5 calls; ktupdate is
 * single-threaded.
 */
void tk_client_set_session(tk_client_session *s);
/* Free what the module put in s (request, ack) and zero the keys. */
void tk_client_session_clear(tk_client_session *s);

/* The module error that ends a dry run once the key request is verified,
 * and an exchange that prepare found idle. */
#define TK_DRY_RUN_STOP KRB5_PLUGIN_NO_HANDLE

krb5_error_code clpreauth_tempkey_initvt(krb5_context ctx, int maj_ver,
                                         int min_ver,
                                         krb5_plugin_vtable vtable);

/* libdefaults clockskew, as libkrb5 reads it (default 300 s). */
krb5_deltat tk_clock_skew(krb5_context ctx);

#endif /* TKCLIENT_H */
