/* metrics_http.c - metrics_listen: GET /metrics for Prometheus, on a small
 * listener of its own (see commands.h).
 *
 * Glossary: scraper = the Prometheus server (or anything) that connects;
 * allow-list = metrics_allow, matched against the TCP peer address.
 *
 * One request per connection, answered with "Connection: close": the head
 * is parsed by llhttp (strict mode, as for proxy clients) up to its end,
 * bounded by AG_METRICS_REQ_MAX bytes and head_timeout (as a proxy
 * client's head), then AG_METRICS_TIMEOUT_MS for the answer to be read. Only then is anything
 * decided, so a refused scraper reads a whole answer, not a reset: a peer outside metrics_allow
 * gets 403 (one log line), another path 404, another method 405. The body is the Prometheus text of
 * "authgatectl metrics" (0.0.4), or OpenMetrics 1.0 when the Accept field asks for
 * application/openmetrics-text: counts and gauges only, never a user name, an address or a token.
 *
 * Lifetime: struct ag_metrics_http owns the listening handle and a list of
 * connections, and counts references (the listener plus one per
 * connection); the last close callback frees it. A connection owns a TCP
 * handle and a timer and is freed by the last of their close callbacks.
 * Loop thread only.
 */
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "authgate/err.h"
#include "authgate/limits.h"
#include "commands.h"
#include "util/addr.h"
#include "util/list.h"
#include "util/log.h"
#include "util/util.h"

struct mh_conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* head_timeout for the request, then AG_METRICS_TIMEOUT_MS */
    uv_write_t wreq;
    uv_shutdown_t sreq;
    llhttp_t parser;
    int handles; /* open handles; freed at 0 */
    struct ag_metrics_http *mh;
    struct ag_list_node node; /* in mh->conns */
    uint64_t id;
    struct sockaddr_storage peer;
    char rbuf[1024]; /* one read; the head is parsed as it arrives */
    size_t head_bytes;
    char url[64]; /* "/metrics" and a short query fit; longer is not ours */
    size_t url_len;
    bool url_long;
    bool in_accept; /* the field being parsed is Accept */
    char field[16];
    size_t field_len;
    char accept[AG_METRICS_ACCEPT_MAX];
    size_t accept_len;
    bool head_done;
    bool answered;
    bool closing;
    char head[256];           /* the response head */
    struct ag_ctl_reply body; /* the response body (owned once answered) */
    bool body_owned;
};

struct ag_metrics_http {
    uv_tcp_t tcp;
    struct ag_server *srv; /* borrowed */
    struct ag_list conns;  /* of mh_conn.node, newest first */
    unsigned n_conns;
    int refs;
    uint64_t next_id;
    char text[64]; /* the address as configured, for logs */
};

static void mh_unref(struct ag_metrics_http *mh)
{
    if (--mh->refs == 0)
        free(mh);
}

static void on_listener_closed(uv_handle_t *h)
{
    mh_unref(h->data);
}

static void on_mc_closed(uv_handle_t *h)
{
    struct mh_conn *mc = h->data;
    if (--mc->handles > 0)
        return;
    struct ag_metrics_http *mh = mc->mh;
    ag_list_remove(&mh->conns, &mc->node);
    mh->n_conns--;
    if (mc->body_owned)
        ag_ctl_reply_free(&mc->body);
    free(mc);
    mh_unref(mh);
}

static void mc_close(struct mh_conn *mc)
{
    if (mc->closing)
        return;
    mc->closing = true;
    uv_close((uv_handle_t *)&mc->timer, on_mc_closed);
    uv_close((uv_handle_t *)&mc->tcp, on_mc_closed);
}

static void on_mc_deadline(uv_timer_t *t)
{
    struct mh_conn *mc = t->data;
    mc->mh->srv->stats.metrics_timeouts++;
    ag_info("event=metrics_timeout mconn=%llu phase=%s", (unsigned long long)mc->id,
            mc->answered ? "answer" : "request");
    mc_close(mc);
}

static void on_mc_shutdown(uv_shutdown_t *req, int status)
{
    mc_close(req->data);
}

