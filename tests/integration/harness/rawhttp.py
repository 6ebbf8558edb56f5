"""Raw-socket HTTP/1.1 client for malformed input and exact framing checks.

RawClient sends arbitrary bytes, reads one full response (1xx interim
responses collected on the way, body framed by method/status/Content-Length/
chunked/close), and tells whether the server closed the connection.
"""

import socket
import time


class Timeout(AssertionError):
    pass


class Closed(AssertionError):
    """The peer closed before a complete response arrived."""


class HeaderLookup:
    """Case-insensitive lookup in self.headers, a [(name, value)] list."""

    def header(self, name, default=None):
        name = name.lower()
        for n, v in self.headers:
            if n.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for n, v in self.headers if n.lower() == name]


class Response(HeaderLookup):
    def __init__(self):
        self.version = None
        self.status = None
        self.reason = None
        self.headers = []  # [(name, value)] as received
        self.body = b""
        self.raw = b""  # the bytes of this response (head + body as framed)
        self.interim = []  # 1xx responses that preceded this one
        self.chunked = False
        self.trailers = []
        self.close_delimited = False

    def has(self, name):
        return self.header(name) is not None

    def tokens(self, name):
        out = []
        for v in self.header_all(name):
            out += [t.strip().lower() for t in v.split(",") if t.strip()]
        return out

    def __repr__(self):
        return "<Response %s %s %r body=%dB>" % (self.status, self.reason, self.headers,
                                                len(self.body))


def build_request(method, target, headers=(), body=b"", version="HTTP/1.1"):
    """Request bytes. headers: [(name, value)] or "Name: value" strings, sent as is."""
    out = "%s %s %s\r\n" % (method, target, version)
    for h in headers:
        if isinstance(h, tuple):
            out += "%s: %s\r\n" % h
        else:
            out += h + "\r\n"
    data = (out + "\r\n").encode("latin-1")
    if isinstance(body, str):
        body = body.encode("latin-1")
    return data + body


def authority_of(url):
    rest = url.split("://", 1)[1]
    return rest.split("/", 1)[0]


def get_request(url, headers=(), method="GET", body=b"", version="HTTP/1.1", host=True):
    """An absolute-form request for url with Host set to the URL's authority."""
    hdrs = []
    if host:
        hdrs.append(("Host", authority_of(url)))
    hdrs += list(headers)
    if body and not any((h[0] if isinstance(h, tuple) else h.split(":")[0]).lower()
                        in ("content-length", "transfer-encoding") for h in hdrs):
        hdrs.append(("Content-Length", str(len(body))))
    return build_request(method, url, hdrs, body, version)


class RawClient:
    def __init__(self, host, port, timeout=5.0, source=None):
        """source: the local address to connect from (any of 127.0.0.0/8
        works on loopback), so one test can play several client addresses."""
        self.host = host
        self.port = port
        self.timeout = timeout
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.buf = b""
        self.eof = False
        self.reset = False

    # -- plumbing ------------------------------------------------------------

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data, tolerant=False):
        """sendall; with tolerant=True a reset/broken pipe is swallowed (the
        server may answer and close before reading everything we send)."""
        if isinstance(data, str):
            data = data.encode("latin-1")
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            if not tolerant:
                raise
            self.reset = True

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def _fill(self, deadline):
        """Reads more bytes into buf; returns False at EOF."""
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Timeout("timed out waiting for data; have %r" % self.buf[:300])
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise Timeout("timed out waiting for data; have %r" % self.buf[:300])
        except ConnectionResetError:
            self.eof = True
            self.reset = True
            return False
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_until(self, delim, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out, self.buf = self.buf[: i + len(delim)], self.buf[i + len(delim):]
                return out
            if not self._fill(deadline):
                raise Closed("closed before %r; have %r" % (delim, self.buf[:300]))

    def read_exact(self, n, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise Closed("closed after %d of %d bytes" % (len(self.buf), n))
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_to_eof(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while self._fill(deadline):
            pass
        out, self.buf = self.buf, b""
        return out

    def read_available(self, wait=0.2):
        """Whatever arrives within `wait` seconds (may be b"")."""
        deadline = time.monotonic() + wait
        try:
            while self._fill(deadline):
                pass
        except Timeout:
            pass
        out, self.buf = self.buf, b""
        return out

    # -- HTTP ----------------------------------------------------------------

    def read_head(self, timeout=None):
        deadline_t = timeout or self.timeout
        raw = self.read_until(b"\r\n\r\n", deadline_t)
        text = raw.decode("latin-1")
        lines = text[:-4].split("\r\n")
        status_line = lines[0].split(" ", 2)
        r = Response()
        r.raw = raw
        r.version = status_line[0]
        if not r.version.startswith("HTTP/") or len(status_line) < 2:
            raise AssertionError("bad status line %r" % lines[0])
        r.status = int(status_line[1])
        r.reason = status_line[2] if len(status_line) > 2 else ""
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise AssertionError("bad response header line %r" % line)
            r.headers.append((name, value.strip(" \t")))
        return r

    def recv_response(self, method="GET", timeout=None, stop_at_interim=False):
        """One complete response to a request of `method`."""
        timeout = timeout or self.timeout
        interim = []
        while True:
            r = self.read_head(timeout)
            if 100 <= r.status < 200 and r.status != 101:
                if stop_at_interim:
                    return r
                interim.append(r)
                continue
            break
        r.interim = interim
        if (method == "HEAD" or r.status in (204, 304) or 100 <= r.status < 200
                or (method == "CONNECT" and 200 <= r.status < 300)):
            return r
        te = ",".join(r.header_all("transfer-encoding")).lower()
        if te:
            r.chunked = True
            parts = []
            while True:
                line = self.read_until(b"\r\n", timeout)
                r.raw += line
                size = int(line[:-2].split(b";")[0].strip(), 16)
                if size == 0:
                    break
                data = self.read_exact(size + 2, timeout)
                r.raw += data
                assert data.endswith(b"\r\n"), "chunk not followed by CRLF"
                parts.append(data[:-2])
            while True:
                line = self.read_until(b"\r\n", timeout)
                r.raw += line
                if line == b"\r\n":
                    break
                name, _, value = line[:-2].decode("latin-1").partition(":")
                r.trailers.append((name, value.strip()))
            r.body = b"".join(parts)
        elif r.header("content-length") is not None:
            n = int(r.header("content-length"))
            r.body = self.read_exact(n, timeout)
            r.raw += r.body
        else:
            r.close_delimited = True
            r.body = self.read_to_eof(timeout)
            r.raw += r.body
        return r

    def request(self, data, method=None, timeout=None):
        """Sends request bytes and returns the response."""
        if isinstance(data, str):
            data = data.encode("latin-1")
        if method is None:
            method = data.split(b" ", 1)[0].decode("latin-1")
        self.send(data)
        return self.recv_response(method, timeout)

    def is_closed(self, timeout=2.0):
        """True when the peer closes (EOF or reset) within `timeout` with no
        further bytes; False when the connection is still open after it. Bytes
        that arrive meanwhile stay in buf (and make it False)."""
        deadline = time.monotonic() + timeout
        if self.buf:
            return False
        try:
            while True:
                if not self._fill(deadline):
                    return not self.buf
                if self.buf:
                    return False
        except Timeout:
            return False


def parse_head_bytes(data):
    """Parses one response head (status line + fields) from bytes."""

    class _Fake(RawClient):
        def __init__(self, d):
            self.buf = d
            self.eof = True
            self.reset = False
            self.timeout = 1.0

        def _fill(self, deadline):
            return False

    return _Fake(data).read_head()

