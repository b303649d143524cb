/* check_config.c - unit tests of the kdc.conf settings and their errors. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "tempkey.h"

static char dir[] = "/tmp/tk-config-XXXXXX";
static char conf[sizeof(dir) + 16];

/* A context whose profile is exactly text. */
static krb5_context
context_for(const char *text)
{
    krb5_context ctx = NULL;
    FILE *f;

    f = fopen(conf, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    setenv("KRB5_CONFIG", conf, 1);
    setenv("KRB5_KDC_PROFILE", "/dev/null", 1);
    ck_assert_int_eq(krb5_init_context(&ctx), 0);
    return ctx;
}

static void
expect_error(const char *text, const char *what)
{
    krb5_context ctx = context_for(text);
    tk_config cfg;
    krb5_error_code ret;
    const char *msg;

    ret = tk_config_read(ctx, "R", NULL, &cfg);
    ck_assert_int_eq(ret, KRB5_CONFIG_BADFORMAT);
    ck_assert_ptr_null(cfg.backing);
    msg = krb5_get_error_message(ctx, ret);
    ck_assert_msg(strstr(msg, what) != NULL, "message \"%s\" lacks \"%s\"",
                  msg, what);
    krb5_free_error_message(ctx, msg);
    krb5_free_context(ctx);
}

static void
setup(void)
{
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(conf, sizeof(conf), "%s/krb5.conf", dir);
}

static void
teardown(void)
{
    unlink(conf);
    rmdir(dir);
    strcpy(dir, "/tmp/tk-config-XXXXXX");
}

/* A tempkey database over db2, after a realm's [realms] section. */
#define BASE_DB "[dbmodules]\n tk = {\n db_library = tempkey\n" \
    " backing_module = main\n }\n main = {\n db_library = db2\n }\n"

START_TEST(defaults)
{
    krb5_context ctx = context_for(
        "[realms]\n R = {\n database_module = tk\n }\n"
        "[dbmodules]\n tk = {\n db_library = tempkey\n backing_module = main\n }\n"
        " main = {\n db_library = db2\n }\n");
    tk_config cfg;

    ck_assert_int_eq(tk_config_read(ctx, "R", NULL, &cfg), 0);
    ck_assert_str_eq(cfg.section, "tk");
    ck_assert_str_eq(cfg.backing, "main");
    ck_assert_int_eq(cfg.purge_interval, TK_DEFAULT_PURGE_INTERVAL);
    ck_assert_int_eq(cfg.settle_time, TK_DEFAULT_SETTLE_TIME);
    ck_assert_int_eq(cfg.policy.max_life, TK_DEFAULT_MAX_LIFE);
    ck_assert(!cfg.replica);
    ck_assert(!cfg.logged);
    tk_config_free(&cfg);
    krb5_free_context(ctx);
}
END_TEST

START_TEST(settings)
{
    krb5_context ctx = context_for(
        "[realms]\n R = {\n database_module = tk\n tempkey_max_life = 8h\n }\n"
        "[dbmodules]\n tk = {\n db_library = tempkey\n backing_module = main\n"
        " purge_interval = 2m\n settle_time = 3s\n }\n"
        " main = {\n db_library = klmdb\n }\n");
    tk_config cfg;

    /* An explicit section wins over the realm's database_module. */
    ck_assert_int_eq(tk_config_read(ctx, "R", "tk", &cfg), 0);
    ck_assert_int_eq(cfg.purge_interval, 120);
    ck_assert_int_eq(cfg.settle_time, 3);
    ck_assert_int_eq(cfg.policy.max_life, 8 * 3600);
    tk_config_free(&cfg);
    krb5_free_context(ctx);
}
END_TEST

START_TEST(realm_name_is_default_section)
{
    krb5_context ctx = context_for(
        "[dbmodules]\n R = {\n db_library = tempkey\n backing_module = main\n }\n"
        " main = {\n db_library = db2\n }\n");
    tk_config cfg;

    ck_assert_int_eq(tk_config_read(ctx, "R", NULL, &cfg), 0);
    ck_assert_str_eq(cfg.section, "R");
    tk_config_free(&cfg);
    krb5_free_context(ctx);
}
END_TEST

START_TEST(no_backing_module)
{
    expect_error("[realms]\n R = {\n database_module = tk\n }\n"
                 "[dbmodules]\n tk = {\n db_library = tempkey\n }\n",
                 "[dbmodules] tk: backing_module is not set");
}
END_TEST

START_TEST(backing_section_missing)
{
    expect_error("[realms]\n R = {\n database_module = tk\n }\n"
                 "[dbmodules]\n tk = {\n db_library = tempkey\n"
                 " backing_module = mian\n }\n main = {\n db_library = db2\n }\n",
                 "backing_module = mian: there is no [dbmodules] mian");
}
END_TEST

START_TEST(backing_is_itself)
{
    expect_error("[realms]\n R = {\n database_module = tk\n }\n"
                 "[dbmodules]\n tk = {\n db_library = tempkey\n"
                 " backing_module = tk\n }\n",
                 "backing_module = tk: the backing module must be an "
                 "ordinary database");
}
END_TEST

START_TEST(backing_is_tempkey)
{
    expect_error("[realms]\n R = {\n database_module = tk\n }\n"
                 "[dbmodules]\n tk = {\n db_library = tempkey\n"
                 " backing_module = other\n }\n"
                 " other = {\n db_library = tempkey\n backing_module = tk\n }\n",
                 "backing_module = other: the backing module must be");
}
END_TEST

START_TEST(replica_role)
{
    krb5_context ctx = context_for(
        "[realms]\n R = {\n database_module = tk\n }\n"
        " N = {\n database_module = main\n }\n"
        " P = {\n database_module = tkp\n iprop_enable = true\n }\n"
        "[dbmodules]\n tk = {\n db_library = tempkey\n backing_module = main\n"
        " role = replica\n }\n main = {\n db_library = db2\n }\n"
        " tkp = {\n db_library = tempkey\n backing_module = main\n }\n");
    tk_config cfg;
    krb5_boolean replica = FALSE;

    ck_assert_int_eq(tk_config_read(ctx, "R", NULL, &cfg), 0);
    ck_assert(cfg.replica);
    /* A replica's kpropd replays; the module itself logs nothing. */
    ck_assert(!cfg.logged);
    tk_config_free(&cfg);
    ck_assert_int_eq(tk_config_read(ctx, "P", NULL, &cfg), 0);
    ck_assert(!cfg.replica);
    ck_assert(cfg.logged);
    tk_config_free(&cfg);
    ck_assert_int_eq(tk_config_read_role(ctx, "R", &replica), 0);
    ck_assert(replica);
    /* A realm whose database is not tempkey has no role of ours. */
    ck_assert_int_eq(tk_config_read_role(ctx, "N", &replica),
                     KRB5_PLUGIN_NO_HANDLE);
    krb5_free_context(ctx);
}
END_TEST

START_TEST(bad_role)
{
    expect_error("[realms]\n R = {\n database_module = tk\n }\n"
                 "[dbmodules]\n tk = {\n db_library = tempkey\n"
                 " backing_module = main\n role = primray\n }\n"
                 " main = {\n db_library = db2\n }\n",
                 "tempkey: [dbmodules] tk role = primray: must be primary "
                 "or replica");
}
END_TEST

START_TEST(primary_kdc_names)
{
    krb5_context ctx = context_for(
        "[realms]\n A = {\n primary_kdc = kdc1.example:8888\n"
        " admin_server = adm.example:749\n }\n"
        " B = {\n admin_server = adm.example:749\n }\n"
        " C = {\n kdc = kdc2.example\n }\n");
    char *name = NULL;

    ck_assert_int_eq(tk_primary_kdc(ctx, "A", &name), 0);
    ck_assert_str_eq(name, "kdc1.example:8888");
    free(name);
    /* admin_server's port is kadmind's: only the host names the KDC. */
    ck_assert_int_eq(tk_primary_kdc(ctx, "B", &name), 0);
    ck_assert_str_eq(name, "adm.example");
    free(name);
    ck_assert_int_eq(tk_primary_kdc(ctx, "C", &name), 0);
    ck_assert_ptr_null(name);
    krb5_free_context(ctx);
}
END_TEST

START_TEST(enctype_lists)
{
    static const struct {
        const char *list, *what;
    } bad[] = {
        { "rot13", "tempkey_enctypes: \"rot13\" is not a supported enctype" },
        { "aes256-cts des3-cbc-sha1", "\"des3-cbc-sha1\" is a weak" },
        { "arcfour-hmac", "\"arcfour-hmac\" is a weak" },
        { "aes256-cts aes128-cts aes256-cts", "\"aes256-cts\" is listed "
          "twice" },
        /* Aliases name the same enctype. */
        { "camellia256-cts camellia256-cts-cmac", "\"camellia256-cts-cmac\" "
          "is listed twice" },
    };
    char text[1024];
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        snprintf(text, sizeof(text), "[realms]\n R = {\n database_module = "
                 "tk\n tempkey_enctypes = %s\n }\n" BASE_DB, bad[i].list);
        expect_error(text, bad[i].what);
    }
}
END_TEST

