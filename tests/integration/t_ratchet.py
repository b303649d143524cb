"""Forgetting by the clock (DESIGN 10): temporary keys are stored wrapped
under a forward-secure ratchet, so that once a key's epoch is over no copy
of it (a dump taken while it was live, the db2 file with its free pages, the
update log, a replica) gives it back, even with the stash and the ratchet
file as they are then.  Live keys keep working through epoch steps made by
every process, master key changes, and a lost ratchet file costs the live
keys only."""

import json
import os
import re
import shutil
import subprocess
import time

from iprop import IpropPair
from realm import (Realm, Tests, fail, dump_fields, entry_keys, parse_iso,
                   BUILDDIR, KADMIN, KDB5_UTIL, KDESTROY, KLIST, KRB5KDC,
                   KVNO, REALM)

FORENSIC = os.path.join(BUILDDIR, 'tests', 'tools', 'tk-forensic')
EPOCH = 2
TK_EPOCH = '        key_epoch = %ds\n' % EPOCH
ADMIN_PW = 'admin-pw'


def forensic(realm, keytab, *files, ratchet=None, stash=None):
    """tk-forensic over files: (found, {file: (blobs, clear, opened)},
    ratchet epoch or None)."""
    args = [FORENSIC, '--stash', stash or realm.stash, '--keytab', keytab]
    if ratchet is not None:
        args += ['--ratchet', ratchet, '--key-epoch', str(EPOCH)]
    out = realm.run(args + list(files))
    per = {}
    for f in files:
        m = re.search(r'^%s: (\d+) blobs, (\d+) clear keys, (\d+) wrapped '
                      r'keys opened$' % re.escape(f), out, re.M)
        if not m:
            fail('no tk-forensic line for %s:\n%s' % (f, out))
        per[f] = tuple(int(x) for x in m.groups())
    found = int(re.search(r'^found: (\d+)$', out, re.M).group(1))
    m = re.search(r'^ratchet epoch: (\d+)$', out, re.M)
    return found, per, int(m.group(1)) if m else None


def file_epoch(realm, keytab, ratchet):
    """The epoch of a ratchet file as found on disk (tk-forensic does not
    step it)."""
    return forensic(realm, keytab, keytab, ratchet=ratchet)[2]


def copy(src, dst):
    shutil.copyfile(src, dst)
    return dst


def set_key(realm, princ, lifetime, keytab):
    if 'Principal: ' not in realm.kadmin_local('getprinc ' + princ,
                                               expected_code=None):
        realm.kadmin_local('addprinc -nokey ' + princ)
    return realm.set_key(princ, lifetime, keytab)


def test_expired_key_is_unrecoverable_from_every_copy():
    pair = IpropPair(primary_purge='1s', tk_extra=TK_EPOCH)
    p, r = pair.primary, pair.replica
    svc = 'HTTP/forget.test'
    witness = p.path('witness.keytab')
    kvno, expiry = set_key(p, svc, '4s', witness)
    pair.wait_synced()

    # Every copy a thief could find while the key is live.
    live = p.path('live')
    os.makedirs(live)
    copies = [copy(p.path('principal'), os.path.join(live, 'principal')),
              copy(p.ulog, os.path.join(live, 'ulog'))]
    dump = os.path.join(live, 'dump')
    p.run([KDB5_UTIL, 'dump', dump])
    copies.append(dump)
    replica_copies = [copy(r.path('principal'),
                           os.path.join(live, 'replica-principal')),
                      copy(r.ulog, os.path.join(live, 'replica-ulog'))]

    # Control: with the ratchet file as it is now, each copy yields the key,
    # and none of them holds it in the clear.
    found, per, _ = forensic(p, witness, *copies, ratchet=p.ratchet)
    if found != 2:
        fail('while live, the primary\'s copies gave %d of its 2 keys: %r'
             % (found, per))
    for f, (blobs, clear, opened) in per.items():
        if clear != 0 or opened == 0:
            fail('%s: %d keys in the clear, %d opened' % (f, clear, opened))
    found, per, _ = forensic(r, witness, *replica_copies, ratchet=r.ratchet)
    if found != 2:
        fail('while live, the replica\'s copies gave %d keys: %r'
             % (found, per))

    # Once the key's epoch is over, both KDCs step their files.
    ended = expiry // EPOCH
    for realm in (p, r):
        realm.wait_for('the ratchet file to step past epoch %d' % ended,
                       lambda: file_epoch(realm, witness,
                                          realm.ratchet) > ended,
                       timeout=30, step=0.5)
    p.wait_for('the purge of ' + svc, lambda: 'purged 1 expired key '
               'version(s) of %s@%s' % (svc, REALM) in p.kdc_log_text(),
               timeout=30)
    pair.wait_synced()
    later = p.path('later.dump')
    p.run([KDB5_UTIL, 'dump', later])
    everything = copies + [later, p.path('principal'), p.ulog]
    found, per, _ = forensic(p, witness, *everything, ratchet=p.ratchet)
    if found != 0:
        fail('after its epoch, %d keys were recovered: %r' % (found, per))
    if per[copies[0]][0] == 0 or per[dump][0] == 0:
        fail('the search found no blob at all: %r' % per)
    found, per, _ = forensic(r, witness, *(replica_copies + [
        r.path('principal'), r.ulog]), ratchet=r.ratchet)
    if found != 0:
        fail('after its epoch, the replica gave %d keys: %r' % (found, per))
    pair.stop()


