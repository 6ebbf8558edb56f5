/* tls.c - the TLS context of tls listeners (see tls.h). */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "tls.h"

bool ag_tls_wanted(const struct ag_config *cfg)
{
    for (size_t i = 0; i < cfg->n_listen; i++)
        if (cfg->listen[i].tls)
            return true;
    return false;
}

/* The contexts verifying "parent ... tls" (tls_pipe.c keeps them): re-read
 * with every configuration, so a bad CA file refuses the load (start-up,
 * authgate -t, a reload) instead of the first request through it. */
static int load_parent_ctxs(const struct ag_config *cfg, char *err, size_t errlen)
{
    char e[300];
    for (size_t i = 0; i < cfg->n_parents; i++) {
        const struct ag_parent *p = &cfg->parents[i];
        if (p->tls &&
            ag_tls_client_ctx_load(p->tls_ca ? p->tls_ca : cfg->parent_tls_ca, e, sizeof e) != 0) {
            snprintf(err, errlen, "parent %s tls: %s", p->name, e);
            return -1;
        }
    }
    return 0;
}

/* ALPN: the proxy speaks HTTP/1.1; a client that offers only h2 gets no
 * ALPN answer (and HTTP/1.1 is then what RFC 7301 leaves it with). */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char h11[] = "\x08http/1.1";
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, h11, sizeof h11 - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* Refuses a certificate outside its validity period: clients would fail
 * every handshake, which is better said once at start-up. */
static int check_validity(SSL_CTX *ctx, const char *file, char *err, size_t errlen)
{
    X509 *x = SSL_CTX_get0_certificate(ctx);
    if (!x) {
        snprintf(err, errlen, "%s: no certificate", file);
        return -1;
    }
    const ASN1_TIME *na = X509_get0_notAfter(x), *nb = X509_get0_notBefore(x);
    const char *what = X509_cmp_current_time(na) <= 0  ? "expired on"
                       : X509_cmp_current_time(nb) > 0 ? "not valid before"
                                                       : NULL;
    if (!what)
        return 0;
    char when[64] = "?";
    BIO *b = BIO_new(BIO_s_mem());
    if (b) {
        ASN1_TIME_print(b, X509_cmp_current_time(na) <= 0 ? na : nb);
        int n = BIO_read(b, when, sizeof when - 1);
        when[n > 0 ? n : 0] = '\0';
        BIO_free(b);
    }
    snprintf(err, errlen, "%s: the certificate is %s %s", file, what, when);
    return -1;
}

int ag_tls_ctx_load(const struct ag_config *cfg, bool want, SSL_CTX *prev, SSL_CTX **out, char *err,
                    size_t errlen)
{
    char e[256];
    *out = NULL;
    if (load_parent_ctxs(cfg, err, errlen) != 0)
        return -1;
    if (!want)
        return 0;
    if (!cfg->tls_certificate || !cfg->tls_key) {
        snprintf(err, errlen, "tls listeners need tls_certificate and tls_key");
        return -1;
    }
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errlen, "TLS context: %s", ag_tls_error_text(e, sizeof e, "unknown error"));
        return -1;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Renegotiation only helps an attacker (and our memory BIOs would have
     * to serve it mid-request); compression is CRIME. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* An idle keep-alive connection gives its record buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* Resumption: tickets (stateless, the keys are the context's, so every
     * loop honours them) and the server cache for TLS 1.2 session ids
     * (OpenSSL locks it: loops share it safely). */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"authgate", 8);
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_certificate) != 1) {
        snprintf(err, errlen, "%s: cannot use the certificate: %s", cfg->tls_certificate,
                 ag_tls_error_text(e, sizeof e, "unknown error"));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1) {
        if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
            snprintf(err, errlen, "%s does not match %s (%s)", cfg->tls_key, cfg->tls_certificate,
                     ag_tls_error_text(e, sizeof e, "unknown error"));
        else
            snprintf(err, errlen, "%s: cannot use the key: %s", cfg->tls_key,
                     ag_tls_error_text(e, sizeof e, "unknown error"));
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "%s does not match %s: %s", cfg->tls_key, cfg->tls_certificate,
                 ag_tls_error_text(e, sizeof e, "unknown error"));
        goto fail;
    }
    if (check_validity(ctx, cfg->tls_certificate, err, errlen) != 0)
        goto fail;
    if (prev) {
        /* The ticket keys carry over a reload: a client holding a ticket
         * from before resumes on the new context. */
        unsigned char keys[80];
        if (SSL_CTX_get_tlsext_ticket_keys(prev, keys, sizeof keys) == 1)
            SSL_CTX_set_tlsext_ticket_keys(ctx, keys, sizeof keys);
        OPENSSL_cleanse(keys, sizeof keys);
    }
    *out = ctx;
    return 0;
fail:
    SSL_CTX_free(ctx);
    return -1;
}

SSL_CTX *ag_tls_ctx_ref(SSL_CTX *ctx)
{
    if (ctx)
        SSL_CTX_up_ref(ctx);
    return ctx;
}

void ag_tls_ctx_unref(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}
