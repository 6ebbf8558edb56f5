/* addrkey.h - the key under which a client address is counted by the
 * failure throttle and the per-address handshake cap.
 *
 * One host owns at least a whole IPv6 /64 (SLAAC, privacy addresses) and
 * could otherwise rotate through it to look like millions of clients; an
 * IPv4-mapped IPv6 address is the IPv4 host it maps. So: IPv4 as is,
 * IPv4-mapped IPv6 as its IPv4 text, any other IPv6 as "<prefix>::/64", and
 * text that is not an address (never from the socket) as given, cut at
 * AG_ADDR_KEY_MAX bytes. Pure, thread-safe.
 */
#ifndef AG_SESSION_ADDRKEY_H
#define AG_SESSION_ADDRKEY_H

#include <stddef.h>

/* Longest key: "ffff:ffff:ffff:ffff::/64" is 24; unparsed text is cut. */
#define AG_ADDR_KEY_MAX 63

/* Writes the key of addr into out (NUL-terminated) and returns its length. */
size_t ag_addr_key(const char *addr, char out[AG_ADDR_KEY_MAX + 1]);

#endif
