"""workers N (issue 12): several event loops in one process, each with its own
SO_REUSEPORT listener, its own connections and their auth sessions.

The kernel spreads new connections over the loops by a hash of the 4-tuple,
so a test that needs both loops opens connections until `authgatectl
sessions` shows one on each (bounded). Everything here runs at `workers 2`
(the rest of the suite at the daemon's default, auto; AG_TEST_WORKERS=1 runs
it all on one loop)."""

import os
import select
import signal
import subprocess
import threading
import time

import pytest

from harness.ctl_client import ctl, ctl_json
from harness.ctl_client import sockdir  # noqa: F401 (fixtures)
from harness.gateway import sanitizer_env
from harness.ntlm_client import ntlm_legs
from harness.rawhttp import build_request, get_request
from harness.tools import wait_until
from test_ctl import USER, PASSWORD, basic_client, basic_header, ctl_gateway, wait_sessions

TRIES = 64  # connections opened at most to land one on each loop (2^-63 to miss)


def two_loops(make_gateway, sockdir, **opts):  # noqa: F811
    gw = ctl_gateway(make_gateway, sockdir, workers="2", **opts)
    assert ctl_json(gw.sock, "status")["workers"] == 2
    return gw


def basic_on_both(gw, origin):
    """Basic keep-alive clients until both loops hold one; returns them all."""
    clients, seen = [], set()
    for i in range(TRIES):
        clients.append(basic_client(gw, origin, "/both/%d" % i))
        rows = wait_sessions(gw.sock, lambda rs: len(rs) == len(clients))
        seen = {r["worker"] for r in rows}
        if seen == {0, 1}:
            return clients
    raise AssertionError("every connection landed on one loop: %r" % seen)


def test_clients_on_both_loops_one_view_and_kick(make_gateway, sockdir, origin):  # noqa: F811
    """Two loops, one daemon: sessions lists both loops' connections with
    their worker, status and stats count them together, kick user= closes
    them on both loops."""
    gw = two_loops(make_gateway, sockdir)
    clients = basic_on_both(gw, origin)
    n = len(clients)
    st = ctl_json(gw.sock, "status")
    assert st["connections"] == n and st["authenticated"] == n, st
    per = st["workers_detail"]
    assert [w["worker"] for w in per] == [0, 1], st
    assert sum(w["worker_connections"] for w in per) == n, st
    assert all(w["worker_connections"] >= 1 and w["worker_accepted"] >= 1 for w in per), st
    s = ctl_json(gw.sock, "stats")
    assert s["requests"] == n and s["auth_basic_succeeded"] == n, s
    assert s["connections"] == n and s["conns_accepted"] == n, s
    ids = [r["id"] for r in ctl_json(gw.sock, "sessions")["sessions"]]
    assert len(set(ids)) == n, ids  # ids unique over both loops
    rc, out, _ = ctl(gw.sock, "kick", "user=%s" % USER)
    assert rc == 0, out
    assert len(ctl_json(gw.sock, "sessions")["sessions"]) == 0
    for c in clients:
        assert c.is_closed(timeout=5)
    wait_until(lambda: ctl_json(gw.sock, "status")["connections"] == 0, 5, "kicked conns gone")
    assert gw.error_log.count("event=kicked") == n


def test_ntlm_and_basic_on_both_loops(make_gateway, sockdir, origin):  # noqa: F811
    """NTLM's two round trips stay on the loop of their connection (the
    CHALLENGE lives in that loop's session row): handshakes succeed on both
    loops; the verification pool returns each job to the loop that sent it."""
    gw = two_loops(make_gateway, sockdir)
    clients, seen = [], set()
    for i in range(TRIES):
        c = gw.client(timeout=10)
        r, _, _ = ntlm_legs(c, origin.url("/ntlm/%d" % i), USER, PASSWORD)
        assert r.status == 200, r
        clients.append(c)
        rows = wait_sessions(gw.sock, lambda rs: len(rs) == len(clients), scheme="ntlm")
        seen = {r["worker"] for r in rows if r["state"] == "authenticated"}
        if seen == {0, 1}:
            break
    assert seen == {0, 1}, seen
    # a second request on each keeps its identity, whatever its loop
    for i, c in enumerate(clients):
        assert c.request(get_request(origin.url("/again/%d" % i))).status == 200
    s = ctl_json(gw.sock, "stats")
    assert s["auth_ntlm_succeeded"] == len(clients) and s["jobs_in_flight"] == 0, s
    assert s["jobs_completed_local"] == len(clients), s


