/* loadgen.h - the HTTP/1.1 proxy load engine shared by ntlm_load.c and
 * negotiate_load.c (scripts/bench builds them at bench time; not part of the
 * daemon).  Included once, by exactly one .c file: everything is static.
 *
 * N threads, each with its own epoll loop and C/N client connections to
 * 127.0.0.1:PORT.  Every connection repeats:
 *
 *   handshake   leg 1 request with the mechanism's first token; a 407 whose
 *               Proxy-Authenticate carries a challenge for the scheme goes
 *               back to the mechanism (NTLM: Type 2 -> Type 3), and so on,
 *               until a 200 (success) or anything else (failure);
 *   mode "new"  the last leg carries "Connection: close": the connection
 *               ends with the handshake (one full handshake per connection);
 *   mode "ka"   after the handshake, plain requests without credentials on
 *               the same connection until the run ends (browser-like: the
 *               identity belongs to the connection).
 *
 * Only a 200 with a complete body of the expected size (-b) counts as an
 * authenticated request; any other status, a 407 where a 200 was due, a
 * missing challenge, a close by the proxy where keep-alive was due, or a
 * socket error is counted and ends that connection (it reconnects).
 *
 * The mechanism (the including file) defines, before including this file,
 *   #define MECH_SCHEME "NTLM"                 the scheme name in the headers
 *   static const int mech_max_legs;            requests up to the 200
 * and defines (this file declares them)
 *   static int mech_global_init(struct lg_opts *o, char *err, size_t cap);
 *   static void *mech_thread_init(struct lg_opts *o, char *err, size_t cap);
 *   static void mech_thread_free(void *tstate);
 *   static int mech_step(void *tstate, int leg, const char *challenge,
 *                        size_t challenge_len, char *out, size_t cap,
 *                        char *err, size_t errcap);
 *       leg 0: write the first header value ("NTLM TlRM...") into out;
 *       leg n>0: challenge is the token after "<scheme> " of the 407's
 *       Proxy-Authenticate; write the next value.
 *       Returns the length written, or -1 (err filled).
 *
 * Options: -d SECONDS runs by time; -n N instead stops after N handshakes
 * (mode new) or N authenticated requests (mode ka).  A proxy that does not
 * close within 2 s after "Connection: close", or does not answer within
 * 15 s, counts as a stall (a failure).
 *
 * Output: one line "LOADJSON {...}" on stdout with the counters; exit 0 if
 * at least one handshake succeeded and nothing failed, 1 otherwise, 2 on
 * set-up errors.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "json_text.h"

#define LG_BUF 65536
#define LG_REQ 16384
#define LG_HIST_US 10   /* histogram bucket width */
#define LG_HIST_N 20000 /* 0 .. 200 ms, then overflow */

struct lg_opts {
    int port;
    const char *url;  /* absolute URL for the request line */
    const char *host; /* Host header */
    int conns, threads;
    double seconds; /* duration, if count == 0 */
    long count;     /* handshakes to complete (then stop), 0 = by duration */
    bool keepalive; /* mode "ka" */
    long body;      /* expected body size of a 200, -1 = any */
    const char *user, *password, *domain, *workstation, *service;
};

/* The mechanism's part (the including file defines them). */
static int mech_global_init(struct lg_opts *o, char *err, size_t cap);
static void *mech_thread_init(struct lg_opts *o, char *err, size_t cap);
static void mech_thread_free(void *st);
static int mech_step(void *st, int leg, const char *chal, size_t chal_len, char *out, size_t cap,
                     char *err, size_t errcap);

enum lg_state { S_CONNECTING, S_WRITING, S_READING, S_WAIT_EOF };

struct lg_conn {
    int fd;
    enum lg_state st;
    int leg;     /* handshake leg of the request in flight, -1 = plain request */
    bool authed; /* the handshake on this connection completed */
    bool sent_close;
    char req[LG_REQ];
    size_t req_len, req_off;
    char buf[LG_BUF];
    size_t buf_len;
    /* parsed response */
    bool head_done;
    int status;
    long clen; /* -1 unknown */
    bool chunked, resp_close;
    char chal[LG_BUF / 2];
    size_t chal_len;
    bool have_chal;
    size_t body_need; /* bytes still to read (content-length mode) */
    long body_got;
    int chunk_state; /* 0 size line, 1 data, 2 CRLF after data, 3 trailers */
    size_t chunk_left;
    uint64_t t_start_ns; /* start of the handshake or request */
    uint64_t t_io_ns;    /* last request sent or wait for EOF begun (stall detection) */
};

