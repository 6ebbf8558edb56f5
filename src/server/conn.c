/* conn.c - client connection lifecycle, I/O and backpressure (see conn.h).
 *
 * Everything that is HTTP semantics lives in exchange.c; this file moves
 * bytes, enforces the buffer ceilings and deadlines, and owns teardown. */
#include <arpa/inet.h>
#include <assert.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "authgate/err.h"
#include "authgate/limits.h"
#include "auth.h"
#include "conn.h"
#include "http/proxyproto.h"
#include "session/table.h"
#include "tls.h"
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
static bool take_proxy_header(struct conn *c);

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

/* What every idle keep-alive client costs is mostly this struct (its
 * buffers go back at AG_IDLE_RELEASE_MS): parts only some phases need
 * (TLS, splice, a shutdown, a parent's failure reason) are made on first
 * use instead, and this keeps a new field from quietly growing it. */
_Static_assert(sizeof(struct conn) <= AG_CONN_STRUCT_MAX,
               "struct conn grew past AG_CONN_STRUCT_MAX: move the field into a lazy part");

void conn_enter(struct conn *c, enum conn_state to)
{
    /* A closed connection stays closed, in every build: a caller that went
     * on after something it called closed the connection would otherwise
     * bring it back to life, and its next conn_close would close the same
     * libuv handles twice (libuv aborts). Refused, logged, counted. */
    static const char *const names[CONN_STATES] = {
        [CONN_NEW] = "new",
        [CONN_READ_HEAD] = "read_head",
        [CONN_AUTH_VERIFY] = "auth_verify",
        [CONN_UPSTREAM] = "upstream",
        [CONN_FORWARD] = "forward",
        [CONN_TUNNEL] = "tunnel",
        [CONN_FLUSH_CLOSE] = "flush_close",
        [CONN_CLOSING] = "closing",
    };
    if (c->state == CONN_CLOSING) {
        c->srv->stats.conn_state_refused++;
        ag_warn("conn=%llu event=state_refused from=closing to=%s note=\"a bug: the connection "
                "stays closed\"",
                (unsigned long long)c->id, to < CONN_STATES && names[to] ? names[to] : "?");
        return;
    }
    (void)legal; /* read only by the assert (compiled out with NDEBUG) */
    assert(c->state < CONN_STATES && to < CONN_STATES && legal[c->state][to]);
    c->state = to;
}

void conn_request_reset(struct conn *c, uint64_t now_ms)
{
    struct conn_request *rq = &c->rq;
    free(rq->resp_extra);
    free(rq->parent_why);
    free_parent_auth(c);
    /* The upstream head's block serves the next exchange (wiped now). */
    struct ag_buf head_up = rq->req_head_up;
    ag_buf_consume(&head_up, head_up.len);
    head_up.max = 2 * AG_HEADER_MAX;
    memset(rq, 0, sizeof *rq);
    rq->req_head_up = head_up;
    rq->t_start_ms = now_ms;
    rq->id = ++c->srv->next_req_id;
}

/* --- teardown -------------------------------------------------------------- */

static void conn_unref(struct conn *c)
{
    if (--c->handles > 0)
        return;
    struct ag_server *srv = c->srv;
    ag_list_remove(&srv->conns, &c->node);
    srv->n_conns--;
    ag_head_free(&c->head);
    ag_buf_free(&c->inbuf);
    ag_buf_free(&c->stage_client);
    ag_buf_free(&c->stage_up);
    conn_request_reset(c, 0); /* frees what the last exchange owned */
    conn_tls_free(c);
    ag_buf_free(&c->rq.req_head_up);
    ag_buf_free(&c->url_text);
    free(c->sp);
    ag_config_unref(c->cfg);
    free(c->tun_sp);
    free(c);
    ag_server_conn_gone(srv);
}

void conn_handle_closed(uv_handle_t *h)
{
    conn_unref(h->data);
}

/* The idle release closed the client socket's splice end: the pump's
 * memory (which holds the end) goes now, before the count drops. */
static void sp_end_retired(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (c->sp_retire) {
        c->sp_retire = false;
        free(c->sp);
        c->sp = NULL;
    }
    conn_unref(c);
}

