"""The whole integration stack in one object, for the long-running tools
(tests/tools/chaos.py, tests/tools/soak.py) and the tests that drive them:
a throwaway KDC and winbindd (tests/integration/peers), an origin and a TCP
echo server (tests/integration/harness/origin.py) and one authgate with
Negotiate, NTLM and Basic and a status socket, started exactly as the
integration tests start them (harness/gateway.py: readiness by sd_notify,
sanitizer reports checked at stop).

    with Stack(workdir, binary) as st:
        st.gw          the Gateway (harness.gateway.Gateway)
        st.origin      harness.origin.OriginServer
        st.echo        harness.origin.EchoServer (CONNECT target)
        st.kdc, st.wb  the peers
        st.users       {user: password}, the same in the KDC, winbindd and the
                       local user file
        st.stats()     the `stats` counters; st.sessions() the `sessions` rows
        st.proc_sample()  rss_kib, fds, threads of the daemon from /proc

The local user file holds the same users and passwords as winbindd, so an NTLM
or Basic client works whichever backend a reload selected (only the reported
domain differs).
"""

import os
import pathlib
import shutil
import sys

HERE = pathlib.Path(__file__).resolve().parent
INTEG = HERE.parent / "integration"
if str(INTEG) not in sys.path:
    sys.path.insert(0, str(INTEG))

from harness.auth import IDENTITY_HEADER, write_user_file  # noqa: E402
from harness.ctl_client import ctl, query, short_tmpdir, stats  # noqa: E402
from harness.gateway import Gateway, authgate_bin, sanitizer_env  # noqa: E402,F401 (authgate_bin: for the tools)
from harness.origin import EchoServer, OriginServer  # noqa: E402
from peers.kdc import Kdc  # noqa: E402
from peers.winbind import Winbind  # noqa: E402

LSAN_SUPP = INTEG.parent / "lsan.supp"


