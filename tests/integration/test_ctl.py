"""authgatectl and the status socket against a running daemon, with real
authenticated clients (Basic on raw keep-alive connections, NTLM from curl)
connected while the test asks; `authgate doctor` on good and broken set-ups;
the metrics output checked by a strict Prometheus text parser."""

import json
import math
import os
import pathlib
import re
import signal
import socket
import stat
import subprocess
import time

import pytest

from harness.ctl_client import ctl, ctl_bin, ctl_json, raw_exchange, stats
from harness.ctl_client import sockdir  # noqa: F401 (fixtures)
from harness.gateway import authgate_bin, free_port, render_config, sanitizer_env, \
    sanitizer_reports
from harness.ntlm_client import basic, pa
from harness.rawhttp import get_request

REPO = pathlib.Path(__file__).resolve().parents[2]
DEMO_USERS = REPO / "scripts" / "demo-users"
USER, PASSWORD = "demo", "authgate-demo"


def basic_header(user=USER, password=PASSWORD):
    return pa(basic(user, password))


def ctl_gateway(make_gateway, sockdir, **opts):
    o = dict(auth_schemes="ntlm basic", basic_backend="local", ntlm_backend="local",
             user_file=str(DEMO_USERS), status_socket=str(sockdir / "ctl.sock"),
             upstream_idle_timeout="30s")  # NTLM curls wait on a slow origin
    o.update(opts)
    gw = make_gateway(**o)
    gw.sock = sockdir / "ctl.sock"
    return gw


def basic_client(gw, origin, path="/x"):
    """A keep-alive connection authenticated with Basic, left open."""
    c = gw.client(timeout=10)
    r = c.request(get_request(origin.url(path), headers=[basic_header()]))
    assert r.status == 200, r
    return c


