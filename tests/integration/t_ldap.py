"""tempkey over kldap: a real slapd (Debian's, the schema from krb5-kdc-ldap)
on 127.0.0.1, MIT's tools, uploads, rotation, expiry and purge, the lockout
write-back; two slapd replicating each other with a KDC on each (an upload
rolled back by the other's replicated write is stored again); an LDAP
server that goes away during an upload."""

import random
import re
import signal
import time

import ldap
from realm import (Realm, Tests, fail, dump_fields, entry_keys,
                   entry_tl_data, parse_iso, KDB5_UTIL, KDESTROY, KVNO,
                   REALM)

ldap.check_prerequisites()

SVC = 'HTTP/www.test'
SVC_FULL = SVC + '@' + REALM
TL_META = 0x7e54
# db2 and kldap audit only principals that require preauthentication.
PREAUTH = '        default_principal_flags = +preauth'


def ldap_realm(slapd=None, **kw):
    slapd = slapd or ldap.Slapd()
    r = Realm(backing='kldap', ldap=slapd, **kw)
    return r


def stored(out):
    """(kvno, expiry) from ktupdate's result line."""
    m = re.search(r' stored kvno (\d+) expires (\S+) ', out)
    if not m:
        fail('unexpected ktupdate output: ' + out)
    return int(m.group(1)), parse_iso(m.group(2))


def served_kvno(r, princ=SVC):
    """The kvno of a fresh service ticket from r's KDC."""
    r.run([KDESTROY])
    r.kinit('user', 'user-pw')
    out = r.run([KVNO, princ])
    m = re.search(r': kvno = (\d+)', out)
    return int(m.group(1))


def stored_kvnos(r, princ=SVC_FULL):
    line = r.dump_entry(princ)
    return sorted({k[0] for k in entry_keys(line)}) if line else []


def test_mit_tools_over_kldap():
    r = ldap_realm(start_kdc=False)
    r.addprinc('alice', 'pw-one')
    r.kadmin_local('getprinc alice', expected_msg='Principal: alice@' + REALM)
    r.kadmin_local('modprinc -maxlife "2 hours" alice')
    r.kadmin_local('getprinc alice',
                   expected_msg='Maximum ticket life: 0 days 02:00:00')
    r.kadmin_local('cpw -pw pw-two alice')
    r.kadmin_local('getprinc alice', expected_msg='Key: vno 2,')
    r.kadmin_local('setstr alice color blue')
    r.kadmin_local('getstrs alice', expected_msg='color: blue')
    r.kadmin_local('addpol -minlength 6 pol1')
    r.kadmin_local('modprinc -policy pol1 alice')
    r.kadmin_local('getprinc alice', expected_msg='Policy: pol1')
    # A managed principal: temporary keys from tempkey-admin, no long-term
    # key, string attributes kept beside the key records.
    r.kadmin_local('addprinc -nokey ' + SVC)
    kvno, _ = r.set_key(SVC, '1h', r.path('http.keytab'))
    r.set_key(SVC, '1h', r.path('http.keytab'))
    r.kadmin_local('setstr %s team web' % SVC)
    r.kadmin_local('getstrs ' + SVC, expected_msg='team: web')
    r.kadmin_local('getstrs ' + SVC, expected_msg='tempkey: 1')
    r.kadmin_local('getprinc ' + SVC, expected_msg='Key: vno 2,')
    r.kadmin_local('cpw -randkey ' + SVC, expected_code=None,
                   expected_msg='keys come from ktupdate')
    r.tempkey_admin('show', SVC, expected_msg='    2  ')
    text = r.dump()
    if '\t%d\t' % TL_META not in text or 'alice@' + REALM not in text:
        fail('kdb5_util dump lacks the principals or the key records')
    if stored_kvnos(r) != [1, 2]:
        fail('dump should hold kvnos 1 and 2: %r' % stored_kvnos(r))
    # kadmin's own write (setstr) kept the records and both key versions.
    r.tempkey_admin('revoke', SVC, '--kvno', '1',
                    expected_msg='revoked 1 key version')
    if stored_kvnos(r) != [2]:
        fail('revoke left %r' % stored_kvnos(r))
    r.tempkey_admin('revoke', SVC, '--kvno', '1', expected_code=1,
                    expected_msg='has no temporary key with kvno 1')
    r.start_kdc()
    r.addprinc('user', 'user-pw')
    r.kinit('alice', 'pw-two')
    if served_kvno(r) != 2:
        fail('the KDC does not serve kvno 2')
    r.run([KVNO, '-k', r.path('http.keytab'), SVC],
          expected_msg='keytab entry valid')


