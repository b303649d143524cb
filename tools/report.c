/* report.c - tempkey-admin report: the realm's temporary keys at a glance,
 * from the database and the KDC log, as text, JSON or Prometheus metrics. */
/*
 * What comes from where:
 * - The database: the managed principals, their live key versions and
 *   expiries, and enrollments.  An enrolled entry is made by the upload
 *   itself, which names the principal as its own last modifier
 *   (KRB5_TL_MOD_PRINC); no other writer of a managed entry does (kadmin
 *   names its caller, the module's own writes leave it), so an entry
 *   modified by itself within the last day enrolled within the last day.
 * - The KDC log: the uploads stored and the refusals by reason over the
 *   last day, one line each ("stored kvno K of P, expires in N s, ...",
 *   "refused upload for P signed by S: REASON: detail").
 * - Both: a service's refresh-by.  The KDC acknowledges each upload with
 *   "refresh when two thirds of the key's life are gone", which is not
 *   stored; the store's log line gives its time, and so the very value the
 *   KDC sent.  For a newest key with no store line in the logs read (set by
 *   an administrator, or stored before the log was rotated) it is the
 *   earliest the KDC can have asked: the expiry less a third of
 *   tempkey_max_life, the lifetime ktupdate asks for unless told less.
 */

#define _GNU_SOURCE             /* strptime */

#include "report.h"

#include <errno.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <profile.h>

#include "tkentry.h"
#include "tkmonitor.h"
#include "tkproto.h"

#define DAY 86400
#define HOUR 3600
/* The log's whole seconds against the KDC's clock reading for the same
 * store. */
#define STORE_SLACK 2
/* refusals[] index for a reason this version does not know. */
#define OTHER_REASON 0

static const char *progname = "tempkey-admin";

/* A managed principal holding a live key: its newest. */
typedef struct {
    char *name;
    krb5_kvno kvno;
    int64_t expiry;
    int64_t stored_at;          /* its store's time in the KDC log, or 0 */
    int64_t active_at;          /* a shared principal's: from its record */
    krb5_deltat share_delay;
    int64_t refresh_by;
    krb5_boolean estimated;     /* refresh_by guessed, not known */
} service;

typedef struct {
    char **names;
    size_t count, size;
} name_list;

typedef struct {
    krb5_context ctx;
    const tk_config *cfg;
    int64_t now;
    krb5_error_code error;      /* what stopped the walk of the database */
    long managed, live_keys, expiring, enrollments;
    long shared, pending;       /* shared principals; their pending keys */
    service *services;          /* sorted by name once the walk is done */
    size_t nservices, services_size;
    name_list late;             /* past refresh-by: names in services */
    name_list dark;             /* no live key */
    name_list unreadable;       /* records that do not decode */
    long uploads;
    long fetches;               /* members handed a shared principal's keys
                                 * without a store */
    long refusals[TK_REASON_MAX + 1];
    /* The time of the last log line read, to skip parsing it again. */
    char clock_text[64];
    size_t clock_len;
    int64_t clock_time;
    /* krb5kdc names the month in its environment's locale (it calls
     * setlocale): the report reads it in its own environment's, then in
     * C's.  Either may be missing. */
    locale_t locales[2];
} report;

/* ---- Options. */

int
tk_report_add_log(tk_report_options *opt, const char *path)
{
    if (opt->nlogs == TK_REPORT_MAX_LOGS) {
        fprintf(stderr, "%s: at most %d --log files\n", progname,
                TK_REPORT_MAX_LOGS);
        return 2;
    }
    opt->logs[opt->nlogs++] = path;
    return 0;
}

int
tk_report_check(const char *cmd, tk_report_options *opt, int json)
{
    if ((opt->nlogs > 0 || opt->prometheus != NULL) &&
        strcmp(cmd, "report") != 0) {
        fprintf(stderr, "%s: --log and --prometheus go with report\n",
                progname);
        return 2;
    }
    if (json && opt->prometheus != NULL) {
        fprintf(stderr, "%s: report: --json or --prometheus, not both\n",
                progname);
        return 2;
    }
    opt->json = json;
    return 0;
}

/* ---- Small collections. */

