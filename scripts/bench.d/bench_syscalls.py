"""bench_syscalls.py - the `syscalls` section of scripts/bench (`scripts/bench
--syscalls` is `--sections syscalls`).

Counts the system calls each proxy makes per request with `strace -c -f`
attached (-p) to every process of the proxy's tree (threads followed), over
a fixed number of requests made by a non-blocking client in this process
(Driver), warmed before strace attaches (client and upstream connections
exist):

  keep-alive, 1 conn     BENCH_SYS_REQUESTS (2000) GETs of /small, one after
                         another on one connection
  keep-alive, C conns    the same number over BENCH_SYS_CONC (16) connections
                         at once, one request in flight on each: the event
                         wait serves every ready connection, as under load
  new connection         BENCH_SYS_CONNS (500) connections with one GET each
                         (Connection: close, read to the proxy's close), one
                         at a time, then C at once
  NTLM                   BENCH_SYS_HANDSHAKES (200) full handshakes on new
                         connections (ntlm_load -m new -c 1 -n N): authgate
                         with its local user file, Squid with ntlm_auth over
                         the private winbindd
  Negotiate              the same with negotiate_load against the private KDC

Each row is split into the event wait (epoll_wait / epoll_pwait: once per
wake-up of a loop, whatever it then serves) and the other calls, and the
per-syscall breakdown is printed: issue 16 counted the calls without the
event wait (authgate 7, nginx 5), the first version of this section counted
them all over one sequential connection (two waits per request).

The three: authgate (workers from --workers, default 1; access log ON, to a
file, with log_buffer BENCH_SYS_LOG_BUFFER (64k, its default, set
explicitly): the issue's "with buffered logs"), Squid 5.7 (-N, access_log
none, as in the other sections) and nginx as a reverse proxy to the same
origin (worker_processes 1, access_log off unless BENCH_SYS_NGINX_LOG=1,
upstream keepalive: the event-driven reference; it does not authenticate,
so its handshake cells are n/a).  strace slows the traced process down but
does not change what it calls; idle wake-ups (timers) during the window are
counted too, so the figures are a slight upper bound for everyone (most for
the 1-conn rows, where the window is longest per request).

CPU per request (us) for the same three comes from wrk runs without strace
(keep-alive and new connection, -c BENCH_CONNS), read from /proc like the
other CPU rows (CpuMeter), in BENCH_SYS_ROUNDS (5) interleaved rounds of
BENCH_SYS_CPU_SECONDS (2) s runs: authgate, nginx, squid in turn, so the
VM's load changes hit the three of a round alike.  Reported: each proxy's
median, the median of the same-round ratios (what survives the noise), the
spread over the rounds, and the load average at the start and the end.
"""

import os
import selectors
import signal
import socket
import subprocess
import time

B = None           # bench.py
A = None           # bench_auth.py

# metric prefix, label; each syscall metric has the total (prefix), the event
# wait (prefix + "_wait": epoll_wait / epoll_pwait) and the rest
# (prefix + "_other"); "{c}" is the concurrent connections
SYS_ROWS = [
    ("sys_ka", "keep-alive, 1 conn"),
    ("sys_kac", "keep-alive, {c} conns at once"),
    ("sys_nc", "new connection, 1 at a time"),
    ("sys_ncc", "new connection, {c} at once"),
    ("sys_ntlm", "NTLM handshake (new conn)"),
    ("sys_neg", "Negotiate handshake (new conn)"),
]
CPU_ROWS = [
    ("sys_cpu_ka", "keep-alive", None),
    ("sys_cpu_nc", "new-conn", {"Connection": "close"}),
]
COLS = ["authgate", "nginx", "squid"]
# the event wait: what an event loop calls once per wake-up, whatever it then
# serves (one request, or every ready connection under load)
EVENT_WAIT = ("epoll_wait", "epoll_pwait", "epoll_pwait2")


def register(bench_module, auth_module):
    global B, A
    B, A = bench_module, auth_module
    return [("syscalls", section_syscalls)]


