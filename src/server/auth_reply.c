/* auth_reply.c - what the auth layer answers: 407 challenges, 403/503, the
 * one failure epilogue (auth_refuse), and the identity strings the access
 * log and the identity header show. Loop thread only. */
#include <stdio.h>
#include <string.h>

#include "authgate/err.h"
#include "authgate/limits.h"
#include "auth/ntlm.h"
#include "auth_int.h"
#include "session/table.h"
#include "session/throttle.h"

bool auth_traced(const struct conn *c)
{
    const struct ag_server *srv = c->srv;
    return srv->trace_addr[0] && srv->trace_until_ms > uv_now(srv->loop) &&
           strcmp(srv->trace_addr, c->peer) == 0;
}

/* Sends 407. With a continuation (scheme name and base64 token), only that
 * scheme and its token (a handshake continues); otherwise the full set in
 * configured order. */
static void send_407(struct conn *c, const char *why, const char *cont_scheme,
                     const char *cont_token)
{
    const struct ag_config *cfg = c->cfg;
    char extra[1024 + 2 * AG_NTLM_MAX_DECODED];
    size_t o = 0;
    extra[0] = '\0';
    if (cont_scheme)
        snprintf(extra, sizeof extra, "Proxy-Authenticate: %s %s\r\n", cont_scheme, cont_token);
    for (size_t i = 0; i < cfg->n_schemes && !cont_scheme; i++) {
        enum ag_scheme s = cfg->schemes[i];
        if (!auth_scheme_available(c, s))
            continue;
        int n;
        if (s == AG_SCHEME_BASIC)
            n = snprintf(extra + o, sizeof extra - o,
                         "Proxy-Authenticate: Basic realm=\"%s\", charset=\"UTF-8\"\r\n",
                         cfg->basic_realm);
        else
            n = snprintf(extra + o, sizeof extra - o, "Proxy-Authenticate: %s\r\n",
                         ag_scheme_name(s));
        if (n < 0 || (size_t)n >= sizeof extra - o)
            break;
        o += (size_t)n;
    }
    c->srv->auth.challenges++;
    /* A client that waits for 100 Continue will not send its body after a
     * final status: draining would read its next request as body. */
    if (c->rq.req_has_body && ag_head_has_token(&c->head, "Expect", "100-continue"))
        c->rq.close_after = true;
    /* Tunnel bytes may already follow a CONNECT head: never parse them. */
    if (c->rq.is_connect && c->inbuf.len)
        c->rq.close_after = true;
    if (auth_traced(c))
        ag_info("conn=%llu req=%llu event=trace step=challenge client=%s reason=%s continue=%s",
                (unsigned long long)c->id, (unsigned long long)c->rq.id, c->peer, why,
                cont_scheme ? cont_scheme : "-");
    else
        ag_debug("conn=%llu req=%llu event=auth_challenge client=%s reason=%s",
                 (unsigned long long)c->id, (unsigned long long)c->rq.id, c->peer, why);
    exchange_reply(c, 407, extra, "authentication required");
}

void auth_send_continue(struct conn *c, const char *why, const char *scheme, const char *token)
{
    send_407(c, why, scheme, token);
}

enum ag_auth_verdict auth_channel_binding_refused(struct conn *c, const char *scheme, bool mismatch)
{
    struct ag_auth_stats *a = &c->srv->auth;
    ag_info("conn=%llu event=channel_binding_refused scheme=%s client=%s reason=%s",
            (unsigned long long)c->id, scheme, c->peer,
            mismatch ? "mismatch note=\"token bound to another TLS channel\""
                     : "missing note=\"channel_binding required, token not bound\"");
    return auth_refuse(c, mismatch ? "channel_binding_mismatch" : "channel_binding_missing",
                       AUTH_REPLY_407, mismatch ? &a->cb_mismatch : &a->cb_missing);
}

