/* test_basic.c - Basic credentials (RFC 7617): decoding, splitting, refusals
 * (BAD-INPUTS row 74). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "auth/basic.h"
#include "authgate/err.h"
#include "authgate/limits.h"
#include "util/util.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Encodes n raw bytes (may hold NULs) and parses them. */
static int parse_raw(const void *raw, size_t n, struct ag_basic_cred *out)
{
    char *b64 = malloc(ag_b64_encoded_len(n) + 1);
    assert_non_null(b64);
    ag_b64_encode(raw, n, b64);
    int rc = ag_basic_parse(b64, strlen(b64), out);
    free(b64);
    return rc;
}

/* ---- accepted credentials ------------------------------------------------- */

struct good {
    const char *b64; /* the token after "Basic " */
    const char *user;
    const char *password;
};

static const struct good goods[] = {
    /* RFC 7617 section 2 */
    {"QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "Aladdin", "open sesame"},
    /* RFC 7617 section 2.1: "test:123" + U+00A3 in UTF-8 (ms-nlmp-4.2.md, 8) */
    {"dGVzdDoxMjPCow==", "test", "123\xc2\xa3"},
    /* "u:a:b:c": split at the FIRST colon, the password keeps the others */
    {"dTphOmI6Yw==", "u", "a:b:c"},
    /* "user:" : empty password is the backend's business */
    {"dXNlcjo=", "user", ""},
    /* "CORP\alice:pw" */
    {"Q09SUFxhbGljZTpwdw==", "CORP\\alice", "pw"},
    /* "j\xc3\xbcrgen:p\xc3\xa4ss" (UTF-8 on both sides) */
    {"asO8cmdlbjpww6Rzcw==", "j\xc3\xbcrgen", "p\xc3\xa4ss"},
};

static void test_parse_good(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(goods); i++) {
        struct ag_basic_cred c = {0};
        int rc = ag_basic_parse(goods[i].b64, strlen(goods[i].b64), &c);
        if (rc != 0)
            fail_msg("case %zu (%s): rc %d", i, goods[i].b64, rc);
        assert_string_equal(c.user, goods[i].user);
        assert_int_equal(c.user_len, strlen(goods[i].user));
        assert_string_equal(c.password, goods[i].password);
        assert_int_equal(c.password_len, strlen(goods[i].password));
        ag_basic_cred_clear(&c);
        assert_null(c.user);
        assert_null(c.password);
        ag_basic_cred_clear(&c); /* twice is harmless */
    }
    ag_basic_cred_clear(NULL);
}

/* ---- refused credentials -------------------------------------------------- */

struct bad {
    const char *what;
    const char *raw; /* decoded bytes (rawlen of them), or NULL: use b64 */
    size_t rawlen;
    const char *b64;
    int rc;
};

static const struct bad bads[] = {
    {"no colon", "Aladdin open sesame", 19, NULL, AG_EINVAL},
    {"empty user", ":secret", 7, NULL, AG_EINVAL},
    {"only a colon", ":", 1, NULL, AG_EINVAL},
    {"empty", "", 0, NULL, AG_EINVAL},
    {"NUL in user", "ali\0ce:pw", 9, NULL, AG_EINVAL},
    {"NUL in password", "alice:p\0w", 9, NULL, AG_EINVAL},
    {"CR in user", "alice\r:pw", 9, NULL, AG_EINVAL},
    {"LF in password", "alice:pw\n", 9, NULL, AG_EINVAL},
    {"TAB in password", "alice:p\tw", 9, NULL, AG_EINVAL},
    {"DEL in user",
     "al\x7f"
     "ice:pw",
     9, NULL, AG_EINVAL},
    {"ESC in password", "alice:\x1b[2J", 10, NULL, AG_EINVAL},
    {"latin-1 user", "j\xfcrgen:pw", 9, NULL, AG_EINVAL},
    {"latin-1 password", "alice:p\xe4ss", 10, NULL, AG_EINVAL},
    {"overlong '/'", "alice:\xc0\xaf", 8, NULL, AG_EINVAL},
    {"surrogate", "alice:\xed\xa0\x80", 9, NULL, AG_EINVAL},
    {"truncated sequence", "alice:\xe2\x82", 8, NULL, AG_EINVAL},
    {"above U+10FFFF", "alice:\xf4\x90\x80\x80", 10, NULL, AG_EINVAL},
    {"stray continuation", "\x80lice:pw", 8, NULL, AG_EINVAL},
    /* base64 strictness */
    {"missing padding", NULL, 0, "QWxhZGRpbjpvcGVuIHNlc2FtZQ", AG_EINVAL},
    {"space inside", NULL, 0, "QWxh ZGRpbjpvcGVuIHNlc2FtZQ==", AG_EINVAL},
    {"url alphabet", NULL, 0, "dTph-mI6Yw==", AG_EINVAL},
    {"non-canonical bits", NULL, 0, "dXNlcjr=", AG_EINVAL},
    {"trailing newline", NULL, 0, "dXNlcjo=\n", AG_EINVAL},
};

