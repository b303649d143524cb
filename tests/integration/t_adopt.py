"""Adoption (issue 9): a service that holds long-term keys moves over to
temporary keys.  tempkey-admin adopt marks it; its long-term keys serve
until its first accepted upload, which removes them from the database and
goes above their kvno; ktupdate, run with the service's existing keytab,
keeps the long-term entries while tickets in them may still be presented,
then prunes them.  Without the mark a certificate never takes the principal
over, and the refusals say to adopt it.  --matching and --dry-run, --cancel,
the password history, a replica (iprop) and kldap."""

import os
import re
import shutil
import subprocess
import threading
import time

from realm import (Realm, Tests, fail, entry_keys, entry_tl_data, parse_iso,
                   prerequisites, KADMIN_LOCAL, KDESTROY, KLIST, KVNO, REALM,
                   TEMPKEY_ADMIN, TK_UPLOAD)

SVC = 'HTTP/www.test'
SVC_FULL = SVC + '@' + REALM
# Outside tempkey_enroll ('HTTP/*.test host/*.test'): adoption is the
# administrator's word and needs no enrollment pattern.
OTHER = 'ldap/db.test'
OTHER_FULL = OTHER + '@' + REALM
KADM_DATA = 0x0003


def service_realm(princ=SVC, **kw):
    """A realm with a user and princ holding long-term keys, which are in
    the service's keytab (ktadd, as a realm has them today); returns (realm,
    keytab, long-term kvno)."""
    r = Realm(pki=True, **kw)
    r.addprinc('user', 'user-pw')
    r.addprinc(princ)
    kt = r.path('service.keytab')
    out = r.kadmin_local('ktadd -k %s %s' % (kt, princ))
    return r, kt, int(re.search(r'with kvno (\d+)', out).group(1))


def stored(out):
    m = re.search(r' stored kvno (\d+) expires (\S+) ', out)
    if not m:
        fail('unexpected ktupdate output: ' + out)
    return int(m.group(1)), parse_iso(m.group(2))


def served_kvno(r, princ, kt, ccache=None, cached=False):
    """The kvno of a ticket to princ, read with the keytab kt: a fresh one
    from the KDC, or with cached the one in ccache."""
    args = [KVNO, '-k', kt]
    if ccache:
        args += ['-c', ccache]
    if cached:
        args.append('--cached-only')
    out = r.run(args + [princ])
    m = re.search(r': kvno = (\d+), keytab entry valid', out)
    if not m:
        fail('the keytab did not read the ticket: ' + out)
    return int(m.group(1))


def getprinc_kvnos(r, princ):
    out = r.kadmin_local('getprinc ' + princ)
    return sorted({int(k) for k in re.findall(r'Key: vno (\d+),', out)})


def keytab_kvnos(r, kt, princ):
    out = r.run([KLIST, '-k', kt])
    return sorted({int(m.group(1)) for m in
                   re.finditer(r'^\s*(\d+) (\S+)$', out, re.M)
                   if m.group(2) == princ})


def records(kt):
    """{kvno: (expiry, status)} of KEYTAB.tempkey."""
    out = {}
    with open(kt + '.tempkey') as f:
        for line in f:
            name, kvno, expiry, status = line.split()
            out[int(kvno)] = (int(expiry), status)
    return out


class ClientLoop:
    """A client asking for fresh tickets to princ in a loop (each from a
    copy of the user's TGT cache, so none is cached) and reading each with
    the service's keytab, until stopped; it stops by itself after limit
    requests."""

    def __init__(self, r, princ, kt, limit=400):
        self.r, self.princ, self.kt, self.limit = r, princ, kt, limit
        self.results = []           # (exit status, kvno or None, output)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self):
        iter_cc = self.r.path('loop.ccache')
        after_stop = 0
        for _ in range(self.limit):
            shutil.copy(self.r.ccache, iter_cc)
            proc = subprocess.run([KVNO, '-c', iter_cc, '-k', self.kt,
                                   self.princ], capture_output=True,
                                  text=True, env=self.r.env, timeout=60)
            out = proc.stdout + proc.stderr
            m = re.search(r': kvno = (\d+), keytab entry valid', out)
            self.results.append((proc.returncode,
                                 int(m.group(1)) if m else None, out))
            if self.stop.is_set():
                after_stop += 1
                if after_stop >= 5:
                    return

    def wait_for_requests(self, n):
        self.r.wait_for('%d client requests' % n,
                        lambda: len(self.results) >= n or
                        not self.thread.is_alive())

    def finish(self):
        self.stop.set()
        self.thread.join(timeout=120)
        if self.thread.is_alive():
            fail('the client loop did not stop')
        return self.results


