"""No allocation on the path of a keep-alive request that needs no new
upstream connection (issue 16): the daemon runs under an LD_PRELOAD
allocation counter (tests/tools/malloc_count.c, built here), and N
keep-alive requests after a warm-up must not move it."""

import os
import pathlib
import shutil
import signal
import subprocess

import pytest

from harness.accesslog import parse_access
from harness.ctl_client import sockdir, stats  # noqa: F401 (fixture)
from harness.rawhttp import get_request
from harness.tools import wait_until

ROOT = pathlib.Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    os.environ.get("AG_SANITIZED") == "1",
    reason="ASan interposes malloc itself: the counter runs on the plain build")


@pytest.fixture(scope="module")
def malloc_count(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler for tests/tools/malloc_count.c")
    out = tmp_path_factory.mktemp("malloc_count") / "malloc_count.so"
    subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(out),
                    str(ROOT / "tests" / "tools" / "malloc_count.c")], check=True, timeout=60)
    return out


def counter_report(gw, path):
    """The counter's report lines, read through SIGUSR2 (the tool writes
    path): "allocs N", "live BYTES", then the busiest callers."""
    if path.exists():
        path.unlink()
    gw.signal(signal.SIGUSR2)
    wait_until(lambda: path.exists() and path.read_text().endswith("\n"), 5.0,
               "the allocation counter's report")
    return path.read_text().splitlines()


def allocs(gw, path):
    """The counter's total of allocations."""
    return int(counter_report(gw, path)[0].split()[1])


def counted_gateway(make_gateway, malloc_count, sockdir, **options):
    """A gateway under the allocation counter, with a status socket; and
    the path of the counter's report."""
    gw = make_gateway(start=False, status_socket=str(sockdir / "ctl.sock"), **options)
    report = gw.workdir / "allocs.txt"
    gw.env = dict(gw.env, LD_PRELOAD=str(malloc_count), AG_MALLOC_COUNT_FILE=str(report))
    gw.start()
    return gw, report


# The buffers one connection takes back after an idle release (inbuf, head
# text and fields, two staging buffers, upstream head, log URL, the
# upstream's head): what a request may allocate after a release.
REALLOC_AFTER_RELEASE = 12


@pytest.mark.parametrize("log_buffer", ["64k", "0"])
def test_keepalive_request_allocates_nothing(make_gateway, origin, malloc_count, sockdir,
                                             log_buffer):
    gw, report = counted_gateway(make_gateway, malloc_count, sockdir, log_buffer=log_buffer)
    c = gw.client()
    # warm-up: the connection's buffers reach their working sizes, the
    # upstream connection is open and pooled
    for i in range(20):
        assert c.request(get_request(origin.url("/warm/%d" % i))).status == 200
    released = stats(gw)["idle_released"]
    before = allocs(gw, report)
    n = 200
    for i in range(n):
        r = c.request(get_request(origin.url("/ka/%d?q=%d" % (i, i))))
        assert r.status == 200
    after = allocs(gw, report)
    # A pause of AG_IDLE_RELEASE_MS (1 s) on a loaded machine releases the
    # buffers and the next request takes them again: only that may allocate.
    pauses = stats(gw)["idle_released"] - released
    assert after - before <= REALLOC_AFTER_RELEASE * pauses, \
        "%d allocations over %d keep-alive requests (%d idle releases)" % (after - before, n,
                                                                          pauses)
    gw.wait_access_log(20 + n)
    # the counter counts: a new connection allocates
    c2 = gw.client()
    assert c2.request(get_request(origin.url("/new"))).status == 200
    assert allocs(gw, report) > after


def test_idle_connection_gives_buffers_back(make_gateway, origin, malloc_count, sockdir):
    """After AG_IDLE_RELEASE_MS idle, a keep-alive connection frees its
    buffers (idle_released); it still serves, and its next request takes
    buffers again (the allocation counter moves), with no state kept from
    before: the response is the new request's."""
    gw, report = counted_gateway(make_gateway, malloc_count, sockdir)
    c = gw.client()
    for i in range(3):
        assert c.request(get_request(origin.url("/before/%d" % i))).status == 200
    wait_until(lambda: stats(gw).get("idle_released", 0) >= 1, 5.0, "idle_released")
    before = allocs(gw, report)
    r = c.request(get_request(origin.url("/after")))
    assert r.status == 200
    assert allocs(gw, report) > before
    lines = gw.wait_access_log(4)
    assert parse_access(lines[-1])["url"] == origin.url("/after")


def heap_live(gw, path):
    """Heap bytes the daemon holds now (the counter's "live" line)."""
    return int(counter_report(gw, path)[1].split()[1])


# Heap one idle keep-alive client may hold once its buffers went back
# (AG_IDLE_RELEASE_MS), without authentication (as scripts/bench measures
# it): its struct conn (AG_CONN_STRUCT_MAX, 1,600 bytes today) and the
# allocator's header, nothing else. Issue 16 asks for under 2 KiB per idle
# connection; the splice relay, the TLS layer, the shutdown request and a
# parent's failure reason are made on first use instead. (With auth_schemes,
# the connection's session row adds its 728 bytes.)
IDLE_CONN_HEAP_MAX = 1700


def test_idle_connection_footprint(make_gateway, origin, malloc_count, sockdir):
    """N keep-alive clients, each after one request whose upstream closed
    (/close: no pooled upstream stays attached), hold at most
    IDLE_CONN_HEAP_MAX bytes of heap each once their buffers are released:
    measured as what their close gives back (caches that outlive them,
    such as the resolver's, are not theirs)."""
    gw, report = counted_gateway(make_gateway, malloc_count, sockdir, auth_schemes="none")
    n = 100
    clients = [gw.client() for _ in range(n)]
    for c in clients:
        assert c.request(get_request(origin.url("/close"))).status == 200
    wait_until(lambda: stats(gw).get("idle_released", 0) >= n, 10.0,
               "every connection's idle release")
    # they are idle, not gone: each still serves (and is released again)
    for c in (clients[0], clients[-1]):
        assert c.request(get_request(origin.url("/close"))).status == 200
    wait_until(lambda: stats(gw)["idle_released"] >= n + 2, 10.0, "the idle release")
    held = heap_live(gw, report)
    for c in clients:
        c.close()
    # "connections" drops once a connection's memory is freed
    wait_until(lambda: stats(gw)["connections"] == 0, 10.0, "every connection closed")
    per_conn = (held - heap_live(gw, report)) / n
    assert 0 < per_conn <= IDLE_CONN_HEAP_MAX, "%.0f bytes of heap per idle connection" % per_conn

