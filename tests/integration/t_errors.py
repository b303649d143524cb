"""Readable errors: every way a user can get tempkey-admin, ktupdate, or
MIT's tools over our modules wrong is told in words that say what failed
and which principal, file or setting it concerns, and (where there is one)
what to do; never an error code without its text (Realm.run fails any
command that prints "Unknown code")."""

import os

from realm import (Realm, Tests, fail, KADMIN_LOCAL, KDB5_UTIL, KRB5KDC,
                   KTUPDATE, TEMPKEY_ADMIN, REALM)

SVC = 'HTTP/www.test'
SVC_FULL = SVC + '@' + REALM


def expect(r, args, code, *parts, env=None):
    """Run args; it must exit with code and say every one of parts."""
    out = r.run(args, expected_code=code, env=env)
    for part in parts:
        if part not in out:
            fail('%s: expected %r in:\n%s' % (args[0], part, out))
    return out


def admin(r, code, *args_and_parts, env=None):
    """tempkey-admin ARGS... -> code, saying each of the parts: args and
    parts are split at the first None."""
    i = args_and_parts.index(None)
    return expect(r, [TEMPKEY_ADMIN] + list(args_and_parts[:i]), code,
                  *args_and_parts[i + 1:], env=env)


def test_tempkey_admin_commands_and_options():
    r = Realm(start_kdc=False)
    before = r.dump()
    admin(r, 2, None, 'no command given', 'usage:')
    admin(r, 2, 'bogus', None, "unknown command 'bogus'", 'usage:')
    admin(r, 2, 'show', None, 'show takes one principal; given 0')
    admin(r, 2, 'set', 'a', 'b', None, 'set takes one principal; given 2')
    admin(r, 2, 'list', 'x', None, 'list takes no operand; given 1')
    admin(r, 2, 'purge', 'x', None, 'purge takes no operand; given 1')
    admin(r, 2, 'adopt', None,
          'adopt takes one principal, or --matching PATTERN; given 0')
    admin(r, 2, 'adopt', '--matching', 'host/*', SVC, None,
          'adopt takes no principal with --matching; given 1')
    admin(r, 2, 'ratchet', None, 'ratchet takes one of status and init')
    admin(r, 2, 'ratchet', 'spin', None,
          "ratchet: unknown subcommand 'spin'; it takes one of status and "
          "init")
    admin(r, 2, 'list', '--lifetime', '1h', None,
          '--lifetime, --keytab and --enctypes go with set')
    admin(r, 2, 'show', SVC, '--kvno', '2', None, '--kvno goes with revoke')
    admin(r, 2, 'list', '--cancel', None,
          '--matching, --cancel and --dry-run go with adopt')
    admin(r, 2, '--frobnicate', 'list', None, "unrecognized option "
          "'--frobnicate'", 'usage:')
    # Another keytab type would be written as a file of that name.
    cwd_file = 'MEMORY:tk-errors'
    admin(r, 2, 'set', SVC, '--keytab', cwd_file, None,
          '--keytab MEMORY:tk-errors: only a FILE keytab (a path) can be '
          'written')
    if os.path.exists(cwd_file) or os.path.exists(cwd_file + '.lock'):
        fail('set --keytab MEMORY: wrote a file in the current directory')
    if r.dump() != before:
        fail('a refused command changed the database')


def test_tempkey_admin_principals_and_values():
    r = Realm(start_kdc=False)
    r.kadmin_local('addprinc -nokey ' + SVC)
    r.addprinc('host/old.test')
    before = r.dump()
    admin(r, 1, 'show', 'nobody', None, 'nobody: No such entry in the '
          'database')
    admin(r, 1, 'set', 'nobody', None, 'nobody: no such principal; create '
          'it first with kadmin addprinc -nokey')
    admin(r, 1, 'revoke', 'nobody', None, 'nobody: No such entry')
    admin(r, 1, 'adopt', 'nobody', None, 'nobody@%s: No such entry' % REALM)
    for cmd in ('show', 'set', 'revoke', 'adopt'):
        admin(r, 1, cmd, 'a@@b', None, 'a@@b: Malformed representation of '
              'principal')
    admin(r, 1, 'show', 'host/old.test', None, 'host/old.test is not managed '
          "by tempkey (no 'tempkey' string attribute)")
    admin(r, 1, 'revoke', 'host/old.test', None, 'host/old.test: not managed '
          'by tempkey')
    admin(r, 1, 'set', 'host/old.test', None, 'holds long-term keys',
          'run tempkey-admin adopt host/old.test@%s first' % REALM)
    admin(r, 1, 'set', SVC, '--lifetime', 'soon', None,
          '%s: tempkey: --lifetime: "soon" is not a positive duration' % SVC)
    admin(r, 1, 'set', SVC, '--lifetime', '30d', None,
          '--lifetime 30d is longer than tempkey_max_life')
    admin(r, 1, 'set', SVC, '--enctypes', 'rot13', None,
          '--enctypes: "rot13" is not a supported enctype')
    admin(r, 1, 'revoke', SVC, '--kvno', 'x', None,
          '--kvno x is not a key version (1-65535)')
    admin(r, 1, 'adopt', 'krbtgt/%s' % REALM, None, 'is a reserved name')
    if r.dump() != before:
        fail('a refused command changed the database')