def parse_env(a, env_int):
    a.sys_requests = env_int("BENCH_SYS_REQUESTS", 500 if a.quick else 2000)
    a.sys_conns = env_int("BENCH_SYS_CONNS", 200 if a.quick else 500)
    a.sys_conc = env_int("BENCH_SYS_CONC", 16)
    a.sys_handshakes = env_int("BENCH_SYS_HANDSHAKES", 50 if a.quick else 200)
    a.sys_rounds = env_int("BENCH_SYS_ROUNDS", 3 if a.quick else 5)
    a.sys_cpu_seconds = env_int("BENCH_SYS_CPU_SECONDS", 1 if a.quick else 2)
    a.sys_log_buffer = os.environ.get("BENCH_SYS_LOG_BUFFER") or "64k"
    a.sys_nginx_log = env_int("BENCH_SYS_NGINX_LOG", 0)


ENV_HELP = ("syscalls section: BENCH_SYS_REQUESTS (2000 keep-alive requests counted), "
            "BENCH_SYS_CONNS (500 new connections counted), BENCH_SYS_CONC (16: the "
            "concurrent rows' client connections), BENCH_SYS_HANDSHAKES (200), "
            "BENCH_SYS_ROUNDS (5 interleaved CPU rounds), BENCH_SYS_CPU_SECONDS (2 per wrk run "
            "of a round), BENCH_SYS_LOG_BUFFER (64k: authgate's log_buffer; 0 = a write per "
            "line), BENCH_SYS_NGINX_LOG=1 (nginx logs too, buffer=64k flush=1s).")


# ---------------------------------------------------------------------------
# strace


def traced(pid):
    """True once every thread of pid has a tracer."""
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("TracerPid:") and line.split()[1] == "0":
                        return False
    except OSError:
        return True   # gone
    return True


class Strace:
    def __init__(self, ctx, t, label):
        self.ctx = ctx
        self.out = os.path.join(ctx.tmp, f"strace-{t.name}-{label}.txt")
        self.pids = B.tree_pids(t)
        argv = ["strace", "-c", "-f", "-o", self.out]
        for p in self.pids:
            argv += ["-p", str(p)]
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        ctx.procs.append(self.p)
        B.record_pgid(ctx, self.p.pid)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not all(traced(p) for p in self.pids):
            if self.p.poll() is not None:
                raise RuntimeError(f"strace exited ({self.p.returncode})")
            time.sleep(0.02)
        time.sleep(0.2)   # the last attach messages settle

    def stop(self):
        """Detaches; returns {syscall: calls}."""
        self.p.send_signal(signal.SIGINT)
        try:
            self.p.wait(timeout=30)
        finally:
            B.stop_proc(self.ctx, self.p, signal.SIGKILL, grace=1)
        calls = {}
        with open(self.out) as f:
            for line in f:
                fields = line.split()
                if len(fields) < 5 or not fields[0][0].isdigit() or fields[-1] == "total":
                    continue
                try:
                    calls[fields[-1]] = int(fields[3])
                except ValueError:
                    continue
        return calls


def summary(calls, n):
    """(calls per request, "name per-request, ..." for every call made, with
    3 decimals: the rare ones -- timers, the buffered log's flush -- show)."""
    total = sum(calls.values())
    top = sorted(calls.items(), key=lambda kv: (-kv[1], kv[0]))
    return total / n, ", ".join(f"{k} {v / n:.3f}" for k, v in top)


def put_calls(ctx, metric, col, calls, n, what):
    """Puts metric (all calls per unit), metric_wait (the event wait) and
    metric_other (the rest) for column col, and the breakdown."""
    per, detail = summary(calls, n)
    wait = sum(v for k, v in calls.items() if k in EVENT_WAIT) / n
    ctx.put(metric, col, per)
    ctx.put(metric + "_wait", col, wait)
    ctx.put(metric + "_other", col, per - wait)
    ctx.sys_detail[(metric, col)] = detail
    B.log(f"syscalls {metric} {col}: {per:.2f} per {what} over {n}, of which {wait:.2f} event "
          f"wait ({detail})")


# ---------------------------------------------------------------------------
# clients: one driver, non-blocking, for 1 connection (one request after
# another) and for C connections at once (the event wait amortised over the
# ready connections, as under production load)


