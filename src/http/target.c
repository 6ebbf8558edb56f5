/* target.c - absolute-form and authority-form parsing (see target.h).
 * Input is untrusted: every index is checked against len. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "authgate/err.h"
#include "target.h"
#include "util/addr.h"
#include "util/util.h"

/* ---- canonical host --------------------------------------------------------- */

static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

/* WHATWG "IPv4 number parser" for one label: 0x/0X hex (digits may be
 * absent: "0x" is 0), a leading 0 octal, else decimal. Values above 2^32
 * saturate there (the caller refuses them). -1 when not a number. */
static int64_t ipv4_number(const char *s, size_t n)
{
    unsigned radix = 10;
    if (n == 0)
        return -1;
    if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        radix = 16;
        s += 2;
        n -= 2;
    } else if (n >= 2 && s[0] == '0') {
        radix = 8;
        s++;
        n--;
    }
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        int d = ag_hexval(s[i]);
        if (d < 0 || (unsigned)d >= radix)
            return -1;
        v = v * radix + d;
        if (v > 0x100000000LL)
            v = 0x100000000LL;
    }
    return v;
}

/* WHATWG "ends in a number": the last label (a single trailing dot
 * ignored) is all decimal digits or a valid 0x number. Such a host is an
 * IPv4 address or nothing. name has no empty label except a final one. */
static bool ends_in_number(const char *name, size_t n)
{
    if (n && name[n - 1] == '.')
        n--;
    size_t s = n;
    while (s && name[s - 1] != '.')
        s--;
    const char *last = name + s;
    size_t ll = n - s, i = 0;
    while (i < ll && last[i] >= '0' && last[i] <= '9')
        i++;
    if (ll && i == ll)
        return true;
    return ll >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') &&
           ipv4_number(last, ll) >= 0;
}

/* WHATWG "IPv4 parser" over the labels of name[0..n) (one trailing dot
 * allowed): 1 to 4 numbers, every one but the last below 256, the last
 * below 256^(5 - count). */
static int ipv4_parse(const char *name, size_t n, uint32_t *out)
{
    if (n && name[n - 1] == '.')
        n--;
    int64_t parts[4];
    size_t count = 0;
    for (size_t s = 0; s <= n;) {
        size_t e = s;
        while (e < n && name[e] != '.')
            e++;
        if (count == 4)
            return AG_EINVAL;
        if ((parts[count++] = ipv4_number(name + s, e - s)) < 0)
            return AG_EINVAL;
        s = e + 1;
    }
    for (size_t i = 0; i + 1 < count; i++)
        if (parts[i] > 255)
            return AG_EINVAL;
    if (parts[count - 1] >= (int64_t)1 << (8 * (5 - count)))
        return AG_EINVAL;
    uint64_t v = (uint64_t)parts[count - 1];
    for (size_t i = 0; i + 1 < count; i++)
        v += (uint64_t)parts[i] << (8 * (3 - i));
    *out = (uint32_t)v;
    return 0;
}

static int put_ipv4(const uint8_t a[4], char *out, size_t cap)
{
    char t[AG_IPV4_TEXT_MAX];
    size_t n = ag_ipv4_text(a, t);
    if (n >= cap)
        return AG_ELIMIT;
    memcpy(out, t, n + 1);
    return (int)n;
}

/* RFC 5952 §4: lower-case hex, no leading zeros, the longest run of two or
 * more zero groups (the first of equals) as "::". */
