"""NTLM end to end: curl, python requests + requests_ntlm, python3-ntlm-auth
and a byte-level client (harness/ntlm_client.py) through the gateway, verified
against the local user file and a real winbindd. One scenario per test;
tests parametrized with `backend` run once per backend.

Run: /usr/bin/python3 -m pytest -q tests/integration/test_auth_ntlm.py
"""

import json
import os
import re

import pytest

from harness.accesslog import access_records, result_status
from harness.auth import (IDENTITY_HEADER, USERS, AuthEnv, close_during_verification, ident,
                          verification_times_out, write_user_file)
from harness.auth import auth_env, backend, local_env, winbind_env  # noqa: F401 (fixtures)
from harness.ctl_client import stats, status
from harness.gateway import free_port, log_events
from harness.ntlm_client import (AV_TARGET_NAME, CURL_FLAGS, F_UNICODE, REQUESTS_NTLM_SCRIPT,
                                 WINDOWS_FLAGS, NtlmAuthClient, authenticate_msg, av_pack,
                                 av_parse, basic, challenge_from, get_field, is_fresh_407,
                                 negotiate_msg, ntlm_legs, ntlm_pa, offered, pa, run_python,
                                 type1_leg)
from harness.ntlm_client import legacy_ssl_env  # noqa: F401 (fixtures)
from harness.procs import threads_waiting_on_socket
from harness.rawhttp import build_request, get_request
from harness.tools import assert_error_response, curl, wait_until

pytest_plugins = ["peers.fixtures"]  # one session winbindd for every test module

PW = USERS


# --------------------------------------------------------------------------- real clients


def test_curl_ntlm_two_urls_one_connection(auth_env, origin):
    gw = auth_env.make("ntlm basic")
    r = curl(gw.url, "-v", "--proxy-ntlm", "-U", "alice:%s" % PW["alice"],
             origin.url("/echo/1"), origin.url("/echo/2"))
    assert r.rc == 0 and r.status == 200, r
    assert [x.status for x in r.responses] == [407, 200, 200], r.headers_raw
    assert "Re-using existing connection" in r.stderr
    assert r.stderr.count("Proxy-Authorization: NTLM") == 2  # Type 1 and Type 3 only
    reqs = origin.wait_requests(2)
    assert [q.target for q in reqs] == ["/echo/1", "/echo/2"]
    for q in reqs:
        assert q.header("proxy-authorization") is None
        assert q.header_all(IDENTITY_HEADER) == [auth_env.identity("alice")]
    lines = access_records(gw.wait_access_log(3))
    assert [result_status(f) for f in lines] == ["TCP_DENIED/407", "TCP_MISS/200", "TCP_MISS/200"]
    assert [f["user"] for f in lines] == ["-"] + [auth_env.identity("alice")] * 2
    assert "event=auth_ok scheme=NTLM via=NTLM" in gw.error_log
    assert log_events(gw).count("auth_ok") == 1


def test_curl_proxy_anyauth_picks_ntlm(auth_env, origin):
    gw = auth_env.make("ntlm basic")
    r = curl(gw.url, "--proxy-anyauth", "-U", "bob:%s" % PW["bob"], origin.url("/echo"))
    assert r.rc == 0 and r.status == 200, r
    statuses = [x.status for x in r.responses]
    assert statuses == [407, 407, 200], statuses
    assert offered(r.responses[0]) == ["ntlm", "basic"]
    assert offered(r.responses[1]) == ["ntlm"]
    (q,) = origin.wait_requests(1)
    assert q.header_all(IDENTITY_HEADER) == [auth_env.identity("bob")]
    assert "event=auth_ok scheme=NTLM" in gw.error_log


def test_curl_ntlm_connect_to_tls_origin(auth_env, tls_origin):
    gw = auth_env.make("ntlm basic", connect_ports=[tls_origin.port])
    url = "https://localhost:%d/echo" % tls_origin.port
    r = curl(gw.url, "-k", "--proxy-ntlm", "-U", "carol:%s" % PW["carol"], url)
    assert r.rc == 0 and r.status == 200, r
    assert [x.status for x in r.responses] == [407, 200, 200], r.headers_raw
    (q,) = tls_origin.wait_requests(1)
    assert q.tls and q.header("proxy-authorization") is None
    f = access_records(gw.wait_access_log(2))
    assert (result_status(f[0]), f[0]["method"]) == ("TCP_DENIED/407", "CONNECT")
    assert (result_status(f[1]), f[1]["method"], f[1]["user"]) == ("TCP_TUNNEL/200", "CONNECT",
                                                                    auth_env.identity("carol"))


def test_curl_ntlm_wrong_password(auth_env, origin):
    gw = auth_env.make("ntlm basic")
    r = curl(gw.url, "--proxy-ntlm", "-U", "alice:wrong-password", origin.url("/echo"))
    assert r.status == 407, r
    assert origin.all_requests == []
    assert "event=auth_failed scheme=NTLM" in gw.error_log


def test_python_requests_ntlm(auth_env, origin, legacy_ssl_env):
    gw = auth_env.make("ntlm basic")
    p = run_python(REQUESTS_NTLM_SCRIPT, legacy_ssl_env, gw.url, "alice", PW["alice"],
                   origin.url("/echo/1"), origin.url("/echo/2"))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert [o["status"] for o in out] == [200, 200], out
    assert out[0]["history"] == [407, 407]
    assert out[1]["history"] == []  # the connection stayed authenticated
    reqs = origin.wait_requests(2)
    for q in reqs:
        assert q.header_all(IDENTITY_HEADER) == [auth_env.identity("alice")]
    # requests_ntlm (python3-ntlm-auth) sends a MIC with KEY_EXCH: verified
    assert "mic=yes" in gw.error_log


