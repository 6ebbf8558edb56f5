/* auth_state.c - the server-wide authentication state (see auth.h): the
 * user file, the rules, the Kerberos acceptor, winbindd's names for NTLM
 * challenges and the accepted NTLM target names. Built at start-up, checked
 * by "authgate -t", swapped in by a reload (auth_reload.c), freed at exit.
 * Loop thread only (the blocking winbind reads run at start-up, before the
 * loop serves anyone, or on the winbind pool for a reload). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authgate/err.h"
#include "auth/negotiate.h"
#include "auth/ntlm.h"
#include "auth/userfile.h"
#include "auth/verify_winbind.h"
#include "auth_int.h"
#include "tls.h"
#include "rules/rules.h"
#include "session/basic_cache.h"
#include "session/table.h"
#include "session/throttle.h"

struct ag_users *auth_users_ref(struct ag_users *u)
{
    /* Atomic: jobs of every event loop (workers N) hold references. */
    if (u)
        __atomic_add_fetch(&u->refs, 1, __ATOMIC_RELAXED);
    return u;
}

void auth_users_unref(struct ag_users *u)
{
    if (u && __atomic_sub_fetch(&u->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        ag_userfile_free(u->uf);
        free(u);
    }
}

int auth_load_users(const struct ag_config *cfg, struct ag_users **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!ag_config_uses_backend(cfg, AG_BACKEND_LOCAL) || !cfg->user_file)
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

/* Negotiate is offered only with working acceptor credentials; without them
 * one clear line says why (missing keytab, no key for the name). */
static struct ag_gss_acceptor *load_acceptor(const struct ag_config *cfg)
{
    if (!ag_config_scheme_enabled(cfg, AG_SCHEME_NEGOTIATE))
        return NULL;
    char name[300], err[700];
    ag_config_acceptor_name(cfg, name, sizeof name);
    struct ag_gss_acceptor *a = ag_gss_acceptor_new(cfg->keytab, name, err, sizeof err);
    if (!a)
        ag_err("event=negotiate_unavailable error=\"%s\" note=\"Negotiate is not offered\"", err);
    else
        ag_info("event=negotiate_ready acceptor=%s keytab=%s", ag_gss_acceptor_name(a),
                cfg->keytab ? cfg->keytab : "(default)");
    return a;
}

int auth_wb_group(void *arg, const char *name, char *sid, size_t cap)
{
    return ag_wb_name_to_sid_blocking(name, sid, cap);
}

/* Group names resolve through winbind once per load: here at start-up
 * (before the loop serves anyone) and for -t; a reload resolves them on the
 * winbind pool (reload_run below). */
static int load_rules(const struct ag_config *cfg, struct ag_rules **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!cfg->rules_file)
        return 0;
    *out = ag_rules_load(cfg->rules_file,
                         ag_config_uses_backend(cfg, AG_BACKEND_WINBIND) ? auth_wb_group : NULL,
                         NULL, err, errlen);
    if (!*out)
        return -1;
    if (ag_rules_check_routes(*out, cfg, err, errlen) != 0) {
        ag_rules_free(*out);
        *out = NULL;
        return -1;
    }
    ag_info("event=rules_loaded file=%s rules=%zu", cfg->rules_file, ag_rules_count(*out));
    return 0;
}

/* With the winbind backend, NTLM challenges name winbind's own domain and
 * computer (what Windows clients expect of a domain member); read once per
 * (re)load, a blocking call like the rules' group lookups. */
bool auth_wants_wb_names(const struct ag_config *cfg)
{
    return ag_config_scheme_enabled(cfg, AG_SCHEME_NTLM) && cfg->ntlm_backend == AG_BACKEND_WINBIND;
}

void auth_read_wb_names(struct auth_wb_names *w)
{
    w->rc = ag_wb_names_blocking(w->nd, w->dd, w->nn, sizeof w->nd);
}

