/* test_ctl.c - status-socket framing, command parsing, value encoding and
 * the reply's status line (pure functions of src/ctl/proto.c, and the
 * argument checks of the command table, which run before any command). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "authgate/err.h"
#include "ctl/commands.h"
#include "ctl/proto.h"
#include "ctl_reply_text.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const struct frame_case {
    const char *in;
    size_t n; /* 0 = strlen(in) */
    int rc;
    size_t len;
} frame_cases[] = {
    {"status\n", 0, 0, 6},
    {"status\r\n", 0, 0, 6},
    {"status", 0, AG_EAGAIN, 0},
    {"", 0, AG_EAGAIN, 0},
    {"\n", 0, 0, 0},
    {"kick id=3\nstatus\n", 0, 0, 9}, /* only the first line counts */
    {"a\rb\n", 0, 0, 3},              /* a lone CR inside stays (parse refuses it) */
};

static void test_frame(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(frame_cases); i++) {
        const struct frame_case *t = &frame_cases[i];
        size_t len = 12345;
        int rc = ag_ctl_frame(t->in, t->n ? t->n : strlen(t->in), &len);
        if (rc != t->rc)
            fail_msg("case %zu: rc %d, want %d", i, rc, t->rc);
        assert_int_equal(len, rc == 0 ? t->len : 12345);
    }
}

/* The cap: a newline at the last allowed byte passes, one byte later fails,
 * and a full buffer without a newline fails without waiting for more. */
static void test_frame_cap(void **state)
{
    (void)state;
    char *buf = malloc(AG_CTL_LINE_MAX + 8);
    assert_non_null(buf);
    size_t len;
    memset(buf, 'a', AG_CTL_LINE_MAX + 8);
    buf[AG_CTL_LINE_MAX - 1] = '\n';
    assert_int_equal(ag_ctl_frame(buf, AG_CTL_LINE_MAX, &len), 0);
    assert_int_equal(len, AG_CTL_LINE_MAX - 1);
    buf[AG_CTL_LINE_MAX - 1] = 'a';
    buf[AG_CTL_LINE_MAX] = '\n';
    assert_int_equal(ag_ctl_frame(buf, AG_CTL_LINE_MAX + 1, &len), AG_ELIMIT);
    assert_int_equal(ag_ctl_frame(buf, AG_CTL_LINE_MAX, &len), AG_ELIMIT);
    assert_int_equal(ag_ctl_frame(buf, AG_CTL_LINE_MAX - 1, &len), AG_EAGAIN);
    free(buf);
}

static const struct parse_case {
    const char *line;
    int rc;
    const char *name;
    size_t argc;
    const char *arg0, *arg1;
} parse_cases[] = {
    {"status", 0, "status", 0, NULL, NULL},
    {"  sessions   user=bob\taddr=10.0.0.1  ", 0, "sessions", 2, "user=bob", "addr=10.0.0.1"},
    {"loglevel debug", 0, "loglevel", 1, "debug", NULL},
    {"", AG_EINVAL, NULL, 0, NULL, NULL},
    {"   \t ", AG_EINVAL, NULL, 0, NULL, NULL},
    {"stat\x01us", AG_EINVAL, NULL, 0, NULL, NULL},
    {"status\r", AG_EINVAL, NULL, 0, NULL, NULL},
    {"kick user=b\xc3\xb6"
     "b",
     AG_EINVAL, NULL, 0, NULL, NULL},
    {"x 1 2 3 4 5 6 7 8", 0, "x", 8, "1", "2"},
    {"x 1 2 3 4 5 6 7 8 9", AG_ELIMIT, NULL, 0, NULL, NULL},
};

static void test_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(parse_cases); i++) {
        const struct parse_case *t = &parse_cases[i];
        struct ag_ctl_cmd c;
        memset(&c, 0x5a, sizeof c);
        int rc = ag_ctl_parse(t->line, strlen(t->line), &c);
        if (rc != t->rc)
            fail_msg("'%s': rc %d, want %d", t->line, rc, t->rc);
        if (rc != 0)
            continue;
        assert_string_equal(c.name, t->name);
        assert_int_equal(c.argc, t->argc);
        if (t->arg0)
            assert_string_equal(c.argv[0], t->arg0);
        if (t->arg1)
            assert_string_equal(c.argv[1], t->arg1);
    }
}