def test_ntlm_auth_raw_ntlmssp_inside_negotiate(auth_env, origin, legacy_ssl_env):
    """Row 68: a raw NTLMSSP token in Negotiate goes to the NTLM engine and is
    answered as Negotiate <type2>."""
    gw = auth_env.make("ntlm basic")
    c = gw.client()
    with NtlmAuthClient(legacy_ssl_env, "alice", PW["alice"]) as cl:
        t1 = cl.negotiate()
        r1 = c.request(get_request(origin.url("/echo"), [pa("Negotiate " + t1)]))
        challenge_from(r1, "Negotiate")  # exactly one Proxy-Authenticate: Negotiate <type2>
        t2 = r1.header("proxy-authenticate").split(" ", 1)[1]
        t3 = cl.authenticate(t2)
    r2 = c.request(get_request(origin.url("/echo"), [pa("Negotiate " + t3)]))
    assert ident(r2) == [auth_env.identity("alice")]
    assert r2.header("proxy-authentication-info") is None
    assert "event=auth_ok scheme=NTLM via=Negotiate" in gw.error_log
    # the connection is authenticated: no header needed any more
    assert ident(c.request(get_request(origin.url("/echo/2")))) == [auth_env.identity("alice")]


@pytest.mark.parametrize("flags", [0x00088206, WINDOWS_FLAGS, WINDOWS_FLAGS & ~F_UNICODE],
                         ids=["curl-oem", "windows-unicode", "oem-key-exch"])
@pytest.mark.parametrize("mic", [False, True], ids=["no-mic", "mic"])
def test_byte_level_client(auth_env, origin, flags, mic):
    gw = auth_env.make("ntlm")
    c = gw.client()
    r, chal, _ = ntlm_legs(c, origin.url("/echo"), "bob", PW["bob"],
                           neg=negotiate_msg(flags), mic=mic)
    assert ident(r) == [auth_env.identity("bob")]
    assert chal.unicode == bool(flags & F_UNICODE)
    assert ("mic=yes" if mic else "mic=no") in gw.error_log


# --------------------------------------------------------------------------- failures


def test_wrong_password_fresh_407_connection_kept(auth_env, origin):
    gw = auth_env.make("ntlm basic")
    c = gw.client()
    r, _, _ = ntlm_legs(c, origin.url("/echo"), "alice", "wrong")
    assert_error_response(r, 407)
    assert is_fresh_407(r, ["ntlm", "basic"]), r
    assert not c.is_closed(0.3)
    r, _, _ = ntlm_legs(c, origin.url("/echo"), "alice", PW["alice"])
    assert ident(r) == [auth_env.identity("alice")]
    assert [q.target for q in origin.all_requests] == ["/echo"]


def test_unknown_user_same_answer(auth_env, origin):
    gw = auth_env.make("ntlm basic")
    c = gw.client()
    wrong, _, _ = ntlm_legs(c, origin.url("/echo"), "alice", "wrong")
    unknown, _, _ = ntlm_legs(c, origin.url("/echo"), "nosuchuser", "wrong")
    assert wrong.status == unknown.status == 407
    assert wrong.headers == unknown.headers and wrong.body == unknown.body
    assert origin.all_requests == []


def test_unknown_domain(auth_env, origin):
    """DOM\\user for a domain the backend does not know: 407. The local file
    entry without a domain matches any domain, so there the user is a
    CORP\\dave entry asked for as OTHER\\dave."""
    if auth_env.backend == "local":
        write_user_file(auth_env.user_file, dict(USERS, **{"CORP\\dave": "dave-Pass4"}))
        user, pw = "dave", "dave-Pass4"
    else:
        user, pw = "alice", PW["alice"]
    gw = auth_env.make("ntlm basic")
    c = gw.client()
    r, _, _ = ntlm_legs(c, origin.url("/echo"), user, pw, domain="OTHERDOM")
    assert_error_response(r, 407)
    assert is_fresh_407(r)
    assert origin.all_requests == []
    assert "event=auth_failed scheme=NTLM" in gw.error_log


def test_winbind_domain_as_typed(winbind_env, origin):
    """The user's domain passes to winbind as typed (Samba also tries it upper-case)."""
    gw = winbind_env.make("ntlm")
    for dom in ("AUTHGATE", "authgate"):
        c = gw.client()
        r, _, _ = ntlm_legs(c, origin.url("/echo"), "alice", PW["alice"], domain=dom)
        assert ident(r) == ["AUTHGATE\\alice"]


def test_local_domain_entry_identity(local_env, origin):
    write_user_file(local_env.user_file, dict(USERS, **{"CORP\\dave": "dave-Pass4"}))
    gw = local_env.make("ntlm")
    r, _, _ = ntlm_legs(gw.client(), origin.url("/echo"), "dave", "dave-Pass4", domain="CORP")
    assert ident(r) == ["CORP\\dave"]


def test_winbind_stopped_503_then_recovers(winbind_env, origin):
    wb = winbind_env.winbind
    gw = winbind_env.make("ntlm")
    c = gw.client()
    chal, t1 = type1_leg(c, origin.url("/echo"))
    wb.stop()
    try:
        t3 = authenticate_msg(chal, "alice", PW["alice"], negotiate=t1)
        r = c.request(get_request(origin.url("/echo"), [ntlm_pa(t3)]), timeout=5)
        assert_error_response(r, 503)
        assert r.header("retry-after") is not None
        assert c.is_closed(2.0)
        gw.wait_log(r'level=error .*event=auth_backend_error scheme=NTLM .*user="?alice')
    finally:
        wb.start()
    r, _, _ = ntlm_legs(gw.client(), origin.url("/echo"), "alice", PW["alice"])
    assert ident(r) == ["AUTHGATE\\alice"]
    assert [q.target for q in origin.requests] == ["/echo"]


