/* auth_negotiate.c - the Negotiate scheme (RFC 4559) with Kerberos: each
 * token goes through one GSS accept step on the Kerberos pool (plus, when
 * the rules name groups, the user's SIDs from winbindd on the winbind pool);
 * a context that needs another round waits in the session row. Raw NTLMSSP
 * under "Negotiate" never reaches here (auth.c sends it to auth_ntlm.c).
 * Loop thread, except neg_run and neg_groups (pool threads). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authgate/err.h"
#include "auth/negotiate.h"
#include "auth/verify_winbind.h"
#include "auth_int.h"
#include "rules/rules.h"
#include "session/table.h"
#include "tls.h"

struct neg_job {
    struct ag_job base;
    bool want_groups;            /* rules name groups and winbind can tell them */
    struct ag_config *cfg;       /* reference: realm_domain, read on the pool thread */
    struct ag_gss_acceptor *acc; /* reference */
    struct ag_gss_ctx *ctx;      /* moved in from the session row, moved back on continue */
    uint8_t *tok;                /* owned */
    size_t toklen;
    struct ag_gss_step step;
    /* channel bindings of a tls listener's connection (channel_binding not
     * off): the application data given to GSS, cblen 0 for none */
    uint8_t cb[AG_TLS_CB_APP_MAX];
    size_t cblen;
    bool cb_required;
    char *sids;              /* the user's SIDs from winbind, or NULL (owned) */
    int groups_rc;           /* AG_EBACKEND: the lookup failed (groups unknown) */
    const char *groups_note; /* why the user has no winbind groups, or NULL */
};

/* A Kerberos identity carries no SIDs here: winbind tells the user's groups,
 * but only for a realm that maps to a winbind domain (realm_domain, or
 * winbind's own DNS name). The account part alone would name another
 * person: alice@OTHER.REALM is not CORP\alice. Pool thread. */
static void neg_groups(struct neg_job *n)
{
    char acct[AG_USER_MAX + 1], dom[256], name[AG_USER_MAX + 300];
    const char *p = n->step.principal, *at = strrchr(p, '@');
    size_t l = at ? (size_t)(at - p) : 0;
    if (!at || l == 0 || l >= sizeof acct || strchr(p, '\\')) {
        n->groups_note = "unusable principal";
        return;
    }
    memcpy(acct, p, l);
    acct[l] = '\0';
    uint64_t now = ag_now_ms();
    const char *mapped = ag_config_realm_domain(n->cfg, at + 1);
    int rc = 0;
    if (mapped)
        snprintf(dom, sizeof dom, "%s", mapped);
    else
        rc = ag_wb_realm_domain_cached_blocking(at + 1, now, dom, sizeof dom);
    if (rc == AG_ENOTFOUND) {
        n->groups_note = "realm maps to no winbind domain";
        return;
    }
    if (rc == 0) {
        snprintf(name, sizeof name, "%s\\%s", dom, acct);
        rc = ag_wb_user_sids_cached_blocking(name, now, &n->sids);
    }
    if (rc == AG_ENOTFOUND)
        n->groups_note = "no such account in the winbind domain";
    else if (rc != 0)
        n->groups_rc = AG_EBACKEND;
}

static void neg_run(struct ag_job *j)
{
    struct neg_job *n = (struct neg_job *)j;
    if (j->stage == 0) {
        ag_gss_accept_blocking(n->acc, &n->ctx, n->tok, n->toklen, n->cblen ? n->cb : NULL,
                               n->cblen, &n->step);
        /* The group lookup waits on winbindd: on its pool, never holding
         * a Kerberos thread while winbindd stalls. */
        if (n->step.status == 0 && n->want_groups)
            ag_job_hop(j, AG_POOL_WINBIND);
        return;
    }
    if (n->step.status == 0 && n->want_groups)
        neg_groups(n);
}

static void neg_release(struct ag_job *j)
{
    struct neg_job *n = (struct neg_job *)j;
    ag_gss_ctx_free(n->ctx);
    if (n->tok) {
        ag_wipe(n->tok, n->toklen);
        free(n->tok);
    }
    ag_gss_step_clear(&n->step);
    free(n->sids);
    ag_gss_acceptor_unref(n->acc);
    ag_config_unref(n->cfg);
}

