/* loops.c - workers N: the event loops besides main, and how main reaches
 * them (see server.h).
 *
 * Why threads in one process and not N processes: one status socket and one
 * view of every connection (authgatectl sessions, kick, stats see the daemon
 * as one), one set of verification pools, one Basic cache and one throttle
 * (a password guesser cannot multiply its budget by the number of
 * processes), one replay cache for Kerberos, and one reload. What a loop
 * shares is read-only (configuration, rules, user file, acceptor: swapped
 * in by each loop on its own thread) or locks itself (session table, Basic
 * cache, throttle, the pools' queues, the logs).
 *
 * Main talks to another loop only through ag_server_call: the function runs
 * on that loop's thread while main waits, so it sees that loop's connections
 * and counters without a lock on its hot path. No other loop ever waits for
 * main, so this cannot deadlock. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "authgate/err.h"
#include "server.h"
#include "tls.h"
#include "session/table.h"
#include "util/log.h"

struct ag_loop_call {
    void (*fn)(struct ag_server *loop, void *arg);
    void *arg;
    bool done; /* under the loop's call_mu */
    struct ag_loop_call *next;
};

unsigned ag_server_loops_wanted(const struct ag_config *cfg)
{
    unsigned n = cfg->workers ? cfg->workers : uv_available_parallelism();
    if (n < 1)
        n = 1;
    return n > AG_WORKERS_MAX ? AG_WORKERS_MAX : n;
}

uint32_t ag_server_conns(const struct ag_server *srv)
{
    /* A server built by hand (unit tests) has no main: its own count. */
    if (!srv->main)
        return srv->n_conns;
    return __atomic_load_n(&srv->main->global_conns, __ATOMIC_RELAXED);
}

/* On loop s: runs the calls waiting for it and tells each caller. close:
 * this is the loop's last turn, no call is taken after. */
static void run_calls(struct ag_server *s, bool close)
{
    uv_mutex_lock(&s->call_mu);
    if (close)
        s->calls_open = false;
    struct ag_loop_call *list = s->calls;
    s->calls = NULL;
    uv_mutex_unlock(&s->call_mu);
    while (list) {
        struct ag_loop_call *c = list;
        list = c->next; /* the caller frees c once done is seen */
        c->fn(s, c->arg);
        uv_mutex_lock(&s->call_mu);
        c->done = true;
        uv_cond_broadcast(&s->call_cv);
        uv_mutex_unlock(&s->call_mu);
    }
}

static void on_call(uv_async_t *a)
{
    struct ag_server *s = a->data;
    run_calls(s, false);
    /* A connection closed on another loop: the gate may open here. */
    ag_server_gate(s);
}

void ag_server_wake(struct ag_server *s)
{
    uv_mutex_lock(&s->call_mu);
    if (s->calls_open)
        uv_async_send(&s->call_async);
    uv_mutex_unlock(&s->call_mu);
}

void ag_server_loop_close_calls(struct ag_server *s)
{
    run_calls(s, true);
    uv_close((uv_handle_t *)&s->call_async, NULL);
}

bool ag_server_call(struct ag_server *t, void (*fn)(struct ag_server *loop, void *arg), void *arg)
{
    if (t == t->main) {
        fn(t, arg);
        return true;
    }
    struct ag_loop_call c = {fn, arg, false, NULL};
    uv_mutex_lock(&t->call_mu);
    if (!t->calls_open) {
        uv_mutex_unlock(&t->call_mu);
        return false;
    }
    c.next = t->calls;
    t->calls = &c;
    uv_async_send(&t->call_async);
    while (!c.done)
        uv_cond_wait(&t->call_cv, &t->call_mu);
    uv_mutex_unlock(&t->call_mu);
    return true;
}

