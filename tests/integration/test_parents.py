"""Parent proxies (issue 13 part 2): `parent NAME HOST:PORT [auth=...]` and
`route=` on allow rules, against a real Squid 5.7 started by each test as the
parent (harness/squid.py).

What is shown, each from the peers' own records:
* routing by host rule: the parent's access log holds the routed request in
  absolute form and never the direct one; the gateway's access log says
  FIRSTUP_PARENT or HIER_DIRECT;
* CONNECT relayed through the parent's CONNECT (a TLS origin behind it);
* the gateway's own Basic credentials checked by Squid's basic_ncsa_auth
  (htpasswd written by the test with `openssl passwd -apr1`), the client's
  Proxy-Authorization never forwarded; a wrong password gives the client 502;
* a parent down: 502 with the reason in the log; a failing parent skipped
  for parent_backoff, the next one used, and recovered after the back-off;
* the identity header seen by the parent (Squid logs it with %{...}>h) only
  with parent_identity_header on;
* a TLS parent's connection pooled across client connections (Squid logs one
  source port for all), dropped when the parent closes it idle, retried once
  when it closes under a GET, pinned to its client when the origin does NTLM.

The gateway authenticates clients with Basic against a local user file
(test_rules.start_gateway), so that a client's credentials exist and can be
shown not to leak. Targets: the origin as 127.0.0.1 (routed by the rules) and
as localhost (direct): the same origin, two routes.
"""

import json
import os
import time

import pytest

from harness.accesslog import parse_access
from harness.ctl_client import ctl_json, sockdir, stats  # noqa: F401 (fixture)
from harness.gateway import check_config, free_port
import socket

from harness.origin import (HELLO, SLOW_RCVBUF, OriginServer, StreamServer, make_tls_context,
                            pattern, read_slowly, stream_check)
from harness.rawhttp import get_request
from harness.tools import wait_until
from harness.squid import IDENT, Squid, htpasswd_text
from harness.ntlm_client import basic
from harness.tlsca import ProxyCA
from peers.fixtures import kdc  # noqa: F401
from test_ctl import doctor
from test_rules import PW, curl_as, start_gateway


@pytest.fixture
def squids(tmp_path):
    made = []

    def factory(name="sq", auth_lines=(), env=None, start=True, port=None, tls=None):
        s = Squid(auth_lines=auth_lines, env=env, name=name, tls=tls)
        s.port = port
        made.append(s)
        if start:
            s.start()
        return s

    yield factory
    for s in made:
        s.remove()


def rules_for(parents="sq"):
    return """
        allow routed host=127.0.0.1 route=%s
        allow rest
        """ % parents


def gateway_with(make_gateway, tmp_path, parent_lines, rules=None, **opts):
    gw = start_gateway(make_gateway, tmp_path, rules or rules_for(), start=False, **opts)
    gw.options["parent"] = parent_lines
    gw.start()
    return gw


def get(gw, url, user="alice", *args):
    return curl_as(gw, "-U", "%s:%s" % (user, PW[user]), "--proxy-basic", *args, url)


def access(gw, url):
    for line in gw.access_log:
        rec = parse_access(line)
        if rec["url"] == url:
            return rec, line
    raise AssertionError("%s not in the access log: %r" % (url, gw.access_log))


def test_route_by_host_rule(make_gateway, tmp_path, squids, origin):
    sq = squids()
    gw = gateway_with(make_gateway, tmp_path, ["sq 127.0.0.1:%d" % sq.port])
    routed = origin.url("/routed", host="127.0.0.1")
    direct = "http://localhost:%d/direct" % origin.port
    r = get(gw, routed)
    assert r.status == 200 and r.body == HELLO, r
    r = get(gw, direct)
    assert r.status == 200 and r.body == HELLO, r
    # Squid got the routed request in absolute form, with no user of its own
    # (no auth configured): the client's credentials did not reach it.
    rec = sq.wait_logged(lambda x: x[1] == routed)
    assert rec[0] == "GET" and rec[2] == "200", rec
    assert not any("/direct" in x[1] for x in sq.access_log), sq.access_log
    gw.wait_access_log(2)
    _, line = access(gw, routed)
    assert "FIRSTUP_PARENT/127.0.0.1" in line, line
    _, line = access(gw, direct)
    assert "HIER_DIRECT/" in line, line
    # The origin saw the parent's Via after ours, and no Proxy-Authorization.
    req = [q for q in origin.requests if q.target == "/routed"][0]
    via = req.header("Via")
    assert "authgate" in via and "sq" in via, via
    assert req.header("Proxy-Authorization") is None


def test_connect_through_parent(make_gateway, tmp_path, squids, tls_origin):
    sq = squids()
    gw = gateway_with(make_gateway, tmp_path, ["sq 127.0.0.1:%d" % sq.port],
                      connect_ports=str(tls_origin.port))
    r = get(gw, tls_origin.url("/tls"), "alice", "-k", "-p")
    assert r.status == 200 and r.body == HELLO, r
    auth = "127.0.0.1:%d" % tls_origin.port
    rec = sq.wait_logged(lambda x: x[0] == "CONNECT")
    assert rec[1] == auth and rec[2] == "200", rec
    # The tunnel is logged when it closes (curl has quit).
    wait_until(lambda: any(auth in l for l in gw.access_log), what="the tunnel's log line")
    _, line = access(gw, auth)
    assert "TCP_TUNNEL/200" in line and "FIRSTUP_PARENT/127.0.0.1" in line, line