/* Room in *array (of *size elements of elem bytes) for one more after
 * count. */
static krb5_error_code
make_room(void *array, size_t *size, size_t count, size_t elem)
{
    void **p = array, *grown;
    size_t n;

    if (count < *size)
        return 0;
    n = *size ? 2 * *size : 64;
    grown = realloc(*p, n * elem);
    if (grown == NULL)
        return ENOMEM;
    *p = grown;
    *size = n;
    return 0;
}

static krb5_error_code
add_name(name_list *list, char *name)
{
    if (make_room(&list->names, &list->size, list->count,
                  sizeof(*list->names)) != 0)
        return ENOMEM;
    list->names[list->count++] = name;
    return 0;
}

/* Keep a copy of name in list. */
static krb5_error_code
add_copy(name_list *list, const char *name)
{
    char *copy = strdup(name);

    if (copy == NULL || add_name(list, copy) != 0) {
        free(copy);
        return ENOMEM;
    }
    return 0;
}

static void
free_names(name_list *list, krb5_boolean owned)
{
    size_t i;

    for (i = 0; owned && i < list->count; i++)
        free(list->names[i]);
    free(list->names);
}

static krb5_error_code
add_service(report *rp, const char *name, const tk_key_record *newest,
            krb5_deltat share_delay)
{
    service *s;

    if (make_room(&rp->services, &rp->services_size, rp->nservices,
                  sizeof(*rp->services)) != 0)
        return ENOMEM;
    s = &rp->services[rp->nservices];
    memset(s, 0, sizeof(*s));
    s->name = strdup(name);
    if (s->name == NULL)
        return ENOMEM;
    s->kvno = newest->kvno;
    s->expiry = newest->expiry;
    s->active_at = newest->active_at;
    s->share_delay = share_delay;
    rp->nservices++;
    return 0;
}

static int
compare_services(const void *a, const void *b)
{
    return strcmp(((const service *)a)->name, ((const service *)b)->name);
}

static service *
find_service(report *rp, const char *name)
{
    service key;

    key.name = (char *)name;
    /* No services: no array (bsearch may not be given NULL). */
    if (rp->nservices == 0)
        return NULL;
    return bsearch(&key, rp->services, rp->nservices, sizeof(key),
                   compare_services);
}

/* ---- The database. */

/* Whether entry was made by its own upload within the last day. */
static krb5_boolean
enrolled_lately(report *rp, krb5_db_entry *entry)
{
    krb5_timestamp when;
    krb5_principal by = NULL;
    krb5_boolean yes;

    if (krb5_dbe_lookup_mod_princ_data(rp->ctx, entry, &when, &by) != 0 ||
        by == NULL)
        return FALSE;
    /* MIT's timestamps are unsigned 32-bit seconds. */
    yes = krb5_principal_compare(rp->ctx, by, entry->princ) &&
        (int64_t)(uint32_t)when >= rp->now - DAY;
    krb5_free_principal(rp->ctx, by);
    return yes;
}

/* Count one managed entry: its keys, and whether it is served at all. */
static krb5_error_code
count_entry(report *rp, const char *name, krb5_db_entry *entry)
{
    krb5_error_code ret;
    tk_meta *meta = NULL;
    const tk_key_record *newest = NULL;
    const char *msg;
    size_t i;

    rp->managed++;
    if (enrolled_lately(rp, entry))
        rp->enrollments++;
    if (tk_entry_share_delay(rp->ctx, entry) > 0)
        rp->shared++;
    ret = tk_entry_get_meta(rp->ctx, entry, &meta);
    if (ret) {
        /* The KDC refuses such a principal: a finding, not a failure. */
        msg = krb5_get_error_message(rp->ctx, ret);
        fprintf(stderr, "%s: report: %s\n", progname, msg);
        krb5_free_error_message(rp->ctx, msg);
        return add_copy(&rp->unreadable, name);
    }
    for (i = 0; meta != NULL && i < meta->nkeys; i++) {
        if (meta->keys[i].expiry <= rp->now)
            continue;
        rp->live_keys++;
        if (meta->keys[i].expiry <= rp->now + HOUR)
            rp->expiring++;
        if (tk_record_pending(&meta->keys[i], rp->now))
            rp->pending++;
    }
    if (meta != NULL)
        newest = tk_meta_newest_live(meta, rp->now);
    ret = (newest != NULL) ?
        add_service(rp, name, newest, tk_entry_share_delay(rp->ctx, entry)) :
        add_copy(&rp->dark, name);
    tk_meta_free(meta);
    return ret;
}

