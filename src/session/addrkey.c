/* addrkey.c - client address keys (see addrkey.h). */
#include <arpa/inet.h>
#include <string.h>

#include "session/addrkey.h"

size_t ag_addr_key(const char *addr, char out[AG_ADDR_KEY_MAX + 1])
{
    struct in6_addr a6;
    char txt[INET6_ADDRSTRLEN];
    size_t n;

    if (inet_pton(AF_INET6, addr, &a6) == 1) {
        if (IN6_IS_ADDR_V4MAPPED(&a6)) {
            inet_ntop(AF_INET, &a6.s6_addr[12], txt, sizeof(txt));
            n = strlen(txt);
            memcpy(out, txt, n + 1);
            return n;
        }
        memset(&a6.s6_addr[8], 0, 8);
        inet_ntop(AF_INET6, &a6, txt, sizeof(txt));
        n = strlen(txt);
        memcpy(out, txt, n);
        memcpy(out + n, "/64", 4);
        return n + 3;
    }
    n = strnlen(addr, AG_ADDR_KEY_MAX);
    memcpy(out, addr, n);
    out[n] = '\0';
    return n;
}
