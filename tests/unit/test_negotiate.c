/* test_negotiate.c - the pure parts of the Kerberos acceptor: the DER shape
 * check every token passes before GSS sees it, and principal-to-user mapping
 * with the realm allow-list. (The GSS exchange itself runs against a real
 * KDC in tests/integration/test_auth_negotiate.py.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "auth/negotiate.h"
#include "auth/scheme.h"
#include "authgate/err.h"
#include "util/util.h"

static void test_precheck(void **state)
{
    static const struct {
        const char *hex;
        int rc;
    } rows[] = {
        {"6003020100", 0},                       /* [APPLICATION 0], short length */
        {"a1030a0100", 0},                       /* negTokenResp */
        {"60820003010203", 0},                   /* long-form length 3 */
        {"6004020100", AG_EINVAL},               /* length says 4, 3 follow */
        {"6002020100", AG_EINVAL},               /* trailing garbage */
        {"3003020100", AG_EINVAL},               /* a SEQUENCE is not a GSS token */
        {"4e544c4d5353500001000000", AG_EINVAL}, /* raw NTLMSSP */
        {"60", AG_EINVAL},                       /* truncated */
        {"", AG_EINVAL},                         /* empty */
        {"6085000000000001", AG_EINVAL},         /* 5 length octets */
        {"6080", AG_EINVAL},                     /* indefinite length (BER, not DER) */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        uint8_t b[64];
        size_t n = strlen(rows[i].hex) / 2;
        for (size_t k = 0; k < n; k++) {
            unsigned v;
            sscanf(rows[i].hex + 2 * k, "%2x", &v);
            b[k] = (uint8_t)v;
        }
        assert_int_equal(ag_gss_token_precheck(b, n), rows[i].rc);
    }
}

/* Which verifier a Proxy-Authorization value goes to: NTLMSSP inside
 * Negotiate to NTLM (never to GSS) when NTLM is available. */
static void test_route(void **state)
{
    const unsigned all = 1u << AG_SCHEME_NEGOTIATE | 1u << AG_SCHEME_NTLM | 1u << AG_SCHEME_BASIC;
    const unsigned no_ntlm = all & ~(1u << AG_SCHEME_NTLM);
    static const struct {
        const char *value;
        bool all;
        enum ag_cred_route want;
    } rows[] = {
        {"Negotiate TlRMTVNTUAABAAAAB4IIog==", true, AG_ROUTE_NTLM_IN_NEGOTIATE},
        {"Negotiate TlRMTVNTUAABAAAAB4IIog==", false, AG_ROUTE_NEGOTIATE},
        {"Negotiate YIIFAA==", true, AG_ROUTE_NEGOTIATE},
        {"NTLM TlRMTVNTUAABAAAAB4IIog==", true, AG_ROUTE_NTLM},
        {"NTLM TlRMTVNTUAABAAAAB4IIog==", false, AG_ROUTE_UNSUPPORTED},
        {"Basic YTpi", true, AG_ROUTE_BASIC},
        {"Basic", true, AG_ROUTE_EMPTY},
        {"Negotiate", false, AG_ROUTE_EMPTY},
        /* an unknown scheme keeps no token: refused as empty, as before */
        {"Digest x", true, AG_ROUTE_EMPTY},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct ag_credentials cr;
        assert_int_equal(ag_credentials_parse(rows[i].value, strlen(rows[i].value), &cr), 0);
        enum ag_cred_route r = ag_credentials_route(&cr, rows[i].all ? all : no_ntlm);
        if (r != rows[i].want)
            fail_msg("row %zu (%s): route %d, want %d", i, rows[i].value, r, rows[i].want);
    }
    struct ag_credentials neg;
    assert_int_equal(ag_credentials_parse("Negotiate YIIFAA==", 18, &neg), 0);
    assert_int_equal(ag_credentials_route(&neg, 1u << AG_SCHEME_BASIC), AG_ROUTE_UNSUPPORTED);
}

