/* conn.c - client connection lifecycle, I/O and backpressure (see conn.h).
 *
 * Everything that is HTTP semantics lives in exchange.c; this file moves
 * bytes, enforces the buffer ceilings and deadlines, and owns teardown. */
#include <arpa/inet.h>
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "authgate/limits.h"
#include "auth.h"
#include "conn.h"
#include "http/proxyproto.h"
#include "session/table.h"
#include "util/addr.h"
#include "util/log.h"

struct wreq {
    uv_write_t req;
    void *target; /* struct conn (to_client) or struct ag_upstream */
    bool to_client;
    char *data; /* owned */
    size_t len;
};

static void on_read_client(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void on_read_up(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

/* --- state ------------------------------------------------------------------ */

/* legal[from][to]: the moves listed in conn.h. FLUSH_CLOSE and CLOSING are
 * reachable from every live state (a reply that ends the connection, an
 * error, a kick) and lead only onwards. */
#define LIVE(to) [CONN_FLUSH_CLOSE] = true, [CONN_CLOSING] = true, [to] = true
static const bool legal[CONN_STATES][CONN_STATES] = {
    [CONN_NEW] = {[CONN_READ_HEAD] = true, [CONN_CLOSING] = true},
    [CONN_READ_HEAD] = {LIVE(CONN_READ_HEAD), [CONN_AUTH_VERIFY] = true, [CONN_UPSTREAM] = true,
                        [CONN_FORWARD] = true},
    [CONN_AUTH_VERIFY] = {LIVE(CONN_READ_HEAD)},
    [CONN_UPSTREAM] = {LIVE(CONN_READ_HEAD), [CONN_FORWARD] = true, [CONN_TUNNEL] = true},
    [CONN_FORWARD] = {LIVE(CONN_READ_HEAD), [CONN_UPSTREAM] = true},
    [CONN_TUNNEL] = {LIVE(CONN_TUNNEL)},
    [CONN_FLUSH_CLOSE] = {[CONN_CLOSING] = true},
};
#undef LIVE

void conn_enter(struct conn *c, enum conn_state to)
{
    (void)legal; /* read only by the assert (compiled out with NDEBUG) */
    assert(c->state < CONN_STATES && to < CONN_STATES && legal[c->state][to]);
    c->state = to;
}

void conn_request_reset(struct conn *c, uint64_t now_ms)
{
    struct conn_request *rq = &c->rq;
    free(rq->log_url);
    free(rq->resp_extra);
    ag_buf_free(&rq->req_head_up);
    memset(rq, 0, sizeof *rq);
    ag_buf_init(&rq->req_head_up, 2 * AG_HEADER_MAX);
    rq->t_start_ms = now_ms;
}

/* --- teardown -------------------------------------------------------------- */

void conn_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles > 0)
        return;
    struct ag_server *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->n_conns--;
    ag_head_free(&c->head);
    ag_buf_free(&c->inbuf);
    ag_buf_free(&c->stage_client);
    ag_buf_free(&c->stage_up);
    conn_request_reset(c, 0); /* frees what the last exchange owned */
    ag_config_unref(c->cfg);
    free(c);
    ag_server_conn_gone(srv);
}

void conn_close(struct conn *c, const char *reason)
{
    if (c->state == CONN_CLOSING)
        return;
    ag_debug("conn=%llu event=close reason=%s", (unsigned long long)c->id, reason);
    if (c->state == CONN_TUNNEL)
        exchange_log(c);
    ag_auth_close(c);
    if (c->splicing) {
        c->splicing = false;
        ag_splice_close(&c->sp, conn_handle_closed);
    }
    conn_enter(c, CONN_CLOSING);
    ag_upstream_close(c->up);
    c->up = NULL;
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;
    conn_close(c, "done");
}

static void on_flush_deadline(uv_timer_t *t)
{
    conn_close(t->data, "flush_timeout");
}

void conn_close_after_flush(struct conn *c)
{
    if (conn_ending(c))
        return;
    conn_enter(c, CONN_FLUSH_CLOSE);
    ag_upstream_close(c->up);
    c->up = NULL;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_close(c, "shutdown_failed");
        return;
    }
    /* A client that never reads must not hold us forever. */
    uv_timer_start(&c->timer, on_flush_deadline, AG_FLUSH_TIMEOUT_MS, 0);
}

