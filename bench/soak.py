#!/usr/bin/env python3
"""soak.py - minutes of mixed load on a tempkey KDC at 10^5 principals.

One run (make soak) builds a throwaway tempkey realm over db2 with
tests/realm.py, all of it in one temp dir, on 127.0.0.1:

    --n managed services HTTP/s<i>.test (one made with "addprinc -nokey"
    and "tempkey-admin set --lifetime 1d", cloned in its dump line, one
    kdb5_util load: bench/benchlib.py clone_dump, as bench/scale.py);
    --servers services HTTP/load<i>.test with certificates from the
    realm's CA, each enrolled by a first upload before the soak;
    bench-user (+requires_preauth, a password), admin/admin;
    purge_interval --purge-interval and key_epoch --key-epoch (short, so
    that housekeeping passes and ratchet steps come many times), and
    krb5kdc -w --workers, kadmind.

Then, for --seconds (default 600), all at once:

    upbench     uploading round robin over the --servers certificates,
                each key living --upload-lifetime, so that keys expire and
                are dropped (by the next upload, or by a purge pass)
                throughout;
    tkbench     TGS for a cloned managed service, TGS for an uploading
                one (its keys change under it) and AS for bench-user
                (encrypted timestamp, and so a last-success write each
                time), one process each;
    kadmin      over the network, through kadmind, one query per process,
                in a loop: addprinc, getprinc, modprinc, cpw, (kinit with
                the new password), delprinc of a new user each time;
                getprinc of a cloned and of an uploading service; modprinc
                of an uploading service (racing its uploads).

Every --sample seconds it reads, for every krb5kdc process (the
supervisor and its workers; a purge pass, a worker's short-lived child, is
counted apart) and for kadmind, VmRSS from /proc/PID/status and the open
files in /proc/PID/fd, the TCP connections among them (requests in
flight, any state but LISTEN in /proc/net/tcp) counted apart.  Growth is measured after the warm-up
(--warmup, default the first 60 s or 10% of the run, whichever is
shorter): the median of the first tenth of the remaining samples against
the median of the last tenth.

An error is any failed request of a load generator, a load generator
that exits other than as it should, a kadmin query whose output is not
its success message, a daemon or worker that exits, and a KDC log line
of the module's own failures that no client sees (a purge that failed,
the ratchet); each is reported by kind.  The goals (issue 8, item 4):
0 errors; KDC RSS and open files flat, under 5% growth after the warm-up
for the sum over the KDC's processes and for each of them, and for
kadmind.

Every daemon and load generator is stopped by its PID at the end, on an
error, and on SIGINT, SIGTERM or SIGHUP.  The module, the preauth module
and the tools are copied at the start (a rebuild of the tree does not
change what the daemons load).

    make bench/tkbench bench/upbench && make soak [SOAK_SECONDS=60]
        [BENCH_ARGS='--json F']
    TK_BUILDDIR=. PYTHONPATH=tests python3 bench/soak.py [--seconds S]
"""

import argparse
import calendar
import contextlib
import io
import math
import os
import random
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
                      proc_state, server_list, snapshot_build, write_json,
                      LOG_PREFIX)
import benchlib
import run as bench     # bench/run.py: machine_info, loadavg

USER = 'bench-user'
PASSWORD = 'bench-user-pw'
ADMIN = 'admin/admin'
ADMIN_PW = 'admin-pw'
MANAGED_LIFETIME = '1d'     # of the cloned services' admin-made keys
START_DELAY = 2.0           # for every load generator to be set up
GOAL_GROWTH = 5.0           # percent, at most
TK_RESULT_RE = re.compile(r'^requests=(\d+) failures=(\d+) seconds=([\d.]+) '
                          r'rate=([\d.]+)$', re.M)
TK_LATENCY_RE = re.compile(r'^latency p50_us=(\d+) p90_us=(\d+) '
                           r'p99_us=(\d+) p999_us=(\d+) max_us=(\d+)', re.M)
UP_RESULT_RE = re.compile(r'^uploads=(\d+) failures=(\d+) seconds=([\d.]+) '
                          r'rate=([\d.]+) p50_ms=([\d.]+) p99_ms=([\d.]+) '
                          r'max_ms=([\d.]+)', re.M)
# KDC log lines of the module's own failures that no client sees (a purge
# pass's, the ratchet's; a refusal is counted by the client that got it);
# the module logs through com_err, after the daemon's "(info): ".
KDC_ERROR_RES = [re.compile(p) for p in (
    r'\): purge: (?!pass done|resumed)',
    r'\): cannot ',
    r'\): temporary keys of ',
    r'worker \d+ exited',
)]
STORED_RE = re.compile(r'\): stored kvno \d+ of ')
PURGED_RE = re.compile(r'\): purged (\d+) expired key version')
PASS_DONE_RE = re.compile(r'\): purge: pass done: ')


