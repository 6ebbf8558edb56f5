/* fuzz_head.c - libFuzzer target for the request head: llhttp driven by the
 * daemon's own settings (ag_request_settings, src/server/exchange.c: the
 * head recorder of src/http/head.c, the chunk-size ceiling, the pauses at
 * the end of a head and of a message), the bytes checks conn_parse runs
 * (ag_head_scan_defects: obs-fold, bare LF; the header_max ceiling) and the
 * checks exchange_on_head runs before anything else reads a head
 * (ag_head_check_framing, the target parsers). Requests may be pipelined.
 *
 * Input: byte 0 picks header_max (small or the default), bytes 1-2 pick
 * where the rest is cut into three reads; the rest is the client's bytes.
 * Invariants on every head that passes: no Transfer-Encoding but one
 * "chunked" (then no Content-Length), at most one Content-Length and it is
 * the body length llhttp uses, at most one Host, names are tokens, no CR,
 * LF or NUL in a name, value or the target (they are forwarded verbatim),
 * ceilings held. Differential: with the default ceiling the same bytes in
 * one read and cut into three give the same heads and the same verdicts
 * (a head must not depend on how TCP segmented it).
 * The driver mirrors conn_parse's loop without a socket; the loop is
 * initialised only for the head timer rq_begin arms (it never runs).
 * Build: cmake -DAG_FUZZ=ON with CC=clang; run: fuzz_head corpus/head.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authgate/err.h"
#include "authgate/limits.h"
#include "http/head.h"
#include "http/target.h"
#include "server/conn.h"
#include "server/server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void CHECK(bool ok)
{
    if (!ok)
        abort();
}

#define MAX_REQUESTS 8

/* What the daemon would have done with each head, in order. */
struct transcript {
    int n;
    int verdict[MAX_REQUESTS + 1]; /* 0 passed, else the refusal status */
    uint64_t digest[MAX_REQUESTS + 1];
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n && b; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static bool clean(const char *s, size_t n)
{
    return n == 0 || (!memchr(s, '\r', n) && !memchr(s, '\n', n) && !memchr(s, '\0', n));
}

static bool token(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              (ch && strchr("!#$%&'*+-.^_`|~", ch))))
            return false;
    }
    return true;
}

/* exchange_on_head's checks up to the rules; 0 when the head passes. */
static int on_head(struct conn *c, uint32_t header_max, uint64_t *digest)
{
    struct ag_head *h = &c->head;
    llhttp_t *p = &c->parser;
    bool http10 = p->http_major == 1 && p->http_minor == 0;
    bool is_connect = p->method == HTTP_CONNECT;
    const char *why = NULL;
    int st = ag_head_check_framing(h, http10, &why);
    if (st != 0) {
        CHECK((st == 400 || st == 501) && why && why[0]);
        return st;
    }
    size_t ul;
    const char *url = ag_head_url(h, &ul);
    struct ag_target t;
    int rc =
        is_connect ? ag_target_parse_authority(url, ul, &t) : ag_target_parse_absolute(url, ul, &t);
    if (rc != 0)
        return 400;
    if (!is_connect && t.path_len && t.path[0] != '/')
        return 400;

    /* The head passed: what reaches the origin must be unambiguous. */
    CHECK(h->err == 0 && h->raw.len <= header_max && h->n_fields <= AG_HEADER_FIELDS_MAX);
    CHECK(clean(url, ul) && !memchr(url, ' ', ul));
    CHECK(clean(t.host, strlen(t.host)) && clean(t.path, t.path_len));
    const char *te, *cl;
    size_t tel, cll;
    int nte = ag_head_find(h, "Transfer-Encoding", &te, &tel);
    int ncl = ag_head_find(h, "Content-Length", &cl, &cll);
    bool chunked = (p->flags & F_CHUNKED) != 0;
    CHECK(ncl <= 1 && ag_head_find(h, "Host", NULL, NULL) <= 1);
    CHECK(nte == 0 || (nte == 1 && chunked && !http10));
    CHECK(!chunked || (nte == 1 && ncl == 0 && !(p->flags & F_CONTENT_LENGTH)));
    if (ncl == 1) {
        /* The recorded value keeps trailing OWS (llhttp leaves it, RFC 9110
         * §5.5 excludes it from the value); the number is what precedes. */
        while (cll && (cl[cll - 1] == ' ' || cl[cll - 1] == '\t'))
            cll--;
        uint64_t v;
        CHECK(ag_parse_dec(cl, cll, UINT64_MAX, &v) == 0);
        CHECK((p->flags & F_CONTENT_LENGTH) && p->content_length == v);
    }
    uint64_t d = fnv(0xcbf29ce484222325ull, url, ul);
    d = fnv(d, &p->method, sizeof p->method);
    d = fnv(d, &p->flags, sizeof p->flags);
    for (uint32_t i = 0; i < h->n_fields; i++) {
        size_t nl, vl;
        const char *nm = ag_head_name(h, i, &nl);
        const char *v = ag_head_value(h, i, &vl);
        CHECK(token(nm, nl) && clean(v, vl));
        d = fnv(fnv(fnv(d, nm, nl), ":", 1), v, vl);
    }
    *digest = d;
    return 0;
}

