"""metrics_listen: GET /metrics for Prometheus on a listener of its own,
against a real daemon with curl, raw sockets and the Prometheus client
library's own parsers (Debian's python3-prometheus-client) for the text
format 0.0.4 and OpenMetrics 1.0. Then the Grafana dashboard and the alert
rules shipped in scripts/: valid (promtool check rules, a schema check of
the dashboard), and every metric and label value they name is one the
daemon really exports."""

import json
import os
import pathlib
import re
import shutil
import socket
import subprocess

import pytest
from prometheus_client.openmetrics.parser import \
    text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from harness.gateway import free_port, sanitizer_env
from harness.ntlm_client import basic, pa
from harness.rawhttp import get_request
from harness.tools import curl, wait_until

REPO = pathlib.Path(__file__).resolve().parents[2]
DEMO_USERS = REPO / "scripts" / "demo-users"
ALERTS = REPO / "scripts" / "authgate-alerts.yml"
DASHBOARD = REPO / "scripts" / "grafana-authgate.json"
OM_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
             "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


def metrics_gateway(make_gateway, **opts):
    port = free_port()
    o = dict(auth_schemes="ntlm basic", basic_backend="local", ntlm_backend="local",
             user_file=str(DEMO_USERS), metrics_listen="127.0.0.1:%d" % port,
             metrics_allow="127.0.0.1")
    o.update(opts)
    gw = make_gateway(**o)
    gw.metrics_url = "http://127.0.0.1:%d/metrics" % port
    gw.metrics_port = port
    return gw


def scrape(gw, *args, url=None):
    return curl(None, url or gw.metrics_url, *args)


def header(r, name):
    for line in r.headers_raw.decode("latin-1").splitlines():
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            return v.strip()
    return None


def families(text):
    return {f.name: f for f in parse_text(text)}


def sample(fams, family, name=None, **labels):
    for s in fams[family].samples:
        if s.name == (name or family) and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise KeyError((family, name, labels))


