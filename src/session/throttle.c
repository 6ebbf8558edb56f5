/* throttle.c - failure throttling per (user, address), per address and a
 * per-user ceiling (see throttle.h). Three bounded hash tables with an age
 * list each, ordered by window start: every entry whose window has passed
 * sits at the old end, so evicting them is a loop over the head, each entry
 * evicted once. */
#include <nettle/sha2.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "authgate/err.h"
#include "authgate/limits.h"
#include "session/addrkey.h"
#include "session/throttle.h"
#include "util/list.h"
#include "util/util.h"

#define SEED_LEN 16
/* A pair key: user key, a NUL, address key. */
#define PAIR_KEY_MAX (AG_USER_MAX + 1 + AG_ADDR_KEY_MAX)

struct thr_ent {
    struct ag_hlist_node hnode; /* in its bucket's chain */
    struct ag_list_node age;    /* age list, by window start: oldest first */
    uint64_t start;             /* window start, monotonic ms */
    uint32_t count;             /* failures in this window */
    bool good;                  /* pairs: the user succeeded from here */
    size_t keylen;
    char key[]; /* normalised key (may hold a NUL), NUL-terminated */
};

struct thr_table {
    struct ag_hlist_node **buckets; /* owned; mask + 1 chains of thr_ent.hnode */
    size_t mask;
    size_t n, max;
    struct ag_list age; /* of thr_ent.age: oldest first, newest last */
    uint8_t tag;        /* mixed into the hash: tables hash apart */
};

struct ag_throttle {
    /* Shared by every event loop (workers N): each public call holds mu. */
    pthread_mutex_t mu;
    struct thr_table pairs, addrs, users;
    struct ag_throttle_limits lim;
    uint32_t pair_cap;      /* lim.per_user_addr held to half the ceiling */
    uint8_t seed[SEED_LEN]; /* random: bucket positions unpredictable */
    struct ag_throttle_stats st;
};

/* Keyed hash of a client-chosen string: SHA-256 under a secret seed, so a
 * client cannot pile its user names into one bucket. An auth attempt costs
 * far more than this. */
static size_t hash_key(const struct ag_throttle *t, const struct thr_table *tab, const char *k,
                       size_t n)
{
    struct sha256_ctx ctx;
    uint8_t d[SHA256_DIGEST_SIZE];
    uint64_t h;
    sha256_init(&ctx);
    sha256_update(&ctx, SEED_LEN, t->seed);
    sha256_update(&ctx, 1, &tab->tag);
    sha256_update(&ctx, n, (const uint8_t *)k);
    sha256_digest(&ctx, sizeof(d), d);
    memcpy(&h, d, sizeof(h));
    return (size_t)h & tab->mask;
}

/* Account part, lower-cased: see "user key" in throttle.h. */
static size_t user_key(const char *user, char out[AG_USER_MAX + 1])
{
    const char *s = strchr(user, '\\');
    size_t n;
    s = s && s[1] ? s + 1 : user;
    n = strlen(s);
    const char *at = memrchr(s, '@', n);
    if (at && at > s)
        n = (size_t)(at - s);
    if (n > AG_USER_MAX)
        n = AG_USER_MAX;
    for (size_t i = 0; i < n; i++)
        out[i] = ag_ascii_lower(s[i]);
    out[n] = '\0';
    return n;
}

/* The keys of one attempt; a dimension whose input is unknown has len 0
 * and want_* false. */
struct keys {
    char u[AG_USER_MAX + 1], a[AG_ADDR_KEY_MAX + 1], p[PAIR_KEY_MAX + 1];
    size_t ul, al, pl;
    bool has_u, has_a;
};