static int
walk_one(krb5_pointer arg, krb5_db_entry *entry)
{
    report *rp = arg;
    krb5_boolean managed;
    char *name = NULL;

    rp->error = tk_entry_is_managed(rp->ctx, entry, &managed);
    if (rp->error == 0 && !managed)
        return 0;
    if (rp->error == 0)
        rp->error = krb5_unparse_name(rp->ctx, entry->princ, &name);
    if (rp->error == 0)
        rp->error = count_entry(rp, name, entry);
    krb5_free_unparsed_name(rp->ctx, name);
    return rp->error;
}

/* Open the database read-only and walk it.  A db2 walk holds the
 * database's lock throughout unless told otherwise (unlockiter), which
 * would stall every upload for the seconds a walk of 10^6 principals
 * takes; housekeeping walks so too. */
static krb5_error_code
walk_database(report *rp)
{
    krb5_error_code ret = 0;
    char *db2_args[] = { "unlockiter", NULL };
    krb5_boolean db2 = tk_backing_is_db2(rp->ctx, rp->cfg);

    if (ret == 0)
        ret = krb5_db_open(rp->ctx, db2 ? db2_args : NULL,
                           KRB5_KDB_OPEN_RO | KRB5_KDB_SRV_TYPE_ADMIN);
    if (ret) {
        krb5_prepend_error_message(rp->ctx, ret, "opening the database");
        return ret;
    }
    ret = krb5_db_iterate(rp->ctx, NULL, walk_one, rp, 0);
    if (rp->error)
        ret = rp->error;
    if (ret)
        krb5_prepend_error_message(rp->ctx, ret, "reading the database");
    krb5_db_fini(rp->ctx);
    return ret;
}

/* ---- The KDC log. */

/* The log file the KDC writes: the first FILE: (or FILE=) of [logging]
 * kdc, or of [logging] default where kdc is not set, as krb5kdc takes it.
 * Free *path_out with free(). */
static krb5_error_code
configured_log(report *rp, char **path_out)
{
    static const char *kdc_names[] = { "logging", "kdc", NULL };
    static const char *default_names[] = { "logging", "default", NULL };
    krb5_error_code ret;
    profile_t profile = NULL;
    char **values = NULL;
    size_t i;

    *path_out = NULL;
    ret = krb5_get_profile(rp->ctx, &profile);
    if (ret)
        return ret;
    if (profile_get_values(profile, kdc_names, &values) != 0 &&
        profile_get_values(profile, default_names, &values) != 0)
        values = NULL;
    for (i = 0; values != NULL && values[i] != NULL; i++) {
        if (strncmp(values[i], "FILE:", 5) == 0 ||
            strncmp(values[i], "FILE=", 5) == 0) {
            *path_out = strdup(values[i] + 5);
            ret = (*path_out == NULL) ? ENOMEM : 0;
            goto cleanup;
        }
    }
    ret = KRB5_CONFIG_BADFORMAT;
    krb5_set_error_message(rp->ctx, ret, "the KDC logs to no file ([logging] "
                           "kdc names no FILE:); give --log FILE");

cleanup:
    profile_free_list(values);
    profile_release(profile);
    return ret;
}

/* The time a log line starts with, in seconds since the epoch, or -1; *rest
 * is set past it.  It has no year: this year's, unless that is over a day
 * ahead (a line from last December read in January). */
