/* addr.c - address bytes, CIDR networks, address text (see addr.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authgate/err.h"
#include "util/addr.h"

static const uint8_t v4mapped[AG_V4MAPPED_PREFIX_LEN] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool ag_addr_v4mapped(const uint8_t a[16])
{
    return memcmp(a, v4mapped, sizeof v4mapped) == 0;
}

int ag_addr_bytes(const struct sockaddr *sa, const uint8_t **a)
{
    if (sa->sa_family == AF_INET) {
        *a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
        return AF_INET;
    }
    if (sa->sa_family != AF_INET6)
        return 0;
    const uint8_t *b = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (ag_addr_v4mapped(b)) {
        *a = b + AG_V4MAPPED_PREFIX_LEN;
        return AF_INET;
    }
    *a = b;
    return AF_INET6;
}

size_t ag_ipv4_text(const uint8_t a[4], char out[AG_IPV4_TEXT_MAX])
{
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        unsigned v = a[i];
        if (i)
            out[n++] = '.';
        if (v >= 100)
            out[n++] = (char)('0' + v / 100);
        if (v >= 10)
            out[n++] = (char)('0' + v / 10 % 10);
        out[n++] = (char)('0' + v % 10);
    }
    out[n] = '\0';
    return n;
}

void ag_addr_text(const struct sockaddr *sa, char *out, size_t cap)
{
    const void *a = NULL;
    if (sa->sa_family == AF_INET) {
        char t[AG_IPV4_TEXT_MAX];
        size_t n = ag_ipv4_text((const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr, t);
        if (n < cap) {
            memcpy(out, t, n + 1);
            return;
        }
    } else if (sa->sa_family == AF_INET6)
        a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (!a || !inet_ntop(sa->sa_family, a, out, (socklen_t)cap))
        snprintf(out, cap, "-");
}

int ag_cidr_parse(const char *s, struct ag_cidr *c)
{
    char buf[64];
    if (strlen(s) >= sizeof buf)
        return AG_EINVAL;
    snprintf(buf, sizeof buf, "%s", s);
    char *slash = strchr(buf, '/');
    long bits = -1;
    if (slash) {
        *slash = '\0';
        char *end;
        bits = strtol(slash + 1, &end, 10);
        if (*end || end == slash + 1 || bits < 0)
            return AG_EINVAL;
    }
    memset(c, 0, sizeof *c);
    if (inet_pton(AF_INET, buf, c->a) == 1) {
        c->family = AF_INET;
        c->bits = bits < 0 ? 32 : (unsigned)bits;
        return c->bits <= 32 ? 0 : AG_EINVAL;
    }
    if (inet_pton(AF_INET6, buf, c->a) == 1) {
        c->family = AF_INET6;
        if (bits > 128)
            return AG_EINVAL;
        c->bits = bits < 0 ? 128 : (unsigned)bits;
        /* ::ffff:a.b.c.d/96+n is the IPv4 network a.b.c.d/n: addresses are
         * matched in their IPv4 form (ag_addr_bytes), so must the network. */
        if (c->bits >= 96 && ag_addr_v4mapped(c->a)) {
            memmove(c->a, c->a + AG_V4MAPPED_PREFIX_LEN, 4);
            memset(c->a + 4, 0, 12);
            c->family = AF_INET;
            c->bits -= 96;
        }
        return 0;
    }
    return AG_EINVAL;
}

bool ag_cidr_match(const struct ag_cidr *c, const struct sockaddr *sa)
{
    const uint8_t *a = NULL;
    if (ag_addr_bytes(sa, &a) != c->family)
        return false;
    unsigned full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(a, c->a, full) != 0)
        return false;
    if (rest) {
        uint8_t mask = (uint8_t)(0xff << (8 - rest));
        if ((a[full] & mask) != (c->a[full] & mask))
            return false;
    }
    return true;
}
