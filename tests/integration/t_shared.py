"""Shared services (issue 10): one principal served by several hosts.  For a
principal marked shared, an upload makes a pending key the KDC issues no
ticket in until the upload's time plus the delay; every member fetches it
meanwhile (authenticated as an upload, the keys encrypted to its own
certificate), so every ticket the KDC issues reads with every member's
keytab.  A second upload while a key is pending is answered as a fetch; a
certificate naming another principal, or a key not among the pins, gets
nothing; unshare returns to one host's behaviour."""

import os
import re
import shutil
import signal
import subprocess
import threading
import time

from realm import (Realm, Tests, fail, parse_iso, prerequisites, KDESTROY,
                   KLIST, KTUPDATE, KVNO, REALM, TK_UPLOAD)

SVC = 'HTTP/www.test'
SVC_FULL = SVC + '@' + REALM
DELAY = 6                   # seconds: long enough for a member's run
MEMBERS = ('m1', 'm2', 'm3')


class Shared:
    """A realm with a user, and SVC shared among three members, each with
    its own certificate naming SVC and its own keytab."""

    def __init__(self, delay=DELAY, members=MEMBERS, realm=None, **kw):
        self.r = r = realm or Realm(pki=True, **kw)
        r.addprinc('user', 'user-pw')
        r.kinit('user', 'user-pw')
        self.delay = delay
        self.certs = {m: r.server_cert(SVC, name=m) for m in members}
        self.keytabs = {m: r.path(m + '.keytab') for m in members}
        # A name that does not exist yet: share creates it, managed.
        r.tempkey_admin('share', SVC, '--delay', str(delay))

    def unshare(self):
        self.r.tempkey_admin('unshare', SVC)

    def ktupdate(self, member, *args, **kw):
        return self.r.ktupdate(self.certs[member], '--principal', SVC_FULL,
                               *args, keytab=self.keytabs[member], **kw)

    def upload(self, member):
        """member rotates: its new key, pending; returns (kvno, pending
        until), the latter None for a key used at once."""
        out = self.ktupdate(member, '--rotate')
        m = re.search(r' stored kvno (\d+) .*?( pending-until (\S+))?$', out,
                      re.M)
        if not m:
            fail('no key stored: ' + out)
        return int(m.group(1)), (parse_iso(m.group(3)) if m.group(3)
                                 else None)

    def fetch(self, member):
        out = self.ktupdate(member)
        m = re.search(r' fetched kvno (\S+) ', out)
        if not m:
            fail('nothing fetched: ' + out)
        return [int(k) for k in m.group(1).split(',')]

    def keytab_kvnos(self, member):
        if not os.path.exists(self.keytabs[member]):
            return []
        out = self.r.run([KLIST, '-k', self.keytabs[member]])
        return sorted({int(m.group(1)) for m in
                       re.finditer(r'^\s*(\d+) (\S+)$', out, re.M)
                       if m.group(2) == SVC_FULL})

    def getprinc_kvnos(self):
        out = self.r.kadmin_local('getprinc ' + SVC)
        return sorted({int(k) for k in re.findall(r'Key: vno (\d+),', out)})

    def ticket_reads_everywhere(self, members=MEMBERS):
        """A fresh ticket to SVC, read with each member's keytab; its
        kvno."""
        cc = self.r.path('one.ccache')
        shutil.copy(self.r.ccache, cc)
        kvnos = set()
        for i, m in enumerate(members):
            args = [KVNO, '-c', cc, '-k', self.keytabs[m]]
            if i > 0:
                args.append('--cached-only')
            out = self.r.run(args + [SVC])
            kvnos.add(int(re.search(r': kvno = (\d+), keytab entry valid',
                                    out).group(1)))
        if len(kvnos) != 1:
            fail('one ticket read as several kvnos: %r' % kvnos)
        return kvnos.pop()


