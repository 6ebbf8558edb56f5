/* auth_basic.c - the Basic scheme (RFC 7617): one credential per request,
 * checked against the throttle and the result cache on the loop, verified by
 * the local user file or winbindd on a worker pool. Loop thread, except
 * basic_run (pool thread). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/basic.h"
#include "auth/userfile.h"
#include "auth/verify_local.h"
#include "auth/verify_winbind.h"
#include "auth_int.h"
#include "session/basic_cache.h"
#include "session/table.h"
#include "session/throttle.h"

struct basic_job {
    struct ag_job base;
    enum ag_backend backend;
    struct ag_users *users; /* reference, for the local backend */
    struct ag_basic_cred cred;
    int rc;
    struct ag_identity id;
    char reason[64];
    enum ag_refusal refusal;
    uint32_t cache_ttl_ms;
};

static void basic_run(struct ag_job *j)
{
    struct basic_job *b = (struct basic_job *)j;
    struct ag_user_split sp;
    if (b->backend == AG_BACKEND_LOCAL) {
        char canon[AG_USER_MAX + 1];
        b->rc = ag_verify_basic_local_blocking(b->users->uf, b->cred.user, b->cred.password, canon,
                                               sizeof canon);
        /* The identity is the file's entry ("DOMAIN\\user" or "user"), never
         * a domain the client typed and nobody verified. */
        if (b->rc == 0)
            ag_identity_from_entry(&b->id, canon);
        snprintf(b->reason, sizeof b->reason, "%s", b->rc ? "wrong password or unknown user" : "");
        b->refusal = b->rc ? AG_REFUSED_PASSWORD : AG_REFUSED_OTHER;
        return;
    }
    char domain[AG_USER_MAX + 1] = "", account[AG_USER_MAX + 1];
    if (ag_basic_split_user(b->cred.user, b->cred.user_len, &sp) != 0 ||
        sp.account_len >= sizeof account || sp.domain_len >= sizeof domain) {
        b->rc = AG_EAUTH;
        snprintf(b->reason, sizeof b->reason, "malformed user name");
        return;
    }
    /* sp.domain is NULL when the user typed no DOMAIN\\ (memcpy from NULL
     * is undefined even for 0 bytes). */
    if (sp.domain_len)
        memcpy(domain, sp.domain, sp.domain_len);
    domain[sp.domain_len] = '\0';
    memcpy(account, sp.account, sp.account_len);
    account[sp.account_len] = '\0';
    struct ag_wb_result r;
    b->rc = ag_wb_plain_blocking(domain, account, b->cred.password, &r);
    snprintf(b->reason, sizeof b->reason, "%s", r.reason);
    b->refusal = r.refusal;
    ag_wipe(r.session_key, sizeof r.session_key);
    if (b->rc == 0)
        ag_identity_move(&b->id, &r.id);
    else
        ag_identity_clear(&r.id);
}

static void basic_done(struct ag_job *j, void *owner)
{
    struct basic_job *b = (struct basic_job *)j;
    struct conn *c = owner;
    struct ag_server *srv = c->srv;
    uint64_t now = auth_job_returned(c, j, AG_SCHEME_BASIC, (int)b->backend);
    char u[AG_USER_MAX * 2];
    ag_escape_field(u, sizeof u, b->cred.user, b->cred.user_len);
    if (b->rc == 0) {
        srv->auth.succeeded[AG_SCHEME_BASIC]++;
        struct ag_basic_identity bid;
        memset(&bid, 0, sizeof bid);
        snprintf(bid.user, sizeof bid.user, "%s", b->id.user);
        snprintf(bid.domain, sizeof bid.domain, "%s", b->id.domain);
        bid.sids = b->id.sids;
        if (b->cache_ttl_ms)
            ag_basic_cache_insert(srv->basic_cache, b->cred.user, b->cred.password, &bid,
                                  now + b->cache_ttl_ms);
        ag_throttle_success(srv->throttle, b->cred.user, auth_addr_key(c), now);
        ag_session_authenticate(srv->sessions, c->session, AG_SCHEME_BASIC, &b->id, now);
        ag_info("conn=%llu event=auth_ok scheme=Basic client=%s user=\"%s\" backend=%s ms=%llu",
                (unsigned long long)c->id, c->peer, u,
                b->backend == AG_BACKEND_WINBIND ? "winbind" : "local",
                (unsigned long long)(now - j->queued_ms));
        auth_proceed(c);
        return;
    }
    char who[AG_USER_MAX * 4 + 16];
    snprintf(who, sizeof who, "user=\"%s\"", u);
    auth_verify_failed(c, AG_SCHEME_BASIC, b->rc, b->refusal, b->cred.user, b->reason, "", who,
                       "basic_failed");
}