/* --- timers ---------------------------------------------------------------- */

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    struct ag_stats *st = &c->srv->stats;
    switch (c->state) {
    case CONN_READ_HEAD:
        if (c->pp_wait) {
            st->timeout_proxy_header++;
            ag_info("conn=%llu event=proxy_protocol_refused client=%s reason=timeout "
                    "received=%zu",
                    (unsigned long long)c->id, c->peer, c->inbuf.len);
            conn_close(c, "proxy_protocol_timeout");
        } else if (c->rq.drain) {
            /* A refused request whose announced body did not come in time:
             * it would hold the connection (and a handshake slot) for ever. */
            st->timeout_drain++;
            ag_info("conn=%llu event=drain_timeout client=%s drained=%llu",
                    (unsigned long long)c->id, c->peer, (unsigned long long)c->rq.drained);
            conn_close(c, "drain_timeout");
        } else if (c->rq.in_message || c->rq.head_bytes) {
            st->timeout_head++;
            ag_info("conn=%llu event=head_timeout client=%s", (unsigned long long)c->id, c->peer);
            conn_close(c, "head_timeout");
        } else if (c->session && c->session->in_handshake) {
            c->srv->auth.fail_timeout++;
            ag_info("conn=%llu event=handshake_timeout client=%s", (unsigned long long)c->id,
                    c->peer);
            conn_close(c, "handshake_timeout");
        } else {
            st->timeout_idle++;
            conn_close(c, "idle_timeout");
        }
        break;
    case CONN_AUTH_VERIFY:
        ag_auth_timeout(c);
        break;
    case CONN_TUNNEL:
        st->timeout_tunnel++;
        conn_close(c, "tunnel_idle_timeout");
        break;
    default:
        conn_close(c, "timeout");
        break;
    }
}

void conn_set_timer(struct conn *c, uint64_t ms)
{
    if (conn_ending(c))
        return;
    if (ms)
        uv_timer_start(&c->timer, on_timer, ms, 0);
    else
        uv_timer_stop(&c->timer);
}

/* --- writing --------------------------------------------------------------- */

static void on_written(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct conn *c;
    if (w->to_client) {
        c = w->target;
        c->out_pending -= w->len;
    } else {
        struct ag_upstream *up = w->target;
        up->out_pending -= w->len;
        c = up->owner;
    }
    free(w->data);
    free(w);
    if (!c || c->state == CONN_CLOSING)
        return;
    if (status < 0) {
        conn_close(c, "write_error");
        return;
    }
    conn_update_reading(c);
}

static void do_write(struct conn *c, uv_stream_t *s, void *target, bool to_client, char *data,
                     size_t len)
{
    struct wreq *w = malloc(sizeof *w);
    if (!w) {
        free(data);
        conn_close(c, "nomem");
        return;
    }
    w->target = target;
    w->to_client = to_client;
    w->data = data;
    w->len = len;
    uv_buf_t b = uv_buf_init(data, (unsigned)len);
    if (uv_write(&w->req, s, &b, 1, on_written) != 0) {
        free(data);
        free(w);
        conn_close(c, "write_failed");
        return;
    }
    if (to_client) {
        c->out_pending += len;
        conn_count_out(c, len);
    } else {
        ((struct ag_upstream *)target)->out_pending += len;
    }
}

void conn_count_out(struct conn *c, uint64_t n)
{
    c->rq.bytes_sent += n;
    c->bytes_out += n;
    c->srv->stats.bytes_out += n;
}

void conn_write_client(struct conn *c, char *data, size_t len)
{
    if (conn_ending(c)) {
        free(data);
        return;
    }
    do_write(c, (uv_stream_t *)&c->tcp, c, true, data, len);
}

void conn_write_up(struct conn *c, char *data, size_t len)
{
    if (c->state == CONN_CLOSING || !c->up || !c->up->tcp) {
        free(data);
        return;
    }
    do_write(c, (uv_stream_t *)c->up->tcp, c->up, false, data, len);
}

