/* rules.c - parsing and evaluating access rules (see rules.h). */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "authgate/err.h"
#include "authgate/limits.h"
#include "http/target.h"
#include "rules.h"
#include "util/addr.h"
#include "util/util.h"

struct strlist {
    char **v;
    size_t n;
};

struct range {
    uint32_t lo, hi;
};

struct twin {
    uint8_t days;      /* bit per weekday, Sunday = bit 0 */
    uint16_t from, to; /* minutes of the day, [from, to) */
};

struct group {
    char *name;
    char *sid;              /* resolved through winbind, or NULL */
    struct strlist members; /* declared in the file */
};

struct rule {
    char *name;
    int line;
    bool allow, preauth;
    struct strlist users, hosts, methods, paths;
    struct group **groups;
    size_t n_groups;
    unsigned schemes; /* bit per enum ag_scheme; 0 = any */
    struct ag_cidr *dsts, *srcs;
    size_t n_dsts, n_srcs;
    struct range *ports;
    size_t n_ports;
    struct twin *times;
    size_t n_times;
    struct ag_route route; /* allow rules: parents in order; none = direct */
    bool route_set;        /* route= given (route=direct included) */
};

/* One key of a candidate index and the rules (ascending) it names. */
struct ixslot {
    uint8_t *key; /* NULL: empty slot */
    uint32_t klen;
    uint32_t *ids;
    uint32_t n, cap;
    uint64_t *bits; /* a dense key's ids as a bitset (then ids is NULL) */
};

/* Open addressing over byte keys, at most half full. */
struct ixmap {
    struct ixslot *s;
    size_t cap, used;
};

/* The compiled form used by ag_rules_eval: candidate sets instead of a walk
 * over every rule. A rule can match a request only if, for each indexed
 * matcher, it has none (an "any" bit) or one of its values is found under
 * the request's key: host= by exact name and by every "*.suffix" of the
 * request's host, dst= by network (one hash per prefix length present, the
 * longest-prefix walk of a radix tree in at most 33 or 129 lookups). The
 * candidates are then evaluated in file order by the same rule_match as the
 * linear walk: first match wins, unchanged. */
struct ruleindex {
    size_t words;                 /* 64-rule words in each bitset */
    uint64_t *host_any, *dst_any; /* rules with no host= / no dst= */
    struct ixmap host_exact, host_wild, dst_net;
    uint8_t v4_bits[33], v6_bits[129]; /* prefix lengths present, longest first */
    unsigned n_v4_bits, n_v6_bits;
};

struct ag_rules {
    char *file; /* for messages of ag_rules_check_routes */
    struct rule *v;
    size_t n;
    struct group **groups;
    size_t n_groups;
    bool default_allow;
    bool uses_groups;
    struct ruleindex *ix; /* NULL: linear evaluation (too many rules to index) */
};

/* ---- small helpers ------------------------------------------------------- */

