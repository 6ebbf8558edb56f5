/* splice.h - zero-copy relay of bytes between sockets: a known number (a
 * body, or one chunk's data), or everything until the source ends (one
 * direction of a CONNECT tunnel).
 *
 * Glossary: pump = splice(2) from the source socket into a pipe, and from
 * the pipe into the destination socket, so bodies move as page references
 * in the kernel and never through user space (a proxy otherwise copies each
 * byte twice more than the client and origin do).
 *
 * The pump watches dup()s of the two sockets with uv_poll handles: the
 * libuv streams that own the sockets must neither read the source nor have
 * writes queued on the destination while it runs. Its two poll handles
 * count as the owner's handles: ag_splice_close() closes them with the
 * owner's close callback. Loop thread only.
 */
#ifndef AG_PROXY_SPLICE_H
#define AG_PROXY_SPLICE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct ag_splice;
/* The length of an open-ended relay: it runs until the source ends. */
#define AG_SPLICE_OPEN UINT64_MAX

/* status 0: every byte delivered (open-ended: the source ended and every
 * byte it sent was delivered); negative: a socket failed or the source
 * ended early. Called once; the owner then calls ag_splice_close(). */
typedef void (*ag_splice_done_cb)(struct ag_splice *s, int status);

struct ag_splice {
    uv_poll_t src_poll, dst_poll;
    int src_fd, dst_fd; /* dups, owned */
    int pipe_r, pipe_w; /* owned */
    size_t in_pipe, pipe_cap;
    uint64_t to_read; /* bytes still to take from the source */
    uint64_t moved;   /* bytes delivered to the destination */
    uint64_t taken;   /* of moved, what ag_splice_take() already returned */
    bool open;        /* open-ended: the source's EOF is the normal end */
    bool running, finished;
    bool src_polled, dst_polled;
    int closing;          /* poll handles closed, their callbacks not yet run */
    uv_close_cb close_cb; /* the owner's, called after ours */
    void *owner;
    ag_splice_done_cb done;
    void (*progress)(struct ag_splice *s); /* bytes moved: restart deadlines */
};

/* Starts moving len bytes from src to dst (the fds of libuv streams). 0 when
 * running (two handles to count, done fires later, maybe at once); a
 * negative errno-style code when nothing was made (relay in user space
 * instead); 1 when half made (count two handles, close at once). The poll
 * handles' data is owner, for the owner's close callback. An open-ended
 * relay (len AG_SPLICE_OPEN) first moves on the loop's next turn, so done
 * never runs inside the start. */
int ag_splice_start(struct ag_splice *s, uv_loop_t *loop, int src, int dst, uint64_t len,
                    void *owner, ag_splice_done_cb done, void (*progress)(struct ag_splice *));
/* Bytes delivered since the last call: for the owner's byte counts, which
 * must be right at any moment (a tunnel's log line is written at close). */
uint64_t ag_splice_take(struct ag_splice *s);
/* A pump that finished with status 0 moves len more bytes between the same
 * sockets (the next chunk of one body: no new pipe, dups or polls). 0 when
 * started (done fires later, maybe at once), negative when it cannot. */
int ag_splice_again(struct ag_splice *s, uint64_t len);
/* Nothing of an earlier pump is still closing: the struct can start again
 * (libuv still owns a closing handle's memory until its callback). */
bool ag_splice_reusable(const struct ag_splice *s);
/* Stops and releases everything; close_cb runs once per poll handle (2). */
void ag_splice_close(struct ag_splice *s, uv_close_cb close_cb);

#endif