def test_live_keys_across_epochs_with_every_process_stepping():
    """krb5kdc -w 2, kadmind, kpropd, kadmin.local and tempkey-admin all
    open the same ratchet files while epochs pass every 2 s."""
    pair = IpropPair(primary_purge='1s', kdc_args=('-w', '2'),
                     tk_extra=TK_EPOCH)
    p, r = pair.primary, pair.replica
    p.addprinc('admin/admin', ADMIN_PW)
    p.kadmin_local('addprinc -pw user-pw user')
    svc = 'HTTP/www.test'
    cert = p.server_cert(svc)
    p.ktupdate(cert, '--lifetime', '1h')
    pair.wait_synced()
    start = file_epoch(p, p.keytab, p.ratchet)
    p.kinit('user', 'user-pw')
    deadline = time.monotonic() + 5 * EPOCH
    rounds = 0
    while time.monotonic() < deadline or rounds < 3:
        rounds += 1
        p.run([KDESTROY])
        p.kinit('user', 'user-pw')
        p.run([KVNO, '-k', p.keytab, svc])
        p.run([KADMIN, '-p', 'admin/admin', '-w', ADMIN_PW, '-q',
               'getprinc ' + svc], expected_msg='special')
        kt = p.path('norandkey.keytab')
        if os.path.exists(kt):
            os.unlink(kt)
        # The kadm5 server library (kadmind's) decrypts the live key for
        # ktadd -norandkey; kadmin.local runs it here since the ACL's '*'
        # does not grant extraction.
        p.kadmin_local('ktadd -norandkey -k %s %s' % (kt, svc))
        if forensic(p, kt, p.path('principal'), ratchet=p.ratchet)[0] == 0:
            fail('ktadd -norandkey gave another key than the stored one')
        p.tempkey_admin('show', svc)
    end = file_epoch(p, p.keytab, p.ratchet)
    if end < start + 3:
        fail('the ratchet stepped from epoch %d to %d only' % (start, end))
    # The replica's KDC serves the same key, with its own file stepped.
    r.kinit('user', 'user-pw')
    r.run([KVNO, '-k', p.keytab, svc])
    if file_epoch(r, p.keytab, r.ratchet) < start + 3:
        fail('the replica did not step its ratchet')
    for realm in (p, r):
        realm.tempkey_admin('ratchet', 'status', expected_msg='epoch: ')
    pair.stop()


def test_master_key_change_keeps_keys_wrapped():
    r = Realm(pki=True, tk_extra=TK_EPOCH)
    r.kadmin_local('addprinc -pw user-pw user')
    svc = 'HTTP/www.test'
    cert = r.server_cert(svc)
    r.ktupdate(cert, '--lifetime', '1h')
    r.run([KDB5_UTIL, 'add_mkey', '-s', '-e', 'aes256-cts-hmac-sha1-96'],
          input='new-master-pw\nnew-master-pw\n')
    r.run([KDB5_UTIL, 'use_mkey', '2'])
    r.run([KDB5_UTIL, 'update_princ_encryption', '-f', '-v'],
          expected_msg='updating: %s@%s' % (svc, REALM))
    out = r.kadmin_local('getprinc ' + svc)
    if 'MKey: vno 2' not in out or ':special' not in out:
        fail('after update_princ_encryption the key is not wrapped under '
             'master key 2:\n' + out)
    r.kinit('user', 'user-pw')
    r.run([KVNO, '-k', r.keytab, svc])
    # The key is still the same and still wrapped: not in the clear under
    # the new master key.
    found, per, _ = forensic(r, r.keytab, r.path('principal'),
                             ratchet=r.ratchet)
    if found == 0 or per[r.path('principal')][1] != 0:
        fail('after the master key change: %r' % per)
    # A rotation stores under the new master key, wrapped.
    r.ktupdate(cert, '--lifetime', '1h')
    r.run([KVNO, '-k', r.keytab, svc])
    r.stop()


