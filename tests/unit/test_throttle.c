/* test_throttle.c - failure throttling (BAD-INPUTS row 75): caps per (user,
 * address), per address and the per-user ceiling of verified wrong
 * passwords; one address cannot lock a user out; known-good addresses pass
 * the ceiling; window reset by injected time, key folding, bounded tables
 * and the fail-safe when full. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "authgate/err.h"
#include "authgate/limits.h"
#include "session/addrkey.h"
#include "session/throttle.h"

/* The key of an address text, as a connection computes it once (four
 * calls may share one statement). */
static const char *K(const char *addr)
{
    static char keys[4][AG_ADDR_KEY_MAX + 1];
    static unsigned next;
    char *k = keys[next++ % 4];
    ag_addr_key(addr, k);
    return k;
}

#define WIN ((uint64_t)AG_FAIL_WINDOW_S * 1000)

static struct ag_throttle *mk(size_t max, uint32_t pair, uint32_t addr, uint32_t user, uint64_t win)
{
    struct ag_throttle_limits lim = {pair, addr, user, win};
    return ag_throttle_create(max, &lim);
}

/* Both checks a request passes before the backend (NTLM, Basic cache miss). */
static int check_all(struct ag_throttle *t, const char *user, const char *addr, uint64_t now)
{
    int rc = ag_throttle_check(t, user, addr, now);
    return rc ? rc : ag_throttle_check_backend(t, user, addr, now);
}

static void test_pair_cap_and_window(void **state)
{
    (void)state;
    struct ag_throttle *t = mk(1000, 3, 0, 0, WIN);
    struct ag_throttle_stats st;
    assert_non_null(t);

    for (int i = 0; i < 3; i++) {
        assert_int_equal(check_all(t, "alice", "192.0.2.1", 1000 + i), 0);
        ag_throttle_fail(t, "alice", "192.0.2.1", true, 1000 + i);
    }
    assert_int_equal(ag_throttle_check(t, "alice", "192.0.2.1", 2000), AG_ELIMIT);
    /* other users from there, and alice from elsewhere, are unaffected */
    assert_int_equal(check_all(t, "bob", "192.0.2.1", 2000), 0);
    assert_int_equal(check_all(t, "alice", "192.0.2.2", 2000), 0);
    /* the same account spelled differently is the same counter */
    assert_int_equal(ag_throttle_check(t, "ALICE", "192.0.2.1", 2000), AG_ELIMIT);
    assert_int_equal(ag_throttle_check(t, "CORP\\Alice", "192.0.2.1", 2000), AG_ELIMIT);
    assert_int_equal(ag_throttle_check(t, "alice@corp.example", "192.0.2.1", 2000), AG_ELIMIT);
    /* still refused just before the window (opened at 1000) ends */
    assert_int_equal(ag_throttle_check(t, "alice", "192.0.2.1", 1000 + WIN - 1), AG_ELIMIT);
    /* window over: allowed again, and the counter restarts */
    assert_int_equal(ag_throttle_check(t, "alice", "192.0.2.1", 1000 + WIN), 0);
    ag_throttle_fail(t, "alice", "192.0.2.1", true, 1000 + WIN);
    assert_int_equal(ag_throttle_check(t, "alice", "192.0.2.1", 1000 + WIN + 1), 0);
    /* a user name and an address that run together differently are two pairs */
    ag_throttle_fail(t, "ab", "1.2.3.4", false, 5000 + WIN);
    ag_throttle_fail(t, "ab", "1.2.3.4", false, 5000 + WIN);
    ag_throttle_fail(t, "ab", "1.2.3.4", false, 5000 + WIN);
    assert_int_equal(ag_throttle_check(t, "ab", "1.2.3.4", 5000 + WIN), AG_ELIMIT);
    assert_int_equal(ag_throttle_check(t, "a", "b1.2.3.4", 5000 + WIN), 0);

    ag_throttle_stats(t, &st);
    assert_int_equal(st.refused_pair, 6);
    assert_int_equal(st.refused_addr, 0);
    assert_int_equal(st.refused_user, 0);
    assert_int_equal(st.failures, 7);
    assert_int_equal(st.wrong_passwords, 4);
    assert_int_equal(st.addrs, 0); /* addr dimension disabled (cap 0) */
    assert_int_equal(st.users, 0); /* so is the ceiling */
    ag_throttle_free(t);
    ag_throttle_free(NULL);
}

