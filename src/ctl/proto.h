/* proto.h - the daemon's side of the status-socket protocol: framing and
 * command parsing as pure functions (unit-tested, fuzzable), and the reply
 * builder. The wire format itself is described in authgate/ctl_proto.h.
 *
 * Glossary: frame = finding one complete command line in the bytes read so
 * far; argument = a word after the command, "key=value" or a bare word.
 * No libuv here; any thread.
 */
#ifndef AG_CTL_PROTO_H
#define AG_CTL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "authgate/ctl_proto.h"
#include "authgate/limits.h"
#include "util/util.h"

struct ag_ctl_cmd {
    char buf[AG_CTL_LINE_MAX + 1]; /* the words, NUL-separated (owned copy) */
    const char *name;              /* points into buf */
    size_t argc;
    const char *argv[AG_CTL_ARGS_MAX]; /* point into buf */
};

/* Looks for the end of the first line in buf[0..n). Returns 0 and the line's
 * length (without "\n" or "\r\n") in *line_len when a whole line is there;
 * AG_EAGAIN when more bytes may complete it; AG_ELIMIT when n bytes without a
 * newline already reach AG_CTL_LINE_MAX (the line can never be valid). */
int ag_ctl_frame(const char *buf, size_t n, size_t *line_len);

/* Splits one line (no newline) into a command and its arguments. AG_EINVAL
 * for an empty line or a byte outside printable ASCII and blanks; AG_ELIMIT
 * for a line over the cap or more than AG_CTL_ARGS_MAX arguments. out is
 * written only on success. */
int ag_ctl_parse(const char *line, size_t len, struct ag_ctl_cmd *out);

/* The value of argument "key=value", or NULL. A bare word matches nothing. */
const char *ag_ctl_arg(const struct ag_ctl_cmd *c, const char *key);

/* A reply under construction: records, then one status line. Errors are
 * sticky: the first failed append (the AG_CTL_REPLY_MAX ceiling) turns the
 * whole reply into ".error limit". */
struct ag_ctl_reply {
    struct ag_buf b;  /* owned */
    int err;          /* first append error */
    bool failed;      /* ag_ctl_reply_error() was called */
    char status[640]; /* the status line, without newline */
};

void ag_ctl_reply_init(struct ag_ctl_reply *r);
void ag_ctl_reply_free(struct ag_ctl_reply *r);
/* One key=value pair; the value is encoded. A new record starts after
 * ag_ctl_reply_end(). */
void ag_ctl_kv(struct ag_ctl_reply *r, const char *key, const char *value);
void ag_ctl_kvu(struct ag_ctl_reply *r, const char *key, uint64_t value);
void ag_ctl_end(struct ag_ctl_reply *r);
/* Raw text (metrics): the caller guarantees no line starts with '.'. */
void ag_ctl_raw(struct ag_ctl_reply *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sets the status line to ".error CODE message". */
void ag_ctl_reply_error(struct ag_ctl_reply *r, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Appends the status line and hands the bytes to the caller (malloc'd). */
char *ag_ctl_reply_finish(struct ag_ctl_reply *r, size_t *len);

#endif
