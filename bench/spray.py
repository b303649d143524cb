#!/usr/bin/env python3
"""spray.py - KDC CPU per unauthenticated AS-REQ for a name that may enroll,
against a stock PREAUTH_REQUIRED.

One run makes a stock realm (tests/realm.py, tempkey=False: db2 only) with
a user bench-pa created +requires_preauth, and for each --keytypes a
tempkey realm (pki=True: the CA and the KDC certificate of that key type,
tempkey_enroll = HTTP/*.test host/*.test), each with a single krb5kdc
process on 127.0.0.1.  A round sends --requests bare first AS-REQs
(tests/integration/asreq.py: no preauthentication, an empty
PA-AS-FRESHNESS as libkrb5 sends) over UDP, one at a time, to one realm:

    stock     for bench-pa (a fresh nonce each time): PREAUTH_REQUIRED with
              MIT's hints (etype-info2)
    tempkey   for HTTP/<12 random hex digits>.test, a new name each time:
              PREAUTH_REQUIRED with the tempkey offer (the KeyOffer around
              the signed Offer, for the name the KDB module answers with an
              in-memory entry)

and checks that every reply is that PREAUTH_REQUIRED.  The KDC's CPU time
over the round (all its threads, /proc schedstat) over the requests is its
CPU per request.  Rounds rotate over the realms (stock, ec, rsa, then ec,
rsa, stock, ...) so that drift falls on all of them; the first round of
each realm (--warmup requests) is not counted.  Reported per key type: the
median KDC microseconds per request of the tempkey realm and of the stock
one, the ratio of the medians, and the median of the per-round ratios
(each tempkey round over the stock round next to it).  Other processes'
CPU use during each round is measured ("other", in % of one CPU): a round
during which it exceeds --max-other is run again, up to --retries times
(the last try counts anyway).

--callgrind N adds a noise-free measurement: each KDC is restarted under
valgrind --tool=callgrind and N requests (after a warm-up of a tenth as
many) are counted in instructions executed by the KDC per request.

Run it as "make bench-spray", or:

    TK_BUILDDIR=. PYTHONPATH=tests:tests/integration python3 bench/spray.py
        [--rounds N] [--requests N] [--keytypes ec,rsa] [--callgrind N]
        [--json FILE]

A measurement, not a test: it fails only if a reply is not the expected
PREAUTH_REQUIRED or a KDC dies.  The goal (at most 1.2 times the stock
cost, with either key type) is reported, not enforced.
"""

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import asreq
import realm as harness

PA_USER = 'bench-pa'
GOAL = 1.2
CLK_TCK = os.sysconf('SC_CLK_TCK')


class BenchError(Exception):
    pass


def kdc_cpu(r):
    """CPU seconds of r's KDC so far, all its threads."""
    total = 0
    taskdir = '/proc/%d/task' % r.kdc.pid
    for tid in os.listdir(taskdir):
        try:
            with open(os.path.join(taskdir, tid, 'schedstat')) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


def machine_busy():
    with open('/proc/stat') as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / CLK_TCK


def own_cpu():
    t = os.times()
    return t.user + t.system


def make_realms(keytypes):
    realms = []
    with contextlib.redirect_stdout(io.StringIO()):
        stock = harness.Realm(tempkey=False)
        stock.kadmin_local('addprinc +requires_preauth -pw bench-pw ' +
                           PA_USER)
        stock.label = 'stock'
        realms.append(stock)
        for kt in keytypes:
            r = harness.Realm(pki=True, pki_keytype=kt, purge_interval='1h')
            r.label = kt
            realms.append(r)
    return realms


def request_for(r):
    if r.label == 'stock':
        return asreq.as_req([PA_USER], r.realm)
    return asreq.as_req(['HTTP', '%s.test' % os.urandom(6).hex()], r.realm)


def check_reply(r, reply, full):
    err = asreq.krb_error(reply)
    if err is None or err['code'] != asreq.KDC_ERR_PREAUTH_REQUIRED:
        raise BenchError('%s realm: expected PREAUTH_REQUIRED, got %r' % (
            r.label, err))
    if full:
        pa = asreq.method_data(err['edata'])
        want = asreq.PA_ETYPE_INFO2 if r.label == 'stock' else \
            asreq.PA_TEMPKEY
        if want not in pa:
            raise BenchError('%s realm: PREAUTH_REQUIRED without padata %d'
                             % (r.label, want))


def run_round(r, client, n, others):
    """n requests to r; its KDC's CPU per request and the other
    processes' CPU use."""
    requests = [request_for(r) for _ in range(n)]
    kdc0, idle0 = kdc_cpu(r), sum(kdc_cpu(o) for o in others)
    busy0, self0, wall0 = machine_busy(), own_cpu(), time.monotonic()
    for i, req in enumerate(requests):
        reply = client.exchange(req)
        check_reply(r, reply, i == 0 or i == n - 1)
    kdc1, idle1 = kdc_cpu(r), sum(kdc_cpu(o) for o in others)
    busy1, self1, wall1 = machine_busy(), own_cpu(), time.monotonic()
    if r.kdc.poll() is not None:
        raise BenchError('%s realm: the KDC exited' % r.label)
    kdc = kdc1 - kdc0
    other = (busy1 - busy0) - kdc - (idle1 - idle0) - (self1 - self0)
    return {'realm': r.label, 'requests': n,
            'kdc_us': kdc * 1e6 / n, 'rate': n / (wall1 - wall0),
            'other_pct': max(0.0, 100.0 * other / (wall1 - wall0))}


