/* conn.h - one client connection (private to src/server).
 *
 * Glossary: exchange = one request and its response; staging buffers collect
 * bytes produced while llhttp runs, flushed as one write afterwards; pending =
 * bytes handed to libuv and not yet written (drives backpressure).
 *
 * Lifetime: a conn owns its client socket and timer (counted in handles), its
 * upstream, and a reference to the config it uses. Memory is freed only by
 * the last close callback. Loop thread only.
 */
#ifndef AG_SERVER_CONN_H
#define AG_SERVER_CONN_H

#include <llhttp.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "http/head.h"
#include "http/target.h"
#include "proxy/splice.h"
#include "proxy/upstream.h"
#include "server.h"
#include "util/list.h"

struct ag_route;
struct ag_parent_health;

/* A client address: IPv4 or IPv6 only (28 bytes, where a sockaddr_storage
 * takes 128 in every connection). */
union conn_addr {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
};

/* The connection's state; conn_enter() in conn.c is its only writer and
 * asserts the move against a table of legal transitions:
 *   NEW         -> READ_HEAD                               (accepted)
 *   READ_HEAD   -> READ_HEAD | AUTH_VERIFY | UPSTREAM | FORWARD
 *   AUTH_VERIFY -> READ_HEAD                               (the job answered or timed out)
 *   UPSTREAM    -> READ_HEAD | FORWARD | TUNNEL
 *   FORWARD     -> READ_HEAD | UPSTREAM                    (next request; a retry)
 *   any but CLOSING and FLUSH_CLOSE -> FLUSH_CLOSE
 *   any but CLOSING                 -> CLOSING              */
enum conn_state {
    CONN_NEW = 0,     /* zeroed, not yet set up by ag_conn_accept */
    CONN_READ_HEAD,   /* reading a request head; pre-auth caps apply */
    CONN_AUTH_VERIFY, /* one verification job in flight; parser paused; still reading to see EOF */
    CONN_UPSTREAM,    /* resolving / connecting upstream; through a parent also its Kerberos
                         token (a job) and its answer to our CONNECT */
    CONN_FORWARD,     /* relaying one exchange; back to READ_HEAD after */
    CONN_TUNNEL,      /* CONNECT established; terminal */
    CONN_FLUSH_CLOSE, /* shutdown issued: closes once what is queued is written */
    CONN_CLOSING,     /* uv_close issued; waiting for the close callbacks */
    CONN_STATES
};

/* What one exchange (request and response) needs, and nothing that outlives
 * it: zeroed, with what it owns freed, by conn_request_reset() when the
 * next request may begin (h2o keeps its per-request generator the same way).
 * Fields a head sets are written by exchange_on_head(). */
