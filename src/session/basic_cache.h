/* basic_cache.h - the Basic credential cache: recently verified
 * user/password pairs, so a browser that sends Basic on every request does
 * not cost a backend round trip each time.
 *
 * Glossary: key = SHA-256(salt || user || 0x00 || password), the only form
 * in which a credential is kept (the plaintext never is); salt = 32 random
 * bytes from getrandom(2) drawn when the cache is created, never leaving it;
 * identity = what a hit yields (canonical user name and domain); age list =
 * the entries in insertion order, oldest first, for O(1) eviction.
 *
 * Time is passed in (monotonic milliseconds from the caller): no clock calls
 * inside, so expiry is testable. Thread-safe: one cache serves every event
 * loop (workers N), each call holds its mutex.
 */
#ifndef AG_SESSION_BASIC_CACHE_H
#define AG_SESSION_BASIC_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "authgate/limits.h"

/* The identity a successful verification produced. Plain data, copied in
 * and out of the cache. */
struct ag_basic_identity {
    char user[AG_USER_MAX + 1];   /* canonical user name */
    char domain[AG_USER_MAX + 1]; /* domain, "" when none */
    char *sids;                   /* comma-separated SIDs or NULL: insert copies it; lookup
                                     returns a malloc'd copy the caller frees */
};

/* Counters shown by authgatectl; monotonic since creation (clear() keeps
 * them). */
struct ag_basic_cache_stats {
    uint64_t hits;
    uint64_t misses; /* includes lookups that found an expired entry */
    uint64_t inserts;
    uint64_t expired;   /* entries dropped because their time had passed */
    uint64_t evictions; /* entries dropped to make room for a new one (cap hit;
                           insert has no clock, so it cannot tell whether the
                           oldest had already expired) */
};

struct ag_basic_cache;

/* Creates an empty cache of at most max_entries (1..AG_BASIC_CACHE_MAX)
 * with a fresh random salt. NULL if max_entries is out of range, memory is
 * short or getrandom fails (then run without a cache: fail closed means
 * verifying every time, never skipping verification). Caller owns it. */
struct ag_basic_cache *ag_basic_cache_create(size_t max_entries);

/* Wipes every key and the salt, frees. Accepts NULL. */
void ag_basic_cache_free(struct ag_basic_cache *c);

/* Looks up user/password (NUL-terminated, borrowed; password secret). On a
 * live hit copies the identity to out and returns true; an entry whose
 * expiry is <= now_ms is dropped and counts as a miss. out is written only
 * on a hit. The derived key is wiped before returning. */
bool ag_basic_cache_lookup(struct ag_basic_cache *c, const char *user, const char *password,
                           uint64_t now_ms, struct ag_basic_identity *out);

/* Remembers that user/password verified as id (copied) until expires_ms
 * (= now + TTL). Replaces an entry with the same key (it becomes the
 * newest). When the cache is full the oldest entry is evicted first, O(1).
 * Returns 0, AG_EINVAL (NULL argument, or id strings not NUL-terminated
 * within their arrays), AG_ENOMEM. */
int ag_basic_cache_insert(struct ag_basic_cache *c, const char *user, const char *password,
                          const struct ag_basic_identity *id, uint64_t expires_ms);

/* Drops every entry whose expiry is <= now_ms; returns how many. Walks the
 * whole cache (O(n), entries may carry different TTLs after a reload):
 * call it from a slow periodic timer, lookups already drop what they find
 * expired. */
size_t ag_basic_cache_purge(struct ag_basic_cache *c, uint64_t now_ms);

/* Drops every entry (config reload, user file change). The salt stays. */
void ag_basic_cache_clear(struct ag_basic_cache *c);

size_t ag_basic_cache_count(const struct ag_basic_cache *c);
void ag_basic_cache_stats(const struct ag_basic_cache *c, struct ag_basic_cache_stats *out);

/* The key this cache would store for user/password, for tests (a second
 * cache gives a different key: the salt works). out is secret-derived:
 * the caller wipes it. */
void ag_basic_cache_key(const struct ag_basic_cache *c, const char *user, const char *password,
                        uint8_t out[32]);

#endif
