/* squid.c - `authgate import-squid` (see squid.h).
 *
 * Two passes: read every directive (following includes) into acls, access
 * lines and the auth_param/http_port settings; then write the config and
 * the rules, one rule per http_access line, named after its line ("L12"),
 * so an operator can put the two files side by side.
 *
 * How Squid's model maps to authgate's:
 *  - ACLs of one line are AND'ed, the values of one ACL OR'ed: one rule,
 *    one matcher per ACL (two ACLs of the same type in one line would be an
 *    intersection, which one matcher cannot say: left out with the reason).
 *  - Lines before the first one that needs a login become auth=none rules
 *    (Squid decides them without asking for credentials); the rest apply to
 *    authenticated requests. "!proxy_auth REQUIRED" only marks where login
 *    starts (an authenticated request never matches it).
 *  - The default is the opposite of the last line's action (Squid's rule).
 *  - "!port-acl" becomes the complementary port ranges.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "authgate/limits.h"
#include "config/squid.h"
#include "util/addr.h"
#include "util/cursor.h"

enum acl_type {
    A_SRC,
    A_DST,
    A_DOMAIN,
    A_PORT,
    A_METHOD,
    A_AUTH,
    A_TIME,
    A_EXTERNAL,
    A_MANAGER, /* Squid's built-in cache manager ACL */
    A_OTHER,
};

static const struct {
    const char *name;
    enum acl_type type;
} acl_types[] = {
    {"src", A_SRC},       {"dst", A_DST},         {"dstdomain", A_DOMAIN}, {"port", A_PORT},
    {"method", A_METHOD}, {"proxy_auth", A_AUTH}, {"time", A_TIME},        {"external", A_EXTERNAL},
};

struct acl {
    char *name;
    enum acl_type type;
    char **vals;
    size_t n;
    char *why;       /* why it cannot be translated (first reason), or NULL */
    char where[300]; /* file:line of its first line */
    bool builtin;
};

struct access {
    bool allow;
    char **refs; /* "name" or "!name" */
    size_t n;
    char where[300];
    char *text;     /* the directive as written (for notes) */
    bool main_file; /* in the file given, not an included one */
};

enum scheme { S_NEGOTIATE, S_NTLM, S_BASIC, S_N };
static const char *const scheme_name[S_N] = {"negotiate", "ntlm", "basic"};

struct imp {
    struct ag_squid_out *out;
    struct acl *acls;
    size_t n_acls;
    struct access *acc;
    size_t n_acc;
    char **group_helpers; /* external_acl_type names whose helper tells groups */
    size_t n_group_helpers;
    int files;
    size_t bytes;
    /* auth_param */
    int order[S_N]; /* 1-based position in which the scheme's program came, 0 = none */
    int n_order;
    char *keytab, *principal, *basic_realm, *basic_ttl;
    bool strip_realm, any_acceptor;
    int basic_backend, ntlm_backend; /* 1 local, 2 winbind, 0 unknown */
    char listen[16][64];
    size_t n_listen;
    char err[512];
    bool failed;
};

/* ---- small helpers -------------------------------------------------------- */

static char *dup_or_fail(struct imp *m, const char *s)
{
    char *d = strdup(s);
    if (!d && !m->failed) {
        m->failed = true;
        snprintf(m->err, sizeof m->err, "out of memory");
    }
    return d;
}

