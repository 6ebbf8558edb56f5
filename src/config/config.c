/* config.c - the option table, the tokenizer and the refcounted snapshot (see config.h).
 *
 * Everything about an option lives in one row of `opts`: its name, value type,
 * field, bounds, default, whether a reload may change it, and a one-line doc.
 * Parsing, defaults, freeing, ag_config_dump() and the sample's drift test all
 * walk that table, so adding an option is adding a row (and a struct field).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "authgate/err.h"
#include "config/config.h"
#include "files.h"
#include "util/log.h"
#include "util/util.h"

/* Enum-typed fields are written through an int pointer by the table code. */
_Static_assert(sizeof(enum ag_backend) == sizeof(int), "enum ag_backend is not int-sized");
_Static_assert(sizeof(enum ag_access_format) == sizeof(int), "enum ag_access_format size");

enum opt_type {
    T_DURATION, /* uint32_t milliseconds */
    T_SIZE,     /* uint32_t bytes */
    T_UINT,     /* uint32_t count */
    T_BOOL,     /* bool, on|off */
    T_STRING,   /* char *, owned */
    T_PATH,     /* char *, owned; relative => against the config's directory */
    T_ENUM,     /* int (an enum), one of `choices` */
    T_LOGLEVEL, /* int holding enum ag_log_level; names come from log.c */
    T_LISTEN,   /* listen[] / n_listen */
    T_PORTS,    /* connect_ports[] / n_connect_ports */
    T_SCHEMES,  /* schemes[] / n_schemes */
    T_MODE,     /* uint32_t file mode, written in octal (0660) */
    T_USERS,    /* struct ag_idlist of uids: numbers or user names, or none */
    T_GROUPS,   /* struct ag_idlist of gids: numbers or group names, or none */
    T_REALMS,   /* realm_domains[] / n_realm_domains: "REALM DOMAIN" per line, or none */
    T_CIDRS,    /* struct ag_cidrlist: addresses or networks, or none */
    T_PARENT,   /* parents[] / n_parents: "NAME HOST:PORT [auth=...] [tls [ca=FILE]]" per line,
                   or none; the last type (type_word's table is checked against it) */
};

/* Row flags. */
#define F_RELOAD 0x01u /* a reload may change it; otherwise it waits for a restart */
#define F_REPEAT 0x02u /* may appear on several lines (values accumulate) */
#define F_ZERO 0x04u   /* 0 is allowed below min and means "off" */
#define F_AUTO 0x08u   /* T_UINT: "auto" is stored as 0 (and written back as auto) */
#define F_NONE 0x08u   /* the word "none" stores NULL (string/path) */
#define F_DASH 0x10u   /* "-" is kept verbatim (path: stdout/stderr) */

struct choice {
    const char *name;
    int value;
};

struct opt {
    const char *name;
    enum opt_type type;
    size_t off;   /* offset of the field in struct ag_config */
    uint64_t min; /* numeric types: inclusive bounds in the field's unit */
    uint64_t max;
    uint64_t dnum;                /* numeric/bool/enum default, in the field's unit */
    const char *dstr;             /* default of text-valued types, as written in a file */
    unsigned flags;               /* F_* */
    const struct choice *choices; /* T_ENUM, NULL-name terminated */
    int (*check)(const char *v, const char **why); /* extra validation of a T_STRING */
    const char *doc;
};

/* ---- value checks --------------------------------------------------------- */

/* RFC 9110 tchar: what a token (field name, Via pseudonym) may contain. */
static bool is_tchar(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return true;
    return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!is_tchar((unsigned char)*s))
            return false;
    return true;
}

static int check_token(const char *v, const char **why)
{
    if (!is_token(v)) {
        *why = "must be an HTTP token (letters, digits and !#$%&'*+-.^_`|~)";
        return AG_EINVAL;
    }
    return 0;
}

/* The identity header is stripped from requests and then set by the gateway;
 * naming a framing, routing or credential header would break messages or leak
 * what invariant 3 keeps in, so those are refused. */
static int check_field_name(const char *v, const char **why)
{
    static const char *const reserved[] = {
        "connection",
        "content-length",
        "host",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "via",
        NULL,
    };
    if (!is_token(v)) {
        *why = "must be a valid header field name (an HTTP token)";
        return AG_EINVAL;
    }
    for (size_t i = 0; reserved[i]; i++)
        if (ag_strieq(v, strlen(v), reserved[i])) {
            *why = "names a header the proxy itself manages";
            return AG_EINVAL;
        }
    return 0;
}

/* The realm is sent inside a quoted-string without escaping. */
static int check_realm(const char *v, const char **why)
{
    if (strpbrk(v, "\"\\")) {
        *why = "must not contain '\"' or '\\'";
        return AG_EINVAL;
    }
    return 0;
}

/* error_contact goes on every error page (escaped there): one short line
 * of printable text. */
static int check_contact(const char *v, const char **why)
{
    if (strlen(v) > AG_ERROR_CONTACT_MAX) {
        *why = "must be at most 200 bytes (AG_ERROR_CONTACT_MAX)";
        return AG_EINVAL;
    }
    return 0;
}

/* A NetBIOS name: at most 15 characters, no blanks or separators. */
static int check_netbios(const char *v, const char **why)
{
    size_t n = strlen(v);
    if (n == 0 || n > 15 || strpbrk(v, " \\/:*?\"<>|.,")) {
        *why = "must be a NetBIOS name (1-15 characters, no . \\ / : * ? \" < > |)";
        return AG_EINVAL;
    }
    return 0;
}

/* A DNS name (for the proxy's host name and the DNS domain). */
static int check_dnsname(const char *v, const char **why)
{
    size_t n = strlen(v);
    for (size_t i = 0; i < n; i++) {
        char ch = v[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '.')) {
            *why = "must be a DNS name (letters, digits, '-' and '.')";
            return AG_EINVAL;
        }
    }
    if (n == 0 || n > 253) {
        *why = "must be a DNS name of 1-253 characters";
        return AG_EINVAL;
    }
    return 0;
}

/* The socket's group must exist when the file is read, not only at bind:
 * a typo is then a file:line error rather than a start-up surprise. */
static int check_group(const char *v, const char **why)
{
    struct group gr, *res = NULL;
    char buf[4096];
    if (getgrnam_r(v, &gr, buf, sizeof buf, &res) != 0 || !res) {
        *why = "is not a known group";
        return AG_EINVAL;
    }
    return 0;
}

/* An address and port the way "listen" takes it (no proxy_protocol word). */
static int check_listen(const char *v, const char **why)
{
    struct ag_listen l;
    if (ag_config_parse_listen(v, &l) != 0) {
        *why = "must be a numeric ADDRESS:PORT (1.2.3.4:9090, [::1]:9090, *:9090)";
        return AG_EINVAL;
    }
    return 0;
}

/* ---- the table ------------------------------------------------------------ */

static const struct choice access_formats[] = {
    {"squid", AG_ACCESS_SQUID},
    {"json", AG_ACCESS_JSON},
    {NULL, 0},
};

static const struct choice path_cases[] = {
    {"insensitive", AG_PATH_CASE_INSENSITIVE},
    {"sensitive", AG_PATH_CASE_SENSITIVE},
    {NULL, 0},
};

static const struct choice name_formats[] = {
    {"keep", 0},
    {"strip", 1},
    {"backslash", 2},
    {NULL, 0},
};

static const struct choice cb_modes[] = {
    {"off", AG_CB_OFF},
    {"if-present", AG_CB_IF_PRESENT},
    {"required", AG_CB_REQUIRED},
    {NULL, 0},
};

static const struct choice backends[] = {
    {"local", AG_BACKEND_LOCAL},
    {"winbind", AG_BACKEND_WINBIND},
    {NULL, 0},
};

#define OFF(f) offsetof(struct ag_config, f)
/* A deadline option: name "x", field x_ms, the common timeout bounds. */
// clang-format off
#define TMO(f, def, fl, d) \
    {#f, T_DURATION, OFF(f##_ms), AG_TIMEOUT_MIN_MS, AG_TIMEOUT_MAX_MS, (def), NULL, (fl), NULL, \
     NULL, d}
// clang-format on

