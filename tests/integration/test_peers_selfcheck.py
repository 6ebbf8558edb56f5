"""The real peers on their own, without the gateway: a throwaway MIT KDC and a
standalone winbindd (tests/integration/peers).  If these fail, gateway tests
built on the peers cannot be trusted.

Run: /usr/bin/python3 -m pytest -q tests/integration/test_peers_selfcheck.py
"""

import base64
import os
import pwd
import shutil
import subprocess
import sys

import pytest

from peers import Kdc, PeerError, Winbind
from peers._util import can_unshare_mount, pids_with_arg
from peers.fixtures import _need_winbind, fresh_kdc, fresh_winbind, kdc, winbind  # noqa: F401
from peers.fixtures import _winbind_session  # noqa: F401

PYTHON = "/usr/bin/python3"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

gssapi = pytest.importorskip("gssapi")

# ---------------------------------------------------------------- Kerberos

_CLIENT = r"""
import base64, sys, gssapi
name = gssapi.Name(sys.argv[1], gssapi.NameType.hostbased_service)
ctx = gssapi.SecurityContext(name=name, usage="initiate",
                             flags=gssapi.RequirementFlag.mutual_authentication)
sys.stdout.write(base64.b64encode(ctx.step()).decode())
"""


def client_token(env, target="HTTP@localhost"):
    """A Kerberos token produced by a separate client process (like curl would)."""
    p = subprocess.run([PYTHON, "-c", _CLIENT, target], env=env, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return base64.b64decode(p.stdout)


def accept(kdc, token, monkeypatch, keytab=None):
    """Accept token in this process, as the gateway would (KRB5_KTNAME etc.)."""
    for k, v in kdc.env.items():
        monkeypatch.setenv(k, v)
    if keytab:
        monkeypatch.setenv("KRB5_KTNAME", "FILE:" + keytab)
    creds = gssapi.Credentials(usage="accept")
    ctx = gssapi.SecurityContext(creds=creds, usage="accept")
    ctx.step(token)
    assert ctx.complete
    return ctx


@pytest.mark.needs_kdc
def test_kinit_and_klist(kdc):
    env = kdc.client_env("alice")
    out = subprocess.run(["klist"], env=env, capture_output=True, text=True, check=True).stdout
    assert f"Default principal: alice@{kdc.realm}" in out
    assert f"krbtgt/{kdc.realm}@{kdc.realm}" in out
    assert env["KRB5CCNAME"].startswith("FILE:" + kdc.dir)


@pytest.mark.needs_kdc
def test_kinit_wrong_password_fails(kdc):
    with pytest.raises(PeerError, match="Password incorrect|preauthentication failed"):
        kdc.kinit("alice", password="not-her-password")


@pytest.mark.needs_kdc
def test_gssapi_client_token_accepted_as_alice(kdc, monkeypatch):
    ctx = accept(kdc, client_token(kdc.client_env("alice")), monkeypatch)
    assert str(ctx.initiator_name) == f"alice@{kdc.realm}"
    assert str(ctx.target_name) == kdc.service_principal
    # the acceptor's replay cache is in the private directory, not /var/tmp
    assert os.listdir(kdc.rcache_dir)


@pytest.mark.needs_kdc
def test_memory_ccache_client_keytab(kdc, monkeypatch):
    env = kdc.client_env("carol", ccache="MEMORY")
    assert env["KRB5CCNAME"].startswith("MEMORY:")
    ctx = accept(kdc, client_token(env), monkeypatch)
    assert str(ctx.initiator_name) == f"carol@{kdc.realm}"


@pytest.mark.needs_kdc
def test_ticket_for_another_service(kdc, monkeypatch):
    tok = client_token(kdc.client_env("bob"), "HTTP@other.test")
    with pytest.raises(gssapi.exceptions.GSSError, match="not found in keytab"):
        accept(kdc, tok, monkeypatch)
    # the token itself is fine for the service it was made for
    ctx = accept(kdc, tok, monkeypatch, keytab=kdc.other_keytab)
    assert str(ctx.initiator_name) == f"bob@{kdc.realm}"


@pytest.mark.needs_kdc
@pytest.mark.parametrize("offset", [600, -600])
def test_skewed_client_clock_rejected(kdc, monkeypatch, offset):
    env = kdc.client_env("alice", time_offset=offset)
    with pytest.raises(gssapi.exceptions.GSSError, match="Clock skew too great"):
        accept(kdc, client_token(env), monkeypatch)


@pytest.mark.needs_kdc
def test_small_skew_tolerated(kdc, monkeypatch):
    ctx = accept(kdc, client_token(kdc.client_env("alice", time_offset=120)), monkeypatch)
    assert str(ctx.initiator_name) == f"alice@{kdc.realm}"


@pytest.mark.needs_kdc
def test_expired_ticket_rejected(monkeypatch):
    with Kdc(clockskew=2) as k:
        ok = accept(k, client_token(k.client_env("bob")), monkeypatch)
        assert str(ok.initiator_name) == f"bob@{k.realm}"
        env = k.expired_client_env("alice", lifetime=1)
        with pytest.raises(gssapi.exceptions.GSSError, match="Ticket expired"):
            accept(k, client_token(env), monkeypatch)


@pytest.mark.needs_kdc
def test_recreate_makes_the_keytab_wrong(fresh_kdc, monkeypatch):
    k = fresh_kdc
    k.recreate(rewrite_keytabs=False)
    with pytest.raises(gssapi.exceptions.GSSError, match="not found in keytab"):
        accept(k, client_token(k.client_env("alice")), monkeypatch)
    k.recreate()
    ctx = accept(k, client_token(k.client_env("alice")), monkeypatch)
    assert str(ctx.initiator_name) == f"alice@{k.realm}"


@pytest.mark.needs_kdc
def test_rekey_makes_the_keytab_stale(fresh_kdc, monkeypatch):
    k = fresh_kdc
    k.rekey(k.service)
    with pytest.raises(gssapi.exceptions.GSSError, match="keytab is likely out of date"):
        accept(k, client_token(k.client_env("alice")), monkeypatch)


@pytest.mark.needs_kdc
def test_kdc_cleans_up():
    with Kdc() as k:
        d, pid = k.dir, k.proc.pid
        assert os.path.isdir(d)
    assert not os.path.exists(d)
    assert k.proc.poll() is not None
    assert not os.path.exists(f"/proc/{pid}/cmdline") or not pids_with_arg(d)


# ---------------------------------------------------------------- winbind


@pytest.mark.needs_winbind
def test_wbinfo_authenticates_alice(winbind):
    p = winbind.wbinfo("-a", f"alice%{winbind.users['alice']}")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "plaintext password authentication succeeded" in p.stdout
    assert "challenge/response password authentication succeeded" in p.stdout


@pytest.mark.needs_winbind
def test_wbinfo_wrong_password_fails(winbind):
    p = winbind.wbinfo("-a", "alice%wrong-password")
    assert p.returncode != 0
    assert "plaintext password authentication failed" in p.stdout
    assert "challenge/response password authentication failed" in p.stdout
    assert "NT_STATUS_WRONG_PASSWORD" in p.stderr


@pytest.mark.needs_winbind
def test_wbinfo_lookups(winbind):
    assert "SID_USER" in winbind.wbinfo("-n", "alice", check=True).stdout
    assert "SID_DOM_GROUP" in winbind.wbinfo("-n", "internet", check=True).stdout


@pytest.mark.needs_winbind
def test_libwbclient_in_another_process(winbind):
    """What the gateway sees: account, domain, SIDs; group SIDs from groups=."""
    internet = winbind.lookup_name("internet", winbind.domain)
    assert internet["ok"], internet
    a = winbind.authenticate("alice", winbind.users["alice"])
    assert a["ok"] and a["account_name"] == "alice" and a["domain_name"] == winbind.domain
    assert internet["sid"] in a["sids"]
    assert a["sids"][0] == winbind.sid("alice")
    b = winbind.authenticate("BOB", winbind.users["bob"], winbind.domain)
    assert b["ok"] and b["account_name"] == "bob"  # canonical case
    assert internet["sid"] not in b["sids"]
    assert winbind.authenticate("alice", "nope")["nt_status"] == 0xC000006A
    assert winbind.authenticate("nosuchuser", "x")["nt_status"] == 0xC0000064


@pytest.mark.needs_winbind
def test_winbind_stop_start_restart(fresh_winbind):
    w = fresh_winbind
    w.stop()
    assert not w.server_pids(), "winbindd or a helper survived stop()"
    assert w.wbinfo("-p").returncode != 0
    assert w.authenticate("alice", w.users["alice"])["result"] == "WBC_ERR_WINBIND_NOT_AVAILABLE"
    w.start()
    assert w.authenticate("alice", w.users["alice"])["ok"]
    w.restart()
    assert w.wbinfo("-a", f"bob%{w.users['bob']}").returncode == 0


@pytest.mark.needs_winbind
def test_winbind_pause_hangs_calls(fresh_winbind):
    w = fresh_winbind
    w.pause()
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            w.wbinfo("-p", timeout=1.5)
    finally:
        w.resume()
    assert w.wbinfo("-p").returncode == 0


@pytest.mark.needs_winbind
def test_add_user_while_running(fresh_winbind):
    w = fresh_winbind
    w.add_user("dave", "dave:Pass 4", groups=["internet"])
    p = w.wbinfo("-a", "dave%dave:Pass 4")
    assert p.returncode == 0, p.stdout + p.stderr
    assert w.lookup_name("internet", w.domain)["sid"] in w.authenticate("dave", "dave:Pass 4")["sids"]


@pytest.mark.needs_winbind
@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv")
def test_unprivileged_client_needs_allow_gid_for_ntlm(fresh_winbind):
    w = fresh_winbind
    nobody = pwd.getpwnam("nobody")
    as_nobody = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                 "--clear-groups", "wbinfo", "-a", f"alice%{w.users['alice']}"]

    def run():
        return subprocess.run(w.command(as_nobody), env=w.gateway_env(), capture_output=True,
                              text=True, timeout=30)

    p = run()
    assert "plaintext password authentication succeeded" in p.stdout
    assert "challenge/response password authentication failed" in p.stdout
    w.allow_gid(nobody.pw_gid)
    w.restart()  # the group survives a restart
    p = run()
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.needs_winbind
@pytest.mark.parametrize("mode", ["nss_wrapper", "namespace"])
def test_client_modes(mode):
    _need_winbind()
    if mode == "namespace" and not (can_unshare_mount() and os.path.isdir("/run/samba")):
        pytest.skip("no private mount namespace here (needs CAP_SYS_ADMIN and /run/samba)")
    with Winbind(client_mode=mode) as w:
        assert w.wbinfo("-a", f"carol%{w.users['carol']}").returncode == 0
        assert w.authenticate("carol", w.users["carol"])["ok"]
        d = w.dir
    assert not os.path.exists(d)
    assert not pids_with_arg(d)


