"""Access rules (rules_file) end to end, with real peers.

One scenario per test. The gateways authenticate for real:

* the test winbindd (peers/winbind.py: domain AUTHGATE, alice in `internet`,
  carol in `sales`, bob in neither) for Basic and NTLM, `basic_backend` and
  `ntlm_backend winbind`; the gateway process reaches it through
  Winbind.gateway_env() / client_prefix();
* the throwaway MIT KDC (peers/kdc.py) for Negotiate, with the winbindd
  alongside so that Kerberos users get their groups from winbind;
* the local user file (Basic / NTLM) for the destination matchers, and for
  groups declared in the rules file.

Clients: curl (NTLM, Negotiate, CONNECT with -k to the TLS origin) and raw
sockets (harness/rawhttp.py) where the exact bytes or the connection matter.

Name resolution without touching /etc/hosts: the gateway is started with
nss_wrapper preloaded and NSS_WRAPPER_HOSTS pointing at a private hosts file
(`hosts=` of start_gateway), so that names such as www.corp.test or
dual.test (127.0.0.1 and ::1) resolve inside the gateway only; the origins
listen on 127.0.0.1 and ::1 on the same port.

Basic through winbind sends DOMAIN\\user here: what these tests are about is
the rules, not how a name is qualified (test_auth_basic.py covers that).

Run: AUTHGATE_BIN=build/authgate /usr/bin/python3 -m pytest -q tests/integration/test_rules.py
"""

import os
import pathlib
import re
import socket
import subprocess
import tempfile
import textwrap
import time

import pytest

from harness.accesslog import access_records, result_status
from harness.ctl_client import stats
from harness.gateway import GatewayError, check_config, sanitizer_env
from harness.ntlm_client import b64, ntlm_legs
from harness.origin import HELLO, OriginServer
from harness.rawhttp import RawClient, build_request, get_request
from harness.tools import CurlResult, assert_error_response, curl
from peers._util import run
from peers.fixtures import _need_winbind, _winbind_session, kdc, winbind  # noqa: F401
from peers.kdc import Kdc
from peers.winbind import NSS_WRAPPER, Winbind, asan_runtime

REPO = pathlib.Path(__file__).resolve().parents[2]
LSAN_SUPP = REPO / "tests" / "lsan.supp"

PW = {"alice": "alice-Pass1", "bob": "bob-Pass2", "carol": "carol-Pass3"}
# MD4(UTF-16LE(password)) of the passwords above (the local user file format);
# fixed values so that no MD4 is needed here (OpenSSL 3 hides it).
NT_HASH = {
    "alice": "8e5cd726988dbbc72e216a1f951fe68b",
    "bob": "9d3f70cb1c9ae62c6e53c49f34d26a97",
    "carol": "c8a120d7661433e5c24024b9b8b1f3ae",
}
IDENT = "X-Authenticated-User"
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]  # tm_wday order

# A private hosts file for the gateway (through nss_wrapper).
HOSTS = {
    "127.0.0.1": ["www.corp.test", "deep.sub.corp.test", "corp.test", "evilcorp.test",
                  "v4.test", "www.blocked.test", "dual.test", "secret.test", "public.test"],
    "::1": ["v6.test", "dual.test"],
    # names that resolve to the unspecified address (DNS sinkholes answer so)
    "0.0.0.0": ["zero.test", "zero-and-v6.test"],
    "::": ["zero6.test"],
    "::ffff:0.0.0.0": ["zero-mapped.test"],
}
HOSTS.setdefault("::1", []).append("zero-and-v6.test")


# --------------------------------------------------------------------------- helpers


def basic(user, domain=None):
    name = "%s\\%s" % (domain, user) if domain else user
    return "Basic " + b64("%s:%s" % (name, PW[user]))


def launch(gw, prefix=()):
    """Gateway.start(), with a command prefix (winbind client_mode=namespace)."""
    return gw.start(prefix=prefix)


def start_gateway(make_gateway, tmp_path, rules, *, backend="local", wb=None, krb=None,
                  hosts=False, start=True, **opts):
    """A gateway whose rules_file (tmp_path/rules.conf) holds `rules`.

    backend="local": Basic and NTLM against a user file with alice/bob/carol;
    backend="winbind": both through wb; backend=None: only what opts say.
    krb: a Kdc; Negotiate through it (proxy_host localhost) as well.
    hosts=True: the gateway resolves the names in HOSTS (nss_wrapper)."""
    rules_path = tmp_path / "rules.conf"
    rules_path.write_text(textwrap.dedent(rules).lstrip("\n"))
    o = {"rules_file": str(rules_path), "identity_header": IDENT, "handshake_timeout": "3s"}
    if backend == "local":
        uf = tmp_path / "users"
        uf.write_text("".join("%s:%s\n" % (u, h) for u, h in NT_HASH.items()))
        o.update(auth_schemes="basic ntlm", basic_backend="local", ntlm_backend="local",
                 user_file=str(uf), ntlm_domain="AUTHGATE")
    elif backend == "winbind":
        o.update(auth_schemes="ntlm basic", basic_backend="winbind", ntlm_backend="winbind",
                 user_file="none")
    if krb is not None:
        o.update(auth_schemes="negotiate " + o.get("auth_schemes", ""), proxy_host="localhost",
                 keytab=krb.keytab, rcache_dir=krb.rcache_dir)
    o.update(opts)
    gw = make_gateway(start=False, **o)
    gw.rules_path = rules_path
    env = dict(gw.env)
    # MIT krb5 leaks in a failing gss_acquire_cred_from (tests/lsan.supp).
    lsan = env.get("LSAN_OPTIONS", "")
    if "suppressions=" not in lsan:
        env["LSAN_OPTIONS"] = "suppressions=%s:print_suppressions=0%s" % (
            LSAN_SUPP, (":" + lsan) if lsan else ":exitcode=88")
    if krb is not None:
        env.update(krb.env)
    prefix = ()
    if wb is not None:
        env = wb.gateway_env(env, binary=gw.binary)
        prefix = wb.client_prefix()
    if hosts:
        hf = tmp_path / "hosts"
        hf.write_text("".join("%s %s\n" % (ip, n) for ip, names in HOSTS.items()
                              for n in names))
        env["NSS_WRAPPER_HOSTS"] = str(hf)
        pre = [p for p in env.get("LD_PRELOAD", "").replace(":", " ").split() if p]
        asan = asan_runtime(gw.binary)
        if asan and asan not in pre:
            pre.insert(0, asan)  # a sanitizer runtime must come first
        if not any(os.path.basename(p) == NSS_WRAPPER for p in pre):
            pre.append(NSS_WRAPPER)
        env["LD_PRELOAD"] = " ".join(pre)
    gw.env = env
    gw.prefix = prefix
    if start:
        launch(gw, prefix)
    return gw


def authority(url):
    return url.split("://", 1)[1].split("/", 1)[0]


def fetch(gw, url, auth=None, method="GET", client=None):
    """One request on a new raw connection (or `client`); returns the response."""
    c = client or gw.client()
    hdrs = [("Proxy-Authorization", auth)] if auth else []
    if method == "CONNECT":
        a = authority(url) if "://" in url else url
        data = build_request("CONNECT", a, [("Host", a)] + hdrs)
    else:
        data = get_request(url, hdrs, method=method)
    return c.request(data)


def assert_denied(resp, rule, keep=True):
    """403 from the gateway naming `rule`."""
    assert_error_response(resp, 403)
    assert resp.body == b"403 Forbidden: denied by access rule '%s'\n" % rule.encode(), resp.body
    assert resp.header("connection") == ("keep-alive" if keep else "close"), resp


def assert_origin(resp, body=HELLO):
    assert resp.status == 200, (resp, resp.body[:300])
    assert resp.header("server") == "test-origin", resp
    if body is not None:
        assert resp.body == body


def kv(name, value):
    """A regex for `name=value` in the error log, the value bare or quoted."""
    v = re.escape(str(value))
    return r'%s=(?:%s|"%s")' % (name, v, v)


