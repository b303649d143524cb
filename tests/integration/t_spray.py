"""Unauthenticated AS-REQs for names that may enroll cost the KDC no
private-key operation, no exclusive database lock, no write and no log line
of ours: the realm's offer is signed once per interval and sent as is, with
the principal's facts unsigned beside it.  A forged fact can only get the
upload refused."""

import fcntl
import os
import time

import asreq
from realm import Realm, Tests, fail, REALM, TK_UPLOAD

SVC = 'HTTP/www.test'
SVC_FULL = SVC + '@' + REALM
INTERVAL = 60          # TK_OFFER_INTERVAL
VALIDITY = 120         # TK_OFFER_VALIDITY


def ask(client, name):
    """The KeyOffer the KDC answers name's first AS-REQ with."""
    rep = client.exchange(asreq.as_req(name.split('/'), REALM))
    err = asreq.krb_error(rep)
    if err is None or err['code'] != asreq.KDC_ERR_PREAUTH_REQUIRED:
        fail('%s: expected PREAUTH_REQUIRED, got %r' % (name, err))
    pa = asreq.method_data(err['edata']).get(asreq.PA_TEMPKEY)
    if pa is None:
        fail('%s: PREAUTH_REQUIRED offers no tempkey upload' % name)
    return asreq.key_offer(pa)


def verified_offer(r, signed):
    """The Offer of a SignedData, once openssl has checked its signature
    and chain to the realm's CA."""
    path = r.path('offer.der')
    with open(path, 'wb') as f:
        f.write(signed)
    r.run(['openssl', 'cms', '-verify', '-inform', 'DER', '-in', path,
           '-CAfile', r.ca.cert_pem, '-purpose', 'any', '-out',
           path + '.content', '-binary'])
    with open(path + '.content', 'rb') as f:
        return asreq.offer(f.read())


def check_offer(r, ko, name, kvno=0):
    """The hints name name and its kvno; the KDC's time is within what it
    signed, and the offer is no older than an interval."""
    if ko['principal'] != name + '@' + REALM or ko['current_kvno'] != kvno:
        fail('hints %r for %s, expected kvno %d' % (ko, name, kvno))
    off = asreq.offer(asreq.signed_content(ko['signed_offer']))
    if (off['realm'] != REALM or off['valid_until'] !=
            off['signed_at'] + VALIDITY or
            not off['signed_at'] <= ko['kdc_time'] <
            off['signed_at'] + INTERVAL):
        fail('offer %r sent at KDC time %d' % (off, ko['kdc_time']))
    return off


def test_spray_stores_nothing_locks_nothing_and_logs_no_line_of_ours():
    r = Realm(pki=True, kdc_args=('-w', '2'))
    time.sleep(0.3)             # the workers are forked after "starting"
    before = r.dump()
    db = r.path('principal')
    stat = os.stat(db)
    log_before = r.kdc_log_text()
    client = asreq.Client(r.kdc_port)
    offers = set()
    n = 400
    # A shared lock on db2's lock file lets every lookup through and would
    # stall any exclusive lock (an audit write-back) until released.
    with open(db + '.ok', 'rb') as lock:
        fcntl.lockf(lock, fcntl.LOCK_SH)
        try:
            for i in range(n):
                name = 'HTTP/%s.test' % os.urandom(6).hex()
                try:
                    ko = ask(client, name)
                except OSError as e:
                    fail('request %d (%s) got no answer while the database '
                         'was share-locked: %s' % (i + 1, name, e))
                check_offer(r, ko, name)
                offers.add(ko['signed_offer'])
        finally:
            fcntl.lockf(lock, fcntl.LOCK_UN)
    client.close()
    # Each worker signs its own, once per interval (one may fall due during
    # the spray).
    if len(offers) > 4:
        fail('%d requests got %d signed offers' % (n, len(offers)))
    for signed in offers:
        off = verified_offer(r, signed)
        if off['enctypes'] != [18, 17, 20, 19] or \
                off['max_lifetime'] != 86400:
            fail('unexpected offer %r' % off)
    if r.dump() != before:
        fail('a spray of unauthenticated requests changed the database')
    after = os.stat(db)
    if (after.st_size, after.st_mtime_ns) != (stat.st_size, stat.st_mtime_ns):
        fail('the database file was written during the spray')
    log = r.kdc_log_text()[len(log_before):].splitlines()
    ours = [line for line in log if 'tempkey' in line and
            'NEEDED_PREAUTH' not in line]
    if ours:
        fail('the spray made the module log:\n' + '\n'.join(ours[:5]))
    # MIT's own line per request (as for any principal), nothing more.
    if len(log) > n:
        fail('%d requests made %d KDC log lines' % (n, len(log)))
    r.stop()


