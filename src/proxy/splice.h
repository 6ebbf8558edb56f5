/* splice.h - zero-copy relay of bytes between sockets: a known number (a
 * body, or one chunk's data), or everything until the source ends (one
 * direction of a CONNECT tunnel).
 *
 * Glossary: pump = splice(2) from the source socket into a pipe, and from
 * the pipe into the destination socket, so bodies move as page references
 * in the kernel and never through user space (a proxy otherwise copies each
 * byte twice more than the client and origin do).
 *
 * The pump watches dup()s of the two sockets with uv_poll handles (ends):
 * the libuv streams that own the sockets must neither read the source nor
 * have writes queued on the destination while it runs. An end's poll
 * handle counts as its owner's handle and closes with the owner's close
 * callback. Loop thread only.
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
 * ended early. Called once per start or run. */
typedef void (*ag_splice_done_cb)(struct ag_splice *s, int status);

/* One socket's side of the pumps: a dup of the socket (libuv allows one
 * handle per fd, and the socket's own stream holds it) with a poll handle
 * on the dup. A body pump borrows two ends for one body; an end is kept as
 * long as its socket lives (the client's with its connection, an
 * upstream's with the upstream, whose life the shared pool decides), so
 * the dup, the poll's set-up and its close are paid once per socket, not
 * once per body. Its poll is stopped (no epoll interest) whenever no pump
 * runs on it: the socket's libuv stream then reads and writes alone. */
struct ag_splice_end {
    uv_poll_t poll;         /* data: the owner, for the owner's close callback */
    int fd;                 /* the dup (owned), -1 when none */
    bool open;              /* poll initialised, not closing: usable */
    bool closing;           /* uv_close called, its callback not yet run */
    bool polled;            /* poll started */
    struct ag_splice *user; /* the pump its events drive, NULL when none */
    uv_close_cb close_cb;   /* the owner's, called after ours */
};

struct ag_splice {
    struct ag_splice_end *src, *dst; /* borrowed (a body) or own[] (a tunnel) */
    struct ag_splice_end own[2];     /* a tunnel pump's own ends (ag_splice_start) */
    int pipe_r, pipe_w;              /* owned, kept across runs while empty; -1 none */
    size_t in_pipe, pipe_cap;
    uint64_t to_read; /* bytes still to take from the source */
    uint64_t moved;   /* bytes delivered to the destination */
    uint64_t taken;   /* of moved, what ag_splice_take() already returned */
    bool open;        /* open-ended: the source's EOF is the normal end */
    bool active;      /* between a start or run and its end (done, or a halt) */
    bool finished;    /* done ran (or the pump was halted): no more events */
    bool made;        /* a tunnel pump's own ends exist: ag_splice_close releases them */
    void *owner;
    ag_splice_done_cb done;
    void (*progress)(struct ag_splice *s); /* bytes moved: restart deadlines */
};

/* Descriptors the pumps hold now (dups and pipes, kept or running), over
 * every loop: the descriptor budget counts them. */
uint32_t ag_splice_fds(void);

/* An end that was never opened (and a closed one, after its callback). */
void ag_splice_end_init(struct ag_splice_end *e);
/* Dups fd (a libuv stream's socket) and initialises the poll handle on the
 * dup (its data: owner). 0: open, one handle for the owner to count;
 * negative errno-style: nothing made. */
int ag_splice_end_open(struct ag_splice_end *e, uv_loop_t *loop, int fd, void *owner);
/* Closes an open end (nothing when it is not open): a pump running on it is
 * halted without its done callback (the caller ends that pump's owner too).
 * close_cb runs once, later; the end's memory must live until then. */
void ag_splice_end_close(struct ag_splice_end *e, uv_close_cb close_cb);

/* A body pump that has never run: no pipe, no ends. */
void ag_splice_init(struct ag_splice *s);
/* Moves len bytes from src to dst (open ends, not used by another pump) with
 * the pump's pipe (made on the first run, kept while it is left empty). 0
 * when running (done fires later, maybe at once, inside this call);
 * negative when nothing started (relay in user space instead). No handle
 * is made or closed: a run costs no set-up system call once the pipe and
 * the ends exist. */
int ag_splice_run(struct ag_splice *s, struct ag_splice_end *src, struct ag_splice_end *dst,
                  uint64_t len, void *owner, ag_splice_done_cb done,
                  void (*progress)(struct ag_splice *));
/* Stops a running pump without its done callback (its owner is closing):
 * polls stopped, ends given back, a pipe left with bytes in it closed. */
void ag_splice_halt(struct ag_splice *s);
/* Closes the kept pipe of a pump that does not run (idle release, close). */
void ag_splice_drop_pipe(struct ag_splice *s);

/* A tunnel direction: its own pipe and two own ends (dups of src and dst).
 * 0 when running (two handles to count, done fires later); a negative
 * errno-style code when nothing was made (relay in user space instead); 1
 * when half made (count two handles, close at once). An open-ended relay
 * (len AG_SPLICE_OPEN) first moves on the loop's next turn, so done never
 * runs inside the start. */
int ag_splice_start(struct ag_splice *s, uv_loop_t *loop, int src, int dst, uint64_t len,
                    void *owner, ag_splice_done_cb done, void (*progress)(struct ag_splice *));
/* Bytes delivered since the last call: for the owner's byte counts, which
 * must be right at any moment (a tunnel's log line is written at close). */
uint64_t ag_splice_take(struct ag_splice *s);
/* Stops and releases a tunnel pump's ends and pipe; close_cb runs once per
 * own end (2). */
void ag_splice_close(struct ag_splice *s, uv_close_cb close_cb);

#endif
