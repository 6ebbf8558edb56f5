"""bench_auth.py - the authentication sections of scripts/bench.

Each section measures authgate and Squid 5.7 (with its own helpers) side by
side in the same run, against the same real peers, all on loopback in the
run's private temp dir, and the peer's own ceiling measured without any
proxy (twice: right before and right after authgate's runs, the table uses
the mean; the JSON output keeps both):

  basic      Basic with a local user file (authgate `basic_backend local`)
             vs Squid basic_ncsa_auth (an htpasswd file, APR1-MD5, same
             user and password); Basic through winbind (authgate
             `basic_backend winbind`) vs Squid `ntlm_auth
             --helper-protocol=squid-2.5-basic` on the same winbindd.
             wrk with a fixed `Proxy-Authorization: Basic ...` on every
             request: keep-alive and Connection: close.  Both proxies cache
             a verified Basic credential by default (authgate
             basic_cache_ttl 5m, Squid credentialsttl 2 hours), so the
             cached rows measure the proxies; the "no cache" row (authgate
             basic_cache_ttl 0, Squid credentialsttl 0) sends every request
             to winbindd and is compared with winbindd's plaintext ceiling
             (tests/tools/wbclient_bench -m plain, same run).  Squid has no
             uncached column: with `credentialsttl 0 seconds` Squid 5.7 never
             answers the first request (checked), any ttl > 0 is a cache.
  ntlm       NTLM full handshakes per second (ntlm_load, mode new: a new
             connection per handshake, Type 1 -> 407/Type 2 -> Type 3 ->
             200) and keep-alive authenticated requests per second (mode ka:
             handshake once per connection, then plain requests), authgate
             with the local user file, authgate through winbind, Squid
             `ntlm_auth --helper-protocol=squid-2.5-ntlmssp` through the same
             winbindd; winbindd's NTLMv2 ceiling (wbclient_bench -m ntlmv2);
             the gateway's RSS before and after many handshakes (local
             backend).
  negotiate  Negotiate (Kerberos, SPNEGO) full handshakes per second
             (negotiate_load, mode new: a fresh AP-REQ from
             gss_init_sec_context on a new connection per request) and
             keep-alive authenticated requests per second (authenticate once
             per connection, then plain requests, like a browser), authgate
             vs Squid negotiate_kerberos_auth, against a throwaway MIT KDC;
             the in-process gss_init_sec_context + gss_accept_sec_context
             pair rate (gss_pair) as the machine's ceiling.
  stall      isolation of the verification pools (src/server/work.h): one
             authgate with Negotiate (the KDC) and NTLM through winbind;
             the Kerberos login rate (negotiate_load new: a new connection,
             so a new upstream and a name lookup, per login) and the
             keep-alive forwarding rate of authenticated users
             (negotiate_load ka), the origin named `localhost` (the proxy
             resolves it); BENCH_STALL_ROUNDS (2) rounds of: normal, then
             winbindd stopped (SIGSTOP) with BENCH_STALL_PENDING (100) NTLM
             AUTHENTICATE messages waiting on it, then SIGCONT (every
             pending handshake must end in a 200); a last normal run. Each
             stalled run is compared with the mean of the normal runs on
             either side of it (the machine is shared: load from elsewhere
             drifts over a run); the table shows the mean stalled rate, the
             mean normal rate (the "ceiling" column) and their ratio.

Verification: every load run counts only 200s with the expected 100-byte
body as authenticated (wrk: any non-2xx/3xx fails the run, 407s included;
ntlm_load/negotiate_load: any 407, other status, early close, socket error or
stall fails it), and the origin's request counter must have grown by at
least the number of 200s.  Each proxy is probed at start: without
credentials it must answer 407 offering the scheme, with them 200.

A peer (winbindd, the KDC) or a Squid instance that cannot start makes its
column "n/a" with the reason in the notes: not a failure under --quick (the
smoke run of scripts/test), a failure under a full --strict run.  An authgate
instance that cannot start, or a measurement that does not verify, is always
a failure under --strict.
"""

import base64
import json
import os
import pwd
import re
import shutil
import subprocess
import textwrap
import time

B = None          # the bench module (bench.py), set by register()
HERE = os.path.dirname(os.path.abspath(__file__))

USER = "alice"    # exists in both peers (tests/integration/peers/accounts.py)
DOMAIN = "AUTHGATE"

ENV_HELP = ("BENCH_AUTH_CONNS (50) parallel connections of every authenticated load; "
            "BENCH_SQUID_CHILDREN (20) helper processes per Squid auth_param (all started "
            "at once); BENCH_WB_THREADS (8, authgate's threadpool_size) threads of the "
            "winbindd ceiling runs; BENCH_AG_EXTRA (none) more configuration lines for "
            "every authenticated authgate, ';'-separated (e.g. 'log_level warn'); BENCH_GSS_THREADS (CPUs) threads of the GSS pair ceiling; "
            "BENCH_RSS_HANDSHAKES (100000, --quick 5000) handshakes of the NTLM RSS check; "
            "BENCH_STALL_PENDING (100) NTLM handshakes left waiting on the stopped winbindd, "
            "BENCH_STALL_ROUNDS (2) stop/resume rounds of the stall section; "
            "AUTHGATE_WB_CLIENT_MODE (nss_wrapper|namespace) how processes reach the private "
            "winbindd.")


def register(bench_module):
    global B
    B = bench_module
    return [("basic", section_basic), ("ntlm", section_ntlm), ("negotiate", section_negotiate),
            ("stall", section_stall)]


def parse_env(a, env_int):
    a.auth_conns = env_int("BENCH_AUTH_CONNS", 50)
    a.squid_children = env_int("BENCH_SQUID_CHILDREN", 20)
    a.wb_threads = env_int("BENCH_WB_THREADS", 8)
    a.gss_threads = env_int("BENCH_GSS_THREADS", os.cpu_count() or 2)
    a.rss_handshakes = env_int("BENCH_RSS_HANDSHAKES", 5000 if a.quick else 100000)
    a.stall_pending = env_int("BENCH_STALL_PENDING", 100)
    a.stall_rounds = max(1, env_int("BENCH_STALL_ROUNDS", 2))


# ---------------------------------------------------------------------------
# shared state: built tools, peers


class AuthState:
    def __init__(self):
        self.tools = {}            # name -> (path or None, reason)
        self.wb = None             # peers.Winbind
        self.wb_reason = None
        self.wb_used = False       # something loaded it since the last (re)start
        self.kdc = None            # peers.Kdc
        self.kdc_reason = None
        self.peers_mod = None
        self.sections = []         # sections that ran (their rows are printed)
        self.info = {}             # configuration facts for the report