struct conn_request {
    /* reading the request */
    bool in_message;         /* a request has begun (its head timer runs) */
    bool msg_done;           /* current request fully read */
    uint64_t head_bytes;     /* bytes of the current head, against header_max */
    bool last_lf, last_cr;   /* the head's previous byte, across reads */
    const char *head_defect; /* what llhttp accepts and we refuse (obs-fold, bare LF), or NULL */
    /* what the head says */
    struct ag_target target;
    const char *log_url; /* escaped URL for the access log (in conn's url_text) */
    int method;
    bool is_connect, is_head, keepalive, http10, req_chunked, req_has_body;
    uint64_t req_content_length;
    bool has_max_forwards; /* TRACE/OPTIONS with a valid Max-Forwards */
    uint64_t max_forwards; /* its value, parsed from the bounded slice */
    /* decisions */
    bool preauth;            /* admitted by an auth=none rule: no identity needed */
    bool rules_by_addr;      /* a dst= rule decides once the address is known */
    const char *denied_rule; /* rule that refused every address (points into srv->rules) */
    bool denied_groups;      /* ... because it needs groups the lookup failed to give */
    bool drain;              /* discarding the body of a refused request */
    uint64_t drained;
    bool close_after; /* close the client connection when this exchange ends */
    /* the route (route= of the allowing rule) */
    const struct ag_route *route;   /* parents to try (points into srv->rules), NULL = direct */
    size_t route_next;              /* index in route of the next parent to try */
    const struct ag_parent *parent; /* parent in use (points into cfg), NULL = direct */
    struct ag_parent_health *parent_health; /* its shared health slot */
    const struct ag_route *reroute;         /* a route= rule admitted a resolved address (dst= rules
                                               made the gateway resolve): go through its parents */
    bool parent_connect;                    /* our CONNECT is at the parent; its answer awaited */
    size_t parent_head_bytes;               /* bytes of the parent's answer to CONNECT so far */
    char *parent_auth; /* auth=negotiate: this request's Proxy-Authorization line to the
                          parent (owned, wiped: free_parent_auth) */
    char *parent_why;  /* why the last parent could not be used, for the log: owned,
                          AG_PARENT_WHY_MAX, made by the first failure (only a
                          parent route needs it: not in every idle connection) */
    /* the upstream side */
    struct ag_buf req_head_up; /* upstream request head, kept for one retry */
    bool retried;
    bool up_dirty;           /* upstream sent bytes past its response: never reuse */
    bool up_407;             /* upstream asked for proxy credentials: 502, never relayed */
    bool splice_pending;     /* a body waits for the client writes to drain to splice */
    bool splice_chunk;       /* what waits or runs is the rest of one chunk's data, not the
                                whole body: the parser goes on after it */
    bool resp_in_chunk;      /* the response parser is inside a chunk's data (its size line
                                parsed, not yet its CRLF): content_length is what is left */
    bool req_in_chunk;       /* the same for the request parser (a chunked request body) */
    bool req_splice_pending; /* the rest of a long request chunk waits for the upstream
                                writes to drain to splice */
    bool req_splice_chunk;   /* what waits or runs is the rest of one request chunk's data
                                (its size line, ours, is out): relayed raw if not spliced */
    char hier_ip[48];        /* upstream address for the access log */
    /* the response */
    bool resp_started, resp_done, resp_chunked_out, resp_1xx;
    char *resp_extra;    /* header lines added to this exchange's response (owned), e.g.
                            the final Negotiate token in Proxy-Authentication-Info */
    int status;          /* status sent to the client, 0 before */
    char ctype[64];      /* response Content-Type for the access log */
    uint64_t t_start_ms; /* monotonic start of the exchange */
    uint64_t id;         /* request id: req= in the error log, shown on error pages */
    uint64_t bytes_sent; /* bytes of this exchange sent to the client */
};

/* The body pump of a client connection and the splice end on its socket. */
struct conn_pump {
    struct ag_splice pump; /* response bodies and chunks: upstream to client */
    struct ag_splice req;  /* long chunks of chunked request bodies: client to upstream */
    struct ag_splice_end end;
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;         /* the client-side deadline of the current state */
    int handles;              /* open handles; freed when it drops to 0 */
    struct ag_server *srv;    /* borrowed */
    struct ag_config *cfg;    /* owned reference, refreshed at each request */
    struct ag_list_node node; /* in srv->conns */
    uint64_t id;
    enum conn_state state;
    char peer[48];             /* client IP as text */
    union conn_addr peer_addr; /* client address, for src= rules: the TCP peer's,
                                  or the PROXY header's once it is taken */
    bool pp_wait;              /* a proxy_protocol listener's connection before its header: nothing
                                  reaches llhttp, and the deadline is proxy_protocol_timeout */
    uint64_t created_ms;
    uint64_t bytes_in, bytes_out; /* client bytes read / sent since accept, all exchanges */

