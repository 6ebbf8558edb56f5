/* test_util.c - strict base64, bounded buffers, escaping, comparisons, cursor. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authgate/err.h"
#include "authgate/limits.h"
#include "util/addr.h"
#include "util/cursor.h"
#include "util/log.h"
#include "util/util.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- base64 --------------------------------------------------------------- */

/* RFC 4648 section 10. */
static const struct {
    const char *plain;
    const char *b64;
} b64_vectors[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

static void test_b64_rfc4648_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(b64_vectors); i++) {
        const char *p = b64_vectors[i].plain, *e = b64_vectors[i].b64;
        uint8_t out[16];
        size_t outlen = 999;
        assert_int_equal(ag_b64_decode(e, strlen(e), out, sizeof out, &outlen), 0);
        assert_int_equal(outlen, strlen(p));
        assert_memory_equal(out, p, outlen);
        /* an exact-size output buffer is enough */
        assert_int_equal(ag_b64_decode(e, strlen(e), out, strlen(p), &outlen), 0);

        char enc[16];
        assert_int_equal(ag_b64_encoded_len(strlen(p)), strlen(e));
        ag_b64_encode((const uint8_t *)p, strlen(p), enc);
        assert_string_equal(enc, e);
    }
}

static const char *const b64_bad[] = {
    "Zg",         /* missing padding */
    "Zm8",        /* missing padding */
    "Zg=",        /* short padding */
    "Zm9vY",      /* len % 4 == 1 */
    "Z",          /* len % 4 == 1 */
    "Zm9v-w==",   /* base64url '-' */
    "Zm9v_w==",   /* base64url '_' */
    "PD8-",       /* base64url '-' in the last quantum */
    "Zm 9vYmF",   /* inner space */
    "Zm9v YmF",   /* inner space at a quantum boundary */
    "Zm9vYg==\n", /* trailing newline */
    " Zm9vYmFy",  /* leading space */
    "Zg==Zg==",   /* '=' in the middle */
    "Z=g=",       /* '=' inside a quantum */
    "Zm=v",       /* '=' before a data char */
    "AB=C",       /* '=' in the third place only */
    "====",       /* padding only */
    "A===",       /* too much padding */
    "Zh==",       /* non-canonical: trailing bits set (one byte) */
    "Zm9=",       /* non-canonical: trailing bits set (two bytes) */
    "Zm8/Zg=/",   /* '=' before the last char */
    "Zm9vYmF\x80",
};

static void test_b64_rejects(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(b64_bad); i++) {
        const char *s = b64_bad[i];
        size_t len = strlen(s);
        uint8_t out[32];
        memset(out, 0xa5, sizeof out);
        size_t outlen = 777;
        int rc = ag_b64_decode(s, len, out, sizeof out, &outlen);
        if (rc != AG_EINVAL)
            fail_msg("b64_bad[%zu] '%s': rc %d", i, s, rc);
        assert_int_equal(outlen, 777); /* written only on success */
    }
    /* a NUL inside the counted length */
    size_t outlen = 0;
    uint8_t out[8];
    assert_int_equal(ag_b64_decode("Zm9v\0mFy", 8, out, sizeof out, &outlen), AG_EINVAL);
}

/* Canonical last quanta decode: every value of the last byte round trips, so
 * only the non-canonical forms above are refused. */
static void test_b64_trailing_bits(void **state)
{
    (void)state;
    for (unsigned v = 0; v < 256; v++) {
        uint8_t in[2] = {(uint8_t)v, (uint8_t)(255 - v)}, out[2];
        char enc[8];
        size_t outlen;
        for (size_t n = 1; n <= 2; n++) {
            ag_b64_encode(in, n, enc);
            assert_int_equal(ag_b64_decode(enc, strlen(enc), out, sizeof out, &outlen), 0);
            assert_int_equal(outlen, n);
            assert_memory_equal(out, in, n);
        }
    }
}

