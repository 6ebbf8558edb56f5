/* test_work.c - the per-backend worker pools under a real loop: completion
 * (done exactly once, on the loop thread), detach while the job runs (the
 * owner went away), cancel of a job still queued, the per-pool cap, a hop to
 * another pool, isolation (a stalled pool leaves the others running), many
 * completions drained by one wake-up, and stop with work left (threads
 * joined, asyncs closed, uv_loop_close returns 0). A run function blocks on a
 * semaphore so the test decides when the worker finishes; ASan proves
 * nothing is touched after free. */
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <uv.h>

#include "authgate/err.h"
#include "server/work.h"

static sem_t started, release;
static int done_calls, release_calls;
static uv_thread_t loop_thread;
/* what the last done saw (the job is freed after it) */
static int last_stages;
static uv_thread_t last_ran_on[2];

struct tjob {
    struct ag_job base;
    bool block;
    int hop_to; /* -1: finish after stage 0 */
    int stages_run;
    uv_thread_t ran_on[2];
    int *payload; /* owned: freed in release, so ASan catches a double free */
    int result;   /* written by run, read by done */
};

static void t_run(struct ag_job *j)
{
    struct tjob *t = (struct tjob *)j;
    t->ran_on[j->stage] = uv_thread_self();
    t->stages_run++;
    if (t->block && j->stage == 0) {
        sem_post(&started);
        sem_wait(&release);
    }
    if (j->stage == 0 && t->hop_to >= 0) {
        ag_job_hop(j, (enum ag_pool_id)t->hop_to);
        return;
    }
    *t->payload = 42;
    t->result = 7;
}

static void t_done(struct ag_job *j, void *owner)
{
    struct tjob *t = (struct tjob *)j;
    uv_thread_t self = uv_thread_self();
    assert_true(uv_thread_equal(&self, &loop_thread));
    assert_int_equal(*t->payload, 42);
    assert_int_equal(t->result, 7);
    last_stages = t->stages_run;
    memcpy(last_ran_on, t->ran_on, sizeof last_ran_on);
    (*(int *)owner)++;
    done_calls++;
}

static void t_release(struct ag_job *j)
{
    struct tjob *t = (struct tjob *)j;
    free(t->payload);
    release_calls++;
}

static const struct ag_job_ops ops = {"test", t_run, t_done, t_release};

static struct tjob *mk(bool block)
{
    struct tjob *t = calloc(1, sizeof *t);
    t->base.ops = &ops;
    t->block = block;
    t->hop_to = -1;
    t->payload = calloc(1, sizeof *t->payload);
    return t;
}

static const uint32_t two_each[AG_POOL_N] = {2, 2, 2};

static int setup(void **state)
{
    sem_init(&started, 0, 0);
    sem_init(&release, 0, 0);
    done_calls = release_calls = 0;
    loop_thread = uv_thread_self();
    return 0;
}

static uv_loop_t loop;
static struct ag_workers w;

/* A fresh loop and pools for one test. */
static void begin(const uint32_t threads[AG_POOL_N], uint32_t max_jobs)
{
    uv_loop_init(&loop);
    memset(&w, 0, sizeof w);
    assert_int_equal(ag_workers_start(&w, &loop, threads, max_jobs), 0);
}