/* s takes main's shared state (on s's thread, or before it runs). */
static void take_shared(struct ag_server *s, void *arg)
{
    const struct ag_server *m = s->main;
    (void)arg;
    if (s->cfg != m->cfg) {
        ag_config_unref(s->cfg);
        s->cfg = ag_config_ref(m->cfg);
    }
    s->sessions = m->sessions;
    s->basic_cache = m->basic_cache;
    s->throttle = m->throttle;
    s->users = m->users; /* borrowed: main holds the reference, jobs take their own */
    s->rules = m->rules;
    s->gss = m->gss;
    if (s->tls_ctx != m->tls_ctx) {
        ag_tls_ctx_unref(s->tls_ctx);
        s->tls_ctx = ag_tls_ctx_ref(m->tls_ctx);
    }
    memcpy(s->wb_nb_domain, m->wb_nb_domain, sizeof s->wb_nb_domain);
    memcpy(s->wb_dns_domain, m->wb_dns_domain, sizeof s->wb_dns_domain);
    memcpy(s->wb_nb_name, m->wb_nb_name, sizeof s->wb_nb_name);
    /* The list points into its own text (or at ""): rebase it on our copy. */
    s->ntlm_spns = m->ntlm_spns;
    for (size_t i = 0; i < s->ntlm_spns.n; i++) {
        const char *p = m->ntlm_spns.list[i];
        const char *lo = (const char *)m->ntlm_spns.text;
        if (p >= lo && p < lo + sizeof m->ntlm_spns.text)
            s->ntlm_spns.list[i] = (const char *)s->ntlm_spns.text + (p - lo);
    }
    memcpy(s->trace_addr, m->trace_addr, sizeof s->trace_addr);
    s->trace_until_ms = m->trace_until_ms;
}

void ag_server_share(struct ag_server *m)
{
    for (unsigned i = 1; i < m->n_shards; i++)
        ag_server_call(m->shards[i], take_shared, NULL);
    /* No loop points at them any more. */
    ag_auth_retire_free(m);
}

static void read_info(struct ag_server *s, void *arg)
{
    struct ag_loop_info *o = arg;
    o->connections = s->n_conns;
    o->accepted = s->stats.conns_accepted;
}

bool ag_server_loop_info(struct ag_server *m, unsigned i, struct ag_loop_info *out)
{
    *out = (struct ag_loop_info){0};
    if (i >= m->n_shards)
        return false;
    return ag_server_call(m->shards[i], read_info, out);
}

static void loop_main(void *arg)
{
    struct ag_server *s = arg, *m = s->main;
    uv_run(s->loop, UV_RUN_DEFAULT);
    /* Ran dry: no listener, no connection, no job of its own (its pool
     * wake-ups keep it alive while it has some). */
    ag_workers_stop(&s->workers);
    uv_run(s->loop, UV_RUN_DEFAULT);
    s->loop_close_rc = uv_loop_close(s->loop);
    __atomic_sub_fetch(&m->shards_running, 1, __ATOMIC_ACQ_REL);
    /* Main joins this thread before it closes shard_done. */
    uv_async_send(&m->shard_done);
}

static void on_shard_done(uv_async_t *a)
{
    struct ag_server *m = a->data;
    if (m->stopping)
        ag_server_stop(m);
}

void ag_server_loops_join(struct ag_server *m)
{
    for (unsigned i = 1; i < m->n_shards; i++) {
        struct ag_server *s = m->shards[i];
        uv_thread_join(&s->thread);
        if (s->loop_close_rc != 0) {
            ag_err("event=loop_close_failed worker=%u error=\"%s\"", s->worker,
                   uv_strerror(s->loop_close_rc));
            m->exit_code = 3;
        }
    }
    if (m->n_shards > 1)
        uv_close((uv_handle_t *)&m->shard_done, NULL);
}

void ag_server_loops_free(struct ag_server *m)
{
    for (unsigned i = 1; i < m->n_shards; i++) {
        struct ag_server *s = m->shards[i];
        uv_mutex_destroy(&s->call_mu);
        uv_cond_destroy(&s->call_cv);
        ag_config_unref(s->cfg);
        ag_tls_ctx_unref(s->tls_ctx);
        free(s->read_buf);
        free(s);
    }
    free(m->read_buf);
    m->read_buf = NULL;
    if (m->n_shards > 1) {
        uv_mutex_destroy(&m->call_mu);
        uv_cond_destroy(&m->call_cv);
    }
    free(m->shards);
    m->shards = NULL;
    m->n_shards = 0;
}

