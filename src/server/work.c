/* work.c - per-backend worker pools (see work.h). */
#include <stdlib.h>

#include "authgate/err.h"
#include "util/log.h"
#include "work.h"

/* The job waiting longest in p's queue, NULL when none (under w->mu). */
static struct ag_job *queue_first(const struct ag_pool *p)
{
    return ag_list_entry(ag_list_first(&p->queue), struct ag_job, node);
}

/* --- worker threads ---------------------------------------------------------- */

static void worker_main(void *arg)
{
    struct ag_pool *p = arg;
    struct ag_workers *w = p->w; /* the core: threads and queues */
    uv_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stopping && ag_list_empty(&p->queue))
            uv_cond_wait(&p->cv, &w->mu);
        if (w->stopping)
            break; /* what is still queued is freed by ag_workers_stop */
        struct ag_job *j = queue_first(p);
        ag_list_remove(&p->queue, &j->node);
        j->state = AG_JOB_RUNNING;
        j->hop = -1;
        p->busy++;
        uv_mutex_unlock(&w->mu);

        j->ops->run(j);

        uv_mutex_lock(&w->mu);
        p->busy--;
        if (j->hop >= 0 && j->hop < AG_POOL_N && !w->stopping) {
            /* Already admitted under its home pool's cap: queue at once. */
            struct ag_pool *q = &w->pools[j->hop];
            j->pool = q->id;
            j->stage++;
            j->state = AG_JOB_QUEUED;
            ag_list_push_last(&q->queue, &j->node);
            uv_cond_signal(&q->cv);
            continue;
        }
        j->state = AG_JOB_FINISHED;
        /* Back to the loop that submitted it (j->w: its port). */
        struct ag_pool *home = &j->w->pools[j->pool];
        ag_list_push_last(&home->done, &j->node);
        /* Coalescing: many sends before the loop wakes make one callback,
         * which drains the whole list. */
        uv_async_send(&home->async);
    }
    uv_mutex_unlock(&w->mu);
}

/* --- the loop side ----------------------------------------------------------- */

/* j no longer counts against its pool's cap (before done: a done that
 * submits again, or reports the gauges, sees it gone). */
static void job_gone(struct ag_workers *w, struct ag_job *j)
{
    struct ag_pool *home = &w->pools[j->home];
    uv_mutex_lock(&w->core->mu);
    w->core->pools[j->home].shared_in_flight--;
    uv_mutex_unlock(&w->core->mu);
    w->in_flight--;
    /* The wake-up keeps the loop alive only while its pool has work, as a
     * pending uv_work_t did. */
    if (--home->in_flight == 0 && !uv_is_closing((uv_handle_t *)&home->async))
        uv_unref((uv_handle_t *)&home->async);
}

static void job_free(struct ag_job *j)
{
    j->ops->release(j);
    free(j);
}

static void drain_finished(struct ag_pool *p, bool call_done)
{
    struct ag_workers *w = p->w;
    uv_mutex_lock(&w->core->mu);
    struct ag_list list = p->done; /* taken whole: no node points at its head */
    ag_list_init(&p->done);
    uv_mutex_unlock(&w->core->mu);
    ag_list_for_each_safe (j, next, &list, struct ag_job, node) {
        w->completed += !j->uncounted;
        w->pools[j->home].completed += !j->uncounted;
        job_gone(w, j);
        /* done runs exactly once, here, and only for an attached job. */
        if (j->owner && call_done)
            j->ops->done(j, j->owner);
        job_free(j);
    }
}

static void on_async(uv_async_t *a)
{
    drain_finished(a->data, true);
}

/* The loop side of w: one wake-up per pool on loop. */
static void ports_init(struct ag_workers *w, uv_loop_t *loop)
{
    w->loop = loop;
    for (size_t i = 0; i < AG_POOL_N; i++) {
        struct ag_pool *p = &w->pools[i];
        p->w = w;
        p->id = (enum ag_pool_id)i;
        uv_async_init(loop, &p->async, on_async);
        p->async.data = p;
        uv_unref((uv_handle_t *)&p->async);
    }
}

int ag_workers_start(struct ag_workers *w, uv_loop_t *loop, const uint32_t threads[AG_POOL_N],
                     uint32_t max_jobs)
{
    w->core = w;
    w->max_jobs = max_jobs;
    w->stopping = false;
    if (uv_mutex_init(&w->mu) != 0)
        return AG_EIO;
    ports_init(w, loop);
    int rc = 0;
    for (size_t i = 0; i < AG_POOL_N && rc == 0; i++) {
        struct ag_pool *p = &w->pools[i];
        p->n_threads = 0;
        uint32_t n = threads[i] ? threads[i] : 1;
        p->threads = calloc(n, sizeof *p->threads);
        if (!p->threads || uv_cond_init(&p->cv) != 0) {
            free(p->threads);
            p->threads = NULL;
            rc = AG_ENOMEM;
            break;
        }
        for (uint32_t t = 0; t < n; t++) {
            if (uv_thread_create(&p->threads[t], worker_main, p) != 0) {
                rc = AG_EIO;
                break;
            }
            p->n_threads++;
        }
    }
    w->started = true;
    if (rc != 0) {
        ag_err("event=workers_start_failed error=\"%s\"",
               rc == AG_ENOMEM ? "out of memory" : "cannot create a thread");
        ag_workers_stop(w);
    }
    return rc;
}

