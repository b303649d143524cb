"""realm.py - a throwaway Kerberos realm on 127.0.0.1 for the tests.

Shaped like MIT's k5test: every file (configuration, database, stash, logs,
keytabs, credential and replay caches) lives in a fresh temporary directory,
daemons from the system's packages run in the foreground on free loopback
ports, and each is stopped by its PID when the test ends.
"""

import atexit
import calendar
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time

BUILDDIR = os.path.abspath(os.environ.get(
    'TK_BUILDDIR', os.path.join(os.path.dirname(__file__), '..')))
PLUGIN_DIR = os.path.join(BUILDDIR, 'plugin', '.libs')
PREAUTH_MODULE = os.path.join(BUILDDIR, 'preauth', '.libs', 'tempkey.so')
TEMPKEY_ADMIN = os.path.join(BUILDDIR, 'tools', 'tempkey-admin')
KTUPDATE = os.path.join(BUILDDIR, 'tools', 'ktupdate')
# TK_INSTALLROOT=DIR takes the two modules and the two programs from a tree
# installed under DIR the way the Debian packages lay it out (scripts/packages
# unpacks the .debs there) instead of from the build tree.  The KDC then
# proves it loaded them from there (_check_installed_modules).
INSTALLROOT = os.environ.get('TK_INSTALLROOT')
if INSTALLROOT:
    INSTALLROOT = os.path.realpath(INSTALLROOT)
    _plugins = os.path.join(INSTALLROOT, 'usr', 'lib',
                            sysconfig.get_config_var('MULTIARCH') or '',
                            'krb5', 'plugins')
    PLUGIN_DIR = os.path.join(_plugins, 'kdb')
    PREAUTH_MODULE = os.path.join(_plugins, 'preauth', 'tempkey.so')
    TEMPKEY_ADMIN = os.path.join(INSTALLROOT, 'usr', 'sbin', 'tempkey-admin')
    KTUPDATE = os.path.join(INSTALLROOT, 'usr', 'sbin', 'ktupdate')
    for _f in (os.path.join(PLUGIN_DIR, 'tempkey.so'), PREAUTH_MODULE,
               TEMPKEY_ADMIN, KTUPDATE):
        if not os.path.isfile(_f):
            sys.exit('realm.py: TK_INSTALLROOT has no %s' % _f)
SBIN = '/usr/sbin'
KRB5KDC = os.path.join(SBIN, 'krb5kdc')
KADMIND = os.path.join(SBIN, 'kadmind')
KDB5_UTIL = os.path.join(SBIN, 'kdb5_util')
KADMIN_LOCAL = os.path.join(SBIN, 'kadmin.local')
KPROPD = os.path.join(SBIN, 'kpropd')
KPROP = os.path.join(SBIN, 'kprop')
KPROPLOG = os.path.join(SBIN, 'kproplog')
TK_UPLOAD = os.path.join(BUILDDIR, 'tests', 'tools', 'tk-upload')
KINIT, KVNO, KLIST, KDESTROY, KADMIN = (
    '/usr/bin/kinit', '/usr/bin/kvno', '/usr/bin/klist', '/usr/bin/kdestroy',
    '/usr/bin/kadmin')

REALM = 'TEMPKEY.TEST'
PASSWORD = 'master-pw'
# How long a daemon may take to say it is ready.
START_TIMEOUT = 30


class Failure(Exception):
    pass


def fail(msg):
    raise Failure(msg)


def skip(msg):
    """Exit as skipped (77) because a prerequisite is missing."""
    print('SKIP: ' + msg)
    sys.exit(77)


def prerequisites(check):
    """Run a harness's prerequisite check, which exits 77 when something is
    missing; say so and return False instead, so that the other tests of
    the file still run."""
    try:
        check()
    except SystemExit as e:
        if e.code != 77:
            raise
        print('SKIP: this test (see above); the others ran')
        return False
    return True