class SoakError(Exception):
    pass


class Interrupted(Exception):
    pass


def parse_args():
    p = argparse.ArgumentParser(
        description='Mixed load (uploads, TGS, AS, kadmin, housekeeping) '
        'on krb5kdc -w 2 over a tempkey realm of 10^5 managed services; '
        'errors, and the growth of the KDC\'s and kadmind\'s memory and '
        'open files.')
    p.add_argument('--seconds', type=float, default=600.0,
                   help='length of the soak (default 600)')
    p.add_argument('--n', type=int, default=100000,
                   help='cloned managed services (default 100000)')
    p.add_argument('--servers', type=int, default=1000,
                   help='enrolled servers that upload (default 1000)')
    p.add_argument('--workers', type=int, default=2,
                   help='krb5kdc -w (default 2)')
    p.add_argument('--purge-interval', default='10s',
                   help='purge_interval (default 10s)')
    p.add_argument('--key-epoch', default='10s',
                   help='key_epoch of the ratchet (default 10s)')
    p.add_argument('--upload-lifetime', default='60s',
                   help='lifetime of every uploaded key (default 60s)')
    p.add_argument('--sample', type=float, default=2.0,
                   help='seconds between /proc readings (default 2)')
    p.add_argument('--warmup', type=float,
                   help='seconds left out of the growth figures (default '
                   'the first 60 s or 10%% of the run, whichever is '
                   'shorter)')
    p.add_argument('--keep', action='store_true',
                   help='keep the temp dir (logs, database) and say where')
    p.add_argument('--json', metavar='FILE',
                   help='also write everything measured to FILE')
    p.add_argument('--tkbench', help='the TGS/AS load generator (default '
                   '$TK_BUILDDIR/bench/tkbench)')
    a = p.parse_args()
    if a.n < 2 or a.servers < 1 or a.workers < 1:
        p.error('--n at least 2, --servers and --workers at least 1')
    if a.seconds <= 0 or a.sample <= 0:
        p.error('--seconds and --sample must be positive')
    if a.warmup is None:
        a.warmup = min(60.0, a.seconds / 10)
    if not 0 <= a.warmup < a.seconds:
        p.error('--warmup: from 0 to less than --seconds')
    if a.tkbench is None:
        a.tkbench = os.path.join(harness.BUILDDIR, 'bench', 'tkbench')
    return a


def log(msg):
    print(msg)
    sys.stdout.flush()


def managed(i):
    return 'HTTP/s%d.test' % i


def uploading(i):
    return 'HTTP/load%d.test' % i


# ---- the realm

def make_realm(args, tmp, quiet):
    """The realm, its N clones loaded, its servers enrolled, krb5kdc -w and
    kadmind running.  Returns (realm, server list path, build figures)."""
    with contextlib.redirect_stdout(quiet):
        r = harness.Realm(pki=True, start_kdc=False,
                          purge_interval=args.purge_interval,
                          tk_extra='        key_epoch = %s\n' %
                          args.key_epoch, dir=os.path.join(tmp, 'realm'))
    try:
        servers, build = populate(r, args, quiet)
    except BaseException:
        with contextlib.redirect_stdout(quiet):
            r.stop()
        raise
    return r, servers, build


def populate(r, args, quiet):
    """make_realm's principals, servers and daemons."""
    build = {}
    with contextlib.redirect_stdout(quiet):
        r.kadmin_local('addprinc +requires_preauth -pw %s %s' %
                       (PASSWORD, USER))
        r.addprinc(ADMIN, ADMIN_PW)
        r.kadmin_local('addprinc -nokey ' + managed(0))
        r.tempkey_admin('set', managed(0), '--lifetime', MANAGED_LIFETIME)
        dump = r.path('clones.dump')
        clone_dump(r, managed(0), (managed(i) for i in range(1, args.n)),
                   dump)
        t0 = time.monotonic()
        r.run([harness.KDB5_UTIL, 'load', dump], timeout=3600)
        build['load_s'] = round(time.monotonic() - t0, 1)
        os.unlink(dump)
        t0 = time.monotonic()
        servers = server_list(r, args.servers, r.path('servers'))
        build['certs_s'] = round(time.monotonic() - t0, 1)
        r.start_kdc('-w', str(args.workers))
        r.start_kadmind()
    t0 = time.monotonic()
    build['enroll_uploads'] = enroll(r, args, servers)
    build['enroll_s'] = round(time.monotonic() - t0, 1)
    return servers, build