class ClientLoop:
    """Fresh tickets to SVC in a loop, each read with every member's keytab,
    until stopped (or limit requests)."""

    def __init__(self, sh, limit=5000):
        self.sh, self.limit = sh, limit
        self.results = []           # (failed keytabs, kvno or None)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self):
        r = self.sh.r
        cc = r.path('loop.ccache')
        for _ in range(self.limit):
            if self.stop.is_set():
                return
            shutil.copy(r.ccache, cc)
            failed, kvno = [], None
            for i, m in enumerate(self.sh.keytabs):
                args = [KVNO, '-c', cc, '-k', self.sh.keytabs[m]]
                if i > 0:
                    args.append('--cached-only')
                proc = subprocess.run(args + [SVC], capture_output=True,
                                      text=True, env=r.env, timeout=60)
                out = proc.stdout + proc.stderr
                got = re.search(r': kvno = (\d+), keytab entry valid', out)
                if proc.returncode != 0 or not got:
                    failed.append((m, out.strip()))
                else:
                    kvno = int(got.group(1))
            self.results.append((failed, kvno))
            time.sleep(0.05)

    def wait_for_kvno(self, kvno):
        self.sh.r.wait_for('a client ticket in kvno %d' % kvno,
                           lambda: any(k == kvno for _, k in self.results)
                           or not self.thread.is_alive())
        if not self.thread.is_alive():
            fail('the client loop ended after %d requests' %
                 len(self.results))

    def finish(self):
        self.stop.set()
        self.thread.join(120)
        bad = [res for res in self.results if res[0]]
        if bad:
            fail('%d of %d tickets did not read with every keytab; first: %r'
                 % (len(bad), len(self.results), bad[0]))
        return sorted({kvno for _, kvno in self.results})


def wait_until(sh, t, what):
    sh.r.wait_for(what, lambda: time.time() > t + 0.5,
                  timeout=sh.delay * 3 + 10)


def test_three_members_three_rotations():
    sh = Shared()
    kvno, until = sh.upload('m1')
    if (kvno, until) != (1, None):
        fail('the first key should be used at once: %r' % ((kvno, until),))
    for m in ('m2', 'm3'):
        if sh.fetch(m) != [1]:
            fail(m + ' did not fetch kvno 1')
    loop = ClientLoop(sh)
    for rotation, starter in enumerate(('m2', 'm3', 'm1'), start=2):
        kvno, until = sh.upload(starter)
        if kvno != rotation or until is None:
            fail('rotation %d by %s: kvno %r pending until %r' %
                 (rotation, starter, kvno, until))
        # Pending: tickets stay in the previous key.
        if sh.ticket_reads_everywhere() != rotation - 1:
            fail('the KDC issued a ticket in a pending key')
        for m in MEMBERS:
            if m != starter and rotation not in sh.fetch(m):
                fail(m + ' did not fetch the pending key')
        wait_until(sh, until, 'kvno %d to be used' % rotation)
        if sh.ticket_reads_everywhere() != rotation:
            fail('the KDC did not move on to kvno %d' % rotation)
        loop.wait_for_kvno(rotation)
    kvnos = loop.finish()
    if kvnos != [1, 2, 3, 4]:
        fail('the client loop saw kvnos %r, not 1-4' % kvnos)
    if len(loop.results) < 10:
        fail('the client loop made only %d requests' % len(loop.results))
    # Two members fetched at the start and after each rotation.
    fetches = re.findall(r'fetch for %s: sent kvno' % re.escape(SVC_FULL),
                         sh.r.kdc_log_text())
    if len(fetches) != 8:
        fail('%d fetch lines in the KDC log, not 8' % len(fetches))
    print('client loop: %d tickets, kvnos %r, every one read by all three '
          'keytabs' % (len(loop.results), kvnos))


def test_offline_member_catches_up():
    sh = Shared()
    sh.upload('m1')
    sh.fetch('m2')
    sh.fetch('m3')
    for starter, other in (('m1', 'm2'), ('m2', 'm1'), ('m1', 'm2')):
        kvno, until = sh.upload(starter)
        sh.fetch(other)
        wait_until(sh, until, 'kvno %d to be used' % kvno)
    if sh.keytab_kvnos('m3') != [1]:
        fail('m3 was offline, yet its keytab holds %r' %
             sh.keytab_kvnos('m3'))
    # A dry run says what the run would do, and does nothing.
    sh.ktupdate('m3', '--dry-run', expected_msg='would fetch the versions '
                'the keytab lacks')
    sh.ktupdate('m1', '--dry-run', expected_msg='would send nothing')
    sh.ktupdate('m1', '--dry-run', '--rotate',
                expected_msg='would upload a new key')
    if sh.keytab_kvnos('m3') != [1]:
        fail('a dry run changed the keytab')
    got = sh.fetch('m3')
    if got != [1, 2, 3, 4]:
        fail('m3 caught up with %r, not kvno 1-4' % got)
    if sh.ticket_reads_everywhere() != 4:
        fail('the KDC should issue in kvno 4')


