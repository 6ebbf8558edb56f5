"""Basic authentication end to end: curl and raw sockets through the gateway,
verified against the local user file and against a real winbindd
(tests/integration/peers). One scenario per test; tests parametrized with
`backend` run once per backend.

Run: /usr/bin/python3 -m pytest -q tests/integration/test_auth_basic.py
"""

import json

import pytest

from harness.accesslog import access_records, result_status
from harness.auth import (IDENTITY_HEADER, USERS, close_during_verification,
                          verification_times_out, write_user_file)
from harness.auth import auth_env, backend, local_env, winbind_env  # noqa: F401 (fixtures)
from harness.ctl_client import stats
from harness.gateway import log_events
from harness.ntlm_client import basic, is_fresh_407, offered, pa
from harness.procs import threads_waiting_on_socket
from harness.rawhttp import build_request, get_request
from harness.tools import assert_error_response, curl, wait_until

pytest_plugins = ["peers.fixtures"]  # one session winbindd for every test module

ALICE = ("alice", USERS["alice"])
BOB = ("bob", USERS["bob"])


def echo_json(resp):
    assert resp.status == 200, resp
    return json.loads(resp.body)


def header_values(req_json, name):
    return [v for n, v in req_json["headers"] if n.lower() == name.lower()]


# --------------------------------------------------------------------------- curl


def test_curl_basic_identity_header_replaced(auth_env, origin):
    gw = auth_env.make("basic")
    r = curl(gw.url, "-U", "%s:%s" % ALICE, "-H", "X-Authenticated-User: mallory",
             origin.url("/echo"))
    assert r.rc == 0 and r.status == 200, r
    (req,) = origin.wait_requests(1)
    assert req.header("proxy-authorization") is None
    assert req.header_all(IDENTITY_HEADER) == [auth_env.identity("alice")]
    assert "mallory" not in req.raw_head.decode("latin-1")


def test_curl_basic_proxy_anyauth(auth_env, origin):
    gw = auth_env.make("basic")
    r = curl(gw.url, "--proxy-anyauth", "-U", "%s:%s" % BOB, origin.url("/echo"))
    assert r.rc == 0 and r.status == 200, r
    statuses = [x.status for x in r.responses]
    assert statuses == [407, 200], statuses  # a bare request first, then Basic
    assert offered(r.responses[0]) == ["basic"]
    (req,) = origin.wait_requests(1)
    assert req.header_all(IDENTITY_HEADER) == [auth_env.identity("bob")]
    assert req.header("proxy-authorization") is None


def test_curl_basic_wrong_password(auth_env, origin):
    gw = auth_env.make("basic")
    r = curl(gw.url, "-U", "alice:not-her-password", origin.url("/echo"))
    assert r.status == 407, r
    assert origin.all_requests == []


# --------------------------------------------------------------------------- raw


def test_wrong_password_407_keeps_connection(auth_env, origin):
    gw = auth_env.make("basic")
    c = gw.client()
    r = c.request(get_request(origin.url("/echo"), [pa(basic("alice", "wrong"))]))
    assert_error_response(r, 407)
    assert is_fresh_407(r, ["basic"]), r
    assert r.header("proxy-authenticate") == 'Basic realm="authgate", charset="UTF-8"'
    assert "keep-alive" in r.tokens("connection")
    assert not c.is_closed(0.3)
    ok = c.request(get_request(origin.url("/echo"), [pa(basic(*ALICE))]))
    assert header_values(echo_json(ok), IDENTITY_HEADER) == [auth_env.identity("alice")]
    assert [q.target for q in origin.all_requests] == ["/echo"]
    assert "auth_failed" in log_events(gw)


def test_unknown_user_gets_the_same_407(auth_env, origin):
    gw = auth_env.make("basic")
    c = gw.client()
    wrong = c.request(get_request(origin.url("/echo"), [pa(basic("alice", "wrong"))]))
    unknown = c.request(get_request(origin.url("/echo"), [pa(basic("nosuchuser", "wrong"))]))
    assert wrong.status == unknown.status == 407
    assert wrong.headers == unknown.headers
    assert wrong.body == unknown.body
    assert not c.is_closed(0.3)
    assert origin.all_requests == []


