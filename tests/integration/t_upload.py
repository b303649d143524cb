"""Servers enroll and rotate their keys with ktupdate; users' tickets carry
the new key's kvno and never outlive it; old tickets keep working until
they expire."""

import re
import time

import pki
from realm import (Realm, Tests, fail, entry_keys, klist_times, parse_iso,
                   KTUPDATE, KVNO, KDESTROY, KLIST, KDB5_UTIL, PASSWORD,
                   REALM, TK_UPLOAD)

SVC = 'HTTP/www.test'
SVC_FULL = SVC + '@' + REALM


def stored(out):
    """(kvno, expiry) from ktupdate's result line."""
    m = re.search(r' stored kvno (\d+) expires (\S+) enctypes (\S+) '
                  r'keytab (\S+)', out)
    if not m:
        fail('unexpected ktupdate output: ' + out)
    return int(m.group(1)), parse_iso(m.group(2))


def user_ticket(r, kvno):
    r.run([KDESTROY])
    r.kinit('user', 'user-pw')
    r.run([KVNO, SVC], expected_msg='%s: kvno = %d' % (SVC_FULL, kvno))


def test_enroll_without_prior_configuration():
    r = Realm(pki=True)
    r.addprinc('user', 'user-pw')
    cert = r.server_cert(SVC)
    out = r.ktupdate(cert, '--lifetime', '1h')
    kvno, expiry = stored(out)
    if kvno != 1 or not 3590 < expiry - time.time() <= 3600:
        fail('first key should be kvno 1 for an hour: ' + out)
    if 'enctypes aes256-cts-hmac-sha1-96,aes128-cts-hmac-sha1-96 ' not in out:
        fail('default enctypes not uploaded: ' + out)
    r.tempkey_admin('show', SVC, expected_msg=cert.cert_sha256())
    r.kadmin_local('getstrs ' + SVC, expected_msg='tempkey: 1')
    user_ticket(r, 1)
    r.run([KVNO, '-k', r.keytab, SVC], expected_msg='keytab entry valid')
    if klist_times(r)[SVC_FULL][1] > expiry:
        fail('ticket outlives the uploaded key')
    if 'stored kvno 1 of %s' % SVC_FULL not in r.kdc_log_text():
        fail('the KDC log does not record the upload')


def test_three_rotations():
    # A 2-second clock skew lets ktupdate prune expired keys soon.
    r = Realm(pki=True, purge_interval='2s',
              libdefaults_extra='    clockskew = 2')
    r.addprinc('user', 'user-pw')
    cert = r.server_cert(SVC)
    expiries = {}
    caches = {}
    for kvno in (1, 2, 3, 4):
        got, expiries[kvno] = stored(r.ktupdate(cert, '--lifetime', '25s'))
        if got != kvno:
            fail('expected kvno %d, ktupdate stored %d' % (kvno, got))
        user_ticket(r, kvno)
        if klist_times(r)[SVC_FULL][1] > expiries[kvno]:
            fail('ticket in kvno %d outlives its key' % kvno)
        caches[kvno] = r.path('cc%d' % kvno)
        r.run(['cp', r.ccache, caches[kvno]])
        # Every ticket issued so far still verifies with the keytab.
        for old in caches:
            env = dict(r.env, KRB5CCNAME='FILE:' + caches[old])
            r.run([KVNO, '-k', r.keytab, SVC], env=env,
                  expected_msg='kvno = %d, keytab entry valid' % old)
    # After kvno 1 expires the KDC forgets it within its purge interval,
    # and never keeps an expired key longer than that (plus slack).
    promise = 2 + 8

    def kvno1_gone():
        now = time.time()
        kvnos = {k[0] for k in entry_keys(r.dump_entry(SVC_FULL))}
        for k in kvnos:
            if expiries[k] + promise < now:
                fail('kvno %d is still stored %.0f s after it expired' %
                     (k, now - expiries[k]))
        return 1 not in kvnos
    r.wait_for('kvno 1 to leave the database', kvno1_gone, timeout=60,
               step=0.5)
    # The next rotation drops kvno 1 from the keytab (its expiry and the
    # clock skew have passed) and keeps the others.
    r.wait_for('kvno 1 to be past use',
               lambda: time.time() > expiries[1] + 2 + 1)
    got, _ = stored(r.ktupdate(cert, '--lifetime', '25s'))
    listing = r.run([KLIST, '-k', r.keytab])
    kt_kvnos = sorted({int(m) for m in re.findall(r'^\s+(\d+) ', listing,
                                                  re.M)})
    if 1 in kt_kvnos or 5 not in kt_kvnos:
        fail('keytab should hold kvnos 2-5, holds %r' % kt_kvnos)