def test_tempkey_admin_files():
    r = Realm(start_kdc=False)
    r.kadmin_local('addprinc -nokey ' + SVC)
    # The realm: a name nothing configures, kdc.conf absent, corrupt.
    admin(r, 1, '-r', 'NOPE.TEST', 'list', None,
          'realm NOPE.TEST has no database module', 'is the realm name '
          'right?')
    missing = r.path('missing.conf')
    admin(r, 1, 'list', None, 'has no database module',
          env=dict(r.env, KRB5_KDC_PROFILE=missing))
    admin(r, 1, 'list', None, 'finding the realm (give -r REALM, or set '
          'default_realm in krb5.conf): Configuration file does not specify '
          'default realm', env=dict(r.env, KRB5_CONFIG=missing))
    bad = r.path('bad.conf')
    with open(bad, 'w') as f:
        f.write('[realms\n  garbage {{\n')
    admin(r, 1, 'list', None, 'cannot initialize Kerberos from %s and %s: '
          'Improper format of Kerberos configuration file' %
          (r.path('krb5.conf'), bad), env=dict(r.env, KRB5_KDC_PROFILE=bad))
    # Keytabs: a directory, in a missing directory, not a keytab.
    # A directory inside the realm's, so that the KEYTAB.lock and
    # KEYTAB.tempkey-status files beside it stay there too.
    kt_dir = r.path('a-directory')
    os.makedirs(kt_dir, exist_ok=True)
    admin(r, 1, 'set', SVC, '--keytab', kt_dir, None,
          '%s: reading keytab %s: Is a directory' % (SVC, kt_dir))
    admin(r, 1, 'set', SVC, '--keytab', r.path('nodir', 'kt'), None,
          'cannot lock keytab with %s.lock: No such file or directory' %
          r.path('nodir', 'kt'))
    garbage = r.path('garbage.keytab')
    with open(garbage, 'w') as f:
        f.write('not a keytab\n')
    admin(r, 1, 'set', SVC, '--keytab', garbage, None,
          'reading keytab %s: ' % garbage)
    # The stash: the master key cannot be read.
    os.rename(r.stash, r.stash + '.away')
    admin(r, 1, 'set', SVC, None, 'reading the master key stash %s '
          '(key_stash_file): ' % r.stash)
    os.rename(r.stash + '.away', r.stash)
    if 'temporary' in r.kadmin_local('getprinc ' + SVC) or \
            'Number of keys: 0' not in r.kadmin_local('getprinc ' + SVC):
        fail('a refused set stored a key')
    # The ratchet file: of the wrong size, a directory.
    ratchet = r.ratchet
    admin(r, 0, 'ratchet', 'status', None, 'file: ' + ratchet)
    os.rename(ratchet, ratchet + '.good')
    with open(ratchet, 'w') as f:
        f.write('short')
    admin(r, 1, 'ratchet', 'status', None, 'ratchet file %s: it has the '
          'wrong size; copy the primary\'s ratchet file again' % ratchet)
    os.unlink(ratchet)
    os.mkdir(ratchet)
    admin(r, 1, 'ratchet', 'status', None, 'ratchet file %s: cannot open '
          'it: Is a directory' % ratchet)
    admin(r, 1, 'list', None, 'opening the database: tempkey: ratchet file '
          '%s: cannot open it: Is a directory' % ratchet)
    os.rmdir(ratchet)
    os.rename(ratchet + '.good', ratchet)
    # The database absent.
    gone = r.path('gone')
    os.mkdir(gone)
    for name in os.listdir(r.dir):
        if name.startswith('principal') and not name.endswith('.ratchet'):
            os.rename(r.path(name), os.path.join(gone, name))
    admin(r, 1, 'list', None, "opening the database: tempkey: backing "
          "module 'main': Cannot open DB2 database '%s': No such file or "
          "directory" % r.path('principal'))


