/* reply.h - the gateway's own responses: small, self-delimited bodies.
 *
 * Every reply carries Content-Length so a kept-alive client can read the
 * next one; nothing from the request (least of all a credential) is echoed.
 * Pure; loop thread by use.
 */
#ifndef AG_HTTP_REPLY_H
#define AG_HTTP_REPLY_H

#include <stdbool.h>

#include "util/util.h"

const char *ag_reply_reason(int status);

/* Appends a complete response to out: status line, Content-Type text/plain,
 * Content-Length, the extra header lines (each ending in CRLF, may be NULL),
 * Connection: keep-alive|close (and Proxy-Connection for HTTP/1.0 clients),
 * and a one-line body explaining the status (detail may be NULL). */
int ag_reply_build(struct ag_buf *out, int status, const char *extra, bool keepalive, bool http10,
                   const char *detail);

/* Appends the head of a response whose body the caller sends itself (a
 * file): status line, Content-Type ctype, Content-Length len, the extra
 * lines, Connection as ag_reply_build. 304 carries no Content-Length. */
int ag_reply_build_head(struct ag_buf *out, int status, const char *ctype, size_t len,
                        const char *extra, bool keepalive, bool http10);

/* The same response with the given body and Content-Type (an error page);
 * the page is private to the one user it names: never cached. */
int ag_reply_build_body(struct ag_buf *out, int status, const char *extra, bool keepalive,
                        bool http10, const char *ctype, const char *body, size_t bodylen);

/* What a refusal means for the person who sees it, in plain words (the
 * {{message}} of an error page). Never NULL. */
const char *ag_reply_message(int status);

#endif