static void test_parse_cap_and_args(void **state)
{
    (void)state;
    char *line = malloc(AG_CTL_LINE_MAX + 1);
    assert_non_null(line);
    memset(line, 'a', AG_CTL_LINE_MAX);
    struct ag_ctl_cmd c;
    assert_int_equal(ag_ctl_parse(line, AG_CTL_LINE_MAX, &c), AG_ELIMIT);
    assert_int_equal(ag_ctl_parse(line, AG_CTL_LINE_MAX - 1, &c), 0);
    free(line);

    assert_int_equal(ag_ctl_parse("kick id=7 user=x", 16, &c), 0);
    assert_string_equal(ag_ctl_arg(&c, "id"), "7");
    assert_string_equal(ag_ctl_arg(&c, "user"), "x");
    assert_null(ag_ctl_arg(&c, "i"));
    assert_null(ag_ctl_arg(&c, "addr"));
    /* a copy of the struct keeps working: pointers refer to its own buf */
    struct ag_ctl_cmd *d = malloc(sizeof *d);
    assert_non_null(d);
    assert_int_equal(ag_ctl_parse("sessions user=alice", 19, d), 0);
    assert_ptr_equal(d->name, d->buf);
    assert_string_equal(ag_ctl_arg(d, "user"), "alice");
    free(d);
}

static const struct enc_case {
    const char *in;
    const char *out;
} enc_cases[] = {
    {"alice", "alice"},
    {"", "-"},
    {"-", "\\x2d"},
    {"a-b", "a-b"},
    {"CORP\\bob", "CORP\\x5cbob"},
    {"a b=c\"d", "a\\x20b\\x3dc\\x22d"},
    {"\n\xff", "\\x0a\\xff"},
};

static void test_encode_decode(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(enc_cases); i++) {
        char buf[128];
        ag_ctl_encode(buf, sizeof buf, enc_cases[i].in, strlen(enc_cases[i].in));
        assert_string_equal(buf, enc_cases[i].out);
        assert_int_equal(ag_ctl_decode(buf), strlen(enc_cases[i].in));
        assert_string_equal(buf, enc_cases[i].in);
    }
    /* truncation never splits an escape */
    char small[5];
    ag_ctl_encode(small, sizeof small, "a b", 3);
    assert_string_equal(small, "a");
}

static void test_reply(void **state)
{
    (void)state;
    struct ag_ctl_reply r;
    ag_ctl_reply_init(&r);
    ag_ctl_kv(&r, "id", "1");
    ag_ctl_kv(&r, "user", "a b");
    ag_ctl_end(&r);
    ag_ctl_kvu(&r, "n", 42);
    char *s = finish(&r);
    assert_string_equal(s, "id=1 user=a\\x20b\nn=42\n.ok\n");
    free(s);

    ag_ctl_reply_init(&r);
    ag_ctl_kv(&r, "x", "1");
    ag_ctl_reply_error(&r, AG_CTL_E_FAILED, "a.conf:3: unknown option 'x'\nsecond line");
    s = finish(&r);
    assert_string_equal(s, "x=1\n.error failed a.conf:3: unknown option 'x' second line\n");
    free(s);
}

/* Unknown commands and arguments are refused before a command runs (so a
 * NULL server is never touched here). */
static const struct run_case {
    const char *line;
    const char *status; /* prefix of the status line */
} run_cases[] = {
    {"bogus", ".error usage unknown command 'bogus'"},
    {"kick usr=bob", ".error usage kick: bad argument"},
    {"kick id=", ".error usage kick: bad argument"},
    {"kick 3", ".error usage kick: unexpected argument"},
    {"sessions bob", ".error usage sessions: unexpected argument"},
    {"status now", ".error usage status: unexpected argument"},
    {"loglevel debug info", ".error usage loglevel: unexpected argument"},
    {"loglevel verbose", ".error usage level must be"},
};

static void test_command_arguments(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(run_cases); i++) {
        struct ag_ctl_cmd c;
        assert_int_equal(ag_ctl_parse(run_cases[i].line, strlen(run_cases[i].line), &c), 0);
        struct ag_ctl_reply r;
        ag_ctl_reply_init(&r);
        ag_ctl_run(NULL, &c, AG_CTL_WB_UNUSED, &r);
        char *s = finish(&r);
        if (strncmp(s, run_cases[i].status, strlen(run_cases[i].status)) != 0)
            fail_msg("'%s': got '%s'", run_cases[i].line, s);
        free(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame),
        cmocka_unit_test(test_frame_cap),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_cap_and_args),
        cmocka_unit_test(test_encode_decode),
        cmocka_unit_test(test_reply),
        cmocka_unit_test(test_command_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
