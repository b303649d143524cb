#!/usr/bin/env python3
"""fetchrun.py - fetches of shared principals' keys against uploads, and
both against a stock MIT KDC's encrypted-timestamp AS exchange.

A member of a shared principal (DESIGN section 11) fetches the keys the KDC
holds in an AS exchange pair exactly like an upload's: the KDC does the
upload's checks (decrypt, signature, chain, binding), reads the principal's
live key versions (no database write, no fsync), encrypts them to the
member's certificate and signs an Ack carrying them.  This measures what
that costs the KDC, per fetch and per upload, in the same run.

For each key type (EC P-256 and RSA-2048: the CA, the KDC certificate and
every service certificate all of that type) one tempkey realm is made with
tests/realm.py (pki=True, purge_interval=1h, a single krb5kdc unless
--workers), holding:

  * --servers upload services HTTP/s<i>.test, enrolled by a first upload
    as in bench/uprun.py, whose keys are revoked before every upload round
    so that every round starts from the same entries;
  * --servers shared services HTTP/shared<i>.test, each made with
    "kadmin addprinc -nokey", given --versions key versions by
    "tempkey-admin set" (aes256 and aes128, a day to live, all in use),
    then marked shared ("tempkey-admin share --delay 3600"): every
    fetch's answer carries those versions, and none is pending.

One stock realm (database_module main, db2; no tempkey module) with the
same KDC arguments holds bench-pa, a password principal with
+requires_preauth: "bench/tkbench as" for it is a stock AS exchange pair
(PREAUTH_REQUIRED, then encrypted timestamp, and db2 records the last
successful authentication), the stock counterpart of an upload's or a
fetch's two AS requests.

Then --rounds rounds per key type, each of, for every client count of
--clients (the order alternating from round to round): an upload round, a
fetch round and a stock round, --seconds long each, with that many
concurrent client processes (upbench upload, upbench fetch, tkbench as)
started together, in the order upload, fetch, stock and, the next round,
stock, fetch, upload.  Concurrent upload processes get disjoint server
lists, and so do fetch processes.  A round's rate is the sum of its
processes' acknowledged requests per second; its p50/p99 latency is over
all of them; "KDC ms/req" is the KDC's CPU time (schedstat of all its
processes and threads) over the round divided by the requests.  Each round
also runs "upbench crypto" and "upbench crypto-fetch" once: the KDC's
public-key work of one upload and of one fetch in a loop, no network, no
database ("crypto ms/req", the loop's CPU time per operation).

Reported, as medians over the rounds: for each key type and client count,
the rate, p50, p99 and KDC ms per request of uploads, fetches and the stock
exchange, each of those over the stock one's, and fetch over upload (also
the range of the per-round ratios of KDC CPU).  "other%" is what the rest
of the machine used during the round (another job skews it; above 10% a
row is flagged).

At the end every KDC log is checked against what the clients counted: one
"fetch for ... sent kvno 1-V" line per acknowledged fetch, one "stored
kvno" line per acknowledged upload, no refusal or failure, and one stock
ticket per stock exchange.

Run it as "make bench-fetch" (BENCH_ARGS for the options), or:

    TK_BUILDDIR=. PYTHONPATH=tests python3 bench/fetchrun.py [--rounds N]
        [--seconds S] [--crypto-seconds S] [--servers N] [--versions V]
        [--keytypes ec,rsa] [--clients 1,2] [--workers N] [--json FILE]

The defaults (5 rounds of 2 s, 1 and 2 clients, both key types) take about
four minutes.  This is a measurement, not a test: it asserts no figure,
but it fails (exit 1) as soon as any request fails or a log does not match.
"""

import argparse
import contextlib
import io
import os
import re
import statistics
import sys
import time

import realm as harness
from benchlib import private_build, write_json
from uprun import (BUSY_PCT, NCPU, BenchError, Rounds, Setup,
                   add_round_arguments, kv, percentile, split_lists)

TKBENCH = os.path.join(harness.BUILDDIR, 'bench', 'tkbench')
SHARE_DELAY = 3600
STOCK_USER = 'bench-pa'
STOCK_PASSWORD = 'bench-pa-pw'
KINDS = ('upload', 'fetch', 'stock')


