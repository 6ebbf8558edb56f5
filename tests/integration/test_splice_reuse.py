"""The body pump's pieces are kept, not made per response: the pipe with the
client connection (while it is left empty), the dup and poll handle of the
client socket with the connection, an upstream socket's with the upstream
(pooled too, closed when the pool closes or evicts it). Bodies stay byte
exact across responses on one client connection and one pooled upstream,
pipelined or not, chunked or not; the counters prove the reuse; and no
descriptor outlives its socket (counted in /proc/PID/fd)."""

import os
import random
import socket
import threading
import time

from harness.ctl_client import sockdir  # noqa: F401 (fixture)
from harness.ctl_client import stats
from harness.origin import SLOW_RCVBUF, read_slowly, recv_head
from harness.rawhttp import get_request
from harness.tools import wait_until

# above AG_SPLICE_MIN (256 KiB) once the first read (64 KiB with the head) is taken
SIZES = (340 * 1024, (1 << 20) + 7, 2 * (1 << 20) - 3, 400 * 1024 + 1, 777777)


def _body(seed, n):
    return random.Random(seed).randbytes(n)


class BodyOrigin:
    """A keep-alive origin on any number of connections (a thread each). For
    GET /<mode>/<seed>/<size> it answers <size> pseudo-random bytes of
    <seed>: mode b with Content-Length; close with Connection: close, then
    closes; drop with Content-Length and no close header, then closes (the
    gateway pools the connection and then hears its end); chunked as one
    chunk; slow sends the head and 100 KiB, waits for `release`, then the
    rest. `conns` counts the connections accepted, `paths` what was asked
    on each."""

    def __init__(self):
        self.conns = 0
        self.paths = []
        self.release = threading.Event()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._open = []
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def _accept(self):
        while True:
            try:
                s, _ = self._sock.accept()
            except OSError:
                return
            self.conns += 1
            self._open.append(s)
            threading.Thread(target=self._serve, args=(s, self.conns), daemon=True).start()

    def _serve(self, s, n):
        buf = b""
        try:
            while True:
                got = recv_head(s, buf)
                if got is None:
                    return
                head, buf = got
                path = head.split(b" ")[1].decode()
                path = path[path.index("/", len("http://")):] if path.startswith("http") else path
                self.paths.append((n, path))
                mode, seed, size = path.strip("/").split("/")
                body = _body(int(seed), int(size))
                if mode == "chunked":
                    s.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                              + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
                    continue
                extra = b"Connection: close\r\n" if mode == "close" else b""
                head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (len(body), extra)
                if mode == "slow":
                    s.sendall(head + body[:100 * 1024])
                    self.release.wait(20)
                    s.sendall(body[100 * 1024:])
                    continue
                s.sendall(head + body)
                if mode in ("close", "drop"):
                    return
        except OSError:
            pass
        finally:
            s.close()

    def stop(self):
        self.release.set()
        self._sock.close()
        for s in self._open:
            try:
                s.close()
            except OSError:
                pass


def _fds(gw):
    return len(os.listdir("/proc/%d/fd" % gw.proc.pid))


