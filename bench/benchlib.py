"""benchlib.py - what the benchmarks share: enrolled services for
bench/upbench and an upbench load run (iplag.py, ldapbench.py, soak.py);
cloned principals through one kdb5_util load, a snapshot of the build,
/proc readings and KDC log folding (scale.py, soak.py)."""

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import realm as harness
from realm import dump_fields

UPBENCH = os.path.join(harness.BUILDDIR, 'bench', 'upbench')
HZ = os.sysconf('SC_CLK_TCK')


def server_list(r, nservers, path):
    """Write an upbench server list of nservers services HTTP/load<i>.test,
    with certificates from r's CA, to path; return path."""
    with open(path, 'w') as f, contextlib.redirect_stdout(io.StringIO()):
        for i in range(nservers):
            princ = 'HTTP/load%d.test@%s' % (i, r.realm)
            cert = r.server_cert(princ)
            f.write('%s %s %s\n' % (princ, cert.chain_pem, cert.key_pem))
    return path


def start_upbench(r, servers, seconds, lifetime, start_at=None):
    """upbench uploading flat out to r's KDC (its krb5.conf) over the
    servers list, each key living lifetime, from the wall-clock time
    start_at if given; the caller reads its output."""
    return subprocess.Popen(
        [UPBENCH, 'upload', '--certs', servers, '--anchors', r.ca.cert_pem,
         '--seconds', str(seconds), '--lifetime', lifetime] +
        (['--start-at', '%.6f' % start_at] if start_at else []), env=r.env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# ---- many principals at once

def clone_dump(r, model, names, path, header_only=False):
    """Write a dump to path: r's dump (or only its header line) and a clone
    of model's line for every name.  Return the seconds it took."""
    t0 = time.monotonic()
    if header_only:
        # Only the model's line, not all of a large database.
        r.run([harness.KDB5_UTIL, 'dump', path, '%s@%s' % (model, r.realm)])
        with open(path) as f:
            lines = f.read().splitlines()
        for suffix in ('', '.dump_ok'):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path + suffix)
    else:
        lines = r.dump().splitlines()
    line = next(l for l in lines if '\t%s@%s\t' % (model, r.realm) in l)
    f = dump_fields(line)
    head, mid, tail = ('\t'.join(f[:2]), '\t'.join(f[3:6]),
                       '\t'.join(f[7:]) + ';\n')
    with open(path, 'w') as out:
        out.write('\n'.join(lines[:1] if header_only else lines) + '\n')
        for n in names:
            full = '%s@%s' % (n, r.realm)
            out.write('%s\t%d\t%s\t%s\t%s' % (head, len(full.encode()), mid,
                                              full, tail))
    return time.monotonic() - t0


def snapshot_build(dest):
    """Copy the product's parts that realms run (the KDB and preauth
    modules, tempkey-admin, ktupdate) to dest and point tests/realm.py at
    the copies, so that a rebuild of the tree during a long run does not
    change what its daemons load."""
    os.makedirs(os.path.join(dest, 'preauth'), exist_ok=True)
    shutil.copy2(os.path.join(harness.PLUGIN_DIR, 'tempkey.so'), dest)
    shutil.copy2(harness.PREAUTH_MODULE, os.path.join(dest, 'preauth'))
    for tool in (harness.TEMPKEY_ADMIN, harness.KTUPDATE):
        shutil.copy2(tool, dest)
    harness.PLUGIN_DIR = dest
    harness.PREAUTH_MODULE = os.path.join(dest, 'preauth', 'tempkey.so')
    harness.TEMPKEY_ADMIN = os.path.join(dest, 'tempkey-admin')
    harness.KTUPDATE = os.path.join(dest, 'ktupdate')


@contextlib.contextmanager
def private_build():
    """snapshot_build into a new temporary directory for the with block,
    removed after it."""
    dest = tempfile.mkdtemp(prefix='tk-bench-build-')
    try:
        snapshot_build(dest)
        yield dest
    finally:
        shutil.rmtree(dest, ignore_errors=True)


# ---- /proc

def children(pid):
    try:
        with open('/proc/%d/task/%d/children' % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return []


def proc_state(pid):
    """(alive and not a zombie, CPU seconds) of pid.  A pass that has
    ended stays a zombie until the KDC reaps it at its next tick."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            v = f.read().rsplit(')', 1)[1].split()
        return v[0] not in 'ZX', (int(v[11]) + int(v[12])) / HZ
    except (OSError, IndexError, ValueError):
        return False, 0.0


def memory(pid):
    """VmRSS and VmHWM of pid in kB."""
    out = {}
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            k, _, v = line.partition(':')
            if k in ('VmRSS', 'VmHWM'):
                out[k] = int(v.split()[0])
    return out


# ---- KDC logs

# "Dec 01 15:06:50 host krb5kdc[123]" of "...[123](info): text" (syslog
# style, the daemon's local time).
LOG_PREFIX = re.compile(r'^(\w{3} [ \d]\d \d\d:\d\d:\d\d) \S+ '
                        r'(?:krb5kdc|kadmind)\[\d+\]')


def log_line_kind(line):
    """A log line without its time and process, numbered service names
    (HTTP/s12.test, HTTP/load7.test) and other numbers folded, so that
    lines of one kind are equal."""
    key = LOG_PREFIX.sub('', line.rstrip('\n'))
    key = re.sub(r'HTTP/[a-z]+\d+\.test', 'HTTP/<i>.test', key)
    key = re.sub(r'HTTP_[a-z]+\d+\.test', 'HTTP_<i>.test', key)
    key = re.sub(r'[0-9a-f]{8,}\.\.\.', 'X...', key)     # fingerprints
    return re.sub(r'\d+', 'N', key)


def write_json(path, doc):
    """Write a benchmark's figures to path and say so."""
    with open(path, 'w') as f:
        json.dump(doc, f, indent=2)
        f.write('\n')
    print('wrote ' + path)
