/* target.h - request-target parsing for a forward proxy (RFC 9112 §3.2).
 *
 * Absolute-form "http://host[:port]/path?q" for ordinary requests and
 * authority-form "host:port" for CONNECT. Userinfo, other schemes, bad
 * hosts and ports are refused. Pure; any thread.
 */
#ifndef AG_HTTP_TARGET_H
#define AG_HTTP_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "authgate/limits.h"

struct ag_target {
    char host[AG_HOST_MAX + 1]; /* lower-cased; IPv6 without brackets */
    uint16_t port;
    bool ipv6;                  /* host is an IPv6 literal */
    const char *path;           /* borrowed from the input: origin-form "/..." (query kept) */
    size_t path_len;            /* 0 means "/" */
};

/* AG_EINVAL for anything but a well-formed http:// absolute URI. */
int ag_target_parse_absolute(const char *url, size_t len, struct ag_target *t);
/* AG_EINVAL unless "host:port" with a port 1..65535. */
int ag_target_parse_authority(const char *s, size_t len, struct ag_target *t);
/* The path of an origin-form target as an origin would see it, for access
 * rules: query cut off, %XX decoded (except %2F, which stays a byte of a
 * segment), dot segments removed (RFC 3986 §5.2.4), repeated slashes
 * folded. out holds at least len + 2 bytes; returns the length. Pure. */
size_t ag_path_normalize(const char *in, size_t len, char *out);

/* "host:port" or "[v6]:port" into out (always terminated). */
void ag_target_authority(const struct ag_target *t, char *out, size_t cap);

#endif