static void test_b64_cap_checked_first(void **state)
{
    (void)state;
    uint8_t out[8];
    size_t outlen = 777;
    memset(out, 0xa5, sizeof out);
    /* 6 bytes into 5: AG_ELIMIT, nothing written */
    assert_int_equal(ag_b64_decode("Zm9vYmFy", 8, out, 5, &outlen), AG_ELIMIT);
    assert_int_equal(outlen, 777);
    for (size_t i = 0; i < sizeof out; i++)
        assert_int_equal(out[i], 0xa5);
    /* padding is accounted for: 5 bytes fit into 5 */
    assert_int_equal(ag_b64_decode("Zm9vYmE=", 8, out, 5, &outlen), 0);
    assert_int_equal(outlen, 5);
    /* the cap wins before any character is looked at */
    assert_int_equal(ag_b64_decode("!!!!!!!!!!!!", 12, out, 1, &outlen), AG_ELIMIT);
    assert_int_equal(ag_b64_decode("Zg==", 4, NULL, 0, &outlen), AG_ELIMIT);
    /* empty input needs no room */
    assert_int_equal(ag_b64_decode("", 0, NULL, 0, &outlen), 0);
    assert_int_equal(outlen, 0);
}

static void test_b64_round_trip(void **state)
{
    (void)state;
    uint8_t in[300], out[300];
    char enc[401];
    srand(4648);
    for (size_t n = 0; n <= sizeof in; n++) {
        for (size_t i = 0; i < n; i++)
            in[i] = (uint8_t)rand();
        size_t elen = ag_b64_encoded_len(n);
        assert_true(elen < sizeof enc);
        enc[elen] = 'X';
        ag_b64_encode(in, n, enc);
        assert_int_equal(strlen(enc), elen);
        size_t outlen;
        assert_int_equal(ag_b64_decode(enc, elen, out, n, &outlen), 0);
        assert_int_equal(outlen, n);
        if (n)
            assert_memory_equal(out, in, n);
    }
}

/* ---- ag_buf --------------------------------------------------------------- */

static void test_buf_ceiling(void **state)
{
    (void)state;
    struct ag_buf b;
    ag_buf_init(&b, 10);
    assert_int_equal(b.len, 0);
    assert_int_equal(ag_buf_append(&b, "hello!", 6), 0);
    assert_int_equal(ag_buf_append(&b, "world", 5), AG_ELIMIT);
    assert_int_equal(b.len, 6); /* untouched */
    assert_memory_equal(b.data, "hello!", 6);
    assert_int_equal(ag_buf_append(&b, "", 0), 0);
    assert_int_equal(ag_buf_appendz(&b, "1234"), 0); /* exactly to the ceiling */
    assert_int_equal(b.len, 10);
    assert_memory_equal(b.data, "hello!1234", 10);
    assert_int_equal(ag_buf_append(&b, "x", 1), AG_ELIMIT);
    assert_int_equal(ag_buf_append(&b, "x", SIZE_MAX), AG_ELIMIT); /* no overflow */
    assert_int_equal(b.len, 10);
    assert_memory_equal(b.data, "hello!1234", 10);
    ag_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    ag_buf_free(&b); /* twice is fine */

    /* growth across many reallocations keeps the bytes */
    ag_buf_init(&b, 100000);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(ag_buf_append(&b, "0123456789", 10), 0);
    assert_int_equal(ag_buf_append(&b, "0", 1), AG_ELIMIT);
    for (size_t i = 0; i < b.len; i++)
        assert_int_equal(b.data[i], '0' + (int)(i % 10));
    assert_true(b.cap <= b.max);
    ag_buf_free(&b);

    ag_buf_init(&b, 0);
    assert_int_equal(ag_buf_append(&b, "x", 1), AG_ELIMIT);
    ag_buf_free(&b);
}