def start_ntlm_curl(gw, origin, ms=6000):
    """curl --proxy-ntlm with a slow origin: the NTLM-authenticated
    connection stays open for about ms milliseconds."""
    return subprocess.Popen(
        ["curl", "-sS", "--noproxy", "", "-o", "/dev/null", "-w", "%{http_code}",
         "--proxy-ntlm", "-U", "%s:%s" % (USER, PASSWORD), "-x", gw.url,
         origin.url("/slow/%d" % ms)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=sanitizer_env())


def wait_sessions(sock, pred, timeout=8.0, **filters):
    args = ["sessions"] + ["%s=%s" % kv for kv in filters.items()]
    deadline = time.monotonic() + timeout
    rows = None
    while time.monotonic() < deadline:
        rows = ctl_json(sock, *args)["sessions"]
        if pred(rows):
            return rows
        time.sleep(0.05)
    raise AssertionError("sessions never matched: %r" % rows)


def authenticated(rows, scheme=None):
    return [r for r in rows if r["state"] == "authenticated" and
            (scheme is None or r["scheme"] == scheme)]


# ---------------------------------------------------------------------------
# status, sessions, stats with real sessions


def test_status_and_sessions_with_basic_and_ntlm_clients(make_gateway, origin, sockdir):
    gw = ctl_gateway(make_gateway, sockdir)
    b = basic_client(gw, origin)
    curl = start_ntlm_curl(gw, origin)
    try:
        rows = wait_sessions(gw.sock, lambda rs: len(authenticated(rs)) == 2)
        by_scheme = {r["scheme"]: r for r in authenticated(rows)}
        assert set(by_scheme) == {"Basic", "NTLM"}, rows
        for r in by_scheme.values():
            assert r["user"] == USER and r["peer"] == "127.0.0.1", r
            assert isinstance(r["id"], int) and r["requests"] >= 1, r
        assert by_scheme["NTLM"]["id"] != by_scheme["Basic"]["id"]

        st = ctl_json(gw.sock, "status")
        assert st["version"] and st["pid"] == gw.proc.pid
        assert st["listeners"] == "127.0.0.1:%d" % gw.port
        assert st["config"] == str(gw.config_path.resolve())
        assert st["connections"] >= 2 and st["authenticated"] == 2, st
        assert st["schemes"] == "NTLM,Basic" and st["winbind"] == "unused", st
        assert st["tunnels"] == 0 and st["jobs_in_flight"] == 0, st

        # filters
        assert [r["scheme"] for r in ctl_json(gw.sock, "sessions", "scheme=ntlm")["sessions"]
                if r["state"] == "authenticated"] == ["NTLM"]
        assert len(authenticated(ctl_json(gw.sock, "sessions", "user=DEMO")["sessions"])) == 2
        assert ctl_json(gw.sock, "sessions", "user=nobody")["sessions"] == []
        assert ctl_json(gw.sock, "sessions", "addr=10.9.9.9")["sessions"] == []
        assert len(ctl_json(gw.sock, "sessions", "addr=127.0.0.1",
                            "state=authenticated")["sessions"]) == 2

        # the human table: a header and one line per row
        rc, out, _ = ctl(gw.sock, "sessions", "state=authenticated")
        lines = out.splitlines()
        assert rc == 0 and lines[0].split()[:4] == ["id", "peer", "scheme", "state"], out
        assert len(lines) == 3 and all(USER in l for l in lines[1:]), out
    finally:
        assert curl.wait(15) == 0
    assert curl.stdout.read() == b"200"
    b.close()


def test_sessions_count_bytes_per_connection(make_gateway, origin, sockdir):
    """bytes_in and bytes_out of a sessions row are the connection's totals
    over all its exchanges (the 407 included): exactly what the client sent
    and what it read back (they once stayed 0 however much a connection
    carried)."""
    gw = ctl_gateway(make_gateway, sockdir)
    c = gw.client(timeout=10)
    reqs = [get_request(origin.url("/first"))] + [
        get_request(origin.url("/n%d" % i), headers=[basic_header()]) for i in range(20)]
    sent = received = 0
    for i, req in enumerate(reqs):
        r = c.request(req)
        assert r.status == (407 if i == 0 else 200), r
        sent += len(req)
        received += len(r.raw)
    (row,) = ctl_json(gw.sock, "sessions")["sessions"]
    assert row["requests"] == len(reqs), row
    assert (row["bytes_in"], row["bytes_out"]) == (sent, received), row
    c.close()


def test_stats_count_handshakes_failures_and_latency(make_gateway, origin, sockdir):
    gw = ctl_gateway(make_gateway, sockdir, basic_cache_ttl=0)
    basic_client(gw, origin).close()
    c = gw.client()
    r = c.request(get_request(origin.url("/x"), headers=[basic_header(password="wrong")]))
    assert r.status == 407
    c.close()
    curl = start_ntlm_curl(gw, origin, ms=10)
    assert curl.wait(15) == 0
    st = ctl_json(gw.sock, "stats")
    assert st["auth_basic_succeeded"] == 1 and st["auth_basic_failed"] == 1, json.dumps(st)
    assert st["auth_ntlm_succeeded"] == 1, st
    # local Basic cannot tell a wrong password from an unknown user
    assert st["auth_fail_bad_password"] + st["auth_fail_unknown_user"] == 1, st
    assert st["auth_407_sent"] >= 2, st  # the wrong password, curl's first request
    assert st["requests"] >= 4 and st["responses_2xx"] >= 2, st
    hist = {(h["scheme"], h["backend"]): h for h in st["histograms"]}
    assert hist[("Basic", "local")]["count"] == 2, hist  # success and failure both timed
    assert hist[("NTLM", "local")]["count"] == 1, hist
    assert hist[("Basic", "winbind")]["count"] == 0
    for h in hist.values():
        assert h["le_inf"] == h["count"] and h["le_1"] <= h["le_10"] <= h["le_30000"]
    # the table view has every counter
    rc, out, _ = ctl(gw.sock, "stats")
    assert rc == 0 and re.search(r"^auth_basic_failed\s+1$", out, re.M), out


def test_stats_and_metrics_count_forwarded_requests(make_gateway, origin, echo_server,
                                                    closed_port, sockdir):
    """forwarded counts each request whose head went upstream, once: on a
    fresh and on a pooled upstream connection alike; not a 407, not a 502
    from a refused connect, not a CONNECT (tunnels counts those)."""
    gw = ctl_gateway(make_gateway, sockdir, connect_ports=[echo_server.port])
    n = 5
    c = basic_client(gw, origin, "/fwd/0")  # 1 forwarded (fresh upstream)
    for i in range(1, n):  # the rest on the pooled upstream connection
        r = c.request(get_request(origin.url("/fwd/%d" % i), headers=[basic_header()]))
        assert r.status == 200, r
    assert c.request(get_request(origin.url("/no"))).status == 407
    r = c.request(get_request(closed_port.url("/refused"), headers=[basic_header()]))
    assert r.status == 502, r
    c.close()
    t = gw.client()
    authority = "127.0.0.1:%d" % echo_server.port
    t.send(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\n" %
           (authority.encode(), authority.encode(), basic_header()[1].encode()))
    assert t.recv_response("CONNECT", timeout=5).status == 200
    t.close()
    assert len(origin.wait_requests(n)) == n
    st = ctl_json(gw.sock, "stats")
    assert st["forwarded"] == n and st["tunnels"] == 1, st
    assert st["upstream_reused"] == n - 1, st
    rc, out, err = ctl(gw.sock, "metrics")
    assert rc == 0, err
    fams = parse_prometheus(out)
    assert value(fams, "authgate_requests_forwarded_total") == n
    assert value(fams, "authgate_tunnels_total") == 1
    # counters that were in stats only, now in metrics too
    assert value(fams, "authgate_upstream_not_pooled_fds_total") == 0
    assert value(fams, "authgate_pool_jobs_submitted_total", pool="local") == st[
        "jobs_submitted_local"] >= 1
    assert value(fams, "authgate_jobs_completed_total") == st["jobs_completed"] >= 1


# ---------------------------------------------------------------------------
# kick


def test_kick_closes_exactly_the_named_connections(make_gateway, origin, sockdir):
    gw = ctl_gateway(make_gateway, sockdir)
    c1 = basic_client(gw, origin)
    id1 = authenticated(wait_sessions(gw.sock, lambda rs: len(authenticated(rs)) == 1))[0]["id"]
    c2 = basic_client(gw, origin)
    rows = wait_sessions(gw.sock, lambda rs: len(authenticated(rs)) == 2)
    id2 = [r["id"] for r in authenticated(rows) if r["id"] != id1][0]
    anon = gw.client()  # connected, never authenticated
    assert anon.request(get_request(origin.url("/anon"))).status == 407
    wait_sessions(gw.sock, lambda rs: len(rs) == 3)

    k = ctl_json(gw.sock, "kick", "id=%d" % id1)
    assert k["kicked"] == 1 and [x["id"] for x in k["kicked_connections"]] == [id1], k
    assert c1.is_closed(), "the kicked connection is still open"
    r = c2.request(get_request(origin.url("/still"), headers=[basic_header()]))
    assert r.status == 200, "the other connection was touched: %r" % r
    assert [r["id"] for r in ctl_json(gw.sock, "sessions")["sessions"]
            if r["state"] == "authenticated"] == [id2]
    gw.wait_log(r"conn=%d event=kicked client=127.0.0.1 user=demo" % id1)

    # no match: exit 1, nothing closed
    rc, _, err = ctl(gw.sock, "kick", "id=999999")
    assert rc == 1 and "no connection matches" in err, err
    rc, _, err = ctl(gw.sock, "kick", "user=nobody")
    assert rc == 1

    # by user: the NTLM and the Basic connection of demo go, the anonymous one stays
    curl = start_ntlm_curl(gw, origin, ms=8000)
    before = authenticated(wait_sessions(gw.sock, lambda rs: len(authenticated(rs)) == 2))
    assert {r["scheme"] for r in before} == {"Basic", "NTLM"}, before
    k = ctl_json(gw.sock, "kick", "user=demo")
    # Every connection of demo goes: the two above, and any curl opened for
    # its login meanwhile (curl may start another connection at any time;
    # a third one was seen under load). Each kicked one was demo's.
    kicked = {x["id"] for x in k["kicked_connections"]}
    assert k["kicked"] == len(kicked) >= 2, k
    assert {r["id"] for r in before} <= kicked, (k, before)
    for cid in kicked:
        gw.wait_log(r"conn=%d event=kicked client=127.0.0.1 user=demo" % cid)
    assert c2.is_closed()
    # (curl may reconnect and authenticate again: a kick is not a ban)
    rows = ctl_json(gw.sock, "sessions")["sessions"]
    assert not {r["id"] for r in rows} & {r["id"] for r in before}, rows
    assert [r["state"] for r in rows if r["scheme"] == "-"] == ["none"], rows
    curl.kill()
    curl.wait()
    anon.send(get_request(origin.url("/anon")))
    assert anon.recv_response().status == 407


# ---------------------------------------------------------------------------
# reload, loglevel


def test_reload_reports_success_and_file_line_errors(make_gateway, origin, sockdir):
    gw = ctl_gateway(make_gateway, sockdir)
    c = basic_client(gw, origin)
    good = render_config(gw.options)
    gw.write_config(text=good + "basic_realm ok\n")
    rc, out, err = ctl(gw.sock, "reload")
    assert rc == 0 and "config_loaded" in out, (rc, out, err)
    gw.wait_log(r"event=reloaded")

    n = good.count("\n") + 2
    gw.write_config(text=good + "basic_realm ok\nlisen 1.2.3.4:5\n")
    rc, out, err = ctl(gw.sock, "reload")
    assert rc == 1, (rc, out, err)
    assert "%s:%d: unknown option 'lisen'" % (gw.config_path.resolve(), n) in err or \
        "%s:%d: unknown option 'lisen'" % (gw.config_path, n) in err, err
    rc, out, _ = ctl(gw.sock, "reload", json_out=True)
    assert rc == 1 and json.loads(out)["error"]["code"] == "failed", out
    # the old configuration still runs, the connection and its identity too
    assert c.request(get_request(origin.url("/after"), headers=[basic_header()])).status == 200
    assert len(authenticated(ctl_json(gw.sock, "sessions")["sessions"])) == 1


def test_loglevel(make_gateway, sockdir):
    gw = ctl_gateway(make_gateway, sockdir)
    assert ctl_json(gw.sock, "loglevel") == {"log_level": "info"}
    assert ctl_json(gw.sock, "loglevel", "debug") == {"log_level": "debug"}
    assert ctl_json(gw.sock, "status")["log_level"] == "debug"
    rc, _, err = ctl(gw.sock, "loglevel", "loud")
    assert rc == 1 and "level must be" in err


def test_sessions_show_a_negotiate_client(make_gateway, origin, sockdir):
    """A Kerberos (Negotiate) client connected while authgatectl asks: its row
    shows the scheme and the principal, and kick closes it."""
    from peers.kdc import Kdc
    with Kdc() as kdc:
        gw = ctl_gateway(make_gateway, sockdir, start=False, auth_schemes="negotiate ntlm basic",
                         proxy_host="localhost", keytab=kdc.keytab, rcache_dir=kdc.rcache_dir)
        gw.env = sanitizer_env({**os.environ, **kdc.env, "LSAN_OPTIONS": os.environ.get(
            "LSAN_OPTIONS", "suppressions=%s" % (pathlib.Path(__file__).parents[1] / "lsan.supp"))})
        gw.start()
        proxy = "http://localhost:%d" % gw.port
        curl = subprocess.Popen(
            ["curl", "-sS", "--noproxy", "", "-o", "/dev/null", "-w", "%{http_code}",
             "--proxy-negotiate", "-U", ":", "-x", proxy, origin.url("/slow/6000")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=kdc.client_env("alice"))
        try:
            rows = wait_sessions(gw.sock, lambda rs: len(authenticated(rs, "Negotiate")) == 1)
            (row,) = authenticated(rows, "Negotiate")
            assert row["user"] == "alice@AUTHGATE.TEST", row
            st = ctl_json(gw.sock, "status")
            assert (st["negotiate"], st["acceptor"], st["keytab_readable"]) == (
                "ready", "HTTP@localhost", "yes"), st
            kicked = ctl_json(gw.sock, "kick", "user=alice@AUTHGATE.TEST")
            assert kicked["kicked"] == 1, kicked
        finally:
            out, _ = curl.communicate(timeout=20)
        assert out.decode() != "200"  # the kick cut the transfer
        gw.stop()


def test_trace_logs_auth_decisions_for_one_address(make_gateway, origin, sockdir):
    """trace addr=IP: every auth decision of that client is logged (decoded,
    non-secret fields: scheme, NTLM flags, user, domain, workstation) until
    it ends; never a token or a password; other addresses are not traced."""
    gw = ctl_gateway(make_gateway, sockdir)
    on = ctl_json(gw.sock, "trace", "addr=127.0.0.1", "seconds=60")["rows"][0]
    assert on["trace_addr"] == "127.0.0.1" and 0 < on["seconds_left"] <= 60, on
    r = subprocess.run(["curl", "-sS", "--noproxy", "", "-o", "/dev/null", "-w", "%{http_code}",
                        "--proxy-ntlm", "-U", "%s:%s" % (USER, PASSWORD), "-x", gw.url,
                        origin.url("/x")], capture_output=True, text=True, timeout=20)
    assert r.stdout == "200", r
    gw.wait_log(r"event=trace step=request client=127\.0\.0\.1 credentials=NTLM")
    gw.wait_log(r"event=trace step=ntlm_negotiate client=127\.0\.0\.1 via=NTLM flags=0x[0-9a-f]{8}")
    gw.wait_log(r'event=trace step=ntlm_authenticate client=127\.0\.0\.1 user="%s" '
                r'domain="" workstation="WORKSTATION"' % USER)
    gw.wait_log(r"event=trace step=challenge client=127\.0\.0\.1 reason=ntlm_challenge continue=NTLM")
    logs = gw.error_log
    assert PASSWORD not in logs and "TlRMTVNTUA" not in logs, "a secret in the trace"
    # off: the next exchange leaves no trace line
    assert ctl_json(gw.sock, "trace", "off")["rows"][0]["trace_addr"] == ""
    before = gw.error_log.count("event=trace ")
    c = gw.client()
    assert c.request(get_request(origin.url("/y"), headers=[basic_header()])).status == 200
    assert gw.error_log.count("event=trace ") == before
    rc, _, err = ctl(gw.sock, "trace", "addr=not-an-ip")
    assert rc == 1 and "addr must be an IP address" in err


# ---------------------------------------------------------------------------
# the socket itself: permissions, peers, bad input


def test_socket_mode_and_cleanup(make_gateway, sockdir):
    gw = ctl_gateway(make_gateway, sockdir, status_socket_mode="0640")
    st = os.stat(gw.sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640, oct(st.st_mode)
    gw.stop()
    assert not gw.sock.exists(), "the socket outlived the daemon"


def test_stale_socket_is_replaced_live_one_is_not(make_gateway, sockdir):
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sockdir / "ctl.sock"))
    stale.close()  # a file nobody listens on
    gw = ctl_gateway(make_gateway, sockdir)
    assert ctl(gw.sock, "status")[0] == 0
    # a second daemon on the same path refuses to start
    gw2 = make_gateway(start=False, status_socket=str(gw.sock))
    with pytest.raises(AssertionError):
        gw2.start()
    assert gw2.wait_exit(5) == 1
    gw2.check_sanitizers()
    gw2.kill()  # already gone: only marks it stopped for the teardown
    assert "status_socket_failed" in gw2.error_log
    assert ctl(gw.sock, "status")[0] == 0


def test_peer_not_in_allow_list_is_denied(make_gateway, sockdir):
    me = os.getuid()
    other = 1 if me != 1 else 2
    gw = ctl_gateway(make_gateway, sockdir, status_allow_users=str(other),
                     status_socket_mode="0666")
    rc, out, err = ctl(gw.sock, "status")
    assert rc == 4, (rc, out, err)
    assert "access denied" in err
    rc, out, _ = ctl(gw.sock, "status", json_out=True)
    assert rc == 4 and json.loads(out)["error"]["code"] == "denied"
    gw.wait_log(r"event=ctl_denied ctl=\d+ uid=%d" % me)
    # allowed through the primary group instead
    gw.reload({"status_allow_groups": str(os.getgid())})
    assert ctl(gw.sock, "status")[0] == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another uid")
def test_socket_permissions_deny_other_users(make_gateway, sockdir):
    gw = ctl_gateway(make_gateway, sockdir)  # 0660 root:root
    os.chmod(sockdir, 0o755)
    p = subprocess.run([str(ctl_bin()), "-s", str(gw.sock), "status"], capture_output=True,
                       timeout=10, env=sanitizer_env(), user=65534, group=65534)
    assert p.returncode == 4, p
    assert b"access denied" in p.stderr


def test_oversized_and_garbage_commands(make_gateway, origin, sockdir):
    gw = ctl_gateway(make_gateway, sockdir)
    c = basic_client(gw, origin)
    out = raw_exchange(gw.sock, b"s" * 5000)
    assert out.startswith(b".error limit command line too long\n"), out
    out = raw_exchange(gw.sock, b"status " + b"x" * 1100 + b"\n")
    assert out.startswith(b".error limit"), out
    out = raw_exchange(gw.sock, b"\x00\xff\x16\x03\x01 garbage\n")
    assert out == b".error usage not a command line\n", out
    out = raw_exchange(gw.sock, b"GET / HTTP/1.1\r\n\r\n")
    assert out.startswith(b".error usage unknown command 'GET'"), out
    out = raw_exchange(gw.sock, b"kick usr=demo\n")
    assert out.startswith(b".error usage kick: bad argument"), out
    # a client that says nothing is dropped at the deadline, not kept
    # (checked cheaply: it does not block others)
    idle = socket.socket(socket.AF_UNIX)
    idle.connect(str(gw.sock))
    # none of that touched the proxy or other control connections
    assert raw_exchange(gw.sock, b"status\r\n").endswith(b"\n.ok\n")
    st = ctl_json(gw.sock, "stats")
    assert st["ctl_bad"] == 3 and st["ctl_commands"] >= 3, st
    assert c.request(get_request(origin.url("/ok"), headers=[basic_header()])).status == 200
    idle.close()


def test_cli_exit_codes(make_gateway, sockdir):
    rc, _, err = ctl(sockdir / "absent.sock", "status")
    assert rc == 3 and "not running" in err, err
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sockdir / "dead.sock"))  # exists, nobody listening
    rc, _, err = ctl(sockdir / "dead.sock", "status")
    s.close()
    assert rc == 3, err
    assert ctl(sockdir / "x", )[0] == 2
    assert ctl(sockdir / "x", "--bogus", "status")[0] == 2
    assert ctl(sockdir / "x", "sessions", "user=a b")[0] == 2
    gw = ctl_gateway(make_gateway, sockdir)
    assert ctl(gw.sock, "frobnicate")[0] == 1
    rc, out, _ = ctl(gw.sock, "help", json_out=True)
    names = [c["command"] for c in json.loads(out)["commands"]]
    assert rc == 0 and {"status", "sessions", "stats", "kick", "reload", "loglevel",
                        "metrics"} <= set(names)


