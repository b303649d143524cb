#!/usr/bin/env python3
"""ldapbench.py - uploads over kldap against db2, and multi-provider lag.

Two parts in one run, everything throwaway (tests/realm.py and
tests/ldap.py, temp dirs, 127.0.0.1, every daemon stopped by its PID):

1. Throughput.  Two realms side by side, made the same way but for the
   backing module: tempkey over db2 (one krb5kdc) and tempkey over kldap
   (one krb5kdc and one slapd from tests/ldap.py).  Each gets --servers
   enrolled services HTTP/s<i>.test (a 2 s untimed upbench run enrolls
   them).  Then --rounds rounds, each of: for every number of client
   processes in --clients (order alternating by round), one bench/upbench
   round of --seconds on each realm (which realm goes first alternating
   too), the servers split into disjoint lists between the clients.  Keys
   live --lifetime: short, so that no entry nears the cap of 64 live
   versions (at 500 uploads/s over 64 servers, 4 s keys leave about 31),
   and every round starts from entries whose keys have all expired (a
   realm's rounds are at least --lifetime apart; expired keys are dropped
   at the next store).  purge_interval is 1h, as in bench/uprun.py: no
   purge and no repair check (kldap's deferred re-read of each upload, see
   tempkey(5) settle_time) runs during the rounds.  Reported per backend
   and client count: the medians over the rounds of uploads/s and of the
   rounds' p50 and p99 latency (all the round's uploads), KDC CPU and (for
   kldap) slapd CPU per upload; then the ratios kldap/db2 of those medians
   and the range of the per-round rate ratios.

2. Lag.  Two slapd in multi-provider replication (ldap.provider_pair) and
   a KDC on each for one realm (as tests/integration/t_ldap.py's kdc_pair
   makes them), purge_interval --purge-interval (the module's default 1m,
   so that KDC A's repair checks run as deployed).  The lag of one upload
   is the time from ktupdate's exit through KDC A (the KDC's
   acknowledgement, the keytab settled and ktupdate's self-test against A
   done) until KDC B issues a ticket in the new kvno to a client that
   knows only KDC B: kvno every --probe seconds, each on a fresh copy of a
   TGT from B so that no cached ticket answers (bench/iplag.py's Sampler).
   The sampled service's keys live --lag-lifetime and its uploads start
   at least a fiftieth of that apart, so it never holds more than 50 live
   versions.  Phases:
     * idle: --uploads uploads, one after the other;
     * load: the same sampler while bench/upbench uploads flat out through
       KDC A for --load-seconds over --servers other services with keys of
       --load-lifetime, after a warm-up of twice that lifetime so that the
       entries have reached their steady size.
   Reported per phase: samples, median, p99 and max lag, how many
   samples KDC B served at the first probe (the lag is then bounded by
   the probe's own duration, also reported, and ktupdate's time after
   the store has covered the replication); the replication delay of every
   write made on a (its entryCSN time) until it reached b, seen by a
   persistent search on b (ldapsearch -E sync=rp); for load also
   upbench's own line, CPU per upload of each daemon, how long b took to
   catch up once the load stopped (both contextCSN sets equal), and KDC
   A's repair-check log lines.

Latency percentiles are nearest-rank (as upbench computes them).  Every
phase also reports "other": the machine's CPU use by anything but this
run's daemons and clients, in percent of all CPUs (another job on the
machine skews a figure).  This is a measurement, not a test: it fails
only when a tool fails or KDC B does not serve a kvno within --timeout.

    make bench/upbench && make bench-ldap [BENCH_ARGS="--uploads 100
        --load-seconds 60"]
"""

import argparse
import calendar
import contextlib
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ldap                 # noqa: E402 (tests/)
import realm as harness     # noqa: E402
from benchlib import UPBENCH, server_list, start_upbench  # noqa: E402
from uprun import (children_cpu, cpu_seconds, kv, machine_busy,  # noqa: E402
                   percentile, process_tree, NCPU)

SVC = 'HTTP/lag.test'
START_DELAY = 0.5


class BenchError(Exception):
    pass


def med(values):
    return statistics.median(values) if values else float('nan')