def kdc_log_readable(r):
    """The KDC's log, as Realm.run checks a command's output, holds no
    error code without its text."""
    if 'Unknown code' in r.kdc_log_text():
        fail('the KDC logged an error code without its text:\n' +
             r.kdc_log_text())


def ktupdate(r, cert, code, *args_and_parts, env=None):
    """ktupdate with cert, its key and the realm's anchors, then ARGS...
    -> code, saying each of the parts (split at the first None)."""
    i = args_and_parts.index(None)
    argv = [KTUPDATE, '--cert', cert.chain_pem, '--key', cert.key_pem,
            '--anchors', r.ca.cert_pem] + list(args_and_parts[:i])
    return expect(r, argv, code, *args_and_parts[i + 1:], env=env)


def test_ktupdate_options():
    r = Realm(pki=True, start_kdc=False)
    cert = r.server_cert(SVC)
    kt = r.path('svc.keytab')
    expect(r, [KTUPDATE, '--keytab', kt], 2, '--cert is required', 'usage:')
    expect(r, [KTUPDATE, '--cert', cert.chain_pem, 'now'], 2,
           "unexpected operand 'now'", 'usage:')
    ktupdate(r, cert, 2, '--daemon', '--dry-run', None,
             '--daemon and --dry-run do not go together')
    ktupdate(r, cert, 2, '--daemon', '--status', None,
             '--daemon and --status do not go together')
    ktupdate(r, cert, 2, '--dry-run', '--status', None,
             '--dry-run and --status do not go together')
    ktupdate(r, cert, 2, '--keytab', kt, '--lifetime', '-1h', None,
             '--lifetime: "-1h" is not a positive duration')
    ktupdate(r, cert, 2, '--keytab', kt, '--enctypes', 'des-cbc-crc,rot13',
             None, '--enctypes: "', 'is not a supported enctype')
    ktupdate(r, cert, 1, '--keytab', kt, '--principal', 'a@@b', None,
             'cannot tell the principal: --principal a@@b: Malformed '
             'representation of principal')
    expect(r, [KTUPDATE, '--status', '--principal', 'a@@b'], 1,
           '--principal a@@b: Malformed')
    if os.path.exists(kt):
        fail('a refused run wrote a keytab')