struct ag_splice_end *conn_splice_end(struct conn *c)
{
    if (c->sp_retire)
        return NULL; /* (its end is still closing) */
    if (!c->sp) {
        if (!(c->sp = malloc(sizeof *c->sp)))
            return NULL;
        ag_splice_init(&c->sp->pump);
        ag_splice_init(&c->sp->req);
        ag_splice_end_init(&c->sp->end);
    }
    if (c->sp->end.open) {
        c->srv->stats.splice_ends_reused++;
        return &c->sp->end;
    }
    uv_os_fd_t fd;
    if (c->sp->end.closing || uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 ||
        ag_splice_end_open(&c->sp->end, c->srv->loop, fd, c) != 0)
        return NULL;
    c->handles++;
    return &c->sp->end;
}

/* Lets go of the kept pipe and the client socket's end (an idle connection,
 * or one closing); close_cb counts the end's handle down. */
static void sp_release(struct conn *c, uv_close_cb close_cb)
{
    if (!c->sp)
        return;
    if (c->splicing) {
        c->splicing = false;
        ag_splice_halt(&c->sp->pump);
    }
    if (c->req_splicing) {
        c->req_splicing = false;
        ag_splice_halt(&c->sp->req);
    }
    ag_splice_drop_pipe(&c->sp->pump);
    ag_splice_drop_pipe(&c->sp->req);
    ag_splice_end_close(&c->sp->end, close_cb);
}

void conn_close(struct conn *c, const char *reason)
{
    if (c->state == CONN_CLOSING)
        return;
    ag_debug("conn=%llu event=close reason=%s", (unsigned long long)c->id, reason);
    if (c->state == CONN_TUNNEL)
        exchange_log(c);
    ag_auth_close(c);
    sp_release(c, conn_handle_closed);
    if (c->tun_spliced) {
        c->tun_spliced = false;
        ag_splice_close(&c->tun_sp[0], conn_handle_closed);
        ag_splice_close(&c->tun_sp[1], conn_handle_closed);
    }
    conn_enter(c, CONN_CLOSING);
    ag_upstream_close(c->up);
    c->up = NULL;
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
}

/* The lingering close (AG_LINGER_TIMEOUT_MS): input after our FIN is
 * dropped into a per-thread sink (each worker loop has its own thread). */
static void linger_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static _Thread_local char sink[4096];
    (void)h;
    (void)hint;
    *buf = uv_buf_init(sink, sizeof sink);
}

static void linger_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    if (n < 0)
        conn_close(s->data, n == UV_EOF ? "done" : "linger_error");
}

static void on_linger_deadline(uv_timer_t *t)
{
    struct conn *c = t->data;
    c->srv->stats.timeout_linger++;
    conn_close(c, "linger_timeout");
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;
    free(req); /* runs even when the close cancels it (UV_ECANCELED) */
    if (status != 0 || c->state != CONN_FLUSH_CLOSE ||
        uv_read_start((uv_stream_t *)&c->tcp, linger_alloc, linger_read) != 0) {
        conn_close(c, "done");
        return;
    }
    c->reading = true;
    uv_timer_start(&c->timer, on_linger_deadline, AG_LINGER_TIMEOUT_MS, 0);
}

static void on_flush_deadline(uv_timer_t *t)
{
    conn_close(t->data, "flush_timeout");
}

void conn_close_after_flush(struct conn *c)
{
    if (conn_ending(c))
        return;
    /* Nothing more is expected from the client (its request was read
     * whole, nothing follows it in the buffer, and it asked for the close
     * or half-closed) and the response is out of our hands: close now.
     * The lingering close (shutdown, then read until EOF) guards against
     * a reset destroying the response when unread input remains; nginx
     * lingers only then too. Saves a shutdown, a read and two epoll_ctl
     * per "Connection: close" request. */
    if (!c->tls && !c->splicing && c->out_pending == 0 && c->inbuf.len == 0 && c->rq.msg_done &&
        !c->rq.drain && (c->eof || !c->rq.keepalive)) {
        conn_close(c, "done");
        return;
    }
    if (c->tls)
        conn_tls_close_notify(c);
    conn_enter(c, CONN_FLUSH_CLOSE);
    ag_upstream_close(c->up);
    c->up = NULL;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
    /* Made here, not kept in every connection: only its last moments
     * need it (freed by on_shutdown). */
    uv_shutdown_t *req = malloc(sizeof *req);
    if (req)
        req->data = c;
    if (!req || uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(req);
        conn_close(c, "shutdown_failed");
        return;
    }
    /* A client that never reads must not hold us forever. */
    uv_timer_start(&c->timer, on_flush_deadline, AG_FLUSH_TIMEOUT_MS, 0);
}