def test_second_upload_while_pending_is_answered_as_fetch():
    sh = Shared()
    sh.upload('m1')
    sh.fetch('m2')
    kvno, until = sh.upload('m1')
    before = sh.r.dump_entry(SVC)
    # ktupdate sees the pending key in the offer and only fetches.
    out = sh.ktupdate('m2', '--rotate')
    if ' fetched kvno 1,2 ' not in out or ' stored ' in out:
        fail('--rotate with a key pending should only fetch: ' + out)
    # An upload sent anyway (tk-upload's, at the next kvno) stores nothing:
    # the KDC answers it with the keys.
    out = sh.r.run([TK_UPLOAD, '--cert', sh.certs['m3'].chain_pem,
                    '--key', sh.certs['m3'].key_pem,
                    '--anchors', sh.r.ca.cert_pem, '--principal', SVC_FULL])
    if not out.startswith('fetched kvno 2 held 1,2'):
        fail('the upload was not answered as a fetch: ' + out)
    if not re.search(r'answered upload of kvno 3 for %s as a fetch: kvno 2 '
                     r'is pending until' % re.escape(SVC_FULL),
                     sh.r.kdc_log_text()):
        fail('no KDC line for the upload answered as a fetch')
    if sh.r.dump_entry(SVC) != before:
        fail('an upload answered as a fetch changed the entry')
    if sh.getprinc_kvnos() != [1, 2]:
        fail('the KDC holds %r, not kvno 1-2' % sh.getprinc_kvnos())
    if sh.keytab_kvnos('m2') != [1, 2]:
        fail('m2 holds %r, not kvno 1-2' % sh.keytab_kvnos('m2'))
    out = sh.ktupdate('m1')
    if 'up to date' not in out:
        fail('m1 should have nothing to do: ' + out)
    # That run is a success, of the newest key the KDC and m1 hold.
    out = sh.ktupdate('m1', '--status')
    if not re.search(r'last success \S+ kvno 2 ', out):
        fail('--status after a run with nothing to do: ' + out)
    wait_until(sh, until, 'kvno 2 to be used')
    if sh.ticket_reads_everywhere(('m1', 'm2')) != 2:
        fail('the KDC should issue in the key that was pending')


def test_members_enrolling_at_once_end_with_one_key():
    sh = Shared()
    # m2 reads the offer (no key yet: it will send kvno 1), then m1's first
    # upload lands before m2's.
    m1 = ' '.join([KTUPDATE, '--cert', sh.certs['m1'].chain_pem, '--key',
                   sh.certs['m1'].key_pem, '--anchors', sh.r.ca.cert_pem,
                   '--keytab', sh.keytabs['m1'], '--principal', SVC_FULL])
    out = sh.r.run([TK_UPLOAD, '--cert', sh.certs['m2'].chain_pem,
                    '--key', sh.certs['m2'].key_pem,
                    '--anchors', sh.r.ca.cert_pem, '--principal', SVC_FULL,
                    '--before-upload', m1 + ' >/dev/null'])
    if not out.startswith('fetched kvno 1 held 1'):
        fail('the second kvno 1 was not answered with the first: ' + out)
    if sh.getprinc_kvnos() != [1] or sh.keytab_kvnos('m1') != [1]:
        fail('the KDC holds %r, m1 %r' % (sh.getprinc_kvnos(),
                                          sh.keytab_kvnos('m1')))
    if not re.search(r'answered upload of kvno 1 for %s as a fetch'
                     % re.escape(SVC_FULL), sh.r.kdc_log_text()):
        fail('no KDC line for the upload answered as a fetch')
    sh.fetch('m2')
    sh.fetch('m3')
    if sh.ticket_reads_everywhere() != 1:
        fail('a ticket did not read everywhere')


def test_admin_set_key_waits_for_the_members_too():
    sh = Shared()
    sh.upload('m1')
    sh.fetch('m2')
    out = sh.r.tempkey_admin('set', SVC, '--lifetime', '1h', '--keytab',
                             sh.keytabs['m1'])
    m = re.search(r' kvno 2 expires .* pending-until (\S+)$', out, re.M)
    if not m:
        fail('a key set by hand for a shared principal should be pending: '
             + out)
    if sh.ticket_reads_everywhere(('m1', 'm2')) != 1:
        fail('the KDC issued a ticket in a key set by hand at once')
    if 2 not in sh.fetch('m2'):
        fail('m2 did not fetch the key set by hand')
    wait_until(sh, parse_iso(m.group(1)), 'kvno 2 to be used')
    if sh.ticket_reads_everywhere(('m1', 'm2')) != 2:
        fail('the key set by hand did not come into use')


