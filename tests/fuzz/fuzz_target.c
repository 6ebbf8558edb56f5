/* fuzz_target.c - libFuzzer target for request-target parsing
 * (src/http/target.c): the canonical host, absolute and authority forms,
 * and the rule path.
 *
 * One input, as an exact-size heap copy (so ASan sees any over-read), goes
 * to every parser. Invariants: a canonical host is its own canonical form
 * (one spelling: canonicalizing again changes nothing), has no upper-case
 * letter and fits the buffer; a parsed target's authority parses back to
 * the same host and port; a rule path starts with "/", has no "." or ".."
 * segment and no ";", and normalizing it again changes nothing.
 * Build: cmake -DAG_FUZZ=ON with CC=clang; run: fuzz_target corpus/target.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authgate/err.h"
#include "http/target.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant broken is a finding: abort so libFuzzer keeps the input. */
static void CHECK(bool ok)
{
    if (!ok)
        abort();
}

static void check_host(const char *in, size_t len)
{
    char out[AG_HOST_MAX + 1], again[AG_HOST_MAX + 3], out2[AG_HOST_MAX + 1];
    enum ag_host_kind kind, kind2;
    int n = ag_host_canon(in, len, out, sizeof out, &kind);
    CHECK(n == AG_EINVAL || n > 0);
    if (n < 0)
        return;
    CHECK((size_t)n == strlen(out) && (size_t)n <= AG_HOST_MAX);
    for (int i = 0; i < n; i++)
        CHECK(!(out[i] >= 'A' && out[i] <= 'Z'));
    size_t al = (size_t)n;
    if (kind == AG_HOST_IPV6) {
        again[0] = '[';
        memcpy(again + 1, out, al);
        again[al + 1] = ']';
        al += 2;
    } else {
        memcpy(again, out, al);
    }
    int n2 = ag_host_canon(again, al, out2, sizeof out2, &kind2);
    CHECK(n2 == n && kind2 == kind && memcmp(out, out2, (size_t)n) == 0);
}

static void check_path(const char *in, size_t len)
{
    char *out = malloc(len + 2), *out2 = malloc(len + 3);
    CHECK(out && out2);
    size_t n = ag_path_normalize(in, len, out);
    CHECK(n >= 1 && n <= len + 1 && out[0] == '/' && out[n] == '\0');
    CHECK(!memchr(out, ';', n));
    for (size_t s = 1; s < n;) {
        size_t e = s;
        while (e < n && out[e] != '/')
            e++;
        size_t sl = e - s;
        CHECK(sl > 0 || e == n); /* no empty segment but a final one */
        CHECK(!(sl == 1 && out[s] == '.') && !(sl == 2 && out[s] == '.' && out[s + 1] == '.'));
        s = e + 1;
    }
    /* Idempotent unless decoding produced a new "%XX" (decoded once only). */
    if (!memchr(out, '%', n) && !memchr(out, '?', n) && !memchr(out, '#', n)) {
        size_t n2 = ag_path_normalize(out, n, out2);
        CHECK(n2 == n && memcmp(out, out2, n) == 0);
    }
    free(out);
    free(out2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size ? size : 1);
    CHECK(in);
    memcpy(in, data, size);
    check_host(in, size);
    check_path(in, size);
    struct ag_target t;
    char auth[AG_HOST_MAX + 16];
    if (ag_target_parse_absolute(in, size, &t) == 0 ||
        ag_target_parse_authority(in, size, &t) == 0) {
        char url[64];
        ag_target_url(&t, url, sizeof url); /* truncates: must stay in bounds */
        CHECK(strlen(url) < sizeof url && strncmp(url, "http://", 7) == 0);
        ag_target_authority(&t, auth, sizeof auth);
        struct ag_target t2;
        CHECK(ag_target_parse_authority(auth, strlen(auth), &t2) == 0);
        CHECK(strcmp(t.host, t2.host) == 0 && t.port == t2.port && t.ipv6 == t2.ipv6);
    }
    free(in);
    return 0;
}
