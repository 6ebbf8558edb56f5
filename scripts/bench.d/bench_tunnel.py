"""bench_tunnel.py - scripts/bench section `tunnel`: CONNECT tunnel throughput.

HTTPS downloads of one 64 MiB file from a private nginx TLS origin (TLS 1.3,
the `tls` section's private CA and leaf), three ways in one run:

  direct    curl straight to the origin
  authgate  through `authgate` (auth_schemes none, connect_ports = the
            origin's): a plain TCP tunnel, relayed with splice(2)
  squid     through Squid 5.7 (CONNECT allowed, no auth)

TUNNEL_CONNS curl processes download the file back to back for the
measurement's seconds; MiB/s = all bytes / wall time until the last download
ended. Each download is verified (exit status 0, HTTP 200, the whole file).
The proxies' CPU time comes from /proc before and after (CpuMeter), reported
per MiB carried, which the shared machine disturbs less than the rates.
"""

import os
import subprocess
import threading
import time

B = None  # the bench module (bench.py), set by register()

TUNNEL_CONNS = 2            # parallel curl downloads (2 cores: client + origin + proxy)
TUNNEL_FILE = 64 * 2**20    # long enough that the handshake is noise


def register(bench_module):
    global B
    B = bench_module
    return [("tunnel", section_tunnel)]


def start_tls_origin(ctx, cert, key):
    d = os.path.join(ctx.tmp, "tls-origin")
    www = os.path.join(d, "www")
    os.makedirs(www, mode=0o755)
    path = os.path.join(www, "64m")
    with open(path, "wb") as f:
        for _ in range(TUNNEL_FILE // 2**20):
            f.write(os.urandom(2**20))
    os.chmod(path, 0o644)
    port = B.free_port()
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(B.nginx_conf(ctx, d, "private TLS origin for scripts/bench tunnel", f"""
    default_type application/octet-stream;
    sendfile on;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.3;
        root {www};
    }}"""))
    t = B.Target("tls-origin", "direct", port)
    t.logs = [os.path.join(d, "error.log"), os.path.join(d, "stdout.log")]
    t.proc = B.spawn(ctx, ["nginx", "-e", os.path.join(d, "error.log"), "-p", d + "/",
                           "-c", conf], os.path.join(d, "stdout.log"))
    if not B.wait_port(port, t.proc, 10):
        ctx.note("tunnel: the TLS origin did not start: " + "".join(B.tail(p) for p in t.logs),
                 failure=True)
        return None
    ctx.cleanups.append(lambda: B.stop_proc(ctx, t.proc))
    B.log(f"TLS origin nginx on 127.0.0.1:{port} (pid {t.proc.pid})")
    return port


def download_loop(ctx, argv, deadline, out, lock):
    while time.monotonic() < deadline:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        fields = p.stdout.split()
        ok = p.returncode == 0 and len(fields) == 2 and fields[0] == "200" and \
            int(fields[1]) == TUNNEL_FILE
        with lock:
            if ok:
                out["bytes"] += TUNNEL_FILE
                out["n"] += 1
            else:
                out["bad"].append(f"rc {p.returncode} {p.stdout.strip()} "
                                  f"{p.stderr.strip()[-200:]}")
        if not ok:
            return


def tunnel_run(ctx, t, url, ca, proxy_port):
    argv = ["curl", "-sS", "--noproxy", "", "--cacert", ca, "-o", "/dev/null",
            "-w", "%{http_code} %{size_download}", url]
    if proxy_port:
        argv[1:1] = ["-x", f"http://127.0.0.1:{proxy_port}"]
    out = {"bytes": 0, "n": 0, "bad": []}
    lock = threading.Lock()
    cpu = B.CpuMeter(t)
    t0 = time.monotonic()
    ths = [threading.Thread(target=download_loop,
                            args=(ctx, argv, t0 + ctx.seconds, out, lock))
           for _ in range(TUNNEL_CONNS)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    secs = time.monotonic() - t0
    cpu.stop()
    if out["bad"] or not out["n"]:
        ctx.note(f"tunnel {t.name}: failed downloads: {out['bad'][:2]}", failure=True)
        return None
    mib = out["bytes"] / 2**20
    r = {"mibs": mib / secs, "mib": mib, "n": out["n"]}
    cpu_s, _ = cpu.result(out["n"])
    r["cpu_ms_per_mib"] = cpu_s / mib * 1e3 if cpu_s is not None else None
    B.log(f"tunnel {t.name}: {out['n']} downloads of 64 MiB in {secs:.2f} s = "
          f"{r['mibs']:.0f} MiB/s" +
          (f", CPU {cpu_s:.2f} s = {r['cpu_ms_per_mib']:.3f} ms/MiB" if cpu_s is not None else ""))
    return r


def section_tunnel(ctx):
    import bench_tls
    cert, key, ca = (str(p) for p in bench_tls.make_certs(ctx))
    port = start_tls_origin(ctx, cert, key)
    if port is None:
        return
    url = f"https://localhost:{port}/64m"
    direct = B.Target("direct-tls", "direct", port)
    direct.ok = True
    runs = [(direct, None)]
    ag = B.start_authgate(ctx, name="authgate-tun", extra_lines=[f"connect_ports {port}"])
    if ag.ok:
        runs.append((ag, ag.port))
    if not ctx.args.no_squid:
        sq = B.start_squid(ctx, name="squid-tun")
        if sq.ok:
            runs.append((sq, sq.port))
    for t, pport in runs:
        r = tunnel_run(ctx, t, url, ca, pport)
        if r:
            ctx.put("tun_mibs", t.name, r["mibs"])
            if r["cpu_ms_per_mib"] is not None:
                ctx.put("tun_cpu_ms_mib", t.name, r["cpu_ms_per_mib"])
    for t, _ in runs[1:]:
        B.stop_target(ctx, t)
    cols = ["direct-tls", "authgate-tun", "squid-tun"]
    print()
    print(f"{'CONNECT tunnel, HTTPS 64 MiB (curl x%d)' % TUNNEL_CONNS:<40}" +
          "".join(f"{c:>14}" for c in cols) + f"{'ag/direct':>11}{'squid/direct':>14}")
    for metric, lab in (("tun_mibs", "throughput MiB/s"),
                        ("tun_cpu_ms_mib", "  proxy CPU ms per MiB")):
        vals = [ctx.get(metric, c) for c in cols]
        cells = "".join(f"{(f'{v:.3f}' if v is not None and v < 10 else f'{v:.0f}' if v is not None else 'n/a' if i else '-'):>14}"
                        for i, v in enumerate(vals))
        ra, rs = (B.ratio(vals[1], vals[0]), B.ratio(vals[2], vals[0])) if metric == "tun_mibs" \
            else (None, None)
        print(f"{lab:<40}{cells}{(f'{ra:.2f}x' if ra is not None else '-'):>11}"
              f"{(f'{rs:.2f}x' if rs is not None else '-'):>14}")
    print("  target: authgate / direct TLS >= 0.90 (issue 16)")
    print()
