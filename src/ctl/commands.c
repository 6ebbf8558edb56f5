/* commands.c - what each status-socket command does (see commands.h).
 *
 * Every command is cheap on the loop: it walks the connections once
 * (through ag_server_each_conn / ag_server_kick: struct conn is private to
 * src/server), or reads counters. The only blocking check (winbind
 * ping) runs on the winbind worker pool before "status" is called. Loop
 * thread only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/negotiate.h"
#include "commands.h"
#include "session/table.h"
#include "session/throttle.h"
#include "util/log.h"

struct command {
    const char *name;
    const char *args; /* for "help" */
    void (*run)(struct ag_server *srv, const struct ag_ctl_cmd *cmd, enum ag_ctl_wb wb,
                struct ag_ctl_reply *r);
    const char *keys[4]; /* key=value arguments it takes; NULL-terminated */
    int bare_max;        /* bare words it takes */
};

static bool winbind_used(const struct ag_config *cfg)
{
    return (ag_config_scheme_enabled(cfg, AG_SCHEME_BASIC) &&
            cfg->basic_backend == AG_BACKEND_WINBIND) ||
           (ag_config_scheme_enabled(cfg, AG_SCHEME_NTLM) &&
            cfg->ntlm_backend == AG_BACKEND_WINBIND);
}

static uint64_t uptime_ms(const struct ag_server *srv)
{
    return uv_now(srv->loop) - srv->started_ms;
}

/* --- status ---------------------------------------------------------------- */

static void cmd_status(struct ag_server *srv, const struct ag_ctl_cmd *cmd, enum ag_ctl_wb wb,
                       struct ag_ctl_reply *r)
{
    const struct ag_config *cfg = srv->cfg;
    char buf[1024];
    uint64_t up = uptime_ms(srv);
    ag_ctl_kv(r, "version", AG_VERSION);
    ag_ctl_end(r);
    ag_ctl_kvu(r, "pid", (uint64_t)getpid());
    ag_ctl_end(r);
    ag_ctl_kvu(r, "uptime_s", up / 1000);
    ag_ctl_end(r);
    ag_ctl_kvu(r, "started", (uint64_t)time(NULL) - up / 1000);
    ag_ctl_end(r);
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < srv->n_listeners && o < sizeof buf; i++) {
        struct sockaddr_storage ss;
        int sl = sizeof ss;
        char host[64] = "?";
        int port = 0;
        if (uv_tcp_getsockname(&srv->listeners[i]->tcp, (struct sockaddr *)&ss, &sl) == 0) {
            if (ss.ss_family == AF_INET6) {
                uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof host);
                port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
            } else {
                uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof host);
                port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
            }
        }
        int w =
            snprintf(buf + o, sizeof buf - o, ss.ss_family == AF_INET6 ? "%s[%s]:%d" : "%s%s:%d",
                     i ? "," : "", host, port);
        if (w > 0)
            o += (size_t)w;
    }
    ag_ctl_kv(r, "listeners", buf);
    ag_ctl_end(r);
    ag_ctl_kv(r, "config", cfg->path);
    ag_ctl_end(r);
    ag_ctl_kvu(r, "config_loaded", (uint64_t)cfg->loaded);
    ag_ctl_end(r);
    ag_ctl_kv(r, "log_level", ag_log_level_name(ag_log_get_level()));
    ag_ctl_end(r);

    struct ag_gauges g;
    ag_server_gauges(srv, &g);
    ag_ctl_kvu(r, "connections", srv->n_conns);
    ag_ctl_end(r);
    ag_ctl_kvu(r, "authenticated", g.authenticated);
    ag_ctl_end(r);
    ag_ctl_kvu(r, "handshakes", g.handshakes);
    ag_ctl_end(r);
    ag_ctl_kvu(r, "tunnels", g.tunnels);
    ag_ctl_end(r);
    ag_ctl_kvu(r, "jobs_in_flight", srv->workers.in_flight);
    ag_ctl_end(r);
    ag_ctl_kvu(r, "jobs_max", srv->workers.max_jobs);
    ag_ctl_end(r);

    o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < cfg->n_schemes && o < sizeof buf; i++) {
        int w = snprintf(buf + o, sizeof buf - o, "%s%s", i ? "," : "",
                         ag_scheme_name(cfg->schemes[i]));
        if (w > 0)
            o += (size_t)w;
    }
    ag_ctl_kv(r, "schemes", cfg->n_schemes ? buf : "none");
    ag_ctl_end(r);
    if (ag_config_scheme_enabled(cfg, AG_SCHEME_NEGOTIATE)) {
        ag_ctl_kv(r, "negotiate", srv->gss ? "ready" : "unavailable");
        ag_ctl_end(r);
        if (srv->gss) {
            ag_ctl_kv(r, "acceptor", ag_gss_acceptor_name(srv->gss));
            ag_ctl_end(r);
        }
        const char *kt = cfg->keytab ? cfg->keytab : getenv("KRB5_KTNAME");
        if (kt && strncmp(kt, "FILE:", 5) == 0)
            kt += 5;
        if (!kt)
            kt = "/etc/krb5.keytab";
        ag_ctl_kv(r, "keytab", kt);
        ag_ctl_end(r);
        ag_ctl_kv(r, "keytab_readable", access(kt, R_OK) == 0 ? "yes" : "no");
        ag_ctl_end(r);
    }
    ag_ctl_kv(r, "winbind", wb == AG_CTL_WB_OK ? "ok" : wb == AG_CTL_WB_DOWN ? "down" : "unused");
    ag_ctl_end(r);
    if (srv->users) {
        ag_ctl_kv(r, "user_file", cfg->user_file);
        ag_ctl_end(r);
    }
}

