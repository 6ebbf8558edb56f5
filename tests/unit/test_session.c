/* test_session.c - the auth-session table: rows per connection, O(1)
 * removal at scale, handshake caps (global and per address), identity
 * reset, and release of scheme state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "authgate/err.h"
#include "session/table.h"

static int mech_freed;
static void mech_free(void *p)
{
    free(p);
    mech_freed++;
}

/* The row with that connection id, found by walking the table (the table
 * itself has no lookup by id: a connection holds its own row). */
struct find {
    uint64_t id;
    const struct ag_session *found;
};

static bool find_row(const struct ag_session *s, void *arg)
{
    struct find *f = arg;
    if (s->conn_id == f->id)
        f->found = s;
    return f->found == NULL;
}

static const struct ag_session *row_of(const struct ag_session_table *t, uint64_t id)
{
    struct find f = {id, NULL};
    ag_session_foreach(t, find_row, &f);
    return f.found;
}

/* Every row of the table, indexed by i for conn_id i * 7919 + 1. */
enum { N_MANY = 20000 };
static const struct ag_session *seen[N_MANY];

static bool index_row(const struct ag_session *s, void *arg)
{
    uint64_t i = (s->conn_id - 1) / 7919;
    assert_int_equal(s->conn_id, i * 7919 + 1);
    assert_true(i < N_MANY);
    assert_null(seen[i]); /* listed once */
    seen[i] = s;
    (*(size_t *)arg)++;
    return true;
}

static void test_add_get_remove_many(void **state)
{
    struct ag_session_table *t = ag_session_table_new();
    enum { N = N_MANY };
    static struct ag_session *rows[N];
    for (uint64_t i = 0; i < N; i++) {
        rows[i] = ag_session_add(t, i * 7919 + 1, "10.0.0.1", 5);
        assert_non_null(rows[i]);
    }
    size_t listed = 0;
    memset(seen, 0, sizeof seen);
    ag_session_foreach(t, index_row, &listed);
    assert_int_equal(listed, N);
    for (uint64_t i = 0; i < N; i++)
        assert_ptr_equal(seen[i], rows[i]);
    assert_null(row_of(t, 2));
    for (uint64_t i = 0; i < N; i += 2)
        ag_session_remove(t, rows[i]);
    struct ag_session_counters c;
    ag_session_counters(t, &c);
    assert_int_equal(c.rows, N / 2);
    listed = 0;
    memset(seen, 0, sizeof seen);
    ag_session_foreach(t, index_row, &listed);
    assert_int_equal(listed, N / 2);
    for (uint64_t i = 0; i < N; i++)
        assert_ptr_equal(seen[i], i % 2 ? rows[i] : NULL);
    assert_null(row_of(t, 1));
    assert_ptr_equal(row_of(t, 7919 + 1), rows[1]);
    ag_session_table_free(t);
}

static void test_handshake_caps(void **state)
{
    struct ag_session_table *t = ag_session_table_new();
    struct ag_session *a = ag_session_add(t, 1, "10.0.0.1", 0);
    struct ag_session *b = ag_session_add(t, 2, "10.0.0.1", 0);
    struct ag_session *c = ag_session_add(t, 3, "10.0.0.2", 0);
    struct ag_session *d = ag_session_add(t, 4, "10.0.0.3", 0);
    /* per address 1, global 2 */
    assert_int_equal(ag_session_handshake_begin(t, a, AG_SCHEME_NTLM, 2, 1, 0), 0);
    assert_int_equal(ag_session_handshake_begin(t, b, AG_SCHEME_NTLM, 2, 1, 0), AG_EAGAIN);
    assert_int_equal(ag_session_handshake_begin(t, c, AG_SCHEME_NTLM, 2, 1, 0), 0);
    assert_int_equal(ag_session_handshake_begin(t, d, AG_SCHEME_NTLM, 2, 1, 0), AG_EAGAIN);
    /* a second round of the same handshake is not a new handshake */
    assert_int_equal(ag_session_handshake_begin(t, a, AG_SCHEME_NTLM, 2, 1, 0), 0);
    assert_int_equal(a->rounds, 2);
    assert_int_equal(ag_session_handshakes_from(t, "10.0.0.1"), 1);
    ag_session_handshake_end(t, a);
    assert_int_equal(ag_session_handshakes_from(t, "10.0.0.1"), 0);
    assert_int_equal(ag_session_handshake_begin(t, b, AG_SCHEME_NTLM, 2, 1, 0), 0);
    /* removing a connection mid-handshake releases its slot */
    ag_session_remove(t, c);
    assert_int_equal(ag_session_handshake_begin(t, d, AG_SCHEME_NTLM, 2, 1, 0), 0);
    struct ag_session_counters n;
    ag_session_counters(t, &n);
    assert_int_equal(n.handshakes, 2);
    ag_session_table_free(t);
}