@pytest.mark.parametrize("keep", ["Proxy-Connection: keep-alive", "Connection: keep-alive"])
def test_http10_keepalive_client_gets_kept_alive_407(local_env, origin, keep):
    gw = local_env.make("basic")
    c = gw.client()
    r = c.request(build_request("GET", origin.url("/echo"),
                                [("Host", origin.authority()), keep], version="HTTP/1.0"))
    assert_error_response(r, 407)
    assert "keep-alive" in r.tokens("connection")
    assert not c.is_closed(0.3), "kept-alive HTTP/1.0 407 was closed"
    ok = c.request(build_request("GET", origin.url("/echo"),
                                 [("Host", origin.authority()), keep,
                                  pa(basic(*ALICE))], version="HTTP/1.0"))
    assert ok.status == 200
    assert "keep-alive" in ok.tokens("connection")


def test_http10_without_keepalive_407_closes(local_env, origin):
    gw = local_env.make("basic")
    c = gw.client()
    r = c.request(build_request("GET", origin.url("/echo"), [("Host", origin.authority())],
                                version="HTTP/1.0"))
    assert_error_response(r, 407)
    assert c.is_closed(2.0)


SMUGGLED = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_post_body_on_407_is_drained(local_env, origin, chunked):
    """The body of a refused POST is read and discarded; what looks like a
    request inside it is never parsed as one (row 22)."""
    gw = local_env.make("basic")
    c = gw.client()
    body = (SMUGGLED * 40).encode()
    if chunked:
        data = build_request("POST", origin.url("/echo"),
                             [("Host", origin.authority()), ("Transfer-Encoding", "chunked")],
                             b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    else:
        data = get_request(origin.url("/echo"), method="POST", body=body)
    r = c.request(data)
    assert_error_response(r, 407)
    ok = c.request(get_request(origin.url("/echo"), [pa(basic(*ALICE))], method="POST",
                               body=b"after"))
    j = echo_json(ok)
    assert j["body"] == "after"
    assert [q.target for q in origin.all_requests] == ["/echo"]
    assert not c.is_closed(0.3)


def test_post_body_over_drain_max_closes(local_env, origin):
    gw = local_env.make("basic", drain_max="1k")
    c = gw.client()
    c.send(get_request(origin.url("/echo"), method="POST", body=SMUGGLED.encode() * 100),
           tolerant=True)
    r = c.recv_response("POST", timeout=4)
    assert_error_response(r, 407)
    assert c.is_closed(2.0), "a body over drain_max must close the connection"
    assert origin.all_requests == []


def test_post_body_at_drain_max_keeps(local_env, origin):
    gw = local_env.make("basic", drain_max="1k")
    c = gw.client()
    r = c.request(get_request(origin.url("/echo"), method="POST", body=b"x" * 1024))
    assert_error_response(r, 407)
    ok = c.request(get_request(origin.url("/echo"), [pa(basic(*ALICE))]))
    assert ok.status == 200


def test_expect_100_continue_without_credentials_gets_immediate_407(local_env, origin):
    """Row 23: the body is never sent; a gateway that waited for it (or sent
    100) would time out here."""
    gw = local_env.make("basic")
    c = gw.client()
    c.send(get_request(origin.url("/echo"), [("Expect", "100-continue"),
                                               ("Content-Length", "100000")], method="POST"))
    r = c.recv_response("POST", timeout=3)
    assert r.interim == [], "sent %r before the 407" % [i.status for i in r.interim]
    assert_error_response(r, 407)
    # the client may or may not send its body now: the connection cannot resync
    assert c.is_closed(2.0)
    assert origin.all_requests == []


def test_expect_100_continue_with_credentials(local_env, origin):
    gw = local_env.make("basic")
    c = gw.client()
    c.send(get_request(origin.url("/echo"), [pa(basic(*ALICE)), ("Expect", "100-continue"),
                                               ("Content-Length", "5")], method="POST"))
    interim = c.recv_response("POST", timeout=4, stop_at_interim=True)
    assert interim.status == 100
    c.send(b"hello")
    j = echo_json(c.recv_response("POST", timeout=4))
    assert j["body"] == "hello" and j["sent_100"]


def test_pipelined_requests_each_carry_basic(local_env, origin):
    gw = local_env.make("basic")
    c = gw.client()
    users = [ALICE, BOB, ALICE, ("carol", USERS["carol"]), BOB]
    c.send(b"".join(get_request(origin.url("/echo/%d" % i), [pa(basic(*u))])
                    for i, u in enumerate(users)))
    for i, u in enumerate(users):
        j = echo_json(c.recv_response(timeout=5))
        assert j["target"] == "/echo/%d" % i
        assert header_values(j, IDENTITY_HEADER) == [u[0]]


def test_pipelined_basic_does_not_carry_to_the_next_request(local_env, origin):
    """Row 24: Basic is per request; a request without credentials in the
    middle of a pipeline is refused and not forwarded."""
    gw = local_env.make("basic")
    c = gw.client()
    c.send(get_request(origin.url("/echo/a"), [pa(basic(*ALICE))])
           + get_request(origin.url("/echo/b"))
           + get_request(origin.url("/echo/c"), [pa(basic(*BOB))]))
    a = c.recv_response(timeout=5)
    b = c.recv_response(timeout=5)
    cc = c.recv_response(timeout=5)
    assert header_values(echo_json(a), IDENTITY_HEADER) == ["alice"]
    assert_error_response(b, 407)
    assert header_values(echo_json(cc), IDENTITY_HEADER) == ["bob"]
    assert [q.target for q in origin.requests] == ["/echo/a", "/echo/c"]


def test_access_log_user_column(auth_env, origin):
    gw = auth_env.make("basic")
    c = gw.client()
    assert c.request(get_request(origin.url("/one"))).status == 407
    assert c.request(get_request(origin.url("/two"), [pa(basic(*ALICE))])).status == 200
    assert c.request(get_request(origin.url("/three"), [pa(basic("alice", "bad"))])).status == 407
    lines = gw.wait_access_log(3)
    f = access_records(lines)
    assert (result_status(f[0]), f[0]["user"]) == ("TCP_DENIED/407", "-")
    assert (result_status(f[1]), f[1]["url"], f[1]["user"]) == ("TCP_MISS/200", origin.url("/two"),
                                                                auth_env.identity("alice"))
    assert (result_status(f[2]), f[2]["user"]) == ("TCP_DENIED/407", "-")


def test_user_with_domain_in_local_file(local_env, origin, tmp_path):
    """A DOMAIN\\user entry: Basic "CORP\\dave" matches it; another domain does not."""
    write_user_file(local_env.user_file, dict(USERS, **{"CORP\\dave": "dave-Pass4"}))
    gw = local_env.make("basic")
    c = gw.client()
    ok = c.request(get_request(origin.url("/echo"), [pa(basic("CORP\\dave", "dave-Pass4"))]))
    assert header_values(echo_json(ok), IDENTITY_HEADER) == ["CORP\\dave"]
    r = c.request(get_request(origin.url("/echo"), [pa(basic("OTHER\\dave", "dave-Pass4"))]))
    assert r.status == 407
    r = c.request(get_request(origin.url("/echo"), [pa(basic("dave", "dave-Pass4"))]))
    assert r.status == 407


def test_local_identity_does_not_take_the_typed_domain(local_env, origin):
    gw = local_env.make("basic")
    c = gw.client()
    r = c.request(get_request(origin.url("/echo"), [pa(basic("ANYDOM\\alice", USERS["alice"]))]))
    assert header_values(echo_json(r), IDENTITY_HEADER) == ["alice"]


# --------------------------------------------------------------------------- winbind failures


def wb_cred(env, user):
    """Basic for DOMAIN\\user (the winbind scenario tests use qualified names)."""
    return pa(basic(env.qualified(user), USERS[user]))


def test_winbind_stopped_503_then_recovers(winbind_env, origin):
    wb = winbind_env.winbind
    wb_alice = wb_cred(winbind_env, "alice")
    gw = winbind_env.make("basic", basic_cache_ttl=0)
    c = gw.client()
    assert c.request(get_request(origin.url("/before"), [wb_alice])).status == 200
    wb.stop()
    try:
        since = len(gw.error_log)
        c2 = gw.client()
        r = c2.request(get_request(origin.url("/during"), [wb_alice]), timeout=5)
        assert_error_response(r, 503)
        assert r.header("retry-after") is not None
        assert c2.is_closed(2.0)
        gw.wait_log(r"level=error .*event=auth_backend_error scheme=Basic "
                    r'.*user="?AUTHGATE\\x5calice', since=since)
        # the connection that was fine before gets the same answer, never access
        r = c.request(get_request(origin.url("/during"), [wb_alice]), timeout=5)
        assert_error_response(r, 503)
    finally:
        wb.start()
    c3 = gw.client()
    r = c3.request(get_request(origin.url("/after"), [wb_alice]), timeout=5)
    assert r.status == 200, r
    assert [q.target for q in origin.requests] == ["/before", "/after"]


def test_winbind_hung_beyond_handshake_timeout_503(winbind_env, origin):
    wb = winbind_env.winbind
    wb_alice = wb_cred(winbind_env, "alice")
    gw = winbind_env.make("basic", handshake_timeout="1s", basic_cache_ttl=0)
    verification_times_out(gw, wb, gw.client(), get_request(origin.url("/hung"), [wb_alice]))
    r = gw.client().request(get_request(origin.url("/after"), [wb_alice]), timeout=5)
    assert r.status == 200
    assert [q.target for q in origin.requests] == ["/after"]


def test_client_closes_while_verification_runs(winbind_env, origin):
    """Row 77: the job is detached and freed once; the gateway stays healthy
    (the ASan build reports any use-after-free or leak at teardown)."""
    wb = winbind_env.winbind
    wb_alice, wb_bob = wb_cred(winbind_env, "alice"), wb_cred(winbind_env, "bob")
    gw = winbind_env.make("basic", handshake_timeout="20s", basic_cache_ttl=0,
                          log_level="debug", ctl=True)
    conn_id = close_during_verification(gw, wb, gw.client(),
                                        get_request(origin.url("/detached"), [wb_alice]))
    c2 = gw.client()
    r = c2.request(get_request(origin.url("/echo/next"), [wb_bob]), timeout=5)
    assert header_values(echo_json(r), IDENTITY_HEADER) == [winbind_env.identity("bob")]
    # the detached job's result went nowhere, and it was counted once
    assert "conn=%s event=auth_ok" % conn_id not in gw.error_log
    s = stats(gw)
    assert (s["jobs_submitted"], s["jobs_detached"]) == (2, 1), s
    assert s["jobs_completed"] + s["jobs_cancelled"] == 2, s
    assert s["auth_basic_succeeded"] == 1, s
    assert [q.target for q in origin.requests] == ["/echo/next"]
    assert gw.alive()


@pytest.mark.parametrize("cap", ["max_handshakes_per_addr", "max_jobs"])
def test_verifications_in_flight_capped(winbind_env, origin, cap):
    """A Basic verification in progress counts as a handshake and a job:
    beyond the cap the next one gets 503 at once, and the first completes."""
    wb = winbind_env.winbind
    wb_alice, wb_bob = wb_cred(winbind_env, "alice"), wb_cred(winbind_env, "bob")
    gw = winbind_env.make("basic", handshake_timeout="20s", basic_cache_ttl=0, ctl=True, **{cap: 1})
    a, b = gw.client(), gw.client()
    wb.pause()
    try:
        a.send(get_request(origin.url("/echo/a"), [wb_alice]))
        wait_until(lambda: threads_waiting_on_socket(gw.proc.pid), 10,
                   "a pool thread blocked on the paused winbindd")
        r = b.request(get_request(origin.url("/echo/b"), [wb_bob]), timeout=5)
        assert_error_response(r, 503)
        assert b.is_closed(2.0)
    finally:
        wb.resume()
    assert header_values(echo_json(a.recv_response(timeout=10)), IDENTITY_HEADER) == [
        winbind_env.identity("alice")]
    assert [q.target for q in origin.requests] == ["/echo/a"]
    s = stats(gw)
    assert s["limit_handshakes" if cap == "max_handshakes_per_addr" else "limit_jobs"] == 1, s


# --------------------------------------------------------------------------- throttling


def test_throttle_per_user(auth_env, origin):
    """Row 75: after fail_max_per_user_addr failures the user is refused from
    that address without asking the backend (event=auth_throttled, and even
    the right password gets the same 407) until fail_window has passed.
    (test_auth_throttle.py: the same user from another address.)"""
    gw = auth_env.make("basic", fail_max_per_user_addr=3, fail_max_per_addr=1000,
                       fail_window="2s", basic_cache_ttl=0, ctl=True)
    c = gw.client()
    for i in range(3):
        r = c.request(get_request(origin.url("/x"), [pa(basic("alice", "guess%d" % i))]))
        assert r.status == 407
    assert log_events(gw).count("auth_failed") == 3
    before = stats(gw)
    assert before["jobs_submitted"] == 3
    throttled = c.request(get_request(origin.url("/x"), [pa(basic(*ALICE))]))
    assert throttled.status == 407
    assert throttled.headers == r.headers and throttled.body == r.body
    events = log_events(gw)
    assert events.count("auth_throttled") == 1
    assert events.count("auth_failed") == 3 and "auth_ok" not in events
    after = stats(gw)
    assert after["jobs_submitted"] == 3, "a throttled attempt reached the backend"
    assert after["auth_fail_throttled"] == 1
    # another user from the same address is not affected
    assert c.request(get_request(origin.url("/bob"), [pa(basic(*BOB))])).status == 200

    def accepted():
        return c.request(get_request(origin.url("/later"), [pa(basic(*ALICE))])).status == 200

    wait_until(accepted, 8, "alice accepted again after fail_window", interval=0.2)
    assert log_events(gw).count("auth_failed") == 3  # throttled attempts never reached it
    st = stats(gw)
    assert st["jobs_submitted"] == 5  # the 3 failures, bob, alice at last
    assert [q.target for q in origin.requests] == ["/bob", "/later"]


def test_throttle_per_address(local_env, origin):
    gw = local_env.make("basic", fail_max_per_user=1000, fail_max_per_addr=3,
                        fail_window="1m", ctl=True)
    c = gw.client()
    for u in ("alice", "nosuchuser", "bob"):
        assert c.request(get_request(origin.url("/x"), [pa(basic(u, "wrong"))])).status == 407
    r = c.request(get_request(origin.url("/x"), [pa(basic(*("carol", USERS["carol"])))]))
    assert r.status == 407
    assert log_events(gw).count("auth_throttled") == 1
    s = stats(gw)
    assert (s["jobs_submitted"], s["auth_fail_throttled"]) == (3, 1), s
    assert origin.all_requests == []


# --------------------------------------------------------------------------- cache


def test_basic_cache_hit_then_cleared_by_reload(local_env, origin):
    gw = local_env.make("basic", basic_cache_ttl="5m", ctl=True)
    old, new = USERS["alice"], "alice-New-Pass9"

    def get(pw):
        return gw.client().request(get_request(origin.url("/echo"), [pa(basic("alice", pw))]))

    assert get(old).status == 200
    assert log_events(gw).count("auth_ok") == 1
    write_user_file(local_env.user_file, dict(USERS, alice=new))  # not reloaded yet
    assert get(old).status == 200  # cache hit: the backend is not asked
    assert log_events(gw).count("auth_ok") == 1
    s = stats(gw)
    assert (s["auth_basic_cache_hits"], s["jobs_submitted"]) == (1, 1), s
    assert get(new).status == 407  # the daemon still has the old file
    gw.reload()
    assert get(old).status == 407  # the reload cleared the cache
    assert get(new).status == 200
    assert log_events(gw).count("auth_ok") == 2
    assert stats(gw)["auth_basic_cache_hits"] == 1


def test_basic_cache_disabled(local_env, origin):
    gw = local_env.make("basic", basic_cache_ttl=0)
    for _ in range(3):
        c = gw.client()
        assert c.request(get_request(origin.url("/x"), [pa(basic(*ALICE))])).status == 200
    assert log_events(gw).count("auth_ok") == 3


def test_basic_cache_is_per_credential(local_env, origin):
    """A cached alice:right does not let alice:wrong in."""
    gw = local_env.make("basic", basic_cache_ttl="5m")
    c = gw.client()
    assert c.request(get_request(origin.url("/x"), [pa(basic(*ALICE))])).status == 200
    assert c.request(get_request(origin.url("/x"), [pa(basic("alice", "wrong"))])).status == 407
    assert [q.target for q in origin.requests] == ["/x"]


def test_basic_cache_expires(winbind_env, origin):
    """After basic_cache_ttl the backend is asked again: with winbindd
    stopped, a cached credential keeps working until the TTL ends, then 503."""
    wb = winbind_env.winbind
    wb_alice = wb_cred(winbind_env, "alice")
    gw = winbind_env.make("basic", basic_cache_ttl="1s")
    c = gw.client()
    assert c.request(get_request(origin.url("/a"), [wb_alice])).status == 200
    wb.stop()
    try:
        r = c.request(get_request(origin.url("/b"), [wb_alice]))
        assert r.status == 200, "cache hit expected within the TTL"

        def expired():
            cc = gw.client()
            return cc.request(get_request(origin.url("/c"), [wb_alice]),
                              timeout=5).status == 503

        wait_until(expired, 8, "the cached credential to expire", interval=0.2)
    finally:
        wb.start()
    assert [q.target for q in origin.requests][:2] == ["/a", "/b"]