static void test_buf_printf(void **state)
{
    (void)state;
    struct ag_buf b;
    ag_buf_init(&b, 16);
    assert_int_equal(ag_buf_printf(&b, "%d-%s", 42, "ab"), 0);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "42-ab", 5);
    assert_int_equal(ag_buf_printf(&b, "%s", "0123456789ab"), AG_ELIMIT);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "42-ab", 5);
    assert_int_equal(ag_buf_printf(&b, "%s", "0123456789a"), 0); /* exactly 16 */
    assert_int_equal(b.len, 16);
    assert_int_equal(ag_buf_printf(&b, "%s", ""), 0);
    ag_buf_free(&b);

    /* output longer than the internal 512-byte scratch */
    char big[1500];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ag_buf_init(&b, 1500);
    assert_int_equal(ag_buf_printf(&b, "<%s>", big), AG_ELIMIT); /* 1501 bytes */
    assert_int_equal(b.len, 0);
    assert_int_equal(ag_buf_printf(&b, "%s", big), 0);
    assert_int_equal(b.len, 1499);
    assert_int_equal(ag_buf_printf(&b, "%s", "z"), 0); /* exactly to the ceiling */
    assert_int_equal(b.len, 1500);
    assert_int_equal(b.data[1499], 'z');
    ag_buf_free(&b);

    /* a long printf that lands exactly on the ceiling */
    ag_buf_init(&b, 1000);
    assert_int_equal(ag_buf_append(&b, "ab", 2), 0);
    assert_int_equal(ag_buf_printf(&b, "%.998s", big), 0);
    assert_int_equal(b.len, 1000);
    assert_memory_equal(b.data, "abqq", 4);
    assert_int_equal(ag_buf_printf(&b, "%s", "x"), AG_ELIMIT);
    ag_buf_free(&b);
}

static void test_buf_consume_steal(void **state)
{
    (void)state;
    struct ag_buf b;
    ag_buf_init(&b, 64);
    assert_int_equal(ag_buf_appendz(&b, "hello world"), 0);
    ag_buf_consume(&b, 6);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "world", 5);
    ag_buf_consume(&b, 0);
    assert_int_equal(b.len, 5);
    ag_buf_consume(&b, 5);
    assert_int_equal(b.len, 0);
    assert_int_equal(ag_buf_appendz(&b, "abc"), 0);
    ag_buf_consume(&b, 100);
    assert_int_equal(b.len, 0);

    assert_int_equal(ag_buf_appendz(&b, "take me"), 0);
    size_t len = 0;
    char *d = ag_buf_steal(&b, &len);
    assert_non_null(d);
    assert_int_equal(len, 7);
    assert_memory_equal(d, "take me", 7);
    free(d);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.max, 64); /* the ceiling survives */
    assert_int_equal(ag_buf_appendz(&b, "again"), 0);
    assert_null(ag_buf_steal(&(struct ag_buf){0}, NULL));
    d = ag_buf_steal(&b, NULL);
    free(d);
    ag_buf_free(&b);
}

/* ---- bounded decimal parser ---------------------------------------------- */

static void test_parse_dec(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t len; /* 0: strlen */
        uint64_t max;
        int rc;
        uint64_t want;
    } cases[] = {
        {"0", 0, UINT64_MAX, 0, 0},
        {"00", 0, UINT64_MAX, 0, 0},
        {"10", 0, UINT64_MAX, 0, 10},
        {"18446744073709551615", 0, UINT64_MAX, 0, UINT64_MAX},
        {"18446744073709551616", 0, UINT64_MAX, AG_ELIMIT, 0},
        {"99999999999999999999999", 0, UINT64_MAX, AG_ELIMIT, 0},
        {"4294967295", 0, UINT32_MAX, 0, UINT32_MAX},
        {"4294967296", 0, UINT32_MAX, AG_ELIMIT, 0},
        {"7", 0, 5, AG_ELIMIT, 0}, /* a digit above max */
        {"5", 0, 5, 0, 5},
        {"", 0, UINT64_MAX, AG_EINVAL, 0},
        {"+5", 0, UINT64_MAX, AG_EINVAL, 0},
        {"-5", 0, UINT64_MAX, AG_EINVAL, 0},
        {" 5", 0, UINT64_MAX, AG_EINVAL, 0},
        {"5 ", 0, UINT64_MAX, AG_EINVAL, 0},
        {"0x5", 0, UINT64_MAX, AG_EINVAL, 0},
        {"1a", 0, UINT64_MAX, AG_EINVAL, 0},
        /* Only the slice counts: the digits after it are never read. */
        {"51234", 1, UINT64_MAX, 0, 5},
        {"5abc", 1, UINT64_MAX, 0, 5},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        uint64_t v = 42;
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].s);
        int rc = ag_parse_dec(cases[i].s, len, cases[i].max, &v);
        if (rc != cases[i].rc)
            fail_msg("case %zu (%s): rc %d, want %d", i, cases[i].s, rc, cases[i].rc);
        if (rc == 0 && v != cases[i].want)
            fail_msg("case %zu (%s): %llu", i, cases[i].s, (unsigned long long)v);
        if (rc != 0 && v != 42)
            fail_msg("case %zu (%s): out written on failure", i, cases[i].s);
    }
    /* A slice at the very end of a heap block: nothing past it is read (ASan). */
    char *p = malloc(3);
    assert_non_null(p);
    memcpy(p, "123", 3);
    uint64_t v;
    assert_int_equal(ag_parse_dec(p, 3, UINT64_MAX, &v), 0);
    assert_true(v == 123);
    free(p);
}

