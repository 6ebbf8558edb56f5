/* negotiate.h - the Kerberos acceptor (RFC 4559 over MIT GSS-API).
 *
 * Glossary: acceptor = the proxy's GSS credentials from its keytab, acquired
 * once per configuration (and again on reload), restricted to one principal
 * (default HTTP@<proxy_host>) unless "any" is configured, and with SPNEGO
 * limited to krb5 so an installed gss-ntlmssp can never be negotiated;
 * step = one gss_accept_sec_context call: it completes, asks for another
 * round (CONTINUE_NEEDED), or fails with a formatted "major (minor)" text
 * and a failure class read from the Kerberos minor code (never the text).
 *
 * The acceptor is refcounted: jobs keep the one they started with across a
 * reload. A context (struct ag_gss_ctx) is owned by the connection's
 * session row between rounds and moved into the job for a step. Pure; the
 * *_blocking step runs on pool threads, everything else on the loop.
 */
#ifndef AG_AUTH_NEGOTIATE_H
#define AG_AUTH_NEGOTIATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "identity.h"

struct ag_gss_acceptor;
struct ag_gss_ctx;

enum ag_gss_name_format {
    AG_GSS_NAME_KEEP = 0,  /* alice@REALM */
    AG_GSS_NAME_STRIP,     /* alice (domain = REALM) */
    AG_GSS_NAME_BACKSLASH, /* REALM\alice (domain = REALM) */
};

/* Acquires acceptor credentials. keytab NULL = KRB5_KTNAME or the default;
 * name NULL/"" = any principal of the keytab, "svc@host" = host-based
 * service, anything else a Kerberos principal. NULL and err filled when the
 * keytab is missing/unreadable or holds no key for the name. */
struct ag_gss_acceptor *ag_gss_acceptor_new(const char *keytab, const char *name, char *err,
                                            size_t errlen);
struct ag_gss_acceptor *ag_gss_acceptor_ref(struct ag_gss_acceptor *a);
void ag_gss_acceptor_unref(struct ag_gss_acceptor *a);
/* The acceptor name for logs ("HTTP@proxy.example" or "any"). */
const char *ag_gss_acceptor_name(const struct ag_gss_acceptor *a);

/* Cheap shape check before GSS sees a token: a GSS initial token
 * ([APPLICATION 0], 0x60) or an SPNEGO response (0xa1), with a DER length
 * that matches the token. 0 or AG_EINVAL. */
int ag_gss_token_precheck(const uint8_t *tok, size_t len);
/* The token after "Negotiate " (b64, len bytes) decoded into a malloc'd
 * buffer of *cap bytes (wipe them before free), or NULL when it is not
 * base64 or fails the precheck: never an empty or malformed token to GSS.
 * Tokens up to the header limit (large PACs). */
uint8_t *ag_gss_token_decode(const char *b64, size_t len, size_t *cap, size_t *outlen);

enum ag_gss_status {
    AG_GSS_DONE = 0, /* context established: principal is set */
    AG_GSS_CONTINUE, /* CONTINUE_NEEDED: send out, keep the context */
    AG_GSS_FAILED,   /* error is set, fail tells the class */
};

/* Why a step failed, from the krb5 minor status (MIT error tables). */
enum ag_gss_fail {
    AG_GSS_FAIL_OTHER = 0, /* anything not below (bad token, integrity, ...) */
    AG_GSS_FAIL_REPLAY,    /* KRB5KRB_AP_ERR_REPEAT: the replay cache saw it */
    AG_GSS_FAIL_SKEW,      /* KRB5KRB_AP_ERR_SKEW: clocks too far apart */
    AG_GSS_FAIL_EXPIRED,   /* KRB5KRB_AP_ERR_TKT_EXPIRED */
    AG_GSS_FAIL_KEY,       /* no key for the ticket: BADKEYVER, KT_NOTFOUND, KT_KVNONOTFOUND */
    AG_GSS_FAIL_REFUSED,   /* completed, but not Kerberos 5 or anonymous: policy */
    AG_GSS_FAIL_BINDINGS,  /* GSS_S_BAD_BINDINGS: bound to another channel than ours */
};

struct ag_gss_step {
    enum ag_gss_status status;
    enum ag_gss_fail fail; /* AG_GSS_FAILED only */
    uint8_t *out;          /* output token (owned), may be NULL */
    size_t outlen;
    bool channel_bound;  /* on completion: the client bound the token to the channel
                            bindings given (GSS_C_CHANNEL_BOUND_FLAG, MIT >= 1.19) */
    char principal[512]; /* client principal on completion */
    char error[512];     /* "major text (minor text)" on failure */
};

/* One accept step. *ctx is the context of this handshake (NULL at first; on
 * continue it holds the context for the next round; on completion or failure
 * it is released and set to NULL). cb (cblen bytes, NULL for none): the
 * application data of the channel bindings (RFC 5929 "tls-server-end-point:"
 * and the hash); MIT then refuses a token bound to other bindings
 * (AG_GSS_FAIL_BINDINGS) and takes an unbound one (channel_bound false). */
void ag_gss_accept_blocking(struct ag_gss_acceptor *a, struct ag_gss_ctx **ctx, const uint8_t *in,
                            size_t inlen, const uint8_t *cb, size_t cblen, struct ag_gss_step *out);
void ag_gss_step_clear(struct ag_gss_step *s);

/* The gateway as a Kerberos client (a parent proxy asks it for Negotiate,
 * as Squid's cache_peer login=NEGOTIATE): credentials from client_keytab
 * (NULL = KRB5_CLIENT_KTNAME or MIT's default client keytab), the first
 * principal in it, tickets kept in a process-wide memory ccache; one SPNEGO
 * (krb5 only) initial token for target ("HTTP@host" host-based, or a
 * principal "HTTP/host@REALM"). May talk to the KDC: pool threads only.
 * 0 and *field = "Proxy-Authorization: Negotiate <base64>\r\n" (owned,
 * wipe before free), or AG_EBACKEND with the reason in err. */
int ag_gss_initiate_blocking(const char *client_keytab, const char *target, char **field, char *err,
                             size_t errlen);
/* Frees a context (void * for the session row's mech slot). */
void ag_gss_ctx_free(void *ctx);

/* Maps "user@REALM" to an identity. realms: comma-separated allow-list or
 * NULL for any. AG_EUNSUPP when the realm is not allowed, AG_EINVAL for a
 * name without a realm or with control characters. */
int ag_gss_map_name(const char *principal, enum ag_gss_name_format fmt, const char *realms,
                    struct ag_identity *out);

#endif
