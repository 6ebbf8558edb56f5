"""Faults injected into a running gateway (issue 14), each with the behaviour
README ("Faults and what the gateway does") documents:

  winbindd killed / stopped (SIGSTOP) and restarted under load, keytab
  rekeyed (new kvno) and reloaded, KDC unreachable, origin resetting
  mid-response, DNS never answering, descriptors exhausted, the log disk
  full, the wall clock stepping an hour back and forward.

The winbind and Kerberos ones run on the whole stack (tests/tools/agstack.py:
the peers/ KDC and winbindd, the harness origin, one gateway with Negotiate,
NTLM and Basic) with load from client threads; the others on a plain gateway
(make_gateway). Conditions are waited for with deadlines, never slept on.
"""

import calendar
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from harness.ctl_client import sockdir, stats  # noqa: F401 (sockdir: a fixture)
from harness.ntlm_client import authenticate_msg, b64, negotiate_msg, ntlm_pa, pa
from harness.procs import threads_waiting_on_socket
from harness.rawhttp import RawClient, get_request
from harness.tools import assert_error_response, wait_until
from peers._util import can_unshare_mount
from peers.fixtures import _need_winbind
from peers.winbind import asan_runtime

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tools"))

import agstack  # noqa: E402

gssapi = pytest.importorskip("gssapi")


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def stack(tmp_path, request):
    """The whole stack, fresh per test (these tests kill its peers); the
    client side of Kerberos is alice's ccache in os.environ."""
    _need_winbind()
    for p in ("krb5kdc", "kdb5_util", "kadmin.local", "kinit"):
        if not shutil.which(p):
            pytest.fail("missing %s: see /work/shared/testenv/NOTES.md" % p)
    m = request.node.get_closest_marker("gateway_config")
    st = agstack.Stack(tmp_path / "stack", gateway_options=m.kwargs if m else None)
    saved = dict(os.environ)
    with st:
        os.environ.update(st.kdc.client_env("alice"))
        try:
            yield st
        finally:
            os.environ.clear()
            os.environ.update(saved)


def ntlm_status(st, user="alice", timeout=15):
    """One NTLM handshake on a fresh connection: (status, Retry-After) of the
    answer to the AUTHENTICATE message."""
    with RawClient(st.gw.host, st.gw.port, timeout=timeout) as c:
        url = st.origin.url("/echo")
        t1 = negotiate_msg()
        r1 = c.request(get_request(url, [ntlm_pa(t1)]))
        from harness.ntlm_client import challenge_from
        chal = challenge_from(r1)
        t3 = authenticate_msg(chal, user, st.users[user], "", negotiate=t1)
        r = c.request(get_request(url, [ntlm_pa(t3)]))
        return r.status, r.header("retry-after")


class Load:
    """Client threads running fn(st) in a loop; each result (status or
    exception name) is kept with its time."""

    def __init__(self, st, fn, threads=2):
        self.results = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.ts = [threading.Thread(target=self._run, args=(st, fn), daemon=True)
                   for _ in range(threads)]
        for t in self.ts:
            t.start()

    def _run(self, st, fn):
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                res = fn(st)
            except Exception as e:  # noqa: BLE001 - recorded, judged by the test
                res = type(e).__name__
            with self.lock:
                self.results.append((t0, time.monotonic(), res))

    def since(self, t):
        with self.lock:
            return [r for s, _, r in self.results if s >= t]

    def between(self, t0, t1):
        with self.lock:
            return [r for s, e, r in self.results if s >= t0 and e <= t1]

    def finish(self):
        self.stop.set()
        for t in self.ts:
            t.join(60)


def negotiate_ok(st):
    agstack.op_negotiate(st)
    return 200


def winbind_and_kerberos_load(st, ntlm_threads, ntlm_timeout=15):
    """NTLM load (through winbindd) and one Negotiate client, once NTLM
    answers 200 steadily."""
    ntlm = Load(st, lambda s: ntlm_status(s, timeout=ntlm_timeout), threads=ntlm_threads)
    neg = Load(st, negotiate_ok, threads=1)
    try:
        wait_results(ntlm, time.monotonic(), lambda rs: rs.count((200, None)) >= 5,
                     "NTLM load running")
    except BaseException:
        ntlm.finish()
        neg.finish()
        raise
    return ntlm, neg


