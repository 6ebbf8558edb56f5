"""The gateway's access log, read by field name.

exchange_log (src/server/exchange.c) writes one line per request in Squid's
native format (access_log_format squid, the default):

   time.ms duration_ms client result/status bytes method url user hierarchy/upstream content_type

access_log_format json writes the same facts as one object per line, under
the names used here (plus conn). parse_access returns the Squid line as a
dict under those names, every value the text as written (status "200").
"""

import re

SQUID_LINE = re.compile(
    r"^(?P<time>\d{9,}\.\d{3})\s+(?P<duration_ms>\d+) (?P<client>\S+) "
    r"(?P<result>[A-Z_]+)/(?P<status>\d{3}) (?P<bytes>\d+) (?P<method>\S+) (?P<url>\S+) "
    r"(?P<user>\S+) (?P<hierarchy>[A-Z_]+)/(?P<upstream>\S+) (?P<content_type>\S+)$")


def parse_access(line):
    """One Squid native access-log line as {field: text}."""
    m = SQUID_LINE.match(line)
    assert m, "not a Squid native access-log line: %r" % line
    return m.groupdict()


def access_records(lines):
    """parse_access over lines (what Gateway.wait_access_log returns)."""
    return [parse_access(l) for l in lines]


def result_status(rec):
    """The column Squid writes as result/status: "TCP_MISS/200"."""
    return "%s/%s" % (rec["result"], rec["status"])
