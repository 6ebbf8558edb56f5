/* base64.c - strict RFC 4648 base64 (see util.h). Input is untrusted. */
#include <stdlib.h>
#include <string.h>

#include "util.h"

static int val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int ag_b64_decode(const char *in, size_t inlen, uint8_t *out, size_t outcap, size_t *outlen)
{
    if (inlen % 4 != 0)
        return AG_EINVAL;
    size_t pad = 0;
    if (inlen >= 1 && in[inlen - 1] == '=')
        pad++;
    if (inlen >= 2 && in[inlen - 2] == '=')
        pad++;
    size_t n = inlen / 4 * 3 - pad;
    /* The cap is checked before a single byte is decoded. */
    if (n > outcap)
        return AG_ELIMIT;
    size_t o = 0;
    for (size_t i = 0; i < inlen; i += 4) {
        bool last = (i + 4 == inlen);
        int v[4];
        for (int k = 0; k < 4; k++) {
            unsigned char ch = (unsigned char)in[i + k];
            if (ch == '=' && last && k >= 4 - (int)pad) {
                v[k] = 0;
                continue;
            }
            v[k] = val(ch);
            if (v[k] < 0)
                return AG_EINVAL;
        }
        uint32_t w = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) | ((uint32_t)v[2] << 6) |
                     (uint32_t)v[3];
        if (last && pad == 2 && (w & 0xffff) != 0)
            return AG_EINVAL; /* non-canonical trailing bits */
        if (last && pad == 1 && (w & 0xff) != 0)
            return AG_EINVAL;
        size_t take = last ? 3 - pad : 3;
        if (take >= 1)
            out[o++] = (uint8_t)(w >> 16);
        if (take >= 2)
            out[o++] = (uint8_t)(w >> 8);
        if (take >= 3)
            out[o++] = (uint8_t)w;
    }
    *outlen = o;
    return 0;
}

size_t ag_b64_encoded_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

void ag_b64_encode(const uint8_t *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t w = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
        out[o++] = tab[(w >> 18) & 63];
        out[o++] = tab[(w >> 12) & 63];
        out[o++] = tab[(w >> 6) & 63];
        out[o++] = tab[w & 63];
    }
    if (n - i == 1) {
        uint32_t w = (uint32_t)in[i] << 16;
        out[o++] = tab[(w >> 18) & 63];
        out[o++] = tab[(w >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t w = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8);
        out[o++] = tab[(w >> 18) & 63];
        out[o++] = tab[(w >> 12) & 63];
        out[o++] = tab[(w >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
}

char *ag_b64_field(const char *prefix, const uint8_t *in, size_t n)
{
    size_t pl = strlen(prefix);
    char *f = malloc(pl + ag_b64_encoded_len(n) + 3);
    if (!f)
        return NULL;
    memcpy(f, prefix, pl);
    ag_b64_encode(in, n, f + pl);
    strcat(f + pl, "\r\n");
    return f;
}
