"""The known traps of storing keys from inside the KDC: its own lockout
write-back, a retransmitted upload reaching another worker, and kadmin
changes racing uploads."""

import re
import subprocess
import threading

from kdcproxy import KDCProxy, is_as_rep, proxied_config
from realm import (Realm, Tests, fail, dump_fields, entry_keys, KADMIN_LOCAL,
                   KDB5_UTIL, KVNO, REALM, TK_UPLOAD)

SVC = 'HTTP/www.test'
SVC_FULL = SVC + '@' + REALM


def stored_kvno(out):
    m = re.search(r' stored kvno (\d+) ', out)
    if not m:
        fail('unexpected ktupdate output: ' + out)
    return int(m.group(1))


def test_stored_key_survives_the_lockout_write_back():
    r = Realm(pki=True, realm_extra='        default_principal_flags = '
              '+preauth\n')
    r.kadmin_local('addpol -maxfailure 5 -failurecountinterval 0 '
                   '-lockoutduration 0 lockpol')
    cert = r.server_cert(SVC)
    r.ktupdate(cert)
    # db2 records successes only of principals requiring preauth.
    r.kadmin_local('modprinc -policy lockpol +requires_preauth ' + SVC)
    for kvno in (2, 3):
        stored_kvno(r.ktupdate(cert))
        line = r.dump_entry(SVC_FULL)
        if kvno not in {k[0] for k in entry_keys(line)}:
            fail('kvno %d was undone by the KDC\'s own write-back' % kvno)
        if int(dump_fields(line)[12]) == 0:
            fail('the lockout audit did not run (no last success)')
    r.addprinc('user', 'user-pw')
    r.kinit('user', 'user-pw')
    r.run([KVNO, '-k', r.keytab, SVC], expected_msg='kvno = 3, keytab')


def test_retransmitted_upload_to_two_workers_succeeds():
    r = Realm(pki=True, kdc_args=('-w', '2'))
    r.addprinc('user', 'user-pw')
    cert = r.server_cert(SVC)
    proxy = KDCProxy(r.kdc_port, mode='duplicate')
    try:
        env = proxied_config(r, proxy)
        for kvno in (1, 2, 3, 4):
            got = stored_kvno(r.ktupdate(cert, env=env))
            if got != kvno:
                fail('expected kvno %d, got %d' % (kvno, got))
    finally:
        proxy.stop()
    uploads = [rep for rep in proxy.replies if len(rep) > 1000]
    if len(uploads) < 8 or not all(is_as_rep(rep) for rep in uploads):
        fail('an identical upload sent twice was not accepted both times '
             '(%d replies)' % len(uploads))
    r.kinit('user', 'user-pw')
    r.run([KVNO, '-k', r.keytab, SVC], expected_msg='kvno = 4, keytab')


def test_kadmin_changes_during_an_upload_storm_are_kept():
    r = Realm(pki=True, purge_interval='1h')
    names = ['HTTP/s%d.test' % i for i in range(3)]
    certs = {n: r.server_cert(n) for n in names}
    keytabs = {n: r.path('kt%d' % i) for i, n in enumerate(names)}
    for n in names:
        r.ktupdate(certs[n], keytab=keytabs[n])
    last_kvno = {}
    errors = []

    def storm():
        try:
            for _ in range(6):
                for n in names:
                    last_kvno[n] = stored_kvno(
                        r.ktupdate(certs[n], keytab=keytabs[n]))
        except Exception as e:      # reported by the main thread
            errors.append(e)
    t = threading.Thread(target=storm)
    t.start()
    changes = 0
    while t.is_alive() and changes < 60:
        for n in names:
            changes += 1
            subprocess.run([KADMIN_LOCAL, '-q', 'modprinc -maxlife "%d '
                            'minutes" %s' % (100 + changes, n)],
                           env=r.env, capture_output=True, check=True)
            subprocess.run([KADMIN_LOCAL, '-q', 'setstr %s note %d' %
                            (n, changes)], env=r.env, capture_output=True,
                           check=True)
    t.join(timeout=300)
    if errors:
        raise errors[0]
    final = changes
    for i, n in enumerate(names):
        line = r.dump_entry(n + '@' + REALM)
        kvnos = {k[0] for k in entry_keys(line)}
        if last_kvno[n] not in kvnos:
            fail('%s lost its uploaded kvno %d to a kadmin change' %
                 (n, last_kvno[n]))
        # The last kadmin change of each principal is there too.
        want = final - (len(names) - 1 - i)
        r.kadmin_local('getstrs ' + n, expected_msg='note: %d' % want)
        if int(dump_fields(line)[8]) != (100 + want) * 60:
            fail('%s lost its last kadmin max_life change' % n)


