/* exchange.c - HTTP semantics of one request/response through the proxy.
 *
 * Request side: llhttp callbacks record the head (head.c) and stage body
 * bytes for the upstream; the parser pauses at the end of the head (so the
 * gateway decides before any body byte moves) and at the end of the message
 * (so a pipelined request waits for this response). Response side: the
 * upstream's head is rewritten (hop-by-hop fields out, framing regenerated,
 * Via in) and its body is re-framed for the client. Loop thread only. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <time.h>

#include "auth.h"
#include "rules/rules.h"
#include "session/table.h"
#include "conn.h"
#include "http/reply.h"
#include "auth/negotiate.h"
#include "proxy/parent.h"
#include "tls.h"
#include "util/log.h"

/* --- request callbacks ------------------------------------------------------ */

static int rq_begin(llhttp_t *p)
{
    struct conn *c = p->data;
    c->rq.in_message = true;
    conn_set_timer(c, c->cfg->head_timeout_ms);
    return 0;
}

/* Both parsers record their head the same way: the request parser's data
 * is the connection, the response parser's the upstream. */
static struct ag_head *head_of(llhttp_t *p)
{
    return p->type == HTTP_REQUEST ? &((struct conn *)p->data)->head
                                   : &((struct ag_upstream *)p->data)->head;
}

/* The connection a parser works for, or NULL (an upstream whose client
 * went away). */
static struct conn *conn_of(llhttp_t *p)
{
    return p->type == HTTP_REQUEST ? p->data : ((struct ag_upstream *)p->data)->owner;
}

const char exchange_chunk_too_big[] = "chunk size over the limit";

/* Both directions: llhttp has the chunk's size in content_length here. A
 * failure here is llhttp's HPE_CB_CHUNK_HEADER, which only this limit
 * causes (llhttp replaces the reason text with its own). */
static int on_chunk_header(llhttp_t *p)
{
    if (p->content_length <= AG_CHUNK_SIZE_MAX)
        return 0;
    struct conn *c = conn_of(p);
    if (c)
        c->srv->stats.limit_chunk_size++;
    return -1;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    return ag_head_on_url(head_of(p), at, len);
}

static int on_field(llhttp_t *p, const char *at, size_t len)
{
    return ag_head_on_field(head_of(p), at, len);
}

static int on_value(llhttp_t *p, const char *at, size_t len)
{
    return ag_head_on_value(head_of(p), at, len);
}

static int on_field_done(llhttp_t *p)
{
    return ag_head_field_done(head_of(p));
}

static int on_value_done(llhttp_t *p)
{
    ag_head_value_done(head_of(p));
    return 0;
}

static int rq_headers_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    c->head_ready = true;
    /* Upgrade is stripped as hop-by-hop, so the request stays plain HTTP. */
    if (p->method != HTTP_CONNECT)
        p->upgrade = 0;
    return HPE_PAUSED;
}

/* Stages len body bytes for the other side: framing is regenerated, never
 * copied, so a chunked body is re-chunked (one chunk per llhttp callback)
 * and a Content-Length body goes as it is. llhttp callback convention: 0 or
 * -1 (out of buffer). */
/* A chunk's size line, ours: every chunk we send is framed anew (and no
 * printf per body piece). 0 or an ag_buf error. */
static int chunk_size_line(struct ag_buf *b, uint64_t len)
{
    int rc = ag_buf_append_hex(b, len);
    return rc ? rc : ag_buf_append(b, "\r\n", 2);
}

static int stage_body(struct ag_buf *b, bool chunked, const char *at, size_t len)
{
    int rc = 0;
    if (chunked)
        rc = chunk_size_line(b, len);
    if (!rc)
        rc = ag_buf_append(b, at, len);
    if (!rc && chunked)
        rc = ag_buf_append(b, "\r\n", 2);
    return rc ? -1 : 0;
}

static int rq_body(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (c->rq.drain) {
        c->rq.drained += len;
        if (c->rq.drained > c->cfg->drain_max) {
            conn_close_after_flush(c);
            return HPE_PAUSED;
        }
        return 0;
    }
    /* (Empty after a spliced chunk: the parser is only told its data
     * passed. req_splice_chunk here: the splice could not start after our
     * size line for the rest of the chunk went out: the data follows raw.) */
    if (!len)
        return 0;
    return stage_body(&c->stage_up, c->rq.req_chunked && !c->rq.req_splice_chunk, at, len);
}

static int rq_chunk_header(llhttp_t *p)
{
    int rc = on_chunk_header(p);
    struct conn *c = p->data;
    if (!rc)
        c->rq.req_in_chunk = p->content_length > 0 && !c->rq.drain;
    return rc;
}

static int rq_chunk_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    c->rq.req_in_chunk = false;
    if (c->rq.req_splice_chunk) { /* (relayed raw, see rq_body) */
        c->rq.req_splice_chunk = false;
        return ag_buf_append(&c->stage_up, "\r\n", 2) ? -1 : 0;
    }
    return 0;
}

static int rq_message_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    c->rq.msg_done = true;
    if (!c->rq.drain && c->rq.req_chunked && c->state != CONN_READ_HEAD)
        ag_buf_append(&c->stage_up, "0\r\n\r\n", 5);
    return HPE_PAUSED;
}

const llhttp_settings_t ag_request_settings = {
    .on_message_begin = rq_begin,
    .on_url = on_url,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_header_field_complete = on_field_done,
    .on_header_value_complete = on_value_done,
    .on_headers_complete = rq_headers_complete,
    .on_body = rq_body,
    .on_chunk_header = rq_chunk_header,
    .on_chunk_complete = rq_chunk_complete,
    .on_message_complete = rq_message_complete,
};

/* --- access log ------------------------------------------------------------- */

/* Squid's hierarchy codes: the origin itself, or the first parent that
 * answered (FIRSTUP_PARENT, as Squid logs a cache_peer). */
static const char *hierarchy(const struct conn *c)
{
    if (!c->rq.hier_ip[0])
        return "HIER_NONE";
    return c->rq.parent ? "FIRSTUP_PARENT" : "HIER_DIRECT";
}

/* The wall-clock time of a line as Squid logs it: seconds.milliseconds. */
static void line_time(struct ag_line *l, const struct timeval *tv)
{
    ag_line_u64(l, (uint64_t)tv->tv_sec, 0, ' ');
    ag_line_ch(l, '.');
    ag_line_u64(l, (uint64_t)(tv->tv_usec / 1000), 3, '0');
}

void exchange_log(struct conn *c)
{
    struct ag_stats *st = &c->srv->stats;
    int s = c->rq.status;
    if (s >= 200 && s < 300)
        st->status_2xx++;
    else if (s >= 300 && s < 400)
        st->status_3xx++;
    else if (s >= 400 && s < 500)
        st->status_4xx++;
    else if (s >= 500)
        st->status_5xx++;
    if (s == 503) /* the alert rules watch it apart from upstream 5xx */
        st->status_503++;
    if (!ag_access_enabled())
        return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    const char *tag = "TCP_MISS";
    if (c->rq.is_connect && s == 200)
        tag = "TCP_TUNNEL";
    else if (s == 407 || s == 403)
        tag = "TCP_DENIED";
    else if (!c->rq.log_url)
        tag = "NONE_NONE";
    const char *method = c->rq.log_url ? llhttp_method_name((llhttp_method_t)c->rq.method) : "NONE";
    const char *url = c->rq.log_url ? c->rq.log_url : "error:invalid-request";
    const char *user = ag_auth_user(c);
    const char *ctype = c->rq.ctype[0] ? c->rq.ctype : "-";
    bool json = c->cfg->access_format == AG_ACCESS_JSON;
    size_t need =
        strlen(url) + strlen(user) + strlen(ctype) + strlen(c->peer) + strlen(c->rq.hier_ip);
    need = need * (json ? AG_LINE_JSON_GROWTH : 1) + 260; /* numbers, names, tags, spaces */
    char small[AG_ACCESS_LINE_MAX];
    struct ag_line l = {.p = small, .cap = sizeof small};
    if (need > sizeof small) {
        /* A long URL: the line is never cut. */
        if (!(l.p = malloc(need)))
            return;
        l.cap = need;
    }
    uint64_t ms = uv_now(c->srv->loop) - c->rq.t_start_ms;
    if (json) {
        /* One JSON object per line. The URL is already log-escaped (\xHH);
         * every string is JSON-escaped here too, so a shipper's parser never
         * sees a raw control byte, quote or backslash. */
        ag_line_str(&l, "{\"time\":");
        line_time(&l, &tv);
        ag_line_str(&l, ",\"duration_ms\":");
        ag_line_u64(&l, ms, 0, ' ');
        ag_line_str(&l, ",\"client\":\"");
        ag_line_json(&l, c->peer);
        ag_line_str(&l, "\",\"result\":\"");
        ag_line_str(&l, tag);
        ag_line_str(&l, "\",\"status\":");
        ag_line_u64(&l, (uint64_t)(s > 0 ? s : 0), 0, ' ');
        ag_line_str(&l, ",\"bytes\":");
        ag_line_u64(&l, c->rq.bytes_sent, 0, ' ');
        ag_line_str(&l, ",\"method\":\"");
        ag_line_json(&l, method);
        ag_line_str(&l, "\",\"url\":\"");
        ag_line_json(&l, url);
        ag_line_str(&l, "\",\"user\":\"");
        ag_line_json(&l, user);
        ag_line_str(&l, "\",\"hierarchy\":\"");
        ag_line_str(&l, hierarchy(c));
        ag_line_str(&l, "\",\"upstream\":\"");
        ag_line_json(&l, c->rq.hier_ip);
        ag_line_str(&l, "\",\"content_type\":\"");
        ag_line_json(&l, ctype);
        ag_line_str(&l, "\",\"conn\":");
        ag_line_u64(&l, c->id, 0, ' ');
        ag_line_str(&l, "}\n");
    } else {
        /* Squid's native format, built without printf:
         * "%lld.%03d %6llu %s %s/%03d %llu %s %s %s %s%s %s\n". */
        line_time(&l, &tv);
        ag_line_ch(&l, ' ');
        ag_line_u64(&l, ms, 6, ' ');
        ag_line_ch(&l, ' ');
        ag_line_str(&l, c->peer);
        ag_line_ch(&l, ' ');
        ag_line_str(&l, tag);
        ag_line_ch(&l, '/');
        ag_line_u64(&l, (uint64_t)(s > 0 ? s : 0), 3, '0');
        ag_line_ch(&l, ' ');
        ag_line_u64(&l, c->rq.bytes_sent, 0, ' ');
        ag_line_ch(&l, ' ');
        ag_line_str(&l, method);
        ag_line_ch(&l, ' ');
        ag_line_str(&l, url);
        ag_line_ch(&l, ' ');
        ag_line_str(&l, user);
        ag_line_ch(&l, ' ');
        ag_line_str(&l, hierarchy(c));
        ag_line_str(&l, c->rq.hier_ip[0] ? "/" : "/-");
        ag_line_str(&l, c->rq.hier_ip);
        ag_line_ch(&l, ' ');
        ag_line_str(&l, ctype);
        ag_line_ch(&l, '\n');
    }
    ag_access_line(l.p, l.len);
    /* Counted after the line is in the log (or its buffer): the client may
     * have its response before this, so whoever rotates the log and needs
     * the line in the old file waits for this count, not for the response. */
    c->srv->stats.access_log_lines++;
    if (l.p != small)
        free(l.p);
}

