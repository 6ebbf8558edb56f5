/* test_http.c - request-target parsing, header-list tokens and hop-by-hop
 * classification, canned replies. Table-driven. */
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
        {"example.com:443", 0, 443}, {"[::1]:8443", 0, 8443},   {"example.com", AG_EINVAL, 0},
        {"example.com:", AG_EINVAL, 0}, {"example.com:99999", AG_EINVAL, 0},
        {"http://example.com:443", AG_EINVAL, 0}, {":443", AG_EINVAL, 0},
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
        {"/a%2Fb", "/a%2Fb"},
        {"/x?y=/admin/", "/x"},
        {"/", "/"},
        {"/%zz", "/%zz"},
        {"/%4", "/%4"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char out[64];
        size_t n = ag_path_normalize(rows[i].in, strlen(rows[i].in), out);
        assert_string_equal(out, rows[i].want);
        assert_int_equal(n, strlen(rows[i].want));
    }
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

static void test_reply(void **state)
{
    struct ag_buf b;
    ag_buf_init(&b, 4096);
    assert_int_equal(ag_reply_build(&b, 407, "Proxy-Authenticate: Basic realm=\"x\"\r\n", true, true,
                                    NULL),
                     0);
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
        cmocka_unit_test(test_absolute),       cmocka_unit_test(test_authority),
        cmocka_unit_test(test_head_tokens_and_hops), cmocka_unit_test(test_head_ceiling),
        cmocka_unit_test(test_reply),
        cmocka_unit_test(test_path_normalize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
