"""The demo: a realm whose database is tempkey over db2, a managed web
service with temporary keys, a user getting tickets, rotation and expiry."""

import io
import contextlib
import re
import time

import realm as k
from realm import Realm, klist_times

SVC = 'HTTP/www.demo.test'
SVC_FULL = SVC + '@' + k.REALM


def say(text):
    print('\n== ' + text)


def show(r, args, **kw):
    """Run a command quietly, print it and its output plainly."""
    with contextlib.redirect_stdout(io.StringIO()):
        out = r.run(args, **kw)
    print('$ ' + ' '.join(a.replace(r.dir + '/', '') for a in args))
    for line in out.splitlines():
        if not line.startswith('Password for') and \
                not line.startswith('Authenticating as'):
            print('  ' + line)
    return out


def quiet(fn, *args, **kw):
    """Call a harness helper without its command trace."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kw)


def when(t):
    return time.strftime('%H:%M:%S', time.gmtime(t))


def main():
    say('A throwaway realm %s on 127.0.0.1: db_library = tempkey over db2'
        % k.REALM)
    with contextlib.redirect_stdout(io.StringIO()):
        r = Realm(purge_interval='3s')
    print('realm directory: ' + r.dir)
    print(open(r.path('kdc.conf')).read().split('[dbmodules]')[1]
          .split('[logging]')[0].rstrip())
    kt = r.path('http.keytab')
    show(r, [k.KADMIN_LOCAL, '-q', 'addprinc -pw alice-pw alice'])
    show(r, [k.KADMIN_LOCAL, '-q', 'addprinc -nokey ' + SVC])

    say('The service gets a temporary key (1 hour) and a keytab')
    show(r, [k.TEMPKEY_ADMIN, 'set', SVC, '--lifetime', '1h', '--keytab',
             kt])
    show(r, [k.KINIT, 'alice'], input='alice-pw\n')
    show(r, [k.KVNO, SVC])
    show(r, [k.KVNO, '-k', kt, SVC])
    _, end, _ = quiet(klist_times, r)[SVC_FULL]
    print('ticket ends %s UTC: never after its key expires' % when(end))

    say('Rotation: kvno 2; tickets in kvno 1 still verify with the keytab')
    show(r, [k.TEMPKEY_ADMIN, 'set', SVC, '--lifetime', '2h', '--keytab',
             kt])
    show(r, [k.KVNO, '-k', kt, SVC])
    show(r, [k.KDESTROY])
    show(r, [k.KINIT, 'alice'], input='alice-pw\n')
    show(r, [k.KVNO, '-k', kt, SVC])
    show(r, [k.TEMPKEY_ADMIN, 'list'])

    say('A key of 6 seconds: tickets end with it, then none are issued')
    out = show(r, [k.TEMPKEY_ADMIN, 'revoke', SVC])
    out = show(r, [k.TEMPKEY_ADMIN, 'set', SVC, '--lifetime', '6s',
                   '--keytab', kt])
    expiry = k.parse_iso(re.search(r'expires (\S+)', out).group(1))
    show(r, [k.KDESTROY])
    show(r, [k.KINIT, 'alice'], input='alice-pw\n')
    show(r, [k.KVNO, SVC])
    _, end, _ = quiet(klist_times, r)[SVC_FULL]
    print('key expires %s, ticket ends %s' % (when(expiry), when(end)))
    while time.time() <= expiry + 1:
        time.sleep(0.5)
    show(r, [k.KDESTROY])
    show(r, [k.KINIT, 'alice'], input='alice-pw\n')
    show(r, [k.KVNO, SVC], expected_code=1)
    print('KDC log:')
    for line in r.kdc_log_text().splitlines():
        if 'tempkey:' in line and 'refusing' in line:
            print('  ' + line.split('): ', 1)[1])
            break

    say('The KDC removes the expired key from the database by itself')
    r.wait_for('the purge', lambda: 'purged' in r.kdc_log_text(), timeout=30)
    for line in r.kdc_log_text().splitlines():
        if 'purged' in line:
            print('  KDC log: ' + line.split('): ', 1)[1])
    line = quiet(r.dump_entry, SVC_FULL)
    print('  keys of %s in kdb5_util dump: %d' % (SVC, len(k.entry_keys(line))))
    show(r, [k.TEMPKEY_ADMIN, 'show', SVC])

    say('Long-term keys are refused for a managed service')
    show(r, [k.KADMIN_LOCAL, '-q', 'cpw -randkey ' + SVC])
    quiet(r.stop)
    print('\nDone; the realm and its daemons are gone.')


main()
