"""Plain forwarding of absolute-form http:// requests (open proxy)."""

import hashlib
import json

import pytest

from harness.origin import HELLO, STREAM_SHA256, STREAM_SIZE, pattern
from harness.rawhttp import build_request, get_request
from harness.tools import curl


def test_get_with_curl(gateway, origin):
    r = curl(gateway.url, origin.url("/hello"))
    assert r.rc == 0, r
    assert r.status == 200
    assert r.body == HELLO
    (req,) = origin.wait_requests(1)
    assert req.method == "GET"
    assert req.target == "/hello"  # origin-form upstream
    assert req.header("host") == origin.authority()


def test_get_query_string_preserved(gateway, origin):
    r = curl(gateway.url, origin.url("/echo/a/b?x=1&y=%20z"))
    assert r.status == 200, r
    (req,) = origin.wait_requests(1)
    assert req.target == "/echo/a/b?x=1&y=%20z"
    assert json.loads(r.body)["target"] == "/echo/a/b?x=1&y=%20z"


def test_absolute_target_without_path_becomes_slash(gateway, origin):
    c = gateway.client()
    target = "http://%s" % origin.authority()
    resp = c.request(build_request("GET", target, [("Host", origin.authority())]))
    assert resp.status == 200
    (req,) = origin.wait_requests(1)
    assert req.target == "/"


def test_every_method_forwarded(gateway, origin):
    c = gateway.client()
    methods = ["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "PROPFIND"]
    for m in methods:
        body = b"payload" if m in ("POST", "PUT", "PATCH") else b""
        resp = c.request(get_request(origin.url("/echo"), method=m, body=body), method=m)
        assert resp.status == 200, (m, resp)
        assert json.loads(resp.body)["method"] == m
    got = origin.wait_requests(len(methods))
    assert [r.method for r in got] == methods


def test_head_with_curl(gateway, origin):
    r = curl(gateway.url, "-I", origin.url("/head"))
    assert r.rc == 0, r
    assert r.status == 200
    assert r.final.header("content-length") == "5000"
    (req,) = origin.wait_requests(1)
    assert req.method == "HEAD"


def test_post_content_length_body(gateway, origin, tmp_path):
    data = pattern(100000)
    f = tmp_path / "up"
    f.write_bytes(data)
    r = curl(gateway.url, "--data-binary", "@%s" % f, "-H", "Expect:", origin.url("/echo"))
    assert r.status == 200, r
    (req,) = origin.wait_requests(1)
    assert req.method == "POST"
    assert req.body == data
    assert req.header("content-length") == str(len(data))
    assert not req.chunked


def test_post_chunked_body(gateway, origin, tmp_path):
    data = pattern(300000)
    f = tmp_path / "up"
    f.write_bytes(data)
    r = curl(gateway.url, "--data-binary", "@%s" % f, "-H", "Transfer-Encoding: chunked",
             "-H", "Expect:", origin.url("/echo"))
    assert r.status == 200, r
    (req,) = origin.wait_requests(1)
    assert req.body == data
    # the body is streamed: still chunked upstream, no invented Content-Length
    assert req.chunked
    assert req.header("content-length") is None


def test_post_chunked_raw_with_trailer_and_extensions(gateway, origin):
    c = gateway.client()
    body = (b"5;ext=1\r\nhello\r\n"
            b"6\r\n world\r\n"
            b"0\r\nX-Trailer: t\r\n\r\n")
    resp = c.request(build_request("POST", origin.url("/echo"),
                                   [("Host", origin.authority()),
                                    ("Transfer-Encoding", "chunked")], body))
    assert resp.status == 200
    (req,) = origin.wait_requests(1)
    assert req.body == b"hello world"
    # and the connection is usable afterwards
    resp = c.request(get_request(origin.url("/after")))
    assert resp.status == 200 and resp.body == HELLO


def test_post_empty_body(gateway, origin):
    c = gateway.client()
    resp = c.request(build_request("POST", origin.url("/echo"),
                                   [("Host", origin.authority()), ("Content-Length", "0")]))
    assert resp.status == 200
    (req,) = origin.wait_requests(1)
    assert req.body == b""
    assert req.header("content-length") == "0"


def test_download_1mib_intact(gateway, origin):
    r = curl(gateway.url, origin.url("/stream"))
    assert r.rc == 0, r
    assert r.status == 200
    assert len(r.body) == STREAM_SIZE
    assert hashlib.sha256(r.body).hexdigest() == STREAM_SHA256


def test_upload_1mib_intact(gateway, origin, tmp_path):
    f = tmp_path / "big"
    data = pattern(1 << 20)
    f.write_bytes(data)
    r = curl(gateway.url, "-T", str(f), origin.url("/echo"))
    assert r.status == 200, r
    (req,) = origin.wait_requests(1)
    assert req.method == "PUT"
    assert hashlib.sha256(req.body).hexdigest() == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("n", [0, 1, 4000, 100001])
def test_chunked_response_intact(gateway, origin, n):
    c = gateway.client()
    resp = c.request(get_request(origin.url("/chunked/%d" % n)))
    assert resp.status == 200
    assert resp.body == pattern(n)
    # follow-up on the same client connection still works
    resp = c.request(get_request(origin.url("/again")))
    assert resp.status == 200 and resp.body == HELLO


def test_close_delimited_response_intact(gateway, origin):
    r = curl(gateway.url, origin.url("/close-delimited/200000"))
    assert r.rc == 0, r
    assert r.status == 200
    assert r.body == pattern(200000)


def test_close_delimited_response_raw_framing(gateway, origin):
    """The gateway must convey the end of a close-delimited body: re-chunk it
    (connection kept) or close the client connection after it."""
    c = gateway.client()
    resp = c.request(get_request(origin.url("/close-delimited/5000")))
    assert resp.status == 200
    assert resp.body == pattern(5000)
    if not resp.close_delimited:
        # self-delimited to the client: the connection may go on
        resp = c.request(get_request(origin.url("/again")))
        assert resp.status == 200 and resp.body == HELLO


def test_ipv6_origin(gateway, origin):
    r = curl(gateway.url, origin.url("/echo", host="::1"))
    assert r.status == 200, r
    (req,) = origin.wait_requests(1)
    assert req.header("host") == "[::1]:%d" % origin.port
    assert req.peer[0] == "::1"


def test_origin_by_name_localhost(gateway, origin):
    r = curl(gateway.url, "http://localhost:%d/echo" % origin.port)
    assert r.status == 200, r
    (req,) = origin.wait_requests(1)
    assert req.header("host") == "localhost:%d" % origin.port


def test_response_status_and_headers_relayed(gateway, origin):
    c = gateway.client()
    resp = c.request(get_request(origin.url("/status/404")))
    assert resp.status == 404
    assert resp.body == b"status 404\n"
    assert resp.header("server") == "test-origin"
    resp = c.request(get_request(origin.url("/status/500")))
    assert resp.status == 500
    assert resp.body == b"status 500\n"
