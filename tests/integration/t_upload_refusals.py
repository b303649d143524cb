"""Every check the KDC makes on an upload, each provoked by an upload that
fails only that check: the reason reaches the client, the KDC logs one line,
the database is unchanged, and the KDC serves the next request."""

import datetime
import os
import re

import pki
from realm import (Realm, Tests, fail, KVNO, KDESTROY, REALM, TK_UPLOAD)

SVC = 'HTTP/www.test'
SVC_FULL = SVC + '@' + REALM
_realm = None


def realm():
    """One realm for all these tests: a managed service already at kvno 1,
    an unmanaged service to show the KDC still serves, a CRL."""
    global _realm
    if _realm is None:
        r = Realm(pki=True, realm_extra='        tempkey_max_life = 2h\n')
        r.addprinc('user', 'user-pw')
        r.addprinc('host/canary.unmanaged')
        r.good = r.server_cert(SVC)
        r.ktupdate(r.good, '--lifetime', '1h')
        r.revoked = r.server_cert(SVC, name='revoked')
        r.ca.revoke(r.revoked)
        r.realm_extra += '        pkinit_revoke = FILE:%s\n' % r.ca.crl()
        r.write_config()
        r.stop_kdc()
        r.start_kdc()
        _realm = r
    return _realm


def upload(cert, *args, principal=SVC_FULL, code=4, msg=None):
    r = realm()
    return r.run([TK_UPLOAD, '--cert', cert.chain_pem, '--key', cert.key_pem,
                  '--anchors', r.ca.cert_pem, '--principal', principal] +
                 list(args), expected_code=code, expected_msg=msg)


def refused(reason, cert=None, *args, principal=SVC_FULL):
    """Upload with a fault; check the reason, the log, the database, and
    that the KDC goes on serving."""
    r = realm()
    cert = cert or r.good
    before = r.dump()
    log_before = len(r.kdc_log_text())
    out = upload(cert, *args, principal=principal,
                 msg='refused %s:' % reason)
    # What an unauthenticated peer reads is the reason's fixed text, never
    # the verifier's or OpenSSL's words.
    if re.search(r'error:[0-9A-F]{8}|routines|depth \d', out):
        fail('the client was told the KDC\'s internal detail: ' + out)
    log = r.kdc_log_text()[log_before:]
    line = 'refused upload for %s signed by' % principal
    if line not in log or (': %s: ' % reason) not in log:
        fail('the KDC log does not record the %s refusal:\n%s' % (reason,
                                                                  log))
    if r.dump() != before:
        fail('a refused upload (%s) changed the database' % reason)
    if r.kdc.poll() is not None:
        fail('the KDC died')
    r.run([KDESTROY])
    r.kinit('user', 'user-pw')
    r.run([KVNO, 'host/canary.unmanaged'], expected_msg='kvno = 1')


def test_good_upload_is_stored():
    upload(realm().good, code=0, msg='stored kvno 2')


def test_certificate_from_another_ca():
    other = pki.CA(realm().path('pki'), 'Other CA')
    refused('untrusted-certificate', other.issue('x', principal=SVC_FULL))


def test_expired_certificate():
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = realm().server_cert(SVC, name='expired',
                               not_before=now - datetime.timedelta(days=2),
                               not_after=now - datetime.timedelta(days=1))
    refused('certificate-expired', cert)


def test_revoked_certificate():
    refused('certificate-revoked', realm().revoked)


def test_wrong_key_purpose():
    refused('wrong-key-purpose',
            realm().server_cert(SVC, name='clientauth', eku=('client',)))


def test_missing_key_purpose():
    refused('wrong-key-purpose', realm().server_cert(SVC, name='noeku',
                                                     eku=()))


def test_certificate_names_another_principal():
    # A server must never be able to set another server's key.
    refused('name-mismatch',
            realm().server_cert('HTTP/other.test', name='other-san'))


def test_upload_names_another_principal():
    refused('name-mismatch', None, '--fault', 'other-principal')


def test_signature_by_another_key():
    refused('bad-signature', None, '--fault', 'bad-signature')


def test_encrypted_to_another_kdc():
    r = realm()
    other = pki.CA(r.path('pki'), 'Other KDC CA')
    kdc2 = other.issue('kdc2', principal='krbtgt/%s@%s' % (REALM, REALM),
                       kdc=True)
    refused('not-for-this-kdc', None, '--fault', 'other-kdc',
            '--other-cert', kdc2.cert_pem)


def test_kdc_hash_mismatch():
    refused('kdc-certificate-mismatch', None, '--fault', 'kdc-hash')


