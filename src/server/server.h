/* server.h - the daemon's top-level state: listeners, connections, counters.
 *
 * Glossary: accept gate = accepting pauses at max_connections and resumes
 * when a connection closes; drain = graceful shutdown (no new connections,
 * in-flight exchanges finish up to a deadline). Loop thread only.
 */
#ifndef AG_SERVER_H
#define AG_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "auth/ntlm.h"
#include "config/config.h"
#include "work.h"

/* Counters since start; every limit hit has one (visible through authgatectl).
 * The fields, their stats keys, metric names and help are listed once, in
 * stats.def. */
struct ag_stats {
#define AG_STAT_SERVER(field, ...) uint64_t field;
#include "stats.def"
};

/* Verification latency (job queued to done callback), a fixed-bucket
 * histogram: bucket[i] counts samples <= ag_latency_bounds_ms[i] and above the
 * bound before it; bucket[AG_LAT_BUCKETS] counts the rest (+Inf). */
#define AG_LAT_BUCKETS 12
extern const uint32_t ag_latency_bounds_ms[AG_LAT_BUCKETS];
/* The (scheme, backend) pairs that have a histogram, with the backend's name
 * for output; shared by "authgatectl stats" and the metrics. */
struct ag_latency_series {
    int scheme, backend;
    const char *bname;
};
#define AG_LAT_SERIES 5
extern const struct ag_latency_series ag_latency_series[AG_LAT_SERIES];
struct ag_latency {
    uint64_t bucket[AG_LAT_BUCKETS + 1];
    uint64_t count, sum_ms;
};

/* Authentication counters, per scheme where it matters (stats.def). */
struct ag_auth_stats {
#define AG_STAT_AUTH(field, ...) uint64_t field;
#define AG_STAT_SCHEME(field, ...) uint64_t field[4]; /* indexed by enum ag_scheme */
#include "stats.def"
    /* [enum ag_scheme][enum ag_backend]; Negotiate (GSS) uses AG_BACKEND_NONE */
    struct ag_latency latency[4][3];
};

/* Records one verification's latency (loop thread, from the job's done
 * callback). backend is an enum ag_backend; out-of-range indexes are ignored. */
void ag_auth_latency_record(struct ag_auth_stats *a, int scheme, int backend, uint64_t ms);

struct conn;
struct ag_session_table;
struct ag_basic_cache;
struct ag_throttle;
struct ag_users;
struct ag_gss_acceptor;
struct ag_rules;
struct ag_ctl;

struct ag_listener {
    uv_tcp_t tcp;
    struct ag_server *srv;
    bool blocked;        /* a connection is waiting to be accepted (gate closed) */
    bool proxy_protocol; /* "listen ... proxy_protocol": a PROXY header comes first */
};

struct ag_server {
    uv_loop_t *loop;
    struct ag_config *cfg; /* current configuration (owned reference) */
    char *config_path;
    struct ag_listener *listeners[AG_MAX_LISTENERS];
    size_t n_listeners;
    struct conn *conns; /* doubly linked list of live connections */
    uint32_t n_conns;
    uint64_t next_conn_id;
    uint64_t next_req_id; /* request ids (conn_request.id), server-wide */
    bool stopping;
    uv_timer_t shutdown_timer;
    /* SIGTERM with drain_delay: listeners still open, /healthz says 503,
     * until drain_timer calls ag_server_stop. */
    bool draining;
    uv_timer_t drain_timer;
    /* a reload waiting for winbind on the worker pool (owner: the server),
     * its deadline, and whether another SIGHUP came meanwhile */
    struct ag_job *reload_job;
    uv_timer_t reload_timer;
    bool reload_again;
    uv_signal_t sig_term, sig_int, sig_hup, sig_usr1;
    int exit_code;
    struct ag_stats stats;
    uint64_t started_ms;
    uint64_t fd_limit; /* RLIMIT_NOFILE after start-up raised the soft limit */

    /* authentication (auth_state.c; see auth.h) */
    struct ag_session_table *sessions;
    struct ag_workers workers;
    struct ag_users *users; /* the local user file in force, refcounted */
    struct ag_basic_cache *basic_cache;
    struct ag_throttle *throttle;
    struct ag_gss_acceptor *gss; /* NULL when Negotiate is not available */
    struct ag_rules *rules;      /* NULL: every authenticated user may go anywhere */
    /* winbindd's names for NTLM challenges (ntlm_backend winbind), read at
     * start-up and reload; empty when winbind did not answer (config then). */
    char wb_nb_domain[256], wb_dns_domain[256], wb_nb_name[256];
    /* MsvAvTargetName spellings accepted (proxy_host set; else n == 0 and
     * any target name passes), rebuilt at start-up and reload. */
    struct ag_ntlm_spns ntlm_spns;
    /* "authgatectl trace addr=IP": every auth decision for that client
     * address is logged (at info) until trace_until_ms. */
    char trace_addr[48];
    uint64_t trace_until_ms;
    struct ag_auth_stats auth;