/* --- sessions -------------------------------------------------------------- */

/* One row per connection with an auth-session row (connections that have
 * not sent a request yet have none). */
static bool sess_row(const struct ag_conn_info *ci, void *arg)
{
    struct ag_ctl_reply *r = arg;
    ag_ctl_kvu(r, "id", ci->id);
    ag_ctl_kv(r, "peer", ci->peer);
    ag_ctl_kv(r, "scheme", ci->scheme);
    ag_ctl_kv(r, "state", ci->state);
    ag_ctl_kv(r, "user", ci->user);
    ag_ctl_kv(r, "domain", ci->domain);
    ag_ctl_kvu(r, "age_s", ci->age_ms / 1000);
    ag_ctl_kvu(r, "idle_s", ci->idle_ms / 1000);
    ag_ctl_kvu(r, "requests", ci->requests);
    ag_ctl_kvu(r, "bytes_in", ci->bytes_in);
    ag_ctl_kvu(r, "bytes_out", ci->bytes_out);
    ag_ctl_end(r);
    return r->err == 0;
}

static void cmd_sessions(struct ag_server *srv, const struct ag_ctl_cmd *cmd, enum ag_ctl_wb wb,
                         struct ag_ctl_reply *r)
{
    struct ag_conn_filter f = {.user = ag_ctl_arg(cmd, "user"),
                               .addr = ag_ctl_arg(cmd, "addr"),
                               .scheme = ag_ctl_arg(cmd, "scheme"),
                               .state = ag_ctl_arg(cmd, "state"),
                               .with_session = true};
    ag_server_each_conn(srv, &f, sess_row, r);
}

/* --- stats ----------------------------------------------------------------- */

static void kvline(struct ag_ctl_reply *r, const char *k, uint64_t v)
{
    ag_ctl_kvu(r, k, v);
    ag_ctl_end(r);
}

static const char *scheme_key(int s)
{
    return s == AG_SCHEME_NEGOTIATE ? "negotiate" : s == AG_SCHEME_NTLM ? "ntlm" : "basic";
}

