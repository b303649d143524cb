"""Managed services: tickets in temporary keys, capped lifetimes, expiry,
removal from the database, and the tempkey-admin commands."""

import json
import os
import time

from realm import (Realm, Tests, fail, entry_keys, entry_tl_data,
                   klist_times, KLIST, KVNO, KDESTROY, REALM)

SVC = 'HTTP/www.test'
SVC_FULL = SVC + '@' + REALM
TL_META = 0x7e54


def managed_realm(**kw):
    r = Realm(**kw)
    r.addprinc('user', 'user-pw')
    r.kadmin_local('addprinc -nokey ' + SVC)
    return r


def fresh_ticket(r, kvno):
    """A new service ticket for the user; check it carries kvno."""
    r.run([KDESTROY])
    r.kinit('user', 'user-pw')
    r.run([KVNO, SVC], expected_msg='%s: kvno = %d' % (SVC_FULL, kvno))


def test_ticket_in_temporary_key_ends_at_expiry():
    r = managed_realm()
    kt = r.path('http.keytab')
    kvno, expiry = r.set_key(SVC, '1h', kt)
    if kvno != 1:
        fail('first temporary key should be kvno 1, got %d' % kvno)
    fresh_ticket(r, 1)
    r.run([KVNO, '-k', kt, SVC], expected_msg='keytab entry valid')
    start, end, renew = klist_times(r)[SVC_FULL]
    if end > expiry or renew is None or renew > expiry:
        fail('ticket ends %d (renew %s) after key expiry %d' %
             (end, renew, expiry))
    tgt_end = klist_times(r)['krbtgt/%s@%s' % (REALM, REALM)][1]
    if tgt_end <= expiry:
        fail('the user TGT should not be capped (ends %d)' % tgt_end)
    # An AS ticket straight to the service is capped the same way.
    r.kinit('user', 'user-pw', flags=['-S', SVC])
    if klist_times(r)[SVC_FULL][1] > expiry:
        fail('AS ticket outlives its key')
    # A postdated ticket could start after the key has expired.
    r.addprinc('host/plain.test')
    r.kinit('user', 'user-pw', flags=['-s', '30m', '-S', 'host/plain.test'])
    r.kinit('user', 'user-pw', flags=['-s', '30m', '-S', SVC],
            expected_code=1, expected_msg='ineligible for postdating')


def test_service_as_client_gets_nothing_past_its_key():
    # kinit -k with a 60 s temporary key used to give a 10 h TGT renewable
    # for 7 days.
    r = managed_realm()
    kt = r.path('http.keytab')
    _, expiry = r.set_key(SVC, '60s', kt)
    ccache = r.path('svc.ccache')
    r.run(['/usr/bin/kinit', '-k', '-t', kt, '-c', ccache, '-l', '10h',
           '-r', '7d', SVC])
    start, end, renew = klist_times(r, ccache)['krbtgt/%s@%s' % (REALM,
                                                                  REALM)]
    if end > expiry or (renew is not None and renew > expiry):
        fail('the service\'s TGT ends %d (renew %s), after its key expires '
             'at %d' % (end, renew, expiry))
    # Renewal cannot reach past the key either.
    if renew is not None:
        r.run(['/usr/bin/kinit', '-R', '-c', ccache])
        if klist_times(r, ccache)['krbtgt/%s@%s' % (REALM, REALM)][1] > \
                expiry:
            fail('a renewed TGT outlives the key')


def test_rotation_keeps_old_tickets_valid():
    r = managed_realm()
    kt = r.path('http.keytab')
    r.set_key(SVC, '1h', kt)
    fresh_ticket(r, 1)
    old_cache = r.path('old.ccache')
    r.run(['cp', r.ccache, old_cache])
    for kvno in (2, 3, 4):
        _, expiry = r.set_key(SVC, '2h', kt)
        fresh_ticket(r, kvno)
        r.run([KVNO, '-k', kt, SVC], expected_msg='keytab entry valid')
        if klist_times(r)[SVC_FULL][1] > expiry:
            fail('ticket for kvno %d outlives its key' % kvno)
    # The kvno 1 ticket issued before the rotations still verifies.
    env = dict(r.env, KRB5CCNAME='FILE:' + old_cache)
    r.run([KVNO, '-k', kt, SVC], env=env,
          expected_msg='%s: kvno = 1, keytab entry valid' % SVC_FULL)
    r.tempkey_admin('show', SVC, expected_msg='    4  ')


