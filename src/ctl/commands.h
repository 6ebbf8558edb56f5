/* commands.h - the command table of the status socket (private to src/ctl).
 * Loop thread only. */
#ifndef AG_CTL_COMMANDS_H
#define AG_CTL_COMMANDS_H

#include <stdbool.h>

#include "proto.h"
#include "server/server.h"

/* Winbind health as "status" reports it. */
enum ag_ctl_wb { AG_CTL_WB_UNUSED = 0, AG_CTL_WB_OK, AG_CTL_WB_DOWN };

/* Whether cmd must wait for a winbind ping on the pool before it runs. */
bool ag_ctl_needs_ping(const struct ag_server *srv, const struct ag_ctl_cmd *cmd);
/* Runs cmd and fills r (records and the status line). */
void ag_ctl_run(struct ag_server *srv, const struct ag_ctl_cmd *cmd, enum ag_ctl_wb wb,
                struct ag_ctl_reply *r);
/* metrics.c: every counter, gauge and histogram in Prometheus text format
 * (0.0.4), or OpenMetrics 1.0 for a scraper that asks for it. */
enum ag_metrics_format { AG_METRICS_PROMETHEUS = 0, AG_METRICS_OPENMETRICS };
void ag_ctl_metrics(struct ag_server *srv, enum ag_metrics_format fmt, struct ag_ctl_reply *r);

/* The rows of the counter table (server/stats.def) read from v: "key=value"
 * lines for "stats" (commands.c), Prometheus families for "metrics"
 * (metrics.c). */
struct ag_stats_view;
void ag_ctl_stats_counters(const struct ag_stats_view *v, struct ag_ctl_reply *r);
void ag_ctl_metrics_counters(const struct ag_stats_view *v, enum ag_metrics_format fmt,
                             struct ag_ctl_reply *r);

/* metrics_http.c: the metrics_listen listener (GET /metrics). Start: 0, or
 * a negative AG_E* with one error line logged (nothing when metrics_listen
 * is none). Stop: closes it and its connections; safe when never started. */
int ag_metrics_http_start(struct ag_server *srv);
void ag_metrics_http_stop(struct ag_server *srv);

#endif
