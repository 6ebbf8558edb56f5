/* basic_cache.c - the Basic credential cache (see basic_cache.h).
 *
 * A hash table of chained entries (the buckets are indexed by key bytes: the
 * key is already a salted SHA-256, so an attacker cannot aim collisions at a
 * bucket) plus an age list (util/list.h) for O(1) eviction of the oldest.
 */
#include <errno.h>
#include <nettle/sha2.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "authgate/err.h"
#include "session/basic_cache.h"
#include "util/list.h"
#include "util/util.h"

#define KEY_LEN SHA256_DIGEST_SIZE
#define SALT_LEN 32

struct cache_ent {
    uint8_t key[KEY_LEN];       /* salted hash of the credential; wiped on removal */
    uint64_t expires_ms;        /* monotonic ms; dead when <= now */
    struct ag_hlist_node hnode; /* in its bucket's chain: O(1) unlink */
    struct ag_list_node age;    /* age list: oldest first */
    size_t names_len;           /* bytes in names[] */
    char names[];               /* "user\0domain\0" */
};

struct ag_basic_cache {
    /* Shared by every event loop (workers N): each public call holds mu. */
    pthread_mutex_t mu;
    struct ag_hlist_node **buckets; /* owned; nbuckets = mask + 1, a power of two */
    size_t mask;
    size_t n, max;
    struct ag_list age;     /* of cache_ent.age: oldest first, newest last */
    uint8_t salt[SALT_LEN]; /* secret; wiped on free */
    struct ag_basic_cache_stats st;
};

void ag_basic_cache_key(const struct ag_basic_cache *c, const char *user, const char *password,
                        uint8_t out[32])
{
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, SALT_LEN, c->salt);
    /* user cannot contain NUL (basic.c refuses CTLs), so "user\0password"
     * is an unambiguous encoding of the pair. */
    sha256_update(&ctx, strlen(user) + 1, (const uint8_t *)user);
    sha256_update(&ctx, strlen(password), (const uint8_t *)password);
    sha256_digest(&ctx, KEY_LEN, out);
    /* The context has absorbed the password: its buffer holds plaintext. */
    ag_wipe(&ctx, sizeof(ctx));
}

struct ag_basic_cache *ag_basic_cache_create(size_t max_entries)
{
    struct ag_basic_cache *c;
    size_t nb = 16;

    if (max_entries == 0 || max_entries > AG_BASIC_CACHE_MAX)
        return NULL;
    while (nb < max_entries)
        nb <<= 1;
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    pthread_mutex_init(&c->mu, NULL);
    c->buckets = calloc(nb, sizeof(*c->buckets));
    if (!c->buckets || ag_random(c->salt, sizeof(c->salt)) < 0) {
        ag_basic_cache_free(c);
        return NULL;
    }
    c->mask = nb - 1;
    c->max = max_entries;
    return c;
}

static size_t bucket_of(const struct ag_basic_cache *c, const uint8_t key[KEY_LEN])
{
    uint64_t h;
    memcpy(&h, key, sizeof(h));
    return (size_t)h & c->mask;
}

/* The entry inserted first, NULL when the cache is empty. */
static struct cache_ent *oldest(const struct ag_basic_cache *c)
{
    return ag_list_entry(ag_list_first(&c->age), struct cache_ent, age);
}

static void unlink_ent(struct ag_basic_cache *c, struct cache_ent *e)
{
    ag_hlist_remove(&e->hnode);
    ag_list_remove(&c->age, &e->age);
    c->n--;
    ag_wipe(e, sizeof(*e) + e->names_len);
    free(e);
}

static struct cache_ent *find(const struct ag_basic_cache *c, const uint8_t key[KEY_LEN])
{
    ag_hlist_for_each (e, c->buckets[bucket_of(c, key)], struct cache_ent, hnode)
        if (ag_ct_memcmp(e->key, key, KEY_LEN) == 0)
            return e;
    return NULL;
}

static bool ag_basic_cache_lookup_unlocked(struct ag_basic_cache *c, const char *user,
                                           const char *password, uint64_t now_ms,
                                           struct ag_basic_identity *out)
{
    uint8_t key[KEY_LEN];
    struct cache_ent *e;

    if (!c || !user || !password || !out)
        return false;
    ag_basic_cache_key(c, user, password, key);
    e = find(c, key);
    ag_wipe(key, sizeof(key));
    if (e && e->expires_ms <= now_ms) {
        unlink_ent(c, e);
        c->st.expired++;
        e = NULL;
    }
    if (!e) {
        c->st.misses++;
        return false;
    }
    size_t ulen = strlen(e->names);
    memcpy(out->user, e->names, ulen + 1);
    size_t dl = strlen(e->names + ulen + 1);
    memcpy(out->domain, e->names + ulen + 1, dl + 1);
    /* Group rules need the SIDs a winbind verification returned. */
    const char *sids = e->names + ulen + 1 + dl + 1;
    out->sids = *sids ? strdup(sids) : NULL;
    c->st.hits++;
    return true;
}

