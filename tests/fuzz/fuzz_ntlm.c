/* fuzz_ntlm.c - libFuzzer target for the NTLMSSP codec (src/auth/ntlm_wire.c).
 *
 * One input is fed, as an exact-size heap copy (so ASan sees any over-read),
 * to every parser: message type, NEGOTIATE, CHALLENGE, AUTHENTICATE and the
 * NTLMv2 response/AV-pair walker; what parses is then pushed through the
 * checks the handshake runs (flags subset, AV echo, local verification,
 * exported key, MIC) and invariants on the outputs are asserted. The first
 * 4 bytes also drive the CHALLENGE builder, whose output must parse back.
 * Build: cmake -DAG_FUZZ=ON with CC=clang; run: fuzz_ntlm corpus/ntlm.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/ntcrypto.h"
#include "auth/ntlm_wire.h"
#include "authgate/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x))                                                                                  \
            abort();                                                                               \
    } while (0)

/* MS-NLMP 4.2.4 target info: NbDomain "Domain", NbComputer "Server", EOL. */
static const uint8_t ti_424[] = {
    0x02, 0x00, 0x0c, 0x00, 'D', 0, 'o', 0, 'm', 0, 'a', 0, 'i', 0, 'n',  0,    0x01, 0x00,
    0x0c, 0x00, 'S',  0,    'e', 0, 'r', 0, 'v', 0, 'e', 0, 'r', 0, 0x00, 0x00, 0x00, 0x00,
};
static const uint8_t chal_424[8] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
/* NT hash of "Password". */
static const uint8_t hash_424[16] = {0xa4, 0xf4, 0x9c, 0x40, 0x65, 0x10, 0xbd, 0xca,
                                     0xb6, 0x82, 0x4e, 0xe7, 0xc3, 0x0f, 0xd8, 0x52};

static int inside(const uint8_t *p, size_t n, const uint8_t *base, size_t len)
{
    if (n == 0)
        return 1;
    return p && p >= base && n <= len && (size_t)(p - base) <= len - n;
}

/* The legacy parser (ntlm_allow_v1) accepts a superset: 24-byte responses
 * marked v1, everything else exactly as the strict parser. */
static void fuzz_auth_legacy(const uint8_t *m, size_t size)
{
    struct ag_ntlm_auth a, b;
    if (ag_ntlm_parse_authenticate_legacy(m, size, &a) != 0)
        return;
    CHECK(inside(a.nt.p, a.nt.len, m, size));
    CHECK(inside(a.lm.p, a.lm.len, m, size));
    CHECK(a.user_raw.len > 0 && a.user[0] != '\0');
    if (a.v1)
        CHECK(a.nt.len == NTLM_V1_RESPONSE_LEN);
    else
        CHECK(ag_ntlm_parse_authenticate(m, size, &b) == 0 && b.nt.len == a.nt.len);
}

static void fuzz_auth(const uint8_t *m, size_t size)
{
    struct ag_ntlm_auth a;
    uint8_t sbk[16], esk[16];

    fuzz_auth_legacy(m, size);
    if (ag_ntlm_parse_authenticate(m, size, &a) != 0)
        return;
    CHECK(inside(a.lm.p, a.lm.len, m, size));
    CHECK(inside(a.nt.p, a.nt.len, m, size));
    CHECK(inside(a.user_raw.p, a.user_raw.len, m, size));
    CHECK(inside(a.domain_raw.p, a.domain_raw.len, m, size));
    CHECK(inside(a.workstation_raw.p, a.workstation_raw.len, m, size));
    CHECK(inside(a.enc_key.p, a.enc_key.len, m, size));
    CHECK(inside(a.v2.av.p, a.v2.av.len, a.nt.p, a.nt.len));
    CHECK(a.nt.len >= NTLMV2_RESPONSE_MIN_LEN);
    CHECK(a.user_raw.len > 0 && a.user[0] != '\0');
    CHECK(strlen(a.user) <= AG_USER_MAX && strlen(a.domain) <= AG_NTLM_NAME_MAX &&
          strlen(a.workstation) <= AG_NTLM_NAME_MAX);
    CHECK(a.user16_len <= sizeof a.user16 && a.domain16_len <= sizeof a.domain16);
    CHECK(a.v2.av_count <= AG_NTLM_MAX_AV_PAIRS);
    CHECK(!(a.flags & NTLMSSP_NEGOTIATE_ANONYMOUS));
    if (a.mic_present)
        CHECK(size >= NTLM_AUTH_HDR_MIC_LEN && a.mic == m + NTLM_AUTH_MIC_OFFSET);
    if (a.flags & NTLMSSP_NEGOTIATE_KEY_EXCH)
        CHECK(a.enc_key.len == 16);

    (void)ag_ntlm_flags_subset(a.flags, 0xe28a8233u);
    (void)ag_ntlmv2_check_av_echo(ti_424, sizeof ti_424, &a.v2);
    if (ag_ntlmv2_verify_local(hash_424, a.user16, a.user16_len, a.domain16, a.domain16_len,
                               chal_424, a.nt.p, a.nt.len, sbk) == 0 &&
        ag_ntlm_exported_session_key(sbk, a.flags, a.enc_key.p, a.enc_key.len, esk) == 0 &&
        a.mic_present)
        (void)ag_ntlm_mic_verify(esk, NULL, 0, NULL, 0, m, size);
}

