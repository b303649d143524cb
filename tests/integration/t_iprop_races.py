"""An upload landing inside a kadmin.local write, at the two places where
MIT's write path can be interleaved, made certain by pausing kadmin.local
under gdb: the replica's database must still equal the primary's.

libkdb5 1.20's krb5_db_put_principal (a) computes the update-log entry by
comparing the entry with a fresh read of the stored one, (b) calls the
module's put_principal, (c) appends the entry to the log (ulog_add_update,
which takes the log's lock only for itself).  Nothing holds a lock across
(a)-(c), so a KDC upload can fall
- before (a), after kadmin.local's read: the copy kadmin.local writes is
  stale, and the overlay must refuse it with a retry error;
- between (b) and (c): the two writes are stored in one order and logged in
  the other, and a replica replaying the log in serial order must still end
  up with what the primary holds.
"""

import os
import re
import shutil

from iprop import IpropPair
from realm import Tests, fail, skip, KADMIN_LOCAL, REALM, TK_UPLOAD

GDB = shutil.which('gdb')
if GDB is None:
    skip('gdb is needed to pause kadmin.local inside its write')
if os.environ.get('TK_SANITIZE_PRELOAD'):
    # The sanitizer pass preloads ASan into every command, gdb included,
    # which then cannot run its inferior; these races are about ordering,
    # not memory, and run in the normal pass.
    skip('gdb does not run under the sanitizer pass\'s preloaded runtimes')

_pair = None


def pair():
    global _pair
    if _pair is None:
        _pair = IpropPair(primary_purge='1h')
    elif _pair.kpropd is None:
        _pair.start_kpropd()
    return _pair


def enrolled(svc):
    pr = pair()
    p = pr.primary
    full = svc + '@' + REALM
    cert = p.server_cert(svc)
    p.ktupdate(cert, '--lifetime', '1h',
               keytab=p.path(svc.replace('/', '_') + '.keytab'),
               expected_msg='stored kvno 1 ')
    pr.wait_synced()
    return full, cert


def modprinc_paused_at(breakpoint, svc, cert, minutes):
    """Run kadmin.local modprinc -maxlife under gdb, stopped at breakpoint
    (a libkdb5 function); while it is stopped, upload a new key for svc
    (waiting at most 8 s for the upload: a KDC that waits for kadmin.local
    instead is fine) and then let kadmin.local go on.  Return
    (kadmin.local's output, the upload's output)."""
    p = pair().primary
    result = p.path('paused-upload.out')
    if os.path.exists(result):
        os.unlink(result)
    upload = ' '.join([TK_UPLOAD, '--cert', cert.chain_pem, '--key',
                       cert.key_pem, '--anchors', p.ca.cert_pem,
                       '--principal', svc + '@' + REALM,
                       '--lifetime', '1h'])
    # The upload runs in the background; the wait is bounded.
    shell = ('shell (%s > %s.tmp 2>&1; mv %s.tmp %s) & '
             'i=0; while [ ! -e %s ] && [ $i -lt 80 ]; do sleep 0.1; '
             'i=$((i+1)); done' % (upload, result, result, result, result))
    query = 'modprinc -maxlife "%d minutes" %s' % (minutes, svc)
    out = p.run([GDB, '-nx', '-batch', '-ex', 'set breakpoint pending on',
                 '-ex', 'break ' + breakpoint, '-ex', 'run', '-ex', shell,
                 '-ex', 'continue', '--args', KADMIN_LOCAL, '-q', query],
                expected_code=None, timeout=120)
    if 'Breakpoint 1, ' not in out:
        fail('kadmin.local did not stop at %s:\n%s' % (breakpoint, out))
    p.wait_for('the upload to finish', lambda: os.path.exists(result),
               timeout=60)
    with open(result) as f:
        uploaded = f.read()
    print('upload while paused: ' + uploaded)
    return out, uploaded


def maxlife_minutes(realm, svc):
    out = realm.kadmin_local('getprinc ' + svc)
    m = re.search(r'Maximum ticket life: (\d+) days (\d+):(\d+):00', out)
    return (int(m.group(1)) * 24 + int(m.group(2))) * 60 + int(m.group(3))


def test_upload_between_read_and_write_makes_kadmin_retry():
    pr = pair()
    p = pr.primary
    svc = 'HTTP/stale.test'
    full, cert = enrolled(svc)
    before = maxlife_minutes(p, svc)
    out, uploaded = modprinc_paused_at('krb5_db_put_principal', svc, cert,
                                       77)
    if 'stored kvno 2 ' not in uploaded:
        fail('the upload made while kadmin.local held its copy failed:\n' +
             uploaded)
    if 'retry' not in out.lower():
        fail('kadmin.local wrote a stale copy without a retry error:\n' +
             out)
    if maxlife_minutes(p, svc) != before:
        fail('the refused change was stored')
    pr.wait_synced()
    pr.assert_dumps_equal('a stale kadmin.local write')


def test_upload_between_write_and_log_keeps_replica_equal():
    pr = pair()
    p, r = pr.primary, pr.replica
    svc = 'HTTP/order.test'
    full, cert = enrolled(svc)
    out, uploaded = modprinc_paused_at('ulog_add_update', svc, cert, 78)
    if 'modify_principal' in out:
        fail('kadmin.local failed:\n' + out)
    if 'stored kvno 2 ' not in uploaded and 'refused' not in uploaded:
        fail('the upload neither stored nor was refused:\n' + uploaded)
    pr.wait_synced()
    pr.assert_dumps_equal('an upload between a write and its log entry')
    if maxlife_minutes(r, svc) != 78:
        fail("kadmin.local's change did not reach the replica")


Tests(shared=True).run(test_upload_between_read_and_write_makes_kadmin_retry,
                       test_upload_between_write_and_log_keeps_replica_equal)
