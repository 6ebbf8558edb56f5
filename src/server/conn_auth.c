/* conn_auth.c - authentication of a client connection (see auth_glue.h).
 *
 * Per request head: find the one Proxy-Authorization (consumed here, never
 * forwarded), decide among: the connection's identity, a cached Basic
 * result, a verification job, or a 407. An identity is a property of this
 * connection's session row only; a new credential on an authenticated
 * connection resets it before anything else happens. Loop thread only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>
#include <unistd.h>

#include "auth/basic.h"
#include "auth/negotiate.h"
#include "auth/ntlm.h"
#include "auth/scheme.h"
#include "auth/userfile.h"
#include "auth/verify_local.h"
#include "auth/verify_winbind.h"
#include "auth_glue.h"
#include "conn.h"
#include "rules/rules.h"
#include "session/basic_cache.h"
#include "session/table.h"
#include "session/throttle.h"
#include "util/log.h"

/* The local user file, shared by jobs that may outlive a reload. */
struct ag_users {
    int refs;
    struct ag_userfile *uf;
};

static struct ag_users *users_ref(struct ag_users *u)
{
    if (u)
        u->refs++;
    return u;
}

static void users_unref(struct ag_users *u)
{
    if (u && --u->refs == 0) {
        ag_userfile_free(u->uf);
        free(u);
    }
}

static bool needs_userfile(const struct ag_config *cfg)
{
    return (ag_config_scheme_enabled(cfg, AG_SCHEME_BASIC) &&
            cfg->basic_backend == AG_BACKEND_LOCAL) ||
           (ag_config_scheme_enabled(cfg, AG_SCHEME_NTLM) && cfg->ntlm_backend == AG_BACKEND_LOCAL);
}

static int load_users(const struct ag_config *cfg, struct ag_users **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!needs_userfile(cfg) || !cfg->user_file)
        return 0;
    struct ag_userfile *uf = ag_userfile_load(cfg->user_file, err, errlen);
    if (!uf)
        return -1;
    struct ag_users *u = calloc(1, sizeof *u);
    if (!u) {
        ag_userfile_free(uf);
        snprintf(err, errlen, "%s: out of memory", cfg->user_file);
        return -1;
    }
    u->refs = 1;
    u->uf = uf;
    *out = u;
    return 0;
}

/* The acceptor name: configured, "any", or HTTP@<proxy_host or host name>. */
static void acceptor_name(const struct ag_config *cfg, char *out, size_t cap)
{
    if (cfg->negotiate_acceptor && strcmp(cfg->negotiate_acceptor, "any") == 0) {
        out[0] = '\0';
        return;
    }
    if (cfg->negotiate_acceptor) {
        snprintf(out, cap, "%s", cfg->negotiate_acceptor);
        return;
    }
    char host[256];
    ag_config_proxy_host(cfg, host, sizeof host);
    snprintf(out, cap, "HTTP@%s", host);
}

/* Negotiate is offered only with working acceptor credentials; without them
 * one clear line says why (missing keytab, no key for the name). */
static struct ag_gss_acceptor *load_acceptor(const struct ag_config *cfg)
{
    if (!ag_config_scheme_enabled(cfg, AG_SCHEME_NEGOTIATE))
        return NULL;
    char name[300], err[700];
    acceptor_name(cfg, name, sizeof name);
    struct ag_gss_acceptor *a = ag_gss_acceptor_new(cfg->keytab, name, err, sizeof err);
    if (!a)
        ag_err("event=negotiate_unavailable error=\"%s\" note=\"Negotiate is not offered\"", err);
    else
        ag_info("event=negotiate_ready acceptor=%s keytab=%s", ag_gss_acceptor_name(a),
                cfg->keytab ? cfg->keytab : "(default)");
    return a;
}

static bool uses_winbind(const struct ag_config *cfg)
{
    return (ag_config_scheme_enabled(cfg, AG_SCHEME_BASIC) &&
            cfg->basic_backend == AG_BACKEND_WINBIND) ||
           (ag_config_scheme_enabled(cfg, AG_SCHEME_NTLM) &&
            cfg->ntlm_backend == AG_BACKEND_WINBIND);
}

static int wb_group(void *arg, const char *name, char *sid, size_t cap)
{
    return ag_wb_name_to_sid_blocking(name, sid, cap);
}

/* Group names resolve through winbind once per load: here at start-up
 * (before the loop serves anyone) and for -t; a reload resolves them on the
 * winbind pool (reload_run below). */
static int load_rules(const struct ag_config *cfg, struct ag_rules **out, char *err,
                      size_t errlen)
{
    *out = NULL;
    if (!cfg->rules_file)
        return 0;
    *out = ag_rules_load(cfg->rules_file, uses_winbind(cfg) ? wb_group : NULL, NULL, err, errlen);
    if (!*out)
        return -1;
    ag_info("event=rules_loaded file=%s rules=%zu", cfg->rules_file, ag_rules_count(*out));
    return 0;
}

/* With the winbind backend, NTLM challenges name winbind's own domain and
 * computer (what Windows clients expect of a domain member); read once per
 * (re)load, a blocking call like the rules' group lookups. */
static bool wants_wb_names(const struct ag_config *cfg)
{
    return ag_config_scheme_enabled(cfg, AG_SCHEME_NTLM) && cfg->ntlm_backend == AG_BACKEND_WINBIND;
}

struct wb_names {
    int rc; /* of ag_wb_names_blocking; AG_EIO when not read */
    char nd[256], dd[256], nn[256];
};

static void read_wb_names(struct wb_names *w)
{
    w->rc = ag_wb_names_blocking(w->nd, w->dd, w->nn, sizeof w->nd);
}

/* Loop thread: the names read (or not) take effect. */
static void set_wb_names(struct ag_server *srv, const struct ag_config *cfg, const struct wb_names *w)
{
    srv->wb_nb_domain[0] = srv->wb_dns_domain[0] = srv->wb_nb_name[0] = '\0';
    if (!wants_wb_names(cfg))
        return;
    if (w->rc != 0) {
        ag_warn("event=winbind_names_unavailable note=\"NTLM challenges name ntlm_domain "
                "until the next reload\"");
        return;
    }
    snprintf(srv->wb_nb_domain, sizeof srv->wb_nb_domain, "%s", w->nd);
    snprintf(srv->wb_dns_domain, sizeof srv->wb_dns_domain, "%s", w->dd);
    snprintf(srv->wb_nb_name, sizeof srv->wb_nb_name, "%s", w->nn);
    ag_info("event=winbind_names nb_domain=%s dns_domain=%s nb_name=%s", w->nd,
            w->dd[0] ? w->dd : "-", w->nn);
}

