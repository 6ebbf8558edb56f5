/* fuzz_userfile.c - libFuzzer target for the local user file parser
 * (src/auth/userfile.c): operator input, and a file authgate-passwd
 * rewrites.
 *
 * Invariants: a refused file says where ("fuzz:LINE: ..." or "fuzz: ...");
 * an accepted one finds every entry it holds: each "NAME:HASH" line (first
 * ':' splits, blanks trimmed, '#' comments and blank lines skipped) looks
 * up by its domain and account, with the line's hash and NAME as its
 * canonical spelling, and under the opposite letter case too; the count is
 * the number of entry lines.
 * Build: cmake -DAG_FUZZ=ON with CC=clang; run: fuzz_userfile corpus/userfile.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/userfile.h"
#include "authgate/err.h"
#include "authgate/limits.h"
#include "util/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void CHECK(bool ok)
{
    if (!ok)
        abort();
}

static bool blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* One entry line of an accepted file, found as it is written. */
static void entry(const struct ag_userfile *uf, const char *s, size_t n)
{
    const char *colon = memchr(s, ':', n);
    CHECK(colon != NULL);
    size_t nl = (size_t)(colon - s), hl = n - nl - 1;
    CHECK(nl >= 1 && nl <= AG_USER_MAX && hl == 32);
    uint8_t want[16];
    for (size_t i = 0; i < 16; i++) {
        int hi = ag_hexval(colon[1 + 2 * i]), lo = ag_hexval(colon[2 + 2 * i]);
        CHECK(hi >= 0 && lo >= 0);
        want[i] = (uint8_t)(hi << 4 | lo);
    }
    char name[AG_USER_MAX + 1], dom[AG_USER_MAX + 1], canon[AG_USER_MAX + 1];
    memcpy(name, s, nl);
    name[nl] = '\0';
    const char *acct = name, *bs = strchr(name, '\\');
    dom[0] = '\0';
    if (bs) {
        memcpy(dom, name, (size_t)(bs - name));
        dom[bs - name] = '\0';
        acct = bs + 1;
    }
    uint8_t got[16];
    CHECK(ag_userfile_lookup(uf, dom, acct, got, canon, sizeof canon) == 0);
    CHECK(memcmp(got, want, 16) == 0 && strcmp(canon, name) == 0);
    /* ASCII case-insensitive: the other case finds the same entry. */
    for (char *p = name; *p; p++)
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))
            *p ^= 0x20;
    bs = strchr(name, '\\');
    if (bs) {
        memcpy(dom, name, (size_t)(bs - name));
        acct = bs + 1;
    } else {
        acct = name;
    }
    CHECK(ag_userfile_lookup(uf, dom, acct, got, NULL, 0) == 0 && memcmp(got, want, 16) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size ? size : 1);
    CHECK(in != NULL);
    memcpy(in, data, size);
    char err[256];
    struct ag_userfile *uf = ag_userfile_parse(in, size, "fuzz", err, sizeof err);
    if (!uf) {
        CHECK(strncmp(err, "fuzz:", 5) == 0 && memchr(err, '\0', sizeof err));
        free(in);
        return 0;
    }
    size_t entries = 0;
    for (size_t off = 0; off < size;) {
        const char *p = in + off, *nl = memchr(p, '\n', size - off);
        size_t n = nl ? (size_t)(nl - p) : size - off;
        off += n + 1;
        while (n && (blank(p[n - 1]) || p[n - 1] == '\r'))
            n--;
        while (n && blank(*p)) {
            p++;
            n--;
        }
        if (n == 0 || *p == '#')
            continue;
        entry(uf, p, n);
        entries++;
    }
    CHECK(ag_userfile_count(uf) == entries);
    ag_userfile_free(uf);
    free(in);
    return 0;
}
