/* server.c - listeners, the accept gate, reload and graceful stop. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "conn.h"
#include "authgate/err.h"
#include "authgate/limits.h"
#include "proxy/parent.h"
#include "notify.h"
#include "proxy/upstream.h"
#include "server.h"
#include "tls.h"
#include "util/log.h"

void ag_server_listener_closed(uv_handle_t *h)
{
    free(h->data);
}

uint64_t ag_server_fds_besides_clients(void)
{
    return (uint64_t)ag_upstream_live() + ag_splice_fds();
}

/* The accept gate, global over every loop: a slot is taken (atomically)
 * before accepting, so N loops together never pass max_connections; and
 * far enough from the descriptor limit that each client may still get one
 * more for its upstream (the descriptors the splice pumps keep, pipes and
 * dups, counted too; AG_FD_RESERVE left for everything else, or half of
 * a limit smaller than twice that: under `ulimit -n 64` a fixed reserve of
 * 64 closed the gate for good and the daemon served nobody). */
static bool take_slot(struct ag_server *srv)
{
    uint64_t reserve = srv->fd_limit / 2 < AG_FD_RESERVE ? srv->fd_limit / 2 : AG_FD_RESERVE;
    uint32_t *g = &srv->main->global_conns;
    uint32_t n = __atomic_add_fetch(g, 1, __ATOMIC_SEQ_CST);
    if (n <= srv->cfg->max_connections &&
        (!srv->fd_limit ||
         (uint64_t)n - 1 + ag_server_fds_besides_clients() + reserve < srv->fd_limit))
        return true;
    __atomic_sub_fetch(g, 1, __ATOMIC_SEQ_CST);
    return false;
}

/* Wakes every other loop with a listener waiting at the gate: a slot just
 * given back may be theirs to take (their listener is not polled while it
 * waits, so nothing else would tell them). */
static void wake_blocked_loops(struct ag_server *srv)
{
    struct ag_server *m = srv->main;
    unsigned n = __atomic_load_n(&m->n_shards, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < n; i++) {
        struct ag_server *o = m->shards[i];
        if (o != srv && __atomic_load_n(&o->any_blocked, __ATOMIC_SEQ_CST))
            ag_server_wake(o);
    }
}

/* Every slot given back goes through here, so that no giver forgets the
 * wake-up: while we held it, another loop's take may have failed and
 * closed its gate (seq_cst: that loop set any_blocked before looking again,
 * and we look at any_blocked after giving back, so one of us sees the
 * other). */
static void give_slot(struct ag_server *srv)
{
    __atomic_sub_fetch(&srv->main->global_conns, 1, __ATOMIC_SEQ_CST);
    if (!srv->stopping)
        wake_blocked_loops(srv);
}

static void on_connection(uv_stream_t *s, int status);

/* Accepts one connection on l, or closes the gate of l. false: closed. */
static bool accept_one(struct ag_server *srv, struct ag_listener *l)
{
    if (!take_slot(srv)) {
        /* Not accepting makes libuv stop polling this listener until we
         * accept again: the kernel backlog holds the rest. */
        if (!l->blocked)
            srv->stats.limit_accept_paused++;
        l->blocked = true;
        __atomic_store_n(&srv->any_blocked, 1, __ATOMIC_SEQ_CST);
        /* A slot freed on another loop between the failed take and the
         * flag may have missed the flag (that loop looks after giving its
         * slot back): look once more, so no wake-up is lost. */
        if (!take_slot(srv))
            return false;
        l->blocked = false;
    }
    int rc = ag_conn_accept(srv, (uv_stream_t *)&l->tcp);
    if (rc == 0)
        return true;
    give_slot(srv);
    if (rc == AG_ENOMEM) {
        /* Before uv_accept: the connection libuv took is still pending and
         * libuv polls this listener no more, so it waits at the gate like
         * a full one, and the next slot freed retries it. */
        l->blocked = true;
        __atomic_store_n(&srv->any_blocked, 1, __ATOMIC_SEQ_CST);
        return false;
    }
    /* uv_accept failed (libuv closed that connection) and, when we came
     * from the gate, left the listener unpolled: polling again is
     * uv_listen's to start (it re-arms an open listener). */
    int e = uv_listen((uv_stream_t *)&l->tcp, AG_LISTEN_BACKLOG, on_connection);
    if (e != 0)
        ag_err("event=listen_failed worker=%u error=\"%s\"", srv->worker, uv_strerror(e));
    return true;
}

