"""Zero-copy relay: plain CONNECT tunnels go socket to socket through splice(2)
pipes, and everything the user-space relay guaranteed still holds (bytes
exact, half-close, byte counts, idle deadline, kick)."""

import hashlib
import os
import pathlib
import socket
import threading
import time

from harness.ctl_client import ctl_json, stats
from harness.ctl_client import sockdir  # noqa: F401 (fixture)
from harness.ntlm_client import basic, pa
from harness.origin import recv_head
from harness.rawhttp import build_request, get_request
from harness.tools import wait_until

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


# ---------------------------------------------------------------------------
# chunked responses: long chunks' data spliced, the framing still llhttp's


class ChunkOrigin:
    """A keep-alive origin on one connection at a time: for each request
    head it reads, it sends the next response of `replies`, each a list of
    byte pieces sent with a short pause between them (the pieces only shape
    the reads the gateway sees; nothing in a test depends on the timing).
    None as a reply: close the connection instead."""

    def __init__(self, replies, gap=0.02):
        self.replies = list(replies)
        self.gap = gap
        self.heads = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(4)
        self.port = self._sock.getsockname()[1]
        self._t = threading.Thread(target=self._serve, daemon=True)
        self._t.start()

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def _serve(self):
        try:
            s, _ = self._sock.accept()
        except OSError:
            return
        buf = b""
        try:
            while self.replies:
                got = recv_head(s, buf)
                if got is None:
                    return
                head, buf = got
                self.heads.append(head)
                reply = self.replies.pop(0)
                if reply is None:
                    return
                for i, piece in enumerate(reply):
                    if i:
                        time.sleep(self.gap)
                    s.sendall(piece)
        except OSError:
            pass
        finally:
            s.close()

    def stop(self):
        self._sock.close()
        self._t.join(10)


def chunked_reply(chunks, split=(), tail=b"0\r\n\r\n"):
    """A chunked 200 of the given chunks, as pieces: each chunk's size line
    and data, with data pieces cut at the offsets in split (of the whole
    message) so that chunks arrive across several reads."""
    msg = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    for ch in chunks:
        msg += b"%x\r\n" % len(ch) + ch + b"\r\n"
    msg += tail
    cuts = sorted(set([0] + [o for o in split if 0 < o < len(msg)] + [len(msg)]))
    return [msg[a:b] for a, b in zip(cuts, cuts[1:])]


def decode_chunks(raw):
    """Chunked bytes as the client got them: (data of the whole chunks,
    bytes after the last whole chunk, whether the last chunk came)."""
    body, pos = b"", 0
    while True:
        eol = raw.find(b"\r\n", pos)
        if eol < 0:
            return body, raw[pos:], False
        try:
            n = int(raw[pos:eol], 16)
        except ValueError:
            return body, raw[pos:], False
        if n == 0:
            return body, raw[eol + 2:], True
        end = eol + 2 + n
        if len(raw) < end + 2 or raw[end:end + 2] != b"\r\n":
            return body, raw[pos:], False
        body += raw[eol + 2:end]
        pos = end + 2


def _chunk_gw(make_gateway, sockdir):
    gw = make_gateway(status_socket=str(sockdir / "ctl.sock"))
    gw.sock = sockdir / "ctl.sock"
    return gw