# ---- the tests


def test_adoption_under_a_client_loop():
    r, kt, lt = service_realm()
    # Longer than the realm's max_life (10 h), which caps it.
    r.kadmin_local('modprinc -maxlife "20 hours" ' + SVC)
    r.kinit('user', 'user-pw')
    # A ticket in the long-term key, issued before anything changes.
    before_cc = r.path('before.ccache')
    shutil.copy(r.ccache, before_cc)
    if served_kvno(r, SVC, kt, ccache=before_cc) != lt:
        fail('the long-term key did not serve before the adoption')
    r.tempkey_admin('adopt', SVC, expected_msg='%s: adopting: its long-term '
                    'keys (up to kvno %d) serve until its first upload '
                    'replaces them' % (SVC_FULL, lt))
    # Marked, not changed: the long-term key still serves, as MIT serves it.
    if getprinc_kvnos(r, SVC) != [lt]:
        fail('the adoption mark changed the keys')
    loop = ClientLoop(r, SVC, kt)
    loop.wait_for_requests(3)
    switch_start = int(time.time())
    kvno, _ = stored(r.ktupdate(r.server_cert(SVC), keytab=kt))
    switch_end = int(time.time()) + 1
    served = len(loop.results)
    results = loop.finish()

    failed = [out for status, _, out in results if status != 0]
    if failed:
        fail('%d of %d client requests failed across the switch; the '
             'first:\n%s' % (len(failed), len(results), failed[0]))
    kvnos = [k for _, k, _ in results]
    print('client loop: %d requests, %d in kvno %d, then %d in kvno %d' % (
        len(kvnos), kvnos.count(lt), lt, kvnos.count(kvno), kvno))
    if kvnos[0] != lt or kvnos[-1] != kvno or \
            kvnos != sorted(kvnos) or set(kvnos) != {lt, kvno}:
        fail('the client saw kvnos %r, expected %d then %d' %
             (kvnos, lt, kvno))
    if served < 3 or len(results) - served < 5:
        fail('the loop did not run on both sides of the switch')
    if kvno != lt + 1:
        fail('the first temporary key has kvno %d, not above the long-term '
             '%d' % (kvno, lt))
    # The ticket issued before the switch still reads with the keytab.
    if served_kvno(r, SVC, kt, ccache=before_cc, cached=True) != lt:
        fail('the ticket issued before the switch no longer verifies')
    # The database holds no long-term key for it any more.
    if getprinc_kvnos(r, SVC) != [kvno]:
        fail('getprinc shows keys %r after the switch' %
             getprinc_kvnos(r, SVC))
    keys = entry_keys(r.dump_entry(SVC_FULL))
    if {k[0] for k in keys} != {kvno}:
        fail('the dump still holds other key versions: %r' % keys)
    strings = r.kadmin_local('getstrs ' + SVC)
    if 'tempkey: 1' not in strings or 'tempkey_adopt:' in strings:
        fail('the switch did not make it managed:\n' + strings)
    # Tickets in the long-term key end within max_life (the realm's 10 h
    # here) of the switch; the KDC says so, and ktupdate keeps those
    # entries until then.
    m = re.search(r'adopted %s: its long-term keys \(up to kvno %d\) are '
                  r'removed; tickets in them end by (\S+)' %
                  (re.escape(SVC_FULL), lt), r.kdc_log_text())
    if not m:
        fail('the KDC log does not record the switch')
    until = parse_iso(m.group(1))
    if not switch_start + 36000 <= until <= switch_end + 36000:
        fail('tickets in the long-term keys end by %d, not max_life after '
             'the switch (%d..%d)' % (until, switch_start, switch_end))
    if records(kt).get(lt) != (until, 'long-term'):
        fail('ktupdate did not record the long-term keys: %r' % records(kt))
    if keytab_kvnos(r, kt, SVC_FULL) != [lt, kvno]:
        fail('the keytab holds %r' % keytab_kvnos(r, kt, SVC_FULL))
    r.tempkey_admin('show', SVC, expected_msg='adopted: its long-term keys '
                    '(up to kvno %d) are gone; tickets in them end by %s' %
                    (lt, m.group(1)))
    r.ktupdate(r.server_cert(SVC, name='www-again'), '--status', keytab=kt,
               expected_msg='kvno %d aes256-cts-hmac-sha1-96 expires %s '
               '(long-term' % (lt, m.group(1)))
    # The next rotation keeps them too: their tickets are still valid.
    kvno2, _ = stored(r.ktupdate(r.server_cert(SVC, name='www-3'),
                                 keytab=kt))
    if keytab_kvnos(r, kt, SVC_FULL) != [lt, kvno, kvno2]:
        fail('a rotation dropped a key: %r' % keytab_kvnos(r, kt, SVC_FULL))


