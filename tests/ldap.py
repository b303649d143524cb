"""ldap.py - throwaway OpenLDAP servers on 127.0.0.1 for the kldap tests.

Each Slapd runs Debian's slapd in the foreground from a temp dir with its
own slapd.conf: back_mdb and syncprov loaded as modules from /usr/lib/ldap,
core and the Kerberos schema (gunzipped from krb5-kdc-ldap's doc folder), one
database whose rootdn/rootpw the KDCs bind with.  A pair made by
provider_pair() replicates both ways (OpenLDAP multi-provider: syncprov and
syncrepl on each, "multiprovider on", distinct serverIDs); with links=True
each server's syncrepl connection to its peer goes through a Link, a
loopback relay that the test can pause and resume, so that a race between
the two servers can be provoked on purpose.  Every server is stopped by its
PID at exit.
"""

import atexit
import gzip
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from realm import fail, free_port, skip

SLAPD = '/usr/sbin/slapd'
LDAPSEARCH = '/usr/bin/ldapsearch'
MODULE_DIR = '/usr/lib/ldap'
CORE_SCHEMA = '/etc/ldap/schema/core.schema'
KRB_SCHEMA_GZ = '/usr/share/doc/krb5-kdc-ldap/kerberos.schema.gz'
KDB5_LDAP_UTIL = '/usr/sbin/kdb5_ldap_util'

SUFFIX = 'cn=krb5'
ROOT_DN = 'cn=admin,cn=krb5'
ROOT_PW = 'ldap-root-pw'
# The KDC binds as KDC_DN (ldap_kdc_dn), admin tools and the module's writer
# context as ADM_DN (ldap_kadmind_dn); both may write the realm's entries.
KDC_DN = 'cn=kdc-service,cn=krb5'
ADM_DN = 'cn=adm-service,cn=krb5'
SERVICE_PW = 'ldap-service-pw'
LDAPADD = '/usr/bin/ldapadd'
# How long slapd may take to answer after starting, in seconds.
START_TIMEOUT = 20


def check_prerequisites():
    """Skip (exit 77) naming what is missing."""
    for path, what in ((SLAPD, 'slapd (package slapd)'),
                       (LDAPSEARCH, 'ldapsearch (package ldap-utils)'),
                       (KRB_SCHEMA_GZ, 'the Kerberos schema (krb5-kdc-ldap)'),
                       (KDB5_LDAP_UTIL, 'kdb5_ldap_util (krb5-kdc-ldap)'),
                       (os.path.join(MODULE_DIR, 'back_mdb.so'), 'back_mdb'),
                       (os.path.join(MODULE_DIR, 'syncprov.so'), 'syncprov'),
                       (CORE_SCHEMA, 'the core schema (slapd)')):
        if not os.path.exists(path):
            skip('%s is not installed (%s)' % (what, path))


_live = []


def stop_all():
    """Stop and remove every server started so far."""
    for s in list(_live):
        s.destroy()


atexit.register(stop_all)