static void on_mc_written(uv_write_t *w, int status)
{
    struct mh_conn *mc = w->data;
    /* A FIN after the answer: the scraper reads to the end, then we close. */
    if (status != 0 || mc->closing ||
        uv_shutdown(&mc->sreq, (uv_stream_t *)&mc->tcp, on_mc_shutdown) != 0)
        mc_close(mc);
}

/* Queues the answer (head, and the body when there is one) and stops
 * reading: one exchange per connection. */
static void mc_answer(struct mh_conn *mc, int status, const char *reason, const char *type,
                      const char *extra, const char *text, size_t text_len)
{
    mc->answered = true;
    uv_read_stop((uv_stream_t *)&mc->tcp);
    uv_timer_start(&mc->timer, on_mc_deadline, AG_METRICS_TIMEOUT_MS, 0);
    int n = snprintf(mc->head, sizeof mc->head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                     "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                     status, reason, type, text_len, extra);
    uv_buf_t b[2] = {uv_buf_init(mc->head, (unsigned)n),
                     uv_buf_init((char *)text, (unsigned)text_len)};
    mc->wreq.data = mc->sreq.data = mc;
    if (uv_write(&mc->wreq, (uv_stream_t *)&mc->tcp, b, text_len ? 2 : 1, on_mc_written) != 0)
        mc_close(mc);
}

static void mc_plain(struct mh_conn *mc, int status, const char *reason, const char *extra)
{
    /* The body names the status only: a static string outlives the write. */
    static const char *const bodies[] = {"bad request\n",
                                         "forbidden\n",
                                         "not found\n",
                                         "method not allowed\n",
                                         "request header too large\n",
                                         "internal error\n"};
    const char *body = status == 400   ? bodies[0]
                       : status == 403 ? bodies[1]
                       : status == 404 ? bodies[2]
                       : status == 405 ? bodies[3]
                       : status == 431 ? bodies[4]
                                       : bodies[5];
    mc_answer(mc, status, reason, "text/plain; charset=utf-8", extra, body, strlen(body));
}

/* The scraper asked for OpenMetrics: Prometheus sends
 * "application/openmetrics-text;version=1.0.0,...,text/plain;version=0.0.4;q=0.5".
 * The first media type decides (Prometheus lists its preference first). */
static bool wants_openmetrics(const struct mh_conn *mc)
{
    static const char om[] = "application/openmetrics-text";
    size_t i = 0;
    while (i < mc->accept_len && (mc->accept[i] == ' ' || mc->accept[i] == '\t'))
        i++;
    return mc->accept_len - i >= sizeof om - 1 && ag_strieq(mc->accept + i, sizeof om - 1, om);
}

static void mc_decide(struct mh_conn *mc)
{
    struct ag_server *srv = mc->mh->srv;
    const struct ag_config *cfg = srv->cfg;
    char addr[64];
    ag_addr_text((const struct sockaddr *)&mc->peer, addr, sizeof addr);

    bool allowed = false;
    for (size_t i = 0; i < cfg->metrics_allow.n && !allowed; i++)
        allowed = ag_cidr_match(&cfg->metrics_allow.v[i], (const struct sockaddr *)&mc->peer);
    if (!allowed) {
        srv->stats.metrics_denied++;
        ag_warn("event=metrics_denied mconn=%llu client=%s note=\"not in metrics_allow\"",
                (unsigned long long)mc->id, addr);
        mc_plain(mc, 403, "Forbidden", "");
        return;
    }
    /* The path, without a query (Prometheus may add params). */
    size_t plen = 0;
    while (plen < mc->url_len && mc->url[plen] != '?')
        plen++;
    bool path_ok =
        !mc->url_long && plen == strlen("/metrics") && memcmp(mc->url, "/metrics", plen) == 0;
    if (!path_ok) {
        srv->stats.metrics_bad++;
        ag_info("event=metrics_not_found mconn=%llu client=%s", (unsigned long long)mc->id, addr);
        mc_plain(mc, 404, "Not Found", "");
        return;
    }
    if (llhttp_get_method(&mc->parser) != HTTP_GET) {
        srv->stats.metrics_bad++;
        ag_info("event=metrics_bad_method mconn=%llu client=%s method=%s",
                (unsigned long long)mc->id, addr,
                llhttp_method_name((llhttp_method_t)llhttp_get_method(&mc->parser)));
        mc_plain(mc, 405, "Method Not Allowed", "Allow: GET\r\n");
        return;
    }
    bool om = wants_openmetrics(mc);
    ag_ctl_reply_init(&mc->body);
    mc->body_owned = true;
    ag_ctl_metrics(srv, om ? AG_METRICS_OPENMETRICS : AG_METRICS_PROMETHEUS, &mc->body);
    if (mc->body.err) {
        ag_err("event=metrics_failed mconn=%llu error=\"reply over AG_CTL_REPLY_MAX\"",
               (unsigned long long)mc->id);
        mc_plain(mc, 500, "Internal Server Error", "");
        return;
    }
    srv->stats.metrics_scrapes++;
    ag_debug("event=metrics_scrape mconn=%llu client=%s format=%s", (unsigned long long)mc->id,
             addr, om ? "openmetrics" : "prometheus");
    mc_answer(mc, 200, "OK",
              om ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                 : "text/plain; version=0.0.4; charset=utf-8",
              "", mc->body.b.data, mc->body.b.len);
}

/* --- llhttp callbacks: keep the URL and Accept, stop at the head's end ---- */

static struct mh_conn *mc_of(llhttp_t *p)
{
    return p->data;
}

/* Appends what fits of at[0..n) to buf (holding *len of cap bytes); true
 * when something was cut: the request is then not one we serve. */
static bool keep(char *buf, size_t cap, size_t *len, const char *at, size_t n)
{
    size_t room = cap - *len, k = n < room ? n : room;
    memcpy(buf + *len, at, k);
    *len += k;
    return k < n;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct mh_conn *mc = mc_of(p);
    if (keep(mc->url, sizeof mc->url, &mc->url_len, at, len))
        mc->url_long = true;
    return 0;
}

static int on_field(llhttp_t *p, const char *at, size_t len)
{
    struct mh_conn *mc = mc_of(p);
    /* a longer name is not "accept": the cut cannot make it match */
    keep(mc->field, sizeof mc->field, &mc->field_len, at, len);
    return 0;
}

static int on_field_done(llhttp_t *p)
{
    struct mh_conn *mc = mc_of(p);
    mc->in_accept = ag_strieq(mc->field, mc->field_len, "accept");
    mc->field_len = 0;
    return 0;
}

static int on_value(llhttp_t *p, const char *at, size_t len)
{
    struct mh_conn *mc = mc_of(p);
    /* only its start matters: the first media type decides */
    if (mc->in_accept)
        keep(mc->accept, sizeof mc->accept, &mc->accept_len, at, len);
    return 0;
}

static int on_value_done(llhttp_t *p)
{
    struct mh_conn *mc = mc_of(p);
    if (mc->in_accept && mc->accept_len < sizeof mc->accept)
        mc->accept[mc->accept_len++] = ','; /* several Accept fields are one list */
    mc->in_accept = false;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    mc_of(p)->head_done = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t mh_settings = {
    .on_url = on_url,
    .on_header_field = on_field,
    .on_header_field_complete = on_field_done,
    .on_header_value = on_value,
    .on_header_value_complete = on_value_done,
    .on_headers_complete = on_headers_complete,
};

/* --- reading ------------------------------------------------------------ */

static void on_mc_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct mh_conn *mc = h->data;
    *buf = uv_buf_init(mc->rbuf, sizeof mc->rbuf);
}

static void on_mc_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct mh_conn *mc = s->data;
    struct ag_server *srv = mc->mh->srv;
    if (mc->answered || mc->closing || n == 0)
        return;
    if (n < 0) {
        mc_close(mc); /* EOF or error before a whole head: nothing to answer */
        return;
    }
    size_t len = (size_t)n;
    if (mc->head_bytes + len > AG_METRICS_REQ_MAX) {
        srv->stats.metrics_limit_size++;
        ag_warn("event=metrics_request_too_large mconn=%llu max=%d", (unsigned long long)mc->id,
                AG_METRICS_REQ_MAX);
        mc_plain(mc, 431, "Request Header Fields Too Large", "");
        return;
    }
    mc->head_bytes += len;
    enum llhttp_errno e = llhttp_execute(&mc->parser, buf->base, len);
    if (e == HPE_PAUSED && mc->head_done) {
        mc_decide(mc);
        return;
    }
    if (e != HPE_OK) {
        srv->stats.metrics_bad++;
        ag_info("event=metrics_bad_request mconn=%llu error=\"%s\"", (unsigned long long)mc->id,
                llhttp_errno_name(e));
        mc_plain(mc, 400, "Bad Request", "");
    }
}