@pytest.mark.skipif(not (shutil.which("gcc") and shutil.which("pkg-config")),
                    reason="needs gcc and pkg-config")
@pytest.mark.needs_winbind
@pytest.mark.parametrize("asan", [False, True], ids=["plain-build", "asan-build"])
def test_wbclient_bench_runs(winbind, tmp_path, asan):
    """The bench (and with it any C program: an ASan build of the gateway
    too) reaches the private winbindd with gateway_env(binary=...)."""
    exe = tmp_path / "wbclient_bench"
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "wbclient", "nettle"],
                           capture_output=True, text=True, check=True).stdout.split()
    san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"] if asan else []
    subprocess.run(["gcc", "-O1", "-g", "-pthread", *san, "-o", str(exe),
                    os.path.join(REPO, "tests", "tools", "wbclient_bench.c"), *flags],
                   check=True)
    base = dict(os.environ)
    if asan:  # what tests/integration/harness sets for sanitizer builds
        base["ASAN_OPTIONS"] = "detect_leaks=1:halt_on_error=1:exitcode=86"
    p = subprocess.run(winbind.command([str(exe), "-t", "2", "-s", "0.5", "-u", "alice",
                                        "-p", winbind.users["alice"], "-d", winbind.domain]),
                       env=winbind.gateway_env(base, binary=exe), capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("mode=plain threads=2") and lines[1].startswith("mode=ntlmv2")
    for line in lines:
        fields = dict(kv.split("=") for kv in line.split())
        assert int(fields["ok"]) > 0 and fields["fail"] == "0", line


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
