/* ctl_proto.h - the status-socket wire protocol, shared by the daemon
 * (src/ctl) and authgatectl (src/cli). Nothing else is shared between them.
 *
 * Glossary: command line = the one line a client sends ("COMMAND ARG...\n");
 * record = one reply line of blank-separated key=value pairs; status line =
 * the last line of every reply, ".ok" or ".error CODE MESSAGE".
 *
 * One exchange per connection: the client connects, sends one command line
 * of at most AG_CTL_LINE_MAX bytes (newline included), reads the reply up to
 * the status line, and the daemon closes. A line that is too long, holds a
 * byte outside printable ASCII, or names no known command gets an error
 * status line and the close: it never affects anything but that connection.
 *
 * Values in records are encoded with ag_ctl_encode(): printable ASCII except
 * blank, '"', '=' and '\\' is kept, every other byte becomes \xHH, an empty
 * value is "-". The output of "metrics" is Prometheus text, not
 * records; data lines never start with '.', so the status line is unambiguous.
 */
#ifndef AUTHGATE_CTL_PROTO_H
#define AUTHGATE_CTL_PROTO_H

#include <stddef.h>

/* A command line, newline included: commands are a word and a few short
 * arguments; 1 KiB leaves room for a long user name filter. */
#define AG_CTL_LINE_MAX 1024
/* Arguments after the command word. */
#define AG_CTL_ARGS_MAX 8

/* Where authgatectl looks when neither -s nor AUTHGATE_SOCKET names a socket
 * (the systemd unit's RuntimeDirectory). */
#define AG_CTL_DEFAULT_SOCKET "/run/authgate/authgate.sock"

#define AG_CTL_OK ".ok"
#define AG_CTL_ERROR ".error"

/* Error codes of the status line (".error CODE message"). */
#define AG_CTL_E_USAGE "usage"       /* unknown command, bad or missing argument */
#define AG_CTL_E_DENIED "denied"     /* the peer is not in the allow-list */
#define AG_CTL_E_NOTFOUND "notfound" /* kick matched no connection */
#define AG_CTL_E_FAILED "failed"     /* the command ran and failed (reload: file:line: message) */
#define AG_CTL_E_LIMIT "limit"       /* line too long, too many control connections, reply cap */

/* authgatectl's exit codes, for scripts. */
enum ag_ctl_exit {
    AG_CTL_EXIT_OK = 0,
    AG_CTL_EXIT_FAILED = 1,      /* the daemon refused or failed the command */
    AG_CTL_EXIT_USAGE = 2,       /* bad authgatectl arguments */
    AG_CTL_EXIT_NOT_RUNNING = 3, /* no socket, or nobody listening on it */
    AG_CTL_EXIT_DENIED = 4,      /* socket permissions or the allow-list refused us */
};

/* Encodes src (n bytes) as a record value into dst (dstcap >= 4*n+2 never
 * truncates; otherwise the value is cut at a byte boundary). Returns dst. */
static inline char *ag_ctl_encode(char *dst, size_t dstcap, const char *src, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (dstcap == 0)
        return dst;
    if (n == 0 && dstcap > 1)
        dst[o++] = '-';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)src[i];
        int plain = ch > 0x20 && ch < 0x7f && ch != '"' && ch != '=' && ch != '\\';
        if (plain && ch == '-' && n == 1)
            plain = 0; /* "-" alone means empty */
        if (plain) {
            if (o + 1 >= dstcap)
                break;
            dst[o++] = (char)ch;
        } else {
            if (o + 4 >= dstcap)
                break;
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[ch >> 4];
            dst[o++] = hex[ch & 15];
        }
    }
    dst[o] = '\0';
    return dst;
}

static inline int ag_ctl_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes a record value in place ("-" becomes ""); returns the decoded
 * length. A malformed escape is kept as written. */
static inline size_t ag_ctl_decode(char *s)
{
    size_t r = 0, w = 0;
    if (s[0] == '-' && s[1] == '\0') {
        s[0] = '\0';
        return 0;
    }
    while (s[r]) {
        if (s[r] == '\\' && s[r + 1] == 'x' && ag_ctl_hexval(s[r + 2]) >= 0 &&
            ag_ctl_hexval(s[r + 3]) >= 0) {
            s[w++] = (char)(ag_ctl_hexval(s[r + 2]) * 16 + ag_ctl_hexval(s[r + 3]));
            r += 4;
        } else {
            s[w++] = s[r++];
        }
    }
    s[w] = '\0';
    return w;
}

#endif