static void on_connection(uv_stream_t *s, int status)
{
    struct ag_listener *l = s->data;
    if (status < 0) {
        ag_warn("event=accept_error error=%s", uv_strerror(status));
        return;
    }
    accept_one(l->srv, l);
}

void ag_server_gate(struct ag_server *srv)
{
    if (srv->stopping || !__atomic_load_n(&srv->any_blocked, __ATOMIC_RELAXED))
        return;
    __atomic_store_n(&srv->any_blocked, 0, __ATOMIC_RELAXED);
    for (size_t i = 0; i < srv->n_listeners; i++) {
        struct ag_listener *l = srv->listeners[i];
        if (l->blocked) {
            l->blocked = false;
            if (!accept_one(srv, l))
                return; /* still full: accept_one closed it again */
        }
    }
}

void ag_server_conn_gone(struct ag_server *srv)
{
    give_slot(srv);
    if (srv->stopping) {
        if (srv->n_conns == 0)
            ag_server_stop(srv);
        return;
    }
    ag_server_gate(srv);
}

/* A listening socket of its own with SO_REUSEPORT (workers > 1), so that
 * every loop accepts on the same address and the kernel spreads new
 * connections over them (by a hash of the 4-tuple). libuv 1.44 (Debian 12)
 * has no UV_TCP_REUSEPORT: the socket is made here and given to libuv.
 *
 * first (main's socket): bound without SO_REUSEPORT, which fails on a port
 * anyone holds, and only then marked SO_REUSEPORT for our other loops to
 * join. Linux lets any socket of the same user with SO_REUSEPORT share the
 * port, so binding them all with it would let a second authgate (or an
 * address picked twice, as by parallel test suites) start on our port
 * without a word and take a share of our clients, answered under its own
 * configuration. */
static int reuseport_bind(struct ag_listener *l, const struct sockaddr *sa, bool first)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int on = 1;
    socklen_t len =
        sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
        (!first && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) ||
        (sa->sa_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) != 0) ||
        bind(fd, sa, len) != 0 ||
        (first && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0)) {
        int e = -errno;
        close(fd);
        return e;
    }
    int rc = uv_tcp_open(&l->tcp, fd);
    if (rc != 0)
        close(fd);
    return rc;
}

int ag_server_listen(struct ag_server *srv)
{
    const struct ag_config *cfg = srv->cfg;
    bool reuse = ag_server_loops_wanted(cfg) > 1;
    for (size_t i = 0; i < cfg->n_listen; i++) {
        struct ag_listener *l = calloc(1, sizeof *l);
        if (!l)
            return AG_ENOMEM;
        l->srv = srv;
        l->proxy_protocol = cfg->listen[i].proxy_protocol;
        l->tls = cfg->listen[i].tls;
        uv_tcp_init(srv->loop, &l->tcp);
        l->tcp.data = l;
        srv->listeners[srv->n_listeners++] = l;
        /* Other loops bind the address main got (its port, when 0 asked
         * the kernel for one). */
        struct sockaddr_storage ss = cfg->listen[i].addr;
        int sl = sizeof ss;
        if (srv != srv->main && i < srv->main->n_listeners)
            uv_tcp_getsockname(&srv->main->listeners[i]->tcp, (struct sockaddr *)&ss, &sl);
        const struct sockaddr *sa = (const struct sockaddr *)&ss;
        int rc = reuse ? reuseport_bind(l, sa, srv == srv->main)
                       : uv_tcp_bind(&l->tcp, sa, sa->sa_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
        /* Accepted sockets inherit TCP_NODELAY from the listener (Linux
         * clones the listener's TCP options): one setsockopt here instead
         * of one per connection. */
        if (rc == 0)
            rc = uv_tcp_nodelay(&l->tcp, 1);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)&l->tcp, AG_LISTEN_BACKLOG, on_connection);
        if (rc != 0) {
            ag_err("event=listen_failed address=%s worker=%u error=\"%s\"", cfg->listen[i].text,
                   srv->worker, uv_strerror(rc));
            return AG_EIO;
        }
        if (srv == srv->main)
            ag_info("event=listening address=%s%s%s", cfg->listen[i].text,
                    l->proxy_protocol ? " proxy_protocol=on" : "", l->tls ? " tls=on" : "");
    }
    return 0;
}