def med(values):
    return statistics.median(values) if values else float('nan')


def loadavg():
    with open('/proc/loadavg') as f:
        return ' '.join(f.read().split()[:3])


# ---- the realms

class SharedSetup(Setup):
    """uprun's realm of upload services, with shared services beside
    them, each holding versions live key versions."""

    def __init__(self, keytype, workers, nservers, clients, versions):
        super().__init__(keytype, workers, nservers, clients)
        self.versions = versions
        self.shared = []
        lines = []
        chatter = io.StringIO()
        try:
            with contextlib.redirect_stdout(chatter):
                for i in range(nservers):
                    princ = 'HTTP/shared%d.test@%s' % (i, self.realm.realm)
                    self.make_shared(princ)
                    cert = self.realm.server_cert(princ, keytype=keytype)
                    self.shared.append(princ)
                    lines.append('%s %s %s\n' % (princ, cert.chain_pem,
                                                 cert.key_pem))
                    if i == 0:
                        self.member_cert = cert
        except Exception:
            sys.stdout.write(chatter.getvalue())
            raise
        self.member_lists = split_lists(self.realm, lines, clients,
                                        'members')

    def make_shared(self, princ):
        r = self.realm
        r.kadmin_local('addprinc -nokey ' + princ)
        # Set before the principal is shared, so that each version is in
        # use at once rather than pending.
        for v in range(1, self.versions + 1):
            kvno, _ = r.set_key(princ, '1d', r.path('shared.keytab'))
            if kvno != v:
                raise BenchError('%s got kvno %d, not %d' % (princ, kvno, v))
        r.tempkey_admin('share', princ, '--delay', str(SHARE_DELAY))

    def fetch_round(self, nclients, seconds):
        return self.load_round('fetch', self.member_lists[nclients], seconds)


class StockSetup(Rounds):
    """A stock MIT realm (db2, no tempkey) with one +requires_preauth
    password principal."""

    def __init__(self, workers):
        kdc_args = ('-w', str(workers)) if workers > 1 else ()
        chatter = io.StringIO()
        try:
            with contextlib.redirect_stdout(chatter):
                realm = harness.Realm(tempkey=False, kdc_args=kdc_args)
                realm.kadmin_local('addprinc +requires_preauth -pw %s %s' %
                                   (STOCK_PASSWORD, STOCK_USER))
        except Exception:
            sys.stdout.write(chatter.getvalue())
            raise
        super().__init__(realm)

    def stock_round(self, nclients, seconds):
        """tkbench as for the +requires_preauth principal: stock AS
        exchange pairs."""
        traces = [self.realm.path('trace-%d' % c) for c in range(nclients)]
        argvs = [[TKBENCH, 'as', '--principal', STOCK_USER, '--password',
                  STOCK_PASSWORD, '--seconds', str(seconds), '--trace', t]
                 for t in traces]
        outs, cpu = self.timed(argvs)
        results = [kv(out.strip().splitlines()[-1]) for out in outs]
        res = self.cpu_figures(cpu, nclients,
                               sum(r['requests'] for r in results))
        latencies = []
        for path in traces:
            with open(path) as f:
                # "START_EPOCH DURATION_US OK", one a request.
                latencies += [float(line.split()[1]) / 1000.0 for line in f]
            os.unlink(path)
        latencies.sort()
        res.update({
            'rate': sum(r['rate'] for r in results),
            'failures': sum(r['failures'] for r in results),
            'p50_ms': percentile(latencies, 50),
            'p99_ms': percentile(latencies, 99),
        })
        return res


# ---- the rounds

def crypto_cpu_ms(setup, mode, cert, args):
    extra = ['--versions', str(setup.versions)] if mode == 'crypto-fetch' \
        else []
    res = setup.crypto_round(1, args.crypto_seconds, mode=mode, cert=cert,
                             extra=extra)
    return res['kdc_cpu_ms']


