"""A throwaway standalone Samba winbindd for integration tests.

See /work/shared/testenv/NOTES.md.  A standalone server (security = user,
tdbsam) whose workgroup and NetBIOS name are both ``domain``; accounts are
Unix accounts provided through nss_wrapper (private passwd/group files that
start as copies of /etc/passwd and /etc/group, so system users such as nobody
still resolve), with Samba passwords set by pdbedit.  Groups from
``groups=`` are mapped as domain groups (net groupmap), so their SIDs appear
in the sids[] of wbcAuthenticateUserEx results and wbcLookupName finds them.

Reaching THIS winbindd from another process
-------------------------------------------
libwbclient always connects to /run/samba/winbindd/pipe, except that it
honours SELFTEST_WINBINDD_SOCKET_DIR when the process has nss_wrapper loaded
(nss_wrapper_enabled() returns true).  Two client modes:

* ``client_mode="nss_wrapper"`` (default; needs no privilege at all, works in
  unprivileged containers): the client runs with LD_PRELOAD=libnss_wrapper.so,
  NSS_WRAPPER_PASSWD/GROUP and SELFTEST_WINBINDD_SOCKET_DIR.  ``client_prefix()``
  is empty.  Side effects in the client: getpwnam()/getgrnam() read the
  private files (copies of the system ones plus the test users), and an
  AddressSanitizer build refuses a foreign preload unless libasan comes
  first: pass ``gateway_env(binary=path)`` (see there).
* ``client_mode="namespace"`` (root with CAP_SYS_ADMIN): ``client_prefix()`` is
  ``unshare -m ... mount --bind <dir>/run /run/samba; exec ...``, so the client
  sees the private socket at the standard path and nothing is preloaded.
  Needs /run/samba to exist (the samba packages create it).

Either way a test starts the gateway like this::

    proc = subprocess.Popen(wb.client_prefix() + [gateway, "-c", conf],
                            env=wb.gateway_env({**os.environ, **kdc.env},
                                               binary=gateway))

(the prefix execs, so proc.pid is the gateway's pid).  Select the default
mode for a whole run with AUTHGATE_WB_CLIENT_MODE=namespace|nss_wrapper.

NTLM (WBC_AUTH_USER_LEVEL_RESPONSE) goes through winbindd's privileged pipe in
``<dir>/state/winbindd_privileged`` (mode 0750, root-owned).  A gateway that
drops root needs group access: ``allow_gid(gid)``.

Group lookups: wbcLookupName needs the domain (``lookup_name("internet",
wb.domain)``); with an empty domain it answers WBC_ERR_DOMAIN_NOT_FOUND
(wbinfo -n hides this by filling in the default domain).

The server itself runs, when the machine allows it, in a private mount and
pid namespace (``unshare -m -p --fork``; winbindd is its pid 1):
  * /var/log/samba, /var/lib/samba, /var/cache/samba and /run/samba are
    private directories there: samba-dcerpcd and its rpcd_* workers (spawned
    by winbindd for name lookups) create their log files in the compiled-in
    /var/log/samba before they read smb.conf;
  * samba-dcerpcd daemonizes away from winbindd and outlives it; in the pid
    namespace the kernel kills it with winbindd, also when the test runner is
    SIGKILLed (PDEATHSIG -> unshare --kill-child -> winbindd).
Without CAP_SYS_ADMIN (``isolate_server=False``) it runs directly: stop()
still kills samba-dcerpcd/rpcd_* (found by our smb.conf path on their
command line), empty log.rpcd_* files appear in /var/log/samba, and a
SIGKILLed runner leaves samba-dcerpcd behind.

The private directory is on /dev/shm when it has room (see
_util.private_dir: on ext4 winbindd's per-logon tdb updates made its
throughput erratic); AUTHGATE_PEERS_TMPDIR or base_dir= choose another place.
"""

import glob
import json
import os
import shutil
import signal
import subprocess

from ._util import (PeerError, can_unshare_mount, kill_pids, pids_with_arg, private_dir,
                    run, spawn, stop_process, tail, wait_until)
from .accounts import DEFAULT_GROUPS, DEFAULT_USERS

NSS_WRAPPER = "libnss_wrapper.so"
PYTHON = "/usr/bin/python3"  # Debian's; a pyenv python3 first in PATH may lack its modules
SAMBA_SERVERS = ("winbindd", "samba-dcerpcd", "rpcd_", "samba-bgqd")
_SYSTEM_SAMBA_DIRS = ("/var/log/samba", "/var/lib/samba", "/var/cache/samba", "/run/samba")