def denied_line(gw, rule, user, host, port, client=None, since=0):
    """Waits for the error log line of a denial; returns the match."""
    return gw.wait_log(r"conn=(\d+) req=\d+ event=denied %s %s %s %s %s"
                       % (kv("rule", rule), kv("client", client) if client else r"client=\S+",
                          kv("user", user), kv("host", host), kv("port", port)),
                       since=since)


def curl_as(gw, *args, env=None, timeout=15, proxy=None):
    """curl through gw (proxy given as http://localhost:PORT by default) with env."""
    with tempfile.TemporaryDirectory() as d:
        args = [str(a) for a in args]
        n = max(1, sum(1 for a in args if re.match(r"^https?://", a)))
        bodies = [pathlib.Path(d) / ("b%d" % i) for i in range(n)]
        head = pathlib.Path(d) / "head"
        cmd = ["curl", "-sS", "--noproxy", "", "--max-time", str(timeout - 2), "-D", str(head),
               "-w", "%{http_code} %{time_total}\\n",
               "-x", proxy or ("http://localhost:%d" % gw.port)]
        for b in bodies:
            cmd += ["-o", str(b)]
        cmd += args
        p = subprocess.run(cmd, capture_output=True, timeout=timeout,
                           env=sanitizer_env(env if env is not None else os.environ),
                           stdin=subprocess.DEVNULL)
        out = p.stdout.decode().strip().splitlines()
        last = out[-1].split() if out else []
        return CurlResult(p.returncode, b"".join(b.read_bytes() for b in bodies if b.exists()),
                          p.stderr.decode(errors="replace"),
                          int(last[0]) if last and last[0].isdigit() else None,
                          head.read_bytes() if head.exists() else b"",
                          float(last[1]) if len(last) > 1 else None)


def statuses(r):
    return [x.status for x in r.responses]


class BoundClient(RawClient):
    """A RawClient whose connection comes from a chosen source address."""

    def __init__(self, host, port, source, timeout=5.0):
        self.host, self.port, self.timeout = host, port, timeout
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.buf = b""
        self.eof = False
        self.reset = False


class WinbindWithIdmap(Winbind):
    """The test winbindd plus what a domain member always has and the stock
    peer lacks: an idmap range, and a mapping for the primary group (Domain
    Users, RID 513). Without them winbindd cannot build a user's token from
    a SID alone (wbcLookupUserSids, `wbinfo --user-sids`): sid2uid fails
    ("idmap range not specified for domain *") and the primary group "belongs
    to our domain, but there is no corresponding object in the database", so
    it answers NT_STATUS_NO_SUCH_USER / WBC_ERR_DOMAIN_NOT_FOUND. That is the
    call the gateway makes for Kerberos users (ag_wb_user_sids_blocking);
    NTLM and Basic get their SIDs from the logon itself and work without."""

    def _write_smb_conf(self):
        super()._write_smb_conf()
        with open(self.smb_conf, "a") as f:
            f.write("    idmap config * : backend = tdb\n"
                    "    idmap config * : range = 1000000-1999999\n")

    def setup(self):
        super().setup()
        run(["net", "-s", self.smb_conf, "groupmap", "add", "rid=513", "unixgroup=agusers",
             "ntgroup=Domain Users", "type=domain"], env=self._server_env(),
            what="net groupmap add Domain Users")


@pytest.fixture(scope="module")
def winbind_idmap():
    _need_winbind()
    with WinbindWithIdmap() as w:
        yield w


@pytest.fixture
def origin2():
    srv = OriginServer(name="origin2").start()
    yield srv
    srv.stop()


# --------------------------------------------------------------------------- groups (winbind)


@pytest.mark.needs_winbind
def test_group_rule_alice_passes_bob_and_carol_refused(make_gateway, tmp_path, winbind, origin):
    """`allow net group=internet` + `default deny`: alice (in internet) reaches
    the origin over NTLM, bob gets 403 naming `default`, carol (in sales) the
    deny rule that names her group."""
    gw = start_gateway(make_gateway, tmp_path, """
        default deny
        allow net group=internet
        deny  no-sales group=sales
        """, backend="winbind", wb=winbind)
    gw.wait_log(r"event=rules_loaded %s %s" % (kv("file", gw.rules_path), kv("rules", 2)))

    r = curl(gw.url, "--proxy-ntlm", "-U", "alice:" + PW["alice"], origin.url("/echo"))
    assert r.rc == 0 and statuses(r) == [407, 200], r
    (q,) = origin.wait_requests(1)
    assert q.header_all(IDENT) == ["AUTHGATE\\alice"]

    r = curl(gw.url, "--proxy-ntlm", "-U", "bob:" + PW["bob"], origin.url("/echo/bob"))
    assert r.rc == 0 and statuses(r) == [407, 403], r
    assert r.body == b"403 Forbidden: denied by access rule 'default'\n"
    denied_line(gw, "default", "AUTHGATE\\bob", "127.0.0.1", origin.port)

    r = curl(gw.url, "--proxy-ntlm", "-U", "carol:" + PW["carol"], origin.url("/echo/carol"))
    assert r.rc == 0 and statuses(r) == [407, 403], r
    assert r.body == b"403 Forbidden: denied by access rule 'no-sales'\n"
    denied_line(gw, "no-sales", "AUTHGATE\\carol", "127.0.0.1", origin.port)

    assert [q.target for q in origin.requests] == ["/echo"]
    codes = [result_status(f) for f in access_records(gw.wait_access_log(6))]
    assert codes == ["TCP_DENIED/407", "TCP_MISS/200"] + ["TCP_DENIED/407", "TCP_DENIED/403"] * 2


@pytest.mark.needs_winbind
def test_denied_basic_user_keeps_connection(make_gateway, tmp_path, winbind, origin):
    """bob's 403 over Basic leaves his connection open: the next request on the
    same socket is answered (the origin for a path he may use, 403 again for
    one he may not)."""
    gw = start_gateway(make_gateway, tmp_path, """
        default deny
        allow net group=internet
        allow bob-public user=bob path=/public/
        """, backend="winbind", wb=winbind)
    c = gw.client()
    bob = basic("bob", winbind.domain)
    assert_denied(fetch(gw, origin.url("/echo"), bob, client=c), "default")
    assert not c.is_closed(0.3)
    assert_origin(fetch(gw, origin.url("/public/x"), bob, client=c))
    assert_denied(fetch(gw, origin.url("/private"), bob, client=c), "default")
    assert_origin(fetch(gw, origin.url("/public/y"), bob, client=c))
    assert [q.target for q in origin.requests] == ["/public/x", "/public/y"]
    assert all(q.header_all(IDENT) == ["AUTHGATE\\bob"] for q in origin.requests)
    # alice, on her own connection, may go anywhere
    assert_origin(fetch(gw, origin.url("/echo"), basic("alice", winbind.domain)), body=None)


@pytest.mark.needs_winbind
def test_403_keeps_authenticated_ntlm_connection(make_gateway, tmp_path, winbind, origin):
    """One NTLM handshake, then allowed, denied, allowed on the same
    connection: the 403 neither closes it nor forgets who bob is."""
    gw = start_gateway(make_gateway, tmp_path, """
        default allow
        deny no-secret path=/secret
        """, backend="winbind", wb=winbind)
    r = curl(gw.url, "-v", "--proxy-ntlm", "-U", "bob:" + PW["bob"], origin.url("/echo/1"),
             origin.url("/secret/2"), origin.url("/echo/3"))
    assert r.rc == 0, r
    assert statuses(r) == [407, 200, 403, 200], r.headers_raw
    assert r.stderr.count("Connected to") == 1, r.stderr  # one TCP connection
    assert r.stderr.count("Re-using existing connection") == 3, r.stderr  # Type 3, URL 2, 3
    assert r.stderr.count("Proxy-Authorization: NTLM") == 2  # Type 1 and Type 3 only
    reqs = origin.wait_requests(2)
    assert [q.target for q in reqs] == ["/echo/1", "/echo/3"]
    assert all(q.header_all(IDENT) == ["AUTHGATE\\bob"] for q in reqs)
    m = denied_line(gw, "no-secret", "AUTHGATE\\bob", "127.0.0.1", origin.port)
    ok = re.findall(r"conn=(\d+) event=auth_ok scheme=NTLM", gw.error_log)
    assert ok == [m.group(1)], gw.error_log  # one handshake, on the connection denied
    users = [f["user"] for f in access_records(gw.wait_access_log(4))]
    assert users == ["-"] + ["AUTHGATE\\bob"] * 3


