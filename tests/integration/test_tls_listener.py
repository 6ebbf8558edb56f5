"""TLS to the proxy (issue 13 part 1): `listen ... tls`, basic_require_tls and
channel binding.

Peers: curl 7.88 (`--proxy https://localhost:PORT --proxy-cacert CA`) for
Basic, NTLM, Negotiate (the throwaway MIT KDC of peers/, HTTP/localhost: curl
names the proxy `localhost`) and CONNECT; Python's ssl module for byte-level
clients over TLS (a hand-made NTLM exchange with MsvAvChannelBindings computed
right and wrong, python3-gssapi initiating with gssapi.raw.ChannelBindings
right and wrong); the test CA and certificates come from python3-cryptography
(harness/tlsca.py). Headless Chromium over an HTTPS proxy is in
test_browser_chromium.py.
"""

import hashlib
import os
import pathlib
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

from harness.auth import USERS, winbind_env, write_user_file  # noqa: F401 (fixture)
from harness.ctl_client import short_tmpdir, stats
from harness.gateway import check_config, free_port, sanitizer_env
from harness.ntlm_client import (AV_CHANNEL_BINDINGS, b64, basic, challenge_from,
                                 authenticate_msg, negotiate_msg, pa, offered)
from harness.origin import STREAM_SHA256, StreamServer, stream_bytes, stream_check
from harness.rawhttp import RawClient, Timeout, get_request
from harness.tlsca import (ProxyCA, cb_application_data, leaf_der, ntlm_channel_bindings)
from harness.tools import wait_until

pytest_plugins = ["peers.fixtures"]

REPO = pathlib.Path(__file__).resolve().parents[2]
LSAN_SUPP = REPO / "tests" / "lsan.supp"


class TlsClient(RawClient):
    """A RawClient speaking TLS to the proxy (verifying it against ca)."""

    def __init__(self, host, port, ca, timeout=5.0, session=None, server_hostname="localhost"):
        super().__init__(host, port, timeout=timeout)
        self.sock = ca.wrap(self.sock, server_hostname=server_hostname, session=session)

    def _fill(self, deadline):
        try:
            return super()._fill(deadline)
        except ssl.SSLError:
            self.eof = True
            return False

    def peer_der(self):
        return self.sock.getpeercert(binary_form=True)


@pytest.fixture
def ca(tmp_path):
    return ProxyCA(tmp_path / "ca")


@pytest.fixture
def sockdir():
    d = short_tmpdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def tls_gateway(make_gateway, tmp_path, ca, sockdir, plain=False, start=True, cert=None,
                env=None, **opts):
    """A gateway whose first listener is TLS (and a second, plain one when
    plain=True), with a status socket and the local users of harness/auth."""
    cp, kp = cert or ca.issue()
    listen = ["127.0.0.1:%d tls" % free_port()]
    if plain:
        listen.append("127.0.0.1:%d" % free_port())
    uf = tmp_path / "users"
    write_user_file(uf, USERS)
    o = dict(listen=listen, tls_certificate=cp, tls_key=kp, auth_schemes="basic ntlm",
             basic_backend="local", ntlm_backend="local", user_file=str(uf),
             ntlm_domain="AUTHGATE", identity_header="X-Authenticated-User",
             status_socket=os.path.join(str(sockdir), "ctl.sock"), tls_handshake_timeout="2s")
    o.update(opts)
    gw = make_gateway(start=False, **o)
    gw.cert, gw.key = cp, kp
    if env is not None:
        gw.env = env
    if start:
        gw.start()
    return gw


def curl_https_proxy(gw, ca, *args, env=None, timeout=15, port=None):
    """curl through the gateway's TLS listener (`--proxy https://localhost:PORT`)."""
    cmd = ["curl", "-sS", "--noproxy", "", "--max-time", str(timeout - 2),
           "--proxy", "https://localhost:%d" % (port or gw.port),
           "--proxy-cacert", str(ca.ca_file), "-o", "/dev/stdout", "-w", "\n%{http_code}"]
    cmd += [str(a) for a in args]
    p = subprocess.run(cmd, capture_output=True, timeout=timeout,
                       env=sanitizer_env(env if env is not None else os.environ),
                       stdin=subprocess.DEVNULL)
    out = p.stdout
    body, _, code = out.rpartition(b"\n")
    return p.returncode, int(code) if code.strip().isdigit() else None, body, \
        p.stderr.decode(errors="replace")


