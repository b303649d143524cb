/* check_rules.c - unit tests of the expiry, capping and write rules. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <kadm5/admin.h>
#include <kadm5/kadm_err.h>

#include "tkentry.h"
#include "tkproto.h"

#define NOW 1800000000LL

static krb5_context ctx;

static void
setup(void)
{
    ck_assert_int_eq(krb5_init_context(&ctx), 0);
}

static void
teardown(void)
{
    krb5_free_context(ctx);
}

static tk_meta *
meta_with(const krb5_kvno *kvnos, const int64_t *expiries, size_t n)
{
    tk_meta *m = NULL;
    tk_key_record rec;
    size_t i;

    ck_assert_int_eq(tk_meta_new(&m), 0);
    for (i = 0; i < n; i++) {
        memset(&rec, 0, sizeof(rec));
        rec.kvno = kvnos[i];
        rec.expiry = expiries[i];
        ck_assert_int_eq(tk_meta_add(ctx, m, &rec), 0);
    }
    return m;
}

/* An entry for princ with two dummy keys per kvno (sorted descending, as
 * libkdb5 returns them), managed if asked, with meta if given. */
static krb5_db_entry *
make_entry(const char *princ, const krb5_kvno *kvnos, size_t n,
           int managed, tk_meta *meta)
{
    krb5_db_entry *e = calloc(1, sizeof(*e));
    size_t i, k = 0;

    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(krb5_parse_name(ctx, princ, &e->princ), 0);
    e->max_life = 36000;
    e->max_renewable_life = 604800;
    e->key_data = calloc(2 * n + 1, sizeof(*e->key_data));
    for (i = n; i > 0; i--) {
        int j;

        for (j = 0; j < 2; j++) {
            krb5_key_data *kd = &e->key_data[k++];

            kd->key_data_ver = 1;
            kd->key_data_kvno = kvnos[i - 1];
            kd->key_data_type[0] = j ? 17 : 18;
            kd->key_data_length[0] = 4;
            kd->key_data_contents[0] = malloc(4);
            memset(kd->key_data_contents[0], 0x5a, 4);
        }
    }
    e->n_key_data = (krb5_int16)k;
    if (managed)
        ck_assert_int_eq(krb5_dbe_set_string(ctx, e, TK_ATTR_MANAGED, "1"),
                         0);
    if (meta != NULL)
        ck_assert_int_eq(tk_entry_set_meta(ctx, e, meta), 0);
    return e;
}

static void
assert_message(krb5_error_code code, const char *what)
{
    const char *msg = krb5_get_error_message(ctx, code);

    ck_assert_msg(strstr(msg, what) != NULL, "message \"%s\" lacks \"%s\"",
                  msg, what);
    krb5_free_error_message(ctx, msg);
}

/* ---- Record rules. */

START_TEST(cap_life)
{
    ck_assert_int_eq(tk_cap_life(0, NOW + 100, NOW), 100);
    ck_assert_int_eq(tk_cap_life(50, NOW + 100, NOW), 50);
    ck_assert_int_eq(tk_cap_life(3600, NOW + 100, NOW), 100);
    ck_assert_int_eq(tk_cap_life(0, NOW + 10LL * INT32_MAX, NOW), INT32_MAX);
}
END_TEST

START_TEST(add_refuses_rollback)
{
    const krb5_kvno kv[] = { 3 };
    const int64_t ex[] = { NOW + 10 };
    tk_meta *m = meta_with(kv, ex, 1);
    tk_key_record rec;

    memset(&rec, 0, sizeof(rec));
    rec.kvno = 3;
    rec.expiry = NOW + 20;
    ck_assert_int_eq(tk_meta_add(ctx, m, &rec), KRB5_KDB_BAD_VERSION);
    assert_message(KRB5_KDB_BAD_VERSION, "not above");
    rec.kvno = 2;
    ck_assert_int_eq(tk_meta_add(ctx, m, &rec), KRB5_KDB_BAD_VERSION);
    rec.kvno = TK_KVNO_MAX + 1;
    ck_assert_int_eq(tk_meta_add(ctx, m, &rec), KRB5_KDB_BAD_VERSION);
    ck_assert_uint_eq(m->nkeys, 1);
    tk_meta_free(m);
}
END_TEST

START_TEST(remove_keeps_highest_and_notes_end)
{
    const krb5_kvno kv[] = { 1, 2 };
    const int64_t ex[] = { NOW - 50, NOW + 100 };
    tk_meta *m = meta_with(kv, ex, 2);

    ck_assert_int_eq(tk_meta_remove(m, 2, NOW), 1);
    ck_assert_int_eq(m->last_expiry, NOW);      /* revoked before expiry */
    ck_assert_int_eq(tk_meta_remove(m, 2, NOW), 0);
    ck_assert_int_eq(tk_meta_remove(m, 1, NOW), 1);
    ck_assert_int_eq(m->last_expiry, NOW);      /* never goes back */
    ck_assert_uint_eq(m->highest_kvno, 2);
    ck_assert_uint_eq(m->nkeys, 0);
    tk_meta_free(m);
}
END_TEST