static void fuzz_build(const uint8_t *m, size_t size)
{
    struct ag_ntlm_challenge_params p;
    struct ag_ntlm_challenge ch;
    uint8_t out[512];
    size_t n;
    uint32_t flags;

    if (size < 4)
        return;
    memset(&p, 0, sizeof p);
    p.client_flags =
        (uint32_t)m[0] | (uint32_t)m[1] << 8 | (uint32_t)m[2] << 16 | (uint32_t)m[3] << 24;
    p.server_challenge = chal_424;
    p.target_name = "EXAMPLE";
    p.nb_domain = "EXAMPLE";
    p.nb_computer = "PROXY";
    p.dns_domain = "example.org";
    p.dns_computer = "proxy.example.org";
    p.timestamp = 0x01d9000000000000ull;
    CHECK(ag_ntlm_build_challenge(&p, out, sizeof out, &n, &flags) == 0);
    CHECK(ag_ntlm_parse_challenge(out, n, &ch) == 0);
    CHECK(ch.flags == flags);
    CHECK(!(flags & (NTLMSSP_NEGOTIATE_LM_KEY | NTLMSSP_NEGOTIATE_DATAGRAM |
                     NTLMSSP_NEGOTIATE_ANONYMOUS | NTLMSSP_REQUEST_NON_NT_SESSION_KEY)));
    CHECK(flags & NTLMSSP_NEGOTIATE_TARGET_INFO);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *m;
    struct ag_ntlm_negotiate neg;
    struct ag_ntlm_challenge ch;
    struct ag_ntlmv2_blob b;

    if (size > 2 * AG_NTLM_MAX_DECODED)
        return 0;
    m = malloc(size ? size : 1);
    if (!m)
        return 0;
    if (size)
        memcpy(m, data, size);

    (void)ag_ntlm_message_type(m, size);
    if (ag_ntlm_parse_negotiate(m, size, &neg) == 0 && neg.has_version)
        CHECK(size >= 40);
    if (ag_ntlm_parse_challenge(m, size, &ch) == 0) {
        CHECK(inside(ch.target_name.p, ch.target_name.len, m, size));
        CHECK(inside(ch.target_info.p, ch.target_info.len, m, size));
    }
    fuzz_auth(m, size);
    /* The input as a bare NT response, then as a "sent" target info. */
    if (ag_ntlmv2_parse_response(m, size, &b) == 0) {
        CHECK(inside(b.av.p, b.av.len, m, size));
        CHECK(b.av.len >= 4 && b.av_count <= AG_NTLM_MAX_AV_PAIRS);
        if (b.channel_bindings)
            CHECK(inside(b.channel_bindings, 16, m, size));
        CHECK(inside(b.target_name.p, b.target_name.len, m, size));
        CHECK(ag_ntlmv2_check_av_echo(b.av.p, b.av.len, &b) == 0); /* a list echoes itself */
        (void)ag_ntlmv2_check_av_echo(ti_424, sizeof ti_424, &b);
        (void)ag_ntlmv2_check_av_echo(m, size, &b);
    }
    fuzz_build(m, size);
    free(m);
    return 0;
}