/* n (a reference the caller gives up) becomes the configuration. */
static void reload_commit(struct ag_server *srv, struct ag_config *n)
{
    const char *fixed = ag_config_fixed_changed(srv->cfg, n);
    if (fixed)
        ag_warn("event=reload_option_unchanged option=%s note=\"needs a restart\"", fixed);
    ag_config_unref(srv->cfg);
    srv->cfg = n;
    if (srv->tls_next) {
        /* New connections take the new certificate; open ones keep theirs
         * (their SSL holds the old context). */
        ag_tls_ctx_unref(srv->tls_ctx);
        srv->tls_ctx = srv->tls_next;
        srv->tls_next = NULL;
        ag_info("event=tls_reloaded certificate=%s", n->tls_certificate);
    }
    ag_log_set_level((enum ag_log_level)n->log_level);
    if (ag_log_set_buffer(n->log_buffer) != 0)
        ag_warn("event=log_buffer_unchanged reason=nomem size=%u", n->log_buffer);
    /* Every other loop takes the new state on its own thread; then what
     * the reload replaced is freed. */
    ag_server_share(srv);
    ag_info("event=reloaded config=%s", n->path);
}

/* The end of one reload, taken or refused: READY=1, as the old
 * configuration serves on a refusal. Not during the stop: the manager heard
 * STOPPING=1 and must not be told READY=1 again. */
static void reload_ended(struct ag_server *srv)
{
    if (!srv->stopping)
        ag_notify_ready(srv->n_listeners);
}

int ag_server_reload(struct ag_server *srv, char *err, size_t errlen)
{
    if (srv->reload_job) {
        /* Coalesce: one more reload when this one ends reads the file as
         * it is then, however many SIGHUPs came meanwhile. */
        srv->reload_again = true;
        ag_info("event=reload_coalesced note=\"a reload is running; another follows it\"");
        snprintf(err, errlen, "a reload is running; another follows it");
        return 1;
    }
    if (!srv->stopping)
        ag_notify_reloading();
    struct ag_config *n = ag_config_load(srv->config_path, err, errlen);
    if (!n) {
        ag_err("event=reload_failed error=\"%s\"", err);
        reload_ended(srv);
        return -1;
    }
    /* The listeners stay as started: a TLS context for as long as they
     * have tls, read from the new file (a bad certificate refuses the
     * whole reload). */
    ag_tls_ctx_unref(srv->tls_next);
    srv->tls_next = NULL;
    if (ag_tls_ctx_load(n, srv->tls_ctx != NULL, srv->tls_ctx, &srv->tls_next, err, errlen) != 0) {
        ag_err("event=reload_failed error=\"%s\"", err);
        ag_config_unref(n);
        reload_ended(srv);
        return -1;
    }
    int rc = ag_auth_reload(srv, n, err, errlen);
    if (rc < 0) {
        ag_err("event=reload_failed error=\"%s\"", err);
        ag_config_unref(n);
        reload_ended(srv);
        return -1;
    }
    if (rc > 0) {
        /* The reload job holds its own reference; READY=1 comes with its
         * outcome (ag_server_reload_finish). */
        ag_config_unref(n);
        snprintf(err, errlen, "waiting for winbind; the outcome is logged");
        return 1;
    }
    reload_commit(srv, n);
    reload_ended(srv);
    return 0;
}

void ag_server_reload_finish(struct ag_server *srv, struct ag_config *n, const char *err)
{
    if (err) {
        ag_err("event=reload_failed error=\"%s\"", err);
        ag_tls_ctx_unref(srv->tls_next);
        srv->tls_next = NULL;
    } else
        reload_commit(srv, ag_config_ref(n));
    reload_ended(srv);
    if (srv->reload_again && !srv->stopping) {
        srv->reload_again = false;
        char e[600];
        ag_server_reload(srv, e, sizeof e);
    }
}

