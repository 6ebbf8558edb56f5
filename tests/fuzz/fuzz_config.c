/* fuzz_config.c - libFuzzer target for the configuration file
 * (src/config/config.c): operator input, parsed at start-up, on reload and
 * by "authgate -t".
 *
 * Invariants: a refusal says where ("fuzz:LINE: ..." or "fuzz: ...") in a
 * terminated message; an accepted file dumps (ag_config_dump, what
 * "authgate -t -v" prints) to text that parses again to a configuration
 * whose dump is the same: the effective configuration is a fixed point.
 * Build: cmake -DAG_FUZZ=ON with CC=clang; run: fuzz_config corpus/config.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void CHECK(bool ok)
{
    if (!ok)
        abort();
}

static char *dump(const struct ag_config *c, size_t *len)
{
    char *s = NULL;
    FILE *f = open_memstream(&s, len);
    CHECK(f != NULL);
    ag_config_dump(c, f);
    CHECK(fclose(f) == 0);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size ? size : 1);
    CHECK(in != NULL);
    memcpy(in, data, size);
    char err[512];
    struct ag_config *c = ag_config_parse(in, size, "fuzz", "/etc/authgate", err, sizeof err);
    if (!c) {
        CHECK(memchr(err, '\0', sizeof err) && strncmp(err, "fuzz", 4) == 0);
        free(in);
        return 0;
    }
    size_t l1, l2;
    char *d1 = dump(c, &l1);
    struct ag_config *c2 = ag_config_parse(d1, l1, "dump", "/etc/authgate", err, sizeof err);
    if (!c2)
        fprintf(stderr, "dump refused: %s\n", err);
    CHECK(c2 != NULL);
    char *d2 = dump(c2, &l2);
    CHECK(l1 == l2 && memcmp(d1, d2, l1) == 0);
    free(d1);
    free(d2);
    ag_config_unref(c);
    ag_config_unref(c2);
    free(in);
    return 0;
}