def state(ctx):
    if not hasattr(ctx, "auth"):
        ctx.auth = AuthState()
    return ctx.auth


def peer_unavailable(ctx, what, reason):
    """A peer or a Squid instance could not start: n/a, a failure only in a
    full --strict run."""
    ctx.note(f"{what}: n/a ({reason})", failure=not ctx.args.quick)


def peers(ctx):
    st = state(ctx)
    if st.peers_mod is None:
        import peers as mod  # noqa: E402  (tests/integration/peers, on bench.py's sys.path)
        st.peers_mod = mod
    return st.peers_mod


def proxy_ids():
    try:
        pw = pwd.getpwnam("proxy")
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        return None


def peer_dir_args():
    """Where the peers put their private directories: not in our temp dir,
    but where tests/integration/peers chooses (AUTHGATE_PEERS_TMPDIR, else
    /dev/shm: winbindd's tdb fsyncs on a disk make its rate erratic).
    BENCH_KEEP_TMP=1 keeps them too."""
    return {"keep": bool(os.environ.get("BENCH_KEEP_TMP"))}


def record_peer_dir(ctx, path):
    """$tmp/peerdirs: the wrapper removes these if we die without cleaning up."""
    with open(os.path.join(ctx.tmp, "peerdirs"), "a") as f:
        f.write(path + "\n")


def track_peer_proc(ctx, old_pid, proc):
    """Keeps the wrapper's last-resort pgid list in step with a peer's process
    (the peers start their daemons in their own sessions: pgid == pid)."""
    if old_pid is not None:
        B.record_pgid(ctx, old_pid, add=False)
    if proc is not None:
        B.record_pgid(ctx, proc.pid)
        return proc.pid
    return None


def winbind(ctx):
    """The run's winbindd (started on first use), or None (reason in wb_reason)."""
    st = state(ctx)
    if st.wb is not None or st.wb_reason is not None:
        return st.wb
    if os.geteuid() != 0:
        st.wb_reason = "a private winbindd needs root"
        return None
    missing = [p for p in ("winbindd", "wbinfo", "pdbedit", "net", "ntlm_auth")
               if shutil.which(p) is None]
    if missing:
        st.wb_reason = f"missing {', '.join(missing)} (apt-get install winbind samba)"
        return None
    t0 = time.monotonic()
    w = None
    try:
        mod = peers(ctx)
        w = mod.Winbind(**peer_dir_args())
        st.wb_pid = None

        def close_wb():
            w.close()
            track_peer_proc(ctx, st.wb_pid, None)
        ctx.cleanups.append(close_wb)
        w.setup()
        record_peer_dir(ctx, w.dir)
        w.start()
        st.wb_pid = track_peer_proc(ctx, None, w.proc)
        ids = proxy_ids()
        if ids:
            w.allow_gid(ids[1])  # Squid's ntlm_auth (user proxy) needs the privileged pipe
    except Exception as e:  # PeerError, OSError, ...
        st.wb_reason = f"winbindd did not start: {str(e).strip()[:600]}"
        B.log(st.wb_reason)
        return None
    st.wb = w
    B.log(f"winbindd ({w.client_mode} clients) in {w.dir}, up in {time.monotonic() - t0:.1f} s")
    return w


def winbind_fresh(ctx):
    """winbindd restarted if it has served load since its last start: its
    domain child leaks ~8 KB per authentication (testenv NOTES), which should
    not weigh on the next measurement."""
    st = state(ctx)
    w = winbind(ctx)
    if w is None or not st.wb_used:
        return w
    try:
        old = w.proc.pid if w.proc else None
        w.restart()
        st.wb_pid = track_peer_proc(ctx, old, w.proc)
        st.wb_used = False
        B.log("winbindd restarted (fresh domain child)")
    except Exception as e:
        st.wb_reason = f"winbindd did not restart: {str(e).strip()[:600]}"
        st.wb = None
        B.log(st.wb_reason)
    return st.wb


def kdc(ctx):
    st = state(ctx)
    if st.kdc is not None or st.kdc_reason is not None:
        return st.kdc
    missing = [p for p in ("krb5kdc", "kdb5_util", "kadmin.local", "kinit", "kvno")
               if shutil.which(p) is None]
    if missing:
        st.kdc_reason = f"missing {', '.join(missing)} (apt-get install krb5-kdc krb5-admin-server krb5-user)"
        return None
    t0 = time.monotonic()
    try:
        mod = peers(ctx)
        k = mod.Kdc(**peer_dir_args())
        kdc_pid = []

        def close_kdc():
            k.close()
            if kdc_pid:
                track_peer_proc(ctx, kdc_pid[0], None)
        ctx.cleanups.append(close_kdc)
        k.setup()
        record_peer_dir(ctx, k.dir)
        k.start()
        kdc_pid.append(track_peer_proc(ctx, None, k.proc))
        ids = proxy_ids()
        if ids:
            k.chown_keytab(ids[0], ids[1])  # Squid's helper runs as proxy
        k.user_keytab(USER)                 # the load generators' client keys
    except Exception as e:
        st.kdc_reason = f"the KDC did not start: {str(e).strip()[:600]}"
        B.log(st.kdc_reason)
        return None
    st.kdc = k
    B.log(f"KDC {k.realm} on 127.0.0.1:{k.port} in {k.dir}, up in {time.monotonic() - t0:.1f} s")
    return k


# ---------------------------------------------------------------------------
# tools built at bench time


TOOLS = {
    # name: (source, pkg-config packages, extra libraries if pkg-config lacks them)
    "ntlm_load": (os.path.join(HERE, "ntlm_load.c"), ["nettle"], ["-lnettle"]),
    "negotiate_load": (os.path.join(HERE, "negotiate_load.c"), ["krb5-gssapi"],
                       ["-lgssapi_krb5"]),
    "gss_pair": (os.path.join(HERE, "gss_pair.c"), ["krb5-gssapi"], ["-lgssapi_krb5"]),
    "wbclient_bench": (None, ["wbclient", "nettle"], ["-lwbclient", "-lnettle"]),
}


