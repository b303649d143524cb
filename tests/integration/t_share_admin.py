"""Shared principals, the administrator's side (issue 10, DESIGN 11):
tempkey-admin share marks a principal shared with a delay (creating a
missing one, managed and keyless, as an enrollment would), changes the
delay of one shared already, and refuses reserved names, principals with
long-term keys that are not being adopted, and delays that are not positive
or not below tempkey_max_life; unshare removes the mark and leaves the entry
as it was; show and list say it, and when a pending key comes into use.
Every refusal leaves the database as it was and the KDC serving."""

import json
import os
import pwd
import re
import shutil

from realm import (Realm, Tests, fail, entry_keys, prerequisites, KDESTROY,
                   KVNO, REALM, TK_UPLOAD)

SVC = 'HTTP/www.test'
SVC_FULL = SVC + '@' + REALM
# What the created entry names as its last modifier, as kadmin.local names
# its caller: never the principal itself, which marks an enrollment.
CREATOR = '%s/admin@%s' % (pwd.getpwuid(os.getuid()).pw_name, REALM)


def strings(r, princ):
    """{key: value} of getstrs."""
    out = r.kadmin_local('getstrs ' + princ)
    return dict(re.findall(r'^(\S+): (.*)$', out, re.M))


def shown(r, princ):
    """tempkey-admin --json show, decoded."""
    return json.loads(r.tempkey_admin('--json', 'show', princ))


def key_of(entry, kvno):
    for k in entry['keys']:
        if k['kvno'] == kvno:
            return k
    fail('no kvno %d in %r' % (kvno, entry))


def upload(r, cert):
    """One upload with tk-upload (random keys, written nowhere); its kvno."""
    out = r.run([TK_UPLOAD, '--cert', cert.chain_pem, '--key', cert.key_pem,
                 '--anchors', r.ca.cert_pem, '--principal', SVC_FULL])
    m = re.match(r'stored kvno (\d+) ', out.splitlines()[-1])
    if not m:
        fail('unexpected tk-upload output: ' + out)
    return int(m.group(1))


def issued_kvno(r, princ=SVC, keytab=None):
    """The kvno of a fresh ticket to princ (from the user's TGT), read with
    keytab if given."""
    r.run([KDESTROY])
    r.kinit('user', 'user-pw')
    args = [KVNO] + (['-k', keytab] if keytab else []) + [princ]
    out = r.run(args)
    m = re.search(r': kvno = (\d+)', out)
    if not m or (keytab and 'keytab entry valid' not in out):
        fail('no ticket read: ' + out)
    return int(m.group(1))


def user_realm(**kw):
    r = Realm(pki=True, **kw)
    r.addprinc('user', 'user-pw')
    return r


# ---- the tests


