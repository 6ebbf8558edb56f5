#!/usr/bin/python3
"""bench.py - the work behind scripts/bench (run it through that wrapper).

One run starts, in the private temp dir the wrapper made, on loopback high
ports:
  origin    nginx-light (private config, worker_processes 1, access_log off)
            serving /small (100 bytes), /1m (1 MiB) and /nginx_status
  authgate  `authgate -c FILE`, auth_schemes none (open proxy)
  squid     Squid 5.7 -N (foreground, single process), cache deny all, no auth
and measures the targets "direct" (origin), "authgate" and "squid" side by
side. Each measurement is a section function in SECTIONS; sections share the
started daemons through Ctx and put their figures into ctx.results, from
which the table is printed.

Adding a section: write `def section_x(ctx)`, start extra instances with
start_authgate(ctx, name, extra_lines, env, prefix, probe_fn) /
start_squid(ctx, name, extra_lines, env, prefix, probe_fn) (they are stopped
with everything else at exit, or call stop_target() when done), put figures
with ctx.put(metric, target, value) and add ROWS entries for them.  A section
that raises is reported as a failure and the run goes on.

The authentication sections (basic, ntlm, negotiate: authgate vs Squid with
its helpers, against a private winbindd and MIT KDC, with the peers' own
ceilings) live in bench_auth.py, with their own table; their load generators
(ntlm_load.c, negotiate_load.c on the engine loadgen.h, and gss_pair.c) are
built with gcc into the temp dir at bench time.  The open proxies of the base
sections are started only when a base section is selected.

Verification of proxied load: every wrk run reads the origin's request
counter (stub_status) before and after and checks that the origin received
at least as many requests as wrk completed (and not wildly more), that wrk
saw no non-2xx/3xx statuses, and reports socket errors. Each proxy also gets
a probe request at start (status 200, 100-byte body, Via header).
Never fails on numbers; --strict makes an unmeasurable column or a failed
verification an error (exit 2).

CPU per request: every load run through a proxy also reads the proxy's CPU
time (utime+stime+cutime+cstime from /proc/PID/stat, summed over its process
group and its descendants: Squid's helpers included) right before and right
after the run (CpuMeter); the "CPU per request" rows divide it by the
requests (or handshakes) completed.  On a shared machine it is less noisy
than the rates, which depend on what else gets the CPUs.
"""

import argparse
import asyncio
import datetime
import grp
import json
import os
import pwd
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import textwrap
import time
import traceback
import urllib.request

# The integration tests' harness (tests/integration): the squid.conf builder
# here, the winbindd / KDC peers in bench_auth.py.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir,
                                "tests", "integration"))
from harness.squid import squid_conf  # noqa: E402

SMALL_SIZE = 100
BIG_SIZE = 1 << 20

# ---------------------------------------------------------------------------
# context


class Target:
    """Something a load generator can talk to: the origin itself or a proxy."""

    def __init__(self, name, kind, port=None):
        self.name = name      # "direct", "authgate", "squid", "authgate-basic", ...
        self.kind = kind      # "direct", "authgate", "squid"
        self.port = port
        self.proc = None      # subprocess.Popen (own session: pgid == pid)
        self.ok = False
        self.reason = "not started"
        self.rss_start_kib = None
        self.logs = []        # files worth showing when it fails

    @property
    def proxied(self):
        return self.kind != "direct"


class Ctx:
    def __init__(self, args):
        self.args = args
        self.root = args.root
        self.tmp = args.tmp
        self.seconds = args.seconds
        self.targets = {}     # name -> Target
        self.origin = None    # Target (kind "direct") for nginx
        self.results = {}     # metric -> target name -> value
        self.notes = []       # verification notes / warnings
        self.failures = []    # things --strict turns into exit 2
        self.procs = []       # every Popen started, for stop_all
        self.cleanups = []    # callables run at exit before stop_all (peers: KDC, winbindd)
        self.fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]

    def put(self, metric, target, value):
        self.results.setdefault(metric, {})[target] = value

    def get(self, metric, target):
        return self.results.get(metric, {}).get(target)

    def note(self, msg, failure=False):
        self.notes.append(msg)
        if failure:
            self.failures.append(msg)
        log("NOTE: " + msg)


def log(msg):
    print("[bench] " + msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# processes


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def record_pgid(ctx, pgid, add=True):
    """Keeps $tmp/pgids (read by the wrapper's last-resort cleanup) current."""
    path = os.path.join(ctx.tmp, "pgids")
    try:
        with open(path) as f:
            ids = [l.strip() for l in f if l.strip()]
    except FileNotFoundError:
        ids = []
    if add:
        ids.append(str(pgid))
    else:
        ids = [i for i in ids if i != str(pgid)]
    with open(path + ".new", "w") as f:
        f.write("".join(i + "\n" for i in ids))
    os.replace(path + ".new", path)


def spawn(ctx, argv, logfile, env=None, cwd=None):
    out = open(logfile, "ab")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                         start_new_session=True, env=env, cwd=cwd or ctx.tmp)
    out.close()
    ctx.procs.append(p)
    record_pgid(ctx, p.pid)
    return p


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def stop_proc(ctx, p, sig=signal.SIGTERM, grace=5.0):
    """Signals the whole process group, waits, then SIGKILLs the group."""
    if p is None:
        return
    pgid = p.pid
    if p.poll() is None or group_alive(pgid):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        t0 = time.monotonic()
        deadline = t0 + grace
        while time.monotonic() < deadline:
            p.poll()
            if not group_alive(pgid):
                break
            time.sleep(0.05)
        if group_alive(pgid):
            log(f"pid {pgid} ({os.path.basename(p.args[0])}) ignored signal {sig}: SIGKILL")
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        # the group may outlive its leader for a moment (workers, helpers)
        deadline = time.monotonic() + 5
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if time.monotonic() - t0 > 2:
            log(f"stopping pid {pgid} ({os.path.basename(p.args[0])}) took "
                f"{time.monotonic() - t0:.1f} s")
    record_pgid(ctx, pgid, add=False)
    if p in ctx.procs:
        ctx.procs.remove(p)


def run_tool(ctx, argv, timeout, env=None):
    """Runs a load generator in its own process group (recorded, so that the
    wrapper's cleanup ends it even if this helper dies); returns (rc, out, err).
    env: the full environment (default: ours)."""
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True, env=env)
    ctx.procs.append(p)
    record_pgid(ctx, p.pid)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_proc(ctx, p, signal.SIGKILL, grace=1)
        return -1, "", f"timed out after {timeout} s"
    finally:
        stop_proc(ctx, p, signal.SIGKILL, grace=1)   # on Ctrl-C too; no-op once exited
    return p.returncode, out, err


