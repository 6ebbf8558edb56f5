/* auth_ntlm.c - the NTLM scheme (MS-NLMP over HTTP, MS-NTHT): two legs on one
 * connection. NEGOTIATE -> CHALLENGE is answered on the loop; AUTHENTICATE
 * is checked on the loop (target name, MIC presence, NTLMv1 policy) and its
 * response verified by the local user file or winbindd on a worker pool.
 * Raw NTLMSSP under "Negotiate" is answered in kind. Loop thread, except
 * ntlm_run (pool thread). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "authgate/err.h"
#include "auth/ntlm.h"
#include "auth/verify_local.h"
#include "auth/verify_winbind.h"
#include "auth_int.h"
#include "session/table.h"
#include "session/throttle.h"
#include "tls.h"

/* The names our CHALLENGE carries: NetBIOS domain from config, the computer
 * from proxy_host (or the host name), as Windows expects them. */
struct ntlm_names {
    char nb_computer[16];
    char dns_computer[256];
};

static void ntlm_names(const struct ag_config *cfg, struct ntlm_names *n)
{
    char host[256];
    ag_config_proxy_host(cfg, host, sizeof host);
    snprintf(n->dns_computer, sizeof n->dns_computer, "%s", host);
    size_t i = 0;
    for (; host[i] && host[i] != '.' && i < 15; i++)
        n->nb_computer[i] = (host[i] >= 'a' && host[i] <= 'z') ? (char)(host[i] - 32) : host[i];
    n->nb_computer[i] = '\0';
}

static void ntlm_server(const struct ag_server *srv, const struct ag_config *cfg,
                        struct ntlm_names *names, struct ag_ntlm_server *out)
{
    ntlm_names(cfg, names);
    memset(out, 0, sizeof *out);
    out->nb_domain = cfg->ntlm_domain;
    out->nb_computer = names->nb_computer;
    out->dns_domain = cfg->ntlm_dns_domain ? cfg->ntlm_dns_domain : "";
    if (srv->wb_nb_domain[0]) {
        out->nb_domain = srv->wb_nb_domain;
        if (srv->wb_nb_name[0])
            out->nb_computer = srv->wb_nb_name;
        if (srv->wb_dns_domain[0])
            out->dns_domain = srv->wb_dns_domain;
    }
    out->dns_computer = names->dns_computer;
    out->require_mic = cfg->ntlm_require_mic;
    out->allow_machine_accounts = cfg->ntlm_allow_machine_accounts;
    /* Legacy responses only where winbind verifies them: the local file has
     * no NTLMv1 verifier. */
    out->allow_ntlmv1 = cfg->ntlm_allow_v1 && cfg->ntlm_backend == AG_BACKEND_WINBIND;
    out->spns = srv->ntlm_spns.n ? srv->ntlm_spns.list : NULL; /* see load_ntlm_spns */
}

static uint64_t filetime_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec + 11644473600ULL) * 10000000ULL + (uint64_t)ts.tv_nsec / 100;
}

struct ntlm_job {
    struct ag_job base;
    enum ag_backend backend;
    struct ag_users *users;
    struct ag_ntlm_verify *v; /* owned */
    int rc;
    struct ag_identity id;
    const char *reason;
    char wb_reason[64];
    enum ag_refusal refusal;
};

static void ntlm_run(struct ag_job *j)
{
    struct ntlm_job *n = (struct ntlm_job *)j;
    if (n->backend == AG_BACKEND_LOCAL) {
        n->rc = ag_ntlm_verify_local_blocking(n->v, n->users->uf, &n->id, &n->reason);
        n->refusal = n->v->refusal;
        return;
    }
    const struct ag_ntlm_auth *a = &n->v->a;
    struct ag_wb_result r;
    /* User and domain exactly as the client sent them: Samba tries the
     * domain as sent, upper-cased, then empty; normalising breaks NTLMv2. */
    /* The LM field only for NTLMv1 (ntlm_allow_v1): beside NTLMv2 it lets
     * Samba fall back to LMv2, which binds no AV pair; an NTLM2-session LM
     * field holds the client challenge, not a response. */
    bool lm = a->v1 && !n->v->ntlm2_session;
    n->rc = ag_wb_response_blocking(a->domain, a->user, a->workstation, n->v->wb_challenge, a->nt.p,
                                    a->nt.len, lm ? a->lm.p : NULL, lm ? a->lm.len : 0,
                                    n->v->allow_machine_accounts, &r);
    snprintf(n->wb_reason, sizeof n->wb_reason, "%s", r.reason);
    n->reason = n->wb_reason;
    n->refusal = r.refusal;
    if (n->rc == 0 && !a->v1)
        n->rc = ag_ntlm_verify_mic(n->v, r.session_key, &n->reason);
    ag_wipe(r.session_key, sizeof r.session_key);
    if (n->rc == 0)
        ag_identity_move(&n->id, &r.id);
    else
        ag_identity_clear(&r.id);
}

