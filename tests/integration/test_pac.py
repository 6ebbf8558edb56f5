"""The PAC file (issue 13 part 3): `pac_file FILE` served as GET /proxy.pac and
GET /wpad.dat in origin form on any listener, before authentication, with
ETag / Last-Modified validators (304), HEAD, and a reload on SIGHUP.

Peers: the real gateway (Basic required, so that "no authentication" is
shown), curl and raw sockets as clients, and headless Chromium configured with
--proxy-pac-url pointing at the gateway: the PAC sends one host DIRECT and
another through the gateway, and the origin and the access log show that
Chromium followed it.
"""

import socket

import pytest

from harness.accesslog import parse_access
from harness.browser import Chromium
from harness.gateway import check_config
from harness.origin import HELLO, OriginServer
from harness.rawhttp import build_request
from harness.tools import curl

PAC_V1 = b'function FindProxyForURL(url, host) { return "DIRECT"; }\n'


def pac_gateway(make_gateway, tmp_path, body=PAC_V1, **options):
    pac = tmp_path / "proxy.pac"
    pac.write_bytes(body)
    users = tmp_path / "users"
    users.write_text("")
    opts = {"pac_file": str(pac), "auth_schemes": "basic", "user_file": str(users)}
    opts.update(options)
    return make_gateway(**opts), pac


def raw(gw, method, path, headers=()):
    c = gw.client()
    c.send(build_request(method, path, [("Host", "%s:%d" % (gw.host, gw.port))] + list(headers)))
    return c, c.recv_response(method)


@pytest.mark.parametrize("path", ["/proxy.pac", "/wpad.dat"])
def test_pac_served_without_authentication(make_gateway, tmp_path, path):
    gw, _ = pac_gateway(make_gateway, tmp_path)
    r = curl(None, gw.url + path)
    assert r.status == 200, r
    assert r.body == PAC_V1
    h = r.final
    assert h.header("Content-Type") == "application/x-ns-proxy-autoconfig"
    assert h.header("ETag").startswith('"') and h.header("Last-Modified").endswith(" GMT")
    # Anything else in origin form keeps its answer (400), and a proxied
    # request still needs credentials.
    assert curl(None, gw.url + "/other.pac").status == 400
    assert curl(gw.url, "http://127.0.0.1:9/").status == 407


def test_pac_validators_and_head(make_gateway, tmp_path):
    gw, _ = pac_gateway(make_gateway, tmp_path)
    c, r = raw(gw, "GET", "/proxy.pac")
    etag, lm = r.header("ETag"), r.header("Last-Modified")
    assert r.status == 200 and r.body == PAC_V1
    # Same connection, kept alive: conditional requests get 304 and no body.
    c.send(build_request("GET", "/wpad.dat", [("Host", "gw"), ("If-None-Match", etag)]))
    r = c.recv_response()
    assert r.status == 304 and r.body == b"" and r.header("ETag") == etag
    c.send(build_request("GET", "/proxy.pac", [("Host", "gw"), ("If-None-Match", 'W/"x", ' + etag)]))
    assert c.recv_response().status == 304
    c.send(build_request("GET", "/proxy.pac", [("Host", "gw"), ("If-Modified-Since", lm)]))
    assert c.recv_response().status == 304
    # An ETag that differs wins over a matching date (RFC 9110 13.2.2).
    c.send(build_request("GET", "/proxy.pac", [("Host", "gw"), ("If-None-Match", '"other"'),
                                               ("If-Modified-Since", lm)]))
    r = c.recv_response()
    assert r.status == 200 and r.body == PAC_V1
    c.send(build_request("GET", "/proxy.pac", [("Host", "gw"), ("If-Modified-Since",
                                                                "Thu, 01 Jan 1970 00:00:00 GMT")]))
    assert c.recv_response().status == 200
    c.send(build_request("HEAD", "/proxy.pac", [("Host", "gw")]))
    r = c.recv_response("HEAD")
    assert r.status == 200 and int(r.header("Content-Length")) == len(PAC_V1)
    # and the connection still serves a normal GET after the HEAD
    c.send(build_request("GET", "/proxy.pac", [("Host", "gw")]))
    assert c.recv_response().body == PAC_V1
    lines = gw.wait_access_log(7)
    assert all(parse_access(l)["user"] == "-" for l in lines)