/* --- replies and the end of an exchange ------------------------------------ */

static void next_request(struct conn *c)
{
    ag_head_reset(&c->head);
    conn_enter(c, CONN_READ_HEAD);
    conn_request_reset(c, uv_now(c->srv->loop));
    c->paused = false;
    llhttp_resume(&c->parser);
    conn_set_timer(c, ag_auth_wait_timeout(c));
    conn_parse(c);
}

/* Whether a connection that may be reused may also serve OTHER clients:
 * never one that carried connection-bound origin auth (pinned: the origin
 * authenticated the connection, not the request), never through a parent
 * that takes single-use Negotiate tokens, nothing with bytes still queued. */
static bool shared_pool_ok(const struct conn *c, const struct ag_upstream *up)
{
    const struct ag_parent *p = c->rq.parent;
    return c->cfg->upstream_pool > 0 && !up->pinned && !c->srv->stopping && up->out_pending == 0 &&
           !(p && p->auth == AG_PARENT_AUTH_NEGOTIATE);
}

void exchange_maybe_done(struct conn *c)
{
    if (conn_ending(c) || !c->rq.resp_done || !c->rq.msg_done)
        return;
    struct ag_upstream *up = c->up;
    if (up) {
        bool reuse = up->connected && !up->closing && !c->rq.up_dirty && !c->rq.is_connect &&
                     c->state == CONN_FORWARD && llhttp_should_keep_alive(&up->parser);
        /* Each pooled upstream holds a descriptor for an idle client (two
         * with the splice end it keeps, counted in ag_splice_fds): past
         * three quarters of the descriptor limit, new clients matter more
         * than the pool (the accept gate closes at the limit itself). */
        if (reuse && (ag_server_conns(c->srv) + ag_server_fds_besides_clients()) * 4 >
                         c->srv->fd_limit * 3) {
            c->srv->stats.upstream_not_pooled_fds++;
            reuse = false;
        }
        if (reuse && shared_pool_ok(c, up)) {
            /* Any client of this loop may take it now. */
            c->up = NULL;
            uppool_put(c->srv, up, c->cfg);
        } else if (reuse) {
            /* Pinned (or the shared pool is off): this client's alone. */
            up->idle = true;
            up->reused = false;
            uv_timer_stop(&up->timer);
        } else {
            ag_upstream_close(up);
            c->up = NULL;
        }
    }
    if (c->state == CONN_FORWARD)
        exchange_log(c);
    if (c->rq.close_after || !c->rq.keepalive || c->srv->stopping || c->eof) {
        conn_close_after_flush(c);
        return;
    }
    if (up && c->up)
        exchange_pool_timer(c);
    next_request(c);
}

/* The page a browser gets for a refusal: 0, or AG_ELIMIT / AG_ENOMEM
 * (the caller sends the plain body). Every value is escaped by the
 * renderer; the host and user come from the network. */
static int render_page(struct conn *c, int status, const char *detail, struct ag_buf *page)
{
    char when[40], rid[24];
    time_t now = time(NULL);
    struct tm tm;
    if (!gmtime_r(&now, &tm) || !strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm))
        when[0] = '\0';
    snprintf(rid, sizeof rid, "%llu", (unsigned long long)c->rq.id);
    /* The name as the backend gave it, not the log's escaped form: the
     * page escapes it for HTML itself. */
    char user[2 * AG_USER_MAX + 2] = "(not signed in)";
    const struct ag_session *s = c->session;
    if (s && s->state == AG_AS_AUTHENTICATED)
        snprintf(user, sizeof user, "%s%s%s", s->id.domain, s->id.domain[0] ? "\\" : "",
                 s->id.user);
    struct ag_errpage_vars v = {
        .status = status,
        .reason = ag_reply_reason(status),
        .message = ag_reply_message(status),
        .detail = detail ? detail : "",
        .user = user,
        .client = c->peer,
        .host = c->rq.target.host,
        .time = when,
        .request_id = rid,
        .contact = c->cfg->error_contact ? c->cfg->error_contact : "your help desk",
    };
    return ag_errpage_render(c->cfg->errpages, &v, page);
}

/* The response to a refusal: an HTML page for a browser, the one-line
 * text/plain body for everyone else (and when the page cannot be made). */
static int build_reply(struct conn *c, int status, const char *extra, bool keep, const char *detail)
{
    if (status >= 400 && ag_head_accepts_html(&c->head)) {
        struct ag_buf page;
        ag_buf_init(&page, AG_ERROR_PAGE_MAX);
        int rc = render_page(c, status, detail, &page);
        if (rc == 0)
            rc = ag_reply_build_body(&c->stage_client, status, extra, keep, c->rq.http10,
                                     "text/html; charset=utf-8", page.data, page.len);
        ag_buf_free(&page);
        if (rc == 0) {
            c->srv->stats.error_pages++;
            return 0;
        }
        if (rc == AG_ELIMIT)
            c->srv->stats.limit_error_page++;
    }
    return ag_reply_build(&c->stage_client, status, extra, keep, c->rq.http10, detail);
}

/* A body the gateway sends from memory it does not own (the PAC file in
 * the configuration snapshot the connection holds). */
struct reply_body {
    const char *ctype;
    const char *data;
    size_t len;
    bool send; /* false: HEAD or 304, the head only */
};

static void reply_with(struct conn *c, int status, const char *extra, const char *detail,
                       const struct reply_body *body)
{
    if (conn_ending(c))
        return;
    /* A refused CONNECT keeps the connection only for a 407 (NTLM needs it
     * for its next leg) and only if nothing followed its head. */
    bool keep = c->rq.keepalive && !c->rq.close_after && !c->srv->stopping &&
                !(c->rq.is_connect && (status != 407 || c->inbuf.len));
    /* A body already announced as longer than we drain: say close now, not
     * keep-alive followed by a close. */
    if (!c->rq.msg_done && !c->rq.req_chunked && c->rq.req_content_length > c->cfg->drain_max)
        keep = false;
    c->rq.status = status;
    c->rq.resp_started = c->rq.resp_done = true;
    int rc = body ? ag_reply_build_head(&c->stage_client, status, body->ctype, body->len, extra,
                                        keep, c->rq.http10)
                  : build_reply(c, status, extra, keep, detail);
    char *copy = NULL;
    if (!rc && body && body->send && !(copy = malloc(body->len)))
        rc = AG_ENOMEM;
    if (rc != 0) {
        conn_close(c, "reply_failed");
        return;
    }
    conn_flush(c);
    if (copy) {
        memcpy(copy, body->data, body->len);
        conn_write_client(c, copy, body->len);
    }
    exchange_log(c);
    if (conn_ending(c))
        return; /* the reply's write closed it */
    if (!keep) {
        conn_close_after_flush(c);
        return;
    }
    /* The body of a refused request is read and discarded (up to a cap) so
     * the connection survives; it never reaches a parser as a request. */
    ag_upstream_close(c->up);
    c->up = NULL;
    c->rq.drain = true;
    c->parser.upgrade = 0; /* a refused CONNECT: the next bytes are HTTP again */
    conn_enter(c, CONN_READ_HEAD);
    if (c->rq.msg_done) {
        exchange_maybe_done(c);
        return;
    }
    /* The rest of the body has drain_timeout from now; the next request's
     * deadline replaces it once the body is in. */
    conn_set_timer(c, c->cfg->drain_timeout_ms);
    conn_resume(c);
}

void exchange_reply(struct conn *c, int status, const char *extra, const char *detail)
{
    reply_with(c, status, extra, detail, NULL);
}

/* --- the upstream request -------------------------------------------------- */

static bool via_has_us(const struct ag_head *h, const char *pseudonym)
{
    size_t pl = strlen(pseudonym);
    for (uint32_t i = 0; i < h->n_fields; i++) {
        size_t nl, vl;
        const char *nm = ag_head_name(h, i, &nl);
        if (!ag_strieq(nm, nl, "Via"))
            continue;
        const char *v = ag_head_value(h, i, &vl);
        /* Each element is "protocol received-by [comment]": match received-by. */
        for (size_t k = 0; k + pl <= vl; k++) {
            bool start = k > 0 && (v[k - 1] == ' ' || v[k - 1] == '\t');
            bool end = k + pl == vl || v[k + pl] == ' ' || v[k + pl] == ',' || v[k + pl] == '\t';
            if (start && end && ag_strieq(v + k, pl, pseudonym))
                return true;
        }
    }
    return false;
}

/* True when the field name nm equals name with case ignored and '-' and '_'
 * taken as the same character: CGI (HTTP_X_AUTHENTICATED_USER), nginx with
 * underscores_in_headers and many frameworks read both spellings as one
 * field, so a client's "X_Authenticated_User" would pass for ours. */
static bool same_field_loose(const char *nm, size_t nl, const char *name)
{
    if (!name || strlen(name) != nl)
        return false;
    for (size_t i = 0; i < nl; i++) {
        char a = nm[i] == '_' ? '-' : ag_ascii_lower(nm[i]);
        char b = name[i] == '_' ? '-' : ag_ascii_lower(name[i]);
        if (a != b)
            return false;
    }
    return true;
}

/* What the gateway adds for the next hop: its own credentials for a
 * parent (never the client's: Proxy-Authorization is hop-by-hop and was
 * stripped), and the identity header, to a parent only with
 * parent_identity_header on. */
static int parent_fields(struct conn *c, struct ag_buf *b)
{
    int rc = 0;
    const struct ag_parent *p = c->rq.parent;
    if (p && p->basic_field)
        rc |= ag_buf_appendz(b, p->basic_field);
    else if (p && p->auth == AG_PARENT_AUTH_NEGOTIATE && c->rq.parent_auth)
        rc |= ag_buf_appendz(b, c->rq.parent_auth);
    const char *ident = ag_auth_identity_header(c);
    if (ident && (!p || c->cfg->parent_identity_header))
        rc |= ag_buf_appendz(b, ident);
    return rc;
}

static int content_length_field(struct ag_buf *b, uint64_t n)
{
    int rc = ag_buf_append(b, "Content-Length: ", 16);
    rc |= ag_buf_append_u64(b, n);
    return rc | ag_buf_append(b, "\r\n", 2);
}

static int via_field(struct ag_buf *b, const char *pseudonym)
{
    int rc = ag_buf_append(b, "Via: 1.1 ", 9);
    rc |= ag_buf_appendz(b, pseudonym);
    return rc | ag_buf_append(b, "\r\n", 2);
}