static void strlist_free(struct strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

static int strlist_add(struct strlist *l, const char *s)
{
    char **n = realloc(l->v, (l->n + 1) * sizeof *n);
    if (!n)
        return AG_ENOMEM;
    l->v = n;
    if (!(l->v[l->n] = strdup(s)))
        return AG_ENOMEM;
    l->n++;
    return 0;
}

static void *grow(void *p, size_t n, size_t size)
{
    return realloc(p, (n + 1) * size);
}

static int parse_range(const char *s, struct range *r)
{
    char *end;
    unsigned long lo = strtoul(s, &end, 10), hi = lo;
    if (end == s)
        return AG_EINVAL;
    if (*end == '-') {
        const char *h = end + 1;
        hi = strtoul(h, &end, 10);
        if (end == h)
            return AG_EINVAL;
    }
    if (*end || lo == 0 || hi > 65535 || lo > hi)
        return AG_EINVAL;
    r->lo = (uint32_t)lo;
    r->hi = (uint32_t)hi;
    return 0;
}

static int day_index(const char *s, size_t n)
{
    static const char *const days[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
    for (int i = 0; i < 7; i++)
        if (n == 3 && ag_strieq(s, 3, days[i]))
            return i;
    return -1;
}

/* "mon-fri@08:00-18:00", "sat@10:00-12:00", "*@00:00-24:00" */
static int parse_twin(const char *s, struct twin *t)
{
    const char *at = strchr(s, '@');
    if (!at)
        return AG_EINVAL;
    t->days = 0;
    if (at - s == 1 && s[0] == '*') {
        t->days = 0x7f;
    } else {
        const char *dash = memchr(s, '-', (size_t)(at - s));
        int a = day_index(s, dash ? (size_t)(dash - s) : (size_t)(at - s));
        int b = dash ? day_index(dash + 1, (size_t)(at - dash - 1)) : a;
        if (a < 0 || b < 0)
            return AG_EINVAL;
        for (int d = a;; d = (d + 1) % 7) {
            t->days |= (uint8_t)(1u << d);
            if (d == b)
                break;
        }
    }
    unsigned h1, m1, h2, m2;
    char tail;
    if (sscanf(at + 1, "%2u:%2u-%2u:%2u%c", &h1, &m1, &h2, &m2, &tail) != 4 || m1 > 59 || m2 > 59 ||
        h1 > 23 || h2 > 24 || (h2 == 24 && m2) || h1 * 60 + m1 >= h2 * 60 + m2)
        return AG_EINVAL;
    t->from = (uint16_t)(h1 * 60 + m1);
    t->to = (uint16_t)(h2 * 60 + m2);
    return 0;
}

/* pat and host are both canonical (ag_host_canon): one spelling each. */
static bool host_match(const char *pat, const char *host)
{
    if (pat[0] == '*' && pat[1] == '.') {
        size_t pl = strlen(pat + 1), hl = strlen(host);
        return hl > pl && ag_strieq(host + hl - pl, pl, pat + 1);
    }
    return ag_strieq(host, strlen(host), pat);
}

/* A host= entry in its canonical form: "name", "*.name", an address in any
 * spelling ag_host_canon reads, IPv6 with or without brackets. */
static int host_pattern(const char *v, char *out, size_t cap)
{
    char in[AG_HOST_MAX + 3];
    enum ag_host_kind kind;
    bool wild = v[0] == '*' && v[1] == '.';
    if (wild)
        v += 2;
    size_t n = strlen(v);
    if (n + 2 >= sizeof in)
        return AG_EINVAL;
    if (!wild && strchr(v, ':') && v[0] != '[')
        n = (size_t)snprintf(in, sizeof in, "[%s]", v);
    else
        memcpy(in, v, n + 1);
    if (wild) {
        out[0] = '*';
        out[1] = '.';
    }
    size_t o = wild ? 2 : 0;
    if (ag_host_canon(in, n, out + o, cap - o, &kind) < 0 || (wild && kind != AG_HOST_NAME))
        return AG_EINVAL;
    return 0;
}

/* Prefix match of a path= entry against the request's rule path, both
 * normalized (ag_path_normalize); letter case per rules_path_case. */
static bool path_match(const char *pat, const char *path, size_t len, bool case_sensitive)
{
    size_t pl = strlen(pat);
    if (len < pl)
        return false;
    return case_sensitive ? memcmp(path, pat, pl) == 0 : ag_strieq(path, pl, pat);
}

/* ---- identity ------------------------------------------------------------- */

/* What evaluation needs of the identity and the clock, computed once per
 * evaluation rather than once per rule. */
struct prepared {
    const struct ag_identity *id;
    char full[2 * AG_USER_MAX + 2]; /* "DOMAIN\\user", or "" without a domain */
    const char *acct;               /* account part of id->user */
    size_t acct_len, user_len, full_len;
    bool have_tm;
    unsigned wday, minute;
};

static void prepare(struct prepared *p, const struct ag_identity *id)
{
    memset(p, 0, sizeof *p);
    p->id = id;
    if (!id)
        return;
    p->user_len = strlen(id->user);
    if (id->domain[0])
        p->full_len = (size_t)snprintf(p->full, sizeof p->full, "%s\\%s", id->domain, id->user);
    const char *acct = id->user;
    const char *bs = strrchr(acct, '\\');
    if (bs)
        acct = bs + 1;
    const char *at = strchr(acct, '@');
    p->acct = acct;
    p->acct_len = at ? (size_t)(at - acct) : strlen(acct);
}

/* A rule's user entry matches the identity as "user", "DOMAIN\\user" or
 * "user@REALM"; an entry without a domain also matches the bare account of
 * any domain. Case-insensitive. */
static bool user_match(const char *entry, const struct prepared *p)
{
    if (ag_strieq(p->id->user, p->user_len, entry))
        return true;
    if (p->full_len && ag_strieq(p->full, p->full_len, entry))
        return true;
    if (strchr(entry, '\\') || strchr(entry, '@'))
        return false;
    return ag_strieq(p->acct, p->acct_len, entry);
}

static bool sid_in(const char *sids, const char *sid)
{
    size_t sl = strlen(sid);
    for (const char *p = sids; p && *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == sl && memcmp(p, sid, sl) == 0)
            return true;
        p = e ? e + 1 : NULL;
    }
    return false;
}

static bool group_match(const struct group *g, const struct prepared *p)
{
    if (g->sid && p->id->sids && sid_in(p->id->sids, g->sid))
        return true;
    for (size_t i = 0; i < g->members.n; i++)
        if (user_match(g->members.v[i], p))
            return true;
    return false;
}

/* ---- parsing -------------------------------------------------------------- */

struct pctx {
    const char *file;
    int line;
    char *err;
    size_t errlen;
    ag_group_resolver resolver;
    void *arg;
};

__attribute__((format(printf, 2, 3))) static int fail(struct pctx *x, const char *fmt, ...)
{
    int n = snprintf(x->err, x->errlen, "%s:%d: ", x->file, x->line);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < x->errlen)
        vsnprintf(x->err + n, x->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return AG_EINVAL;
}

/* Splits on blanks; "..." groups blanks (quotes are dropped). */
static size_t split(char *line, char **argv, size_t max)
{
    size_t n = 0;
    char *r = line, *w = line;
    while (*r && n < max) {
        while (*r == ' ' || *r == '\t')
            r++;
        if (!*r || *r == '#')
            break;
        argv[n++] = w;
        bool q = false;
        while (*r && (q || (*r != ' ' && *r != '\t'))) {
            if (*r == '"')
                q = !q;
            else
                *w++ = *r;
            r++;
        }
        if (*r)
            r++;
        *w++ = '\0';
    }
    return n;
}

static struct group *find_group(struct ag_rules *r, const char *name)
{
    for (size_t i = 0; i < r->n_groups; i++)
        if (ag_strieq(r->groups[i]->name, strlen(r->groups[i]->name), name))
            return r->groups[i];
    return NULL;
}

static int add_group(struct ag_rules *r, const char *name, struct group **out)
{
    struct group **n = grow(r->groups, r->n_groups, sizeof *n);
    if (!n)
        return AG_ENOMEM;
    r->groups = n;
    struct group *g = calloc(1, sizeof *g);
    if (!g || !(g->name = strdup(name))) {
        free(g);
        return AG_ENOMEM;
    }
    r->groups[r->n_groups++] = g;
    *out = g;
    return 0;
}

static int matcher(struct pctx *x, struct ag_rules *r, struct rule *ru, const char *key, char *val)
{
    if (!*val)
        return fail(x, "%s: empty value", key);
    if (strcmp(key, "route") == 0) {
        if (ru->route_set)
            return fail(x, "route= given twice");
        ru->route_set = true;
        if (strcmp(val, "direct") == 0)
            return 0;
        for (char *save = NULL, *v = strtok_r(val, ",", &save); v; v = strtok_r(NULL, ",", &save)) {
            if (strcmp(v, "direct") == 0)
                return fail(x, "route: direct cannot be mixed with parents");
            if (ru->route.n == AG_ROUTE_PARENTS_MAX)
                return fail(x, "route: more than %d parents", AG_ROUTE_PARENTS_MAX);
            char **n = grow(ru->route.parents, ru->route.n, sizeof *n);
            if (!n)
                return AG_ENOMEM;
            ru->route.parents = n;
            if (!(n[ru->route.n] = strdup(v)))
                return AG_ENOMEM;
            ru->route.n++;
        }
        return 0;
    }
    if (strcmp(key, "auth") == 0) {
        if (strcmp(val, "none") == 0)
            ru->preauth = true;
        else if (strcmp(val, "any") != 0)
            return fail(x, "auth: '%s' is not any or none", val);
        return 0;
    }
    for (char *save = NULL, *v = strtok_r(val, ",", &save); v; v = strtok_r(NULL, ",", &save)) {
        int rc = 0;
        if (strcmp(key, "user") == 0) {
            rc = strlist_add(&ru->users, v);
        } else if (strcmp(key, "group") == 0) {
            struct group *g = find_group(r, v);
            if (!g) {
                char sid[256];
                if (!x->resolver)
                    return fail(x, "group '%s' is not declared and no winbind backend resolves it",
                                v);
                int e = x->resolver(x->arg, v, sid, sizeof sid);
                if (e != 0)
                    return fail(x, "group '%s' does not resolve (%s)", v,
                                e == AG_EBACKEND ? "winbind unavailable" : "no such group");
                if (add_group(r, v, &g) != 0 || !(g->sid = strdup(sid)))
                    return AG_ENOMEM;
            }
            struct group **n = grow(ru->groups, ru->n_groups, sizeof *n);
            if (!n)
                return AG_ENOMEM;
            ru->groups = n;
            ru->groups[ru->n_groups++] = g;
            r->uses_groups = true;
        } else if (strcmp(key, "scheme") == 0) {
            if (ag_strieq(v, strlen(v), "basic"))
                ru->schemes |= 1u << AG_SCHEME_BASIC;
            else if (ag_strieq(v, strlen(v), "ntlm"))
                ru->schemes |= 1u << AG_SCHEME_NTLM;
            else if (ag_strieq(v, strlen(v), "negotiate"))
                ru->schemes |= 1u << AG_SCHEME_NEGOTIATE;
            else
                return fail(x, "scheme: '%s' is not basic, ntlm or negotiate", v);
        } else if (strcmp(key, "host") == 0) {
            char h[AG_HOST_MAX + 3];
            if (host_pattern(v, h, sizeof h) != 0)
                return fail(x, "host: '%s' is not a host name, *.domain or address", v);
            rc = strlist_add(&ru->hosts, h);
        } else if (strcmp(key, "method") == 0) {
            rc = strlist_add(&ru->methods, v);
        } else if (strcmp(key, "path") == 0) {
            if (v[0] != '/')
                return fail(x, "path: '%s' does not start with /", v);
            if (strpbrk(v, "?#"))
                return fail(x, "path: '%s' has a query or fragment", v);
            /* The entry is normalized as request paths are, so that it is
             * written in any spelling and compared in one. */
            size_t vl = strlen(v);
            char *norm = malloc(vl + 2);
            if (!norm)
                return AG_ENOMEM;
            ag_path_normalize(v, vl, norm);
            rc = strlist_add(&ru->paths, norm);
            free(norm);
        } else if (strcmp(key, "dst") == 0 || strcmp(key, "src") == 0) {
            bool dst = key[0] == 'd';
            struct ag_cidr c;
            if (ag_cidr_parse(v, &c) != 0)
                return fail(x, "%s: '%s' is not an address or CIDR network", key, v);
            struct ag_cidr **arr = dst ? &ru->dsts : &ru->srcs;
            size_t *n = dst ? &ru->n_dsts : &ru->n_srcs;
            struct ag_cidr *na = grow(*arr, *n, sizeof *na);
            if (!na)
                return AG_ENOMEM;
            *arr = na;
            na[(*n)++] = c;
        } else if (strcmp(key, "port") == 0) {
            struct range pr;
            if (parse_range(v, &pr) != 0)
                return fail(x, "port: '%s' is not a port or range", v);
            struct range *na = grow(ru->ports, ru->n_ports, sizeof *na);
            if (!na)
                return AG_ENOMEM;
            ru->ports = na;
            ru->ports[ru->n_ports++] = pr;
        } else if (strcmp(key, "time") == 0) {
            struct twin t;
            if (parse_twin(v, &t) != 0)
                return fail(x, "time: '%s' is not like mon-fri@08:00-18:00", v);
            struct twin *na = grow(ru->times, ru->n_times, sizeof *na);
            if (!na)
                return AG_ENOMEM;
            ru->times = na;
            ru->times[ru->n_times++] = t;
        } else {
            return fail(x, "unknown matcher '%s'", key);
        }
        if (rc)
            return rc;
    }
    return 0;
}

static int parse_line(struct pctx *x, struct ag_rules *r, char *line)
{
    char *argv[AG_CONFIG_MAX_VALUES];
    size_t argc = split(line, argv, AG_CONFIG_MAX_VALUES);
    if (argc == 0)
        return 0;
    if (strcmp(argv[0], "default") == 0) {
        if (argc != 2 || (strcmp(argv[1], "allow") && strcmp(argv[1], "deny")))
            return fail(x, "default takes allow or deny");
        r->default_allow = strcmp(argv[1], "allow") == 0;
        return 0;
    }
    if (strcmp(argv[0], "group") == 0) {
        if (argc < 3)
            return fail(x, "group needs a name and at least one member");
        if (find_group(r, argv[1]))
            return fail(x, "group '%s' declared twice", argv[1]);
        struct group *g;
        if (add_group(r, argv[1], &g) != 0)
            return AG_ENOMEM;
        for (size_t i = 2; i < argc; i++)
            if (strlist_add(&g->members, argv[i]) != 0)
                return AG_ENOMEM;
        return 0;
    }
    if (strcmp(argv[0], "allow") && strcmp(argv[0], "deny"))
        return fail(x, "unknown directive '%s' (allow, deny, group, default)", argv[0]);
    if (argc < 2 || strchr(argv[1], '='))
        return fail(x, "%s needs a rule name", argv[0]);
    /* Logs and 403 pages name the rule (rule=NAME): a quoted "" or a name
     * with blanks or control bytes would leave them empty or unparsable. */
    for (const char *c = argv[1]; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f)
            return fail(x, "rule name with a blank or control character");
    if (argv[1][0] == '\0')
        return fail(x, "%s needs a rule name", argv[0]);
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->v[i].name, argv[1]) == 0)
            return fail(x, "rule '%s' defined twice", argv[1]);
    struct rule *nv = grow(r->v, r->n, sizeof *nv);
    if (!nv)
        return AG_ENOMEM;
    r->v = nv;
    struct rule *ru = &r->v[r->n++];
    memset(ru, 0, sizeof *ru);
    ru->allow = argv[0][0] == 'a';
    ru->line = x->line;
    if (!(ru->name = strdup(argv[1])))
        return AG_ENOMEM;
    for (size_t i = 2; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq)
            return fail(x, "'%s' is not key=value", argv[i]);
        *eq = '\0';
        int rc = matcher(x, r, ru, argv[i], eq + 1);
        if (rc)
            return rc;
    }
    if (ru->preauth && (ru->users.n || ru->n_groups || ru->schemes))
        return fail(x, "rule '%s': auth=none cannot match users, groups or schemes", ru->name);
    if (ru->route_set && !ru->allow)
        return fail(x, "rule '%s': route= is for allow rules", ru->name);
    /* The destination address is known only when the gateway itself
     * resolves the name, which it does not when a parent does. */
    if (ru->route.n && ru->n_dsts)
        return fail(x, "rule '%s': route= through a parent cannot be combined with dst=", ru->name);
    return 0;
}

