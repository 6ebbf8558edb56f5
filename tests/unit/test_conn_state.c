/* test_conn_state.c - a closed connection stays closed (conn_enter).
 *
 * A caller that goes on after something it called closed the connection
 * (a reply's write that failed, then the move to the next state) must not
 * bring it back to life: its next conn_close would close the same libuv
 * handles twice, and libuv aborts on that. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "server/conn.h"

static void test_closing_is_final(void **state)
{
    (void)state;
    struct ag_server *srv = calloc(1, sizeof *srv);
    struct conn *c = calloc(1, sizeof *c);
    assert_non_null(srv);
    assert_non_null(c);
    c->srv = srv;
    c->id = 7;
    conn_enter(c, CONN_READ_HEAD);
    conn_enter(c, CONN_FORWARD);
    conn_enter(c, CONN_CLOSING);
    assert_int_equal(srv->stats.conn_state_refused, 0);
    for (int to = CONN_NEW; to < CONN_STATES; to++) {
        conn_enter(c, (enum conn_state)to);
        assert_int_equal(c->state, CONN_CLOSING);
    }
    assert_int_equal(srv->stats.conn_state_refused, CONN_STATES);
    free(c);
    free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_closing_is_final),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
