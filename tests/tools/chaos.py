#!/usr/bin/python3
"""Chaos client: random but valid-looking traffic against a live authgate
(the ASan build, by preference), with invariants checked after every step.

    tests/tools/chaos.py [--minutes M | --seconds S] [--seed N] [--out DIR] [--uvguard]

AUTHGATE_BIN selects the binary (scripts/chaos-style runs use
build-asan/authgate). The stack is tests/tools/agstack.py: KDC, winbindd,
origin, echo server and one gateway with Negotiate, NTLM and Basic.

Every step picks one scenario with the seeded generator (the seed is printed
first: `--seed N` replays the same choices; timing still varies):
  * authenticated requests (Basic / NTLM / Negotiate) split at random byte
    boundaries, 1-3 of them pipelined, to /echo, /size/N, /slow/MS (a slow
    origin) or /reset/N (an origin that resets mid-response);
  * a client that closes or resets (SO_LINGER 0) mid-head, mid-body (a POST
    with Content-Length), during verification (right after the credentials),
    inside a CONNECT tunnel, or after the response;
  * NTLM handshakes (winbind or local backend: reloads switch ntlm_backend)
    and Negotiate handshakes abandoned at each leg: mid-Type-1, after Type 1,
    after the 407 carrying Type 2, during Type 3's verification; some
    abandoned connections then send a request without credentials, which
    must get a 407;
  * SIGHUP reloads (toggling ntlm_backend winbind/local) and `authgatectl
    kick id=N` of a connection the client holds.
Some connections are kept open for a few steps (lingering), so the daemon
always holds connections in several states.

Invariants after every step:
  I1 a fresh authenticated request (Basic) gets 200 with its identity;
  I2 a fresh connection without credentials gets 407 and the origin never
     sees any request sent without credentials (their paths carry "noauth");
  I3 no response to a connection that did not prove an identity carries one,
     and an identity is always the one proven on that connection;
  I4 once quiescent: `stats` connections equals the client connections held
     open, and `sessions` lists exactly those that got a response.
At the end: every connection closed, fds of the daemon back to the baseline
(/proc), SIGTERM gives exit status 0 (uv_loop_close succeeded, "event=stopped"
logged), and no sanitizer report on stderr or in the error log.

--uvguard (a build without sanitizers) preloads tests/tools/uvguard.c into the
daemon: a libuv handle initialised again while closing, a block freed while
it holds a live or closing handle, a double uv_close or a handle touched from
another loop's thread stops the daemon at that call, with a backtrace in
OUT/uvguard.log (libuv itself would only assert at the end of the loop turn).
"""

import argparse
import base64
import collections
import json
import os
import pathlib
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import agstack  # noqa: E402
from agstack import IDENTITY_HEADER, Stack  # noqa: E402
from harness.ntlm_client import (authenticate_msg, b64, basic, challenge_from,  # noqa: E402
                                 negotiate_msg)
from harness.rawhttp import RawClient, get_request  # noqa: E402

MAX_LINGER = 12  # connections held open across steps
QUIESCE_S = 10.0  # bound on the wait for the daemon to reflect our closes


class Finding(AssertionError):
    pass


