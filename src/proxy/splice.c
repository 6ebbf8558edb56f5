/* splice.c - the zero-copy body pump (see splice.h). */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "authgate/limits.h"
#include "splice.h"

/* 1 MiB is the unprivileged pipe maximum; fewer wakeups per megabyte. */
#define PIPE_WANT (1024 * 1024)

static void pump(struct ag_splice *s);
static void finish(struct ag_splice *s, int status);

static uint32_t held; /* atomic: every event loop makes pumps (workers N) */

uint32_t ag_splice_fds(void)
{
    return __atomic_load_n(&held, __ATOMIC_RELAXED);
}

static void hold(int n)
{
    if (n > 0)
        __atomic_add_fetch(&held, (uint32_t)n, __ATOMIC_RELAXED);
    else
        __atomic_sub_fetch(&held, (uint32_t)-n, __ATOMIC_RELAXED);
}

static void close_pipe(struct ag_splice *s)
{
    if (s->pipe_r < 0)
        return;
    close(s->pipe_r);
    close(s->pipe_w);
    hold(-2);
    s->pipe_r = s->pipe_w = -1;
    s->in_pipe = 0;
}

static int make_pipe(struct ag_splice *s)
{
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0)
        return -errno;
    hold(2);
    s->pipe_r = p[0];
    s->pipe_w = p[1];
    s->in_pipe = 0;
    int cap = fcntl(s->pipe_w, F_SETPIPE_SZ, PIPE_WANT);
    if (cap <= 0)
        cap = fcntl(s->pipe_w, F_GETPIPE_SZ);
    s->pipe_cap = cap > 0 ? (size_t)cap : 65536;
    return 0;
}

/* Level-triggered, armed only for what blocked. */
static void watch(struct ag_splice_end *e, int events, bool want);

static void on_end_poll(uv_poll_t *h, int status, int events)
{
    (void)events;
    /* The handle's data belongs to the owner (its close callback reads it):
     * the end is found from the handle's place inside it. */
    struct ag_splice_end *e =
        (struct ag_splice_end *)((char *)h - offsetof(struct ag_splice_end, poll));
    struct ag_splice *s = e->user;
    if (!s)
        return;
    if (status < 0)
        finish(s, status);
    else
        pump(s);
}

static void watch(struct ag_splice_end *e, int events, bool want)
{
    if (!e)
        return;
    if (want && !e->polled) {
        uv_poll_start(&e->poll, events, on_end_poll);
        e->polled = true;
    } else if (!want && e->polled) {
        uv_poll_stop(&e->poll);
        e->polled = false;
    }
}

/* The pump lets go of its ends (polls stopped: the streams own the sockets
 * again) and of a pipe that is not empty (bytes of a body that will never
 * be delivered must not reach the next one). */
static void release(struct ag_splice *s)
{
    s->finished = true;
    s->active = false;
    struct ag_splice_end *ends[2] = {s->src, s->dst};
    for (int i = 0; i < 2; i++) {
        if (!ends[i])
            continue;
        watch(ends[i], 0, false);
        if (ends[i]->user == s)
            ends[i]->user = NULL;
    }
    s->src = s->dst = NULL;
    if (s->in_pipe)
        close_pipe(s);
}

static void finish(struct ag_splice *s, int status)
{
    if (s->finished)
        return;
    release(s);
    s->done(s, status);
}

static void pump(struct ag_splice *s)
{
    if (s->finished)
        return;
    bool want_read = false, want_write = false;
    uint64_t burst = 0;
    /* MORE (hold a partial segment for what follows) only while a known
     * length is still to come: a tunnel's bytes are often a whole
     * interactive message that must leave at once. */
    unsigned more = s->open ? 0 : SPLICE_F_MORE;
    for (;;) {
        bool moved = false;
        if (s->in_pipe) {
            ssize_t m = splice(s->pipe_r, NULL, s->dst->fd, NULL, s->in_pipe,
                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK | (s->to_read ? more : 0));
            if (m > 0) {
                s->in_pipe -= (size_t)m;
                s->moved += (uint64_t)m;
                burst += (uint64_t)m;
                moved = true;
            } else if (m < 0 && errno == EAGAIN) {
                want_write = true;
            } else if (m < 0 && errno != EINTR) {
                finish(s, -errno);
                return;
            }
        }
        if (s->to_read && s->in_pipe < s->pipe_cap) {
            size_t want = s->pipe_cap - s->in_pipe;
            if (want > s->to_read)
                want = (size_t)s->to_read;
            ssize_t n =
                splice(s->src->fd, NULL, s->pipe_w, NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n > 0) {
                s->in_pipe += (size_t)n;
                s->to_read -= (uint64_t)n;
                moved = true;
            } else if (n == 0 && s->open) {
                s->to_read = 0; /* the end: deliver what the pipe holds */
                moved = true;
            } else if (n == 0) {
                finish(s, UV_EOF); /* the source ended before the length it announced */
                return;
            } else if (errno == EAGAIN) {
                want_read = true;
            } else if (errno != EINTR) {
                finish(s, -errno);
                return;
            }
        }
        if (!s->to_read && !s->in_pipe) {
            finish(s, 0);
            return;
        }
        if (!moved)
            break;
        if (s->progress)
            s->progress(s);
        if (s->finished)
            return; /* the owner closed the connection */
        want_read = want_write = false;
        if (burst >= AG_SPLICE_BURST) {
            /* Fair to the loop's other connections: come back on the next
             * turn (level-triggered: the polls fire at once if still ready). */
            want_read = s->to_read && s->in_pipe < s->pipe_cap;
            want_write = s->in_pipe > 0;
            break;
        }
    }
    watch(s->src, UV_READABLE, want_read);
    watch(s->dst, UV_WRITABLE, want_write);
}

