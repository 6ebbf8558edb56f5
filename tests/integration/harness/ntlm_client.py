"""The client side of proxy authentication, written byte by byte so that
tests can build valid messages and mutate any field.

  nt_hash                      the NT hash (pure Python MD4)
  b64, basic, pa, ntlm_pa      a Basic credential value, a Proxy-Authorization field
                               (with an NTLMSSP message)
  negotiate_msg, Challenge,    an NTLMSSP client (MS-NLMP: NTLMv2, optional MIC /
  authenticate_msg, set_field  KEY_EXCH); get_field / set_field / set_flags
                               rewrite one field of a message
  challenge_from, offered,     read a 407: its CHALLENGE, the schemes offered,
  is_fresh_407                 whether it is a fresh one
  ntlm_legs, type1_leg         NTLM legs over a RawClient
  NtlmAuthClient,              third-party NTLM clients (python3-ntlm-auth,
  REQUESTS_NTLM_SCRIPT,        requests_ntlm) run in a subprocess with
  run_python,                  OpenSSL's legacy provider (MD4); the fixture
  openssl_legacy_env           legacy_ssl_env gives that environment
"""

import base64
import hashlib
import hmac
import os
import pathlib
import struct
import subprocess
import time

import pytest

from .gateway import sanitizer_env
from .rawhttp import get_request

# ----------------------------------------------------------------------------
# MD4 (RFC 1320) in pure Python: OpenSSL 3 only has it in the legacy provider,
# and the test process's hashlib is initialised before a test could enable it.


def _md4(data):
    def f(x, y, z):
        return (x & y) | (~x & z)

    def g(x, y, z):
        return (x & y) | (x & z) | (y & z)

    def h(x, y, z):
        return x ^ y ^ z

    def rotl(v, s):
        v &= 0xFFFFFFFF
        return ((v << s) | (v >> (32 - s))) & 0xFFFFFFFF

    msg = bytearray(data)
    bitlen = (8 * len(data)) & 0xFFFFFFFFFFFFFFFF
    msg.append(0x80)
    while len(msg) % 64 != 56:
        msg.append(0)
    msg += struct.pack("<Q", bitlen)
    a, b, c, d = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476
    for off in range(0, len(msg), 64):
        x = struct.unpack("<16I", msg[off:off + 64])
        aa, bb, cc, dd = a, b, c, d
        for i in (0, 4, 8, 12):
            a = rotl(a + f(b, c, d) + x[i], 3)
            d = rotl(d + f(a, b, c) + x[i + 1], 7)
            c = rotl(c + f(d, a, b) + x[i + 2], 11)
            b = rotl(b + f(c, d, a) + x[i + 3], 19)
        for i in (0, 1, 2, 3):
            a = rotl(a + g(b, c, d) + x[i] + 0x5A827999, 3)
            d = rotl(d + g(a, b, c) + x[i + 4] + 0x5A827999, 5)
            c = rotl(c + g(d, a, b) + x[i + 8] + 0x5A827999, 9)
            b = rotl(b + g(c, d, a) + x[i + 12] + 0x5A827999, 13)
        for i in (0, 2, 1, 3):
            a = rotl(a + h(b, c, d) + x[i] + 0x6ED9EBA1, 3)
            d = rotl(d + h(a, b, c) + x[i + 8] + 0x6ED9EBA1, 9)
            c = rotl(c + h(d, a, b) + x[i + 4] + 0x6ED9EBA1, 11)
            b = rotl(b + h(c, d, a) + x[i + 12] + 0x6ED9EBA1, 15)
        a = (a + aa) & 0xFFFFFFFF
        b = (b + bb) & 0xFFFFFFFF
        c = (c + cc) & 0xFFFFFFFF
        d = (d + dd) & 0xFFFFFFFF
    return struct.pack("<4I", a, b, c, d)


assert _md4(b"abc").hex() == "a448017aaf21d8525fc10ae87aa6729d"  # RFC 1320


def nt_hash(password):
    return _md4(password.encode("utf-16-le"))