START_TEST(drop_expired)
{
    const krb5_kvno kv[] = { 1, 2, 3, 4 };
    const int64_t ex[] = { NOW - 10, NOW, NOW + 1, NOW - 5 };
    tk_meta *m = meta_with(kv, ex, 4);

    /* A key expiring exactly now is expired. */
    ck_assert_uint_eq(tk_meta_drop_expired(m, NOW), 3);
    ck_assert_uint_eq(m->nkeys, 1);
    ck_assert_uint_eq(m->keys[0].kvno, 3);
    ck_assert_int_eq(m->last_expiry, NOW);
    ck_assert_uint_eq(tk_meta_drop_expired(m, NOW), 0);
    tk_meta_free(m);
}
END_TEST

START_TEST(newest_live_and_next_expiry)
{
    const krb5_kvno kv[] = { 1, 2, 3 };
    const int64_t ex[] = { NOW + 500, NOW + 300, NOW - 1 };
    tk_meta *m = meta_with(kv, ex, 3);

    ck_assert_uint_eq(tk_meta_newest_live(m, NOW)->kvno, 2);
    ck_assert_ptr_null(tk_meta_newest_live(m, NOW + 500));
    ck_assert_int_eq(tk_meta_next_expiry(m), NOW - 1);
    tk_meta_free(m);
}
END_TEST

START_TEST(parse_duration)
{
    krb5_deltat d = 0;

    ck_assert_int_eq(tk_parse_duration(ctx, "x", "1d", &d), 0);
    ck_assert_int_eq(d, 86400);
    ck_assert_int_eq(tk_parse_duration(ctx, "x", "90m", &d), 0);
    ck_assert_int_eq(d, 5400);
    ck_assert_int_eq(tk_parse_duration(ctx, "x", "3600", &d), 0);
    ck_assert_int_eq(d, 3600);
    ck_assert_int_eq(tk_parse_duration(ctx, "purge_interval", "soon", &d),
                     KRB5_CONFIG_BADFORMAT);
    assert_message(KRB5_CONFIG_BADFORMAT, "purge_interval: \"soon\"");
    ck_assert_int_eq(tk_parse_duration(ctx, "x", "0", &d),
                     KRB5_CONFIG_BADFORMAT);
    ck_assert_int_eq(tk_parse_duration(ctx, "x", "-5", &d),
                     KRB5_CONFIG_BADFORMAT);
    ck_assert_int_eq(tk_parse_duration(ctx, "x", "", &d),
                     KRB5_CONFIG_BADFORMAT);
}
END_TEST

START_TEST(format_time)
{
    char buf[TK_TIME_LEN];

    tk_format_time(0, buf);
    ck_assert_str_eq(buf, "1970-01-01T00:00:00Z");
    tk_format_time(4102444800LL, buf);
    ck_assert_str_eq(buf, "2100-01-01T00:00:00Z");
}
END_TEST

/* ---- Entry rules. */

START_TEST(kdc_view_keeps_live_keys_and_caps)
{
    const krb5_kvno kv[] = { 1, 2, 3 };
    const int64_t ex[] = { NOW + 7200, NOW - 1, NOW + 600 };
    tk_meta *m = meta_with(kv, ex, 3);
    krb5_db_entry *e = make_entry("HTTP/a@R", kv, 3, 1, m);

    ck_assert_int_eq(tk_entry_kdc_view(ctx, e, NOW, TRUE), 0);
    ck_assert_int_eq(e->n_key_data, 4);
    ck_assert_uint_eq(e->key_data[0].key_data_kvno, 3);
    ck_assert_uint_eq(e->key_data[3].key_data_kvno, 1);
    /* Capped at the key the KDC will use (kvno 3), not the longest. */
    ck_assert_int_eq(e->max_life, 600);
    ck_assert_int_eq(e->max_renewable_life, 600);
    ck_assert(e->attributes & KRB5_KDB_DISALLOW_POSTDATED);
    krb5_db_free_principal(ctx, e);
    tk_meta_free(m);
}
END_TEST

/* A shared principal's pending key: no ticket in it before its time,
 * unless no other key is live; the lifetime is capped at the key used. */
START_TEST(kdc_view_leaves_out_a_pending_key)
{
    const krb5_kvno kv[] = { 1, 2 };
    const int64_t ex[] = { NOW + 600, NOW + 7200 };
    tk_meta *m = meta_with(kv, ex, 2);
    krb5_db_entry *e;

    m->keys[0].active_at = NOW - 100;
    m->keys[1].active_at = NOW + 60;
    ck_assert_ptr_eq(tk_meta_pending(m, NOW), &m->keys[1]);
    ck_assert_ptr_eq(tk_meta_newest_active(m, NOW), &m->keys[0]);
    ck_assert(!tk_record_pending(&m->keys[1], NOW + 60));
    e = make_entry("HTTP/a@R", kv, 2, 1, m);
    ck_assert_int_eq(tk_entry_kdc_view(ctx, e, NOW, TRUE), 0);
    ck_assert_int_eq(e->n_key_data, 2);
    ck_assert_uint_eq(e->key_data[0].key_data_kvno, 1);
    ck_assert_int_eq(e->max_life, 600);
    krb5_db_free_principal(ctx, e);
    /* Its time come, it is the key used. */
    e = make_entry("HTTP/a@R", kv, 2, 1, m);
    ck_assert_int_eq(tk_entry_kdc_view(ctx, e, NOW + 60, TRUE), 0);
    ck_assert_uint_eq(e->key_data[0].key_data_kvno, 2);
    ck_assert_int_eq(e->n_key_data, 4);
    krb5_db_free_principal(ctx, e);
    /* The previous key expired before the delay ended: the pending one
     * serves rather than none. */
    e = make_entry("HTTP/a@R", kv, 2, 1, m);
    ck_assert_int_eq(tk_entry_kdc_view(ctx, e, NOW + 601, TRUE), 0);
    ck_assert_int_eq(e->n_key_data, 2);
    ck_assert_uint_eq(e->key_data[0].key_data_kvno, 2);
    krb5_db_free_principal(ctx, e);
    tk_meta_free(m);
}
END_TEST