def parse_duration(text):
    m = re.fullmatch(r'(\d+)([smh]?)', text)
    if not m:
        sys.exit('ldapbench: durations are like 9s, 1m: %r' % text)
    return int(m.group(1)) * {'': 1, 's': 1, 'm': 60, 'h': 3600}[m.group(2)]


@contextlib.contextmanager
def quiet():
    """The harness's chatter, shown only if something fails."""
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter):
            yield
    except BaseException:
        sys.stdout.write(chatter.getvalue())
        raise


class CpuMeter:
    """CPU of some daemons, of reaped children, and of the machine."""

    def __init__(self, daemons):
        self.daemons = daemons      # name -> [pid]

    def snap(self):
        s = {name: cpu_seconds(pids) for name, pids in self.daemons.items()}
        s.update(clients=children_cpu(), machine=machine_busy(),
                 wall=time.monotonic())
        return s

    def delta(self, before):
        after = self.snap()
        d = {k: after[k] - before[k] for k in before}
        ours = sum(v for k, v in d.items() if k not in ('machine', 'wall'))
        d['other_pct'] = max(0.0, 100.0 * (d['machine'] - ours) /
                             (d['wall'] * NCPU))
        return d


# ---- part 1: throughput, kldap against db2

class Backend:
    """One realm (db2, or kldap with its own slapd) and its servers."""

    def __init__(self, name, nservers, clients):
        self.name = name
        self.slapd = None
        with quiet():
            if name == 'kldap':
                self.slapd = ldap.Slapd()
                self.realm = harness.Realm(backing='kldap', ldap=self.slapd,
                                           pki=True, purge_interval='1h')
            else:
                self.realm = harness.Realm(pki=True, purge_interval='1h')
            lines = []
            for i in range(nservers):
                princ = 'HTTP/s%d.test@%s' % (i, self.realm.realm)
                cert = self.realm.server_cert(princ)
                lines.append('%s %s %s\n' % (princ, cert.chain_pem,
                                             cert.key_pem))
        self.lists = {}
        for n in sorted(set(clients) | {1}):
            if n > nservers:
                raise BenchError('%d clients need at least %d servers' %
                                 (n, n))
            files = []
            for c in range(n):
                path = self.realm.path('servers-%d-%d' % (n, c))
                with open(path, 'w') as f:
                    f.writelines(lines[c::n])
                files.append(path)
            self.lists[n] = files
        daemons = {'kdc': process_tree(self.realm.kdc.pid)}
        if self.slapd is not None:
            daemons['slapd'] = [self.slapd.proc.pid]
        self.meter = CpuMeter(daemons)
        self.last_end = 0.0

    def stop(self):
        with quiet():
            self.realm.stop()
            if self.slapd is not None:
                self.slapd.destroy()

    def round(self, nclients, seconds, lifetime):
        # Every key of the previous round has expired.
        gap = self.last_end + parse_duration(lifetime) + 0.5 - \
            time.monotonic()
        if gap > 0:
            time.sleep(gap)
        files = [self.realm.path('lat-%d' % c) for c in range(nclients)]
        start_at = time.time() + START_DELAY
        argvs = [[UPBENCH, 'upload', '--certs', self.lists[nclients][c],
                  '--anchors', self.realm.ca.cert_pem, '--seconds',
                  str(seconds), '--lifetime', lifetime, '--samples',
                  files[c], '--start-at', '%.6f' % start_at]
                 for c in range(nclients)]
        procs = [subprocess.Popen(argv, env=self.realm.env,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
                 for argv in argvs]
        time.sleep(max(0.0, start_at - time.time()))
        before = self.meter.snap()
        outs = []
        for proc, argv in zip(procs, argvs):
            out, err = proc.communicate(timeout=seconds + 120)
            if proc.returncode != 0 and not (proc.returncode == 1 and
                                             'uploads=' in out):
                raise BenchError('%s exited %d:\n%s%s' % (
                    ' '.join(argv), proc.returncode, out, err))
            if proc.returncode == 1:
                sys.stdout.write('%s: %s' % (self.name, err))
            outs.append(kv(out.strip().splitlines()[-1]))
        cpu = self.meter.delta(before)
        self.last_end = time.monotonic()
        lat = []
        for path in files:
            with open(path) as f:
                lat += [float(v) for v in f.read().split()]
            os.unlink(path)
        lat.sort()
        uploads = sum(o['uploads'] for o in outs)
        per = 1000.0 / max(uploads, 1)
        return {'rate': sum(o['rate'] for o in outs), 'uploads': uploads,
                'failures': sum(o['failures'] for o in outs),
                'p50_ms': percentile(lat, 50), 'p99_ms': percentile(lat, 99),
                'kdc_ms': cpu['kdc'] * per,
                'slapd_ms': cpu.get('slapd', 0.0) * per,
                'client_ms': cpu['clients'] * per,
                'other_pct': cpu['other_pct']}


def throughput(args):
    print('# part 1: uploads/s, tempkey over kldap (one slapd, one krb5kdc) '
          'against tempkey over db2 (one krb5kdc); %d servers, keys of %s, '
          '%d rounds of %gs' % (args.servers, args.lifetime, args.rounds,
                                args.seconds), flush=True)
    backends = []
    try:
        for name in ('db2', 'kldap'):
            backends.append(Backend(name, args.servers, args.clients))
        for b in backends:         # enroll every server, untimed
            b.round(1, 2, args.lifetime)
        results = {(b.name, n): [] for b in backends for n in args.clients}
        for rnd in range(args.rounds):
            order = args.clients if rnd % 2 == 0 else args.clients[::-1]
            for i, n in enumerate(order):
                pair = backends if (rnd + i) % 2 == 0 else backends[::-1]
                for b in pair:
                    res = b.round(n, args.seconds, args.lifetime)
                    res['round'] = rnd
                    results[(b.name, n)].append(res)
                    if args.verbose:
                        print('  round %d %-5s clients=%d rate=%.1f '
                              'p50_ms=%.2f p99_ms=%.2f other_pct=%.0f' % (
                                  rnd + 1, b.name, n, res['rate'],
                                  res['p50_ms'], res['p99_ms'],
                                  res['other_pct']), flush=True)
    finally:
        for b in backends:
            b.stop()

    failures = 0
    for n in args.clients:
        meds = {}
        for name in ('db2', 'kldap'):
            rs = results[(name, n)]
            failures += sum(r['failures'] for r in rs)
            m = {k: med([r[k] for r in rs]) for k in
                 ('rate', 'p50_ms', 'p99_ms', 'kdc_ms', 'slapd_ms',
                  'client_ms', 'other_pct')}
            meds[name] = m
            print('%-5s clients=%d uploads_per_s=%.1f p50_ms=%.2f '
                  'p99_ms=%.2f kdc_cpu_ms_per_upload=%.3f%s '
                  'client_cpu_ms_per_upload=%.3f failures=%d other_pct=%.0f'
                  % (name, n, m['rate'], m['p50_ms'], m['p99_ms'],
                     m['kdc_ms'], (' slapd_cpu_ms_per_upload=%.3f' %
                                   m['slapd_ms']) if name == 'kldap' else '',
                     m['client_ms'], sum(r['failures'] for r in rs),
                     m['other_pct']))
        per_round = [k['rate'] / d['rate'] for d, k in
                     zip(results[('db2', n)], results[('kldap', n)])]
        print('ratio clients=%d kldap/db2 uploads_per_s=%.3f '
              '(rounds %.3f-%.3f) p50=%.2f p99=%.2f' % (
                  n, meds['kldap']['rate'] / meds['db2']['rate'],
                  min(per_round), max(per_round),
                  meds['kldap']['p50_ms'] / meds['db2']['p50_ms'],
                  meds['kldap']['p99_ms'] / meds['db2']['p99_ms']),
              flush=True)
    return failures


# ---- part 2: lag between two providers, a KDC on each

class Pair:
    """Two slapd in multi-provider replication and a KDC on each."""

    def __init__(self, purge_interval):
        self.a = self.b = self.ra = self.rb = None
        with quiet():
            self.a, self.b = ldap.provider_pair()
            self.ra = harness.Realm(backing='kldap', ldap=self.a, pki=True,
                                    purge_interval=purge_interval)
            self.ra.addprinc('user', 'user-pw')
            # B's KDC needs the realm's entries, which reach b by
            # replication.
            self.rb = harness.Realm(backing='kldap', ldap=self.b,
                                    share=self.ra, start_kdc=False,
                                    purge_interval=purge_interval)
            ldap.wait_in_sync([self.a, self.b])
            self.rb.start_kdc()
        self.meter = CpuMeter({
            'kdc_a': [self.ra.kdc.pid], 'kdc_b': [self.rb.kdc.pid],
            'slapd_a': [self.a.proc.pid], 'slapd_b': [self.b.proc.pid]})

    def stop(self):
        with quiet():
            for r in (self.rb, self.ra):
                if r is not None:
                    r.stop()
            for s in (self.b, self.a):
                if s is not None:
                    s.destroy()


class Sampler:
    """Upload SVC through KDC A and time KDC B serving it."""

    def __init__(self, pair, probe, timeout, lifetime):
        self.pair = pair
        self.probe = probe
        self.timeout = timeout
        self.lifetime = lifetime
        self.spacing = parse_duration(lifetime) / 50.0
        self.last_upload = 0.0
        ra, rb = pair.ra, pair.rb
        with quiet():
            self.cert = ra.server_cert(SVC)
            rb.kinit('user', 'user-pw')
        self.keytab = ra.path('lag.keytab')
        self.tgt = rb.ccache
        self.copy = rb.path('probe.ccache')
        self.probe_env = dict(rb.env, KRB5CCNAME='FILE:' + self.copy)
        self.reset()
        self.sample()           # enrolls SVC; not counted
        self.reset()

    def reset(self):
        self.ktupdate_s, self.probes, self.probe_s = [], [], []

    def upload(self):
        wait = self.last_upload + self.spacing - time.monotonic()
        self.paced = max(0.0, wait)
        if wait > 0:
            time.sleep(wait)
        self.last_upload = time.monotonic()
        ra = self.pair.ra
        out = subprocess.run(
            [harness.KTUPDATE, '--cert', self.cert.chain_pem, '--key',
             self.cert.key_pem, '--anchors', ra.ca.cert_pem, '--keytab',
             self.keytab, '--lifetime', self.lifetime],
            env=ra.env, capture_output=True, text=True, timeout=60)
        m = re.search(r'stored kvno (\d+) ', out.stdout)
        if out.returncode != 0 or not m:
            raise BenchError('ktupdate failed (%d): %s%s' % (
                out.returncode, out.stdout, out.stderr))
        return int(m.group(1))

    def served(self, kvno):
        shutil.copyfile(self.tgt, self.copy)
        out = subprocess.run([harness.KVNO, SVC], env=self.probe_env,
                             capture_output=True, text=True, timeout=30)
        return out.returncode == 0 and ('kvno = %d' % kvno) in out.stdout

    def sample(self):
        """The lag of one upload; also kept: how long ktupdate ran, how
        many probes it took, how long the successful probe took."""
        began = time.monotonic()
        kvno = self.upload()
        acked = time.monotonic()
        self.ktupdate_s.append(acked - began - self.paced)
        deadline = acked + self.timeout
        probes = 0
        while time.monotonic() < deadline:
            probed = time.monotonic()
            probes += 1
            if self.served(kvno):
                now = time.monotonic()
                self.probes.append(probes)
                self.probe_s.append(now - probed)
                return now - acked
            time.sleep(self.probe)
        raise BenchError('KDC B did not serve kvno %d within %ds' % (
            kvno, self.timeout))


class Watcher:
    """Every write made on slapd a, timed on its arrival at slapd b: a
    persistent search on b (ldapsearch -E sync=rp, line-buffered) prints
    each entry b stores, with its entryCSN, whose time is that of the write
    on a (the CSN's serverID 001; one machine, one clock).  The delay of a
    write is its arrival time minus its CSN time: replication plus the
    search's own delivery (a few tenths of a millisecond on loopback)."""

    def __init__(self, a, b):
        self.sid = '#%03x#' % a.server_id
        self.since = time.time()
        self.delays = []
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(
            ['stdbuf', '-oL', ldap.LDAPSEARCH, '-x', '-LLL', '-o',
             'ldif-wrap=no', '-H', b.uri, '-D', ldap.ROOT_DN, '-w',
             ldap.ROOT_PW, '-b', ldap.SUFFIX, '-E', '!sync=rp',
             '(krbPrincipalName=*)', 'entryCSN'],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            now = time.time()
            if not line.startswith('entryCSN: ') or self.sid not in line:
                continue
            stamp = line.split(': ', 1)[1]
            m = re.match(r'(\d{14})\.(\d{6})Z', stamp)
            if not m:
                continue
            written = calendar.timegm(time.strptime(
                m.group(1), '%Y%m%d%H%M%S')) + int(m.group(2)) / 1e6
            if written >= self.since:
                with self.lock:
                    self.delays.append(now - written)

    def take(self):
        """The delays recorded since the last take()."""
        with self.lock:
            out, self.delays = self.delays, []
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.thread.join(timeout=5)


def report_replication(name, delays):
    delays = sorted(delays)
    if not delays:
        print('replication %s writes=0' % name)
        return
    print('replication %s a_to_b writes=%d median_ms=%.1f p99_ms=%.1f '
          'max_ms=%.1f' % (name, len(delays), 1000 * percentile(delays, 50),
                           1000 * percentile(delays, 99),
                           1000 * delays[-1]), flush=True)


def upbench_line(proc):
    """upbench's result line, and its first error (or '')."""
    out, err = proc.communicate()
    lines = out.strip().splitlines()
    line = lines[-1] if lines else '(no output)'
    error = ''
    if proc.returncode != 0:
        error = 'exit=%d first_error: %s' % (
            proc.returncode, (err.strip().splitlines() or ['?'])[0])
    return line, error


def report_lag(name, lags, sampler, other_pct):
    """The lag figures, then what bounds them: how many samples KDC B
    served at the first probe (the lag is then that probe's own duration,
    median probe_ms), and how long ktupdate ran (from its start to its
    exit: replication had the part of that after the store, the self-test
    mostly)."""
    lags = sorted(lags)
    first = sum(1 for p in sampler.probes if p == 1)
    print('lag %-4s samples=%d median_ms=%.0f p99_ms=%.0f max_ms=%.0f '
          'served_at_first_probe=%d/%d probe_ms=%.0f ktupdate_ms=%.0f '
          'other_pct=%.0f' % (
              name, len(lags), 1000 * percentile(lags, 50),
              1000 * percentile(lags, 99), 1000 * max(lags), first,
              len(sampler.probes), 1000 * med(sampler.probe_s),
              1000 * med(sampler.ktupdate_s), other_pct), flush=True)
    sampler.reset()


REPAIR_LINES = (('rolled_back', 'was rolled back by a replicated write'),
                ('forgotten', 'forgotten unchecked'),
                ('check_failed', 'could not be checked after replication'))


def repair_counts(r):
    """How many uploads each kind of repair-check line of r's KDC log
    names ("forgotten" lines count several)."""
    text = r.kdc_log_text()
    counts = {k: text.count(s) for k, s in REPAIR_LINES}
    counts['forgotten'] = sum(int(n) for n in re.findall(
        r'(\d+) acknowledged upload\(s\) forgotten unchecked', text))
    return counts


def lag(args):
    print('# part 2: lag from an upload acknowledged by KDC A (slapd a) to '
          'KDC B (slapd b, multi-provider) serving it; probe every %gs, '
          'purge_interval %s' % (args.probe, args.purge_interval),
          flush=True)
    pair = Pair(args.purge_interval)
    watcher = None
    try:
        sampler = Sampler(pair, args.probe, args.timeout, args.lag_lifetime)
        watcher = Watcher(pair.a, pair.b)
        pair.meter.daemons['watcher'] = [watcher.proc.pid]
        time.sleep(1)           # its initial refresh done
        watcher.take()
        before = pair.meter.snap()
        idle = [sampler.sample() for _ in range(args.uploads)]
        report_lag('idle', idle, sampler,
                   pair.meter.delta(before)['other_pct'])
        report_replication('idle', watcher.take())

        if args.load_seconds:
            servers = server_list(pair.ra, args.servers,
                                  pair.ra.path('load-servers'))
            warm = start_upbench(pair.ra, servers, 2 * parse_duration(
                args.load_lifetime) + 2, args.load_lifetime)
            _, error = upbench_line(warm)
            if error:
                print('warm-up upbench %s' % error)
            ldap.wait_in_sync([pair.a, pair.b], timeout=args.timeout)
            sampler.reset()
            watcher.take()
            repairs_before = repair_counts(pair.ra)
            before = pair.meter.snap()
            load = start_upbench(pair.ra, servers, args.load_seconds,
                               args.load_lifetime)
            busy = []
            while load.poll() is None:
                busy.append(sampler.sample())
            line, error = upbench_line(load)
            cpu = pair.meter.delta(before)
            stopped = time.monotonic()
            ldap.wait_in_sync([pair.a, pair.b], timeout=args.timeout)
            caught_up = time.monotonic() - stopped
            print('load upbench through KDC A: %s' % line)
            if error:
                print('load upbench %s' % error)
            report_lag('load', busy, sampler, cpu['other_pct'])
            report_replication('load', watcher.take())
            rate = kv(line).get('rate', 0.0)
            print('load keys_of=%s live_versions_per_entry=%.0f '
                  'cpu_ms_per_upload kdc_a=%.3f slapd_a=%.3f slapd_b=%.3f '
                  'kdc_b=%.3f' % (
                      args.load_lifetime, rate * parse_duration(
                          args.load_lifetime) / args.servers,
                      *(1000.0 * cpu[k] / max(1.0, rate * cpu['wall'])
                        for k in ('kdc_a', 'slapd_a', 'slapd_b', 'kdc_b'))))
            after = repair_counts(pair.ra)
            print('load b_caught_up_ms=%.0f (after upbench stopped) '
                  'kdc_a_repair_log %s' % (
                      1000 * caught_up, ' '.join(
                          '%s=%d' % (k, after[k] - repairs_before[k])
                          for k, _ in REPAIR_LINES)), flush=True)
    finally:
        if watcher is not None:
            watcher.stop()
        pair.stop()


def int_list(text):
    return [int(v) for v in text.split(',') if v]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--servers', type=int, default=64)
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--seconds', type=float, default=5.0,
                    help='length of a throughput round')
    ap.add_argument('--clients', type=int_list, default=[1, 2])
    ap.add_argument('--lifetime', default='4s',
                    help='key lifetime in the throughput rounds')
    ap.add_argument('--uploads', type=int, default=100)
    ap.add_argument('--load-seconds', type=int, default=60)
    # At about 180 uploads/s over 64 services, 9 s keys leave each entry
    # with about 25 live versions (as in bench/iplag.py).
    ap.add_argument('--load-lifetime', default='9s')
    ap.add_argument('--lag-lifetime', default='20s')
    ap.add_argument('--purge-interval', default='1m')
    ap.add_argument('--probe', type=float, default=0.02)
    ap.add_argument('--timeout', type=int, default=60)
    ap.add_argument('--skip', choices=('throughput', 'lag'),
                    help='leave one part out')
    ap.add_argument('--verbose', action='store_true',
                    help='print every throughput round')
    args = ap.parse_args()
    if not os.access(UPBENCH, os.X_OK):
        sys.exit('ldapbench: %s is missing: run "make bench/upbench"' %
                 UPBENCH)
    ldap.check_prerequisites()
    began = time.monotonic()
    print('# %d CPUs, load average %s' % (
        NCPU, ' '.join(open('/proc/loadavg').read().split()[:3])))
    failures = 0
    if args.skip != 'throughput':
        failures = throughput(args)
    if args.skip != 'lag':
        lag(args)
    print('# %.0f s in all; load average %s' % (
        time.monotonic() - began,
        ' '.join(open('/proc/loadavg').read().split()[:3])))
    return 1 if failures else 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (BenchError, harness.Failure) as e:
        print('ldapbench: %s' % e, file=sys.stderr)
        sys.exit(1)