def wait_results(load, t, pred, what, timeout=30):
    """Waits until pred(results started since t); returns those results."""
    wait_until(lambda: pred(load.since(t)), timeout, what, interval=0.05)
    return load.since(t)


# --------------------------------------------------------------------------- winbindd


@pytest.mark.needs_winbind
@pytest.mark.needs_kdc
def test_winbindd_killed_and_restarted_under_load(stack):
    """winbindd killed under NTLM and Negotiate load: NTLM gets 503 with
    Retry-After while it is down, Negotiate keeps answering 200 (its own
    pool), and NTLM recovers once winbindd is back, with the same gateway
    process."""
    st = stack
    pid = st.gw.proc.pid
    ntlm, neg = winbind_and_kerberos_load(st, 2)
    try:
        st.wb.stop()
        t_down = time.monotonic()
        rs = wait_results(ntlm, t_down + 0.5, lambda rs: len(rs) >= 5, "NTLM answers while down")
        assert all(s == 503 and ra and ra.isdigit() for s, ra in rs), rs
        st.wb.start()
        t_up = time.monotonic()
        wait_results(ntlm, t_up, lambda rs: rs.count((200, None)) >= 5,
                     "NTLM recovering after winbindd restarted", timeout=40)
        negs = neg.between(t_down, t_up)
    finally:
        ntlm.finish()
        neg.finish()
    assert negs and set(negs) == {200}, negs
    assert st.gw.proc.pid == pid and st.gw.alive()
    assert "event=auth_backend_error" in st.gw.error_log


@pytest.mark.needs_winbind
@pytest.mark.needs_kdc
@pytest.mark.gateway_config(handshake_timeout="2s")
def test_winbindd_stopped_under_load(stack):
    """winbindd stopped (SIGSTOP) under load: every NTLM handshake ends in a
    503 with Retry-After at handshake_timeout (no client waits longer), the
    winbind pool's threads stay blocked but no other pool does: Negotiate
    answers 200 throughout; after SIGCONT NTLM recovers."""
    st = stack
    ntlm, neg = winbind_and_kerberos_load(st, 3, ntlm_timeout=20)
    try:
        st.wb.pause()
        t_stop = time.monotonic()
        wait_until(lambda: threads_waiting_on_socket(st.gw.proc.pid), 10,
                   "winbind workers blocked on the stopped winbindd")
        rs = wait_results(ntlm, t_stop + 0.2, lambda rs: len(rs) >= 3,
                          "NTLM answers while winbindd is stopped", timeout=20)
        with ntlm.lock:
            took = [e - s for s, e, r in ntlm.results if s >= t_stop + 0.2]
        negs = neg.between(t_stop, time.monotonic())
        st.wb.resume()
        t_up = time.monotonic()
        wait_results(ntlm, t_up, lambda rs: rs.count((200, None)) >= 5,
                     "NTLM recovering after SIGCONT", timeout=40)
    finally:
        st.wb.resume()
        ntlm.finish()
        neg.finish()
    assert all(s == 503 and ra for s, ra in rs), rs
    assert max(took) < 2 + 2.5, took  # handshake_timeout plus scheduling slack
    assert len(negs) >= 3 and set(negs) == {200}, negs
    assert "event=auth_backend_timeout" in st.gw.error_log


# --------------------------------------------------------------------------- Kerberos


def token_with(env):
    """A SPNEGO token from the ccache of env (a Kdc.client_env)."""
    saved = dict(os.environ)
    try:
        os.environ.update(env)
        return agstack.negotiate_token()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def negotiate_status(st, token):
    with RawClient(st.gw.host, st.gw.port) as c:
        r = c.request(get_request(st.origin.url("/echo"), [pa("Negotiate " + b64(token))]))
        return r.status


