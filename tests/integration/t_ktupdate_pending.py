"""ktupdate's pending key and the service as a client (hardening trap 9):
kinit -k and GSS initiators use the keytab's newest key, so a pending key
the KDC does not hold would fail their preauthentication and count toward
lockout.  A pending key stays only while the KDC may hold it (the upload
was sent and no answer came); one the KDC never stored is taken out in the
same run; a lost reply is asked again in the run, a bounded number of
times; and a pending key left by an earlier run is resolved first, so a
stale one never wedges ktupdate."""

import os
import re
import socket
import struct
import subprocess

from kdcproxy import KDCProxy, UPLOAD_SIZE, proxied_config, _exchange, \
    _recv_exact
from realm import (Realm, Tests, fail, entry_keys, KINIT, KLIST, REALM)

SVC = 'HTTP/www.test'
SVC_FULL = SVC + '@' + REALM
# ktupdate's tries for one upload in a run (ktupdate(8)).
TRIES = 3


class ScriptedProxy(KDCProxy):
    """A KDCProxy that gives each upload (a request of UPLOAD_SIZE bytes or
    more) over TCP the next fate of uploads: 'pass', 'drop' (the KDC handles
    it and its reply is lost) or 'swallow' (the connection closes before
    the KDC sees it); 'pass' once the list is used up.  Uploads over UDP
    are lost, as large datagrams often are (fragments dropped on the
    way): ktupdate must not count on them.  With dark=True it stops
    listening as it relays the KDC's key request, so that the upload's
    connection is refused, then calls on_dark.  on_upload is called as each
    upload over TCP arrives, before the KDC sees it."""

    def __init__(self, kdc_port, uploads=(), dark=False, on_dark=None,
                 on_upload=None):
        self.uploads = list(uploads)
        self.dark = dark
        self.on_dark = on_dark
        self.on_upload = on_upload
        self.went_dark = False
        self.fates = []
        super().__init__(kdc_port)

    def _fate(self, request):
        if len(request) < UPLOAD_SIZE:
            return 'pass'
        fate = self.uploads.pop(0) if self.uploads else 'pass'
        self.fates.append(fate)
        if self.on_upload:
            self.on_upload()
        return fate

    def _offer(self, reply, offset):
        """Whether reply is the KDC's offer, when going dark after it: a
        KRB-ERROR ([APPLICATION 30]) carrying the signed key request, far
        larger than a plain error.  If so, stop listening on TCP at once,
        before the reply goes out, so that the upload's connection is
        refused; the rest is left to _dark()."""
        if not self.dark or reply[offset] != 0x7e or len(reply) <= 1000:
            return False
        self.went_dark = True
        try:
            self.tcp.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.tcp.close()
        return True

    def _dark(self):
        """After the offer went out: close the UDP socket too and tell."""
        self.udp.close()
        if self.on_dark:
            self.on_dark()

    def _serve_tcp(self):
        while not self.stopping and not self.went_dark:
            try:
                conn, _ = self.tcp.accept()
            except (socket.timeout, OSError):
                continue
            with conn:
                try:
                    conn.settimeout(10)
                    head = _recv_exact(conn, 4)
                    request = head + _recv_exact(
                        conn, struct.unpack('>I', head)[0])
                    fate = self._fate(request)
                    if fate == 'swallow':
                        continue
                    reply = _exchange(self.kdc_port, request)
                    self.replies.append(reply)
                    if fate == 'pass':
                        offer = self._offer(reply, 4)
                        conn.sendall(reply)
                        if offer:
                            self._dark()
                except (OSError, EOFError):
                    pass

    def _serve_udp(self):
        while not self.stopping and not self.went_dark:
            try:
                data, client = self.udp.recvfrom(65536)
            except (socket.timeout, OSError):
                continue
            if len(data) >= UPLOAD_SIZE:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(5)
                try:
                    s.sendto(data, ('127.0.0.1', self.kdc_port))
                    reply = s.recvfrom(65536)[0]
                    offer = self._offer(reply, 0)
                    self.udp.sendto(reply, client)
                    if offer:
                        self._dark()
                except OSError:
                    pass

    def stop(self):
        self.stopping = True
        for t in self.threads:
            t.join(timeout=5)
        self.tcp.close()            # closing twice is harmless
        self.udp.close()


