#!/usr/bin/env python3
"""reportrun.py - how long tempkey-admin report takes at N managed services.

One run (make bench-report) builds a throwaway tempkey realm over db2 with
tests/realm.py holding N managed services HTTP/s<i>.test (one made with
"addprinc -nokey" and "tempkey-admin set --lifetime 1d", cloned N-1 times
in its dump line, one kdb5_util load, as bench/scale.py does), and a KDC
log of --lines lines shaped as krb5kdc writes them, one in six a store line
("stored kvno 2 of ..."), the others AS_REQ lines, all within the last day.
No KDC runs: the report reads the database and the log only.

Then --rounds rounds, each timing in turn:

    dump           kdb5_util dump: MIT's own walk of the same database
                   (under the database lock), the reference
    list           tempkey-admin list (a walk under the lock, printing)
    report-walk    tempkey-admin report --prometheus with an empty --log:
                   the walk alone, which holds no lock between entries
                   (db2's unlockiter)
    report         tempkey-admin report --prometheus with the log

and prints each one's median, its ratio to dump's and its peak RSS, and
what the report counted, which must be N managed principals and N live key versions.

    make bench-report [BENCH_ARGS='--n 1000000 --lines 10000000']
    TK_BUILDDIR=. PYTHONPATH=tests python3 bench/reportrun.py [--n N]
"""

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time

import realm as harness
from scale import clone_dump

MODEL = 'HTTP/s0.test'


def parse_args():
    p = argparse.ArgumentParser(
        description='Time tempkey-admin report over N managed services and '
        'a KDC log, against kdb5_util dump of the same database.')
    p.add_argument('--n', type=int, default=100000,
                   help='managed services (default 100000)')
    p.add_argument('--lines', type=int, default=1000000,
                   help='lines of the KDC log (default 1000000)')
    p.add_argument('--rounds', type=int, default=5,
                   help='rounds of the four timings (default 5)')
    a = p.parse_args()
    if a.n < 1 or a.lines < 0 or a.rounds < 1:
        p.error('--n and --rounds at least 1, --lines not negative')
    return a


def write_log(r, args):
    """--lines lines an hour old, as krb5kdc writes them."""
    stamp = time.strftime('%b %d %H:%M:%S',
                          time.localtime(time.time() - 3600))
    prefix = '%s kdc1 krb5kdc[4242](info): ' % stamp
    with open(r.kdc_log, 'w') as log:
        for i in range(args.lines):
            name = 'HTTP/s%d.test@%s' % (i % args.n, r.realm)
            if i % 6 == 0:
                log.write('%sstored kvno 2 of %s, expires in 86400 s, '
                          'uploaded by /CN=HTTP_s.test (sha256 '
                          '0123456789abcdef...)\n' % (prefix, name))
            else:
                log.write('%sAS_REQ (2 etypes {aes256-cts-hmac-sha1-96(18), '
                          'aes128-cts-hmac-sha1-96(17)}) 127.0.0.1: ISSUE: '
                          'authtime 1796138244, etypes {rep=aes256-cts-hmac-'
                          'sha1-96(18)}, %s for krbtgt/%s@%s\n' %
                          (prefix, name, r.realm, r.realm))


def timed(r, argv):
    """Run argv; its wall-clock seconds and peak RSS in MB."""
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, env=r.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read()
    proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit('%s failed: %s' % (argv[0], err))
    return seconds, usage.ru_maxrss / 1024.0


def main():
    args = parse_args()
    # What the set-up commands print goes to stderr, the figures to stdout.
    with contextlib.redirect_stdout(sys.stderr):
        r = harness.Realm(start_kdc=False)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            r.kadmin_local('addprinc -nokey ' + MODEL)
            r.tempkey_admin('set', MODEL, '--lifetime', '1d')
            dump = r.path('report.dump')
            clone_dump(r, MODEL, ('HTTP/s%d.test' % i
                                  for i in range(1, args.n)), dump)
            r.run([harness.KDB5_UTIL, 'load', dump], timeout=7200)
        os.unlink(dump)
        write_log(r, args)
        empty = r.path('empty.log')
        open(empty, 'w').close()
        prom = r.path('tempkey.prom')
        runs = {
            'dump': [harness.KDB5_UTIL, 'dump', r.path('walk.dump')],
            'list': [harness.TEMPKEY_ADMIN, 'list'],
            'report-walk': [harness.TEMPKEY_ADMIN, 'report', '--log', empty,
                            '--prometheus', prom],
            'report': [harness.TEMPKEY_ADMIN, 'report', '--prometheus', prom],
        }
        times = {k: [] for k in runs}
        rss = {k: 0.0 for k in runs}
        for _ in range(args.rounds):
            for name, argv in runs.items():
                seconds, mb = timed(r, argv)
                times[name].append(seconds)
                rss[name] = max(rss[name], mb)
        with open(prom) as f:
            counts = dict(line.split('{realm="%s"} ' % r.realm)
                          for line in f if line.startswith('tempkey_') and
                          'reason=' not in line)
        print('n=%d log_lines=%d log_bytes=%d rounds=%d' % (
            args.n, args.lines, os.path.getsize(r.kdc_log), args.rounds))
        ref = statistics.median(times['dump'])
        for name, ts in times.items():
            med = statistics.median(ts)
            print('%-12s median %.3f s  ratio to dump %.2f  peak RSS %.0f MB'
                  % (name, med, med / ref, rss[name]))
        for key in ('tempkey_managed_principals', 'tempkey_live_key_versions',
                    'tempkey_uploads_stored_last_day'):
            print('%s %s' % (key, counts[key].strip()))
        if int(counts['tempkey_managed_principals']) != args.n or \
                int(counts['tempkey_live_key_versions']) != args.n:
            raise SystemExit('the report did not count every service')
    finally:
        r.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
