#!/usr/bin/env python3
"""scale.py - tempkey over db2 at 10^5 to 10^6 services, against plain db2.

One run (make bench-scale) builds two throwaway realms with tests/realm.py,
made the same way but for the database module, each with its own
single-process krb5kdc (no -w) on 127.0.0.1:

    tempkey realm   N managed services HTTP/s<i>.test (one made with
                    "addprinc -nokey" and "tempkey-admin set --lifetime 1d",
                    cloned N-1 times in its dump line, one kdb5_util load)
    db2 realm       N plain services HTTP/s<i>.test (one made with
                    "addprinc -randkey", cloned the same way)

Both also hold bench-user (the client, with a password) and host/bench
(addprinc -randkey: plain in both).  The run has four parts:

1. build: how long the dump takes to write and kdb5_util load to load it;
2. rates: TGS exchanges for HTTP/s<N/2>.test ("managed": managed in the
   tempkey realm, a plain copy in the db2 one) and for host/bench ("plain"),
   with 1 and 2 client processes, --rounds rounds of --seconds per realm,
   interleaved with the order alternating; per round the rate and the
   latency (p50, p99, max over every request of every client, from
   tkbench --trace).  The tempkey KDC keeps --purge-interval (default 60s,
   the module default) so housekeeping runs as it would; each round says
   whether a purge pass overlapped it.  Then each KDC's VmRSS and VmHWM
   (/proc/PID/status);
3. housekeeping: the tempkey KDC restarted with purge_interval
   --hk-interval (default 5s), where every pass walks the whole database
   and finds nothing to purge, and restarted with --hk-off (default 1d),
   which is "off" for the length of a run: the module takes no 0 (tempkey(5):
   a positive duration), its first tick comes at a multiple of the interval
   plus a phase, and the run checks that no pass ran.  --hk-rounds windows
   of --hk-window seconds each, alternating, with 1 and 2 clients: the
   longest TGS wait in each window, and for the "on" KDC also within and
   outside the passes (a pass is a child process of the KDC, seen every
   10 ms in /proc);
4. mass expiry: --expire more managed services HTTP/x<i>.test whose keys all
   expire at the same second are added to the running tempkey realm
   (kdb5_util load -update) with purge_interval --hk-interval, and TGS load
   (one client for the managed service, one for host/bench) runs from
   --expire-lead seconds before the expiry until the pass that purges them
   logs "purge: pass done" (at most --expire-timeout seconds after the
   expiry): failed requests, the longest wait between the expiry and the
   pass's end, and the pass's times.

Everything lives in temp dirs; every daemon is stopped by its PID; loopback
only.  The module and tempkey-admin are copied at the start, so a rebuild
of the tree during the run does not change what the KDCs load.

    make bench/tkbench && make bench-scale [BENCH_ARGS='--n 1000000 --json F']
    TK_BUILDDIR=. PYTHONPATH=tests python3 bench/scale.py [--n N] [--json F]
"""

import argparse
import contextlib
import io
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import realm as harness
from benchlib import (children, clone_dump, log_line_kind, memory,
                      proc_state, snapshot_build, write_json)

import run as bench     # bench/run.py: machine and CPU accounting

USER = 'bench-user'
PASSWORD = 'bench-user-pw'
PLAIN = 'host/bench'
LIFETIME = '1d'         # of the N managed services' keys
# The module's default key_epoch: its epoch timer's SIGHUP can start a pass
# too (see avoid_epoch_step).
KEY_EPOCH = 300
START_DELAY = 0.3
RESULT_RE = re.compile(r'^requests=(\d+) failures=(\d+) seconds=([\d.]+) '
                       r'rate=([\d.]+)$', re.M)
PASS_DONE_RE = re.compile(r'purge: pass done: (\d+) key version\(s\) of '
                          r'(\d+) principal\(s\) in (\d+) ms')
# The goals (tracker: "Scale and load", item 4).
GOAL_RATE = 0.9         # TGS rate tempkey/db2 at N, at least
GOAL_RSS = 1.1          # KDC RSS tempkey/db2, at most
GOAL_STALL_MS = 10      # longest wait, housekeeping on minus off, at most


class BenchError(Exception):
    pass


