/* util.c - durations, times and hex for messages and configuration. */
#include "tempkey.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

krb5_error_code
tk_parse_duration(krb5_context ctx, const char *setting, const char *text,
                  krb5_deltat *out)
{
    krb5_deltat d;

    if (text == NULL || krb5_string_to_deltat((char *)text, &d) != 0 ||
        d <= 0) {
        krb5_set_error_message(ctx, KRB5_CONFIG_BADFORMAT,
                               "tempkey: %s: \"%s\" is not a positive "
                               "duration (e.g. 1d, 8h, 90m, 3600)", setting,
                               text != NULL ? text : "");
        return KRB5_CONFIG_BADFORMAT;
    }
    *out = d;
    return 0;
}

/* MIT 1.20's deprecated enctypes (single DES is no longer valid at all):
 * a temporary key is no reason to bring them back. */
static krb5_boolean
is_weak(krb5_enctype et)
{
    return et == ENCTYPE_DES3_CBC_SHA1 || et == ENCTYPE_ARCFOUR_HMAC ||
        et == ENCTYPE_ARCFOUR_HMAC_EXP;
}

static krb5_boolean
listed(const krb5_enctype *list, size_t n, krb5_enctype et)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (list[i] == et)
            return TRUE;
    }
    return FALSE;
}

krb5_error_code
tk_parse_enctypes(krb5_context ctx, const char *setting, const char *list,
                  krb5_enctype *out, size_t max, size_t *count_out)
{
    krb5_error_code ret = 0;
    char *copy, *tok, *save = NULL;
    krb5_enctype et;
    size_t n = 0;

    *count_out = 0;
    copy = strdup(list);
    if (copy == NULL)
        return ENOMEM;
    for (tok = strtok_r(copy, ", \t", &save); tok != NULL;
         tok = strtok_r(NULL, ", \t", &save)) {
        if (krb5_string_to_enctype(tok, &et) != 0 ||
            !krb5_c_valid_enctype(et)) {
            ret = KRB5_PROG_ETYPE_NOSUPP;
            krb5_set_error_message(ctx, ret, "%s: \"%s\" is not a supported "
                                   "enctype", setting, tok);
            break;
        }
        if (is_weak(et)) {
            ret = KRB5_PROG_ETYPE_NOSUPP;
            krb5_set_error_message(ctx, ret, "%s: \"%s\" is a weak "
                                   "(deprecated) enctype", setting, tok);
            break;
        }
        if (listed(out, n, et)) {
            ret = EINVAL;
            krb5_set_error_message(ctx, ret, "%s: \"%s\" is listed twice",
                                   setting, tok);
            break;
        }
        if (n == max) {
            ret = EINVAL;
            krb5_set_error_message(ctx, ret, "%s: at most %zu enctypes",
                                   setting, max);
            break;
        }
        out[n++] = et;
    }
    free(copy);
    if (ret == 0 && n == 0) {
        ret = EINVAL;
        krb5_set_error_message(ctx, ret, "%s: no enctype", setting);
    }
    if (ret == 0)
        *count_out = n;
    return ret;
}

void
tk_format_time(int64_t t, char *buf)
{
    struct tm tm;
    time_t tt = (time_t)t;

    if (gmtime_r(&tt, &tm) == NULL ||
        strftime(buf, TK_TIME_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, TK_TIME_LEN, "%lld", (long long)t);
}

void
tk_hex(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0xf];
    }
    out[2 * len] = '\0';
}
