"""bench_syscalls.py - the `syscalls` section of scripts/bench (`scripts/bench
--syscalls` is `--sections syscalls`).

Counts the system calls each proxy makes per request with `strace -c -f`
attached (-p) to every process of the proxy's tree (threads followed), over
a fixed number of requests made by a plain client in this process:

  keep-alive   one client connection, warmed up before strace attaches,
               then BENCH_SYS_REQUESTS (2000) sequential GETs of /small
  new conn     BENCH_SYS_CONNS (500) connections, one GET each
               (Connection: close), one after another
  NTLM         BENCH_SYS_HANDSHAKES (200) full handshakes on new connections
               (ntlm_load -m new -c 1 -n N): authgate with its local user
               file, Squid with ntlm_auth over the private winbindd
  Negotiate    the same with negotiate_load against the private KDC

for authgate (access log ON, to a file: the realistic case), Squid 5.7
(access_log none, as in the other sections) and nginx as a reverse proxy to
the same origin (worker_processes 1, access_log off, upstream keepalive: the
event-driven reference; it does not authenticate, so its handshake cells
are n/a).  strace slows the traced process down but does not change what it
calls; idle wake-ups (timers) during the window are counted too, so the
figures are a slight upper bound for everyone.

CPU per request (us) for the same three comes from wrk runs without strace
(keep-alive and new connection, the base sections' settings), read from
/proc like the other CPU rows (CpuMeter).
"""

import os
import signal
import socket
import subprocess
import time

B = None           # bench.py
A = None           # bench_auth.py

ROWS = [
    # metric, label
    ("sys_ka", "syscalls per keep-alive request"),
    ("sys_nc", "syscalls per new connection"),
    ("sys_ntlm", "syscalls per NTLM handshake"),
    ("sys_neg", "syscalls per Negotiate handshake"),
    ("sys_cpu_ka", "CPU us per keep-alive request"),
    ("sys_cpu_nc", "CPU us per new-conn request"),
]
COLS = ["authgate", "nginx", "squid"]
# the new-connection syscalls shown by name (the list)
NC_DETAIL = ("accept", "accept4", "setsockopt", "getsockopt", "getpeername", "getsockname",
             "socket", "connect", "epoll_ctl", "close", "read", "recvfrom", "write", "writev",
             "sendto", "sendmsg", "recvmsg", "readv", "shutdown", "ioctl", "fcntl")


def register(bench_module, auth_module):
    global B, A
    B, A = bench_module, auth_module
    return [("syscalls", section_syscalls)]


def parse_env(a, env_int):
    a.sys_requests = env_int("BENCH_SYS_REQUESTS", 500 if a.quick else 2000)
    a.sys_conns = env_int("BENCH_SYS_CONNS", 200 if a.quick else 500)
    a.sys_handshakes = env_int("BENCH_SYS_HANDSHAKES", 50 if a.quick else 200)


ENV_HELP = ("syscalls section: BENCH_SYS_REQUESTS (2000), BENCH_SYS_CONNS (500), "
            "BENCH_SYS_HANDSHAKES (200).")


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
    total = sum(calls.values())
    top = sorted(calls.items(), key=lambda kv: -kv[1])
    return total / n, ", ".join(f"{k} {v / n:.2f}" for k, v in top if v / n >= 0.05)


# ---------------------------------------------------------------------------
# clients


def request(ctx, close):
    return (f"GET {B.origin_url(ctx, '/small')} HTTP/1.1\r\nHost: 127.0.0.1:{ctx.origin.port}\r\n"
            + ("Connection: close\r\n" if close else "") + "\r\n").encode()


def read_response(s, buf):
    """Reads one response with a Content-Length body; returns the rest."""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise OSError("closed before the head")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    if status != b"200":
        raise OSError(f"status {status!r}")
    n = None
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v)
    if n is None:
        raise OSError("no Content-Length")
    while len(rest) < n:
        chunk = s.recv(65536)
        if not chunk:
            raise OSError("closed in the body")
        rest += chunk
    return rest[n:]


