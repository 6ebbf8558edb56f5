/* fuzz_canon.c - differential target: host and path canonicalization
 * (src/http/target.c) against the access-rule matcher (src/rules/rules.c)
 * that consumes them.
 *
 * Input: byte 0 picks the variants, then "HOST\nPATH" (raw, as in a request
 * target). The rules below deny hosts and paths in the shapes attackers
 * re-spell. Invariants, all on the verdict AND the deciding rule:
 *   - canonicalizing the canonical host (or path) again changes neither it
 *     nor the verdict: a canonical form never matches a rule that the raw
 *     form's canonical form would not;
 *   - another spelling of the same host (letter case, one trailing dot)
 *     canonicalizes to the same host and the same verdict;
 *   - another spelling of the same path (every byte %-encoded, upper-case
 *     hex or not, "/./" inserted, a "x/../" detour, letter case with
 *     case-insensitive rules) gets the same verdict.
 * Build: cmake -DAG_FUZZ=ON with CC=clang; run: fuzz_canon corpus/canon.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authgate/err.h"
#include "http/target.h"
#include "rules/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void CHECK(bool ok)
{
    if (!ok)
        abort();
}

static const char rules_text[] = "deny host_exact host=secret.example\n"
                                 "deny host_wild host=*.corp.example\n"
                                 "deny host_v4 host=127.0.0.1\n"
                                 "deny host_v6 host=::1\n"
                                 "deny host_mapped host=10.1.2.3\n"
                                 "deny path_admin path=/admin/\n"
                                 "deny path_web path=/WEB-INF\n"
                                 "deny path_deep path=/a/b/c\n"
                                 "allow rest\n";
static struct ag_rules *rules;

struct verdict {
    enum ag_rule_verdict v;
    const char *rule;
};

static struct verdict eval(const char *host, const char *path, size_t pl)
{
    struct ag_rules_query q = {
        .host = host, .port = 80, .method = "GET", .path = path, .path_len = pl, .now = 0};
    struct verdict r = {0, NULL};
    r.v = ag_rules_eval(rules, &q, false, &r.rule, NULL);
    return r;
}

static bool same(struct verdict a, struct verdict b)
{
    return a.v == b.v && strcmp(a.rule, b.rule) == 0;
}

/* ag_host_canon's output as request text again ("[v6]" for IPv6). */
static int recanon(const char *c, enum ag_host_kind kind, char *out)
{
    char again[AG_HOST_MAX + 3];
    enum ag_host_kind k2;
    size_t n = strlen(c);
    if (kind == AG_HOST_IPV6)
        n = (size_t)snprintf(again, sizeof again, "[%s]", c);
    else
        memcpy(again, c, n + 1);
    int r = ag_host_canon(again, n, out, AG_HOST_MAX + 1, &k2);
    CHECK(r > 0 && k2 == kind);
    return r;
}

static void hosts(const char *h, size_t hl, const char *path, size_t pl, unsigned sel)
{
    char c1[AG_HOST_MAX + 1], c2[AG_HOST_MAX + 1], cv[AG_HOST_MAX + 1];
    enum ag_host_kind kind, kv;
    if (ag_host_canon(h, hl, c1, sizeof c1, &kind) < 0)
        return;
    recanon(c1, kind, c2);
    CHECK(strcmp(c1, c2) == 0);
    struct verdict v1 = eval(c1, path, pl);
    CHECK(same(v1, eval(c2, path, pl)));
    /* Other spellings of the same name. */
    char *var = malloc(hl + 2);
    CHECK(var != NULL);
    for (size_t i = 0; i < hl; i++)
        var[i] = (sel & 2) && h[i] >= 'a' && h[i] <= 'z' ? (char)(h[i] - 32) : h[i];
    size_t vl = hl;
    if ((sel & 4) && kind == AG_HOST_NAME && hl && h[hl - 1] != '.')
        var[vl++] = '.';
    if (ag_host_canon(var, vl, cv, sizeof cv, &kv) > 0 && kind != AG_HOST_IPV6) {
        CHECK(strcmp(cv, c1) == 0 && kv == kind);
        CHECK(same(v1, eval(cv, path, pl)));
    }
    free(var);
}