def test_ktupdate_files():
    # A KDC runs: the keytab is read once it has offered the upload.
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    stranger = r.server_cert(SVC, name='stranger')
    kt = r.path('svc.keytab')

    def run(code, *args_and_parts):
        i = args_and_parts.index(None)
        return expect(r, [KTUPDATE, '--keytab', kt] +
                      list(args_and_parts[:i]), code,
                      *args_and_parts[i + 1:])

    missing = r.path('missing.pem')
    # The certificate: missing, a directory, a key file.
    run(1, '--cert', missing, '--key', cert.key_pem, None,
        'cannot load the certificate and key: cannot read %s: No such file '
        'or directory' % missing)
    run(1, '--cert', r.dir, '--key', cert.key_pem, None,
        '%s holds no PEM certificate' % r.dir)
    run(1, '--cert', cert.key_pem, '--key', cert.key_pem, None,
        '%s holds no PEM certificate' % cert.key_pem)
    # The key: a certificate file (OpenSSL's reason kept after the words),
    # a directory, another certificate's key; the --cert file alone.
    run(1, '--cert', cert.chain_pem, '--key', cert.chain_pem, None,
        '%s holds no PEM private key: error:' % cert.chain_pem, 'DECODER')
    run(1, '--cert', cert.chain_pem, None,
        '%s holds no PEM private key' % cert.chain_pem)
    run(1, '--cert', cert.chain_pem, '--key', r.dir, None,
        'cannot read %s: Is a directory' % r.dir)
    run(1, '--cert', cert.chain_pem, '--key', stranger.key_pem, None,
        'the key in %s does not belong to the certificate in %s' %
        (stranger.key_pem, cert.chain_pem))
    # The anchors: missing, not certificates.
    ktupdate(r, cert, 1, '--keytab', kt, '--anchors', missing, None,
             "%s: cannot load the KDC's trust anchors: cannot read %s: No "
             "such file or directory" % (SVC_FULL, missing))
    ktupdate(r, cert, 1, '--keytab', kt, '--anchors', cert.key_pem, None,
             '%s holds no PEM certificate' % cert.key_pem)
    ktupdate(r, cert, 1, '--keytab', kt, '--anchors', 'DIR:' + missing,
             None, 'pkinit_anchors "DIR:%s": cannot read it: No such file or '
             'directory' % missing)
    # The keytab: another type, a directory, in a missing directory, not a
    # keytab (also for --status), its records file unreadable.
    ktupdate(r, cert, 1, '--keytab', 'MEMORY:x', None,
             'keytab MEMORY:x: only FILE keytabs can be updated')
    kt_dir = r.path('a-directory')
    os.makedirs(kt_dir, exist_ok=True)
    ktupdate(r, cert, 1, '--keytab', kt_dir, None,
             'reading keytab %s: Is a directory' % kt_dir)
    ktupdate(r, cert, 1, '--keytab', r.path('nodir', 'kt'), None,
             'cannot lock the keytab: cannot lock keytab with %s.lock: No '
             'such file or directory' % r.path('nodir', 'kt'))
    garbage = r.path('garbage.keytab')
    with open(garbage, 'w') as f:
        f.write('not a keytab\n')
    ktupdate(r, cert, 1, '--keytab', garbage, None,
             'reading keytab %s: Unsupported key table format' % garbage)
    expect(r, [KTUPDATE, '--status', '--principal', SVC, '--keytab',
               garbage], 1, 'cannot read the keytab %s: Unsupported key '
           'table format' % garbage)
    # krb5.conf corrupt.
    bad = r.path('bad.conf')
    with open(bad, 'w') as f:
        f.write('[libdefaults\n  garbage {{\n')
    ktupdate(r, cert, 1, '--keytab', kt, None, 'cannot initialize Kerberos '
             'from %s: Improper format of Kerberos configuration file' % bad,
             env=dict(r.env, KRB5_CONFIG=bad))
    if os.path.exists(kt):
        fail('a refused run wrote a keytab')
    if 'stored kvno' in r.kdc_log_text():
        fail('a refused run uploaded a key')
    # The records file in a directory's place is read as empty; the run
    # then fails writing it (t_ktupdate_pending.py relies on that).
    os.mkdir(kt + '.tempkey')
    ktupdate(r, cert, 1, '--keytab', kt, None, 'cannot prepare the new key: '
             'cannot write %s.tempkey: Is a directory' % kt)
    if 'stored kvno' in r.kdc_log_text():
        fail('a run that could not write its records uploaded a key')
    kdc_log_readable(r)


def test_ktupdate_and_the_kdc():
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    kt = r.path('svc.keytab')
    ktupdate(r, cert, 5, '--keytab', kt, '--principal', SVC + '@NOPE.TEST',
             None, '%s@NOPE.TEST: cannot reach the KDC: Cannot find KDC for '
             'realm "NOPE.TEST"' % SVC)
    ktupdate(r, cert, 4, '--keytab', kt, '--principal', 'HTTP/other.test',
             None, 'HTTP/other.test@%s: the KDC refused the upload: '
             'name-mismatch' % REALM)
    r.stop_kdc()
    ktupdate(r, cert, 5, '--keytab', kt, None, "%s: cannot reach the KDC: "
             "Cannot contact any KDC for realm '%s'" % (SVC_FULL, REALM))
    kdc_log_readable(r)


