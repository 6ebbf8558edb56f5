"""authgate behind a load balancer (issue 12): the PROXY protocol on
`listen ... proxy_protocol` listeners, and GET /healthz.

Peers: HAProxy 2.6 (Debian) in TCP mode, the real sender of PROXY v1
(`send-proxy`) and v2 (`send-proxy-v2`, LOCAL for its own health checks),
balancing round-robin over two gateways that share one keytab (the throwaway
MIT KDC of peers/, HTTP/localhost) and one winbindd (peers/); curl as the
client, bound to 127.0.0.2 (`--interface`) so that the real client differs
from HAProxy's own source, 127.0.0.1. curl names the proxy `localhost`:
Kerberos asks for HTTP/localhost, the balancer's name, which both gateways
hold (proxy_host localhost).

Byte-level cases talk to a gateway directly with hand-made headers: a peer
not in proxy_protocol_from, a truncated v2 header, a header that never
completes, a v1 line over 107 bytes, no header at all. Each is closed with one
log line and a counter, and the origin sees nothing.
"""

import os
import pathlib
import signal
import socket
import struct
import subprocess
import time

import pytest

from harness.accesslog import access_records
from harness.auth import USERS, AuthEnv, write_user_file
from harness.ctl_client import ctl_json, short_tmpdir, stats
from harness.gateway import free_port, sanitizer_env
from harness.ntlm_client import basic, pa
from harness.rawhttp import RawClient, build_request, get_request
from harness.tools import assert_error_response, wait_until
from peers.fixtures import _need_winbind, _winbind_session, kdc, winbind  # noqa: F401
from test_rules import curl_as, start_gateway

REPO = pathlib.Path(__file__).resolve().parents[2]
LSAN_SUPP = REPO / "tests" / "lsan.supp"
CLIENT = "127.0.0.2"  # the real client; HAProxy connects from 127.0.0.1
SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2_header(src="192.0.2.7", sport=56324, dst="10.0.0.1", dport=3128, cmd=0x21, tlvs=b""):
    """A PROXY v2 header (TCP over IPv4), as HAProxy's send-proxy-v2 writes it."""
    if cmd == 0x20:
        return SIG + bytes([0x20, 0x00]) + struct.pack(">H", 0)
    block = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack(">HH", sport, dport)
    block += tlvs
    return SIG + bytes([cmd, 0x11]) + struct.pack(">H", len(block)) + block


def pp_listen(port=None):
    return "127.0.0.1:%d proxy_protocol" % (port or free_port())


# --------------------------------------------------------------------------- HAProxy


class Haproxy:
    """`haproxy -f CFG -db` (foreground) in TCP mode: one frontend on a free
    loopback port, round-robin over `servers` [(host, port)], each with
    `server_opts` (send-proxy-v2, check ...) and the backend lines
    `backend_opts` (option httpchk ...)."""

    def __init__(self, workdir, servers, server_opts, backend_opts=()):
        self.dir = pathlib.Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        lines = [
            "global", "    maxconn 200",
            "defaults", "    mode tcp", "    timeout connect 2s", "    timeout client 30s",
            "    timeout server 30s", "    timeout check 2s",
            "frontend fe", "    bind 127.0.0.1:%d" % self.port, "    default_backend be",
            "backend be", "    balance roundrobin",
        ] + ["    " + o for o in backend_opts]
        for i, (h, p) in enumerate(servers):
            lines.append("    server n%d %s:%d %s" % (i + 1, h, p, server_opts))
        self.cfg = self.dir / "haproxy.cfg"
        self.cfg.write_text("\n".join(lines) + "\n")
        self.log = self.dir / "haproxy.log"
        self._log = open(self.log, "wb")
        self.proc = subprocess.Popen(["haproxy", "-f", str(self.cfg), "-db"],
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=self.dir)
        wait_until(self._accepts, 10, "haproxy listening")

    def _accepts(self):
        if self.proc.poll() is not None:
            raise AssertionError("haproxy exited: %s" % self.log.read_text())
        try:
            socket.create_connection(("127.0.0.1", self.port), 0.5).close()
            return True
        except OSError:
            return False

    @property
    def proxy(self):
        return "http://localhost:%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


