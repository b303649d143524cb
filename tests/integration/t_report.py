"""Monitoring: tempkey-admin report (text, JSON, Prometheus) made non-zero
field by field by real uploads, refusals, expiries and enrollments, and
ktupdate --status --prometheus after successes and failures; the metrics
files follow the text exposition format and are replaced atomically."""

import json
import os
import re
import signal
import subprocess
import time

import pki
from realm import (Realm, Tests, fail, parse_iso, dump_fields, KDB5_UTIL,
                   KTUPDATE, REALM, TEMPKEY_ADMIN, TK_UPLOAD)

WWW, SOON, ADM, NONE = ('HTTP/www.test', 'HTTP/soon.test', 'HTTP/adm.test',
                        'HTTP/none.test')
WWW_FULL = WWW + '@' + REALM
TK_META = 0x7e54
METRIC_NAME = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


# ---- The text exposition format, read strictly.

def unescape(value):
    out, i = [], 0
    while i < len(value):
        c = value[i]
        if c == '\\':
            nxt = value[i + 1]
            if nxt not in '\\"n':
                fail('bad escape \\%s in label value %r' % (nxt, value))
            out.append('\n' if nxt == 'n' else nxt)
            i += 2
        else:
            out.append(c)
            i += 1
    return ''.join(out)


def parse_prometheus(text):
    """{family: {'help', 'type', 'samples': [(labels, value)]}}, failing on
    anything the text format (as node_exporter's textfile collector reads
    it) does not allow: a sample before its family's HELP and TYPE, a
    family given twice, a bad name, a bad label, a timestamp."""
    if not text.endswith('\n'):
        fail('the metrics do not end with a newline')
    families, current = {}, None
    for line in text.splitlines():
        m = re.match(r'^# HELP (\S+) (.+)$', line)
        if m:
            name = m.group(1)
            if name in families or not METRIC_NAME.match(name):
                fail('bad or repeated family %r' % line)
            families[name] = {'help': m.group(2), 'type': None,
                              'samples': []}
            current = name
            continue
        m = re.match(r'^# TYPE (\S+) (counter|gauge)$', line)
        if m:
            if m.group(1) != current or families[current]['type']:
                fail('TYPE not right after its HELP: %r' % line)
            families[current]['type'] = m.group(2)
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
        if not m:
            fail('not a HELP, TYPE or sample line (or with a timestamp): %r'
                 % line)
        name, labels_text, value = m.groups()
        if name != current or families[name]['type'] is None:
            fail('sample outside its family: %r' % line)
        labels = {}
        rest = labels_text or ''
        while rest:
            lm = LABEL.match(rest)
            if not lm:
                fail('bad labels in %r' % line)
            if lm.group(1) in labels:
                fail('label given twice in %r' % line)
            labels[lm.group(1)] = unescape(lm.group(2))
            rest = rest[lm.end():]
        families[name]['samples'].append((labels, float(value)))
    return families


def value_of(families, name, **labels):
    """The value of the one sample of name with these labels."""
    if name not in families:
        fail('no metric %s' % name)
    hits = [v for l, v in families[name]['samples']
            if all(l.get(k) == w for k, w in labels.items())]
    if len(hits) != 1:
        fail('%d samples of %s with %r' % (len(hits), name, labels))
    return hits[0]


def hold(path):
    """The file at path, kept open with what it holds now."""
    f = open(path)
    return f, f.read()


def check_replaced_atomically(path, held=None):
    """path was replaced by a rename: the file held open before (see
    hold()) is no longer linked and still holds all it held, so a reader
    never saw a part of either; and no temporary file is left beside it."""
    st = os.stat(path)
    if held is not None:
        f, text = held
        f.seek(0)
        if os.fstat(f.fileno()).st_nlink != 0 or f.read() != text:
            fail('%s was rewritten in place, not replaced' % path)
        f.close()
    d = os.path.dirname(path)
    left = [f for f in os.listdir(d) if f.startswith(os.path.basename(path))
            and f != os.path.basename(path)]
    if left:
        fail('temporary files left beside %s: %r' % (path, left))
    return st


# ---- tempkey-admin report