struct lg_thread {
    pthread_t tid;
    int id;
    struct lg_opts *o;
    void *mstate;
    int nconns;
    struct lg_conn *c;
    int ep;
    /* counters */
    uint64_t handshakes, requests_ok, plain_ok, st407, st_other, closed_early, sock_err, mech_err,
        body_err, connects, timeouts;
    uint64_t hist[LG_HIST_N + 1];
    uint64_t lat_sum_us, lat_n;
    char first_error[256];
};

static atomic_bool g_stop;
static atomic_long g_started; /* handshakes started (for -n) */
static struct sockaddr_in g_addr;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#include <stdarg.h>
__attribute__((format(printf, 2, 3))) static void lg_error(struct lg_thread *t, const char *fmt,
                                                           ...)
{
    if (t->first_error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->first_error, sizeof t->first_error, fmt, ap);
    va_end(ap);
}

/* --- base64 ------------------------------------------------------------------ */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64chars[v >> 18];
        out[o++] = b64chars[(v >> 12) & 63];
        out[o++] = b64chars[(v >> 6) & 63];
        out[o++] = b64chars[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = b64chars[v >> 18];
        out[o++] = b64chars[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = 0;
    return o;
}

__attribute__((unused)) static long b64_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
    uint32_t v = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = in[i];
        int d;
        if (ch >= 'A' && ch <= 'Z')
            d = ch - 'A';
        else if (ch >= 'a' && ch <= 'z')
            d = ch - 'a' + 26;
        else if (ch >= '0' && ch <= '9')
            d = ch - '0' + 52;
        else if (ch == '+')
            d = 62;
        else if (ch == '/')
            d = 63;
        else if (ch == '=')
            break;
        else
            return -1;
        v = v << 6 | (uint32_t)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return -1;
            out[o++] = (uint8_t)(v >> bits);
        }
    }
    return (long)o;
}

/* --- connections --------------------------------------------------------------- */

static void conn_reset_resp(struct lg_conn *c)
{
    c->head_done = false;
    c->status = 0;
    c->clen = -1;
    c->chunked = c->resp_close = false;
    c->have_chal = false;
    c->chal_len = 0;
    c->body_need = 0;
    c->body_got = 0;
    c->chunk_state = 0;
    c->chunk_left = 0;
}

static void ep_mod(struct lg_thread *t, struct lg_conn *c, uint32_t ev)
{
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &e);
}

static bool may_start_handshake(struct lg_thread *t)
{
    if (atomic_load_explicit(&g_stop, memory_order_relaxed))
        return false;
    if (t->o->count > 0) {
        long n = atomic_fetch_add(&g_started, 1);
        if (n >= t->o->count)
            return false;
    }
    return true;
}

static void conn_close(struct lg_thread *t, struct lg_conn *c)
{
    (void)t;
    if (c->fd >= 0) {
        close(c->fd); /* removes it from the epoll set */
        c->fd = -1;
    }
}

/* Build the request in c->req; leg >= 0: handshake leg, -1: plain request. */
static int build_request(struct lg_thread *t, struct lg_conn *c, int leg, const char *chal,
                         size_t chal_len)
{
    struct lg_opts *o = t->o;
    char auth[LG_REQ - 512];
    int alen = 0;
    if (leg >= 0) {
        char err[200] = "";
        alen = mech_step(t->mstate, leg, chal, chal_len, auth, sizeof auth, err, sizeof err);
        if (alen < 0) {
            t->mech_err++;
            lg_error(t, "mechanism (leg %d): %s", leg, err);
            return -1;
        }
    }
    bool last = leg >= mech_max_legs - 1;
    c->sent_close = !o->keepalive && leg >= 0 && last;
    int n = snprintf(c->req, sizeof c->req, "GET %s HTTP/1.1\r\nHost: %s\r\n%s%.*s%s%s\r\n", o->url,
                     o->host, leg >= 0 ? "Proxy-Authorization: " : "", alen, auth,
                     leg >= 0 ? "\r\n" : "", c->sent_close ? "Connection: close\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof c->req) {
        lg_error(t, "request too large (%d bytes)", n);
        t->mech_err++;
        return -1;
    }
    c->req_len = (size_t)n;
    c->req_off = 0;
    c->leg = leg;
    conn_reset_resp(c);
    return 0;
}

