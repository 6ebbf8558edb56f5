/* table.c - the auth-session table (see table.h).
 *
 * Rows sit on one intrusive list (util/list.h; O(1) removal: a connection
 * holds its own row, nothing looks a row up by id). Handshake counts by
 * client address key (for the per-address cap: IPv6 counted by /64, see addrkey.h) sit in a
 * hash map chained on a power-of-two bucket array that doubles when the load
 * passes 1. */
#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authgate/err.h"
#include "authgate/limits.h"
#include "session/addrkey.h"
#include "table.h"

struct addr_count {
    char key[AG_ADDR_KEY_MAX + 1];
    uint32_t n;
    struct addr_count *next;
};

struct ag_session_table {
    size_t rows, authenticated, handshakes;
    struct ag_list list; /* of ag_session.node, newest first */
    struct addr_count **abuckets;
    size_t nabuckets, naddrs;
    uint64_t refused_global, refused_addr;
    /* One table for every event loop (workers N), so the handshake caps are
     * global: the list and the counts are under mu; a row's own fields belong
     * to the loop of its connection. Recursive: the table's functions call
     * one another (begin -> end, remove -> reset -> end). */
    pthread_mutex_t mu;
};

/* The legal moves of a row's state; this file is its only writer.
 *   NONE            -> NTLM_CHALLENGED | VERIFYING | AUTHENTICATED (cached Basic)
 *   NTLM_CHALLENGED -> NTLM_CHALLENGED (a new NEGOTIATE) | VERIFYING
 *   GSS_CONTINUE    -> NTLM_CHALLENGED (raw NTLMSSP in Negotiate) | VERIFYING
 *   VERIFYING       -> GSS_CONTINUE | AUTHENTICATED
 *   AUTHENTICATED   -> AUTHENTICATED (a fresh identity replaces it)
 *   any             -> NONE (reset, failure, connection closed)              */
static const bool legal[5][5] = {
    [AG_AS_NONE] =
        {[AG_AS_NTLM_CHALLENGED] = true, [AG_AS_VERIFYING] = true, [AG_AS_AUTHENTICATED] = true},
    [AG_AS_NTLM_CHALLENGED] = {[AG_AS_NTLM_CHALLENGED] = true, [AG_AS_VERIFYING] = true},
    [AG_AS_GSS_CONTINUE] = {[AG_AS_NTLM_CHALLENGED] = true, [AG_AS_VERIFYING] = true},
    [AG_AS_VERIFYING] = {[AG_AS_GSS_CONTINUE] = true, [AG_AS_AUTHENTICATED] = true},
    [AG_AS_AUTHENTICATED] = {[AG_AS_AUTHENTICATED] = true},
};

static void enter(struct ag_session *s, enum ag_auth_state to)
{
    (void)legal; /* read only by the assert (compiled out with NDEBUG) */
    assert(to == AG_AS_NONE || legal[s->state][to]);
    s->state = to;
}

static uint64_t strhash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