def upload_with_fault(r, cert, *args):
    return r.run([TK_UPLOAD, '--cert', cert.chain_pem, '--key', cert.key_pem,
                  '--anchors', r.ca.cert_pem, '--principal', WWW_FULL] +
                 list(args), expected_code=4)


def busy_realm():
    """A realm where every field of the report is made non-zero by what
    really happens: two services enroll by certificate (one renews), an
    administrator prepares two (one with a key, one without), uploads are
    refused for three reasons."""
    r = Realm(pki=True)
    www = r.server_cert(WWW)
    r.ktupdate(www, '--lifetime', '2h', expected_msg='stored kvno 1')
    r.ktupdate(www, '--lifetime', '2h', expected_msg='stored kvno 2')
    r.ktupdate(r.server_cert(SOON), '--lifetime', '30m')
    # Administrators' principals: not enrollments.  The key set by hand has
    # no store line in the KDC log and nobody to refresh it.
    r.kadmin_local('addprinc -nokey ' + ADM)
    r.set_key(ADM, '90m')
    r.kadmin_local('addprinc -nokey ' + NONE)
    r.kadmin_local('setstr %s tempkey 1' % NONE)
    # Refusals: a key purpose, a replayed version, and twice a certificate
    # from a CA the KDC does not trust.
    r.ktupdate(r.server_cert(WWW, name='clientauth', eku=('client',)),
               expected_code=4, expected_msg='wrong-key-purpose')
    upload_with_fault(r, www, '--kvno', '1')
    stranger = pki.CA(r.path('pki'), 'Stranger CA').issue(
        'stranger', principal=WWW_FULL)
    for _ in range(2):
        r.ktupdate(stranger, expected_code=4,
                   expected_msg='untrusted-certificate')
    return r


EXPECTED = {
    'managed_principals': 4,            # www, soon, adm, none
    'live_key_versions': 4,             # www 1 and 2, soon 1, adm 1
    'key_versions_expiring_within_hour': 1,     # soon's 30 minutes
    'principals_past_refresh_by': 1,    # adm: 90 minutes < a third of 1 day
    'principals_without_live_key': 1,   # none
    'principals_unreadable': 0,
    'enrollments_last_day': 2,          # www, soon
    'uploads_stored_last_day': 3,       # www twice, soon
    'shared_principals': 0,             # (t_shared counts them)
    'pending_key_versions': 0,
    'fetches_last_day': 0,
}
REFUSALS = {'wrong-key-purpose': 1, 'kvno-not-above-stored': 1,
            'untrusted-certificate': 2}


