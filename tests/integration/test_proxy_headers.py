"""What the gateway does to header fields: hop-by-hop removal, Host
regeneration, Via, X-Forwarded-For (asserted at the origin)."""

import pytest

from harness.gateway import free_port
from harness.rawhttp import build_request, get_request
from harness.tools import assert_error_response, curl, via_values

HOP_BY_HOP = ["connection", "proxy-connection", "keep-alive", "te", "trailer", "upgrade",
              "proxy-authorization", "x-custom-hop", "x-other-hop"]


def test_hop_by_hop_fields_removed(gateway, origin):
    c = gateway.client()
    req_bytes = build_request("GET", origin.url("/echo"), [
        ("Host", origin.authority()),
        ("Connection", "keep-alive, X-Custom-Hop"),
        ("Connection", "X-Other-Hop"),
        ("X-Custom-Hop", "must-go"),
        ("X-Other-Hop", "must-go-too"),
        ("Proxy-Connection", "keep-alive"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Trailer", "X-Checksum"),
        ("Upgrade", "websocket"),
        ("Proxy-Authorization", "Basic dXNlcjpwYXNz"),
        ("X-End-To-End", "stays"),
        ("Accept", "*/*"),
    ])
    resp = c.request(req_bytes)
    assert resp.status == 200
    (req,) = origin.wait_requests(1)
    names = req.header_names()
    for h in HOP_BY_HOP:
        assert h not in names, "%s forwarded: %r" % (h, req.headers)
    assert req.header("x-end-to-end") == "stays"
    assert req.header("accept") == "*/*"
    assert b"dXNlcjpwYXNz" not in req.raw_head


def test_connection_close_field_not_forwarded_but_honoured(gateway, origin):
    c = gateway.client()
    resp = c.request(get_request(origin.url("/echo"), [("Connection", "close")]))
    assert resp.status == 200
    (req,) = origin.wait_requests(1)
    assert "connection" not in req.header_names() or \
        req.header("connection").lower() in ("close", "keep-alive")
    assert c.is_closed(3.0), "client asked for close; the gateway kept the connection"


def test_curl_proxy_connection_not_forwarded(gateway, origin):
    # curl sends "Proxy-Connection: Keep-Alive" to proxies
    r = curl(gateway.url, origin.url("/echo"))
    assert r.status == 200, r
    (req,) = origin.wait_requests(1)
    assert "proxy-connection" not in req.header_names()
    assert req.header("user-agent", "").startswith("curl/")


def test_host_regenerated_from_target(gateway, origin):
    c = gateway.client()
    resp = c.request(build_request("GET", origin.url("/echo"),
                                   [("Host", "evil.example:1234")]))
    assert resp.status == 200
    (req,) = origin.wait_requests(1)
    assert req.header_all("host") == [origin.authority()]


def test_host_added_when_absent_http10(gateway, origin):
    c = gateway.client()
    resp = c.request(build_request("GET", origin.url("/echo"), [], version="HTTP/1.0"))
    assert resp.status == 200
    (req,) = origin.wait_requests(1)
    assert req.header_all("host") == [origin.authority()]


def test_via_added(gateway, origin):
    r = curl(gateway.url, origin.url("/echo"))
    assert r.status == 200, r
    (req,) = origin.wait_requests(1)
    assert via_values(req.header_all("via")) == ["1.1 authgate"]


def test_via_appended_to_existing(gateway, origin):
    c = gateway.client()
    resp = c.request(get_request(origin.url("/echo"), [("Via", "1.0 upstream-one, 1.1 two")]))
    assert resp.status == 200
    (req,) = origin.wait_requests(1)
    assert via_values(req.header_all("via")) == ["1.0 upstream-one", "1.1 two", "1.1 authgate"]


@pytest.mark.gateway_config(via_pseudonym="gw-test-7")
def test_via_pseudonym_configurable(gateway, origin):
    r = curl(gateway.url, origin.url("/echo"))
    assert r.status == 200, r
    (req,) = origin.wait_requests(1)
    assert via_values(req.header_all("via"))[-1] == "1.1 gw-test-7"


def test_via_for_http10_client(gateway, origin):
    c = gateway.client()
    resp = c.request(get_request(origin.url("/echo"), version="HTTP/1.0"))
    assert resp.status == 200
    (req,) = origin.wait_requests(1)
    # RFC 9110 7.6.3: the received protocol version of the client's request
    assert via_values(req.header_all("via"))[-1] in ("1.0 authgate", "1.1 authgate")


def test_x_forwarded_for_off_by_default(gateway, origin):
    r = curl(gateway.url, origin.url("/echo"))
    assert r.status == 200, r
    (req,) = origin.wait_requests(1)
    assert req.header("x-forwarded-for") is None


@pytest.mark.gateway_config(x_forwarded_for="on")
def test_x_forwarded_for_on(gateway, origin):
    r = curl(gateway.url, origin.url("/echo"))
    assert r.status == 200, r
    (req,) = origin.wait_requests(1)
    assert req.header_all("x-forwarded-for") == ["127.0.0.1"]


@pytest.mark.gateway_config(x_forwarded_for="on")
def test_x_forwarded_for_appends_to_client_value(gateway, origin):
    c = gateway.client()
    resp = c.request(get_request(origin.url("/echo"), [("X-Forwarded-For", "192.0.2.7")]))
    assert resp.status == 200
    (req,) = origin.wait_requests(1)
    chain = [e.strip() for v in req.header_all("x-forwarded-for") for e in v.split(",")]
    assert chain == ["192.0.2.7", "127.0.0.1"]


def test_x_forwarded_for_ipv6_client(make_gateway, origin):
    gw = make_gateway(listen=["[::1]:%d" % free_port("::1")], x_forwarded_for="on")
    r = curl(gw.url, origin.url("/echo"))
    assert r.status == 200, r
    (req,) = origin.wait_requests(1)
    assert req.header_all("x-forwarded-for") == ["::1"]


def test_response_hop_by_hop_removed(gateway, origin):
    c = gateway.client()
    resp = c.request(get_request(origin.url("/hop")))
    assert resp.status == 200
    assert resp.body == b"hop\n"
    assert resp.header("x-end-to-end") == "kept"
    assert resp.header("x-resp-hop") is None, resp.headers
    assert resp.header("keep-alive") is None, resp.headers
    assert resp.header("proxy-connection") is None, resp.headers
    # Connection may be regenerated by the gateway, but never names origin fields
    assert "x-resp-hop" not in resp.tokens("connection")


def test_request_loop_detected_via(gateway, origin):
    c = gateway.client()
    resp = c.request(get_request(origin.url("/echo"), [("Via", "1.1 authgate")]))
    assert_error_response(resp, 508)
    assert origin.requests == [] and origin.connections == []


def test_request_loop_detected_via_in_list(gateway, origin):
    c = gateway.client()
    resp = c.request(get_request(origin.url("/echo"),
                                 [("Via", "1.0 other"), ("Via", "1.1 proxy2, 1.1 authgate (x)")]))
    assert_error_response(resp, 508)
    assert origin.requests == []


def test_via_other_pseudonym_is_no_loop(gateway, origin):
    c = gateway.client()
    resp = c.request(get_request(origin.url("/echo"), [("Via", "1.1 authgate-other")]))
    assert resp.status == 200
    assert len(origin.wait_requests(1)) == 1


@pytest.mark.parametrize("scheme,pinned", [("NTLM", True), ("Negotiate", True),
                                           ("Basic", False)])
def test_origin_401_connection_auth_marked_session_based(gateway, origin, scheme, pinned):
    """PROTOCOL.md / MS-NTHT: an origin's 401 for NTLM/Negotiate is forwarded
    unmodified with Proxy-Support: Session-Based-Authentication (its upstream
    connection belongs to this client connection only); Basic is not."""
    c = gateway.client()
    r = c.request(get_request(origin.url("/auth401/" + scheme)))
    assert r.status == 401
    assert r.header("www-authenticate") == scheme
    assert (r.header("proxy-support") == "Session-Based-Authentication") == pinned
    # the connection stays usable
    assert c.request(get_request(origin.url("/echo"))).status == 200


def test_row40_origin_407_not_relayed(gateway, origin):
    """BAD-INPUTS row 40: an origin answering 407 + Proxy-Authenticate would
    harvest the client's proxy credentials: 502, its challenge never relayed."""
    c = gateway.client()
    r = c.request(get_request(origin.url("/proxy407")))
    assert_error_response(r, 502)
    assert r.header("proxy-authenticate") is None
    assert b"proxy creds please" not in r.raw