def test_share_creates_a_managed_keyless_entry():
    r = user_realm()
    r.tempkey_admin('share', SVC, '--delay', '10m',
                    expected_msg='%s: created, managed by tempkey with no '
                    'key yet, and shared: its members\' keys are used 600 s '
                    'after their upload (the first at once)' % SVC_FULL)
    out = r.kadmin_local('getprinc ' + SVC)
    # As an enrollment makes it: no key, the realm's ticket lifetimes.
    for needle in ('Number of keys: 0', 'Maximum ticket life: 0 days '
                   '10:00:00', 'Maximum renewable life: 7 days 00:00:00',
                   '(%s)' % CREATOR):
        if needle not in out:
            fail('getprinc lacks %r:\n%s' % (needle, out))
    if strings(r, SVC) != {'tempkey': '1', 'tempkey_share': '600'}:
        fail('unexpected string attributes: %r' % strings(r, SVC))
    r.tempkey_admin('show', SVC, expected_msg='\nshared: delay 600 s\n')
    if not re.search(r'^%s\s+-  no key\s+-  shared \(delay 600 s\)$' %
                     re.escape(SVC_FULL), r.tempkey_admin('list'), re.M):
        fail('list does not show it shared')
    entry = shown(r, SVC)
    if entry['keys'] != [] or entry['share_delay'] != 600:
        fail('unexpected show --json: %r' % entry)
    # An administrator made it: not an enrollment.
    report = json.loads(r.tempkey_admin('--json', 'report'))
    if (report['managed_principals'], report['enrollments_last_day']) != \
            (1, 0):
        fail('the report counts it as %r' % report)

    # The first member's first run finds it shared: its key is used at
    # once, and the KDC serves it.
    kt = r.path('a.keytab')
    r.ktupdate(r.server_cert(SVC, name='a'), keytab=kt)
    first = key_of(shown(r, SVC), 1)
    if first['pending'] or first['active_at'] is None:
        fail('the first key is not active from its upload: %r' % first)
    if issued_kvno(r, keytab=kt) != 1:
        fail('the KDC does not serve the first key')
    # Another member's upload is pending for the delay; show says until
    # when, and the KDC keeps issuing tickets in kvno 1.
    other = r.server_cert(SVC, name='b')
    if upload(r, other) != 2:
        fail('the second upload is not kvno 2')
    pending = key_of(shown(r, SVC), 2)
    if not pending['pending']:
        fail('the second key is not pending: %r' % pending)
    r.tempkey_admin('show', SVC, expected_msg='  pending until %s\n' %
                    pending['active_at'])
    listing = r.tempkey_admin('list')
    if not re.search(r'^%s\s+2 .*  pending until %s  shared \(delay 600 s\)$'
                     % (re.escape(SVC_FULL), pending['active_at']),
                     listing, re.M):
        fail('list does not show the pending key:\n' + listing)
    if issued_kvno(r, keytab=kt) != 1:
        fail('the KDC issued a ticket in the pending key')

    # A new delay leaves the stored keys' activation times alone.
    r.tempkey_admin('share', SVC, '--delay', '1200',
                    expected_msg='%s: shared already; its delay changes from '
                    '600 s to 1200 s (keys stored already keep their '
                    'activation times)' % SVC_FULL)
    if shown(r, SVC)['keys'] != [first, pending]:
        fail('the change of delay moved the keys: %r' % shown(r, SVC))
    # Unshared, the pending key still waits for its time; a new upload is
    # used at once.
    r.tempkey_admin('unshare', SVC, expected_msg='%s: no longer shared: a '
                    'new key is used at once; kvno 2 stays pending until %s'
                    % (SVC_FULL, pending['active_at']))
    entry = shown(r, SVC)
    if entry['share_delay'] != 0 or entry['keys'] != [first, pending]:
        fail('unshare changed the keys: %r' % entry)
    r.tempkey_admin('show', SVC, expected_msg='\nshared: no\n')
    if upload(r, other) != 3:
        fail('the upload after unshare is not kvno 3')
    third = key_of(shown(r, SVC), 3)
    if third['active_at'] is not None or third['pending']:
        fail('an upload after unshare is not used at once: %r' % third)
    if issued_kvno(r) != 3:
        fail('the KDC does not issue tickets in the new key')


def test_share_a_managed_principal_then_unshare():
    r = user_realm()
    r.kadmin_local('addprinc -nokey ' + SVC)
    kt = r.path('http.keytab')
    r.set_key(SVC, '1h', kt)
    before = r.dump_entry(SVC_FULL)
    r.tempkey_admin('share', SVC, '--delay', '600',
                    expected_msg='%s: shared: a new key is used 600 s after '
                    'its upload, while every member fetches it' % SVC_FULL)
    if strings(r, SVC).get('tempkey_share') != '600':
        fail('no tempkey_share: %r' % strings(r, SVC))
    # The administrator's key was used from its store, and still is.
    key = key_of(shown(r, SVC), 1)
    if key['active_at'] is not None or key['pending']:
        fail('sharing changed the stored key: %r' % key)
    if entry_keys(r.dump_entry(SVC_FULL)) != entry_keys(before):
        fail('sharing changed the keys')
    r.tempkey_admin('share', SVC, '--delay', '15m',
                    expected_msg='its delay changes from 600 s to 900 s')
    if strings(r, SVC).get('tempkey_share') != '900':
        fail('the delay is not 900 s: %r' % strings(r, SVC))
    # The same delay again changes nothing.
    again = r.dump_entry(SVC_FULL)
    r.tempkey_admin('share', SVC, '--delay', '900',
                    expected_msg='%s: shared already with a delay of 900 s; '
                    'nothing changed' % SVC_FULL)
    if r.dump_entry(SVC_FULL) != again:
        fail('sharing with the same delay changed the entry')
    r.tempkey_admin('unshare', SVC, expected_msg='%s: no longer shared: a '
                    'new key is used at once\n' % SVC_FULL)
    if r.dump_entry(SVC_FULL) != before:
        fail('unshare did not leave the entry as before share:\n%s\n%s' %
             (before, r.dump_entry(SVC_FULL)))
    if issued_kvno(r, keytab=kt) != 1:
        fail('the KDC does not serve the key after unshare')


