/* fuzz_basic.c - libFuzzer target for Basic credentials (src/auth/basic.c):
 * the token after "Basic " and the "DOMAIN\account" split.
 *
 * Byte 0 chooses the input's role: the token as a client sent it, or the
 * decoded "user:password" octets (encoded here, so the fuzzer reaches the
 * checks behind the base64 layer). Invariants on what parses: user and
 * password are exactly the octets around the FIRST colon, within their caps,
 * without CTL or NUL; encoding them again gives the token back (one
 * spelling); the split's domain and account rebuild the user name, and the
 * account is never empty.
 * Build: cmake -DAG_FUZZ=ON with CC=clang; run: fuzz_basic corpus/basic.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/basic.h"
#include "authgate/err.h"
#include "authgate/limits.h"
#include "util/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void CHECK(bool ok)
{
    if (!ok)
        abort();
}

static bool no_ctl(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static void one(const char *tok, size_t len)
{
    struct ag_basic_cred c;
    memset(&c, 0, sizeof c);
    int rc = ag_basic_parse(tok, len, &c);
    CHECK(rc == 0 || rc == AG_EINVAL || rc == AG_ELIMIT);
    if (rc != 0) {
        CHECK(c.user == NULL && c.password == NULL); /* out written only on success */
        return;
    }
    CHECK(c.user_len >= 1 && c.user_len <= AG_USER_MAX && c.password_len <= AG_PASSWORD_MAX);
    CHECK(strlen(c.user) == c.user_len && strlen(c.password) == c.password_len);
    CHECK(!memchr(c.user, ':', c.user_len));
    CHECK(no_ctl(c.user, c.user_len) && no_ctl(c.password, c.password_len));
    size_t n = c.user_len + 1 + c.password_len;
    uint8_t *plain = malloc(n);
    char *enc = malloc(ag_b64_encoded_len(n) + 1);
    CHECK(plain && enc);
    memcpy(plain, c.user, c.user_len);
    plain[c.user_len] = ':';
    memcpy(plain + c.user_len + 1, c.password, c.password_len);
    ag_b64_encode(plain, n, enc);
    CHECK(strlen(enc) == len && memcmp(enc, tok, len) == 0);
    free(plain);
    free(enc);

    struct ag_user_split s;
    if (ag_basic_split_user(c.user, c.user_len, &s) == 0) {
        CHECK(s.account_len > 0 && s.account >= c.user &&
              s.account + s.account_len == c.user + c.user_len);
        if (s.domain) {
            CHECK(s.domain == c.user && s.domain_len > 0 && c.user[s.domain_len] == '\\');
            CHECK(s.account == c.user + s.domain_len + 1);
            CHECK(!memchr(s.domain, '\\', s.domain_len));
        } else {
            CHECK(s.account == c.user || (c.user[0] == '\\' && s.account == c.user + 1));
        }
    } else {
        CHECK(c.user[c.user_len - 1] == '\\' || (c.user_len == 1 && c.user[0] == '\\'));
    }
    ag_basic_cred_clear(&c);
    CHECK(c.user == NULL && c.password == NULL && c.user_len == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t n = size - 1;
    char *in;
    if (data[0] & 1) {
        in = malloc(ag_b64_encoded_len(n) + 1);
        CHECK(in != NULL);
        ag_b64_encode(data + 1, n, in);
        n = strlen(in);
    } else {
        in = malloc(n ? n : 1);
        CHECK(in != NULL);
        memcpy(in, data + 1, n);
    }
    one(in, n);
    free(in);
    return 0;
}
