/* admin.c - the connections as the status socket sees them: read-only
 * snapshots and kick (declared in server.h). src/ctl asks through these and
 * never sees struct conn. Main thread; each loop's connections are read
 * and closed on that loop's own thread (ag_server_call). */
#include <string.h>

#include "authgate/limits.h"
#include "conn.h"
#include "server.h"
#include "session/table.h"
#include "util/log.h"

static void snapshot(const struct conn *c, uint64_t now, struct ag_conn_info *ci)
{
    const struct ag_session *s = c->session;
    bool authd = s && s->state == AG_AS_AUTHENTICATED;
    *ci = (struct ag_conn_info){
        .id = c->id,
        .worker = c->srv->worker,
        .peer = c->peer,
        .has_session = s != NULL,
        .scheme = ag_scheme_name(s ? s->scheme : AG_SCHEME_NONE),
        .state = ag_auth_state_name(s ? s->state : AG_AS_NONE),
        .authenticated = authd,
        .user = authd ? s->id.user : "",
        .domain = authd ? s->id.domain : "",
        .age_ms = now > c->created_ms ? now - c->created_ms : 0,
        .idle_ms = s && s->last_use_ms && now > s->last_use_ms ? now - s->last_use_ms : 0,
        .requests = s ? s->requests : 0,
        .bytes_in = c->bytes_in,
        .bytes_out = c->bytes_out,
    };
}

static bool matches(const struct ag_conn_filter *f, const struct ag_conn_info *ci)
{
    if (!f)
        return true;
    if (f->by_id && ci->id != f->id)
        return false;
    if (f->with_session && !ci->has_session)
        return false;
    if (f->user && !(ci->authenticated && ag_strieq(ci->user, strlen(ci->user), f->user)))
        return false;
    if (f->addr && strcmp(ci->peer, f->addr) != 0)
        return false;
    if (f->scheme && !ag_strieq(ci->scheme, strlen(ci->scheme), f->scheme))
        return false;
    return !f->state || strcmp(ci->state, f->state) == 0;
}

struct each_arg {
    const struct ag_conn_filter *f;
    bool (*fn)(const struct ag_conn_info *ci, void *arg);
    void *arg;
    bool stop;
};

/* On the loop that owns the connections (ag_server_call). */
static void each_on_loop(struct ag_server *srv, void *arg)
{
    struct each_arg *e = arg;
    uint64_t now = uv_now(srv->loop);
    ag_list_for_each (c, &srv->conns, struct conn, node) {
        if (e->stop)
            break;
        if (c->state == CONN_CLOSING)
            continue;
        struct ag_conn_info ci;
        snapshot(c, now, &ci);
        if (matches(e->f, &ci) && !e->fn(&ci, e->arg))
            e->stop = true;
    }
}

void ag_server_each_conn(struct ag_server *srv, const struct ag_conn_filter *f,
                         bool (*fn)(const struct ag_conn_info *ci, void *arg), void *arg)
{
    struct each_arg e = {f, fn, arg, false};
    if (srv->n_shards == 0) {
        each_on_loop(srv, &e);
        return;
    }
    for (unsigned i = 0; i < srv->n_shards && !e.stop; i++)
        ag_server_call(srv->shards[i], each_on_loop, &e);
}

struct kick_arg {
    const struct ag_conn_filter *f;
    void (*fn)(const struct ag_conn_info *ci, void *arg);
    void *arg;
    size_t n;
};

/* On the loop that owns the connections: only it may close them. */
static void kick_on_loop(struct ag_server *srv, void *arg)
{
    struct kick_arg *k = arg;
    uint64_t now = uv_now(srv->loop);
    /* (a closing conn stays listed until its close callback) */
    ag_list_for_each_safe (c, next, &srv->conns, struct conn, node) {
        if (c->state == CONN_CLOSING)
            continue;
        struct ag_conn_info ci;
        snapshot(c, now, &ci);
        if (!matches(k->f, &ci))
            continue;
        if (k->fn)
            k->fn(&ci, k->arg); /* before the close: ci points into the session row */
        const char *who = ci.authenticated ? ci.user : "-";
        char u[AG_USER_MAX * 4 + 4];
        ag_escape(u, sizeof u, who, strlen(who));
        ag_info("conn=%llu event=kicked client=%s user=%s", (unsigned long long)c->id, c->peer, u);
        conn_close(c, "kicked");
        k->n++;
    }
}

size_t ag_server_kick(struct ag_server *srv, const struct ag_conn_filter *f,
                      void (*fn)(const struct ag_conn_info *ci, void *arg), void *arg)
{
    struct kick_arg k = {f, fn, arg, 0};
    if (srv->n_shards == 0) {
        kick_on_loop(srv, &k);
        return k.n;
    }
    for (unsigned i = 0; i < srv->n_shards; i++)
        ag_server_call(srv->shards[i], kick_on_loop, &k);
    return k.n;
}