def test_pinned_public_key_without_a_ca():
    r = Realm(pki=True)
    r.addprinc('user', 'user-pw')
    svc = 'HTTP/pinned.test'
    own = pki.self_signed(r.path('pki'), 'pinned', principal=svc + '@' +
                          REALM)
    r.kadmin_local('addprinc -nokey ' + svc)
    r.kadmin_local('setstr %s tempkey 1' % svc)
    r.kadmin_local('setstr %s tempkey_spki %s' % (svc, own.spki_sha256()))
    stored(r.ktupdate(own, '--principal', svc))
    r.kinit('user', 'user-pw')
    r.run([KVNO, '-k', r.keytab, svc], expected_msg='keytab entry valid')


def test_intermediate_ca_from_the_pool():
    r = Realm(pki=True, start_kdc=False)
    sub = pki.CA(r.path('pki'), 'Sub CA', parent=r.ca)
    r.realm_extra += '        pkinit_pool = FILE:%s\n' % sub.cert_pem
    r.write_config()
    r.start_kdc()
    leaf = sub.issue('leaf', principal=SVC_FULL)
    # Only the leaf is sent: the KDC finds the intermediate in its pool.
    r.run([KTUPDATE, '--cert', leaf.cert_pem, '--key', leaf.key_pem,
           '--anchors', r.ca.cert_pem, '--keytab', r.keytab],
          expected_msg='stored kvno 1')


def test_chains_with_and_without_the_root():
    # Clients send the chain without its root (the KDC has the anchor); an
    # upload that carries the root, as the previous version sent it, is
    # accepted too.
    r = Realm(pki=True)
    sub = pki.CA(r.path('pki'), 'Sub CA', parent=r.ca)
    leaf = sub.issue('leaf', principal=SVC_FULL)
    r.run([KTUPDATE, '--cert', leaf.chain_pem, '--key', leaf.key_pem,
           '--anchors', r.ca.cert_pem, '--keytab', r.keytab],
          expected_msg='stored kvno 1')
    r.run([TK_UPLOAD, '--cert', leaf.chain_pem, '--key', leaf.key_pem,
           '--anchors', r.ca.cert_pem, '--principal', SVC_FULL,
           '--send-cert', r.ca.cert_pem], expected_msg='stored kvno 2')
    rsa = Realm(pki=True, pki_keytype='rsa')
    cert = rsa.server_cert(SVC, keytype='rsa')
    rsa.run([TK_UPLOAD, '--cert', cert.chain_pem, '--key', cert.key_pem,
             '--anchors', rsa.ca.cert_pem, '--principal', SVC_FULL,
             '--send-cert', rsa.ca.cert_pem], expected_msg='stored kvno 1')


def test_rsa_certificates():
    r = Realm(pki=True, pki_keytype='rsa')
    r.addprinc('user', 'user-pw')
    stored(r.ktupdate(r.server_cert(SVC, keytype='rsa')))
    user_ticket(r, 1)
    r.run([KVNO, '-k', r.keytab, SVC], expected_msg='keytab entry valid')


def test_misconfigured_module_is_reported():
    r = Realm(pki=True, start_kdc=False)
    cert = r.server_cert(SVC)
    good = r.realm_extra
    for setting, expected in (
            ('pkinit_identity', 'needs pkinit_identity and pkinit_anchors'),
            ('tempkey_eku', 'tempkey_eku "1.2.x" is not pkinit, client, '
             'none or an OID')):
        if setting == 'pkinit_identity':
            r.realm_extra = re.sub(r'.*pkinit_identity.*\n', '', good)
        else:
            r.realm_extra = good + '        tempkey_eku = 1.2.x\n'
        r.write_config()
        r.start_kdc()
        log = r.kdc_log_text()
        if 'preauth tempkey failed to initialize' not in log or \
                expected not in log:
            fail('the KDC log does not report the broken %s' % setting)
        # The KDC serves on, without the mechanism.
        r.ktupdate(cert, expected_code=4,
                   expected_msg='offers no tempkey upload')
        r.stop_kdc()
        open(r.kdc_log, 'w').close()


def test_upload_ticket_ends_with_the_new_key():
    # The TGT an upload exchange returns was proved by the new key alone.
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    out = r.run([TK_UPLOAD, '--cert', cert.chain_pem, '--key', cert.key_pem,
                 '--anchors', r.ca.cert_pem, '--principal', SVC_FULL,
                 '--lifetime', '2m'])
    m = re.search(r'stored kvno 1 expires (\S+) ticket-ends (\S+) '
                  r'renew-till (\S+)', out)
    if not m:
        fail('unexpected tk-upload output: ' + out)
    expiry = parse_iso(m.group(1))
    if parse_iso(m.group(2)) > expiry or (m.group(3) != 'none' and
                                          parse_iso(m.group(3)) > expiry):
        fail('the upload\'s ticket outlives the new key: ' + out)