# --------------------------------------------------------------------------- the listener


def test_curl_basic_and_absolute_form_over_tls(make_gateway, tmp_path, ca, sockdir, origin):
    gw = tls_gateway(make_gateway, tmp_path, ca, sockdir)
    rc, code, body, err = curl_https_proxy(gw, ca, "--proxy-user", "alice:%s" % USERS["alice"],
                                           origin.url("/echo"))
    assert (rc, code) == (0, 200), err
    assert b'"x-authenticated-user": "alice"' in body.lower() or b"alice" in body
    # Keep-alive over one TLS connection: two requests, one handshake.
    before = stats(gw)
    rc, code, body, err = curl_https_proxy(gw, ca, "--proxy-user", "alice:%s" % USERS["alice"],
                                           origin.url("/a"), origin.url("/b"))
    assert rc == 0 and code == 200, err
    after = stats(gw)
    assert after["tls_handshakes"] - before["tls_handshakes"] == 1
    # A wrong password is a 407 as on the plain listener.
    rc, code, _, err = curl_https_proxy(gw, ca, "--proxy-user", "alice:nope", origin.url("/"))
    assert code == 407, err


def test_large_bodies_cross_tls_without_splice(make_gateway, tmp_path, ca, sockdir, origin):
    """A 1 MiB response (spliced socket to socket on a plain listener) and a
    2 MiB upload both cross the TLS layer intact."""
    gw = tls_gateway(make_gateway, tmp_path, ca, sockdir, auth_schemes="none")
    rc, code, body, err = curl_https_proxy(gw, ca, origin.url("/stream"))
    assert (rc, code) == (0, 200), err
    assert hashlib.sha256(body).hexdigest() == STREAM_SHA256
    up = tmp_path / "up.bin"
    data = os.urandom(2 * 1024 * 1024)
    up.write_bytes(data)
    rc, code, body, err = curl_https_proxy(gw, ca, "--data-binary", "@%s" % up,
                                           origin.url("/echo"))
    assert (rc, code) == (0, 200), err
    assert b'"body_sha256": "%s"' % hashlib.sha256(data).hexdigest().encode() in body


def test_connect_tls_in_tls(make_gateway, tmp_path, ca, sockdir, tls_origin):
    """CONNECT through the TLS listener: the origin's TLS runs inside ours."""
    gw = tls_gateway(make_gateway, tmp_path, ca, sockdir, connect_ports=[tls_origin.port])
    rc, code, body, err = curl_https_proxy(gw, ca, "--proxy-user", "bob:%s" % USERS["bob"],
                                           "-k", tls_origin.url("/echo", host="localhost"))
    assert (rc, code) == (0, 200), err
    assert b"hello" in body or b"GET" in body
    assert stats(gw)["tunnels"] == 1


def test_tunnel_upload_to_slow_target_intact(make_gateway, tmp_path, ca, sockdir):
    """16 MiB through a tunnel on the TLS listener to a target that reads
    slowly: the gateway's writes to it back up (a partial write, the rest
    copied out of the read buffer and queued) and every byte arrives once, in
    order. The queued copy was once queued at the read's full length: the
    bytes already written went out twice, followed by bytes past the copy."""
    target = StreamServer().start()
    try:
        gw = tls_gateway(make_gateway, tmp_path, ca, sockdir, auth_schemes="none",
                         connect_ports=[target.port])
        s = ca.wrap(socket.create_connection(("127.0.0.1", gw.port), timeout=30))
        s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                  % (target.port, target.port))
        head = b""
        while b"\r\n\r\n" not in head:
            b = s.recv(4096)
            assert b, head
            head += b
        assert head.startswith(b"HTTP/1.1 200"), head
        data = stream_bytes(16 * 1024 * 1024)
        s.sendall(data)
        # close_notify ends the client's side (passed on to the target as
        # EOF); the target sent nothing, so the gateway's comes back.
        s.unwrap().close()
        got = target.wait_received(1)[0]
        wrong = stream_check(got, data)
        assert not wrong, wrong
    finally:
        target.stop()


