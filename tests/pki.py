"""pki.py - throwaway certificate authorities and certificates for the tests.

Everything is made by the openssl command-line tool (OpenSSL 3.0) under a
directory the caller gives, normally a test's temporary directory:

    root = CA(dir)                            # dir/Test_CA/
    sub = CA(dir, 'Sub CA', parent=root)      # an intermediate: dir/Sub_CA/
    alice = sub.issue('alice', principal='alice@TEMPKEY.TEST')
    kdc = root.issue('kdc', principal='krbtgt/TEMPKEY.TEST@TEMPKEY.TEST',
                     kdc=True)
    sub.revoke(alice)
    crl = sub.crl()                           # PEM; crl(der=True) for DER
    subs = ca_chain(root, 5)                  # root -> Sub CA 1 -> ... 5

Each CA is an `openssl ca` database (db/index.txt, db/serial, db/crlnumber)
with its own configuration file (ca.cnf, which names only files relative to
the CA's directory; openssl runs there), so certificates can have arbitrary
validity dates and can be revoked and listed in a CRL.  A directory is named
after the CA or certificate with anything but [A-Za-z0-9._-] made '_', and
'-2', '-3', ... added if the name is taken.  A CA's files are key.pem,
cert.pem and chain.pem (itself, then its parents); a certificate issued by a
CA lives in <CA dir>/<name>/ as key.pem, cert.pem and chain.pem (the leaf,
then the CA chain up to and including the root).  Keys are unencrypted
PKCS#8 PEM.

A Kerberos principal goes into the subjectAltName as the RFC 4556
id-pkinit-san otherName (1.3.6.1.5.2.2), KRB5PrincipalName with name-type 1
and GeneralString components.  It is encoded here, in DER, and handed to
openssl as a raw extension ("subjectAltName = DER:..."), so that no
character of a principal can be taken for openssl configuration syntax; the
bytes are those of MIT's "otherName:1.3.6.1.5.2.2;SEQUENCE:princ_name"
configuration sections.
"""

import base64
import datetime
import hashlib
import os
import re
import secrets
import shutil
import subprocess

try:
    from realm import Failure, fail
except ImportError:         # used on its own
    class Failure(Exception):
        pass

    def fail(msg):
        raise Failure(msg)


OPENSSL = os.environ.get('TK_OPENSSL', 'openssl')

# Names accepted in eku=; dotted OIDs are accepted as they are.
EKU_OIDS = {
    'pkinit-client': '1.3.6.1.5.2.3.4',     # id-pkinit-KPClientAuth
    'pkinit-kdc': '1.3.6.1.5.2.3.5',        # id-pkinit-KPKdc
    'client': '1.3.6.1.5.5.7.3.2',          # id-kp-clientAuth
    'server': '1.3.6.1.5.5.7.3.1',          # id-kp-serverAuth
    'ms-smartcard': '1.3.6.1.4.1.311.20.2.2',   # Microsoft smart card logon
}

# A certificate made without explicit dates starts this long ago, so that
# it is valid at once whatever the clocks' granularity.
BACKDATE = datetime.timedelta(hours=1)

KRB5_NT_PRINCIPAL = 1
OID_PKINIT_SAN = '1.3.6.1.5.2.2'


class OpenSSLError(Failure):
    """An openssl command failed; .stderr holds what it said."""

    def __init__(self, args, returncode, stderr):
        self.argv = args
        self.returncode = returncode
        self.stderr = stderr
        super().__init__('%s exited %s:\n%s' % (
            ' '.join(args), returncode, stderr.rstrip()))


def available():
    """Whether the openssl command is there (tests skip without it)."""
    return shutil.which(OPENSSL) is not None


def openssl(*args, cwd=None, input=None):
    """Run openssl with args; return its stdout, raise OpenSSLError if it
    fails."""
    argv = [OPENSSL] + [str(a) for a in args]
    try:
        proc = subprocess.run(argv, check=True, capture_output=True,
                              input=input, cwd=cwd,
                              stdin=None if input is not None
                              else subprocess.DEVNULL)
    except FileNotFoundError:
        raise OpenSSLError(argv, None, 'no such command: ' + OPENSSL)
    except subprocess.CalledProcessError as e:
        raise OpenSSLError(argv, e.returncode,
                           e.stderr.decode('utf-8', 'replace')) from None
    return proc.stdout


# ---- DER, just enough to write the PKINIT SAN and read a certificate