def service_kvno(st, env):
    p = subprocess.run(["klist"], env=env, capture_output=True, text=True)
    assert "HTTP/localhost" in p.stdout, p.stdout
    out = subprocess.run(["klist", "-k", st.kdc.keytab], env=env, capture_output=True,
                         text=True).stdout
    return sorted({int(l.split()[0]) for l in out.splitlines()
                   if "HTTP/localhost" in l and l.split()[0].isdigit()})


@pytest.mark.needs_winbind
@pytest.mark.needs_kdc
def test_keytab_rekeyed_and_reloaded(stack):
    """The service key changes (kvno k+1 added to the keytab, as `ktadd`
    after a password change does) and the gateway reloads: a ticket issued
    before (kvno k) is still accepted while kvno k is in the keytab, a new
    one (kvno k+1) too; once kvno k is removed, only the new one is."""
    st = stack
    old = st.kdc.client_env("alice", services=[st.kdc.service])
    assert negotiate_status(st, token_with(old)) == 200
    (k,) = service_kvno(st, old)
    st.kdc.rekey(st.kdc.service, keytab=st.kdc.keytab)
    assert service_kvno(st, old) == [k, k + 1]
    st.gw.reload()
    new = st.kdc.client_env("bob", services=[st.kdc.service])
    assert negotiate_status(st, token_with(old)) == 200
    assert negotiate_status(st, token_with(new)) == 200
    st.kdc.kadmin("ktremove -k %s %s old" % (st.kdc.keytab, st.kdc.service_principal))
    assert service_kvno(st, old) == [k + 1]
    st.gw.reload()
    assert negotiate_status(st, token_with(old)) == 407
    assert negotiate_status(st, token_with(new)) == 200


@pytest.mark.needs_winbind
@pytest.mark.needs_kdc
def test_kdc_unreachable(stack):
    """The KDC stops: acceptance needs only the keytab, so clients holding a
    service ticket keep logging in, across a reload too."""
    st = stack
    env = st.kdc.client_env("alice", services=[st.kdc.service])
    assert negotiate_status(st, token_with(env)) == 200
    st.kdc.stop()
    wait_until(lambda: not st.kdc.running(), 10, "the KDC to stop")
    for _ in range(3):
        assert negotiate_status(st, token_with(env)) == 200
    st.gw.reload()
    assert negotiate_status(st, token_with(env)) == 200


# --------------------------------------------------------------------------- origin and DNS


def test_origin_resets_mid_response(make_gateway, origin, sockdir):
    """The origin resets after half the announced body: the client gets what
    arrived and then the connection closes (never a complete-looking
    response, never reuse), one upstream_error line, and the next request
    is served."""
    gw = make_gateway(status_socket=str(sockdir / "ctl.sock"))
    before = stats(gw)["upstream_errors"]
    c = gw.client()
    c.send(get_request(origin.url("/reset/50000")))
    head = c.read_head()
    assert head.status == 200 and head.header("content-length") == "100000"
    got = b""
    while True:
        try:
            b = c.sock.recv(65536)
        except ConnectionResetError:
            break
        if not b:
            break
        got += b
    assert len(got) < 100000
    gw.wait_log(r"event=upstream_error host=127\.0\.0\.1 .*reason=upstream closed")
    assert stats(gw)["upstream_errors"] == before + 1
    r = gw.client().request(get_request(origin.url("/echo")))
    assert r.status == 200


def test_origin_reset_keeps_earlier_pipelined_response(make_gateway, origin, sockdir):
    """Found by the chaos client: a client pipelines a 1 MiB download and a
    request whose origin resets mid-response, and sends a third request
    while the first is still in flight. The gateway must close the
    connection (the second response cannot be finished), but closing a
    socket with unread input makes the kernel send a reset that discards
    the 1 MiB still queued for the client. The lingering close (FIN after
    the queued bytes, input dropped until the client's EOF) delivers it."""
    gw = make_gateway(status_socket=str(sockdir / "ctl.sock"))
    for i in range(5):
        c = gw.client(timeout=10)
        c.send(get_request(origin.url("/size/1048576")) + get_request(origin.url("/reset/100")))
        gw.wait_log(r"conn=%d req=\d+ event=upstream_error" % (i + 1))
        c.send(get_request(origin.url("/echo/third")), tolerant=True)
        time.sleep(0.3)  # the gateway closes meanwhile: the bug needs that order
        r = c.recv_response()
        assert r.status == 200 and len(r.body) == 1048576
        head = c.read_head()
        assert head.status == 200 and head.header("content-length") == "200"
        c.read_exact(100)  # what the origin sent before its reset, then the end
        assert c.is_closed(5.0)
        c.close()
    assert not any(q.target == "/echo/third" for q in origin.all_requests)