def test_share_an_adopting_principal():
    r = user_realm()
    r.addprinc(SVC)
    kt = r.path('service.keytab')
    lt = int(re.search(r'with kvno (\d+)', r.kadmin_local(
        'ktadd -k %s %s' % (kt, SVC))).group(1))
    r.tempkey_admin('adopt', SVC)
    adopting = r.dump_entry(SVC_FULL)
    r.tempkey_admin('share', SVC, '--delay', '5m',
                    expected_msg='%s: shared: a new key is used 300 s' %
                    SVC_FULL)
    marks = strings(r, SVC)
    if marks.get('tempkey_share') != '300' or 'tempkey_adopt' not in marks \
            or 'tempkey' in marks:
        fail('unexpected string attributes: %r' % marks)
    out = r.tempkey_admin('show', SVC)
    if 'adopting since' not in out or '\nshared: delay 300 s\n' not in out:
        fail('show does not say adopting and shared:\n' + out)
    if shown(r, SVC)['share_delay'] != 300:
        fail('show --json lacks the delay')
    if not re.search(r'adopting since \S+  shared \(delay 300 s\)$',
                     r.tempkey_admin('list'), re.M):
        fail('list does not show it shared')
    # Its long-term key still serves; unshare leaves it being adopted.
    if issued_kvno(r, keytab=kt) != lt:
        fail('the long-term key no longer serves')
    r.tempkey_admin('unshare', SVC)
    if r.dump_entry(SVC_FULL) != adopting:
        fail('unshare did not leave the entry as before share:\n%s\n%s' %
             (adopting, r.dump_entry(SVC_FULL)))