class Winbind:
    def __init__(self, domain="AUTHGATE", users=None, groups=None, client_mode=None,
                 isolate_server=None, base_dir=None, start_timeout=30, debuglevel=1,
                 keep=False):
        if len(domain) > 15:
            raise ValueError("a NetBIOS name has at most 15 characters")
        self.domain = domain.upper()
        self.users = dict(DEFAULT_USERS if users is None else users)
        self.groups = {g: list(m) for g, m in (DEFAULT_GROUPS if groups is None
                                               else groups).items()}
        mode = client_mode or os.environ.get("AUTHGATE_WB_CLIENT_MODE") or "nss_wrapper"
        if mode not in ("nss_wrapper", "namespace"):
            raise ValueError(f"client_mode {mode!r}")
        self.client_mode = mode
        self._isolate = isolate_server
        self.start_timeout = start_timeout
        self.debuglevel = debuglevel
        self.keep = keep
        self._base_dir = base_dir
        self.dir = None
        self.proc = None
        self._next_id = None
        self._priv_gid = None

    # ------------------------------------------------------------ paths
    def _p(self, *parts):
        return os.path.join(self.dir, *parts)

    @property
    def smb_conf(self):
        return self._p("smb.conf")

    @property
    def passwd_file(self):
        return self._p("passwd")

    @property
    def group_file(self):
        return self._p("group")

    @property
    def run_dir(self):
        """Bind-mounted over /run/samba in namespace mode."""
        return self._p("run")

    @property
    def socket_dir(self):
        """winbindd socket directory (the 'pipe' socket lives here)."""
        return self._p("run", "winbindd")

    @property
    def priv_dir(self):
        return self._p("state", "winbindd_privileged")

    @property
    def log_dir(self):
        return self._p("log")

    # ------------------------------------------------------------ environments
    def nss_env(self):
        """The nss_wrapper variables (without LD_PRELOAD)."""
        return {"NSS_WRAPPER_PASSWD": self.passwd_file,
                "NSS_WRAPPER_GROUP": self.group_file}

    def _server_env(self):
        env = dict(os.environ)
        env.update(self.nss_env())
        env["LD_PRELOAD"] = NSS_WRAPPER
        env["SELFTEST_WINBINDD_SOCKET_DIR"] = self.socket_dir
        return env

    def gateway_env(self, base=None, binary=None):
        """A full environment (base, default os.environ, plus what is needed)
        for a process that must reach this winbindd through libwbclient.
        Use together with client_prefix().

        nss_wrapper mode and AddressSanitizer: a dynamically linked ASan
        runtime aborts at start-up ("ASan runtime does not come first in
        initial library list") when another library is preloaded.  Pass the
        program as binary=: if it links libasan, libasan is preloaded first
        and ASAN_OPTIONS is left alone.  Without binary=,
        verify_asan_link_order=0 is appended to an ASAN_OPTIONS already in
        base (none is invented, so a harness that fills in its own defaults
        with setdefault still does)."""
        env = dict(os.environ if base is None else base)
        if self.client_mode != "nss_wrapper":
            env.pop("SELFTEST_WINBINDD_SOCKET_DIR", None)
            return env
        env.update(self.nss_env())
        env["SELFTEST_WINBINDD_SOCKET_DIR"] = self.socket_dir
        pre = [p for p in env.get("LD_PRELOAD", "").replace(":", " ").split() if p]
        asan = asan_runtime(binary) if binary is not None else None
        if asan:
            pre = [asan] + [p for p in pre if p != asan]
        if not any(os.path.basename(p) == NSS_WRAPPER for p in pre):
            pre.append(NSS_WRAPPER)
        env["LD_PRELOAD"] = " ".join(pre)
        opts = env.get("ASAN_OPTIONS")
        if not asan and opts is not None and "verify_asan_link_order" not in opts:
            env["ASAN_OPTIONS"] = (opts + ":" if opts else "") + "verify_asan_link_order=0"
        return env

    def client_prefix(self):
        """Command prefix for a libwbclient process (empty in nss_wrapper mode)."""
        if self.client_mode == "nss_wrapper":
            return []
        return ["unshare", "-m", "--propagation", "private", "--", "/bin/sh", "-c",
                'mount --bind "$0" /run/samba || exit 125; exec "$@"', self.run_dir]

    def command(self, argv):
        """client_prefix() + argv."""
        return self.client_prefix() + list(argv)

    # ------------------------------------------------------------ lifecycle
    def __enter__(self):
        try:
            self.setup()
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def setup(self):
        self.dir = private_dir("ag-wb-", self._base_dir)
        # Traversable (0755) so a gateway that drops root reaches the sockets.
        os.chmod(self.dir, 0o755)
        for d in ("private", "lock", "state", "cache", "pid", "ncalrpc", "log", "run",
                  "run/winbindd", "sys/log", "sys/lib", "sys/cache"):
            os.makedirs(self._p(d), exist_ok=True)
            os.chmod(self._p(d), 0o755)
        os.chmod(self._p("private"), 0o700)
        if self.client_mode == "namespace" and not os.path.isdir("/run/samba"):
            raise PeerError("client_mode=namespace needs /run/samba to exist")
        if self._isolate is None:
            forced = os.environ.get("AUTHGATE_WB_ISOLATE")  # "0": test the fallback
            self._isolate = (forced != "0") and can_unshare_mount(pid_ns=True)
        self._write_nss_files()
        self._write_smb_conf()
        for name, pw in self.users.items():
            self._pdb_add(name, pw)
        for g in self.groups:
            run(["net", "-s", self.smb_conf, "groupmap", "add", f"ntgroup={g}",
                 f"unixgroup={g}", "type=domain"], env=self._server_env(),
                what="net groupmap add")

    def _write_nss_files(self):
        with open("/etc/passwd") as f:
            pw_lines = [l.rstrip("\n") for l in f if l.strip()]
        with open("/etc/group") as f:
            gr_lines = [l.rstrip("\n") for l in f if l.strip()]
        used_ids = set()
        for l in pw_lines + gr_lines:
            parts = l.split(":")
            if len(parts) > 2 and parts[2].isdigit():
                used_ids.add(int(parts[2]))
        self._used_ids = used_ids
        self._next_id = 30000
        self._pw_names = {l.split(":")[0] for l in pw_lines}
        self._gr_names = {l.split(":")[0] for l in gr_lines}
        self._primary_gid = self._alloc_id()
        gr_lines.append(f"agusers:x:{self._primary_gid}:")
        self._pw_lines, self._gr_lines = pw_lines, gr_lines
        for g, members in self.groups.items():
            if g not in self._gr_names:  # a system group of that name is reused
                gr_lines.append(f"{g}:x:{self._alloc_id()}:")
                self._gr_names.add(g)
            self._add_members(g, members)
        for name in self.users:
            self._add_passwd_line(name)
        self._flush_nss_files()

    def _add_members(self, group, names):
        for i, l in enumerate(self._gr_lines):
            parts = l.split(":")
            if parts[0] == group:
                members = [m for m in parts[3].split(",") if m]
                members += [n for n in names if n not in members]
                parts[3] = ",".join(members)
                self._gr_lines[i] = ":".join(parts)
                return
        raise PeerError(f"unknown group {group}")

    def _alloc_id(self):
        while self._next_id in self._used_ids:
            self._next_id += 1
        self._used_ids.add(self._next_id)
        return self._next_id

    def _add_passwd_line(self, name):
        if name in self._pw_names:
            return
        uid = self._alloc_id()
        self._pw_lines.append(f"{name}:x:{uid}:{self._primary_gid}:{name}:/nonexistent:"
                              "/usr/sbin/nologin")
        self._pw_names.add(name)

    def _flush_nss_files(self):
        for path, lines in ((self.passwd_file, self._pw_lines),
                            (self.group_file, self._gr_lines)):
            with open(path + ".tmp", "w") as f:
                f.write("\n".join(lines) + "\n")
            os.chmod(path + ".tmp", 0o644)
            os.replace(path + ".tmp", path)

    def _write_smb_conf(self):
        d = self.dir
        with open(self.smb_conf, "w") as f:
            f.write(f"""[global]
    workgroup = {self.domain}
    netbios name = {self.domain}
    security = user
    server role = standalone server
    passdb backend = tdbsam:{d}/private/passdb.tdb
    interfaces = lo
    bind interfaces only = yes
    disable netbios = yes
    private dir = {d}/private
    lock directory = {d}/lock
    state directory = {d}/state
    cache directory = {d}/cache
    pid directory = {d}/pid
    ncalrpc dir = {d}/ncalrpc
    winbindd socket directory = {self.socket_dir}
    log file = {d}/log/log.%d
    log level = {self.debuglevel}
    max log size = 0
    load printers = no
    printcap name = /dev/null
    disable spoolss = yes
""")

    def _pdb_add(self, name, password):
        run(["pdbedit", "-s", self.smb_conf, "-a", "-u", name, "-t"],
            env=self._server_env(), input=f"{password}\n{password}\n".encode(),
            what=f"pdbedit -a {name}")

    def add_user(self, name, password, groups=()):
        """Add a Unix + Samba account (works while winbindd runs)."""
        self._add_passwd_line(name)
        for g in groups:
            self._add_members(g, [name])
            self.groups.setdefault(g, []).append(name)
        self._flush_nss_files()
        self._pdb_add(name, password)
        self.users[name] = password

    def add_machine(self, name, password, kind="W"):
        """Add a machine trust account NAME$: kind "W" a workstation, "S" a
        server trust account (the account flags winbind reports).  pdbedit -c
        sets only [NDHLX] and -m only [W], so the account is imported from a
        one-line smbpasswd file, then given password by smbpasswd.  Returns
        the account name."""
        if kind not in ("W", "S"):
            raise ValueError(f"kind {kind!r}")
        account = name.upper().rstrip("$") + "$"
        self._add_passwd_line(account)
        self._flush_nss_files()
        uid = next(l.split(":")[2] for l in self._pw_lines if l.startswith(account + ":"))
        src = self._p(f"import-{account}.smbpasswd")
        with open(src, "w") as f:
            f.write(f"{account}:{uid}:{'X' * 32}:{'X' * 32}:[{kind:<11}]:LCT-00000000:\n")
        run(["pdbedit", "-s", self.smb_conf, "-i", "smbpasswd:" + src],
            env=self._server_env(), what=f"pdbedit -i {account}")
        os.unlink(src)
        self.set_password(account, password)
        return account

    def set_password(self, name, password):
        run(["smbpasswd", "-c", self.smb_conf, "-s", name], env=self._server_env(),
            input=f"{password}\n{password}\n".encode(), what="smbpasswd")
        self.users[name] = password

    def _server_argv(self):
        argv = ["winbindd", "-F", "--no-process-group", "-s", self.smb_conf,
                "-l", self.log_dir, "-d", str(self.debuglevel)]
        if not self._isolate:
            return argv
        script = []
        args = []
        for i, (sysdir, mine) in enumerate(zip(_SYSTEM_SAMBA_DIRS,
                                               ("sys/log", "sys/lib", "sys/cache", "run"))):
            if os.path.isdir(sysdir):
                script.append(f'mount --bind "${i + 1}" {sysdir} || exit 125')
                args.append(self._p(mine))
            else:
                script.append(": " + sysdir)
                args.append("-")
        n = len(args)
        script.append(f"shift {n}")
        script.append('exec "$@"')
        # -p --fork: winbindd becomes pid 1 of a new pid namespace, so when it
        # exits the kernel kills everything it started (samba-dcerpcd and its
        # workers daemonize away from winbindd and would otherwise survive).
        # --kill-child: if unshare dies (the test runner was killed and
        # PDEATHSIG hit it), winbindd gets SIGTERM.
        return (["unshare", "-m", "-p", "--fork", "--kill-child=SIGTERM",
                 "--propagation", "private", "--", "/bin/sh", "-c",
                 "; ".join(script), "winbindd-ns"] + args + argv)

    def start(self):
        """Start winbindd (foreground child) and wait until it answers."""
        if self.running():
            return
        # The unshare wrapper blocks SIGTERM while it waits: it must get SIGKILL
        # when the test runner dies (its --kill-child then stops winbindd).
        self.proc = spawn(self._server_argv(), self._server_env(), self._p("winbindd.out"),
                          cwd=self.dir,
                          pdeathsig=signal.SIGKILL if self._isolate else signal.SIGTERM)

        def ready():
            if self.proc.poll() is not None:
                raise PeerError(f"winbindd exited with {self.proc.returncode}\n{self.logs()}")
            return self.wbinfo("-p", timeout=10).returncode == 0

        try:
            wait_until(ready, self.start_timeout, what="winbindd ping", on_fail=self.logs)
            # Let winbindd start samba-dcerpcd (name lookups) before the first test.
            if self.users:
                first = next(iter(self.users))
                wait_until(lambda: self.wbinfo("-n", first, timeout=15).returncode == 0,
                           self.start_timeout, what=f"wbinfo -n {first}",
                           on_fail=self.logs)
        except BaseException:
            self.stop()
            raise
        if self._priv_gid is not None:
            self.allow_gid(self._priv_gid)

    @property
    def pid(self):
        """winbindd's pid (not the unshare wrapper's), or None if not running."""
        if not self.running():
            return None
        if not self._isolate:
            return self.proc.pid
        kids = self._children(self.proc.pid)
        return kids[0] if kids else None

    def stop(self):
        """Stop winbindd and every helper it started (samba-dcerpcd, rpcd_*)."""
        try:
            if self.running():
                self.resume()  # stopped children would not see their parent go
                pid = self.pid
                if pid is not None and pid != self.proc.pid:
                    # winbindd (pid 1 of its namespace) first; unshare follows it.
                    kill_pids([pid], timeout=10)
            stop_process(self.proc)
        finally:
            if self.dir:
                kill_pids(self.server_pids())

    def server_pids(self):
        """Samba server processes using this instance's smb.conf (winbindd,
        samba-dcerpcd, rpcd_*); not clients such as ntlm_auth helpers."""
        return pids_with_arg(self.smb_conf, SAMBA_SERVERS)

    def restart(self):
        self.stop()
        self.start()

    def pause(self):
        """SIGSTOP winbindd and its children: calls hang instead of failing
        (a hung winbindd; the gateway's own deadline must fire)."""
        pid = self.pid
        for p in [pid] + self._children(pid):
            os.kill(p, signal.SIGSTOP)

    def resume(self):
        pid = self.pid
        if pid is None:
            return
        for p in [pid] + self._children(pid):
            os.kill(p, signal.SIGCONT)

    @staticmethod
    def _children(pid):
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            return []

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def close(self):
        try:
            if self.proc is not None or self.dir:
                self.stop()
        finally:
            if self.dir and not self.keep:
                shutil.rmtree(self.dir, ignore_errors=True)

    def allow_gid(self, gid):
        """Give group gid access to the privileged pipe (NTLM responses) for a
        gateway that drops root.  winbindd keeps the directory's group."""
        self._priv_gid = gid
        if os.path.isdir(self.priv_dir):
            os.chown(self.priv_dir, 0, gid)

    # ------------------------------------------------------------ helpers
    def wbinfo(self, *args, timeout=30, check=False):
        """Run wbinfo against this winbindd; returns CompletedProcess (text)."""
        p = subprocess.run(self.command(["wbinfo", *args]), env=self.gateway_env(),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise PeerError(f"wbinfo {' '.join(args)} failed ({p.returncode}):\n"
                            f"{p.stdout}{p.stderr}")
        return p

    def _probe(self, *args, timeout=30):
        probe = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wbc_probe.py")
        p = subprocess.run(self.command([PYTHON, probe, *args]), env=self.gateway_env(),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
        if p.returncode != 0:
            raise PeerError(f"wbc_probe {args[0]} failed ({p.returncode}): {p.stderr}")
        return json.loads(p.stdout)

    def authenticate(self, user, password, domain=None, timeout=30):
        """wbcAuthenticateUserEx (plaintext) from a separate process started like a
        gateway.  Returns {"ok", "result", "nt_status"?, "account_name"?,
        "domain_name"?, "sids"?: [user, primary group, groups...]}."""
        return self._probe("auth", user, password, *([domain] if domain is not None else []),
                           timeout=timeout)

    def lookup_name(self, name, domain=""):
        """wbcLookupName from a separate process: {"ok", "result", "sid"?, "type"?}."""
        return self._probe("lookup", name, domain)

    def sid(self, name):
        """SID of a user or group name (wbinfo -n)."""
        out = self.wbinfo("-n", name, check=True).stdout.split()
        return out[0]

    def logs(self, limit=4000):
        parts = [f"--- {self._p('winbindd.out')}\n{tail(self._p('winbindd.out'), limit)}"]
        files = glob.glob(self._p("log", "log.*")) + glob.glob(self._p("sys", "log", "log.*"))
        files.sort(key=lambda p: os.path.getmtime(p) if os.path.exists(p) else 0)
        for path in files:
            if os.path.getsize(path):
                parts.append(f"--- {path}\n{tail(path, limit)}")
        return "\n".join(parts)


def asan_runtime(binary):
    """Path of the shared ASan runtime binary links against, or None."""
    try:
        out = subprocess.run(["ldd", str(binary)], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        if "libasan.so" in line or "libclang_rt.asan" in line:
            path = line.split("=>", 1)[-1].split("(")[0].strip()
            if path.startswith("/") and os.path.exists(path):
                return path
    return None

