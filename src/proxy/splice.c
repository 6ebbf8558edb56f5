/* splice.c - the zero-copy body pump (see splice.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "splice.h"

/* 1 MiB is the unprivileged pipe maximum; fewer wakeups per megabyte. */
#define PIPE_WANT (1024 * 1024)

static void pump(struct ag_splice *s);

static void finish(struct ag_splice *s, int status);

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct ag_splice *s = h->data;
    if (status < 0)
        finish(s, status);
    else
        pump(s);
}

/* The pump's memory goes with its last handle: until libuv ran a handle's
 * close callback the handle sits on its loop's closing queue, and memory
 * reused for a new handle before that puts it there twice. */
static void on_poll_closed(uv_handle_t *h)
{
    struct ag_splice *s = h->data;
    if (--s->open_handles == 0)
        free(s);
}

static void finish(struct ag_splice *s, int status)
{
    if (s->finished)
        return;
    s->finished = true;
    if (s->src_polled)
        uv_poll_stop(&s->src_poll);
    if (s->dst_polled)
        uv_poll_stop(&s->dst_poll);
    s->src_polled = s->dst_polled = false;
    s->done(s, status);
}

static void pump(struct ag_splice *s)
{
    if (s->finished)
        return;
    bool want_read = false, want_write = false;
    for (;;) {
        bool moved = false;
        if (s->in_pipe) {
            ssize_t m =
                splice(s->pipe_r, NULL, s->dst_fd, NULL, s->in_pipe,
                       SPLICE_F_MOVE | SPLICE_F_NONBLOCK | (s->to_read ? SPLICE_F_MORE : 0));
            if (m > 0) {
                s->in_pipe -= (size_t)m;
                s->moved += (uint64_t)m;
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
                splice(s->src_fd, NULL, s->pipe_w, NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n > 0) {
                s->in_pipe += (size_t)n;
                s->to_read -= (uint64_t)n;
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
        want_read = want_write = false;
    }
    /* Level-triggered polls, armed only for what blocked. */
    if (want_read && !s->src_polled) {
        uv_poll_start(&s->src_poll, UV_READABLE, on_poll);
        s->src_polled = true;
    } else if (!want_read && s->src_polled) {
        uv_poll_stop(&s->src_poll);
        s->src_polled = false;
    }
    if (want_write && !s->dst_polled) {
        uv_poll_start(&s->dst_poll, UV_WRITABLE, on_poll);
        s->dst_polled = true;
    } else if (!want_write && s->dst_polled) {
        uv_poll_stop(&s->dst_poll);
        s->dst_polled = false;
    }
}

struct ag_splice *ag_splice_open(uv_loop_t *loop, int src, int dst, uint64_t len, void *owner,
                                 ag_splice_done_cb done, void (*progress)(struct ag_splice *),
                                 int *err)
{
    struct ag_splice *s = calloc(1, sizeof *s);
    if (!s) {
        *err = -ENOMEM;
        return NULL;
    }
    s->src_fd = s->dst_fd = s->pipe_r = s->pipe_w = -1;
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) {
        *err = -errno;
        free(s);
        return NULL;
    }
    s->pipe_r = p[0];
    s->pipe_w = p[1];
    int cap = fcntl(s->pipe_w, F_SETPIPE_SZ, PIPE_WANT);
    if (cap <= 0)
        cap = fcntl(s->pipe_w, F_GETPIPE_SZ);
    s->pipe_cap = cap > 0 ? (size_t)cap : 65536;
    s->src_fd = fcntl(src, F_DUPFD_CLOEXEC, 0);
    s->dst_fd = fcntl(dst, F_DUPFD_CLOEXEC, 0);
    int rc = -EIO;
    if (s->src_fd < 0 || s->dst_fd < 0)
        rc = errno ? -errno : -EIO;
    else if ((rc = uv_poll_init_socket(loop, &s->src_poll, s->src_fd)) == 0 &&
             (rc = uv_poll_init_socket(loop, &s->dst_poll, s->dst_fd)) != 0) {
        /* Half made: the source's handle is closed like a whole pump's,
         * and frees the pump. */
        s->src_poll.data = s;
        s->open_handles = 1;
        uv_close((uv_handle_t *)&s->src_poll, on_poll_closed);
        close(s->src_fd);
        close(s->dst_fd);
        close(s->pipe_r);
        close(s->pipe_w);
        *err = rc;
        return NULL;
    }
    if (rc != 0) {
        if (s->src_fd >= 0)
            close(s->src_fd);
        if (s->dst_fd >= 0)
            close(s->dst_fd);
        close(s->pipe_r);
        close(s->pipe_w);
        free(s);
        *err = rc;
        return NULL;
    }
    s->src_poll.data = s->dst_poll.data = s;
    s->open_handles = 2;
    s->to_read = len;
    s->owner = owner;
    s->done = done;
    s->progress = progress;
    s->running = true;
    return s;
}

void ag_splice_run(struct ag_splice *s)
{
    pump(s);
}

void ag_splice_close(struct ag_splice *s)
{
    if (!s || !s->running)
        return;
    s->running = false;
    s->finished = true;
    uv_close((uv_handle_t *)&s->src_poll, on_poll_closed);
    uv_close((uv_handle_t *)&s->dst_poll, on_poll_closed);
    /* A closed poll handle no longer watches its fd: the dups can go now. */
    close(s->src_fd);
    close(s->dst_fd);
    close(s->pipe_r);
    close(s->pipe_w);
    s->src_fd = s->dst_fd = s->pipe_r = s->pipe_w = -1;
}
