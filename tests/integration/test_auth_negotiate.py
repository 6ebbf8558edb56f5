"""Negotiate (Kerberos through MIT GSS-API) end to end, with real peers.

Peers: a throwaway MIT KDC (peers/kdc.py; users alice/bob/carol, HTTP/localhost
and HTTP/other.test in the gateway's keytab), curl 7.88 as the browser-like
client, and python3-gssapi driving exchanges by hand over raw sockets.

The gateway gets the KDC's environment (KRB5_CONFIG, ...) plus the options
`keytab`, `rcache_dir` and `proxy_host localhost`, so that its default
acceptor is HTTP@localhost.  curl must name the proxy `localhost` (not
127.0.0.1) or it asks for a ticket for HTTP/127.0.0.1 and silently sends no
credentials; `--proxy-negotiate -U :` makes it send its token.

python-gssapi runs in this process: `as_client(env)` swaps the Kerberos
variables of os.environ for those of a Kdc.client_env() while a context is
made and stepped (MIT reads them each time it makes a krb5 context).

Run: /usr/bin/python3 -m pytest -q tests/integration/test_auth_negotiate.py
     (AUTHGATE_BIN=/abs/path/build-asan/authgate for the sanitizer build; the
     gateway gets tests/lsan.supp for MIT's own leak unless LSAN_OPTIONS is set)

Daemon bugs found are kept as xfail(strict=True) tests whose reason starts
with "daemon bug:".
"""

import base64
import contextlib
import os
import re
import shutil
import struct
import subprocess
import pathlib
import tempfile
import time

import pytest

from harness.accesslog import parse_access
from harness.ctl_client import stats
from harness.ntlm_client import Challenge, authenticate_msg
from harness.gateway import sanitizer_env
from harness.ntlm_client import Challenge, authenticate_msg, b64
from harness.rawhttp import build_request, get_request
from harness.tools import CurlResult, assert_error_response
from peers.kdc import Kdc

gssapi = pytest.importorskip("gssapi")

pytestmark = pytest.mark.needs_kdc

REPO = pathlib.Path(__file__).resolve().parents[2]
DEMO_USERS = REPO / "scripts" / "demo-users"
LSAN_SUPP = REPO / "tests" / "lsan.supp"
DEMO_USER, DEMO_PASSWORD = "demo", "authgate-demo"

# --------------------------------------------------------------------------- DER / SPNEGO


def _der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def tlv(tag, content):
    return bytes([tag]) + _der_len(len(content)) + content


