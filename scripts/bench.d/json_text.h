/* json_text.h - a C string as the body of a JSON string, for the one-line
 * JSON results the load tools of scripts/bench print (loadgen.h, gss_pair.c).
 * Header-only: each tool is one gcc command.
 */
#ifndef BENCH_JSON_TEXT_H
#define BENCH_JSON_TEXT_H

#include <stddef.h>

/* in into out (cap bytes, NUL-terminated, cut where it does not fit):
 * '"' and '\' escaped, anything outside printable ASCII as '?'. */
static void json_text(char *out, size_t cap, const char *in)
{
    size_t e = 0;
    for (const char *p = in; *p && e < cap - 3; p++) {
        if (*p == '"' || *p == '\\')
            out[e++] = '\\';
        out[e++] = (*p >= 32 && *p < 127) ? *p : '?';
    }
    out[e] = 0;
}

#endif