def test_long_term_entries_pruned_once_their_tickets_end():
    # A short max_life and clock skew, so that the end comes in seconds.
    r, kt, lt = service_realm(libdefaults_extra='    clockskew = 2\n')
    r.kadmin_local('modprinc -maxlife "3 seconds" ' + SVC)
    r.tempkey_admin('adopt', SVC)
    cert = r.server_cert(SVC)
    start = int(time.time())
    kvno, _ = stored(r.ktupdate(cert, keytab=kt))
    until, status = records(kt)[lt]
    if status != 'long-term' or not start + 3 <= until <= time.time() + 3:
        fail('unexpected record of the long-term keys: %r' % records(kt))
    # The run that switched pruned the keytab already: they stayed, since
    # tickets in them may still be presented until then plus the skew.
    if keytab_kvnos(r, kt, SVC_FULL) != [lt, kvno]:
        fail('the keytab holds %r' % keytab_kvnos(r, kt, SVC_FULL))
    r.wait_for('the long-term tickets to end',
               lambda: time.time() > until + 2 + 1)
    kvno2, _ = stored(r.ktupdate(cert, keytab=kt))
    if keytab_kvnos(r, kt, SVC_FULL) != [kvno, kvno2] or lt in records(kt):
        fail('the long-term keys outlived their tickets: %r %r' %
             (keytab_kvnos(r, kt, SVC_FULL), records(kt)))


def test_every_ack_says_when_long_term_tickets_end():
    # ktupdate learns the end from the KDC's signed Ack, of the switch and
    # of every later upload: a keytab whose record of it is gone learns it
    # again at the next run.
    r, kt, lt = service_realm()
    r.tempkey_admin('adopt', SVC)
    cert = r.server_cert(SVC)
    stored(r.ktupdate(cert, keytab=kt))
    until = records(kt)[lt][0]
    with open(kt + '.tempkey') as f:
        lines = [l for l in f if ' long-term' not in l]
    with open(kt + '.tempkey', 'w') as f:
        f.writelines(lines)
    stored(r.ktupdate(cert, keytab=kt))
    if records(kt).get(lt) != (until, 'long-term'):
        fail('the next Ack did not carry the end again: %r' % records(kt))


