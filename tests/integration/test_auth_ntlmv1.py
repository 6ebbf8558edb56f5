"""ntlm_allow_v1: legacy NTLM2-session (NTLMv1 with ESS) responses through a
real winbindd whose Samba permits them, with the challenge derived as
MS-NLMP 3.3.1 says; refused by default, and refused with the local file.

The client side is computed here (DESL over the NT hash, checked against the
MS-NLMP 4.2.3 vector first) and sent with the harness's byte-level NTLM
client, since curl and requests_ntlm always answer our challenge with NTLMv2.
"""

import hashlib
import os
import warnings

import pytest

from harness.auth import USERS, AuthEnv
from harness.auth import local_env  # noqa: F401 (fixtures)
from harness.ntlm_client import authenticate_msg, b64, is_fresh_407, nt_hash, pa, type1_leg
from harness.rawhttp import get_request
from peers.winbind import Winbind

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # TripleDES is "decrepit" in newer releases
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def _des_key(k7):
    b = int.from_bytes(k7, "big")
    return bytes(((b >> (49 - 7 * i)) & 0x7F) << 1 for i in range(8))


def desl(key16, data8):
    """MS-NLMP DESL(): three single-DES blocks under the 16-byte key's thirds."""
    k = key16 + b"\0" * 5
    out = b""
    for i in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            e = Cipher(algorithms.TripleDES(_des_key(k[7 * i:7 * i + 7]) * 3), modes.ECB()).encryptor()
        out += e.update(data8) + e.finalize()
    return out


def ntlm2_session_response(password, server_chal, client_chal):
    derived = hashlib.md5(server_chal + client_chal).digest()[:8]
    return desl(nt_hash(password), derived), client_chal + b"\0" * 16


def test_client_side_matches_ms_nlmp_4_2_3():
    nt, lm = ntlm2_session_response("Password", bytes.fromhex("0123456789abcdef"),
                                    bytes.fromhex("aaaaaaaaaaaaaaaa"))
    assert nt.hex() == "7537f803ae367128ca458204bde7caf81e97ed2683267232"
    assert lm.hex() == "aaaaaaaaaaaaaaaa" + "00" * 16


class WinbindNtlmv1(Winbind):
    """The test winbindd with Samba's NTLMv1 policy relaxed, as a site that
    still serves legacy clients has it."""

    def _write_smb_conf(self):
        super()._write_smb_conf()
        with open(self.smb_conf, "a") as f:
            f.write("    ntlm auth = ntlmv1-permitted\n")


@pytest.fixture(scope="module")
def wb_v1():
    with WinbindNtlmv1() as w:
        yield w


def _env(request, make_gateway, tmp_path, wb):
    env = AuthEnv("winbind" if wb else "local", make_gateway, tmp_path, wb)
    request.addfinalizer(env.finish)
    return env


def _ntlm2_leg(c, url, user, password):
    chal, t1 = type1_leg(c, url)
    nt, lm = ntlm2_session_response(password, chal.server_challenge, os.urandom(8))
    t3 = authenticate_msg(chal, user, password, negotiate=t1, nt_override=nt, lm_override=lm)
    return c.request(get_request(url, [pa("NTLM " + b64(t3))]))


def test_ntlm2_session_accepted_through_winbind_when_enabled(request, make_gateway, tmp_path,
                                                             wb_v1, origin):
    env = _env(request, make_gateway, tmp_path, wb_v1)
    gw = env.make("ntlm", ntlm_allow_v1="on")
    c = gw.client()
    r = _ntlm2_leg(c, origin.url("/echo"), "alice", USERS["alice"])
    assert r.status == 200, (r, gw.logs_tail())
    (req,) = origin.wait_requests(1)
    assert req.header("x-authenticated-user").lower().endswith("\\alice")
    # the connection is authenticated: no header needed next
    assert c.request(get_request(origin.url("/again"))).status == 200


def test_ntlm2_session_wrong_password_refused(request, make_gateway, tmp_path, wb_v1, origin):
    env = _env(request, make_gateway, tmp_path, wb_v1)
    gw = env.make("ntlm", ntlm_allow_v1="on")
    r = _ntlm2_leg(gw.client(), origin.url("/echo"), "alice", "not-her-password")
    assert is_fresh_407(r), r
    assert origin.all_requests == []


def test_ntlm2_session_refused_by_default(request, make_gateway, tmp_path, wb_v1, origin):
    env = _env(request, make_gateway, tmp_path, wb_v1)
    gw = env.make("ntlm")
    r = _ntlm2_leg(gw.client(), origin.url("/echo"), "alice", USERS["alice"])
    assert is_fresh_407(r), r
    assert origin.all_requests == []
    gw.wait_log(r"event=auth_refused scheme=NTLM .*NTLMv1, LM or anonymous refused")


def test_ntlm2_session_never_verified_by_the_local_file(local_env, origin):
    gw = local_env.make("ntlm", ntlm_allow_v1="on")
    r = _ntlm2_leg(gw.client(), origin.url("/echo"), "alice", USERS["alice"])
    assert is_fresh_407(r), r
    assert origin.all_requests == []
