"""BAD-INPUTS.md rows 17-39, 43, 46-60, 62, 65, 67, 74-76 at the HTTP level, for
Basic and NTLM (rows 1-16 and 44-45 are in test_proxy_bad_inputs.py; rows
18-23, 33, 34, 36, 49-51, 76 and 77 also have scenario tests in
test_auth_ntlm.py / test_auth_basic.py).

The table-driven tests run every bad input on a connection that already has
an NTLM challenge outstanding, then check: the exact status; a fresh 407
(every scheme, no token) where the row says 407f; whether the connection
closed; that nothing reached the origin; for NTLM messages, that the
gateway refused before any backend verdict (error-log event); and, when the
connection stays open, that the outstanding challenge was dropped (a Type 3
computed for it now fails) and that a new handshake on the same connection
still succeeds (the parser is in step)."""

import base64
import collections
import json
import struct

import pytest

from harness.auth import IDENTITY_HEADER, USERS
from harness.auth import local_env  # noqa: F401 (fixtures)
from harness.ctl_client import stats, status
from harness.gateway import log_events
from harness.ntlm_client import (AV_FLAGS, AV_TARGET_NAME, CURL_FLAGS, F_ANONYMOUS, F_DATAGRAM,
                                 F_LM_KEY, F_UNICODE, F_VERSION, SIG, WINDOWS_FLAGS,
                                 authenticate_msg, b64, basic, challenge_from, get_field,
                                 is_fresh_407, negotiate_msg, ntlm_legs, pa, set_field, set_flags,
                                 type1_leg)
from harness.rawhttp import Closed, build_request, get_request
from harness.tools import assert_error_response, wait_until

PW = USERS["alice"]
ALL = ["ntlm", "basic"]
BACKEND_VERDICTS = {"auth_failed", "auth_ok", "auth_backend_error", "auth_backend_timeout"}

LIMITS = dict(fail_max_per_user=1000, fail_max_per_addr=1000)
# proxy_host set: MsvAvTargetName is checked (row 62)
PROXY_HOST = "proxy.authgate.test"


def gw_for(env, **opts):
    o = dict(LIMITS, proxy_host=PROXY_HOST)
    o.update(opts)
    return env.make("ntlm basic", **o)


# A case: id, BAD-INPUTS row, build(ctx) -> request bytes, expected status,
# close (True: must close; False: must stay open), events (error-log events
# of which one must appear; None: not checked), neg (NEGOTIATE flags of the
# handshake in progress).
Case = collections.namedtuple("Case", "id row build status close events neg")
Case.__new__.__defaults__ = (None, CURL_FLAGS)

REFUSED = {"auth_refused", "auth_malformed", "auth_unexpected"}


class Ctx:
    def __init__(self, origin, chal, t1):
        self.origin = origin
        self.chal = chal
        self.t1 = t1
        self.url = origin.url("/echo")

    def req(self, *headers, method="GET", body=b""):
        return get_request(self.url, list(headers), method=method, body=body)

    def t3(self, user="alice", password=PW, domain="", **kw):
        return authenticate_msg(self.chal, user, password, domain, negotiate=self.t1, **kw)

    def ntlm(self, msg, scheme="NTLM"):
        return self.req(pa("%s %s" % (scheme, b64(msg))))


def header_case(id, row, value, status=407, close=False, events=None, extra=()):
    """A case whose bad input is one Proxy-Authorization value (None: none)."""
    def build(ctx):
        hdrs = ([pa(value)] if value is not None else []) + list(extra)
        return ctx.req(*hdrs)
    return Case(id, row, build, status, close, events)


def t3_case(id, row, make, status=407, close=False, events=REFUSED, neg=CURL_FLAGS):
    """A case whose bad input is an NTLM message made from the handshake."""
    return Case(id, row, lambda ctx: ctx.ntlm(make(ctx)), status, close, events, neg)


def _b(s):
    return base64.b64encode(s if isinstance(s, bytes) else s.encode("latin-1")).decode()


def _blob_resptype(v):
    return lambda temp: bytes([v]) + temp[1:]


def _blob_hiresptype(v):
    return lambda temp: temp[:1] + bytes([v]) + temp[2:]


def _blob_no_eol(temp):
    # blob = header(28) + AV pairs ending in EOL (4) + 4 zero bytes: drop both
    return temp[:-8]


def _blob_avlen_past_end(temp):
    # the first AV pair claims more bytes than the blob has
    out = bytearray(temp)
    struct.pack_into("<H", out, 28 + 2, 0xFFF0)
    return bytes(out)


def _many_av(pairs):
    return [(0x00FF, b"")] * 65 + pairs


def _dup_flags(pairs):
    return pairs + [(AV_FLAGS, struct.pack("<I", 0)), (AV_FLAGS, struct.pack("<I", 0))]


def _trunc(n):
    return lambda ctx: ctx.t3()[:n]


def _with_sig(sig):
    return lambda ctx: sig + ctx.t3()[8:]


def _with_type(t):
    return lambda ctx: SIG + struct.pack("<I", t) + ctx.t3()[12:]


