/* tk-s4u.c - a test client that asks for S4U2Self and S4U2Proxy tickets for
 * a plain (non-enterprise) client name. */
/*
 * usage: tk-s4u [--save FILE] [--host-based] CCACHE USER [TARGET]
 *        tk-s4u --evidence FILE [--host-based] CCACHE TARGET
 * CCACHE holds the impersonating service's TGT (its default principal is
 * that service).  The first form asks the KDC for a ticket from USER to the
 * service itself (S4U2Self), keeps it in the credential cache FILE if
 * asked, and given TARGET uses it as evidence for a ticket from USER to
 * TARGET (S4U2Proxy).  The second form does only the S4U2Proxy step, with
 * the evidence ticket kept earlier in FILE.  --host-based makes TARGET a
 * host-based name (NT-SRV-HST), which the KDC may refer to another realm by
 * its host part when it has no such principal.  USER is parsed as an
 * ordinary principal name: kvno -U sends an enterprise name, which the
 * client first resolves by an AS exchange, so the KDC's S4U2Self lookup of
 * the name itself is never reached.  CCACHE is never written, so every
 * S4U2Self reaches the KDC.  Prints "s4u2self: CLIENT for SERVER" and
 * "s4u2proxy: CLIENT for SERVER" for the tickets obtained (exit 0), or the
 * error (exit 1).
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <krb5.h>

/* Exported by libkrb5 (MIT's kvno -U calls it) but declared only in MIT's
 * internal header. */
krb5_error_code
krb5_get_credentials_for_user(krb5_context context, krb5_flags options,
                              krb5_ccache ccache, krb5_creds *in_creds,
                              krb5_data *cert, krb5_creds **out_creds);

static int
report(krb5_context ctx, krb5_error_code code, const char *what)
{
    const char *msg = krb5_get_error_message(ctx, code);

    fprintf(stderr, "tk-s4u: %s: %s\n", what, msg);
    krb5_free_error_message(ctx, msg);
    return 1;
}

static void
print_ticket(krb5_context ctx, const char *step, const krb5_creds *creds)
{
    char *client = NULL, *server = NULL;

    if (krb5_unparse_name(ctx, creds->client, &client) == 0 &&
        krb5_unparse_name(ctx, creds->server, &server) == 0)
        printf("%s: %s for %s\n", step, client, server);
    krb5_free_unparsed_name(ctx, client);
    krb5_free_unparsed_name(ctx, server);
}

/* Ask the KDC for a ticket from user to the service of cc. */
static krb5_error_code
s4u2self(krb5_context ctx, krb5_ccache cc, krb5_principal self,
         const char *user_name, krb5_creds **creds_out)
{
    krb5_error_code ret;
    krb5_principal user = NULL;
    krb5_creds in;

    *creds_out = NULL;
    ret = krb5_parse_name(ctx, user_name, &user);
    if (ret)
        return ret;
    memset(&in, 0, sizeof(in));
    in.client = user;
    in.server = self;
    ret = krb5_get_credentials_for_user(ctx, KRB5_GC_NO_STORE, cc, &in, NULL,
                                        creds_out);
    krb5_free_principal(ctx, user);
    return ret;
}

/* Put creds alone in the credential cache named name. */
static krb5_error_code
save(krb5_context ctx, const char *name, krb5_creds *creds)
{
    krb5_error_code ret;
    krb5_ccache out;

    ret = krb5_cc_resolve(ctx, name, &out);
    if (ret)
        return ret;
    ret = krb5_cc_initialize(ctx, out, creds->client);
    if (ret == 0)
        ret = krb5_cc_store_cred(ctx, out, creds);
    krb5_cc_close(ctx, out);
    return ret;
}

/* The first ticket in the credential cache named name. */
static krb5_error_code
load(krb5_context ctx, const char *name, krb5_creds **creds_out)
{
    krb5_error_code ret;
    krb5_ccache in;
    krb5_cc_cursor cursor;
    krb5_creds creds, *copy = NULL;

    *creds_out = NULL;
    ret = krb5_cc_resolve(ctx, name, &in);
    if (ret)
        return ret;
    ret = krb5_cc_start_seq_get(ctx, in, &cursor);
    if (ret == 0) {
        ret = krb5_cc_next_cred(ctx, in, &cursor, &creds);
        krb5_cc_end_seq_get(ctx, in, &cursor);
    }
    if (ret == 0) {
        ret = krb5_copy_creds(ctx, &creds, &copy);
        krb5_free_cred_contents(ctx, &creds);
    }
    krb5_cc_close(ctx, in);
    *creds_out = copy;
    return ret;
}