def test_lost_reply_of_a_pending_key_is_resent_and_stored():
    from kdcproxy import KDCProxy, proxied_config
    sh = Shared()
    sh.upload('m1')
    sh.fetch('m2')
    # Every reply to m2's upload is lost: the KDC stored it, pending, and
    # m2 re-sends the same key, which is a retransmission, not a second
    # upload to answer as a fetch.
    proxy = KDCProxy(sh.r.kdc_port, mode='drop')
    try:
        sh.ktupdate('m2', '--rotate', env=proxied_config(sh.r, proxy),
                    expected_code=5, expected_msg='the key stays pending')
    finally:
        proxy.stop()
    log = sh.r.kdc_log_text()
    if 'as a fetch' in log or len(re.findall(r'stored kvno 2 of', log)) < 2:
        fail('the re-sent pending key was not taken as a retransmission')
    kvno, until = sh.upload('m2')
    if kvno != 2 or until is None:
        fail('the pending key was not acknowledged: %r' % ((kvno, until),))
    if 'as a fetch' in sh.r.kdc_log_text():
        fail('a retransmission was answered as a fetch')
    sh.fetch('m1')
    wait_until(sh, until, 'kvno 2 to be used')
    if sh.ticket_reads_everywhere(('m1', 'm2')) != 2:
        fail('the KDC does not issue in the key that was pending')


def refused(sh, args, reason, log_re, member_cert, readers=('m1',)):
    """Run tk-upload with args; check the refusal, its KDC line, an
    unchanged dump and a KDC still serving (a ticket that readers' keytabs
    read, or with no readers a user's TGT)."""
    before = sh.r.dump()
    out = sh.r.run([TK_UPLOAD, '--cert', member_cert.chain_pem,
                    '--key', member_cert.key_pem,
                    '--anchors', sh.r.ca.cert_pem,
                    '--principal', SVC_FULL] + args, expected_code=4)
    if not out.startswith('refused %s:' % reason):
        fail('expected a %s refusal: %s' % (reason, out))
    if not re.search(log_re, sh.r.kdc_log_text()):
        fail('no KDC line matching %r' % log_re)
    if sh.r.dump() != before:
        fail('a refused request changed the database')
    if readers:
        sh.ticket_reads_everywhere(readers)
    else:
        sh.r.kinit('user', 'user-pw', flags=['-c', sh.r.path('other.cc')])


def test_non_member_certificate_gets_nothing():
    sh = Shared()
    sh.upload('m1')
    stranger = sh.r.server_cert('HTTP/other.test', name='stranger')
    refused(sh, ['--fetch'], 'name-mismatch',
            r'refused fetch for %s signed by .*: name-mismatch'
            % re.escape(SVC_FULL), stranger)
    refused(sh, [], 'name-mismatch',
            r'refused upload for %s signed by .*: name-mismatch'
            % re.escape(SVC_FULL), stranger)
    # ktupdate with it: refused, and its keytab gets no key.
    kt = sh.r.path('stranger.keytab')
    out = sh.r.ktupdate(stranger, '--principal', SVC_FULL, keytab=kt,
                        expected_code=4)
    if 'the KDC refused the fetch: name-mismatch' not in out:
        fail('ktupdate did not say why: ' + out)
    out = sh.r.run([KLIST, '-k', kt], expected_code=None)
    if SVC_FULL in out:
        fail('a non-member keytab holds a key: ' + out)


def test_pinned_members():
    sh = Shared()
    pins = ','.join(sh.certs[m].spki_sha256() for m in ('m1', 'm2'))
    sh.r.kadmin_local('setstr %s tempkey_spki %s' % (SVC, pins))
    sh.upload('m1')
    if sh.fetch('m2') != [1]:
        fail('pinned m2 did not fetch')
    refused(sh, ['--fetch'], 'pinned-key-mismatch',
            r'refused fetch for %s signed by .*: pinned-key-mismatch'
            % re.escape(SVC_FULL), sh.certs['m3'])


def test_fetch_refusals():
    sh = Shared()
    # Shared, but no key yet.
    refused(sh, ['--fetch'], 'no-key-to-fetch',
            r'refused fetch for %s signed by .*: no-key-to-fetch'
            % re.escape(SVC_FULL), sh.certs['m1'], readers=())
    sh.upload('m1')
    sh.unshare()
    refused(sh, ['--fetch'], 'not-shared',
            r'refused fetch for %s signed by .*: not-shared'
            % re.escape(SVC_FULL), sh.certs['m2'])


