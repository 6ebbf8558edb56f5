/* scheme.c - parsing "Proxy-Authorization: <scheme> <token>" (see scheme.h). */
#include <string.h>

#include "authgate/err.h"
#include "scheme.h"
#include "util/util.h"

int ag_credentials_parse(const char *v, size_t len, struct ag_credentials *out)
{
    size_t i = 0;
    while (i < len && v[i] != ' ')
        i++;
    if (i == 0)
        return AG_EINVAL;
    struct ag_credentials c = {AG_SCHEME_NONE, NULL, 0};
    if (ag_strieq(v, i, "Basic"))
        c.scheme = AG_SCHEME_BASIC;
    else if (ag_strieq(v, i, "NTLM"))
        c.scheme = AG_SCHEME_NTLM;
    else if (ag_strieq(v, i, "Negotiate"))
        c.scheme = AG_SCHEME_NEGOTIATE;
    if (c.scheme == AG_SCHEME_NONE) {
        /* A scheme we do not speak (Digest has comma-separated parameters):
         * not malformed, just unsupported, and its value is never used. */
        *out = c;
        return 0;
    }
    if (memchr(v, ',', len))
        return AG_EINVAL; /* "Basic a, Basic b": a second credential */
    while (i < len && v[i] == ' ')
        i++;
    c.token = v + i;
    c.token_len = len - i;
    /* token68 has no inner spaces: anything after one is malformed. */
    if (memchr(c.token, ' ', c.token_len) || memchr(c.token, '\t', c.token_len))
        return AG_EINVAL;
    *out = c;
    return 0;
}

/* What every base64 NTLMSSP message starts with: 10 characters encode the
 * first 60 bits of "NTLMSSP\0" (the 10th, "A", is the last 2 bits of "P"
 * and the top 4 of the NUL), so no later byte can change them. */
static const char ntlmssp_b64_prefix[] = "TlRMTVNTUA";

int ag_token_is_ntlmssp(const char *token, size_t len)
{
    const size_t n = sizeof ntlmssp_b64_prefix - 1;
    return len >= n && memcmp(token, ntlmssp_b64_prefix, n) == 0;
}

enum ag_cred_route ag_credentials_route(const struct ag_credentials *cr, unsigned available)
{
    if (cr->scheme == AG_SCHEME_NEGOTIATE && ag_token_is_ntlmssp(cr->token, cr->token_len) &&
        (available & (1u << AG_SCHEME_NTLM)))
        return AG_ROUTE_NTLM_IN_NEGOTIATE;
    if (cr->token_len == 0)
        return AG_ROUTE_EMPTY;
    if (cr->scheme == AG_SCHEME_NONE || !(available & (1u << cr->scheme)))
        return AG_ROUTE_UNSUPPORTED;
    switch (cr->scheme) {
    case AG_SCHEME_BASIC:
        return AG_ROUTE_BASIC;
    case AG_SCHEME_NTLM:
        return AG_ROUTE_NTLM;
    case AG_SCHEME_NEGOTIATE:
        return AG_ROUTE_NEGOTIATE;
    default:
        return AG_ROUTE_UNSUPPORTED;
    }
}