/* ---- escape, compare ------------------------------------------------------ */

static const struct {
    const char *in;
    size_t n;
    size_t cap;
    const char *want;
} escape_cases[] = {
    {"abc", 3, 16, "abc"},
    {"", 0, 16, ""},
    {"a\x01\n\r\tb", 6, 64, "a\\x01\\x0a\\x0d\\x09b"},
    {"\"q\" \\", 5, 64, "\\x22q\\x22 \\x5c"},
    {"\x7f\x80\xff", 3, 64, "\\x7f\\x80\\xff"},
    {"a\0b", 3, 64, "a\\x00b"},
    {"abcdefgh", 8, 9, "abcdefgh"},  /* fits exactly: not marked */
    {"abcdefghi", 9, 9, "abcde..."}, /* one too many: cut */
    {"aaaaaaaaaaaaaaaaaaaa", 20, 16, "aaaaaaaaaaaa..."},
    {"aaaaaaaaaaa\x01", 12, 16, "aaaaaaaaaaa\\x01"}, /* 15 chars fit */
    {"aaaaaaaaaaaa\x01", 13, 16, "aaaaaaaaaaaa..."}, /* an escape is never split */
    {"aaaaaaaaa\x01\x02", 11, 16, "aaaaaaaaa..."},
    {"abc", 3, 1, ""},
    {"abcd", 4, 4, ""},
    {"abc", 3, 4, "abc"},
};

static void test_escape(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(escape_cases); i++) {
        char dst[128];
        memset(dst, 'Z', sizeof dst);
        char *r = ag_escape(dst, escape_cases[i].cap, escape_cases[i].in, escape_cases[i].n);
        assert_ptr_equal(r, dst);
        if (strcmp(dst, escape_cases[i].want) != 0)
            fail_msg("case %zu: got '%s' want '%s'", i, dst, escape_cases[i].want);
        assert_true(strlen(dst) < escape_cases[i].cap);
        /* nothing written past the capacity */
        for (size_t k = escape_cases[i].cap; k < sizeof dst; k++)
            assert_int_equal(dst[k], 'Z');
    }
    char one = 'Z';
    ag_escape(&one, 0, "abc", 3); /* cap 0: untouched */
    assert_int_equal(one, 'Z');
}

/* ag_escape_dup never cuts: a URL at AG_URL_MAX made of bytes that each
 * escape to four comes back whole. */
static void test_escape_dup_whole(void **state)
{
    enum { N = AG_URL_MAX };
    char *in = malloc(N);
    assert_non_null(in);
    memset(in, '"', N);
    char *out = ag_escape_dup(in, N);
    assert_non_null(out);
    assert_int_equal(strlen(out), 4 * (size_t)N);
    for (size_t i = 0; i < N; i++)
        assert_memory_equal(out + 4 * i, "\\x22", 4);
    free(out);
    out = ag_escape_dup("a b", 3);
    assert_string_equal(out, "a b");
    free(out);
    free(in);
}

