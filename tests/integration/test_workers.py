"""Verification on worker pools of its own (issue 10 items 13 and 14; BAD-INPUTS
row 66, winbind down or slow: nothing that does not need winbind waits on it).

A hung winbindd (SIGSTOP through peers/winbind.py) must not delay anything
that does not need it: Kerberos logins (their own pool), name lookups
(libuv's pool, now DNS only), forwarding for authenticated users, and a
reload (its winbind part runs on the winbind pool, the loop keeps serving).
No timing ratios here (scripts/bench.d measures those): each check is "it
answers within a few seconds while winbindd is stopped", which the shared
thread pool could not do (8 threads, all blocked on winbindd).

Peers: the throwaway MIT KDC and winbindd (peers/), the test origin on
127.0.0.1 and ::1, reached as `localhost` so that the gateway resolves it.
"""

import signal
import time

import pytest

from harness.auth import USERS, ident, write_user_file
from harness.ctl_client import stats, status
from harness.ctl_client import sockdir  # noqa: F401 (fixtures)
from harness.ntlm_client import authenticate_msg, basic, ntlm_pa, pa, type1_leg
from harness.procs import threads_waiting_on_socket
from harness.rawhttp import get_request
from harness.tools import wait_until
from peers.fixtures import _need_winbind, _winbind_session, kdc, winbind  # noqa: F401
from test_rules import curl_as, start_gateway

PENDING = 20  # NTLM AUTHENTICATE messages waiting on the stopped winbindd


@pytest.fixture
def ctl_sock(sockdir):  # noqa: F811
    return str(sockdir / "ctl.sock")


def pending_ntlm(gw, url, wb, n=PENDING):
    """n NTLM handshakes whose AUTHENTICATE waits on the (then) paused
    winbindd; returns their clients. Leaves winbindd paused."""
    users = wb.users
    legs = []
    for i in range(n):
        c = gw.client(timeout=30)
        chal, t1 = type1_leg(c, url)
        legs.append((c, chal, t1))
    wb.pause()
    for i, (c, chal, t1) in enumerate(legs):
        c.send(get_request(url + "/pending%d" % i, [ntlm_pa(authenticate_msg(
            chal, "alice", users["alice"], negotiate=t1))]))
    # every winbind worker (4 by default) is inside a call on the stopped winbindd
    wait_until(lambda: len(threads_waiting_on_socket(gw.proc.pid)) >= min(n, 4), 10,
               "winbind workers blocked on the paused winbindd")
    return [c for c, _, _ in legs]


@pytest.mark.needs_winbind
@pytest.mark.needs_kdc
def test_kerberos_and_dns_unaffected_by_stalled_winbind(make_gateway, tmp_path, kdc, winbind,
                                                        origin, ctl_sock):
    """With winbindd stopped and NTLM handshakes pending on it, a Negotiate
    login to an origin named `localhost` (a DNS lookup) and a second request
    on an authenticated keep-alive connection still answer at once; after
    SIGCONT every pending handshake completes."""
    gw = start_gateway(make_gateway, tmp_path, "default allow\n", backend=None, wb=winbind,
                       krb=kdc, auth_schemes="negotiate ntlm", ntlm_backend="winbind",
                       handshake_timeout="60s", status_socket=ctl_sock)
    gw.options["status_socket"] = ctl_sock
    url = origin.url("/echo", host="localhost")
    alice = kdc.client_env("alice")
    r = curl_as(gw, "--proxy-negotiate", "-U", ":", url, env=alice)
    assert r.status == 200, (r, gw.logs_tail())
    clients = pending_ntlm(gw, origin.url("/echo"), winbind)
    try:
        t0 = time.monotonic()
        r = curl_as(gw, "--proxy-negotiate", "-U", ":", url, url + "/again", env=alice,
                    timeout=10)
        took = time.monotonic() - t0
        assert r.rc == 0 and r.status == 200, (r, gw.logs_tail())
        assert took < 5, "a Kerberos login took %.1fs with winbindd stopped" % took
        st = status(gw)
        assert int(st["jobs_in_flight"]) >= PENDING, st
    finally:
        winbind.resume()
    for c in clients:
        assert ident(c.recv_response(timeout=20)) == ["%s\\alice" % winbind.domain]
    assert gw.error_log.count("scheme=Negotiate") >= 1


