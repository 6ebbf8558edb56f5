"""Small process/port helpers shared by the peer fixtures (internal)."""

import ctypes
import errno
import os
import signal
import socket
import subprocess
import tempfile
import time

PR_SET_PDEATHSIG = 1

# Unix socket paths are limited to 108 bytes; Samba puts sockets a few levels
# below its directories, so keep our private trees short.
_MAX_BASE_LEN = 40


class PeerError(RuntimeError):
    """A peer failed to set up, start or answer; the message carries its log."""


def _tmpfs_with_room(path, need=256 << 20):
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return os.access(path, os.W_OK) and st.f_bavail * st.f_frsize >= need


def private_dir(prefix, base_dir=None):
    """mkdtemp under the first usable of: base_dir, $AUTHGATE_PEERS_TMPDIR,
    /dev/shm (tmpfs, if it has room), $TMPDIR, /tmp.

    tmpfs by default because winbindd updates its tdb files on every logon:
    on ext4 the fsyncs made its throughput erratic (870-2,200 auth/s, stalls
    of 2 s) where tmpfs gives a steady ~3,100/s -- benchmarks need the steady
    ceiling."""
    candidates = [base_dir, os.environ.get("AUTHGATE_PEERS_TMPDIR")]
    if _tmpfs_with_room("/dev/shm"):
        candidates.append("/dev/shm")
    candidates += [os.environ.get("TMPDIR"), "/tmp"]
    for base in candidates:
        if base and len(base) <= _MAX_BASE_LEN and os.path.isdir(base):
            return tempfile.mkdtemp(prefix=prefix, dir=base)
    raise PeerError("no short temporary directory available")


def _die_with_parent(sig):
    """preexec_fn factory: the child gets sig when the test process dies (even
    by SIGKILL), so an interrupted run leaves no daemon behind."""
    def preexec():
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        except Exception:  # pragma: no cover - best effort
            pass
    return preexec


def spawn(argv, env, log_path, cwd=None, pdeathsig=signal.SIGTERM):
    """Start a daemon in its own session, stdout+stderr to log_path."""
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(
            argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_die_with_parent(pdeathsig), close_fds=True)
    finally:
        log.close()


def run(argv, env=None, input=None, timeout=30, check=True, what=None):
    """Run a short command; on failure raise PeerError with its output."""
    try:
        p = subprocess.run(argv, env=env, input=input, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout,
                           stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise PeerError(f"{what or argv[0]}: timed out after {timeout}s: {argv}") from e
    if check and p.returncode != 0:
        raise PeerError(
            f"{what or argv[0]} failed (rc={p.returncode}): {argv}\n"
            f"stdout: {p.stdout.decode(errors='replace')}\n"
            f"stderr: {p.stderr.decode(errors='replace')}")
    return p


def wait_until(pred, timeout, interval=0.02, what="condition", on_fail=None):
    """Poll pred() until true; raise PeerError(on_fail()) after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return
        if time.monotonic() >= deadline:
            extra = on_fail() if on_fail else ""
            raise PeerError(f"timed out after {timeout}s waiting for {what}\n{extra}")
        time.sleep(interval)
        interval = min(interval * 1.5, 0.2)


def free_port(host="127.0.0.1"):
    """A port free for both TCP and UDP on host (racy by nature: retry on bind failure)."""
    for _ in range(100):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t.bind((host, 0))
            port = t.getsockname()[1]
            try:
                u.bind((host, port))
            except OSError:
                continue
            return port
        finally:
            t.close()
            u.close()
    raise PeerError("no free port")


def tcp_answers(host, port, timeout=0.2):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def stop_process(proc, timeout=10):
    """SIGTERM, wait, SIGKILL; reaps the Popen. Returns the exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGCONT)  # in case a test froze it
            proc.terminate()
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    return proc.returncode


def pids_with_arg(needle, programs=None):
    """PIDs whose command line contains needle (a unique private path of ours),
    optionally only those whose argv[0] basename starts with one of programs."""
    out = []
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if needle.encode() not in cmd:
            continue
        if programs:
            prog = os.path.basename(cmd.split(b"\0", 1)[0].decode(errors="replace"))
            if not prog.startswith(tuple(programs)):
                continue
        out.append(int(name))
    return out


def kill_pids(pids, timeout=5):
    """SIGTERM the given pids, wait until gone, SIGKILL the rest."""
    alive = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGTERM)
            alive.append(pid)
        except ProcessLookupError:
            pass

    def gone(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().split(") ", 1)[1].startswith("Z")  # zombie = dead
        except OSError:
            return True

    deadline = time.monotonic() + timeout
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if not gone(p)]
        if alive:
            time.sleep(0.05)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError as e:
            if e.errno != errno.ESRCH:
                raise


def tail(path, limit=6000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode(errors="replace")
    except OSError as e:
        return f"<{path}: {e}>"


def can_unshare_mount(pid_ns=False):
    """True if this process may create a private mount (and pid) namespace
    (root with CAP_SYS_ADMIN)."""
    if os.geteuid() != 0:
        return False
    extra = ["-p", "--fork"] if pid_ns else []
    try:
        p = subprocess.run(["unshare", "-m", *extra, "--propagation", "private", "true"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
        return p.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
