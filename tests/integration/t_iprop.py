"""Temporary keys reach a replica through MIT's incremental propagation:
uploads, rotations, purges and admin changes made on the primary are
replayed by kpropd, the replica's KDC serves them, a replica refuses uploads
and names the primary, and after every kind of write (racing ones included,
and a full resync) the replica's database equals the primary's."""

import re
import signal
import subprocess
import threading
import time

from iprop import IpropPair, ulog_last
from realm import (Realm, Failure, Tests, fail, entry_keys, parse_iso,
                   KADMIN, KADMIN_LOCAL, KDESTROY, KPROPLOG, KVNO, REALM,
                   TK_UPLOAD)

SVC = 'HTTP/www.test'
SVC_FULL = SVC + '@' + REALM
ADMIN_PW = 'admin-pw'
_pair = None


def pair():
    """The realm pair all but the misconfiguration tests share: the
    primary's KDC runs two workers (-w 2) and purges every 2 s; the replica
    keeps the module's default purge interval and polls every second."""
    global _pair
    if _pair is None:
        _pair = IpropPair(primary_purge='2s', kdc_args=('-w', '2'))
        p = _pair.primary
        p.addprinc('admin/admin', ADMIN_PW)
        # Preauth makes the KDC record last_success: lockout data that
        # each KDC keeps for itself (iprop.py masks it in comparisons).
        p.kadmin_local('addprinc +requires_preauth -pw user-pw user')
        _pair.wait_synced()
    elif _pair.kpropd is None:      # a failed test left it stopped
        _pair.start_kpropd()
    return _pair


def stored(out):
    """(kvno, expiry) from ktupdate's or tk-upload's result line."""
    m = re.search(r'stored kvno (\d+) expires (\S+)', out)
    if not m:
        fail('no stored key in the output:\n' + out)
    return int(m.group(1)), parse_iso(m.group(2))


def ulog_principals(realm, after):
    """The principals of realm's update log entries with serial > after."""
    out = realm.run([KPROPLOG], expected_code=None)
    names, serial = [], None
    for line in out.splitlines():
        m = re.match(r'\s+Update serial # : (\d+)$', line)
        if m:
            serial = int(m.group(1))
        m = re.match(r'\s+Update principal : (.*)$', line)
        if m and serial is not None and serial > after:
            names.append(m.group(1))
    return names


def serial(realm):
    last = ulog_last(realm)
    return last[0] if last else 0


def first_serial(realm):
    out = realm.run([KPROPLOG, '-h'])
    m = re.search(r'First serial # : (\d+)', out)
    return int(m.group(1)) if m else 0


def tk_upload(realm, cert, princ, *args, **kw):
    """One upload by tk-upload (a random key, written nowhere) to the KDCs
    of realm's krb5.conf."""
    return realm.run([TK_UPLOAD, '--cert', cert.chain_pem, '--key',
                      cert.key_pem, '--anchors', realm.ca.cert_pem,
                      '--principal', princ] + list(args), **kw)


def upload_on_primary(cert, keytab, *args, princ=SVC_FULL):
    """ktupdate to the primary; check that the KDC logged the write.
    Return (kvno, expiry)."""
    p = pair().primary
    before = serial(p)
    result = stored(p.ktupdate(cert, *args, keytab=keytab))
    if princ not in ulog_principals(p, before):
        fail('the upload of %s kvno %d is not in the primary\'s update log '
             '(kproplog):\n%s' % (princ, result[0],
                                  p.run([KPROPLOG, '-e', '5'])))
    return result


def replica_serves(svc, keytab, kvno):
    """A client of the replica alone (its krb5.conf lists only the
    replica's KDC) gets a ticket to svc in kvno, which keytab decrypts; the
    replica's KDC issued it."""
    r = pair().replica
    full = svc + '@' + REALM
    log_before = len(r.kdc_log_text())
    r.run([KDESTROY])
    r.kinit('user', 'user-pw')
    r.run([KVNO, '-k', keytab, svc],
          expected_msg='%s: kvno = %d, keytab entry valid' % (full, kvno))
    if 'user@%s for %s' % (REALM, full) not in r.kdc_log_text()[log_before:]:
        fail("the replica's KDC log does not show the ticket to " + full)


def keys_of(realm, princ):
    line = realm.dump_entry(princ)
    return sorted({k[0] for k in entry_keys(line)}) if line else None


# ---- the tests


