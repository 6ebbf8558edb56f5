/* files.h - what a configuration reads besides itself: the PAC file and the
 * parents' credentials (private to src/config).
 *
 * Both are read when the configuration is parsed (start-up, "authgate -t",
 * every reload) and live in the snapshot, so a request never opens a file
 * and a reload that cannot read them keeps the old configuration. */
#ifndef AG_CONFIG_FILES_H
#define AG_CONFIG_FILES_H

#include <stddef.h>

#include "config/config.h"

/* "NAME HOST:PORT [auth=basic:FILE | auth=negotiate:PRINCIPAL] [tls
 * [ca=FILE]]" into out; a relative FILE resolves against basedir (may be
 * NULL). 0, or AG_EINVAL
 * with the reason in why. */
int ag_cfg_parent_parse(char **argv, size_t argc, const char *basedir, struct ag_parent *out,
                        char *why, size_t whylen);
/* Reads the PAC file and the parents' Basic credentials into c. 0, or
 * AG_EINVAL with "path: reason" in why. */
int ag_cfg_files_load(struct ag_config *c, char *why, size_t whylen);
/* Frees (and wipes, for credentials) what ag_cfg_parent_parse and
 * ag_cfg_files_load put into c. */
void ag_cfg_files_free(struct ag_config *c);

#endif
