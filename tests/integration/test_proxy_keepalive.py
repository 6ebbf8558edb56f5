"""Keep-alive on both sides: a client connection carries many requests; the
upstream connection is reused for the same host:port. With the shared pool
off (upstream_keepalive 0) it is never shared with another client
connection; test_upstream_pool.py covers the shared pool (the default)."""

import pytest

from harness.ctl_client import stats
from harness.origin import HELLO
from harness.rawhttp import get_request
from harness.tools import curl, wait_until


def _get(c, url, **kw):
    resp = c.request(get_request(url, **kw))
    assert resp.status == 200, resp
    return resp


def test_many_requests_one_client_one_upstream(gateway, origin):
    c = gateway.client()
    for i in range(5):
        resp = _get(c, origin.url("/echo/%d" % i))
        assert b'"/echo/%d"' % i in resp.body
    reqs = origin.wait_requests(5)
    assert [r.target for r in reqs] == ["/echo/%d" % i for i in range(5)]
    assert len({r.conn_id for r in reqs}) == 1, [r.conn_id for r in reqs]
    assert len(origin.connections) == 1


def test_curl_reuses_proxy_connection(gateway, origin):
    r = curl(gateway.url, origin.url("/a"), origin.url("/b"), origin.url("/c"))
    assert r.rc == 0, r
    assert r.body == HELLO * 3
    reqs = origin.wait_requests(3)
    assert len({r.conn_id for r in reqs}) == 1


@pytest.mark.gateway_config(upstream_keepalive="0")
def test_two_clients_never_share_upstream(gateway, origin):
    a = gateway.client()
    b = gateway.client()
    _get(a, origin.url("/a1"))
    _get(b, origin.url("/b1"))
    _get(a, origin.url("/a2"))
    _get(b, origin.url("/b2"))
    reqs = {r.target: r.conn_id for r in origin.wait_requests(4)}
    assert reqs["/a1"] == reqs["/a2"]
    assert reqs["/b1"] == reqs["/b2"]
    assert reqs["/a1"] != reqs["/b1"]


@pytest.mark.gateway_config(upstream_keepalive="0")
def test_idle_upstream_of_one_client_not_given_to_another(gateway, origin):
    a = gateway.client()
    _get(a, origin.url("/a1"))  # a's upstream connection is now idle
    b = gateway.client()
    _get(b, origin.url("/b1"))
    reqs = {r.target: r.conn_id for r in origin.wait_requests(2)}
    assert reqs["/a1"] != reqs["/b1"]


@pytest.mark.gateway_config(upstream_keepalive="0")
def test_upstream_of_closed_client_not_reused(gateway, origin):
    a = gateway.client()
    _get(a, origin.url("/a1"))
    a.close()
    b = gateway.client()
    _get(b, origin.url("/b1"))
    _get(b, origin.url("/b2"))
    reqs = {r.target: r.conn_id for r in origin.wait_requests(3)}
    assert reqs["/a1"] != reqs["/b1"]
    assert reqs["/b1"] == reqs["/b2"]


@pytest.mark.gateway_config(upstream_keepalive="0")
def test_upstream_closed_when_client_closes(gateway, origin):
    a = gateway.client()
    _get(a, origin.url("/a1"))
    a.close()
    import time
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and origin.connections[0].closed is None:
        time.sleep(0.02)
    assert origin.connections[0].closed is not None, "upstream kept open after client left"


def test_switching_hosts_on_one_client_connection(gateway, origin):
    c = gateway.client()
    _get(c, origin.url("/v4a"))
    _get(c, origin.url("/v6", host="::1"))
    _get(c, origin.url("/v4b"))
    reqs = {r.target: r for r in origin.wait_requests(3)}
    assert reqs["/v6"].peer[0] == "::1"
    assert reqs["/v4a"].header("host") == origin.authority()
    assert reqs["/v6"].header("host") == origin.authority("::1")
    assert reqs["/v4b"].header("host") == origin.authority()


def test_origin_closes_then_next_request_uses_new_upstream(gateway, origin):
    c = gateway.client()
    resp = c.request(get_request(origin.url("/close")))
    assert resp.status == 200 and resp.body == b"closing\n"
    # the origin closed its side; the client connection goes on
    if not c.is_closed(0.3):
        _get(c, origin.url("/next"))
        reqs = {r.target: r.conn_id for r in origin.wait_requests(2)}
        assert reqs["/close"] != reqs["/next"]