static int build_upstream_head(struct conn *c, struct ag_buf *b)
{
    struct ag_head *h = &c->head;
    const struct ag_config *cfg = c->cfg;
    int rc;
    if (c->rq.parent) {
        /* A parent is a proxy: absolute form, as the client sent it to us
         * (the canonical host; the path and query as sent). */
        static _Thread_local char url[AG_URL_MAX + AG_HOST_MAX + 16]; /* one per loop */
        ag_target_url(&c->rq.target, url, sizeof url);
        rc = ag_buf_printf(b, "%s %s HTTP/1.1\r\n",
                           llhttp_method_name((llhttp_method_t)c->rq.method), url);
    } else {
        /* Every request: appends, no printf. */
        rc = ag_buf_appendz(b, llhttp_method_name((llhttp_method_t)c->rq.method));
        rc |= ag_buf_append(b, " ", 1);
        rc |= c->rq.target.path_len ? ag_buf_append(b, c->rq.target.path, c->rq.target.path_len)
                                    : ag_buf_append(b, "/", 1);
        rc |= ag_buf_append(b, " HTTP/1.1\r\n", 11);
    }
    rc |= c->rq.target.ipv6 ? ag_buf_append(b, "Host: [", 7) : ag_buf_append(b, "Host: ", 6);
    rc |= ag_buf_appendz(b, c->rq.target.host);
    if (c->rq.target.ipv6)
        rc |= ag_buf_append(b, "]", 1);
    if (c->rq.target.port != 80) {
        rc |= ag_buf_append(b, ":", 1);
        rc |= ag_buf_append_u64(b, c->rq.target.port);
    }
    rc |= ag_buf_append(b, "\r\n", 2);
    const char *xff = NULL;
    size_t xffl = 0;
    for (uint32_t i = 0; i < h->n_fields && !rc; i++) {
        size_t nl, vl;
        const char *nm = ag_head_name(h, i, &nl);
        const char *v = ag_head_value(h, i, &vl);
        /* X-Authenticated-User is stripped even when no identity header is
         * configured: origins commonly trust it, so no client may set it.
         * Both go in every spelling an origin may read as the same name. */
        if (ag_head_is_hop(h, i, cfg->identity_header) || ag_strieq(nm, nl, "Host") ||
            same_field_loose(nm, nl, "X-Authenticated-User") ||
            same_field_loose(nm, nl, cfg->identity_header) || ag_strieq(nm, nl, "Content-Length") ||
            ag_strieq(nm, nl, "Transfer-Encoding"))
            continue;
        if (cfg->x_forwarded_for && ag_strieq(nm, nl, "X-Forwarded-For")) {
            xff = v;
            xffl = vl;
            continue;
        }
        if (ag_strieq(nm, nl, "Max-Forwards") && c->rq.has_max_forwards) {
            rc |= ag_buf_printf(
                b, "Max-Forwards: %llu\r\n",
                (unsigned long long)(c->rq.max_forwards ? c->rq.max_forwards - 1 : 0));
            continue;
        }
        rc |= ag_buf_append(b, nm, nl);
        rc |= ag_buf_append(b, ": ", 2);
        rc |= ag_buf_append(b, v, vl);
        rc |= ag_buf_append(b, "\r\n", 2);
    }
    if (c->rq.req_chunked)
        rc |= ag_buf_appendz(b, "Transfer-Encoding: chunked\r\n");
    else if (c->parser.flags & F_CONTENT_LENGTH)
        rc |= content_length_field(b, c->rq.req_content_length);
    rc |= via_field(b, cfg->via_pseudonym);
    if (cfg->x_forwarded_for)
        rc |= ag_buf_printf(b, "X-Forwarded-For: %.*s%s%s\r\n", (int)xffl, xff ? xff : "",
                            xff ? ", " : "", c->peer);
    rc |= parent_fields(c, b);
    rc |= ag_buf_append(b, "\r\n", 2);
    return rc ? AG_ELIMIT : 0;
}

/* --- access rules ----------------------------------------------------------- */

static enum ag_rule_verdict rules_eval(struct conn *c, const struct sockaddr *dst, bool preauth,
                                       const char **rule, bool *recheck,
                                       const struct ag_route **route)
{
    struct sockaddr_storage lit;
    if (!dst) {
        /* A literal address target is its own destination. */
        memset(&lit, 0, sizeof lit);
        struct sockaddr_in *s4 = (struct sockaddr_in *)&lit;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&lit;
        if (inet_pton(AF_INET, c->rq.target.host, &s4->sin_addr) == 1) {
            s4->sin_family = AF_INET;
            dst = (const struct sockaddr *)&lit;
        } else if (inet_pton(AF_INET6, c->rq.target.host, &s6->sin6_addr) == 1) {
            s6->sin6_family = AF_INET6;
            dst = (const struct sockaddr *)&lit;
        }
    }
    const struct ag_session *s = c->session;
    bool authed = s && s->state == AG_AS_AUTHENTICATED;
    /* path= rules see the path as the origin will resolve it: no "..",
     * no %-encoded letters to hide behind. */
    static _Thread_local char path[AG_URL_MAX + 2]; /* one per loop thread (workers N) */
    size_t pl = 0;
    if (!c->rq.is_connect)
        pl = ag_path_normalize(c->rq.target.path_len ? c->rq.target.path : "/",
                               c->rq.target.path_len ? c->rq.target.path_len : 1, path);
    struct ag_rules_query q = {
        .host = c->rq.target.host,
        .dst = dst,
        .port = c->rq.target.port,
        .method = llhttp_method_name((llhttp_method_t)c->rq.method),
        .path = c->rq.is_connect ? NULL : path,
        .path_len = pl,
        .path_case_sensitive = c->cfg->rules_path_case == AG_PATH_CASE_SENSITIVE,
        .src = (const struct sockaddr *)&c->peer_addr,
        .id = authed ? &s->id : NULL,
        .scheme = authed ? s->scheme : AG_SCHEME_NONE,
        .now = time(NULL),
        .route = route,
    };
    return ag_rules_eval(c->srv->rules, &q, preauth, rule, recheck);
}

/* A valid identity that the rules refuse gets 403 naming the rule, never a
 * 407 (which would make a browser prompt for another password). */
static void deny(struct conn *c, const char *rule)
{
    c->srv->stats.rules_denied++;
    char host[AG_HOST_MAX * 4 + 1];
    ag_info("conn=%llu req=%llu event=denied rule=%s client=%s user=\"%s\" host=%s port=%u",
            (unsigned long long)c->id, (unsigned long long)c->rq.id, rule, c->peer, ag_auth_user(c),
            ag_escape(host, sizeof host, c->rq.target.host, strlen(c->rq.target.host)),
            c->rq.target.port);
    char detail[128];
    snprintf(detail, sizeof detail, "denied by access rule '%s'", rule);
    exchange_reply(c, 403, NULL, detail);
}

/* A rule needs the groups of a Kerberos user whose group lookup failed:
 * neither allow nor deny can be trusted, so 503 (winbind may come back) and
 * the connection closes, so that the next one looks the groups up afresh. */
static void groups_unknown(struct conn *c, const char *rule)
{
    c->srv->stats.rules_groups_unavailable++;
    ag_err("conn=%llu req=%llu event=groups_unavailable rule=%s client=%s user=\"%s\"",
           (unsigned long long)c->id, (unsigned long long)c->rq.id, rule, c->peer, ag_auth_user(c));
    c->rq.close_after = true;
    exchange_reply(c, 503, AG_RETRY_AFTER_FIELD, "group membership unavailable");
}

/* The target is, or resolved only to, 0.0.0.0/8 or ::, which the kernel
 * would connect to this host itself: 403 like a dst= deny (Squid refuses
 * it the same way through its to_localhost acl), for everyone. */
static void refuse_this_network(struct conn *c)
{
    ag_upstream_close(c->up);
    c->up = NULL;
    c->srv->stats.dst_this_network++;
    char host[AG_HOST_MAX * 4 + 1];
    ag_info("conn=%llu req=%llu event=dst_this_network client=%s user=\"%s\" host=%s port=%u",
            (unsigned long long)c->id, (unsigned long long)c->rq.id, c->peer, ag_auth_user(c),
            ag_escape(host, sizeof host, c->rq.target.host, strlen(c->rq.target.host)),
            c->rq.target.port);
    exchange_reply(c, 403, NULL, "destination is the unspecified address (0.0.0.0 or ::)");
}

static bool addr_allowed(void *owner, const struct sockaddr *sa)
{
    struct conn *c = owner;
    if (!c->rq.rules_by_addr || !c->srv->rules)
        return true;
    /* With the address known: the pre-auth rules first (they apply to
     * everyone), then, for an authenticated request, the others. */
    if (c->rq.reroute)
        return false; /* decided: through the parents */
    const char *rule;
    const struct ag_route *route = NULL;
    enum ag_rule_verdict v = rules_eval(c, sa, true, &rule, NULL, &route);
    if (v != AG_RULE_DENY && !c->rq.preauth)
        v = rules_eval(c, sa, false, &rule, NULL, &route);
    if (v == AG_RULE_DENY || v == AG_RULE_GROUPS_UNKNOWN) {
        c->rq.denied_rule = rule;
        c->rq.denied_groups = v == AG_RULE_GROUPS_UNKNOWN;
        return false;
    }
    /* The rule that admits this address sends it through parents: no
     * direct connection (on_upstream_ready takes the route). */
    if (v == AG_RULE_ALLOW && route) {
        c->rq.reroute = route;
        return false;
    }
    return true;
}

/* --- the upstream response ------------------------------------------------- */

/* True when a field (WWW-Authenticate, Authorization) starts with NTLM or
 * Negotiate with a token after it, or lists either as a bare challenge. */
static void pin_upstream(struct conn *c, struct ag_upstream *up);

static bool conn_bound_auth(const struct ag_head *h, const char *field)
{
    if (ag_head_has_token(h, field, "NTLM") || ag_head_has_token(h, field, "Negotiate"))
        return true;
    for (uint32_t i = 0; i < h->n_fields; i++) {
        size_t nl, vl;
        const char *nm = ag_head_name(h, i, &nl);
        if (!ag_strieq(nm, nl, field))
            continue;
        const char *v = ag_head_value(h, i, &vl);
        if ((vl >= 5 && ag_strieq(v, 4, "NTLM") && v[4] == ' ') ||
            (vl >= 10 && ag_strieq(v, 9, "Negotiate") && v[9] == ' '))
            return true;
    }
    return false;
}

static int copy_fields(struct ag_buf *b, struct ag_head *h, struct conn *c)
{
    int rc = 0;
    for (uint32_t i = 0; i < h->n_fields && !rc; i++) {
        size_t nl, vl;
        const char *nm = ag_head_name(h, i, &nl);
        const char *v = ag_head_value(h, i, &vl);
        if (ag_head_is_hop(h, i, NULL) || ag_strieq(nm, nl, "Content-Length") ||
            ag_strieq(nm, nl, "Transfer-Encoding"))
            continue;
        if (c && ag_strieq(nm, nl, "Content-Type"))
            ag_escape(c->rq.ctype, sizeof c->rq.ctype, v, vl);
        rc |= ag_buf_append(b, nm, nl);
        rc |= ag_buf_append(b, ": ", 2);
        rc |= ag_buf_append(b, v, vl);
        rc |= ag_buf_append(b, "\r\n", 2);
    }
    return rc;
}