void ag_splice_end_init(struct ag_splice_end *e)
{
    memset(e, 0, sizeof *e);
    e->fd = -1;
}

int ag_splice_end_open(struct ag_splice_end *e, uv_loop_t *loop, int fd, void *owner)
{
    ag_splice_end_init(e);
    int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (d < 0)
        return -errno;
    int rc = uv_poll_init_socket(loop, &e->poll, d);
    if (rc != 0) {
        close(d); /* (libuv initialises the handle only once it can succeed) */
        return rc;
    }
    hold(1);
    e->fd = d;
    e->poll.data = owner;
    e->open = true;
    return 0;
}

static void on_end_closed(uv_handle_t *h)
{
    struct ag_splice_end *e =
        (struct ag_splice_end *)((char *)h - offsetof(struct ag_splice_end, poll));
    uv_close_cb cb = e->close_cb;
    e->closing = false;
    cb(h); /* last: it may free the owner, and the end with it */
}

void ag_splice_end_close(struct ag_splice_end *e, uv_close_cb close_cb)
{
    if (!e->open)
        return;
    if (e->user)
        ag_splice_halt(e->user);
    e->open = false;
    e->closing = true;
    e->polled = false;
    e->close_cb = close_cb;
    uv_close((uv_handle_t *)&e->poll, on_end_closed);
    /* A closed poll handle no longer watches its fd: the dup can go now. */
    close(e->fd);
    hold(-1);
    e->fd = -1;
}

void ag_splice_init(struct ag_splice *s)
{
    memset(s, 0, sizeof *s);
    s->pipe_r = s->pipe_w = -1;
    ag_splice_end_init(&s->own[0]);
    ag_splice_end_init(&s->own[1]);
}

int ag_splice_run(struct ag_splice *s, struct ag_splice_end *src, struct ag_splice_end *dst,
                  uint64_t len, void *owner, ag_splice_done_cb done,
                  void (*progress)(struct ag_splice *))
{
    if (s->active || !src->open || !dst->open || src->user || dst->user)
        return -EBUSY;
    if (s->pipe_r < 0) {
        int rc = make_pipe(s);
        if (rc != 0)
            return rc;
    }
    s->src = src;
    s->dst = dst;
    src->user = dst->user = s;
    s->to_read = len;
    s->moved = s->taken = 0;
    s->open = len == AG_SPLICE_OPEN;
    s->owner = owner;
    s->done = done;
    s->progress = progress;
    s->finished = false;
    s->active = true;
    if (s->open)
        watch(s->src, UV_READABLE, true);
    else
        pump(s);
    return 0;
}

void ag_splice_halt(struct ag_splice *s)
{
    if (s->active)
        release(s);
}

void ag_splice_drop_pipe(struct ag_splice *s)
{
    if (!s->active)
        close_pipe(s);
}

int ag_splice_start(struct ag_splice *s, uv_loop_t *loop, int src, int dst, uint64_t len,
                    void *owner, ag_splice_done_cb done, void (*progress)(struct ag_splice *))
{
    ag_splice_init(s);
    int rc = make_pipe(s);
    if (rc != 0)
        return rc;
    rc = ag_splice_end_open(&s->own[0], loop, src, owner);
    if (rc != 0) {
        close_pipe(s);
        return rc;
    }
    s->made = true;
    if (ag_splice_end_open(&s->own[1], loop, dst, owner) != 0) {
        /* Half made: the caller counts both handles and closes through
         * ag_splice_close, which stands in for the missing one. */
        s->own[1].poll.data = owner;
        s->finished = true;
        return 1;
    }
    return ag_splice_run(s, &s->own[0], &s->own[1], len, owner, done, progress) == 0 ? 0 : 1;
}

uint64_t ag_splice_take(struct ag_splice *s)
{
    uint64_t n = s->moved - s->taken;
    s->taken = s->moved;
    return n;
}

void ag_splice_close(struct ag_splice *s, uv_close_cb close_cb)
{
    if (!s->made)
        return;
    s->made = false;
    ag_splice_halt(s);
    for (int i = 0; i < 2; i++) {
        if (s->own[i].open)
            ag_splice_end_close(&s->own[i], close_cb);
        else
            close_cb((uv_handle_t *)&s->own[i].poll); /* keep the owner's count balanced */
    }
    close_pipe(s);
}
