/* auth_glue.h - the seam between a connection and authentication
 * (private to src/server).
 *
 * exchange.c asks ag_conn_auth() once per request head; the answer is to
 * proceed, or that a reply (407/403/503) was sent, or that a verification job
 * is running and exchange_proceed() follows when it succeeds. Loop thread only.
 */
#ifndef AG_SERVER_AUTH_GLUE_H
#define AG_SERVER_AUTH_GLUE_H

struct conn;

enum ag_auth_verdict {
    AG_AUTH_PROCEED = 0, /* identity established (or auth off): forward */
    AG_AUTH_REPLIED,     /* a response was sent; the exchange is over */
    AG_AUTH_PENDING,     /* a job runs; the connection waits in CONN_AUTH_VERIFY */
};

enum ag_auth_verdict ag_conn_auth(struct conn *c);
/* A new request head: an identity proven by Basic ends with the request that
 * carried it, before anything (rules, logs, the identity header) reads it. */
void ag_conn_auth_request_begin(struct conn *c);
/* The user column of the access log: the connection's identity or "-". */
const char *ag_conn_user(const struct conn *c);
/* "Name: value\r\n" of the configured identity header for this connection,
 * or NULL. */
const char *ag_conn_identity_header(const struct conn *c);

#endif