def test_upload_rotation_expiry_purge():
    r = ldap_realm(pki=True, purge_interval='1s',
                   libdefaults_extra='    clockskew = 2')
    r.addprinc('user', 'user-pw')
    cert = r.server_cert(SVC)
    expiries = {}
    for want in (1, 2, 3):
        kvno, expiries[kvno] = stored(r.ktupdate(cert, '--lifetime',
                                                 '12s' if want == 1 else
                                                 '1h'))
        if kvno != want:
            fail('expected kvno %d, stored %d' % (want, kvno))
        if served_kvno(r) != kvno:
            fail('the KDC does not serve the new kvno %d' % kvno)
        r.run([KVNO, '-k', r.keytab, SVC], expected_msg='keytab entry valid')
    # A retransmission-like identical second run is not needed here; the
    # purge must drop kvno 1 from the directory soon after it expires.
    r.wait_for('kvno 1 to leave the directory',
               lambda: stored_kvnos(r) == [2, 3], timeout=40, step=0.5)
    if time.time() < expiries[1]:
        fail('kvno 1 left the directory before it expired')
    if 'purged 1 expired key version(s) of ' + SVC_FULL not in \
            r.kdc_log_text():
        fail('the KDC log does not record the purge')
    r.tempkey_admin('purge')
    if stored_kvnos(r) != [2, 3] or served_kvno(r) != 3:
        fail('a second purge changed live keys: %r' % stored_kvnos(r))


def counters(r, princ):
    f = dump_fields(r.dump_entry(princ))
    return {'last_success': int(f[12]), 'last_failed': int(f[13]),
            'fail_count': int(f[14])}


def key_state(r, princ):
    line = r.dump_entry(princ)
    return {'keys': sorted(entry_keys(line)),
            'meta': entry_tl_data(line).get(TL_META),
            'attributes': dump_fields(line)[7]}


def test_lockout_writeback_keeps_keys():
    r = ldap_realm(pki=True, purge_interval='1h', realm_extra=PREAUTH)
    r.kadmin_local('addpol -maxfailure 5 -failurecountinterval 0 '
                   '-lockoutduration 0 lockpol')
    r.kadmin_local('addprinc -pw user-pw -policy lockpol user')
    # Created by an admin, so that it requires preauthentication (an entry
    # made by enrollment does not, and kldap audits only those that do).
    r.kadmin_local('addprinc -nokey -policy lockpol ' + SVC)
    r.kadmin_local('setstr %s tempkey 1' % SVC)
    cert = r.server_cert(SVC)
    stored(r.ktupdate(cert, '--lifetime', '1h'))
    stored(r.ktupdate(cert, '--lifetime', '1h'))
    before = key_state(r, SVC_FULL)
    r.kinit('user', 'bad-pw', expected_code=1,
            expected_msg='Password incorrect')
    r.kinit('user', 'bad-pw', expected_code=1)
    if counters(r, 'user@' + REALM)['fail_count'] != 2:
        fail('the lockout audit did not count the user failures')
    r.kinit(SVC, 'guess', expected_code=1)
    if counters(r, SVC_FULL)['fail_count'] != 1:
        fail('the lockout audit did not count the service failure')
    r.kinit(SVC, flags=['-k', '-t', r.keytab])
    c = counters(r, SVC_FULL)
    if c['last_success'] == 0 or c['fail_count'] != 0:
        fail('the audit did not write back the service success: %r' % c)
    if key_state(r, SVC_FULL) != before:
        fail('the lockout write-back changed the keys or their records')
    # An upload after the write-backs still lands, and the next write-back
    # keeps it.
    kvno, _ = stored(r.ktupdate(cert, '--lifetime', '1h'))
    r.kinit(SVC, flags=['-k', '-t', r.keytab])
    if stored_kvnos(r)[-1] != kvno or served_kvno(r) != kvno:
        fail('kvno %d did not survive the write-back' % kvno)