def test_curl_ntlm_over_tls(make_gateway, tmp_path, ca, sockdir, origin):
    gw = tls_gateway(make_gateway, tmp_path, ca, sockdir, auth_schemes="ntlm")
    rc, code, body, err = curl_https_proxy(gw, ca, "--proxy-ntlm", "--proxy-user",
                                           "carol:%s" % USERS["carol"], origin.url("/echo"))
    assert (rc, code) == (0, 200), err
    # curl's NTLM sends no channel bindings (all zeros) to a proxy.
    gw.wait_log(r"event=auth_ok scheme=NTLM .*user=\"carol\".*channel_binding=unbound")


def test_proxy_protocol_then_tls(make_gateway, tmp_path, ca, sockdir, origin):
    """listen ... proxy_protocol tls: the PROXY header in clear, then TLS."""
    gw = tls_gateway(make_gateway, tmp_path, ca, sockdir, auth_schemes="none",
                     start=False, proxy_protocol_from="127.0.0.1")
    gw.options["listen"] = ["127.0.0.1:%d tls proxy_protocol" % free_port()]
    gw.start()
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
    s.sendall(b"PROXY TCP4 192.0.2.9 127.0.0.1 5555 3128\r\n")
    t = ca.wrap(s)
    t.sendall(get_request(origin.url("/echo")))
    data = b""
    while b"\r\n\r\n" not in data:
        data += t.recv(65536)
    assert data.startswith(b"HTTP/1.1 200")
    t.close()
    assert stats(gw)["proxy_protocol_headers"] == 1
    gw.wait_access_log(1)
    assert " 192.0.2.9 " in gw.access_log[0]


# --------------------------------------------------------------------------- refusals


def test_plain_http_on_tls_port(make_gateway, tmp_path, ca, sockdir, origin):
    gw = tls_gateway(make_gateway, tmp_path, ca, sockdir, auth_schemes="none")
    c = gw.client()
    r = c.request(get_request(origin.url("/echo")))
    assert r.status == 400
    assert b"speaks TLS" in r.body
    assert c.is_closed()
    gw.wait_log(r"event=tls_refused client=127\.0\.0\.1 reason=plain_http status=400")
    assert stats(gw)["tls_plain_http"] == 1
    assert origin.requests == []


def test_tls_hello_on_plain_port(make_gateway, tmp_path, ca, sockdir, origin):
    gw = tls_gateway(make_gateway, tmp_path, ca, sockdir, plain=True, auth_schemes="none")
    plain = gw.ports[1]
    s = socket.create_connection(("127.0.0.1", plain), timeout=5)
    with pytest.raises(ssl.SSLError):
        ca.wrap(s)
    s.close()
    gw.wait_log(r"event=bad_request client=127\.0\.0\.1 status=400 "
                r"error=\"TLS handshake on a plain listener\"")
    assert stats(gw)["tls_on_plain_listener"] == 1
    # The plain listener still serves plain HTTP.
    c = gw.client(port=plain)
    assert c.request(get_request(origin.url("/"))).status == 200


def test_handshake_deadline(make_gateway, tmp_path, ca, sockdir):
    """A client that connects and never finishes its handshake (here: half a
    client hello) is closed at tls_handshake_timeout, with a counter."""
    gw = tls_gateway(make_gateway, tmp_path, ca, sockdir, auth_schemes="none",
                     tls_handshake_timeout="1s")
    c = gw.client(timeout=5)
    c.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a hello's first bytes
    t0 = time.monotonic()
    assert c.is_closed(timeout=4)
    took = time.monotonic() - t0
    assert 0.7 < took < 3.5, took
    gw.wait_log(r"event=tls_handshake_timeout client=127\.0\.0\.1 received=11")
    assert stats(gw)["timeout_tls_handshake"] == 1


def test_handshake_failure_is_counted(make_gateway, tmp_path, ca, sockdir):
    """TLS 1.1 and below are refused at the handshake."""
    gw = tls_gateway(make_gateway, tmp_path, ca, sockdir, auth_schemes="none")
    ctx = ca.client_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
    with pytest.raises(ssl.SSLError):
        ctx.wrap_socket(s, server_hostname="localhost")
    s.close()
    gw.wait_log(r"event=tls_refused client=127\.0\.0\.1 reason=handshake_failed")
    assert stats(gw)["tls_handshake_failed"] == 1


