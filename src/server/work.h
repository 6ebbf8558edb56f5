/* work.h - verification off the event loop, on worker threads of its own.
 *
 * Glossary: pool = a fixed set of threads for one backend (winbind, Kerberos,
 * local file) with its own queue, so a hung winbindd or a burst of Basic
 * checks never delays Kerberos or DNS (DNS keeps libuv's thread pool to
 * itself); job = one verification: it owns copies of every input (token,
 * challenge, password, a GSS context moved out of the session row) and its
 * outputs; run = the *_blocking part on a worker thread, which touches only
 * the job; hop = run hands the job on to another pool for a second step (a
 * Kerberos login that needs winbind's groups); done = the continuation on the
 * loop thread; detach = the owner (a connection) went away: done is skipped,
 * the job only frees itself.
 *
 * Several event loops (workers N) share one set of pools: the loop that
 * starts them holds the core (threads, queues, the lock, the caps); every
 * other loop attaches a port of its own (ag_workers_attach). A job returns to
 * the port it was submitted from, so its done runs on the loop that owns its
 * connection. Finished jobs go on their port's completed list; one
 * uv_async_t per pool and port wakes that loop, which drains the whole list
 * (libuv coalesces sends). A job
 * is freed exactly once, on the loop: by detach while it still waits in a
 * queue (it never runs), otherwise after its run. Each pool holds at most
 * max_jobs jobs (queued + running): the caller answers 503 beyond it, never
 * queues without bound, and one stalled backend cannot take the others'
 * room.
 */
#ifndef AG_SERVER_WORK_H
#define AG_SERVER_WORK_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "util/list.h"

enum ag_pool_id { AG_POOL_WINBIND, AG_POOL_KERBEROS, AG_POOL_LOCAL, AG_POOL_N };

struct ag_job;

struct ag_job_ops {
    const char *name;
    /* Worker thread: does the blocking work, writes results into the job. */
    void (*run)(struct ag_job *j);
    /* Loop thread, only while attached: consumes the results. */
    void (*done)(struct ag_job *j, void *owner);
    /* Loop thread, always, last: wipes and frees the job's contents (not the
     * job struct itself). */
    void (*release)(struct ag_job *j);
};

struct ag_workers;

struct ag_pool {
    struct ag_workers *w;
    enum ag_pool_id id;
    /* core only: */
    uv_thread_t *threads;
    uint32_t n_threads;
    uv_cond_t cv;              /* work queued or stopping */
    struct ag_list queue;      /* of ag_job.node: waiting, oldest first, under core->mu */
    uint32_t busy;             /* under core->mu: threads inside run */
    uint32_t shared_in_flight; /* under core->mu: every loop's jobs, against max_jobs */
    /* each port (loop): */
    struct ag_list done;                        /* of ag_job.node: finished, under core->mu */
    uv_async_t async;                           /* wakes the loop to drain the finished list */
    uint32_t in_flight;                         /* loop: submitted here, not yet freed */
    uint64_t submitted, completed, refused_cap; /* completed: by the pool submitted to */
};

struct ag_workers {
    struct ag_workers *core; /* the one holding threads and queues (itself for the core) */
    uv_loop_t *loop;
    uint32_t in_flight; /* submitted, not yet freed (all pools) */
    uint32_t max_jobs;  /* per pool, all loops together (core's is read) */
    uint64_t submitted, completed, detached, cancelled, refused_cap;
    struct ag_pool pools[AG_POOL_N];
    uv_mutex_t mu; /* core: the queues, every port's finished lists, job states */
    bool started, stopping;
};

enum ag_job_state { AG_JOB_QUEUED = 1, AG_JOB_RUNNING, AG_JOB_FINISHED };

struct ag_job {
    const struct ag_job_ops *ops;
    struct ag_workers *w;     /* the port it was submitted from (its loop) */
    struct ag_list_node node; /* in a queue or a finished list, under core->mu */
    enum ag_job_state state;  /* under core->mu */
    enum ag_pool_id pool;     /* where it is now, under core->mu */
    enum ag_pool_id home;     /* where it was submitted (its cap), loop only */
    int hop;                  /* run only: a pool to continue on, or -1 */
    int stage;                /* run: 0, then 1 after a hop */
    void *owner;              /* NULL once detached; loop only */
    uint64_t queued_ms;
    /* Set by the caller: left out of the submitted/completed/detached/
     * cancelled/refused counters (a status-socket ping: diagnostics, not
     * load); it still counts against the cap. */
    bool uncounted;
};

/* Starts threads[i] worker threads for pool i (0 is taken as 1) and the
 * loop-side wake-ups. 0, or AG_EIO/AG_ENOMEM with nothing left running. */
int ag_workers_start(struct ag_workers *w, uv_loop_t *loop, const uint32_t threads[AG_POOL_N],
                     uint32_t max_jobs);
/* Another loop's port on core's pools (loop thread of that loop). Its
 * ag_workers_stop, once that loop has no job left, only closes the port;
 * the core stops last. */
void ag_workers_attach(struct ag_workers *w, uv_loop_t *loop, struct ag_workers *core);
/* Loop thread, once nothing submits any more: lets running jobs finish,
 * joins the threads, frees every job left (queued ones without running
 * them; done is called for none), closes the asyncs (the loop must run once
 * more for their close callbacks). Idempotent. */
void ag_workers_stop(struct ag_workers *w);

/* Submits j (allocated by the caller with its payload; ownership passes to
 * the workers on success) to a pool. AG_EAGAIN at the pool's cap, AG_EIO
 * once stopping: on error the caller still owns j. */
int ag_job_submit(struct ag_workers *w, enum ag_pool_id pool, struct ag_job *j, void *owner);
/* The owner is going away: done will not run. A job still queued is freed
 * now (it never runs), one that runs frees itself when it returns; either
 * way the caller must not touch j again. */
void ag_job_detach(struct ag_job *j);
/* From run only: when run returns, the job queues on pool to run again
 * (with stage incremented) instead of finishing. */
void ag_job_hop(struct ag_job *j, enum ag_pool_id pool);

#endif
