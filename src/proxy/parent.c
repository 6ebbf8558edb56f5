/* parent.c - parent proxies' health (see parent.h). */
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "authgate/limits.h"
#include "parent.h"

struct ag_parent_health {
    char name[64];
    char host[AG_HOST_MAX + 1];
    uint16_t port;
    uint64_t down_until; /* atomic: monotonic ms; 0 = up */
    uint32_t down;       /* atomic: 1 while considered down (for the state-change log) */
    uint64_t failures;   /* atomic */
};

static struct ag_parent_health slots[AG_PARENT_SLOTS];
static uint32_t n_slots; /* atomic: slots[0..n) are published */
static uv_mutex_t add_mu;
static uv_once_t add_once = UV_ONCE_INIT;

static void init_mu(void)
{
    uv_mutex_init(&add_mu);
}

static struct ag_parent_health *find(uint32_t n, const char *name, const char *host, uint16_t port)
{
    for (uint32_t i = 0; i < n; i++)
        if (slots[i].port == port && strcmp(slots[i].name, name) == 0 &&
            strcmp(slots[i].host, host) == 0)
            return &slots[i];
    return NULL;
}

struct ag_parent_health *ag_parent_health(const char *name, const char *host, uint16_t port)
{
    struct ag_parent_health *h =
        find(__atomic_load_n(&n_slots, __ATOMIC_ACQUIRE), name, host, port);
    if (h)
        return h;
    uv_once(&add_once, init_mu);
    uv_mutex_lock(&add_mu);
    uint32_t n = __atomic_load_n(&n_slots, __ATOMIC_ACQUIRE);
    if (!(h = find(n, name, host, port)) && n < AG_PARENT_SLOTS) {
        h = &slots[n];
        snprintf(h->name, sizeof h->name, "%s", name);
        snprintf(h->host, sizeof h->host, "%s", host);
        h->port = port;
        __atomic_store_n(&n_slots, n + 1, __ATOMIC_RELEASE);
    }
    uv_mutex_unlock(&add_mu);
    return h;
}

bool ag_parent_usable(struct ag_parent_health *h, uint64_t now_ms)
{
    return !h || __atomic_load_n(&h->down_until, __ATOMIC_RELAXED) <= now_ms;
}

bool ag_parent_mark_down(struct ag_parent_health *h, uint64_t now_ms, uint32_t backoff_ms)
{
    if (!h)
        return false;
    __atomic_add_fetch(&h->failures, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&h->down_until, now_ms + backoff_ms, __ATOMIC_RELAXED);
    return __atomic_exchange_n(&h->down, 1, __ATOMIC_RELAXED) == 0;
}

bool ag_parent_mark_up(struct ag_parent_health *h)
{
    if (!h || !__atomic_load_n(&h->down, __ATOMIC_RELAXED))
        return false;
    __atomic_store_n(&h->down_until, 0, __ATOMIC_RELAXED);
    return __atomic_exchange_n(&h->down, 0, __ATOMIC_RELAXED) == 1;
}

uint64_t ag_parent_failures(const struct ag_parent_health *h)
{
    return h ? __atomic_load_n(&h->failures, __ATOMIC_RELAXED) : 0;
}

bool ag_parent_is_down(const struct ag_parent_health *h)
{
    return h && __atomic_load_n(&h->down, __ATOMIC_RELAXED) != 0;
}
