/* ntcrypto.c - NTLM crypto primitives on nettle (see ntcrypto.h). */
#include <nettle/hmac.h>
#include <nettle/md4.h>

#include "auth/ntcrypto.h"
#include "authgate/err.h"
#include "authgate/limits.h"
#include "util/cursor.h"
#include "util/util.h"

/* Decodes one code point from in[*i..len); AG_EINVAL on anything that is not
 * the shortest encoding of a scalar value. */
static int utf8_next(const uint8_t *in, size_t len, size_t *i, uint32_t *cp)
{
    uint8_t b = in[*i];
    size_t n;
    uint32_t c, min;

    if (b < 0x80) {
        *cp = b;
        (*i)++;
        return 0;
    }
    if (b >= 0xc2 && b <= 0xdf) {
        n = 1;
        c = b & 0x1f;
        min = 0x80;
    } else if (b >= 0xe0 && b <= 0xef) {
        n = 2;
        c = b & 0x0f;
        min = 0x800;
    } else if (b >= 0xf0 && b <= 0xf4) {
        n = 3;
        c = b & 0x07;
        min = 0x10000;
    } else {
        return AG_EINVAL; /* continuation byte, C0/C1 (always overlong), F5..FF */
    }
    if (n > len - *i - 1)
        return AG_EINVAL; /* truncated */
    for (size_t k = 1; k <= n; k++) {
        uint8_t cb = in[*i + k];
        if ((cb & 0xc0) != 0x80)
            return AG_EINVAL;
        c = (c << 6) | (cb & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return AG_EINVAL;
    *cp = c;
    *i += n + 1;
    return 0;
}

int ag_utf8_to_utf16le(const char *in, size_t inlen, uint8_t *out, size_t outcap, size_t *outlen)
{
    const uint8_t *s = (const uint8_t *)in;
    size_t i = 0, o = 0;

    while (i < inlen) {
        uint32_t cp;
        int rc = utf8_next(s, inlen, &i, &cp);
        if (rc < 0)
            return rc;
        if (cp < 0x10000) {
            if (outcap - o < 2)
                return AG_ELIMIT;
            ag_put_u16le(out + o, (uint16_t)cp);
            o += 2;
        } else {
            cp -= 0x10000;
            if (outcap - o < 4)
                return AG_ELIMIT;
            ag_put_u16le(out + o, (uint16_t)(0xd800 | (cp >> 10)));
            ag_put_u16le(out + o + 2, (uint16_t)(0xdc00 | (cp & 0x3ff)));
            o += 4;
        }
    }
    *outlen = o;
    return 0;
}

int ag_nt_hash(const char *password, size_t len, uint8_t out[16])
{
    /* Each UTF-8 byte yields at most 2 bytes of UTF-16. */
    uint8_t u16[2 * AG_PASSWORD_MAX];
    size_t n = 0;
    struct md4_ctx md;
    int rc;

    if (len > AG_PASSWORD_MAX)
        return AG_ELIMIT;
    rc = ag_utf8_to_utf16le(password, len, u16, sizeof u16, &n);
    if (rc == 0) {
        md4_init(&md);
        md4_update(&md, n, u16);
        md4_digest(&md, 16, out);
        ag_wipe(&md, sizeof md);
    }
    ag_wipe(u16, sizeof u16);
    return rc;
}

void ag_hmac_md5(const uint8_t *key, size_t keylen, const uint8_t *const parts[],
                 const size_t lens[], size_t nparts, uint8_t out[16])
{
    struct hmac_md5_ctx h;

    hmac_md5_set_key(&h, keylen, key);
    for (size_t i = 0; i < nparts; i++)
        if (lens[i])
            hmac_md5_update(&h, lens[i], parts[i]);
    hmac_md5_digest(&h, 16, out);
    ag_wipe(&h, sizeof h);
}

uint16_t ag_ntlm_upcase16(uint16_t c)
{
    if (c < 0x80)
        return (c >= 'a' && c <= 'z') ? (uint16_t)(c - 0x20) : c;
    if (c < 0x100) {
        if (c >= 0xe0 && c <= 0xfe && c != 0xf7)
            return (uint16_t)(c - 0x20);
        if (c == 0xff)
            return 0x178;
        if (c == 0xb5)
            return 0x39c;
        return c;
    }
    if (c <= 0x17f) {
        if ((c <= 0x12f) || (c >= 0x132 && c <= 0x137) || (c >= 0x14a && c <= 0x177))
            return (c & 1) ? (uint16_t)(c - 1) : c; /* even upper, odd lower */
        if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e))
            return (c & 1) ? c : (uint16_t)(c - 1); /* odd upper, even lower */
        return c;                                   /* 0x130, 0x131, 0x138, 0x149, 0x178, 0x17f */
    }
    if (c >= 0x3ac && c <= 0x3ce) {
        switch (c) {
        case 0x3ac:
            return 0x386;
        case 0x3ad:
        case 0x3ae:
        case 0x3af:
            return (uint16_t)(c - 0x25);
        case 0x3b0:
            return c; /* has no simple upper-case */
        case 0x3c2:
            return 0x3a3;
        case 0x3cc:
            return 0x38c;
        case 0x3cd:
        case 0x3ce:
            return (uint16_t)(c - 0x3f);
        default:
            return (uint16_t)(c - 0x20); /* 0x3b1..0x3cb */
        }
    }
    if (c >= 0x430 && c <= 0x44f)
        return (uint16_t)(c - 0x20);
    if (c >= 0x450 && c <= 0x45f)
        return (uint16_t)(c - 0x50);
    return c;
}

int ag_ntowfv2(const uint8_t nt_hash[16], const uint8_t *user16, size_t ulen, const uint8_t *dom16,
               size_t dlen, uint8_t out[16])
{
    struct hmac_md5_ctx h;
    uint8_t chunk[64];

    if ((ulen & 1) || (dlen & 1))
        return AG_EINVAL;
    hmac_md5_set_key(&h, 16, nt_hash);
    /* Upper-case the user in small chunks: no cap on its length here. */
    for (size_t i = 0; i < ulen;) {
        size_t n = 0;
        while (n < sizeof chunk && i < ulen) {
            uint16_t c = (uint16_t)(user16[i] | (user16[i + 1] << 8));
            ag_put_u16le(chunk + n, ag_ntlm_upcase16(c));
            n += 2;
            i += 2;
        }
        hmac_md5_update(&h, n, chunk);
    }
    if (dlen)
        hmac_md5_update(&h, dlen, dom16);
    hmac_md5_digest(&h, 16, out);
    ag_wipe(&h, sizeof h);
    ag_wipe(chunk, sizeof chunk);
    return 0;
}