def test_expired_certificate_refused_at_start(make_gateway, tmp_path, ca, sockdir):
    cp, kp = ca.issue(expired=True)
    gw = tls_gateway(make_gateway, tmp_path, ca, sockdir, cert=(cp, kp), start=False)
    gw.write_config()
    rc, out = check_config(gw.config_path)
    assert rc == 1
    assert "the certificate is expired on" in out and cp in out
    gw.start(wait=False)
    assert gw.wait_exit(10) == 1
    assert "event=startup_failed" in gw.error_log and "expired on" in gw.error_log
    gw.stop(expect_rc=1)


def test_key_not_matching_refused(make_gateway, tmp_path, ca, sockdir):
    cp, _ = ca.issue()
    _, other_key = ca.issue()
    gw = tls_gateway(make_gateway, tmp_path, ca, sockdir, cert=(cp, other_key), start=False)
    gw.write_config()
    rc, out = check_config(gw.config_path)
    assert rc == 1 and "does not match" in out


def test_sighup_new_certificate_keeps_open_connections(make_gateway, tmp_path, ca, sockdir,
                                                       origin):
    gw = tls_gateway(make_gateway, tmp_path, ca, sockdir, auth_schemes="none")
    old = TlsClient("127.0.0.1", gw.port, ca)
    assert old.request(get_request(origin.url("/1"))).status == 200
    first_der = old.peer_der()
    assert first_der == leaf_der(gw.cert)
    cp, kp = ca.issue()
    gw.reload({"tls_certificate": cp, "tls_key": kp})
    gw.wait_log(r"event=tls_reloaded certificate=%s" % cp)
    new = TlsClient("127.0.0.1", gw.port, ca)
    assert new.request(get_request(origin.url("/2"))).status == 200
    assert new.peer_der() == leaf_der(cp) != first_der
    # The connection opened before the reload still works, on its old certificate.
    assert old.request(get_request(origin.url("/3"))).status == 200
    # A reload naming an expired certificate is refused whole: the current one stays.
    bad, badkey = ca.issue(expired=True)
    gw.reload({"tls_certificate": bad, "tls_key": badkey})
    gw.wait_log(r"event=reload_failed error=\".*expired on")
    third = TlsClient("127.0.0.1", gw.port, ca)
    assert third.request(get_request(origin.url("/4"))).status == 200
    assert third.peer_der() == leaf_der(cp)
    for c in (old, new, third):
        c.close()


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_session_resumption_across_loops_and_reload(make_gateway, tmp_path, ca, sockdir, origin,
                                                    version):
    """Tickets are the context's: with workers 2 a client resumes whichever
    loop takes its next connection, and the ticket keys survive a reload."""
    gw = tls_gateway(make_gateway, tmp_path, ca, sockdir, auth_schemes="none", workers=2)
    ctx = ca.client_context()
    ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, version)

    def one(session=None):
        s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
        t = ctx.wrap_socket(s, server_hostname="localhost", session=session)
        t.sendall(get_request(origin.url("/r"), [("Connection", "close")]))
        data = b""
        while True:
            d = t.recv(65536)
            if not d:
                break
            data += d
        assert data.startswith(b"HTTP/1.1 200"), data[:100]
        sess, reused = t.session, t.session_reused
        t.close()
        return sess, reused

    sess, reused = one()
    assert not reused
    reuses = 0
    for _ in range(6):  # SO_REUSEPORT spreads these over both loops
        sess2, r = one(sess)
        reuses += r
        sess = sess2 if sess2 is not None else sess
    assert reuses == 6
    cp, kp = ca.issue()
    gw.reload({"tls_certificate": cp, "tls_key": kp})
    _, r = one(sess)
    assert r, "a ticket from before the reload resumes after it"
    st = stats(gw)
    assert st["tls_resumed"] >= 7


# --------------------------------------------------------------------------- basic_require_tls


def test_basic_require_tls(make_gateway, tmp_path, ca, sockdir, origin):
    gw = tls_gateway(make_gateway, tmp_path, ca, sockdir, plain=True, auth_schemes="ntlm basic",
                     basic_require_tls=True)
    plain = gw.client(port=gw.ports[1])
    r = plain.request(get_request(origin.url("/")))
    assert r.status == 407 and offered(r) == ["ntlm"]
    r = plain.request(get_request(origin.url("/"), [pa(basic("alice", USERS["alice"]))]))
    assert r.status == 407
    gw.wait_log(r"basic_without_tls")
    assert stats(gw)["auth_basic_without_tls"] == 1
    t = TlsClient("127.0.0.1", gw.port, ca)
    r = t.request(get_request(origin.url("/")))
    assert r.status == 407 and offered(r) == ["ntlm", "basic"]
    assert t.request(get_request(origin.url("/"), [pa(basic("alice", USERS["alice"]))])).status == 200
    t.close()


