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
#include "server/stats.h"
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

    /* Every loop's connections and jobs, summed on their own threads. */
    struct ag_stats_view v;
    ag_stats_view_take(srv, &v);
    ag_ctl_kvu(r, "workers", srv->n_shards ? srv->n_shards : 1);
    ag_ctl_end(r);
    ag_ctl_kvu(r, "connections", v.connections);
    ag_ctl_end(r);
    ag_ctl_kvu(r, "authenticated", v.authenticated);
    ag_ctl_end(r);
    ag_ctl_kvu(r, "handshakes", v.handshakes);
    ag_ctl_end(r);
    ag_ctl_kvu(r, "tunnels", v.tunnels_open);
    ag_ctl_end(r);
    ag_ctl_kvu(r, "jobs_in_flight", v.workers->in_flight);
    ag_ctl_end(r);
    /* One row per loop when there are several: how the kernel spreads
     * connections over them. */
    for (unsigned i = 0; srv->n_shards > 1 && i < srv->n_shards; i++) {
        struct ag_loop_info li;
        if (!ag_server_loop_info(srv, i, &li))
            continue;
        ag_ctl_kvu(r, "worker", i);
        ag_ctl_kvu(r, "worker_connections", li.connections);
        ag_ctl_kvu(r, "worker_accepted", li.accepted);
        ag_ctl_end(r);
    }
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
    if (cfg->pac_body) {
        ag_ctl_kv(r, "pac_file", cfg->pac_file);
        ag_ctl_end(r);
        ag_ctl_kvu(r, "pac_bytes", cfg->pac_len);
        ag_ctl_end(r);
    }
    /* One row per parent: in back-off now, and failures since start. */
    for (size_t i = 0; i < cfg->n_parents; i++) {
        const struct ag_parent *p = &cfg->parents[i];
        bool down;
        uint64_t failures;
        ag_server_parent_health(p, &down, &failures);
        snprintf(buf, sizeof buf, strchr(p->host, ':') ? "[%s]:%u" : "%s:%u", p->host,
                 (unsigned)p->port);
        ag_ctl_kv(r, "parent", p->name);
        ag_ctl_kv(r, "parent_address", buf);
        ag_ctl_kv(r, "parent_auth",
                  p->auth == AG_PARENT_AUTH_BASIC       ? "basic"
                  : p->auth == AG_PARENT_AUTH_NEGOTIATE ? "negotiate"
                                                        : "none");
        ag_ctl_kv(r, "parent_tls", p->tls ? "on" : "off");
        ag_ctl_kv(r, "parent_state", down ? "backoff" : "up");
        ag_ctl_kvu(r, "parent_failures", failures);
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
    ag_ctl_kvu(r, "worker", ci->worker); /* last: older parsers read the columns before it */
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

void ag_ctl_stats_counters(const struct ag_stats_view *v, struct ag_ctl_reply *r)
{
    char k[AG_STAT_NAME_MAX];
    for (size_t n = 0; n < ag_stat_n_rows; n++) {
        const struct ag_stat_row *row = &ag_stat_rows[n];
        for (size_t i = 0; i < ag_stat_dim_size(row->dim); i++) {
            ag_stat_expand(k, sizeof k, row->key, ag_stat_dim_name(row->dim, i));
            kvline(r, k, row->get(v, i));
        }
    }
}

static void cmd_stats(struct ag_server *srv, const struct ag_ctl_cmd *cmd, enum ag_ctl_wb wb,
                      struct ag_ctl_reply *r)
{
    char k[64];
    kvline(r, "uptime_s", uptime_ms(srv) / 1000);
    /* every counter and gauge of the table in server/stats.def */
    struct ag_stats_view v;
    ag_stats_view_take(srv, &v);
    const struct ag_auth_stats *a = v.auth; /* summed over every loop */
    ag_ctl_stats_counters(&v, r);
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
        ag_server_share(srv);
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
        ag_server_share(srv); /* every loop traces */
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
    ag_ctl_metrics(srv, AG_METRICS_PROMETHEUS, r);
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
    return strcmp(cmd->name, "status") == 0 && ag_config_uses_backend(srv->cfg, AG_BACKEND_WINBIND);
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
