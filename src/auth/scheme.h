/* scheme.h - the Proxy-Authorization field: "<scheme> <token>".
 *
 * The scheme name is case-insensitive (RFC 9110 §11.1); the token is taken
 * as the rest of the value after one or more spaces, with nothing after it.
 * Comma-joined credentials are refused by the caller (singleton field). Pure.
 */
#ifndef AG_AUTH_SCHEME_H
#define AG_AUTH_SCHEME_H

#include <stddef.h>

#include "config/config.h"

struct ag_credentials {
    enum ag_scheme scheme; /* AG_SCHEME_NONE for an unknown scheme */
    const char *token;     /* borrowed from the field value; may be empty */
    size_t token_len;
};

/* 0 and out filled, or AG_EINVAL when the value is not "scheme [token]" or
 * holds a comma (two credentials joined into one field). */
int ag_credentials_parse(const char *value, size_t len, struct ag_credentials *out);
/* True when token looks like a raw NTLMSSP message in base64 ("TlRMTVNTUA"). */
int ag_token_is_ntlmssp(const char *token, size_t len);

/* Where a parsed credential goes. NTLM_IN_NEGOTIATE: Windows falls back to
 * a raw NTLMSSP message inside Negotiate when Kerberos fails; it goes to
 * NTLM (when NTLM is available), never to GSS. */
enum ag_cred_route {
    AG_ROUTE_EMPTY,       /* no token: malformed */
    AG_ROUTE_UNSUPPORTED, /* an unknown scheme, or one not available */
    AG_ROUTE_BASIC,
    AG_ROUTE_NTLM,
    AG_ROUTE_NTLM_IN_NEGOTIATE,
    AG_ROUTE_NEGOTIATE,
};
/* The route of cr; available has bit (1u << scheme) set for each scheme
 * this configuration can verify now. */
enum ag_cred_route ag_credentials_route(const struct ag_credentials *cr, unsigned available);

#endif