/* ---- the candidate index -------------------------------------------------- */

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3u;
    return h;
}

static const struct ixslot *ix_find(const struct ixmap *m, const uint8_t *k, size_t n)
{
    if (!m->cap)
        return NULL;
    for (size_t i = hash_bytes(k, n) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        const struct ixslot *s = &m->s[i];
        if (!s->key)
            return NULL;
        if (s->klen == n && memcmp(s->key, k, n) == 0)
            return s;
    }
}

static int ix_grow(struct ixmap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 64;
    struct ixslot *ns = calloc(ncap, sizeof *ns);
    if (!ns)
        return AG_ENOMEM;
    for (size_t j = 0; j < m->cap; j++) {
        if (!m->s[j].key)
            continue;
        size_t i = hash_bytes(m->s[j].key, m->s[j].klen) & (ncap - 1);
        while (ns[i].key)
            i = (i + 1) & (ncap - 1);
        ns[i] = m->s[j];
    }
    free(m->s);
    m->s = ns;
    m->cap = ncap;
    return 0;
}

/* Rule id under key k; ids come in ascending order (rules in file order). */
static int ix_add(struct ixmap *m, const uint8_t *k, size_t n, uint32_t id)
{
    if ((m->used + 1) * 2 > m->cap && ix_grow(m) != 0)
        return AG_ENOMEM;
    size_t i = hash_bytes(k, n) & (m->cap - 1);
    while (m->s[i].key && !(m->s[i].klen == n && memcmp(m->s[i].key, k, n) == 0))
        i = (i + 1) & (m->cap - 1);
    struct ixslot *s = &m->s[i];
    if (!s->key) {
        if (!(s->key = malloc(n ? n : 1)))
            return AG_ENOMEM;
        memcpy(s->key, k, n);
        s->klen = (uint32_t)n;
        m->used++;
    }
    if (s->n && s->ids[s->n - 1] == id)
        return 0; /* the same rule twice under one key (host=a,A) */
    if (s->n == s->cap) {
        uint32_t ncap = s->cap ? s->cap * 2 : 2;
        uint32_t *ni = grow(s->ids, ncap, sizeof *ni);
        if (!ni)
            return AG_ENOMEM;
        s->ids = ni;
        s->cap = ncap;
    }
    s->ids[s->n++] = id;
    return 0;
}

