#!/usr/bin/env python3
"""run.py - KDC throughput of a stock db2 realm against tempkey over db2.

One run creates two throwaway realms with tests/realm.py, made the same way
but for the database module (stock: database_module = main, db_library =
db2; tempkey: database_module = tk, db_library = tempkey over that same db2
section), each with its own single-process krb5kdc (no -w) on 127.0.0.1.
Both hold the same principals:

    bench-user     a user with a password, realm default flags (the client)
    bench-pa       a user with a password and +requires_preauth
    HTTP/bench     tempkey realm: managed, a temporary key from
                   "tempkey-admin set"; stock realm: addprinc -randkey
    host/bench     unmanaged (addprinc -randkey) in both

For each scenario and client count it runs --rounds rounds per realm,
interleaved with the order alternating (stock, tempkey), (tempkey, stock),
... so that drift and order effects fall on both; each round is --seconds
long, with that many bench/tkbench processes started together.  A round's
rate is the sum of its clients' successful exchanges per second; the KDC's
CPU time over the round (all threads, /proc schedstat) divided by the
exchanges gives its CPU cost per exchange.  Reported per scenario: the
median rate of each realm and their ratio tempkey/stock, and the median KDC
CPU per exchange.  Other processes' CPU use during each round is measured
(/proc/stat, less both KDCs, the clients and this script), since anything
else running skews a round: a round pair during which it exceeds
--max-other of one CPU is run again, up to --retries times.

--fresh-kdc restarts the KDC before every round, so that each round also
samples a new KDC process (its memory layout) rather than the same two
processes throughout.

--callgrind N adds a noise-free measurement: each KDC is restarted under
valgrind --tool=callgrind and N exchanges of each scenario (one client) are
counted in instructions executed by the KDC per exchange.

Run it as "make bench" (which builds bench/tkbench first), or directly:

    TK_BUILDDIR=. PYTHONPATH=tests python3 bench/run.py [--rounds N]
        [--seconds S] [--json FILE] [--callgrind N] [--fresh-kdc]

The module and tempkey-admin are copied at the start, so a rebuild of the
tree during the run does not change what the KDCs load.
"""

import argparse
import contextlib
import hashlib
import io
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import realm as harness
from benchlib import private_build

USER = 'bench-user'
PA_USER = 'bench-pa'
PASSWORD = 'bench-user-pw'
MANAGED = 'HTTP/bench'
PLAIN = 'host/bench'

# name -> tkbench mode, client, service, KDC requests per exchange, meaning
SCENARIOS = {
    'as': ('as', USER, None, 1,
           'AS exchange for %s (no preauth required: one request, no '
           'database write)' % USER),
    'as-preauth': ('as', PA_USER, None, 2,
                   'AS exchange for %s (+requires_preauth: two requests, '
                   'and db2 records the last successful authentication)' %
                   PA_USER),
    'tgs': ('tgs', USER, MANAGED, 1,
            'TGS exchange for %s (tempkey realm: managed, temporary key; '
            'stock: ordinary key)' % MANAGED),
    'tgs-plain': ('tgs', USER, PLAIN, 1,
                  'TGS exchange for %s (unmanaged in both realms)' % PLAIN),
}
DEFAULT_SCENARIOS = 'as,as-preauth,tgs,tgs-plain'
GOAL = 0.98
RESULT_RE = re.compile(r'^requests=(\d+) failures=(\d+) seconds=([\d.]+) '
                       r'rate=([\d.]+)$', re.M)
# How long before their common start the clients are launched.
START_DELAY = 0.3


class BenchError(Exception):
    pass


