/* throttle.h - failure throttling (password guessing, BAD-INPUTS 75), keyed
 * so that nobody can lock another client out.
 *
 * Three counters, each over a fixed window (fail_window):
 *  - per (user, address): every failed verification naming the user from
 *    that address. At its cap that address may no longer try that user,
 *    whatever it sends (even a password the Basic cache holds). Other
 *    addresses are not affected: one address cannot lock a user out.
 *  - per address: every failed verification from it, for any user: an
 *    address guessing across many users is refused for all of them.
 *  - per user (the ceiling): VERIFIED wrong passwords only (the backend
 *    said "wrong password"; never malformed messages, unknown users or MIC
 *    mismatches), from any address. It is the guard below the domain's
 *    account lockout threshold, and it only stops attempts from going to
 *    the BACKEND: a Basic password the cache holds is still answered, and an
 *    address where the user succeeded within the window ("known good") goes
 *    on. A success resets the user's ceiling (as a domain controller resets
 *    its bad-password count). The per-(user, address) cap is held to at most
 *    half the ceiling (at least 1), so that one address alone can never
 *    reach it.
 *
 * Glossary: user key = the account part of the user name (after the first
 * '\', before the last '@'), ASCII lower-cased, so "CORP\Alice",
 * "alice@corp" and "ALICE" share one counter; address key = ag_addr_key
 * (IPv6 folded to its /64, IPv4-mapped IPv6 as IPv4); window = fixed: it
 * starts at the first failure of a key and the counter restarts once it has
 * passed (a client gets at most 2 x cap attempts across a window boundary);
 * a known-good mark lasts one window after the success that set it.
 *
 * Bounded: each of the three tables holds at most max_entries keys
 * (AG_THROTTLE_MAX_KEYS). Entries whose window has passed are evicted first
 * (O(1) amortised: the age list is ordered by window start). When a table
 * is full of live entries the throttle FAILS SAFE: a check for a key it has
 * no room to track is refused (AG_EAGAIN) rather than let through
 * uncounted, and a failure it cannot record is counted in fail_unrecorded.
 * Tracked keys are unaffected. A success is recorded only for a user who
 * has tracked failures, so normal traffic never fills a table.
 *
 * Time is passed in (monotonic ms). Thread-safe: one throttle serves every
 * event loop (workers N), each call holds its mutex.
 */
#ifndef AG_SESSION_THROTTLE_H
#define AG_SESSION_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Caps per window; 0 disables that counter. */
struct ag_throttle_limits {
    uint32_t per_user_addr; /* failures per (user, address) */
    uint32_t per_addr;      /* failures per address */
    uint32_t per_user;      /* verified wrong passwords per user (ceiling) */
    uint64_t window_ms;     /* > 0 */
};

/* Counters shown by authgatectl, monotonic since creation. */
struct ag_throttle_stats {
    uint64_t checks;            /* attempts checked: ag_throttle_check calls (the backend
                                   check after it is the same attempt, not counted) */
    uint64_t refused_pair;      /* refused: (user, address) over its cap */
    uint64_t refused_addr;      /* refused: address over its cap */
    uint64_t refused_user;      /* refused: user at its ceiling, address not known good */
    uint64_t refused_full;      /* refused: table full (fail-safe) */
    uint64_t ceiling_passed;    /* let through at a user's ceiling: known-good address */
    uint64_t failures;          /* ag_throttle_fail calls */
    uint64_t wrong_passwords;   /* of those, verified wrong passwords */
    uint64_t fail_unrecorded;   /* failures or good marks not tracked: table full */
    uint64_t expired;           /* entries evicted because their window passed */
    size_t pairs, addrs, users; /* keys tracked now (not monotonic) */
};

struct ag_throttle;

/* Creates a throttle: max_entries per table (>= 1), limits (window_ms > 0).
 * Draws a random hash seed (getrandom) so that user names sent by clients
 * cannot be chosen to collide. NULL on bad arguments, no memory or no
 * randomness. Caller owns it. */
struct ag_throttle *ag_throttle_create(size_t max_entries, const struct ag_throttle_limits *lim);

/* Applies new caps and window (config reload) keeping the counters. */
void ag_throttle_set_limits(struct ag_throttle *t, const struct ag_throttle_limits *lim);

/* May this client try this user at all (before anything answers it, the
 * Basic cache included)? The (user, address) and address caps. addr_key
 * is the client address's key (ag_addr_key: the caller computes it once
 * per connection, not per check). user and addr_key may be NULL (not known: that dimension is
 * skipped). Returns 0 = yes; AG_ELIMIT = no, a cap is reached; AG_EAGAIN = no, a table is full and
 * this key cannot be tracked (fail-safe). Strings are borrowed. A NULL t means throttling is not
 * configured and allows everything (the other calls ignore a NULL t too): a caller whose
 * ag_throttle_create failed must not pass NULL here. */
int ag_throttle_check(struct ag_throttle *t, const char *user, const char *addr_key,
                      uint64_t now_ms);

/* May an attempt for user from addr_key go to the backend? The user's
 * ceiling, passed by a known-good address. Same returns as above. Call it
 * after ag_throttle_check. */
int ag_throttle_check_backend(struct ag_throttle *t, const char *user, const char *addr_key,
                              uint64_t now_ms);

/* Counts one failed verification against (user, addr), addr, and, when
 * wrong_password (the backend verified the password and it was wrong),
 * against the user's ceiling. Either string may be NULL. Never fails (see
 * fail_unrecorded). */
void ag_throttle_fail(struct ag_throttle *t, const char *user, const char *addr_key,
                      bool wrong_password, uint64_t now_ms);

/* A successful verification: forgets the failures of (user, addr) and the
 * user's ceiling, and marks (user, addr) known good for one window when the
 * user had tracked failures. The address counter is kept on purpose: a
 * guesser behind one address who knows one valid password must not reset
 * its count with it. */
void ag_throttle_success(struct ag_throttle *t, const char *user, const char *addr_key,
                         uint64_t now_ms);

void ag_throttle_stats(const struct ag_throttle *t, struct ag_throttle_stats *out);

/* Frees. Accepts NULL. */
void ag_throttle_free(struct ag_throttle *t);

#endif