# --------------------------------------------------------------------------- channel binding: NTLM


def ntlm_over(c, url, user, cb=None, password=None, domain="AUTHGATE"):
    """The two NTLM legs on client c; cb: the MsvAvChannelBindings value to
    put in the AUTHENTICATE's AV pairs (None: none)."""
    t1 = negotiate_msg()
    r1 = c.request(get_request(url, [pa("NTLM %s" % b64(t1))]))
    chal = challenge_from(r1)

    def add_cb(pairs):
        return pairs + [(AV_CHANNEL_BINDINGS, cb)] if cb is not None else pairs

    t3 = authenticate_msg(chal, user, password or USERS[user], domain, negotiate=t1,
                          av_edit=add_cb)
    return c.request(get_request(url, [pa("NTLM %s" % b64(t3))]))


@pytest.mark.parametrize("mode", ["if-present", "required"])
def test_ntlm_channel_binding(make_gateway, tmp_path, ca, sockdir, origin, mode):
    gw = tls_gateway(make_gateway, tmp_path, ca, sockdir, auth_schemes="ntlm",
                     channel_binding=mode)
    url = origin.url("/cb")
    # Bound to this channel: taken.
    t = TlsClient("127.0.0.1", gw.port, ca)
    right = ntlm_channel_bindings(t.peer_der())
    # The same value as python3-ntlm-auth's own gss_channel_bindings_struct
    # (what requests-ntlm sends to HTTPS servers): an independent check of
    # the serialisation both sides of this test use.
    from ntlm_auth.gss_channel_bindings import GssChannelBindingsStruct
    g = GssChannelBindingsStruct()
    g[g.APPLICATION_DATA] = cb_application_data(t.peer_der())
    assert hashlib.md5(g.get_data()).digest() == right
    assert ntlm_over(t, url, "alice", right).status == 200
    t.close()
    # Bound to another channel (another certificate: a relay through a TLS
    # proxy of the attacker's): refused, one line, a counter.
    other = ntlm_channel_bindings(leaf_der(ca.issue()[0]))
    t = TlsClient("127.0.0.1", gw.port, ca)
    r = ntlm_over(t, url, "alice", other)
    assert r.status == 407
    gw.wait_log(r"event=channel_binding_refused scheme=NTLM client=127\.0\.0\.1 reason=mismatch")
    assert stats(gw)["channel_binding_mismatch"] == 1
    t.close()
    # Unbound (all zeros, or no pair): taken unless required.
    for cb in (b"\0" * 16, None):
        t = TlsClient("127.0.0.1", gw.port, ca)
        r = ntlm_over(t, url, "bob", cb)
        assert r.status == (407 if mode == "required" else 200)
        t.close()
    if mode == "required":
        gw.wait_log(r"event=channel_binding_refused scheme=NTLM .*reason=missing")
        assert stats(gw)["channel_binding_missing"] == 2


def test_ntlm_channel_binding_winbind(winbind_env, ca, sockdir, origin):
    """Through winbindd: the binding is checked by authgate (winbindd checks
    the NT proof over the blob that carries it), right and wrong."""
    cp, kp = ca.issue()
    gw = winbind_env.make(schemes="ntlm", ctl=True, listen=["127.0.0.1:%d tls" % free_port()],
                          tls_certificate=cp, tls_key=kp, channel_binding="if-present")
    user = sorted(winbind_env.users)[0]
    pw, dom = winbind_env.users[user], winbind_env.domain
    url = origin.url("/wb")
    t = TlsClient("127.0.0.1", gw.port, ca)
    r = ntlm_over(t, url, user, ntlm_channel_bindings(t.peer_der()), pw, dom)
    assert r.status == 200, r
    t.close()
    gw.wait_log(r"event=auth_ok scheme=NTLM .*backend=winbind .*channel_binding=bound")
    t = TlsClient("127.0.0.1", gw.port, ca)
    r = ntlm_over(t, url, user, ntlm_channel_bindings(leaf_der(ca.issue()[0])), pw, dom)
    assert r.status == 407
    t.close()
    gw.wait_log(r"event=channel_binding_refused scheme=NTLM .*reason=mismatch")
    assert stats(gw)["channel_binding_mismatch"] == 1


