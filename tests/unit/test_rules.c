/* test_rules.c - access rules: parsing errors with file:line, first match
 * wins, every matcher, groups (declared and resolved), pre-auth rules, the
 * dst= deferral for host names, and a thousand rules. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "authgate/err.h"
#include "http/target.h"
#include "rules/rules.h"

static int fake_resolver(void *arg, const char *name, char *sid, size_t cap)
{
    if (strcmp(name, "CORP\\Internet Users") == 0) {
        snprintf(sid, cap, "S-1-5-21-1-2-3-1105");
        return 0;
    }
    return AG_ENOTFOUND;
}

static struct ag_rules *parse(const char *text, char *err, size_t n)
{
    return ag_rules_parse(text, "rules", fake_resolver, NULL, err, n);
}

static struct sockaddr_storage addr(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
        ss.ss_family = AF_INET;
    else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
        ss.ss_family = AF_INET6;
    return ss;
}

struct q {
    const char *user, *domain, *sids;
    bool groups_unknown;
    const char *host, *dst, *method, *path, *src;
    uint16_t port;
    enum ag_scheme scheme;
    bool preauth, case_sensitive;
    enum ag_rule_verdict want;
    const char *want_rule;
};

static void run(struct ag_rules *r, const struct q *t)
{
    struct ag_identity id;
    memset(&id, 0, sizeof id);
    if (t->user) {
        snprintf(id.user, sizeof id.user, "%s", t->user);
        snprintf(id.domain, sizeof id.domain, "%s", t->domain ? t->domain : "");
        id.sids = (char *)t->sids;
        id.groups_unknown = t->groups_unknown;
    }
    struct sockaddr_storage dst = t->dst ? addr(t->dst) : addr("0.0.0.0");
    struct sockaddr_storage src = addr(t->src ? t->src : "10.1.2.3");
    /* as the server does: the host canonical, the path normalized */
    const char *raw = t->path ? t->path : "/";
    char path[256], host[AG_HOST_MAX + 1];
    enum ag_host_kind kind;
    ag_path_normalize(raw, strlen(raw), path);
    const char *h = t->host ? t->host : "www.example.com";
    if (ag_host_canon(h, strlen(h), host, sizeof host, &kind) < 0)
        fail_msg("host %s does not canonicalize", h);
    struct ag_rules_query q = {
        .host = host,
        .dst = t->dst ? (struct sockaddr *)&dst : NULL,
        .port = t->port ? t->port : 80,
        .method = t->method ? t->method : "GET",
        .path = path,
        .path_len = strlen(path),
        .path_case_sensitive = t->case_sensitive,
        .src = (struct sockaddr *)&src,
        .id = t->user ? &id : NULL,
        .scheme = t->scheme ? t->scheme : AG_SCHEME_NTLM,
        .now = 1795971600, /* a Sunday, 2026-11-29 17:00 UTC */
    };
    const char *rule = NULL;
    enum ag_rule_verdict v = ag_rules_eval(r, &q, t->preauth, &rule, NULL);
    if (v != t->want || strcmp(rule, t->want_rule) != 0)
        fail_msg("user=%s host=%s: got %d/%s, want %d/%s", t->user ? t->user : "-", q.host, v, rule,
                 t->want, t->want_rule);
}

static const char policy[] =
    "# a policy\n"
    "default deny\n"
    "group internet alice bob\n"
    "allow updates auth=none host=*.update.example port=80,443\n"
    "deny  no-admin path=/admin/ host=intranet.corp.example\n"
    "allow intranet host=*.corp.example,corp.example port=80,443,8000-8099\n"
    "allow staff group=internet\n"
    "allow ad-users group=\"CORP\\Internet Users\"\n"
    "allow tls-only method=CONNECT port=443 user=carol\n"
    "deny  lan dst=10.0.0.0/8,fd00::/8\n"
    "allow lab src=192.168.0.0/16 scheme=negotiate\n"
    "allow weekend user=dave time=sat-sun@00:00-24:00\n"
    "allow office user=erin time=mon-fri@08:00-18:00\n";