def der_oid(dotted):
    arcs = [int(x) for x in dotted.split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for a in arcs[2:]:
        enc = [a & 0x7F]
        a >>= 7
        while a:
            enc.append(0x80 | (a & 0x7F))
            a >>= 7
        out += bytes(reversed(enc))
    return tlv(0x06, bytes(out))


SPNEGO = der_oid("1.3.6.1.5.5.2")
KRB5 = der_oid("1.2.840.113554.1.2.2")
NTLMSSP_MECH = der_oid("1.3.6.1.4.1.311.2.2.10")
MS_KRB5 = der_oid("1.2.840.48018.1.2.2")  # the OID Windows lists first
NEGOEX = der_oid("1.3.6.1.4.1.311.2.2.30")


def neg_token_init(mechs, mech_token=None):
    """GSS-framed SPNEGO NegTokenInit (RFC 4178 4.2.1) built by hand."""
    body = tlv(0xA0, tlv(0x30, b"".join(mechs)))
    if mech_token is not None:
        body += tlv(0xA2, tlv(0x04, mech_token))
    return tlv(0x60, SPNEGO + tlv(0xA0, tlv(0x30, body)))


def neg_token_resp(response_token=None, state=None):
    body = b""
    if state is not None:
        body += tlv(0xA0, tlv(0x0A, bytes([state])))
    if response_token is not None:
        body += tlv(0xA2, tlv(0x04, response_token))
    return tlv(0xA1, tlv(0x30, body))


def der_next(data):
    """(tag, content, rest) of the first TLV in data."""
    tag, n = data[0], data[1]
    off = 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(data[2:2 + k], "big")
        off += k
    assert len(data) >= off + n, "truncated DER"
    return tag, data[off:off + n], data[off + n:]


def parse_neg_token_resp(data):
    """NegTokenResp -> {0: negState, 1: supportedMech TLV, 2: responseToken, 3: mechListMIC}."""
    tag, content, rest = der_next(data)
    assert tag == 0xA1 and not rest, "not a NegTokenResp: %r" % data[:16]
    tag, seq, _ = der_next(content)
    assert tag == 0x30
    out = {}
    while seq:
        tag, inner, seq = der_next(seq)
        itag, ival, _ = der_next(inner)
        if tag == 0xA0:
            out[0] = ival[0]
        elif tag == 0xA1:
            out[1] = inner
        else:
            out[tag - 0xA0] = ival
    return out


def ntlm_type1():
    """curl's 32-byte NTLMSSP NEGOTIATE (flags 0x00088206, no version)."""
    return b"NTLMSSP\x00" + struct.pack("<II", 1, 0x00088206) + b"\x00" * 16


# --------------------------------------------------------------------------- clients

_KRB_VARS = ("KRB5_CONFIG", "KRB5CCNAME", "KRB5RCACHEDIR", "KRB5_KTNAME",
             "KRB5_CLIENT_KTNAME", "KRB5_KDC_PROFILE", "KRB5_TRACE")


@contextlib.contextmanager
def as_client(env):
    saved = {k: os.environ.get(k) for k in _KRB_VARS}
    try:
        for k in _KRB_VARS:
            if env.get(k) is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = env[k]
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


MECHS = {
    "spnego": gssapi.OID.from_int_seq("1.3.6.1.5.5.2"),
    "krb5": gssapi.MechType.kerberos,
}


class Initiator:
    """A GSS initiator context (what a browser holds) for one client env."""

    def __init__(self, env, target="HTTP@localhost", mech="spnego", principal=False,
                 delegate=False):
        self.env = env
        flags = gssapi.RequirementFlag.mutual_authentication
        if delegate:
            flags |= gssapi.RequirementFlag.delegate_to_peer
        nt = gssapi.NameType.kerberos_principal if principal else gssapi.NameType.hostbased_service
        with as_client(env):
            self.ctx = gssapi.SecurityContext(name=gssapi.Name(target, nt), usage="initiate",
                                              mech=MECHS[mech], flags=flags)
            self.first = self.ctx.step()

    def step(self, token):
        with as_client(self.env):
            return self.ctx.step(token)


def token_for(env, **kw):
    return Initiator(env, **kw).first


def run_curl(gw, env, *args, negotiate=True, timeout=15):
    """curl through gw named `localhost` (what Kerberos needs), as the client env."""
    with tempfile.TemporaryDirectory() as d:
        body, head = pathlib.Path(d) / "body", pathlib.Path(d) / "head"
        cmd = ["curl", "-sS", "--noproxy", "", "--max-time", str(timeout - 2), "-D", str(head),
               "-o", str(body), "-w", "%{http_code} %{time_total}\\n",
               "-x", "http://localhost:%d" % gw.port]
        if negotiate:
            cmd += ["--proxy-negotiate", "-U", ":"]
        cmd += [str(a) for a in args]
        p = subprocess.run(cmd, capture_output=True, timeout=timeout, env=sanitizer_env(env),
                           stdin=subprocess.DEVNULL)
        out = p.stdout.decode().split()
        status = int(out[0]) if out and out[0].isdigit() else None
        return CurlResult(p.returncode, body.read_bytes() if body.exists() else b"",
                          p.stderr.decode(errors="replace"), status,
                          head.read_bytes() if head.exists() else b"",
                          float(out[1]) if len(out) > 1 else None)


# --------------------------------------------------------------------------- fixtures


def _need_kdc_programs():
    missing = [p for p in ("krb5kdc", "kdb5_util", "kadmin.local", "kinit", "kvno")
               if not shutil.which(p)]
    if missing:
        pytest.fail("missing programs %s: see /work/shared/testenv/NOTES.md" % missing)


@pytest.fixture(scope="module")
def kdc():
    """One KDC for the module; HTTP/other.test shares the gateway's keytab.
    Tests that change the database make their own."""
    _need_kdc_programs()
    with Kdc(other_in_same_keytab=True) as k:
        yield k


@pytest.fixture(scope="module")
def alice(kdc):
    return kdc.client_env("alice")


@pytest.fixture(scope="module")
def bob(kdc):
    return kdc.client_env("bob")


def start_gateway(make_gateway, kdc, env=None, **opts):
    """A gateway using kdc: its env, keytab, private replay cache, proxy_host
    localhost (acceptor HTTP@localhost), Negotiate only unless opts say so."""
    options = {
        "auth_schemes": "negotiate",
        "proxy_host": "localhost",
        "keytab": kdc.keytab,
        "rcache_dir": kdc.rcache_dir,
        "identity_header": "X-Authenticated-User",
    }
    options.update(opts)
    gw = make_gateway(start=False, **options)
    env = dict({**os.environ, **kdc.env} if env is None else env)
    # MIT krb5 1.20 leaks in a failing gss_acquire_cred_from (tests/lsan.supp,
    # which scripts/test exports too): use it when run on its own.
    env.setdefault("LSAN_OPTIONS", "suppressions=%s:print_suppressions=0:exitcode=88" % LSAN_SUPP)
    gw.env = sanitizer_env(env)
    gw.start()
    return gw


@pytest.fixture
def gw(make_gateway, kdc):
    return start_gateway(make_gateway, kdc)


def neg_req(url, token=None, raw=None, method="GET"):
    """A request carrying `Proxy-Authorization: Negotiate <b64(token)>` (or raw value)."""
    hdrs = []
    if raw is not None:
        hdrs.append(("Proxy-Authorization", raw))
    elif token is not None:
        hdrs.append(("Proxy-Authorization", "Negotiate " + b64(token)))
    return get_request(url, hdrs, method=method)


def assert_fresh_407(resp, schemes=("Negotiate",)):
    """407f: the full challenge set, no continuation token, keep-alive."""
    assert_error_response(resp, 407)
    offered = resp.header_all("proxy-authenticate")
    assert [v.split()[0] for v in offered] == list(schemes), offered
    for v in offered:
        if v.split()[0] in ("Negotiate", "NTLM"):
            assert v == v.split()[0], "continuation token in a fresh 407: %r" % v
    assert resp.header("proxy-authentication-info") is None
    assert "close" not in resp.tokens("connection")


def auth_info_token(resp):
    v = resp.header("proxy-authentication-info")
    assert v and v.startswith("Negotiate "), resp
    return base64.b64decode(v.split(None, 1)[1], validate=True)


def assert_alive_and_working(gw, origin, env):
    """The gateway still answers and accepts a good ticket."""
    assert gw.alive(), gw.logs_tail()
    c = gw.client()
    r = c.request(neg_req(origin.url("/echo"), token_for(env)))
    assert r.status == 200, (r, gw.logs_tail())


AUTH_FAILED = r"event=auth_failed scheme=Negotiate .*error=\"[^\"]+ \(%s\)\""

# --------------------------------------------------------------------------- curl


@pytest.mark.parametrize("fmt,user", [
    ("keep", "alice@AUTHGATE.TEST"),
    ("strip", "alice"),
    ("backslash", "AUTHGATE.TEST\\alice"),
])
def test_curl_plain_http(make_gateway, kdc, alice, origin, fmt, user):
    gw = start_gateway(make_gateway, kdc, negotiate_name_format=fmt)
    r = run_curl(gw, alice, origin.url("/echo"))
    assert r.rc == 0 and r.status == 200, (r, gw.logs_tail())
    # curl asks for mutual auth: the final Kerberos token comes back
    tok = auth_info_token(r.final)
    assert parse_neg_token_resp(tok)[0] == 0  # accept-completed
    (req,) = origin.wait_requests(1)
    assert req.header("proxy-authorization") is None
    assert req.header("x-authenticated-user") == user
    (line,) = gw.wait_access_log(1)
    f = parse_access(line)
    assert (f["status"], f["method"], f["user"]) == ("200", "GET", user)
    gw.wait_log(r"event=auth_ok scheme=Negotiate client=127\.0\.0\.1 "
                r'principal="?alice@AUTHGATE\.TEST"? acceptor=HTTP@localhost')


def test_curl_connect_tls(make_gateway, kdc, alice, tls_origin):
    gw = start_gateway(make_gateway, kdc, connect_ports=[443, tls_origin.port])
    r = run_curl(gw, alice, "-k", "https://localhost:%d/echo" % tls_origin.port)
    assert r.rc == 0 and r.status == 200, (r, gw.logs_tail())
    assert r.responses[0].status == 200  # the proxy's answer to CONNECT
    assert parse_neg_token_resp(auth_info_token(r.responses[0]))[0] == 0
    (req,) = tls_origin.wait_requests(1)
    assert req.tls and req.header("proxy-authorization") is None
    (line,) = gw.wait_access_log(1)
    f = parse_access(line)
    assert (f["status"], f["method"], f["user"]) == ("200", "CONNECT", "alice@AUTHGATE.TEST")
    assert f["url"] == "localhost:%d" % tls_origin.port


def test_curl_without_ticket_gets_407(gw, kdc, origin):
    r = run_curl(gw, kdc.client_env(None), origin.url("/echo"))
    assert r.status == 407, r
    # curl found no ticket and sent no credentials: the full challenge set
    assert [h.header_all("proxy-authenticate") for h in r.responses] == [["Negotiate"]]
    assert origin.requests == []


# --------------------------------------------------------------------------- by hand


@pytest.mark.parametrize("mech", ["spnego", "krb5"])
def test_gssapi_exchange_by_hand(gw, alice, origin, mech):
    ini = Initiator(alice, mech=mech)
    c = gw.client()
    tok = ini.first
    for _ in range(4):
        r = c.request(neg_req(origin.url("/echo"), tok))
        if r.status != 407:
            break
        # CONTINUE_NEEDED: only Negotiate with its token
        (v,) = r.header_all("proxy-authenticate")
        assert v.startswith("Negotiate "), r
        tok = ini.step(base64.b64decode(v.split()[1]))
    assert r.status == 200, (r, gw.logs_tail())
    # the final token completes our context: mutual authentication done
    assert not ini.ctx.complete
    ini.step(auth_info_token(r))
    assert ini.ctx.complete
    assert gssapi.RequirementFlag.mutual_authentication in ini.ctx.actual_flags
    # the identity belongs to the connection: no header needed any more
    r2 = c.request(get_request(origin.url("/echo")))
    assert r2.status == 200 and r2.header("proxy-authentication-info") is None
    reqs = origin.wait_requests(2)
    assert [q.header("x-authenticated-user") for q in reqs] == ["alice@AUTHGATE.TEST"] * 2
    assert all(q.header("proxy-authorization") is None for q in reqs)


def test_spnego_continue_needed(gw, alice, origin):
    """A NegTokenInit without an optimistic token: the acceptor answers with
    CONTINUE_NEEDED (407 Negotiate <NegTokenResp>), the second leg carries the
    AP-REQ, and the 200 carries the AP-REP that completes mutual auth."""
    c = gw.client()
    r = c.request(neg_req(origin.url("/echo"), neg_token_init([KRB5])))
    assert_error_response(r, 407)
    (v,) = r.header_all("proxy-authenticate")
    assert v.startswith("Negotiate "), r
    resp = parse_neg_token_resp(base64.b64decode(v.split()[1]))
    assert resp[0] == 1 and resp[1] == KRB5  # accept-incomplete, krb5 chosen
    ini = Initiator(alice, mech="krb5")
    r = c.request(neg_req(origin.url("/echo"), neg_token_resp(ini.first)))
    assert r.status == 200, (r, gw.logs_tail())
    final = parse_neg_token_resp(auth_info_token(r))
    assert final[0] == 0
    ini.step(final[2])
    assert ini.ctx.complete
    (req,) = origin.wait_requests(1)
    assert req.header("x-authenticated-user") == "alice@AUTHGATE.TEST"


def test_spnego_continuation_bound_to_its_connection(gw, alice, origin):
    a, b = gw.client(), gw.client()
    r = a.request(neg_req(origin.url("/echo"), neg_token_init([KRB5])))
    assert r.status == 407 and r.header("proxy-authenticate").startswith("Negotiate ")
    # the second leg on another connection finds no context there
    r = b.request(neg_req(origin.url("/echo"), neg_token_resp(token_for(alice, mech="krb5"))))
    assert_fresh_407(r)
    assert origin.requests == []
    gw.wait_log(r"event=auth_failed scheme=Negotiate")


def test_delegated_credentials_accepted(gw, alice, origin):
    ini = Initiator(alice, delegate=True)  # forwardable TGT: a KRB-CRED in the AP-REQ
    r = gw.client().request(neg_req(origin.url("/echo"), ini.first))
    assert r.status == 200, (r, gw.logs_tail())
    (req,) = origin.wait_requests(1)
    assert req.header("x-authenticated-user") == "alice@AUTHGATE.TEST"


def test_windows_style_mech_list(gw, alice, origin):
    """What Windows SSPI sends: MS-KRB5, KRB5, NEGOEX, NTLMSSP in the mech list
    and a krb5 optimistic token: accepted, mutual auth completes."""
    ini = Initiator(alice, mech="krb5")
    tok = neg_token_init([MS_KRB5, KRB5, NEGOEX, NTLMSSP_MECH], ini.first)
    r = gw.client().request(neg_req(origin.url("/win"), tok))
    assert r.status == 200, (r, gw.logs_tail())
    ini.step(parse_neg_token_resp(auth_info_token(r))[2])
    assert ini.ctx.complete


@pytest.mark.parametrize("scheme", ["negotiate", "NEGOTIATE", "nEgOtIaTe"])
def test_scheme_name_case_insensitive(gw, alice, origin, scheme):
    r = gw.client().request(neg_req(origin.url("/"), raw="%s %s" % (scheme, b64(token_for(alice)))))
    assert r.status == 200, (r, gw.logs_tail())


def test_unfinished_handshake_dropped_after_deadline(make_gateway, kdc, alice, origin):
    gw = start_gateway(make_gateway, kdc, handshake_timeout="500ms")
    c = gw.client()
    r = c.request(neg_req(origin.url("/"), neg_token_init([KRB5])))
    assert r.status == 407 and r.header("proxy-authenticate").startswith("Negotiate ")
    time.sleep(1.0)
    gw.wait_log(r"event=handshake_timeout")
    # the context is gone: the connection was closed, or the second leg starts over
    if not c.is_closed(timeout=0.3):
        leg2 = neg_token_resp(token_for(alice, mech="krb5"))
        c.send(neg_req(origin.url("/"), leg2), tolerant=True)
        try:
            r = c.recv_response(timeout=3)
        except AssertionError:
            r = None  # closed meanwhile
        assert r is None or r.status in (407, 408, 503), r
    assert origin.requests == []
    assert_alive_and_working(gw, origin, alice)


def test_reload_mid_handshake(gw, alice, origin):
    """SIGHUP replaces the acceptor while a context waits for its second leg:
    the handshake finishes (or starts over) and nothing is used after free."""
    c = gw.client()
    r = c.request(neg_req(origin.url("/"), neg_token_init([KRB5])))
    assert r.status == 407 and r.header("proxy-authenticate").startswith("Negotiate ")
    gw.reload({"log_level": "debug"})
    ini = Initiator(alice, mech="krb5")
    r = c.request(neg_req(origin.url("/after-reload"), neg_token_resp(ini.first)))
    assert r.status in (200, 407), r
    if r.status == 407:
        assert_fresh_407(r)
    assert_alive_and_working(gw, origin, alice)


def test_reload_turns_negotiate_on_and_off(make_gateway, kdc, alice, origin, tmp_path):
    missing = str(tmp_path / "missing.keytab")
    gw = start_gateway(make_gateway, kdc, keytab=missing, auth_schemes="negotiate basic",
                       user_file=str(DEMO_USERS), basic_backend="local")
    gw.wait_log(r"event=negotiate_unavailable")
    assert_fresh_407(gw.client().request(get_request(origin.url("/"))), ("Basic",))
    gw.reload({"keytab": kdc.keytab})
    gw.wait_log(r"event=negotiate_ready")
    c = gw.client()
    assert_fresh_407(c.request(get_request(origin.url("/"))), ("Negotiate", "Basic"))
    assert c.request(neg_req(origin.url("/on"), token_for(alice))).status == 200
    n = gw.error_log.count("event=negotiate_unavailable")
    gw.reload({"keytab": missing})
    assert gw.error_log.count("event=negotiate_unavailable") == n + 1, gw.logs_tail()
    c2 = gw.client()
    assert_fresh_407(c2.request(neg_req(origin.url("/off"), token_for(alice))), ("Basic",))
    assert [q.target for q in origin.requests] == ["/on"]


# --------------------------------------------------------------------------- identities


def test_two_users_two_connections(gw, alice, bob, origin):
    a, b = gw.client(), gw.client()
    assert a.request(neg_req(origin.url("/a1"), token_for(alice))).status == 200
    assert b.request(neg_req(origin.url("/b1"), token_for(bob))).status == 200
    # interleaved later requests without credentials keep each connection's user
    assert b.request(get_request(origin.url("/b2"))).status == 200
    assert a.request(get_request(origin.url("/a2"))).status == 200
    reqs = origin.wait_requests(4)
    who = {q.target: q.header("x-authenticated-user") for q in reqs}
    assert who == {"/a1": "alice@AUTHGATE.TEST", "/a2": "alice@AUTHGATE.TEST",
                   "/b1": "bob@AUTHGATE.TEST", "/b2": "bob@AUTHGATE.TEST"}
    users = {parse_access(l)["url"].rsplit("/", 1)[1]: parse_access(l)["user"]
             for l in gw.wait_access_log(4)}
    assert users == {"a1": "alice@AUTHGATE.TEST", "a2": "alice@AUTHGATE.TEST",
                     "b1": "bob@AUTHGATE.TEST", "b2": "bob@AUTHGATE.TEST"}


def test_identity_not_honoured_on_another_connection(gw, alice, origin):
    a, b = gw.client(), gw.client()
    assert a.request(neg_req(origin.url("/a"), token_for(alice))).status == 200
    assert_fresh_407(b.request(get_request(origin.url("/b"))))
    assert a.request(get_request(origin.url("/a2"))).status == 200
    assert [q.target for q in origin.wait_requests(2)] == ["/a", "/a2"]
    lines = [parse_access(l) for l in gw.wait_access_log(3)]
    assert sorted((f["url"].rsplit("/", 1)[1], f["status"], f["user"]) for f in lines) == [
        ("a", "200", "alice@AUTHGATE.TEST"), ("a2", "200", "alice@AUTHGATE.TEST"),
        ("b", "407", "-")]


def test_new_token_on_authenticated_connection_replaces_identity(gw, alice, bob, origin):
    c = gw.client()
    assert c.request(neg_req(origin.url("/1"), token_for(alice))).status == 200
    assert c.request(neg_req(origin.url("/2"), token_for(bob))).status == 200
    # a bad token on that connection drops the identity altogether
    assert_fresh_407(c.request(neg_req(origin.url("/3"), b"garbage!")))
    assert_fresh_407(c.request(get_request(origin.url("/4"))))
    reqs = origin.wait_requests(2)
    assert [q.header("x-authenticated-user") for q in reqs] == ["alice@AUTHGATE.TEST",
                                                               "bob@AUTHGATE.TEST"]


def test_client_identity_header_is_replaced(gw, alice, origin):
    r = gw.client().request(get_request(origin.url("/"), [
        ("Proxy-Authorization", "Negotiate " + b64(token_for(alice))),
        ("X-Authenticated-User", "administrator@AUTHGATE.TEST")]))
    assert r.status == 200, r
    (req,) = origin.wait_requests(1)
    assert req.header_all("x-authenticated-user") == ["alice@AUTHGATE.TEST"]


def test_fresh_token_on_every_request_keepalive(gw, alice, origin):
    """libcurl sends a new token with every request on a kept-alive connection."""
    c = gw.client()
    for i in range(5):
        r = c.request(neg_req(origin.url("/r%d" % i), token_for(alice)))
        assert r.status == 200, (i, r, gw.logs_tail())
        assert r.header("proxy-authentication-info", "").startswith("Negotiate ")
    reqs = origin.wait_requests(5)
    assert [q.header("x-authenticated-user") for q in reqs] == ["alice@AUTHGATE.TEST"] * 5


def test_pipelined_request_after_token(gw, alice, origin):
    """Two requests in one write: the second (no credentials) waits for the
    first one's verification and then uses the identity it proved."""
    c = gw.client()
    c.send(neg_req(origin.url("/p1"), token_for(alice)) + get_request(origin.url("/p2")))
    r1, r2 = c.recv_response(), c.recv_response()
    assert (r1.status, r2.status) == (200, 200), (r1, r2, gw.logs_tail())
    assert r2.header("proxy-authentication-info") is None
    reqs = origin.wait_requests(2)
    assert [(q.target, q.header("x-authenticated-user")) for q in reqs] == [
        ("/p1", "alice@AUTHGATE.TEST"), ("/p2", "alice@AUTHGATE.TEST")]


def test_client_gone_while_verifying(gw, alice, origin):
    """Row 77: connections that close right after sending their token detach
    their jobs; the daemon stays consistent (ASan checks the frees)."""
    for i in range(12):
        c = gw.client()
        c.send(neg_req(origin.url("/gone%d" % i), token_for(alice)))
        c.close()
    assert_alive_and_working(gw, origin, alice)


def test_connect_with_continue_by_hand(make_gateway, kdc, alice, tls_origin):
    """A two-leg SPNEGO exchange on CONNECT: the 407 continuation keeps the
    connection, the 200 opens the tunnel and carries the final token."""
    gw = start_gateway(make_gateway, kdc, connect_ports=[tls_origin.port])
    auth = "127.0.0.1:%d" % tls_origin.port
    c = gw.client()

    def connect(tok):
        return c.request(build_request("CONNECT", auth, [
            ("Host", auth), ("Proxy-Authorization", "Negotiate " + b64(tok))]), method="CONNECT")

    r = connect(neg_token_init([KRB5]))
    assert r.status == 407 and r.header("proxy-authenticate").startswith("Negotiate "), r
    assert "close" not in r.tokens("connection")
    ini = Initiator(alice, mech="krb5")
    r = connect(neg_token_resp(ini.first))
    assert r.status == 200, (r, gw.logs_tail())
    ini.step(parse_neg_token_resp(auth_info_token(r))[2])
    assert ini.ctx.complete
    c.close()  # a tunnel is logged when it ends
    (line,) = gw.wait_access_log(2)[1:]
    assert parse_access(line)["user"] == "alice@AUTHGATE.TEST"


# --------------------------------------------------------------------------- refusals


def test_replayed_ap_req_refused(make_gateway, kdc, alice, origin, tmp_path):
    rc = tmp_path / "rcache"
    rc.mkdir(mode=0o700)
    env = {k: v for k, v in {**os.environ, **kdc.env}.items() if k != "KRB5RCACHEDIR"}
    gw = start_gateway(make_gateway, kdc, env=env, rcache_dir=str(rc))
    tok = token_for(alice)
    assert gw.client().request(neg_req(origin.url("/first"), tok)).status == 200
    r = gw.client().request(neg_req(origin.url("/replay"), tok))
    assert_fresh_407(r)
    gw.wait_log(AUTH_FAILED % r".*[Rr]eplay.*")
    assert [q.target for q in origin.requests] == ["/first"]
    assert os.listdir(rc), "the replay cache is not in rcache_dir"


def test_replay_cache_survives_restart(make_gateway, kdc, alice, origin, tmp_path):
    rc = tmp_path / "rcache"
    rc.mkdir(mode=0o700)
    env = {k: v for k, v in {**os.environ, **kdc.env}.items() if k != "KRB5RCACHEDIR"}
    tok = token_for(alice)
    gw1 = start_gateway(make_gateway, kdc, env=env, rcache_dir=str(rc))
    assert gw1.client().request(neg_req(origin.url("/first"), tok)).status == 200
    gw1.stop()
    gw2 = start_gateway(make_gateway, kdc, env=env, rcache_dir=str(rc))
    assert_fresh_407(gw2.client().request(neg_req(origin.url("/replay"), tok)))
    gw2.wait_log(AUTH_FAILED % r".*[Rr]eplay.*")
    assert [q.target for q in origin.requests] == ["/first"]


def test_ticket_for_other_service_refused(gw, alice, origin):
    r = gw.client().request(neg_req(origin.url("/"), token_for(alice, target="HTTP@other.test")))
    assert_fresh_407(r)
    assert origin.requests == []
    gw.wait_log(AUTH_FAILED % ".+")


def test_ticket_for_other_service_accepted_with_acceptor_any(make_gateway, kdc, alice, origin):
    gw = start_gateway(make_gateway, kdc, negotiate_acceptor="any")
    r = gw.client().request(neg_req(origin.url("/"), token_for(alice, target="HTTP@other.test")))
    assert r.status == 200, (r, gw.logs_tail())
    (req,) = origin.wait_requests(1)
    assert req.header("x-authenticated-user") == "alice@AUTHGATE.TEST"


def test_explicit_acceptor_principal(make_gateway, kdc, alice, origin):
    gw = start_gateway(make_gateway, kdc, negotiate_acceptor="HTTP/other.test@AUTHGATE.TEST")
    c = gw.client()
    other = token_for(alice, target="HTTP@other.test")
    assert c.request(neg_req(origin.url("/o"), other)).status == 200
    assert_fresh_407(gw.client().request(neg_req(origin.url("/l"), token_for(alice))))
    assert [q.target for q in origin.requests] == ["/o"]


def test_wrong_keytab_after_kdc_recreated(make_gateway, origin):
    _need_kdc_programs()
    with Kdc() as k:
        gw = start_gateway(make_gateway, k)
        assert gw.client().request(neg_req(origin.url("/before"),
                                           token_for(k.client_env("alice")))).status == 200
        k.recreate(rewrite_keytabs=False)  # new keys; the gateway keeps the old keytab
        r = gw.client().request(neg_req(origin.url("/after"), token_for(k.client_env("alice"))))
        assert_fresh_407(r)
        gw.wait_log(AUTH_FAILED % r".*(keytab|kvno).*")
        assert [q.target for q in origin.requests] == ["/before"]
        gw.stop()


@pytest.mark.parametrize("offset", [600, -600])
def test_clock_skew_beyond_tolerance(gw, kdc, origin, offset):
    r = gw.client().request(neg_req(origin.url("/"),
                                    token_for(kdc.client_env("alice", time_offset=offset))))
    assert_fresh_407(r)
    assert origin.requests == []
    gw.wait_log(AUTH_FAILED % r".*[Ss]kew.*")


def test_failure_class_from_kerberos_code(make_gateway, kdc, alice, origin):
    """A replayed AP-REQ and a skewed clock are told apart by the Kerberos
    error code (not the message text): each bumps its own counter."""
    d = tempfile.mkdtemp(prefix="agctl-", dir="/tmp")  # short: sun_path is 108 bytes
    try:
        _failure_classes(start_gateway(make_gateway, kdc, status_socket=os.path.join(d, "s")),
                         kdc, alice, origin)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _failure_classes(gw, kdc, alice, origin):
    tok = token_for(alice)
    assert gw.client().request(neg_req(origin.url("/first"), tok)).status == 200
    assert_fresh_407(gw.client().request(neg_req(origin.url("/replay"), tok)))
    gw.wait_log(AUTH_FAILED % r".*[Rr]eplay.*")
    skewed = token_for(kdc.client_env("alice", time_offset=600))
    assert_fresh_407(gw.client().request(neg_req(origin.url("/skew"), skewed)))
    gw.wait_log(AUTH_FAILED % r".*[Ss]kew.*")
    st = stats(gw)
    assert (st["auth_fail_replay"], st["auth_fail_skew"], st["auth_fail_policy"]) == (1, 1, 0), st


@pytest.mark.parametrize("offset", [120, -120])
def test_clock_skew_within_tolerance(gw, kdc, origin, offset):
    r = gw.client().request(neg_req(origin.url("/"),
                                    token_for(kdc.client_env("alice", time_offset=offset))))
    assert r.status == 200, (r, gw.logs_tail())


def test_expired_ticket(make_gateway, origin):
    _need_kdc_programs()
    with Kdc(clockskew=2) as k:
        gw = start_gateway(make_gateway, k)
        env = k.expired_client_env("alice", lifetime=1)
        r = gw.client().request(neg_req(origin.url("/"), token_for(env)))
        assert_fresh_407(r)
        gw.wait_log(AUTH_FAILED % r".*[Ee]xpired.*")
        assert origin.requests == []
        gw.stop()


@pytest.mark.parametrize("case", ["keytab-option-missing", "ktname-env-missing",
                                  "no-key-for-acceptor", "empty-keytab"])
def test_no_acceptor_credentials_negotiate_not_offered(make_gateway, kdc, alice, origin,
                                                       tmp_path, case):
    env = {**os.environ, **kdc.env}
    keytab = kdc.keytab
    if case == "keytab-option-missing":
        keytab = str(tmp_path / "missing.keytab")
    elif case == "ktname-env-missing":
        keytab = None
        env["KRB5_KTNAME"] = "FILE:" + str(tmp_path / "missing.keytab")
    elif case == "no-key-for-acceptor":
        keytab = kdc.export_keytab(kdc.other_service, str(tmp_path / "other-only.keytab"))
    else:
        keytab = str(tmp_path / "empty.keytab")
        pathlib.Path(keytab).write_bytes(b"\x05\x02")  # a keytab header, no entries
    gw = start_gateway(make_gateway, kdc, env=env, keytab=keytab,
                       auth_schemes="negotiate ntlm basic", user_file=str(DEMO_USERS),
                       ntlm_backend="local", basic_backend="local")
    gw.wait_log(r"level=error event=negotiate_unavailable error=\"[^\"]+\"")
    assert "event=negotiate_ready" not in gw.error_log
    c = gw.client()
    assert_fresh_407(c.request(get_request(origin.url("/"))), ("NTLM", "Basic"))
    # a Negotiate token sent anyway is not verified
    assert_fresh_407(c.request(neg_req(origin.url("/"), token_for(alice))), ("NTLM", "Basic"))
    assert origin.requests == []


# --------------------------------------------------------------------------- bad tokens


def _bad_tokens(env):
    """name -> Proxy-Authorization value."""
    spnego = token_for(env)
    apreq = token_for(env, mech="krb5")
    return {
        "empty": "Negotiate",
        "empty-trailing-space": "Negotiate ",
        "garbage-base64": "Negotiate !!!!****",
        "base64url": "Negotiate " + b64(spnego).replace("+", "-").replace("/", "_"),
        "inner-space": "Negotiate " + b64(spnego)[:20] + " " + b64(spnego)[20:],
        "bad-padding": "Negotiate YWJjZA=",
        "len-mod-4-is-1": "Negotiate YWJjZ",
        "non-der": "Negotiate " + b64(b"hello, this is not DER at all"),
        "truncated-spnego": "Negotiate " + b64(spnego[:len(spnego) // 2]),
        "truncated-inner-ap-req": "Negotiate " + b64(neg_token_init([KRB5],
                                                                  apreq[:len(apreq) // 2])),
        "spnego-ntlm-only": "Negotiate " + b64(neg_token_init([NTLMSSP_MECH], ntlm_type1())),
        "spnego-no-mechs": "Negotiate " + b64(neg_token_init([])),
        "wrong-mech-oid": "Negotiate " + b64(tlv(0x60, der_oid("1.2.3.4.5") + b"\x01\x00abc")),
        "krb5-oid-garbage": "Negotiate " + b64(tlv(0x60, KRB5 + b"\x01\x00" + b"\xff" * 40)),
        "neg-token-resp-out-of-the-blue": "Negotiate " + b64(neg_token_resp(apreq)),
        "only-der-header": "Negotiate " + b64(b"\x60\x00"),
    }


BAD_TOKEN_CASES = ["empty", "empty-trailing-space", "garbage-base64", "base64url", "inner-space",
                   "bad-padding", "len-mod-4-is-1", "non-der", "truncated-spnego",
                   "truncated-inner-ap-req", "spnego-ntlm-only", "spnego-no-mechs",
                   "wrong-mech-oid", "krb5-oid-garbage", "neg-token-resp-out-of-the-blue",
                   "only-der-header"]


@pytest.mark.parametrize("case", BAD_TOKEN_CASES)
def test_bad_token_fresh_407(gw, alice, origin, case):
    value = _bad_tokens(alice)[case]
    c = gw.client()
    r = c.request(neg_req(origin.url("/bad"), raw=value))
    assert_fresh_407(r)
    assert origin.requests == []
    # the handshake state was dropped: a good token on the same connection works
    r = c.request(neg_req(origin.url("/good"), token_for(alice)))
    assert r.status == 200, (r, gw.logs_tail())
    assert [q.target for q in origin.wait_requests(1)] == ["/good"]
    assert gw.alive()


def test_bad_token_after_continue_drops_context(gw, alice, origin):
    c = gw.client()
    r = c.request(neg_req(origin.url("/"), neg_token_init([KRB5])))
    assert r.status == 407 and r.header("proxy-authenticate").startswith("Negotiate ")
    empty_resp = "Negotiate " + b64(b"\xa1\x03\x30\x01")  # NegTokenResp, nothing in it
    assert_fresh_407(c.request(neg_req(origin.url("/"), raw=empty_resp)))
    assert_fresh_407(c.request(get_request(origin.url("/"))))
    assert origin.requests == []
    assert_alive_and_working(gw, origin, alice)


@pytest.mark.parametrize("n_mechs", [900, 3400], ids=["11KiB", "40KiB"])
def test_large_token_not_rejected_for_size(gw, alice, origin, n_mechs):
    """A valid SPNEGO token over 8 KiB (up to ~40 KiB, as Windows' MaxTokenSize
    allows 48000): alice's real AP-REQ as the optimistic token of a
    NegTokenInit whose mech list names krb5 first, then many unknown mechs.
    (MIT's KDC here neither copies request authdata into tickets nor takes
    principal names long enough to make the ticket itself that big.)"""
    ini = Initiator(alice, mech="krb5")
    extra = [der_oid("1.3.6.1.4.1.32473.%d" % i) for i in range(1, n_mechs)]
    tok = neg_token_init([KRB5] + extra, ini.first)
    assert len(tok) > 8192 and len(b64(tok)) < 60000
    c = gw.client()
    r = c.request(neg_req(origin.url("/big"), tok))
    assert r.status == 200, (r, gw.logs_tail())
    ini.step(parse_neg_token_resp(auth_info_token(r))[2])
    assert ini.ctx.complete
    (req,) = origin.wait_requests(1)
    assert req.header("x-authenticated-user") == "alice@AUTHGATE.TEST"
    assert req.header("proxy-authorization") is None


# --------------------------------------------------------------------------- NTLM, realms, schemes


def test_raw_ntlmssp_inside_negotiate(make_gateway, kdc, origin):
    gw = start_gateway(make_gateway, kdc, auth_schemes="negotiate ntlm",
                       user_file=str(DEMO_USERS), ntlm_backend="local")
    c = gw.client()
    r = c.request(neg_req(origin.url("/"), ntlm_type1()))
    assert_error_response(r, 407)
    (v,) = r.header_all("proxy-authenticate")
    scheme, tok = v.split()
    assert scheme == "Negotiate"
    msg = base64.b64decode(tok, validate=True)
    assert msg[:12] == b"NTLMSSP\x00\x02\x00\x00\x00"
    assert origin.requests == []


@pytest.mark.parametrize("realms,status", [("OTHER.TEST", 403),
                                           ("OTHER.TEST,AUTHGATE.TEST", 200)])
def test_negotiate_realms(make_gateway, kdc, alice, origin, realms, status):
    gw = start_gateway(make_gateway, kdc, negotiate_realms=realms)
    c = gw.client()
    r = c.request(neg_req(origin.url("/"), token_for(alice)))
    if status == 200:
        assert r.status == 200, (r, gw.logs_tail())
        return
    assert_error_response(r, 403)
    assert r.header("proxy-authenticate") is None
    gw.wait_log(r'event=auth_refused scheme=Negotiate .*principal="?alice@AUTHGATE\.TEST"? '
                r'.*reason="realm not allowed"')
    # the refused identity is not bound to the connection
    assert_fresh_407(c.request(get_request(origin.url("/later"))))
    assert origin.requests == []


def test_negotiate_realms_list_with_blank(make_gateway, kdc, alice, origin):
    gw = start_gateway(make_gateway, kdc, negotiate_realms='"OTHER.TEST, AUTHGATE.TEST"')
    r = gw.client().request(neg_req(origin.url("/"), token_for(alice)))
    assert r.status == 200, (r, gw.logs_tail())


def test_negotiate_ntlm_basic_on_one_gateway(make_gateway, kdc, alice, origin):
    gw = start_gateway(make_gateway, kdc, auth_schemes="negotiate ntlm basic",
                       user_file=str(DEMO_USERS), ntlm_backend="local", basic_backend="local")
    first = gw.client().request(get_request(origin.url("/")))
    assert_fresh_407(first, ("Negotiate", "NTLM", "Basic"))
    plain = sanitizer_env(os.environ)
    r = run_curl(gw, alice, origin.url("/neg"))
    assert r.status == 200, (r, gw.logs_tail())
    cred = "%s:%s" % (DEMO_USER, DEMO_PASSWORD)
    r = run_curl(gw, plain, "--proxy-ntlm", "-U", cred, origin.url("/ntlm"), negotiate=False)
    assert r.status == 200, (r, gw.logs_tail())
    r = run_curl(gw, plain, "-U", cred, origin.url("/basic"), negotiate=False)
    assert r.status == 200, (r, gw.logs_tail())
    who = {q.target: q.header("x-authenticated-user") for q in origin.wait_requests(3)}
    assert who["/neg"] == "alice@AUTHGATE.TEST"
    assert who["/ntlm"].lower().endswith("demo") and who["/basic"].lower().endswith("demo")
    ok = {f["url"].rsplit("/", 1)[1]: f["user"] for f in map(parse_access, gw.wait_access_log(5))
          if f["status"] == "200"}
    assert ok["neg"] == "alice@AUTHGATE.TEST"
    assert ok["ntlm"].lower().endswith("demo") and ok["basic"].lower().endswith("demo")


@pytest.mark.parametrize("scheme", ["NTLM", "Negotiate"])
def test_ntlm_type3_while_gss_continues(make_gateway, kdc, alice, origin, scheme):
    """Issue 10 guard: a NegTokenInit leaves the row in GSS-continue (its GSS
    context in the row); an NTLM Type 3 on the same connection (as `NTLM` or
    raw NTLMSSP in `Negotiate`) must be refused cleanly by the state check:
    taken as NTLM state, the GSS context would corrupt the heap (the daemon
    dies; the sanitizer build reports it). The GSS context is dropped too."""
    gw = start_gateway(make_gateway, kdc, auth_schemes="negotiate ntlm",
                       user_file=str(DEMO_USERS), ntlm_backend="local")
    # a well-formed Type 3, for a challenge another connection got
    other = gw.client()
    t1 = ntlm_type1()
    r = other.request(neg_req(origin.url("/echo"), raw="NTLM " + b64(t1)))
    chal = Challenge(base64.b64decode(r.header("proxy-authenticate").split()[1]))
    t3 = authenticate_msg(chal, DEMO_USER, DEMO_PASSWORD, negotiate=t1)
    c = gw.client()
    r = c.request(neg_req(origin.url("/echo"), neg_token_init([KRB5])))
    assert_error_response(r, 407)
    assert r.header("proxy-authenticate").startswith("Negotiate "), r
    since = len(gw.error_log)
    r = c.request(neg_req(origin.url("/echo"), raw="%s %s" % (scheme, b64(t3))))
    assert_fresh_407(r, ("Negotiate", "NTLM"))
    assert re.search(r'event=auth_unexpected scheme=NTLM .*reason="AUTHENTICATE without a '
                     r'challenge on this connection"', gw.error_log[since:]), gw.logs_tail()
    assert gw.alive(), gw.logs_tail()
    # the GSS context went with it: the second Kerberos leg finds none
    ini = Initiator(alice, mech="krb5")
    assert_fresh_407(c.request(neg_req(origin.url("/echo"), neg_token_resp(ini.first))),
                     ("Negotiate", "NTLM"))
    assert origin.requests == []
    assert_alive_and_working(gw, origin, alice)