static void test_parse_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(bads); i++) {
        struct ag_basic_cred c = {0};
        int rc = bads[i].raw ? parse_raw(bads[i].raw, bads[i].rawlen, &c)
                             : ag_basic_parse(bads[i].b64, strlen(bads[i].b64), &c);
        if (rc != bads[i].rc)
            fail_msg("%s: rc %d, want %d", bads[i].what, rc, bads[i].rc);
        /* out is written only on success */
        assert_null(c.user);
        assert_null(c.password);
    }
}

/* ---- sizes ---------------------------------------------------------------- */

static void test_sizes(void **state)
{
    (void)state;
    char raw[AG_BASIC_MAX_DECODED + 8];
    struct ag_basic_cred c = {0};

    /* user of exactly AG_USER_MAX bytes and password of AG_PASSWORD_MAX */
    memset(raw, 'u', AG_USER_MAX);
    raw[AG_USER_MAX] = ':';
    memset(raw + AG_USER_MAX + 1, 'p', AG_PASSWORD_MAX);
    assert_int_equal(parse_raw(raw, AG_USER_MAX + 1 + AG_PASSWORD_MAX, &c), 0);
    assert_int_equal(c.user_len, AG_USER_MAX);
    assert_int_equal(c.password_len, AG_PASSWORD_MAX);
    ag_basic_cred_clear(&c);

    /* one more byte of user */
    memset(raw, 'u', AG_USER_MAX + 1);
    raw[AG_USER_MAX + 1] = ':';
    memcpy(raw + AG_USER_MAX + 2, "pw", 2);
    assert_int_equal(parse_raw(raw, AG_USER_MAX + 4, &c), AG_ELIMIT);

    /* one more byte of password */
    memset(raw, 'u', 5);
    raw[5] = ':';
    memset(raw + 6, 'p', AG_PASSWORD_MAX + 1);
    assert_int_equal(parse_raw(raw, 6 + AG_PASSWORD_MAX + 1, &c), AG_ELIMIT);

    /* decoded size just above the cap: refused before decoding */
    memset(raw, 'a', sizeof(raw));
    raw[1] = ':';
    assert_int_equal(parse_raw(raw, AG_BASIC_MAX_DECODED + 1, &c), AG_ELIMIT);

    /* a huge token is refused without looking at it: neither base64 (all
     * '*') nor a multiple of 4 long, yet the answer is the size check's */
    size_t big = (1 << 20) + 1;
    char *junk = malloc(big);
    assert_non_null(junk);
    memset(junk, '*', big);
    assert_int_equal(ag_basic_parse(junk, big, &c), AG_ELIMIT);
    free(junk);
    assert_null(c.user);
}

/* ---- DOMAIN\user ---------------------------------------------------------- */

static void test_split(void **state)
{
    (void)state;
    struct ag_user_split s;
    const char *u;

    u = "alice";
    assert_int_equal(ag_basic_split_user(u, strlen(u), &s), 0);
    assert_null(s.domain);
    assert_int_equal(s.domain_len, 0);
    assert_ptr_equal(s.account, u);
    assert_int_equal(s.account_len, 5);

    u = "CORP\\alice";
    assert_int_equal(ag_basic_split_user(u, strlen(u), &s), 0);
    assert_ptr_equal(s.domain, u);
    assert_int_equal(s.domain_len, 4);
    assert_memory_equal(s.account, "alice", 5);
    assert_int_equal(s.account_len, 5);

    /* first backslash splits; the rest belongs to the account */
    u = "A\\B\\c";
    assert_int_equal(ag_basic_split_user(u, strlen(u), &s), 0);
    assert_int_equal(s.domain_len, 1);
    assert_int_equal(s.account_len, 3);
    assert_memory_equal(s.account, "B\\c", 3);

    /* "\alice": empty domain = no domain */
    u = "\\alice";
    assert_int_equal(ag_basic_split_user(u, strlen(u), &s), 0);
    assert_null(s.domain);
    assert_int_equal(s.account_len, 5);

    /* empty account */
    struct ag_user_split untouched = {(const char *)1, 7, (const char *)2, 9};
    s = untouched;
    u = "CORP\\";
    assert_int_equal(ag_basic_split_user(u, strlen(u), &s), AG_EINVAL);
    assert_memory_equal(&s, &untouched, sizeof(s));
    assert_int_equal(ag_basic_split_user("", 0, &s), AG_EINVAL);
    assert_int_equal(ag_basic_split_user("\\", 1, &s), AG_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