enum ag_auth_verdict auth_refuse(struct conn *c, const char *reason, enum auth_reply reply,
                                 uint64_t *counter)
{
    if (c->session)
        ag_session_reset(c->srv->sessions, c->session);
    if (counter)
        (*counter)++;
    switch (reply) {
    case AUTH_REPLY_407_CLOSE:
        c->rq.close_after = true;
        /* fall through */
    case AUTH_REPLY_407:
        send_407(c, reason, NULL, NULL);
        break;
    case AUTH_REPLY_400_CLOSE:
        c->rq.close_after = true;
        exchange_reply(c, 400, NULL, reason);
        break;
    case AUTH_REPLY_403:
        exchange_reply(c, 403, NULL, reason);
        break;
    case AUTH_REPLY_503:
        c->rq.close_after = true;
        exchange_reply(c, 503, AG_RETRY_AFTER_FIELD, reason);
        break;
    }
    return AG_AUTH_REPLIED;
}

const char *ag_auth_user(const struct conn *c)
{
    /* One per thread: every event loop (workers N) logs users. */
    static _Thread_local char buf[4 * AG_USER_MAX + 8];
    const struct ag_session *s = c->session;
    if (!s || s->state != AG_AS_AUTHENTICATED)
        return "-";
    char u[AG_USER_MAX * 2], d[AG_USER_MAX * 2];
    ag_escape_field(u, sizeof u, s->id.user, strlen(s->id.user));
    ag_escape_field(d, sizeof d, s->id.domain, strlen(s->id.domain));
    /* Squid's log escapes spaces in the user column too. */
    if (d[0])
        snprintf(buf, sizeof buf, "%s\\%s", d, u);
    else
        snprintf(buf, sizeof buf, "%s", u);
    for (char *p = buf; *p; p++)
        if (*p == ' ')
            *p = '+';
    return buf;
}

const char *ag_auth_identity_header(const struct conn *c)
{
    static _Thread_local char buf[AG_USER_MAX * 2 + 300]; /* one per loop thread */
    const struct ag_session *s = c->session;
    if (!c->cfg->identity_header || !s || s->state != AG_AS_AUTHENTICATED)
        return NULL;
    /* Names came through strict parsers (no CTLs), so they are safe in a field. */
    if (s->id.domain[0])
        snprintf(buf, sizeof buf, "%s: %s\\%s\r\n", c->cfg->identity_header, s->id.domain,
                 s->id.user);
    else
        snprintf(buf, sizeof buf, "%s: %s\r\n", c->cfg->identity_header, s->id.user);
    return buf;
}

/* The end of a failed Basic or NTLM verification: 503 when the backend
 * failed (fail closed: never access), otherwise the failure counts against
 * (user, address), the address and, for a wrong password, the user's
 * ceiling, and a fresh 407 is offered. pre and who are the scheme's own log
 * fields (before and after client=). */
void auth_verify_failed(struct conn *c, enum ag_scheme scheme, int rc, enum ag_refusal refusal,
                        const char *user, const char *reason, const char *pre, const char *who,
                        const char *why)
{
    struct ag_server *srv = c->srv;
    srv->auth.failed[scheme]++;
    if (rc == AG_EBACKEND) {
        ag_err("conn=%llu req=%llu event=auth_backend_error scheme=%s %sclient=%s %s error=\"%s\"",
               (unsigned long long)c->id, (unsigned long long)c->rq.id, ag_scheme_name(scheme), pre,
               c->peer, who, reason);
        auth_refuse(c, "authentication backend unavailable", AUTH_REPLY_503,
                    &srv->auth.fail_backend);
        return;
    }
    /* Only a checked password counts towards the user's ceiling (what a
     * domain controller's lockout counts): not unknown users, malformed
     * names or MIC mismatches. */
    ag_throttle_fail(srv->throttle, user, auth_addr_key(c), refusal == AG_REFUSED_PASSWORD,
                     uv_now(srv->loop));
    ag_info("conn=%llu req=%llu event=auth_failed scheme=%s %sclient=%s %s reason=\"%s\"",
            (unsigned long long)c->id, (unsigned long long)c->rq.id, ag_scheme_name(scheme), pre,
            c->peer, who, reason);
    /* winbind tells an unknown user apart; the local file never does */
    auth_refuse(c, why, AUTH_REPLY_407,
                refusal == AG_REFUSED_UNKNOWN_USER ? &srv->auth.fail_unknown_user
                                                   : &srv->auth.fail_bad_password);
}