static void load_wb_names(struct ag_server *srv, const struct ag_config *cfg)
{
    struct wb_names w = {.rc = AG_EIO};
    if (wants_wb_names(cfg))
        read_wb_names(&w);
    set_wb_names(srv, cfg, &w);
}

static struct ag_throttle_limits throttle_limits(const struct ag_config *cfg)
{
    return (struct ag_throttle_limits){cfg->fail_max_per_user_addr, cfg->fail_max_per_addr,
                                       cfg->fail_max_per_user, cfg->fail_window_ms};
}

/* The host an explicit HTTP acceptor names ("HTTP@host", "HTTP/host" or
 * "HTTP/host@REALM"): clients reaching the proxy by that name use it in
 * NTLM too. NULL for none, "any", another service or no DNS name (longer
 * than cap - 1; callers pass 254: 253 is the DNS limit). */
static const char *acceptor_host(const struct ag_config *cfg, char *out, size_t cap)
{
    const char *a = cfg->negotiate_acceptor;
    if (!a || strncmp(a, "HTTP", 4) != 0 || (a[4] != '@' && a[4] != '/'))
        return NULL;
    size_t l = a[4] == '/' ? strcspn(a + 5, "@") : strlen(a + 5);
    if (l == 0 || l >= cap)
        return NULL;
    memcpy(out, a + 5, l);
    out[l] = '\0';
    return out;
}

/* The ports clients reach us on: the listeners' own once they exist (listen
 * changes only with a restart, whatever a reloaded file says), else the
 * configured ones (start-up, before ag_server_listen). */
static size_t listening_ports(const struct ag_server *srv, const struct ag_config *cfg,
                              uint16_t ports[AG_MAX_LISTENERS])
{
    size_t n = 0, count = srv->n_listeners ? srv->n_listeners : cfg->n_listen;
    for (size_t i = 0; i < count && i < AG_MAX_LISTENERS; i++) {
        struct sockaddr_storage ss;
        int sl = sizeof ss;
        if (srv->n_listeners) {
            if (uv_tcp_getsockname(&srv->listeners[i]->tcp, (struct sockaddr *)&ss, &sl) != 0)
                continue;
        } else {
            ss = cfg->listen[i].addr;
        }
        ports[n++] = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                    : ((struct sockaddr_in *)&ss)->sin_port);
    }
    return n;
}

/* MsvAvTargetName (relay defence) is checked only against a configured
 * proxy_host: a guessed host name would refuse honest clients. Built once
 * per (re)load, not per handshake. */
static void load_ntlm_spns(struct ag_server *srv, const struct ag_config *cfg)
{
    memset(&srv->ntlm_spns, 0, sizeof srv->ntlm_spns);
    if (!cfg->proxy_host)
        return;
    char acc[254];
    const char *names[] = {cfg->proxy_host, acceptor_host(cfg, acc, sizeof acc)};
    uint16_t ports[AG_MAX_LISTENERS];
    size_t np = listening_ports(srv, cfg, ports);
    if (ag_ntlm_spns_build(&srv->ntlm_spns, names, 2, ports, np) != 0) {
        /* Not within the config's own limits; never fail open: "" matches
         * no target name, so only clients that send none get through. */
        ag_err("event=ntlm_spns_unusable proxy_host=%s note=\"NTLM target names refused\"",
               cfg->proxy_host);
        srv->ntlm_spns.list[0] = "";
        srv->ntlm_spns.n = 1;
    }
}

int ag_auth_init(struct ag_server *srv, char *err, size_t errlen)
{
    /* MIT reads the replay cache directory from the environment when a
     * context is made: set it before any GSS call, once. */
    if (srv->cfg->rcache_dir)
        setenv("KRB5RCACHEDIR", srv->cfg->rcache_dir, 1);
    srv->gss = load_acceptor(srv->cfg);
    const struct ag_config *cfg = srv->cfg;
    srv->sessions = ag_session_table_new();
    srv->basic_cache = ag_basic_cache_create(AG_BASIC_CACHE_MAX);
    struct ag_throttle_limits lim = throttle_limits(cfg);
    srv->throttle = ag_throttle_create(AG_THROTTLE_MAX_KEYS, &lim);
    if (!srv->sessions || !srv->basic_cache || !srv->throttle) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    uint32_t threads[AG_POOL_N];
    threads[AG_POOL_WINBIND] = cfg->winbind_threads;
    unsigned ncpu = uv_available_parallelism();
    threads[AG_POOL_KERBEROS] = cfg->kerberos_threads ? cfg->kerberos_threads
                                : ncpu < AG_WORKER_THREADS_MAX ? ncpu : AG_WORKER_THREADS_MAX;
    threads[AG_POOL_LOCAL] = cfg->local_threads;
    if (ag_workers_start(&srv->workers, srv->loop, threads, cfg->max_jobs) != 0) {
        snprintf(err, errlen, "cannot start the verification threads");
        return -1;
    }
    ag_info("event=workers_started winbind=%u kerberos=%u local=%u", threads[AG_POOL_WINBIND],
            threads[AG_POOL_KERBEROS], threads[AG_POOL_LOCAL]);
    if (load_rules(cfg, &srv->rules, err, errlen) != 0)
        return -1;
    load_wb_names(srv, cfg);
    load_ntlm_spns(srv, cfg);
    if (needs_userfile(cfg) && !cfg->user_file)
        ag_warn("event=no_user_file note=\"a local backend without user_file: Basic/NTLM "
                "through it are not offered\"");
    return load_users(cfg, &srv->users, err, errlen);
}

/* --- reload ------------------------------------------------------------------
 *
 * What a reload asks of winbindd (group SIDs of the rules, the domain and
 * computer names of NTLM challenges) runs on the winbind pool, so a stalled
 * winbindd never freezes the loop; the loop swaps the result in when it
 * arrives. Everything else (config, user file, keytab) is read on the loop. */

/* Loop thread: the prepared state of ncfg takes over. Takes rules and u. */
static void auth_swap(struct ag_server *srv, const struct ag_config *ncfg, struct ag_rules *rules,
                      struct ag_users *u, const struct wb_names *names)
{
    ag_rules_free(srv->rules);
    srv->rules = rules;
    ag_wb_user_sids_cache_clear(); /* groups may have changed with the rules */
    set_wb_names(srv, ncfg, names);
    load_ntlm_spns(srv, ncfg);
    users_unref(srv->users);
    srv->users = u;
    ag_gss_acceptor_unref(srv->gss);
    srv->gss = load_acceptor(ncfg);
    /* Cached Basic results were checked against the old backend/file. */
    ag_basic_cache_clear(srv->basic_cache);
    struct ag_throttle_limits lim = throttle_limits(ncfg);
    ag_throttle_set_limits(srv->throttle, &lim);
    srv->workers.max_jobs = ncfg->max_jobs;
}

