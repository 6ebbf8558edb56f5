/* stats.c - the counter table generated from stats.def, the view its rows
 * read, and the verification latency histograms of struct ag_auth_stats. */
#include "stats.h"

#include <string.h>

#include "conn.h"
#include "server.h"
#include "session/table.h"
#include "util/log.h"

/* Milliseconds. Local verification takes well under 1 ms, winbind a few,
 * Kerberos with a replay cache 1-10; the top buckets catch a slow domain
 * controller before handshake_timeout (30 s by default) gives up. */
const uint32_t ag_latency_bounds_ms[AG_LAT_BUCKETS] = {1,   2,   5,    10,   25,    50,
                                                       100, 250, 1000, 2500, 10000, 30000};

const struct ag_latency_series ag_latency_series[AG_LAT_SERIES] = {
    {AG_SCHEME_NEGOTIATE, AG_BACKEND_NONE, "gss"},    {AG_SCHEME_NTLM, AG_BACKEND_LOCAL, "local"},
    {AG_SCHEME_NTLM, AG_BACKEND_WINBIND, "winbind"},  {AG_SCHEME_BASIC, AG_BACKEND_LOCAL, "local"},
    {AG_SCHEME_BASIC, AG_BACKEND_WINBIND, "winbind"},
};

void ag_auth_latency_record(struct ag_auth_stats *a, int scheme, int backend, uint64_t ms)
{
    if (scheme < 0 || scheme >= 4 || backend < 0 || backend >= 3)
        return;
    struct ag_latency *h = &a->latency[scheme][backend];
    size_t i = 0;
    while (i < AG_LAT_BUCKETS && ms > ag_latency_bounds_ms[i])
        i++;
    h->bucket[i]++;
    h->count++;
    h->sum_ms += ms;
}

/* --- the table ------------------------------------------------------------- */

/* One getter per row: the cast widens the size_t and uint32_t fields. */
#define AG_STAT_GET(src, field, expr)                                                              \
    static uint64_t get_##src##_##field(const struct ag_stats_view *v, size_t i)                   \
    {                                                                                              \
        (void)i;                                                                                   \
        return (uint64_t)(expr);                                                                   \
    }
#define AG_STAT_SERVER(f, ...) AG_STAT_GET(server, f, v->srv->f)
#define AG_STAT_AUTH(f, ...) AG_STAT_GET(auth, f, v->auth->f)
#define AG_STAT_SCHEME(f, ...) AG_STAT_GET(scheme, f, v->auth->f[AG_SCHEME_NEGOTIATE + i])
#define AG_STAT_SESSION(f, ...) AG_STAT_GET(session, f, v->sessions.f)
#define AG_STAT_THROTTLE(f, ...) AG_STAT_GET(throttle, f, v->throttle.f)
#define AG_STAT_WORKERS(f, ...) AG_STAT_GET(workers, f, v->workers->f)
#define AG_STAT_POOL(f, ...) AG_STAT_GET(pool, f, v->workers->pools[i].f)
#define AG_STAT_GAUGE(f, ...) AG_STAT_GET(gauge, f, v->f)
#include "stats.def"
#undef AG_STAT_GET