def parse_args():
    p = argparse.ArgumentParser(
        description='TGS rate, latency, KDC memory and housekeeping stalls '
        'of tempkey over db2 at N managed services, against plain db2 at '
        'N plain ones, in one run.')
    p.add_argument('--n', type=int, default=100000,
                   help='services per realm (default 100000)')
    p.add_argument('--rounds', type=int, default=5,
                   help='rate rounds per realm, service and client count '
                   '(default 5)')
    p.add_argument('--seconds', type=float, default=5.0,
                   help='length of a rate round (default 5)')
    p.add_argument('--clients', default='1,2',
                   help='client processes, comma-separated (default 1,2)')
    p.add_argument('--warmup', type=float, default=1.0,
                   help='seconds of unmeasured load before each realm\'s '
                   'rounds and after each KDC restart (default 1)')
    p.add_argument('--purge-interval', default='60s',
                   help='purge_interval of the tempkey KDC during the rate '
                   'rounds (default 60s, the module default)')
    p.add_argument('--hk-interval', default='5s',
                   help='purge_interval with housekeeping on, and during '
                   'the mass expiry (default 5s)')
    p.add_argument('--hk-off', default='1d',
                   help='purge_interval that stands for "off" (default 1d; '
                   'the run checks that no pass ran)')
    p.add_argument('--hk-window', type=float, default=20.0,
                   help='seconds of load per housekeeping window (default '
                   '20)')
    p.add_argument('--hk-rounds', type=int, default=3,
                   help='windows per setting and client count (default 3)')
    p.add_argument('--expire', type=int, default=100000,
                   help='services whose keys expire together (default '
                   '100000; 0: no mass expiry)')
    p.add_argument('--expire-lead', type=float, default=5.0,
                   help='seconds of load before the expiry (default 5)')
    p.add_argument('--expire-timeout', type=float, default=600.0,
                   help='longest wait for the pass after the expiry '
                   '(default 600)')
    p.add_argument('--max-other', type=float, default=0.1,
                   metavar='FRACTION',
                   help='a rate round pair or housekeeping window during '
                   'which other processes used more than FRACTION of one '
                   'CPU is run again (default 0.1)')
    p.add_argument('--retries', type=int, default=2,
                   help='how many times a disturbed round pair or window '
                   'is run again (default 2); the last try is kept, '
                   'flagged')
    p.add_argument('--skip', default='',
                   help='comma-separated parts to leave out: rates, '
                   'housekeeping, expiry')
    p.add_argument('--json', metavar='FILE',
                   help='also write everything measured to FILE')
    p.add_argument('--tkbench', help='the load generator (default '
                   '$TK_BUILDDIR/bench/tkbench)')
    a = p.parse_args()
    if a.n < 2 or a.rounds < 1 or a.hk_rounds < 1 or a.expire < 0:
        p.error('--n at least 2, --rounds and --hk-rounds at least 1, '
                '--expire not negative')
    if min(a.seconds, a.hk_window, a.expire_lead, a.expire_timeout) <= 0 \
            or a.warmup < 0:
        p.error('durations must be positive (--warmup not negative)')
    try:
        a.clients = [int(c) for c in a.clients.split(',')]
    except ValueError:
        p.error('--clients: comma-separated numbers')
    if min(a.clients) < 1:
        p.error('--clients: each at least 1')
    a.skip = set(x for x in a.skip.split(',') if x)
    if a.skip - {'rates', 'housekeeping', 'expiry'}:
        p.error('--skip: rates, housekeeping or expiry')
    if a.tkbench is None:
        a.tkbench = os.path.join(harness.BUILDDIR, 'bench', 'tkbench')
    return a


def service(i):
    return 'HTTP/s%d.test' % i


def expiring(i):
    return 'HTTP/x%d.test' % i


def log(msg):
    print(msg)
    sys.stdout.flush()


# ---- /proc

class PassWatcher(threading.Thread):
    """Every step seconds, the realm's KDC's running children: each is a
    purge pass.  passes holds (start, end, CPU seconds), wall-clock, cur
    the one running [pid, start, CPU seconds so far]."""

    def __init__(self, r, step=0.01):
        super().__init__(daemon=True)
        self.r, self.step = r, step
        self.passes, self.cur = [], None
        self.lock = threading.Lock()
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            kdc = getattr(self.r, 'kdc', None)
            kids = {}
            if kdc is not None and kdc.poll() is None:
                for k in children(kdc.pid):
                    alive, cpu = proc_state(k)
                    if alive:
                        kids[k] = cpu
            now = time.time()
            with self.lock:
                if self.cur is not None and self.cur[0] not in kids:
                    self.passes.append((self.cur[1], now, self.cur[2]))
                    self.cur = None
                if kids and self.cur is None:
                    k = min(kids)
                    self.cur = [k, now, 0.0]
                if self.cur is not None:
                    self.cur[2] = kids[self.cur[0]]
            self.done.wait(self.step)

    def _overlapping(self, t0, t1):
        with self.lock:
            ps = list(self.passes)
            if self.cur is not None:
                ps.append((self.cur[1], max(t1, time.time()), self.cur[2]))
        return [p for p in ps if p[1] >= t0 and p[0] <= t1]

    def between(self, t0, t1):
        """The passes that overlap [t0, t1], a running one ending at t1."""
        return [(a, b) for a, b, _ in self._overlapping(t0, t1)]

    def cpu_between(self, t0, t1):
        """The CPU the passes used in [t0, t1], each pass's CPU spread
        evenly over its life."""
        return sum(c * (min(b, t1) - max(a, t0)) / max(b - a, 1e-3)
                   for a, b, c in self._overlapping(t0, t1))

    def stop(self):
        self.done.set()
        self.join()


# ---- the realms