def test_mit_tools_over_the_modules():
    r = Realm(start_kdc=False)
    r.kadmin_local('addprinc -nokey ' + SVC)
    r.set_key(SVC, '1h')
    r.addprinc('host/old.test')
    r.tempkey_admin('adopt', 'host/old.test')
    managed = 'is managed by tempkey: its keys come from ktupdate'
    for query in ('cpw -randkey ' + SVC, 'cpw -pw secret ' + SVC,
                  'modprinc -kvno 5 ' + SVC):
        r.kadmin_local(query, expected_msg='%s: %s' % (SVC_FULL, managed))
    r.kadmin_local('setstr host/old.test tempkey 1',
                   expected_msg='host/old.test@%s: %s' % (REALM, managed))
    r.kadmin_local('delstr %s tempkey' % SVC,
                   expected_msg='still holds 1 temporary key version(s); '
                   'revoke them (tempkey-admin revoke)')
    r.kadmin_local('getprinc nobody', expected_msg='Principal does not exist')
    dump = r.path('good.dump')
    r.run([KDB5_UTIL, 'dump', dump])
    # The ratchet file unreadable: each tool names it and stops.
    os.rename(r.ratchet, r.ratchet + '.good')
    os.mkdir(r.ratchet)
    cannot = 'tempkey: ratchet file %s: cannot open it: Is a directory' % \
        r.ratchet
    r.run([KDB5_UTIL, 'dump', r.path('x.dump')], expected_code=1,
          expected_msg=cannot)
    r.run([KDB5_UTIL, 'load', '-update', dump], expected_code=1,
          expected_msg=cannot)
    r.run([KDB5_UTIL, 'update_princ_encryption', '-f'], expected_code=1,
          expected_msg=cannot)
    r.run([KADMIN_LOCAL, '-q', 'getprinc ' + SVC], expected_code=1,
          expected_msg=cannot)
    r.run([KRB5KDC, '-n'], expected_code=1,
          expected_msg='cannot initialize realm %s' % REALM)
    if cannot not in r.kdc_log_text():
        fail('the KDC log does not say why the realm failed')
    os.rmdir(r.ratchet)
    # Missing on a replica, which cannot make its own.
    good = r.tk_section
    r.tk_section = good.replace('    }', '        role = replica\n    }')
    r.write_config()
    missing = 'ratchet file %s: it is missing; a replica needs a copy of ' \
        'the primary\'s ratchet file' % r.ratchet
    r.run([KDB5_UTIL, 'dump', r.path('x.dump')], expected_code=1,
          expected_msg=missing)
    r.run([KDB5_UTIL, 'update_princ_encryption', '-f'], expected_code=1,
          expected_msg=missing)
    r.tk_section = good
    r.write_config()
    os.rename(r.ratchet + '.good', r.ratchet)
    # A bad tempkey setting: the KDC does not start and says which.
    for old, new, said in (
            ('purge_interval = 2s', 'purge_interval = often',
             '[dbmodules] tk purge_interval: "often" is not a positive '
             'duration'),
            ('backing_module = main', 'backing_module = nosuch',
             'backing_module = nosuch: there is no [dbmodules] nosuch '
             'section'),
            ('purge_interval = 2s', 'purge_interval = 2s\n        role = '
             'sideways', '[dbmodules] tk role = sideways: must be primary '
             'or replica')):
        r.tk_section = good.replace(old, new)
        r.write_config()
        r.run([KRB5KDC, '-n'], expected_code=1,
              expected_msg='cannot initialize realm %s' % REALM)
        if said not in r.kdc_log_text():
            fail('the KDC log does not say %r' % said)
        r.kadmin_local('getprinc ' + SVC, expected_code=1, expected_msg=said)
    r.tk_section = good
    r.realm_extra = '        tempkey_max_life = forever\n'
    r.write_config()
    r.run([KRB5KDC, '-n'], expected_code=1)
    if '[realms] %s tempkey_max_life: "forever"' % REALM not in \
            r.kdc_log_text():
        fail('the KDC log does not name tempkey_max_life')
    kdc_log_readable(r)


def test_preauth_module_bad_identity():
    # A realm whose KDC certificate cannot be read serves no uploads and
    # the log names the file; the KDC itself runs.
    r = Realm(pki=True, start_kdc=False)
    missing = r.path('missing-kdc.pem')
    r.realm_extra = r.realm_extra.replace(
        'FILE:' + r.kdc_cert.cert_pem, 'FILE:' + missing)
    r.write_config()
    r.start_kdc()
    r.wait_for('the preauth module\'s complaint',
               lambda: 'no uploads in this realm' in r.kdc_log_text())
    log = r.kdc_log_text()
    if 'realm %s: tempkey: realm %s: cannot read %s: No such file or ' \
            'directory; no uploads in this realm' % (REALM, REALM, missing) \
            not in log:
        fail('the KDC log does not name the missing certificate:\n' + log)
    kdc_log_readable(r)


Tests().run(test_tempkey_admin_commands_and_options,
            test_tempkey_admin_principals_and_values,
            test_tempkey_admin_files,
            test_ktupdate_options,
            test_ktupdate_files,
            test_ktupdate_and_the_kdc,
            test_mit_tools_over_the_modules,
            test_preauth_module_bad_identity)