def _field(name, **kw):
    return lambda ctx: set_field(ctx.t3(), name, **kw)


def _user_past_end(ctx):
    m = ctx.t3()
    ln, _, off = get_field(m, "user")
    return set_field(m, "user", length=len(m) - off + 1)


def _mic_window_payload(ctx):
    m = ctx.t3(mic=True)
    return set_field(m, "workstation", offset=72)


def _version_over_payload(ctx):
    # payload at 64, then claim a Version field (64..71) that overlaps it
    m = ctx.t3(version=None, flags=ctx.chal.flags & ~F_VERSION)
    return set_flags(m, struct.unpack_from("<I", m, 60)[0] | F_VERSION)


def _anonymous_empty(ctx):
    return ctx.t3(user="", nt_override=b"", lm_override=b"\0", hash_user="")


def _anonymous_flag(ctx):
    m = ctx.t3()
    return set_flags(m, struct.unpack_from("<I", m, 60)[0] | F_ANONYMOUS)


def _lm_only(ctx):
    return ctx.t3(nt_override=b"")


def _ntlmv1(ctx):
    return ctx.t3(nt_override=bytes(range(24)), lm_override=bytes(24))


def _nt_len(n):
    return lambda ctx: ctx.t3(nt_override=bytes(range(n)))


def _extra_flag(flag):
    return lambda ctx: ctx.t3(flags=(ctx.chal.flags & ~0x00010000) | flag)


def _flip_at(field, i):
    """Flips one bit of byte i of an AUTHENTICATE field ("nt": NTProofStr is
    its first 16 bytes) after everything was computed: only the NTProofStr
    or MIC check can refuse it."""
    def edit(m):
        ln, _, off = get_field(m, field)
        assert i < ln
        out = bytearray(m)
        out[off + i] ^= 0x01
        return bytes(out)
    return edit


def _mic_flipped(i):
    def make(ctx):
        m = bytearray(ctx.t3(mic=True))
        m[72 + i] ^= 0x80
        return bytes(m)
    return make


def _target_name(name):
    return lambda pairs: pairs + [(AV_TARGET_NAME, name.encode("utf-16-le"))]


def _over_4k(ctx):
    m = ctx.t3(trailer=b"\0" * 4096)
    assert len(m) > 4096
    return m


T1 = negotiate_msg


