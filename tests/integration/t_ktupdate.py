"""ktupdate on the server: it trusts only a KDC its anchors vouch for, keeps
the keytab consistent whatever the KDC answers (or fails to), leaves other
principals alone, and runs as a daemon."""

import os
import re
import signal
import subprocess
import time

import pki
from kdcproxy import KDCProxy, proxied_config
from realm import (Realm, Tests, fail, KLIST, KTUPDATE, KVNO, REALM)

SVC = 'HTTP/www.test'
SVC_FULL = SVC + '@' + REALM


def keytab_listing(r, path=None):
    return r.run([KLIST, '-k', '-K', path or r.keytab])


def test_untrusted_kdc_refused_before_any_upload():
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    other = pki.CA(r.path('pki'), 'Not the KDC CA')
    before = r.dump()
    r.run([KTUPDATE, '--cert', cert.chain_pem, '--key', cert.key_pem,
           '--anchors', other.cert_pem, '--keytab', r.keytab],
          expected_code=3,
          expected_msg="the KDC's certificate is not trusted")
    if os.path.exists(r.keytab):
        fail('a keytab was written for an untrusted KDC')
    log = r.kdc_log_text()
    if 'stored kvno' in log or 'refused upload' in log:
        fail('something was uploaded to an untrusted KDC')
    if r.dump() != before:
        fail('the database changed')


def test_refused_upload_leaves_the_keytab_as_it_was():
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    r.ktupdate(cert, expected_msg='stored kvno 1')
    before = keytab_listing(r)
    with open(r.keytab + '.tempkey') as f:
        records = f.read()
    wrong = r.server_cert(SVC, name='wrong-eku', eku=('client',))
    r.ktupdate(wrong, expected_code=4,
               expected_msg='the KDC refused the upload: wrong-key-purpose')
    if keytab_listing(r) != before:
        fail('a refused upload changed the keytab')
    with open(r.keytab + '.tempkey') as f:
        if f.read() != records:
            fail('a refused upload changed the key records')


def test_lost_reply_then_convergence():
    r = Realm(pki=True)
    r.addprinc('user', 'user-pw')
    cert = r.server_cert(SVC)
    proxy = KDCProxy(r.kdc_port, mode='drop')
    try:
        r.ktupdate(cert, '--verbose', env=proxied_config(r, proxy),
                   expected_code=5, expected_msg='the key stays pending')
    finally:
        proxy.stop()
    if 'stored kvno 1 of ' + SVC_FULL not in r.kdc_log_text():
        fail('the KDC did not store the key whose reply was lost')
    # The server can already read tickets in the key the KDC holds.
    r.kinit('user', 'user-pw')
    r.run([KVNO, '-k', r.keytab, SVC],
          expected_msg='kvno = 1, keytab entry valid')
    r.ktupdate(cert, '--status', expected_msg='(pending)')
    # The next run re-sends that same key, which the KDC accepts again.
    out = r.ktupdate(cert, '--verbose', expected_msg='stored kvno 1 ')
    if 're-sending pending key version 1' not in out:
        fail('the pending key was not re-sent')
    status = r.ktupdate(cert, '--status')
    if '(pending)' in status:
        fail('the key is still pending after the KDC acknowledged it')
    r.ktupdate(cert, expected_msg='stored kvno 2 ')


def lose_first_reply(r, cert):
    """An upload of kvno 1 whose reply is lost: the KDC holds the key, the
    keytab has it pending."""
    proxy = KDCProxy(r.kdc_port, mode='drop')
    try:
        r.ktupdate(cert, env=proxied_config(r, proxy), expected_code=5,
                   expected_msg='the key stays pending')
    finally:
        proxy.stop()


def test_resend_under_a_renewed_certificate_is_accepted():
    # The certificate was renewed between the lost reply and the next run:
    # the same keys signed by the new certificate are what the KDC holds.
    r = Realm(pki=True)
    r.addprinc('user', 'user-pw')
    lose_first_reply(r, r.server_cert(SVC))
    renewed = r.server_cert(SVC, name='renewed')
    r.ktupdate(renewed, expected_msg='stored kvno 1 ')
    r.kinit('user', 'user-pw')
    r.run([KVNO, '-k', r.keytab, SVC],
          expected_msg='kvno = 1, keytab entry valid')


def test_refused_resend_keeps_a_key_the_kdc_holds():
    # A re-send refused for another reason (here the key purpose) must not
    # take out of the keytab a key the KDC already holds and may encrypt
    # tickets in.
    r = Realm(pki=True)
    r.addprinc('user', 'user-pw')
    lose_first_reply(r, r.server_cert(SVC))
    wrong = r.server_cert(SVC, name='wrong-eku', eku=('client',))
    r.ktupdate(wrong, expected_code=4,
               expected_msg='the KDC refused the upload: wrong-key-purpose')
    r.kinit('user', 'user-pw')
    r.run([KVNO, '-k', r.keytab, SVC],
          expected_msg='kvno = 1, keytab entry valid')
    r.ktupdate(wrong, '--status', expected_msg='(pending)')