/* When a member of a shared principal uploads next. */
START_TEST(shared_refresh_by)
{
    /* Two thirds into the key's use ... */
    ck_assert_int_eq(tk_shared_refresh_by(NOW + 3000, NOW, NOW - 10, 60),
                     NOW + 2000);
    /* ... reckoned from now for a key used at once ... */
    ck_assert_int_eq(tk_shared_refresh_by(NOW + 3000, 0, NOW, 60),
                     NOW + 2000);
    /* ... and early enough for the next key's delay to end before it
     * expires. */
    ck_assert_int_eq(tk_shared_refresh_by(NOW + 3000, NOW, NOW, 2000),
                     NOW + 1000);
}
END_TEST

START_TEST(share_delay_attribute)
{
    const char *good[] = { "600", "10m", "1h" };
    const int64_t want[] = { 600, 600, 3600 };
    const char *bad[] = { "", "soon", "-5" };
    krb5_db_entry *e;
    size_t i;

    e = make_entry("HTTP/a@R", NULL, 0, 1, NULL);
    ck_assert_int_eq(tk_entry_share_delay(ctx, e), 0);
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(krb5_dbe_set_string(ctx, e, TK_ATTR_SHARE, good[i]),
                         0);
        ck_assert_int_eq(tk_entry_share_delay(ctx, e), want[i]);
    }
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(krb5_dbe_set_string(ctx, e, TK_ATTR_SHARE, bad[i]),
                         0);
        ck_assert_msg(tk_entry_share_delay(ctx, e) == 0, "\"%s\" was taken",
                      bad[i]);
    }
    krb5_db_free_principal(ctx, e);
}
END_TEST

START_TEST(kdc_view_client_lookup_not_capped)
{
    const krb5_kvno kv[] = { 1 };
    const int64_t ex[] = { NOW - 1 };
    tk_meta *m = meta_with(kv, ex, 1);
    krb5_db_entry *e = make_entry("HTTP/a@R", kv, 1, 1, m);

    ck_assert_int_eq(tk_entry_kdc_view(ctx, e, NOW, FALSE), 0);
    ck_assert_int_eq(e->n_key_data, 0);
    ck_assert_int_eq(e->max_life, 36000);
    krb5_db_free_principal(ctx, e);
    tk_meta_free(m);
}
END_TEST

START_TEST(kdc_view_refuses_without_live_key)
{
    const krb5_kvno kv[] = { 4, 5 };
    const int64_t ex[] = { NOW - 100, NOW - 30 };
    tk_meta *m = meta_with(kv, ex, 2);
    krb5_db_entry *e = make_entry("HTTP/a@R", kv, 2, 1, m);
    krb5_error_code ret;

    ret = tk_entry_kdc_view(ctx, e, NOW, TRUE);
    ck_assert_int_eq(ret, KRB5_KDB_NO_MATCHING_KEY);
    assert_message(ret, "HTTP/a@R");
    assert_message(ret, "no live temporary key");
    assert_message(ret, "kvno 5, ended at 2027-01-15T07:59:30Z");
    krb5_db_free_principal(ctx, e);
    tk_meta_free(m);
}
END_TEST

START_TEST(kdc_view_refuses_never_keyed)
{
    krb5_db_entry *e = make_entry("HTTP/b@R", NULL, 0, 1, NULL);
    krb5_error_code ret;

    ret = tk_entry_kdc_view(ctx, e, NOW, TRUE);
    ck_assert_int_eq(ret, KRB5_KDB_NO_MATCHING_KEY);
    assert_message(ret, "never had one");
    krb5_db_free_principal(ctx, e);
}
END_TEST

START_TEST(kdc_view_hides_unrecorded_keys)
{
    const krb5_kvno kv[] = { 1, 2 };
    const int64_t ex[] = { NOW + 100 };
    tk_meta *m = meta_with(kv, ex, 1);
    krb5_db_entry *e = make_entry("HTTP/a@R", kv, 2, 1, m);

    ck_assert_int_eq(tk_entry_kdc_view(ctx, e, NOW, TRUE), 0);
    ck_assert_int_eq(e->n_key_data, 2);
    ck_assert_uint_eq(e->key_data[0].key_data_kvno, 1);
    krb5_db_free_principal(ctx, e);
    tk_meta_free(m);
}
END_TEST

START_TEST(kdc_view_refuses_corrupt_record)
{
    const krb5_kvno kv[] = { 1 };
    krb5_db_entry *e = make_entry("HTTP/a@R", kv, 1, 1, NULL);
    krb5_tl_data tl;
    krb5_error_code ret;

    memset(&tl, 0, sizeof(tl));
    tl.tl_data_type = TK_TL_META;
    tl.tl_data_length = 3;
    tl.tl_data_contents = (krb5_octet *)"\x30\x01\x00";
    ck_assert_int_eq(krb5_dbe_update_tl_data(ctx, e, &tl), 0);
    ret = tk_entry_kdc_view(ctx, e, NOW, TRUE);
    ck_assert_int_ne(ret, 0);
    assert_message(ret, "HTTP/a@R");
    assert_message(ret, "corrupt");
    krb5_db_free_principal(ctx, e);
}
END_TEST

