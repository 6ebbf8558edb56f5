/* conn_tls.c - the TLS layers of one connection (see tls.h): the client's
 * on a tls listener, and the parent's on a connection to a "parent ... tls".
 *
 * Both are a tls_pipe (src/proxy/tls_pipe.h): the socket stays libuv's,
 * bytes read go into a memory BIO OpenSSL reads, records OpenSSL produces
 * are taken from the other memory BIO and written with uv_write. A plain
 * connection has no layer (c->tls, c->up->tls NULL) and pays one pointer
 * test per side. */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

#include "authgate/limits.h"
#include "auth.h"
#include "conn.h"
#include "tls.h"
#include "util/log.h"

struct conn_tls {
    struct ag_tls_pipe p; /* SSL and its memory BIOs (tls_pipe.h) */
    bool first;           /* nothing received yet: the first byte tells TLS from HTTP */
    bool pumping;         /* inside conn_tls_pump: a nested call only asks for another round */
    bool again;
    bool notified; /* close_notify queued: nothing more is encrypted */
};

int conn_tls_start(struct conn *c, SSL_CTX *ctx)
{
    struct conn_tls *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    if (ag_tls_pipe_init(&t->p, ctx, true, NULL) != 0) {
        free(t);
        return -1;
    }
    t->first = true;
    c->tls = t;
    return 0;
}

void conn_tls_free(struct conn *c)
{
    if (!c->tls)
        return;
    ag_tls_pipe_free(&c->tls->p);
    free(c->tls);
    c->tls = NULL;
}

size_t conn_tls_backlog(const struct conn *c)
{
    return ag_tls_pipe_backlog(&c->tls->p);
}

bool conn_tls_buffered(const struct conn *c)
{
    return ag_tls_pipe_backlog(&c->tls->p) > 0 || SSL_pending(c->tls->p.ssl) > 0;
}

bool conn_tls_handshaken(const struct conn *c)
{
    return c->tls->p.handshaken;
}

/* Queues what OpenSSL produced (handshake messages, records, alerts). */
static void flush_out(struct conn *c)
{
    char *p;
    size_t n;
    int r = ag_tls_pipe_take(&c->tls->p, &p, &n);
    if (r < 0)
        conn_close(c, "nomem");
    else if (r > 0)
        conn_write_raw_client(c, p, n);
}

/* Plain HTTP on a tls listener: a client configured with http:// for an
 * https:// proxy. Told so in clear, once, then closed. */
