"""kdc.py - krb5kdc under valgrind memcheck through an upload burst (make
valgrind-kdc VALGRIND_ARGS=...).

A realm with the tempkey modules; krb5kdc runs under memcheck while
services enroll and rotate their keys with ktupdate (--uploads in all, over
--services names), a user gets tickets for them, some uploads are refused
(an untrusted certificate, a name that may not enroll), and short-lived keys
expire and are purged.  Then the KDC stops and memcheck's report is read:
every error, and every definite leak, that tests/valgrind/kdc.supp does not
explain fails the run.  The log is kept (its path is printed).
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pki
import realm
from realm import Realm, KRB5KDC, KVNO, KDESTROY, fail

SUPP = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'kdc.supp')


def start_kdc_under_memcheck(r, log):
    # Memcheck makes the KDC start some twenty times slower.
    realm.START_TIMEOUT = 300
    r.kdc = r._start(['valgrind', '--tool=memcheck', '--leak-check=full',
                      '--show-leak-kinds=definite',
                      '--errors-for-leak-kinds=definite',
                      '--num-callers=40', '--track-origins=yes',
                      '--suppressions=' + SUPP,
                      '--gen-suppressions=all', '--log-file=' + log,
                      KRB5KDC, '-n'], 'starting...')


def stop_kdc(r):
    """SIGTERM, then wait for memcheck's leak search (slow: no kill)."""
    r.kdc.send_signal(signal.SIGTERM)
    r.kdc.wait(timeout=600)
    r.stop_daemon(r.kdc)


def burst(r, uploads, nservices):
    r.addprinc('user', 'user-pw')
    services = ['HTTP/s%d.test' % i for i in range(nservices)]
    certs = {s: r.server_cert(s) for s in services}
    done = 0
    while done < uploads:
        for s in services:
            if done == uploads:
                break
            # Every fifth upload is short-lived, for the purge to remove.
            life = '8s' if done % 5 == 4 else '1h'
            r.ktupdate(certs[s], '--lifetime', life,
                       keytab=r.path(s.replace('/', '_') + '.keytab'),
                       timeout=300)
            done += 1
        r.run([KDESTROY], expected_code=None)
        r.kinit('user', 'user-pw', timeout=300)
        for s in services:
            r.run([KVNO, s], timeout=300)
    # Refusals: a certificate from a CA the KDC does not trust, and one for a
    # name outside tempkey_enroll.
    other = pki.CA(r.path('other-pki'), 'Other CA')
    stranger = other.issue('stranger', principal='HTTP/s0.test@' + r.realm)
    r.ktupdate(stranger, keytab=r.path('stranger.keytab'),
               expected_code=None, timeout=300)
    outsider = r.server_cert('ldap/x.test')
    r.ktupdate(outsider, keytab=r.path('outsider.keytab'),
               expected_code=None, timeout=300)
    # Let the short-lived keys expire and the purge timer (2 s) run.
    time.sleep(12)
    r.wait_for('a purge of expired keys',
               lambda: 'purged ' in r.kdc_log_text(),
               timeout=120)
    return done


def read_report(log):
    """(unsuppressed contexts, suppressed contexts, [(kind, report)]): each
    error memcheck did not suppress, with the suppression it proposes."""
    with open(log, errors='replace') as f:
        text = f.read()
    m = re.findall(r'ERROR SUMMARY: (\d+) errors from (\d+) contexts '
                   r'\(suppressed: (\d+) from (\d+)\)', text)
    if not m:
        fail('no ERROR SUMMARY in %s: did memcheck finish?' % log)
    found = []
    # --gen-suppressions=all: every report is followed by its suppression.
    for rec in re.finditer(r'((?:==\d+== [^\n]*\n)+)(\{\n.*?\n\}\n)',
                           text, re.S):
        kind = re.search(r'Memcheck:(\w+)', rec.group(2)).group(1)
        found.append((kind, rec.group(1) + rec.group(2)))
    return int(m[-1][1]), int(m[-1][3]), found


# Our sources, as memcheck names them in a stack ("(proto.c:522)").
OUR_FILES = ('meta', 'proto', 'pki', 'util', 'config', 'keytab', 'entry',
             'dbwrite', 'ulog', 'tempkey', 'kdc', 'client')


def ours(report):
    """Whether a report's stack passes through our code."""
    return re.search(r'tempkey\.so|: tk_\w+ |\((%s)\.c:\d+\)' %
                     '|'.join(OUR_FILES), report) is not None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--uploads', type=int, default=50)
    ap.add_argument('--services', type=int, default=5)
    args = ap.parse_args()
    if shutil.which('valgrind') is None:
        print('valgrind-kdc: valgrind is not installed '
              '(scripts/install-deps)')
        return 77
    r = Realm(pki=True, start_kdc=False, purge_interval='2s')
    outdir = os.path.join(realm.BUILDDIR, 'valgrind-out')
    os.makedirs(outdir, exist_ok=True)
    log = os.path.join(outdir, 'kdc.memcheck')
    start_kdc_under_memcheck(r, log)
    t0 = time.monotonic()
    n = burst(r, args.uploads, args.services)
    stop_kdc(r)
    elapsed = time.monotonic() - t0
    shutil.copy(r.kdc_log, os.path.join(outdir, 'kdc.log'))
    total, suppressed, found = read_report(log)
    for _, report in found:
        print(report)
    leaks = [r_ for k, r_ in found if k == 'Leak']
    errors = [r_ for k, r_ in found if k != 'Leak']
    print('valgrind-kdc: %d uploads over %d services, %.0f s under memcheck'
          % (n, args.services, elapsed))
    print('valgrind-kdc: %d errors (%d in our code), %d definite leaks '
          '(%d in our code); %d contexts suppressed by %s; log %s' % (
              len(errors), sum(map(ours, errors)), len(leaks),
              sum(map(ours, leaks)), suppressed, SUPP, log))
    r.stop()
    return 1 if total else 0


if __name__ == '__main__':
    sys.exit(main())