static void ix_free(struct ixmap *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        free(m->s[i].key);
        free(m->s[i].ids);
        free(m->s[i].bits);
    }
    free(m->s);
}

static void index_free(struct ruleindex *ix)
{
    if (!ix)
        return;
    free(ix->host_any);
    free(ix->dst_any);
    ix_free(&ix->host_exact);
    ix_free(&ix->host_wild);
    ix_free(&ix->dst_net);
    free(ix);
}

/* Lower-case copy of a host (patterns and requests are canonical; host_match
 * compares without case all the same): the index key. */
static size_t host_key(const char *h, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (; h[n] && n < cap; n++)
        out[n] = (uint8_t)ag_ascii_lower(h[n]);
    return n;
}

/* family, prefix length and the address masked to it. */
static size_t net_key(int family, const uint8_t *a, unsigned bits, uint8_t out[18])
{
    size_t len = family == AF_INET ? 4 : 16;
    out[0] = (uint8_t)(family == AF_INET ? 4 : 6);
    out[1] = (uint8_t)bits;
    for (size_t i = 0; i < len; i++) {
        unsigned keep = bits >= 8 * (i + 1) ? 8 : bits > 8 * i ? bits - 8 * (unsigned)i : 0;
        out[2 + i] = keep ? (uint8_t)(a[i] & (0xff << (8 - keep))) : 0;
    }
    return 2 + len;
}

