/* check_plugin.c - the built module loads, speaks DAL 9 and fills every
 * mandatory method. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include <check.h>
#include <kdb.h>
#include <string.h>
#include <krb5/clpreauth_plugin.h>
#include <krb5/kdcpreauth_plugin.h>

static const char *
module_path(const char *dir)
{
    static char path[4096];
    const char *top = getenv("TK_BUILDDIR");

    snprintf(path, sizeof(path), "%s/%s/.libs/tempkey.so",
             top != NULL ? top : ".", dir);
    return path;
}

static const char *
plugin_path(void)
{
    return module_path("plugin");
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

typedef krb5_error_code (*initvt_fn)(krb5_context, int, int,
                                     krb5_plugin_vtable);

START_TEST(preauth_interface_versions)
{
    void *h = dlopen(module_path("preauth"), RTLD_NOW | RTLD_LOCAL);
    struct krb5_kdcpreauth_vtable_st kdc;
    struct krb5_clpreauth_vtable_st cl;
    initvt_fn kdc_init, cl_init;
    krb5_context ctx;

    ck_assert_msg(h != NULL, "dlopen: %s", dlerror());
    ck_assert_int_eq(krb5_init_context(&ctx), 0);
    kdc_init = (initvt_fn)dlsym(h, "kdcpreauth_tempkey_initvt");
    cl_init = (initvt_fn)dlsym(h, "clpreauth_tempkey_initvt");
    ck_assert_ptr_nonnull(kdc_init);
    ck_assert_ptr_nonnull(cl_init);
    /* An interface version the module was not written for is refused. */
    ck_assert_int_eq(kdc_init(ctx, 2, 0, (krb5_plugin_vtable)&kdc),
                     KRB5_PLUGIN_VER_NOTSUPP);
    ck_assert_int_eq(cl_init(ctx, 2, 0, (krb5_plugin_vtable)&cl),
                     KRB5_PLUGIN_VER_NOTSUPP);
    memset(&kdc, 0, sizeof(kdc));
    memset(&cl, 0, sizeof(cl));
    ck_assert_int_eq(kdc_init(ctx, 1, 1, (krb5_plugin_vtable)&kdc), 0);
    ck_assert_int_eq(cl_init(ctx, 1, 2, (krb5_plugin_vtable)&cl), 0);
    ck_assert_str_eq(kdc.name, "tempkey");
    ck_assert_int_eq(kdc.pa_type_list[0], 16931);
    ck_assert_ptr_nonnull(kdc.verify);
    ck_assert_ptr_nonnull(cl.process);
    ck_assert_int_eq(cl.pa_type_list[0], 16931);
    krb5_free_context(ctx);
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
    tcase_add_test(tc, preauth_interface_versions);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