def test_other_principals_entries_are_kept():
    r = Realm(pki=True)
    r.addprinc('host/other.test')
    r.kadmin_local('ktadd -k %s host/other.test' % r.keytab)
    other = [l for l in keytab_listing(r).splitlines() if 'host/other' in l]
    cert = r.server_cert(SVC)
    for _ in range(3):
        r.ktupdate(cert, '--lifetime', '1h')
    now = [l for l in keytab_listing(r).splitlines() if 'host/other' in l]
    if now != other or not other:
        fail('ktupdate changed another principal\'s keytab entries')
    if os.stat(r.keytab).st_mode & 0o077:
        fail('the keytab is readable by others')


def test_dry_run_changes_nothing():
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    before = r.dump()
    r.ktupdate(cert, '--dry-run', expected_msg='dry run')
    if os.path.exists(r.keytab) or r.dump() != before:
        fail('--dry-run wrote something')
    r.ktupdate(cert, expected_msg='stored kvno 1')
    listing = keytab_listing(r)
    before = r.dump()
    r.ktupdate(cert, '--dry-run', expected_msg='would upload key version 2')
    if keytab_listing(r) != listing or r.dump() != before:
        fail('--dry-run wrote something')


def test_daemon_refreshes_and_stops_on_sigterm():
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    log = open(r.path('daemon.log'), 'w')
    proc = subprocess.Popen(
        [KTUPDATE, '--cert', cert.chain_pem, '--key', cert.key_pem,
         '--anchors', r.ca.cert_pem, '--keytab', r.keytab, '--lifetime',
         '6s', '--daemon'], env=r.env, stdout=log, stderr=subprocess.STDOUT)
    r.daemons.append(proc)
    try:
        # Refresh comes at two thirds of the key's life: kvno 3 within
        # about 10 s.
        r.wait_for('three keys from the daemon',
                   lambda: 'stored kvno 3 of' in r.kdc_log_text(),
                   timeout=40, step=0.5)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=15)
    finally:
        r.stop_daemon(proc)
        log.close()
    if code != 0:
        fail('the daemon exited %d on SIGTERM' % code)
    with open(r.path('daemon.log')) as f:
        out = f.read()
    if len(re.findall(r'stored kvno \d+ expires', out)) < 3:
        fail('the daemon did not report its refreshes:\n' + out)


def test_status_and_usage_errors():
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    r.ktupdate(cert, '--lifetime', '1h')
    r.ktupdate(cert, '--status', expected_msg='%s kvno 1 aes256' % SVC_FULL)
    r.run([KTUPDATE, '--keytab', r.keytab], expected_code=2,
          expected_msg='usage:')
    r.ktupdate(cert, '--lifetime', 'soon', expected_code=2,
               expected_msg='--lifetime: "soon" is not a positive')
    r.ktupdate(cert, '--enctypes', 'rot13', expected_code=2,
               expected_msg='"rot13" is not a supported enctype')
    r.run([KTUPDATE, '--cert', r.path('missing.pem'), '--keytab', r.keytab,
           '--anchors', r.ca.cert_pem], expected_code=1,
          expected_msg='cannot read')
    r.run([KTUPDATE, '--cert', cert.chain_pem, '--key', cert.key_pem,
           '--keytab', r.keytab], expected_code=1,
          expected_msg='no trust anchors for the KDC')
    r.stop_kdc()
    r.ktupdate(cert, expected_code=5, expected_msg='cannot reach the KDC')


def test_local_failure_sends_nothing():
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    before = r.dump()
    # A keytab that cannot be locked: nothing is even asked of the KDC.
    r.ktupdate(cert, keytab=r.path('no', 'such', 'keytab'), expected_code=1,
               expected_msg='cannot lock the keytab: cannot lock keytab with '
               '%s.lock: No such file or directory' %
               r.path('no', 'such', 'keytab'))
    # One that cannot take the new key (a directory is no keytab).
    os.mkdir(r.path('a-directory'))
    r.ktupdate(cert, keytab=r.path('a-directory'), expected_code=1,
               expected_msg='cannot prepare the new key')
    if 'stored kvno' in r.kdc_log_text() or r.dump() != before:
        fail('a key was uploaded although the keytab could not take it')


def test_self_test_failure():
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    r.ktupdate(cert)
    # The KDC now refuses tickets to the service: the key is stored, but
    # the self-test cannot read a new ticket with it.
    r.kadmin_local('modprinc -allow_svr ' + SVC)
    r.ktupdate(cert, expected_code=6, expected_msg='self-test failed')


