"""asreq.py - bare AS-REQs on UDP and what the KDC answers, for t_spray.py
and bench/spray.py: a DER writer and reader small enough to read, the
AS-REQ a client sends first (no preauthentication, an empty
PA-AS-FRESHNESS as libkrb5 adds), and the KRB-ERROR's METHOD-DATA down to
the tempkey KeyOffer and the Offer signed inside it (doc/protocol.md)."""

import os
import socket
import struct
import time

PA_TEMPKEY = 16931
PA_AS_FRESHNESS = 150
PA_ETYPE_INFO2 = 19
KDC_ERR_PREAUTH_REQUIRED = 25
NT_PRINCIPAL, NT_SRV_INST = 1, 2


# ---- DER writing

def tlv(tag, content):
    n = len(content)
    if n < 0x80:
        head = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, 'big')
        head = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + head + content


def integer(v):
    raw = v.to_bytes(max(1, (v.bit_length() + 8) // 8), 'big', signed=True)
    return tlv(0x02, raw)


def seq(*items):
    return tlv(0x30, b''.join(items))


def ctx(n, content):
    """[n] EXPLICIT"""
    return tlv(0xa0 | n, content)


def kstring(s):
    return tlv(0x1b, s.encode())


def principal_name(name_type, components):
    return seq(ctx(0, integer(name_type)),
               ctx(1, seq(*[kstring(c) for c in components])))


def as_req(components, realm, nonce=None, etypes=(18, 17), freshness=True):
    """The DER of a first AS-REQ for components@realm to krbtgt."""
    if nonce is None:
        nonce = struct.unpack('>I', os.urandom(4))[0] & 0x7fffffff
    till = time.strftime('%Y%m%d%H%M%SZ', time.gmtime(time.time() + 36000))
    body = seq(ctx(0, tlv(0x03, b'\x00\x00\x00\x00\x10')),   # renewable-ok
               ctx(1, principal_name(NT_PRINCIPAL, components)),
               ctx(2, kstring(realm)),
               ctx(3, principal_name(NT_SRV_INST, ['krbtgt', realm])),
               ctx(5, tlv(0x18, till.encode())),
               ctx(7, integer(nonce)),
               ctx(8, seq(*[integer(e) for e in etypes])))
    items = [ctx(1, integer(5)), ctx(2, integer(10))]
    if freshness:
        pa = seq(ctx(1, integer(PA_AS_FRESHNESS)), ctx(2, tlv(0x04, b'')))
        items.append(ctx(3, seq(pa)))
    items.append(ctx(4, body))
    return tlv(0x6a, seq(*items))


# ---- DER reading

def read_tlv(data, pos=0):
    """(tag, contents, end) of the element at pos."""
    tag = data[pos]
    n = data[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7f
        n = int.from_bytes(data[pos:pos + k], 'big')
        pos += k
    return tag, data[pos:pos + n], pos + n


def elements(data):
    """[(tag, contents)] of a concatenation of elements."""
    out, pos = [], 0
    while pos < len(data):
        tag, contents, pos = read_tlv(data, pos)
        out.append((tag, contents))
    return out


def fields(seq_contents):
    """{n: inner contents} of a SEQUENCE of [n] EXPLICIT fields."""
    out = {}
    for tag, contents in elements(seq_contents):
        out[tag & 0x1f] = read_tlv(contents)[1]
    return out


def read_int(contents):
    return int.from_bytes(contents, 'big', signed=True)


def krb_error(reply):
    """{'code', 'stime', 'edata'} of a KRB-ERROR, or None for another
    reply."""
    tag, contents, _ = read_tlv(reply)
    if tag != 0x7e:
        return None
    f = fields(read_tlv(contents)[1])
    return {'code': read_int(f[6]), 'stime': f[4].decode(),
            'edata': f.get(12)}


def method_data(edata):
    """{padata-type: padata-value} of a METHOD-DATA."""
    out = {}
    for _, pa in elements(read_tlv(edata)[1]):
        f = fields(pa)
        out[read_int(f[1])] = f.get(2, b'')
    return out


def key_offer(value):
    """The fields of a KeyOffer."""
    f = fields(read_tlv(value)[1])
    return {'signed_offer': f[0], 'principal': f[1].decode(),
            'current_kvno': read_int(f[2]), 'kdc_time': read_int(f[3])}


def signed_content(signed_data):
    """The eContent of a CMS ContentInfo holding a SignedData."""
    _, ci, _ = read_tlv(signed_data)
    _, oid, pos = read_tlv(ci)
    _, explicit, _ = read_tlv(ci, pos)
    _, sd, _ = read_tlv(explicit)
    parts = elements(sd)            # version, digestAlgorithms, encap, ...
    encap = elements(parts[2][1])   # eContentType, [0] eContent
    return read_tlv(encap[1][1])[1]


def offer(content):
    """The fields of a TempkeyMessage's Offer."""
    tag, choice, _ = read_tlv(content)
    if tag != 0xa3:
        raise ValueError('not an Offer (TempkeyMessage tag 0x%02x)' % tag)
    f = fields(read_tlv(choice)[1])
    return {'version': read_int(f[0]), 'realm': f[1].decode(),
            'enctypes': [read_int(c) for _, c in elements(f[2])],
            'max_lifetime': read_int(f[3]), 'signed_at': read_int(f[4]),
            'valid_until': read_int(f[5])}


# ---- the wire

class Client:
    """A UDP socket to a KDC on 127.0.0.1."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(timeout)
        self.sock.connect(('127.0.0.1', port))

    def exchange(self, request):
        """Send request, return the reply (socket.timeout if none)."""
        self.sock.send(request)
        return self.sock.recv(65536)

    def close(self):
        self.sock.close()