def test_origin_closes_idle_upstream_between_requests(gateway, origin):
    """The origin drops the idle upstream connection; the gateway must notice
    (or retry) and the next request on the same client connection succeeds."""
    c = gateway.client()
    _get(c, origin.url("/first"))
    origin.connections[0].sock.shutdown(2)
    import time
    time.sleep(0.2)
    resp = c.request(get_request(origin.url("/second")))
    assert resp.status == 200 and resp.body == HELLO


def test_pipelined_requests_answered_in_order(gateway, origin):
    c = gateway.client()
    c.send(get_request(origin.url("/echo/1")) + get_request(origin.url("/echo/2"))
           + get_request(origin.url("/echo/3")))
    for i in (1, 2, 3):
        resp = c.recv_response()
        assert resp.status == 200
        assert b'"/echo/%d"' % i in resp.body


def test_http10_client_without_keepalive_closed(gateway, origin):
    c = gateway.client()
    resp = c.request(get_request(origin.url("/x"), version="HTTP/1.0"))
    assert resp.status == 200 and resp.body == HELLO
    assert c.is_closed(3.0)


def test_http10_client_with_proxy_connection_keepalive_kept(gateway, origin):
    c = gateway.client()
    for i in range(2):
        resp = c.request(get_request(origin.url("/x%d" % i), [("Proxy-Connection", "keep-alive")],
                                     version="HTTP/1.0"))
        assert resp.status == 200 and resp.body == HELLO
        assert resp.header("content-length") == str(len(HELLO))
    assert not c.is_closed(0.3)


def test_http10_client_with_connection_keepalive_kept(gateway, origin):
    c = gateway.client()
    for i in range(2):
        resp = c.request(get_request(origin.url("/x%d" % i), [("Connection", "keep-alive")],
                                     version="HTTP/1.0"))
        assert resp.status == 200 and resp.body == HELLO
    assert not c.is_closed(0.3)


@pytest.mark.parametrize("shared", [
    pytest.param(False, marks=pytest.mark.gateway_config(upstream_keepalive="0")),
    pytest.param(True, marks=pytest.mark.gateway_config(upstream_keepalive="64"))])
def test_concurrent_clients(gateway, origin, shared):
    """Many clients at once, each with several keep-alive requests of mixed
    sizes: every response intact; without the shared pool every client on
    its own upstream."""
    import threading
    from harness.origin import pattern
    from harness.rawhttp import RawClient
    errors = []
    n_clients, n_reqs = 16, 6

    def run(k):
        try:
            with RawClient(gateway.host, gateway.port, timeout=10) as c:
                for i in range(n_reqs):
                    size = (k * 7919 + i * 104729) % 200000
                    resp = c.request(get_request(origin.url("/size/%d?c=%d" % (size, k))),
                                     timeout=10)
                    if resp.status != 200 or resp.body != pattern(size):
                        errors.append((k, i, resp.status, len(resp.body)))
        except Exception as e:  # noqa: BLE001
            errors.append((k, repr(e)))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    reqs = origin.wait_requests(n_clients * n_reqs)
    if shared:
        return
    by_client = {}
    for r in reqs:
        by_client.setdefault(r.target.split("c=")[1], set()).add(r.conn_id)
    assert all(len(v) == 1 for v in by_client.values()), by_client
    conns = [next(iter(v)) for v in by_client.values()]
    assert len(set(conns)) == n_clients


@pytest.mark.gateway_config(idle_timeout="500ms")
def test_idle_client_connection_closed(gateway, origin):
    import time
    c = gateway.client()
    _get(c, origin.url("/x"))
    t0 = time.monotonic()
    assert c.is_closed(3.0), "idle keep-alive connection not closed"
    assert time.monotonic() - t0 < 2.5


def test_idle_release_hands_heap_pages_back(make_gateway, origin, tmp_path):
    """The buffers idle connections give back lie in holes between live
    connections, which glibc never returns to the kernel by itself: the
    loop trims the heap (malloc_trim) AG_HEAP_TRIM_DELAY_MS after an idle
    release, once per burst of them, and counts it (heap_trims)."""
    gw = make_gateway(status_socket=str(tmp_path / "ctl.sock"), workers=1)
    clients = [gw.client() for _ in range(20)]
    for c in clients:
        assert c.request(get_request(origin.url("/small"))).status == 200
    wait_until(lambda: stats(gw).get("idle_released", 0) >= 20, 10.0, "the idle releases")
    wait_until(lambda: stats(gw).get("heap_trims", 0) >= 1, 5.0, "a heap trim")
    # one burst of releases, one or two trims (not one per connection)
    assert stats(gw)["heap_trims"] <= 4
    # still serving after the trim
    assert clients[0].request(get_request(origin.url("/after"))).status == 200
    for c in clients:
        c.close()
