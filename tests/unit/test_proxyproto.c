/* test_proxyproto.c - the PROXY protocol header parser (src/http/proxyproto.c):
 * v1 and v2, good and bad, fed whole and one byte at a time. Table-driven. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "authgate/err.h"
#include "authgate/limits.h"
#include "http/proxyproto.h"
#include "util/addr.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const uint8_t SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* A v2 header: signature, ver_cmd, fam, then the block (len bytes). */
static size_t v2(uint8_t *out, uint8_t vc, uint8_t fam, const uint8_t *block, size_t len)
{
    memcpy(out, SIG, 12);
    out[12] = vc;
    out[13] = fam;
    out[14] = (uint8_t)(len >> 8);
    out[15] = (uint8_t)len;
    if (len)
        memcpy(out + 16, block, len);
    return 16 + len;
}

static void addr_is(const struct sockaddr_storage *ss, const char *ip, unsigned port)
{
    char t[64];
    ag_addr_text((const struct sockaddr *)ss, t, sizeof t);
    assert_string_equal(t, ip);
    unsigned p = ss->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)ss)->sin_port)
                                          : ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    assert_int_equal(p, port);
}

/* Every proper prefix of a whole header says "read more"; the whole says
 * the same as parsing it at once (a header split across reads). */
static void split_reads(const uint8_t *p, size_t len)
{
    struct ag_proxy_header h;
    const char *why;
    for (size_t i = 0; i < len; i++) {
        uint8_t *cp = malloc(i ? i : 1); /* exact size: ASan sees an over-read */
        memcpy(cp, p, i);
        int rc = ag_proxy_parse(cp, i, AG_PROXY_HEADER_MAX, &h, &why);
        free(cp);
        if (rc != AG_EAGAIN)
            fail_msg("prefix of %zu/%zu bytes: rc %d, want AG_EAGAIN", i, len, rc);
    }
}