def test_admin_change_reaches_replica():
    # The harness itself: stock iprop of a kadmin.local change.
    pr = pair()
    p, r = pr.primary, pr.replica
    before = serial(p)
    p.kadmin_local('modprinc -maxlife "5 hours" user')
    if ulog_principals(p, before) != ['user@' + REALM]:
        fail("kadmin.local's change is not in the primary's update log")
    pr.wait_synced(timeout=10)
    r.kadmin_local('getprinc user',
                   expected_msg='Maximum ticket life: 0 days 05:00:00')
    pr.assert_dumps_equal('kadmin.local modprinc')


def test_upload_on_primary_is_served_by_replica():
    pr = pair()
    p, r = pr.primary, pr.replica
    cert = p.server_cert(SVC)
    kt = p.path('www.keytab')
    kvno, _ = upload_on_primary(cert, kt, '--lifetime', '1h')
    pr.wait_synced()
    replica_serves(SVC, kt, kvno)
    if 'user@%s for %s' % (REALM, SVC_FULL) in p.kdc_log_text():
        fail("the primary's KDC served the replica's client")
    # A rotation follows: the replica serves the new kvno.
    kvno2, _ = upload_on_primary(cert, kt, '--lifetime', '1h')
    if kvno2 != kvno + 1:
        fail('the rotation stored kvno %d after %d' % (kvno2, kvno))
    pr.wait_synced()
    replica_serves(SVC, kt, kvno2)
    if keys_of(r, SVC_FULL) != [kvno, kvno2]:
        fail('the replica holds kvnos %r, expected %r' %
             (keys_of(r, SVC_FULL), [kvno, kvno2]))
    pr.assert_dumps_equal('an upload and a rotation')


def test_replica_refuses_uploads_and_names_primary():
    pr = pair()
    p, r = pr.primary, pr.replica
    cert = p.server_cert(SVC, name='www-to-replica')
    before = r.dump()
    p_last = ulog_last(p)
    log_before = len(r.kdc_log_text())
    # tk-upload sends to the KDCs of its krb5.conf, the replica's: only
    # the replica, and it never follows a refusal.
    out = tk_upload(r, cert, SVC_FULL, expected_code=4,
                    expected_msg='refused not-primary:')
    named = 'primary KDC: 127.0.0.1:%d' % p.kdc_port
    if named not in out:
        fail('the refusal does not name the primary (%s):\n%s' % (named,
                                                                  out))
    refusals = [l for l in r.kdc_log_text()[log_before:].splitlines()
                if 'refused upload' in l]
    if len(refusals) != 1 or 'not-primary' not in refusals[0] or \
            SVC_FULL not in refusals[0]:
        fail("the replica's KDC log should hold one not-primary refusal "
             "for %s:\n%s" % (SVC_FULL, '\n'.join(refusals)))
    if r.dump() != before:
        fail("a refused upload changed the replica's database")
    if ulog_last(p) != p_last:
        fail("an upload refused by the replica changed the primary")
    # ktupdate pointed at the replica follows the refusal to the primary it
    # names; the key comes back to the replica through iprop.
    kt = r.path('followed.keytab')
    out = r.ktupdate(cert, '--verbose', keytab=kt,
                     expected_msg=' kdc 127.0.0.1:%d' % p.kdc_port)
    if 'not the primary' not in out:
        fail("ktupdate does not report the replica's refusal:\n" + out)
    kvno = stored(out)[0]
    pr.wait_synced()
    replica_serves(SVC, kt, kvno)
    pr.assert_dumps_equal('an upload sent to the replica')


def test_dumps_equal_after_every_kind_of_write():
    pr = pair()
    p, r = pr.primary, pr.replica
    svc = 'HTTP/kinds.test'
    full = svc + '@' + REALM
    cert = p.server_cert(svc)
    kt = p.path('kinds.keytab')
    admin = [KADMIN, '-p', 'admin/admin', '-w', ADMIN_PW, '-q']

    def step(what, action):
        action()
        pr.wait_synced()
        pr.assert_dumps_equal(what)

    step('kadmin.local addprinc',
         lambda: p.kadmin_local('addprinc -pw other-pw other'))
    step('an enrollment (the KDC creates the entry)',
         lambda: upload_on_primary(cert, kt, '--lifetime', '1h',
                                   princ=full))
    step('a rotation',
         lambda: upload_on_primary(cert, kt, '--lifetime', '1h',
                                   princ=full))
    step('kadmin.local modprinc of a managed principal',
         lambda: p.kadmin_local('modprinc -maxlife "2 hours" ' + svc))
    step('kadmind setstr of a managed principal',
         lambda: p.run(admin + ['setstr %s note kinds' % svc]))
    step('kadmind modprinc of a managed principal',
         lambda: p.run(admin + ['modprinc -maxrenewlife "3 days" ' + svc]))

    def logins():
        p.run([KDESTROY])
        p.kinit('user', 'user-pw')
        r.run([KDESTROY])
        r.kinit('user', 'user-pw')
    step('logins on both KDCs (lockout data, kept per KDC)', logins)
    step('kadmin.local addprinc -nokey',
         lambda: p.kadmin_local('addprinc -nokey host/admin-set.test'))
    step('tempkey-admin set',
         lambda: p.set_key('host/admin-set.test', '1h',
                           p.path('admin-set.keytab')))
    step('tempkey-admin revoke',
         lambda: p.tempkey_admin('revoke', full, '--kvno', '1'))
    if keys_of(r, full) != [2]:
        fail('after the revocation the replica holds kvnos %r of %s' %
             (keys_of(r, full), full))
    step('kadmin.local delprinc',
         lambda: p.kadmin_local('delprinc -force other'))


