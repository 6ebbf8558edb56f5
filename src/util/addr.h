/* addr.h - client and network addresses: the bytes a rule matches, CIDR
 * networks, and an address as log text.
 *
 * Glossary: v4-mapped = ::ffff:a.b.c.d, an IPv4 address carried in IPv6
 * (RFC 4291 §2.5.5.2), matched as that IPv4 address everywhere (a
 * dual-stack socket shows IPv4 clients that way). Shared by access rules
 * (src= and dst=) and the config (proxy_protocol_from). Pure; any thread.
 */
#ifndef AG_UTIL_ADDR_H
#define AG_UTIL_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The 12-byte prefix of a v4-mapped address; the IPv4 address follows. */
#define AG_V4MAPPED_PREFIX_LEN 12

/* True when the 16 IPv6 address bytes a are v4-mapped. */
bool ag_addr_v4mapped(const uint8_t a[16]);

/* The address bytes of sa for matching: a v4-mapped address is its IPv4
 * address. Returns AF_INET (4 bytes at *a), AF_INET6 (16 bytes) or 0 for
 * another family. *a borrows from sa. */
int ag_addr_bytes(const struct sockaddr *sa, const uint8_t **a);

/* The dotted quad of the 4 bytes a into out (NUL-terminated); its length.
 * By hand, not printf: every new client and every request naming an IPv4
 * host is written this way. */
#define AG_IPV4_TEXT_MAX 16
size_t ag_ipv4_text(const uint8_t a[4], char out[AG_IPV4_TEXT_MAX]);

/* sa's address (no port) as text into out: "192.0.2.1", "2001:db8::1";
 * "-" for another family. Always NUL-terminated (cap >= 2). */
void ag_addr_text(const struct sockaddr *sa, char *out, size_t cap);

/* A network: family AF_INET or AF_INET6, the first bits of a. */
struct ag_cidr {
    int family;
    uint8_t a[16];
    unsigned bits;
};

/* "192.0.2.0/24", "2001:db8::/32" or a bare address (a host network).
 * ::ffff:a.b.c.d/96+n is stored as the IPv4 network a.b.c.d/n, since
 * addresses are matched in their IPv4 form. 0 or AG_EINVAL. */
int ag_cidr_parse(const char *s, struct ag_cidr *out);
/* True when sa (IPv4, IPv6 or v4-mapped) lies in c. */
bool ag_cidr_match(const struct ag_cidr *c, const struct sockaddr *sa);

#endif