static int64_t
line_time(report *rp, const char *line, const char **rest)
{
    struct tm tm, today;
    time_t now = (time_t)rp->now, t;
    const char *end;
    locale_t old;
    size_t len;
    int i;

    if (rp->clock_len > 0 && strncmp(line, rp->clock_text, rp->clock_len) ==
        0 && line[rp->clock_len] == ' ') {
        *rest = line + rp->clock_len;
        return rp->clock_time;
    }
    for (i = 0, end = NULL; end == NULL && i < 2; i++) {
        if (rp->locales[i] == (locale_t)0)
            continue;
        old = uselocale(rp->locales[i]);
        memset(&tm, 0, sizeof(tm));
        end = strptime(line, "%b %d %H:%M:%S", &tm);
        uselocale(old);
    }
    if (end == NULL || *end != ' ')
        return -1;
    localtime_r(&now, &today);
    tm.tm_year = today.tm_year;
    tm.tm_isdst = -1;
    t = mktime(&tm);
    if (t != (time_t)-1 && (int64_t)t > rp->now + DAY) {
        tm.tm_year--;
        tm.tm_isdst = -1;
        t = mktime(&tm);
    }
    if (t == (time_t)-1)
        return -1;
    len = (size_t)(end - line);
    rp->clock_len = (len < sizeof(rp->clock_text)) ? len : 0;
    memcpy(rp->clock_text, line, rp->clock_len);
    rp->clock_time = (int64_t)t;
    *rest = end;
    return (int64_t)t;
}

/* "stored kvno K of P, expires in N s, uploaded by S" at time t. */
static void
note_store(report *rp, const char *text, int64_t t)
{
    char *end, *name;
    const char *of, *rest;
    unsigned long kvno;
    long long life;
    service *s;

    kvno = strtoul(text, &end, 10);
    if (end == text || strncmp(end, " of ", 4) != 0)
        return;
    of = end + 4;
    rest = strstr(of, ", expires in ");
    if (rest == NULL)
        return;
    life = strtoll(rest + 13, &end, 10);
    if (end == rest + 13 || strncmp(end, " s", 2) != 0)
        return;
    if (t >= rp->now - DAY)
        rp->uploads++;
    name = strndup(of, (size_t)(rest - of));
    if (name == NULL)
        return;
    /* The first line of the newest key's store (a retransmission logs it
     * again, later, for the same expiry); an earlier principal of the same
     * name, deleted since, had another expiry. */
    s = find_service(rp, name);
    if (s != NULL && s->kvno == kvno &&
        llabs((long long)(t + life - s->expiry)) <= STORE_SLACK &&
        (s->stored_at == 0 || t < s->stored_at))
        s->stored_at = t;
    free(name);
}

/* The reason of "refused upload for P signed by S: REASON: detail": the
 * first known reason name standing between ": " and ":".  The principal
 * and the subject come from the refused peer, which can so misname the
 * reason of its own refusal, and only that. */
static int
refusal_reason(const char *text)
{
    const char *p, *name;
    size_t len;
    int reason;

    for (p = strstr(text, ": "); p != NULL; p = strstr(p + 1, ": ")) {
        name = p + 2;
        len = strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-");
        if (len == 0 || name[len] != ':')
            continue;
        for (reason = 1; reason <= TK_REASON_MAX; reason++) {
            if (strlen(tk_reason_name(reason)) == len &&
                strncmp(tk_reason_name(reason), name, len) == 0)
                return reason;
        }
    }
    return OTHER_REASON;
}

static void
read_line(report *rp, const char *line)
{
    static const char stored[] = "stored kvno ";
    static const char refused[] = "refused upload for ";
    static const char refused_fetch[] = "refused fetch for ";
    static const char fetched[] = "fetch for ";
    static const char answered[] = "answered upload of ";
    const char *text;
    int64_t t = line_time(rp, line, &text);

    if (t < 0)
        return;
    /* After "host krb5kdc[pid](severity): ". */
    text = strstr(text, "): ");
    if (text == NULL)
        return;
    text += 3;
    if (strncmp(text, stored, sizeof(stored) - 1) == 0)
        note_store(rp, text + sizeof(stored) - 1, t);
    else if (strncmp(text, refused, sizeof(refused) - 1) == 0 &&
             t >= rp->now - DAY)
        rp->refusals[refusal_reason(text + sizeof(refused) - 1)]++;
    else if (strncmp(text, refused_fetch, sizeof(refused_fetch) - 1) == 0 &&
             t >= rp->now - DAY)
        rp->refusals[refusal_reason(text + sizeof(refused_fetch) - 1)]++;
    else if ((strncmp(text, fetched, sizeof(fetched) - 1) == 0 ||
              strncmp(text, answered, sizeof(answered) - 1) == 0) &&
             t >= rp->now - DAY)
        rp->fetches++;
}