static void on_mh_connection(uv_stream_t *s, int status)
{
    struct ag_metrics_http *mh = s->data;
    struct ag_server *srv = mh->srv;
    if (status < 0)
        return;
    struct mh_conn *mc = calloc(1, sizeof *mc);
    if (!mc)
        return; /* the kernel keeps the connection in the backlog */
    uv_tcp_init(srv->loop, &mc->tcp);
    uv_timer_init(srv->loop, &mc->timer);
    mc->tcp.data = mc->timer.data = mc;
    mc->handles = 2;
    mc->mh = mh;
    mc->id = ++mh->next_id;
    mh->refs++;
    ag_list_push_first(&mh->conns, &mc->node);
    mh->n_conns++;
    if (uv_accept(s, (uv_stream_t *)&mc->tcp) != 0) {
        mc_close(mc);
        return;
    }
    if (mh->n_conns > AG_METRICS_MAX_CONNS) {
        srv->stats.metrics_limit_conns++;
        ag_warn("event=metrics_too_many_connections max=%d", AG_METRICS_MAX_CONNS);
        mc_close(mc);
        return;
    }
    int len = (int)sizeof mc->peer;
    if (uv_tcp_getpeername(&mc->tcp, (struct sockaddr *)&mc->peer, &len) != 0) {
        mc_close(mc);
        return;
    }
    llhttp_init(&mc->parser, HTTP_REQUEST, &mh_settings);
    mc->parser.data = mc;
    uv_timer_start(&mc->timer, on_mc_deadline, srv->cfg->head_timeout_ms, 0);
    if (uv_read_start((uv_stream_t *)&mc->tcp, on_mc_alloc, on_mc_read) != 0)
        mc_close(mc);
}

