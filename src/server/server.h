/* server.h - the daemon's top-level state: listeners, connections, counters.
 *
 * Glossary: accept gate = accepting pauses at max_connections and resumes
 * when a connection closes; drain = graceful shutdown (no new connections,
 * in-flight exchanges finish up to a deadline). Loop thread only.
 *
 * workers N: one struct ag_server per event loop. Loop 0 ("main") runs on
 * the process's main thread and alone owns the signals, the status socket,
 * reloads and the shared state (configuration, user file, rules, acceptor,
 * session table, Basic cache, throttle, verification pools); every other
 * loop runs on a thread of its own and borrows main's shared state, swapped
 * in on its own thread by ag_server_share. A connection lives and dies on
 * the loop that accepted it. Main reads or steers another loop only through
 * ag_server_call, which runs a function on that loop's thread and waits.
 */
#ifndef AG_SERVER_H
#define AG_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "auth/ntlm.h"
#include "config/config.h"
#include "util/list.h"
#include "work.h"

/* Counters since start; every limit hit has one (visible through authgatectl).
 * The fields, their stats keys, metric names and help are listed once, in
 * stats.def. */
struct ag_upstream;

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
struct ag_metrics_http;

struct ag_listener {
    uv_tcp_t tcp;
    struct ag_server *srv;
    bool blocked;        /* a connection is waiting to be accepted (gate closed) */
    bool proxy_protocol; /* "listen ... proxy_protocol": a PROXY header comes first */
    bool tls;            /* "listen ... tls": clients speak TLS to us (then HTTP) */
};

struct ag_loop_call;
struct ssl_ctx_st;