static void conn_open(struct lg_thread *t, struct lg_conn *c)
{
    c->fd = -1;
    c->authed = false;
    c->buf_len = 0;
    if (!may_start_handshake(t))
        return;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        t->sock_err++;
        lg_error(t, "socket: %s", strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->t_start_ns = now_ns();
    if (build_request(t, c, 0, NULL, 0) != 0) {
        conn_close(t, c);
        return;
    }
    t->connects++;
    int r = connect(fd, (struct sockaddr *)&g_addr, sizeof g_addr);
    if (r != 0 && errno != EINPROGRESS) {
        t->sock_err++;
        lg_error(t, "connect: %s", strerror(errno));
        conn_close(t, c);
        return;
    }
    c->st = S_CONNECTING;
    c->t_io_ns = c->t_start_ns;
    struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
    epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &e);
}

/* Failure on this connection: count it (already done by the caller), reconnect. */
static void conn_fail(struct lg_thread *t, struct lg_conn *c)
{
    conn_close(t, c);
    conn_open(t, c);
}

static void record_latency(struct lg_thread *t, struct lg_conn *c)
{
    uint64_t us = (now_ns() - c->t_start_ns) / 1000;
    size_t b = us / LG_HIST_US;
    t->hist[b < LG_HIST_N ? b : LG_HIST_N]++;
    t->lat_sum_us += us;
    t->lat_n++;
}

static void start_write(struct lg_thread *t, struct lg_conn *c)
{
    c->st = S_WRITING;
    c->t_io_ns = now_ns();
    ssize_t w = write(c->fd, c->req + c->req_off, c->req_len - c->req_off);
    if (w > 0)
        c->req_off += (size_t)w;
    if (w < 0 && errno != EAGAIN) {
        t->sock_err++;
        lg_error(t, "write: %s", strerror(errno));
        conn_fail(t, c);
        return;
    }
    if (c->req_off == c->req_len) {
        c->st = S_READING;
        ep_mod(t, c, EPOLLIN);
    } else {
        ep_mod(t, c, EPOLLOUT);
    }
}

/* A complete response is in; decide what comes next. */
static void on_response(struct lg_thread *t, struct lg_conn *c)
{
    struct lg_opts *o = t->o;
    if (c->leg >= 0) {
        if (c->status == 407 && c->leg + 1 < mech_max_legs) {
            if (!c->have_chal) {
                t->mech_err++;
                lg_error(t, "407 without a %s challenge after leg %d", MECH_SCHEME, c->leg);
                conn_fail(t, c);
                return;
            }
            if (c->resp_close) {
                t->closed_early++;
                lg_error(t, "proxy closed the connection after the challenge (leg %d)", c->leg);
                conn_fail(t, c);
                return;
            }
            if (build_request(t, c, c->leg + 1, c->chal, c->chal_len) != 0) {
                conn_fail(t, c);
                return;
            }
            start_write(t, c);
            return;
        }
        if (c->status != 200) {
            if (c->status == 407)
                t->st407++;
            else
                t->st_other++;
            lg_error(t, "handshake ended with status %d at leg %d", c->status, c->leg);
            conn_fail(t, c);
            return;
        }
        t->handshakes++;
        t->requests_ok++;
        record_latency(t, c);
        c->authed = true;
    } else {
        if (c->status != 200) {
            if (c->status == 407)
                t->st407++;
            else
                t->st_other++;
            lg_error(t, "plain request on an authenticated connection got %d", c->status);
            conn_fail(t, c);
            return;
        }
        t->requests_ok++;
        t->plain_ok++;
        record_latency(t, c);
    }
    if (o->body >= 0 && c->body_got != o->body) {
        t->body_err++;
        lg_error(t, "200 with a %ld-byte body, expected %ld", c->body_got, o->body);
    }
    if (c->sent_close || c->resp_close) {
        if (!c->sent_close && o->keepalive) {
            t->closed_early++;
            lg_error(t, "proxy closed a keep-alive connection after a 200");
        }
        /* Let the proxy close first (no TIME_WAIT on the client side). */
        c->st = S_WAIT_EOF;
        c->t_io_ns = now_ns();
        return;
    }
    if (atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        conn_close(t, c);
        return;
    }
    c->t_start_ns = now_ns();
    if (!o->keepalive) { /* not reached: the last leg always closes in "new" mode */
        conn_close(t, c);
        conn_open(t, c);
        return;
    }
    if (o->count > 0 && atomic_fetch_add(&g_started, 1) >= o->count) {
        conn_close(t, c); /* -n in mode ka: requests in all */
        return;
    }
    if (build_request(t, c, -1, NULL, 0) != 0) {
        conn_fail(t, c);
        return;
    }
    start_write(t, c);
}

