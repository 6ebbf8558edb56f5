"""Runs the authgate daemon for one test.

The binary is $AUTHGATE_BIN, or <repo>/build/authgate. Point AUTHGATE_BIN at an
ASan/UBSan build (cmake -DAG_SANITIZE=ON) to run the suite under sanitizers: any
sanitizer report on the daemon's stderr or in its error log fails the test.

Readiness is the daemon's own word, as under systemd (Type=notify): the harness
plays the service manager's part of the notify protocol (a datagram socket in
$NOTIFY_SOCKET) and start() returns when the daemon sent READY=1, which it does
once the status socket exists and every listener accepts. A listener that
accepts is not readiness: it says nothing of the status socket.
"""

import os
import pathlib
import re
import secrets
import signal
import socket
import struct
import subprocess
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[3]
DEFAULT_BIN = REPO / "build" / "authgate"

# Options written one line per element when given a list; every other list or
# tuple value is written space-joined on one line ("connect_ports 443 8443").
REPEATABLE = {"listen", "realm_domain", "parent"}

SANITIZER_PATTERNS = [
    re.compile(p) for p in (
        r"ERROR: AddressSanitizer",
        r"ERROR: LeakSanitizer",
        r"SUMMARY: \w+Sanitizer",
        r"runtime error:",  # UBSan
        r"WARNING: ThreadSanitizer",
        r"AddressSanitizer:DEADLYSIGNAL",
    )
]


def authgate_bin():
    return pathlib.Path(os.environ.get("AUTHGATE_BIN") or DEFAULT_BIN)