CASES = [
    # 17: Upgrade without credentials
    header_case("upgrade-websocket", 17, None,
                extra=[("Connection", "Upgrade"), ("Upgrade", "websocket"),
                       ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                       ("Sec-WebSocket-Version", "13")]),
    header_case("upgrade-h2c", 17, None,
                extra=[("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
                       ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")]),
    # 26: several credentials
    Case("two-fields-basic", 26, lambda ctx: ctx.req(pa(basic("alice", PW)),
                                                      pa(basic("alice", PW))), 400, True),
    Case("two-fields-ntlm-basic", 26, lambda ctx: ctx.req(pa("NTLM " + b64(ctx.t3())),
                                                          pa(basic("alice", PW))), 400, True),
    header_case("comma-joined-basic", 26, basic("alice", PW) + ", " + basic("bob", "x"), 400,
                True),
    header_case("comma-joined-ntlm", 26, "NTLM TlRMTVNTUAABAAAA, NTLM TlRMTVNTUAABAAAA", 400,
                True),
    # 27: unsupported schemes
    header_case("digest", 27, 'Digest username="alice", realm="authgate", nonce="x", '
                'uri="/", response="0"'),
    header_case("bearer", 27, "Bearer eyJhbGciOiJub25lIn0.e30."),
    header_case("digest-single-param", 27, 'Digest username="alice"'),
    header_case("junk-scheme", 27, "Junk abc"),
    header_case("junk-no-token", 27, "garbage"),
    header_case("negotiate-kerberos-not-offered", 27, "Negotiate YIIBhwYGKwYBBQUCoIIBezCC"),
    # 29: empty tokens
    header_case("ntlm-empty", 29, "NTLM"),
    header_case("ntlm-empty-space", 29, "NTLM "),
    header_case("negotiate-empty", 29, "Negotiate"),
    header_case("basic-empty", 29, "Basic"),
    header_case("basic-empty-space", 29, "Basic "),
    # 30: invalid base64
    header_case("ntlm-foreign-chars", 30, "NTLM TlRMTVNTUAAB!!!AAAA"),
    header_case("ntlm-base64url", 30, "NTLM TlRMTVNTUAABAAAAB4II-_AAAAAA"),
    header_case("ntlm-inner-space", 30, "NTLM TlRMTVNT UAABAAAA"),
    header_case("ntlm-bad-padding", 30, "NTLM TlRMTVNTUA=ABAAAA"),
    header_case("ntlm-padding-in-middle", 30, "NTLM TlRM=VNTUAABAAAA="),
    header_case("ntlm-len-mod4-1", 30, "NTLM TlRMTVNTUAABA"),
    header_case("ntlm-no-padding", 30, "NTLM TlRMTVNTUAABAAAAB4IIog"),
    header_case("negotiate-ntlmssp-bad-base64", 30, "Negotiate TlRMTVNTUA!!"),
    header_case("basic-foreign-chars", 30, "Basic YWxpY2U6YWxpY2UtUGFzczE!"),
    header_case("basic-len-mod4-1", 30, "Basic YWxpY2U6YWxpY2UtUGFzczEx" + "Y"),
    header_case("basic-base64url", 30, "Basic " + _b("alice:alice-Pass1>>?").replace(
        "+", "-").replace("/", "_")),
    # 31: decoded NTLM over 4 KiB
    t3_case("ntlm-over-4k", 31, _over_4k, close=True, events={"auth_malformed"}),
    Case("negotiate-ntlmssp-over-4k", 31,
         lambda ctx: ctx.ntlm(_over_4k(ctx), "Negotiate"), 407, True, {"auth_malformed"}),
    # 46: bad signature, unknown type, a CHALLENGE from the client
    t3_case("t3-bad-signature", 46, _with_sig(b"NTLMSSQ\0"), events=None),
    t3_case("t3-lowercase-signature", 46, _with_sig(b"ntlmssp\0"), events=None),
    t3_case("type-4", 46, _with_type(4)),
    t3_case("type-0", 46, _with_type(0)),
    t3_case("type-huge", 46, _with_type(0x80000001)),
    t3_case("client-sends-challenge", 46, lambda ctx: ctx.chal.raw),
    # 47: NEGOTIATE too short or with fields out of range
    t3_case("t1-8-bytes", 47, lambda ctx: SIG),
    t3_case("t1-12-bytes", 47, lambda ctx: SIG + struct.pack("<I", 1)),
    t3_case("t1-15-bytes", 47, lambda ctx: T1(short=True)[:15]),
    t3_case("t1-20-bytes", 47, lambda ctx: T1()[:20]),
    t3_case("t1-31-bytes", 47, lambda ctx: T1()[:31]),
    t3_case("t1-domain-past-end", 47,
            lambda ctx: set_field(T1(), "domain", length=4, offset=30, t1=True)),
    t3_case("t1-domain-in-header", 47,
            lambda ctx: set_field(T1() + b"ABCD", "domain", length=4, offset=8, t1=True)),
    t3_case("t1-offset-overflow", 47,
            lambda ctx: set_field(T1() + b"ABCD", "workstation", length=0x20,
                                  offset=0xFFFFFFF0, t1=True)),
    # 48 is test_row48_type3_without_type2 below
    # 52: field offset/length out of range
    t3_case("user-offset-past-end", 52, lambda ctx: set_field(ctx.t3(), "user",
                                                              offset=len(ctx.t3()))),
    t3_case("user-length-past-end", 52, _user_past_end),
    t3_case("nt-offset-overflow", 52, _field("nt", offset=0xFFFFFFF0)),
    t3_case("domain-offset-overflow-wraps", 52, _field("domain", length=16,
                                                       offset=0xFFFFFFF8)),
    t3_case("user-offset-in-header", 52, _field("user", offset=8)),
    t3_case("user-offset-in-descriptors", 52, _field("user", offset=40)),
    t3_case("lm-offset-zero", 52, _field("lm", offset=0)),
    t3_case("truncated-header", 52, _trunc(50)),
    t3_case("truncated-payload", 52, lambda ctx: ctx.t3()[:-10]),
    # 53: payload overlapping the MIC window or the Version field
    t3_case("payload-in-mic-window", 53, _mic_window_payload),
    t3_case("mic-flag-payload-at-64", 53, lambda ctx: ctx.t3(mic=True, payload_start=64)),
    t3_case("version-over-payload", 53, _version_over_payload),
    # 54: strings
    t3_case("unicode-odd-length-user", 54,
            lambda ctx: ctx.t3(user="alice".encode("utf-16-le") + b"x", hash_user="alice"),
            neg=WINDOWS_FLAGS),
    t3_case("unicode-unpaired-high-surrogate", 54,
            lambda ctx: ctx.t3(user=b"a\x00\x00\xd8", hash_user="a"), neg=WINDOWS_FLAGS),
    t3_case("unicode-lone-low-surrogate", 54,
            lambda ctx: ctx.t3(user=b"\x00\xdca\x00", hash_user="a"), neg=WINDOWS_FLAGS),
    t3_case("unicode-embedded-nul", 54,
            lambda ctx: ctx.t3(user="al\x00ice".encode("utf-16-le"), hash_user="alice"),
            neg=WINDOWS_FLAGS),
    t3_case("unicode-nul-in-domain", 54,
            lambda ctx: ctx.t3(domain="DOM\x00".encode("utf-16-le"), hash_domain="DOM"),
            neg=WINDOWS_FLAGS),
    t3_case("oem-non-ascii-user", 54, lambda ctx: ctx.t3(user=b"alic\xe9", hash_user="alice")),
    t3_case("oem-nul-in-user", 54, lambda ctx: ctx.t3(user=b"al\x00ice", hash_user="alice")),
    # 55: names over 255 bytes, refused before any backend call
    t3_case("user-256", 55, lambda ctx: ctx.t3(user="a" * 256)),
    t3_case("domain-256", 55, lambda ctx: ctx.t3(domain="D" * 256)),
    t3_case("workstation-256", 55, lambda ctx: ctx.t3(workstation="W" * 256)),
    t3_case("unicode-user-256-utf8-bytes", 55, lambda ctx: ctx.t3(user="\u00e9" * 128),
            neg=WINDOWS_FLAGS),
    # 56: anonymous
    t3_case("anonymous-empty", 56, _anonymous_empty),
    t3_case("anonymous-flag", 56, _anonymous_flag),
    t3_case("empty-user-valid-response", 56, lambda ctx: ctx.t3(user="", hash_user="")),
    # 57: NTLMv1 / LM only
    t3_case("ntlmv1-24-byte-nt", 57, _ntlmv1),
    t3_case("lm-only", 57, _lm_only),
    # 58: malformed NTLMv2 responses (NTProofStr recomputed over the edit)
    t3_case("nt-25-bytes", 58, _nt_len(25)),
    t3_case("nt-47-bytes", 58, _nt_len(47)),
    t3_case("nt-16-bytes", 58, _nt_len(16)),
    t3_case("resptype-2", 58, lambda ctx: ctx.t3(blob_edit=_blob_resptype(2))),
    t3_case("hiresptype-2", 58, lambda ctx: ctx.t3(blob_edit=_blob_hiresptype(2))),
    t3_case("avlen-past-end", 58, lambda ctx: ctx.t3(blob_edit=_blob_avlen_past_end)),
    t3_case("no-eol", 58, lambda ctx: ctx.t3(blob_edit=_blob_no_eol)),
    t3_case("too-many-av-pairs", 58, lambda ctx: ctx.t3(av_edit=_many_av)),
    t3_case("duplicate-av-flags", 58, lambda ctx: ctx.t3(av_edit=_dup_flags)),
    t3_case("server-av-pair-missing", 58,
            lambda ctx: ctx.t3(av_edit=lambda p: [x for x in p if x[0] != 2])),
    # 59: NTProofStr mismatch: a bit of the second half flipped (the first
    # half is tried in test_auth_ntlm.py too); refused by the verifier
    t3_case("ntproofstr-byte-12", 59, lambda ctx: _flip_at("nt", 12)(ctx.t3()), events=None),
    t3_case("ntproofstr-byte-15", 59, lambda ctx: _flip_at("nt", 15)(ctx.t3()), events=None),
    # 60: MsvAvFlags says MIC present but the MIC is wrong or zero, under the
    # default configuration (ntlm_require_mic off)
    t3_case("mic-byte-0-flipped", 60, _mic_flipped(0), events=None, neg=WINDOWS_FLAGS),
    t3_case("mic-byte-15-flipped", 60, _mic_flipped(15), events=None, neg=WINDOWS_FLAGS),
    t3_case("mic-flipped-no-key-exch", 60, _mic_flipped(7), events=None),
    t3_case("mic-zeroed", 60, lambda ctx: (lambda m: m[:72] + bytes(16) + m[88:])(
        ctx.t3(mic=True)), events=None, neg=WINDOWS_FLAGS),
    # 62: MsvAvTargetName not ours (proxy_host is set); the accepted
    # spellings are test_target_name_with_proxy_host in test_auth_ntlm.py
    t3_case("target-name-evil", 62, lambda ctx: ctx.t3(av_edit=_target_name(
        "HTTP/evil.example"))),
    t3_case("target-name-other-service", 62, lambda ctx: ctx.t3(av_edit=_target_name(
        "CIFS/" + PROXY_HOST))),
    t3_case("target-name-suffix", 62, lambda ctx: ctx.t3(av_edit=_target_name(
        "HTTP/" + PROXY_HOST + ".evil.example"))),
    # 65: flags not offered in the CHALLENGE
    t3_case("flag-datagram", 65, _extra_flag(F_DATAGRAM)),
    t3_case("flag-lm-key", 65, _extra_flag(F_LM_KEY)),
    t3_case("flag-unicode-not-offered", 65, _extra_flag(F_UNICODE)),
    # 67: control characters in names (NTLM); Basic ones are row 74
    t3_case("crlf-in-user", 67, lambda ctx: ctx.t3(user="ali\r\nce")),
    t3_case("ctl-in-workstation", 67, lambda ctx: ctx.t3(workstation="WS\x01")),
    t3_case("del-in-domain", 67, lambda ctx: ctx.t3(domain="D\x7fOM")),
    t3_case("c1-control-unicode-user", 67, lambda ctx: ctx.t3(user="ali\u0085ce"),
            neg=WINDOWS_FLAGS),
    # 74: Basic credentials
    header_case("basic-no-colon", 74, "Basic " + _b("alice")),
    header_case("basic-empty-user", 74, "Basic " + _b(":" + PW)),
    header_case("basic-nul-in-user", 74, "Basic " + _b("ali\x00ce:" + PW)),
    header_case("basic-ctl-in-user", 74, "Basic " + _b("ali\x01ce:" + PW)),
    header_case("basic-crlf-in-password", 74, "Basic " + _b("alice:al\r\nice")),
    header_case("basic-del-in-password", 74, "Basic " + _b("alice:x\x7f")),
    header_case("basic-invalid-utf8", 74, "Basic " + _b(b"\xff\xfe:" + PW.encode())),
    header_case("basic-overlong-utf8", 74, "Basic " + _b(b"\xc0\xafalice:" + PW.encode())),
    header_case("basic-surrogate-utf8", 74, "Basic " + _b(b"\xed\xa0\x80:" + PW.encode())),
    header_case("basic-user-256", 74, "Basic " + _b("u" * 256 + ":" + PW)),
]

def _params():
    return [pytest.param(c, id="row%02d-%s" % (c.row, c.id)) for c in CASES]


@pytest.mark.parametrize("case", _params())
def test_bad_input(local_env, origin, case):
    gw = gw_for(local_env, ctl=True)
    c = gw.client()
    url = origin.url("/echo")
    chal, t1 = type1_leg(c, url, neg=negotiate_msg(case.neg))
    ctx = Ctx(origin, chal, t1)
    good_t3 = ctx.t3()
    data = case.build(ctx)
    since = len(gw.error_log)
    c.send(data, tolerant=True)
    r = c.recv_response(timeout=4)
    assert r.status == case.status, "row %d %s: sent %r\ngot %r" % (case.row, case.id,
                                                                    data[:300], r.raw[:400])
    assert_error_response(r, case.status)
    if case.status == 407:
        assert is_fresh_407(r, ALL), "row %d %s: not a fresh 407: %r" % (case.row, case.id,
                                                                         r.headers)
    # credentials are never echoed
    pav = [v for n, v in _headers_of(data) if n.lower() == "proxy-authorization"]
    for v in pav:
        tok = v.split(" ", 1)[-1]
        if len(tok) >= 8:
            assert tok.encode("latin-1") not in r.raw
    events = set(log_events(gw, since))
    if case.events is not None:
        assert events & case.events, "row %d %s: events %r" % (case.row, case.id, events)
        assert not events & BACKEND_VERDICTS, "row %d %s: reached the backend: %r" % (
            case.row, case.id, events)
    if case.close:
        assert c.is_closed(2.0), "row %d %s: connection left open" % (case.row, case.id)
        assert "close" in r.tokens("connection")
        assert origin.all_requests == []
        wait_until(lambda: status(gw)["connections"] == "0", 5, "the connection to go")
        assert status(gw)["handshakes"] == "0"
        return
    assert "keep-alive" in r.tokens("connection")
    assert origin.all_requests == []
    try:
        # the outstanding challenge was dropped ...
        r = c.request(get_request(url, [pa("NTLM " + b64(good_t3))]))
        assert r.status == 407 and is_fresh_407(r, ALL), \
            "row %d %s: the challenge outstanding before the bad input survived it: %r" % (
                case.row, case.id, r)
        # ... and the connection is still in step
        r, _, _ = ntlm_legs(c, url, "alice", PW)
    except Closed:
        pytest.fail("row %d %s: connection closed after the %d" % (case.row, case.id,
                                                                   case.status))
    assert r.status == 200, r
    assert [q.target for q in origin.requests] == ["/echo"]
    st = status(gw)
    assert (st["handshakes"], st["authenticated"]) == ("0", "1"), st


def _headers_of(data):
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return [tuple(x.split(": ", 1)) for x in head if ": " in x]


# --------------------------------------------------------------------------- single rows


def test_row17_upgrade_with_credentials_is_not_upgraded(local_env, origin):
    gw = gw_for(local_env)
    c = gw.client()
    r = c.request(get_request(origin.url("/echo"), [pa(basic("alice", PW)),
                                                     ("Connection", "Upgrade"),
                                                     ("Upgrade", "websocket")]))
    assert r.status == 200
    (q,) = origin.wait_requests(1)
    assert q.header("upgrade") is None


@pytest.mark.parametrize("neg", [negotiate_msg(short=True), negotiate_msg(CURL_FLAGS),
                                 negotiate_msg(WINDOWS_FLAGS, version=bytes(8)),
                                 negotiate_msg(CURL_FLAGS | 0x3000, domain=b"CORP",
                                               workstation=b"WS1")],
                         ids=["16-bytes", "32-bytes-no-version", "40-bytes-version",
                              "oem-domain-and-workstation"])
def test_row47_valid_negotiate_forms(local_env, origin, neg):
    """Row 47's positive side: a 16-byte NEGOTIATE and a 32-byte one without
    Version are valid."""
    gw = gw_for(local_env)
    c = gw.client()
    r, _, _ = ntlm_legs(c, origin.url("/echo"), "alice", PW, neg=neg)
    assert r.status == 200


def test_row48_type3_without_type2(local_env, origin):
    gw = gw_for(local_env)
    other = gw.client()
    chal, t1 = type1_leg(other, origin.url("/echo"))
    t3 = authenticate_msg(chal, "alice", PW, negotiate=t1)
    c = gw.client()
    r = c.request(get_request(origin.url("/echo"), [pa("NTLM " + b64(t3))]))
    assert_error_response(r, 407)
    assert is_fresh_407(r, ALL)
    assert "auth_unexpected" in log_events(gw)
    assert not c.is_closed(0.3)
    assert origin.all_requests == []


def test_row31_ntlm_token_of_exactly_4k_is_accepted(local_env, origin):
    gw = gw_for(local_env)
    c = gw.client()
    chal, t1 = type1_leg(c, origin.url("/echo"))
    m = authenticate_msg(chal, "alice", PW, negotiate=t1)
    m = authenticate_msg(chal, "alice", PW, negotiate=t1, trailer=b"\0" * (4096 - len(m)))
    assert len(m) == 4096
    r = c.request(get_request(origin.url("/echo"), [pa("NTLM " + b64(m))]))
    assert r.status == 200, r


def test_row31_basic_token_over_limit_closes(local_env, origin):
    gw = gw_for(local_env)
    c = gw.client()
    r = c.request(get_request(origin.url("/echo"), [pa(basic("alice", "p" * 1400))]))
    assert_error_response(r, 407)
    assert is_fresh_407(r, ALL)
    assert c.is_closed(2.0)


def test_row28_scheme_names_in_other_letter_cases(local_env, origin):
    gw = gw_for(local_env)
    url = origin.url("/echo")
    c = gw.client()
    t1 = negotiate_msg()
    r = c.request(get_request(url, [pa("ntlm " + b64(t1))]))
    chal = challenge_from(r)
    t3 = authenticate_msg(chal, "alice", PW, negotiate=t1)
    r = c.request(get_request(url, [pa("nTlM " + b64(t3))]))
    assert r.status == 200
    c = gw.client()
    t1 = negotiate_msg(WINDOWS_FLAGS)
    r = c.request(get_request(url, [pa("NEGOTIATE " + b64(t1))]))
    chal = challenge_from(r, "Negotiate")
    t3 = authenticate_msg(chal, "bob", USERS["bob"], negotiate=t1)
    r = c.request(get_request(url, [pa("negotiate " + b64(t3))]))
    assert r.status == 200
    for scheme in ("basic", "BASIC", "bAsIc"):
        r = c.request(get_request(url, [pa(scheme + " " + _b("carol:" + USERS["carol"]))]))
        assert r.status == 200, scheme


def test_row24_pipelined_request_during_handshake(local_env, origin):
    """A request without credentials pipelined behind a Type 1 is answered
    in order, and ends the handshake: the challenge does not carry over."""
    gw = gw_for(local_env)
    c = gw.client()
    url = origin.url("/echo")
    t1 = negotiate_msg()
    c.send(get_request(url, [pa("NTLM " + b64(t1))]) + get_request(origin.url("/echo/2")))
    r1 = c.recv_response(timeout=4)
    r2 = c.recv_response(timeout=4)
    chal = challenge_from(r1)
    assert_error_response(r2, 407)
    assert is_fresh_407(r2, ALL)
    t3 = authenticate_msg(chal, "alice", PW, negotiate=t1)
    r = c.request(get_request(url, [pa("NTLM " + b64(t3))]))
    assert r.status == 407 and is_fresh_407(r, ALL)
    assert origin.all_requests == []


def test_row24_pipelined_type1s_answered_in_order(local_env, origin):
    gw = gw_for(local_env)
    c = gw.client()
    url = origin.url("/echo")
    c.send(b"".join(get_request(url + "/%d" % i, [pa("NTLM " + b64(negotiate_msg()))])
                    for i in range(2)))
    a = challenge_from(c.recv_response(timeout=4))
    b = challenge_from(c.recv_response(timeout=4))
    assert a.server_challenge != b.server_challenge
    # only the latest challenge is valid
    t3 = authenticate_msg(b, "alice", PW)
    r = c.request(get_request(url, [pa("NTLM " + b64(t3))]))
    assert r.status == 200


@pytest.mark.parametrize("in_header", [False, True], ids=["trailer-only", "header-and-trailer"])
def test_row25_proxy_authorization_in_trailer(local_env, origin, in_header):
    gw = gw_for(local_env)
    c = gw.client()
    hdrs = [("Host", origin.authority()), ("Transfer-Encoding", "chunked")]
    if in_header:
        hdrs.append(pa(basic("alice", PW)))
    body = b"5\r\nhello\r\n0\r\nProxy-Authorization: %s\r\n\r\n" % basic("bob", USERS[
        "bob"]).encode()
    r = c.request(build_request("POST", origin.url("/echo"), hdrs, body))
    if not in_header:
        assert_error_response(r, 407)
        assert origin.all_requests == []
        r = c.request(get_request(origin.url("/echo"), [pa(basic("alice", PW))]))
    j = json.loads(r.body)
    assert [v for n, v in j["headers"] if n.lower() == IDENTITY_HEADER.lower()] == ["alice"]
    assert all(n.lower() != "proxy-authorization" for n, v in j["trailers"])
    assert all(n.lower() != "proxy-authorization" for n, v in j["headers"])


@pytest.mark.parametrize("to", [
    "basic",
    "negotiate-ntlmssp"])
def test_row32_scheme_switched_mid_handshake(local_env, origin, to):
    """NTLM Type 1, then another scheme: the NTLM context is discarded, the
    new scheme starts from scratch, and a Type 3 for the old challenge fails."""
    gw = gw_for(local_env)
    c = gw.client()
    url = origin.url("/echo")
    chal, t1 = type1_leg(c, url)
    t3 = authenticate_msg(chal, "alice", PW, negotiate=t1)
    if to == "basic":
        r = c.request(get_request(url, [pa(basic("bob", USERS["bob"]))]))
        assert r.status == 200
        r = c.request(get_request(url, [pa("NTLM " + b64(t3))]))
    else:
        r = c.request(get_request(url, [pa("Negotiate " + b64(t3))]))
    assert_error_response(r, 407)
    assert is_fresh_407(r, ALL)


@pytest.mark.parametrize("bad", [
    "basic-malformed",
    "basic-throttled",
    "basic-wrong", "unsupported-scheme"])
def test_row32_other_scheme_mid_handshake_drops_challenge(local_env, origin, bad):
    gw = gw_for(local_env, fail_max_per_user=1)
    url = origin.url("/echo")
    if bad == "basic-throttled":
        assert gw.client().request(get_request(url, [pa(basic("bob", "x"))])).status == 407
    c = gw.client()
    chal, t1 = type1_leg(c, url)
    t3 = authenticate_msg(chal, "alice", PW, negotiate=t1)
    value = {"basic-malformed": "Basic " + _b("nocolon"), "basic-wrong": basic("bob", "x"),
             "basic-throttled": basic("bob", USERS["bob"]),
             "unsupported-scheme": "Bearer abc"}[bad]
    assert c.request(get_request(url, [pa(value)])).status == 407
    r = c.request(get_request(url, [pa("NTLM " + b64(t3))]))
    assert_error_response(r, 407)
    assert origin.all_requests == []


@pytest.mark.parametrize("cap", ["max_handshakes_per_addr", "max_handshakes"])
def test_row35_handshake_caps(local_env, origin, cap):
    """Beyond the cap every connection still gets an answer: 503 and close;
    a closed handshake frees its slot. (One address holds at most a quarter
    of max_handshakes: the global case plays three addresses.)"""
    opts = {"max_handshakes_per_addr": 1000, "max_handshakes": 1000, "log_level": "debug",
            "ctl": True}
    opts[cap] = 2
    gw = gw_for(local_env, **opts)
    url = origin.url("/echo")
    srcs = ("127.0.0.1",) * 3 if cap == "max_handshakes_per_addr" else (
        "127.0.0.1", "127.0.0.2", "127.0.0.3")
    a, b, x = (gw.client(source=s) for s in srcs)
    type1_leg(a, url)
    type1_leg(b, url)
    r = x.request(get_request(url, [pa("NTLM " + b64(negotiate_msg()))]))
    assert_error_response(r, 503)
    assert x.is_closed(2.0)
    assert stats(gw)["limit_handshakes"] == 1
    a.close()
    gw.wait_log(r"event=close reason=client_(eof|error)")
    y = gw.client()
    r, _, _ = ntlm_legs(y, url, "alice", PW)
    assert r.status == 200
    # b's handshake slot was never disturbed: it completes on its own connection
    r, _, _ = ntlm_legs(b, url, "bob", USERS["bob"])
    assert r.status == 200


def test_row37_proxy_authorization_on_connect(local_env, echo_server):
    gw = gw_for(local_env, connect_ports=[echo_server.port])
    c = gw.client()
    auth = "127.0.0.1:%d" % echo_server.port
    c.send(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n"
           % (auth.encode(), auth.encode(), basic("alice", PW).encode()))
    r = c.recv_response("CONNECT", timeout=4)
    assert r.status == 200
    c.send(b"ping")
    assert c.read_exact(4, timeout=4) == b"ping"
    assert bytes(echo_server.received[0]) == b"ping"  # nothing else went through


def test_row38_proxy_authorization_stripped_on_open_proxy(make_gateway, origin):
    gw = make_gateway(auth_schemes="none")
    c = gw.client()
    r = c.request(get_request(origin.url("/echo"), [pa(basic("alice", PW))]))
    assert r.status == 200
    (q,) = origin.wait_requests(1)
    assert q.header("proxy-authorization") is None


def test_row38_proxy_authorization_stripped_after_ntlm(local_env, origin):
    gw = gw_for(local_env)
    c = gw.client()
    r, _, _ = ntlm_legs(c, origin.url("/echo"), "alice", PW)
    assert r.status == 200
    (q,) = origin.wait_requests(1)
    assert q.header("proxy-authorization") is None


def test_row39_configured_identity_header_replaced(local_env, origin):
    gw = gw_for(local_env, identity_header="X-Proxy-User")
    c = gw.client()
    r = c.request(get_request(origin.url("/echo"), [pa(basic("alice", PW)),
                                                     ("X-Proxy-User", "admin"),
                                                     ("x-proxy-user", "root")]))
    assert r.status == 200
    (q,) = origin.wait_requests(1)
    assert q.header_all("x-proxy-user") == ["alice"]


def test_row39_configured_identity_header_other_spellings_stripped(local_env, origin):
    """CGI, nginx (underscores_in_headers) and many frameworks read X_Proxy_User
    as X-Proxy-User: a client's own field in any such spelling never reaches
    the origin beside ours (killed mutant 22-identity-header-configured-kept)."""
    gw = gw_for(local_env, identity_header="X-Proxy-User")
    c = gw.client()
    r = c.request(get_request(origin.url("/echo"), [pa(basic("alice", PW)),
                                                     ("X_Proxy_User", "admin"),
                                                     ("x-proxy_user", "root")]))
    assert r.status == 200
    (q,) = origin.wait_requests(1)
    loose = [v for n, v in q.headers if n.lower().replace("_", "-") == "x-proxy-user"]
    assert loose == ["alice"]


def test_row39_client_identity_header_stripped_without_identity_header(local_env, origin):
    gw = gw_for(local_env, identity_header="none")
    c = gw.client()
    r = c.request(get_request(origin.url("/echo"), [pa(basic("alice", PW)),
                                                     ("X-Authenticated-User", "admin")]))
    assert r.status == 200
    (q,) = origin.wait_requests(1)
    assert q.header("x-authenticated-user") is None


def test_row43_secrets_never_echoed_or_logged(local_env, origin):
    """Passwords, tokens, challenges and responses appear in no response body
    and no log line (debug level)."""
    gw = gw_for(local_env, log_level="debug")
    url = origin.url("/echo")
    secrets = []
    c = gw.client()
    marker = "Zq9-secret-marker"
    for value in (basic("alice", marker), basic("alice", PW), "Basic " + _b(marker),
                  "Digest " + marker, "NTLM " + _b(marker)):
        secrets.append(value.split(" ", 1)[1])
        r = c.request(get_request(url, [pa(value)]))
        assert value.split(" ", 1)[1].encode() not in r.raw
    secrets += [marker, PW, _b("alice:" + PW)]
    for pw in (PW, "wrong-" + marker):
        r, chal, t3 = ntlm_legs(c, url, "alice", pw)
        secrets += [b64(t3), b64(chal.raw), chal.server_challenge.hex(), t3[-16:].hex()]
    r = c.request(get_request(url, [pa(basic("alice", PW)), pa(basic("bob", marker))]))
    assert r.status == 400 and marker.encode() not in r.raw
    logs = gw.error_log + "\n" + "\n".join(gw.access_log) + gw.stderr
    for s in secrets:
        assert s not in logs, "secret %r in the logs" % s
    # names are logged, secrets are not
    assert 'user="alice"' in logs


@pytest.mark.parametrize("scheme", ["basic", "ntlm"])
def test_row67_user_names_cannot_forge_log_fields(local_env, origin, scheme):
    gw = gw_for(local_env)
    c = gw.client()
    evil = "mallory user=admin event=auth_ok"
    if scheme == "basic":
        r = c.request(get_request(origin.url("/echo"), [pa(basic(evil, "x"))]))
    else:
        r, _, _ = ntlm_legs(c, origin.url("/echo"), evil, "x")
    assert r.status == 407
    line = [l for l in gw.error_log.splitlines() if "mallory" in l][0]
    assert line.count("event=") == 1 and line.count("user=") == 1, line


def test_row67_control_characters_escaped_in_logs(local_env, origin):
    """A name with a quote and a backslash (valid) is logged escaped."""
    gw = gw_for(local_env)
    c = gw.client()
    r = c.request(get_request(origin.url("/echo"), [pa(basic('ma"l\\lory', "x"))]))
    assert r.status == 407
    line = [l for l in gw.error_log.splitlines() if "auth_failed" in l][0]
    assert 'ma"l' not in line and "\\x22" in line and "\\x5c" in line, line


def test_row75_ntlm_throttled(local_env, origin):
    gw = local_env.make("ntlm basic", fail_max_per_user_addr=2, fail_max_per_addr=1000,
                        fail_window="1m", ctl=True)
    c = gw.client()
    for _ in range(2):
        r, _, _ = ntlm_legs(c, origin.url("/echo"), "alice", "wrong")
        assert r.status == 407
    r, _, _ = ntlm_legs(c, origin.url("/echo"), "alice", PW)
    assert_error_response(r, 407)
    assert is_fresh_407(r, ALL)
    ev = log_events(gw)
    assert ev.count("auth_failed") == 2 and ev.count("auth_throttled") == 1
    assert "auth_ok" not in ev
    s = stats(gw)
    assert (s["jobs_submitted"], s["auth_fail_throttled"]) == (2, 1), s
    r, _, _ = ntlm_legs(c, origin.url("/echo"), "bob", USERS["bob"])
    assert r.status == 200