static bool hdr_is(const char *line, size_t len, const char *name, const char **val, size_t *vlen)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return false;
    const char *v = line + n + 1;
    const char *e = line + len;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *val = v;
    *vlen = (size_t)(e - v);
    return true;
}

/* Parse the head in buf[0..hlen); returns 0 or -1. */
static int parse_head(struct lg_thread *t, struct lg_conn *c, size_t hlen)
{
    const char *p = c->buf, *end = c->buf + hlen;
    const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
    if (!eol || eol - p < 12 || strncmp(p, "HTTP/1.", 7) != 0) {
        lg_error(t, "bad status line");
        return -1;
    }
    c->status = atoi(p + 9);
    bool http10 = p[7] == '0';
    c->resp_close = http10;
    p = eol + 2;
    size_t slen = strlen(MECH_SCHEME);
    while (p < end) {
        eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!eol)
            break;
        size_t len = (size_t)(eol - p);
        const char *v;
        size_t vl;
        if (len == 0)
            break;
        if (hdr_is(p, len, "Content-Length", &v, &vl)) {
            c->clen = strtol(v, NULL, 10);
        } else if (hdr_is(p, len, "Transfer-Encoding", &v, &vl)) {
            if (vl >= 7 && strncasecmp(v + vl - 7, "chunked", 7) == 0)
                c->chunked = true;
        } else if (hdr_is(p, len, "Connection", &v, &vl) ||
                   hdr_is(p, len, "Proxy-Connection", &v, &vl)) {
            if (vl >= 5 && memmem(v, vl, "close", 5))
                c->resp_close = true;
            else if (http10 && vl >= 10 && strncasecmp(v, "keep-alive", 10) == 0)
                c->resp_close = false;
        } else if (hdr_is(p, len, "Proxy-Authenticate", &v, &vl)) {
            if (!c->have_chal && vl > slen + 1 && strncasecmp(v, MECH_SCHEME, slen) == 0 &&
                v[slen] == ' ') {
                size_t tl = vl - slen - 1;
                if (tl < sizeof c->chal) {
                    memcpy(c->chal, v + slen + 1, tl);
                    c->chal[tl] = 0;
                    c->chal_len = tl;
                    c->have_chal = true;
                }
            }
        }
        p = eol + 2;
    }
    if (c->status == 204 || c->status == 304 || (c->status >= 100 && c->status < 200))
        c->clen = 0;
    if (c->chunked)
        c->clen = -1;
    return 0;
}

/* Consume body bytes from buf[*off..buf_len); returns 1 when complete, 0 for more, -1 error. */
static int consume_body(struct lg_conn *c, size_t *off)
{
    if (!c->chunked) {
        if (c->clen < 0) /* until EOF */
        {
            c->body_got += (long)(c->buf_len - *off);
            *off = c->buf_len;
            return 0;
        }
        size_t avail = c->buf_len - *off;
        size_t take = avail < c->body_need ? avail : c->body_need;
        c->body_need -= take;
        c->body_got += (long)take;
        *off += take;
        return c->body_need == 0;
    }
    while (*off < c->buf_len) {
        if (c->chunk_state == 1) {
            size_t avail = c->buf_len - *off;
            size_t take = avail < c->chunk_left ? avail : c->chunk_left;
            c->chunk_left -= take;
            c->body_got += (long)take;
            *off += take;
            if (c->chunk_left == 0)
                c->chunk_state = 2;
            continue;
        }
        const char *s = c->buf + *off;
        const char *eol = memmem(s, c->buf_len - *off, "\r\n", 2);
        if (!eol)
            return 0;
        size_t len = (size_t)(eol - s);
        *off += len + 2;
        if (c->chunk_state == 0) {
            char *e;
            unsigned long sz = strtoul(s, &e, 16);
            if (e == s)
                return -1;
            c->chunk_left = sz;
            c->chunk_state = sz ? 1 : 3;
        } else if (c->chunk_state == 2) {
            if (len != 0)
                return -1;
            c->chunk_state = 0;
        } else { /* trailers until an empty line */
            if (len == 0)
                return 1;
        }
    }
    return 0;
}

