/* verify_local.h - Basic verification against the local user file.
 *
 * Glossary: canonical name = the user's NAME as spelled in the user file
 * ("account" or "DOMAIN\account"), which becomes the connection's identity.
 *
 * Runs on a pool thread (*_blocking: it hashes, and the NTLM engine shares
 * the same file); touches only its arguments and the immutable user file.
 */
#ifndef AG_AUTH_VERIFY_LOCAL_H
#define AG_AUTH_VERIFY_LOCAL_H

#include <stddef.h>

struct ag_userfile;

/* Checks password (NUL-terminated UTF-8, secret, borrowed) for
 * user_with_optional_domain ("account" or "DOMAIN\account", borrowed) in uf
 * (borrowed, immutable). Compares MD4(UTF16LE(password)) with the file's hash
 * in constant time. Returns:
 *   0           match: canonical_out (cap bytes) gets the canonical name;
 *   AG_EAUTH    wrong password OR unknown user OR a user name the file could
 *               never hold - one code, and an unknown user costs the same
 *               hashing as a known one, so neither the answer nor its timing
 *               tells whether the user exists;
 *   AG_EINVAL   the password is not valid UTF-8 (independent of the user);
 *   AG_ELIMIT   the password exceeds AG_PASSWORD_MAX, or canonical_out is too
 *               small for the name;
 *   AG_EBACKEND uf is NULL (no user file loaded: fail closed).
 * The hashes are wiped; canonical_out is written only on success. */
int ag_verify_basic_local_blocking(const struct ag_userfile *uf,
                                   const char *user_with_optional_domain, const char *password,
                                   char *canonical_out, size_t cap);

#endif