static int rs_headers_complete(llhttp_t *p)
{
    struct ag_upstream *up = p->data;
    struct conn *c = conn_of(p);
    if (!c)
        return -1;
    int st = p->status_code;
    size_t rl;
    const char *reason = ag_head_url(&up->head, &rl);
    struct ag_buf *b = &c->stage_client;
    if (st < 200) {
        /* 101 would switch protocols we stripped; other 1xx are relayed to
         * HTTP/1.1 clients (100 Continue answers their Expect). */
        if (st == 101)
            return -1;
        c->rq.resp_1xx = true;
        int rc = 0;
        if (!c->rq.http10) {
            rc |= ag_buf_printf(b, "HTTP/1.1 %d %.*s\r\n", st, (int)rl, reason);
            rc |= copy_fields(b, &up->head, NULL);
            rc |= ag_buf_append(b, "\r\n", 2);
        }
        ag_head_reset(&up->head);
        return rc ? -1 : 0;
    }
    c->rq.resp_1xx = false;
    if (st == 407) {
        /* An origin asking for *proxy* credentials would harvest ours. */
        c->rq.up_407 = true;
        return -1;
    }
    c->rq.resp_started = true;
    c->rq.status = st;
    bool no_body = c->rq.is_head || st == 204 || st == 304;
    int rc = ag_buf_append(b, "HTTP/1.1 ", 9);
    rc |= ag_buf_append_u64(b, (uint64_t)st);
    rc |= ag_buf_append(b, " ", 1);
    rc |= ag_buf_append(b, reason, rl);
    rc |= ag_buf_append(b, "\r\n", 2);
    rc |= copy_fields(b, &up->head, c);
    if (no_body) {
        if (p->flags & F_CONTENT_LENGTH)
            rc |= content_length_field(b, p->content_length);
    } else if (p->flags & F_CHUNKED) {
        if (c->rq.http10)
            c->rq.close_after = true; /* HTTP/1.0 has no chunked: delimit by close */
        else {
            c->rq.resp_chunked_out = true;
            rc |= ag_buf_appendz(b, "Transfer-Encoding: chunked\r\n");
        }
    } else if (p->flags & F_CONTENT_LENGTH) {
        rc |= content_length_field(b, p->content_length);
    } else {
        c->rq.close_after = true; /* close-delimited */
    }
    rc |= via_field(b, c->cfg->via_pseudonym);
    /* An origin doing connection-bound auth (NTLM/Negotiate to the origin)
     * works through us: its upstream connection belongs to this client
     * connection alone (MS-NTHT 2.2.3). Say so, as Windows clients expect. */
    if (conn_bound_auth(&up->head, "WWW-Authenticate")) {
        pin_upstream(c, up);
        if (st == 401)
            rc |= ag_buf_appendz(b, "Proxy-Support: Session-Based-Authentication\r\n");
    }
    if (c->rq.resp_extra)
        rc |= ag_buf_appendz(b, c->rq.resp_extra);
    if (c->rq.close_after || !c->rq.keepalive || c->srv->stopping)
        rc |= ag_buf_appendz(b, "Connection: close\r\n");
    else if (c->rq.http10)
        rc |= ag_buf_appendz(b, "Connection: keep-alive\r\nProxy-Connection: keep-alive\r\n");
    rc |= ag_buf_append(b, "\r\n", 2);
    if (rc)
        return -1;
    /* 1 tells llhttp that no body follows, whatever Content-Length says. */
    return no_body ? 1 : 0;
}

static int rs_body(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = conn_of(p);
    if (!c)
        return -1;
    /* (Empty after a spliced chunk: the parser is only told its data
     * passed. An empty chunk would end the chunked body we send.) */
    if (!len)
        return 0;
    /* splice_chunk here: the splice could not start after the rest of the
     * chunk's size line went out; its data follows raw, in user space. */
    return stage_body(&c->stage_client, c->rq.resp_chunked_out && !c->rq.splice_chunk, at, len);
}

static int rs_chunk_header(llhttp_t *p)
{
    int rc = on_chunk_header(p);
    struct conn *c = conn_of(p);
    if (!rc && c)
        c->rq.resp_in_chunk = p->content_length > 0;
    return rc;
}

static int rs_chunk_complete(llhttp_t *p)
{
    struct conn *c = conn_of(p);
    if (!c)
        return 0;
    c->rq.resp_in_chunk = false;
    if (c->rq.splice_chunk) { /* (relayed raw, see rs_body) */
        c->rq.splice_chunk = false;
        return ag_buf_append(&c->stage_client, "\r\n", 2) ? -1 : 0;
    }
    return 0;
}

