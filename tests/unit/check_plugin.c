/* check_plugin.c - the built module loads, speaks DAL 9 and fills every
 * mandatory method. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include <check.h>
#include <kdb.h>

static const char *
plugin_path(void)
{
    static char path[4096];
    const char *top = getenv("TK_BUILDDIR");

    snprintf(path, sizeof(path), "%s/plugin/.libs/tempkey.so",
             top != NULL ? top : ".");
    return path;
}

START_TEST(vtable)
{
    void *h = dlopen(plugin_path(), RTLD_NOW | RTLD_LOCAL);
    kdb_vftabl *vt;

    ck_assert_msg(h != NULL, "dlopen: %s", dlerror());
    vt = dlsym(h, "kdb_function_table");
    ck_assert_ptr_nonnull(vt);
    ck_assert_int_eq(vt->maj_ver, KRB5_KDB_DAL_MAJOR_VERSION);
    ck_assert_int_eq(vt->min_ver, 0);
    ck_assert_ptr_nonnull(vt->init_library);
    ck_assert_ptr_nonnull(vt->fini_library);
    ck_assert_ptr_nonnull(vt->init_module);
    ck_assert_ptr_nonnull(vt->fini_module);
    ck_assert_ptr_nonnull(vt->get_principal);
    ck_assert_ptr_nonnull(vt->put_principal);
    ck_assert_ptr_nonnull(vt->iterate);
    ck_assert_ptr_nonnull(vt->audit_as_req);
    /* libkdb5's default rename runs through get, put and delete. */
    ck_assert_ptr_null(vt->rename_principal);
    ck_assert_int_eq(vt->init_library(), 0);
    ck_assert_int_eq(vt->fini_library(), 0);
    dlclose(h);
}
END_TEST

START_TEST(no_other_symbols)
{
    void *h = dlopen(plugin_path(), RTLD_NOW | RTLD_LOCAL);

    ck_assert_msg(h != NULL, "dlopen: %s", dlerror());
    ck_assert_ptr_null(dlsym(h, "tk_meta_decode"));
    ck_assert_ptr_null(dlsym(h, "tk_entry_kdc_view"));
    dlclose(h);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("plugin");
    TCase *tc = tcase_create("load");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, vtable);
    tcase_add_test(tc, no_other_symbols);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
