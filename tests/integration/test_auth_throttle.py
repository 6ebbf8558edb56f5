"""Failure throttling and handshake caps keyed so that no client can lock out
or crowd out another (issue 10, items 3 and 12; BAD-INPUTS rows 35 and 75).

Real gateway, Basic and NTLM, the local user file and a real winbindd. The
tests play several client addresses at once: every address in 127.0.0.0/8
is local on Linux, so a client binds its socket to one before connecting
(RawClient(source=...), curl --interface).

Run: /usr/bin/python3 -m pytest -q tests/integration/test_auth_throttle.py
"""

import pytest

from harness.auth import USERS
from harness.auth import auth_env, backend, local_env  # noqa: F401 (fixtures)
from harness.ctl_client import stats, status
from harness.gateway import log_events
from harness.ntlm_client import (authenticate_msg, b64, basic, negotiate_msg, ntlm_legs, pa,
                                 type1_leg)
from harness.rawhttp import get_request
from harness.tools import assert_error_response, curl

pytest_plugins = ["peers.fixtures"]

GUESSER, USER_ADDR, THIRD = "127.0.0.2", "127.0.0.3", "127.0.0.4"
# The defaults (limits.h): per (user, address) 5, per address 50, per user 10.
PAIR_CAP = 5


def attempt(gw, url, scheme, user, password, source, **t3_kw):
    """One authentication on a fresh connection from source: the final response."""
    c = gw.client(source=source)
    try:
        if scheme == "basic":
            return c.request(get_request(url, [pa(basic(user, password))]))
        r, _, _ = ntlm_legs(c, url, user, password, **t3_kw)
        return r
    finally:
        c.close()


def curl_login(gw, url, scheme, user, source):
    """A real client (curl) from source: its final status."""
    r = curl(gw.url, "--interface", source, "--proxy-%s" % scheme, "-U",
             "%s:%s" % (user, USERS[user]), url)
    assert r.rc == 0, r
    return r.status


# --------------------------------------------------------------------------- item 3


@pytest.mark.parametrize("scheme", ["basic", "ntlm"])
def test_one_address_cannot_lock_a_user_out(auth_env, origin, scheme):
    """50 bad attempts for alice from one address: that address is held for
    alice (even with her right password), alice from another address gets
    200 at once. Before the fix the 10th failure refused alice everywhere."""
    gw = auth_env.make("ntlm basic", basic_cache_ttl=0, ctl=True)
    url = origin.url("/echo")
    for i in range(50):
        r = attempt(gw, url, scheme, "alice", "guess%d" % i, GUESSER)
        assert_error_response(r, 407)
    assert curl_login(gw, url, scheme, "alice", USER_ADDR) == 200
    r = attempt(gw, url, scheme, "alice", USERS["alice"], GUESSER)
    assert_error_response(r, 407)
    ev = log_events(gw)
    assert ev.count("auth_failed") == PAIR_CAP, ev
    assert ev.count("auth_throttled") == 50 - PAIR_CAP + 1, ev
    s = stats(gw)
    assert s["jobs_submitted"] == PAIR_CAP + 1, s  # the guesses that reached it, alice
    assert s["throttle_refused_user_addr"] == 50 - PAIR_CAP + 1, s
    assert s["throttle_refused_user"] == 0, s
    # verified wrong passwords (winbind: NT_STATUS_WRONG_PASSWORD) feed the ceiling
    assert s["throttle_wrong_passwords"] == PAIR_CAP, s
    assert len(origin.all_requests) == 1


def test_mic_mismatch_never_counts_against_the_user(local_env, origin):
    """Type 3s with the right password and a tampered MIC, from several
    addresses: each address is held, but the user's ceiling counts verified
    wrong passwords only, so alice still logs in from elsewhere."""
    gw = local_env.make("ntlm basic", fail_max_per_user=2, ctl=True)
    url = origin.url("/echo")
    for i in range(4):
        c = gw.client(source="127.0.1.%d" % (i + 1))
        chal, t1 = type1_leg(c, url)
        t3 = bytearray(authenticate_msg(chal, "alice", USERS["alice"], negotiate=t1, mic=True))
        t3[80] ^= 0x01
        assert_error_response(c.request(get_request(url, [pa("NTLM " + b64(bytes(t3)))])), 407)
        c.close()
    assert 'reason="MIC mismatch"' in gw.error_log
    assert curl_login(gw, url, "ntlm", "alice", USER_ADDR) == 200
    s = stats(gw)
    assert (s["throttle_wrong_passwords"], s["throttle_refused_user"]) == (0, 0), s