def request(ctx, close):
    return (f"GET {B.origin_url(ctx, '/small')} HTTP/1.1\r\nHost: 127.0.0.1:{ctx.origin.port}\r\n"
            + ("Connection: close\r\n" if close else "") + "\r\n").encode()


def response_len(buf):
    """The length of the complete response (Content-Length body) at the start
    of buf, or None if more bytes are needed; raises OSError on a bad one."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end])
    status = head.split(b" ", 2)[1] if head.count(b" ") >= 1 else b"?"
    if status != b"200":
        raise OSError(f"status {status!r}")
    n = None
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v)
    if n is None:
        raise OSError("no Content-Length")
    return end + 4 + n if len(buf) >= end + 4 + n else None


class Slot:
    """One client connection of the driver."""

    def __init__(self):
        self.s = None
        self.buf = bytearray()
        self.eof = False


class Driver:
    """GETs of /small through t over `conns` client connections at once, each
    with one request in flight: keep-alive (the connections stay open across
    run() calls) or close (a new connection per request, read to the
    proxy's close).  conns=1 is one request after another."""

    def __init__(self, ctx, t, conns, close):
        self.t, self.close = t, close
        self.req = request(ctx, close)
        self.sel = selectors.DefaultSelector()
        self.slots = [Slot() for _ in range(conns)]

    def _start(self, sl):
        sl.buf.clear()
        sl.eof = False
        if sl.s is None:
            sl.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sl.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sl.s.setblocking(False)
            sl.s.connect_ex(("127.0.0.1", self.t.port))
            self.sel.register(sl.s, selectors.EVENT_WRITE, sl)
        else:
            self._send(sl)

    def _send(self, sl):
        if sl.s.send(self.req) != len(self.req):   # ~100 bytes fit any buffer
            raise OSError("short send")
        self.sel.modify(sl.s, selectors.EVENT_READ, sl)

    def run(self, total, timeout=180):
        """Makes `total` requests; returns when all completed, raises OSError
        on a bad or missing response."""
        sel, close = self.sel, self.close
        issued = done = 0
        deadline = time.monotonic() + timeout
        for sl in self.slots[:total]:
            issued += 1
            self._start(sl)
        while done < total:
            left = deadline - time.monotonic()
            if left <= 0:
                raise OSError(f"timeout: {done} of {total} responses")
            for key, ev in sel.select(min(left, 1.0)):
                sl = key.data
                if ev & selectors.EVENT_WRITE:
                    err = sl.s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, os.strerror(err))
                    self._send(sl)
                    continue
                chunk = sl.s.recv(65536)
                if chunk:
                    sl.buf += chunk
                else:
                    sl.eof = True
                n = response_len(sl.buf)
                if close:
                    if not sl.eof:
                        continue        # the proxy closes: wait for it
                    if n is None or n != len(sl.buf):
                        raise OSError(f"closed with {len(sl.buf)} bytes of a response")
                    sel.unregister(sl.s)
                    sl.s.close()
                    sl.s = None
                elif n is None:
                    if sl.eof:
                        raise OSError("closed before a whole response")
                    continue
                elif n != len(sl.buf):
                    raise OSError("bytes after the response")
                done += 1
                if issued < total:
                    issued += 1
                    self._start(sl)

    def close_all(self):
        for sl in self.slots:
            if sl.s is not None:
                sl.s.close()
                sl.s = None
        self.sel.close()


def count(ctx, t, conns, n, close, label):
    """{syscall: calls} of t's processes over n requests on `conns` client
    connections at once, warmed first (5 requests per connection, or 2 new
    connections per slot), so the client connections (keep-alive) and the
    proxy's upstream connections exist before strace attaches."""
    d = Driver(ctx, t, conns, close)
    try:
        d.run(conns * (2 if close else 5))
        st = Strace(ctx, t, label)
        try:
            d.run(n)
        finally:
            calls = st.stop()
    finally:
        d.close_all()
    return calls


