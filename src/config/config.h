/* config.h - authgate's configuration: an immutable, refcounted snapshot.
 *
 * Glossary: option = one "name value..." line of the file; table = the
 * registry in config.c (name, type, bounds, default, reloadable) from which
 * parsing, defaults and the sample documentation all follow.
 *
 * File syntax: one option per line, "#" starts a comment (outside quotes),
 * values separated by blanks, a value may be "double quoted" (with \" and \\
 * escapes). Durations: integer + ms|s|m|h (bare integer = seconds). Sizes:
 * integer + optional k|m (KiB, MiB). Booleans: on|off. Relative paths are
 * resolved against the directory of the config file. An unknown option, a
 * value out of bounds or a repeated single-valued option is an error reported
 * as "file:line: message".
 *
 * Loop thread only. A reload parses into a fresh struct and swaps it in only
 * when valid; holders of the old one keep it alive with ag_config_ref().
 */
#ifndef AG_CONFIG_H
#define AG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "authgate/limits.h"
#include "util/addr.h"
#include "util/errpage.h"

enum ag_scheme { AG_SCHEME_NONE = 0, AG_SCHEME_NEGOTIATE, AG_SCHEME_NTLM, AG_SCHEME_BASIC };
enum ag_backend { AG_BACKEND_NONE = 0, AG_BACKEND_LOCAL, AG_BACKEND_WINBIND };
enum ag_access_format { AG_ACCESS_SQUID = 0, AG_ACCESS_JSON };
/* How path= rules compare letter case (rules_path_case). */
enum ag_path_case { AG_PATH_CASE_INSENSITIVE = 0, AG_PATH_CASE_SENSITIVE };

struct ag_listen {
    struct sockaddr_storage addr; /* resolved numeric address (no DNS) */
    char text[64];                /* as written: "127.0.0.1:3128", "[::1]:3128" */
    bool proxy_protocol;          /* "listen ADDR:PORT proxy_protocol": every connection
                                     starts with a PROXY header from proxy_protocol_from */
    bool tls;                     /* "listen ADDR:PORT tls": clients speak TLS to the proxy
                                     (after the PROXY header when both are on) */
};

/* "channel_binding off|if-present|required" (TLS listeners only). */
enum ag_channel_binding { AG_CB_OFF = 0, AG_CB_IF_PRESENT, AG_CB_REQUIRED };

/* Networks, e.g. the load balancers allowed to send a PROXY header. */
struct ag_cidrlist {
    struct ag_cidr v[AG_PROXY_FROM_MAX];
    size_t n;
};

/* A list of numeric user or group ids; names are resolved when the file is
 * parsed (so the loop never calls NSS, which may be winbind, per connection). */
struct ag_idlist {
    uint32_t id[AG_CTL_ALLOW_MAX];
    size_t n;
};

/* "realm_domain REALM DOMAIN": Kerberos users of REALM have their groups in
 * the winbind domain DOMAIN (NetBIOS name). */
struct ag_realm_domain {
    char realm[AG_REALM_NAME_MAX + 1];
    char domain[16];
};

/* How the gateway proves itself to a parent proxy (its own credentials,
 * never a client's). */
enum ag_parent_auth { AG_PARENT_AUTH_NONE = 0, AG_PARENT_AUTH_BASIC, AG_PARENT_AUTH_NEGOTIATE };

/* "parent NAME HOST:PORT [auth=basic:FILE | auth=negotiate:PRINCIPAL] [tls
 * [ca=FILE]]": an
 * upstream proxy that rules may route requests through (route=NAME). */
struct ag_parent {
    char name[64];              /* [A-Za-z0-9_.-], not "direct" */
    char host[AG_HOST_MAX + 1]; /* name or numeric address, no brackets */
    uint16_t port;
    enum ag_parent_auth auth;
    char *cred_file;   /* auth=basic: the user:password file (owned) */
    char *basic_field; /* auth=basic: "Proxy-Authorization: Basic ...\r\n" (owned, wiped on
                          free): read once per (re)load from cred_file */
    char *principal;   /* auth=negotiate: the parent's service (HTTP@host or
                          HTTP/host@REALM), owned */
    bool tls;          /* "tls": the gateway speaks TLS to the parent (an HTTPS proxy) */
    char *tls_ca;      /* "ca=FILE": the CAs that verify this parent (owned), NULL: parent_tls_ca,
                          else the system store */
};

