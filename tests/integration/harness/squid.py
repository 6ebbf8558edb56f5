"""A real Squid 5.7 (Debian `squid`) started by a test as a parent proxy.

Private directory (owned by the `proxy` user: Squid refuses to run as root
and drops to cache_effective_user), private squid.conf with `cache deny all`,
`-N` (foreground, one process) and `-n NAME` so that instances never meet.
Its access log uses a logformat that shows what the gateway sent:
method, URL, status, the identity header (%{X-Authenticated-User}>h) and
the user Squid authenticated (%un, "-" without auth).
"""

import os
import pathlib
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time

from harness.gateway import free_port

IDENT = "X-Authenticated-User"
# Then the local port the request came in on (http_port or the https_port
# of a TLS parent), and last the client's source port: one value per client
# connection, so that a test counts the connections the gateway opened.
LOGFORMAT = "logformat agtest %%rm %%ru %%>Hs %%{%s}>h %%un %%>lp %%>p" % IDENT


def squid_conf(d, name, port=None, https=None, workers=1, max_fds=None, access_log=None,
               logfile_rotate=True, hosts_file=None, lines=(), allow_all=True, head=""):
    """The text of a private squid.conf: what every Squid started by the tests
    and by scripts/bench needs to run beside others (its files in directory d,
    no cache, no ICP/HTCP/SNMP, no pinger, a quick shutdown), and the caller's
    parts. One builder for harness/squid.py, test_import_squid.py and
    scripts/bench.d/bench.py.

      head        text put first, as it is (a comment; a whole configuration
                  under test)
      port        http_port on 127.0.0.1 (None: none added, head has one)
      https       (port, cert, key): an https_port on 127.0.0.1
      workers     `workers N` (None: none, Squid's default one)
      max_fds     max_filedescriptors
      access_log  None: `access_log none`; a path: the agtest LOGFORMAT to
                  it, unbuffered
      logfile_rotate  `logfile_rotate 0` (False: Squid's default)
      hosts_file  a private hosts file, and DNS on loopback only
      lines       auth_param / acl / http_access lines, before the last
      allow_all   `http_access allow all` last (with auth lines, the
                  rule after their `http_access deny all`)"""
    out = []
    if port is not None:
        out.append("http_port 127.0.0.1:%d" % port)
    if https is not None:
        out.append("https_port 127.0.0.1:%d tls-cert=%s tls-key=%s" % tuple(https))
    out += ["visible_hostname %s" % name,
            "cache_effective_user proxy",
            "cache_effective_group proxy"]
    if workers is not None:
        out.append("workers %d" % workers)
    if max_fds is not None:
        out.append("max_filedescriptors %d" % max_fds)
    out += ["pid_filename %s/squid.pid" % d,
            "cache_log %s/cache.log" % d]
    if access_log is None:
        out.append("access_log none")
    else:
        out += [LOGFORMAT, "access_log stdio:%s agtest" % access_log]
    out.append("cache_store_log none")
    if logfile_rotate:
        out.append("logfile_rotate 0")
    out += ["coredump_dir %s" % d,
            "netdb_filename none",
            "pinger_enable off",
            "shutdown_lifetime 0 seconds",
            "icp_port 0",
            "htcp_port 0",
            "snmp_port 0",
            "cache deny all"]
    if access_log is not None:
        out.append("buffered_logs off")
    if hosts_file is not None:
        out += ["hosts_file %s" % hosts_file, "dns_nameservers 127.0.0.1"]
    out += list(lines)
    if allow_all:
        out.append("http_access allow all")
    return head + "\n".join(out) + "\n"


def htpasswd_text(users):
    """An htpasswd file's text for Squid's basic_ncsa_auth, {user: password}:
    APR1-MD5 (which it supports) from `openssl passwd -apr1`, the password on
    stdin (never in a process's argv)."""
    out = []
    for user, password in users.items():
        p = subprocess.run(["openssl", "passwd", "-apr1", "-stdin"], input=password + "\n",
                           text=True, capture_output=True, timeout=30)
        if p.returncode != 0 or not p.stdout.startswith("$apr1$"):
            raise RuntimeError("openssl passwd -apr1 failed: %s" % p.stderr.strip())
        out.append("%s:%s\n" % (user, p.stdout.strip()))
    return "".join(out)


