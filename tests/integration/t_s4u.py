"""S4U2Self (protocol transition) on a tempkey realm: a service may ask for
a ticket on behalf of a real principal, a managed one with a live key
included, but not of a name that is only enrolling (the KDC's in-memory
entry for it serves the upload exchange alone) nor of a managed principal
whose keys are gone.

kvno -U sends an enterprise name, which libkrb5 first resolves by an AS
exchange that already fails for a name without an entry, so the KDC's
S4U2Self lookup is never reached that way: tests/tools/tk-s4u asks with a
plain principal name.

S4U2Proxy within the realm needs a backing module with delegation rules,
which db2 has not (t_s4u_proxy.py, over kldap), but a referral to another
realm for a resource-based delegation there needs none: the KDC refers any
evidence ticket, so there the check is the module's alone."""

import os
import re

from realm import (Realm, Tests, fail, parse_iso, BUILDDIR, KINIT, REALM)

TK_S4U = os.path.join(BUILDDIR, 'tests', 'tools', 'tk-s4u')

IMP = 'svc/imp.test'        # the impersonating service (long-term key)
SVC = 'HTTP/www.test'       # managed, with a live key
GONE = 'HTTP/gone.test'     # managed, its keys revoked
LATER = 'HTTP/later.test'   # managed, revoked after its evidence was issued
NEVER = 'HTTP/never.test'   # may enroll, never did: no entry at all
OTHER = 'OTHER.TEST'        # a realm with a cross-realm key and no KDC
TARGET = 'host/x.other.test@'   # in OTHER by its host, referral realm

_realm = None


def realm():
    """One realm for every test: the impersonating service with
    ok_to_auth_as_delegate and a TGT in imp.ccache, a user, the managed
    and enrolling names above, krbtgt/OTHER and evidence tickets (ev-NAME)
    for the user and LATER."""
    global _realm
    if _realm is None:
        r = Realm(pki=True, start_kdc=False)
        with open(r.path('krb5.conf'), 'a') as f:
            f.write('    .other.test = %s\n' % OTHER)
        r.start_kdc()
        r.addprinc('krbtgt/%s@%s' % (OTHER, REALM))
        r.addprinc('user', 'user-pw')
        r.addprinc(IMP)
        r.kadmin_local('modprinc +ok_to_auth_as_delegate ' + IMP)
        r.kadmin_local('ktadd -k %s %s' % (r.path('imp.keytab'), IMP))
        r.run([KINIT, '-f', '-k', '-t', r.path('imp.keytab'), '-c',
               r.path('imp.ccache'), IMP])
        for name in (SVC, GONE, LATER):
            stored(r.ktupdate(r.server_cert(name),
                              keytab=r.path(name.replace('/', '_'))))
        r.tempkey_admin('revoke', GONE, expected_msg='revoked 1 key')
        for name in ('user', LATER):
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


def s4u2self(r, user, **kw):
    return r.run([TK_S4U, r.path('imp.ccache'), user], **kw)


def test_s4u2self_for_real_principals():
    r = realm()
    for user in ('user', SVC):
        s4u2self(r, user, expected_msg='s4u2self: %s@%s for %s@%s' %
                 (user, REALM, IMP, REALM))


def test_s4u2self_refused_for_an_enrolling_name():
    r = realm()
    s4u2self(r, NEVER, expected_code=1,
             expected_msg='Client not found in Kerberos database')
    if 'CLIENT_NOT_FOUND (tempkey: an enrolling name cannot be ' \
            'impersonated by S4U2Self)' not in r.kdc_log_text():
        fail('the KDC log does not say why S4U2Self was refused')
    if r.dump_entry(NEVER + '@' + REALM) is not None:
        fail('the refused S4U2Self stored an entry')


def test_s4u2self_refused_for_a_managed_principal_without_a_key():
    r = realm()
    s4u2self(r, GONE, expected_code=1,
             expected_msg='KDC policy rejects request')
    if 'tempkey: no live temporary key; no S4U2Self for it' not in \
            r.kdc_log_text():
        fail('the KDC log does not say why S4U2Self was refused')


def refer(r, name, **kw):
    """S4U2Proxy to TARGET with name's evidence: the KDC refers it to OTHER,
    whose KDC is nowhere."""
    return r.run([TK_S4U, '--evidence', evidence(r, name), '--host-based',
                  r.path('imp.ccache'), TARGET], expected_code=1, **kw)


def test_s4u2proxy_referral_refused_for_a_revoked_service():
    r = realm()
    referred = 'Cannot find KDC for realm "%s"' % OTHER
    refer(r, 'user', expected_msg=referred)
    refer(r, LATER, expected_msg=referred)
    r.tempkey_admin('revoke', LATER, expected_msg='revoked 1 key')
    refer(r, LATER, expected_msg='KDC policy rejects request')
    if 'tempkey: %s@%s has no live temporary key: no S4U2Proxy on its ' \
            'behalf' % (LATER, REALM) not in r.kdc_log_text():
        fail('the KDC log does not say why S4U2Proxy was refused')


Tests(shared=True).run(
    test_s4u2self_for_real_principals,
    test_s4u2self_refused_for_an_enrolling_name,
    test_s4u2self_refused_for_a_managed_principal_without_a_key,
    test_s4u2proxy_referral_refused_for_a_revoked_service)
