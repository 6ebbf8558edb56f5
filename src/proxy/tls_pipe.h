/* tls_pipe.h - one TLS transform through memory BIOs, for either side.
 *
 * Glossary: pipe = an SSL object between two memory BIOs: ciphertext read
 * from a socket is fed in, records OpenSSL produces (handshake messages,
 * application data, alerts) are taken out and written by the caller with
 * uv_write; OpenSSL never touches a socket, so the loop never blocks on it.
 * The client listener side (src/server/conn_tls.c, accept state) and the
 * parent side ("parent ... tls", connect state) both use it. Client
 * context = the SSL_CTX that verifies a parent: one per CA file (or the
 * system store), rebuilt when the configuration is (re)loaded, shared by
 * every loop (SSL_CTX is thread-safe for SSL_new; each pipe holds a
 * reference).
 *
 * Pipe functions: loop thread only. Context functions: any thread.
 */
#ifndef AG_PROXY_TLS_PIPE_H
#define AG_PROXY_TLS_PIPE_H

#include <stdbool.h>
#include <stddef.h>

struct ssl_st;
struct ssl_ctx_st;
struct bio_st;

struct ag_tls_pipe {
    struct ssl_st *ssl;
    struct bio_st *in;  /* socket -> OpenSSL (owned by ssl) */
    struct bio_st *out; /* OpenSSL -> socket (owned by ssl) */
    bool handshaken;    /* the handshake completed: plaintext flows */
};

/* Makes p from ctx, accepting (server) or connecting. For a connecting
 * pipe, host (not NULL) is sent as SNI when it is a name and is what the
 * peer's certificate must name (a DNS name, or an IP address).
 * 0, or -1 (no memory, or a host OpenSSL refuses: p is then empty). */
int ag_tls_pipe_init(struct ag_tls_pipe *p, struct ssl_ctx_st *ctx, bool server, const char *host);
/* Frees the SSL and both BIOs (an empty p passes). */
void ag_tls_pipe_free(struct ag_tls_pipe *p);
/* Ciphertext read from the socket. 0, or -1 (no memory). */
int ag_tls_pipe_feed(struct ag_tls_pipe *p, const char *buf, size_t n);
/* Ciphertext buffered and not yet decrypted. */
size_t ag_tls_pipe_backlog(const struct ag_tls_pipe *p);
/* The records waiting for the socket into *out (malloc'd, caller owns):
 * 1 with *out and *n set, 0 when there is none, -1 (no memory). */
int ag_tls_pipe_take(struct ag_tls_pipe *p, char **out, size_t *n);
/* One handshake step: 1 complete (p->handshaken set), 0 more bytes
 * needed, -1 failed (the error in why, an alert waits in the output). */
int ag_tls_pipe_handshake(struct ag_tls_pipe *p, char *why, size_t whylen);
/* Encrypts len bytes of plaintext into records (a memory BIO takes all).
 * 0, or -1 (why filled). */
int ag_tls_pipe_write(struct ag_tls_pipe *p, const char *data, size_t len, char *why,
                      size_t whylen);
/* Decrypts up to cap bytes into buf: > 0 bytes, 0 more ciphertext needed,
 * AG_TLS_PIPE_EOF the peer's close_notify, AG_TLS_PIPE_ERR failed (why). */
#define AG_TLS_PIPE_EOF (-1)
#define AG_TLS_PIPE_ERR (-2)
int ag_tls_pipe_read(struct ag_tls_pipe *p, char *buf, size_t cap, char *why, size_t whylen);
/* Queues close_notify (taken with ag_tls_pipe_take). */
void ag_tls_pipe_close_notify(struct ag_tls_pipe *p);

/* The newest OpenSSL error of this thread as text into buf (none when the
 * queue is empty); the queue is then cleared. Returns buf. */
const char *ag_tls_error_text(char *buf, size_t len, const char *none);

/* --- client contexts (verifying parents) ------------------------------------ */

/* (Re)builds the client context for cafile (NULL: the system store): TLS
 * 1.2+, peer verification required. Called when a configuration is loaded,
 * so a SIGHUP re-reads the CA file. 0, or -1 with err filled (unreadable
 * file, no certificate in it, too many distinct CA files). */
int ag_tls_client_ctx_load(const char *cafile, char *err, size_t errlen);
/* A reference to the context of cafile (NULL: the system store), built on
 * first use when no load made it; NULL with err filled when it cannot be.
 * The caller drops it with SSL_CTX_free once its SSL is made. */
struct ssl_ctx_st *ag_tls_client_ctx(const char *cafile, char *err, size_t errlen);

#endif