    /* the status socket (src/ctl); NULL when off or once stopping */
    struct ag_ctl *ctl;
    /* Called once as the stop begins, with the listeners closing: main.c
     * sets it to ag_ctl_stop. A hook, not a call, because src/ctl depends on
     * src/server and never the reverse. NULL: nothing to stop. */
    void (*on_stop)(struct ag_server *srv);
};

/* Creates the listeners of cfg; returns 0 or a negative AG_E* with a message
 * logged. */
int ag_server_listen(struct ag_server *srv);
/* Called by a connection that closed: reopens the accept gate if needed. */
void ag_server_conn_gone(struct ag_server *srv);
/* Re-reads the config file; on error keeps the old one. Returns 0 (done), 1
 * (winbind lookups run off the loop, or a reload already runs and another
 * follows it: the outcome is logged) or -1 and fills err with
 * "file:line: message". Tells the service manager RELOADING=1 before and
 * READY=1 when the reload ends, taken or refused (see notify.h). */
int ag_server_reload(struct ag_server *srv, char *err, size_t errlen);
/* The end of a reload that ran off the loop: err NULL swaps n in (taking a
 * reference), otherwise logs err and keeps the old configuration. Starts
 * the reload a SIGHUP asked for meanwhile. */
void ag_server_reload_finish(struct ag_server *srv, struct ag_config *n, const char *err);
/* Starts the graceful shutdown (and says STOPPING=1). */
void ag_server_stop(struct ag_server *srv);
/* SIGTERM: with drain_delay, first drain_delay of /healthz answering 503
 * (listeners open, the balancer takes the node out), then ag_server_stop;
 * without, or when already draining (a second signal), ag_server_stop now. */
void ag_server_drain(struct ag_server *srv);
/* True from SIGTERM on: /healthz answers 503. */
static inline bool ag_server_leaving(const struct ag_server *srv)
{
    return srv->draining || srv->stopping;
}

/* Point-in-time gauges for "authgatectl status" and the metrics. */
struct ag_gauges {
    size_t authenticated, handshakes; /* from the session table */
    uint64_t tunnels;                 /* connections in CONN_TUNNEL */
};
void ag_server_gauges(const struct ag_server *srv, struct ag_gauges *out);

/* admin.c: the connections as src/ctl sees them (it never includes the
 * private conn.h). A snapshot of one open connection, read-only and valid
 * only inside the callback that gets it. */
struct ag_conn_info {
    uint64_t id;
    const char *peer;   /* client IP as text */
    bool has_session;   /* an auth-session row exists (from its first request on) */
    const char *scheme; /* the row's scheme name, "-" when none */
    const char *state;  /* the row's auth state name, "none" without a row */
    bool authenticated;
    const char *user, *domain;    /* "" unless authenticated */
    uint64_t age_ms;              /* since accept */
    uint64_t idle_ms;             /* since its last request began, 0 before */
    uint64_t requests;            /* requests authentication saw */
    uint64_t bytes_in, bytes_out; /* read from / queued to the client since accept */
};
/* Which connections: each field set must match; NULL (and false) match any. */
struct ag_conn_filter {
    bool by_id;
    uint64_t id;
    const char *user;   /* authenticated as this user, ASCII case-insensitive */
    const char *addr;   /* client IP as text, exact */
    const char *scheme; /* scheme name, case-insensitive */
    const char *state;  /* auth state name, exact */
    bool with_session;  /* only connections with an auth-session row */
};
/* Calls fn for every open connection f matches (f NULL: all), newest first,
 * until fn returns false. */
void ag_server_each_conn(struct ag_server *srv, const struct ag_conn_filter *f,
                         bool (*fn)(const struct ag_conn_info *ci, void *arg), void *arg);
/* Closes every open connection f matches, each with one "event=kicked" log
 * line, after handing its snapshot to fn (may be NULL). Returns how many. */
size_t ag_server_kick(struct ag_server *srv, const struct ag_conn_filter *f,
                      void (*fn)(const struct ag_conn_info *ci, void *arg), void *arg);

/* conn.c */
void ag_conn_accept(struct ag_server *srv, uv_stream_t *listener);
/* Graceful shutdown: closes idle connections, marks the others to close when
 * their exchange ends. force closes everything. */
void ag_conn_drain_all(struct ag_server *srv, bool force);

#endif
