"""The loop's shared upstream pool (upstream_keepalive): an idle upstream
connection serves the next request of ANY client of the loop to the same
hop, except one that carried NTLM or Negotiate to the origin, which stays
pinned to its client connection for life. A pooled connection the origin
closed is never used; a reused one that fails before answering is retried
once on a fresh connection only for an idempotent body-less request.

Every test runs one loop (workers 1): each loop has its own pool."""

import time

import pytest

from harness.ctl_client import sockdir, stats  # noqa: F401 (fixtures)
from harness.origin import HELLO
from harness.rawhttp import get_request

pytestmark = pytest.mark.gateway_config(workers="1")


@pytest.fixture
def gateway(make_gateway, request, sockdir):  # noqa: F811
    """The usual gateway, with a status socket for the pool counters."""
    m = request.node.get_closest_marker("gateway_config")
    return make_gateway(status_socket=str(sockdir / "ctl.sock"), **(m.kwargs if m else {}))


def _get(c, url, headers=()):
    return c.request(get_request(url, list(headers)))


def _wait_stat(gw, name, at_least, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        v = stats(gw).get(name, 0)
        if v >= at_least or time.monotonic() > deadline:
            return v
        time.sleep(0.02)


def test_idle_upstream_serves_another_client(gateway, origin):
    a = gateway.client()
    assert _get(a, origin.url("/a1")).status == 200
    b = gateway.client()
    assert _get(b, origin.url("/b1")).status == 200
    assert _get(a, origin.url("/a2")).status == 200
    reqs = {r.target: r.conn_id for r in origin.wait_requests(3)}
    assert reqs["/a1"] == reqs["/b1"] == reqs["/a2"]
    assert len(origin.connections) == 1
    st = stats(gateway)
    assert st["upstream_pool_hits"] == 2, st
    assert st["upstream_pool_misses"] == 1, st
    assert st["upstream_opened"] == 1, st


def test_new_client_connection_reuses_pooled_upstream(gateway, origin):
    for i in range(4):
        c = gateway.client()
        assert _get(c, origin.url("/n%d" % i)).status == 200
        c.close()
    reqs = origin.wait_requests(4)
    assert len({r.conn_id for r in reqs}) == 1
    assert stats(gateway)["upstream_opened"] == 1


@pytest.mark.gateway_config(workers="1", upstream_keepalive="0")
def test_pool_off_keeps_upstream_per_client(gateway, origin):
    a = gateway.client()
    assert _get(a, origin.url("/a1")).status == 200
    b = gateway.client()
    assert _get(b, origin.url("/b1")).status == 200
    assert _get(a, origin.url("/a2")).status == 200
    assert _get(b, origin.url("/b2")).status == 200
    reqs = {r.target: r.conn_id for r in origin.wait_requests(4)}
    assert reqs["/a1"] == reqs["/a2"] and reqs["/b1"] == reqs["/b2"]
    assert reqs["/a1"] != reqs["/b1"]
    st = stats(gateway)
    assert st["upstream_pool_hits"] == 0 and st["upstream_pool_misses"] == 0, st


def test_ntlm_origin_challenge_pins_upstream(gateway, origin):
    """Alice logs in to an NTLM origin over the proxy; Bob's request, on
    another client connection, must not arrive on the connection the origin
    authenticated as alice."""
    a = gateway.client()
    r = _get(a, origin.url("/ntlmconn"), [("Authorization", "NTLM type1")])
    assert r.status == 401 and r.header("proxy-support") == "Session-Based-Authentication"
    r = _get(a, origin.url("/ntlmconn"), [("Authorization", "NTLM type3-alice")])
    assert r.status == 200 and r.body == b"hello alice\n"
    r = _get(a, origin.url("/ntlmconn"))
    assert r.status == 200 and r.body == b"hello alice\n"  # alice's connection, still hers
    b = gateway.client()
    r = _get(b, origin.url("/ntlmconn"))
    assert r.status == 401, r.body  # not "hello alice"
    reqs = origin.wait_requests(4)
    assert reqs[3].conn_id != reqs[0].conn_id
    assert {r.conn_id for r in reqs[:3]} == {reqs[0].conn_id}
    assert stats(gateway)["upstream_pinned"] >= 1


def test_ntlm_authorization_alone_pins_upstream(gateway, origin):
    """The origin authenticates the connection from the request's NTLM
    Authorization without a 401 first: pinned all the same."""
    a = gateway.client()
    r = _get(a, origin.url("/ntlmconn"), [("Authorization", "NTLM type3-alice")])
    assert r.status == 200 and r.body == b"hello alice\n"
    b = gateway.client()
    r = _get(b, origin.url("/ntlmconn"))
    assert r.status == 401, r.body
    c = gateway.client()
    assert _get(c, origin.url("/plain")).status == 200
    origin.wait_requests(3)
    alice_conn = origin.requests[0].conn_id
    assert all(r.conn_id != alice_conn for r in origin.requests[1:])


def test_pinned_upstream_closes_with_its_client(gateway, origin):
    a = gateway.client()
    assert _get(a, origin.url("/ntlmconn"), [("Authorization", "NTLM type3-alice")]).status == 200
    a.close()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and origin.connections[0].closed is None:
        time.sleep(0.02)
    assert origin.connections[0].closed is not None, "pinned upstream outlived its client"


def test_pooled_upstream_closed_by_origin_not_used(gateway, origin):
    a = gateway.client()
    assert _get(a, origin.url("/close-after")).status == 200
    assert _wait_stat(gateway, "upstream_pool_closed_idle", 1) >= 1
    b = gateway.client()
    r = _get(b, origin.url("/next"))
    assert r.status == 200 and r.body == HELLO
    reqs = {r.target: r.conn_id for r in origin.wait_requests(2)}
    assert reqs["/close-after"] != reqs["/next"]
    st = stats(gateway)
    assert st["upstream_pool_stale_retries"] == 0, st
    assert st["upstream_pool_hits"] == 0, st


def test_get_on_stale_pooled_upstream_retried_once(gateway, origin):
    a = gateway.client()
    assert _get(a, origin.url("/drop-second/1")).status == 200
    b = gateway.client()
    r = _get(b, origin.url("/drop-second/2"))
    assert r.status == 200 and r.body == HELLO
    reqs = origin.wait_requests(3)
    assert [r.target for r in reqs] == ["/drop-second/1", "/drop-second/2", "/drop-second/2"]
    assert reqs[1].conn_id == reqs[0].conn_id and reqs[2].conn_id != reqs[0].conn_id
    assert stats(gateway)["upstream_pool_stale_retries"] == 1


@pytest.mark.parametrize("body", [b"", b"amount=100"])
def test_post_on_stale_pooled_upstream_not_retried(gateway, origin, body):
    a = gateway.client()
    assert _get(a, origin.url("/drop-second/1")).status == 200
    b = gateway.client()
    r = b.request(get_request(origin.url("/drop-second/2"), [("Content-Length", str(len(body)))],
                              method="POST", body=body))
    assert r.status == 502
    origin.wait_requests(2)
    posts = [r for r in origin.requests if r.method == "POST"]
    assert len(posts) == 1, posts
    assert stats(gateway)["upstream_pool_stale_retries"] == 0


@pytest.mark.gateway_config(workers="1", upstream_keepalive_per_host="1")
def test_per_host_ceiling_evicts_oldest(gateway, origin):
    import threading
    a, b = gateway.client(), gateway.client()
    out = []
    t = threading.Thread(target=lambda: out.append(_get(a, origin.url("/slow/300")).status))
    t.start()
    origin.wait_heads(1)
    assert _get(b, origin.url("/x")).status == 200
    t.join(10)
    assert out == [200]
    assert _wait_stat(gateway, "upstream_pool_evicted", 1) == 1
    assert len(origin.connections) == 2