static int put_ipv6(const uint8_t a[16], char *out, size_t cap)
{
    unsigned g[8];
    for (int i = 0; i < 8; i++)
        g[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
    int best = -1, best_len = 1;
    for (int i = 0; i < 8;) {
        int j = i;
        while (j < 8 && g[j] == 0)
            j++;
        if (j - i > best_len) {
            best = i;
            best_len = j - i;
        }
        i = j > i ? j : i + 1;
    }
    char buf[48];
    size_t o = 0;
    for (int i = 0; i < 8; i++) {
        if (i == best) {
            buf[o++] = ':';
            buf[o++] = ':';
            i += best_len - 1;
            continue;
        }
        if (o && buf[o - 1] != ':')
            buf[o++] = ':';
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%x", g[i]);
    }
    buf[o] = '\0';
    if (o >= cap)
        return AG_ELIMIT;
    memcpy(out, buf, o + 1);
    return (int)o;
}

int ag_host_canon(const char *in, size_t len, char *out, size_t cap, enum ag_host_kind *kind)
{
    if (len == 0)
        return AG_EINVAL;
    if (in[0] == '[') {
        /* Bracketed: an IPv6 address and nothing else (no zone id: "%" is
         * not in inet_pton's alphabet). */
        char v6[64];
        uint8_t a[16];
        if (len < 3 || in[len - 1] != ']' || len - 2 >= sizeof v6)
            return AG_EINVAL;
        memcpy(v6, in + 1, len - 2);
        v6[len - 2] = '\0';
        if (inet_pton(AF_INET6, v6, a) != 1)
            return AG_EINVAL;
        if (ag_addr_v4mapped(a)) {
            int n = put_ipv4(a + AG_V4MAPPED_PREFIX_LEN, out, cap);
            if (n > 0)
                *kind = AG_HOST_IPV4;
            return n;
        }
        int n = put_ipv6(a, out, cap);
        if (n > 0)
            *kind = AG_HOST_IPV6;
        return n;
    }
    if (len > AG_HOST_MAX + 1)
        return AG_EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (!host_char(in[i]))
            return AG_EINVAL;
        /* Empty labels: a leading dot, two dots in a row, or a final dot
         * after another ("secret.test.."): no browser or resolver spelling
         * needs them, and they are how a name slips past host= rules. */
        if (in[i] == '.' && (i == 0 || in[i - 1] == '.'))
            return AG_EINVAL;
    }
    if (ends_in_number(in, len)) {
        uint32_t v;
        if (ipv4_parse(in, len, &v) != 0)
            return AG_EINVAL;
        uint8_t a[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
        int n = put_ipv4(a, out, cap);
        if (n > 0)
            *kind = AG_HOST_IPV4;
        return n;
    }
    /* "www.example.com." is the same host as "www.example.com". */
    size_t n = in[len - 1] == '.' ? len - 1 : len;
    if (n > AG_HOST_MAX)
        return AG_EINVAL;
    if (n >= cap)
        return AG_ELIMIT;
    for (size_t i = 0; i < n; i++)
        out[i] = ag_ascii_lower(in[i]);
    out[n] = '\0';
    *kind = AG_HOST_NAME;
    return (int)n;
}

bool ag_addr_this_network(const struct sockaddr *sa)
{
    static const uint8_t zero[16];
    const uint8_t *a;
    switch (ag_addr_bytes(sa, &a)) {
    case AF_INET:
        return a[0] == 0;
    case AF_INET6:
        return memcmp(a, zero, sizeof zero) == 0;
    default:
        return false;
    }
}

/* ---- request targets -------------------------------------------------------- */

/* Parses host[:port] in s[0..len); default_port 0 means the port is required. */
static int parse_hostport(const char *s, size_t len, uint16_t default_port, struct ag_target *t)
{
    size_t he, i;
    if (len == 0)
        return AG_EINVAL;
    if (s[0] == '[') {
        const char *rb = memchr(s, ']', len);
        if (!rb)
            return AG_EINVAL;
        he = (size_t)(rb - s) + 1;
    } else {
        const char *colon = memchr(s, ':', len);
        he = colon ? (size_t)(colon - s) : len;
    }
    enum ag_host_kind kind;
    if (ag_host_canon(s, he, t->host, sizeof t->host, &kind) < 0)
        return AG_EINVAL;
    t->ipv6 = kind == AG_HOST_IPV6;
    i = he;
    if (i == len) {
        if (!default_port)
            return AG_EINVAL;
        t->port = default_port;
        return 0;
    }
    if (s[i] != ':' || i + 1 == len)
        return AG_EINVAL;
    unsigned long port = 0;
    size_t digits = 0;
    for (i++; i < len; i++, digits++) {
        if (s[i] < '0' || s[i] > '9' || digits >= 5)
            return AG_EINVAL;
        port = port * 10 + (unsigned long)(s[i] - '0');
    }
    if (port == 0 || port > 65535)
        return AG_EINVAL;
    t->port = (uint16_t)port;
    return 0;
}
int ag_target_parse_absolute(const char *url, size_t len, struct ag_target *t)
{
    static const char scheme[] = "http://";
    const size_t sl = sizeof scheme - 1;
    if (len < sl)
        return AG_EINVAL;
    for (size_t i = 0; i < sl; i++) {
        if (ag_ascii_lower(url[i]) != scheme[i])
            return AG_EINVAL;
    }
    const char *auth = url + sl;
    size_t rest = len - sl, al = 0;
    while (al < rest && auth[al] != '/' && auth[al] != '?' && auth[al] != '#')
        al++;
    /* Userinfo is refused outright (RFC 9110 §4.2.4): it is a phishing device
     * and would otherwise be forwarded as part of the host. */
    if (memchr(auth, '@', al))
        return AG_EINVAL;
    struct ag_target tmp;
    if (parse_hostport(auth, al, 80, &tmp) != 0)
        return AG_EINVAL;
    const char *path = auth + al;
    size_t pl = rest - al;
    const char *frag = memchr(path, '#', pl);
    if (frag)
        pl = (size_t)(frag - path);
    tmp.path = path;
    tmp.path_len = pl;
    *t = tmp;
    return 0;
}

int ag_target_parse_authority(const char *s, size_t len, struct ag_target *t)
{
    struct ag_target tmp;
    if (parse_hostport(s, len, 0, &tmp) != 0)
        return AG_EINVAL;
    tmp.path = NULL;
    tmp.path_len = 0;
    *t = tmp;
    return 0;
}

void ag_target_authority(const struct ag_target *t, char *out, size_t cap)
{
    if (t->ipv6)
        snprintf(out, cap, "[%s]:%u", t->host, t->port);
    else
        snprintf(out, cap, "%s:%u", t->host, t->port);
}

/* Appends n bytes at *o, truncating at cap - 1 (room for the NUL). */
static void put(char *out, size_t cap, size_t *o, const char *s, size_t n)
{
    if (*o + 1 >= cap)
        return;
    if (n > cap - 1 - *o)
        n = cap - 1 - *o;
    memcpy(out + *o, s, n);
    *o += n;
}

/* Built by copies, not snprintf: it runs for every request (the access
 * log's URL, a parent's request line). */
void ag_target_url(const struct ag_target *t, char *out, size_t cap)
{
    if (!cap)
        return;
    size_t o = 0;
    put(out, cap, &o, "http://", 7);
    if (t->ipv6)
        put(out, cap, &o, "[", 1);
    put(out, cap, &o, t->host, strlen(t->host));
    if (t->ipv6)
        put(out, cap, &o, "]", 1);
    if (t->port != 80) {
        char d[6];
        size_t i = sizeof d;
        unsigned v = t->port;
        do {
            d[--i] = (char)('0' + v % 10);
            v /= 10;
        } while (v);
        d[--i] = ':';
        put(out, cap, &o, d + i, sizeof d - i);
    }
    if (t->path_len)
        put(out, cap, &o, t->path, t->path_len);
    else
        put(out, cap, &o, "/", 1);
    out[o] = '\0';
}

/* ---- the path path= rules see ---------------------------------------------- */

/* The next byte of the path as an origin decodes it: a valid %XX is its
 * byte (decoded once: "%252e" stays "%2e"), anything else itself. */
static char path_byte(const char *in, size_t len, size_t *i)
{
    int h, l;
    char c = in[*i];
    if (c == '%' && *i + 2 < len && (h = ag_hexval(in[*i + 1])) >= 0 &&
        (l = ag_hexval(in[*i + 2])) >= 0) {
        *i += 3;
        return (char)(h * 16 + l);
    }
    (*i)++;
    return c;
}

size_t ag_path_normalize(const char *in, size_t len, char *out)
{
    size_t cut = 0;
    while (cut < len && in[cut] != '?' && in[cut] != '#')
        cut++;
    len = cut;
    /* out[0..o) always ends with "/": each segment is decoded straight
     * into place after it, then kept (with its own "/" when a separator
     * follows), dropped (".", empty) or dropped with its parent (".."). */
    size_t o = 0, i = 0;
    out[o++] = '/';
    while (i < len) {
        size_t seg = o;
        bool sep = false;
        while (i < len) {
            char c = path_byte(in, len, &i);
            /* IIS takes "\" for "/"; %2F and %5C are separators too, so an
             * encoded slash can never hide "/admin/" inside one segment. */
            if (c == '/' || c == '\\') {
                sep = true;
                break;
            }
            out[o++] = c;
        }
        /* ";name=value" belongs to the segment (Tomcat, RFC 2396 params):
         * "/admin;x=1/" is "/admin/", "/..;/" is "/../". */
        const char *semi = memchr(out + seg, ';', o - seg);
        size_t sl = semi ? (size_t)(semi - (out + seg)) : o - seg;
        o = seg;
        if (sl == 0 || (sl == 1 && out[seg] == '.'))
            continue;
        if (sl == 2 && out[seg] == '.' && out[seg + 1] == '.') {
            if (o > 1) {
                o--; /* the slash ending the parent */
                while (out[o - 1] != '/')
                    o--;
            }
            continue;
        }
        o += sl;
        if (sep)
            out[o++] = '/';
    }
    out[o] = '\0';
    return o;
}