def test_winbind_hung_beyond_handshake_timeout_503(winbind_env, origin):
    wb = winbind_env.winbind
    gw = winbind_env.make("ntlm", handshake_timeout="1s")
    c = gw.client()
    chal, t1 = type1_leg(c, origin.url("/echo"))
    t3 = authenticate_msg(chal, "alice", PW["alice"], negotiate=t1)
    verification_times_out(gw, wb, c, get_request(origin.url("/echo"), [ntlm_pa(t3)]))
    r, _, _ = ntlm_legs(gw.client(), origin.url("/echo"), "alice", PW["alice"])
    assert r.status == 200
    assert "event=auth_ok" not in gw.error_log.split("auth_backend_timeout")[0]


def test_client_closes_while_verification_runs(winbind_env, origin):
    """Row 77 (NTLM): the job is detached and freed once; the next client is
    served; the ASan build would report a use-after-free or a leak."""
    wb = winbind_env.winbind
    gw = winbind_env.make("ntlm", handshake_timeout="20s", log_level="debug", ctl=True)
    c = gw.client()
    chal, t1 = type1_leg(c, origin.url("/echo"))
    t3 = authenticate_msg(chal, "alice", PW["alice"], negotiate=t1)
    conn_id = close_during_verification(gw, wb, c,
                                        get_request(origin.url("/echo/detached"), [ntlm_pa(t3)]))
    r, _, _ = ntlm_legs(gw.client(), origin.url("/echo/next"), "bob", PW["bob"])
    assert ident(r) == ["AUTHGATE\\bob"]
    assert "conn=%s event=auth_ok" % conn_id not in gw.error_log
    s = stats(gw)
    assert (s["jobs_submitted"], s["jobs_detached"], s["auth_ntlm_succeeded"]) == (2, 1, 1), s
    assert [q.target for q in origin.requests] == ["/echo/next"]


# --------------------------------------------------------------------------- the handshake


def test_type3_replayed_on_another_connection(local_env, origin):
    """Row 49: the challenge belongs to the connection that got it."""
    gw = local_env.make("ntlm basic")
    a = gw.client()
    chal, t1 = type1_leg(a, origin.url("/echo"))
    t3 = authenticate_msg(chal, "alice", PW["alice"], negotiate=t1)
    b = gw.client()
    r = b.request(get_request(origin.url("/echo"), [ntlm_pa(t3)]))
    assert_error_response(r, 407)
    assert is_fresh_407(r, ["ntlm", "basic"])
    # b's own handshake is unaffected, and a's challenge is still a's
    r = a.request(get_request(origin.url("/echo"), [ntlm_pa(t3)]))
    assert ident(r) == ["alice"]
    assert [q.target for q in origin.requests] == ["/echo"]


def test_type3_replayed_after_success_on_same_connection(local_env, origin):
    gw = local_env.make("ntlm basic")
    c = gw.client()
    r, _, t3 = ntlm_legs(c, origin.url("/echo"), "alice", PW["alice"])
    assert ident(r) == ["alice"]
    r = c.request(get_request(origin.url("/echo/replay"), [ntlm_pa(t3)]))
    assert_error_response(r, 407)
    assert is_fresh_407(r)
    # a new credential unauthenticated the connection first (row 36)
    r = c.request(get_request(origin.url("/echo/after")))
    assert_error_response(r, 407)
    assert [q.target for q in origin.requests] == ["/echo"]


def test_type3_replayed_after_failure_on_same_connection(local_env, origin):
    """Row 50: a second Type 3 after a failed one needs a new Type 1."""
    gw = local_env.make("ntlm basic")
    c = gw.client()
    chal, t1 = type1_leg(c, origin.url("/echo"))
    bad = authenticate_msg(chal, "alice", "wrong", negotiate=t1)
    good = authenticate_msg(chal, "alice", PW["alice"], negotiate=t1)
    assert_error_response(c.request(get_request(origin.url("/echo"), [ntlm_pa(bad)])), 407)
    r = c.request(get_request(origin.url("/echo"), [ntlm_pa(good)]))
    assert_error_response(r, 407)
    assert is_fresh_407(r)
    assert origin.all_requests == []
    assert "auth_ok" not in log_events(gw)


def test_client_closes_between_type2_and_type3(local_env, origin):
    """The handshake slot is freed when the client goes away: with
    max_handshakes_per_addr 1, the next client still gets its challenge."""
    gw = local_env.make("ntlm", max_handshakes_per_addr=1, log_level="debug", ctl=True)
    a = gw.client()
    type1_leg(a, origin.url("/echo"))
    assert status(gw)["handshakes"] == "1"
    a.close()
    gw.wait_log(r"conn=\d+ event=close reason=client_(eof|error)")
    st = status(gw)
    assert (st["connections"], st["handshakes"]) == ("0", "0"), st
    b = gw.client()
    r, _, _ = ntlm_legs(b, origin.url("/echo"), "alice", PW["alice"])
    assert ident(r) == ["alice"]