/* Ask the KDC for a ticket from the client of evidence to target. */
static krb5_error_code
s4u2proxy(krb5_context ctx, krb5_ccache cc, krb5_principal self,
          krb5_creds *evidence, const char *target_name,
          krb5_boolean host_based, krb5_creds **creds_out)
{
    krb5_error_code ret;
    krb5_principal target = NULL;
    krb5_creds in;

    *creds_out = NULL;
    ret = krb5_parse_name(ctx, target_name, &target);
    if (ret)
        return ret;
    if (host_based)
        target->type = KRB5_NT_SRV_HST;
    memset(&in, 0, sizeof(in));
    in.client = self;
    in.server = target;
    in.second_ticket = evidence->ticket;
    /* Canonicalize, as GSS-API does, so that a referral is followed. */
    ret = krb5_get_credentials(ctx, KRB5_GC_NO_STORE | KRB5_GC_CANONICALIZE |
                               KRB5_GC_CONSTRAINED_DELEGATION, cc, &in,
                               creds_out);
    krb5_free_principal(ctx, target);
    return ret;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "save", required_argument, NULL, 's' },
        { "evidence", required_argument, NULL, 'e' },
        { "host-based", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *save_file = NULL, *evidence_file = NULL, *target = NULL;
    krb5_context ctx = NULL;
    krb5_ccache cc = NULL;
    krb5_principal self = NULL;
    krb5_creds *evidence = NULL, *proxy = NULL;
    krb5_boolean host_based = FALSE;
    krb5_error_code ret;
    int c, status = 1;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 's')
            save_file = optarg;
        else if (c == 'e')
            evidence_file = optarg;
        else if (c == 'h')
            host_based = TRUE;
        else
            return 2;
    }
    argc -= optind;
    argv += optind;
    if (evidence_file != NULL ? argc != 2 || save_file != NULL :
        argc != 2 && argc != 3) {
        fprintf(stderr, "usage: tk-s4u [--save FILE] [--host-based] CCACHE "
                "USER [TARGET]\n"
                "       tk-s4u --evidence FILE [--host-based] CCACHE "
                "TARGET\n");
        return 2;
    }
    if (krb5_init_context(&ctx) != 0) {
        fprintf(stderr, "tk-s4u: cannot make a krb5 context\n");
        return 1;
    }
    ret = krb5_cc_resolve(ctx, argv[0], &cc);
    if (ret == 0)
        ret = krb5_cc_get_principal(ctx, cc, &self);
    if (ret) {
        status = report(ctx, ret, argv[0]);
        goto cleanup;
    }

    if (evidence_file != NULL) {
        target = argv[1];
        ret = load(ctx, evidence_file, &evidence);
        if (ret) {
            status = report(ctx, ret, evidence_file);
            goto cleanup;
        }
    } else {
        target = argc == 3 ? argv[2] : NULL;
        ret = s4u2self(ctx, cc, self, argv[1], &evidence);
        if (ret) {
            status = report(ctx, ret, "S4U2Self");
            goto cleanup;
        }
        print_ticket(ctx, "s4u2self", evidence);
        if (save_file != NULL) {
            ret = save(ctx, save_file, evidence);
            if (ret) {
                status = report(ctx, ret, save_file);
                goto cleanup;
            }
        }
    }

    if (target != NULL) {
        ret = s4u2proxy(ctx, cc, self, evidence, target, host_based,
                        &proxy);
        if (ret) {
            status = report(ctx, ret, "S4U2Proxy");
            goto cleanup;
        }
        print_ticket(ctx, "s4u2proxy", proxy);
    }
    status = 0;

cleanup:
    krb5_free_creds(ctx, proxy);
    krb5_free_creds(ctx, evidence);
    krb5_free_principal(ctx, self);
    if (cc != NULL)
        krb5_cc_close(ctx, cc);
    krb5_free_context(ctx);
    return status;
}