def squid_basic(squids, tmp_path, user="gw", password="gw-Secret9", tls=None):
    sq = squids(start=False, tls=tls)
    htpasswd = sq.private_file("htpasswd", htpasswd_text({user: password}))
    sq.auth_lines = [
        "auth_param basic program /usr/lib/squid/basic_ncsa_auth %s" % htpasswd,
        "auth_param basic realm parent",
        "acl authed proxy_auth REQUIRED",
        "http_access deny !authed",
    ]
    return sq.start()


def cred_file(tmp_path, text, mode=0o600):
    p = tmp_path / "parent.cred"
    p.write_text(text)
    os.chmod(p, mode)
    return p


def test_basic_to_parent(make_gateway, tmp_path, squids, origin, tls_origin):
    sq = squid_basic(squids, tmp_path)
    cred = cred_file(tmp_path, "gw:gw-Secret9\n")
    gw = gateway_with(make_gateway, tmp_path,
                      ["sq 127.0.0.1:%d auth=basic:%s" % (sq.port, cred)],
                      connect_ports=str(tls_origin.port))
    routed = origin.url("/basic", host="127.0.0.1")
    r = get(gw, routed)
    assert r.status == 200 and r.body == HELLO, r
    r = get(gw, tls_origin.url("/tls"), "bob", "-k", "-p")
    assert r.status == 200 and r.body == HELLO, r
    # Squid authenticated the gateway ("gw"), for both, not the clients.
    assert sq.wait_logged(lambda x: x[1] == routed and x[2] == "200")[4] == "gw"
    assert sq.wait_logged(lambda x: x[0] == "CONNECT" and x[2] == "200")[4] == "gw"
    req = [q for q in origin.requests if q.target == "/basic"][0]
    assert req.header("Proxy-Authorization") is None


def test_client_credentials_never_reach_the_parent(make_gateway, tmp_path, squids, origin):
    """Squid accepts alice's own password, but the parent line has no auth=:
    the gateway must not pass the client's Proxy-Authorization on, so Squid
    answers 407 and the client gets 502."""
    sq = squid_basic(squids, tmp_path, user="alice", password=PW["alice"])
    gw = gateway_with(make_gateway, tmp_path, ["sq 127.0.0.1:%d" % sq.port])
    r = get(gw, origin.url("/mine", host="127.0.0.1"), "alice")
    assert r.status == 502, r
    rec = sq.wait_logged(lambda x: x[1].endswith("/mine"))
    assert rec[2] == "407" and rec[4] == "-", rec
    assert not origin.requests


def test_parent_refuses_our_credentials(make_gateway, tmp_path, squids, origin, tls_origin):
    sq = squid_basic(squids, tmp_path)
    cred = cred_file(tmp_path, "gw:wrong-password\n")
    gw = gateway_with(make_gateway, tmp_path,
                      ["sq 127.0.0.1:%d auth=basic:%s" % (sq.port, cred)],
                      connect_ports=str(tls_origin.port))
    r = get(gw, origin.url("/x", host="127.0.0.1"))
    assert r.status == 502 and b"parent proxy sq refused the request (407)" in r.body, r
    gw.wait_log(r"event=parent_refused parent=sq host=127.0.0.1 status=407")
    r = get(gw, tls_origin.url("/tls"), "alice", "-k", "-p")
    assert "CONNECT tunnel failed, response 502" in r.stderr, r
    gw.wait_log(r"event=parent_refused parent=sq host=127.0.0.1 status=407 reason=\"refused "
                r"CONNECT\"")
    assert not [q for q in origin.requests if q.target == "/x"]


def test_group_readable_credentials_refused(make_gateway, tmp_path):
    cred = cred_file(tmp_path, "gw:pw\n", 0o640)
    conf = tmp_path / "a.conf"
    conf.write_text("parent sq 127.0.0.1:3128 auth=basic:%s\n" % cred)
    rc, out = check_config(conf)
    assert rc == 1 and "readable by group or others (mode 0640)" in out, out


def test_unknown_route_refused(make_gateway, tmp_path):
    gw = start_gateway(make_gateway, tmp_path, rules_for("nope"), start=False)
    gw.write_config()
    rc, out = check_config(gw.config_path)
    assert rc == 1 and "route names 'nope', which no parent line" in out, out


