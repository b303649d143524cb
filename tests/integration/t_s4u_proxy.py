"""S4U2Proxy (constrained delegation) on a tempkey realm over kldap, whose
krbAllowedToDelegateTo gives the delegation rules db2 lacks.  An evidence
ticket outlives what its client was when it was issued: a service may
delegate on behalf of a real principal, a managed one with a live key
included, but not with evidence for a managed principal whose keys were
revoked since, nor for one deleted since whose name may enroll (the KDC's
client lookup now answers with the in-memory entry that serves the upload
exchange alone), nor for one whose key record cannot be read."""

import base64
import os
import re

import ldap
from realm import (Realm, Tests, fail, parse_iso, BUILDDIR, KINIT, REALM)

ldap.check_prerequisites()

TK_S4U = os.path.join(BUILDDIR, 'tests', 'tools', 'tk-s4u')
IMP = 'svc/imp.test'        # the impersonating service (long-term key)
BACK = 'svc/back.test'      # where IMP may delegate
SVC = 'HTTP/www.test'       # managed, with a live key
GONE = 'HTTP/gone.test'     # managed, revoked after its evidence was issued
OLD = 'HTTP/old.test'       # managed, deleted after its evidence was issued
BROKEN = 'HTTP/broken.test'     # managed, its key record garbled later
ALICE = 'alice'             # not managed, deleted likewise
TL_META = 0x7e54

_realm = None


def realm():
    """One realm for every test: IMP with ok_to_auth_as_delegate, allowed to
    delegate to BACK, with a TGT in imp.ccache, and evidence tickets (kept
    in ev-NAME) for GONE, OLD, BROKEN and ALICE from while they were
    principals with keys."""
    global _realm
    if _realm is None:
        slapd = ldap.Slapd()
        r = Realm(backing='kldap', ldap=slapd, pki=True)
        for name in ('user', IMP, BACK, ALICE):
            r.addprinc(name)
        r.kadmin_local('modprinc +ok_to_auth_as_delegate ' + IMP)
        slapd.add('dn: krbPrincipalName=%s@%s,cn=%s,%s\nchangetype: modify\n'
                  'add: krbAllowedToDelegateTo\n'
                  'krbAllowedToDelegateTo: %s@%s\n' %
                  (IMP, REALM, REALM, ldap.SUFFIX, BACK, REALM))
        r.kadmin_local('ktadd -k %s %s' % (r.path('imp.keytab'), IMP))
        r.run([KINIT, '-f', '-k', '-t', r.path('imp.keytab'), '-c',
               r.path('imp.ccache'), IMP])
        for name in (SVC, GONE, OLD, BROKEN):
            stored(r.ktupdate(r.server_cert(name),
                              keytab=r.path(name.replace('/', '_'))))
        for name in (GONE, OLD, BROKEN, ALICE):
            r.run([TK_S4U, '--save', evidence(r, name), r.path('imp.ccache'),
                   name], expected_msg='s4u2self: %s@%s' % (name, REALM))
        _realm = r
    return _realm


def stored(out):
    m = re.search(r' stored kvno (\d+) expires (\S+) ', out)
    if not m:
        fail('unexpected ktupdate output: ' + out)
    return int(m.group(1)), parse_iso(m.group(2))


def evidence(r, name):
    return r.path('ev-' + name.replace('/', '_'))


def proxy_with_evidence(r, name, **kw):
    return r.run([TK_S4U, '--evidence', evidence(r, name),
                  r.path('imp.ccache'), BACK], **kw)


def test_s4u2proxy_for_real_principals():
    r = realm()
    for name in ('user', SVC):
        r.run([TK_S4U, r.path('imp.ccache'), name, BACK],
              expected_msg='s4u2proxy: %s@%s for %s@%s' % (name, REALM, BACK,
                                                          REALM))


def test_evidence_for_a_revoked_service_is_refused():
    r = realm()
    proxy_with_evidence(r, GONE, expected_msg='s4u2proxy: ')
    r.tempkey_admin('revoke', GONE, expected_msg='revoked 1 key')
    proxy_with_evidence(r, GONE, expected_code=1,
                        expected_msg='KDC policy rejects request')
    if 'tempkey: %s@%s has no live temporary key: no S4U2Proxy on its ' \
            'behalf' % (GONE, REALM) not in r.kdc_log_text():
        fail('the KDC log does not say why S4U2Proxy was refused')


def test_evidence_for_a_deleted_enrolling_name_is_refused():
    r = realm()
    r.kadmin_local('delprinc -force ' + OLD)
    proxy_with_evidence(r, OLD, expected_code=1,
                        expected_msg='KDC policy rejects request')
    if 'tempkey: %s@%s is an enrolling name, not a principal: no ' \
            'S4U2Proxy on its behalf' % (OLD, REALM) not in r.kdc_log_text():
        fail('the KDC log does not say why S4U2Proxy was refused')
    if r.dump_entry(OLD + '@' + REALM) is not None:
        fail('the refused S4U2Proxy stored an entry')
    # A deleted principal outside tempkey_enroll keeps MIT's rule: the KDC
    # does not look the evidence ticket's client up to allow it.
    r.kadmin_local('delprinc -force ' + ALICE)
    proxy_with_evidence(r, ALICE, expected_msg='s4u2proxy: %s@%s for ' %
                        (ALICE, REALM))


def garble_key_record(r, princ):
    """Replace princ's key record in the directory (kldap keeps each
    tl_data as a krbExtraData value: the type in 2 bytes, then the
    contents) with bytes that do not decode."""
    dn = 'krbPrincipalName=%s@%s,cn=%s,%s' % (princ, REALM, REALM,
                                               ldap.SUFFIX)
    old = None
    for line in r.ldap.search('(krbPrincipalName=%s@%s)' % (princ, REALM),
                              'krbExtraData').splitlines():
        if line.startswith('krbExtraData:: '):
            value = base64.b64decode(line.split(':: ', 1)[1])
            if int.from_bytes(value[:2], 'big') == TL_META:
                old = line.split(':: ', 1)[1]
    if old is None:
        fail('no key record of %s in the directory' % princ)
    new = base64.b64encode(TL_META.to_bytes(2, 'big') +
                           b'\x30\x03garbage').decode()
    r.ldap.add('dn: %s\nchangetype: modify\ndelete: krbExtraData\n'
               'krbExtraData:: %s\n-\nadd: krbExtraData\n'
               'krbExtraData:: %s\n' % (dn, old, new))


def test_evidence_for_an_unreadable_key_record_is_refused():
    r = realm()
    garble_key_record(r, BROKEN)
    proxy_with_evidence(r, BROKEN, expected_code=1)
    if 'tempkey: %s@%s' % (BROKEN, REALM) not in r.kdc_log_text() or \
            'refusing it' not in r.kdc_log_text():
        fail('the KDC log does not name the unreadable record')


Tests(shared=True).run(test_s4u2proxy_for_real_principals,
                       test_evidence_for_a_revoked_service_is_refused,
                       test_evidence_for_a_deleted_enrolling_name_is_refused,
                       test_evidence_for_an_unreadable_key_record_is_refused)