/* The rules file read with a resolver that only notes a group lookup: a
 * syntax error shows at once (in the ctl reply too), and a file without
 * groups needs no winbind at all. */
static int wb_group_dry(void *arg, const char *name, char *sid, size_t cap)
{
    *(bool *)arg = true;
    snprintf(sid, cap, "S-1-0-0");
    return 0;
}

struct reload_job {
    struct ag_job base;
    struct ag_config *cfg;   /* the new configuration (reference) */
    struct ag_users *users;  /* its user file, read on the loop (reference) */
    bool want_rules, want_names;
    struct ag_rules *rules;  /* run: the rules with their group SIDs */
    char err[600];           /* run: why the rules did not load */
    struct wb_names names;
};

static void reload_run(struct ag_job *j)
{
    struct reload_job *r = (struct reload_job *)j;
    if (r->want_rules)
        r->rules = ag_rules_load(r->cfg->rules_file, wb_group, NULL, r->err, sizeof r->err);
    if (r->want_names && (!r->want_rules || r->rules))
        read_wb_names(&r->names);
}

static void reload_done(struct ag_job *j, void *owner)
{
    struct reload_job *r = (struct reload_job *)j;
    struct ag_server *srv = owner;
    srv->reload_job = NULL;
    uv_timer_stop(&srv->reload_timer);
    if (r->want_rules && !r->rules) {
        ag_server_reload_finish(srv, r->cfg, r->err);
        return;
    }
    if (r->rules)
        ag_info("event=rules_loaded file=%s rules=%zu", r->cfg->rules_file,
                ag_rules_count(r->rules));
    auth_swap(srv, r->cfg, r->rules, r->users, &r->names);
    r->rules = NULL;
    r->users = NULL;
    ag_server_reload_finish(srv, r->cfg, NULL);
}

static void reload_release(struct ag_job *j)
{
    struct reload_job *r = (struct reload_job *)j;
    ag_rules_free(r->rules);
    users_unref(r->users);
    ag_config_unref(r->cfg);
}

static const struct ag_job_ops reload_ops = {"reload", reload_run, reload_done, reload_release};

static void on_reload_timeout(uv_timer_t *t)
{
    struct ag_server *srv = t->data;
    struct ag_job *j = srv->reload_job;
    if (!j)
        return;
    srv->reload_job = NULL;
    srv->auth.reload_timeouts++;
    /* The job finishes (or not) on its own and then only frees itself. */
    struct ag_config *ncfg = ag_config_ref(((struct reload_job *)j)->cfg);
    ag_job_detach(j);
    char err[128];
    snprintf(err, sizeof err, "winbind did not answer within handshake_timeout (%ums); the old "
             "configuration stays", ncfg->handshake_timeout_ms);
    ag_server_reload_finish(srv, ncfg, err);
    ag_config_unref(ncfg);
}