def test_parent_down(make_gateway, tmp_path, origin, sockdir):
    dead = free_port()
    sock = str(sockdir / "ctl.sock")
    gw = gateway_with(make_gateway, tmp_path, ["sq 127.0.0.1:%d" % dead], status_socket=sock)
    r = get(gw, origin.url("/x", host="127.0.0.1"))
    assert r.status == 502 and b"no parent proxy available" in r.body, r
    gw.wait_log(r"event=parent_down parent=sq address=127.0.0.1:%d reason=\"connection refused\""
                % dead)
    gw.wait_log(r"event=parent_none_left .*host=127.0.0.1 reason=\"sq: connection refused\"")
    # Within the back-off the parent is not even tried.
    r = get(gw, origin.url("/y", host="127.0.0.1"))
    assert r.status == 502, r
    gw.wait_log(r"event=parent_none_left .*reason=\"sq: in back-off\"")
    assert not origin.requests
    st = stats(gw)
    assert (st["parent_failed"], st["parent_skipped"], st["parent_none_left"]) == (1, 1, 2), st
    parents = ctl_json(sock, "status")["parents"]
    assert parents == [{"parent": "sq", "parent_address": "127.0.0.1:%d" % dead,
                        "parent_auth": "none", "parent_tls": "off", "parent_state": "backoff",
                        "parent_failures": 1}], parents


def test_failover_backoff_and_recovery(make_gateway, tmp_path, squids, origin):
    sq = squids("sq")
    flaky_port = free_port()
    gw = gateway_with(make_gateway, tmp_path,
                      ["flaky 127.0.0.1:%d" % flaky_port, "sq 127.0.0.1:%d" % sq.port],
                      rules=rules_for("flaky,sq"), parent_backoff="2s")
    r = get(gw, origin.url("/one", host="127.0.0.1"))
    t_down = time.monotonic()
    assert r.status == 200, r
    gw.wait_log(r"event=parent_down parent=flaky")
    sq.wait_logged(lambda x: x[1].endswith("/one"))
    # flaky comes up now, but is in back-off: sq still serves.
    fl = squids("flaky", port=flaky_port)
    r = get(gw, origin.url("/two", host="127.0.0.1"))
    assert r.status == 200, r
    assert time.monotonic() - t_down < 2.0, "too slow to test the back-off window"
    sq.wait_logged(lambda x: x[1].endswith("/two"))
    assert not fl.access_log
    # After the back-off, flaky is tried again, first in the route.
    time.sleep(max(0.0, t_down + 2.2 - time.monotonic()))
    r = get(gw, origin.url("/three", host="127.0.0.1"))
    assert r.status == 200, r
    fl.wait_logged(lambda x: x[1].endswith("/three"))
    gw.wait_log(r"event=parent_up parent=flaky")
    assert gw.error_log.count("event=parent_down parent=flaky") == 1


@pytest.mark.parametrize("send", [True, False])
def test_identity_header_to_parent(make_gateway, tmp_path, squids, origin, send):
    sq = squids()
    gw = gateway_with(make_gateway, tmp_path, ["sq 127.0.0.1:%d" % sq.port],
                      parent_identity_header="on" if send else "off")
    routed = origin.url("/who", host="127.0.0.1")
    # A client's own copy never passes for the gateway's.
    r = get(gw, routed, "carol", "-H", "X-Authenticated-User: mallory")
    assert r.status == 200, r
    rec = sq.wait_logged(lambda x: x[1] == routed)
    assert rec[3] == ("carol" if send else "-"), rec
    req = [q for q in origin.requests if q.target == "/who"][0]
    assert req.header(IDENT) == ("carol" if send else None)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_negotiate_to_parent(make_gateway, tmp_path, squids, kdc, origin, tls_origin,  # noqa: F811
                             tls):
    """The gateway authenticates to Squid with Kerberos from its own keytab
    (the first principal of `keytab`: HTTP/localhost), for a service of the
    parent's (HTTP/parent.test, in Squid's keytab for negotiate_kerberos_auth).
    Squid's access log names the gateway's principal, never the client.
    tls: the same to Squid's https_port (`parent ... tls`), the tokens
    inside TLS."""
    ca = ProxyCA(tmp_path / "ca") if tls else None
    sq = squids(start=False, tls=ca.issue() if tls else None)
    keytab = str(sq.dir / "parent.keytab")
    # (One KDC per session: each variant its own service.)
    service = kdc.add_principal("HTTP/%sparent.test" % ("tls" if tls else ""), keytab=keytab)
    pw_ = __import__("pwd").getpwnam("proxy")
    os.chown(keytab, 0, pw_.pw_gid)
    os.chmod(keytab, 0o640)
    conf = sq.private_file("krb5.conf", open(kdc.krb5_conf).read(), 0o644)
    rc_dir = sq.dir / "rcache"
    rc_dir.mkdir()
    os.chown(rc_dir, pw_.pw_uid, pw_.pw_gid)
    sq.env.update(KRB5_CONFIG=str(conf), KRB5RCACHEDIR=str(rc_dir))
    sq.auth_lines = [
        "auth_param negotiate program /usr/lib/squid/negotiate_kerberos_auth -k %s -s %s"
        % (keytab, service),
        "auth_param negotiate children 2",
        "acl authed proxy_auth REQUIRED",
        "http_access deny !authed",
    ]
    sq.start()
    gw = start_gateway(make_gateway, tmp_path, rules_for(), krb=kdc, start=False,
                       connect_ports=str(tls_origin.port))
    gw.options["parent"] = [
        "sq 127.0.0.1:%d auth=negotiate:%s tls ca=%s" % (sq.tls_port, service, ca.ca_file) if tls
        else "sq 127.0.0.1:%d auth=negotiate:%s" % (sq.port, service)]
    gw.start()
    routed = origin.url("/krb", host="127.0.0.1")
    for _ in range(2):  # a fresh token per request (each is single-use)
        r = get(gw, routed)
        assert r.status == 200 and r.body == HELLO, (r, sq.logs_tail())
    r = get(gw, tls_origin.url("/tls"), "bob", "-k", "-p")
    assert r.status == 200 and r.body == HELLO, r
    me = kdc.principal("HTTP/localhost")
    recs = [x for x in sq.access_log if x[1] == routed and x[2] == "200"]
    assert len(recs) == 2 and all(x[4] == me for x in recs), sq.access_log
    # Two client connections, two connections to the parent: a connection
    # that carried a single-use token is never shared (the pool skips it).
    assert recs[0][6] != recs[1][6], recs
    port = str(sq.tls_port if tls else sq.port)
    assert all(x[5] == port for x in sq.access_log if x[0] != "-"), sq.access_log
    assert sq.wait_logged(lambda x: x[0] == "CONNECT" and x[2] == "200")[4] == me
    req = [q for q in origin.requests if q.target == "/krb"][0]
    assert req.header("Proxy-Authorization") is None


