#!/usr/bin/python3
"""Soak: hours of mixed traffic against one authgate, sampled every 10 s.

    scripts/soak [--minutes N] [--warmup-minutes W] [--out DIR]

Starts the integration stack (tests/tools/agstack.py: KDC, winbindd, origin,
echo server, authgate with Negotiate, NTLM and Basic through winbind), then:

 1. measures capacity: the mix below, flat out from WORKERS threads, for
    CAPACITY_S seconds (this client and the gateway share the machine, so
    it is the capacity of the pair);
 2. waits until the gateway is quiescent and takes the baseline (fds,
    threads) from /proc;
 3. runs the mix at half that rate for N minutes: Negotiate (python-gssapi),
    NTLM (two legs through winbindd, then a second request on the
    connection), Basic, CONNECT (16 KiB echoed through a tunnel) and a 1 MiB
    download, with a reload (SIGHUP) every minute, an `authgatectl kick` of
    a random session every 20 s and a winbindd restart every ten minutes;
 4. every 10 s samples RSS, descriptors, threads (/proc) and the handshakes
    and jobs_in_flight gauges (`stats`), and writes them to DIR/samples.csv;
 5. stops the traffic, waits for quiescence, compares fds and threads with
    the baseline, stops the gateway (SIGTERM: exit status 0 after
    uv_loop_close) and prints the slopes per hour of the samples after
    warm-up (least squares) and PASS/FAIL against:
      RSS growth < 1 MiB/h, fds and threads back to baseline, no error
      other than those inside an injected fault's window (a kicked
      connection, winbindd restarting: NTLM/Basic 503s).

AUTHGATE_BIN selects the binary (default build/authgate: RSS of a sanitizer
build says nothing about the daemon's).
"""

import argparse
import collections
import os
import pathlib
import random
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import agstack  # noqa: E402
from agstack import Stack  # noqa: E402

WORKERS = 4
CAPACITY_S = 20
SAMPLE_S = 10
RELOAD_S = 60
KICK_S = 20
WB_RESTART_S = 600
# after a kick or a winbindd restart, errors this long are the fault's
GRACE_S = 3.0
MIX = [("negotiate", 25), ("ntlm", 25), ("basic", 25), ("connect", 15), ("big", 10)]


def slope_per_hour(points):
    """Least-squares slope of [(t_seconds, value)] in value per hour."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    if den == 0:
        return 0.0
    return sum((t - mt) * (v - mv) for t, v in points) / den * 3600.0


class Soak:
    def __init__(self, st, seed):
        self.st = st
        self.rng = random.Random(seed)
        self.lock = threading.RLock()  # one() holds it around _in_window()
        self.ops = collections.Counter()
        self.errors = collections.Counter()
        self.error_samples = []
        self.injected = collections.Counter()
        self.windows = []  # (start, end, kinds) of injected faults
        self.stop = threading.Event()
        self.rate = None  # ops/s, None = flat out
        self.next_slot = time.monotonic()

    def _in_window(self, kind, t0, t1):
        with self.lock:
            return any(s - 0.5 <= t1 and t0 <= e + GRACE_S and (kinds is None or kind in kinds)
                       for s, e, kinds in self.windows)

    def _pace(self):
        if self.rate is None:
            return
        with self.lock:
            slot = self.next_slot = max(self.next_slot + 1.0 / self.rate,
                                        time.monotonic() - 1.0)
        d = slot - time.monotonic()
        if d > 0:
            time.sleep(d)

    def one(self, rng):
        kind = rng.choices([k for k, _ in MIX], [w for _, w in MIX])[0]
        user = rng.choice(sorted(self.st.users))
        t0 = time.monotonic()
        try:
            if kind == "negotiate":
                agstack.op_negotiate(self.st)
            elif kind == "ntlm":
                agstack.op_ntlm(self.st, user)
            elif kind == "basic":
                agstack.op_basic(self.st, user)
            elif kind == "connect":
                agstack.op_connect(self.st, user)
            else:
                agstack.op_big(self.st, user)
            with self.lock:
                self.ops[kind] += 1
        except Exception as e:  # noqa: BLE001 - every failure is counted and classified
            t1 = time.monotonic()
            key = "%s: %s" % (kind, type(e).__name__)
            with self.lock:
                if self._in_window(kind, t0, t1):
                    self.injected[key] += 1
                else:
                    self.errors[key] += 1
                    if len(self.error_samples) < 20:
                        self.error_samples.append("%s %s" % (key, str(e)[:200]))

    def worker(self, wid):
        rng = random.Random(self.rng.random() + wid)
        while not self.stop.is_set():
            self._pace()
            if self.stop.is_set():
                break
            self.one(rng)

    def run_workers(self):
        self.stop.clear()
        ts = [threading.Thread(target=self.worker, args=(i,), daemon=True)
              for i in range(WORKERS)]
        for t in ts:
            t.start()
        return ts

    def join(self, ts):
        self.stop.set()
        for t in ts:
            t.join(60)

    def fault(self, what, fn, kinds=None):
        """Runs fn as an injected fault: failures of the exchanges of `kinds`
        (None: all) that overlap it, or end within GRACE_S of it, are the
        fault's."""
        t0 = time.monotonic()
        with self.lock:
            self.windows.append((t0, float("inf"), kinds))
            idx = len(self.windows) - 1
        try:
            fn()
        finally:
            with self.lock:
                self.windows[idx] = (t0, time.monotonic(), kinds)
            self.injected["fault " + what] += 1

    def kick_one(self):
        rows = self.st.sessions()
        if rows:
            self.st.ctl("kick", "id=%s" % self.rng.choice(rows)["id"])