static void test_v1(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int rc;
        bool local;
        const char *src;
        unsigned sport;
        const char *dst;
        unsigned dport;
    } rows[] = {
        {"PROXY TCP4 192.0.2.7 10.0.0.1 56324 3128\r\n", 0, false, "192.0.2.7", 56324, "10.0.0.1",
         3128},
        {"PROXY TCP6 2001:db8::7 2001:db8::1 0 65535\r\n", 0, false, "2001:db8::7", 0,
         "2001:db8::1", 65535},
        {"PROXY UNKNOWN\r\n", 0, true, NULL, 0, NULL, 0},
        {"PROXY UNKNOWN ffff:f...f:ffff 1.2.3.4 65535 65535\r\n", 0, true, NULL, 0, NULL, 0},
        /* the longest lines: TCP6 (104 bytes), UNKNOWN (the spec's 107) */
        {"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
         "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
         0, true, NULL, 0, NULL, 0},
        {"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
         "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
         "65535 65535\r\n",
         0, false, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535,
         "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535},
        /* bad */
        {"PROXY TCP4 192.0.2.7 10.0.0.1 56324 65536\r\n", AG_EINVAL, false, NULL, 0, NULL, 0},
        {"PROXY TCP4 192.0.2.7 10.0.0.1 056324 3128\r\n", AG_EINVAL, false, NULL, 0, NULL, 0},
        {"PROXY TCP4 192.0.2.7 10.0.0.1 -1 3128\r\n", AG_EINVAL, false, NULL, 0, NULL, 0},
        {"PROXY TCP4 192.0.2.7 10.0.0.1 1 \r\n", AG_EINVAL, false, NULL, 0, NULL, 0},
        {"PROXY TCP4 192.0.2.7 10.0.0.1 1\r\n", AG_EINVAL, false, NULL, 0, NULL, 0},
        {"PROXY TCP4 192.0.2.7 10.0.0.1 1 2 3\r\n", AG_EINVAL, false, NULL, 0, NULL, 0},
        {"PROXY TCP4 192.0.2.7  10.0.0.1 1 2\r\n", AG_EINVAL, false, NULL, 0, NULL, 0},
        {"PROXY TCP4 192.0.2.256 10.0.0.1 1 2\r\n", AG_EINVAL, false, NULL, 0, NULL, 0},
        {"PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n", AG_EINVAL, false, NULL, 0, NULL, 0},
        {"PROXY TCP6 192.0.2.7 2001:db8::1 1 2\r\n", AG_EINVAL, false, NULL, 0, NULL, 0},
        {"PROXY TCP4 localhost 10.0.0.1 1 2\r\n", AG_EINVAL, false, NULL, 0, NULL, 0},
        {"PROXY UDP4 192.0.2.7 10.0.0.1 1 2\r\n", AG_EINVAL, false, NULL, 0, NULL, 0},
        {"PROXY  TCP4 192.0.2.7 10.0.0.1 1 2\r\n", AG_EINVAL, false, NULL, 0, NULL, 0},
        {"PROXY TCP4 192.0.2.7 10.0.0.1 1 2\n", AG_EINVAL, false, NULL, 0, NULL, 0},
        {"PROXY TCP4 192.0.2.7 10.0.0.1 1 2\r\r\n", AG_EINVAL, false, NULL, 0, NULL, 0},
        {"PROXY TCP4 192.0.2.7\t10.0.0.1 1 2\r\n", AG_EINVAL, false, NULL, 0, NULL, 0},
        {"PROXY \r\n", AG_EINVAL, false, NULL, 0, NULL, 0},
        {"PROXY UNKNOWNX\r\n", AG_EINVAL, false, NULL, 0, NULL, 0},
        {"proxy TCP4 192.0.2.7 10.0.0.1 1 2\r\n", AG_EINVAL, false, NULL, 0, NULL, 0},
        {"GET / HTTP/1.1\r\n", AG_EINVAL, false, NULL, 0, NULL, 0},
        {"PRIXY", AG_EINVAL, false, NULL, 0, NULL, 0},
        /* 108 bytes: over the spec's ceiling, even with a CRLF at the end */
        {"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
         "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 655351\r\n",
         AG_ELIMIT, false, NULL, 0, NULL, 0},
        /* truncated: read more */
        {"PROXY TCP4 192.0.2.7 10.0.0.1 56324 3128\r", AG_EAGAIN, false, NULL, 0, NULL, 0},
        {"PROXY TCP4 192.0.2.7", AG_EAGAIN, false, NULL, 0, NULL, 0},
        {"PROX", AG_EAGAIN, false, NULL, 0, NULL, 0},
        {"", AG_EAGAIN, false, NULL, 0, NULL, 0},
    };
    for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
        struct ag_proxy_header h;
        const char *why = NULL;
        size_t n = strlen(rows[i].in);
        int rc = ag_proxy_parse((const uint8_t *)rows[i].in, n, AG_PROXY_HEADER_MAX, &h, &why);
        if (rc != rows[i].rc)
            fail_msg("row %zu '%s': rc %d, want %d (%s)", i, rows[i].in, rc, rows[i].rc,
                     why ? why : "-");
        if (rc < 0 && rc != AG_EAGAIN)
            assert_non_null(why);
        if (rc != 0)
            continue;
        assert_int_equal(h.version, 1);
        assert_true(n <= AG_PROXY_V1_MAX);
        assert_int_equal(h.len, n);
        assert_int_equal(h.local, rows[i].local);
        if (!rows[i].local) {
            addr_is(&h.src, rows[i].src, rows[i].sport);
            addr_is(&h.dst, rows[i].dst, rows[i].dport);
        }
        split_reads((const uint8_t *)rows[i].in, n);
    }
}

/* The bytes after the header are the client's request, untouched. */
static void test_v1_then_request(void **state)
{
    (void)state;
    const char *in = "PROXY TCP4 192.0.2.7 10.0.0.1 56324 3128\r\nGET http://x/ HTTP/1.1\r\n";
    struct ag_proxy_header h;
    const char *why;
    assert_int_equal(ag_proxy_parse((const uint8_t *)in, strlen(in), 2048, &h, &why), 0);
    assert_string_equal(in + h.len, "GET http://x/ HTTP/1.1\r\n");
    /* 107 bytes without an LF: never a header */
    char longl[200];
    memset(longl, 'A', sizeof longl);
    memcpy(longl, "PROXY TCP4 ", 11);
    assert_int_equal(ag_proxy_parse((const uint8_t *)longl, 106, 2048, &h, &why), AG_EAGAIN);
    assert_int_equal(ag_proxy_parse((const uint8_t *)longl, 107, 2048, &h, &why), AG_ELIMIT);
    assert_int_equal(ag_proxy_parse((const uint8_t *)longl, 200, 2048, &h, &why), AG_ELIMIT);
}

