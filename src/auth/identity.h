/* identity.h - who a verified client is, as the backends report it.
 *
 * Filled by a verifier (on a pool thread, into its job), then moved into the
 * connection's session row on the loop thread. Owns sids.
 */
#ifndef AG_AUTH_IDENTITY_H
#define AG_AUTH_IDENTITY_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authgate/limits.h"

struct ag_identity {
    char user[AG_USER_MAX + 1];   /* canonical account name */
    char domain[AG_USER_MAX + 1]; /* domain or realm, "" when none */
    char *sids;                   /* comma-separated SIDs (user, groups) or NULL; owned */
    bool groups_unknown;          /* the group lookup failed: sids says nothing, and a
                                     rule that depends on a winbind group cannot decide */
};

/* Why a verification refused, as the backend answered it: the throttle's
 * per-user ceiling counts only checked passwords (a domain controller's
 * lockout counts those), and the counters tell unknown users apart. Decided
 * where the backend answers, never from log text. */
enum ag_refusal {
    AG_REFUSED_OTHER = 0,    /* malformed name, MIC mismatch, machine account, ... */
    AG_REFUSED_PASSWORD,     /* a password was checked and was wrong (the local file,
                                which cannot tell an unknown user apart, says this too) */
    AG_REFUSED_UNKNOWN_USER, /* winbind: no such account */
};

static inline void ag_identity_clear(struct ag_identity *id)
{
    free(id->sids);
    memset(id, 0, sizeof *id);
}

/* Moves src into dst (dst's old contents are released; src is emptied). */
static inline void ag_identity_move(struct ag_identity *dst, struct ag_identity *src)
{
    ag_identity_clear(dst);
    *dst = *src;
    memset(src, 0, sizeof *src);
}

/* An identity from a local user-file entry, "DOMAIN\\user" or "user": the
 * domain is the entry's, never one the client typed and nobody verified. */
static inline void ag_identity_from_entry(struct ag_identity *id, const char *entry)
{
    const char *bs = strchr(entry, '\\');
    memset(id, 0, sizeof *id);
    if (bs && (size_t)(bs - entry) < sizeof id->domain) {
        memcpy(id->domain, entry, (size_t)(bs - entry));
        snprintf(id->user, sizeof id->user, "%s", bs + 1);
    } else {
        snprintf(id->user, sizeof id->user, "%s", entry);
    }
}

#endif