def test_prometheus_text_format(make_gateway, origin):
    gw = metrics_gateway(make_gateway)
    c = gw.client(timeout=10)
    for _ in range(3):
        r = c.request(get_request(origin.url("/x"), headers=[pa(basic("demo", "authgate-demo"))]))
        assert r.status == 200, r
    r = c.request(get_request(origin.url("/x")))
    assert r.status == 407
    r = scrape(gw)
    assert r.status == 200, r
    assert header(r, "Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    assert header(r, "Connection") == "close"
    text = r.body.decode()
    assert "# EOF" not in text
    fams = families(text)
    # the parser names counter families without _total; samples keep it
    assert sample(fams, "authgate_requests", "authgate_requests_total") == 4
    assert sample(fams, "authgate_auth_handshakes_succeeded", "authgate_auth_handshakes_succeeded_total",
                  scheme="basic") == 3
    assert sample(fams, "authgate_auth_challenges", "authgate_auth_challenges_total") >= 1
    assert sample(fams, "authgate_connections") == 1
    h = fams["authgate_auth_verify_duration_seconds"]
    assert h.type == "histogram"
    assert sample(fams, "authgate_auth_verify_duration_seconds",
                  "authgate_auth_verify_duration_seconds_count", scheme="basic",
                  backend="local") >= 1
    assert sample(fams, "authgate_negotiate_configured") == 0
    assert sample(fams, "process_resident_memory_bytes") > 1 << 20
    # No authentication data beyond counts: neither the user nor a client
    # address appears anywhere.
    assert "demo" not in text and "127.0.0.1" not in text
    # the scrape before this one is counted
    fams = families(scrape(gw).body.decode())
    assert sample(fams, "authgate_metrics_scrapes", "authgate_metrics_scrapes_total") == 1
    c.close()


def test_openmetrics_when_asked(make_gateway):
    gw = metrics_gateway(make_gateway)
    r = scrape(gw, "-H", "Accept: " + OM_ACCEPT)
    assert r.status == 200, r
    assert header(r, "Content-Type") == \
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    text = r.body.decode()
    assert text.endswith("\n# EOF\n")
    fams = {f.name: f for f in parse_openmetrics(text)}
    assert fams["authgate_requests"].type == "counter"
    assert "# TYPE authgate_requests counter\n" in text
    assert fams["authgate_auth_verify_duration_seconds"].type == "histogram"
    assert fams["authgate_connections"].type == "gauge"
    # text/plain (or no Accept) keeps the 0.0.4 format
    r = scrape(gw, "-H", "Accept: text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
    assert header(r, "Content-Type").startswith("text/plain; version=0.0.4")
    # only the Accept field counts, not one whose name merely contains it
    r = scrape(gw, "-H", "X-Accept: " + OM_ACCEPT, "-H", "Acceptable: " + OM_ACCEPT)
    assert header(r, "Content-Type").startswith("text/plain; version=0.0.4")
    r = scrape(gw, "-H", "ACCEPT:   " + OM_ACCEPT)
    assert header(r, "Content-Type").startswith("application/openmetrics-text")


def test_paths_methods_and_malformed(make_gateway):
    gw = metrics_gateway(make_gateway)
    base = gw.metrics_url[:-len("/metrics")]
    for path in ("/", "/metrics/", "/metricsx", "/healthz", "/Metrics"):
        r = curl(None, base + path)
        assert r.status == 404, (path, r)
    r = curl(None, base + "/metrics?name[]=x")
    assert r.status == 200
    for method in ("POST", "PUT", "DELETE", "HEAD"):
        args = ["-I"] if method == "HEAD" else ["-X", method]
        r = scrape(gw, *args)
        assert r.status == 405, (method, r)
        assert header(r, "Allow") == "GET"
    raw = socket.create_connection(("127.0.0.1", gw.metrics_port), timeout=5)
    raw.sendall(b"GET /metrics HTTP/1.1\nHost: x\n\n")  # bare LF: strict parser
    data = raw.recv(4096)
    assert data.startswith(b"HTTP/1.1 400 "), data
    raw.close()
    gw.wait_log(r"event=metrics_bad_request")
    fams = families(scrape(gw).body.decode())
    assert sample(fams, "authgate_metrics_bad_requests", "authgate_metrics_bad_requests_total") == 10


def test_allow_list(make_gateway):
    gw = metrics_gateway(make_gateway, metrics_allow="127.0.0.2 10.0.0.0/8")
    since = len(gw.error_log)
    r = scrape(gw)  # from 127.0.0.1
    assert r.status == 403
    assert b"authgate_" not in r.body
    wait_until(lambda: "event=metrics_denied" in gw.error_log[since:], what="denied line")
    lines = [l for l in gw.error_log[since:].splitlines() if "event=metrics_denied" in l]
    assert len(lines) == 1 and "client=127.0.0.1" in lines[0], lines
    r = scrape(gw, "--interface", "127.0.0.2")
    assert r.status == 200 and b"authgate_metrics_denied_total 1\n" in r.body
    # a reload applies a new allow-list to the next request
    gw.reload({"metrics_allow": "127.0.0.1"})
    assert scrape(gw).status == 200
    assert scrape(gw, "--interface", "127.0.0.2").status == 403


def test_bounded_request_and_deadline(make_gateway):
    gw = metrics_gateway(make_gateway)
    s = socket.create_connection(("127.0.0.1", gw.metrics_port), timeout=5)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 5000 + b"\r\n\r\n")
    data = s.recv(4096)
    assert data.startswith(b"HTTP/1.1 431 "), data
    s.close()
    # a scraper that never finishes its request is closed at head_timeout (2s)
    s = socket.create_connection(("127.0.0.1", gw.metrics_port), timeout=8)
    s.sendall(b"GET /metrics HTTP/1.1\r\n")
    assert s.recv(4096) == b""
    s.close()
    gw.wait_log(r"event=metrics_timeout .*phase=request")
    # at most AG_METRICS_MAX_CONNS (16) at once; the next is closed at once
    held = [socket.create_connection(("127.0.0.1", gw.metrics_port), timeout=5)
            for _ in range(16)]
    extra = socket.create_connection(("127.0.0.1", gw.metrics_port), timeout=5)
    assert extra.recv(10) == b""
    gw.wait_log(r"event=metrics_too_many_connections")
    for h in held + [extra]:
        h.close()
    wait_until(lambda: scrape(gw).status == 200, timeout=5, what="a slot again")
    fams = families(scrape(gw).body.decode())
    assert sample(fams, "authgate_limit_hits", "authgate_limit_hits_total",
                  limit="metrics_request_size") == 1
    # one count per refusal logged (a scrape racing the closes above may
    # have been one more)
    refused = gw.error_log.count("event=metrics_too_many_connections")
    assert refused >= 1
    assert sample(fams, "authgate_limit_hits", "authgate_limit_hits_total",
                  limit="metrics_connections") == refused


def test_listen_failure_stops_startup(make_gateway):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    gw = make_gateway(start=False, metrics_listen="127.0.0.1:%d" % port)
    with pytest.raises(AssertionError):
        gw.start()
    assert gw.stop(expect_rc=1) == 1
    assert "event=metrics_listen_failed" in gw.error_log
    blocker.close()


# ---------------------------------------------------------------------------
# The dashboard and the alert rules


SELECTOR = re.compile(r"\b((?:authgate|process)_[a-z0-9_]+)(\{[^}]*\})?")
LABEL = re.compile(r'([a-z_]+)\s*(=~|=|!=)\s*"([^"]*)"')


def referenced(exprs):
    """{(metric, label, value)} and {metric} named in PromQL expressions."""
    names, labels = set(), set()
    for e in exprs:
        for m in SELECTOR.finditer(e):
            names.add(m.group(1))
            for k, op, v in LABEL.findall(m.group(2) or ""):
                if op == "=" and "$" not in v:
                    labels.add((m.group(1), k, v))
    return names, labels


def alert_exprs():
    import yaml
    doc = yaml.safe_load(ALERTS.read_text())
    return [r["expr"] for g in doc["groups"] for r in g["rules"]]


def dashboard_exprs(d):
    out = []
    for p in d["panels"]:
        out += [t["expr"] for t in p.get("targets", [])]
    out += [a["expr"] for a in d["annotations"]["list"] if "expr" in a]
    out += [v["query"] for v in d["templating"]["list"]]
    return out


def check_dashboard_schema(d):
    """The parts of Grafana's dashboard model an import needs."""
    assert isinstance(d["title"], str) and d["title"]
    assert isinstance(d["schemaVersion"], int) and d["schemaVersion"] >= 30
    assert [i["name"] for i in d["__inputs"]] == ["DS_PROMETHEUS"]
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    known = {"row", "timeseries", "heatmap", "stat", "gauge", "table"}
    for p in d["panels"]:
        assert p["type"] in known, p["type"]
        g = p["gridPos"]
        assert set(g) == {"x", "y", "w", "h"} and 0 <= g["x"] and g["x"] + g["w"] <= 24, p
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${DS_PROMETHEUS}"
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs))
        for t in p["targets"]:
            assert t["expr"].count("(") == t["expr"].count(")"), t["expr"]
        if p["type"] == "heatmap":
            assert all(t.get("format") == "heatmap" for t in p["targets"])
            assert all("_bucket" in t["expr"] and "by (le)" in t["expr"] for t in p["targets"])