static void test_ct_memcmp(void **state)
{
    (void)state;
    uint8_t a[32], b[32];
    for (int i = 0; i < 32; i++)
        a[i] = b[i] = (uint8_t)(i * 7);
    assert_int_equal(ag_ct_memcmp(a, b, 32), 0);
    assert_int_equal(ag_ct_memcmp(a, b, 0), 0);
    for (int i = 0; i < 32; i++) {
        b[i] ^= 0x80;
        assert_int_not_equal(ag_ct_memcmp(a, b, 32), 0);
        assert_int_equal(ag_ct_memcmp(a, b, (size_t)i), 0);
        b[i] ^= 0x80;
    }
}

static void test_strieq(void **state)
{
    (void)state;
    assert_true(ag_strieq("Basic", 5, "basic"));
    assert_true(ag_strieq("NEGOTIATE", 9, "Negotiate"));
    assert_true(ag_strieq("", 0, ""));
    assert_true(ag_strieq("Basic realm", 5, "BASIC"));
    assert_false(ag_strieq("Basic", 4, "basic"));
    assert_false(ag_strieq("Basic", 5, "basics"));
    assert_false(ag_strieq("basix", 5, "basic"));
    assert_false(ag_strieq("[", 1, "{")); /* only A-Z fold */
    assert_false(ag_strieq("@", 1, "`"));
    assert_false(ag_strieq("\xc4", 1, "\xe4"));
    assert_false(ag_strieq("a\0b", 3, "a"));
}

static void test_strerror_and_log_level(void **state)
{
    (void)state;
    for (int c = 0; c >= -9; c--) {
        assert_non_null(ag_strerror(c));
        assert_string_not_equal(ag_strerror(c), "unknown error");
    }
    assert_string_equal(ag_strerror(-100), "unknown error");
    assert_string_equal(ag_strerror(1), "unknown error");

    enum ag_log_level l = AG_LOG_ERROR;
    assert_int_equal(ag_log_level_parse("debug", &l), 0);
    assert_int_equal(l, AG_LOG_DEBUG);
    assert_int_equal(ag_log_level_parse("warn", &l), 0);
    assert_int_equal(l, AG_LOG_WARN);
    assert_int_equal(ag_log_level_parse("verbose", &l), AG_EINVAL);
    assert_int_equal(l, AG_LOG_WARN);
    assert_string_equal(ag_log_level_name(AG_LOG_INFO), "info");
    assert_string_equal(ag_log_level_name((enum ag_log_level)9), "?");
    ag_wipe(NULL, 5);
}

/* ---- cursor --------------------------------------------------------------- */

static const uint8_t bytes[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
                                0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10};

static void test_cursor_reads(void **state)
{
    (void)state;
    struct ag_cursor c;
    ag_cur_init(&c, bytes, sizeof bytes);
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    assert_true(ag_cur_u8(&c, &u8));
    assert_int_equal(u8, 0x01);
    assert_true(ag_cur_u16le(&c, &u16));
    assert_int_equal(u16, 0x0302);
    assert_true(ag_cur_u32le(&c, &u32));
    assert_int_equal(u32, 0x07060504);
    assert_int_equal(c.off, 7);
    assert_true(ag_cur_u64le(&c, &u64));
    assert_true(u64 == 0x0f0e0d0c0b0a0908ull);
    assert_int_equal(ag_cur_left(&c), 1);
    assert_false(ag_cur_u16le(&c, &u16));
    assert_int_equal(c.off, 15);
    assert_true(ag_cur_u8(&c, &u8));
    assert_int_equal(u8, 0x10);
    assert_int_equal(ag_cur_left(&c), 0);
    assert_false(ag_cur_u8(&c, &u8));
    assert_int_equal(c.off, 16);

    /* high bits are not sign-extended */
    static const uint8_t ff[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe};
    ag_cur_init(&c, ff, sizeof ff);
    assert_true(ag_cur_u64le(&c, &u64));
    assert_true(u64 == 0xfeffffffffffffffull);
    ag_cur_init(&c, ff, sizeof ff);
    assert_true(ag_cur_u32le(&c, &u32));
    assert_true(u32 == 0xffffffffu);
    assert_true(ag_cur_u16le(&c, &u16));
    assert_int_equal(u16, 0xffff);
}