static int rs_message_complete(llhttp_t *p)
{
    struct conn *c = conn_of(p);
    if (!c)
        return -1;
    if (p->status_code < 200)
        return 0; /* an interim response: the final one follows */
    if (c->rq.resp_chunked_out)
        ag_buf_append(&c->stage_client, "0\r\n\r\n", 5);
    c->rq.resp_done = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t response_settings = {
    .on_status = on_url, /* the reason phrase is kept where a request keeps its target */
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_header_field_complete = on_field_done,
    .on_header_value_complete = on_value_done,
    .on_headers_complete = rs_headers_complete,
    .on_body = rs_body,
    .on_chunk_header = rs_chunk_header,
    .on_chunk_complete = rs_chunk_complete,
    .on_message_complete = rs_message_complete,
};

/* --- upstream timers, failures, retry ------------------------------------- */

static void on_up_timer(uv_timer_t *t)
{
    struct ag_upstream *up = t->data;
    struct conn *c = up->owner;
    if (!c)
        return;
    if (up->idle) {
        ag_upstream_close(up);
        c->up = NULL;
        return;
    }
    exchange_upstream_timeout(c);
}

/* Bytes came from the upstream (or a pump moved some of its exchange): its
 * silence deadline, upstream_idle_timeout, starts again. uv_timer_again
 * does not do that: it restarts only a repeating timer, and this one is
 * not, so the deadline counted from the request and cut every response
 * that took longer (a large download: 504, or a truncated body). */
static void upstream_heard(struct conn *c)
{
    struct ag_upstream *up = c->up;
    if (up && !up->idle && c->state == CONN_FORWARD && uv_is_active((uv_handle_t *)&up->timer))
        uv_timer_start(&up->timer, on_up_timer, c->cfg->upstream_idle_timeout_ms, 0);
}

void exchange_pool_timer(struct conn *c)
{
    uv_timer_start(&c->up->timer, on_up_timer, c->cfg->upstream_keepalive_ms, 0);
}

/* detail: what exactly went wrong, or NULL (an invalid response names the
 * parser's error, where it stopped and the bytes around it, so that a stray
 * 502 can be told apart from a broken origin). */
static void upstream_failed_detail(struct conn *c, int status, const char *why, const char *detail)
{
    c->srv->stats.upstream_errors++;
    char host[AG_HOST_MAX * 4 + 1];
    ag_info("conn=%llu req=%llu event=upstream_error host=%s status=%d reason=%s%s%s%s",
            (unsigned long long)c->id, (unsigned long long)c->rq.id,
            ag_escape(host, sizeof host, c->rq.target.host, strlen(c->rq.target.host)), status, why,
            detail ? " detail=\"" : "", detail ? detail : "", detail ? "\"" : "");
    ag_upstream_close(c->up); /* (halts a request pump on it) */
    c->up = NULL;
    if (c->req_splicing) {
        /* Part of a request chunk went into a pump the parser never saw:
         * the client's stream cannot be read on. */
        c->req_splicing = false;
        conn_close(c, "upstream_failed_mid_request");
        return;
    }
    if (c->rq.resp_started && c->rq.status) {
        /* The response cannot be finished: the client learns it from the
         * close. A flushed, lingering close keeps what went before intact
         * (a whole earlier pipelined response still in the socket);
         * a splice in progress is torn down at once. */
        if (c->splicing)
            conn_close(c, "upstream_failed_mid_response");
        else
            conn_close_after_flush(c);
        return;
    }
    if (!c->rq.msg_done)
        c->rq.close_after = true; /* part of the body is unread: cannot resync */
    exchange_reply(c, status, NULL, why);
}

static void upstream_failed(struct conn *c, int status, const char *why)
{
    upstream_failed_detail(c, status, why, NULL);
}

void exchange_upstream_timeout(struct conn *c)
{
    c->srv->stats.timeout_upstream++;
    upstream_failed(c, 504, "upstream timeout");
}

/* The connection carries connection-oriented origin auth (NTLM or
 * Negotiate, MS-NTHT 2.2.3): it belongs to this client connection for its
 * life, never to the shared pool (Squid pins it the same way). */
static void pin_upstream(struct conn *c, struct ag_upstream *up)
{
    if (up->pinned)
        return;
    up->pinned = true;
    c->srv->stats.upstream_pinned++;
    ag_debug("conn=%llu event=upstream_pinned host=%s port=%u", (unsigned long long)c->id, up->host,
             (unsigned)up->port);
}

static void start_exchange_io(struct conn *c)
{
    struct ag_upstream *up = c->up;
    llhttp_init(&up->parser, HTTP_RESPONSE, &response_settings);
    up->parser.data = up;
    ag_head_reset(&up->head);
    _Static_assert(sizeof c->rq.hier_ip == sizeof up->peer_ip, "hier_ip is a copy of peer_ip");
    memcpy(c->rq.hier_ip, up->peer_ip, sizeof c->rq.hier_ip); /* terminated by inet_ntop */
    if (conn_bound_auth(&c->head, "Authorization"))
        pin_upstream(c, up);
    if (ag_buf_append(&c->stage_up, c->rq.req_head_up.data, c->rq.req_head_up.len) != 0) {
        upstream_failed(c, 502, "request head too large");
        return;
    }
    conn_enter(c, CONN_FORWARD);
    uv_timer_start(&up->timer, on_up_timer, c->cfg->upstream_idle_timeout_ms, 0);
    /* The head is staged for a fresh or a pooled upstream connection: one
     * forwarded request (the retry on a fresh connection is the same one). */
    if (!c->rq.retried) {
        c->srv->stats.forwarded++;
        if (c->rq.parent)
            c->srv->stats.parent_routed++; /* on a reused connection too */
    }
    conn_flush(c);
    conn_resume(c);
}

/* --- parents (route=) ------------------------------------------------------- */

void free_parent_auth(struct conn *c)
{
    if (c->rq.parent_auth) {
        ag_wipe(c->rq.parent_auth, strlen(c->rq.parent_auth));
        free(c->rq.parent_auth);
        c->rq.parent_auth = NULL;
    }
}

static void open_upstream(struct conn *c);
static void start_hop(struct conn *c);

/* c->rq.parent_why becomes "name: why"; its block is made by the first
 * failure of the exchange (without one the log says "no parent"). */
static void set_parent_why(struct conn *c, const char *name, const char *why)
{
    if (!c->rq.parent_why && !(c->rq.parent_why = malloc(AG_PARENT_WHY_MAX)))
        return;
    snprintf(c->rq.parent_why, AG_PARENT_WHY_MAX, "%s: %s", name, why);
}

/* The next parent of the request's route that is not in back-off, into
 * c->rq.parent; false when none is left. */
static bool next_parent(struct conn *c)
{
    const struct ag_route *r = c->rq.route;
    uint64_t now = ag_now_ms();
    c->rq.parent = NULL;
    while (r && c->rq.route_next < r->n) {
        const char *name = r->parents[c->rq.route_next++];
        const struct ag_parent *p = ag_config_parent(c->cfg, name);
        if (!p) {
            /* The rules and this connection's configuration are of
             * different reloads: the parent is gone. */
            set_parent_why(c, name, "not configured");
            continue;
        }
        struct ag_parent_health *h = ag_parent_health(p->name, p->host, p->port);
        if (!ag_parent_usable(h, now)) {
            c->srv->stats.parent_skipped++;
            set_parent_why(c, p->name, "in back-off");
            continue;
        }
        c->rq.parent = p;
        c->rq.parent_health = h;
        return true;
    }
    return false;
}

/* Every parent of the route failed or is in back-off: 502, and the reason
 * (the last parent's) in the log. */
static void no_parent(struct conn *c)
{
    c->srv->stats.parent_none_left++;
    char host[AG_HOST_MAX * 4 + 1];
    ag_err("conn=%llu event=parent_none_left client=%s host=%s reason=\"%s\"",
           (unsigned long long)c->id, c->peer,
           ag_escape(host, sizeof host, c->rq.target.host, strlen(c->rq.target.host)),
           c->rq.parent_why ? c->rq.parent_why : "no parent");
    upstream_failed(c, 502, "no parent proxy available");
}

/* The request head for the chosen hop (a parent's own credentials differ
 * from another's). CONNECT has none: the tunnel starts from the target. */
static int route_head(struct conn *c)
{
    if (c->rq.is_connect)
        return 0;
    ag_buf_consume(&c->rq.req_head_up, c->rq.req_head_up.len); /* block kept */
    if (build_upstream_head(c, &c->rq.req_head_up) != 0) {
        c->rq.close_after = true;
        exchange_reply(c, 431, NULL, "request head too large");
        return -1;
    }
    return 0;
}

/* The parent could not be connected to: skipped for parent_backoff (one
 * log line when it goes down), and the next parent of the route tried. */
static void parent_down(struct conn *c, const char *why)
{
    const struct ag_parent *p = c->rq.parent;
    c->srv->stats.parent_failed++;
    if (ag_parent_mark_down(c->rq.parent_health, ag_now_ms(), c->cfg->parent_backoff_ms))
        ag_warn("event=parent_down parent=%s address=%s:%u reason=\"%s\" backoff_ms=%u", p->name,
                p->host, (unsigned)p->port, why, c->cfg->parent_backoff_ms);
    set_parent_why(c, p->name, why);
    ag_upstream_close(c->up);
    c->up = NULL;
    if (!next_parent(c)) {
        no_parent(c);
        return;
    }
    start_hop(c);
}

static void parent_failed(struct conn *c, int status)
{
    parent_down(c, status == AG_ELIMIT      ? "connect timeout"
                   : status == AG_ENOTFOUND ? "name not resolved"
                   : status == AG_EUNSUPP   ? "unusable address"
                                            : "connection refused");
}

/* A parent answered our request with a refusal (407, 403, 5xx to CONNECT,
 * or nothing HTTP): 502 to the client, the parent's status in the log.
 * The parent is reachable, so no back-off. */
static void parent_refused(struct conn *c, int status, const char *what)
{
    const struct ag_parent *p = c->rq.parent;
    c->srv->stats.parent_refused++;
    char host[AG_HOST_MAX * 4 + 1];
    ag_warn("conn=%llu event=parent_refused parent=%s host=%s status=%d reason=\"%s\"",
            (unsigned long long)c->id, p ? p->name : "-",
            ag_escape(host, sizeof host, c->rq.target.host, strlen(c->rq.target.host)), status,
            what);
    c->rq.parent_connect = false;
    char detail[160];
    if (status)
        snprintf(detail, sizeof detail, "parent proxy %s refused the request (%d)",
                 p ? p->name : "-", status);
    else
        snprintf(detail, sizeof detail, "parent proxy %s: %s", p ? p->name : "-", what);
    upstream_failed(c, 502, detail);
}

/* The tunnel is open (to the target, or through the parent): 200 to the
 * client, then rest (bytes the parent sent after its 2xx) and the client's
 * bytes that followed its CONNECT head. */
static void tunnel_open(struct conn *c, const char *rest, size_t rest_len)
{
    struct ag_upstream *up = c->up;
    uv_timer_stop(&up->timer);
    c->srv->stats.tunnels++;
    snprintf(c->rq.hier_ip, sizeof c->rq.hier_ip, "%s", up->peer_ip);
    c->rq.status = 200;
    struct ag_buf ok;
    ag_buf_init(&ok, 64 * 1024);
    if (ag_buf_printf(&ok, "HTTP/1.1 200 Connection established\r\n%s\r\n",
                      c->rq.resp_extra ? c->rq.resp_extra : "") != 0 ||
        (rest_len && ag_buf_append(&ok, rest, rest_len) != 0)) {
        ag_buf_free(&ok);
        conn_close(c, "nomem");
        return;
    }
    size_t okl;
    char *d = ag_buf_steal(&ok, &okl);
    conn_write_client(c, d, okl);
    if (conn_ending(c))
        return; /* the write closed it */
    conn_enter(c, CONN_TUNNEL);
    /* Plain TCP on both sides: the bytes can go socket to socket (a TLS
     * listener or parent needs OpenSSL to see them). */
    c->tun_splice_want = !c->tls && !up->tls;
    /* Bytes that followed the CONNECT head belong to the tunnel. */
    if (c->inbuf.len) {
        size_t n;
        char *r = ag_buf_steal(&c->inbuf, &n);
        conn_write_up(c, r, n);
    }
    ag_buf_free(&c->inbuf);
    ag_head_free(&c->head);
    conn_set_timer(c, c->cfg->tunnel_idle_timeout_ms);
    conn_update_reading(c);
}

static int pc_headers_complete(llhttp_t *p)
{
    (void)p;
    return HPE_PAUSED; /* the status is all we need; what follows is the tunnel */
}

static const llhttp_settings_t parent_connect_settings = {
    .on_headers_complete = pc_headers_complete,
};

/* CONNECT through a parent: our own CONNECT to it, with the gateway's
 * credentials (never the client's) and the identity header if allowed. */
static void parent_connect_start(struct conn *c)
{
    struct ag_upstream *up = c->up;
    char auth[AG_HOST_MAX + 16];
    ag_target_authority(&c->rq.target, auth, sizeof auth);
    struct ag_buf b;
    ag_buf_init(&b, 2 * AG_HEADER_MAX);
    int rc = ag_buf_printf(&b, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nVia: 1.1 %s\r\n", auth, auth,
                           c->cfg->via_pseudonym);
    rc |= parent_fields(c, &b);
    rc |= ag_buf_append(&b, "\r\n", 2);
    if (rc) {
        ag_buf_free(&b);
        upstream_failed(c, 502, "cannot build the CONNECT to the parent");
        return;
    }
    llhttp_init(&up->parser, HTTP_RESPONSE, &parent_connect_settings);
    up->parser.data = up;
    c->rq.parent_connect = true;
    c->rq.parent_head_bytes = 0;
    size_t n;
    char *d = ag_buf_steal(&b, &n);
    conn_write_up(c, d, n);
    uv_timer_start(&up->timer, on_up_timer, c->cfg->upstream_idle_timeout_ms, 0);
    conn_update_reading(c);
}

/* The parent's answer to our CONNECT: 2xx opens the tunnel, anything else
 * is a 502 for the client. */
static void parent_connect_read(struct conn *c, ssize_t n, const char *data)
{
    struct ag_upstream *up = c->up;
    enum llhttp_errno e = llhttp_execute(&up->parser, data, (size_t)n);
    if (e == HPE_OK) {
        c->rq.parent_head_bytes += (size_t)n;
        if (c->rq.parent_head_bytes > AG_PARENT_CONNECT_HEAD_MAX)
            parent_refused(c, 0, "answer to CONNECT too long");
        return;
    }
    if (e != HPE_PAUSED) {
        parent_refused(c, 0, "invalid answer to CONNECT");
        return;
    }
    int st = up->parser.status_code;
    if (st < 200 || st >= 300) {
        parent_refused(c, st, "refused CONNECT");
        return;
    }
    c->rq.parent_connect = false;
    const char *pos = llhttp_get_error_pos(&up->parser);
    size_t used = (pos && pos >= data && pos <= data + n) ? (size_t)(pos - data) : (size_t)n;
    tunnel_open(c, data + used, (size_t)n - used);
}

/* The hop is reached (connected; for a tls parent, its certificate
 * verified): the CONNECT to the parent, the tunnel, or the request. */
static void hop_connected(struct conn *c)
{
    c->srv->stats.upstream_opened++;
    if (c->rq.parent) {
        const struct ag_parent *p = c->rq.parent;
        if (ag_parent_mark_up(c->rq.parent_health))
            ag_info("event=parent_up parent=%s address=%s:%u", p->name, p->host, (unsigned)p->port);
    }
    if (c->rq.is_connect) {
        if (c->rq.parent) {
            c->srv->stats.parent_routed++; /* a tunnel; requests: start_exchange_io */
            parent_connect_start(c);
        } else {
            tunnel_open(c, NULL, 0);
        }
        return;
    }
    start_exchange_io(c);
}

void exchange_up_tls_ready(struct conn *c)
{
    struct ag_upstream *up = c->up;
    uv_timer_stop(&up->timer);
    ag_debug("conn=%llu event=parent_tls_handshake parent=%s version=%s cipher=%s",
             (unsigned long long)c->id, c->rq.parent ? c->rq.parent->name : "-",
             SSL_get_version(up->tls->ssl), SSL_get_cipher_name(up->tls->ssl));
    hop_connected(c);
}

void exchange_up_tls_failed(struct conn *c, const char *why)
{
    char w[AG_PARENT_WHY_MAX];
    c->srv->stats.parent_tls_failed++;
    ag_warn("conn=%llu event=parent_tls_failed parent=%s address=%s:%u reason=\"%s\"",
            (unsigned long long)c->id, c->rq.parent->name, c->rq.parent->host,
            (unsigned)c->rq.parent->port, why);
    snprintf(w, sizeof w, "TLS: %s", why);
    parent_down(c, w);
}

static void on_up_tls_timer(uv_timer_t *t)
{
    struct ag_upstream *up = t->data;
    struct conn *c = up->owner;
    if (!c)
        return;
    exchange_up_tls_failed(c, "handshake timeout");
}

static void on_upstream_ready(struct ag_upstream *up, int status)
{
    struct conn *c = up->owner;
    if (status == AG_EUNSUPP && c->rq.reroute) {
        /* dst= rules were decided on the resolved address, and the rule
         * that admits it routes through parents. */
        ag_upstream_close(c->up);
        c->up = NULL;
        c->rq.route = c->rq.reroute;
        c->rq.reroute = NULL;
        c->rq.rules_by_addr = false;
        c->rq.route_next = 0;
        if (!next_parent(c)) {
            no_parent(c);
            return;
        }
        start_hop(c);
        return;
    }
    if (status != 0 && c->rq.parent) {
        parent_failed(c, status);
        return;
    }
    if (status == AG_EUNSUPP && c->rq.denied_rule) {
        ag_upstream_close(c->up);
        c->up = NULL;
        if (c->rq.denied_groups)
            groups_unknown(c, c->rq.denied_rule);
        else
            deny(c, c->rq.denied_rule);
        return;
    }
    if (status == AG_EUNSUPP && up->this_network) {
        refuse_this_network(c);
        return;
    }
    if (status != 0) {
        struct ag_stats *st = &c->srv->stats;
        if (status == AG_ELIMIT) {
            if (up->ai)
                st->timeout_connect++;
            else
                st->timeout_dns++;
            upstream_failed(c, 504, up->ai ? "connect timeout" : "name resolution timeout");
        } else {
            upstream_failed(c, 502,
                            status == AG_ENOTFOUND ? "name not resolved" : "connection refused");
        }
        return;
    }
    const struct ag_parent *p = c->rq.parent;
    if (p && p->tls && !up->tls) {
        /* An HTTPS proxy: the parent counts as reached once its
         * certificate verified, within tls_handshake_timeout. */
        char why[300];
        if (conn_up_tls_start(c, p->host, p->tls_ca ? p->tls_ca : c->cfg->parent_tls_ca, why,
                              sizeof why) != 0) {
            exchange_up_tls_failed(c, why);
            return;
        }
        if (conn_ending(c) || c->up != up)
            return;
        uv_timer_start(&up->timer, on_up_tls_timer, c->cfg->tls_handshake_timeout_ms, 0);
        conn_update_reading(c);
        return;
    }
    hop_connected(c);
}

static void open_upstream(struct conn *c)
{
    if (c->state != CONN_UPSTREAM)
        conn_enter(c, CONN_UPSTREAM);
    const struct ag_parent *p = c->rq.parent;
    struct ag_target hop;
    const struct ag_target *t = &c->rq.target;
    if (p) {
        /* The parent's address: no dst= rule applies to it (the gateway
         * never learns the origin's), this_network still does. */
        memset(&hop, 0, sizeof hop);
        snprintf(hop.host, sizeof hop.host, "%s", p->host);
        hop.port = p->port;
        t = &hop;
    }
    c->up = ag_upstream_open(c->srv->loop, c, t, c->cfg->dns_timeout_ms, c->cfg->connect_timeout_ms,
                             on_upstream_ready, p ? NULL : addr_allowed);
    if (!c->up) {
        upstream_failed(c, 502, "cannot open upstream");
        return;
    }
    c->up->via_parent = p != NULL;
    if (p)
        snprintf(c->up->parent_name, sizeof c->up->parent_name, "%s", p->name);
}

/* --- zero-copy bodies ------------------------------------------------------- */

static void splice_progress(struct ag_splice *s)
{
    upstream_heard(s->owner);
}

static void splice_done(struct ag_splice *s, int status)
{
    struct conn *c = s->owner;
    c->splicing = false;
    ag_debug("conn=%llu event=splice_done status=%d moved=%llu", (unsigned long long)c->id, status,
             (unsigned long long)s->moved);
    uint64_t n = ag_splice_take(s);
    conn_count_out(c, n);
    c->srv->stats.splice_bytes += n;
    /* (The pump let go of both ends: the streams own the sockets again.) */
    if (status != 0) {
        conn_close(c, "splice_failed");
        return;
    }
    if (c->rq.splice_chunk) {
        /* The chunk's data passed: llhttp (in its chunk-data state, which
         * counts down content_length) goes on at the CRLF that must end it,
         * so every size line and the body's end are still its to check. */
        c->rq.splice_chunk = false;
        if (c->up)
            c->up->parser.content_length = 0;
        if (ag_buf_append(&c->stage_client, "\r\n", 2) != 0) {
            conn_close(c, "nomem");
            return;
        }
        conn_flush(c);
        conn_update_reading(c);
        return;
    }
    c->rq.resp_done = true;
    exchange_maybe_done(c);
}

/* The ends (a dup and a poll handle per socket) of a body pump: kept, the
 * upstream's with the upstream (pooled too), the client's (and the pipes)
 * with the connection, so a body costs no set-up or tear-down system call
 * once they exist. false when one cannot be had now (an end still closing:
 * the idle release ran in this loop turn): that piece goes in user space. */
static bool splice_ends(struct conn *c, struct ag_splice_end **ue, struct ag_splice_end **ce)
{
    bool up_reused = false;
    *ue = c->up ? ag_upstream_splice_end(c->up, &up_reused) : NULL;
    *ce = *ue ? conn_splice_end(c) : NULL;
    if (*ce && up_reused)
        c->srv->stats.splice_ends_reused++;
    return *ce != NULL;
}

void exchange_start_splice(struct conn *c)
{
    struct ag_upstream *up = c->up;
    c->rq.splice_pending = false;
    /* (No ends: the body in user space, raw when it is the rest of a chunk,
     * see rs_body.) */
    struct ag_splice_end *ue, *ce;
    if (!splice_ends(c, &ue, &ce)) {
        conn_update_reading(c);
        return;
    }
    uint64_t len = up->parser.content_length; /* llhttp counts down what is left */
    ag_debug("conn=%llu event=splice_start bytes=%llu", (unsigned long long)c->id,
             (unsigned long long)len);
    bool pipe_kept = c->sp->pump.pipe_r >= 0;
    bool chunk = c->rq.splice_chunk; /* (splice_done may clear it inside the run) */
    /* Set before the run: the pump may finish (and splice_done run) inside
     * it when the whole body is already readable. */
    c->splicing = true;
    if (ag_splice_run(&c->sp->pump, ue, ce, len, c, splice_done, splice_progress) != 0) {
        c->splicing = false;
        conn_update_reading(c); /* relay in user space */
        return;
    }
    /* Still running (the rest of the body is not in the socket yet): from
     * here the pump alone reads the upstream socket. When it finished inside
     * the run, the connection went on (to the pool, reads still armed). */
    if (c->splicing && up->reading) {
        uv_read_stop((uv_stream_t *)up->tcp);
        up->reading = false;
    }
    if (pipe_kept)
        c->srv->stats.splice_pipes_reused++;
    if (chunk)
        c->srv->stats.spliced_chunks++;
    else
        c->srv->stats.spliced_bodies++;
}

/* --- zero-copy request chunks ------------------------------------------------ */

/* The long chunks of a chunked request body, client to upstream, as the
 * response's go the other way: llhttp parses every size line and the end of
 * the body (the smuggling checks stay its own), a size line of our own goes
 * before the rest of the chunk's data, which is spliced, and the parser is
 * then told those bytes passed. A bad size line after it closes the
 * connection before any of it is sent (the parser refuses it); a client that
 * stops inside a spliced chunk closes the connection, its upstream with it
 * (never pooled: its request was cut). */
void exchange_check_req_splice(struct conn *c)
{
    struct ag_upstream *up = c->up;
    if (c->state != CONN_FORWARD || !c->rq.req_chunked || c->rq.drain || c->rq.msg_done ||
        c->rq.req_splice_chunk || c->tls || !up || up->tls || !up->connected || up->closing ||
        c->rq.parent_connect || c->parser.content_length < AG_SPLICE_CHUNK_MIN)
        return;
    if (chunk_size_line(&c->stage_up, c->parser.content_length) != 0) {
        conn_close(c, "nomem");
        return;
    }
    conn_flush(c);
    c->rq.req_splice_chunk = true;
    c->rq.req_splice_pending = true; /* (conn_update_reading stops the client's reads) */
}

static void req_splice_progress(struct ag_splice *s)
{
    struct conn *c = s->owner;
    uint64_t n = ag_splice_take(s);
    c->bytes_in += n;
    c->srv->stats.bytes_in += n;
    c->srv->stats.splice_bytes += n;
    upstream_heard(c);
}

static void req_splice_done(struct ag_splice *s, int status)
{
    struct conn *c = s->owner;
    c->req_splicing = false;
    req_splice_progress(s);
    ag_debug("conn=%llu event=req_splice_done status=%d moved=%llu", (unsigned long long)c->id,
             status, (unsigned long long)s->moved);
    if (status != 0) {
        conn_close(c, status == UV_EOF ? "client_eof_in_chunk" : "req_splice_failed");
        return;
    }
    /* The chunk's data passed: llhttp goes on at the CRLF that must end it. */
    c->rq.req_splice_chunk = false;
    c->parser.content_length = 0;
    if (ag_buf_append(&c->stage_up, "\r\n", 2) != 0) {
        conn_close(c, "nomem");
        return;
    }
    conn_flush(c);
    conn_update_reading(c);
}

void exchange_start_req_splice(struct conn *c)
{
    c->rq.req_splice_pending = false;
    struct ag_splice_end *ue, *ce;
    uint64_t len = c->parser.content_length; /* llhttp counts down what is left */
    c->req_splicing = splice_ends(c, &ue, &ce);
    if (!c->req_splicing ||
        ag_splice_run(&c->sp->req, ce, ue, len, c, req_splice_done, req_splice_progress) != 0) {
        /* (An end busy with the response's pump, or none to be had: the
         * rest of the chunk goes raw, in user space, see rq_body.) */
        c->req_splicing = false;
        conn_update_reading(c);
        return;
    }
    c->srv->stats.spliced_request_chunks++;
    ag_debug("conn=%llu event=req_splice_start bytes=%llu", (unsigned long long)c->id,
             (unsigned long long)len);
}

/* --- zero-copy tunnels ------------------------------------------------------ */

/* What a tunnel pump delivered since the last look goes into the byte counts
 * at once: the tunnel's log line is written when it closes, maybe mid-pump. */
static void tunnel_pump_count(struct conn *c, struct ag_splice *s)
{
    uint64_t n = ag_splice_take(s);
    c->srv->stats.splice_bytes += n;
    if (s == &c->tun_sp[0]) {
        c->bytes_in += n;
        c->srv->stats.bytes_in += n;
    } else {
        conn_count_out(c, n);
    }
}

static void tunnel_pump_progress(struct ag_splice *s)
{
    struct conn *c = s->owner;
    tunnel_pump_count(c, s);
    conn_set_timer(c, c->cfg->tunnel_idle_timeout_ms);
}

/* One direction ended: its EOF is passed on as a half-close (the pump's own
 * dup of the destination: the libuv stream has nothing queued), and the
 * tunnel closes once both ended, as the user-space relay does. */
static void tunnel_pump_done(struct ag_splice *s, int status)
{
    struct conn *c = s->owner;
    bool from_client = s == &c->tun_sp[0];
    tunnel_pump_count(c, s);
    ag_debug("conn=%llu event=tunnel_splice_done from=%s status=%d moved=%llu",
             (unsigned long long)c->id, from_client ? "client" : "upstream", status,
             (unsigned long long)s->moved);
    if (status != 0) {
        conn_close(c, from_client ? "client_error" : "upstream_error");
        return;
    }
    if (conn_tunnel_side_ended(c, from_client))
        return;
    if (shutdown(s->own[1].fd, SHUT_WR) != 0 && errno != ENOTCONN)
        conn_close(c, "tunnel_shutdown");
}

bool exchange_start_tunnel_splice(struct conn *c)
{
    struct ag_upstream *up = c->up;
    c->tun_splice_want = false;
    uv_os_fd_t cfd, ufd;
    if (c->tun_client_eof || c->tun_up_eof || uv_fileno((uv_handle_t *)&c->tcp, &cfd) != 0 ||
        uv_fileno((uv_handle_t *)up->tcp, &ufd) != 0)
        return false;
    if (!c->tun_sp && !(c->tun_sp = calloc(2, sizeof *c->tun_sp)))
        return false;
    /* The streams stop reading first: from here the pumps alone touch the
     * sockets (nothing is queued: the caller waited for both queues). */
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    if (up->reading) {
        uv_read_stop((uv_stream_t *)up->tcp);
        up->reading = false;
    }
    /* Open-ended pumps never finish inside their start. */
    int rc0 = ag_splice_start(&c->tun_sp[0], c->srv->loop, cfd, ufd, AG_SPLICE_OPEN, c,
                              tunnel_pump_done, tunnel_pump_progress);
    if (rc0 < 0)
        return false;
    c->handles += 2;
    int rc1 = rc0 == 0 ? ag_splice_start(&c->tun_sp[1], c->srv->loop, ufd, cfd, AG_SPLICE_OPEN, c,
                                         tunnel_pump_done, tunnel_pump_progress)
                       : -1;
    if (rc1 >= 0)
        c->handles += 2;
    if (rc0 != 0 || rc1 != 0) {
        /* Half made: release what was made, relay in user space. */
        ag_splice_close(&c->tun_sp[0], conn_handle_closed);
        if (rc1 >= 0)
            ag_splice_close(&c->tun_sp[1], conn_handle_closed);
        return false;
    }
    c->tun_spliced = true;
    c->srv->stats.spliced_tunnels++;
    ag_debug("conn=%llu event=tunnel_splice_start", (unsigned long long)c->id);
    return true;
}

/* The upstream whose bytes or end belong to the exchange in progress, or
 * NULL: a pooled (idle) connection that talks or closes, or one heard
 * outside FORWARD, is out of step and dropped. */
static struct ag_upstream *forwarding_upstream(struct conn *c)
{
    struct ag_upstream *up = c->up;
    if (up && (up->idle || c->state != CONN_FORWARD)) {
        ag_upstream_close(up);
        c->up = NULL;
        up = NULL;
    }
    return up;
}

void exchange_on_upstream_read(struct conn *c, ssize_t n, const char *data)
{
    if (c->rq.parent_connect && c->up && !c->up->idle && c->state == CONN_UPSTREAM) {
        parent_connect_read(c, n, data);
        return;
    }
    struct ag_upstream *up = forwarding_upstream(c);
    if (!up)
        return;
    upstream_heard(c);
    enum llhttp_errno e = llhttp_execute(&up->parser, data, (size_t)n);
    if (e == HPE_PAUSED) {
        const char *pos = llhttp_get_error_pos(&up->parser);
        if (pos && pos < data + n)
            c->rq.up_dirty = true;
    } else if (e != HPE_OK) {
        const char *pos = llhttp_get_error_pos(&up->parser);
        size_t off = pos && pos >= data && pos <= data + n ? (size_t)(pos - data) : 0;
        size_t from = off > 24 ? off - 24 : 0, len = (size_t)n - from < 48 ? (size_t)n - from : 48;
        char bytes[48 * 4 + 1], detail[sizeof bytes + 160];
        snprintf(detail, sizeof detail, "%s at %zu of %zd: %s", llhttp_errno_name(e), off, n,
                 ag_escape(bytes, sizeof bytes, data + from, len));
        conn_flush(c);
        if (c->rq.up_407 && c->rq.parent) {
            parent_refused(c, 407, "demanded proxy authentication");
            return;
        }
        upstream_failed_detail(c, 502,
                               c->rq.up_407               ? "upstream demanded proxy authentication"
                               : e == HPE_CB_CHUNK_HEADER ? exchange_chunk_too_big
                                                          : "invalid upstream response",
                               detail);
        return;
    }
    conn_flush(c);
    if (c->rq.resp_done) {
        exchange_maybe_done(c);
        return;
    }
    /* The rest of a long body goes socket to socket through a pipe. */
    if (c->rq.resp_started && !c->rq.resp_chunked_out && !c->tls && !up->tls &&
        (up->parser.flags & F_CONTENT_LENGTH) && up->parser.content_length >= AG_SPLICE_MIN) {
        /* The stream's reads stay armed for now: conn_update_reading below
         * either starts the pump (which stops them if the body is not all
         * there: exchange_start_splice) or stops them until the client's
         * writes drain. A body already whole in the socket then costs no
         * epoll_ctl to stop and restart the reads around it. */
        c->rq.splice_pending = true;
    } else if (c->rq.resp_started && c->rq.resp_chunked_out && c->rq.resp_in_chunk &&
               !c->rq.splice_chunk && !c->tls && !up->tls &&
               up->parser.content_length >= AG_SPLICE_CHUNK_MIN) {
        /* The rest of a long chunk: its own size line to the client (we
         * re-frame every piece of body we send), then the data spliced. */
        if (chunk_size_line(&c->stage_client, up->parser.content_length) != 0) {
            conn_close(c, "nomem");
            return;
        }
        conn_flush(c);
        c->rq.splice_chunk = true; /* (the reads: as above) */
        c->rq.splice_pending = true;
    }
    conn_update_reading(c);
}

/* RFC 9110 §9.2.2: a request that may be sent twice with the effect of
 * once (nginx and Squid retry only these on a reused connection). */
static bool idempotent(int method)
{
    return method == HTTP_GET || method == HTTP_HEAD || method == HTTP_OPTIONS ||
           method == HTTP_TRACE || method == HTTP_PUT || method == HTTP_DELETE;
}

void exchange_on_upstream_eof(struct conn *c, int err)
{
    if (c->rq.parent_connect && c->state == CONN_UPSTREAM) {
        parent_refused(c, 0, "closed the connection before answering CONNECT");
        return;
    }
    struct ag_upstream *up = forwarding_upstream(c);
    if (!up)
        return;
    if (err == UV_EOF && c->rq.resp_started) {
        llhttp_finish(&up->parser); /* completes a close-delimited body */
        conn_flush(c);
        if (c->rq.resp_done) {
            c->rq.up_dirty = true;
            exchange_maybe_done(c);
            return;
        }
    }
    /* A pooled connection the origin closed just as we reused it: one retry
     * on a fresh connection when nothing of the exchange is lost. */
    if (!c->rq.resp_started && up->reused && !c->rq.retried && !c->rq.req_has_body &&
        idempotent(c->rq.method)) {
        c->rq.retried = true;
        c->srv->stats.upstream_pool_stale_retries++;
        ag_debug("conn=%llu req=%llu event=upstream_stale_retry host=%s", (unsigned long long)c->id,
                 (unsigned long long)c->rq.id, up->host);
        ag_upstream_close(up);
        c->up = NULL;
        open_upstream(c);
        return;
    }
    upstream_failed(c, 502, "upstream closed the connection");
}

/* --- the request head ------------------------------------------------------ */

/* A request refused as malformed after its head was parsed: 400, one log
 * line, and the connection ends (what else it sent cannot be trusted). */
static void bad_request(struct conn *c, const char *why)
{
    c->srv->stats.bad_requests++;
    ag_info("conn=%llu event=bad_request client=%s status=400 error=\"%s\"",
            (unsigned long long)c->id, c->peer, why);
    c->rq.close_after = true;
    exchange_reply(c, 400, NULL, why);
}

/* "GET /healthz" in origin form, on any listener: a balancer's health
 * check, answered before authentication and rules (it proves only that
 * this process serves). 503 from SIGTERM on, so the balancer stops sending
 * new clients while the drain runs. Any other origin-form request stays a
 * 400 (BAD-INPUTS row 13). */
static bool healthz(struct conn *c, const char *url, size_t ul)
{
    static const char path[] = "/healthz";
    if (c->rq.method != HTTP_GET || ul != sizeof path - 1 || memcmp(url, path, ul) != 0)
        return false;
    if (ag_server_leaving(c->srv)) {
        c->srv->stats.healthz_draining++;
        c->rq.close_after = true;
        exchange_reply(c, 503, NULL, "draining");
    } else {
        c->srv->stats.healthz_ok++;
        exchange_reply(c, 200, NULL, "serving");
    }
    return true;
}

/* The value of the one field name in h, NUL-terminated in out, or false
 * (absent, repeated, or longer than out). */
static bool field_copy(const struct ag_head *h, const char *name, char *out, size_t cap)
{
    const char *v;
    size_t vl;
    if (ag_head_find(h, name, &v, &vl) != 1 || vl >= cap)
        return false;
    memcpy(out, v, vl);
    out[vl] = '\0';
    return true;
}

/* The client holds the current PAC file (RFC 9110 §13.1): If-None-Match
 * decides when present (weak comparison, "*" matches), else
 * If-Modified-Since against the file's mtime. */
static bool pac_not_modified(const struct ag_head *h, const struct ag_config *cfg)
{
    char v[1024];
    if (ag_head_find(h, "If-None-Match", NULL, NULL) > 0) {
        if (!field_copy(h, "If-None-Match", v, sizeof v))
            return false;
        size_t el = strlen(cfg->pac_etag);
        for (char *save = NULL, *t = strtok_r(v, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            while (*t == ' ' || *t == '\t')
                t++;
            size_t tl = strlen(t);
            while (tl && (t[tl - 1] == ' ' || t[tl - 1] == '\t'))
                t[--tl] = '\0';
            if (strncmp(t, "W/", 2) == 0) {
                t += 2;
                tl -= 2;
            }
            if (strcmp(t, "*") == 0 || (tl == el && memcmp(t, cfg->pac_etag, el) == 0))
                return true;
        }
        return false;
    }
    if (!field_copy(h, "If-Modified-Since", v, sizeof v))
        return false;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end)
        return false; /* not an IMF-fixdate: ignored (RFC 9110 §13.1.3) */
    return (int64_t)timegm(&tm) >= cfg->pac_mtime;
}

/* "GET /proxy.pac" or "GET /wpad.dat" (or HEAD) in origin form, on any
 * listener, with pac_file set: the PAC file, before authentication (a
 * browser fetches it before it knows it has a proxy, let alone
 * credentials for it). A query string is ignored. */
static bool pac(struct conn *c, const char *url, size_t ul)
{
    const struct ag_config *cfg = c->cfg;
    if (!cfg->pac_body || (c->rq.method != HTTP_GET && c->rq.method != HTTP_HEAD))
        return false;
    const char *q = memchr(url, '?', ul);
    size_t pl = q ? (size_t)(q - url) : ul;
    if (!((pl == 10 && memcmp(url, "/proxy.pac", 10) == 0) ||
          (pl == 9 && memcmp(url, "/wpad.dat", 9) == 0)))
        return false;
    static const char ctype[] = "application/x-ns-proxy-autoconfig";
    bool fresh = pac_not_modified(&c->head, cfg);
    char extra[160];
    snprintf(extra, sizeof extra, "ETag: %s\r\nLast-Modified: %s\r\nCache-Control: no-cache\r\n",
             cfg->pac_etag, cfg->pac_last_modified);
    snprintf(c->rq.ctype, sizeof c->rq.ctype, "%s", ctype);
    struct reply_body b = {ctype, cfg->pac_body, cfg->pac_len, !fresh && !c->rq.is_head};
    if (fresh)
        c->srv->stats.pac_not_modified++;
    else
        c->srv->stats.pac_ok++;
    reply_with(c, fresh ? 304 : 200, extra, NULL, &b);
    return true;
}

void exchange_on_head(struct conn *c)
{
    conn_refresh_config(c);
    ag_auth_request_begin(c);
    uv_timer_stop(&c->timer);
    struct ag_head *h = &c->head;
    llhttp_t *p = &c->parser;
    c->srv->stats.requests++;
    c->rq.t_start_ms = uv_now(c->srv->loop);
    c->rq.method = p->method;
    c->rq.is_connect = p->method == HTTP_CONNECT;
    c->rq.is_head = p->method == HTTP_HEAD;
    c->rq.http10 = p->http_major == 1 && p->http_minor == 0;
    c->rq.keepalive = llhttp_should_keep_alive(p) && !c->srv->stopping;
    c->rq.req_chunked = (p->flags & F_CHUNKED) != 0;
    c->rq.req_content_length = (p->flags & F_CONTENT_LENGTH) ? p->content_length : 0;
    c->rq.req_has_body = c->rq.req_chunked || c->rq.req_content_length > 0;

    size_t ul;
    const char *url = ag_head_url(h, &ul);
    /* The access log names the URL as sent until it parses, then the
     * canonical one: a proxied (absolute-form) request escapes it once,
     * below; origin form (health check, PAC, refusals) here. */
    if (ul && url[0] == '/')
        c->rq.log_url = ag_escape_buf(&c->url_text, url, ul);

    /* Framing that could smuggle a request (head.h): refused before a
     * byte moves. */
    const char *framing_why;
    int framing = ag_head_check_framing(h, c->rq.http10, &framing_why);
    if (framing != 0) {
        c->rq.log_url = ag_escape_buf(&c->url_text, url, ul);
        c->rq.close_after = true;
        c->srv->stats.bad_requests++;
        exchange_reply(c, framing, NULL, framing_why);
        return;
    }
    if (healthz(c, url, ul) || pac(c, url, ul))
        return;
    int rc = c->rq.is_connect ? ag_target_parse_authority(url, ul, &c->rq.target)
                              : ag_target_parse_absolute(url, ul, &c->rq.target);
    if (rc != 0) {
        c->rq.log_url = ag_escape_buf(&c->url_text, url, ul);
        c->srv->stats.bad_requests++;
        c->rq.close_after = true;
        exchange_reply(c, 400, NULL,
                       c->rq.is_connect        ? "CONNECT needs host:port"
                       : (ul && url[0] == '/') ? "origin-form request to a proxy"
                                               : "invalid request target");
        return;
    }
    /* "http://host?x" has an empty path: forwarded as is, the request line
     * would read "GET ?x HTTP/1.1". Browsers and curl send "/?x"; anything
     * else gets 400 rather than a request line we made up. */
    if (!c->rq.is_connect && c->rq.target.path_len && c->rq.target.path[0] != '/') {
        c->rq.log_url = ag_escape_buf(&c->url_text, url, ul);
        bad_request(c, "request target without a path");
        return;
    }
    /* The access log names the canonical host, as rules, logs and connect do. */
    char canon[AG_URL_MAX + AG_HOST_MAX + 16];
    if (c->rq.is_connect)
        ag_target_authority(&c->rq.target, canon, sizeof canon);
    else
        ag_target_url(&c->rq.target, canon, sizeof canon);
    c->rq.log_url = ag_escape_buf(&c->url_text, canon, strlen(canon));
    if (via_has_us(h, c->cfg->via_pseudonym)) {
        c->srv->stats.loops_detected++;
        ag_info("conn=%llu event=loop_detected client=%s", (unsigned long long)c->id, c->peer);
        exchange_reply(c, 508, NULL, "forwarding loop detected");
        return;
    }
    /* Max-Forwards means something on TRACE and OPTIONS only (RFC 9110
     * §7.6.2): one field, 1*DIGIT, read from its slice of the head store
     * (the value is not NUL-terminated: the next field's bytes follow). */
    if (c->rq.method == HTTP_TRACE || c->rq.method == HTTP_OPTIONS) {
        const char *mf;
        size_t mfl;
        int nmf = ag_head_find(h, "Max-Forwards", &mf, &mfl);
        if (nmf > 1 || (nmf == 1 && ag_parse_dec(mf, mfl, UINT64_MAX, &c->rq.max_forwards) != 0)) {
            bad_request(c, "invalid Max-Forwards");
            return;
        }
        c->rq.has_max_forwards = nmf == 1;
        if (c->rq.method == HTTP_TRACE && c->rq.has_max_forwards && c->rq.max_forwards == 0) {
            exchange_reply(c, 405, "Allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, CONNECT\r\n",
                           "TRACE stops here");
            return;
        }
    }
    /* Destinations open to everyone (auth=none rules) never see a 407. */
    if (c->srv->rules) {
        const char *rule;
        bool recheck = false;
        const struct ag_route *route = NULL;
        enum ag_rule_verdict v = rules_eval(c, NULL, true, &rule, &recheck, &route);
        c->rq.rules_by_addr = recheck;
        if (v == AG_RULE_DENY) {
            deny(c, rule);
            return;
        }
        if (v == AG_RULE_ALLOW) {
            c->srv->stats.rules_preauth_allowed++;
            c->rq.preauth = true;
            c->rq.route = route;
            exchange_proceed(c);
            return;
        }
    }
    /* Authentication decides before any byte moves upstream. */
    if (ag_auth_request(c) != AG_AUTH_PROCEED)
        return;
    exchange_proceed(c);
}

/* The request head for its hop, then a pooled connection to the same hop
 * or a new one. */
static void connect_hop(struct conn *c)
{
    if (route_head(c) != 0)
        return;
    struct ag_upstream *up = c->up;
    const struct ag_parent *p = c->rq.parent;
    const char *host = p ? p->host : c->rq.target.host;
    uint16_t port = p ? p->port : c->rq.target.port;
    /* A Negotiate token is single-use (the parent's replay cache): a
     * request that a pooled connection lost could not be retried with it,
     * so those parents get a fresh connection per request. */
    if (up && up->idle && !c->rq.is_connect && !c->rq.rules_by_addr &&
        up->via_parent == (p != NULL) && (up->tls != NULL) == (p && p->tls) && up->port == port &&
        strcmp(up->host, host) == 0 && strcmp(up->parent_name, p ? p->name : "") == 0 &&
        !(p && p->auth == AG_PARENT_AUTH_NEGOTIATE)) {
        c->srv->stats.upstream_reused++;
        up->idle = false;
        up->reused = true;
        start_exchange_io(c);
        return;
    }
    ag_upstream_close(up);
    c->up = NULL;
    /* The loop's shared pool: the same rules as above (a dst= rule decides
     * on an address we connect to ourselves). */
    if (c->cfg->upstream_pool > 0 && !c->rq.is_connect && !c->rq.rules_by_addr &&
        !(p && p->auth == AG_PARENT_AUTH_NEGOTIATE)) {
        struct ag_upstream *pu = uppool_take(c->srv, host, port, p ? p->name : "", p && p->tls);
        if (pu) {
            c->srv->stats.upstream_pool_hits++;
            c->srv->stats.upstream_reused++;
            pu->owner = c;
            pu->idle = false;
            pu->reused = true;
            c->up = pu;
            start_exchange_io(c);
            return;
        }
        c->srv->stats.upstream_pool_misses++;
    }
    open_upstream(c);
}

/* A Kerberos token for a parent (auth=negotiate): made on the Kerberos
 * pool, since it may talk to the KDC (a TGT, a service ticket). */
struct parent_token_job {
    struct ag_job base;
    char *keytab; /* client keytab (owned), NULL = KRB5_CLIENT_KTNAME / default */
    char *target; /* the parent's principal (owned) */
    char *field;  /* run: the Proxy-Authorization line (owned, wiped) */
    int rc;
    char err[600];
};

static void token_run(struct ag_job *j)
{
    struct parent_token_job *t = (struct parent_token_job *)j;
    t->rc = ag_gss_initiate_blocking(t->keytab, t->target, &t->field, t->err, sizeof t->err);
}

static void token_done(struct ag_job *j, void *owner)
{
    struct parent_token_job *t = (struct parent_token_job *)j;
    struct conn *c = owner;
    c->job = NULL;
    uv_timer_stop(&c->timer);
    if (t->rc != 0) {
        c->srv->stats.parent_auth_failed++;
        ag_err("conn=%llu event=parent_auth_failed parent=%s error=\"%s\"",
               (unsigned long long)c->id, c->rq.parent->name, t->err);
        upstream_failed(c, 502, "cannot authenticate to the parent proxy");
        return;
    }
    free_parent_auth(c);
    c->rq.parent_auth = t->field;
    t->field = NULL;
    connect_hop(c);
}

static void token_release(struct ag_job *j)
{
    struct parent_token_job *t = (struct parent_token_job *)j;
    free(t->keytab);
    free(t->target);
    if (t->field) {
        ag_wipe(t->field, strlen(t->field));
        free(t->field);
    }
}

static const struct ag_job_ops token_ops = {"parent_token", token_run, token_done, token_release};

/* On to the chosen hop: direct, or the parent in c->rq.parent (after its
 * Kerberos token, when it wants one). */
static void start_hop(struct conn *c)
{
    const struct ag_parent *p = c->rq.parent;
    if (!p || p->auth != AG_PARENT_AUTH_NEGOTIATE) {
        connect_hop(c);
        return;
    }
    struct parent_token_job *t = calloc(1, sizeof *t);
    const char *kt = c->cfg->keytab;
    if (t) {
        t->base.ops = &token_ops;
        t->keytab = kt ? strdup(kt) : NULL;
        t->target = strdup(p->principal);
    }
    if (!t || (kt && !t->keytab) || !t->target) {
        if (t) {
            token_release(&t->base);
            free(t);
        }
        upstream_failed(c, 502, "out of memory");
        return;
    }
    if (c->state != CONN_UPSTREAM)
        conn_enter(c, CONN_UPSTREAM);
    if (ag_job_submit(&c->srv->workers, AG_POOL_KERBEROS, &t->base, c) != 0) {
        token_release(&t->base);
        free(t);
        c->srv->stats.parent_auth_failed++;
        upstream_failed(c, 503, "too many Kerberos jobs in flight");
        return;
    }
    c->job = &t->base;
    /* A KDC that does not answer: the connection ends at this deadline
     * (conn_close detaches the job). */
    conn_set_timer(c, c->cfg->handshake_timeout_ms);
}

void exchange_proceed(struct conn *c)
{
    if (c->srv->rules && !c->rq.preauth) {
        const char *rule;
        const struct ag_route *route = NULL;
        enum ag_rule_verdict v = rules_eval(c, NULL, false, &rule, NULL, &route);
        if (v == AG_RULE_DENY) {
            deny(c, rule);
            return;
        }
        if (v == AG_RULE_GROUPS_UNKNOWN) {
            groups_unknown(c, rule);
            return;
        }
        c->rq.rules_by_addr = c->rq.rules_by_addr || v == AG_RULE_NEED_ADDR;
        c->rq.route = v == AG_RULE_ALLOW ? route : NULL;
    }
    if (c->rq.is_connect && !ag_config_port_allowed(c->cfg, c->rq.target.port)) {
        c->srv->stats.ports_denied++;
        exchange_reply(c, 403, NULL, "CONNECT to this port is not allowed");
        return;
    }
    /* A request whose rules wait for the address is resolved here first
     * (dst= rules); its route, if any, is taken then (addr_allowed). */
    if (c->rq.route && !c->rq.rules_by_addr) {
        c->rq.route_next = 0;
        if (!next_parent(c)) {
            no_parent(c);
            return;
        }
    }
    start_hop(c);
}