def b64(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.b64encode(data).decode("ascii")


def basic(user, password):
    """The value of a Proxy-Authorization carrying Basic user:password."""
    return "Basic " + b64("%s:%s" % (user, password))


def pa(value):
    return ("Proxy-Authorization", value)


def ntlm_pa(msg, scheme="NTLM"):
    """A Proxy-Authorization field carrying an NTLMSSP message."""
    return pa("%s %s" % (scheme, b64(msg)))


# ----------------------------------------------------------------------------
# NTLMSSP (MS-NLMP) client side.

SIG = b"NTLMSSP\0"
F_UNICODE = 0x00000001
F_OEM = 0x00000002
F_REQUEST_TARGET = 0x00000004
F_SIGN = 0x00000010
F_SEAL = 0x00000020
F_DATAGRAM = 0x00000040
F_LM_KEY = 0x00000080
F_NTLM = 0x00000200
F_ANONYMOUS = 0x00000800
F_ALWAYS_SIGN = 0x00008000
F_TARGET_TYPE_DOMAIN = 0x00010000
F_ESS = 0x00080000
F_IDENTIFY = 0x00100000
F_NON_NT_SESSION_KEY = 0x00400000
F_TARGET_INFO = 0x00800000
F_VERSION = 0x02000000
F_128 = 0x20000000
F_KEY_EXCH = 0x40000000
F_56 = 0x80000000

CURL_FLAGS = 0x00088206  # what curl 7.88 sends: OEM, REQUEST_TARGET, NTLM, ALWAYS_SIGN, ESS
WINDOWS_FLAGS = (F_UNICODE | F_OEM | F_REQUEST_TARGET | F_SIGN | F_SEAL | F_NTLM | F_ALWAYS_SIGN
                 | F_ESS | F_TARGET_INFO | F_VERSION | F_128 | F_KEY_EXCH | F_56)

AV_EOL, AV_NB_COMPUTER, AV_NB_DOMAIN, AV_DNS_COMPUTER, AV_DNS_DOMAIN = 0, 1, 2, 3, 4
AV_FLAGS, AV_TIMESTAMP, AV_TARGET_NAME, AV_CHANNEL_BINDINGS = 6, 7, 9, 10

CLIENT_VERSION = bytes([10, 0, 0x61, 0x4a, 0, 0, 0, 15])

# AUTHENTICATE field descriptors: name -> offset of {len16, maxlen16, off32}
T3_FIELDS = {"lm": 12, "nt": 20, "domain": 28, "user": 36, "workstation": 44, "enc_key": 52}
T1_FIELDS = {"domain": 16, "workstation": 24}


def negotiate_msg(flags=CURL_FLAGS, domain=b"", workstation=b"", version=None, short=False):
    """A NEGOTIATE. short=True: the 16-byte form (signature, type, flags)."""
    if short:
        return SIG + struct.pack("<II", 1, flags)
    hdr = 32 + (8 if version is not None else 0)
    payload = domain + workstation
    out = SIG + struct.pack("<II", 1, flags)
    out += struct.pack("<HHI", len(domain), len(domain), hdr if domain else 0)
    out += struct.pack("<HHI", len(workstation), len(workstation),
                       hdr + len(domain) if workstation else 0)
    if version is not None:
        out += version
    return out + payload


def av_parse(data):
    out, i = [], 0
    while i + 4 <= len(data):
        aid, alen = struct.unpack_from("<HH", data, i)
        i += 4
        if aid == AV_EOL:
            break
        out.append((aid, data[i:i + alen]))
        i += alen
    return out


def av_pack(pairs, eol=True):
    out = b"".join(struct.pack("<HH", i, len(v)) + v for i, v in pairs)
    return out + (struct.pack("<HH", AV_EOL, 0) if eol else b"")


class Challenge:
    """A parsed CHALLENGE (Type 2) message; raw keeps the exact bytes (MIC)."""

    def __init__(self, raw):
        assert raw[:8] == SIG, "not NTLMSSP: %r" % raw[:16]
        mtype, = struct.unpack_from("<I", raw, 8)
        assert mtype == 2, "message type %d, not a CHALLENGE" % mtype
        self.raw = raw
        tn_len, _, tn_off = struct.unpack_from("<HHI", raw, 12)
        self.flags, = struct.unpack_from("<I", raw, 20)
        self.server_challenge = raw[24:32]
        ti_len, _, ti_off = struct.unpack_from("<HHI", raw, 40)
        self.target_name = raw[tn_off:tn_off + tn_len]
        self.target_info = raw[ti_off:ti_off + ti_len]
        self.av = av_parse(self.target_info)

    def av_value(self, aid):
        for i, v in self.av:
            if i == aid:
                return v
        return None

    @property
    def unicode(self):
        return bool(self.flags & F_UNICODE)

    @property
    def nb_domain(self):
        v = self.av_value(AV_NB_DOMAIN)
        return v.decode("utf-16-le") if v is not None else None


def hmac_md5(key, data):
    return hmac.new(key, data, hashlib.md5).digest()


def rc4(key, data):
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) & 0xFF
        s[i], s[j] = s[j], s[i]
    i = j = 0
    out = bytearray()
    for ch in data:
        i = (i + 1) & 0xFF
        j = (j + s[i]) & 0xFF
        s[i], s[j] = s[j], s[i]
        out.append(ch ^ s[(s[i] + s[j]) & 0xFF])
    return bytes(out)


