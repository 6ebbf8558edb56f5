"""The Debian package: scripts/package builds authgate_<version>_<arch>.deb,
dpkg-deb and lintian check it, and the real dpkg installs, upgrades and
purges it in a scratch root, never on the machine running the tests.

The scratch root is an overlay of / (writes go to a tmpfs) in a private
mount and network namespace (unshare), entered with chroot: the package is
installed with `apt-get install ./authgate_*.deb` as the README says, and the
maintainer scripts run with the real adduser and dpkg, the installed daemon starts as
the `authgate` user on its own loopback, and all of it vanishes with the
namespace. The package does not depend on the binary under test, so it is
built in the gcc pass only."""

import os
import pathlib
import re
import shutil
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    os.environ.get("AG_SANITIZED") == "1",
    reason="the package is built and checked once, in the gcc pass")


def version():
    m = re.search(r"project\(authgate VERSION (\S+)", (REPO / "CMakeLists.txt").read_text())
    return m.group(1)


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    out = tmp_path_factory.mktemp("deb")
    p = subprocess.run([str(REPO / "scripts" / "package"), str(out)], capture_output=True,
                       timeout=900, env=dict(os.environ, AG_JOBS="2"))
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    path = pathlib.Path(p.stdout.decode().strip().splitlines()[-1])
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                          text=True).stdout.strip()
    assert path.name == "authgate_%s_%s.deb" % (version(), arch)
    assert path.exists()
    return path


def dpkg_deb(*args):
    p = subprocess.run(["dpkg-deb"] + [str(a) for a in args], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout.decode()


def test_contents_and_metadata(deb):
    files = {}
    for line in dpkg_deb("-c", deb).splitlines():
        f = line.split()
        files[f[-1].lstrip(".")] = (f[0], f[1])
    want = {
        "/usr/sbin/authgate": ("-rwxr-xr-x", "root/root"),
        "/usr/sbin/authgatectl": ("-rwxr-xr-x", "root/root"),
        "/lib/systemd/system/authgate.service": ("-rw-r--r--", "root/root"),
        "/etc/logrotate.d/authgate": ("-rw-r--r--", "root/root"),
        "/etc/authgate/authgate.conf": ("-rw-r--r--", "root/root"),
        "/usr/share/man/man8/authgate.8.gz": ("-rw-r--r--", "root/root"),
        "/usr/share/man/man8/authgatectl.8.gz": ("-rw-r--r--", "root/root"),
        "/usr/share/man/man5/authgate.conf.5.gz": ("-rw-r--r--", "root/root"),
        "/usr/share/doc/authgate/copyright": ("-rw-r--r--", "root/root"),
        "/usr/share/doc/authgate/changelog.gz": ("-rw-r--r--", "root/root"),
        "/usr/share/doc/authgate/examples/authgate-alerts.yml": ("-rw-r--r--", "root/root"),
        "/usr/share/doc/authgate/examples/grafana-authgate.json": ("-rw-r--r--", "root/root"),
    }
    for path, meta in want.items():
        assert files.get(path) == meta, (path, files.get(path))
    # nothing from the build machine or the source tree leaks in
    assert not [f for f in files if f.startswith(("/usr/local", "/work", "/tmp", "/root"))]

    fields = {}
    for k in ("Package", "Version", "Architecture", "Depends", "Section", "Maintainer",
              "Description"):
        fields[k] = dpkg_deb("-f", deb, k).strip()
    assert fields["Package"] == "authgate" and fields["Version"] == version()
    deps = {d.split()[0] for d in fields["Depends"].split(", ")}
    # from dpkg-shlibdeps on the real binaries, plus the maintainer scripts' needs
    assert {"libuv1", "libgssapi-krb5-2", "libwbclient0", "libnettle8", "libsystemd0",
            "libc6", "adduser"} <= deps, deps
    control = dpkg_deb("-I", deb)
    for script in ("postinst", "prerm", "postrm"):
        assert re.search(r"\d+ bytes,\s+\d+ lines\s+\*\s+%s\s+#!/bin/sh" % script, control), \
            control
    conffiles = subprocess.run("dpkg-deb --ctrl-tarfile %s | tar -xO ./conffiles" % deb,
                               shell=True, capture_output=True, text=True).stdout.split()
    assert conffiles == ["/etc/authgate/authgate.conf", "/etc/logrotate.d/authgate"]

    # The unit starts the installed paths, and the shipped configuration is
    # the sample with the packaged paths.
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE) as p:
        unit = subprocess.run(["tar", "-xO", "./lib/systemd/system/authgate.service"],
                              stdin=p.stdout, capture_output=True, text=True).stdout
    assert "ExecStart=/usr/sbin/authgate -c /etc/authgate/authgate.conf\n" in unit
    assert "Type=notify\n" in unit