@pytest.mark.needs_winbind
@pytest.mark.needs_kdc
def test_max_jobs_is_per_pool(make_gateway, tmp_path, kdc, winbind, origin, ctl_sock):
    """max_jobs 2 with both winbind slots taken by handshakes waiting on the
    stopped winbindd: a third NTLM AUTHENTICATE gets 503 (jobs_refused_winbind),
    a Kerberos login still gets 200 (its pool has its own room)."""
    gw = start_gateway(make_gateway, tmp_path, "default allow\n", backend=None, wb=winbind,
                       krb=kdc, auth_schemes="negotiate ntlm", ntlm_backend="winbind",
                       handshake_timeout="60s", max_jobs=2, status_socket=ctl_sock)
    url = origin.url("/echo", host="localhost")
    alice = kdc.client_env("alice")
    extra = gw.client(timeout=10)
    chal, t1 = type1_leg(extra, origin.url("/echo"))
    clients = pending_ntlm(gw, origin.url("/echo"), winbind, n=2)
    try:
        r = extra.request(get_request(origin.url("/echo/third"), [ntlm_pa(authenticate_msg(
            chal, "alice", winbind.users["alice"], negotiate=t1))]), timeout=5)
        assert r.status == 503, r
        r = curl_as(gw, "--proxy-negotiate", "-U", ":", url, env=alice, timeout=10)
        assert r.rc == 0 and r.status == 200, (r, gw.logs_tail())
        s = stats(gw)
        assert (s["jobs_refused_winbind"], s["jobs_refused_kerberos"], s["limit_jobs"]) == \
            (1, 0, 1), s
    finally:
        winbind.resume()
    for c in clients:
        assert ident(c.recv_response(timeout=20)) == ["%s\\alice" % winbind.domain]


def start_reload_gateway(make_gateway, tmp_path, wb, rules="default allow\n", **opts):
    """Basic against a local user file (traffic that never needs winbind),
    NTLM through winbind (a reload reads winbind's names, and resolves the
    rules' groups)."""
    uf = tmp_path / "users"
    write_user_file(uf, USERS)
    o = dict(auth_schemes="basic ntlm", basic_backend="local", ntlm_backend="winbind",
             user_file=str(uf), handshake_timeout="20s")
    o.update(opts)
    return start_gateway(make_gateway, tmp_path, rules, backend=None, wb=wb, **o)


def winbind_call_blocked(pid):
    """Any thread of pid, the loop thread included, blocked reading a socket
    (a winbind call on the paused winbindd; the loop itself waits in
    epoll_wait, which is not such a call)."""
    return bool(threads_waiting_on_socket(pid, include_main=True))


def basic_ok(gw, url, client=None):
    c = client or gw.client(timeout=5)
    r = c.request(get_request(url, [pa(basic("alice", USERS["alice"]))]), timeout=5)
    assert r.status == 200, (r, gw.logs_tail())
    return r


@pytest.mark.needs_winbind
@pytest.mark.parametrize("rules", ["default allow\n",
                                   "default allow\nallow net group=internet\n"],
                         ids=["names", "groups"])