def parse_args():
    p = argparse.ArgumentParser(
        description='Compare KDC request rates: a stock db2 realm against '
        'tempkey over db2, in one run.')
    p.add_argument('--rounds', type=int, default=5,
                   help='timed rounds per realm per scenario and client '
                   'count (default 5; 0 with --callgrind for none)')
    p.add_argument('--seconds', type=float, default=3.0,
                   help='length of one round in seconds (default 3)')
    p.add_argument('--clients', default='1,2',
                   help='concurrent client processes, comma-separated '
                   '(default 1,2)')
    p.add_argument('--scenarios', default=DEFAULT_SCENARIOS,
                   help='comma-separated, from %s (default: all)' %
                   ', '.join(SCENARIOS))
    p.add_argument('--warmup', type=float, default=1.0,
                   help='seconds of unmeasured load per realm and scenario '
                   'before its rounds (default 1; 0 for none)')
    p.add_argument('--fresh-kdc', action='store_true',
                   help='restart the KDC before each round (followed by '
                   'its --warmup), so that every round runs in a new KDC '
                   'process')
    p.add_argument('--max-other', type=float, default=0.1,
                   metavar='FRACTION',
                   help='a round pair during which other processes used '
                   'more than FRACTION of one CPU is disturbed, and is run '
                   'again (default 0.1)')
    p.add_argument('--retries', type=int, default=1,
                   help='how many times a disturbed round pair is run again '
                   '(default 1); the last try counts anyway, flagged')
    p.add_argument('--purge-interval', default='60s',
                   help='purge_interval of the tk section (default 60s, the '
                   'module default; used by the tempkey realm only)')
    p.add_argument('--callgrind', type=int, default=0, metavar='N',
                   help='also count KDC instructions per exchange under '
                   'callgrind, N exchanges per scenario (e.g. 1000)')
    p.add_argument('--callgrind-dir', metavar='DIR',
                   help='keep the callgrind profiles in DIR')
    p.add_argument('--json', metavar='FILE',
                   help='also write configuration, every round and the '
                   'summary to FILE')
    p.add_argument('--tkbench', help='the load generator (default '
                   '$TK_BUILDDIR/bench/tkbench)')
    a = p.parse_args()
    if a.rounds < 0 or (a.rounds == 0 and a.callgrind == 0):
        p.error('--rounds must be positive (or 0 with --callgrind)')
    if a.seconds <= 0 or min(a.warmup, a.callgrind, a.retries,
                             a.max_other) < 0:
        p.error('--seconds must be positive; --warmup, --callgrind, '
                '--retries and --max-other not negative')
    try:
        a.clients = [int(c) for c in a.clients.split(',')]
    except ValueError:
        p.error('--clients: comma-separated numbers')
    if min(a.clients) < 1:
        p.error('--clients: each at least 1')
    a.scenarios = a.scenarios.split(',')
    for s in a.scenarios:
        if s not in SCENARIOS:
            p.error('unknown scenario %r' % s)
    if a.tkbench is None:
        a.tkbench = os.path.join(harness.BUILDDIR, 'bench', 'tkbench')
    if a.callgrind and not (shutil.which('valgrind') and
                            shutil.which('callgrind_control')):
        p.error('--callgrind needs valgrind and callgrind_control')
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
        krb5 = ''
    with open(os.path.join(harness.PLUGIN_DIR, 'tempkey.so'), 'rb') as f:
        plugin = hashlib.sha256(f.read()).hexdigest()
    src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(['git', '-C', src, 'rev-parse', '--short',
                               'HEAD'], capture_output=True,
                              text=True).stdout.strip()
        dirty = subprocess.run(['git', '-C', src, 'status', '--porcelain',
                                '--', 'lib', 'plugin'], capture_output=True,
                               text=True).stdout.strip()
    except OSError:
        head, dirty = '', ''
    return {'cpus': os.cpu_count(), 'cpu_model': model,
            'source': (head or 'unknown') + (' + local changes in lib/ or '
                                             'plugin/' if dirty else ''),
            'kernel': platform.release(), 'python': platform.python_version(),
            'krb5': krb5 or 'unknown', 'tempkey_so_sha256': plugin}


def loadavg():
    with open('/proc/loadavg') as f:
        return ' '.join(f.read().split()[:3])