static const struct opt opts[] = {
    /* where and how it runs */
    {"listen", T_LISTEN, OFF(listen), 0, 0, 0, "127.0.0.1:3128", F_REPEAT, NULL, NULL,
     "address:port to accept clients on, then proxy_protocol behind a balancer and/or tls; "
     "repeatable"},
    {"tls_certificate", T_PATH, OFF(tls_certificate), 0, 0, 0, "none", F_RELOAD | F_NONE, NULL,
     NULL, "PEM certificate (then its chain) of tls listeners"},
    {"tls_key", T_PATH, OFF(tls_key), 0, 0, 0, "none", F_RELOAD | F_NONE, NULL, NULL,
     "PEM private key of tls_certificate"},
    TMO(tls_handshake_timeout, AG_TLS_HANDSHAKE_TIMEOUT_MS, F_RELOAD,
        "time allowed for the TLS handshake after accept, and with a tls parent"),
    {"basic_require_tls", T_BOOL, OFF(basic_require_tls), 0, 1, 0, NULL, F_RELOAD, NULL, NULL,
     "offer and take Basic only on tls listeners"},
    {"channel_binding", T_ENUM, OFF(channel_binding), 0, 0, AG_CB_IF_PRESENT, NULL, F_RELOAD,
     cb_modes, NULL, "TLS channel binding of NTLM and Negotiate on tls listeners"},
    {"proxy_protocol_from", T_CIDRS, OFF(proxy_protocol_from), 0, 0, 0, "none", F_RELOAD, NULL,
     NULL, "balancers (addresses or networks) a proxy_protocol listener takes"},
    TMO(proxy_protocol_timeout, AG_PROXY_PROTOCOL_TIMEOUT_MS, F_RELOAD,
        "time allowed for the PROXY header after accept"),
    {"workers", T_UINT, OFF(workers), 1, AG_WORKERS_MAX, AG_WORKERS, NULL, F_AUTO, NULL, NULL,
     "event loops (threads), each accepting on every listen address; auto = one per CPU"},
    {"threadpool_size", T_UINT, OFF(threadpool_size), 1, AG_THREADPOOL_MAX, AG_THREADPOOL_SIZE,
     NULL, 0, NULL, NULL, "libuv threads for DNS lookups"},
    {"winbind_threads", T_UINT, OFF(winbind_threads), 1, AG_WORKER_THREADS_MAX, AG_WINBIND_THREADS,
     NULL, 0, NULL, NULL, "threads verifying through winbindd"},
    {"kerberos_threads", T_UINT, OFF(kerberos_threads), 1, AG_WORKER_THREADS_MAX,
     AG_KERBEROS_THREADS, NULL, F_ZERO, NULL, NULL,
     "threads verifying Kerberos tickets, 0 = one per CPU"},
    {"local_threads", T_UINT, OFF(local_threads), 1, AG_WORKER_THREADS_MAX, AG_LOCAL_THREADS, NULL,
     0, NULL, NULL, "threads verifying against user_file"},
    {"max_connections", T_UINT, OFF(max_connections), 1, AG_MAX_CONNECTIONS_MAX, AG_MAX_CONNECTIONS,
     NULL, F_RELOAD, NULL, NULL, "client connections held at once"},

    /* logs */
    {"error_log", T_PATH, OFF(error_log), 0, 0, 0, "-", F_RELOAD | F_DASH, NULL, NULL,
     "error log file, - = stderr"},
    {"access_log", T_PATH, OFF(access_log), 0, 0, 0, "-", F_RELOAD | F_DASH | F_NONE, NULL, NULL,
     "access log file, - = stdout, none = off"},
    {"access_log_format", T_ENUM, OFF(access_format), 0, 0, AG_ACCESS_SQUID, NULL, F_RELOAD,
     access_formats, NULL, "access log line format"},
    {"log_buffer", T_SIZE, OFF(log_buffer), 0, AG_LOG_BUFFER_MAX, AG_LOG_BUFFER, NULL, F_RELOAD,
     NULL, NULL, "log lines buffered before a write (flushed within 1 s), 0 = write each line"},
    {"log_level", T_LOGLEVEL, OFF(log_level), 0, 0, AG_LOG_INFO, NULL, F_RELOAD, NULL, NULL,
     "error log verbosity"},

    /* forwarding */
    {"via_pseudonym", T_STRING, OFF(via_pseudonym), 0, 0, 0, "authgate", F_RELOAD, NULL,
     check_token, "name the proxy gives itself in Via headers"},
    {"x_forwarded_for", T_BOOL, OFF(x_forwarded_for), 0, 1, 0, NULL, F_RELOAD, NULL, NULL,
     "add the client address in X-Forwarded-For"},
    {"connect_ports", T_PORTS, OFF(connect_ports), 1, 65535, 0, "443", F_RELOAD, NULL, NULL,
     "ports CONNECT may open tunnels to"},

    /* limits */
    {"header_max", T_SIZE, OFF(header_max), AG_HEADER_MAX_MIN, AG_HEADER_MAX_MAX, AG_HEADER_MAX,
     NULL, F_RELOAD, NULL, NULL, "largest request head accepted"},
    {"drain_max", T_SIZE, OFF(drain_max), 0, AG_DRAIN_MAX_MAX, AG_DRAIN_MAX, NULL, F_RELOAD, NULL,
     NULL, "largest body of a refused request read to keep the connection"},

    /* deadlines */
    TMO(head_timeout, AG_HEAD_TIMEOUT_MS, F_RELOAD, "time allowed to send a request head"),
    TMO(idle_timeout, AG_IDLE_TIMEOUT_MS, F_RELOAD, "idle keep-alive client connection"),
    TMO(dns_timeout, AG_DNS_TIMEOUT_MS, F_RELOAD, "resolving an upstream name"),
    TMO(connect_timeout, AG_CONNECT_TIMEOUT_MS, F_RELOAD, "TCP connect to one upstream address"),
    TMO(upstream_idle_timeout, AG_UPSTREAM_IDLE_TIMEOUT_MS, F_RELOAD,
        "upstream silence while a response is awaited"),
    {"upstream_keepalive_timeout", T_DURATION, OFF(upstream_keepalive_ms), AG_TIMEOUT_MIN_MS,
     AG_TIMEOUT_MAX_MS, AG_UPSTREAM_KEEPALIVE_MS, NULL, F_RELOAD, NULL, NULL,
     "idle pooled upstream connection"},
    {"upstream_keepalive", T_UINT, OFF(upstream_pool), 1, AG_UPSTREAM_POOL_MAX, AG_UPSTREAM_POOL,
     NULL, F_RELOAD | F_ZERO, NULL, NULL,
     "idle upstream connections each loop shares across clients, 0 = none shared"},
    {"upstream_keepalive_per_host", T_UINT, OFF(upstream_pool_per_host), 1, AG_UPSTREAM_POOL_MAX,
     AG_UPSTREAM_POOL_PER_HOST, NULL, F_RELOAD, NULL, NULL,
     "idle shared upstream connections kept per origin or parent"},
    TMO(tunnel_idle_timeout, AG_TUNNEL_IDLE_TIMEOUT_MS, F_RELOAD, "CONNECT tunnel without traffic"),
    TMO(shutdown_timeout, AG_SHUTDOWN_TIMEOUT_MS, F_RELOAD, "graceful shutdown grace period"),
    {"drain_delay", T_DURATION, OFF(drain_delay_ms), AG_TIMEOUT_MIN_MS, AG_TIMEOUT_MAX_MS,
     AG_DRAIN_DELAY_MS, NULL, F_RELOAD | F_ZERO, NULL, NULL,
     "on SIGTERM, listen on this long with /healthz at 503, 0 = close at once"},
    TMO(drain_timeout, AG_DRAIN_TIMEOUT_MS, F_RELOAD, "the body of a refused request"),

    /* authentication */
    {"auth_schemes", T_SCHEMES, OFF(schemes), 0, 0, 0, "negotiate ntlm basic", F_RELOAD, NULL, NULL,
     "schemes offered, in order; none = open proxy"},
    {"basic_realm", T_STRING, OFF(basic_realm), 0, 0, 0, "authgate", F_RELOAD, NULL, check_realm,
     "realm shown in Basic prompts"},
    {"basic_backend", T_ENUM, OFF(basic_backend), 0, 0, AG_BACKEND_LOCAL, NULL, F_RELOAD, backends,
     NULL, "verifier of Basic passwords"},
    {"ntlm_backend", T_ENUM, OFF(ntlm_backend), 0, 0, AG_BACKEND_LOCAL, NULL, F_RELOAD, backends,
     NULL, "verifier of NTLM responses"},
    {"user_file", T_PATH, OFF(user_file), 0, 0, 0, "none", F_RELOAD | F_NONE, NULL, NULL,
     "user:NT-hash file for the local backend"},
    {"identity_header", T_STRING, OFF(identity_header), 0, 0, 0, "none", F_RELOAD | F_NONE, NULL,
     check_field_name, "request header carrying the user upstream"},
    TMO(handshake_timeout, AG_HANDSHAKE_TIMEOUT_MS, F_RELOAD,
        "first token to identity; a reload's wait for winbind"),
    {"identity_max_age", T_DURATION, OFF(identity_max_age_ms), AG_TIMEOUT_MIN_MS, AG_TIMEOUT_MAX_MS,
     0, NULL, F_RELOAD | F_ZERO, NULL, NULL, "re-authenticate a connection after this, 0 = never"},
    {"max_handshakes", T_UINT, OFF(max_handshakes), 1, AG_MAX_HANDSHAKES_MAX, AG_MAX_HANDSHAKES,
     NULL, F_RELOAD, NULL, NULL, "handshakes in progress, all clients"},
    {"max_handshakes_per_addr", T_UINT, OFF(max_handshakes_per_addr), 1, AG_MAX_HANDSHAKES_MAX,
     AG_MAX_HANDSHAKES_PER_ADDR, NULL, F_RELOAD, NULL, NULL,
     "handshakes in progress per client address"},
    {"max_jobs", T_UINT, OFF(max_jobs), 1, AG_MAX_JOBS_MAX, AG_MAX_JOBS, NULL, F_RELOAD, NULL, NULL,
     "verifications queued or running, per worker pool"},
    {"basic_cache_ttl", T_DURATION, OFF(basic_cache_ttl_ms), AG_TIMEOUT_MIN_MS, AG_TIMEOUT_MAX_MS,
     (uint64_t)AG_BASIC_CACHE_TTL_S * 1000, NULL, F_RELOAD | F_ZERO, NULL, NULL,
     "lifetime of a cached Basic verification, 0 = no cache"},
    {"fail_max_per_user_addr", T_UINT, OFF(fail_max_per_user_addr), 1, AG_FAIL_MAX_MAX,
     AG_FAIL_MAX_PER_USER_ADDR, NULL, F_RELOAD, NULL, NULL,
     "failures per (user, address) within fail_window"},
    {"fail_max_per_user", T_UINT, OFF(fail_max_per_user), 1, AG_FAIL_MAX_MAX, AG_FAIL_MAX_PER_USER,
     NULL, F_RELOAD, NULL, NULL, "verified wrong passwords per user within fail_window"},
    {"fail_max_per_addr", T_UINT, OFF(fail_max_per_addr), 1, AG_FAIL_MAX_MAX, AG_FAIL_MAX_PER_ADDR,
     NULL, F_RELOAD, NULL, NULL, "failures per address within fail_window"},
    {"fail_window", T_DURATION, OFF(fail_window_ms), AG_TIMEOUT_MIN_MS, AG_TIMEOUT_MAX_MS,
     (uint64_t)AG_FAIL_WINDOW_S * 1000, NULL, F_RELOAD, NULL, NULL,
     "period over which failures are counted"},

    /* the proxy's name, NTLM */
    {"proxy_host", T_STRING, OFF(proxy_host), 0, 0, 0, "none", F_RELOAD | F_NONE, NULL,
     check_dnsname, "host name clients use for the proxy"},
    {"ntlm_domain", T_STRING, OFF(ntlm_domain), 0, 0, 0, "AUTHGATE", F_RELOAD, NULL, check_netbios,
     "NetBIOS domain named in NTLM challenges"},
    {"ntlm_dns_domain", T_STRING, OFF(ntlm_dns_domain), 0, 0, 0, "none", F_RELOAD | F_NONE, NULL,
     check_dnsname, "DNS domain named in NTLM challenges"},
    {"ntlm_require_mic", T_BOOL, OFF(ntlm_require_mic), 0, 1, 0, NULL, F_RELOAD, NULL, NULL,
     "refuse NTLM AUTHENTICATE messages without a MIC"},
    {"ntlm_allow_v1", T_BOOL, OFF(ntlm_allow_v1), 0, 1, 0, NULL, F_RELOAD, NULL, NULL,
     "accept NTLMv1/NTLM2-session responses through winbind (legacy clients)"},
    {"ntlm_allow_machine_accounts", T_BOOL, OFF(ntlm_allow_machine_accounts), 0, 1, 0, NULL,
     F_RELOAD, NULL, NULL, "admit computer (HOST$ trust) accounts through NTLM and winbind"},

    /* Negotiate (Kerberos) */
    {"keytab", T_PATH, OFF(keytab), 0, 0, 0, "none", F_RELOAD | F_NONE, NULL, NULL,
     "keytab holding the proxy's HTTP/ keys"},
    {"negotiate_acceptor", T_STRING, OFF(negotiate_acceptor), 0, 0, 0, "none", F_RELOAD | F_NONE,
     NULL, NULL, "principal tickets must be for; any = every key in the keytab"},
    {"negotiate_name_format", T_ENUM, OFF(negotiate_name_format), 0, 0, 0, NULL, F_RELOAD,
     name_formats, NULL, "how a Kerberos principal becomes the user name"},
    {"negotiate_realms", T_STRING, OFF(negotiate_realms), 0, 0, 0, "none", F_RELOAD | F_NONE, NULL,
     NULL, "comma-separated realms allowed; none = any"},
    {"rcache_dir", T_PATH, OFF(rcache_dir), 0, 0, 0, "none", F_NONE, NULL, NULL,
     "directory of the Kerberos replay cache"},
    {"realm_domain", T_REALMS, OFF(realm_domains), 0, 0, 0, "none", F_RELOAD | F_REPEAT, NULL, NULL,
     "REALM DOMAIN: the winbind domain holding a Kerberos realm's groups"},

    /* access rules */
    {"rules_file", T_PATH, OFF(rules_file), 0, 0, 0, "none", F_RELOAD | F_NONE, NULL, NULL,
     "allow/deny rules: who may go where"},
    {"rules_path_case", T_ENUM, OFF(rules_path_case), 0, 0, AG_PATH_CASE_INSENSITIVE, NULL,
     F_RELOAD, path_cases, NULL, "whether path= rules tell /Admin/ from /admin/"},

    /* parents and PAC */
    {"parent", T_PARENT, OFF(parents), 0, 0, 0, "none", F_RELOAD | F_REPEAT, NULL, NULL,
     "NAME HOST:PORT [auth=basic:FILE|auth=negotiate:PRINCIPAL] [tls [ca=FILE]]: a parent proxy "
     "for route="},
    {"parent_tls_ca", T_PATH, OFF(parent_tls_ca), 0, 0, 0, "none", F_RELOAD | F_NONE, NULL, NULL,
     "PEM CA certificates verifying tls parents without ca= (none: the system store)"},
    {"parent_identity_header", T_BOOL, OFF(parent_identity_header), 0, 1, 0, NULL, F_RELOAD, NULL,
     NULL, "send identity_header to parents too"},
    {"parent_backoff", T_DURATION, OFF(parent_backoff_ms), AG_TIMEOUT_MIN_MS, AG_TIMEOUT_MAX_MS,
     AG_PARENT_BACKOFF_MS, NULL, F_RELOAD, NULL, NULL,
     "a parent that refused a connection is skipped this long"},
    {"pac_file", T_PATH, OFF(pac_file), 0, 0, 0, "none", F_RELOAD | F_NONE, NULL, NULL,
     "PAC file served as /proxy.pac and /wpad.dat, none = off"},
    /* what users see */
    {"error_templates", T_PATH, OFF(error_templates), 0, 0, 0, "none", F_RELOAD | F_NONE, NULL,
     NULL, "directory of HTML error page templates; none = built-in"},
    {"error_contact", T_STRING, OFF(error_contact), 0, 0, 0, "none", F_RELOAD | F_NONE, NULL,
     check_contact, "help-desk contact shown on error pages"},

    /* the status socket (authgatectl) */
    {"status_socket", T_PATH, OFF(status_socket), 0, 0, 0, "none", F_NONE, NULL, NULL,
     "UNIX socket authgatectl talks to; none = off"},
    {"status_socket_mode", T_MODE, OFF(status_socket_mode), 0, 0777, 0660, NULL, 0, NULL, NULL,
     "permissions of the status socket (octal)"},
    {"status_socket_group", T_STRING, OFF(status_socket_group), 0, 0, 0, "none", F_NONE, NULL,
     check_group, "group owning the status socket"},
    {"status_allow_users", T_USERS, OFF(status_allow_users), 0, 0, 0, "0", F_RELOAD, NULL, NULL,
     "users (names or uids) whose connections to the socket are served"},
    {"status_allow_groups", T_GROUPS, OFF(status_allow_groups), 0, 0, 0, "none", F_RELOAD, NULL,
     NULL, "groups (names or gids) whose members' connections are served"},

    /* the Prometheus listener */
    {"metrics_listen", T_STRING, OFF(metrics_listen), 0, 0, 0, "none", F_NONE, NULL, check_listen,
     "address:port serving GET /metrics to Prometheus; none = off"},
    {"metrics_allow", T_CIDRS, OFF(metrics_allow), 0, 0, 0, "127.0.0.1 ::1", F_RELOAD, NULL, NULL,
     "scraper addresses or networks metrics_listen serves; others get 403"},
};