def test_type1_with_connection_close(local_env, origin):
    """Row 19: the Type 2 is sent, then the connection closes (NTLM cannot complete)."""
    gw = local_env.make("ntlm basic")
    c = gw.client()
    r = c.request(get_request(origin.url("/echo"), [ntlm_pa(negotiate_msg()),
                                                     ("Connection", "close")]))
    chal = challenge_from(r)
    assert chal.server_challenge != b"\0" * 8
    assert "close" in r.tokens("connection")
    assert c.is_closed(2.0)
    assert origin.all_requests == []


def test_handshake_timeout_closes(local_env, origin):
    """Row 34: Type 2, then silence: closed after handshake_timeout (1s),
    long before idle_timeout (60s)."""
    gw = local_env.make("ntlm", handshake_timeout="1s", idle_timeout="60s", ctl=True)
    c = gw.client()
    type1_leg(c, origin.url("/echo"))
    assert c.is_closed(6.0), "unfinished handshake kept open"
    gw.wait_log(r"event=handshake_timeout")
    wait_until(lambda: status(gw)["handshakes"] == "0", 5, "the handshake slot freed")
    assert stats(gw)["auth_fail_timeout"] == 1


def test_round_cap(local_env, origin):
    """Row 33: repeated Type 1s: three legs answered, the fourth gets a fresh
    407 and the connection closes."""
    gw = local_env.make("ntlm basic", ctl=True)
    c = gw.client()
    seen = set()
    for _ in range(3):
        chal, _ = type1_leg(c, origin.url("/echo"))
        seen.add(chal.server_challenge)
    assert len(seen) == 3, "every Type 1 must get a fresh challenge"
    r = c.request(get_request(origin.url("/echo"), [ntlm_pa(negotiate_msg())]))
    assert_error_response(r, 407)
    assert is_fresh_407(r, ["ntlm", "basic"])
    assert c.is_closed(2.0)
    assert "auth_too_many_rounds" in log_events(gw)
    assert stats(gw)["limit_rounds"] == 1


def test_new_type1_replaces_the_challenge(local_env, origin):
    """Row 51: a Type 3 for the replaced challenge fails, one for the new succeeds."""
    gw = local_env.make("ntlm")
    c = gw.client()
    old, t1 = type1_leg(c, origin.url("/echo"))
    new, t1b = type1_leg(c, origin.url("/echo"))
    assert old.server_challenge != new.server_challenge
    stale = authenticate_msg(old, "alice", PW["alice"], negotiate=t1)
    r = c.request(get_request(origin.url("/echo"), [ntlm_pa(stale)]))
    assert_error_response(r, 407)
    c2 = gw.client()
    old, t1 = type1_leg(c2, origin.url("/echo"))
    new, t1b = type1_leg(c2, origin.url("/echo"))
    fresh = authenticate_msg(new, "alice", PW["alice"], negotiate=t1b)
    assert ident(c2.request(get_request(origin.url("/echo"), [ntlm_pa(fresh)]))) == ["alice"]


def test_valid_type3_with_connection_close(local_env, origin):
    """Row 20: authenticate, serve, then close."""
    gw = local_env.make("ntlm")
    c = gw.client()
    chal, t1 = type1_leg(c, origin.url("/echo"))
    t3 = authenticate_msg(chal, "alice", PW["alice"], negotiate=t1)
    r = c.request(get_request(origin.url("/echo"), [ntlm_pa(t3), ("Connection", "close")]))
    assert ident(r) == ["alice"]
    assert c.is_closed(2.0)


def test_invalid_type3_with_connection_close(local_env, origin):
    """Row 21: 407f, then close."""
    gw = local_env.make("ntlm basic")
    c = gw.client()
    chal, t1 = type1_leg(c, origin.url("/echo"))
    t3 = authenticate_msg(chal, "alice", "wrong", negotiate=t1)
    r = c.request(get_request(origin.url("/echo"), [ntlm_pa(t3), ("Connection", "close")]))
    assert_error_response(r, 407)
    assert is_fresh_407(r)
    assert c.is_closed(2.0)
    assert origin.all_requests == []


def test_http10_without_keepalive_starting_ntlm(local_env, origin):
    """Row 18: HTTP/1.0 without keep-alive cannot finish NTLM: 407, then close."""
    gw = local_env.make("ntlm")
    c = gw.client()
    r = c.request(build_request("GET", origin.url("/echo"),
                                [("Host", origin.authority()), ntlm_pa(negotiate_msg())],
                                version="HTTP/1.0"))
    assert r.status == 407
    assert c.is_closed(2.0)
    assert origin.all_requests == []


def test_http10_keepalive_ntlm_completes(local_env, origin):
    gw = local_env.make("ntlm")
    c = gw.client()
    hdrs = [("Host", origin.authority()), ("Proxy-Connection", "keep-alive")]
    t1 = negotiate_msg()
    r = c.request(build_request("GET", origin.url("/echo"), hdrs + [ntlm_pa(t1)],
                                version="HTTP/1.0"))
    chal = challenge_from(r)
    t3 = authenticate_msg(chal, "alice", PW["alice"], negotiate=t1)
    r = c.request(build_request("GET", origin.url("/echo"), hdrs + [ntlm_pa(t3)],
                                version="HTTP/1.0"))
    assert ident(r) == ["alice"]