static void ntlm_release(struct ag_job *j)
{
    struct ntlm_job *n = (struct ntlm_job *)j;
    ag_ntlm_verify_free(n->v);
    ag_identity_clear(&n->id);
    auth_users_unref(n->users);
}

static void ntlm_done(struct ag_job *j, void *owner)
{
    struct ntlm_job *n = (struct ntlm_job *)j;
    struct conn *c = owner;
    struct ag_server *srv = c->srv;
    uint64_t now = auth_job_returned(c, j, AG_SCHEME_NTLM, (int)n->backend);
    char u[AG_USER_MAX * 2], d[AG_USER_MAX * 2], w[AG_USER_MAX * 2];
    const struct ag_ntlm_auth *a = &n->v->a;
    ag_escape_field(u, sizeof u, a->user, strlen(a->user));
    ag_escape_field(d, sizeof d, a->domain, strlen(a->domain));
    ag_escape_field(w, sizeof w, a->workstation, strlen(a->workstation));
    const char *via = c->session->ntlm_in_negotiate ? "Negotiate" : "NTLM";
    if (n->rc == 0) {
        srv->auth.succeeded[AG_SCHEME_NTLM]++;
        ag_throttle_success(srv->throttle, a->user, auth_addr_key(c), now);
        ag_session_authenticate(srv->sessions, c->session, AG_SCHEME_NTLM, &n->id, now);
        static const uint8_t unbound[16];
        bool bound = a->v2.channel_bindings && memcmp(a->v2.channel_bindings, unbound, 16) != 0;
        ag_info("conn=%llu event=auth_ok scheme=NTLM via=%s client=%s user=\"%s\" domain=\"%s\" "
                "workstation=\"%s\" backend=%s mic=%s channel_binding=%s ms=%llu",
                (unsigned long long)c->id, via, c->peer, u, d, w,
                n->backend == AG_BACKEND_WINBIND ? "winbind" : "local",
                a->mic_present ? "yes" : "no",
                !c->tls ? "-"
                : bound ? "bound"
                        : "unbound",
                (unsigned long long)(now - j->queued_ms));
        auth_proceed(c);
        return;
    }
    char via_f[32], who[AG_USER_MAX * 12 + 64];
    snprintf(via_f, sizeof via_f, "via=%s ", via);
    snprintf(who, sizeof who, "user=\"%s\" domain=\"%s\" workstation=\"%s\"", u, d, w);
    auth_verify_failed(c, AG_SCHEME_NTLM, n->rc, n->refusal, a->user, n->reason ? n->reason : "?",
                       via_f, who, "ntlm_failed");
}

static const struct ag_job_ops ntlm_ops = {"ntlm", ntlm_run, ntlm_done, ntlm_release};

/* A failed NTLM leg: one log line, then the handshake is dropped, counter
 * bumped and a fresh 407 offered. */
static enum ag_auth_verdict ntlm_refuse(struct conn *c, const char *event, const char *reason,
                                        bool close, uint64_t *counter)
{
    ag_info("conn=%llu event=%s scheme=NTLM client=%s reason=\"%s\"", (unsigned long long)c->id,
            event, c->peer, reason);
    return auth_refuse(c, event, close ? AUTH_REPLY_407_CLOSE : AUTH_REPLY_407, counter);
}

/* Leg 1: NEGOTIATE -> CHALLENGE (a 407 carrying it). A new NEGOTIATE
 * replaces any outstanding challenge. */