def test_ceiling_guards_the_backend_from_many_addresses(local_env, origin):
    """Wrong passwords for alice from many addresses reach the per-user
    ceiling (the guard below the domain's lockout): then no attempt for alice
    goes to the backend from a fresh address, but an address where alice
    logged in during the window goes on, and other users are untouched."""
    gw = local_env.make("ntlm basic", fail_max_per_user=4, basic_cache_ttl=0, ctl=True)
    url = origin.url("/echo")
    assert attempt(gw, url, "basic", "alice", "wrong", "127.0.2.1").status == 407
    assert attempt(gw, url, "basic", "alice", USERS["alice"], USER_ADDR).status == 200
    for src in ("127.0.2.2", "127.0.2.3"):  # 2 each: one address gets half the ceiling
        for i in range(3):
            assert attempt(gw, url, "basic", "alice", "wrong%d" % i, src).status == 407
    s = stats(gw)
    assert s["jobs_submitted"] == 6, s  # 1 + alice + 2 x 2: the third of each held back
    assert attempt(gw, url, "ntlm", "alice", USERS["alice"], THIRD).status == 407
    assert attempt(gw, url, "ntlm", "alice", USERS["alice"], USER_ADDR).status == 200
    assert attempt(gw, url, "basic", "bob", USERS["bob"], THIRD).status == 200
    s = stats(gw)
    assert (s["throttle_refused_user"], s["throttle_ceiling_passed"]) == (1, 1), s
    assert s["throttle_wrong_passwords"] == 5, s


def test_throttled_pair_gets_407_whatever_the_cache_holds(auth_env, origin):
    """Alice's password is in the Basic cache (she logged in from her
    address); a guesser throttled for alice who then sends exactly that
    password gets 407, not a cache hit. Alice herself keeps her cache."""
    gw = auth_env.make("basic", basic_cache_ttl="5m", ctl=True)
    url = origin.url("/echo")
    assert curl_login(gw, url, "basic", "alice", USER_ADDR) == 200
    for i in range(PAIR_CAP):
        assert_error_response(attempt(gw, url, "basic", "alice", "guess%d" % i, GUESSER), 407)
    r = attempt(gw, url, "basic", "alice", USERS["alice"], GUESSER)
    assert_error_response(r, 407)
    assert log_events(gw).count("auth_throttled") == 1
    assert curl_login(gw, url, "basic", "alice", USER_ADDR) == 200
    s = stats(gw)
    assert s["auth_basic_cache_hits"] == 1, s
    assert s["throttle_refused_user_addr"] == 1, s
    assert len(origin.all_requests) == 2


@pytest.mark.parametrize("scheme", ["basic", "ntlm"])
def test_guessing_bounded_per_address(local_env, origin, scheme):
    """One address trying many users (4 guesses each, under the per-user
    cap) is refused for all of them after fail_max_per_addr failures, even
    with a right password; another address is not affected."""
    gw = local_env.make("ntlm basic", fail_max_per_addr=12, basic_cache_ttl=0, ctl=True)
    url = origin.url("/echo")
    for i in range(20):
        r = attempt(gw, url, scheme, "user%d" % (i // 4), "guess%d" % i, GUESSER)
        assert_error_response(r, 407)
    assert attempt(gw, url, scheme, "carol", USERS["carol"], GUESSER).status == 407
    assert attempt(gw, url, scheme, "carol", USERS["carol"], USER_ADDR).status == 200
    s = stats(gw)
    assert s["jobs_submitted"] == 13, s
    assert s["throttle_refused_addr"] == 9, s


# --------------------------------------------------------------------------- item 12


def open_pending(gw, url, source, limit):
    """Opens NTLM handshakes (Type 1, challenge, no Type 3) from source until
    one gets 503 or limit are open. Returns (clients held open, 503 seen)."""
    held = []
    for _ in range(limit):
        c = gw.client(source=source)
        r = c.request(get_request(url, [pa("NTLM " + b64(negotiate_msg()))]))
        if r.status == 503:
            assert c.is_closed(2.0)
            return held, True
        assert r.status == 407 and r.header("proxy-authenticate", "").startswith("NTLM "), r
        held.append(c)
    return held, False


def test_two_flooding_addresses_leave_room_for_a_third(local_env, origin):
    """max_handshakes 8 with the default max_handshakes_per_addr (256): one
    address holds at most 8/4 = 2 pending handshakes, so two flooding
    addresses leave room and a third logs in. Before the fix the first
    flooder took all 8 slots and everyone else got 503."""
    gw = local_env.make("ntlm", max_handshakes=8, handshake_timeout="20s", ctl=True)
    url = origin.url("/echo")
    a, a_full = open_pending(gw, url, GUESSER, 9)
    b, b_full = open_pending(gw, url, USER_ADDR, 9)
    c = gw.client(source=THIRD)
    r, _, _ = ntlm_legs(c, url, "alice", USERS["alice"])
    assert r.status == 200, r
    assert (len(a), a_full, len(b), b_full) == (2, True, 2, True)
    assert status(gw)["handshakes"] == "4"
    s = stats(gw)
    assert (s["limit_handshakes_addr"], s["limit_handshakes_global"]) == (2, 0), s
    assert s["limit_handshakes"] == 2, s
