"""Integration-test harness for authgate: origin servers, the gateway process,
raw HTTP/1.1 sockets and a curl wrapper. Everything listens on loopback only."""