@pytest.mark.needs_winbind
@pytest.mark.parametrize("group", ["no-such-group", "AUTHGATE\\ghosts"])
def test_unknown_group_fails_startup(make_gateway, tmp_path, winbind, group):
    gw = start_gateway(make_gateway, tmp_path, """
        default deny
        allow net group=internet
        allow ghosts group="%s"
        """ % group, backend="winbind", wb=winbind, start=False)
    with pytest.raises(GatewayError, match="exited with 1 during start-up"):
        launch(gw, gw.prefix)
    assert gw.stop(expect_rc=1) == 1
    want = "%s:3: group '%s' does not resolve (no such group)" % (gw.rules_path, group)
    assert 'event=startup_failed error="%s"' % want in gw.error_log, gw.logs_tail()


def test_undeclared_group_without_winbind_fails_startup(make_gateway, tmp_path):
    """Local backend: only groups declared in the file exist."""
    gw = start_gateway(make_gateway, tmp_path, """
        group helpdesk alice
        allow hd group=helpdesk
        allow net group=internet
        """, start=False)
    with pytest.raises(GatewayError, match="exited with 1 during start-up"):
        launch(gw, gw.prefix)
    assert gw.stop(expect_rc=1) == 1
    want = ("%s:3: group 'internet' is not declared and no winbind backend resolves it"
            % gw.rules_path)
    assert want in gw.error_log, gw.logs_tail()


@pytest.mark.needs_winbind
def test_unknown_group_fails_reload_old_rules_stay(make_gateway, tmp_path, winbind, origin):
    gw = start_gateway(make_gateway, tmp_path, """
        default deny
        allow net group=internet
        """, backend="winbind", wb=winbind)
    alice, bob = basic("alice", winbind.domain), basic("bob", winbind.domain)
    assert_origin(fetch(gw, origin.url("/"), alice))
    assert_denied(fetch(gw, origin.url("/"), bob), "default")

    # would let bob through (default allow) if it loaded
    gw.rules_path.write_text("default allow\nallow net group=internet\n"
                             "# a comment\nallow ghosts group=ghosts\n")
    since = len(gw.error_log)
    gw.reload(wait=0)
    m = gw.wait_log(r'event=reload_failed error="([^"]*)"', since=since)
    assert m.group(1) == "%s:4: group 'ghosts' does not resolve (no such group)" % gw.rules_path
    assert_denied(fetch(gw, origin.url("/"), bob), "default")
    assert_origin(fetch(gw, origin.url("/"), alice))

    # the same file without the bad line loads
    gw.rules_path.write_text("default allow\nallow net group=internet\n")
    since = len(gw.error_log)
    gw.reload(wait=0)
    gw.wait_log(r"event=rules_loaded %s %s" % (kv("file", gw.rules_path), kv("rules", 1)),
                since=since)
    gw.wait_log(r"event=reloaded", since=since)
    assert_origin(fetch(gw, origin.url("/"), bob))


@pytest.mark.needs_winbind
def test_group_rule_survives_basic_cache(make_gateway, tmp_path, winbind, origin):
    """Regression: a cached Basic result kept only user and domain, so group=
    rules stopped matching from a winbind user's second request on."""
    gw = start_gateway(make_gateway, tmp_path, """
        default deny
        allow net group=internet
        """, backend="winbind", wb=winbind)
    alice = basic("alice", winbind.domain)
    c = gw.client()
    assert_origin(fetch(gw, origin.url("/1"), alice, client=c))
    assert_origin(fetch(gw, origin.url("/2"), alice, client=c))  # same connection, cached
    assert_origin(fetch(gw, origin.url("/3"), alice))  # another connection, cached


@pytest.mark.needs_winbind
def test_user_rules_plain_and_domain_names(make_gateway, tmp_path, winbind, origin):
    """user=alice (any domain), user=authgate\\bob (case-insensitive), and a
    DOMAIN\\user of another domain that must not match AUTHGATE\\carol."""
    gw = start_gateway(make_gateway, tmp_path, r"""
        default deny
        allow by-name user=alice
        allow by-domain user=authgate\BOB
        allow other-domain user=OTHER\carol
        """, backend="winbind", wb=winbind)
    for user, want in (("alice", 200), ("bob", 200), ("carol", 403)):
        r = curl(gw.url, "--proxy-ntlm", "-U", "%s:%s" % (user, PW[user]), origin.url("/echo"))
        assert r.rc == 0 and statuses(r) == [407, want], (user, r)
    # Basic with an explicit domain gives the same identities
    assert_origin(fetch(gw, origin.url("/"), basic("bob", winbind.domain)))
    assert_denied(fetch(gw, origin.url("/"), basic("carol", winbind.domain)), "default")
    assert [q.header(IDENT) for q in origin.wait_requests(3)] == [
        "AUTHGATE\\alice", "AUTHGATE\\bob", "AUTHGATE\\bob"]


# --------------------------------------------------------------------------- Kerberos


@pytest.mark.needs_kdc
@pytest.mark.needs_winbind
def test_kerberos_users_get_groups_from_winbind(make_gateway, tmp_path, kdc, winbind_idmap,
                                                origin):
    """alice@AUTHGATE.TEST over Negotiate is allowed by group=internet (her SIDs
    come from winbind: the ticket carries none); bob@AUTHGATE.TEST is not.
    user= matches Kerberos names as user@REALM and as the bare account. The
    standalone winbindd reports no DNS name: realm_domain maps the realm."""
    gw = start_gateway(make_gateway, tmp_path, """
        default deny
        allow net group=internet
        allow krb-bob user=bob@AUTHGATE.TEST path=/bob/
        allow carol user=carol path=/carol/
        """, backend=None, wb=winbind_idmap, krb=kdc, auth_schemes="negotiate ntlm",
                       ntlm_backend="winbind", user_file="none",
                       realm_domain=["%s %s" % (kdc.realm.lower(), winbind_idmap.domain)])
    assert "event=negotiate_ready" in gw.error_log, gw.logs_tail()

    def neg(user, path):
        return curl_as(gw, "--proxy-negotiate", "-U", ":", origin.url(path),
                       env=kdc.client_env(user))

    # (curl sends its token with the first request: no 407 round)
    r = neg("alice", "/echo")
    assert r.rc == 0 and r.status == 200, r
    r = neg("bob", "/echo")
    assert r.rc == 0 and r.status == 403, r
    assert r.body == b"403 Forbidden: denied by access rule 'default'\n"
    denied_line(gw, "default", "bob@AUTHGATE.TEST", "127.0.0.1", origin.port)
    r = neg("bob", "/bob/x")
    assert r.rc == 0 and r.status == 200, r
    r = neg("carol", "/carol/x")
    assert r.rc == 0 and r.status == 200, r
    r = neg("carol", "/echo")
    assert r.rc == 0 and r.status == 403, r
    assert [(q.target, q.header(IDENT)) for q in origin.wait_requests(3)] == [
        ("/echo", "alice@AUTHGATE.TEST"), ("/bob/x", "bob@AUTHGATE.TEST"),
        ("/carol/x", "carol@AUTHGATE.TEST")]
    assert len(re.findall(r"event=auth_ok scheme=Negotiate", gw.error_log)) == 5


@pytest.fixture(scope="module")
def other_kdc():
    """A second realm, OTHER.TEST, with its own alice/bob/carol: names that
    exist in the winbind domain too, but are other people."""
    with Kdc(realm="OTHER.TEST", other_service=None) as k:
        yield k


def two_realm_keytab(tmp_path, kdc, other_kdc):
    """HTTP/localhost of both realms in one keytab: the gateway (acceptor
    HTTP@localhost) accepts tickets from either realm."""
    kt = str(tmp_path / "two-realms.keytab")
    kdc.export_keytab(kdc.service, kt)
    other_kdc.export_keytab(other_kdc.service, kt)
    return kt


def neg_as(gw, env, url):
    return curl_as(gw, "--proxy-negotiate", "-U", ":", url, env=env)