@pytest.fixture
def haproxy(tmp_path):
    made = []

    def factory(servers, server_opts="send-proxy-v2", backend_opts=()):
        h = Haproxy(tmp_path / ("haproxy%d" % len(made)), servers, server_opts, backend_opts)
        made.append(h)
        return h

    yield factory
    for h in made:
        h.stop()


def curl_client(gw_or_lb, *args, env=None):
    """curl from CLIENT through the balancer, named localhost (IPv4)."""
    return curl_as(None, "-4", "--interface", CLIENT, *args, env=env, proxy=gw_or_lb.proxy)


def clients_logged(gws):
    return [r["client"] for gw in gws for r in access_records(gw.access_log)]


# --------------------------------------------------------------------------- with HAProxy


@pytest.fixture
def nodes(kdc, winbind, make_gateway, tmp_path, request):  # noqa: F811
    """Two gateways behind one name: one keytab (HTTP/localhost), winbind
    for NTLM and Basic, a status socket each, proxy_protocol listeners that
    take headers from HAProxy (127.0.0.1) only."""
    env = AuthEnv("winbind", make_gateway, tmp_path, winbind)
    request.addfinalizer(env.finish)
    krb = dict(kdc.env, LSAN_OPTIONS=os.environ.get(
        "LSAN_OPTIONS", "suppressions=%s:print_suppressions=0:exitcode=88" % LSAN_SUPP))
    gws = [env.make(schemes="negotiate ntlm basic", ctl=True, env=krb, proxy_host="localhost",
                    keytab=kdc.keytab, rcache_dir=kdc.rcache_dir, listen=[pp_listen()],
                    proxy_protocol_from="127.0.0.1")
           for _ in range(2)]
    return env, gws


def test_haproxy_v2_round_robin_negotiate_ntlm_basic(nodes, kdc, haproxy, origin):  # noqa: F811
    """HAProxy send-proxy-v2 round-robin over two nodes: Negotiate, NTLM
    (both legs on one balanced connection, verified by winbindd) and Basic
    all succeed, and both nodes log the real client, never HAProxy."""
    env, gws = nodes
    lb = haproxy([(gw.host, gw.port) for gw in gws])
    user, pw = "alice", env.users["alice"]
    runs = [
        ("Negotiate", curl_client(lb, "--proxy-negotiate", "-U", ":", origin.url("/echo"),
                                  env=kdc.client_env("alice"))),
        ("NTLM", curl_client(lb, "--proxy-ntlm", "-U", "%s:%s" % (user, pw),
                             origin.url("/echo"))),
        ("Basic", curl_client(lb, "--proxy-basic", "-U", "%s:%s" % (user, pw),
                              origin.url("/echo"))),
        ("Basic", curl_client(lb, "--proxy-basic", "-U", "%s:%s" % (user, pw),
                              origin.url("/echo"))),
    ]
    for scheme, r in runs:
        assert r.rc == 0 and r.status == 200, (scheme, r)
    wait_until(lambda: sum(len(gw.access_log) for gw in gws) >= 5, 5, "access log lines")
    recs = [r for gw in gws for r in access_records(gw.access_log)]
    ok = [r for r in recs if r["status"] == "200"]
    assert len(ok) == 4, recs
    assert {r["client"] for r in recs} == {CLIENT}, recs
    # round-robin: each node served some of the four connections
    assert all(any(r["status"] == "200" for r in access_records(gw.access_log)) for gw in gws)
    # NTLM took two round trips on one connection: one 407 then one 200 on that node
    assert any(r["user"] == "alice@%s" % kdc.realm for r in ok), ok
    for gw in gws:
        assert "proxy_protocol_refused" not in gw.error_log, gw.logs_tail()
    assert sum(stats(gw)["proxy_protocol_headers"] for gw in gws) >= 4


