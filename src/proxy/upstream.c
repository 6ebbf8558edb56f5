/* upstream.c - resolve and connect with deadlines (see upstream.h).
 *
 * Each connect attempt owns a fresh socket handle: a failed or timed-out
 * attempt is abandoned (its back pointer cleared) and frees itself from its
 * close callback, so no handle memory is ever reused while libuv holds it. */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "authgate/err.h"
#include "splice.h"
#include "tls_pipe.h"
#include "upstream.h"
#include "util/log.h"

/* A resolution outlives a timed-out upstream: it is freed by its own callback. */
struct gai_ctx {
    uv_getaddrinfo_t req;
    struct ag_upstream *up; /* NULL once abandoned */
};

struct ag_attempt {
    uv_tcp_t tcp; /* first member: the handle pointer is the attempt pointer */
    uv_connect_t req;
    struct ag_upstream *up; /* NULL once abandoned */
};

static void start_connect(struct ag_upstream *up);

static uint32_t live; /* atomic: every event loop opens upstreams (workers N) */

uint32_t ag_upstream_live(void)
{
    return __atomic_load_n(&live, __ATOMIC_RELAXED);
}

static void free_upstream_if_done(struct ag_upstream *up)
{
    if (--up->handles == 0) {
        __atomic_sub_fetch(&live, 1, __ATOMIC_RELAXED);
        if (up->ai)
            freeaddrinfo(up->ai);
        ag_head_free(&up->head);
        free(up->sp_end); /* (closed: its callback came first) */
        if (up->tls) {
            ag_tls_pipe_free(up->tls);
            free(up->tls);
        }
        free(up);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    free_upstream_if_done(h->data);
}

static void on_tcp_closed(uv_handle_t *h)
{
    struct ag_upstream *up = h->data;
    free(h); /* the attempt */
    free_upstream_if_done(up);
}

static void on_sp_end_closed(uv_handle_t *h)
{
    free_upstream_if_done(h->data);
}

struct ag_splice_end *ag_upstream_splice_end(struct ag_upstream *up, bool *reused)
{
    *reused = false;
    if (!up->tcp || !up->connected || up->closing)
        return NULL;
    if (up->sp_end && up->sp_end->open) {
        *reused = true;
        return up->sp_end;
    }
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)up->tcp, &fd) != 0)
        return NULL;
    if (!up->sp_end && !(up->sp_end = malloc(sizeof *up->sp_end)))
        return NULL;
    if (ag_splice_end_open(up->sp_end, up->tcp->loop, fd, up) != 0)
        return NULL;
    up->handles++; /* its poll handle: the memory waits for its close */
    return up->sp_end;
}

static void free_attempt(uv_handle_t *h)
{
    free(h);
}

static void abandon_attempt(struct ag_upstream *up)
{
    struct ag_attempt *a = up->attempt;
    if (!a)
        return;
    up->attempt = NULL;
    a->up = NULL;
    uv_close((uv_handle_t *)&a->tcp, free_attempt);
}

static void finish(struct ag_upstream *up, int status)
{
    uv_timer_stop(&up->timer);
    ag_upstream_ready_cb cb = up->ready_cb;
    up->ready_cb = NULL;
    if (cb && up->owner)
        cb(up, status);
}

void ag_upstream_close(struct ag_upstream *up)
{
    if (!up || up->closing)
        return;
    up->closing = true;
    up->owner = NULL;
    up->ready_cb = NULL;
    if (up->gai) {
        up->gai->up = NULL;
        uv_cancel((uv_req_t *)&up->gai->req);
        up->gai = NULL;
    }
    abandon_attempt(up);
    /* The dup would hold the socket open past its close (and in the pool,
     * past its eviction): it goes with the socket. */
    if (up->sp_end)
        ag_splice_end_close(up->sp_end, on_sp_end_closed);
    uv_close((uv_handle_t *)&up->timer, on_timer_closed);
    if (up->tcp)
        uv_close((uv_handle_t *)up->tcp, on_tcp_closed);
}

static void on_timeout(uv_timer_t *t)
{
    struct ag_upstream *up = t->data;
    if (up->gai) {
        /* DNS deadline: abandon the resolution; its callback frees it. */
        up->gai->up = NULL;
        uv_cancel((uv_req_t *)&up->gai->req);
        up->gai = NULL;
        ag_debug("event=upstream_resolve_timeout host=%s", up->host);
        finish(up, AG_ELIMIT);
        return;
    }
    if (up->attempt) {
        ag_debug("event=upstream_connect_timeout host=%s ip=%s", up->host, up->peer_ip);
        up->last_err = AG_ELIMIT;
        abandon_attempt(up);
        up->ai_cur = up->ai_cur ? up->ai_cur->ai_next : NULL;
        start_connect(up);
    }
}

bool ag_upstream_self_connected(int fd, const struct sockaddr *peer)
{
    /* The peer is the address we connected to: only our own end costs a
     * syscall (getsockname), once per new upstream connection. */
    struct sockaddr_storage me;
    socklen_t ml = sizeof me;
    if (getsockname(fd, (struct sockaddr *)&me, &ml) != 0 || me.ss_family != peer->sa_family)
        return false;
    if (me.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)&me, *b = (const void *)peer;
        return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
    }
    if (me.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)&me, *b = (const void *)peer;
        return a->sin6_port == b->sin6_port &&
               memcmp(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr) == 0;
    }
    return false;
}

