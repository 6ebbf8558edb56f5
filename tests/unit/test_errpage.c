/* test_errpage.c - error page templates: escaping, placeholders, loading. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "authgate/err.h"
#include "authgate/limits.h"
#include "util/errpage.h"
#include "util/util.h"

static char *render(const struct ag_errpages *p, const struct ag_errpage_vars *v)
{
    struct ag_buf b;
    ag_buf_init(&b, AG_ERROR_PAGE_MAX);
    assert_int_equal(ag_errpage_render(p, v, &b), 0);
    assert_int_equal(ag_buf_append(&b, "", 1), 0);
    return b.data;
}

/* Values from the network never become markup, in the built-in page. */
static void test_builtin_escapes(void **state)
{
    (void)state;
    struct ag_errpage_vars v = {
        .status = 403,
        .reason = "Forbidden",
        .user = "a&b<c>d\"e'f",
        .host = "<script>alert(1)</script>.example",
        .detail = "denied by access rule 'x'",
        .request_id = "42",
        .contact = "help <desk@example.com>",
    };
    char *page = render(NULL, &v);
    assert_non_null(strstr(page, "<!DOCTYPE html>"));
    assert_null(strstr(page, "<script>"));
    assert_non_null(strstr(page, "&lt;script&gt;alert(1)&lt;/script&gt;.example"));
    assert_non_null(strstr(page, "a&amp;b&lt;c&gt;d&quot;e&#39;f"));
    assert_non_null(strstr(page, "help &lt;desk@example.com&gt;"));
    assert_non_null(strstr(page, ">42<"));
    assert_null(strstr(page, "{{"));
    free(page);
}

static void test_check_placeholders(void **state)
{
    (void)state;
    char why[256];
    const char *good = "<p>{{status}} {{reason}} {{message}} {{detail}} {{user}} {{client}} "
                       "{{host}} {{time}} {{request_id}} {{contact}} { {x} }}</p>";
    assert_int_equal(ag_errpage_check(good, strlen(good), why, sizeof why), 0);
    const char *bad[] = {"{{usr}}", "{{user}", "{{ user }}", "a{{", "{{{user}}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(ag_errpage_check(bad[i], strlen(bad[i]), why, sizeof why), AG_EINVAL);
    assert_non_null(strstr(why, "unknown placeholder"));
    assert_int_equal(ag_errpage_check("a\0b", 3, why, sizeof why), AG_EINVAL);
}

static void write_file(const char *path, const char *text, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, n, f), n);
    fclose(f);
}

/* NNN.html, then error.html, then the built-in page; a bad file fails the
 * load with its name. */
static void test_load_dir(void **state)
{
    (void)state;
    char dir[] = "/tmp/ag_errpage_XXXXXX", path[128], err[512];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/403.html", dir);
    write_file(path, "DENIED {{host}}", 15);
    snprintf(path, sizeof path, "%s/error.html", dir);
    write_file(path, "OTHER {{status}}", 16);
    struct ag_errpages *p = NULL;
    assert_int_equal(ag_errpages_load(dir, &p, err, sizeof err), 0);
    struct ag_errpage_vars v = {.status = 403, .host = "a<b"};
    char *s = render(p, &v);
    assert_string_equal(s, "DENIED a&lt;b");
    free(s);
    v.status = 502;
    s = render(p, &v);
    assert_string_equal(s, "OTHER 502");
    free(s);
    ag_errpages_free(p);

    snprintf(path, sizeof path, "%s/504.html", dir);
    write_file(path, "{{hots}}", 8);
    p = NULL;
    assert_int_equal(ag_errpages_load(dir, &p, err, sizeof err), -1);
    assert_null(p);
    assert_non_null(strstr(err, "504.html: unknown placeholder"));

    /* over the size cap */
    char *big = malloc(AG_ERROR_TEMPLATE_MAX + 1);
    assert_non_null(big);
    memset(big, 'x', AG_ERROR_TEMPLATE_MAX + 1);
    write_file(path, big, AG_ERROR_TEMPLATE_MAX + 1);
    free(big);
    assert_int_equal(ag_errpages_load(dir, &p, err, sizeof err), -1);
    assert_non_null(strstr(err, "larger than"));
    unlink(path);
    snprintf(path, sizeof path, "%s/403.html", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/error.html", dir);
    unlink(path);
    rmdir(dir);
    assert_int_equal(ag_errpages_load(dir, &p, err, sizeof err), -1);
}

/* A template that repeats a long value past the page cap fails with
 * AG_ELIMIT (the caller sends the plain body), never grows without bound. */
static void test_page_cap(void **state)
{
    (void)state;
    static char tpl[AG_ERROR_TEMPLATE_MAX];
    size_t n = 0;
    while (n + 8 <= sizeof tpl) {
        memcpy(tpl + n, "{{host}}", 8);
        n += 8;
    }
    struct ag_errpages p = {.tpl = {[AG_ERRPAGE_OTHER] = tpl}, .len = {[AG_ERRPAGE_OTHER] = n}};
    char host[AG_HOST_MAX + 1];
    memset(host, '<', AG_HOST_MAX);
    host[AG_HOST_MAX] = '\0';
    struct ag_errpage_vars v = {.status = 500, .host = host};
    struct ag_buf b;
    ag_buf_init(&b, AG_ERROR_PAGE_MAX);
    assert_int_equal(ag_errpage_render(&p, &v, &b), AG_ELIMIT);
    ag_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_escapes),
        cmocka_unit_test(test_check_placeholders),
        cmocka_unit_test(test_load_dir),
        cmocka_unit_test(test_page_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