class Conn:
    """A client connection: RawClient plus what the invariants need."""

    def __init__(self, ch):
        # each connection from its own loopback address: `sessions` shows
        # the peer address only, and this is how a row names its connection
        ch.addr_seq += 1
        n = ch.addr_seq
        self.addr = "127.%d.%d.%d" % (100 + (n // 62500) % 100, 1 + (n // 250) % 250,
                                      2 + n % 250)
        self.c = RawClient(ch.st.gw.host, ch.st.gw.port, timeout=15, source=self.addr)
        self.identity = None  # the identity proven on this connection
        self.responded = False  # the gateway answered a request: a sessions row
        self.closing = False  # the gateway will close it (Connection: close, error)


class Chaos:
    def __init__(self, st, seed, log=print):
        self.st = st
        self.seed = seed
        self.rng = random.Random(seed)
        self.log = log
        self.n = collections.Counter()
        self.lingering = []
        self.seq = 0
        self.addr_seq = 0
        self.origin_seen = 0
        self.ntlm_backend = "winbind"
        self.users = sorted(st.users)

    # -- wire helpers ------------------------------------------------------------

    def send_split(self, conn, data):
        """Sends data in 1-6 pieces cut at random byte boundaries."""
        k = self.rng.randint(1, min(6, max(1, len(data))))
        cuts = sorted(self.rng.sample(range(1, len(data)), k - 1)) if len(data) > k else []
        prev = 0
        for cut in cuts + [len(data)]:
            try:
                conn.c.sock.sendall(data[prev:cut])
            except (BrokenPipeError, ConnectionResetError):
                # the gateway answered and closed first (a 407 to a body
                # larger than drain_max): the response tells
                conn.closing = True
                self.n["send_refused"] += 1
                return
            prev = cut
            if self.rng.random() < 0.3:
                time.sleep(self.rng.random() * 0.003)
        self.n["bytes_sent"] += len(data)

    def end(self, conn, how=None):
        """Closes (FIN), resets (SO_LINGER 0) or keeps conn open for later."""
        how = how or self.rng.choice(["close", "reset", "linger"])
        if how == "linger" and not conn.closing and len(self.lingering) < MAX_LINGER:
            self.lingering.append(conn)
            self.n["lingering"] += 1
            return
        if how == "reset":
            try:
                conn.c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            except OSError:
                pass
            self.n["resets"] += 1
        else:
            self.n["closes"] += 1
        conn.c.close()

    def path(self, kind, auth):
        self.seq += 1
        return "/%s/%s-%d" % (kind, "auth" if auth else "noauth", self.seq)

    def response(self, conn, method="GET"):
        r = conn.c.recv_response(method)
        self.n["responses"] += 1
        conn.responded = True
        if "close" in r.tokens("connection") or r.status >= 500:
            conn.closing = True
        self.check_identity(conn, r)
        return r

    def check_identity(self, conn, r):
        """I3 on one response."""
        if r.status != 200 or not r.header("content-type", "").startswith("application/json"):
            return
        hdrs = json.loads(r.body)["headers"]
        ids = [v for n, v in hdrs if n.lower() == IDENTITY_HEADER.lower()]
        if conn.identity is None and ids:
            raise Finding("identity %r on a connection that proved none" % ids)
        if conn.identity is not None and ids != [conn.identity]:
            raise Finding("identity %r on a connection that proved %r" % (ids, conn.identity))

    # -- credentials ---------------------------------------------------------------

    def basic_header(self, user):
        return ("Proxy-Authorization", basic("AUTHGATE\\" + user, self.st.users[user]))

    def expect_identity(self, user):
        """The identity string Basic (winbind) reports."""
        return "AUTHGATE\\" + user

    # -- scenarios -------------------------------------------------------------------

    def sc_basic_pipelined(self):
        user = self.rng.choice(self.users)
        conn = Conn(self)
        reqs = []
        for _ in range(self.rng.randint(1, 3)):
            kind = self.rng.choice(["echo", "echo", "size", "slow", "reset"])
            if kind == "echo":
                target = self.path("echo", True)
            elif kind == "size":
                target = "/size/%d" % self.rng.choice([0, 1, 1000, 70000, 1 << 20])
            elif kind == "slow":
                target = "/slow/%d" % self.rng.choice([50, 200, 800])
            else:
                target = "/reset/%d" % self.rng.choice([1, 100, 50000])
            reqs.append((kind, target))
        data = b"".join(get_request(self.st.origin.url(t), [self.basic_header(user)])
                        for _, t in reqs)
        self.send_split(conn, data)
        self.n["requests"] += len(reqs)
        # every request carries the credentials: each response may carry
        # this identity and no other (I3, checked in response())
        conn.identity = self.expect_identity(user)
        for i, (kind, target) in enumerate(reqs):
            if self.rng.random() < 0.1:
                self.n["abandon_mid_response"] += 1
                return self.end(conn, self.rng.choice(["close", "reset"]))
            if kind == "reset":
                # the origin dies mid-body: the gateway cuts the client off
                # (it cannot finish a response it framed with a length)
                try:
                    r = conn.c.recv_response()
                    raise Finding("a complete response from a resetting origin: %r" % r)
                except Finding:
                    raise
                except Exception:  # noqa: BLE001 - truncated body / closed: expected
                    self.n["origin_resets"] += 1
                    return self.end(conn, "close")
            r = self.response(conn)
            if r.status != 200:
                raise Finding("Basic %s: %r" % (target, r))
        self.end(conn)

    def sc_partial_head(self):
        """A client that stops mid-head (any credentials or none)."""
        conn = Conn(self)
        req = get_request(self.st.origin.url(self.path("echo", False)),
                          [self.basic_header(self.rng.choice(self.users))])
        cut = self.rng.randint(1, len(req) - 1)
        self.send_split(conn, req[:cut])
        self.n["mid_head"] += 1
        self.end(conn, self.rng.choice(["close", "reset", "reset"]))
        # this request never completed: its path says noauth so I2 catches it

    def sc_mid_body(self):
        user = self.rng.choice(self.users)
        conn = Conn(self)
        body = os.urandom(self.rng.choice([10, 5000, 200000]))
        auth = self.rng.random() < 0.7
        hdrs = [self.basic_header(user)] if auth else []
        req = get_request(self.st.origin.url(self.path("echo", auth)), hdrs, method="POST",
                          body=body)
        head_len = len(req) - len(body)
        if self.rng.random() < 0.5:
            cut = self.rng.randint(head_len, len(req) - 1)
            self.send_split(conn, req[:cut])
            self.n["mid_body"] += 1
            return self.end(conn, self.rng.choice(["close", "reset"]))
        self.send_split(conn, req)
        self.n["requests"] += 1
        if auth:
            conn.identity = self.expect_identity(user)
        r = self.response(conn, "POST")
        if auth and r.status != 200 or not auth and r.status != 407:
            raise Finding("POST auth=%s: %r" % (auth, r))
        self.end(conn, "close" if conn.closing else None)

    def ask_without_credentials(self, conn, what, counter):
        """A request without credentials on conn: 407 (I2 checks that the
        origin never sees it: its path says noauth)."""
        self.send_split(conn, get_request(self.st.origin.url(self.path("echo", False))))
        r = self.response(conn)
        if r.status != 407:
            raise Finding("%s: %r" % (what, r))
        self.n[counter] += 1

    def sc_unauth_then(self):
        conn = Conn(self)
        self.ask_without_credentials(conn, "no credentials", "unauth_407")
        self.end(conn)

    def sc_ntlm(self):
        """NTLM, abandoned at a random leg."""
        user = self.rng.choice(self.users)
        conn = Conn(self)
        leg = self.rng.choice(["mid_t1", "after_t1", "after_t2", "verifying", "done", "done"])
        t1 = negotiate_msg()
        url = self.st.origin.url(self.path("echo", False))
        req1 = get_request(url, [("Proxy-Authorization", "NTLM " + b64(t1))])
        self.n["ntlm_" + leg] += 1
        if leg == "mid_t1":
            self.send_split(conn, req1[:self.rng.randint(1, len(req1) - 1)])
            return self.end(conn, self.rng.choice(["close", "reset"]))
        self.send_split(conn, req1)
        if leg == "after_t1":
            return self.end(conn, self.rng.choice(["close", "reset"]))
        r1 = self.response(conn)
        chal = challenge_from(r1)
        if leg == "after_t2":
            return self.after_abandon(conn)
        t3 = authenticate_msg(chal, user, self.st.users[user], "", negotiate=t1)
        url3 = self.st.origin.url(self.path("echo", True))
        self.send_split(conn, get_request(url3, [("Proxy-Authorization", "NTLM " + b64(t3))]))
        if leg == "verifying":
            return self.end(conn, self.rng.choice(["close", "reset"]))
        conn.identity = ("AUTHGATE\\" if self.ntlm_backend == "winbind" else "") + user
        r = self.response(conn)
        if r.status != 200:
            raise Finding("NTLM %s (%s backend): %r" % (user, self.ntlm_backend, r))
        self.n["requests"] += 1
        self.end(conn)

    def sc_negotiate(self):
        conn = Conn(self)
        leg = self.rng.choice(["mid_token", "verifying", "done", "done"])
        tok = base64.b64encode(agstack.negotiate_token()).decode()
        url = self.st.origin.url(self.path("echo", leg != "mid_token"))
        req = get_request(url, [("Proxy-Authorization", "Negotiate " + tok)])
        self.n["negotiate_" + leg] += 1
        if leg == "mid_token":
            head_end = req.index(b"Negotiate ") + 10
            self.send_split(conn, req[:self.rng.randint(head_end, len(req) - 3)])
            return self.end(conn, self.rng.choice(["close", "reset"]))
        self.send_split(conn, req)
        if leg == "verifying":
            return self.end(conn, self.rng.choice(["close", "reset"]))
        conn.identity = "alice@AUTHGATE.TEST"
        r = self.response(conn)
        if r.status != 200:
            raise Finding("Negotiate: %r" % r)
        self.n["requests"] += 1
        self.end(conn)

    def after_abandon(self, conn):
        """A connection left mid-handshake: closed, reset, held, or it asks
        without credentials (must be 407: a handshake is no identity)."""
        if self.rng.random() < 0.4:
            self.ask_without_credentials(conn, "request after an abandoned handshake",
                                         "abandoned_then_407")
        self.end(conn)

    def sc_connect(self):
        user = self.rng.choice(self.users)
        conn = Conn(self)
        auth = "127.0.0.1:%d" % self.st.echo.port
        creds = self.rng.random() < 0.85
        head = "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (
            auth, auth, "Proxy-Authorization: %s\r\n" % self.basic_header(user)[1] if creds else "")
        self.send_split(conn, head.encode())
        r = self.response(conn, "CONNECT")
        if r.status != (200 if creds else 407):
            raise Finding("CONNECT creds=%s: %r" % (creds, r))
        if not creds:
            self.n["unauth_407"] += 1
            return self.end(conn)
        self.n["tunnels"] += 1
        for _ in range(self.rng.randint(0, 3)):
            data = os.urandom(self.rng.choice([1, 100, 20000]))
            self.send_split(conn, data)
            if self.rng.random() < 0.2:
                self.n["tunnel_abandoned"] += 1
                return self.end(conn, self.rng.choice(["close", "reset"]))
            if conn.c.read_exact(len(data)) != data:
                raise Finding("tunnel echoed other bytes")
        self.end(conn)

    def sc_reload(self):
        self.ntlm_backend = self.rng.choice(["winbind", "local"])
        self.st.gw.reload({"ntlm_backend": self.ntlm_backend})
        self.n["reloads"] += 1

    def sc_kick(self):
        if not self.lingering:
            return
        victim = self.rng.choice(self.lingering)
        rows = self.st.sessions()
        row = [r for r in rows if r["peer"] == victim.addr]
        if not row:
            return  # not yet a session row (no request sent)
        rc, out, err = self.st.ctl("kick", "id=%s" % row[0]["id"])
        if rc != 0:
            raise Finding("kick id=%s: rc %d %s %s" % (row[0]["id"], rc, out, err))
        self.lingering.remove(victim)
        if not victim.c.is_closed(5.0):
            raise Finding("a kicked connection stayed open")
        victim.c.close()
        self.n["kicks"] += 1

    def sc_release(self):
        """Ends some lingering connections (each reset or closed), at random."""
        for conn in list(self.lingering):
            if self.rng.random() < 0.5:
                self.lingering.remove(conn)
                self.end(conn, self.rng.choice(["close", "reset"]))

    SCENARIOS = [
        ("sc_basic_pipelined", 20), ("sc_partial_head", 8), ("sc_mid_body", 8),
        ("sc_unauth_then", 4), ("sc_ntlm", 20), ("sc_negotiate", 10), ("sc_connect", 10),
        ("sc_reload", 2), ("sc_kick", 4), ("sc_release", 10),
    ]

    # -- invariants ------------------------------------------------------------------

    def check(self):
        # I1
        c = Conn(self)
        c.c.sock.sendall(get_request(self.st.origin.url(self.path("echo", True)),
                                     [self.basic_header("alice")]))
        r = c.c.recv_response()
        c.c.close()
        ids = [v for n, v in json.loads(r.body)["headers"]
               if n.lower() == IDENTITY_HEADER.lower()] if r.status == 200 else None
        if ids != [self.expect_identity("alice")]:
            raise Finding("I1: fresh authenticated request: %r identity %r" % (r, ids))
        # I2
        c = Conn(self)
        c.c.sock.sendall(get_request(self.st.origin.url(self.path("echo", False))))
        r = c.c.recv_response()
        c.c.close()
        if r.status != 407:
            raise Finding("I2: fresh request without credentials: %r" % r)
        reqs = self.st.origin.all_requests
        for q in reqs[self.origin_seen:]:
            if "noauth" in q.target:
                raise Finding("I2: the origin saw %s %s" % (q.method, q.target))
        self.origin_seen = len(reqs)
        # I4
        self.wait_quiescent()
        self.n["checks"] += 1

    def wait_quiescent(self):
        deadline = time.monotonic() + QUIESCE_S
        while True:
            # a lingering connection the gateway closed (head/idle timeout
            # would be far later; an error path may close it) is not held
            live = [c for c in self.lingering]
            s = self.st.stats()
            rows = self.st.sessions()
            want_rows = sorted(c.addr for c in live if c.responded)
            got_rows = sorted(r["peer"] for r in rows)
            if s.get("connections") == len(live) and got_rows == want_rows \
                    and s.get("handshakes", 0) <= len(live):
                return
            if time.monotonic() > deadline:
                raise Finding("I4: connections=%s sessions=%s, held %d (with a response: %s)"
                              % (s.get("connections"), got_rows, len(live), want_rows))
            time.sleep(0.05)

    # -- driver ----------------------------------------------------------------------

    def step(self):
        name = self.rng.choices([n for n, _ in self.SCENARIOS],
                                [w for _, w in self.SCENARIOS])[0]
        try:
            getattr(self, name)()
        except Finding:
            raise
        except Exception as e:  # noqa: BLE001
            raise Finding("step %d %s: %s: %s" % (self.n["steps"], name, type(e).__name__, e))
        self.n["steps"] += 1
        self.check()

    def finish(self):
        for conn in self.lingering:
            self.end(conn, self.rng.choice(["close", "reset"]))
        self.lingering = []
        self.wait_quiescent()