def test_reload_and_stop_with_control_connection_open(make_gateway, sockdir):
    gw = ctl_gateway(make_gateway, sockdir)
    idle = socket.socket(socket.AF_UNIX)
    idle.connect(str(gw.sock))
    gw.signal(signal.SIGHUP)
    gw.wait_log("event=reloaded")
    assert ctl(gw.sock, "status")[0] == 0
    gw.stop()  # rc 0: the loop closed with the control connection still open
    idle.close()


# ---------------------------------------------------------------------------
# metrics


SAMPLE_RE = re.compile(
    r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)'
    r'(?:\{(?P<labels>(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")'
    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*)?\})?'
    r' (?P<value>[^ ]+)(?: (?P<ts>-?[0-9]+))?$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')


def parse_prometheus(text):
    """A strict parser of the Prometheus text format 0.0.4: every family has
    HELP and TYPE before its samples, appears once, its samples are
    contiguous, names and labels are valid, values are floats, no sample is
    repeated, counters end in _total, histograms are complete and cumulative.
    Returns {family: {"type":..., "samples": [(name, labels, value)]}}."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    families, current, seen = {}, None, set()
    for n, line in enumerate(text.split("\n")[:-1], 1):
        assert line == line.strip() and line, "line %d: blank or padded: %r" % (n, line)
        if line.startswith("# HELP "):
            name, _, help_ = line[7:].partition(" ")
            assert re.match(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$", name) and help_, line
            assert name not in families, "line %d: family %s repeated" % (n, name)
            families[name] = {"type": None, "samples": [], "help": help_}
            current = name
            continue
        if line.startswith("# TYPE "):
            name, _, typ = line[7:].partition(" ")
            assert name == current and families[name]["type"] is None, line
            assert typ in ("counter", "gauge", "histogram", "summary", "untyped"), line
            assert not families[name]["samples"], "TYPE after samples: " + line
            families[name]["type"] = typ
            continue
        assert not line.startswith("#"), "line %d: stray comment %r" % (n, line)
        m = SAMPLE_RE.match(line)
        assert m, "line %d: not a sample: %r" % (n, line)
        name = m.group("name")
        fam = families.get(current)
        assert fam and fam["type"], "line %d: sample before HELP/TYPE: %r" % (n, line)
        if fam["type"] == "histogram":
            assert name in (current + "_bucket", current + "_sum", current + "_count"), line
        else:
            assert name == current, "line %d: %s inside family %s" % (n, name, current)
        labels = tuple(LABEL_RE.findall(m.group("labels") or ""))
        assert len({k for k, _ in labels}) == len(labels), "duplicate label: " + line
        key = (name, tuple(sorted(labels)))
        assert key not in seen, "line %d: duplicate sample %r" % (n, line)
        seen.add(key)
        v = m.group("value")
        assert re.match(r"^(?:[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|"
                        r"[-+]?Inf|NaN)$", v), "line %d: bad value %r" % (n, v)
        fam["samples"].append((name, dict(labels), float(v)))
    for name, fam in families.items():
        assert fam["type"], "family %s has no TYPE" % name
        assert fam["samples"], "family %s has no samples" % name
        if fam["type"] == "counter":
            assert name.endswith("_total"), "counter %s does not end in _total" % name
            assert all(v >= 0 for _, _, v in fam["samples"])
        if fam["type"] == "histogram":
            series = {}
            for sname, labels, v in fam["samples"]:
                base = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
                series.setdefault(base, {"buckets": [], "sum": None, "count": None})
                if sname.endswith("_bucket"):
                    series[base]["buckets"].append((float(labels["le"]), v))
                elif sname.endswith("_sum"):
                    series[base]["sum"] = v
                else:
                    series[base]["count"] = v
            for base, s in series.items():
                les = [le for le, _ in s["buckets"]]
                assert les == sorted(les) and les[-1] == math.inf, (name, base, les)
                counts = [c for _, c in s["buckets"]]
                assert counts == sorted(counts), "buckets not cumulative: %r" % (counts,)
                assert s["count"] == counts[-1] and s["sum"] is not None, (name, base)
    return families


def value(fams, name, **labels):
    for sname, l, v in fams[name]["samples"]:
        if l == {k: str(x) for k, x in labels.items()}:
            return v
    raise KeyError((name, labels))


def test_metrics_parse_as_prometheus_text(make_gateway, origin, sockdir):
    gw = ctl_gateway(make_gateway, sockdir)
    c = basic_client(gw, origin)
    curl = start_ntlm_curl(gw, origin, ms=10)
    assert curl.wait(15) == 0
    rc, out, err = ctl(gw.sock, "metrics")
    assert rc == 0, err
    fams = parse_prometheus(out)
    assert value(fams, "authgate_connections") >= 1
    assert value(fams, "authgate_connections_authenticated") == 1
    assert value(fams, "authgate_auth_handshakes_succeeded_total", scheme="basic") == 1
    assert value(fams, "authgate_auth_handshakes_succeeded_total", scheme="ntlm") == 1
    assert value(fams, "process_resident_memory_bytes") > 1 << 20
    h = "authgate_auth_verify_duration_seconds"
    assert fams[h]["type"] == "histogram"
    counts = {(l["scheme"], l["backend"]): v for n, l, v in fams[h]["samples"]
              if n == h + "_count"}
    assert counts[("basic", "local")] == 1 and counts[("ntlm", "local")] == 1, counts
    assert value(fams, "authgate_requests_total") >= 2
    assert abs(value(fams, "authgate_start_time_seconds") - time.time()) < 120
    c.close()


def test_prometheus_parser_is_strict():
    good = ("# HELP a_total A.\n# TYPE a_total counter\na_total 1\n"
            "# HELP h H.\n# TYPE h histogram\n"
            'h_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 3\nh_count 2\n')
    parse_prometheus(good)
    bad = [
        good.replace("a_total 1", "a_total one"),
        good.replace("# TYPE a_total counter\n", ""),
        good.replace("a_total", "a"),                      # counter without _total
        good.replace('h_bucket{le="+Inf"} 2', 'h_bucket{le="+Inf"} 0'),  # not cumulative
        good.replace("h_count 2", "h_count 5"),
        good + "a_total 2\n",                               # outside its family
        good.rstrip("\n"),
        good.replace('{le="1"}', '{le="1",le="2"}'),
        good.replace('{le="1"}', "{le=1}"),
    ]
    for text in bad:
        with pytest.raises(AssertionError):
            parse_prometheus(text)


# ---------------------------------------------------------------------------
# authgate doctor


def doctor(conf, env=None, timeout=30):
    p = subprocess.run([str(authgate_bin()), "doctor", "-c", str(conf)], capture_output=True,
                       timeout=timeout, env=sanitizer_env(env), stdin=subprocess.DEVNULL)
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    assert not sanitizer_reports(out + err), out + err
    return p.returncode, out


def verdicts(out):
    v = {}
    for line in out.splitlines():
        m = re.match(r"^(OK|WARN|FAIL) +([a-z_]+): (.*)$", line)
        if m:
            v.setdefault(m.group(2), []).append((m.group(1), m.group(3)))
    return v


def write_conf(path, **opts):
    base = {"listen": ["127.0.0.1:%d" % free_port()], "error_log": "-", "access_log": "none"}
    base.update(opts)
    path.write_text(render_config(base))
    return path


def test_doctor_good_setup(tmp_path, sockdir):
    from peers.kdc import Kdc
    with Kdc() as kdc:
        conf = write_conf(tmp_path / "a.conf", auth_schemes="negotiate ntlm basic",
                          user_file=str(DEMO_USERS), keytab=kdc.keytab, proxy_host="localhost",
                          status_socket=str(sockdir / "ctl.sock"))
        env = dict(os.environ)
        env.update(kdc.env)
        rc, out = doctor(conf, env)
    v = verdicts(out)
    assert rc == 0, out
    assert v["config"][0][0] == "OK"
    assert v["keytab"][0][0] == "OK" and "HTTP@localhost" in v["keytab"][0][1], out
    assert v["user_file"][0][0] == "OK" and "1 users" in v["user_file"][0][1], out
    assert v["listen"][0][0] == "OK" and v["status_socket"][0][0] == "OK", out
    assert v["winbind"][0][0] == "OK", out
    assert not any(x == "FAIL" for checks in v.values() for x, _ in checks), out
    assert out.rstrip().endswith("0 failed, %d warnings" % sum(
        1 for checks in v.values() for x, _ in checks if x == "WARN"))


def test_doctor_broken_setup(tmp_path, origin):
    if os.path.exists("/run/samba/winbindd/pipe") or os.path.exists("/var/run/samba/winbindd/pipe"):
        pytest.skip("a system winbindd is running")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    conf = write_conf(tmp_path / "b.conf", auth_schemes="negotiate ntlm basic",
                      ntlm_backend="winbind", basic_backend="local",
                      user_file=str(tmp_path / "missing-users"),
                      keytab=str(tmp_path / "missing.keytab"), proxy_host="10.1.2.3",
                      listen=["127.0.0.1:%d" % busy.getsockname()[1]],
                      status_socket=str(tmp_path / "no-such-dir" / "ctl.sock"))
    rc, out = doctor(conf)
    busy.close()
    v = verdicts(out)
    assert rc == 1, out
    assert v["proxy_host"][0][0] == "FAIL" and "IP address" in v["proxy_host"][0][1], out
    assert v["keytab"][0][0] == "FAIL" and "missing.keytab" in v["keytab"][0][1], out
    assert "Negotiate will not be offered" in v["keytab"][0][1]
    assert v["winbind"][0][0] == "FAIL" and "winbindd does not answer" in v["winbind"][0][1]
    assert v["user_file"][0][0] == "FAIL", out
    assert v["listen"][0][0] == "WARN" and "in use" in v["listen"][0][1], out
    assert v["status_socket"][0][0] == "FAIL" and "does not exist" in v["status_socket"][0][1]
    assert "5 failed" in out.splitlines()[-1], out


def test_doctor_bad_file(tmp_path):
    p = tmp_path / "c.conf"
    p.write_text("listen 127.0.0.1:1\nlisen x\n")
    rc, out = doctor(p)
    assert rc == 2 and "FAIL config: %s:2: unknown option 'lisen'" % p in out, out


# ---------------------------------------------------------------------------
# JSON access log (access_log_format json)


def test_json_access_log(make_gateway, origin, sockdir):
    gw = ctl_gateway(make_gateway, sockdir, access_log_format="json")
    c = gw.client()
    assert c.request(get_request(origin.url("/a?q=\"x\"\\"))).status == 407
    r = c.request(get_request(origin.url("/b"), headers=[basic_header()]))
    assert r.status == 200
    lines = gw.wait_access_log(2)
    recs = [json.loads(l) for l in lines]  # every line is one JSON object
    assert recs[0]["status"] == 407 and recs[0]["result"] == "TCP_DENIED", recs[0]
    assert recs[0]["user"] == "-" and recs[0]["url"].startswith(origin.url("/a")), recs[0]
    assert recs[1]["status"] == 200 and recs[1]["user"] == USER, recs[1]
    assert recs[1]["method"] == "GET" and recs[1]["client"] == "127.0.0.1"
    assert recs[1]["hierarchy"] == "HIER_DIRECT" and recs[1]["upstream"] == "127.0.0.1"
    assert recs[1]["bytes"] > 0 and isinstance(recs[1]["time"], float)
    assert recs[0]["conn"] == recs[1]["conn"]
    # JSON lines are counted like the others (access_log_lines)
    assert stats(gw)["access_log_lines"] == 2
    # a reload back to squid switches the format
    gw.reload({"access_log_format": "squid"})
    assert c.request(get_request(origin.url("/c"), headers=[basic_header()])).status == 200
    last = gw.wait_access_log(3)[-1]
    assert not last.startswith("{") and " demo " in last, last