static void cmd_stats(struct ag_server *srv, const struct ag_ctl_cmd *cmd, enum ag_ctl_wb wb,
                      struct ag_ctl_reply *r)
{
    const struct ag_stats *st = &srv->stats;
    const struct ag_auth_stats *a = &srv->auth;
    char k[64];
    kvline(r, "uptime_s", uptime_ms(srv) / 1000);
    kvline(r, "conns_accepted", st->conns_accepted);
    kvline(r, "requests", st->requests);
    kvline(r, "forwarded", st->forwarded);
    kvline(r, "tunnels", st->tunnels);
    kvline(r, "responses_2xx", st->status_2xx);
    kvline(r, "responses_3xx", st->status_3xx);
    kvline(r, "responses_4xx", st->status_4xx);
    kvline(r, "responses_5xx", st->status_5xx);
    kvline(r, "auth_407_sent", a->challenges);
    for (int s = AG_SCHEME_NEGOTIATE; s <= AG_SCHEME_BASIC; s++) {
        snprintf(k, sizeof k, "auth_%s_started", scheme_key(s));
        kvline(r, k, a->started[s]);
        snprintf(k, sizeof k, "auth_%s_succeeded", scheme_key(s));
        kvline(r, k, a->succeeded[s]);
        snprintf(k, sizeof k, "auth_%s_failed", scheme_key(s));
        kvline(r, k, a->failed[s]);
    }
    kvline(r, "auth_fail_bad_password", a->fail_bad_password);
    kvline(r, "auth_fail_unknown_user", a->fail_unknown_user);
    kvline(r, "auth_fail_malformed", a->fail_malformed);
    kvline(r, "auth_fail_policy", a->fail_policy);
    kvline(r, "auth_fail_timeout", a->fail_timeout);
    kvline(r, "auth_fail_backend", a->fail_backend);
    kvline(r, "auth_fail_throttled", a->fail_throttled);
    kvline(r, "auth_fail_ntlmv1", a->fail_ntlmv1);
    kvline(r, "auth_fail_replay", a->fail_replay);
    kvline(r, "auth_fail_skew", a->fail_skew);
    kvline(r, "auth_basic_cache_hits", a->basic_cache_hits);
    kvline(r, "auth_identity_expired", a->identity_expired);
    kvline(r, "auth_identity_reset", a->identity_reset);
    kvline(r, "limit_handshakes", a->limit_handshakes);
    struct ag_session_counters sc = {0};
    if (srv->sessions)
        ag_session_counters(srv->sessions, &sc);
    kvline(r, "limit_handshakes_global", sc.refused_global);
    kvline(r, "limit_handshakes_addr", sc.refused_addr);
    struct ag_throttle_stats ts;
    ag_throttle_stats(srv->throttle, &ts);
    kvline(r, "throttle_refused_user_addr", ts.refused_pair);
    kvline(r, "throttle_refused_addr", ts.refused_addr);
    kvline(r, "throttle_refused_user", ts.refused_user);
    kvline(r, "throttle_refused_full", ts.refused_full);
    kvline(r, "throttle_ceiling_passed", ts.ceiling_passed);
    kvline(r, "throttle_wrong_passwords", ts.wrong_passwords);
    kvline(r, "throttle_fail_unrecorded", ts.fail_unrecorded);
    kvline(r, "throttle_keys_user_addr", ts.pairs);
    kvline(r, "throttle_keys_addr", ts.addrs);
    kvline(r, "throttle_keys_user", ts.users);
    kvline(r, "limit_jobs", a->limit_jobs);
    kvline(r, "limit_rounds", a->limit_rounds);
    kvline(r, "limit_accept_paused", st->limit_accept_paused);
    kvline(r, "limit_inbuf_full", st->limit_inbuf_full);
    kvline(r, "limit_chunk_size", st->limit_chunk_size);
    kvline(r, "limit_header_too_large", st->header_too_large);
    kvline(r, "bad_requests", st->bad_requests);
    kvline(r, "loops_detected", st->loops_detected);
    kvline(r, "ports_denied", st->ports_denied);
    kvline(r, "rules_groups_unavailable", st->rules_groups_unavailable);
    kvline(r, "dst_this_network", st->dst_this_network);
    kvline(r, "timeout_head", st->timeout_head);
    kvline(r, "timeout_idle", st->timeout_idle);
    kvline(r, "timeout_dns", st->timeout_dns);
    kvline(r, "timeout_connect", st->timeout_connect);
    kvline(r, "timeout_upstream", st->timeout_upstream);
    kvline(r, "timeout_tunnel", st->timeout_tunnel);
    kvline(r, "timeout_drain", st->timeout_drain);
    kvline(r, "upstream_errors", st->upstream_errors);
    kvline(r, "upstream_opened", st->upstream_opened);
    kvline(r, "upstream_reused", st->upstream_reused);
    kvline(r, "upstream_not_pooled_fds", st->upstream_not_pooled_fds);
    kvline(r, "bytes_in", st->bytes_in);
    kvline(r, "bytes_out", st->bytes_out);
    kvline(r, "jobs_submitted", srv->workers.submitted);
    kvline(r, "jobs_completed", srv->workers.completed);
    kvline(r, "jobs_detached", srv->workers.detached);
    kvline(r, "jobs_cancelled", srv->workers.cancelled);
    kvline(r, "jobs_refused_cap", srv->workers.refused_cap);
    /* per worker pool: jobs refused at its max_jobs (a stalled backend) */
    kvline(r, "jobs_refused_winbind", srv->workers.pools[AG_POOL_WINBIND].refused_cap);
    kvline(r, "jobs_refused_kerberos", srv->workers.pools[AG_POOL_KERBEROS].refused_cap);
    kvline(r, "jobs_refused_local", srv->workers.pools[AG_POOL_LOCAL].refused_cap);
    kvline(r, "reload_timeouts", srv->auth.reload_timeouts);
    kvline(r, "ctl_commands", st->ctl_commands);
    kvline(r, "ctl_denied", st->ctl_denied);
    kvline(r, "ctl_bad", st->ctl_bad);
    kvline(r, "ctl_limit", st->ctl_limit);
    /* Latency histograms: cumulative buckets, as Prometheus has them. */
    const struct ag_latency_series *h = ag_latency_series;
    for (size_t i = 0; i < AG_LAT_SERIES; i++) {
        const struct ag_latency *l = &a->latency[h[i].scheme][h[i].backend];
        ag_ctl_kv(r, "histogram", "auth_latency_ms");
        ag_ctl_kv(r, "scheme", ag_scheme_name((enum ag_scheme)h[i].scheme));
        ag_ctl_kv(r, "backend", h[i].bname);
        ag_ctl_kvu(r, "count", l->count);
        ag_ctl_kvu(r, "sum_ms", l->sum_ms);
        uint64_t cum = 0;
        for (size_t b = 0; b < AG_LAT_BUCKETS; b++) {
            cum += l->bucket[b];
            snprintf(k, sizeof k, "le_%u", (unsigned)ag_latency_bounds_ms[b]);
            ag_ctl_kvu(r, k, cum);
        }
        ag_ctl_kvu(r, "le_inf", l->count);
        ag_ctl_end(r);
    }
}

