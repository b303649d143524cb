/* check_config.c - unit tests of the kdc.conf settings and their errors. */
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
        " purge_interval = 2m\n }\n main = {\n db_library = klmdb\n }\n");
    tk_config cfg;

    /* An explicit section wins over the realm's database_module. */
    ck_assert_int_eq(tk_config_read(ctx, "R", "tk", &cfg), 0);
    ck_assert_int_eq(cfg.purge_interval, 120);
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
    ck_assert_int_eq(tk_config_read_role(ctx, "N", &replica), 0);
    ck_assert(!replica);
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

START_TEST(realm_module_not_tempkey)
{
    expect_error("[realms]\n R = {\n database_module = main\n }\n"
                 "[dbmodules]\n main = {\n db_library = db2\n }\n",
                 "the database of this realm ([dbmodules] main, db_library "
                 "= db2) is not tempkey");
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
    tcase_add_test(tc, primary_kdc_names);
    tcase_add_test(tc, settings);
    tcase_add_test(tc, realm_name_is_default_section);
    tcase_add_test(tc, no_backing_module);
    tcase_add_test(tc, backing_section_missing);
    tcase_add_test(tc, backing_is_itself);
    tcase_add_test(tc, backing_is_tempkey);
    tcase_add_test(tc, bad_purge_interval);
    tcase_add_test(tc, bad_max_life);
    tcase_add_test(tc, realm_module_not_tempkey);
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
