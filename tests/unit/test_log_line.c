/* test_log_line.c - the access log's formatter (ag_line_*) writes what
 * printf wrote: the access log is parsed by tools and by the tests, and the
 * move off printf must not change a byte of it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "util/log.h"

enum fmt { PLAIN, WIDE6, ZERO3 };

static void check_u64(uint64_t v, unsigned width, char pad, enum fmt f)
{
    char want[64], got[64];
    const char *fmt = f == PLAIN ? "%llu" : f == WIDE6 ? "%6llu" : "%03llu";
    if (f == PLAIN)
        snprintf(want, sizeof want, "%llu", (unsigned long long)v);
    else if (f == WIDE6)
        snprintf(want, sizeof want, "%6llu", (unsigned long long)v);
    else
        snprintf(want, sizeof want, "%03llu", (unsigned long long)v);
    struct ag_line l = {.p = got, .cap = sizeof got - 1};
    ag_line_u64(&l, v, width, pad);
    got[l.len] = '\0';
    if (strcmp(want, got) != 0)
        fail_msg("%llu with %s: printf '%s', ag_line '%s'", (unsigned long long)v, fmt, want, got);
}

static void test_numbers_match_printf(void **state)
{
    (void)state;
    uint64_t vals[] = {
        0,         1,     9,      10,     99,      100,        999,        1000,
        12345,     99999, 100000, 999999, 1000000, 1796474912, UINT32_MAX, (uint64_t)1 << 53,
        UINT64_MAX};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        check_u64(vals[i], 0, ' ', PLAIN);
        check_u64(vals[i], 6, ' ', WIDE6);
        check_u64(vals[i], 3, '0', ZERO3);
    }
    /* A pseudo-random sweep over every magnitude. */
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t v = x >> (i % 64);
        check_u64(v, 0, ' ', PLAIN);
        check_u64(v, 6, ' ', WIDE6);
        check_u64(v % 1000, 3, '0', ZERO3);
    }
}

static void test_bounded(void **state)
{
    (void)state;
    char buf[8];
    struct ag_line l = {.p = buf, .cap = sizeof buf};
    ag_line_str(&l, "12345");
    assert_false(l.cut);
    ag_line_str(&l, "6789");
    assert_true(l.cut);
    assert_int_equal(l.len, sizeof buf);
    assert_memory_equal(buf, "12345678", 8);
    ag_line_u64(&l, 42, 6, ' ');
    ag_line_ch(&l, 'x');
    assert_int_equal(l.len, sizeof buf);
}

static void check_json(const char *in, const char *want)
{
    char got[256];
    struct ag_line l = {.p = got, .cap = sizeof got - 1};
    ag_line_json(&l, in);
    got[l.len] = '\0';
    assert_false(l.cut);
    assert_string_equal(got, want);
}

/* Hostile values in a JSON access-log line (a URL, a Basic user name, a
 * Content-Type from the origin): nothing may end the string, escape the
 * escape, or leave a byte a strict JSON parser refuses. */
static void test_json_escapes_hostile_values(void **state)
{
    (void)state;
    check_json("", "");
    check_json("plain/text; charset=x", "plain/text; charset=x");
    check_json("a\"b", "a\\\"b");
    check_json("\",\"status\":200,\"x\":\"", "\\\",\\\"status\\\":200,\\\"x\\\":\\\"");
    check_json("back\\slash\\", "back\\\\slash\\\\");
    check_json("\\\"", "\\\\\\\"");
    check_json("nl\r\nend", "nl\\u000d\\u000aend");
    check_json("\x01\x1f\x7f\t", "\\u0001\\u001f\\u007f\\u0009");
    /* not UTF-8: each byte as its Latin-1 code point, never raw */
    check_json("\xff\xfe\xc3(", "\\u00ff\\u00fe\\u00c3(");
    check_json("caf\xc3\xa9", "caf\\u00c3\\u00a9");
    /* the worst case is AG_LINE_JSON_GROWTH bytes per byte */
    char worst[7];
    struct ag_line l = {.p = worst, .cap = sizeof worst};
    ag_line_json(&l, "\x01");
    assert_int_equal(l.len, AG_LINE_JSON_GROWTH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers_match_printf),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_json_escapes_hostile_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