/* --- kick ------------------------------------------------------------------ */

static void kicked_row(const struct ag_conn_info *ci, void *arg)
{
    struct ag_ctl_reply *r = arg;
    ag_ctl_kvu(r, "id", ci->id);
    ag_ctl_kv(r, "peer", ci->peer);
    ag_ctl_kv(r, "user", ci->user);
    ag_ctl_end(r);
}

static void cmd_kick(struct ag_server *srv, const struct ag_ctl_cmd *cmd, enum ag_ctl_wb wb,
                     struct ag_ctl_reply *r)
{
    const char *ids = ag_ctl_arg(cmd, "id"), *user = ag_ctl_arg(cmd, "user"),
               *addr = ag_ctl_arg(cmd, "addr");
    uint64_t id = 0;
    if (!ids && !user && !addr) {
        ag_ctl_reply_error(r, AG_CTL_E_USAGE, "kick needs id=N, user=NAME or addr=IP");
        return;
    }
    if (ids) {
        char *end;
        id = strtoull(ids, &end, 10);
        if (*ids < '0' || *ids > '9' || *end) {
            ag_ctl_reply_error(r, AG_CTL_E_USAGE, "id must be a connection number");
            return;
        }
    }
    struct ag_conn_filter f = {.by_id = ids != NULL, .id = id, .user = user, .addr = addr};
    size_t n = ag_server_kick(srv, &f, kicked_row, r);
    if (n == 0)
        ag_ctl_reply_error(r, AG_CTL_E_NOTFOUND, "no connection matches");
    else
        kvline(r, "kicked", n);
}