/* Issue 10 item 12: one IPv6 host is its /64 (IPv4-mapped as IPv4), and no
 * address may hold more than a quarter of the global cap, whatever
 * max_handshakes_per_addr says. */
static void test_handshake_cap_by_prefix_and_share(void **state)
{
    (void)state;
    char k[AG_ADDR_KEY_MAX + 1];
    assert_int_equal(ag_addr_key("2001:db8:1:2:aaaa::1", k), strlen("2001:db8:1:2::/64"));
    assert_string_equal(k, "2001:db8:1:2::/64");
    ag_addr_key("::ffff:10.0.0.1", k);
    assert_string_equal(k, "10.0.0.1");
    ag_addr_key("10.0.0.1", k);
    assert_string_equal(k, "10.0.0.1");
    ag_addr_key("::1", k);
    assert_string_equal(k, "::/64");

    assert_int_equal(ag_session_addr_cap(4096, 256), 256);
    assert_int_equal(ag_session_addr_cap(8, 1000), 2);
    assert_int_equal(ag_session_addr_cap(2, 1000), 1);
    assert_int_equal(ag_session_addr_cap(100, 3), 3);

    struct ag_session_table *t = ag_session_table_new();
    struct ag_session *r[8];
    static const char *peers[8] = {
        "2001:db8::1",     "2001:db8::2:3", "2001:db8:0:0:ffff::9", /* one /64 */
        "2001:db8:0:1::1",                                          /* the next /64 */
        "::ffff:10.0.0.1", "10.0.0.1",                              /* one IPv4 host */
        "10.0.0.2",        "10.0.0.3",
    };
    for (uint64_t i = 0; i < 8; i++)
        r[i] = ag_session_add(t, i + 1, peers[i], 0);
    /* global 8, per address 1000 configured: 2 in force */
    assert_int_equal(ag_session_handshake_begin(t, r[0], AG_SCHEME_NTLM, 8, 1000, 0), 0);
    assert_int_equal(ag_session_handshake_begin(t, r[1], AG_SCHEME_NTLM, 8, 1000, 0), 0);
    assert_int_equal(ag_session_handshake_begin(t, r[2], AG_SCHEME_NTLM, 8, 1000, 0), AG_EAGAIN);
    assert_int_equal(ag_session_handshakes_from(t, "2001:db8::77"), 2);
    assert_int_equal(ag_session_handshake_begin(t, r[3], AG_SCHEME_NTLM, 8, 1000, 0), 0);
    assert_int_equal(ag_session_handshake_begin(t, r[4], AG_SCHEME_NTLM, 8, 1000, 0), 0);
    assert_int_equal(ag_session_handshake_begin(t, r[5], AG_SCHEME_NTLM, 8, 1000, 0), 0);
    assert_int_equal(ag_session_handshakes_from(t, "10.0.0.1"), 2);
    assert_int_equal(ag_session_handshake_begin(t, r[6], AG_SCHEME_NTLM, 8, 1000, 0), 0);
    assert_int_equal(ag_session_handshake_begin(t, r[7], AG_SCHEME_NTLM, 8, 1000, 0), 0);
    struct ag_session_counters n;
    ag_session_counters(t, &n);
    assert_int_equal(n.handshakes, 7);
    assert_int_equal(n.refused_addr, 1);
    assert_int_equal(n.refused_global, 0);
    ag_session_remove(t, r[1]);
    assert_int_equal(ag_session_handshakes_from(t, "2001:db8::"), 1);
    ag_session_table_free(t);
}

static void test_scheme_switch_and_mech(void **state)
{
    struct ag_session_table *t = ag_session_table_new();
    struct ag_session *s = ag_session_add(t, 9, "::1", 0);
    mech_freed = 0;
    assert_int_equal(ag_session_handshake_begin(t, s, AG_SCHEME_NTLM, 10, 10, 0), 0);
    ag_session_set_mech(s, malloc(8), mech_free);
    /* switching scheme mid-handshake discards the old state */
    assert_int_equal(ag_session_handshake_begin(t, s, AG_SCHEME_NEGOTIATE, 10, 10, 0), 0);
    assert_int_equal(mech_freed, 1);
    assert_null(s->mech);
    assert_int_equal(s->rounds, 1);
    ag_session_set_mech(s, malloc(8), mech_free);
    ag_session_remove(t, s);
    assert_int_equal(mech_freed, 2);
    ag_session_table_free(t);
}

