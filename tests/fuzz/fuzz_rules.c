/* fuzz_rules.c - libFuzzer target for the rules file (src/rules/rules.c):
 * operator input, compiled at start-up and on every reload.
 *
 * The file is compiled with a resolver that knows two winbind groups; what
 * compiles is evaluated for a set of requests (anonymous and authenticated,
 * with and without groups, names and addresses, every method) in both
 * passes. Invariants: a refusal says where ("fuzz:LINE: ..."); a verdict
 * names a rule; compiling the same text again gives the same verdicts
 * (first match wins, whatever the allocation); the pre-auth pass answers
 * only from auth=none rules (never NEED_ADDR without the recheck flag).
 * Build: cmake -DAG_FUZZ=ON with CC=clang; run: fuzz_rules corpus/rules.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authgate/err.h"
#include "rules/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void CHECK(bool ok)
{
    if (!ok)
        abort();
}

static int resolver(void *arg, const char *name, char *sid, size_t cap)
{
    (void)arg;
    if (strcmp(name, "CORP\\staff") == 0 || strcmp(name, "staff") == 0)
        return snprintf(sid, cap, "S-1-5-21-1-2-3-1001") < (int)cap ? 0 : AG_ENOTFOUND;
    if (strcmp(name, "CORP\\admins") == 0)
        return snprintf(sid, cap, "S-1-5-21-1-2-3-512") < (int)cap ? 0 : AG_ENOTFOUND;
    return AG_ENOTFOUND;
}

/* An IPv4 (a.b.c.d as one number) or IPv6 (2001:db8::N) address. */
static struct sockaddr_storage v4(uint32_t a)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    s4->sin_family = AF_INET;
    s4->sin_addr.s_addr = htonl(a);
    return ss;
}

static struct sockaddr_storage v6_doc(uint8_t last)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_addr.s6_addr[0] = 0x20;
    s6->sin6_addr.s6_addr[1] = 0x01;
    s6->sin6_addr.s6_addr[2] = 0x0d;
    s6->sin6_addr.s6_addr[3] = 0xb8;
    s6->sin6_addr.s6_addr[15] = last;
    return ss;
}

#define N_QUERIES 8

static void evaluate(const struct ag_rules *r, enum ag_rule_verdict *v, const char **names)
{
    static char sids[] = "S-1-5-21-1-2-3-1001,S-1-5-21-1-2-3-513";
    struct ag_identity alice, bob;
    memset(&alice, 0, sizeof alice);
    memset(&bob, 0, sizeof bob);
    snprintf(alice.user, sizeof alice.user, "alice");
    snprintf(alice.domain, sizeof alice.domain, "CORP");
    alice.sids = sids;
    snprintf(bob.user, sizeof bob.user, "bob");
    bob.groups_unknown = true;
    struct sockaddr_storage src = v4(0x0a000007), dst4 = v4(0xc0000201), dst6 = v6_doc(1);
    static const char *const hosts[] = {"example.org", "a.corp.example", "192.0.2.1",
                                        "2001:db8::1"};
    static const char *const methods[] = {"GET", "CONNECT", "POST", "PROPFIND"};
    for (int i = 0; i < N_QUERIES; i++) {
        struct ag_rules_query q = {
            .host = hosts[i % 4],
            .dst = i % 4 == 2   ? (const struct sockaddr *)&dst4
                   : i % 4 == 3 ? (const struct sockaddr *)&dst6
                                : NULL,
            .port = (uint16_t)(i & 1 ? 443 : 80),
            .method = methods[i / 2 % 4],
            .path = i / 2 % 4 == 1 ? NULL : "/admin/x",
            .path_len = i / 2 % 4 == 1 ? 0 : 8,
            .path_case_sensitive = i & 4,
            .src = (const struct sockaddr *)&src,
            .id = i % 3 == 0   ? NULL
                  : i % 3 == 1 ? &alice
                               : &bob,
            .scheme = i % 3 == 0 ? AG_SCHEME_NONE : AG_SCHEME_NTLM,
            .now = 1700000000 + 3600 * i,
        };
        bool recheck = false;
        const char *rule = NULL;
        v[2 * i] = ag_rules_eval(r, &q, true, &rule, &recheck);
        CHECK(rule != NULL && rule[0] != '\0');
        CHECK(v[2 * i] == AG_RULE_ALLOW || v[2 * i] == AG_RULE_DENY ||
              v[2 * i] == AG_RULE_NO_MATCH);
        names[2 * i] = rule;
        v[2 * i + 1] = ag_rules_eval(r, &q, false, &rule, NULL);
        CHECK(rule != NULL && rule[0] != '\0');
        names[2 * i + 1] = rule;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size + 1);
    CHECK(in != NULL);
    memcpy(in, data, size);
    in[size] = '\0';
    char err[256];
    struct ag_rules *r = ag_rules_parse(in, "fuzz", resolver, NULL, err, sizeof err);
    if (!r) {
        CHECK(strncmp(err, "fuzz", 4) == 0);
        free(in);
        return 0;
    }
    struct ag_rules *r2 = ag_rules_parse(in, "fuzz", resolver, NULL, err, sizeof err);
    CHECK(r2 != NULL && ag_rules_count(r) == ag_rules_count(r2));
    enum ag_rule_verdict v1[2 * N_QUERIES], v2[2 * N_QUERIES];
    const char *n1[2 * N_QUERIES], *n2[2 * N_QUERIES];
    evaluate(r, v1, n1);
    evaluate(r2, v2, n2);
    for (int i = 0; i < 2 * N_QUERIES; i++)
        CHECK(v1[i] == v2[i] && strcmp(n1[i], n2[i]) == 0);
    ag_rules_free(r);
    ag_rules_free(r2);
    free(in);
    return 0;
}