def system_cpu():
    """(busy, steal) CPU seconds of the whole machine so far, /proc/stat."""
    with open('/proc/stat') as f:
        v = [int(x) for x in f.readline().split()[1:]]
    hz = os.sysconf('SC_CLK_TCK')
    # user nice system idle iowait irq softirq steal ...
    busy = v[0] + v[1] + v[2] + v[5] + v[6]
    return busy / hz, (v[7] if len(v) > 7 else 0) / hz


def own_cpu():
    """CPU seconds of this process, and of its waited-for children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def kdc_cpu(r):
    """CPU seconds of the realm's KDC so far, all its threads."""
    taskdir = '/proc/%d/task' % r.kdc.pid
    total = 0
    for tid in os.listdir(taskdir):
        try:
            with open(os.path.join(taskdir, tid, 'schedstat')) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass                # a thread that has just ended
    return total / 1e9


# ---- the realms

def make_realm(tempkey, args):
    """A realm made exactly like its twin but for the module, with the same
    principals and passwords."""
    r = harness.Realm(tempkey=tempkey, purge_interval=args.purge_interval)
    r.label = 'tempkey' if tempkey else 'stock'
    r.addprinc(USER, PASSWORD)
    r.kadmin_local('addprinc +requires_preauth -pw %s %s' % (PASSWORD,
                                                             PA_USER))
    r.addprinc(PLAIN)
    if tempkey:
        r.kadmin_local('addprinc -nokey ' + MANAGED)
        r.tempkey_admin('set', MANAGED, '--lifetime', '1d', '--keytab',
                        r.path('bench.keytab'))
        r.tempkey_admin('show', MANAGED, expected_msg=MANAGED)
    else:
        r.addprinc(MANAGED)
    # What the clients did, to compare with the KDC log at the end.
    r.expect = {'AS_REQ': 0, 'TGS_REQ': 0, 'NEEDED_PREAUTH': 0}
    return r


def log_tail(r, n=20):
    return ''.join(r.kdc_log_text().splitlines(True)[-n:])


def run_clients(r, args, scenario, nclients, seconds=None, count=None):
    """Run nclients tkbench processes together against r; return their
    (requests, seconds) and account for them in r.expect."""
    mode, client, service, legs, _ = SCENARIOS[scenario]
    start_at = time.time() + START_DELAY
    cmd = [args.tkbench, mode, '--principal', client, '--password',
           PASSWORD, '--start-at', '%.6f' % start_at]
    cmd += ['--seconds', '%g' % seconds] if count is None else \
        ['--count', str(count)]
    if service is not None:
        cmd += ['--service', service]
    procs = [subprocess.Popen(cmd, env=r.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for _ in range(nclients)]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=(seconds or 0) + 600)
            outs.append((p.returncode, out, err))
    except subprocess.TimeoutExpired:
        raise BenchError('%s realm, %s: tkbench did not finish; KDC log '
                         'tail:\n%s' % (r.label, scenario, log_tail(r)))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    results = []
    for code, out, err in outs:
        m = RESULT_RE.search(out)
        if code != 0 or m is None or int(m.group(2)) != 0:
            raise BenchError('%s realm, %s with %d client(s): tkbench exited '
                             '%d:\n%s%s\nKDC log tail:\n%s' % (
                                 r.label, scenario, nclients, code, out, err,
                                 log_tail(r)))
        results.append((int(m.group(1)), float(m.group(3))))
    n = sum(x[0] for x in results)
    if mode == 'as':
        r.expect['AS_REQ'] += n
        r.expect['NEEDED_PREAUTH'] += n * (legs - 1)
    else:
        r.expect['TGS_REQ'] += n
        r.expect['AS_REQ'] += nclients      # each client's TGT
    return results