def test_lingering_close_is_bounded(make_gateway, origin, sockdir):
    """A client that keeps sending after a reply that ends its connection
    (400 to a malformed head) gets our FIN at once and is cut off after
    AG_LINGER_TIMEOUT_MS (2 s) of lingering; timeout_linger counts it. One
    that closes is let go at once."""
    gw = make_gateway(status_socket=str(sockdir / "ctl.sock"))
    c = gw.client(timeout=10)
    c.send(b"GET http://x/ HTTP/1.1\r\nBad Header\r\n\r\n")
    r = c.recv_response()
    assert r.status == 400
    t0 = time.monotonic()
    assert c.read_to_eof(5) == b""  # our FIN came with the reply
    cut = False
    while time.monotonic() - t0 < 6:
        try:
            c.sock.sendall(b"x" * 100)
        except (BrokenPipeError, ConnectionResetError):
            cut = True
            break
        time.sleep(0.05)
    took = time.monotonic() - t0
    assert cut and 1.5 < took < 4.0, (cut, took)
    assert stats(gw)["timeout_linger"] == 1
    c2 = gw.client()
    c2.send(b"GET http://x/ HTTP/1.1\r\nBad Header\r\n\r\n")
    assert c2.recv_response().status == 400
    c2.close()
    wait_until(lambda: stats(gw)["connections"] == 0, 1.0, "a closed client let go at once")
    assert stats(gw)["timeout_linger"] == 1


@pytest.fixture
def silent_resolver(tmp_path):
    """A private resolv.conf naming a UDP socket that never answers, for a
    gateway started in its own mount namespace (resolv.conf bind-mounted)."""
    if not can_unshare_mount():
        pytest.skip("a private resolv.conf needs a mount namespace (root, CAP_SYS_ADMIN)")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.77.0.1", 53))  # glibc's resolver talks to port 53 only
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.77.0.1\noptions timeout:4 attempts:1\n")
    prefix = ["unshare", "-m", "--propagation", "private", "--", "/bin/sh", "-c",
              'mount --bind "$0" /etc/resolv.conf || exit 125; exec "$@"', str(conf)]
    yield s, prefix
    s.close()


def test_dns_never_answers(make_gateway, origin, silent_resolver, sockdir):
    """Name resolution hangs (the resolver never answers): each request for
    a name gets 504 at dns_timeout, more of them than libuv has threads
    too; numeric targets are served meanwhile; SIGTERM still exits 0 (once
    the resolver's own timeout freed its threads)."""
    sock, prefix = silent_resolver
    gw = make_gateway(start=False, dns_timeout="1s", threadpool_size=2,
                      status_socket=str(sockdir / "ctl.sock"))
    gw.start(prefix=prefix)
    t0 = time.monotonic()
    cs = []
    for i in range(4):
        c = gw.client(timeout=10)
        c.send(get_request("http://nowhere%d.authgate.test/" % i))
        cs.append(c)
    r = gw.client().request(get_request(origin.url("/echo")))
    assert r.status == 200
    assert time.monotonic() - t0 < 1.0, "a numeric target waited on the resolver"
    for c in cs:
        assert_error_response(c.recv_response(), 504)
    took = time.monotonic() - t0
    assert 0.9 < took < 3.0, took
    sock.settimeout(5)
    assert b"nowhere" in sock.recvfrom(2048)[0]  # the query did reach the silent resolver
    gw.wait_log(r"event=upstream_error host=nowhere3\.authgate\.test status=504 "
                r"reason=name resolution timeout")
    assert stats(gw)["timeout_dns"] >= 4