/* --- trace ------------------------------------------------------------------ */

/* Traces every auth decision for one client address for a while (tokens are
 * never logged: decoded, non-secret fields only). */
static void cmd_trace(struct ag_server *srv, const struct ag_ctl_cmd *cmd, enum ag_ctl_wb wb,
                      struct ag_ctl_reply *r)
{
    const char *addr = ag_ctl_arg(cmd, "addr"), *secs = ag_ctl_arg(cmd, "seconds");
    uint64_t now = uv_now(srv->loop);
    if (cmd->argc == 1 && strcmp(cmd->argv[0], "off") == 0) {
        srv->trace_addr[0] = '\0';
        srv->trace_until_ms = 0;
        ag_warn("event=trace_off by=ctl");
    } else if (addr) {
        struct sockaddr_in6 a6;
        struct sockaddr_in a4;
        if (uv_ip4_addr(addr, 0, &a4) != 0 && uv_ip6_addr(addr, 0, &a6) != 0) {
            ag_ctl_reply_error(r, AG_CTL_E_USAGE, "addr must be an IP address");
            return;
        }
        unsigned long s = 300;
        if (secs) {
            char *end;
            s = strtoul(secs, &end, 10);
            if (*secs < '0' || *secs > '9' || *end || s == 0 || s > 86400) {
                ag_ctl_reply_error(r, AG_CTL_E_USAGE, "seconds must be 1..86400");
                return;
            }
        }
        snprintf(srv->trace_addr, sizeof srv->trace_addr, "%s", addr);
        srv->trace_until_ms = now + s * 1000;
        ag_warn("event=trace_on client=%s seconds=%lu by=ctl", addr, s);
    } else if (cmd->argc || secs) {
        ag_ctl_reply_error(r, AG_CTL_E_USAGE, "trace addr=IP [seconds=N] | trace off");
        return;
    }
    bool on = srv->trace_addr[0] && srv->trace_until_ms > now;
    ag_ctl_kv(r, "trace_addr", on ? srv->trace_addr : "");
    ag_ctl_kvu(r, "seconds_left", on ? (srv->trace_until_ms - now + 999) / 1000 : 0);
    ag_ctl_end(r);
}

/* --- reload, loglevel, metrics, help ---------------------------------------- */

static void cmd_reload(struct ag_server *srv, const struct ag_ctl_cmd *cmd, enum ag_ctl_wb wb,
                       struct ag_ctl_reply *r)
{
    char err[600];
    int rc = ag_server_reload(srv, err, sizeof err);
    if (rc < 0) {
        ag_ctl_reply_error(r, AG_CTL_E_FAILED, "%s", err);
        return;
    }
    ag_ctl_kv(r, "config", srv->cfg->path);
    /* Pending: winbind lookups run off the loop; the outcome is logged
     * (event=reloaded or event=reload_failed). */
    ag_ctl_kv(r, "reload", rc > 0 ? "pending" : "done");
    ag_ctl_end(r);
    ag_ctl_kvu(r, "config_loaded", (uint64_t)srv->cfg->loaded);
    ag_ctl_end(r);
}

static void cmd_loglevel(struct ag_server *srv, const struct ag_ctl_cmd *cmd, enum ag_ctl_wb wb,
                         struct ag_ctl_reply *r)
{
    if (cmd->argc == 1) {
        enum ag_log_level lvl;
        if (ag_log_level_parse(cmd->argv[0], &lvl) != 0) {
            ag_ctl_reply_error(r, AG_CTL_E_USAGE, "level must be error, warn, info or debug");
            return;
        }
        /* Logged before the change, at warn, so it shows in most settings.
         * A reload goes back to the file's log_level. */
        ag_warn("event=log_level level=%s by=ctl", ag_log_level_name(lvl));
        ag_log_set_level(lvl);
    }
    ag_ctl_kv(r, "log_level", ag_log_level_name(ag_log_get_level()));
    ag_ctl_end(r);
}

