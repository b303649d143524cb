#!/usr/bin/env python3
"""run.py - KDC throughput of a stock db2 realm against tempkey over db2.

One run creates two throwaway realms with tests/realm.py, identical except
for the database module (stock: db_library = db2; tempkey: db_library =
tempkey with backing_module = the same db2 section), each with its own
single-process krb5kdc (no -w) on 127.0.0.1.  Both hold the same principals:

    bench-user     a user with a password (the AS client, and the TGS client)
    HTTP/bench     tempkey realm: managed, a temporary key from
                   "tempkey-admin set"; stock realm: addprinc -randkey
    host/bench     unmanaged (addprinc -randkey) in both

For each scenario and client count it runs --rounds rounds per realm,
interleaved (the order alternates AB, BA, ... so drift and order effects
fall on both), each round --seconds long with that many bench/tkbench
processes started together.  A round's rate is the sum of its clients'
successful requests per second; the KDC's CPU time (all its threads, from
/proc schedstat) over the round gives its CPU cost per request.  Reported
per scenario: the median rate of each realm and tempkey/stock, and the
median KDC CPU per request.

Run it as "make bench" (which builds bench/tkbench), or directly:

    TK_BUILDDIR=. PYTHONPATH=tests python3 bench/run.py [--rounds N]
        [--seconds S] [--json FILE]
"""

import argparse
import contextlib
import io
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

import realm as harness

USER = 'bench-user'
USER_PW = 'bench-user-pw'
MANAGED = 'HTTP/bench'
PLAIN = 'host/bench'

# name -> (tkbench mode, service, description)
SCENARIOS = {
    'as': ('as', None, 'AS exchange for %s (password)' % USER),
    'tgs': ('tgs', MANAGED, 'TGS for %s (tempkey realm: managed, temporary '
            'key)' % MANAGED),
    'tgs-plain': ('tgs', PLAIN, 'TGS for %s (unmanaged in both)' % PLAIN),
}
DEFAULT_SCENARIOS = 'as,tgs,tgs-plain'
RESULT_RE = re.compile(r'^requests=(\d+) failures=(\d+) seconds=([\d.]+) '
                       r'rate=([\d.]+)$', re.M)
# How long before their common start the clients are launched.
START_DELAY = 0.3


class BenchError(Exception):
    pass


def parse_args():
    p = argparse.ArgumentParser(
        description='Compare KDC request rates: stock db2 realm against '
        'tempkey over db2, in one run.')
    p.add_argument('--rounds', type=int, default=5,
                   help='rounds per realm per scenario (default 5)')
    p.add_argument('--seconds', type=float, default=3.0,
                   help='length of one round in seconds (default 3)')
    p.add_argument('--clients', default='1,2',
                   help='concurrent client processes, comma-separated '
                   '(default 1,2)')
    p.add_argument('--scenarios', default=DEFAULT_SCENARIOS,
                   help='comma-separated, from %s (default %s)' % (
                       ', '.join(SCENARIOS), DEFAULT_SCENARIOS))
    p.add_argument('--warmup', type=float, default=1.0,
                   help='seconds of unmeasured load per realm and scenario '
                   'before the rounds (default 1; 0 for none)')
    p.add_argument('--purge-interval', default='60s',
                   help='tempkey purge_interval for the tempkey realm '
                   '(default 60s, the module default)')
    p.add_argument('--preauth', action='store_true',
                   help='create the user with +requires_preauth (an AS '
                   'exchange is then two KDC requests)')
    p.add_argument('--json', metavar='FILE',
                   help='also write configuration, every round and the '
                   'summary to FILE')
    p.add_argument('--tkbench', help='the load generator (default '
                   '$TK_BUILDDIR/bench/tkbench)')
    a = p.parse_args()
    if a.rounds < 1 or a.seconds <= 0 or a.warmup < 0:
        p.error('--rounds and --seconds must be positive')
    try:
        a.clients = [int(c) for c in a.clients.split(',')]
    except ValueError:
        p.error('--clients: comma-separated numbers')
    if not a.clients or min(a.clients) < 1:
        p.error('--clients: each at least 1')
    a.scenarios = a.scenarios.split(',')
    for s in a.scenarios:
        if s not in SCENARIOS:
            p.error('unknown scenario %r' % s)
    if a.tkbench is None:
        a.tkbench = os.path.join(harness.BUILDDIR, 'bench', 'tkbench')
    return a


