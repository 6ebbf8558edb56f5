/* test_throttle.c - failure throttling (BAD-INPUTS row 75): caps per user and
 * per address, window reset by injected time, success reset, key folding,
 * bounded tables and the fail-safe when full. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "authgate/err.h"
#include "authgate/limits.h"
#include "session/throttle.h"

#define WIN ((uint64_t)AG_FAIL_WINDOW_S * 1000)

static void test_user_cap_and_window(void **state)
{
    (void)state;
    struct ag_throttle *t = ag_throttle_create(1000, 3, 0, WIN);
    struct ag_throttle_stats st;
    assert_non_null(t);

    for (int i = 0; i < 3; i++) {
        assert_int_equal(ag_throttle_check(t, "alice", "192.0.2.1", 1000 + i), 0);
        ag_throttle_fail(t, "alice", "192.0.2.1", 1000 + i);
    }
    assert_int_equal(ag_throttle_check(t, "alice", "192.0.2.1", 2000), AG_ELIMIT);
    /* other users are unaffected */
    assert_int_equal(ag_throttle_check(t, "bob", "192.0.2.1", 2000), 0);
    /* the same account spelled differently is the same counter */
    assert_int_equal(ag_throttle_check(t, "ALICE", NULL, 2000), AG_ELIMIT);
    assert_int_equal(ag_throttle_check(t, "CORP\\Alice", NULL, 2000), AG_ELIMIT);
    assert_int_equal(ag_throttle_check(t, "alice@corp.example", NULL, 2000), AG_ELIMIT);
    /* still refused just before the window (opened at 1000) ends */
    assert_int_equal(ag_throttle_check(t, "alice", NULL, 1000 + WIN - 1), AG_ELIMIT);
    /* window over: allowed again, and the counter restarts */
    assert_int_equal(ag_throttle_check(t, "alice", NULL, 1000 + WIN), 0);
    ag_throttle_fail(t, "alice", NULL, 1000 + WIN);
    assert_int_equal(ag_throttle_check(t, "alice", NULL, 1000 + WIN + 1), 0);

    ag_throttle_stats(t, &st);
    assert_int_equal(st.refused_user, 5);
    assert_int_equal(st.refused_addr, 0);
    assert_int_equal(st.failures, 4);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.users, 1);
    assert_int_equal(st.addrs, 0); /* addr dimension disabled (cap 0) */
    ag_throttle_free(t);
    ag_throttle_free(NULL);
}

static void test_success_resets_user_only(void **state)
{
    (void)state;
    struct ag_throttle *t = ag_throttle_create(100, 2, 3, WIN);
    ag_throttle_fail(t, "alice", "198.51.100.7", 10);
    ag_throttle_fail(t, "alice", "198.51.100.7", 11);
    assert_int_equal(ag_throttle_check(t, "alice", NULL, 12), AG_ELIMIT);
    ag_throttle_success(t, "Alice", "198.51.100.7");
    assert_int_equal(ag_throttle_check(t, "alice", NULL, 13), 0);
    /* the address keeps its two failures: one more reaches its cap */
    assert_int_equal(ag_throttle_check(t, NULL, "198.51.100.7", 13), 0);
    ag_throttle_fail(t, "bob", "198.51.100.7", 14);
    assert_int_equal(ag_throttle_check(t, "carol", "198.51.100.7", 15), AG_ELIMIT);
    assert_int_equal(ag_throttle_check(t, "carol", "198.51.100.8", 15), 0);
    ag_throttle_free(t);
}

static void test_ipv6_folding(void **state)
{
    (void)state;
    struct ag_throttle *t = ag_throttle_create(100, 0, 2, WIN);
    ag_throttle_fail(t, "u", "2001:db8:1:2::1", 1);
    ag_throttle_fail(t, "u", "2001:db8:1:2:ffff:1:2:3", 2);
    /* the same /64 is one client */
    assert_int_equal(ag_throttle_check(t, "u", "2001:db8:1:2::9", 3), AG_ELIMIT);
    /* the next /64 is another */
    assert_int_equal(ag_throttle_check(t, "u", "2001:db8:1:3::1", 3), 0);
    /* IPv4-mapped counts as the IPv4 address */
    ag_throttle_fail(t, "u", "::ffff:192.0.2.9", 4);
    ag_throttle_fail(t, "u", "192.0.2.9", 5);
    assert_int_equal(ag_throttle_check(t, NULL, "192.0.2.9", 6), AG_ELIMIT);
    assert_int_equal(ag_throttle_check(t, NULL, "::ffff:192.0.2.9", 6), AG_ELIMIT);
    ag_throttle_free(t);
}

static void test_full_table_fails_safe(void **state)
{
    (void)state;
    struct ag_throttle *t = ag_throttle_create(4, 10, 0, 1000);
    struct ag_throttle_stats st;
    char u[16];
    for (int i = 0; i < 4; i++) {
        snprintf(u, sizeof(u), "u%d", i);
        ag_throttle_fail(t, u, NULL, 100 + (uint64_t)i);
    }
    /* tracked users go on; an untracked one has no room: refused */
    assert_int_equal(ag_throttle_check(t, "u0", NULL, 200), 0);
    assert_int_equal(ag_throttle_check(t, "newcomer", NULL, 200), AG_EAGAIN);
    ag_throttle_fail(t, "newcomer", NULL, 200);
    ag_throttle_stats(t, &st);
    assert_int_equal(st.refused_full, 1);
    assert_int_equal(st.fail_unrecorded, 1);
    assert_int_equal(st.users, 4);

    /* once u0's window (opened at 100) passes, it is evicted: room again */
    assert_int_equal(ag_throttle_check(t, "newcomer", NULL, 1100), 0);
    ag_throttle_fail(t, "newcomer", NULL, 1100);
    ag_throttle_stats(t, &st);
    assert_int_equal(st.users, 4);
    assert_int_equal(st.expired, 1);
    /* everything old expires together later */
    assert_int_equal(ag_throttle_check(t, "x", NULL, 1104), 0);
    ag_throttle_stats(t, &st);
    assert_int_equal(st.users, 1);
    ag_throttle_free(t);
}

static void test_set_limits_and_args(void **state)
{
    (void)state;
    assert_null(ag_throttle_create(0, 1, 1, 1000));
    assert_null(ag_throttle_create(10, 1, 1, 0));
    struct ag_throttle *t = ag_throttle_create(10, 5, 5, WIN);
    for (int i = 0; i < 3; i++)
        ag_throttle_fail(t, "alice", "192.0.2.1", 10);
    assert_int_equal(ag_throttle_check(t, "alice", "192.0.2.1", 11), 0);
    /* a reload lowers the cap: the counts carry over */
    ag_throttle_set_limits(t, 3, 0, WIN);
    assert_int_equal(ag_throttle_check(t, "alice", "192.0.2.1", 12), AG_ELIMIT);
    /* nothing known, nothing refused */
    assert_int_equal(ag_throttle_check(t, NULL, NULL, 12), 0);
    assert_int_equal(ag_throttle_check(NULL, "alice", NULL, 12), 0);
    ag_throttle_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_cap_and_window),
        cmocka_unit_test(test_success_resets_user_only),
        cmocka_unit_test(test_ipv6_folding),
        cmocka_unit_test(test_full_table_fails_safe),
        cmocka_unit_test(test_set_limits_and_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