def test_expired_key_refused_then_removed():
    r = managed_realm(purge_interval='2s')
    kt = r.path('http.keytab')
    _, expiry = r.set_key(SVC, '8s', kt)
    fresh_ticket(r, 1)
    if klist_times(r)[SVC_FULL][1] > expiry:
        fail('ticket outlives its 8-second key')
    r.wait_for('the key to expire', lambda: time.time() > expiry + 1)
    r.run([KDESTROY])
    r.kinit('user', 'user-pw')
    r.run([KVNO, SVC], expected_code=1,
          expected_msg='not found in Kerberos database')
    log = r.kdc_log_text()
    if ('tempkey: %s: no live temporary key (the last one, up to kvno 1, '
            'ended at' % SVC_FULL) not in log:
        fail('the KDC log does not say why the ticket was refused')
    if 'refusing it' not in log:
        fail('the KDC log does not say it refused')

    # The purge thread removes the key from the database itself.
    def key_gone():
        line = r.dump_entry(SVC_FULL)
        return line is not None and entry_keys(line) == []
    r.wait_for('the expired key to leave the database', key_gone,
               timeout=20, step=0.5)
    if 'purged 1 expired key version(s) of ' + SVC_FULL not in \
            r.kdc_log_text():
        fail('the KDC log does not record the purge')
    line = r.dump_entry(SVC_FULL)
    if TL_META not in entry_tl_data(line):
        fail('the key records (highest kvno) must survive the purge')
    # Other requests are still served.
    r.addprinc('host/other.test')
    r.run([KVNO, 'host/other.test'], expected_msg='kvno = 1')
    # A new key goes above every kvno ever stored.
    kvno, _ = r.set_key(SVC, '1h', kt)
    if kvno != 2:
        fail('key after a purge should be kvno 2, got %d' % kvno)
    fresh_ticket(r, 2)


def test_never_keyed_managed_service_refused():
    r = managed_realm()
    r.kadmin_local('setstr %s tempkey 1' % SVC)
    r.kinit('user', 'user-pw')
    r.run([KVNO, SVC], expected_code=1,
          expected_msg='not found in Kerberos database')
    if 'no live temporary key (it has never had one)' not in \
            r.kdc_log_text():
        fail('the KDC log does not say the service never had a key')


def test_admin_list_show_json():
    r = managed_realm(start_kdc=False)
    r.kadmin_local('addprinc -nokey host/b.test')
    r.set_key(SVC, '1h')
    r.set_key(SVC, '2h')
    r.set_key('host/b.test', '30m', None, '--enctypes',
              'aes128-cts-hmac-sha1-96')
    out = r.tempkey_admin('list')
    for needle in (SVC_FULL, 'host/b.test@' + REALM, 'admin'):
        if needle not in out:
            fail('list lacks ' + needle)
    if 'user@' in out or 'krbtgt' in out:
        fail('list shows unmanaged principals')
    data = json.loads(r.tempkey_admin('--json', 'list'))
    byname = {e['principal']: e for e in data}
    if [k['kvno'] for k in byname[SVC_FULL]['keys']] != [1, 2]:
        fail('json list has the wrong kvnos: %r' % byname[SVC_FULL])
    if byname[SVC_FULL]['keys'][0]['expired']:
        fail('a live key is reported expired')
    one = json.loads(r.tempkey_admin('--json', 'show', SVC))
    if one['highest_kvno'] != 2:
        fail('json show: wrong highest kvno: %r' % one)
    line = r.dump_entry('host/b.test@' + REALM)
    if [k[1] for k in entry_keys(line)] != [17]:
        fail('--enctypes was not honoured: %r' % entry_keys(line))
    r.tempkey_admin('show', 'user', expected_code=1,
                    expected_msg='not managed by tempkey')
    r.tempkey_admin('show', 'nobody', expected_code=1,
                    expected_msg='No such entry in the database')


def test_admin_revoke_and_purge():
    r = managed_realm(purge_interval='1h')
    kt = r.path('http.keytab')
    r.set_key(SVC, '1h', kt)
    r.set_key(SVC, '1h', kt)
    r.tempkey_admin('revoke', SVC, '--kvno', '2',
                    expected_msg='revoked 1 key version(s)')
    fresh_ticket(r, 1)
    r.tempkey_admin('revoke', SVC, '--kvno', '2', expected_code=1,
                    expected_msg='has no temporary key with kvno 2')
    r.tempkey_admin('revoke', SVC, expected_msg='revoked 1 key version(s)')
    r.run([KDESTROY])
    r.kinit('user', 'user-pw')
    r.run([KVNO, SVC], expected_code=1)
    if entry_keys(r.dump_entry(SVC_FULL)):
        fail('revoke left keys in the database')
    r.tempkey_admin('revoke', 'user', expected_code=1,
                    expected_msg='not managed by tempkey')

    # purge removes what has expired and nothing else.
    _, expiry = r.set_key(SVC, '2s')
    r.set_key(SVC, '1h')
    # time() in C may lag Python's clock by a tick: leave a second.
    r.wait_for('the short key to expire', lambda: time.time() > expiry + 1)
    r.tempkey_admin('purge', expected_msg='purged 1 expired key version(s)')
    kvnos = sorted({k[0] for k in entry_keys(r.dump_entry(SVC_FULL))})
    if kvnos != [4]:
        fail('purge should leave only kvno 4, left %r' % kvnos)
    out = r.tempkey_admin('purge')
    if 'purged' in out:
        fail('a second purge found something to remove')


