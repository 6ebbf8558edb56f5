/* work.c - per-backend worker pools (see work.h). */
#include <stdlib.h>

#include "authgate/err.h"
#include "util/log.h"
#include "work.h"

/* --- lists (under w->mu) ------------------------------------------------------ */

static void push(struct ag_job **head, struct ag_job **tail, struct ag_job *j)
{
    j->next = NULL;
    j->prev = *tail;
    if (*tail)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
}

static void unlink_job(struct ag_job **head, struct ag_job **tail, struct ag_job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        *head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        *tail = j->prev;
    j->prev = j->next = NULL;
}

/* --- worker threads ---------------------------------------------------------- */

static void worker_main(void *arg)
{
    struct ag_pool *p = arg;
    struct ag_workers *w = p->w;
    uv_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stopping && !p->qhead)
            uv_cond_wait(&p->cv, &w->mu);
        if (w->stopping)
            break; /* what is still queued is freed by ag_workers_stop */
        struct ag_job *j = p->qhead;
        unlink_job(&p->qhead, &p->qtail, j);
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
            push(&q->qhead, &q->qtail, j);
            uv_cond_signal(&q->cv);
            continue;
        }
        j->state = AG_JOB_FINISHED;
        struct ag_pool *home = &w->pools[j->pool];
        push(&home->done_head, &home->done_tail, j);
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
    uv_mutex_lock(&w->mu);
    struct ag_job *list = p->done_head;
    p->done_head = p->done_tail = NULL;
    uv_mutex_unlock(&w->mu);
    while (list) {
        struct ag_job *j = list;
        list = j->next;
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

int ag_workers_start(struct ag_workers *w, uv_loop_t *loop, const uint32_t threads[AG_POOL_N],
                     uint32_t max_jobs)
{
    w->loop = loop;
    w->max_jobs = max_jobs;
    w->stopping = false;
    if (uv_mutex_init(&w->mu) != 0)
        return AG_EIO;
    int rc = 0;
    size_t inited = 0;
    for (; inited < AG_POOL_N && rc == 0; inited++) {
        struct ag_pool *p = &w->pools[inited];
        p->w = w;
        p->id = (enum ag_pool_id)inited;
        p->n_threads = 0;
        uint32_t n = threads[inited] ? threads[inited] : 1;
        p->threads = calloc(n, sizeof *p->threads);
        if (!p->threads || uv_cond_init(&p->cv) != 0) {
            free(p->threads);
            p->threads = NULL;
            rc = AG_ENOMEM;
            break;
        }
        uv_async_init(loop, &p->async, on_async);
        p->async.data = p;
        uv_unref((uv_handle_t *)&p->async);
        for (uint32_t i = 0; i < n; i++) {
            if (uv_thread_create(&p->threads[i], worker_main, p) != 0) {
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

void ag_workers_stop(struct ag_workers *w)
{
    if (!w->started)
        return;
    w->started = false;
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
        if (!p->threads)
            continue;
        /* Shutdown: the owners are gone or going; no done any more. */
        drain_finished(p, false);
        while (p->qhead) {
            struct ag_job *j = p->qhead;
            unlink_job(&p->qhead, &p->qtail, j);
            w->cancelled += !j->uncounted;
            job_gone(w, j);
            job_free(j);
        }
        uv_cond_destroy(&p->cv);
        free(p->threads);
        p->threads = NULL;
        p->n_threads = 0;
        uv_close((uv_handle_t *)&p->async, NULL);
    }
    uv_mutex_destroy(&w->mu);
}

int ag_job_submit(struct ag_workers *w, enum ag_pool_id pool, struct ag_job *j, void *owner)
{
    if (!w->started || pool >= AG_POOL_N)
        return AG_EIO;
    struct ag_pool *p = &w->pools[pool];
    if (p->in_flight >= w->max_jobs) {
        p->refused_cap += !j->uncounted;
        w->refused_cap += !j->uncounted;
        return AG_EAGAIN;
    }
    j->w = w;
    j->owner = owner;
    j->home = j->pool = pool;
    j->stage = 0;
    j->hop = -1;
    j->queued_ms = uv_now(w->loop);
    if (p->in_flight++ == 0)
        uv_ref((uv_handle_t *)&p->async);
    w->in_flight++;
    w->submitted += !j->uncounted;
    p->submitted += !j->uncounted;
    uv_mutex_lock(&w->mu);
    j->state = AG_JOB_QUEUED;
    push(&p->qhead, &p->qtail, j);
    uv_cond_signal(&p->cv);
    uv_mutex_unlock(&w->mu);
    return 0;
}

void ag_job_detach(struct ag_job *j)
{
    if (!j || !j->owner)
        return;
    struct ag_workers *w = j->w;
    j->owner = NULL;
    w->detached += !j->uncounted;
    uv_mutex_lock(&w->mu);
    bool queued = j->state == AG_JOB_QUEUED;
    if (queued) {
        struct ag_pool *p = &w->pools[j->pool];
        unlink_job(&p->qhead, &p->qtail, j);
    }
    uv_mutex_unlock(&w->mu);
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
