/* util.h - small helpers shared by every module.
 *
 * Glossary: ag_buf = growable byte buffer with a hard ceiling; cursor = a
 * bounds-checked little-endian reader (cursor.h); wipe = explicit_bzero.
 * Every function here is thread-safe on distinct objects; nothing here uses
 * libuv, so auth/ code may use it on pool threads.
 */
#ifndef AG_UTIL_H
#define AG_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "authgate/err.h"

/* A growable buffer that never grows past max (set at creation). Owns data.
 * Bytes it holds may be secret: growth copies and wipes the old block (never
 * realloc), consume wipes what it drops, free wipes the whole block. */
struct ag_buf {
    char *data;
    size_t len; /* bytes in use */
    size_t cap; /* bytes allocated */
    size_t max; /* ceiling: appends beyond it fail with AG_ELIMIT */
};

void ag_buf_init(struct ag_buf *b, size_t max);
/* Room for extra more bytes past len (AG_ELIMIT past the ceiling, AG_ENOMEM). */
int ag_buf_reserve(struct ag_buf *b, size_t extra);
/* ag_buf_append when the block must grow (or the ceiling refuses). */
int ag_buf_append_grow(struct ag_buf *b, const void *p, size_t n);
/* Appends n bytes; AG_ELIMIT past the ceiling, AG_ENOMEM. Inline: heads
 * are built from dozens of small appends per request, and a block that
 * has room needs only the copy. */
static inline int ag_buf_append(struct ag_buf *b, const void *p, size_t n)
{
    /* (The first block may be larger than a small ceiling. The PTRDIFF_MAX
     * test is for the compiler: no block is that big.) */
    if (n > b->cap - b->len || n > b->max - b->len || n > PTRDIFF_MAX)
        return ag_buf_append_grow(b, p, n);
    if (n) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
    }
    return 0;
}
/* Inline too: the length of a literal folds. */
static inline int ag_buf_appendz(struct ag_buf *b, const char *s)
{
    return ag_buf_append(b, s, strlen(s));
}
/* Appends v in decimal: the per-request heads (status, Content-Length,
 * port) without a printf. */
int ag_buf_append_u64(struct ag_buf *b, uint64_t v);
/* Appends v in lower-case hex, no leading zeros: chunk size lines. */
int ag_buf_append_hex(struct ag_buf *b, uint64_t v);
int ag_buf_printf(struct ag_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes (memmove) and wipes the bytes it vacates. */
void ag_buf_consume(struct ag_buf *b, size_t n);
/* Hands the data to the caller (who frees it) and empties the buffer. */
char *ag_buf_steal(struct ag_buf *b, size_t *len);
/* Wipes (the bytes may be secret) and frees. Accepts an empty buffer. */
void ag_buf_free(struct ag_buf *b);

/* explicit_bzero: for secrets, never optimised away. */
void ag_wipe(void *p, size_t n);
/* Constant-time comparison of two equal-length byte strings: 0 if equal. */
int ag_ct_memcmp(const void *a, const void *b, size_t n);

/* Strict RFC 4648 base64 (standard alphabet, padding required, no spaces).
 * Decodes into out (capacity outcap); AG_ELIMIT if the decoded size would
 * exceed outcap (checked before decoding), AG_EINVAL for any bad character,
 * bad padding or length. Empty input decodes to 0 bytes. */
int ag_b64_decode(const char *in, size_t inlen, uint8_t *out, size_t outcap, size_t *outlen);
/* Encoded length of n bytes, without the NUL. */
size_t ag_b64_encoded_len(size_t n);
/* Encodes into out (which holds ag_b64_encoded_len(n)+1 bytes), NUL-terminated. */
void ag_b64_encode(const uint8_t *in, size_t n, char *out);
/* A header line "<prefix><base64 of in>\r\n" in a new buffer (the caller
 * wipes and frees it: it carries a credential), or NULL (out of memory). */
char *ag_b64_field(const char *prefix, const uint8_t *in, size_t n);

/* A decimal number (1*DIGIT: no sign, no blanks) from the bounded slice
 * s[0..len), which needs no NUL: 0 and *out, AG_EINVAL when the slice is
 * empty or holds anything but digits, AG_ELIMIT when the value exceeds max
 * (checked before it could overflow). *out is written only on success. */
int ag_parse_dec(const char *s, size_t len, uint64_t max, uint64_t *out);

/* The value of one hex digit (either case), or -1. */
int ag_hexval(char c);

/* ASCII lower case: protocol names and tokens, never locale-dependent
 * (tolower() follows the locale and takes an int that must fit unsigned char). */
static inline char ag_ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

/* ASCII case-insensitive equality of a[0..n) and b[0..n). */
static inline bool ag_strnieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ag_ascii_lower(a[i]) != ag_ascii_lower(b[i]))
            return false;
    return true;
}

/* ASCII case-insensitive equality of (a,alen) with NUL-terminated b.
 * Inline: most b are literals, whose strlen the compiler folds, so a field
 * of another length costs one compare (headers are matched against names on
 * every request). */
static inline bool ag_strieq(const char *a, size_t alen, const char *b)
{
    return strlen(b) == alen && ag_strnieq(a, b, alen);
}
/* Escapes untrusted bytes for a log line into dst (always NUL-terminated):
 * printable ASCII except '"' and '\\' kept, everything else \xHH; truncated
 * to dstcap-1 with a trailing "..." when cut. Returns dst. */
char *ag_escape(char *dst, size_t dstcap, const char *src, size_t n);

/* ag_escape, and also ' ' and '=' as \x20 and \x3d: for a value inside a
 * key=value log line, where a client-chosen name must not forge a field. */
char *ag_escape_field(char *dst, size_t dstcap, const char *src, size_t n);
/* ag_escape into a malloc'd string of the worst-case size (4 bytes per
 * byte): never truncated, for text bounded elsewhere (a URL, at most
 * AG_URL_MAX) that a log must show whole. NULL when out of memory. */
char *ag_escape_dup(const char *src, size_t n);
/* ag_escape_dup into b instead of a new block: b's previous text is
 * replaced, its block kept from one use to the next (a connection's access
 * log URL: no allocation per request). NULL when out of memory or past b's
 * ceiling. */
const char *ag_escape_buf(struct ag_buf *b, const char *src, size_t n);

/* Fills buf from the kernel CSPRNG (getrandom(2)), retrying on EINTR and
 * short reads. 0 or AG_EIO. For challenges, salts and hash seeds. */
int ag_random(void *buf, size_t n);

/* Reads the regular file at path whole into a malloc'd, NUL-terminated
 * buffer of at most max bytes (checked before reading, and while reading
 * in case the file grows). NULL with "path: why" in err (not a regular
 * file, larger than max, I/O). A missing file is an error like any other:
 * callers that allow one check errno == ENOENT. Any thread. */
char *ag_file_read(const char *path, size_t max, size_t *len, char *err, size_t errlen);

/* Monotonic milliseconds (CLOCK_MONOTONIC). */
uint64_t ag_now_ms(void);

#endif
