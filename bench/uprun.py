#!/usr/bin/env python3
"""uprun.py - upload throughput of the tempkey KDC against its crypto bound.

For each key type (EC P-256 and RSA-2048: the CA, the KDC certificate and
the servers' certificates all of that type) and each KDC configuration (a
single krb5kdc process, and "krb5kdc -w 2"), one throwaway realm is made
with tests/realm.py (pki=True, purge_interval=1h), --servers certificates
HTTP/s<i>.test are issued, and a short warm-up upload from each enrolls
every principal.  Then --rounds rounds, each of:

  * upload rounds with 1 and with 2 concurrent bench/upbench processes
    (the order alternating from round to round), --seconds long, the
    servers split into disjoint lists so that no two processes race for a
    principal's next kvno.  A round's rate is the sum of its processes'
    acknowledged uploads per second; its p50 and p99 latencies are over
    all its processes' uploads.  Before every upload round the servers'
    keys are revoked (tempkey-admin revoke), so every round starts from
    the same entries; see "Key history" below.
  * "upbench crypto" with 1 and with 2 concurrent processes: the KDC's
    public-key work of one upload in a loop, no network, no database.

The crypto bound of a row is the median rate of as many concurrent crypto
processes as the KDC has processes (1, or 2 for -w 2, never more than the
machine's CPUs); the ratio is uploads/s over that bound.  The clients run
on the same machine as the KDC, so the CPU each round gave the KDC, the
clients and anything else is recorded too (schedstat of the KDC's
processes, rusage of the clients, /proc/stat for the machine): "KDC ms/up"
is KDC CPU time per acknowledged upload, "crypto%" is the share of it that
the in-process crypto loop accounts for (by the loop's rate), and "other%"
is the machine's CPU use by anything but the KDC and the clients during the
round (another job running skews a round).  "crypto CPU ms/up" is the CPU
time the single crypto loop spends per upload (CLOCK_PROCESS_CPUTIME_ID),
and "share of crypto bound per KDC CPU" is that over "KDC ms/up": the goal's
measure, at least 60% meaning that the KDC's work besides its public-key
crypto is at most 2/3 of that crypto.  Every figure is the median over the
rounds.

Key history: every upload adds a key version that stays in the principal's
entry until it expires (the KDC's maximum lifetime, a day by default) or a
purge removes it; a few hundred versions overflow the entry's 16 KB key
record and further uploads for that principal are refused (store-failed,
"record too large").  The revocations between rounds keep every round far
below that, with --servers spreading the load.

Run it after "make bench/upbench":

    PYTHONPATH=tests TK_BUILDDIR=. python3 bench/uprun.py [--rounds N]
        [--seconds S] [--crypto-seconds S] [--servers N]
        [--keytypes ec,rsa] [--workers 1,2] [--clients 1,2] [--json FILE]

This is a measurement, not a test: it fails only if an upload fails or a
tool does not run.  The project's goals (at least 280 uploads/s on a
2-core machine, at least 60% of the crypto bound per KDC CPU) are
reported, not enforced.
"""

import argparse
import contextlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import realm as harness

UPBENCH = os.path.join(harness.BUILDDIR, 'bench', 'upbench')
GOAL_RATE = 280.0
GOAL_RATIO = 0.60
# Other CPU use (percent of the machine) above which a row is flagged.
BUSY_PCT = 10.0
# Time for every process of a round to be set up before it starts.
START_DELAY = 0.5
CLK_TCK = os.sysconf('SC_CLK_TCK')
NCPU = os.cpu_count() or 1


class BenchError(Exception):
    pass


def kv(line):
    """{key: float} of a "key=value key=value" line."""
    out = {}
    for field in line.split():
        key, sep, value = field.partition('=')
        if sep:
            out[key] = float(value)
    return out