static void basic_release(struct ag_job *j)
{
    struct basic_job *b = (struct basic_job *)j;
    ag_basic_cred_clear(&b->cred);
    ag_identity_clear(&b->id);
    auth_users_unref(b->users);
}

static const struct ag_job_ops basic_ops = {"basic", basic_run, basic_done, basic_release};

/* The throttle comes before the cache: a throttled (user, address) gets 407
 * whatever the cache holds, or the cache would answer a guesser's hit. The
 * user's ceiling guards the backend only. true: refused (407 sent). */
static bool basic_throttled(struct conn *c, const struct ag_basic_cred *cred, uint64_t now,
                            struct ag_basic_identity *hit, bool *cached)
{
    struct ag_server *srv = c->srv;
    bool throttled = ag_throttle_check(srv->throttle, cred->user, auth_addr_key(c), now) != 0;
    *cached = !throttled && c->cfg->basic_cache_ttl_ms &&
              ag_basic_cache_lookup(srv->basic_cache, cred->user, cred->password, now, hit);
    if (!throttled && !*cached)
        throttled =
            ag_throttle_check_backend(srv->throttle, cred->user, auth_addr_key(c), now) != 0;
    if (!throttled)
        return false;
    /* Same answer as a wrong password: guessing learns nothing. */
    char u[AG_USER_MAX * 2];
    ag_info("conn=%llu event=auth_throttled scheme=Basic client=%s user=\"%s\"",
            (unsigned long long)c->id, c->peer,
            ag_escape_field(u, sizeof u, cred->user, cred->user_len));
    auth_refuse(c, "throttled", AUTH_REPLY_407, &srv->auth.fail_throttled);
    return true;
}

/* A cached result for the same user and password: the identity at once. */
static enum ag_auth_verdict basic_cached(struct conn *c, struct ag_basic_identity *hit,
                                         uint64_t now)
{
    struct ag_server *srv = c->srv;
    srv->auth.basic_cache_hits++;
    srv->auth.succeeded[AG_SCHEME_BASIC]++;
    struct ag_identity id;
    memset(&id, 0, sizeof id);
    snprintf(id.user, sizeof id.user, "%s", hit->user);
    snprintf(id.domain, sizeof id.domain, "%s", hit->domain);
    id.sids = hit->sids; /* moved */
    ag_session_authenticate(srv->sessions, c->session, AG_SCHEME_BASIC, &id, now);
    return AG_AUTH_PROCEED;
}

enum ag_auth_verdict auth_basic(struct conn *c, const struct ag_credentials *cr)
{
    struct ag_server *srv = c->srv;
    const struct ag_config *cfg = c->cfg;
    uint64_t now = uv_now(srv->loop);
    /* Basic has no rounds: any handshake in progress (an NTLM challenge) is
     * dropped first, whatever this credential turns out to be. */
    ag_session_reset(srv->sessions, c->session);
    struct ag_basic_cred cred;
    if (ag_basic_parse(cr->token, cr->token_len, &cred) != 0) {
        ag_info("conn=%llu event=auth_malformed scheme=Basic client=%s", (unsigned long long)c->id,
                c->peer);
        /* A token over the scheme's size limit ends the connection (row 31);
         * a too-long name inside a normal-sized token is just refused. */
        bool huge = cr->token_len > ag_b64_encoded_len(AG_BASIC_MAX_DECODED);
        return auth_refuse(c, "basic_malformed", huge ? AUTH_REPLY_407_CLOSE : AUTH_REPLY_407,
                           &srv->auth.fail_malformed);
    }
    srv->auth.started[AG_SCHEME_BASIC]++;
    struct ag_basic_identity hit;
    bool cached;
    enum ag_auth_verdict v = AG_AUTH_REPLIED;
    if (basic_throttled(c, &cred, now, &hit, &cached))
        goto done;
    if (cached) {
        v = basic_cached(c, &hit, now);
        goto done;
    }
    if (ag_session_handshake_begin(srv->sessions, c->session, AG_SCHEME_BASIC, cfg->max_handshakes,
                                   cfg->max_handshakes_per_addr, now) != 0) {
        auth_refuse(c, "too many authentications in progress", AUTH_REPLY_503,
                    &srv->auth.limit_handshakes);
        goto done;
    }
    struct basic_job *b = calloc(1, sizeof *b);
    if (!b) {
        auth_refuse(c, "out of memory", AUTH_REPLY_503, NULL);
        goto done;
    }
    b->base.ops = &basic_ops;
    b->backend = cfg->basic_backend;
    b->users = auth_users_ref(srv->users);
    b->cred = cred; /* moved */
    b->cache_ttl_ms = cfg->basic_cache_ttl_ms;
    return auth_start_job(c, auth_backend_pool(b->backend), &b->base);
done:
    ag_basic_cred_clear(&cred);
    return v;
}