def test_negotiate_to_parent_without_key(make_gateway, tmp_path, squids, kdc, origin):  # noqa: F811
    """A parent principal the KDC does not know: no token, 502, the GSS
    error in the log, nothing sent to the parent."""
    sq = squids()
    gw = start_gateway(make_gateway, tmp_path, rules_for(), krb=kdc, start=False)
    gw.options["parent"] = ["sq 127.0.0.1:%d auth=negotiate:HTTP/nowhere.test@%s"
                            % (sq.port, kdc.realm)]
    gw.start()
    r = get(gw, origin.url("/x", host="127.0.0.1"))
    assert r.status == 502 and b"cannot authenticate to the parent proxy" in r.body, r
    gw.wait_log(r"event=parent_auth_failed parent=sq error=\".*not found")
    assert not sq.access_log


def test_route_after_dst_rule(make_gateway, tmp_path, squids, origin):
    """A dst= rule before a route= rule: the gateway resolves the name to
    decide dst=, and the rule that admits the address still sends the
    request through the parent (never a direct connection)."""
    sq = squids()
    rules = """
        deny tennet dst=10.0.0.0/8
        allow routed host=localhost route=sq
        allow rest
        """
    gw = gateway_with(make_gateway, tmp_path, ["sq 127.0.0.1:%d" % sq.port], rules=rules)
    url = "http://localhost:%d/after-dst" % origin.port
    r = get(gw, url)
    assert r.status == 200 and r.body == HELLO, r
    sq.wait_logged(lambda x: x[1] == url and x[2] == "200")
    req = [q for q in origin.requests if q.target == "/after-dst"][0]
    assert "sq" in req.header("Via"), req.headers


def test_doctor_checks_parents(tmp_path, squids):
    sq = squids()
    dead = free_port()
    pac = tmp_path / "p.pac"
    pac.write_text('function FindProxyForURL(u, h) { return "DIRECT"; }\n')
    conf = tmp_path / "a.conf"
    conf.write_text("listen 127.0.0.1:%d\nauth_schemes none\nparent up 127.0.0.1:%d\n"
                    "parent down 127.0.0.1:%d\npac_file %s\n" % (free_port(), sq.port, dead, pac))
    rc, out = doctor(conf)
    assert rc == 1, out
    assert "OK   parent: up 127.0.0.1:%d accepts connections" % sq.port in out, out
    assert "FAIL parent: down 127.0.0.1:%d: Connection refused" % dead in out, out
    assert "OK   pac_file: %s: 52 bytes" % pac in out, out


def test_reload_routes_and_parents(make_gateway, tmp_path, squids, origin):
    """SIGHUP: a route to a parent the new file does not define is refused
    (the old configuration keeps serving); a new parent and route are taken."""
    sq = squids()
    gw = gateway_with(make_gateway, tmp_path, ["sq 127.0.0.1:%d" % sq.port])
    url = "http://localhost:%d/reloaded" % origin.port
    assert get(gw, url).status == 200
    assert not any(x[1] == url for x in sq.access_log)
    gw.rules_path.write_text("allow all host=localhost route=other\nallow rest\n")
    since = len(gw.error_log)
    gw.reload()
    gw.wait_log(r"event=reload_failed error=.*route names 'other', which no parent line",
                since=since)
    assert get(gw, origin.url("/still", host="127.0.0.1")).status == 200
    sq.wait_logged(lambda x: x[1].endswith("/still"))
    since = len(gw.error_log)
    gw.reload({"parent": ["sq 127.0.0.1:%d" % sq.port, "other 127.0.0.1:%d" % sq.port]})
    gw.wait_log(r"event=reloaded", since=since)
    assert get(gw, url).status == 200
    sq.wait_logged(lambda x: x[1] == url)