static krb5_boolean
may_enroll(krb5_context ctx, const tk_config *cfg, const char *name)
{
    krb5_principal p;
    krb5_boolean ok;

    ck_assert_int_eq(krb5_parse_name(ctx, name, &p), 0);
    ok = tk_policy_may_enroll(ctx, &cfg->policy, p);
    krb5_free_principal(ctx, p);
    return ok;
}

START_TEST(enrollment_never_reaches_reserved_or_foreign_names)
{
    krb5_context ctx = context_for(
        "[realms]\n R = {\n database_module = tk\n"
        " tempkey_enroll = */*.example.test K/M host/*\n }\n" BASE_DB);
    tk_config cfg;

    ck_assert_int_eq(tk_config_read(ctx, "R", NULL, &cfg), 0);
    ck_assert(may_enroll(ctx, &cfg, "HTTP/www.example.test@R"));
    ck_assert(may_enroll(ctx, &cfg, "host/kdc1@R"));
    ck_assert(!may_enroll(ctx, &cfg, "HTTP/www.other.test@R"));
    /* '*' does not cross a '/'. */
    ck_assert(!may_enroll(ctx, &cfg, "HTTP/a/b.example.test@R"));
    /* The realm's machinery, whatever the patterns say. */
    ck_assert(!may_enroll(ctx, &cfg, "kadmin/kdc1.example.test@R"));
    ck_assert(!may_enroll(ctx, &cfg, "kiprop/kdc1.example.test@R"));
    ck_assert(!may_enroll(ctx, &cfg, "krbtgt/kdc1.example.test@R"));
    ck_assert(!may_enroll(ctx, &cfg, "WELLKNOWN/ANONYMOUS.example.test@R"));
    ck_assert(!may_enroll(ctx, &cfg, "K/M@R"));
    /* Only names of the realm itself. */
    ck_assert(!may_enroll(ctx, &cfg, "HTTP/www.example.test@OTHER"));
    tk_config_free(&cfg);
    krb5_free_context(ctx);
}
END_TEST