def test_report_counts_what_happened():
    r = busy_realm()
    # Text, the default.
    out = r.tempkey_admin('report')
    for line in ('managed principals: 4', 'live key versions: 4',
                 'key versions expiring within an hour: 1',
                 'principals past their refresh-by: 1',
                 'principals without a live key: 1',
                 'principals with unreadable key records: 0',
                 'enrollments in the last day: 2',
                 'uploads stored in the last day: 3',
                 'uploads refused in the last day: 4',
                 '  wrong-key-purpose: 1', '  kvno-not-above-stored: 1',
                 '  untrusted-certificate: 2', '  ' + NONE + '@' + REALM,
                 'KDC log: ' + r.kdc_log):
        if line + '\n' not in out:
            fail('the text report lacks %r:\n%s' % (line, out))
    if not re.search(r'^  %s@%s kvno 1 expires \S+, refresh by \S+ '
                     r'\(estimated\)$' % (ADM, REALM), out, re.M):
        fail('the text report does not name the late service:\n' + out)

    # JSON.
    rep = json.loads(r.tempkey_admin('--json', 'report'))
    for key, want in EXPECTED.items():
        if rep[key] != want:
            fail('JSON %s = %r, expected %r' % (key, rep[key], want))
    if rep['refusals_last_day'] != REFUSALS:
        fail('JSON refusals %r, expected %r' % (rep['refusals_last_day'],
                                                REFUSALS))
    late = rep['past_refresh_by']
    if [s['principal'] for s in late] != [ADM + '@' + REALM] or \
            not late[0]['estimated']:
        fail('JSON past_refresh_by: %r' % late)
    # The estimate: the expiry less a third of tempkey_max_life (1 day).
    if parse_iso(late[0]['expires']) - parse_iso(late[0]['refresh_by']) != \
            86400 // 3:
        fail('the estimated refresh-by is not expiry - max_life/3: %r' % late)
    if rep['without_live_key'] != [NONE + '@' + REALM]:
        fail('JSON without_live_key: %r' % rep['without_live_key'])
    if rep['kdc_logs'] != [r.kdc_log] or rep['realm'] != REALM:
        fail('JSON realm or logs: %r %r' % (rep['realm'], rep['kdc_logs']))

    # Prometheus, into a file replaced atomically, and on stdout.
    prom = r.path('tempkey.prom')
    with open(prom, 'w') as f:
        f.write('old\n')
    held = hold(prom)
    if r.tempkey_admin('report', '--prometheus', prom).strip():
        fail('report --prometheus FILE printed something')
    st = check_replaced_atomically(prom, held)
    if st.st_mode & 0o777 != 0o644:
        fail('the metrics file has mode %o, not 644' % (st.st_mode & 0o777))
    with open(prom) as f:
        families = parse_prometheus(f.read())
    names = {'tempkey_' + k for k in EXPECTED}
    names |= {'tempkey_report_timestamp_seconds',
              'tempkey_upload_refusals_last_day'}
    if set(families) != names:
        fail('metric families %r, expected %r' % (sorted(families),
                                                  sorted(names)))
    for name, fam in families.items():
        if fam['type'] != 'gauge' or not fam['help']:
            fail('%s: type %r, help %r' % (name, fam['type'], fam['help']))
    for key, want in EXPECTED.items():
        got = value_of(families, 'tempkey_' + key, realm=REALM)
        if got != want:
            fail('tempkey_%s = %r, expected %r' % (key, got, want))
    refusals = families['tempkey_upload_refusals_last_day']['samples']
    reasons = {l['reason']: v for l, v in refusals}
    # Every reason has its series, zero or not, so none appears from
    # nowhere; "other" is a reason this version does not know.
    if len(reasons) != len(refusals) or 'other' not in reasons or \
            'bad-signature' not in reasons:
        fail('refusal series: %r' % reasons)
    for reason, n in reasons.items():
        if n != REFUSALS.get(reason, 0):
            fail('refusals{reason=%s} = %r' % (reason, n))
    stamp = value_of(families, 'tempkey_report_timestamp_seconds',
                     realm=REALM)
    if abs(stamp - time.time()) > 600:
        fail('the report time %r is not Unix seconds of now' % stamp)
    stdout = r.tempkey_admin('report', '--prometheus', '-')
    if parse_prometheus(stdout).keys() != families.keys():
        fail('--prometheus - differs from the file:\n' + stdout)


def test_refresh_by_comes_from_the_kdc_log():
    # With the store's line in the log, the report's refresh-by is the one
    # the KDC acknowledged: ktupdate's record of the ack says the same.
    r = Realm(pki=True)
    cert = r.server_cert(WWW)
    r.ktupdate(cert, '--lifetime', '30s', expected_msg='stored kvno 1')
    acked = int(status_line(r, WWW_FULL)[6])
    rep = json.loads(r.tempkey_admin('--json', 'report'))
    if rep['principals_past_refresh_by'] != 0:
        fail('a key just stored is reported past its refresh-by: %r' % rep)
    r.wait_for('the refresh-by the KDC sent',
               lambda: time.time() >= acked + 1, timeout=40, step=0.5)
    rep = json.loads(r.tempkey_admin('--json', 'report'))
    expiry = int(status_line(r, WWW_FULL)[5])
    if parse_iso(rep['time']) < expiry:
        late = rep['past_refresh_by']
        if [s['principal'] for s in late] != [WWW_FULL] or \
                late[0]['estimated']:
            fail('the service past its refresh-by is not reported from the '
                 'log: %r' % rep)
        if abs(parse_iso(late[0]['refresh_by']) - acked) > 1:
            fail('refresh-by %s, the KDC acknowledged %d' % (
                late[0]['refresh_by'], acked))
    elif rep['without_live_key'] != [WWW_FULL]:
        # The machine was slow enough for the key to expire meanwhile.
        fail('an expired service is not reported without a live key: %r'
             % rep)