/* Loop thread: the names read (or not) take effect. */
static void set_wb_names(struct ag_server *srv, const struct ag_config *cfg,
                         const struct auth_wb_names *w)
{
    srv->wb_nb_domain[0] = srv->wb_dns_domain[0] = srv->wb_nb_name[0] = '\0';
    if (!auth_wants_wb_names(cfg))
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
    struct auth_wb_names w = {.rc = AG_EIO};
    if (auth_wants_wb_names(cfg))
        auth_read_wb_names(&w);
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
    threads[AG_POOL_KERBEROS] = cfg->kerberos_threads          ? cfg->kerberos_threads
                                : ncpu < AG_WORKER_THREADS_MAX ? ncpu
                                                               : AG_WORKER_THREADS_MAX;
    threads[AG_POOL_LOCAL] = cfg->local_threads;
    if (ag_workers_start(&srv->workers, srv->loop, threads, cfg->max_jobs) != 0) {
        snprintf(err, errlen, "cannot start the verification threads");
        return -1;
    }
    ag_info("event=workers_started winbind=%u kerberos=%u local=%u", threads[AG_POOL_WINBIND],
            threads[AG_POOL_KERBEROS], threads[AG_POOL_LOCAL]);
    if (load_rules(cfg, &srv->rules, err, errlen) != 0)
        return -1;
    if (ag_tls_ctx_load(cfg, ag_tls_wanted(cfg), NULL, &srv->tls_ctx, err, errlen) != 0)
        return -1;
    load_wb_names(srv, cfg);
    load_ntlm_spns(srv, cfg);
    if (ag_config_uses_backend(cfg, AG_BACKEND_LOCAL) && !cfg->user_file)
        ag_warn("event=no_user_file note=\"a local backend without user_file: Basic/NTLM "
                "through it are not offered\"");
    return auth_load_users(cfg, &srv->users, err, errlen);
}

/* Loop thread: the prepared state of ncfg takes over (see auth_int.h). */
void auth_swap(struct ag_server *srv, const struct ag_config *ncfg, struct ag_rules *rules,
               struct ag_users *u, const struct auth_wb_names *names)
{
    /* The old rules, user file and acceptor stay until every other loop has
     * taken the new ones (ag_server_share, right after this reload). */
    ag_auth_retire_free(srv);
    srv->retired_rules = srv->rules;
    srv->rules = rules;
    ag_wb_user_sids_cache_clear(); /* groups may have changed with the rules */
    set_wb_names(srv, ncfg, names);
    load_ntlm_spns(srv, ncfg);
    srv->retired_users = srv->users;
    srv->users = u;
    srv->retired_gss = srv->gss;
    srv->gss = load_acceptor(ncfg);
    /* Cached Basic results were checked against the old backend/file. */
    ag_basic_cache_clear(srv->basic_cache);
    struct ag_throttle_limits lim = throttle_limits(ncfg);
    ag_throttle_set_limits(srv->throttle, &lim);
    /* The core's cap, read by every loop's submit under its lock. */
    uv_mutex_lock(&srv->workers.mu);
    srv->workers.max_jobs = ncfg->max_jobs;
    uv_mutex_unlock(&srv->workers.mu);
}

/* Lets go of one set of rules, user file and acceptor (the one in force,
 * or the one a reload retired). */
static void drop_state(struct ag_rules **r, struct ag_users **u, struct ag_gss_acceptor **g)
{
    ag_rules_free(*r);
    *r = NULL;
    auth_users_unref(*u);
    *u = NULL;
    ag_gss_acceptor_unref(*g);
    *g = NULL;
}

void ag_auth_retire_free(struct ag_server *srv)
{
    drop_state(&srv->retired_rules, &srv->retired_users, &srv->retired_gss);
}

int ag_auth_check_files(const struct ag_config *cfg, char *err, size_t errlen)
{
    struct ag_users *u;
    struct ag_rules *r;
    if (auth_load_users(cfg, &u, err, errlen) != 0)
        return -1;
    auth_users_unref(u);
    if (load_rules(cfg, &r, err, errlen) != 0)
        return -1;
    ag_rules_free(r);
    struct ssl_ctx_st *tls;
    if (ag_tls_ctx_load(cfg, ag_tls_wanted(cfg), NULL, &tls, err, errlen) != 0)
        return -1;
    ag_tls_ctx_unref(tls);
    return 0;
}

void ag_auth_shutdown(struct ag_server *srv)
{
    ag_auth_retire_free(srv);
    ag_wb_user_sids_cache_clear();
    drop_state(&srv->rules, &srv->users, &srv->gss);
    ag_basic_cache_free(srv->basic_cache);
    srv->basic_cache = NULL;
    ag_throttle_free(srv->throttle);
    srv->throttle = NULL;
    ag_session_table_free(srv->sessions);
    srv->sessions = NULL;
    ag_tls_ctx_unref(srv->tls_next);
    srv->tls_next = NULL;
    ag_tls_ctx_unref(srv->tls_ctx);
    srv->tls_ctx = NULL;
}