def count_handshakes(ctx, t, loader, n, env=None, extra=()):
    st = Strace(ctx, t, "hs")
    try:
        r = A.run_loadgen(ctx, t, loader, "new", env=env, count=n, conns=1, extra=extra,
                          label=f"syscalls {t.name}")
    finally:
        calls = st.stop()
    if not r:
        return None
    return calls, r["handshakes"]


# ---------------------------------------------------------------------------
# nginx as a reverse proxy


def start_nginx_proxy(ctx, name="nginx", location_extra=""):
    """nginx as a reverse proxy to the bench's origin; location_extra: more
    directives for its location (the throughput section streams with
    "proxy_buffering off;", as authgate and Squid do)."""
    t = B.Target(name, "nginx", B.free_port())
    ctx.targets[name] = t
    d = os.path.join(ctx.tmp, name)
    os.makedirs(d, mode=0o755)
    conf = os.path.join(d, "nginx.conf")
    # BENCH_SYS_NGINX_LOG=1: a buffered access log like authgate's (default:
    # off, the reference)
    log = (f"\n        access_log {d}/access.log combined buffer=64k flush=1s;"
           if ctx.args.sys_nginx_log else "")
    with open(conf, "w") as f:
        f.write(B.nginx_conf(ctx, d, "nginx as a reverse proxy for scripts/bench (the event-driven "
                             "reference)", f"""
    upstream origin {{
        server 127.0.0.1:{ctx.origin.port};
        keepalive 256;
    }}
    server {{
        listen 127.0.0.1:{t.port} backlog=4096;{log}
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;{location_extra}
        }}
    }}"""))
    t.logs = [os.path.join(d, "error.log"), os.path.join(d, "stdout.log")]
    t.proc = B.spawn(ctx, ["nginx", "-e", os.path.join(d, "error.log"), "-p", d + "/", "-c", conf],
                     os.path.join(d, "stdout.log"))

    def probe(ctx, t):
        try:
            status, _, body = B.http_get(ctx, t.port)
        except OSError as e:
            return f"probe failed: {e}"
        if status != 200 or len(body) != B.SMALL_SIZE:
            return f"probe got {status} with a {len(body)}-byte body"
        return None
    return B.finish_start(ctx, t, 10, probe)


# ---------------------------------------------------------------------------


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def section_syscalls(ctx):
    a = ctx.args
    ctx.sys_detail = {}
    ctx.sys_load = [loadavg()]
    t0 = time.monotonic()
    d = os.path.join(ctx.tmp, "ag-sys")
    targets = []
    if not a.no_authgate:
        targets.append(B.start_authgate(ctx, "ag-sys", [f"access_log {d}/access.log",
                                                        f"log_buffer {a.sys_log_buffer}"]))
    targets.append(start_nginx_proxy(ctx))
    if not a.no_squid:
        sq = ctx.targets.get("squid")
        targets.append(sq if sq is not None and sq.ok else B.start_squid(ctx))
    col = {"ag-sys": "authgate", "nginx": "nginx", "squid": "squid"}
    live = [t for t in targets if t.ok]

    for t in live:
        c = col[t.name]
        for metric, conns, n, close, what in (
                ("sys_ka", 1, a.sys_requests, False, "request"),
                ("sys_kac", a.sys_conc, a.sys_requests, False, "request"),
                ("sys_nc", 1, a.sys_conns, True, "connection"),
                ("sys_ncc", a.sys_conc, a.sys_conns, True, "connection")):
            try:
                put_calls(ctx, metric, c, count(ctx, t, conns, n, close, metric), n, what)
            except (OSError, RuntimeError, subprocess.SubprocessError) as e:
                ctx.note(f"syscalls {metric} {c}: {e!r}", failure=True)
    cpu_rounds(ctx, live, col)
    ctx.sys_load.append(loadavg())
    for t in targets:
        if t.name != "squid":
            B.stop_target(ctx, t)

    handshakes(ctx)
    ctx.sys_load.append(loadavg())
    ctx.sys_seconds = time.monotonic() - t0
    print_table(ctx)


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return None if not n else (xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2)


