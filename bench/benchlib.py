"""benchlib.py - what the many-KDC benchmarks (iplag.py, ldapbench.py) share:
enrolled services for bench/upbench and an upbench load run."""

import contextlib
import io
import os
import subprocess

import realm as harness

UPBENCH = os.path.join(harness.BUILDDIR, 'bench', 'upbench')


def server_list(r, nservers, path):
    """Write an upbench server list of nservers services HTTP/load<i>.test,
    with certificates from r's CA, to path; return path."""
    with open(path, 'w') as f, contextlib.redirect_stdout(io.StringIO()):
        for i in range(nservers):
            princ = 'HTTP/load%d.test@%s' % (i, r.realm)
            cert = r.server_cert(princ)
            f.write('%s %s %s\n' % (princ, cert.chain_pem, cert.key_pem))
    return path


def start_upbench(r, servers, seconds, lifetime):
    """upbench uploading flat out to r's KDC (its krb5.conf) over the
    servers list, each key living lifetime; the caller reads its output."""
    return subprocess.Popen(
        [UPBENCH, 'upload', '--certs', servers, '--anchors', r.ca.cert_pem,
         '--seconds', str(seconds), '--lifetime', lifetime], env=r.env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