def test_missing_freshness_token():
    refused('stale-freshness-token', None, '--fault', 'no-token')


def test_request_checksum_mismatch():
    refused('request-checksum-mismatch', None, '--fault', 'checksum')


def test_kvno_not_above_stored():
    # A replay of an earlier valid upload carries an old kvno.
    refused('kvno-not-above-stored', None, '--kvno', '1')


def test_kvno_jump():
    # Only the next version is accepted: one upload at 65535 would
    # otherwise exhaust the principal.
    refused('kvno-not-next', None, '--kvno', '65535')


def test_expiry_beyond_max_life():
    refused('expiry-not-allowed', None, '--fault', 'expiry')


def test_disallowed_enctype():
    refused('enctype-not-allowed', None, '--enctype', 'camellia128-cts-cmac')


def test_wrong_key_length():
    refused('bad-key-length', None, '--fault', 'short-key')


def test_empty_der():
    refused('malformed', None, '--fault', 'empty')


def test_truncated_der():
    refused('malformed', None, '--fault', 'truncated')


def test_garbage_der():
    refused('malformed', None, '--fault', 'garbage')


def test_oversized_der():
    refused('message-too-large', None, '--fault', 'oversized')


# DESIGN section 12: hostile input is bounded before it costs the KDC work.

def test_too_many_certificates():
    # A chain of 10 CAs: 11 certificates in the SignedData (the root is
    # not sent), above 8.
    r = realm()
    cas = pki.ca_chain(r.ca, 10, name='Deep CA')
    refused('too-many-certificates', cas[-1].issue('deep',
                                                   principal=SVC_FULL))


def test_chain_too_long():
    # 4 intermediates are allowed; 5 are refused, though 6 certificates
    # are within the count.
    r = realm()
    cas = pki.ca_chain(r.ca, 5, name='Long CA')
    upload(cas[3].issue('four', principal=SVC_FULL), code=0,
           msg='stored kvno')
    refused('chain-too-long', cas[4].issue('five', principal=SVC_FULL))


def test_rsa_key_too_large():
    # Above 4096 bits (8192 would do too, but takes long to generate).
    refused('key-too-large',
            realm().server_cert(SVC, name='rsa5120', keytype='rsa:5120'))


def test_too_many_names():
    names = [SVC_FULL] + ['HTTP/n%d.test@%s' % (i, REALM) for i in range(16)]
    ca = realm().ca
    refused('too-many-names', ca.issue('many-names', principal=names))
    # 16 are fine.
    upload(ca.issue('16-names', principal=names[:16]), code=0,
           msg='stored kvno')


def test_refusal_text_is_generic():
    # The client reads one fixed sentence per reason; the KDC log keeps
    # what the verifier and OpenSSL said.
    r = realm()
    other = pki.CA(r.path('pki'), 'Stranger CA')
    for reason, cert, args, text, detail in (
            ('untrusted-certificate', other.issue('y', principal=SVC_FULL),
             (), 'the certificate chain was not verified',
             # The client sends no root: the stranger's leaf has no issuer
             # the KDC knows.
             'unable to get local issuer certificate at depth 0 (/CN=y)'),
            ('bad-signature', r.good, ('--fault', 'bad-signature'),
             'the signature did not verify', 'CMS routines')):
        mark = len(r.kdc_log_text())
        out = upload(cert, *args, msg='refused %s: the KDC refused the '
                     'upload: %s: %s\n' % (reason, reason, text))
        if detail in out:
            fail('the client was told the detail %r' % detail)
        if detail not in r.kdc_log_text()[mark:]:
            fail('the KDC log lacks the detail %r' % detail)


def test_pinned_key_mismatch():
    r = realm()
    r.kadmin_local('setstr %s tempkey_spki %s' % (SVC, r.good.spki_sha256()))
    other_key = r.server_cert(SVC, name='same-name-other-key')
    refused('pinned-key-mismatch', other_key)
    upload(r.good, code=0, msg='stored kvno')
    r.kadmin_local('delstr %s tempkey_spki' % SVC)


def test_principal_outside_enrollment():
    r = realm()
    before = r.dump()
    cert = r.server_cert('ldap/www.test')
    r.ktupdate(cert, keytab=r.path('ldap.keytab'), expected_code=4,
               expected_msg='the KDC does not know this principal and '
               'tempkey_enroll does not let it enroll')
    if 'CLIENT_NOT_FOUND: ldap/www.test@' not in r.kdc_log_text():
        fail('the KDC log does not show the unknown client')
    if os.path.exists(r.path('ldap.keytab')):
        fail('a refused enrollment left a keytab')
    # An existing principal outside the patterns gets no key request.
    r.kadmin_local('addprinc -nokey ldap/www.test')
    before = r.dump()
    r.ktupdate(cert, keytab=r.path('ldap.keytab'), expected_code=4,
               expected_msg='neither managed nor allowed to enroll')
    if r.dump() != before:
        fail('a refused enrollment changed the database')