def test_a_stale_writer_keeps_its_changes_but_not_its_keys():
    # kdb5_util load -update of an old dump is a writer holding a copy of
    # the key records from before the last upload, like kadmind between its
    # get and its put: its other changes apply, the newer keys stay.
    r = Realm(pki=True, purge_interval='1h')
    cert = r.server_cert(SVC)
    r.ktupdate(cert)
    r.ktupdate(cert)
    old = r.dump_entry(SVC_FULL)
    r.ktupdate(cert, expected_msg='stored kvno 3 ')
    f = dump_fields(old)
    f[8] = '4242'                   # max_life, the writer's own change
    stale = r.path('stale.dump')
    with open(stale, 'w') as out:
        out.write('kdb5_util load_dump version 7\n' + '\t'.join(f) +
                  ';\n')
    r.run([KDB5_UTIL, 'load', '-update', stale])
    line = r.dump_entry(SVC_FULL)
    if 3 not in {k[0] for k in entry_keys(line)}:
        fail('a stale writer undid the upload of kvno 3')
    if dump_fields(line)[8] != '4242':
        fail('the stale writer\'s own change was lost')
    r.addprinc('user', 'user-pw')
    r.kinit('user', 'user-pw')
    r.run([KVNO, '-k', r.keytab, SVC], expected_msg='kvno = 3, keytab')


def test_master_key_change_under_the_store_lock():
    # The KDC's store decrypts a stored key under the database lock.  After
    # a master key change made by kdb5_util while the KDC runs, that key is
    # under a master key the KDC has not loaded; libkdb5 would reload the
    # list from the database through the KDC's own handle, and wait for
    # ever on the lock its writer holds.  The store reloads it outside the
    # lock instead, and the KDC goes on serving.
    r = Realm(pki=True, purge_interval='1h')
    r.addprinc('user', 'user-pw')
    cert = r.server_cert(SVC)
    r.ktupdate(cert, expected_msg='stored kvno 1 ')
    r.run([KDB5_UTIL, 'add_mkey', '-s'], input='second\nsecond\n')
    r.run([KDB5_UTIL, 'use_mkey', '2'])
    r.run([KDB5_UTIL, 'update_princ_encryption', '-f'],
          expected_msg='updated')
    # Back to the first master key as the active one, which the KDC has.
    r.run([KDB5_UTIL, 'use_mkey', '1'])
    # The same kvno again (other keys): the store compares the stored keys.
    r.run([TK_UPLOAD, '--cert', cert.chain_pem, '--key', cert.key_pem,
           '--anchors', r.ca.cert_pem, '--principal', SVC_FULL,
           '--kvno', '1'], expected_code=4, timeout=20,
          expected_msg='refused kvno-not-above-stored')
    r.ktupdate(cert, expected_msg='stored kvno 2 ', timeout=20)
    r.kinit('user', 'user-pw')
    r.run([KVNO, '-k', r.keytab, SVC], expected_msg='kvno = 2, keytab')


Tests().run(test_stored_key_survives_the_lockout_write_back,
            test_retransmitted_upload_to_two_workers_succeeds,
            test_kadmin_changes_during_an_upload_storm_are_kept,
            test_a_stale_writer_keeps_its_changes_but_not_its_keys,
            test_master_key_change_under_the_store_lock)