static void on_readable(struct lg_thread *t, struct lg_conn *c)
{
    for (;;) {
        if (c->buf_len == sizeof c->buf) {
            t->sock_err++;
            lg_error(t, "response head larger than %zu bytes", sizeof c->buf);
            conn_fail(t, c);
            return;
        }
        ssize_t r = read(c->fd, c->buf + c->buf_len, sizeof c->buf - c->buf_len);
        if (r < 0) {
            if (errno == EAGAIN)
                return;
            if (c->st == S_WAIT_EOF) { /* a reset instead of a FIN: fine */
                conn_close(t, c);
                conn_open(t, c);
                return;
            }
            t->sock_err++;
            lg_error(t, "read: %s", strerror(errno));
            conn_fail(t, c);
            return;
        }
        if (r == 0) {
            if (c->st == S_WAIT_EOF) {
                conn_close(t, c);
                conn_open(t, c);
                return;
            }
            if (c->head_done && !c->chunked && c->clen < 0) { /* body until EOF */
                size_t off = 0;
                c->buf_len = 0;
                (void)off;
                c->resp_close = true;
                on_response(t, c);
                if (c->st == S_WAIT_EOF) {
                    conn_close(t, c);
                    conn_open(t, c);
                }
                return;
            }
            t->closed_early++;
            lg_error(t, "proxy closed the connection mid-exchange (leg %d)", c->leg);
            conn_fail(t, c);
            return;
        }
        if (c->st == S_WAIT_EOF) {
            c->buf_len = 0; /* unexpected bytes after the response: ignore */
            continue;
        }
        c->buf_len += (size_t)r;
        /* a buffer may hold the end of one response only (no pipelining) */
        size_t off = 0;
        if (!c->head_done) {
            char *h = memmem(c->buf, c->buf_len, "\r\n\r\n", 4);
            if (!h)
                continue;
            size_t hlen = (size_t)(h - c->buf) + 4;
            if (parse_head(t, c, hlen) != 0) {
                t->st_other++;
                conn_fail(t, c);
                return;
            }
            c->head_done = true;
            if (c->clen > 0)
                c->body_need = (size_t)c->clen;
            off = hlen;
        }
        int done = c->clen == 0 ? 1 : consume_body(c, &off);
        if (done < 0) {
            t->st_other++;
            lg_error(t, "bad chunked body");
            conn_fail(t, c);
            return;
        }
        /* keep unconsumed bytes (chunk framing) at the start of the buffer */
        memmove(c->buf, c->buf + off, c->buf_len - off);
        c->buf_len -= off;
        if (done) {
            c->buf_len = 0;
            on_response(t, c);
            if (c->fd < 0 || c->st != S_WAIT_EOF)
                return;
            /* fall through to read the EOF */
        }
    }
}

static void on_event(struct lg_thread *t, struct lg_conn *c, uint32_t ev)
{
    if (c->fd < 0)
        return;
    if (c->st == S_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            t->sock_err++;
            lg_error(t, "connect: %s", strerror(err));
            conn_fail(t, c);
            return;
        }
        start_write(t, c);
        return;
    }
    if (c->st == S_WRITING) {
        if (ev & (EPOLLERR | EPOLLHUP)) {
            t->sock_err++;
            lg_error(t, "socket error while writing");
            conn_fail(t, c);
            return;
        }
        start_write(t, c);
        return;
    }
    on_readable(t, c);
}