/* Only a base64 DER token whose length covers it exactly reaches GSS. */
static void test_token_decode(void **state)
{
    static const struct {
        const char *b64;
        size_t len; /* decoded length when accepted, else 0 */
    } rows[] = {
        {"YAYGBCoDBAU=", 8}, /* 60 06 ... */
        {"oQMBAgM=", 5},     /* a1 03 ... */
        {"YAcGBCoDBAU=", 0}, /* length one past the end */
        {"YAUGBCoDBAU=", 0}, /* length short of the end */
        {"YAYGBCoDBA==", 0}, /* truncated */
        {"TlRMTVNTUAA=", 0}, /* not DER */
        {"YAYGBCoDBAU", 0},  /* not base64 */
        {"", 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        size_t cap = 0, len = 0;
        uint8_t *t = ag_gss_token_decode(rows[i].b64, strlen(rows[i].b64), &cap, &len);
        if (rows[i].len ? !t || len != rows[i].len : t != NULL)
            fail_msg("row %zu (%s): %s len %zu", i, rows[i].b64, t ? "accepted" : "refused", len);
        if (t) {
            assert_true(len <= cap);
            ag_wipe(t, cap);
            free(t);
        }
    }
}

static void test_map_name(void **state)
{
    struct ag_identity id;
    assert_int_equal(ag_gss_map_name("alice@CORP.EXAMPLE", AG_GSS_NAME_KEEP, NULL, &id), 0);
    assert_string_equal(id.user, "alice@CORP.EXAMPLE");
    assert_string_equal(id.domain, "");
    assert_int_equal(ag_gss_map_name("alice@CORP.EXAMPLE", AG_GSS_NAME_STRIP, NULL, &id), 0);
    assert_string_equal(id.user, "alice");
    assert_string_equal(id.domain, "");
    assert_int_equal(ag_gss_map_name("alice@CORP.EXAMPLE", AG_GSS_NAME_BACKSLASH, NULL, &id), 0);
    assert_string_equal(id.user, "alice");
    assert_string_equal(id.domain, "CORP.EXAMPLE");
    /* realm allow-list, case-insensitive, comma-separated */
    assert_int_equal(
        ag_gss_map_name("bob@LAB.EXAMPLE", AG_GSS_NAME_KEEP, "corp.example,lab.example", &id), 0);
    assert_int_equal(
        ag_gss_map_name("bob@EVIL.EXAMPLE", AG_GSS_NAME_KEEP, "CORP.EXAMPLE,LAB.EXAMPLE", &id),
        AG_EUNSUPP);
    assert_int_equal(ag_gss_map_name("bob@CORP.EXAMPLEX", AG_GSS_NAME_KEEP, "CORP.EXAMPLE", &id),
                     AG_EUNSUPP);
    /* the last '@' separates the realm (enterprise names hold one more) */
    assert_int_equal(ag_gss_map_name("a@b@CORP.EXAMPLE", AG_GSS_NAME_STRIP, "CORP.EXAMPLE", &id),
                     0);
    assert_string_equal(id.user, "a@b");
    /* malformed */
    assert_int_equal(ag_gss_map_name("alice", AG_GSS_NAME_KEEP, NULL, &id), AG_EINVAL);
    assert_int_equal(ag_gss_map_name("@CORP", AG_GSS_NAME_KEEP, NULL, &id), AG_EINVAL);
    assert_int_equal(ag_gss_map_name("alice@", AG_GSS_NAME_KEEP, NULL, &id), AG_EINVAL);
    assert_int_equal(ag_gss_map_name("al\nice@CORP", AG_GSS_NAME_KEEP, NULL, &id), AG_EINVAL);
}

static void test_missing_keytab(void **state)
{
    char err[700];
    struct ag_gss_acceptor *a =
        ag_gss_acceptor_new("/nonexistent/authgate.keytab", "HTTP@localhost", err, sizeof err);
    assert_null(a);
    assert_non_null(strstr(err, "/nonexistent/authgate.keytab"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_precheck),       cmocka_unit_test(test_route),
        cmocka_unit_test(test_token_decode),   cmocka_unit_test(test_map_name),
        cmocka_unit_test(test_missing_keytab),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