def free_port():
    """A port free on 127.0.0.1 for both TCP and UDP right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(('127.0.0.1', 0))
            port = t.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                    u.bind(('127.0.0.1', port))
            except OSError:
                continue
            return port
    fail('no free loopback port')


_live_realms = []


def _cleanup_all():
    # Newest first: a realm may live inside an older one's directory.
    for r in reversed(list(_live_realms)):
        r.stop()


atexit.register(_cleanup_all)


class Realm:
    """A realm in a temp dir.  tempkey=False gives the stock db2 realm."""

    def __init__(self, realm=REALM, tempkey=True, create=True,
                 start_kdc=True, kdc_args=(), start_kadmind=False,
                 purge_interval='2s', kdc_extra='', dbmodules_extra='',
                 tk_section=None, realm_extra='', pki=False,
                 libdefaults_extra='',
                 enroll='HTTP/*.test host/*.test', pki_keytype='ec',
                 backing='db2', ldap=None, share=None,
                 dir=None, ca=None, iprop=False, admin_server=True,
                 settle_time=None, tk_extra=''):
        """backing='kldap' keeps the database in the directory of ldap (a
        tests/ldap.py Slapd) instead of db2.  share=another Realm makes a
        second KDC of the same realm on the same database: its master key
        stash, ratchet file and PKI are reused and nothing is created.  dir= puts the
        realm's files in dir (made here) instead of a new temporary
        directory; ca= (with pki=True) issues the KDC's certificate from
        that tests/pki.py CA, another realm's, instead of a new one;
        iprop=True sets iprop_enable; admin_server=False leaves the realm's
        admin_server out of krb5.conf.  settle_time, if given, goes in the
        tempkey section, and so do the lines of tk_extra."""
        self.realm = realm
        self.tempkey = tempkey
        self.backing = backing
        self.ldap = ldap
        self.share = share
        if share is not None:
            create = False
        if dir is None:
            self.dir = tempfile.mkdtemp(prefix='tk-realm-')
        else:
            os.makedirs(dir)
            self.dir = dir
        self.iprop = iprop
        self.admin_server = admin_server
        self.daemons = []
        self.kdc_port = free_port()
        self.kadmind_port = free_port()
        self.kpasswd_port = free_port()
        self.kdc_log = self.path('kdc.log')
        self.kadmind_log = self.path('kadmind.log')
        self.stash = self.path('stash')
        # The ratchet's default place: beside the database (database_name).
        self.ratchet = self.path('principal.ratchet')
        self.keytab = self.path('keytab')
        self.ccache = self.path('ccache')
        if tk_section is None:
            tk_section = ('    tk = {\n'
                          '        db_library = tempkey\n'
                          '        backing_module = main\n'
                          '        database_name = %s\n'
                          '        purge_interval = %s\n'
                          '%s%s'
                          '    }' % (self.path('principal'), purge_interval,
                                    '        settle_time = %s\n' % settle_time
                                    if settle_time else '', tk_extra))
        self.tk_section = tk_section
        self.kdc_extra = kdc_extra
        self.libdefaults_extra = libdefaults_extra
        self.dbmodules_extra = dbmodules_extra
        self.realm_extra = realm_extra
        self.plugins = ''
        self.ldap_pwfile = self.path('ldap.pw')
        if share is not None and hasattr(share, 'ca'):
            self._share_pki(share, enroll)
        elif pki:
            self._make_pki(enroll, pki_keytype, ca)
        self.write_config()
        self.env = self._make_env()
        _live_realms.append(self)
        if backing == 'kldap':
            self._stash_ldap_passwords()
        if share is not None:
            # A second KDC of the realm holds the same stash and the same
            # ratchet, each copied once.
            shutil.copy(share.stash, self.stash)
            shutil.copy(share.ratchet, self.ratchet)
        with open(self.path('kadm5.acl'), 'w') as f:
            f.write('admin/admin@%s *\n' % realm)
        if create:
            self.create_db()
        if start_kdc:
            self.start_kdc(*kdc_args)
        if start_kadmind:
            self.start_kadmind()

    def create_db(self):
        """Create the database: kdb5_util create -s (kdb5_ldap_util for
        kldap)."""
        if self.backing == 'kldap':
            self._create_ldap_realm()
        else:
            self.run([KDB5_UTIL, 'create', '-s', '-P', PASSWORD])

    # ---- files and environment

    def _make_pki(self, enroll, keytype, ca=None):
        """A CA (or ca, another realm's), the KDC's certificate, and the
        realm configured for uploads: pkinit_identity/anchors and the
        tempkey preauth module."""
        import pki
        self.ca = ca or pki.CA(self.path('pki'), 'Realm CA', keytype=keytype)
        self.kdc_cert = self.ca.issue(
            'kdc', principal='krbtgt/%s@%s' % (self.realm, self.realm),
            kdc=True, keytype=keytype)
        self.realm_extra += f'''
        pkinit_identity = FILE:{self.kdc_cert.cert_pem},{self.kdc_cert.key_pem}
        pkinit_anchors = FILE:{self.ca.cert_pem}
        tempkey_enroll = {enroll}
'''
        self.plugins = f'''[plugins]
    kdcpreauth = {{
        module = tempkey:{PREAUTH_MODULE}
    }}
'''

    def _share_pki(self, other, enroll):
        """The other realm's CA and KDC certificate (one realm, two KDCs)."""
        self.ca = other.ca
        self.kdc_cert = other.kdc_cert
        self.realm_extra += f'''
        pkinit_identity = FILE:{self.kdc_cert.cert_pem},{self.kdc_cert.key_pem}
        pkinit_anchors = FILE:{self.ca.cert_pem}
        tempkey_enroll = {enroll}
'''
        self.plugins = other.plugins

    # ---- kldap

    def _kldap_section(self):
        import ldap
        return f'''    main = {{
        db_library = kldap
        ldap_servers = {self.ldap.uri}
        ldap_kerberos_container_dn = {ldap.SUFFIX}
        ldap_kdc_dn = {ldap.KDC_DN}
        ldap_kadmind_dn = {ldap.ADM_DN}
        ldap_service_password_file = {self.ldap_pwfile}
        ldap_conns_per_server = 2
    }}'''

    def _stash_ldap_passwords(self):
        """kdb5_ldap_util reads the kldap section itself (given the tempkey
        one it crashes), so the profile names it as the realm's
        database_module meanwhile."""
        import ldap
        self.write_config(database_module='main')
        try:
            for dn in (ldap.KDC_DN, ldap.ADM_DN):
                self.run([ldap.KDB5_LDAP_UTIL, 'stashsrvpw', '-f',
                          self.ldap_pwfile, dn],
                         input='%s\n%s\n' % (ldap.SERVICE_PW,
                                               ldap.SERVICE_PW),
                         env=self.unsanitized_env())
        finally:
            self.write_config()

    def _create_ldap_realm(self):
        import ldap
        self.ldap.add_service_accounts()
        self.write_config(database_module='main')
        try:
            self.run([ldap.KDB5_LDAP_UTIL, '-D', ldap.ROOT_DN, '-w',
                      ldap.ROOT_PW, '-H', self.ldap.uri, 'create', '-r',
                      self.realm, '-s', '-P', PASSWORD],
                     env=self.unsanitized_env())
        finally:
            self.write_config()

    def server_cert(self, service, name=None, **kw):
        """A certificate from the realm's CA naming service@REALM, kept
        under name (default: the service)."""
        principal = service if '@' in service else service + '@' + self.realm
        return self.ca.issue(name or service.replace('/', '_'),
                             principal=principal, **kw)

    def ktupdate(self, cert, *args, keytab=None, **kw):
        """Run ktupdate with cert's key and chain and the realm's CA as the
        KDC's anchor."""
        argv = [KTUPDATE, '--cert', cert.chain_pem, '--key', cert.key_pem,
                '--anchors', self.ca.cert_pem,
                '--keytab', keytab or self.keytab] + list(args)
        return self.run(argv, **kw)

    def path(self, *names):
        return os.path.join(self.dir, *names)

    def write_config(self, database_module=None):
        if database_module is None:
            database_module = 'tk' if self.tempkey else 'main'
        r = self.realm
        admin = ('        admin_server = 127.0.0.1:%d\n' % self.kadmind_port
                 if self.admin_server else '')
        if self.backing == 'kldap':
            main = self._kldap_section()
        else:
            main = f'''    main = {{
        db_library = db2
        database_name = {self.path('principal')}
    }}'''
        with open(self.path('krb5.conf'), 'w') as f:
            f.write(f'''[libdefaults]
    default_realm = {r}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
    default_keytab_name = FILE:{self.keytab}
    default_client_keytab_name = FILE:{self.path('client.keytab')}
{self.libdefaults_extra}
[realms]
    {r} = {{
        kdc = 127.0.0.1:{self.kdc_port}
{admin}        kpasswd_server = 127.0.0.1:{self.kpasswd_port}
    }}
[domain_realm]
    localhost = {r}
''')
        with open(self.path('kdc.conf'), 'w') as f:
            f.write(f'''[kdcdefaults]
    kdc_listen = 127.0.0.1:{self.kdc_port}
    kdc_tcp_listen = 127.0.0.1:{self.kdc_port}
{self.kdc_extra}
[realms]
    {r} = {{
        database_module = {database_module}
        database_name = {self.path('principal')}
        key_stash_file = {self.stash}
        acl_file = {self.path('kadm5.acl')}
        kadmind_listen = 127.0.0.1:{self.kadmind_port}
        kpasswd_listen = 127.0.0.1:{self.kpasswd_port}
        iprop_enable = {'true' if self.iprop else 'false'}
        master_key_type = aes256-cts-hmac-sha1-96
        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
        max_life = 10h
        max_renewable_life = 7d
{self.realm_extra}
    }}
[dbmodules]
    db_module_dir = {PLUGIN_DIR}
{self.tk_section}
{main}
{self.dbmodules_extra}
[logging]
    kdc = FILE:{self.kdc_log}
    admin_server = FILE:{self.kadmind_log}
{self.plugins}''')

    def _make_env(self):
        env = dict(os.environ)
        for k in list(env):
            if k.startswith('KRB5'):
                del env[k]
        # No KRB5_KTNAME: kadmind would take it for its own keytab instead of
        # the database's; clients get default_keytab_name from krb5.conf.
        env.update({
            'KRB5_CONFIG': self.path('krb5.conf'),
            'KRB5_KDC_PROFILE': self.path('kdc.conf'),
            'KRB5CCNAME': 'FILE:' + self.ccache,
            'KRB5_CLIENT_KTNAME': 'FILE:' + self.path('client.keytab'),
            'KRB5RCACHEDIR': self.dir,   # the default replay cache lives here
            'LC_ALL': 'C',
            'TZ': 'UTC',
        })
        # scripts/check --sanitize: Debian's uninstrumented daemons and
        # tools load our instrumented modules, which needs the sanitizer
        # runtimes loaded first.  Only what the realm runs gets them, not
        # the test's own interpreter.  No leak check there: MIT's programs
        # do not free everything at exit (make valgrind-kdc checks ours).
        preload = os.environ.get('TK_SANITIZE_PRELOAD')
        if preload:
            env['LD_PRELOAD'] = preload
            env['ASAN_OPTIONS'] = (env.get('ASAN_OPTIONS', '') +
                                   ':detect_leaks=0').lstrip(':')
        return env

    def unsanitized_env(self):
        """The environment without the sanitizer runtimes, for MIT's LDAP
        set-up tool: it loads only kldap, never our code, and under the
        preloaded runtimes it hangs (in libldap)."""
        env = dict(self.env)
        env.pop('LD_PRELOAD', None)
        return env

    # ---- running commands

    def run(self, args, expected_code=0, input=None, expected_msg=None,
            env=None, timeout=60):
        """Run a command; check its exit status and, if given, that
        expected_msg appears in its output.  Return the output."""
        proc = subprocess.run(args, input=input, capture_output=True,
                              text=True, env=env or self.env,
                              timeout=timeout)
        out = proc.stdout + proc.stderr
        sys.stdout.write('+ %s -> %d\n%s' % (' '.join(args), proc.returncode,
                                            _indent(out)))
        if expected_code is not None and proc.returncode != expected_code:
            fail('%s exited %d, expected %d:\n%s' % (
                args[0], proc.returncode, expected_code, out))
        # Every error a tool prints, ours or MIT's over our modules, is text.
        if 'Unknown code' in out:
            fail('%s printed an error code without its text:\n%s' %
                 (args[0], out))
        if expected_msg is not None and expected_msg not in out:
            fail('%s: expected %r in output:\n%s' % (args[0], expected_msg,
                                                     out))
        return out

    def kadmin_local(self, query, **kw):
        return self.run([KADMIN_LOCAL, '-q', query], **kw)

    def addprinc(self, princ, password=None):
        if password is None:
            return self.kadmin_local('addprinc -randkey ' + princ)
        return self.kadmin_local('addprinc -pw %s %s' % (password, princ))

    def tempkey_admin(self, *args, **kw):
        return self.run([TEMPKEY_ADMIN] + list(args), **kw)

    def set_key(self, princ, lifetime='1h', keytab=None, *extra):
        """Give princ an admin-made temporary key with tempkey-admin set;
        return (kvno, expiry as seconds since the epoch)."""
        args = ['set', princ, '--lifetime', lifetime]
        if keytab:
            args += ['--keytab', keytab]
        out = self.tempkey_admin(*(args + list(extra)))
        m = re.search(r' kvno (\d+) expires (\S+) ', out)
        if not m:
            fail('unexpected tempkey-admin set output: ' + out)
        return int(m.group(1)), parse_iso(m.group(2))

    def kinit(self, princ, password=None, flags=(), **kw):
        return self.run([KINIT] + list(flags) + [princ],
                        input=(password + '\n') if password else None, **kw)

    def dump(self):
        """The database as kdb5_util dump text."""
        out = self.path('dump.tmp')
        self.run([KDB5_UTIL, 'dump', out])
        with open(out) as f:
            text = f.read()
        os.unlink(out)
        return text

    def dump_entry(self, princ):
        """The dump line of one principal (raw, as stored)."""
        for line in self.dump().splitlines():
            fields = line.split('\t')
            if fields[0] == 'princ' and princ in fields:
                return line
        return None

    # ---- daemons

    def _start(self, args, ready, log=None, env=None):
        proc = subprocess.Popen(args, env=env or self.env,
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        self.daemons.append(proc)
        deadline = time.monotonic() + START_TIMEOUT
        seen = []
        os.set_blocking(proc.stdout.fileno(), False)
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line:
                seen.append(line)
                if ready in line:
                    return proc
                continue
            if proc.poll() is not None:
                rest = proc.stdout.read() or ''
                fail('%s exited %d before it was ready:\n%s' % (
                    args[0], proc.returncode, ''.join(seen) + rest))
            time.sleep(0.05)
        self.stop_daemon(proc)
        fail('%s not ready after %ds:\n%s' % (args[0], START_TIMEOUT,
                                               ''.join(seen)))

    def start_kdc(self, *args):
        self.kdc = self._start([KRB5KDC, '-n'] + list(args), 'starting...')
        if INSTALLROOT and self.tempkey:
            self._check_installed_modules(self.kdc)
        return self.kdc

    def _check_installed_modules(self, proc):
        """Fail unless the KDC process has mapped exactly the KDB and (with
        pki) preauth modules under TK_INSTALLROOT; say which on stderr."""
        want = {os.path.join(PLUGIN_DIR, 'tempkey.so')}
        if self.plugins:
            want.add(PREAUTH_MODULE)
        with open('/proc/%d/maps' % proc.pid) as f:
            mapped = {line.split(None, 5)[5].strip() for line in f
                      if line.rstrip().endswith('/tempkey.so')}
        if mapped != want:
            fail('krb5kdc maps %s, expected %s' % (sorted(mapped),
                                                   sorted(want)))
        for path in sorted(mapped):
            sys.stderr.write('krb5kdc (pid %d) loaded %s\n' % (proc.pid, path))

    def start_kadmind(self, *args):
        self.kadmind = self._start([KADMIND, '-nofork', '-W'] + list(args),
                                   'starting...')
        return self.kadmind

    def start_replica_kdc(self, name, primary=None, admin_server=True,
                          port=None):
        """Another krb5kdc on this realm's database whose tempkey section
        says role = replica, with its own port, configuration files and log
        (NAME.kdc.log).  primary, if given, is the primary_kdc of its
        kdc.conf; admin_server=False leaves admin_server out of its
        krb5.conf, so that it knows no primary at all.  port (default: a
        free one) lets replicas name each other.  Returns an object with
        port, log, proc and log_text()."""
        port = port or free_port()
        log = self.path(name + '.kdc.log')
        with open(self.path('kdc.conf')) as f:
            kdc_conf = f.read()
        for old, new in (
                ('kdc_listen = 127.0.0.1:%d' % self.kdc_port,
                 'kdc_listen = 127.0.0.1:%d' % port),
                ('kdc_tcp_listen = 127.0.0.1:%d' % self.kdc_port,
                 'kdc_tcp_listen = 127.0.0.1:%d' % port),
                ('kdc = FILE:' + self.kdc_log, 'kdc = FILE:' + log),
                ('db_library = tempkey\n',
                 'db_library = tempkey\n        role = replica\n')):
            if old not in kdc_conf:
                fail('cannot make a replica configuration: no %r' % old)
            kdc_conf = kdc_conf.replace(old, new, 1)
        if primary is not None:
            kdc_conf = kdc_conf.replace(
                '        database_module =',
                '        primary_kdc = %s\n'
                '        database_module =' % primary, 1)
        with open(self.path('krb5.conf')) as f:
            krb5_conf = f.read()
        if not admin_server:
            krb5_conf = re.sub(r'\n\s*admin_server = [^\n]*', '', krb5_conf)
        for suffix, text in (('kdc.conf', kdc_conf), ('krb5.conf', krb5_conf)):
            with open(self.path('%s.%s' % (name, suffix)), 'w') as f:
                f.write(text)
        env = dict(self.env, KRB5_CONFIG=self.path(name + '.krb5.conf'),
                   KRB5_KDC_PROFILE=self.path(name + '.kdc.conf'))
        proc = self._start([KRB5KDC, '-n'], 'starting...', env=env)
        return ReplicaKDC(port, log, proc)

    def stop_daemon(self, proc):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        # What the daemon wrote after it was ready (a crash, a sanitizer
        # report) goes into the test's log.
        rest = _drain(proc.stdout) if proc.stdout else ''
        if rest:
            sys.stdout.write('+ %s wrote after it was ready (exit %s):\n%s'
                             % (proc.args[0], proc.returncode,
                                _indent(rest)))
        if proc in self.daemons:
            self.daemons.remove(proc)

    def stop_kdc(self):
        self.stop_daemon(self.kdc)

    def stop(self):
        for proc in list(self.daemons):
            self.stop_daemon(proc)
        if self in _live_realms:
            _live_realms.remove(self)
        if os.environ.get('TK_KEEP_REALM'):
            print('realm kept in ' + self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # ---- logs

    def kdc_log_text(self):
        try:
            with open(self.kdc_log) as f:
                return f.read()
        except FileNotFoundError:
            return ''

    def wait_for(self, what, check, timeout=30, step=0.2):
        """Poll check() until it is true, at most timeout seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(step)
        fail('timed out after %ds waiting for %s' % (timeout, what))


class ReplicaKDC:
    """A second KDC started by Realm.start_replica_kdc()."""

    def __init__(self, port, log, proc):
        self.port, self.log, self.proc = port, log, proc

    def log_text(self):
        try:
            with open(self.log) as f:
                return f.read()
        except FileNotFoundError:
            return ''


def _drain(pipe):
    """What is left in a daemon's non-blocking pipe, without waiting (a
    child of the daemon may still hold it open)."""
    chunks = []
    while True:
        try:
            b = os.read(pipe.fileno(), 65536)
        except (OSError, ValueError):
            break
        if not b:
            break
        chunks.append(b)
    return b''.join(chunks).decode('utf-8', 'replace')


def _indent(text):
    return ''.join('    ' + line + '\n' for line in text.splitlines())


def parse_iso(text):
    """Seconds since the epoch of an ISO 8601 UTC time (2026-01-02T03:04:05Z)."""
    return calendar.timegm(time.strptime(text, '%Y-%m-%dT%H:%M:%SZ'))


def klist_times(realm, ccache=None):
    """{service: (start, end, renew_till or None)} from klist, in seconds
    since the epoch (the realm's environment sets TZ=UTC)."""
    args = [KLIST]
    if ccache:
        args += ['-c', ccache]
    out = realm.run(args)
    tickets = {}
    last = None
    fmt = '%m/%d/%y %H:%M:%S'
    for line in out.splitlines():
        m = re.match(r'^(\S+ \S+)\s+(\S+ \S+)\s+(\S+)$', line)
        if m:
            last = m.group(3)
            tickets[last] = [calendar.timegm(time.strptime(m.group(1), fmt)),
                             calendar.timegm(time.strptime(m.group(2), fmt)),
                             None]
            continue
        m = re.match(r'^\s+renew until (\S+ \S+)$', line)
        if m and last:
            tickets[last][2] = calendar.timegm(time.strptime(m.group(1), fmt))
    return {k: tuple(v) for k, v in tickets.items()}


def dump_fields(line):
    """The fields of a kdb5_util dump princ line, split on tabs."""
    return line.rstrip(';').split('\t')


def entry_tl_data(line):
    """{tl type: hex contents} of a dump princ line (dump format r1.11)."""
    f = dump_fields(line)
    n_tl = int(f[3])
    pos = 15
    tl = {}
    for _ in range(n_tl):
        tl[int(f[pos])] = f[pos + 2]
        pos += 3
    return tl


def entry_keys(line):
    """[(kvno, enctype, hex)] of a dump princ line."""
    f = dump_fields(line)
    n_tl, n_keys = int(f[3]), int(f[4])
    pos = 15 + 3 * n_tl
    keys = []
    for _ in range(n_keys):
        ver, kvno = int(f[pos]), int(f[pos + 1])
        pos += 2
        enctype, _, contents = int(f[pos]), f[pos + 1], f[pos + 2]
        pos += 3 * ver
        keys.append((kvno, enctype, contents))
    return keys


def _print_kdc_logs(lines=40):
    """The end of each live realm's KDC log, for a failure's report: the
    realm's directory goes with the test, and the KDC's own words (a
    refusal's detail, a store that failed) are often the only clue."""
    for r in _live_realms:
        tail = r.kdc_log_text().splitlines()[-lines:]
        if tail:
            print('--- the last %d lines of %s' % (len(tail), r.kdc_log))
            print('\n'.join(tail))


class Tests:
    """Run test functions in order, reporting each; exit non-zero on any
    failure.  With shared=True realms live on from one test to the next (a
    fixture several tests use) and are stopped at exit."""

    def __init__(self, shared=False):
        self.shared = shared

    def run(self, *funcs):
        # TK_ONLY=name[,name...] runs just those tests (to chase one).
        only = os.environ.get('TK_ONLY')
        if only:
            funcs = [fn for fn in funcs if fn.__name__ in only.split(',')]
        failed = 0
        for fn in funcs:
            name = fn.__name__
            print('=== ' + name)
            try:
                fn()
            except Failure as e:
                failed += 1
                _print_kdc_logs()
                print('FAIL: %s: %s' % (name, e))
                continue
            except Exception as e:  # a crash in the test is a failure too
                import traceback
                traceback.print_exc()
                failed += 1
                _print_kdc_logs()
                print('FAIL: %s: %r' % (name, e))
                continue
            finally:
                if not self.shared:
                    _cleanup_all()
            print('PASS: ' + name)
        print('%d passed, %d failed' % (len(funcs) - failed, failed))
        sys.exit(1 if failed else 0)