def measure(setup, stock, args, log):
    """All rounds of one key type: {kind: [round figures]}, the crypto
    loops' CPU ms per upload and per fetch of every round, and how many
    requests of each kind were acknowledged, the warm-up's included."""
    runs = {kind: [] for kind in KINDS}
    crypto = {'upload': [], 'fetch': []}
    counts = {kind: 0 for kind in KINDS}

    def run(kind, n, seconds, rnd=None):
        """One round of kind with n clients; rnd None: a warm-up."""
        if kind == 'upload':
            if rnd is not None:
                setup.reset_keys()
            res = setup.load_round('upload', setup.lists[n], seconds)
        elif kind == 'fetch':
            res = setup.fetch_round(n, seconds)
        else:
            res = stock.stock_round(n, seconds)
        if res['failures']:
            raise BenchError('%d %s requests failed (%s, %d client(s))' % (
                res['failures'], kind, setup.keytype, n))
        counts[kind] += res['requests']
        if rnd is None:
            return
        res['round'] = rnd
        runs[kind].append(res)
        log('  round %d, %d client(s), %-7s %7.1f/s p50 %6.2f ms p99 %6.2f '
            'ms, KDC %.3f ms CPU/req (%.0f%% of a CPU), other %.0f%%' % (
                rnd + 1, n, kind + ':', res['rate'], res['p50_ms'],
                res['p99_ms'], res['kdc_ms_per_request'],
                res['kdc_cpu_pct'], res['other_pct']))

    # Enroll every upload service (its first upload makes its entry) and
    # warm every path up, untimed.
    run('upload', 1, 1.0)
    with contextlib.redirect_stdout(io.StringIO()):
        listed = setup.realm.kadmin_local('listprincs HTTP/s*').split()
    enrolled = [p for p in setup.principals if p in listed]
    if len(enrolled) != len(setup.principals):
        raise BenchError('the warm-up enrolled %d of %d upload services' % (
            len(enrolled), len(setup.principals)))
    run('fetch', 1, 1.0)
    run('stock', 1, 1.0)
    for rnd in range(args.rounds):
        order = args.clients if rnd % 2 == 0 else args.clients[::-1]
        kinds = KINDS if rnd % 2 == 0 else KINDS[::-1]
        for n in order:
            for kind in kinds:
                run(kind, n, args.seconds, rnd)
        crypto['upload'].append(crypto_cpu_ms(setup, 'crypto',
                                              setup.sample_cert, args))
        crypto['fetch'].append(crypto_cpu_ms(setup, 'crypto-fetch',
                                             setup.member_cert, args))
        log('  round %d crypto: KDC %.3f ms CPU per upload, %.3f per fetch'
            % (rnd + 1, crypto['upload'][-1], crypto['fetch'][-1]))
    return runs, crypto, counts


# ---- the logs

def held_range(versions):
    return '1-%d' % versions if versions > 1 else '1'


def check_tempkey_log(setup, fetches, uploads):
    """Every acknowledged fetch and upload has its KDC line, and nothing
    was refused or failed."""
    text = setup.realm.kdc_log_text()
    fetched = len(re.findall(r'\): fetch for HTTP/shared\d+\.test@\S+: sent '
                             r'kvno %s ' % held_range(setup.versions), text))
    stored = len(re.findall(r'\): stored kvno \d+ of HTTP/s\d+\.test@',
                            text))
    bad = [line for line in text.splitlines()
           if re.search(r'\): (refused (upload|fetch) |(upload|fetch) for '
                        r'\S+ failed: )', line)]
    problems = []
    if fetched != fetches:
        problems.append('%d fetch lines sending kvno %s, %d fetches '
                        'acknowledged' % (fetched,
                                          held_range(setup.versions),
                                          fetches))
    if stored != uploads:
        problems.append('%d stored lines, %d uploads acknowledged' % (
            stored, uploads))
    if bad:
        problems.append('%d refusals or failures, the first: %s' % (
            len(bad), bad[0]))
    return fetched, stored, problems


def check_stock_log(stock, exchanges):
    issued = len(re.findall(r'AS_REQ .*: ISSUE: ', stock.realm.kdc_log_text()))
    if issued != exchanges:
        return issued, ['%d tickets issued, %d stock exchanges counted' % (
            issued, exchanges)]
    return issued, []


# ---- reporting

