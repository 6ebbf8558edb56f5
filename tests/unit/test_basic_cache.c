/* test_basic_cache.c - the Basic credential cache: hits, expiry by injected
 * time, eviction at the cap, replacement, the salt. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "authgate/err.h"
#include "authgate/limits.h"
#include "session/basic_cache.h"

static struct ag_basic_identity ident(const char *user, const char *domain)
{
    struct ag_basic_identity id;
    memset(&id, 0, sizeof(id));
    snprintf(id.user, sizeof(id.user), "%s", user);
    snprintf(id.domain, sizeof(id.domain), "%s", domain);
    return id;
}

static void test_hit_miss_expiry(void **state)
{
    (void)state;
    struct ag_basic_cache *c = ag_basic_cache_create(16);
    struct ag_basic_identity id = ident("Alice", "CORP"), out;
    struct ag_basic_cache_stats st;
    assert_non_null(c);

    assert_false(ag_basic_cache_lookup(c, "alice", "pw", 1000, &out));
    assert_int_equal(ag_basic_cache_insert(c, "alice", "pw", &id, 1000 + 300000), 0);
    assert_int_equal(ag_basic_cache_count(c), 1);

    memset(&out, 0, sizeof(out));
    assert_true(ag_basic_cache_lookup(c, "alice", "pw", 1000, &out));
    assert_string_equal(out.user, "Alice");
    assert_string_equal(out.domain, "CORP");
    assert_true(ag_basic_cache_lookup(c, "alice", "pw", 300999, &out));

    /* a different password, user spelling or split point is another key */
    assert_false(ag_basic_cache_lookup(c, "alice", "pW", 2000, &out));
    assert_false(ag_basic_cache_lookup(c, "ALICE", "pw", 2000, &out));
    assert_false(ag_basic_cache_lookup(c, "alic", "epw", 2000, &out));
    assert_false(ag_basic_cache_lookup(c, "alice", "pw ", 2000, &out));

    /* expiry is exclusive: at expires_ms the entry is dead and dropped */
    memset(&out, 0x11, sizeof(out));
    assert_false(ag_basic_cache_lookup(c, "alice", "pw", 301000, &out));
    assert_int_equal(out.user[0], 0x11); /* untouched on a miss */
    assert_int_equal(ag_basic_cache_count(c), 0);

    ag_basic_cache_stats(c, &st);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.misses, 6);
    assert_int_equal(st.inserts, 1);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.evictions, 0);
    ag_basic_cache_free(c);
    ag_basic_cache_free(NULL);
}

static void test_replace(void **state)
{
    (void)state;
    struct ag_basic_cache *c = ag_basic_cache_create(4);
    struct ag_basic_identity a = ident("a1", ""), b = ident("a2", "DOM"), out;
    assert_int_equal(ag_basic_cache_insert(c, "u", "p", &a, 100), 0);
    assert_int_equal(ag_basic_cache_insert(c, "u", "p", &b, 200), 0);
    assert_int_equal(ag_basic_cache_count(c), 1);
    assert_true(ag_basic_cache_lookup(c, "u", "p", 150, &out));
    assert_string_equal(out.user, "a2");
    assert_string_equal(out.domain, "DOM");
    assert_true(ag_basic_cache_lookup(c, "u", "p", 199, &out));
    assert_false(ag_basic_cache_lookup(c, "u", "p", 200, &out));
    ag_basic_cache_free(c);
}

static void test_eviction_at_cap(void **state)
{
    (void)state;
    const size_t cap = 100;
    struct ag_basic_cache *c = ag_basic_cache_create(cap);
    struct ag_basic_identity id, out;
    struct ag_basic_cache_stats st;
    char user[32];
    assert_non_null(c);

    for (size_t i = 0; i < cap + 10; i++) {
        snprintf(user, sizeof(user), "user%zu", i);
        id = ident(user, "");
        assert_int_equal(ag_basic_cache_insert(c, user, "pw", &id, 1000000 + i), 0);
        assert_true(ag_basic_cache_count(c) <= cap);
    }
    assert_int_equal(ag_basic_cache_count(c), cap);
    /* the ten oldest went, the rest is there */
    for (size_t i = 0; i < cap + 10; i++) {
        snprintf(user, sizeof(user), "user%zu", i);
        bool hit = ag_basic_cache_lookup(c, user, "pw", 0, &out);
        assert_int_equal(hit, i >= 10);
        if (hit)
            assert_string_equal(out.user, user);
    }
    ag_basic_cache_stats(c, &st);
    assert_int_equal(st.evictions, 10);

    /* replacing an entry when full evicts nothing */
    id = ident("again", "");
    assert_int_equal(ag_basic_cache_insert(c, "user50", "pw", &id, 5), 0);
    ag_basic_cache_stats(c, &st);
    assert_int_equal(st.evictions, 10);
    assert_int_equal(ag_basic_cache_count(c), cap);
    ag_basic_cache_free(c);
}

