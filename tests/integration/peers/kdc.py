"""A throwaway MIT KDC for integration tests (see /work/shared/testenv/NOTES.md).

Everything lives in a private temporary directory selected by environment
variables; nothing under /etc is read for configuration or written.

    with Kdc() as kdc:
        gw_env = {**os.environ, **kdc.env}        # gateway: KRB5_CONFIG, KRB5_KTNAME, ...
        cl_env = kdc.client_env("alice")          # curl/python client with alice's ticket
        subprocess.run(["curl", "--proxy-negotiate", "-U", ":", "-x",
                        "http://localhost:PORT", url], env=cl_env)

Principals: users alice/bob/carol (``Kdc.users`` holds the passwords),
``HTTP/localhost`` in ``kdc.keytab`` and ``HTTP/other.test`` (a service the
gateway must not accept) in ``kdc.other_keytab``.

Clock skew (what works with MIT krb5 1.20, verified by the self-check tests):
the FILE ccache (format 4) carries a "KDC time offset" header field that the
library adds to "now" for every timestamp it makes while using that ccache
(``kdc_timesync = true``, MIT's default).  ``client_env(user,
time_offset=N)`` / ``kinit(..., time_offset=N, services=[...])`` get the TGT
and the service ticket with the correct time, then rewrite that field
(``set_ccache_time_offset``), so any client using the ccache (curl,
python-gssapi) builds authenticators N seconds off.  With |N| > 300 the
acceptor fails with KRB5KRB_AP_ERR_SKEW ("Clock skew too great"); 120 is
tolerated.  Details that matter:
  * fetch the service ticket before the offset is set (client_env does):
    otherwise the KDC refuses the TGS request for the same reason;
  * for N < 0 the client library refuses its own tickets ("Ticket not yet
    valid") before sending anything, so client_env also gives the client a
    krb5.conf with a larger clockskew (``client_krb5_config``);
  * ``kinit -s`` (postdated) only yields INVALID tickets that need validation
    by the KDC: no way to present a skewed ticket;
  * an expired ticket: ``expired_client_env()`` (needs ``Kdc(clockskew=2)``,
    because the acceptor accepts a ticket until endtime + clockskew);
  * through SPNEGO (what curl sends) a skewed or otherwise rejected AP-REQ
    makes gss_accept_sec_context return GSS_S_FAILURE *with* an output token
    (negState=reject wrapping a KRB-ERROR); python-gssapi's high-level
    SecurityContext.step() then returns that token instead of raising, with
    ctx.complete False.  The raw krb5 mech (python-gssapi's default) raises.
Checked with curl 7.88 (--negotiate, FILE and MEMORY ccaches, +600 s).

krb5kdc sets SO_REUSEPORT: two KDCs can listen on one port and the kernel
spreads requests between them.  start() checks that only this KDC's two
sockets are bound to its port and moves to another port otherwise.
"""

import os
import shutil
import struct
import time

from ._util import (PeerError, free_port, private_dir, run, spawn, stop_process,
                    tail, tcp_answers, wait_until)
from .accounts import DEFAULT_USERS


