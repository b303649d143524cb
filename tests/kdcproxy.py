"""kdcproxy.py - a loopback proxy in front of a test KDC that can lose or
duplicate its TCP exchanges (uploads travel over TCP: they are larger than
a UDP datagram comfortably carries).  UDP passes through unchanged."""

import socket
import struct
import threading

from realm import free_port


def _recv_exact(sock, n):
    data = b''
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError('connection closed')
        data += chunk
    return data


def _exchange(port, request):
    """Send one length-prefixed request to the KDC's TCP port; return the
    reply (with its length prefix)."""
    with socket.create_connection(('127.0.0.1', port), timeout=10) as s:
        s.sendall(request)
        head = _recv_exact(s, 4)
        return head + _recv_exact(s, struct.unpack('>I', head)[0])


# Uploads are 1.5 KB and more; other requests here are far smaller.
UPLOAD_SIZE = 1200


class KDCProxy:
    """mode: 'pass', 'drop' (the KDC handles an upload, over TCP or UDP,
    and its reply is lost) or 'duplicate' (each TCP request reaches the KDC
    twice; the second reply is returned).  replies records every TCP reply
    from the KDC."""

    def __init__(self, kdc_port, mode='pass'):
        self.kdc_port = kdc_port
        self.mode = mode
        self.port = free_port()
        self.replies = []
        self.stopping = False
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(('127.0.0.1', self.port))
        self.tcp.listen(8)
        self.tcp.settimeout(0.2)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(('127.0.0.1', self.port))
        self.udp.settimeout(0.2)
        self.threads = [threading.Thread(target=self._serve_tcp, daemon=True),
                        threading.Thread(target=self._serve_udp, daemon=True)]
        for t in self.threads:
            t.start()

    def _serve_tcp(self):
        while not self.stopping:
            try:
                conn, _ = self.tcp.accept()
            except socket.timeout:
                continue
            with conn:
                try:
                    conn.settimeout(10)
                    head = _recv_exact(conn, 4)
                    request = head + _recv_exact(
                        conn, struct.unpack('>I', head)[0])
                    reply = _exchange(self.kdc_port, request)
                    self.replies.append(reply)
                    if self.mode == 'duplicate':
                        reply = _exchange(self.kdc_port, request)
                        self.replies.append(reply)
                    if self.mode != 'drop' or len(request) < UPLOAD_SIZE:
                        conn.sendall(reply)
                except (OSError, EOFError):
                    pass

    def _serve_udp(self):
        while not self.stopping:
            try:
                data, client = self.udp.recvfrom(65536)
            except socket.timeout:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(5)
                try:
                    s.sendto(data, ('127.0.0.1', self.kdc_port))
                    reply = s.recvfrom(65536)[0]
                    if self.mode != 'drop' or len(data) < UPLOAD_SIZE:
                        self.udp.sendto(reply, client)
                except OSError:
                    pass

    def stop(self):
        self.stopping = True
        for t in self.threads:
            t.join(timeout=5)
        self.tcp.close()
        self.udp.close()


def is_as_rep(reply):
    """Whether a length-prefixed KDC reply is an AS-REP ([APPLICATION 11])
    rather than a KRB-ERROR ([APPLICATION 30])."""
    return len(reply) > 4 and reply[4] == 0x6b


def proxied_config(realm, proxy):
    """A krb5.conf for realm whose KDC is reached through proxy; return an
    environment using it."""
    import os
    path = realm.path('krb5-proxy.conf')
    with open(realm.path('krb5.conf')) as f:
        text = f.read()
    text = text.replace('kdc = 127.0.0.1:%d' % realm.kdc_port,
                        'kdc = 127.0.0.1:%d' % proxy.port)
    with open(path, 'w') as f:
        f.write(text)
    return dict(realm.env, KRB5_CONFIG=path)