def corrupt_records(r, princ):
    """Load, around the overlay, a dump where princ's key records are
    zeros: the KDC then refuses that principal."""
    lines = []
    for line in r.dump().splitlines():
        f = dump_fields(line)
        if f[0] == 'princ' and f[6] == princ:
            pos = 15
            for _ in range(int(f[3])):
                if int(f[pos]) == TK_META:
                    f[pos + 2] = '00' * int(f[pos + 1])
                pos += 3
            line = '\t'.join(f) + ';'
        lines.append(line)
    bad = r.path('bad.dump')
    with open(bad, 'w') as fh:
        fh.write('\n'.join(lines) + '\n')
    r.write_config(database_module='main')
    try:
        r.run([KDB5_UTIL, 'load', bad])
    finally:
        r.write_config()


def test_unreadable_records_are_counted_not_fatal():
    r = Realm(pki=True)
    for svc in (ADM, NONE):
        r.kadmin_local('addprinc -nokey ' + svc)
        r.set_key(svc, '2h')
    corrupt_records(r, ADM + '@' + REALM)
    # Said on stderr, counted in the report, and the rest still reported.
    for args in (['--json', 'report'], ['report', '--prometheus', '-']):
        proc = subprocess.run([TEMPKEY_ADMIN] + args, env=r.env,
                              capture_output=True, text=True)
        print(proc.stdout + proc.stderr)
        if proc.returncode != 0 or proc.stderr != (
                'tempkey-admin: report: tempkey: %s@%s: tempkey metadata is '
                'corrupt: not a DER TempkeyMeta\n' % (ADM, REALM)):
            fail('exit %d, stderr %r' % (proc.returncode, proc.stderr))
        if args[0] == '--json':
            rep = json.loads(proc.stdout)
            if rep['principals_unreadable'] != 1 or \
                    rep['unreadable'] != [ADM + '@' + REALM] or \
                    rep['managed_principals'] != 2 or \
                    rep['live_key_versions'] != 1:
                fail('the unreadable record is not reported so: %r' % rep)
        elif value_of(parse_prometheus(proc.stdout),
                      'tempkey_principals_unreadable', realm=REALM) != 1:
            fail('tempkey_principals_unreadable is not 1')


def log_line(t, text):
    return time.strftime('%b %d %H:%M:%S', time.localtime(t)) + \
        ' kdc1 krb5kdc[42](info): ' + text + '\n'


def test_log_window_and_several_logs():
    # Rotated logs are given with --log, each read; only the last day
    # counts; lines of other shapes, unknown reasons and unreadable times
    # change nothing or count as "other".
    r = Realm(pki=True)
    now = time.time()
    old, new = r.path('kdc.log.1'), r.path('kdc.log.now')
    refusal = ('refused upload for %s signed by /CN=x (sha256 00...): %s: '
               'detail')
    with open(old, 'w') as f:
        f.write(log_line(now - 2 * 86400, refusal % (WWW_FULL,
                                                     'bad-signature')))
        f.write(log_line(now - 3600, refusal % (WWW_FULL, 'bad-signature')))
        f.write(log_line(now - 3600, 'stored kvno 3 of %s, expires in 60 s, '
                         'uploaded by /CN=x (sha256 00...)' % WWW_FULL))
    with open(new, 'w') as f:
        f.write(log_line(now - 60, refusal % (WWW_FULL, 'from-the-future')))
        f.write(log_line(now - 60, 'AS_REQ refused upload for nothing'))
        f.write('Xyz 99 99:99:99 kdc1 krb5kdc[42](info): ' +
                refusal % (WWW_FULL, 'bad-signature') + '\n')
        f.write(log_line(now - 60, refusal % (WWW_FULL, 'not-enrollable')))
    rep = json.loads(r.tempkey_admin('--json', 'report', '--log', old,
                                     '--log', new))
    want = {'bad-signature': 1, 'other': 1, 'not-enrollable': 1}
    if rep['refusals_last_day'] != want or \
            rep['uploads_stored_last_day'] != 1 or \
            rep['kdc_logs'] != [old, new]:
        fail('from two crafted logs: %r' % rep)