/* Issue 10 item 3: 50 bad attempts for alice from one address, malformed,
 * MIC mismatches and wrong passwords mixed, under the default limits: that
 * address is held for alice, alice from another address goes on at once. */
static void test_one_address_cannot_lock_a_user_out(void **state)
{
    (void)state;
    struct ag_throttle *t = mk(AG_THROTTLE_MAX_KEYS, AG_FAIL_MAX_PER_USER_ADDR,
                               AG_FAIL_MAX_PER_ADDR, AG_FAIL_MAX_PER_USER, WIN);
    struct ag_throttle_stats st;
    int tried = 0;
    for (int i = 0; i < 50; i++) {
        if (check_all(t, "alice", "127.0.0.2", 100 + (uint64_t)i) != 0)
            continue;
        tried++;
        ag_throttle_fail(t, "alice", "127.0.0.2", i % 3 == 0, 100 + (uint64_t)i);
    }
    assert_int_equal(tried, AG_FAIL_MAX_PER_USER_ADDR);
    assert_int_equal(check_all(t, "alice", "127.0.0.3", 200), 0);
    assert_int_equal(ag_throttle_check(t, "alice", "127.0.0.2", 200), AG_ELIMIT);
    /* the guesser gains nothing from a success elsewhere */
    ag_throttle_success(t, "alice", "127.0.0.3", 201);
    assert_int_equal(ag_throttle_check(t, "alice", "127.0.0.2", 202), AG_ELIMIT);
    ag_throttle_stats(t, &st);
    assert_int_equal(st.refused_pair, 50 - AG_FAIL_MAX_PER_USER_ADDR + 2);
    assert_int_equal(st.refused_user, 0);
    ag_throttle_free(t);
}

/* The ceiling counts verified wrong passwords only, stops attempts from
 * going to the backend only, and one address can never reach it alone. */
static void test_ceiling_wrong_passwords_only(void **state)
{
    (void)state;
    struct ag_throttle *t = mk(1000, 100, 1000, 4, WIN);
    struct ag_throttle_stats st;
    char a[32];
    /* malformed messages, unknown users, MIC mismatches from 10 addresses */
    for (int i = 0; i < 10; i++) {
        snprintf(a, sizeof a, "198.51.100.%d", i);
        ag_throttle_fail(t, "alice", a, false, 10);
        ag_throttle_fail(t, "alice", a, false, 10);
    }
    assert_int_equal(check_all(t, "alice", "203.0.113.1", 11), 0);
    /* the pair cap is held to half the ceiling: 100 configured, 2 in force */
    assert_int_equal(ag_throttle_check(t, "alice", "198.51.100.0", 11), AG_ELIMIT);
    /* one address: two wrong passwords, then it is held; the ceiling is not reached */
    ag_throttle_fail(t, "alice", "192.0.2.1", true, 12);
    ag_throttle_fail(t, "alice", "192.0.2.1", true, 12);
    assert_int_equal(check_all(t, "alice", "192.0.2.1", 13), AG_ELIMIT);
    assert_int_equal(check_all(t, "alice", "203.0.113.1", 13), 0);
    /* a second address reaches it: no address may ask the backend for alice now */
    ag_throttle_fail(t, "alice", "192.0.2.2", true, 14);
    ag_throttle_fail(t, "alice", "192.0.2.2", true, 14);
    assert_int_equal(ag_throttle_check(t, "alice", "203.0.113.1", 15), 0); /* cache may answer */
    assert_int_equal(ag_throttle_check_backend(t, "alice", "203.0.113.1", 15), AG_ELIMIT);
    assert_int_equal(check_all(t, "bob", "203.0.113.1", 15), 0);
    ag_throttle_stats(t, &st);
    assert_int_equal(st.users, 1);
    assert_int_equal(st.refused_user, 1);
    assert_int_equal(st.wrong_passwords, 4);
    /* a success resets the ceiling, as a domain controller resets its count */
    ag_throttle_success(t, "Alice", "203.0.113.9", 16);
    assert_int_equal(check_all(t, "alice", "203.0.113.1", 17), 0);
    /* the window ends it too */
    ag_throttle_fail(t, "alice", "192.0.2.3", true, 20);
    ag_throttle_fail(t, "alice", "192.0.2.3", true, 20);
    ag_throttle_fail(t, "alice", "192.0.2.4", true, 20);
    ag_throttle_fail(t, "alice", "192.0.2.4", true, 20);
    assert_int_equal(ag_throttle_check_backend(t, "alice", "203.0.113.1", 21), AG_ELIMIT);
    assert_int_equal(ag_throttle_check_backend(t, "alice", "203.0.113.1", 20 + WIN), 0);
    ag_throttle_free(t);
}