@pytest.mark.needs_kdc
@pytest.mark.needs_winbind
def test_kerberos_groups_not_borrowed_across_realms(make_gateway, tmp_path, kdc, other_kdc,
                                                     winbind_idmap, origin):
    """Suspected in issue 10, confirmed: the group lookup used only the account
    part of the principal, so alice@OTHER.TEST (a realm no winbind domain
    answers for) got the groups of AUTHGATE\\alice. Neither realm maps to the
    winbind domain here (a standalone winbindd reports no DNS name and no
    realm_domain is set): no Kerberos user has winbind groups, a group= allow
    rule lets nobody in, and user= rules still work."""
    gw = start_gateway(make_gateway, tmp_path, """
        default deny
        allow net group=internet
        allow krb-bob user=bob@OTHER.TEST path=/bob/
        """, backend=None, wb=winbind_idmap, krb=kdc, auth_schemes="negotiate ntlm",
                       ntlm_backend="winbind", user_file="none",
                       keytab=two_realm_keytab(tmp_path, kdc, other_kdc))
    r = neg_as(gw, other_kdc.client_env("alice"), origin.url("/echo/other"))
    assert r.rc == 0 and r.status == 403, r
    assert r.body == b"403 Forbidden: denied by access rule 'default'\n"
    denied_line(gw, "default", "alice@OTHER.TEST", "127.0.0.1", origin.port)
    r = neg_as(gw, kdc.client_env("alice"), origin.url("/echo/local"))
    assert r.rc == 0 and r.status == 403, r
    r = neg_as(gw, other_kdc.client_env("bob"), origin.url("/bob/x"))
    assert r.rc == 0 and r.status == 200, r
    assert [(q.target, q.header(IDENT)) for q in origin.wait_requests(1)] == [
        ("/bob/x", "bob@OTHER.TEST")]


@pytest.mark.needs_kdc
@pytest.mark.needs_winbind
def test_realm_domain_maps_a_realm_to_winbind(make_gateway, tmp_path, kdc, other_kdc,
                                              winbind_idmap, origin):
    """`realm_domain AUTHGATE.TEST AUTHGATE`: alice@AUTHGATE.TEST has the
    groups of AUTHGATE\alice, alice@OTHER.TEST (not mapped) has none; mapping
    OTHER.TEST too (the operator says so) gives its users that domain's
    groups. A reload changes the map."""
    gw = start_gateway(make_gateway, tmp_path, """
        default deny
        allow net group=internet
        """, backend=None, wb=winbind_idmap, krb=kdc, auth_schemes="negotiate ntlm",
                       ntlm_backend="winbind", user_file="none",
                       keytab=two_realm_keytab(tmp_path, kdc, other_kdc),
                       realm_domain=["%s %s" % (kdc.realm, winbind_idmap.domain)])
    local, other = kdc.client_env("alice"), other_kdc.client_env("alice")
    assert neg_as(gw, local, origin.url("/1")).status == 200
    assert neg_as(gw, other, origin.url("/2")).status == 403
    assert neg_as(gw, kdc.client_env("bob"), origin.url("/3")).status == 403
    gw.reload({"realm_domain": ["%s %s" % (kdc.realm, winbind_idmap.domain),
                                "other.test %s" % winbind_idmap.domain.lower()]})
    assert neg_as(gw, other, origin.url("/4")).status == 200
    assert neg_as(gw, local, origin.url("/5")).status == 200
    assert [q.target for q in origin.wait_requests(3)] == ["/1", "/4", "/5"]


@pytest.mark.needs_kdc
@pytest.mark.needs_winbind
def test_kerberos_group_deny_fails_closed_when_winbind_is_down(make_gateway, tmp_path, kdc,
                                                                origin):
    """Suspected in issue 10, confirmed: a failed group lookup was ignored, so
    with winbindd gone `deny no-sales group=sales` let carol through. A failed
    lookup now refuses (503, one log line, a counter) every request whose
    decision depends on a group= rule, allow or deny; a request decided
    before any group= rule is reached still passes."""
    with WinbindWithIdmap() as wb:
        gw = start_gateway(make_gateway, tmp_path, """
            default allow
            allow public path=/public/
            deny lan dst=10.0.0.0/8
            deny no-sales group=sales
            allow net group=internet path=/net/
            """, backend=None, wb=wb, krb=kdc, auth_schemes="negotiate ntlm",
                           ntlm_backend="winbind", user_file="none",
                           status_socket=str(tmp_path / "ctl.sock"),
                           realm_domain="%s %s" % (kdc.realm, wb.domain))
        wb.stop()
        carol = kdc.client_env("carol")
        r = neg_as(gw, carol, origin.url("/echo"))
        assert r.rc == 0 and r.status == 503, r
        gw.wait_log(r"event=groups_unavailable %s client=\S+ %s" % (
            kv("rule", "no-sales"), kv("user", "carol@AUTHGATE.TEST")))
        r = neg_as(gw, kdc.client_env("alice"), origin.url("/net/x"))
        assert r.rc == 0 and r.status == 503, r
        r = neg_as(gw, carol, origin.url("/public/x"))
        assert r.rc == 0 and r.status == 200, r
        # a host name: `lan` waits for the address, then `no-sales` cannot decide
        r = neg_as(gw, carol, "http://localhost:%d/by-name" % origin.port)
        assert r.rc == 0 and r.status == 503, r
        assert [q.target for q in origin.wait_requests(1)] == ["/public/x"]
        assert len(re.findall(r"event=groups_unavailable", gw.error_log)) == 3, gw.error_log
        assert stats(gw)["rules_groups_unavailable"] == 3


def krb_token(env):
    """A raw Kerberos AP-REQ for HTTP@localhost (one round), made by
    python-gssapi in a child process with the client's environment."""
    code = ("import base64, gssapi; n = gssapi.Name('HTTP@localhost', "
            "gssapi.NameType.hostbased_service); c = gssapi.SecurityContext(name=n, "
            "usage='initiate', mech=gssapi.MechType.kerberos); "
            "print(base64.b64encode(c.step()).decode())")
    p = subprocess.run(["/usr/bin/python3", "-c", code], env=env, capture_output=True,
                       text=True, timeout=30, check=True)
    return "Negotiate " + p.stdout.strip()


@pytest.mark.needs_kdc
@pytest.mark.needs_winbind
def test_group_rule_added_by_reload_on_kerberos_connection(make_gateway, tmp_path, kdc,
                                                             winbind_idmap, origin):
    """carol authenticated her connection while the rules named no group (so
    her groups were never looked up); a reload then adds `deny no-sales
    group=sales`: her next request on that connection is refused (503, the
    connection closes), never let through as a member of no group. A new
    connection looks her groups up and gets the deny."""
    gw = start_gateway(make_gateway, tmp_path, "default allow\n", backend=None,
                       wb=winbind_idmap, krb=kdc, auth_schemes="negotiate ntlm",
                       ntlm_backend="winbind", user_file="none",
                       realm_domain="%s %s" % (kdc.realm, winbind_idmap.domain))
    carol = kdc.client_env("carol")
    c = gw.client()
    assert_origin(fetch(gw, origin.url("/1"), krb_token(carol), client=c), body=None)
    gw.rules_path.write_text("default allow\ndeny no-sales group=sales\n")
    since = len(gw.error_log)
    gw.reload(wait=0)
    gw.wait_log(r"event=rules_loaded", since=since)
    r = fetch(gw, origin.url("/2"), client=c)
    assert_error_response(r, 503)
    assert c.is_closed(2)
    gw.wait_log(r"event=groups_unavailable %s" % kv("rule", "no-sales"), since=since)
    assert_denied(fetch(gw, origin.url("/3"), krb_token(carol)), "no-sales")
    assert [q.target for q in origin.wait_requests(1)] == ["/1"]