static void note_bits(uint8_t *list, unsigned *n, unsigned bits)
{
    for (unsigned i = 0; i < *n; i++)
        if (list[i] == bits)
            return;
    unsigned i = (*n)++;
    for (; i > 0 && list[i - 1] < bits; i--) /* longest first */
        list[i] = list[i - 1];
    list[i] = (uint8_t)bits;
}

static struct ruleindex *index_build(const struct ag_rules *r)
{
    struct ruleindex *ix = calloc(1, sizeof *ix);
    if (!ix)
        return NULL;
    ix->words = (r->n + 63) / 64;
    ix->host_any = calloc(ix->words ? ix->words : 1, sizeof *ix->host_any);
    ix->dst_any = calloc(ix->words ? ix->words : 1, sizeof *ix->dst_any);
    int rc = ix->host_any && ix->dst_any ? 0 : AG_ENOMEM;
    for (size_t id = 0; id < r->n && !rc; id++) {
        const struct rule *ru = &r->v[id];
        uint64_t bit = 1ull << (id % 64);
        if (!ru->hosts.n)
            ix->host_any[id / 64] |= bit;
        for (size_t i = 0; i < ru->hosts.n && !rc; i++) {
            const char *pat = ru->hosts.v[i];
            bool wild = pat[0] == '*' && pat[1] == '.';
            uint8_t k[AG_HOST_MAX + 3];
            size_t kn = host_key(wild ? pat + 2 : pat, k, sizeof k);
            rc = ix_add(wild ? &ix->host_wild : &ix->host_exact, k, kn, (uint32_t)id);
        }
        if (!ru->n_dsts)
            ix->dst_any[id / 64] |= bit;
        for (size_t i = 0; i < ru->n_dsts && !rc; i++) {
            const struct ag_cidr *c = &ru->dsts[i];
            uint8_t k[18];
            size_t kn = net_key(c->family, c->a, c->bits, k);
            rc = ix_add(&ix->dst_net, k, kn, (uint32_t)id);
            if (c->family == AF_INET)
                note_bits(ix->v4_bits, &ix->n_v4_bits, c->bits);
            else
                note_bits(ix->v6_bits, &ix->n_v6_bits, c->bits);
        }
    }
    /* A key that names many rules (a host in every rule) is ORed a word at
     * a time: a bitset where it is smaller than the id list. */
    struct ixmap *maps[] = {&ix->host_exact, &ix->host_wild, &ix->dst_net};
    for (size_t m = 0; m < 3 && !rc; m++)
        for (size_t i = 0; i < maps[m]->cap && !rc; i++) {
            struct ixslot *s = &maps[m]->s[i];
            if (!s->key || s->n <= 2 * ix->words)
                continue;
            if (!(s->bits = calloc(ix->words, sizeof *s->bits))) {
                rc = AG_ENOMEM;
                break;
            }
            for (uint32_t j = 0; j < s->n; j++)
                s->bits[s->ids[j] / 64] |= 1ull << (s->ids[j] % 64);
            free(s->ids);
            s->ids = NULL;
        }
    if (rc) {
        index_free(ix);
        return NULL;
    }
    return ix;
}