static void paths(const char *host, const char *p, size_t pl, unsigned sel)
{
    char *n1 = malloc(pl + 2), *n2 = malloc(pl + 3), *var = malloc(3 * pl + 16),
         *nv = malloc(3 * pl + 18);
    CHECK(n1 && n2 && var && nv);
    size_t l1 = ag_path_normalize(p, pl, n1);
    struct verdict v1 = eval(host, n1, l1);
    /* The normalized path, normalized again: the same verdict. A "%", "?"
     * or "#" left in it came from decoding "%25", "%3F", "%23" (decoded
     * once only, as origins do; the query is cut before): not re-fed. */
    if (!memchr(n1, '%', l1) && !memchr(n1, '?', l1) && !memchr(n1, '#', l1)) {
        size_t l2 = ag_path_normalize(n1, l1, n2);
        CHECK(l2 == l1 && memcmp(n1, n2, l1) == 0 && same(v1, eval(host, n2, l2)));
    }
    /* Re-spellings of the raw path, for paths without query, fragment,
     * "%" or ";" (whose meaning encoding would change). */
    bool plain = pl > 0 && p[0] == '/' && !memchr(p, '?', pl) && !memchr(p, '#', pl) &&
                 !memchr(p, '%', pl) && !memchr(p, ';', pl);
    if (plain) {
        static const char hex_u[] = "0123456789ABCDEF", hex_l[] = "0123456789abcdef";
        const char *hex = sel & 8 ? hex_l : hex_u;
        size_t o = 0;
        if (sel & 16) { /* "/./" then the rest */
            memcpy(var, "/.", 2);
            o = 2;
        }
        if (sel & 32) { /* a detour: "/x/.." */
            memcpy(var + o, "/x/..", 5);
            o += 5;
        }
        for (size_t i = 0; i < pl; i++) {
            unsigned char ch = (unsigned char)p[i];
            bool enc = (sel & 64) && ch != '/' && ch != '\\';
            if (sel & 128 && ch >= 'a' && ch <= 'z')
                ch = (unsigned char)(ch - 32);
            if (enc) {
                var[o++] = '%';
                var[o++] = hex[ch >> 4];
                var[o++] = hex[ch & 15];
            } else {
                var[o++] = (char)ch;
            }
        }
        size_t lv = ag_path_normalize(var, o, nv);
        if (!(sel & 128))
            CHECK(lv == l1 && memcmp(nv, n1, l1) == 0);
        CHECK(same(v1, eval(host, nv, lv))); /* rules compare without case */
    }
    free(n1);
    free(n2);
    free(var);
    free(nv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!rules) {
        char err[256];
        rules = ag_rules_parse(rules_text, "fuzz", NULL, NULL, err, sizeof err);
        CHECK(rules != NULL);
    }
    if (size < 1)
        return 0;
    unsigned sel = data[0];
    size_t n = size - 1;
    char *in = malloc(n ? n : 1);
    CHECK(in != NULL);
    memcpy(in, data + 1, n);
    const char *nl = memchr(in, '\n', n);
    size_t hl = nl ? (size_t)(nl - in) : n;
    const char *path = nl ? nl + 1 : "/";
    size_t pl = nl ? n - hl - 1 : 1;
    char *np = malloc(pl + 2);
    CHECK(np != NULL);
    size_t npl = ag_path_normalize(path, pl, np);
    hosts(in, hl, np, npl, sel);
    char c1[AG_HOST_MAX + 1];
    enum ag_host_kind kind;
    if (ag_host_canon(in, hl, c1, sizeof c1, &kind) < 0)
        strcpy(c1, "example.org");
    paths(c1, path, pl, sel);
    free(np);
    free(in);
    return 0;
}