def cpu_rounds(ctx, targets, col):
    """CPU us per request from /proc over short wrk runs without strace,
    interleaved: each round runs every proxy in turn (keep-alive, then
    new-conn), so a change in the VM's load hits all three of a round alike;
    the ratios are taken within a round, then their median."""
    a = ctx.args
    per = {(k, col[t.name]): [] for k, _, _ in CPU_ROWS for t in targets}
    ksys = {(k, col[t.name]): [] for k, _, _ in CPU_ROWS for t in targets}
    for rnd in range(a.sys_rounds):
        for key, label, hdrs in CPU_ROWS:
            for t in targets:
                r = B.wrk(ctx, t, "/small", a.conns, a.threads, a.sys_cpu_seconds, headers=hdrs,
                          label=f"syscalls-cpu {label} round {rnd + 1}")
                ok = r is not None and r.get("cpu_us") is not None and r.get("verified")
                per[(key, col[t.name])].append(r["cpu_us"] if ok else None)
                ksys[(key, col[t.name])].append(r.get("cpu_sys_us") if ok else None)
    ctx.sys_cpu = per
    ctx.sys_cpu_kernel = ksys
    for (key, c), xs in per.items():
        m = median([x for x in xs if x is not None])
        if m is not None:
            ctx.put(key, c, m)
    for key, _, _ in CPU_ROWS:
        ag = per.get((key, "authgate"), [])
        for other in ("nginx", "squid"):
            o = per.get((key, other), [])
            rs = [x / y for x, y in zip(ag, o) if x is not None and y]
            ctx.put(f"{key}_ratio_{other}", "authgate", median(rs))
            ctx.put(f"{key}_ratios_{other}", "authgate", rs)


def handshakes(ctx):
    a = ctx.args
    n = a.sys_handshakes
    ntlm = A.tool(ctx, "ntlm_load")
    if ntlm is not None:
        pw = A.peers(ctx).DEFAULT_USERS[A.USER]
        creds = ["-u", A.USER, "-P", pw, "-D", A.DOMAIN, "-W", "BENCH"]
        dd = A.section_dir(ctx, "sys-ntlm")
        users = os.path.join(dd, "users")
        A.write_user_file(ctx, users, pw)

        def hs(ctx, t, env=None):
            r = A.run_loadgen(ctx, t, ntlm, "new", env=env, count=3, conns=1, extra=creds,
                              label="probe", verify=False)
            return r if isinstance(r, str) else None
        ag = A.start_ag(ctx, "ag-sys-ntlm", ["auth_schemes ntlm", "ntlm_backend local",
                                             "basic_backend local", f"user_file {users}",
                                             f"ntlm_domain {A.DOMAIN}",
                                             f"access_log {dd}/access.log",
                                             f"log_buffer {a.sys_log_buffer}"],
                        probe_fn=A.probe_auth("NTLM", handshake=hs))
        if ag is not None:
            put_hs(ctx, "sys_ntlm", "authgate", count_handshakes(ctx, ag, ntlm, n, extra=creds))
            A.stop(ctx, ag)
        w = A.winbind_fresh(ctx) if not a.no_squid else None
        if w is not None:
            helper = (f"/usr/bin/ntlm_auth --configfile={w.smb_conf} "
                      "--helper-protocol=squid-2.5-ntlmssp")
            sq = A.start_sq(ctx, "sq-sys-ntlm",
                            A.squid_auth_lines(ctx, "ntlm", helper,
                                               ["auth_param ntlm keep_alive on"]),
                            env=w.gateway_env(), prefix=w.client_prefix(),
                            probe_fn=A.probe_auth("NTLM", handshake=hs))
            if sq is not None:
                put_hs(ctx, "sys_ntlm", "squid", count_handshakes(ctx, sq, ntlm, n, extra=creds))
                A.stop(ctx, sq)
            A.state(ctx).wb_used = True
    nl = A.neg_load(ctx, "sys-negotiate", "Negotiate")
    if nl is not None:
        ag = A.start_ag(ctx, "ag-sys-neg", ["auth_schemes negotiate", "proxy_host localhost",
                                            f"keytab {nl.k.keytab}",
                                            f"rcache_dir {nl.k.rcache_dir}",
                                            f"access_log {A.section_dir(ctx, 'sys-neg')}/access.log",
                                            f"log_buffer {a.sys_log_buffer}"],
                        env=nl.k.env, probe_fn=nl.probe)
        if ag is not None:
            put_hs(ctx, "sys_neg", "authgate",
                   count_handshakes(ctx, ag, nl.loader, n, env=nl.cenv, extra=nl.extra))
            A.stop(ctx, ag)
        helper = (f"/usr/lib/squid/negotiate_kerberos_auth -k {nl.k.keytab} "
                  f"-s {nl.k.service_principal}")
        sq = A.start_sq(ctx, "sq-sys-neg",
                        A.squid_auth_lines(ctx, "negotiate", helper,
                                           ["auth_param negotiate keep_alive on"]),
                        env=nl.k.env, probe_fn=nl.probe)
        if sq is not None:
            put_hs(ctx, "sys_neg", "squid",
                   count_handshakes(ctx, sq, nl.loader, n, env=nl.cenv, extra=nl.extra))
            A.stop(ctx, sq)
    # the auth table must not list these as its own sections
    st = A.state(ctx)
    st.sections = [s for s in st.sections if s != "sys-negotiate"]


