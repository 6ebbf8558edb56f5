"""What a person in a browser sees when the gateway refuses (issue 15, "What
users see"): headless Chromium (harness/browser.py) loads a page through the
gateway for each refusal, takes a screenshot (Page.captureScreenshot: a
non-empty PNG) and reads the page through the DOM: the plain-words message,
the user name the gateway saw, the request id of the error log line and the
help-desk contact are there; a user name full of markup characters and a
crafted host name stay text. Clients that do not ask for text/html keep the
one-line text/plain body; error_templates replaces the built-in page, and a
template with an unknown placeholder is refused at reload (the old pages
stay).

Peers: the real gateway, the real origin, a real winbindd (503 when it is
stopped), a closed port (502), the origin's /slow/MS (504).
"""

import base64
import re

import pytest

from harness.auth import write_user_file, winbind_env  # noqa: F401 (fixtures)
from harness.browser import Chromium

pytest_plugins = ["peers.fixtures"]

# Every character HTML gives a meaning to, in a user name the local user
# file accepts (no ':' and no control bytes).
EVIL_USER = "a&<b>\"'c</dd><script>x</script>"
PASSWORD = "Evil-Pass1"
CONTACT = "IT help desk <help@example.test> & ext. 4444"

RULES = """\
deny blocked host=*.blocked.test
default allow
"""


def local_gateway(make_gateway, tmp_path, **opts):
    users = write_user_file(tmp_path / "users", {EVIL_USER: PASSWORD, "alice": "alice-Pass1"})
    rules = tmp_path / "rules.conf"
    rules.write_text(RULES)
    o = dict(auth_schemes="basic", basic_backend="local", user_file=str(users),
             rules_file=str(rules), error_contact='"%s"' % CONTACT.replace('"', '\\"'))
    o.update(opts)
    return make_gateway(**o)


def browser(tmp_path, gw, env=None):
    return Chromium(tmp_path / "chromium", proxy="http://localhost:%d" % gw.port, env=env)


def dom(br, expr):
    return br.call("Runtime.evaluate", {"expression": expr, "returnByValue": True})[
        "result"].get("value")


def field(br, ident):
    return dom(br, "(document.getElementById(%r) || {}).textContent" % ident)


def screenshot_ok(br, tmp_path, name):
    """The page as a person sees it: a PNG with something in it."""
    data = base64.b64decode(br.call("Page.captureScreenshot", {"format": "png"})["data"])
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000, len(data)
    (tmp_path / ("%s.png" % name)).write_bytes(data)


def no_markup_injected(br):
    """The page has exactly the elements of the built-in template: no
    script, no element a value could have opened."""
    assert dom(br, "document.scripts.length") == 0
    assert dom(br, "document.querySelectorAll('dd').length") == 7
    assert dom(br, "document.querySelectorAll('main *').length") == 18


def assert_page(br, gw, nav, status, *, user, message_re, detail_re, event):
    assert nav.status == status, (nav, gw.logs_tail())
    assert field(br, "status") == str(status)
    assert re.search(message_re, field(br, "message")), field(br, "message")
    assert re.search(detail_re, field(br, "detail")), field(br, "detail")
    assert field(br, "user") == user
    assert CONTACT in field(br, "contact")
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$", field(br, "time"))
    rid = field(br, "request-id")
    assert re.fullmatch(r"\d+", rid), rid
    # The id the user reads to the help desk is the one of the log line.
    gw.wait_log(r"req=%s event=%s" % (rid, event))
    no_markup_injected(br)


def test_403_names_rule_and_user_without_markup(make_gateway, tmp_path):
    """A user whose name is all markup characters is denied by a rule: the
    page names the rule and shows the name as text."""
    gw = local_gateway(make_gateway, tmp_path)
    with browser(tmp_path, gw) as br:
        br.credentials = (EVIL_USER, PASSWORD)
        nav = br.navigate("http://www.blocked.test/x")
        assert_page(br, gw, nav, 403, user=EVIL_USER, message_re="access policy",
                    detail_re="denied by access rule 'blocked'", event="denied")
        assert field(br, "host") == "www.blocked.test"
        screenshot_ok(br, tmp_path, "403")


def test_407_when_the_prompt_is_cancelled(make_gateway, tmp_path):
    gw = local_gateway(make_gateway, tmp_path, log_level="debug")
    with browser(tmp_path, gw) as br:
        br.credentials = None  # the user presses Cancel
        nav = br.navigate("http://www.example.test/x")
        assert_page(br, gw, nav, 407, user="(not signed in)", message_re="who you are",
                    detail_re="authentication required", event="auth_challenge")
        screenshot_ok(br, tmp_path, "407")


def test_502_backend_refused(make_gateway, tmp_path, closed_port):
    gw = local_gateway(make_gateway, tmp_path)
    with browser(tmp_path, gw) as br:
        br.credentials = ("alice", "alice-Pass1")
        nav = br.navigate(closed_port.url("/x"))
        assert_page(br, gw, nav, 502, user="alice", message_re="could not reach the site",
                    detail_re=".", event="upstream_error")
        assert field(br, "host") == "127.0.0.1"
        screenshot_ok(br, tmp_path, "502")