def tool(ctx, name):
    """Path of a built tool, or None (the reason is noted as a failure: our
    own tooling must build wherever scripts/bootstrap ran)."""
    st = state(ctx)
    if name in st.tools:
        return st.tools[name][0]
    src, pkgs, fallback = TOOLS[name]
    if src is None:
        src = os.path.join(ctx.root, "tests", "tools", "wbclient_bench.c")
    d = os.path.join(ctx.tmp, "tools")
    os.makedirs(d, exist_ok=True)
    out = os.path.join(d, name)
    flags = fallback
    try:
        p = subprocess.run(["pkg-config", "--cflags", "--libs", *pkgs], capture_output=True,
                           text=True, timeout=30)
        if p.returncode == 0:
            flags = p.stdout.split()
    except OSError:
        pass
    cc = shutil.which("gcc") or shutil.which("cc")
    argv = [cc or "gcc", "-O2", "-pthread", "-o", out, src, *flags]
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        ok = p.returncode == 0
        err = (p.stderr or p.stdout).strip()[-600:]
    except OSError as e:
        ok, err = False, str(e)
    if ok:
        st.tools[name] = (out, "")
        B.log(f"built {name}")
        return out
    reason = f"building {name} failed: {' '.join(argv)}: {err}"
    st.tools[name] = (None, reason)
    ctx.note(reason, failure=True)
    return None


# ---------------------------------------------------------------------------
# probes and load runs


def probe_auth(scheme, header=None, handshake=None):
    """probe_fn for finish_start: a GET without credentials must get a 407
    offering `scheme`; then a GET with `header` (Basic) or the load generator
    run `handshake(ctx, t)` (NTLM, Negotiate: returns None or an error) must
    succeed."""
    def fn(ctx, t):
        try:
            status, hdrs, _ = B.http_get(ctx, t.port)
        except OSError as e:
            return f"probe failed: {e}"
        offered = [v for k, v in hdrs if k == "proxy-authenticate"]
        if status != 407 or not any(v.split()[:1] and v.split()[0].lower() == scheme.lower()
                                    for v in offered):
            return f"probe without credentials got {status}, Proxy-Authenticate {offered}"
        if header:
            try:
                status, hdrs, body = B.http_get(ctx, t.port, [f"Proxy-Authorization: {header}"])
            except OSError as e:
                return f"authenticated probe failed: {e}"
            if status != 200 or len(body) != B.SMALL_SIZE:
                return f"authenticated probe got {status} with a {len(body)}-byte body"
        if handshake:
            err = handshake(ctx, t)
            if err:
                return f"authenticated probe: {err}"
        B.log(f"{t.name}: probe 407 ({scheme}) then 200 with credentials")
        return None
    return fn


def parse_json_line(tag, text):
    m = re.search(rf"^{tag} (\{{.*\}})$", text, re.M)
    return json.loads(m.group(1)) if m else None


def run_loadgen(ctx, t, toolpath, mode, env=None, seconds=None, count=None, conns=None,
                extra=(), label="", verify=True, host="127.0.0.1"):
    """Runs ntlm_load/negotiate_load against target t and verifies the result
    against the origin's counter. Returns the LOADJSON dict plus "rate"
    (handshakes/s in mode new, authenticated requests/s in mode ka), or None.
    host: how the origin is named (localhost: the proxy resolves it)."""
    a = ctx.args
    conns = conns or a.auth_conns
    argv = [toolpath, "-p", str(t.port), "-U", f"http://{host}:{ctx.origin.port}/small",
            "-H", f"{host}:{ctx.origin.port}", "-c", str(conns),
            "-t", str(max(1, min(a.threads, conns))), "-m", mode, "-b", str(B.SMALL_SIZE),
            *extra]
    argv += ["-n", str(count)] if count else ["-d", str(seconds or ctx.seconds)]
    timeout = (seconds or ctx.seconds) + 60 if not count else 60 + count / 200
    before = B.origin_requests(ctx)
    cpu = B.CpuMeter(t)
    rc, out, err = B.run_tool(ctx, argv, timeout, env=env)
    cpu.stop()
    after = B.origin_requests(ctx)
    r = parse_json_line("LOADJSON", out)
    if r is None:
        msg = f"{label} {t.name}: load generator failed (rc {rc}): {(err or out).strip()[-400:]}"
        if verify:
            ctx.note(msg, failure=True)
        return None if verify else msg
    r["origin_requests"] = after - before - 1
    secs = r["seconds"] or 1e-9
    r["rate"] = (r["handshakes"] if mode == "new" else r["requests_ok"]) / secs
    # per handshake in mode new, per authenticated request in mode ka (the
    # unit of the rate)
    r["cpu_s"], r["cpu_us"] = cpu.result(r["handshakes"] if mode == "new" else r["requests_ok"])
    bad = []
    if r["handshakes"] == 0:
        bad.append("no handshake completed")
    if r["failures"]:
        bad.append(f"{r['failures']} failures (407: {r['status_407']}, other status: "
                   f"{r['status_other']}, early close: {r['closed_early']}, socket: "
                   f"{r['socket_errors']}, mechanism: {r['mech_errors']}, body: "
                   f"{r['body_errors']}, stalls: {r['timeouts']}; first: {r['first_error']})")
    if r["origin_requests"] < r["requests_ok"]:
        bad.append(f"origin saw only {r['origin_requests']} of {r['requests_ok']} requests")
    elif r["origin_requests"] > r["requests_ok"] * 1.02 + conns + 10:
        bad.append(f"origin saw {r['origin_requests']} requests, {r['requests_ok']} were answered")
    r["verified"] = not bad
    if bad:
        msg = f"{label} {t.name}: " + "; ".join(bad)
        if not verify:
            return msg
        ctx.note(msg, failure=True)
    what = "handshakes" if mode == "new" else "authenticated requests"
    B.log(f"{label} {t.name}: {r['handshakes']} handshakes, {r['requests_ok']} 200s in "
          f"{secs:.2f} s = {r['rate']:.0f} {what}/s, p50 {r['lat_p50_us'] / 1000:.2f} ms, "
          f"p99 {r['lat_p99_us'] / 1000:.2f} ms, origin saw {r['origin_requests']}" +
          (f", CPU {r['cpu_s']:.2f} s = {r['cpu_us']:.1f} us each" if r["cpu_us"] is not None
           else ""))
    return r if not bad else None


def wbclient_ceiling(ctx, w, mode, label):
    """winbindd's own rate through libwbclient (no proxy), per second, or None."""
    path = tool(ctx, "wbclient_bench")
    if path is None:
        return None
    argv = w.command([path, "-m", mode, "-t", str(ctx.args.wb_threads), "-s", str(ctx.seconds),
                      "-u", USER, "-d", w.domain])
    env = w.gateway_env()
    env["WBBENCH_PASSWORD"] = w.users[USER]
    rc, out, err = B.run_tool(ctx, argv, ctx.seconds + 60, env=env)
    state(ctx).wb_used = True
    m = re.search(r"mode=\S+ threads=(\d+) .*ok=(\d+) fail=(\d+) per_sec=(\d+) avg_ms=([\d.]+)", out)
    if rc != 0 or not m:
        ctx.note(f"{label}: wbclient_bench failed (rc {rc}): {(err or out).strip()[-300:]}",
                 failure=True)
        return None
    B.log(f"{label}: winbindd ceiling {m.group(4)}/s ({m.group(2)} ok, {m.group(1)} threads, "
          f"avg {m.group(5)} ms)")
    return float(m.group(4))


