"""Gateways for the end-to-end authentication tests (test_auth_*.py), with
the local user file or a real winbindd (peers/) behind Basic and NTLM.

  USERS, IDENTITY_HEADER       the local users and the identity header the
                               gateways add
  write_user_file              the local user file (user:NTHASH)
  ident                        the identity header values an /echo saw
  AuthEnv                      starts gateways for one backend, see the
                               auth_env fixture

Fixtures (import them into a test module): auth_env (parametrized local /
winbind through the `backend` fixture), local_env, winbind_env.
The winbind ones need peers.fixtures (pytest_plugins = ["peers.fixtures"]).
The client side is in ntlm_client.py, the status socket in ctl_client.py.
"""

import json
import os
import pathlib
import shutil

import pytest

from .ctl_client import short_tmpdir, status
from .gateway import GatewayError, sanitizer_env
from .ntlm_client import nt_hash
from .procs import threads_waiting_on_socket
from .tools import assert_error_response, wait_until

USERS = {"alice": "alice-Pass1", "bob": "bob-Pass2", "carol": "carol-Pass3"}
IDENTITY_HEADER = "X-Authenticated-User"


def write_user_file(path, users, comment=None):
    """users: {name: password} (name may be "DOMAIN\\user")."""
    lines = ["# written by the auth tests" if comment is None else comment]
    lines += ["%s:%s" % (u, nt_hash(p).hex()) for u, p in users.items()]
    path = pathlib.Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


def ident(resp):
    """The identity header values the origin's /echo saw (a 200 required)."""
    assert resp.status == 200, resp
    j = json.loads(resp.body)
    return [v for n, v in j["headers"] if n.lower() == IDENTITY_HEADER.lower()]


def verification_times_out(gw, wb, c, request):
    """A verification that outlives handshake_timeout: with winbindd (wb)
    paused, request on c must get 503 and a closed connection, logged as
    auth_backend_timeout; then winbindd resumes and the hung verification
    is waited for."""
    wb.pause()
    try:
        r = c.request(request, timeout=8)
        assert_error_response(r, 503)
        assert c.is_closed(2.0)
        gw.wait_log(r"event=auth_backend_timeout")
    finally:
        wb.resume()
    wait_until(lambda: not threads_waiting_on_socket(gw.proc.pid), 10,
               "the hung verification to return")


def close_during_verification(gw, wb, c, request):
    """Row 77 (a client closes while its verification runs): with winbindd
    (wb) paused, sends request on c, closes c once a pool thread is blocked
    on winbindd, resumes winbindd, and waits until the detached job has
    returned and nothing is left of the connection (no connection, no
    handshake in the status). -> the closed connection's id (its result must
    go nowhere). gw needs ctl=True and log_level debug."""
    wb.pause()
    try:
        c.send(request)
        wait_until(lambda: threads_waiting_on_socket(gw.proc.pid), 10,
                   "a pool thread blocked on the paused winbindd")
        c.close()
        m = gw.wait_log(r"conn=(\d+) event=close reason=client_(eof|error)")
        conn_id = m.group(1)
    finally:
        wb.resume()
    wait_until(lambda: not threads_waiting_on_socket(gw.proc.pid), 10,
               "the detached verification to return")
    wait_until(lambda: status(gw)["jobs_in_flight"] == "0", 5, "jobs_in_flight 0")
    st = status(gw)
    assert (st["connections"], st["handshakes"]) == ("0", "0"), st
    return conn_id


class AuthEnv:
    """One backend ("local" or "winbind") and the gateways of a test.

    make(schemes="basic ntlm", **options) starts a gateway whose Basic and
    NTLM go to this backend (identity_header X-Authenticated-User,
    handshake_timeout 3s unless overridden)."""

    def __init__(self, backend, make_gateway, workdir, winbind=None):
        self.backend = backend
        self.make_gateway = make_gateway
        self.winbind = winbind
        self.gateways = []
        self._ctl_dirs = []
        self.users = dict(winbind.users if winbind else USERS)
        self.user_file = pathlib.Path(workdir) / "users"
        if backend == "local":
            write_user_file(self.user_file, self.users)
        else:
            self.user_file.write_text("")

    @property
    def domain(self):
        """What the backend reports as the user's domain ('' for local)."""
        return self.winbind.domain if self.backend == "winbind" else ""

    def identity(self, user):
        """The identity the gateway should report for user (as typed, no domain)."""
        return "%s\\%s" % (self.domain, user) if self.domain else user

    def options(self, schemes="ntlm basic", **opts):
        o = {
            "auth_schemes": schemes,
            "basic_backend": self.backend,
            "ntlm_backend": self.backend,
            "user_file": str(self.user_file) if self.backend == "local" else "none",
            "identity_header": IDENTITY_HEADER,
            "handshake_timeout": "3s",
            "ntlm_domain": "AUTHGATE",
        }
        o.update(opts)
        return o

    def qualified(self, user):
        """DOMAIN\\user as a Basic client would type it (winbind backend)."""
        return "%s\\%s" % (self.domain, user)

    def make(self, schemes="ntlm basic", ctl=False, env=None, **opts):
        """ctl=True: a status socket, for ctl_client.stats(gw) and friends.
        env: more environment for the gateway (a Kdc's env for Negotiate next
        to this backend)."""
        if ctl:
            d = short_tmpdir()
            self._ctl_dirs.append(d)
            opts.setdefault("status_socket", os.path.join(d, "ctl.sock"))
        gw = self.make_gateway(start=False, **self.options(schemes, **opts))
        self.gateways.append(gw)
        if env:
            gw.env = sanitizer_env({**gw.env, **env})
        prefix = ()
        if self.winbind is not None:
            gw.env = self.winbind.gateway_env(gw.env, binary=gw.binary)
            prefix = self.winbind.client_prefix()
        return gw.start(prefix=prefix)

    def finish(self):
        """Stops the gateways; fails the test on a teardown error (an exit
        status, a sanitizer report)."""
        errors = []
        try:
            for gw in self.gateways:
                if gw.proc is None or gw._stopped:
                    continue
                try:
                    gw.stop()
                except GatewayError as e:
                    errors.append(str(e))
                finally:
                    gw.kill()
        finally:
            for d in self._ctl_dirs:
                shutil.rmtree(d, ignore_errors=True)
        if errors:
            pytest.fail("gateway teardown: " + "\n".join(errors), pytrace=False)


def _auth_env(request, backend, make_gateway, tmp_path, wb):
    env = AuthEnv(backend, make_gateway, tmp_path, wb)
    request.addfinalizer(env.finish)
    return env


@pytest.fixture(params=["local", "winbind"])
def backend(request):
    return request.param


@pytest.fixture
def auth_env(backend, make_gateway, tmp_path, request):
    wb = request.getfixturevalue("winbind") if backend == "winbind" else None
    return _auth_env(request, backend, make_gateway, tmp_path, wb)


@pytest.fixture
def local_env(make_gateway, tmp_path, request):
    return _auth_env(request, "local", make_gateway, tmp_path, None)


@pytest.fixture
def winbind_env(make_gateway, tmp_path, request):
    return _auth_env(request, "winbind", make_gateway, tmp_path,
                     request.getfixturevalue("winbind"))