@pytest.mark.needs_kdc
@pytest.mark.needs_winbind
def test_kerberos_group_rule_refused_while_winbind_hangs(make_gateway, tmp_path, kdc, origin):
    """winbindd stopped with SIGSTOP: the lookup hangs, the handshake deadline
    answers 503, and carol never reaches the origin past `deny no-sales`."""
    with WinbindWithIdmap() as wb:
        gw = start_gateway(make_gateway, tmp_path, """
            default allow
            deny no-sales group=sales
            """, backend=None, wb=wb, krb=kdc, auth_schemes="negotiate ntlm",
                           ntlm_backend="winbind", user_file="none", handshake_timeout="1s",
                           realm_domain="%s %s" % (kdc.realm, wb.domain))
        wb.pause()
        try:
            r = neg_as(gw, kdc.client_env("carol"), origin.url("/echo"))
            assert r.rc == 0 and r.status == 503, r
            gw.wait_log(r"event=auth_backend_timeout")
            assert origin.all_requests == []
        finally:
            wb.resume()


# --------------------------------------------------------------------------- local backend


def test_local_backend_groups_declared_in_file(make_gateway, tmp_path, origin):
    gw = start_gateway(make_gateway, tmp_path, """
        default deny
        group helpdesk alice CAROL
        allow hd group=helpdesk
        """)
    assert_origin(fetch(gw, origin.url("/"), basic("alice")))
    assert_origin(fetch(gw, origin.url("/"), basic("carol")))
    assert_denied(fetch(gw, origin.url("/"), basic("bob")), "default")
    denied_line(gw, "default", "bob", "127.0.0.1", origin.port)
    # NTLM through the same file: the same groups
    r = curl(gw.url, "--proxy-ntlm", "-U", "carol:" + PW["carol"], origin.url("/n"))
    assert r.rc == 0 and statuses(r) == [407, 200], r
    r = curl(gw.url, "--proxy-ntlm", "-U", "bob:" + PW["bob"], origin.url("/n"))
    assert r.rc == 0 and statuses(r) == [407, 403], r
    assert len(origin.wait_requests(3)) == 3


def test_scheme_rule(make_gateway, tmp_path, origin):
    gw = start_gateway(make_gateway, tmp_path, """
        default deny
        allow ntlm-only scheme=ntlm
        """)
    assert_denied(fetch(gw, origin.url("/"), basic("alice")), "default")
    r = curl(gw.url, "--proxy-ntlm", "-U", "alice:" + PW["alice"], origin.url("/"))
    assert r.rc == 0 and statuses(r) == [407, 200], r


# --------------------------------------------------------------------------- destinations


def test_host_wildcards(make_gateway, tmp_path, origin, tls_origin):
    """host=*.corp.test matches subdomains at any depth, any case, but neither
    corp.test itself nor evilcorp.test; host=localhost only that name. The
    names resolve to 127.0.0.1 inside the gateway (private hosts file)."""
    gw = start_gateway(make_gateway, tmp_path, """
        default deny
        allow corp host=*.corp.test
        allow exact host=localhost
        """, hosts=True, connect_ports=[tls_origin.port, origin.port])
    a = basic("alice")
    P = origin.port
    for name in ("www.corp.test", "deep.sub.corp.test", "WWW.Corp.TEST", "localhost"):
        assert_origin(fetch(gw, "http://%s:%d/echo" % (name, P), a), body=None)
    hosts_seen = [q.header("host") for q in origin.wait_requests(4)]
    assert hosts_seen == ["www.corp.test:%d" % P, "deep.sub.corp.test:%d" % P,
                          "www.corp.test:%d" % P, "localhost:%d" % P]
    for name in ("corp.test", "evilcorp.test", "sub.localhost", "127.0.0.1", "v4.test"):
        assert_denied(fetch(gw, "http://%s:%d/" % (name, P), a), "default")
    denied_line(gw, "default", "alice", "evilcorp.test", P)
    # CONNECT authority names match the same way (curl -k: the cert is for localhost)
    r = curl(gw.url, "-k", "--proxy-user", "alice:" + PW["alice"],
             "https://www.corp.test:%d/echo" % tls_origin.port)
    assert r.rc == 0 and statuses(r) == [200, 200], r
    (q,) = tls_origin.wait_requests(1)
    assert q.tls
    r = fetch(gw, "evilcorp.test:%d" % tls_origin.port, a, method="CONNECT")
    assert_denied(r, "default", keep=False)  # a refused CONNECT closes (by design)
    assert len(origin.requests) == 4


def test_host_deny_not_bypassed_by_trailing_dot(make_gateway, tmp_path, origin):
    """Regression: the fully qualified spelling (trailing dot) resolves to the
    same address and escaped host= rules."""
    gw = start_gateway(make_gateway, tmp_path, """
        default allow
        deny blocked host=*.blocked.test
        """, hosts=True)
    a = basic("alice")
    assert_denied(fetch(gw, "http://www.blocked.test:%d/" % origin.port, a), "blocked")
    r = fetch(gw, "http://www.blocked.test.:%d/" % origin.port, a)
    assert origin.requests == [], "the origin was reached through www.blocked.test."
    assert_denied(r, "blocked")


def test_dst_cidr_deny(make_gateway, tmp_path, origin):
    """`deny loop4 dst=127.0.0.0/8`: refused for a literal, a v4-mapped v6
    literal, a name that resolves into it (localhost, v4.test) and a
    non-canonical numeric host; allowed for ::1, and a name with both
    addresses connects to ::1 only (every resolved address is checked)."""
    gw = start_gateway(make_gateway, tmp_path, """
        default allow
        deny loop4 dst=127.0.0.0/8
        """, hosts=True)
    a = basic("alice")
    P = origin.port
    for host in ("localhost", "127.0.0.1", "[::ffff:127.0.0.1]", "v4.test", "2130706433",
                 "127.1"):
        assert_denied(fetch(gw, "http://%s:%d/" % (host, P), a), "loop4")
    denied_line(gw, "loop4", "alice", "localhost", P)
    assert origin.all_requests == []
    assert_origin(fetch(gw, "http://[::1]:%d/echo" % P, a), body=None)
    assert_origin(fetch(gw, "http://v6.test:%d/echo" % P, a), body=None)
    assert_origin(fetch(gw, "http://dual.test:%d/echo" % P, a), body=None)
    reqs = origin.wait_requests(3)
    assert [q.peer[0] for q in reqs] == ["::1"] * 3
    assert [q.header("host") for q in reqs] == ["[::1]:%d" % P, "v6.test:%d" % P,
                                                "dual.test:%d" % P]
    assert not any(c.family == socket.AF_INET for c in origin.connections)


def test_dst_cidr_allow_only_v6(make_gateway, tmp_path, origin):
    """The converse: `allow v6 dst=::1/128` + default deny. A v4-only name is
    refused by `default` after resolution; dual.test goes to ::1."""
    gw = start_gateway(make_gateway, tmp_path, """
        default deny
        allow v6 dst=::1/128
        """, hosts=True)
    a = basic("alice")
    P = origin.port
    for host in ("localhost", "v4.test", "127.0.0.1"):
        assert_denied(fetch(gw, "http://%s:%d/" % (host, P), a), "default")
    assert_origin(fetch(gw, "http://dual.test:%d/echo" % P, a), body=None)
    assert_origin(fetch(gw, "http://[::1]:%d/echo" % P, a), body=None)
    assert [q.peer[0] for q in origin.wait_requests(2)] == ["::1", "::1"]


def test_ports(make_gateway, tmp_path, origin, origin2, closed_port):
    P1, P2, P3 = origin.port, origin2.port, closed_port.port
    # a genuine range around P2 that leaves P1 and P3 out
    lo = max([p for p in (P1, P3) if p < P2], default=1024) + 1
    hi = min([p for p in (P1, P3) if p > P2], default=65536) - 1
    gw = start_gateway(make_gateway, tmp_path, """
        default deny
        allow web port=%d
        allow span port=443,%d-%d
        """ % (P1, lo, hi))
    a = basic("alice")
    assert_origin(fetch(gw, origin.url("/"), a))
    assert_origin(fetch(gw, origin2.url("/"), a))
    # decided before any connection: 403, not the 502 of a refused connect
    assert_denied(fetch(gw, closed_port.url("/"), a), "default")
    denied_line(gw, "default", "alice", "127.0.0.1", P3)
    assert len(origin.requests) == 1 and len(origin2.requests) == 1


