"""`authgate import-squid` (issue 15, "Coming from Squid"): real Squid
configurations, Debian's default /etc/squid/squid.conf among them, are
translated; `squid -k parse` accepts the original and `authgate -t` the
translation; then a real Squid 5.7 runs the original and authgate the
translation side by side, and a table of requests (client addresses, methods,
hosts, ports, CONNECT, Basic credentials) must be allowed or denied the same
way by both (denied = 403; 407 = a login asked for).

Both resolve the test's names through private hosts files (Squid's
hosts_file, nss_wrapper for authgate) to the origin on 127.0.0.1.
"""

import os
import pathlib
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from harness.auth import write_user_file
from harness.gateway import authgate_bin, free_port
from harness.rawhttp import RawClient, build_request, get_request
from harness.squid import htpasswd_text, squid_conf
from peers.winbind import NSS_WRAPPER, asan_runtime

SQUID = shutil.which("squid")
NAMES = ["www.corp.test", "corp.test", "www.blocked.test", "blocked.test", "deep.sub.blocked.test",
         "public.test"]
PASSWORDS = {"alice": "alice-Pass1", "bob": "bob-Pass2"}


def b64(s):
    import base64
    return base64.b64encode(s.encode()).decode()


def import_squid(conf, outdir):
    outdir.mkdir(exist_ok=True)
    p = subprocess.run([str(authgate_bin()), "import-squid", "-o", str(outdir), str(conf)],
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return (outdir / "authgate.conf").read_text(), (outdir / "rules.conf").read_text(), \
        p.stderr.decode()


def authgate_check(conf):
    p = subprocess.run([str(authgate_bin()), "-t", "-c", str(conf)], capture_output=True,
                       timeout=30)
    return p.returncode, (p.stdout + p.stderr).decode()


def squid_parse(conf):
    p = subprocess.run([SQUID, "-k", "parse", "-f", str(conf)], capture_output=True, timeout=60)
    return p.returncode, (p.stdout + p.stderr).decode()


class Squid:
    """A private Squid 5.7 (-N, foreground) running `text` plus what a
    private instance needs (port, pid and log files, no cache, hosts file)."""

    def __init__(self, text, port):
        self.dir = tempfile.mkdtemp(prefix="ag-squid-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        pw = pwd.getpwnam("proxy")
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.port = port
        hosts = os.path.join(self.dir, "hosts")
        with open(hosts, "w") as f:
            f.write("127.0.0.1 localhost %s\n" % " ".join(NAMES))
        d = self.dir
        # The test's own port instead of the config's.
        text = re.sub(r"(?m)^http_port\s+\S+.*$", "http_port 127.0.0.1:%d" % port, text)
        self.conf = os.path.join(d, "squid.conf")
        with open(self.conf, "w") as f:
            f.write(squid_conf(d, "ag-import-test", workers=None, logfile_rotate=False,
                               hosts_file=hosts, allow_all=False, head=text + "\n"))
        os.chmod(self.conf, 0o644)
        self.proc = subprocess.Popen(
            [SQUID, "-N", "-f", self.conf, "-n", "agimp%d" % port],
            stdout=open(os.path.join(d, "stdout.log"), "wb"), stderr=subprocess.STDOUT,
            cwd=d, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                RawClient("127.0.0.1", port, timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("squid did not start:\n" + self.logs())
                time.sleep(0.05)

    def logs(self):
        out = ""
        for n in ("stdout.log", "cache.log"):
            try:
                out += open(os.path.join(self.dir, n), errors="replace").read()[-3000:]
            except OSError:
                pass
        return out

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


def start_authgate(make_gateway, tmp_path, conf_text, user_file=None):
    """authgate with the translated config (its own listen on a port of the
    test's, rules_file absolute), names resolved through nss_wrapper."""
    opts = {}
    for line in conf_text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        k, _, v = line.partition(" ")
        if k == "listen":
            continue
        opts[k] = v
    opts["rules_file"] = str(tmp_path / "out" / "rules.conf")
    if user_file:
        opts["user_file"] = str(user_file)
    gw = make_gateway(start=False, listen="127.0.0.1:%d" % free_port(), **opts)
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost %s\n" % " ".join(NAMES))
    env = dict(gw.env)
    env["NSS_WRAPPER_HOSTS"] = str(hosts)
    env["NSS_WRAPPER_PASSWD"] = "/etc/passwd"
    env["NSS_WRAPPER_GROUP"] = "/etc/group"
    pre = [p for p in env.get("LD_PRELOAD", "").split() if p]
    asan = asan_runtime(gw.binary)
    if asan and asan not in pre:
        pre.insert(0, asan)
    env["LD_PRELOAD"] = " ".join(pre + [NSS_WRAPPER])
    gw.env = env
    gw.start()
    return gw


def verdict(port, req, source):
    method, target, auth = req
    with RawClient("127.0.0.1", port, timeout=10, source=source) as c:
        hdrs = [("Proxy-Authorization", "Basic " + b64(auth))] if auth else []
        if method == "CONNECT":
            data = build_request("CONNECT", target, [("Host", target)] + hdrs)
        else:
            data = get_request(target, hdrs, method=method,
                               body=b"x" if method in ("POST", "PUT") else b"")
        r = c.request(data)
    if r.status in (403, 407):
        return r.status
    return "allowed"


def compare(squid_port, ag_port, table, origin_port):
    diffs, rows = [], []
    for source, req in table:
        req = (req[0], req[1].replace("OPORT", str(origin_port)), req[2])
        try:
            s = verdict(squid_port, req, source)
            a = verdict(ag_port, req, source)
        except AssertionError as e:
            raise AssertionError("%s %r: %s" % (source, req, e))
        rows.append((source, req, s, a))
        if s != a:
            diffs.append((source, req, "squid=%s" % s, "authgate=%s" % a))
    return diffs, rows


def run_pair(make_gateway, tmp_path, origin, squid_text, table, user_file=None, htpasswd=None):
    src = tmp_path / "squid.conf"
    src.write_text(squid_text)
    conf, rules, notes = import_squid(src, tmp_path / "out")
    check = tmp_path / "out" / "authgate.conf"
    if user_file:  # the user file the note asks for, in place of /etc/authgate/users
        check = tmp_path / "out" / "checked.conf"
        check.write_text(re.sub(r"(?m)^user_file .*$", "user_file %s" % user_file, conf))
    rc, out = authgate_check(check)
    assert rc == 0, out
    sq = Squid(squid_text, free_port())
    try:
        gw = start_authgate(make_gateway, tmp_path, conf, user_file)
        diffs, rows = compare(sq.port, gw.port, table, origin.port)
    finally:
        sq.stop()
    assert not diffs, "\n".join(map(str, diffs)) + "\n" + rules
    return rows, conf, rules, notes


# ---------------------------------------------------------------------------


def test_debian_default(make_gateway, tmp_path, origin):
    """Debian's own /etc/squid/squid.conf (with its include of conf.d)."""
    rc, out = squid_parse("/etc/squid/squid.conf")
    assert rc == 0, out
    conf, rules, notes = import_squid("/etc/squid/squid.conf", tmp_path / "out")
    rc, out = authgate_check(tmp_path / "out" / "authgate.conf")
    assert rc == 0, out
    assert "deny L" in rules and "default allow" in rules
    assert re.search(r"refresh_pattern .* -- not about authentication or access", notes)
    assert "connect_ports 443" in conf
    text = open("/etc/squid/squid.conf").read()
    table = []
    for source in ("127.0.0.1", "127.0.0.2"):
        for req in [("GET", "http://www.corp.test:OPORT/x", None),
                    ("POST", "http://public.test:OPORT/", None),
                    ("GET", "http://www.corp.test:25/", None),
                    ("GET", "http://www.corp.test:OPORT/squid-internal-mgr/menu", None),
                    ("CONNECT", "www.corp.test:8443", None),
                    ("CONNECT", "www.corp.test:443", None)]:
            table.append((source, req))
    rows, *_ = run_pair(make_gateway, tmp_path, origin, text, table)
    got = {(s, r[0], r[1].split(":")[-1] if r[0] == "CONNECT" else r[1]): a
           for s, r, _, a in rows}
    # The table is not trivial: both verdicts occur.
    assert {a for *_, a in rows} == {"allowed", 403}, rows


CUSTOM = """
http_port 3128
acl office src 127.0.0.2/32 127.0.0.3
acl wide src 127.0.0.0/255.255.255.248
acl blocked dstdomain -n .blocked.test
acl corp dstdomain -n www.corp.test
acl lan dst 10.0.0.0/8
acl Safe_ports port 80 1025-65535
acl SSL_ports port 443
acl posts method POST PUT
acl always time SMTWHFA 00:00-24:00
http_access deny !Safe_ports
http_access deny CONNECT !SSL_ports
http_access deny blocked
http_access deny lan
http_access deny office posts
http_access allow office corp always
http_access allow localhost
http_access allow wide posts
"""


def test_custom_acls(make_gateway, tmp_path, origin):
    src = tmp_path / "c.conf"
    src.write_text(CUSTOM)
    rc, out = squid_parse(src)
    assert rc == 0, out
    table = []
    for source in ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.5", "127.0.0.9"):
        for req in [("GET", "http://www.corp.test:OPORT/", None),
                    ("POST", "http://www.corp.test:OPORT/", None),
                    ("PUT", "http://public.test:OPORT/", None),
                    ("GET", "http://www.blocked.test:OPORT/", None),
                    ("GET", "http://blocked.test:OPORT/", None),
                    ("GET", "http://deep.sub.blocked.test:OPORT/", None),
                    ("GET", "http://public.test:OPORT/", None),
                    ("GET", "http://10.1.2.3:OPORT/", None),
                    ("GET", "http://www.corp.test:81/", None),
                    ("CONNECT", "www.corp.test:8443", None)]:
            table.append((source, req))
    rows, conf, rules, notes = run_pair(make_gateway, tmp_path, origin, CUSTOM, table)
    assert "default deny" in rules
    assert {a for *_, a in rows} == {"allowed", 403}, rows


BASIC = """
http_port 3128
auth_param basic program /usr/lib/squid/basic_ncsa_auth {htpasswd}
auth_param basic realm Corp proxy
auth_param basic children 2
acl authed proxy_auth REQUIRED
acl admins proxy_auth alice
acl Safe_ports port 80 1025-65535
acl intranet dstdomain -n .corp.test
http_access deny !Safe_ports
http_access deny !authed
http_access allow admins
http_access allow authed intranet
http_access deny all
"""


def test_basic_auth(make_gateway, tmp_path, origin):
    """Basic with Squid's htpasswd helper; authgate gets the same users in
    its own user file (the note says how)."""
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(htpasswd_text(PASSWORDS))
    os.chmod(htpasswd, 0o644)
    shared = tempfile.mkdtemp(prefix="ag-htpasswd-", dir="/tmp")
    os.chmod(shared, 0o755)
    try:
        hp = shutil.copy(htpasswd, shared)
        os.chmod(hp, 0o644)
        text = BASIC.format(htpasswd=hp)
        src = tmp_path / "b.conf"
        src.write_text(text)
        rc, out = squid_parse(src)
        assert rc == 0, out
        users = write_user_file(tmp_path / "users", PASSWORDS)
        table = []
        for creds in (None, "alice:alice-Pass1", "bob:bob-Pass2", "bob:wrong"):
            for url in ("http://www.corp.test:OPORT/", "http://public.test:OPORT/",
                        "http://www.corp.test:22/"):
                table.append(("127.0.0.1", ("GET", url, creds)))
        rows, conf, rules, notes = run_pair(make_gateway, tmp_path, origin, text, table,
                                            user_file=users)
        assert "auth_schemes basic" in conf and "basic_backend local" in conf
        assert 'basic_realm "Corp proxy"' in conf
        assert "authgate passwd" in notes
        assert {a for *_, a in rows} == {"allowed", 403, 407}, rows
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_untranslatable_lines_listed(tmp_path):
    text = """
http_port 127.0.0.1:3128 intercept
acl re url_regex -i \\.exe$
acl fromfile dstdomain "/etc/squid/blocked.txt"
acl users proxy_auth alice bob
acl grp external wbgroup CORP\\internet
external_acl_type wbgroup ttl=60 %LOGIN /usr/lib/squid/ext_wbinfo_group_acl
external_acl_type other %SRC /usr/local/bin/check
acl oth external other x
auth_param negotiate program /usr/lib/squid/negotiate_kerberos_auth -k /etc/krb5.keytab -s HTTP/proxy.corp.example@CORP.EXAMPLE -r
auth_param ntlm program /usr/bin/ntlm_auth --helper-protocol=squid-2.5-ntlmssp
http_access deny re
http_access deny fromfile
http_access deny !users
http_access allow grp
http_access allow oth
http_access allow users
http_access deny all
cache_mem 64 MB
"""
    src = tmp_path / "u.conf"
    src.write_text(text)
    conf, rules, notes = import_squid(src, tmp_path / "out")
    assert "auth_schemes negotiate ntlm" in conf
    assert "keytab /etc/krb5.keytab" in conf and "proxy_host proxy.corp.example" in conf
    assert "negotiate_name_format strip" in conf and "ntlm_backend winbind" in conf
    assert re.search(r"u.conf:2: http_port .* intercept -- options after the port", notes)
    assert re.search(r"u.conf:12: http_access deny re -- acl 're' .*url_regex' has no authgate",
                     notes), notes
    assert re.search(r"u.conf:13: .* values come from a file", notes)
    assert re.search(r"u.conf:14: http_access deny !users -- a negated user list", notes)
    assert re.search(r"u.conf:16: .* external helper 'other'", notes)
    assert re.search(r"u.conf:19: cache_mem 64 MB -- not about authentication", notes)
    assert 'allow L15 group="CORP\\internet"' in rules, rules
    assert "allow L17 user=alice,bob" in rules
    assert "NOT TRANSLATED" in rules
    # Every note is also in the config, as comments.
    assert conf.count("\n#   ") == notes.count("\n") - 1


def test_bounds(tmp_path):
    """Operator input, still bounded: an over-long line and a self-include
    end with a message, not a crash."""
    p = tmp_path / "long.conf"
    p.write_text("acl x src " + "1.2.3.4 " * 3000 + "\n")
    r = subprocess.run([str(authgate_bin()), "import-squid", str(p)], capture_output=True,
                       timeout=30)
    assert r.returncode == 2 and b"longer than" in r.stderr, r.stderr
    p = tmp_path / "loop.conf"
    p.write_text("include %s\n" % p)
    r = subprocess.run([str(authgate_bin()), "import-squid", str(p)], capture_output=True,
                       timeout=30)
    assert r.returncode == 2 and b"nest deeper" in r.stderr, r.stderr
