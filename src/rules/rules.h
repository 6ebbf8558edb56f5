/* rules.h - access rules: who may go where.
 *
 * Glossary: rule = "allow|deny NAME matcher..." from the rules file, first
 * match wins; matcher = key=value[,value...] (user, group, scheme, auth,
 * host, dst, port, method, path, src, time); pre-auth rule = a rule with
 * auth=none, evaluated before authentication (no 407 is ever sent for what
 * it allows); default = the verdict when no rule matches.
 *
 * A dst= matcher needs the destination address: for a host name it is known
 * only after DNS, so evaluation answers AG_RULE_NEED_ADDR and is repeated for
 * every resolved address before connecting (a name cannot smuggle a request
 * past a deny rule for its address).
 *
 * route= (allow rules only) names the parent proxies a request it admits
 * goes through, tried in order ("route=a,b"), or "direct" (the default:
 * the gateway connects to the origin itself). The names are checked against
 * the configuration's parents when the rules load (ag_rules_check_routes).
 *
 * The compiled rules are immutable after load except their hit counters.
 * Group names are resolved to SIDs once, at load, through a resolver the
 * caller passes (winbind); groups can also be declared in the file for the
 * local user file ("group NAME member..."). Loop thread only.
 */
#ifndef AG_RULES_H
#define AG_RULES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "auth/identity.h"
#include "config/config.h"

enum ag_rule_verdict {
    AG_RULE_ALLOW = 0,
    AG_RULE_DENY,
    AG_RULE_NEED_ADDR,      /* a dst= rule may match: evaluate again per address */
    AG_RULE_NO_MATCH,       /* pre-auth only: no pre-auth rule matched, authenticate */
    AG_RULE_GROUPS_UNKNOWN, /* the deciding rule names a winbind group and the
                               identity's group lookup failed: refuse (503) */
};

struct ag_rules;

/* Where an allowed request goes: n parents by name, tried in order; n == 0
 * is direct. Points into the compiled rules. */
struct ag_route {
    char **parents;
    size_t n;
};

/* Resolves a group name ("DOMAIN\group" or "group") to a SID string; 0 or
 * AG_ENOTFOUND / AG_EBACKEND. May block (called at load/reload only). */
typedef int (*ag_group_resolver)(void *arg, const char *name, char *sid, size_t cap);

/* Compiles the rules file; NULL with "file:line: message" in err. resolver
 * may be NULL (then only groups declared in the file exist). */
struct ag_rules *ag_rules_load(const char *path, ag_group_resolver resolver, void *arg, char *err,
                               size_t errlen);
/* Same from a string (tests). */
struct ag_rules *ag_rules_parse(const char *text, const char *name, ag_group_resolver resolver,
                                void *arg, char *err, size_t errlen);
void ag_rules_free(struct ag_rules *r);

struct ag_rules_query {
    const char *host;           /* target host, canonical (ag_host_canon) */
    const struct sockaddr *dst; /* target address if known (literal or resolved), or NULL */
    uint16_t port;
    const char *method; /* "GET", "CONNECT", ... */
    const char *path;   /* rule path (ag_path_normalize; not for CONNECT), or NULL */
    size_t path_len;
    bool path_case_sensitive;     /* rules_path_case sensitive: path= compares case */
    const struct sockaddr *src;   /* client address */
    const struct ag_identity *id; /* NULL before authentication */
    enum ag_scheme scheme;
    time_t now; /* wall clock, for time= windows */
    /* out, may be NULL: on AG_RULE_ALLOW, the deciding rule's route (NULL
     * for direct, the default verdict included) */
    const struct ag_route **route;
};

/* Evaluates; *rule gets the name of the deciding rule ("default" when none
 * matched). preauth selects the auth=none rules only. For an identity whose
 * groups are unknown (id->groups_unknown), the first rule whose match would
 * turn on a winbind group (its other matchers, dst= aside, match and no user=
 * or file-declared member decides it) answers AG_RULE_GROUPS_UNKNOWN: allow
 * and deny alike, so a lookup failure never opens nor closes by accident. In the pre-auth pass a
 * dst= rule that cannot be decided for a host name is passed over and
 * *recheck set (may be NULL): the caller then evaluates the pre-auth rules
 * again for each resolved address before connecting. */
enum ag_rule_verdict ag_rules_eval(const struct ag_rules *r, const struct ag_rules_query *q,
                                   bool preauth, const char **rule, bool *recheck);

/* Every route= names a parent of cfg: 0, or AG_EINVAL with "file:line:
 * message" in err. */
int ag_rules_check_routes(const struct ag_rules *r, const struct ag_config *cfg, char *err,
                          size_t errlen);
/* The route of rule name (for display), NULL when direct or unknown. */
const struct ag_route *ag_rules_route_of(const struct ag_rules *r, const char *name);
/* The same decision by a walk over every rule in file order, without the
 * compiled index: the reference the index is tested against. */
enum ag_rule_verdict ag_rules_eval_linear(const struct ag_rules *r, const struct ag_rules_query *q,
                                          bool preauth, const char **rule, bool *recheck);

/* True when any rule names a group (the caller then resolves Kerberos users'
 * groups through winbind). */
bool ag_rules_use_groups(const struct ag_rules *r);
size_t ag_rules_count(const struct ag_rules *r);

#endif