#undef TMO
#undef OFF

#define N_OPTS (sizeof opts / sizeof opts[0])

size_t ag_config_option_count(void)
{
    return N_OPTS;
}

const char *ag_config_option_name(size_t i)
{
    return i < N_OPTS ? opts[i].name : NULL;
}

bool ag_config_option_reloadable(size_t i)
{
    return i < N_OPTS && (opts[i].flags & F_RELOAD);
}

/* Field accessors: the table's offset applied to a config. */
static void *field(const struct opt *o, struct ag_config *c)
{
    return (char *)c + o->off;
}

static const void *cfield(const struct opt *o, const struct ag_config *c)
{
    return (const char *)c + o->off;
}

/* ---- number parsers ------------------------------------------------------- */

/* Reads leading decimal digits of s (at least one) into *v, refusing values
 * above UINT32_MAX; *end points past the digits. No sign, no blanks. */
static int parse_digits(const char *s, const char **end, uint64_t *v)
{
    size_t n = 0;
    while (s[n] >= '0' && s[n] <= '9')
        n++;
    if (ag_parse_dec(s, n, UINT32_MAX, v) != 0)
        return AG_EINVAL;
    *end = s + n;
    return 0;
}

int ag_config_parse_duration_ms(const char *s, uint32_t *out)
{
    static const struct {
        const char *suffix;
        uint64_t ms;
    } units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    const char *end;
    uint64_t v;
    if (!s || parse_digits(s, &end, &v) != 0)
        return AG_EINVAL;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].suffix) != 0)
            continue;
        /* v <= 2^32 and ms <= 2^22: the product cannot overflow 64 bits. */
        uint64_t ms = v * units[i].ms;
        if (ms > UINT32_MAX)
            return AG_EINVAL;
        *out = (uint32_t)ms;
        return 0;
    }
    return AG_EINVAL;
}

