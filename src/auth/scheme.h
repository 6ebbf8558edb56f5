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

#endif
