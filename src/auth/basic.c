/* basic.c - RFC 7617 credentials: strict decoding and checks (see basic.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/basic.h"
#include "auth/ntcrypto.h"
#include "authgate/err.h"
#include "authgate/limits.h"
#include "util/util.h"

/* Largest base64 text that can decode to AG_BASIC_MAX_DECODED bytes: longer
 * input is refused before the decoder looks at a single character. */
#define B64_MAX (((AG_BASIC_MAX_DECODED + 2) / 3) * 4)

/* True if any byte is a CTL: a NUL would truncate the C string that every
 * backend sees, CR/LF would split log lines, and RFC 7617 forbids them. */
static int has_ctl(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] == 0x7f)
            return 1;
    return 0;
}

/* Strict UTF-8 check through the shared converter, so Basic and NTLM agree
 * on what is valid. The UTF-16 scratch copy may be secret: wiped. */
static int check_utf8(const uint8_t *p, size_t n)
{
    /* 2 bytes of UTF-16 per UTF-8 byte is the worst case (ASCII). */
    uint8_t scratch[2 * (AG_PASSWORD_MAX > AG_USER_MAX ? AG_PASSWORD_MAX : AG_USER_MAX)];
    size_t outlen = 0;
    int rc;

    if (n > sizeof(scratch) / 2)
        return AG_ELIMIT;
    rc = ag_utf8_to_utf16le((const char *)p, n, scratch, sizeof(scratch), &outlen);
    ag_wipe(scratch, sizeof(scratch));
    return rc;
}

/* malloc'd NUL-terminated copy of n bytes; NULL on allocation failure. */
static char *dupn(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

int ag_basic_parse(const char *b64, size_t len, struct ag_basic_cred *out)
{
    uint8_t dec[AG_BASIC_MAX_DECODED];
    size_t n = 0, ulen, plen;
    const uint8_t *colon, *pw;
    char *user = NULL, *pass = NULL;
    int rc;

    if (len > B64_MAX)
        return AG_ELIMIT;
    rc = ag_b64_decode(b64, len, dec, sizeof(dec), &n);
    if (rc < 0)
        goto out;

    colon = memchr(dec, ':', n);
    if (!colon) {
        rc = AG_EINVAL;
        goto out;
    }
    ulen = (size_t)(colon - dec);
    pw = colon + 1;
    plen = n - ulen - 1;

    rc = AG_EINVAL;
    if (ulen == 0)
        goto out;
    if (ulen > AG_USER_MAX || plen > AG_PASSWORD_MAX) {
        rc = AG_ELIMIT;
        goto out;
    }
    if (has_ctl(dec, ulen) || has_ctl(pw, plen))
        goto out;
    if ((rc = check_utf8(dec, ulen)) < 0 || (rc = check_utf8(pw, plen)) < 0) {
        rc = rc == AG_ELIMIT ? AG_ELIMIT : AG_EINVAL;
        goto out;
    }

    rc = AG_ENOMEM;
    user = dupn(dec, ulen);
    pass = dupn(pw, plen);
    if (!user || !pass)
        goto out;

    out->user = user;
    out->user_len = ulen;
    out->password = pass;
    out->password_len = plen;
    user = pass = NULL;
    rc = 0;
out:
    ag_wipe(dec, sizeof(dec));
    if (pass) {
        ag_wipe(pass, plen);
        free(pass);
    }
    free(user);
    return rc;
}

void ag_basic_cred_clear(struct ag_basic_cred *c)
{
    if (!c)
        return;
    if (c->password) {
        ag_wipe(c->password, c->password_len);
        free(c->password);
    }
    if (c->user) {
        /* user names are not secret, but the cleared struct should not keep
         * a copy of who was logging in either. */
        ag_wipe(c->user, c->user_len);
        free(c->user);
    }
    memset(c, 0, sizeof(*c));
}

int ag_basic_split_user(const char *user, size_t len, struct ag_user_split *out)
{
    const char *bs = len ? memchr(user, '\\', len) : NULL;
    struct ag_user_split s = {NULL, 0, user, len};

    if (bs) {
        size_t dlen = (size_t)(bs - user);
        if (dlen) {
            s.domain = user;
            s.domain_len = dlen;
        }
        s.account = bs + 1;
        s.account_len = len - dlen - 1;
    }
    if (s.account_len == 0)
        return AG_EINVAL;
    *out = s;
    return 0;
}
