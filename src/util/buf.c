/* buf.c - ag_buf: growable byte buffers with a ceiling (see util.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void ag_buf_init(struct ag_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

int ag_buf_reserve(struct ag_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return AG_ELIMIT;
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < need)
        ncap = ncap > b->max / 2 ? b->max : ncap * 2;
    /* Never realloc: it may move the block and release the old one
     * unwiped, and buffers hold Proxy-Authorization (the input buffer, the
     * head store). Copy, wipe, free. */
    char *n = malloc(ncap);
    if (!n)
        return AG_ENOMEM;
    if (b->data) {
        memcpy(n, b->data, b->len);
        ag_wipe(b->data, b->cap);
        free(b->data);
    }
    b->data = n;
    b->cap = ncap;
    return 0;
}

int ag_buf_append_grow(struct ag_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    int rc = ag_buf_reserve(b, n);
    if (rc)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int ag_buf_append_u64(struct ag_buf *b, uint64_t v)
{
    char d[20];
    size_t i = sizeof d;
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return ag_buf_append(b, d + i, sizeof d - i);
}

int ag_buf_append_hex(struct ag_buf *b, uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    char d[16];
    size_t i = sizeof d;
    do {
        d[--i] = hex[v & 15];
        v >>= 4;
    } while (v);
    return ag_buf_append(b, d + i, sizeof d - i);
}

int ag_buf_printf(struct ag_buf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return AG_EINVAL;
    if ((size_t)n < sizeof small)
        return ag_buf_append(b, small, (size_t)n);
    /* Format into a scratch copy: vsnprintf needs a byte for its NUL, which
     * must not count against the ceiling (an append of n bytes may reach max). */
    if ((size_t)n > b->max || b->len > b->max - (size_t)n)
        return AG_ELIMIT;
    char *tmp = malloc((size_t)n + 1);
    if (!tmp)
        return AG_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(tmp, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = ag_buf_append(b, tmp, (size_t)n);
    ag_wipe(tmp, (size_t)n + 1); /* the text may be secret, like the buffer's */
    free(tmp);
    return rc;
}

void ag_buf_consume(struct ag_buf *b, size_t n)
{
    /* The vacated bytes are wiped: no copy of a consumed head (with its
     * Proxy-Authorization) lingers past len, where ag_buf_steal would hand
     * it to a caller that frees with plain free(). */
    if (n >= b->len) {
        if (b->len)
            ag_wipe(b->data, b->len);
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    ag_wipe(b->data + b->len - n, n);
    b->len -= n;
}

char *ag_buf_steal(struct ag_buf *b, size_t *len)
{
    char *d = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

void ag_buf_free(struct ag_buf *b)
{
    if (b->data) {
        ag_wipe(b->data, b->cap);
        free(b->data);
    }
    b->data = NULL;
    b->len = b->cap = 0;
}