def enroll(r, args, servers):
    """A first upload from every server (each makes its principal), before
    the soak: upbench goes round robin from the first server, so a run of
    as many uploads as servers, none failed, enrolled them all."""
    seconds = max(5, args.servers // 50)
    for _ in range(4):
        p = benchlib.start_upbench(r, servers, seconds, args.upload_lifetime)
        try:
            out, err = p.communicate(timeout=seconds + 300)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        m = UP_RESULT_RE.search(out)
        if p.returncode != 0 or m is None:
            raise SoakError('enrolling the servers: upbench exited %d:\n%s%s'
                            % (p.returncode, out, err))
        if int(m.group(1)) >= args.servers:
            return int(m.group(1))
        seconds *= 2
    raise SoakError('enrolling the servers: %s uploads in %d s, fewer than '
                    '%d servers' % (m.group(1), seconds // 2, args.servers))


# ---- /proc

def tcp_connections():
    """Inodes of the TCP sockets that are connections (any state but
    LISTEN) now, from /proc/net/tcp and tcp6."""
    inodes = set()
    for name in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    v = line.split()
                    if len(v) > 9 and v[3] != '0A':
                        inodes.add(v[9])
        except (OSError, StopIteration):
            pass
    return inodes


def open_files(pid, connections):
    """(open files other than TCP connections, TCP connections, all open
    files) of pid, or None if it is gone."""
    base = '/proc/%d/fd' % pid
    try:
        fds = os.listdir(base)
    except OSError:
        return None
    conns = 0
    for fd in fds:
        try:
            target = os.readlink(os.path.join(base, fd))
        except OSError:
            continue
        conns += target.startswith('socket:[') and \
            target[8:-1] in connections
    return len(fds) - conns, conns, len(fds)


class Sampler(threading.Thread):
    """Every step seconds: VmRSS and open files of the KDC's supervisor,
    of each of its workers and of kadmind; the workers' children (purge
    passes) apart.  A worker that appears or disappears after the first
    reading, or a daemon gone, is an error."""

    def __init__(self, r, step, errors):
        super().__init__(daemon=True)
        self.r, self.step, self.errors = r, step, errors
        self.samples = []
        self.passes = {}            # pid -> [first seen, last seen, max kB]
        self.workers = None
        self.done = threading.Event()

    def read(self):
        connections = tcp_connections()
        now = time.time()
        procs = {'krb5kdc': self.r.kdc.pid, 'kadmind': self.r.kadmind.pid}
        workers = sorted(children(self.r.kdc.pid))
        if self.workers is None:
            self.workers = workers
        elif workers != self.workers:
            self.errors.add('daemon', 'krb5kdc workers changed from %s to %s'
                            % (self.workers, workers))
            self.workers = workers
        for k, w in enumerate(workers):
            procs['worker%d' % (k + 1)] = w
            for c in children(w):
                alive, _ = proc_state(c)
                if not alive:
                    continue
                with contextlib.suppress(OSError, KeyError):
                    kb = memory(c)['VmRSS']
                    seen = self.passes.setdefault(c, [now, now, 0])
                    seen[1], seen[2] = now, max(seen[2], kb)
        row = {'t': now}
        for role, pid in procs.items():
            files = open_files(pid, connections)
            try:
                m = memory(pid)
            except OSError:
                m = None
            if files is None or m is None:
                self.errors.add('daemon', '%s (pid %d) is gone' % (role, pid))
                continue
            row[role] = {'rss_kb': m['VmRSS'], 'hwm_kb': m['VmHWM'],
                         'files': files[0], 'conns': files[1],
                         'fds': files[2],
                         'cpu_s': proc_state(pid)[1]}
        kdc = [v for k, v in row.items() if k == 'krb5kdc' or
               k.startswith('worker')]
        row['kdc'] = {k: sum(v[k] for v in kdc)
                      for k in ('rss_kb', 'hwm_kb', 'files', 'conns', 'fds',
                                'cpu_s')}
        row['db_bytes'] = os.path.getsize(self.r.path('principal'))
        self.samples.append(row)

    def run(self):
        while not self.done.is_set():
            self.read()
            self.done.wait(self.step)

    def stop(self):
        self.done.set()
        self.join()


class Errors:
    """Errors by kind: {kind: [count, first messages]}."""

    def __init__(self):
        self.kinds = {}
        self.lock = threading.Lock()

    def add(self, kind, message, count=1):
        with self.lock:
            e = self.kinds.setdefault(kind, [0, []])
            e[0] += count
            message = message.strip()
            if message and message not in e[1] and len(e[1]) < 5:
                e[1].append(message[:400])

    def total(self):
        return sum(e[0] for e in self.kinds.values())


# ---- kadmin through kadmind

class KadminLoop(threading.Thread):
    """kadmin queries, one process each, until stopped; every query's
    kind, start, duration and whether its output said it succeeded."""

    def __init__(self, r, args, errors, tmp):
        super().__init__(daemon=True)
        self.r, self.args, self.errors = r, args, errors
        self.env = dict(r.env, KRB5CCNAME='FILE:' + os.path.join(
            tmp, 'kadmin-user.ccache'))
        self.ops = []               # (kind, start, seconds, ok)
        self.done = threading.Event()
        self.proc = None
        self.lock = threading.Lock()
        self.rng = random.Random(8)

    def kadmin(self, kind, query, expect):
        self.run_one(kind, [harness.KADMIN, '-p', ADMIN, '-w', ADMIN_PW,
                            '-q', query], None, expect)

    def run_one(self, kind, argv, stdin, expect):
        if self.done.is_set():
            return
        t0 = time.time()
        with self.lock:
            self.proc = subprocess.Popen(
                argv, env=self.env, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = self.proc.communicate(stdin, timeout=60)
            code = self.proc.returncode
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            code, err = None, 'no answer in 60 s; ' + err
        finally:
            with self.lock:
                self.proc = None
        if code is not None and code < 0 and self.done.is_set():
            return              # killed by stop(kill=True)
        # kadmin -q exits 0 whatever the query did: its output says.
        ok = code == 0 and expect in out
        self.ops.append((kind, t0, time.time() - t0, ok))
        if not ok:
            lines = [l for l in (err + out).splitlines() if l and not
                     l.startswith(('Authenticating as', 'No policy',
                                   'Password for'))]
            self.errors.add('kadmin ' + kind, '%s: %s' % (
                argv[-1] if stdin is None else ' '.join(argv[1:]),
                ' / '.join(lines) or 'exit %s' % code))

    def run(self):
        realm = self.r.realm
        k = 0
        while not self.done.is_set():
            user = 'soak-u%d' % k
            full = '%s@%s' % (user, realm)
            pw = 'soak-pw-%d' % k
            self.kadmin('addprinc', 'addprinc -pw %s %s' % (pw, user),
                        'Principal "%s" created.' % full)
            self.kadmin('getprinc', 'getprinc ' + user,
                        'Principal: ' + full)
            self.kadmin('modprinc', 'modprinc -maxlife 5h ' + user,
                        'Principal "%s" modified.' % full)
            self.kadmin('cpw', 'cpw -pw %s2 %s' % (pw, user),
                        'Password for "%s" changed.' % full)
            self.run_one('kinit', [harness.KINIT, user], pw + '2\n', '')
            self.kadmin('delprinc', 'delprinc -force ' + user,
                        'Principal "%s" deleted.' % full)
            s = managed(self.rng.randrange(self.args.n))
            self.kadmin('getprinc managed', 'getprinc ' + s,
                        'Principal: %s@%s' % (s, realm))
            s = uploading(self.rng.randrange(self.args.servers))
            self.kadmin('getprinc uploading', 'getprinc ' + s,
                        'Principal: %s@%s' % (s, realm))
            self.kadmin('modprinc uploading', 'modprinc -maxrenewlife %dh %s'
                        % (24 + k % 24, s),
                        'Principal "%s@%s" modified.' % (s, realm))
            k += 1

    def stop(self, kill=False):
        """Stop after the query under way, or kill it (an interrupt)."""
        self.done.set()
        with self.lock:
            if kill and self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
        self.join(70)


# ---- the load generators

def start_load(r, args, servers, tmp, seconds):
    """upbench and the tkbench processes, started to begin together;
    returns {name: (Popen, trace file or None)} and the start time."""
    start_at = time.time() + START_DELAY
    procs = {}

    def tk(name, mode, service=None):
        trace = os.path.join(tmp, 'trace.' + name.replace(' ', '-'))
        cmd = [args.tkbench, mode, '--principal', USER, '--password',
               PASSWORD, '--seconds', '%g' % seconds, '--start-at',
               '%.6f' % start_at, '--latency', '--trace', trace]
        if service:
            cmd += ['--service', service]
        procs[name] = (subprocess.Popen(cmd, env=r.env,
                                        stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True),
                       trace)

    procs['upload'] = (benchlib.start_upbench(
        r, servers, '%g' % seconds, args.upload_lifetime, start_at), None)
    tk('tgs managed', 'tgs', managed(args.n // 2))
    tk('tgs uploading', 'tgs', uploading(args.servers // 2))
    tk('as', 'as')
    return procs, start_at


def stop_procs(procs):
    for p, _ in procs.values():
        if p.poll() is None:
            p.kill()
            p.wait()


def collect(procs, errors, timeout):
    """Wait for the load generators; their results by name."""
    results = {}
    deadline = time.time() + timeout
    for name, (p, trace) in procs.items():
        try:
            out, err = p.communicate(timeout=max(1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            errors.add(name, 'did not finish in time; killed')
            continue
        m = (UP_RESULT_RE if trace is None else TK_RESULT_RE).search(out)
        if m is None or p.returncode not in (0, 1):
            errors.add(name, 'exited %s without a result: %s%s' % (
                p.returncode, out, err))
            continue
        res = {'requests': int(m.group(1)), 'failures': int(m.group(2)),
               'seconds': float(m.group(3)), 'rate': float(m.group(4)),
               'exit': p.returncode}
        if trace is None:
            res.update(p50_ms=float(m.group(5)), p99_ms=float(m.group(6)),
                       max_ms=float(m.group(7)))
        else:
            lm = TK_LATENCY_RE.search(out)
            if lm:
                res.update(p50_ms=int(lm.group(1)) / 1000,
                           p99_ms=int(lm.group(3)) / 1000,
                           max_ms=int(lm.group(5)) / 1000)
            res['trace'] = trace
        if res['failures'] or p.returncode != 0:
            errors.add(name, err or 'exit %d' % p.returncode,
                       count=max(res['failures'], 1))
        results[name] = res
    return results


# ---- after the run: the timeline

def bucket_of(t, t0, width):
    return int((t - t0) // width)


def trace_buckets(path, t0, width):
    """{bucket: [requests, failures, max ms]} of a tkbench trace."""
    out = {}
    with open(path) as f:
        for line in f:
            a, b, c = line.split()
            b_ = out.setdefault(bucket_of(float(a), t0, width), [0, 0, 0.0])
            b_[0] += 1
            b_[1] += c != '1'
            b_[2] = max(b_[2], float(b) / 1000)
    return out


def log_time(stamp, year):
    """Seconds since the epoch of a KDC log time ("Dec 01 15:06:50"; the
    realm's daemons run with TZ=UTC)."""
    return calendar.timegm(time.strptime('%d %s' % (year, stamp),
                                         '%Y %b %d %H:%M:%S'))


def scan_kdc_log(path, offset, t0, width, errors):
    """The KDC log from offset: per bucket uploads stored, versions purged,
    passes done; issued tickets; every other kind of line with its count;
    the module's own failures as errors."""
    year = time.gmtime(t0).tm_year
    buckets, kinds, times = {}, {}, {}
    issued = {'AS_REQ': 0, 'TGS_REQ': 0}
    with open(path, errors='replace') as f:
        f.seek(offset)
        for line in f:
            m = LOG_PREFIX.match(line)
            b = None
            if m:
                stamp = m.group(1)
                if stamp not in times:
                    times[stamp] = log_time(stamp, year)
                b = bucket_of(times[stamp], t0, width)
            row = buckets.setdefault(b, {'stored': 0, 'purged': 0,
                                         'passes': 0})
            if ': ISSUE: ' in line:
                kind = line.split('): ', 1)[-1].split(' ', 1)[0]
                if kind in issued:
                    issued[kind] += 1
                    continue
            if STORED_RE.search(line):
                row['stored'] += 1
                continue
            pm = PURGED_RE.search(line)
            if pm:
                row['purged'] += int(pm.group(1))
                continue
            if PASS_DONE_RE.search(line):
                row['passes'] += 1
            key = log_line_kind(line)
            kinds[key] = kinds.get(key, 0) + 1
            if any(e.search(line) for e in KDC_ERROR_RES):
                errors.add('KDC log', line.rstrip('\n'))
    return buckets, kinds, issued


# ---- growth

def growth(samples, t_from, role, field):
    """(baseline, end, growth %, max) of field of role over the samples
    after t_from: the medians of the first and of the last tenth (at least
    3 samples each)."""
    vals = [s[role][field] for s in samples if s['t'] >= t_from and
            role in s]
    if len(vals) < 2:
        return None
    k = max(3, len(vals) // 10)
    k = min(k, len(vals) // 2) or 1
    base = statistics.median(vals[:k])
    end = statistics.median(vals[-k:])
    pct = 100.0 * (end - base) / base if base else 0.0
    return {'baseline': base, 'end': end, 'growth_pct': round(pct, 2),
            'max': max(vals), 'min': min(vals), 'samples': len(vals)}


# ---- the run

def soak(args, tmp, out, errors):
    quiet = io.StringIO()
    r = None
    procs = {}
    sampler = kadmin = None
    try:
        log('building the realm: %d cloned managed services, %d servers '
            'to enroll...' % (args.n, args.servers))
        try:
            r, servers, build = make_realm(args, tmp, quiet)
        except harness.Failure:
            sys.stdout.write(quiet.getvalue()[-20000:])
            raise
        out['build'] = build
        log('  load %.1f s, certificates %.1f s, enrolled by %d uploads in '
            '%.1f s; krb5kdc pid %d (-w %d), kadmind pid %d' % (
                build['load_s'], build['certs_s'], build['enroll_uploads'],
                build['enroll_s'], r.kdc.pid, args.workers, r.kadmind.pid))
        log_start = os.path.getsize(r.kdc_log)
        procs, t0 = start_load(r, args, servers, tmp, args.seconds)
        time.sleep(max(0.0, t0 - time.time()))
        sampler = Sampler(r, args.sample, errors)
        sampler.start()
        kadmin = KadminLoop(r, args, errors, tmp)
        kadmin.start()
        log('soak: %g s from %s (warm-up %g s)...' % (
            args.seconds, time.strftime('%H:%M:%S', time.gmtime(t0)),
            args.warmup))
        end = t0 + args.seconds
        next_note = t0 + 60
        while time.time() < end:
            time.sleep(min(1.0, max(0.0, end - time.time())))
            for name, p in (('krb5kdc', r.kdc), ('kadmind', r.kadmind)):
                if p.poll() is not None:
                    raise SoakError('%s exited (%s) %.0f s into the soak' %
                                    (name, p.returncode, time.time() - t0))
            if time.time() >= next_note and sampler.samples:
                s = sampler.samples[-1]
                log('  %4.0f s: KDC RSS %.1f MB, %d files; kadmind RSS %.1f '
                    'MB, %d files; %d kadmin queries; errors so far %d' % (
                        time.time() - t0, s['kdc']['rss_kb'] / 1024,
                        s['kdc']['files'],
                        s.get('kadmind', {}).get('rss_kb', 0) / 1024,
                        s.get('kadmind', {}).get('files', 0),
                        len(kadmin.ops), errors.total()))
                next_note += 60
        kadmin.stop()
        t1 = time.time()
        results = collect(procs, errors, 120)
        sampler.stop()
        out['window'] = (t0, t1)
        out['results'] = results
        out['kadmin_ops'] = kadmin.ops
        out['samples'] = sampler.samples
        out['passes_seen'] = sampler.passes
        out['kdc_log'] = (r.kdc_log, log_start)
        for name, p in (('krb5kdc', r.kdc), ('kadmind', r.kadmind)):
            if p.poll() is not None:
                errors.add('daemon', '%s exited (%s)' % (name, p.returncode))
        return r
    finally:
        if kadmin is not None:
            kadmin.stop(kill=True)
        if sampler is not None:
            sampler.done.set()
        stop_procs(procs)
        if r is not None and 'window' not in out:
            with contextlib.redirect_stdout(quiet):
                r.stop()


def analyze(args, r, out, errors):
    t0, t1 = out['window']
    width = max(5.0, round(args.seconds / 10))
    out['bucket_s'] = width
    path, offset = out['kdc_log']
    buckets, kinds, issued = scan_kdc_log(path, offset, t0, width, errors)
    out['kdc_log_buckets'] = {k: v for k, v in buckets.items()
                              if k is not None}
    out['kdc_log_kinds'] = kinds
    out['issued'] = issued
    out['traces'] = {}
    for name, res in out['results'].items():
        trace = res.pop('trace', None)
        if trace and os.path.exists(trace):
            out['traces'][name] = trace_buckets(trace, t0, width)
    ops = out.pop('kadmin_ops')
    out['kadmin'] = {}
    for kind, _, secs, ok in ops:
        k = out['kadmin'].setdefault(kind, {'queries': 0, 'failed': 0,
                                            'max_s': 0.0})
        k['queries'] += 1
        k['failed'] += not ok
        k['max_s'] = round(max(k['max_s'], secs), 3)
    out['kadmin_buckets'] = {}
    for kind, start, _, ok in ops:
        b = out['kadmin_buckets'].setdefault(bucket_of(start, t0, width),
                                             [0, 0])
        b[0] += 1
        b[1] += not ok
    after = t0 + args.warmup
    out['growth'] = {}
    roles = ['kdc', 'krb5kdc'] + ['worker%d' % (k + 1)
                                  for k in range(args.workers)] + ['kadmind']
    for role in roles:
        out['growth'][role] = {f: growth(out['samples'], after, role, f)
                               for f in ('rss_kb', 'files', 'conns')}
    out['passes'] = {
        'seen': len(out['passes_seen']),
        'max_rss_kb': max((v[2] for v in out['passes_seen'].values()),
                          default=0)}
    out['errors'] = {k: {'count': v[0], 'first': v[1]}
                     for k, v in errors.kinds.items()}


def report(args, out):
    t0, t1 = out['window']
    width = out['bucket_s']
    print()
    print('Load over %.0f s (krb5kdc -w %d; %d cloned managed services, %d '
          'uploading servers, upload lifetime %s, purge_interval %s, '
          'key_epoch %s):' % (t1 - t0, args.workers, args.n, args.servers,
                              args.upload_lifetime, args.purge_interval,
                              args.key_epoch))
    for name, res in out['results'].items():
        print('  %-14s %8d %s, %d failed, %7.1f/s; p50 %.2f p99 %.2f max '
              '%.1f ms%s' % (name, res['requests'], 'uploads' if name ==
                             'upload' else 'requests', res['failures'],
                             res['rate'], res.get('p50_ms', 0),
                             res.get('p99_ms', 0), res.get('max_ms', 0),
                             '' if res['exit'] == 0 else
                             ' (exit %d)' % res['exit']))
    for kind, k in out['kadmin'].items():
        print('  kadmin %-19s %6d queries, %d failed, slowest %.2f s' % (
            kind, k['queries'], k['failed'], k['max_s']))
    b = out['kdc_log_buckets']
    print('  KDC log: %d AS and %d TGS tickets, %d uploads stored, %d '
          'expired key versions purged by %d pass(es) that purged any '
          '(%d passes seen running)' % (
              out['issued']['AS_REQ'], out['issued']['TGS_REQ'],
              sum(v['stored'] for v in b.values()),
              sum(v['purged'] for v in b.values()),
              sum(v['passes'] for v in b.values()), out['passes']['seen']))
    print()
    print('Timeline (%g s buckets; requests/failures and the longest wait '
          'of each generator; KDC and kadmind: median RSS MB / open files)'
          % width)
    names = [n for n in out['results'] if n in out['traces']]
    head = ['t s'] + names + ['stored', 'purged', 'kadmin', 'KDC',
                              'kadmind']
    print('  ' + ' | '.join('%-22s' % h if h in names else '%-9s' % h
                            for h in head))
    # The buckets of the soak's length (a request begun at its very end
    # lands past them).
    for i in range(int(math.ceil(args.seconds / width))):
        cells = ['%-9d' % (i * width)]
        for n in names:
            v = out['traces'][n].get(i, [0, 0, 0.0])
            cells.append('%-22s' % ('%d/%d %.1fms' % tuple(v)))
        lb = out['kdc_log_buckets'].get(i, {})
        cells.append('%-9d' % lb.get('stored', 0))
        cells.append('%-9d' % lb.get('purged', 0))
        kb = out['kadmin_buckets'].get(i, [0, 0])
        cells.append('%-9s' % ('%d/%d' % tuple(kb)))
        for role in ('kdc', 'kadmind'):
            ss = [s[role] for s in out['samples'] if role in s and
                  bucket_of(s['t'], t0, width) == i]
            cells.append('%-9s' % ('%.1f/%d' % (
                statistics.median(x['rss_kb'] for x in ss) / 1024,
                statistics.median(x['files'] for x in ss)) if ss else '-'))
        print('  ' + ' | '.join(cells))
    print()
    print('Growth after the warm-up (%g s): median of the first tenth of '
          'the samples -> median of the last tenth (every %g s)' % (
              args.warmup, args.sample))
    print('  %-9s | %-34s | %-30s | %s' % (
        'process', 'RSS MB (max)', 'open files (max)',
        'TCP connections held (max)'))
    goals = []
    for role, g in out['growth'].items():
        rss, files, conns = g['rss_kb'], g['files'], g['conns']
        if rss is None:
            print('  %-9s | no samples' % role)
            goals.append((role, False, 'no samples'))
            continue
        print('  %-9s | %7.1f -> %7.1f %+6.2f%% (%.1f) | %4g -> %4g '
              '%+6.2f%% (%d) | %g -> %g (%d)' % (
                  'KDC sum' if role == 'kdc' else role,
                  rss['baseline'] / 1024, rss['end'] / 1024,
                  rss['growth_pct'], rss['max'] / 1024, files['baseline'],
                  files['end'], files['growth_pct'], files['max'],
                  conns['baseline'], conns['end'], conns['max']))
        worst = max(rss['growth_pct'], files['growth_pct'])
        goals.append((role, worst < GOAL_GROWTH,
                      'RSS %+.2f%%, open files %+.2f%%' % (
                          rss['growth_pct'], files['growth_pct'])))
    print('  purge passes: %d seen running, the largest %.1f MB RSS' % (
        out['passes']['seen'], out['passes']['max_rss_kb'] / 1024))
    first, last = out['samples'][0], out['samples'][-1]
    span = max(last['t'] - first['t'], 1e-3)
    print('  CPU, share of one CPU over the soak: %s; database file %.1f -> '
          '%.1f MB' % (', '.join(
              '%s %.0f%%' % (role, 100 * (last[role]['cpu_s'] -
                                          first[role]['cpu_s']) / span)
              for role in out['growth'] if role != 'kdc' and role in first
              and role in last), first['db_bytes'] / 1e6,
              last['db_bytes'] / 1e6))
    print()
    kinds = sorted(out['kdc_log_kinds'].items(), key=lambda x: -x[1])
    print('KDC log, other lines by kind (%d kinds):' % len(kinds))
    for line, n in kinds[:15]:
        print('  %8d x %s' % (n, line[:150]))
    print()
    errs = out['errors']
    total = sum(e['count'] for e in errs.values())
    print('Errors: %d' % total)
    for kind, e in sorted(errs.items()):
        print('  %-22s %d' % (kind, e['count']))
        for msg in e['first']:
            print('      ' + msg)
    print()
    print('Goals:')
    verdicts = [('0 errors', total == 0, '%d' % total)]
    verdicts += [('%s RSS and open files < %g%% growth' % (
        'KDC (sum)' if role == 'kdc' else role, GOAL_GROWTH), ok, detail)
        for role, ok, detail in goals]
    for what, ok, detail in verdicts:
        print('  %-45s %s (%s)' % (what, 'PASS' if ok else 'FAIL', detail))
    out['goals'] = [{'goal': w, 'met': ok, 'detail': d}
                    for w, ok, d in verdicts]
    passed = all(ok for _, ok, _ in verdicts)
    print('soak: %s' % ('PASS' if passed else 'FAIL'))
    return passed


def on_signal(signo, frame):
    raise Interrupted('signal %d' % signo)


def main():
    args = parse_args()
    for tool in (args.tkbench, benchlib.UPBENCH):
        if not os.access(tool, os.X_OK):
            sys.exit('soak.py: %s is missing; build it with "make %s"' % (
                tool, os.path.relpath(tool, harness.BUILDDIR)))
    if not os.path.exists(os.path.join(harness.PLUGIN_DIR, 'tempkey.so')):
        sys.exit('soak.py: no tempkey.so in %s; run "make" first' %
                 harness.PLUGIN_DIR)
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    tmp = tempfile.mkdtemp(prefix='tk-soak-')
    if args.keep:
        os.environ['TK_KEEP_REALM'] = '1'       # Realm.stop keeps its dir
    snapshot_build(os.path.join(tmp, 'build'))
    info = bench.machine_info()
    log('krb5-tempkey soak: %g s of mixed load, krb5kdc -w %d' % (
        args.seconds, args.workers))
    log('machine: %d CPU(s), %s; Linux %s; %s; module sha256 %s (tree: %s)'
        % (info['cpus'], info['cpu_model'], info['kernel'], info['krb5'],
           info['tempkey_so_sha256'][:16], info['source']))
    load_start = bench.loadavg()
    log('load average at start: %s; temp dir %s' % (load_start, tmp))
    out, errors = {}, Errors()
    r = None
    began = time.monotonic()
    try:
        try:
            r = soak(args, tmp, out, errors)
            analyze(args, r, out, errors)
        finally:
            if r is not None:
                with contextlib.redirect_stdout(io.StringIO()):
                    r.stop()
        passed = report(args, out)
    except (SoakError, harness.Failure, Interrupted, KeyboardInterrupt) as e:
        print('soak.py: FAILED: %s' % (e or 'interrupted'))
        for kind, (count, first) in sorted(errors.kinds.items()):
            print('  errors so far: %s: %d%s' % (kind, count, ''.join(
                '\n      ' + m for m in first)))
        passed = None
    finally:
        if args.keep:
            print('kept ' + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print('load average at start %s, at end %s; total %.0f s' % (
        load_start, bench.loadavg(), time.monotonic() - began))
    if args.json and passed is not None:
        doc = {'machine': info, 'config': vars(args),
               'load_start': load_start, 'load_end': bench.loadavg()}
        doc.update({k: v for k, v in out.items()
                    if k not in ('samples', 'passes_seen', 'kdc_log')})
        doc['samples'] = out['samples']
        write_json(args.json, doc)
    return 0 if passed else 1


if __name__ == '__main__':
    sys.exit(main())