def make_realm(tempkey, args, setup_log):
    """A realm of args.n services HTTP/s<i>.test (managed with tempkey),
    bench-user and host/bench, its KDC started; r.build has the times."""
    with contextlib.redirect_stdout(setup_log):
        r = harness.Realm(tempkey=tempkey, start_kdc=False,
                          purge_interval=args.purge_interval)
        r.label = 'tempkey' if tempkey else 'db2'
        r.addprinc(USER, PASSWORD)
        r.addprinc(PLAIN)
        if tempkey:
            r.kadmin_local('addprinc -nokey ' + service(0))
            r.tempkey_admin('set', service(0), '--lifetime', LIFETIME)
        else:
            r.addprinc(service(0))
        dump = r.path('scale.dump')
        gen = clone_dump(r, service(0), (service(i) for i in
                                         range(1, args.n)), dump)
        size = os.path.getsize(dump)
        t0 = time.monotonic()
        r.run([harness.KDB5_UTIL, 'load', dump], timeout=7200)
        load = time.monotonic() - t0
        os.unlink(dump)
        t0 = time.monotonic()
        r.start_kdc()
        start = time.monotonic() - t0
    r.build = {'dump_s': round(gen, 2), 'dump_bytes': size,
               'load_s': round(load, 2),
               'load_s_per_1e5': round(load * 1e5 / args.n, 2),
               'db_bytes': os.path.getsize(r.path('principal')),
               'kdc_start_s': round(start, 2)}
    return r


def set_purge(r, interval, setup_log):
    """Restart r's KDC with purge_interval = interval."""
    r.tk_section = re.sub(r'purge_interval = \S+',
                          'purge_interval = ' + interval, r.tk_section)
    with contextlib.redirect_stdout(setup_log):
        r.write_config()
        r.stop_kdc()
        r.start_kdc()


# ---- load

def start_clients(r, args, services, seconds, tmp, stoppable=False):
    """One tkbench tgs process per entry of services, started together."""
    start_at = time.time() + START_DELAY
    procs = []
    for k, s in enumerate(services):
        trace = os.path.join(tmp, 'trace.%d' % k)
        cmd = [args.tkbench, 'tgs', '--principal', USER, '--password',
               PASSWORD, '--service', s, '--start-at', '%.6f' % start_at,
               '--seconds', '%g' % seconds, '--trace', trace]
        if stoppable:
            cmd.append('--stoppable')
        procs.append((subprocess.Popen(cmd, env=r.env,
                                       stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True),
                      trace))
    return procs


def finish_clients(r, procs, timeout, failures_ok=False):
    """Wait for the clients; return (results, samples): results per client
    (requests, failures, seconds, rate), samples (start, us, ok) of every
    request of every client."""
    results, samples = [], []
    try:
        for p, trace in procs:
            try:
                out, err = p.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise BenchError('%s realm: tkbench did not finish'
                                 % r.label)
            m = RESULT_RE.search(out)
            if m is None or (p.returncode != 0 and not failures_ok) or \
                    (p.returncode not in (0, 1)):
                raise BenchError('%s realm: tkbench exited %d:\n%s%s' % (
                    r.label, p.returncode, out, err))
            if int(m.group(2)) and not failures_ok:
                raise BenchError('%s realm: %s failed requests:\n%s' % (
                    r.label, m.group(2), err))
            results.append({'requests': int(m.group(1)),
                            'failures': int(m.group(2)),
                            'seconds': float(m.group(3)),
                            'rate': float(m.group(4)),
                            'error': err.strip()[:300]})
            with open(trace) as f:
                for line in f:
                    a, b, c = line.split()
                    samples.append((float(a), float(b), c == '1'))
            os.unlink(trace)
    finally:
        for p, _ in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return results, samples


def pct(sorted_values, p):
    """Nearest-rank percentile of sorted values."""
    if not sorted_values:
        return 0.0
    rank = min(max(int(p / 100.0 * len(sorted_values) + 0.999999), 1),
               len(sorted_values))
    return sorted_values[rank - 1]


def latency(samples):
    us = sorted(s[1] for s in samples)
    return {'p50_ms': round(pct(us, 50) / 1000, 3),
            'p99_ms': round(pct(us, 99) / 1000, 3),
            'max_ms': round(pct(us, 100) / 1000, 3)}


def overlapping(samples, t0, t1):
    """The requests that were waiting at some time in [t0, t1]."""
    return [s for s in samples if s[0] <= t1 and s[0] + s[1] / 1e6 >= t0]


def timed_run(r, others, args, services, seconds, tmp):
    """Run the clients for seconds; the figures of the run."""
    kdc0 = bench.kdc_cpu(r)
    idle0 = sum(bench.kdc_cpu(o) for o in others)
    sys0, (self0, kids0) = bench.system_cpu(), bench.own_cpu()
    t0 = time.time()
    results, samples = finish_clients(r, start_clients(
        r, args, services, seconds, tmp), seconds + 120)
    t1 = time.time()
    kdc1 = bench.kdc_cpu(r)
    idle1 = sum(bench.kdc_cpu(o) for o in others)
    sys1, (self1, kids1) = bench.system_cpu(), bench.own_cpu()
    if r.kdc.poll() is not None:
        raise BenchError('%s realm: the KDC exited (%d)' % (
            r.label, r.kdc.returncode))
    requests = sum(x['requests'] for x in results)
    kdc_s = kdc1 - kdc0
    # Busy time not spent by the KDCs, the clients or this script: a
    # purge pass of the tempkey KDC (a child it reaps later) and anyone
    # else's work.
    other = ((sys1[0] - sys0[0]) - kdc_s - (idle1 - idle0) -
             (kids1 - kids0) - (self1 - self0))
    watcher = getattr(r, 'watcher', None)
    passes_cpu = watcher.cpu_between(t0, t1) if watcher else 0.0
    other -= passes_cpu
    return dict(latency(samples), **{
        'requests': requests,
        'rate': round(sum(x['rate'] for x in results), 1),
        'kdc_cpu_us': round(kdc_s * 1e6 / max(requests, 1), 2),
        'other_cpu_s': round(max(other, 0.0), 2),
        'passes_cpu_s': round(passes_cpu, 2),
        'wall': (t0, t1)}), samples