def callgrind_pass(realms, n):
    """{label: KDC instructions per request}, each KDC restarted under
    callgrind."""
    counts = {}
    outdir = tempfile.mkdtemp(prefix='tk-spray-cg-')
    try:
        for r in realms:
            out = os.path.join(outdir, r.label)
            with contextlib.redirect_stdout(io.StringIO()):
                r.stop_kdc()
                r.kdc = r._start(['valgrind', '--tool=callgrind',
                                  '--callgrind-out-file=' + out,
                                  harness.KRB5KDC, '-n'], 'starting...')
            client = asreq.Client(r.kdc_port, timeout=60)
            for _ in range(max(1, n // 10)):
                check_reply(r, client.exchange(request_for(r)), False)
            subprocess.run(['callgrind_control', '-z', str(r.kdc.pid)],
                           check=True, capture_output=True, timeout=120)
            for _ in range(n):
                check_reply(r, client.exchange(request_for(r)), False)
            subprocess.run(['callgrind_control', '-d', str(r.kdc.pid)],
                           check=True, capture_output=True, timeout=120)
            client.close()
            deadline = time.monotonic() + 60
            total = None
            while total is None and time.monotonic() < deadline:
                try:
                    with open(out + '.1') as f:
                        m = re.search(r'^totals: (\d+)', f.read(), re.M)
                    total = int(m.group(1)) if m else None
                except FileNotFoundError:
                    pass
                time.sleep(0.2)
            if total is None:
                raise BenchError('no callgrind dump from the %s KDC' %
                                 r.label)
            counts[r.label] = total / n
            with contextlib.redirect_stdout(io.StringIO()):
                r.stop_kdc()
    finally:
        shutil.rmtree(outdir, ignore_errors=True)
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--rounds', type=int, default=7)
    ap.add_argument('--requests', type=int, default=10000,
                    help='AS-REQs per round')
    ap.add_argument('--warmup', type=int, default=1000)
    ap.add_argument('--keytypes', default='ec,rsa')
    ap.add_argument('--max-other', type=float, default=10.0, metavar='PCT',
                    help='run a round again if other processes used more '
                    'than PCT%% of a CPU (default 10)')
    ap.add_argument('--retries', type=int, default=3)
    ap.add_argument('--callgrind', type=int, default=0, metavar='N',
                    help='also count KDC instructions per request under '
                    'callgrind, N requests per realm (e.g. 3000)')
    ap.add_argument('--json', help='write every round here')
    args = ap.parse_args()
    if args.callgrind and not (shutil.which('valgrind') and
                               shutil.which('callgrind_control')):
        ap.error('--callgrind needs valgrind and callgrind_control')
    keytypes = args.keytypes.split(',')
    began = time.monotonic()
    realms = make_realms(keytypes)
    try:
        clients = {r.label: asreq.Client(r.kdc_port) for r in realms}
        for r in realms:
            run_round(r, clients[r.label], args.warmup, [])
        rounds = []
        for k in range(args.rounds):
            shift = k % len(realms)
            for r in realms[shift:] + realms[:shift]:
                others = [o for o in realms if o is not r]
                for _ in range(args.retries + 1):
                    res = run_round(r, clients[r.label], args.requests,
                                    others)
                    if res['other_pct'] <= args.max_other:
                        break
                res['round'] = k
                rounds.append(res)
                print('round %d %-5s %7.1f us/request (%.0f/s), other %.0f%%'
                      % (k + 1, r.label, res['kdc_us'], res['rate'],
                         res['other_pct']), flush=True)
        for c in clients.values():
            c.close()
        instructions = callgrind_pass(realms, args.callgrind) \
            if args.callgrind else {}
    finally:
        with contextlib.redirect_stdout(io.StringIO()):
            for r in realms:
                r.stop()

    def of(label, k=None):
        return [x['kdc_us'] for x in rounds if x['realm'] == label and
                (k is None or x['round'] == k)]

    stock = statistics.median(of('stock'))
    print()
    print('KDC CPU per unauthenticated AS-REQ, median of %d rounds of %d '
          'requests (%.0f s in all); %d CPUs; other processes used at most '
          '%.0f%% of a CPU in a round counted' % (
              args.rounds, args.requests, time.monotonic() - began,
              os.cpu_count(), max(x['other_pct'] for x in rounds)))
    print('%-34s %10s %8s %12s' % ('', 'us/request', 'ratio', 'round ratio'))
    print('%-34s %10.1f' % ('stock, bench-pa +requires_preauth', stock))
    summary = {'stock_us': stock, 'instructions': instructions}
    for kt in keytypes:
        tk = statistics.median(of(kt))
        paired = statistics.median(of(kt, k)[0] / of('stock', k)[0]
                                   for k in range(args.rounds))
        summary[kt] = {'us': tk, 'ratio': tk / stock, 'round_ratio': paired}
        print('%-34s %10.1f %8.2f %12.2f   goal <= %.1f: %s' % (
            'tempkey, %s KDC key, random name' %
            {'ec': 'EC P-256', 'rsa': 'RSA-2048'}.get(kt, kt), tk,
            tk / stock, paired, GOAL,
            'met' if max(tk / stock, paired) <= GOAL else 'NOT met'))
    if instructions:
        print('\nKDC instructions per request (callgrind, %d requests):' %
              args.callgrind)
        for label, count in instructions.items():
            print('  %-6s %9.0f  %.3f of stock' % (
                label, count, count / instructions['stock']))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'args': vars(args), 'rounds': rounds,
                       'summary': summary}, f, indent=1)
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (BenchError, harness.Failure, OSError) as e:
        print('spray: %s' % e, file=sys.stderr)
        sys.exit(1)