static void make_keys(struct keys *k, const char *user, const char *addr)
{
    k->has_u = user != NULL;
    k->has_a = addr != NULL;
    k->ul = k->has_u ? user_key(user, k->u) : 0;
    /* addr is already a key (ag_addr_key, once per connection): copied */
    k->al = k->has_a ? strnlen(addr, AG_ADDR_KEY_MAX) : 0;
    if (k->has_a)
        memcpy(k->a, addr, k->al);
    k->a[k->al] = '\0';
    k->pl = 0;
    if (k->has_u && k->has_a) {
        memcpy(k->p, k->u, k->ul + 1); /* with its NUL: "ab"+"c" differs from "a"+"bc" */
        memcpy(k->p + k->ul + 1, k->a, k->al + 1);
        k->pl = k->ul + 1 + k->al;
    }
}

static int table_init(struct thr_table *tab, size_t max, uint8_t tag)
{
    size_t nb = 16;
    while (nb < max && nb < ((size_t)1 << 24))
        nb <<= 1;
    tab->buckets = calloc(nb, sizeof(*tab->buckets));
    if (!tab->buckets)
        return AG_ENOMEM;
    tab->mask = nb - 1;
    tab->max = max;
    tab->tag = tag;
    return 0;
}

/* The entry whose window started first, NULL when the table is empty. */
static struct thr_ent *oldest(const struct thr_table *tab)
{
    return ag_list_entry(ag_list_first(&tab->age), struct thr_ent, age);
}

static void ent_remove(struct thr_table *tab, struct thr_ent *e)
{
    ag_hlist_remove(&e->hnode);
    ag_list_remove(&tab->age, &e->age);
    tab->n--;
    free(e);
}

/* Restarts e's window at now: it moves to the new end (now is the latest). */
static void ent_restart(struct thr_table *tab, struct thr_ent *e, uint64_t now)
{
    e->start = now;
    e->count = 0;
    ag_list_move_last(&tab->age, &e->age);
}

static void table_free(struct thr_table *tab)
{
    while (!ag_list_empty(&tab->age))
        ent_remove(tab, oldest(tab));
    free(tab->buckets);
}

/* Evicts every entry whose window has passed (they form the old end). */
static void evict_expired(struct ag_throttle *t, struct thr_table *tab, uint64_t now)
{
    struct thr_ent *e;
    while ((e = oldest(tab)) && now >= e->start && now - e->start >= t->lim.window_ms) {
        ent_remove(tab, e);
        t->st.expired++;
    }
}

/* The live entry of key k, or NULL; *bucket gets its bucket for ent_add. */
static struct thr_ent *ent_find(struct ag_throttle *t, struct thr_table *tab, const char *k,
                                size_t n, uint64_t now, size_t *bucket)
{
    size_t b;
    evict_expired(t, tab, now);
    b = hash_key(t, tab, k, n);
    if (bucket)
        *bucket = b;
    ag_hlist_for_each (e, tab->buckets[b], struct thr_ent, hnode)
        if (e->keylen == n && memcmp(e->key, k, n) == 0)
            return e;
    return NULL;
}

/* Adds a key with a fresh, empty window at the new end; NULL when full. */
static struct thr_ent *ent_add(struct thr_table *tab, size_t b, const char *k, size_t n,
                               uint64_t now)
{
    struct thr_ent *e;
    if (tab->n >= tab->max)
        return NULL;
    e = calloc(1, sizeof(*e) + n + 1);
    if (!e)
        return NULL;
    memcpy(e->key, k, n);
    e->key[n] = '\0';
    e->keylen = n;
    e->start = now;
    ag_hlist_push(&tab->buckets[b], &e->hnode);
    ag_list_push_last(&tab->age, &e->age);
    tab->n++;
    return e;
}

struct ag_throttle *ag_throttle_create(size_t max_entries, const struct ag_throttle_limits *lim)
{
    struct ag_throttle *t;
    if (max_entries == 0 || !lim || lim->window_ms == 0)
        return NULL;
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    pthread_mutex_init(&t->mu, NULL);
    if (table_init(&t->pairs, max_entries, 'p') < 0 ||
        table_init(&t->addrs, max_entries, 'a') < 0 ||
        table_init(&t->users, max_entries, 'u') < 0 || ag_random(t->seed, sizeof(t->seed)) < 0) {
        ag_throttle_free(t);
        return NULL;
    }
    ag_throttle_set_limits(t, lim);
    return t;
}