/* --- timers ---------------------------------------------------------------- */

/* Nothing of an exchange in progress: between requests, input empty. */
static bool conn_idle(const struct conn *c)
{
    return c->state == CONN_READ_HEAD && !c->rq.in_message && !c->rq.head_bytes && !c->rq.drain &&
           !c->pp_wait && !c->parsing && !c->head_ready && !c->rq.log_url && c->inbuf.len == 0 &&
           c->stage_client.len == 0 && c->stage_up.len == 0;
}

static bool holds_blocks(const struct conn *c)
{
    return c->inbuf.cap || c->head.raw.cap || c->head.cap_fields || c->stage_client.cap ||
           c->stage_up.cap || c->rq.req_head_up.cap || c->url_text.cap || c->sp;
}

static void on_trim(uv_timer_t *t)
{
    struct ag_server *srv = t->data;
    malloc_trim(0);
    srv->stats.heap_trims++;
}

/* AG_IDLE_RELEASE_MS: an idle connection's blocks go back (wiped). */
static void release_blocks(struct conn *c)
{
    ag_buf_free(&c->inbuf);
    ag_head_release(&c->head);
    ag_buf_free(&c->stage_client);
    ag_buf_free(&c->stage_up);
    ag_buf_free(&c->rq.req_head_up);
    ag_buf_free(&c->url_text);
    /* idle: no pump runs. The pipe goes now; the memory holding the end's
     * poll handle only once libuv is done with it (sp_end_retired). */
    if (c->sp && !c->splicing && !c->req_splicing && !c->sp_retire) {
        if (c->sp->end.open) {
            c->sp_retire = true;
            sp_release(c, sp_end_retired);
        } else if (!c->sp->end.closing) {
            sp_release(c, NULL); /* (the pipes: no end to close) */
            free(c->sp);
            c->sp = NULL;
        }
    }
    if (c->up && c->up->idle)
        ag_head_release(&c->up->head);
    c->srv->stats.idle_released++;
    /* Once the loop has stopped its own timers are closing. */
    if (!c->srv->stopped && !uv_is_active((uv_handle_t *)&c->srv->trim_timer))
        uv_timer_start(&c->srv->trim_timer, on_trim, AG_HEAP_TRIM_DELAY_MS, 0);
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    struct ag_stats *st = &c->srv->stats;
    if (c->release_due) {
        /* The release point on the way to the deadline conn_set_timer got. */
        c->release_due = false;
        if (conn_idle(c))
            release_blocks(c);
        uint64_t now = uv_now(c->srv->loop);
        if (c->timer_due_ms > now) {
            uv_timer_start(&c->timer, on_timer, c->timer_due_ms - now, 0);
            return;
        }
    }
    switch (c->state) {
    case CONN_READ_HEAD:
        if (c->tls && !c->pp_wait && !conn_tls_handshaken(c)) {
            st->timeout_tls_handshake++;
            ag_info("conn=%llu event=tls_handshake_timeout client=%s received=%llu",
                    (unsigned long long)c->id, c->peer, (unsigned long long)c->bytes_in);
            conn_close(c, "tls_handshake_timeout");
        } else if (c->pp_wait) {
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
    c->release_due = false;
    if (!ms) {
        uv_timer_stop(&c->timer);
        return;
    }
    /* Waiting for a request: first stop at AG_IDLE_RELEASE_MS to give the
     * buffers back if the connection is still idle then. */
    if (ms > AG_IDLE_RELEASE_MS && c->state == CONN_READ_HEAD && holds_blocks(c)) {
        c->release_due = true;
        c->timer_due_ms = uv_now(c->srv->loop) + ms;
        ms = AG_IDLE_RELEASE_MS;
    }
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* --- writing --------------------------------------------------------------- */

/* Bytes of an ended tunnel still queued for either side. */
static bool tunnel_queued(const struct conn *c)
{
    return c->out_pending > 0 || (c->up && c->up->out_pending > 0);
}

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
    if (c->state == CONN_TUNNEL && c->tun_client_eof && c->tun_up_eof) {
        if (!tunnel_queued(c))
            conn_close(c, "tunnel_done");
        return;
    }
    conn_update_reading(c);
}

/* The one write path, to either side: len bytes at data go to the socket
 * at once when nothing is queued before them (uv_try_write: one write(2),
 * no request, no completion callback, and no epoll_ctl, which libuv's
 * completion path costs by dropping a POLLOUT it never set); whatever the
 * socket does not take is queued with uv_write. With owner (the ag_buf data
 * lies in), the queued write takes owner's block and owner is left empty;
 * owner is emptied (and wiped: the bytes may carry credentials) when all
 * went out, keeping its block for the next exchange: no allocation. Without
 * owner the bytes are borrowed (the loop's read buffer): a queued rest is
 * copied. A socket error is not handled here: the queued write reports it
 * through on_written like any other write. */
static void send_out(struct conn *c, bool to_client, char *data, size_t len, struct ag_buf *owner)
{
    uv_stream_t *s = to_client ? (uv_stream_t *)&c->tcp : (uv_stream_t *)c->up->tcp;
    uv_buf_t now = uv_buf_init(data, (unsigned)len);
    int n = uv_try_write(s, &now, 1);
    size_t done = n > 0 ? (size_t)n : 0;
    if (done == len) {
        if (owner)
            ag_buf_consume(owner, owner->len);
        return;
    }
    struct wreq *w = malloc(sizeof *w);
    char *block = NULL;
    if (w && owner) {
        block = ag_buf_steal(owner, NULL);
    } else if (w && (block = malloc(len - done))) {
        /* The copy holds only the rest: it starts at the block and is
         * len - done long (queueing len bytes from it sent bytes past the
         * block's end and the rest twice over). */
        memcpy(block, data + done, len - done);
        data = block;
        len -= done;
        done = 0;
    }
    if (!w || !block) {
        free(w);
        if (owner)
            ag_buf_consume(owner, owner->len);
        conn_close(c, "nomem");
        return;
    }
    w->target = to_client ? (void *)c : (void *)c->up;
    w->to_client = to_client;
    w->data = block;
    w->len = len - done;
    uv_buf_t rest = uv_buf_init(data + done, (unsigned)w->len);
    if (uv_write(&w->req, s, &rest, 1, on_written) != 0) {
        free(block);
        free(w);
        conn_close(c, "write_failed");
        return;
    }
    if (to_client)
        c->out_pending += w->len;
    else
        c->up->out_pending += w->len;
}

static void send_buf(struct conn *c, bool to_client, struct ag_buf *b)
{
    send_out(c, to_client, b->data, b->len, b);
}

/* An owned block (malloc'd) through send_buf: freed here unless queued. */
static void send_block(struct conn *c, bool to_client, char *data, size_t len)
{
    struct ag_buf b = {.data = data, .len = len, .cap = len, .max = len};
    send_buf(c, to_client, &b);
    ag_buf_free(&b);
}

void conn_count_out(struct conn *c, uint64_t n)
{
    c->rq.bytes_sent += n;
    c->bytes_out += n;
    c->srv->stats.bytes_out += n;
}

static bool up_writable(const struct conn *c)
{
    return c->state != CONN_CLOSING && c->up && c->up->tcp;
}

void conn_write_client(struct conn *c, char *data, size_t len)
{
    if (conn_ending(c)) {
        free(data);
        return;
    }
    conn_count_out(c, len);
    if (c->tls) {
        conn_tls_write(c, data, len);
        free(data);
        return;
    }
    send_block(c, true, data, len);
}

/* Bytes that are already the wire's (TLS records): not counted again. */
void conn_write_raw_client(struct conn *c, char *data, size_t len)
{
    if (c->state == CONN_CLOSING) {
        free(data);
        return;
    }
    send_block(c, true, data, len);
}

void conn_write_up(struct conn *c, char *data, size_t len)
{
    if (!up_writable(c)) {
        free(data);
        return;
    }
    if (c->up->tls) {
        conn_up_tls_write(c, data, len);
        free(data);
        return;
    }
    send_block(c, false, data, len);
}

/* Bytes as they go on the upstream's wire (TLS records). */
void conn_write_raw_up(struct conn *c, char *data, size_t len)
{
    if (!up_writable(c)) {
        free(data);
        return;
    }
    send_block(c, false, data, len);
}

/* What is staged for a side that can no longer be written is dropped, as
 * it always was: it must never reach the next exchange's peer. */
void conn_flush(struct conn *c)
{
    if (c->stage_up.len) {
        if (up_writable(c) && c->up->tls)
            conn_up_tls_write(c, c->stage_up.data, c->stage_up.len);
        else if (up_writable(c))
            send_buf(c, false, &c->stage_up);
        ag_buf_consume(&c->stage_up, c->stage_up.len);
    }
    if (c->stage_client.len) {
        if (conn_ending(c)) {
            ag_buf_consume(&c->stage_client, c->stage_client.len);
        } else {
            conn_count_out(c, c->stage_client.len);
            if (c->tls) {
                conn_tls_write(c, c->stage_client.data, c->stage_client.len);
                ag_buf_consume(&c->stage_client, c->stage_client.len);
            } else {
                send_buf(c, true, &c->stage_client);
            }
        }
    }
}

/* --- reading and backpressure ---------------------------------------------- */

/* A read buffer of up to room bytes: the loop's own when it is free
 * (always, but for a read nested in a read callback), else a block of its
 * own. Given back by release_read. */
static uv_buf_t lend_read(struct ag_server *srv, size_t room)
{
    if (!srv->read_buf)
        srv->read_buf = malloc(AG_READ_CHUNK);
    if (srv->read_buf && !srv->read_busy) {
        srv->read_busy = true;
        return uv_buf_init(srv->read_buf, (unsigned)room);
    }
    char *p = room ? malloc(room) : NULL;
    return uv_buf_init(p, p ? (unsigned)room : 0);
}

static void release_read(struct ag_server *srv, char *base)
{
    if (base && base == srv->read_buf)
        srv->read_busy = false;
    else
        free(base);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct ag_upstream *up = h->data;
    struct conn *c = up->owner;
    if (!c) {
        char *p = malloc(AG_READ_CHUNK);
        *buf = uv_buf_init(p, p ? AG_READ_CHUNK : 0);
        return;
    }
    *buf = lend_read(c->srv, AG_READ_CHUNK);
}

/* Client reads never bring more than the input buffer can still take
 * (tunnels have no input buffer: full-size reads). */
static void on_alloc_client(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    size_t room = AG_READ_CHUNK;
    /* (TLS: ciphertext, bounded by the layer's backlog instead.) */
    if (c->state != CONN_TUNNEL && !c->tls && AG_INBUF_MAX - c->inbuf.len < room)
        room = AG_INBUF_MAX - c->inbuf.len;
    if (!room) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = lend_read(c->srv, room);
}

void conn_update_reading(struct conn *c)
{
    if (conn_ending(c))
        return;
    if (c->tls && conn_tls_buffered(c)) {
        /* Room may have come for what the layer holds. */
        conn_tls_pump(c);
        if (conn_ending(c))
            return;
    }
    struct ag_upstream *up = c->up;
    if (c->state == CONN_TUNNEL && c->tun_spliced)
        return; /* the pumps own both sockets */
    if (c->state == CONN_TUNNEL && c->tun_splice_want && up && up->connected && !up->closing &&
        c->out_pending == 0 && up->out_pending == 0 && exchange_start_tunnel_splice(c))
        return;
    bool want_client =
        !c->eof && c->inbuf.len < AG_INBUF_MAX && !(up && up->out_pending >= AG_WRITE_HIGH_WATER);
    if (c->state == CONN_TUNNEL)
        want_client = !c->tun_client_eof && !(up && up->out_pending >= AG_WRITE_HIGH_WATER);
    else if (c->tls) /* a full input buffer leaves the ciphertext in the layer */
        want_client = !c->eof && !(up && up->out_pending >= AG_WRITE_HIGH_WATER);
    if (c->tls && conn_tls_backlog(c) >= AG_TLS_BACKLOG_MAX)
        want_client = false;
    if (c->rq.req_splice_pending || c->req_splicing)
        want_client = false; /* the request pump reads the client socket */
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
    if (c->rq.req_splice_pending && up->out_pending == 0) {
        exchange_start_req_splice(c); /* (it updates the reading itself) */
        return;
    }
    if (c->rq.splice_pending && c->out_pending == 0) {
        exchange_start_splice(c);
        return;
    }
    bool want_up =
        !c->splicing && !c->rq.splice_pending && c->out_pending < AG_WRITE_HIGH_WATER &&
        (up->idle || c->state == CONN_FORWARD || c->rq.parent_connect ||
         (up->tls && !up->tls->handshaken) || (c->state == CONN_TUNNEL && !c->tun_up_eof));
    if (want_up && !up->reading) {
        if (uv_read_start((uv_stream_t *)up->tcp, on_alloc, on_read_up) == 0)
            up->reading = true;
    } else if (!want_up && up->reading) {
        uv_read_stop((uv_stream_t *)up->tcp);
        up->reading = false;
    }
}

void conn_up_read_pooled(struct ag_upstream *up)
{
    if (up->reading)
        return;
    if (uv_read_start((uv_stream_t *)up->tcp, on_alloc, on_read_up) == 0)
        up->reading = true;
    else
        uppool_lost(up);
}

static void free_shutdown_req(uv_shutdown_t *req, int status)
{
    free(req);
}

bool conn_tunnel_side_ended(struct conn *c, bool from_client)
{
    if (from_client)
        c->tun_client_eof = true;
    else
        c->tun_up_eof = true;
    if (!(c->tun_client_eof && c->tun_up_eof))
        return false;
    /* What is still queued for either side goes out first: closing now
     * cancels it (the end of an upload to a target that half-closed first
     * was lost). on_written closes once both queues are empty; neither side
     * is read any more, and the tunnel's idle deadline bounds the wait. */
    if (!tunnel_queued(c))
        conn_close(c, "tunnel_done");
    return true;
}

static void tunnel_eof(struct conn *c, bool from_client)
{
    /* Half-close: pass the EOF on, close once both directions ended. */
    uv_stream_t *other = from_client ? (uv_stream_t *)c->up->tcp : (uv_stream_t *)&c->tcp;
    if (conn_tunnel_side_ended(c, from_client))
        return;
    if (!from_client && c->tls)
        conn_tls_close_notify(c);
    if (from_client && c->up->tls)
        conn_up_tls_close_notify(c);
    uv_shutdown_t *req = malloc(sizeof *req);
    if (!req || uv_shutdown(req, other, free_shutdown_req) != 0) {
        free(req);
        conn_close(c, "tunnel_shutdown");
        return;
    }
    conn_update_reading(c);
}

void conn_client_end(struct conn *c, ssize_t n)
{
    /* (TLS: the socket's EOF may follow the close_notify that ended the
     * client's side already.) */
    if (c->state == CONN_TUNNEL && c->tun_client_eof && n == UV_EOF)
        return;
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
    if (n == UV_EOF && c->rq.msg_done && (c->state == CONN_FORWARD || c->state == CONN_UPSTREAM)) {
        c->eof = true;
        c->rq.close_after = true;
        conn_update_reading(c);
        return;
    }
    conn_close(c, n == UV_EOF ? "client_eof" : "client_error");
}

void conn_client_bytes(struct conn *c, char *buf, size_t n)
{
    if (c->state == CONN_TUNNEL) {
        conn_set_timer(c, c->cfg->tunnel_idle_timeout_ms);
        if (up_writable(c) && c->up->tls)
            conn_up_tls_write(c, buf, n);
        else if (up_writable(c))
            send_out(c, false, buf, n, NULL);
        conn_update_reading(c);
        return;
    }
    int rc = ag_buf_append(&c->inbuf, buf, n);
    ag_wipe(buf, n); /* raw request bytes: Proxy-Authorization */
    if (rc != 0) {
        c->srv->stats.limit_inbuf_full++;
        conn_close(c, "inbuf_full");
        return;
    }
    conn_parse(c);
}

/* A tls listener behind a balancer: the PROXY header comes in clear, the
 * TLS layer takes what follows it. */
static void tls_after_proxy_header(struct conn *c, char *buf, size_t n)
{
    int rc = ag_buf_append(&c->inbuf, buf, n);
    ag_wipe(buf, n);
    if (rc != 0) {
        c->srv->stats.limit_inbuf_full++;
        conn_close(c, "inbuf_full");
        return;
    }
    if (!take_proxy_header(c)) {
        conn_update_reading(c);
        return;
    }
    conn_set_timer(c, c->cfg->tls_handshake_timeout_ms);
    size_t rest = 0;
    char *p = ag_buf_steal(&c->inbuf, &rest);
    ag_buf_init(&c->inbuf, AG_INBUF_MAX);
    if (rest)
        conn_tls_input(c, p, rest);
    free(p);
    conn_update_reading(c);
}

static void on_read_client(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (n <= 0) {
        release_read(c->srv, buf->base);
        if (n == 0 || n == UV_ENOBUFS)
            return; /* nothing read (ENOBUFS: no room; reads stop below) */
        conn_client_end(c, n);
        return;
    }
    c->bytes_in += (uint64_t)n;
    c->srv->stats.bytes_in += (uint64_t)n;
    if (!c->tls)
        conn_client_bytes(c, buf->base, (size_t)n);
    else if (c->pp_wait)
        tls_after_proxy_header(c, buf->base, (size_t)n);
    else
        conn_tls_input(c, buf->base, (size_t)n);
    release_read(c->srv, buf->base);
}

void conn_up_end(struct conn *c, ssize_t n)
{
    if (c->state == CONN_TUNNEL && n == UV_EOF) {
        /* (TLS: the socket's EOF may follow the close_notify that ended
         * the parent's side already.) */
        if (!c->tun_up_eof)
            tunnel_eof(c, false);
        return;
    }
    exchange_on_upstream_eof(c, (int)n);
}

static void on_read_up(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct ag_upstream *up = s->data;
    struct conn *c = up->owner;
    if (!c) {
        free(buf->base); /* on_alloc's own block: no owner, no loop buffer */
        /* Idle in the shared pool: an end, an error or a stray byte means
         * the connection cannot carry the next request. */
        if (n != 0 && up->in_pool)
            uppool_lost(up);
        return;
    }
    struct ag_server *srv = c->srv;
    if (n <= 0) {
        release_read(srv, buf->base);
        if (n == 0)
            return;
        conn_up_end(c, n);
        return;
    }
    if (up->tls)
        conn_up_tls_input(c, up, buf->base, (size_t)n);
    else
        conn_up_bytes(c, buf->base, (size_t)n);
    release_read(srv, buf->base);
}

void conn_up_bytes(struct conn *c, char *data, size_t len)
{
    if (c->state == CONN_TUNNEL && c->tls) {
        conn_set_timer(c, c->cfg->tunnel_idle_timeout_ms);
        conn_count_out(c, (uint64_t)len);
        conn_tls_write(c, data, len); /* TLS-in-TLS: the origin's records, encrypted */
        conn_update_reading(c);
        return;
    }
    if (c->state == CONN_TUNNEL) {
        conn_set_timer(c, c->cfg->tunnel_idle_timeout_ms);
        if (!conn_ending(c)) {
            conn_count_out(c, (uint64_t)len);
            send_out(c, true, data, len, NULL);
        }
        conn_update_reading(c);
        return;
    }
    exchange_on_upstream_read(c, (ssize_t)len, data);
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
    /* (A tls listener's caller then starts the handshake deadline.) */
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
            /* A TLS record (a client hello) where the first request line
             * should be: a client configured with https:// for this plain
             * port. Said clearly in the log; the 400 it cannot read. */
            bool tls_hello = !c->tls && c->bytes_in == len && (unsigned char)data[0] == 22;
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
            if (tls_hello) {
                c->srv->stats.tls_on_plain++;
                snprintf(why, sizeof why, "TLS handshake on a plain listener");
            }
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
        if (c->rq.req_in_chunk && c->inbuf.len == 0)
            exchange_check_req_splice(c);
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

int ag_conn_accept(struct ag_server *srv, uv_stream_t *listener)
{
    const struct ag_listener *l = listener->data;
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return AG_ENOMEM;
    uv_tcp_init(srv->loop, &c->tcp);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        c->srv = srv;
        c->handles = 1;
        c->tcp.data = c;
        /* Not yet on the list: close the bare handle and free directly. */
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return AG_EIO;
    }
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    c->srv = srv;
    c->cfg = ag_config_ref(srv->cfg);
    /* Unique over every loop: kick id=N names one connection. */
    c->id = __atomic_add_fetch(&srv->main->next_conn_id, 1, __ATOMIC_RELAXED);
    c->created_ms = uv_now(srv->loop);
    ag_list_push_first(&srv->conns, &c->node);
    srv->n_conns++;
    srv->stats.conns_accepted++;
    /* TCP_NODELAY: inherited from the listener (ag_server_listen). */

    struct sockaddr_storage ss;
    int sl = sizeof ss;
    strcpy(c->peer, "-");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0)
        set_peer(c, (const struct sockaddr *)&ss);
    ag_head_init(&c->head, c->cfg->header_max);
    ag_buf_init(&c->inbuf, AG_INBUF_MAX);
    /* The escaped URL of the canonical target, every byte as \\xHH at worst. */
    ag_buf_init(&c->url_text, 4 * (AG_URL_MAX + AG_HOST_MAX + 16) + 1);
    /* Staging buffers hold what one read produces plus framing overhead. */
    ag_buf_init(&c->stage_client, 2 * AG_READ_CHUNK + 4096);
    ag_buf_init(&c->stage_up, 2 * AG_INBUF_MAX + 4096);
    conn_request_reset(c, c->created_ms);
    llhttp_init(&c->parser, HTTP_REQUEST, &ag_request_settings);
    c->parser.data = c;
    conn_enter(c, CONN_READ_HEAD);
    if (l->tls && conn_tls_start(c, srv->tls_ctx) != 0) {
        conn_close(c, "nomem"); /* accepted: its close gives the slot back */
        return 0;
    }
    if (l->proxy_protocol) {
        if (c->peer_addr.sa.sa_family == 0) {
            /* Reset before we looked (a balancer's connect-only check):
             * no peer, nothing to refuse. */
            conn_close(c, "peer_gone");
            return 0;
        }
        if (!proxy_peer_trusted(c)) {
            srv->stats.proxy_untrusted++;
            ag_info("conn=%llu event=proxy_protocol_refused client=%s reason=untrusted "
                    "note=\"not in proxy_protocol_from\"",
                    (unsigned long long)c->id, c->peer);
            conn_close(c, "proxy_protocol_untrusted");
            return 0;
        }
        c->pp_wait = true;
        conn_set_timer(c, c->cfg->proxy_protocol_timeout_ms);
    } else if (l->tls) {
        conn_set_timer(c, c->cfg->tls_handshake_timeout_ms);
    } else {
        conn_set_timer(c, ag_auth_wait_timeout(c));
    }
    conn_update_reading(c);
    return 0;
}

void ag_conn_drain_all(struct ag_server *srv, bool force)
{
    ag_list_for_each_safe (c, next, &srv->conns, struct conn, node) {
        if (force) {
            conn_close(c, "shutdown");
        } else if (c->state == CONN_READ_HEAD && !c->rq.in_message && c->inbuf.len == 0) {
            conn_close(c, "shutdown_idle");
        } else {
            c->rq.close_after = true;
        }
    }
}