@pytest.mark.needs_kdc
def test_negotiate_on_both_loops(make_gateway, sockdir, origin):  # noqa: F811
    """curl Negotiate logins (one connection each) in batches of 8 until both
    loops accepted some: every login answers 200 whichever loop holds it.
    (Counted from each loop's accepted connections, not from sessions seen
    at once: under load the 8 logins need not overlap in time.)"""
    from test_auth_negotiate import _need_kdc_programs, start_gateway
    from peers.kdc import Kdc
    _need_kdc_programs()
    with Kdc() as kdc:
        sock = sockdir / "ctl.sock"
        gw = start_gateway(make_gateway, kdc, workers="2", status_socket=str(sock))
        env = sanitizer_env({**os.environ, **kdc.client_env("alice")})
        n, per = 0, []
        for _ in range(TRIES // 8):
            batch = [subprocess.Popen(
                ["curl", "-sS", "--noproxy", "", "-o", "/dev/null", "-w", "%{http_code}",
                 "--proxy-negotiate", "-U", ":", "-x", "http://localhost:%d" % gw.port,
                 origin.url("/neg/%d" % (n + k))],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) for k in range(8)]
            for p in batch:
                out, err = p.communicate(timeout=30)
                assert out == b"200", (out, err, gw.logs_tail())
            n += len(batch)
            per = [w["worker_accepted"] for w in ctl_json(sock, "status")["workers_detail"]]
            if all(per):
                break
        assert len(per) == 2 and all(per), per
        s = ctl_json(sock, "stats")
        assert s["auth_negotiate_succeeded"] == n, s
        gw.stop()


def test_reload_under_load_loses_no_connection(make_gateway, sockdir, origin):  # noqa: F811
    """Keep-alive Basic clients on both loops keep requesting while the
    configuration is reloaded five times: every request answers 200 on the
    connection it started on, and every loop took the new configuration."""
    gw = two_loops(make_gateway, sockdir)
    clients = basic_on_both(gw, origin)
    errors, done = [], threading.Event()
    counts = [0] * len(clients)

    def hammer(i, c):
        while not done.is_set():
            try:
                r = c.request(get_request(origin.url("/load/%d" % i), headers=[basic_header()]))
                if r.status != 200:
                    errors.append((i, r.status))
                counts[i] += 1
            except Exception as e:  # noqa: BLE001 (reported below)
                errors.append((i, repr(e)))
                return

    threads = [threading.Thread(target=hammer, args=(i, c)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    try:
        for k in range(5):
            before = list(counts)
            gw.reload({"via_pseudonym": "reload%d" % k})
            # each client got answers after this reload
            wait_until(lambda: all(a > b for a, b in zip(counts, before)) or errors, 10,
                       "requests after reload %d" % k)
    finally:
        done.set()
        for t in threads:
            t.join(10)
    assert not errors, errors
    assert gw.error_log.count("event=reloaded") == 5
    # the new Via on both loops: every connection's next response says so
    for i, c in enumerate(clients):
        r = c.request(get_request(origin.url("/after/%d" % i), headers=[basic_header()]))
        assert r.status == 200 and "reload4" in (r.header("Via") or ""), r
    assert ctl_json(gw.sock, "status")["connections"] == len(clients)


def test_sigterm_drains_both_loops(make_gateway, sockdir, origin):  # noqa: F811
    """SIGTERM with a slow exchange on each loop: both finish (200), then the
    daemon exits 0 (every loop closed: uv_loop_close 0 for each)."""
    gw = two_loops(make_gateway, sockdir)
    clients = basic_on_both(gw, origin)
    for i, c in enumerate(clients):
        c.send(get_request(origin.url("/slow/1500?%d" % i), headers=[basic_header()]))
    origin.wait_requests(2 * len(clients))
    gw.signal(signal.SIGTERM)
    for c in clients:
        assert c.recv_response(timeout=10).status == 200
    assert gw.wait_exit(15) == 0, gw.logs_tail()
    assert "event=loop_close_failed" not in gw.error_log
    gw.check_sanitizers()


def test_max_connections_is_global(make_gateway, sockdir, origin):  # noqa: F811
    """max_connections 3 over two loops: never more than 3 connections held
    at once, whichever loop accepted them; the rest wait in the backlog and
    are served once slots free up."""
    gw = two_loops(make_gateway, sockdir, max_connections="3")
    socks = [gw.client(timeout=10) for _ in range(8)]
    for i, c in enumerate(socks):
        c.send(get_request(origin.url("/cap/%d" % i), headers=[basic_header()]))
    # three are accepted and answered; the slots stay held (keep-alive)
    wait_until(lambda: ctl_json(gw.sock, "stats")["requests"] == 3, 10, "3 requests served")
    readable = wait_until(lambda: (lambda r: r if len(r) == 3 else None)(
        select.select([c.sock for c in socks], [], [], 0.05)[0]), 10, "3 answers")
    served = [c for c in socks if c.sock in readable]
    waiting = [c for c in socks if c.sock not in readable]
    for c in served:
        assert c.recv_response().status == 200
    st, s = ctl_json(gw.sock, "status"), ctl_json(gw.sock, "stats")
    assert st["connections"] == 3 and s["requests"] == 3, (st, s)
    assert s["limit_accept_paused"] >= 1, s
    for c in served:
        c.close()
    # The waiting ones are served as slots free up, in no fixed order: each
    # loop has its own kernel queue, and a loop that frees a slot may fill
    # it from its own queue before the other loop wakes (so waiting[0] can
    # wait behind later clients; reading them in list order hung here).
    serve_as_answered(gw, waiting, cap=3)


def serve_as_answered(gw, waiting, cap, deadline_s=20):
    """Reads each waiting client's answer as it comes (whichever first),
    closes it to free its slot; never more than cap connections held."""
    left = list(waiting)
    end = time.monotonic() + deadline_s
    while left:
        assert time.monotonic() < end, "%d clients never served: %s" % (
            len(left), gw.logs_tail())
        ready = select.select([c.sock for c in left], [], [], 0.2)[0]
        for c in [c for c in left if c.sock in ready]:
            assert c.recv_response(timeout=5).status == 200
            c.close()
            left.remove(c)
        assert ctl_json(gw.sock, "status")["connections"] <= cap


def test_max_connections_churn_on_both_loops(make_gateway, sockdir, origin):  # noqa: F811
    """A stress test of the global gate: 40 clients queue behind
    max_connections 2 over two loops, each closes once answered. Every
    slot freed on one loop must reach a client waiting on either loop
    (a lost wake-up leaves the rest unserved for ever); never more than 2
    held."""
    gw = two_loops(make_gateway, sockdir, max_connections="2")
    socks = [gw.client(timeout=10) for _ in range(40)]
    for i, c in enumerate(socks):
        c.send(get_request(origin.url("/churn/%d" % i), headers=[basic_header()]))
    serve_as_answered(gw, socks, cap=2, deadline_s=30)
    s = ctl_json(gw.sock, "stats")
    assert s["conns_accepted"] == 40 and s["requests"] == 40, s
    assert s["limit_accept_paused"] >= 1, s
    per = ctl_json(gw.sock, "status")["workers_detail"]
    assert sum(w["worker_accepted"] for w in per) == 40, per
    assert all(w["worker_accepted"] >= 1 for w in per), per  # both loops took part


@pytest.mark.parametrize("second", ["2", "1"])
def test_second_daemon_on_the_port_refused(make_gateway, sockdir, second):  # noqa: F811
    """With SO_REUSEPORT on every socket, a second authgate (same user) on the
    port of a running workers-2 daemon started without a word and took a
    share of its clients, answered under its own configuration (how
    parallel suites, whose free ports can collide, saw a stray 502). Main's
    socket is bound before it is marked SO_REUSEPORT: the second one fails
    with 'address in use' at either workers count, the first keeps every
    connection."""
    gw = two_loops(make_gateway, sockdir)
    other = make_gateway(start=False, listen=["127.0.0.1:%d" % gw.port], workers=second)
    other.start(wait=False)
    rc = other.wait_exit(10)
    other.stop(expect_rc=None)
    assert rc not in (None, 0), (rc, other.logs_tail())
    assert "event=listen_failed" in other.error_log, other.logs_tail()
    assert "address already in use" in other.error_log, other.logs_tail()
    for _ in range(16):
        with gw.client() as c:
            assert c.request(build_request("GET", "/healthz", [("Host", "proxy")])).status == 200
    assert ctl_json(gw.sock, "stats")["conns_accepted"] == 16