def run_round(r, other, args, scenario, nclients, seconds):
    """One timed round against r; other is the idle realm.  Return the
    round's figures."""
    kdc0, idle0 = kdc_cpu(r), kdc_cpu(other)
    sys0, (self0, kids0) = system_cpu(), own_cpu()
    results = run_clients(r, args, scenario, nclients, seconds=seconds)
    kdc1, idle1 = kdc_cpu(r), kdc_cpu(other)
    sys1, (self1, kids1) = system_cpu(), own_cpu()
    if r.kdc.poll() is not None:
        raise BenchError('%s realm: the KDC exited (%d)' % (
            r.label, r.kdc.returncode))
    requests = sum(n for n, _ in results)
    kdc_s, clients_s = kdc1 - kdc0, kids1 - kids0
    # Busy time of the machine not spent by this KDC, its clients, the idle
    # KDC or this script: someone else's work (10 ms tick resolution).
    foreign = ((sys1[0] - sys0[0]) - kdc_s - clients_s - (idle1 - idle0) -
               (self1 - self0))
    return {'requests': requests,
            'seconds': round(max(s for _, s in results), 3),
            'rate': round(sum(n / s for n, s in results), 1),
            'kdc_cpu_s': round(kdc_s, 4),
            'kdc_cpu_us': round(kdc_s * 1e6 / max(requests, 1), 2),
            'clients_cpu_s': round(clients_s, 3),
            'other_cpu_s': round(max(foreign, 0.0), 2),
            'steal_s': round(sys1[1] - sys0[1], 2)}


# ---- instruction counts

def callgrind_pass(realms, args, outdir):
    """Restart each KDC under callgrind; return {(scenario, label): KDC
    instructions per exchange}."""
    counts = {}
    for r in realms:
        r.stop_kdc()
        base = os.path.join(outdir, 'callgrind.%s' % r.label)
        r.kdc = r._start(['valgrind', '--tool=callgrind',
                          '--callgrind-out-file=' + base, harness.KRB5KDC,
                          '-n'], 'starting...')
        dumps = 0

        def dump():
            nonlocal dumps
            subprocess.run(['callgrind_control', '-d', str(r.kdc.pid)],
                           check=True, capture_output=True, timeout=120)
            dumps += 1
            path = '%s.%d' % (base, dumps)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    with open(path) as f:
                        m = re.search(r'^totals: (\d+)', f.read(), re.M)
                    if m:
                        return path, int(m.group(1))
                except FileNotFoundError:
                    pass
                time.sleep(0.2)
            raise BenchError('no callgrind dump %s' % path)

        # Start-up and each scenario's first exchanges are not counted:
        # one-time work (the ratchet derives the wrapping keys up to a
        # key's expiry once per process) is not the per-exchange cost.
        for s in args.scenarios:
            run_clients(r, args, s, 1, count=10)
        dump()
        for s in args.scenarios:
            results = run_clients(r, args, s, 1, count=args.callgrind)
            path, total = dump()
            os.rename(path, '%s.%s.out' % (base, s))
            counts[(s, r.label)] = total / results[0][0]
        r.stop_kdc()
        if os.path.exists(base):
            os.rename(base, base + '.rest.out')
    return counts


# ---- the KDC logs

LOG_PREFIX = re.compile(r'^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ krb5kdc\[\d+\]')


def check_log(r):
    """Count issued tickets and preauth requests in r's KDC log; gather
    every other kind of line (numbers folded) with its count."""
    seen = {'AS_REQ': 0, 'TGS_REQ': 0, 'NEEDED_PREAUTH': 0}
    other = {}
    for line in r.kdc_log_text().splitlines():
        kind = line.split('): ', 1)[1].split(' ', 1)[0] \
            if '): ' in line else ''
        if kind in seen and ': ISSUE: ' in line:
            seen[kind] += 1
            continue
        if kind == 'AS_REQ' and ': NEEDED_PREAUTH: ' in line:
            seen['NEEDED_PREAUTH'] += 1
            continue
        key = LOG_PREFIX.sub('', line)
        key = re.sub(r'\{[^}]*\}', '{...}', key)
        key = re.sub(r'\d{4,}', 'N', key)
        other[key] = other.get(key, 0) + 1
    return seen, other


# ---- reporting

