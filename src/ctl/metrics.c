/* metrics.c - the counters in Prometheus text format (version 0.0.4).
 *
 * Names follow Prometheus conventions: authgate_ prefix, base units
 * (seconds, bytes), _total on counters, one family per HELP/TYPE pair, labels
 * for the dimension that varies (scheme, reason, limit, phase). Label values
 * are fixed strings from this file, never client input. Loop thread only. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "session/table.h"
#include "session/throttle.h"

static void family(struct ag_ctl_reply *r, const char *name, const char *type, const char *help)
{
    ag_ctl_raw(r, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(struct ag_ctl_reply *r, const char *name, const char *type, const char *help,
                uint64_t v)
{
    family(r, name, type, help);
    ag_ctl_raw(r, "%s %llu\n", name, (unsigned long long)v);
}

static uint64_t rss_bytes(void)
{
    /* /proc/self/statm: size resident shared ... in pages; a tiny read. */
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return (uint64_t)resident * (uint64_t)(page > 0 ? page : 4096);
}

static const char *scheme_label(int s)
{
    return s == AG_SCHEME_NEGOTIATE ? "negotiate" : s == AG_SCHEME_NTLM ? "ntlm" : "basic";
}

void ag_ctl_metrics(struct ag_server *srv, struct ag_ctl_reply *r)
{
    const struct ag_stats *st = &srv->stats;
    const struct ag_auth_stats *a = &srv->auth;
    uint64_t up_s = (uv_now(srv->loop) - srv->started_ms) / 1000;

    family(r, "authgate_build_info", "gauge", "Version of the running daemon.");
    ag_ctl_raw(r, "authgate_build_info{version=\"%s\"} 1\n", AG_VERSION);
    one(r, "authgate_start_time_seconds", "gauge", "Start time of the daemon, Unix seconds.",
        (uint64_t)time(NULL) - up_s);
    one(r, "authgate_config_load_time_seconds", "gauge",
        "When the configuration in force was read, Unix seconds.", (uint64_t)srv->cfg->loaded);
    one(r, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", rss_bytes());

    struct ag_gauges g;
    ag_server_gauges(srv, &g);
    one(r, "authgate_connections", "gauge", "Client connections open.", srv->n_conns);
    one(r, "authgate_connections_authenticated", "gauge",
        "Client connections with a proven identity.", g.authenticated);
    one(r, "authgate_handshakes_in_progress", "gauge",
        "Multi-round authentication handshakes in progress.", g.handshakes);
    one(r, "authgate_tunnels_open", "gauge", "CONNECT tunnels established.", g.tunnels);
    one(r, "authgate_jobs_in_flight", "gauge", "Verification jobs queued or running.",
        srv->workers.in_flight);

    one(r, "authgate_connections_accepted_total", "counter", "Client connections accepted.",
        st->conns_accepted);
    one(r, "authgate_requests_total", "counter", "Requests received.", st->requests);
    one(r, "authgate_requests_forwarded_total", "counter", "Requests forwarded upstream.",
        st->forwarded);
    one(r, "authgate_tunnels_total", "counter", "CONNECT tunnels established.", st->tunnels);
    family(r, "authgate_responses_total", "counter", "Responses sent, by status class.");
    ag_ctl_raw(r, "authgate_responses_total{class=\"2xx\"} %llu\n",
               (unsigned long long)st->status_2xx);
    ag_ctl_raw(r, "authgate_responses_total{class=\"3xx\"} %llu\n",
               (unsigned long long)st->status_3xx);
    ag_ctl_raw(r, "authgate_responses_total{class=\"4xx\"} %llu\n",
               (unsigned long long)st->status_4xx);
    ag_ctl_raw(r, "authgate_responses_total{class=\"5xx\"} %llu\n",
               (unsigned long long)st->status_5xx);
    one(r, "authgate_auth_challenges_total", "counter", "407 responses sent.", a->challenges);

    static const struct {
        const char *name, *help;
        size_t off;
    } per_scheme[] = {
        {"authgate_auth_handshakes_started_total", "Handshakes started, by scheme.",
         offsetof(struct ag_auth_stats, started)},
        {"authgate_auth_handshakes_succeeded_total", "Handshakes that proved an identity.",
         offsetof(struct ag_auth_stats, succeeded)},
        {"authgate_auth_handshakes_failed_total", "Handshakes that failed, by scheme.",
         offsetof(struct ag_auth_stats, failed)},
    };
    for (size_t i = 0; i < sizeof per_scheme / sizeof per_scheme[0]; i++) {
        const uint64_t *v = (const uint64_t *)((const char *)a + per_scheme[i].off);
        family(r, per_scheme[i].name, "counter", per_scheme[i].help);
        for (int s = AG_SCHEME_NEGOTIATE; s <= AG_SCHEME_BASIC; s++)
            ag_ctl_raw(r, "%s{scheme=\"%s\"} %llu\n", per_scheme[i].name, scheme_label(s),
                       (unsigned long long)v[s]);
    }

    static const struct {
        const char *label;
        size_t off;
    } reasons[] = {
        {"bad_password", offsetof(struct ag_auth_stats, fail_bad_password)},
        {"unknown_user", offsetof(struct ag_auth_stats, fail_unknown_user)},
        {"malformed", offsetof(struct ag_auth_stats, fail_malformed)},
        {"policy", offsetof(struct ag_auth_stats, fail_policy)},
        {"timeout", offsetof(struct ag_auth_stats, fail_timeout)},
        {"backend", offsetof(struct ag_auth_stats, fail_backend)},
        {"throttled", offsetof(struct ag_auth_stats, fail_throttled)},
        {"ntlmv1", offsetof(struct ag_auth_stats, fail_ntlmv1)},
        {"replay", offsetof(struct ag_auth_stats, fail_replay)},
        {"clock_skew", offsetof(struct ag_auth_stats, fail_skew)},
    };
    family(r, "authgate_auth_failures_total", "counter", "Failed verifications, by reason.");
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        ag_ctl_raw(r, "authgate_auth_failures_total{reason=\"%s\"} %llu\n", reasons[i].label,
                   (unsigned long long)*(const uint64_t *)((const char *)a + reasons[i].off));
    one(r, "authgate_auth_basic_cache_hits_total", "counter",
        "Basic credentials answered from the cache.", a->basic_cache_hits);
    one(r, "authgate_auth_identity_expired_total", "counter",
        "Identities dropped by identity_max_age.", a->identity_expired);
    one(r, "authgate_auth_identity_reset_total", "counter",
        "Identities reset by new credentials on the connection.", a->identity_reset);

    one(r, "authgate_rules_groups_unavailable_total", "counter",
        "Requests refused (503) because a group= rule met a failed group lookup.",
        st->rules_groups_unavailable);

    struct ag_throttle_stats ts;
    ag_throttle_stats(srv->throttle, &ts);
    struct ag_session_counters sc = {0};
    if (srv->sessions)
        ag_session_counters(srv->sessions, &sc);

    family(r, "authgate_limit_hits_total", "counter", "Times a configured ceiling was hit.");
    const struct {
        const char *label;
        uint64_t v;
    } limits[] = {
        {"handshakes", a->limit_handshakes},  {"jobs", a->limit_jobs},
        {"rounds", a->limit_rounds},          {"accept_paused", st->limit_accept_paused},
        {"inbuf_full", st->limit_inbuf_full}, {"header_max", st->header_too_large},
        {"ctl_connections", st->ctl_limit},   {"chunk_size", st->limit_chunk_size},
        {"fail_max_per_user_addr", ts.refused_pair}, {"fail_max_per_addr", ts.refused_addr},
        {"fail_max_per_user", ts.refused_user},      {"throttle_table_full", ts.refused_full},
        {"throttle_unrecorded", ts.fail_unrecorded},
        {"max_handshakes", sc.refused_global},       {"max_handshakes_per_addr", sc.refused_addr},
    };
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++)
        ag_ctl_raw(r, "authgate_limit_hits_total{limit=\"%s\"} %llu\n", limits[i].label,
                   (unsigned long long)limits[i].v);

    family(r, "authgate_timeouts_total", "counter", "Deadlines that expired, by phase.");
    const struct {
        const char *label;
        uint64_t v;
    } tmo[] = {
        {"head", st->timeout_head},         {"idle", st->timeout_idle},
        {"dns", st->timeout_dns},           {"connect", st->timeout_connect},
        {"upstream", st->timeout_upstream}, {"tunnel", st->timeout_tunnel},
        {"drain", st->timeout_drain},
    };
    for (size_t i = 0; i < sizeof tmo / sizeof tmo[0]; i++)
        ag_ctl_raw(r, "authgate_timeouts_total{phase=\"%s\"} %llu\n", tmo[i].label,
                   (unsigned long long)tmo[i].v);

    one(r, "authgate_bad_requests_total", "counter", "Malformed requests refused.",
        st->bad_requests);
    one(r, "authgate_loops_detected_total", "counter", "Requests refused as forwarding loops.",
        st->loops_detected);
    one(r, "authgate_connect_ports_denied_total", "counter",
        "CONNECT requests to a port not in connect_ports.", st->ports_denied);
    one(r, "authgate_dst_this_network_total", "counter",
        "Requests refused for a destination of 0.0.0.0/8 or :: (literal or resolved).",
        st->dst_this_network);
    one(r, "authgate_upstream_errors_total", "counter", "Upstream connection or protocol errors.",
        st->upstream_errors);
    one(r, "authgate_upstream_connections_opened_total", "counter", "Upstream connections opened.",
        st->upstream_opened);
    one(r, "authgate_upstream_connections_reused_total", "counter",
        "Requests sent on a pooled upstream connection.", st->upstream_reused);
    one(r, "authgate_received_bytes_total", "counter", "Bytes received from clients.",
        st->bytes_in);
    one(r, "authgate_sent_bytes_total", "counter", "Bytes sent to clients.", st->bytes_out);
    one(r, "authgate_jobs_submitted_total", "counter", "Verification jobs submitted.",
        srv->workers.submitted);
    one(r, "authgate_jobs_refused_total", "counter", "Verification jobs refused at max_jobs.",
        srv->workers.refused_cap);
    one(r, "authgate_reload_timeouts_total", "counter",
        "Reloads given up waiting for winbind (the old configuration stayed).",
        srv->auth.reload_timeouts);
    one(r, "authgate_ctl_commands_total", "counter", "Status-socket commands served.",
        st->ctl_commands);
    one(r, "authgate_ctl_denied_total", "counter", "Status-socket peers refused.", st->ctl_denied);
    one(r, "authgate_ctl_bad_commands_total", "counter", "Malformed status-socket commands.",
        st->ctl_bad);

    const struct ag_latency_series *h = ag_latency_series;
    const char *hn = "authgate_auth_verify_duration_seconds";
    family(r, hn, "histogram", "Time from queuing a verification to its result.");
    for (size_t i = 0; i < AG_LAT_SERIES; i++) {
        const struct ag_latency *l = &a->latency[h[i].scheme][h[i].backend];
        const char *sl = scheme_label(h[i].scheme);
        uint64_t cum = 0;
        for (size_t b = 0; b < AG_LAT_BUCKETS; b++) {
            cum += l->bucket[b];
            ag_ctl_raw(r, "%s_bucket{scheme=\"%s\",backend=\"%s\",le=\"%g\"} %llu\n", hn, sl,
                       h[i].bname, ag_latency_bounds_ms[b] / 1000.0, (unsigned long long)cum);
        }
        ag_ctl_raw(r, "%s_bucket{scheme=\"%s\",backend=\"%s\",le=\"+Inf\"} %llu\n", hn, sl,
                   h[i].bname, (unsigned long long)l->count);
        ag_ctl_raw(r, "%s_sum{scheme=\"%s\",backend=\"%s\"} %.3f\n", hn, sl, h[i].bname,
                   l->sum_ms / 1000.0);
        ag_ctl_raw(r, "%s_count{scheme=\"%s\",backend=\"%s\"} %llu\n", hn, sl, h[i].bname,
                   (unsigned long long)l->count);
    }
}
