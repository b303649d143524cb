"""Revocation lists (pkinit_revoke) as the KDC uses them for uploads: a
replaced file takes effect without a restart, every certificate of the chain
is checked, PEM and DER files are read, an expired list refuses with its own
reason until a new one is installed, a list broken at run time leaves the
last good one in force (reported once), and a broken setting is reported at
start."""

import datetime
import os

import pki
from realm import Realm, Tests, fail, REALM, TK_UPLOAD

SVC = 'HTTP/www.test'
SVC_FULL = SVC + '@' + REALM
DAY = datetime.timedelta(days=1)


def crl_realm(*crl_files):
    """A realm whose KDC starts with pkinit_revoke naming crl_files (made by
    the callback given the realm, so that they can come from its CA)."""
    r = Realm(pki=True, start_kdc=False)
    for f in crl_files:
        r.realm_extra += '        pkinit_revoke = FILE:%s\n' % f(r)
    r.write_config()
    r.start_kdc()
    return r


def upload(r, cert, code=0, msg=None):
    """One upload with cert (its chain file, so intermediates travel)."""
    return r.run([TK_UPLOAD, '--cert', cert.chain_pem, '--key', cert.key_pem,
                  '--anchors', r.ca.cert_pem, '--principal', SVC_FULL],
                 expected_code=code, expected_msg=msg)


def refused(r, cert, reason):
    before = r.dump()
    out = upload(r, cert, code=4, msg='refused %s:' % reason)
    if r.dump() != before:
        fail('a refused upload (%s) changed the database' % reason)
    if r.kdc.poll() is not None:
        fail('the KDC died')
    return out


def log_since(r, mark):
    return r.kdc_log_text()[mark:]


def test_replaced_crl_takes_effect_without_restart():
    r = crl_realm(lambda r: r.ca.crl(r.path('revoke.pem')))
    path = r.path('revoke.pem')
    pid = r.kdc.pid
    a = r.server_cert(SVC, name='a')
    b = r.server_cert(SVC, name='b')
    upload(r, a, msg='stored kvno 1 ')
    # A new list renamed over the old one.
    r.ca.revoke(a)
    r.ca.crl(path)
    refused(r, a, 'certificate-revoked')
    upload(r, b, msg='stored kvno 2 ')
    # An expired list refuses every upload, with a reason of its own that
    # ktupdate names too.
    now = datetime.datetime.now(datetime.timezone.utc)
    r.ca.crl(path, last_update=now - 2 * DAY, next_update=now - DAY)
    refused(r, b, 'crl-expired')
    r.ktupdate(b, expected_code=4, expected_msg='crl-expired')
    # A newly issued list is used at once.
    r.ca.crl(path)
    upload(r, b, msg='stored kvno 3 ')
    # A list rewritten in place (same file) counts as well.
    r.ca.revoke(b)
    fresh = r.ca.crl(r.path('fresh.pem'))
    with open(fresh, 'rb') as f:
        data = f.read()
    with open(path, 'r+b') as f:
        f.write(data)
        f.truncate()
    refused(r, b, 'certificate-revoked')
    if r.kdc.pid != pid or r.kdc.poll() is not None:
        fail('the KDC was restarted or died')
    if 'reloaded pkinit_revoke FILE:%s' % path not in r.kdc_log_text():
        fail('the KDC log does not record the reloaded list')
    r.stop()


def test_broken_crl_at_run_time_keeps_the_last_good_one():
    r = crl_realm(lambda r: r.ca.crl(r.path('revoke.pem')))
    path = r.path('revoke.pem')
    good = r.server_cert(SVC, name='good')
    bad = r.server_cert(SVC, name='bad')
    r.ca.revoke(bad)
    r.ca.crl(path)
    refused(r, bad, 'certificate-revoked')
    mark = len(r.kdc_log_text())
    with open(path + '.new', 'wb') as f:
        f.write(b'this is not a CRL\n' * 10)
    os.replace(path + '.new', path)
    # The list loaded before goes on being used: the revoked certificate
    # stays refused and others are served.
    refused(r, bad, 'certificate-revoked')
    upload(r, good, msg='stored kvno 1 ')
    upload(r, good, msg='stored kvno 2 ')
    log = log_since(r, mark)
    line = 'pkinit_revoke FILE:%s: holds no CRL' % path
    if log.count(line) != 1 or 'keeping the revocation lists' not in log:
        fail('the broken list is not reported exactly once:\n' + log)
    r.ca.crl(path)
    upload(r, good, msg='stored kvno 3 ')
    r.stop()