/* A failed read of any width leaves the cursor and the output unchanged. */
static void test_cursor_short_reads(void **state)
{
    (void)state;
    for (size_t len = 0; len < 8; len++) {
        struct ag_cursor c;
        ag_cur_init(&c, bytes, len);
        uint16_t u16 = 0x5a5a;
        uint32_t u32 = 0x5a5a5a5a;
        uint64_t u64 = 0x5a5a5a5a5a5a5a5aull;
        assert_false(ag_cur_u64le(&c, &u64));
        assert_int_equal(c.off, 0);
        assert_true(u64 == 0x5a5a5a5a5a5a5a5aull);
        if (len < 4) {
            assert_false(ag_cur_u32le(&c, &u32));
            assert_int_equal(c.off, 0);
            assert_int_equal(u32, 0x5a5a5a5a);
        }
        if (len < 2) {
            assert_false(ag_cur_u16le(&c, &u16));
            assert_int_equal(c.off, 0);
            assert_int_equal(u16, 0x5a5a);
        }
        uint8_t buf[9];
        assert_false(ag_cur_bytes(&c, buf, len + 1));
        assert_int_equal(c.off, 0);
        assert_false(ag_cur_skip(&c, len + 1));
        assert_int_equal(c.off, 0);
        assert_true(ag_cur_skip(&c, len));
        assert_int_equal(c.off, len);
    }
    /* mid-buffer: 3 bytes left, a u32 fails and the cursor stays */
    struct ag_cursor c;
    ag_cur_init(&c, bytes, 5);
    assert_true(ag_cur_skip(&c, 2));
    uint32_t u32;
    assert_false(ag_cur_u32le(&c, &u32));
    assert_int_equal(c.off, 2);
}

static void test_cursor_overflow_safety(void **state)
{
    (void)state;
    struct ag_cursor c;
    ag_cur_init(&c, bytes, sizeof bytes);
    assert_true(ag_cur_has(&c, 0, 16));
    assert_true(ag_cur_has(&c, 16, 0));
    assert_true(ag_cur_has(&c, 8, 8));
    assert_false(ag_cur_has(&c, 8, 9));
    assert_false(ag_cur_has(&c, 17, 0));
    assert_false(ag_cur_has(&c, SIZE_MAX, 1));
    assert_false(ag_cur_has(&c, 1, SIZE_MAX)); /* off + n wraps to 0 */
    assert_false(ag_cur_has(&c, SIZE_MAX, SIZE_MAX));
    assert_false(ag_cur_has(&c, 8, SIZE_MAX - 7)); /* off + n wraps to 0 */
    assert_false(ag_cur_has(&c, SIZE_MAX - 3, 4)); /* off + n wraps to 0 */
    assert_null(ag_cur_at(&c, SIZE_MAX, 2));
    assert_null(ag_cur_at(&c, 2, SIZE_MAX - 1));
    assert_ptr_equal(ag_cur_at(&c, 4, 4), bytes + 4);
    assert_ptr_equal(ag_cur_at(&c, 16, 0), bytes + 16);
    assert_false(ag_cur_skip(&c, SIZE_MAX));
    assert_int_equal(c.off, 0);
    assert_true(ag_cur_skip(&c, 10));
    assert_false(ag_cur_skip(&c, SIZE_MAX - 5)); /* off + n wraps to 4 */
    assert_int_equal(c.off, 10);
    /* an offset past the end (never produced by the readers) reads as empty */
    c.off = 100;
    assert_int_equal(ag_cur_left(&c), 0);
    uint8_t u8;
    assert_false(ag_cur_u8(&c, &u8));
    assert_int_equal(c.off, 100);
}