def wait_fds(st, baseline, timeout=20.0):
    """The daemon's fd count back to the baseline (upstream keep-alive
    connections expire after upstream_idle_timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        n = st.proc_sample()["fds"]
        if n <= baseline:
            return n
        if time.monotonic() > deadline:
            fds = sorted(os.readlink("/proc/%d/fd/%s" % (st.gw.proc.pid, f))
                         for f in os.listdir("/proc/%d/fd" % st.gw.proc.pid))
            raise Finding("fds %d > baseline %d: %s" % (n, baseline, fds))
        time.sleep(0.2)


def warm_up(st, ch):
    """One of each exchange so that lazily opened descriptors (the winbind
    workers' pipes, the keytab, the replay cache) exist before the baseline."""
    for _ in range(4):
        agstack.op_basic(st, "alice")
        agstack.op_ntlm(st, "bob")
        agstack.op_negotiate(st)
        agstack.op_connect(st, "carol")
    for backend in ("local", "winbind"):
        st.gw.reload({"ntlm_backend": backend})
        agstack.op_ntlm(st, "bob")
    ch.wait_quiescent()


def build_uvguard(workdir, binary):
    """tests/tools/uvguard.c built into workdir, for a daemon without
    sanitizers (ASan interposes free() itself)."""
    from peers.winbind import asan_runtime
    if asan_runtime(binary):
        raise ValueError("--uvguard needs a build without sanitizers (%s links ASan)" % binary)
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise ValueError("--uvguard needs a C compiler")
    out = pathlib.Path(workdir) / "uvguard.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-g", "-o", str(out),
                    str(pathlib.Path(__file__).resolve().parent / "uvguard.c"), "-ldl",
                    "-lpthread"], check=True, timeout=120)
    return out


