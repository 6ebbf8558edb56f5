/* proxyproto.c - the PROXY protocol v1/v2 header parser (see proxyproto.h).
 *
 * Strict where the spec leaves room: v1 fields are separated by exactly
 * one space, ports have no leading zero, addresses are what inet_pton
 * takes for the named family; v2 TLVs must exactly fill the block the
 * length announces. A balancer never sends anything else, and anything
 * else reaching a listener that trusts the header is an attack. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "authgate/err.h"
#include "proxyproto.h"
#include "util/cursor.h"
#include "util/util.h"

static const uint8_t v1_sig[6] = {'P', 'R', 'O', 'X', 'Y', ' '};
static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* v2 fields (spec section 2.2). */
#define V2_VERSION 0x2
#define V2_CMD_LOCAL 0x0
#define V2_CMD_PROXY 0x1
#define V2_UNSPEC 0x00   /* AF_UNSPEC, UNSPEC: no address to take */
#define V2_TCP4 0x11     /* AF_INET, STREAM */
#define V2_TCP6 0x21     /* AF_INET6, STREAM */
#define V2_TCP4_ADDRS 12 /* src, dst (4 each), src port, dst port */
#define V2_TCP6_ADDRS 36 /* src, dst (16 each), src port, dst port */
#define V2_TLV_HEAD 3    /* type, length (16 bits) */
/* v1 text fields: an IPv6 address is at most 39 characters (45 with an
 * embedded IPv4, which inet_pton takes), a port at most 5 digits. */
#define V1_ADDR_MAX 45
#define V1_PORT_MAX 5

static int bad(const char **why, const char *what)
{
    *why = what;
    return AG_EINVAL;
}

/* The next v1 field: bytes up to a space or the end of the line, then that
 * one space. Empty fields (two spaces, a trailing space) are refused. */
static bool v1_field(struct ag_cursor *c, const uint8_t **f, size_t *n)
{
    size_t start = c->off, end = start;
    while (end < c->len && c->p[end] != ' ')
        end++;
    if (end == start)
        return false;
    *f = c->p + start;
    *n = end - start;
    c->off = end;
    if (c->off < c->len) {
        ag_cur_skip(c, 1);
        if (c->off == c->len) /* a space before the CRLF */
            return false;
    }
    return true;
}

static bool v1_addr(struct ag_cursor *c, int family, struct sockaddr_storage *ss)
{
    const uint8_t *f;
    size_t n;
    char text[V1_ADDR_MAX + 1];
    if (!v1_field(c, &f, &n) || n > V1_ADDR_MAX)
        return false;
    memcpy(text, f, n);
    text[n] = '\0';
    memset(ss, 0, sizeof *ss);
    ss->ss_family = (sa_family_t)family;
    void *dst = family == AF_INET ? (void *)&((struct sockaddr_in *)ss)->sin_addr
                                  : (void *)&((struct sockaddr_in6 *)ss)->sin6_addr;
    return inet_pton(family, text, dst) == 1;
}

static bool v1_port(struct ag_cursor *c, uint16_t *port)
{
    const uint8_t *f;
    size_t n;
    uint64_t v;
    if (!v1_field(c, &f, &n) || n > V1_PORT_MAX || (n > 1 && f[0] == '0'))
        return false;
    if (ag_parse_dec((const char *)f, n, UINT16_MAX, &v) != 0)
        return false;
    *port = (uint16_t)v;
    return true;
}

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

static int parse_v1(const uint8_t *p, size_t len, struct ag_proxy_header *out, const char **why)
{
    size_t n = len < sizeof v1_sig ? len : sizeof v1_sig;
    if (memcmp(p, v1_sig, n) != 0)
        return bad(why, "not a PROXY header");
    /* The line ends at the first LF, preceded by CR; before it only
     * printable ASCII. */
    size_t scan = len < AG_PROXY_V1_MAX ? len : AG_PROXY_V1_MAX, lf = 0;
    for (size_t i = 0; i < scan && !lf; i++) {
        if (p[i] == '\n') {
            if (i == 0 || p[i - 1] != '\r')
                return bad(why, "v1: LF without CR");
            lf = i;
        } else if (p[i] == '\r') {
            if (i + 1 < scan && p[i + 1] != '\n')
                return bad(why, "v1: CR without LF");
        } else if (p[i] < 0x20 || p[i] > 0x7e) {
            return bad(why, "v1: control or non-ASCII byte");
        }
    }
    if (!lf) {
        if (len >= AG_PROXY_V1_MAX) {
            *why = "v1: line over 107 bytes";
            return AG_ELIMIT;
        }
        return AG_EAGAIN;
    }
    struct ag_cursor c;
    ag_cur_init(&c, p, lf - 1); /* the line without its CRLF */
    ag_cur_skip(&c, sizeof v1_sig);
    const uint8_t *proto;
    size_t pn;
    struct ag_proxy_header h = {.version = 1, .len = lf + 1};
    if (c.off < c.len && c.p[c.off] == ' ')
        return bad(why, "v1: bad protocol");
    /* "UNKNOWN" may be followed by anything (the spec says to ignore it). */
    if (c.len - c.off >= 7 && memcmp(c.p + c.off, "UNKNOWN", 7) == 0 &&
        (c.len - c.off == 7 || c.p[c.off + 7] == ' ')) {
        h.local = true;
        *out = h;
        return 0;
    }
    if (!v1_field(&c, &proto, &pn) || pn != 4 ||
        (memcmp(proto, "TCP4", 4) != 0 && memcmp(proto, "TCP6", 4) != 0))
        return bad(why, "v1: bad protocol");
    int family = proto[3] == '4' ? AF_INET : AF_INET6;
    uint16_t sport, dport;
    if (!v1_addr(&c, family, &h.src) || !v1_addr(&c, family, &h.dst))
        return bad(why, "v1: bad address");
    if (!v1_port(&c, &sport) || !v1_port(&c, &dport) || ag_cur_left(&c) != 0)
        return bad(why, "v1: bad port");
    set_port(&h.src, sport);
    set_port(&h.dst, dport);
    *out = h;
    return 0;
}