START_TEST(check_put_refuses_long_term_key)
{
    const krb5_kvno kv[] = { 1, 2 };
    const int64_t ex[] = { NOW + 100 };
    tk_meta *m = meta_with(kv, ex, 1);
    krb5_db_entry *e = make_entry("HTTP/a@R", kv, 2, 1, m);
    krb5_error_code ret;

    ret = tk_entry_check_put(ctx, e);
    ck_assert_int_eq(ret, KADM5_PROTECT_PRINCIPAL);
    assert_message(ret, "keys come from ktupdate");
    assert_message(ret, "key version 2");
    krb5_db_free_principal(ctx, e);
    tk_meta_free(m);
}
END_TEST

START_TEST(check_put_refuses_unmanaged_with_temp_keys)
{
    const krb5_kvno kv[] = { 1 };
    const int64_t ex[] = { NOW + 100 };
    tk_meta *m = meta_with(kv, ex, 1);
    krb5_db_entry *e = make_entry("HTTP/a@R", kv, 1, 0, m);
    krb5_error_code ret;

    ret = tk_entry_check_put(ctx, e);
    ck_assert_int_eq(ret, KADM5_PROTECT_PRINCIPAL);
    assert_message(ret, "tempkey-admin revoke");
    krb5_db_free_principal(ctx, e);
    tk_meta_free(m);
}
END_TEST

START_TEST(check_put_accepts)
{
    const krb5_kvno kv[] = { 1, 2 };
    const int64_t ex[] = { NOW + 100, NOW - 5 };
    tk_meta *m = meta_with(kv, ex, 2);
    krb5_db_entry *managed = make_entry("HTTP/a@R", kv, 2, 1, m);
    krb5_db_entry *plain = make_entry("user@R", kv, 2, 0, NULL);
    krb5_db_entry *fresh = make_entry("HTTP/c@R", NULL, 0, 1, NULL);

    ck_assert_int_eq(tk_entry_check_put(ctx, managed), 0);
    ck_assert_int_eq(tk_entry_check_put(ctx, plain), 0);
    ck_assert_int_eq(tk_entry_check_put(ctx, fresh), 0);
    krb5_db_free_principal(ctx, managed);
    krb5_db_free_principal(ctx, plain);
    krb5_db_free_principal(ctx, fresh);
    tk_meta_free(m);
}
END_TEST

START_TEST(purge_and_revoke_entry)
{
    const krb5_kvno kv[] = { 1, 2, 3 };
    const int64_t ex[] = { NOW - 10, NOW + 100, NOW + 200 };
    tk_meta *m = meta_with(kv, ex, 3), *after = NULL;
    krb5_db_entry *e = make_entry("HTTP/a@R", kv, 3, 1, m);
    krb5_kvno next = 0;
    size_t removed = 0;

    ck_assert_int_eq(tk_entry_purge(ctx, e, NOW, &removed), 0);
    ck_assert_uint_eq(removed, 1);
    ck_assert_int_eq(e->n_key_data, 4);
    ck_assert_int_eq(tk_entry_revoke(ctx, e, 3, NOW, &removed), 0);
    ck_assert_uint_eq(removed, 1);
    ck_assert_int_eq(e->n_key_data, 2);
    ck_assert_uint_eq(e->key_data[0].key_data_kvno, 2);
    ck_assert_int_eq(tk_entry_revoke(ctx, e, 3, NOW, &removed),
                     KRB5_KDB_NO_MATCHING_KEY);
    ck_assert_int_eq(tk_entry_revoke(ctx, e, 0, NOW, &removed), 0);
    ck_assert_uint_eq(removed, 1);
    ck_assert_int_eq(e->n_key_data, 0);
    /* The next key must still be above everything ever stored. */
    ck_assert_int_eq(tk_entry_next_kvno(ctx, e, &next), 0);
    ck_assert_uint_eq(next, 4);
    ck_assert_int_eq(tk_entry_get_meta(ctx, e, &after), 0);
    ck_assert_uint_eq(after->nkeys, 0);
    ck_assert_int_eq(tk_entry_check_put(ctx, e), 0);
    tk_meta_free(after);
    krb5_db_free_principal(ctx, e);
    tk_meta_free(m);
}
END_TEST

START_TEST(revoke_all_repairs_corrupt_record)
{
    const krb5_kvno kv[] = { 3, 5 };
    krb5_db_entry *e = make_entry("HTTP/a@R", kv, 2, 1, NULL);
    krb5_tl_data tl;
    krb5_kvno next = 0;
    size_t removed = 0;

    memset(&tl, 0, sizeof(tl));
    tl.tl_data_type = TK_TL_META;
    tl.tl_data_length = 2;
    tl.tl_data_contents = (krb5_octet *)"\x30\x00";
    ck_assert_int_eq(krb5_dbe_update_tl_data(ctx, e, &tl), 0);
    /* One kvno cannot be revoked from an unreadable record... */
    ck_assert_int_ne(tk_entry_revoke(ctx, e, 3, NOW, &removed), 0);
    /* ...but revoking all drops every key and starts a fresh record. */
    ck_assert_int_eq(tk_entry_revoke(ctx, e, 0, NOW, &removed), 0);
    ck_assert_uint_eq(removed, 2);
    ck_assert_int_eq(e->n_key_data, 0);
    ck_assert_int_eq(tk_entry_next_kvno(ctx, e, &next), 0);
    ck_assert_uint_eq(next, 6);
    ck_assert_int_eq(tk_entry_check_put(ctx, e), 0);
    krb5_db_free_principal(ctx, e);
}
END_TEST