# --- parent ... tls: an HTTPS proxy as parent (Squid's https_port) ----------

def tls_squid(squids, tmp_path, names=None, basic=False, **kw):
    """A Squid with an https_port whose certificate comes from a fresh test
    CA (for localhost/127.0.0.1, or the DNS names given) -> (squid, CA)."""
    ca = ProxyCA(tmp_path / ("ca-%d" % len(list(tmp_path.glob("ca-*")))))
    cert = ca.issue(names=names)
    if basic:
        sq = squid_basic(squids, tmp_path, tls=cert)
    else:
        sq = squids(tls=cert, **kw)
    return sq, ca


def test_tls_parent_get_and_connect(make_gateway, tmp_path, squids, origin, tls_origin):
    """GET and CONNECT through an HTTPS proxy, verified against
    parent_tls_ca and the name localhost; Squid logs both on its https_port
    (which speaks nothing but TLS)."""
    sq, ca = tls_squid(squids, tmp_path)
    gw = gateway_with(make_gateway, tmp_path, ["sq localhost:%d tls" % sq.tls_port],
                      parent_tls_ca=str(ca.ca_file), connect_ports=str(tls_origin.port))
    routed = origin.url("/over-tls-", host="127.0.0.1")
    for i in range(2):  # the second one on the pooled TLS connection
        r = get(gw, routed + "%d" % i)
        assert r.status == 200 and r.body == HELLO, r
    # A body larger than the splice threshold: relayed through the TLS layer.
    big = origin.url("/size/%d" % (3 * 1024 * 1024), host="127.0.0.1")
    r = get(gw, big)
    assert r.status == 200 and r.body == pattern(3 * 1024 * 1024), (r.status, len(r.body))
    r = get(gw, tls_origin.url("/tls"), "alice", "-k", "-p")
    assert r.status == 200 and r.body == HELLO, r
    port = str(sq.tls_port)
    for i in range(2):
        rec = sq.wait_logged(lambda x: x[1] == routed + "%d" % i)
        assert rec[0] == "GET" and rec[2] == "200" and rec[5] == port, rec
    rec = sq.wait_logged(lambda x: x[0] == "CONNECT")
    assert rec[1] == "127.0.0.1:%d" % tls_origin.port and rec[2] == "200" and rec[5] == port, rec
    assert all(x[5] == port for x in sq.access_log), sq.access_log
    wait_until(lambda: any("127.0.0.1:%d" % tls_origin.port in l for l in gw.access_log),
               what="the tunnel's log line")
    _, line = access(gw, "127.0.0.1:%d" % tls_origin.port)
    assert "TCP_TUNNEL/200" in line and "FIRSTUP_PARENT/127.0.0.1" in line, line
    _, line = access(gw, routed + "0")
    assert "FIRSTUP_PARENT/127.0.0.1" in line, line


def test_tls_parent_tunnel_to_slow_client_intact(make_gateway, tmp_path, squids):
    """16 MiB from the target through Squid's https_port and a tunnel to a
    client that reads slowly: the decrypted bytes the gateway writes to the
    client back up (a partial write, the rest copied and queued) and every
    byte arrives once, in order (the queued copy was once queued at its
    read's full length)."""
    target = StreamServer(send=16 * 1024 * 1024).start()
    try:
        sq, ca = tls_squid(squids, tmp_path)
        gw = gateway_with(make_gateway, tmp_path, ["sq localhost:%d tls" % sq.tls_port],
                          parent_tls_ca=str(ca.ca_file), connect_ports=str(target.port))
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
        s.settimeout(30)
        s.connect(("127.0.0.1", gw.port))
        auth = "127.0.0.1:%d" % target.port
        s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n"
                   % (auth, auth, basic("alice", PW["alice"]))).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            b = s.recv(4096)
            assert b, head
            head += b
        head, _, got = head.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        got += read_slowly(s, len(target.data) + 1 - len(got))
        s.close()
        wrong = stream_check(got, target.data)
        assert not wrong, wrong
    finally:
        target.stop()


def test_basic_to_tls_parent(make_gateway, tmp_path, squids, origin, tls_origin):
    """The gateway's Basic credentials go inside TLS; the parent's own ca=
    overrides parent_tls_ca (here a CA that would not verify it)."""
    sq, ca = tls_squid(squids, tmp_path, basic=True)
    other = ProxyCA(tmp_path / "other-ca")
    cred = cred_file(tmp_path, "gw:gw-Secret9\n")
    gw = gateway_with(make_gateway, tmp_path,
                      ["sq 127.0.0.1:%d auth=basic:%s tls ca=%s" % (sq.tls_port, cred,
                                                                    ca.ca_file)],
                      parent_tls_ca=str(other.ca_file), connect_ports=str(tls_origin.port))
    routed = origin.url("/basic-tls", host="127.0.0.1")
    r = get(gw, routed)
    assert r.status == 200 and r.body == HELLO, r
    r = get(gw, tls_origin.url("/tls"), "bob", "-k", "-p")
    assert r.status == 200 and r.body == HELLO, r
    rec = sq.wait_logged(lambda x: x[1] == routed and x[2] == "200")
    assert rec[4] == "gw" and rec[5] == str(sq.tls_port), rec
    rec = sq.wait_logged(lambda x: x[0] == "CONNECT" and x[2] == "200")
    assert rec[4] == "gw" and rec[5] == str(sq.tls_port), rec