static void note(struct imp *m, const char *where, const char *text, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void note(struct imp *m, const char *where, const char *text, const char *fmt, ...)
{
    char why[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    ag_buf_printf(&m->out->notes, "%s: %.200s -- %s\n", where, text, why);
    m->out->n_notes++;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static struct acl *find_acl(struct imp *m, const char *name)
{
    for (size_t i = 0; i < m->n_acls; i++)
        if (strcmp(m->acls[i].name, name) == 0)
            return &m->acls[i];
    return NULL;
}

static struct acl *new_acl(struct imp *m, const char *name, enum acl_type t, const char *where)
{
    if (m->n_acls >= AG_SQUID_ACLS_MAX) {
        m->failed = true;
        snprintf(m->err, sizeof m->err, "%s: more than %d ACLs", where, AG_SQUID_ACLS_MAX);
        return NULL;
    }
    struct acl *a = &m->acls[m->n_acls];
    memset(a, 0, sizeof *a);
    if (!(a->name = dup_or_fail(m, name)))
        return NULL;
    a->type = t;
    snprintf(a->where, sizeof a->where, "%s", where);
    m->n_acls++;
    return a;
}

static void acl_add(struct imp *m, struct acl *a, const char *v)
{
    if (a->n >= AG_SQUID_WORDS_MAX * 4) {
        if (!a->why)
            a->why = dup_or_fail(m, "too many values");
        return;
    }
    char **nv = realloc(a->vals, (a->n + 1) * sizeof *nv);
    if (!nv) {
        m->failed = true;
        snprintf(m->err, sizeof m->err, "out of memory");
        return;
    }
    a->vals = nv;
    if ((a->vals[a->n] = dup_or_fail(m, v)))
        a->n++;
}

static void acl_why(struct imp *m, struct acl *a, const char *why)
{
    if (!a->why)
        a->why = dup_or_fail(m, why);
}

/* Squid's predefined ACLs (5.x). */
static void builtins(struct imp *m)
{
    static const struct {
        const char *name;
        enum acl_type t;
        const char *vals[5];
    } b[] = {
        {"all", A_SRC, {"all"}},
        {"localhost", A_SRC, {"127.0.0.1/32", "::1/128"}},
        {"to_localhost", A_DST, {"127.0.0.0/8", "0.0.0.0/32", "::1/128", "::/128"}},
        {"to_linklocal", A_DST, {"169.254.0.0/16", "fe80::/10"}},
        {"manager", A_MANAGER, {"/squid-internal-mgr/"}},
        {"CONNECT", A_METHOD, {"CONNECT"}},
    };
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
        struct acl *a = new_acl(m, b[i].name, b[i].t, "(built-in)");
        if (!a)
            return;
        a->builtin = true;
        for (size_t k = 0; k < 5 && b[i].vals[k]; k++)
            acl_add(m, a, b[i].vals[k]);
    }
}

/* ---- reading --------------------------------------------------------------- */

static int read_conf(struct imp *m, const char *path, int depth);

/* Reads a whole file within what is left of AG_SQUID_CONF_MAX. */
static char *slurp(struct imp *m, const char *path, size_t *len)
{
    char *buf = ag_file_read(path, AG_SQUID_CONF_MAX - m->bytes, len, m->err, sizeof m->err);
    if (buf)
        m->bytes += *len;
    return buf;
}

/* One logical line from the cursor: continuations ("\\" before the line
 * end) joined, at most AG_SQUID_LINE_MAX bytes. *lines counts the physical
 * lines consumed. 1 with a line, 0 at the end, -1 when too long. */
static int next_line(struct ag_cursor *c, char *out, size_t cap, int *lines)
{
    size_t o = 0;
    bool any = false;
    uint8_t ch;
    *lines = 0;
    while (ag_cur_u8(c, &ch)) {
        any = true;
        if (ch == '\n') {
            (*lines)++;
            if (o > 0 && out[o - 1] == '\r')
                o--;
            if (o > 0 && out[o - 1] == '\\') {
                o--;
                continue;
            }
            break;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = ch == '\0' || ch == '\t' ? ' ' : (char)ch;
    }
    if (!any)
        return 0;
    if (*lines == 0)
        *lines = 1;
    out[o] = '\0';
    return 1;
}

/* Splits on blanks; a word starting with '#' ends the line (Squid takes
 * "value # comment"). Words point into line. */
static size_t words(char *line, char **w, size_t max, bool *too_many)
{
    size_t n = 0;
    *too_many = false;
    for (char *s = strtok(line, " "); s; s = strtok(NULL, " ")) {
        if (s[0] == '#')
            break;
        if (n == max) {
            *too_many = true;
            break;
        }
        w[n++] = s;
    }
    return n;
}

static void do_acl(struct imp *m, char **w, size_t n, const char *where, const char *text)
{
    if (n < 3) {
        note(m, where, text, "an acl needs a name, a type and values");
        return;
    }
    enum acl_type t = A_OTHER;
    for (size_t i = 0; i < sizeof acl_types / sizeof acl_types[0]; i++)
        if (strcmp(w[2], acl_types[i].name) == 0)
            t = acl_types[i].type;
    struct acl *a = find_acl(m, w[1]);
    if (a && a->builtin) {
        note(m, where, text, "redefines Squid's built-in ACL '%s': the built-in one is used", w[1]);
        return;
    }
    if (!a && !(a = new_acl(m, w[1], t, where)))
        return;
    if (a->type != t) {
        acl_why(m, a, "its lines give different types");
        note(m, where, text, "acl '%s' was defined with another type before", w[1]);
        return;
    }
    if (t == A_OTHER) {
        char why[200];
        snprintf(why, sizeof why, "acl type '%s' has no authgate matcher", w[2]);
        acl_why(m, a, why);
        return; /* noted where a line uses it */
    }
    for (size_t i = 3; i < n; i++) {
        if (w[i][0] == '"') {
            acl_why(m, a, "its values come from a file (\"path\"): list them in the rules file");
            return;
        }
        if (w[i][0] == '-' && strcmp(w[i], "-i") && strcmp(w[i], "-n") && t != A_PORT) {
            acl_why(m, a, "an acl option (-x) other than -i");
            return;
        }
        if (w[i][0] == '-' && (!strcmp(w[i], "-i") || !strcmp(w[i], "-n")))
            continue; /* host and user comparisons ignore case anyway */
        acl_add(m, a, w[i]);
    }
}

static void do_access(struct imp *m, char **w, size_t n, const char *where, const char *text,
                      bool main_file)
{
    if (n < 2 || (strcmp(w[1], "allow") && strcmp(w[1], "deny"))) {
        note(m, where, text, "http_access takes allow or deny");
        return;
    }
    if (m->n_acc >= AG_SQUID_ACCESS_MAX) {
        m->failed = true;
        snprintf(m->err, sizeof m->err, "%s: more than %d http_access lines", where,
                 AG_SQUID_ACCESS_MAX);
        return;
    }
    struct access *x = &m->acc[m->n_acc];
    memset(x, 0, sizeof *x);
    x->allow = w[1][0] == 'a';
    x->main_file = main_file;
    snprintf(x->where, sizeof x->where, "%s", where);
    if (!(x->text = dup_or_fail(m, text)) || !(x->refs = calloc(n, sizeof *x->refs)))
        return;
    m->n_acc++;
    for (size_t i = 2; i < n; i++)
        if ((x->refs[x->n] = dup_or_fail(m, w[i])))
            x->n++;
}

static void do_port(struct imp *m, char **w, size_t n, const char *where, const char *text)
{
    if (n < 2) {
        note(m, where, text, "http_port needs a port");
        return;
    }
    if (n > 2) {
        note(m, where, text,
             "options after the port (intercept, ssl-bump, name=...) have no authgate "
             "equivalent: the address is translated, the options are not");
    }
    if (m->n_listen >= sizeof m->listen / sizeof m->listen[0])
        return;
    char *s = w[1];
    bool digits = strspn(s, "0123456789") == strlen(s);
    if (digits)
        snprintf(m->listen[m->n_listen++], sizeof m->listen[0], "*:%s", s);
    else
        snprintf(m->listen[m->n_listen++], sizeof m->listen[0], "%s", s);
    if (digits)
        note(m, where, text,
             "Squid listens on every IPv4 and IPv6 address; translated as *:%s (every IPv4 "
             "address): add listen [::]:%s for IPv6 clients",
             s, s);
}

/* auth_param SCHEME program HELPER ARGS, and the few parameters with an
 * authgate equivalent. */
static void do_auth(struct imp *m, char **w, size_t n, const char *where, const char *text)
{
    if (n < 3) {
        note(m, where, text, "auth_param needs a scheme and a parameter");
        return;
    }
    int s = -1;
    for (int i = 0; i < S_N; i++)
        if (strcmp(w[1], scheme_name[i]) == 0)
            s = i;
    if (s < 0) {
        note(m, where, text, "scheme '%s' is not offered by authgate (negotiate, ntlm, basic)",
             w[1]);
        return;
    }
    if (strcmp(w[2], "program") == 0 && n >= 4) {
        const char *helper = base_name(w[3]);
        if (!m->order[s])
            m->order[s] = ++m->n_order;
        if (s == S_NEGOTIATE && (strcmp(helper, "negotiate_kerberos_auth") == 0 ||
                                 strcmp(helper, "negotiate_wrapper_auth") == 0)) {
            for (size_t i = 4; i + 1 < n; i++) {
                if (strcmp(w[i], "-k") == 0)
                    m->keytab = dup_or_fail(m, w[++i]);
                else if (strcmp(w[i], "-s") == 0 && strcmp(w[i + 1], "GSS_C_NO_NAME") == 0)
                    m->any_acceptor = true, i++;
                else if (strcmp(w[i], "-s") == 0)
                    m->principal = dup_or_fail(m, w[++i]);
            }
            for (size_t i = 4; i < n; i++)
                if (strcmp(w[i], "-r") == 0)
                    m->strip_realm = true;
            if (strcmp(helper, "negotiate_wrapper_auth") == 0)
                note(m, where, text,
                     "negotiate_wrapper_auth: authgate answers the NTLM tokens Windows sends "
                     "in Negotiate itself (ntlm_backend)");
            return;
        }
        if (s == S_NTLM && strcmp(helper, "ntlm_auth") == 0) {
            m->ntlm_backend = 2;
            return;
        }
        if (s == S_BASIC &&
            (strcmp(helper, "ntlm_auth") == 0 || strcmp(helper, "basic_ntlm_auth") == 0 ||
             strcmp(helper, "basic_smb_auth") == 0)) {
            m->basic_backend = 2;
            return;
        }
        if (s == S_BASIC && strcmp(helper, "basic_ncsa_auth") == 0) {
            m->basic_backend = 1;
            note(m, where, text,
                 "an htpasswd file holds crypt/MD5 hashes, authgate's user_file NT hashes: "
                 "create /etc/authgate/users with `authgate passwd /etc/authgate/users USER` "
                 "for each user");
            return;
        }
        note(m, where, text,
             "helper '%s' has no authgate backend (Kerberos for negotiate, winbind or the "
             "local user file for ntlm and basic): the scheme is offered with %s",
             helper, s == S_NEGOTIATE ? "the keytab" : "winbind");
        if (s == S_NTLM)
            m->ntlm_backend = 2;
        if (s == S_BASIC)
            m->basic_backend = 2;
        return;
    }
    if (s == S_BASIC && strcmp(w[2], "realm") == 0 && n >= 4) {
        /* The realm is the rest of the line, as Squid takes it. */
        char r[256] = "";
        for (size_t i = 3; i < n; i++) {
            size_t o = strlen(r);
            snprintf(r + o, sizeof r - o, "%s%s", i > 3 ? " " : "", w[i]);
        }
        if (strpbrk(r, "\"\\"))
            note(m, where, text, "a realm with '\"' or '\\' is not accepted by basic_realm");
        else
            m->basic_realm = dup_or_fail(m, r);
        return;
    }
    if (s == S_BASIC && strcmp(w[2], "credentialsttl") == 0 && n >= 4) {
        static const struct {
            const char *unit;
            const char *suf;
        } u[] = {{"second", "s"},  {"seconds", "s"}, {"minute", "m"},
                 {"minutes", "m"}, {"hour", "h"},    {"hours", "h"}};
        const char *suf = n >= 5 ? NULL : "s";
        for (size_t i = 0; n >= 5 && i < sizeof u / sizeof u[0]; i++)
            if (strcmp(w[4], u[i].unit) == 0)
                suf = u[i].suf;
        char t[64];
        if (suf && strspn(w[3], "0123456789") == strlen(w[3]) && strlen(w[3]) < 9) {
            snprintf(t, sizeof t, "%s%s", w[3], suf);
            free(m->basic_ttl);
            m->basic_ttl = dup_or_fail(m, t);
        } else {
            note(m, where, text, "credentialsttl: unit not understood");
        }
        return;
    }
    note(m, where, text,
         "'%s' tunes Squid's helper processes: authgate runs none (its limits are "
         "max_handshakes, max_jobs and the *_threads options)",
         w[2]);
}

static void do_external(struct imp *m, char **w, size_t n, const char *where, const char *text)
{
    /* external_acl_type NAME [options] FORMAT... /path/helper [args] */
    const char *helper = NULL;
    for (size_t i = 2; i < n && !helper; i++)
        if (w[i][0] == '/')
            helper = base_name(w[i]);
    if (n < 3 || !helper) {
        note(m, where, text, "no helper program found");
        return;
    }
    if (strcmp(helper, "ext_wbinfo_group_acl") && strcmp(helper, "ext_kerberos_ldap_group_acl")) {
        note(m, where, text,
             "helper '%s' is not a group helper: the ACLs using it cannot be translated", helper);
        return;
    }
    char **nv = realloc(m->group_helpers, (m->n_group_helpers + 1) * sizeof *nv);
    if (!nv)
        return;
    m->group_helpers = nv;
    if ((nv[m->n_group_helpers] = dup_or_fail(m, w[1])))
        m->n_group_helpers++;
    if (strcmp(helper, "ext_kerberos_ldap_group_acl") == 0)
        note(m, where, text,
             "groups come from winbind in authgate (group= rules, realm_domain for Kerberos "
             "users of other realms), not from LDAP: the machine must be joined to the domain");
}

static void directive(struct imp *m, char *line, const char *where, int depth)
{
    char text[AG_SQUID_LINE_MAX];
    snprintf(text, sizeof text, "%s", line);
    /* drop a trailing comment from the text shown in notes */
    char *w[AG_SQUID_WORDS_MAX];
    bool too_many;
    size_t n = words(line, w, AG_SQUID_WORDS_MAX, &too_many);
    if (n == 0)
        return;
    char *hash = strstr(text, " #");
    if (hash)
        *hash = '\0';
    if (too_many) {
        note(m, where, text, "more than %d words on one line", AG_SQUID_WORDS_MAX);
        return;
    }
    if (strcmp(w[0], "acl") == 0)
        do_acl(m, w, n, where, text);
    else if (strcmp(w[0], "http_access") == 0)
        do_access(m, w, n, where, text, depth == 0);
    else if (strcmp(w[0], "http_port") == 0)
        do_port(m, w, n, where, text);
    else if (strcmp(w[0], "auth_param") == 0)
        do_auth(m, w, n, where, text);
    else if (strcmp(w[0], "external_acl_type") == 0)
        do_external(m, w, n, where, text);
    else if (strcmp(w[0], "include") == 0) {
        for (size_t i = 1; i < n && !m->failed; i++) {
            glob_t g;
            if (glob(w[i], 0, NULL, &g) != 0) {
                note(m, where, text, "'%s' matches no file", w[i]);
                continue;
            }
            for (size_t k = 0; k < g.gl_pathc && !m->failed; k++)
                if (read_conf(m, g.gl_pathv[k], depth + 1) != 0)
                    m->failed = true;
            globfree(&g);
        }
    } else
        note(m, where, text, "not about authentication or access: nothing to translate");
}

static int read_conf(struct imp *m, const char *path, int depth)
{
    if (depth > AG_SQUID_INCLUDE_DEPTH || ++m->files > AG_SQUID_FILES_MAX) {
        snprintf(m->err, sizeof m->err,
                 "%s: includes nest deeper than %d or read more than %d files", path,
                 AG_SQUID_INCLUDE_DEPTH, AG_SQUID_FILES_MAX);
        return -1;
    }
    size_t len;
    char *text = slurp(m, path, &len);
    if (!text)
        return -1;
    struct ag_cursor c;
    ag_cur_init(&c, text, len);
    static char line[AG_SQUID_LINE_MAX];
    int lineno = 1, used, rc;
    while (!m->failed && (rc = next_line(&c, line, sizeof line, &used)) != 0) {
        char where[300];
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        if (rc < 0) {
            snprintf(m->err, sizeof m->err, "%s: line longer than %d bytes", where,
                     AG_SQUID_LINE_MAX);
            free(text);
            return -1;
        }
        lineno += used;
        char *p = line + strspn(line, " ");
        if (*p && *p != '#') {
            /* directive() reuses the static buffer through include: copy */
            char *copy = strdup(p);
            if (!copy) {
                free(text);
                return -1;
            }
            directive(m, copy, where, depth);
            free(copy);
        }
    }
    free(text);
    return m->failed ? -1 : 0;
}

/* ---- writing -------------------------------------------------------------- */

/* IPv4 a-b as CIDR networks, appended to out with sep. */
static int v4_range(struct ag_buf *out, const char *lo, const char *hi, bool *first)
{
    struct in_addr a, b;
    if (inet_pton(AF_INET, lo, &a) != 1 || inet_pton(AF_INET, hi, &b) != 1)
        return -1;
    uint64_t x = ntohl(a.s_addr), y = ntohl(b.s_addr);
    if (x > y)
        return -1;
    while (x <= y) {
        int bits = 32;
        while (bits > 0) {
            uint64_t size = 1ull << (32 - (bits - 1));
            if (x % size != 0 || x + size - 1 > y)
                break;
            bits--;
        }
        struct in_addr n = {htonl((uint32_t)x)};
        char t[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &n, t, sizeof t);
        ag_buf_printf(out, "%s%s/%d", *first ? "" : ",", t, bits);
        *first = false;
        x += 1ull << (32 - bits);
    }
    return 0;
}

/* An address value of src/dst as authgate CIDRs; -1 with why. */
static int addr_value(struct ag_buf *out, const char *v, bool *first, const char **why)
{
    char tmp[128];
    if (strcmp(v, "all") == 0) {
        ag_buf_printf(out, "%s0.0.0.0/0,::/0", *first ? "" : ",");
        *first = false;
        return 0;
    }
    snprintf(tmp, sizeof tmp, "%s", v);
    char *dash = strchr(tmp, '-');
    if (dash && !strchr(tmp, ':')) {
        *dash = '\0';
        char *slash = strchr(dash + 1, '/');
        if (slash)
            *slash = '\0';
        if (v4_range(out, tmp, dash + 1, first) != 0) {
            *why = "an address range that is not two IPv4 addresses";
            return -1;
        }
        return 0;
    }
    char *slash = strchr(tmp, '/');
    if (slash && strchr(slash + 1, '.')) { /* a dotted netmask */
        struct in_addr mk;
        if (inet_pton(AF_INET, slash + 1, &mk) != 1) {
            *why = "a netmask that is not an IPv4 address";
            return -1;
        }
        uint32_t mm = ntohl(mk.s_addr);
        int bits = 0;
        while (bits < 32 && (mm & (0x80000000u >> bits)))
            bits++;
        if ((uint32_t)(bits ? ~0u << (32 - bits) : 0) != mm) {
            *why = "a netmask that is not contiguous";
            return -1;
        }
        snprintf(slash + 1, sizeof tmp - (size_t)(slash + 1 - tmp), "%d", bits);
    }
    struct ag_cidr c;
    if (ag_cidr_parse(tmp, &c) != 0) {
        *why = "not an address or network (Squid resolves host names in src/dst; authgate "
               "takes addresses)";
        return -1;
    }
    ag_buf_printf(out, "%s%s", *first ? "" : ",", tmp);
    *first = false;
    return 0;
}

struct range {
    unsigned lo, hi;
};

static int parse_ports(const struct acl *a, struct range *r, size_t *n, size_t cap)
{
    *n = 0;
    for (size_t i = 0; i < a->n && *n < cap; i++) {
        unsigned lo, hi;
        char tail;
        if (sscanf(a->vals[i], "%u-%u%c", &lo, &hi, &tail) == 2) {
        } else if (sscanf(a->vals[i], "%u%c", &lo, &tail) == 1) {
            hi = lo;
        } else {
            return -1;
        }
        if (lo == 0 || hi > 65535 || lo > hi)
            return -1;
        r[(*n)++] = (struct range){lo, hi};
    }
    return 0;
}

static int cmp_range(const void *a, const void *b)
{
    const struct range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* The ports of a (negated: every other port) as "a,b-c". */
static int port_matcher(struct ag_buf *out, const struct acl *a, bool neg)
{
    struct range r[AG_SQUID_WORDS_MAX * 4];
    size_t n;
    if (parse_ports(a, r, &n, sizeof r / sizeof r[0]) != 0)
        return -1;
    qsort(r, n, sizeof r[0], cmp_range);
    bool first = true;
    if (!neg) {
        for (size_t i = 0; i < n; i++) {
            if (r[i].lo == r[i].hi)
                ag_buf_printf(out, "%s%u", first ? "" : ",", r[i].lo);
            else
                ag_buf_printf(out, "%s%u-%u", first ? "" : ",", r[i].lo, r[i].hi);
            first = false;
        }
        return 0;
    }
    unsigned next = 1; /* the lowest port not yet covered */
    for (size_t i = 0; i <= n; i++) {
        unsigned lo = i < n ? r[i].lo : 65536;
        if (lo > next) {
            if (lo - 1 == next)
                ag_buf_printf(out, "%s%u", first ? "" : ",", next);
            else
                ag_buf_printf(out, "%s%u-%u", first ? "" : ",", next, lo - 1);
            first = false;
        }
        if (i < n && r[i].hi + 1 > next)
            next = r[i].hi + 1;
    }
    if (first) /* the ACL covers every port: its negation matches none */
        return 1;
    return 0;
}

/* Squid's time ACL: [days] [h1:m1-h2:m2], days in SMTWHFA (D = MTWHF). */
static int time_matcher(struct ag_buf *out, const struct acl *a)
{
    static const char letters[] = "SMTWHFA";
    static const char *const names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
    bool first = true;
    /* Each acl line added its words; a day word is followed by a time or
     * stands alone, a time alone means every day. */
    for (size_t i = 0; i < a->n; i++) {
        const char *days = NULL, *span = a->vals[i];
        if (!strchr(span, ':')) {
            days = span;
            span = i + 1 < a->n && strchr(a->vals[i + 1], ':') ? a->vals[++i] : "00:00-24:00";
        }
        unsigned h1, m1, h2, m2;
        char tail;
        if (sscanf(span, "%u:%u-%u:%u%c", &h1, &m1, &h2, &m2, &tail) != 4)
            return -1;
        if (!days) {
            ag_buf_printf(out, "%s*@%02u:%02u-%02u:%02u", first ? "" : ",", h1, m1, h2, m2);
            first = false;
            continue;
        }
        for (const char *d = days; *d; d++) {
            const char *p = *d == 'D' ? "MTWHF" : (char[]){*d, 0};
            for (; *p; p++) {
                const char *at = strchr(letters, *p);
                if (!at)
                    return -1;
                ag_buf_printf(out, "%s%s@%02u:%02u-%02u:%02u", first ? "" : ",",
                              names[at - letters], h1, m1, h2, m2);
                first = false;
            }
        }
    }
    return first ? -1 : 0;
}

static bool is_group_helper(const struct imp *m, const char *name)
{
    for (size_t i = 0; i < m->n_group_helpers; i++)
        if (strcmp(m->group_helpers[i], name) == 0)
            return true;
    return false;
}

/* Whether a reference needs a login in Squid. */
static bool needs_auth(struct imp *m, const char *ref)
{
    struct acl *a = find_acl(m, ref[0] == '!' ? ref + 1 : ref);
    return a && (a->type == A_AUTH || a->type == A_EXTERNAL);
}

/* One http_access line as one rule; false (with a note) when it cannot be. */
static bool write_rule(struct imp *m, const struct access *x, bool preauth, struct ag_buf *r)
{
    struct ag_buf mt;
    ag_buf_init(&mt, AG_SQUID_LINE_MAX * 8);
    bool used[A_OTHER + 1] = {false};
    bool ok = false, never = false;
    /* Named after the Squid line: "L12", or "debian.conf-L3" in an
     * included file. */
    const char *colon = strrchr(x->where, ':');
    const char *file = base_name(x->where);
    char rname[64];
    if (x->main_file)
        snprintf(rname, sizeof rname, "L%s", colon ? colon + 1 : "?");
    else
        snprintf(rname, sizeof rname, "%.*s-L%s",
                 (int)(colon && colon > file && colon - file < 40 ? colon - file : 40), file,
                 colon ? colon + 1 : "?");
    for (size_t i = 0; i < x->n; i++) {
        bool neg = x->refs[i][0] == '!';
        const char *ref = neg ? x->refs[i] + 1 : x->refs[i];
        struct acl *a = find_acl(m, ref);
        if (!a) {
            note(m, x->where, x->text, "acl '%s' is not defined", ref);
            goto out;
        }
        if (a->why) {
            note(m, x->where, x->text, "acl '%s' (%s): %s", ref, a->where, a->why);
            goto out;
        }
        if (a->type == A_AUTH && neg) {
            bool required = a->n == 1 && strcmp(a->vals[0], "REQUIRED") == 0;
            if (!required) {
                note(m, x->where, x->text, "a negated user list (!%s) has no authgate matcher",
                     ref);
                goto out;
            }
            never = true; /* an authenticated request never matches it */
            continue;
        }
        if (a->type == A_SRC && !neg && a->n == 1 && strcmp(a->vals[0], "all") == 0)
            continue; /* matches everything */
        if (a->type == A_SRC && neg && a->n == 1 && strcmp(a->vals[0], "all") == 0) {
            never = true;
            continue;
        }
        if (neg && a->type != A_PORT) {
            note(m, x->where, x->text,
                 "a negated %s ACL (!%s) has no authgate matcher (only !port is translated)",
                 a->type == A_SRC      ? "src"
                 : a->type == A_DST    ? "dst"
                 : a->type == A_DOMAIN ? "dstdomain"
                 : a->type == A_METHOD ? "method"
                                       : "",
                 ref);
            goto out;
        }
        if (a->type == A_AUTH && a->n == 1 && strcmp(a->vals[0], "REQUIRED") == 0)
            continue; /* any authenticated user: every rule after login says that */
        enum acl_type t = a->type == A_EXTERNAL ? A_EXTERNAL : a->type;
        if (used[t]) {
            note(m, x->where, x->text,
                 "two ACLs of one type in one line (%s) match their intersection, which one "
                 "authgate matcher cannot say: merge them into one acl",
                 ref);
            goto out;
        }
        used[t] = true;
        bool first = true;
        const char *why = NULL;
        switch (a->type) {
        case A_SRC:
        case A_DST:
            ag_buf_printf(&mt, " %s=", a->type == A_SRC ? "src" : "dst");
            for (size_t k = 0; k < a->n; k++)
                if (addr_value(&mt, a->vals[k], &first, &why) != 0) {
                    note(m, x->where, x->text, "acl '%s' value '%s': %s", ref, a->vals[k], why);
                    goto out;
                }
            break;
        case A_DOMAIN:
            ag_buf_printf(&mt, " host=");
            for (size_t k = 0; k < a->n; k++) {
                const char *d = a->vals[k];
                if (d[0] == '.')
                    ag_buf_printf(&mt, "%s%s,*%s", first ? "" : ",", d + 1, d);
                else
                    ag_buf_printf(&mt, "%s%s", first ? "" : ",", d);
                first = false;
            }
            break;
        case A_PORT: {
            ag_buf_printf(&mt, " port=");
            int pr = port_matcher(&mt, a, neg);
            if (pr < 0) {
                note(m, x->where, x->text, "acl '%s': a port that is not a number or range", ref);
                goto out;
            }
            if (pr > 0)
                never = true;
            break;
        }
        case A_METHOD:
            ag_buf_printf(&mt, " method=");
            for (size_t k = 0; k < a->n; k++, first = false)
                ag_buf_printf(&mt, "%s%s", first ? "" : ",", a->vals[k]);
            break;
        case A_AUTH:
            ag_buf_printf(&mt, " user=");
            for (size_t k = 0; k < a->n; k++, first = false)
                ag_buf_printf(&mt, "%s%s", first ? "" : ",", a->vals[k]);
            break;
        case A_TIME:
            ag_buf_printf(&mt, " time=");
            if (time_matcher(&mt, a) != 0) {
                note(m, x->where, x->text, "acl '%s': a time that is not [SMTWHFA] h:m-h:m", ref);
                goto out;
            }
            break;
        case A_EXTERNAL:
            if (a->n < 2 || !is_group_helper(m, a->vals[0])) {
                note(m, x->where, x->text,
                     "acl '%s' uses external helper '%s', which is not an "
                     "ext_wbinfo_group_acl or ext_kerberos_ldap_group_acl type",
                     ref, a->n ? a->vals[0] : "?");
                goto out;
            }
            ag_buf_printf(&mt, " group=");
            for (size_t k = 1; k < a->n; k++, first = false) {
                if (strpbrk(a->vals[k], ",\"#")) {
                    note(m, x->where, x->text, "group '%s' has a ',' '\"' or '#'", a->vals[k]);
                    goto out;
                }
                ag_buf_printf(&mt, "%s\"%s\"", first ? "" : ",", a->vals[k]);
            }
            break;
        case A_MANAGER:
            ag_buf_printf(&mt, " path=%s", a->vals[0]);
            note(m, x->where, x->text,
                 "authgate has no cache manager: translated as path=%s (what Squid's manager "
                 "ACL matches on a proxied URL); such requests are forwarded, not answered",
                 a->vals[0]);
            break;
        default:
            note(m, x->where, x->text, "acl '%s' cannot be translated", ref);
            goto out;
        }
    }
    if (never) {
        ag_buf_printf(r, "# %s: %s -- never matches an authenticated request: left out\n", x->where,
                      x->text);
        ok = true;
        goto out;
    }
    ag_buf_printf(r, "# %s: %s\n%s %s%s", x->where, x->text, x->allow ? "allow" : "deny", rname,
                  preauth ? " auth=none" : "");
    if (mt.len)
        ag_buf_append(r, mt.data, mt.len);
    ag_buf_append(r, "\n", 1);
    ok = true;
out:
    ag_buf_free(&mt);
    return ok;
}

static void write_config(struct imp *m, const char *path, const char *rules_path)
{
    struct ag_buf *c = &m->out->conf;
    ag_buf_printf(c,
                  "# authgate configuration translated from %s by authgate import-squid.\n"
                  "# Lines it could not translate are listed at the end of this file.\n\n",
                  path);
    for (size_t i = 0; i < m->n_listen; i++)
        ag_buf_printf(c, "listen %s\n", m->listen[i]);
    if (!m->n_listen)
        ag_buf_printf(c, "# Squid's http_port default\nlisten *:3128\n");
    if (!m->n_order) {
        ag_buf_printf(c,
                      "# no auth_param program: an open proxy, as in Squid\nauth_schemes none\n");
    } else {
        ag_buf_printf(c, "auth_schemes");
        for (int pos = 1; pos <= m->n_order; pos++)
            for (int s = 0; s < S_N; s++)
                if (m->order[s] == pos)
                    ag_buf_printf(c, " %s", scheme_name[s]);
        ag_buf_printf(c, "\n");
    }
    if (m->order[S_NEGOTIATE]) {
        if (m->keytab)
            ag_buf_printf(c, "keytab %s\n", m->keytab);
        if (m->any_acceptor)
            ag_buf_printf(c, "negotiate_acceptor any\n");
        if (m->principal) {
            /* HTTP/host@REALM: the host is what clients call the proxy. */
            char host[256];
            const char *sl = strchr(m->principal, '/');
            snprintf(host, sizeof host, "%s", sl ? sl + 1 : "");
            char *at = strchr(host, '@');
            if (at)
                *at = '\0';
            if (host[0] && strncmp(m->principal, "HTTP/", 5) == 0)
                ag_buf_printf(c, "proxy_host %s\n", host);
            else
                ag_buf_printf(c, "negotiate_acceptor %s\n", m->principal);
        }
        if (m->strip_realm)
            ag_buf_printf(c, "negotiate_name_format strip\n");
    }
    if (m->order[S_NTLM])
        ag_buf_printf(c, "ntlm_backend %s\n", m->ntlm_backend == 1 ? "local" : "winbind");
    if (m->order[S_BASIC]) {
        ag_buf_printf(c, "basic_backend %s\n", m->basic_backend == 1 ? "local" : "winbind");
        if (m->basic_backend == 1)
            ag_buf_printf(c, "user_file /etc/authgate/users\n");
        if (m->basic_realm)
            ag_buf_printf(c, "basic_realm \"%s\"\n", m->basic_realm);
        if (m->basic_ttl)
            ag_buf_printf(c, "basic_cache_ttl %s\n", m->basic_ttl);
    }
    /* CONNECT: authgate tunnels only to connect_ports, Squid to whatever
     * its rules allow. A "deny CONNECT !ports" line names the ports. */
    const struct acl *cports = NULL;
    for (size_t i = 0; i < m->n_acc && !cports; i++) {
        const struct access *x = &m->acc[i];
        if (x->allow || x->n != 2)
            continue;
        const struct acl *a0 = find_acl(m, x->refs[0]);
        const struct acl *a1 = x->refs[1][0] == '!' ? find_acl(m, x->refs[1] + 1) : NULL;
        if (a0 && a1 && a0->type == A_METHOD && a0->n == 1 && strcmp(a0->vals[0], "CONNECT") == 0 &&
            a1->type == A_PORT && !a1->why)
            cports = a1;
    }
    struct range r[64];
    size_t n = 0;
    bool single = cports && parse_ports(cports, r, &n, 64) == 0;
    for (size_t i = 0; single && i < n; i++)
        single = r[i].lo == r[i].hi;
    if (single && n) {
        ag_buf_printf(c, "connect_ports");
        for (size_t i = 0; i < n; i++)
            ag_buf_printf(c, " %u", r[i].lo);
        ag_buf_printf(c, "\n");
    } else {
        ag_buf_printf(c, "# Squid tunnels (CONNECT) to any port its rules allow; authgate only to\n"
                         "# connect_ports (443 by default): list the ports your users need.\n");
    }
    ag_buf_printf(c, "rules_file %s\n", rules_path);
}

static void write_rules(struct imp *m, const char *path)
{
    struct ag_buf *r = &m->out->rules;
    ag_buf_printf(r,
                  "# authgate rules translated from the http_access lines of %s\n"
                  "# (first match wins; each rule is named after its Squid line).\n",
                  path);
    /* Squid asks for credentials at the first line that needs a login. */
    size_t first_auth = m->n_acc;
    for (size_t i = 0; i < m->n_acc && first_auth == m->n_acc; i++)
        for (size_t k = 0; k < m->acc[i].n; k++)
            if (needs_auth(m, m->acc[i].refs[k]))
                first_auth = i;
    if (!m->n_order && first_auth < m->n_acc)
        note(m, m->acc[first_auth].where, m->acc[first_auth].text,
             "a login is needed but no auth_param program is configured");
    bool later_open = false;
    for (size_t i = 0; i < m->n_acc; i++) {
        bool pre = i < first_auth || !m->n_order;
        bool ok = write_rule(m, &m->acc[i], pre, r);
        if (ok && i > first_auth && m->acc[i].allow) {
            bool auth = false;
            for (size_t k = 0; k < m->acc[i].n; k++)
                auth = auth || needs_auth(m, m->acc[i].refs[k]);
            later_open = later_open || !auth;
        }
        if (!ok)
            ag_buf_printf(r, "# %s: %s -- NOT TRANSLATED (see the notes)\n", m->acc[i].where,
                          m->acc[i].text);
    }
    if (later_open)
        note(m, m->acc[first_auth].where, m->acc[first_auth].text,
             "the lines after this one apply only after a login in authgate; Squid lets a "
             "request that misses this line's other ACLs reach them without one");
    /* No line matched: the opposite of the last line (no line: deny). */
    bool def_allow = m->n_acc && !m->acc[m->n_acc - 1].allow;
    ag_buf_printf(r,
                  "# Squid's implicit default: the opposite of the last http_access line\n"
                  "default %s\n",
                  def_allow ? "allow" : "deny");
}

int ag_squid_import(const char *path, const char *rules_path, struct ag_squid_out *out, char *err,
                    size_t errlen)
{
    memset(out, 0, sizeof *out);
    ag_buf_init(&out->conf, AG_SQUID_OUT_MAX);
    ag_buf_init(&out->rules, AG_SQUID_OUT_MAX);
    ag_buf_init(&out->notes, AG_SQUID_OUT_MAX);
    struct imp *m = calloc(1, sizeof *m);
    int rc = -1;
    if (!m || !(m->acls = calloc(AG_SQUID_ACLS_MAX, sizeof *m->acls)) ||
        !(m->acc = calloc(AG_SQUID_ACCESS_MAX, sizeof *m->acc))) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    m->out = out;
    builtins(m);
    if (read_conf(m, path, 0) != 0 || m->failed) {
        snprintf(err, errlen, "%s", m->err[0] ? m->err : "out of memory");
        goto done;
    }
    write_rules(m, path);
    write_config(m, path, rules_path);
    if (out->n_notes) {
        ag_buf_printf(&out->conf, "\n# Not translated, or translated with a difference:\n");
        const char *s = out->notes.data;
        for (size_t o = 0; o < out->notes.len;) {
            const char *nl = memchr(s + o, '\n', out->notes.len - o);
            size_t n = nl ? (size_t)(nl - (s + o)) : out->notes.len - o;
            ag_buf_printf(&out->conf, "#   %.*s\n", (int)n, s + o);
            o += n + 1;
        }
    }
    rc = 0;
done:
    if (m) {
        for (size_t i = 0; m->acls && i < m->n_acls; i++) {
            for (size_t k = 0; k < m->acls[i].n; k++)
                free(m->acls[i].vals[k]);
            free(m->acls[i].vals);
            free(m->acls[i].name);
            free(m->acls[i].why);
        }
        for (size_t i = 0; m->acc && i < m->n_acc; i++) {
            for (size_t k = 0; k < m->acc[i].n; k++)
                free(m->acc[i].refs[k]);
            free(m->acc[i].refs);
            free(m->acc[i].text);
        }
        for (size_t i = 0; i < m->n_group_helpers; i++)
            free(m->group_helpers[i]);
        free(m->group_helpers);
        free(m->acls);
        free(m->acc);
        free(m->keytab);
        free(m->principal);
        free(m->basic_realm);
        free(m->basic_ttl);
        free(m);
    }
    if (rc != 0)
        ag_squid_out_free(out);
    return rc;
}

void ag_squid_out_free(struct ag_squid_out *out)
{
    ag_buf_free(&out->conf);
    ag_buf_free(&out->rules);
    ag_buf_free(&out->notes);
}

static int write_file(const char *dir, const char *name, const struct ag_buf *b)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (!f || fwrite(b->data, 1, b->len, f) != b->len || fclose(f) != 0) {
        fprintf(stderr, "authgate import-squid: %s: %s\n", p, strerror(errno));
        return -1;
    }
    return 0;
}

int ag_squid_import_main(int argc, char **argv)
{
    const char *dir = NULL, *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else
            path = NULL, i = argc;
    }
    if (!path) {
        fprintf(stderr, "usage: authgate import-squid [-o DIR] squid.conf\n");
        return 2;
    }
    struct ag_squid_out out;
    char err[600];
    if (ag_squid_import(path, "rules.conf", &out, err, sizeof err) != 0) {
        fprintf(stderr, "authgate import-squid: %s\n", err);
        return 2;
    }
    int rc = 0;
    if (dir) {
        if (write_file(dir, "authgate.conf", &out.conf) ||
            write_file(dir, "rules.conf", &out.rules))
            rc = 2;
    } else {
        fwrite(out.conf.data, 1, out.conf.len, stdout);
        printf("\n# ---- rules.conf ----\n");
        fwrite(out.rules.data, 1, out.rules.len, stdout);
    }
    fflush(stdout);
    if (out.n_notes)
        fprintf(stderr, "%zu line(s) not translated, or translated with a difference:\n%.*s",
                out.n_notes, (int)out.notes.len, out.notes.data);
    ag_squid_out_free(&out);
    return rc;
}
