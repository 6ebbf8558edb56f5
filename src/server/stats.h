/* stats.h - the counter table (stats.def) as data: what "authgatectl stats"
 * and "authgatectl metrics" print, and the values behind it. Main thread
 * (each loop's counters are summed on that loop's thread).
 *
 * Glossary: row = one line of stats.def; dimension = the scheme or pool a
 * SCHEME or POOL row repeats over (one stats line and one labelled sample
 * each); view = one reading of every source a row can name, taken once per
 * command so that stats and metrics read consistent values.
 */
#ifndef AG_SERVER_STATS_H
#define AG_SERVER_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "authgate/limits.h"

#include "session/table.h"
#include "server.h"
#include "session/throttle.h"

struct ag_server;
struct ag_stats;
struct ag_auth_stats;
struct ag_workers;

/* Where every row reads its value: the sums over every event loop (each
 * loop's counters read on its own thread), and copies of the shared
 * sources. The pointers point at the sums. */
struct ag_stats_view {
    const struct ag_stats *srv;
    const struct ag_auth_stats *auth;
    const struct ag_workers *workers;
    struct ag_stats srv_sum;
    struct ag_auth_stats auth_sum;
    struct ag_workers workers_sum; /* the counters only */
    struct ag_session_counters sessions;
    struct ag_throttle_stats throttle;
    /* the GAUGE rows */
    uint64_t connections, authenticated, handshakes, tunnels_open;
    /* a COUNTER kept by the log module (util/log.h) */
    uint64_t log_write_failures;
};

/* Reads every source once (the session table, the throttle, the connection
 * list for the gauges). */
void ag_stats_view_take(struct ag_server *srv, struct ag_stats_view *v);

enum ag_stat_kind { AG_STAT_KIND_COUNTER, AG_STAT_KIND_GAUGE };
enum ag_stat_dim { AG_STAT_DIM_NONE, AG_STAT_DIM_SCHEME, AG_STAT_DIM_POOL };

struct ag_stat_row {
    const char *key;    /* stats key; with one %s when dim != NONE */
    const char *metric; /* Prometheus family */
    const char *label;  /* NULL, "name=value", or "name=%s" when dim != NONE */
    const char *help;
    enum ag_stat_kind kind;
    enum ag_stat_dim dim;
    uint64_t (*get)(const struct ag_stats_view *v, size_t i); /* i: dimension index */
};

extern const struct ag_stat_row ag_stat_rows[];
extern const size_t ag_stat_n_rows;

/* A shared family's HELP (AG_STAT_FAMILY). */
struct ag_stat_family {
    const char *metric, *help;
};
extern const struct ag_stat_family ag_stat_families[];
extern const size_t ag_stat_n_families;

/* How many lines a row prints (1, or the size of its dimension), and the
 * name of dimension index i ("negotiate", "winbind", ...; NULL for NONE). */
size_t ag_stat_dim_size(enum ag_stat_dim d);
const char *ag_stat_dim_name(enum ag_stat_dim d, size_t i);
/* Writes tmpl with its %s replaced by name (a dimension's name; NULL:
 * tmpl as is) into out, NUL-terminated; returns the full length, as
 * snprintf does (>= n: truncated). Not printf: table strings are data. */
size_t ag_stat_expand(char *out, size_t n, const char *tmpl, const char *name);
/* The HELP line of a row's family: the shared family's, else the row's. */
const char *ag_stat_family_help(const struct ag_stat_row *r);

#endif
