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

/* The handles' data belongs to the owner (its close callback reads it): the
 * pump is found from the handle's place inside struct ag_splice. */
static void on_src_poll(uv_poll_t *h, int status, int events)
{
    struct ag_splice *s = (struct ag_splice *)((char *)h - offsetof(struct ag_splice, src_poll));
    if (status < 0)
        finish(s, status);
    else
        pump(s);
}

static void on_dst_poll(uv_poll_t *h, int status, int events)
{
    struct ag_splice *s = (struct ag_splice *)((char *)h - offsetof(struct ag_splice, dst_poll));
    if (status < 0)
        finish(s, status);
    else
        pump(s);
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
    uint64_t burst = 0;
    /* MORE (hold a partial segment for what follows) only while a known
     * length is still to come: a tunnel's bytes are often a whole
     * interactive message that must leave at once. */
    unsigned more = s->open ? 0 : SPLICE_F_MORE;
    for (;;) {
        bool moved = false;
        if (s->in_pipe) {
            ssize_t m = splice(s->pipe_r, NULL, s->dst_fd, NULL, s->in_pipe,
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
                splice(s->src_fd, NULL, s->pipe_w, NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
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
    /* Level-triggered polls, armed only for what blocked. */
    if (want_read && !s->src_polled) {
        uv_poll_start(&s->src_poll, UV_READABLE, on_src_poll);
        s->src_polled = true;
    } else if (!want_read && s->src_polled) {
        uv_poll_stop(&s->src_poll);
        s->src_polled = false;
    }
    if (want_write && !s->dst_polled) {
        uv_poll_start(&s->dst_poll, UV_WRITABLE, on_dst_poll);
        s->dst_polled = true;
    } else if (!want_write && s->dst_polled) {
        uv_poll_stop(&s->dst_poll);
        s->dst_polled = false;
    }
}

int ag_splice_start(struct ag_splice *s, uv_loop_t *loop, int src, int dst, uint64_t len,
                    void *owner, ag_splice_done_cb done, void (*progress)(struct ag_splice *))
{
    memset(s, 0, sizeof *s);
    s->src_fd = s->dst_fd = s->pipe_r = s->pipe_w = -1;
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0)
        return -errno;
    s->pipe_r = p[0];
    s->pipe_w = p[1];
    int cap = fcntl(s->pipe_w, F_SETPIPE_SZ, PIPE_WANT);
    if (cap <= 0)
        cap = fcntl(s->pipe_w, F_GETPIPE_SZ);
    s->pipe_cap = cap > 0 ? (size_t)cap : 65536;
    s->src_fd = fcntl(src, F_DUPFD_CLOEXEC, 0);
    s->dst_fd = fcntl(dst, F_DUPFD_CLOEXEC, 0);
    if (s->src_fd < 0 || s->dst_fd < 0 || uv_poll_init_socket(loop, &s->src_poll, s->src_fd) != 0) {
        int e = -errno;
        if (s->src_fd >= 0)
            close(s->src_fd);
        if (s->dst_fd >= 0)
            close(s->dst_fd);
        close(s->pipe_r);
        close(s->pipe_w);
        return e ? e : -EIO;
    }
    s->src_poll.data = owner;
    if (uv_poll_init_socket(loop, &s->dst_poll, s->dst_fd) != 0) {
        /* Half made: the caller counts both handles and closes through
         * ag_splice_close, which stands in for the missing one. */
        s->dst_poll.data = owner;
        s->running = true;
        s->finished = true;
        s->dst_fd = -1 - s->dst_fd; /* mark: dst poll not initialised */
        return 1;
    }
    s->dst_poll.data = owner;
    s->to_read = len;
    s->open = len == AG_SPLICE_OPEN;
    s->owner = owner;
    s->done = done;
    s->progress = progress;
    s->running = true;
    if (s->open) {
        uv_poll_start(&s->src_poll, UV_READABLE, on_src_poll);
        s->src_polled = true;
    } else {
        pump(s);
    }
    return 0;
}

uint64_t ag_splice_take(struct ag_splice *s)
{
    uint64_t n = s->moved - s->taken;
    s->taken = s->moved;
    return n;
}

int ag_splice_again(struct ag_splice *s, uint64_t len)
{
    if (!s->running || !s->finished || s->open || s->in_pipe || s->to_read)
        return -1;
    s->finished = false;
    s->to_read = len;
    pump(s);
    return 0;
}

bool ag_splice_reusable(const struct ag_splice *s)
{
    return !s->running && !s->closing;
}

static void on_src_closed(uv_handle_t *h)
{
    struct ag_splice *s = (struct ag_splice *)((char *)h - offsetof(struct ag_splice, src_poll));
    uv_close_cb cb = s->close_cb;
    s->closing--;
    cb(h); /* last: it may free the owner, and s with it */
}

static void on_dst_closed(uv_handle_t *h)
{
    struct ag_splice *s = (struct ag_splice *)((char *)h - offsetof(struct ag_splice, dst_poll));
    uv_close_cb cb = s->close_cb;
    s->closing--;
    cb(h);
}

void ag_splice_close(struct ag_splice *s, uv_close_cb close_cb)
{
    if (!s->running)
        return;
    s->running = false;
    s->finished = true;
    s->close_cb = close_cb;
    s->closing = 1;
    uv_close((uv_handle_t *)&s->src_poll, on_src_closed);
    /* A closed poll handle no longer watches its fd: the dups can go now. */
    close(s->src_fd);
    if (s->dst_fd >= 0) {
        s->closing++;
        uv_close((uv_handle_t *)&s->dst_poll, on_dst_closed);
        close(s->dst_fd);
    } else {
        close(-1 - s->dst_fd);
        close_cb((uv_handle_t *)&s->dst_poll); /* keep the owner's count balanced */
    }
    close(s->pipe_r);
    close(s->pipe_w);
    s->src_fd = s->dst_fd = s->pipe_r = s->pipe_w = -1;
}
