/* splice.h - zero-copy relay of a known number of bytes between sockets.
 *
 * Glossary: pump = splice(2) from the source socket into a pipe, and from
 * the pipe into the destination socket, so bodies move as page references
 * in the kernel and never through user space (a proxy otherwise copies each
 * byte twice more than the client and origin do).
 *
 * The pump watches dup()s of the two sockets with uv_poll handles: the
 * libuv streams that own the sockets must neither read the source nor have
 * writes queued on the destination while it runs.
 *
 * Ownership: a pump is its own allocation, holding its two poll handles,
 * and frees itself from the close callback of the last of them. Never
 * embedded in its owner and never reused: libuv keeps a closed handle on its
 * loop's closing queue until the end of that loop turn, and the next
 * response's pump may start within the same turn (a handle initialised
 * again there was queued twice: libuv's uv__finish_close assertion aborted
 * the daemon). Loop thread only.
 */
#ifndef AG_PROXY_SPLICE_H
#define AG_PROXY_SPLICE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct ag_splice;
/* status 0: every byte delivered; negative: a socket failed or the source
 * ended early. Called once; the owner then calls ag_splice_close(). */
typedef void (*ag_splice_done_cb)(struct ag_splice *s, int status);

struct ag_splice {
    uv_poll_t src_poll, dst_poll; /* data: the pump */
    int open_handles;             /* not yet through their close callback */
    int src_fd, dst_fd;           /* dups, owned */
    int pipe_r, pipe_w;           /* owned */
    size_t in_pipe, pipe_cap;
    uint64_t to_read; /* bytes still to take from the source */
    uint64_t moved;   /* bytes delivered to the destination */
    bool running, finished;
    bool src_polled, dst_polled;
    void *owner;
    ag_splice_done_cb done;
    void (*progress)(struct ag_splice *s); /* bytes moved: restart deadlines */
};

/* Makes a pump that will move len bytes from src to dst (the fds of libuv
 * streams); nothing moves before ag_splice_run. NULL with *err (a negative
 * errno-style code) when it cannot be made: relay in user space instead. */
struct ag_splice *ag_splice_open(uv_loop_t *loop, int src, int dst, uint64_t len, void *owner,
                                 ag_splice_done_cb done, void (*progress)(struct ag_splice *),
                                 int *err);
/* Moves what can move now, then waits on the sockets; done may run before
 * this returns (the whole rest was readable and writable at once). */
void ag_splice_run(struct ag_splice *s);
/* Stops the pump: its descriptors close now, its memory once both poll
 * handles are closed. Neither done nor progress runs after this. Accepts
 * NULL and a pump already closed. */
void ag_splice_close(struct ag_splice *s);

#endif
