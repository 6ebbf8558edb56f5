"""Buffered logs (log_buffer, default 64 KiB): lines are byte-for-byte what
line-by-line writing produces, written by size, within AG_LOG_FLUSH_MS (1 s),
on SIGUSR1 and at shutdown; log_buffer 0 writes every line at once.

Whether lines are buffered is read from the kernel, not guessed from timing:
/proc/PID/io syscw counts the daemon's write(2) calls (client, origin and log
writes alike)."""

import os
import re
import signal

from harness.accesslog import parse_access
from harness.ctl_client import stats
from harness.rawhttp import get_request
from harness.tools import wait_until


def write_calls(gw):
    with open("/proc/%d/io" % gw.proc.pid) as f:
        for line in f:
            if line.startswith("syscw:"):
                return int(line.split()[1])
    raise AssertionError("no syscw in /proc/PID/io")


def keepalive_writes(gw, origin, n):
    """write(2) calls the daemon made for n keep-alive requests."""
    c = gw.client()
    assert c.request(get_request(origin.url("/warm"))).status == 200
    gw.wait_access_log(1)   # the warm-up's line is out (timer flush at the latest)
    before = write_calls(gw)
    for i in range(n):
        assert c.request(get_request(origin.url("/k%d" % i))).status == 200
    gw.wait_access_log(n + 1)   # the last line follows the last response
    return write_calls(gw) - before


N = 200


def test_buffered_log_costs_no_write_per_request(make_gateway, origin):
    gw = make_gateway(log_buffer="64k")
    w = keepalive_writes(gw, origin, N)
    # one write to the origin and one to the client per request; the log's
    # own writes: a few (size or age), not one per line
    assert w <= 2 * N + 10, w
    lines = gw.wait_access_log(N + 1)
    assert [parse_access(l)["url"] for l in lines[1:]] == [origin.url("/k%d" % i)
                                                           for i in range(N)]


def test_log_buffer_0_writes_each_line(make_gateway, origin):
    gw = make_gateway(log_buffer="0")
    w = keepalive_writes(gw, origin, N)
    assert w >= 3 * N, w
    # and each line is on disk when the response is
    assert len(gw.access_log) == N + 1


def test_buffered_lines_are_byte_identical(make_gateway, origin):
    """Same requests, buffered and not: the lines differ only in the time
    and duration fields (the formatter of our own writes what printf did)."""
    out = []
    for size in ("64k", "0"):
        gw = make_gateway(log_buffer=size, access_log_format="squid")
        c = gw.client()
        for path in ("/a?x=%01", "/long/" + "p" * 3000, "/missing-404"):
            c.request(get_request(origin.url(path)))
        lines = gw.wait_access_log(3)
        out.append([l.split(None, 2)[2] for l in lines])   # past time and duration
        for l in lines:
            # "%lld.%03d %6llu ": milliseconds in 3 digits, duration 6 wide
            assert re.match(r"^\d+\.\d{3} (?=[ \d]{5}\d )", l), l
        gw.stop()
    assert out[0] == out[1]


def test_buffered_lines_are_written_within_a_second(make_gateway, origin):
    gw = make_gateway(log_buffer="1m")
    c = gw.client()
    assert c.request(get_request(origin.url("/soon"))).status == 200
    # no other line comes to push it out: the timer does, within 1 s
    (line,) = gw.wait_access_log(1, timeout=3.0)
    assert parse_access(line)["url"] == origin.url("/soon")


def test_shutdown_writes_what_is_buffered(make_gateway, origin):
    gw = make_gateway(log_buffer="1m")
    c = gw.client()
    for i in range(5):
        assert c.request(get_request(origin.url("/bye%d" % i))).status == 200
    gw.close_clients()
    gw.stop()
    urls = [parse_access(l)["url"] for l in gw.access_log]
    assert urls == [origin.url("/bye%d" % i) for i in range(5)]
    assert "event=stopped" in gw.error_log


def test_reopen_writes_buffered_lines_to_the_old_file(make_gateway, origin, tmp_path):
    gw = make_gateway(log_buffer="1m", status_socket=str(tmp_path / "ctl.sock"))
    c = gw.client()
    for i in range(3):
        assert c.request(get_request(origin.url("/old%d" % i))).status == 200
    # The response can reach the client before its loop has put the line in
    # the buffer (another thread, preempted in between): the rotation below
    # must come after the three lines, so wait for the daemon's own count.
    wait_until(lambda: stats(gw)["access_log_lines"] >= 3, what="three access-log lines")
    rotated = str(gw.access_log_path) + ".1"
    os.rename(gw.access_log_path, rotated)
    gw.signal(signal.SIGUSR1)
    gw.wait_log("event=logs_reopened", since=0)
    assert c.request(get_request(origin.url("/new"))).status == 200
    (line,) = gw.wait_access_log(1, timeout=3.0)
    assert parse_access(line)["url"] == origin.url("/new")
    with open(rotated) as f:
        old = [parse_access(l)["url"] for l in f.read().splitlines() if l.strip()]
    assert old == [origin.url("/old%d" % i) for i in range(3)]
