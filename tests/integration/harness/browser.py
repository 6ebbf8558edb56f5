"""Headless Chromium (Debian `chromium`) as a real browser client of the
gateway, driven through the DevTools protocol (CDP).

The transport is --remote-debugging-pipe: Chromium reads commands from its
fd 3 and writes replies and events to its fd 4, one JSON text per message,
each ended by a NUL byte. No websocket, no third-party driver. One reader
thread parses what Chromium writes; command replies are matched to their id,
events are kept in order.

    with Chromium(workdir, proxy="http://localhost:PORT", env=...) as br:
        br.credentials = ("alice", "alice-Pass1")  # answers Fetch.authRequired
        nav = br.navigate("http://127.0.0.1:8080/x")
        nav.status, nav.text, br.auth_challenges

Proxy prompts (Basic, NTLM) arrive as Fetch.authRequired because the page
session enables Fetch with handleAuthRequests; each is answered with
Fetch.continueWithAuth (ProvideCredentials with `credentials`, or CancelAuth
when it is None, or once `max_auth` prompts were answered: a browser that
keeps being asked gives up like a user pressing Cancel). Negotiate needs no
prompt: Chromium takes the ticket from KRB5CCNAME when the proxy host is in
--auth-server-allowlist.

Every call has a deadline; close() asks Chromium to quit, then kills its
process group (it was started in a session of its own).
"""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import threading
import time

CHROMIUM = pathlib.Path("/usr/lib/chromium/chromium")  # the Debian launcher execs this

BASE_FLAGS = [
    "--headless=new",
    "--no-sandbox",  # the suite runs as root
    "--remote-debugging-pipe",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # Nothing of the browser's own on the wire: only the test's requests go
    # through the gateway (and into its access log).
    "--disable-background-networking",
    "--disable-field-trial-config",
    "--disable-breakpad",
    "--disable-component-extensions-with-background-pages",
    "--no-service-autorun",
    "--disable-component-update",
    "--disable-sync",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-pings",
    "--metrics-recording-only",
    "--password-store=basic",
    "--use-mock-keychain",
    "--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable,OptimizationHints,"
    "MediaRouter,Translate,AutofillServerCommunication,NetworkTimeServiceQuerying,"
    "CertificateTransparencyComponentUpdater,OptimizationGuideModelDownloading",
]


class BrowserError(RuntimeError):
    """Chromium missing, not answering, or a command refused: a broken test
    set-up, never the gateway's verdict (that is an AssertionError)."""


def chromium_binary():
    """The Chromium binary; fails (never skips) with what to install."""
    if not os.access(CHROMIUM, os.X_OK):
        raise BrowserError("headless Chromium not found at %s: apt-get install chromium "
                           "(scripts/bootstrap installs it)" % CHROMIUM)
    return CHROMIUM


class Navigation:
    """What one Page.navigate produced: the document's HTTP status (None if
    no response arrived), its text, and Chromium's error text if it failed."""

    def __init__(self, status, text, error):
        self.status, self.text, self.error = status, text, error

    def __repr__(self):
        return "Navigation(status=%r, error=%r, text=%r)" % (self.status, self.error,
                                                            self.text[:200])