class Kdc:
    def __init__(self, realm="AUTHGATE.TEST", users=None, service="HTTP/localhost",
                 other_service="HTTP/other.test", other_in_same_keytab=False,
                 base_dir=None, start_timeout=15, clockskew=None, keep=False):
        """realm, users ({name: password}), service principal for the gateway,
        other_service (None to skip) written to other.keytab (or also to the
        gateway keytab with other_in_same_keytab=True).  clockskew sets
        [libdefaults] clockskew for every process using this krb5.conf.
        keep=True leaves the directory behind for debugging."""
        self.realm = realm
        self.users = dict(DEFAULT_USERS if users is None else users)
        self.service = service
        self.other_service = other_service
        self.other_in_same_keytab = other_in_same_keytab
        self.start_timeout = start_timeout
        self.clockskew = clockskew
        self.keep = keep
        self._base_dir = base_dir
        self.dir = None
        self.port = None
        self.proc = None
        # principal -> (password or None, [keytab paths]); replayed by recreate()
        self._principals = {}
        self._ccache_seq = 0

    # ------------------------------------------------------------ paths
    def _p(self, *parts):
        return os.path.join(self.dir, *parts)

    @property
    def krb5_conf(self):
        return self._p("krb5.conf")

    @property
    def kdc_conf(self):
        return self._p("kdc.conf")

    @property
    def keytab(self):
        """The gateway's acceptor keytab (HTTP/localhost)."""
        return self._p("http.keytab")

    @property
    def other_keytab(self):
        return self.keytab if self.other_in_same_keytab else self._p("other.keytab")

    @property
    def rcache_dir(self):
        return self._p("rcache")

    @property
    def log_path(self):
        return self._p("kdc.log")

    def principal(self, name):
        """Full principal name: 'alice' -> 'alice@REALM'."""
        return name if "@" in name else f"{name}@{self.realm}"

    @property
    def service_principal(self):
        return self.principal(self.service)

    @property
    def env(self):
        """Kerberos variables for the gateway (acceptor) process; merge into os.environ."""
        return {
            "KRB5_CONFIG": self.krb5_conf,
            "KRB5_KDC_PROFILE": self.kdc_conf,
            "KRB5_KTNAME": "FILE:" + self.keytab,
            "KRB5RCACHEDIR": self.rcache_dir,
            "KRB5CCNAME": "FILE:" + self._p("ccache", "gateway"),
        }

    # ------------------------------------------------------------ lifecycle
    def __enter__(self):
        try:
            self.setup()
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def setup(self):
        """Create the directory, configuration, database and principals."""
        if self.dir is None:
            self.dir = private_dir("ag-kdc-", self._base_dir)
            os.chmod(self.dir, 0o755)  # a gateway that drops privileges must reach its keytab
            for d in ("db", "ccache", "rcache"):
                os.mkdir(self._p(d))
            os.chmod(self.rcache_dir, 0o1777)
            os.chmod(self._p("ccache"), 0o1777)
        self.port = free_port()
        self._write_conf()
        self._create_db()
        for name, pw in self.users.items():
            self.add_principal(name, password=pw)
        self.add_principal(self.service, keytab=self.keytab)
        if self.other_service:
            self.add_principal(self.other_service, keytab=self.other_keytab)

    def _write_conf(self):
        skew = f"    clockskew = {self.clockskew}\n" if self.clockskew is not None else ""
        with open(self.krb5_conf, "w") as f:
            f.write(f"""[libdefaults]
    default_realm = {self.realm}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
    qualify_shortname = ""
    kdc_timesync = true
    forwardable = true
    default_ccache_name = FILE:{self._p('ccache', 'default')}
    default_keytab_name = FILE:{self.keytab}
    default_client_keytab_name = FILE:{self._p('client-default.keytab')}
{skew}
[realms]
    {self.realm} = {{
        kdc = 127.0.0.1:{self.port}
    }}

[domain_realm]
    localhost = {self.realm}
    .test = {self.realm}
    other.test = {self.realm}
""")
        with open(self.kdc_conf, "w") as f:
            f.write(f"""[kdcdefaults]
    kdc_listen = 127.0.0.1:{self.port}
    kdc_tcp_listen = 127.0.0.1:{self.port}

[realms]
    {self.realm} = {{
        database_name = {self._p('db', 'principal')}
        key_stash_file = {self._p('db', 'stash')}
        acl_file = {self._p('kadm5.acl')}
        max_life = 10h 0m 0s
        max_renewable_life = 7d 0h 0m 0s
        default_principal_flags = +preauth
    }}

[logging]
    kdc = FILE:{self.log_path}
    admin_server = FILE:{self._p('kadmin.log')}
    default = FILE:{self._p('krb5lib.log')}
""")
        with open(self._p("kadm5.acl"), "w") as f:
            f.write("")

    def _admin_env(self):
        env = dict(os.environ)
        env.update(self.env)
        return env

    def _create_db(self):
        run(["kdb5_util", "create", "-s", "-r", self.realm, "-P", "master-Pass0", "-W"],
            env=self._admin_env(), what="kdb5_util create")

    def kadmin(self, query):
        """Run one kadmin.local query; returns stdout."""
        p = run(["kadmin.local", "-r", self.realm, "-q", query], env=self._admin_env(),
                what="kadmin.local")
        err = p.stderr.decode(errors="replace")
        # kadmin.local exits 0 even when a query fails; anything on stderr except
        # the "no policy" notice is an error.
        bad = [l for l in err.splitlines()
               if l.strip() and not l.startswith("No policy specified")]
        if bad:
            raise PeerError(f"kadmin.local -q {query!r}:\n{err}")
        return p.stdout.decode(errors="replace")

    def add_principal(self, name, password=None, keytab=None):
        """Create a principal (random key when password is None) and, if keytab
        is given, export its key there (ktadd; -norandkey if a password is set,
        so the password keeps working).  Returns the full principal name."""
        full = self.principal(name)
        if password is not None:
            self.kadmin(f'addprinc -pw "{password}" {full}')
        else:
            self.kadmin(f"addprinc -randkey {full}")
        keytabs = []
        prev = self._principals.get(full)
        if prev:
            keytabs = prev[1]
        if keytab:
            self._ktadd(full, keytab, password is not None)
            keytabs = keytabs + [keytab]
        self._principals[full] = (password, keytabs)
        if password is not None:
            self.users.setdefault(name.split("@")[0], password)
        return full

    def _ktadd(self, full, keytab, norandkey):
        flag = "-norandkey " if norandkey else ""
        self.kadmin(f"ktadd {flag}-k {keytab} {full}")
        os.chmod(keytab, 0o644 if keytab != self.keytab else 0o600)

    def export_keytab(self, name, keytab):
        """Write name's current keys to keytab without changing them."""
        full = self.principal(name)
        self._ktadd(full, keytab, True)
        pw, kts = self._principals.get(full, (None, []))
        self._principals[full] = (pw, kts + [keytab])
        return keytab

    def rekey(self, name, keytab=None):
        """New random key (kvno+1) for a service; the old keytab keeps the old key
        (a 'stale keytab' case) unless keytab is given, which receives the new one."""
        full = self.principal(name)
        self.kadmin(f"cpw -randkey {full}")
        if keytab:
            self._ktadd(full, keytab, True)

    def user_keytab(self, user):
        """A client keytab holding user's password-derived keys (for kinit -k and
        for KRB5_CLIENT_KTNAME, e.g. MEMORY-ccache benchmark clients)."""
        path = self._p(f"client-{user}.keytab")
        if not os.path.exists(path):
            self.export_keytab(user, path)
        return path

    def start(self):
        """Start krb5kdc -n and wait until it accepts TCP on its port."""
        if self.proc and self.proc.poll() is None:
            return
        for attempt in range(3):
            env = self._admin_env()
            self.proc = spawn(["krb5kdc", "-n", "-r", self.realm], env,
                              self._p("krb5kdc.out"), cwd=self.dir)
            try:
                wait_until(lambda: self.proc.poll() is not None
                           or tcp_answers("127.0.0.1", self.port),
                           self.start_timeout, what=f"krb5kdc on 127.0.0.1:{self.port}",
                           on_fail=self.logs)
            except PeerError:
                stop_process(self.proc)
                raise
            if self.proc.poll() is None:
                # krb5kdc sets SO_REUSEPORT: a second KDC that lost the race for
                # this port would share it silently (the kernel spreads requests
                # between two databases).  Make sure only ours listens.
                if sockets_on_port(self.port) <= 2 or attempt == 2:
                    return
                stop_process(self.proc)
                self.port = free_port()
                self._write_conf()
                continue
            logs = self.logs()
            if "Address already in use" in logs and attempt < 2:
                self.port = free_port()  # lost a race for the port: new port, same DB
                self._write_conf()
                continue
            raise PeerError(f"krb5kdc exited with {self.proc.returncode}\n{logs}")

    def stop(self):
        stop_process(self.proc)

    def close(self):
        try:
            self.stop()
        finally:
            if self.dir and not self.keep:
                shutil.rmtree(self.dir, ignore_errors=True)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def logs(self):
        return (f"--- {self._p('krb5kdc.out')}\n{tail(self._p('krb5kdc.out'))}\n"
                f"--- {self.log_path}\n{tail(self.log_path)}")

    def recreate(self, rewrite_keytabs=True):
        """Destroy the database and create a new one with the same principals and
        passwords but new random keys for services (and a new master key).
        rewrite_keytabs=False leaves the existing keytab files alone, so a
        gateway holding http.keytab now has the wrong key (a different
        key and an older kvno: the acceptor fails with "Request ticket server
        HTTP/localhost@REALM kvno N not found in keytab").  rekey() gives the
        other flavour (ticket kvno newer than the keytab's).  Existing
        client ccaches hold tickets of the old database."""
        was_running = self.running()
        self.stop()
        shutil.rmtree(self._p("db"))
        os.mkdir(self._p("db"))
        old = dict(self._principals)
        self._principals = {}
        if rewrite_keytabs:
            for _, keytabs in old.values():
                for kt in keytabs:
                    if os.path.exists(kt):
                        os.unlink(kt)
        self._create_db()
        for full, (pw, keytabs) in old.items():
            self.add_principal(full, password=pw)
            if rewrite_keytabs:
                for kt in keytabs:
                    self._ktadd(full, kt, pw is not None)
            self._principals[full] = (pw, keytabs)
        if was_running:
            self.start()

    # ------------------------------------------------------------ clients
    def new_ccache(self, user="cc"):
        self._ccache_seq += 1
        return "FILE:" + self._p("ccache", f"{user}.{self._ccache_seq}")

    def kinit(self, user, password=None, ccache=None, extra_args=(), time_offset=None,
              services=(), keytab=None):
        """Non-interactive kinit of user into ccache (default: a new private FILE
        ccache); password defaults to the one the user was created with, or use
        keytab= for kinit -k -t.  services: principals (e.g. kdc.service) whose
        tickets to fetch now (kvno).  time_offset: seconds to add to the
        client's clock for every later use of this ccache (see module doc).
        Returns the ccache name ("FILE:/...")."""
        if ccache is None:
            ccache = self.new_ccache(user)
        env = self._client_base_env()
        env["KRB5CCNAME"] = ccache
        princ = self.principal(user)
        if keytab:
            run(["kinit", "-k", "-t", keytab, *extra_args, princ], env=env, what="kinit")
        else:
            if password is None:
                password = self.users[user.split("@")[0]]
            run(["kinit", *extra_args, princ], env=env, input=(password + "\n").encode(),
                what="kinit")
        for svc in services:
            run(["kvno", "-c", ccache, self.principal(svc)], env=env, what="kvno")
        if time_offset is not None:
            set_ccache_time_offset(ccache, time_offset)
        return ccache

    def _client_base_env(self):
        env = dict(os.environ)
        for k in ("KRB5_KTNAME", "KRB5_CLIENT_KTNAME", "KRB5CCNAME", "KRB5_TRACE"):
            env.pop(k, None)
        env["KRB5_CONFIG"] = self.krb5_conf
        env["KRB5RCACHEDIR"] = self.rcache_dir
        return env

    def client_env(self, user=None, ccache="FILE", time_offset=None, services=None,
                   password=None, base=None):
        """Environment (a full copy of base/os.environ) for a client process
        (curl, python-gssapi) acting as user.

        ccache="FILE": kinit now into a new private FILE ccache.
        ccache="MEMORY": no kinit now; KRB5CCNAME=MEMORY:... plus
          KRB5_CLIENT_KTNAME=<user's client keytab>, so the GSS library of the
          client process gets its TGT from the keytab on first use and keeps
          every ticket in memory (cheap init_sec_context: benchmarks).
        any other string: kinit into that ccache name.
        user=None: no credentials at all (an empty FILE ccache).
        time_offset: the client's clock is this many seconds off (FILE only;
          see the module doc).  The service ticket for kdc.service is fetched
          first unless services= says otherwise.  For a negative offset the
          client gets a krb5.conf with a larger clockskew, or it would refuse
          its own "not yet valid" tickets before sending anything."""
        env = dict(base if base is not None else os.environ)
        for k in ("KRB5_KTNAME", "KRB5_CLIENT_KTNAME", "KRB5CCNAME", "KRB5_TRACE",
                  "KRB5_KDC_PROFILE"):
            env.pop(k, None)
        env["KRB5_CONFIG"] = self.krb5_conf
        env["KRB5RCACHEDIR"] = self.rcache_dir
        if user is None:
            env["KRB5CCNAME"] = self.new_ccache("nobody")
            return env
        if ccache == "MEMORY":
            if time_offset is not None:
                raise ValueError("time_offset needs a FILE ccache")
            env["KRB5CCNAME"] = f"MEMORY:authgate-{user}"
            env["KRB5_CLIENT_KTNAME"] = "FILE:" + self.user_keytab(user)
            return env
        if services is None:
            services = [self.service] if time_offset is not None else []
        env["KRB5CCNAME"] = self.kinit(user, password=password,
                                       ccache=None if ccache == "FILE" else ccache,
                                       time_offset=time_offset, services=services)
        if time_offset is not None and time_offset < 0:
            env["KRB5_CONFIG"] = self.client_krb5_config(-time_offset + 300)
        return env

    def expired_client_env(self, user, lifetime=2):
        """Client env whose ticket for kdc.service has expired (the acceptor
        says KRB5KRB_AP_ERR_TKT_EXPIRED, "Ticket expired").  Needs a KDC made
        with a small clockskew (Kdc(clockskew=2)); sleeps lifetime+clockskew+1 s."""
        if self.clockskew is None or self.clockskew > 5:
            raise ValueError("expired_client_env needs Kdc(clockskew<=5)")
        ccache = self.kinit(user, extra_args=["-l", f"{lifetime}s"], services=[self.service])
        wait = lifetime + self.clockskew + 1
        time.sleep(wait)
        # The client must still believe the ticket valid, or it will not send it.
        set_ccache_time_offset(ccache, -wait)
        env = self.client_env(None)
        env["KRB5CCNAME"] = ccache
        env["KRB5_CONFIG"] = self.client_krb5_config(wait + 60)
        return env

    def chown_keytab(self, uid, gid=-1):
        """Let a gateway that drops root read its keytab (MIT reads it on
        every accept).  The replay cache directory is already 1777."""
        os.chown(self.keytab, uid, gid)

    def client_krb5_config(self, clockskew):
        """KRB5_CONFIG value for a client that tolerates `clockskew` seconds
        (a small file that overrides [libdefaults] clockskew, then krb5.conf)."""
        path = self._p(f"krb5-clockskew-{int(clockskew)}.conf")
        with open(path, "w") as f:
            f.write(f"[libdefaults]\n    clockskew = {int(clockskew)}\n")
        return f"{path}:{self.krb5_conf}"