def test_reload_with_stalled_winbind_keeps_traffic_flowing(make_gateway, tmp_path, winbind,
                                                           origin, rules):
    """SIGHUP while winbindd is stopped: the winbind part of the reload
    (winbind's names; with `groups`, the rules' group SIDs too) waits on the
    winbind pool, Basic (local file) keeps being served; after SIGCONT the
    reload completes. A second SIGHUP meanwhile is coalesced into one more
    reload after the first."""
    gw = start_reload_gateway(make_gateway, tmp_path, winbind, rules)
    url = origin.url("/echo", host="localhost")
    gw.wait_log(r"event=winbind_names nb_domain=%s" % winbind.domain)
    since = len(gw.error_log)
    keep = gw.client(timeout=5)
    basic_ok(gw, url + "/before", client=keep)
    winbind.pause()
    try:
        gw.signal(signal.SIGHUP)
        wait_until(lambda: winbind_call_blocked(gw.proc.pid), 10,
                   "the reload's winbind call blocked on the paused winbindd")
        for i in range(3):
            basic_ok(gw, url + "/during%d" % i)           # new connections
            basic_ok(gw, url + "/keep%d" % i, client=keep)  # keep-alive
        gw.signal(signal.SIGHUP)
        gw.wait_log(r"event=reload_coalesced", since=since)
        basic_ok(gw, url + "/after-second-hup")
        assert gw.error_log[since:].count("event=reload_started") == 1
        assert "event=reloaded" not in gw.error_log[since:]
    finally:
        winbind.resume()
    gw.wait_log(r"event=reloaded", since=since, timeout=15)
    # the coalesced SIGHUP: exactly one more reload, then quiet
    wait_until(lambda: gw.error_log[since:].count("event=reloaded") == 2, 15,
               "the coalesced second reload")
    assert gw.error_log[since:].count("event=reload_started") == 2
    assert "event=reload_failed" not in gw.error_log[since:]
    if "group=" in rules:
        assert gw.error_log[since:].count("event=rules_loaded") == 2
    basic_ok(gw, url + "/after")


def realm_offered(gw, url):
    r = gw.client(timeout=5).request(get_request(url, []), timeout=5)
    assert r.status == 407, r
    return [v for v in r.header_all("proxy-authenticate") if v.startswith("Basic ")]


@pytest.mark.needs_winbind
def test_reload_timeout_keeps_old_configuration(make_gateway, tmp_path, winbind, origin,
                                                ctl_sock):
    """A reload whose winbind lookups do not finish within handshake_timeout
    gives up: one reload_failed line, the old configuration stays (its Basic
    realm), reload_timeouts counts it; the abandoned lookup later ends
    quietly, and the next SIGHUP reloads."""
    gw = start_reload_gateway(make_gateway, tmp_path, winbind, handshake_timeout="1s",
                              basic_realm="old", status_socket=ctl_sock)
    url = origin.url("/echo", host="localhost")
    gw.wait_log(r"event=winbind_names nb_domain=%s" % winbind.domain)
    assert realm_offered(gw, url) == ['Basic realm="old", charset="UTF-8"']
    since = len(gw.error_log)
    winbind.pause()
    try:
        gw.reload({"basic_realm": "new"}, wait=0)
        gw.wait_log(r'event=reload_failed error="winbind did not answer within handshake_timeout'
                    r' \(1000ms\); the old configuration stays"', since=since, timeout=10)
        assert realm_offered(gw, url) == ['Basic realm="old", charset="UTF-8"']
        basic_ok(gw, url + "/during")
        assert stats(gw)["reload_timeouts"] == 1
    finally:
        winbind.resume()
    wait_until(lambda: not threads_waiting_on_socket(gw.proc.pid), 15,
               "the abandoned reload lookup to return")
    log = gw.error_log[since:]
    assert log.count("event=reload_failed") == 1 and "event=reloaded" not in log
    since = len(gw.error_log)
    gw.signal(signal.SIGHUP)
    gw.wait_log(r"event=reloaded", since=since, timeout=10)
    assert realm_offered(gw, url) == ['Basic realm="new", charset="UTF-8"']


@pytest.mark.needs_winbind
def test_stop_with_stalled_winbind_exits_clean(make_gateway, tmp_path, winbind, origin):
    """SIGTERM while verifications wait on the stopped winbindd: the
    connections go at shutdown_timeout, the worker threads are joined once
    winbindd answers again, and the loop closes cleanly (exit status 0, no
    sanitizer report, checked by gw.stop())."""
    gw = start_reload_gateway(make_gateway, tmp_path, winbind, shutdown_timeout="500ms")
    clients = pending_ntlm(gw, origin.url("/echo"), winbind, n=6)
    try:
        since = len(gw.error_log)
        gw.signal(signal.SIGTERM)
        gw.wait_log(r"event=shutdown_deadline", since=since, timeout=10)
        for c in clients:
            assert c.is_closed(5.0)
    finally:
        winbind.resume()
    assert gw.wait_exit(20) == 0, gw.logs_tail()
    gw.stop()
