/* work.h - verification off the event loop (a thin uv_queue_work wrapper).
 *
 * Glossary: job = one verification: it owns copies of every input (token,
 * challenge, password, a GSS context moved out of the session row) and its
 * outputs; run = the *_blocking part on a pool thread, which touches only the
 * job; done = the continuation on the loop thread; detach = the owner (a
 * connection) went away: done is skipped, the job only frees itself.
 *
 * A job is freed exactly once, by its after-work callback, which libuv runs
 * whether or not a cancel succeeded. A global cap bounds jobs in flight (the
 * caller answers 503 beyond it, never queues without bound).
 */
#ifndef AG_SERVER_WORK_H
#define AG_SERVER_WORK_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct ag_job;

struct ag_job_ops {
    const char *name;
    /* Pool thread: does the blocking work, writes results into the job. */
    void (*run)(struct ag_job *j);
    /* Loop thread, only while attached: consumes the results. */
    void (*done)(struct ag_job *j, void *owner);
    /* Loop thread, always, last: wipes and frees the job's contents (not the
     * job struct itself). */
    void (*release)(struct ag_job *j);
};

struct ag_workers {
    uv_loop_t *loop;
    uint32_t in_flight;   /* submitted, after-work not yet run */
    uint32_t max_jobs;
    uint64_t submitted, completed, detached, cancelled, refused_cap;
};

struct ag_job {
    uv_work_t req;
    const struct ag_job_ops *ops;
    struct ag_workers *w;
    void *owner;       /* NULL once detached */
    int result;        /* written by run */
    uint64_t queued_ms;
};

/* Submits j (allocated by the caller with its payload; ownership passes to
 * the workers on success). AG_EAGAIN at the cap, AG_EIO if libuv refuses:
 * on error the caller still owns j. */
int ag_job_submit(struct ag_workers *w, struct ag_job *j, void *owner);
/* The owner is going away: done will not run; the job frees itself. */
void ag_job_detach(struct ag_job *j);

#endif