struct ag_session_table *ag_session_table_new(void)
{
    struct ag_session_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->nabuckets = 64;
    t->abuckets = calloc(t->nabuckets, sizeof *t->abuckets);
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    int rc = pthread_mutex_init(&t->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    if (!t->abuckets || rc != 0) {
        free(t->abuckets);
        free(t);
        return NULL;
    }
    return t;
}

static void free_row(struct ag_session *s)
{
    if (s->mech && s->mech_free)
        s->mech_free(s->mech);
    ag_identity_clear(&s->id);
    free(s);
}

void ag_session_table_free(struct ag_session_table *t)
{
    if (!t)
        return;
    ag_list_for_each_safe (s, n, &t->list, struct ag_session, node)
        free_row(s);
    for (size_t i = 0; i < t->nabuckets; i++)
        for (struct addr_count *a = t->abuckets[i], *n; a; a = n) {
            n = a->next;
            free(a);
        }
    free(t->abuckets);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

struct ag_session *ag_session_add(struct ag_session_table *t, uint64_t conn_id, const char *peer,
                                  uint64_t now_ms)
{
    struct ag_session *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->conn_id = conn_id;
    snprintf(s->peer, sizeof s->peer, "%s", peer);
    ag_addr_key(peer, s->addr_key);
    s->last_use_ms = now_ms;
    pthread_mutex_lock(&t->mu);
    ag_list_push_first(&t->list, &s->node);
    t->rows++;
    pthread_mutex_unlock(&t->mu);
    return s;
}

static struct addr_count **addr_slot(struct ag_session_table *t, const char *key)
{
    struct addr_count **p = &t->abuckets[strhash(key) & (t->nabuckets - 1)];
    for (; *p; p = &(*p)->next)
        if (strcmp((*p)->key, key) == 0)
            break;
    return p;
}

static void addr_grow(struct ag_session_table *t)
{
    size_t nb = t->nabuckets * 2;
    struct addr_count **b = calloc(nb, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < t->nabuckets; i++)
        for (struct addr_count *a = t->abuckets[i], *n; a; a = n) {
            n = a->next;
            size_t k = strhash(a->key) & (nb - 1);
            a->next = b[k];
            b[k] = a;
        }
    free(t->abuckets);
    t->abuckets = b;
    t->nabuckets = nb;
}

uint32_t ag_session_handshakes_from(const struct ag_session_table *t, const char *peer)
{
    char key[AG_ADDR_KEY_MAX + 1];
    ag_addr_key(peer, key);
    struct ag_session_table *m = (struct ag_session_table *)t;
    pthread_mutex_lock(&m->mu);
    struct addr_count **p = addr_slot(m, key);
    uint32_t n = *p ? (*p)->n : 0;
    pthread_mutex_unlock(&m->mu);
    return n;
}

uint32_t ag_session_addr_cap(uint32_t max_global, uint32_t max_per_addr)
{
    uint32_t share = max_global / AG_HANDSHAKE_SHARE_DIV;
    if (share == 0)
        share = 1;
    return max_per_addr < share ? max_per_addr : share;
}

static int handshake_begin(struct ag_session_table *t, struct ag_session *s, enum ag_scheme scheme,
                           uint32_t max_global, uint32_t max_per_addr, uint64_t now_ms)
{
    if (s->in_handshake && s->scheme == scheme) {
        s->rounds++;
        return 0;
    }
    if (s->in_handshake)
        ag_session_handshake_end(t, s); /* scheme switched: start from scratch */
    if (t->handshakes >= max_global) {
        t->refused_global++;
        return AG_EAGAIN;
    }
    struct addr_count **p = addr_slot(t, s->addr_key);
    if (*p && (*p)->n >= ag_session_addr_cap(max_global, max_per_addr)) {
        t->refused_addr++;
        return AG_EAGAIN;
    }
    if (!*p) {
        if (t->naddrs >= t->nabuckets) {
            addr_grow(t);
            p = addr_slot(t, s->addr_key);
        }
        struct addr_count *a = calloc(1, sizeof *a);
        if (!a)
            return AG_ENOMEM;
        memcpy(a->key, s->addr_key, sizeof a->key);
        *p = a;
        t->naddrs++;
    }
    (*p)->n++;
    t->handshakes++;
    s->in_handshake = true;
    s->scheme = scheme;
    s->rounds = 1;
    s->handshake_ms = now_ms;
    return 0;
}

int ag_session_handshake_begin(struct ag_session_table *t, struct ag_session *s,
                               enum ag_scheme scheme, uint32_t max_global, uint32_t max_per_addr,
                               uint64_t now_ms)
{
    pthread_mutex_lock(&t->mu);
    int rc = handshake_begin(t, s, scheme, max_global, max_per_addr, now_ms);
    pthread_mutex_unlock(&t->mu);
    return rc;
}

void ag_session_set_mech(struct ag_session *s, void *mech, void (*mech_free)(void *))
{
    if (s->mech && s->mech_free)
        s->mech_free(s->mech);
    s->mech = mech;
    s->mech_free = mech_free;
}

void *ag_session_take_mech(struct ag_session *s)
{
    void *m = s->mech;
    s->mech = NULL;
    s->mech_free = NULL;
    return m;
}

void ag_session_handshake_end(struct ag_session_table *t, struct ag_session *s)
{
    ag_session_set_mech(s, NULL, NULL);
    if (!s->in_handshake)
        return;
    s->in_handshake = false;
    s->rounds = 0;
    pthread_mutex_lock(&t->mu);
    t->handshakes--;
    struct addr_count **p = addr_slot(t, s->addr_key);
    if (*p && --(*p)->n == 0) {
        struct addr_count *a = *p;
        *p = a->next;
        free(a);
        t->naddrs--;
    }
    pthread_mutex_unlock(&t->mu);
}

void ag_session_authenticate(struct ag_session_table *t, struct ag_session *s,
                             enum ag_scheme scheme, struct ag_identity *id, uint64_t now_ms)
{
    ag_session_handshake_end(t, s);
    if (s->state != AG_AS_AUTHENTICATED) {
        pthread_mutex_lock(&t->mu);
        t->authenticated++;
        pthread_mutex_unlock(&t->mu);
    }
    enter(s, AG_AS_AUTHENTICATED);
    s->scheme = scheme;
    ag_identity_move(&s->id, id);
    s->authenticated_ms = s->last_use_ms = now_ms;
}

void ag_session_reset(struct ag_session_table *t, struct ag_session *s)
{
    ag_session_handshake_end(t, s);
    if (s->state == AG_AS_AUTHENTICATED) {
        pthread_mutex_lock(&t->mu);
        t->authenticated--;
        pthread_mutex_unlock(&t->mu);
    }
    enter(s, AG_AS_NONE);
    s->scheme = AG_SCHEME_NONE;
    ag_identity_clear(&s->id);
}

void ag_session_verifying(struct ag_session *s)
{
    enter(s, AG_AS_VERIFYING);
}

void ag_session_ntlm_challenged(struct ag_session *s, void *st, void (*st_free)(void *),
                                bool in_negotiate)
{
    assert(s->in_handshake && s->scheme == AG_SCHEME_NTLM);
    ag_session_set_mech(s, st, st_free);
    enter(s, AG_AS_NTLM_CHALLENGED);
    s->ntlm_in_negotiate = in_negotiate;
}

void ag_session_gss_continue(struct ag_session *s, void *ctx, void (*ctx_free)(void *))
{
    assert(s->in_handshake && s->scheme == AG_SCHEME_NEGOTIATE);
    ag_session_set_mech(s, ctx, ctx_free);
    enter(s, AG_AS_GSS_CONTINUE);
}

void ag_session_remove(struct ag_session_table *t, struct ag_session *s)
{
    if (!s)
        return;
    ag_session_reset(t, s);
    pthread_mutex_lock(&t->mu);
    ag_list_remove(&t->list, &s->node);
    t->rows--;
    pthread_mutex_unlock(&t->mu);
    free_row(s);
}

void ag_session_foreach(const struct ag_session_table *t,
                        bool (*fn)(const struct ag_session *, void *), void *arg)
{
    /* Only meaningful with one loop (the tests): other loops' rows change
     * under their own threads. */
    pthread_mutex_lock(&((struct ag_session_table *)t)->mu);
    ag_list_for_each (s, &t->list, const struct ag_session, node)
        if (!fn(s, arg))
            break;
    pthread_mutex_unlock(&((struct ag_session_table *)t)->mu);
}

void ag_session_counters(const struct ag_session_table *t, struct ag_session_counters *out)
{
    pthread_mutex_lock(&((struct ag_session_table *)t)->mu);
    out->rows = t->rows;
    out->authenticated = t->authenticated;
    out->handshakes = t->handshakes;
    out->refused_global = t->refused_global;
    out->refused_addr = t->refused_addr;
    pthread_mutex_unlock(&((struct ag_session_table *)t)->mu);
}

const char *ag_auth_state_name(enum ag_auth_state s)
{
    switch (s) {
    case AG_AS_NONE:
        return "none";
    case AG_AS_NTLM_CHALLENGED:
        return "ntlm_challenged";
    case AG_AS_GSS_CONTINUE:
        return "gss_continue";
    case AG_AS_VERIFYING:
        return "verifying";
    case AG_AS_AUTHENTICATED:
        return "authenticated";
    }
    return "?";
}