def test_admin_set_errors():
    r = managed_realm(start_kdc=False,
                      realm_extra='        tempkey_max_life = 2h')
    kt = r.path('http.keytab')
    r.tempkey_admin('set', SVC, '--lifetime', '3h', '--keytab', kt,
                    expected_code=1,
                    expected_msg='longer than tempkey_max_life')
    r.tempkey_admin('set', SVC, '--lifetime', 'soon', expected_code=1,
                    expected_msg='--lifetime: "soon" is not a positive')
    r.tempkey_admin('set', SVC, '--enctypes', 'rot13', expected_code=1,
                    expected_msg='--enctypes: "rot13" is not a supported enctype')
    r.tempkey_admin('set', 'HTTP/missing.test', '--keytab', kt,
                    expected_code=1, expected_msg='no such principal')
    r.tempkey_admin('revoke', SVC, '--kvno', 'x', expected_code=1,
                    expected_msg='--kvno x is not a key version')
    r.tempkey_admin('frobnicate', expected_code=2, expected_msg='usage:')
    r.tempkey_admin('list', '--kvno', '3', expected_code=2,
                    expected_msg='--kvno goes with revoke')
    if os.path.exists(kt):
        fail('a refused set left a keytab behind')
    r.tempkey_admin('set', SVC, '--keytab', r.path('no', 'such', 'kt'),
                    expected_code=1, expected_msg='cannot lock keytab with '
                    '%s.lock: No such file or directory' %
                    r.path('no', 'such', 'kt'))
    os.mkdir(r.path('a-directory'))
    r.tempkey_admin('set', SVC, '--keytab', r.path('a-directory'),
                    expected_code=1, expected_msg='reading keytab %s' %
                    r.path('a-directory'))
    if entry_keys(r.dump_entry(SVC_FULL)):
        fail('a key was stored although its keytab could not be written')

    # A store refused after the keytab was written (a principal with a
    # long-term key cannot become managed) takes the pending key back out,
    # leaving the other entries of the keytab as they were.
    r.addprinc('host/plain.test')
    r.addprinc('host/other.test')
    r.kadmin_local('ktadd -norandkey -k %s host/other.test' % kt)
    listing = r.run([KLIST, '-k', '-K', kt])
    # It says what to do instead (issue 9): adopt it.
    refusal = ('host/plain.test@%s holds long-term keys (up to kvno 1) and '
               'is not managed by tempkey; run tempkey-admin adopt '
               'host/plain.test@%s first' % (REALM, REALM))
    r.tempkey_admin('set', 'host/plain.test', '--keytab', kt,
                    expected_code=1, expected_msg=refusal)
    if r.run([KLIST, '-k', '-K', kt]) != listing:
        fail('the refused key was left in the keytab')
    r.kadmin_local('getstrs host/plain.test',
                   expected_msg='(No string attributes.)')
    # The same with a keytab that did not exist: the refusal is still told
    # in words (taking the pending key out must not replace the message).
    fresh = r.path('fresh.keytab')
    out = r.tempkey_admin('set', 'host/plain.test', '--keytab', fresh,
                          expected_code=1, expected_msg=refusal)
    if 'Unknown code' in out:
        fail('tempkey-admin printed an error code, not its text: ' + out)
    # The default lifetime is tempkey_max_life.
    _, expiry = r.set_key(SVC, '2h', kt)
    if not 7190 < expiry - time.time() <= 7200:
        fail('expiry %d is not two hours away' % expiry)


Tests().run(test_ticket_in_temporary_key_ends_at_expiry,
            test_service_as_client_gets_nothing_past_its_key,
            test_rotation_keeps_old_tickets_valid,
            test_expired_key_refused_then_removed,
            test_never_keyed_managed_service_refused,
            test_admin_list_show_json,
            test_admin_revoke_and_purge,
            test_admin_set_errors)