class SquidError(RuntimeError):
    """Squid missing or not starting: a broken set-up, never the verdict."""


class Squid:
    """workdir is unused for Squid's own files: those live in a fresh
    directory under /tmp (self.dir), reachable by the proxy user, which the
    pytest tree (mode 0700 per run) is not. Files Squid must read (htpasswd,
    keytab) go in there too; remove() deletes it."""

    def __init__(self, workdir=None, auth_lines=(), env=None, name="parent", tls=None):
        """tls: (cert_path, key_path) adds an https_port (self.tls_port): an
        HTTPS proxy, what `parent ... tls` talks to."""
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="ag-squid-"))
        os.chmod(self.dir, 0o755)
        self.auth_lines = list(auth_lines)
        self.env = dict(os.environ if env is None else env)
        self.name = name
        self.port = None
        self.tls_port = None
        self.tls = tls
        self.proc = None

    @property
    def access_log_path(self):
        return self.dir / "access.log"

    def start(self, timeout=30.0, port=None):
        if shutil.which("squid") is None:
            raise SquidError("squid not installed (apt-get install squid)")
        pw = pwd.getpwnam("proxy")
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.port = port or self.port or free_port()
        conf = self.dir / "squid.conf"
        https = None
        if self.tls:
            # Copies the proxy user can read (the pytest tree is 0700).
            cert = self.private_file("tls.pem", pathlib.Path(self.tls[0]).read_bytes())
            key = self.private_file("tls.key", pathlib.Path(self.tls[1]).read_bytes())
            self.tls_port = self.tls_port or free_port()
            https = (self.tls_port, cert, key)
        conf.write_text(squid_conf(self.dir, self.name, port=self.port, https=https,
                                   access_log=self.access_log_path, lines=self.auth_lines))
        svc = re.sub(r"[^A-Za-z0-9]", "", "agt%d%s%d" % (os.getpid(), self.name, self.port))
        self._out = open(self.dir / "stdout.log", "ab")
        cache_log = self.dir / "cache.log"
        since = cache_log.stat().st_size if cache_log.exists() else 0
        self.proc = subprocess.Popen(["squid", "-N", "-f", str(conf), "-n", svc],
                                     stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._out, env=self.env, cwd=self.dir,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = cache_log.read_text(errors="replace")[since:] if cache_log.exists() else ""
            if "Accepting HTTP Socket connections" in text and (
                    not self.tls or "Accepting HTTPS Socket connections" in text):
                return self
            if self.proc.poll() is not None or "FATAL" in text:
                break
            time.sleep(0.05)
        out = self.logs_tail()
        self.stop()
        raise SquidError("squid did not start:\n%s" % out)

    def logs_tail(self, n=3000):
        def rd(p):
            try:
                return p.read_text(errors="replace")[-n:]
            except FileNotFoundError:
                return ""
        return "--- squid cache.log ---\n%s\n--- stdout ---\n%s" % (
            rd(self.dir / "cache.log"), rd(self.dir / "stdout.log"))

    @property
    def access_log(self):
        try:
            text = self.access_log_path.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return [l.split(" ") for l in text.splitlines() if l.strip()]

    def wait_logged(self, pred, timeout=5.0):
        """The first access-log record [method, url, status, ident, user]
        that pred accepts, waited for."""
        deadline = time.monotonic() + timeout
        while True:
            for rec in self.access_log:
                if pred(rec):
                    return rec
            if time.monotonic() > deadline:
                raise AssertionError("no such record in squid's access log: %r\n%s"
                                     % (self.access_log, self.logs_tail()))
            time.sleep(0.02)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None
        self._out.close()

    def remove(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def private_file(self, name, text, mode=0o640):
        """A file Squid (the proxy user) reads and nobody else does."""
        p = self.dir / name
        p.write_text(text) if isinstance(text, str) else p.write_bytes(text)
        pw = pwd.getpwnam("proxy")
        os.chown(p, 0, pw.pw_gid)
        os.chmod(p, mode)
        return p