def test_lintian_has_no_errors_or_warnings(deb):
    lintian = shutil.which("lintian")
    assert lintian, "lintian is missing: scripts/bootstrap installs it"
    p = subprocess.run([lintian, "--tag-display-limit", "0", str(deb)], capture_output=True,
                       timeout=300)
    out = p.stdout.decode()
    tags = [l for l in out.splitlines() if re.match(r"^[EW]: ", l)]
    assert p.returncode == 0 and not tags, out + p.stderr.decode()


# What runs inside the scratch root (a chroot into the overlay). Each check
# prints one "CHECK name value" line; the test asserts on them.
INSIDE = r"""
set -eu
check() { printf 'CHECK %s %s\n' "$1" "$2"; }
export DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin
getent passwd authgate >/dev/null && { echo "scratch root already has the user"; exit 9; }
# As the README says: apt resolves Depends from what is installed (this
# root is a copy of the test machine, which has them); the private network
# namespace has no route anywhere, so nothing could be fetched.
apt-get install -y -o Dpkg::Use-Pty=0 /tmp/pkg/authgate.deb >/tmp/apt.log 2>&1 \
    || { cat /tmp/apt.log; exit 1; }
check status "$(dpkg-query -W -f='${Status}' authgate)"
check user "$(getent passwd authgate | cut -d: -f1,6,7)"
check system_uid "$(test "$(id -u authgate)" -lt 1000 && echo yes || echo no)"
for d in /var/lib/authgate /var/log/authgate /run/authgate /etc/authgate/users; do
    check "dir:$d" "$(stat -c '%U:%G:%a' "$d")"
done
check conffiles "$(dpkg-query -W -f='${Conffiles}' authgate | awk '{print $1}' | tr '\n' ' ')"
check man "$(man -w authgate.conf 2>/dev/null)"
/usr/sbin/authgate -t -c /etc/authgate/authgate.conf >/tmp/t.out 2>&1 && check config_ok yes \
    || { check config_ok no; cat /tmp/t.out; }

# The installed daemon, as systemd would start it: the authgate user, the
# shipped configuration, on this namespace's own loopback.
ip link set lo up
setpriv --reuid=authgate --regid=authgate --init-groups -- /usr/sbin/authgate -c /etc/authgate/authgate.conf >/tmp/d.out 2>/tmp/d.err &
pid=$!
for i in $(seq 1 100); do [ -S /run/authgate/authgate.sock ] && break; sleep 0.1; done
check daemon_user "$(ps -o user= -p $pid)"
/usr/sbin/authgatectl status >/tmp/ctl.out 2>&1 && check ctl ok || { check ctl "failed:$?"; cat /tmp/ctl.out; }
check proxy_status "$(curl -s -o /dev/null -w '%{http_code}' --noproxy '' -x http://127.0.0.1:3128 http://127.0.0.1:1/)"
kill -TERM $pid; wait $pid && check daemon_exit 0 || check daemon_exit $?
check access_log "$(stat -c '%U' /var/log/authgate/access.log 2>/dev/null || echo missing)"

# An upgrade keeps the admin's changes to a conffile and the user file.
echo "# admin was here" >>/etc/authgate/authgate.conf
echo 'alice:00000000000000000000000000000000' >>/etc/authgate/users
dpkg -i --force-confold /tmp/pkg/authgate.deb >/tmp/dpkg-u.log 2>&1 || { cat /tmp/dpkg-u.log; exit 1; }
check kept_conf "$(grep -c '^# admin was here' /etc/authgate/authgate.conf)"
check kept_users "$(grep -c '^alice:' /etc/authgate/users)"

dpkg -r authgate >/dev/null 2>&1
check removed_bin "$(test -e /usr/sbin/authgate && echo present || echo gone)"
check removed_conf "$(test -e /etc/authgate/authgate.conf && echo present || echo gone)"
dpkg -P authgate >/dev/null 2>&1
check purged_conf "$(test -e /etc/authgate/authgate.conf && echo present || echo gone)"
check purged_state "$(ls -d /var/lib/authgate /var/log/authgate /etc/authgate/users 2>/dev/null | wc -l)"
check purged_status "$(dpkg-query -W -f='${Status}' authgate 2>/dev/null || echo unknown)"
"""

