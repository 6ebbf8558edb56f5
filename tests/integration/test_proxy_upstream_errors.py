"""Upstream failures become small, self-delimited gateway errors."""

import socket
import threading
import time

import pytest

from harness.origin import HELLO, ScriptedOrigin
from harness.rawhttp import get_request
from harness.tools import assert_error_response, curl


def test_upstream_refused_502(gateway, closed_port):
    r = curl(gateway.url, closed_port.url("/x"))
    assert r.rc == 0, r
    assert r.status == 502


def test_upstream_refused_502_raw_and_connection_usable(gateway, closed_port, origin):
    c = gateway.client()
    resp = c.request(get_request(closed_port.url("/x")), timeout=4)
    assert_error_response(resp, 502)
    if not c.is_closed(0.2):
        resp = c.request(get_request(origin.url("/after")), timeout=4)
        assert resp.status == 200 and resp.body == HELLO


def test_unresolvable_name_502(gateway):
    c = gateway.client()
    t0 = time.monotonic()
    resp = c.request(get_request("http://nonexistent.invalid/x"), timeout=6)
    assert_error_response(resp, 502)
    assert time.monotonic() - t0 < 4


def test_unresolvable_name_502_curl(gateway):
    r = curl(gateway.url, "http://nonexistent.invalid/")
    assert r.status == 502, r


@pytest.mark.gateway_config(upstream_idle_timeout="500ms")
def test_upstream_timeout_504(gateway, origin):
    c = gateway.client()
    t0 = time.monotonic()
    resp = c.request(get_request(origin.url("/slow/4000")), timeout=4)
    elapsed = time.monotonic() - t0
    assert_error_response(resp, 504)
    assert 0.4 <= elapsed < 3, elapsed
    assert len(origin.wait_heads(1)) == 1


@pytest.mark.gateway_config(upstream_idle_timeout="500ms")
def test_upstream_timeout_504_then_connection_usable(gateway, origin):
    c = gateway.client()
    resp = c.request(get_request(origin.url("/slow/4000")), timeout=4)
    assert_error_response(resp, 504)
    if not c.is_closed(0.2):
        resp = c.request(get_request(origin.url("/after")), timeout=4)
        assert resp.status == 200 and resp.body == HELLO
        reqs = {r.target: r.conn_id for r in origin.wait_requests(2)}
        # the timed-out upstream connection is never reused
        assert reqs["/after"] != reqs["/slow/4000"]


@pytest.mark.gateway_config(upstream_idle_timeout="1s")
def test_slow_but_within_timeout_succeeds(gateway, origin):
    c = gateway.client()
    resp = c.request(get_request(origin.url("/slow/300")), timeout=4)
    assert resp.status == 200 and resp.body == b"slow done\n"


def test_upstream_closes_without_response_502(gateway, origin):
    """An origin that accepts and closes without answering."""
    up = ScriptedOrigin().start()
    try:
        c = gateway.client()
        resp = c.request(get_request(up.url("/x")), timeout=4)
        assert_error_response(resp, 502)
    finally:
        up.stop()


def test_upstream_garbage_response_502(gateway):
    up = ScriptedOrigin(b"THIS IS NOT HTTP\r\n\r\n").start()
    try:
        c = gateway.client()
        resp = c.request(get_request(up.url("/x")), timeout=4)
        assert_error_response(resp, 502)
    finally:
        up.stop()


@pytest.mark.gateway_config(upstream_idle_timeout="600ms")
def test_upstream_idle_timeout_is_silence_not_total_time(gateway):
    """upstream_idle_timeout is the origin's silence while a response is
    awaited: a response whose bytes keep coming, a piece every 150 ms for
    about 1.8 s (three times the timeout), arrives whole. The deadline was
    started once and never restarted (uv_timer_again restarts only a
    repeating timer), so every response longer than the timeout was cut
    (a long download: 504 or a truncated body)."""
    pieces = [b"piece-%02d;" % i for i in range(12)]
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    port = lsock.getsockname()[1]

    def serve():
        s, _ = lsock.accept()
        with s:
            s.recv(65536)
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(b"".join(pieces)))
            for p in pieces:
                time.sleep(0.15)
                s.sendall(p)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        c = gateway.client(timeout=10)
        resp = c.request(get_request("http://127.0.0.1:%d/drip" % port), timeout=10)
        assert resp.status == 200 and resp.body == b"".join(pieces), resp
    finally:
        lsock.close()
        t.join(10)