def test_enrolling_names_exist_only_for_the_upload():
    # A name that may enroll but has not: the KDC's in-memory entry for it
    # serves the upload exchange and nothing else.
    r = Realm(pki=True)
    r.addprinc('user', 'user-pw')
    stored(r.ktupdate(r.server_cert(SVC)))
    # A certificate for a name that may enroll but never did logs in by
    # PKINIT no more than a password would.
    never = r.server_cert('HTTP/never.test')
    r.run(['/usr/bin/kinit', '-X', 'X509_user_identity=FILE:%s,%s' %
           (never.chain_pem, never.key_pem), '-X',
           'X509_anchors=FILE:' + r.ca.cert_pem, '-c', r.path('p.ccache'),
           'HTTP/never.test'], expected_code=1,
          expected_msg='not found in Kerberos database')
    if 'CLIENT_NOT_FOUND (tempkey: an enrolling name is only for the ' \
            'upload exchange)' not in r.kdc_log_text():
        fail('the KDC log does not show the refused PKINIT login')
    # The same certificate still enrolls the name by an upload.
    stored(r.ktupdate(never, keytab=r.path('never.keytab')))
    # The same service name in a foreign realm (an enterprise name, which
    # the KDC looks up as HTTP/www.test@OTHER.TEST) is not ours to create.
    r.run(['/usr/bin/kinit', '-E', '-c', r.path('x.ccache'),
           'HTTP/new.test@OTHER.TEST'], input='pw\n', expected_code=1,
          expected_msg='not found in Kerberos database')


def test_password_lifetime_of_a_policy_does_not_apply():
    # A managed principal made under a policy with a password lifetime
    # (kadmin sets its pw_expiration) keeps uploading once it passes.
    r = Realm(pki=True)
    r.addprinc('user', 'user-pw')
    r.kadmin_local('addpol -maxlife 2s shortpw')
    start = time.time()
    r.kadmin_local('addprinc -nokey -policy shortpw ' + SVC)
    r.kadmin_local('setstr %s tempkey 1' % SVC)
    if 'Password expiration date: [never]' in r.kadmin_local('getprinc ' +
                                                             SVC):
        fail('the policy set no password expiration: nothing is tested')
    r.wait_for('the password lifetime to pass',
               lambda: time.time() > start + 3)
    stored(r.ktupdate(r.server_cert(SVC)))
    stored(r.ktupdate(r.server_cert(SVC)))
    user_ticket(r, 2)


def test_a_broken_realm_leaves_the_other_realms_working():
    # One krb5kdc serving two tempkey realms, the second without
    # pkinit_identity: that realm is reported and offers no uploads, the
    # first works as before.
    r = Realm(pki=True, start_kdc=False)
    other = 'OTHER.TEST'
    with open(r.path('kdc.conf')) as f:
        conf = f.read()
    conf = conf.replace('[dbmodules]\n', """    %s = {
        database_module = tk2
        database_name = %s
        key_stash_file = %s
        acl_file = %s
        iprop_enable = false
        max_life = 10h
    }
[dbmodules]
    tk2 = {
        db_library = tempkey
        backing_module = main2
        purge_interval = 1h
    }
    main2 = {
        db_library = db2
        database_name = %s
    }
""" % (other, r.path('principal2'), r.path('stash2'), r.path('kadm5.acl'),
       r.path('principal2')),
                        1)
    with open(r.path('kdc.conf'), 'w') as f:
        f.write(conf)
    r.run([KDB5_UTIL, '-r', other, 'create', '-s', '-P', PASSWORD])
    r.start_kdc('-r', REALM, '-r', other)
    r.wait_for('the broken realm reported', lambda: 'realm %s: '
               'tempkey: [realms] %s needs pkinit_identity and '
               'pkinit_anchors; no uploads in this realm' % (other, other)
               in r.kdc_log_text())
    if 'preauth tempkey failed to initialize' in r.kdc_log_text():
        fail('one broken realm disabled the module for every realm')
    r.addprinc('user', 'user-pw')
    stored(r.ktupdate(r.server_cert(SVC)))
    user_ticket(r, 1)


Tests().run(test_enroll_without_prior_configuration,
            test_three_rotations,
            test_pinned_public_key_without_a_ca,
            test_intermediate_ca_from_the_pool,
            test_chains_with_and_without_the_root,
            test_rsa_certificates,
            test_misconfigured_module_is_reported,
            test_a_broken_realm_leaves_the_other_realms_working,
            test_upload_ticket_ends_with_the_new_key,
            test_password_lifetime_of_a_policy_does_not_apply,
            test_enrolling_names_exist_only_for_the_upload)
