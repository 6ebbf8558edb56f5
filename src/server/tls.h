/* tls.h - the TLS side of "listen ... tls" (private to src/server).
 *
 * Glossary: context = the OpenSSL SSL_CTX built from tls_certificate and
 * tls_key, shared read-only by every loop (each loop holds a reference,
 * taken in ag_server_share; every SSL made from it holds one more, so a
 * reload swaps the context without touching open connections); TLS layer =
 * the per-connection transform between the socket and the HTTP code,
 * driven through memory BIOs (the loop reads and writes the socket, OpenSSL
 * never touches it), present only on connections of a tls listener.
 *
 * Loop thread only, except the context functions (main thread: start-up,
 * reload, authgate -t).
 */
#ifndef AG_SERVER_TLS_H
#define AG_SERVER_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/tls_pipe.h" /* the transform both sides share, ag_tls_error_text */

struct conn;
struct ag_config;
struct ssl_ctx_st;

/* --- the context (tls.c) -------------------------------------------------- */

/* (Re)loads the client contexts of cfg's tls parents (tls_pipe.h), then
 * builds the context of cfg into *out (NULL when want is false). TLS 1.2
 * and 1.3 only, session resumption by tickets and by the server's session
 * cache; an expired (or not yet valid) certificate, a key that does not
 * match it or an unreadable file is an error. prev (may be NULL): the
 * context being replaced, whose ticket keys the new one takes, so that
 * clients resume across a reload. 0, or -1 with err filled. */
int ag_tls_ctx_load(const struct ag_config *cfg, bool want, struct ssl_ctx_st *prev,
                    struct ssl_ctx_st **out, char *err, size_t errlen);
/* Another reference to ctx (NULL passes through). */
struct ssl_ctx_st *ag_tls_ctx_ref(struct ssl_ctx_st *ctx);
void ag_tls_ctx_unref(struct ssl_ctx_st *ctx);
/* Whether any listen line of cfg has tls. */
bool ag_tls_wanted(const struct ag_config *cfg);

/* --- the per-connection layer (conn_tls.c) ------------------------------- */

/* Gives c its TLS layer from ctx. 0, or -1 (no memory: the caller closes). */
int conn_tls_start(struct conn *c, struct ssl_ctx_st *ctx);
/* n bytes read from the socket (buf borrowed: wiped, the caller frees it)
 * go to the layer, which answers the handshake and hands the plaintext on. */
void conn_tls_input(struct conn *c, char *buf, size_t n);
/* Decrypts what is buffered while the plaintext side has room (called
 * when it drained). */
void conn_tls_pump(struct conn *c);
/* Encrypts data (borrowed: wiped here, the caller frees it) and queues the
 * records. */
void conn_tls_write(struct conn *c, char *data, size_t len);
/* The close_notify alert, queued before the socket's own shutdown. */
void conn_tls_close_notify(struct conn *c);
/* Ciphertext received and not yet decrypted. */
size_t conn_tls_backlog(const struct conn *c);
/* Bytes wait inside the layer (ciphertext, or a record's plaintext not yet
 * taken): conn_tls_pump has something to do once there is room. */
bool conn_tls_buffered(const struct conn *c);
/* The handshake completed. */
bool conn_tls_handshaken(const struct conn *c);
void conn_tls_free(struct conn *c);
/* RFC 5929 tls-server-end-point of this connection's certificate: the
 * hash (with the certificate signature's hash, SHA-256 for MD5 and SHA-1)
 * into out (AG_TLS_CB_MAX bytes). Its length, or 0 when unknown. */
#define AG_TLS_CB_MAX 64
size_t conn_tls_end_point(const struct conn *c, uint8_t out[AG_TLS_CB_MAX]);
/* The channel bindings' application data: "tls-server-end-point:" and the
 * hash (RFC 5929 §4). Its length, or 0 (not TLS, no certificate). */
#define AG_TLS_CB_APP_MAX (sizeof "tls-server-end-point:" - 1 + AG_TLS_CB_MAX)
size_t conn_tls_cb_app_data(const struct conn *c, uint8_t out[AG_TLS_CB_APP_MAX]);
/* NTLM's MsvAvChannelBindings for this connection: MD5 of the
 * gss_channel_bindings_struct (addresses empty, the application data
 * above) as MS-NLMP 2.2.2.1 serialises it. 0, or -1 (not TLS). */
int conn_tls_cb_ntlm(const struct conn *c, uint8_t out[16]);

/* --- the parent side: "parent ... tls" (conn_tls.c) ---------------------- */

/* c->up just connected to a tls parent: gives it its TLS layer, verifying
 * host (SNI and the certificate's name) against cafile (NULL: the system
 * store), and sends the ClientHello. 0 (exchange_up_tls_ready or
 * exchange_up_tls_failed follows from the parent's bytes), or -1 with why
 * filled (the caller treats the parent as failed). */
int conn_up_tls_start(struct conn *c, const char *host, const char *cafile, char *why,
                      size_t whylen);
/* n bytes read from the parent (buf borrowed: the caller frees it): the handshake,
 * then the plaintext through conn_up_bytes / conn_up_end. */
struct ag_upstream;
void conn_up_tls_input(struct conn *c, struct ag_upstream *up, char *buf, size_t n);
/* Encrypts data (borrowed: wiped here, the caller frees it) to c->up. */
void conn_up_tls_write(struct conn *c, char *data, size_t len);
/* close_notify to the parent (a tunnel's client side ended). */
void conn_up_tls_close_notify(struct conn *c);

#endif