int ag_config_parse_size(const char *s, uint32_t *out)
{
    const char *end;
    uint64_t v, mult;
    if (!s || parse_digits(s, &end, &v) != 0)
        return AG_EINVAL;
    if (*end == '\0')
        mult = 1;
    else if ((*end == 'k' || *end == 'K') && end[1] == '\0')
        mult = 1024;
    else if ((*end == 'm' || *end == 'M') && end[1] == '\0')
        mult = 1024 * 1024;
    else
        return AG_EINVAL;
    if (v * mult > UINT32_MAX) /* v <= 2^32, mult <= 2^20: no 64-bit overflow */
        return AG_EINVAL;
    *out = (uint32_t)(v * mult);
    return 0;
}

static int parse_uint(const char *s, uint32_t *out)
{
    const char *end;
    uint64_t v;
    if (parse_digits(s, &end, &v) != 0 || *end != '\0')
        return AG_EINVAL;
    *out = (uint32_t)v;
    return 0;
}

int ag_config_parse_listen(const char *s, struct ag_listen *out)
{
    struct ag_listen l;
    char host[INET6_ADDRSTRLEN + 1];
    const char *colon, *hs, *he;
    uint32_t port;

    if (!s || strlen(s) >= sizeof l.text)
        return AG_EINVAL;
    memset(&l, 0, sizeof l);
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return AG_EINVAL;
        hs = s + 1;
        he = rb;
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return AG_EINVAL;
        hs = s;
        he = colon;
        /* An unbracketed IPv6 address would make the port ambiguous. */
        if (memchr(hs, ':', (size_t)(he - hs)))
            return AG_EINVAL;
    }
    if (he == hs || (size_t)(he - hs) >= sizeof host)
        return AG_EINVAL;
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = '\0';
    if (strlen(colon + 1) > 5 || parse_uint(colon + 1, &port) != 0 || port < 1 || port > 65535)
        return AG_EINVAL;

    if (s[0] == '[') {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&l.addr;
        if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
            return AG_EINVAL;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&l.addr;
        if (strcmp(host, "*") == 0)
            a4->sin_addr.s_addr = htonl(INADDR_ANY);
        else if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
            return AG_EINVAL;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
    }
    memcpy(l.text, s, strlen(s) + 1);
    *out = l;
    return 0;
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
}

/* ---- formatting (dump, bounds in messages) -------------------------------- */