START_TEST(stale_writer_keeps_stored_keys)
{
    const krb5_kvno old_kv[] = { 1 }, new_kv[] = { 1, 2 };
    const int64_t ex[] = { NOW + 100, NOW + 200 };
    tk_meta *m_old = meta_with(old_kv, ex, 1), *m_new = meta_with(new_kv,
                                                                   ex, 2);
    krb5_db_entry *stale, *stored, *fresh;
    tk_meta *got = NULL;

    /* stored: generation advanced past the writer's copy. */
    m_old->generation = 10;
    m_new->generation = 20;
    stale = make_entry("HTTP/a@R", old_kv, 1, 1, m_old);
    stored = make_entry("HTTP/a@R", new_kv, 2, 1, m_new);
    stale->max_life = 42;
    ck_assert_int_eq(tk_entry_keep_newer_keys(ctx, stale, stored), 0);
    ck_assert_int_eq(stale->n_key_data, 4);
    ck_assert_uint_eq(stale->key_data[0].key_data_kvno, 2);
    ck_assert_int_eq(stale->max_life, 42);      /* the writer's change */
    ck_assert_int_eq(tk_entry_get_meta(ctx, stale, &got), 0);
    ck_assert_uint_eq(got->nkeys, 2);
    tk_meta_free(got);
    got = NULL;
    krb5_db_free_principal(ctx, stored);

    /* A writer whose generation is not behind keeps its copy. */
    m_old->generation = 30;
    m_new->generation = 20;
    fresh = make_entry("HTTP/a@R", old_kv, 1, 1, m_old);
    stored = make_entry("HTTP/a@R", new_kv, 2, 1, m_new);
    ck_assert_int_eq(tk_entry_keep_newer_keys(ctx, fresh, stored), 0);
    ck_assert_int_eq(fresh->n_key_data, 2);
    krb5_db_free_principal(ctx, stored);
    krb5_db_free_principal(ctx, fresh);
    krb5_db_free_principal(ctx, stale);
    tk_meta_free(m_old);
    tk_meta_free(m_new);
}
END_TEST

START_TEST(stale_writer_is_refused)
{
    const krb5_kvno old_kv[] = { 1 }, new_kv[] = { 1, 2 };
    const int64_t ex[] = { NOW + 100, NOW + 200 };
    tk_meta *m_old = meta_with(old_kv, ex, 1), *m_new = meta_with(new_kv,
                                                                   ex, 2);
    krb5_db_entry *stale, *stored, *fresh;
    const char *msg;

    /* stored: generation advanced past the writer's copy. */
    m_old->generation = 10;
    m_new->generation = 20;
    stale = make_entry("HTTP/a@R", old_kv, 1, 1, m_old);
    stored = make_entry("HTTP/a@R", new_kv, 2, 1, m_new);
    ck_assert_int_eq(tk_entry_check_current(ctx, stale, stored),
                     KRB5_KDB_DB_CHANGED);
    msg = krb5_get_error_message(ctx, KRB5_KDB_DB_CHANGED);
    ck_assert_msg(strstr(msg, "HTTP/a@R") != NULL &&
                  strstr(msg, "generation 21 stored, 11 in this copy") &&
                  strstr(msg, "retry") != NULL, "message: %s", msg);
    krb5_free_error_message(ctx, msg);
    /* The writer's copy is left as it was. */
    ck_assert_int_eq(stale->n_key_data, 2);
    krb5_db_free_principal(ctx, stored);

    /* A writer whose generation is not behind may store its copy. */
    m_old->generation = 30;
    m_new->generation = 20;
    fresh = make_entry("HTTP/a@R", old_kv, 1, 1, m_old);
    stored = make_entry("HTTP/a@R", new_kv, 2, 1, m_new);
    ck_assert_int_eq(tk_entry_check_current(ctx, fresh, stored), 0);
    ck_assert_int_eq(fresh->n_key_data, 2);
    krb5_db_free_principal(ctx, stored);
    krb5_db_free_principal(ctx, fresh);
    krb5_db_free_principal(ctx, stale);
    tk_meta_free(m_old);
    tk_meta_free(m_new);
}
END_TEST

START_TEST(managed_attribute_among_others)
{
    krb5_db_entry *e = make_entry("HTTP/a@R", NULL, 0, 0, NULL);
    krb5_boolean managed = TRUE;
    krb5_tl_data tl;

    ck_assert_int_eq(tk_entry_is_managed(ctx, e, &managed), 0);
    ck_assert(!managed);
    /* A longer key sharing the prefix is not the attribute. */
    ck_assert_int_eq(krb5_dbe_set_string(ctx, e, "tempkey_spki", "ab"), 0);
    ck_assert_int_eq(krb5_dbe_set_string(ctx, e, "note", "x"), 0);
    ck_assert_int_eq(tk_entry_is_managed(ctx, e, &managed), 0);
    ck_assert(!managed);
    ck_assert_int_eq(krb5_dbe_set_string(ctx, e, "tempkey", ""), 0);
    ck_assert_int_eq(tk_entry_is_managed(ctx, e, &managed), 0);
    ck_assert(managed);
    /* An unterminated blob is read no further than its end. */
    memset(&tl, 0, sizeof(tl));
    tl.tl_data_type = KRB5_TL_STRING_ATTRS;
    tl.tl_data_length = 7;
    tl.tl_data_contents = (krb5_octet *)"tempkey";
    ck_assert_int_eq(krb5_dbe_update_tl_data(ctx, e, &tl), 0);
    ck_assert_int_eq(tk_entry_is_managed(ctx, e, &managed), 0);
    ck_assert(!managed);
    krb5_db_free_principal(ctx, e);
}
END_TEST