# --------------------------------------------------------------------------- descriptors


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def test_fd_limit_64_serves_and_recovers(make_gateway, origin, sockdir):
    """Started under `ulimit -n 64`: the accept gate keeps half the limit
    free, so some clients are served (the fixed reserve of 64 served none);
    the next waits in the listen backlog (limit_accept_paused counts it),
    the ones already in are served, and the waiting one is served as soon
    as one of them leaves."""
    gw = make_gateway(start=False, upstream_idle_timeout="30s",
                      status_socket=str(sockdir / "ctl.sock"))
    gw.start(prefix=["prlimit", "--nofile=64:64", "--"])
    served = []
    waiting = None
    for i in range(40):
        c = gw.client(timeout=1.5)
        c.send(get_request(origin.url("/echo/c%d" % i)))
        try:
            assert c.recv_response().status == 200
        except AssertionError:
            waiting = c
            break
        served.append(c)
    assert len(served) >= 10, "only %d clients under a limit of 64" % len(served)
    assert waiting is not None, "40 clients under a limit of 64"
    assert fds(gw.proc.pid) < 64
    assert stats(gw)["limit_accept_paused"] >= 1
    for i, c in enumerate(served[:3]):
        assert c.request(get_request(origin.url("/echo/again%d" % i))).status == 200
    served.pop().close()
    r = waiting.recv_response(timeout=5)
    assert r.status == 200


def test_fd_limit_lowered_at_runtime(make_gateway, origin, sockdir):
    """The soft limit lowered under a running daemon (prlimit) to just what
    it holds: new clients are closed at once without a byte (libuv's EMFILE
    handling; never a hang or a crash), the connected ones are still served
    (their upstream connections are pooled), and closing them lets new
    clients in again."""
    # One loop: libuv answers EMFILE per loop by closing a reserve descriptor
    # to accept and drop the client; with two loops, the other loop may take
    # that descriptor for a real client in between, which then gets a clean
    # 502 (no descriptor left for its upstream) instead of a close.
    gw = make_gateway(upstream_idle_timeout="10s", idle_timeout="60s", workers="1",
                      status_socket=str(sockdir / "ctl.sock"))
    pid = gw.proc.pid
    base = fds(pid)
    held = []
    for i in range(10):
        c = gw.client()
        assert c.request(get_request(origin.url("/echo/h%d" % i))).status == 200
        held.append(c)
    hard = subprocess.run(["prlimit", "--pid", str(pid), "--nofile", "-o", "HARD",
                           "--noheadings"], capture_output=True, text=True).stdout.strip()
    subprocess.run(["prlimit", "--pid", str(pid), "--nofile=%d:%s" % (fds(pid), hard)],
                   check=True)
    refused = 0
    for i in range(5):
        c = gw.client(timeout=3)
        c.send(get_request(origin.url("/echo/new%d" % i)), tolerant=True)
        if c.is_closed(3.0):
            refused += 1
        c.close()
    assert refused == 5
    for i, c in enumerate(held[:5]):
        assert c.request(get_request(origin.url("/echo/old%d" % i))).status == 200
    for c in held:
        c.close()
    wait_until(lambda: stats(gw)["connections"] == 0, 5, "the held connections to close")
    wait_until(lambda: fds(pid) <= base, 20, "pooled upstream connections to expire")
    r = gw.client().request(get_request(origin.url("/echo/after")))
    assert r.status == 200
    assert gw.alive()


# --------------------------------------------------------------------------- logs


def test_log_disk_full(make_gateway, origin, sockdir):
    """Both logs on /dev/full (every write fails with ENOSPC): traffic
    continues, stderr says so once per log (not once per line, also
    across a reopen on SIGHUP), log_write_failures counts the lost lines."""
    gw = make_gateway(error_log="/dev/full", access_log="/dev/full",
                      status_socket=str(sockdir / "ctl.sock"))
    for i in range(5):
        assert gw.client().request(get_request(origin.url("/echo/%d" % i))).status == 200
    gw.reload()
    for i in range(5):
        assert gw.client().request(get_request(origin.url("/echo/b%d" % i))).status == 200
    n = stats(gw)["log_write_failures"]
    assert n >= 10, n
    err = gw.stderr
    assert err.count("event=log_write_failed log=error") == 1, err
    assert err.count("event=log_write_failed log=access") == 1, err
    assert 'error="No space left on device"' in err


