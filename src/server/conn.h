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

enum conn_state {
    CONN_READ_HEAD,   /* reading a request head; pre-auth caps apply */
    CONN_AUTH_VERIFY, /* one verification job in flight; parser paused; still reading to see EOF */
    CONN_UPSTREAM,    /* resolving / connecting upstream */
    CONN_FORWARD,     /* relaying one exchange; back to READ_HEAD after */
    CONN_TUNNEL,      /* CONNECT established; terminal */
    CONN_CLOSING      /* uv_close issued; waiting for the close callbacks */
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;        /* the client-side deadline of the current state */
    uv_shutdown_t shutdown_req;
    int handles;             /* open handles; freed when it drops to 0 */
    struct ag_server *srv;   /* borrowed */
    struct ag_config *cfg;   /* owned reference, refreshed at each request */
    struct conn *prev, *next;
    uint64_t id;
    enum conn_state state;
    char peer[48];           /* client IP as text */
    struct sockaddr_storage peer_addr; /* client address, for src= rules */
    uint64_t created_ms;

    /* request parsing */
    llhttp_t parser;
    struct ag_head head;
    struct ag_buf inbuf;     /* unparsed client bytes, ceiling AG_INBUF_MAX */
    bool paused;             /* llhttp paused by us (head or message end) */
    bool kick;               /* just resumed: run llhttp once even with no new bytes,
                                so a body-less message completes */
    bool head_ready;         /* set by on_headers_complete, acted on after execute */
    bool in_message;         /* a request has begun (its head timer runs) */
    bool msg_done;           /* current request fully read */
    bool reading;
    bool parsing;            /* inside conn_parse: do not re-enter it */
    bool eof;                /* client half-closed */
    bool flushing_close;     /* shutdown issued: close once written */
    uint64_t head_bytes;     /* bytes of the current head, against header_max */
    bool last_lf, last_cr;   /* the head's previous byte, across reads */
    const char *head_defect; /* what llhttp accepts and we refuse (obs-fold, bare LF), or NULL */

    /* current exchange */
    struct ag_target target;
    char *log_url;           /* escaped URL for the access log (owned) */
    int method;
    bool is_connect, is_head, keepalive, http10, req_chunked, req_has_body;
    bool drain;              /* discarding the body of a refused request */
    uint64_t drained;
    bool resp_started, resp_done, resp_chunked_out, resp_1xx;
    bool close_after;        /* close the client connection when this exchange ends */
    bool preauth;            /* admitted by an auth=none rule: no identity needed */
    bool rules_by_addr;      /* a dst= rule decides once the address is known */
    const char *denied_rule; /* rule that refused every address (points into srv->rules) */
    bool denied_groups;      /* ... because it needs groups the lookup failed to give */
    bool up_dirty;           /* upstream sent bytes past its response: never reuse */
    bool up_407;             /* upstream asked for proxy credentials: 502, never relayed */
    uint64_t req_content_length;
    bool has_max_forwards;   /* TRACE/OPTIONS with a valid Max-Forwards */
    uint64_t max_forwards;   /* its value, parsed from the bounded slice */
    char hier_ip[48];        /* upstream address for the access log */
    char *resp_extra;        /* header lines added to this exchange's response (owned), e.g.
                                the final Negotiate token in Proxy-Authentication-Info */
    int status;              /* status sent to the client, 0 before */
    char ctype[64];          /* response Content-Type for the access log */
    uint64_t t_start_ms;     /* monotonic start of the exchange */
    uint64_t bytes_sent;     /* bytes of this exchange sent to the client */
    struct ag_buf req_head_up; /* upstream request head, kept for one retry */
    bool retried;

    /* output */
    struct ag_buf stage_client, stage_up;
    size_t out_pending;      /* bytes queued to the client */
    struct ag_upstream *up;  /* owned; may be pooled (idle) */
    struct ag_session *session; /* this connection's auth-session row (owned by the table) */
    struct ag_job *job;      /* verification in flight, NULL when none */
    bool tun_client_eof, tun_up_eof;
    struct ag_splice sp;     /* zero-copy body relay (two handles while running) */
    bool splicing, splice_pending;
};

/* conn.c */
void conn_close(struct conn *c, const char *reason);
/* Close callback of every handle a conn counts (frees it after the last). */
void conn_handle_closed(uv_handle_t *h);
/* Ends the connection after everything queued is written. */
void conn_close_after_flush(struct conn *c);
/* Takes ownership of data (malloc'd). */
void conn_write_client(struct conn *c, char *data, size_t len);
void conn_write_up(struct conn *c, char *data, size_t len);
void conn_flush(struct conn *c);
void conn_update_reading(struct conn *c);
void conn_parse(struct conn *c);
/* Resumes the paused parser and parses what is buffered. */
void conn_resume(struct conn *c);
void conn_set_timer(struct conn *c, uint64_t ms);
void conn_refresh_config(struct conn *c);

/* exchange.c */
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
/* Writes to the client drained: a body waiting for splice can start. */
void exchange_start_splice(struct conn *c);

#endif