static void *thread_main(void *arg)
{
    struct lg_thread *t = arg;
    char err[256] = "";
    t->mstate = mech_thread_init(t->o, err, sizeof err);
    if (!t->mstate) {
        snprintf(t->first_error, sizeof t->first_error, "thread init: %.200s", err);
        t->mech_err++;
        return NULL;
    }
    t->ep = epoll_create1(EPOLL_CLOEXEC);
    t->c = calloc((size_t)t->nconns, sizeof *t->c);
    if (t->ep < 0 || !t->c) {
        snprintf(t->first_error, sizeof t->first_error, "out of memory");
        t->mech_err++;
        return NULL;
    }
    for (int i = 0; i < t->nconns; i++)
        conn_open(t, &t->c[i]);
    struct epoll_event evs[256];
    uint64_t last_scan = now_ns();
    for (;;) {
        bool any = false;
        for (int i = 0; i < t->nconns; i++)
            if (t->c[i].fd >= 0) {
                any = true;
                break;
            }
        if (!any)
            break;
        if (atomic_load_explicit(&g_stop, memory_order_relaxed))
            break;
        int n = epoll_wait(t->ep, evs, 256, 50);
        for (int i = 0; i < n; i++)
            on_event(t, evs[i].data.ptr, evs[i].events);
        uint64_t now = now_ns();
        if (now - last_scan > 100000000ull) {
            /* stalls: a proxy that does not close after "Connection: close"
             * within 2 s, or does not answer within 15 s */
            last_scan = now;
            for (int i = 0; i < t->nconns; i++) {
                struct lg_conn *c = &t->c[i];
                if (c->fd < 0)
                    continue;
                uint64_t idle = now - c->t_io_ns;
                if ((c->st == S_WAIT_EOF && idle > 2000000000ull) || idle > 15000000000ull) {
                    t->timeouts++;
                    lg_error(t, "%s",
                             c->st == S_WAIT_EOF
                                 ? "proxy kept the connection open after Connection: close"
                                 : "no answer within 15 s");
                    conn_fail(t, c);
                }
            }
        }
        /* connections that could not (re)open: retry unless stopping */
        if (t->o->count == 0 && !atomic_load_explicit(&g_stop, memory_order_relaxed))
            for (int i = 0; i < t->nconns; i++)
                if (t->c[i].fd < 0)
                    conn_open(t, &t->c[i]);
    }
    for (int i = 0; i < t->nconns; i++)
        conn_close(t, &t->c[i]);
    close(t->ep);
    free(t->c);
    mech_thread_free(t->mstate);
    return NULL;
}

static void lg_usage(const char *argv0)
{
    fprintf(
        stderr,
        "usage: %s -p PORT -U URL -H HOST [-c conns] [-t threads] [-d seconds | -n handshakes]\n"
        "          [-m new|ka] [-b body-bytes] [-u user] [-P password] [-D domain]\n"
        "          [-W workstation] [-S service]\n",
        argv0);
}

