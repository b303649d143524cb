"""The demo: a throwaway realm whose database is tempkey over db2 and whose
KDC accepts uploads; a web server enrolls with its certificate and no prior
configuration, rotates its key twice, and a user's tickets follow."""

import contextlib
import io
import re
import time

import realm as k
from realm import Realm, klist_times

SVC = 'HTTP/www.demo.test'
SVC_FULL = SVC + '@' + k.REALM


def say(text):
    print('\n== ' + text)


def quiet(fn, *args, **kw):
    """Call a harness helper without its command trace."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kw)


def show(r, args, **kw):
    """Run a command, print it and its output plainly."""
    out = quiet(r.run, args, **kw)
    print('$ ' + ' '.join(a.replace(r.dir + '/', '') for a in args))
    for line in out.splitlines():
        if not line.startswith(('Password for', 'Authenticating as')):
            print('  ' + line)
    return out


def when(t):
    return time.strftime('%H:%M:%S', time.gmtime(t))


def ktupdate(r, cert, *args, **kw):
    return show(r, [k.KTUPDATE, '--cert', cert.chain_pem, '--key',
                    cert.key_pem, '--anchors', r.ca.cert_pem, '--keytab',
                    r.keytab] + list(args), **kw)


def user_ticket(r):
    quiet(r.run, [k.KDESTROY])
    show(r, [k.KINIT, 'alice'], input='alice-pw\n')
    return show(r, [k.KVNO, SVC], expected_code=None)


def main():
    say('A throwaway realm %s on 127.0.0.1: db_library = tempkey over db2, '
        'the tempkey preauth module, a CA for servers' % k.REALM)
    # Epochs of 3 s rather than 5 min, so that the demo sees one end.
    r = quiet(Realm, pki=True, purge_interval='3s',
              tk_extra='        key_epoch = 3s\n')
    print('realm directory: ' + r.dir)
    print('kdc.conf, realm section:')
    conf = open(r.path('kdc.conf')).read()
    for line in conf.split('[realms]')[1].split('[dbmodules]')[0].splitlines():
        if 'pkinit' in line or 'tempkey' in line or 'database_module' in line:
            print('  ' + line.strip().replace(r.dir + '/', ''))
    show(r, [k.KADMIN_LOCAL, '-q', 'addprinc -pw alice-pw alice'])
    cert = quiet(r.server_cert, SVC)
    print('server certificate for %s issued by the realm CA' % SVC_FULL)

    say('The server enrolls: no principal, no configuration at the KDC')
    out = ktupdate(r, cert, '--lifetime', '1h')
    show(r, [k.TEMPKEY_ADMIN, 'list'])
    user_ticket(r)
    show(r, [k.KVNO, '-k', r.keytab, SVC])
    _, end, _ = quiet(klist_times, r)[SVC_FULL]
    expiry = k.parse_iso(re.search(r'expires (\S+)', out).group(1))
    print('key expires %s UTC; the ticket ends %s UTC' % (when(expiry),
                                                         when(end)))

    say('Two rotations: new tickets use the new kvno, older ones still '
        'verify')
    old_cache = r.path('kvno1.ccache')
    quiet(r.run, ['cp', r.ccache, old_cache])
    for _ in range(2):
        ktupdate(r, cert, '--lifetime', '2h')
        user_ticket(r)
        show(r, [k.KVNO, '-k', r.keytab, SVC])
    env = dict(r.env, KRB5CCNAME='FILE:' + old_cache)
    print('the kvno 1 ticket from before the rotations:')
    show(r, [k.KVNO, '-k', r.keytab, SVC], env=env)
    ktupdate(r, cert, '--status')

    say('A key that expires: a 6-second key, then no more tickets')
    print('(first the administrator revokes the longer keys)')
    show(r, [k.TEMPKEY_ADMIN, 'revoke', SVC])
    out = ktupdate(r, cert, '--lifetime', '6s')
    expiry = k.parse_iso(re.search(r'expires (\S+)', out).group(1))
    user_ticket(r)
    while time.time() <= expiry + 1:
        time.sleep(0.5)
    user_ticket(r)
    for line in r.kdc_log_text().splitlines():
        if 'refusing it' in line:
            print('KDC log: ' + line.split('): ', 1)[1])
            break
    quiet(r.wait_for, 'the purge', lambda: 'purged' in r.kdc_log_text(),
          timeout=30)
    for line in r.kdc_log_text().splitlines():
        if 'purged' in line:
            print('KDC log: ' + line.split('): ', 1)[1])
    show(r, [k.TEMPKEY_ADMIN, 'show', SVC])

    say('Forgotten by the clock: the key was stored wrapped under the '
        'ratchet epoch of its expiry, whose secret is gone')
    epoch_end = (int(expiry) // 3 + 1) * 3
    while time.time() <= epoch_end + 1:
        time.sleep(0.5)
    show(r, [k.TEMPKEY_ADMIN, 'ratchet', 'status'])
    print('the key expired %s UTC; its epoch ended %s UTC: no copy of it '
          '(free pages, dumps, the update log) opens any more, even with '
          'the stash and this file' % (when(expiry), when(epoch_end)))

    say('A certificate for another name cannot set this key')
    other = quiet(r.server_cert, 'HTTP/other.demo.test')
    ktupdate(r, other, '--principal', SVC, expected_code=4)

    quiet(r.stop)
    print('\nDone; the realm and its daemons are gone.')


main()