def test_log_disk_full_then_freed(make_gateway, origin, tmp_path, sockdir):
    """The logs on a small tmpfs filled up, then space freed: one warning on
    stderr while full, then the error log says how many lines were lost."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    d = tmp_path / "logfs"
    d.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        gw = make_gateway(error_log=str(d / "error.log"), access_log=str(d / "access.log"),
                          status_socket=str(sockdir / "ctl.sock"))
        filler = d / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"x" * 512):
                pass
        except OSError:
            pass  # ENOSPC: the disk is full
        finally:
            os.close(fd)
        for i in range(20):
            assert gw.client().request(get_request(origin.url("/echo/%d" % i))).status == 200
        wait_until(lambda: "log_write_failed log=access" in gw.stderr, 5, "the warning")
        filler.unlink()
        for i in range(3):
            assert gw.client().request(get_request(origin.url("/echo/x%d" % i))).status == 200
        text = (d / "error.log").read_text()
        assert "event=log_write_resumed" in text, text[-2000:]
        assert gw.stderr.count("event=log_write_failed log=access") == 1
        gw.stop()
    finally:
        subprocess.run(["umount", "-l", str(d)])


# --------------------------------------------------------------------------- the clock

FAKETIME_DIRS = ("/usr/lib/x86_64-linux-gnu/faketime", "/usr/lib/aarch64-linux-gnu/faketime")


def faketime_lib():
    for d in FAKETIME_DIRS:
        p = os.path.join(d, "libfaketimeMT.so.1")
        if os.path.exists(p):
            return p
    pytest.skip("libfaketime not installed (apt-get install libfaketime)")


@pytest.mark.parametrize("step", ["+3600", "-3600"])
def test_wall_clock_steps_an_hour(make_gateway, origin, tmp_path, step):
    """The wall clock steps an hour (libfaketime, offset read from a file
    at every call; CLOCK_MONOTONIC left real, as an NTP step leaves it):
    identity_max_age and every deadline run on libuv's monotonic clock, so
    an authenticated NTLM connection keeps its identity across the step and
    loses it after identity_max_age of real time, not earlier or later;
    the log timestamps follow the wall clock."""
    from harness.auth import USERS, write_user_file
    from harness.ntlm_client import ntlm_legs
    lib = faketime_lib()
    users = write_user_file(tmp_path / "users", USERS)
    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    gw = make_gateway(start=False, auth_schemes="ntlm", ntlm_backend="local",
                      user_file=str(users), identity_header="X-Authenticated-User",
                      identity_max_age="3s", idle_timeout="60s")
    pre = [p for p in (asan_runtime(gw.binary), lib) if p]
    gw.env = dict(gw.env, LD_PRELOAD=" ".join(pre), FAKETIME_TIMESTAMP_FILE=str(offset),
                  FAKETIME_NO_CACHE="1", FAKETIME_DONT_FAKE_MONOTONIC="1")
    gw.start()
    c = gw.client()
    r, _, _ = ntlm_legs(c, origin.url("/echo"), "alice", USERS["alice"])
    assert r.status == 200
    t_auth = time.monotonic()
    offset.write_text(step + "\n")
    r = c.request(get_request(origin.url("/echo/after-step")))
    assert r.status == 200, "the identity was dropped by a wall-clock step"
    r, _, _ = ntlm_legs(gw.client(), origin.url("/echo/other"), "bob", USERS["bob"])
    assert r.status == 200  # a log line written after the step
    line = gw.wait_log(r"\n(\S+) level=info conn=2 event=auth_ok").group(1)
    logged = calendar.timegm(time.strptime(line[:19], "%Y-%m-%dT%H:%M:%S"))
    assert abs(logged - (time.time() + int(step))) < 60, (line, step)
    wait_until(lambda: time.monotonic() - t_auth > 3.3, 10, "identity_max_age to pass")
    r = c.request(get_request(origin.url("/echo/expired")))
    assert r.status == 407, "identity kept past identity_max_age after a clock step"
    assert gw.alive()