def test_haproxy_sessions_show_real_client(nodes, haproxy, origin):
    """A kept-alive Basic client through HAProxy: `authgatectl sessions` on
    the node that took it names the client, not the balancer."""
    env, gws = nodes
    lb = haproxy([(gw.host, gw.port) for gw in gws])
    auth = basic(env.qualified("alice"), env.users["alice"])
    with RawClient("127.0.0.1", lb.port, source=CLIENT) as c:
        r = c.request(get_request(origin.url("/echo"), [pa(auth)]))
        assert r.status == 200, r
        rows = []
        for gw in gws:
            rows += ctl_json(gw.options["status_socket"], "sessions")["sessions"]
        mine = [x for x in rows if x["state"] == "authenticated"]
        assert len(mine) == 1 and mine[0]["peer"] == CLIENT, rows
        assert all(x["peer"] != "127.0.0.1" for x in rows), rows


def test_haproxy_src_rule_matches_real_client(make_gateway, tmp_path, haproxy, origin):
    """`deny src=127.0.0.2` refuses the client at 127.0.0.2 behind HAProxy
    (127.0.0.1 is allowed): the rule sees the header's address."""
    gw = start_gateway(make_gateway, tmp_path, """
        default deny
        deny far src=%s
        allow lo src=127.0.0.0/8
        """ % CLIENT, listen=[pp_listen()], proxy_protocol_from="127.0.0.1",
                       x_forwarded_for=True)
    lb = haproxy([(gw.host, gw.port)])
    a = "alice:alice-Pass1"
    r = curl_client(lb, "--proxy-basic", "-U", a, origin.url("/echo"))
    assert r.status == 403 and b"'far'" in r.body, r
    r = curl_as(None, "-4", "--interface", "127.0.0.3", "--proxy-basic", "-U", a,
                origin.url("/echo"), proxy=lb.proxy)
    assert r.status == 200, r
    # X-Forwarded-For names the real client too
    assert len(origin.requests) == 1
    assert origin.requests[0].header("x-forwarded-for") == "127.0.0.3"
    assert [x["client"] for x in access_records(gw.wait_access_log(2))] == [CLIENT, "127.0.0.3"]


def test_haproxy_v1_send_proxy(make_gateway, tmp_path, haproxy, origin):
    """PROXY v1 (`send-proxy`): the text header, the same result."""
    gw = start_gateway(make_gateway, tmp_path, "default allow\n", listen=[pp_listen()],
                       proxy_protocol_from="127.0.0.1")
    lb = haproxy([(gw.host, gw.port)], "send-proxy")
    r = curl_client(lb, "--proxy-basic", "-U", "alice:alice-Pass1", origin.url("/echo"))
    assert r.status == 200, r
    assert access_records(gw.wait_access_log(1))[0]["client"] == CLIENT
    assert "proxy_protocol_refused" not in gw.error_log, gw.logs_tail()


# HAProxy's own health checks: /healthz behind a LOCAL header (with
# send-proxy-v2 its checks carry the PROXY header too, as LOCAL: the balancer
# speaks for itself). A connect-only check (plain `check`) resets the
# connection right after connecting, often before the gateway reads a byte:
# the HTTP check is the one to use, and the one these tests count.
HTTPCHK = ("option httpchk GET /healthz",)