START_TEST(zero_max_life_means_no_limit)
{
    krb5_context ctx = context_for(
        "[realms]\n R = {\n database_module = tk\n max_life = 0\n"
        " max_renewable_life = 0\n }\n" BASE_DB);
    tk_config cfg;

    ck_assert_int_eq(tk_config_read(ctx, "R", NULL, &cfg), 0);
    ck_assert_int_eq(cfg.policy.entry_max_life, 0);
    ck_assert_int_eq(cfg.policy.entry_max_renewable, 0);
    tk_config_free(&cfg);
    krb5_free_context(ctx);
}
END_TEST

START_TEST(bad_purge_interval)
{
    expect_error("[realms]\n R = {\n database_module = tk\n }\n"
                 "[dbmodules]\n tk = {\n db_library = tempkey\n"
                 " backing_module = main\n purge_interval = often\n }\n"
                 " main = {\n db_library = db2\n }\n",
                 "[dbmodules] tk purge_interval: \"often\" is not a "
                 "positive duration");
}
END_TEST

START_TEST(bad_max_life)
{
    expect_error("[realms]\n R = {\n database_module = tk\n"
                 " tempkey_max_life = -1h\n }\n"
                 "[dbmodules]\n tk = {\n db_library = tempkey\n"
                 " backing_module = main\n }\n main = {\n db_library = db2\n }\n",
                 "[realms] R tempkey_max_life: \"-1h\"");
}
END_TEST

START_TEST(realm_without_module)
{
    expect_error("[realms]\n R = {\n kdc = x\n }\n",
                 "realm R has no database module: no [dbmodules] R section "
                 "with a db_library");
}
END_TEST

START_TEST(realm_module_not_tempkey)
{
    expect_error("[realms]\n R = {\n database_module = main\n }\n"
                 "[dbmodules]\n main = {\n db_library = db2\n }\n",
                 "the database of this realm ([dbmodules] main, db_library "
                 "= db2) is not tempkey");
}
END_TEST

/* ---- Profiles with relations replaced (lib/profile.c). */

static const char override_conf[] =
    "[libdefaults]\n default_realm = R\n"
    "[realms]\n R = {\n kdc = old1:88\n kdc = old2\n primary_kdc = old1\n"
    " admin_server = adm\n }\n";
static const char *const kdc_path[] = { "realms", "R", "kdc", NULL };
static const char *const primary_path[] = { "realms", "R", "primary_kdc",
                                            NULL };
static const char *const new_kdcs[] = { "new1:750", "new2", NULL };

/* A context where R's kdc is new_kdcs and primary_kdc is absent. */
static krb5_context
overridden(krb5_context *base_out)
{
    const tk_profile_setting settings[] = {
        { kdc_path, new_kdcs }, { primary_path, NULL }
    };
    krb5_context ctx = context_for(override_conf), inner = NULL;

    ck_assert_int_eq(tk_context_override(ctx, settings, 2, 0, &inner), 0);
    *base_out = ctx;
    return inner;
}

