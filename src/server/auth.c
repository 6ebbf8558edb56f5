/* auth.c - the per-request authentication decision (see auth.h).
 *
 * Per request head: find the one Proxy-Authorization (consumed here, never
 * forwarded), then decide among: the connection's identity, a 407, or the
 * credential's own scheme file (auth_basic.c, auth_ntlm.c,
 * auth_negotiate.c), which may answer at once or park the connection on a
 * verification job. An identity is a property of this connection's session
 * row only; a new credential on an authenticated connection resets it before
 * anything else happens. Loop thread only. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "auth_int.h"
#include "session/table.h"

/* --- what is offered --------------------------------------------------------- */

bool auth_scheme_available(const struct conn *c, enum ag_scheme s)
{
    const struct ag_server *srv = c->srv;
    const struct ag_config *cfg = c->cfg;
    if (!ag_config_scheme_enabled(cfg, s))
        return false;
    /* basic_require_tls: a password in clear only ever crosses TLS. */
    if (s == AG_SCHEME_BASIC && cfg->basic_require_tls && !c->tls)
        return false;
    switch (s) {
    case AG_SCHEME_BASIC:
        return cfg->basic_backend == AG_BACKEND_WINBIND ||
               (cfg->basic_backend == AG_BACKEND_LOCAL && srv->users);
    case AG_SCHEME_NTLM:
        return cfg->ntlm_backend == AG_BACKEND_WINBIND ||
               (cfg->ntlm_backend == AG_BACKEND_LOCAL && srv->users);
    case AG_SCHEME_NEGOTIATE:
        return srv->gss != NULL;
    default:
        return false;
    }
}

uint64_t auth_job_returned(struct conn *c, const struct ag_job *j, enum ag_scheme scheme,
                           int backend)
{
    struct ag_server *srv = c->srv;
    uint64_t now = uv_now(srv->loop);
    ag_auth_latency_record(&srv->auth, scheme, backend, now - j->queued_ms);
    c->job = NULL;
    conn_enter(c, CONN_READ_HEAD);
    return now;
}

enum ag_pool_id auth_backend_pool(enum ag_backend b)
{
    return b == AG_BACKEND_WINBIND ? AG_POOL_WINBIND : AG_POOL_LOCAL;
}

enum ag_auth_verdict auth_start_job(struct conn *c, enum ag_pool_id pool, struct ag_job *j)
{
    struct ag_server *srv = c->srv;
    if (ag_job_submit(&srv->workers, pool, j, c) != 0) {
        j->ops->release(j);
        free(j);
        return auth_refuse(c, "too many verifications in flight", AUTH_REPLY_503,
                           &srv->auth.limit_jobs);
    }
    c->job = j;
    conn_enter(c, CONN_AUTH_VERIFY);
    ag_session_verifying(c->session);
    conn_set_timer(c, c->cfg->handshake_timeout_ms);
    return AG_AUTH_PENDING;
}

void auth_proceed(struct conn *c)
{
    conn_set_timer(c, 0);
    exchange_proceed(c);
}

/* --- the decision per request ------------------------------------------------ */

void ag_auth_request_begin(struct conn *c)
{
    struct ag_session *s = c->session;
    /* Basic is per request: a later request without credentials (one an
     * auth=none rule admits included) is anonymous. NTLM and Negotiate
     * identify the connection and stay. */
    if (s && s->state == AG_AS_AUTHENTICATED && s->scheme == AG_SCHEME_BASIC)
        ag_session_reset(c->srv->sessions, s);
}

/* One line per request for "authgatectl trace": what came, in what state. */
static void trace_request(struct conn *c, const struct ag_session *s)
{
    const char *pv;
    size_t pvl;
    int np = ag_head_find(&c->head, "Proxy-Authorization", &pv, &pvl);
    size_t sl = 0;
    while (np && sl < pvl && pv[sl] != ' ')
        sl++;
    char sch[32];
    ag_escape_field(sch, sizeof sch, np ? pv : "none", np ? sl : 4);
    ag_info("conn=%llu event=trace step=request client=%s credentials=%s fields=%d "
            "state=%s identity=\"%s\"",
            (unsigned long long)c->id, c->peer, sch, np, ag_auth_state_name(s->state),
            ag_auth_user(c));
}

/* The connection's session row, created with its first request; NULL when
 * that failed (503 sent). */
static struct ag_session *request_row(struct conn *c, uint64_t now)
{
    struct ag_server *srv = c->srv;
    if (!c->session)
        c->session = ag_session_add(srv->sessions, c->id, c->peer, now);
    if (!c->session) {
        auth_refuse(c, "out of memory", AUTH_REPLY_503, NULL);
        return NULL;
    }
    c->session->last_use_ms = now;
    c->session->requests++;
    if (auth_traced(c))
        trace_request(c, c->session);
    return c->session;
}

/* An identity older than identity_max_age is forgotten before it is used. */
static void expire_identity(struct conn *c, struct ag_session *s, uint64_t now)
{
    const struct ag_config *cfg = c->cfg;
    if (s->state == AG_AS_AUTHENTICATED && cfg->identity_max_age_ms &&
        now - s->authenticated_ms > cfg->identity_max_age_ms) {
        c->srv->auth.identity_expired++;
        ag_session_reset(c->srv->sessions, s);
    }
}

