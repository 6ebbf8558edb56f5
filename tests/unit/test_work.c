/* test_work.c - the verification job wrapper: completion, detach while the
 * job runs (the owner went away), cancel before it starts, and the cap.
 * A run function blocks on a semaphore so the test decides when the pool
 * thread finishes; ASan proves nothing is touched after free. */
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

struct tjob {
    struct ag_job base;
    bool block;
    int *payload; /* owned: freed in release, so ASan catches a double free */
};

static void t_run(struct ag_job *j)
{
    struct tjob *t = (struct tjob *)j;
    if (t->block) {
        sem_post(&started);
        sem_wait(&release);
    }
    *t->payload = 42;
    j->result = 7;
}

static void t_done(struct ag_job *j, void *owner)
{
    struct tjob *t = (struct tjob *)j;
    assert_int_equal(*t->payload, 42);
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
    t->payload = calloc(1, sizeof *t->payload);
    return t;
}

static int setup(void **state)
{
    sem_init(&started, 0, 0);
    sem_init(&release, 0, 0);
    done_calls = release_calls = 0;
    return 0;
}

static void test_completes(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct ag_workers w = {.loop = &loop, .max_jobs = 4};
    int owner = 0;
    assert_int_equal(ag_job_submit(&w, &mk(false)->base, &owner), 0);
    assert_int_equal(w.in_flight, 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(owner, 1);
    assert_int_equal(done_calls, 1);
    assert_int_equal(release_calls, 1);
    assert_int_equal(w.in_flight, 0);
    assert_int_equal(w.completed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* The client closes while its verification runs on a pool thread: the job
 * is detached, finishes later, and frees itself without calling done. */
static void test_detach_while_running(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct ag_workers w = {.loop = &loop, .max_jobs = 4};
    int *owner = calloc(1, sizeof *owner);
    struct tjob *t = mk(true);
    assert_int_equal(ag_job_submit(&w, &t->base, owner), 0);
    sem_wait(&started); /* the run function is now blocked on a pool thread */
    ag_job_detach(&t->base);
    free(owner);        /* the owner is gone: done must never see it */
    assert_int_equal(w.detached, 1);
    sem_post(&release);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(done_calls, 0);
    assert_int_equal(release_calls, 1);
    assert_int_equal(w.in_flight, 0);
    assert_int_equal(w.completed, 1);
    assert_int_equal(w.cancelled, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* A job still queued behind busy threads is cancelled by detach. */
static void test_detach_cancels_queued(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct ag_workers w = {.loop = &loop, .max_jobs = 64};
    int owner = 0;
    /* Occupy every pool thread (UV_THREADPOOL_SIZE=2 below). */
    struct tjob *b1 = mk(true), *b2 = mk(true);
    assert_int_equal(ag_job_submit(&w, &b1->base, &owner), 0);
    assert_int_equal(ag_job_submit(&w, &b2->base, &owner), 0);
    sem_wait(&started);
    sem_wait(&started);
    struct tjob *q = mk(false);
    assert_int_equal(ag_job_submit(&w, &q->base, &owner), 0);
    ag_job_detach(&q->base);
    sem_post(&release);
    sem_post(&release);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(done_calls, 2);
    assert_int_equal(release_calls, 3);
    assert_int_equal(w.cancelled, 1);
    assert_int_equal(w.in_flight, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_cap(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct ag_workers w = {.loop = &loop, .max_jobs = 1};
    int owner = 0;
    assert_int_equal(ag_job_submit(&w, &mk(false)->base, &owner), 0);
    struct tjob *over = mk(false);
    assert_int_equal(ag_job_submit(&w, &over->base, &owner), AG_EAGAIN);
    assert_int_equal(w.refused_cap, 1);
    t_release(&over->base); /* still the caller's on refusal */
    free(over);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(done_calls, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    setenv("UV_THREADPOOL_SIZE", "2", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_completes, setup),
        cmocka_unit_test_setup(test_detach_while_running, setup),
        cmocka_unit_test_setup(test_detach_cancels_queued, setup),
        cmocka_unit_test_setup(test_cap, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