def test_504_backend_too_slow(make_gateway, tmp_path, origin):
    gw = local_gateway(make_gateway, tmp_path, upstream_idle_timeout="300ms")
    with browser(tmp_path, gw) as br:
        br.credentials = ("alice", "alice-Pass1")
        nav = br.navigate(origin.url("/slow/3000"))
        assert_page(br, gw, nav, 504, user="alice", message_re="did not answer",
                    detail_re="timeout", event="upstream_error")
        screenshot_ok(br, tmp_path, "504")


def test_503_winbind_down(winbind_env, tmp_path):  # noqa: F811
    """winbindd stopped: Basic cannot be checked; the page says the sign-in
    service is down (the gateway fails closed)."""
    gw = winbind_env.make(schemes="basic", error_contact='"%s"' % CONTACT.replace('"', '\\"'),
                          log_level="debug")
    winbind_env.winbind.stop()
    with browser(tmp_path, gw) as br:
        br.credentials = ("alice", winbind_env.users["alice"])
        nav = br.navigate("http://www.example.test/x")
        assert nav.status == 503, (nav, gw.logs_tail())
        assert re.search("sign-in service is down", field(br, "message"))
        assert field(br, "user") == "(not signed in)"
        rid = field(br, "request-id")
        assert re.fullmatch(r"\d+", rid)
        gw.wait_log(r"req=%s event=auth_backend_error" % rid)
        no_markup_injected(br)
        screenshot_ok(br, tmp_path, "503")


def test_non_browsers_keep_the_plain_body(make_gateway, tmp_path):
    gw = local_gateway(make_gateway, tmp_path)
    for accept in (None, "*/*", "application/json", "text/htmlx"):
        with gw.client() as c:
            hdrs = "Accept: %s\r\n" % accept if accept else ""
            r = c.request("GET http://www.example.test/ HTTP/1.1\r\nHost: www.example.test\r\n"
                          "%s\r\n" % hdrs)
            assert r.status == 407
            assert r.header("Content-Type").startswith("text/plain"), (accept, r)
            assert r.body == b"407 Proxy Authentication Required: authentication required\n"
    with gw.client() as c:
        r = c.request("GET http://www.example.test/ HTTP/1.1\r\nHost: www.example.test\r\n"
                      "Accept: application/xml;q=0.9, TEXT/HTML ;level=1\r\n\r\n")
        assert r.header("Content-Type") == "text/html; charset=utf-8"
        assert r.header("Cache-Control") == "no-store"
        assert int(r.header("Content-Length")) == len(r.body)
        assert b"<!DOCTYPE html>" in r.body


def test_crafted_host_cannot_inject(make_gateway, tmp_path):
    """A host with markup bytes never passes the target parser (400), and the
    400 page a browser gets does not carry them; nor does a Host field."""
    gw = local_gateway(make_gateway, tmp_path)
    # (target, Host, status, type): llhttp itself refuses '<' in a target
    # before the head is read (no Accept seen: the plain body); the others
    # get the page, with nothing of the crafted bytes in it as markup.
    for target, host, status, ctype in (
            ("http://<script>alert(1)</script>/", "x", 400, "text/plain"),
            ("http://a.test/", "<img src=x onerror=alert(1)>", 407, "text/html"),
            ("http://a%3Cb%3E.test/", "a.test", 400, "text/html"),
            ("http://a_b.test:80/", "<b>", 407, "text/html")):
        with gw.client() as c:
            r = c.request("GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/html\r\n\r\n"
                          % (target, host))
            assert r.status == status, r
            assert r.header("Content-Type") == ctype + "; charset=utf-8", r
            body = r.body.decode()
            assert "<script" not in body and "<img" not in body and "a<b>" not in body, body


def test_templates_replace_and_bad_template_refused(make_gateway, tmp_path):
    tdir = tmp_path / "pages"
    tdir.mkdir()
    (tdir / "407.html").write_text("<p id=x>WHO {{user}} {{request_id}} {{host}}</p>\n")
    gw = local_gateway(make_gateway, tmp_path, error_templates=str(tdir))
    req = ("GET http://www.example.test/ HTTP/1.1\r\nHost: www.example.test\r\n"
           "Accept: text/html\r\n\r\n")
    with gw.client() as c:
        r = c.request(req)
        assert r.status == 407
        assert re.fullmatch(rb"<p id=x>WHO \(not signed in\) \d+ www.example.test</p>\n", r.body)
    # A placeholder typo: the reload fails and the old pages stay.
    (tdir / "407.html").write_text("<p>{{usr}}</p>")
    gw.reload(wait=0)
    gw.wait_log(r"event=reload_failed .*407.html: unknown placeholder")
    with gw.client() as c:
        assert c.request(req).body.startswith(b"<p id=x>WHO")
    # error.html serves every status without a file of its own.
    (tdir / "407.html").unlink()
    (tdir / "error.html").write_text("ANY {{status}} {{reason}}")
    gw.reload(wait=0)
    gw.wait_log(r"event=reloaded")
    with gw.client() as c:
        assert c.request(req).body == b"ANY 407 Proxy Authentication Required"