static void test_purge_and_clear(void **state)
{
    (void)state;
    struct ag_basic_cache *c = ag_basic_cache_create(64);
    struct ag_basic_identity id = ident("x", ""), out;
    char user[16];
    /* mixed TTLs (as after a reload): purge drops exactly the dead ones */
    for (int i = 0; i < 20; i++) {
        snprintf(user, sizeof(user), "u%d", i);
        assert_int_equal(ag_basic_cache_insert(c, user, "p", &id, (i % 2) ? 500 : 5000), 0);
    }
    assert_int_equal(ag_basic_cache_purge(c, 499), 0);
    assert_int_equal(ag_basic_cache_purge(c, 500), 10);
    assert_int_equal(ag_basic_cache_count(c), 10);
    assert_true(ag_basic_cache_lookup(c, "u0", "p", 600, &out));
    assert_false(ag_basic_cache_lookup(c, "u1", "p", 600, &out));

    ag_basic_cache_clear(c);
    assert_int_equal(ag_basic_cache_count(c), 0);
    assert_false(ag_basic_cache_lookup(c, "u0", "p", 600, &out));
    /* usable after clear */
    assert_int_equal(ag_basic_cache_insert(c, "u0", "p", &id, 700), 0);
    assert_true(ag_basic_cache_lookup(c, "u0", "p", 600, &out));
    ag_basic_cache_free(c);
}

static void test_salted_keys(void **state)
{
    (void)state;
    struct ag_basic_cache *a = ag_basic_cache_create(8), *b = ag_basic_cache_create(8);
    uint8_t ka[32], ka2[32], kb[32], kother[32];
    assert_non_null(a);
    assert_non_null(b);
    ag_basic_cache_key(a, "alice", "secret", ka);
    ag_basic_cache_key(a, "alice", "secret", ka2);
    ag_basic_cache_key(b, "alice", "secret", kb);
    ag_basic_cache_key(a, "alice", "secreT", kother);
    assert_memory_equal(ka, ka2, 32);    /* deterministic within a cache */
    assert_memory_not_equal(ka, kb, 32); /* the salt differs per cache */
    assert_memory_not_equal(ka, kother, 32);
    /* "ab" + "c" and "a" + "bc" are different pairs */
    ag_basic_cache_key(a, "ab", "c", ka);
    ag_basic_cache_key(a, "a", "bc", ka2);
    assert_memory_not_equal(ka, ka2, 32);
    ag_basic_cache_free(a);
    ag_basic_cache_free(b);
}

static void test_bad_args(void **state)
{
    (void)state;
    assert_null(ag_basic_cache_create(0));
    assert_null(ag_basic_cache_create(AG_BASIC_CACHE_MAX + 1));
    struct ag_basic_cache *c = ag_basic_cache_create(AG_BASIC_CACHE_MAX);
    assert_non_null(c);
    struct ag_basic_identity id;
    memset(&id, 'x', sizeof(id)); /* not NUL-terminated */
    assert_int_equal(ag_basic_cache_insert(c, "u", "p", &id, 1), AG_EINVAL);
    assert_int_equal(ag_basic_cache_insert(c, "u", "p", NULL, 1), AG_EINVAL);
    assert_int_equal(ag_basic_cache_count(c), 0);
    ag_basic_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_miss_expiry), cmocka_unit_test(test_replace),
        cmocka_unit_test(test_eviction_at_cap), cmocka_unit_test(test_purge_and_clear),
        cmocka_unit_test(test_salted_keys),     cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