def summarize(results, args):
    rows = []
    for s in args.scenarios:
        for c in args.clients:
            rs = results[(s, c)]
            st = [x['rate'] for x in rs['stock']]
            tk = [x['rate'] for x in rs['tempkey']]
            pairs = [t / a for t, a in zip(tk, st)]
            st_cpu = statistics.median(x['kdc_cpu_us'] for x in rs['stock'])
            tk_cpu = statistics.median(x['kdc_cpu_us']
                                       for x in rs['tempkey'])
            rows.append({
                'scenario': s, 'clients': c,
                'stock_rate': statistics.median(st),
                'tempkey_rate': statistics.median(tk),
                'ratio': round(statistics.median(tk) /
                               statistics.median(st), 4),
                'pair_ratio_min': round(min(pairs), 4),
                'pair_ratio_max': round(max(pairs), 4),
                'stock_kdc_cpu_us': st_cpu, 'tempkey_kdc_cpu_us': tk_cpu,
                'kdc_cpu_ratio': round(tk_cpu / st_cpu, 4),
            })
    return rows


def print_table(rows):
    fmt = '%-10s %3s %9s %9s %6s %13s %7s %7s %6s'
    print(fmt % ('', '', 'stock', 'tempkey', 'ratio', 'round ratios',
                 'KDC CPU', 'us/exch', 'CPU'))
    print(fmt % ('scenario', 'cl', 'exch/s', 'exch/s', 'tk/st', 'min-max',
                 'stock', 'tempkey', 'tk/st'))
    print('-' * 80)
    for w in rows:
        print('%-10s %3d %9.1f %9.1f %6.3f %6.3f-%.3f %7.1f %7.1f %6.3f%s' % (
            w['scenario'], w['clients'], w['stock_rate'], w['tempkey_rate'],
            w['ratio'], w['pair_ratio_min'], w['pair_ratio_max'],
            w['stock_kdc_cpu_us'], w['tempkey_kdc_cpu_us'],
            w['kdc_cpu_ratio'], '' if w['ratio'] >= GOAL else ' <'))


def run_pair(stock, tk, args, scenario, nclients, i, setup_log):
    """Round i of both realms, in the order alternating with i."""
    pair = {}
    for r in (stock, tk) if i % 2 == 0 else (tk, stock):
        o = tk if r is stock else stock
        if args.fresh_kdc:
            with contextlib.redirect_stdout(setup_log):
                r.stop_kdc()
                r.start_kdc()
            if args.warmup > 0:
                run_clients(r, args, scenario, nclients, seconds=args.warmup)
        pair[r.label] = run_round(r, o, args, scenario, nclients,
                                  args.seconds)
    return pair