START_TEST(live_key_versions_are_capped)
{
    krb5_kvno kv[TK_MAX_KEY_VERSIONS];
    int64_t ex[TK_MAX_KEY_VERSIONS];
    krb5_keyblock key, mkey;
    tk_meta *m;
    krb5_db_entry *e;
    krb5_error_code ret;
    int i;

    for (i = 0; i < TK_MAX_KEY_VERSIONS; i++) {
        kv[i] = i + 1;
        ex[i] = NOW + 100;
    }
    m = meta_with(kv, ex, TK_MAX_KEY_VERSIONS);
    e = make_entry("HTTP/a@R", NULL, 0, 1, m);
    ck_assert_int_eq(krb5_c_make_random_key(ctx, 18, &key), 0);
    ck_assert_int_eq(krb5_c_make_random_key(ctx, 18, &mkey), 0);
    ret = tk_entry_add_keys(ctx, e, TK_MAX_KEY_VERSIONS + 1, &key, 1,
                            NOW + 100, NULL, 1, &mkey);
    ck_assert_int_eq(ret, KRB5_KDB_BAD_VERSION);
    assert_message(ret, "live key versions, the most allowed");
    krb5_free_keyblock_contents(ctx, &key);
    krb5_free_keyblock_contents(ctx, &mkey);
    krb5_db_free_principal(ctx, e);
    tk_meta_free(m);
}
END_TEST

START_TEST(next_kvno_exhausted)
{
    const krb5_kvno kv[] = { TK_KVNO_MAX };
    const int64_t ex[] = { NOW + 100 };
    tk_meta *m = meta_with(kv, ex, 1);
    krb5_db_entry *e = make_entry("HTTP/a@R", kv, 1, 1, m);
    krb5_kvno next;
    krb5_error_code ret;

    ret = tk_entry_next_kvno(ctx, e, &next);
    ck_assert_int_eq(ret, KRB5_KDB_BAD_VERSION);
    assert_message(ret, "exhausted");
    krb5_db_free_principal(ctx, e);
    tk_meta_free(m);
}
END_TEST

/* ---- Adoption. */

/* A KRB5_TL_KADM_DATA record as libkadm5 writes it (adb_xdr.c): policy
 * "hist", then n old keys (each one key_data of a few bytes' worth). */
static void
set_kadm_data(krb5_db_entry *e, int n)
{
    static const unsigned char head[] = {
        0x12, 0x34, 0x5c, 0x01,         /* version */
        0, 0, 0, 5, 'h', 'i', 's', 't', 0, 0, 0, 0,     /* policy */
        0, 0, 0x08, 0x00,               /* aux_attributes: KADM5_POLICY */
        0, 0, 0, 2,                     /* old_key_next */
        0, 0, 0, 1,                     /* admin_history_kvno */
    };
    unsigned char buf[256];
    krb5_tl_data tl;
    size_t len = sizeof(head);
    int i;

    memcpy(buf, head, len);
    buf[len++] = 0;
    buf[len++] = 0;
    buf[len++] = 0;
    buf[len++] = (unsigned char)n;
    for (i = 0; i < n; i++) {
        memset(buf + len, 0x5a, 16);    /* stands for an old key */
        len += 16;
    }
    memset(&tl, 0, sizeof(tl));
    tl.tl_data_type = KRB5_TL_KADM_DATA;
    tl.tl_data_length = (krb5_ui_2)len;
    tl.tl_data_contents = buf;
    ck_assert_int_eq(krb5_dbe_update_tl_data(ctx, e, &tl), 0);
}

START_TEST(switch_over_drops_long_term_keys)
{
    const krb5_kvno kv[] = { 3, 4 };
    krb5_db_entry *e = make_entry("HTTP/a@R", kv, 2, 0, NULL);
    krb5_tl_data *tl;
    krb5_boolean managed;
    krb5_kvno lt, next;
    int64_t until;
    tk_meta *m = NULL;
    char *value = NULL;

    ck_assert_int_eq(krb5_dbe_set_string(ctx, e, TK_ATTR_ADOPT, "x"), 0);
    ck_assert(tk_entry_is_adopting(e));
    set_kadm_data(e, 2);
    e->max_life = 3600;
    ck_assert_int_eq(tk_entry_switch_over(ctx, e, NOW, 36000, &lt, &until),
                     0);
    ck_assert_uint_eq(lt, 4);
    ck_assert_int_eq(until, NOW + 3600);
    ck_assert_int_eq(e->n_key_data, 0);
    ck_assert_int_eq(tk_entry_is_managed(ctx, e, &managed), 0);
    ck_assert(managed);
    ck_assert(!tk_entry_is_adopting(e));
    ck_assert_int_eq(krb5_dbe_get_string(ctx, e, TK_ATTR_ADOPT, &value), 0);
    ck_assert_ptr_null(value);
    /* Versions go on above the long-term ones. */
    ck_assert_int_eq(tk_entry_next_kvno(ctx, e, &next), 0);
    ck_assert_uint_eq(next, 5);
    ck_assert_int_eq(tk_entry_get_meta(ctx, e, &m), 0);
    ck_assert_uint_eq(m->highest_kvno, 4);
    ck_assert_uint_eq(m->nkeys, 0);
    tk_meta_free(m);
    /* The password history keeps its policy and loses its old keys. */
    tl = tk_entry_find_tl(e, KRB5_TL_KADM_DATA);
    ck_assert_ptr_nonnull(tl);
    ck_assert_int_eq(tl->tl_data_length, 32);
    ck_assert_mem_eq(tl->tl_data_contents + 8, "hist", 5);
    ck_assert_int_eq(tl->tl_data_contents[23], 0);      /* old_key_next */
    ck_assert_int_eq(tl->tl_data_contents[27], 1);      /* history kvno */
    ck_assert_int_eq(tl->tl_data_contents[31], 0);      /* old keys */
    ck_assert(e->mask & KADM5_KEY_HIST);
    /* What the switch noted, for every later Ack. */
    tk_entry_adoption(ctx, e, &lt, &until);
    ck_assert_uint_eq(lt, 4);
    ck_assert_int_eq(until, NOW + 3600);
    ck_assert_int_eq(tk_entry_check_put(ctx, e), 0);
    krb5_db_free_principal(ctx, e);
}
END_TEST