def keytab_kvnos(r, path, princ):
    out = subprocess.run([KLIST, '-k', path], env=r.env,
                         capture_output=True, text=True).stdout
    return {int(m.group(1)) for m in
            re.finditer(r'^\s*(\d+) %s$' % re.escape(princ), out, re.M)}


def test_concurrent_runs_on_one_keytab_keep_every_key():
    # host/ and HTTP/ of one host share a keytab and their timers fire
    # together: each run must find the other's keys, pending or stored,
    # when it rewrites the keytab.
    r = Realm(pki=True, purge_interval='1h')
    names = ['HTTP/both.test', 'host/both.test']
    certs = [r.server_cert(n) for n in names]
    for rnd in range(1, 9):
        procs = [subprocess.Popen(
            [KTUPDATE, '--cert', c.chain_pem, '--key', c.key_pem,
             '--anchors', r.ca.cert_pem, '--keytab', r.keytab],
            env=r.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True) for c in certs]
        for p in procs:
            out, _ = p.communicate(timeout=120)
            if p.returncode != 0:
                fail('a concurrent run failed: ' + out)
        for n in names:
            if rnd not in keytab_kvnos(r, r.keytab, n + '@' + REALM):
                fail('round %d: the keytab lacks %s kvno %d, which the KDC '
                     'holds' % (rnd, n, rnd))
    st = os.stat(r.keytab + '.tempkey')
    if st.st_mode & 0o077:
        fail('the key records are readable by others: %o' % st.st_mode)
    leftovers = [f for f in os.listdir(r.dir) if '.tempkey.' in f or
                 re.search(r'keytab\.tk-', f)]
    if leftovers:
        fail('temporary files were left behind: %s' % leftovers)


def test_a_host_keytab_holds_a_days_records():
    # Three services in one keytab, each with a day's worth of hourly keys
    # (about 25 versions): the records of all of them fit.
    r = Realm(pki=True, purge_interval='1h', enroll='*/h.test')
    names = ['HTTP/h.test', 'host/h.test', 'ldap/h.test']
    certs = [r.server_cert(n) for n in names]
    for _ in range(25):
        for c in certs:
            r.ktupdate(c, '--lifetime', '1h')
    for n in names:
        if keytab_kvnos(r, r.keytab, n + '@' + REALM) != set(range(1, 26)):
            fail('the keytab lacks some of %s\'s 25 keys' % n)


def test_kdc_refusal_before_any_offer_is_told_as_it_is():
    # A disabled principal is refused before any key request: ktupdate says
    # so in the KDC's words rather than blaming enrollment.
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    r.ktupdate(cert, expected_msg='stored kvno 1')
    r.kadmin_local('modprinc -allow_tix ' + SVC)
    r.ktupdate(cert, expected_code=4,
               expected_msg='the KDC refused the exchange before offering '
               'an upload: Client\'s credentials have been revoked')


def test_symlinked_keytab_keeps_its_link():
    r = Realm(pki=True, purge_interval='1h')
    cert = r.server_cert(SVC)
    os.mkdir(r.path('keys'))
    target = r.path('keys', 'real.keytab')
    link = r.path('link.keytab')
    r.ktupdate(cert, keytab=target, expected_msg='stored kvno 1')
    os.symlink(target, link)
    r.ktupdate(cert, keytab=link, expected_msg='stored kvno 2')
    if not os.path.islink(link) or os.readlink(link) != target:
        fail('the keytab link was replaced by a file')
    if keytab_kvnos(r, target, SVC_FULL) != {1, 2}:
        fail('the link\'s target does not hold both keys')
    # The records and the lock are the target's, whichever name a run used.
    if os.path.exists(link + '.tempkey'):
        fail('records were kept beside the link, not the keytab')
    r.ktupdate(cert, keytab=target, expected_msg='stored kvno 3')
    if keytab_kvnos(r, target, SVC_FULL) != {1, 2, 3}:
        fail('runs through the link and the file disagree on the records')


Tests().run(test_untrusted_kdc_refused_before_any_upload,
            test_refused_upload_leaves_the_keytab_as_it_was,
            test_lost_reply_then_convergence,
            test_other_principals_entries_are_kept,
            test_dry_run_changes_nothing,
            test_daemon_refreshes_and_stops_on_sigterm,
            test_status_and_usage_errors,
            test_local_failure_sends_nothing,
            test_self_test_failure,
            test_concurrent_runs_on_one_keytab_keep_every_key,
            test_resend_under_a_renewed_certificate_is_accepted,
            test_refused_resend_keeps_a_key_the_kdc_holds,
            test_symlinked_keytab_keeps_its_link,
            test_a_host_keytab_holds_a_days_records,
            test_kdc_refusal_before_any_offer_is_told_as_it_is)
