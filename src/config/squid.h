/* squid.h - `authgate import-squid`: a Squid configuration's authentication
 * and access parts as an authgate configuration and rules file.
 *
 * Glossary: directive = one logical line of squid.conf (continuations
 * joined, comments dropped); acl = a named set of one type (src, dst,
 * dstdomain, port, method, proxy_auth, time, external), its lines OR'ed;
 * access line = "http_access allow|deny acl..." (ACLs AND'ed, first match
 * wins, the default is the opposite of the last line); note = a line that
 * could not be translated, or only approximately, with the reason.
 *
 * The input is an operator's file, parsed with bounds (AG_SQUID_*) through
 * the cursor helper. Foreground program; no event loop.
 */
#ifndef AG_CONFIG_SQUID_H
#define AG_CONFIG_SQUID_H

#include <stddef.h>

#include "util/util.h"

struct ag_squid_out {
    struct ag_buf conf;  /* authgate.conf */
    struct ag_buf rules; /* the rules file it names (rules_file) */
    struct ag_buf notes; /* one "file:line: text -- reason" per line left out */
    size_t n_notes;
};

/* Translates the Squid configuration at path (following its includes).
 * rules_path is what the produced config's rules_file says. 0 and *out
 * filled (free with ag_squid_out_free), or -1 with a message in err (the
 * file cannot be read, or a bound was hit). */
int ag_squid_import(const char *path, const char *rules_path, struct ag_squid_out *out, char *err,
                    size_t errlen);
void ag_squid_out_free(struct ag_squid_out *out);

/* `authgate import-squid [-o DIR] squid.conf`: prints the config, then the
 * rules file (or writes DIR/authgate.conf and DIR/rules.conf), and the notes
 * on stderr. Exit status 0, or 2 for bad arguments or an unreadable file. */
int ag_squid_import_main(int argc, char **argv);

#endif