def test_haproxy_local_health_checks(make_gateway, haproxy):
    """HAProxy's /healthz checks arrive as LOCAL headers: taken (the
    connection keeps the balancer's address), answered 200, counted."""
    d = short_tmpdir()
    gw = make_gateway(listen=[pp_listen()], proxy_protocol_from="127.0.0.1",
                      status_socket=os.path.join(d, "ctl.sock"))
    haproxy([(gw.host, gw.port)], "send-proxy-v2 check inter 100ms", HTTPCHK)
    wait_until(lambda: stats(gw)["healthz_200"] >= 3, 10, "3 health checks")
    s = stats(gw)
    assert s["proxy_protocol_local"] >= 3, s
    # at most one PROXY (not LOCAL) connection: Haproxy's readiness probe,
    # which closes at once (HAProxy may drop it before the gateway reads)
    assert s["proxy_protocol_headers"] <= 1, s
    assert "proxy_protocol_refused" not in gw.error_log, gw.logs_tail()
    recs = access_records(gw.access_log)
    assert {(r["client"], r["method"], r["url"], r["status"]) for r in recs} == {
        ("127.0.0.1", "GET", "/healthz", "200")}, recs


def test_haproxy_drain_moves_clients(make_gateway, tmp_path, haproxy, origin):
    """SIGTERM with drain_delay on one of two nodes: its /healthz says 503,
    HAProxy takes it out, and every new client goes to the other node while
    the first still listens; a second SIGTERM ends it cleanly."""
    d = short_tmpdir()
    gws = [make_gateway(listen=[pp_listen()], proxy_protocol_from="127.0.0.1",
                        drain_delay="60s", status_socket=os.path.join(d, "ctl%d.sock" % i))
           for i in range(2)]
    lb = haproxy([(gw.host, gw.port) for gw in gws],
                 "send-proxy-v2 check inter 100ms fall 2 rise 1", HTTPCHK)
    wait_until(lambda: all(stats(gw)["healthz_200"] >= 1 for gw in gws), 10, "both nodes up")
    gws[0].signal(signal.SIGTERM)
    gws[0].wait_log(r"event=drain_begin delay_ms=60000")
    wait_until(lambda: stats(gws[0])["healthz_503"] >= 2, 10, "HAProxy saw two 503s")
    before = [sum(r["url"] != "/healthz" for r in access_records(gw.access_log)) for gw in gws]
    for _ in range(4):
        r = curl_client(lb, origin.url("/echo"))
        assert r.status == 200, r
    after = [sum(r["url"] != "/healthz" for r in access_records(gw.access_log)) for gw in gws]
    assert after[0] == before[0] and after[1] == before[1] + 4, (before, after)
    assert gws[0].alive()
    # a second SIGTERM cuts the delay short (each node here)
    gws[1].signal(signal.SIGTERM)
    gws[1].wait_log(r"event=drain_begin")
    for gw in gws:
        gw.signal(signal.SIGTERM)
        assert gw.wait_exit(10) == 0, gw.logs_tail()


# --------------------------------------------------------------------------- byte level


@pytest.fixture
def ppgw(make_gateway):
    """A gateway with one proxy_protocol listener trusting 127.0.0.1, an
    open proxy (auth_schemes none), a status socket."""
    d = short_tmpdir()
    return make_gateway(listen=[pp_listen()], proxy_protocol_from="127.0.0.1",
                        proxy_protocol_timeout="700ms", x_forwarded_for=True,
                        status_socket=os.path.join(d, "ctl.sock"))


def refused(gw, reason, counter, before):
    m = gw.wait_log(r"event=proxy_protocol_refused client=\S+ reason=%s" % reason)
    assert gw.error_log.count("event=proxy_protocol_refused") == before + 1, gw.logs_tail()
    assert stats(gw)[counter] == 1
    return m


def test_header_then_request_in_one_read(ppgw, origin):
    """The header and the request arrive together: the header is consumed
    first, the rest is the request, from the header's client."""
    with ppgw.client() as c:
        r = c.request(v2_header() + get_request(origin.url("/echo")))
        assert r.status == 200, r
        assert origin.requests[0].header("x-forwarded-for") == "192.0.2.7"
    v1 = b"PROXY TCP6 2001:db8::7 2001:db8::1 443 3128\r\n"
    with ppgw.client() as c:
        c.send(v1[:9])
        c.send(v1[9:] + get_request(origin.url("/echo"))[:20])
        r = c.request(get_request(origin.url("/echo"))[20:])
        assert r.status == 200, r
    assert [x["client"] for x in access_records(ppgw.wait_access_log(2))] == [
        "192.0.2.7", "2001:db8::7"]
    assert stats(ppgw)["proxy_protocol_headers"] == 2


