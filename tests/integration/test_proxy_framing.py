"""Message framing across the gateway: HEAD, 1xx, 204, 304, Expect:
100-continue. Each case is followed by another request on the same client
connection, which only works when the gateway framed the first one right."""

import json
import time

import pytest

from harness.origin import HEAD_SIZE, HELLO, ScriptedOrigin
from harness.rawhttp import build_request, get_request
from harness.tools import curl


def _follow_up(c, origin):
    resp = c.request(get_request(origin.url("/follow-up")), timeout=3)
    assert resp.status == 200 and resp.body == HELLO, resp


def test_head_content_length_without_body(gateway, origin):
    c = gateway.client()
    resp = c.request(get_request(origin.url("/head"), method="HEAD"), timeout=3)
    assert resp.status == 200
    assert resp.header("content-length") == str(HEAD_SIZE)
    _follow_up(c, origin)
    # nothing between the HEAD response and the follow-up: no stray body bytes
    assert c.buf == b""


def test_head_chunked_without_body(gateway, origin):
    c = gateway.client()
    resp = c.request(get_request(origin.url("/head-chunked"), method="HEAD"), timeout=3)
    assert resp.status == 200
    _follow_up(c, origin)


def test_get_after_head_same_resource(gateway, origin):
    c = gateway.client()
    c.request(get_request(origin.url("/head"), method="HEAD"), timeout=3)
    resp = c.request(get_request(origin.url("/head")), timeout=3)
    assert resp.status == 200 and len(resp.body) == HEAD_SIZE
    reqs = origin.wait_requests(2)
    assert len({r.conn_id for r in reqs}) == 1


def test_204_no_body(gateway, origin):
    c = gateway.client()
    resp = c.request(get_request(origin.url("/status/204")), timeout=3)
    assert resp.status == 204
    assert resp.header("transfer-encoding") is None
    _follow_up(c, origin)


def test_304_with_content_length_has_no_body(gateway, origin):
    c = gateway.client()
    resp = c.request(get_request(origin.url("/status/304"),
                                 [("If-None-Match", '"v1"')]), timeout=3)
    assert resp.status == 304
    assert resp.header("etag") == '"v1"'
    _follow_up(c, origin)
    (req, _) = origin.wait_requests(2)
    assert req.header("if-none-match") == '"v1"'


def test_304_with_curl(gateway, origin):
    r = curl(gateway.url, "-H", 'If-None-Match: "v1"', origin.url("/status/304"))
    assert r.rc == 0, r
    assert r.status == 304


@pytest.mark.parametrize("code", [102, 103])
def test_interim_1xx_then_final(gateway, origin, code):
    c = gateway.client()
    resp = c.request(get_request(origin.url("/info/%d" % code)), timeout=3)
    assert resp.status == 200
    assert resp.body == b"after interim\n"
    # a forwarded interim response is relayed intact (dropping it is allowed too)
    for i in resp.interim:
        assert i.status == code
    _follow_up(c, origin)


def test_expect_100_continue_raw(gateway, origin):
    c = gateway.client()
    body = b"0123456789"
    c.send(build_request("POST", origin.url("/expect"),
                         [("Host", origin.authority()), ("Content-Length", "10"),
                          ("Expect", "100-continue")]))
    interim = c.recv_response(stop_at_interim=True, timeout=3)
    assert interim.status == 100, interim
    c.send(body)
    resp = c.recv_response(timeout=3)
    assert resp.status == 200
    got = json.loads(resp.body)
    assert got["body"] == body.decode()
    (req,) = origin.wait_requests(1)
    assert req.body == body
    _follow_up(c, origin)


def test_expect_100_continue_curl_no_stall(gateway, origin, tmp_path):
    f = tmp_path / "data"
    f.write_bytes(b"x" * 50000)
    t0 = time.monotonic()
    r = curl(gateway.url, "--expect100-timeout", "6", "-H", "Expect: 100-continue",
             "--data-binary", "@%s" % f, origin.url("/expect"))
    elapsed = time.monotonic() - t0
    assert r.status == 200, r
    assert elapsed < 4, "curl waited %.1fs for 100 Continue" % elapsed
    assert [x.status for x in r.responses] == [100, 200]
    (req,) = origin.wait_requests(1)
    assert len(req.body) == 50000


def test_expect_header_not_forwarded_as_garbage(gateway, origin):
    """Whether the gateway forwards Expect or answers 100 itself, the origin
    gets the whole body exactly once."""
    c = gateway.client()
    c.send(build_request("PUT", origin.url("/expect"),
                         [("Host", origin.authority()), ("Content-Length", "5"),
                          ("Expect", "100-continue")]))
    c.recv_response(stop_at_interim=True, timeout=3)
    c.send(b"hello")
    resp = c.recv_response(timeout=3)
    assert resp.status == 200
    (req,) = origin.wait_requests(1)
    assert req.body == b"hello"


def test_response_content_length_preserved(gateway, origin):
    c = gateway.client()
    resp = c.request(get_request(origin.url("/size/12345")), timeout=3)
    assert resp.status == 200
    assert resp.header("content-length") == "12345"
    assert len(resp.body) == 12345
    _follow_up(c, origin)


def test_upstream_chunk_size_over_ceiling_closes(make_gateway):
    """BAD-INPUTS row 7, from the origin: a chunk size no real body has
    (over 2^40) ends the exchange at once; the client connection is closed
    (502 when no head was sent yet), the bogus chunk is never relayed, and
    nobody waits for the upstream idle deadline."""
    gw = make_gateway(upstream_idle_timeout="30s")
    up = ScriptedOrigin(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"7FFFFFFFFFFFFFFF\r\nhello", hold=True).start()
    try:
        c = gw.client()
        c.send(get_request(up.url("/x")))
        t0 = time.monotonic()
        data = c.read_to_eof(timeout=5)
        assert time.monotonic() - t0 < 5
        assert data == b"" or data.startswith((b"HTTP/1.1 200 ", b"HTTP/1.1 502 ")), data
        assert b"hello" not in data and b"7fffffffffffffff" not in data.lower(), data
        gw.wait_log(r"event=upstream_error .*status=502 reason=chunk size over the limit")
    finally:
        up.stop()