def ntowfv2(password, user, domain):
    return hmac_md5(nt_hash(password), (user.upper() + domain).encode("utf-16-le"))


def filetime(t=None):
    return int(((t if t is not None else time.time()) + 11644473600) * 10_000_000)


def _enc(s, unicode):
    if isinstance(s, bytes):
        return s
    return s.encode("utf-16-le") if unicode else s.encode("ascii")


def authenticate_msg(chal, user, password, domain="", workstation="WORKSTATION", *,
                     negotiate=None, unicode=None, flags=None, mic=False, key_exch=None,
                     version=None, lm=True, av_edit=None, blob_edit=None, nt_override=None,
                     lm_override=None, payload_start=None, hash_user=None, hash_domain=None,
                     trailer=b"", client_challenge=None):
    """An NTLMv2 AUTHENTICATE answering chal (a Challenge).

    user/domain/workstation: str (encoded per the negotiated charset) or raw
    bytes sent as is. mic=True adds MsvAvFlags=2 and a MIC over negotiate
    (the NEGOTIATE bytes sent), the challenge and this message. key_exch:
    None = when the challenge has it. av_edit(pairs)->pairs edits the AV
    pairs echoed in the blob; blob_edit(temp)->temp edits the blob *before*
    NTProofStr is computed (so only a structural check can refuse it).
    nt_override / lm_override replace the responses verbatim. hash_user /
    hash_domain: the names the NTOWFv2 is computed with (default: as sent)."""
    if unicode is None:
        unicode = chal.unicode
    if flags is None:
        flags = chal.flags & ~(F_TARGET_TYPE_DOMAIN | 0x00020000)
        flags = (flags & ~(F_UNICODE | F_OEM)) | (F_UNICODE if unicode else F_OEM)
    if key_exch is None:
        key_exch = bool(chal.flags & F_KEY_EXCH)
    if key_exch:
        flags |= F_KEY_EXCH
    else:
        flags &= ~F_KEY_EXCH
    if version is None and flags & F_VERSION:
        version = CLIENT_VERSION
    if version is not None:
        flags |= F_VERSION
    charset = "utf-16-le" if unicode else "latin-1"
    hu = hash_user if hash_user is not None else (
        user if isinstance(user, str) else user.decode(charset))
    hd = hash_domain if hash_domain is not None else (
        domain if isinstance(domain, str) else domain.decode(charset))
    key = ntowfv2(password, hu, hd)
    cc = client_challenge or os.urandom(8)
    ts = chal.av_value(AV_TIMESTAMP) or struct.pack("<Q", filetime())
    pairs = list(chal.av)
    if mic:
        pairs = [p for p in pairs if p[0] != AV_FLAGS] + [(AV_FLAGS, struct.pack("<I", 2))]
    if av_edit:
        pairs = av_edit(pairs)
    temp = b"\x01\x01" + b"\0" * 6 + ts + cc + b"\0" * 4 + av_pack(pairs) + b"\0" * 4
    if blob_edit:
        temp = blob_edit(temp)
    proof = hmac_md5(key, chal.server_challenge + temp)
    nt = proof + temp
    lmr = (hmac_md5(key, chal.server_challenge + cc) + cc) if lm else b""
    base_key = hmac_md5(key, proof)
    enc_key = b""
    exported = base_key
    if key_exch:
        exported = os.urandom(16)
        enc_key = rc4(base_key, exported)
    if nt_override is not None:
        nt = nt_override
    if lm_override is not None:
        lmr = lm_override
    payloads = [("lm", lmr), ("nt", nt), ("domain", _enc(domain, unicode)),
                ("user", _enc(user, unicode)), ("workstation", _enc(workstation, unicode)),
                ("enc_key", enc_key)]
    descs, body = {}, b""
    head = bytearray(SIG + struct.pack("<I", 3))
    hdr = 88 if mic else 64 + (8 if version is not None else 0)
    start = payload_start if payload_start is not None else hdr
    for name, data in payloads:
        descs[name] = (len(data), start + len(body) if data else 0)
        body += data
    for name in ("lm", "nt", "domain", "user", "workstation", "enc_key"):
        ln, off = descs[name]
        head += struct.pack("<HHI", ln, ln, off)
    head += struct.pack("<I", flags)
    if version is not None:
        head += version
    head = head.ljust(hdr, b"\0")
    msg = bytearray(head.ljust(start, b"\0"))
    msg[start:start + len(body)] = body  # may overlap the header (row 53 tests)
    msg += trailer
    if mic:
        m = hmac_md5(exported, (negotiate or b"") + chal.raw + bytes(msg))
        msg[72:88] = m
    return bytes(msg)