static void on_shutdown_deadline(uv_timer_t *t)
{
    struct ag_server *srv = t->data;
    ag_warn("event=shutdown_deadline connections=%u", srv->n_conns);
    ag_conn_drain_all(srv, true);
}

static void close_if_open(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_drain_done(uv_timer_t *t)
{
    ag_server_stop(t->data);
}

void ag_server_drain(struct ag_server *srv)
{
    if (srv->draining || srv->stopping || srv->cfg->drain_delay_ms == 0) {
        ag_server_stop(srv);
        return;
    }
    /* Read by every loop's /healthz (ag_server_leaving). */
    __atomic_store_n(&srv->draining, true, __ATOMIC_RELAXED);
    ag_info("event=drain_begin delay_ms=%u connections=%u", srv->cfg->drain_delay_ms,
            ag_server_conns(srv));
    uv_timer_start(&srv->drain_timer, on_drain_done, srv->cfg->drain_delay_ms, 0);
}

static void stop_loop(struct ag_server *s, void *arg)
{
    (void)arg;
    ag_server_stop(s);
}

void ag_server_stop(struct ag_server *srv)
{
    bool is_main = srv == srv->main;
    if (!srv->stopping) {
        srv->stopping = true;
        if (is_main) {
            ag_notify_stopping();
            ag_info("event=shutdown_begin connections=%u", ag_server_conns(srv));
        }
        for (size_t i = 0; i < srv->n_listeners; i++)
            uv_close((uv_handle_t *)&srv->listeners[i]->tcp, ag_server_listener_closed);
        srv->n_listeners = 0;
        if (is_main) {
            /* The status socket goes with the listeners (main.c wires it
             * here): its handles must be closed for uv_loop_close to
             * succeed. */
            if (srv->on_stop)
                srv->on_stop(srv);
            /* A reload still waiting for winbind is abandoned. */
            srv->reload_again = false;
            if (srv->reload_job) {
                ag_job_detach(srv->reload_job);
                srv->reload_job = NULL;
            }
        }
        uv_timer_stop(&srv->reload_timer);
        if (is_main) /* the drain timer is main's alone */
            uv_timer_stop(&srv->drain_timer);
        uv_timer_start(&srv->shutdown_timer, on_shutdown_deadline, srv->cfg->shutdown_timeout_ms,
                       0);
        ag_conn_drain_all(srv, false);
        uppool_close_all(srv); /* idle shared upstreams: no exchange to finish */
        /* Every loop drains its own connections, on its own thread. */
        if (is_main)
            for (unsigned i = 1; i < srv->n_shards; i++)
                ag_server_call(srv->shards[i], stop_loop, NULL);
    }
    if (srv->n_conns == 0 && !srv->stopped &&
        (!is_main || __atomic_load_n(&srv->shards_running, __ATOMIC_ACQUIRE) == 0)) {
        /* Last step: with no connection left, close our own handles so
         * uv_run returns and uv_loop_close can succeed. */
        srv->stopped = true;
        close_if_open((uv_handle_t *)&srv->shutdown_timer);
        close_if_open((uv_handle_t *)&srv->reload_timer);
        close_if_open((uv_handle_t *)&srv->trim_timer);
        if (is_main)
            close_if_open((uv_handle_t *)&srv->drain_timer);
        if (!is_main || srv->n_shards > 1)
            ag_server_loop_close_calls(srv);
        if (!is_main)
            return; /* its pool port closes once its loop ran dry (loops.c) */
        /* The other loops finished (their jobs included): join them. */
        ag_server_loops_join(srv);
        /* Joins the verification threads (a call stuck on a stalled
         * winbindd delays this until libwbclient gives up). */
        ag_workers_stop(&srv->workers);
        close_if_open((uv_handle_t *)&srv->sig_term);
        close_if_open((uv_handle_t *)&srv->sig_int);
        close_if_open((uv_handle_t *)&srv->sig_hup);
        close_if_open((uv_handle_t *)&srv->sig_usr1);
    }
}

void ag_server_parent_health(const struct ag_parent *p, bool *down, uint64_t *failures)
{
    struct ag_parent_health *h = ag_parent_health(p->name, p->host, p->port);
    *down = !ag_parent_usable(h, ag_now_ms());
    *failures = ag_parent_failures(h);
}