def test_requests_for_a_stored_service_take_no_lock():
    # The same for a managed service that is stored: a PREAUTH_REQUIRED
    # writes nothing back (MIT's lockout counts only failures), so the
    # audit must not wait for the database's exclusive lock either.
    r = Realm(pki=True, kdc_args=('-w', '2'))
    r.kadmin_local('addprinc -nokey ' + SVC)
    kvno, _ = r.set_key(SVC, '1h')
    time.sleep(0.3)             # the workers are forked after "starting"
    before = r.dump()
    client = asreq.Client(r.kdc_port)
    with open(r.path('principal') + '.ok', 'rb') as lock:
        fcntl.lockf(lock, fcntl.LOCK_SH)
        try:
            for i in range(50):
                try:
                    ko = ask(client, SVC)
                except OSError as e:
                    fail('request %d for the stored %s got no answer while '
                         'the database was share-locked: %s' % (i + 1, SVC, e))
                check_offer(r, ko, SVC, kvno)
        finally:
            fcntl.lockf(lock, fcntl.LOCK_UN)
    client.close()
    if r.dump() != before:
        fail('unauthenticated requests for a stored service changed the '
             'database')
    r.stop()


def test_offer_is_reused_then_signed_again_after_its_interval():
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    r.ktupdate(cert, '--lifetime', '1h')
    client = asreq.Client(r.kdc_port)
    first = ask(client, 'HTTP/one.test')
    off = check_offer(r, first, 'HTTP/one.test')
    # Another name, and a managed one with its kvno: the same signature.
    again = ask(client, 'HTTP/two.test')
    managed = ask(client, SVC)
    check_offer(r, managed, SVC, kvno=1)
    if not first['signed_offer'] == again['signed_offer'] == \
            managed['signed_offer']:
        fail('the offer was signed again within its interval')
    # Past the interval (by the KDC's clock, which this host shares) the
    # next request gets a new one; the upload goes on working across it.
    time.sleep(max(0.0, off['signed_at'] + INTERVAL + 1 - time.time()))
    later = ask(client, 'HTTP/three.test')
    new = check_offer(r, later, 'HTTP/three.test')
    if later['signed_offer'] == first['signed_offer'] or \
            new['signed_at'] < off['signed_at'] + INTERVAL:
        fail('the offer of %d was still sent at %d' % (off['signed_at'],
                                                       later['kdc_time']))
    client.close()
    r.ktupdate(cert, '--lifetime', '1h', expected_msg='stored kvno 2')
    r.stop()


def tk_upload(r, cert, fault, code, msg):
    return r.run([TK_UPLOAD, '--cert', cert.chain_pem, '--key', cert.key_pem,
                  '--anchors', r.ca.cert_pem, '--principal', SVC_FULL,
                  '--fault', fault], expected_code=code, expected_msg=msg)


def test_forged_hints_only_get_the_upload_refused():
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    r.ktupdate(cert, '--lifetime', '1h')
    before = r.dump()
    log_before = len(r.kdc_log_text())
    # A higher kvno: the KDC refuses the upload.
    tk_upload(r, cert, 'hint-kvno', 4, 'refused kvno-not-next:')
    # Another principal, a KDC time outside the signed validity, a broken
    # signature: the client sends nothing.
    tk_upload(r, cert, 'hint-principal', 1, 'the KDC\'s key request is for '
              'another principal')
    tk_upload(r, cert, 'hint-time', 1, 'the KDC\'s time is outside the '
              'validity of its offer')
    tk_upload(r, cert, 'offer-signature', 1, 'the KDC\'s message does not '
              'carry a valid signature')
    log = r.kdc_log_text()[log_before:]
    if log.count('refused upload for') != 1 or 'stored kvno' in log:
        fail('expected exactly the one refused upload:\n' + log)
    if r.dump() != before:
        fail('a forged hint changed the database')
    tk_upload(r, cert, 'none', 0, 'stored kvno 2')
    r.stop()


Tests().run(test_spray_stores_nothing_locks_nothing_and_logs_no_line_of_ours,
            test_requests_for_a_stored_service_take_no_lock,
            test_offer_is_reused_then_signed_again_after_its_interval,
            test_forged_hints_only_get_the_upload_refused)
