/* basic.h - the Basic scheme's credentials (RFC 7617): decoding and checks.
 *
 * Glossary: user-pass = the decoded "user:password" octets; account = the
 * user name without its optional "DOMAIN\" prefix; CTL = octets 0x00-0x1f
 * and 0x7f. We announce charset="UTF-8", so both halves must be valid UTF-8.
 *
 * Pure code (no libuv, no globals): any thread. The decoded bytes are
 * secret and are wiped from every scratch buffer before returning.
 */
#ifndef AG_AUTH_BASIC_H
#define AG_AUTH_BASIC_H

#include <stddef.h>

/* Decoded Basic credentials. Owns both strings (NUL-terminated, neither
 * contains a NUL or another CTL); password is secret: release the struct
 * with ag_basic_cred_clear(), which wipes it. */
struct ag_basic_cred {
    char *user;          /* owned; 1..AG_USER_MAX bytes, may be "DOMAIN\account" */
    size_t user_len;     /* strlen(user), kept to avoid rescans */
    char *password;      /* owned, secret; 0..AG_PASSWORD_MAX bytes */
    size_t password_len; /* strlen(password) */
};

/* Decodes the token that follows "Basic " (b64/len borrowed, untrusted).
 * Strict base64, capped at AG_BASIC_MAX_DECODED before decoding; splits at
 * the first colon (so a password may contain colons, a user cannot).
 * Returns 0 and fills out (which the caller then owns), or:
 *   AG_EINVAL  bad base64, no colon, empty user, CTL or invalid UTF-8;
 *   AG_ELIMIT  decoded size, user or password length above its cap;
 *   AG_ENOMEM.
 * An empty password is accepted here (RFC 7617 allows it); backends decide.
 * out is written only on success. */
int ag_basic_parse(const char *b64, size_t len, struct ag_basic_cred *out);

/* Wipes and frees the strings and zeroes the struct. Accepts NULL and a
 * zeroed (or already cleared) struct. */
void ag_basic_cred_clear(struct ag_basic_cred *c);

/* The parts of a "DOMAIN\account" user name; both point into the caller's
 * string (borrowed, not NUL-terminated). domain is NULL with domain_len 0
 * when there is no backslash. */
struct ag_user_split {
    const char *domain;
    size_t domain_len;
    const char *account;
    size_t account_len;
};

/* Splits user (len bytes, borrowed) at the FIRST backslash: the winbind and
 * user-file backends take the domain apart from the account. "\account"
 * (empty domain) counts as no domain. Returns 0, or AG_EINVAL when the
 * account part is empty ("DOMAIN\" or ""). out is written only on success. */
int ag_basic_split_user(const char *user, size_t len, struct ag_user_split *out);

#endif