static void test_v2(void **state)
{
    (void)state;
    uint8_t buf[4096], blk[3000];
    struct ag_proxy_header h;
    const char *why;
    size_t n;

    /* PROXY TCP4: 192.0.2.7:56324 -> 10.0.0.1:3128, then a request byte */
    static const uint8_t tcp4[12] = {192, 0, 2, 7, 10, 0, 0, 1, 0xdc, 0x04, 0x0c, 0x38};
    n = v2(buf, 0x21, 0x11, tcp4, sizeof tcp4);
    buf[n] = 'G';
    assert_int_equal(ag_proxy_parse(buf, n + 1, 2048, &h, &why), 0);
    assert_int_equal(h.version, 2);
    assert_int_equal(h.len, n);
    assert_false(h.local);
    addr_is(&h.src, "192.0.2.7", 56324);
    addr_is(&h.dst, "10.0.0.1", 3128);
    split_reads(buf, n);

    /* PROXY TCP6 with TLVs (ALPN "h2", a NOOP of 0 bytes, unique id) */
    uint8_t b6[36 + 5 + 3 + 7] = {0};
    b6[0] = 0x20, b6[1] = 0x01, b6[2] = 0x0d, b6[3] = 0xb8, b6[15] = 7;
    b6[16] = 0x20, b6[17] = 0x01, b6[18] = 0x0d, b6[19] = 0xb8, b6[31] = 1;
    b6[32] = 0x01, b6[33] = 0xbb, b6[34] = 0x0c, b6[35] = 0x38;
    memcpy(b6 + 36, "\x01\x00\x02h2", 5);
    memcpy(b6 + 41, "\x04\x00\x00", 3);
    memcpy(b6 + 44, "\x05\x00\x04uid1", 7);
    n = v2(buf, 0x21, 0x21, b6, sizeof b6);
    assert_int_equal(ag_proxy_parse(buf, n, 2048, &h, &why), 0);
    addr_is(&h.src, "2001:db8::7", 443);
    addr_is(&h.dst, "2001:db8::1", 3128);
    assert_int_equal(h.len, n);
    split_reads(buf, n);
    /* a TLV that runs past the block */
    b6[sizeof b6 - 5] = 9;
    n = v2(buf, 0x21, 0x21, b6, sizeof b6);
    assert_int_equal(ag_proxy_parse(buf, n, 2048, &h, &why), AG_EINVAL);
    /* a TLV header cut short (2 bytes left) */
    n = v2(buf, 0x21, 0x21, b6, 36 + 2);
    assert_int_equal(ag_proxy_parse(buf, n, 2048, &h, &why), AG_EINVAL);

    /* LOCAL (a health check): any block, ignored; the address stays */
    n = v2(buf, 0x20, 0x00, NULL, 0);
    assert_int_equal(ag_proxy_parse(buf, n, 2048, &h, &why), 0);
    assert_true(h.local);
    assert_int_equal(h.len, 16);
    n = v2(buf, 0x20, 0x11, tcp4, sizeof tcp4);
    assert_int_equal(ag_proxy_parse(buf, n, 2048, &h, &why), 0);
    assert_true(h.local);
    assert_int_equal(h.len, 28);
    split_reads(buf, n);
    /* PROXY with AF_UNSPEC: no address either */
    n = v2(buf, 0x21, 0x00, NULL, 0);
    assert_int_equal(ag_proxy_parse(buf, n, 2048, &h, &why), 0);
    assert_true(h.local);

    /* unknown families and transports: UDP, UNIX, family 4 */
    static const uint8_t fams[] = {0x12, 0x22, 0x31, 0x32, 0x41, 0x13, 0x10};
    memset(blk, 0, 216);
    for (size_t i = 0; i < sizeof fams; i++) {
        n = v2(buf, 0x21, fams[i], blk, 216);
        assert_int_equal(ag_proxy_parse(buf, n, 2048, &h, &why), AG_EINVAL);
    }
    /* an address block shorter than the family needs */
    n = v2(buf, 0x21, 0x11, tcp4, 11);
    assert_int_equal(ag_proxy_parse(buf, n, 2048, &h, &why), AG_EINVAL);
    n = v2(buf, 0x21, 0x21, b6, 35);
    assert_int_equal(ag_proxy_parse(buf, n, 2048, &h, &why), AG_EINVAL);
    /* bad version, bad command */
    n = v2(buf, 0x11, 0x11, tcp4, sizeof tcp4);
    assert_int_equal(ag_proxy_parse(buf, n, 2048, &h, &why), AG_EINVAL);
    assert_int_equal(ag_proxy_parse(buf, 13, 2048, &h, &why), AG_EINVAL);
    n = v2(buf, 0x22, 0x11, tcp4, sizeof tcp4);
    assert_int_equal(ag_proxy_parse(buf, n, 2048, &h, &why), AG_EINVAL);
    /* a wrong signature byte, wherever it is */
    for (size_t i = 1; i < 12; i++) {
        n = v2(buf, 0x21, 0x11, tcp4, sizeof tcp4);
        buf[i] ^= 0x40;
        assert_int_equal(ag_proxy_parse(buf, n, 2048, &h, &why), AG_EINVAL);
        assert_int_equal(ag_proxy_parse(buf, i + 1, 2048, &h, &why), AG_EINVAL);
    }
    /* over the ceiling: refused as soon as the length is known */
    memset(blk, 0, sizeof blk);
    memcpy(blk, tcp4, sizeof tcp4);
    n = v2(buf, 0x21, 0x11, blk, 2048 - 16 + 1);
    assert_int_equal(ag_proxy_parse(buf, 16, 2048, &h, &why), AG_ELIMIT);
    assert_int_equal(ag_proxy_parse(buf, n, 2048, &h, &why), AG_ELIMIT);
    /* at the ceiling: one TLV fills the rest */
    blk[12] = 0x04;
    blk[13] = (uint8_t)((2048 - 16 - 15) >> 8);
    blk[14] = (uint8_t)(2048 - 16 - 15);
    n = v2(buf, 0x21, 0x11, blk, 2048 - 16);
    assert_int_equal(ag_proxy_parse(buf, n, 2048, &h, &why), 0);
    assert_int_equal(h.len, 2048);
    /* truncated: read more */
    n = v2(buf, 0x21, 0x11, tcp4, sizeof tcp4);
    assert_int_equal(ag_proxy_parse(buf, n - 1, 2048, &h, &why), AG_EAGAIN);
    assert_int_equal(ag_proxy_parse(buf, 15, 2048, &h, &why), AG_EAGAIN);
    assert_int_equal(ag_proxy_parse(buf, 1, 2048, &h, &why), AG_EAGAIN);
}