/* Stops the pools and lets the loop run their close callbacks. */
static void finish(void)
{
    ag_workers_stop(&w);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_completes(void **state)
{
    begin(two_each, 4);
    int owner = 0;
    assert_int_equal(ag_job_submit(&w, AG_POOL_LOCAL, &mk(false)->base, &owner), 0);
    assert_int_equal(w.in_flight, 1);
    /* The loop stays alive exactly while a job is in flight. */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(owner, 1);
    assert_int_equal(done_calls, 1);
    assert_int_equal(release_calls, 1);
    assert_int_equal(w.in_flight, 0);
    assert_int_equal(w.completed, 1);
    finish();
}

/* An uncounted job (a status-socket ping) runs and holds its place under
 * the cap, but stays out of the load counters. */
static void test_uncounted(void **state)
{
    begin(two_each, 1);
    int owner = 0;
    struct tjob *t = mk(false);
    t->base.uncounted = true;
    assert_int_equal(ag_job_submit(&w, AG_POOL_WINBIND, &t->base, &owner), 0);
    struct tjob *over = mk(false);
    assert_int_equal(ag_job_submit(&w, AG_POOL_WINBIND, &over->base, &owner), AG_EAGAIN);
    t_release(&over->base);
    free(over);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(owner, 1);
    assert_int_equal(w.submitted, 0);
    assert_int_equal(w.completed, 0);
    assert_int_equal(w.refused_cap, 1); /* the counted one that found it there */
    finish();
}

/* The client closes while its verification runs on a worker thread: the job
 * is detached, finishes later, and frees itself without calling done. */
static void test_detach_while_running(void **state)
{
    begin(two_each, 4);
    int *owner = calloc(1, sizeof *owner);
    struct tjob *t = mk(true);
    assert_int_equal(ag_job_submit(&w, AG_POOL_WINBIND, &t->base, owner), 0);
    sem_wait(&started); /* the run function is now blocked on a worker thread */
    ag_job_detach(&t->base);
    free(owner); /* the owner is gone: done must never see it */
    assert_int_equal(w.detached, 1);
    assert_int_equal(release_calls, 0); /* it runs: not freed yet */
    sem_post(&release);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(done_calls, 0);
    assert_int_equal(release_calls, 1);
    assert_int_equal(w.in_flight, 0);
    assert_int_equal(w.completed, 1);
    assert_int_equal(w.cancelled, 0);
    finish();
}

/* A job still queued behind busy threads is freed by detach, never runs. */
static void test_detach_cancels_queued(void **state)
{
    begin(two_each, 64);
    int owner = 0;
    struct tjob *b1 = mk(true), *b2 = mk(true);
    assert_int_equal(ag_job_submit(&w, AG_POOL_WINBIND, &b1->base, &owner), 0);
    assert_int_equal(ag_job_submit(&w, AG_POOL_WINBIND, &b2->base, &owner), 0);
    sem_wait(&started);
    sem_wait(&started); /* both winbind threads are busy */
    struct tjob *q = mk(false);
    assert_int_equal(ag_job_submit(&w, AG_POOL_WINBIND, &q->base, &owner), 0);
    ag_job_detach(&q->base);
    assert_int_equal(release_calls, 1); /* freed at once */
    assert_int_equal(w.cancelled, 1);
    sem_post(&release);
    sem_post(&release);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(done_calls, 2);
    assert_int_equal(release_calls, 3);
    assert_int_equal(w.in_flight, 0);
    finish();
}

/* workers N: a second loop's port on the same pools. Each job comes back to
 * the loop that submitted it, and the cap counts both loops' jobs. (Both
 * loops run on this thread, one after the other: t_done checks it.) */
static void test_port_returns_to_its_loop(void **state)
{
    begin(two_each, 2);
    uv_loop_t loop2;
    struct ag_workers w2;
    memset(&w2, 0, sizeof w2);
    uv_loop_init(&loop2);
    ag_workers_attach(&w2, &loop2, &w);
    int mine = 0, theirs = 0;
    struct tjob *b = mk(true);
    assert_int_equal(ag_job_submit(&w, AG_POOL_LOCAL, &b->base, &mine), 0);
    assert_int_equal(ag_job_submit(&w2, AG_POOL_LOCAL, &mk(false)->base, &theirs), 0);
    struct tjob *over = mk(false);
    assert_int_equal(ag_job_submit(&w2, AG_POOL_LOCAL, &over->base, &theirs), AG_EAGAIN);
    t_release(&over->base);
    free(over);
    /* loop2 runs until its own job came back: its done, not main's */
    uv_run(&loop2, UV_RUN_DEFAULT);
    assert_int_equal(theirs, 1);
    assert_int_equal(mine, 0);
    assert_int_equal(w2.completed, 1);
    assert_int_equal(w.completed, 0);
    sem_wait(&started);
    sem_post(&release);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(mine, 1);
    assert_int_equal(w.completed, 1);
    /* the port closes first (its loop ran dry), the core last */
    ag_workers_stop(&w2);
    uv_run(&loop2, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop2), 0);
    finish();
}

/* The cap is per pool: a full winbind pool refuses, Kerberos still takes. */
static void test_cap_per_pool(void **state)
{
    begin(two_each, 1);
    int owner = 0;
    struct tjob *b = mk(true);
    assert_int_equal(ag_job_submit(&w, AG_POOL_WINBIND, &b->base, &owner), 0);
    struct tjob *over = mk(false);
    assert_int_equal(ag_job_submit(&w, AG_POOL_WINBIND, &over->base, &owner), AG_EAGAIN);
    assert_int_equal(w.refused_cap, 1);
    assert_int_equal(w.pools[AG_POOL_WINBIND].refused_cap, 1);
    t_release(&over->base); /* still the caller's on refusal */
    free(over);
    assert_int_equal(ag_job_submit(&w, AG_POOL_KERBEROS, &mk(false)->base, &owner), 0);
    sem_wait(&started);
    sem_post(&release);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(done_calls, 2);
    finish();
}

