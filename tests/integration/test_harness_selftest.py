"""The harness checks itself without the gateway: the origin answers as the
proxy tests assume, and the raw client frames responses right. If these fail,
the proxy tests' verdicts mean nothing."""

import hashlib
import json

from harness.origin import HEAD_SIZE, HELLO, STREAM_SHA256, pattern
from harness.rawhttp import RawClient, build_request
from harness.tools import curl


def _direct(origin, host="127.0.0.1"):
    return RawClient(host, origin.port, timeout=5)


def _get(path, method="GET", headers=(), body=b""):
    h = [("Host", "x")] + list(headers)
    if body:
        h.append(("Content-Length", str(len(body))))
    return build_request(method, path, h, body)


def test_origin_keepalive_and_recording(origin):
    with _direct(origin) as c:
        assert c.request(_get("/a")).body == HELLO
        r = c.request(_get("/echo?z", "POST", body=b"abc"))
        j = json.loads(r.body)
        assert j["target"] == "/echo?z" and j["body"] == "abc" and j["method"] == "POST"
    reqs = origin.wait_requests(2)
    assert reqs[0].conn_id == reqs[1].conn_id
    assert reqs[1].body == b"abc"


def test_origin_ipv6_same_port(origin):
    with _direct(origin, "::1") as c:
        assert c.request(_get("/v6")).status == 200
    assert origin.requests[0].peer[0] == "::1"


def test_origin_framings(origin):
    with _direct(origin) as c:
        r = c.request(_get("/chunked/10000"))
        assert r.chunked and r.body == pattern(10000)
        assert r.trailers == [("X-Trailer-Check", "done")]
        r = c.request(_get("/head", "HEAD"))
        assert r.header("content-length") == str(HEAD_SIZE) and r.body == b""
        r = c.request(_get("/status/304"))
        assert r.status == 304 and r.body == b""
        r = c.request(_get("/status/204"))
        assert r.status == 204
        r = c.request(_get("/info/103"))
        assert [i.status for i in r.interim] == [103] and r.body == b"after interim\n"
        r = c.request(_get("/stream"))
        assert hashlib.sha256(r.body).hexdigest() == STREAM_SHA256
        r = c.request(_get("/close-delimited/3000"))
        assert r.close_delimited and r.body == pattern(3000)
        assert c.is_closed(1)


def test_origin_expect_100(origin):
    with _direct(origin) as c:
        c.send(build_request("POST", "/expect", [("Host", "x"), ("Content-Length", "3"),
                                                 ("Expect", "100-continue")]))
        assert c.recv_response(stop_at_interim=True).status == 100
        c.send(b"xyz")
        assert json.loads(c.recv_response().body)["sent_100"] is True


def test_tls_origin_with_curl(tls_origin):
    r = curl(None, "-k", tls_origin.url("/echo", host="127.0.0.1"))
    assert r.status == 200, r
    assert tls_origin.requests[0].tls


def test_echo_server(echo_server):
    with RawClient("127.0.0.1", echo_server.port) as c:
        c.send(b"hello")
        assert c.read_exact(5) == b"hello"


def test_closed_port_refuses(closed_port):
    import socket
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", closed_port.port))
        raise AssertionError("closed port accepted")
    except ConnectionRefusedError:
        pass
    finally:
        s.close()
