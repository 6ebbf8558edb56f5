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


def allocs(gw, path):
    """The counter's total, read through SIGUSR2 (the tool writes path)."""
    if path.exists():
        path.unlink()
    gw.signal(signal.SIGUSR2)
    wait_until(lambda: path.exists() and path.read_text().endswith("\n"), 5.0,
               "the allocation counter's report")
    return int(path.read_text().splitlines()[0].split()[1])


@pytest.mark.parametrize("log_buffer", ["64k", "0"])
def test_keepalive_request_allocates_nothing(make_gateway, origin, malloc_count, log_buffer):
    gw = make_gateway(start=False, log_buffer=log_buffer)
    report = gw.workdir / "allocs.txt"
    gw.env = dict(gw.env, LD_PRELOAD=str(malloc_count), AG_MALLOC_COUNT_FILE=str(report))
    gw.start()
    c = gw.client()
    # warm-up: the connection's buffers reach their working sizes, the
    # upstream connection is open and pooled
    for i in range(20):
        assert c.request(get_request(origin.url("/warm/%d" % i))).status == 200
    gw.wait_access_log(20)
    before = allocs(gw, report)
    n = 200
    for i in range(n):
        r = c.request(get_request(origin.url("/ka/%d?q=%d" % (i, i))))
        assert r.status == 200
    gw.wait_access_log(20 + n)
    after = allocs(gw, report)
    assert after - before == 0, "%d allocations over %d keep-alive requests" % (after - before, n)
    # the counter counts: a new connection allocates
    c2 = gw.client()
    assert c2.request(get_request(origin.url("/new"))).status == 200
    assert allocs(gw, report) > after
