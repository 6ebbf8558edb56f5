"""`authgate -t -c FILE`: exit 0 for a good file; 1 and "file:line: message"
for a bad one."""

import pytest

from harness.gateway import authgate_bin, check_config, render_config


def _base(tmp_path):
    return {
        "listen": ["127.0.0.1:3128"],
        "auth_schemes": "none",
        "error_log": str(tmp_path / "error.log"),
        "access_log": str(tmp_path / "access.log"),
    }


def test_check_good_config(tmp_path):
    f = tmp_path / "good.conf"
    opts = _base(tmp_path)
    opts.update({"connect_ports": "443 8443", "head_timeout": "2s", "x_forwarded_for": "on",
                 "via_pseudonym": "authgate", "upstream_idle_timeout": "1500ms"})
    f.write_text("# a comment\n\n" + render_config(opts))
    rc, out = check_config(f)
    assert rc == 0, out


def test_check_good_config_with_two_listeners(tmp_path):
    f = tmp_path / "good.conf"
    opts = _base(tmp_path)
    opts["listen"] = ["127.0.0.1:3128", "[::1]:3129"]
    f.write_text(render_config(opts))
    rc, out = check_config(f)
    assert rc == 0, out


def test_check_empty_config_uses_defaults(tmp_path):
    f = tmp_path / "empty.conf"
    f.write_text("# nothing but defaults\nauth_schemes none\n")
    rc, out = check_config(f)
    assert rc == 0, out


BAD = [
    ("unknown option", "frobnicate yes"),
    ("bad duration", "head_timeout soon"),
    ("duration out of bounds", "head_timeout 1ms"),
    ("bad boolean", "x_forwarded_for maybe"),
    ("port out of range", "connect_ports 70000"),
    ("port zero", "connect_ports 0"),
    ("bad listen address", "listen nowhere"),
    ("listen without port", "listen 127.0.0.1"),
    ("unterminated quote", 'via_pseudonym "authgate'),
    ("repeated single-valued option", "via_pseudonym again"),
    ("missing value", "head_timeout"),
    ("bad via pseudonym", "via_pseudonym a/b"),
]


@pytest.mark.parametrize("what,line", BAD, ids=[b[0] for b in BAD])
def test_check_bad_config_reports_file_and_line(tmp_path, what, line):
    f = tmp_path / "bad.conf"
    opts = _base(tmp_path)
    opts["via_pseudonym"] = "authgate"
    good = render_config(opts).splitlines()
    # the bad line goes last, so its number is known
    f.write_text("\n".join(good + [line]) + "\n")
    bad_line = len(good) + 1
    rc, out = check_config(f)
    assert rc == 1, "%s accepted (rc %d): %s" % (what, rc, out)
    assert "%s:%d:" % (f, bad_line) in out or "bad.conf:%d:" % bad_line in out, out


def test_check_missing_file(tmp_path):
    rc, out = check_config(tmp_path / "does-not-exist.conf")
    assert rc == 1, out
    assert "does-not-exist.conf" in out


def test_check_does_not_start_daemon(tmp_path):
    """-t exits at once, without binding (the port stays free)."""
    import socket
    import time
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    f = tmp_path / "good.conf"
    opts = _base(tmp_path)
    opts["listen"] = ["127.0.0.1:%d" % port]
    f.write_text(render_config(opts))
    t0 = time.monotonic()
    rc, out = check_config(f)
    assert rc == 0, out
    assert time.monotonic() - t0 < 5
    with socket.socket() as s2:
        s2.bind(("127.0.0.1", port))


def test_daemon_refuses_bad_config_at_start(tmp_path):
    import subprocess
    from harness.gateway import sanitizer_env
    f = tmp_path / "bad.conf"
    f.write_text("auth_schemes none\nlisten 127.0.0.1:1\nbogus 1\n")
    p = subprocess.run([str(authgate_bin()), "-c", str(f)], capture_output=True, timeout=10,
                       env=sanitizer_env(), stdin=subprocess.DEVNULL)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode != 0, out
    assert "bad.conf:3:" in out, out
