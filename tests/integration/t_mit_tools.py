"""MIT's own tools work unchanged through the tempkey overlay."""

import os

from realm import (Realm, Tests, fail, KADMIN, KDB5_UTIL, KVNO, REALM)


def test_kadmin_local_principals_policies_strings():
    r = Realm(start_kdc=False)
    r.addprinc('alice', 'pw-one')
    r.kadmin_local('getprinc alice',
                   expected_msg='Principal: alice@' + REALM)
    r.kadmin_local('modprinc -maxlife "2 hours" alice')
    r.kadmin_local('getprinc alice',
                   expected_msg='Maximum ticket life: 0 days 02:00:00')
    r.kadmin_local('cpw -pw pw-two alice')
    r.kadmin_local('getprinc alice', expected_msg='Key: vno 2,')

    r.kadmin_local('addpol -maxlife "1 day" -minlength 6 pol1')
    r.kadmin_local('getpol pol1', expected_msg='Minimum password length: 6')
    r.kadmin_local('modpol -minlength 8 pol1')
    r.kadmin_local('getpol pol1', expected_msg='Minimum password length: 8')
    r.kadmin_local('listpols', expected_msg='pol1')
    r.kadmin_local('modprinc -policy pol1 alice')
    r.kadmin_local('getprinc alice', expected_msg='Policy: pol1')
    r.kadmin_local('modprinc -clearpolicy alice')
    r.kadmin_local('delpol -force pol1')
    if 'pol1' in r.kadmin_local('listpols'):
        fail('policy pol1 survived delpol')

    r.kadmin_local('setstr alice color blue')
    r.kadmin_local('getstrs alice', expected_msg='color: blue')
    r.kadmin_local('delstr alice color')
    r.kadmin_local('getstrs alice', expected_msg='(No string attributes.)')

    r.kadmin_local('renprinc -force alice bob')
    r.kadmin_local('getprinc bob', expected_msg='Principal: bob@' + REALM)
    r.kadmin_local('getprinc alice', expected_msg='Principal does not exist')
    r.kadmin_local('delprinc -force bob')
    if 'bob@' in r.kadmin_local('listprincs'):
        fail('bob survived delprinc')

    r.run([KDB5_UTIL, 'stash', '-f', r.path('stash2'), '-P', 'master-pw'])
    if not os.path.getsize(r.path('stash2')):
        fail('kdb5_util stash wrote nothing')


def test_kadmind_remote_administration():
    r = Realm(start_kadmind=True)
    r.addprinc('admin/admin', 'admin-pw')

    def kadmin(query, **kw):
        return r.run([KADMIN, '-p', 'admin/admin', '-w', 'admin-pw', '-q',
                      query], **kw)

    kadmin('addprinc -pw carol-pw carol',
           expected_msg='Principal "carol@%s" created' % REALM)
    kadmin('cpw -pw carol-pw2 carol')
    kadmin('getprinc carol', expected_msg='Key: vno 2,')
    kadmin('setstr carol k v')
    kadmin('getstrs carol', expected_msg='k: v')
    kadmin('addpol -minlength 4 remotepol')
    kadmin('modprinc -policy remotepol carol')
    kadmin('getprinc carol', expected_msg='Policy: remotepol')
    r.kinit('carol', 'carol-pw2')
    kadmin('delprinc -force carol')
    r.kadmin_local('getprinc carol', expected_msg='Principal does not exist')


def kdc_serves(kdc_args):
    r = Realm(kdc_args=kdc_args)
    r.addprinc('user', 'user-pw')
    r.addprinc('host/svc.test')
    kt = r.path('svc.keytab')
    r.kadmin_local('ktadd -k %s host/svc.test' % kt)
    # Several rounds so that with -w 2 both workers are likely to answer.
    for _ in range(4):
        r.kinit('user', 'user-pw')
        r.run([KVNO, 'host/svc.test'],
              expected_msg='host/svc.test@%s: kvno = 2' % REALM)
        r.run([KVNO, '-k', kt, 'host/svc.test'],
              expected_msg='keytab entry valid')
    r.kinit('host/svc.test', flags=['-k', '-t', kt])
    r.kinit('user', 'wrong-pw', expected_code=1,
            expected_msg='Password incorrect')


def test_kdc_single_process():
    kdc_serves(())


def test_kdc_two_workers():
    kdc_serves(('-w', '2'))


def test_dump_load_dump_is_identical():
    r = Realm(start_kdc=False)
    r.addprinc('user', 'user-pw')
    r.kadmin_local('addpol -minlength 5 dumppol')
    r.kadmin_local('modprinc -policy dumppol user')
    r.kadmin_local('setstr user team red')
    r.kadmin_local('addprinc -nokey HTTP/www.test')
    r.set_key('HTTP/www.test', '1h', r.path('http.keytab'))
    r.set_key('HTTP/www.test', '2h', r.path('http.keytab'))
    first = r.path('first.dump')
    second = r.path('second.dump')
    r.run([KDB5_UTIL, 'dump', first])
    r.run([KDB5_UTIL, 'load', first])
    r.run([KDB5_UTIL, 'dump', second])
    with open(first) as f:
        a = f.read()
    with open(second) as f:
        b = f.read()
    if a != b:
        fail('dump after load differs from the dump loaded')
    if '\t32340\t' not in a:
        fail('the temporary-key records are missing from the dump')
    r.tempkey_admin('show', 'HTTP/www.test', expected_msg='    2  ')


def test_destroy():
    r = Realm(start_kdc=False)
    r.addprinc('user', 'user-pw')
    r.run([KDB5_UTIL, 'destroy', '-f'])
    if os.path.exists(r.path('principal')):
        fail('the backing database file survived kdb5_util destroy')
    r.kadmin_local('listprincs', expected_code=1,
                   expected_msg='while initializing kadmin.local interface')


Tests().run(test_kadmin_local_principals_policies_strings,
            test_kadmind_remote_administration,
            test_kdc_single_process,
            test_kdc_two_workers,
            test_dump_load_dump_is_identical,
            test_destroy)