def test_unshare_returns_to_one_host():
    sh = Shared()
    sh.upload('m1')
    sh.fetch('m2')
    kvno, until = sh.upload('m2')
    if until is None:
        fail('kvno 2 should be pending')
    sh.unshare()
    # A key pending at unshare keeps its time ...
    if sh.ticket_reads_everywhere(('m1', 'm2')) != 1:
        fail('unshare made a pending key current before its time')
    wait_until(sh, until, 'kvno 2 to be used')
    # ... and a new upload is used at once, with no fetch.
    out = sh.ktupdate('m1')
    m = re.search(r' stored kvno (\d+) ', out)
    if not m or 'pending-until' in out:
        fail('after unshare an upload should be used at once: ' + out)
    got = int(m.group(1))
    cc = sh.r.path('fresh.ccache')
    shutil.copy(sh.r.ccache, cc)
    out = sh.r.run([KVNO, '-c', cc, '-k', sh.keytabs['m1'], SVC])
    if ': kvno = %d, keytab entry valid' % got not in out:
        fail('the KDC does not issue in the new key at once: ' + out)


def test_report_counts_shared_principals():
    import json
    sh = Shared()
    sh.upload('m1')
    sh.fetch('m2')
    sh.upload('m2')
    sh.r.run([TK_UPLOAD, '--cert', sh.certs['m3'].chain_pem,
              '--key', sh.certs['m3'].key_pem,
              '--anchors', sh.r.ca.cert_pem, '--principal', SVC_FULL],
             expected_msg='fetched kvno 2 ')
    stranger = sh.r.server_cert('HTTP/other.test', name='stranger')
    sh.r.run([TK_UPLOAD, '--cert', stranger.chain_pem,
              '--key', stranger.key_pem, '--anchors', sh.r.ca.cert_pem,
              '--principal', SVC_FULL, '--fetch'], expected_code=4)
    rep = json.loads(sh.r.tempkey_admin('--json', 'report'))
    want = {'shared_principals': 1, 'pending_key_versions': 1,
            'fetches_last_day': 2, 'uploads_stored_last_day': 2}
    for key, value in want.items():
        if rep[key] != value:
            fail('report: %s is %r, not %r' % (key, rep[key], value))
    if rep['refusals_last_day'].get('name-mismatch') != 1:
        fail('report: the refused fetch is not counted: %r' %
             rep['refusals_last_day'])
    out = sh.r.tempkey_admin('report')
    for line in ('shared principals: 1', 'pending key versions: 1',
                 'fetches answered in the last day: 2'):
        if line + '\n' not in out:
            fail('the text report lacks %r:\n%s' % (line, out))


def test_report_knows_a_shared_principals_refresh_by():
    import json
    sh = Shared(delay=2)
    sh.ktupdate('m1', '--lifetime', '9s')
    rep = json.loads(sh.r.tempkey_admin('--json', 'report'))
    if rep['past_refresh_by']:
        fail('a fresh shared key is past its refresh-by: %r' %
             rep['past_refresh_by'])
    # Two thirds into its use (6 s), before the delay ahead of its expiry
    # (7 s): late then, by the members' own rule, not an estimate.
    time.sleep(6.5)
    rep = json.loads(sh.r.tempkey_admin('--json', 'report'))
    late = rep['past_refresh_by']
    if len(late) != 1 or late[0]['principal'] != SVC_FULL or \
            late[0]['estimated']:
        fail('report: past_refresh_by %r' % late)
    span = parse_iso(late[0]['expires']) - parse_iso(late[0]['refresh_by'])
    if span != 3:
        fail('refresh-by %d s before expiry, not 3' % span)