/* Every name and value an iteration yields, as "name=value " text. */
static void
iterate(profile_t profile, const char *const *names, int flags, char *out,
        size_t len)
{
    void *iter = NULL;
    char *name, *value;

    *out = '\0';
    ck_assert_int_eq(profile_iterator_create(profile, names, flags, &iter),
                     0);
    while (profile_iterator(&iter, &name, &value) == 0 && name != NULL) {
        snprintf(out + strlen(out), len - strlen(out), "%s=%s ", name,
                 value != NULL ? value : "(section)");
        profile_release_string(name);
        profile_release_string(value);
    }
    profile_iterator_free(&iter);
}

START_TEST(override_lookups)
{
    krb5_context base, ctx = overridden(&base);
    profile_t profile = NULL;
    char **values = NULL, *realm = NULL;

    ck_assert_int_eq(krb5_get_profile(ctx, &profile), 0);
    ck_assert_int_eq(profile_get_values(profile, kdc_path, &values), 0);
    ck_assert_str_eq(values[0], "new1:750");
    ck_assert_str_eq(values[1], "new2");
    ck_assert_ptr_null(values[2]);
    profile_free_list(values);
    ck_assert_int_eq(profile_get_values(profile, primary_path, &values),
                     PROF_NO_RELATION);
    /* Everything else comes from the base profile. */
    ck_assert_int_eq(profile_get_string(profile, "realms", "R",
                                        "admin_server", NULL, &realm), 0);
    ck_assert_str_eq(realm, "adm");
    profile_release_string(realm);
    ck_assert_int_eq(krb5_get_default_realm(ctx, &realm), 0);
    ck_assert_str_eq(realm, "R");
    krb5_free_default_realm(ctx, realm);
    profile_release(profile);
    /* The base context is unchanged. */
    ck_assert_int_eq(krb5_get_profile(base, &profile), 0);
    ck_assert_int_eq(profile_get_values(profile, kdc_path, &values), 0);
    ck_assert_str_eq(values[0], "old1:88");
    profile_free_list(values);
    profile_release(profile);
    krb5_free_context(ctx);
    krb5_free_context(base);
}
END_TEST

START_TEST(override_iteration)
{
    krb5_context base, ctx = overridden(&base);
    const char *const section[] = { "realms", "R", NULL };
    profile_t profile = NULL;
    char text[512];

    ck_assert_int_eq(krb5_get_profile(ctx, &profile), 0);
    iterate(profile, kdc_path, 0, text, sizeof(text));
    ck_assert_str_eq(text, "kdc=new1:750 kdc=new2 ");
    iterate(profile, primary_path, 0, text, sizeof(text));
    ck_assert_str_eq(text, "");
    iterate(profile, section, PROFILE_ITER_LIST_SECTION, text, sizeof(text));
    ck_assert_str_eq(text, "admin_server=adm kdc=new1:750 kdc=new2 ");
    iterate(profile, section, PROFILE_ITER_LIST_SECTION |
            PROFILE_ITER_SECTIONS_ONLY, text, sizeof(text));
    ck_assert_str_eq(text, "");
    profile_release(profile);
    krb5_free_context(ctx);
    krb5_free_context(base);
}
END_TEST

START_TEST(override_needs_a_path)
{
    const char *const empty[] = { NULL };
    const tk_profile_setting bad = { empty, new_kdcs };
    krb5_context ctx = context_for(override_conf);
    profile_t profile = NULL;

    ck_assert_int_eq(tk_profile_override(ctx, &bad, 1, &profile), EINVAL);
    ck_assert_ptr_null(profile);
    krb5_free_context(ctx);
}
END_TEST

static Suite *
config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("kdc.conf");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, replica_role);
    tcase_add_test(tc, bad_role);
    tcase_add_test(tc, enctype_lists);
    tcase_add_test(tc, zero_max_life_means_no_limit);
    tcase_add_test(tc, enrollment_never_reaches_reserved_or_foreign_names);
    tcase_add_test(tc, primary_kdc_names);
    tcase_add_test(tc, settings);
    tcase_add_test(tc, realm_name_is_default_section);
    tcase_add_test(tc, no_backing_module);
    tcase_add_test(tc, backing_section_missing);
    tcase_add_test(tc, backing_is_itself);
    tcase_add_test(tc, backing_is_tempkey);
    tcase_add_test(tc, bad_purge_interval);
    tcase_add_test(tc, bad_max_life);
    tcase_add_test(tc, realm_without_module);
    tcase_add_test(tc, realm_module_not_tempkey);
    suite_add_tcase(s, tc);
    tc = tcase_create("profile override");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, override_lookups);
    tcase_add_test(tc, override_iteration);
    tcase_add_test(tc, override_needs_a_path);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(config_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