struct ag_config {
    int refs;
    char *path;     /* absolute path of the file, owned */
    int64_t loaded; /* wall-clock seconds when parsed */

    /* listeners: "listen ADDR:PORT", repeatable; default 127.0.0.1:3128.
     * Not reloadable (a change is logged and ignored until restart). */
    struct ag_listen listen[AG_MAX_LISTENERS];
    size_t n_listen;
    /* "proxy_protocol_from CIDR...", default none: the balancers whose
     * connections to a proxy_protocol listener are taken; required when a
     * listener has proxy_protocol. Reloadable. */
    struct ag_cidrlist proxy_protocol_from;
    /* "tls_certificate PATH" (PEM, leaf first, then its chain) and
     * "tls_key PATH" (PEM): required when a listener has tls; re-read on
     * reload (connections open keep the certificate they started with). */
    char *tls_certificate;
    char *tls_key;
    bool basic_require_tls; /* "basic_require_tls on|off": Basic offered and taken on TLS only */
    enum ag_channel_binding channel_binding; /* default if-present */

    /* logs */
    char *error_log;  /* "error_log PATH|-": "-" = stderr (default) */
    char *access_log; /* "access_log PATH|-|none": "-" = stdout (default), NULL = none */
    enum ag_access_format access_format; /* "access_log_format squid|json", default squid */
    int log_level; /* "log_level error|warn|info|debug", default info (enum ag_log_level) */
    uint32_t
        log_buffer; /* "log_buffer SIZE": bytes of log lines per log before a write, 0 = none */

    /* forwarding */
    char *via_pseudonym;  /* "via_pseudonym NAME", default "authgate"; token chars only */
    bool x_forwarded_for; /* "x_forwarded_for on|off", default off */
    uint16_t connect_ports[AG_MAX_CONNECT_PORTS]; /* "connect_ports 443 8443 ..." default 443 */
    size_t n_connect_ports;

    /* limits (defaults from limits.h; bounds in the table) */
    uint32_t header_max;       /* "header_max SIZE" */
    uint32_t max_connections;  /* "max_connections N" */
    uint32_t drain_max;        /* "drain_max SIZE" */
    uint32_t threadpool_size;  /* "threadpool_size N", not reloadable */
    uint32_t workers;          /* "workers N|auto", 0 = auto (one per CPU); not reloadable */
    uint32_t winbind_threads;  /* "winbind_threads N", not reloadable */
    uint32_t kerberos_threads; /* "kerberos_threads N", 0 = one per CPU; not reloadable */
    uint32_t local_threads;    /* "local_threads N", not reloadable */

    /* deadlines, milliseconds */
    uint32_t head_timeout_ms;           /* "head_timeout DURATION" */
    uint32_t idle_timeout_ms;           /* "idle_timeout DURATION" */
    uint32_t dns_timeout_ms;            /* "dns_timeout DURATION" */
    uint32_t connect_timeout_ms;        /* "connect_timeout DURATION" */
    uint32_t upstream_idle_timeout_ms;  /* "upstream_idle_timeout DURATION" */
    uint32_t upstream_keepalive_ms;     /* "upstream_keepalive_timeout DURATION" */
    uint32_t upstream_pool;             /* "upstream_keepalive N": per loop, 0 = no shared pool */
    uint32_t upstream_pool_per_host;    /* "upstream_keepalive_per_host N" */
    uint32_t tunnel_idle_timeout_ms;    /* "tunnel_idle_timeout DURATION" */
    uint32_t shutdown_timeout_ms;       /* "shutdown_timeout DURATION" */
    uint32_t drain_timeout_ms;          /* "drain_timeout DURATION" */
    uint32_t proxy_protocol_timeout_ms; /* "proxy_protocol_timeout DURATION" */
    uint32_t tls_handshake_timeout_ms;  /* "tls_handshake_timeout DURATION" */
    uint32_t drain_delay_ms;            /* "drain_delay DURATION", 0 = off: listeners stay open this
                                           long after SIGTERM, /healthz answering 503 */

