"""Process lifecycle: listeners, reload (SIGHUP), log reopening (SIGUSR1),
graceful shutdown (SIGTERM/SIGINT)."""

import os
import signal
import threading
import time

from harness.gateway import free_port, render_config
from harness.origin import HELLO
from harness.rawhttp import RawClient, get_request
from harness.tools import curl


def test_ipv6_listener(make_gateway, origin):
    gw = make_gateway(listen=["[::1]:%d" % free_port("::1")])
    assert gw.url.startswith("http://[::1]:")
    r = curl(gw.url, origin.url("/x"))
    assert r.status == 200 and r.body == HELLO, r


def test_two_listeners(make_gateway, origin):
    p4, p6 = free_port(), free_port("::1")
    gw = make_gateway(listen=["127.0.0.1:%d" % p4, "[::1]:%d" % p6])
    assert gw.ports == [p4, p6]
    r4 = curl("http://127.0.0.1:%d" % p4, origin.url("/four"))
    r6 = curl("http://[::1]:%d" % p6, origin.url("/six"))
    assert r4.status == 200 and r4.body == HELLO, r4
    assert r6.status == 200 and r6.body == HELLO, r6
    assert [r.target for r in origin.wait_requests(2)] == ["/four", "/six"]


def test_sigint_is_graceful(gateway, origin):
    assert curl(gateway.url, origin.url("/x")).status == 200
    gateway.signal(signal.SIGINT)
    assert gateway.wait_exit(8) == 0, gateway.logs_tail()
    gateway.stop()


def test_graceful_shutdown_completes_in_flight_request(make_gateway, origin):
    gw = make_gateway(shutdown_timeout="8s")
    c = gw.client(timeout=10)
    c.send(get_request(origin.url("/slow/1500")))
    origin.wait_heads(1)
    t0 = time.monotonic()
    gw.signal(signal.SIGTERM)
    resp = c.recv_response(timeout=8)
    assert resp.status == 200 and resp.body == b"slow done\n"
    rc = gw.wait_exit(8)
    assert rc == 0, "exit status %r\n%s" % (rc, gw.logs_tail())
    assert time.monotonic() - t0 < 6
    gw.stop()  # sanitizer check


def test_graceful_shutdown_does_not_wait_for_idle_keepalive(make_gateway, origin):
    gw = make_gateway(shutdown_timeout="10s")
    c = gw.client()
    assert c.request(get_request(origin.url("/x"))).status == 200
    t0 = time.monotonic()
    gw.signal(signal.SIGTERM)
    rc = gw.wait_exit(8)
    assert rc == 0, gw.logs_tail()
    assert time.monotonic() - t0 < 3, "shutdown waited %.1fs for an idle client" % (
        time.monotonic() - t0)
    assert c.is_closed(1.0)
    gw.stop()


def test_graceful_shutdown_deadline_cuts_long_request(make_gateway, origin):
    gw = make_gateway(shutdown_timeout="500ms", upstream_idle_timeout="30s")
    c = gw.client(timeout=10)
    c.send(get_request(origin.url("/slow/8000")))
    origin.wait_heads(1)
    t0 = time.monotonic()
    gw.signal(signal.SIGTERM)
    rc = gw.wait_exit(6)
    assert rc == 0, "exit status %r\n%s" % (rc, gw.logs_tail())
    assert time.monotonic() - t0 < 4
    gw.stop()


def _load_worker(gw, origin, stop, keepalive, ok, errors):
    c = None
    while not stop.is_set():
        try:
            if c is None:
                c = RawClient(gw.host, gw.port, timeout=5)
            resp = c.request(get_request(origin.url("/echo")), timeout=5)
            if resp.status != 200:
                errors.append("status %d" % resp.status)
            ok.append(1)
            if not keepalive:
                c.close()
                c = None
        except Exception as e:  # noqa: BLE001 - every failure is a test failure
            errors.append(repr(e))
            if c:
                c.close()
            c = None
    if c:
        c.close()