def test_reserved_names_and_existing_entries_never_enroll():
    # Patterns as wide as */*.test still never reach the realm's own
    # machinery, and never take over an entry an administrator made.
    r = Realm(pki=True, enroll='*/*.test K/M')
    r.addprinc('user', 'user-pw')
    r.kadmin_local('addprinc -nokey HTTP/existing.test')
    before = r.dump()
    for name in ('kadmin/kdc1.test', 'kiprop/kdc1.test', 'krbtgt/kdc1.test',
                 'WELLKNOWN/kdc1.test', 'K/M', 'HTTP/existing.test'):
        cert = r.server_cert(name, name=name.replace('/', '_') + '-cert')
        r.ktupdate(cert, keytab=r.path('reserved.keytab'), expected_code=4)
    if r.dump() != before:
        fail('a reserved name or an existing entry got a key')
    if 'stored kvno' in r.kdc_log_text():
        fail('the KDC stored a key for a reserved name')
    # A name the patterns allow still enrolls.
    upload_ok = r.ktupdate(r.server_cert('HTTP/new.test'),
                           keytab=r.path('new.keytab'))
    if 'stored kvno 1 ' not in upload_ok:
        fail('an allowed name did not enroll: ' + upload_ok)


def test_runaway_client_is_capped():
    # A client uploading in a loop stops at the cap of live key versions;
    # the keys it has keep working.
    r = realm()
    busy = r.server_cert('HTTP/busy.test')
    for kvno in range(1, 65):
        upload(busy, principal='HTTP/busy.test@' + REALM, code=0,
               msg='stored kvno %d ' % kvno)
    before = r.dump()
    upload(busy, principal='HTTP/busy.test@' + REALM,
           msg='refused too-many-live-keys:')
    if r.dump() != before:
        fail('a refused upload changed the database')
    if 'too-many-live-keys: already holds 64 live key versions' not in \
            r.kdc_log_text():
        fail('the KDC log does not record the cap')
    r.run([KDESTROY])
    r.kinit('user', 'user-pw')
    r.run([KVNO, 'HTTP/busy.test'], expected_msg='kvno = 64')


def test_stale_freshness_token():
    # A token minted under a krbtgt key the KDC no longer has is stale.
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    token = r.path('token')
    r.run([TK_UPLOAD, '--cert', cert.chain_pem, '--key', cert.key_pem,
           '--anchors', r.ca.cert_pem, '--principal', SVC_FULL,
           '--save-token', token], expected_msg='stored kvno 1')
    r.kadmin_local('cpw -randkey krbtgt/%s@%s' % (REALM, REALM))
    before = r.dump()
    r.run([TK_UPLOAD, '--cert', cert.chain_pem, '--key', cert.key_pem,
           '--anchors', r.ca.cert_pem, '--principal', SVC_FULL,
           '--token', token], expected_code=4,
          expected_msg='refused stale-freshness-token:')
    if r.dump() != before:
        fail('a stale upload changed the database')
    r.stop()


Tests(shared=True).run(
    test_good_upload_is_stored,
    test_certificate_from_another_ca,
    test_expired_certificate,
    test_revoked_certificate,
    test_wrong_key_purpose,
    test_missing_key_purpose,
    test_certificate_names_another_principal,
    test_upload_names_another_principal,
    test_signature_by_another_key,
    test_encrypted_to_another_kdc,
    test_refusal_text_is_generic,
    test_kdc_hash_mismatch,
    test_missing_freshness_token,
    test_request_checksum_mismatch,
    test_kvno_not_above_stored, test_kvno_jump,
    test_expiry_beyond_max_life,
    test_disallowed_enctype,
    test_wrong_key_length,
    test_empty_der,
    test_truncated_der,
    test_garbage_der,
    test_oversized_der,
    test_too_many_certificates,
    test_chain_too_long,
    test_rsa_key_too_large,
    test_too_many_names,
    test_pinned_key_mismatch,
    test_principal_outside_enrollment,
    test_reserved_names_and_existing_entries_never_enroll,
    test_runaway_client_is_capped,
    test_stale_freshness_token)