def _cpu_s(gw):
    with open("/proc/%d/stat" % gw.proc.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _base(gw):
    """The descriptors of the idle daemon, once the harness's start-up probe
    connection is gone (served by the loop before a ctl answer)."""
    wait_until(lambda: stats(gw)["connections"] == 0, 10, "no client connection")
    return _fds(gw)


def _gw(make_gateway, sockdir, **opts):
    gw = make_gateway(workers=1, status_socket=str(sockdir / "ctl.sock"), log_level="debug",
                      **opts)
    gw.sock = sockdir / "ctl.sock"
    return gw


def _back_to(gw, base, what):
    """Every descriptor the traffic made is gone again (bounded wait: the
    pool's eviction timer and the close callbacks run on the loop)."""
    try:
        wait_until(lambda: _fds(gw) == base, 10, what)
    except AssertionError:
        d = "/proc/%d/fd" % gw.proc.pid
        raise AssertionError("%s: %d descriptors, %d before the traffic: %s\n%s" % (
            what, _fds(gw), base, sorted(os.readlink(os.path.join(d, f)) for f in os.listdir(d)),
            gw.logs_tail(4000)))


def test_large_bodies_on_one_connection_reuse_pipe_and_ends(make_gateway, sockdir):
    """Five bodies of various lengths and one long chunk on one keep-alive
    client connection through one pooled upstream: every byte right, one
    pipe and one pair of ends for all; after the idle release only the
    pooled upstream's dup is left; after the pool's eviction nothing."""
    o = BodyOrigin()
    try:
        gw = _gw(make_gateway, sockdir, upstream_keepalive_timeout="2s")
        base = _base(gw)
        c = gw.client(timeout=20)
        for i, n in enumerate(SIZES):
            r = c.request(get_request(o.url("/b/%d/%d" % (i, n))))
            assert r.status == 200 and r.body == _body(i, n), (i, r)
        r = c.request(get_request(o.url("/chunked/9/%d" % (1 << 20))))
        assert r.status == 200 and r.chunked and r.body == _body(9, 1 << 20), r
        assert o.conns == 1, o.paths
        st = stats(gw)
        k = len(SIZES)
        assert st["spliced_bodies"] == k and st["spliced_chunks"] == 1, st
        # one pipe, one client end, one upstream end, made by the first
        assert st["splice_pipes_reused"] == k, st
        assert st["splice_ends_reused"] == 2 * k, st
        # idle: the pipe and the client's end go back (AG_IDLE_RELEASE_MS);
        # the client socket, the pooled upstream and its kept dup stay
        wait_until(lambda: stats(gw)["idle_released"] >= 1, 10, "the idle release")
        wait_until(lambda: _fds(gw) == base + 3, 10,
                   "client + pooled upstream + its dup: %d, base %d" % (_fds(gw), base))
        c.close()
        wait_until(lambda: stats(gw)["upstream_pool_evicted"] >= 1, 10, "the eviction")
        _back_to(gw, base, "after the eviction")
    finally:
        o.stop()


def test_slow_reader_then_idle_daemon_spins_on_no_poll(make_gateway, sockdir):
    """A body to a client that reads it slowly (a small receive buffer):
    the pump waits on the client's end for room to the last byte. When it
    ends, the kept ends' polls are stopped, so the idle daemon spins on none
    of them (a write poll left armed on the client's dup would fire on every
    loop turn). Measured at once: the idle release closes that end after
    AG_IDLE_RELEASE_MS."""
    o = BodyOrigin()
    try:
        gw = _gw(make_gateway, sockdir)
        n = 8 << 20
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
        s.connect(("127.0.0.1", gw.port))
        with s:
            s.sendall(get_request(o.url("/b/41/%d" % n)))
            head, rest = recv_head(s, b"")
            got = rest + read_slowly(s, n - len(rest))
            cpu0, t0 = _cpu_s(gw), time.monotonic()
            time.sleep(0.4)  # a measuring window, not a wait for anything
            busy = (_cpu_s(gw) - cpu0) / (time.monotonic() - t0)
            assert head.startswith(b"HTTP/1.1 200 ") and got == _body(41, n), len(got)
            assert busy < 0.25, "the idle daemon used %.0f%% of a CPU" % (busy * 100)
            assert stats(gw)["spliced_bodies"] == 1
    finally:
        o.stop()


def test_upstream_closed_between_bodies_closes_its_dup(make_gateway, sockdir):
    """The origin ends its connection after each body, announced
    (Connection: close: never pooled) or not (pooled, then its end heard:
    the pool drops it). Each upstream's dup goes with it: the client's end
    and pipe are reused, the descriptor count comes back to where it was."""
    o = BodyOrigin()
    try:
        gw = _gw(make_gateway, sockdir, upstream_keepalive_timeout="1s")
        base = _base(gw)
        c = gw.client(timeout=20)
        modes = ("close", "drop", "close", "drop", "b")
        for i, mode in enumerate(modes):
            n = SIZES[i]
            r = c.request(get_request(o.url("/%s/%d/%d" % (mode, 100 + i, n))))
            assert r.status == 200 and r.body == _body(100 + i, n), (mode, r)
            if mode == "drop":
                wait_until(lambda: stats(gw)["upstream_pool_closed_idle"] >= (i + 1) // 2, 10,
                           "the pool hearing the origin's close")
        assert o.conns == len(modes), o.paths
        st = stats(gw)
        assert st["spliced_bodies"] == len(modes), st
        assert st["splice_pipes_reused"] == len(modes) - 1, st
        # only the client's end is reused: every upstream was new
        assert st["splice_ends_reused"] == len(modes) - 1, st
        c.close()
        _back_to(gw, base, "after the last upstream's eviction")
    finally:
        o.stop()


def test_upstream_dups_closed_when_pool_closes_them(make_gateway, sockdir):
    """Pooled upstreams that carried spliced bodies, closed by their origin
    while pooled and evicted by the pool's timer: the descriptor count
    comes back to its level before the traffic (a dup kept past its
    upstream would hold the socket, and a descriptor, forever)."""
    o = BodyOrigin()
    try:
        gw = _gw(make_gateway, sockdir, upstream_keepalive_timeout="1s")
        base = _base(gw)
        for i in range(3):
            c = gw.client(timeout=20)
            r = c.request(get_request(o.url("/%s/%d/%d" % ("drop" if i == 1 else "b", i, SIZES[i]))))
            assert r.status == 200 and r.body == _body(i, SIZES[i]), r
            c.close()
        wait_until(lambda: stats(gw)["upstream_pool_closed_idle"] >= 1, 10, "the origin's close")
        wait_until(lambda: stats(gw)["upstream_pool_evicted"] >= 1, 10, "the eviction")
        _back_to(gw, base, "after the pool closed them")
    finally:
        o.stop()


def test_pipelined_large_bodies_byte_exact(make_gateway, sockdir):
    o = BodyOrigin()
    try:
        gw = _gw(make_gateway, sockdir)
        c = gw.client(timeout=20)
        c.send(b"".join(get_request(o.url("/b/%d/%d" % (200 + i, n)))
                        for i, n in enumerate(SIZES[:3])))
        for i, n in enumerate(SIZES[:3]):
            r = c.recv_response(timeout=20)
            assert r.status == 200 and r.body == _body(200 + i, n), (i, r)
        st = stats(gw)
        assert st["spliced_bodies"] == 3 and st["splice_pipes_reused"] == 2, st
        assert not c.is_closed(0.2)
    finally:
        o.stop()


def test_client_gone_mid_body_releases_everything(make_gateway, sockdir):
    """The client leaves while its body is being pumped (the origin holds
    the rest back): the pump stops, the upstream (with its dup) is closed,
    not pooled; the next client's bodies are whole, and the descriptors come
    back."""
    o = BodyOrigin()
    try:
        gw = _gw(make_gateway, sockdir, upstream_keepalive_timeout="1s")
        base = _base(gw)
        c = gw.client(timeout=20)
        c.send(get_request(o.url("/slow/7/%d" % (3 << 20))))
        assert c.read_head(timeout=10).status == 200
        wait_until(lambda: gw.error_log.count("event=splice_start") >= 1, 10, "the pump")
        c.close()
        o.release.set()
        wait_until(lambda: stats(gw)["connections"] == 0, 10, "the close")
        c2 = gw.client(timeout=20)
        for i in range(2):
            r = c2.request(get_request(o.url("/b/%d/%d" % (300 + i, SIZES[i]))))
            assert r.status == 200 and r.body == _body(300 + i, SIZES[i]), r
        assert o.conns == 2, o.paths  # the first upstream was not pooled
        st = stats(gw)
        assert st["spliced_bodies"] == 3 and st["splice_pipes_reused"] == 1, st
        c2.close()
        _back_to(gw, base, "after the eviction")
    finally:
        o.stop()