def test_reload_under_load(gateway, origin):
    stop = threading.Event()
    ok, errors = [], []
    threads = [threading.Thread(target=_load_worker,
                                args=(gateway, origin, stop, ka, ok, errors))
               for ka in (True, False, True, False)]
    for t in threads:
        t.start()
    try:
        for i in range(6):
            time.sleep(0.1)
            gateway.reload({"x_forwarded_for": "on" if i % 2 == 0 else "off"}, wait=0.05)
        time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert errors == [], errors[:10]
    assert len(ok) > 20, "only %d requests completed" % len(ok)
    assert gateway.alive()


def test_reload_takes_effect_for_new_connections(gateway, origin):
    r = curl(gateway.url, origin.url("/one"))
    assert r.status == 200
    gateway.reload({"x_forwarded_for": "on", "via_pseudonym": "reloaded"})
    r = curl(gateway.url, origin.url("/two"))
    assert r.status == 200
    one, two = origin.wait_requests(2)
    assert one.header("x-forwarded-for") is None
    assert two.header("x-forwarded-for") == "127.0.0.1"
    assert "reloaded" in two.header("via")


def test_reload_with_broken_config_keeps_old_one(make_gateway, origin):
    gw = make_gateway(x_forwarded_for="on")
    good = render_config(gw.options).replace("x_forwarded_for on", "x_forwarded_for off")
    lines = good.splitlines()
    lines.insert(2, "no_such_option 42")
    bad_line = 3
    err_before = len(gw.error_log)
    gw.reload(text="\n".join(lines) + "\n")
    gw.wait_log(r"authgate\.conf:%d:" % bad_line, since=err_before)
    assert gw.alive()
    r = curl(gw.url, origin.url("/after-bad-reload"))
    assert r.status == 200, r
    (req,) = origin.wait_requests(1)
    assert req.header("x-forwarded-for") == "127.0.0.1", "the broken config was applied"
    # and a good config afterwards is taken
    gw.reload({"x_forwarded_for": "off"})
    r = curl(gw.url, origin.url("/after-good-reload"))
    assert r.status == 200
    assert origin.wait_requests(2)[1].header("x-forwarded-for") is None


def test_reload_of_unreadable_file_keeps_running(gateway, origin):
    os.unlink(gateway.config_path)
    gateway.signal(signal.SIGHUP)
    time.sleep(0.3)
    assert gateway.alive()
    assert curl(gateway.url, origin.url("/x")).status == 200
    gateway.write_config()


def test_sigusr1_reopens_access_log(gateway, origin):
    assert curl(gateway.url, origin.url("/before")).status == 200
    gateway.wait_access_log(1)
    rotated = gateway.access_log_path.with_suffix(".log.1")
    os.rename(gateway.access_log_path, rotated)
    gateway.signal(signal.SIGUSR1)
    time.sleep(0.3)
    assert curl(gateway.url, origin.url("/after")).status == 200
    lines = gateway.wait_access_log(1)
    assert len(lines) == 1 and "/after" in lines[0], lines
    old = rotated.read_text().splitlines()
    assert len(old) == 1 and "/before" in old[0], old


def test_sigusr1_reopens_error_log(gateway, origin):
    rotated = gateway.error_log_path.with_suffix(".log.1")
    if gateway.error_log_path.exists():
        os.rename(gateway.error_log_path, rotated)
    gateway.signal(signal.SIGUSR1)
    time.sleep(0.3)
    # a broken reload must log "file:line: ..." -- into the reopened file
    gateway.write_config(text="bogus_option_for_log 1\n")
    gateway.signal(signal.SIGHUP)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and "authgate.conf:1:" not in gateway.error_log:
        time.sleep(0.05)
    assert "authgate.conf:1:" in gateway.error_log, "error log not reopened on SIGUSR1\n" + (
        rotated.read_text() if rotated.exists() else "")
    gateway.write_config()
    assert curl(gateway.url, origin.url("/x")).status == 200
