/* cursor.h - the one bounds-checked reader for bytes from the network.
 *
 * Every parser of untrusted binary data (NTLMSSP, SPNEGO sniffing) reads
 * through this: each read checks off <= len and n <= len - off, so no
 * arithmetic can overflow, and a failed read leaves the cursor unchanged.
 * Pure; any thread.
 */
#ifndef AG_CURSOR_H
#define AG_CURSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct ag_cursor {
    const uint8_t *p; /* borrowed */
    size_t len;
    size_t off;
};

static inline void ag_cur_init(struct ag_cursor *c, const void *p, size_t len)
{
    c->p = p;
    c->len = len;
    c->off = 0;
}

static inline size_t ag_cur_left(const struct ag_cursor *c)
{
    return c->off <= c->len ? c->len - c->off : 0;
}

/* True if [off, off+n) lies inside the buffer; overflow-safe. */
static inline bool ag_cur_has(const struct ag_cursor *c, size_t off, size_t n)
{
    return off <= c->len && n <= c->len - off;
}

static inline bool ag_cur_skip(struct ag_cursor *c, size_t n)
{
    if (!ag_cur_has(c, c->off, n))
        return false;
    c->off += n;
    return true;
}

static inline bool ag_cur_bytes(struct ag_cursor *c, void *out, size_t n)
{
    if (!ag_cur_has(c, c->off, n))
        return false;
    memcpy(out, c->p + c->off, n);
    c->off += n;
    return true;
}

static inline bool ag_cur_u8(struct ag_cursor *c, uint8_t *v)
{
    return ag_cur_bytes(c, v, 1);
}

static inline bool ag_cur_u16le(struct ag_cursor *c, uint16_t *v)
{
    uint8_t b[2];
    if (!ag_cur_bytes(c, b, 2))
        return false;
    *v = (uint16_t)(b[0] | (b[1] << 8));
    return true;
}

/* Network byte order, for the few wire formats that use it (PROXY v2). */
static inline bool ag_cur_u16be(struct ag_cursor *c, uint16_t *v)
{
    uint8_t b[2];
    if (!ag_cur_bytes(c, b, 2))
        return false;
    *v = (uint16_t)((b[0] << 8) | b[1]);
    return true;
}

static inline bool ag_cur_u32le(struct ag_cursor *c, uint32_t *v)
{
    uint8_t b[4];
    if (!ag_cur_bytes(c, b, 4))
        return false;
    *v = (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
    return true;
}

static inline bool ag_cur_u64le(struct ag_cursor *c, uint64_t *v)
{
    uint32_t lo, hi;
    size_t save = c->off;
    if (!ag_cur_u32le(c, &lo) || !ag_cur_u32le(c, &hi)) {
        c->off = save;
        return false;
    }
    *v = ((uint64_t)hi << 32) | lo;
    return true;
}

/* A pointer to n bytes at absolute offset off (no cursor movement), or NULL. */
static inline const uint8_t *ag_cur_at(const struct ag_cursor *c, size_t off, size_t n)
{
    return ag_cur_has(c, off, n) ? c->p + off : NULL;
}

/* Little-endian writers for building messages into a fixed buffer. */
static inline void ag_put_u16le(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void ag_put_u32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

#endif