def kdc_pair(links=False, **kw):
    """Two slapd in multi-provider replication and a KDC on each, both for
    one realm (the second shares the first's master key and PKI).  links:
    replication between them can be paused (ldap.pause_replication)."""
    a, b = ldap.provider_pair(links=links)
    ra = ldap_realm(a, pki=True, **kw)
    ra.addprinc('user', 'user-pw')
    # B's KDC needs the realm's entries, which reach b by replication.
    rb = ldap_realm(b, share=ra, start_kdc=False, **kw)
    ldap.wait_in_sync([a, b])
    rb.start_kdc()
    return a, b, ra, rb


def wait_served(r, kvno, what):
    r.wait_for('%s to serve kvno %d' % (what, kvno),
               lambda: served_kvno(r) == kvno, timeout=20, step=0.2)


def test_upload_through_either_kdc_served_by_the_other():
    a, b, ra, rb = kdc_pair()
    cert = ra.server_cert(SVC)
    kvno, _ = stored(ra.ktupdate(cert, '--lifetime', '1h'))
    ldap.wait_in_sync([a, b])
    if served_kvno(rb) != kvno:
        fail('KDC B does not serve the kvno uploaded through A')
    rb.run([KVNO, '-k', ra.keytab, SVC], expected_msg='keytab entry valid')
    kvno2, _ = stored(rb.ktupdate(cert, '--lifetime', '1h',
                                  keytab=ra.keytab))
    if kvno2 != kvno + 1:
        fail('B stored kvno %d after A stored %d' % (kvno2, kvno))
    ldap.wait_in_sync([a, b])
    if served_kvno(ra) != kvno2:
        fail('KDC A does not serve the kvno uploaded through B')
    ra.run([KVNO, '-k', ra.keytab, SVC], expected_msg='keytab entry valid')


def test_racing_uploads_and_purges_keep_newest_key():
    # Both KDCs purge every second while uploads alternate between them and
    # short-lived keys keep expiring: each KDC's purge writes race the
    # uploads through the other (whose writes reach its server only by
    # replication).  A service uploads hours apart, far beyond the
    # replication delay, so each upload starts once the previous one has
    # replicated; the purges do not wait.
    a, b, ra, rb = kdc_pair(purge_interval='1s',
                            libdefaults_extra='    clockskew = 2')
    cert = ra.server_cert(SVC)
    acked = 0
    rng = random.Random(7)

    def kdc_lines():
        return [line for r in (ra, rb)
                for line in r.kdc_log_text().splitlines()
                if 'refused upload' in line or 'purge:' in line]

    def upload(i, lifetime):
        via = (ra, rb)[i % 2]
        # store-failed says "try again later", as a service's next run
        # would: not acknowledged, so nothing may have been lost.  Shown in
        # the log with the KDCs' reason; a third in a row fails.
        for attempt in range(3):
            out = via.ktupdate(cert, '--lifetime', lifetime,
                               keytab=ra.keytab, expected_code=None)
            if 'store-failed' not in out:
                break
            print('upload %d attempt %d: %s\n%s' %
                  (i, attempt + 1, out.strip(), '\n'.join(kdc_lines()[-4:])))
        # The other KDC's purge, written from a copy without this upload,
        # may undo it on replication before ktupdate's self-test asks for a
        # ticket: stored, then rolled back until the repair stores it again
        # (below, every acknowledged kvno must end up served).
        m = re.search(r'self-test failed: .* in key version \d+, not (\d+)',
                      out)
        if m is None and ' stored kvno ' not in out:
            fail('upload %d: %s\nthe KDCs logged:\n%s' %
                 (i, out.strip(), '\n'.join(kdc_lines()[-10:])))
        kvno = int(m.group(1)) if m else stored(out)[0]
        if kvno != acked + 1:
            fail('upload %d stored kvno %d after %d' % (i, kvno, acked))
        for r, name in ((ra, 'KDC A'), (rb, 'KDC B')):
            wait_served(r, kvno, name)
        return kvno

    def purges():
        return sum(r.kdc_log_text().count('purged ') for r in (ra, rb))

    # A purge finds work only when a key expires between a tick and the
    # next upload (which drops expired keys itself): at least 16 uploads,
    # and on until the KDCs have purged, so that a slow machine still sees
    # the race.  The keys live 4 s, well beyond an upload's round of
    # replication and checks.
    i = 0
    while i < 16 or (purges() == 0 and i < 48):
        # Pauses of varying length let keys expire between uploads, so the
        # purges find work, at varying points of their 1 s cycles.
        time.sleep(rng.uniform(0, 1.2))
        acked = upload(i, '4s')
        i += 1
    if purges() == 0:
        fail('no KDC purged anything during %d uploads: the race was not '
             'exercised' % i)
    # The last key lives long enough for the checks below.
    acked = upload(i, '20s')
    ldap.wait_in_sync([a, b])
    for r, name in ((ra, 'A'), (rb, 'B')):
        got = served_kvno(r)
        if got != acked:
            fail('KDC %s serves kvno %d; the newest acknowledged is %d' %
                 (name, got, acked))
        r.run([KVNO, '-k', ra.keytab, SVC], expected_msg='keytab entry valid')
    # Once every key expires, both purges empty the entry alike and the
    # newest record survives as the kvno floor.
    for r in (ra, rb):
        r.wait_for('the expired keys to be purged',
                   lambda: stored_kvnos(r) == [], timeout=60, step=0.5)
    kvno, _ = stored(rb.ktupdate(cert, '--lifetime', '1h', keytab=ra.keytab))
    if kvno != acked + 1:
        fail('after the purges the next kvno is %d, not %d' %
             (kvno, acked + 1))


