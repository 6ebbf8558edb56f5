/* throttle.c - failure throttling per user and per address (see
 * throttle.h). Two bounded hash tables with an age list each, ordered by
 * window start: every entry whose window has passed sits at the old end,
 * so evicting them is a loop over the head, each entry evicted once. */
#include <arpa/inet.h>
#include <errno.h>
#include <nettle/sha2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "authgate/err.h"
#include "authgate/limits.h"
#include "session/throttle.h"
#include "util/util.h"

/* Address keys: an IPv6 text plus "/64", or an unparsed text cut here. */
#define ADDR_KEY_MAX 64
#define SEED_LEN 16

struct thr_ent {
    struct thr_ent *hnext;          /* bucket chain */
    struct thr_ent **hpprev;        /* the pointer that points at us */
    struct thr_ent *older, *newer;  /* age list, by window start */
    uint64_t start;                 /* window start, monotonic ms */
    uint32_t count;                 /* failures in this window */
    size_t keylen;
    char key[];                     /* normalised key, NUL-terminated */
};

struct thr_table {
    struct thr_ent **buckets; /* owned; mask + 1 heads */
    size_t mask;
    size_t n, max;
    struct thr_ent *oldest, *newest;
    uint8_t tag;              /* mixed into the hash: tables hash apart */
};

