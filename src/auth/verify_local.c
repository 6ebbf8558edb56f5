/* verify_local.c - Basic against the user file (see verify_local.h). */
#include <string.h>

#include "auth/basic.h"
#include "auth/ntcrypto.h"
#include "auth/userfile.h"
#include "auth/verify_local.h"
#include "authgate/err.h"
#include "authgate/limits.h"
#include "util/util.h"

int ag_verify_basic_local_blocking(const struct ag_userfile *uf,
                                   const char *user_with_optional_domain, const char *password,
                                   char *canonical_out, size_t cap)
{
    /* Compared against when the user is unknown, so both paths do one NT
     * hash and one 16-byte comparison. No password hashes to all-zero bytes
     * that we know of; and a match here is never reported anyway. */
    static const uint8_t dummy[16] = {0};
    uint8_t want[16], got[16];
    char dom[AG_USER_MAX + 1], acct[AG_USER_MAX + 1], canon[AG_USER_MAX + 1];
    struct ag_user_split sp;
    size_t ulen;
    int rc, found = 0, differ;

    if (!uf)
        return AG_EBACKEND;
    if (!user_with_optional_domain || !password)
        return AG_EINVAL;

    /* Hash first: errors about the password come out before anything that
     * depends on the user, so they cannot reveal the user either. */
    rc = ag_nt_hash(password, strlen(password), got);
    if (rc < 0)
        return rc;

    ulen = strlen(user_with_optional_domain);
    if (ulen <= AG_USER_MAX && ag_basic_split_user(user_with_optional_domain, ulen, &sp) == 0) {
        memcpy(dom, sp.domain ? sp.domain : "", sp.domain_len);
        dom[sp.domain_len] = '\0';
        memcpy(acct, sp.account, sp.account_len);
        acct[sp.account_len] = '\0';
        found = ag_userfile_lookup(uf, dom, acct, want, canon, sizeof(canon)) == 0;
    }
    if (!found)
        memcpy(want, dummy, sizeof(want));

    differ = ag_ct_memcmp(want, got, sizeof(got));
    ag_wipe(want, sizeof(want));
    ag_wipe(got, sizeof(got));
    if (!found || differ)
        return AG_EAUTH;

    ulen = strlen(canon);
    if (ulen + 1 > cap)
        return AG_ELIMIT;
    memcpy(canonical_out, canon, ulen + 1);
    return 0;
}