# ---- Uploads rolled back by replication, and their repair.  The KDCs'
# housekeeping ticks (the purge timer's SIGHUP) are sent by the tests
# (purge_interval is long), so that a check happens exactly when a test
# wants it: after the race, never during it.

REPAIRED = 'was rolled back by a replicated write; stored again'
AUX = 'HTTP/tick.test'


def tick(r):
    """What r's purge timer does: SIGHUP to its KDC (repair check, purge)."""
    r.kdc.send_signal(signal.SIGHUP)


def repaired_line(kvno, princ=SVC_FULL):
    return '%s kvno %d %s' % (princ, kvno, REPAIRED)


def wait_repaired(r, kvno, what):
    """Tick r's KDC until its log says kvno was stored again."""
    def check():
        tick(r)
        time.sleep(0.2)
        return repaired_line(kvno) in r.kdc_log_text()
    r.wait_for('%s to store kvno %d again' % (what, kvno), check,
               timeout=30, step=0.3)


def tick_done(r):
    """One tick of r's KDC, late enough that every upload acknowledged
    before the call is due for its check (settle_time 1s), and waited for
    to its end: that tick purges a key of AUX that expires first, which
    comes after the repair check."""
    if r.dump_entry(AUX + '@' + REALM) is None:
        r.kadmin_local('addprinc -nokey ' + AUX)
    _, expiry = r.set_key(AUX, '1s')
    done = 'purged 1 expired key version(s) of %s@%s' % (AUX, REALM)
    before = r.kdc_log_text().count(done)
    while time.time() < expiry + 1.1:
        time.sleep(0.1)

    def check():
        tick(r)
        time.sleep(0.2)
        return r.kdc_log_text().count(done) > before
    r.wait_for('a tick of the KDC to purge ' + AUX, check, timeout=30,
               step=0.3)


def wait_until(t):
    while time.time() <= t:
        time.sleep(0.1)


def expect_rolled_back(servers, realms, kvno, left):
    """After the race, neither server holds kvno, both hold the versions
    left, and both KDCs serve the newest of those: the race happened."""
    ldap.wait_in_sync(servers)
    for r, name in zip(realms, ('A', 'B')):
        if stored_kvnos(r) != left:
            fail('server %s holds %r after the race, not %r: the replicated '
                 'write did not roll kvno %d back' % (name, stored_kvnos(r),
                                                      left, kvno))
        if served_kvno(r) != left[-1]:
            fail('KDC %s does not serve kvno %d after the rollback' %
                 (name, left[-1]))


def expect_served_everywhere(servers, realms, kvno, keytab):
    ldap.wait_in_sync(servers)
    for r, name in zip(realms, ('KDC A', 'KDC B')):
        wait_served(r, kvno, name)
        r.run([KVNO, '-k', keytab, SVC], expected_msg='keytab entry valid')