def test_not_adopted_principal_refuses_certificates():
    r, kt, lt = service_realm()
    cert = r.server_cert(SVC)
    before = r.dump_entry(SVC_FULL)
    listing = r.run([KLIST, '-k', '-K', kt])
    # As it is (no preauthentication required): the KDC answers in the
    # long-term key; ktupdate says what to do.
    r.ktupdate(cert, keytab=kt, expected_code=4,
               expected_msg='the KDC answered in this principal\'s long-term '
               'key and offers no tempkey upload: it is not managed by '
               'tempkey; an administrator adopts it first (tempkey-admin '
               'adopt %s on the KDC)' % SVC_FULL)
    # With preauthentication required the KDC offers no upload.
    r.kadmin_local('modprinc +requires_preauth ' + SVC)
    before = r.dump_entry(SVC_FULL)
    r.ktupdate(cert, keytab=kt, expected_code=4,
               expected_msg='one that exists already, with long-term keys, '
               'is adopted first (tempkey-admin adopt %s on the KDC)' %
               SVC_FULL)
    # An upload that comes anyway (here: the adoption was cancelled after
    # the KDC's offer) is refused by the KDC, which says why.
    r.tempkey_admin('adopt', SVC)
    cancel = '%s adopt --cancel %s >/dev/null' % (TEMPKEY_ADMIN, SVC)
    out = r.run([TK_UPLOAD, '--cert', cert.chain_pem, '--key', cert.key_pem,
                 '--anchors', r.ca.cert_pem, '--principal', SVC_FULL,
                 '--before-upload', cancel], expected_code=4)
    if not out.startswith('refused not-adopted: ') or \
            'not-adopted: the principal exists and is not managed by ' \
            'tempkey; an administrator must adopt it first (tempkey-admin ' \
            'adopt)' not in out:
        fail('unexpected refusal: ' + out)
    if not re.search(r'refused upload for %s signed by .*: not-adopted: the '
                     r'principal exists and is neither managed by tempkey '
                     r'nor being adopted; a certificate alone never takes '
                     r'it over' % re.escape(SVC_FULL), r.kdc_log_text()):
        fail('the KDC log does not record the refusal')
    if 'stored kvno' in r.kdc_log_text():
        fail('the KDC stored a key')
    # Nothing changed: the entry, the keytab, the long-term key serving.
    if r.dump_entry(SVC_FULL) != before:
        fail('a refused certificate changed the entry:\n%s\n%s' %
             (before, r.dump_entry(SVC_FULL)))
    if r.run([KLIST, '-k', '-K', kt]) != listing:
        fail('a refusal changed the keytab')
    # (A service requiring preauthentication serves only preauthenticated
    # TGTs.)
    r.kadmin_local('modprinc +requires_preauth user')
    r.kinit('user', 'user-pw')
    if served_kvno(r, SVC, kt) != lt:
        fail('the long-term key no longer serves')
    # tempkey-admin set says the same, in words, naming the principal.
    out = r.tempkey_admin('set', SVC, expected_code=1,
                          expected_msg='%s holds long-term keys (up to kvno '
                          '%d) and is not managed by tempkey; run '
                          'tempkey-admin adopt %s first' %
                          (SVC_FULL, lt, SVC_FULL))
    if 'Unknown code' in out:
        fail('tempkey-admin printed an error code: ' + out)
    # Nor does an adopting principal take a key from it: only its upload.
    r.tempkey_admin('adopt', SVC)
    r.tempkey_admin('set', SVC, expected_code=1,
                    expected_msg='%s is being adopted: its long-term keys '
                    '(up to kvno %d) serve until its service\'s ktupdate '
                    'uploads its first key' % (SVC_FULL, lt))
    if getprinc_kvnos(r, SVC) != [lt]:
        fail('a refused set changed the keys')


def test_reserved_names_are_never_adopted():
    r, kt, lt = service_realm(princ='kadmin/db.test')
    r.tempkey_admin('adopt', 'kadmin/db.test', expected_code=1,
                    expected_msg='is a reserved name: it is never adopted')
    r.tempkey_admin('adopt', 'krbtgt/%s' % REALM, expected_code=1,
                    expected_msg='is a reserved name')
    # A mark set by hand does not make it one either: the KDC offers the
    # upload, and its store refuses it.
    r.kadmin_local('setstr kadmin/db.test tempkey_adopt yes')
    before = r.dump_entry('kadmin/db.test@' + REALM)
    cert = r.server_cert('kadmin/db.test')
    r.ktupdate(cert, keytab=kt, expected_code=4,
               expected_msg='not-adopted')
    if 'not-adopted: a reserved name is never adopted, whatever marks it' \
            not in r.kdc_log_text():
        fail('the KDC log does not say why it refused the reserved name')
    if r.dump_entry('kadmin/db.test@' + REALM) != before:
        fail('a reserved name was adopted')
    if keytab_kvnos(r, kt, 'kadmin/db.test@' + REALM) != [lt]:
        fail('the refused key stayed in the keytab')


