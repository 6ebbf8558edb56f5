"""libwbclient through ctypes, as a separate process: what a gateway linked
against libwbclient sees.  Run by Winbind.authenticate()/lookup_name() with
Winbind.gateway_env() and client_prefix(); prints one JSON object.

    wbc_probe.py auth USER PASSWORD [DOMAIN]
    wbc_probe.py lookup NAME [DOMAIN]
"""

import ctypes
import ctypes.util
import json
import sys

WBC_MAXSUBAUTHS = 15
WBC_AUTH_USER_LEVEL_PLAIN = 1
WBC_SID_STRING_BUFLEN = 15 * 11 + 25


class DomainSid(ctypes.Structure):
    _fields_ = [("sid_rev_num", ctypes.c_uint8), ("num_auths", ctypes.c_uint8),
                ("id_auth", ctypes.c_uint8 * 6), ("sub_auths", ctypes.c_uint32 * WBC_MAXSUBAUTHS)]


class SidWithAttr(ctypes.Structure):
    _fields_ = [("sid", DomainSid), ("attributes", ctypes.c_uint32)]


class _Hash(ctypes.Structure):
    _fields_ = [("nt_hash", ctypes.c_uint8 * 16), ("lm_hash", ctypes.c_uint8 * 16)]


class _Response(ctypes.Structure):
    _fields_ = [("challenge", ctypes.c_uint8 * 8), ("nt_length", ctypes.c_uint32),
                ("nt_data", ctypes.c_void_p), ("lm_length", ctypes.c_uint32),
                ("lm_data", ctypes.c_void_p)]


class _Blob(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("length", ctypes.c_size_t)]


class _Password(ctypes.Union):
    _fields_ = [("plaintext", ctypes.c_char_p), ("hash", _Hash), ("response", _Response),
                ("pac", _Blob)]


class AuthUserParams(ctypes.Structure):
    _fields_ = [("account_name", ctypes.c_char_p), ("domain_name", ctypes.c_char_p),
                ("workstation_name", ctypes.c_char_p), ("flags", ctypes.c_uint32),
                ("parameter_control", ctypes.c_uint32), ("level", ctypes.c_int),
                ("password", _Password)]


class AuthUserInfo(ctypes.Structure):
    _fields_ = [("user_flags", ctypes.c_uint32),
                ("account_name", ctypes.c_char_p), ("user_principal", ctypes.c_char_p),
                ("full_name", ctypes.c_char_p), ("domain_name", ctypes.c_char_p),
                ("dns_domain_name", ctypes.c_char_p),
                ("acct_flags", ctypes.c_uint32),
                ("user_session_key", ctypes.c_uint8 * 16), ("lm_session_key", ctypes.c_uint8 * 8),
                ("logon_count", ctypes.c_uint16), ("bad_password_count", ctypes.c_uint16),
                ("logon_time", ctypes.c_uint64), ("logoff_time", ctypes.c_uint64),
                ("kickoff_time", ctypes.c_uint64), ("pass_last_set_time", ctypes.c_uint64),
                ("pass_can_change_time", ctypes.c_uint64),
                ("pass_must_change_time", ctypes.c_uint64),
                ("logon_server", ctypes.c_char_p), ("logon_script", ctypes.c_char_p),
                ("profile_path", ctypes.c_char_p), ("home_directory", ctypes.c_char_p),
                ("home_drive", ctypes.c_char_p),
                ("num_sids", ctypes.c_uint32), ("sids", ctypes.POINTER(SidWithAttr))]


class AuthErrorInfo(ctypes.Structure):
    _fields_ = [("nt_status", ctypes.c_uint32), ("nt_string", ctypes.c_char_p),
                ("pam_error", ctypes.c_int32), ("display_string", ctypes.c_char_p),
                ("authoritative", ctypes.c_uint8)]


def _lib():
    lib = ctypes.CDLL(ctypes.util.find_library("wbclient") or "libwbclient.so.0")
    lib.wbcAuthenticateUserEx.argtypes = [ctypes.POINTER(AuthUserParams),
                                          ctypes.POINTER(ctypes.POINTER(AuthUserInfo)),
                                          ctypes.POINTER(ctypes.POINTER(AuthErrorInfo))]
    lib.wbcAuthenticateUserEx.restype = ctypes.c_int
    lib.wbcErrorString.argtypes = [ctypes.c_int]
    lib.wbcErrorString.restype = ctypes.c_char_p
    lib.wbcSidToStringBuf.argtypes = [ctypes.POINTER(DomainSid), ctypes.c_char_p, ctypes.c_int]
    lib.wbcSidToStringBuf.restype = ctypes.c_int
    lib.wbcLookupName.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(DomainSid),
                                  ctypes.POINTER(ctypes.c_int)]
    lib.wbcLookupName.restype = ctypes.c_int
    lib.wbcFreeMemory.argtypes = [ctypes.c_void_p]
    return lib


def _s(b):
    return b.decode() if b is not None else None


def _sid(lib, sid):
    buf = ctypes.create_string_buffer(WBC_SID_STRING_BUFLEN)
    lib.wbcSidToStringBuf(ctypes.byref(sid), buf, len(buf))
    return buf.value.decode()


def auth(user, password, domain=None):
    lib = _lib()
    p = AuthUserParams()
    p.account_name = user.encode()
    p.domain_name = domain.encode() if domain is not None else None
    p.level = WBC_AUTH_USER_LEVEL_PLAIN
    p.password.plaintext = password.encode()
    info = ctypes.POINTER(AuthUserInfo)()
    err = ctypes.POINTER(AuthErrorInfo)()
    r = lib.wbcAuthenticateUserEx(ctypes.byref(p), ctypes.byref(info), ctypes.byref(err))
    out = {"result": _s(lib.wbcErrorString(r)), "ok": r == 0}
    if err:
        out["nt_status"] = err.contents.nt_status
        out["nt_string"] = _s(err.contents.nt_string)
        lib.wbcFreeMemory(err)
    if info:
        i = info.contents
        out["account_name"] = _s(i.account_name)
        out["domain_name"] = _s(i.domain_name)
        out["sids"] = [_sid(lib, i.sids[k].sid) for k in range(i.num_sids)]
        lib.wbcFreeMemory(info)
    return out


def lookup(name, domain=""):
    lib = _lib()
    sid = DomainSid()
    typ = ctypes.c_int()
    r = lib.wbcLookupName(domain.encode(), name.encode(), ctypes.byref(sid), ctypes.byref(typ))
    out = {"result": _s(lib.wbcErrorString(r)), "ok": r == 0}
    if r == 0:
        out["sid"] = _sid(lib, sid)
        out["type"] = typ.value
    return out


def main(argv):
    if len(argv) >= 3 and argv[0] == "auth":
        res = auth(argv[1], argv[2], argv[3] if len(argv) > 3 else None)
    elif len(argv) >= 2 and argv[0] == "lookup":
        res = lookup(argv[1], argv[2] if len(argv) > 2 else "")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