def test_untrusted_peer_closed_at_accept(make_gateway, origin):
    d = short_tmpdir()
    gw = make_gateway(listen=[pp_listen()], proxy_protocol_from="127.0.0.9 10.0.0.0/8",
                      status_socket=os.path.join(d, "ctl.sock"))
    with gw.client() as c:
        c.send(v2_header() + get_request(origin.url("/echo")), tolerant=True)
        assert c.is_closed()
    refused(gw, "untrusted", "proxy_protocol_untrusted", 0)
    assert origin.all_requests == [] and gw.access_log == []


def test_truncated_v2_closed(ppgw, origin):
    with ppgw.client() as c:
        h = v2_header() + get_request(origin.url("/echo"))
        c.send(h[:20])
        c.shutdown_write()
        assert c.is_closed()
    refused(ppgw, "truncated", "proxy_protocol_truncated", 0)
    assert origin.all_requests == [] and ppgw.access_log == []


def test_header_never_completes(ppgw, origin):
    """Half a header, then silence: closed at proxy_protocol_timeout."""
    with ppgw.client() as c:
        c.send(b"PROXY TCP4 192.0.2.7 10.0.0")
        assert c.is_closed(timeout=5)
    refused(ppgw, "timeout", "timeout_proxy_protocol", 0)
    assert origin.all_requests == [] and ppgw.access_log == []


