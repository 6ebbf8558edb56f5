/* server.c - listeners, the accept gate, reload and graceful stop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "authgate/err.h"
#include "authgate/limits.h"
#include "notify.h"
#include "proxy/upstream.h"
#include "server.h"
#include "util/log.h"

static void on_listener_closed(uv_handle_t *h)
{
    free(h->data);
}

/* The accept gate is open: below max_connections, and far enough from the
 * descriptor limit that each client may still get one more for its upstream
 * (AG_FD_RESERVE left for everything else, or half of a limit smaller than
 * twice that: under `ulimit -n 64` a fixed reserve of 64 closed the gate for
 * good and the daemon served nobody). */
static bool accept_room(const struct ag_server *srv)
{
    uint64_t reserve = srv->fd_limit / 2 < AG_FD_RESERVE ? srv->fd_limit / 2 : AG_FD_RESERVE;
    return srv->n_conns < srv->cfg->max_connections &&
           (!srv->fd_limit ||
            (uint64_t)srv->n_conns + ag_upstream_live() + reserve < srv->fd_limit);
}

static void on_connection(uv_stream_t *s, int status)
{
    struct ag_listener *l = s->data;
    struct ag_server *srv = l->srv;
    if (status < 0) {
        ag_warn("event=accept_error error=%s", uv_strerror(status));
        return;
    }
    if (!accept_room(srv)) {
        /* Not accepting makes libuv stop polling this listener until we
         * accept again: the kernel backlog holds the rest. */
        if (!l->blocked)
            srv->stats.limit_accept_paused++;
        l->blocked = true;
        return;
    }
    ag_conn_accept(srv, s);
}

void ag_server_conn_gone(struct ag_server *srv)
{
    if (srv->stopping) {
        if (srv->n_conns == 0)
            ag_server_stop(srv);
        return;
    }
    for (size_t i = 0; i < srv->n_listeners && accept_room(srv); i++) {
        struct ag_listener *l = srv->listeners[i];
        if (l->blocked) {
            l->blocked = false;
            ag_conn_accept(srv, (uv_stream_t *)&l->tcp);
        }
    }
}

int ag_server_listen(struct ag_server *srv)
{
    const struct ag_config *cfg = srv->cfg;
    for (size_t i = 0; i < cfg->n_listen; i++) {
        struct ag_listener *l = calloc(1, sizeof *l);
        if (!l)
            return AG_ENOMEM;
        l->srv = srv;
        l->proxy_protocol = cfg->listen[i].proxy_protocol;
        uv_tcp_init(srv->loop, &l->tcp);
        l->tcp.data = l;
        srv->listeners[srv->n_listeners++] = l;
        const struct sockaddr *sa = (const struct sockaddr *)&cfg->listen[i].addr;
        int rc = uv_tcp_bind(&l->tcp, sa, sa->sa_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)&l->tcp, AG_LISTEN_BACKLOG, on_connection);
        if (rc != 0) {
            ag_err("event=listen_failed address=%s error=\"%s\"", cfg->listen[i].text,
                   uv_strerror(rc));
            return AG_EIO;
        }
        ag_info("event=listening address=%s%s", cfg->listen[i].text,
                l->proxy_protocol ? " proxy_protocol=on" : "");
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
    ag_log_set_level((enum ag_log_level)n->log_level);
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
    if (err)
        ag_err("event=reload_failed error=\"%s\"", err);
    else
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
    srv->draining = true;
    ag_info("event=drain_begin delay_ms=%u connections=%u", srv->cfg->drain_delay_ms, srv->n_conns);
    uv_timer_start(&srv->drain_timer, on_drain_done, srv->cfg->drain_delay_ms, 0);
}

void ag_server_stop(struct ag_server *srv)
{
    if (!srv->stopping) {
        srv->stopping = true;
        ag_notify_stopping();
        ag_info("event=shutdown_begin connections=%u", srv->n_conns);
        for (size_t i = 0; i < srv->n_listeners; i++)
            uv_close((uv_handle_t *)&srv->listeners[i]->tcp, on_listener_closed);
        srv->n_listeners = 0;
        /* The status socket goes with the listeners (main.c wires it here):
         * its handles must be closed for uv_loop_close to succeed. */
        if (srv->on_stop)
            srv->on_stop(srv);
        /* A reload still waiting for winbind is abandoned. */
        srv->reload_again = false;
        if (srv->reload_job) {
            ag_job_detach(srv->reload_job);
            srv->reload_job = NULL;
        }
        uv_timer_stop(&srv->reload_timer);
        uv_timer_stop(&srv->drain_timer);
        uv_timer_start(&srv->shutdown_timer, on_shutdown_deadline, srv->cfg->shutdown_timeout_ms,
                       0);
        ag_conn_drain_all(srv, false);
    }
    if (srv->n_conns == 0) {
        /* Last step: with no connection left, close our own handles so
         * uv_run returns and uv_loop_close can succeed. */
        close_if_open((uv_handle_t *)&srv->shutdown_timer);
        close_if_open((uv_handle_t *)&srv->reload_timer);
        close_if_open((uv_handle_t *)&srv->drain_timer);
        /* Joins the verification threads (a call stuck on a stalled
         * winbindd delays this until libwbclient gives up). */
        ag_workers_stop(&srv->workers);
        close_if_open((uv_handle_t *)&srv->sig_term);
        close_if_open((uv_handle_t *)&srv->sig_int);
        close_if_open((uv_handle_t *)&srv->sig_hup);
        close_if_open((uv_handle_t *)&srv->sig_usr1);
    }
}
