/* conn_tls.c - the TLS layer of one connection (see tls.h).
 *
 * The socket stays libuv's: bytes read go into a memory BIO OpenSSL reads,
 * records OpenSSL produces are taken from the other memory BIO and written
 * with uv_write. A plain connection has no layer (c->tls NULL) and pays one
 * pointer test. */
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
    SSL *ssl;
    BIO *in;         /* socket -> OpenSSL (owned by ssl) */
    BIO *out;        /* OpenSSL -> socket (owned by ssl) */
    bool first;      /* nothing received yet: the first byte tells TLS from HTTP */
    bool handshaken; /* the handshake completed: plaintext flows */
    bool pumping;    /* inside conn_tls_pump: a nested call only asks for another round */
    bool again;
    bool notified; /* close_notify queued: nothing more is encrypted */
};

int conn_tls_start(struct conn *c, SSL_CTX *ctx)
{
    struct conn_tls *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    t->ssl = SSL_new(ctx);
    t->in = BIO_new(BIO_s_mem());
    t->out = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->in || !t->out) {
        SSL_free(t->ssl);
        BIO_free(t->in);
        BIO_free(t->out);
        free(t);
        return -1;
    }
    /* An empty input BIO means "more to come", not end of stream. */
    BIO_set_mem_eof_return(t->in, -1);
    BIO_set_mem_eof_return(t->out, -1);
    SSL_set_bio(t->ssl, t->in, t->out);
    SSL_set_accept_state(t->ssl);
    t->first = true;
    c->tls = t;
    return 0;
}

void conn_tls_free(struct conn *c)
{
    if (!c->tls)
        return;
    SSL_free(c->tls->ssl); /* and both BIOs */
    free(c->tls);
    c->tls = NULL;
}

size_t conn_tls_backlog(const struct conn *c)
{
    return BIO_ctrl_pending(c->tls->in);
}

bool conn_tls_buffered(const struct conn *c)
{
    return BIO_ctrl_pending(c->tls->in) > 0 || SSL_pending(c->tls->ssl) > 0;
}

bool conn_tls_handshaken(const struct conn *c)
{
    return c->tls->handshaken;
}

/* Queues what OpenSSL produced (handshake messages, records, alerts). */
static void flush_out(struct conn *c)
{
    size_t n = BIO_ctrl_pending(c->tls->out);
    if (n == 0)
        return;
    char *p = malloc(n);
    if (!p) {
        conn_close(c, "nomem");
        return;
    }
    int got = BIO_read(c->tls->out, p, (int)n);
    if (got <= 0) {
        free(p);
        return;
    }
    conn_write_raw_client(c, p, (size_t)got);
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
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    flush_out(c);
    if (r == 1) {
        t->handshaken = true;
        c->srv->stats.tls_handshakes++;
        bool resumed = SSL_session_reused(t->ssl);
        if (resumed)
            c->srv->stats.tls_resumed++;
        ag_debug("conn=%llu event=tls_handshake client=%s version=%s cipher=%s resumed=%d",
                 (unsigned long long)c->id, c->peer, SSL_get_version(t->ssl),
                 SSL_get_cipher_name(t->ssl), resumed);
        /* From here the connection waits for its first request. */
        conn_set_timer(c, ag_auth_wait_timeout(c));
        return true;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return false;
    char why[200];
    c->srv->stats.tls_handshake_failed++;
    ag_info("conn=%llu event=tls_refused client=%s reason=handshake_failed error=\"%s\"",
            (unsigned long long)c->id, c->peer,
            ag_tls_error_text(why, sizeof why, "connection reset"));
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
        if (conn_ending(c) || (!t->handshaken && !handshake(c)))
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
            ERR_clear_error();
            int r = SSL_read(t->ssl, p, (int)room);
            if (r > 0) {
                conn_client_bytes(c, p, (size_t)r); /* wipes what it parses */
                free(p);
                continue;
            }
            free(p);
            int e = SSL_get_error(t->ssl, r);
            if (e == SSL_ERROR_WANT_READ)
                break;
            flush_out(c);
            if (e == SSL_ERROR_ZERO_RETURN) {
                /* close_notify: the client's end of stream. */
                conn_client_end(c, UV_EOF);
            } else {
                char why[200];
                c->srv->stats.tls_errors++;
                ag_info("conn=%llu event=tls_error client=%s error=\"%s\"",
                        (unsigned long long)c->id, c->peer,
                        ag_tls_error_text(why, sizeof why, "connection reset"));
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
    int w = BIO_write(t->in, buf, (int)n);
    ag_wipe(buf, n);
    if (w != (int)n) {
        conn_close(c, "nomem");
        return;
    }
    conn_tls_pump(c);
}

void conn_tls_write(struct conn *c, char *data, size_t len)
{
    struct conn_tls *t = c->tls;
    if (!t->handshaken || t->notified) {
        ag_wipe(data, len);
        return;
    }
    size_t done = 0;
    while (done < len) {
        /* A memory BIO takes all: SSL_write never wants to wait. */
        int r = SSL_write(t->ssl, data + done, (int)(len - done));
        if (r <= 0) {
            char why[200];
            c->srv->stats.tls_errors++;
            ag_info("conn=%llu event=tls_error client=%s error=\"%s\"", (unsigned long long)c->id,
                    c->peer, ag_tls_error_text(why, sizeof why, "connection reset"));
            ag_wipe(data, len);
            conn_close(c, "tls_write_error");
            return;
        }
        done += (size_t)r;
    }
    ag_wipe(data, len); /* plaintext may carry tokens or identities */
    flush_out(c);
}

void conn_tls_close_notify(struct conn *c)
{
    struct conn_tls *t = c->tls;
    if (!t || !t->handshaken || t->notified)
        return;
    t->notified = true;
    SSL_shutdown(t->ssl);
    ERR_clear_error();
    flush_out(c);
}

size_t conn_tls_end_point(const struct conn *c, uint8_t out[AG_TLS_CB_MAX])
{
    if (!c->tls)
        return 0;
    X509 *x = SSL_get_certificate(c->tls->ssl);
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