static void fmt_duration(uint64_t ms, char *buf, size_t cap)
{
    if (ms == 0)
        snprintf(buf, cap, "0");
    else if (ms % 3600000 == 0)
        snprintf(buf, cap, "%lluh", (unsigned long long)(ms / 3600000));
    else if (ms % 60000 == 0)
        snprintf(buf, cap, "%llum", (unsigned long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(buf, cap, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(buf, cap, "%llums", (unsigned long long)ms);
}

static void fmt_size(uint64_t n, char *buf, size_t cap)
{
    if (n != 0 && n % (1024 * 1024) == 0)
        snprintf(buf, cap, "%llum", (unsigned long long)(n / (1024 * 1024)));
    else if (n != 0 && n % 1024 == 0)
        snprintf(buf, cap, "%lluk", (unsigned long long)(n / 1024));
    else
        snprintf(buf, cap, "%llu", (unsigned long long)n);
}

/* A bound as shown in an error: durations with a unit (a bare number would
 * read as seconds), sizes and counts as plain numbers (bare = bytes). */
static void fmt_bound(const struct opt *o, uint64_t v, char *buf, size_t cap)
{
    if (o->type == T_DURATION)
        fmt_duration(v, buf, cap);
    else
        snprintf(buf, cap, "%llu", (unsigned long long)v);
}

/* Appends s, double-quoted with escapes if the tokenizer would otherwise
 * split or drop it, so that a dump parses back to the same value. */
static int append_word(struct ag_buf *b, const char *s)
{
    if (*s && !strpbrk(s, " \t#\"\\")) /* nothing the tokenizer treats specially */
        return ag_buf_appendz(b, s);
    int rc = ag_buf_append(b, "\"", 1);
    for (; !rc && *s; s++) {
        if (*s == '"' || *s == '\\')
            rc = ag_buf_append(b, "\\", 1);
        if (!rc)
            rc = ag_buf_append(b, s, 1);
    }
    return rc ? rc : ag_buf_append(b, "\"", 1);
}

/* One parent line, each word through append_word: a credential file, a
 * principal or a CA path may hold blanks or '#' and must dump as one word. */
static int dump_parent(struct ag_buf *b, const struct ag_parent *p)
{
    char w[AG_CONFIG_LINE_MAX];
    bool v6 = strchr(p->host, ':') != NULL;
    int rc = append_word(b, p->name);
    if (!rc)
        rc = ag_buf_printf(b, " %s%s%s:%u", v6 ? "[" : "", p->host, v6 ? "]" : "",
                           (unsigned)p->port);
    if (!rc && p->auth != AG_PARENT_AUTH_NONE) {
        snprintf(w, sizeof w, "auth=%s:%s", p->auth == AG_PARENT_AUTH_BASIC ? "basic" : "negotiate",
                 p->auth == AG_PARENT_AUTH_BASIC ? p->cred_file : p->principal);
        if (!(rc = ag_buf_append(b, " ", 1)))
            rc = append_word(b, w);
    }
    if (!rc && p->tls)
        rc = ag_buf_appendz(b, " tls");
    if (!rc && p->tls_ca) {
        snprintf(w, sizeof w, "ca=%s", p->tls_ca);
        if (!(rc = ag_buf_append(b, " ", 1)))
            rc = append_word(b, w);
    }
    return rc;
}

static const char *scheme_word(enum ag_scheme s)
{
    switch (s) {
    case AG_SCHEME_NEGOTIATE:
        return "negotiate";
    case AG_SCHEME_NTLM:
        return "ntlm";
    case AG_SCHEME_BASIC:
        return "basic";
    default:
        return NULL;
    }
}

/* Appends the effective value of o in file syntax. For a repeatable option,
 * item selects one value; item == SIZE_MAX joins all of them with blanks. */
static int fmt_value(const struct opt *o, const struct ag_config *c, size_t item, struct ag_buf *b)
{
    char num[32];
    const void *f = cfield(o, c);
    int rc = 0;

    switch (o->type) {
    case T_DURATION:
        fmt_duration(*(const uint32_t *)f, num, sizeof num);
        return ag_buf_appendz(b, num);
    case T_SIZE:
        fmt_size(*(const uint32_t *)f, num, sizeof num);
        return ag_buf_appendz(b, num);
    case T_UINT:
        if ((o->flags & F_AUTO) && *(const uint32_t *)f == 0)
            return ag_buf_appendz(b, "auto");
        return ag_buf_printf(b, "%u", (unsigned)*(const uint32_t *)f);
    case T_BOOL:
        return ag_buf_appendz(b, *(const bool *)f ? "on" : "off");
    case T_STRING:
    case T_PATH: {
        const char *s = *(char *const *)f;
        return s ? append_word(b, s) : ag_buf_appendz(b, "none");
    }
    case T_ENUM:
        for (const struct choice *ch = o->choices; ch->name; ch++)
            if (ch->value == *(const int *)f)
                return ag_buf_appendz(b, ch->name);
        return ag_buf_appendz(b, "?");
    case T_LOGLEVEL:
        return ag_buf_appendz(b, ag_log_level_name((enum ag_log_level) * (const int *)f));
    case T_LISTEN:
    case T_REALMS: {
        /* one entry per file line: listeners, realm_domain pairs */
        size_t n = o->type == T_LISTEN ? c->n_listen : c->n_realm_domains;
        if (n == 0 && o->type == T_REALMS)
            return ag_buf_appendz(b, "none");
        for (size_t i = 0; !rc && i < n; i++) {
            if (item != SIZE_MAX && i != item)
                continue;
            if (item == SIZE_MAX && i > 0)
                rc = ag_buf_append(b, " ", 1);
            if (!rc && o->type == T_LISTEN)
                rc = ag_buf_printf(b, "%s%s%s", c->listen[i].text,
                                   c->listen[i].proxy_protocol ? " proxy_protocol" : "",
                                   c->listen[i].tls ? " tls" : "");
            else if (!rc)
                /* quoted like any value: a domain "#" must not dump as a comment */
                if (!(rc = append_word(b, c->realm_domains[i].realm)) &&
                    !(rc = ag_buf_append(b, " ", 1)))
                    rc = append_word(b, c->realm_domains[i].domain);
        }
        return rc;
    }
    case T_PARENT: {
        if (c->n_parents == 0)
            return ag_buf_appendz(b, "none");
        for (size_t i = 0; !rc && i < c->n_parents; i++) {
            if (item != SIZE_MAX && i != item)
                continue;
            if (item == SIZE_MAX && i)
                rc = ag_buf_append(b, " ", 1);
            if (!rc)
                rc = dump_parent(b, &c->parents[i]);
        }
        return rc;
    }
    case T_PORTS:
        for (size_t i = 0; !rc && i < c->n_connect_ports; i++)
            rc = ag_buf_printf(b, "%s%u", i ? " " : "", (unsigned)c->connect_ports[i]);
        return rc;
    case T_MODE:
        return ag_buf_printf(b, "0%03o", (unsigned)*(const uint32_t *)f);
    case T_CIDRS: {
        const struct ag_cidrlist *l = f;
        if (l->n == 0)
            return ag_buf_appendz(b, "none");
        for (size_t i = 0; !rc && i < l->n; i++) {
            char a[64];
            struct sockaddr_storage ss = {.ss_family = (sa_family_t)l->v[i].family};
            if (l->v[i].family == AF_INET)
                memcpy(&((struct sockaddr_in *)&ss)->sin_addr, l->v[i].a, 4);
            else
                memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, l->v[i].a, 16);
            ag_addr_text((const struct sockaddr *)&ss, a, sizeof a);
            rc = ag_buf_printf(b, "%s%s/%u", i ? " " : "", a, l->v[i].bits);
        }
        return rc;
    }
    case T_USERS:
    case T_GROUPS: {
        const struct ag_idlist *l = f;
        if (l->n == 0)
            return ag_buf_appendz(b, "none");
        for (size_t i = 0; !rc && i < l->n; i++)
            rc = ag_buf_printf(b, "%s%u", i ? " " : "", (unsigned)l->id[i]);
        return rc;
    }
    case T_SCHEMES:
        if (c->n_schemes == 0)
            return ag_buf_appendz(b, "none");
        for (size_t i = 0; !rc && i < c->n_schemes; i++) {
            const char *w = scheme_word(c->schemes[i]);
            rc = ag_buf_printf(b, "%s%s", i ? " " : "", w ? w : "?");
        }
        return rc;
    }
    return AG_EINVAL;
}

/* ---- parsing -------------------------------------------------------------- */

/* One parse: the config being built and where we are, for messages. */
struct pctx {
    struct ag_config *c; /* borrowed: being filled */
    const char *name;    /* borrowed: file name for messages */
    const char *basedir; /* borrowed: relative paths resolve here; NULL = keep as written */
    size_t line;         /* 0 = no line (file-level message) */
    char *err;           /* borrowed: message out */
    size_t errlen;
    bool seen[N_OPTS]; /* "given twice" detection and which defaults apply */
};

static int fail(struct pctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes "name:line: message" (or "name: message") into the caller's err. */
static int fail(struct pctx *x, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (x->err && x->errlen) {
        if (x->line)
            snprintf(x->err, x->errlen, "%s:%zu: %s", x->name, x->line, msg);
        else
            snprintf(x->err, x->errlen, "%s: %s", x->name, msg);
    }
    return AG_EINVAL;
}

/* Values quoted back in messages are the operator's, but may hold anything a
 * quoted string can: escape them and keep messages one short line. */
static const char *shown(const char *v, char *buf, size_t cap)
{
    return ag_escape(buf, cap, v, strlen(v));
}

static int set_number(struct pctx *x, const struct opt *o, const char *v)
{
    static const char *const what[] = {
        [T_DURATION] = "duration", [T_SIZE] = "size", [T_UINT] = "number"};
    char sv[80], bound[32];
    uint32_t n;
    int rc;
    if (o->type == T_DURATION)
        rc = ag_config_parse_duration_ms(v, &n);
    else if (o->type == T_SIZE)
        rc = ag_config_parse_size(v, &n);
    else
        rc = parse_uint(v, &n);
    if (rc)
        return fail(x, "%s: invalid %s '%s'", o->name, what[o->type], shown(v, sv, sizeof sv));
    if (n < o->min && !(n == 0 && (o->flags & F_ZERO))) {
        fmt_bound(o, o->min, bound, sizeof bound);
        return fail(x, "%s: %s is below the minimum %s%s", o->name, shown(v, sv, sizeof sv), bound,
                    (o->flags & F_ZERO) ? " (0 turns it off)" : "");
    }
    if (n > o->max) {
        fmt_bound(o, o->max, bound, sizeof bound);
        return fail(x, "%s: %s is above the maximum %s", o->name, shown(v, sv, sizeof sv), bound);
    }
    *(uint32_t *)field(o, x->c) = n;
    return 0;
}

static int set_path(struct pctx *x, const struct opt *o, const char *v, char **dst)
{
    char *s;
    if ((o->flags & F_DASH) && strcmp(v, "-") == 0) {
        s = strdup(v);
    } else if (v[0] == '/' || !x->basedir) {
        s = strdup(v);
    } else {
        size_t bl = strlen(x->basedir), vl = strlen(v);
        size_t sep = (bl && x->basedir[bl - 1] == '/') ? 0 : 1; /* basedir "/" */
        if (bl + sep + vl + 1 > PATH_MAX)
            return fail(x, "%s: path too long", o->name);
        if ((s = malloc(bl + sep + vl + 1))) {
            memcpy(s, x->basedir, bl);
            s[bl] = '/';
            memcpy(s + bl + sep, v, vl + 1);
        }
    }
    if (!s)
        return fail(x, "out of memory");
    *dst = s;
    return 0;
}

static int set_text(struct pctx *x, const struct opt *o, const char *v)
{
    char **dst = field(o, x->c);
    const char *why = NULL;
    char sv[80];
    if (*v == '\0')
        return fail(x, "%s: empty value", o->name);
    if ((o->flags & F_NONE) && strcmp(v, "none") == 0) {
        *dst = NULL;
        return 0;
    }
    if (o->type == T_PATH)
        return set_path(x, o, v, dst);
    if (o->check && o->check(v, &why) != 0)
        return fail(x, "%s: '%s' %s", o->name, shown(v, sv, sizeof sv), why);
    if (!(*dst = strdup(v)))
        return fail(x, "out of memory");
    return 0;
}

/* "local or winbind", "squid or json" */
static void choice_list(const char *const *names, size_t n, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && o < cap; i++) {
        const char *sep = i == 0 ? "" : (i + 1 == n ? " or " : ", ");
        int w = snprintf(buf + o, cap - o, "%s%s", sep, names[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
}

static int set_choice(struct pctx *x, const struct opt *o, const char *v)
{
    const char *names[8];
    size_t n = 0;
    char list[96], sv[80];
    int *dst = field(o, x->c);

    if (o->type == T_LOGLEVEL) {
        char low[16];
        enum ag_log_level lvl;
        size_t len = strlen(v);
        if (len < sizeof low) {
            for (size_t i = 0; i <= len; i++)
                low[i] = ag_ascii_lower(v[i]);
            if (ag_log_level_parse(low, &lvl) == 0) {
                *dst = (int)lvl;
                return 0;
            }
        }
        for (int i = 0; i <= AG_LOG_DEBUG && n < 8; i++)
            names[n++] = ag_log_level_name((enum ag_log_level)i);
    } else {
        for (const struct choice *ch = o->choices; ch->name; ch++) {
            if (ag_strieq(v, strlen(v), ch->name)) {
                *dst = ch->value;
                return 0;
            }
            if (n < 8)
                names[n++] = ch->name;
        }
    }
    choice_list(names, n, list, sizeof list);
    return fail(x, "%s: unknown value '%s' (use %s)", o->name, shown(v, sv, sizeof sv), list);
}

static int set_bool(struct pctx *x, const struct opt *o, const char *v)
{
    char sv[80];
    bool *dst = field(o, x->c);
    if (ag_strieq(v, strlen(v), "on"))
        *dst = true;
    else if (ag_strieq(v, strlen(v), "off"))
        *dst = false;
    else
        return fail(x, "%s: expected on or off, got '%s'", o->name, shown(v, sv, sizeof sv));
    return 0;
}

/* "listen ADDR:PORT... [proxy_protocol]": the flag words after the
 * addresses apply to every address of the line. */
static int add_listen(struct pctx *x, const struct opt *o, char **argv, size_t argc)
{
    struct ag_config *c = x->c;
    char sv[80];
    bool pp = false, tls = false;
    while (argc > 1 &&
           (strcmp(argv[argc - 1], "proxy_protocol") == 0 || strcmp(argv[argc - 1], "tls") == 0)) {
        if (argv[argc - 1][0] == 't')
            tls = true;
        else
            pp = true;
        argc--;
    }
    for (size_t i = 0; i < argc; i++) {
        struct ag_listen l;
        if (ag_config_parse_listen(argv[i], &l) != 0)
            return fail(x, "%s: invalid address '%s' (use 1.2.3.4:port, [::1]:port or *:port)",
                        o->name, shown(argv[i], sv, sizeof sv));
        for (size_t k = 0; k < c->n_listen; k++)
            if (same_addr(&c->listen[k].addr, &l.addr))
                return fail(x, "%s: %s given twice", o->name, shown(argv[i], sv, sizeof sv));
        if (c->n_listen == AG_MAX_LISTENERS)
            return fail(x, "%s: more than %d addresses", o->name, AG_MAX_LISTENERS);
        l.proxy_protocol = pp;
        l.tls = tls;
        c->listen[c->n_listen++] = l;
    }
    return 0;
}

static int set_ports(struct pctx *x, const struct opt *o, char **argv, size_t argc)
{
    uint16_t ports[AG_MAX_CONNECT_PORTS];
    size_t n = 0;
    char sv[80];
    for (size_t i = 0; i < argc; i++) {
        uint32_t p;
        if (parse_uint(argv[i], &p) != 0 || p < o->min || p > o->max)
            return fail(x, "%s: invalid port '%s' (1-65535)", o->name,
                        shown(argv[i], sv, sizeof sv));
        for (size_t k = 0; k < n; k++)
            if (ports[k] == p)
                return fail(x, "%s: port %u listed twice", o->name, (unsigned)p);
        if (n == AG_MAX_CONNECT_PORTS)
            return fail(x, "%s: more than %d ports", o->name, AG_MAX_CONNECT_PORTS);
        ports[n++] = (uint16_t)p;
    }
    memcpy(x->c->connect_ports, ports, n * sizeof ports[0]);
    x->c->n_connect_ports = n;
    return 0;
}

static int set_schemes(struct pctx *x, const struct opt *o, char **argv, size_t argc)
{
    static const enum ag_scheme all[] = {AG_SCHEME_NEGOTIATE, AG_SCHEME_NTLM, AG_SCHEME_BASIC};
    enum ag_scheme got[3];
    size_t n = 0;
    char sv[80];

    if (argc == 1 && ag_strieq(argv[0], strlen(argv[0]), "none")) {
        x->c->n_schemes = 0;
        return 0;
    }
    for (size_t i = 0; i < argc; i++) {
        enum ag_scheme s = AG_SCHEME_NONE;
        for (size_t k = 0; k < 3; k++)
            if (ag_strieq(argv[i], strlen(argv[i]), scheme_word(all[k])))
                s = all[k];
        if (s == AG_SCHEME_NONE) {
            if (ag_strieq(argv[i], strlen(argv[i]), "none"))
                return fail(x, "%s: 'none' must stand alone", o->name);
            return fail(x, "%s: unknown scheme '%s' (use negotiate, ntlm, basic or none)", o->name,
                        shown(argv[i], sv, sizeof sv));
        }
        for (size_t k = 0; k < n; k++)
            if (got[k] == s)
                return fail(x, "%s: '%s' listed twice", o->name, scheme_word(s));
        /* Three distinct schemes exist, so n < 3 here. */
        got[n++] = s;
    }
    memcpy(x->c->schemes, got, n * sizeof got[0]);
    x->c->n_schemes = n;
    return 0;
}

/* Octal digits only, with or without a leading 0: "0660", "660". */
static int set_mode(struct pctx *x, const struct opt *o, const char *v)
{
    char sv[80];
    uint32_t m = 0;
    size_t n = strlen(v);
    if (n == 0 || n > 4)
        goto bad;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '7')
            goto bad;
        m = m * 8 + (uint32_t)(v[i] - '0');
    }
    if (m > o->max)
        goto bad;
    *(uint32_t *)field(o, x->c) = m;
    return 0;
bad:
    return fail(x, "%s: invalid mode '%s' (octal, such as 0660)", o->name, shown(v, sv, sizeof sv));
}

/* A user or group: a number, or a name resolved now through NSS. */
static int resolve_id(bool group, const char *v, uint32_t *out)
{
    if (parse_uint(v, out) == 0)
        return 0;
    char buf[4096];
    if (group) {
        struct group gr, *res = NULL;
        if (getgrnam_r(v, &gr, buf, sizeof buf, &res) != 0 || !res)
            return AG_ENOTFOUND;
        *out = (uint32_t)res->gr_gid;
    } else {
        struct passwd pw, *res = NULL;
        if (getpwnam_r(v, &pw, buf, sizeof buf, &res) != 0 || !res)
            return AG_ENOTFOUND;
        *out = (uint32_t)res->pw_uid;
    }
    return 0;
}

static int set_ids(struct pctx *x, const struct opt *o, char **argv, size_t argc)
{
    struct ag_idlist l;
    char sv[80];
    bool group = o->type == T_GROUPS;
    memset(&l, 0, sizeof l);
    if (argc == 1 && strcmp(argv[0], "none") == 0) {
        *(struct ag_idlist *)field(o, x->c) = l;
        return 0;
    }
    for (size_t i = 0; i < argc; i++) {
        uint32_t id;
        if (strcmp(argv[i], "none") == 0)
            return fail(x, "%s: 'none' must stand alone", o->name);
        if (resolve_id(group, argv[i], &id) != 0)
            return fail(x, "%s: unknown %s '%s'", o->name, group ? "group" : "user",
                        shown(argv[i], sv, sizeof sv));
        bool dup = false;
        for (size_t k = 0; k < l.n; k++)
            dup = dup || l.id[k] == id;
        if (dup)
            continue;
        if (l.n == AG_CTL_ALLOW_MAX)
            return fail(x, "%s: more than %d entries", o->name, AG_CTL_ALLOW_MAX);
        l.id[l.n++] = id;
    }
    *(struct ag_idlist *)field(o, x->c) = l;
    return 0;
}

/* "proxy_protocol_from 10.0.0.5 10.1.0.0/24 ..." or "none". */
static int set_cidrs(struct pctx *x, const struct opt *o, char **argv, size_t argc)
{
    struct ag_cidrlist l = {.n = 0};
    char sv[80];
    if (argc == 1 && strcmp(argv[0], "none") == 0) {
        *(struct ag_cidrlist *)field(o, x->c) = l;
        return 0;
    }
    for (size_t i = 0; i < argc; i++) {
        if (l.n == AG_PROXY_FROM_MAX)
            return fail(x, "%s: more than %d networks", o->name, AG_PROXY_FROM_MAX);
        if (ag_cidr_parse(argv[i], &l.v[l.n]) != 0)
            return fail(x, "%s: '%s' is not an address or CIDR network", o->name,
                        shown(argv[i], sv, sizeof sv));
        l.n++;
    }
    *(struct ag_cidrlist *)field(o, x->c) = l;
    return 0;
}

/* "realm_domain REALM DOMAIN" adds one entry; "realm_domain none" clears. */
static int add_realm_domain(struct pctx *x, const struct opt *o, char **argv, size_t argc)
{
    struct ag_config *c = x->c;
    const char *why = NULL;
    char sv[80];
    if (argc == 1 && strcmp(argv[0], "none") == 0) {
        c->n_realm_domains = 0;
        return 0;
    }
    if (argc != 2)
        return fail(x, "%s: needs a realm and a winbind domain (REALM DOMAIN)", o->name);
    if (check_dnsname(argv[0], &why) != 0)
        return fail(x, "%s: realm '%s' %s", o->name, shown(argv[0], sv, sizeof sv), why);
    if (check_netbios(argv[1], &why) != 0)
        return fail(x, "%s: domain '%s' %s", o->name, shown(argv[1], sv, sizeof sv), why);
    if (ag_config_realm_domain(c, argv[0]))
        return fail(x, "%s: realm %s given twice", o->name, argv[0]);
    if (c->n_realm_domains == AG_REALM_DOMAINS_MAX)
        return fail(x, "%s: more than %d realms", o->name, AG_REALM_DOMAINS_MAX);
    struct ag_realm_domain *e = &c->realm_domains[c->n_realm_domains++];
    snprintf(e->realm, sizeof e->realm, "%s", argv[0]);
    snprintf(e->domain, sizeof e->domain, "%s", argv[1]);
    return 0;
}

/* "parent NAME HOST:PORT [auth=...]" adds one parent; "parent none" clears. */
static int add_parent(struct pctx *x, const struct opt *o, char **argv, size_t argc)
{
    struct ag_config *c = x->c;
    char why[300];
    if (argc == 1 && strcmp(argv[0], "none") == 0)
        return 0;
    if (c->n_parents == AG_PARENTS_MAX)
        return fail(x, "%s: more than %d parents", o->name, AG_PARENTS_MAX);
    struct ag_parent *p = &c->parents[c->n_parents];
    int rc = ag_cfg_parent_parse(argv, argc, x->basedir, p, why, sizeof why);
    c->n_parents++; /* counted even on failure: its strings are freed with c */
    if (rc)
        return fail(x, "%s: %s", o->name, why);
    for (size_t i = 0; i + 1 < c->n_parents; i++)
        if (strcmp(c->parents[i].name, p->name) == 0)
            return fail(x, "%s: '%s' given twice", o->name, p->name);
    return 0;
}

static bool is_list(const struct opt *o)
{
    return o->type == T_LISTEN || o->type == T_PORTS || o->type == T_SCHEMES ||
           o->type == T_USERS || o->type == T_GROUPS || o->type == T_REALMS || o->type == T_CIDRS ||
           o->type == T_PARENT;
}

/* Applies one option's values (already tokenized) to the config. */
static int apply(struct pctx *x, const struct opt *o, char **argv, size_t argc)
{
    if (argc == 0)
        return fail(x, "%s: missing value", o->name);
    if (argc > 1 && !is_list(o))
        return fail(x, "%s: too many values (quote a value that contains blanks)", o->name);
    switch (o->type) {
    case T_DURATION:
    case T_SIZE:
    case T_UINT:
        if ((o->flags & F_AUTO) && strcmp(argv[0], "auto") == 0) {
            *(uint32_t *)field(o, x->c) = 0;
            return 0;
        }
        return set_number(x, o, argv[0]);
    case T_BOOL:
        return set_bool(x, o, argv[0]);
    case T_STRING:
    case T_PATH:
        return set_text(x, o, argv[0]);
    case T_ENUM:
    case T_LOGLEVEL:
        return set_choice(x, o, argv[0]);
    case T_LISTEN:
        return add_listen(x, o, argv, argc);
    case T_PORTS:
        return set_ports(x, o, argv, argc);
    case T_SCHEMES:
        return set_schemes(x, o, argv, argc);
    case T_MODE:
        return set_mode(x, o, argv[0]);
    case T_USERS:
    case T_GROUPS:
        return set_ids(x, o, argv, argc);
    case T_REALMS:
        return add_realm_domain(x, o, argv, argc);
    case T_CIDRS:
        return set_cidrs(x, o, argv, argc);
    case T_PARENT:
        return add_parent(x, o, argv, argc);
    }
    return fail(x, "%s: internal error", o->name);
}

/* Splits a line into values in out (NUL-separated), pointers in argv.
 * Blanks separate values; '#' outside quotes ends the line; "..." may hold
 * blanks and '#', with \" and \\ as the only escapes. Each value takes at
 * most its source bytes plus a NUL, so out needs len + 1 bytes. */
static int tokenize(struct pctx *x, const char *line, size_t len, char *out, char **argv,
                    size_t *argc)
{
    size_t i = 0, n = 0;
    char *w = out;
    while (i < len) {
        char ch = line[i];
        if (ch == ' ' || ch == '\t') {
            i++;
            continue;
        }
        if (ch == '#')
            break;
        if (n == AG_CONFIG_MAX_VALUES)
            return fail(x, "more than %d values on one line", AG_CONFIG_MAX_VALUES);
        argv[n++] = w;
        if (ch == '"') {
            for (i++;;) {
                if (i >= len)
                    return fail(x, "unterminated quoted value");
                ch = line[i++];
                if (ch == '"')
                    break;
                if (ch == '\\') {
                    if (i >= len)
                        return fail(x, "unterminated quoted value");
                    ch = line[i++];
                    if (ch != '"' && ch != '\\')
                        return fail(x, "invalid escape '\\%c' (only \\\" and \\\\)",
                                    (ch > 0x20 && ch < 0x7f) ? ch : '?');
                }
                if ((unsigned char)ch < 0x20 || ch == 0x7f)
                    return fail(x, "control character in value");
                *w++ = ch;
            }
            if (i < len && line[i] != ' ' && line[i] != '\t' && line[i] != '#')
                return fail(x, "text after a closing quote");
        } else {
            for (; i < len && line[i] != ' ' && line[i] != '\t' && line[i] != '#'; i++) {
                ch = line[i];
                if (ch == '"')
                    return fail(x, "unexpected '\"' inside a value");
                if ((unsigned char)ch < 0x20 || ch == 0x7f)
                    return fail(x, "control character in value");
                *w++ = ch;
            }
        }
        *w++ = '\0';
    }
    *argc = n;
    return 0;
}

static const struct opt *find_opt(const char *name)
{
    for (size_t i = 0; i < N_OPTS; i++)
        if (strcmp(opts[i].name, name) == 0)
            return &opts[i];
    return NULL;
}

static int parse_line(struct pctx *x, const char *line, size_t len)
{
    char out[AG_CONFIG_LINE_MAX + 1];
    char *argv[AG_CONFIG_MAX_VALUES];
    size_t argc = 0;
    char sv[80];

    if (len > 0 && line[len - 1] == '\r') /* CRLF files */
        len--;
    if (tokenize(x, line, len, out, argv, &argc) != 0)
        return AG_EINVAL;
    if (argc == 0)
        return 0;
    const struct opt *o = find_opt(argv[0]);
    if (!o)
        return fail(x, "unknown option '%s'", shown(argv[0], sv, sizeof sv));
    size_t idx = (size_t)(o - opts);
    if (x->seen[idx] && !(o->flags & F_REPEAT))
        return fail(x, "'%s' given twice", o->name);
    x->seen[idx] = true;
    return apply(x, o, argv + 1, argc - 1);
}

/* Fills every option the file did not set. Defaults are in range by
 * construction (a unit test parses the all-defaults config). */
static int apply_defaults(struct pctx *x)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        if (x->seen[i])
            continue;
        void *f = field(o, x->c);
        switch (o->type) {
        case T_DURATION:
        case T_SIZE:
        case T_UINT:
        case T_MODE:
            *(uint32_t *)f = (uint32_t)o->dnum;
            break;
        case T_BOOL:
            *(bool *)f = o->dnum != 0;
            break;
        case T_ENUM:
        case T_LOGLEVEL:
            *(int *)f = (int)o->dnum;
            break;
        default: {
            /* Text-valued defaults go through the same code as the file. */
            char buf[AG_CONFIG_LINE_MAX + 1], out[AG_CONFIG_LINE_MAX + 1];
            char *argv[AG_CONFIG_MAX_VALUES];
            size_t argc;
            snprintf(buf, sizeof buf, "%s", o->dstr);
            x->line = 0;
            if (tokenize(x, buf, strlen(buf), out, argv, &argc) != 0 ||
                apply(x, o, argv, argc) != 0)
                return AG_EINVAL;
            break;
        }
        }
    }
    return 0;
}

/* Rules that tie options together, once every value is known. */
static int check_together(struct pctx *x)
{
    const struct ag_config *c = x->c;
    x->line = 0;
    for (size_t i = 0; i < c->n_listen; i++)
        if (c->listen[i].proxy_protocol && c->proxy_protocol_from.n == 0)
            return fail(x,
                        "listen %s proxy_protocol needs proxy_protocol_from (the addresses of "
                        "the balancers allowed to send the header)",
                        c->listen[i].text);
    for (size_t i = 0; i < c->n_listen; i++)
        if (c->listen[i].tls && (!c->tls_certificate || !c->tls_key))
            return fail(x, "listen %s tls needs tls_certificate and tls_key", c->listen[i].text);
    return 0;
}

struct ag_config *ag_config_parse(const char *text, size_t len, const char *name,
                                  const char *basedir, char *err, size_t errlen)
{
    struct pctx *x = calloc(1, sizeof *x);
    struct ag_config *c = calloc(1, sizeof *c);
    if (err && errlen)
        err[0] = '\0';
    if (!x || !c) {
        if (err && errlen)
            snprintf(err, errlen, "%s: out of memory", name ? name : "config");
        goto fail;
    }
    c->refs = 1;
    c->loaded = (int64_t)time(NULL);
    x->c = c;
    x->name = name ? name : "config";
    x->basedir = basedir;
    x->err = err;
    x->errlen = errlen;
    if (!(c->path = strdup(x->name))) {
        fail(x, "out of memory");
        goto fail;
    }
    if (len > AG_CONFIG_MAX_BYTES) {
        fail(x, "larger than %d bytes", AG_CONFIG_MAX_BYTES);
        goto fail;
    }
    for (size_t off = 0; off < len;) {
        const char *p = text + off;
        const char *nl = memchr(p, '\n', len - off);
        size_t n = nl ? (size_t)(nl - p) : len - off;
        x->line++;
        if (n > AG_CONFIG_LINE_MAX) {
            fail(x, "line longer than %d bytes", AG_CONFIG_LINE_MAX);
            goto fail;
        }
        if (memchr(p, '\0', n)) {
            fail(x, "NUL byte in line");
            goto fail;
        }
        if (parse_line(x, p, n) != 0)
            goto fail;
        off += n + (nl ? 1 : 0);
    }
    if (apply_defaults(x) != 0)
        goto fail;
    if (check_together(x) != 0)
        goto fail;
    char why[600];
    if (ag_cfg_files_load(c, why, sizeof why) != 0) {
        fail(x, "%s", why);
        goto fail;
    }
    /* The templates are read with the file that names them: a bad one
     * fails this load (a reload keeps the old pages), never a page. */
    if (c->error_templates && ag_errpages_load(c->error_templates, &c->errpages, why, sizeof why)) {
        fail(x, "%s", why); /* "file: ..." like every other refusal */
        goto fail;
    }
    free(x);
    return c;
fail:
    free(x);
    ag_config_unref(c);
    return NULL;
}

struct ag_config *ag_config_default(void)
{
    return ag_config_parse("", 0, "(defaults)", NULL, NULL, 0);
}

struct ag_config *ag_config_load(const char *path, char *err, size_t errlen)
{
    char scratch[8];
    struct ag_config *c = NULL;
    char *text = NULL, *abs = NULL, *dir = NULL;
    size_t len = 0;

    if (!err || errlen == 0) { /* messages still need somewhere to go */
        err = scratch;
        errlen = sizeof scratch;
    }
    err[0] = '\0';
    if (!path) {
        snprintf(err, errlen, "config: no file given");
        return NULL;
    }
    if (!(text = ag_file_read(path, AG_CONFIG_MAX_BYTES, &len, err, errlen)))
        return NULL;
    if (!(abs = realpath(path, NULL)) || !(dir = strdup(abs))) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0'; /* a file in "/" */
    else if (slash)
        *slash = '\0';
    if (!(c = ag_config_parse(text, len, path, dir, err, errlen)))
        goto out;
    free(c->path);
    c->path = abs;
    abs = NULL;
out:
    free(text);
    free(abs);
    free(dir);
    return c;
}

struct ag_config *ag_config_ref(struct ag_config *c)
{
    /* Atomic: connections of every event loop (workers N) hold references. */
    if (c)
        __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
    return c;
}

void ag_config_unref(struct ag_config *c)
{
    if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    for (size_t i = 0; i < N_OPTS; i++)
        if (opts[i].type == T_STRING || opts[i].type == T_PATH)
            free(*(char **)field(&opts[i], c));
    ag_cfg_files_free(c);
    ag_errpages_free(c->errpages);
    free(c->path);
    free(c);
}

void ag_config_proxy_host(const struct ag_config *c, char *out, size_t cap)
{
    if (c->proxy_host)
        snprintf(out, cap, "%s", c->proxy_host);
    else if (gethostname(out, cap) != 0)
        snprintf(out, cap, "localhost");
    out[cap - 1] = '\0';
}

void ag_config_acceptor_name(const struct ag_config *c, char *out, size_t cap)
{
    if (c->negotiate_acceptor && strcmp(c->negotiate_acceptor, "any") == 0) {
        out[0] = '\0';
        return;
    }
    if (c->negotiate_acceptor) {
        snprintf(out, cap, "%s", c->negotiate_acceptor);
        return;
    }
    char host[256];
    ag_config_proxy_host(c, host, sizeof host);
    snprintf(out, cap, "HTTP@%s", host);
}

const struct ag_parent *ag_config_parent(const struct ag_config *c, const char *name)
{
    for (size_t i = 0; i < c->n_parents; i++)
        if (strcmp(c->parents[i].name, name) == 0)
            return &c->parents[i];
    return NULL;
}

const char *ag_config_realm_domain(const struct ag_config *c, const char *realm)
{
    for (size_t i = 0; i < c->n_realm_domains; i++)
        if (ag_strieq(c->realm_domains[i].realm, strlen(c->realm_domains[i].realm), realm))
            return c->realm_domains[i].domain;
    return NULL;
}

bool ag_config_scheme_enabled(const struct ag_config *c, enum ag_scheme s)
{
    for (size_t i = 0; i < c->n_schemes; i++)
        if (c->schemes[i] == s)
            return true;
    return false;
}

bool ag_config_uses_backend(const struct ag_config *c, enum ag_backend b)
{
    return (ag_config_scheme_enabled(c, AG_SCHEME_BASIC) && c->basic_backend == b) ||
           (ag_config_scheme_enabled(c, AG_SCHEME_NTLM) && c->ntlm_backend == b);
}

bool ag_config_port_allowed(const struct ag_config *c, uint16_t port)
{
    for (size_t i = 0; i < c->n_connect_ports; i++)
        if (c->connect_ports[i] == port)
            return true;
    return false;
}

const char *ag_scheme_name(enum ag_scheme s)
{
    switch (s) {
    case AG_SCHEME_NEGOTIATE:
        return "Negotiate";
    case AG_SCHEME_NTLM:
        return "NTLM";
    case AG_SCHEME_BASIC:
        return "Basic";
    default:
        return "-";
    }
}

/* A line of the dump: values are bounded by the line cap (plus quoting). */
#define DUMP_LINE_MAX (2 * AG_CONFIG_LINE_MAX + 64)

void ag_config_dump(const struct ag_config *c, FILE *f)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        /* one line per listener, per realm_domain entry */
        size_t items = o->type == T_LISTEN                         ? c->n_listen
                       : o->type == T_REALMS && c->n_realm_domains ? c->n_realm_domains
                       : o->type == T_PARENT && c->n_parents       ? c->n_parents
                                                                   : 1;
        for (size_t k = 0; k < items; k++) {
            struct ag_buf b;
            ag_buf_init(&b, DUMP_LINE_MAX);
            if (fmt_value(o, c, k, &b) == 0)
                fprintf(f, "%s %.*s\n", o->name, (int)b.len, b.data ? b.data : "");
            ag_buf_free(&b);
        }
    }
}

