/* work.c - the thread-pool wrapper (see work.h). */
#include <stdlib.h>

#include "authgate/err.h"
#include "work.h"

static void work_cb(uv_work_t *req)
{
    struct ag_job *j = req->data;
    j->ops->run(j);
}

static void after_work_cb(uv_work_t *req, int status)
{
    struct ag_job *j = req->data;
    struct ag_workers *w = j->w;
    w->in_flight--;
    if (status == UV_ECANCELED)
        w->cancelled++;
    else
        w->completed++;
    if (j->owner && status != UV_ECANCELED)
        j->ops->done(j, j->owner);
    j->ops->release(j);
    free(j);
}

int ag_job_submit(struct ag_workers *w, struct ag_job *j, void *owner)
{
    if (w->in_flight >= w->max_jobs) {
        w->refused_cap++;
        return AG_EAGAIN;
    }
    j->w = w;
    j->owner = owner;
    j->req.data = j;
    j->queued_ms = uv_now(w->loop);
    if (uv_queue_work(w->loop, &j->req, work_cb, after_work_cb) != 0)
        return AG_EIO;
    w->in_flight++;
    w->submitted++;
    return 0;
}

void ag_job_detach(struct ag_job *j)
{
    if (!j || !j->owner)
        return;
    j->owner = NULL;
    j->w->detached++;
    /* Succeeds only if the job has not started; either way after_work runs. */
    uv_cancel((uv_req_t *)&j->req);
}