/* prefix + base64(tok) + suffix, NUL-terminated (malloc'd), or NULL. */
static char *b64_wrap(const char *prefix, const uint8_t *tok, size_t len, const char *suffix)
{
    size_t pl = strlen(prefix), bl = ag_b64_encoded_len(len), sl = strlen(suffix);
    char *h = malloc(pl + bl + sl + 1);
    if (!h)
        return NULL;
    memcpy(h, prefix, pl);
    ag_b64_encode(tok, len, h + pl);
    memcpy(h + pl + bl, suffix, sl + 1);
    return h;
}

/* CONTINUE_NEEDED: the context waits in the row for the next round. */
static void neg_continue(struct conn *c, struct neg_job *n)
{
    struct ag_gss_step *st = &n->step;
    ag_session_gss_continue(c->session, n->ctx, ag_gss_ctx_free);
    n->ctx = NULL;
    char *h = st->outlen ? b64_wrap("", st->out, st->outlen, "") : NULL;
    auth_send_continue(c, "gss_continue", "Negotiate", h ? h : "");
    free(h);
}

/* The context is established: map the principal, bind the identity. */
static void neg_complete(struct conn *c, struct neg_job *n, uint64_t now)
{
    struct ag_server *srv = c->srv;
    struct ag_gss_step *st = &n->step;
    struct ag_identity id;
    char p[1100];
    ag_escape_field(p, sizeof p, st->principal, strlen(st->principal));
    int rc = ag_gss_map_name(st->principal, (enum ag_gss_name_format)c->cfg->negotiate_name_format,
                             c->cfg->negotiate_realms, &id);
    if (rc != 0) {
        srv->auth.failed[AG_SCHEME_NEGOTIATE]++;
        ag_info("conn=%llu event=auth_refused scheme=Negotiate client=%s principal=\"%s\" "
                "reason=\"%s\"",
                (unsigned long long)c->id, c->peer, p,
                rc == AG_EUNSUPP ? "realm not allowed" : "unusable principal name");
        /* A valid identity the policy refuses gets 403: a 407 would make
         * the browser prompt for a password that cannot help. */
        auth_refuse(c, "this account may not use the proxy", AUTH_REPLY_403,
                    &srv->auth.fail_policy);
        return;
    }
    srv->auth.succeeded[AG_SCHEME_NEGOTIATE]++;
    id.sids = n->sids;
    n->sids = NULL;
    /* Refused later, and logged there, only by a rule that needs them.
     * Not looked up (the rules named no group when this began) is not
     * "none" either: a reload that adds group rules must not find this
     * connection's user in no group. */
    id.groups_unknown = n->groups_rc == AG_EBACKEND || !n->want_groups;
    if (n->groups_note)
        ag_debug("conn=%llu event=groups_none principal=\"%s\" reason=\"%s\"",
                 (unsigned long long)c->id, p, n->groups_note);
    ag_session_authenticate(srv->sessions, c->session, AG_SCHEME_NEGOTIATE, &id, now);
    ag_info("conn=%llu event=auth_ok scheme=Negotiate client=%s principal=\"%s\" acceptor=%s "
            "channel_binding=%s ms=%llu",
            (unsigned long long)c->id, c->peer, p, ag_gss_acceptor_name(n->acc),
            !n->cblen           ? "-"
            : st->channel_bound ? "bound"
                                : "unbound",
            (unsigned long long)(now - n->base.queued_ms));
    if (st->outlen) {
        free(c->rq.resp_extra);
        c->rq.resp_extra =
            b64_wrap("Proxy-Authentication-Info: Negotiate ", st->out, st->outlen, "\r\n");
    }
    auth_proceed(c);
}

/* The counter of a failed step, by its class (from the Kerberos minor code). */
static uint64_t *neg_fail_counter(struct ag_auth_stats *a, enum ag_gss_fail f)
{
    switch (f) {
    case AG_GSS_FAIL_REPLAY:
        return &a->fail_replay;
    case AG_GSS_FAIL_SKEW:
        return &a->fail_skew;
    default:
        return &a->fail_policy;
    }
}

