/* rules_bench.c - decisions per second of ag_rules_eval over ten thousand rules.
 *
 * The `rules` section of scripts/bench (run through rules_bench.sh, which
 * compiles this file with src/rules/rules.c and src/util/). Loads a rules file
 * of N rules (default 10000) through ag_rules_load, the daemon's own loader,
 * then calls ag_rules_eval for a query that only the LAST rule matches: every
 * decision walks all N rules (the worst case, first match wins).
 *
 * Three rule sets, one line each:
 *   last-rule match       every rule but the last is refused only by its last
 *                         matcher (dst=): user/group, host, port, method, path
 *                         and time= are all evaluated for each of them, as
 *                         for a request that is re-evaluated per resolved
 *                         address; the identity carries 16 group SIDs (a
 *                         winbind user) and the groups are resolved SIDs
 *   same, no time=        the same without time= windows (time= costs a
 *                         localtime_r per rule)
 *   first matcher fails   each rule is refused by its first matcher (user=):
 *                         the cheap end of the same walk
 *
 * Usage: rules_bench [-n RULES] [-s SECONDS] [-d DIR]   (DIR: where the rules
 * files are written; default /tmp). Exit 1 if a verdict is ever wrong.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "authgate/err.h"
#include "rules/rules.h"

#define N_SIDS 16
#define SID_BASE "S-1-5-21-1004336348-1177238915-682003330-"

/* Stands in for winbind at load time: every group "gN" has the SID ...-(5000+N). */
static int fake_resolver(void *arg, const char *name, char *sid, size_t cap)
{
    (void)arg;
    if (name[0] != 'g')
        return AG_ENOTFOUND;
    snprintf(sid, cap, SID_BASE "%ld", 5000 + strtol(name + 1, NULL, 10));
    return 0;
}

enum kind { WORST, WORST_NO_TIME, FIRST_FAILS };

static int write_rules(const char *path, int n, enum kind k)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "# %d rules written by rules_bench\ndefault deny\n", n);
    for (int i = 0; i < n - 1; i++) {
        if (k == FIRST_FAILS) {
            fprintf(f,
                    "allow r%04d user=nobody%d host=*.corp%d.example port=80,443 method=GET "
                    "path=/app%d/ time=mon-fri@08:00-18:00\n",
                    i, i, i, i);
            continue;
        }
        /* user= misses twice, then group= matches one of alice's SIDs (a scan
         * of her list), www.example.com the second host=, 80 the second
         * port=, GET the second method=, / the second path=, the second
         * time= window; dst= alone refuses (two CIDRs). */
        fprintf(f,
                "allow r%04d user=nobody%d,bob group=g%d host=*.corp%d.example,"
                "www.example.com port=443,80,8000-8099 method=CONNECT,GET path=/app%d/,/ "
                "%sdst=10.%d.%d.0/24,fd00:%x::/32\n",
                i, i, 100 + i % (N_SIDS - 2), i, i,
                k == WORST ? "time=sat-sun@00:00-24:00,*@00:00-24:00 " : "", i / 256, i % 256, i);
    }
    fprintf(f, "allow last user=alice host=www.example.com dst=192.0.2.0/24\n");
    return fclose(f);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs the query for about `seconds`; returns decisions per second, or -1 on
 * a wrong verdict. */
static double measure(struct ag_rules *r, const struct ag_rules_query *q, double seconds)
{
    const char *rule = NULL;
    /* warm up: caches, the time zone (localtime_r reads it once) */
    for (int i = 0; i < 200; i++)
        if (ag_rules_eval(r, q, false, &rule, NULL) != AG_RULE_ALLOW || strcmp(rule, "last") != 0)
            return -1;
    unsigned long long n = 0;
    unsigned batch = 64;
    double t0 = now_s(), t;
    do {
        for (unsigned i = 0; i < batch; i++) {
            enum ag_rule_verdict v = ag_rules_eval(r, q, false, &rule, NULL);
            if (v != AG_RULE_ALLOW || rule[0] != 'l')
                return -1;
        }
        n += batch;
        t = now_s() - t0;
        if (batch < 65536 && t < seconds / 50)
            batch *= 2;
    } while (t < seconds);
    return (double)n / t;
}