static void cmd_metrics(struct ag_server *srv, const struct ag_ctl_cmd *cmd, enum ag_ctl_wb wb,
                        struct ag_ctl_reply *r)
{
    ag_ctl_metrics(srv, r);
}

static void cmd_help(struct ag_server *srv, const struct ag_ctl_cmd *cmd, enum ag_ctl_wb wb,
                     struct ag_ctl_reply *r);

static const struct command commands[] = {
    {"status", "", cmd_status, {NULL}, 0},
    {"sessions",
     "[user=NAME] [addr=IP] [scheme=S] [state=S]",
     cmd_sessions,
     {"user", "addr", "scheme", "state"},
     0},
    {"stats", "", cmd_stats, {NULL}, 0},
    {"kick", "id=N | user=NAME | addr=IP", cmd_kick, {"id", "user", "addr", NULL}, 0},
    {"reload", "", cmd_reload, {NULL}, 0},
    {"loglevel", "[error|warn|info|debug]", cmd_loglevel, {NULL}, 1},
    {"metrics", "", cmd_metrics, {NULL}, 0},
    {"trace", "addr=IP [seconds=N] | off", cmd_trace, {"addr", "seconds", NULL}, 1},
    {"help", "", cmd_help, {NULL}, 0},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void cmd_help(struct ag_server *srv, const struct ag_ctl_cmd *cmd, enum ag_ctl_wb wb,
                     struct ag_ctl_reply *r)
{
    for (size_t i = 0; i < N_COMMANDS; i++) {
        ag_ctl_kv(r, "command", commands[i].name);
        ag_ctl_kv(r, "args", commands[i].args);
        ag_ctl_end(r);
    }
}

static const struct command *find(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

bool ag_ctl_needs_ping(const struct ag_server *srv, const struct ag_ctl_cmd *cmd)
{
    return strcmp(cmd->name, "status") == 0 && winbind_used(srv->cfg);
}

/* Arguments are checked against the command's row before it runs, so a
 * typo ("kick usr=bob") is an error, never a wider match than meant. */
static bool args_ok(const struct command *c, const struct ag_ctl_cmd *cmd, struct ag_ctl_reply *r)
{
    int bare = 0;
    for (size_t i = 0; i < cmd->argc; i++) {
        const char *eq = strchr(cmd->argv[i], '=');
        if (!eq) {
            if (++bare > c->bare_max) {
                ag_ctl_reply_error(r, AG_CTL_E_USAGE, "%s: unexpected argument (usage: %s %s)",
                                   c->name, c->name, c->args);
                return false;
            }
            continue;
        }
        bool known = false;
        for (size_t k = 0; k < 4 && c->keys[k]; k++)
            known = known || (strlen(c->keys[k]) == (size_t)(eq - cmd->argv[i]) &&
                              strncmp(c->keys[k], cmd->argv[i], (size_t)(eq - cmd->argv[i])) == 0);
        if (!known || eq[1] == '\0') {
            ag_ctl_reply_error(r, AG_CTL_E_USAGE, "%s: bad argument (usage: %s %s)", c->name,
                               c->name, c->args);
            return false;
        }
    }
    return true;
}

void ag_ctl_run(struct ag_server *srv, const struct ag_ctl_cmd *cmd, enum ag_ctl_wb wb,
                struct ag_ctl_reply *r)
{
    const struct command *c = find(cmd->name);
    if (!c) {
        char shown[64];
        ag_ctl_reply_error(r, AG_CTL_E_USAGE, "unknown command '%s' (try help)",
                           ag_escape(shown, sizeof shown, cmd->name, strlen(cmd->name)));
        return;
    }
    if (!args_ok(c, cmd, r))
        return;
    c->run(srv, cmd, wb, r);
}
