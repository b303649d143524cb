"""ktupdate finds the primary KDC: the realm's primary_kdc first, else the
listed KDCs, following a replica's not-primary refusal to the KDC it names;
the success line names the KDC that stored the key, and the pending key
stays in the keytab through the redirects; after them it stays only while
a KDC may hold it, or as the keytab's only key."""

import os
import re

from realm import Realm, Tests, fail, free_port, REALM

SVC = 'HTTP/www.test'
SVC_FULL = SVC + '@' + REALM


def addr(port):
    return '127.0.0.1:%d' % port


def client_env(r, name, kdcs, primaries=()):
    """ktupdate's environment with a krb5.conf of its own whose realm lists
    kdcs as kdc and primaries as primary_kdc."""
    with open(r.path('krb5.conf')) as f:
        text = f.read()
    old = '        kdc = %s\n' % addr(r.kdc_port)
    if old not in text:
        fail('unexpected krb5.conf: no %r' % old)
    new = ''.join('        kdc = %s\n' % k for k in kdcs)
    new += ''.join('        primary_kdc = %s\n' % p for p in primaries)
    path = r.path(name + '.krb5.conf')
    with open(path, 'w') as f:
        f.write(text.replace(old, new, 1))
    return dict(r.env, KRB5_CONFIG=path)


def stored_at(out, kdc):
    """Check the success line and that it names kdc as where the key went."""
    m = re.search(r'^%s stored kvno (\d+) expires \S+ enctypes \S+ keytab '
                  r'\S+ kdc (\S+)$' % re.escape(SVC_FULL), out, re.M)
    if not m:
        fail('no success line in:\n' + out)
    if m.group(2) != kdc:
        fail('the key went to %s, the line says %s' % (kdc, m.group(2)))
    return int(m.group(1))


def stored_count(text):
    return len(re.findall(r'stored kvno \d+ of ' + re.escape(SVC_FULL), text))


def expect_pending(r, cert, kvno):
    out = r.ktupdate(cert, '--status')
    if '%s kvno %d' % (SVC_FULL, kvno) not in out or '(pending)' not in out:
        fail('key version %d is not pending in the keytab:\n%s' % (kvno, out))


# ---- Without a replica: primary_kdc and the listed KDCs.

def test_primary_kdc_is_used_first():
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    trace = r.path('trace.log')
    env = client_env(r, 'client', [addr(free_port())], [addr(r.kdc_port)])
    env['KRB5_TRACE'] = trace
    out = r.ktupdate(cert, '--verbose', env=env)
    if 'uploading to the primary KDC %s' % addr(r.kdc_port) not in out:
        fail('primary_kdc was not tried first')
    if 'falling back' in out:
        fail('fell back although primary_kdc answered')
    if stored_at(out, addr(r.kdc_port)) != 1:
        fail('not key version 1')
    if stored_count(r.kdc_log_text()) != 1:
        fail('the KDC did not log the stored key')
    # Our trace callback replaces libkrb5's: KRB5_TRACE must still work.
    with open(trace) as f:
        if 'Received answer' not in f.read():
            fail('KRB5_TRACE lost its output')


def test_unreachable_primary_falls_back_to_the_list():
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    dead = addr(free_port())
    env = client_env(r, 'client', [addr(r.kdc_port)], [dead])
    out = r.ktupdate(cert, '--verbose', env=env)
    if 'the primary KDC %s cannot be reached' % dead not in out:
        fail('the unreachable primary_kdc was not reported')
    if "falling back to the realm's KDC list" not in out:
        fail('the fallback was not reported')
    # The line names the listed KDC the library reached.
    stored_at(out, addr(r.kdc_port))
    # Without --verbose the fallback is silent: one line.
    out = r.ktupdate(cert, env=env)
    if len(out.strip().splitlines()) != 1:
        fail('more than one line without --verbose:\n' + out)
    stored_at(out, addr(r.kdc_port))


def test_primary_kdc_values_in_order():
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    dead = addr(free_port())
    env = client_env(r, 'client', [addr(free_port())],
                     [dead, addr(r.kdc_port)])
    out = r.ktupdate(cert, '--verbose', env=env)
    first = out.find('the primary KDC %s cannot be reached' % dead)
    second = out.find('uploading to the primary KDC %s' % addr(r.kdc_port))
    if first < 0 or second < first:
        fail('primary_kdc values not tried in order')
    if 'falling back' in out:
        fail('fell back although the second primary_kdc answered')
    stored_at(out, addr(r.kdc_port))


def test_nothing_reachable():
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    env = client_env(r, 'client', [addr(free_port())], [addr(free_port())])
    r.ktupdate(cert, env=env, expected_code=5,
               expected_msg='cannot reach the KDC')
    if os.path.exists(r.keytab):
        fail('a keytab was written although no KDC was reached')


def test_refusal_by_the_primary_removes_the_pending_key():
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    env = client_env(r, 'client', [addr(free_port())], [addr(r.kdc_port)])
    r.ktupdate(cert, env=env)
    with open(r.keytab + '.tempkey') as f:
        records = f.read()
    wrong = r.server_cert(SVC, name='wrong-eku', eku=('client',))
    r.ktupdate(wrong, env=env, expected_code=4,
               expected_msg='the KDC refused the upload: wrong-key-purpose')
    with open(r.keytab + '.tempkey') as f:
        if f.read() != records:
            fail('a refusal by the primary left a pending key')


# ---- With replicas (role = replica) on the same database.