def test_rolled_back_upload_is_stored_again():
    a, b, ra, rb = kdc_pair(links=True, purge_interval='1h',
                            settle_time='1s',
                            libdefaults_extra='    clockskew = 2')
    servers, realms = [a, b], [ra, rb]
    cert = ra.server_cert(SVC)
    # kvno 1 expires in seconds, kvno 2 lives on; both reach both servers.
    _, expiry1 = stored(ra.ktupdate(cert, '--lifetime', '4s'))
    stored(ra.ktupdate(cert, '--lifetime', '1h'))
    ldap.wait_in_sync(servers)
    wait_until(expiry1)

    # A purge: B stores kvno 3 (dropping the expired kvno 1 as it does),
    # then A purges kvno 1 from its copy, which lacks kvno 3.  A's write is
    # the later one, so it wins on both servers once replication resumes.
    ldap.pause_replication(servers)
    kvno3, _ = stored(rb.ktupdate(cert, '--lifetime', '1h',
                                  keytab=ra.keytab))
    tick(ra)
    ra.wait_for('KDC A to purge kvno 1 from its copy',
                lambda: 'purged 1 expired key version(s) of ' + SVC_FULL in
                ra.kdc_log_text(), timeout=20)
    ldap.resume_replication(servers)
    expect_rolled_back(servers, realms, kvno3, [2])
    wait_repaired(rb, kvno3, 'KDC B')
    expect_served_everywhere(servers, realms, kvno3, ra.keytab)

    # An administrator's change on A, from a copy without B's next upload.
    ldap.pause_replication(servers)
    kvno4, _ = stored(rb.ktupdate(cert, '--lifetime', '1h',
                                  keytab=ra.keytab))
    ra.kadmin_local('modprinc -maxlife "5 hours" ' + SVC)
    ldap.resume_replication(servers)
    expect_rolled_back(servers, realms, kvno4, [2, kvno3])
    wait_repaired(rb, kvno4, 'KDC B')
    expect_served_everywhere(servers, realms, kvno4, ra.keytab)
    # The repair put the keys back and kept the administrator's change.
    for r in realms:
        r.kadmin_local('getprinc ' + SVC,
                       expected_msg='Maximum ticket life: 0 days 05:00:00')
    if stored_kvnos(ra) != [2, kvno3, kvno4]:
        fail('after the repairs the directory holds %r' % stored_kvnos(ra))
    # Only KDC B stored anything again, once per rollback.
    text = rb.kdc_log_text()
    if text.count(REPAIRED) != 2 or REPAIRED in ra.kdc_log_text():
        fail('expected exactly two repairs, by KDC B:\n' + text)


def test_repair_of_superseded_upload_stores_nothing():
    a, b, ra, rb = kdc_pair(links=True, purge_interval='1h',
                            settle_time='1s')
    servers, realms = [a, b], [ra, rb]
    cert = ra.server_cert(SVC)
    stored(ra.ktupdate(cert, '--lifetime', '1h'))
    ldap.wait_in_sync(servers)
    # Two uploads at once: through B, then through A, which does not know
    # B's and so stores the same kvno with new keys.  A's is the later
    # write and the one ktupdate keeps: it wins on both servers, and B's
    # check must not bring B's keys back.
    ldap.pause_replication(servers)
    kvno_b, _ = stored(rb.ktupdate(cert, '--lifetime', '1h',
                                   keytab=ra.keytab))
    kvno_a, _ = stored(ra.ktupdate(cert, '--lifetime', '1h'))
    if kvno_a != kvno_b:
        fail('A stored kvno %d while B stored %d' % (kvno_a, kvno_b))
    ldap.resume_replication(servers)
    expect_served_everywhere(servers, realms, kvno_a, ra.keytab)
    # And a later kvno through B over its own: both checks find nothing
    # to do.
    kvno, _ = stored(rb.ktupdate(cert, '--lifetime', '1h', keytab=ra.keytab))
    expect_served_everywhere(servers, realms, kvno, ra.keytab)
    csns = [s.entry_csn(SVC_FULL) for s in servers]
    tick_done(rb)
    ldap.wait_in_sync(servers)
    if [s.entry_csn(SVC_FULL) for s in servers] != csns:
        fail('the repair check wrote the entry of a superseded upload')
    if REPAIRED in rb.kdc_log_text():
        fail('KDC B stored a superseded upload again')
    expect_served_everywhere(servers, realms, kvno, ra.keytab)
    # A principal deleted since its upload stays deleted.
    kvno, _ = stored(rb.ktupdate(cert, '--lifetime', '1h', keytab=ra.keytab))
    ldap.wait_in_sync(servers)
    ra.kadmin_local('delprinc -force ' + SVC)
    ldap.wait_in_sync(servers)
    tick_done(rb)
    gone = '%s kvno %d is no longer stored and cannot be stored again' % (
        SVC_FULL, kvno)
    if gone not in rb.kdc_log_text():
        fail('KDC B did not check the upload of a deleted principal')
    ldap.wait_in_sync(servers)
    if ra.dump_entry(SVC_FULL) or rb.dump_entry(SVC_FULL):
        fail('the repair check created a deleted principal again')