def put_ceiling(ctx, metric, before, after, label):
    """The ceiling is measured right before and right after authgate's run
    (the machine is shared and noisy): the table uses the mean, the JSON
    keeps both."""
    vals = [v for v in (before, after) if v is not None]
    if not vals:
        return
    mean = sum(vals) / len(vals)
    ctx.put(metric, "ceiling", mean)
    ctx.put(metric, "ceiling_before", before)
    ctx.put(metric, "ceiling_after", after)
    B.log(f"{label}: ceiling before {before if before is None else round(before)}/s, after "
          f"{after if after is None else round(after)}/s: mean {mean:.0f}/s")


def gss_ceiling(ctx, k, cenv, service):
    """gss_pair init+accept pairs per second in one process, or None."""
    pair = tool(ctx, "gss_pair")
    if pair is None:
        return None
    penv = dict(cenv)
    penv["KRB5_KTNAME"] = "FILE:" + k.keytab
    penv["KRB5RCACHEDIR"] = k.rcache_dir
    argv = [pair, "-t", str(ctx.args.gss_threads), "-d", str(ctx.seconds), "-S", service]
    rc, out, err = B.run_tool(ctx, argv, ctx.seconds + 60, env=penv)
    r = parse_json_line("PAIRJSON", out)
    if rc != 0 or r is None:
        ctx.note(f"negotiate ceiling: gss_pair failed (rc {rc}): "
                 f"{(err or out).strip()[-300:]}", failure=True)
        return None
    B.log(f"negotiate ceiling: {r['pairs']} init+accept pairs in {r['seconds']:.2f} s = "
          f"{r['per_sec']:.0f}/s ({r['threads']} threads)")
    return r["per_sec"]


def squid_auth_lines(ctx, scheme, program, extra=()):
    n = ctx.args.squid_children
    return [f"auth_param {scheme} program {program}",
            f"auth_param {scheme} children {n} startup={n} idle={min(n, 4)}",
            *extra,
            "acl auth proxy_auth REQUIRED",
            "http_access allow auth",
            "http_access deny all"]


def start_sq(ctx, name, lines, env=None, prefix=(), probe_fn=None):
    """A Squid instance for one measurement, or None (n/a, noted)."""
    if ctx.args.no_squid:
        return None
    t = B.start_squid(ctx, name, lines, env=env, prefix=prefix, probe_fn=probe_fn)
    if not t.ok:
        peer_unavailable(ctx, f"Squid ({name})", t.reason)
        return None
    return t


def start_ag(ctx, name, lines, env=None, prefix=(), probe_fn=None):
    if ctx.args.no_authgate:
        return None
    extra = [l.strip() for l in os.environ.get("BENCH_AG_EXTRA", "").split(";") if l.strip()]
    t = B.start_authgate(ctx, name, list(lines) + extra, env=env, prefix=prefix,
                         probe_fn=probe_fn)
    if not t.ok:
        ctx.note(f"authgate ({name}) not measured: {t.reason}", failure=True)
        return None
    return t


def stop(ctx, *targets):
    for t in targets:
        if t is not None:
            B.stop_target(ctx, t)


def count_auth_ok(t, backend):
    """auth_ok lines of an authgate's error log (info level) for a backend."""
    n = 0
    try:
        with open(t.logs[0], errors="replace") as f:
            for line in f:
                if "event=auth_ok" in line and f"backend={backend}" in line:
                    n += 1
    except OSError:
        pass
    return n


def wrk_auth(ctx, t, metric, col, header, close=False, label="", every_request=None):
    """wrk with Basic credentials on every request.  every_request="winbind":
    also check in authgate's log that each request was verified by that
    backend (no cache hit)."""
    if t is None:
        return
    headers = {"Proxy-Authorization": header}
    if close:
        headers["Connection"] = "close"
    before = count_auth_ok(t, every_request) if every_request else 0
    r = B.wrk(ctx, t, "/small", ctx.args.auth_conns, ctx.args.threads, ctx.seconds,
              headers=headers, label=label)
    if r and every_request and "log_level" not in os.environ.get("BENCH_AG_EXTRA", ""):
        # The error log is buffered (log_buffer): its lines are written
        # within AG_LOG_FLUSH_MS (1 s) of the run's end.
        deadline = time.monotonic() + 3.0
        n = count_auth_ok(t, every_request) - before
        while n < r["requests"] and time.monotonic() < deadline:
            time.sleep(0.1)
            n = count_auth_ok(t, every_request) - before
        if n < r["requests"]:
            ctx.note(f"{label} {t.name}: only {n} of {r['requests']} requests were verified by "
                     f"{every_request} (a cache answered?)", failure=True)
            r["verified"] = False
        else:
            B.log(f"{label} {t.name}: {n} verifications by {every_request} for "
                  f"{r['requests']} requests")
    if r and r.get("verified"):
        ctx.put(metric, col, r["rps"])
        B.put_cpu(ctx, metric + "_cpu_us", col, r)


