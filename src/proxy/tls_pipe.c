/* tls_pipe.c - the TLS transform and the parents' client contexts (see
 * tls_pipe.h). */
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "authgate/limits.h"
#include "tls_pipe.h"

const char *ag_tls_error_text(char *buf, size_t len, const char *none)
{
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, buf, len);
    else
        snprintf(buf, len, "%s", none);
    ERR_clear_error();
    return buf;
}

static bool is_ip(const char *host)
{
    unsigned char a[16];
    return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

int ag_tls_pipe_init(struct ag_tls_pipe *p, SSL_CTX *ctx, bool server, const char *host)
{
    memset(p, 0, sizeof *p);
    SSL *ssl = SSL_new(ctx);
    BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
    if (!ssl || !in || !out) {
        SSL_free(ssl);
        BIO_free(in);
        BIO_free(out);
        return -1;
    }
    /* An empty input BIO means "more to come", not end of stream. */
    BIO_set_mem_eof_return(in, -1);
    BIO_set_mem_eof_return(out, -1);
    SSL_set_bio(ssl, in, out);
    if (server) {
        SSL_set_accept_state(ssl);
    } else {
        /* SNI for a name (RFC 6066 forbids addresses), and the name or
         * address the certificate must carry: without it any certificate
         * of the trusted CAs would pass. */
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        int ok = host != NULL;
        if (ok && is_ip(host)) {
            ok = X509_VERIFY_PARAM_set1_ip_asc(vp, host) == 1;
        } else if (ok) {
            X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ok = SSL_set_tlsext_host_name(ssl, host) == 1 &&
                 X509_VERIFY_PARAM_set1_host(vp, host, 0) == 1;
        }
        if (!ok) {
            SSL_free(ssl);
            return -1;
        }
        SSL_set_connect_state(ssl);
    }
    p->ssl = ssl;
    p->in = in;
    p->out = out;
    return 0;
}

void ag_tls_pipe_free(struct ag_tls_pipe *p)
{
    SSL_free(p->ssl); /* and both BIOs */
    memset(p, 0, sizeof *p);
}

int ag_tls_pipe_feed(struct ag_tls_pipe *p, const char *buf, size_t n)
{
    return BIO_write(p->in, buf, (int)n) == (int)n ? 0 : -1;
}

size_t ag_tls_pipe_backlog(const struct ag_tls_pipe *p)
{
    return BIO_ctrl_pending(p->in);
}

int ag_tls_pipe_take(struct ag_tls_pipe *p, char **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t len = BIO_ctrl_pending(p->out);
    if (len == 0)
        return 0;
    char *b = malloc(len);
    if (!b)
        return -1;
    int got = BIO_read(p->out, b, (int)len);
    if (got <= 0) {
        free(b);
        return 0;
    }
    *out = b;
    *n = (size_t)got;
    return 1;
}

/* Why the last call failed: the peer's certificate first (what an
 * operator fixes), then OpenSSL's queue. */
static void failure(struct ag_tls_pipe *p, char *why, size_t whylen, const char *none)
{
    long v = SSL_get_verify_result(p->ssl);
    if (!SSL_is_server(p->ssl) && v != X509_V_OK) {
        snprintf(why, whylen, "certificate verify failed: %s", X509_verify_cert_error_string(v));
        ERR_clear_error();
        return;
    }
    ag_tls_error_text(why, whylen, none);
}

int ag_tls_pipe_handshake(struct ag_tls_pipe *p, char *why, size_t whylen)
{
    ERR_clear_error();
    int r = SSL_do_handshake(p->ssl);
    if (r == 1) {
        p->handshaken = true;
        return 1;
    }
    if (SSL_get_error(p->ssl, r) == SSL_ERROR_WANT_READ)
        return 0;
    failure(p, why, whylen, "connection reset");
    return -1;
}

int ag_tls_pipe_write(struct ag_tls_pipe *p, const char *data, size_t len, char *why, size_t whylen)
{
    size_t done = 0;
    ERR_clear_error();
    while (done < len) {
        int r = SSL_write(p->ssl, data + done, (int)(len - done));
        if (r <= 0) {
            failure(p, why, whylen, "connection reset");
            return -1;
        }
        done += (size_t)r;
    }
    return 0;
}

int ag_tls_pipe_read(struct ag_tls_pipe *p, char *buf, size_t cap, char *why, size_t whylen)
{
    ERR_clear_error();
    int r = SSL_read(p->ssl, buf, (int)cap);
    if (r > 0)
        return r;
    int e = SSL_get_error(p->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return 0;
    if (e == SSL_ERROR_ZERO_RETURN)
        return AG_TLS_PIPE_EOF;
    failure(p, why, whylen, "connection reset");
    return AG_TLS_PIPE_ERR;
}

void ag_tls_pipe_close_notify(struct ag_tls_pipe *p)
{
    SSL_shutdown(p->ssl);
    ERR_clear_error();
}

/* --- client contexts --------------------------------------------------------- */

struct client_ctx {
    char *cafile; /* NULL: the system store */
    SSL_CTX *ctx;
    uint64_t loaded; /* generation, for replacing the oldest */
};

static struct client_ctx ctxs[AG_TLS_CLIENT_CTX_MAX];
static uint64_t generation;
static uv_mutex_t ctx_mu;
static uv_once_t ctx_once = UV_ONCE_INIT;

static void init_ctx_mu(void)
{
    uv_mutex_init(&ctx_mu);
}

static bool same_file(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static SSL_CTX *build(const char *cafile, char *err, size_t errlen)
{
    char e[256];
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, errlen, "TLS context: %s", ag_tls_error_text(e, sizeof e, "unknown error"));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int ok = cafile ? SSL_CTX_load_verify_file(ctx, cafile) : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        snprintf(err, errlen, "%s: cannot load CA certificates: %s",
                 cafile ? cafile : "system store",
                 ag_tls_error_text(e, sizeof e, "no certificate"));
        SSL_CTX_free(ctx);
        return NULL;
    }
    ERR_clear_error();
    return ctx;
}

/* The slot of cafile, or a free one, or the oldest (ctx_mu held). */
static struct client_ctx *slot(const char *cafile, bool *found)
{
    struct client_ctx *oldest = &ctxs[0];
    for (size_t i = 0; i < AG_TLS_CLIENT_CTX_MAX; i++) {
        if (ctxs[i].ctx && same_file(ctxs[i].cafile, cafile)) {
            *found = true;
            return &ctxs[i];
        }
    }
    *found = false;
    for (size_t i = 0; i < AG_TLS_CLIENT_CTX_MAX; i++) {
        if (!ctxs[i].ctx)
            return &ctxs[i];
        if (ctxs[i].loaded < oldest->loaded)
            oldest = &ctxs[i];
    }
    return oldest;
}

/* Puts ctx (owned) in the slot of cafile; ctx_mu held. -1: no memory. */
static int store(const char *cafile, SSL_CTX *ctx)
{
    bool found;
    struct client_ctx *s = slot(cafile, &found);
    char *name = NULL;
    if (cafile && !found && !(name = strdup(cafile)))
        return -1;
    if (!found) {
        free(s->cafile);
        s->cafile = name;
    }
    SSL_CTX_free(s->ctx); /* open pipes keep theirs by reference */
    s->ctx = ctx;
    s->loaded = ++generation;
    return 0;
}

int ag_tls_client_ctx_load(const char *cafile, char *err, size_t errlen)
{
    SSL_CTX *ctx = build(cafile, err, errlen);
    if (!ctx)
        return -1;
    uv_once(&ctx_once, init_ctx_mu);
    uv_mutex_lock(&ctx_mu);
    int rc = store(cafile, ctx);
    uv_mutex_unlock(&ctx_mu);
    if (rc != 0) {
        SSL_CTX_free(ctx);
        snprintf(err, errlen, "out of memory");
    }
    return rc;
}

SSL_CTX *ag_tls_client_ctx(const char *cafile, char *err, size_t errlen)
{
    uv_once(&ctx_once, init_ctx_mu);
    uv_mutex_lock(&ctx_mu);
    bool found;
    struct client_ctx *s = slot(cafile, &found);
    SSL_CTX *ctx = NULL;
    if (found) {
        ctx = s->ctx;
        SSL_CTX_up_ref(ctx);
    }
    uv_mutex_unlock(&ctx_mu);
    if (ctx)
        return ctx;
    /* Not loaded with the configuration (a unit or a path added since):
     * built here, once. */
    if (ag_tls_client_ctx_load(cafile, err, errlen) != 0)
        return NULL;
    uv_mutex_lock(&ctx_mu);
    s = slot(cafile, &found);
    if (found) {
        ctx = s->ctx;
        SSL_CTX_up_ref(ctx);
    } else {
        snprintf(err, errlen, "TLS context replaced while being made");
    }
    uv_mutex_unlock(&ctx_mu);
    return ctx;
}