/* Numbers written without printf must read back as printf writes them. */
static void test_buf_append_numbers(void **state)
{
    (void)state;
    static const uint64_t vals[] = {0, 1, 9, 10, 15, 16, 255, 4096, 131072, 0xdeadbeef, UINT64_MAX};
    for (size_t i = 0; i < ARRAY_LEN(vals); i++) {
        struct ag_buf b;
        ag_buf_init(&b, 64);
        char want[64];
        assert_int_equal(ag_buf_append_hex(&b, vals[i]), 0);
        assert_int_equal(ag_buf_append(&b, "|", 1), 0);
        assert_int_equal(ag_buf_append_u64(&b, vals[i]), 0);
        snprintf(want, sizeof want, "%llx|%llu", (unsigned long long)vals[i],
                 (unsigned long long)vals[i]);
        assert_int_equal(b.len, strlen(want));
        assert_memory_equal(b.data, want, b.len);
        ag_buf_free(&b);
    }
    struct ag_buf small;
    ag_buf_init(&small, 3);
    assert_int_equal(ag_buf_append_hex(&small, 0x1000), AG_ELIMIT); /* the ceiling holds */
    assert_int_equal(small.len, 0);
    ag_buf_free(&small);
}

/* An address as log text: the dotted quad by hand must match inet_ntop
 * for every octet width, and a too-small buffer gives "-" as before. */
static void test_addr_text(void **state)
{
    (void)state;
    static const uint8_t quads[][4] = {
        {0, 0, 0, 0}, {127, 0, 0, 1}, {10, 100, 9, 109}, {255, 255, 255, 255}, {1, 20, 199, 99},
    };
    for (size_t i = 0; i < ARRAY_LEN(quads); i++) {
        struct sockaddr_in sin = {.sin_family = AF_INET};
        memcpy(&sin.sin_addr, quads[i], 4);
        char want[INET_ADDRSTRLEN], got[64];
        assert_non_null(inet_ntop(AF_INET, &sin.sin_addr, want, sizeof want));
        ag_addr_text((const struct sockaddr *)&sin, got, sizeof got);
        assert_string_equal(got, want);
        char t[AG_IPV4_TEXT_MAX];
        assert_int_equal(ag_ipv4_text(quads[i], t), strlen(want));
        assert_string_equal(t, want);
    }
    struct sockaddr_in sin = {.sin_family = AF_INET};
    memcpy(&sin.sin_addr, quads[3], 4);
    char small[15];
    ag_addr_text((const struct sockaddr *)&sin, small, sizeof small);
    assert_string_equal(small, "-");
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
    sin6.sin6_addr.s6_addr[15] = 1;
    char six[64];
    ag_addr_text((const struct sockaddr *)&sin6, six, sizeof six);
    assert_string_equal(six, "::1");
}

static void test_put_le(void **state)
{
    (void)state;
    uint8_t buf[6] = {0};
    ag_put_u16le(buf, 0xbeef);
    ag_put_u32le(buf + 2, 0xdeadc0de);
    static const uint8_t want[6] = {0xef, 0xbe, 0xde, 0xc0, 0xad, 0xde};
    assert_memory_equal(buf, want, 6);
    struct ag_cursor c;
    ag_cur_init(&c, buf, sizeof buf);
    uint16_t u16;
    uint32_t u32;
    assert_true(ag_cur_u16le(&c, &u16));
    assert_true(ag_cur_u32le(&c, &u32));
    assert_int_equal(u16, 0xbeef);
    assert_true(u32 == 0xdeadc0de);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_rfc4648_vectors),
        cmocka_unit_test(test_b64_rejects),
        cmocka_unit_test(test_b64_trailing_bits),
        cmocka_unit_test(test_b64_cap_checked_first),
        cmocka_unit_test(test_b64_round_trip),
        cmocka_unit_test(test_buf_ceiling),
        cmocka_unit_test(test_buf_printf),
        cmocka_unit_test(test_buf_consume_steal),
        cmocka_unit_test(test_parse_dec),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_escape_dup_whole),
        cmocka_unit_test(test_ct_memcmp),
        cmocka_unit_test(test_strieq),
        cmocka_unit_test(test_strerror_and_log_level),
        cmocka_unit_test(test_cursor_reads),
        cmocka_unit_test(test_cursor_short_reads),
        cmocka_unit_test(test_cursor_overflow_safety),
        cmocka_unit_test(test_put_le),
        cmocka_unit_test(test_addr_text),
        cmocka_unit_test(test_buf_append_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
