/* auth_int.h - what the files of the auth layer share (private to src/server).
 *
 * Files: auth.c (the per-request dispatcher, jobs, deadlines), auth_reply.c
 * (407/403/503, the one failure epilogue, identity strings, tracing),
 * auth_basic.c, auth_ntlm.c, auth_negotiate.c (one scheme each),
 * auth_state.c (server-wide state: init, check, shutdown, swap) and
 * auth_reload.c (a reload whose winbind lookups run off the loop).
 * Loop thread only, except the *_run job functions of each scheme file.
 */
#ifndef AG_SERVER_AUTH_INT_H
#define AG_SERVER_AUTH_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "auth/scheme.h"
#include "conn.h"
#include "util/log.h"
#include "session/table.h"

/* The client address as the failure throttle counts it: the session row's
 * key, computed once per connection (ag_session_add), not per check. The
 * auth paths run with a row (request_row); without one, the address text
 * (an IPv4 address is its own key). */
static inline const char *auth_addr_key(const struct conn *c)
{
    return c->session ? c->session->addr_key : c->peer;
}

/* --- auth_state.c ------------------------------------------------------------ */

/* The local user file, shared by jobs that may outlive a reload. */
struct ag_users {
    int refs;
    struct ag_userfile *uf;
};

struct ag_users *auth_users_ref(struct ag_users *u);
/* Accepts NULL. */
void auth_users_unref(struct ag_users *u);
/* *out is the user file cfg needs (a new reference), or NULL for none. */
int auth_load_users(const struct ag_config *cfg, struct ag_users **out, char *err, size_t errlen);
/* Resolves a rules file's group name through winbind (pool thread). */
int auth_wb_group(void *arg, const char *name, char *sid, size_t cap);

/* winbindd's names for NTLM challenges, as read once per (re)load. */
struct auth_wb_names {
    int rc; /* of ag_wb_names_blocking; AG_EIO when not read */
    char nd[256], dd[256], nn[256];
};
/* NTLM with the winbind backend: the challenge names winbind's domain. */
bool auth_wants_wb_names(const struct ag_config *cfg);
/* Blocking: on a pool thread, or at start-up before the loop serves. */
void auth_read_wb_names(struct auth_wb_names *w);
/* The prepared state of ncfg takes over. Takes rules and u. */
void auth_swap(struct ag_server *srv, const struct ag_config *ncfg, struct ag_rules *rules,
               struct ag_users *u, const struct auth_wb_names *names);

/* --- auth.c ------------------------------------------------------------------ */

/* The scheme is enabled and can be verified now (a backend, a user file, an
 * acceptor) on this connection (Basic with basic_require_tls: TLS only). */
bool auth_scheme_available(const struct conn *c, enum ag_scheme s);
/* Hands a verification to a worker pool (ownership of j passes, also on
 * failure) and parks the connection until it answers; 503 at the cap. */
enum ag_auth_verdict auth_start_job(struct conn *c, enum ag_pool_id pool, struct ag_job *j);
/* The loop side of every verification job: records its latency, frees the
 * connection to read again, and returns the loop's clock. */
uint64_t auth_job_returned(struct conn *c, const struct ag_job *j, enum ag_scheme scheme,
                           int backend);
/* The worker pool of a password backend. */
enum ag_pool_id auth_backend_pool(enum ag_backend b);
/* A verification succeeded: the request goes on. */
void auth_proceed(struct conn *c);

/* --- auth_reply.c ------------------------------------------------------------ */

/* How a refusal answers. */
enum auth_reply {
    AUTH_REPLY_407,       /* a fresh challenge with every scheme offered */
    AUTH_REPLY_407_CLOSE, /* ... and the connection ends after it */
    AUTH_REPLY_400_CLOSE, /* no credential can be read from this request */
    AUTH_REPLY_403,       /* a valid identity the policy refuses: no prompt */
    AUTH_REPLY_503,       /* a cap or a backend: Retry-After, the connection ends */
};

/* A token bound to another TLS channel (mismatch) or, with channel_binding
 * required, to none: 407, one log line, its counter. AG_AUTH_REPLIED. */
enum ag_auth_verdict auth_channel_binding_refused(struct conn *c, const char *scheme,
                                                  bool mismatch);
/* The one failure epilogue: forgets the row's handshake and identity, bumps
 * counter (NULL: none), sends the reply. reason is the 407's log reason or
 * the 400/403/503 detail. Always AG_AUTH_REPLIED. */
enum ag_auth_verdict auth_refuse(struct conn *c, const char *reason, enum auth_reply reply,
                                 uint64_t *counter);
/* A handshake continues: 407 with only that scheme and its base64 token. */
void auth_send_continue(struct conn *c, const char *why, const char *scheme, const char *token);
/* The end of a failed Basic or NTLM verification (rc, refusal and reason
 * from the backend; pre and who the scheme's own log fields before and
 * after client=). 503 on a backend failure, else throttle accounting and 407. */
void auth_verify_failed(struct conn *c, enum ag_scheme scheme, int rc, enum ag_refusal refusal,
                        const char *user, const char *reason, const char *pre, const char *who,
                        const char *why);
/* "authgatectl trace addr=IP" is on for this connection's client. */
bool auth_traced(const struct conn *c);

#define AUTH_TRACE(c, ...)                                                                         \
    do {                                                                                           \
        if (auth_traced(c))                                                                        \
            ag_info(__VA_ARGS__);                                                                  \
    } while (0)

/* --- the scheme files: one credential of their scheme, row already present -- */

enum ag_auth_verdict auth_basic(struct conn *c, const struct ag_credentials *cr);
/* in_negotiate: raw NTLMSSP arrived under "Negotiate" (answer in kind). */
enum ag_auth_verdict auth_ntlm(struct conn *c, const struct ag_credentials *cr, bool in_negotiate);
enum ag_auth_verdict auth_negotiate(struct conn *c, const struct ag_credentials *cr);

#endif