int main(int argc, char **argv)
{
    int n = 10000;
    double seconds = 2.0;
    const char *dir = "/tmp";
    int opt;
    while ((opt = getopt(argc, argv, "n:s:d:")) != -1) {
        switch (opt) {
        case 'n':
            n = atoi(optarg);
            break;
        case 's':
            seconds = atof(optarg);
            break;
        case 'd':
            dir = optarg;
            break;
        default:
            fprintf(stderr, "usage: rules_bench [-n RULES] [-s SECONDS] [-d DIR]\n");
            return 2;
        }
    }
    if (n < 2 || seconds <= 0) {
        fprintf(stderr, "rules_bench: need at least 2 rules and a positive duration\n");
        return 2;
    }

    /* alice, AUTHGATE, 16 SIDs: her own, Domain Users, groups g100..g113 */
    struct ag_identity id;
    memset(&id, 0, sizeof id);
    snprintf(id.user, sizeof id.user, "alice");
    snprintf(id.domain, sizeof id.domain, "AUTHGATE");
    char sids[N_SIDS * 64] = "";
    size_t off = (size_t)snprintf(sids, sizeof sids, SID_BASE "1000," SID_BASE "513");
    for (int i = 0; i < N_SIDS - 2; i++)
        off += (size_t)snprintf(sids + off, sizeof sids - off, "," SID_BASE "%d", 5100 + i);
    id.sids = sids;

    struct sockaddr_in dst, src;
    memset(&dst, 0, sizeof dst);
    memset(&src, 0, sizeof src);
    dst.sin_family = src.sin_family = AF_INET;
    inet_pton(AF_INET, "192.0.2.10", &dst.sin_addr);
    inet_pton(AF_INET, "10.200.1.2", &src.sin_addr);
    static const char path[] = "/index.html";
    struct ag_rules_query q = {
        .host = "www.example.com",
        .dst = (const struct sockaddr *)&dst,
        .port = 80,
        .method = "GET",
        .path = path,
        .path_len = sizeof path - 1,
        .src = (const struct sockaddr *)&src,
        .id = &id,
        .scheme = AG_SCHEME_NTLM,
        .now = time(NULL),
    };

    static const struct {
        enum kind k;
        const char *label;
    } sets[] = {
        {WORST, "last-rule match"},
        {WORST_NO_TIME, "last-rule match, no time= rules"},
        {FIRST_FAILS, "last-rule match, rules refused by their first matcher"},
    };
    int rc = 0;
    for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++) {
        char file[4096], err[512];
        snprintf(file, sizeof file, "%s/rules_bench.%d.rules", dir, (int)s);
        if (write_rules(file, n, sets[s].k) != 0) {
            fprintf(stderr, "rules_bench: cannot write %s\n", file);
            return 1;
        }
        struct ag_rules *r = ag_rules_load(file, fake_resolver, NULL, err, sizeof err);
        if (!r) {
            fprintf(stderr, "rules_bench: %s\n", err);
            return 1;
        }
        if (ag_rules_count(r) != (size_t)n) {
            fprintf(stderr, "rules_bench: loaded %zu rules, wrote %d\n", ag_rules_count(r), n);
            ag_rules_free(r);
            return 1;
        }
        double per_s = measure(r, &q, s == 0 ? seconds : seconds / 2);
        ag_rules_free(r);
        unlink(file);
        if (per_s < 0) {
            fprintf(stderr, "rules_bench: wrong verdict (%s)\n", sets[s].label);
            rc = 1;
            continue;
        }
        printf("%s%d rules, %s: %.0f decisions/s (%.2f \xc2\xb5s each)\n",
               s == 0 ? "rules: " : "       ", n, sets[s].label, per_s, 1e6 / per_s);
        fflush(stdout);
    }
    return rc;
}