int ag_server_start_loops(struct ag_server *m)
{
    unsigned n = ag_server_loops_wanted(m->cfg);
    m->shards = calloc(n, sizeof *m->shards);
    if (!m->shards)
        return AG_ENOMEM;
    m->shards[0] = m;
    m->n_shards = 1;
    if (n == 1)
        return 0;
    /* Main's own wake-up: its gate reopens when another loop's connection
     * closes (ag_server_call never queues on main: it runs directly). */
    if (uv_mutex_init(&m->call_mu) != 0)
        return AG_ENOMEM;
    uv_cond_init(&m->call_cv);
    uv_async_init(m->loop, &m->shard_done, on_shard_done);
    m->shard_done.data = m;
    uv_async_init(m->loop, &m->call_async, on_call);
    m->call_async.data = m;
    m->calls_open = true;
    int rc = 0;
    for (unsigned i = 1; i < n && rc == 0; i++) {
        struct ag_server *s = calloc(1, sizeof *s);
        if (!s || uv_mutex_init(&s->call_mu) != 0) {
            free(s);
            return AG_ENOMEM;
        }
        uv_cond_init(&s->call_cv);
        s->worker = i;
        s->main = m;
        s->loop = &s->own_loop;
        uv_loop_init(s->loop);
        s->started_ms = m->started_ms;
        s->fd_limit = m->fd_limit;
        uv_timer_init(s->loop, &s->shutdown_timer);
        s->shutdown_timer.data = s;
        uv_timer_init(s->loop, &s->reload_timer);
        s->reload_timer.data = s;
        uv_timer_init(s->loop, &s->trim_timer);
        s->trim_timer.data = s;
        uv_async_init(s->loop, &s->call_async, on_call);
        s->call_async.data = s;
        s->calls_open = true;
        ag_workers_attach(&s->workers, s->loop, &m->workers);
        take_shared(s, NULL);
        /* A loop whose listeners failed still starts, so that the stop
         * that follows ends it like the others. */
        rc = ag_server_listen(s);
        /* Published with release: running loops read the list to wake one
         * another (ag_server_conn_gone) while later ones start. */
        m->shards[m->n_shards] = s;
        __atomic_store_n(&m->n_shards, m->n_shards + 1, __ATOMIC_RELEASE);
        __atomic_add_fetch(&m->shards_running, 1, __ATOMIC_ACQ_REL);
        if (uv_thread_create(&s->thread, loop_main, s) != 0) {
            ag_err("event=worker_start_failed worker=%u", i);
            /* Not running: nothing to join or to stop. */
            __atomic_store_n(&m->n_shards, m->n_shards - 1, __ATOMIC_RELEASE);
            __atomic_sub_fetch(&m->shards_running, 1, __ATOMIC_ACQ_REL);
            ag_workers_stop(&s->workers);
            uv_close((uv_handle_t *)&s->call_async, NULL);
            uv_close((uv_handle_t *)&s->shutdown_timer, NULL);
            uv_close((uv_handle_t *)&s->reload_timer, NULL);
            uv_close((uv_handle_t *)&s->trim_timer, NULL);
            for (size_t k = 0; k < s->n_listeners; k++)
                uv_close((uv_handle_t *)&s->listeners[k]->tcp, ag_server_listener_closed);
            uv_run(s->loop, UV_RUN_DEFAULT);
            uv_loop_close(s->loop);
            uv_mutex_destroy(&s->call_mu);
            uv_cond_destroy(&s->call_cv);
            ag_config_unref(s->cfg);
            free(s);
            return AG_EIO;
        }
    }
    if (rc == 0)
        ag_info("event=workers_loops loops=%u note=\"SO_REUSEPORT listeners, one per loop\"", n);
    return rc;
}
