/* uppool.c - the loop's shared pool of idle upstream connections.
 *
 * A connection whose exchange ended cleanly (complete, framed response; no
 * CONNECT; never connection-bound origin auth, see exchange.c) is parked
 * here with no owner, for the next request of ANY client of this loop to
 * the same hop: the key is the host name as the request (or the parent)
 * names it, the port, the parent's name ("" direct) and whether TLS is
 * spoken to it, so a TLS parent and a plain one never mix. The list is
 * newest first: a lookup takes the most recently used connection (warmest,
 * least likely closed by its origin), eviction takes the oldest. Each
 * loop has its own pool (no lock); the descriptor budget is enforced by
 * the caller (exchange_maybe_done). Loop thread only. */
#include <string.h>

#include "conn.h"
#include "util/list.h"
#include "util/log.h"

static void unlink_up(struct ag_server *srv, struct ag_upstream *up)
{
    ag_list_remove(&srv->pool, &up->pool_node);
    up->in_pool = false;
    up->pool_srv = NULL;
    srv->pool_n--;
}

static bool same_hop(const struct ag_upstream *up, const char *host, uint16_t port,
                     const char *parent, bool tls)
{
    return up->port == port && (up->tls != NULL) == tls && up->via_parent == (parent[0] != '\0') &&
           strcmp(up->parent_name, parent) == 0 && strcmp(up->host, host) == 0;
}

/* Drops a pooled connection (evicted, timed out, or closed by its origin). */
static void drop(struct ag_upstream *up)
{
    unlink_up(up->pool_srv, up);
    ag_upstream_close(up);
}

void uppool_lost(struct ag_upstream *up)
{
    struct ag_server *srv = up->pool_srv;
    srv->stats.upstream_pool_closed_idle++;
    ag_debug("event=upstream_pool_closed host=%s port=%u", up->host, (unsigned)up->port);
    drop(up);
}

static void on_pool_timer(uv_timer_t *t)
{
    struct ag_upstream *up = t->data;
    if (!up->in_pool)
        return;
    ((struct ag_server *)up->pool_srv)->stats.upstream_pool_evicted++;
    drop(up);
}

void uppool_put(struct ag_server *srv, struct ag_upstream *up, const struct ag_config *cfg)
{
    up->owner = NULL;
    up->idle = true;
    up->reused = false;
    up->in_pool = true;
    up->pool_srv = srv;
    ag_list_push_first(&srv->pool, &up->pool_node);
    srv->pool_n++;
    uv_timer_start(&up->timer, on_pool_timer, cfg->upstream_keepalive_ms, 0);
    /* Reads stay armed while idle: the origin's close (or any byte, which
     * cannot belong to a request) drops the connection at once. */
    conn_up_read_pooled(up);
    if (!up->in_pool)
        return; /* (a read start that failed dropped it) */
    /* Ceilings: the oldest of the same hop, then the oldest of all. No
     * hop can be over its ceiling while the whole pool is not: the walk
     * (every put, a string compare per entry) is skipped then. */
    uint32_t same = 0;
    struct ag_upstream *oldest = NULL;
    if (srv->pool_n > cfg->upstream_pool_per_host)
        ag_list_for_each (u, &srv->pool, struct ag_upstream, pool_node)
            if (same_hop(u, up->host, up->port, up->parent_name, up->tls != NULL)) {
                same++;
                oldest = u;
            }
    if (same > cfg->upstream_pool_per_host && oldest) {
        srv->stats.upstream_pool_evicted++;
        drop(oldest);
    }
    while (srv->pool_n > cfg->upstream_pool && !ag_list_empty(&srv->pool)) {
        srv->stats.upstream_pool_evicted++;
        drop(ag_list_entry(ag_list_last(&srv->pool), struct ag_upstream, pool_node));
    }
}

struct ag_upstream *uppool_take(struct ag_server *srv, const char *host, uint16_t port,
                                const char *parent, bool tls)
{
    ag_list_for_each (u, &srv->pool, struct ag_upstream, pool_node) {
        if (!same_hop(u, host, port, parent, tls) || u->closing)
            continue;
        unlink_up(srv, u);
        uv_timer_stop(&u->timer);
        return u;
    }
    return NULL;
}

void uppool_close_all(struct ag_server *srv)
{
    while (!ag_list_empty(&srv->pool))
        drop(ag_list_entry(ag_list_first(&srv->pool), struct ag_upstream, pool_node));
}
