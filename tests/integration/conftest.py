"""Fixtures for authgate's end-to-end tests.

  origin        a fresh HTTP/1.1 origin (127.0.0.1 and ::1, same port) per test
  tls_origin    the same behind TLS (self-signed cert made once per session)
  echo_server   a TCP echo server (CONNECT tunnel payloads)
  closed_port   a port that refuses connections
  make_gateway  factory: make_gateway(**options) -> a started Gateway
  gateway       one Gateway with the base options plus those of the test's
                @pytest.mark.gateway_config(name=value, ...) marker

Every gateway is stopped with SIGTERM at teardown; a non-zero exit status, an
exit that takes too long or a sanitizer report fails the test. The process is
always killed in the end.
"""

import os
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from harness.gateway import Gateway, GatewayError, authgate_bin  # noqa: E402
from harness.origin import EchoServer, OriginServer, make_tls_context  # noqa: E402
from harness.rawhttp import RawClient  # noqa: E402
from harness.tools import ClosedPort, make_self_signed  # noqa: E402


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def pytest_report_header(config):
    b = authgate_bin()
    return "authgate binary: %s%s" % (b, "" if b.exists() else " (MISSING)")


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    return make_self_signed(d)


@pytest.fixture
def origin():
    srv = OriginServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def tls_origin(tls_cert):
    srv = OriginServer(ssl_context=make_tls_context(*tls_cert), name="tls-origin").start()
    yield srv
    srv.stop()


@pytest.fixture
def echo_server():
    srv = EchoServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def closed_port():
    p = ClosedPort()
    yield p
    p.close()


class _GatewayHandle(Gateway):
    """A Gateway that tracks the raw clients a test opens to it."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._clients = []

    def client(self, timeout=5.0, host=None, port=None, source=None):
        c = RawClient(host or self.host, port or self.port, timeout=timeout, source=source)
        self._clients.append(c)
        return c

    def close_clients(self):
        for c in self._clients:
            c.close()


@pytest.fixture
def make_gateway(tmp_path, request):
    made = []

    def factory(start=True, **options):
        gw = _GatewayHandle(tmp_path / ("gw%d" % len(made)), options)
        made.append(gw)
        if start:
            gw.start()
        return gw

    yield factory

    errors = []
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for gw in made:
        gw.close_clients()
        try:
            if gw.proc is not None:
                gw.stop()
        except GatewayError as e:
            errors.append(str(e))
        finally:
            gw.kill()
        if failed or os.environ.get("AUTHGATE_SHOW_LOGS"):
            print("=== %s ===\n%s" % (gw.workdir, gw.logs_tail(6000)))
    if errors:
        pytest.fail("gateway teardown: " + "\n".join(errors), pytrace=False)


@pytest.fixture
def gateway(make_gateway, request):
    m = request.node.get_closest_marker("gateway_config")
    return make_gateway(**(m.kwargs if m else {}))