def test_connect_only_rule(make_gateway, tmp_path, origin, tls_origin):
    """`allow tls method=CONNECT port=<tls>`: curl -k reaches the TLS origin
    through a tunnel; plain GETs (to either port) and CONNECT to another port
    are refused by the rules, not by connect_ports (which allows both)."""
    T = tls_origin.port
    gw = start_gateway(make_gateway, tmp_path, """
        default deny
        allow tls method=CONNECT port=%d
        """ % T, connect_ports=[T, origin.port])
    r = curl(gw.url, "-k", "--proxy-user", "alice:" + PW["alice"],
             "https://localhost:%d/echo" % T)
    assert r.rc == 0 and statuses(r) == [200, 200], r
    assert tls_origin.wait_requests(1)[0].tls
    a = basic("alice")
    assert_denied(fetch(gw, origin.url("/"), a), "default")
    assert_denied(fetch(gw, "http://127.0.0.1:%d/" % T, a), "default")
    assert_denied(fetch(gw, origin.authority(), a, method="CONNECT"), "default", keep=False)
    assert origin.all_requests == []
    assert sum("TCP_TUNNEL/200" in l for l in gw.wait_access_log(4)) == 1


def test_src_rules(make_gateway, tmp_path, origin):
    """src= matches the client's address: 127.0.0.2 is refused, other loopback
    sources (v4 and v6 listeners) are allowed."""
    pa, pb = (socket.socket(), socket.socket(socket.AF_INET6))
    for s, h in ((pa, "127.0.0.1"), (pb, "::1")):
        s.bind((h, 0))
    ports = (pa.getsockname()[1], pb.getsockname()[1])
    pa.close()
    pb.close()
    gw = start_gateway(make_gateway, tmp_path, """
        default deny
        deny second src=127.0.0.2
        allow lo src=127.0.0.0/8,::1/128
        """, listen=["127.0.0.1:%d" % ports[0], "[::1]:%d" % ports[1]])
    a = basic("alice")
    for src in ("127.0.0.1", "127.0.0.3"):
        with BoundClient("127.0.0.1", ports[0], src) as c:
            assert_origin(fetch(gw, origin.url("/"), a, client=c))
    with BoundClient("127.0.0.1", ports[0], "127.0.0.2") as c:
        assert_denied(fetch(gw, origin.url("/"), a, client=c), "second")
        assert_denied(fetch(gw, origin.url("/"), a, client=c), "second")
    denied_line(gw, "second", "alice", "127.0.0.1", origin.port, client="127.0.0.2")
    c = gw.client(host="::1", port=ports[1])
    assert_origin(fetch(gw, origin.url("/"), a, client=c))
    assert len(origin.requests) == 3


def test_path_prefix(make_gateway, tmp_path, origin, tls_origin):
    gw = start_gateway(make_gateway, tmp_path, """
        default allow
        deny admin path=/admin/
        deny secret path=/secret.txt
        """, connect_ports=[tls_origin.port])
    a = basic("alice")
    for path in ("/admin/", "/admin/x?y=1", "/Admin/", "/secret.txt", "/secret.txt?v=2",
                 "/secret.txt.bak"):
        assert_denied(fetch(gw, origin.url(path), a),
                      "admin" if "dmin" in path else "secret")
    for path in ("/admin", "/administrator", "/public/admin/", "/", "/x?p=/admin/"):
        assert_origin(fetch(gw, origin.url(path), a))
    # path= is for plain HTTP: a tunnel has no path
    r = curl(gw.url, "-k", "--proxy-user", "alice:" + PW["alice"],
             "https://localhost:%d/admin/" % tls_origin.port)
    assert r.rc == 0 and statuses(r) == [200, 200], r
    assert [q.target for q in origin.wait_requests(5)] == [
        "/admin", "/administrator", "/public/admin/", "/", "/x?p=/admin/"]


def test_path_deny_not_bypassed_by_equivalent_forms(make_gateway, tmp_path, origin):
    gw = start_gateway(make_gateway, tmp_path, """
        default allow
        deny admin path=/admin/
        """)
    a = basic("alice")
    got = {p: fetch(gw, origin.url(p), a).status for p in ("/public/../admin/x", "/%61dmin/x")}
    assert [q.target for q in origin.all_requests] == [], got
    assert got == {"/public/../admin/x": 403, "/%61dmin/x": 403}


# --------------------------------------------------------------------------- one spelling (issue 10)


@pytest.fixture
def origin_127_0_0_2():
    srv = OriginServer(hosts=("127.0.0.2",), name="origin-127.0.0.2").start()
    yield srv
    srv.stop()


def test_host_deny_holds_for_every_spelling(make_gateway, tmp_path, origin, origin_127_0_0_2):
    """`deny secret host=secret.test,127.0.0.2`: every spelling a browser
    reads as one of those hosts gets the deny (names: letter case, one
    trailing dot; addresses: every legacy IPv4 form, IPv4-mapped IPv6), for
    plain requests and CONNECT. Several trailing dots are refused with 400.
    Allowed hosts keep working, and the origin sees the canonical Host."""
    gw = start_gateway(make_gateway, tmp_path, """
        default allow
        deny secret host=secret.test,127.0.0.2
        """, hosts=True, connect_ports=[origin.port, origin_127_0_0_2.port])
    a = basic("alice")
    P, P2 = origin.port, origin_127_0_0_2.port
    for host in ("secret.test", "SECRET.Test", "secret.test."):
        assert_denied(fetch(gw, "http://%s:%d/" % (host, P), a), "secret")
    for host in ("127.0.0.2", "127.2", "127.0.2", "2130706434", "0x7f.0.0.2", "0x7F000002",
                 "0177.0.0.2", "017700000002", "127.0.0.2.", "[::ffff:127.0.0.2]",
                 "[::FFFF:7f00:2]"):
        assert_denied(fetch(gw, "http://%s:%d/x" % (host, P2), a), "secret")
        assert_denied(fetch(gw, "%s:%d" % (host, P2), a, method="CONNECT"), "secret",
                      keep=False)
    denied_line(gw, "secret", "alice", "127.0.0.2", P2)  # logged canonical
    # cannot be canonicalized: 400, nothing forwarded
    for host in ("secret.test..", "secret.test...", ".secret.test", "sec%72et.test",
                 "1.2.3.4.5", "256.0.0.2", "4294967296", "08", "127.0.0.08"):
        r = fetch(gw, "http://%s:%d/" % (host, P), a)
        assert_error_response(r, 400)
        assert b"invalid request target" in r.body, (host, r.body)
    assert origin.all_requests == [] and origin_127_0_0_2.all_requests == []
    # the normal spellings still go through, with the canonical Host
    assert_origin(fetch(gw, "http://Public.TEST.:%d/echo" % P, a), body=None)
    assert_origin(fetch(gw, "http://[::ffff:127.0.0.1]:%d/echo" % P, a), body=None)
    assert_origin(fetch(gw, "http://2130706433:%d/echo" % P, a), body=None)
    reqs = origin.wait_requests(3)
    assert [q.header("host") for q in reqs] == ["public.test:%d" % P, "127.0.0.1:%d" % P,
                                                "127.0.0.1:%d" % P]
    assert [q.peer[0] for q in reqs] == ["127.0.0.1"] * 3
    assert origin_127_0_0_2.all_requests == []
    # the access log names the canonical URL too
    # (counted, not by position: at workers 2 two loops write their lines,
    # and a line may land after the next request's, made on the other loop)
    urls = [f["url"] for f in access_records(gw.wait_access_log(3 + 11 * 2 + 9 + 3))]
    assert urls.count("http://127.0.0.2:%d/x" % P2) == 11, urls
    assert urls.count("127.0.0.2:%d" % P2) == 11, urls
    assert urls.count("http://public.test:%d/echo" % P) == 1, urls
    assert urls.count("http://127.0.0.1:%d/echo" % P) == 2, urls


@pytest.mark.parametrize("rules", [None, "default allow\ndeny loop dst=127.0.0.0/8,::1/128\n"],
                         ids=["no-rules", "dst-deny"])
