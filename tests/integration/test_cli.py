"""Command-line conventions of both programs, and their man pages.

authgate and authgatectl answer --help and --version on stdout with exit
status 0; an unknown option exits 2 with the usage on stderr. The man pages
built beside the binaries (build/man) render without a single groff warning,
and authgate.conf(5) documents exactly the options the daemon knows."""

import os
import re
import shutil
import subprocess

import pytest

from harness.ctl_client import ctl_bin
from harness.gateway import authgate_bin, sanitizer_env

VERSION_RE = r"^%s \d+\.\d+\.\d+\n$"


def run(argv, timeout=20, env=None):
    p = subprocess.run([str(a) for a in argv], capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, env=sanitizer_env(env))
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


PROGRAMS = [("authgate", authgate_bin), ("authgatectl", ctl_bin)]


@pytest.mark.parametrize("name,binary", PROGRAMS)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(name, binary, flag):
    rc, out, err = run([binary(), flag])
    assert rc == 0, err
    assert out.startswith("usage: %s " % name)
    assert "--version" in out and "--help" in out
    assert err == ""


@pytest.mark.parametrize("name,binary", PROGRAMS)
@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(name, binary, flag):
    rc, out, err = run([binary(), flag])
    assert rc == 0, err
    assert re.match(VERSION_RE % name, out), out
    assert err == ""


@pytest.mark.parametrize("name,binary", PROGRAMS)
@pytest.mark.parametrize("argv", [["--bogus"], ["-Z"], ["--hel"], ["-s"]])
def test_unknown_option_exits_2_with_usage(name, binary, argv):
    if name == "authgate" and argv == ["-s"]:
        argv = ["-c"]  # an option that lacks its value
    if name == "authgate" and argv == ["--hel"]:
        argv = ["--helpme"]  # getopt_long takes unambiguous prefixes, as GNU tools do
    rc, out, err = run([binary()] + argv)
    assert rc == 2, (argv, rc, out, err)
    assert out == ""
    assert "usage: %s " % name in err


def test_authgate_stray_argument_and_missing_config():
    rc, out, err = run([authgate_bin(), "-c", "/dev/null", "extra"])
    assert rc == 2 and "unexpected argument 'extra'" in err and "usage:" in err
    rc, out, err = run([authgate_bin()])
    assert rc == 2 and "usage:" in err


def test_long_options_work(tmp_path):
    conf = tmp_path / "a.conf"
    conf.write_text("listen 127.0.0.1:3999\nauth_schemes none\n")
    rc, out, err = run([authgate_bin(), "--test", "--config", str(conf)])
    assert rc == 0 and "configuration ok" in out, err
    rc, out, err = run([authgate_bin(), "--test", "--verbose", "--config=%s" % conf])
    assert rc == 0 and "listen 127.0.0.1:3999\n" in out, err


def test_subcommands_still_dispatch(tmp_path):
    users = tmp_path / "users"
    rc, out, err = run([authgate_bin(), "passwd"])
    assert rc == 2 and "usage" in (out + err).lower()
    p = subprocess.run([str(authgate_bin()), "passwd", str(users), "alice"], input=b"s3cret\n",
                       capture_output=True, timeout=20, env=sanitizer_env())
    assert p.returncode == 0, p.stderr
    assert users.read_text().startswith("alice:")


# ---------------------------------------------------------------------------
# man pages


def man_dir():
    return authgate_bin().parent / "man"


PAGES = ["authgate.8", "authgatectl.8", "authgate.conf.5"]


@pytest.mark.parametrize("page", PAGES)
def test_man_page_renders_without_warnings(page):
    path = man_dir() / page
    assert path.exists(), "%s not built (cmake target man)" % path
    p = subprocess.run(["groff", "-ww", "-z", "-man", "-Tutf8", str(path)], capture_output=True,
                       timeout=30)
    assert p.returncode == 0 and p.stderr == b"", p.stderr.decode()
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8", MAN_KEEP_FORMATTING="0")
    p = subprocess.run(["man", "--warnings=w", "-l", str(path)], capture_output=True,
                       timeout=30, env=env)
    assert p.returncode == 0 and p.stderr == b"", p.stderr.decode()
    text = re.sub(r".\x08", "", p.stdout.decode())  # overstrike (bold) off
    name = page.rsplit(".", 1)[0]
    assert re.search(r"^NAME\n\s+%s +- " % re.escape(name), text, re.M), text[:400]
    # the compressed copy the package installs is the same page
    gz = path.with_name(page + ".gz")
    assert subprocess.run(["gzip", "-dc", str(gz)], capture_output=True).stdout == \
        path.read_bytes()


def test_groff_check_can_fail(tmp_path):
    bad = tmp_path / "bad.8"
    bad.write_text(".TH BAD 8\n.SH NAME\nbad \\- x\n.XX unknown request\n\\*[nostring]\n")
    p = subprocess.run(["groff", "-ww", "-z", "-man", "-Tutf8", str(bad)], capture_output=True,
                       timeout=30)
    assert p.stderr != b""


def test_conf_page_documents_every_option(tmp_path):
    """The option list of authgate.conf(5) is the daemon's: the names in
    `authgate -t -v` (every option with its value) are exactly the page's
    option paragraphs, each with the default the daemon applies."""
    conf = tmp_path / "empty.conf"
    conf.write_text("")
    rc, out, err = run([authgate_bin(), "-t", "-v", "-c", conf])
    assert rc == 0, err
    effective = {}
    for line in out.splitlines():
        k, _, v = line.partition(" ")
        effective.setdefault(k, v)
    src = (man_dir() / "authgate.conf.5").read_text()
    paras = re.findall(r"^\.TP\n\.B (\S+)\n(.*?)(?=^\.TP\n|^\.SH )", src, re.M | re.S)
    documented = [n.replace("\\-", "-") for n, _ in paras]
    assert documented == list(effective), (documented, list(effective))
    for name, body in paras:
        value = effective[name]
        m = re.search(r"Default: \\fB(.*?)\\fR\.", body)
        assert m, (name, body)
        shown = m.group(1).replace("\\-", "-").replace("\\e", "\\")
        if name in ("listen", "realm_domain"):
            continue  # repeatable: the dump has one line per entry
        assert shown == value, (name, shown, value)