/* An AUTHENTICATE takes the connection's challenge: the row keeps none
 * (a second AUTHENTICATE, a replay, finds nothing to be checked against)
 * and the taker owns it (the row never frees it). */
static void test_take_mech_consumes(void **state)
{
    struct ag_session_table *t = ag_session_table_new();
    struct ag_session *s = ag_session_add(t, 11, "192.0.2.7", 0);
    mech_freed = 0;
    assert_int_equal(ag_session_handshake_begin(t, s, AG_SCHEME_NTLM, 10, 10, 0), 0);
    void *st = malloc(8);
    ag_session_set_mech(s, st, mech_free);
    assert_ptr_equal(ag_session_take_mech(s), st);
    assert_null(s->mech);
    assert_null(ag_session_take_mech(s));
    ag_session_handshake_end(t, s);
    ag_session_remove(t, s);
    assert_int_equal(mech_freed, 0);
    free(st);
    ag_session_table_free(t);
}

static void test_identity_lifecycle(void **state)
{
    struct ag_session_table *t = ag_session_table_new();
    struct ag_session *s = ag_session_add(t, 5, "127.0.0.1", 0);
    struct ag_identity id = {0};
    snprintf(id.user, sizeof id.user, "alice");
    snprintf(id.domain, sizeof id.domain, "CORP");
    id.sids = strdup("S-1-5-21-1-2-3-1000");
    assert_int_equal(ag_session_handshake_begin(t, s, AG_SCHEME_BASIC, 10, 10, 0), 0);
    ag_session_authenticate(t, s, AG_SCHEME_BASIC, &id, 100);
    assert_null(id.sids); /* moved */
    struct ag_session_counters n;
    ag_session_counters(t, &n);
    assert_int_equal(n.authenticated, 1);
    assert_int_equal(n.handshakes, 0);
    assert_string_equal(s->id.user, "alice");
    ag_session_reset(t, s);
    assert_int_equal(s->state, AG_AS_NONE);
    assert_string_equal(s->id.user, "");
    ag_session_counters(t, &n);
    assert_int_equal(n.authenticated, 0);
    /* no identity is reachable through another connection id */
    assert_null(row_of(t, 6));
    ag_session_table_free(t);
}

/* The handshake moves table.c owns: NTLM challenge -> verifying, GSS
 * verifying -> continue -> verifying, each moving the mech state in. */
static void test_state_moves(void **state)
{
    struct ag_session_table *t = ag_session_table_new();
    struct ag_session *s = ag_session_add(t, 11, "10.0.0.1", 0);
    mech_freed = 0;
    assert_int_equal(ag_session_handshake_begin(t, s, AG_SCHEME_NTLM, 10, 10, 0), 0);
    ag_session_ntlm_challenged(s, malloc(8), mech_free, true);
    assert_int_equal(s->state, AG_AS_NTLM_CHALLENGED);
    assert_true(s->ntlm_in_negotiate);
    assert_non_null(s->mech);
    /* a new NEGOTIATE replaces the outstanding challenge */
    ag_session_ntlm_challenged(s, malloc(8), mech_free, false);
    assert_int_equal(mech_freed, 1);
    free(ag_session_take_mech(s));
    ag_session_verifying(s);
    assert_int_equal(s->state, AG_AS_VERIFYING);
    ag_session_reset(t, s);
    assert_int_equal(s->state, AG_AS_NONE);

    assert_int_equal(ag_session_handshake_begin(t, s, AG_SCHEME_NEGOTIATE, 10, 10, 0), 0);
    ag_session_verifying(s);
    ag_session_gss_continue(s, malloc(8), mech_free);
    assert_int_equal(s->state, AG_AS_GSS_CONTINUE);
    assert_string_equal(ag_auth_state_name(s->state), "gss_continue");
    ag_session_verifying(s);
    assert_int_equal(s->state, AG_AS_VERIFYING);
    ag_session_remove(t, s); /* frees the context still in the row */
    assert_int_equal(mech_freed, 2);
    ag_session_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_get_remove_many),
        cmocka_unit_test(test_handshake_caps),
        cmocka_unit_test(test_handshake_cap_by_prefix_and_share),
        cmocka_unit_test(test_scheme_switch_and_mech),
        cmocka_unit_test(test_take_mech_consumes),
        cmocka_unit_test(test_identity_lifecycle),
        cmocka_unit_test(test_state_moves),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