def quiesce(st, timeout=30.0):
    """Waits until the gateway holds no client connection and its upstream
    keep-alive connections expired; returns the /proc sample then."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        s = st.stats()
        if s.get("connections", 0) == 0 and s.get("handshakes", 0) == 0 \
                and s.get("jobs_in_flight", 0) == 0:
            cur = st.proc_sample()
            if last is not None and cur["fds"] == last["fds"] and \
                    cur["threads"] == last["threads"]:
                return cur
            last = cur
        time.sleep(1.0)
    return st.proc_sample()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--warmup-minutes", type=float, default=None,
                    help="samples before this are left out of the slopes "
                         "(default: 10%% of the run, at least 1 minute)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", default=None, help="directory for samples.csv and the logs")
    a = ap.parse_args(argv)
    seed = a.seed if a.seed is not None else int.from_bytes(os.urandom(4), "big")
    warm = a.warmup_minutes if a.warmup_minutes is not None else max(1.0, a.minutes / 10)
    out = pathlib.Path(a.out or tempfile.mkdtemp(prefix="authgate-soak-"))
    out.mkdir(parents=True, exist_ok=True)
    print("soak: seed=%d minutes=%g warmup=%g out=%s binary=%s"
          % (seed, a.minutes, warm, out, agstack.authgate_bin()), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    with Stack(out / "stack") as st:
        os.environ.update(st.kdc.client_env("alice"))
        sk = Soak(st, seed)

        # 1. capacity
        ts = sk.run_workers()
        time.sleep(CAPACITY_S)
        sk.join(ts)
        done = sum(sk.ops.values())
        capacity = done / CAPACITY_S
        print("capacity: %.1f exchanges/s (%d in %ds, %d threads: %s)"
              % (capacity, done, CAPACITY_S, WORKERS, dict(sk.ops)), flush=True)
        if sk.errors:
            print("errors during the capacity run: %s" % dict(sk.errors), flush=True)
        # 2. baseline
        base = quiesce(st)
        print("baseline (quiescent): %s" % base, flush=True)
        sk.ops.clear()
        sk.errors.clear()

        # 3. the soak
        sk.rate = max(1.0, capacity / 2)
        sk.next_slot = time.monotonic()
        t_start = time.monotonic()
        end = t_start + a.minutes * 60
        ts = sk.run_workers()
        samples = []
        csv = open(out / "samples.csv", "w")
        csv.write("t_s,rss_kib,fds,threads,connections,handshakes,jobs_in_flight,ops\n")
        next_sample = t_start
        next_reload = t_start + RELOAD_S
        next_kick = t_start + KICK_S
        next_wb = t_start + WB_RESTART_S
        reloads = kicks = wb_restarts = 0
        try:
            while True:
                now = time.monotonic()
                if now >= end:
                    break
                if now >= next_sample:
                    p = st.proc_sample()
                    s = st.stats()
                    row = (now - t_start, p["rss_kib"], p["fds"], p["threads"],
                           s.get("connections", 0), s.get("handshakes", 0),
                           s.get("jobs_in_flight", 0), sum(sk.ops.values()))
                    samples.append(row)
                    csv.write(",".join("%.1f" % v if isinstance(v, float) else str(v)
                                       for v in row) + "\n")
                    csv.flush()
                    print("t=%5.0fs rss=%d KiB fds=%d threads=%d conns=%d hs=%d jobs=%d "
                          "ops=%d errors=%d" % (row + (sum(sk.errors.values()),)), flush=True)
                    next_sample += SAMPLE_S
                if now >= next_reload:
                    st.gw.reload()  # no window: a reload must not cost a request
                    reloads += 1
                    next_reload += RELOAD_S
                if now >= next_kick:
                    sk.fault("kick", sk.kick_one)
                    kicks += 1
                    next_kick += KICK_S
                if now >= next_wb:
                    sk.fault("winbindd restart", st.wb.restart,
                             kinds={"ntlm", "basic", "connect", "big"})
                    wb_restarts += 1
                    next_wb += WB_RESTART_S
                time.sleep(0.2)
        except KeyboardInterrupt:
            print("interrupted: reporting what ran", flush=True)
        elapsed = time.monotonic() - t_start
        sk.join(ts)
        csv.close()

        # 5. the end
        final = quiesce(st)
        errlog = st.gw.error_log
        st.gw.stop()  # asserts exit status 0 and no sanitizer report
        rc = st.gw.returncode

    after = [r for r in samples if r[0] >= warm * 60]
    rss = slope_per_hour([(r[0], r[1] / 1024.0) for r in after])
    fds = slope_per_hour([(r[0], r[2]) for r in after])
    thr = slope_per_hour([(r[0], r[3]) for r in after])
    total = sum(sk.ops.values())
    levels = collections.Counter(l.split("event=")[1].split()[0] for l in errlog.splitlines()
                                 if ("level=error" in l or "level=warn" in l) and "event=" in l)
    print()
    print("ran %.1f min at %.1f exchanges/s target (half of %.1f): %d exchanges %s"
          % (elapsed / 60, sk.rate, capacity, total, dict(sk.ops)))
    print("faults: %d reloads, %d kicks, %d winbindd restarts" % (reloads, kicks, wb_restarts))
    print("slopes after %.0f min warm-up (%d samples): RSS %+.3f MiB/h, fds %+.2f/h, "
          "threads %+.2f/h" % (warm, len(after), rss, fds, thr))
    if after:
        print("RSS %d -> %d KiB (min %d, max %d)" % (after[0][1], after[-1][1],
                                                     min(r[1] for r in after),
                                                     max(r[1] for r in after)))
    print("baseline fds=%d threads=%d; at the end fds=%d threads=%d"
          % (base["fds"], base["threads"], final["fds"], final["threads"]))
    print("errors inside injected windows: %s" % dict(sk.injected))
    print("other errors: %s" % dict(sk.errors))
    for e in sk.error_samples:
        print("   ", e)
    print("error/warn log events: %s" % dict(levels))
    print("exit status on SIGTERM: %s" % rc)
    fails = []
    if len(after) >= 2 and rss >= 1.0:
        fails.append("RSS grows %.3f MiB/h" % rss)
    if final["fds"] > base["fds"]:
        fails.append("fds %d > baseline %d" % (final["fds"], base["fds"]))
    if final["threads"] > base["threads"]:
        fails.append("threads %d > baseline %d" % (final["threads"], base["threads"]))
    if sk.errors:
        fails.append("%d errors outside injected faults" % sum(sk.errors.values()))
    if rc != 0:
        fails.append("exit status %s" % rc)
    print("soak: %s%s" % ("PASS" if not fails else "FAIL", "" if not fails
                          else ": " + "; ".join(fails)))
    return 0 if not fails else 1


if __name__ == "__main__":
    sys.exit(main())
