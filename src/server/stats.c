/* stats.c - the verification latency histograms of struct ag_auth_stats. */
#include "conn.h"
#include "server.h"
#include "session/table.h"

/* Milliseconds. Local verification takes well under 1 ms, winbind a few,
 * Kerberos with a replay cache 1-10; the top buckets catch a slow domain
 * controller before handshake_timeout (30 s by default) gives up. */
const uint32_t ag_latency_bounds_ms[AG_LAT_BUCKETS] = {1,   2,   5,    10,   25,   50,
                                                       100, 250, 1000, 2500, 10000, 30000};

const struct ag_latency_series ag_latency_series[AG_LAT_SERIES] = {
    {AG_SCHEME_NEGOTIATE, AG_BACKEND_NONE, "gss"},
    {AG_SCHEME_NTLM, AG_BACKEND_LOCAL, "local"},
    {AG_SCHEME_NTLM, AG_BACKEND_WINBIND, "winbind"},
    {AG_SCHEME_BASIC, AG_BACKEND_LOCAL, "local"},
    {AG_SCHEME_BASIC, AG_BACKEND_WINBIND, "winbind"},
};

void ag_server_gauges(const struct ag_server *srv, struct ag_gauges *out)
{
    struct ag_session_counters sc = {0};
    if (srv->sessions)
        ag_session_counters(srv->sessions, &sc);
    out->authenticated = sc.authenticated;
    out->handshakes = sc.handshakes;
    out->tunnels = 0;
    for (const struct conn *c = srv->conns; c; c = c->next)
        out->tunnels += c->state == CONN_TUNNEL;
}

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