def test_lost_or_corrupt_ratchet_costs_only_live_keys():
    r = Realm(pki=True, tk_extra=TK_EPOCH)
    r.kadmin_local('addprinc -pw user-pw user')
    svc = 'HTTP/www.test'
    cert = r.server_cert(svc)
    r.ktupdate(cert, '--lifetime', '1h')
    r.kinit('user', 'user-pw')
    r.run([KVNO, svc])
    for damage in ('lost', 'corrupt'):
        r.stop_kdc()
        if damage == 'lost':
            os.unlink(r.ratchet)
            said = 'made the ratchet file ' + r.ratchet
        else:
            with open(r.ratchet, 'r+b') as f:
                f.write(os.urandom(256))
            said = ('ratchet file %s: neither of its slots has a good '
                    'checksum; started a new ratchet' % r.ratchet)
        before = len(r.kdc_log_text())
        r.start_kdc()
        log = r.kdc_log_text()[before:]
        if said not in log:
            fail('the KDC did not say %r:\n%s' % (said, log))
        # Users are served; the service's key is as good as expired.
        r.run([KDESTROY])
        r.kinit('user', 'user-pw')
        r.run([KVNO, svc], expected_code=1)
        lost = 'were wrapped under another ratchet than %s' % r.ratchet
        r.wait_for('the KDC to log the lost keys once',
                   lambda: r.kdc_log_text()[before:].count(lost) == 1,
                   timeout=10)
        # The next upload restores the service.
        r.ktupdate(cert, '--lifetime', '1h')
        r.run([KVNO, '-k', r.keytab, svc])
        r.tempkey_admin('show', svc)
    r.stop()


def test_replica_needs_the_primarys_ratchet_file():
    r = Realm(start_kdc=False, tk_extra=TK_EPOCH)
    r.tk_section = r.tk_section.replace('    }', '        role = replica\n'
                                        '    }')
    r.write_config()
    os.rename(r.ratchet, r.ratchet + '.primary')
    missing = 'ratchet file %s: it is missing; a replica needs a copy' % (
        r.ratchet)
    proc = subprocess.run([KRB5KDC, '-n'], env=r.env, capture_output=True,
                          text=True, timeout=30)
    if proc.returncode == 0 or missing not in r.kdc_log_text() + \
            proc.stderr:
        fail('krb5kdc on a replica without the ratchet file: %d %s' % (
            proc.returncode, proc.stderr))
    r.tempkey_admin('list', expected_code=1, expected_msg=missing)
    r.kadmin_local('listprincs', expected_code=1, expected_msg=missing)
    r.tempkey_admin('ratchet', 'init', expected_code=1,
                    expected_msg='copy the primary\'s ratchet file to ' +
                    r.ratchet)
    if os.path.exists(r.ratchet):
        fail('a replica made a ratchet file of its own')
    # A corrupt copy is refused alike.
    with open(r.ratchet, 'wb') as f:
        f.write(b'\0' * 256)
    r.tempkey_admin('list', expected_code=1,
                    expected_msg='neither of its slots has a good checksum; '
                    'copy the primary\'s ratchet file again')
    # With the primary's copy it starts.
    os.rename(r.ratchet + '.primary', r.ratchet)
    r.tempkey_admin('list')
    r.start_kdc()
    r.stop()


def test_key_epoch_changed_on_a_live_database():
    r = Realm(start_kdc=False)
    r.tempkey_admin('ratchet', 'status', expected_msg='key_epoch: 300s')
    r.tk_section = r.tk_section.replace('    }', TK_EPOCH + '    }')
    r.write_config()
    msg = ('ratchet file %s: it was made with key_epoch = 300s but the '
           'setting is now 2s' % r.ratchet)
    r.tempkey_admin('list', expected_code=1, expected_msg=msg)
    r.kadmin_local('listprincs', expected_code=1, expected_msg=msg)
    proc = subprocess.run([KRB5KDC, '-n'], env=r.env, capture_output=True,
                          text=True, timeout=30)
    if proc.returncode == 0 or msg not in r.kdc_log_text() + proc.stderr:
        fail('krb5kdc with a changed key_epoch: %d %s' % (
            proc.returncode, proc.stderr))