def test_unspecified_destination_never_connected(make_gateway, tmp_path, origin, rules):
    """0.0.0.0 and :: connect to the gateway's own host, past `deny
    dst=127.0.0.0/8,::1/128`: refused with 403 whatever the rules say,
    literal in any spelling or resolved from a name, plain and CONNECT; a
    name with another address too connects there. Counted and logged."""
    opts = {"status_socket": str(tmp_path / "ctl.sock"), "connect_ports": [origin.port]}
    if not rules:
        opts["rules_file"] = "none"
    gw = start_gateway(make_gateway, tmp_path, rules or "", hosts=True, **opts)
    a = basic("alice")
    P = origin.port
    want = b"403 Forbidden: destination is the unspecified address (0.0.0.0 or ::)\n"
    spellings = ("0.0.0.0", "0", "0x0", "0.0", "00.0.0.0", "[::]", "[0:0:0:0:0:0:0:0]",
                 "[::ffff:0.0.0.0]", "[::ffff:0:0]", "0.1.2.3", "zero.test", "zero6.test",
                 "zero-mapped.test")
    for host in spellings:
        r = fetch(gw, "http://%s:%d/" % (host, P), a)
        assert_error_response(r, 403)
        assert r.body == want, (host, r.body)
        assert r.header("connection") == "keep-alive"
    r = fetch(gw, "0.0.0.0:%d" % P, a, method="CONNECT")
    assert_error_response(r, 403)
    assert r.body == want
    assert origin.all_requests == [] and origin.connections == []
    gw.wait_log(r"conn=\d+ req=\d+ event=dst_this_network client=127\.0\.0\.1 user=\"?alice\"? "
                r"host=0\.0\.0\.0 port=%d" % P)
    assert stats(gw)["dst_this_network"] == len(spellings) + 1
    # the other address of a name is still tried; a mapped loopback literal
    # matches the IPv4 dst= rule
    if rules:
        assert_denied(fetch(gw, "http://zero-and-v6.test:%d/" % P, a), "loop")
        assert_denied(fetch(gw, "http://[::ffff:127.0.0.1]:%d/" % P, a), "loop")
        assert_denied(fetch(gw, "http://127.1:%d/" % P, a), "loop")
    else:
        assert_origin(fetch(gw, "http://zero-and-v6.test:%d/echo" % P, a), body=None)
        assert_origin(fetch(gw, "http://127.0.0.1:%d/" % P, a))
        assert [q.peer[0] for q in origin.wait_requests(2)] == ["::1", "127.0.0.1"]


def test_path_deny_holds_for_every_spelling(make_gateway, tmp_path, origin):
    """`deny admin path=/admin/`: every spelling that IIS, Tomcat, Apache or
    nginx serve as /admin/ gets the deny (letter case, backslash, ;params,
    encoded slash, encoded letters, dot segments plain or encoded). Other
    paths still go through, and the origin gets the client's own bytes."""
    gw = start_gateway(make_gateway, tmp_path, """
        default allow
        deny admin path=/admin/
        """)
    a = basic("alice")
    for path in ("/admin/", "/ADMIN/", "/Admin/x", "/x\\..\\admin/", "/x%5c..%5cadmin/",
                 "/admin;x=1/", "/admin;jsessionid=A1/users", "/admin%2f", "/admin%2Fusers",
                 "/%61dmin/", "/%41DMIN/", "/public/..;/admin/", "/public/%2e%2e/admin/",
                 "/public/.%2E/admin/", "/public/..%2fadmin/", "//admin//", "/./admin/."):
        assert_denied(fetch(gw, origin.url(path), a), "admin")
    assert origin.all_requests == []
    allowed = ("/admin", "/administrator", "/public/admin/", "/x?p=/admin/", "/admin%252f",
               "/public/x;y/")
    for path in allowed:
        assert_origin(fetch(gw, origin.url(path), a))
    assert [q.target for q in origin.wait_requests(len(allowed))] == list(allowed)


def test_path_case_sensitive_option(make_gateway, tmp_path, origin):
    """rules_path_case sensitive: /ADMIN/ is another path, every other
    equivalence still holds."""
    gw = start_gateway(make_gateway, tmp_path, """
        default allow
        deny admin path=/admin/
        """, rules_path_case="sensitive")
    a = basic("alice")
    for path in ("/admin/", "/adm%69n/", "/admin;x=1/", "/admin%2f", "/x\\..\\admin/"):
        assert_denied(fetch(gw, origin.url(path), a), "admin")
    assert_origin(fetch(gw, origin.url("/ADMIN/"), a))
    assert [q.target for q in origin.wait_requests(1)] == ["/ADMIN/"]


def test_time_windows(make_gateway, tmp_path, origin):
    """An always-true window, a window around today (yesterday-tomorrow, which
    wraps around the week on some days) and one that cannot match today."""
    today = time.localtime().tm_wday  # Monday = 0
    wday = (today + 1) % 7            # tm_wday order: Sunday = 0

    def day(offset):
        return DAYS[(wday + offset) % 7]

    gw = start_gateway(make_gateway, tmp_path, """
        default deny
        allow never  path=/never/  time=%s-%s@00:00-24:00
        allow around path=/around/ time=%s-%s@00:00-24:00
        allow always path=/always/ time=*@00:00-24:00
        allow split  path=/split/  time=%s@00:00-00:01,*@00:00-24:00
        """ % (day(3), day(4), day(-1), day(1), day(3)))
    a = basic("alice")
    assert_denied(fetch(gw, origin.url("/never/"), a), "default")
    assert_origin(fetch(gw, origin.url("/around/"), a))
    assert_origin(fetch(gw, origin.url("/always/"), a))
    assert_origin(fetch(gw, origin.url("/split/"), a))


# --------------------------------------------------------------------------- pre-auth rules


PREAUTH_RULES = """
    default deny
    allow staff user=alice
    allow open auth=none host=localhost
    """


def test_preauth_allow_has_no_407(make_gateway, tmp_path, origin, tls_origin):
    """`allow open auth=none host=localhost`, evaluated before authentication
    although it comes after `allow staff`: no Proxy-Authorization at all gets
    through to localhost (plain and CONNECT); everything else still gets 407."""
    gw = start_gateway(make_gateway, tmp_path, PREAUTH_RULES, connect_ports=[tls_origin.port])
    P = origin.port
    c = gw.client()
    r = fetch(gw, "http://localhost:%d/echo" % P, client=c)
    assert_origin(r, body=None)
    assert fetch(gw, "http://127.0.0.1:%d/" % P, client=c).status == 407  # same connection
    assert_origin(fetch(gw, "http://localhost:%d/again" % P, client=c))
    # curl without any credentials: no 407 anywhere
    r = curl(gw.url, "-k", "https://localhost:%d/echo" % tls_origin.port)
    assert r.rc == 0 and statuses(r) == [200, 200], r
    # authenticated users: alice by `staff`, bob by `default`
    assert_origin(fetch(gw, "http://127.0.0.1:%d/" % P, basic("alice")))
    assert_denied(fetch(gw, "http://127.0.0.1:%d/" % P, basic("bob")), "default")
    # credentials sent to a pre-auth destination are not forwarded
    assert_origin(fetch(gw, "http://localhost:%d/with-creds" % P, basic("bob")))
    reqs = origin.wait_requests(4)
    assert [q.target for q in reqs] == ["/echo", "/again", "/", "/with-creds"]
    for q in reqs:
        assert q.header("proxy-authorization") is None
    assert [q.header(IDENT) for q in reqs] == [None, None, "alice", None]
    # (a tunnel is logged when it closes: compare without order)
    log = access_records(gw.wait_access_log(7))
    assert sorted((result_status(f), f["user"]) for f in log) == sorted([
        ("TCP_MISS/200", "-"), ("TCP_DENIED/407", "-"), ("TCP_MISS/200", "-"),
        ("TCP_TUNNEL/200", "-"), ("TCP_MISS/200", "alice"), ("TCP_DENIED/403", "bob"),
        ("TCP_MISS/200", "-")])


def test_preauth_deny_literal(make_gateway, tmp_path, origin):
    """A pre-auth deny refuses before any 407, credentials or not."""
    gw = start_gateway(make_gateway, tmp_path, """
        default allow
        deny lan auth=none dst=127.0.0.0/8
        """)
    assert_denied(fetch(gw, "http://127.0.0.1:%d/" % origin.port), "lan")
    assert_denied(fetch(gw, "http://127.0.0.1:%d/" % origin.port, basic("alice")), "lan")
    assert_origin(fetch(gw, "http://[::1]:%d/" % origin.port, basic("alice")))