/* --- the listener --------------------------------------------------------- */

int ag_metrics_http_start(struct ag_server *srv)
{
    const struct ag_config *cfg = srv->cfg;
    if (!cfg->metrics_listen)
        return 0;
    struct ag_listen l;
    if (ag_config_parse_listen(cfg->metrics_listen, &l) != 0) {
        ag_err("event=metrics_listen_failed addr=%s error=\"not ADDRESS:PORT\"",
               cfg->metrics_listen);
        return AG_EINVAL;
    }
    struct ag_metrics_http *mh = calloc(1, sizeof *mh);
    if (!mh)
        return AG_ENOMEM;
    mh->srv = srv;
    mh->refs = 1;
    snprintf(mh->text, sizeof mh->text, "%s", l.text);
    uv_tcp_init(srv->loop, &mh->tcp);
    mh->tcp.data = mh;
    int rc = uv_tcp_bind(&mh->tcp, (const struct sockaddr *)&l.addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&mh->tcp, AG_METRICS_MAX_CONNS, on_mh_connection);
    if (rc != 0) {
        ag_err("event=metrics_listen_failed addr=%s error=\"%s\"", mh->text, uv_strerror(rc));
        uv_close((uv_handle_t *)&mh->tcp, on_listener_closed);
        return AG_EIO;
    }
    srv->metrics_http = mh;
    ag_info("event=metrics_listening addr=%s allow=%zu", mh->text, cfg->metrics_allow.n);
    return 0;
}

void ag_metrics_http_stop(struct ag_server *srv)
{
    struct ag_metrics_http *mh = srv->metrics_http;
    if (!mh)
        return;
    srv->metrics_http = NULL;
    ag_list_for_each (mc, &mh->conns, struct mh_conn, node)
        mc_close(mc);
    uv_close((uv_handle_t *)&mh->tcp, on_listener_closed);
}