def test_chunked_response_long_chunks_spliced_byte_exact(make_gateway, sockdir):
    chunks = [os.urandom(n) for n in (5, 200 * 1024, (1 << 20) + 3, 70000, 1, 300 * 1024)]
    head_len = len(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    # the second chunk's size line cut in the middle ("32" / "000\r\n"), the
    # third chunk's data in three reads
    third = head_len + 5 + 8 + len(b"32000\r\n") + 200 * 1024 + 2
    o = ChunkOrigin([chunked_reply(chunks, split=[head_len + 8 + 2, head_len + 8 + 2 + 2,
                                                  third + 9 + 1000, third + 9 + 500000])])
    try:
        gw = _chunk_gw(make_gateway, sockdir)
        c = gw.client(timeout=20)
        r = c.request(get_request(o.url("/c")))
        assert r.status == 200 and r.chunked, r
        assert r.body == b"".join(chunks)
        st = stats(gw)
        # the 1 MiB and the 300 KiB chunk at least; the 200 KiB one too
        # unless its first read brought most of it
        assert st["spliced_chunks"] >= 2, st
        assert 0 < st["splice_bytes"] <= sum(map(len, chunks)), st
        assert st["bytes_out"] == len(r.raw), st
        (line,) = gw.wait_access_log(1)
        assert " %d " % len(r.raw) in line or '"bytes":%d' % len(r.raw) in line, line
    finally:
        o.stop()


def test_pipelined_request_after_spliced_chunked_response(make_gateway, sockdir):
    big = os.urandom(600 * 1024)
    o = ChunkOrigin([chunked_reply([big]),
                     [b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"]])
    try:
        gw = _chunk_gw(make_gateway, sockdir)
        c = gw.client(timeout=20)
        c.send(get_request(o.url("/one")) + get_request(o.url("/two")))
        r1 = c.recv_response()
        assert r1.status == 200 and r1.body == big
        r2 = c.recv_response()
        assert r2.status == 200 and r2.body == b"second", r2
        assert [h.split(b" ")[1] for h in o.heads] == [b"/one", b"/two"]
        assert stats(gw)["spliced_chunks"] == 1
        assert not c.is_closed(0.2)
    finally:
        o.stop()


def test_bad_chunk_size_after_splice_closes_and_forwards_nothing_of_it(make_gateway, sockdir):
    good = os.urandom(256 * 1024)
    evil = b"zz\r\nGET /smuggled HTTP/1.1\r\nHost: evil\r\n\r\n"
    o = ChunkOrigin([chunked_reply([good], tail=evil)])
    try:
        gw = _chunk_gw(make_gateway, sockdir)
        c = gw.client(timeout=20)
        c.send(get_request(o.url("/bad")))
        head = c.read_head(timeout=10)
        assert head.status == 200
        got = c.read_to_eof(timeout=10)
        # the chunk arrived whole (in pieces we framed: part of it copied,
        # the rest spliced) and then the connection closed: no byte of the
        # bad size line, no last chunk
        body, rest, last = decode_chunks(got)
        assert body == good and rest == b"" and not last, (len(body), rest[:80], last)
        st = stats(gw)
        assert st["spliced_chunks"] == 1, st
    finally:
        o.stop()


def test_upstream_closing_inside_a_spliced_chunk_closes_the_client(make_gateway, sockdir):
    msg = chunked_reply([os.urandom(512 * 1024)])
    cut = b"".join(msg)[:300 * 1024]  # the origin dies inside the chunk's data
    o = ChunkOrigin([[cut], None])
    try:
        gw = _chunk_gw(make_gateway, sockdir)
        c = gw.client(timeout=20)
        c.send(get_request(o.url("/cut")))
        assert c.read_head(timeout=10).status == 200
        got = c.read_to_eof(timeout=10)
        body, rest, last = decode_chunks(got)
        assert not last and len(body) + len(rest) < 512 * 1024, (len(body), len(rest))
    finally:
        o.stop()


def test_shutdown_closes_a_spliced_tunnel_and_exits_clean(make_gateway, echo_server, sockdir):
    """SIGTERM with a spliced tunnel open: the tunnel closes (its pumps'
    handles with it: the loop closes, rc 0, no sanitizer report) and its
    access-log line is written."""
    gw = _gw(make_gateway, echo_server, sockdir)
    c = gw.client()
    _connect(c, "127.0.0.1:%d" % echo_server.port)
    _wait_stat(gw, "spliced_tunnels", lambda v: v == 1)
    c.send(b"ping")
    assert c.read_exact(4, timeout=3) == b"ping"
    assert gw.stop() == 0
    assert c.is_closed(3.0)
    assert any("TCP_TUNNEL" in l for l in gw.access_log), gw.access_log


# ---------------------------------------------------------------------------
# chunked request bodies: long chunks' data spliced client to upstream


class UploadOrigin:
    """A keep-alive origin for chunked uploads, one thread per connection:
    it reads each request head and its chunked body (raw, as the gateway
    framed it), records both, and answers 200 with the body's length; a
    connection's raw bytes and whether it ended are kept per connection."""

    def __init__(self):
        self.raw = []      # per connection: every byte received
        self.ended = []    # per connection: an Event set at EOF (or error)
        self.bodies = []   # decoded bodies of the complete requests
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def _accept(self):
        while True:
            try:
                s, _ = self._sock.accept()
            except OSError:
                return
            self.raw.append(bytearray())
            self.ended.append(threading.Event())
            threading.Thread(target=self._serve, args=(s, len(self.raw) - 1),
                             daemon=True).start()

    def _serve(self, s, i):
        buf = b""
        try:
            while True:
                got = recv_head(s, buf, self.raw[i])
                if got is None:
                    return
                head, buf = got
                while True:
                    body, rest, last = decode_chunks(buf)
                    if last and rest.startswith(b"\r\n"):
                        break
                    d = s.recv(1 << 20)
                    if not d:
                        return
                    self.raw[i] += d
                    buf += d
                buf = rest[2:]
                self.bodies.append(body)
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%d"
                          % (len(str(len(body))), len(body)))
        except OSError:
            pass
        finally:
            s.close()
            self.ended[i].set()

    def stop(self):
        self._sock.close()


def _upload_head(url):
    return (b"POST %s HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
            % (url.encode(), url.split("/")[2].encode()))


def _chunked(chunks, last=True):
    out = b"".join(b"%x\r\n" % len(ch) + ch + b"\r\n" for ch in chunks)
    return out + (b"0\r\n\r\n" if last else b"")


def _send_slowly(c, data, piece=64 * 1024):
    """In pieces with a pause between: each long chunk's size line and first
    bytes arrive in one read, the rest later (what a splice takes over)."""
    for i in range(0, len(data), piece):
        c.send(data[i:i + piece])
        time.sleep(0.005)


def test_chunked_upload_long_chunks_spliced_byte_exact(make_gateway, sockdir):
    chunks = [os.urandom(n) for n in (7, 600 * 1024, 1000, (1 << 20) + 5, 130 * 1024 + 1)]
    o = UploadOrigin()
    try:
        gw = _chunk_gw(make_gateway, sockdir)
        c = gw.client(timeout=20)
        head = _upload_head(o.url("/up"))
        for rnd in range(2):  # twice on one client connection and one pooled upstream
            _send_slowly(c, head + _chunked(chunks))
            r = c.recv_response(timeout=20)
            assert r.status == 200 and r.body == b"%d" % sum(map(len, chunks)), r
            assert o.bodies[rnd] == b"".join(chunks)
        assert len(o.raw) == 1
        st = stats(gw)
        # the 600 KiB and the 1 MiB chunk at least, each time
        assert st["spliced_request_chunks"] >= 4, st
        assert st["bytes_in"] == 2 * (len(head) + len(_chunked(chunks))), st
        assert not c.is_closed(0.2)
    finally:
        o.stop()


def test_bad_size_line_after_spliced_request_chunk_forwards_nothing_of_it(make_gateway,
                                                                         sockdir):
    good = os.urandom(512 * 1024)
    evil = b"zz\r\nGET /smuggled HTTP/1.1\r\nHost: evil\r\n\r\n"
    o = UploadOrigin()
    try:
        gw = _chunk_gw(make_gateway, sockdir)
        c = gw.client(timeout=20)
        _send_slowly(c, _upload_head(o.url("/bad")) + _chunked([good], last=False))
        wait_until(lambda: stats(gw)["spliced_request_chunks"] == 1, 10, "the request pump")
        c.send(evil)
        r = c.recv_response(timeout=10)
        assert r.status == 400, r
        assert c.is_closed(5)
        # the upstream connection is closed, never pooled, and got the
        # chunk (re-framed, whole) but no byte of the bad size line
        assert o.ended[0].wait(10)
        raw = bytes(o.raw[0])
        assert b"smuggled" not in raw and b"zz" not in raw.split(b"\r\n\r\n", 1)[1][-8:]
        body, rest, last = decode_chunks(raw.split(b"\r\n\r\n", 1)[1])
        assert body == good and rest == b"" and not last, (len(body), rest[:40], last)
    finally:
        o.stop()


def test_client_stopping_inside_spliced_request_chunk_closes_upstream(make_gateway, sockdir):
    o = UploadOrigin()
    try:
        gw = _chunk_gw(make_gateway, sockdir)
        c = gw.client(timeout=20)
        whole = _upload_head(o.url("/cut")) + b"%x\r\n" % (1 << 20) + os.urandom(400 * 1024)
        _send_slowly(c, whole)
        wait_until(lambda: stats(gw)["spliced_request_chunks"] == 1, 10, "the request pump")
        c.close()  # inside the chunk's data
        # the origin's connection closes: the cut request never completes, and
        # the upstream never goes back to the pool
        assert o.ended[0].wait(10)
        assert o.bodies == []
        c2 = gw.client(timeout=20)
        _send_slowly(c2, _upload_head(o.url("/next")) + _chunked([b"x" * 10]))
        assert c2.recv_response(timeout=10).status == 200
        assert len(o.raw) == 2  # a new upstream connection
    finally:
        o.stop()