def locked_realm():
    """A realm whose service, once enrolled, requires preauthentication
    under a policy that locks it out after three failures."""
    r = Realm(pki=True)
    r.kadmin_local('addpol -maxfailure 3 -failurecountinterval 0 '
                   '-lockoutduration 0 lockpol')
    cert = r.server_cert(SVC)
    r.ktupdate(cert, expected_msg='stored kvno 1 ')
    r.kadmin_local('modprinc -policy lockpol +requires_preauth ' + SVC)
    return r, cert


def failed_attempts(r):
    out = r.kadmin_local('getprinc ' + SVC)
    m = re.search(r'^Failed password attempts: (\d+)$', out, re.M)
    if not m:
        fail('no failure count in getprinc:\n' + out)
    return int(m.group(1))


def service_logs_in(r):
    """kinit -k as the service with its keytab, as an initiator would: it
    works, and no failure was counted toward lockout."""
    out = r.run([KINIT, '-k', '-t', r.keytab, '-c', r.path('svc.ccache'),
                 SVC], expected_code=None)
    count = failed_attempts(r)
    if 'kinit:' in out or count != 0:
        fail('the service cannot log in with its keytab (%d failures '
             'counted toward lockout): %s' % (count, out.strip()))


def keytab_kvnos(r):
    out = subprocess.run([KLIST, '-k', r.keytab], env=r.env,
                         capture_output=True, text=True).stdout
    return {int(m.group(1)) for m in
            re.finditer(r'^\s*(\d+) %s$' % re.escape(SVC_FULL), out, re.M)}


def pending(r, cert):
    """The key versions --status shows as pending."""
    out = r.ktupdate(cert, '--status')
    return {int(m.group(1)) for m in
            re.finditer(r' kvno (\d+) \S+ expires \S+ \(pending\)$', out,
                        re.M)}


def through(r, proxy, cert, *args, **kw):
    try:
        return r.ktupdate(cert, *args, env=proxied_config(r, proxy), **kw)
    finally:
        proxy.stop()


def test_kdc_gone_before_the_upload_takes_the_key_out():
    # The KDC offers an upload, then stops before the upload can connect:
    # it never saw the new key, so the key must not stay for kinit -k.
    r, cert = locked_realm()
    proxy = ScriptedProxy(r.kdc_port, dark=True, on_dark=r.stop_kdc)
    out = through(r, proxy, cert, expected_code=5)
    if not proxy.went_dark:
        fail('the proxy never relayed a key request')
    r.start_kdc()
    for _ in range(3):      # as many as the policy allows failures
        service_logs_in(r)
    if keytab_kvnos(r) != {1} or pending(r, cert):
        fail('a key the KDC never saw stayed in the keytab: kvnos %s' %
             keytab_kvnos(r))
    if 'no KDC holds the new key: it is out of the keytab again' not in out:
        fail('the line does not say what became of the key:\n' + out)
    r.ktupdate(cert, expected_msg='stored kvno 2 ')


def test_kdc_gone_at_enrollment_keeps_the_only_key():
    # The keytab's only key cannot leave it (an empty keytab is no keytab),
    # and taking it out would help no initiator: it stays, and the next run
    # sends it.
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    proxy = ScriptedProxy(r.kdc_port, dark=True, on_dark=r.stop_kdc)
    through(r, proxy, cert, expected_code=5,
            expected_msg='no KDC holds the new key, which stays pending as '
            'the keytab\'s only key')
    r.start_kdc()
    out = r.ktupdate(cert, '--verbose', expected_msg='stored kvno 1 ')
    if 're-sending pending key version 1' not in out:
        fail('the pending key was not sent:\n' + out)