#define AG_STAT_ROW(src, dim, field, kind, key, metric, label, help)                               \
    {key, metric, label, help, AG_STAT_KIND_##kind, AG_STAT_DIM_##dim, get_##src##_##field},
const struct ag_stat_row ag_stat_rows[] = {
#define AG_STAT_SERVER(f, ...) AG_STAT_ROW(server, NONE, f, __VA_ARGS__)
#define AG_STAT_AUTH(f, ...) AG_STAT_ROW(auth, NONE, f, __VA_ARGS__)
#define AG_STAT_SCHEME(f, ...) AG_STAT_ROW(scheme, SCHEME, f, __VA_ARGS__)
#define AG_STAT_SESSION(f, ...) AG_STAT_ROW(session, NONE, f, __VA_ARGS__)
#define AG_STAT_THROTTLE(f, ...) AG_STAT_ROW(throttle, NONE, f, __VA_ARGS__)
#define AG_STAT_WORKERS(f, ...) AG_STAT_ROW(workers, NONE, f, __VA_ARGS__)
#define AG_STAT_POOL(f, ...) AG_STAT_ROW(pool, POOL, f, __VA_ARGS__)
#define AG_STAT_GAUGE(f, ...) AG_STAT_ROW(gauge, NONE, f, __VA_ARGS__)
#include "stats.def"
};
#undef AG_STAT_ROW
const size_t ag_stat_n_rows = sizeof ag_stat_rows / sizeof ag_stat_rows[0];

const struct ag_stat_family ag_stat_families[] = {
#define AG_STAT_FAMILY(metric, help) {metric, help},
#include "stats.def"
};
const size_t ag_stat_n_families = sizeof ag_stat_families / sizeof ag_stat_families[0];

/* The order of enum ag_scheme from AG_SCHEME_NEGOTIATE, lower-case as
 * stats keys and metric labels have always spelt them. */
static const char *const scheme_names[] = {"negotiate", "ntlm", "basic"};
/* By enum ag_pool_id, as stats keys and metric labels spell the pools. */
static const char *const pool_names[AG_POOL_N] = {
    [AG_POOL_WINBIND] = "winbind", [AG_POOL_KERBEROS] = "kerberos", [AG_POOL_LOCAL] = "local"};

size_t ag_stat_dim_size(enum ag_stat_dim d)
{
    switch (d) {
    case AG_STAT_DIM_SCHEME:
        return sizeof scheme_names / sizeof scheme_names[0];
    case AG_STAT_DIM_POOL:
        return AG_POOL_N;
    default:
        return 1;
    }
}

const char *ag_stat_dim_name(enum ag_stat_dim d, size_t i)
{
    if (i >= ag_stat_dim_size(d))
        return NULL;
    switch (d) {
    case AG_STAT_DIM_SCHEME:
        return scheme_names[i];
    case AG_STAT_DIM_POOL:
        return pool_names[i];
    default:
        return NULL;
    }
}

size_t ag_stat_expand(char *out, size_t n, const char *tmpl, const char *name)
{
    const char *pct = name ? strstr(tmpl, "%s") : NULL;
    size_t head = pct ? (size_t)(pct - tmpl) : strlen(tmpl);
    size_t nl = pct ? strlen(name) : 0, tail = pct ? strlen(pct + 2) : 0;
    size_t len = head + nl + tail;
    if (n == 0)
        return len;
    /* truncates (a test checks that no row comes near AG_STAT_NAME_MAX) */
    size_t o = 0;
    for (size_t k = 0; k < head && o + 1 < n; k++)
        out[o++] = tmpl[k];
    for (size_t k = 0; k < nl && o + 1 < n; k++)
        out[o++] = name[k];
    for (size_t k = 0; k < tail && o + 1 < n; k++)
        out[o++] = pct[2 + k];
    out[o] = '\0';
    return len;
}

const char *ag_stat_family_help(const struct ag_stat_row *r)
{
    for (size_t i = 0; i < ag_stat_n_families; i++)
        if (strcmp(ag_stat_families[i].metric, r->metric) == 0)
            return ag_stat_families[i].help;
    return r->help;
}

/* Adds one loop's counters into the view's sums (on that loop's thread:
 * its counters are plain fields, written without a lock or an atomic). */
static void add_loop(struct ag_server *srv, void *arg)
{
    struct ag_stats_view *v = arg;
    struct ag_stats *d = &v->srv_sum;
    const struct ag_stats *s = &srv->stats;
#define AG_STAT_SERVER(f, ...) d->f += s->f;
#include "stats.def"
    struct ag_auth_stats *da = &v->auth_sum;
    const struct ag_auth_stats *sa = &srv->auth;
#define AG_STAT_AUTH(f, ...) da->f += sa->f;
#define AG_STAT_SCHEME(f, ...)                                                                     \
    for (size_t k = 0; k < 4; k++)                                                                 \
        da->f[k] += sa->f[k];
#include "stats.def"
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < 3; j++) {
            struct ag_latency *dl = &da->latency[i][j];
            const struct ag_latency *sl = &sa->latency[i][j];
            for (size_t b = 0; b <= AG_LAT_BUCKETS; b++)
                dl->bucket[b] += sl->bucket[b];
            dl->count += sl->count;
            dl->sum_ms += sl->sum_ms;
        }
    struct ag_workers *dw = &v->workers_sum;
    const struct ag_workers *sw = &srv->workers;
    dw->in_flight += sw->in_flight;
    dw->submitted += sw->submitted;
    dw->completed += sw->completed;
    dw->detached += sw->detached;
    dw->cancelled += sw->cancelled;
    dw->refused_cap += sw->refused_cap;
    for (size_t i = 0; i < AG_POOL_N; i++) {
        dw->pools[i].in_flight += sw->pools[i].in_flight;
        dw->pools[i].submitted += sw->pools[i].submitted;
        dw->pools[i].completed += sw->pools[i].completed;
        dw->pools[i].refused_cap += sw->pools[i].refused_cap;
    }
    ag_list_for_each (c, &srv->conns, const struct conn, node)
        v->tunnels_open += c->state == CONN_TUNNEL;
}

void ag_server_gauges(struct ag_server *srv, struct ag_gauges *out)
{
    struct ag_stats_view v;
    ag_stats_view_take(srv, &v);
    out->authenticated = v.authenticated;
    out->handshakes = v.handshakes;
    out->tunnels = v.tunnels_open;
}

void ag_stats_view_take(struct ag_server *srv, struct ag_stats_view *v)
{
    memset(v, 0, sizeof *v);
    v->srv = &v->srv_sum;
    v->auth = &v->auth_sum;
    v->workers = &v->workers_sum;
    if (srv->n_shards == 0)
        add_loop(srv, v);
    for (unsigned i = 0; i < srv->n_shards; i++)
        ag_server_call(srv->shards[i], add_loop, v);
    if (srv->sessions)
        ag_session_counters(srv->sessions, &v->sessions);
    ag_throttle_stats(srv->throttle, &v->throttle);
    v->connections = ag_server_conns(srv);
    v->authenticated = v->sessions.authenticated;
    v->handshakes = v->sessions.handshakes;
    v->log_write_failures = ag_log_write_failures();
}
