"""curl, TLS material, closed ports, waiting for a condition and small
assertion helpers."""

import pathlib
import re
import socket
import subprocess
import tempfile
import time

from .gateway import sanitizer_env
from .rawhttp import parse_head_bytes


class CurlResult:
    def __init__(self, rc, body, stderr, status, headers_raw, time_total):
        self.rc = rc
        self.body = body
        self.stderr = stderr
        self.status = status
        self.headers_raw = headers_raw
        self.time_total = time_total

    @property
    def responses(self):
        """Every response head curl saw (proxy CONNECT reply, 1xx, final)."""
        out = []
        for block in re.split(rb"\r\n\r\n", self.headers_raw):
            if block.startswith(b"HTTP/"):
                out.append(parse_head_bytes(block + b"\r\n\r\n"))
        return out

    @property
    def final(self):
        return self.responses[-1]

    def __repr__(self):
        return "<curl rc=%d status=%s stderr=%r body=%r>" % (
            self.rc, self.status, self.stderr[-500:], self.body[:200])


def curl(proxy, *args, timeout=15):
    """curl -sS -x proxy ARGS; returns a CurlResult (never raises on HTTP errors).
    With several URLs, body is their bodies concatenated and status the last."""
    with tempfile.TemporaryDirectory() as d:
        args = [str(a) for a in args]
        n_urls = max(1, sum(1 for a in args if re.match(r"^https?://", a)))
        bodies = [pathlib.Path(d) / ("body%d" % i) for i in range(n_urls)]
        head_f = pathlib.Path(d) / "head"
        cmd = ["curl", "-sS", "--noproxy", "", "--max-time", str(timeout - 2),
               "-D", str(head_f), "-w", "%{http_code} %{time_total}\\n"]
        for b in bodies:
            cmd += ["-o", str(b)]
        if proxy:
            cmd += ["-x", proxy]
        cmd += args
        p = subprocess.run(cmd, capture_output=True, timeout=timeout, env=sanitizer_env(),
                           stdin=subprocess.DEVNULL)
        lines = p.stdout.decode().strip().splitlines()
        out = lines[-1].split() if lines else []
        status = int(out[0]) if out and out[0].isdigit() else None
        t = float(out[1]) if len(out) > 1 else None
        body = b"".join(b.read_bytes() for b in bodies if b.exists())
        head = head_f.read_bytes() if head_f.exists() else b""
        return CurlResult(p.returncode, body, p.stderr.decode(errors="replace"), status,
                          head, t)


def make_self_signed(directory):
    """A self-signed EC certificate for localhost/127.0.0.1/::1 -> (cert, key)."""
    d = pathlib.Path(directory)
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"],
        check=True, capture_output=True, timeout=30)
    return str(cert), str(key)


class ClosedPort:
    """A port nobody listens on: bound, never listen()ed, so connects are
    refused and no other process can take the port meanwhile."""

    def __init__(self, host="127.0.0.1"):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]
        self.host = host

    def url(self, path="/"):
        return "http://%s:%d%s" % (self.host, self.port, path)

    def close(self):
        self.sock.close()


def assert_error_response(resp, status, max_body=8192):
    """A gateway-generated error: the exact status, a small body framed by a
    correct Content-Length."""
    assert resp.status == status, "expected %d, got %r\n%r" % (status, resp, resp.raw[:500])
    cl = resp.header("content-length")
    assert cl is not None, "error %d without Content-Length: %r" % (status, resp.raw[:500])
    assert int(cl) == len(resp.body), "Content-Length %s but %d body bytes" % (cl, len(resp.body))
    assert len(resp.body) <= max_body, "error body of %d bytes" % len(resp.body)
    assert resp.header("transfer-encoding") is None, "error response with Transfer-Encoding"


def via_values(headers_all):
    """All Via entries, in order, from a list of Via field values."""
    out = []
    for v in headers_all:
        out += [e.strip() for e in v.split(",") if e.strip()]
    return out


def wait_until(pred, timeout=5.0, what="condition", interval=0.01):
    """Polls pred() until it returns something true, and returns that; fails
    the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)
