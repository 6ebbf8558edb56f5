/* target.c - absolute-form and authority-form parsing (see target.h).
 * Input is untrusted: every index is checked against len. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "authgate/err.h"
#include "target.h"

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
