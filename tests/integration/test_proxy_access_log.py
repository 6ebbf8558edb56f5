"""The access log in Squid's native format (harness/accesslog.py names the
fields):
   time.ms duration_ms client result/status bytes method url user hierarchy/upstream content_type
"""

import json
import time

import pytest

from harness.accesslog import parse_access
from harness.rawhttp import get_request
from harness.tools import curl


def test_access_log_get(gateway, origin):
    url = origin.url("/echo?q=1")
    before = time.time()
    r = curl(gateway.url, url)
    assert r.status == 200
    (line,) = gateway.wait_access_log(1)
    f = parse_access(line)
    assert before - 1 <= float(f["time"]) <= time.time() + 1
    assert f["client"] == "127.0.0.1"
    assert f["status"] == "200"
    assert f["method"] == "GET"
    assert f["url"] == url
    assert f["user"] == "-"
    assert int(f["bytes"]) >= len(r.body)
    assert f["hierarchy"] == "HIER_DIRECT"
    assert f["upstream"] == "127.0.0.1"
    assert f["content_type"] == "application/json"
    assert int(f["duration_ms"]) < 5000


def test_access_log_one_line_per_request(gateway, origin):
    c = gateway.client()
    for i in range(3):
        assert c.request(get_request(origin.url("/n%d" % i))).status == 200
    lines = gateway.wait_access_log(3)
    urls = [parse_access(l)["url"] for l in lines]
    assert urls == [origin.url("/n%d" % i) for i in range(3)]


def test_access_log_error_status(gateway, closed_port):
    r = curl(gateway.url, closed_port.url("/gone"))
    assert r.status == 502
    (line,) = gateway.wait_access_log(1)
    f = parse_access(line)
    assert f["status"] == "502"
    assert f["url"] == closed_port.url("/gone")


def test_access_log_connect(make_gateway, tls_origin):
    gw = make_gateway(connect_ports=[tls_origin.port])
    r = curl(gw.url, "-k", "https://localhost:%d/stream" % tls_origin.port)
    assert r.rc == 0, r
    (line,) = gw.wait_access_log(1)
    f = parse_access(line)
    assert f["method"] == "CONNECT"
    assert f["url"] == "localhost:%d" % tls_origin.port
    assert f["status"] == "200"
    assert f["client"] == "127.0.0.1"
    # the tunnelled bytes are counted (the 1 MiB body went through)
    assert int(f["bytes"]) > 1 << 20
    assert f["hierarchy"] == "HIER_DIRECT"


def test_access_log_ipv6_client(make_gateway, origin):
    from harness.gateway import free_port
    gw = make_gateway(listen=["[::1]:%d" % free_port("::1")])
    assert curl(gw.url, origin.url("/v6")).status == 200
    (line,) = gw.wait_access_log(1)
    assert parse_access(line)["client"] == "::1"


AG_URL_MAX = 16 * 1024  # include/authgate/limits.h


@pytest.mark.parametrize("fmt", ["squid", "json"])
def test_access_log_keeps_a_url_at_the_url_limit_whole(make_gateway, origin, fmt):
    """A request target as long as the gateway takes (AG_URL_MAX) is logged
    whole in either format, its escaped bytes included: no fixed escape
    buffer cuts it (it once stopped at 512 bytes with "...")."""
    base = origin.url("/long?q=")
    quotes = '"' * 64  # each logged as \x22: the escaped URL outgrows the raw one
    url = base + quotes + "a" * (AG_URL_MAX - len(base) - len(quotes))
    assert len(url) == AG_URL_MAX
    gw = make_gateway(access_log_format=fmt)
    c = gw.client()
    assert c.request(get_request(url)).status == 200
    (line,) = gw.wait_access_log(1)
    logged = json.loads(line)["url"] if fmt == "json" else parse_access(line)["url"]
    assert logged == url.replace('"', "\\x22"), (len(logged), logged[-40:])
