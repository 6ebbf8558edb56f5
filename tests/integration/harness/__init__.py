"""Integration-test harness for authgate: origin servers, the gateway process,
raw HTTP/1.1 sockets and a curl wrapper. Everything listens on loopback only.

  gateway.py      the daemon under test (start, logs, reload, stop)
  origin.py       origin servers, TLS and echo servers
  rawhttp.py      raw HTTP/1.1 client sockets
  tools.py        curl, TLS material, closed ports, wait_until, assertions
  accesslog.py    access-log lines by field name
  ntlm_client.py  Basic / NTLM credentials and the NTLMSSP client
  ctl_client.py   the status socket and authgatectl
  procs.py        process inspection through /proc
  auth.py         gateways with the local user file or winbindd (AuthEnv)
  browser.py      headless Chromium over the DevTools protocol
"""