void conn_flush(struct conn *c)
{
    size_t n;
    if (c->stage_up.len) {
        char *d = ag_buf_steal(&c->stage_up, &n);
        conn_write_up(c, d, n);
    }
    if (c->stage_client.len) {
        char *d = ag_buf_steal(&c->stage_client, &n);
        conn_write_client(c, d, n);
    }
}

/* --- reading and backpressure ---------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    char *p = malloc(AG_READ_CHUNK);
    *buf = uv_buf_init(p, p ? AG_READ_CHUNK : 0);
}

/* Client reads never bring more than the input buffer can still take
 * (tunnels have no input buffer: full-size reads). */
static void on_alloc_client(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    size_t room = AG_READ_CHUNK;
    if (c->state != CONN_TUNNEL && AG_INBUF_MAX - c->inbuf.len < room)
        room = AG_INBUF_MAX - c->inbuf.len;
    char *p = room ? malloc(room) : NULL;
    *buf = uv_buf_init(p, p ? (unsigned)room : 0);
}

void conn_update_reading(struct conn *c)
{
    if (conn_ending(c))
        return;
    struct ag_upstream *up = c->up;
    bool want_client =
        !c->eof && c->inbuf.len < AG_INBUF_MAX && !(up && up->out_pending >= AG_WRITE_HIGH_WATER);
    if (c->state == CONN_TUNNEL)
        want_client = !c->tun_client_eof && !(up && up->out_pending >= AG_WRITE_HIGH_WATER);
    if (want_client && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc_client, on_read_client) == 0)
            c->reading = true;
    } else if (!want_client && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
        if (c->inbuf.len >= AG_INBUF_MAX)
            c->srv->stats.limit_inbuf_full++;
    }
    if (!up || !up->connected || up->closing)
        return;
    if (c->rq.splice_pending && c->out_pending == 0) {
        exchange_start_splice(c);
        return;
    }
    bool want_up =
        !c->splicing && !c->rq.splice_pending && c->out_pending < AG_WRITE_HIGH_WATER &&
        (up->idle || c->state == CONN_FORWARD || (c->state == CONN_TUNNEL && !c->tun_up_eof));
    if (want_up && !up->reading) {
        if (uv_read_start((uv_stream_t *)up->tcp, on_alloc, on_read_up) == 0)
            up->reading = true;
    } else if (!want_up && up->reading) {
        uv_read_stop((uv_stream_t *)up->tcp);
        up->reading = false;
    }
}

static void free_shutdown_req(uv_shutdown_t *req, int status)
{
    free(req);
}

static void tunnel_eof(struct conn *c, bool from_client)
{
    /* Half-close: pass the EOF on, close once both directions ended. */
    uv_stream_t *other = from_client ? (uv_stream_t *)c->up->tcp : (uv_stream_t *)&c->tcp;
    if (from_client)
        c->tun_client_eof = true;
    else
        c->tun_up_eof = true;
    if (c->tun_client_eof && c->tun_up_eof) {
        conn_close(c, "tunnel_done");
        return;
    }
    uv_shutdown_t *req = malloc(sizeof *req);
    if (!req || uv_shutdown(req, other, free_shutdown_req) != 0) {
        free(req);
        conn_close(c, "tunnel_shutdown");
        return;
    }
    conn_update_reading(c);
}

