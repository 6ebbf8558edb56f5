/* misc.c - wiping, constant-time compare, escaping, clocks, error strings. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

void ag_wipe(void *p, size_t n)
{
    if (p && n)
        explicit_bzero(p, n);
}

int ag_ct_memcmp(const void *a, const void *b, size_t n)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++)
        d |= (uint8_t)(x[i] ^ y[i]);
    return d != 0;
}

int ag_parse_dec(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    if (len == 0)
        return AG_EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return AG_EINVAL;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (d > max || v > (max - d) / 10)
            return AG_ELIMIT;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int ag_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Kept verbatim: printable ASCII except '"', '\\' and the extra set. */
static bool plain(unsigned char ch, const char *extra)
{
    /* Letters and digits first: the extra sets are punctuation, and the
     * access log escapes every URL byte by byte. */
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return true;
    return ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\' && !(*extra && strchr(extra, ch));
}

static char *escape(char *dst, size_t dstcap, const char *src, size_t n, const char *extra)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, total = 0;
    if (dstcap == 0)
        return dst;
    /* Room for "..." is kept only when the escaped text does not fit whole:
     * a string that fits is never shown as truncated. */
    for (size_t i = 0; i < n && total < dstcap; i++)
        total += plain((unsigned char)src[i], extra) ? 1 : 4;
    bool cut = total >= dstcap;
    if (!cut && total == n) {
        /* Nothing to escape (most URLs): one copy. */
        if (n)
            memcpy(dst, src, n);
        dst[n] = '\0';
        return dst;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)src[i];
        size_t need = plain(ch, extra) ? 1 : 4;
        if (cut && o + need + 3 >= dstcap) {
            if (dstcap > 4) {
                o = o < dstcap - 4 ? o : dstcap - 4;
                memcpy(dst + o, "...", 3);
                o += 3;
            }
            break;
        }
        if (need == 1) {
            dst[o++] = (char)ch;
        } else {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[ch >> 4];
            dst[o++] = hex[ch & 15];
        }
    }
    dst[o] = '\0';
    return dst;
}

char *ag_escape(char *dst, size_t dstcap, const char *src, size_t n)
{
    return escape(dst, dstcap, src, n, "");
}

char *ag_escape_field(char *dst, size_t dstcap, const char *src, size_t n)
{
    return escape(dst, dstcap, src, n, " =");
}

char *ag_escape_dup(const char *src, size_t n)
{
    if (n > (SIZE_MAX - 1) / 4)
        return NULL;
    size_t cap = 4 * n + 1; /* every byte as \xHH, and the NUL: never cut */
    char *d = malloc(cap);
    return d ? escape(d, cap, src, n, "") : NULL;
}

const char *ag_escape_buf(struct ag_buf *b, const char *src, size_t n)
{
    if (n > (SIZE_MAX - 1) / 4)
        return NULL;
    b->len = 0;
    if (ag_buf_reserve(b, 4 * n + 1) != 0)
        return NULL;
    escape(b->data, 4 * n + 1, src, n, "");
    b->len = strlen(b->data);
    return b->data;
}

int ag_random(void *buf, size_t n)
{
    uint8_t *b = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(b + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return AG_EIO;
        got += (size_t)r;
    }
    return 0;
}

uint64_t ag_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const char *ag_strerror(int code)
{
    switch (code) {
    case AG_OK:
        return "ok";
    case AG_ENOMEM:
        return "out of memory";
    case AG_ELIMIT:
        return "limit exceeded";
    case AG_EINVAL:
        return "invalid input";
    case AG_EIO:
        return "i/o error";
    case AG_ENOTFOUND:
        return "not found";
    case AG_EAUTH:
        return "authentication failed";
    case AG_EBACKEND:
        return "backend unavailable";
    case AG_EUNSUPP:
        return "refused by policy";
    case AG_EAGAIN:
        return "busy";
    default:
        return "unknown error";
    }
}

char *ag_file_read(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
    struct stat st;
    char *buf = NULL;
    size_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        errno = e;
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        goto out;
    }
    if ((uint64_t)st.st_size > max) {
        snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
        goto out;
    }
    if (!(buf = malloc(max + 2))) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    for (;;) { /* to one byte past the cap: a file that grew is refused too */
        ssize_t r = read(fd, buf + n, max + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            goto bad;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max) {
            snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
            goto bad;
        }
    }
    buf[n] = '\0';
    *len = n;
    close(fd);
    errno = 0;
    return buf;
bad:
    free(buf);
    buf = NULL;
out:
    close(fd);
    errno = 0;
    return NULL;
}
