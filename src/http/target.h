/* target.h - request-target parsing for a forward proxy (RFC 9112 §3.2).
 *
 * Absolute-form "http://host[:port]/path?q" for ordinary requests and
 * authority-form "host:port" for CONNECT. Userinfo, other schemes, bad
 * hosts and ports are refused. Pure; any thread.
 *
 * Glossary: canonical host = the one spelling of a host that access rules,
 * logs, the forwarded Host field and connect all use (ag_host_canon); rule
 * path = the path as an origin resolves it, for path= rules only
 * (ag_path_normalize); the forwarded request line keeps the client's bytes.
 */
#ifndef AG_HTTP_TARGET_H
#define AG_HTTP_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "authgate/limits.h"

struct ag_target {
    char host[AG_HOST_MAX + 1]; /* canonical (ag_host_canon); IPv6 without brackets */
    uint16_t port;
    bool ipv6;        /* host is an IPv6 literal */
    const char *path; /* borrowed from the input: origin-form "/..." (query kept) */
    size_t path_len;  /* 0 means "/" */
};

enum ag_host_kind { AG_HOST_NAME = 0, AG_HOST_IPV4, AG_HOST_IPV6 };

/* The canonical spelling of the host in[0..len), as a browser's URL parser
 * (WHATWG URL, "host parser") reads it, so that no other spelling of the
 * same host gets past a host= rule:
 *   "[v6]"   -> RFC 5952 text (lower case, the longest run of zero groups
 *               as "::"), no brackets; an IPv4-mapped address
 *               (::ffff:a.b.c.d) -> "a.b.c.d", kind IPV4;
 *   a name whose last label is a number (decimal, 0-octal or 0x-hex) ->
 *               an IPv4 address in any legacy form of 1 to 4 parts
 *               ("127.1", "2130706433", "0x7f.0.0.1", "0") -> dotted quad;
 *   other names -> lower case, one trailing dot removed.
 * Refused with AG_EINVAL: an empty label ("a..b", ".a", several trailing
 * dots), a character outside [A-Za-z0-9._-] (percent-encoding, non-ASCII:
 * an IDN comes as its A-label), a number WHATWG refuses ("1.2.3.4.5",
 * "256.1", "4294967296", "08", "1.2.x.4"), zone ids, more than
 * AG_HOST_MAX bytes. AG_ELIMIT when cap is too small (AG_HOST_MAX + 1
 * always suffices). out is always terminated on success; returns its
 * length (> 0). Pure. */
int ag_host_canon(const char *in, size_t len, char *out, size_t cap, enum ag_host_kind *kind);

/* True for an address no request may be sent to: 0.0.0.0/8 ("this host on
 * this network", RFC 1122 §3.2.1.3: never a destination) and :: (the
 * unspecified address), IPv4-mapped or not. Linux connects such a socket to
 * itself, which would carry a request to the gateway's loopback services
 * past every dst= rule. Pure. */
bool ag_addr_this_network(const struct sockaddr *sa);

/* AG_EINVAL for anything but a well-formed http:// absolute URI. */
int ag_target_parse_absolute(const char *url, size_t len, struct ag_target *t);
/* AG_EINVAL unless "host:port" with a port 1..65535. */
int ag_target_parse_authority(const char *s, size_t len, struct ag_target *t);
/* The path of an origin-form target as origins resolve it, for path=
 * rules: what IIS, Tomcat, Apache or nginx would serve as the same
 * resource must match the same rule. Query (and fragment) cut off; every
 * valid %XX decoded once; "/", backslash, %2F and %5C all separate segments
 * (an encoded slash never hides a segment boundary); ";parameters" cut
 * from each segment (Tomcat: "/admin;x=1/", "/..;/"); "." and ".."
 * segments removed (RFC 3986 §5.2.4, after decoding, so "%2e%2e" too);
 * repeated slashes folded. Letter case is kept: the caller compares with
 * or without it. Always starts with "/". out holds at least len + 2 bytes;
 * returns the length (out is terminated). Pure. */
size_t ag_path_normalize(const char *in, size_t len, char *out);

/* "host:port" or "[v6]:port" into out (always terminated). */
void ag_target_authority(const struct ag_target *t, char *out, size_t cap);
/* "http://host[:port]/path?query" with the canonical host (no ":80"), the
 * path as the client sent it; into out (always terminated, truncated to cap). */
void ag_target_url(const struct ag_target *t, char *out, size_t cap);

#endif