static enum ag_auth_verdict ntlm_negotiate_leg(struct conn *c, const uint8_t *msg, size_t len,
                                               bool in_negotiate)
{
    struct ag_server *srv = c->srv;
    const struct ag_config *cfg = c->cfg;
    struct ag_session *s = c->session;
    if (ag_session_handshake_begin(srv->sessions, s, AG_SCHEME_NTLM, cfg->max_handshakes,
                                   cfg->max_handshakes_per_addr, uv_now(srv->loop)) != 0)
        return auth_refuse(c, "too many authentications in progress", AUTH_REPLY_503,
                           &srv->auth.limit_handshakes);
    if (s->rounds > AG_NTLM_MAX_ROUNDS)
        return ntlm_refuse(c, "auth_too_many_rounds", "too many NTLM legs", true,
                           &srv->auth.limit_rounds);
    if (s->rounds == 1)
        srv->auth.started[AG_SCHEME_NTLM]++;
    struct ntlm_names names;
    struct ag_ntlm_server ns;
    ntlm_server(srv, cfg, &names, &ns);
    struct ag_ntlm_state *st;
    uint8_t chal[1024];
    size_t chlen;
    if (ag_ntlm_challenge(msg, len, &ns, filetime_now(), &st, chal, sizeof chal, &chlen) != 0)
        return ntlm_refuse(c, "auth_malformed", "malformed NEGOTIATE", false,
                           &srv->auth.fail_malformed);
    AUTH_TRACE(c,
               "conn=%llu event=trace step=ntlm_negotiate client=%s via=%s flags=0x%08x "
               "challenge_flags=0x%08x round=%u",
               (unsigned long long)c->id, c->peer, in_negotiate ? "Negotiate" : "NTLM",
               ag_ntlm_negotiate_flags(msg, len), st->chal_flags, s->rounds);
    ag_session_ntlm_challenged(s, st, ag_ntlm_state_free, in_negotiate);
    char b64[2048];
    ag_b64_encode(chal, chlen, b64);
    /* NTLM binds to the connection: without keep-alive it cannot complete,
     * but the CHALLENGE is still sent (MS-NTHT), then the connection ends. */
    if (!c->rq.keepalive)
        ag_debug("conn=%llu event=ntlm_without_keepalive client=%s", (unsigned long long)c->id,
                 c->peer);
    auth_send_continue(c, "ntlm_challenge", in_negotiate ? "Negotiate" : "NTLM", b64);
    if (!c->rq.keepalive)
        ag_session_reset(srv->sessions, s);
    return AG_AUTH_REPLIED;
}

static void trace_authenticate(struct conn *c, const struct ag_ntlm_verify *v)
{
    char tu[AG_USER_MAX * 4], td[AG_USER_MAX * 4], tw[AG_USER_MAX * 4];
    ag_info("conn=%llu event=trace step=ntlm_authenticate client=%s user=\"%s\" "
            "domain=\"%s\" workstation=\"%s\" flags=0x%08x nt_len=%zu mic=%s",
            (unsigned long long)c->id, c->peer,
            ag_escape_field(tu, sizeof tu, v->a.user, strlen(v->a.user)),
            ag_escape_field(td, sizeof td, v->a.domain, strlen(v->a.domain)),
            ag_escape_field(tw, sizeof tw, v->a.workstation, strlen(v->a.workstation)), v->a.flags,
            v->a.nt.len, v->a.mic_present ? "yes" : "no");
}

/* The AUTHENTICATE checked on the loop goes to its backend: throttle first,
 * then a job. Takes v. */
static enum ag_auth_verdict ntlm_submit(struct conn *c, struct ag_ntlm_verify *v)
{
    struct ag_server *srv = c->srv;
    uint64_t now = uv_now(srv->loop);
    if (ag_throttle_check(srv->throttle, v->a.user, auth_addr_key(c), now) != 0 ||
        ag_throttle_check_backend(srv->throttle, v->a.user, auth_addr_key(c), now) != 0) {
        ag_ntlm_verify_free(v);
        return ntlm_refuse(c, "auth_throttled", "too many failures", false,
                           &srv->auth.fail_throttled);
    }
    struct ntlm_job *n = calloc(1, sizeof *n);
    if (!n) {
        ag_ntlm_verify_free(v);
        return auth_refuse(c, "out of memory", AUTH_REPLY_503, NULL);
    }
    n->base.ops = &ntlm_ops;
    n->backend = c->cfg->ntlm_backend;
    n->users = auth_users_ref(srv->users);
    n->v = v;
    return auth_start_job(c, auth_backend_pool(n->backend), &n->base);
}