# ---- the machine

def machine_info():
    model = 'unknown'
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    model = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        krb5 = subprocess.run(['krb5-config', '--version'],
                              capture_output=True, text=True).stdout.strip()
    except OSError:
        krb5 = 'unknown'
    return {'cpus': os.cpu_count(), 'cpu_model': model,
            'kernel': platform.release(), 'python': platform.python_version(),
            'krb5': krb5 or 'unknown'}


def loadavg():
    with open('/proc/loadavg') as f:
        return ' '.join(f.read().split()[:3])


def kdc_cpu_ns(r):
    """CPU time of the realm's KDC so far, all threads, in nanoseconds."""
    pid = r.kdc.pid
    total = 0
    taskdir = '/proc/%d/task' % pid
    for tid in os.listdir(taskdir):
        try:
            with open(os.path.join(taskdir, tid, 'schedstat')) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass                # a thread that just ended
    return total


# ---- the realms

def make_realm(tempkey, args):
    """A realm made exactly like its twin but for the module; same
    principals and passwords."""
    r = harness.Realm(tempkey=tempkey, purge_interval=args.purge_interval)
    r.label = 'tempkey' if tempkey else 'stock'
    flags = '+requires_preauth ' if args.preauth else ''
    r.kadmin_local('addprinc %s-pw %s %s' % (flags, USER_PW, USER))
    r.addprinc(PLAIN)
    if tempkey:
        r.kadmin_local('addprinc -nokey ' + MANAGED)
        r.tempkey_admin('set', MANAGED, '--lifetime', '1d', '--keytab',
                        r.path('bench.keytab'))
        out = r.tempkey_admin('show', MANAGED)
        if MANAGED not in out:
            raise BenchError('tempkey-admin show does not list %s:\n%s' %
                             (MANAGED, out))
    else:
        r.addprinc(MANAGED)
    # The clients' expectations, to compare with the KDC log at the end.
    r.expect = {'AS_REQ': 0, 'TGS_REQ': 0}
    return r


# ---- one round

def run_round(r, args, scenario, nclients, seconds):
    """Run nclients tkbench processes together against r for seconds;
    return the round's figures."""
    mode, service, _ = SCENARIOS[scenario]
    start_at = time.time() + START_DELAY
    cmd = [args.tkbench, mode, '--principal', USER, '--password', USER_PW,
           '--seconds', '%g' % seconds, '--start-at', '%.6f' % start_at]
    if service is not None:
        cmd += ['--service', service]
    cpu0 = kdc_cpu_ns(r)
    procs = [subprocess.Popen(cmd, env=r.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for _ in range(nclients)]
    outs = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=seconds + START_DELAY + 60)
        except subprocess.TimeoutExpired:
            for q in procs:
                if q.poll() is None:
                    q.kill()
                    q.wait()
            raise BenchError('%s realm: tkbench did not finish' % r.label)
        outs.append((p.returncode, out, err))
    cpu1 = kdc_cpu_ns(r)
    if r.kdc.poll() is not None:
        raise BenchError('%s realm: the KDC exited (%d)' % (
            r.label, r.kdc.returncode))

    requests, rate, elapsed = 0, 0.0, 0.0
    for code, out, err in outs:
        m = RESULT_RE.search(out)
        if code != 0 or m is None or int(m.group(2)) != 0:
            raise BenchError('%s realm, %s with %d client(s): tkbench exited '
                             '%d:\n%s%s\nKDC log tail:\n%s' % (
                                 r.label, scenario, nclients, code, out, err,
                                 log_tail(r)))
        requests += int(m.group(1))
        elapsed = max(elapsed, float(m.group(3)))
        rate += int(m.group(1)) / float(m.group(3))
    # Every AS exchange is one AS_REQ (two with required preauth); a TGS
    # client first gets its TGT.
    if mode == 'as':
        r.expect['AS_REQ'] += requests
        kdc_requests = requests * (2 if args.preauth else 1)
    else:
        r.expect['TGS_REQ'] += requests
        r.expect['AS_REQ'] += nclients
        kdc_requests = requests + nclients * (2 if args.preauth else 1)
    return {'requests': requests, 'seconds': round(elapsed, 3),
            'rate': round(rate, 1),
            'kdc_cpu_s': round((cpu1 - cpu0) / 1e9, 4),
            'kdc_cpu_us_per_req': round((cpu1 - cpu0) / 1e3 /
                                        max(kdc_requests, 1), 2)}


