"""A real HTTP/1.1 origin server for the gateway's end-to-end tests.

Raw sockets, one thread per connection, so that tests see exactly what the
gateway put on the wire: the request line, every header field in order, the
body, and which upstream TCP connection (peer port) carried it. It listens on
127.0.0.1 and ::1 (the same port when the kernel allows it, so that a URL with
"localhost" reaches it whatever the gateway resolves).

Endpoints (any method; HEAD gets the GET headers without a body):
  /echo...              200, JSON describing the request as received
  /size/N               N bytes, Content-Length
  /chunked/N            N bytes, Transfer-Encoding: chunked (trailer X-Trailer-Check)
  /close-delimited/N    N bytes, no length, Connection: close, then close
  /status/NNN           that status; 204 and 304 have no body (304 carries a
                        Content-Length of the would-be representation)
  /head                 GET: 5000 bytes; HEAD: Content-Length 5000, no body
  /head-chunked         GET: chunked body; HEAD: Transfer-Encoding: chunked, no body
  /slow/MS              waits MS milliseconds, then 200
  /reset/N              200 announcing 2N bytes, sends N, then resets the
                        connection (SO_LINGER 0): an origin dying mid-response
  /expect               echo; an Expect: 100-continue gets "100 Continue" first
                        (every endpoint does that, /expect just makes it explicit)
  /stream               1 MiB of pseudo-random bytes (STREAM_BODY, STREAM_SHA256)
  /info/CODE            an interim 1xx response CODE, then 200
  /hop                  200 carrying hop-by-hop response fields
  /close                200 with Connection: close, then close
  /auth401/SCHEME       401 with WWW-Authenticate: SCHEME (origin-side NTLM/Negotiate)
  /proxy407             407 with Proxy-Authenticate: NTLM (an origin fishing for proxy creds)
  anything else         200 "hello from origin\\n"

ScriptedOrigin is the broken one: one connection, one canned reply (or none).
"""

import hashlib
import json
import random
import socket
import ssl
import struct
import threading
import time

from .rawhttp import HeaderLookup

STREAM_SIZE = 1 << 20
STREAM_BODY = random.Random(20240601).randbytes(STREAM_SIZE)
STREAM_SHA256 = hashlib.sha256(STREAM_BODY).hexdigest()
HELLO = b"hello from origin\n"
HEAD_SIZE = 5000

REASONS = {
    100: "Continue", 102: "Processing", 103: "Early Hints", 200: "OK", 201: "Created",
    204: "No Content", 206: "Partial Content", 301: "Moved Permanently", 302: "Found",
    304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 407: "Proxy Authentication Required", 500: "Internal Server Error",
    503: "Service Unavailable",
}