def run(seconds, seed, workdir, binary=None, log=print, uvguard=False):
    """Runs the chaos for `seconds`; returns the counters. Raises Finding (or
    the harness's GatewayError at the stop) on a broken invariant. uvguard:
    preload tests/tools/uvguard.c (see --uvguard)."""
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    guard_log = workdir / "uvguard.log"
    preload = build_uvguard(workdir, binary or agstack.authgate_bin()) if uvguard else None
    if uvguard:
        os.environ["UVGUARD_LOG"] = str(guard_log)
    st = Stack(workdir, binary,
               gateway_options={"head_timeout": "60s", "idle_timeout": "60s",
                                "handshake_timeout": "60s", "tunnel_idle_timeout": "60s",
                                "upstream_idle_timeout": "2s"}, preload=preload)

    def guard_report():
        return ("\n--- uvguard ---\n" + guard_log.read_text()) if guard_log.exists() else ""

    with st:
        os.environ.update(st.kdc.client_env("alice"))
        ch = Chaos(st, seed, log)
        warm_up(st, ch)
        baseline = wait_fds(st, 10 ** 6)
        baseline = st.proc_sample()["fds"]
        log("chaos: seed=%d seconds=%g baseline fds=%d pid=%d" % (seed, seconds, baseline,
                                                                  st.gw.proc.pid))
        t0 = time.monotonic()
        next_report = t0 + 60
        try:
            while time.monotonic() - t0 < seconds:
                ch.step()
                if time.monotonic() >= next_report:
                    log("chaos: %.0fs %s" % (time.monotonic() - t0, dict(ch.n)))
                    next_report += 60
        except Finding as e:
            raise Finding("seed=%d step=%d: %s\n%s%s" % (seed, ch.n["steps"], e,
                                                         st.gw.logs_tail(4000),
                                                         guard_report())) from None
        ch.finish()
        ch.n["fds_end"] = wait_fds(st, baseline)
        ch.n["fds_baseline"] = baseline
    # Stack.__exit__ -> Gateway.stop(): SIGTERM, exit status 0, no sanitizer report
    if guard_log.exists():
        raise Finding("uvguard:%s" % guard_report())
    if "event=stopped" not in st.gw.error_log:
        raise Finding("no event=stopped (uv_loop_close) in the error log")
    ch.n["exit_status"] = st.gw.returncode
    ch.n["seconds"] = int(time.monotonic() - t0)
    return ch.n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=None)
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--uvguard", action="store_true",
                    help="preload tests/tools/uvguard.c (a build without sanitizers)")
    a = ap.parse_args(argv)
    seconds = a.seconds if a.seconds is not None else (a.minutes or 1.0) * 60
    seed = a.seed if a.seed is not None else int.from_bytes(os.urandom(4), "big")
    out = pathlib.Path(a.out or tempfile.mkdtemp(prefix="authgate-chaos-"))
    print("chaos: seed=%d (replay with --seed %d) out=%s binary=%s"
          % (seed, seed, out, agstack.authgate_bin()), flush=True)
    try:
        n = run(seconds, seed, out, log=lambda m: print(m, flush=True), uvguard=a.uvguard)
    except AssertionError as e:
        print("chaos: FINDING: %s" % e, flush=True)
        return 1
    print("chaos: PASS %s" % dict(n), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