FIGURES = ('rate', 'p50_ms', 'p99_ms', 'kdc_ms_per_request',
           'client_ms_per_request', 'kdc_cpu_pct', 'other_pct')


def summarize(keytype, runs, crypto, clients):
    rows = []
    for n in clients:
        row = {'keytype': keytype, 'clients': n}
        for kind in KINDS:
            rs = [r for r in runs[kind] if r['clients'] == n]
            row[kind] = {f: med([r[f] for r in rs]) for f in FIGURES}
        # Per-round ratios of KDC CPU, fetch over upload (the same round).
        pairs = [f['kdc_ms_per_request'] / u['kdc_ms_per_request']
                 for f, u in zip(
                     [r for r in runs['fetch'] if r['clients'] == n],
                     [r for r in runs['upload'] if r['clients'] == n])]
        row['cpu_ratio_min'] = min(pairs)
        row['cpu_ratio_max'] = max(pairs)
        row['crypto_upload_ms'] = med(crypto['upload'])
        row['crypto_fetch_ms'] = med(crypto['fetch'])
        rows.append(row)
    return rows


def print_tables(rows, out):
    head = ('key type', 'clients', 'exchange', 'rate/s', 'p50 ms', 'p99 ms',
            'KDC ms/req', 'crypto ms/req', 'rate / stock',
            'KDC ms / stock', 'KDC CPU%', 'client ms/req', 'other%')
    out.write(' | '.join(head) + '\n')
    out.write('|'.join('-' * (len(h) + 2) for h in head)[1:] + '\n')
    for row in rows:
        st = row['stock']
        for kind in KINDS:
            f = row[kind]
            crypto = {'upload': '%.3f' % row['crypto_upload_ms'],
                      'fetch': '%.3f' % row['crypto_fetch_ms']}.get(kind,
                                                                    '-')
            cells = (row['keytype'], '%d' % row['clients'],
                     kind,
                     '%.1f' % f['rate'], '%.2f' % f['p50_ms'],
                     '%.2f' % f['p99_ms'], '%.3f' % f['kdc_ms_per_request'],
                     crypto, '%.3f' % (f['rate'] / st['rate']),
                     '%.2f' % (f['kdc_ms_per_request'] /
                               st['kdc_ms_per_request']),
                     '%.0f%%' % f['kdc_cpu_pct'],
                     '%.3f' % f['client_ms_per_request'],
                     '%.0f%%%s' % (f['other_pct'],
                                   ' *' if f['other_pct'] > BUSY_PCT
                                   else ''))
            out.write(' | '.join(c.rjust(len(h))
                                 for c, h in zip(cells, head)) + '\n')
    out.write('\nFetch over upload (medians over the rounds):\n\n')
    head = ('key type', 'clients', 'rate', 'p50', 'p99', 'KDC ms/req',
            'KDC ms/req, rounds min-max', 'crypto ms/req',
            'KDC ms/req beyond crypto')
    out.write(' | '.join(head) + '\n')
    out.write('|'.join('-' * (len(h) + 2) for h in head)[1:] + '\n')
    for row in rows:
        f, u = row['fetch'], row['upload']
        rest_f = f['kdc_ms_per_request'] - row['crypto_fetch_ms']
        rest_u = u['kdc_ms_per_request'] - row['crypto_upload_ms']
        cells = (row['keytype'], '%d' % row['clients'],
                 '%.3f' % (f['rate'] / u['rate']),
                 '%.3f' % (f['p50_ms'] / u['p50_ms']),
                 '%.3f' % (f['p99_ms'] / u['p99_ms']),
                 '%.3f' % (f['kdc_ms_per_request'] /
                           u['kdc_ms_per_request']),
                 '%.3f-%.3f' % (row['cpu_ratio_min'], row['cpu_ratio_max']),
                 '%.3f' % (row['crypto_fetch_ms'] / row['crypto_upload_ms']),
                 '%.3f / %.3f = %.3f' % (rest_f, rest_u, rest_f / rest_u))
        out.write(' | '.join(c.rjust(len(h)) for c, h in zip(cells, head))
                  + '\n')


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_round_arguments(ap, 2.0, 'length of each upload, fetch and stock '
                        'round')
    # Enough upload services that none reaches the cap of 64 live key
    # versions within a round (about 500 uploads/s for 2 s).
    ap.add_argument('--servers', type=int, default=32,
                    help='upload services, and as many shared services')
    ap.add_argument('--versions', type=int, default=3,
                    help='live key versions of each shared service')
    ap.add_argument('--workers', type=int, default=1,
                    help='KDC processes: 1 (no -w) or N for -w N')
    args = ap.parse_args()
    if min(args.rounds, args.servers, args.versions, args.workers,
           min(args.clients)) < 1 or args.seconds <= 0 or \
            args.crypto_seconds <= 0:
        ap.error('every count must be at least 1, every length positive')
    if args.versions > 64:
        ap.error('--versions: at most 64 (the cap on live key versions)')
    return args


