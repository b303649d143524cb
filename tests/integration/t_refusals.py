"""Refusals: long-term keys on managed principals, misconfiguration, and a
corrupt key record, each with a clear message and nothing changed."""

import os

from realm import (Realm, Tests, fail, entry_tl_data, dump_fields, KADMIN,
                   KDB5_UTIL, KRB5KDC, KADMIN_LOCAL, KVNO, REALM)

SVC = 'HTTP/www.test'
SVC_FULL = SVC + '@' + REALM
TL_META = 0x7e54
LONG_TERM = 'keys come from ktupdate, so it cannot take a password'


def test_long_term_keys_refused():
    r = Realm(start_kadmind=True)
    r.addprinc('admin/admin', 'admin-pw')
    r.kadmin_local('addprinc -nokey ' + SVC)
    r.set_key(SVC, '1h', r.path('http.keytab'))
    before = r.dump_entry(SVC_FULL)
    kt = r.path('stolen.keytab')
    for query in ('cpw -pw secret ' + SVC, 'cpw -randkey ' + SVC,
                  'cpw -randkey -keepold ' + SVC,
                  'ktadd -k %s %s' % (kt, SVC)):
        r.kadmin_local(query, expected_msg=LONG_TERM)
    if os.path.exists(kt):
        fail('ktadd wrote a keytab for a refused key')
    # Through kadmind the refusal reaches the remote administrator too.
    r.run([KADMIN, '-p', 'admin/admin', '-w', 'admin-pw', '-q',
           'cpw -randkey ' + SVC], expected_msg='Cannot change protected principal')
    if r.dump_entry(SVC_FULL) != before:
        fail('a refused key change altered the entry')
    # Reading the temporary keys out is still possible locally.
    r.kadmin_local('ktadd -norandkey -k %s %s' % (kt, SVC))
    r.run([KVNO, '-k', kt, SVC], expected_code=1)  # no TGT yet: nothing read
    r.addprinc('user', 'user-pw')
    r.kinit('user', 'user-pw')
    r.run([KVNO, '-k', kt, SVC], expected_msg='keytab entry valid')


def test_managed_flag_and_keys_stay_consistent():
    r = Realm(start_kdc=False)
    r.addprinc('host/old.test')
    r.kadmin_local('setstr host/old.test tempkey 1',
                   expected_msg='key version 1 has no temporary-key record')
    r.kadmin_local('getstrs host/old.test',
                   expected_msg='(No string attributes.)')
    r.kadmin_local('purgekeys -all host/old.test')
    r.kadmin_local('setstr host/old.test tempkey 1')
    r.set_key('host/old.test', '1h')
    r.kadmin_local('delstr host/old.test tempkey',
                   expected_msg='still holds 1 temporary key version(s)')
    r.tempkey_admin('revoke', 'host/old.test')
    r.kadmin_local('delstr host/old.test tempkey')
    # An ordinary principal again: long-term keys are allowed.
    r.kadmin_local('cpw -randkey host/old.test')
    r.kadmin_local('getprinc host/old.test', expected_msg='Number of keys: 2')


def load_update(r, line, name, **kw):
    """kdb5_util load -update of one dump line: a writer other than the
    module's own that hands back an entry as it wants it stored."""
    path = r.path(name)
    with open(path, 'w') as f:
        f.write('kdb5_util load_dump version 7\n' + line + ';\n')
    return r.run([KDB5_UTIL, 'load', '-update', path], **kw)