static int ag_basic_cache_insert_unlocked(struct ag_basic_cache *c, const char *user,
                                          const char *password, const struct ag_basic_identity *id,
                                          uint64_t expires_ms)
{
    uint8_t key[KEY_LEN];
    struct cache_ent *e, *old;
    size_t ulen, dlen, b;

    if (!c || !user || !password || !id)
        return AG_EINVAL;
    ulen = strnlen(id->user, sizeof(id->user));
    dlen = strnlen(id->domain, sizeof(id->domain));
    if (ulen == sizeof(id->user) || dlen == sizeof(id->domain))
        return AG_EINVAL;

    size_t slen = id->sids ? strlen(id->sids) : 0;
    e = malloc(sizeof(*e) + ulen + dlen + slen + 3);
    if (!e)
        return AG_ENOMEM;
    ag_basic_cache_key(c, user, password, key);
    old = find(c, key);
    if (old)
        unlink_ent(c, old);
    else if (c->n >= c->max) {
        /* Full: the oldest goes (it is also the first to expire when every
         * entry has the same TTL, so expired entries leave first). */
        c->st.evictions++;
        unlink_ent(c, oldest(c));
    }
    memcpy(e->key, key, KEY_LEN);
    ag_wipe(key, sizeof(key));
    e->expires_ms = expires_ms;
    e->names_len = ulen + dlen + slen + 3;
    memcpy(e->names, id->user, ulen + 1);
    memcpy(e->names + ulen + 1, id->domain, dlen + 1);
    memcpy(e->names + ulen + dlen + 2, id->sids ? id->sids : "", slen + 1);

    b = bucket_of(c, e->key);
    ag_hlist_push(&c->buckets[b], &e->hnode);

    ag_list_push_last(&c->age, &e->age);
    c->n++;
    c->st.inserts++;
    return 0;
}

static size_t ag_basic_cache_purge_unlocked(struct ag_basic_cache *c, uint64_t now_ms)
{
    size_t dropped = 0;
    if (!c)
        return 0;
    ag_list_for_each_safe (e, next, &c->age, struct cache_ent, age) {
        if (e->expires_ms <= now_ms) {
            unlink_ent(c, e);
            dropped++;
        }
    }
    c->st.expired += dropped;
    return dropped;
}

static void ag_basic_cache_clear_unlocked(struct ag_basic_cache *c)
{
    if (!c)
        return;
    while (!ag_list_empty(&c->age))
        unlink_ent(c, oldest(c));
}

static size_t ag_basic_cache_count_unlocked(const struct ag_basic_cache *c)
{
    return c ? c->n : 0;
}

static void ag_basic_cache_stats_unlocked(const struct ag_basic_cache *c,
                                          struct ag_basic_cache_stats *out)
{
    if (c)
        *out = c->st;
    else
        memset(out, 0, sizeof(*out));
}

void ag_basic_cache_free(struct ag_basic_cache *c)
{
    if (!c)
        return;
    if (c->buckets)
        ag_basic_cache_clear(c);
    free(c->buckets);
    ag_wipe(c->salt, sizeof(c->salt));
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* --- the locked interface (one cache for every event loop) ------------------ */

/* A NULL cache (creation failed: run without one) takes no lock. */
#define LOCKED(c, expr)                                                                            \
    do {                                                                                           \
        if (c)                                                                                     \
            pthread_mutex_lock(&(c)->mu);                                                          \
        expr;                                                                                      \
        if (c)                                                                                     \
            pthread_mutex_unlock(&(c)->mu);                                                        \
    } while (0)

bool ag_basic_cache_lookup(struct ag_basic_cache *c, const char *user, const char *password,
                           uint64_t now_ms, struct ag_basic_identity *out)
{
    bool r;
    LOCKED(c, r = ag_basic_cache_lookup_unlocked(c, user, password, now_ms, out));
    return r;
}

int ag_basic_cache_insert(struct ag_basic_cache *c, const char *user, const char *password,
                          const struct ag_basic_identity *id, uint64_t expires_ms)
{
    int r;
    LOCKED(c, r = ag_basic_cache_insert_unlocked(c, user, password, id, expires_ms));
    return r;
}

size_t ag_basic_cache_purge(struct ag_basic_cache *c, uint64_t now_ms)
{
    size_t r;
    LOCKED(c, r = ag_basic_cache_purge_unlocked(c, now_ms));
    return r;
}

void ag_basic_cache_clear(struct ag_basic_cache *c)
{
    LOCKED(c, ag_basic_cache_clear_unlocked(c));
}

size_t ag_basic_cache_count(const struct ag_basic_cache *c)
{
    struct ag_basic_cache *m = (struct ag_basic_cache *)c;
    size_t r;
    LOCKED(m, r = ag_basic_cache_count_unlocked(c));
    return r;
}

void ag_basic_cache_stats(const struct ag_basic_cache *c, struct ag_basic_cache_stats *out)
{
    struct ag_basic_cache *m = (struct ag_basic_cache *)c;
    LOCKED(m, ag_basic_cache_stats_unlocked(c, out));
}