def test_matching_dry_run_changes_nothing():
    r = Realm(pki=True)
    for p in ('HTTP/a.test', 'HTTP/b.test', 'host/c.test', OTHER):
        r.addprinc(p)
    r.kadmin_local('addprinc -nokey HTTP/m.test')
    r.set_key('HTTP/m.test')
    r.addprinc('HTTP/x.test')
    r.tempkey_admin('adopt', 'HTTP/x.test')
    before = r.dump()
    out = r.tempkey_admin('adopt', '--matching', 'HTTP/*', '--dry-run')
    would = sorted(re.findall(r'^(\S+): would adopt: ', out, re.M))
    if would != ['HTTP/a.test@' + REALM, 'HTTP/b.test@' + REALM]:
        fail('the dry run would adopt %r' % would)
    if 'HTTP/*: 2 principal(s) would be adopted; 2 matching skipped' \
            not in out:
        fail('the dry run does not count what it skipped: ' + out)
    # Reserved names never match, whatever the pattern.
    out = r.tempkey_admin('adopt', '--matching', '*/*', '--dry-run')
    for reserved in ('krbtgt/', 'kadmin/', 'kiprop/', 'K/M'):
        if reserved in out:
            fail('a reserved name matched: ' + out)
    if OTHER_FULL + ': would adopt' not in out:
        fail('a name outside tempkey_enroll was not matched: ' + out)
    r.tempkey_admin('adopt', '--cancel', '--matching', 'HTTP/*', '--dry-run',
                    expected_msg='HTTP/x.test@%s: would cancel its adoption'
                    % REALM)
    if r.dump() != before:
        fail('a dry run changed the database')
    # Without --dry-run: exactly those.
    r.tempkey_admin('adopt', '--matching', 'HTTP/*',
                    expected_msg='HTTP/*: 2 principal(s) adopted')
    for p, marked in (('HTTP/a.test', True), ('HTTP/b.test', True),
                      ('host/c.test', False), ('HTTP/m.test', False)):
        strings = r.kadmin_local('getstrs ' + p)
        if ('tempkey_adopt:' in strings) != marked:
            fail('%s: unexpected string attributes:\n%s' % (p, strings))
    listing = r.tempkey_admin('list')
    for p in ('HTTP/a.test', 'HTTP/b.test', 'HTTP/x.test'):
        if not re.search(r'^%s@\S+\s+1  long-term\s+adopting since ' %
                         re.escape(p), listing, re.M):
            fail('list does not show %s adopting:\n%s' % (p, listing))


def test_cancel_leaves_the_principal_as_it_was():
    r, kt, lt = service_realm()
    r.addprinc(OTHER)
    r.kadmin_local('setstr %s team db' % OTHER)
    for p in (SVC_FULL, OTHER_FULL):
        before = r.dump_entry(p)
        r.tempkey_admin('adopt', p)
        if r.dump_entry(p) == before:
            fail('adopt did not mark %s' % p)
        r.tempkey_admin('adopt', '--cancel', p,
                        expected_msg='%s: adoption cancelled: it keeps its '
                        'long-term keys (up to kvno' % p)
        if r.dump_entry(p) != before:
            fail('cancel did not leave %s as it was:\n%s\n%s' %
                 (p, before, r.dump_entry(p)))
    r.tempkey_admin('adopt', '--cancel', SVC, expected_code=1,
                    expected_msg='%s: is not being adopted' % SVC_FULL)
    # Once its first upload came, there is no going back.
    r.tempkey_admin('adopt', SVC)
    kvno, _ = stored(r.ktupdate(r.server_cert(SVC), keytab=kt))
    r.tempkey_admin('adopt', '--cancel', SVC, expected_code=1,
                    expected_msg='was adopted already: its first upload '
                    'replaced its long-term keys (up to kvno %d), which are '
                    'gone' % lt)
    r.tempkey_admin('adopt', SVC, expected_code=1,
                    expected_msg='is managed by tempkey already')
    r.tempkey_admin('adopt', 'HTTP/nobody.test', expected_code=1)
    r.tempkey_admin('adopt', '--cancel', expected_code=2)
    r.tempkey_admin('list', '--dry-run', expected_code=2,
                    expected_msg='--matching, --cancel and --dry-run go with '
                    'adopt')