@pytest.mark.parametrize("bad", ["wrong_ca", "wrong_name", "wrong_ip", "plain_port"])
def test_tls_parent_not_verified(make_gateway, tmp_path, squids, origin, sockdir, bad):
    """A parent whose certificate does not verify is a failed parent: 502,
    the reason in the log, back-off; nothing reaches it or the origin."""
    sq, ca = tls_squid(squids, tmp_path,
                       names=["other.example"] if bad in ("wrong_name", "wrong_ip") else None)
    cafile = (ProxyCA(tmp_path / "other-ca", cn="another test CA").ca_file if bad == "wrong_ca"
              else ca.ca_file)
    host = "127.0.0.1" if bad == "wrong_ip" else "localhost"
    port = sq.port if bad == "plain_port" else sq.tls_port
    sock = str(sockdir / "ctl.sock")
    gw = gateway_with(make_gateway, tmp_path, ["sq %s:%d tls ca=%s" % (host, port, cafile)],
                      status_socket=sock)
    r = get(gw, origin.url("/x", host="127.0.0.1"))
    assert r.status == 502 and b"no parent proxy available" in r.body, r
    why = {"wrong_ca": "certificate verify failed: unable to get local issuer certificate",
           "wrong_name": "certificate verify failed: hostname mismatch",
           "wrong_ip": "certificate verify failed: IP address mismatch",
           "plain_port": "[^\"]*wrong version number"}[bad]
    gw.wait_log(r"event=parent_tls_failed parent=sq address=%s:%d reason=\"%s" % (host, port, why))
    gw.wait_log(r"event=parent_down parent=sq address=%s:%d reason=\"TLS: " % (host, port))
    gw.wait_log(r"event=parent_none_left .*host=127.0.0.1 reason=\"sq: TLS: ")
    r = get(gw, origin.url("/y", host="127.0.0.1"))
    assert r.status == 502, r
    gw.wait_log(r"event=parent_none_left .*reason=\"sq: in back-off\"")
    st = stats(gw)
    assert (st["parent_failed"], st["parent_tls_failed"], st["parent_skipped"]) == (1, 1, 1), st
    assert st["parent_routed"] == 0, st
    # (Squid logs the aborted TLS connection as "- error:transaction-end-...".)
    assert not [x for x in sq.access_log if x[0] != "-"], sq.access_log
    assert not origin.requests
    parents = ctl_json(sock, "status")["parents"]
    assert [(p["parent"], p["parent_tls"], p["parent_state"]) for p in parents] == [
        ("sq", "on", "backoff")], parents


def test_tls_parent_ca_reread_on_reload(make_gateway, tmp_path, squids, origin):
    """The CA file is read again on SIGHUP: a parent refused with the wrong
    CA is verified once the file holds the right one (after its back-off)."""
    sq, ca = tls_squid(squids, tmp_path)
    other = ProxyCA(tmp_path / "other-ca", cn="another test CA")
    cafile = tmp_path / "parent-ca.pem"
    cafile.write_bytes(other.ca_file.read_bytes())
    gw = gateway_with(make_gateway, tmp_path,
                      ["sq localhost:%d tls ca=%s" % (sq.tls_port, cafile)],
                      parent_backoff="1s")
    r = get(gw, origin.url("/before", host="127.0.0.1"))
    t_down = time.monotonic()
    assert r.status == 502, r
    gw.wait_log(r"event=parent_tls_failed parent=sq .*unable to get local issuer certificate")
    cafile.write_bytes(ca.ca_file.read_bytes())
    since = len(gw.error_log)
    gw.reload()
    gw.wait_log(r"event=reloaded", since=since)
    time.sleep(max(0.0, t_down + 1.2 - time.monotonic()))  # the back-off is over
    # A POST: a request body goes through the TLS layer too.
    r = get(gw, origin.url("/echo/after", host="127.0.0.1"), "alice", "-d", "x=1")
    assert r.status == 200 and json.loads(r.body)["body"] == "x=1", r
    rec = sq.wait_logged(lambda x: x[1].endswith("/echo/after"))
    assert rec[0] == "POST" and rec[2] == "200" and rec[5] == str(sq.tls_port), rec
    gw.wait_log(r"event=parent_up parent=sq")