static krb5_error_code
read_log(report *rp, const char *path)
{
    krb5_error_code ret = 0;
    FILE *f;
    char *line = NULL;
    size_t size = 0;
    ssize_t len;

    f = fopen(path, "r");
    if (f == NULL)
        return tk_file_error(rp->ctx, errno, "cannot read the KDC log",
                             path);
    while ((len = getline(&line, &size, f)) != -1) {
        if (len > 0 && line[len - 1] == '\n')
            line[len - 1] = '\0';
        read_line(rp, line);
    }
    if (ferror(f))
        ret = tk_file_error(rp->ctx, errno ? errno : EIO,
                            "cannot read the KDC log", path);
    free(line);
    fclose(f);
    return ret;
}

/* Each service's refresh-by (see the top), and those past it. */
static krb5_error_code
find_late(report *rp)
{
    service *s;
    size_t i;

    for (i = 0; i < rp->nservices; i++) {
        s = &rp->services[i];
        s->estimated = FALSE;
        /* A shared principal's members rotate by the rule the KDC gives
         * them, from when its newest key comes into use (recorded). */
        if (s->share_delay > 0 && s->active_at != 0)
            s->refresh_by = tk_shared_refresh_by(s->expiry, s->active_at,
                                                 rp->now, s->share_delay);
        else if (s->stored_at != 0)
            s->refresh_by = s->stored_at + (s->expiry - s->stored_at) * 2 / 3;
        else
            s->estimated = TRUE;
        if (s->estimated)
            s->refresh_by = s->expiry - rp->cfg->policy.max_life / 3;
        if (s->refresh_by <= rp->now && add_name(&rp->late, s->name) != 0)
            return ENOMEM;
    }
    return 0;
}

/* ---- Output. */