static void ag_throttle_set_limits_unlocked(struct ag_throttle *t,
                                            const struct ag_throttle_limits *lim)
{
    uint64_t w;
    if (!t || !lim)
        return;
    w = t->lim.window_ms;
    t->lim = *lim;
    if (!lim->window_ms)
        t->lim.window_ms = w;
    /* One address alone must never reach a user's ceiling. */
    t->pair_cap = lim->per_user_addr;
    if (lim->per_user) {
        uint32_t half = lim->per_user / 2 ? lim->per_user / 2 : 1;
        if (!t->pair_cap || t->pair_cap > half)
            t->pair_cap = half;
    }
}

/* 0 = may go on; AG_ELIMIT = over cap; AG_EAGAIN = untracked and no room. */
static int check_one(struct ag_throttle *t, struct thr_table *tab, const char *k, size_t n,
                     uint32_t cap, uint64_t now)
{
    struct thr_ent *e = ent_find(t, tab, k, n, now, NULL);
    if (e)
        return e->count >= cap ? AG_ELIMIT : 0;
    return tab->n >= tab->max ? AG_EAGAIN : 0;
}

static int ag_throttle_check_unlocked(struct ag_throttle *t, const char *user, const char *addr_key,
                                      uint64_t now_ms)
{
    struct keys k;
    int rp = 0, ra = 0;

    if (!t)
        return 0;
    t->st.checks++;
    make_keys(&k, user, addr_key);
    if (k.pl && t->pair_cap)
        rp = check_one(t, &t->pairs, k.p, k.pl, t->pair_cap, now_ms);
    if (k.has_a && t->lim.per_addr)
        ra = check_one(t, &t->addrs, k.a, k.al, t->lim.per_addr, now_ms);
    if (rp == AG_ELIMIT)
        t->st.refused_pair++;
    if (ra == AG_ELIMIT)
        t->st.refused_addr++;
    if (rp == AG_ELIMIT || ra == AG_ELIMIT)
        return AG_ELIMIT;
    if (rp || ra) {
        t->st.refused_full++;
        return AG_EAGAIN;
    }
    return 0;
}

static int ag_throttle_check_backend_unlocked(struct ag_throttle *t, const char *user,
                                              const char *addr_key, uint64_t now_ms)
{
    struct keys k;
    struct thr_ent *e, *p;

    /* Not counted in checks: it is the second half of the attempt
     * ag_throttle_check counted (one handshake, one check). */
    if (!t || !user || !t->lim.per_user)
        return 0;
    make_keys(&k, user, addr_key);
    e = ent_find(t, &t->users, k.u, k.ul, now_ms, NULL);
    if (!e) {
        if (t->users.n < t->users.max)
            return 0;
        t->st.refused_full++;
        return AG_EAGAIN;
    }
    if (e->count < t->lim.per_user)
        return 0;
    p = k.pl ? ent_find(t, &t->pairs, k.p, k.pl, now_ms, NULL) : NULL;
    if (p && p->good) {
        t->st.ceiling_passed++;
        return 0;
    }
    t->st.refused_user++;
    return AG_ELIMIT;
}

static void fail_one(struct ag_throttle *t, struct thr_table *tab, const char *k, size_t n,
                     uint64_t now)
{
    size_t b;
    struct thr_ent *e = ent_find(t, tab, k, n, now, &b);
    if (!e)
        e = ent_add(tab, b, k, n, now);
    if (!e)
        t->st.fail_unrecorded++;
    else if (e->count < UINT32_MAX)
        e->count++;
}

static void ag_throttle_fail_unlocked(struct ag_throttle *t, const char *user, const char *addr_key,
                                      bool wrong_password, uint64_t now_ms)
{
    struct keys k;
    if (!t)
        return;
    t->st.failures++;
    if (wrong_password)
        t->st.wrong_passwords++;
    make_keys(&k, user, addr_key);
    if (k.pl && t->pair_cap)
        fail_one(t, &t->pairs, k.p, k.pl, now_ms);
    if (k.has_a && t->lim.per_addr)
        fail_one(t, &t->addrs, k.a, k.al, now_ms);
    if (k.has_u && wrong_password && t->lim.per_user)
        fail_one(t, &t->users, k.u, k.ul, now_ms);
}