def test_post_body_on_type1_leg_is_drained(local_env, origin):
    """Row 22: a POST's body sent with the Type 1 is drained; the handshake
    completes on the same connection."""
    gw = local_env.make("ntlm")
    c = gw.client()
    body = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n" * 20
    t1 = negotiate_msg()
    r = c.request(get_request(origin.url("/echo"), [ntlm_pa(t1)], method="POST", body=body))
    chal = challenge_from(r)
    t3 = authenticate_msg(chal, "alice", PW["alice"], negotiate=t1)
    r = c.request(get_request(origin.url("/echo"), [ntlm_pa(t3)], method="POST", body=b"real"))
    assert ident(r) == ["alice"]
    assert json.loads(r.body)["body"] == "real"
    assert [q.target for q in origin.all_requests] == ["/echo"]


def test_authenticated_connection_idle_timeout(local_env, origin):
    """Row 76: an authenticated connection left idle is closed by idle_timeout."""
    gw = local_env.make("ntlm", idle_timeout="1s")
    c = gw.client()
    r, _, _ = ntlm_legs(c, origin.url("/echo"), "alice", PW["alice"])
    assert r.status == 200
    assert c.is_closed(6.0)


def test_identity_max_age(local_env, origin):
    """After identity_max_age the connection must authenticate again."""
    import time
    gw = local_env.make("ntlm", identity_max_age="2s")
    c = gw.client()
    r, _, _ = ntlm_legs(c, origin.url("/echo"), "alice", PW["alice"])
    assert r.status == 200
    t_auth = time.monotonic()
    r = c.request(get_request(origin.url("/echo/soon")))
    assert time.monotonic() - t_auth < 2.0
    assert ident(r) == ["alice"]
    time.sleep(max(0.0, 2.3 - (time.monotonic() - t_auth)))
    r = c.request(get_request(origin.url("/echo/later")))
    assert_error_response(r, 407)
    r, _, _ = ntlm_legs(c, origin.url("/echo/again"), "alice", PW["alice"])
    assert ident(r) == ["alice"]
    assert [q.target for q in origin.requests] == ["/echo", "/echo/soon", "/echo/again"]


def test_basic_on_ntlm_authenticated_connection_replaces_identity(local_env, origin):
    """Row 36: a new Proxy-Authorization unauthenticates first."""
    gw = local_env.make("ntlm basic")
    c = gw.client()
    r, _, _ = ntlm_legs(c, origin.url("/echo"), "alice", PW["alice"])
    assert ident(r) == ["alice"]
    r = c.request(get_request(origin.url("/echo"), [pa(basic("bob", "wrong"))]))
    assert_error_response(r, 407)
    r = c.request(get_request(origin.url("/echo/none")))
    assert_error_response(r, 407)  # alice's identity is gone
    r = c.request(get_request(origin.url("/echo/bob"), [pa(basic("bob", PW["bob"]))]))
    assert ident(r) == ["bob"]
    r = c.request(get_request(origin.url("/echo/none")))
    assert_error_response(r, 407)  # Basic is per request
    assert [q.target for q in origin.requests] == ["/echo", "/echo/bob"]


# --------------------------------------------------------------------------- more clients, options