static void set_ids(uint64_t *bits, const struct ixslot *s, size_t words)
{
    if (!s)
        return;
    if (s->bits) {
        for (size_t w = 0; w < words; w++)
            bits[w] |= s->bits[w];
        return;
    }
    for (uint32_t i = 0; i < s->n; i++)
        bits[s->ids[i] / 64] |= 1ull << (s->ids[i] % 64);
}

/* The rules that may match q (a superset of those that do), as a bitset. */
static void candidates(const struct ruleindex *ix, const struct ag_rules_query *q, uint64_t *out)
{
    memcpy(out, ix->host_any, ix->words * sizeof *out);
    uint8_t k[AG_HOST_MAX + 3] = {0};
    size_t kn = host_key(q->host, k, sizeof k);
    set_ids(out, ix_find(&ix->host_exact, k, kn), ix->words);
    /* "*.name" matches a host with at least one label before ".name". */
    for (size_t i = 1; i < kn; i++)
        if (k[i] == '.' && i + 1 < kn)
            set_ids(out, ix_find(&ix->host_wild, k + i + 1, kn - i - 1), ix->words);
    if (!q->dst)
        return; /* dst= rules stay candidates: they answer "need the address" */
    const uint8_t *a = NULL;
    int fam = ag_addr_bytes(q->dst, &a);
    uint64_t dst[AG_RULES_INDEX_MAX / 64];
    memcpy(dst, ix->dst_any, ix->words * sizeof *dst);
    if (fam == AF_INET || fam == AF_INET6) {
        const uint8_t *lens = fam == AF_INET ? ix->v4_bits : ix->v6_bits;
        unsigned nl = fam == AF_INET ? ix->n_v4_bits : ix->n_v6_bits;
        for (unsigned i = 0; i < nl; i++) {
            uint8_t nk[18];
            size_t nkn = net_key(fam, a, lens[i], nk);
            set_ids(dst, ix_find(&ix->dst_net, nk, nkn), ix->words);
        }
    }
    for (size_t w = 0; w < ix->words; w++)
        out[w] &= dst[w];
}