/* A request without Proxy-Authorization. */
static enum ag_auth_verdict no_credentials(struct conn *c, const struct ag_session *s)
{
    if (s->state == AG_AS_AUTHENTICATED && s->scheme != AG_SCHEME_BASIC)
        return AG_AUTH_PROCEED; /* connection-based identity */
    /* Basic is per request: each request carries its own credentials. */
    return auth_refuse(c, "no_credentials", AUTH_REPLY_407, NULL);
}

/* A field that is not "scheme token": several credentials joined by a
 * comma cannot be answered with a challenge (which one failed?). */
static enum ag_auth_verdict unreadable_credentials(struct conn *c, const char *v, size_t vl)
{
    uint64_t *malformed = &c->srv->auth.fail_malformed;
    if (memchr(v, ',', vl))
        return auth_refuse(c, "several credentials in one field", AUTH_REPLY_400_CLOSE, malformed);
    return auth_refuse(c, "malformed_credentials", AUTH_REPLY_407, malformed);
}

/* Hands a parsed credential to its scheme's file (the uv_close pattern:
 * check, then one switch to the scheme's own code). */
static enum ag_auth_verdict dispatch(struct conn *c, const struct ag_credentials *cr)
{
    struct ag_server *srv = c->srv;
    const struct ag_config *cfg = c->cfg;
    if (cr->scheme == AG_SCHEME_BASIC && cfg->basic_require_tls && !c->tls) {
        ag_info("conn=%llu event=auth_refused scheme=Basic client=%s reason=basic_without_tls "
                "note=\"basic_require_tls: a password only over TLS\"",
                (unsigned long long)c->id, c->peer);
        return auth_refuse(c, "basic_without_tls", AUTH_REPLY_407, &srv->auth.basic_no_tls);
    }
    unsigned available = 0;
    for (enum ag_scheme s = AG_SCHEME_NONE + 1; s <= AG_SCHEME_BASIC; s++)
        if (auth_scheme_available(c, s))
            available |= 1u << s;
    switch (ag_credentials_route(cr, available)) {
    case AG_ROUTE_NTLM_IN_NEGOTIATE:
        return auth_ntlm(c, cr, true);
    case AG_ROUTE_EMPTY:
        return auth_refuse(c, "empty_token", AUTH_REPLY_407, &srv->auth.fail_malformed);
    case AG_ROUTE_BASIC:
        return auth_basic(c, cr);
    case AG_ROUTE_NTLM:
        return auth_ntlm(c, cr, false);
    case AG_ROUTE_NEGOTIATE:
        return auth_negotiate(c, cr);
    case AG_ROUTE_UNSUPPORTED:
    default:
        return auth_refuse(c, "unsupported_scheme", AUTH_REPLY_407, NULL);
    }
}

enum ag_auth_verdict ag_auth_request(struct conn *c)
{
    struct ag_server *srv = c->srv;
    if (c->cfg->n_schemes == 0)
        return AG_AUTH_PROCEED;
    uint64_t now = uv_now(srv->loop);
    struct ag_session *s = request_row(c, now);
    if (!s)
        return AG_AUTH_REPLIED;
    const char *v = NULL;
    size_t vl = 0;
    int n = ag_head_find(&c->head, "Proxy-Authorization", &v, &vl);
    if (n > 1) /* Several credentials: which one would we believe? None. */
        return auth_refuse(c, "several Proxy-Authorization fields", AUTH_REPLY_400_CLOSE,
                           &srv->auth.fail_malformed);
    expire_identity(c, s, now);
    if (n == 0)
        return no_credentials(c, s);
    struct ag_credentials cr;
    if (ag_credentials_parse(v, vl, &cr) != 0)
        return unreadable_credentials(c, v, vl);
    /* A new credential on an authenticated connection: forget the old
     * identity first, then verify afresh. */
    if (s->state == AG_AS_AUTHENTICATED) {
        srv->auth.identity_reset++;
        ag_session_reset(srv->sessions, s);
    }
    return dispatch(c, &cr);
}

/* --- connection end and deadlines -------------------------------------------- */

void ag_auth_close(struct conn *c)
{
    if (c->job) {
        ag_job_detach(c->job);
        c->job = NULL;
    }
    if (c->session) {
        ag_session_remove(c->srv->sessions, c->session);
        c->session = NULL;
    }
}

uint64_t ag_auth_wait_timeout(const struct conn *c)
{
    uint64_t idle = c->cfg->idle_timeout_ms;
    const struct ag_session *s = c->session;
    if (s && s->in_handshake) {
        uint64_t spent = uv_now(c->srv->loop) - s->handshake_ms;
        uint64_t left =
            spent < c->cfg->handshake_timeout_ms ? c->cfg->handshake_timeout_ms - spent : 1;
        return left < idle ? left : idle;
    }
    return idle;
}

void ag_auth_timeout(struct conn *c)
{
    struct ag_server *srv = c->srv;
    srv->auth.fail_timeout++;
    ag_err("conn=%llu event=auth_backend_timeout client=%s job=%s", (unsigned long long)c->id,
           c->peer, c->job ? c->job->ops->name : "-");
    if (c->job) {
        ag_job_detach(c->job);
        c->job = NULL;
    }
    conn_enter(c, CONN_READ_HEAD);
    auth_refuse(c, "authentication backend timeout", AUTH_REPLY_503, &srv->auth.fail_backend);
}