/* ---- the man page's option reference ------------------------------------- */

/* s as roff text: backslashes and minus signs escaped, a leading control
 * character neutralized, so a doc string can never become a request. */
static void roff(FILE *f, const char *s)
{
    if (*s == '.' || *s == '\'')
        fputs("\\&", f);
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", f);
        else if (*s == '-')
            fputs("\\-", f);
        else
            fputc(*s, f);
    }
}

static const char *type_word(const struct opt *o)
{
    static const char *const words[] = {
        [T_DURATION] = "duration (ms, s, m, h; a bare number is seconds)",
        [T_SIZE] = "size in bytes (k, m suffixes)",
        [T_UINT] = "number",
        [T_BOOL] = "on or off",
        [T_STRING] = "string",
        [T_PATH] = "path (relative to the file's directory)",
        [T_ENUM] = "one word",
        [T_LOGLEVEL] = "one word",
        [T_LISTEN] = "ADDRESS:PORT [proxy_protocol]",
        [T_PORTS] = "port numbers",
        [T_SCHEMES] = "scheme names, in offer order",
        [T_MODE] = "octal file mode",
        [T_USERS] = "user names or uids",
        [T_GROUPS] = "group names or gids",
        [T_REALMS] = "REALM DOMAIN",
        [T_CIDRS] = "addresses or CIDR networks",
        [T_PARENT] = "NAME HOST:PORT [auth=...] [tls [ca=FILE]]",
    };
    /* Every type has its word (the man page build would read past it). */
    _Static_assert(sizeof words / sizeof words[0] == T_PARENT + 1, "a type without its word");
    return words[o->type];
}