def test_alert_rules_pass_promtool():
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is missing: scripts/bootstrap"
    p = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True,
                       timeout=60)
    assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
    assert b"SUCCESS: 5 rules found" in p.stdout
    # promtool fails a broken rule: the check above can fail
    bad = ALERTS.read_text().replace("> 0.05", "> > 0.05", 1)
    broken = pathlib.Path("/tmp") / ("authgate-alerts-broken-%d.yml" % free_port())
    broken.write_text(bad)
    try:
        p = subprocess.run([promtool, "check", "rules", str(broken)], capture_output=True,
                           timeout=60)
        assert p.returncode != 0
    finally:
        broken.unlink()


def test_dashboard_schema():
    d = json.loads(DASHBOARD.read_text())
    check_dashboard_schema(d)
    types = [p["type"] for p in d["panels"]]
    assert types.count("heatmap") == 3  # one per backend: winbind, local, gss
    with pytest.raises(AssertionError):
        broken = json.loads(DASHBOARD.read_text())
        broken["panels"][1]["id"] = broken["panels"][2]["id"]
        check_dashboard_schema(broken)


def test_dashboard_and_alerts_name_real_metrics(make_gateway):
    gw = metrics_gateway(make_gateway, auth_schemes="negotiate ntlm basic")
    fams = families(scrape(gw).body.decode())
    samples = {}
    for f in fams.values():
        for s in f.samples:
            samples.setdefault(s.name, []).append(s.labels)
    d = json.loads(DASHBOARD.read_text())
    for what, exprs in (("alerts", alert_exprs()), ("dashboard", dashboard_exprs(d))):
        names, labels = referenced(exprs)
        assert names, what
        missing = sorted(n for n in names if n not in samples)
        assert not missing, "%s name metrics the daemon does not export: %s" % (what, missing)
        for name, k, v in sorted(labels):
            assert any(l.get(k) == v for l in samples[name]), \
                "%s: %s{%s=%r} is never exported" % (what, name, k, v)
    # the check can fail: a made-up name is caught
    names, _ = referenced(['rate(authgate_no_such_thing_total[5m])'])
    assert any(n not in samples for n in names)


