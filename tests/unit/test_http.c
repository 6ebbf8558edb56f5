/* test_http.c - request-target parsing, the canonical host, the rule path,
 * header-list tokens and hop-by-hop classification, canned replies.
 * Table-driven. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "authgate/err.h"
#include "http/head.h"
#include "http/reply.h"
#include "http/target.h"

static void test_absolute(void **state)
{
    static const struct {
        const char *url;
        int rc;
        const char *host;
        unsigned port;
        const char *path;
    } rows[] = {
        {"http://example.com/a?b=c", 0, "example.com", 80, "/a?b=c"},
        {"HTTP://Example.COM:8080", 0, "example.com", 8080, ""},
        {"http://[::1]:3128/x", 0, "::1", 3128, "/x"},
        {"http://127.0.0.1/#frag", 0, "127.0.0.1", 80, "/"},
        {"http://user:pw@example.com/", AG_EINVAL, NULL, 0, NULL},
        {"http://@example.com/", AG_EINVAL, NULL, 0, NULL},
        {"https://example.com/", AG_EINVAL, NULL, 0, NULL},
        {"/relative", AG_EINVAL, NULL, 0, NULL},
        {"http://", AG_EINVAL, NULL, 0, NULL},
        {"http://example.com:0/", AG_EINVAL, NULL, 0, NULL},
        {"http://example.com:65536/", AG_EINVAL, NULL, 0, NULL},
        {"http://example.com:/", AG_EINVAL, NULL, 0, NULL},
        {"http://exa mple.com/", AG_EINVAL, NULL, 0, NULL},
        {"http://[::1/", AG_EINVAL, NULL, 0, NULL},
        {"http://[zz]/", AG_EINVAL, NULL, 0, NULL},
        /* the host comes out canonical (ag_host_canon) */
        {"http://Secret.Test.:81/a", 0, "secret.test", 81, "/a"},
        {"http://secret.test../", AG_EINVAL, NULL, 0, NULL},
        {"http://0x7f.0.0.2:8080/", 0, "127.0.0.2", 8080, "/"},
        {"http://[::FFFF:127.0.0.2]:81/", 0, "127.0.0.2", 81, "/"},
        {"http://0/", 0, "0.0.0.0", 80, "/"},
        {"http://[0:0::0]:81/", 0, "::", 81, "/"},
        {"http://sec%72et.test/", AG_EINVAL, NULL, 0, NULL},
        {"http://1.2.3.4.5/", AG_EINVAL, NULL, 0, NULL},
        {"http://[::1]x/", AG_EINVAL, NULL, 0, NULL},
        {"http://[fe80::1%25eth0]/", AG_EINVAL, NULL, 0, NULL},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct ag_target t;
        int rc = ag_target_parse_absolute(rows[i].url, strlen(rows[i].url), &t);
        assert_int_equal(rc, rows[i].rc);
        if (rc)
            continue;
        assert_string_equal(t.host, rows[i].host);
        assert_int_equal(t.port, rows[i].port);
        char p[128];
        snprintf(p, sizeof p, "%.*s", (int)t.path_len, t.path);
        assert_string_equal(p, rows[i].path);
    }
}