static void on_connect(uv_connect_t *req, int status)
{
    struct ag_attempt *a = req->data;
    struct ag_upstream *up = a->up;
    if (!up)
        return; /* abandoned: its close callback frees it */
    uv_os_fd_t fd;
    if (status == 0 && up->ai_cur && uv_fileno((uv_handle_t *)&a->tcp, &fd) == 0 &&
        ag_upstream_self_connected(fd, up->ai_cur->ai_addr))
        status = UV_ECONNREFUSED;
    if (status == 0) {
        up->attempt = NULL;
        up->tcp = &a->tcp;
        up->tcp->data = up;
        up->handles++;
        up->connected = true;
        finish(up, 0);
        return;
    }
    ag_debug("event=upstream_connect_failed host=%s ip=%s error=%s", up->host, up->peer_ip,
             uv_strerror(status));
    up->last_err = AG_EIO;
    abandon_attempt(up);
    up->ai_cur = up->ai_cur ? up->ai_cur->ai_next : NULL;
    start_connect(up);
}

static void start_connect(struct ag_upstream *up)
{
    for (; up->ai_cur; up->ai_cur = up->ai_cur->ai_next) {
        struct addrinfo *ai = up->ai_cur;
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        /* 0.0.0.0 or :: (literal, or from DNS) would connect to this host
         * itself: never a destination, whatever the rules say. */
        if (ag_addr_this_network(ai->ai_addr)) {
            up->this_network = true;
            up->last_err = AG_EUNSUPP;
            continue;
        }
        if (up->filter && up->owner && !up->filter(up->owner, ai->ai_addr)) {
            up->last_err = AG_EUNSUPP;
            continue;
        }
        const void *src = ai->ai_family == AF_INET
                              ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                              : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        inet_ntop(ai->ai_family, src, up->peer_ip, sizeof up->peer_ip);
        struct ag_attempt *a = calloc(1, sizeof *a);
        if (!a) {
            up->last_err = AG_ENOMEM;
            break;
        }
        uv_tcp_init(up->timer.loop, &a->tcp);
        a->tcp.data = up;
        a->up = up;
        a->req.data = a;
        uv_tcp_nodelay(&a->tcp, 1);
        if (uv_tcp_connect(&a->req, &a->tcp, ai->ai_addr, on_connect) != 0) {
            a->up = NULL;
            uv_close((uv_handle_t *)&a->tcp, free_attempt);
            up->last_err = AG_EIO;
            continue;
        }
        up->attempt = a;
        uv_timer_start(&up->timer, on_timeout, up->connect_timeout_ms, 0);
        return;
    }
    finish(up, up->last_err ? up->last_err : AG_EIO);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct gai_ctx *g = req->data;
    struct ag_upstream *up = g->up;
    free(g);
    if (!up) {
        if (res)
            uv_freeaddrinfo(res);
        return;
    }
    up->gai = NULL;
    uv_timer_stop(&up->timer);
    if (status != 0 || !res) {
        if (res)
            uv_freeaddrinfo(res);
        ag_debug("event=upstream_resolve_failed host=%s error=%s", up->host, uv_strerror(status));
        finish(up, AG_ENOTFOUND);
        return;
    }
    up->ai = res;
    up->ai_cur = res;
    start_connect(up);
}

/* Deferred start so ready_cb never runs inside ag_upstream_open. */
static void on_start(uv_timer_t *t)
{
    struct ag_upstream *up = t->data;
    start_connect(up);
}

struct ag_upstream *ag_upstream_open(uv_loop_t *loop, void *owner, const struct ag_target *t,
                                     uint32_t dns_timeout_ms, uint32_t connect_timeout_ms,
                                     ag_upstream_ready_cb cb, ag_upstream_filter filter)
{
    struct ag_upstream *up = calloc(1, sizeof *up);
    if (!up)
        return NULL;
    __atomic_add_fetch(&live, 1, __ATOMIC_RELAXED);
    up->owner = owner;
    up->ready_cb = cb;
    up->filter = filter;
    up->connect_timeout_ms = connect_timeout_ms;
    snprintf(up->host, sizeof up->host, "%s", t->host);
    up->port = t->port;
    ag_head_init(&up->head, AG_HEADER_MAX);
    uv_timer_init(loop, &up->timer);
    up->timer.data = up;
    up->handles = 1;

    char port[8];
    snprintf(port, sizeof port, "%u", t->port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;

    /* Numeric hosts skip the thread pool entirely. */
    struct addrinfo *res = NULL;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    if (getaddrinfo(t->host, port, &hints, &res) == 0) {
        up->ai = res;
        up->ai_cur = res;
        uv_timer_start(&up->timer, on_start, 0, 0);
        return up;
    }
    hints.ai_flags = AI_NUMERICSERV;
    struct gai_ctx *g = calloc(1, sizeof *g);
    if (!g) {
        ag_upstream_close(up);
        return NULL;
    }
    g->up = up;
    g->req.data = g;
    if (uv_getaddrinfo(loop, &g->req, on_resolved, t->host, port, &hints) != 0) {
        free(g);
        ag_upstream_close(up);
        return NULL;
    }
    up->gai = g;
    uv_timer_start(&up->timer, on_timeout, dns_timeout_ms, 0);
    return up;
}