def test_daemon_fetches_within_the_delay():
    sh = Shared(delay=9)
    sh.upload('m1')
    c = sh.certs['m2']
    log = open(sh.r.path('daemon.log'), 'w')
    proc = subprocess.Popen(
        [KTUPDATE, '--cert', c.chain_pem, '--key', c.key_pem, '--anchors',
         sh.r.ca.cert_pem, '--keytab', sh.keytabs['m2'], '--principal',
         SVC_FULL, '--daemon', '--verbose'], env=sh.r.env, stdout=log,
        stderr=subprocess.STDOUT)
    sh.r.daemons.append(proc)
    try:
        sh.r.wait_for('the daemon to fetch kvno 1',
                      lambda: 1 in sh.keytab_kvnos('m2'), timeout=30)
        kvno, until = sh.upload('m1')
        # It wakes at least every third of the delay: it holds the new key
        # before the KDC uses it.
        sh.r.wait_for('the daemon to fetch kvno %d' % kvno,
                      lambda: kvno in sh.keytab_kvnos('m2'),
                      timeout=until - time.time())
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=15)
    finally:
        sh.r.stop_daemon(proc)
        log.close()
    if code != 0:
        fail('the daemon exited %d on SIGTERM' % code)
    with open(sh.r.path('daemon.log')) as f:
        out = f.read()
    if ' stored kvno' in out:
        fail('the daemon uploaded though no key was due:\n' + out)
    waits = [float(w) for w in re.findall(r'next run in (\d+) s', out)]
    if not waits or max(waits) > 3:
        fail('the daemon should wake at least every 3 s: %r' % waits)


def test_replica_switches_at_the_same_time():
    from iprop import IpropPair, kprop_hostname
    if not prerequisites(kprop_hostname):
        return
    pr = IpropPair()
    try:
        p, rep = pr.primary, pr.replica
        sh = Shared(realm=p)
        sh.upload('m1')
        sh.fetch('m2')
        kvno, until = sh.upload('m2')
        sh.fetch('m1')
        pr.wait_synced()
        pr.assert_dumps_equal('the pending key')
        rep.run([KDESTROY])
        rep.kinit('user', 'user-pw')

        def replica_kvno():
            cc = rep.path('rep.ccache')
            shutil.copy(rep.ccache, cc)
            out = rep.run([KVNO, '-c', cc, '-k', sh.keytabs['m1'], SVC])
            return int(re.search(r': kvno = (\d+), keytab entry valid',
                                 out).group(1))
        if time.time() < until - 1 and replica_kvno() != kvno - 1:
            fail('the replica issued a ticket in the pending key')
        # A fetch is for the primary, as an upload is.
        rep_args = [TK_UPLOAD, '--cert', sh.certs['m3'].chain_pem,
                    '--key', sh.certs['m3'].key_pem,
                    '--anchors', p.ca.cert_pem, '--principal', SVC_FULL,
                    '--fetch']
        out = rep.run(rep_args, expected_code=4)
        if not out.startswith('refused not-primary:'):
            fail('a replica answered a fetch: ' + out)
        wait_until(sh, until, 'kvno %d to be used' % kvno)
        if replica_kvno() != kvno:
            fail('the replica did not move on to kvno %d' % kvno)
        pr.assert_dumps_equal('after the switch')
    finally:
        pr.stop()


def test_shared_over_kldap():
    import ldap
    if not prerequisites(ldap.check_prerequisites):
        return
    sh = Shared(realm=Realm(pki=True, backing='kldap', ldap=ldap.Slapd()))
    sh.upload('m1')
    sh.fetch('m2')
    kvno, until = sh.upload('m2')
    before = sh.r.dump_entry(SVC)
    out = sh.r.run([TK_UPLOAD, '--cert', sh.certs['m3'].chain_pem,
                    '--key', sh.certs['m3'].key_pem,
                    '--anchors', sh.r.ca.cert_pem, '--principal', SVC_FULL])
    if not out.startswith('fetched kvno %d held 1,2' % kvno):
        fail('kldap: the upload was not answered as a fetch: ' + out)
    if sh.r.dump_entry(SVC) != before:
        fail('kldap: an upload answered as a fetch changed the entry')
    sh.fetch('m1')
    sh.fetch('m3')
    if sh.ticket_reads_everywhere() != 1:
        fail('kldap: a ticket in the pending key')
    wait_until(sh, until, 'kvno 2 to be used')
    if sh.ticket_reads_everywhere() != 2:
        fail('kldap: the KDC did not move on to kvno 2')


Tests().run(test_three_members_three_rotations,
            test_offline_member_catches_up,
            test_second_upload_while_pending_is_answered_as_fetch,
            test_members_enrolling_at_once_end_with_one_key,
            test_admin_set_key_waits_for_the_members_too,
            test_lost_reply_of_a_pending_key_is_resent_and_stored,
            test_non_member_certificate_gets_nothing,
            test_pinned_members,
            test_fetch_refusals,
            test_unshare_returns_to_one_host,
            test_report_counts_shared_principals,
            test_report_knows_a_shared_principals_refresh_by,
            test_daemon_fetches_within_the_delay,
            test_replica_switches_at_the_same_time,
            test_shared_over_kldap)