static void test_authority(void **state)
{
    static const struct {
        const char *s;
        int rc;
        unsigned port;
    } rows[] = {
        {"example.com:443", 0, 443},
        {"[::1]:8443", 0, 8443},
        {"example.com", AG_EINVAL, 0},
        {"example.com:", AG_EINVAL, 0},
        {"example.com:99999", AG_EINVAL, 0},
        {"http://example.com:443", AG_EINVAL, 0},
        {":443", AG_EINVAL, 0},
        {"example.com:44a", AG_EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct ag_target t;
        assert_int_equal(ag_target_parse_authority(rows[i].s, strlen(rows[i].s), &t), rows[i].rc);
        if (!rows[i].rc)
            assert_int_equal(t.port, rows[i].port);
    }
    struct ag_target t;
    ag_target_parse_authority("[::1]:8443", 10, &t);
    char out[64];
    ag_target_authority(&t, out, sizeof out);
    assert_string_equal(out, "[::1]:8443");
    /* CONNECT authorities get the same canonical host */
    static const struct {
        const char *s, *want;
    } canon[] = {
        {"[::ffff:127.0.0.2]:443", "127.0.0.2:443"},
        {"2130706434:443", "127.0.0.2:443"},
        {"[2001:DB8:0:0:0:0:0:1]:443", "[2001:db8::1]:443"},
        {"WWW.Example.COM.:443", "www.example.com:443"},
    };
    for (size_t i = 0; i < sizeof canon / sizeof canon[0]; i++) {
        assert_int_equal(ag_target_parse_authority(canon[i].s, strlen(canon[i].s), &t), 0);
        ag_target_authority(&t, out, sizeof out);
        assert_string_equal(out, canon[i].want);
    }
    assert_int_equal(ag_target_parse_authority("secret.test..:443", 17, &t), AG_EINVAL);
    /* the URL for the access log, canonical host and the client's path */
    static const struct {
        const char *url, *want;
    } urls[] = {
        {"HTTP://0x7f.1:80/A%2e/?q", "http://127.0.0.1/A%2e/?q"},
        {"http://[::FFFF:127.0.0.2]:8080", "http://127.0.0.2:8080/"},
        {"http://[2001:DB8::1]:81/x", "http://[2001:db8::1]:81/x"},
    };
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        assert_int_equal(ag_target_parse_absolute(urls[i].url, strlen(urls[i].url), &t), 0);
        ag_target_url(&t, out, sizeof out);
        assert_string_equal(out, urls[i].want);
        /* truncated like snprintf: every prefix, always terminated */
        for (size_t cap = 1; cap <= strlen(urls[i].want); cap++) {
            char small[64];
            memset(small, 'Z', sizeof small);
            ag_target_url(&t, small, cap);
            assert_int_equal(strlen(small), cap - 1);
            assert_memory_equal(small, urls[i].want, cap - 1);
        }
        {
            char port_only[64];
            assert_int_equal(ag_target_parse_absolute("http://h:65535/", 15, &t), 0);
            ag_target_url(&t, port_only, sizeof port_only);
            assert_string_equal(port_only, "http://h:65535/");
        }
    }
}

/* Every spelling of issue 10 and the WHATWG URL host parser's edge cases
 * (url.spec.whatwg.org, "host parsing", "IPv4 parser"). want NULL = refused. */