static void on_read_client(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (n <= 0) {
        free(buf->base);
        if (n == 0 || n == UV_ENOBUFS)
            return; /* nothing read (ENOBUFS: no room; reads stop below) */
        if (c->state == CONN_TUNNEL && n == UV_EOF && c->up) {
            tunnel_eof(c, true);
            return;
        }
        if (c->pp_wait) {
            c->srv->stats.proxy_truncated++;
            ag_info("conn=%llu event=proxy_protocol_refused client=%s reason=truncated "
                    "received=%zu",
                    (unsigned long long)c->id, c->peer, c->inbuf.len);
            conn_close(c, "proxy_protocol_truncated");
            return;
        }
        /* A client that half-closes after a complete request still gets its
         * response; anything else is the end of the connection. */
        if (n == UV_EOF && c->rq.msg_done &&
            (c->state == CONN_FORWARD || c->state == CONN_UPSTREAM)) {
            c->eof = true;
            c->rq.close_after = true;
            conn_update_reading(c);
            return;
        }
        conn_close(c, n == UV_EOF ? "client_eof" : "client_error");
        return;
    }
    c->bytes_in += (uint64_t)n;
    c->srv->stats.bytes_in += (uint64_t)n;
    if (c->state == CONN_TUNNEL) {
        conn_set_timer(c, c->cfg->tunnel_idle_timeout_ms);
        conn_write_up(c, buf->base, (size_t)n); /* the read buffer becomes the write */
        conn_update_reading(c);
        return;
    }
    int rc = ag_buf_append(&c->inbuf, buf->base, (size_t)n);
    ag_wipe(buf->base, (size_t)n); /* raw request bytes: Proxy-Authorization */
    free(buf->base);
    if (rc != 0) {
        c->srv->stats.limit_inbuf_full++;
        conn_close(c, "inbuf_full");
        return;
    }
    conn_parse(c);
}

static void on_read_up(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct ag_upstream *up = s->data;
    struct conn *c = up->owner;
    if (!c || n == 0) {
        free(buf->base);
        return;
    }
    if (n < 0) {
        free(buf->base);
        if (c->state == CONN_TUNNEL && n == UV_EOF) {
            tunnel_eof(c, false);
            return;
        }
        exchange_on_upstream_eof(c, (int)n);
        return;
    }
    if (c->state == CONN_TUNNEL) {
        conn_set_timer(c, c->cfg->tunnel_idle_timeout_ms);
        conn_count_out(c, (uint64_t)n);
        c->out_pending += (size_t)n;
        /* Hand the read buffer to the client write without a copy. */
        struct wreq *w = malloc(sizeof *w);
        if (!w) {
            c->out_pending -= (size_t)n;
            free(buf->base);
            conn_close(c, "nomem");
            return;
        }
        w->target = c;
        w->to_client = true;
        w->data = buf->base;
        w->len = (size_t)n;
        uv_buf_t b = uv_buf_init(buf->base, (unsigned)n);
        if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
            c->out_pending -= (size_t)n;
            free(buf->base);
            free(w);
            conn_close(c, "write_failed");
            return;
        }
        conn_update_reading(c);
        return;
    }
    exchange_on_upstream_read(c, n, buf->base);
    free(buf->base);
}

/* --- parsing --------------------------------------------------------------- */

/* The connection's client address becomes sa (the TCP peer's at accept,
 * the PROXY header's once taken): rules, throttles, handshake caps, logs,
 * sessions and X-Forwarded-For all read it from here. */