def test_key_that_cannot_leave_the_keytab_is_said():
    # The upload is refused, but by then the keytab cannot be rewritten (a
    # directory took its place while the upload was on its way): a line
    # says that the key no KDC holds could not be taken out.
    r, cert = locked_realm()
    wrong = r.server_cert(SVC, name='wrong-eku', eku=('client',))

    def break_keytab():
        os.rename(r.keytab, r.keytab + '.saved')
        os.mkdir(r.keytab)

    proxy = ScriptedProxy(r.kdc_port, on_upload=break_keytab)
    out = through(r, proxy, wrong, expected_code=4,
                  expected_msg='wrong-key-purpose')
    if 'no KDC holds the new key, which could not be taken out of the ' \
       'keytab: ' not in out:
        fail('the failed removal was not said:\n' + out)


def test_lost_replies_keep_the_key_the_kdc_holds():
    # Every reply to the upload is lost: the KDC holds the key, so it stays
    # pending (and is the one kinit -k must use), after a bounded number of
    # tries.
    r, cert = locked_realm()
    proxy = ScriptedProxy(r.kdc_port, uploads=['drop'] * 10)
    out = through(r, proxy, cert, '--verbose', expected_code=5,
                  expected_msg='the key stays pending')
    if proxy.fates != ['drop'] * TRIES:
        fail('expected %d tries of the upload, the proxy saw %s' %
             (TRIES, proxy.fates))
    if out.count('asking the KDC again') != TRIES - 1:
        fail('the upload was not asked again %d times:\n%s' %
             (TRIES - 1, out))
    if pending(r, cert) != {2}:
        fail('the key the KDC holds is not pending in the keytab')
    service_logs_in(r)
    r.ktupdate(cert, expected_msg='stored kvno 2 ')
    if pending(r, cert):
        fail('the key is still pending after the KDC acknowledged it')


def test_one_lost_reply_is_resolved_in_the_same_run():
    r, cert = locked_realm()
    proxy = ScriptedProxy(r.kdc_port, uploads=['drop'])
    out = through(r, proxy, cert, '--verbose',
                  expected_msg='stored kvno 2 ')
    if proxy.fates != ['drop', 'pass']:
        fail('expected one lost reply and one answer: %s' % proxy.fates)
    if 're-sending pending key version 2' not in out:
        fail('the same key was not re-sent:\n' + out)
    if pending(r, cert):
        fail('the key is still pending after the KDC acknowledged it')
    service_logs_in(r)


def test_a_key_left_pending_stays_while_the_kdc_is_down():
    # A run that cannot reach the KDC learns nothing about a key an earlier
    # run sent: it stays, and the first run that reaches the KDC settles it.
    r, cert = locked_realm()
    proxy = ScriptedProxy(r.kdc_port, uploads=['drop'] * 10)
    through(r, proxy, cert, expected_code=5,
            expected_msg='the key stays pending')
    r.stop_kdc()
    r.ktupdate(cert, expected_code=5, expected_msg='the key stays pending')
    if pending(r, cert) != {2}:
        fail('a key the KDC holds left the keytab while the KDC was down')
    r.start_kdc()
    service_logs_in(r)
    r.ktupdate(cert, expected_msg='stored kvno 2 ')


def test_a_stale_pending_key_the_kdc_forgot_does_not_wedge():
    # The first upload's replies are all lost, and the key expires and is
    # purged before the next run: the keytab holds only that pending key,
    # at the version the KDC now holds no key of.
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    proxy = ScriptedProxy(r.kdc_port, uploads=['drop'] * 10)
    through(r, proxy, cert, '--lifetime', '10s', expected_code=5,
            expected_msg='the key stays pending')
    if keytab_kvnos(r) != {1} or pending(r, cert) != {1}:
        fail('the keytab does not hold just the pending key')
    r.wait_for('the KDC to purge key version 1',
               lambda: not entry_keys(r.dump_entry(SVC_FULL)), timeout=60,
               step=0.5)
    r.ktupdate(cert, expected_msg='stored kvno 2 ')
    if keytab_kvnos(r) != {2} or pending(r, cert):
        fail('the stale key was not replaced: kvnos %s' % keytab_kvnos(r))
    r.ktupdate(cert, expected_msg='stored kvno 3 ')