def test_preauth_dst_deny_applies_to_host_names(make_gateway, tmp_path, origin):
    """Regression: a pre-auth dst= rule was skipped for host names (neither
    pass evaluated it), so a DNS name carried a request past a dst= deny."""
    gw = start_gateway(make_gateway, tmp_path, """
        default allow
        deny lan auth=none dst=127.0.0.0/8
        """)
    r = fetch(gw, "http://localhost:%d/" % origin.port, basic("alice"))
    assert origin.all_requests == [], "localhost reached the origin at 127.0.0.1: %r" % r
    assert_denied(r, "lan")


# --------------------------------------------------------------------------- identity and auth=none


def ident_fields(q, name=IDENT):
    """Every field of the origin's request whose name equals `name` when case
    is ignored and '-' and '_' count as the same (what CGI, nginx with
    underscores_in_headers, and frameworks that read HTTP_X_... see as one)."""
    want = name.lower().replace("_", "-")
    return [(n, v) for n, v in q.headers if n.lower().replace("_", "-") == want]


def test_basic_identity_does_not_carry_to_preauth_request(make_gateway, tmp_path, origin):
    """Basic is per request: after alice's Basic request, a request on the same
    connection without credentials that an auth=none rule admits is anonymous
    (no identity header at the origin, "-" in the access log), and one that no
    auth=none rule admits gets a 407."""
    gw = start_gateway(make_gateway, tmp_path, PREAUTH_RULES)
    P = origin.port
    c = gw.client()
    assert_origin(fetch(gw, "http://127.0.0.1:%d/first" % P, basic("alice"), client=c), body=None)
    assert_origin(fetch(gw, "http://localhost:%d/open" % P, client=c), body=None)
    assert fetch(gw, "http://127.0.0.1:%d/closed" % P, client=c).status == 407
    assert_origin(fetch(gw, "http://localhost:%d/open2" % P, basic("alice"), client=c), body=None)
    assert_origin(fetch(gw, "http://localhost:%d/open3" % P, client=c), body=None)
    reqs = origin.wait_requests(4)
    assert [(q.target, ident_fields(q)) for q in reqs] == [
        ("/first", [(IDENT, "alice")]), ("/open", []), ("/open2", []), ("/open3", [])]
    log = access_records(gw.wait_access_log(5))
    assert [(result_status(f), f["url"].rsplit("/", 1)[-1], f["user"]) for f in log] == [
        ("TCP_MISS/200", "first", "alice"), ("TCP_MISS/200", "open", "-"),
        ("TCP_DENIED/407", "closed", "-"), ("TCP_MISS/200", "open2", "-"),
        ("TCP_MISS/200", "open3", "-")]


def test_ntlm_identity_stays_on_its_connection_for_preauth_request(make_gateway, tmp_path,
                                                                   origin):
    """NTLM identifies the connection, not the request: after the handshake a
    request without credentials, auth=none or not, still carries alice."""
    gw = start_gateway(make_gateway, tmp_path, PREAUTH_RULES)
    P = origin.port
    c = gw.client()
    r, _, _ = ntlm_legs(c, "http://127.0.0.1:%d/first" % P, "alice", PW["alice"])
    assert_origin(r, body=None)
    assert_origin(fetch(gw, "http://localhost:%d/open" % P, client=c), body=None)
    assert_origin(fetch(gw, "http://127.0.0.1:%d/again" % P, client=c), body=None)
    reqs = origin.wait_requests(3)
    assert [ident_fields(q) for q in reqs] == [[(IDENT, "alice")]] * 3
    log = access_records(gw.wait_access_log(4))
    assert [f["user"] for f in log] == ["-", "alice", "alice", "alice"]


SPELLINGS = ["X-Authenticated-User", "x-authenticated-user", "X_Authenticated_User",
             "x_AUTHENTICATED-user", "X-Authenticated_User", "X_AUTHENTICATED_USER"]


def test_client_identity_header_never_reaches_origin_on_preauth_request(make_gateway, tmp_path,
                                                                         origin):
    """Guard: a client's copy of the identity header on a request admitted
    without authentication (auth=none) never reaches the origin, in any
    spelling ('-' or '_', any case), also after a Basic request on the same
    connection."""
    gw = start_gateway(make_gateway, tmp_path, PREAUTH_RULES)
    P = origin.port
    c = gw.client()
    forged = [(n, "evil") for n in SPELLINGS]
    assert_origin(fetch_with(gw, "http://localhost:%d/a" % P, forged, client=c), body=None)
    assert_origin(fetch_with(gw, "http://127.0.0.1:%d/b" % P,
                             forged + [("Proxy-Authorization", basic("alice"))], client=c),
                  body=None)
    assert_origin(fetch_with(gw, "http://localhost:%d/c" % P, forged, client=c), body=None)
    reqs = origin.wait_requests(3)
    assert [ident_fields(q) for q in reqs] == [[], [(IDENT, "alice")], []], reqs
    for q in reqs:
        assert "evil" not in q.raw_head.decode("latin-1"), q.raw_head


@pytest.mark.parametrize("identity_header", ["X-Proxy-User", "none"])
def test_identity_header_spellings_stripped(make_gateway, tmp_path, origin, identity_header):
    """Every spelling of X-Authenticated-User, and of the configured identity
    header, is stripped, with and without authentication: the gateway's own
    field is the only one the origin sees. Names that only look alike stay."""
    gw = start_gateway(make_gateway, tmp_path, PREAUTH_RULES, identity_header=identity_header)
    P = origin.port
    configured = identity_header != "none"
    proxy_user = ["X-Proxy-User", "x_proxy_user", "X_PROXY-USER", "x-Proxy_User"]
    forged = ([(n, "evil") for n in SPELLINGS]
              + [(n, "evil" if configured else "other") for n in proxy_user]
              + [("X-Proxy-Userx", "kept"), ("X__Proxy-User", "kept")])
    assert_origin(fetch_with(gw, "http://localhost:%d/open" % P, forged), body=None)
    assert_origin(fetch_with(gw, "http://127.0.0.1:%d/auth" % P,
                             forged + [("Proxy-Authorization", basic("alice"))]), body=None)
    for q in origin.wait_requests(2):
        own = [("X-Proxy-User", "alice")] if configured and q.target == "/auth" else []
        assert ident_fields(q, "X-Authenticated-User") == [], q.headers
        if configured:
            assert ident_fields(q, "X-Proxy-User") == own, q.headers
        else:
            assert ident_fields(q, "X-Proxy-User") == [(n, "other") for n in proxy_user]
        assert [v for n, v in q.headers if v == "evil"] == [], q.headers
        assert [v for n, v in q.headers if v == "kept"] == ["kept", "kept"], q.headers


def fetch_with(gw, url, headers, client=None):
    c = client or gw.client()
    return c.request(get_request(url, headers))


# --------------------------------------------------------------------------- checking a config


def test_config_check_reports_rules_errors(tmp_path):
    """Regression: `authgate -t` parsed only the main file and said
    `configuration ok` for a rules file that start-up refuses."""
    rules = tmp_path / "rules.conf"
    rules.write_text("default deny\nallow x colour=blue\n")
    conf = tmp_path / "authgate.conf"
    conf.write_text("listen 127.0.0.1:3128\nauth_schemes none\nrules_file %s\n" % rules)
    rc, out = check_config(conf)
    assert rc == 1 and "%s:2: unknown matcher 'colour'" % rules in out, (rc, out)


def test_syntax_error_fails_startup_with_file_line(make_gateway, tmp_path):
    gw = start_gateway(make_gateway, tmp_path, """
        default deny
        # comment

        allow ok host=localhost
        allow bad port=0
        """, start=False)
    with pytest.raises(GatewayError, match="exited with 1 during start-up"):
        launch(gw, gw.prefix)
    gw.stop(expect_rc=1)
    assert "%s:5: port: '0' is not a port or range" % gw.rules_path in gw.error_log
