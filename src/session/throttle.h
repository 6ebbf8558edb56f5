/* throttle.h - failure throttling: after too many failed verifications for
 * one user or from one client address within a window, further attempts
 * are refused without asking the backend (password guessing, BAD-INPUTS 75;
 * it also keeps a guessing client from locking the account in AD).
 *
 * Glossary: user key = the account part of the user name (after the first
 * '\', before the last '@'), ASCII lower-cased, so "CORP\Alice",
 * "alice@corp" and "ALICE" share one counter; address key = the client
 * address text, with IPv6 addresses folded to their /64 (one host owns a
 * whole /64 and could otherwise rotate through it); window = fixed: it
 * starts at the first failure of a key and the counter restarts once it has
 * passed (a client gets at most 2 x cap attempts across a window boundary).
 *
 * Bounded: each of the two tables holds at most max_entries keys. Entries
 * whose window has passed are evicted first (O(1) amortised: the age list
 * is ordered by window start). When a table is full of live entries the
 * throttle FAILS SAFE: a check for a key it has no room to track is
 * refused (AG_EAGAIN) rather than let through uncounted, and a failure it
 * cannot record is counted in fail_unrecorded. Tracked keys are unaffected.
 *
 * Trade-off: anyone can exhaust a user's window by failing as that user
 * (per-user throttling is a lockout lever); it lasts one window and the
 * per-address cap limits who can pull it.
 *
 * Time is passed in (monotonic ms). Loop thread only; not thread-safe.
 */
#ifndef AG_SESSION_THROTTLE_H
#define AG_SESSION_THROTTLE_H

#include <stddef.h>
#include <stdint.h>

/* Counters shown by authgatectl, monotonic since creation. */
struct ag_throttle_stats {
    uint64_t checks;          /* ag_throttle_check calls */
    uint64_t refused_user;    /* refused: user over its cap */
    uint64_t refused_addr;    /* refused: address over its cap */
    uint64_t refused_full;    /* refused: table full (fail-safe) */
    uint64_t failures;        /* ag_throttle_fail calls */
    uint64_t fail_unrecorded; /* failures not tracked: table full */
    uint64_t expired;         /* entries evicted because their window passed */
    size_t users, addrs;      /* keys tracked now (not monotonic) */
};

struct ag_throttle;

/* Creates a throttle: max_entries per table (>= 1), caps per window
 * (0 disables that dimension; config passes AG_FAIL_MAX_PER_USER /
 * AG_FAIL_MAX_PER_ADDR by default), window_ms > 0 (AG_FAIL_WINDOW_S * 1000
 * by default). Draws a random hash seed (getrandom) so that user names sent
 * by clients cannot be chosen to collide. NULL on bad arguments, no memory
 * or no randomness. Caller owns it. */
struct ag_throttle *ag_throttle_create(size_t max_entries, uint32_t max_per_user,
                                       uint32_t max_per_addr, uint64_t window_ms);

/* Applies new caps and window (config reload) keeping the counters. */
void ag_throttle_set_limits(struct ag_throttle *t, uint32_t max_per_user, uint32_t max_per_addr,
                            uint64_t window_ms);

/* May an attempt by user (may be NULL: not known yet) from addr_text (may be
 * NULL) go to the backend? Returns 0 = yes; AG_ELIMIT = no, a cap is
 * reached; AG_EAGAIN = no, a table is full and this key cannot be tracked
 * (fail-safe). Strings are borrowed. A NULL t means throttling is not
 * configured and allows everything (the other calls ignore a NULL t too):
 * a caller whose ag_throttle_create failed must not pass NULL here. */
int ag_throttle_check(struct ag_throttle *t, const char *user, const char *addr_text,
                      uint64_t now_ms);

/* Counts one failed verification against user and addr (either may be
 * NULL). Never fails (see fail_unrecorded). */
void ag_throttle_fail(struct ag_throttle *t, const char *user, const char *addr_text,
                      uint64_t now_ms);

/* A successful verification: forgets the user's failures. The address
 * counter is kept on purpose: a guesser behind one address who knows one
 * valid password must not reset its count with it. */
void ag_throttle_success(struct ag_throttle *t, const char *user, const char *addr_text);

void ag_throttle_stats(const struct ag_throttle *t, struct ag_throttle_stats *out);

/* Frees. Accepts NULL. */
void ag_throttle_free(struct ag_throttle *t);

#endif
