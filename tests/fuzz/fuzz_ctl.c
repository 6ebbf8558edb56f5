/* fuzz_ctl.c - libFuzzer target for the status-socket protocol's framing
 * and command line (src/ctl/proto.c), which any member of the allowed
 * users/groups may write to the daemon.
 *
 * The input is the bytes read so far. Invariants: a framed line lies inside
 * the input and holds no newline; "read more" never comes past the line
 * cap; a parsed command has 1..AG_CTL_ARGS_MAX words, each non-empty,
 * printable and without blanks, inside the owned copy; ag_ctl_arg finds
 * only "key=value" words; parsing a line rebuilt from the words gives the
 * same command (the split is idempotent).
 * Build: cmake -DAG_FUZZ=ON with CC=clang; run: fuzz_ctl corpus/ctl.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authgate/err.h"
#include "ctl/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void CHECK(bool ok)
{
    if (!ok)
        abort();
}

static bool inside(const char *p, const struct ag_ctl_cmd *c)
{
    return p >= c->buf && p < c->buf + sizeof c->buf;
}

static void word_ok(const char *w, const struct ag_ctl_cmd *c)
{
    CHECK(inside(w, c) && w[0] != '\0');
    for (const char *p = w; *p; p++)
        CHECK(*p > 0x20 && *p < 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size ? size : 1);
    CHECK(in != NULL);
    memcpy(in, data, size);
    size_t ll = 0;
    int rc = ag_ctl_frame(in, size, &ll);
    CHECK(rc == 0 || rc == AG_EAGAIN || rc == AG_ELIMIT);
    if (rc == AG_EAGAIN)
        CHECK(size < AG_CTL_LINE_MAX && !memchr(in, '\n', size));
    /* Frame or not, the parser takes any line it is given. */
    size_t len = rc == 0 ? ll : size;
    if (rc == 0)
        CHECK(ll < size && !memchr(in, '\n', ll));
    struct ag_ctl_cmd *c = malloc(sizeof *c), *again = malloc(sizeof *again);
    CHECK(c && again);
    if (ag_ctl_parse(in, len, c) == 0) {
        CHECK(len <= AG_CTL_LINE_MAX && c->argc <= AG_CTL_ARGS_MAX);
        word_ok(c->name, c);
        char line[2 * AG_CTL_LINE_MAX + 2];
        size_t o = strlen(c->name);
        memcpy(line, c->name, o);
        for (size_t i = 0; i < c->argc; i++) {
            word_ok(c->argv[i], c);
            const char *eq = strchr(c->argv[i], '=');
            if (eq && eq > c->argv[i]) {
                char key[AG_CTL_LINE_MAX + 1];
                memcpy(key, c->argv[i], (size_t)(eq - c->argv[i]));
                key[eq - c->argv[i]] = '\0';
                const char *val = ag_ctl_arg(c, key);
                CHECK(val != NULL && inside(val, c)); /* the first key=... wins */
            }
            line[o++] = ' ';
            size_t wl = strlen(c->argv[i]);
            memcpy(line + o, c->argv[i], wl);
            o += wl;
        }
        CHECK(ag_ctl_parse(line, o, again) == 0 && again->argc == c->argc &&
              strcmp(again->name, c->name) == 0);
        for (size_t i = 0; i < c->argc; i++)
            CHECK(strcmp(again->argv[i], c->argv[i]) == 0);
    }
    free(c);
    free(again);
    free(in);
    return 0;
}
