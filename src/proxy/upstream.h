/* upstream.h - one connection from the gateway to an origin server.
 *
 * Glossary: resolve = uv_getaddrinfo with a deadline (numeric hosts skip it);
 * connect = try each resolved address in turn, each with its own deadline;
 * pooled = idle after a finished exchange: in the loop's shared pool
 * (src/server/uppool.c, owner NULL) for any client's next request to the
 * same hop, or, when pinned, kept by its client connection alone;
 * pinned = the connection carried connection-oriented origin auth (NTLM,
 * Negotiate): it belongs to its client connection for life (MS-NTHT).
 *
 * Ownership: the client connection owns its upstream (ag_upstream_close hands
 * it to libuv; the memory is freed by the last close callback). While a
 * getaddrinfo request runs it holds its own allocation, so a timed-out or
 * closed upstream never dangles. Loop thread only.
 */
#ifndef AG_PROXY_UPSTREAM_H
#define AG_PROXY_UPSTREAM_H

#include <llhttp.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "http/head.h"
#include "http/target.h"
#include "util/list.h"

struct ag_upstream;
/* status: 0 connected, AG_ENOTFOUND (name), AG_EIO (refused/unreachable on
 * every address), AG_ELIMIT (a deadline passed: DNS or connect), AG_EUNSUPP
 * (the last address was refused: by the filter, or this_network). */
typedef void (*ag_upstream_ready_cb)(struct ag_upstream *up, int status);
/* Decides whether an address may be connected to (access rules with dst=);
 * false skips it. NULL allows every address. Status AG_EUNSUPP when every
 * address was refused. */
typedef bool (*ag_upstream_filter)(void *owner, const struct sockaddr *sa);

struct gai_ctx;
struct ag_tls_pipe;
struct ag_attempt;
struct ag_splice_end;

struct ag_upstream {
    uv_tcp_t *tcp;              /* the connected socket (inside its attempt), NULL before */
    struct ag_attempt *attempt; /* connect in progress, NULL when none */
    uv_timer_t timer;
    int handles; /* open handles; memory freed when it reaches 0 after close */
    bool closing;
    void *owner; /* the client connection; NULL once detached */
    ag_upstream_ready_cb ready_cb;
    ag_upstream_filter filter;
    char host[AG_HOST_MAX + 1];
    uint16_t port;
    char peer_ip[48];        /* address actually connected, for the access log */
    struct addrinfo *ai;     /* owned result list */
    struct addrinfo *ai_cur; /* address being tried */
    struct gai_ctx *gai;     /* pending resolution, NULL when none */
    bool connected;
    uint32_t connect_timeout_ms;
    int last_err;      /* why the last address failed */
    bool this_network; /* an address was skipped as 0.0.0.0/8 or :: (never connected) */

    /* response side, driven by the connection module */
    llhttp_t parser;
    struct ag_head head;
    size_t out_pending; /* bytes queued to the origin, not yet written */
    bool reading;
    bool reused;     /* this exchange runs on a pooled connection */
    bool idle;       /* pooled */
    bool via_parent; /* connected to a parent proxy, not an origin (pool reuse checks it) */
    bool pinned;     /* connection-bound origin auth seen: never in the shared pool */
    bool in_pool;    /* linked in the loop's shared pool (owner NULL) */
    struct ag_list_node pool_node; /* in the shared pool's list, newest first (in_pool) */
    void *pool_srv;                /* the loop whose pool holds it (in_pool) */
    char parent_name[64];          /* the parent's name ("" direct): part of the pool key */
    struct ag_tls_pipe *tls; /* "parent ... tls": the TLS layer (tls_pipe.h) over tcp, else NULL;
                                freed with the upstream's memory, never before */
    struct ag_splice_end *sp_end; /* the splice end on tcp (splice.h): made by the first body
                                     spliced from it, kept while the socket lives (pooled too,
                                     its poll stopped), closed with it; NULL before */
};

/* Allocates an upstream for host:port and starts resolving and connecting;
 * ready_cb fires exactly once unless ag_upstream_close comes first. */
struct ag_upstream *ag_upstream_open(uv_loop_t *loop, void *owner, const struct ag_target *t,
                                     uint32_t dns_timeout_ms, uint32_t connect_timeout_ms,
                                     ag_upstream_ready_cb cb, ag_upstream_filter filter);
/* Upstream connections alive (pooled or busy), for the fd budget. */
uint32_t ag_upstream_live(void);

/* Detaches from the owner, cancels pending work and closes the handles.
 * Accepts NULL. No callback fires for the owner after this. */
void ag_upstream_close(struct ag_upstream *up);

/* The splice end (a dup of the socket with a poll handle) for bodies
 * spliced from this connection, made on first use and kept until
 * ag_upstream_close. NULL when it cannot be made, or the connection is not
 * connected or closing. *reused: it existed already. */
struct ag_splice_end *ag_upstream_splice_end(struct ag_upstream *up, bool *reused);

/* True when socket fd, connected to peer, is connected to itself: a
 * connect to a local port nobody listens on, from an ephemeral port that
 * happens to be the same number, completes as a TCP simultaneous open, and
 * what we write comes back as the "response" (a CONNECT would answer 200
 * and echo the client). Still happens on Linux 6.18: connect() picks even
 * ephemeral ports, so a target such as 127.0.0.1:40002 (even, in
 * ip_local_port_range, no listener) connected to itself after ~10,000
 * attempts. Treated as connection refused. */
bool ag_upstream_self_connected(int fd, const struct sockaddr *peer);

#endif
