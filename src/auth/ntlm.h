/* ntlm.h - the server side of one NTLM handshake (MS-NLMP 3.2.5 / 3.3.2).
 *
 * Glossary: state = what a connection keeps between the CHALLENGE it was
 * sent and the AUTHENTICATE it answers with: the exact NEGOTIATE and
 * CHALLENGE bytes (for the MIC), the 8-byte server challenge and the flags
 * sent; check = the cheap validations that need no secret (run on the loop:
 * malformed or refused messages never cost a job); verify = the NTProofStr
 * or winbind call and the MIC (a *_blocking job on a pool thread).
 *
 * The state is owned by the connection's session row and consumed by the
 * first AUTHENTICATE whatever its outcome (single use). Pure: no libuv;
 * ag_ntlm_verify_blocking may run on any thread with its own job.
 */
#ifndef AG_AUTH_NTLM_H
#define AG_AUTH_NTLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "authgate/limits.h"
#include "identity.h"
#include "ntlm_wire.h"
#include "userfile.h"

/* The MsvAvTargetName spellings this proxy answers to (relay defence):
 * HTTP/<name> and HTTP/<name>:<port> for each of its names and listening
 * ports, matched without regard to ASCII case. Built once per configuration
 * (ag_ntlm_spns_build); no allocation, so building cannot fail open. */
struct ag_ntlm_spns {
    size_t n;
    const char *list[AG_NTLM_SPNS_MAX + 1]; /* NULL-terminated, points into text */
    char text[AG_NTLM_SPNS_MAX][AG_NTLM_SPN_LEN_MAX];
};

/* Fills out from names (NULL or "" entries and repeats in any case skipped)
 * and ports (repeats and 0 skipped). 0, or AG_ELIMIT for more than
 * AG_NTLM_SPN_NAMES_MAX names, more than AG_MAX_LISTENERS ports or a name
 * over 253 bytes (out is then empty). */
int ag_ntlm_spns_build(struct ag_ntlm_spns *out, const char *const *names, size_t n_names,
                       const uint16_t *ports, size_t n_ports);

/* A UTF-16LE MsvAvTargetName against a NULL-terminated list of spellings,
 * ASCII case-insensitive. An empty name or a NULL list passes. */
bool ag_ntlm_spn_ok(const struct ag_ntlm_slice *tn, const char *const *spns);

/* Names sent in the CHALLENGE (from config or winbind's interface details). */
struct ag_ntlm_server {
    const char *nb_domain, *nb_computer, *dns_domain, *dns_computer;
    bool allow_ntlmv1; /* accept NTLMv1/NTLM2-session responses (legacy sites, winbind) */
    bool require_mic;
    bool allow_machine_accounts; /* winbind: admit HOST$ trust accounts */
    const char *const *spns;     /* MsvAvTargetName must be one of these when present; NULL = any */
    /* TLS channel binding: the MsvAvChannelBindings this connection's channel
     * gives (16 bytes) on a TLS connection, NULL on plain HTTP (where any
     * binding is refused); cb_check (channel_binding not off): a binding
     * to another channel is refused; cb_required: an unbound one too. */
    const uint8_t *cb;
    bool cb_check, cb_required;
};

/* The reasons ag_ntlm_check gives for a channel binding refusal (compared
 * by address: the caller counts and logs them apart). */
extern const char ag_ntlm_cb_mismatch[];
extern const char ag_ntlm_cb_missing[];

struct ag_ntlm_state {
    uint8_t *neg; /* NEGOTIATE as received (owned) */
    size_t neglen;
    uint8_t *chal; /* CHALLENGE as sent (owned) */
    size_t challen;
    uint8_t server_challenge[8];
    uint32_t chal_flags;
};

void ag_ntlm_state_free(void *state);

/* The NegotiateFlags of a NEGOTIATE message, 0 when it does not parse (for
 * tracing: flags are not secret). */
uint32_t ag_ntlm_negotiate_flags(const uint8_t *neg, size_t len);

/* Answers a NEGOTIATE: a new state (owned by the caller) and the CHALLENGE
 * bytes in chal/chal_len (a copy also kept in the state). AG_EINVAL for a
 * malformed NEGOTIATE, AG_EIO if no random bytes could be had. */
int ag_ntlm_challenge(const uint8_t *neg, size_t neglen, const struct ag_ntlm_server *srv,
                      uint64_t filetime_now, struct ag_ntlm_state **out, uint8_t *chal,
                      size_t chalcap, size_t *chal_len);

/* Everything the verification needs, owned (copied from the message and
 * moved from the state): built on the loop by ag_ntlm_check. */
struct ag_ntlm_verify {
    uint8_t *msg; /* AUTHENTICATE bytes (owned) */
    size_t len;
    struct ag_ntlm_auth a;    /* parsed; borrows from msg */
    struct ag_ntlm_state *st; /* owned */
    bool require_mic;
    bool allow_machine_accounts; /* from ag_ntlm_server */
    /* The challenge the NT response answers: the server challenge, or for an
     * NTLM2-session response MD5(server challenge || client challenge)[0..7]
     * (MS-NLMP 3.3.1), which is what winbind must be given. */
    uint8_t wb_challenge[8];
    bool ntlm2_session;      /* v1 with ESS: the LM field is the client challenge */
    enum ag_refusal refusal; /* set by the local backend when it refuses */
};

/* MD5(server_challenge || client_challenge)[0..7]: the challenge an
 * NTLM2-session response answers (MS-NLMP 3.3.1). */
void ag_ntlm2_session_challenge(const uint8_t server[8], const uint8_t client[8], uint8_t out[8]);

/* Parses the AUTHENTICATE against this connection's state (which it takes
 * over, whatever the result) and runs every check that needs no secret.
 * On 0, *out owns a verification to run; on error, *reason says why
 * (static text) and the state is gone. AG_EUNSUPP = refused by policy
 * (NTLMv1, anonymous, LM), AG_EINVAL = malformed or tampered. */
int ag_ntlm_check(const uint8_t *msg, size_t len, struct ag_ntlm_state *st,
                  const struct ag_ntlm_server *srv, struct ag_ntlm_verify **out,
                  const char **reason);
void ag_ntlm_verify_free(struct ag_ntlm_verify *v);

/* The local backend: NT hash from the user file (user's domain, then any),
 * NTProofStr in constant time, then the MIC. 0 with id filled, AG_EAUTH. */
int ag_ntlm_verify_local_blocking(struct ag_ntlm_verify *v, const struct ag_userfile *uf,
                                  struct ag_identity *id, const char **reason);
/* The MIC check once a backend produced the session base key. */
int ag_ntlm_verify_mic(struct ag_ntlm_verify *v, const uint8_t session_base_key[16],
                       const char **reason);

#endif