def test_log_in_the_kdcs_locale():
    # krb5kdc names the month in its environment's locale; the report,
    # run in the same environment, reads it.  French names no month as
    # English does, so this holds whatever the month.  The locale is built
    # into the test's directory (LOCPATH), from the locales package.
    r = Realm(pki=True, start_kdc=False)
    locales = r.path('locale')
    os.mkdir(locales)
    r.run(['localedef', '-i', 'fr_FR', '-f', 'UTF-8',
           os.path.join(locales, 'fr_FR.UTF-8')])
    r.env.update(LOCPATH=locales, LC_ALL='fr_FR.UTF-8')
    r.start_kdc()
    r.ktupdate(r.server_cert(WWW), '--lifetime', '1h')
    r.ktupdate(r.server_cert(WWW, name='clientauth', eku=('client',)),
               expected_code=4)
    month = r.kdc_log_text().split(' ', 1)[0]
    if month.capitalize() in ('Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun',
                              'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'):
        fail('the KDC did not write its log in French: ' + month)
    rep = json.loads(r.tempkey_admin('--json', 'report'))
    if rep['uploads_stored_last_day'] != 1 or \
            rep['refusals_last_day'] != {'wrong-key-purpose': 1}:
        fail('a log in the KDC\'s locale was not read: %r' % rep)


def test_report_errors():
    r = Realm(pki=True)
    r.ktupdate(r.server_cert(WWW), '--lifetime', '1h')
    prom = r.path('tempkey.prom')
    r.tempkey_admin('report', '--prometheus', prom)
    with open(prom) as f:
        before = f.read()
    inode = os.stat(prom).st_ino
    missing = r.path('no-such.log')
    r.tempkey_admin('report', '--log', missing, '--prometheus', prom,
                    expected_code=1,
                    expected_msg='tempkey-admin: report: cannot read the KDC '
                    'log %s: No such file or directory' % missing)
    # A directory opens but does not read.
    r.tempkey_admin('report', '--log', r.dir, expected_code=1,
                    expected_msg='cannot read the KDC log %s: Is a directory'
                    % r.dir)
    with open(prom) as f:
        if f.read() != before or os.stat(prom).st_ino != inode:
            fail('a failed report touched the metrics file')
    # No log file in the configuration.
    with open(r.path('kdc.conf')) as f:
        conf = f.read().replace('kdc = FILE:' + r.kdc_log, 'kdc = STDERR')
    with open(r.path('stderr.kdc.conf'), 'w') as f:
        f.write(conf)
    env = dict(r.env, KRB5_KDC_PROFILE=r.path('stderr.kdc.conf'))
    r.run([TEMPKEY_ADMIN, 'report'], env=env, expected_code=1,
          expected_msg='the KDC logs to no file ([logging] kdc names no '
          'FILE:); give --log FILE')
    r.run([TEMPKEY_ADMIN, 'report', '--log', r.kdc_log], env=env,
          expected_msg='uploads stored in the last day: 1')
    # A database that cannot be opened.
    with open(r.path('kdc.conf')) as f:
        conf = f.read().replace(r.path('principal'),
                                r.path('gone', 'principal'))
    with open(r.path('gone.kdc.conf'), 'w') as f:
        f.write(conf)
    r.run([TEMPKEY_ADMIN, 'report'], expected_code=1,
          env=dict(r.env, KRB5_KDC_PROFILE=r.path('gone.kdc.conf')),
          expected_msg='tempkey-admin: report: opening the database: ')
    # An output that cannot be written.
    r.tempkey_admin('report', '--prometheus', r.path('no', 'dir.prom'),
                    expected_code=1, expected_msg='cannot write %s: No such '
                    'file or directory' % r.path('no', 'dir.prom'))
    # Usage.
    r.tempkey_admin('report', '--bogus', expected_code=2,
                    expected_msg='usage:')
    r.tempkey_admin('report', 'extra', expected_code=2, expected_msg='usage:')
    r.tempkey_admin('list', '--log', r.kdc_log, expected_code=2,
                    expected_msg='--log and --prometheus go with report')
    r.tempkey_admin('--json', 'report', '--prometheus', '-', expected_code=2,
                    expected_msg='--json or --prometheus, not both')
    r.tempkey_admin('report', *(['--log', r.kdc_log] * 9), expected_code=2,
                    expected_msg='at most 8 --log files')


