/* auth.h - the one interface between a connection and authentication.
 *
 * Glossary: verdict = what one request head's decision says (forward, a
 * reply was sent, or a verification job runs); scheme file = the code of one
 * scheme (auth_basic.c, auth_ntlm.c, auth_negotiate.c), reached only through
 * the dispatcher auth.c; auth state = what the server holds for every
 * connection (users, rules, acceptor, winbind names, NTLM target names),
 * built by auth_state.c at start-up and swapped in by a reload.
 *
 * exchange.c asks ag_auth_request() once per request head; conn.c tells the
 * layer when a connection waits, times out or closes; main.c and server.c
 * drive the server-wide state. Loop thread only.
 */
#ifndef AG_SERVER_AUTH_H
#define AG_SERVER_AUTH_H

#include <stddef.h>
#include <stdint.h>

struct conn;
struct ag_config;
struct ag_server;

/* --- per connection (auth.c) ---------------------------------------------- */

enum ag_auth_verdict {
    AG_AUTH_PROCEED = 0, /* identity established (or auth off): forward */
    AG_AUTH_REPLIED,     /* a response was sent; the exchange is over */
    AG_AUTH_PENDING,     /* a job runs; the connection waits in CONN_AUTH_VERIFY */
};

/* The decision for the request head just parsed (the Proxy-Authorization
 * field is consumed here, never forwarded). On AG_AUTH_PENDING the job's
 * done callback later calls exchange_proceed() or replies. */
enum ag_auth_verdict ag_auth_request(struct conn *c);
/* A new request head: an identity proven by Basic ends with the request that
 * carried it, before anything (rules, logs, the identity header) reads it. */
void ag_auth_request_begin(struct conn *c);
/* The deadline for a connection waiting for its next request: the idle
 * deadline, or what is left of a handshake's. */
uint64_t ag_auth_wait_timeout(const struct conn *c);
/* A verification took longer than its deadline: 503, the job is detached. */
void ag_auth_timeout(struct conn *c);
/* The connection is going away: detaches its job, removes its session row. */
void ag_auth_close(struct conn *c);

/* --- identity strings (auth_reply.c) ------------------------------------- */

/* The user column of the access log: the connection's identity or "-".
 * Points into a static buffer valid until the next call. */
const char *ag_auth_user(const struct conn *c);
/* "Name: value\r\n" of the configured identity header for this connection,
 * or NULL. Static buffer as above. */
const char *ag_auth_identity_header(const struct conn *c);

/* --- server-wide state (auth_state.c, auth_reload.c) ---------------------- */

/* Loads what srv->cfg needs (the user file, rules, acceptor) and starts the
 * verification threads. 0, or -1 with err filled. */
int ag_auth_init(struct ag_server *srv, char *err, size_t errlen);
/* Prepares the state of ncfg and swaps it in: 0 done, 1 when winbind
 * lookups run on the worker pool first (then ag_server_reload_finish
 * follows), or -1 with err filled: the old state stays. */
int ag_auth_reload(struct ag_server *srv, struct ag_config *ncfg, char *err, size_t errlen);
void ag_auth_shutdown(struct ag_server *srv);
/* Frees what the last reload replaced (the old rules, user file and
 * acceptor), once no other loop points at them (ag_server_share). */
void ag_auth_retire_free(struct ag_server *srv);
/* For "authgate -t": loads (and frees) the user file and the rules file cfg
 * names. 0, or -1 with "file:line: message" in err. */
int ag_auth_check_files(const struct ag_config *cfg, char *err, size_t errlen);

#endif
