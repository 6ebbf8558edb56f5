/* cli.h - what the files of authgatectl share (private to src/cli). */
#ifndef AG_CLI_H
#define AG_CLI_H

#include <stddef.h>

/* Connects to the status socket at path, sends line (newline included),
 * reads the whole reply into *out (malloc'd, NUL-terminated). Returns an
 * enum ag_ctl_exit code, AG_CTL_EXIT_OK when a reply arrived. */
int ctl_exchange(const char *path, const char *line, int timeout_s, char **out, size_t *outlen);

/* `authgatectl top [--iterations N]` (top.c); argv[0] is "top". */
int ag_top_main(const char *sock, int timeout_s, int argc, char **argv);

#endif