def test_other_writers_change_no_key_state():
    # A kadmin client with modify rights, or anything writing entries back,
    # may change a managed principal but not its keys, key versions or
    # records: a far-future expiry would make a temporary key permanent,
    # and a relabelled kvno would serve an old key under a new number.
    r = Realm(start_kadmind=True)
    r.addprinc('admin/admin', 'admin-pw')
    r.kadmin_local('addprinc -nokey ' + SVC)
    r.set_key(SVC, '1h', r.path('http.keytab'))
    before = r.dump_entry(SVC_FULL)
    r.run([KADMIN, '-p', 'admin/admin', '-w', 'admin-pw', '-q',
           'modprinc -kvno 9 ' + SVC],
          expected_msg='Cannot change protected principal')
    r.kadmin_local('modprinc -kvno 9 ' + SVC,
                   expected_msg='key versions and their records change '
                   'only by uploads and tempkey-admin')
    r.kadmin_local('purgekeys -all ' + SVC,
                   expected_msg='change only by uploads and tempkey-admin')
    f = dump_fields(before)
    # The record rewritten: its last byte (inside the uploader hash or the
    # expiry) changed, the DER still well formed in length.
    n_tl = int(f[3])
    pos = 15
    for _ in range(n_tl):
        if int(f[pos]) == TL_META:
            hexed = f[pos + 2]
            f[pos + 2] = hexed[:-2] + ('%02x' % (int(hexed[-2:], 16) ^ 1))
        pos += 3
    load_update(r, '\t'.join(f), 'forged.dump', expected_code=1,
                expected_msg='change only by uploads and tempkey-admin')
    # MIT's kdb5_util leaves a db2 database locked after any failed line of
    # a load -update (it took the permanent lock, which removes the lock
    # file, and does not release it on the error path); the administrator
    # recreates the file.
    lock = r.path('principal.kadm5.lock')
    if os.path.exists(lock):
        fail('expected kdb5_util to leave the database locked')
    open(lock, 'w').close()
    if r.dump_entry(SVC_FULL) != before:
        fail('another writer changed the key state')
    # Other changes go through.
    r.run([KADMIN, '-p', 'admin/admin', '-w', 'admin-pw', '-q',
           'modprinc -maxlife "3 hours" ' + SVC])
    if dump_fields(r.dump_entry(SVC_FULL))[8] != str(3 * 3600):
        fail('an ordinary change of a managed principal was refused')


def test_master_key_change_reencrypts_temporary_keys():
    # kdb5_util update_princ_encryption rewrites every key under the new
    # master key: the same keys, so it is allowed, and the KDC serves them.
    r = Realm(purge_interval='1h')
    r.addprinc('user', 'user-pw')
    r.kadmin_local('addprinc -nokey ' + SVC)
    kt = r.path('http.keytab')
    r.set_key(SVC, '1h', kt)
    r.run([KDB5_UTIL, 'add_mkey', '-s'], input='new-master\nnew-master\n')
    r.run([KDB5_UTIL, 'use_mkey', '2'])
    r.run([KDB5_UTIL, 'update_princ_encryption', '-f'],
          expected_msg='5 principals processed: 5 updated')
    r.stop_kdc()
    r.start_kdc()
    r.kinit('user', 'user-pw')
    r.run([KVNO, '-k', kt, SVC], expected_msg='kvno = 1, keytab entry valid')


def broken(r, expected, **settings):
    """With settings applied to the configuration, every tool refuses to
    start and names the setting; then the configuration is restored."""
    saved = (r.tk_section, r.realm_extra, r.dbmodules_extra)
    for k, v in settings.items():
        setattr(r, k, v)
    r.write_config()
    try:
        r.run([KRB5KDC, '-n'], expected_code=1, timeout=20,
              expected_msg='cannot initialize realm %s' % REALM)
        if expected not in r.kdc_log_text():
            fail('the KDC log does not say: ' + expected)
        r.run([KADMIN_LOCAL, '-q', 'listprincs'], expected_code=1,
              expected_msg=expected)
        r.run([KDB5_UTIL, 'dump', r.path('x.dump')], expected_code=1,
              expected_msg=expected)
        r.tempkey_admin('list', expected_code=1, expected_msg=expected)
    finally:
        r.tk_section, r.realm_extra, r.dbmodules_extra = saved
        r.write_config()