START_TEST(switch_over_takes_the_longest_ticket_life)
{
    const krb5_kvno kv[] = { 1 };
    krb5_db_entry *e;
    krb5_kvno lt;
    int64_t until;
    /* max_life of the principal, of the realm, and the end expected. */
    const struct { krb5_deltat princ, realm; int64_t life; } cases[] = {
        { 3600, 36000, 3600 }, { 36000, 3600, 3600 }, { 0, 7200, 7200 },
        { 7200, 0, 7200 }, { 0, 0, INT32_MAX },
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        e = make_entry("HTTP/a@R", kv, 1, 0, NULL);
        e->max_life = cases[i].princ;
        ck_assert_int_eq(tk_entry_switch_over(ctx, e, NOW, cases[i].realm,
                                              &lt, &until), 0);
        ck_assert_int_eq(until, NOW + cases[i].life);
        krb5_db_free_principal(ctx, e);
    }
    /* A keyless principal has no long-term keys to note. */
    e = make_entry("HTTP/a@R", NULL, 0, 0, NULL);
    ck_assert_int_eq(tk_entry_switch_over(ctx, e, NOW, 3600, &lt, &until),
                     0);
    ck_assert_uint_eq(lt, 0);
    tk_entry_adoption(ctx, e, &lt, &until);
    ck_assert_uint_eq(lt, 0);
    krb5_db_free_principal(ctx, e);
}
END_TEST

START_TEST(switch_over_refuses_unreadable_history)
{
    const krb5_kvno kv[] = { 1 };
    krb5_db_entry *e = make_entry("HTTP/a@R", kv, 1, 0, NULL);
    krb5_tl_data tl;
    krb5_kvno lt;
    int64_t until;
    krb5_error_code ret;

    memset(&tl, 0, sizeof(tl));
    tl.tl_data_type = KRB5_TL_KADM_DATA;
    tl.tl_data_length = 6;
    tl.tl_data_contents = (krb5_octet *)"\x12\x34\x5c\x01\0\0";
    ck_assert_int_eq(krb5_dbe_update_tl_data(ctx, e, &tl), 0);
    ret = tk_entry_switch_over(ctx, e, NOW, 3600, &lt, &until);
    ck_assert_int_eq(ret, KRB5_KDB_TRUNCATED_RECORD);
    assert_message(ret, "password history");
    assert_message(ret, "HTTP/a@R");
    krb5_db_free_principal(ctx, e);
}
END_TEST

START_TEST(adoption_note_must_be_ours)
{
    static const char *const bad[] = {
        "", "3", "x 5", "0 100", "70000 100", "3 0", "3 100 x", "3 -5",
    };
    krb5_db_entry *e;
    krb5_kvno lt;
    int64_t until;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        e = make_entry("HTTP/a@R", NULL, 0, 1, NULL);
        ck_assert_int_eq(krb5_dbe_set_string(ctx, e, TK_ATTR_ADOPTED,
                                             bad[i]), 0);
        tk_entry_adoption(ctx, e, &lt, &until);
        ck_assert_msg(lt == 0 && until == 0, "\"%s\" was taken", bad[i]);
        krb5_db_free_principal(ctx, e);
    }
}
END_TEST

START_TEST(no_temporary_key_joins_long_term_keys)
{
    const krb5_kvno kv[] = { 2 };
    krb5_db_entry *e = make_entry("HTTP/a@R", kv, 1, 0, NULL);
    krb5_keyblock key, mkey;
    krb5_error_code ret;

    ck_assert_int_eq(krb5_c_make_random_key(ctx, 18, &key), 0);
    ck_assert_int_eq(krb5_c_make_random_key(ctx, 18, &mkey), 0);
    ret = tk_entry_add_keys(ctx, e, 3, &key, 1, NOW + 100, NULL, 1, &mkey);
    ck_assert_int_eq(ret, KADM5_PROTECT_PRINCIPAL);
    assert_message(ret, "HTTP/a@R holds long-term keys (up to kvno 2)");
    assert_message(ret, "run tempkey-admin adopt HTTP/a@R first");
    ck_assert_int_eq(krb5_dbe_set_string(ctx, e, TK_ATTR_ADOPT, "x"), 0);
    ret = tk_entry_add_keys(ctx, e, 3, &key, 1, NOW + 100, NULL, 1, &mkey);
    ck_assert_int_eq(ret, KADM5_PROTECT_PRINCIPAL);
    assert_message(ret, "HTTP/a@R is being adopted");
    ck_assert_int_eq(e->n_key_data, 2);     /* untouched */
    krb5_free_keyblock_contents(ctx, &key);
    krb5_free_keyblock_contents(ctx, &mkey);
    krb5_db_free_principal(ctx, e);
}
END_TEST