# Builds the scratch root in the namespace and runs INSIDE in it.
OUTSIDE = r"""
set -eu
W=$1; DEB=$2
mount --make-rprivate /
mount -t tmpfs -o size=512m tmpfs "$W"
mkdir "$W/u" "$W/w" "$W/m"
mount -t overlay overlay -o "lowerdir=/,upperdir=$W/u,workdir=$W/w" "$W/m"
R=$W/m
mount --rbind /dev "$R/dev"
mount -t proc proc "$R/proc"
mount -t tmpfs tmpfs "$R/run"
mount -t tmpfs tmpfs "$R/tmp"
mkdir "$R/tmp/pkg"
cp "$DEB" "$R/tmp/pkg/authgate.deb"
chroot "$R" /bin/sh -s
"""


def test_install_upgrade_purge_in_scratch_root(deb, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root for unshare --mount and chroot")
    # The host must stay untouched: the user does not exist here before
    # or after.
    host_before = subprocess.run(["getent", "passwd", "authgate"], capture_output=True).returncode
    w = tmp_path / "scratch"
    w.mkdir()
    p = subprocess.run(["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child",
                        "/bin/sh", "-c", OUTSIDE, "sh", str(w), str(deb)],
                       input=INSIDE.encode(), capture_output=True, timeout=300)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out + p.stderr.decode(errors="replace")
    checks = dict(l.split(" ", 2)[1:] for l in out.splitlines() if l.startswith("CHECK "))
    assert checks["status"] == "install ok installed", out
    assert checks["user"] == "authgate:/var/lib/authgate:/usr/sbin/nologin", out
    assert checks["system_uid"] == "yes"
    assert checks["dir:/var/lib/authgate"] == "authgate:authgate:750"
    assert checks["dir:/var/log/authgate"] == "authgate:adm:2750"
    assert checks["dir:/run/authgate"] == "authgate:authgate:750"
    assert checks["dir:/etc/authgate/users"] == "root:authgate:640"
    assert checks["conffiles"].split() == ["/etc/authgate/authgate.conf",
                                           "/etc/logrotate.d/authgate"]
    assert checks["man"] == "/usr/share/man/man5/authgate.conf.5.gz"
    assert checks["config_ok"] == "yes", out
    assert checks["daemon_user"] == "authgate"
    assert checks["ctl"] == "ok", out
    assert checks["proxy_status"] == "407", out
    assert checks["daemon_exit"] == "0", out
    assert checks["access_log"] == "authgate"
    assert checks["kept_conf"] == "1" and checks["kept_users"] == "1"
    assert checks["removed_bin"] == "gone" and checks["removed_conf"] == "present"
    assert checks["purged_conf"] == "gone" and checks["purged_state"] == "0"
    assert checks["purged_status"] in ("unknown", "unknown ok not-installed")
    host_after = subprocess.run(["getent", "passwd", "authgate"], capture_output=True).returncode
    assert host_before == host_after
    assert not pathlib.Path("/usr/sbin/authgate").exists() or host_before == 0