static void test_cidr(void **state)
{
    (void)state;
    static const struct {
        const char *net, *addr;
        bool in;
    } rows[] = {
        {"10.0.0.0/8", "10.200.1.1", true},       {"10.0.0.0/8", "11.0.0.1", false},
        {"10.0.0.5", "10.0.0.5", true},           {"10.0.0.5", "10.0.0.6", false},
        {"10.0.0.0/8", "::ffff:10.1.1.1", true},  {"::ffff:10.0.0.0/104", "10.9.9.9", true},
        {"2001:db8::/32", "2001:db8:1::1", true}, {"2001:db8::/32", "2001:db9::1", false},
        {"0.0.0.0/0", "203.0.113.9", true},       {"0.0.0.0/0", "2001:db8::1", false},
        {"10.0.0.0/9", "10.128.0.1", false},      {"10.0.0.0/9", "10.127.0.1", true},
    };
    for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
        struct ag_cidr c;
        struct sockaddr_storage ss = {0};
        assert_int_equal(ag_cidr_parse(rows[i].net, &c), 0);
        if (strchr(rows[i].addr, ':')) {
            ss.ss_family = AF_INET6;
            assert_int_equal(
                inet_pton(AF_INET6, rows[i].addr, &((struct sockaddr_in6 *)&ss)->sin6_addr), 1);
        } else {
            ss.ss_family = AF_INET;
            assert_int_equal(
                inet_pton(AF_INET, rows[i].addr, &((struct sockaddr_in *)&ss)->sin_addr), 1);
        }
        if (ag_cidr_match(&c, (const struct sockaddr *)&ss) != rows[i].in)
            fail_msg("%s in %s: want %d", rows[i].addr, rows[i].net, rows[i].in);
    }
    struct ag_cidr c;
    static const char *const bad[] = {"10.0.0.0/33",  "::/129", "10.0.0.0/",  "10.0.0.0/x",
                                      "host.example", "",       "10.0.0.0/-1"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        assert_int_equal(ag_cidr_parse(bad[i], &c), AG_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1),
        cmocka_unit_test(test_v1_then_request),
        cmocka_unit_test(test_v2),
        cmocka_unit_test(test_cidr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
