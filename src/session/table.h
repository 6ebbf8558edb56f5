/* table.h - the auth-session table: one row per client connection.
 *
 * Glossary: row = the authentication state of one connection (scheme,
 * handshake state, identity, times, counters); handshake = from the first
 * token of a multi-round scheme to its identity; mech state = what a scheme
 * keeps between rounds (NTLM challenge and raw messages, a GSS context),
 * owned by the row and released through its free function.
 *
 * An identity lives in exactly one row, the row of the connection that proved
 * it, and dies with that connection: nothing here is keyed by anything a
 * client can present on another connection. A connection holds a pointer
 * to its own row; no function looks a row up by id. Removal is O(1)
 * (intrusive list). The table is shared by every event loop (workers N) and
 * locks itself; a row is touched only by the loop of its connection.
 */
#ifndef AG_SESSION_TABLE_H
#define AG_SESSION_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/identity.h"
#include "config/config.h"
#include "session/addrkey.h"
#include "util/list.h"

enum ag_auth_state {
    AG_AS_NONE = 0,        /* no identity, no handshake */
    AG_AS_NTLM_CHALLENGED, /* CHALLENGE sent, AUTHENTICATE expected */
    AG_AS_GSS_CONTINUE,    /* GSS_S_CONTINUE_NEEDED, next token expected */
    AG_AS_VERIFYING,       /* a verification job runs */
    AG_AS_AUTHENTICATED,   /* identity bound to the connection */
};

struct ag_session {
    uint64_t conn_id;
    char peer[48];
    char addr_key[AG_ADDR_KEY_MAX + 1]; /* peer as counted by the per-address cap */
    enum ag_scheme scheme;              /* scheme of the handshake or identity */
    enum ag_auth_state state;
    uint32_t rounds;        /* legs of the current handshake */
    bool in_handshake;      /* counted against the handshake caps */
    bool ntlm_in_negotiate; /* raw NTLMSSP arrived inside "Negotiate": answer in kind */
    struct ag_identity id;  /* valid when state == AUTHENTICATED */
    uint64_t handshake_ms, authenticated_ms, last_use_ms;
    uint64_t requests;
    void *mech; /* scheme state between rounds, owned */
    void (*mech_free)(void *);
    struct ag_list_node node; /* in the table's list of rows (under its mu) */
};

struct ag_session_counters {
    size_t rows, authenticated, handshakes;
    uint64_t refused_global, refused_addr; /* handshakes refused at each cap, monotonic */
};

struct ag_session_table;

struct ag_session_table *ag_session_table_new(void);
/* Frees every row (their mech state and identity too). Accepts NULL. */
void ag_session_table_free(struct ag_session_table *t);

/* Adds the row of a new connection; NULL on allocation failure. */
struct ag_session *ag_session_add(struct ag_session_table *t, uint64_t conn_id, const char *peer,
                                  uint64_t now_ms);
/* Removes and frees the row (ends its handshake, releases its state). */
void ag_session_remove(struct ag_session_table *t, struct ag_session *s);

/* Starts (or continues) a handshake for s under the global and per-address
 * caps: 0, or AG_EAGAIN when a cap is full (answer 503). The per-address
 * cap counts by address key (IPv6 by /64) and is ag_session_addr_cap. */
int ag_session_handshake_begin(struct ag_session_table *t, struct ag_session *s,
                               enum ag_scheme scheme, uint32_t max_global, uint32_t max_per_addr,
                               uint64_t now_ms);
/* Ends the handshake (success or not) and frees the mech state. */
void ag_session_handshake_end(struct ag_session_table *t, struct ag_session *s);
/* Binds id (moved) to the connection. */
void ag_session_authenticate(struct ag_session_table *t, struct ag_session *s,
                             enum ag_scheme scheme, struct ag_identity *id, uint64_t now_ms);
/* Forgets identity and handshake: the connection is anonymous again. */
void ag_session_reset(struct ag_session_table *t, struct ag_session *s);
/* The state moves other than authenticate/reset (legal moves asserted in
 * table.c): a verification job starts; the NTLM CHALLENGE was sent and st
 * (moved in) waits for the AUTHENTICATE, in_negotiate says how it came; GSS
 * asked for another round and ctx (moved in) waits for the next token. */
void ag_session_verifying(struct ag_session *s);
void ag_session_ntlm_challenged(struct ag_session *s, void *st, void (*st_free)(void *),
                                bool in_negotiate);
void ag_session_gss_continue(struct ag_session *s, void *ctx, void (*ctx_free)(void *));
/* Replaces the mech state (the old one is freed). */
void ag_session_set_mech(struct ag_session *s, void *mech, void (*mech_free)(void *));
/* Hands the mech state to the caller (the row no longer frees it). */
void *ag_session_take_mech(struct ag_session *s);

/* Read-only iteration, fn returns false to stop (authgatectl lists
 * connections through ag_server_each_conn, which joins each row to its
 * connection). */
void ag_session_foreach(const struct ag_session_table *t,
                        bool (*fn)(const struct ag_session *, void *), void *arg);
void ag_session_counters(const struct ag_session_table *t, struct ag_session_counters *out);
/* The per-address cap in force: max_per_addr, but never more than a
 * 1/AG_HANDSHAKE_SHARE_DIV share of max_global (at least 1), so that a few
 * addresses can never hold every slot. */
uint32_t ag_session_addr_cap(uint32_t max_global, uint32_t max_per_addr);
/* Handshakes in progress from one address's key (for tests and ctl). */
uint32_t ag_session_handshakes_from(const struct ag_session_table *t, const char *peer);

const char *ag_auth_state_name(enum ag_auth_state s);

#endif