def test_ntlm_channel_binding_off_and_plain(make_gateway, tmp_path, ca, sockdir, origin):
    gw = tls_gateway(make_gateway, tmp_path, ca, sockdir, plain=True, auth_schemes="ntlm",
                     channel_binding="off")
    url = origin.url("/cb")
    other = ntlm_channel_bindings(leaf_der(ca.issue()[0]))
    t = TlsClient("127.0.0.1", gw.port, ca)
    assert ntlm_over(t, url, "alice", other).status == 200  # off: not checked
    t.close()
    # On plain HTTP a bound token names a TLS channel that is not there.
    c = gw.client(port=gw.ports[1])
    assert ntlm_over(c, url, "alice", other).status == 407
    gw.wait_log(r"channel bindings on plain HTTP")
    assert stats(gw)["channel_binding_mismatch"] == 0


# --------------------------------------------------------------------------- Kerberos


@pytest.fixture(scope="module")
def kdc():
    from peers.fixtures import _need
    from peers.kdc import Kdc
    _need("krb5kdc", "kdb5_util", "kadmin.local", "kinit", "kvno")
    with Kdc() as k:
        yield k


def krb_gateway(make_gateway, tmp_path, ca, sockdir, kdc, **opts):
    env = dict({**os.environ, **kdc.env})
    env["LSAN_OPTIONS"] = "suppressions=%s:print_suppressions=0:exitcode=88" % LSAN_SUPP
    o = dict(auth_schemes="negotiate", proxy_host="localhost", keytab=kdc.keytab,
             rcache_dir=kdc.rcache_dir)
    o.update(opts)
    gw = tls_gateway(make_gateway, tmp_path, ca, sockdir, start=False, **o)
    gw.env = sanitizer_env(env)
    gw.start()
    return gw


@pytest.mark.needs_kdc
def test_curl_negotiate_over_tls(make_gateway, tmp_path, ca, sockdir, origin, kdc):
    gw = krb_gateway(make_gateway, tmp_path, ca, sockdir, kdc, channel_binding="required")
    rc, code, body, err = curl_https_proxy(gw, ca, "--proxy-negotiate", "-U", ":",
                                           origin.url("/echo"), env=kdc.client_env("alice"))
    # curl sends no channel bindings to a proxy: required refuses it ...
    assert code == 407, err
    gw.wait_log(r"event=channel_binding_refused scheme=Negotiate .*reason=missing")
    gw.reload({"channel_binding": "if-present"})
    # ... and if-present takes it.
    rc, code, body, err = curl_https_proxy(gw, ca, "--proxy-negotiate", "-U", ":",
                                           origin.url("/echo"), env=kdc.client_env("alice"))
    assert (rc, code) == (0, 200), err
    gw.wait_log(r"event=auth_ok scheme=Negotiate .*principal=\"alice@.*channel_binding=unbound")


@pytest.mark.needs_kdc
@pytest.mark.parametrize("mode", ["if-present", "required"])
def test_negotiate_channel_binding(make_gateway, tmp_path, ca, sockdir, origin, kdc, mode):
    gssapi = pytest.importorskip("gssapi")
    from test_auth_negotiate import as_client
    gw = krb_gateway(make_gateway, tmp_path, ca, sockdir, kdc, channel_binding=mode)
    url = origin.url("/gss")
    alice = kdc.client_env("alice")
    spnego = gssapi.OID.from_int_seq("1.3.6.1.5.5.2")

    def token(app_data):
        cb = gssapi.raw.ChannelBindings(application_data=app_data) if app_data else None
        with as_client(alice):
            ctx = gssapi.SecurityContext(
                name=gssapi.Name("HTTP@localhost", gssapi.NameType.hostbased_service),
                usage="initiate", mech=spnego, channel_bindings=cb,
                flags=gssapi.RequirementFlag.mutual_authentication)
            return ctx.step()

    t = TlsClient("127.0.0.1", gw.port, ca)
    r = t.request(get_request(url, [pa("Negotiate %s" % b64(token(
        cb_application_data(t.peer_der()))))]))
    assert r.status == 200
    gw.wait_log(r"event=auth_ok scheme=Negotiate .*channel_binding=bound")
    t.close()
    t = TlsClient("127.0.0.1", gw.port, ca)
    wrong = cb_application_data(leaf_der(ca.issue()[0]))
    r = t.request(get_request(url, [pa("Negotiate %s" % b64(token(wrong)))]))
    assert r.status == 407
    gw.wait_log(r"event=channel_binding_refused scheme=Negotiate client=127\.0\.0\.1 "
                r"reason=mismatch")
    assert stats(gw)["channel_binding_mismatch"] == 1
    t.close()
    t = TlsClient("127.0.0.1", gw.port, ca)
    r = t.request(get_request(url, [pa("Negotiate %s" % b64(token(None)))]))
    assert r.status == (407 if mode == "required" else 200)
    t.close()