static void set_peer(struct conn *c, const struct sockaddr *sa)
{
    memset(&c->peer_addr, 0, sizeof c->peer_addr);
    memcpy(&c->peer_addr, sa,
           sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    ag_addr_text(sa, c->peer, sizeof c->peer);
}

/* A proxy_protocol connection's first bytes: the balancer's PROXY header,
 * consumed before llhttp sees a byte (what follows it in the same read is
 * the start of the first request). True once it is taken; false while
 * more is needed or when the connection was closed for it. */
static bool take_proxy_header(struct conn *c)
{
    struct ag_proxy_header h;
    const char *why = "";
    struct ag_stats *st = &c->srv->stats;
    int rc =
        ag_proxy_parse((const uint8_t *)c->inbuf.data, c->inbuf.len, AG_PROXY_HEADER_MAX, &h, &why);
    if (rc == AG_EAGAIN)
        return false;
    if (rc != 0) {
        if (rc == AG_ELIMIT)
            st->proxy_too_long++;
        else
            st->proxy_invalid++;
        ag_info("conn=%llu event=proxy_protocol_refused client=%s reason=%s error=\"%s\"",
                (unsigned long long)c->id, c->peer, rc == AG_ELIMIT ? "too_long" : "invalid", why);
        conn_close(c, "proxy_protocol_invalid");
        return false;
    }
    ag_buf_consume(&c->inbuf, h.len);
    c->pp_wait = false;
    if (h.local) {
        st->proxy_local++;
        ag_debug("conn=%llu event=proxy_protocol_local balancer=%s version=%d",
                 (unsigned long long)c->id, c->peer, h.version);
    } else {
        st->proxy_headers++;
        char balancer[sizeof c->peer];
        memcpy(balancer, c->peer, sizeof balancer);
        set_peer(c, (const struct sockaddr *)&h.src);
        ag_debug("conn=%llu event=proxy_protocol client=%s balancer=%s version=%d",
                 (unsigned long long)c->id, c->peer, balancer, h.version);
    }
    conn_set_timer(c, ag_auth_wait_timeout(c));
    return true;
}

void conn_parse(struct conn *c)
{
    if (c->parsing)
        return; /* the running loop below picks up the new state */
    if (c->pp_wait && !take_proxy_header(c)) {
        conn_update_reading(c);
        return;
    }
    c->parsing = true;
    while (!conn_ending(c) && !c->paused && (c->inbuf.len > 0 || c->kick)) {
        c->kick = false;
        const char *data = c->inbuf.len ? c->inbuf.data : "";
        size_t len = c->inbuf.len;
        enum llhttp_errno e = llhttp_execute(&c->parser, data, len);
        size_t used = len;
        if (e != HPE_OK) {
            const char *pos = llhttp_get_error_pos(&c->parser);
            used = (pos && pos >= data && pos <= data + len) ? (size_t)(pos - data) : len;
        }
        if (c->state == CONN_READ_HEAD && !c->rq.msg_done && !c->rq.drain) {
            if (!c->head_ready)
                c->rq.head_bytes += used;
            /* obs-fold and bare LF (head.h). The range [0, used) holds
             * only head bytes: the parser pauses just past the head's last
             * LF. */
            if (!c->rq.head_defect)
                c->rq.head_defect = ag_head_scan_defects(data, used, c->head.n_fields > 0,
                                                         &c->rq.last_lf, &c->rq.last_cr);
            if (c->rq.head_defect && e == HPE_OK)
                e = HPE_USER;
        }
        conn_flush(c);
        if (c->rq.head_defect) {
            ag_buf_consume(&c->inbuf, len);
            c->srv->stats.bad_requests++;
            ag_info("conn=%llu event=bad_request client=%s status=400 error=\"%s\"",
                    (unsigned long long)c->id, c->peer, c->rq.head_defect);
            c->rq.keepalive = false;
            c->rq.close_after = true;
            exchange_reply(c, 400, NULL, c->rq.head_defect);
            break;
        }
        if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
            c->paused = true;
        } else if (e != HPE_OK) {
            ag_buf_consume(&c->inbuf, len);
            char why[96];
            const char *r = e == HPE_CB_CHUNK_HEADER ? exchange_chunk_too_big
                                                     : llhttp_get_error_reason(&c->parser);
            ag_escape(why, sizeof why, r, strlen(r));
            c->rq.keepalive = false;
            c->rq.close_after = true;
            if (c->rq.drain) {
                /* The refused request has its answer already: a malformed
                 * body ends the connection without a second response. */
                c->srv->stats.bad_requests++;
                ag_info("conn=%llu event=bad_drained_body client=%s error=\"%s\"",
                        (unsigned long long)c->id, c->peer, why);
                conn_close_after_flush(c);
                break;
            }
            int status = c->head.err == AG_ELIMIT ? 431 : 400;
            if (status == 431)
                c->srv->stats.header_too_large++;
            else
                c->srv->stats.bad_requests++;
            ag_info("conn=%llu event=bad_request client=%s status=%d error=\"%s\"",
                    (unsigned long long)c->id, c->peer, status, why);
            exchange_reply(c, status, NULL, status == 431 ? "header section too large" : NULL);
            break;
        }
        ag_buf_consume(&c->inbuf, used);
        if (c->state == CONN_READ_HEAD && !c->head_ready && c->rq.head_bytes > c->cfg->header_max) {
            c->srv->stats.header_too_large++;
            c->rq.keepalive = false;
            c->rq.close_after = true;
            exchange_reply(c, 431, NULL, "header section too large");
            break;
        }
        if (c->head_ready) {
            c->head_ready = false;
            exchange_on_head(c);
        } else if (c->rq.msg_done) {
            exchange_maybe_done(c);
        }
    }
    c->parsing = false;
    conn_update_reading(c);
}