START_TEST(unset_string_leaves_entry_as_it_was)
{
    const krb5_kvno kv[] = { 1 };
    krb5_db_entry *e = make_entry("HTTP/a@R", kv, 1, 0, NULL);
    krb5_tl_data *tl;
    krb5_int16 n;

    /* Another tl_data that kldap keeps in krbExtraData. */
    ck_assert_int_eq(krb5_dbe_update_mkvno(ctx, e, 1), 0);
    n = e->n_tl_data;
    ck_assert_int_eq(krb5_dbe_set_string(ctx, e, TK_ATTR_ADOPT, "x"), 0);
    ck_assert_int_eq(tk_entry_unset_string(ctx, e, TK_ATTR_ADOPT), 0);
    ck_assert_int_eq(e->n_tl_data, n);
    ck_assert_ptr_null(tk_entry_find_tl(e, KRB5_TL_STRING_ATTRS));
    /* Other attributes stay as they were. */
    ck_assert_int_eq(krb5_dbe_set_string(ctx, e, "team", "web"), 0);
    ck_assert_int_eq(krb5_dbe_set_string(ctx, e, TK_ATTR_ADOPT, "x"), 0);
    ck_assert_int_eq(tk_entry_unset_string(ctx, e, TK_ATTR_ADOPT), 0);
    tl = tk_entry_find_tl(e, KRB5_TL_STRING_ATTRS);
    ck_assert_ptr_nonnull(tl);
    ck_assert_int_eq(tl->tl_data_length, sizeof("team\0web"));
    krb5_db_free_principal(ctx, e);
    /* Alone in krbExtraData, an empty record stays: kldap would not write
     * krbExtraData at all without it, and keep the old attribute. */
    e = make_entry("HTTP/a@R", kv, 1, 0, NULL);
    ck_assert_int_eq(krb5_dbe_set_string(ctx, e, TK_ATTR_ADOPT, "x"), 0);
    ck_assert_int_eq(tk_entry_unset_string(ctx, e, TK_ATTR_ADOPT), 0);
    tl = tk_entry_find_tl(e, KRB5_TL_STRING_ATTRS);
    ck_assert_ptr_nonnull(tl);
    ck_assert_int_eq(tl->tl_data_length, 0);
    krb5_db_free_principal(ctx, e);
}
END_TEST

static Suite *
rules_suite(void)
{
    Suite *s = suite_create("rules");
    TCase *rec = tcase_create("records"), *ent = tcase_create("entries");

    tcase_add_checked_fixture(rec, setup, teardown);
    tcase_add_test(rec, cap_life);
    tcase_add_test(rec, add_refuses_rollback);
    tcase_add_test(rec, remove_keeps_highest_and_notes_end);
    tcase_add_test(rec, drop_expired);
    tcase_add_test(rec, newest_live_and_next_expiry);
    tcase_add_test(rec, parse_duration);
    tcase_add_test(rec, format_time);
    suite_add_tcase(s, rec);

    tcase_add_checked_fixture(ent, setup, teardown);
    tcase_add_test(ent, kdc_view_keeps_live_keys_and_caps);
    tcase_add_test(ent, kdc_view_client_lookup_not_capped);
    tcase_add_test(ent, kdc_view_leaves_out_a_pending_key);
    tcase_add_test(ent, shared_refresh_by);
    tcase_add_test(ent, share_delay_attribute);
    tcase_add_test(ent, kdc_view_refuses_without_live_key);
    tcase_add_test(ent, kdc_view_refuses_never_keyed);
    tcase_add_test(ent, kdc_view_hides_unrecorded_keys);
    tcase_add_test(ent, kdc_view_refuses_corrupt_record);
    tcase_add_test(ent, check_put_refuses_long_term_key);
    tcase_add_test(ent, check_put_refuses_unmanaged_with_temp_keys);
    tcase_add_test(ent, check_put_accepts);
    tcase_add_test(ent, purge_and_revoke_entry);
    tcase_add_test(ent, revoke_all_repairs_corrupt_record);
    tcase_add_test(ent, stale_writer_keeps_stored_keys);
    tcase_add_test(ent, stale_writer_is_refused);
    tcase_add_test(ent, managed_attribute_among_others);
    tcase_add_test(ent, live_key_versions_are_capped);
    tcase_add_test(ent, next_kvno_exhausted);
    tcase_add_test(ent, switch_over_drops_long_term_keys);
    tcase_add_test(ent, switch_over_takes_the_longest_ticket_life);
    tcase_add_test(ent, switch_over_refuses_unreadable_history);
    tcase_add_test(ent, adoption_note_must_be_ours);
    tcase_add_test(ent, no_temporary_key_joins_long_term_keys);
    tcase_add_test(ent, unset_string_leaves_entry_as_it_was);
    suite_add_tcase(s, ent);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(rules_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