/* Isolation: every winbind thread stuck, Kerberos and local jobs complete. */
static void test_stalled_pool_isolated(void **state)
{
    begin(two_each, 64);
    int stuck = 0, owner = 0;
    for (int i = 0; i < 2; i++)
        assert_int_equal(ag_job_submit(&w, AG_POOL_WINBIND, &mk(true)->base, &stuck), 0);
    sem_wait(&started);
    sem_wait(&started);
    for (int i = 0; i < 5; i++) /* these wait behind the stuck ones */
        assert_int_equal(ag_job_submit(&w, AG_POOL_WINBIND, &mk(false)->base, &stuck), 0);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(ag_job_submit(&w, AG_POOL_KERBEROS, &mk(false)->base, &owner), 0);
        assert_int_equal(ag_job_submit(&w, AG_POOL_LOCAL, &mk(false)->base, &owner), 0);
    }
    while (owner < 40)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(stuck, 0);
    sem_post(&release);
    sem_post(&release);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(stuck, 7);
    assert_int_equal(done_calls, 47);
    assert_int_equal(release_calls, 47);
    finish();
}

/* A hop runs the second stage on the other pool, then done once. */
static void test_hop(void **state)
{
    const uint32_t one_each[AG_POOL_N] = {1, 1, 1};
    begin(one_each, 4);
    int owner = 0;
    struct tjob *t = mk(false);
    t->hop_to = AG_POOL_WINBIND;
    assert_int_equal(ag_job_submit(&w, AG_POOL_KERBEROS, &t->base, &owner), 0);
    uv_thread_t kth = w.pools[AG_POOL_KERBEROS].threads[0];
    uv_thread_t wth = w.pools[AG_POOL_WINBIND].threads[0];
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(last_stages, 2);
    assert_true(uv_thread_equal(&last_ran_on[0], &kth));
    assert_true(uv_thread_equal(&last_ran_on[1], &wth));
    assert_int_equal(owner, 1);
    assert_int_equal(done_calls, 1);
    assert_int_equal(release_calls, 1);
    assert_int_equal(w.in_flight, 0);
    assert_int_equal(w.pools[AG_POOL_KERBEROS].in_flight, 0);
    finish();
}

/* Many jobs finish before the loop looks: each done runs exactly once. */
static void test_many_coalesced(void **state)
{
    const uint32_t four[AG_POOL_N] = {4, 4, 4};
    begin(four, 1000);
    int owner = 0;
    for (int i = 0; i < 900; i++)
        assert_int_equal(
            ag_job_submit(&w, (enum ag_pool_id)(i % AG_POOL_N), &mk(false)->base, &owner), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(owner, 900);
    assert_int_equal(done_calls, 900);
    assert_int_equal(release_calls, 900);
    assert_int_equal(w.completed, 900);
    finish();
}

/* Releases the blocked run once ag_workers_stop has begun (bounded wait). */
static void release_when_stopping(void *arg)
{
    struct ag_workers *pw = arg;
    for (int i = 0; i < 10000; i++) {
        uv_mutex_lock(&pw->mu);
        bool s = pw->stopping;
        uv_mutex_unlock(&pw->mu);
        if (s)
            break;
        uv_sleep(1);
    }
    sem_post(&release);
}

/* Stop with one job running and others queued: the running one finishes,
 * the queued ones are freed unrun, the threads are joined. */
static void test_stop_with_work_left(void **state)
{
    const uint32_t one_each[AG_POOL_N] = {1, 1, 1};
    begin(one_each, 64);
    int owner = 0;
    struct tjob *b = mk(true);
    assert_int_equal(ag_job_submit(&w, AG_POOL_WINBIND, &b->base, &owner), 0);
    sem_wait(&started);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ag_job_submit(&w, AG_POOL_WINBIND, &mk(false)->base, &owner), 0);
    ag_job_detach(&b->base); /* its owner went away */
    uv_thread_t helper;
    assert_int_equal(uv_thread_create(&helper, release_when_stopping, &w), 0);
    /* The queued three are still attached: stop frees them unrun, no done. */
    ag_workers_stop(&w);
    uv_thread_join(&helper);
    assert_int_equal(done_calls, 0);
    assert_int_equal(release_calls, 4);
    assert_int_equal(w.cancelled, 3);
    assert_int_equal(w.in_flight, 0);
    struct tjob *late = mk(false);
    assert_int_equal(ag_job_submit(&w, AG_POOL_LOCAL, &late->base, &owner), AG_EIO);
    t_release(&late->base);
    free(late);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    ag_workers_stop(&w); /* idempotent */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_completes, setup),
        cmocka_unit_test_setup(test_uncounted, setup),
        cmocka_unit_test_setup(test_detach_while_running, setup),
        cmocka_unit_test_setup(test_detach_cancels_queued, setup),
        cmocka_unit_test_setup(test_cap_per_pool, setup),
        cmocka_unit_test_setup(test_stalled_pool_isolated, setup),
        cmocka_unit_test_setup(test_hop, setup),
        cmocka_unit_test_setup(test_many_coalesced, setup),
        cmocka_unit_test_setup(test_stop_with_work_left, setup),
        cmocka_unit_test_setup(test_port_returns_to_its_loop, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
