/* fuzz_negotiate.c - libFuzzer target for the Proxy-Authorization value and
 * the routing of its token (src/auth/scheme.c, src/auth/negotiate.c): the
 * "scheme token" split, which verifier a credential goes to
 * (ag_credentials_route, as the daemon's dispatch calls it), and the
 * Negotiate token's decoding and shape check before GSS sees it.
 *
 * Byte 0 is the set of schemes available; the rest is the field value.
 * Invariants: the token is a suffix of the value with no blank in it and no
 * comma in a known scheme's value; NTLM inside Negotiate goes to NTLM when
 * NTLM is available, never to GSS (differential: a token that decodes to
 * an NTLMSSP message is routed as one, whatever its spelling); a route names
 * an available scheme; what ag_gss_token_decode hands to GSS is a DER
 * [APPLICATION 0] or [1] whose length covers the token exactly.
 * Build: cmake -DAG_FUZZ=ON with CC=clang; run: fuzz_negotiate corpus/negotiate.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/negotiate.h"
#include "auth/scheme.h"
#include "authgate/err.h"
#include "util/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void CHECK(bool ok)
{
    if (!ok)
        abort();
}

/* The DER header's length from scratch: tag, then short or long form. */
static bool der_whole(const uint8_t *t, size_t n)
{
    if (n < 2 || (t[0] != 0x60 && t[0] != 0xa1))
        return false;
    if (t[1] < 0x80)
        return t[1] == n - 2;
    size_t k = t[1] & 0x7f, v = 0;
    if (k == 0 || k > 4 || n < 2 + k)
        return false;
    for (size_t i = 0; i < k; i++)
        v = v << 8 | t[2 + i];
    return v == n - 2 - k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned avail = (unsigned)(data[0] & 0x0e); /* bits 1..3: Negotiate, NTLM, Basic */
    size_t n = size - 1;
    char *v = malloc(n ? n : 1);
    CHECK(v != NULL);
    memcpy(v, data + 1, n);
    struct ag_credentials cr;
    if (ag_credentials_parse(v, n, &cr) != 0) {
        free(v);
        return 0;
    }
    if (cr.scheme != AG_SCHEME_NONE) {
        CHECK(cr.token_len <= n && (cr.token_len == 0 || cr.token + cr.token_len == v + n));
        CHECK(!memchr(v, ',', n));
        CHECK(cr.token_len == 0 ||
              (!memchr(cr.token, ' ', cr.token_len) && !memchr(cr.token, '\t', cr.token_len)));
    }
    enum ag_cred_route r = ag_credentials_route(&cr, avail);
    switch (r) {
    case AG_ROUTE_NTLM_IN_NEGOTIATE:
        CHECK(cr.scheme == AG_SCHEME_NEGOTIATE && (avail & (1u << AG_SCHEME_NTLM)));
        CHECK(ag_token_is_ntlmssp(cr.token, cr.token_len));
        break;
    case AG_ROUTE_BASIC:
        CHECK(cr.scheme == AG_SCHEME_BASIC && (avail & (1u << AG_SCHEME_BASIC)));
        break;
    case AG_ROUTE_NTLM:
        CHECK(cr.scheme == AG_SCHEME_NTLM && (avail & (1u << AG_SCHEME_NTLM)));
        break;
    case AG_ROUTE_NEGOTIATE:
        CHECK(cr.scheme == AG_SCHEME_NEGOTIATE && (avail & (1u << AG_SCHEME_NEGOTIATE)));
        CHECK(cr.token_len > 0);
        break;
    case AG_ROUTE_EMPTY:
        CHECK(cr.token_len == 0);
        break;
    case AG_ROUTE_UNSUPPORTED:
        CHECK(cr.scheme == AG_SCHEME_NONE || !(avail & (1u << cr.scheme)));
        break;
    default:
        CHECK(false);
    }
    if (cr.scheme == AG_SCHEME_NEGOTIATE && cr.token_len > 0) {
        size_t cap = 0, len = 0;
        uint8_t *tok = ag_gss_token_decode(cr.token, cr.token_len, &cap, &len);
        /* An NTLMSSP message in any valid spelling routes to NTLM. */
        uint8_t *raw = malloc(cr.token_len);
        size_t rl = 0;
        CHECK(raw != NULL);
        if (ag_b64_decode(cr.token, cr.token_len, raw, cr.token_len, &rl) == 0 && rl >= 8 &&
            memcmp(raw, "NTLMSSP", 8) == 0 && (avail & (1u << AG_SCHEME_NTLM)))
            CHECK(r == AG_ROUTE_NTLM_IN_NEGOTIATE);
        free(raw);
        if (tok) {
            CHECK(len <= cap && der_whole(tok, len));
            CHECK(ag_gss_token_precheck(tok, len) == 0);
            ag_wipe(tok, cap);
            free(tok);
        }
    }
    free(v);
    return 0;
}