def put_hs(ctx, metric, col, got):
    if not got:
        return
    calls, n = got
    if n:
        put_calls(ctx, metric, col, calls, n, "handshake")


def fmt_ratio(r):
    return f"{r:.2f}x" if r is not None else "-"


def print_table(ctx):
    a = ctx.args
    load = getattr(ctx, "sys_load", ["?"])
    nv = B.version_of(["nginx", "-v"], r"nginx/(\S+)")
    print()
    print(f"== syscalls per request: strace -c -f -p on every process of each proxy, over "
          f"{a.sys_requests} keep-alive requests, {a.sys_conns} new connections (one GET of "
          f"/small, 100 B, each), {a.sys_handshakes} handshakes per row; the 1-conn rows make one "
          f"request after another, the {a.sys_conc}-conn rows keep {a.sys_conc} client "
          f"connections busy at once (one request in flight on each)")
    print(f"   authgate: workers {a.workers}, access_log to a file with log_buffer "
          f"{a.sys_log_buffer} ({'a write per line' if a.sys_log_buffer in ('0', '0k') else 'buffered'}), "
          f"auth_schemes none, its upstream pool (upstream_keepalive default)")
    print(f"   nginx {nv}: reverse proxy to the same origin, worker_processes 1, access_log "
          f"{'to a file, buffer=64k flush=1s' if a.sys_nginx_log else 'off'}, upstream keepalive 256")
    print("   squid: -N (one process), access_log none, cache deny all")
    print(f"   load average (1/5/15 min): start {load[0]}"
          + (f", after the open-proxy rows {load[1]}" if len(load) > 1 else "")
          + (f", end {load[2]}" if len(load) > 2 else "")
          + (f"; section took {ctx.sys_seconds:.0f} s" if hasattr(ctx, "sys_seconds") else ""))
    hdr = f"{'per request (connection, handshake)':<40}" + "".join(f"{c:>10}" for c in COLS) + \
        f"{'ag/nginx':>10}{'ag/squid':>10}"
    print(hdr)
    print("-" * len(hdr))
    for prefix, label in SYS_ROWS:
        for metric, text in ((prefix, label.format(c=a.sys_conc) + ": all"),
                             (prefix + "_wait", "  event wait (epoll_wait/_pwait)"),
                             (prefix + "_other", "  other syscalls")):
            vals = [ctx.get(metric, c) for c in COLS]
            if all(v is None for v in vals):
                continue
            cells = "".join(f"{(f'{v:.2f}' if v is not None else 'n/a'):>10}" for v in vals)
            rc = "".join(f"{fmt_ratio(B.ratio(vals[0], v)):>10}" for v in vals[1:])
            print(f"{text:<40}{cells}{rc}")
    ka = [(ctx.get(m, "authgate"), t) for m, t in (
        ("sys_ka", "all calls, 1 conn"), ("sys_ka_other", "without the event wait, 1 conn"),
        ("sys_kac", f"all calls, {a.sys_conc} conns"),
        ("sys_kac_other", f"without the event wait, {a.sys_conc} conns"))]
    if any(v is not None for v, _ in ka):
        # judged to 0.01: what is left past that is the buffered log's flush
        # and timers (see the breakdown), not a per-request call
        print("target <= 4 syscalls per keep-alive request (buffered logs), authgate: " + "; ".join(
            f"{t} {v:.3f} ({'met' if round(v, 2) <= 4.0 else 'not met'})"
            for v, t in ka if v is not None) + " (met = 4.00 or less to 0.01)")
    print("breakdown, calls per request (connection, handshake):")
    for (metric, c), text in sorted(getattr(ctx, "sys_detail", {}).items()):
        print(f"  {metric} {c}: {text}")

    per = getattr(ctx, "sys_cpu", None)
    if not per:
        return
    print()
    print(f"== CPU us per request (user+system from /proc, no strace): {a.sys_rounds} rounds of "
          f"wrk -c {a.conns} -t {a.threads}, {a.sys_cpu_seconds} s per run, each round running "
          f"authgate, nginx, squid in turn (keep-alive, then new-conn); medians, ratios = median "
          f"of the same round's ratios")
    hdr = f"{'CPU us per request':<40}" + "".join(f"{c:>10}" for c in COLS) + \
        f"{'ag/nginx':>10}{'ag/squid':>10}"
    print(hdr)
    print("-" * len(hdr))
    for key, label, _ in CPU_ROWS:
        vals = [ctx.get(key, c) for c in COLS]
        if all(v is None for v in vals):
            continue
        rat = [ctx.get(f"{key}_ratio_{o}", "authgate") for o in ("nginx", "squid")]
        cells = "".join(f"{(f'{v:.1f}' if v is not None else 'n/a'):>10}" for v in vals)
        print(f"{label + ', median':<40}{cells}" + "".join(f"{fmt_ratio(r):>10}" for r in rat))
        spread = []
        for c in COLS:
            xs = [x for x in per.get((key, c), []) if x is not None]
            spread.append(f"{min(xs):.1f}-{max(xs):.1f}" if xs else "n/a")
        for o in ("nginx", "squid"):
            rs = ctx.get(f"{key}_ratios_{o}", "authgate") or []
            spread.append(f"{min(rs):.2f}-{max(rs):.2f}" if rs else "-")
        print(f"{'  min-max over the rounds':<40}" + "".join(f"{x:>10}" for x in spread))
        # The kernel's part (stime): the same socket calls cost every proxy
        # alike here, so what a proxy's design can still cut is the rest.
        ks = getattr(ctx, "sys_cpu_kernel", {})
        kmed = [median([x for x in ks.get((key, c), []) if x is not None]) for c in COLS]
        if any(k is not None for k in kmed):
            print(f"{'  of which kernel (system), median':<40}" +
                  "".join(f"{(f'{k:.1f}' if k is not None else 'n/a'):>10}" for k in kmed))
            user = [v - k if v is not None and k is not None else None
                    for v, k in zip(vals, kmed)]
            print(f"{'  user space (median minus kernel)':<40}" +
                  "".join(f"{(f'{u:.1f}' if u is not None else 'n/a'):>10}" for u in user))
        for c in COLS:
            xs = per.get((key, c), [])
            if xs:
                print(f"    {c} per round: " + " ".join(
                    f"{x:.1f}" if x is not None else "-" for x in xs))
        for o in ("nginx", "squid"):
            rs = ctx.get(f"{key}_ratios_{o}", "authgate") or []
            if rs:
                print(f"    ag/{o} per round: " + " ".join(f"{r:.2f}" for r in rs))
    for key, label, _ in CPU_ROWS:
        rn, rs = (ctx.get(f"{key}_ratio_{o}", "authgate") for o in ("nginx", "squid"))
        if rn is None and rs is None:
            continue
        print(f"target CPU/request {label}: <= 0.7x nginx: " +
              (f"{rn:.2f}x ({'met' if rn <= 0.7 else 'not met'})" if rn is not None else "n/a") +
              "; <= 0.3x squid: " +
              (f"{rs:.2f}x ({'met' if rs <= 0.3 else 'not met'})" if rs is not None else "n/a"))