    /* authentication */
    enum ag_scheme schemes[3]; /* "auth_schemes negotiate ntlm basic" (order = offer order) or
                                  "auth_schemes none" (open proxy); default all three */
    size_t n_schemes;
    char *basic_realm;                /* "basic_realm STRING", default "authgate" */
    enum ag_backend basic_backend;    /* "basic_backend local|winbind", default local */
    enum ag_backend ntlm_backend;     /* "ntlm_backend local|winbind", default local */
    char *user_file;                  /* "user_file PATH", default none */
    char *identity_header;            /* "identity_header NAME", default none (off) */
    uint32_t handshake_timeout_ms;    /* "handshake_timeout DURATION" */
    uint32_t identity_max_age_ms;     /* "identity_max_age DURATION", 0 = unlimited (default) */
    uint32_t max_handshakes;          /* "max_handshakes N" */
    uint32_t max_handshakes_per_addr; /* "max_handshakes_per_addr N" */
    uint32_t max_jobs;                /* "max_jobs N" */
    uint32_t basic_cache_ttl_ms;      /* "basic_cache_ttl DURATION", 0 = no cache */
    uint32_t fail_max_per_user_addr;  /* "fail_max_per_user_addr N" */
    uint32_t fail_max_per_user;       /* "fail_max_per_user N": verified wrong passwords */
    uint32_t fail_max_per_addr;       /* "fail_max_per_addr N" */
    uint32_t fail_window_ms;          /* "fail_window DURATION" */

    /* the proxy's own name and NTLM */
    char *proxy_host;      /* "proxy_host NAME": name clients use for the proxy; default none =
                              the machine's host name at start-up */
    char *ntlm_domain;     /* "ntlm_domain NAME": NetBIOS domain sent in the CHALLENGE (local
                              backend; winbind reports its own), default "AUTHGATE" */
    char *ntlm_dns_domain; /* "ntlm_dns_domain NAME", default none */
    bool ntlm_require_mic; /* "ntlm_require_mic on|off", default off (curl never sends one) */
    bool ntlm_allow_v1;    /* "ntlm_allow_v1 on|off", default off: accept NTLMv1 and
                              NTLM2-session responses (legacy clients; winbind backend only) */
    bool ntlm_allow_machine_accounts; /* "ntlm_allow_machine_accounts on|off", default off:
                                         admit workstation/server trust accounts (HOST$)
                                         through winbind */

    /* Negotiate (Kerberos) */
    char *keytab;              /* "keytab PATH", default none = KRB5_KTNAME or the system default */
    char *negotiate_acceptor;  /* "negotiate_acceptor NAME|any", default none = HTTP@<proxy_host> */
    int negotiate_name_format; /* "negotiate_name_format keep|strip|backslash" (enum
                                  ag_gss_name_format), default keep */
    char *negotiate_realms;    /* "negotiate_realms R1,R2", default none = any realm */
    char *rcache_dir;          /* "rcache_dir PATH", default none = MIT's default (/var/tmp) */
    /* "realm_domain REALM DOMAIN", repeatable, default none: which winbind
     * domain answers for a realm's users (group= rules). A realm that is
     * neither listed nor winbind's own DNS domain has no groups. */
    struct ag_realm_domain realm_domains[AG_REALM_DOMAINS_MAX];
    size_t n_realm_domains;

    /* access rules */
    char *rules_file;    /* "rules_file PATH", default none = every authenticated user
                            may go anywhere */
    int rules_path_case; /* "rules_path_case insensitive|sensitive" (enum ag_path_case),
                            default insensitive: IIS and many apps ignore case, so a
                            deny for /admin/ must hold for /ADMIN/ */

    /* parents and routes */
    struct ag_parent parents[AG_PARENTS_MAX]; /* "parent ...", repeatable, reloadable */
    size_t n_parents;
    bool parent_identity_header; /* "parent_identity_header on|off", default off: the
                                    identity header goes to parents too */
    char *parent_tls_ca;         /* "parent_tls_ca FILE": CAs verifying tls parents without
                                    ca=, NULL: the system store */
    uint32_t parent_backoff_ms;  /* "parent_backoff DURATION": a failed parent is skipped */

    /* "pac_file PATH", default none: served as /proxy.pac and /wpad.dat. The
     * content is read when the configuration is (start-up, -t, reload) and
     * lives as long as this snapshot. */
    char *pac_file;
    char *pac_body; /* owned, pac_len bytes */
    size_t pac_len;
    char pac_etag[40];          /* "\"<len>-<fnv64>\"" of the content */
    char pac_last_modified[40]; /* the file's mtime, IMF-fixdate */
    int64_t pac_mtime;          /* the same, seconds since the epoch */

    /* what users see */
    char *error_templates;        /* "error_templates DIR", default none = the built-in page */
    char *error_contact;          /* "error_contact TEXT", default none */
    struct ag_errpages *errpages; /* the templates of error_templates (owned), NULL = built-in */