def log_tail(r, n=20):
    return ''.join(r.kdc_log_text().splitlines(True)[-n:])


# ---- the KDC logs

LOG_PREFIX = re.compile(r'^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ krb5kdc\[\d+\]')


def check_log(r):
    """Count issued tickets in r's KDC log; collect every other kind of
    line (timestamps and numbers folded) with its count."""
    issued = {'AS_REQ': 0, 'TGS_REQ': 0}
    other = {}
    for line in r.kdc_log_text().splitlines():
        kind = line.split('): ', 1)[1].split(' ', 1)[0] if '): ' in line \
            else ''
        if kind in issued and ': ISSUE: ' in line:
            issued[kind] += 1
            continue
        if kind == 'AS_REQ' and 'NEEDED_PREAUTH' in line:
            key = 'AS_REQ ... NEEDED_PREAUTH (expected with --preauth)'
        else:
            key = LOG_PREFIX.sub('', line)
            key = re.sub(r'\d{6,}', 'N', key)
            key = re.sub(r'\{[^}]*\}', '{...}', key)
        other[key] = other.get(key, 0) + 1
    return issued, other


# ---- reporting

def summarize(results, scenarios, clients):
    rows = []
    for s in scenarios:
        for c in clients:
            rs = results[(s, c)]
            st = [x['rate'] for x in rs['stock']]
            tk = [x['rate'] for x in rs['tempkey']]
            st_cpu = [x['kdc_cpu_us_per_req'] for x in rs['stock']]
            tk_cpu = [x['kdc_cpu_us_per_req'] for x in rs['tempkey']]
            pairs = [t / s_ for t, s_ in zip(tk, st) if s_ > 0]
            rows.append({
                'scenario': s, 'clients': c,
                'stock_median': statistics.median(st),
                'tempkey_median': statistics.median(tk),
                'ratio': statistics.median(tk) / statistics.median(st),
                'pair_ratio_min': min(pairs), 'pair_ratio_max': max(pairs),
                'stock_cpu_us': statistics.median(st_cpu),
                'tempkey_cpu_us': statistics.median(tk_cpu),
                'cpu_ratio': (statistics.median(tk_cpu) /
                              statistics.median(st_cpu)),
            })
    return rows


def print_table(rows, goal):
    head = ('%-10s %7s %11s %11s %7s %13s  %13s %7s' % (
        'scenario', 'clients', 'stock/s', 'tempkey/s', 'ratio',
        'pair min-max', 'KDC us/req', 'cpu'))
    print(head)
    print('%-10s %7s %11s %11s %7s %13s  %13s %7s' % (
        '', '', '(median)', '(median)', 'tk/st', 'tk/st', 'stock  tk',
        'tk/st'))
    print('-' * len(head))
    for w in rows:
        print('%-10s %7d %11.1f %11.1f %7.3f %6.3f-%.3f  %6.1f %6.1f %7.3f%s'
              % (w['scenario'], w['clients'], w['stock_median'],
                 w['tempkey_median'], w['ratio'], w['pair_ratio_min'],
                 w['pair_ratio_max'], w['stock_cpu_us'], w['tempkey_cpu_us'],
                 w['cpu_ratio'], '' if w['ratio'] >= goal else '  < %.2f' %
                 goal))