def test_kadmin_racing_uploads_leaves_dumps_equal():
    pr = pair()
    p, r = pr.primary, pr.replica
    svc = 'HTTP/race.test'
    full = svc + '@' + REALM
    cert = p.server_cert(svc)
    upload_on_primary(cert, p.path('race.keytab'), '--lifetime', '1h',
                      princ=full)
    done = threading.Event()
    tally = {'ok': 0, 'retry': 0}
    accepted = set()
    others = []
    lock = threading.Lock()

    # The writers take turns among themselves, each racing the uploads:
    # two kadmin writers racing each other can leave the replicas behind
    # in stock MIT (libkdb5 stores, then logs, with nothing held between),
    # which is not what this test is about.
    kadmin_turn = threading.Lock()

    def modprinc_loop(n):
        # Writer 0 goes through kadmind (remote kadmin), the others are
        # kadmin.local; each sets its own maxlife values, 25 rounds at most.
        for i in range(25):
            if done.is_set():
                return
            minutes = 100 + 3 * i + n
            query = 'modprinc -maxlife "%d minutes" %s' % (minutes, svc)
            if n == 0:
                cmd = [KADMIN, '-p', 'admin/admin', '-w', ADMIN_PW, '-q',
                       query]
            else:
                cmd = [KADMIN_LOCAL, '-q', query]
            with kadmin_turn:
                proc = subprocess.run(cmd, env=p.env, capture_output=True,
                                      text=True, timeout=60)
            out = proc.stdout + proc.stderr
            with lock:
                if 'modify_principal' in out or proc.returncode != 0:
                    # kadmin.local prints the module's message; a remote
                    # kadmin sees only the code's text (KRB5_KDB_DB_CHANGED).
                    if 'retry' in out.lower() or \
                            'Database was modified during read' in out:
                        tally['retry'] += 1
                    else:
                        others.append(out)
                else:
                    tally['ok'] += 1
                    accepted.add(minutes)

    start_serial = serial(p)
    log_start = len(p.kdc_log_text())
    writers = [threading.Thread(target=modprinc_loop, args=(n,))
               for n in range(3)]
    for t in writers:
        t.start()
    # Uploads (tk-upload: the upload alone, no keytab or self-test) for as
    # long as the writers run, 6 at most: the entry stays under the update
    # log's 2 KB block (see test_entry_outgrowing_the_log_block).
    newest = None
    uploads = 0
    try:
        for _ in range(6):
            if not any(t.is_alive() for t in writers):
                break
            newest = stored(tk_upload(p, cert, full, '--lifetime', '1h'))[0]
            uploads += 1
    finally:
        done.set()
        for t in writers:
            t.join(timeout=120)
    print('racing modprinc: %d succeeded, %d refused with a retry error; '
          'newest upload kvno %s' % (tally['ok'], tally['retry'], newest))
    if others:
        fail('a racing modprinc failed otherwise than with a retry '
             'error:\n' + others[0])
    if tally['ok'] == 0 or newest is None:
        fail('nothing raced: %d modprinc succeeded, newest upload %r' %
             (tally['ok'], newest))
    # Each accepted write is one update-log entry, whichever of the KDC's
    # two workers stored the upload; refused writes none.
    first = first_serial(p)
    if first > start_serial + 1:
        fail('the update log was reset during the race (first serial %d, '
             'was %d)' % (first, start_serial))
    logged = ulog_principals(p, start_serial).count(full)
    if logged != uploads + tally['ok']:
        fail('%d uploads and %d accepted modprinc, but %d update-log entries '
             'for %s' % (uploads, tally['ok'], logged, full))
    workers = set(re.findall(r'krb5kdc\[(\d+)\]\([^)]*\): (?:tempkey: )?'
                             r'stored kvno \d+ of ' + re.escape(full),
                             p.kdc_log_text()[log_start:]))
    print('uploads stored by %d KDC worker(s)' % len(workers))
    pr.wait_synced()
    pr.assert_dumps_equal('modprinc racing uploads')
    # Nothing was lost: the newest upload, and an accepted change.
    if keys_of(r, full)[-1] != newest or keys_of(p, full)[-1] != newest:
        fail('the newest kvno %d is not stored on both KDCs: primary %r, '
             'replica %r' % (newest, keys_of(p, full), keys_of(r, full)))
    got = re.search(r'Maximum ticket life: 0 days (\d+):(\d+):00',
                    r.kadmin_local('getprinc ' + svc))
    if not got or int(got.group(1)) * 60 + int(got.group(2)) not in accepted:
        fail('the maxlife stored is none of the accepted changes')