def pattern(n):
    """Deterministic bytes for /size/N and friends."""
    block = bytes(range(256))
    return (block * (n // 256 + 1))[:n]


class BadRequest(Exception):
    pass


class Request(HeaderLookup):
    """One request as the origin received it."""

    def __init__(self):
        self.method = None
        self.target = None
        self.version = None
        self.headers = []  # [(name, value)] in order, str (latin-1), names as sent
        self.trailers = []
        self.body = b""
        self.chunked = False
        self.raw_head = b""
        self.conn_id = None  # serial number of the upstream TCP connection
        self.peer = None  # (host, port) of the gateway's side of that connection
        self.tls = False
        self.complete = False
        self.sent_100 = False
        self.time = time.monotonic()

    def header_names(self):
        return [n.lower() for n, _ in self.headers]

    def to_json(self):
        return {
            "method": self.method,
            "target": self.target,
            "version": self.version,
            "headers": [[n, v] for n, v in self.headers],
            "trailers": [[n, v] for n, v in self.trailers],
            "body_len": len(self.body),
            "body_sha256": hashlib.sha256(self.body).hexdigest(),
            "body": self.body.decode("latin-1") if len(self.body) <= 65536 else None,
            "chunked": self.chunked,
            "conn_id": self.conn_id,
            "peer_port": self.peer[1] if self.peer else None,
            "sent_100": self.sent_100,
        }

    def __repr__(self):
        return "<Request %s %s conn=%s complete=%s>" % (
            self.method, self.target, self.conn_id, self.complete)


class Connection:
    def __init__(self, conn_id, sock, peer, family):
        self.id = conn_id
        self.sock = sock
        self.peer = peer
        self.family = family
        self.opened = time.monotonic()
        self.closed = None
        self.requests = 0


class _Reader:
    """Buffered reads from a socket with a per-server head/body ceiling."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def read_until(self, delim, limit):
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out, self.buf = self.buf[: i + len(delim)], self.buf[i + len(delim):]
                return out
            if len(self.buf) > limit:
                raise BadRequest("line or head too long")
            self._fill()

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def _parse_head(raw):
    text = raw.decode("latin-1")
    lines = text[:-4].split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise BadRequest("bad request line %r" % lines[0])
    headers = []
    for line in lines[1:]:
        if ":" not in line or line[0] in " \t":
            raise BadRequest("bad header line %r" % line)
        name, value = line.split(":", 1)
        headers.append((name, value.strip(" \t")))
    return parts, headers


def recv_head(sock, buf, raw=None):
    """Reads from sock until buf (bytes already read) holds a whole head:
    (head, the bytes after it), or None at the peer's end. raw, a
    bytearray, gets every byte read."""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(1 << 20)
        if not d:
            return None
        if raw is not None:
            raw += d
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def _end_accept(lsock, accepting_over, name):
    """Closes a listening socket once the thread accepting on it is gone.

    Closing alone left that thread blocked in accept() on the listener, and
    the kernel restarts such a call after a signal with the descriptor's
    number looked up again: by then the number named another socket (a later
    test's origin), so the stale thread accepted the gateway's upstream
    connection there (an echo server sent the request back: a stray 502
    "invalid upstream response"), and its close took that listener with it
    (connection refused). shutdown() ends a blocked accept() (EINVAL) and
    every later one; accepting_over (set by the thread once it calls accept()
    no more) is waited for before the number is freed."""
    try:
        lsock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    assert accepting_over.wait(10), "%s still accepting after shutdown" % name
    lsock.close()


class OriginServer:
    """Threaded HTTP/1.1 origin. start() binds; stop() closes every socket."""

    def __init__(self, ssl_context=None, hosts=("127.0.0.1", "::1"), name="origin"):
        self.ssl_context = ssl_context
        self.hosts = hosts
        self.name = name
        self.port = None
        self.ports = {}
        self._listeners = []
        self._lock = threading.Lock()
        self._requests = []
        self._connections = []
        self._next_conn = 1
        self._stop = threading.Event()
        self._threads = []
        self.errors = []  # parse errors / exceptions seen by the origin
        self._conn_user = {}  # /ntlmconn: connection id -> the user it authenticated

    # -- lifecycle ---------------------------------------------------------

    def start(self):
        for attempt in range(20):
            socks = []
            try:
                port = 0
                for host in self.hosts:
                    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
                    s = socket.socket(fam, socket.SOCK_STREAM)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    if fam == socket.AF_INET6:
                        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    socks.append(s)
                    s.bind((host, port))
                    port = s.getsockname()[1]
                    s.listen(128)
                break
            except OSError:
                for s in socks:
                    s.close()
                if attempt == 19:
                    raise
        self._listeners = socks
        self._accepting_over = [threading.Event() for _ in socks]
        self.port = port
        self.ports = {h: port for h in self.hosts}
        for s, over in zip(socks, self._accepting_over):
            t = threading.Thread(target=self._accept_loop, args=(s, over), daemon=True,
                                 name="%s-accept" % self.name)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        for s, over in zip(self._listeners, self._accepting_over):
            _end_accept(s, over, self.name)
        with self._lock:
            conns = list(self._connections)
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                c.sock.close()
            except OSError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- queries for tests ---------------------------------------------------

    def url(self, path="/", host="127.0.0.1"):
        h = "[%s]" % host if ":" in host else host
        scheme = "https" if self.ssl_context else "http"
        return "%s://%s:%d%s" % (scheme, h, self.port, path)

    def authority(self, host="127.0.0.1"):
        h = "[%s]" % host if ":" in host else host
        return "%s:%d" % (h, self.port)

    @property
    def requests(self):
        """Complete requests, in arrival order."""
        with self._lock:
            return [r for r in self._requests if r.complete]

    @property
    def all_requests(self):
        """Every request whose head arrived, complete or not."""
        with self._lock:
            return list(self._requests)

    @property
    def connections(self):
        with self._lock:
            return list(self._connections)

    def clear(self):
        with self._lock:
            self._requests.clear()
            self._connections.clear()

    def wait_requests(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.requests) >= n:
                return self.requests
            time.sleep(0.01)
        raise AssertionError("origin got %d complete requests, wanted %d: %r"
                             % (len(self.requests), n, self.all_requests))

    def wait_heads(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.all_requests) >= n:
                return self.all_requests
            time.sleep(0.01)
        raise AssertionError("origin got %d request heads, wanted %d"
                             % (len(self.all_requests), n))

    # -- serving -----------------------------------------------------------

    def _accept_loop(self, lsock, accepting_over):
        try:
            self._accept_until_stopped(lsock)
        finally:
            accepting_over.set()

    def _accept_until_stopped(self, lsock):
        while not self._stop.is_set():
            try:
                sock, peer = lsock.accept()
            except OSError:
                return
            with self._lock:
                conn = Connection(self._next_conn, sock, peer[:2], lsock.family)
                self._next_conn += 1
                self._connections.append(conn)
            t = threading.Thread(target=self._serve_conn, args=(conn,), daemon=True,
                                 name="%s-conn%d" % (self.name, conn.id))
            t.start()

    def _serve_conn(self, conn):
        sock = conn.sock
        try:
            sock.settimeout(30)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_side=True)
                conn.sock = sock
            reader = _Reader(sock)
            while not self._stop.is_set():
                try:
                    raw = reader.read_until(b"\r\n\r\n", 1 << 20)
                except EOFError:
                    return
                req = Request()
                req.raw_head = raw
                req.conn_id = conn.id
                req.peer = conn.peer
                req.tls = self.ssl_context is not None
                (req.method, req.target, req.version), req.headers = _parse_head(raw)
                with self._lock:
                    self._requests.append(req)
                conn.requests += 1
                req.conn_seq = conn.requests
                self._read_body(sock, reader, req)
                req.complete = True
                if not self._respond(sock, req):
                    return
        except (EOFError, ConnectionError, socket.timeout, ssl.SSLError, OSError):
            return
        except BadRequest as e:
            self.errors.append(str(e))
            try:
                sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
            except OSError:
                pass
        except Exception as e:  # a harness bug: make it visible
            self.errors.append(repr(e))
            raise
        finally:
            conn.closed = time.monotonic()
            try:
                sock.close()
            except OSError:
                pass

    def _read_body(self, sock, reader, req):
        te = ",".join(req.header_all("transfer-encoding")).lower()
        cls = req.header_all("content-length")
        has_body = bool(te) or (cls and cls[0].strip() not in ("", "0"))
        if has_body and "100-continue" in (req.header("expect") or "").lower():
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            req.sent_100 = True
        if te:
            if not te.replace(" ", "").endswith("chunked"):
                raise BadRequest("unsupported transfer-encoding %r" % te)
            req.chunked = True
            body = []
            while True:
                line = reader.read_until(b"\r\n", 1024)
                size_txt = line[:-2].split(b";")[0].strip()
                try:
                    size = int(size_txt, 16)
                except ValueError:
                    raise BadRequest("bad chunk size %r" % size_txt)
                if size < 0 or size > (1 << 30):
                    raise BadRequest("chunk size out of range")
                if size == 0:
                    break
                body.append(reader.read_exact(size))
                if reader.read_exact(2) != b"\r\n":
                    raise BadRequest("chunk not followed by CRLF")
            while True:
                line = reader.read_until(b"\r\n", 8192)
                if line == b"\r\n":
                    break
                name, _, value = line[:-2].decode("latin-1").partition(":")
                req.trailers.append((name, value.strip()))
            req.body = b"".join(body)
        elif cls:
            try:
                n = int(cls[0])
            except ValueError:
                raise BadRequest("bad content-length %r" % cls[0])
            req.body = reader.read_exact(n)

    # -- responses -----------------------------------------------------------

    def _keep_alive(self, req):
        tokens = ",".join(req.header_all("connection")).lower()
        if req.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens

    @staticmethod
    def _head(status, headers, reason=None):
        reason = reason or REASONS.get(status, "Whatever")
        out = "HTTP/1.1 %d %s\r\n" % (status, reason)
        for n, v in headers:
            out += "%s: %s\r\n" % (n, v)
        return (out + "\r\n").encode("latin-1")

    def _respond(self, sock, req):
        """Sends the response; returns whether the connection stays open."""
        path = req.target.split("?", 1)[0]
        if path.startswith("http://"):
            # Absolute form (RFC 9112 3.2.2): the origin stands in for a
            # parent proxy; its path selects the behaviour all the same.
            path = "/" + path[len("http://"):].partition("/")[2]
        head_only = req.method == "HEAD"
        keep = self._keep_alive(req)
        base = [("Server", "test-origin")]
        if not keep:
            base.append(("Connection", "close"))

        def send_full(status, body, ctype="text/plain", extra=(), reason=None):
            hdrs = base + [("Content-Type", ctype), ("Content-Length", str(len(body)))]
            hdrs += list(extra)
            sock.sendall(self._head(status, hdrs, reason) + (b"" if head_only else body))
            return keep

        parts = path.strip("/").split("/")
        head = parts[0] if parts else ""
        arg = parts[1] if len(parts) > 1 else ""

        if head == "echo" or head == "expect":
            body = json.dumps(req.to_json()).encode()
            return send_full(200, body, "application/json")
        if head == "size":
            return send_full(200, pattern(int(arg)), "application/octet-stream")
        if head == "stream":
            hdrs = base + [("Content-Type", "application/octet-stream"),
                           ("Content-Length", str(STREAM_SIZE))]
            sock.sendall(self._head(200, hdrs))
            if not head_only:
                view = memoryview(STREAM_BODY)
                for off in range(0, STREAM_SIZE, 16384):
                    sock.sendall(view[off:off + 16384])
            return keep
        if head == "chunked":
            n = int(arg)
            hdrs = base + [("Content-Type", "application/octet-stream"),
                           ("Transfer-Encoding", "chunked"), ("Trailer", "X-Trailer-Check")]
            out = [self._head(200, hdrs)]
            if not head_only:
                data = pattern(n)
                for off in range(0, n, 4000):
                    piece = data[off:off + 4000]
                    out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
                out.append(b"0\r\nX-Trailer-Check: done\r\n\r\n")
            sock.sendall(b"".join(out))
            return keep
        if head == "close-delimited":
            n = int(arg)
            hdrs = [("Server", "test-origin"), ("Content-Type", "application/octet-stream"),
                    ("Connection", "close")]
            sock.sendall(self._head(200, hdrs))
            if not head_only:
                data = pattern(n)
                for off in range(0, n, 8192):
                    sock.sendall(data[off:off + 8192])
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return False
        if head == "ntlmconn":
            # An origin doing connection-bound auth (NTLM to the origin,
            # MS-NTHT): "Authorization: NTLM type3-USER" authenticates the
            # CONNECTION as USER; later requests on it without Authorization
            # are answered as USER. Any other NTLM token gets the challenge.
            auth = req.header("authorization") or ""
            if auth.startswith("NTLM type3-"):
                self._conn_user[req.conn_id] = auth[len("NTLM type3-"):]
            elif auth.startswith("NTLM "):
                return send_full(401, b"challenge\n",
                                 extra=[("WWW-Authenticate", "NTLM challenge-token")])
            user = self._conn_user.get(req.conn_id)
            if user is None:
                return send_full(401, b"log in\n", extra=[("WWW-Authenticate", "NTLM")])
            return send_full(200, b"hello " + user.encode() + b"\n")
        if head == "drop-second":
            # A keep-alive origin that closes a connection when its second
            # request arrives, without answering (its keep-alive timeout
            # raced the request): the proxy's reuse must cope.
            if req.conn_seq >= 2:
                return False
            return send_full(200, HELLO)
        if head == "close-after":
            # Answers as keep-alive, then closes at once: the connection
            # dies idle, wherever the proxy keeps it.
            send_full(200, HELLO)
            return False
        if head == "auth401":
            return send_full(401, b"log in\n", extra=[("WWW-Authenticate", arg)])
        if head == "proxy407":
            return send_full(407, b"proxy creds please\n",
                             extra=[("Proxy-Authenticate", "NTLM")])
        if head == "status":
            code = int(arg)
            if code in (204, 304):
                extra = [("ETag", '"v1"')] if code == 304 else []
                if code == 304:
                    # the length of the representation a 200 would have had
                    extra.append(("Content-Length", "42"))
                sock.sendall(self._head(code, base + extra))
                return keep
            return send_full(code, b"status %d\n" % code)
        if head == "head":
            return send_full(200, b"h" * HEAD_SIZE)
        if head == "head-chunked":
            hdrs = base + [("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked")]
            sock.sendall(self._head(200, hdrs) + (b"" if head_only else b"5\r\nhello\r\n0\r\n\r\n"))
            return keep
        if head == "slow":
            self._stop.wait(int(arg) / 1000.0)
            return send_full(200, b"slow done\n")
        if head == "reset":
            n = int(arg)
            hdrs = base + [("Content-Type", "application/octet-stream"),
                           ("Content-Length", str(2 * n))]
            sock.sendall(self._head(200, hdrs) + (b"" if head_only else pattern(n)))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False  # the caller's close() sends the RST
        if head == "info":
            code = int(arg)
            sock.sendall(self._head(code, [("X-Interim", "yes")]))
            time.sleep(0.05)
            return send_full(200, b"after interim\n")
        if head == "hop":
            extra = [("Connection", "X-Resp-Hop"), ("X-Resp-Hop", "secret"),
                     ("Keep-Alive", "timeout=5, max=100"), ("Proxy-Connection", "keep-alive"),
                     ("X-End-To-End", "kept")]
            return send_full(200, b"hop\n", extra=extra)
        if head == "close":
            body = b"closing\n"
            hdrs = [("Server", "test-origin"), ("Content-Type", "text/plain"),
                    ("Content-Length", str(len(body))), ("Connection", "close")]
            sock.sendall(self._head(200, hdrs) + (b"" if head_only else body))
            return False
        return send_full(200, HELLO)


class EchoServer:
    """A TCP echo server (for CONNECT tunnels): returns every byte it receives,
    and records the bytes and connections."""

    def __init__(self, host="127.0.0.1"):
        self.host = host
        self.port = None
        self.received = []  # per connection: bytearray
        self.accepted = 0
        self._lock = threading.Lock()
        self._sock = None
        self._conns = []

    def start(self):
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._sock = socket.socket(fam, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((self.host, 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._accepting_over = threading.Event()
        threading.Thread(target=self._accept, daemon=True, name="echo-accept").start()
        return self

    def _accept(self):
        try:
            self._accept_until_shut()
        finally:
            self._accepting_over.set()

    def _accept_until_shut(self):
        while True:
            try:
                s, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                buf = bytearray()
                self.received.append(buf)
                self._conns.append(s)
            threading.Thread(target=self._serve, args=(s, buf), daemon=True).start()

    def _serve(self, s, buf):
        try:
            s.settimeout(30)
            while True:
                data = s.recv(65536)
                if not data:
                    s.shutdown(socket.SHUT_WR)
                    return
                buf += data
                s.sendall(data)
        except OSError:
            pass
        finally:
            s.close()

    def stop(self):
        _end_accept(self._sock, self._accepting_over, "echo server")
        for s in self._conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


SLOW_RCVBUF = 4096  # a slow reader's receive buffer: the sender's writes back up at once


def stream_bytes(n, seed=16):
    """n pseudo-random bytes (no period a reordering or a repeat could hide in)."""
    return random.Random(seed).randbytes(n)


def read_slowly(sock, limit, deadline_s=60.0):
    """Reads sock to EOF (or limit bytes) in 4 KiB pieces with a pause every
    64 of them: the writer on the other side meets backpressure all along."""
    got = bytearray()
    sock.settimeout(deadline_s)
    reads = 0
    while len(got) < limit:
        b = sock.recv(4096)
        if not b:
            break
        got += b
        reads += 1
        if reads % 64 == 0:
            time.sleep(0.002)
    return bytes(got)


def stream_check(got, want):
    """'' when got == want, else where and how they differ (no 16 MiB repr)."""
    if got == want:
        return ""
    n = min(len(got), len(want))
    at = next((i for i in range(n) if got[i] != want[i]), n)
    return "%d bytes for %d, first difference at byte %d" % (len(got), len(want), at)


class StreamServer:
    """A tunnel target that sends `send` bytes of stream_bytes on each
    connection as fast as the socket takes them, then half-closes, while it
    reads what it receives slowly (SLOW_RCVBUF, read_slowly): `received` holds
    each connection's bytes once its peer half-closed."""

    def __init__(self, send=0, host="127.0.0.1"):
        self.host = host
        self.port = None
        self.data = stream_bytes(send)
        self.received = []
        self._lock = threading.Lock()
        self._sock = None

    def start(self):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
        self._sock.bind((self.host, 0))
        self._sock.listen(8)
        self.port = self._sock.getsockname()[1]
        self._accepting_over = threading.Event()
        threading.Thread(target=self._accept, daemon=True, name="stream-accept").start()
        return self

    def _accept(self):
        try:
            while True:
                try:
                    s, _ = self._sock.accept()
                except OSError:
                    return
                threading.Thread(target=self._send, args=(s,), daemon=True).start()
                threading.Thread(target=self._read, args=(s,), daemon=True).start()
        finally:
            self._accepting_over.set()

    def _send(self, s):
        try:
            s.sendall(self.data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _read(self, s):
        try:
            got = read_slowly(s, 1 << 31)
        except OSError:
            got = None
        with self._lock:
            self.received.append(got)

    def wait_received(self, n=1, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= n:
                    return list(self.received)
            time.sleep(0.01)
        raise AssertionError("stream server: %d connection(s) not ended in %.0f s" % (n, timeout))

    def stop(self):
        _end_accept(self._sock, self._accepting_over, "stream server")


def make_tls_context(certfile, keyfile):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certfile, keyfile)
    return ctx


class ScriptedOrigin:
    """A one-connection origin for broken upstream behaviour: it accepts one
    connection, reads the request, sends `reply` (bytes, may be empty), then
    closes, or with hold=True keeps the connection open until stop().
    before_reply, if given, is called between the request and the reply (a
    test stops the gateway there); `sent` is set once the reply is out."""

    def __init__(self, reply=b"", hold=False, host="127.0.0.1", before_reply=None):
        self.reply = reply
        self.hold = hold
        self.host = host
        self.before_reply = before_reply
        self.port = None
        self._sock = None
        self._done = threading.Event()
        self.sent = threading.Event()

    def url(self, path="/"):
        return "http://%s:%d%s" % (self.host, self.port, path)

    def start(self):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((self.host, 0))
        self._sock.listen(4)
        self.port = self._sock.getsockname()[1]
        self._accepting_over = threading.Event()
        threading.Thread(target=self._serve, daemon=True, name="scripted-origin").start()
        return self

    def _serve(self):
        try:
            s, _ = self._sock.accept()
        except OSError:
            return
        finally:
            self._accepting_over.set()  # one connection only
        try:
            s.recv(65536)
            if self.before_reply:
                self.before_reply()
            if self.reply:
                s.sendall(self.reply)
            self.sent.set()
            if self.hold:
                self._done.wait(30)
        except OSError:
            pass
        finally:
            s.close()

    def stop(self):
        self._done.set()
        _end_accept(self._sock, self._accepting_over, "scripted origin")