int ag_auth_reload(struct ag_server *srv, struct ag_config *ncfg, char *err, size_t errlen)
{
    struct ag_users *u;
    struct ag_rules *rules = NULL;
    bool wb = uses_winbind(ncfg), groups = false;
    if (ncfg->rules_file) {
        rules = ag_rules_load(ncfg->rules_file, wb ? wb_group_dry : NULL, &groups, err, errlen);
        if (!rules)
            return -1;
    }
    if (load_users(ncfg, &u, err, errlen) != 0) {
        ag_rules_free(rules);
        return -1;
    }
    if (!groups && !wants_wb_names(ncfg)) {
        /* Nothing to ask winbindd: done here and now. */
        if (rules)
            ag_info("event=rules_loaded file=%s rules=%zu", ncfg->rules_file,
                    ag_rules_count(rules));
        struct wb_names none = {.rc = AG_EIO};
        auth_swap(srv, ncfg, rules, u, &none);
        return 0;
    }
    ag_rules_free(rules);
    struct reload_job *r = calloc(1, sizeof *r);
    if (!r) {
        users_unref(u);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    r->base.ops = &reload_ops;
    r->cfg = ag_config_ref(ncfg);
    r->users = u;
    r->want_rules = groups;
    r->want_names = wants_wb_names(ncfg);
    r->names.rc = AG_EIO;
    if (ag_job_submit(&srv->workers, AG_POOL_WINBIND, &r->base, srv) != 0) {
        reload_release(&r->base);
        free(r);
        snprintf(err, errlen, "the winbind worker queue is full");
        return -1;
    }
    srv->reload_job = &r->base;
    srv->reload_timer.data = srv;
    /* The deadline a client's verification gets from winbindd, the new
     * configuration's: below libwbclient's own ~65 s on a hung winbindd. */
    uv_timer_start(&srv->reload_timer, on_reload_timeout, ncfg->handshake_timeout_ms, 0);
    ag_info("event=reload_started config=%s note=\"winbind lookups off the loop\"", ncfg->path);
    return 1;
}

int ag_auth_check_files(const struct ag_config *cfg, char *err, size_t errlen)
{
    struct ag_users *u;
    struct ag_rules *r;
    if (load_users(cfg, &u, err, errlen) != 0)
        return -1;
    users_unref(u);
    if (load_rules(cfg, &r, err, errlen) != 0)
        return -1;
    ag_rules_free(r);
    return 0;
}

void ag_auth_shutdown(struct ag_server *srv)
{
    ag_wb_user_sids_cache_clear();
    ag_rules_free(srv->rules);
    srv->rules = NULL;
    ag_gss_acceptor_unref(srv->gss);
    srv->gss = NULL;
    users_unref(srv->users);
    srv->users = NULL;
    ag_basic_cache_free(srv->basic_cache);
    srv->basic_cache = NULL;
    ag_throttle_free(srv->throttle);
    srv->throttle = NULL;
    ag_session_table_free(srv->sessions);
    srv->sessions = NULL;
}

/* --- what is offered --------------------------------------------------------- */

static bool scheme_available(const struct ag_server *srv, const struct ag_config *cfg,
                             enum ag_scheme s)
{
    if (!ag_config_scheme_enabled(cfg, s))
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

/* "authgatectl trace addr=IP" is on for this connection's client. */
static bool traced(const struct conn *c)
{
    const struct ag_server *srv = c->srv;
    return srv->trace_addr[0] && srv->trace_until_ms > uv_now(srv->loop) &&
           strcmp(srv->trace_addr, c->peer) == 0;
}

#define TRACE(c, ...)                                                                              \
    do {                                                                                           \
        if (traced(c))                                                                             \
            ag_info(__VA_ARGS__);                                                                  \
    } while (0)

/* Sends 407. With a continuation (scheme name and base64 token), only that
 * scheme and its token (a handshake continues); otherwise the full set in
 * configured order. */
static void send_407_cont(struct conn *c, const char *why, const char *cont_scheme,
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
        if (!scheme_available(c->srv, cfg, s))
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
    if (c->req_has_body && ag_head_has_token(&c->head, "Expect", "100-continue"))
        c->close_after = true;
    /* Tunnel bytes may already follow a CONNECT head: never parse them. */
    if (c->is_connect && c->inbuf.len)
        c->close_after = true;
    if (traced(c))
        ag_info("conn=%llu event=trace step=challenge client=%s reason=%s continue=%s",
                (unsigned long long)c->id, c->peer, why, cont_scheme ? cont_scheme : "-");
    else
        ag_debug("conn=%llu event=auth_challenge client=%s reason=%s", (unsigned long long)c->id,
                 c->peer, why);
    exchange_reply(c, 407, extra, "authentication required");
}

static void send_407(struct conn *c, const char *why)
{
    send_407_cont(c, why, NULL, NULL);
}

static void send_503(struct conn *c, const char *why)
{
    c->close_after = true;
    exchange_reply(c, 503, "Retry-After: 5\r\n", why);
}

/* --- identity ------------------------------------------------------------------ */

const char *ag_conn_user(const struct conn *c)
{
    static char buf[4 * AG_USER_MAX + 8];
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

const char *ag_conn_identity_header(const struct conn *c)
{
    static char buf[AG_USER_MAX * 2 + 300];
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

/* The backend checked the password and it was wrong (what a domain
 * controller counts towards its lockout); the local file cannot tell an
 * unknown user apart. Not: unknown users, malformed names, MIC mismatches. */
static bool wrong_password(const char *reason)
{
    return strcmp(reason, "wrong password") == 0 ||
           strcmp(reason, "wrong password or unknown user") == 0;
}

/* The end of a failed Basic or NTLM verification: 503 when the backend
 * failed (fail closed: never access), otherwise the failure counts against
 * (user, address), the address and, for a wrong password, the user's
 * ceiling, and a fresh 407 is offered. pre and who are the scheme's own log
 * fields (before and after client=). */
static void verify_failed(struct conn *c, enum ag_scheme scheme, int rc, const char *user,
                          const char *reason, const char *pre, const char *who, const char *why)
{
    struct ag_server *srv = c->srv;
    srv->auth.failed[scheme]++;
    ag_session_handshake_end(srv->sessions, c->session);
    if (rc == AG_EBACKEND) {
        srv->auth.fail_backend++;
        ag_err("conn=%llu event=auth_backend_error scheme=%s %sclient=%s %s error=\"%s\"",
               (unsigned long long)c->id, ag_scheme_name(scheme), pre, c->peer, who, reason);
        send_503(c, "authentication backend unavailable");
        return;
    }
    ag_throttle_fail(srv->throttle, user, c->peer, wrong_password(reason), uv_now(srv->loop));
    if (strcmp(reason, "unknown user") == 0) /* winbind tells; the local file never does */
        srv->auth.fail_unknown_user++;
    else
        srv->auth.fail_bad_password++;
    ag_info("conn=%llu event=auth_failed scheme=%s %sclient=%s %s reason=\"%s\"",
            (unsigned long long)c->id, ag_scheme_name(scheme), pre, c->peer, who, reason);
    send_407(c, why);
}

/* The loop side of every verification job: records its latency, frees the
 * connection to read again, and returns the loop's clock. */
static uint64_t job_returned(struct conn *c, const struct ag_job *j, enum ag_scheme scheme,
                             int backend)
{
    struct ag_server *srv = c->srv;
    uint64_t now = uv_now(srv->loop);
    ag_auth_latency_record(&srv->auth, scheme, backend, now - j->queued_ms);
    c->job = NULL;
    c->state = CONN_READ_HEAD;
    return now;
}

/* The worker pool of a password backend. */
static enum ag_pool_id backend_pool(enum ag_backend b)
{
    return b == AG_BACKEND_WINBIND ? AG_POOL_WINBIND : AG_POOL_LOCAL;
}

/* Hands a verification to its backend's worker pool (ownership of j passes
 * on success) and parks the connection until it answers; 503 at the pool's
 * cap. */
static enum ag_auth_verdict start_job(struct conn *c, enum ag_pool_id pool, struct ag_job *j)
{
    struct ag_server *srv = c->srv;
    if (ag_job_submit(&srv->workers, pool, j, c) != 0) {
        srv->auth.limit_jobs++;
        j->ops->release(j);
        free(j);
        ag_session_reset(srv->sessions, c->session);
        send_503(c, "too many verifications in flight");
        return AG_AUTH_REPLIED;
    }
    c->job = j;
    c->state = CONN_AUTH_VERIFY;
    c->session->state = AG_AS_VERIFYING;
    conn_set_timer(c, c->cfg->handshake_timeout_ms);
    return AG_AUTH_PENDING;
}

/* --- Basic -------------------------------------------------------------------- */

struct basic_job {
    struct ag_job base;
    enum ag_backend backend;
    struct ag_users *users; /* reference, for the local backend */
    struct ag_basic_cred cred;
    int rc;
    struct ag_identity id;
    char reason[64];
    uint32_t cache_ttl_ms;
};

static void basic_run(struct ag_job *j)
{
    struct basic_job *b = (struct basic_job *)j;
    struct ag_user_split sp;
    if (b->backend == AG_BACKEND_LOCAL) {
        char canon[AG_USER_MAX + 1];
        b->rc = ag_verify_basic_local_blocking(b->users->uf, b->cred.user, b->cred.password,
                                               canon, sizeof canon);
        /* The identity is the file's entry ("DOMAIN\\user" or "user"), never
         * a domain the client typed and nobody verified. */
        if (b->rc == 0)
            ag_identity_from_entry(&b->id, canon);
        snprintf(b->reason, sizeof b->reason, "%s", b->rc ? "wrong password or unknown user" : "");
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
    uint64_t now = job_returned(c, j, AG_SCHEME_BASIC, (int)b->backend);
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
        ag_throttle_success(srv->throttle, b->cred.user, c->peer, now);
        ag_session_authenticate(srv->sessions, c->session, AG_SCHEME_BASIC, &b->id, now);
        ag_info("conn=%llu event=auth_ok scheme=Basic client=%s user=\"%s\" backend=%s ms=%llu",
                (unsigned long long)c->id, c->peer, u,
                b->backend == AG_BACKEND_WINBIND ? "winbind" : "local",
                (unsigned long long)(now - j->queued_ms));
        conn_set_timer(c, 0);
        exchange_proceed(c);
        return;
    }
    char who[AG_USER_MAX * 4 + 16];
    snprintf(who, sizeof who, "user=\"%s\"", u);
    verify_failed(c, AG_SCHEME_BASIC, b->rc, b->cred.user, b->reason, "", who, "basic_failed");
}

static void basic_release(struct ag_job *j)
{
    struct basic_job *b = (struct basic_job *)j;
    ag_basic_cred_clear(&b->cred);
    ag_identity_clear(&b->id);
    users_unref(b->users);
}

static const struct ag_job_ops basic_ops = {"basic", basic_run, basic_done, basic_release};

static enum ag_auth_verdict basic_auth(struct conn *c, const struct ag_credentials *cr)
{
    struct ag_server *srv = c->srv;
    const struct ag_config *cfg = c->cfg;
    uint64_t now = uv_now(srv->loop);
    /* Basic has no rounds: any handshake in progress (an NTLM challenge) is
     * dropped first, whatever this credential turns out to be. */
    ag_session_reset(srv->sessions, c->session);
    struct ag_basic_cred cred;
    int prc = ag_basic_parse(cr->token, cr->token_len, &cred);
    if (prc != 0) {
        /* A token over the scheme's size limit ends the connection (row 31);
         * a too-long name inside a normal-sized token is just refused. */
        if (cr->token_len > ag_b64_encoded_len(AG_BASIC_MAX_DECODED))
            c->close_after = true;
        srv->auth.fail_malformed++;
        ag_info("conn=%llu event=auth_malformed scheme=Basic client=%s", (unsigned long long)c->id,
                c->peer);
        send_407(c, "basic_malformed");
        return AG_AUTH_REPLIED;
    }
    srv->auth.started[AG_SCHEME_BASIC]++;
    /* The throttle comes before the cache: a throttled (user, address)
     * gets 407 whatever the cache holds, or the cache would answer a
     * guesser's hit. The user's ceiling guards the backend only. */
    struct ag_basic_identity hit;
    bool throttled = ag_throttle_check(srv->throttle, cred.user, c->peer, now) != 0;
    bool cached = !throttled && cfg->basic_cache_ttl_ms &&
                  ag_basic_cache_lookup(srv->basic_cache, cred.user, cred.password, now, &hit);
    if (!throttled && !cached)
        throttled = ag_throttle_check_backend(srv->throttle, cred.user, c->peer, now) != 0;
    if (throttled) {
        /* Same answer as a wrong password: guessing learns nothing. */
        srv->auth.fail_throttled++;
        char u[AG_USER_MAX * 2];
        ag_info("conn=%llu event=auth_throttled scheme=Basic client=%s user=\"%s\"",
                (unsigned long long)c->id, c->peer, ag_escape_field(u, sizeof u, cred.user, cred.user_len));
        ag_basic_cred_clear(&cred);
        send_407(c, "throttled");
        return AG_AUTH_REPLIED;
    }
    if (cached) {
        srv->auth.basic_cache_hits++;
        srv->auth.succeeded[AG_SCHEME_BASIC]++;
        struct ag_identity id;
        memset(&id, 0, sizeof id);
        snprintf(id.user, sizeof id.user, "%s", hit.user);
        snprintf(id.domain, sizeof id.domain, "%s", hit.domain);
        id.sids = hit.sids; /* moved */
        ag_session_authenticate(srv->sessions, c->session, AG_SCHEME_BASIC, &id, now);
        ag_basic_cred_clear(&cred);
        return AG_AUTH_PROCEED;
    }
    if (ag_session_handshake_begin(srv->sessions, c->session, AG_SCHEME_BASIC, cfg->max_handshakes,
                                   cfg->max_handshakes_per_addr, now) != 0) {
        srv->auth.limit_handshakes++;
        ag_basic_cred_clear(&cred);
        send_503(c, "too many authentications in progress");
        return AG_AUTH_REPLIED;
    }
    struct basic_job *b = calloc(1, sizeof *b);
    if (!b) {
        ag_basic_cred_clear(&cred);
        send_503(c, "out of memory");
        return AG_AUTH_REPLIED;
    }
    b->base.ops = &basic_ops;
    b->backend = cfg->basic_backend;
    b->users = users_ref(srv->users);
    b->cred = cred; /* moved */
    b->cache_ttl_ms = cfg->basic_cache_ttl_ms;
    return start_job(c, backend_pool(b->backend), &b->base);
}


/* --- NTLM ------------------------------------------------------------------------ */

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
};

static void ntlm_run(struct ag_job *j)
{
    struct ntlm_job *n = (struct ntlm_job *)j;
    if (n->backend == AG_BACKEND_LOCAL) {
        n->rc = ag_ntlm_verify_local_blocking(n->v, n->users->uf, &n->id, &n->reason);
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
    n->rc = ag_wb_response_blocking(a->domain, a->user, a->workstation, n->v->wb_challenge,
                                    a->nt.p, a->nt.len, lm ? a->lm.p : NULL, lm ? a->lm.len : 0,
                                    n->v->allow_machine_accounts, &r);
    snprintf(n->wb_reason, sizeof n->wb_reason, "%s", r.reason);
    n->reason = n->wb_reason;
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
    users_unref(n->users);
}

static void ntlm_done(struct ag_job *j, void *owner)
{
    struct ntlm_job *n = (struct ntlm_job *)j;
    struct conn *c = owner;
    struct ag_server *srv = c->srv;
    uint64_t now = job_returned(c, j, AG_SCHEME_NTLM, (int)n->backend);
    char u[AG_USER_MAX * 2], d[AG_USER_MAX * 2], w[AG_USER_MAX * 2];
    const struct ag_ntlm_auth *a = &n->v->a;
    ag_escape_field(u, sizeof u, a->user, strlen(a->user));
    ag_escape_field(d, sizeof d, a->domain, strlen(a->domain));
    ag_escape_field(w, sizeof w, a->workstation, strlen(a->workstation));
    const char *via = c->session->ntlm_in_negotiate ? "Negotiate" : "NTLM";
    if (n->rc == 0) {
        srv->auth.succeeded[AG_SCHEME_NTLM]++;
        ag_throttle_success(srv->throttle, a->user, c->peer, now);
        ag_session_authenticate(srv->sessions, c->session, AG_SCHEME_NTLM, &n->id, now);
        ag_info("conn=%llu event=auth_ok scheme=NTLM via=%s client=%s user=\"%s\" domain=\"%s\" "
                "workstation=\"%s\" backend=%s mic=%s ms=%llu",
                (unsigned long long)c->id, via, c->peer, u, d, w,
                n->backend == AG_BACKEND_WINBIND ? "winbind" : "local",
                a->mic_present ? "yes" : "no", (unsigned long long)(now - j->queued_ms));
        conn_set_timer(c, 0);
        exchange_proceed(c);
        return;
    }
    char via_f[32], who[AG_USER_MAX * 12 + 64];
    snprintf(via_f, sizeof via_f, "via=%s ", via);
    snprintf(who, sizeof who, "user=\"%s\" domain=\"%s\" workstation=\"%s\"", u, d, w);
    verify_failed(c, AG_SCHEME_NTLM, n->rc, a->user, n->reason ? n->reason : "?", via_f, who,
                  "ntlm_failed");
}

static const struct ag_job_ops ntlm_ops = {"ntlm", ntlm_run, ntlm_done, ntlm_release};

/* A failed NTLM leg: the handshake is dropped and a fresh 407 offered. */
static enum ag_auth_verdict ntlm_refuse(struct conn *c, const char *event, const char *reason,
                                        bool close)
{
    ag_info("conn=%llu event=%s scheme=NTLM client=%s reason=\"%s\"", (unsigned long long)c->id,
            event, c->peer, reason);
    ag_session_reset(c->srv->sessions, c->session);
    if (close)
        c->close_after = true;
    send_407(c, event);
    return AG_AUTH_REPLIED;
}

static enum ag_auth_verdict ntlm_auth(struct conn *c, const struct ag_credentials *cr,
                                      bool in_negotiate)
{
    struct ag_server *srv = c->srv;
    const struct ag_config *cfg = c->cfg;
    struct ag_session *s = c->session;
    uint64_t now = uv_now(srv->loop);
    uint8_t msg[AG_NTLM_MAX_DECODED];
    size_t len;
    int rc = ag_b64_decode(cr->token, cr->token_len, msg, sizeof msg, &len);
    if (rc != 0) {
        ag_wipe(msg, sizeof msg); /* a partly decoded AUTHENTICATE */
        srv->auth.fail_malformed++;
        return ntlm_refuse(c, "auth_malformed",
                           rc == AG_ELIMIT ? "token over the NTLM size limit" : "invalid base64",
                           rc == AG_ELIMIT);
    }
    int type = ag_ntlm_message_type(msg, len);
    if (type == NTLMSSP_NEGOTIATE_MSG) {
        rc = ag_session_handshake_begin(srv->sessions, s, AG_SCHEME_NTLM, cfg->max_handshakes,
                                        cfg->max_handshakes_per_addr, now);
        if (rc != 0) {
            srv->auth.limit_handshakes++;
            ag_session_reset(srv->sessions, s);
            send_503(c, "too many authentications in progress");
            return AG_AUTH_REPLIED;
        }
        if (s->rounds > AG_NTLM_MAX_ROUNDS) {
            srv->auth.limit_rounds++;
            return ntlm_refuse(c, "auth_too_many_rounds", "too many NTLM legs", true);
        }
        if (s->rounds == 1)
            srv->auth.started[AG_SCHEME_NTLM]++;
        struct ntlm_names names;
        struct ag_ntlm_server ns;
        ntlm_server(srv, cfg, &names, &ns);
        struct ag_ntlm_state *st;
        uint8_t chal[1024];
        size_t chlen;
        rc = ag_ntlm_challenge(msg, len, &ns, filetime_now(), &st, chal, sizeof chal, &chlen);
        if (rc != 0) {
            srv->auth.fail_malformed++;
            return ntlm_refuse(c, "auth_malformed", "malformed NEGOTIATE", false);
        }
        TRACE(c, "conn=%llu event=trace step=ntlm_negotiate client=%s via=%s flags=0x%08x "
                 "challenge_flags=0x%08x round=%u",
              (unsigned long long)c->id, c->peer, in_negotiate ? "Negotiate" : "NTLM",
              ag_ntlm_negotiate_flags(msg, len), st->chal_flags, s->rounds);
        /* A new NEGOTIATE replaces any outstanding challenge. */
        ag_session_set_mech(s, st, ag_ntlm_state_free);
        s->state = AG_AS_NTLM_CHALLENGED;
        s->ntlm_in_negotiate = in_negotiate;
        char b64[2048];
        ag_b64_encode(chal, chlen, b64);
        /* NTLM binds to the connection: without keep-alive it cannot complete,
         * but the CHALLENGE is still sent (MS-NTHT), then the connection ends. */
        if (!c->keepalive)
            ag_debug("conn=%llu event=ntlm_without_keepalive client=%s", (unsigned long long)c->id,
                     c->peer);
        send_407_cont(c, "ntlm_challenge", in_negotiate ? "Negotiate" : "NTLM", b64);
        if (!c->keepalive)
            ag_session_reset(srv->sessions, s);
        return AG_AUTH_REPLIED;
    }
    if (type != NTLMSSP_AUTHENTICATE_MSG) {
        srv->auth.fail_malformed++;
        return ntlm_refuse(c, "auth_malformed", "not an NTLMSSP NEGOTIATE or AUTHENTICATE", false);
    }
    if (s->state == AG_AS_NTLM_CHALLENGED && s->ntlm_in_negotiate != in_negotiate) {
        ag_wipe(msg, len); /* an AUTHENTICATE: its response can be cracked offline */
        srv->auth.fail_malformed++;
        return ntlm_refuse(c, "auth_unexpected", "scheme switched between NTLM legs", false);
    }
    if (s->state != AG_AS_NTLM_CHALLENGED || !s->mech) {
        ag_wipe(msg, len);
        srv->auth.fail_malformed++;
        return ntlm_refuse(c, "auth_unexpected", "AUTHENTICATE without a challenge on this connection",
                           false);
    }
    s->rounds++;
    /* The challenge is consumed here, whatever the outcome. */
    struct ag_ntlm_state *st = ag_session_take_mech(s);
    struct ntlm_names names;
    struct ag_ntlm_server ns;
    ntlm_server(srv, cfg, &names, &ns);
    struct ag_ntlm_verify *v = NULL;
    const char *reason = "";
    rc = ag_ntlm_check(msg, len, st, &ns, &v, &reason);
    ag_wipe(msg, len);
    if (rc != 0) {
        srv->auth.failed[AG_SCHEME_NTLM]++;
        if (rc == AG_EUNSUPP)
            srv->auth.fail_ntlmv1++;
        else
            srv->auth.fail_policy++;
        return ntlm_refuse(c, "auth_refused", reason, false);
    }
    if (traced(c)) {
        char tu[AG_USER_MAX * 4], td[AG_USER_MAX * 4], tw[AG_USER_MAX * 4];
        ag_info("conn=%llu event=trace step=ntlm_authenticate client=%s user=\"%s\" "
                "domain=\"%s\" workstation=\"%s\" flags=0x%08x nt_len=%zu mic=%s",
                (unsigned long long)c->id, c->peer,
                ag_escape_field(tu, sizeof tu, v->a.user, strlen(v->a.user)),
                ag_escape_field(td, sizeof td, v->a.domain, strlen(v->a.domain)),
                ag_escape_field(tw, sizeof tw, v->a.workstation, strlen(v->a.workstation)),
                v->a.flags, v->a.nt.len, v->a.mic_present ? "yes" : "no");
    }
    if (ag_throttle_check(srv->throttle, v->a.user, c->peer, now) != 0 ||
        ag_throttle_check_backend(srv->throttle, v->a.user, c->peer, now) != 0) {
        srv->auth.fail_throttled++;
        ag_ntlm_verify_free(v);
        return ntlm_refuse(c, "auth_throttled", "too many failures", false);
    }
    struct ntlm_job *n = calloc(1, sizeof *n);
    if (!n) {
        ag_ntlm_verify_free(v);
        ag_session_reset(srv->sessions, s);
        send_503(c, "out of memory");
        return AG_AUTH_REPLIED;
    }
    n->base.ops = &ntlm_ops;
    n->backend = cfg->ntlm_backend;
    n->users = users_ref(srv->users);
    n->v = v;
    return start_job(c, backend_pool(n->backend), &n->base);
}


/* --- Negotiate (Kerberos) ----------------------------------------------------------- */

struct neg_job {
    struct ag_job base;
    bool want_groups;            /* rules name groups and winbind can tell them */
    struct ag_config *cfg;       /* reference: realm_domain, read on the pool thread */
    struct ag_gss_acceptor *acc; /* reference */
    struct ag_gss_ctx *ctx;      /* moved in from the session row, moved back on continue */
    uint8_t *tok;                /* owned */
    size_t toklen;
    struct ag_gss_step step;
    char *sids;                  /* the user's SIDs from winbind, or NULL (owned) */
    int groups_rc;               /* AG_EBACKEND: the lookup failed (groups unknown) */
    const char *groups_note;     /* why the user has no winbind groups, or NULL */
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
        ag_gss_accept_blocking(n->acc, &n->ctx, n->tok, n->toklen, &n->step);
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

static void neg_done(struct ag_job *j, void *owner)
{
    struct neg_job *n = (struct neg_job *)j;
    struct conn *c = owner;
    struct ag_server *srv = c->srv;
    uint64_t now = job_returned(c, j, AG_SCHEME_NEGOTIATE, AG_BACKEND_NONE);
    struct ag_gss_step *st = &n->step;
    const char *acc = ag_gss_acceptor_name(n->acc);
    if (st->status == 1) {
        /* CONTINUE_NEEDED: the context waits in the row for the next round. */
        ag_session_set_mech(c->session, n->ctx, ag_gss_ctx_free);
        n->ctx = NULL;
        c->session->state = AG_AS_GSS_CONTINUE;
        char *h = st->outlen ? b64_wrap("", st->out, st->outlen, "") : NULL;
        send_407_cont(c, "gss_continue", "Negotiate", h ? h : "");
        free(h);
        return;
    }
    if (st->status == 0) {
        struct ag_identity id;
        char p[1100];
        ag_escape_field(p, sizeof p, st->principal, strlen(st->principal));
        int rc = ag_gss_map_name(st->principal, (enum ag_gss_name_format)c->cfg->negotiate_name_format,
                                 c->cfg->negotiate_realms, &id);
        if (rc != 0) {
            srv->auth.failed[AG_SCHEME_NEGOTIATE]++;
            srv->auth.fail_policy++;
            ag_session_handshake_end(srv->sessions, c->session);
            ag_info("conn=%llu event=auth_refused scheme=Negotiate client=%s principal=\"%s\" "
                    "reason=\"%s\"",
                    (unsigned long long)c->id, c->peer, p,
                    rc == AG_EUNSUPP ? "realm not allowed" : "unusable principal name");
            /* A valid identity the policy refuses gets 403: a 407 would make
             * the browser prompt for a password that cannot help. */
            exchange_reply(c, 403, NULL, "this account may not use the proxy");
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
                "ms=%llu",
                (unsigned long long)c->id, c->peer, p, acc,
                (unsigned long long)(now - j->queued_ms));
        if (st->outlen) {
            free(c->resp_extra);
            c->resp_extra =
                b64_wrap("Proxy-Authentication-Info: Negotiate ", st->out, st->outlen, "\r\n");
        }
        conn_set_timer(c, 0);
        exchange_proceed(c);
        return;
    }
    srv->auth.failed[AG_SCHEME_NEGOTIATE]++;
    if (strstr(st->error, "eplay"))
        srv->auth.fail_replay++;
    else if (strstr(st->error, "skew"))
        srv->auth.fail_skew++;
    else
        srv->auth.fail_policy++;
    ag_session_reset(srv->sessions, c->session);
    ag_info("conn=%llu event=auth_failed scheme=Negotiate client=%s acceptor=%s error=\"%s\"",
            (unsigned long long)c->id, c->peer, acc, st->error);
    send_407(c, "gss_failed");
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

static enum ag_auth_verdict negotiate_auth(struct conn *c, const struct ag_credentials *cr)
{
    struct ag_server *srv = c->srv;
    const struct ag_config *cfg = c->cfg;
    struct ag_session *s = c->session;
    uint64_t now = uv_now(srv->loop);
    /* Tokens up to the header limit (large PACs); never an empty or
     * malformed one to GSS. */
    size_t cap = cr->token_len / 4 * 3 + 3;
    uint8_t *tok = malloc(cap);
    size_t len = 0;
    if (!tok || ag_b64_decode(cr->token, cr->token_len, tok, cap, &len) != 0 ||
        ag_gss_token_precheck(tok, len) != 0) {
        tok_free(tok, cap);
        srv->auth.fail_malformed++;
        ag_info("conn=%llu event=auth_malformed scheme=Negotiate client=%s", (unsigned long long)c->id,
                c->peer);
        ag_session_reset(srv->sessions, s);
        send_407(c, "gss_malformed");
        return AG_AUTH_REPLIED;
    }
    bool continuing = s->state == AG_AS_GSS_CONTINUE && s->mech;
    if (!continuing)
        ag_session_reset(srv->sessions, s);
    if (ag_session_handshake_begin(srv->sessions, s, AG_SCHEME_NEGOTIATE, cfg->max_handshakes,
                                   cfg->max_handshakes_per_addr, now) != 0) {
        tok_free(tok, cap);
        srv->auth.limit_handshakes++;
        ag_session_reset(srv->sessions, s);
        send_503(c, "too many authentications in progress");
        return AG_AUTH_REPLIED;
    }
    if (s->rounds > AG_NEGOTIATE_MAX_ROUNDS) {
        tok_free(tok, cap);
        srv->auth.limit_rounds++;
        ag_session_reset(srv->sessions, s);
        c->close_after = true;
        send_407(c, "too_many_rounds");
        return AG_AUTH_REPLIED;
    }
    if (s->rounds == 1)
        srv->auth.started[AG_SCHEME_NEGOTIATE]++;
    struct neg_job *n = calloc(1, sizeof *n);
    if (!n) {
        tok_free(tok, cap);
        ag_session_reset(srv->sessions, s);
        send_503(c, "out of memory");
        return AG_AUTH_REPLIED;
    }
    n->base.ops = &neg_ops;
    n->want_groups = ag_rules_use_groups(srv->rules) && uses_winbind(cfg);
    n->cfg = ag_config_ref(c->cfg);
    n->acc = ag_gss_acceptor_ref(srv->gss);
    n->ctx = continuing ? ag_session_take_mech(s) : NULL;
    n->tok = tok;
    n->toklen = len;
    return start_job(c, AG_POOL_KERBEROS, &n->base);
}

/* --- the decision per request --------------------------------------------------- */

void ag_conn_auth_request_begin(struct conn *c)
{
    struct ag_session *s = c->session;
    /* Basic is per request: a later request without credentials (one an
     * auth=none rule admits included) is anonymous. NTLM and Negotiate
     * identify the connection and stay. */
    if (s && s->state == AG_AS_AUTHENTICATED && s->scheme == AG_SCHEME_BASIC)
        ag_session_reset(c->srv->sessions, s);
}

enum ag_auth_verdict ag_conn_auth(struct conn *c)
{
    struct ag_server *srv = c->srv;
    const struct ag_config *cfg = c->cfg;
    if (cfg->n_schemes == 0)
        return AG_AUTH_PROCEED;
    uint64_t now = uv_now(srv->loop);
    if (!c->session) {
        c->session = ag_session_add(srv->sessions, c->id, c->peer, now);
        if (!c->session) {
            send_503(c, "out of memory");
            return AG_AUTH_REPLIED;
        }
    }
    struct ag_session *s = c->session;
    s->last_use_ms = now;
    s->requests++;
    if (traced(c)) {
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
                ag_conn_user(c));
    }

    const char *v = NULL;
    size_t vl = 0;
    int n = ag_head_find(&c->head, "Proxy-Authorization", &v, &vl);
    if (n > 1) {
        /* Several credentials: which one would we believe? None. */
        srv->auth.fail_malformed++;
        ag_session_reset(srv->sessions, s);
        c->close_after = true;
        exchange_reply(c, 400, NULL, "several Proxy-Authorization fields");
        return AG_AUTH_REPLIED;
    }
    if (s->state == AG_AS_AUTHENTICATED && cfg->identity_max_age_ms &&
        now - s->authenticated_ms > cfg->identity_max_age_ms) {
        srv->auth.identity_expired++;
        ag_session_reset(srv->sessions, s);
    }
    if (n == 0) {
        if (s->state == AG_AS_AUTHENTICATED && s->scheme != AG_SCHEME_BASIC)
            return AG_AUTH_PROCEED; /* connection-based identity */
        /* Basic is per request: each request carries its own credentials. */
        ag_session_reset(srv->sessions, s);
        send_407(c, "no_credentials");
        return AG_AUTH_REPLIED;
    }
    struct ag_credentials cr;
    if (ag_credentials_parse(v, vl, &cr) != 0) {
        srv->auth.fail_malformed++;
        ag_session_reset(srv->sessions, s);
        c->close_after = memchr(v, ',', vl) != NULL;
        if (c->close_after) {
            exchange_reply(c, 400, NULL, "several credentials in one field");
            return AG_AUTH_REPLIED;
        }
        send_407(c, "malformed_credentials");
        return AG_AUTH_REPLIED;
    }
    /* A new credential on an authenticated connection: forget the old
     * identity first, then verify afresh. */
    if (s->state == AG_AS_AUTHENTICATED) {
        srv->auth.identity_reset++;
        ag_session_reset(srv->sessions, s);
    }
    /* Windows falls back to raw NTLMSSP inside Negotiate when Kerberos fails. */
    bool ntlm_in_negotiate = cr.scheme == AG_SCHEME_NEGOTIATE &&
                             ag_token_is_ntlmssp(cr.token, cr.token_len) &&
                             scheme_available(srv, cfg, AG_SCHEME_NTLM);
    if (ntlm_in_negotiate)
        return ntlm_auth(c, &cr, true);
    if (cr.token_len == 0 || !scheme_available(srv, cfg, cr.scheme)) {
        if (cr.token_len == 0)
            srv->auth.fail_malformed++;
        ag_session_reset(srv->sessions, s);
        send_407(c, cr.token_len == 0 ? "empty_token" : "unsupported_scheme");
        return AG_AUTH_REPLIED;
    }
    switch (cr.scheme) {
    case AG_SCHEME_BASIC:
        return basic_auth(c, &cr);
    case AG_SCHEME_NTLM:
        return ntlm_auth(c, &cr, false);
    case AG_SCHEME_NEGOTIATE:
        return negotiate_auth(c, &cr);
    default:
        send_407(c, "unsupported_scheme");
        return AG_AUTH_REPLIED;
    }
}

/* --- connection end and deadlines ---------------------------------------------- */

void ag_conn_auth_close(struct conn *c)
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

uint64_t ag_conn_wait_timeout(struct conn *c)
{
    uint64_t idle = c->cfg->idle_timeout_ms;
    struct ag_session *s = c->session;
    if (s && s->in_handshake) {
        uint64_t spent = uv_now(c->srv->loop) - s->handshake_ms;
        uint64_t left = spent < c->cfg->handshake_timeout_ms ? c->cfg->handshake_timeout_ms - spent : 1;
        return left < idle ? left : idle;
    }
    return idle;
}

void ag_conn_auth_timeout(struct conn *c)
{
    struct ag_server *srv = c->srv;
    srv->auth.fail_timeout++;
    srv->auth.fail_backend++;
    ag_err("conn=%llu event=auth_backend_timeout client=%s job=%s", (unsigned long long)c->id,
           c->peer, c->job ? c->job->ops->name : "-");
    if (c->job) {
        ag_job_detach(c->job);
        c->job = NULL;
    }
    ag_session_reset(srv->sessions, c->session);
    c->state = CONN_READ_HEAD;
    send_503(c, "authentication backend timeout");
}