def test_purge_on_primary_reaches_replica():
    pr = pair()
    p, r = pr.primary, pr.replica
    svc = 'HTTP/purge.test'
    full = svc + '@' + REALM
    cert = p.server_cert(svc)
    kt = p.path('purge.keytab')
    kvno, expiry = upload_on_primary(cert, kt, '--lifetime', '6s',
                                     princ=full)
    pr.wait_synced()
    if keys_of(r, full) != [kvno]:
        fail('the replica did not get the short-lived key')
    # With kpropd stopped, the primary purges the key and logs it; the
    # replica keeps it (a replica never purges), and refuses to serve it
    # once its own clock says it has expired.
    pr.stop_kpropd()
    after_upload = serial(p)
    p.wait_for('the primary to purge kvno %d' % kvno,
               lambda: keys_of(p, full) in ([], None), timeout=40, step=0.5)
    if full not in ulog_principals(p, after_upload):
        fail("the purge is not in the primary's update log")
    r.wait_for('the key to expire', lambda: time.time() > expiry + 1,
               timeout=30)
    # SIGHUP is when a primary's KDC purges; the requests that follow are
    # served after the KDC has handled it.
    r.kdc.send_signal(signal.SIGHUP)
    r.run([KDESTROY])
    r.kinit('user', 'user-pw')
    r.run([KVNO, svc], expected_code=1)
    if keys_of(r, full) != [kvno]:
        fail('the replica changed the expired key by itself: %r' %
             keys_of(r, full))
    before = r.dump()
    r.tempkey_admin('purge', expected_code=1, expected_msg='replica')
    if r.dump() != before:
        fail("tempkey-admin purge changed a replica's database")
    # kpropd brings the purge.
    pr.start_kpropd()
    pr.wait_synced()
    if keys_of(r, full) not in ([], None):
        fail('the purge did not reach the replica: %r' % keys_of(r, full))
    pr.assert_dumps_equal('a purge')


def test_full_resync_carries_keys():
    pr = pair()
    p, r = pr.primary, pr.replica
    cert = p.server_cert(SVC, name='www-resync')
    kt = p.path('www.keytab')
    pr.stop_kpropd()
    # An upload the replica can only get through the full dump.
    kvno, _ = upload_on_primary(cert, kt, '--lifetime', '1h')
    r.run([KPROPLOG, '-R'])
    if ulog_last(r) is not None and ulog_last(r)[0] > 1:
        fail("kproplog -R did not reset the replica's update log")
    start = len(pr.kpropd_text())
    pr.start_kpropd()
    pr.wait_synced(timeout=60)
    said = pr.kpropd_text(start)
    for line in ('Full resync needed',
                 'load process for full propagation completed'):
        if line not in said:
            fail('kpropd did not report %r:\n%s' % (line, said))
    replica_serves(SVC, kt, kvno)
    pr.assert_dumps_equal('a full resync')