def test_replica_redirects_to_the_primary():
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    replica = r.start_replica_kdc('replica', primary=addr(r.kdc_port))
    env = client_env(r, 'client', [addr(replica.port)])
    out = r.ktupdate(cert, '--verbose', env=env)
    if ('KDC %s is not the primary; it names %s' %
            (addr(replica.port), addr(r.kdc_port))) not in out:
        fail('the redirect was not reported')
    if 're-sending pending key version 1' not in out:
        fail('the primary was not offered the key the replica refused')
    if stored_at(out, addr(r.kdc_port)) != 1:
        fail('not key version 1')
    if stored_count(r.kdc_log_text()) != 1:
        fail('the primary did not store the key')
    rlog = replica.log_text()
    if 'not-primary' not in rlog or stored_count(rlog) != 0:
        fail('the replica did not refuse the upload:\n' + rlog)
    # The same key went to both: the primary stored the version the replica
    # was offered, and the keytab is settled.
    if '(pending)' in r.ktupdate(cert, '--status'):
        fail('the key is still pending after the primary stored it')
    stored_at(r.ktupdate(cert, env=env), addr(r.kdc_port))
    if stored_count(r.kdc_log_text()) != 2:
        fail('the second run did not reach the primary')


def test_replica_naming_no_primary():
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    replica = r.start_replica_kdc('replica', admin_server=False)
    env = client_env(r, 'client', [addr(replica.port)])
    out = r.ktupdate(cert, env=env, expected_code=4,
                     expected_msg='it names no primary KDC: set primary_kdc '
                     'in [realms] %s of krb5.conf' % REALM)
    if len(out.strip().splitlines()) != 1 or 'not-primary' not in out:
        fail('not one line naming the refusal:\n' + out)
    if stored_count(r.kdc_log_text()) != 0:
        fail('the primary was reached without being named')
    # The pending key stays; once primary_kdc is set the same key goes there.
    expect_pending(r, cert, 1)
    env = client_env(r, 'fixed', [addr(replica.port)], [addr(r.kdc_port)])
    out = r.ktupdate(cert, '--verbose', env=env)
    if 're-sending pending key version 1' not in out:
        fail('the pending key was not re-sent')
    stored_at(out, addr(r.kdc_port))


def test_named_primary_unreachable_keeps_the_key_pending():
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    dead = addr(free_port())
    replica = r.start_replica_kdc('replica', primary=dead)
    env = client_env(r, 'client', [addr(replica.port)])
    r.ktupdate(cert, env=env, expected_code=5,
               expected_msg='cannot reach the KDC ' + dead)
    expect_pending(r, cert, 1)


def test_fallback_to_a_replica_naming_the_unreachable_primary():
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    dead = addr(free_port())
    replica = r.start_replica_kdc('replica', primary=dead)
    env = client_env(r, 'client', [addr(replica.port)], [dead])
    # primary_kdc is down; the listed replica names it again: the primary
    # is unreachable (5), not misconfigured (4), and is not retried.
    out = r.ktupdate(cert, '--verbose', env=env, expected_code=5,
                     expected_msg='cannot reach the primary KDC %s named by '
                     'KDC %s' % (dead, addr(replica.port)))
    if out.count('uploading to the primary KDC %s' % dead) != 1:
        fail('the unreachable primary was tried twice')
    expect_pending(r, cert, 1)


def test_redirect_loop_is_refused():
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    # Two replicas naming each other: a is reached first and names b,
    # which names a again.
    a_port, b_port = free_port(), free_port()
    a = r.start_replica_kdc('a', primary=addr(b_port), port=a_port)
    r.start_replica_kdc('b', primary=addr(a_port), port=b_port)
    env = client_env(r, 'client', [addr(a.port)])
    r.ktupdate(cert, env=env, expected_code=4,
               expected_msg='was already tried: set primary_kdc')
    if stored_count(r.kdc_log_text()) != 0:
        fail('the primary stored a key nobody sent it')
    expect_pending(r, cert, 1)


def test_redirects_are_bounded():
    r = Realm(pki=True)
    cert = r.server_cert(SVC)
    # A chain of replicas ending at the primary: r4 -> primary,
    # r3 -> r4, r2 -> r3, r1 -> r2.
    chain = []
    target = addr(r.kdc_port)
    for name in ('r4', 'r3', 'r2', 'r1'):
        replica = r.start_replica_kdc(name, primary=target)
        chain.insert(0, replica)
        target = addr(replica.port)
    # From r2, three redirects reach the primary.
    out = r.ktupdate(cert, env=client_env(r, 'from-r2',
                                          [addr(chain[1].port)]))
    stored_at(out, addr(r.kdc_port))
    # From r1 the primary is four redirects away: ktupdate gives up.
    r.ktupdate(cert, env=client_env(r, 'from-r1', [addr(chain[0].port)]),
               expected_code=4,
               expected_msg='3 redirects were followed already')
    if stored_count(r.kdc_log_text()) != 1:
        fail('the primary was reached past the bound')
    # Only replicas saw key version 2, and each refused it: no KDC holds
    # it, so it leaves the keytab (kinit -k would pick it).
    out = r.ktupdate(cert, '--status')
    if 'kvno 2' in out or 'kvno 1' not in out:
        fail('key version 2, which no KDC holds, is still in the keytab:\n'
             + out)


Tests().run(test_primary_kdc_is_used_first,
            test_unreachable_primary_falls_back_to_the_list,
            test_primary_kdc_values_in_order,
            test_nothing_reachable,
            test_refusal_by_the_primary_removes_the_pending_key,
            test_replica_redirects_to_the_primary,
            test_replica_naming_no_primary,
            test_named_primary_unreachable_keeps_the_key_pending,
            test_fallback_to_a_replica_naming_the_unreachable_primary,
            test_redirect_loop_is_refused,
            test_redirects_are_bounded)
