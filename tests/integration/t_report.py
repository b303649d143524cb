"""Monitoring: ktupdate --status --prometheus after successes and failures;
the metrics files follow the text exposition format and are replaced
atomically."""

import os
import re
import signal
import subprocess
import time

from realm import Realm, Tests, fail, parse_iso, KTUPDATE, REALM

WWW = 'HTTP/www.test'
WWW_FULL = WWW + '@' + REALM
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


Tests().run(test_ktupdate_status_after_success_and_failure,
            test_daemon_records_each_run,
            test_ktupdate_metrics_escape_label_values)