static void neg_done(struct ag_job *j, void *owner)
{
    struct neg_job *n = (struct neg_job *)j;
    struct conn *c = owner;
    struct ag_server *srv = c->srv;
    uint64_t now = auth_job_returned(c, j, AG_SCHEME_NEGOTIATE, AG_BACKEND_NONE);
    switch (n->step.status) {
    case AG_GSS_CONTINUE:
        neg_continue(c, n);
        return;
    case AG_GSS_DONE:
        if (n->cb_required && !n->step.channel_bound) {
            srv->auth.failed[AG_SCHEME_NEGOTIATE]++;
            auth_channel_binding_refused(c, "Negotiate", false);
            return;
        }
        neg_complete(c, n, now);
        return;
    case AG_GSS_FAILED:
        break;
    }
    if (n->step.fail == AG_GSS_FAIL_BINDINGS) {
        srv->auth.failed[AG_SCHEME_NEGOTIATE]++;
        auth_channel_binding_refused(c, "Negotiate", true);
        return;
    }
    srv->auth.failed[AG_SCHEME_NEGOTIATE]++;
    ag_info("conn=%llu event=auth_failed scheme=Negotiate client=%s acceptor=%s error=\"%s\"",
            (unsigned long long)c->id, c->peer, ag_gss_acceptor_name(n->acc), n->step.error);
    auth_refuse(c, "gss_failed", AUTH_REPLY_407, neg_fail_counter(&srv->auth, n->step.fail));
}

static const struct ag_job_ops neg_ops = {"negotiate", neg_run, neg_done, neg_release};

/* A decoded Negotiate token (a Kerberos AP-REQ, or NTLMSSP inside SPNEGO)
 * is wiped before it goes back to the allocator. */
static void tok_free(uint8_t *tok, size_t cap)
{
    if (tok) {
        ag_wipe(tok, cap);
        free(tok);
    }
}

enum ag_auth_verdict auth_negotiate(struct conn *c, const struct ag_credentials *cr)
{
    struct ag_server *srv = c->srv;
    const struct ag_config *cfg = c->cfg;
    struct ag_session *s = c->session;
    size_t cap, len = 0;
    uint8_t *tok = ag_gss_token_decode(cr->token, cr->token_len, &cap, &len);
    if (!tok) {
        ag_info("conn=%llu event=auth_malformed scheme=Negotiate client=%s",
                (unsigned long long)c->id, c->peer);
        return auth_refuse(c, "gss_malformed", AUTH_REPLY_407, &srv->auth.fail_malformed);
    }
    bool continuing = s->state == AG_AS_GSS_CONTINUE && s->mech;
    if (!continuing)
        ag_session_reset(srv->sessions, s);
    enum ag_auth_verdict v = AG_AUTH_REPLIED;
    if (ag_session_handshake_begin(srv->sessions, s, AG_SCHEME_NEGOTIATE, cfg->max_handshakes,
                                   cfg->max_handshakes_per_addr, uv_now(srv->loop)) != 0) {
        v = auth_refuse(c, "too many authentications in progress", AUTH_REPLY_503,
                        &srv->auth.limit_handshakes);
        goto fail;
    }
    if (s->rounds > AG_NEGOTIATE_MAX_ROUNDS) {
        v = auth_refuse(c, "too_many_rounds", AUTH_REPLY_407_CLOSE, &srv->auth.limit_rounds);
        goto fail;
    }
    if (s->rounds == 1)
        srv->auth.started[AG_SCHEME_NEGOTIATE]++;
    struct neg_job *n = calloc(1, sizeof *n);
    if (!n) {
        v = auth_refuse(c, "out of memory", AUTH_REPLY_503, NULL);
        goto fail;
    }
    n->base.ops = &neg_ops;
    n->want_groups =
        ag_rules_use_groups(srv->rules) && ag_config_uses_backend(cfg, AG_BACKEND_WINBIND);
    n->cfg = ag_config_ref(c->cfg);
    n->acc = ag_gss_acceptor_ref(srv->gss);
    n->ctx = continuing ? ag_session_take_mech(s) : NULL;
    n->tok = tok;
    n->toklen = len;
    if (c->tls && cfg->channel_binding != AG_CB_OFF) {
        n->cblen = conn_tls_cb_app_data(c, n->cb);
        n->cb_required = cfg->channel_binding == AG_CB_REQUIRED;
    }
    return auth_start_job(c, AG_POOL_KERBEROS, &n->base);
fail:
    tok_free(tok, cap);
    return v;
}