static void refuse_plain(struct conn *c)
{
    static const char body[] = "This proxy port speaks TLS: configure the proxy as "
                               "https://host:port (curl --proxy https://...).\n";
    char *r = NULL;
    int n = asprintf(&r,
                     "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     sizeof body - 1, body);
    c->srv->stats.tls_plain_http++;
    c->srv->stats.status_4xx++;
    ag_info("conn=%llu event=tls_refused client=%s reason=plain_http status=400",
            (unsigned long long)c->id, c->peer);
    if (n < 0) {
        conn_close(c, "tls_plain_http");
        return;
    }
    conn_write_raw_client(c, r, (size_t)n);
    conn_close_after_flush(c);
}

/* False when the connection was closed or must wait for more bytes. */
static bool handshake(struct conn *c)
{
    struct conn_tls *t = c->tls;
    char why[200];
    int r = ag_tls_pipe_handshake(&t->p, why, sizeof why);
    flush_out(c);
    if (r == 1) {
        c->srv->stats.tls_handshakes++;
        bool resumed = SSL_session_reused(t->p.ssl);
        if (resumed)
            c->srv->stats.tls_resumed++;
        ag_debug("conn=%llu event=tls_handshake client=%s version=%s cipher=%s resumed=%d",
                 (unsigned long long)c->id, c->peer, SSL_get_version(t->p.ssl),
                 SSL_get_cipher_name(t->p.ssl), resumed);
        /* From here the connection waits for its first request. */
        conn_set_timer(c, ag_auth_wait_timeout(c));
        return true;
    }
    if (r == 0)
        return false;
    c->srv->stats.tls_handshake_failed++;
    ag_info("conn=%llu event=tls_refused client=%s reason=handshake_failed error=\"%s\"",
            (unsigned long long)c->id, c->peer, why);
    /* The alert OpenSSL queued goes out first. */
    conn_close_after_flush(c);
    return false;
}

void conn_tls_pump(struct conn *c)
{
    struct conn_tls *t = c->tls;
    if (t->pumping) {
        t->again = true;
        return;
    }
    t->pumping = true;
    do {
        t->again = false;
        if (conn_ending(c) || (!t->p.handshaken && !handshake(c)))
            break;
        for (;;) {
            if (conn_ending(c))
                break;
            size_t room = AG_READ_CHUNK;
            if (c->state == CONN_TUNNEL) {
                if (c->tun_client_eof || !c->up || c->up->out_pending >= AG_WRITE_HIGH_WATER)
                    break;
            } else {
                if (c->eof)
                    break;
                if (AG_INBUF_MAX - c->inbuf.len < room)
                    room = AG_INBUF_MAX - c->inbuf.len;
                if (room == 0)
                    break;
            }
            char *p = malloc(room);
            if (!p) {
                conn_close(c, "nomem");
                break;
            }
            char why[200];
            int r = ag_tls_pipe_read(&t->p, p, room, why, sizeof why);
            if (r > 0) {
                conn_client_bytes(c, p, (size_t)r); /* wipes what it parses */
                free(p);
                continue;
            }
            free(p);
            if (r == 0)
                break;
            flush_out(c);
            if (r == AG_TLS_PIPE_EOF) {
                /* close_notify: the client's end of stream. */
                conn_client_end(c, UV_EOF);
            } else {
                c->srv->stats.tls_errors++;
                ag_info("conn=%llu event=tls_error client=%s error=\"%s\"",
                        (unsigned long long)c->id, c->peer, why);
                conn_close(c, "tls_error");
            }
            break;
        }
        if (!conn_ending(c))
            flush_out(c); /* what reading produced (TLS 1.3 tickets, key updates) */
    } while (t->again && !conn_ending(c));
    t->pumping = false;
}

void conn_tls_input(struct conn *c, char *buf, size_t n)
{
    struct conn_tls *t = c->tls;
    if (t->first) {
        t->first = false;
        /* A TLS connection starts with a handshake record (22); a request
         * line starts with a method's letter. */
        if ((unsigned char)buf[0] != 22 && buf[0] >= 'A' && buf[0] <= 'Z') {
            ag_wipe(buf, n);
            refuse_plain(c);
            return;
        }
    }
    int w = ag_tls_pipe_feed(&t->p, buf, n);
    ag_wipe(buf, n);
    if (w != 0) {
        conn_close(c, "nomem");
        return;
    }
    conn_tls_pump(c);
}

void conn_tls_write(struct conn *c, char *data, size_t len)
{
    struct conn_tls *t = c->tls;
    if (!t->p.handshaken || t->notified) {
        ag_wipe(data, len);
        return;
    }
    char why[200];
    if (ag_tls_pipe_write(&t->p, data, len, why, sizeof why) != 0) {
        c->srv->stats.tls_errors++;
        ag_info("conn=%llu event=tls_error client=%s error=\"%s\"", (unsigned long long)c->id,
                c->peer, why);
        ag_wipe(data, len);
        conn_close(c, "tls_write_error");
        return;
    }
    ag_wipe(data, len); /* plaintext may carry tokens or identities */
    flush_out(c);
}

void conn_tls_close_notify(struct conn *c)
{
    struct conn_tls *t = c->tls;
    if (!t || !t->p.handshaken || t->notified)
        return;
    t->notified = true;
    ag_tls_pipe_close_notify(&t->p);
    flush_out(c);
}

size_t conn_tls_end_point(const struct conn *c, uint8_t out[AG_TLS_CB_MAX])
{
    if (!c->tls)
        return 0;
    X509 *x = SSL_get_certificate(c->tls->p.ssl);
    if (!x)
        return 0;
    /* RFC 5929 §4.1: the certificate's signature hash, but SHA-256 when
     * that is MD5 or SHA-1 (or none: Ed25519). */
    int md_nid = NID_undef, pk_nid = NID_undef;
    const EVP_MD *md = NULL;
    if (OBJ_find_sigid_algs(X509_get_signature_nid(x), &md_nid, &pk_nid) && md_nid != NID_md5 &&
        md_nid != NID_sha1 && md_nid != NID_undef)
        md = EVP_get_digestbynid(md_nid);
    if (!md)
        md = EVP_sha256();
    unsigned int n = 0;
    if (X509_digest(x, md, out, &n) != 1 || n > AG_TLS_CB_MAX)
        return 0;
    return n;
}

size_t conn_tls_cb_app_data(const struct conn *c, uint8_t out[AG_TLS_CB_APP_MAX])
{
    static const char prefix[] = "tls-server-end-point:";
    uint8_t h[AG_TLS_CB_MAX];
    size_t n = conn_tls_end_point(c, h);
    if (n == 0)
        return 0;
    memcpy(out, prefix, sizeof prefix - 1);
    memcpy(out + sizeof prefix - 1, h, n);
    return sizeof prefix - 1 + n;
}

int conn_tls_cb_ntlm(const struct conn *c, uint8_t out[16])
{
    uint8_t app[AG_TLS_CB_APP_MAX];
    size_t n = conn_tls_cb_app_data(c, app);
    if (n == 0)
        return -1;
    /* initiator_addrtype, initiator_address.length, acceptor_addrtype,
     * acceptor_address.length (all 0), application_data.length: five
     * little-endian 32-bit words, then the application data. */
    uint8_t hdr[20] = {0};
    hdr[16] = (uint8_t)n;
    hdr[17] = (uint8_t)(n >> 8);
    unsigned int len = 0;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    int ok = m && EVP_DigestInit_ex(m, EVP_md5(), NULL) == 1 &&
             EVP_DigestUpdate(m, hdr, sizeof hdr) == 1 && EVP_DigestUpdate(m, app, n) == 1 &&
             EVP_DigestFinal_ex(m, out, &len) == 1 && len == 16;
    EVP_MD_CTX_free(m);
    return ok ? 0 : -1;
}

/* --- the parent side ("parent ... tls") ----------------------------------- */

/* Queues the records the upstream's layer produced. */
static void up_flush(struct conn *c, struct ag_upstream *up)
{
    char *p;
    size_t n;
    int r = ag_tls_pipe_take(up->tls, &p, &n);
    if (r < 0)
        conn_close(c, "nomem");
    else if (r > 0)
        conn_write_raw_up(c, p, n);
}

int conn_up_tls_start(struct conn *c, const char *host, const char *cafile, char *why,
                      size_t whylen)
{
    struct ag_upstream *up = c->up;
    SSL_CTX *ctx = ag_tls_client_ctx(cafile, why, whylen);
    if (!ctx)
        return -1;
    struct ag_tls_pipe *t = calloc(1, sizeof *t);
    int rc = t ? ag_tls_pipe_init(t, ctx, false, host) : -1;
    SSL_CTX_free(ctx); /* the SSL holds its own reference */
    if (rc != 0) {
        free(t);
        snprintf(why, whylen, "cannot start TLS (out of memory, or host refused)");
        return -1;
    }
    up->tls = t; /* freed with up */
    /* The ClientHello. */
    if (ag_tls_pipe_handshake(t, why, whylen) < 0)
        return -1;
    up_flush(c, up);
    return 0;
}

/* The layer is done with (the upstream went away, or the connection). */
static bool up_gone(struct conn *c, struct ag_upstream *up)
{
    return conn_ending(c) || c->up != up || up->closing;
}

void conn_up_tls_input(struct conn *c, struct ag_upstream *up, char *buf, size_t n)
{
    int w = ag_tls_pipe_feed(up->tls, buf, n); /* ciphertext, borrowed */
    if (w != 0) {
        conn_close(c, "nomem");
        return;
    }
    char why[200];
    if (!up->tls->handshaken) {
        int r = ag_tls_pipe_handshake(up->tls, why, sizeof why);
        up_flush(c, up);
        if (r == 0 || up_gone(c, up))
            return;
        if (r < 0) {
            exchange_up_tls_failed(c, why);
            return;
        }
        exchange_up_tls_ready(c);
        if (up_gone(c, up))
            return;
    }
    /* Everything fed is decrypted now: what is left is at most a partial
     * record, so the socket's own backpressure (reads stop while the
     * client side is full) bounds the layer. */
    for (;;) {
        char *p = malloc(AG_READ_CHUNK);
        if (!p) {
            conn_close(c, "nomem");
            return;
        }
        int r = ag_tls_pipe_read(up->tls, p, AG_READ_CHUNK, why, sizeof why);
        if (r > 0) {
            conn_up_bytes(c, p, (size_t)r);
            free(p);
            if (up_gone(c, up))
                return;
            continue;
        }
        free(p);
        if (r == 0)
            break;
        up_flush(c, up);
        if (up_gone(c, up))
            return;
        if (r == AG_TLS_PIPE_ERR) {
            c->srv->stats.parent_tls_failed++;
            ag_info("conn=%llu event=parent_tls_error address=%s:%u error=\"%s\"",
                    (unsigned long long)c->id, up->host, (unsigned)up->port, why);
        }
        /* close_notify is the parent's end of stream; an error ends it too. */
        conn_up_end(c, r == AG_TLS_PIPE_EOF ? UV_EOF : UV_EPROTO);
        return;
    }
    up_flush(c, up); /* what reading produced (key update answers) */
}

void conn_up_tls_write(struct conn *c, char *data, size_t len)
{
    struct ag_upstream *up = c->up;
    char why[200];
    int rc = up->tls->handshaken ? ag_tls_pipe_write(up->tls, data, len, why, sizeof why) : -1;
    if (!up->tls->handshaken)
        snprintf(why, sizeof why, "data before the handshake completed");
    /* Plaintext to a parent carries the gateway's Proxy-Authorization. */
    ag_wipe(data, len);
    if (rc != 0) {
        c->srv->stats.parent_tls_failed++;
        ag_info("conn=%llu event=parent_tls_error address=%s:%u error=\"%s\"",
                (unsigned long long)c->id, up->host, (unsigned)up->port, why);
        conn_close(c, "parent_tls_write_error");
        return;
    }
    up_flush(c, up);
}

void conn_up_tls_close_notify(struct conn *c)
{
    struct ag_upstream *up = c->up;
    if (!up || !up->tls || !up->tls->handshaken)
        return;
    ag_tls_pipe_close_notify(up->tls);
    up_flush(c, up);
}
