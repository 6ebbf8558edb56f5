/* userfile.h - the local user file: user names and their NT hashes.
 *
 * Glossary: NT hash = MD4(UTF16LE(password)) (ntcrypto.h), a password
 * equivalent for NTLM: the file is as secret as the passwords; entry = one
 * "NAME:NTHASHHEX" line; NAME = "account" or "DOMAIN\account"; canonical
 * name = NAME spelled as in the file.
 *
 * Format (one entry per line):
 *     # comment                       (a line whose first non-blank is '#')
 *     alice:a4f49c406510bdcab6824ee7c30fd852
 *     CORP\bob:8846f7eaee8fb117ad06bdd830b7586c
 * Blank lines are ignored, leading/trailing blanks and a CR before the LF
 * are trimmed. NAME: 1..AG_USER_MAX bytes of UTF-8, no CTL, no ':', no
 * blank at either end, non-empty domain and account around the first '\'.
 * The hash is exactly 32 hex digits (either case). A name may appear once
 * (compared like lookups: ASCII case-insensitive, domain included).
 *
 * Matching: account names compare ASCII case-insensitively. An entry without
 * a domain matches the account under any domain (or none); an entry with a
 * domain matches only that domain (ASCII case-insensitive). When both exist
 * for an account, the domain-specific entry wins for its domain.
 *
 * A loaded file is immutable: any number of threads may look up in it at
 * once (pool threads do, for NTLM and Basic); whoever loaded it frees it
 * once no job uses it (reload swaps in a new one, refcounting is the
 * caller's). Pure code: no libuv.
 */
#ifndef AG_AUTH_USERFILE_H
#define AG_AUTH_USERFILE_H

#include <stddef.h>
#include <stdint.h>

struct ag_userfile;

/* Reads and parses the file at path (borrowed); files above
 * AG_USERFILE_MAX_BYTES are refused. Returns a new table the caller owns, or
 * NULL with "file:line: message" (or "file: message") in err (errlen bytes,
 * always NUL-terminated when errlen > 0). The read buffer is wiped.
 * Start-up / reload context (blocking I/O): not on the loop during serving. */
struct ag_userfile *ag_userfile_load(const char *path, char *err, size_t errlen);

/* Same from memory (text/len borrowed); name is used in error messages.
 * For tests and for ag_userfile_set's validation. */
struct ag_userfile *ag_userfile_parse(const char *text, size_t len, const char *name, char *err,
                                      size_t errlen);

/* Finds user (the account alone, NUL-terminated, borrowed) under domain
 * (NULL or "" = none). On success copies the entry's hash to nt_hash_out
 * (secret: the caller wipes it) and its canonical name ("account" or
 * "DOMAIN\account" as written in the file) to canonical_user_out (cap bytes;
 * NULL when the caller needs only the hash). Returns 0, AG_ENOTFOUND,
 * AG_ELIMIT when the name does not fit in cap, AG_EINVAL for a NULL uf or
 * user. Outputs are
 * written only on success. O(1): one hash-bucket walk. */
int ag_userfile_lookup(const struct ag_userfile *uf, const char *domain, const char *user,
                       uint8_t nt_hash_out[16], char *canonical_user_out, size_t cap);

/* Number of entries. */
size_t ag_userfile_count(const struct ag_userfile *uf);

/* Wipes the hashes and frees. Accepts NULL. */
void ag_userfile_free(struct ag_userfile *uf);

/* Checks a NAME (len bytes) against the file's rules above; 0 or AG_EINVAL
 * (AG_ELIMIT when too long). If msg is not NULL it gets a static reason. */
int ag_userfile_check_name(const char *name, size_t len, const char **msg);

/* Adds user (a NAME as above) with the NT hash of password, or replaces the
 * hash of the entry with the same name (its line keeps its place and takes
 * the new spelling); every other line, comment and blank line is kept
 * byte for byte. Atomic: writes "<path>.tmp.XXXXXX" in the same directory,
 * fsyncs it, renames it over path, fsyncs the directory. The new file has
 * mode 0600; when it replaces an existing file it keeps that file's owner
 * and group where permitted and its group-read bit (a daemon that reads the
 * file through its group keeps working) - never any access for others.
 * A missing file is created. Returns 0, AG_EINVAL (bad name, empty or
 * invalid password, existing file malformed - load it for the message),
 * AG_ELIMIT (result above AG_USERFILE_MAX_BYTES, password too long), AG_EIO
 * (errno tells), AG_ENOMEM. The password, hashes and file images are wiped.
 * Concurrent set() calls on one file are not serialised: the last rename
 * wins. If path is a symlink, the link itself is replaced by a regular file.
 * Blocking: CLI use only. */
int ag_userfile_set(const char *path, const char *user, const char *password);

#endif
