/* fuzz_proxyproto.c - libFuzzer target for the PROXY protocol header parser
 * (src/http/proxyproto.c).
 *
 * One input, as an exact-size heap copy (so ASan sees any over-read), is
 * parsed with a small ceiling and the real one. Invariants: a whole header
 * is no longer than the input, the ceiling, and (v1) 107 bytes; parsing
 * just its bytes gives the same header, and one byte less says "read
 * more" (a header split across reads parses the same); "read more" never
 * comes past a ceiling; an error always says why.
 * Build: cmake -DAG_FUZZ=ON with CC=clang; run: fuzz_proxyproto corpus/proxyproto.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authgate/err.h"
#include "authgate/limits.h"
#include "http/proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void CHECK(bool ok)
{
    if (!ok)
        abort();
}

static void one(const uint8_t *p, size_t len, size_t max)
{
    struct ag_proxy_header h, again;
    const char *why = NULL;
    int rc = ag_proxy_parse(p, len, max, &h, &why);
    CHECK(rc == 0 || rc == AG_EAGAIN || rc == AG_EINVAL || rc == AG_ELIMIT);
    if (rc == AG_EINVAL || rc == AG_ELIMIT)
        CHECK(why != NULL && why[0] != '\0');
    if (rc == AG_EAGAIN)
        CHECK(len < (len && p[0] == 'P' ? (size_t)AG_PROXY_V1_MAX : max));
    if (rc != 0)
        return;
    CHECK(h.version == 1 || h.version == 2);
    CHECK(h.len > 0 && h.len <= len && h.len <= (h.version == 1 ? AG_PROXY_V1_MAX : max));
    CHECK(ag_proxy_parse(p, h.len, max, &again, &why) == 0);
    CHECK(again.len == h.len && again.local == h.local && again.version == h.version);
    CHECK(memcmp(&again.src, &h.src, sizeof h.src) == 0);
    CHECK(ag_proxy_parse(p, h.len - 1, max, &again, &why) == AG_EAGAIN);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *p = malloc(size ? size : 1);
    if (!p)
        return 0;
    memcpy(p, data, size);
    one(p, size, 64);
    one(p, size, AG_PROXY_HEADER_MAX);
    free(p);
    return 0;
}
