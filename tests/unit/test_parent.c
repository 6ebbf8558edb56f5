/* test_parent.c - parents' shared health: slots by name and address,
 * back-off until a deadline, one state change reported per transition,
 * and concurrent marking from several threads (workers N). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <uv.h>

#include "proxy/parent.h"

static void test_slots_and_backoff(void **state)
{
    (void)state;
    struct ag_parent_health *a = ag_parent_health("a", "10.0.0.1", 3128);
    assert_non_null(a);
    assert_ptr_equal(ag_parent_health("a", "10.0.0.1", 3128), a);
    /* Same name, another address (a reload moved it): a fresh record. */
    struct ag_parent_health *a2 = ag_parent_health("a", "10.0.0.2", 3128);
    assert_ptr_not_equal(a2, a);
    assert_true(ag_parent_usable(a, 1000));
    assert_true(ag_parent_mark_down(a, 1000, 500));  /* up -> down: reported */
    assert_false(ag_parent_mark_down(a, 1100, 500)); /* already down: not again */
    assert_false(ag_parent_usable(a, 1599));
    assert_true(ag_parent_usable(a, 1600)); /* back-off over: tried again */
    assert_true(ag_parent_is_down(a));
    assert_int_equal(ag_parent_failures(a), 2);
    assert_true(ag_parent_mark_up(a)); /* down -> up: reported */
    assert_false(ag_parent_mark_up(a));
    assert_false(ag_parent_is_down(a));
    assert_true(ag_parent_usable(a, 0));
    assert_true(ag_parent_usable(a2, 1100)); /* untouched by a's state */
    assert_true(ag_parent_usable(NULL, 0));
}

static void hammer(void *arg)
{
    struct ag_parent_health *h = arg;
    for (int i = 0; i < 10000; i++) {
        ag_parent_mark_down(h, (uint64_t)i, 10);
        ag_parent_mark_up(h);
    }
}

/* Loops on several threads mark the same parent: every failure counted. */
static void test_threads(void **state)
{
    (void)state;
    struct ag_parent_health *h = ag_parent_health("t", "127.0.0.1", 1);
    uv_thread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(uv_thread_create(&t[i], hammer, h), 0);
    for (int i = 0; i < 4; i++)
        uv_thread_join(&t[i]);
    assert_int_equal(ag_parent_failures(h), 40000);
    assert_false(ag_parent_is_down(h));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots_and_backoff),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
