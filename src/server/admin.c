/* admin.c - the connections as the status socket sees them: read-only
 * snapshots and kick (declared in server.h). src/ctl asks through these and
 * never sees struct conn. Loop thread only. */
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

void ag_server_each_conn(struct ag_server *srv, const struct ag_conn_filter *f,
                         bool (*fn)(const struct ag_conn_info *ci, void *arg), void *arg)
{
    uint64_t now = uv_now(srv->loop);
    for (const struct conn *c = srv->conns; c; c = c->next) {
        if (c->state == CONN_CLOSING)
            continue;
        struct ag_conn_info ci;
        snapshot(c, now, &ci);
        if (matches(f, &ci) && !fn(&ci, arg))
            return;
    }
}

size_t ag_server_kick(struct ag_server *srv, const struct ag_conn_filter *f,
                      void (*fn)(const struct ag_conn_info *ci, void *arg), void *arg)
{
    uint64_t now = uv_now(srv->loop);
    size_t n = 0;
    struct conn *c, *next;
    for (c = srv->conns; c; c = next) {
        next = c->next; /* a closing conn stays listed until its close callback */
        if (c->state == CONN_CLOSING)
            continue;
        struct ag_conn_info ci;
        snapshot(c, now, &ci);
        if (!matches(f, &ci))
            continue;
        if (fn)
            fn(&ci, arg); /* before the close: ci points into the session row */
        const char *who = ci.authenticated ? ci.user : "-";
        char u[AG_USER_MAX * 4 + 4];
        ag_escape(u, sizeof u, who, strlen(who));
        ag_info("conn=%llu event=kicked client=%s user=%s", (unsigned long long)c->id, c->peer, u);
        conn_close(c, "kicked");
        n++;
    }
    return n;
}