    /* the status socket (authgatectl); the first three need a restart */
    char *status_socket;         /* "status_socket PATH", default none = off */
    uint32_t status_socket_mode; /* "status_socket_mode 0660" (octal), default 0660 */
    char *status_socket_group;   /* "status_socket_group NAME", default none = the daemon's */
    struct ag_idlist status_allow_users;  /* "status_allow_users root 1000 ...", default 0 */
    struct ag_idlist status_allow_groups; /* "status_allow_groups adm ...", default none */

    /* the Prometheus listener (src/ctl/metrics_http.c) */
    char *metrics_listen;             /* "metrics_listen ADDR:PORT", default none = off; restart */
    struct ag_cidrlist metrics_allow; /* "metrics_allow CIDR...", default loopback: the scrapers
                                         served; others get 403 */
};

/* Parses the file at path into a new config (refs = 1) or returns NULL with a
 * "file:line: message" (or "file: message") in err. */
struct ag_config *ag_config_load(const char *path, char *err, size_t errlen);
/* Same, from a string (for tests); name is used in error messages. */
struct ag_config *ag_config_parse(const char *text, size_t len, const char *name,
                                  const char *basedir, char *err, size_t errlen);
/* A config with every default (for tests). */
struct ag_config *ag_config_default(void);

struct ag_config *ag_config_ref(struct ag_config *c);
/* Drops a reference; frees at zero. Accepts NULL. */
void ag_config_unref(struct ag_config *c);

/* The parent named name, or NULL. */
const struct ag_parent *ag_config_parent(const struct ag_config *c, const char *name);

/* Parsing helpers, exposed for unit tests. Each returns 0 or AG_EINVAL. */
int ag_config_parse_duration_ms(const char *s, uint32_t *out);
int ag_config_parse_size(const char *s, uint32_t *out);
/* "1.2.3.4:80", "[::1]:80", "*:80" (= 0.0.0.0), "[::]:80". */
int ag_config_parse_listen(const char *s, struct ag_listen *out);

/* The name clients use for the proxy: proxy_host, or (none) the machine's host
 * name, or "localhost" when even that fails. Always NUL-terminated. */
void ag_config_proxy_host(const struct ag_config *c, char *out, size_t cap);
/* The Kerberos acceptor's name: negotiate_acceptor, "" for "any" (every
 * key of the keytab), or HTTP@<ag_config_proxy_host>. The daemon and the
 * doctor build it here, so the doctor checks the name the daemon uses. */
void ag_config_acceptor_name(const struct ag_config *c, char *out, size_t cap);

/* The winbind domain configured for a Kerberos realm (case-insensitive),
 * or NULL when realm_domain does not name it. */
const char *ag_config_realm_domain(const struct ag_config *c, const char *realm);

bool ag_config_scheme_enabled(const struct ag_config *c, enum ag_scheme s);
/* An enabled scheme (Basic or NTLM) verifies passwords through backend b.
 * With AG_BACKEND_WINBIND, group rules and NTLM names come from winbind;
 * with AG_BACKEND_LOCAL, the user file is needed. */
bool ag_config_uses_backend(const struct ag_config *c, enum ag_backend b);
bool ag_config_port_allowed(const struct ag_config *c, uint16_t port);
const char *ag_scheme_name(enum ag_scheme s); /* "Negotiate", "NTLM", "Basic", "-" */

/* Writes the effective configuration (every option, "name value" lines) to f:
 * "authgate -t -c FILE -v" prints it, so an operator sees what defaults apply. */
void ag_config_dump(const struct ag_config *c, FILE *f);

/* Writes the option reference of authgate.conf(5) as man(7) source: one
 * tagged paragraph per row of the table (name, value type, default, range,
 * whether a reload applies it, the row's doc). The build generates the man
 * page from it, so the page cannot drift from the table. */
void ag_config_write_man(FILE *f);

/* The option table, for the sample-drift test and reload handling. i is an
 * index below ag_config_option_count(); out of range gives NULL / false. */
size_t ag_config_option_count(void);
const char *ag_config_option_name(size_t i);
bool ag_config_option_reloadable(size_t i);
/* The name of the first option that a reload cannot change (listen,
 * threadpool_size) whose value differs between a and b, or NULL: the reload
 * code logs it and keeps running with the old value until a restart. */
const char *ag_config_fixed_changed(const struct ag_config *a, const struct ag_config *b);

#endif