struct ag_rules *ag_rules_parse(const char *text, const char *name, ag_group_resolver resolver,
                                void *arg, char *err, size_t errlen)
{
    struct ag_rules *r = calloc(1, sizeof *r);
    char *copy = strdup(text);
    if (!r || !copy) {
        free(r);
        free(copy);
        snprintf(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    r->default_allow = true;
    if (!(r->file = strdup(name))) {
        free(r);
        free(copy);
        snprintf(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    struct pctx x = {name, 0, err, errlen, resolver, arg};
    int rc = 0;
    for (char *line = copy; line && !rc;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        x.line++;
        rc = parse_line(&x, r, line);
        line = nl ? nl + 1 : NULL;
    }
    free(copy);
    if (!rc && r->n <= AG_RULES_INDEX_MAX && !(r->ix = index_build(r)))
        rc = AG_ENOMEM;
    if (rc) {
        if (rc == AG_ENOMEM)
            snprintf(err, errlen, "%s:%d: out of memory", name, x.line);
        ag_rules_free(r);
        return NULL;
    }
    return r;
}

struct ag_rules *ag_rules_load(const char *path, ag_group_resolver resolver, void *arg, char *err,
                               size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open", path);
        return NULL;
    }
    struct ag_buf b;
    ag_buf_init(&b, AG_RULES_MAX_BYTES);
    char chunk[4096];
    size_t n;
    int rc = 0;
    while (!rc && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = ag_buf_append(&b, chunk, n);
    fclose(f);
    if (rc || ag_buf_append(&b, "", 1) != 0) {
        snprintf(err, errlen, "%s: larger than %d bytes", path, AG_RULES_MAX_BYTES);
        ag_buf_free(&b);
        return NULL;
    }
    if (memchr(b.data, '\0', b.len - 1)) {
        snprintf(err, errlen, "%s: contains a NUL byte", path);
        ag_buf_free(&b);
        return NULL;
    }
    struct ag_rules *r = ag_rules_parse(b.data, path, resolver, arg, err, errlen);
    ag_buf_free(&b);
    return r;
}

void ag_rules_free(struct ag_rules *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        struct rule *ru = &r->v[i];
        free(ru->name);
        strlist_free(&ru->users);
        strlist_free(&ru->hosts);
        strlist_free(&ru->methods);
        strlist_free(&ru->paths);
        free(ru->groups);
        free(ru->dsts);
        free(ru->srcs);
        free(ru->ports);
        free(ru->times);
        for (size_t k = 0; k < ru->route.n; k++)
            free(ru->route.parents[k]);
        free(ru->route.parents);
    }
    for (size_t i = 0; i < r->n_groups; i++) {
        free(r->groups[i]->name);
        free(r->groups[i]->sid);
        strlist_free(&r->groups[i]->members);
        free(r->groups[i]);
    }
    free(r->groups);
    free(r->v);
    free(r->file);
    index_free(r->ix);
    free(r);
}

/* ---- evaluation ----------------------------------------------------------- */

enum m { NO = 0, YES, MAYBE, UNKNOWN };

static enum m rule_match(const struct rule *ru, const struct ag_rules_query *q, struct prepared *p)
{
    bool unknown = false;
    if (ru->users.n || ru->n_groups || ru->schemes) {
        if (!q->id)
            return NO;
        if (ru->schemes && !(ru->schemes & (1u << q->scheme)))
            return NO;
        bool ok = ru->users.n == 0 && ru->n_groups == 0;
        for (size_t i = 0; i < ru->users.n && !ok; i++)
            ok = user_match(ru->users.v[i], p);
        for (size_t i = 0; i < ru->n_groups && !ok; i++) {
            ok = group_match(ru->groups[i], p);
            /* A winbind group of an identity whose lookup failed: decided
             * below, once the rest of the rule is known to match. */
            if (!ok && ru->groups[i]->sid && q->id->groups_unknown)
                unknown = true;
        }
        if (!ok && !unknown)
            return NO;
        if (ok)
            unknown = false;
    }
    if (ru->hosts.n) {
        bool ok = false;
        for (size_t i = 0; i < ru->hosts.n && !ok; i++)
            ok = host_match(ru->hosts.v[i], q->host);
        if (!ok)
            return NO;
    }
    if (ru->n_ports) {
        bool ok = false;
        for (size_t i = 0; i < ru->n_ports && !ok; i++)
            ok = q->port >= ru->ports[i].lo && q->port <= ru->ports[i].hi;
        if (!ok)
            return NO;
    }
    if (ru->methods.n) {
        bool ok = false;
        for (size_t i = 0; i < ru->methods.n && !ok; i++)
            ok = ag_strieq(q->method, strlen(q->method), ru->methods.v[i]);
        if (!ok)
            return NO;
    }
    if (ru->paths.n) {
        bool ok = false;
        for (size_t i = 0; i < ru->paths.n && !ok && q->path; i++)
            ok = path_match(ru->paths.v[i], q->path, q->path_len, q->path_case_sensitive);
        if (!ok)
            return NO;
    }
    if (ru->n_srcs) {
        bool ok = false;
        for (size_t i = 0; i < ru->n_srcs && !ok && q->src; i++)
            ok = ag_cidr_match(&ru->srcs[i], q->src);
        if (!ok)
            return NO;
    }
    if (ru->n_times) {
        if (!p->have_tm) {
            struct tm tm;
            localtime_r(&q->now, &tm);
            p->wday = (unsigned)tm.tm_wday;
            p->minute = (unsigned)(tm.tm_hour * 60 + tm.tm_min);
            p->have_tm = true;
        }
        bool ok = false;
        for (size_t i = 0; i < ru->n_times && !ok; i++)
            ok = (ru->times[i].days & (1u << p->wday)) && p->minute >= ru->times[i].from &&
                 p->minute < ru->times[i].to;
        if (!ok)
            return NO;
    }
    /* Unknown groups refuse before DNS: no address can make them known. */
    if (unknown)
        return UNKNOWN;
    if (ru->n_dsts) {
        if (!q->dst)
            return MAYBE;
        bool ok = false;
        for (size_t i = 0; i < ru->n_dsts && !ok; i++)
            ok = ag_cidr_match(&ru->dsts[i], q->dst);
        if (!ok)
            return NO;
    }
    return YES;
}

/* One rule's turn in file order: true when it decides (*v set). */
static bool decide(const struct rule *ru, const struct ag_rules_query *q, struct prepared *p,
                   bool preauth, const char **rule, bool *recheck, enum ag_rule_verdict *v)
{
    if (ru->preauth != preauth)
        return false;
    enum m m = rule_match(ru, q, p);
    if (m == MAYBE && preauth) {
        if (recheck)
            *recheck = true;
        return false;
    }
    if (m == NO)
        return false;
    *rule = ru->name;
    if (m == YES && q->route)
        *q->route = ru->allow && ru->route.n ? &ru->route : NULL;
    *v = m == MAYBE     ? AG_RULE_NEED_ADDR
         : m == UNKNOWN ? AG_RULE_GROUPS_UNKNOWN
         : ru->allow    ? AG_RULE_ALLOW
                        : AG_RULE_DENY;
    return true;
}

static enum ag_rule_verdict eval(const struct ag_rules *r, const struct ag_rules_query *q,
                                 bool preauth, const char **rule, bool *recheck, bool linear)
{
    struct prepared p;
    enum ag_rule_verdict v;
    prepare(&p, q->id);
    if (linear || !r->ix || !q->host) {
        for (size_t i = 0; i < r->n; i++)
            if (decide(&r->v[i], q, &p, preauth, rule, recheck, &v))
                return v;
    } else {
        uint64_t cand[AG_RULES_INDEX_MAX / 64];
        candidates(r->ix, q, cand);
        for (size_t w = 0; w < r->ix->words; w++)
            for (uint64_t bits = cand[w]; bits; bits &= bits - 1) {
                size_t i = w * 64 + (size_t)__builtin_ctzll(bits);
                if (decide(&r->v[i], q, &p, preauth, rule, recheck, &v))
                    return v;
            }
    }
    *rule = "default";
    if (q->route)
        *q->route = NULL;
    if (preauth)
        return AG_RULE_NO_MATCH;
    return r->default_allow ? AG_RULE_ALLOW : AG_RULE_DENY;
}

int ag_rules_check_routes(const struct ag_rules *r, const struct ag_config *cfg, char *err,
                          size_t errlen)
{
    for (size_t i = 0; r && i < r->n; i++)
        for (size_t k = 0; k < r->v[i].route.n; k++)
            if (!ag_config_parent(cfg, r->v[i].route.parents[k])) {
                snprintf(err, errlen,
                         "%s:%d: rule '%s': route names '%s', which no parent line of the "
                         "configuration defines",
                         r->file, r->v[i].line, r->v[i].name, r->v[i].route.parents[k]);
                return AG_EINVAL;
            }
    return 0;
}

const struct ag_route *ag_rules_route_of(const struct ag_rules *r, const char *name)
{
    for (size_t i = 0; r && i < r->n; i++)
        if (strcmp(r->v[i].name, name) == 0)
            return r->v[i].route.n ? &r->v[i].route : NULL;
    return NULL;
}

enum ag_rule_verdict ag_rules_eval(const struct ag_rules *r, const struct ag_rules_query *q,
                                   bool preauth, const char **rule, bool *recheck)
{
    return eval(r, q, preauth, rule, recheck, false);
}

enum ag_rule_verdict ag_rules_eval_linear(const struct ag_rules *r, const struct ag_rules_query *q,
                                          bool preauth, const char **rule, bool *recheck)
{
    return eval(r, q, preauth, rule, recheck, true);
}

bool ag_rules_use_groups(const struct ag_rules *r)
{
    return r && r->uses_groups;
}

size_t ag_rules_count(const struct ag_rules *r)
{
    return r ? r->n : 0;
}