def test_ratchet_status_and_init():
    r = Realm(start_kdc=False, tk_extra=TK_EPOCH)
    out = r.tempkey_admin('ratchet', 'status')
    for part in ('file: ' + r.ratchet, 'key_epoch: 2s', 'epoch: ',
                 'oldest expiry still readable: ', 'next step: '):
        if part not in out:
            fail('ratchet status lacks %r:\n%s' % (part, out))
    status = json.loads(r.tempkey_admin('--json', 'ratchet', 'status'))
    if status['file'] != r.ratchet or status['key_epoch'] != EPOCH or \
            status['epoch'] < time.time() // EPOCH - 1:
        fail('ratchet status --json: %r' % status)
    r.tempkey_admin('ratchet', 'init', expected_code=1,
                    expected_msg='it exists; a ratchet file is never '
                    'overwritten')
    os.rename(r.ratchet, r.ratchet + '.old')
    r.tempkey_admin('ratchet', 'status', expected_code=1,
                    expected_msg='it is missing')
    r.tempkey_admin('ratchet', 'init', expected_msg='made the ratchet file '
                    + r.ratchet)
    if os.stat(r.ratchet).st_mode & 0o777 != 0o600:
        fail('the ratchet file is not mode 0600')
    r.tempkey_admin('ratchet', 'bogus', expected_code=2)


def test_keys_stored_before_the_ratchet_are_upgraded_at_the_next_store():
    """A database from before the ratchet (made here by a load of a dump
    whose managed key is an unwrapped one) keeps working, shows which keys
    are old, and wraps them at the principal's next store."""
    r = Realm(start_kdc=False, tk_extra=TK_EPOCH)
    svc = 'HTTP/old.test'
    r.kadmin_local('addprinc -randkey legacy')
    legacy_kt = r.path('legacy.keytab')
    r.kadmin_local('ktadd -norandkey -k %s legacy' % legacy_kt)
    set_key(r, svc, '1h', None)
    lines = r.dump().splitlines()
    legacy = next(l for l in lines if '\tlegacy@' in l)
    old = next(l for l in lines if '\t%s@' % svc in l)
    lf, of = dump_fields(legacy), dump_fields(old)
    if int(lf[4]) != int(of[4]):
        fail('key counts differ: %s %s' % (lf[4], of[4]))

    def key_start(f):
        return 15 + 3 * int(f[3])

    def key_end(f):
        pos = key_start(f)
        for _ in range(int(f[4])):
            pos += 2 + 3 * int(f[pos])
        return pos
    crafted = (of[:key_start(of)] + lf[key_start(lf):key_end(lf)] +
               of[key_end(of):])
    # The unmanaged principal goes: its key is now only the managed one's.
    text = '\n'.join(('\t'.join(crafted) + ';') if l == old else l
                     for l in lines if l != legacy) + '\n'
    dump = r.path('crafted.dump')
    with open(dump, 'w') as f:
        f.write(text)
    r.run([KDB5_UTIL, 'load', dump])
    r.tempkey_admin('show', svc, expected_msg='(stored before the ratchet)')
    shown = json.loads(r.tempkey_admin('--json', 'show', svc))
    if shown['keys'][0]['wrapped'] is not False:
        fail('show --json: %r' % shown)
    found, per, _ = forensic(r, legacy_kt, r.path('principal'))
    if per[r.path('principal')][1] == 0:
        fail('the unwrapped key is not in the clear in the database: %r'
             % per)
    r.start_kdc()
    r.kadmin_local('addprinc -pw user-pw user')
    r.kinit('user', 'user-pw')
    r.run([KVNO, svc], expected_msg='kvno = 1')

    # The next store wraps the old key as well.
    set_key(r, svc, '1h', None)
    out = r.tempkey_admin('show', svc)
    if 'stored before the ratchet' in out:
        fail('the old key was not wrapped at the next store:\n' + out)
    fresh = r.path('fresh.dump')
    r.run([KDB5_UTIL, 'dump', fresh])
    found, per, _ = forensic(r, legacy_kt, fresh, ratchet=r.ratchet)
    if per[fresh][1] != 0 or per[fresh][2] == 0:
        fail('after the upgrade the dump holds: %r' % per)
    r.stop()


if __name__ == '__main__':
    Tests().run(test_ratchet_status_and_init,
                test_key_epoch_changed_on_a_live_database,
                test_replica_needs_the_primarys_ratchet_file,
                test_keys_stored_before_the_ratchet_are_upgraded_at_the_next_store,
                test_master_key_change_keeps_keys_wrapped,
                test_lost_or_corrupt_ratchet_costs_only_live_keys,
                test_expired_key_is_unrecoverable_from_every_copy,
                test_live_keys_across_epochs_with_every_process_stepping)