static void test_host_canon(void **state)
{
    static const struct {
        const char *in, *want;
        enum ag_host_kind kind;
    } rows[] = {
        /* names: lower case, one trailing dot removed */
        {"secret.test", "secret.test", AG_HOST_NAME},
        {"Secret.TEST", "secret.test", AG_HOST_NAME},
        {"secret.test.", "secret.test", AG_HOST_NAME},
        {"secret.test..", NULL, 0},
        {"secret.test...", NULL, 0},
        {".secret.test", NULL, 0},
        {"secret..test", NULL, 0},
        {".", NULL, 0},
        {"..", NULL, 0},
        {"localhost", "localhost", AG_HOST_NAME},
        {"under_score-dash.test", "under_score-dash.test", AG_HOST_NAME},
        {"1.2.3.x", "1.2.3.x", AG_HOST_NAME}, /* the last label is not a number */
        {"0x7f.0.0.1g", "0x7f.0.0.1g", AG_HOST_NAME},
        {"example.0xg", "example.0xg", AG_HOST_NAME},
        /* percent-encoding, non-ASCII, other characters: refused */
        {"sec%72et.test", NULL, 0},
        {"%31%32%37.0.0.1", NULL, 0},
        {"b\xc3\xbc"
         "cher.test",
         NULL, 0},
        {"a b.test", NULL, 0},
        {"a:b", NULL, 0},
        {"", NULL, 0},
        /* IPv4 in every legacy form (WHATWG IPv4 parser) */
        {"127.0.0.2", "127.0.0.2", AG_HOST_IPV4},
        {"127.2", "127.0.0.2", AG_HOST_IPV4},
        {"127.0.2", "127.0.0.2", AG_HOST_IPV4},
        {"2130706434", "127.0.0.2", AG_HOST_IPV4},
        {"0x7f.0.0.2", "127.0.0.2", AG_HOST_IPV4},
        {"0X7F.0.0.2", "127.0.0.2", AG_HOST_IPV4},
        {"0x7f000002", "127.0.0.2", AG_HOST_IPV4},
        {"0177.0.0.02", "127.0.0.2", AG_HOST_IPV4},
        {"017700000002", "127.0.0.2", AG_HOST_IPV4},
        {"127.0.0.2.", "127.0.0.2", AG_HOST_IPV4},
        {"0x7f.1", "127.0.0.1", AG_HOST_IPV4},
        {"10.100.9.109", "10.100.9.109", AG_HOST_IPV4}, /* one, two and three digits */
        {"100.20.0.199", "100.20.0.199", AG_HOST_IPV4},
        {"0", "0.0.0.0", AG_HOST_IPV4},
        {"0x", "0.0.0.0", AG_HOST_IPV4}, /* "0x" alone is the number 0 */
        {"0x.0x.0x.0x", "0.0.0.0", AG_HOST_IPV4},
        {"00", "0.0.0.0", AG_HOST_IPV4},
        {"4294967295", "255.255.255.255", AG_HOST_IPV4},
        {"1.16777215", "1.255.255.255", AG_HOST_IPV4},
        {"1.2.65535", "1.2.255.255", AG_HOST_IPV4},
        {"0xffffffff", "255.255.255.255", AG_HOST_IPV4},
        {"4294967296", NULL, 0},              /* 2^32 */
        {"99999999999999999999999", NULL, 0}, /* no overflow wrap */
        {"0x100000000", NULL, 0},
        {"256.1", NULL, 0}, /* a non-last part over 255 */
        {"1.256.1.1", NULL, 0},
        {"1.2.3.256", NULL, 0},
        {"1.16777216", NULL, 0},
        {"1.2.3.4.5", NULL, 0}, /* five parts */
        {"08", NULL, 0},        /* invalid octal */
        {"09.1.1.1", NULL, 0},
        {"1.2.3.08", NULL, 0},
        {"0x7g.0.0.1", NULL, 0},
        {"1.2.x.4", NULL, 0}, /* ends in a number: IPv4 or nothing */
        {"example.123", NULL, 0},
        {"example.0x1", NULL, 0},
        {"127.0.0.1..", NULL, 0},
        /* IPv6: RFC 5952 text; IPv4-mapped as IPv4 */
        {"[::1]", "::1", AG_HOST_IPV6},
        {"[0:0:0:0:0:0:0:1]", "::1", AG_HOST_IPV6},
        {"[::]", "::", AG_HOST_IPV6},
        {"[2001:DB8::A]", "2001:db8::a", AG_HOST_IPV6},
        {"[2001:db8:0:0:1:0:0:1]", "2001:db8::1:0:0:1", AG_HOST_IPV6},
        {"[2001:db8:0:1:1:1:1:1]", "2001:db8:0:1:1:1:1:1", AG_HOST_IPV6}, /* one 0: not "::" */
        {"[1::]", "1::", AG_HOST_IPV6},
        {"[::ffff:127.0.0.2]", "127.0.0.2", AG_HOST_IPV4},
        {"[::FFFF:7f00:2]", "127.0.0.2", AG_HOST_IPV4},
        {"[::ffff:0.0.0.0]", "0.0.0.0", AG_HOST_IPV4},
        {"[::127.0.0.2]", "::7f00:2", AG_HOST_IPV6}, /* IPv4-compatible: not mapped */
        {"[fe80::1%25eth0]", NULL, 0},
        {"[fe80::1%eth0]", NULL, 0},
        {"[::1", NULL, 0},
        {"[]", NULL, 0},
        {"[127.0.0.1]", NULL, 0},
        {"[::1]]", NULL, 0},
        {"::1", NULL, 0}, /* IPv6 only in brackets */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char out[AG_HOST_MAX + 1];
        enum ag_host_kind kind = 99;
        int n = ag_host_canon(rows[i].in, strlen(rows[i].in), out, sizeof out, &kind);
        if (!rows[i].want) {
            if (n != AG_EINVAL)
                fail_msg("'%s': got %d (%s), want refused", rows[i].in, n, n > 0 ? out : "-");
            continue;
        }
        if (n < 0 || strcmp(out, rows[i].want) != 0 || kind != rows[i].kind)
            fail_msg("'%s': got %d '%s' kind %d, want '%s' kind %d", rows[i].in, n,
                     n > 0 ? out : "-", (int)kind, rows[i].want, (int)rows[i].kind);
        assert_int_equal((size_t)n, strlen(rows[i].want));
    }
    /* bounded output: AG_ELIMIT, never an overrun */
    char small[8];
    enum ag_host_kind kind;
    assert_int_equal(ag_host_canon("www.example.com", 15, small, sizeof small, &kind), AG_ELIMIT);
    assert_int_equal(ag_host_canon("2130706434", 10, small, sizeof small, &kind), AG_ELIMIT);
    assert_int_equal(ag_host_canon("[2001:db8::1]", 13, small, sizeof small, &kind), AG_ELIMIT);
    assert_int_equal(ag_host_canon("a.b", 3, small, 4, &kind), 3);
    assert_int_equal(ag_host_canon("a.bc", 4, small, 4, &kind), AG_ELIMIT);
    /* the length limit counts the name without its root dot */
    char big[AG_HOST_MAX + 3], out[AG_HOST_MAX + 1];
    memset(big, 'a', sizeof big);
    assert_int_equal(ag_host_canon(big, AG_HOST_MAX, out, sizeof out, &kind), AG_HOST_MAX);
    big[AG_HOST_MAX] = '.';
    assert_int_equal(ag_host_canon(big, AG_HOST_MAX + 1, out, sizeof out, &kind), AG_HOST_MAX);
    assert_int_equal(ag_host_canon(big, AG_HOST_MAX + 2, out, sizeof out, &kind), AG_EINVAL);
    memset(big, 'a', sizeof big);
    assert_int_equal(ag_host_canon(big, AG_HOST_MAX + 1, out, sizeof out, &kind), AG_EINVAL);
}