def count_keepalive(ctx, t, n):
    req = request(ctx, False)
    with socket.create_connection(("127.0.0.1", t.port), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        for _ in range(5):   # warm: the upstream connection exists
            s.sendall(req)
            buf = read_response(s, buf)
        st = Strace(ctx, t, "ka")
        try:
            for _ in range(n):
                s.sendall(req)
                buf = read_response(s, buf)
        finally:
            calls = st.stop()
    return calls


def count_newconn(ctx, t, n):
    req = request(ctx, True)
    with socket.create_connection(("127.0.0.1", t.port), timeout=10) as s:
        s.sendall(req)
        read_response(s, b"")
    st = Strace(ctx, t, "nc")
    try:
        for _ in range(n):
            with socket.create_connection(("127.0.0.1", t.port), timeout=10) as s:
                s.sendall(req)
                read_response(s, b"")
                while s.recv(65536):   # the proxy closes: wait for it
                    pass
    finally:
        calls = st.stop()
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


def start_nginx_proxy(ctx, name="nginx"):
    t = B.Target(name, "nginx", B.free_port())
    ctx.targets[name] = t
    d = os.path.join(ctx.tmp, name)
    os.makedirs(d, mode=0o755)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(B.nginx_conf(ctx, d, "nginx as a reverse proxy for scripts/bench (the event-driven "
                             "reference)", f"""
    upstream origin {{
        server 127.0.0.1:{ctx.origin.port};
        keepalive 256;
    }}
    server {{
        listen 127.0.0.1:{t.port} backlog=4096;
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
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


def section_syscalls(ctx):
    a = ctx.args
    ctx.sys_detail = {}
    d = os.path.join(ctx.tmp, "ag-sys")
    targets = []
    if not a.no_authgate:
        targets.append(B.start_authgate(ctx, "ag-sys", [f"access_log {d}/access.log"]))
    targets.append(start_nginx_proxy(ctx))
    if not a.no_squid:
        sq = ctx.targets.get("squid")
        targets.append(sq if sq is not None and sq.ok else B.start_squid(ctx))
    col = {"ag-sys": "authgate", "nginx": "nginx", "squid": "squid"}

    for t in targets:
        if not t.ok:
            continue
        c = col[t.name]
        try:
            calls = count_keepalive(ctx, t, a.sys_requests)
            per, detail = summary(calls, a.sys_requests)
            ctx.put("sys_ka", c, per)
            ctx.sys_detail[("sys_ka", c)] = detail
            B.log(f"syscalls keep-alive {c}: {per:.2f} per request ({detail})")
            calls = count_newconn(ctx, t, a.sys_conns)
            per, detail = summary(calls, a.sys_conns)
            ctx.put("sys_nc", c, per)
            ctx.sys_detail[("sys_nc", c)] = ", ".join(
                f"{k} {calls[k] / a.sys_conns:.2f}" for k in NC_DETAIL if calls.get(k))
            B.log(f"syscalls new-conn {c}: {per:.2f} per connection ({detail})")
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            ctx.note(f"syscalls {c}: {e!r}", failure=True)
        for key, hdrs, label in (("sys_cpu_ka", None, "keep-alive"),
                                 ("sys_cpu_nc", {"Connection": "close"}, "new-conn")):
            r = B.wrk(ctx, t, "/small", a.conns, a.threads, ctx.seconds, headers=hdrs,
                      label=f"syscalls-cpu {label}")
            if r and r.get("cpu_us") is not None:
                ctx.put(key, c, r["cpu_us"])
    for t in targets:
        if t.name != "squid":
            B.stop_target(ctx, t)

    handshakes(ctx)
    print_table(ctx)


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
                                             f"access_log {dd}/access.log"],
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
                                            f"access_log {A.section_dir(ctx, 'sys-neg')}/access.log"],
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
    if not n:
        return
    per, detail = summary(calls, n)
    ctx.put(metric, col, per)
    ctx.sys_detail[(metric, col)] = detail
    B.log(f"syscalls {metric} {col}: {per:.1f} per handshake over {n} ({detail})")


def print_table(ctx):
    a = ctx.args
    print()
    print(f"== syscalls (strace -c -f -p over {a.sys_requests} keep-alive requests, "
          f"{a.sys_conns} new connections, {a.sys_handshakes} handshakes; CPU from /proc over "
          f"wrk -c {a.conns}, {a.seconds} s)")
    hdr = f"{'per request':<36}" + "".join(f"{c:>10}" for c in COLS) + \
        f"{'ag/nginx':>10}{'ag/squid':>10}"
    print(hdr)
    print("-" * len(hdr))
    for metric, label in ROWS:
        vals = [ctx.get(metric, c) for c in COLS]
        if all(v is None for v in vals):
            continue
        cells = "".join(f"{(f'{v:.2f}' if v is not None else 'n/a'):>10}" for v in vals)
        rn, rs = B.ratio(vals[0], vals[1]), B.ratio(vals[0], vals[2])
        rc = "".join(f"{(f'{r:.2f}x' if r is not None else '-'):>10}" for r in (rn, rs))
        print(f"{label:<36}{cells}{rc}")
    print("targets: keep-alive <= 4 syscalls; CPU/request <= 0.7x nginx and <= 0.3x squid")
    for (metric, c), text in sorted(getattr(ctx, "sys_detail", {}).items()):
        print(f"  {metric} {c}: {text}")