def test_switch_removes_the_password_history():
    # Old keys kept for a policy's password history are long-term keys too:
    # they go at the switch, the policy stays.
    r = Realm(pki=True)
    r.kadmin_local('addpol -history 3 hist')
    r.kadmin_local('addprinc -policy hist -pw pw-one ' + SVC)
    r.kadmin_local('cpw -pw pw-two ' + SVC)
    r.kadmin_local('cpw -pw pw-three ' + SVC)
    kt = r.path('service.keytab')
    r.kadmin_local('ktadd -norandkey -k %s %s' % (kt, SVC))

    def history(line):
        raw = bytes.fromhex(entry_tl_data(line)[KADM_DATA])
        name_len = int.from_bytes(raw[4:8], 'big')
        pos = 8 + (name_len + 3) // 4 * 4
        return raw[8:8 + name_len], int.from_bytes(raw[pos + 12:pos + 16],
                                                   'big'), len(raw) - pos - 16
    policy, old, rest = history(r.dump_entry(SVC_FULL))
    if old != 2 or rest == 0:
        fail('the history should hold two old keys, not %d' % old)
    r.tempkey_admin('adopt', SVC)
    stored(r.ktupdate(r.server_cert(SVC), keytab=kt))
    policy2, old, rest = history(r.dump_entry(SVC_FULL))
    if (old, rest) != (0, 0) or policy2 != policy:
        fail('after the switch the history holds %d keys (%d bytes), policy '
             '%r' % (old, rest, policy2))
    r.kadmin_local('getprinc ' + SVC, expected_msg='Policy: hist')


def test_adoption_reaches_a_replica():
    from iprop import IpropPair, kprop_hostname
    if not prerequisites(kprop_hostname):
        return
    pr = IpropPair()
    try:
        p, rep = pr.primary, pr.replica
        p.kadmin_local('addprinc +requires_preauth -pw user-pw user')
        p.addprinc(SVC)
        kt = p.path('service.keytab')
        out = p.kadmin_local('ktadd -k %s %s' % (kt, SVC))
        lt = int(re.search(r'with kvno (\d+)', out).group(1))
        pr.wait_synced()
        p.tempkey_admin('adopt', SVC)
        pr.wait_synced()
        rep.kadmin_local('getstrs ' + SVC, expected_msg='tempkey_adopt: ')
        pr.assert_dumps_equal('the adoption mark')
        kvno, _ = stored(p.ktupdate(p.server_cert(SVC), keytab=kt))
        pr.wait_synced()
        pr.assert_dumps_equal('the switch')
        if getprinc_kvnos(rep, SVC) != [kvno]:
            fail('the replica still holds %r' % getprinc_kvnos(rep, SVC))
        # The replica's KDC serves the new key (its krb5.conf lists only
        # itself).
        rep.run([KDESTROY])
        rep.kinit('user', 'user-pw')
        if served_kvno(rep, SVC, kt) != kvno:
            fail("the replica's KDC did not serve the new key")
    finally:
        pr.stop()


def test_adoption_over_kldap():
    import ldap
    if not prerequisites(ldap.check_prerequisites):
        return
    r = Realm(pki=True, backing='kldap', ldap=ldap.Slapd())
    r.addprinc('user', 'user-pw')
    r.addprinc(SVC)
    kt = r.path('service.keytab')
    out = r.kadmin_local('ktadd -k %s %s' % (kt, SVC))
    lt = int(re.search(r'with kvno (\d+)', out).group(1))
    r.tempkey_admin('adopt', SVC)
    r.tempkey_admin('adopt', '--cancel', SVC)
    if 'tempkey_adopt' in r.kadmin_local('getstrs ' + SVC):
        fail('kldap kept the cancelled mark')
    r.tempkey_admin('adopt', SVC)
    r.kinit('user', 'user-pw')
    if served_kvno(r, SVC, kt) != lt:
        fail('the long-term key did not serve while adopting')
    kvno, _ = stored(r.ktupdate(r.server_cert(SVC), keytab=kt))
    if kvno != lt + 1 or getprinc_kvnos(r, SVC) != [kvno]:
        fail('kldap holds %r after the switch to %d' %
             (getprinc_kvnos(r, SVC), kvno))
    r.run([KDESTROY])
    r.kinit('user', 'user-pw')
    if served_kvno(r, SVC, kt) != kvno:
        fail('the new key did not serve')
    if records(kt).get(lt, (0, ''))[1] != 'long-term':
        fail('ktupdate did not keep the long-term keys: %r' % records(kt))


Tests().run(test_adoption_under_a_client_loop,
            test_long_term_entries_pruned_once_their_tickets_end,
            test_every_ack_says_when_long_term_tickets_end,
            test_not_adopted_principal_refuses_certificates,
            test_reserved_names_are_never_adopted,
            test_matching_dry_run_changes_nothing,
            test_cancel_leaves_the_principal_as_it_was,
            test_switch_removes_the_password_history,
            test_adoption_reaches_a_replica,
            test_adoption_over_kldap)
