"""The KDC's own writes (db2 lockout and last-success audit) never store the
KDC's rewritten view of a managed entry."""

import time

from realm import (Realm, Tests, fail, dump_fields, entry_keys,
                   entry_tl_data, KVNO, REALM)

SVC = 'HTTP/www.test'
SVC_FULL = SVC + '@' + REALM
USER_FULL = 'user@' + REALM
TL_META = 0x7e54


def stored(r, princ):
    """What must never change: keys, key records, lifetimes, attributes."""
    line = r.dump_entry(princ)
    f = dump_fields(line)
    return {'keys': entry_keys(line), 'meta': entry_tl_data(line).get(TL_META),
            'attributes': f[7], 'max_life': f[8], 'max_renewable': f[9]}


def counters(r, princ):
    f = dump_fields(r.dump_entry(princ))
    return {'last_success': int(f[12]), 'last_failed': int(f[13]),
            'fail_count': int(f[14])}


# db2 audits only principals that require preauthentication.
PREAUTH = '        default_principal_flags = +preauth'


def test_lockout_audit_keeps_keys_and_lifetimes():
    # No purge during the test: the expired key must stay in the database
    # although the KDC never sees it.
    r = Realm(purge_interval='1h', realm_extra=PREAUTH)
    r.kadmin_local('addpol -maxfailure 5 -failurecountinterval 0 '
                   '-lockoutduration 0 lockpol')
    r.kadmin_local('addprinc -pw user-pw -policy lockpol user')
    r.kadmin_local('addprinc -nokey -policy lockpol ' + SVC)
    kt = r.path('http.keytab')
    _, short_expiry = r.set_key(SVC, '3s', kt)
    r.set_key(SVC, '1h', kt)
    r.wait_for('kvno 1 to expire', lambda: time.time() > short_expiry + 1)

    before = {p: stored(r, p) for p in (USER_FULL, SVC_FULL)}
    if sorted({k[0] for k in before[SVC_FULL]['keys']}) != [1, 2]:
        fail('setup: both key versions should be stored')

    r.kinit('user', 'bad-pw', expected_code=1,
            expected_msg='Password incorrect')
    r.kinit('user', 'bad-pw', expected_code=1)
    if counters(r, USER_FULL)['fail_count'] != 2:
        fail('the lockout audit did not count the user failures')
    r.kinit('user', 'user-pw')
    # The managed service fails once (no password can match its random key)
    # and then succeeds with its keytab: both are audited and written back.
    r.kinit(SVC, 'guess', expected_code=1)
    svc_failed = counters(r, SVC_FULL)
    if svc_failed['fail_count'] != 1 or svc_failed['last_failed'] == 0:
        fail('the lockout audit did not record the service failure: %r' %
             svc_failed)
    r.kinit(SVC, flags=['-k', '-t', kt])
    r.run([KVNO, SVC], expected_msg='kvno = 2')
    svc_ok = counters(r, SVC_FULL)
    if svc_ok['last_success'] == 0 or svc_ok['fail_count'] != 0:
        fail('the audit did not write back the service success: %r' %
             svc_ok)
    if counters(r, USER_FULL)['last_success'] == 0:
        fail('the audit did not write back the user success')

    after = {p: stored(r, p) for p in (USER_FULL, SVC_FULL)}
    for princ in before:
        if before[princ] != after[princ]:
            fail('%s changed under the KDC audit:\nbefore %r\nafter  %r' %
                 (princ, before[princ], after[princ]))


def test_two_workers_audit_keeps_keys():
    r = Realm(purge_interval='1h', kdc_args=('-w', '2'),
              realm_extra=PREAUTH)
    r.kadmin_local('addpol -maxfailure 5 -failurecountinterval 0 '
                   '-lockoutduration 0 lockpol')
    r.kadmin_local('addprinc -nokey -policy lockpol ' + SVC)
    kt = r.path('http.keytab')
    _, short_expiry = r.set_key(SVC, '3s', kt)
    r.set_key(SVC, '1h', kt)
    r.wait_for('kvno 1 to expire', lambda: time.time() > short_expiry + 1)
    before = stored(r, SVC_FULL)
    for _ in range(6):
        r.kinit(SVC, flags=['-k', '-t', kt])
    if stored(r, SVC_FULL) != before:
        fail('a worker wrote back a rewritten entry')
    if counters(r, SVC_FULL)['last_success'] == 0:
        fail('no worker recorded the success')


Tests().run(test_lockout_audit_keeps_keys_and_lifetimes,
            test_two_workers_audit_keeps_keys)