def test_refusals_change_nothing():
    r = user_realm(realm_extra='        tempkey_max_life = 2h')
    r.kadmin_local('addprinc -nokey ' + SVC)
    kt = r.path('http.keytab')
    r.set_key(SVC, '1h', kt)
    r.addprinc('host/lt.test')
    r.kadmin_local('addprinc -nokey host/nokey.test')
    r.kinit('user', 'user-pw')
    tgt = r.path('tgt.ccache')
    shutil.copy(r.ccache, tgt)
    before = r.dump()
    refusals = [
        (1, ['share', 'krbtgt/' + REALM, '--delay', '600'],
         'tempkey-admin: krbtgt/%s@%s: is a reserved name: it is never '
         'shared, since no certificate may key it' % (REALM, REALM)),
        (1, ['share', 'kadmin/admin', '--delay', '600'],
         'kadmin/admin@%s: is a reserved name' % REALM),
        # Missing, so it would be created: still refused.
        (1, ['share', 'WELLKNOWN/nobody', '--delay', '600'],
         'WELLKNOWN/nobody@%s: is a reserved name' % REALM),
        (1, ['share', 'host/lt.test', '--delay', '600'],
         'tempkey-admin: host/lt.test@%s: holds long-term keys (up to kvno '
         '1) and is not managed by tempkey; adopt it first (tempkey-admin '
         'adopt host/lt.test@%s), then share it' % (REALM, REALM)),
        (1, ['share', 'host/nokey.test', '--delay', '600'],
         'host/nokey.test@%s: exists, keyless, and is neither managed by '
         'tempkey nor being adopted; adopt it first' % REALM),
        (1, ['share', SVC, '--delay', '0'],
         'tempkey-admin: %s: tempkey: --delay: "0" is not a positive '
         'duration' % SVC),
        (1, ['share', SVC, '--delay', 'soon'],
         '--delay: "soon" is not a positive duration'),
        (1, ['share', SVC, '--delay', '-5m'],
         '--delay: "-5m" is not a positive duration'),
        (1, ['share', SVC, '--delay', '2h'],
         'tempkey-admin: %s: --delay 2h (7200 s) is not below '
         'tempkey_max_life (7200 s): a new key would expire before it is '
         'used' % SVC),
        (1, ['share', 'HTTP/new.test', '--delay', '3h'],
         '--delay 3h (10800 s) is not below tempkey_max_life'),
        (1, ['share', 'HTTP/www.test@OTHER.TEST', '--delay', '600'],
         'HTTP/www.test@OTHER.TEST: is not a name of the realm ' + REALM),
        (1, ['share', 'a@@b', '--delay', '600'],
         'a@@b: Malformed representation of principal'),
        (1, ['unshare', SVC],
         'tempkey-admin: %s: is not shared (no \'tempkey_share\' string '
         'attribute)' % SVC_FULL),
        (1, ['unshare', 'host/lt.test'], 'is not shared'),
        (1, ['unshare', 'HTTP/nobody.test'],
         'HTTP/nobody.test@%s: No such entry in the database' % REALM),
        (2, ['share', SVC], 'share takes --delay DURATION'),
        (2, ['share', '--delay', '600'], 'share takes one principal; given 0'),
        (2, ['unshare', SVC, '--delay', '600'], '--delay goes with share'),
        (2, ['list', '--delay', '600'], '--delay goes with share'),
    ]
    for code, args, msg in refusals:
        r.tempkey_admin(*args, expected_code=code, expected_msg=msg)
        if r.dump() != before:
            fail('refused %r changed the database' % args)
        # The KDC still serves: a fresh ticket (from a cache holding only
        # the TGT), read with the keytab; a TGS request writes nothing.
        shutil.copy(tgt, r.ccache)
        r.run([KVNO, '-k', kt, SVC], expected_msg='%s: kvno = 1, keytab '
              'entry valid' % SVC_FULL)
    # Just below the bound is a delay.
    r.tempkey_admin('share', SVC, '--delay', '7199')


def test_share_over_kldap():
    import ldap
    if not prerequisites(ldap.check_prerequisites):
        return
    r = Realm(pki=True, backing='kldap', ldap=ldap.Slapd())
    r.addprinc('user', 'user-pw')
    # Created by a checked write (kldap has no lock), then served.
    r.tempkey_admin('share', SVC, '--delay', '600',
                    expected_msg='created, managed by tempkey')
    if strings(r, SVC) != {'tempkey': '1', 'tempkey_share': '600'}:
        fail('unexpected string attributes: %r' % strings(r, SVC))
    kt = r.path('a.keytab')
    r.ktupdate(r.server_cert(SVC, name='a'), keytab=kt)
    if issued_kvno(r, keytab=kt) != 1:
        fail('the KDC does not serve the first key')
    # On an existing principal, unshare leaves it as before share.
    r.kadmin_local('addprinc -nokey host/x.test')
    r.set_key('host/x.test')
    before = r.kadmin_local('getprinc host/x.test')
    r.tempkey_admin('share', 'host/x.test', '--delay', '600')
    r.tempkey_admin('unshare', 'host/x.test')
    if strings(r, 'host/x.test') != {'tempkey': '1'}:
        fail('kldap kept the mark: %r' % strings(r, 'host/x.test'))
    if r.kadmin_local('getprinc host/x.test') != before:
        fail('unshare did not leave the entry as before share')


Tests().run(test_share_creates_a_managed_keyless_entry,
            test_share_a_managed_principal_then_unshare,
            test_share_an_adopting_principal,
            test_refusals_change_nothing,
            test_share_over_kldap)