static void test_policy(void **state)
{
    char err[256];
    setenv("TZ", "UTC", 1);
    struct ag_rules *r = parse(policy, err, sizeof err);
    if (!r)
        fail_msg("%s", err);
    assert_true(ag_rules_use_groups(r));
    assert_int_equal(ag_rules_count(r), 10);
    const struct q rows[] = {
        /* pre-auth: only auth=none rules; no match means authenticate */
        {.host = "dl.update.example",
         .preauth = true,
         .want = AG_RULE_ALLOW,
         .want_rule = "updates"},
        {.host = "update.example",
         .preauth = true,
         .want = AG_RULE_NO_MATCH,
         .want_rule = "default"},
        {.host = "dl.update.example",
         .port = 8080,
         .preauth = true,
         .want = AG_RULE_NO_MATCH,
         .want_rule = "default"},
        /* first match wins: the deny before the allow */
        {.user = "zed",
         .host = "intranet.corp.example",
         .path = "/admin/users",
         .want = AG_RULE_DENY,
         .want_rule = "no-admin"},
        {.user = "zed",
         .host = "intranet.corp.example",
         .path = "/wiki",
         .want = AG_RULE_ALLOW,
         .want_rule = "intranet"},
        {.user = "zed",
         .host = "corp.example",
         .port = 8050,
         .want = AG_RULE_ALLOW,
         .want_rule = "intranet"},
        {.user = "zed",
         .host = "corp.example",
         .port = 8100,
         .dst = "192.0.2.1",
         .want = AG_RULE_DENY,
         .want_rule = "default"},
        /* declared group, any domain form */
        {.user = "alice", .domain = "CORP", .want = AG_RULE_ALLOW, .want_rule = "staff"},
        {.user = "BOB@CORP.EXAMPLE", .want = AG_RULE_ALLOW, .want_rule = "staff"},
        /* resolved group: by SID from the backend */
        {.user = "frank",
         .domain = "CORP",
         .sids = "S-1-5-21-1-2-3-1001,S-1-5-21-1-2-3-1105",
         .want = AG_RULE_ALLOW,
         .want_rule = "ad-users"},
        {.user = "frank",
         .domain = "CORP",
         .sids = "S-1-5-21-1-2-3-11050",
         .dst = "192.0.2.1",
         .want = AG_RULE_DENY,
         .want_rule = "default"},
        /* method + port + user */
        {.user = "carol",
         .method = "CONNECT",
         .port = 443,
         .want = AG_RULE_ALLOW,
         .want_rule = "tls-only"},
        {.user = "carol",
         .method = "GET",
         .port = 443,
         .dst = "192.0.2.1",
         .want = AG_RULE_DENY,
         .want_rule = "default"},
        /* dst: a name cannot decide yet; an address can */
        {.user = "zed", .host = "db.internal", .want = AG_RULE_NEED_ADDR, .want_rule = "lan"},
        {.user = "zed",
         .host = "db.internal",
         .dst = "10.9.8.7",
         .want = AG_RULE_DENY,
         .want_rule = "lan"},
        {.user = "zed",
         .host = "db.internal",
         .dst = "::ffff:10.9.8.7",
         .want = AG_RULE_DENY,
         .want_rule = "lan"},
        {.user = "zed",
         .host = "db.internal",
         .dst = "fd00::1",
         .want = AG_RULE_DENY,
         .want_rule = "lan"},
        {.user = "zed",
         .host = "db.internal",
         .dst = "192.0.2.1",
         .want = AG_RULE_DENY,
         .want_rule = "default"},
        /* src + scheme */
        {.user = "zed",
         .src = "192.168.4.4",
         .scheme = AG_SCHEME_NEGOTIATE,
         .dst = "192.0.2.1",
         .want = AG_RULE_ALLOW,
         .want_rule = "lab"},
        {.user = "zed",
         .src = "192.168.4.4",
         .scheme = AG_SCHEME_BASIC,
         .dst = "192.0.2.1",
         .want = AG_RULE_DENY,
         .want_rule = "default"},
        /* time windows (the clock says Sunday 17:00 UTC) */
        {.user = "dave", .dst = "192.0.2.1", .want = AG_RULE_ALLOW, .want_rule = "weekend"},
        {.user = "erin", .dst = "192.0.2.1", .want = AG_RULE_DENY, .want_rule = "default"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        run(r, &rows[i]);
    ag_rules_free(r);
}

static void test_errors(void **state)
{
    static const struct {
        const char *text, *want;
    } rows[] = {
        {"allow", "rules:1: allow needs a rule name"},
        /* found by fuzz_rules: a quoted empty name, or one with blanks, would
         * leave "rule=" empty or unparsable in logs and 403 pages */
        {"deny \"\" host=x", "rules:1: deny needs a rule name"},
        {"deny \"a b\"", "rules:1: rule name with a blank or control character"},
        {"allow \"a\tb\"", "rules:1: rule name with a blank or control character"},
        {"\n\nallow a foo", "rules:3: 'foo' is not key=value"},
        {"allow a colour=red", "rules:1: unknown matcher 'colour'"},
        {"allow a group=nosuch", "rules:1: group 'nosuch' does not resolve (no such group)"},
        {"allow a port=0", "rules:1: port: '0' is not a port or range"},
        {"allow a port=90-80", "rules:1: port: '90-80' is not a port or range"},
        {"allow a dst=10.0.0.0/33",
         "rules:1: dst: '10.0.0.0/33' is not an address or CIDR network"},
        {"allow a time=mon@18:00-08:00",
         "rules:1: time: 'mon@18:00-08:00' is not like mon-fri@08:00-18:00"},
        {"allow a path=admin", "rules:1: path: 'admin' does not start with /"},
        {"allow a auth=none user=x",
         "rules:1: rule 'a': auth=none cannot match users, groups or schemes"},
        {"allow a\ndeny a", "rules:2: rule 'a' defined twice"},
        {"permit a", "rules:1: unknown directive 'permit' (allow, deny, group, default)"},
        {"default maybe", "rules:1: default takes allow or deny"},
        {"group g", "rules:1: group needs a name and at least one member"},
        {"allow a user=", "rules:1: user: empty value"},
        {"deny a host=secret.test..", "rules:1: host: 'secret.test..' is not a host name, *.domain "
                                      "or address"},
        {"deny a host=*.127.0.0.1", "rules:1: host: '*.127.0.0.1' is not a host name, *.domain or "
                                    "address"},
        {"deny a host=1.2.3.4.5", "rules:1: host: '1.2.3.4.5' is not a host name, *.domain or "
                                  "address"},
        {"deny a host=a%2eb", "rules:1: host: 'a%2eb' is not a host name, *.domain or address"},
        {"deny a path=/admin?x=1", "rules:1: path: '/admin?x=1' has a query or fragment"},
        {"deny a route=p", "rules:1: rule 'a': route= is for allow rules"},
        {"allow a route=p,direct", "rules:1: route: direct cannot be mixed with parents"},
        {"allow a route=p route=q", "rules:1: route= given twice"},
        {"allow a dst=10.0.0.0/8 route=p",
         "rules:1: rule 'a': route= through a parent cannot be combined with dst="},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char err[256] = "";
        struct ag_rules *r = parse(rows[i].text, err, sizeof err);
        if (r)
            fail_msg("'%s' parsed", rows[i].text);
        if (strcmp(err, rows[i].want) != 0)
            fail_msg("'%s':\n got %s\nwant %s", rows[i].text, err, rows[i].want);
    }
    /* without winbind, only declared groups exist */
    char err[256];
    assert_null(ag_rules_parse("allow a group=x", "r", NULL, NULL, err, sizeof err));
    assert_string_equal(err, "r:1: group 'x' is not declared and no winbind backend resolves it");
}

/* route=: the deciding allow rule's parents, in order; direct for
 * route=direct, rules without route= and the default; names checked
 * against the configuration's parent lines. */
static void test_routes(void **state)
{
    char err[256];
    struct ag_rules *r = parse("allow isp host=*.example route=a,b\n"
                               "allow lan host=lan.test route=direct\n"
                               "allow pre auth=none host=open.test route=b\n"
                               "deny evil host=evil.test\n",
                               err, sizeof err);
    assert_non_null(r);
    const char *rule;
    const struct ag_route *route = (const struct ag_route *)1;
    struct ag_rules_query q = {.host = "www.example", .port = 80, .method = "GET", .route = &route};
    assert_int_equal(ag_rules_eval(r, &q, false, &rule, NULL), AG_RULE_ALLOW);
    assert_non_null(route);
    assert_int_equal(route->n, 2);
    assert_string_equal(route->parents[0], "a");
    assert_string_equal(route->parents[1], "b");
    q.host = "lan.test";
    assert_int_equal(ag_rules_eval(r, &q, false, &rule, NULL), AG_RULE_ALLOW);
    assert_null(route);
    q.host = "open.test";
    assert_int_equal(ag_rules_eval(r, &q, true, &rule, NULL), AG_RULE_ALLOW);
    assert_non_null(route);
    assert_string_equal(route->parents[0], "b");
    q.host = "evil.test";
    assert_int_equal(ag_rules_eval(r, &q, false, &rule, NULL), AG_RULE_DENY);
    assert_null(route);
    q.host = "other.test";
    assert_int_equal(ag_rules_eval(r, &q, false, &rule, NULL), AG_RULE_ALLOW);
    assert_string_equal(rule, "default");
    assert_null(route);
    assert_non_null(ag_rules_route_of(r, "isp"));
    assert_null(ag_rules_route_of(r, "lan"));

    struct ag_config *cfg =
        ag_config_parse("parent a a.test:3128\n", 21, "c", NULL, err, sizeof err);
    assert_non_null(cfg);
    assert_int_equal(ag_rules_check_routes(r, cfg, err, sizeof err), AG_EINVAL);
    assert_string_equal(err, "rules:1: rule 'isp': route names 'b', which no parent line of the "
                             "configuration defines");
    ag_config_unref(cfg);
    cfg = ag_config_parse("parent a a.test:3128\nparent b b.test:8080\n", 42, "c", NULL, err,
                          sizeof err);
    assert_non_null(cfg);
    assert_int_equal(ag_rules_check_routes(r, cfg, err, sizeof err), 0);
    ag_config_unref(cfg);
    ag_rules_free(r);
}

static void test_default_allow_and_counters(void **state)
{
    char err[256];
    struct ag_rules *r = parse("deny evil host=evil.example\n", err, sizeof err);
    assert_non_null(r);
    run(r, &(struct q){
               .user = "x", .host = "evil.example", .want = AG_RULE_DENY, .want_rule = "evil"});
    run(r, &(struct q){
               .user = "x", .host = "good.example", .want = AG_RULE_ALLOW, .want_rule = "default"});
    ag_rules_free(r);
}

/* Issue 10: one spelling per host, address and path. Every spelling of a
 * denied host, address or path gets the deny; the rules may be written in
 * any spelling too. */
static void test_one_spelling(void **state)
{
    char err[256];
    struct ag_rules *r = parse("default allow\n"
                               "deny secret host=Secret.Test.,0x7f.0.0.2\n"
                               "deny v6 host=[2001:DB8:0::1],2001:db8::2\n"
                               "deny wild host=*.Blocked.Test.\n"
                               "deny mapped-rule dst=::ffff:10.0.0.0/104\n"
                               "deny loop dst=127.0.0.0/8,::1/128\n"
                               "deny lan-src src=::ffff:192.168.0.0/112\n"
                               "deny admin path=/admin/\n"
                               "deny cgi path=/CGI-BIN/./x/../\n",
                               err, sizeof err);
    if (!r)
        fail_msg("%s", err);
    static const char *const secret[] = {
        "secret.test", "SECRET.test.", "127.0.0.2",          "127.2",
        "2130706434",  "0x7f.0.0.2",   "[::ffff:127.0.0.2]", "0177.0.0.2"};
    for (size_t i = 0; i < sizeof secret / sizeof secret[0]; i++)
        run(r, &(struct q){
                   .user = "x", .host = secret[i], .want = AG_RULE_DENY, .want_rule = "secret"});
    run(r, &(struct q){.user = "x",
                       .host = "[2001:db8:0:0:0:0:0:1]",
                       .want = AG_RULE_DENY,
                       .want_rule = "v6"});
    run(r,
        &(struct q){.user = "x", .host = "[2001:DB8::2]", .want = AG_RULE_DENY, .want_rule = "v6"});
    run(r, &(struct q){
               .user = "x", .host = "a.blocked.test.", .want = AG_RULE_DENY, .want_rule = "wild"});
    run(r, &(struct q){.user = "x",
                       .host = "secret.test.example",
                       .dst = "192.0.2.1",
                       .want = AG_RULE_ALLOW,
                       .want_rule = "default"});
    /* dst=/src=: IPv4-mapped IPv6 is IPv4, in the rule and in the address */
    static const char *const ten[] = {"10.1.2.3", "::ffff:10.1.2.3"};
    for (size_t i = 0; i < 2; i++)
        run(r, &(struct q){.user = "x",
                           .host = "db.test",
                           .dst = ten[i],
                           .want = AG_RULE_DENY,
                           .want_rule = "mapped-rule"});
    static const char *const loop[] = {"127.0.0.1", "::ffff:127.0.0.1", "127.9.9.9", "::1"};
    for (size_t i = 0; i < sizeof loop / sizeof loop[0]; i++)
        run(r, &(struct q){.user = "x",
                           .host = "db.test",
                           .dst = loop[i],
                           .want = AG_RULE_DENY,
                           .want_rule = "loop"});
    run(r, &(struct q){.user = "x",
                       .dst = "192.0.2.1",
                       .src = "192.168.7.7",
                       .want = AG_RULE_DENY,
                       .want_rule = "lan-src"});
    run(r, &(struct q){.user = "x",
                       .dst = "192.0.2.1",
                       .src = "::ffff:192.168.7.7",
                       .want = AG_RULE_DENY,
                       .want_rule = "lan-src"});
    run(r, &(struct q){.user = "x",
                       .dst = "192.0.2.1",
                       .src = "::ffff:192.169.7.7",
                       .want = AG_RULE_ALLOW,
                       .want_rule = "default"});
    /* path=: every spelling an origin serves as /admin/ */
    static const char *const admin[] = {
        "/admin/",          "/ADMIN/",    "/Admin/x",   "/x\\..\\admin/",
        "/admin;x=1/",      "/admin%2f",  "/%61dmin/",  "/public/..;/admin/",
        "/a/%2e%2e/admin/", "//admin//x", "/admin%5Cx", "/admin/?q",
    };
    for (size_t i = 0; i < sizeof admin / sizeof admin[0]; i++)
        run(r, &(struct q){.user = "x",
                           .dst = "192.0.2.1",
                           .path = admin[i],
                           .want = AG_RULE_DENY,
                           .want_rule = "admin"});
    static const char *const other[] = {"/admin", "/administrator", "/public/admin/",
                                        "/x?p=/admin/", "/admin%252f"};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        run(r, &(struct q){.user = "x",
                           .dst = "192.0.2.1",
                           .path = other[i],
                           .want = AG_RULE_ALLOW,
                           .want_rule = "default"});
    /* rules_path_case sensitive: only the letter case of the entry */
    run(r, &(struct q){.user = "x",
                       .dst = "192.0.2.1",
                       .path = "/ADMIN/",
                       .case_sensitive = true,
                       .want = AG_RULE_ALLOW,
                       .want_rule = "default"});
    run(r, &(struct q){.user = "x",
                       .dst = "192.0.2.1",
                       .path = "/adm%69n;x/",
                       .case_sensitive = true,
                       .want = AG_RULE_DENY,
                       .want_rule = "admin"});
    /* the entry itself was normalized: /CGI-BIN/./x/../ is /CGI-BIN/ */
    run(r, &(struct q){.user = "x",
                       .dst = "192.0.2.1",
                       .path = "/cgi-bin/a",
                       .want = AG_RULE_DENY,
                       .want_rule = "cgi"});
    run(r, &(struct q){.user = "x",
                       .dst = "192.0.2.1",
                       .path = "/cgi-bin/a",
                       .case_sensitive = true,
                       .want = AG_RULE_ALLOW,
                       .want_rule = "default"});
    run(r, &(struct q){.user = "x",
                       .dst = "192.0.2.1",
                       .path = "/CGI-BIN/a",
                       .case_sensitive = true,
                       .want = AG_RULE_DENY,
                       .want_rule = "cgi"});
    ag_rules_free(r);
}

static void test_thousand_rules(void **state)
{
    char *text = malloc(1000 * 80 + 64);
    size_t o = 0;
    for (int i = 0; i < 1000; i++)
        o += (size_t)sprintf(text + o, "deny r%d host=*.site%d.example port=%d\n", i, i, 1000 + i);
    strcpy(text + o, "allow last user=alice\n");
    char err[256];
    struct ag_rules *r = parse(text, err, sizeof err);
    free(text);
    assert_non_null(r);
    run(r, &(struct q){.user = "alice", .want = AG_RULE_ALLOW, .want_rule = "last"});
    run(r, &(struct q){.user = "alice",
                       .host = "a.site999.example",
                       .port = 1999,
                       .want = AG_RULE_DENY,
                       .want_rule = "r999"});
    ag_rules_free(r);
}

/* The compiled evaluation (candidate sets over host= and dst=) against the
 * linear walk on random rule sets and requests: same verdict, same deciding
 * rule, same recheck, for every query, both passes. Small vocabularies make
 * hits, near misses (a suffix without its dot, a neighbouring network) and
 * first-match-wins conflicts common. */
static uint64_t rng_state = 0x2545f4914f6cdd1du;
static unsigned rnd(unsigned n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned)(rng_state % n);
}

static const char *const r_hosts[] = {"a.example", "b.example", "example",       "x.a.example",
                                      "aexample",  "192.0.2.1", "[2001:db8::1]", "Mixed.Example"};
static const char *const r_pats[] = {"a.example",     "*.example", "*.a.example",
                                     "example",       "b.example", "192.0.2.1",
                                     "[2001:db8::1]", "*.xample",  "MIXED.example"};
static const char *const r_nets[] = {"192.0.2.0/24", "192.0.2.1", "192.0.0.0/16",
                                     "10.0.0.0/8",   "0.0.0.0/0", "2001:db8::/32",
                                     "2001:db8::1",  "::/0",      "192.0.2.128/25"};
static const char *const r_dsts[] = {"192.0.2.1", "192.0.2.200", "192.0.9.9",   "10.1.2.3",
                                     "8.8.8.8",   "2001:db8::1", "2001:db9::1", "::ffff:192.0.2.1"};
static const char *const r_methods[] = {"GET", "POST", "CONNECT"};

static void test_compiled_agrees_with_linear(void **state)
{
    (void)state;
    char *text = malloc(200 * 400);
    for (int set = 0; set < 300; set++) {
        size_t o = (size_t)sprintf(text, "default %s\n", rnd(2) ? "allow" : "deny");
        unsigned n = 1 + rnd(set < 250 ? 30 : 200);
        for (unsigned i = 0; i < n; i++) {
            o += (size_t)sprintf(text + o, "%s r%u", rnd(2) ? "allow" : "deny", i);
            bool pre = rnd(6) == 0;
            if (pre)
                o += (size_t)sprintf(text + o, " auth=none");
            if (rnd(3)) {
                o += (size_t)sprintf(text + o, " host=%s", r_pats[rnd(9)]);
                for (unsigned k = rnd(3); k; k--)
                    o += (size_t)sprintf(text + o, ",%s", r_pats[rnd(9)]);
            }
            if (rnd(3) == 0) {
                o += (size_t)sprintf(text + o, " dst=%s", r_nets[rnd(9)]);
                for (unsigned k = rnd(2); k; k--)
                    o += (size_t)sprintf(text + o, ",%s", r_nets[rnd(9)]);
            }
            if (rnd(4) == 0)
                o += (size_t)sprintf(text + o, " port=%u", rnd(2) ? 80 : 443);
            if (rnd(4) == 0)
                o += (size_t)sprintf(text + o, " method=%s", r_methods[rnd(3)]);
            if (!pre && rnd(5) == 0)
                o += (size_t)sprintf(text + o, " user=%s", rnd(2) ? "alice" : "bob");
            text[o++] = '\n';
        }
        text[o] = '\0';
        char err[256];
        struct ag_rules *r = parse(text, err, sizeof err);
        if (!r)
            fail_msg("rule set %d: %s\n%s", set, err, text);
        for (int qi = 0; qi < 100; qi++) {
            struct ag_identity id;
            memset(&id, 0, sizeof id);
            snprintf(id.user, sizeof id.user, "%s", rnd(2) ? "alice" : "carol");
            struct sockaddr_storage dst = addr(r_dsts[rnd(8)]), src = addr("127.0.0.1");
            struct ag_rules_query q = {
                .host = r_hosts[rnd(8)],
                .dst = rnd(4) ? (const struct sockaddr *)&dst : NULL,
                .port = rnd(2) ? 80 : 443,
                .method = r_methods[rnd(3)],
                .src = (const struct sockaddr *)&src,
                .id = rnd(4) ? &id : NULL,
                .scheme = AG_SCHEME_BASIC,
                .now = 0,
            };
            for (int pre = 0; pre < 2; pre++) {
                const char *r1 = NULL, *r2 = NULL;
                bool c1 = false, c2 = false;
                enum ag_rule_verdict v1 = ag_rules_eval(r, &q, pre, &r1, &c1);
                enum ag_rule_verdict v2 = ag_rules_eval_linear(r, &q, pre, &r2, &c2);
                if (v1 != v2 || strcmp(r1, r2) != 0 || c1 != c2)
                    fail_msg("set %d query %d (host %s, dst %s, preauth %d): compiled %d %s %d, "
                             "linear %d %s %d\n%s",
                             set, qi, q.host, q.dst ? "set" : "none", pre, v1, r1, c1, v2, r2, c2,
                             text);
            }
        }
        ag_rules_free(r);
    }
    free(text);
}

/* A Kerberos user whose group lookup failed: the first rule whose outcome
 * turns on a winbind group answers GROUPS_UNKNOWN, allow or deny; rules
 * decided without it (user=, declared members, other matchers) still do. */
static void test_groups_unknown(void **state)
{
    (void)state;
    char err[256];
    struct ag_rules *r = parse("default allow\n"
                               "group helpdesk carol\n"
                               "allow public path=/public/\n"
                               "allow hd group=helpdesk path=/hd/\n"
                               "deny no-ad group=\"CORP\\Internet Users\" host=*.shop.example\n"
                               "allow by-user user=dave,\"CORP\\Internet Users\" path=/net/\n"
                               "allow by-either user=erin group=\"CORP\\Internet Users\" path=/e/\n"
                               "deny lan-ad group=\"CORP\\Internet Users\" dst=10.0.0.0/8\n",
                               err, sizeof err);
    if (!r)
        fail_msg("%s", err);
    const struct q rows[] = {
        {.user = "carol@X",
         .groups_unknown = true,
         .path = "/public/a",
         .want = AG_RULE_ALLOW,
         .want_rule = "public"},
        {.user = "carol@X",
         .groups_unknown = true,
         .path = "/hd/",
         .want = AG_RULE_ALLOW,
         .want_rule = "hd"},
        {.user = "zed@X",
         .groups_unknown = true,
         .host = "www.shop.example",
         .want = AG_RULE_GROUPS_UNKNOWN,
         .want_rule = "no-ad"},
        /* the same user with a known (empty) membership passes the deny */
        {.user = "zed@X",
         .host = "www.shop.example",
         .path = "/x",
         .dst = "192.0.2.1",
         .want = AG_RULE_ALLOW,
         .want_rule = "default"},
        {.user = "dave@X",
         .groups_unknown = true,
         .path = "/net/",
         .want = AG_RULE_ALLOW,
         .want_rule = "by-user"},
        {.user = "erin@X",
         .groups_unknown = true,
         .path = "/e/",
         .want = AG_RULE_ALLOW,
         .want_rule = "by-either"},
        {.user = "zed@X",
         .groups_unknown = true,
         .path = "/e/",
         .want = AG_RULE_GROUPS_UNKNOWN,
         .want_rule = "by-either"},
        /* a dst= rule cannot make unknown groups known: refused before DNS */
        {.user = "zed@X",
         .groups_unknown = true,
         .path = "/other",
         .want = AG_RULE_GROUPS_UNKNOWN,
         .want_rule = "lan-ad"},
        {.user = "zed@X", .path = "/other", .want = AG_RULE_ALLOW, .want_rule = "default"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        run(r, &rows[i]);
    ag_rules_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_default_allow_and_counters),
        cmocka_unit_test(test_one_spelling),
        cmocka_unit_test(test_thousand_rules),
        cmocka_unit_test(test_compiled_agrees_with_linear),
        cmocka_unit_test(test_groups_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
