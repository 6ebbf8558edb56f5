/* test_upstream.c - ag_upstream_self_connected: a TCP connection to itself
 * (simultaneous open on a loopback port nobody listens on) is told apart
 * from a real connection. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "proxy/upstream.h"

static struct sockaddr_in loopback(uint16_t port)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(port);
    return sa;
}

/* Bound to a free port, then connected to that same port: Linux completes
 * it as a simultaneous open, the socket talking to itself. */
static void test_self_connect_detected(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = loopback(0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t l = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &l), 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_true(ag_upstream_self_connected(fd, (struct sockaddr *)&sa));
    /* what it writes, it reads: the 502 this check prevents */
    assert_int_equal(write(fd, "GET /", 5), 5);
    char buf[8];
    assert_int_equal(read(fd, buf, sizeof buf), 5);
    close(fd);
}

static void test_real_connection_not_self(void **state)
{
    (void)state;
    int ls = socket(AF_INET, SOCK_STREAM, 0), fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(ls >= 0 && fd >= 0);
    struct sockaddr_in sa = loopback(0);
    assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t l = sizeof sa;
    assert_int_equal(getsockname(ls, (struct sockaddr *)&sa, &l), 0);
    assert_int_equal(listen(ls, 1), 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_false(ag_upstream_self_connected(fd, (struct sockaddr *)&sa));
    int unconnected = socket(AF_INET, SOCK_STREAM, 0);
    assert_false(ag_upstream_self_connected(unconnected, (struct sockaddr *)&sa));
    close(unconnected);
    close(fd);
    close(ls);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_self_connect_detected),
        cmocka_unit_test(test_real_connection_not_self),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