# ---- ktupdate --status --prometheus


def ktupdate_metrics(r, cert, *args, **kw):
    out = r.ktupdate(cert, '--status', '--prometheus', '-', *args, **kw)
    return parse_prometheus(out)


def status_line(r, princ):
    with open(r.keytab + '.tempkey-status') as f:
        for line in f:
            if line.startswith(princ + '\t'):
                return line.rstrip('\n').split('\t')
    fail('no record of %s in the status file' % princ)


def test_ktupdate_status_after_success_and_failure():
    r = Realm(pki=True)
    cert = r.server_cert(WWW)
    host = r.server_cert('host/www.test')
    status = r.keytab + '.tempkey-status'
    # Never run: timestamps 0, no exit status yet.
    fams = ktupdate_metrics(r, cert)
    if value_of(fams, 'ktupdate_last_run_timestamp_seconds',
                principal=WWW_FULL) != 0 or \
            fams['ktupdate_last_run_exit_status']['samples']:
        fail('metrics before any run: %r' % fams)

    out = r.ktupdate(cert, '--lifetime', '1h')
    expiry = parse_iso(re.search(r'expires (\S+)', out).group(1))
    r.ktupdate(host, '--lifetime', '1h')        # shares the keytab
    prom = r.path('ktupdate.prom')
    r.ktupdate(cert, '--status', '--prometheus', prom)
    check_replaced_atomically(prom, None)
    with open(prom) as f:
        fams = parse_prometheus(f.read())
    for name, fam in fams.items():
        if not name.startswith('ktupdate_') or fam['type'] != 'gauge':
            fail('family %s of type %s' % (name, fam['type']))
    success = value_of(fams, 'ktupdate_last_success_timestamp_seconds',
                       principal=WWW_FULL)
    if value_of(fams, 'ktupdate_last_run_exit_status',
                principal=WWW_FULL) != 0 or \
            abs(success - time.time()) > 600 or \
            value_of(fams, 'ktupdate_last_error_timestamp_seconds',
                     principal=WWW_FULL) != 0 or \
            value_of(fams, 'ktupdate_newest_key_expiry_timestamp_seconds',
                     principal=WWW_FULL) != expiry:
        fail('metrics after a success: %r' % fams)
    refresh = value_of(fams, 'ktupdate_refresh_by_timestamp_seconds',
                       principal=WWW_FULL)
    if not success < refresh < expiry:
        fail('refresh-by %r not between the upload and the expiry' % refresh)
    r.ktupdate(cert, '--status',
               expected_msg='%s last success ' % WWW_FULL)

    # A refusal, then the KDC down: each failure is recorded with the line
    # that said why, the last success is kept.
    wrong = r.server_cert(WWW, name='clientauth', eku=('client',))
    r.ktupdate(wrong, expected_code=4)
    f = status_line(r, WWW_FULL)
    if f[2] != '4' or f[8] != '4' or 'wrong-key-purpose' not in f[9]:
        fail('the refusal is not recorded: %r' % f)
    r.stop_kdc()
    held = hold(status)
    r.ktupdate(cert, '--lifetime', '1h', expected_code=5)
    check_replaced_atomically(status, held)
    if os.stat(status).st_mode & 0o777 != 0o600:
        fail('the status file is readable by others')
    f = status_line(r, WWW_FULL)
    if f[2] != '5' or f[8] != '5' or \
            not f[9].startswith('cannot reach the KDC'):
        fail('the KDC being down is not recorded: %r' % f)
    if status_line(r, 'host/www.test@' + REALM)[2] != '0':
        fail('the other principal\'s record was lost')
    fams = ktupdate_metrics(r, cert)
    if value_of(fams, 'ktupdate_last_run_exit_status',
                principal=WWW_FULL) != 5 or \
            value_of(fams, 'ktupdate_last_success_timestamp_seconds',
                     principal=WWW_FULL) != success or \
            value_of(fams, 'ktupdate_last_error_timestamp_seconds',
                     principal=WWW_FULL) < success:
        fail('metrics after a failure: %r' % fams)
    r.ktupdate(cert, '--status', expected_msg='%s last error ' % WWW_FULL)
    r.ktupdate(cert, '--status', expected_msg='exit 5: cannot reach the KDC')

    # A dry run writes nothing, this record included.
    r.start_kdc()
    with open(status) as fh:
        before = fh.read()
    r.ktupdate(cert, '--dry-run')
    with open(status) as fh:
        if fh.read() != before:
            fail('a dry run changed the status file')