@pytest.mark.needs_kdc
def test_negotiate_gauges_with_a_real_kdc(make_gateway, tmp_path):
    """authgate_negotiate_ready is 1 with a usable keytab from a real KDC and
    0 when the keytab is missing while negotiate stays configured: the
    condition of AuthgateNegotiateUnavailable."""
    from peers.kdc import Kdc
    with Kdc() as kdc:
        env = {**os.environ, **kdc.env}
        env.setdefault("LSAN_OPTIONS", "suppressions=%s:print_suppressions=0:exitcode=88"
                       % (REPO / "tests" / "lsan.supp"))
        got = {}
        for name, keytab in (("ready", kdc.keytab), ("missing", tmp_path / "no.keytab")):
            port = free_port()
            gw = make_gateway(start=False, auth_schemes="negotiate basic", proxy_host="localhost",
                              keytab=str(keytab), rcache_dir=kdc.rcache_dir,
                              user_file=str(DEMO_USERS), metrics_listen="127.0.0.1:%d" % port)
            gw.env = sanitizer_env(env)
            gw.start()
            fams = families(curl(None, "http://127.0.0.1:%d/metrics" % port).body.decode())
            got[name] = (sample(fams, "authgate_negotiate_configured"),
                         sample(fams, "authgate_negotiate_ready"))
            gw.stop()
    assert got == {"ready": (1, 1), "missing": (1, 0)}, got


def test_alert_rules_fire_on_their_conditions(tmp_path):
    """promtool's rule unit tests: each alert fires on the series it is for
    (Negotiate lost at 5m, winbind hung and 503s from 6m) and stays quiet on
    the healthy series before."""
    import yaml
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is missing: scripts/bootstrap"
    rules = {r["alert"]: r for g in yaml.safe_load(ALERTS.read_text())["groups"]
             for r in g["rules"]}

    def fired(name, labels, value=None):
        ann = {}
        for k, v in rules[name]["annotations"].items():
            v = v.replace("{{ $labels.instance }}", "a")
            if value is not None:
                v = v.replace("{{ $value | humanizePercentage }}", value)
            ann[k] = v
        return {"eval_time": "15m", "alertname": name,
                "exp_alerts": [{"exp_labels": dict(labels, severity=rules[name]["labels"]
                                                   ["severity"]), "exp_annotations": ann}]}

    base = {"instance": "a", "job": "authgate"}
    quiet = [{"eval_time": "4m", "alertname": n, "exp_alerts": []} for n in rules]
    doc = {
        "rule_files": [str(ALERTS)],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": 'up{instance="a",job="authgate"}', "values": "1x20"},
                {"series": 'authgate_negotiate_configured{instance="a",job="authgate"}',
                 "values": "1x20"},
                {"series": 'authgate_negotiate_ready{instance="a",job="authgate"}',
                 "values": "1 1 1 1 1 0x15"},
                {"series": 'authgate_requests_total{instance="a",job="authgate"}',
                 "values": "0+100x20"},
                {"series": 'authgate_responses_unavailable_total{instance="a",job="authgate"}',
                 "values": "0x5 0+20x15"},
                {"series": 'authgate_auth_failures_total{instance="a",job="authgate",'
                           'reason="backend"}', "values": "0x20"},
                {"series": 'authgate_pool_jobs_in_flight{instance="a",job="authgate",'
                           'pool="winbind"}', "values": "0x5 7x15"},
                {"series": 'authgate_pool_jobs_completed_total{instance="a",job="authgate",'
                           'pool="winbind"}', "values": "0+50x5 250x15"},
            ],
            "alert_rule_test": quiet + [
                fired("AuthgateNegotiateUnavailable", base),
                fired("AuthgateWinbindDown", dict(base, pool="winbind")),
                fired("AuthgateHigh503Rate", {"instance": "a"}, "20%"),
                {"eval_time": "15m", "alertname": "AuthgateDown", "exp_alerts": []},
            ],
        }],
    }
    tests = tmp_path / "alerts.test.yml"
    tests.write_text(yaml.safe_dump(doc))
    p = subprocess.run([promtool, "test", "rules", str(tests)], capture_output=True, timeout=60)
    out = p.stdout.decode() + p.stderr.decode()
    assert p.returncode == 0, out
    # and the unit test can fail: a rule that never fires is caught
    doc["rule_files"] = [str(tmp_path / "never.yml")]
    (tmp_path / "never.yml").write_text(ALERTS.read_text().replace(
        "authgate_negotiate_ready == 0", "authgate_negotiate_ready == 7"))
    tests.write_text(yaml.safe_dump(doc))
    p = subprocess.run([promtool, "test", "rules", str(tests)], capture_output=True, timeout=60)
    assert p.returncode != 0