def percentile(sorted_values, p):
    """Nearest-rank percentile, as upbench computes it."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values),
                      int(p / 100.0 * len(sorted_values) + 0.999999)))
    return sorted_values[rank - 1]


# ---- CPU accounting

def process_tree(pid):
    """pid and its children (krb5kdc -w forks its workers)."""
    pids = [pid]
    try:
        with open('/proc/%d/task/%d/children' % (pid, pid)) as f:
            pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return pids


def cpu_seconds(pids):
    """CPU time of every thread of pids, from schedstat (nanoseconds)."""
    total = 0
    for pid in pids:
        try:
            tasks = os.listdir('/proc/%d/task' % pid)
        except OSError:
            continue
        for tid in tasks:
            try:
                with open('/proc/%d/task/%s/schedstat' % (pid, tid)) as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total / 1e9


def machine_busy():
    """CPU seconds the whole machine has spent busy (all CPUs)."""
    with open('/proc/stat') as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / CLK_TCK


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def snapshot(kdc_pids):
    return {'kdc': cpu_seconds(kdc_pids), 'clients': children_cpu(),
            'machine': machine_busy(), 'wall': time.monotonic()}


# ---- one realm

def split_lists(realm, lines, counts, tag):
    """{n: n upbench server lists (files TAG-n-i in realm's directory),
    the lines dealt out among them} for each n of counts, so that n
    concurrent processes never share a server."""
    lists = {}
    for n in sorted(set(counts) | {1}):
        if n > len(lines):
            raise BenchError('%d clients need at least %d servers' % (n, n))
        files = []
        for c in range(n):
            path = realm.path('%s-%d-%d' % (tag, n, c))
            with open(path, 'w') as f:
                f.writelines(lines[c::n])
            files.append(path)
        lists[n] = files
    return lists


class Rounds:
    """Timed rounds of load generators against one realm's KDC: a
    tests/realm.py Realm, with the KDC's processes."""

    def __init__(self, realm):
        self.realm = realm
        # The workers are forked after the supervisor said it is starting.
        time.sleep(0.3)
        self.kdc_pids = process_tree(realm.kdc.pid)

    def stop(self):
        with contextlib.redirect_stdout(io.StringIO()):
            self.realm.stop()

    def run_tool(self, args):
        proc = subprocess.run(args, env=self.realm.env, capture_output=True,
                              text=True, timeout=120)
        if proc.returncode != 0:
            raise BenchError('%s exited %d:\n%s%s' % (
                ' '.join(args), proc.returncode, proc.stdout, proc.stderr))
        return proc.stdout

    def start_together(self, argvs):
        """Start argvs to begin their timed loops together; return the
        processes and the start time."""
        start_at = time.time() + START_DELAY
        procs = [subprocess.Popen(argv + ['--start-at', '%.6f' % start_at],
                                  env=self.realm.env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
                 for argv in argvs]
        return procs, start_at

    @staticmethod
    def collect(procs, argvs, failures_ok=False):
        """The processes' outputs.  With failures_ok, an upbench upload (or
        fetch) that reported failed requests (exit 1 after its result line)
        is counted rather than fatal, and its message is shown."""
        outs = []
        for proc, argv in zip(procs, argvs):
            out, err = proc.communicate(timeout=300)
            reported = failures_ok and proc.returncode == 1 and \
                'failures=' in out
            if proc.returncode != 0 and not reported:
                raise BenchError('%s exited %d:\n%s%s' % (
                    ' '.join(argv), proc.returncode, out, err))
            if reported:
                sys.stdout.write(err)
            outs.append(out)
        return outs

    def timed(self, argvs, failures_ok=False):
        """Run argvs together over one timed round; return their outputs
        and the CPU seconds the KDC, the clients and the whole machine used
        in it, with its wall time."""
        procs, start_at = self.start_together(argvs)
        time.sleep(max(0.0, start_at - time.time()))
        before = snapshot(self.kdc_pids)
        outs = self.collect(procs, argvs, failures_ok=failures_ok)
        after = snapshot(self.kdc_pids)
        return outs, {k: after[k] - before[k] for k in before}

    @staticmethod
    def cpu_figures(cpu, nclients, requests):
        """A round's CPU (from timed) per request, and the share of the
        machine that something else used."""
        other = cpu['machine'] - cpu['kdc'] - cpu['clients']
        return {
            'clients': nclients,
            'requests': requests,
            'kdc_cpu_s': cpu['kdc'],
            'client_cpu_s': cpu['clients'],
            'machine_busy_s': cpu['machine'],
            'wall_s': cpu['wall'],
            'kdc_ms_per_request': 1000.0 * cpu['kdc'] / max(requests, 1),
            'client_ms_per_request': 1000.0 * cpu['clients'] /
            max(requests, 1),
            'kdc_cpu_pct': 100.0 * cpu['kdc'] / cpu['wall'],
            'other_pct': max(0.0, 100.0 * other / (cpu['wall'] * NCPU)),
        }


class Setup(Rounds):
    """A realm of one key type and KDC configuration, with its servers."""

    def __init__(self, keytype, workers, nservers, clients):
        self.keytype = keytype
        self.workers = workers
        kdc_args = ('-w', str(workers)) if workers > 1 else ()
        chatter = io.StringIO()
        try:
            with contextlib.redirect_stdout(chatter):
                realm = harness.Realm(pki=True, pki_keytype=keytype,
                                      purge_interval='1h', kdc_args=kdc_args)
                self.principals = []
                lines = []
                for i in range(nservers):
                    princ = 'HTTP/s%d.test@%s' % (i, realm.realm)
                    cert = realm.server_cert(princ, keytype=keytype)
                    self.principals.append(princ)
                    lines.append('%s %s %s\n' % (princ, cert.chain_pem,
                                                 cert.key_pem))
                    if i == 0:
                        self.sample_cert = cert
        except Exception:
            sys.stdout.write(chatter.getvalue())
            raise
        self.lists = split_lists(realm, lines, clients, 'servers')
        super().__init__(realm)

    def reset_keys(self):
        """Revoke every server's keys, keeping its kvno counter."""
        for princ in self.principals:
            self.run_tool([harness.TEMPKEY_ADMIN, 'revoke', princ])

    def upload_round(self, nclients, seconds, reset=True):
        if reset:
            self.reset_keys()
        res = self.load_round('upload', self.lists[nclients], seconds)
        # The names this script's JSON has always used.
        res['uploads'] = res.pop('requests')
        res['kdc_ms_per_upload'] = res.pop('kdc_ms_per_request')
        res['client_ms_per_upload'] = res.pop('client_ms_per_request')
        return res

    def load_round(self, mode, lists, seconds):
        """One timed round of "upbench MODE" (upload or fetch), a process
        per server list, started together; its rate, latencies and the CPU
        the KDC, the clients and the rest of the machine used."""
        sample_files = [self.realm.path('lat-%d' % c)
                        for c in range(len(lists))]
        argvs = [[UPBENCH, mode, '--certs', lists[c],
                  '--anchors', self.realm.ca.cert_pem, '--seconds',
                  str(seconds), '--samples', sample_files[c]]
                 for c in range(len(lists))]
        outs, cpu = self.timed(argvs, failures_ok=True)
        results = [kv(out.strip().splitlines()[-1]) for out in outs]
        counted = 'fetches' if mode == 'fetch' else 'uploads'
        res = self.cpu_figures(cpu, len(lists),
                               sum(r[counted] for r in results))
        latencies = []
        for path in sample_files:
            with open(path) as f:
                latencies += [float(v) for v in f.read().split()]
            os.unlink(path)
        latencies.sort()
        res.update({
            'rate': sum(r['rate'] for r in results),
            'failures': sum(r['failures'] for r in results),
            'p50_ms': percentile(latencies, 50),
            'p99_ms': percentile(latencies, 99),
        })
        return res

    def crypto_round(self, nprocs, seconds, mode='crypto', cert=None,
                     extra=()):
        """upbench MODE (crypto or crypto-fetch, with extra arguments) in
        nprocs processes together, with cert (default: the first
        server's) as the client's."""
        r = self.realm
        cert = cert or self.sample_cert
        argv = [UPBENCH, mode, '--kdc-cert', r.kdc_cert.cert_pem,
                '--kdc-key', r.kdc_cert.key_pem,
                '--cert', cert.chain_pem, '--key', cert.key_pem,
                '--anchors', r.ca.cert_pem, '--seconds',
                str(seconds)] + list(extra)
        argvs = [argv] * nprocs
        procs, _ = self.start_together(argvs)
        outs = self.collect(procs, argvs)
        total = {}
        for out in outs:
            for line in out.splitlines():
                for key, value in kv(line).items():
                    if key.endswith('rate') or key.endswith('ops') or \
                       key.endswith('cpu_seconds'):
                        total[key] = total.get(key, 0.0) + value
        return {'procs': nprocs, 'kdc_rate': total['rate'],
                'client_rate': total['client_rate'],
                'client_full_rate': total['client_full_rate'],
                # CPU time of the KDC's crypto for one upload, whatever
                # share of a CPU the loop got.
                'kdc_cpu_ms': 1000.0 * total['cpu_seconds'] /
                max(total['ops'], 1)}


# ---- driver

def med(values):
    return statistics.median(values) if values else float('nan')


def measure(setup, args, log):
    """All rounds of one realm; returns the raw results."""
    uploads, crypto = [], []
    # Enroll every server (the first upload makes its entry), untimed.
    setup.upload_round(1, 1.0, reset=False)
    for rnd in range(args.rounds):
        order = args.clients if rnd % 2 == 0 else args.clients[::-1]
        for n in order:
            res = setup.upload_round(n, args.seconds)
            res['round'] = rnd
            uploads.append(res)
            log('  round %d clients %d: %.1f uploads/s p50 %.2f ms p99 '
                '%.2f ms, KDC %.2f ms CPU/upload (%.0f%% of a CPU), '
                'clients %.2f ms/upload, other %.0f%%' % (
                    rnd + 1, n, res['rate'], res['p50_ms'], res['p99_ms'],
                    res['kdc_ms_per_upload'], res['kdc_cpu_pct'],
                    res['client_ms_per_upload'], res['other_pct']))
        for n in sorted({1, min(setup.workers, NCPU)}):
            res = setup.crypto_round(n, args.crypto_seconds)
            res['round'] = rnd
            crypto.append(res)
            log('  round %d crypto x%d: KDC %.1f/s (%.3f ms CPU each), '
                'client sign+encrypt %.1f/s, client all %.1f/s' % (
                    rnd + 1, n, res['kdc_rate'], res['kdc_cpu_ms'],
                    res['client_rate'], res['client_full_rate']))
    return uploads, crypto


def summarize(keytype, workers, uploads, crypto, clients):
    rows = []
    bound_procs = min(workers, NCPU)
    bound = med([c['kdc_rate'] for c in crypto if c['procs'] == bound_procs])
    single = med([c['kdc_rate'] for c in crypto if c['procs'] == 1])
    client_full = med([c['client_full_rate'] for c in crypto
                       if c['procs'] == 1])
    crypto_cpu_ms = med([c['kdc_cpu_ms'] for c in crypto
                         if c['procs'] == 1])
    for n in clients:
        rs = [u for u in uploads if u['clients'] == n]
        kdc_ms = med([u['kdc_ms_per_upload'] for u in rs])
        rows.append({
            'keytype': keytype, 'workers': workers, 'clients': n,
            'rate': med([u['rate'] for u in rs]),
            'p50_ms': med([u['p50_ms'] for u in rs]),
            'p99_ms': med([u['p99_ms'] for u in rs]),
            'bound': bound,
            'ratio': med([u['rate'] for u in rs]) / bound,
            'kdc_ms': kdc_ms,
            'crypto_ms': 1000.0 / single,
            'crypto_share': (1000.0 / single) / kdc_ms,
            'crypto_cpu_ms': crypto_cpu_ms,
            # The goal's measure: the crypto bound's CPU time per upload
            # over the KDC's, both measured in this run.
            'cpu_share': crypto_cpu_ms / kdc_ms,
            'client_ms': med([u['client_ms_per_upload'] for u in rs]),
            'client_crypto_ms': 1000.0 / client_full,
            'kdc_cpu_pct': med([u['kdc_cpu_pct'] for u in rs]),
            'other_pct': med([u['other_pct'] for u in rs]),
            'failures': sum(u['failures'] for u in rs),
        })
    return rows


def print_table(rows, out):
    head = ('keytype', 'KDC procs', 'clients', 'uploads/s', 'p50 ms',
            'p99 ms', 'crypto bound/s', 'ratio', 'KDC ms/up', 'crypto%',
            'crypto CPU ms/up', 'share of crypto bound per KDC CPU',
            'KDC CPU%', 'client ms/up', 'other%')
    out.write(' | '.join(head) + '\n')
    out.write('|'.join('-' * (len(h) + 2) for h in head)[1:] + '\n')
    for r in rows:
        cells = (r['keytype'], '%d' % r['workers'], '%d' % r['clients'],
                 '%.1f' % r['rate'], '%.2f' % r['p50_ms'],
                 '%.2f' % r['p99_ms'], '%.1f' % r['bound'],
                 '%.0f%%' % (100 * r['ratio']), '%.3f' % r['kdc_ms'],
                 '%.0f%%' % (100 * r['crypto_share']),
                 '%.3f' % r['crypto_cpu_ms'], '%.0f%%' % (100 * r['cpu_share']),
                 '%.0f%%' % r['kdc_cpu_pct'], '%.3f' % r['client_ms'],
                 '%.0f%%' % r['other_pct'])
        out.write(' | '.join(c.rjust(len(h)) for c, h in zip(cells, head))
                  + '\n')


def print_goals(rows, out):
    best = max(rows, key=lambda r: r['rate'])
    out.write('\nGoal: at least %.0f uploads/s on this %d-CPU machine: best '
              '%.1f (%s, %d KDC process(es), %d client(s)): %s\n' % (
                  GOAL_RATE, NCPU, best['rate'], best['keytype'],
                  best['workers'], best['clients'],
                  'met' if best['rate'] >= GOAL_RATE else 'NOT met'))
    for kt in sorted({r['keytype'] for r in rows}):
        kr = [r for r in rows if r['keytype'] == kt]
        b = max(kr, key=lambda r: r['rate'])
        out.write('  %s: best %.1f uploads/s: %s\n' % (
            kt, b['rate'], 'met' if b['rate'] >= GOAL_RATE else 'NOT met'))
    out.write('Goal: at least %.0f%% of the crypto bound per KDC CPU '
              '(the crypto loop\'s CPU time per upload over the KDC\'s):\n'
              % (100 * GOAL_RATIO))
    for r in rows:
        out.write('  %s, %d KDC process(es), %d client(s): %.3f / %.3f ms = '
                  '%.0f%%: %s\n' % (
                      r['keytype'], r['workers'], r['clients'],
                      r['crypto_cpu_ms'], r['kdc_ms'], 100 * r['cpu_share'],
                      'met' if r['cpu_share'] >= GOAL_RATIO else 'NOT met'))
    out.write('"ratio" is uploads/s over the crypto bound/s (the KDC shares '
              'the machine with the clients);\n"crypto%" is the crypto '
              'loop\'s wall time per upload over the KDC\'s CPU time per '
              'upload, "share of crypto bound per KDC CPU" the same with the '
              'loop\'s CPU time.\nThe clients share the machine; '
              '"client ms/up" is their CPU per upload, of which their '
              'public-key work alone is:\n')
    for kt in sorted({r['keytype'] for r in rows}):
        kr = [r for r in rows if r['keytype'] == kt]
        out.write('  %s: %.3f ms\n' % (kt, med([r['client_crypto_ms']
                                                for r in kr])))
    busy = [r for r in rows if r['other_pct'] > BUSY_PCT]
    if busy:
        out.write('WARNING: something else used the machine during the '
                  'rounds of %s (other%% above %.0f%%): those figures are '
                  'low; rerun on an idle machine.\n' % (
                      '; '.join('%s/%d/%d' % (r['keytype'], r['workers'],
                                              r['clients']) for r in busy),
                      BUSY_PCT))


def int_list(text):
    return [int(v) for v in text.split(',') if v]


def add_round_arguments(ap, seconds, seconds_help):
    """The options of rounds this script and fetchrun.py share."""
    ap.add_argument('--rounds', type=int, default=5)
    ap.add_argument('--seconds', type=float, default=seconds,
                    help=seconds_help)
    ap.add_argument('--crypto-seconds', type=float, default=0.5,
                    help='length of each of the three loops of upbench '
                    'crypto (and crypto-fetch)')
    ap.add_argument('--keytypes', default='ec,rsa')
    ap.add_argument('--clients', type=int_list, default=[1, 2])
    ap.add_argument('--json', help='write every round\'s figures here')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_round_arguments(ap, 3.0, 'length of an upload round')
    # Enough servers that none reaches the cap of 64 live key versions
    # within a round (about 500 uploads/s for 3 s).
    ap.add_argument('--servers', type=int, default=64)
    ap.add_argument('--workers', type=int_list, default=[1, 2],
                    help='KDC processes: 1 (no -w) or N for -w N')
    args = ap.parse_args()
    if not os.access(UPBENCH, os.X_OK):
        sys.exit('uprun: %s is missing: run "make bench/upbench"' % UPBENCH)

    def log(msg):
        print(msg, flush=True)

    began = time.monotonic()
    rows, raw = [], []
    for keytype in args.keytypes.split(','):
        for workers in args.workers:
            log('== %s, %d KDC process(es)' % (keytype, workers))
            setup = Setup(keytype, workers, args.servers, args.clients)
            try:
                uploads, crypto = measure(setup, args, log)
            finally:
                setup.stop()
            rows += summarize(keytype, workers, uploads, crypto,
                              args.clients)
            raw.append({'keytype': keytype, 'workers': workers,
                        'uploads': uploads, 'crypto': crypto})

    print()
    print('Median over %d rounds of %.1f s; %d servers; %d CPUs; %.0f s in '
          'all.' % (args.rounds, args.seconds, args.servers, NCPU,
                    time.monotonic() - began))
    print_table(rows, sys.stdout)
    print_goals(rows, sys.stdout)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'rows': rows, 'raw': raw, 'args': vars(args)}, f,
                      indent=1)
    failures = sum(r['failures'] for r in rows)
    if failures:
        print('%d uploads failed' % failures)
        return 1
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (BenchError, harness.Failure) as e:
        print('uprun: %s' % e, file=sys.stderr)
        sys.exit(1)