/* Leg 2: AUTHENTICATE against this connection's outstanding challenge,
 * which it consumes whatever the outcome. msg is wiped here: its response
 * could be cracked offline. */
static enum ag_auth_verdict ntlm_authenticate_leg(struct conn *c, uint8_t *msg, size_t len,
                                                  bool in_negotiate)
{
    struct ag_server *srv = c->srv;
    struct ag_session *s = c->session;
    uint64_t *malformed = &srv->auth.fail_malformed;
    if (s->state == AG_AS_NTLM_CHALLENGED && s->ntlm_in_negotiate != in_negotiate) {
        ag_wipe(msg, len);
        return ntlm_refuse(c, "auth_unexpected", "scheme switched between NTLM legs", false,
                           malformed);
    }
    if (s->state != AG_AS_NTLM_CHALLENGED || !s->mech) {
        ag_wipe(msg, len);
        return ntlm_refuse(c, "auth_unexpected",
                           "AUTHENTICATE without a challenge on this connection", false, malformed);
    }
    s->rounds++;
    struct ag_ntlm_state *st = ag_session_take_mech(s);
    struct ntlm_names names;
    struct ag_ntlm_server ns;
    ntlm_server(srv, c->cfg, &names, &ns);
    uint8_t cb[16];
    if (c->tls && conn_tls_cb_ntlm(c, cb) == 0) {
        ns.cb = cb;
        ns.cb_check = c->cfg->channel_binding != AG_CB_OFF;
        ns.cb_required = c->cfg->channel_binding == AG_CB_REQUIRED;
    }
    struct ag_ntlm_verify *v = NULL;
    const char *reason = "";
    int rc = ag_ntlm_check(msg, len, st, &ns, &v, &reason);
    ag_wipe(msg, len);
    if (rc != 0) {
        srv->auth.failed[AG_SCHEME_NTLM]++;
        if (reason == ag_ntlm_cb_mismatch || reason == ag_ntlm_cb_missing)
            return auth_channel_binding_refused(c, in_negotiate ? "Negotiate(NTLM)" : "NTLM",
                                                reason == ag_ntlm_cb_mismatch);
        return ntlm_refuse(c, "auth_refused", reason, false,
                           rc == AG_EUNSUPP ? &srv->auth.fail_ntlmv1 : &srv->auth.fail_policy);
    }
    if (auth_traced(c))
        trace_authenticate(c, v);
    return ntlm_submit(c, v);
}

enum ag_auth_verdict auth_ntlm(struct conn *c, const struct ag_credentials *cr, bool in_negotiate)
{
    uint64_t *malformed = &c->srv->auth.fail_malformed;
    uint8_t msg[AG_NTLM_MAX_DECODED];
    size_t len;
    int rc = ag_b64_decode(cr->token, cr->token_len, msg, sizeof msg, &len);
    if (rc != 0) {
        ag_wipe(msg, sizeof msg); /* a partly decoded AUTHENTICATE */
        return ntlm_refuse(c, "auth_malformed",
                           rc == AG_ELIMIT ? "token over the NTLM size limit" : "invalid base64",
                           rc == AG_ELIMIT, malformed);
    }
    switch (ag_ntlm_message_type(msg, len)) {
    case NTLMSSP_NEGOTIATE_MSG:
        return ntlm_negotiate_leg(c, msg, len, in_negotiate);
    case NTLMSSP_AUTHENTICATE_MSG:
        return ntlm_authenticate_leg(c, msg, len, in_negotiate);
    default:
        return ntlm_refuse(c, "auth_malformed", "not an NTLMSSP NEGOTIATE or AUTHENTICATE", false,
                           malformed);
    }
}