def test_adopted_principal():
    # Adoption is no enrollment, a principal being adopted is not managed
    # yet, and the long-term keys ktupdate keeps after the switch (until
    # their tickets end, hours later here) are not its newest key.
    r = Realm(pki=True)
    r.addprinc(WWW)
    kt = r.path('service.keytab')
    r.kadmin_local('ktadd -k %s %s' % (kt, WWW))
    r.tempkey_admin('adopt', WWW)
    rep = json.loads(r.tempkey_admin('--json', 'report'))
    if rep['managed_principals'] != 0:
        fail('a principal being adopted is reported managed: %r' % rep)
    cert = r.server_cert(WWW)
    out = r.ktupdate(cert, '--lifetime', '1h', keytab=kt)
    expiry = parse_iso(re.search(r'expires (\S+)', out).group(1))
    with open(kt + '.tempkey') as f:
        if ' long-term' not in f.read():
            fail('ktupdate kept no record of the long-term keys')
    rep = json.loads(r.tempkey_admin('--json', 'report'))
    if rep['managed_principals'] != 1 or rep['enrollments_last_day'] != 0 \
            or rep['live_key_versions'] != 1:
        fail('after the switch: %r' % rep)
    fams = ktupdate_metrics(r, cert, keytab=kt)
    if value_of(fams, 'ktupdate_newest_key_expiry_timestamp_seconds',
                principal=WWW_FULL) != expiry:
        fail('the newest key is not the temporary one: %r' % fams)


def test_daemon_records_each_run():
    r = Realm(pki=True)
    cert = r.server_cert(WWW)
    proc = subprocess.Popen(
        [KTUPDATE, '--cert', cert.chain_pem, '--key', cert.key_pem,
         '--anchors', r.ca.cert_pem, '--keytab', r.keytab, '--lifetime',
         '6s', '--daemon'], env=r.env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    r.daemons.append(proc)

    def second_key_recorded():
        try:
            return status_line(r, WWW_FULL)[4] == '2'
        except Exception:
            return False
    try:
        r.wait_for('the daemon\'s second run in the record',
                   second_key_recorded, timeout=40, step=0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        r.stop_daemon(proc)


def test_ktupdate_metrics_escape_label_values():
    r = Realm(pki=True)
    # A name with a double quote and a backslash (quoted in the name as
    # krb5_unparse_name writes it).
    out = r.run([KTUPDATE, '--principal', 'HTTP/a"b\\\\c@' + REALM,
                 '--keytab', r.keytab, '--status', '--prometheus', '-'])
    if 'principal="HTTP/a\\"b\\\\\\\\c@%s"' % REALM not in out:
        fail('the label value is not escaped:\n' + out)
    fams = parse_prometheus(out)
    if value_of(fams, 'ktupdate_last_run_timestamp_seconds',
                principal='HTTP/a"b\\\\c@' + REALM) != 0:
        fail('the escaped label does not read back')
    r.run([KTUPDATE, '--principal', WWW, '--keytab', r.keytab,
           '--prometheus', '-'], expected_code=2, expected_msg='usage:')
    r.run([KTUPDATE, '--principal', WWW, '--keytab', r.keytab, '--status',
           '--prometheus', r.path('no', 'k.prom')], expected_code=1,
          expected_msg='cannot write the metrics: cannot write %s: No such '
          'file or directory' % r.path('no', 'k.prom'))


Tests().run(test_report_counts_what_happened,
            test_refresh_by_comes_from_the_kdc_log,
            test_unreadable_records_are_counted_not_fatal,
            test_log_window_and_several_logs,
            test_log_in_the_kdcs_locale,
            test_report_errors,
            test_ktupdate_status_after_success_and_failure,
            test_adopted_principal,
            test_daemon_records_each_run,
            test_ktupdate_metrics_escape_label_values)