def test_tls_parent_handshake_deadline(make_gateway, tmp_path, origin):
    """A parent that accepts the connection and never answers the
    ClientHello is failed after tls_handshake_timeout."""
    import socket
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    try:
        port = srv.getsockname()[1]
        gw = gateway_with(make_gateway, tmp_path, ["mute 127.0.0.1:%d tls" % port],
                          rules=rules_for("mute"), tls_handshake_timeout="1s")
        t0 = time.monotonic()
        r = get(gw, origin.url("/x", host="127.0.0.1"))
        took = time.monotonic() - t0
        assert r.status == 502, r
        assert 0.9 <= took < 10, took
        gw.wait_log(r"event=parent_tls_failed parent=mute address=127.0.0.1:%d "
                    r"reason=\"handshake timeout\"" % port)
        assert not origin.requests
    finally:
        srv.close()


def test_tls_parent_bad_ca_file_refused_at_load(tmp_path):
    conf = tmp_path / "a.conf"
    conf.write_text("parent sq 127.0.0.1:3129 tls ca=%s\n" % (tmp_path / "missing.pem"))
    rc, out = check_config(conf)
    assert rc == 1 and "parent sq tls: %s: cannot load CA certificates" % (
        tmp_path / "missing.pem") in out, out
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    conf.write_text("parent sq 127.0.0.1:3129 tls\nparent_tls_ca %s\n" % junk)
    rc, out = check_config(conf)
    assert rc == 1 and "parent sq tls: %s: cannot load CA certificates" % junk in out, out


# --- the shared upstream pool with a TLS parent ------------------------------
# One loop (workers 1: each loop has its own pool) and a status socket for the
# pool counters. Each curl is a new client connection; Squid's log has the
# source port of the gateway's connection it came in on (the last field), so
# the parent itself says how many TLS connections carried the requests.

def pooled_tls_gateway(make_gateway, tmp_path, sockdir, parent_line, ca, **opts):
    return gateway_with(make_gateway, tmp_path, [parent_line], parent_tls_ca=str(ca.ca_file),
                        status_socket=str(sockdir / "ctl.sock"), workers="1", **opts)


def wait_stat(gw, name, at_least, what):
    wait_until(lambda: stats(gw).get(name, 0) >= at_least, timeout=10, what=what)


def test_tls_parent_connection_pooled_across_clients(make_gateway, tmp_path, squids, origin,
                                                     sockdir):
    """Four requests from four client connections, one after the other, go
    over ONE TLS connection to the parent: the gateway counts one miss and
    three hits, Squid logs all four on its https_port from one source port,
    and every client gets its own, intact body."""
    sq, ca = tls_squid(squids, tmp_path)
    gw = pooled_tls_gateway(make_gateway, tmp_path, sockdir, "sq localhost:%d tls" % sq.tls_port,
                            ca)
    sizes = [1000, 70000, 5, 300000]  # distinct bodies: a mix-up shows
    for n in sizes:
        r = get(gw, origin.url("/size/%d" % n, host="127.0.0.1"))
        assert r.status == 200 and r.body == pattern(n), (n, r.status, len(r.body))
    recs = [sq.wait_logged(lambda x, n=n: x[1].endswith("/size/%d" % n)) for n in sizes]
    assert all(x[0] == "GET" and x[2] == "200" and x[5] == str(sq.tls_port) for x in recs), recs
    assert len({x[6] for x in recs}) == 1, recs  # one TLS connection to the parent
    st = stats(gw)
    assert (st["upstream_pool_misses"], st["upstream_pool_hits"]) == (1, 3), st
    assert st["upstream_opened"] == 1 and st["parent_routed"] == 4, st
    assert st["upstream_pool_stale_retries"] == 0 and st["parent_tls_failed"] == 0, st


