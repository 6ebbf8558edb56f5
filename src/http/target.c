/* target.c - absolute-form and authority-form parsing (see target.h).
 * Input is untrusted: every index is checked against len. */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "authgate/err.h"
#include "target.h"
#include "util/util.h"

static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_';
}

/* Parses host[:port] in s[0..len); default_port 0 means the port is required. */
static int parse_hostport(const char *s, size_t len, uint16_t default_port, struct ag_target *t)
{
    size_t hs, he, i;
    if (len == 0)
        return AG_EINVAL;
    if (s[0] == '[') {
        const char *rb = memchr(s, ']', len);
        if (!rb)
            return AG_EINVAL;
        hs = 1;
        he = (size_t)(rb - s);
        i = he + 1;
        t->ipv6 = true;
    } else {
        hs = 0;
        for (i = 0; i < len && s[i] != ':'; i++)
            if (!host_char(s[i]))
                return AG_EINVAL;
        he = i;
        t->ipv6 = false;
    }
    size_t hl = he - hs;
    /* "www.example.com." is the same host as "www.example.com": one
     * spelling, so rules and logs cannot be sidestepped by the root dot. */
    if (!t->ipv6 && hl > 1 && s[he - 1] == '.')
        hl--;
    if (hl == 0 || hl > AG_HOST_MAX)
        return AG_EINVAL;
    for (size_t k = 0; k < hl; k++) {
        char c = s[hs + k];
        t->host[k] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    t->host[hl] = '\0';
    if (t->ipv6) {
        struct in6_addr a6;
        if (inet_pton(AF_INET6, t->host, &a6) != 1)
            return AG_EINVAL;
    }
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
        char c = url[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        if (c != scheme[i])
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


size_t ag_path_normalize(const char *in, size_t len, char *out)
{
    const char *q = memchr(in, '?', len);
    if (q)
        len = (size_t)(q - in);
    /* Decode first (so "%2e%2e" is a dot segment too), but keep "%2F"
     * encoded: it is data inside a segment, not a separator. */
    char dec[AG_URL_MAX + 1]; /* targets are capped at AG_URL_MAX when read */
    if (len > AG_URL_MAX)
        len = AG_URL_MAX;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int h, l;
        if (in[i] == '%' && i + 2 < len && (h = ag_hexval(in[i + 1])) >= 0 &&
            (l = ag_hexval(in[i + 2])) >= 0 && (h * 16 + l) != '/') {
            dec[n++] = (char)(h * 16 + l);
            i += 2;
        } else {
            dec[n++] = in[i];
        }
    }
    /* remove_dot_segments over the decoded path. */
    size_t o = 0, i = 0;
    out[o++] = '/';
    while (i < n) {
        while (i < n && dec[i] == '/')
            i++;
        size_t s = i;
        while (i < n && dec[i] != '/')
            i++;
        size_t sl = i - s;
        bool last = i >= n;
        if (sl == 1 && dec[s] == '.') {
            /* "." : nothing */
        } else if (sl == 2 && dec[s] == '.' && dec[s + 1] == '.') {
            if (o > 1) {
                o--; /* drop the slash ending the previous segment */
                while (o > 1 && out[o - 1] != '/')
                    o--;
            }
        } else if (sl) {
            memmove(out + o, dec + s, sl);
            o += sl;
            if (!last)
                out[o++] = '/';
            continue;
        }
        if (last)
            break;
    }
    /* A trailing dot segment names its directory: "/a/b/.." is "/a/". */
    if (o > 1 && out[o - 1] != '/' && n && (dec[n - 1] == '/' || dec[n - 1] == '.'))
        out[o++] = '/';
    out[o] = '\0';
    return o;
}