def test_entry_outgrowing_the_log_block():
    # An update-log entry larger than the log's block (2 KB at first)
    # makes libkdb5 re-initialise the whole log with a larger block: every
    # earlier entry is dropped and the replica needs a full resync.  A
    # managed principal's entry grows with each live key version; at 14
    # versions it is past 2 KB.
    pr = pair()
    p, r = pr.primary, pr.replica
    svc = 'HTTP/big.test'
    full = svc + '@' + REALM
    cert = p.server_cert(svc)
    kt = p.path('big.keytab')
    upload_on_primary(cert, kt, '--lifetime', '1h', princ=full)
    pr.wait_synced()
    start_serial = serial(p)
    start = len(pr.kpropd_text())
    for _ in range(12):
        tk_upload(p, cert, full, '--lifetime', '1h')
    kvno, _ = upload_on_primary(cert, kt, '--lifetime', '1h', princ=full)
    if kvno != 14:
        fail('expected kvno 14, stored %d' % kvno)
    reset = first_serial(p) > start_serial + 1
    print('update log %s' % ('re-initialised with a larger block' if reset
                             else 'kept its entries'))
    pr.wait_synced(timeout=60)
    if reset and 'Full resync needed' not in pr.kpropd_text(start):
        fail('the log was re-initialised but kpropd did no full resync')
    replica_serves(svc, kt, kvno)
    pr.assert_dumps_equal('an entry outgrowing the log block')


def test_promoted_replica_keeps_kvnos_increasing():
    # The replica becomes the primary (role = primary, its KDC restarted):
    # the next upload goes on from the highest kvno ever stored, which the
    # replicated key records carry, even after that key was revoked.
    pr = pair()
    p, r = pr.primary, pr.replica
    svc = 'HTTP/promoted.test'
    cert = p.server_cert(svc)
    kt = p.path('promoted.keytab')
    upload_on_primary(cert, kt, '--lifetime', '1h', princ=svc + '@' + REALM)
    kvno, _ = upload_on_primary(cert, kt, '--lifetime', '1h',
                                princ=svc + '@' + REALM)
    p.tempkey_admin('revoke', svc, '--kvno', str(kvno))
    pr.wait_synced()
    pr.stop_kpropd()
    r.stop_kdc()
    if 'role = replica' not in r.tk_section:
        fail('unexpected replica configuration:\n' + r.tk_section)
    r.tk_section = r.tk_section.replace('role = replica', 'role = primary')
    r.write_config()
    r.start_kdc()
    out = r.ktupdate(cert, keytab=kt)
    if 'stored kvno %d ' % (kvno + 1) not in out:
        fail('the promoted replica did not go on from kvno %d:\n%s' %
             (kvno, out))
    if 'stored kvno %d of' % (kvno + 1) not in r.kdc_log_text():
        fail('the promoted replica\'s own KDC did not store the key')


def with_role(r, role):
    """r's tempkey section with role = role added."""
    assert r.tk_section.endswith('    }')
    r.tk_section = r.tk_section[:-5] + '        role = %s\n    }' % role
    r.write_config()


def test_misspelt_role_stops_the_kdc():
    r = Realm(start_kdc=False)
    with_role(r, 'primray')
    try:
        r.start_kdc()
    except Failure as e:
        said = str(e) + r.kdc_log_text()
    else:
        fail('krb5kdc started with role = primray')
    if 'role = primray' not in said:
        fail('the error does not name the setting:\n' + said)


def test_replica_without_known_primary():
    # Neither primary_kdc nor admin_server in the realm.
    r = Realm(pki=True, start_kdc=False, admin_server=False)
    with_role(r, 'replica')
    r.start_kdc()
    cert = r.server_cert(SVC)
    before = r.dump()
    out = tk_upload(r, cert, SVC_FULL, expected_code=4,
                    expected_msg='refused not-primary:')
    if 'primary KDC:' in out:
        fail('the refusal names a primary the realm does not know:\n' + out)
    refusal = out.splitlines()[-1]
    if not re.search(r'unknown|no primary', refusal):
        fail('the refusal does not say the primary is unknown:\n' + out)
    if refusal.split('not-primary: ')[-1] not in r.kdc_log_text():
        fail('the KDC log does not record the refusal')
    if r.dump() != before:
        fail('the refused upload changed the database')


Tests(shared=True).run(test_admin_change_reaches_replica,
                       test_upload_on_primary_is_served_by_replica,
                       test_replica_refuses_uploads_and_names_primary,
                       test_dumps_equal_after_every_kind_of_write,
                       test_purge_on_primary_reaches_replica,
                       test_full_resync_carries_keys,
                       test_entry_outgrowing_the_log_block,
                       # Last of the pair's: a lost race breaks the pair.
                       test_kadmin_racing_uploads_leaves_dumps_equal,
                       # It makes the replica a primary.
                       test_promoted_replica_keeps_kvnos_increasing,
                       test_misspelt_role_stops_the_kdc,
                       test_replica_without_known_primary)