def main():
    args = parse_args()
    goal = 0.98
    if not os.access(args.tkbench, os.X_OK):
        sys.exit('run.py: %s is missing; build it with "make bench/tkbench"'
                 % args.tkbench)
    if not os.path.exists(os.path.join(harness.PLUGIN_DIR, 'tempkey.so')):
        sys.exit('run.py: no tempkey.so in %s; run "make" first' %
                 harness.PLUGIN_DIR)
    info = machine_info()
    print('krb5-tempkey benchmark: stock db2 realm vs tempkey over db2')
    print('machine: %d CPU(s), %s; kernel %s; %s' % (
        info['cpus'], info['cpu_model'], info['kernel'], info['krb5']))
    print('KDC: one krb5kdc process per realm (no -w, single-process); the '
          'clients and both KDCs share the %d CPU(s)' % info['cpus'])
    print('rounds: %d per realm per scenario, %gs each, interleaved '
          '(AB, BA, ...); clients: %s; warm-up %gs; user preauth: %s; '
          'tempkey purge_interval %s' % (
              args.rounds, args.seconds, ','.join(map(str, args.clients)),
              args.warmup, 'required' if args.preauth else 'realm default '
              '(not required)', args.purge_interval))
    load_start = loadavg()
    print('load average at start: %s' % load_start)
    sys.stdout.flush()

    setup_log = io.StringIO()
    realms = []
    results = {}
    t0 = time.monotonic()
    try:
        try:
            with contextlib.redirect_stdout(setup_log):
                stock = make_realm(False, args)
                realms.append(stock)
                tk = make_realm(True, args)
                realms.append(tk)
        except Exception:
            sys.stdout.write(setup_log.getvalue())
            raise
        print('stock realm: KDC pid %d port %d; tempkey realm: KDC pid %d '
              'port %d' % (stock.kdc.pid, stock.kdc_port, tk.kdc.pid,
                           tk.kdc_port))
        for s in args.scenarios:
            if args.warmup > 0:
                for r in (stock, tk):
                    run_round(r, args, s, max(args.clients), args.warmup)
            for c in args.clients:
                rs = results[(s, c)] = {'stock': [], 'tempkey': []}
                for i in range(args.rounds):
                    order = (stock, tk) if i % 2 == 0 else (tk, stock)
                    for r in order:
                        rs[r.label].append(run_round(r, args, s, c,
                                                     args.seconds))
                    print('  %-9s clients=%d round %d/%d: stock %8.1f/s  '
                          'tempkey %8.1f/s' % (
                              s, c, i + 1, args.rounds,
                              rs['stock'][-1]['rate'],
                              rs['tempkey'][-1]['rate']))
                    sys.stdout.flush()
        logs = {r.label: check_log(r) for r in realms}
    except BenchError as e:
        print('run.py: FAILED: %s' % e)
        return 1
    finally:
        for r in realms:
            r.stop()
    elapsed = time.monotonic() - t0
    load_end = loadavg()

    rows = summarize(results, args.scenarios, args.clients)
    print()
    print('Results (rate = successful requests/s summed over the clients; '
          'ratio = median tempkey / median stock, goal >= %.2f; pair = '
          'per-round ratios; KDC us/req = median KDC CPU microseconds per '
          'KDC request, all threads)' % goal)
    print()
    print_table(rows, goal)
    print()
    mismatch = False
    for label in ('stock', 'tempkey'):
        issued, other = logs[label]
        expect = [r for r in realms if r.label == label][0].expect
        ok = (issued['AS_REQ'] == expect['AS_REQ'] and
              issued['TGS_REQ'] == expect['TGS_REQ'])
        mismatch |= not ok
        print('%s KDC log: %d AS and %d TGS tickets issued (clients counted '
              '%d and %d: %s)' % (label, issued['AS_REQ'], issued['TGS_REQ'],
                                  expect['AS_REQ'], expect['TGS_REQ'],
                                  'match' if ok else 'MISMATCH'))
        for line, n in sorted(other.items()):
            print('    %6d x %s' % (n, line))
    print('load average at start %s, at end %s; total %.0fs' % (
        load_start, load_end, elapsed))

    if args.json:
        doc = {
            'machine': info, 'load_start': load_start, 'load_end': load_end,
            'config': {'rounds': args.rounds, 'seconds': args.seconds,
                       'clients': args.clients, 'scenarios': args.scenarios,
                       'warmup': args.warmup, 'preauth': args.preauth,
                       'purge_interval': args.purge_interval,
                       'kdc': 'krb5kdc -n, single process (no -w)',
                       'order': 'interleaved, alternating AB/BA'},
            'scenarios': {s: SCENARIOS[s][2] for s in args.scenarios},
            'summary': rows,
            'rounds': [{'scenario': s, 'clients': c, 'realm': label,
                        'round': i + 1, **x}
                       for (s, c), rs in results.items()
                       for label in ('stock', 'tempkey')
                       for i, x in enumerate(rs[label])],
            'kdc_log': {label: {'issued': logs[label][0],
                                'other': logs[label][1]}
                        for label in logs},
            'elapsed_s': round(elapsed, 1),
        }
        with open(args.json, 'w') as f:
            json.dump(doc, f, indent=2)
            f.write('\n')
        print('wrote ' + args.json)
    return 1 if mismatch else 0


if __name__ == '__main__':
    sys.exit(main())