/* --- accept ---------------------------------------------------------------- */

void conn_resume(struct conn *c)
{
    c->paused = false;
    c->kick = true;
    llhttp_resume(&c->parser);
    conn_parse(c);
}

void conn_refresh_config(struct conn *c)
{
    if (c->cfg != c->srv->cfg) {
        ag_config_unref(c->cfg);
        c->cfg = ag_config_ref(c->srv->cfg);
        c->head.limit = c->cfg->header_max;
        c->head.raw.max = c->cfg->header_max;
    }
}

/* A proxy_protocol listener takes connections only from the balancers
 * in proxy_protocol_from: anyone else could name any client address. */
static bool proxy_peer_trusted(const struct conn *c)
{
    const struct ag_cidrlist *l = &c->cfg->proxy_protocol_from;
    for (size_t i = 0; i < l->n; i++)
        if (ag_cidr_match(&l->v[i], (const struct sockaddr *)&c->peer_addr))
            return true;
    return false;
}

void ag_conn_accept(struct ag_server *srv, uv_stream_t *listener)
{
    const struct ag_listener *l = listener->data;
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    uv_tcp_init(srv->loop, &c->tcp);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        c->srv = srv;
        c->handles = 1;
        c->tcp.data = c;
        /* Not yet on the list: close the bare handle and free directly. */
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    c->srv = srv;
    c->cfg = ag_config_ref(srv->cfg);
    c->id = ++srv->next_conn_id;
    c->created_ms = uv_now(srv->loop);
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->n_conns++;
    srv->stats.conns_accepted++;
    uv_tcp_nodelay(&c->tcp, 1);

    struct sockaddr_storage ss;
    int sl = sizeof ss;
    strcpy(c->peer, "-");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0)
        set_peer(c, (const struct sockaddr *)&ss);
    ag_head_init(&c->head, c->cfg->header_max);
    ag_buf_init(&c->inbuf, AG_INBUF_MAX);
    /* Staging buffers hold what one read produces plus framing overhead. */
    ag_buf_init(&c->stage_client, 2 * AG_READ_CHUNK + 4096);
    ag_buf_init(&c->stage_up, 2 * AG_INBUF_MAX + 4096);
    conn_request_reset(c, c->created_ms);
    llhttp_init(&c->parser, HTTP_REQUEST, &ag_request_settings);
    c->parser.data = c;
    conn_enter(c, CONN_READ_HEAD);
    if (l->proxy_protocol) {
        if (c->peer_addr.ss_family == 0) {
            /* Reset before we looked (a balancer's connect-only check):
             * no peer, nothing to refuse. */
            conn_close(c, "peer_gone");
            return;
        }
        if (!proxy_peer_trusted(c)) {
            srv->stats.proxy_untrusted++;
            ag_info("conn=%llu event=proxy_protocol_refused client=%s reason=untrusted "
                    "note=\"not in proxy_protocol_from\"",
                    (unsigned long long)c->id, c->peer);
            conn_close(c, "proxy_protocol_untrusted");
            return;
        }
        c->pp_wait = true;
        conn_set_timer(c, c->cfg->proxy_protocol_timeout_ms);
    } else {
        conn_set_timer(c, ag_auth_wait_timeout(c));
    }
    conn_update_reading(c);
}

void ag_conn_drain_all(struct ag_server *srv, bool force)
{
    struct conn *c = srv->conns, *next;
    for (; c; c = next) {
        next = c->next;
        if (force) {
            conn_close(c, "shutdown");
        } else if (c->state == CONN_READ_HEAD && !c->rq.in_message && c->inbuf.len == 0) {
            conn_close(c, "shutdown_idle");
        } else {
            c->rq.close_after = true;
        }
    }
}