def run(args, info, out):
    """Everything between creating and stopping the realms."""
    setup_log = io.StringIO()
    realms = []
    try:
        try:
            with contextlib.redirect_stdout(setup_log):
                stock = make_realm(False, args)
                realms.append(stock)
                tk = make_realm(True, args)
                realms.append(tk)
        except harness.Failure:
            sys.stdout.write(setup_log.getvalue())
            raise
        print('stock realm: KDC pid %d, port %d; tempkey realm: KDC pid %d, '
              'port %d' % (stock.kdc.pid, stock.kdc_port, tk.kdc.pid,
                           tk.kdc_port))
        results = out['results'] = {}
        for s in args.scenarios if args.rounds else ():
            if args.warmup > 0 and not args.fresh_kdc:
                for r, o in ((stock, tk), (tk, stock)):
                    run_round(r, o, args, s, max(args.clients), args.warmup)
            for c in args.clients:
                rs = results[(s, c)] = {'stock': [], 'tempkey': []}
                for i in range(args.rounds):
                    for attempt in range(args.retries + 1):
                        pair = run_pair(stock, tk, args, s, c, i, setup_log)
                        busy = max(x['other_cpu_s'] for x in pair.values())
                        limit = args.max_other * args.seconds
                        a, b = pair['stock'], pair['tempkey']
                        print('  %-10s %d cl, round %d/%d: stock %7.1f/s '
                              '%5.1fus  tempkey %7.1f/s %5.1fus  (other CPU '
                              '%.2fs/%.2fs)%s' % (
                                  s, c, i + 1, args.rounds, a['rate'],
                                  a['kdc_cpu_us'], b['rate'],
                                  b['kdc_cpu_us'], a['other_cpu_s'],
                                  b['other_cpu_s'],
                                  '' if busy <= limit else
                                  ' disturbed, again' if
                                  attempt < args.retries else ' disturbed'))
                        sys.stdout.flush()
                        if busy <= limit:
                            break
                        out['redone'] = out.get('redone', 0) + (
                            attempt < args.retries)
                    for label, x in pair.items():
                        x['disturbed'] = busy > limit
                        rs[label].append(x)
        if args.callgrind:
            print('counting KDC instructions under callgrind (%d exchanges '
                  'per scenario, one client)...' % args.callgrind)
            sys.stdout.flush()
            outdir = args.callgrind_dir or tempfile.mkdtemp(prefix='tk-cg-')
            os.makedirs(outdir, exist_ok=True)
            try:
                out['callgrind'] = callgrind_pass(realms, args, outdir)
            finally:
                if not args.callgrind_dir:
                    shutil.rmtree(outdir, ignore_errors=True)
        out['logs'] = {r.label: (check_log(r), r.expect) for r in realms}
    finally:
        for r in realms:
            r.stop()


def main():
    args = parse_args()
    if not os.access(args.tkbench, os.X_OK):
        sys.exit('run.py: %s is missing; build it with "make bench/tkbench"'
                 % args.tkbench)
    if not os.path.exists(os.path.join(harness.PLUGIN_DIR, 'tempkey.so')):
        sys.exit('run.py: no tempkey.so in %s; run "make" first' %
                 harness.PLUGIN_DIR)
    # The tree may be rebuilt while we run: use a private copy of the
    # build, so every KDC loads the same one.
    with private_build():
        return bench(args)