@pytest.mark.parametrize("size", [10, 5000, 200000])
def test_curl_ntlm_post(local_env, origin, tmp_path, size):
    """curl sends the NEGOTIATE leg of a POST without its body, then the body
    with the AUTHENTICATE (large bodies with Expect: 100-continue)."""
    gw = local_env.make("ntlm")
    f = tmp_path / "body"
    f.write_bytes(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
    r = curl(gw.url, "--proxy-ntlm", "-U", "alice:%s" % PW["alice"], "--data-binary",
             "@%s" % f, origin.url("/echo"))
    assert r.rc == 0 and r.status == 200, r
    j = json.loads(r.body)
    assert j["body_len"] == size
    assert [q.method for q in origin.requests] == ["POST"]


def test_ntlm_domain_option_in_challenge(local_env, origin):
    gw = local_env.make("ntlm", ntlm_domain="CORPX", ntlm_dns_domain="corpx.test")
    c = gw.client()
    chal, _ = type1_leg(c, origin.url("/echo"), neg=negotiate_msg(WINDOWS_FLAGS))
    assert chal.target_name.decode("utf-16-le") == "CORPX"
    assert chal.nb_domain == "CORPX"
    assert chal.av_value(4).decode("utf-16-le") == "corpx.test"
    assert chal.flags & 0x00800000  # TARGET_INFO, always
    t3 = authenticate_msg(chal, "alice", PW["alice"])
    assert ident(c.request(get_request(origin.url("/echo"), [ntlm_pa(t3)]))) == ["alice"]


def test_local_identity_does_not_take_the_client_domain(local_env, origin):
    gw = local_env.make("ntlm")
    r, _, _ = ntlm_legs(gw.client(), origin.url("/echo"), "alice", PW["alice"],
                        domain="ANYDOM")
    assert ident(r) == ["alice"]


def test_reload_mid_handshake_keeps_it(local_env, origin):
    """SIGHUP between Type 2 and Type 3: handshakes in progress are kept."""
    gw = local_env.make("ntlm basic")
    c = gw.client()
    chal, t1 = type1_leg(c, origin.url("/echo"))
    gw.reload()
    t3 = authenticate_msg(chal, "alice", PW["alice"], negotiate=t1)
    assert ident(c.request(get_request(origin.url("/echo"), [ntlm_pa(t3)]))) == ["alice"]


def test_ntlmssp_in_negotiate_without_ntlm_offered(local_env, origin):
    """With NTLM not offered, a raw NTLMSSP token in Negotiate is not answered
    with a challenge."""
    gw = local_env.make("basic")
    c = gw.client()
    r = c.request(get_request(origin.url("/echo"), [ntlm_pa(negotiate_msg(), "Negotiate")]))
    assert_error_response(r, 407)
    assert offered(r) == ["basic"] and is_fresh_407(r)


def test_max_jobs_cap_503(winbind_env, origin):
    """Verifications in flight beyond max_jobs get 503 at once (never a queue
    without bound), and the one in flight still completes."""
    wb = winbind_env.winbind
    gw = winbind_env.make("ntlm", max_jobs=1, handshake_timeout="20s", ctl=True)
    a, b = gw.client(), gw.client()
    ca, ta = type1_leg(a, origin.url("/echo"))
    cb, tb = type1_leg(b, origin.url("/echo"))
    wb.pause()
    try:
        a.send(get_request(origin.url("/echo/a"), [ntlm_pa(authenticate_msg(
            ca, "alice", PW["alice"], negotiate=ta))]))
        wait_until(lambda: threads_waiting_on_socket(gw.proc.pid), 10,
                   "a pool thread blocked on the paused winbindd")
        r = b.request(get_request(origin.url("/echo/b"), [ntlm_pa(authenticate_msg(
            cb, "bob", PW["bob"], negotiate=tb))]), timeout=5)
        assert_error_response(r, 503)
        assert b.is_closed(2.0)
    finally:
        wb.resume()
    assert ident(a.recv_response(timeout=10)) == ["AUTHGATE\\alice"]
    assert [q.target for q in origin.requests] == ["/echo/a"]
    s = stats(gw)
    assert (s["limit_jobs"], s["jobs_refused_cap"], s["jobs_submitted"]) == (1, 1, 1), s


def test_winbind_challenge_names_winbind_domain(winbind_env, origin):
    """With the winbind backend the CHALLENGE's target info names winbind's
    own NetBIOS domain (its interface details), not the configured one."""
    gw = winbind_env.make("ntlm", ntlm_domain="CONFIGURED")
    chal, _ = type1_leg(gw.client(), origin.url("/echo"))
    assert chal.nb_domain == winbind_env.winbind.domain
    gw.wait_log(r"event=winbind_names nb_domain=%s" % winbind_env.winbind.domain)


def test_local_challenge_names_configured_domain(local_env, origin):
    gw = local_env.make("ntlm", ntlm_domain="CONFIGURED")
    chal, _ = type1_leg(gw.client(), origin.url("/echo"))
    assert chal.nb_domain == "CONFIGURED"


# --------------------------------------------------------------------------- LMv2 downgrade
#
# A genuine client sends a valid LMv2 response next to its NTLMv2 one
# (authenticate_msg(lm=True), as Windows does). LMv2 proves the password but
# binds none of the blob's AV pairs, so a relay that alters the blob (target
# name, MsvAvFlags) makes NTProofStr fail: the gateway must not let the
# backend fall back to LMv2 then.

PROXY_HOST = "proxy.authgate.test"


def _utf16(s):
    return s.encode("utf-16-le")


def _with_target_name(name):
    return lambda pairs: [p for p in pairs if p[0] != AV_TARGET_NAME] + [(AV_TARGET_NAME,
                                                                          _utf16(name))]


def _nt_of(msg):
    ln, _, off = get_field(msg, "nt")
    return msg[off:off + ln]


def _lmv2_tampered(chal, t1, user, password, edit_nt, target=None):
    """(genuine Type 3, Type 3 whose NT response is edit_nt(genuine NT
    response)); both carry the same valid LMv2 response."""
    cc = os.urandom(8)
    kw = dict(negotiate=t1, client_challenge=cc,
              av_edit=_with_target_name(target) if target else None)
    good = authenticate_msg(chal, user, password, **kw)
    bad = authenticate_msg(chal, user, password, nt_override=edit_nt(_nt_of(good)), **kw)
    assert get_field(good, "lm")[0] == get_field(bad, "lm")[0] == 24
    return good, bad


def _rewrite_target_name(name):
    """Edits an NTLMv2 response's MsvAvTargetName in place, leaving NTProofStr
    as it was (what a relay can do). nt = NTProofStr(16) + blob header(28) +
    AV pairs + 4 zero bytes."""
    def edit(nt):
        pairs = _with_target_name(name)(av_parse(nt[44:-4]))
        return nt[:44] + av_pack(pairs) + nt[-4:]
    return edit


def _flip(i):
    return lambda nt: nt[:i] + bytes([nt[i] ^ 0x01]) + nt[i + 1:]


@pytest.mark.parametrize("byte", [0, 12], ids=["first-half", "second-half"])
def test_lmv2_next_to_tampered_ntproofstr_refused(auth_env, origin, byte):
    """Issue 10 item 1: a flipped NTProofStr byte with a valid LMv2 beside it
    is refused (winbind: authgate no longer hands Samba the LM response,
    from which it fell back to LMv2)."""
    gw = auth_env.make("ntlm", fail_max_per_user=1000, fail_max_per_addr=1000)
    c = gw.client()
    chal, t1 = type1_leg(c, origin.url("/echo"))
    good, bad = _lmv2_tampered(chal, t1, "alice", PW["alice"], _flip(byte))
    r = c.request(get_request(origin.url("/echo"), [ntlm_pa(bad)]))
    assert_error_response(r, 407)
    assert is_fresh_407(r), r
    gw.wait_log(r"event=auth_failed scheme=NTLM")
    # the genuine message (same LMv2) for a fresh challenge still succeeds
    chal, t1 = type1_leg(c, origin.url("/echo"))
    good, _ = _lmv2_tampered(chal, t1, "alice", PW["alice"], _flip(byte))
    assert ident(c.request(get_request(origin.url("/echo"), [ntlm_pa(good)]))) == [
        auth_env.identity("alice")]
    assert [q.target for q in origin.requests] == ["/echo"]


def test_lmv2_next_to_rewritten_target_name_refused(auth_env, origin):
    """Issue 10 item 1, the relay: the client named another server
    (HTTP/evil.example); the relay rewrites MsvAvTargetName to our SPN so
    that the target-name check passes, and cannot recompute NTProofStr. The
    valid LMv2 beside it must not rescue it."""
    evil = "HTTP/evil.example"
    gw = auth_env.make("ntlm", proxy_host=PROXY_HOST)
    c = gw.client()
    chal, t1 = type1_leg(c, origin.url("/echo"))
    _, bad = _lmv2_tampered(chal, t1, "alice", PW["alice"],
                            _rewrite_target_name("HTTP/" + PROXY_HOST), target=evil)
    assert _utf16("HTTP/" + PROXY_HOST) in bad
    r = c.request(get_request(origin.url("/echo"), [ntlm_pa(bad)]))
    assert_error_response(r, 407)
    assert is_fresh_407(r), r
    # it reached the backend (the target name now matches) and failed there
    gw.wait_log(r"event=auth_failed scheme=NTLM")
    assert origin.all_requests == []


# --------------------------------------------------------------------------- MsvAvTargetName
#
# Issue 10 item 2 (BAD-INPUTS row 62): with proxy_host set, a target name
# must be HTTP/<proxy_host> or HTTP/<proxy_host>:<listening port> (Chromium
# names the port when it is not 80), in any letter case. The byte-level
# client puts it into the blob before NTProofStr (and the MIC) are computed,
# as a real client does.


def _target_cases():
    return [
        ("bare", lambda gw: "HTTP/" + PROXY_HOST, 200),
        ("port", lambda gw: "HTTP/%s:%d" % (PROXY_HOST, gw.ports[0]), 200),
        ("second-listener-port", lambda gw: "HTTP/%s:%d" % (PROXY_HOST, gw.ports[1]), 200),
        ("upper-case", lambda gw: "HTTP/" + PROXY_HOST.upper(), 200),
        ("mixed-case-port", lambda gw: "http/%s:%d" % (PROXY_HOST.title(), gw.ports[0]), 200),
        ("evil", lambda gw: "HTTP/evil.example", 407),
        ("other-port", lambda gw: "HTTP/%s:%d" % (PROXY_HOST, _other_port(gw)), 407),
        ("empty-port", lambda gw: "HTTP/%s:" % PROXY_HOST, 407),
        ("trailing-dot", lambda gw: "HTTP/%s." % PROXY_HOST, 407),
        ("other-service", lambda gw: "HOST/" + PROXY_HOST, 407),
    ]


def _other_port(gw):
    p = gw.ports[0] + 1
    while p in gw.ports:
        p += 1
    return p


@pytest.mark.parametrize("mic", [False, True], ids=["no-mic", "mic"])
@pytest.mark.parametrize("case", _target_cases(), ids=[c[0] for c in _target_cases()])
def test_target_name_with_proxy_host(auth_env, origin, case, mic):
    _, target, status = case
    gw = auth_env.make("ntlm basic", proxy_host=PROXY_HOST,
                       listen=["127.0.0.1:%d" % free_port(), "127.0.0.1:%d" % free_port()])
    c = gw.client()
    name = target(gw)
    r, _, t3 = ntlm_legs(c, origin.url("/echo"), "alice", PW["alice"],
                         neg=negotiate_msg(WINDOWS_FLAGS), mic=mic,
                         av_edit=_with_target_name(name))
    assert _utf16(name) in t3
    if status == 200:
        assert ident(r) == [auth_env.identity("alice")]
        return
    assert_error_response(r, 407)
    assert is_fresh_407(r, ["ntlm", "basic"]), r
    # refused before the backend, with the reason in the log
    gw.wait_log(r'event=auth_refused scheme=NTLM .*reason="MsvAvTargetName is not one of our SPNs"')
    assert "auth_ok" not in log_events(gw) and "auth_failed" not in log_events(gw)
    assert origin.all_requests == []


def test_target_name_any_without_proxy_host(local_env, origin):
    """Without proxy_host the gateway does not know its name: any target
    name passes (a guessed host name would refuse honest clients)."""
    gw = local_env.make("ntlm")
    r, _, _ = ntlm_legs(gw.client(), origin.url("/echo"), "alice", PW["alice"],
                        av_edit=_with_target_name("HTTP/evil.example"))
    assert ident(r) == ["alice"]


def test_target_name_rebuilt_on_reload(local_env, origin):
    """The accepted names follow proxy_host across a reload."""
    gw = local_env.make("ntlm", proxy_host=PROXY_HOST)
    other = "other.authgate.test"
    name = "HTTP/%s:%d" % (other, gw.port)
    r, _, _ = ntlm_legs(gw.client(), origin.url("/echo"), "alice", PW["alice"],
                        av_edit=_with_target_name(name))
    assert_error_response(r, 407)
    gw.reload({"proxy_host": other})
    gw.wait_log(r"event=reloaded")
    r, _, _ = ntlm_legs(gw.client(), origin.url("/echo"), "alice", PW["alice"],
                        av_edit=_with_target_name(name))
    assert ident(r) == ["alice"]


def test_target_name_of_explicit_acceptor(local_env, origin):
    """The host of an explicit `negotiate_acceptor HTTP/<host>@REALM` is one
    of the proxy's names too (with and without a listening port)."""
    alias = "alias.authgate.test"
    gw = local_env.make("ntlm", proxy_host=PROXY_HOST,
                        negotiate_acceptor="HTTP/%s@AUTHGATE.TEST" % alias)
    for name, status in (("HTTP/" + alias, 200), ("HTTP/%s:%d" % (alias.upper(), gw.port), 200),
                         ("HTTP/%s:%d" % (PROXY_HOST, gw.port), 200),
                         ("HTTP/AUTHGATE.TEST", 407), ("HTTP/%s@AUTHGATE.TEST" % alias, 407)):
        r, _, _ = ntlm_legs(gw.client(), origin.url("/echo"), "alice", PW["alice"],
                            av_edit=_with_target_name(name))
        assert r.status == status, (name, r)


# --------------------------------------------------------------------------- machine accounts
#
# Issue 10 item 5: a workstation or server trust account (HOST$) is a
# computer, not a person; through winbind it is refused unless
# `ntlm_allow_machine_accounts on`. A private winbindd: the accounts are added
# to its tdbsam with account flags [W] and [S] (peers Winbind.add_machine).

MACHINE_PW = "Machine-Pass1"


@pytest.fixture
def machine_env(make_gateway, tmp_path, request, fresh_winbind):
    fresh_winbind.add_machine("ws1", MACHINE_PW, "W")
    fresh_winbind.add_machine("srv1", MACHINE_PW, "S")
    env = AuthEnv("winbind", make_gateway, tmp_path, fresh_winbind)
    request.addfinalizer(env.finish)
    return env


@pytest.mark.parametrize("account", ["WS1$", "SRV1$"])
def test_machine_account_refused_by_default(machine_env, origin, account):
    gw = machine_env.make("ntlm basic")
    r, _, _ = ntlm_legs(gw.client(), origin.url("/echo"), account, MACHINE_PW)
    assert_error_response(r, 407)
    assert is_fresh_407(r), r
    gw.wait_log(r'event=auth_failed scheme=NTLM .*user="%s" .*reason="machine account"'
                % re.escape(account))
    # Basic never admits them either
    r = gw.client().request(get_request(origin.url("/echo"), [pa(basic(account, MACHINE_PW))]))
    assert_error_response(r, 407)
    # people still log in
    r, _, _ = ntlm_legs(gw.client(), origin.url("/echo"), "alice", PW["alice"])
    assert ident(r) == ["AUTHGATE\\alice"]
    assert [q.target for q in origin.requests] == ["/echo"]


@pytest.mark.parametrize("account", ["WS1$", "SRV1$"])
def test_machine_account_with_option(machine_env, origin, account):
    gw = machine_env.make("ntlm", ntlm_allow_machine_accounts="on")
    r, _, _ = ntlm_legs(gw.client(), origin.url("/echo"), account, MACHINE_PW)
    assert ident(r) == ["AUTHGATE\\" + account]


# --------------------------------------------------------------------------- guards (issue 10)


@pytest.mark.parametrize("flags", [CURL_FLAGS, WINDOWS_FLAGS], ids=["no-key-exch", "key-exch"])
@pytest.mark.parametrize("byte", [0, 9, 15])
def test_mic_one_byte_flipped_default_config(auth_env, origin, flags, byte):
    """Row 60 with both backends, under the default configuration
    (ntlm_require_mic off): a MIC with one byte flipped is refused once the
    backend produced the key; the untouched message for the next challenge
    passes."""
    gw = auth_env.make("ntlm basic")
    c = gw.client()
    chal, t1 = type1_leg(c, origin.url("/echo"), neg=negotiate_msg(flags))
    m = bytearray(authenticate_msg(chal, "alice", PW["alice"], negotiate=t1, mic=True))
    m[72 + byte] ^= 0x01
    r = c.request(get_request(origin.url("/echo"), [ntlm_pa(bytes(m))]))
    assert_error_response(r, 407)
    assert is_fresh_407(r, ["ntlm", "basic"]), r
    gw.wait_log(r'event=auth_failed scheme=NTLM .*reason="MIC mismatch"')
    r, _, _ = ntlm_legs(c, origin.url("/echo"), "alice", PW["alice"],
                        neg=negotiate_msg(flags), mic=True)
    assert ident(r) == [auth_env.identity("alice")]
    assert [q.target for q in origin.requests] == ["/echo"]


def test_new_type1_on_authenticated_connection_clears_identity(auth_env, origin):
    """Row 36 for NTLM: a Type 1 on an NTLM-authenticated connection
    unauthenticates it first; `authgatectl status` then counts no
    authenticated connection, and a request without credentials gets 407."""
    gw = auth_env.make("ntlm basic", ctl=True)
    c = gw.client()
    r, _, _ = ntlm_legs(c, origin.url("/echo"), "alice", PW["alice"])
    assert ident(r) == [auth_env.identity("alice")]
    st = status(gw)
    assert (st["authenticated"], st["handshakes"]) == ("1", "0"), st
    chal, _ = type1_leg(c, origin.url("/echo/again"))
    st = status(gw)
    assert (st["authenticated"], st["handshakes"]) == ("0", "1"), st
    assert stats(gw)["auth_identity_reset"] == 1
    r = c.request(get_request(origin.url("/echo/none")))
    assert_error_response(r, 407)  # the old identity is gone
    assert is_fresh_407(r, ["ntlm", "basic"]), r
    st = status(gw)
    assert (st["authenticated"], st["handshakes"]) == ("0", "0"), st
    assert [q.target for q in origin.requests] == ["/echo"]