def test_tls_parent_closing_idle_pooled_connection(make_gateway, tmp_path, squids, origin,
                                                   sockdir):
    """Squid closes an idle client connection after client_idle_pconn_timeout
    (close_notify, then FIN): the gateway drops it from the pool while it is
    idle, and the next client's request goes over a fresh TLS connection."""
    sq, ca = tls_squid(squids, tmp_path, auth_lines=["client_idle_pconn_timeout 1 second"])
    gw = pooled_tls_gateway(make_gateway, tmp_path, sockdir, "sq localhost:%d tls" % sq.tls_port,
                            ca)
    r = get(gw, origin.url("/first", host="127.0.0.1"))
    assert r.status == 200 and r.body == HELLO, r
    wait_stat(gw, "upstream_pool_closed_idle", 1, "the parent's idle close seen by the pool")
    r = get(gw, origin.url("/size/4321", host="127.0.0.1"))
    assert r.status == 200 and r.body == pattern(4321), (r.status, len(r.body))
    first = sq.wait_logged(lambda x: x[1].endswith("/first"))
    second = sq.wait_logged(lambda x: x[1].endswith("/size/4321"))
    assert first[6] != second[6], (first, second)  # a new TLS connection
    st = stats(gw)
    assert st["upstream_pool_closed_idle"] == 1 and st["upstream_opened"] == 2, st
    assert st["upstream_pool_hits"] == 0 and st["upstream_pool_stale_retries"] == 0, st


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_tls_parent_stale_pooled_connection(make_gateway, tmp_path, sockdir, method):
    """A TLS parent that closes a pooled connection just as the next request
    arrives (the harness origin in the role of an HTTPS proxy: absolute-form
    requests over TLS, dropping a connection's second request unanswered):
    a GET is retried once on a fresh TLS connection, a POST is not (502)."""
    ca = ProxyCA(tmp_path / "ca-stale")
    par = OriginServer(ssl_context=make_tls_context(*ca.issue()), name="tls-parent").start()
    try:
        gw = pooled_tls_gateway(make_gateway, tmp_path, sockdir,
                                "sq localhost:%d tls" % par.port, ca)
        r = get(gw, "http://127.0.0.1:9/drop-second/1")
        assert r.status == 200 and r.body == HELLO, r
        args = ("-d", "x=1") if method == "POST" else ()
        r = get(gw, "http://127.0.0.1:9/drop-second/2", "alice", *args)
        reqs = par.wait_requests(3 if method == "GET" else 2)
        assert all(q.tls for q in reqs), reqs
        assert reqs[1].conn_id == reqs[0].conn_id, reqs  # the pooled connection was taken
        st = stats(gw)
        assert st["upstream_pool_hits"] == 1, st
        if method == "GET":
            assert r.status == 200 and r.body == HELLO, r
            assert [q.target for q in reqs] == ["http://127.0.0.1:9/drop-second/1"] + [
                "http://127.0.0.1:9/drop-second/2"] * 2, reqs
            assert reqs[2].conn_id != reqs[0].conn_id, reqs
            assert st["upstream_pool_stale_retries"] == 1 and st["upstream_opened"] == 2, st
        else:
            assert r.status == 502, r
            assert [q.method for q in par.requests] == ["GET", "POST"], par.requests
            assert st["upstream_pool_stale_retries"] == 0, st
    finally:
        par.stop()


def test_tls_parent_origin_ntlm_pins_connection(make_gateway, tmp_path, squids, origin, sockdir):
    """An origin doing NTLM behind a TLS parent: Squid pins its connection to
    the origin to the gateway's TLS connection, so the gateway must pin that
    TLS connection to alice's client connection. Bob, on another client
    connection, must get the origin's 401, never "hello alice"."""
    sq, ca = tls_squid(squids, tmp_path)
    gw = pooled_tls_gateway(make_gateway, tmp_path, sockdir, "sq localhost:%d tls" % sq.tls_port,
                            ca)
    url = origin.url("/ntlmconn", host="127.0.0.1")

    def ask(c, user, *headers):
        return c.request(get_request(url, [("Proxy-Authorization", basic(user, PW[user]))] +
                                     list(headers)))

    a = gw.client()
    r = ask(a, "alice", ("Authorization", "NTLM type1"))
    assert r.status == 401 and r.header("proxy-support") == "Session-Based-Authentication", r
    r = ask(a, "alice", ("Authorization", "NTLM type3-alice"))
    assert r.status == 200 and r.body == b"hello alice\n", r
    r = ask(a, "alice")
    assert r.status == 200 and r.body == b"hello alice\n", r  # still alice's connection
    b = gw.client()
    r = ask(b, "bob")
    assert r.status == 401 and r.body == b"log in\n", r.body
    wait_until(lambda: len(sq.access_log) >= 4, what="four requests in Squid's log")
    recs = sq.access_log
    assert len({x[6] for x in recs[:3]}) == 1 and recs[3][6] != recs[0][6], recs
    st = stats(gw)
    assert st["upstream_pinned"] >= 1 and st["upstream_pool_hits"] == 0, st


def test_tls_parent_origin_negotiate_challenge_pins_connection(make_gateway, tmp_path, squids,
                                                               origin, sockdir):
    """An origin's Negotiate challenge relayed by a TLS parent pins the
    gateway's TLS connection to the client that got it (NTLM: the test
    above): the next client gets a connection of its own (Squid logs two
    source ports), the pool counts no hit; the client is told
    Session-Based-Authentication."""
    scheme = "Negotiate"
    sq, ca = tls_squid(squids, tmp_path)
    gw = pooled_tls_gateway(make_gateway, tmp_path, sockdir, "sq localhost:%d tls" % sq.tls_port,
                            ca)
    a = gw.client()
    r = a.request(get_request(origin.url("/auth401/%s" % scheme, host="127.0.0.1"),
                              [("Proxy-Authorization", basic("alice", PW["alice"]))]))
    assert r.status == 401 and r.header("www-authenticate") == scheme, r
    assert r.header("proxy-support") == "Session-Based-Authentication", r
    r = get(gw, origin.url("/size/777", host="127.0.0.1"), "bob")
    assert r.status == 200 and r.body == pattern(777), (r.status, len(r.body))
    first = sq.wait_logged(lambda x: x[1].endswith("/auth401/%s" % scheme))
    second = sq.wait_logged(lambda x: x[1].endswith("/size/777"))
    assert first[2] == "401" and first[6] != second[6], (first, second)
    st = stats(gw)
    assert st["upstream_pinned"] == 1 and st["upstream_pool_hits"] == 0, st
    assert st["upstream_opened"] == 2 and st["parent_routed"] == 2, st