def test_revoked_intermediate_refuses_its_leaves():
    made = {}

    def sub_crl(r):
        made['sub'] = pki.CA(r.path('pki'), 'Sub CA', parent=r.ca)
        return made['sub'].crl(r.path('sub.pem'))
    r = crl_realm(lambda r: r.ca.crl(r.path('root.pem')), sub_crl)
    sub = made['sub']
    leaf = sub.issue('leaf', principal=SVC_FULL)
    upload(r, leaf, msg='stored kvno 1 ')
    # The root revokes the intermediate: every leaf under it is refused,
    # although the intermediate's own list does not name the leaf.
    r.ca.revoke(sub)
    r.ca.crl(r.path('root.pem'))
    refused(r, leaf, 'certificate-revoked')
    log = r.kdc_log_text()
    if 'certificate revoked at depth 1 (/CN=Sub CA)' not in log:
        fail('the KDC log does not name the revoked intermediate:\n' + log)
    r.stop()


def test_intermediate_without_a_list_of_its_own():
    # Only the root's list is configured: an intermediate's leaves are not
    # refused for want of a list (as PKINIT does unless
    # pkinit_require_crl_checking), and the intermediate itself is checked.
    r = crl_realm(lambda r: r.ca.crl(r.path('root.pem')))
    sub = pki.CA(r.path('pki'), 'Sub CA', parent=r.ca)
    leaf = sub.issue('leaf', principal=SVC_FULL)
    upload(r, leaf, msg='stored kvno 1 ')
    r.ca.revoke(sub)
    r.ca.crl(r.path('root.pem'))
    refused(r, leaf, 'certificate-revoked')
    r.stop()


def test_der_crl():
    made = {}

    def der_crl(r):
        made['revoked'] = r.server_cert(SVC, name='revoked')
        r.ca.revoke(made['revoked'])
        return r.ca.crl(r.path('revoke.der'), der=True)
    r = crl_realm(der_crl)
    refused(r, made['revoked'], 'certificate-revoked')
    good = r.server_cert(SVC, name='good')
    upload(r, good, msg='stored kvno 1 ')
    # A DER list replacing a DER list.
    r.ca.revoke(good)
    r.ca.crl(r.path('revoke.der'), der=True)
    refused(r, good, 'certificate-revoked')
    r.stop()


def test_broken_crl_setting_is_reported_at_start():
    r = Realm(pki=True, start_kdc=False)
    cert = r.server_cert(SVC)
    good = r.realm_extra
    pem = r.ca.crl(r.path('good.pem'))
    with open(pem) as f:
        text = f.read()
    garbage = r.path('garbage.crl')
    with open(garbage, 'wb') as f:
        f.write(os.urandom(300))
    truncated = r.path('truncated.pem')
    with open(truncated, 'w') as f:
        f.write(text[:len(text) // 2])
    os.mkdir(r.path('a-directory'))
    for value, expected in (
            ('FILE:' + r.path('missing.pem'),
             'cannot read it: No such file or directory'),
            ('FILE:' + r.path('a-directory'), 'cannot read it: Is a directory'),
            ('FILE:' + garbage, 'holds no CRL (PEM or DER)'),
            ('FILE:' + truncated, 'holds no CRL (PEM or DER)'),
            ('DIR:' + r.path('a-directory'), 'tempkey reads FILE: lists')):
        r.realm_extra = good + '        pkinit_revoke = %s\n' % value
        r.write_config()
        open(r.kdc_log, 'w').close()
        r.start_kdc()
        log = r.kdc_log_text()
        if 'realm %s: ' % REALM not in log or \
                'pkinit_revoke %s: %s' % (value, expected) not in log or \
                'no uploads in this realm' not in log or \
                'preauth tempkey failed to initialize' not in log:
            fail('the KDC log does not report pkinit_revoke %s:\n%s' %
                 (value, log))
        r.ktupdate(cert, expected_code=4,
                   expected_msg='offers no tempkey upload')
        r.stop_kdc()
    r.stop()


Tests().run(
    test_replaced_crl_takes_effect_without_restart,
    test_broken_crl_at_run_time_keeps_the_last_good_one,
    test_revoked_intermediate_refuses_its_leaves,
    test_intermediate_without_a_list_of_its_own,
    test_der_crl,
    test_broken_crl_setting_is_reported_at_start)
