"""Process inspection through /proc: which threads of a process are blocked
waiting on a socket (a verification waiting on a paused winbindd), without
sleeping.

  threads_waiting_on_socket    such threads, the main one left out unless asked
"""

import os
import pathlib

# poll, ppoll, read, recvfrom, recvmsg (aarch64 has no poll)
_SOCKET_WAIT_SYSCALLS = {"x86_64": (7, 271, 0, 45, 47), "aarch64": (73, 63, 207, 212)}


def _threads(pid):
    try:
        return [int(t) for t in os.listdir("/proc/%d/task" % pid)]
    except OSError:
        return []


def _syscall(pid, tid):
    try:
        return pathlib.Path("/proc/%d/task/%d/syscall" % (pid, tid)).read_text().split()
    except OSError:
        return []


def threads_waiting_on_socket(pid, include_main=False):
    """Threads of pid (other than the main one unless include_main) blocked
    waiting on a socket (poll/ppoll/read/recv): a libwbclient call hanging on
    a paused winbindd. The main thread of the gateway waits in epoll_wait,
    which is not such a call, unless a winbind call runs on the loop."""
    out = []
    for tid in _threads(pid):
        if tid == pid and not include_main:
            continue
        sc = _syscall(pid, tid)
        if not sc or sc[0] in ("running",):
            continue
        try:
            nr = int(sc[0])
        except ValueError:
            continue
        if nr in _SOCKET_WAIT_SYSCALLS.get(os.uname().machine, ()):
            out.append(tid)
    return out