def bench(args):
    info = machine_info()
    print('krb5-tempkey benchmark: stock db2 realm against tempkey over db2')
    print('machine: %d CPU(s), %s; Linux %s; %s' % (
        info['cpus'], info['cpu_model'], info['kernel'], info['krb5']))
    print('KDC: one krb5kdc -n per realm, single process (no -w); both KDCs '
          'and the clients share the %d CPU(s)' % info['cpus'])
    if args.rounds:
        print('timed: %d rounds per realm, %gs each, order alternating '
              'stock/tempkey then tempkey/stock; clients %s; warm-up %gs %s'
              % (args.rounds, args.seconds, ','.join(map(str, args.clients)),
                 args.warmup, 'after each KDC restart (a fresh KDC for '
                 'every round)' if args.fresh_kdc else 'per scenario (one '
                 'KDC process per realm throughout)'))
    print('module: a private copy of plugin/.libs/tempkey.so, sha256 %s '
          '(tree: %s); tempkey purge_interval %s' % (
              info['tempkey_so_sha256'][:16], info['source'],
              args.purge_interval))
    load_start = loadavg()
    print('load average at start: %s' % load_start)
    sys.stdout.flush()

    out = {}
    t0 = time.monotonic()
    try:
        run(args, info, out)
    except (BenchError, harness.Failure) as e:
        print('run.py: FAILED: %s' % e)
        return 1
    elapsed = time.monotonic() - t0
    load_end = loadavg()

    print()
    for s in args.scenarios:
        print('%-10s %s' % (s, SCENARIOS[s][4]))
    rows = []
    if args.rounds:
        rows = summarize(out['results'], args)
        print()
        print('Medians over %d rounds of %gs.  exch/s: successful exchanges '
              'per second, summed over the clients (cl); ratio: median '
              'tempkey / median stock (goal >= %.2f; "<" marks a miss); '
              'round ratios: tempkey/stock of each round pair; KDC CPU: '
              'the KDC\'s CPU microseconds per exchange.' % (
                  args.rounds, args.seconds, GOAL))
        print()
        print_table(rows)
    cg = out.get('callgrind')
    if cg:
        print()
        print('KDC instructions per exchange (callgrind, %d exchanges, one '
              'client):' % args.callgrind)
        print('%-10s %12s %12s %7s' % ('scenario', 'stock', 'tempkey',
                                       'tk/st'))
        for s in args.scenarios:
            a, b = cg[(s, 'stock')], cg[(s, 'tempkey')]
            print('%-10s %12.0f %12.0f %7.3f' % (s, a, b, b / a))
    print()
    mismatch = False
    for label, ((seen, other), expect) in out['logs'].items():
        ok = seen == expect
        mismatch |= not ok
        print('%s KDC log: %d AS and %d TGS tickets issued, %d preauth '
              'requests (clients: %d, %d, %d: %s)' % (
                  label, seen['AS_REQ'], seen['TGS_REQ'],
                  seen['NEEDED_PREAUTH'], expect['AS_REQ'],
                  expect['TGS_REQ'], expect['NEEDED_PREAUTH'],
                  'match' if ok else 'MISMATCH'))
        for line, n in sorted(other.items()):
            print('    %6d x %s' % (n, line))
    if args.rounds:
        allr = [(x['other_cpu_s'], x['steal_s'], s, c, label, i + 1)
                for (s, c), rs in out['results'].items()
                for label in ('stock', 'tempkey')
                for i, x in enumerate(rs[label])]
        worst = max(allr)
        print('other processes\' CPU during a round: median %.2fs, most '
              '%.2fs (%s, %d cl, %s round %d); steal: total %.2fs' % (
                  statistics.median(x[0] for x in allr), worst[0], worst[2],
                  worst[3], worst[4], worst[5], sum(x[1] for x in allr)))
        left = sum(x['disturbed'] for rs in out['results'].values()
                   for x in rs['stock'])
        print('round pairs run again because other processes used more than '
              '%g CPU: %d; disturbed pairs kept (after %d retr%s): %d' % (
                  args.max_other, out.get('redone', 0), args.retries,
                  'y' if args.retries == 1 else 'ies', left))
    print('load average at start %s, at end %s; total %.0fs' % (
        load_start, load_end, elapsed))

    if args.json:
        doc = {
            'machine': info, 'load_start': load_start, 'load_end': load_end,
            'config': {
                'rounds': args.rounds, 'seconds': args.seconds,
                'clients': args.clients, 'scenarios': args.scenarios,
                'warmup': args.warmup, 'purge_interval': args.purge_interval,
                'callgrind': args.callgrind, 'fresh_kdc': args.fresh_kdc,
                'max_other': args.max_other, 'retries': args.retries,
                'kdc': 'krb5kdc -n, single process (no -w)',
                'order': 'interleaved, alternating stock/tempkey and '
                         'tempkey/stock'},
            'scenarios': {s: SCENARIOS[s][4] for s in args.scenarios},
            'summary': rows,
            'rounds': [{'scenario': s, 'clients': c, 'realm': label,
                        'round': i + 1, **x}
                       for (s, c), rs in out.get('results', {}).items()
                       for label in ('stock', 'tempkey')
                       for i, x in enumerate(rs[label])],
            'callgrind_instructions_per_exchange': {
                s: {'stock': cg[(s, 'stock')], 'tempkey': cg[(s, 'tempkey')]}
                for s in args.scenarios} if cg else None,
            'kdc_log': {label: {'seen': v[0][0], 'expected': v[1],
                                'other': v[0][1]}
                        for label, v in out['logs'].items()},
            'redone_pairs': out.get('redone', 0),
            'elapsed_s': round(elapsed, 1),
        }
        with open(args.json, 'w') as f:
            json.dump(doc, f, indent=2)
            f.write('\n')
        print('wrote ' + args.json)
    return 1 if mismatch else 0


if __name__ == '__main__':
    sys.exit(main())