# --------------------------------------------------------------------------- Chromium


@pytest.mark.parametrize("scheme", ["basic", "ntlm"])
def test_chromium_https_proxy(make_gateway, tmp_path, ca, sockdir, origin, tls_origin, tls_cert,
                              scheme):
    """Headless Chromium with --proxy-server=https://localhost:PORT: the test
    CA's proxy certificate (and the self-signed origin's, for the CONNECT
    page) trusted by SPKI pin, no blanket --ignore-certificate-errors. The
    proxy prompt is answered; a plain page (absolute form inside TLS) and an
    https page (CONNECT, TLS in TLS) load, both logged with the user."""
    from harness.browser import Chromium
    from harness.origin import HELLO
    from harness.tlsca import spki_hash
    from test_browser_chromium import logged_user
    gw = tls_gateway(make_gateway, tmp_path, ca, sockdir, auth_schemes=scheme,
                     connect_ports=[tls_origin.port])
    pins = ",".join([spki_hash(gw.cert), spki_hash(tls_cert[0])])
    with Chromium(tmp_path / "chromium", proxy="https://localhost:%d" % gw.port,
                  extra_flags=["--ignore-certificate-errors-spki-list=%s" % pins]) as br:
        br.credentials = ("alice", USERS["alice"])
        for url in (origin.url("/x"), tls_origin.url("/x")):
            nav = br.navigate(url)
            assert nav.error is None and nav.status == 200, (url, nav, br.auth_challenges)
            assert nav.text == HELLO.decode(), (url, nav)
        assert {(c["source"], c["scheme"].lower()) for c in br.auth_challenges} == {
            ("Proxy", scheme)}, br.auth_challenges
    assert logged_user(gw, "GET", origin.url("/x")) == "alice"
    assert logged_user(gw, "CONNECT", tls_origin.authority()) == "alice"
    assert stats(gw)["tls_handshakes"] >= 1
    if scheme == "ntlm":
        # What this Chromium sends an HTTPS proxy: no MsvAvChannelBindings
        # value (zeros), seen on every AUTHENTICATE.
        gw.wait_log(r"event=auth_ok scheme=NTLM .*channel_binding=unbound")
        assert "channel_binding=bound" not in gw.error_log


@pytest.mark.needs_kdc
def test_chromium_https_proxy_negotiate(make_gateway, tmp_path, ca, sockdir, origin, kdc):
    """Kerberos single sign-on through an HTTPS proxy: no prompt, and what
    Chromium's GSSAPI Negotiate does about channel bindings (logged in the
    auth_ok line; channel_binding if-present takes either)."""
    from harness.browser import Chromium
    from harness.origin import HELLO
    from harness.tlsca import spki_hash
    gw = krb_gateway(make_gateway, tmp_path, ca, sockdir, kdc, channel_binding="if-present")
    with Chromium(tmp_path / "chromium", proxy="https://localhost:%d" % gw.port,
                  env=kdc.client_env("alice"), auth_server_allowlist="localhost",
                  extra_flags=["--ignore-certificate-errors-spki-list=%s"
                               % spki_hash(gw.cert)]) as br:
        br.credentials = None
        nav = br.navigate(origin.url("/x"))
        assert nav.error is None and nav.status == 200, (nav, br.auth_challenges)
        assert nav.text == HELLO.decode()
        assert br.auth_challenges == []
    # What this Chromium does (README, TLS to the proxy): its Negotiate to an
    # HTTPS proxy carries no channel bindings. A change here is a change
    # to document.
    gw.wait_log(r"event=auth_ok scheme=Negotiate .*channel_binding=unbound")