void ag_config_write_man(FILE *f)
{
    struct ag_config *d = ag_config_default();
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        char lo[32], hi[32];
        fputs(".TP\n.B ", f);
        roff(f, o->name);
        fputc('\n', f);
        /* the doc is a phrase; the page wants a sentence */
        char first[2] = {(char)toupper((unsigned char)o->doc[0]), '\0'};
        roff(f, first);
        roff(f, o->doc + 1);
        fputs(".\n.br\nType: ", f);
        roff(f, type_word(o));
        fputs(". Default: \\fB", f);
        struct ag_buf b;
        ag_buf_init(&b, DUMP_LINE_MAX * AG_MAX_LISTENERS);
        if (d && fmt_value(o, d, SIZE_MAX, &b) == 0 && b.len) {
            char *v = strndup(b.data, b.len);
            roff(f, v ? v : "?");
            free(v);
        } else {
            fputs("none", f);
        }
        ag_buf_free(&b);
        fputs("\\fR.", f);
        switch (o->type) {
        case T_DURATION:
        case T_SIZE:
        case T_UINT:
        case T_PORTS:
            fmt_bound(o, o->min, lo, sizeof lo);
            fmt_bound(o, o->max, hi, sizeof hi);
            fprintf(f, " Range: %s to %s%s.", lo, hi, (o->flags & F_ZERO) ? ", or 0 (off)" : "");
            break;
        case T_MODE:
            fprintf(f, " Range: 0000 to 0%03o.", (unsigned)o->max);
            break;
        case T_ENUM:
        case T_LOGLEVEL:
            fputs(" Values:", f);
            if (o->type == T_ENUM)
                for (const struct choice *ch = o->choices; ch->name; ch++)
                    fprintf(f, " %s%s", ch->name, ch[1].name ? "," : "");
            else
                for (int l = AG_LOG_ERROR; l <= AG_LOG_DEBUG; l++)
                    fprintf(f, " %s%s", ag_log_level_name((enum ag_log_level)l),
                            l < AG_LOG_DEBUG ? "," : "");
            fputc('.', f);
            break;
        default:
            break;
        }
        if (o->flags & F_REPEAT)
            fputs(" Repeatable.", f);
        fputs((o->flags & F_RELOAD) ? " A reload (SIGHUP) applies it.\n"
                                    : " Read at start\\-up only: a change needs a restart.\n",
              f);
    }
    ag_config_unref(d);
}

const char *ag_config_fixed_changed(const struct ag_config *a, const struct ag_config *b)
{
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        if (o->flags & F_RELOAD)
            continue;
        struct ag_buf x, y;
        ag_buf_init(&x, DUMP_LINE_MAX * AG_MAX_LISTENERS);
        ag_buf_init(&y, DUMP_LINE_MAX * AG_MAX_LISTENERS);
        int rx = fmt_value(o, a, SIZE_MAX, &x), ry = fmt_value(o, b, SIZE_MAX, &y);
        bool differ =
            rx != 0 || ry != 0 || x.len != y.len || (x.len && memcmp(x.data, y.data, x.len) != 0);
        ag_buf_free(&x);
        ag_buf_free(&y);
        if (differ)
            return o->name;
    }
    return NULL;
}