struct ag_throttle {
    struct thr_table users, addrs;
    uint32_t max_user, max_addr; /* 0 = dimension off */
    uint64_t window_ms;
    uint8_t seed[SEED_LEN];      /* random: bucket positions unpredictable */
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
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        out[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    out[n] = '\0';
    return n;
}

/* IPv4 as is, IPv4-mapped IPv6 as IPv4, other IPv6 as its /64, anything
 * else as given (cut at ADDR_KEY_MAX). */
static size_t addr_key(const char *addr, char out[ADDR_KEY_MAX + 1])
{
    struct in6_addr a6;
    char txt[INET6_ADDRSTRLEN];
    size_t n;

    if (inet_pton(AF_INET6, addr, &a6) == 1) {
        if (IN6_IS_ADDR_V4MAPPED(&a6)) {
            inet_ntop(AF_INET, &a6.s6_addr[12], txt, sizeof(txt));
            n = strlen(txt);
            memcpy(out, txt, n + 1);
            return n;
        }
        memset(&a6.s6_addr[8], 0, 8);
        inet_ntop(AF_INET6, &a6, txt, sizeof(txt));
        n = strlen(txt);
        memcpy(out, txt, n);
        memcpy(out + n, "/64", 4);
        return n + 3;
    }
    n = strnlen(addr, ADDR_KEY_MAX);
    memcpy(out, addr, n);
    out[n] = '\0';
    return n;
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

static void ent_remove(struct thr_table *tab, struct thr_ent *e)
{
    *e->hpprev = e->hnext;
    if (e->hnext)
        e->hnext->hpprev = e->hpprev;
    if (e->older)
        e->older->newer = e->newer;
    else
        tab->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        tab->newest = e->older;
    tab->n--;
    free(e);
}

static void table_free(struct thr_table *tab)
{
    while (tab->oldest)
        ent_remove(tab, tab->oldest);
    free(tab->buckets);
}

/* Evicts every entry whose window has passed (they form the old end). */
static void evict_expired(struct ag_throttle *t, struct thr_table *tab, uint64_t now)
{
    while (tab->oldest && now >= tab->oldest->start && now - tab->oldest->start >= t->window_ms) {
        ent_remove(tab, tab->oldest);
        t->st.expired++;
    }
}

static struct thr_ent *ent_find(const struct thr_table *tab, size_t b, const char *k, size_t n)
{
    for (struct thr_ent *e = tab->buckets[b]; e; e = e->hnext)
        if (e->keylen == n && memcmp(e->key, k, n) == 0)
            return e;
    return NULL;
}

/* Adds a key with a fresh window at the new end; AG_ELIMIT when full. */
static int ent_add(struct thr_table *tab, size_t b, const char *k, size_t n, uint64_t now)
{
    struct thr_ent *e;
    if (tab->n >= tab->max)
        return AG_ELIMIT;
    e = malloc(sizeof(*e) + n + 1);
    if (!e)
        return AG_ENOMEM;
    memcpy(e->key, k, n + 1);
    e->keylen = n;
    e->start = now;
    e->count = 1;
    e->hnext = tab->buckets[b];
    if (e->hnext)
        e->hnext->hpprev = &e->hnext;
    e->hpprev = &tab->buckets[b];
    tab->buckets[b] = e;
    e->newer = NULL;
    e->older = tab->newest;
    if (tab->newest)
        tab->newest->newer = e;
    else
        tab->oldest = e;
    tab->newest = e;
    tab->n++;
    return 0;
}

struct ag_throttle *ag_throttle_create(size_t max_entries, uint32_t max_per_user,
                                       uint32_t max_per_addr, uint64_t window_ms)
{
    struct ag_throttle *t;
    if (max_entries == 0 || window_ms == 0)
        return NULL;
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    if (table_init(&t->users, max_entries, 'u') < 0 || table_init(&t->addrs, max_entries, 'a') < 0 ||
        ag_random(t->seed, sizeof(t->seed)) < 0) {
        ag_throttle_free(t);
        return NULL;
    }
    ag_throttle_set_limits(t, max_per_user, max_per_addr, window_ms);
    return t;
}

void ag_throttle_set_limits(struct ag_throttle *t, uint32_t max_per_user, uint32_t max_per_addr,
                            uint64_t window_ms)
{
    if (!t)
        return;
    t->max_user = max_per_user;
    t->max_addr = max_per_addr;
    if (window_ms)
        t->window_ms = window_ms;
}

/* 0 = may go on; AG_ELIMIT = over cap; AG_EAGAIN = untracked and no room. */
static int check_one(struct ag_throttle *t, struct thr_table *tab, const char *k, size_t n,
                     uint32_t cap, uint64_t now)
{
    struct thr_ent *e;
    evict_expired(t, tab, now);
    e = ent_find(tab, hash_key(t, tab, k, n), k, n);
    if (e)
        return e->count >= cap ? AG_ELIMIT : 0;
    return tab->n >= tab->max ? AG_EAGAIN : 0;
}

int ag_throttle_check(struct ag_throttle *t, const char *user, const char *addr_text,
                      uint64_t now_ms)
{
    char uk[AG_USER_MAX + 1], ak[ADDR_KEY_MAX + 1];
    int ru = 0, ra = 0;

    if (!t)
        return 0;
    t->st.checks++;
    if (user && t->max_user)
        ru = check_one(t, &t->users, uk, user_key(user, uk), t->max_user, now_ms);
    if (addr_text && t->max_addr)
        ra = check_one(t, &t->addrs, ak, addr_key(addr_text, ak), t->max_addr, now_ms);
    if (ru == AG_ELIMIT)
        t->st.refused_user++;
    if (ra == AG_ELIMIT)
        t->st.refused_addr++;
    if (ru == AG_ELIMIT || ra == AG_ELIMIT)
        return AG_ELIMIT;
    if (ru || ra) {
        t->st.refused_full++;
        return AG_EAGAIN;
    }
    return 0;
}

static void fail_one(struct ag_throttle *t, struct thr_table *tab, const char *k, size_t n,
                     uint64_t now)
{
    size_t b;
    struct thr_ent *e;
    evict_expired(t, tab, now);
    b = hash_key(t, tab, k, n);
    e = ent_find(tab, b, k, n);
    if (e) {
        if (e->count < UINT32_MAX)
            e->count++;
    } else if (ent_add(tab, b, k, n, now) < 0) {
        t->st.fail_unrecorded++;
    }
}

void ag_throttle_fail(struct ag_throttle *t, const char *user, const char *addr_text,
                      uint64_t now_ms)
{
    char uk[AG_USER_MAX + 1], ak[ADDR_KEY_MAX + 1];
    if (!t)
        return;
    t->st.failures++;
    if (user && t->max_user)
        fail_one(t, &t->users, uk, user_key(user, uk), now_ms);
    if (addr_text && t->max_addr)
        fail_one(t, &t->addrs, ak, addr_key(addr_text, ak), now_ms);
}

void ag_throttle_success(struct ag_throttle *t, const char *user, const char *addr_text)
{
    char uk[AG_USER_MAX + 1];
    size_t n;
    struct thr_ent *e;
    (void)addr_text;
    if (!t || !user)
        return;
    n = user_key(user, uk);
    e = ent_find(&t->users, hash_key(t, &t->users, uk, n), uk, n);
    if (e)
        ent_remove(&t->users, e);
}

void ag_throttle_stats(const struct ag_throttle *t, struct ag_throttle_stats *out)
{
    if (!t) {
        memset(out, 0, sizeof(*out));
        return;
    }
    *out = t->st;
    out->users = t->users.n;
    out->addrs = t->addrs.n;
}

void ag_throttle_free(struct ag_throttle *t)
{
    if (!t)
        return;
    if (t->users.buckets)
        table_free(&t->users);
    if (t->addrs.buckets)
        table_free(&t->addrs);
    ag_wipe(t->seed, sizeof(t->seed));
    free(t);
}
