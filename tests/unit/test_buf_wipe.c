/* test_buf_wipe.c - ag_buf never hands a block that held secret bytes back to
 * the allocator unwiped: not when it grows, not when it is freed, and bytes
 * it consumed do not linger past its length (ag_buf_steal's caller frees
 * the block with plain free()).
 *
 * free and realloc are interposed for this executable only (the linker's
 * --wrap, see CMakeLists.txt): each release of the watched block records
 * whether the secret marker was still in it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);

#define SECRET "Proxy-Authorization: Basic c2VjcmV0OnNlY3JldA=="

static const void *watched; /* block to check when it is released */
static size_t watched_len;  /* its size */
static int released;        /* releases of the watched block seen */
static bool released_dirty; /* a release still held the secret */

static bool holds_secret(const void *p, size_t n)
{
    /* Any 8-byte piece of the marker counts: a partial wipe is no wipe. */
    static const char secret[] = SECRET;
    const size_t piece = 8, sl = sizeof secret - 1;
    for (size_t o = 0; o + piece <= sl; o += piece)
        if (memmem(p, n, &secret[o], piece))
            return true;
    return false;
}

static void check_release(const void *p)
{
    if (!p || p != watched)
        return;
    released++;
    if (holds_secret(p, watched_len))
        released_dirty = true;
    watched = NULL;
}

void *__wrap_realloc(void *p, size_t n)
{
    /* realloc may move the block and release the old one inside libc,
     * never wiped: for a watched block that counts as a release. */
    check_release(p);
    return __real_realloc(p, n);
}

void __wrap_free(void *p)
{
    check_release(p);
    __real_free(p);
}

static void watch(const struct ag_buf *b)
{
    watched = b->data;
    watched_len = b->cap;
    released = 0;
    released_dirty = false;
}

static void test_growth_wipes_old_block(void **state)
{
    (void)state;
    struct ag_buf b;
    ag_buf_init(&b, 1 << 20);
    assert_int_equal(ag_buf_appendz(&b, SECRET), 0);
    size_t cap0 = b.cap;
    watch(&b);
    /* Grow well past the first block so it must be replaced. */
    char filler[4096];
    memset(filler, 'x', sizeof filler);
    assert_int_equal(ag_buf_append(&b, filler, sizeof filler), 0);
    assert_true(b.cap > cap0);
    assert_int_equal(released, 1);
    assert_false(released_dirty);
    /* the contents moved intact */
    assert_memory_equal(b.data, SECRET, strlen(SECRET));
    assert_int_equal(b.len, strlen(SECRET) + sizeof filler);
    ag_buf_free(&b);
}

static void test_free_wipes(void **state)
{
    (void)state;
    struct ag_buf b;
    ag_buf_init(&b, 4096);
    assert_int_equal(ag_buf_appendz(&b, SECRET), 0);
    watch(&b);
    ag_buf_free(&b);
    assert_int_equal(released, 1);
    assert_false(released_dirty);
}

static void test_consume_leaves_no_copy(void **state)
{
    (void)state;
    /* A request head with the credential, then the start of a tunnel: what
     * the head leaves behind must not survive past len (the rest is stolen
     * and freed by the writer, unwiped). */
    struct ag_buf b;
    ag_buf_init(&b, 4096);
    assert_int_equal(ag_buf_appendz(&b, "CONNECT h:443 HTTP/1.1\r\n" SECRET "\r\n\r\n"), 0);
    size_t head = b.len;
    assert_int_equal(ag_buf_appendz(&b, "tunnel bytes"), 0);
    ag_buf_consume(&b, head);
    assert_int_equal(b.len, strlen("tunnel bytes"));
    assert_memory_equal(b.data, "tunnel bytes", b.len);
    assert_false(holds_secret(b.data, b.cap));
    /* Consuming everything wipes too. */
    assert_int_equal(ag_buf_appendz(&b, SECRET), 0);
    ag_buf_consume(&b, b.len);
    assert_int_equal(b.len, 0);
    assert_false(holds_secret(b.data, b.cap));
    ag_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_growth_wipes_old_block),
        cmocka_unit_test(test_free_wipes),
        cmocka_unit_test(test_consume_leaves_no_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