def test_pac_reloaded_on_sighup(make_gateway, tmp_path):
    gw, pac = pac_gateway(make_gateway, tmp_path)
    etag1 = curl(None, gw.url + "/proxy.pac").final.header("ETag")
    v2 = PAC_V1.replace(b"DIRECT", b"PROXY proxy.corp.example:3128")
    pac.write_bytes(v2)
    since = len(gw.error_log)
    gw.signal(1)
    gw.wait_log(r"event=reloaded", since=since)
    r = curl(None, gw.url + "/proxy.pac")
    assert r.body == v2 and r.final.header("ETag") != etag1
    # An empty file on reload is refused: the old content keeps being served.
    pac.write_bytes(b"")
    since = len(gw.error_log)
    gw.signal(1)
    gw.wait_log(r"event=reload_failed.*pac_file is empty", since=since)
    assert curl(None, gw.url + "/proxy.pac").body == v2


def test_check_mode_refuses_missing_or_empty_pac(tmp_path):
    conf = tmp_path / "a.conf"
    conf.write_text("pac_file %s\n" % (tmp_path / "missing.pac"))
    rc, out = check_config(conf)
    assert rc == 1 and "missing.pac: No such file or directory" in out, out
    (tmp_path / "empty.pac").write_bytes(b"")
    conf.write_text("pac_file empty.pac\n")
    rc, out = check_config(conf)
    assert rc == 1 and "empty.pac: pac_file is empty" in out, out
    (tmp_path / "big.pac").write_bytes(b"/" * (256 * 1024 + 1))
    conf.write_text("pac_file big.pac\n")
    rc, out = check_config(conf)
    assert rc == 1 and "larger than 262144 bytes" in out, out
    (tmp_path / "ok.pac").write_bytes(PAC_V1)
    conf.write_text("pac_file ok.pac\n")
    rc, out = check_config(conf)
    assert rc == 0, out


def test_chromium_follows_the_pac(make_gateway, tmp_path, origin):
    """Chromium fetches the PAC from the gateway and obeys it: direct.test
    (mapped to 127.0.0.1 in Chromium's own resolver) goes to the origin
    without the gateway; the machine's host name goes through the gateway,
    which resolves it. (Chromium sends loopback names and literals DIRECT
    whatever a PAC says, [::ffff:127.0.0.1] included; the host name is not
    one of its implicit bypasses.) A second origin listens on the host
    name's own local address."""
    name = socket.gethostname()
    addrs = sorted({ai[4][0] for ai in socket.getaddrinfo(name, None, socket.AF_INET,
                                                          socket.SOCK_STREAM)})
    assert addrs, "the host name %r does not resolve" % name
    body = ('function FindProxyForURL(url, host) {\n'
            '  if (dnsDomainIs(host, "direct.test")) return "DIRECT";\n'
            '  return "PROXY 127.0.0.1:%d";\n'
            '}\n')
    gw, pac = pac_gateway(make_gateway, tmp_path, b"placeholder", auth_schemes="none",
                          user_file="none", start=False)
    pac.write_text(body % gw.port)
    gw.start()
    flags = ["--proxy-pac-url=%s/proxy.pac" % gw.url,
             "--host-resolver-rules=MAP direct.test 127.0.0.1"]
    named = OriginServer(hosts=tuple(addrs), name="named-origin").start()
    try:
        with Chromium(tmp_path / "chromium", proxy=None, extra_flags=flags) as br:
            visit(br, origin, named, name)
    finally:
        named.stop()
    urls = [parse_access(l)["url"] for l in gw.access_log]
    assert "/proxy.pac" in urls
    assert not any("direct" in u for u in urls), urls
    assert "http://%s:%d/proxied" % (name, named.port) in urls, urls
    # (Chromium also asks each origin for /favicon.ico, by the same route.)
    assert "/direct" in [r.target for r in origin.requests]
    assert "/proxied" in [r.target for r in named.requests]
    assert not any(r.target == "/proxied" for r in origin.requests)


def visit(br, origin, named, name):
    for url in ("http://direct.test:%d/direct" % origin.port,
                "http://%s:%d/proxied" % (name, named.port)):
        nav = br.navigate(url)
        assert nav.error is None and nav.status == 200 and nav.text == HELLO.decode(), (url, nav)