def test_a_pending_key_the_kdc_holds_other_keys_for_does_not_wedge():
    # The uploads never reach the KDC, but ktupdate cannot know (the
    # connection closed after the request went out): the key stays.  Then
    # an administrator gives the principal that version with other keys.
    r, cert = locked_realm()
    proxy = ScriptedProxy(r.kdc_port, uploads=['swallow'] * 10)
    through(r, proxy, cert, expected_code=5,
            expected_msg='the key stays pending')
    if pending(r, cert) != {2}:
        fail('a key that may have reached the KDC left the keytab')
    r.set_key(SVC, '1h', r.path('admin.keytab'))
    out = r.ktupdate(cert, '--verbose', expected_msg='stored kvno 3 ')
    if 'kvno-not-above-stored' not in out:
        fail('the KDC\'s word on the stale key was not said:\n' + out)
    if keytab_kvnos(r) != {1, 3} or pending(r, cert):
        fail('the stale key was not taken out: kvnos %s' % keytab_kvnos(r))


def test_a_pending_only_key_the_kdc_moved_past_does_not_wedge():
    # The enrollment's upload may have reached the KDC (the connection
    # closed after it went out), so its key stays, the keytab's only one;
    # then an administrator stores two versions of other keys.  The next
    # run replaces the useless key with a fresh one in a single rewrite.
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    proxy = ScriptedProxy(r.kdc_port, uploads=['swallow'] * 10)
    through(r, proxy, cert, expected_code=5,
            expected_msg='the key stays pending')
    if keytab_kvnos(r) != {1} or pending(r, cert) != {1}:
        fail('the keytab does not hold just the pending key')
    r.kadmin_local('addprinc -nokey ' + SVC)
    for _ in range(2):
        r.set_key(SVC, '1h', r.path('admin.keytab'))
    r.ktupdate(cert, expected_msg='stored kvno 3 ')
    if keytab_kvnos(r) != {3} or pending(r, cert):
        fail('the useless key was not replaced: kvnos %s' % keytab_kvnos(r))


def test_local_failure_after_the_key_was_written_takes_it_out():
    # The new key is in the keytab, but its record cannot be written (a
    # directory is in the way): nothing is sent, and the key goes again.
    r, cert = locked_realm()
    records = r.keytab + '.tempkey'
    os.unlink(records)
    os.mkdir(records)
    r.ktupdate(cert, expected_code=1,
               expected_msg='cannot prepare the new key')
    service_logs_in(r)
    if keytab_kvnos(r) != {1}:
        fail('an unsent key stayed in the keytab: kvnos %s' %
             keytab_kvnos(r))
    os.rmdir(records)
    r.ktupdate(cert, expected_msg='stored kvno 2 ')


Tests().run(test_kdc_gone_before_the_upload_takes_the_key_out,
            test_kdc_gone_at_enrollment_keeps_the_only_key,
            test_key_that_cannot_leave_the_keytab_is_said,
            test_lost_replies_keep_the_key_the_kdc_holds,
            test_one_lost_reply_is_resolved_in_the_same_run,
            test_a_key_left_pending_stays_while_the_kdc_is_down,
            test_a_stale_pending_key_the_kdc_forgot_does_not_wedge,
            test_a_pending_key_the_kdc_holds_other_keys_for_does_not_wedge,
            test_a_pending_only_key_the_kdc_moved_past_does_not_wedge,
            test_local_failure_after_the_key_was_written_takes_it_out)