    /* request parsing */
    llhttp_t parser;
    struct ag_head head;
    struct ag_buf inbuf;    /* unparsed client bytes, ceiling AG_INBUF_MAX */
    struct ag_buf url_text; /* rq.log_url's text; its block serves every exchange */
    uint64_t timer_due_ms;  /* with release_due: the deadline conn_set_timer was given */
    bool release_due;       /* the timer first stops to release idle buffers */
    bool paused;            /* llhttp paused by us (head or message end) */
    bool kick;              /* just resumed: run llhttp once even with no new bytes,
                               so a body-less message completes */
    bool head_ready;        /* set by on_headers_complete, acted on after execute */
    bool reading;
    bool parsing; /* inside conn_parse: do not re-enter it */
    bool eof;     /* client half-closed */

    struct conn_request rq; /* the current exchange; reset by conn_request_reset */

    /* output */
    struct ag_buf stage_client, stage_up;
    size_t out_pending;         /* bytes queued to the client */
    struct ag_upstream *up;     /* owned; may be pooled (idle) */
    struct ag_session *session; /* this connection's auth-session row (owned by the table) */
    struct ag_job *job;         /* verification in flight, NULL when none */
    bool tun_client_eof, tun_up_eof;
    struct conn_tls *tls; /* the TLS layer (tls.h) on a tls listener's connection, else NULL */
    /* zero-copy body relay: made by the first splice of the connection, kept
     * across its responses (the pipe while empty, the client socket's end
     * while the connection lives: one handle, counted), released by the idle
     * release (conn_idle) and the close; most connections never splice, and
     * its bytes would otherwise sit in every idle one (issue 16) */
    struct conn_pump *sp;
    bool splicing;     /* a body pump runs */
    bool req_splicing; /* the request pump runs (client reads stopped) */
    bool sp_retire;    /* the idle release closes sp's end: sp is freed by its close callback
                          and not used until then */
    /* A plain CONNECT tunnel relayed by two pumps, [0] client to upstream and
     * [1] upstream to client (allocated when it starts: most connections
     * never tunnel); tun_splice_want: start once both write queues drain. */
    struct ag_splice *tun_sp;
    bool tun_spliced, tun_splice_want;
};

/* The connection is on its way out (flushing its last bytes, or closed):
 * nothing new is read, parsed, written or timed. */
static inline bool conn_ending(const struct conn *c)
{
    return c->state == CONN_FLUSH_CLOSE || c->state == CONN_CLOSING;
}

/* conn.c */
/* The only writer of c->state: asserts the move is legal (debug and
 * sanitizer builds), then sets it. */
void conn_enter(struct conn *c, enum conn_state to);
/* Frees what the exchange owns and zeroes it: the next request starts
 * clean. now_ms starts its clock (a refused head before any parse). */
void conn_request_reset(struct conn *c, uint64_t now_ms);
void conn_close(struct conn *c, const char *reason);
/* Close callback of every handle a conn counts (frees it after the last). */
void conn_handle_closed(uv_handle_t *h);
/* Ends the connection after everything queued is written. */
void conn_close_after_flush(struct conn *c);
/* n bytes went to the client (queued, or spliced): counted for this
 * exchange (the access log), the connection and the server. */
void conn_count_out(struct conn *c, uint64_t n);
/* Takes ownership of data (malloc'd). */
void conn_write_client(struct conn *c, char *data, size_t len);
/* To the upstream; through its TLS layer when it has one. */
void conn_write_up(struct conn *c, char *data, size_t len);
/* Bytes as they go on the upstream's wire (TLS records). Owned. */
void conn_write_raw_up(struct conn *c, char *data, size_t len);
/* Plaintext from the upstream (buf owned): into the tunnel, or the
 * response parser. */
void conn_up_bytes(struct conn *c, char *buf, size_t n);
/* The upstream's stream ended (UV_EOF) or failed (n < 0). */
void conn_up_end(struct conn *c, ssize_t n);
/* Bytes as they go on the wire (TLS records, a refusal in clear): queued
 * to the client socket without counting them as an exchange's. Owned. */