def free_port(host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _host_port(listen):
    # "ADDR:PORT [proxy_protocol]": the address is the first word.
    host, _, port = listen.split()[0].rpartition(":")
    host = host.strip("[]")
    if host in ("*", "0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return host, int(port)


def render_config(options):
    lines = []
    for name, value in options.items():
        if value is None:
            continue
        if isinstance(value, list) and name in REPEATABLE:
            for v in value:
                lines.append("%s %s" % (name, v))
        elif isinstance(value, (list, tuple)):
            lines.append("%s %s" % (name, " ".join(str(v) for v in value)))
        elif isinstance(value, bool):
            lines.append("%s %s" % (name, "on" if value else "off"))
        else:
            lines.append("%s %s" % (name, value))
    return "\n".join(lines) + "\n"


def sanitizer_reports(text):
    return [p.pattern for p in SANITIZER_PATTERNS if p.search(text)]


def sanitizer_env(base=None):
    env = dict(base if base is not None else os.environ)
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
              "ALL_PROXY", "no_proxy", "NO_PROXY"):
        env.pop(k, None)
    env.setdefault("ASAN_OPTIONS",
                   "detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=86:"
                   "detect_stack_use_after_return=1:strict_string_checks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1:exitcode=87")
    env.setdefault("LSAN_OPTIONS", "exitcode=88")
    return env


class GatewayError(AssertionError):
    pass


class NotifySocket:
    """The service manager's end of sd_notify: an AF_UNIX datagram socket,
    bound in `directory` (or, when that path does not fit in sun_path, under
    an abstract name: the daemon's NOTIFY_SOCKET then starts with '@').
    Every message is kept as (sender pid, {KEY: VALUE}); the sender's pid
    comes from the kernel (SO_PASSCRED), so a message is checked against the
    daemon's pid as systemd's NotifyAccess=main does. A reader thread drains
    the socket at once, as systemd does: sd_notify blocks on a full queue
    (ten datagrams by default), and a test that reloads often must not
    freeze the daemon."""

    def __init__(self, directory, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        path = os.path.join(str(directory), "notify.sock")
        self.path = None
        if not abstract and len(os.fsencode(path)) < 100:  # sun_path: 108 with the NUL
            if os.path.lexists(path):
                os.unlink(path)
            self.sock.bind(path)
            self.path = self.address = path
        else:
            name = "authgate-notify-%d-%s" % (os.getpid(), secrets.token_hex(8))
            self.sock.bind("\0" + name)
            self.address = "@" + name
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(0.05)
        self.messages = []
        self.cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._read_loop, name="notify", daemon=True)
        self._thread.start()

    def _read_loop(self):
        while True:
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except socket.timeout:
                if self._closing:
                    return
                continue
            except OSError:
                return
            pid = None
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", cdata[:12])[0]
            fields = dict(l.split("=", 1) for l in data.decode(errors="replace").split("\n")
                          if "=" in l)
            with self.cond:
                self.messages.append((pid, fields))
                self.cond.notify_all()

    def wait(self, timeout):
        """Sleeps until a new message arrives or timeout seconds passed."""
        with self.cond:
            self.cond.wait(timeout)

    def close(self):
        """Stops reading once what was already sent is read; the messages
        stay."""
        if self._thread is not None:
            self._closing = True
            self._thread.join(5)
            self._thread = None
            self.sock.close()
        if self.path:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self.path = None


class Gateway:
    """One authgate process with its own config file and logs in workdir."""

    def __init__(self, workdir, options=None, binary=None, env=None, start_timeout=15.0):
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.binary = pathlib.Path(binary or authgate_bin())
        self.config_path = self.workdir / "authgate.conf"
        self.access_log_path = self.workdir / "access.log"
        self.error_log_path = self.workdir / "error.log"
        self.stderr_path = self.workdir / "stderr.txt"
        self.stdout_path = self.workdir / "stdout.txt"
        self.env = sanitizer_env(env)
        self.start_timeout = start_timeout
        self.proc = None
        self.returncode = None
        self.notify = None  # NotifySocket while the daemon runs
        self._stopped = False
        self.options = self.base_options()
        if options:
            self.options.update(options)
        if isinstance(self.options.get("listen"), str):
            self.options["listen"] = [self.options["listen"]]

    def base_options(self):
        return {
            "listen": ["127.0.0.1:%d" % free_port()],
            "auth_schemes": "none",
            "error_log": str(self.error_log_path),
            "access_log": str(self.access_log_path),
            "log_level": "info",
            # Tests read the logs right after the event they wait for:
            # every line written at once, as before log_buffer existed.
            # test_proxy_log_buffer.py runs the buffered default.
            "log_buffer": "0",
            "via_pseudonym": "authgate",
            "head_timeout": "2s",
            "connect_timeout": "1s",
            "upstream_idle_timeout": "2s",
            "dns_timeout": "2s",
            "shutdown_timeout": "3s",
            # The daemon's default (auto: one loop per CPU) unless
            # AG_TEST_WORKERS names a count (1: the single-loop path) or a
            # test asks for one (test_loops.py pins 2).
            **({"workers": os.environ["AG_TEST_WORKERS"]} if os.environ.get("AG_TEST_WORKERS")
               else {}),
        }

    # -- addresses -------------------------------------------------------------

    @property
    def listens(self):
        return [_host_port(l) for l in self.options["listen"]]

    @property
    def host(self):
        return self.listens[0][0]

    @property
    def port(self):
        return self.listens[0][1]

    @property
    def ports(self):
        return [p for _, p in self.listens]

    @property
    def url(self):
        h = "[%s]" % self.host if ":" in self.host else self.host
        return "http://%s:%d" % (h, self.port)

    proxy = url

    # -- logs ------------------------------------------------------------------

    @staticmethod
    def _read(path):
        try:
            return pathlib.Path(path).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def error_log(self):
        return self._read(self.error_log_path)

    @property
    def stderr(self):
        return self._read(self.stderr_path)

    @property
    def access_log(self):
        return [l for l in self._read(self.access_log_path).splitlines() if l.strip()]

    def wait_access_log(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.access_log
            if len(lines) >= n:
                return lines
            time.sleep(0.02)
        raise AssertionError("access log has %d lines, wanted %d: %r\nerror log:\n%s"
                             % (len(self.access_log), n, self.access_log, self.logs_tail()))

    def wait_log(self, pattern, timeout=5.0, since=0):
        """Waits for a regex in the error log or stderr (from byte offset since)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.error_log[since:] + "\n" + self.stderr
            m = rx.search(text)
            if m:
                return m
            time.sleep(0.02)
        raise AssertionError("no %r in the logs:\n%s" % (pattern, self.logs_tail()))

    def logs_tail(self, n=3000):
        return "--- error log ---\n%s\n--- stderr ---\n%s" % (self.error_log[-n:],
                                                            self.stderr[-n:])

    # -- config ----------------------------------------------------------------

    def write_config(self, options=None, text=None):
        if text is None:
            text = render_config(options if options is not None else self.options)
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.config_path)

    # -- process ---------------------------------------------------------------

    def start(self, prefix=(), wait=True, abstract_notify=False):
        """Starts the daemon (behind a command prefix that execs it, e.g. the
        winbind mount namespace) and, with wait, returns once it said READY=1.
        abstract_notify: NOTIFY_SOCKET under an abstract name ('@...')."""
        if not self.binary.exists():
            raise GatewayError("authgate binary not found at %s (build it, or set "
                               "AUTHGATE_BIN)" % self.binary)
        self.write_config()
        self._stderr_f = open(self.stderr_path, "wb")
        self._stdout_f = open(self.stdout_path, "wb")
        if self.notify is not None:
            self.notify.close()
        self.notify = NotifySocket(self.workdir, abstract=abstract_notify)
        env = dict(self.env, NOTIFY_SOCKET=self.notify.address)
        self.proc = subprocess.Popen(list(prefix) + [str(self.binary), "-c", str(self.config_path)],
                                     stdin=subprocess.DEVNULL, stdout=self._stdout_f,
                                     stderr=self._stderr_f, env=env, cwd=self.workdir)
        if wait:
            self.wait_ready()
        return self

    @property
    def notifications(self):
        """The daemon's notify messages so far, as {KEY: VALUE} dicts, in
        order (only those sent by the daemon's own pid)."""
        if self.notify is None or self.proc is None:
            return []
        with self.notify.cond:
            return [m for pid, m in self.notify.messages if pid == self.proc.pid]

    def wait_notify(self, key, since=0, timeout=None):
        """Waits for a message with KEY=1 from the daemon among the messages
        from index since on; returns its index. Fails at once if the daemon
        exits first, and kills it at the deadline."""
        timeout = self.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            for i, m in enumerate(self.notifications[since:], since):
                if m.get(key) == "1":
                    return i
            if self.proc.poll() is not None:
                self.notify.close()  # reads what was sent before the exit
                if any(m.get(key) == "1" for m in self.notifications[since:]):
                    continue
                self.returncode = self.proc.returncode
                when = "during start-up" if key == "READY" and since == 0 else \
                    "before saying %s=1" % key
                raise GatewayError("authgate exited with %s %s\n%s"
                                   % (self.proc.returncode, when, self.logs_tail()))
            if time.monotonic() > deadline:
                self.kill()
                raise GatewayError("authgate did not say %s=1 within %.0fs (notify: %r)\n%s"
                                   % (key, timeout, self.notifications, self.logs_tail()))
            self.notify.wait(0.05)

    def wait_ready(self):
        return self.wait_notify("READY")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self, overrides=None, text=None, wait=0):
        """Rewrites the config (base options + overrides, or raw text), sends
        SIGHUP and waits until the daemon said RELOADING=1 and then READY=1
        (it does whether the new file was taken or refused), then `wait`
        seconds more."""
        if text is None:
            opts = dict(self.options)
            opts.update(overrides or {})
            if isinstance(opts.get("listen"), str):
                opts["listen"] = [opts["listen"]]
            self.write_config(opts)
        else:
            self.write_config(text=text)
        before = len(self.notifications)
        self.signal(signal.SIGHUP)
        self.wait_notify("READY", since=self.wait_notify("RELOADING", since=before, timeout=5),
                         timeout=5)
        if wait:
            time.sleep(wait)
        if text is None:
            self.options = opts
        assert self.alive(), "authgate died on SIGHUP\n" + self.logs_tail()

    def wait_exit(self, timeout=10.0):
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def check_sanitizers(self):
        reports = sanitizer_reports(self.stderr) + sanitizer_reports(self.error_log)
        if reports:
            raise GatewayError("sanitizer report(s) %s\n%s" % (reports, self.logs_tail(20000)))

    def stop(self, timeout=None, expect_rc=0):
        """SIGTERM, wait, assert a clean exit (rc 0: the loop closed) and no
        sanitizer report. Kills the process if it does not exit in time."""
        if self._stopped:
            return self.returncode
        self._stopped = True
        timeout = timeout if timeout is not None else 15.0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.wait_exit(timeout)
        self._close_files()
        if rc is None:
            self.kill()
            raise GatewayError("authgate did not exit within %.0fs of SIGTERM\n%s"
                               % (timeout, self.logs_tail()))
        self.check_sanitizers()
        if expect_rc is not None and rc != expect_rc:
            raise GatewayError("authgate exited with %d, expected %d\n%s"
                               % (rc, expect_rc, self.logs_tail()))
        return rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self._stopped = True
        self._close_files()

    def _close_files(self):
        for f in ("_stderr_f", "_stdout_f"):
            fh = getattr(self, f, None)
            if fh is not None:
                fh.close()
                setattr(self, f, None)
        if self.notify is not None:
            self.notify.close()  # the messages stay readable


def check_config(path, binary=None, timeout=10.0):
    """Runs `authgate -t -c path`; returns (rc, stdout+stderr)."""
    b = str(binary or authgate_bin())
    p = subprocess.run([b, "-t", "-c", str(path)], capture_output=True, timeout=timeout,
                       env=sanitizer_env(), stdin=subprocess.DEVNULL)
    out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
    reports = sanitizer_reports(out)
    if reports:
        raise GatewayError("sanitizer report(s) in -t: %s\n%s" % (reports, out))
    return p.returncode, out


def log_events(gw, since=0):
    """The event=... names in the gateway's error log (from byte offset since)."""
    return re.findall(r"event=(\w+)", gw.error_log[since:])