# ---- part 2: rates

def disturbed(runs, args, seconds):
    """The most CPU other processes used in any of runs if it is over
    --max-other of a CPU, else 0."""
    most = max(x['other_cpu_s'] for x in runs)
    return most if most > args.max_other * seconds else 0

def rates(db2, tk, args, tmp, out):
    kinds = (('managed', service(args.n // 2)), ('plain', PLAIN))
    rounds = out['rate_rounds'] = []
    for kind, s in kinds:
        for r, o in ((db2, tk), (tk, db2)):
            if args.warmup:
                timed_run(r, [o], args, [s] * max(args.clients),
                          args.warmup, tmp)
        for c in args.clients:
            for i in range(args.rounds):
                for attempt in range(args.retries + 1):
                    line, pair = [], []
                    for r in (db2, tk) if i % 2 == 0 else (tk, db2):
                        o = tk if r is db2 else db2
                        x, _ = timed_run(r, [o], args, [s] * c,
                                         args.seconds, tmp)
                        x['passes'] = len(tk.watcher.between(*x['wall'])) \
                            if r is tk else 0
                        del x['wall']
                        pair.append(dict(x, service=kind, clients=c,
                                         realm=r.label, round=i + 1))
                        line.append('%s %7.1f/s p50 %.2f p99 %.2f max %.1f '
                                    'ms%s' % (r.label, x['rate'],
                                              x['p50_ms'], x['p99_ms'],
                                              x['max_ms'], ' (pass)'
                                              if x['passes'] else ''))
                    busy = disturbed(pair, args, args.seconds)
                    log('  %-7s %d cl, round %d/%d: %s%s' % (
                        kind, c, i + 1, args.rounds, ';  '.join(line),
                        ' (other CPU %.1fs%s)' % (
                            busy, ', again' if attempt < args.retries
                            else ', kept') if busy else ''))
                    if not busy:
                        break
                    out['redone'] = out.get('redone', 0) + (
                        attempt < args.retries)
                for x in pair:
                    x['disturbed'] = bool(busy)
                rounds.extend(pair)
    rows = []
    for kind, _ in kinds:
        for c in args.clients:
            row = {'service': kind, 'clients': c}
            for label in ('db2', 'tempkey'):
                rs = [x for x in rounds if x['service'] == kind and
                      x['clients'] == c and x['realm'] == label]
                row[label] = {
                    'rate': statistics.median(x['rate'] for x in rs),
                    'p50_ms': statistics.median(x['p50_ms'] for x in rs),
                    'p99_ms': statistics.median(x['p99_ms'] for x in rs),
                    'max_ms': max(x['max_ms'] for x in rs),
                    'kdc_cpu_us': statistics.median(x['kdc_cpu_us']
                                                    for x in rs),
                    'rounds_with_pass': sum(1 for x in rs if x['passes'])}
                clean = [x['rate'] for x in rs if not x['passes']]
                row[label]['rate_without_pass'] = \
                    statistics.median(clean) if clean else None
            row['ratio'] = round(row['tempkey']['rate'] /
                                 row['db2']['rate'], 4)
            rows.append(row)
    out['rates'] = rows


# ---- part 3: housekeeping with nothing to purge

def avoid_epoch_step(seconds):
    """If a ratchet epoch starts within seconds, wait until just after it.
    At an epoch start the module's epoch timer sends the KDC a SIGHUP, and
    purge_due() tells it from the purge timer's by the ratchet having just
    stepped; a TGS request for a managed service may step the ratchet
    first, and the SIGHUP then starts a pass whatever purge_interval says
    (seen under load: 5 of 20 epoch steps with key_epoch 5s).  Windows that
    span no epoch start keep the "off" KDC off.  Return the seconds
    waited."""
    now = time.time()
    step = (int(now) // KEY_EPOCH + 1) * KEY_EPOCH
    if step - now > seconds:
        return 0.0
    time.sleep(step + 1.0 - now)
    return step + 1.0 - now


def housekeeping(tk, db2, args, tmp, setup_log, out):
    windows = out['hk_windows'] = []
    settings = (('on', args.hk_interval), ('off', args.hk_off))
    for c in args.clients:
        for i in range(args.hk_rounds):
            for name, interval in settings if i % 2 == 0 else \
                    settings[::-1]:
                for attempt in range(args.retries + 1):
                    waited = avoid_epoch_step(args.hk_window + args.warmup +
                                              15)
                    set_purge(tk, interval, setup_log)
                    if args.warmup:
                        timed_run(tk, [db2], args,
                                  [service(args.n // 2)] * c, args.warmup,
                                  tmp)
                    x, samples = timed_run(tk, [db2], args,
                                           [service(args.n // 2)] * c,
                                           args.hk_window, tmp)
                    busy = disturbed([x], args, args.hk_window)
                    if not busy or attempt == args.retries:
                        break
                    out['redone'] = out.get('redone', 0) + 1
                    log('  %d cl, %-3s: other processes used %.1f s of CPU '
                        'in the window, again' % (c, name, busy))
                x['disturbed'] = bool(busy)
                t0, t1 = x.pop('wall')
                passes = tk.watcher.between(t0, t1)
                inside = [s for a, b in passes
                          for s in overlapping(samples, a, b)]
                outside = set(samples) - set(inside)
                x.update(setting=name, purge_interval=interval, clients=c,
                         round=i + 1, passes=len(passes),
                         window=(round(t0, 3), round(t1, 3)),
                         waited_for_epoch_s=round(waited, 1),
                         pass_start=[round(a, 3) for a, _ in passes],
                         pass_s=[round(b - a, 3) for a, b in passes],
                         max_in_pass_ms=round(max(
                             (s[1] for s in inside), default=0) / 1000, 3),
                         max_outside_ms=round(max(
                             (s[1] for s in outside), default=0) / 1000, 3),
                         rss_kb=memory(tk.kdc.pid)['VmRSS'])
                windows.append(x)
                log('  %d cl, %-3s (purge_interval %s), window %d/%d: '
                    '%7.1f/s p99 %.2f max %.1f ms; other CPU %.1f s; '
                    '%d pass(es)%s' % (
                        c, name, interval, i + 1, args.hk_rounds, x['rate'],
                        x['p99_ms'], x['max_ms'], x['other_cpu_s'],
                        len(passes),
                        ' of %s s, max wait in them %.1f ms, outside '
                        '%.1f ms' % ('/'.join('%.2f' % p
                                               for p in x['pass_s']),
                                      x['max_in_pass_ms'],
                                      x['max_outside_ms'])
                        if passes else ''))
    rows = []
    for c in args.clients:
        row = {'clients': c}
        for name, _ in settings:
            ws = [w for w in windows if w['clients'] == c and
                  w['setting'] == name]
            row[name] = {
                'max_ms_median': statistics.median(w['max_ms'] for w in ws),
                'max_ms': max(w['max_ms'] for w in ws),
                'p99_ms': statistics.median(w['p99_ms'] for w in ws),
                'rate': statistics.median(w['rate'] for w in ws),
                'passes': sum(w['passes'] for w in ws),
                'passes_cpu_s': round(sum(w['passes_cpu_s'] for w in ws), 2),
                'disturbed': sum(w['disturbed'] for w in ws),
                'pass_s_median': statistics.median(
                    [p for w in ws for p in w['pass_s']] or [0])}
        row['diff_median_ms'] = round(row['on']['max_ms_median'] -
                                      row['off']['max_ms_median'], 3)
        row['diff_worst_ms'] = round(row['on']['max_ms'] -
                                     row['off']['max_ms'], 3)
        rows.append(row)
    out['housekeeping'] = rows


# ---- part 4: a mass expiry

def mass_expiry(tk, db2, args, tmp, setup_log, out):
    set_purge(tk, args.hk_interval, setup_log)
    x = args.expire
    # Time enough to load them before they expire: three times what the
    # build's load would take for x, and some.
    per = tk.build['load_s'] / args.n
    life = int(3 * per * x + 15 + args.expire_lead + args.warmup)
    with contextlib.redirect_stdout(setup_log):
        tk.kadmin_local('addprinc -nokey ' + expiring(0))
        _, expiry = tk.set_key(expiring(0), '%ds' % life)
        dump = tk.path('expire.dump')
        clone_dump(tk, expiring(0), (expiring(i) for i in range(1, x)),
                   dump, header_only=True)
        t0 = time.monotonic()
        tk.run([harness.KDB5_UTIL, 'load', '-update', dump], timeout=7200)
        load = time.monotonic() - t0
        os.unlink(dump)
    res = out['expiry'] = {'principals': x, 'lifetime_s': life,
                           'load_update_s': round(load, 2)}
    begin = expiry - args.expire_lead
    if time.time() > begin - 0.5:
        raise BenchError('the load of %d expiring services took %.1f s, '
                         'past their expiry' % (x, load))
    time.sleep(max(0.0, begin - START_DELAY - time.time()))
    offset = os.path.getsize(tk.kdc_log)
    rss0 = memory(tk.kdc.pid)
    bound = args.expire_lead + args.expire_timeout + 30
    procs = start_clients(tk, args, [service(args.n // 2), PLAIN], bound,
                          tmp, stoppable=True)
    done = None
    buf = ''
    cpu_at = None       # (wall, KDC CPU s) at the expiry
    with open(tk.kdc_log) as f:
        f.seek(offset)
        while time.time() < expiry + args.expire_timeout:
            if cpu_at is None and time.time() >= expiry:
                cpu_at = (time.time(), bench.kdc_cpu(tk))
            buf += f.read()
            for m in PASS_DONE_RE.finditer(buf):
                if int(m.group(2)) >= x:
                    done = (time.time(), m)
                    cpu_end = (time.time(), bench.kdc_cpu(tk))
                    break
            if done or any(p.poll() is not None for p, _ in procs):
                break
            buf = buf[buf.rfind('\n') + 1:]
            time.sleep(0.05)
    # A last second of load after the pass.
    time.sleep(1)
    for p, _ in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    results, samples = finish_clients(tk, procs, 60, failures_ok=True)
    end = done[0] if done else time.time()
    passes = [(a, b) for a, b in tk.watcher.between(expiry, end)
              if b >= expiry]
    purging = [(a, b) for a, b in passes if a >= expiry]
    if done and purging:
        end = min(end, purging[-1][1])
    before = [s for s in samples if s[0] + s[1] / 1e6 < expiry]
    during = overlapping(samples, expiry, end)
    res.update({
        'finished': done is not None,
        'pass_done_line': done[1].group(0) if done else None,
        'purged_versions': int(done[1].group(1)) if done else None,
        'pass_ms_logged': int(done[1].group(3)) if done else None,
        'pass_start_after_expiry_s': round(purging[-1][0] - expiry, 2)
        if purging else None,
        'pass_end_after_expiry_s': round(end - expiry, 2),
        'requests': sum(r['requests'] for r in results),
        'failures': sum(r['failures'] for r in results),
        'errors': [r['error'] for r in results if r['error']],
        'before': dict(latency(before), rate=round(
            len(before) / max(expiry - min((s[0] for s in samples),
                                           default=expiry), 1e-3), 1)),
        'during': dict(latency(during), rate=round(
            len(during) / max(end - expiry, 1e-3), 1)),
        'longest_waits': [
            {'start_after_expiry_s': round(s[0] - expiry, 3),
             'ms': round(s[1] / 1000, 2), 'ok': s[2]}
            for s in sorted(during, key=lambda s: -s[1])[:5]],
        'kdc_cpu_share_during': round(
            (cpu_end[1] - cpu_at[1]) / (cpu_end[0] - cpu_at[0]), 3)
        if done and cpu_at else None,
        'rss_kb_before': rss0['VmRSS'],
        'rss_kb_after': memory(tk.kdc.pid)['VmRSS'],
    })
    log('  %d services expired at %s; %s; %d requests, %d failed; '
        'longest wait until the pass ended %.1f ms' % (
            x, time.strftime('%H:%M:%S', time.gmtime(expiry)),
            res['pass_done_line'] or 'no pass done within %gs' %
            args.expire_timeout, res['requests'], res['failures'],
            res['during']['max_ms']))


# ---- the KDC logs

def check_log(r):
    """Issued tickets per kind and every other kind of line (numbers and
    names folded) with its count, reading the log as a stream."""
    seen, other = {'AS_REQ': 0, 'TGS_REQ': 0}, {}
    with open(r.kdc_log, errors='replace') as f:
        for line in f:
            kind = line.split('): ', 1)[1].split(' ', 1)[0] \
                if '): ' in line else ''
            if kind in seen and ': ISSUE: ' in line:
                seen[kind] += 1
                continue
            key = log_line_kind(line)
            other[key] = other.get(key, 0) + 1
    return seen, other


# ---- report

def mb(kb):
    return kb / 1024.0


def report(args, out):
    b = out['build']
    print()
    print('Build (N = %d): dump written, kdb5_util load, KDC start' % args.n)
    for label in ('db2', 'tempkey'):
        x = b[label]
        print('  %-7s dump %5.1f s (%4.0f MB), load %6.1f s (%.2f s per '
              '10^5), database %4.0f MB, KDC start %.2f s' % (
                  label, x['dump_s'], x['dump_bytes'] / 1e6, x['load_s'],
                  x['load_s_per_1e5'], x['db_bytes'] / 1e6,
                  x['kdc_start_s']))
    goals = []
    if 'rates' in out:
        print()
        print('TGS exchanges, medians over %d rounds of %g s (max: the '
              'longest wait in any round); tempkey purge_interval %s' % (
                  args.rounds, args.seconds, args.purge_interval))
        fmt = '%-8s %2s | %8s %6s %6s %7s | %8s %6s %6s %7s | %6s %s'
        print(fmt % ('service', 'cl', 'db2/s', 'p50ms', 'p99ms', 'max ms',
                     'tk/s', 'p50ms', 'p99ms', 'max ms', 'tk/db2',
                     'rounds with a pass; tk/db2 without them'))
        for w in out['rates']:
            a, t = w['db2'], w['tempkey']
            print('%-8s %2d | %8.1f %6.2f %6.2f %7.1f | %8.1f %6.2f %6.2f '
                  '%7.1f | %6.3f %d/%d; %s%s' % (
                      w['service'], w['clients'], a['rate'], a['p50_ms'],
                      a['p99_ms'], a['max_ms'], t['rate'], t['p50_ms'],
                      t['p99_ms'], t['max_ms'], w['ratio'],
                      t['rounds_with_pass'], args.rounds,
                      '%.3f' % (t['rate_without_pass'] / a['rate'])
                      if t['rate_without_pass'] else '-',
                      '' if w['ratio'] >= GOAL_RATE else '  <'))
        worst = min(w['ratio'] for w in out['rates'] if
                    w['service'] == 'managed')
        goals.append(('TGS rate tempkey/db2 (managed service) >= %.1f' %
                      GOAL_RATE, worst >= GOAL_RATE, 'lowest %.3f' % worst))
    if 'rss' in out:
        m = out['rss']
        ratio = m['tempkey']['VmRSS'] / m['db2']['VmRSS']
        print()
        print('KDC memory after the rate rounds: db2 VmRSS %.1f MB (peak '
              '%.1f), tempkey %.1f MB (peak %.1f): %.3f' % (
                  mb(m['db2']['VmRSS']), mb(m['db2']['VmHWM']),
                  mb(m['tempkey']['VmRSS']), mb(m['tempkey']['VmHWM']),
                  ratio))
        goals.append(('KDC RSS tempkey/db2 <= %.1f' % GOAL_RSS,
                      ratio <= GOAL_RSS, '%.3f' % ratio))
    if 'housekeeping' in out:
        print()
        print('Housekeeping with nothing to purge: the tempkey KDC with '
              'purge_interval %s (on) and %s (off), %d windows of %g s '
              'each' % (args.hk_interval, args.hk_off, args.hk_rounds,
                        args.hk_window))
        fmt = '%2s | %-24s | %-24s | %s'
        print(fmt % ('cl', 'on: max ms median/worst', 'off: max ms '
                     'median/worst', 'on-off ms median/worst; p99 ms on/off;'
                     ' on: passes, median pass s, their CPU s'))
        for w in out['housekeeping']:
            on, off = w['on'], w['off']
            print('%2d | %10.2f / %-11.2f | %10.2f / %-11.2f | %.2f / %.2f;'
                  ' %.2f/%.2f; %d, %.2f, %.1f; off: %d passes' % (
                      w['clients'], on['max_ms_median'], on['max_ms'],
                      off['max_ms_median'], off['max_ms'],
                      w['diff_median_ms'], w['diff_worst_ms'], on['p99_ms'],
                      off['p99_ms'], on['passes'], on['pass_s_median'],
                      on['passes_cpu_s'], off['passes']))
        worst = max(w['diff_median_ms'] for w in out['housekeeping'])
        worst2 = max(w['diff_worst_ms'] for w in out['housekeeping'])
        goals.append(('longest wait, housekeeping on - off <= %d ms' %
                      GOAL_STALL_MS, worst <= GOAL_STALL_MS,
                      'medians of the windows\' longest: %.2f ms; worst '
                      'windows: %.2f ms' % (worst, worst2)))
        off = [a for w in out['hk_windows'] if w['setting'] == 'off'
               for a in w['pass_start']]
        if off:
            goals.append(('no pass with housekeeping off', False,
                          'passes started %s s after an epoch start' %
                          ', '.join('%.2f' % (a % KEY_EPOCH) for a in off)))
    e = out.get('expiry')
    if e:
        print()
        print('Mass expiry: %d managed services\' keys expire at once, '
              'purge_interval %s, load on a managed and a plain service' %
              (e['principals'], args.hk_interval))
        print('  loaded (kdb5_util load -update) in %.1f s; pass started '
              '%s s and ended %.2f s after the expiry; %s' % (
                  e['load_update_s'], e['pass_start_after_expiry_s'],
                  e['pass_end_after_expiry_s'], e['pass_done_line'] or
                  'NOT FINISHED'))
        print('  before: %.1f/s p50 %.2f p99 %.2f max %.1f ms;  expiry to '
              'pass end: %.1f/s p50 %.2f p99 %.2f max %.1f ms' % (
                  e['before']['rate'], e['before']['p50_ms'],
                  e['before']['p99_ms'], e['before']['max_ms'],
                  e['during']['rate'], e['during']['p50_ms'],
                  e['during']['p99_ms'], e['during']['max_ms']))
        print('  %d requests, %d failed; KDC busy %s of a CPU from the '
              'expiry to the pass end; KDC VmRSS %.1f MB before, %.1f MB '
              'after' % (e['requests'], e['failures'],
                         '%.0f%%' % (100 * e['kdc_cpu_share_during'])
                         if e['kdc_cpu_share_during'] is not None else '?',
                         mb(e['rss_kb_before']), mb(e['rss_kb_after'])))
        print('  longest waits (s after the expiry: ms): %s' % ', '.join(
            '%.2f: %.1f' % (w['start_after_expiry_s'], w['ms'])
            for w in e['longest_waits']))
        for err in e['errors']:
            print('  client: ' + err)
        goals.append(('mass expiry of %d: 0 failed requests' %
                      e['principals'], e['failures'] == 0 and e['finished'],
                      '%d failed%s' % (e['failures'], '' if e['finished']
                                       else ', pass not finished')))
    runs = out.get('rate_rounds', []) + out.get('hk_windows', [])
    if runs:
        print()
        print('other processes\' CPU: median %.2f s per rate round, %.2f s '
              'per housekeeping window; run again: %d; disturbed, kept: '
              '%d' % (statistics.median([x['other_cpu_s'] for x in
                                         out.get('rate_rounds', [])] or
                                        [0]),
                      statistics.median([x['other_cpu_s'] for x in
                                         out.get('hk_windows', [])] or [0]),
                      out.get('redone', 0),
                      sum(x['disturbed'] for x in runs)))
    print()
    for label, (seen, other) in out['logs'].items():
        print('%s KDC log: %d AS and %d TGS tickets' % (
            label, seen['AS_REQ'], seen['TGS_REQ']))
        for line, n in sorted(other.items(), key=lambda x: -x[1])[:12]:
            print('    %7d x %s' % (n, line))
    print()
    print('Goals:')
    for what, ok, detail in goals:
        print('  %-50s %s (%s)' % (what, 'met' if ok else 'MISSED', detail))
    out['goals'] = [{'goal': w, 'met': ok, 'detail': d}
                    for w, ok, d in goals]


def run(args, out):
    setup_log = io.StringIO()
    realms = []
    tmp = tempfile.mkdtemp(prefix='tk-scale-')
    try:
        try:
            for tempkey in (False, True):
                log('building the %s realm: %d services...' % (
                    'tempkey' if tempkey else 'db2', args.n))
                r = make_realm(tempkey, args, setup_log)
                realms.append(r)
                log('  load %.1f s; KDC pid %d' % (r.build['load_s'],
                                                   r.kdc.pid))
        except harness.Failure:
            sys.stdout.write(setup_log.getvalue()[-20000:])
            raise
        db2, tk = realms
        out['build'] = {r.label: r.build for r in realms}
        tk.watcher = PassWatcher(tk)
        tk.watcher.start()
        out['rss_start'] = {r.label: memory(r.kdc.pid) for r in realms}
        if 'rates' not in args.skip:
            log('rates (%s rounds of %g s)...' % (args.rounds, args.seconds))
            rates(db2, tk, args, tmp, out)
            out['rss'] = {r.label: memory(r.kdc.pid) for r in realms}
        if 'housekeeping' not in args.skip:
            log('housekeeping windows...')
            housekeeping(tk, db2, args, tmp, setup_log, out)
        if args.expire and 'expiry' not in args.skip:
            log('mass expiry of %d...' % args.expire)
            mass_expiry(tk, db2, args, tmp, setup_log, out)
        tk.watcher.stop()
        out['passes_seen'] = len(tk.watcher.passes)
        out['logs'] = {r.label: check_log(r) for r in realms}
    finally:
        for r in realms:
            if hasattr(r, 'watcher'):
                r.watcher.done.set()
            r.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    args = parse_args()
    if not os.access(args.tkbench, os.X_OK):
        sys.exit('scale.py: %s is missing; build it with "make bench/tkbench"'
                 % args.tkbench)
    if not os.path.exists(os.path.join(harness.PLUGIN_DIR, 'tempkey.so')):
        sys.exit('scale.py: no tempkey.so in %s; run "make" first' %
                 harness.PLUGIN_DIR)
    snapshot = tempfile.mkdtemp(prefix='tk-scale-build-')
    try:
        snapshot_build(snapshot)
        return scale(args)
    finally:
        shutil.rmtree(snapshot, ignore_errors=True)


def scale(args):
    info = bench.machine_info()
    log('krb5-tempkey scale benchmark: N = %d managed (tempkey over db2) '
        'against N plain (db2)' % args.n)
    log('machine: %d CPU(s), %s; Linux %s; %s; module sha256 %s (tree: %s)'
        % (info['cpus'], info['cpu_model'], info['kernel'], info['krb5'],
           info['tempkey_so_sha256'][:16], info['source']))
    load_start = bench.loadavg()
    log('load average at start: %s' % load_start)
    out = {}
    t0 = time.monotonic()
    try:
        run(args, out)
    except (BenchError, harness.Failure) as e:
        print('scale.py: FAILED: %s' % e)
        return 1
    elapsed = time.monotonic() - t0
    report(args, out)
    print('load average at start %s, at end %s; total %.0f s' % (
        load_start, bench.loadavg(), elapsed))
    if args.json:
        doc = {'machine': info, 'config': {
            k: (sorted(v) if isinstance(v, set) else v)
            for k, v in vars(args).items()},
            'load_start': load_start, 'load_end': bench.loadavg(),
            'elapsed_s': round(elapsed, 1)}
        doc.update({k: v for k, v in out.items() if k != 'logs'})
        doc['kdc_log'] = {label: {'tickets': s, 'other': o}
                          for label, (s, o) in out['logs'].items()}
        write_json(args.json, doc)
    return 0


if __name__ == '__main__':
    sys.exit(main())