def test_repair_is_idle_on_db2():
    # db2 has a lock: an upload cannot be rolled back, and the KDC
    # remembers none.  The same steps that make a kldap KDC log its check
    # of a deleted principal's upload (above) leave no trace here.
    r = Realm(pki=True, purge_interval='1h', settle_time='1s')
    r.addprinc('user', 'user-pw')
    cert = r.server_cert(SVC)
    kvno, _ = stored(r.ktupdate(cert, '--lifetime', '1h'))
    if served_kvno(r) != kvno:
        fail('the KDC does not serve the upload')
    r.kadmin_local('delprinc -force ' + SVC)
    tick_done(r)
    text = r.kdc_log_text()
    if REPAIRED in text or 'cannot be stored again' in text:
        fail('a db2 KDC checked an upload after replication:\n' + text)
    if r.dump_entry(SVC_FULL) is not None:
        fail('the deleted principal came back')


def test_ldap_down_during_upload():
    slapd = ldap.Slapd()
    r = ldap_realm(slapd, pki=True, purge_interval='1s')
    r.addprinc('user', 'user-pw')
    cert = r.server_cert(SVC)
    kvno, _ = stored(r.ktupdate(cert, '--lifetime', '1h'))
    slapd.stop()
    # Exit 5 (try again later), saying the KDC could not look it up.
    r.ktupdate(cert, '--lifetime', '1h', expected_code=5,
               expected_msg='the KDC could not look up this principal')
    # The KDC answers other requests with an error and keeps running; the
    # purge timer fires meanwhile.
    r.kinit('user', 'user-pw', expected_code=1)
    time.sleep(2)
    if r.kdc.poll() is not None:
        fail('the KDC exited while the directory was down')
    slapd.start()
    r.wait_for('the KDC to serve again after slapd is back',
               lambda: served_kvno_or_none(r) == kvno, timeout=30, step=0.5)
    if stored_kvnos(r) != [kvno]:
        fail('something was half-stored: %r' % stored_kvnos(r))
    kvno2, _ = stored(r.ktupdate(cert, '--lifetime', '1h'))
    if kvno2 != kvno + 1 or served_kvno(r) != kvno2:
        fail('the next upload after the outage was not stored')
    r.run([KVNO, '-k', r.keytab, SVC], expected_msg='keytab entry valid')
    if r.kdc.poll() is not None:
        fail('the KDC exited')


def served_kvno_or_none(r):
    r.run([KDESTROY])
    if 'kinit:' in r.kinit('user', 'user-pw', expected_code=None):
        return None
    m = re.search(r': kvno = (\d+)', r.run([KVNO, SVC], expected_code=None))
    return int(m.group(1)) if m else None


def own_servers(fn):
    """Stop the test's slapd servers when it ends, as its realms are."""
    def run():
        try:
            fn()
        finally:
            ldap.stop_all()
    run.__name__ = fn.__name__
    return run


Tests().run(*map(own_servers, (
            test_mit_tools_over_kldap,
            test_upload_rotation_expiry_purge,
            test_lockout_writeback_keeps_keys,
            test_upload_through_either_kdc_served_by_the_other,
            test_racing_uploads_and_purges_keep_newest_key,
            test_rolled_back_upload_is_stored_again,
            test_repair_of_superseded_upload_stores_nothing,
            test_repair_is_idle_on_db2,
            test_ldap_down_during_upload)))