static void
json_text(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void
json_names(FILE *out, const char *key, const name_list *list)
{
    size_t i;

    fprintf(out, ",\n \"%s\": [", key);
    for (i = 0; i < list->count; i++) {
        fputs(i ? ", " : "", out);
        json_text(out, list->names[i]);
    }
    fputc(']', out);
}

static void
print_json(report *rp, const char *realm, const tk_report_options *opt)
{
    char when[TK_TIME_LEN], by[TK_TIME_LEN];
    const service *s;
    size_t i;
    int reason, first = 1;

    tk_format_time(rp->now, when);
    printf("{\"realm\": ");
    json_text(stdout, realm);
    printf(", \"time\": \"%s\", \"kdc_logs\": [", when);
    for (i = 0; i < opt->nlogs; i++) {
        fputs(i ? ", " : "", stdout);
        json_text(stdout, opt->logs[i]);
    }
    printf("],\n \"managed_principals\": %ld, \"live_key_versions\": %ld, "
           "\"key_versions_expiring_within_hour\": %ld,\n"
           " \"principals_past_refresh_by\": %zu, "
           "\"principals_without_live_key\": %zu, "
           "\"principals_unreadable\": %zu,\n"
           " \"enrollments_last_day\": %ld, \"uploads_stored_last_day\": %ld,"
           "\n \"shared_principals\": %ld, \"pending_key_versions\": %ld, "
           "\"fetches_last_day\": %ld,"
           "\n \"refusals_last_day\": {", rp->managed, rp->live_keys,
           rp->expiring, rp->late.count, rp->dark.count,
           rp->unreadable.count, rp->enrollments, rp->uploads, rp->shared,
           rp->pending, rp->fetches);
    for (reason = 0; reason <= TK_REASON_MAX; reason++) {
        if (rp->refusals[reason] == 0)
            continue;
        printf("%s\"%s\": %ld", first ? "" : ", ", reason == OTHER_REASON ?
               "other" : tk_reason_name(reason), rp->refusals[reason]);
        first = 0;
    }
    printf("},\n \"past_refresh_by\": [");
    for (i = 0; i < rp->late.count; i++) {
        s = find_service(rp, rp->late.names[i]);
        tk_format_time(s->expiry, when);
        tk_format_time(s->refresh_by, by);
        printf("%s{\"principal\": ", i ? ", " : "");
        json_text(stdout, s->name);
        printf(", \"kvno\": %u, \"expires\": \"%s\", \"refresh_by\": \"%s\", "
               "\"estimated\": %s}", s->kvno, when, by,
               s->estimated ? "true" : "false");
    }
    putchar(']');
    json_names(stdout, "without_live_key", &rp->dark);
    json_names(stdout, "unreadable", &rp->unreadable);
    printf("}\n");
}

static void
print_text(report *rp, const char *realm, const tk_report_options *opt)
{
    char when[TK_TIME_LEN], by[TK_TIME_LEN];
    const service *s;
    long refusals = 0;
    size_t i;
    int reason;

    tk_format_time(rp->now, when);
    printf("realm %s at %s\n", realm, when);
    printf("managed principals: %ld\n", rp->managed);
    printf("live key versions: %ld\n", rp->live_keys);
    printf("key versions expiring within an hour: %ld\n", rp->expiring);
    printf("principals past their refresh-by: %zu\n", rp->late.count);
    for (i = 0; i < rp->late.count; i++) {
        s = find_service(rp, rp->late.names[i]);
        tk_format_time(s->expiry, when);
        tk_format_time(s->refresh_by, by);
        printf("  %s kvno %u expires %s, refresh by %s%s\n", s->name,
               s->kvno, when, by, s->estimated ? " (estimated)" : "");
    }
    printf("principals without a live key: %zu\n", rp->dark.count);
    for (i = 0; i < rp->dark.count; i++)
        printf("  %s\n", rp->dark.names[i]);
    printf("principals with unreadable key records: %zu\n",
           rp->unreadable.count);
    for (i = 0; i < rp->unreadable.count; i++)
        printf("  %s\n", rp->unreadable.names[i]);
    printf("enrollments in the last day: %ld\n", rp->enrollments);
    printf("uploads stored in the last day: %ld\n", rp->uploads);
    printf("shared principals: %ld\n", rp->shared);
    printf("pending key versions: %ld\n", rp->pending);
    printf("fetches answered in the last day: %ld\n", rp->fetches);
    for (reason = 0; reason <= TK_REASON_MAX; reason++)
        refusals += rp->refusals[reason];
    printf("uploads refused in the last day: %ld\n", refusals);
    for (reason = 1; reason <= TK_REASON_MAX + 1; reason++) {
        /* The known reasons by number, then any other. */
        int r = (reason > TK_REASON_MAX) ? OTHER_REASON : reason;

        if (rp->refusals[r] > 0)
            printf("  %s: %ld\n", r == OTHER_REASON ? "other" :
                   tk_reason_name(r), rp->refusals[r]);
    }
    for (i = 0; i < opt->nlogs; i++)
        printf("KDC log: %s\n", opt->logs[i]);
}

/* One gauge with the realm label. */
static void
gauge(tk_prom *prom, const char *realm, const char *name, const char *help,
      int64_t value)
{
    const char *labels[] = { "realm", realm, NULL };

    tk_prom_family(prom, name, "gauge", help);
    tk_prom_sample(prom, name, labels, value);
}

static krb5_error_code
write_prometheus(report *rp, const char *realm, const char *path)
{
    static const char refusals[] = "tempkey_upload_refusals_last_day";
    krb5_error_code ret;
    tk_prom *prom = NULL;
    const char *labels[] = { "realm", realm, "reason", NULL, NULL };
    int reason;

    ret = tk_prom_new(&prom);
    if (ret)
        return ret;
    gauge(prom, realm, "tempkey_report_timestamp_seconds",
          "When tempkey-admin report ran, in Unix seconds.", rp->now);
    gauge(prom, realm, "tempkey_managed_principals",
          "Principals whose keys come from tempkey.", rp->managed);
    gauge(prom, realm, "tempkey_live_key_versions",
          "Temporary key versions not yet expired.", rp->live_keys);
    gauge(prom, realm, "tempkey_key_versions_expiring_within_hour",
          "Live temporary key versions that expire within an hour.",
          rp->expiring);
    gauge(prom, realm, "tempkey_principals_past_refresh_by",
          "Managed principals whose newest key is past its refresh-by time "
          "with no newer upload.", (int64_t)rp->late.count);
    gauge(prom, realm, "tempkey_principals_without_live_key",
          "Managed principals the KDC holds no live key for.",
          (int64_t)rp->dark.count);
    gauge(prom, realm, "tempkey_principals_unreadable",
          "Managed principals whose key records do not decode.",
          (int64_t)rp->unreadable.count);
    gauge(prom, realm, "tempkey_enrollments_last_day",
          "Principals enrolled by their first upload in the last 24 hours.",
          rp->enrollments);
    gauge(prom, realm, "tempkey_uploads_stored_last_day",
          "Uploads the KDC stored in the last 24 hours (KDC log).",
          rp->uploads);
    gauge(prom, realm, "tempkey_shared_principals",
          "Managed principals shared by several hosts (tempkey_share).",
          rp->shared);
    gauge(prom, realm, "tempkey_pending_key_versions",
          "Shared principals' key versions the KDC does not use yet.",
          rp->pending);
    gauge(prom, realm, "tempkey_fetches_last_day",
          "Requests answered with a shared principal's keys and no store "
          "in the last 24 hours (KDC log).", rp->fetches);
    tk_prom_family(prom, refusals, "gauge", "Uploads the KDC refused in the "
                   "last 24 hours, by reason (KDC log).");
    for (reason = 1; reason <= TK_REASON_MAX; reason++) {
        labels[3] = tk_reason_name(reason);
        tk_prom_sample(prom, refusals, labels, rp->refusals[reason]);
    }
    labels[3] = "other";
    tk_prom_sample(prom, refusals, labels, rp->refusals[OTHER_REASON]);
    ret = tk_prom_write(rp->ctx, prom, path);
    tk_prom_free(prom);
    return ret;
}

/* ---- The command. */

static void
free_report(report *rp)
{
    size_t i;

    for (i = 0; i < rp->nservices; i++)
        free(rp->services[i].name);
    free(rp->services);
    for (i = 0; i < 2; i++) {
        if (rp->locales[i] != (locale_t)0)
            freelocale(rp->locales[i]);
    }
    free_names(&rp->late, FALSE);
    free_names(&rp->dark, TRUE);
    free_names(&rp->unreadable, TRUE);
}

krb5_error_code
tk_report_run(krb5_context ctx, const char *realm, const tk_config *cfg,
              const tk_report_options *opt_arg)
{
    krb5_error_code ret;
    report rp;
    tk_report_options opt = *opt_arg;
    char *log = NULL;
    size_t i;

    memset(&rp, 0, sizeof(rp));
    rp.ctx = ctx;
    rp.cfg = cfg;
    rp.now = time(NULL);
    rp.locales[0] = newlocale(LC_TIME_MASK, "", (locale_t)0);
    rp.locales[1] = newlocale(LC_TIME_MASK, "C", (locale_t)0);
    if (opt.nlogs == 0) {
        ret = configured_log(&rp, &log);
        if (ret)
            goto cleanup;
        opt.logs[opt.nlogs++] = log;
    }
    ret = walk_database(&rp);
    if (ret)
        goto cleanup;
    if (rp.nservices > 0)       /* else there is no array to give qsort */
        qsort(rp.services, rp.nservices, sizeof(*rp.services),
              compare_services);
    for (i = 0; ret == 0 && i < opt.nlogs; i++)
        ret = read_log(&rp, opt.logs[i]);
    if (ret == 0)
        ret = find_late(&rp);
    if (ret)
        goto cleanup;
    if (opt.prometheus != NULL)
        ret = write_prometheus(&rp, realm, opt.prometheus);
    else if (opt.json)
        print_json(&rp, realm, &opt);
    else
        print_text(&rp, realm, &opt);

cleanup:
    free_report(&rp);
    free(log);
    return ret;
}