def write_user_file(ctx, path, password):
    """authgate's local user file through `authgate passwd` (the real tool)."""
    binary = B.authgate_bin(ctx)
    p = subprocess.run([binary, "passwd", path, USER], input=password + "\n", text=True,
                       capture_output=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError(f"authgate passwd failed: {p.stderr.strip()}")


def write_htpasswd(path, password):
    """An htpasswd file for basic_ncsa_auth (APR1-MD5, which it supports)."""
    from harness.squid import htpasswd_text  # tests/integration, on bench.py's sys.path
    with open(path, "w") as f:
        f.write(htpasswd_text({USER: password}))
    os.chmod(path, 0o644)


def section_dir(ctx, name):
    d = os.path.join(ctx.tmp, name)
    os.makedirs(d, mode=0o755, exist_ok=True)
    return d


# ---------------------------------------------------------------------------
# basic


def section_basic(ctx):
    st = state(ctx)
    st.sections.append("basic")
    d = section_dir(ctx, "basic-files")
    password = peers(ctx).DEFAULT_USERS[USER]
    header = "Basic " + base64.b64encode(f"{USER}:{password}".encode()).decode()
    probe = probe_auth("Basic", header=header)

    # --- local user file vs basic_ncsa_auth
    users = os.path.join(d, "users")
    htpasswd = os.path.join(d, "htpasswd")
    ag = sq = None
    try:
        write_user_file(ctx, users, password)
        ag = start_ag(ctx, "ag-basic-local", ["auth_schemes basic", "basic_backend local",
                                              "ntlm_backend local", f"user_file {users}"],
                      probe_fn=probe)
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        ctx.note(f"basic local: {e}", failure=True)
    try:
        write_htpasswd(htpasswd, password)
        sq = start_sq(ctx, "sq-basic-ncsa",
                      squid_auth_lines(ctx, "basic", f"/usr/lib/squid/basic_ncsa_auth {htpasswd}",
                                       ["auth_param basic realm bench"]),
                      probe_fn=probe)
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        peer_unavailable(ctx, "Squid basic_ncsa_auth", str(e))
    for metric, close, label in (("basic_local_ka", False, "basic-local keep-alive"),
                                 ("basic_local_nc", True, "basic-local new-conn")):
        wrk_auth(ctx, ag, metric, "authgate", header, close, label)
        wrk_auth(ctx, sq, metric, "squid", header, close, label)
    stop(ctx, ag, sq)

    # --- winbind
    w = winbind_fresh(ctx)
    if w is None:
        peer_unavailable(ctx, "basic through winbind", st.wb_reason)
        return
    genv = w.gateway_env()
    wb_lines = ["auth_schemes basic", "basic_backend winbind", "ntlm_backend winbind",
                "user_file none"]
    helper = (f"/usr/bin/ntlm_auth --configfile={w.smb_conf} "
              "--helper-protocol=squid-2.5-basic")
    # uncached: every request goes to winbindd; compared with its ceiling,
    # measured before and after on a freshly started winbindd each time.
    # (No Squid column: Squid 5.7 with `credentialsttl 0 seconds` never
    # answers the first request -- checked -- and any ttl > 0 is a cache.)
    c1 = wbclient_ceiling(ctx, w, "plain", "basic winbind ceiling")
    w = winbind_fresh(ctx)
    if w is None:
        peer_unavailable(ctx, "basic through winbind", st.wb_reason)
        return
    ag = start_ag(ctx, "ag-basic-wb-nocache", wb_lines + ["basic_cache_ttl 0"], env=genv,
                  prefix=w.client_prefix(), probe_fn=probe)
    wrk_auth(ctx, ag, "basic_wb_nocache_ka", "authgate", header, False,
             "basic-winbind no-cache keep-alive", every_request="winbind")
    stop(ctx, ag)
    st.wb_used = True
    w = winbind_fresh(ctx)
    if w is None:
        peer_unavailable(ctx, "basic through winbind", st.wb_reason)
        return
    c2 = wbclient_ceiling(ctx, w, "plain", "basic winbind ceiling")
    put_ceiling(ctx, "basic_wb_nocache_ka", c1, c2, "basic winbind")
    # cached (both proxies' defaults)
    ag = start_ag(ctx, "ag-basic-wb", wb_lines, env=genv, prefix=w.client_prefix(),
                  probe_fn=probe)
    sq = start_sq(ctx, "sq-basic-wb",
                  squid_auth_lines(ctx, "basic", helper, ["auth_param basic realm bench"]),
                  env=genv, prefix=w.client_prefix(), probe_fn=probe)
    for metric, close, label in (("basic_wb_ka", False, "basic-winbind keep-alive"),
                                 ("basic_wb_nc", True, "basic-winbind new-conn")):
        wrk_auth(ctx, ag, metric, "authgate", header, close, label)
        wrk_auth(ctx, sq, metric, "squid", header, close, label)
    stop(ctx, ag, sq)


# ---------------------------------------------------------------------------
# ntlm


def section_ntlm(ctx):
    st = state(ctx)
    st.sections.append("ntlm")
    loader = tool(ctx, "ntlm_load")
    if loader is None:
        return
    d = section_dir(ctx, "ntlm-files")
    password = peers(ctx).DEFAULT_USERS[USER]
    creds = ["-u", USER, "-P", password, "-D", DOMAIN, "-W", "BENCH"]

    def run(t, metric, col, mode, label, env=None):
        if t is None:
            return None
        r = run_loadgen(ctx, t, loader, mode, env=env, extra=creds, label=label)
        if r:
            ctx.put(metric, col, r["rate"])
            B.put_cpu(ctx, metric + "_cpu_us", col, r)
        return r

    def probe(env=None):
        def hs(ctx, t):
            r = run_loadgen(ctx, t, loader, "new", env=env, count=3, conns=1, extra=creds,
                            label="probe", verify=False)
            return r if isinstance(r, str) else None
        return probe_auth("NTLM", handshake=hs)

    # --- local user file: handshakes, keep-alive, RSS over many handshakes
    users = os.path.join(d, "users")
    ag = None
    try:
        write_user_file(ctx, users, password)
        ag = start_ag(ctx, "ag-ntlm-local", ["auth_schemes ntlm", "ntlm_backend local",
                                             "basic_backend local", f"user_file {users}",
                                             f"ntlm_domain {DOMAIN}"], probe_fn=probe())
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        ctx.note(f"ntlm local: {e}", failure=True)
    run(ag, "ntlm_hs_local", "authgate", "new", "ntlm-local handshakes")
    run(ag, "ntlm_ka_local", "authgate", "ka", "ntlm-local keep-alive")
    if ag is not None:
        n = ctx.args.rss_handshakes
        before = B.rss_kib(ag)
        t0 = time.monotonic()
        r = run_loadgen(ctx, ag, loader, "new", count=n, extra=creds,
                        label=f"ntlm-local {n} handshakes (RSS)")
        after = B.rss_kib(ag)
        if r and before and after:
            if r["handshakes"] < n:
                ctx.note(f"RSS check: only {r['handshakes']} of {n} handshakes completed",
                         failure=True)
            ctx.put("ntlm_rss_before", "authgate", before / 1024.0)
            ctx.put("ntlm_rss_after", "authgate", after / 1024.0)
            ctx.put("ntlm_rss_growth", "authgate", float(after - before))
            st.info["rss_handshakes"] = r["handshakes"]
            B.log(f"ntlm-local RSS {before} -> {after} KiB over {r['handshakes']} handshakes "
                  f"({time.monotonic() - t0:.1f} s)")
    stop(ctx, ag)

    # --- winbind: ceiling, authgate, Squid + ntlm_auth
    w = winbind_fresh(ctx)
    if w is None:
        peer_unavailable(ctx, "NTLM through winbind", st.wb_reason)
        return
    genv = w.gateway_env()
    c1 = wbclient_ceiling(ctx, w, "ntlmv2", "ntlm winbind ceiling")
    w = winbind_fresh(ctx)
    if w is None:
        peer_unavailable(ctx, "NTLM through winbind", st.wb_reason)
        return
    ag = start_ag(ctx, "ag-ntlm-wb", ["auth_schemes ntlm", "ntlm_backend winbind",
                                      "basic_backend winbind", "user_file none"],
                  env=genv, prefix=w.client_prefix(), probe_fn=probe())
    run(ag, "ntlm_hs_wb", "authgate", "new", "ntlm-winbind handshakes")
    run(ag, "ntlm_ka_wb", "authgate", "ka", "ntlm-winbind keep-alive")
    stop(ctx, ag)
    st.wb_used = True
    w = winbind_fresh(ctx)
    if w is None:
        peer_unavailable(ctx, "NTLM through winbind", st.wb_reason)
        return
    c2 = wbclient_ceiling(ctx, w, "ntlmv2", "ntlm winbind ceiling")
    put_ceiling(ctx, "ntlm_hs_wb", c1, c2, "ntlm winbind")
    w = winbind_fresh(ctx)
    if w is None:
        peer_unavailable(ctx, "NTLM through winbind (Squid)", st.wb_reason)
        return
    helper = (f"/usr/bin/ntlm_auth --configfile={w.smb_conf} "
              "--helper-protocol=squid-2.5-ntlmssp")
    sq = start_sq(ctx, "sq-ntlm-wb",
                  squid_auth_lines(ctx, "ntlm", helper, ["auth_param ntlm keep_alive on"]),
                  env=genv, prefix=w.client_prefix(), probe_fn=probe())
    run(sq, "ntlm_hs_wb", "squid", "new", "ntlm-winbind handshakes")
    run(sq, "ntlm_ka_wb", "squid", "ka", "ntlm-winbind keep-alive")
    stop(ctx, sq)
    st.wb_used = True


# ---------------------------------------------------------------------------
# negotiate


SERVICE = "HTTP@localhost"  # the proxy's name as clients write it (proxy_host localhost)


class NegLoad:
    """What a Negotiate section needs: negotiate_load, the KDC, the client
    env (MEMORY ccache, TGT from the client keytab), and the probe handshake."""

    def __init__(self, ctx, loader, k):
        self.loader, self.k = loader, k
        self.cenv = k.client_env(USER, ccache="MEMORY")
        self.extra = ["-S", SERVICE]

        def hs(ctx, t):
            r = run_loadgen(ctx, t, loader, "new", env=self.cenv, count=3, conns=1,
                            extra=self.extra, label="probe", verify=False)
            return r if isinstance(r, str) else None
        self.probe = probe_auth("Negotiate", handshake=hs)


def neg_load(ctx, section, what):
    """Registers the section; a NegLoad, or None (n/a noted)."""
    st = state(ctx)
    st.sections.append(section)
    loader = tool(ctx, "negotiate_load")
    if loader is None:
        return None
    k = kdc(ctx)
    if k is None:
        peer_unavailable(ctx, what, st.kdc_reason)
        return None
    return NegLoad(ctx, loader, k)


def section_negotiate(ctx):
    nl = neg_load(ctx, "negotiate", "Negotiate")
    if nl is None:
        return
    loader, k, cenv, extra, probe = nl.loader, nl.k, nl.cenv, nl.extra, nl.probe
    service = SERVICE
    gwenv = k.env

    def run(t, metric, col, mode, label):
        if t is None:
            return None
        r = run_loadgen(ctx, t, loader, mode, env=cenv, extra=extra, label=label)
        if r:
            ctx.put(metric, col, r["rate"])
            B.put_cpu(ctx, metric + "_cpu_us", col, r)
        return r

    # the machine's ceiling (init + accept in one process, no HTTP), right
    # before and right after authgate's runs
    c1 = gss_ceiling(ctx, k, cenv, service)
    ag = start_ag(ctx, "ag-negotiate", ["auth_schemes negotiate", "proxy_host localhost",
                                        f"keytab {k.keytab}", f"rcache_dir {k.rcache_dir}"],
                  env=gwenv, probe_fn=probe)
    run(ag, "neg_hs", "authgate", "new", "negotiate handshakes")
    run(ag, "neg_ka", "authgate", "ka", "negotiate keep-alive")
    stop(ctx, ag)
    c2 = gss_ceiling(ctx, k, cenv, service)
    put_ceiling(ctx, "neg_hs", c1, c2, "negotiate")
    helper = (f"/usr/lib/squid/negotiate_kerberos_auth -k {k.keytab} "
              f"-s {k.service_principal}")
    sq = start_sq(ctx, "sq-negotiate",
                  squid_auth_lines(ctx, "negotiate", helper, ["auth_param negotiate keep_alive on"]),
                  env=gwenv, probe_fn=probe)
    run(sq, "neg_hs", "squid", "new", "negotiate handshakes")
    run(sq, "neg_ka", "squid", "ka", "negotiate keep-alive")
    stop(ctx, sq)


# ---------------------------------------------------------------------------
# stall: a stopped winbindd must not slow Kerberos or forwarding


def pending_ntlm(ctx, t, w, n):
    """n NTLM handshakes whose AUTHENTICATE waits on winbindd, which this
    stops (SIGSTOP) after the CHALLENGEs; returns the clients (their 200s
    are read after w.resume())."""
    from harness import ntlm_client as ha  # noqa: E402  (byte-level NTLM client)
    from harness.procs import threads_waiting_on_socket  # noqa: E402
    from harness.rawhttp import RawClient, get_request  # noqa: E402
    from harness.tools import wait_until  # noqa: E402
    url = B.origin_url(ctx, "/small")
    legs = []
    for _ in range(n):
        c = RawClient("127.0.0.1", t.port, timeout=120)
        t1 = ha.negotiate_msg()
        r = c.request(get_request(url, [ha.pa("NTLM " + ha.b64(t1))]))
        legs.append((c, ha.challenge_from(r), t1))
    w.pause()
    for c, chal, t1 in legs:
        t3 = ha.authenticate_msg(chal, USER, w.users[USER], DOMAIN, negotiate=t1)
        c.send(get_request(url, [ha.pa("NTLM " + ha.b64(t3))]))
    # every winbind worker inside a call on the stopped winbindd
    wait_until(lambda: len(threads_waiting_on_socket(t.proc.pid)) >= 4, 20,
               "winbind workers blocked on the stopped winbindd")
    return legs


def section_stall(ctx):
    st = state(ctx)
    nl = neg_load(ctx, "stall", "stall")
    if nl is None:
        return
    loader, k, cenv, extra = nl.loader, nl.k, nl.cenv, nl.extra
    w = winbind_fresh(ctx)
    if w is None:
        peer_unavailable(ctx, "stall", st.wb_reason)
        return
    genv = dict(w.gateway_env())
    genv.update(k.env)
    n = ctx.args.stall_pending

    # pending handshakes all come from 127.0.0.1: the per-address caps are
    # not what this measures
    ag = start_ag(ctx, "ag-stall", ["auth_schemes negotiate ntlm", "proxy_host localhost",
                                    f"keytab {k.keytab}", f"rcache_dir {k.rcache_dir}",
                                    "ntlm_backend winbind", "basic_backend winbind",
                                    "user_file none", "handshake_timeout 300s",
                                    f"max_handshakes {n + 4096}",
                                    f"max_handshakes_per_addr {n + 4096}"],
                  env=genv, prefix=w.client_prefix(), probe_fn=nl.probe)
    if ag is None:
        return
    st.wb_used = True
    normal = {"new": [], "ka": []}
    stalled = {"new": [], "ka": []}
    ratios = {"new": [], "ka": []}
    pending_ok = pending_all = 0

    def measure(phase, into):
        for mode in ("new", "ka"):
            r = run_loadgen(ctx, ag, loader, mode, env=cenv, extra=extra, host="localhost",
                            label=f"stall {phase} negotiate {mode}")
            into[mode].append(r["rate"] if r else None)

    for rnd in range(ctx.args.stall_rounds):
        measure(f"normal {rnd + 1}", normal)
        legs = []
        try:
            legs = pending_ntlm(ctx, ag, w, n)
            B.log(f"stall: winbindd stopped, {n} NTLM handshakes pending")
            measure(f"stalled {rnd + 1}", stalled)
        except Exception as e:  # a failed wait: report, resume winbindd, go on
            ctx.note(f"stall: {e}", failure=True)
            for mode in ("new", "ka"):
                stalled[mode].append(None)
        finally:
            w.resume()
        ok = 0
        for c, _, _ in legs:
            try:
                if c.recv_response(timeout=120).status == 200:
                    ok += 1
            except Exception:
                pass
            c.close()
        pending_ok += ok
        pending_all += len(legs)
        B.log(f"stall: winbindd resumed, {ok} of {len(legs)} pending handshakes got 200")
    measure("normal last", normal)
    stop(ctx, ag)
    if pending_ok != pending_all or pending_all == 0:
        ctx.note(f"stall: {pending_ok} of {pending_all} pending NTLM handshakes ended in 200",
                 failure=True)
    for mode, metric in (("new", "stall_neg_hs"), ("ka", "stall_neg_ka")):
        for i, v in enumerate(stalled[mode]):
            around = [x for x in normal[mode][i:i + 2] if x is not None]
            if v is not None and around:
                ratios[mode].append(round(v / (sum(around) / len(around)), 3))
        nv = [x for x in normal[mode] if x is not None]
        sv = [x for x in stalled[mode] if x is not None]
        if nv:
            ctx.put(metric, "ceiling", sum(nv) / len(nv))
        if sv and len(sv) == len(stalled[mode]):
            ctx.put(metric, "authgate", sum(sv) / len(sv))
        B.log(f"stall {mode}: normal {[round(x) if x else x for x in normal[mode]]}/s, "
              f"stalled {[round(x) if x else x for x in stalled[mode]]}/s, stalled/neighbours "
              f"{[round(x, 2) for x in ratios[mode]]}")
    st.info["stall_pending"] = n
    st.info["stall_rounds"] = ctx.args.stall_rounds
    st.info["stall_ratios"] = ratios
    st.info["stall_pending_ok"] = f"{pending_ok}/{pending_all}"


# ---------------------------------------------------------------------------
# report

# section, metric, label, unit, format, targets [(kind, threshold, text)]
# kinds: "ag/squid>=", "ag/ceil>=", "ag>=", "ag<"; "note": text only, no target
ROWS = [
    ("basic", "basic_local_ka", "Basic local, keep-alive", "req/s", "{:.0f}",
     [("ag/squid>=", 3.0, "ag/squid >= 3x")]),
    ("basic", "basic_local_ka_cpu_us", "  CPU per request", "us", "{:.1f}",
     [("note", None, "lower is better")]),
    ("basic", "basic_local_nc", "Basic local, new conn", "req/s", "{:.0f}", []),
    ("basic", "basic_wb_ka", "Basic winbind, keep-alive", "req/s", "{:.0f}",
     [("ag/squid>=", 3.0, "ag/squid >= 3x")]),
    ("basic", "basic_wb_ka_cpu_us", "  CPU per request", "us", "{:.1f}",
     [("note", None, "lower is better")]),
    ("basic", "basic_wb_nc", "Basic winbind, new conn", "req/s", "{:.0f}", []),
    ("basic", "basic_wb_nocache_ka", "Basic winbind, no cache, k-a", "req/s", "{:.0f}",
     [("ag/ceil>=", 0.90, "ag/ceiling >= 0.90")]),
    ("ntlm", "ntlm_hs_local", "NTLM handshakes, local file", "hs/s", "{:.0f}",
     [("ag>=", 5000, "ag >= 5,000/s")]),
    ("ntlm", "ntlm_ka_local", "NTLM keep-alive, local file", "req/s", "{:.0f}", []),
    ("ntlm", "ntlm_hs_wb", "NTLM handshakes, winbind", "hs/s", "{:.0f}",
     [("ag/ceil>=", 0.90, "ag/ceiling >= 0.90")]),
    ("ntlm", "ntlm_hs_wb_cpu_us", "  CPU per handshake", "us", "{:.1f}",
     [("note", None, "lower is better")]),
    ("ntlm", "ntlm_ka_wb", "NTLM keep-alive, winbind", "req/s", "{:.0f}", []),
    ("ntlm", "ntlm_ka_wb_cpu_us", "  CPU per request", "us", "{:.1f}",
     [("note", None, "lower is better")]),
    ("ntlm", "ntlm_rss_before", "NTLM local RSS before", "MiB", "{:.1f}", []),
    ("ntlm", "ntlm_rss_after", "  after {rss_n} handshakes", "MiB", "{:.1f}", []),
    ("ntlm", "ntlm_rss_growth", "  growth", "KiB", "{:+.0f}", [("ag<", 1024, "flat: < +1 MiB")]),
    ("negotiate", "neg_hs", "Negotiate handshakes", "hs/s", "{:.0f}",
     [("ag/squid>=", 3.0, "ag/squid >= 3x"), ("ag/ceil>=", 0.60, "ag/ceiling >= 0.60")]),
    ("negotiate", "neg_hs_cpu_us", "  CPU per handshake", "us", "{:.1f}",
     [("note", None, "lower is better")]),
    ("negotiate", "neg_ka", "Negotiate keep-alive", "req/s", "{:.0f}",
     [("ag/squid>=", 3.0, "ag/squid >= 3x")]),
    ("negotiate", "neg_ka_cpu_us", "  CPU per request", "us", "{:.1f}",
     [("note", None, "lower is better")]),
    ("stall", "stall_neg_hs", "Kerberos logins, wb stopped", "hs/s", "{:.0f}",
     [("ag/ceil>=", 0.90, "stalled/normal >= 0.90")]),
    ("stall", "stall_neg_ka", "Kerberos k-a fwd, wb stopped", "req/s", "{:.0f}",
     [("ag/ceil>=", 0.90, "stalled/normal >= 0.90")]),
]


def _ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def print_table(ctx):
    st = getattr(ctx, "auth", None)
    if st is None or not st.sections:
        return
    a = ctx.args
    cols = ["authgate", "squid", "ceiling"]
    legend = [f"Authentication (user {USER}; {a.seconds} s per measurement; {a.auth_conns} "
              f"parallel connections, {a.threads} client threads; Squid helpers: children "
              f"{a.squid_children} startup={a.squid_children} idle={min(a.squid_children, 4)} "
              "per auth_param; each ceiling is the mean of two runs of the backend alone, "
              "right before and right after authgate's):"]
    if "basic" in st.sections:
        legend.append("basic: authgate basic_backend local (user file) / winbind vs Squid "
                      "basic_ncsa_auth (htpasswd, APR1) / ntlm_auth squid-2.5-basic; wrk sends "
                      "Proxy-Authorization on every request. Rows without 'no cache' use both "
                      "proxies' default credential caches; 'no cache' is authgate "
                      "basic_cache_ttl 0 (no Squid column: Squid 5.7 hangs with credentialsttl "
                      f"0). Ceiling: wbclient_bench -m plain, {a.wb_threads} threads.")
    if "ntlm" in st.sections:
        legend.append("ntlm: ntlm_load (NTLMv2). Handshakes: a new connection each (Type 1, "
                      "407 + Type 2, Type 3, 200). Keep-alive: one handshake per connection, "
                      "then plain requests. Squid: ntlm_auth squid-2.5-ntlmssp (winbind only). "
                      f"Ceiling: wbclient_bench -m ntlmv2, {a.wb_threads} threads. winbindd is "
                      "restarted before each winbind measurement (its domain child leaks and "
                      "slows down).")
    if "negotiate" in st.sections:
        legend.append("negotiate: negotiate_load (SPNEGO/krb5, a fresh AP-REQ per handshake, "
                      "MEMORY ccache) vs Squid negotiate_kerberos_auth. Ceiling: gss_pair, "
                      f"init + accept in one process, {a.gss_threads} threads.")
    if "stall" in st.sections:
        legend.append("stall: one authgate (Negotiate + NTLM through winbind), origin named "
                      "localhost; authgate column: negotiate_load with winbindd SIGSTOPped and "
                      f"{st.info.get('stall_pending', a.stall_pending)} NTLM AUTHENTICATEs "
                      "waiting on it; ceiling column: the same load with winbindd running; "
                      f"{st.info.get('stall_rounds', a.stall_rounds)} stop/resume rounds, "
                      "each stalled run against the normal runs either side: "
                      f"{st.info.get('stall_ratios')}.")
    if any(ctx.results.get(m + "_cpu_us") for _, m, *_ in ROWS):
        legend.append("CPU per request/handshake: the proxy's user + system CPU over the run "
                      "(/proc utime+stime, before and after) divided by what it completed "
                      "(handshakes in the handshake rows); Squid's includes its helper "
                      "processes (ntlm_auth, negotiate_kerberos_auth, basic_ncsa_auth: part "
                      "of its cost), authgate has none; winbindd's and the KDC's CPU is "
                      "counted for neither (both proxies use the same ones).")
    print()
    for i, text in enumerate(legend):
        print(textwrap.fill(text, 100, initial_indent="" if i == 0 else "  ",
                            subsequent_indent="  " if i == 0 else "    "))
    hdr = (f"{'metric':<30} {'unit':<6}" + "".join(f"{c:>10}" for c in cols) +
           f"{'ag/squid':>10}{'ag/ceil':>9}   target (met?)")
    print(hdr)
    print("-" * len(hdr))
    for section, metric, label, unit, fmt, targets in ROWS:
        if section not in st.sections:
            continue
        label = label.format(rss_n=f"{st.info.get('rss_handshakes', a.rss_handshakes):,}")
        vals = [ctx.get(metric, c) for c in cols]
        ag, sq, ce = vals
        cells = ""
        for c, v in zip(cols, vals):
            applicable = not (c == "ceiling" and not any(k == "ag/ceil>=" for k, *_ in targets)) \
                and not (c == "squid" and section == "ntlm" and metric.endswith("_local")) \
                and not (c == "squid" and metric == "basic_wb_nocache_ka") \
                and not (c != "authgate" and metric.startswith("ntlm_rss")) \
                and not (c == "squid" and section == "stall")
            cells += f"{(fmt.format(v) if v is not None else ('n/a' if applicable else '-')):>10}"
        rs, rc = _ratio(ag, sq), _ratio(ag, ce)
        rcells = f"{(f'{rs:.2f}x' if rs is not None else '-'):>10}" + \
            f"{(f'{rc:.2f}' if rc is not None else '-'):>9}"
        tcells = []
        for kind, thr, text in targets:
            if kind == "note":
                tcells.append(text)
                continue
            v = {"ag/squid>=": rs, "ag/ceil>=": rc, "ag>=": ag, "ag<": ag}[kind]
            met = "n/a" if v is None else ("yes" if (v < thr if kind == "ag<" else v >= thr)
                                           else "no")
            tcells.append(f"{text} ({met})")
        print(f"{label:<30} {unit:<6}{cells}{rcells}   {'; '.join(tcells)}")
    print()


def json_info(ctx):
    st = getattr(ctx, "auth", None)
    if st is None:
        return {}
    a = ctx.args
    return {"sections": st.sections, "auth_conns": a.auth_conns,
            "squid_children": a.squid_children, "wb_threads": a.wb_threads,
            "gss_threads": a.gss_threads, "rss_handshakes": st.info.get("rss_handshakes"),
            "stall_pending": st.info.get("stall_pending"),
            "stall_pending_ok": st.info.get("stall_pending_ok"),
            "stall_rounds": st.info.get("stall_rounds"),
            "stall_ratios": st.info.get("stall_ratios"),
            "winbind_unavailable": st.wb_reason, "kdc_unavailable": st.kdc_reason}
