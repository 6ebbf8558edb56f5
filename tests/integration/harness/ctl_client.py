"""The gateway's status socket, spoken directly or through authgatectl.

  short_tmpdir              a directory under /tmp whose socket paths fit sun_path
  sockdir                   fixture: such a directory, removed at teardown
  raw_exchange              send bytes, read the reply to EOF (the wire protocol)
  query, stats, status      one command as {key: value} records; the counters of
                            `stats` as {name: int}; `status` as one dict
  ctl_bin, ctl, ctl_json    run authgatectl: (rc, stdout, stderr), or its --json
                            output parsed
"""

import json
import pathlib
import shutil
import socket
import subprocess
import tempfile

import pytest

from .gateway import authgate_bin, sanitizer_env, sanitizer_reports


def short_tmpdir():
    """A fresh directory under /tmp: sun_path holds 108 bytes, and pytest's
    tmp_path can be longer."""
    return pathlib.Path(tempfile.mkdtemp(prefix="agctl-", dir="/tmp"))


@pytest.fixture
def sockdir():
    d = short_tmpdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def raw_exchange(sock, data, timeout=5.0):
    """Sends data on a fresh connection to the socket at path sock and returns
    everything read until the gateway closes it."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(str(sock))
    try:
        s.sendall(data)
    except OSError:
        pass
    out = b""
    while True:
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            break
        if not b:
            break
        out += b
    s.close()
    return out


def query(gw, command, timeout=5.0):
    """One status-socket exchange (gw has a status_socket): returns the reply
    records as a list of {key: value} dicts; fails unless it ends in .ok."""
    data = raw_exchange(gw.options["status_socket"], command.encode() + b"\n", timeout)
    lines = data.decode("latin-1").splitlines()
    assert lines and lines[-1] == ".ok", "ctl %r: %r" % (command, lines[-3:])
    return [dict(kv.split("=", 1) for kv in l.split() if "=" in kv) for l in lines[:-1]]


def stats(gw):
    """The counters of `stats` as {name: int} (histogram lines left out)."""
    out = {}
    for rec in query(gw, "stats"):
        if "histogram" in rec:
            continue
        for k, v in rec.items():
            out[k] = int(v) if v.lstrip("-").isdigit() else v
    return out


def status(gw):
    out = {}
    for rec in query(gw, "status"):
        out.update(rec)
    return out


def ctl_bin():
    return authgate_bin().parent / "authgatectl"


def ctl(sock, *args, json_out=False, timeout=20):
    """Runs authgatectl; returns (rc, stdout, stderr)."""
    cmd = [str(ctl_bin()), "-s", str(sock)] + (["--json"] if json_out else []) + list(args)
    p = subprocess.run(cmd, capture_output=True, timeout=timeout, env=sanitizer_env(),
                       stdin=subprocess.DEVNULL)
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    assert not sanitizer_reports(err), err
    return p.returncode, out, err


def ctl_json(sock, *args):
    rc, out, err = ctl(sock, *args, json_out=True)
    assert rc == 0, (rc, out, err)
    return json.loads(out)