static int lg_main(int argc, char **argv)
{
    struct lg_opts o = {.port = 0,
                        .url = NULL,
                        .host = NULL,
                        .conns = 50,
                        .threads = 2,
                        .seconds = 5,
                        .count = 0,
                        .keepalive = false,
                        .body = -1,
                        .user = "alice",
                        .password = "alice-Pass1",
                        .domain = "",
                        .workstation = "BENCH",
                        .service = "HTTP@localhost"};
    int ch;
    while ((ch = getopt(argc, argv, "p:U:H:c:t:d:n:m:b:u:P:D:W:S:h")) != -1) {
        switch (ch) {
        case 'p':
            o.port = atoi(optarg);
            break;
        case 'U':
            o.url = optarg;
            break;
        case 'H':
            o.host = optarg;
            break;
        case 'c':
            o.conns = atoi(optarg);
            break;
        case 't':
            o.threads = atoi(optarg);
            break;
        case 'd':
            o.seconds = atof(optarg);
            break;
        case 'n':
            o.count = atol(optarg);
            break;
        case 'm':
            o.keepalive = !strcmp(optarg, "ka");
            break;
        case 'b':
            o.body = atol(optarg);
            break;
        case 'u':
            o.user = optarg;
            break;
        case 'P':
            o.password = optarg;
            break;
        case 'D':
            o.domain = optarg;
            break;
        case 'W':
            o.workstation = optarg;
            break;
        case 'S':
            o.service = optarg;
            break;
        default:
            lg_usage(argv[0]);
            return 2;
        }
    }
    if (!o.port || !o.url || !o.host || o.conns < 1 || o.threads < 1) {
        lg_usage(argv[0]);
        return 2;
    }
    if (o.threads > o.conns)
        o.threads = o.conns;
    char err[256] = "";
    if (mech_global_init(&o, err, sizeof err) != 0) {
        fprintf(stderr, "set-up: %s\n", err);
        return 2;
    }
    memset(&g_addr, 0, sizeof g_addr);
    g_addr.sin_family = AF_INET;
    g_addr.sin_port = htons((uint16_t)o.port);
    g_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    struct lg_thread *ts = calloc((size_t)o.threads, sizeof *ts);
    if (!ts)
        return 2;
    uint64_t t0 = now_ns();
    for (int i = 0; i < o.threads; i++) {
        ts[i].id = i;
        ts[i].o = &o;
        ts[i].nconns = o.conns / o.threads + (i < o.conns % o.threads);
        if (pthread_create(&ts[i].tid, NULL, thread_main, &ts[i]) != 0) {
            perror("pthread_create");
            return 2;
        }
    }
    if (o.count == 0) {
        uint64_t end = t0 + (uint64_t)(o.seconds * 1e9);
        while (now_ns() < end) {
            uint64_t left = end - now_ns();
            struct timespec ts2 = {0, (long)(left < 50000000 ? left : 50000000)};
            nanosleep(&ts2, NULL);
        }
        atomic_store(&g_stop, true);
    }
    uint64_t t_end = 0;
    for (int i = 0; i < o.threads; i++) {
        pthread_join(ts[i].tid, NULL);
        if (i == 0 && o.count == 0)
            t_end = t0 + (uint64_t)(o.seconds * 1e9);
    }
    if (o.count > 0)
        t_end = now_ns();
    double secs = (double)(t_end - t0) / 1e9;

    struct lg_thread sum;
    memset(&sum, 0, sizeof sum);
    const char *first = "";
    for (int i = 0; i < o.threads; i++) {
        struct lg_thread *t = &ts[i];
        sum.handshakes += t->handshakes;
        sum.requests_ok += t->requests_ok;
        sum.plain_ok += t->plain_ok;
        sum.st407 += t->st407;
        sum.st_other += t->st_other;
        sum.closed_early += t->closed_early;
        sum.sock_err += t->sock_err;
        sum.mech_err += t->mech_err;
        sum.body_err += t->body_err;
        sum.connects += t->connects;
        sum.timeouts += t->timeouts;
        sum.lat_sum_us += t->lat_sum_us;
        sum.lat_n += t->lat_n;
        for (int b = 0; b <= LG_HIST_N; b++)
            sum.hist[b] += t->hist[b];
        if (!*first && t->first_error[0])
            first = t->first_error;
    }
    double p50 = 0, p99 = 0;
    uint64_t acc = 0;
    for (int b = 0; b <= LG_HIST_N && sum.lat_n; b++) {
        acc += sum.hist[b];
        if (!p50 && acc * 100 >= sum.lat_n * 50)
            p50 = (b + 1) * LG_HIST_US;
        if (acc * 100 >= sum.lat_n * 99) {
            p99 = (b + 1) * LG_HIST_US;
            break;
        }
    }
    char esc[600];
    json_text(esc, sizeof esc, first);
    uint64_t failures = sum.st407 + sum.st_other + sum.closed_early + sum.sock_err + sum.mech_err +
                        sum.body_err + sum.timeouts;
    printf("LOADJSON {\"scheme\":\"%s\",\"mode\":\"%s\",\"seconds\":%.3f,\"handshakes\":%" PRIu64
           ",\"requests_ok\":%" PRIu64 ",\"plain_ok\":%" PRIu64 ",\"connects\":%" PRIu64
           ",\"status_407\":%" PRIu64 ",\"status_other\":%" PRIu64 ",\"closed_early\":%" PRIu64
           ",\"socket_errors\":%" PRIu64 ",\"mech_errors\":%" PRIu64 ",\"body_errors\":%" PRIu64
           ",\"timeouts\":%" PRIu64 ",\"failures\":%" PRIu64
           ",\"lat_mean_us\":%.1f,\"lat_p50_us\":%.0f,"
           "\"lat_p99_us\":%.0f,\"first_error\":\"%s\"}\n",
           MECH_SCHEME, o.keepalive ? "ka" : "new", secs, sum.handshakes, sum.requests_ok,
           sum.plain_ok, sum.connects, sum.st407, sum.st_other, sum.closed_early, sum.sock_err,
           sum.mech_err, sum.body_err, sum.timeouts, failures,
           sum.lat_n ? (double)sum.lat_sum_us / (double)sum.lat_n : 0.0, p50, p99, esc);
    fflush(stdout);
    free(ts);
    return (sum.handshakes > 0 && failures == 0) ? 0 : 1;
}