@pytest.mark.parametrize("data,reason,counter", [
    (b"PROXY UNKNOWN " + b"f" * 100 + b"\r\n", "too_long", "proxy_protocol_too_long"),
    (b"PROXY TCP4 " + b"1" * 120, "too_long", "proxy_protocol_too_long"),
    (None, "invalid", "proxy_protocol_invalid"),  # a request without a header
    (b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 65536\r\n", "invalid", "proxy_protocol_invalid"),
    (SIG + b"\x21\x31\x00\x00", "invalid", "proxy_protocol_invalid"),  # AF_UNIX
], ids=["v1-108-bytes", "v1-no-crlf", "no-header", "v1-bad-port", "v2-unix"])
def test_bad_header_closed(ppgw, origin, data, reason, counter):
    req = get_request(origin.url("/echo"))
    with ppgw.client() as c:
        c.send((data or b"") + req, tolerant=True)
        assert c.is_closed()
        assert c.buf == b"", c.buf  # not even an error response: the peer is no HTTP client
    refused(ppgw, reason, counter, 0)
    assert origin.all_requests == [] and ppgw.access_log == []


def test_local_header_keeps_balancer_address(ppgw):
    with ppgw.client() as c:
        r = c.request(v2_header(cmd=0x20) + build_request("GET", "/healthz", [("Host", "x")]))
        assert r.status == 200 and r.body == b"200 OK: serving\n", r
    assert access_records(ppgw.wait_access_log(1))[0]["client"] == "127.0.0.1"
    s = stats(ppgw)
    assert s["proxy_protocol_local"] == 1 and s["healthz_200"] == 1


# --------------------------------------------------------------------------- /healthz


def healthz(c, path="/healthz", method="GET"):
    return c.request(build_request(method, path, [("Host", "proxy")]), method=method)


def test_healthz(make_gateway, tmp_path):
    """200 on any listener without credentials (Basic is required of
    proxy requests); every other origin-form request keeps its 400
    (BAD-INPUTS row 13)."""
    gw = make_gateway(auth_schemes="basic", basic_backend="local",
                      user_file=str(write_user_file(tmp_path / "users", USERS)))
    with gw.client() as c:
        assert c.request(get_request("http://127.0.0.1:9/")).status == 407
        r = healthz(c)
        assert r.status == 200 and r.body == b"200 OK: serving\n", r
        assert r.header("connection") == "keep-alive"
        assert healthz(c).status == 200
    for path, method in (("/", "GET"), ("/healthz?x", "GET"), ("/healthz/", "GET"),
                         ("/HEALTHZ", "GET"), ("/healthz", "POST")):
        with gw.client() as c:
            assert_error_response(healthz(c, path, method), 400)


@pytest.mark.gateway_config(drain_delay="30s", shutdown_timeout="2s")
def test_healthz_503_while_draining(gateway, origin):
    """SIGTERM with drain_delay: listeners stay open and /healthz says 503
    (on open connections and new ones) so the balancer moves away; a second
    SIGTERM stops at once and the daemon exits cleanly."""
    gw = gateway
    with gw.client() as old:
        assert healthz(old).status == 200
        gw.signal(signal.SIGTERM)
        gw.wait_log(r"event=drain_begin delay_ms=30000")
        r = healthz(old)
        assert_error_response(r, 503)
        assert r.body == b"503 Service Unavailable: draining\n"
        assert r.header("connection") == "close"
    with gw.client() as new:
        assert_error_response(healthz(new), 503)
    # still a proxy meanwhile
    with gw.client() as c:
        assert c.request(get_request(origin.url("/echo"))).status == 200
    gw.signal(signal.SIGTERM)
    gw.wait_log(r"event=shutdown_begin")
    assert gw.wait_exit(10) == 0, gw.logs_tail()


def test_haproxy_workers2_both_loops(make_gateway, tmp_path, haproxy, origin):
    """A proxy_protocol listener at workers 2 behind HAProxy (send-proxy-v2):
    connections land on both loops (one SO_REUSEPORT socket each), and on
    each the header's address is the client (sessions, access log); SIGTERM
    with drain_delay makes /healthz 503 on every loop (draining is main's
    flag, read by each), the rest still proxied, and the stop drains both."""
    sock = os.path.join(short_tmpdir(), "ctl.sock")
    gw = start_gateway(make_gateway, tmp_path, "default allow\n", listen=[pp_listen()],
                       proxy_protocol_from="127.0.0.1", workers="2", status_socket=sock,
                       drain_delay="30s")
    lb = haproxy([(gw.host, gw.port)])
    auth = pa(basic("alice", "alice-Pass1"))
    clients, rows = [], []
    try:
        for i in range(64):  # 2^-63 to land all on one loop
            c = RawClient("127.0.0.1", lb.port, source=CLIENT)
            clients.append(c)
            assert c.request(get_request(origin.url("/w2/%d" % i), [auth])).status == 200
            rows = ctl_json(sock, "sessions")["sessions"]
            if {r["worker"] for r in rows} == {0, 1} and len(rows) == len(clients):
                break
        assert {r["worker"] for r in rows} == {0, 1}, rows
        assert all(r["peer"] == CLIENT for r in rows), rows
        assert {r["client"] for r in access_records(gw.wait_access_log(len(clients)))} == {CLIENT}
        gw.signal(signal.SIGTERM)
        gw.wait_log(r"event=drain_begin")
        # every open connection, whichever loop holds it, answers 503 now
        for c in clients:
            r = healthz(c)
            assert r.status == 503, r
        for i in range(4):  # new ones too, on either loop, while still proxying
            with RawClient("127.0.0.1", lb.port, source=CLIENT) as c:
                assert healthz(c).status == 503
            with RawClient("127.0.0.1", lb.port, source=CLIENT) as c:
                assert c.request(get_request(origin.url("/w2/new%d" % i), [auth])).status == 200
        gw.signal(signal.SIGTERM)
        assert gw.wait_exit(10) == 0, gw.logs_tail()
        assert "event=loop_close_failed" not in gw.error_log
        assert "proxy_protocol_refused" not in gw.error_log, gw.logs_tail()
        gw.check_sanitizers()
    finally:
        for c in clients:
            c.close()