class Slapd:
    """One slapd in its own temp dir, listening on ldap://127.0.0.1:port."""

    def __init__(self, server_id=None, start=True):
        self.dir = tempfile.mkdtemp(prefix='tk-slapd-')
        self.port = free_port()
        self.uri = 'ldap://127.0.0.1:%d' % self.port
        self.server_id = server_id
        self.peers = []             # the URIs it replicates from
        self.inbound = None         # the Link its replication comes through
        self.proc = None
        self.log = os.path.join(self.dir, 'slapd.log')
        os.mkdir(os.path.join(self.dir, 'db'))
        self.schema = os.path.join(self.dir, 'kerberos.schema')
        with gzip.open(KRB_SCHEMA_GZ, 'rb') as src, \
                open(self.schema, 'wb') as dst:
            shutil.copyfileobj(src, dst)
        _live.append(self)
        if start:
            self.start()

    def path(self, *names):
        return os.path.join(self.dir, *names)

    def write_config(self):
        d = self.dir
        lines = [
            'include %s' % CORE_SCHEMA,
            'include %s' % self.schema,
            'pidfile %s' % self.path('slapd.pid'),
            'argsfile %s' % self.path('slapd.args'),
            'modulepath %s' % MODULE_DIR,
            'moduleload back_mdb',
            'moduleload syncprov',
        ]
        if self.server_id is not None:
            lines.append('serverID %d' % self.server_id)
        lines += [
            'database mdb',
            'suffix "%s"' % SUFFIX,
            'rootdn "%s"' % ROOT_DN,
            'rootpw %s' % ROOT_PW,
            'directory %s' % os.path.join(d, 'db'),
            'maxsize 268435456',
            'index objectClass eq',
            'index krbPrincipalName eq,pres,sub',
            'index entryCSN,entryUUID eq',
            'overlay syncprov',
            'syncprov-checkpoint 100 1',
            'access to attrs=userPassword by anonymous auth by * none',
            'access to * by dn.exact="%s" write by dn.exact="%s" write '
            'by * none' % (KDC_DN, ADM_DN),
        ]
        for i, peer in enumerate(self.peers):
            # retry: every second, forever; the peer may start later.
            lines.append(
                'syncrepl rid=%03d provider=%s bindmethod=simple '
                'binddn="%s" credentials=%s searchbase="%s" '
                'type=refreshAndPersist retry="1 +" timeout=3 '
                'network-timeout=3' % (
                    self.server_id * 10 + i + 1, peer, ROOT_DN, ROOT_PW,
                    SUFFIX))
        if self.peers:
            lines.append('multiprovider on')
        with open(self.path('slapd.conf'), 'w') as f:
            f.write('\n'.join(lines) + '\n')

    def start(self):
        """Start slapd in the foreground and wait until it answers."""
        if self.proc is not None and self.proc.poll() is None:
            return
        self.write_config()
        out = open(self.log, 'a')
        # -d 0 keeps slapd in the foreground (its PID is ours to stop)
        # without debug output.
        self.proc = subprocess.Popen(
            [SLAPD, '-d', '0', '-h', self.uri, '-f', self.path('slapd.conf')],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                fail('slapd exited %d before answering:\n%s' % (
                    self.proc.returncode, self.log_text()))
            if self.answers():
                print('slapd %s started (pid %d, dir %s)' % (
                    self.uri, self.proc.pid, self.dir))
                return
            time.sleep(0.1)
        self.stop()
        fail('slapd on %s did not answer within %ds:\n%s' % (
            self.uri, START_TIMEOUT, self.log_text()))

    def answers(self):
        proc = subprocess.run(
            [LDAPSEARCH, '-x', '-H', self.uri, '-o', 'nettimeout=2',
             '-b', '', '-s', 'base', 'objectClass=*', 'namingContexts'],
            capture_output=True, text=True, timeout=10)
        return proc.returncode == 0

    def stop(self):
        """Stop slapd by its PID (it flushes its database on SIGTERM)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def destroy(self):
        self.stop()
        if self.inbound is not None:
            self.inbound.stop()
        if self in _live:
            _live.remove(self)
        if os.environ.get('TK_KEEP_REALM'):
            print('slapd dir kept in ' + self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def add(self, ldif):
        """ldapadd as the rootdn."""
        proc = subprocess.run(
            [LDAPADD, '-x', '-H', self.uri, '-D', ROOT_DN, '-w', ROOT_PW],
            input=ldif, capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            fail('ldapadd on %s failed (%d): %s' % (
                self.uri, proc.returncode, proc.stderr))

    def add_service_accounts(self):
        """The Kerberos container and the two DNs the KDC and the admin
        tools bind with."""
        self.add('dn: %s\nobjectClass: krbContainer\ncn: krb5\n\n' % SUFFIX +
                 ''.join('dn: %s\nobjectClass: organizationalRole\n'
                         'objectClass: simpleSecurityObject\ncn: %s\n'
                         'userPassword: %s\n\n' % (
                             dn, dn.split(',')[0][3:], SERVICE_PW)
                         for dn in (KDC_DN, ADM_DN)))

    def log_text(self):
        try:
            with open(self.log) as f:
                return f.read()
        except FileNotFoundError:
            return ''

    def search(self, filt, *attrs, base=SUFFIX):
        """ldapsearch as the rootdn; the LDIF text (unwrapped)."""
        proc = subprocess.run(
            [LDAPSEARCH, '-x', '-LLL', '-o', 'ldif-wrap=no', '-o',
             'nettimeout=5', '-H', self.uri, '-D', ROOT_DN, '-w', ROOT_PW,
             '-b', base, filt] + list(attrs),
            capture_output=True, text=True, timeout=30)
        if proc.returncode not in (0, 32):    # 32: no such object
            fail('ldapsearch on %s failed (%d): %s' % (
                self.uri, proc.returncode, proc.stderr))
        return proc.stdout

    def entry_csn(self, princ):
        """The entryCSN of princ's entry, or None."""
        out = self.search('(krbPrincipalName=%s)' % princ, 'entryCSN')
        for line in out.splitlines():
            if line.startswith('entryCSN: '):
                return line.split(': ', 1)[1]
        return None

    def context_csns(self):
        """The contextCSN values of the suffix: equal on two servers once
        they have replicated everything."""
        out = self.search('(objectClass=*)', 'contextCSN', base=SUFFIX)
        return sorted(line.split(': ', 1)[1] for line in out.splitlines()
                      if line.startswith('contextCSN: '))


class Link:
    """A loopback TCP relay from a port of its own to target_port.  pause()
    holds every byte in the relay (connections stay open, so the
    replication session survives) until resume(); nothing crosses once
    pause() has returned.  Threads are daemons; stop() ends them."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.port = free_port()
        self.uri = 'ldap://127.0.0.1:%d' % self.port
        self.paused = False
        self.stopping = False
        self.cond = threading.Condition()
        self.socks = []
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(('127.0.0.1', self.port))
        self.listener.listen(8)
        self.listener.settimeout(0.2)
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not self.stopping:
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(
                    ('127.0.0.1', self.target_port), timeout=5)
            except OSError:
                client.close()      # the peer is down: as if unreachable
                continue
            self.socks += [client, server]
            for src, dst in ((client, server), (server, client)):
                t = threading.Thread(target=self._pump, args=(src, dst),
                                     daemon=True)
                self.threads.append(t)
                t.start()

    def _pump(self, src, dst):
        src.settimeout(0.2)
        while not self.stopping:
            try:
                data = src.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            # Sent under the lock, so that pause() waits for a send under
            # way and none starts after it.
            with self.cond:
                while self.paused and not self.stopping:
                    self.cond.wait(0.2)
                try:
                    dst.sendall(data)
                except OSError:
                    break
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def pause(self):
        with self.cond:
            self.paused = True

    def resume(self):
        with self.cond:
            self.paused = False
            self.cond.notify_all()

    def stop(self):
        self.stopping = True
        self.resume()
        self.listener.close()
        for t in self.threads:
            t.join(timeout=5)
        for s in self.socks:
            s.close()


def provider_pair(links=False):
    """Two slapd replicating each other (multi-provider), both answering.
    With links, each one's replication from the other comes through a Link
    (server.inbound): see pause_replication()."""
    a = Slapd(server_id=1, start=False)
    b = Slapd(server_id=2, start=False)
    if links:
        a.inbound, b.inbound = Link(b.port), Link(a.port)
        a.peers, b.peers = [a.inbound.uri], [b.inbound.uri]
    else:
        a.peers, b.peers = [b.uri], [a.uri]
    a.start()
    b.start()
    return a, b


def pause_replication(servers):
    """Hold everything replicated to any of servers (made with
    provider_pair(links=True)) until resume_replication()."""
    for s in servers:
        s.inbound.pause()


def resume_replication(servers):
    for s in servers:
        s.inbound.resume()


def wait_in_sync(servers, timeout=30):
    """Wait until every server holds the same contextCSN set (everything
    written anywhere has reached everyone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        csns = [s.context_csns() for s in servers]
        if csns[0] and all(c == csns[0] for c in csns):
            return
        time.sleep(0.1)
    fail('LDAP servers not in sync after %ds: %r' % (timeout, csns))
