"""iprop.py - a primary and a replica of one realm, joined by MIT's
incremental propagation, for the tests.

    pair = IpropPair()              # both KDCs, kadmind, kpropd, synced
    p, r = pair.primary, pair.replica
    p.kadmin_local('modprinc -maxlife 1h user')
    pair.wait_synced()              # the replica has replayed it
    same, diff = pair.compare_dumps()

The primary is a tests/realm.py Realm with its krb5kdc and a kadmind serving
iprop; the replica is another Realm, in a directory inside the primary's,
with its own krb5kdc and a kpropd polling the primary.  Everything listens
on 127.0.0.1, except kpropd's full-resync listener: kpropd in iprop mode
binds it to the wildcard address (1.20 has no option), on a free port.

How MIT's iprop finds its peers, and so what is set up here:
- kpropd authenticates to kadmind as kiprop/HOST, HOST being this machine's
  name as libkrb5 makes it (gethostname(), lower case, not qualified since
  qualify_shortname is empty and DNS canonicalisation off), using the key in
  the keytab given with -s; it asks for the service kiprop/PRIMARY where
  PRIMARY is the -A argument (HOST again: one machine).  kadmind's ACL needs
  "kiprop/HOST@REALM p".
- Both sides need iprop_port (default 0); kadmind listens on iprop_listen.
- A full resync makes kadmind dump the database (kdb5_util, -p) to the file
  given with -F and run kprop (-K) to HOST at the port given with -k; kprop
  authenticates as host/HOST with the primary's default keytab, and kpropd
  accepts it when host/HOST@REALM is in its ACL file (-a), keeps the dump
  in its -f file, and loads it with kdb5_util (-p) in its own environment.
- Each side's update log is its realm's iprop_logfile, set here inside its
  directory; the replica polls every iprop_replica_poll.

Every daemon is stopped by its PID when the pair (or the process) ends.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import time

from realm import (Realm, fail, free_port, skip, START_TIMEOUT, KDB5_UTIL,
                   KPROP, KPROPD, KPROPLOG)

# Two things differ between a primary's dump and a faithful replica's, and
# only those are set aside when comparing them:
# - the lockout fields of a princ line (last_success, last_failed,
#   fail_auth_count): each KDC keeps its own, db2's AS audit writes them in
#   place on whichever KDC served the request, and nothing propagates them;
# - the order of an entry's tl_data: an entry replayed from the update log
#   is rebuilt with its tl_data in the log's order (MIT's ulog replay; seen
#   with stock db2 as well), so the comparison sorts them by type.
LOCKOUT_FIELDS = (12, 13, 14)
TL_START = 15       # first tl_data field of a dump (r1.11) princ line


def kprop_hostname():
    """The host name kpropd and kprop put in their principals (see the
    module's comment); skip unless it names this machine's loopback."""
    host = socket.gethostname().lower()
    try:
        addrs = {a[4][0] for a in socket.getaddrinfo(host, None,
                                                     socket.AF_INET)}
    except socket.gaierror as e:
        skip('the host name %r does not resolve (%s); kprop needs it' %
             (host, e))
    if not addrs or not all(a.startswith('127.') for a in addrs):
        skip('the host name %r resolves to %s, not loopback; kprop would '
             'leave the machine' % (host, sorted(addrs)))
    return host


def normalize_dump(dump_text):
    """Dump text with each princ line's lockout fields blanked and its
    tl_data sorted (see above)."""
    out = []
    for line in dump_text.splitlines():
        fields = line.split('\t')
        if fields[0] == 'princ' and len(fields) > TL_START:
            for i in LOCKOUT_FIELDS:
                fields[i] = '*'
            n_tl = int(fields[3])
            end = TL_START + 3 * n_tl
            tl = [fields[i:i + 3] for i in range(TL_START, end, 3)]
            tl.sort(key=lambda t: (int(t[0]), t[2]))
            fields[TL_START:end] = [x for t in tl for x in t]
        out.append('\t'.join(fields))
    return '\n'.join(out) + '\n'


def ulog_last(realm):
    """(last serial, last time stamp) of realm's update log, from kproplog
    -h, or None if it has none."""
    # Quietly: wait_synced() calls this a few times a second.
    proc = subprocess.run([KPROPLOG, '-h'], env=realm.env,
                          capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    sno = re.search(r'Last serial # : (\S+)', out)
    stamp = re.search(r'Last time stamp : (.+)', out)
    if not sno or not stamp or sno.group(1) == 'None':
        return None
    return int(sno.group(1)), stamp.group(1).strip()


class IpropPair:
    """A primary and one replica.  primary_purge and replica_purge are the
    tempkey purge intervals (None leaves the module's default); poll is the
    replica's iprop_replica_poll; *_extra are more kdc.conf [realms] lines;
    replica_primary_kdc False leaves primary_kdc out of the replica's
    kdc.conf (it then names the primary from admin_server); tk_extra are
    more lines for both tempkey sections."""

    def __init__(self, primary_purge='2s', replica_purge=None, poll='1s',
                 primary_extra='', replica_extra='', kdc_args=(),
                 ulogsize=None, tempkey=True, tk_extra=''):
        self.host = kprop_hostname()
        libdefaults = '    qualify_shortname = ""\n'
        self.iprop_port = free_port()
        self.kprop_port = free_port()

        # The primary: its database, the iprop principals, kadmind.
        p = Realm(pki=True, iprop=True, create=False, start_kdc=False,
                  tempkey=tempkey, tk_extra=tk_extra,
                  purge_interval=primary_purge, libdefaults_extra=libdefaults)
        self.primary = p
        p.ulog = p.path('ulog')
        p.realm_extra += (
            '        iprop_port = %d\n'
            '        iprop_listen = 127.0.0.1:%d\n'
            '        iprop_logfile = %s\n' % (self.iprop_port,
                                              self.iprop_port, p.ulog))
        if ulogsize:
            p.realm_extra += '        iprop_ulogsize = %d\n' % ulogsize
        p.realm_extra += primary_extra
        p.write_config()
        p.create_db()
        self.kiprop = 'kiprop/%s@%s' % (self.host, p.realm)
        self.kprop_princ = 'host/%s@%s' % (self.host, p.realm)
        with open(p.path('kadm5.acl'), 'a') as f:
            f.write('%s p\n' % self.kiprop)
        for princ in (self.kiprop, self.kprop_princ):
            if 'Principal: ' + princ not in p.kadmin_local(
                    'getprinc ' + princ, expected_code=None):
                p.addprinc(princ)
        # kprop (run by kadmind) reads host/HOST's key from the primary's
        # default keytab; kpropd gets both keys in a keytab of its own.
        p.kadmin_local('ktadd -k %s %s %s' % (p.keytab, self.kprop_princ,
                                             self.kiprop))

        # The replica: same stash (the dump carries the master key's
        # entry, not the key) and ratchet file, the primary's CA and a KDC certificate of
        # its own, role = replica.
        r = Realm(dir=p.path('replica'), pki=True, ca=p.ca, iprop=True,
                  tempkey=tempkey,
                  create=False, start_kdc=False,
                  libdefaults_extra=libdefaults,
                  tk_section='')
        self.replica = r
        r.tk_section = self._tk_section(r.path('principal'), replica_purge,
                                        'replica', tk_extra)
        r.ulog = r.path('ulog')
        # The replica's admin server is the primary's kadmind.
        r.kadmind_port = p.kadmind_port
        r.realm_extra += (
            '        iprop_port = %d\n'
            '        iprop_logfile = %s\n'
            '        iprop_replica_poll = %s\n'
            '        primary_kdc = 127.0.0.1:%d\n' % (
                self.iprop_port, r.ulog, poll, p.kdc_port))
        r.realm_extra += replica_extra
        r.write_config()
        shutil.copyfile(p.stash, r.stash)
        os.chmod(r.stash, 0o600)
        # Its ratchet is the primary's, copied once like the stash.
        shutil.copyfile(p.ratchet, r.ratchet)
        os.chmod(r.ratchet, 0o600)
        self.kpropd_keytab = r.path('kpropd.keytab')
        shutil.copyfile(p.keytab, self.kpropd_keytab)
        self.kpropd_acl = r.path('kpropd.acl')
        with open(self.kpropd_acl, 'w') as f:
            f.write(self.kprop_princ + '\n')
        initial = p.path('initial.dump')
        p.run([KDB5_UTIL, 'dump', initial])
        r.run([KDB5_UTIL, 'load', initial])
        os.unlink(initial)

        p.start_kdc(*kdc_args)
        p.start_kadmind('-p', KDB5_UTIL, '-K', KPROP,
                        '-k', str(self.kprop_port),
                        '-F', p.path('replica_datatrans'))
        r.start_kdc()
        self.kpropd = None
        self.kpropd_log = r.path('kpropd.log')
        self.start_kpropd()
        self.wait_synced()

    @staticmethod
    def _tk_section(dbname, purge, role, extra=''):
        lines = ['    tk = {', '        db_library = tempkey',
                 '        backing_module = main',
                 '        database_name = %s' % dbname]
        if purge is not None:
            lines.append('        purge_interval = %s' % purge)
        if role is not None:
            lines.append('        role = %s' % role)
        return '\n'.join(lines) + '\n' + extra + '    }'

    # ---- kpropd

    def start_kpropd(self):
        """Start kpropd (debug output to kpropd.log) and wait until it is
        ready."""
        r = self.replica
        args = [KPROPD, '-D', '-d', '-P', str(self.kprop_port),
                '-f', r.path('from_primary'), '-p', KDB5_UTIL,
                '-a', self.kpropd_acl, '-s', self.kpropd_keytab,
                '-A', self.host]
        log = open(self.kpropd_log, 'a')
        start = log.tell()
        proc = subprocess.Popen(args, env=r.env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT)
        log.close()
        r.daemons.append(proc)
        self.kpropd = proc
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if 'ready' in self.kpropd_text(start):
                return proc
            if proc.poll() is not None:
                fail('kpropd exited %d before it was ready:\n%s' % (
                    proc.returncode, self.kpropd_text(start)))
            time.sleep(0.1)
        fail('kpropd not ready after %ds:\n%s' % (START_TIMEOUT,
                                                 self.kpropd_text(start)))

    def stop_kpropd(self):
        if self.kpropd is not None:
            self.replica.stop_daemon(self.kpropd)
            self.kpropd = None

    def kpropd_text(self, start=0):
        try:
            with open(self.kpropd_log) as f:
                f.seek(start)
                return f.read()
        except FileNotFoundError:
            return ''

    def poke(self):
        """Ask kpropd to poll now (SIGUSR1) instead of at its interval."""
        if self.kpropd is not None and self.kpropd.poll() is None:
            self.kpropd.send_signal(signal.SIGUSR1)

    # ---- state

    def synced(self):
        """True if the replica's update log ends where the primary's does."""
        last = ulog_last(self.primary)
        return last is not None and ulog_last(self.replica) == last

    def wait_synced(self, timeout=30):
        """Wait until the replica has replayed everything the primary has
        logged so far; fail (with kpropd's recent output) if it does not
        within timeout seconds."""
        if self.kpropd is None or self.kpropd.poll() is not None:
            fail('kpropd is not running:\n' + self.kpropd_text()[-3000:])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.synced():
                return
            time.sleep(0.2)
        said = self.kpropd_text()
        # A replay the replica refuses repeats after every full resync
        # (kadmind resends its cached dump): name it first.
        refused = sorted({l for l in said.splitlines()
                          if 'ulog_replay failed' in l})
        fail('the replica did not catch up within %ds: primary %r, replica '
             '%r; %skpropd said:\n%s' % (
                 timeout, ulog_last(self.primary), ulog_last(self.replica),
                 ''.join(l + '\n' for l in refused), said[-3000:]))

    def compare_dumps(self):
        """(equal, difference) of the two databases' dumps, lockout fields
        masked; difference is a short unified diff."""
        a = normalize_dump(self.primary.dump())
        b = normalize_dump(self.replica.dump())
        if a == b:
            return True, ''
        import difflib
        diff = difflib.unified_diff(a.splitlines(), b.splitlines(),
                                    'primary', 'replica', lineterm='', n=0)
        return False, '\n'.join(list(diff)[:40])

    def assert_dumps_equal(self, what):
        same, diff = self.compare_dumps()
        if not same:
            fail('after %s the dumps differ:\n%s' % (what, diff))

    def stop(self):
        self.stop_kpropd()
        self.replica.stop()
        self.primary.stop()
