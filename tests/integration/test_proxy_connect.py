"""CONNECT tunnels."""

import hashlib
import os
import threading

from harness.origin import HELLO
from harness.rawhttp import build_request
from harness.tools import assert_error_response, curl


def _connect(c, authority, extra=b""):
    c.send(build_request("CONNECT", authority, [("Host", authority)]) + extra)
    return c.recv_response("CONNECT", timeout=3)


def test_connect_tls_with_curl(make_gateway, tls_origin):
    gw = make_gateway(connect_ports=[443, tls_origin.port])
    r = curl(gw.url, "-k", "https://localhost:%d/echo" % tls_origin.port)
    assert r.rc == 0, r
    assert r.status == 200
    assert r.responses[0].status == 200  # the proxy's answer to CONNECT
    (req,) = tls_origin.wait_requests(1)
    assert req.tls
    # nothing inside the tunnel is touched: no Via, no proxy fields
    assert req.header("via") is None
    assert req.header("host") == "localhost:%d" % tls_origin.port


def test_connect_tls_large_download(make_gateway, tls_origin):
    from harness.origin import STREAM_SHA256
    gw = make_gateway(connect_ports=[tls_origin.port])
    r = curl(gw.url, "-k", "https://127.0.0.1:%d/stream" % tls_origin.port)
    assert r.rc == 0, r
    assert hashlib.sha256(r.body).hexdigest() == STREAM_SHA256


def test_connect_reply_has_no_framing_fields(make_gateway, echo_server):
    gw = make_gateway(connect_ports=[echo_server.port])
    c = gw.client()
    resp = _connect(c, "127.0.0.1:%d" % echo_server.port)
    assert resp.status == 200
    assert resp.header("content-length") is None
    assert resp.header("transfer-encoding") is None
    c.send(b"ping")
    assert c.read_exact(4, timeout=3) == b"ping"


def test_connect_bytes_after_head_go_through_tunnel(make_gateway, echo_server):
    gw = make_gateway(connect_ports=[echo_server.port])
    c = gw.client()
    early = b"EARLY-BYTES\r\n\r\nGET / HTTP/1.1\r\n\r\n"
    resp = _connect(c, "127.0.0.1:%d" % echo_server.port, extra=early)
    assert resp.status == 200
    assert c.read_exact(len(early), timeout=3) == early
    assert bytes(echo_server.received[0]) == early


def test_connect_early_http_request_reaches_origin_verbatim(make_gateway, origin):
    gw = make_gateway(connect_ports=[origin.port])
    c = gw.client()
    inner = b"GET /inside HTTP/1.1\r\nHost: inner.example\r\n\r\n"
    resp = _connect(c, origin.authority(), extra=inner)
    assert resp.status == 200
    inner_resp = c.recv_response(timeout=3)
    assert inner_resp.status == 200 and inner_resp.body == HELLO
    (req,) = origin.wait_requests(1)
    assert req.target == "/inside"
    assert req.header("host") == "inner.example"
    assert req.header("via") is None


def test_connect_bidirectional_binary_1mib(make_gateway, echo_server):
    gw = make_gateway(connect_ports=[echo_server.port])
    c = gw.client(timeout=10)
    assert _connect(c, "127.0.0.1:%d" % echo_server.port).status == 200
    data = os.urandom(1 << 20)
    t = threading.Thread(target=c.send, args=(data,))
    t.start()
    got = c.read_exact(len(data), timeout=10)
    t.join()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def test_connect_half_close_propagates(make_gateway, echo_server):
    gw = make_gateway(connect_ports=[echo_server.port])
    c = gw.client()
    assert _connect(c, "127.0.0.1:%d" % echo_server.port).status == 200
    c.send(b"last words")
    c.shutdown_write()
    # the echo server answers, sees EOF and closes; that must reach us
    assert c.read_to_eof(timeout=3) == b"last words"


def test_connect_disallowed_port_403(gateway, origin):
    # the default allows 443 only
    c = gateway.client()
    resp = _connect(c, origin.authority())
    assert_error_response(resp, 403)
    assert origin.connections == []


def test_connect_disallowed_port_with_early_bytes_not_parsed(gateway, origin):
    """Bytes after a refused CONNECT head belong to the (refused) tunnel:
    never parsed as a request."""
    c = gateway.client()
    smuggled = b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (
        origin.url("/smuggled").encode(), origin.authority().encode())
    resp = _connect(c, origin.authority(), extra=smuggled)
    assert_error_response(resp, 403)
    # no second response, and the origin never sees the smuggled request
    extra = c.read_available(0.5)
    assert b"HTTP/1.1" not in extra, extra
    assert origin.connections == []


def test_connect_allowed_port_refused_502(make_gateway, closed_port):
    gw = make_gateway(connect_ports=[closed_port.port])
    c = gw.client()
    resp = _connect(c, "127.0.0.1:%d" % closed_port.port)
    assert_error_response(resp, 502)


def test_connect_unresolvable_502(gateway):
    c = gateway.client()
    resp = _connect(c, "nonexistent.invalid:443")
    assert_error_response(resp, 502)


def test_connect_ipv6_literal(make_gateway, echo_server):
    from harness.origin import EchoServer
    e6 = EchoServer("::1").start()
    try:
        gw = make_gateway(connect_ports=[e6.port])
        c = gw.client()
        assert _connect(c, "[::1]:%d" % e6.port).status == 200
        c.send(b"v6")
        assert c.read_exact(2, timeout=3) == b"v6"
    finally:
        e6.stop()


def test_connect_multiple_ports_config(make_gateway, echo_server, origin):
    gw = make_gateway(connect_ports=[443, echo_server.port, 8443])
    c = gw.client()
    assert _connect(c, "127.0.0.1:%d" % echo_server.port).status == 200
    c2 = gw.client()
    assert_error_response(_connect(c2, origin.authority()), 403)


def test_tunnel_closed_when_target_closes(make_gateway, origin):
    gw = make_gateway(connect_ports=[origin.port])
    c = gw.client()
    assert _connect(c, origin.authority()).status == 200
    c.send(b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n")
    inner = c.recv_response(timeout=3)
    assert inner.status == 200
    assert c.is_closed(3.0)


def test_tunnel_idle_timeout(make_gateway, echo_server):
    import time
    gw = make_gateway(connect_ports=[echo_server.port], tunnel_idle_timeout="500ms")
    c = gw.client()
    assert _connect(c, "127.0.0.1:%d" % echo_server.port).status == 200
    c.send(b"x")
    assert c.read_exact(1, timeout=3) == b"x"
    t0 = time.monotonic()
    assert c.is_closed(4.0), "idle tunnel not closed"
    assert time.monotonic() - t0 < 3
