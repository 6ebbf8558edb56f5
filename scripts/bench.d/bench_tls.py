"""bench_tls.py - scripts/bench section `tls`: TLS to the proxy itself.

authgate's `listen ... tls` next to Squid's `https_port` (Debian's Squid 5.7
is the GnuTLS flavour, `squid -v` says --with-gnutls; its https_port serves
TLS 1.3 through GnuTLS), both open proxies (no authentication), one
certificate (a private CA's EC P-256 leaf, made by the tests' throwaway CA,
tests/integration/harness/tlsca.py: python3-cryptography), the same nginx
origin (/small, 100 bytes). wrk and h2load cannot use an HTTPS proxy, so the
load client is tests/tools/tls_load.c (OpenSSL, one blocking
thread per connection; built with gcc into the temp dir), run three ways:

  ka      keep-alive: requests on a few long-lived TLS connections
  new     a full TLS handshake (TLS 1.3, ECDHE) per request (Connection: close)
  resume  a new connection per request, resuming the previous session (ticket)

Every run is verified against the origin's request counter (as the wrk runs
are) and reads each proxy's CPU time from /proc before and after (CpuMeter):
CPU microseconds per request are less sensitive to the shared machine than
the rates.
"""

import json
import os
import re
import shutil
import subprocess

B = None  # the bench module (bench.py), set by register()

TLS_CONNS = 16  # tls_load threads (blocking connections)


def register(bench_module):
    global B
    B = bench_module
    return [("tls", section_tls)]


def build_tls_load(ctx):
    src = os.path.join(ctx.root, "tests", "tools", "tls_load.c")
    out = os.path.join(ctx.tmp, "tools", "tls_load")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    flags = ["-lssl", "-lcrypto"]
    p = subprocess.run(["pkg-config", "--cflags", "--libs", "openssl"], capture_output=True,
                       text=True, timeout=30)
    if p.returncode == 0:
        flags = p.stdout.split()
    cc = shutil.which("gcc") or "cc"
    p = subprocess.run([cc, "-O2", "-pthread", "-o", out, src, *flags], capture_output=True,
                       text=True, timeout=120)
    if p.returncode != 0:
        ctx.note(f"building tls_load failed: {(p.stderr or p.stdout).strip()[-400:]}",
                 failure=True)
        return None
    B.log("built tls_load")
    return out


def make_certs(ctx):
    """A CA and a leaf for localhost (EC P-256), readable by Squid's user: the
    tests' throwaway CA (tests/integration/harness/tlsca.py) -> (cert, key, ca)."""
    from harness.tlsca import ProxyCA  # tests/integration, on bench.py's sys.path
    d = os.path.join(ctx.tmp, "tls")
    os.makedirs(d, mode=0o755, exist_ok=True)
    ca = ProxyCA(d, cn="bench CA")
    cert, key = ca.issue(chain=False)
    for f in (cert, key, ca.ca_file):
        os.chmod(f, 0o644)  # the private temp dir; Squid runs as proxy
    return cert, key, str(ca.ca_file)


def tls_run(ctx, tool, t, port, mode, ca, label):
    argv = [tool, "-p", str(port), "-u", B.origin_url(ctx, "/small"), "-c", str(TLS_CONNS),
            "-d", str(ctx.seconds), "-m", mode, "-C", ca, "-b", str(B.SMALL_SIZE)]
    before = B.origin_requests(ctx)
    cpu = B.CpuMeter(t)
    rc, out, err = B.run_tool(ctx, argv, ctx.seconds + 60)
    cpu.stop()
    after = B.origin_requests(ctx)
    m = re.search(r"^LOADJSON (\{.*\})$", out, re.M)
    if not m:
        ctx.note(f"{label} {t.name}: tls_load failed (rc {rc}): {(err or out).strip()[-300:]}",
                 failure=True)
        return None
    r = json.loads(m.group(1))
    r["seconds"] = r["duration_us"] / 1e6
    r["rps"] = r["requests"] / r["seconds"] if r["seconds"] else 0.0
    r["cpu_s"], r["cpu_us"] = cpu.result(r["requests"])
    seen = after - before - 1  # minus the second status request
    bad = []
    if r["requests"] == 0:
        bad.append("no request completed")
    if r["failed"]:
        bad.append(f"{r['failed']} failed exchanges")
    if seen < r["requests"]:
        bad.append(f"origin saw only {seen} of {r['requests']} requests")
    if bad:
        ctx.note(f"{label} {t.name}: " + "; ".join(bad), failure=True)
    B.log(f"{label} {t.name}: {r['requests']} requests in {r['seconds']:.2f} s = "
          f"{r['rps']:.0f} req/s, handshakes {r['handshakes']} (resumed {r['resumed']}), "
          f"origin saw {seen}" +
          (f", CPU {r['cpu_s']:.2f} s = {r['cpu_us']:.1f} us/req" if r["cpu_us"] else ""))
    return r


def section_tls(ctx):
    tool = build_tls_load(ctx)
    if tool is None:
        return
    cert, key, ca = make_certs(ctx)
    ports = {}
    ag_port, sq_port = B.free_port(), B.free_port()
    t = B.start_authgate(ctx, name="authgate-tls", extra_lines=[
        f"listen 127.0.0.1:{ag_port} tls", f"tls_certificate {cert}", f"tls_key {key}"])
    if t.ok:
        ports[t.name] = ag_port
    if not ctx.args.no_squid:
        s = B.start_squid(ctx, name="squid-tls", https=(sq_port, cert, key))
        if s.ok:
            ports[s.name] = sq_port
    targets = [ctx.targets[n] for n in ("authgate-tls", "squid-tls") if n in ports]
    for mode, label in (("ka", "tls keep-alive"), ("new", "tls new-conn"),
                        ("resume", "tls resumed")):
        for tg in targets:
            r = tls_run(ctx, tool, tg, ports[tg.name], mode, ca, label)
            if r:
                ctx.put(f"tls_{mode}_rps", tg.name, r["rps"])
                if r["cpu_us"] is not None:
                    ctx.put(f"tls_{mode}_cpu_us", tg.name, r["cpu_us"])
                ctx.put(f"tls_{mode}_resumed", tg.name, r["resumed"] / max(1, r["handshakes"]))
    cols = ["authgate-tls", "squid-tls"]
    print()
    print(f"{'TLS to the proxy (tls_load -c %d)' % TLS_CONNS:<36}" +
          "".join(f"{c:>14}" for c in cols) + f"{'ag/squid':>10}")
    for metric, lab in (("tls_ka_rps", "keep-alive req/s"),
                        ("tls_ka_cpu_us", "  CPU us/request"),
                        ("tls_new_rps", "new connection (full handshake) req/s"),
                        ("tls_new_cpu_us", "  CPU us/request"),
                        ("tls_resume_rps", "new connection, resumed req/s"),
                        ("tls_resume_cpu_us", "  CPU us/request"),
                        ("tls_resume_resumed", "  share of handshakes resumed")):
        vals = [ctx.get(metric, c) for c in cols]
        cells = "".join(f"{(f'{v:.2f}' if v is not None and v < 10 else f'{v:.0f}' if v is not None else 'n/a'):>14}"
                        for v in vals)
        r = B.ratio(vals[0], vals[1])
        print(f"{lab:<36}{cells}{(f'{r:.2f}x' if r is not None else '-'):>10}")
    print()