static uv_loop_t loop;
static struct ag_config *cfg;

/* The client's bytes in up to three reads, through conn_parse's loop. */
static void run(const char *in, size_t size, const size_t cut[2], uint32_t header_max,
                struct transcript *t)
{
    struct ag_server srv;
    memset(&srv, 0, sizeof srv);
    srv.loop = &loop;
    struct conn *c = calloc(1, sizeof *c);
    CHECK(c != NULL);
    c->srv = &srv;
    c->cfg = cfg;
    c->state = CONN_READ_HEAD;
    uv_timer_init(&loop, &c->timer);
    ag_head_init(&c->head, header_max);
    ag_buf_init(&c->stage_up, 1u << 20);
    conn_request_reset(c, 0);
    llhttp_init(&c->parser, HTTP_REQUEST, &ag_request_settings);
    c->parser.data = c;
    memset(t, 0, sizeof *t);

    size_t bounds[4] = {0, cut[0], cut[1], size};
    size_t off = 0; /* first unconsumed byte (conn->inbuf is in[off..end)) */
    bool in_head = true, done = false, kick = false;
    for (int r = 0; r < 3 && !done; r++) {
        size_t end = bounds[r + 1];
        while (!done && (off < end || kick)) {
            kick = false;
            const char *p = off < end ? in + off : "";
            size_t len = end - off;
            enum llhttp_errno e = llhttp_execute(&c->parser, p, len);
            size_t used = len;
            if (e != HPE_OK) {
                const char *pos = llhttp_get_error_pos(&c->parser);
                used = (pos && pos >= p && pos <= p + len) ? (size_t)(pos - p) : len;
            }
            const char *defect = NULL;
            if (in_head && !c->rq.msg_done) {
                if (!c->head_ready)
                    c->rq.head_bytes += used;
                defect = ag_head_scan_defects(p, used, c->head.n_fields > 0, &c->rq.last_lf,
                                              &c->rq.last_cr);
            }
            int verdict = 0;
            if (defect)
                verdict = 400;
            else if (e != HPE_OK && e != HPE_PAUSED && e != HPE_PAUSED_UPGRADE)
                verdict = c->head.err == AG_ELIMIT ? 431 : 400;
            else if (in_head && !c->head_ready && c->rq.head_bytes > header_max)
                verdict = 431;
            if (verdict) {
                if (in_head && t->n <= MAX_REQUESTS)
                    t->verdict[t->n++] = verdict;
                done = true; /* the connection closes after a refused head */
                break;
            }
            off += used;
            if (e == HPE_PAUSED_UPGRADE) {
                done = true; /* a CONNECT tunnel: no more HTTP */
            } else if (c->head_ready) {
                c->head_ready = false;
                uint64_t digest = 0;
                verdict = on_head(c, header_max, &digest);
                t->verdict[t->n] = verdict;
                t->digest[t->n++] = digest;
                if (verdict || t->n == MAX_REQUESTS) {
                    done = true;
                    break;
                }
                in_head = false;
                llhttp_resume(&c->parser);
                kick = true;
            } else if (c->rq.msg_done) {
                /* next_request: a clean head and request for what follows */
                ag_head_reset(&c->head);
                conn_request_reset(c, 0);
                ag_buf_consume(&c->stage_up, c->stage_up.len);
                in_head = true;
                llhttp_resume(&c->parser);
                kick = true;
            }
        }
    }
    conn_request_reset(c, 0);
    ag_buf_free(&c->rq.req_head_up);
    ag_buf_free(&c->stage_up);
    ag_head_free(&c->head);
    uv_close((uv_handle_t *)&c->timer, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!cfg) {
        CHECK(uv_loop_init(&loop) == 0);
        cfg = ag_config_default();
        CHECK(cfg != NULL);
    }
    if (size < 3)
        return 0;
    uint32_t header_max = data[0] & 1 ? AG_HEADER_MAX_MIN : AG_HEADER_MAX;
    size_t n = size - 3;
    char *in = malloc(n ? n : 1);
    CHECK(in != NULL);
    memcpy(in, data + 3, n);
    size_t a = n * data[1] / 255, b = n * data[2] / 255;
    size_t whole[2] = {n, n}, cut[2] = {a < b ? a : b, a < b ? b : a};
    struct transcript t1, t2;
    run(in, n, whole, header_max, &t1);
    run(in, n, cut, header_max, &t2);
    /* header_max counts wire bytes only while a head is incomplete at the
     * end of a read: near the small ceiling a cut can change the verdict. */
    if (header_max == AG_HEADER_MAX)
        CHECK(memcmp(&t1, &t2, sizeof t1) == 0);
    free(in);
    return 0;
}
