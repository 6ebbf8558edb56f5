"""An identity belongs to the TCP connection that proved it: a credential
proven on one connection is never honoured on another (README, "An identity
belongs to the TCP connection that proved it")."""

from harness.auth import USERS, ident
from harness.auth import auth_env, backend, local_env, winbind_env  # noqa: F401 (fixtures)
from harness.ntlm_client import authenticate_msg, b64, basic, is_fresh_407, ntlm_legs, pa, type1_leg
from harness.rawhttp import get_request
from harness.tools import assert_error_response

pytest_plugins = ["peers.fixtures"]  # one session winbindd for every test module


def test_ntlm_identity_not_honoured_on_another_connection(auth_env, origin):
    gw = auth_env.make("ntlm basic")
    a = gw.client()
    r, _, _ = ntlm_legs(a, origin.url("/echo/a1"), "alice", USERS["alice"])
    assert ident(r) == [auth_env.identity("alice")]
    b = gw.client()
    r = b.request(get_request(origin.url("/echo/b")))
    assert_error_response(r, 407)
    assert is_fresh_407(r, ["ntlm", "basic"])
    # a is still authenticated, b still is not
    assert ident(a.request(get_request(origin.url("/echo/a2")))) == [auth_env.identity("alice")]
    assert b.request(get_request(origin.url("/echo/b"))).status == 407
    assert [q.target for q in origin.requests] == ["/echo/a1", "/echo/a2"]


def test_many_other_connections_refused(local_env, origin):
    gw = local_env.make("ntlm basic")
    a = gw.client()
    r, _, _ = ntlm_legs(a, origin.url("/echo"), "alice", USERS["alice"])
    assert r.status == 200
    others = [gw.client() for _ in range(20)]
    for o in others:
        o.send(get_request(origin.url("/echo/other")))
    for o in others:
        assert o.recv_response(timeout=5).status == 407
    assert [q.target for q in origin.requests] == ["/echo"]


def test_identity_ends_with_its_connection(local_env, origin):
    gw = local_env.make("ntlm basic", log_level="debug")
    a = gw.client()
    r, _, _ = ntlm_legs(a, origin.url("/echo"), "alice", USERS["alice"])
    assert r.status == 200
    a.close()
    gw.wait_log(r"event=close reason=client_(eof|error)")
    b = gw.client()
    assert b.request(get_request(origin.url("/echo/b"))).status == 407


def test_interleaved_handshakes_stay_apart(local_env, origin):
    """Two handshakes at once: each connection gets its own challenge and its
    own identity; a Type 3 does not cross over."""
    gw = local_env.make("ntlm basic")
    a, b = gw.client(), gw.client()
    url = origin.url("/echo")
    ca, ta = type1_leg(a, url)
    cb, tb = type1_leg(b, url)
    assert ca.server_challenge != cb.server_challenge
    t3a = authenticate_msg(ca, "alice", USERS["alice"], negotiate=ta)
    t3b = authenticate_msg(cb, "bob", USERS["bob"], negotiate=tb)
    assert ident(b.request(get_request(url, [pa("NTLM " + b64(t3b))]))) == ["bob"]
    assert ident(a.request(get_request(url, [pa("NTLM " + b64(t3a))]))) == ["alice"]
    assert ident(a.request(get_request(url))) == ["alice"]
    assert ident(b.request(get_request(url))) == ["bob"]


def test_basic_identity_is_per_request_and_per_connection(local_env, origin):
    gw = local_env.make("ntlm basic")
    a = gw.client()
    assert ident(a.request(get_request(origin.url("/echo"), [pa(basic("bob", USERS["bob"]))]))
                 ) == ["bob"]
    b = gw.client()
    assert b.request(get_request(origin.url("/echo"))).status == 407
    assert a.request(get_request(origin.url("/echo"))).status == 407