def main():
    args = parse_args()
    for tool in (TKBENCH, os.path.join(harness.BUILDDIR, 'bench',
                                       'upbench')):
        if not os.access(tool, os.X_OK):
            sys.exit('fetchrun: %s is missing: run "make bench/upbench '
                     'bench/tkbench"' % tool)
    # The tree may be rebuilt while we run: every KDC loads one copy.
    with private_build():
        return bench(args)


def bench(args):
    def log(msg):
        print(msg, flush=True)

    load_start = loadavg()
    log('fetchrun: %d CPUs; load average at start %s' % (NCPU, load_start))
    began = time.monotonic()
    rows, raw, problems = [], [], []
    stock = StockSetup(args.workers)
    stock_exchanges = 0
    try:
        for keytype in args.keytypes.split(','):
            log('== %s, %d KDC process(es), %d upload and %d shared '
                'services, %d versions each' % (
                    keytype, args.workers, args.servers, args.servers,
                    args.versions))
            setup = SharedSetup(keytype, args.workers, args.servers,
                                args.clients, args.versions)
            try:
                runs, crypto, counts = measure(setup, stock, args, log)
                fetched, stored, bad = check_tempkey_log(
                    setup, counts['fetch'], counts['upload'])
                problems += ['%s realm: %s' % (keytype, p) for p in bad]
                log('  %s KDC log: %d fetches sent kvno %s, %d keys stored: '
                    '%s' % (keytype, fetched, held_range(args.versions),
                            stored, 'as counted' if not bad else
                            'MISMATCH'))
            finally:
                setup.stop()
            stock_exchanges += counts['stock']
            rows += summarize(keytype, runs, crypto, args.clients)
            raw.append({'keytype': keytype, 'rounds': runs,
                        'crypto_cpu_ms': crypto})
        issued, bad = check_stock_log(stock, stock_exchanges)
        problems += ['stock realm: %s' % p for p in bad]
        log('  stock KDC log: %d tickets for %d exchanges' % (
            issued, stock_exchanges))
    finally:
        stock.stop()
    load_end = loadavg()

    print()
    print('Medians over %d rounds of %g s; %d CPUs; %d KDC process(es) per '
          'realm; %d key versions per shared service; load average %s at '
          'the start, %s at the end; %.0f s in all.' % (
              args.rounds, args.seconds, NCPU, args.workers, args.versions,
              load_start, load_end, time.monotonic() - began))
    print()
    print_tables(rows, sys.stdout)
    print('\n"stock": a stock MIT KDC (db2) answering an encrypted-timestamp '
          'AS exchange pair\n(kinit\'s; its client\'s string-to-key bounds '
          'its rate); "/ stock": over its figure in the same run.\n'
          '"crypto ms/req": the KDC\'s public-key work for one request in '
          'a loop (upbench crypto,\ncrypto-fetch), CPU time.  "other%%": '
          'the rest of the machine during the round; "*" marks\nmore than '
          '%.0f%%.' % BUSY_PCT)
    if args.json:
        write_json(args.json, {'rows': rows, 'raw': raw, 'args': vars(args),
                               'load_start': load_start,
                               'load_end': load_end})
    if problems:
        for p in problems:
            print('fetchrun: %s' % p, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (BenchError, harness.Failure) as e:
        print('fetchrun: %s' % e, file=sys.stderr)
        sys.exit(1)