struct ag_server {
    uv_loop_t *loop;
    /* The loop's one read buffer (AG_READ_CHUNK, made at the first read):
     * every socket read of this loop lands here and is consumed before the
     * read callback returns (appended, parsed, or written on), so reads
     * cost no allocation and an idle connection holds no read buffer.
     * read_busy: lent out (a read callback in progress); a nested read
     * would take a block of its own. */
    char *read_buf;
    bool read_busy;
    /* workers N (loops.c) */
    unsigned worker;           /* this loop's index; 0 = main */
    struct ag_server *main;    /* loop 0 (itself on main) */
    struct ag_server **shards; /* main only: every loop, shards[0] == main */
    unsigned n_shards; /* loops started (1 = one loop); main writes it (release), loops read */
    uint32_t shards_running; /* main only, atomic: other loops not yet finished */
    uint32_t global_conns;   /* main only, atomic: connections of every loop */
    uint32_t any_blocked;    /* atomic: a listener of this loop waits at the gate */
    uv_async_t call_async;   /* other loops: wakes it for calls and the gate */
    uv_async_t shard_done;   /* main: another loop finished */
    uv_mutex_t call_mu;
    uv_cond_t call_cv;
    struct ag_loop_call *calls; /* under call_mu */
    bool calls_open;            /* under call_mu: call_async still takes calls */
    uv_thread_t thread;
    uv_loop_t own_loop; /* other loops: the loop itself */
    int loop_close_rc;  /* other loops: uv_loop_close's result */
    /* main: what a reload replaced, freed once every loop has let go */
    struct ag_rules *retired_rules;
    struct ag_users *retired_users;
    struct ag_gss_acceptor *retired_gss;
    /* The TLS context of tls listeners (tls.h), NULL without any: a
     * reference of this loop's own (main builds it, the others take one in
     * ag_server_share). tls_next: main only, built by a reload that waits
     * for winbind, swapped in when it commits. */
    struct ssl_ctx_st *tls_ctx;
    struct ssl_ctx_st *tls_next;
    struct ag_config *cfg; /* current configuration (owned reference) */
    char *config_path;
    struct ag_listener *listeners[AG_MAX_LISTENERS];
    size_t n_listeners;
    /* The loop's shared pool of idle upstream connections (uppool.c):
     * newest first, no lock (each loop its own). */
    struct ag_list pool; /* of ag_upstream.pool_node */
    uint32_t pool_n;
    struct ag_list conns; /* of conn.node: live connections, newest first */
    uint32_t n_conns;
    uint64_t next_conn_id;
    uint64_t next_req_id; /* request ids (conn_request.id), server-wide */
    bool stopping;
    bool stopped; /* the last step of the stop ran */
    uv_timer_t shutdown_timer;
    /* SIGTERM with drain_delay: listeners still open, /healthz says 503,
     * until drain_timer calls ag_server_stop. */
    bool draining;
    uv_timer_t drain_timer;
    /* a reload waiting for winbind on the worker pool (owner: the server),
     * its deadline, and whether another SIGHUP came meanwhile */
    struct ag_job *reload_job;
    uv_timer_t reload_timer;
    /* returns freed heap pages after idle releases (conn.c, AG_HEAP_TRIM_DELAY_MS) */
    uv_timer_t trim_timer;
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
    /* the Prometheus listener (src/ctl/metrics_http.c); NULL when off */
    struct ag_metrics_http *metrics_http;
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
/* True from SIGTERM on: /healthz answers 503. Drain is main's (its
 * signal handler and timer); every loop reads it. */
static inline bool ag_server_leaving(const struct ag_server *srv)
{
    return __atomic_load_n(&srv->main->draining, __ATOMIC_RELAXED) || srv->stopping;
}

/* loops.c. Starts loops 1..N-1 of workers N (after ag_server_listen of
 * main): each binds its own SO_REUSEPORT socket per listen line and runs
 * on a thread. 0, or AG_E* with a message logged. */
int ag_server_start_loops(struct ag_server *main);
/* Main thread: runs fn(loop, arg) on that loop's thread and waits for it
 * (directly when loop is main). false when that loop has stopped taking
 * calls (it has finished: nothing left to read or steer). */
bool ag_server_call(struct ag_server *loop, void (*fn)(struct ag_server *loop, void *arg),
                    void *arg);
/* Main thread: every other loop takes main's shared state (configuration,
 * rules, user file, acceptor, NTLM names, trace), then what a reload
 * retired is freed. */
void ag_server_share(struct ag_server *main);
/* Inside src/server and main.c: the gate of one loop (reopens its blocked
 * listeners while there is room), a wake-up of another loop (it runs its
 * calls and its gate), a loop's last turn for calls, the join of the other
 * loops once they finished (main's last step of a stop), their memory
 * (after main's loop closed), and a listener's close callback. */
void ag_server_gate(struct ag_server *srv);
void ag_server_wake(struct ag_server *srv);
void ag_server_loop_close_calls(struct ag_server *srv);
void ag_server_loops_join(struct ag_server *main);
void ag_server_loops_free(struct ag_server *main);
void ag_server_listener_closed(uv_handle_t *h);
/* One loop's own figures, read on its thread: connections open now and
 * accepted since start (how evenly the kernel spreads them). false when
 * that loop has finished. */
struct ag_loop_info {
    uint32_t connections;
    uint64_t accepted;
};
bool ag_server_loop_info(struct ag_server *main, unsigned i, struct ag_loop_info *out);

/* A configured parent's shared health (for authgatectl status): whether it
 * is in back-off now and how many connections to it failed since start. */
void ag_server_parent_health(const struct ag_parent *p, bool *down, uint64_t *failures);
/* Connections of every loop (atomic read). */
uint32_t ag_server_conns(const struct ag_server *srv);
/* Descriptors held besides the clients' own sockets, over every loop:
 * upstream sockets and the splice pumps' pipes and dups. The accept gate
 * and the pool's descriptor check both leave room for them. */
uint64_t ag_server_fds_besides_clients(void);
/* The number of loops workers N asks for (auto: one per CPU). */
unsigned ag_server_loops_wanted(const struct ag_config *cfg);

/* Point-in-time gauges for "authgatectl status" and the metrics. */
struct ag_gauges {
    size_t authenticated, handshakes; /* from the session table */
    uint64_t tunnels;                 /* connections in CONN_TUNNEL */
};
void ag_server_gauges(struct ag_server *srv, struct ag_gauges *out);

/* admin.c: the connections as src/ctl sees them (it never includes the
 * private conn.h). A snapshot of one open connection, read-only and valid
 * only inside the callback that gets it. */
struct ag_conn_info {
    uint64_t id;
    unsigned worker;    /* the event loop that owns it (0 with workers 1) */
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
/* Calls fn for every open connection f matches (f NULL: all), loop by loop
 * (each on its own thread, main waiting), newest first, until fn returns
 * false. */
void ag_server_each_conn(struct ag_server *srv, const struct ag_conn_filter *f,
                         bool (*fn)(const struct ag_conn_info *ci, void *arg), void *arg);
/* Closes every open connection f matches, on every loop (each closes its
 * own), each with one "event=kicked" log line, after handing its snapshot
 * to fn (may be NULL). Returns how many. */
size_t ag_server_kick(struct ag_server *srv, const struct ag_conn_filter *f,
                      void (*fn)(const struct ag_conn_info *ci, void *arg), void *arg);

/* conn.c. Accepts one connection for which the gate reserved a slot: 0,
 * or the caller gives the slot back: AG_ENOMEM (nothing taken: the
 * connection is still pending on the listener) or AG_EIO (uv_accept failed
 * and the connection is gone). */
int ag_conn_accept(struct ag_server *srv, uv_stream_t *listener);
/* Graceful shutdown: closes idle connections, marks the others to close when
 * their exchange ends. force closes everything. */
void ag_conn_drain_all(struct ag_server *srv, bool force);

#endif