def get_field(msg, name, t1=False):
    at = (T1_FIELDS if t1 else T3_FIELDS)[name]
    ln, mx, off = struct.unpack_from("<HHI", msg, at)
    return ln, mx, off


def set_field(msg, name, length=None, offset=None, maxlen=None, t1=False):
    """Rewrites one field descriptor of a NEGOTIATE (t1) or AUTHENTICATE."""
    at = (T1_FIELDS if t1 else T3_FIELDS)[name]
    ln, mx, off = struct.unpack_from("<HHI", msg, at)
    out = bytearray(msg)
    struct.pack_into("<HHI", out, at, ln if length is None else length,
                     (mx if length is None else length) if maxlen is None else maxlen,
                     off if offset is None else offset)
    return bytes(out)


def set_flags(msg, flags, t1=False):
    out = bytearray(msg)
    struct.pack_into("<I", out, 12 if t1 else 60, flags)
    return bytes(out)


def challenge_from(resp, scheme="NTLM"):
    """The Challenge in a continuation 407 (exactly one Proxy-Authenticate)."""
    values = resp.header_all("proxy-authenticate")
    assert resp.status == 407, resp
    assert len(values) == 1, "continuation 407 must carry only the scheme in progress: %r" % values
    name, _, tok = values[0].partition(" ")
    assert name == scheme, "expected %s <token>, got %r" % (scheme, values[0])
    return Challenge(base64.b64decode(tok, validate=True))


def offered(resp):
    """The schemes of a 407's Proxy-Authenticate lines, in order (lower case)."""
    return [v.split(" ", 1)[0].lower() for v in resp.header_all("proxy-authenticate")]


def is_fresh_407(resp, schemes=None):
    """A fresh 407: every offered scheme, no continuation token."""
    if resp.status != 407:
        return False
    vals = resp.header_all("proxy-authenticate")
    for v in vals:
        name, _, rest = v.partition(" ")
        if name.lower() in ("ntlm", "negotiate") and rest.strip():
            return False
    if schemes is not None and offered(resp) != list(schemes):
        return False
    return bool(vals)