void conn_write_raw_client(struct conn *c, char *data, size_t len);
/* Plaintext from the client (buf borrowed: wiped once appended): relayed
 * into a tunnel, or parsed. */
void conn_client_bytes(struct conn *c, char *buf, size_t n);
/* The client's stream ended (UV_EOF) or failed (n < 0). */
void conn_client_end(struct conn *c, ssize_t n);
void conn_flush(struct conn *c);
void conn_update_reading(struct conn *c);
void conn_parse(struct conn *c);
/* Resumes the paused parser and parses what is buffered. */
void conn_resume(struct conn *c);
void conn_set_timer(struct conn *c, uint64_t ms);
void conn_refresh_config(struct conn *c);

/* uppool.c: the loop's shared pool of idle upstream connections */
/* Parks up (its exchange ended cleanly) with no owner; evicts past the
 * ceilings of cfg. */
void uppool_put(struct ag_server *srv, struct ag_upstream *up, const struct ag_config *cfg);
/* The newest idle connection to the hop (parent "" = direct), unlinked and
 * its timer stopped, or NULL. */
struct ag_upstream *uppool_take(struct ag_server *srv, const char *host, uint16_t port,
                                const char *parent, bool tls);
/* A pooled connection was closed by its origin, failed or spoke: dropped. */
void uppool_lost(struct ag_upstream *up);
/* Closes every pooled connection (the loop stops). */
void uppool_close_all(struct ag_server *srv);
/* conn.c: arms the reads of a pooled connection (EOF detection). */
void conn_up_read_pooled(struct ag_upstream *up);

/* exchange.c */
/* Wipes and frees c->rq.parent_auth. */
void free_parent_auth(struct conn *c);
extern const llhttp_settings_t ag_request_settings;
/* The error text of a chunk over AG_CHUNK_SIZE_MAX (HPE_CB_CHUNK_HEADER). */
extern const char exchange_chunk_too_big[];
/* Acts on a complete request head (the parser is paused). */
void exchange_on_head(struct conn *c);
/* Sends one of the gateway's own responses and decides the connection's fate. */
void exchange_reply(struct conn *c, int status, const char *extra, const char *detail);
/* Checks whether the exchange is complete and moves to the next request. */
void exchange_maybe_done(struct conn *c);
void exchange_on_upstream_read(struct conn *c, ssize_t n, const char *data);
void exchange_on_upstream_eof(struct conn *c, int err);
void exchange_upstream_timeout(struct conn *c);
void exchange_log(struct conn *c);
/* Routes an admitted request: CONNECT port check, upstream reuse or open. */
void exchange_proceed(struct conn *c);
/* Arms the keep-alive deadline of the pooled upstream. */
void exchange_pool_timer(struct conn *c);
/* "parent ... tls": the handshake with c->up's parent completed (carry on
 * with the hop), or failed (the parent is failed: back-off, next parent). */
void exchange_up_tls_ready(struct conn *c);
void exchange_up_tls_failed(struct conn *c, const char *why);
/* One direction of a tunnel ended (its EOF read): true when both have, and
 * the connection is closed ("tunnel_done"). */
bool conn_tunnel_side_ended(struct conn *c, bool from_client);
/* The splice end on the client socket (made on first use, kept while the
 * connection lives), NULL when it cannot be had now (relay in user space). */
struct ag_splice_end *conn_splice_end(struct conn *c);
/* Writes to the upstream drained: the rest of a long request chunk waiting
 * for splice can start. */
void exchange_start_req_splice(struct conn *c);
/* The request parser just took bytes: when it is inside a long chunk with
 * nothing more buffered, the rest of that chunk is to be spliced. */
void exchange_check_req_splice(struct conn *c);
/* Writes to the client drained: a body waiting for splice can start. */
void exchange_start_splice(struct conn *c);
/* A plain tunnel whose write queues drained: its two directions go to
 * splice pumps. false when they could not start (relay in user space). */
bool exchange_start_tunnel_splice(struct conn *c);

#endif
