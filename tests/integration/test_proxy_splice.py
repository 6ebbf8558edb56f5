"""Zero-copy relay: plain CONNECT tunnels go socket to socket through splice(2)
pipes, and everything the user-space relay guaranteed still holds (bytes
exact, half-close, byte counts, idle deadline, kick)."""

import hashlib
import os
import pathlib
import threading
import time

from harness.ctl_client import ctl_json, stats
from harness.ctl_client import sockdir  # noqa: F401 (fixture)
from harness.ntlm_client import basic, pa
from harness.rawhttp import build_request

DEMO_USERS = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "demo-users"


def _connect(c, authority, headers=()):
    head = build_request("CONNECT", authority, [("Host", authority)] + list(headers))
    c.send(head)
    resp = c.recv_response("CONNECT", timeout=3)
    assert resp.status == 200, resp
    return head, resp


def _gw(make_gateway, echo_server, sockdir, **opts):
    gw = make_gateway(connect_ports=[echo_server.port],
                      status_socket=str(sockdir / "ctl.sock"), **opts)
    gw.sock = sockdir / "ctl.sock"
    return gw


def _wait_stat(gw, key, pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        st = stats(gw)
        if pred(st[key]) or time.monotonic() > deadline:
            return st


def test_tunnel_8mib_both_ways_spliced_byte_exact(make_gateway, echo_server, sockdir):
    gw = _gw(make_gateway, echo_server, sockdir)
    c = gw.client(timeout=30)
    head, resp = _connect(c, "127.0.0.1:%d" % echo_server.port)
    st = _wait_stat(gw, "spliced_tunnels", lambda v: v == 1)
    assert st["spliced_tunnels"] == 1, st
    data = os.urandom(8 << 20)
    t = threading.Thread(target=c.send, args=(data,))
    t.start()
    got = c.read_exact(len(data), timeout=30)
    t.join()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert hashlib.sha256(bytes(echo_server.received[0])).digest() == hashlib.sha256(data).digest()
    # The counts stay exact for spliced bytes: both directions, every byte.
    st = _wait_stat(gw, "splice_bytes", lambda v: v >= 2 * len(data))
    assert st["splice_bytes"] == 2 * len(data), st
    assert st["bytes_in"] == len(head) + len(data), st
    assert st["bytes_out"] == len(resp.raw) + len(data), st
    c.shutdown_write()
    assert c.read_to_eof(timeout=5) == b""
    (line,) = gw.wait_access_log(1)
    assert " %d " % (len(resp.raw) + len(data)) in line or \
        '"bytes":%d' % (len(resp.raw) + len(data)) in line, line


def test_tunnel_spliced_half_close_each_way(make_gateway, echo_server, sockdir):
    gw = _gw(make_gateway, echo_server, sockdir)
    c = gw.client()
    _connect(c, "127.0.0.1:%d" % echo_server.port)
    _wait_stat(gw, "spliced_tunnels", lambda v: v == 1)
    c.send(b"last words")
    c.shutdown_write()
    # our EOF reaches the echo server through the pump; its EOF comes back
    assert c.read_to_eof(timeout=5) == b"last words"
    (line,) = gw.wait_access_log(1)  # written when the tunnel closes
    assert "TCP_TUNNEL" in line, line
    assert stats(gw)["spliced_tunnels"] == 1


def test_tunnel_spliced_idle_timeout_fires_and_traffic_defers_it(make_gateway, echo_server,
                                                                sockdir):
    gw = _gw(make_gateway, echo_server, sockdir, tunnel_idle_timeout="600ms")
    c = gw.client()
    _connect(c, "127.0.0.1:%d" % echo_server.port)
    st = _wait_stat(gw, "spliced_tunnels", lambda v: v == 1)
    assert st["spliced_tunnels"] == 1, st
    # Bytes every 200 ms for 1.5 s (well past the 600 ms deadline): each
    # spliced byte restarts it, so the tunnel lives.
    t_end = time.monotonic() + 1.5
    while time.monotonic() < t_end:
        c.send(b"k")
        assert c.read_exact(1, timeout=3) == b"k"
        time.sleep(0.2)
    assert stats(gw)["timeout_tunnel"] == 0
    t0 = time.monotonic()
    assert c.is_closed(4.0), "idle spliced tunnel not closed"
    assert time.monotonic() - t0 < 3
    st = _wait_stat(gw, "timeout_tunnel", lambda v: v == 1)
    assert st["timeout_tunnel"] == 1, st


def test_kick_closes_a_spliced_tunnel(make_gateway, echo_server, sockdir):
    gw = _gw(make_gateway, echo_server, sockdir, auth_schemes="basic", basic_backend="local",
             user_file=str(DEMO_USERS))
    c = gw.client()
    _connect(c, "127.0.0.1:%d" % echo_server.port, [pa(basic("demo", "authgate-demo"))])
    _wait_stat(gw, "spliced_tunnels", lambda v: v == 1)
    c.send(b"ping")
    assert c.read_exact(4, timeout=3) == b"ping"
    rows = ctl_json(gw.sock, "sessions")["sessions"]
    assert len(rows) == 1, rows
    k = ctl_json(gw.sock, "kick", "id=%d" % rows[0]["id"])
    assert k["kicked"] == 1, k
    assert c.is_closed(3.0), "the kicked spliced tunnel is still open"
    gw.wait_log(r"conn=%d event=kicked" % rows[0]["id"])
    (line,) = gw.wait_access_log(1)
    assert "TCP_TUNNEL" in line, line
