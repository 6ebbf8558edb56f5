/* reply.c - canned responses (see reply.h). */
#include <stdio.h>
#include <string.h>

#include "reply.h"

const char *ag_reply_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 405:
        return "Method Not Allowed";
    case 407:
        return "Proxy Authentication Required";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    case 508:
        return "Loop Detected";
    default:
        return "Error";
    }
}

const char *ag_reply_message(int status)
{
    switch (status) {
    case 400:
        return "The gateway could not understand the request your browser sent.";
    case 403:
        return "The gateway's access policy does not allow this request.";
    case 407:
        return "The gateway needs to know who you are before it lets this request through, "
               "and your browser did not prove it. Check that you are signed in to the "
               "computer with your domain account and that the browser may sign in to the "
               "proxy on its own.";
    case 502:
        return "The gateway could not reach the site: its name did not resolve, or it "
               "refused or dropped the connection.";
    case 503:
        return "The gateway cannot check who you are or what you may reach right now (a "
               "sign-in service is down or the gateway is busy). Please try again in a minute.";
    case 504:
        return "The site did not answer the gateway in time.";
    default:
        return "The gateway could not serve this request.";
    }
}

int ag_reply_build_body(struct ag_buf *out, int status, const char *extra, bool keepalive,
                        bool http10, const char *ctype, const char *body, size_t bodylen)
{
    const char *conn = keepalive ? "keep-alive" : "close";
    int rc =
        ag_buf_printf(out,
                      "HTTP/1.1 %d %s\r\n"
                      "Content-Type: %s\r\n"
                      "Content-Length: %zu\r\n"
                      "Cache-Control: no-store\r\n"
                      "%s"
                      "Connection: %s\r\n"
                      "%s%s%s"
                      "\r\n",
                      status, ag_reply_reason(status), ctype, bodylen, extra ? extra : "", conn,
                      http10 ? "Proxy-Connection: " : "", http10 ? conn : "", http10 ? "\r\n" : "");
    return rc ? rc : ag_buf_append(out, body, bodylen);
}

int ag_reply_build(struct ag_buf *out, int status, const char *extra, bool keepalive, bool http10,
                   const char *detail)
{
    char body[256];
    int bl = snprintf(body, sizeof body, "%d %s%s%s\n", status, ag_reply_reason(status),
                      detail ? ": " : "", detail ? detail : "");
    if (bl < 0)
        return AG_EINVAL;
    if ((size_t)bl >= sizeof body)
        bl = (int)sizeof body - 1;
    const char *conn = keepalive ? "keep-alive" : "close";
    return ag_buf_printf(out,
                         "HTTP/1.1 %d %s\r\n"
                         "Content-Type: text/plain; charset=utf-8\r\n"
                         "Content-Length: %d\r\n"
                         "%s"
                         "Connection: %s\r\n"
                         "%s%s%s"
                         "\r\n%.*s",
                         status, ag_reply_reason(status), bl, extra ? extra : "", conn,
                         http10 ? "Proxy-Connection: " : "", http10 ? conn : "",
                         http10 ? "\r\n" : "", bl, body);
}

int ag_reply_build_head(struct ag_buf *out, int status, const char *ctype, size_t len,
                        const char *extra, bool keepalive, bool http10)
{
    const char *conn = keepalive ? "keep-alive" : "close";
    int rc = ag_buf_printf(out, "HTTP/1.1 %d %s\r\n", status, ag_reply_reason(status));
    if (status != 304)
        rc |= ag_buf_printf(out, "Content-Type: %s\r\nContent-Length: %zu\r\n", ctype, len);
    rc |=
        ag_buf_printf(out, "%sConnection: %s\r\n%s%s%s\r\n", extra ? extra : "", conn,
                      http10 ? "Proxy-Connection: " : "", http10 ? conn : "", http10 ? "\r\n" : "");
    return rc ? AG_ELIMIT : 0;
}