class Chromium:
    def __init__(self, workdir, proxy, env=None, auth_server_allowlist=None, extra_flags=(),
                 timeout=15.0):
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proxy = proxy
        self.env = dict(os.environ if env is None else env)
        for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
                  "ALL_PROXY", "no_proxy", "NO_PROXY"):
            self.env.pop(k, None)
        self.allowlist = auth_server_allowlist
        self.extra_flags = list(extra_flags)
        self.timeout = timeout
        self.credentials = None  # (user, password) for Fetch.authRequired
        self.max_auth = 3
        self.auth_challenges = []  # authChallenge of every Fetch.authRequired
        self.proc = None
        self.session = None
        self._next_id = 0
        self._replies = {}
        self._events = []
        self._cond = threading.Condition()
        self._wlock = threading.Lock()
        self._closed = False
        self._stderr = None

    # -- process ---------------------------------------------------------------

    def start(self):
        binary = chromium_binary()
        flags = BASE_FLAGS + ["--user-data-dir=%s" % (self.workdir / "profile")]
        if self.proxy:  # None: the test gives its own (--proxy-pac-url)
            flags += [
                "--proxy-server=%s" % self.proxy,
                # Chromium never proxies loopback targets unless told so.
                "--proxy-bypass-list=<-loopback>",
            ]
        if self.allowlist:
            flags.append("--auth-server-allowlist=%s" % self.allowlist)
        flags += self.extra_flags + ["about:blank"]
        cmd_r, cmd_w = os.pipe()  # we write commands, Chromium reads them on fd 3
        ev_r, ev_w = os.pipe()  # Chromium writes on fd 4, we read
        self._stderr = open(self.workdir / "chromium.stderr", "wb")
        try:
            # bash puts the pipe ends on fds 3 and 4 and execs Chromium (same
            # pid); no preexec_fn, which is unsafe with threads running. (dash
            # takes single-digit descriptors only.)
            self.proc = subprocess.Popen(
                ["/bin/bash", "-c", 'exec "$0" "$@" 3<&%d 4>&%d %d<&- %d>&-'
                 % (cmd_r, ev_w, cmd_r, ev_w), str(binary)] + flags,
                pass_fds=(cmd_r, ev_w), stdin=subprocess.DEVNULL, stdout=self._stderr,
                stderr=self._stderr, env=self.env, cwd=self.workdir, start_new_session=True)
        finally:
            os.close(cmd_r)
            os.close(ev_w)
        self._out = os.fdopen(cmd_w, "wb", buffering=0)
        self._in = os.fdopen(ev_r, "rb", buffering=0)
        self._reader = threading.Thread(target=self._read_loop, name="cdp-reader", daemon=True)
        self._reader.start()
        self._attach()
        return self

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.proc is None or self._closed:
            return
        self._closed = True
        if self.proc.poll() is None:
            try:
                self._send("Browser.close", session=None)
            except OSError:
                pass
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                pass
        # Renderer, network and GPU helpers share the process group of the
        # browser we started: end them all, then the browser.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        for f in (getattr(self, "_out", None), getattr(self, "_in", None), self._stderr):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
        shutil.rmtree(self.workdir / "profile", ignore_errors=True)

    def stderr_tail(self, n=3000):
        try:
            return (self.workdir / "chromium.stderr").read_text(errors="replace")[-n:]
        except FileNotFoundError:
            return ""

    # -- the pipe --------------------------------------------------------------

    def _read_loop(self):
        buf = b""
        while True:
            try:
                chunk = self._in.read(65536)
            except (OSError, ValueError):
                chunk = b""
            if not chunk:
                with self._cond:
                    self._events.append({"method": "_closed"})
                    self._cond.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cond:
                        self._replies[msg["id"]] = msg
                        self._cond.notify_all()
                else:
                    self._on_event(msg)

    def _on_event(self, msg):
        method, params = msg.get("method"), msg.get("params", {})
        # Paused requests and proxy prompts are answered here, at once, so a
        # navigation never waits on the test thread.
        if method == "Fetch.requestPaused":
            self._send("Fetch.continueRequest", {"requestId": params["requestId"]})
        elif method == "Fetch.authRequired":
            self.auth_challenges.append(params.get("authChallenge", {}))
            if self.credentials is not None and len(self.auth_challenges) <= self.max_auth:
                user, password = self.credentials
                resp = {"response": "ProvideCredentials", "username": user,
                        "password": password}
            else:
                resp = {"response": "CancelAuth"}
            self._send("Fetch.continueWithAuth", {"requestId": params["requestId"],
                                                  "authChallengeResponse": resp})
        with self._cond:
            self._events.append(msg)
            self._cond.notify_all()

    def _send(self, method, params=None, session=True):
        with self._wlock:
            self._next_id += 1
            mid = self._next_id
            msg = {"id": mid, "method": method, "params": params or {}}
            if session and self.session:
                msg["sessionId"] = self.session
            self._out.write(json.dumps(msg).encode() + b"\0")
        return mid

    def call(self, method, params=None, session=True, timeout=None):
        """Sends a command and waits for its reply; returns its result."""
        mid = self._send(method, params, session)
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while mid not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise BrowserError("no reply to %s within %.0fs (chromium %s)\n%s"
                                       % (method, timeout or self.timeout,
                                          "exited %s" % self.proc.poll()
                                          if self.proc.poll() is not None else "running",
                                          self.stderr_tail()))
                self._cond.wait(min(left, 0.2))
            reply = self._replies.pop(mid)
        if "error" in reply:
            raise BrowserError("%s failed: %r" % (method, reply["error"]))
        return reply.get("result", {})

    def wait_event(self, method, since=0, pred=None, timeout=None):
        """Waits for an event (from index since on); returns (index, params)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while True:
                for i in range(since, len(self._events)):
                    ev = self._events[i]
                    if ev.get("method") == method and (pred is None or pred(ev.get("params", {}))):
                        return i, ev.get("params", {})
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BrowserError("no %s event within %.0fs; events: %r"
                                       % (method, timeout or self.timeout,
                                          [e.get("method") for e in self._events[since:]]))
                self._cond.wait(min(left, 0.2))

    # -- a page ----------------------------------------------------------------

    def _attach(self):
        # The first reply also proves the pipe works: a Chromium that
        # cannot start fails here, with its stderr.
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)
        res = self.call("Target.attachToTarget", {"targetId": target["targetId"],
                                                  "flatten": True}, session=False)
        self.session = res["sessionId"]
        for method, params in (("Page.enable", {}), ("Network.enable", {}),
                               ("Fetch.enable", {"handleAuthRequests": True})):
            self.call(method, params)

    def navigate(self, url, timeout=None):
        """Loads url in the page (the way a user typing it would); returns a
        Navigation once the load event fired or the load failed."""
        since = len(self._events)
        res = self.call("Page.navigate", {"url": url}, timeout=timeout)
        error = res.get("errorText")
        status = None
        if not error:
            loader = res.get("loaderId")
            self.wait_event("Page.loadEventFired", since=since, timeout=timeout)
            with self._cond:
                for ev in self._events[since:]:
                    p = ev.get("params", {})
                    if ev.get("method") == "Network.responseReceived" and \
                            p.get("type") == "Document" and p.get("loaderId") == loader:
                        status = p["response"]["status"]
        text = self.call("Runtime.evaluate", {
            "expression": "document.body ? document.body.innerText : ''",
            "returnByValue": True})["result"].get("value", "")
        return Navigation(status, text, error)