def stop_target(ctx, t):
    if t.proc is not None:
        # nginx: SIGTERM = fast shutdown; Squid: SIGTERM + shutdown_lifetime 0
        stop_proc(ctx, t.proc)
        t.proc = None


def stop_all(ctx):
    for p in list(reversed(ctx.procs)):
        stop_proc(ctx, p)


def wait_port(port, proc, timeout):
    """True once 127.0.0.1:port accepts; False if proc exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def group_pids(pgid):
    return [pid for pid, st in proc_stats().items() if st[1] == pgid]


CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_stats():
    """pid -> (ppid, pgrp, comm, utime+stime+cutime+cstime in ticks), all of /proc."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue          # exited between the listing and the read
        # fields[0] is field 3 (state); ppid 4, pgrp 5, utime..cstime 14..17
        fields = st[st.rindex(")") + 2:].split()
        out[int(d)] = (int(fields[1]), int(fields[2]), st[st.index("(") + 1:st.rindex(")")],
                       sum(int(x) for x in fields[11:15]))
    return out


def tree_pids(t, stats=None):
    """The target's process group and every descendant of its leader."""
    stats = stats if stats is not None else proc_stats()
    kids = {}
    for pid, (ppid, _, _, _) in stats.items():
        kids.setdefault(ppid, []).append(pid)
    root = t.proc.pid
    pids = {pid for pid, v in stats.items() if v[1] == root}
    todo = [root] if root in stats else []
    while todo:
        pid = todo.pop()
        pids.add(pid)
        todo += [k for k in kids.get(pid, ()) if k not in pids]
    return sorted(pids)


def cpu_seconds(t, names=None):
    """CPU time (user + system, seconds) of the target's processes, or None.
    authgate: its one process (/proc/PID/stat covers every thread, exited
    ones included).  Squid: its process group and every descendant of its
    leader -- the master, any kid and the auth helpers it started
    (ntlm_auth, negotiate_kerberos_auth, basic_ncsa_auth), which are not in
    Squid's process group (checked: the group alone held only squid).
    Fields 14-15 (utime, stime) of each live process plus 16-17 (cutime,
    cstime): the CPU of children that exited and were reaped (a helper
    Squid restarted during the run) moves to the parent's cutime/cstime, so
    a delta over a run counts them too.  Not counted: other process trees
    (winbindd, the KDC, the load generator)."""
    if t is None or t.proc is None:
        return None
    stats = proc_stats()
    pids = tree_pids(t, stats)
    if not pids:
        return None
    if names is not None:
        names += [stats[pid][2] for pid in sorted(pids)]
    return sum(stats[pid][3] for pid in pids) / CLK_TCK


