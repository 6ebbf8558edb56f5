/* metrics.c - the counters in Prometheus text format (version 0.0.4).
 *
 * The counters and gauges are the rows of the table in server/stats.def;
 * this file adds the process facts and the latency histogram. Names follow
 * Prometheus conventions: authgate_ prefix, base units (seconds, bytes),
 * _total on counters, one family per HELP/TYPE pair, labels for the
 * dimension that varies (scheme, pool, reason, limit, phase, class). Label
 * values are fixed strings from the table or this file, never client input.
 * The same samples serve OpenMetrics 1.0 (metrics_listen, when the scraper
 * asks for it): there a counter family is named without its _total suffix,
 * which its samples keep, and the exposition ends with "# EOF".
 * Loop thread only. */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "server/stats.h"

static void family(struct ag_ctl_reply *r, enum ag_metrics_format fmt, const char *name,
                   const char *type, const char *help)
{
    int n = (int)strlen(name);
    if (fmt == AG_METRICS_OPENMETRICS && strcmp(type, "counter") == 0 && n > 6 &&
        strcmp(name + n - 6, "_total") == 0)
        n -= 6;
    ag_ctl_raw(r, "# HELP %.*s %s\n# TYPE %.*s %s\n", n, name, help, n, name, type);
}

static void one(struct ag_ctl_reply *r, enum ag_metrics_format fmt, const char *name,
                const char *type, const char *help, uint64_t v)
{
    family(r, fmt, name, type, help);
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

/* One sample of row r at dimension index i: name or name{label="value"}. */
static void sample(struct ag_ctl_reply *r, const struct ag_stat_row *row, size_t i,
                   const struct ag_stats_view *v)
{
    unsigned long long val = (unsigned long long)row->get(v, i);
    if (!row->label) {
        ag_ctl_raw(r, "%s %llu\n", row->metric, val);
        return;
    }
    char label[AG_STAT_NAME_MAX];
    ag_stat_expand(label, sizeof label, row->label, ag_stat_dim_name(row->dim, i));
    const char *eq = strchr(label, '=');
    int nl = eq ? (int)(eq - label) : (int)strlen(label);
    ag_ctl_raw(r, "%s{%.*s=\"%s\"} %llu\n", row->metric, nl, label, eq ? eq + 1 : "", val);
}

void ag_ctl_metrics_counters(const struct ag_stats_view *v, enum ag_metrics_format fmt,
                             struct ag_ctl_reply *r)
{
    /* A family's samples must be contiguous: each family is written where
     * its first row stands, with the samples of every row that shares it. */
    for (size_t k = 0; k < ag_stat_n_rows; k++) {
        const struct ag_stat_row *row = &ag_stat_rows[k];
        bool seen = false;
        for (size_t j = 0; j < k && !seen; j++)
            seen = strcmp(ag_stat_rows[j].metric, row->metric) == 0;
        if (seen)
            continue;
        family(r, fmt, row->metric, row->kind == AG_STAT_KIND_GAUGE ? "gauge" : "counter",
               ag_stat_family_help(row));
        for (size_t j = k; j < ag_stat_n_rows; j++) {
            if (strcmp(ag_stat_rows[j].metric, row->metric) != 0)
                continue;
            for (size_t i = 0; i < ag_stat_dim_size(ag_stat_rows[j].dim); i++)
                sample(r, &ag_stat_rows[j], i, v);
        }
    }
}

void ag_ctl_metrics(struct ag_server *srv, enum ag_metrics_format fmt, struct ag_ctl_reply *r)
{
    uint64_t up_s = (uv_now(srv->loop) - srv->started_ms) / 1000;

    family(r, fmt, "authgate_build_info", "gauge", "Version of the running daemon.");
    ag_ctl_raw(r, "authgate_build_info{version=\"%s\"} 1\n", AG_VERSION);
    one(r, fmt, "authgate_start_time_seconds", "gauge", "Start time of the daemon, Unix seconds.",
        (uint64_t)time(NULL) - up_s);
    one(r, fmt, "authgate_config_load_time_seconds", "gauge",
        "When the configuration in force was read, Unix seconds.", (uint64_t)srv->cfg->loaded);
    /* Negotiate is offered only when its acceptor is ready (keytab,
     * principal): configured but not ready is the silent SSO outage the
     * alert rules look for (scripts/authgate-alerts.yml). */
    one(r, fmt, "authgate_negotiate_configured", "gauge",
        "1 when auth_schemes names negotiate, else 0.",
        ag_config_scheme_enabled(srv->cfg, AG_SCHEME_NEGOTIATE));
    one(r, fmt, "authgate_negotiate_ready", "gauge",
        "1 when the Kerberos acceptor is ready (Negotiate offered), else 0.", srv->gss != NULL);
    one(r, fmt, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
        rss_bytes());

    struct ag_stats_view v;
    ag_stats_view_take(srv, &v);
    ag_ctl_metrics_counters(&v, fmt, r);
    const struct ag_auth_stats *a = v.auth; /* summed over every loop */

    const struct ag_latency_series *h = ag_latency_series;
    const char *hn = "authgate_auth_verify_duration_seconds";
    family(r, fmt, hn, "histogram", "Time from queuing a verification to its result.");
    for (size_t i = 0; i < AG_LAT_SERIES; i++) {
        const struct ag_latency *l = &a->latency[h[i].scheme][h[i].backend];
        const char *sl =
            ag_stat_dim_name(AG_STAT_DIM_SCHEME, (size_t)(h[i].scheme - AG_SCHEME_NEGOTIATE));
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
    if (fmt == AG_METRICS_OPENMETRICS)
        ag_ctl_raw(r, "# EOF\n");
}