static void ag_throttle_success_unlocked(struct ag_throttle *t, const char *user,
                                         const char *addr_key, uint64_t now_ms)
{
    struct keys k;
    struct thr_ent *u, *p;
    size_t b;

    if (!t || !user)
        return;
    make_keys(&k, user, addr_key);
    u = ent_find(t, &t->users, k.u, k.ul, now_ms, NULL);
    p = k.pl ? ent_find(t, &t->pairs, k.p, k.pl, now_ms, &b) : NULL;
    /* Marked only for a user someone is failing for: normal traffic adds
     * nothing. The mark lets this address past the ceiling for a window. */
    if (k.pl && (p || u)) {
        if (!p)
            p = ent_add(&t->pairs, b, k.p, k.pl, now_ms);
        if (p) {
            ent_restart(&t->pairs, p, now_ms);
            p->good = true;
        } else {
            t->st.fail_unrecorded++;
        }
    }
    if (u)
        ent_remove(&t->users, u);
}

static void ag_throttle_stats_unlocked(const struct ag_throttle *t, struct ag_throttle_stats *out)
{
    if (!t) {
        memset(out, 0, sizeof(*out));
        return;
    }
    *out = t->st;
    out->pairs = t->pairs.n;
    out->addrs = t->addrs.n;
    out->users = t->users.n;
}

void ag_throttle_free(struct ag_throttle *t)
{
    if (!t)
        return;
    if (t->pairs.buckets)
        table_free(&t->pairs);
    if (t->addrs.buckets)
        table_free(&t->addrs);
    if (t->users.buckets)
        table_free(&t->users);
    ag_wipe(t->seed, sizeof(t->seed));
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/* --- the locked interface (one throttle for every event loop) --------------- */

#define LOCKED(t, expr)                                                                            \
    do {                                                                                           \
        pthread_mutex_lock(&(t)->mu);                                                              \
        expr;                                                                                      \
        pthread_mutex_unlock(&(t)->mu);                                                            \
    } while (0)

void ag_throttle_set_limits(struct ag_throttle *t, const struct ag_throttle_limits *lim)
{
    if (t)
        LOCKED(t, ag_throttle_set_limits_unlocked(t, lim));
}

int ag_throttle_check(struct ag_throttle *t, const char *user, const char *addr_key,
                      uint64_t now_ms)
{
    if (!t)
        return 0;
    int r;
    LOCKED(t, r = ag_throttle_check_unlocked(t, user, addr_key, now_ms));
    return r;
}

int ag_throttle_check_backend(struct ag_throttle *t, const char *user, const char *addr_key,
                              uint64_t now_ms)
{
    if (!t)
        return 0;
    int r;
    LOCKED(t, r = ag_throttle_check_backend_unlocked(t, user, addr_key, now_ms));
    return r;
}

void ag_throttle_fail(struct ag_throttle *t, const char *user, const char *addr_key,
                      bool wrong_password, uint64_t now_ms)
{
    if (t)
        LOCKED(t, ag_throttle_fail_unlocked(t, user, addr_key, wrong_password, now_ms));
}

void ag_throttle_success(struct ag_throttle *t, const char *user, const char *addr_key,
                         uint64_t now_ms)
{
    if (t)
        LOCKED(t, ag_throttle_success_unlocked(t, user, addr_key, now_ms));
}

void ag_throttle_stats(const struct ag_throttle *t, struct ag_throttle_stats *out)
{
    struct ag_throttle *m = (struct ag_throttle *)t;
    if (m)
        LOCKED(m, ag_throttle_stats_unlocked(t, out));
    else
        ag_throttle_stats_unlocked(t, out);
}