def cpu_sys_seconds(t):
    """The system (kernel) part of cpu_seconds: fields 15 and 17 (stime,
    cstime) of the same processes. The part no proxy design changes while it
    makes the same socket calls, so the split tells a proxy's own cost from
    the kernel's."""
    if t is None or t.proc is None:
        return None
    total = 0
    for pid in tree_pids(t):
        try:
            with open(f"/proc/{pid}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        total += int(fields[12]) + int(fields[14])
    return total / CLK_TCK


class CpuMeter:
    """CPU time of a proxy over one measured run: made right before the load
    generator starts, stop() right after it ends, result(n) gives (seconds,
    microseconds per completed request or handshake), (None, None) for the
    origin or when /proc could not be read."""

    def __init__(self, t):
        self.t = t
        names = []
        self.before = cpu_seconds(t, names) if t.proxied else None
        self.sys_before = cpu_sys_seconds(t) if self.before is not None else None
        self.after = self.sys_after = None
        if self.before is not None and not getattr(t, "cpu_logged", False):
            t.cpu_logged = True
            counts = {n: names.count(n) for n in names}
            log(f"{t.name}: CPU counted over {len(names)} processes: " +
                ", ".join(f"{n} x{c}" if c > 1 else n for n, c in counts.items()))

    def stop(self):
        if self.before is not None:
            self.after = cpu_seconds(self.t)
            self.sys_after = cpu_sys_seconds(self.t)

    def sys_us(self, count):
        """Kernel microseconds per request (or handshake), or None."""
        if self.sys_before is None or self.sys_after is None or not count:
            return None
        return max(0.0, self.sys_after - self.sys_before) / count * 1e6

    def result(self, count):
        if self.before is None or self.after is None or not count:
            return None, None
        secs = max(0.0, self.after - self.before)
        return secs, secs / count * 1e6


def rss_kib(t):
    """VmRSS of the target's whole process group (the daemon plus any helpers), KiB."""
    if t.proc is None:
        return None
    total = 0
    for pid in group_pids(t.proc.pid):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def fd_count(t):
    try:
        return len(os.listdir(f"/proc/{t.proc.pid}/fd"))
    except OSError:
        return None


def version_of(argv, pattern):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        m = re.search(pattern, out.stdout + out.stderr)
        return m.group(1) if m else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "missing"


# ---------------------------------------------------------------------------
# origin: nginx-light


def worker_user():
    for u, g in (("www-data", "www-data"), ("nobody", "nogroup")):
        try:
            pwd.getpwnam(u)
            grp.getgrnam(g)
            return u, g
        except KeyError:
            continue
    return None


def nginx_conf(ctx, d, title, http_body):
    """A private nginx's configuration in directory d: one worker, no access
    log, long keep-alive, temp paths in d; http_body goes into http {}."""
    user = ""
    if os.geteuid() == 0:
        wu = worker_user()
        user = f"user {wu[0]} {wu[1]};" if wu else ""
    return f"""# {title}
{user}
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile {ctx.fd_limit};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
# above anything a proxy can open (a proxy may hold one upstream per idle client)
events {{ worker_connections {max(1024, ctx.fd_limit - 64)}; }}
http {{
    access_log off;
    keepalive_timeout 300s;
    keepalive_requests 10000000;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;{http_body}
}}
"""


def start_origin(ctx):
    d = os.path.join(ctx.tmp, "origin")
    www = os.path.join(d, "www")
    os.makedirs(www, mode=0o755)
    with open(os.path.join(www, "small"), "wb") as f:
        f.write((b"authgate-bench-small-response-" * 4)[:SMALL_SIZE - 1] + b"\n")
    with open(os.path.join(www, "1m"), "wb") as f:
        f.write(os.urandom(BIG_SIZE))
    for name in ("small", "1m"):
        os.chmod(os.path.join(www, name), 0o644)
    port = free_port()
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(nginx_conf(ctx, d, "private origin for scripts/bench", f"""
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {www};
        location = /nginx_status {{ stub_status; }}
    }}"""))
    t = Target("origin", "direct", port)
    t.logs = [os.path.join(d, "error.log"), os.path.join(d, "stdout.log")]
    t.proc = spawn(ctx, ["nginx", "-e", os.path.join(d, "error.log"), "-p", d + "/", "-c", conf],
                   os.path.join(d, "stdout.log"))
    if not wait_port(port, t.proc, 10):
        raise SystemExit("bench: nginx (origin) did not start:\n" + "".join(tail(p) for p in t.logs))
    t.ok = True
    t.reason = ""
    ctx.origin = t
    direct = Target("direct", "direct", port)
    direct.ok = True
    direct.reason = ""
    ctx.targets["direct"] = direct
    log(f"origin nginx on 127.0.0.1:{port} (pid {t.proc.pid})")
    return t


def origin_requests(ctx):
    """nginx's total request counter (the status request itself included)."""
    rc = ctx.origin.proc.poll() if ctx.origin.proc is not None else None
    if rc is not None:
        raise RuntimeError(f"the origin nginx exited (status {rc}); its log: "
                           f"{tail(ctx.origin.logs[0], 5).strip()}")
    with urllib.request.urlopen(f"http://127.0.0.1:{ctx.origin.port}/nginx_status", timeout=10) as r:
        text = r.read().decode()
    return int(text.splitlines()[2].split()[2])


def origin_url(ctx, path):
    return f"http://127.0.0.1:{ctx.origin.port}{path}"


# ---------------------------------------------------------------------------
# proxies


def http_get(ctx, port, headers=(), timeout=10):
    """One absolute-URL GET of /small through the proxy on port; returns
    (status, [(name, value)], body) or raises OSError."""
    lines = [f"GET {origin_url(ctx, '/small')} HTTP/1.1",
             f"Host: 127.0.0.1:{ctx.origin.port}", "Connection: close", *headers, "", ""]
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall("\r\n".join(lines).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    hl = head.decode("latin-1").split("\r\n")
    parts = hl[0].split() if hl else []
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    hdrs = []
    for line in hl[1:]:
        k, _, v = line.partition(":")
        hdrs.append((k.strip().lower(), v.strip()))
    return status, hdrs, body


def probe(ctx, t):
    """One absolute-URL GET through the proxy: returns None or an error string."""
    try:
        status, hdrs, body = http_get(ctx, t.port)
    except OSError as e:
        return f"probe failed: {e}"
    if status != 200:
        return f"probe got status {status or 'nothing'}"
    if len(body) != SMALL_SIZE:
        return f"probe got a {len(body)}-byte body, expected {SMALL_SIZE}"
    via = [v for k, v in hdrs if k == "via"]
    if not via:
        ctx.note(f"{t.name}: response has no Via header (proxied?)")
    else:
        log(f"{t.name}: probe 200, Via: {via[0]}")
    return None


def finish_start(ctx, t, timeout, probe_fn=None):
    """Waits for the port, then probes: probe_fn(ctx, t) -> None or an error
    string (default: an unauthenticated GET must get 200)."""
    if not wait_port(t.port, t.proc, timeout):
        rc = t.proc.poll()
        t.reason = (f"exited with status {rc} before listening" if rc is not None
                    else f"not accepting on 127.0.0.1:{t.port} after {timeout:.0f} s")
        log(f"{t.name} unavailable: {t.reason}")
        for p in t.logs:
            text = tail(p)
            if text.strip():
                log(f"--- {p} (tail)\n{text.rstrip()}")
        stop_target(ctx, t)
        return t
    time.sleep(1.0)  # settle before "idle after start"
    t.rss_start_kib = rss_kib(t)
    err = (probe_fn or probe)(ctx, t)
    if err:
        t.reason = err
        log(f"{t.name} unavailable: {err}")
        stop_target(ctx, t)
        return t
    t.ok = True
    t.reason = ""
    log(f"{t.name} on 127.0.0.1:{t.port} (pid {t.proc.pid}), RSS after start {t.rss_start_kib} KiB")
    return t


def authgate_bin(ctx):
    return os.environ.get("AUTHGATE_BIN") or os.path.join(ctx.root, "build", "authgate")


def start_authgate(ctx, name="authgate", extra_lines=(), env=None, prefix=(), probe_fn=None):
    """Starts `authgate -c FILE` in the foreground (own process group).
    extra_lines: more config lines (auth sections override auth_schemes there).
    env: variables added to ours; prefix: a command prefix that execs the
    daemon (winbind's namespace mode); probe_fn: see finish_start."""
    t = Target(name, "authgate", free_port())
    ctx.targets[name] = t
    binary = authgate_bin(ctx)
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        t.reason = f"no executable at {binary} (build it, or set AUTHGATE_BIN)"
        log(f"{name} unavailable: {t.reason}")
        return t
    d = os.path.join(ctx.tmp, name)
    os.makedirs(d, mode=0o755)
    lines = [f"listen 127.0.0.1:{t.port}", f"error_log {d}/error.log",
             f"max_connections {ctx.args.idle_conns + 1024}", "idle_timeout 300s"]
    if not any(l.split()[:1] == ["access_log"] for l in extra_lines):
        lines.append("access_log none")
    if not any(l.split()[:1] == ["auth_schemes"] for l in extra_lines):
        lines.append("auth_schemes none")
    if not any(l.split()[:1] == ["workers"] for l in extra_lines):
        lines.append(f"workers {ctx.args.workers}")
    lines += list(extra_lines)
    conf = os.path.join(d, "authgate.conf")
    with open(conf, "w") as f:
        f.write("# private authgate config for scripts/bench\n" + "\n".join(lines) + "\n")
    t.logs = [os.path.join(d, "error.log"), os.path.join(d, "stdout.log")]
    t.proc = spawn(ctx, list(prefix) + [binary, "-c", conf], os.path.join(d, "stdout.log"),
                   env=dict(os.environ, **(env or {})))
    return finish_start(ctx, t, 10, probe_fn)


def start_squid(ctx, name="squid", extra_lines=(), env=None, prefix=(), probe_fn=None,
                workers=1, https=None):
    """Starts Squid 5.7 with a private config, `-N` (foreground, no kids) in its
    own process group; drops to the proxy user itself (it refuses root).
    extra_lines go before http_access (auth_param, acl ... for auth sections);
    https=(port, cert, key) adds an https_port. The text comes from the
    tests' builder (tests/integration/harness/squid.py: squid_conf).
    workers > 1: Squid SMP (`workers N`): `--foreground` instead of `-N`, a
    master that forks N worker kids and a coordinator kid; they meet over
    Unix sockets in /run/squid (the Debian package's, owned by proxy) and
    shared memory segments in /dev/shm named after `-n`."""
    t = Target(name, "squid", free_port())
    ctx.targets[name] = t
    if shutil.which("squid") is None:
        t.reason = "squid not installed (apt-get install squid)"
        log(f"{name} unavailable: {t.reason}")
        return t
    d = os.path.join(ctx.tmp, name)
    os.makedirs(d, mode=0o755)
    try:
        pw = pwd.getpwnam("proxy")
        os.chown(d, pw.pw_uid, pw.pw_gid)
    except (KeyError, PermissionError):
        pass
    fds = min(ctx.fd_limit, 65536)
    conf = os.path.join(d, "squid.conf")
    with open(conf, "w") as f:
        f.write(squid_conf(d, f"authgate-bench-{name}", port=t.port, https=https, workers=workers,
                           max_fds=fds, lines=extra_lines,
                           head="# private Squid config for scripts/bench\n"))
    t.logs = [os.path.join(d, "cache.log"), os.path.join(d, "stdout.log")]
    svc = re.sub(r"[^A-Za-z0-9]", "", f"agb{os.getpid()}{name}")
    mode = ["-N"] if workers == 1 else ["--foreground"]
    t.proc = spawn(ctx, list(prefix) + ["squid"] + mode + ["-f", conf, "-n", svc],
                   os.path.join(d, "stdout.log"), env=dict(os.environ, **(env or {})), cwd=d)
    return finish_start(ctx, t, 30, probe_fn)


# ---------------------------------------------------------------------------
# load generation: wrk

LUA = """-- generated by scripts/bench
wrk.method = "GET"
wrk.path = "{path}"
wrk.headers["Host"] = "{host}"
{extra}
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {{"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,' ..
    '"err_connect":%.0f,"err_read":%.0f,"err_write":%.0f,"err_status":%.0f,"err_timeout":%.0f,' ..
    '"lat_mean_us":%.1f,"lat_p50_us":%.0f,"lat_p99_us":%.0f,"lat_max_us":%.0f}}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def wrk(ctx, t, path, conns, threads, seconds, headers=None, label=""):
    """Runs wrk against target t for `path` on the origin (absolute URL through
    a proxy), verifies it against the origin's counter, returns the summary."""
    n = len(os.listdir(ctx.tmp))
    lua = os.path.join(ctx.tmp, f"wrk-{n}.lua")
    extra = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in (headers or {}).items())
    wpath = origin_url(ctx, path) if t.proxied else path
    with open(lua, "w") as f:
        f.write(LUA.format(path=wpath, host=f"127.0.0.1:{ctx.origin.port}", extra=extra))
    threads = max(1, min(threads, conns))
    argv = ["wrk", "-c", str(conns), "-t", str(threads), "-d", f"{seconds}s", "--latency",
            "--timeout", "10s", "-s", lua, f"http://127.0.0.1:{t.port}/"]
    before = origin_requests(ctx)
    cpu = CpuMeter(t)
    rc, stdout, stderr = run_tool(ctx, argv, seconds + 60)
    cpu.stop()
    after = origin_requests(ctx)
    m = re.search(r"^BENCHJSON (\{.*\})$", stdout, re.M)
    if rc != 0 or not m:
        ctx.note(f"{label} {t.name}: wrk failed (rc {rc}): "
                 f"{(stderr or stdout).strip()[-300:]}", failure=True)
        return None
    r = json.loads(m.group(1))
    r["origin_requests"] = after - before - 1   # minus the second status request
    r["seconds"] = r["duration_us"] / 1e6
    r["rps"] = r["requests"] / r["seconds"] if r["seconds"] else 0.0
    r["cpu_s"], r["cpu_us"] = cpu.result(r["requests"])
    r["cpu_sys_us"] = cpu.sys_us(r["requests"])
    errs = r["err_connect"] + r["err_read"] + r["err_write"] + r["err_timeout"]
    bad = []
    if r["requests"] == 0:
        bad.append("no request completed")
    if r["err_status"]:
        bad.append(f"{r['err_status']} non-2xx/3xx responses")
    if r["origin_requests"] < r["requests"]:
        bad.append(f"origin saw only {r['origin_requests']} of {r['requests']} requests")
    elif r["origin_requests"] > r["requests"] * 1.02 + conns + 10:
        bad.append(f"origin saw {r['origin_requests']} requests, wrk completed {r['requests']}")
    if errs > max(10, r["requests"] * 0.01):
        bad.append(f"socket errors: connect {r['err_connect']} read {r['err_read']} "
                   f"write {r['err_write']} timeout {r['err_timeout']}")
    r["verified"] = not bad
    if bad:
        ctx.note(f"{label} {t.name}: " + "; ".join(bad), failure=True)
    elif errs:
        log(f"{label} {t.name}: {errs} socket errors (under 1%)")
    log(f"{label} {t.name}: {r['requests']} requests in {r['seconds']:.2f} s = {r['rps']:.0f} req/s, "
        f"p99 {r['lat_p99_us'] / 1000:.2f} ms, {r['bytes'] / r['seconds'] / 2**20:.1f} MiB/s, "
        f"origin saw {r['origin_requests']}" +
        (f", CPU {r['cpu_s']:.2f} s = {r['cpu_us']:.1f} us/req" if r["cpu_us"] is not None else ""))
    return r


def load_targets(ctx):
    return [t for name, t in ctx.targets.items() if name in ("direct", "authgate", "squid")]


def put_cpu(ctx, metric, target, r):
    """The proxy's CPU per completed request (us) of run r, and its CPU
    seconds under metric + "_s" (JSON only)."""
    if r.get("cpu_us") is not None:
        ctx.put(metric, target, r["cpu_us"])
        ctx.put(metric[:-3] + "_s", target, r["cpu_s"])


# ---------------------------------------------------------------------------
# sections


def section_keepalive(ctx):
    """Keep-alive request rate with 100-byte responses, and its p99 latency."""
    for t in load_targets(ctx):
        if not t.ok:
            continue
        r = wrk(ctx, t, "/small", ctx.args.conns, ctx.args.threads, ctx.seconds, label="keep-alive")
        if r:
            ctx.put("ka_rps", t.name, r["rps"])
            ctx.put("ka_p99_ms", t.name, r["lat_p99_us"] / 1000.0)
            put_cpu(ctx, "ka_cpu_us", t.name, r)


def section_newconn(ctx):
    """Every request on a new client connection (Connection: close)."""
    for t in load_targets(ctx):
        if not t.ok:
            continue
        r = wrk(ctx, t, "/small", ctx.args.conns, ctx.args.threads, ctx.seconds,
                headers={"Connection": "close"}, label="new-conn")
        if r:
            ctx.put("nc_rps", t.name, r["rps"])
            put_cpu(ctx, "nc_cpu_us", t.name, r)


def section_throughput(ctx):
    """1 MiB responses over a few keep-alive connections: MiB/s. One run of
    each target is noise on a shared machine (four quick runs once gave
    authgate 0.53x to 1.66x direct), so BENCH_TP_ROUNDS rounds run the
    targets in turn, each round starting with the next target (a drift of
    the machine's load hits every target alike), and the row is each
    target's median round; the proxy's CPU per response is over all rounds
    (steadier than the rate)."""
    targets = [t for t in load_targets(ctx) if t.ok]
    # The event-driven reference in the same rounds: what the best proxy
    # reaches on this machine tells the proxy's cost from the machine's
    # (client, origin and proxy share its CPUs). BENCH_TP_NGINX=0: not run.
    ng = None
    if env_int("BENCH_TP_NGINX", 1) and shutil.which("nginx"):
        ng = bench_syscalls.start_nginx_proxy(ctx, "nginx-tp", " proxy_buffering off;")
        if ng.ok:
            targets.append(ng)
    rounds = 1 if ctx.args.quick else max(1, env_int("BENCH_TP_ROUNDS", 5))
    rates = {t.name: [] for t in targets}
    cpu = {t.name: [0.0, 0] for t in targets}
    for i in range(rounds):
        order = targets[i % len(targets):] + targets[:i % len(targets)] if targets else []
        for t in order:
            r = wrk(ctx, t, "/1m", ctx.args.tp_conns, ctx.args.threads, ctx.seconds,
                    label="1MiB")
            if not r:
                continue
            rates[t.name].append(r["bytes"] / r["seconds"] / 2**20)
            if r.get("cpu_s") is not None:
                cpu[t.name][0] += r["cpu_s"]
                cpu[t.name][1] += r["requests"]
    for t in targets:
        v = rates[t.name]
        if not v:
            continue
        ctx.put("tp_mibs", t.name, statistics.median(v))
        if rounds > 1:
            log(f"1MiB {t.name}: MiB/s per round " + ", ".join(f"{x:.0f}" for x in v))
        d = rates.get("direct")
        if t.name != "direct" and d and len(d) == len(v) and rounds > 1:
            # the same round's runs are seconds apart: their ratio moves less
            # than the rates themselves when the machine's load drifts
            per = [x / y for x, y in zip(v, d) if y]
            log(f"1MiB {t.name}/direct per round " + ", ".join(f"{x:.2f}" for x in per)
                + f"; median {statistics.median(per):.2f}")
        cs, n = cpu[t.name]
        if n:
            ctx.put("tp_cpu_us", t.name, cs * 1e6 / n)
            ctx.put("tp_cpu_s", t.name, cs)
    if ng is not None:
        d, a, n = (rates.get(k) for k in ("direct", "authgate", "nginx-tp"))
        if d and n and len(d) == len(n):
            line = (f"1 MiB through nginx as a reverse proxy (proxy_buffering off, the "
                    f"event-driven reference, same rounds): median {statistics.median(n):.0f} MiB/s, "
                    f"{statistics.median([x / y for x, y in zip(n, d) if y]):.2f}x direct")
            if a and len(a) == len(n):
                line += (f"; authgate/nginx {statistics.median([x / y for x, y in zip(a, n) if y]):.2f}x")
            print(line)
            log(line)
        stop_target(ctx, ng)


async def _open_idle(port, n, request, concurrency, timeout):
    sem = asyncio.Semaphore(concurrency)
    conns, errors = [], []

    async def one():
        async with sem:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port), timeout)
            except (OSError, asyncio.TimeoutError) as e:
                errors.append(f"connect: {e!r}")
                return
            try:
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
                status = head.split(b" ", 2)[1]
                m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
                if status != b"200" or not m:
                    raise ValueError(f"status {status!r}, content-length {bool(m)}")
                await asyncio.wait_for(reader.readexactly(int(m.group(1))), timeout)
            except (OSError, ValueError, IndexError, asyncio.TimeoutError,
                    asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
                errors.append(f"request: {e!r}")
                abort(writer)
                return
            conns.append((reader, writer))

    await asyncio.gather(*(one() for _ in range(n)))
    return conns, errors


def abort(writer):
    """Close with RST (SO_LINGER 0): no TIME_WAIT eating the ephemeral ports."""
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    except OSError:
        pass
    writer.transport.abort()


async def _idle_round(ctx, t, n):
    req = (f"GET {origin_url(ctx, '/small')} HTTP/1.1\r\nHost: 127.0.0.1:{ctx.origin.port}\r\n"
           f"\r\n").encode()
    before = rss_kib(t)
    fds_before = fd_count(t)
    t0 = time.monotonic()
    conns, errors = await _open_idle(t.port, n, req, ctx.args.idle_concurrency, 30)
    opened = time.monotonic() - t0
    # Settle past authgate's idle release (AG_IDLE_RELEASE_MS, 1 s) and its
    # heap trim (0.5 s after), so that what is measured is idle connections,
    # not the buffers of their one request; also lets the event loop notice
    # peer closes. Squid gets the same wait.
    await asyncio.sleep(2.0)
    with_conns = rss_kib(t)
    fds_with = fd_count(t)
    alive = sum(1 for r, _ in conns if not r.at_eof())
    for _, w in conns:
        abort(w)
    await asyncio.sleep(0)
    return before, with_conns, fds_before, fds_with, alive, errors, opened


def section_idle_memory(ctx):
    """RSS with N idle keep-alive client connections, each after one request."""
    n = ctx.args.idle_conns
    ctx.idle_n = n
    for t in load_targets(ctx):
        if not t.proxied:
            continue
        if t.rss_start_kib is not None:
            ctx.put("rss_idle_mib", t.name, t.rss_start_kib / 1024.0)
        if not t.ok:
            continue
        before, with_conns, fdb, fdw, alive, errors, secs = asyncio.run(_idle_round(ctx, t, n))
        log(f"idle-conns {t.name}: {alive}/{n} open after {secs:.1f} s, RSS {before} -> {with_conns} KiB, "
            f"fds {fdb} -> {fdw}" + (f", {len(errors)} errors, first: {errors[0]}" if errors else ""))
        if alive < n:
            ctx.note(f"idle-conns {t.name}: only {alive} of {n} connections held open "
                     f"({len(errors)} failed{': ' + errors[0] if errors else ''})", failure=True)
        ctx.put("rss_conns_mib", t.name, with_conns / 1024.0)
        if fdw is not None:
            ctx.put("fds_conns", t.name, fdw)
        if alive:
            ctx.put("per_conn_kib", t.name, (with_conns - before) / alive)
        # let the proxy drop the connections before the next measurement
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            c = fd_count(t)
            if c is None or fdb is None or c <= fdb + 64:
                break
            time.sleep(0.1)


def cpu_ticks(pid):
    """utime + stime of the whole process (every thread), in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


def section_workers(ctx):
    """authgate at workers 1 and workers N (--loops, default 2), and Squid SMP
    with `workers N`: keep-alive and new-connection rates and CPU
    microseconds per request (authgate: its process, every thread; Squid:
    its master, coordinator and worker kids), each authgate loop's share of
    new connections, and full Negotiate handshakes at workers 1 and N. The
    load generator and the origin share the machine: CPU per request, not
    the rate, shows whether the loops contend."""
    hz = os.sysconf("SC_CLK_TCK")
    ctl = os.path.join(os.path.dirname(authgate_bin(ctx)), "authgatectl")
    loops = ctx.args.loops

    def accepted(sock):
        """Connections each loop accepted so far (authgatectl status)."""
        try:
            p = subprocess.run([ctl, "-s", sock, "--json", "status"], capture_output=True,
                               timeout=10)
            return [w["worker_accepted"] for w in json.loads(p.stdout).get("workers_detail", [])]
        except (OSError, ValueError, subprocess.TimeoutExpired):
            return []

    def cpu_s(t):
        """CPU seconds of t: authgate's one process, Squid's whole tree."""
        if t.kind == "authgate":
            c = cpu_ticks(t.proc.pid)
            return c / hz if c is not None else None
        return cpu_seconds(t)

    # Sums over the rounds per column and measure: requests, seconds, CPU
    # seconds, and each loop's accepted connections.
    tot = {}

    def load(t, col, sock=None):
        for key, label, headers in (("ka", "keep-alive", None),
                                    ("nc", "new-conn", {"Connection": "close"})):
            a0, c0 = accepted(sock) if sock else [], cpu_s(t)
            r = wrk(ctx, t, "/small", ctx.args.conns, ctx.args.threads, ctx.seconds,
                    headers=headers, label=f"{label} {col}")
            c1, a1 = cpu_s(t), accepted(sock) if sock else []
            if not r:
                continue
            m = tot.setdefault((key, col), {"req": 0, "secs": 0.0, "cpu": 0.0, "per": None})
            m["req"] += r["requests"]
            m["secs"] += r["seconds"]
            m["cpu"] = None if c0 is None or c1 is None or m["cpu"] is None else \
                m["cpu"] + (c1 - c0)
            if key == "nc" and len(a0) == len(a1) > 1:
                got = [b - a for a, b in zip(a0, a1)]
                log(f"new-conn {col}: accepted per loop {got}")
                m["per"] = got if m["per"] is None else [x + y for x, y in zip(m["per"], got)]

    def results():
        for (key, col), m in tot.items():
            if not m["req"]:
                continue
            ctx.put(f"w_{key}_rps", col, m["req"] / m["secs"])
            if m["cpu"] is not None:
                ctx.put(f"w_{key}_cpu_us", col, m["cpu"] * 1e6 / m["req"])
            if m["per"]:
                even = sum(m["per"]) / len(m["per"])
                if even:
                    ctx.put("w_nc_skew_pct", col, max(abs(g - even) for g in m["per"]) / even * 100)

    # Both gateways stay up and are measured in turn, round after round
    # (workers 1, workers N, workers 1, ...): the other load on a shared
    # machine drifts, and alternating spreads that drift over both columns.
    cols = [f"authgate-w{n}" for n in (1, loops)]
    gws = []
    for n, name in zip((1, loops), cols):
        sock = os.path.join(ctx.tmp, name, "ctl.sock")
        t = start_authgate(ctx, name=name, extra_lines=[f"workers {n}", f"status_socket {sock}"])
        gws.append((t, name, sock))
    rounds = 1 if ctx.args.quick else max(1, env_int("BENCH_WORKERS_ROUNDS", 3))
    for _ in range(rounds):
        for t, name, sock in gws:
            if t.ok:
                load(t, name, sock)
    for t, _, _ in gws:
        stop_target(ctx, t)
    sq = f"squid-w{loops}"
    if not ctx.args.no_squid:
        t = start_squid(ctx, name=sq, workers=loops)
        if t.ok:
            load(t, sq)
        else:
            ctx.note(f"{sq} not measured: {t.reason}", failure=True)
        stop_target(ctx, t)
    results()
    negotiate_by_workers(ctx, cols, loops)
    print()
    head = [*cols, f"w{loops}/w1", sq, f"ag/{sq}"]
    print(f"{'workers':<34}" + "".join(f"{c:>14}" for c in head))
    for metric, label in (("w_ka_rps", "keep-alive req/s"), ("w_nc_rps", "new-connection req/s"),
                          ("w_ka_cpu_us", "keep-alive CPU us/request"),
                          ("w_nc_cpu_us", "new-conn CPU us/request"),
                          ("w_neg_rate", "Negotiate handshakes/s"),
                          ("w_neg_cpu_us", "Negotiate CPU us/handshake"),
                          ("w_nc_skew_pct", "new-conn: busiest loop off even, %")):
        vals = [ctx.get(metric, c) for c in cols]
        sv = ctx.get(metric, sq) if metric != "w_nc_skew_pct" else None
        cells = [f"{v:.1f}" if v is not None else "n/a" for v in vals]
        r = ratio(vals[1], vals[0])
        cells.append(f"{r:.2f}" if r is not None and metric != "w_nc_skew_pct" else "-")
        cells.append(f"{sv:.1f}" if sv is not None else "-")
        rs = ratio(vals[1], sv)
        cells.append(f"{rs:.2f}" if rs is not None else "-")
        print(f"{label:<34}" + "".join(f"{c:>14}" for c in cells))
    print(f"Targets: CPU us/request at workers {loops} within 10 % of workers 1 (ratio <= 1.10); "
          "the busiest loop's share of new connections within 20 % of even.")


def negotiate_by_workers(ctx, cols, loops):
    """Full Negotiate handshakes (a new connection, 407, ticket, 200 each)
    against authgate at workers 1 and N, with the KDC and negotiate_load of
    the negotiate section; n/a (noted) without them."""
    a = bench_auth
    loader = a.tool(ctx, "negotiate_load")
    k = a.kdc(ctx) if loader else None
    if k is None:
        ctx.note("workers: Negotiate handshakes n/a (" +
                 ("no negotiate_load" if loader is None else str(a.state(ctx).kdc_reason)) + ")",
                 failure=not ctx.args.quick)
        return
    nl = a.NegLoad(ctx, loader, k)
    for n, col in zip((1, loops), cols):
        t = start_authgate(ctx, name=f"neg-w{n}", extra_lines=[
            f"workers {n}", "auth_schemes negotiate", "proxy_host localhost",
            f"keytab {k.keytab}", f"rcache_dir {k.rcache_dir}"], env=k.env, probe_fn=nl.probe)
        if t.ok:
            r = a.run_loadgen(ctx, t, loader, "new", env=nl.cenv, extra=nl.extra,
                              label=f"negotiate handshakes workers {n}")
            if r:
                ctx.put("w_neg_rate", col, r["rate"])
                if r.get("cpu_us") is not None:
                    ctx.put("w_neg_cpu_us", col, r["cpu_us"])
        else:
            ctx.note(f"workers: neg-w{n} not measured: {t.reason}", failure=True)
        stop_target(ctx, t)


# Order matters only for time: memory first (fresh processes), then load.
SECTIONS = [
    ("memory", section_idle_memory),
    ("keepalive", section_keepalive),
    ("newconn", section_newconn),
    ("throughput", section_throughput),
]
BASE_SECTIONS = [s for s, _ in SECTIONS]
SECTIONS.append(("workers", section_workers))

# Authentication sections (basic, ntlm, negotiate: authgate vs Squid 5.7 with
# its helpers, against real peers) live in bench_auth.py.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_auth  # noqa: E402
SECTIONS += bench_auth.register(sys.modules[__name__])
# TLS to the proxy (tls: authgate's listen ... tls vs Squid's https_port).
import bench_tls  # noqa: E402
SECTIONS += bench_tls.register(sys.modules[__name__])
# CONNECT tunnel throughput: HTTPS through authgate and Squid vs direct TLS
import bench_tunnel  # noqa: E402
SECTIONS += bench_tunnel.register(sys.modules[__name__])
# syscalls and CPU per request: authgate vs nginx (reverse proxy) vs Squid
import bench_syscalls  # noqa: E402
SECTIONS += bench_syscalls.register(sys.modules[__name__], bench_auth)

# metric, label, unit, format, target (None or (kind, threshold, text)).
# kinds: "ag/squid>=" "ag/direct>=" "ag<"; "note": text only, no target.
# Metrics ending in _cpu_us have no direct column (the origin is not a proxy).
ROWS = [
    ("ka_rps", "keep-alive req/s (100 B)", "req/s", "{:.0f}", ("ag/squid>=", 3.0, "ag/squid >= 3x")),
    ("ka_p99_ms", "keep-alive p99 (lower=better)", "ms", "{:.2f}", None),
    ("ka_cpu_us", "  CPU per request", "us", "{:.1f}", ("note", None, "lower is better")),
    ("nc_rps", "new-connection req/s", "req/s", "{:.0f}", ("ag/squid>=", 2.0, "ag/squid >= 2x")),
    ("nc_cpu_us", "  CPU per request", "us", "{:.1f}", ("note", None, "lower is better")),
    ("tp_mibs", "1 MiB throughput", "MiB/s", "{:.0f}", ("ag/direct>=", 0.90, "ag/direct >= 0.90")),
    ("tp_cpu_us", "  CPU per 1 MiB response", "us", "{:.1f}", ("note", None, "lower is better")),
    ("rss_idle_mib", "RSS idle after start", "MiB", "{:.1f}", ("ag<", 10.0, "ag < 10 MiB")),
    ("rss_conns_mib", "RSS with {n} idle conns", "MiB", "{:.1f}", None),
    ("per_conn_kib", "per idle keep-alive conn", "KiB", "{:.1f}", ("ag<", 16.0, "ag < 16 KiB")),
    ("fds_conns", "open fds with {n} idle conns", "fds", "{:.0f}", None),
]


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def print_table(ctx):
    if not any(ctx.results.get(m) for m, *_ in ROWS):
        return
    cols = ["direct", "authgate", "squid"]
    hdr = f"{'metric':<30} {'unit':<6} " + "".join(f"{c:>10}" for c in cols) + \
        f"{'ag/squid':>10}{'ag/direct':>10}   target (met?)"
    print()
    print(hdr)
    print("-" * len(hdr))
    for metric, label, unit, fmt, target in ROWS:
        vals = [ctx.get(metric, c) for c in cols]
        if all(v is None for v in vals):
            continue
        label = label.format(n=getattr(ctx, "idle_n", ctx.args.idle_conns))
        cells = "".join(f"{(fmt.format(v) if v is not None else na):>10}" for v, na in zip(
            vals, ("-" if metric.endswith("_cpu_us") else "n/a", "n/a", "n/a")))
        d, ag, sq = vals
        rs, rd = ratio(ag, sq), ratio(ag, d)
        rcells = "".join(f"{(f'{r:.2f}x' if r is not None else '-'):>10}" for r in (rs, rd))
        tcell = ""
        if target and target[0] == "note":
            tcell = target[2]
        elif target:
            kind, thr, text = target
            v = {"ag/squid>=": rs, "ag/direct>=": rd, "ag<": ag}[kind]
            met = "n/a" if v is None else ("yes" if (v < thr if kind == "ag<" else v >= thr) else "no")
            tcell = f"{text} ({met})"
        print(f"{label:<30} {unit:<6} {cells}{rcells}   {tcell}")
    if any(ctx.results.get(m) for m in ("ka_cpu_us", "nc_cpu_us")):
        print()
        print(textwrap.fill(CPU_NOTE, 100))
    print()


CPU_NOTE = (
    "CPU per request: user + system CPU time of the proxy's processes (/proc/PID/stat "
    "utime+stime, read right before and right after each load run) divided by the requests "
    "completed in that run, in microseconds. authgate: its one process, all threads. Squid: "
    "its process group and all its descendants, auth helper processes included (they are "
    "part of Squid's cost; authgate has none), plus cutime+cstime, which holds the CPU of "
    "children that exited and were reaped during the run. Not counted for either: winbindd "
    "and the KDC (both proxies use the same ones), the origin, the load generator. Less "
    "sensitive to other load on a shared machine than the rates.")


def print_header(ctx):
    a = ctx.args
    print(f"authgate benchmark, {datetime.datetime.now().isoformat(timespec='seconds')}, "
          f"{os.uname().nodename}, {os.cpu_count()} CPUs, Linux {os.uname().release}")
    nv = version_of(["nginx", "-v"], r"nginx/(\S+)")
    sv = version_of(["squid", "-v"], r"Version (\S+)")
    wv = version_of(["wrk", "-v"], r"wrk (\S+)")
    print(f"nginx {nv}, squid {sv}, wrk {wv}, authgate {authgate_bin(ctx)}")
    print(f"{a.seconds} s per measurement; wrk -c {a.conns} -t {a.threads} (keep-alive, new-conn), "
          f"-c {a.tp_conns} (1 MiB); {a.idle_conns} idle conns; fd limit {ctx.fd_limit}")
    print("All on this machine's loopback, load generator included: absolute figures are this "
          "run's only; compare the ratios.")


# ---------------------------------------------------------------------------


def env_int(name, default):
    v = os.environ.get(name)
    return int(v) if v not in (None, "") else default


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Benchmark: origin direct vs authgate (auth_schemes none) vs Squid 5.7, "
                    "and authenticated Basic/NTLM/Negotiate: authgate vs Squid 5.7 with its "
                    "helpers vs the backend's own ceiling, side by side on loopback. Prints "
                    "figures; never fails on numbers.",
        epilog="Environment: BENCH_SECONDS (5), BENCH_CONNS (50), BENCH_THREADS (2), "
               "BENCH_TP_CONNS (4), BENCH_TP_ROUNDS (5: 1 MiB rounds, targets in turn, median), "
               "BENCH_IDLE_CONNS (10000), BENCH_IDLE_CONCURRENCY (32), "
               "BENCH_WORKERS_ROUNDS (3: workers section rounds, workers 1 and N in turn), "
               "AUTHGATE_BIN (<repo>/build/authgate), BENCH_KEEP_TMP=1 keeps the temp dir. "
               "Authentication sections: " + bench_auth.ENV_HELP + " " + bench_syscalls.ENV_HELP)
    p.add_argument("--root", required=True, help=argparse.SUPPRESS)
    p.add_argument("--tmp", required=True, help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 1 s per measurement, 1,000 idle connections")
    p.add_argument("--sections", default=",".join(s for s, _ in SECTIONS),
                   help="comma-separated subset of: " + ", ".join(s for s, _ in SECTIONS))
    p.add_argument("--syscalls", action="store_true",
                   help="only the syscalls section (= --sections syscalls): syscalls and CPU "
                        "per request, authgate vs nginx as a reverse proxy vs Squid")
    p.add_argument("--no-squid", action="store_true", help="do not start Squid")
    p.add_argument("--workers", default="1",
                   help="authgate's workers option for the base sections (default 1: one loop)")
    p.add_argument("--loops", type=int, default=2,
                   help="the workers count the workers section compares with 1 (default 2)")
    p.add_argument("--no-authgate", action="store_true", help="do not start authgate")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    p.add_argument("--strict", action="store_true",
                   help="exit 2 if a column could not be measured or a verification failed "
                        "(never because of the numbers themselves)")
    a = p.parse_args(argv)
    a.seconds = env_int("BENCH_SECONDS", 1 if a.quick else 5)
    a.conns = env_int("BENCH_CONNS", 50)
    a.threads = env_int("BENCH_THREADS", 2)
    a.tp_conns = env_int("BENCH_TP_CONNS", 4)
    a.idle_conns = env_int("BENCH_IDLE_CONNS", 1000 if a.quick else 10000)
    a.idle_concurrency = env_int("BENCH_IDLE_CONCURRENCY", 32)
    bench_auth.parse_env(a, env_int)
    bench_syscalls.parse_env(a, env_int)
    if a.syscalls:
        a.sections = "syscalls"
    known = {s for s, _ in SECTIONS}
    a.section_list = [s for s in a.sections.split(",") if s]
    for s in a.section_list:
        if s not in known:
            p.error(f"unknown section {s!r}")
    return a


def main(argv):
    args = parse_args(argv)
    ctx = Ctx(args)
    need = args.idle_conns + 200
    if "memory" in args.section_list and ctx.fd_limit < need:
        args.idle_conns = max(100, ctx.fd_limit - 200)
        log(f"fd limit {ctx.fd_limit} too low for the requested idle connections: "
            f"using {args.idle_conns}")

    def on_signal(signum, frame):
        # once: a second signal (Ctrl-C reaches the wrapper and us, the
        # wrapper forwards SIGTERM) must not interrupt the cleanup
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        raise KeyboardInterrupt
    # explicitly: a background job of a non-interactive shell starts with
    # SIGINT ignored
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    missing = [tool for tool in ("nginx", "wrk") if shutil.which(tool) is None]
    if missing:
        print(f"bench: missing {', '.join(missing)} (apt-get install nginx-light wrk squid)",
              file=sys.stderr)
        return 1

    t0 = time.monotonic()
    rc = 0
    try:
        print_header(ctx)
        sys.stdout.flush()
        start_origin(ctx)
        # the open proxies serve the base sections only
        base = any(s in args.section_list for s in BASE_SECTIONS)
        if base and not args.no_authgate:
            start_authgate(ctx)
        if base and not args.no_squid:
            start_squid(ctx)
        for name, fn in SECTIONS:
            if name in args.section_list:
                try:
                    fn(ctx)
                except Exception as e:  # report it, go on with the next section
                    log(traceback.format_exc().rstrip())
                    ctx.note(f"section {name} aborted: {e!r}", failure=True)
        print_table(ctx)
        bench_auth.print_table(ctx)
        for name in ("authgate", "squid"):
            t = ctx.targets.get(name)
            if t is not None and not t.ok:
                msg = f"{name} column not measured: {t.reason}"
                print("NOTE: " + msg)
                ctx.failures.append(msg)
        for n in ctx.notes:
            print("NOTE: " + n)
        print(f"(run took {time.monotonic() - t0:.0f} s)")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"results": ctx.results, "notes": ctx.notes,
                           "auth": bench_auth.json_info(ctx),
                           "unavailable": {n: t.reason for n, t in ctx.targets.items() if not t.ok},
                           "seconds": args.seconds, "idle_conns": args.idle_conns}, f, indent=1)
        if args.strict and ctx.failures:
            rc = 2
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
        rc = 130
    finally:
        for fn in reversed(ctx.cleanups):
            try:
                fn()
            except BaseException as e:  # keep cleaning up
                log(f"cleanup: {e!r}")
        stop_all(ctx)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