static void test_addr_this_network(void **state)
{
    static const struct {
        const char *ip;
        bool want;
    } rows[] = {
        {"0.0.0.0", true},        {"0.1.2.3", true},        {"::", true},
        {"::ffff:0.0.0.0", true}, {"::ffff:0.9.9.9", true}, {"127.0.0.1", false},
        {"1.0.0.0", false},       {"::1", false},           {"::ffff:127.0.0.1", false},
        {"::0.0.0.1", false},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof ss);
        if (inet_pton(AF_INET, rows[i].ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
            ss.ss_family = AF_INET;
        else if (inet_pton(AF_INET6, rows[i].ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
            ss.ss_family = AF_INET6;
        if (ag_addr_this_network((struct sockaddr *)&ss) != rows[i].want)
            fail_msg("%s: want %d", rows[i].ip, rows[i].want);
    }
}

static void test_path_normalize(void **state)
{
    static const struct {
        const char *in, *want;
    } rows[] = {
        {"/admin/x", "/admin/x"},
        {"/public/../admin/x", "/admin/x"},
        {"/%61dmin/x", "/admin/x"},
        {"/a/%2e%2e/admin/", "/admin/"},
        {"/a/./b//c", "/a/b/c"},
        {"/../../etc", "/etc"},
        {"/a/b/..", "/a/"},
        {"/x?y=/admin/", "/x"},
        {"/", "/"},
        {"", "/"},
        {"?x", "/"},
        {"/%zz", "/%zz"},
        {"/%4", "/%4"},
        {"/%", "/%"},
        /* issue 10: spellings origins serve as /admin/ */
        {"/ADMIN/", "/ADMIN/"}, /* case is the caller's business */
        {"/x\\..\\admin/", "/admin/"},
        {"/x%5C..%5Cadmin/", "/admin/"},
        {"/admin;x=1/", "/admin/"},
        {"/admin;jsessionid=1;y/x", "/admin/x"},
        {"/admin%2f", "/admin/"},
        {"/admin%2F", "/admin/"},
        {"/a%2Fb", "/a/b"},
        {"%61dmin", "/admin"},
        {"/%61%64%6d%69%6e/", "/admin/"},
        {"/public/..;/admin/", "/admin/"},
        {"/public/%2e%2e;/admin/", "/admin/"},
        {"/public/%2E./admin/", "/admin/"},
        {"/public/.%2e%2fadmin/", "/admin/"},
        {"/public/..%2fadmin/", "/admin/"},
        {"/public/..%5cadmin/", "/admin/"},
        {"//admin//", "/admin/"},
        {"/./admin/.", "/admin/"},
        {"/admin/x/..", "/admin/"},
        {"/admin/x/..;y", "/admin/"},
        {"/;x/admin", "/admin"},
        {"/admin;x", "/admin"},
        {"/admin#frag/..", "/admin"},
        {"/%252e%252e/admin", "/%2e%2e/admin"}, /* decoded once, as origins do */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char out[64];
        size_t n = ag_path_normalize(rows[i].in, strlen(rows[i].in), out);
        if (n != strlen(rows[i].want) || strcmp(out, rows[i].want) != 0)
            fail_msg("'%s': got '%.*s', want '%s'", rows[i].in, (int)n, out, rows[i].want);
    }
    /* a decoded NUL is a byte like any other: the length says where it ends */
    char out[16];
    assert_int_equal(ag_path_normalize("/a%00b", 6, out), 4);
    assert_memory_equal(out, "/a\0b", 5);
    /* the output never exceeds len + 1 bytes (+ NUL) */
    assert_int_equal(ag_path_normalize("a", 1, out), 2);
    assert_string_equal(out, "/a");
}

static void add(struct ag_head *h, const char *n, const char *v)
{
    assert_int_equal(ag_head_on_field(h, n, strlen(n)), 0);
    ag_head_field_done(h);
    assert_int_equal(ag_head_on_value(h, v, strlen(v)), 0);
    ag_head_value_done(h);
}

static void test_head_tokens_and_hops(void **state)
{
    struct ag_head h;
    ag_head_init(&h, 4096);
    add(&h, "Connection", "keep-alive, X-Secret");
    add(&h, "x-secret", "1");
    add(&h, "Proxy-Authorization", "Basic Zm9vOmJhcg==");
    add(&h, "X-Authenticated-User", "mallory");
    add(&h, "Accept", "*/*");
    add(&h, "TE", "trailers");
    assert_true(ag_head_has_token(&h, "connection", "KEEP-ALIVE"));
    assert_false(ag_head_has_token(&h, "Connection", "close"));
    bool hop[6];
    for (uint32_t i = 0; i < h.n_fields; i++)
        hop[i] = ag_head_is_hop(&h, i, "X-Authenticated-User");
    assert_true(hop[0]);  /* Connection */
    assert_true(hop[1]);  /* named in Connection */
    assert_true(hop[2]);  /* Proxy-Authorization: never forwarded */
    assert_true(hop[3]);  /* the identity header a client sent */
    assert_false(hop[4]); /* Accept */
    assert_true(hop[5]);  /* TE */
    const char *v;
    size_t vl;
    assert_int_equal(ag_head_find(&h, "proxy-authorization", &v, &vl), 1);

    /* Marks are per head: a field named before its Connection field, in a
     * second Connection field, with blanks around; a head without
     * Connection after a reset keeps nothing of the last one's marks. */
    ag_head_reset(&h);
    add(&h, "X-Early", "1");
    add(&h, "Connection", "close");
    add(&h, "Proxy-Connection", " ,x-early ,\tX-Late\t");
    add(&h, "X-Late", "2");
    add(&h, "X-Lat", "3");
    add(&h, "X-Other", "4");
    bool want[] = {true, true, true, true, false, false};
    for (uint32_t i = 0; i < h.n_fields; i++)
        assert_int_equal(ag_head_is_hop(&h, i, NULL), want[i]);
    ag_head_reset(&h);
    add(&h, "Connection", "x-b");
    add(&h, "X-B", "1");
    assert_true(ag_head_is_hop(&h, 1, NULL)); /* marked again, for this head */
    ag_head_reset(&h);
    add(&h, "X-Early", "1");
    add(&h, "X-Late", "2");
    assert_false(ag_head_is_hop(&h, 0, NULL));
    assert_false(ag_head_is_hop(&h, 1, NULL));
    ag_head_free(&h);
}

/* A field name is a token (RFC 9110 §5.1): "Host " (llhttp 8 accepts
 * "Host : x") would otherwise be a field no check recognises as Host. */
static void test_head_field_name_token(void **state)
{
    static const struct {
        const char *name;
        int want;
    } rows[] = {
        {"Host", 0},    {"X-A_b.c~!#$%&'*+^`|", 0},
        {"Host ", -1},  {"Ho st", -1},
        {"Host\t", -1}, {"X:Y", -1},
        {"X\"Y", -1},   {"\x80", -1},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct ag_head h;
        ag_head_init(&h, 4096);
        assert_int_equal(ag_head_on_field(&h, rows[i].name, strlen(rows[i].name)), 0);
        if (ag_head_field_done(&h) != rows[i].want)
            fail_msg("row %zu ('%s'): want %d", i, rows[i].name, rows[i].want);
        ag_head_free(&h);
    }
}

/* Found by fuzz_head ("CONNECT \r\n: x"): an empty field name as the head's
 * first bytes, the store never allocated; refused without arithmetic on
 * its NULL data (UBSan: applying zero offset to null pointer). */
static void test_head_empty_first_name(void **state)
{
    struct ag_head h;
    ag_head_init(&h, 4096);
    assert_int_equal(ag_head_on_field(&h, "", 0), 0);
    assert_null(h.raw.data);
    assert_int_equal(ag_head_field_done(&h), -1);
    ag_head_free(&h);
}

static void test_head_ceiling(void **state)
{
    struct ag_head h;
    ag_head_init(&h, 64);
    char big[100];
    memset(big, 'a', sizeof big);
    assert_int_equal(ag_head_on_field(&h, big, sizeof big), -1);
    assert_int_equal(h.err, AG_ELIMIT);
    ag_head_free(&h);
}

/* The framing checks exchange_on_head runs first (the smuggling refusals). */
static void test_head_framing(void **state)
{
    static const struct {
        const char *fields[4][2];
        bool http10;
        int want;
        const char *why;
    } rows[] = {
        {{{"Host", "a"}}, false, 0, NULL},
        {{{"Transfer-Encoding", "chunked"}}, false, 0, NULL},
        {{{"Transfer-Encoding", "CHUNKED"}}, false, 0, NULL},
        {{{"Transfer-Encoding", "chunked"}}, true, 400, "Transfer-Encoding on HTTP/1.0"},
        {{{"Transfer-Encoding", "gzip, chunked"}}, false, 501, "transfer coding not supported"},
        {{{"Transfer-Encoding", "gzip"}}, false, 501, "transfer coding not supported"},
        {{{"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "chunked"}},
         false,
         501,
         "transfer coding not supported"},
        {{{"Host", "a"}, {"host", "b"}}, false, 400, "several Host fields"},
        {{{"Host", "a"}, {"Host", "a"}}, false, 400, "several Host fields"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct ag_head h;
        ag_head_init(&h, 4096);
        for (int k = 0; k < 4 && rows[i].fields[k][0]; k++)
            add(&h, rows[i].fields[k][0], rows[i].fields[k][1]);
        const char *why = NULL;
        int st = ag_head_check_framing(&h, rows[i].http10, &why);
        if (st != rows[i].want)
            fail_msg("row %zu: status %d, want %d", i, st, rows[i].want);
        if (rows[i].why)
            assert_string_equal(why, rows[i].why);
        ag_head_free(&h);
    }
}

/* obs-fold and bare LF, whole and split across reads at every byte. */
static void test_head_defects(void **state)
{
    static const struct {
        const char *head;
        const char *want;
    } rows[] = {
        {"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", NULL},
        {"GET http://a/ HTTP/1.1\nHost: a\r\n\r\n", "bare LF"},
        {"GET http://a/ HTTP/1.1\r\nHost: a\n\r\n", "bare LF"},
        {"GET http://a/ HTTP/1.1\r\nHost: a\r\n\n", "bare LF"},
        {"GET http://a/ HTTP/1.1\r\nX: a\r\n b\r\n\r\n", "obs-fold"},
        {"GET http://a/ HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", "obs-fold"},
        {"GET http://a/ HTTP/1.1\r\nX: a b\r\n\r\n", NULL},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        size_t n = strlen(rows[i].head);
        for (size_t cut = 0; cut <= n; cut++) {
            bool lf = false, cr = false;
            const char *d = ag_head_scan_defects(rows[i].head, cut, true, &lf, &cr);
            if (!d)
                d = ag_head_scan_defects(rows[i].head + cut, n - cut, true, &lf, &cr);
            if (rows[i].want ? !d || strcmp(d, rows[i].want) : d != NULL)
                fail_msg("row %zu cut %zu: %s, want %s", i, cut, d ? d : "none",
                         rows[i].want ? rows[i].want : "none");
        }
    }
    /* A line starting with a blank before any field is llhttp's to refuse. */
    bool lf = true, cr = false;
    assert_null(ag_head_scan_defects(" ", 1, false, &lf, &cr));
}

static void test_reply(void **state)
{
    struct ag_buf b;
    ag_buf_init(&b, 4096);
    assert_int_equal(
        ag_reply_build(&b, 407, "Proxy-Authenticate: Basic realm=\"x\"\r\n", true, true, NULL), 0);
    assert_int_equal(ag_buf_append(&b, "", 1), 0);
    assert_non_null(strstr(b.data, "HTTP/1.1 407 Proxy Authentication Required\r\n"));
    assert_non_null(strstr(b.data, "Connection: keep-alive\r\n"));
    assert_non_null(strstr(b.data, "Proxy-Connection: keep-alive\r\n"));
    const char *body = strstr(b.data, "\r\n\r\n") + 4;
    char cl[48];
    snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", strlen(body));
    assert_non_null(strstr(b.data, cl));
    ag_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_absolute),
        cmocka_unit_test(test_authority),
        cmocka_unit_test(test_head_tokens_and_hops),
        cmocka_unit_test(test_head_ceiling),
        cmocka_unit_test(test_head_field_name_token),
        cmocka_unit_test(test_head_empty_first_name),
        cmocka_unit_test(test_head_framing),
        cmocka_unit_test(test_head_defects),
        cmocka_unit_test(test_reply),
        cmocka_unit_test(test_path_normalize),
        cmocka_unit_test(test_host_canon),
        cmocka_unit_test(test_addr_this_network),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
