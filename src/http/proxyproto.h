/* proxyproto.h - the PROXY protocol header a load balancer sends before a
 * client's first byte (HAProxy's spec, "The PROXY protocol", versions 1
 * and 2), carrying the client's address across the balancer's own TCP
 * connection.
 *
 * Glossary: v1 = one text line "PROXY TCP4|TCP6|UNKNOWN ...\r\n" of at most
 * 107 bytes; v2 = a 16-byte binary header (12-byte signature, version and
 * command, family and transport, length) then the addresses and TLVs;
 * LOCAL = a v2 connection the balancer made itself (a health check), whose
 * address is the connection's own, as for v1 UNKNOWN and v2 AF_UNSPEC.
 *
 * The parser is pure and bounded: it reads only [0, len) of the bytes
 * received so far, through the cursor, never more than max bytes, and says
 * "need more" until a whole header is there. Any thread.
 */
#ifndef AG_HTTP_PROXYPROTO_H
#define AG_HTTP_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* v1's longest line, CRLF included ("PROXY TCP6 " + two 39-byte addresses
 * + two 5-digit ports + blanks + CRLF), fixed by the spec. */
#define AG_PROXY_V1_MAX 107
/* v2's fixed part: signature, version/command, family, length. */
#define AG_PROXY_V2_HEAD 16

struct ag_proxy_header {
    int version; /* 1 or 2 */
    bool local;  /* LOCAL, UNKNOWN or AF_UNSPEC: keep the connection's address */
    struct sockaddr_storage src, dst; /* the client and the address it reached (not local) */
    size_t len;                       /* header bytes: the HTTP request starts after them */
};

/* Parses the header at the start of p[0..len), at most max bytes long
 * (v1 lines are capped at AG_PROXY_V1_MAX whatever max says). Returns
 *   0           a whole header: *out filled (out->len bytes are the header)
 *   AG_EAGAIN   every byte so far is a valid beginning: read more
 *   AG_EINVAL   not a valid header (*why says what, static text)
 *   AG_ELIMIT   longer than the ceiling
 * *out is written only on 0; *why only on an error. */
int ag_proxy_parse(const uint8_t *p, size_t len, size_t max, struct ag_proxy_header *out,
                   const char **why);

#endif