def test_misconfiguration_refused():
    r = Realm(start_kdc=False)
    base = r.tk_section
    broken(r, '[dbmodules] tk: backing_module is not set',
           tk_section='tk = {\n db_library = tempkey\n }')
    broken(r, 'backing_module = tk: the backing module must be an '
           'ordinary database',
           tk_section=base.replace('backing_module = main',
                                   'backing_module = tk'))
    broken(r, 'backing_module = loop: the backing module must be',
           tk_section=base.replace('backing_module = main',
                                   'backing_module = loop'),
           dbmodules_extra='    loop = {\n db_library = tempkey\n'
                           ' backing_module = tk\n }')
    broken(r, 'backing_module = mian: there is no [dbmodules] mian section',
           tk_section=base.replace('backing_module = main',
                                   'backing_module = mian'))
    broken(r, "tempkey: backing module 'odd'",
           tk_section=base.replace('backing_module = main',
                                   'backing_module = odd'),
           dbmodules_extra='    odd = {\n db_library = nosuchlib\n }')
    broken(r, '[dbmodules] tk purge_interval: "often" is not a positive '
           'duration', tk_section=base.replace('purge_interval = 2s',
                                               'purge_interval = often'))
    broken(r, '[realms] %s tempkey_max_life: "soon"' % REALM,
           realm_extra='        tempkey_max_life = soon')
    # Restored, everything works again.
    r.start_kdc()
    r.addprinc('user', 'user-pw')
    r.kinit('user', 'user-pw')


def corrupt_meta(line):
    """The dump line with its key record cut short by one byte."""
    f = dump_fields(line)
    n_tl = int(f[3])
    for i in range(n_tl):
        pos = 15 + 3 * i
        if int(f[pos]) == TL_META:
            f[pos + 1] = str(int(f[pos + 1]) - 1)
            f[pos + 2] = f[pos + 2][:-2]
            return '\t'.join(f) + ';'
    fail('no key record in ' + line)


def test_corrupt_record_refuses_only_that_principal():
    r = Realm()
    r.addprinc('user', 'user-pw')
    for svc in ('HTTP/a.test', 'HTTP/b.test'):
        r.kadmin_local('addprinc -nokey ' + svc)
        r.set_key(svc, '1h')
    good_dump = r.dump()
    bad_a = corrupt_meta(r.dump_entry('HTTP/a.test@' + REALM))
    lines = [bad_a if l.startswith('princ\t') and
             '\tHTTP/a.test@%s\t' % REALM in l else l
             for l in good_dump.splitlines()]
    bad = r.path('bad.dump')
    with open(bad, 'w') as f:
        f.write('\n'.join(lines) + '\n')

    # Through the overlay the corrupt record is refused and nothing changes.
    r.run([KDB5_UTIL, 'load', bad], expected_code=1,
          expected_msg='tempkey: HTTP/a.test@%s: tempkey metadata is '
          'corrupt' % REALM)
    if r.dump() != good_dump:
        fail('a refused load changed the database')

    # Written around the overlay (the backing module directly), it is served
    # by nobody while the KDC keeps serving the rest.
    r.write_config(database_module='main')
    r.run([KDB5_UTIL, 'load', bad])
    r.write_config()
    r.kinit('user', 'user-pw')
    r.run([KVNO, 'HTTP/a.test'], expected_code=1,
          expected_msg='not found in Kerberos database')
    if ('tempkey: HTTP/a.test@%s: tempkey metadata is corrupt: not a DER '
            'TempkeyMeta; refusing it' % REALM) not in r.kdc_log_text():
        fail('the KDC log does not name the corrupt principal')
    r.run([KVNO, 'HTTP/b.test'], expected_msg='kvno = 1')
    if r.kdc.poll() is not None:
        fail('the KDC died')
    out = r.tempkey_admin('list', expected_code=1,
                          expected_msg='HTTP/a.test@%s: tempkey metadata is '
                          'corrupt' % REALM)
    if 'HTTP/b.test@' + REALM not in out:
        fail('list stopped at the corrupt record')
    # An administrator repairs it by revoking every key: a fresh record
    # keeps the key versions above those that were stored.
    r.tempkey_admin('revoke', 'HTTP/a.test',
                    expected_msg='revoked 1 key version(s)')
    r.tempkey_admin('list')
    kvno, _ = r.set_key('HTTP/a.test', '1h')
    if kvno != 2:
        fail('the key after a repair should be kvno 2, got %d' % kvno)
    r.run([KVNO, 'HTTP/a.test'], expected_msg='kvno = 2')


Tests().run(test_long_term_keys_refused,
            test_managed_flag_and_keys_stay_consistent,
            test_other_writers_change_no_key_state,
            test_master_key_change_reencrypts_temporary_keys,
            test_misconfiguration_refused,
            test_corrupt_record_refuses_only_that_principal)