def ntlm_legs(c, url, user, password, domain="", scheme="NTLM", neg=None, headers=(),
              method="GET", **kw):
    """Type 1 -> 407 + Type 2 -> Type 3 on RawClient c. Returns (final response,
    Challenge, type3 bytes)."""
    t1 = neg if neg is not None else negotiate_msg()
    r1 = c.request(get_request(url, [pa("%s %s" % (scheme, b64(t1)))] + list(headers),
                               method=method))
    chal = challenge_from(r1, scheme)
    t3 = authenticate_msg(chal, user, password, domain, negotiate=t1, **kw)
    r2 = c.request(get_request(url, [pa("%s %s" % (scheme, b64(t3)))] + list(headers),
                               method=method))
    return r2, chal, t3


def type1_leg(c, url, scheme="NTLM", neg=None, headers=()):
    t1 = neg if neg is not None else negotiate_msg()
    r1 = c.request(get_request(url, [pa("%s %s" % (scheme, b64(t1)))] + list(headers)))
    return challenge_from(r1, scheme), t1


# ----------------------------------------------------------------------------
# Client code that needs MD4 (requests_ntlm, ntlm_auth) runs in a subprocess
# with OpenSSL's legacy provider enabled through a private openssl.cnf.

PYTHON = "/usr/bin/python3"

_OPENSSL_CNF = """openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
legacy = legacy_sect
[default_sect]
activate = 1
[legacy_sect]
activate = 1
"""


def openssl_legacy_env(directory):
    cnf = pathlib.Path(directory) / "openssl-legacy.cnf"
    cnf.write_text(_OPENSSL_CNF)
    env = sanitizer_env()
    env["OPENSSL_CONF"] = str(cnf)
    return env


@pytest.fixture
def legacy_ssl_env(tmp_path):
    d = tmp_path / "openssl"
    d.mkdir(exist_ok=True)
    return openssl_legacy_env(d)


def run_python(code, env, *args, timeout=30):
    """Runs Debian's python3 -c code args...; returns CompletedProcess (text)."""
    return subprocess.run([PYTHON, "-c", code, *[str(a) for a in args]], env=env,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)

# ----------------------------------------------------------------------------
# Real third-party NTLM clients (need MD4: run with openssl_legacy_env).

_NTLM_AUTH_ORACLE = r"""
import base64, sys
from ntlm_auth.ntlm import NtlmContext
user, pw, dom, ws = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] or None
ctx = NtlmContext(user, pw, domain=dom, workstation=ws, ntlm_compatibility=3)
print(base64.b64encode(ctx.step()).decode(), flush=True)
line = sys.stdin.readline().strip()
print(base64.b64encode(ctx.step(base64.b64decode(line))).decode(), flush=True)
"""


class NtlmAuthClient:
    """python3-ntlm-auth's NtlmContext in a subprocess, used as a message
    oracle: negotiate() -> Type 1 (base64), authenticate(type2_b64) -> Type 3."""

    def __init__(self, env, user, password, domain="", workstation="ORACLE"):
        self.proc = subprocess.Popen([PYTHON, "-c", _NTLM_AUTH_ORACLE, user, password, domain,
                                      workstation], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def _line(self):
        line = self.proc.stdout.readline().strip()
        if not line:
            self.proc.kill()
            raise AssertionError("ntlm_auth oracle failed: %s" % self.proc.stderr.read())
        return line

    def negotiate(self):
        return self._line()

    def authenticate(self, type2_b64):
        self.proc.stdin.write(type2_b64 + "\n")
        self.proc.stdin.flush()
        return self._line()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


REQUESTS_NTLM_SCRIPT = r"""
import json, sys
import requests
from requests_ntlm import HttpNtlmAuth
proxy, user, pw = sys.argv[1:4]
s = requests.Session()
s.trust_env = False
s.proxies = {"http": proxy}
s.auth = HttpNtlmAuth(user, pw)
out = []
for url in sys.argv[4:]:
    r = s.get(url, timeout=10)
    out.append({"status": r.status_code, "body": r.text,
                "history": [h.status_code for h in r.history],
                "proxy_authenticate": [h.headers.get("proxy-authenticate") for h in r.history]})
print(json.dumps(out))
"""