def der(tag, content):
    """One DER element: a one-byte tag, the length, the content."""
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        b = n.to_bytes((n.bit_length() + 7) // 8, 'big')
        length = bytes([0x80 | len(b)]) + b
    return bytes([tag]) + length + content


def der_oid(dotted):
    arcs = [int(a) for a in dotted.split('.')]
    body = bytes([40 * arcs[0] + arcs[1]])
    for a in arcs[2:]:
        chunk = [a & 0x7f]
        a >>= 7
        while a:
            chunk.append(0x80 | (a & 0x7f))
            a >>= 7
        body += bytes(reversed(chunk))
    return der(0x06, body)


def der_read(buf, pos):
    """(tag, content start, end) of the DER element at pos."""
    tag, n = buf[pos], buf[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7f
        n = int.from_bytes(buf[pos:pos + k], 'big')
        pos += k
    if pos + n > len(buf):
        fail('truncated DER')
    return tag, pos, pos + n


def der_children(buf, start, end):
    """[(tag, whole element, content)] of the elements in buf[start:end]."""
    out = []
    while start < end:
        tag, cs, ce = der_read(buf, start)
        out.append((tag, buf[start:ce], buf[cs:ce]))
        start = ce
    return out


def parse_principal(principal):
    """(components, realm) of a principal name in MIT's syntax: '/' between
    components, '@' before the realm, a backslash quoting the next
    character."""
    comps, cur, realm = [], [], None
    chars = iter(principal)
    for ch in chars:
        if ch == '\\':
            nxt = next(chars, None)
            if nxt is None:
                fail('principal %r ends in a backslash' % principal)
            cur.append({'n': '\n', 't': '\t', 'b': '\b', '0': '\0'}.get(
                nxt, nxt))
        elif realm is None and ch == '/':
            comps.append(''.join(cur))
            cur = []
        elif realm is None and ch == '@':
            comps.append(''.join(cur))
            cur = []
            realm = True
        elif realm is not None and ch == '@':
            fail('principal %r has two realms' % principal)
        else:
            cur.append(ch)
    if realm is None:
        fail('principal %r has no realm' % principal)
    return comps, ''.join(cur)


def krb5_principal_name(principal, name_type=KRB5_NT_PRINCIPAL):
    """DER of KRB5PrincipalName ::= SEQUENCE { realm [0] Realm,
    principalName [1] PrincipalName } (RFC 4556 3.2.2)."""
    comps, realm = parse_principal(principal)

    def gs(s):
        return der(0x1b, s.encode('utf-8'))     # GeneralString

    pname = der(0x30, der(0xa0, der(0x02, bytes([name_type]))) +
                der(0xa1, der(0x30, b''.join(gs(c) for c in comps))))
    return der(0x30, der(0xa0, gs(realm)) + der(0xa1, pname))


def pkinit_san(principals):
    """DER of a subjectAltName (GeneralNames) holding each principal as an
    id-pkinit-san otherName: [0] IMPLICIT { type-id, [0] EXPLICIT value }."""
    names = b''.join(
        der(0xa0, der_oid(OID_PKINIT_SAN) +
            der(0xa0, krb5_principal_name(p)))
        for p in principals)
    return der(0x30, names)


# ---- reading certificates

def pem_to_der(path, label='CERTIFICATE'):
    """DER of the first PEM block with this label in a file."""
    with open(path) as f:
        text = f.read()
    m = re.search(r'-----BEGIN %s-----(.*?)-----END %s-----' % (label, label),
                  text, re.S)
    if not m:
        fail('no %s in %s' % (label, path))
    return base64.b64decode(''.join(m.group(1).split()))


def tbs_fields(cert_der):
    """{'serial', 'issuer', 'validity', 'subject', 'spki'}: whole DER
    elements of a certificate's tbsCertificate."""
    _, s, e = der_read(cert_der, 0)             # Certificate
    _, s, e = der_read(cert_der, s)             # tbsCertificate
    fields = der_children(cert_der, s, e)
    if fields[0][0] == 0xa0:                    # [0] version
        fields = fields[1:]
    names = ('serial', 'signature', 'issuer', 'validity', 'subject', 'spki')
    return {n: f[1] for n, f in zip(names, fields)}


class _Certified:
    """What a CA and a certificate share: a cert_pem to read."""

    def der(self):
        """The DER certificate."""
        return pem_to_der(self.cert_pem)

    def spki_der(self):
        """The DER SubjectPublicKeyInfo, as it is in the certificate."""
        return tbs_fields(self.der())['spki']

    def spki_sha256(self):
        return hashlib.sha256(self.spki_der()).hexdigest()

    def cert_sha256(self):
        return hashlib.sha256(self.der()).hexdigest()

    @property
    def serial(self):
        f = tbs_fields(self.der())['serial']
        _, s, e = der_read(f, 0)
        return int.from_bytes(f[s:e], 'big', signed=True)

    def subject_der(self):
        return tbs_fields(self.der())['subject']

    def issuer_der(self):
        return tbs_fields(self.der())['issuer']

    def __repr__(self):
        return '<%s %r in %s>' % (type(self).__name__, self.name, self.dir)


# ---- making keys and certificates

def _slug(name):
    s = re.sub(r'[^A-Za-z0-9._-]+', '_', name).strip('._')
    return s or 'x'


def _new_dir(parent, name):
    """A new directory parent/<name>, or parent/<name>-2, ... if taken."""
    os.makedirs(parent, exist_ok=True)
    base = os.path.join(os.path.abspath(parent), _slug(name))
    path, n = base, 1
    while True:
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            n += 1
            path = '%s-%d' % (base, n)


def _subject(name):
    """-subj argument for CN=name: '/', '+' and '\\' quoted."""
    if not name:
        fail('empty certificate name')
    return '/CN=' + re.sub(r'([\\/+])', r'\\\1', name)


def _keygen_args(keytype):
    """req -newkey arguments for 'ec' (P-256), 'rsa' (2048 bits),
    'ec:<curve>' or 'rsa:<bits>'."""
    kind, _, param = keytype.partition(':')
    if kind == 'ec':
        return ['-newkey', 'EC', '-pkeyopt',
                'ec_paramgen_curve:' + (param or 'P-256')]
    if kind == 'rsa':
        return ['-newkey', 'RSA', '-pkeyopt',
                'rsa_keygen_bits:' + (param or '2048')]
    fail('unknown key type %r (ec or rsa)' % keytype)


def _utc(t):
    """A datetime (naive ones are taken as UTC) or seconds since the epoch,
    as an aware UTC datetime."""
    if isinstance(t, (int, float)):
        return datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    if t.tzinfo is None:
        return t.replace(tzinfo=datetime.timezone.utc)
    return t.astimezone(datetime.timezone.utc)


def _validity(days, not_before, not_after):
    """(start, end) as openssl ca -startdate/-enddate strings.  Unset,
    not_before is BACKDATE ago (or days before not_after if that is earlier)
    and not_after is days after now (or after not_before if given)."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    span = datetime.timedelta(days=days)
    start = _utc(not_before) if not_before is not None else None
    end = _utc(not_after) if not_after is not None else None
    if end is None:
        end = (start if start is not None else now) + span
    if start is None:
        start = min(now - BACKDATE, end - span)
    if start >= end:
        fail('not_before %s is not before not_after %s' % (start, end))
    fmt = '%Y%m%d%H%M%SZ'
    return start.strftime(fmt), end.strftime(fmt)


def _eku_value(eku):
    oids = []
    for e in eku:
        if e in EKU_OIDS:
            oids.append(EKU_OIDS[e])
        elif re.fullmatch(r'[0-2](\.\d+)+', e):
            oids.append(e)
        else:
            fail('unknown extended key usage %r (one of %s, or an OID)' % (
                e, ', '.join(sorted(EKU_OIDS))))
    return ', '.join(oids)


def _leaf_extensions(keytype, principal, eku, key_usage, selfsigned):
    lines = ['basicConstraints = CA:FALSE',
             'subjectKeyIdentifier = hash']
    if not selfsigned:
        lines.append('authorityKeyIdentifier = keyid:always')
    if key_usage is True:
        lines.append('keyUsage = critical, digitalSignature, ' + (
            'keyEncipherment' if keytype.startswith('rsa')
            else 'keyAgreement'))
    elif key_usage:
        lines.append('keyUsage = ' + key_usage)
    if eku:
        lines.append('extendedKeyUsage = ' + _eku_value(eku))
    if principal:
        if isinstance(principal, str):
            principal = [principal]
        lines.append('subjectAltName = DER:' + pkinit_san(principal).hex())
    return lines


_CA_EXTENSIONS = ['basicConstraints = critical, CA:TRUE',
                  'keyUsage = critical, keyCertSign, cRLSign',
                  'subjectKeyIdentifier = hash']

_CONFIG = '''# Written by tests/pki.py; openssl runs in this directory.
[ca]
default_ca = this_ca

[this_ca]
database = db/index.txt
serial = db/serial
crlnumber = db/crlnumber
new_certs_dir = db/new
certificate = cert.pem
private_key = key.pem
default_md = sha256
default_days = 365
default_crl_days = 30
policy = policy_cn
unique_subject = no
copy_extensions = none
email_in_dn = no
crl_extensions = crl_ext

[policy_cn]
commonName = supplied

[crl_ext]
authorityKeyIdentifier = keyid:always

[req]
distinguished_name = req_dn
prompt = no
utf8 = yes
string_mask = utf8only

[req_dn]
'''


class _Database:
    """An openssl ca directory: configuration, index, serial, key."""

    def _init_database(self, dir, name):
        self.name = name
        self.dir = _new_dir(dir, name)
        self.config = os.path.join(self.dir, 'ca.cnf')
        self.key_pem = os.path.join(self.dir, 'key.pem')
        self.cert_pem = os.path.join(self.dir, 'cert.pem')
        self.chain_pem = os.path.join(self.dir, 'chain.pem')
        os.makedirs(os.path.join(self.dir, 'db', 'new'))
        files = {
            'ca.cnf': _CONFIG,
            'db/index.txt': '',
            # Serials start at a random 63-bit number, unique across CAs.
            'db/serial': '%016X\n' % (secrets.randbits(63) | (1 << 62)),
            'db/crlnumber': '01\n',
        }
        for rel, text in files.items():
            with open(os.path.join(self.dir, rel), 'w') as f:
                f.write(text)

    def _request(self, name, keytype, key_pem, req_pem):
        """A new key and a certificate request for CN=name."""
        openssl('req', '-new', *_keygen_args(keytype), '-noenc',
                '-keyout', key_pem, '-out', req_pem, '-subj', _subject(name),
                '-utf8', '-config', self.config, cwd=self.dir)

    def _sign(self, req_pem, cert_pem, extensions, days, not_before,
              not_after, selfsign=False):
        """Sign a request with this CA's key (with its own key if
        selfsign), with the given extension lines."""
        start, end = _validity(days, not_before, not_after)
        ext = os.path.splitext(cert_pem)[0] + '.ext.cnf'
        with open(ext, 'w') as f:
            f.write('[ext]\n' + '\n'.join(extensions) + '\n')
        openssl('ca', '-batch', '-config', self.config, '-md', 'sha256',
                '-notext', '-in', req_pem, '-out', cert_pem,
                '-startdate', start, '-enddate', end,
                '-extfile', ext, '-extensions', 'ext',
                *(['-selfsign'] if selfsign else []), cwd=self.dir)
        # openssl ca has been known to exit 0 without certifying anything.
        if not os.path.exists(cert_pem) or os.path.getsize(cert_pem) == 0:
            fail('openssl ca wrote no certificate to ' + cert_pem)


def _write_chain(path, first, rest):
    """path := the PEM file first followed by the PEM file rest (if any)."""
    text = ''
    for p in [first] + ([rest] if rest else []):
        with open(p) as f:
            t = f.read()
        text += t if t.endswith('\n') else t + '\n'
    with open(path, 'w') as f:
        f.write(text)


class Cert(_Certified):
    """A certificate, its key and its chain (files in .dir)."""

    def __init__(self, dir, name, issuer=None, principal=None,
                 keytype='ec'):
        self.dir = dir
        self.name = name
        self.issuer = issuer        # the CA, None if self-signed
        self.principal = principal
        self.keytype = keytype
        self.cert_pem = os.path.join(dir, 'cert.pem')
        self.key_pem = os.path.join(dir, 'key.pem')
        self.chain_pem = os.path.join(dir, 'chain.pem')
        self.req_pem = os.path.join(dir, 'req.pem')


class CA(_Database, _Certified):
    """A certificate authority in dir/name: key and self-signed cert, or
    with parent an intermediate CA certified by parent."""

    def __init__(self, dir, name='Test CA', keytype='ec', parent=None,
                 days=3650, not_before=None, not_after=None):
        self._init_database(dir, name)
        self.keytype = keytype
        self.parent = parent
        self.crl_pem = None          # the latest crl()
        self.revoked = []
        req = os.path.join(self.dir, 'req.pem')
        self._request(name, keytype, self.key_pem, req)
        if parent is None:
            self._sign(req, self.cert_pem, _CA_EXTENSIONS, days, not_before,
                       not_after, selfsign=True)
        else:
            parent._sign(req, self.cert_pem, _CA_EXTENSIONS +
                         ['authorityKeyIdentifier = keyid:always'],
                         days, not_before, not_after)
        _write_chain(self.chain_pem, self.cert_pem,
                     parent.chain_pem if parent else None)

    def issue(self, name, principal=None, eku=None, keytype='ec', days=365,
              not_before=None, not_after=None, kdc=False, key_usage=True):
        """A certificate for CN=name signed by this CA.

        principal: a principal name (or a list of them) for the PKINIT SAN.
        eku: names from EKU_OIDS or dotted OIDs; () for no extendedKeyUsage;
        unset, ('pkinit-kdc',) if kdc else ('pkinit-client',).
        key_usage: True for digitalSignature plus keyEncipherment (RSA) or
        keyAgreement (EC), False for no keyUsage, or a string of openssl
        syntax ('critical, digitalSignature').
        not_before/not_after: datetimes (naive ones are UTC) or seconds
        since the epoch, for certificates that are expired or not yet
        valid; see _validity() for the defaults."""
        if eku is None:
            eku = ('pkinit-kdc',) if kdc else ('pkinit-client',)
        cert = Cert(_new_dir(self.dir, name), name, self, principal, keytype)
        self._request(name, keytype, cert.key_pem, cert.req_pem)
        self._sign(cert.req_pem, cert.cert_pem,
                   _leaf_extensions(keytype, principal, eku, key_usage,
                                    False),
                   days, not_before, not_after)
        _write_chain(cert.chain_pem, cert.cert_pem, self.chain_pem)
        return cert

    def revoke(self, cert, reason=None):
        """Record cert (a Cert, or a CA this CA certified) as revoked;
        reason is a CRL reason such as 'keyCompromise'.  Call crl()
        afterwards for a CRL that lists it."""
        if cert.issuer_der() != self.subject_der():
            fail('%r was not issued by %r' % (cert, self))
        args = ['ca', '-batch', '-config', self.config, '-revoke',
                cert.cert_pem]
        if reason:
            args += ['-crl_reason', reason]
        openssl(*args, cwd=self.dir)
        self.revoked.append(cert)

    def crl(self, path=None, days=30, der=False, last_update=None,
            next_update=None):
        """Write a CRL of this CA's revocations, valid for days; return its
        path (by default crl.pem, or crl.der if der, in the CA's
        directory).  der=True writes DER instead of PEM.  last_update and
        next_update (datetimes, naive ones UTC, or seconds since the epoch)
        set the CRL's dates instead, e.g. for a CRL that has expired.  The
        file is replaced whole (a new file renamed over the old), as a CRL
        distribution job should do it."""
        path = os.path.abspath(path or os.path.join(
            self.dir, 'crl.der' if der else 'crl.pem'))
        tmp = path + '.new'
        dates = ['-crldays', days]
        fmt = '%Y%m%d%H%M%SZ'
        if last_update is not None:
            dates += ['-crl_lastupdate', _utc(last_update).strftime(fmt)]
        if next_update is not None:
            dates += ['-crl_nextupdate', _utc(next_update).strftime(fmt)]
        openssl('ca', '-batch', '-config', self.config, '-gencrl',
                '-md', 'sha256', *dates, '-out', tmp, cwd=self.dir)
        if der:
            openssl('crl', '-in', tmp, '-outform', 'DER', '-out', tmp + '.d')
            os.replace(tmp + '.d', tmp)
        os.replace(tmp, path)
        self.crl_pem = path
        return path


def ca_chain(root, n, keytype='ec', name='Sub CA'):
    """n intermediate CAs, each certified by the one before, the first by
    root (a CA); returns them in that order (the last issues leaves)."""
    cas, parent = [], root
    for i in range(n):
        parent = CA(root.dir, '%s %d' % (name, i + 1), keytype=keytype,
                    parent=parent)
        cas.append(parent)
    return cas


def self_signed(dir, name, principal=None, keytype='ec', eku=None,
                days=365, not_before=None, not_after=None, kdc=False,
                key_usage=True):
    """A self-signed end-entity certificate (CA:FALSE) in dir/name; its
    chain_pem is just the certificate.  Arguments as for CA.issue()."""
    if eku is None:
        eku = ('pkinit-kdc',) if kdc else ('pkinit-client',)
    db = _Database()
    db._init_database(dir, name)
    cert = Cert(db.dir, name, None, principal, keytype)
    db._request(name, keytype, cert.key_pem, cert.req_pem)
    db._sign(cert.req_pem, cert.cert_pem,
             _leaf_extensions(keytype, principal, eku, key_usage, True),
             days, not_before, not_after, selfsign=True)
    _write_chain(cert.chain_pem, cert.cert_pem, None)
    return cert