static void v2_addr(struct ag_cursor *c, int family, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    ss->ss_family = (sa_family_t)family;
    if (family == AF_INET)
        ag_cur_bytes(c, &((struct sockaddr_in *)ss)->sin_addr, 4);
    else
        ag_cur_bytes(c, &((struct sockaddr_in6 *)ss)->sin6_addr, 16);
}

static int parse_v2(const uint8_t *p, size_t len, size_t max, struct ag_proxy_header *out,
                    const char **why)
{
    size_t n = len < sizeof v2_sig ? len : sizeof v2_sig;
    if (memcmp(p, v2_sig, n) != 0)
        return bad(why, "v2: bad signature");
    if (len > sizeof v2_sig && (p[sizeof v2_sig] >> 4) != V2_VERSION)
        return bad(why, "v2: unknown version");
    if (len < AG_PROXY_V2_HEAD)
        return AG_EAGAIN;
    struct ag_cursor c;
    uint8_t vc = 0, fam = 0;
    uint16_t alen = 0; /* len >= AG_PROXY_V2_HEAD: the reads below succeed */
    ag_cur_init(&c, p, len);
    ag_cur_skip(&c, sizeof v2_sig);
    ag_cur_u8(&c, &vc);
    ag_cur_u8(&c, &fam);
    ag_cur_u16be(&c, &alen);
    uint8_t cmd = vc & 0x0f;
    if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY)
        return bad(why, "v2: unknown command");
    size_t total = AG_PROXY_V2_HEAD + (size_t)alen;
    if (total > max) {
        *why = "v2: header over the ceiling";
        return AG_ELIMIT;
    }
    if (len < total)
        return AG_EAGAIN;
    struct ag_proxy_header h = {.version = 2, .len = total};
    /* LOCAL: the balancer's own connection; its block is ignored whole. */
    if (cmd == V2_CMD_LOCAL || fam == V2_UNSPEC) {
        h.local = true;
        *out = h;
        return 0;
    }
    size_t need;
    int family;
    if (fam == V2_TCP4) {
        family = AF_INET;
        need = V2_TCP4_ADDRS;
    } else if (fam == V2_TCP6) {
        family = AF_INET6;
        need = V2_TCP6_ADDRS;
    } else {
        return bad(why, "v2: unsupported family or transport");
    }
    struct ag_cursor b; /* the block the length announces, nothing past it */
    ag_cur_init(&b, p + AG_PROXY_V2_HEAD, alen);
    if (ag_cur_left(&b) < need)
        return bad(why, "v2: address block too short");
    uint16_t sport = 0, dport = 0; /* the length check above makes every read succeed */
    v2_addr(&b, family, &h.src);
    v2_addr(&b, family, &h.dst);
    ag_cur_u16be(&b, &sport);
    ag_cur_u16be(&b, &dport);
    set_port(&h.src, sport);
    set_port(&h.dst, dport);
    /* TLVs (ALPN, authority, unique id, SSL details, CRC32c...): nothing
     * authgate uses, but each must fit, and they must fill the block. */
    while (ag_cur_left(&b) > 0) {
        uint8_t type;
        uint16_t vlen;
        if (!ag_cur_u8(&b, &type) || !ag_cur_u16be(&b, &vlen) || !ag_cur_skip(&b, vlen))
            return bad(why, "v2: malformed TLV");
    }
    *out = h;
    return 0;
}

int ag_proxy_parse(const uint8_t *p, size_t len, size_t max, struct ag_proxy_header *out,
                   const char **why)
{
    if (len == 0)
        return AG_EAGAIN;
    if (p[0] == v1_sig[0])
        return parse_v1(p, len, out, why);
    if (p[0] == v2_sig[0])
        return parse_v2(p, len, max, out, why);
    return bad(why, "not a PROXY header");
}