def proc_sample(pid):
    """{rss_kib, fds, threads} of a process, from /proc."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k == "VmRSS":
                out["rss_kib"] = int(v.split()[0])
            elif k == "Threads":
                out["threads"] = int(v.split()[0])
    out["fds"] = len(os.listdir("/proc/%d/fd" % pid))
    return out


class Stack:
    def __init__(self, workdir, binary=None, ntlm_backend="winbind", basic_backend="winbind",
                 gateway_options=None, preload=None):
        """preload: a library preloaded into the daemon before the others
        (tests/tools/uvguard.c)."""
        self.workdir = pathlib.Path(workdir)
        self.preload = preload
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.binary = binary
        self.ntlm_backend = ntlm_backend
        self.basic_backend = basic_backend
        self.extra = dict(gateway_options or {})
        self.kdc = self.wb = self.origin = self.echo = self.gw = None
        self.ctl_dir = None

    # -- lifecycle -------------------------------------------------------------

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close(check=False)
            raise
        return self

    def __exit__(self, exc_type, *exc):
        self.close(check=exc_type is None)

    def start(self):
        self.kdc = Kdc()
        self.kdc.__enter__()
        self.wb = Winbind()
        self.wb.__enter__()
        self.users = dict(self.wb.users)
        self.user_file = write_user_file(self.workdir / "users", self.users)
        self.origin = OriginServer().start()
        self.echo = EchoServer().start()
        self.ctl_dir = short_tmpdir()
        self.gw = Gateway(self.workdir / "gw", self.options())
        env = dict(os.environ, **self.kdc.env)
        env.setdefault("LSAN_OPTIONS",
                       "suppressions=%s:print_suppressions=0:exitcode=88" % LSAN_SUPP)
        self.gw.env = self.wb.gateway_env(sanitizer_env(env), binary=self.gw.binary)
        if self.preload:
            self.gw.env["LD_PRELOAD"] = " ".join([str(self.preload)] + [
                p for p in self.gw.env.get("LD_PRELOAD", "").split() if p])
        self.gw.start(prefix=self.wb.client_prefix())
        return self

    def options(self, **over):
        o = {
            "auth_schemes": "negotiate ntlm basic",
            "ntlm_backend": self.ntlm_backend,
            "basic_backend": self.basic_backend,
            "user_file": str(self.user_file),
            "identity_header": IDENTITY_HEADER,
            "ntlm_domain": "AUTHGATE",
            "proxy_host": "localhost",
            "keytab": self.kdc.keytab,
            "rcache_dir": self.kdc.rcache_dir,
            "status_socket": os.path.join(str(self.ctl_dir), "ctl.sock"),
            "connect_ports": [self.echo.port],
            "handshake_timeout": "5s",
            "head_timeout": "5s",
            "upstream_idle_timeout": "5s",
            "shutdown_timeout": "5s",
            # chaos and soak abandon handshakes and reuse few users from one
            # address: the failure throttle is tested elsewhere.
            "fail_max_per_user_addr": 100000,
            "fail_max_per_user": 100000,
            "fail_max_per_addr": 100000,
        }
        o.update(self.extra)
        o.update(over)
        return o

    def close(self, check=True):
        """Stops everything; with check, the gateway's stop() asserts a clean
        exit (status 0 after uv_loop_close) and no sanitizer report."""
        try:
            if self.gw is not None and self.gw.proc is not None:
                if check:
                    self.gw.stop()
                self.gw.kill()
        finally:
            for p in (self.origin, self.echo):
                if p is not None:
                    p.stop()
            if self.wb is not None:
                self.wb.__exit__(None, None, None)
            if self.kdc is not None:
                self.kdc.__exit__(None, None, None)
            if self.ctl_dir is not None:
                shutil.rmtree(self.ctl_dir, ignore_errors=True)

    # -- observation -----------------------------------------------------------

    @property
    def sock(self):
        return self.gw.options["status_socket"]

    def stats(self):
        return stats(self.gw)

    def sessions(self):
        return [r for r in query(self.gw, "sessions") if "id" in r]

    def ctl(self, *args):
        return ctl(self.sock, *args)

    def proc_sample(self):
        return proc_sample(self.gw.proc.pid)


# -- traffic -------------------------------------------------------------------
# One complete, well-formed exchange per function, on a fresh connection; each
# returns the identity the origin saw (or "tunnel" / "bytes") and raises on
# anything unexpected. Used by the soak (the mix) and by the chaos client (its
# invariant probe).

import base64  # noqa: E402
import json  # noqa: E402

from harness.ntlm_client import basic, ntlm_legs, pa  # noqa: E402
from harness.rawhttp import RawClient, get_request  # noqa: E402


class Unexpected(AssertionError):
    pass


def _identity(resp):
    if resp.status != 200:
        raise Unexpected("status %s: %r" % (resp.status, resp.raw[:300]))
    hdrs = json.loads(resp.body)["headers"]
    ids = [v for n, v in hdrs if n.lower() == IDENTITY_HEADER.lower()]
    if len(ids) != 1:
        raise Unexpected("identity headers %r" % ids)
    return ids[0]


def _expect_user(ident, user):
    if ident.split("\\")[-1].split("@")[0].lower() != user:
        raise Unexpected("identity %r for user %r" % (ident, user))
    return ident


def negotiate_token():
    """A fresh SPNEGO token for HTTP@localhost from the ccache in
    os.environ (set the client env of Kdc.client_env first)."""
    import gssapi
    ctx = gssapi.SecurityContext(name=gssapi.Name("HTTP@localhost",
                                                  gssapi.NameType.hostbased_service),
                                 usage="initiate",
                                 mech=gssapi.OID.from_int_seq("1.3.6.1.5.5.2"))
    return ctx.step()


def op_negotiate(st, user="alice", timeout=10):
    with RawClient(st.gw.host, st.gw.port, timeout=timeout) as c:
        tok = base64.b64encode(negotiate_token()).decode()
        r = c.request(get_request(st.origin.url("/echo/neg"), [pa("Negotiate " + tok)]))
        return _expect_user(_identity(r), user)


def op_ntlm(st, user, timeout=10):
    with RawClient(st.gw.host, st.gw.port, timeout=timeout) as c:
        r, _, _ = ntlm_legs(c, st.origin.url("/echo/ntlm"), user, st.users[user])
        ident = _expect_user(_identity(r), user)
        # the identity stays on the connection for a second request
        r = c.request(get_request(st.origin.url("/echo/ntlm2")))
        if _identity(r) != ident:
            raise Unexpected("identity changed on the connection")
        return ident


def op_basic(st, user, timeout=10):
    with RawClient(st.gw.host, st.gw.port, timeout=timeout) as c:
        r = c.request(get_request(st.origin.url("/echo/basic"),
                                  [pa(basic("AUTHGATE\\" + user, st.users[user]))]))
        return _expect_user(_identity(r), user)


def op_connect(st, user, nbytes=16384, timeout=10):
    with RawClient(st.gw.host, st.gw.port, timeout=timeout) as c:
        auth = "127.0.0.1:%d" % st.echo.port
        r = c.request(("CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n"
                       % (auth, auth, basic("AUTHGATE\\" + user, st.users[user]))).encode(),
                      method="CONNECT")
        if r.status != 200:
            raise Unexpected("CONNECT status %s" % r.status)
        data = os.urandom(nbytes)
        c.send(data)
        back = c.read_exact(nbytes)
        if back != data:
            raise Unexpected("tunnel echoed other bytes")
        return "tunnel"


def op_big(st, user, size=1 << 20, timeout=20):
    with RawClient(st.gw.host, st.gw.port, timeout=timeout) as c:
        r = c.request(get_request(st.origin.url("/size/%d" % size),
                                  [pa(basic("AUTHGATE\\" + user, st.users[user]))]))
        if r.status != 200 or len(r.body) != size:
            raise Unexpected("1 MiB: status %s, %d bytes" % (r.status, len(r.body)))
        return "bytes"