/* An address where the user succeeded while someone was failing for her
 * passes the ceiling for a window; a fresh address does not. */
static void test_known_good_address_passes_ceiling(void **state)
{
    (void)state;
    struct ag_throttle *t = mk(1000, 5, 1000, 2, WIN);
    struct ag_throttle_stats st;
    ag_throttle_fail(t, "alice", "192.0.2.1", true, 10);
    /* alice logs in from her workstation: known good, her ceiling reset */
    ag_throttle_success(t, "alice", "10.1.1.1", 11);
    ag_throttle_fail(t, "alice", "192.0.2.1", true, 12);
    ag_throttle_fail(t, "alice", "192.0.2.2", true, 12);
    assert_int_equal(check_all(t, "alice", "10.9.9.9", 13), AG_ELIMIT);
    assert_int_equal(check_all(t, "alice", "10.1.1.1", 13), 0);
    /* the mark lasts one window after the success */
    ag_throttle_fail(t, "alice", "192.0.2.3", true, 11 + WIN - 1);
    ag_throttle_fail(t, "alice", "192.0.2.4", true, 11 + WIN - 1);
    assert_int_equal(check_all(t, "alice", "10.1.1.1", 11 + WIN - 1), 0);
    assert_int_equal(check_all(t, "alice", "10.1.1.1", 11 + WIN), AG_ELIMIT);
    /* with nobody failing for a user, a success records nothing */
    ag_throttle_success(t, "bob", "10.1.1.1", 20 + WIN);
    ag_throttle_stats(t, &st);
    assert_int_equal(st.ceiling_passed, 2);
    assert_int_equal(st.refused_user, 2);
    assert_int_equal(st.pairs, 2); /* the guessers .3 and .4 only: nothing for bob */
    ag_throttle_free(t);
}

static void test_address_cap_across_users(void **state)
{
    (void)state;
    struct ag_throttle *t = mk(100, 5, 3, 0, WIN);
    ag_throttle_fail(t, "alice", "198.51.100.7", true, 10);
    ag_throttle_fail(t, "nosuchuser", "198.51.100.7", false, 11);
    ag_throttle_success(t, "alice", "198.51.100.7", 12);
    /* the address keeps its two failures: one more reaches its cap */
    assert_int_equal(check_all(t, "bob", "198.51.100.7", 13), 0);
    ag_throttle_fail(t, "bob", "198.51.100.7", true, 14);
    assert_int_equal(check_all(t, "carol", "198.51.100.7", 15), AG_ELIMIT);
    assert_int_equal(check_all(t, "alice", "198.51.100.7", 15), AG_ELIMIT);
    assert_int_equal(check_all(t, "carol", "198.51.100.8", 15), 0);
    ag_throttle_free(t);
}

static void test_ipv6_folding(void **state)
{
    (void)state;
    /* the server hands the throttle each connection's ag_addr_key */
    struct ag_throttle *t = mk(100, 2, 3, 0, WIN);
    ag_throttle_fail(t, "u", K("2001:db8:1:2::1"), false, 1);
    ag_throttle_fail(t, "u", K("2001:db8:1:2:ffff:1:2:3"), false, 2);
    /* the same /64 is one client, for the pair and for the address */
    assert_int_equal(ag_throttle_check(t, "u", K("2001:db8:1:2::9"), 3), AG_ELIMIT);
    ag_throttle_fail(t, "v", K("2001:db8:1:2::a"), false, 3);
    assert_int_equal(ag_throttle_check(t, "w", K("2001:db8:1:2::b"), 3), AG_ELIMIT);
    /* the next /64 is another */
    assert_int_equal(ag_throttle_check(t, "u", K("2001:db8:1:3::1"), 3), 0);
    /* IPv4-mapped counts as the IPv4 address */
    ag_throttle_fail(t, "u", K("::ffff:192.0.2.9"), false, 4);
    ag_throttle_fail(t, "u", "192.0.2.9", false, 5);
    assert_int_equal(ag_throttle_check(t, "u", "192.0.2.9", 6), AG_ELIMIT);
    assert_int_equal(ag_throttle_check(t, "u", K("::ffff:192.0.2.9"), 6), AG_ELIMIT);
    ag_throttle_free(t);
}

/* One attempt (the check and the backend check after it, as NTLM and a
 * Basic cache miss run them) counts one throttle_checks. */