def sockets_on_port(port, ip="127.0.0.1"):
    """Number of TCP listeners plus UDP sockets bound to ip:port (this netns)."""
    want = "".join(f"{int(b):02X}" for b in reversed(ip.split(".")))
    n = 0
    for path, state in (("/proc/net/tcp", "0A"), ("/proc/net/udp", None)):
        with open(path) as f:
            next(f)
            for line in f:
                fields = line.split()
                addr, hexport = fields[1].split(":")
                if (int(hexport, 16) == port and addr == want
                        and (state is None or fields[3] == state)):
                    n += 1
    return n


def set_ccache_time_offset(ccache, seconds, usec=0):
    """Rewrite the KDC-time-offset header field of a FILE ccache (format 0x0504).

    MIT krb5 (kdc_timesync on) loads it into the krb5 context whenever the
    ccache header is read and adds it to "now" for authenticators, so the
    client behaves as if its clock were `seconds` off.
    """
    path = ccache[5:] if ccache.startswith("FILE:") else ccache
    with open(path, "rb") as f:
        data = f.read()
    version, hlen = struct.unpack(">HH", data[:4])
    if version != 0x0504:
        raise PeerError(f"{path}: ccache format {version:#x}, need 0x0504")
    header = data[4:4 + hlen]
    fields = []
    off = 0
    while off + 4 <= len(header):
        tag, flen = struct.unpack(">HH", header[off:off + 4])
        if tag != 1:  # keep other tags, replace DeltaTime
            fields.append(header[off:off + 4 + flen])
        off += 4 + flen
    fields.insert(0, struct.pack(">HHiI", 1, 8, int(seconds), int(usec)))
    new_header = b"".join(fields)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack(">HH", 0x0504, len(new_header)) + new_header + data[4 + hlen:])
    os.chmod(path + ".tmp", os.stat(path).st_mode & 0o777)
    os.replace(path + ".tmp", path)