void ag_workers_attach(struct ag_workers *w, uv_loop_t *loop, struct ag_workers *core)
{
    w->core = core;
    ports_init(w, loop);
    w->started = true;
}

static void close_ports(struct ag_workers *w)
{
    for (size_t i = 0; i < AG_POOL_N; i++) {
        /* Shutdown: the owners are gone or going; no done any more. */
        drain_finished(&w->pools[i], false);
        uv_close((uv_handle_t *)&w->pools[i].async, NULL);
    }
}

void ag_workers_stop(struct ag_workers *w)
{
    if (!w->started)
        return;
    w->started = false;
    if (w->core != w) {
        /* Another loop's port: the threads are the core's. Its loop ran dry
         * first (its wake-ups keep it alive while it has jobs), so no job
         * comes back here any more. */
        close_ports(w);
        return;
    }
    uv_mutex_lock(&w->mu);
    w->stopping = true;
    for (size_t i = 0; i < AG_POOL_N; i++)
        if (w->pools[i].threads)
            uv_cond_broadcast(&w->pools[i].cv);
    uv_mutex_unlock(&w->mu);
    /* A run blocked on a stalled backend delays this join until the
     * backend's own deadline (libwbclient waits about a minute). */
    for (size_t i = 0; i < AG_POOL_N; i++)
        for (uint32_t t = 0; t < w->pools[i].n_threads; t++)
            uv_thread_join(&w->pools[i].threads[t]);
    for (size_t i = 0; i < AG_POOL_N; i++) {
        struct ag_pool *p = &w->pools[i];
        /* Every other loop stopped before the core does: what is still
         * queued was submitted from this loop. */
        struct ag_job *j;
        while ((j = queue_first(p))) {
            ag_list_remove(&p->queue, &j->node);
            j->w->cancelled += !j->uncounted;
            job_gone(j->w, j);
            job_free(j);
        }
        if (p->threads)
            uv_cond_destroy(&p->cv);
        free(p->threads);
        p->threads = NULL;
        p->n_threads = 0;
    }
    close_ports(w);
    uv_mutex_destroy(&w->mu);
}

int ag_job_submit(struct ag_workers *w, enum ag_pool_id pool, struct ag_job *j, void *owner)
{
    if (!w->started || pool >= AG_POOL_N)
        return AG_EIO;
    struct ag_workers *core = w->core;
    struct ag_pool *p = &w->pools[pool], *q = &core->pools[pool];
    uv_mutex_lock(&core->mu);
    /* The cap counts every loop's jobs: one pool, one max_jobs. */
    if (core->stopping || q->shared_in_flight >= core->max_jobs) {
        bool stopping = core->stopping;
        uv_mutex_unlock(&core->mu);
        if (stopping)
            return AG_EIO;
        p->refused_cap += !j->uncounted;
        w->refused_cap += !j->uncounted;
        return AG_EAGAIN;
    }
    q->shared_in_flight++;
    j->w = w;
    j->owner = owner;
    j->home = j->pool = pool;
    j->stage = 0;
    j->hop = -1;
    j->queued_ms = uv_now(w->loop);
    j->state = AG_JOB_QUEUED;
    ag_list_push_last(&q->queue, &j->node);
    uv_cond_signal(&q->cv);
    uv_mutex_unlock(&core->mu);
    if (p->in_flight++ == 0)
        uv_ref((uv_handle_t *)&p->async);
    w->in_flight++;
    w->submitted += !j->uncounted;
    p->submitted += !j->uncounted;
    return 0;
}

void ag_job_detach(struct ag_job *j)
{
    if (!j || !j->owner)
        return;
    struct ag_workers *w = j->w, *core = w->core;
    j->owner = NULL;
    w->detached += !j->uncounted;
    uv_mutex_lock(&core->mu);
    bool queued = j->state == AG_JOB_QUEUED;
    if (queued) {
        struct ag_pool *p = &core->pools[j->pool];
        ag_list_remove(&p->queue, &j->node);
    }
    uv_mutex_unlock(&core->mu);
    if (queued) {
        /* Never ran: nobody else holds it. */
        w->cancelled += !j->uncounted;
        job_gone(w, j);
        job_free(j);
    }
    /* Running or finished: the pool's drain frees it, skipping done. */
}

void ag_job_hop(struct ag_job *j, enum ag_pool_id pool)
{
    j->hop = (int)pool;
}