static void test_attempt_counts_one_check(void **state)
{
    (void)state;
    struct ag_throttle *t = mk(100, 2, 3, 5, WIN);
    struct ag_throttle_stats st;
    assert_int_equal(check_all(t, "alice", "198.51.100.7", 1), 0);
    ag_throttle_stats(t, &st);
    assert_int_equal(st.checks, 1);
    assert_int_equal(check_all(t, "bob", "198.51.100.7", 2), 0);
    ag_throttle_stats(t, &st);
    assert_int_equal(st.checks, 2);
    ag_throttle_free(t);
}

static void test_full_table_fails_safe(void **state)
{
    (void)state;
    struct ag_throttle *t = mk(4, 10, 0, 0, 1000);
    struct ag_throttle_stats st;
    char u[16];
    for (int i = 0; i < 4; i++) {
        snprintf(u, sizeof(u), "u%d", i);
        ag_throttle_fail(t, u, "192.0.2.1", false, 100 + (uint64_t)i);
    }
    /* tracked pairs go on; an untracked one has no room: refused */
    assert_int_equal(ag_throttle_check(t, "u0", "192.0.2.1", 200), 0);
    assert_int_equal(ag_throttle_check(t, "newcomer", "192.0.2.1", 200), AG_EAGAIN);
    ag_throttle_fail(t, "newcomer", "192.0.2.1", false, 200);
    ag_throttle_stats(t, &st);
    assert_int_equal(st.refused_full, 1);
    assert_int_equal(st.fail_unrecorded, 1);
    assert_int_equal(st.pairs, 4);

    /* once u0's window (opened at 100) passes, it is evicted: room again */
    assert_int_equal(ag_throttle_check(t, "newcomer", "192.0.2.1", 1100), 0);
    ag_throttle_fail(t, "newcomer", "192.0.2.1", false, 1100);
    ag_throttle_stats(t, &st);
    assert_int_equal(st.pairs, 4);
    assert_int_equal(st.expired, 1);
    /* everything old expires together later */
    assert_int_equal(ag_throttle_check(t, "x", "192.0.2.1", 1104), 0);
    ag_throttle_stats(t, &st);
    assert_int_equal(st.pairs, 1);

    /* the user table fills with wrong passwords only; the fail-safe holds there too */
    ag_throttle_free(t);
    t = mk(2, 10, 0, 10, 1000);
    ag_throttle_fail(t, "a", "192.0.2.1", true, 1);
    ag_throttle_fail(t, "b", "192.0.2.1", true, 1);
    assert_int_equal(ag_throttle_check_backend(t, "a", "192.0.2.9", 2), 0);
    assert_int_equal(ag_throttle_check_backend(t, "c", "192.0.2.9", 2), AG_EAGAIN);
    ag_throttle_free(t);
}

static void test_set_limits_and_args(void **state)
{
    (void)state;
    struct ag_throttle_limits bad = {1, 1, 1, 0};
    assert_null(ag_throttle_create(0, &bad));
    assert_null(ag_throttle_create(10, &bad));
    assert_null(ag_throttle_create(10, NULL));
    struct ag_throttle *t = mk(10, 5, 5, 0, WIN);
    for (int i = 0; i < 3; i++)
        ag_throttle_fail(t, "alice", "192.0.2.1", true, 10);
    assert_int_equal(check_all(t, "alice", "192.0.2.1", 11), 0);
    /* a reload lowers the cap: the counts carry over; a 0 window keeps the old one */
    struct ag_throttle_limits lower = {3, 0, 0, 0};
    ag_throttle_set_limits(t, &lower);
    assert_int_equal(check_all(t, "alice", "192.0.2.1", 12), AG_ELIMIT);
    assert_int_equal(check_all(t, "alice", "192.0.2.1", 10 + WIN), 0);
    /* nothing known, nothing refused */
    assert_int_equal(check_all(t, NULL, NULL, 12), 0);
    assert_int_equal(check_all(NULL, "alice", "192.0.2.1", 12), 0);
    ag_throttle_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pair_cap_and_window),
        cmocka_unit_test(test_one_address_cannot_lock_a_user_out),
        cmocka_unit_test(test_ceiling_wrong_passwords_only),
        cmocka_unit_test(test_known_good_address_passes_ceiling),
        cmocka_unit_test(test_address_cap_across_users),
        cmocka_unit_test(test_ipv6_folding),
        cmocka_unit_test(test_attempt_counts_one_check),
        cmocka_unit_test(test_full_table_fails_safe),
        cmocka_unit_test(test_set_limits_and_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
