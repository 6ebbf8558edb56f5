/* test_config.c - the option table, tokenizer, bounds, messages and the sample. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "authgate/err.h"
#include "authgate/limits.h"
#include "config/config.h"
#include "util/log.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers -------------------------------------------------------------- */

static struct ag_config *parse(const char *text, char *err, size_t errlen)
{
    return ag_config_parse(text, strlen(text), "proxy.conf", NULL, err, errlen);
}

/* The dump as one malloc'd string. */
static char *dump_str(const struct ag_config *c)
{
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    assert_non_null(f);
    ag_config_dump(c, f);
    fclose(f);
    return s;
}

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len == n && memcmp(p, line, n) == 0)
            return true;
        p = nl ? nl + 1 : NULL;
    }
    return false;
}

/* The value part of the first dump line for option name, into buf. */
static bool dump_value(const char *dump, const char *name, char *buf, size_t cap)
{
    size_t n = strlen(name);
    for (const char *p = dump; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > n && memcmp(p, name, n) == 0 && p[n] == ' ') {
            snprintf(buf, cap, "%.*s", (int)(len - n - 1), p + n + 1);
            return true;
        }
        p = nl ? nl + 1 : NULL;
    }
    return false;
}

/* parse(dump(c)) must dump identically: the dump is a valid, faithful config. */
static void assert_round_trip(const struct ag_config *c)
{
    char err[256];
    char *d1 = dump_str(c);
    struct ag_config *c2 = ag_config_parse(d1, strlen(d1), "dump", NULL, err, sizeof err);
    if (!c2)
        fail_msg("dump does not parse back: %s\n%s", err, d1);
    char *d2 = dump_str(c2);
    assert_string_equal(d1, d2);
    free(d1);
    free(d2);
    ag_config_unref(c2);
}

static uint32_t u32_at(const struct ag_config *c, size_t off)
{
    uint32_t v;
    memcpy(&v, (const char *)c + off, sizeof v);
    return v;
}

/* ---- defaults ------------------------------------------------------------- */

static void test_defaults_match_limits(void **state)
{
    (void)state;
    struct ag_config *c = ag_config_default();
    assert_non_null(c);
    assert_int_equal(c->refs, 1);

    assert_int_equal(c->n_listen, 1);
    assert_string_equal(c->listen[0].text, "127.0.0.1:3128");
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)&c->listen[0].addr;
    assert_int_equal(a4->sin_family, AF_INET);
    assert_int_equal(ntohs(a4->sin_port), 3128);
    assert_int_equal(ntohl(a4->sin_addr.s_addr), INADDR_LOOPBACK);

    assert_string_equal(c->error_log, "-");
    assert_string_equal(c->access_log, "-");
    assert_int_equal(c->access_format, AG_ACCESS_SQUID);
    assert_int_equal(c->log_level, AG_LOG_INFO);
    assert_string_equal(c->via_pseudonym, "authgate");
    assert_false(c->x_forwarded_for);
    assert_int_equal(c->n_connect_ports, 1);
    assert_int_equal(c->connect_ports[0], 443);

    assert_int_equal(c->header_max, AG_HEADER_MAX);
    assert_int_equal(c->max_connections, AG_MAX_CONNECTIONS);
    assert_int_equal(c->drain_max, AG_DRAIN_MAX);
    assert_int_equal(c->log_buffer, AG_LOG_BUFFER);
    assert_int_equal(c->threadpool_size, AG_THREADPOOL_SIZE);
    assert_int_equal(c->winbind_threads, AG_WINBIND_THREADS);
    assert_int_equal(c->kerberos_threads, AG_KERBEROS_THREADS);
    assert_int_equal(c->local_threads, AG_LOCAL_THREADS);

    assert_int_equal(c->head_timeout_ms, AG_HEAD_TIMEOUT_MS);
    assert_int_equal(c->idle_timeout_ms, AG_IDLE_TIMEOUT_MS);
    assert_int_equal(c->dns_timeout_ms, AG_DNS_TIMEOUT_MS);
    assert_int_equal(c->connect_timeout_ms, AG_CONNECT_TIMEOUT_MS);
    assert_int_equal(c->upstream_idle_timeout_ms, AG_UPSTREAM_IDLE_TIMEOUT_MS);
    assert_int_equal(c->upstream_keepalive_ms, AG_UPSTREAM_KEEPALIVE_MS);
    assert_int_equal(c->upstream_pool, AG_UPSTREAM_POOL);
    assert_int_equal(c->upstream_pool_per_host, AG_UPSTREAM_POOL_PER_HOST);
    assert_int_equal(c->tunnel_idle_timeout_ms, AG_TUNNEL_IDLE_TIMEOUT_MS);
    assert_int_equal(c->shutdown_timeout_ms, AG_SHUTDOWN_TIMEOUT_MS);
    assert_int_equal(c->drain_timeout_ms, AG_DRAIN_TIMEOUT_MS);

    assert_int_equal(c->n_schemes, 3);
    assert_int_equal(c->schemes[0], AG_SCHEME_NEGOTIATE);
    assert_int_equal(c->schemes[1], AG_SCHEME_NTLM);
    assert_int_equal(c->schemes[2], AG_SCHEME_BASIC);
    assert_string_equal(c->basic_realm, "authgate");
    assert_int_equal(c->basic_backend, AG_BACKEND_LOCAL);
    assert_int_equal(c->ntlm_backend, AG_BACKEND_LOCAL);
    assert_null(c->user_file);
    assert_null(c->identity_header);
    assert_int_equal(c->handshake_timeout_ms, AG_HANDSHAKE_TIMEOUT_MS);
    assert_int_equal(c->identity_max_age_ms, 0);
    assert_int_equal(c->max_handshakes, AG_MAX_HANDSHAKES);
    assert_int_equal(c->max_handshakes_per_addr, AG_MAX_HANDSHAKES_PER_ADDR);
    assert_int_equal(c->max_jobs, AG_MAX_JOBS);
    assert_int_equal(c->basic_cache_ttl_ms, AG_BASIC_CACHE_TTL_S * 1000);
    assert_int_equal(c->fail_max_per_user_addr, AG_FAIL_MAX_PER_USER_ADDR);
    assert_int_equal(c->fail_max_per_user, AG_FAIL_MAX_PER_USER);
    assert_int_equal(c->fail_max_per_addr, AG_FAIL_MAX_PER_ADDR);
    assert_int_equal(c->fail_window_ms, AG_FAIL_WINDOW_S * 1000);
    ag_config_unref(c);
}

/* An empty file, a file of comments and a file spelling out every default
 * all give the same configuration. */
static void test_all_defaults_config(void **state)
{
    (void)state;
    char err[256];
    struct ag_config *d = ag_config_default();
    char *dd = dump_str(d);

    struct ag_config *c = parse("# nothing here\n\n   \t\n", err, sizeof err);
    assert_non_null(c);
    char *cd = dump_str(c);
    assert_string_equal(dd, cd);
    free(cd);
    ag_config_unref(c);

    c = ag_config_parse(dd, strlen(dd), "all-defaults.conf", NULL, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    cd = dump_str(c);
    assert_string_equal(dd, cd);
    free(cd);
    ag_config_unref(c);
    free(dd);
    ag_config_unref(d);
}

/* The dump lists every option once, in table order ("listen" once per listener). */
static void test_dump_table_order(void **state)
{
    (void)state;
    char err[256];
    struct ag_config *c = parse("listen 127.0.0.1:1\nlisten [::1]:2\n", err, sizeof err);
    assert_non_null(c);
    char *d = dump_str(c);
    const char *p = d;
    size_t i = 0, lines = 0;
    while (*p) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        const char *sp = memchr(p, ' ', (size_t)(nl - p));
        assert_non_null(sp);
        if (!(i > 0 && strncmp(p, ag_config_option_name(i - 1), (size_t)(sp - p)) == 0 &&
              strlen(ag_config_option_name(i - 1)) == (size_t)(sp - p))) {
            assert_true(i < ag_config_option_count());
            const char *want = ag_config_option_name(i++);
            assert_int_equal(strlen(want), (size_t)(sp - p));
            assert_memory_equal(p, want, (size_t)(sp - p));
        }
        lines++;
        p = nl + 1;
    }
    assert_int_equal(i, ag_config_option_count());
    assert_int_equal(lines, ag_config_option_count() + 1);
    assert_true(has_line(d, "listen 127.0.0.1:1"));
    assert_true(has_line(d, "listen [::1]:2"));
    assert_null(ag_config_option_name(ag_config_option_count()));
    free(d);
    ag_config_unref(c);
}

/* ---- every option parses and round-trips ---------------------------------- */

/* Numeric options: the value lands in the right field. */
static const struct num_case {
    const char *line;
    size_t off;
    uint32_t want;
} num_cases[] = {
    {"threadpool_size 4", offsetof(struct ag_config, threadpool_size), 4},
    {"threadpool_size 128", offsetof(struct ag_config, threadpool_size), AG_THREADPOOL_MAX},
    {"winbind_threads 1", offsetof(struct ag_config, winbind_threads), 1},
    {"winbind_threads 64", offsetof(struct ag_config, winbind_threads), AG_WORKER_THREADS_MAX},
    {"kerberos_threads 0", offsetof(struct ag_config, kerberos_threads), 0},
    {"kerberos_threads 3", offsetof(struct ag_config, kerberos_threads), 3},
    {"local_threads 5", offsetof(struct ag_config, local_threads), 5},
    {"max_connections 1", offsetof(struct ag_config, max_connections), 1},
    {"max_connections 1000000", offsetof(struct ag_config, max_connections), 1000000},
    {"header_max 4096", offsetof(struct ag_config, header_max), 4096},
    {"header_max 256k", offsetof(struct ag_config, header_max), 256 * 1024},
    {"header_max 5000", offsetof(struct ag_config, header_max), 5000},
    {"drain_max 0", offsetof(struct ag_config, drain_max), 0},
    {"drain_max 1m", offsetof(struct ag_config, drain_max), 1024 * 1024},
    {"log_buffer 0", offsetof(struct ag_config, log_buffer), 0},
    {"log_buffer 64k", offsetof(struct ag_config, log_buffer), 64 * 1024},
    {"head_timeout 5s", offsetof(struct ag_config, head_timeout_ms), 5000},
    {"head_timeout 100ms", offsetof(struct ag_config, head_timeout_ms), 100},
    {"head_timeout 24h", offsetof(struct ag_config, head_timeout_ms), 86400000},
    {"idle_timeout 2m", offsetof(struct ag_config, idle_timeout_ms), 120000},
    {"dns_timeout 3", offsetof(struct ag_config, dns_timeout_ms), 3000},
    {"connect_timeout 1500ms", offsetof(struct ag_config, connect_timeout_ms), 1500},
    {"upstream_idle_timeout 1h", offsetof(struct ag_config, upstream_idle_timeout_ms), 3600000},
    {"upstream_keepalive_timeout 4s", offsetof(struct ag_config, upstream_keepalive_ms), 4000},
    {"upstream_keepalive 0", offsetof(struct ag_config, upstream_pool), 0},
    {"upstream_keepalive_per_host 3", offsetof(struct ag_config, upstream_pool_per_host), 3},
    {"tunnel_idle_timeout 90m", offsetof(struct ag_config, tunnel_idle_timeout_ms), 5400000},
    {"shutdown_timeout 61s", offsetof(struct ag_config, shutdown_timeout_ms), 61000},
    {"drain_timeout 2s", offsetof(struct ag_config, drain_timeout_ms), 2000},
    {"handshake_timeout 20s", offsetof(struct ag_config, handshake_timeout_ms), 20000},
    {"identity_max_age 8h", offsetof(struct ag_config, identity_max_age_ms), 8 * 3600000},
    {"identity_max_age 0", offsetof(struct ag_config, identity_max_age_ms), 0},
    {"max_handshakes 10", offsetof(struct ag_config, max_handshakes), 10},
    {"max_handshakes_per_addr 3", offsetof(struct ag_config, max_handshakes_per_addr), 3},
    {"max_jobs 65536", offsetof(struct ag_config, max_jobs), 65536},
    {"basic_cache_ttl 0", offsetof(struct ag_config, basic_cache_ttl_ms), 0},
    {"basic_cache_ttl 10m", offsetof(struct ag_config, basic_cache_ttl_ms), 600000},
    {"fail_max_per_user_addr 2", offsetof(struct ag_config, fail_max_per_user_addr), 2},
    {"fail_max_per_user 3", offsetof(struct ag_config, fail_max_per_user), 3},
    {"fail_max_per_addr 100000", offsetof(struct ag_config, fail_max_per_addr), 100000},
    {"fail_window 15m", offsetof(struct ag_config, fail_window_ms), 900000},
};

static void test_numeric_options(void **state)
{
    (void)state;
    char err[256];
    for (size_t i = 0; i < ARRAY_LEN(num_cases); i++) {
        struct ag_config *c = parse(num_cases[i].line, err, sizeof err);
        if (!c)
            fail_msg("'%s': %s", num_cases[i].line, err);
        if (u32_at(c, num_cases[i].off) != num_cases[i].want)
            fail_msg("'%s': got %u", num_cases[i].line, (unsigned)u32_at(c, num_cases[i].off));
        assert_round_trip(c);
        ag_config_unref(c);
    }
}

/* Every option: the line parses and the dump shows the expected line. */
static const struct dump_case {
    const char *text;
    const char *want; /* a line the dump must contain */
} dump_cases[] = {
    {"listen 10.1.2.3:8080", "listen 10.1.2.3:8080"},
    {"listen *:3128", "listen *:3128"},
    {"listen [::]:3128\nlisten 127.0.0.1:3128", "listen [::]:3128"},
    {"threadpool_size 16", "threadpool_size 16"},
    {"winbind_threads 8", "winbind_threads 8"},
    {"kerberos_threads 4", "kerberos_threads 4"},
    {"local_threads 3", "local_threads 3"},
    {"max_connections 500", "max_connections 500"},
    {"error_log /var/log/authgate/error.log", "error_log /var/log/authgate/error.log"},
    {"error_log -", "error_log -"},
    {"access_log /var/log/authgate/access.log", "access_log /var/log/authgate/access.log"},
    {"access_log none", "access_log none"},
    {"access_log -", "access_log -"},
    {"access_log_format json", "access_log_format json"},
    {"access_log_format SQUID", "access_log_format squid"},
    {"log_level debug", "log_level debug"},
    {"log_level WARN", "log_level warn"},
    {"log_level error", "log_level error"},
    {"via_pseudonym corp-gw.1", "via_pseudonym corp-gw.1"},
    {"x_forwarded_for on", "x_forwarded_for on"},
    {"x_forwarded_for OFF", "x_forwarded_for off"},
    {"connect_ports 443 8443 563", "connect_ports 443 8443 563"},
    {"connect_ports 1 65535", "connect_ports 1 65535"},
    {"header_max 65536", "header_max 64k"},
    {"header_max 5000", "header_max 5000"},
    {"drain_max 1048576", "drain_max 1m"},
    {"log_buffer 0", "log_buffer 0"},
    {"head_timeout 60000ms", "head_timeout 1m"},
    {"idle_timeout 1500ms", "idle_timeout 1500ms"},
    {"dns_timeout 7", "dns_timeout 7s"},
    {"connect_timeout 3s", "connect_timeout 3s"},
    {"upstream_idle_timeout 2m", "upstream_idle_timeout 2m"},
    {"upstream_keepalive_timeout 5s", "upstream_keepalive_timeout 5s"},
    {"upstream_keepalive 12", "upstream_keepalive 12"},
    {"upstream_keepalive_per_host 4", "upstream_keepalive_per_host 4"},
    {"tunnel_idle_timeout 120m", "tunnel_idle_timeout 2h"},
    {"shutdown_timeout 30s", "shutdown_timeout 30s"},
    {"drain_timeout 1500ms", "drain_timeout 1500ms"},
    {"drain_delay 6s", "drain_delay 6s"},
    {"drain_delay 0", "drain_delay 0"},
    {"proxy_protocol_timeout 2s", "proxy_protocol_timeout 2s"},
    {"tls_certificate /etc/authgate/proxy.pem", "tls_certificate /etc/authgate/proxy.pem"},
    {"tls_key /etc/authgate/proxy.key", "tls_key /etc/authgate/proxy.key"},
    {"tls_handshake_timeout 3s", "tls_handshake_timeout 3s"},
    {"basic_require_tls on", "basic_require_tls on"},
    {"channel_binding required", "channel_binding required"},
    {"channel_binding off", "channel_binding off"},
    {"listen 127.0.0.1:3129 tls proxy_protocol\nproxy_protocol_from 127.0.0.1\n"
     "tls_certificate /c.pem\ntls_key /k.pem",
     "listen 127.0.0.1:3129 proxy_protocol tls"},
    {"proxy_protocol_from 10.0.0.5 10.1.0.0/16 2001:db8::/32 ::ffff:192.0.2.0/120",
     "proxy_protocol_from 10.0.0.5/32 10.1.0.0/16 2001:db8::/32 192.0.2.0/24"},
    {"proxy_protocol_from none", "proxy_protocol_from none"},
    {"listen 127.0.0.1:3128 [::1]:3128 proxy_protocol\nproxy_protocol_from 127.0.0.1",
     "listen [::1]:3128 proxy_protocol"},
    {"auth_schemes basic", "auth_schemes basic"},
    {"auth_schemes NTLM Negotiate", "auth_schemes ntlm negotiate"},
    {"auth_schemes none", "auth_schemes none"},
    {"basic_realm \"Example Corp proxy\"", "basic_realm \"Example Corp proxy\""},
    {"basic_realm Proxy", "basic_realm Proxy"},
    {"basic_backend winbind", "basic_backend winbind"},
    {"ntlm_backend Winbind", "ntlm_backend winbind"},
    {"ntlm_backend local", "ntlm_backend local"},
    {"user_file /etc/authgate/users", "user_file /etc/authgate/users"},
    {"user_file \"/etc/my users#1\"", "user_file \"/etc/my users#1\""},
    {"identity_header X-Authenticated-User", "identity_header X-Authenticated-User"},
    {"identity_header none", "identity_header none"},
    {"proxy_host proxy.corp.example", "proxy_host proxy.corp.example"},
    {"proxy_host none", "proxy_host none"},
    {"ntlm_domain CORP", "ntlm_domain CORP"},
    {"ntlm_dns_domain corp.example", "ntlm_dns_domain corp.example"},
    {"ntlm_require_mic on", "ntlm_require_mic on"},
    {"ntlm_allow_v1 on", "ntlm_allow_v1 on"},
    {"ntlm_allow_machine_accounts on", "ntlm_allow_machine_accounts on"},
    {"keytab /etc/authgate/http.keytab", "keytab /etc/authgate/http.keytab"},
    {"negotiate_acceptor HTTP/proxy.corp.example@CORP.EXAMPLE",
     "negotiate_acceptor HTTP/proxy.corp.example@CORP.EXAMPLE"},
    {"negotiate_name_format strip", "negotiate_name_format strip"},
    {"negotiate_realms CORP.EXAMPLE,LAB.EXAMPLE", "negotiate_realms CORP.EXAMPLE,LAB.EXAMPLE"},
    {"rcache_dir /var/lib/authgate/rcache", "rcache_dir /var/lib/authgate/rcache"},
    {"realm_domain corp.example CORP", "realm_domain corp.example CORP"},
    {"realm_domain CORP.EXAMPLE CORP\nrealm_domain eu.corp.example EU",
     "realm_domain eu.corp.example EU"},
    {"realm_domain none", "realm_domain none"},
    /* found by fuzz_config: a domain "#" dumped bare read back as a comment */
    {"realm_domain a \"#\"", "realm_domain a \"#\""},
    {"rules_file /etc/authgate/rules", "rules_file /etc/authgate/rules"},
    /* "/" holds no NNN.html: every page is the built-in one */
    {"error_templates /", "error_templates /"},
    {"error_contact \"IT help desk, ext. 4444 <help@example.com>\"",
     "error_contact \"IT help desk, ext. 4444 <help@example.com>\""},
    {"rules_path_case Sensitive", "rules_path_case sensitive"},
    {"handshake_timeout 10s", "handshake_timeout 10s"},
    {"identity_max_age 1h", "identity_max_age 1h"},
    {"max_handshakes 100", "max_handshakes 100"},
    {"max_handshakes_per_addr 10", "max_handshakes_per_addr 10"},
    {"max_jobs 64", "max_jobs 64"},
    {"basic_cache_ttl 0", "basic_cache_ttl 0"},
    {"fail_max_per_user_addr 3", "fail_max_per_user_addr 3"},
    {"fail_max_per_user 5", "fail_max_per_user 5"},
    {"fail_max_per_addr 20", "fail_max_per_addr 20"},
    {"fail_window 2m", "fail_window 2m"},
    {"status_socket /run/authgate/authgate.sock", "status_socket /run/authgate/authgate.sock"},
    {"status_socket none", "status_socket none"},
    {"status_socket_mode 0600", "status_socket_mode 0600"},
    {"status_socket_mode 660", "status_socket_mode 0660"},
    {"status_socket_group root", "status_socket_group root"},
    {"status_allow_users root 1000 0", "status_allow_users 0 1000"},
    {"status_allow_users none", "status_allow_users none"},
    {"workers auto", "workers auto"},
    {"workers 3", "workers 3"},
    {"status_allow_groups root 4", "status_allow_groups 0 4"},
    {"metrics_listen 127.0.0.1:9337", "metrics_listen 127.0.0.1:9337"},
    {"metrics_listen [::]:9337", "metrics_listen [::]:9337"},
    {"metrics_listen none", "metrics_listen none"},
    {"metrics_allow 10.0.0.5 192.0.2.0/24", "metrics_allow 10.0.0.5/32 192.0.2.0/24"},
    {"metrics_allow none", "metrics_allow none"},
    {"parent isp proxy.isp.example:8080", "parent isp proxy.isp.example:8080"},
    {"parent v6 [2001:db8::1]:3128\nparent k k.example:3128 auth=negotiate:HTTP@k.example",
     "parent k k.example:3128 auth=negotiate:HTTP@k.example"},
    {"parent none", "parent none"},
    {"parent s s.example:3129 tls", "parent s s.example:3129 tls"},
    {"parent s s.example:3129 auth=negotiate:HTTP@s.example tls ca=/etc/authgate/p-ca.pem",
     "parent s s.example:3129 auth=negotiate:HTTP@s.example tls ca=/etc/authgate/p-ca.pem"},
    {"parent s [::1]:3129 ca=/x/ca.pem tls", "parent s [::1]:3129 tls ca=/x/ca.pem"},
    {"parent s s.example:3129 tls \"ca=/x/a b#ca.pem\"",
     "parent s s.example:3129 tls \"ca=/x/a b#ca.pem\""},
    {"parent_tls_ca /etc/ssl/corp-ca.pem", "parent_tls_ca /etc/ssl/corp-ca.pem"},
    {"parent_identity_header on", "parent_identity_header on"},
    {"parent_backoff 5s", "parent_backoff 5s"},
    {"pac_file none", "pac_file none"},
};

static void test_every_option_round_trips(void **state)
{
    (void)state;
    char err[256];
    for (size_t i = 0; i < ARRAY_LEN(dump_cases); i++) {
        struct ag_config *c = parse(dump_cases[i].text, err, sizeof err);
        if (!c)
            fail_msg("'%s': %s", dump_cases[i].text, err);
        char *d = dump_str(c);
        if (!has_line(d, dump_cases[i].want))
            fail_msg("'%s': no line '%s' in\n%s", dump_cases[i].text, dump_cases[i].want, d);
        free(d);
        assert_round_trip(c);
        ag_config_unref(c);
    }
    /* A new table row without a test case fails here. */
    for (size_t k = 0; k < ag_config_option_count(); k++) {
        const char *name = ag_config_option_name(k);
        size_t n = strlen(name);
        bool found = false;
        for (size_t i = 0; i < ARRAY_LEN(dump_cases) && !found; i++)
            found = strncmp(dump_cases[i].text, name, n) == 0 && dump_cases[i].text[n] == ' ';
        for (size_t i = 0; i < ARRAY_LEN(num_cases) && !found; i++)
            found = strncmp(num_cases[i].line, name, n) == 0 && num_cases[i].line[n] == ' ';
        if (!found)
            fail_msg("option '%s' has no test case", name);
    }
}

/* A config changing everything at once, with its fields checked directly. */
static void test_full_config_fields(void **state)
{
    (void)state;
    char err[256];
    const char *text = "listen 192.0.2.1:8080\n"
                       "listen [2001:db8::1]:8080\n"
                       "access_log none\n"
                       "access_log_format json\n"
                       "log_level debug\n"
                       "via_pseudonym gw\n"
                       "x_forwarded_for on\n"
                       "connect_ports 443 8443\n"
                       "auth_schemes basic negotiate\n"
                       "basic_realm \"Corp Proxy\"\n"
                       "basic_backend winbind\n"
                       "ntlm_backend winbind\n"
                       "identity_header X-User\n";
    struct ag_config *c = parse(text, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    assert_int_equal(c->n_listen, 2);
    assert_string_equal(c->listen[1].text, "[2001:db8::1]:8080");
    assert_int_equal(c->listen[1].addr.ss_family, AF_INET6);
    assert_null(c->access_log);
    assert_int_equal(c->access_format, AG_ACCESS_JSON);
    assert_int_equal(c->log_level, AG_LOG_DEBUG);
    assert_string_equal(c->via_pseudonym, "gw");
    assert_true(c->x_forwarded_for);
    assert_int_equal(c->n_connect_ports, 2);
    assert_true(ag_config_port_allowed(c, 8443));
    assert_true(ag_config_port_allowed(c, 443));
    assert_false(ag_config_port_allowed(c, 80));
    assert_false(ag_config_port_allowed(c, 0));
    assert_int_equal(c->n_schemes, 2);
    assert_int_equal(c->schemes[0], AG_SCHEME_BASIC);
    assert_int_equal(c->schemes[1], AG_SCHEME_NEGOTIATE);
    assert_string_equal(c->basic_realm, "Corp Proxy");
    assert_int_equal(c->basic_backend, AG_BACKEND_WINBIND);
    assert_int_equal(c->ntlm_backend, AG_BACKEND_WINBIND);
    assert_string_equal(c->identity_header, "X-User");
    assert_round_trip(c);
    ag_config_unref(c);
}

/* ---- errors: exact file:line messages -------------------------------------- */

static const struct err_case {
    const char *text;
    const char *want;
} err_cases[] = {
    {"lisen 1.2.3.4:80", "proxy.conf:1: unknown option 'lisen'"},
    /* A PROXY header names any client: only from the balancers listed. */
    {"listen 127.0.0.1:3128 proxy_protocol",
     "proxy.conf: listen 127.0.0.1:3128 proxy_protocol needs proxy_protocol_from (the addresses "
     "of the balancers allowed to send the header)"},
    {"listen 127.0.0.1:3129 tls\ntls_key /k.pem",
     "proxy.conf: listen 127.0.0.1:3129 tls needs tls_certificate and tls_key"},
    {"channel_binding maybe",
     "proxy.conf:1: channel_binding: unknown value 'maybe' (use off, if-present or required)"},
    {"listen proxy_protocol",
     "proxy.conf:1: listen: invalid address 'proxy_protocol' (use 1.2.3.4:port, [::1]:port or "
     "*:port)"},
    {"proxy_protocol_from 10.0.0.0/33",
     "proxy.conf:1: proxy_protocol_from: '10.0.0.0/33' is not an address or CIDR network"},
    {"proxy_protocol_from balancer.example",
     "proxy.conf:1: proxy_protocol_from: 'balancer.example' is not an address or CIDR network"},
    /* numeric only, as listen: no DNS at start-up */
    {"metrics_listen localhost:9337", "proxy.conf:1: metrics_listen: 'localhost:9337' must be a "
                                      "numeric ADDRESS:PORT (1.2.3.4:9090, [::1]:9090, *:9090)"},
    {"metrics_listen 127.0.0.1", "proxy.conf:1: metrics_listen: '127.0.0.1' must be a numeric "
                                 "ADDRESS:PORT (1.2.3.4:9090, [::1]:9090, *:9090)"},
    {"metrics_allow 10.0.0.0/33",
     "proxy.conf:1: metrics_allow: '10.0.0.0/33' is not an address or CIDR network"},
    {"ntlm_domain SIXTEENCHARSLONG", "proxy.conf:1: ntlm_domain: 'SIXTEENCHARSLONG' must be a "
                                     "NetBIOS name (1-15 characters, no . \\ / : * ? \" < > |)"},
    {"proxy_host 10.0.0.1:80",
     "proxy.conf:1: proxy_host: '10.0.0.1:80' must be a DNS name (letters, digits, '-' and '.')"},
    {"Listen 1.2.3.4:80", "proxy.conf:1: unknown option 'Listen'"},
    {"\n# c\nheader_max 1", "proxy.conf:3: header_max: 1 is below the minimum 4096"},
    {"header_max 1m", "proxy.conf:1: header_max: 1m is above the maximum 262144"},
    {"header_max 10x", "proxy.conf:1: header_max: invalid size '10x'"},
    {"header_max -1", "proxy.conf:1: header_max: invalid size '-1'"},
    {"header_max \"\"", "proxy.conf:1: header_max: invalid size ''"},
    {"a\nb\nc\nd\n", "proxy.conf:1: unknown option 'a'"},
    {"via_pseudonym a\n\n\n\nvia_pseudonym b", "proxy.conf:5: 'via_pseudonym' given twice"},
    {"head_timeout 1s\nhead_timeout 1s", "proxy.conf:2: 'head_timeout' given twice"},
    {"auth_schemes basic\nauth_schemes ntlm", "proxy.conf:2: 'auth_schemes' given twice"},
    {"connect_ports 443\nconnect_ports 80", "proxy.conf:2: 'connect_ports' given twice"},
    {"head_timeout 99ms", "proxy.conf:1: head_timeout: 99ms is below the minimum 100ms"},
    {"head_timeout 0", "proxy.conf:1: head_timeout: 0 is below the minimum 100ms"},
    {"head_timeout 25h", "proxy.conf:1: head_timeout: 25h is above the maximum 24h"},
    {"head_timeout 10x", "proxy.conf:1: head_timeout: invalid duration '10x'"},
    {"head_timeout 99999999999h", "proxy.conf:1: head_timeout: invalid duration '99999999999h'"},
    {"head_timeout -1", "proxy.conf:1: head_timeout: invalid duration '-1'"},
    {"head_timeout", "proxy.conf:1: head_timeout: missing value"},
    {"head_timeout 1s 2s",
     "proxy.conf:1: head_timeout: too many values (quote a value that contains blanks)"},
    {"basic_cache_ttl 50ms",
     "proxy.conf:1: basic_cache_ttl: 50ms is below the minimum 100ms (0 turns it off)"},
    {"identity_max_age 25h", "proxy.conf:1: identity_max_age: 25h is above the maximum 24h"},
    {"max_jobs 0", "proxy.conf:1: max_jobs: 0 is below the minimum 1"},
    {"max_jobs 65537", "proxy.conf:1: max_jobs: 65537 is above the maximum 65536"},
    {"max_jobs 1k", "proxy.conf:1: max_jobs: invalid number '1k'"},
    {"max_jobs 4294967296", "proxy.conf:1: max_jobs: invalid number '4294967296'"},
    {"threadpool_size 0", "proxy.conf:1: threadpool_size: 0 is below the minimum 1"},
    {"threadpool_size 129", "proxy.conf:1: threadpool_size: 129 is above the maximum 128"},
    {"winbind_threads 0", "proxy.conf:1: winbind_threads: 0 is below the minimum 1"},
    {"kerberos_threads 65", "proxy.conf:1: kerberos_threads: 65 is above the maximum 64"},
    {"drain_max 2m", "proxy.conf:1: drain_max: 2m is above the maximum 1048576"},
    {"via_pseudonym \"a b\"", "proxy.conf:1: via_pseudonym: 'a b' must be an HTTP token "
                              "(letters, digits and !#$%&'*+-.^_`|~)"},
    {"via_pseudonym a/b", "proxy.conf:1: via_pseudonym: 'a/b' must be an HTTP token "
                          "(letters, digits and !#$%&'*+-.^_`|~)"},
    {"identity_header X:User",
     "proxy.conf:1: identity_header: 'X:User' must be a valid header field name (an HTTP token)"},
    {"identity_header Proxy-Authorization",
     "proxy.conf:1: identity_header: 'Proxy-Authorization' names a header the proxy itself "
     "manages"},
    {"basic_realm \"a\\\"b\"", "proxy.conf:1: basic_realm: 'a\\x22b' must not contain '\"' or "
                               "'\\'"},
    {"basic_realm \"\"", "proxy.conf:1: basic_realm: empty value"},
    {"x_forwarded_for yes", "proxy.conf:1: x_forwarded_for: expected on or off, got 'yes'"},
    {"basic_backend ldap", "proxy.conf:1: basic_backend: unknown value 'ldap' (use local or "
                           "winbind)"},
    {"access_log_format xml", "proxy.conf:1: access_log_format: unknown value 'xml' (use squid "
                              "or json)"},
    {"log_level verbose", "proxy.conf:1: log_level: unknown value 'verbose' (use error, warn, "
                          "info or debug)"},
    {"auth_schemes negotiate ntlm NEGOTIATE", "proxy.conf:1: auth_schemes: 'negotiate' listed "
                                              "twice"},
    {"auth_schemes basic basic", "proxy.conf:1: auth_schemes: 'basic' listed twice"},
    {"auth_schemes kerberos", "proxy.conf:1: auth_schemes: unknown scheme 'kerberos' (use "
                              "negotiate, ntlm, basic or none)"},
    {"auth_schemes basic none", "proxy.conf:1: auth_schemes: 'none' must stand alone"},
    {"auth_schemes", "proxy.conf:1: auth_schemes: missing value"},
    {"connect_ports 0", "proxy.conf:1: connect_ports: invalid port '0' (1-65535)"},
    {"connect_ports 65536", "proxy.conf:1: connect_ports: invalid port '65536' (1-65535)"},
    {"connect_ports https", "proxy.conf:1: connect_ports: invalid port 'https' (1-65535)"},
    {"connect_ports 443 80 443", "proxy.conf:1: connect_ports: port 443 listed twice"},
    {"listen localhost:80", "proxy.conf:1: listen: invalid address 'localhost:80' (use "
                            "1.2.3.4:port, [::1]:port or *:port)"},
    {"listen 127.0.0.1:3128\nlisten 127.0.0.1:3128",
     "proxy.conf:2: listen: 127.0.0.1:3128 given twice"},
    {"listen *:80 0.0.0.0:80", "proxy.conf:1: listen: 0.0.0.0:80 given twice"},
    {"listen", "proxy.conf:1: listen: missing value"},
    {"via_pseudonym \"abc", "proxy.conf:1: unterminated quoted value"},
    {"via_pseudonym \"abc\\", "proxy.conf:1: unterminated quoted value"},
    {"via_pseudonym \"a\\nb\"", "proxy.conf:1: invalid escape '\\n' (only \\\" and \\\\)"},
    {"via_pseudonym \"ab\"cd", "proxy.conf:1: text after a closing quote"},
    {"via_pseudonym ab\"cd\"", "proxy.conf:1: unexpected '\"' inside a value"},
    {"basic_realm \"a\tb\"", "proxy.conf:1: control character in value"},
    {"basic_realm a\rb", "proxy.conf:1: control character in value"},
    {"x_forwarded_for on\r\nlisen x\r\n", "proxy.conf:2: unknown option 'lisen'"},
    {"status_socket_mode 0668",
     "proxy.conf:1: status_socket_mode: invalid mode '0668' (octal, such as 0660)"},
    {"status_socket_mode 01777",
     "proxy.conf:1: status_socket_mode: invalid mode '01777' (octal, such as 0660)"},
    {"status_socket_group no-such-group-xyz",
     "proxy.conf:1: status_socket_group: 'no-such-group-xyz' is not a known group"},
    {"status_allow_users root no-such-user-xyz",
     "proxy.conf:1: status_allow_users: unknown user 'no-such-user-xyz'"},
    {"status_allow_groups none 0", "proxy.conf:1: status_allow_groups: 'none' must stand alone"},
    {"\"lis\\\\en\" 1", "proxy.conf:1: unknown option 'lis\\x5cen'"},
    {"realm_domain CORP.EXAMPLE",
     "proxy.conf:1: realm_domain: needs a realm and a winbind domain (REALM DOMAIN)"},
    {"realm_domain CORP.EXAMPLE CORP X",
     "proxy.conf:1: realm_domain: needs a realm and a winbind domain (REALM DOMAIN)"},
    {"realm_domain CORP/X CORP", "proxy.conf:1: realm_domain: realm 'CORP/X' must be a DNS name "
                                 "(letters, digits, '-' and '.')"},
    {"realm_domain CORP.EXAMPLE CORP.EXAMPLE",
     "proxy.conf:1: realm_domain: domain 'CORP.EXAMPLE' must be a NetBIOS name (1-15 characters, "
     "no . \\ / : * ? \" < > |)"},
    {"realm_domain A.EXAMPLE A\nrealm_domain a.example B",
     "proxy.conf:2: realm_domain: realm a.example given twice"},
    {"parent direct p.example:3128",
     "proxy.conf:1: parent: name must be 1-63 of [A-Za-z0-9_.-] and not 'direct'"},
    {"parent p p.example", "proxy.conf:1: parent: 'p.example' is not HOST:PORT"},
    {"parent p p.example:0", "proxy.conf:1: parent: 'p.example:0' is not HOST:PORT"},
    {"parent p p.example:3128\nparent p q.example:3128", "proxy.conf:2: parent: 'p' given twice"},
    {"parent p p.example:3128 ca=/etc/ca.pem", "proxy.conf:1: parent: ca= needs tls"},
    {"parent p p.example:3128 tls tls",
     "proxy.conf:1: parent: 'tls' is not auth=basic:FILE, auth=negotiate:PRINCIPAL, tls or ca=FILE "
     "(each at most once)"},
    {"parent p p.example:3128 tls ca=",
     "proxy.conf:1: parent: 'ca=' is not auth=basic:FILE, auth=negotiate:PRINCIPAL, tls or ca=FILE "
     "(each at most once)"},
    {"parent p p.example:3128 tls ca=/a ca=/b",
     "proxy.conf:1: parent: 'ca=/b' is not auth=basic:FILE, auth=negotiate:PRINCIPAL, tls or "
     "ca=FILE (each at most once)"},
    {"parent p p.example:3128 TLS",
     "proxy.conf:1: parent: 'TLS' is not auth=basic:FILE, auth=negotiate:PRINCIPAL, tls or ca=FILE "
     "(each at most once)"},
    {"parent p p.example:3128 auth=ntlm:x",
     "proxy.conf:1: parent: 'auth=ntlm:x' is not auth=basic:FILE, auth=negotiate:PRINCIPAL, tls or "
     "ca=FILE (each at most once)"},
    {"parent p p.example:3128 auth=basic:/nonexistent/cred",
     "proxy.conf: /nonexistent/cred: No such file or directory"},
    {"pac_file /nonexistent/proxy.pac",
     "proxy.conf: /nonexistent/proxy.pac: No such file or directory"},
    /* found by fuzz_config: this refusal alone did not say which file */
    {"error_templates /nonexistent/pages",
     "proxy.conf: /nonexistent/pages: No such file or directory"},
};

static void test_error_messages(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(err_cases); i++) {
        char err[512] = "unset";
        struct ag_config *c = parse(err_cases[i].text, err, sizeof err);
        if (c)
            fail_msg("'%s' parsed but should fail", err_cases[i].text);
        if (strcmp(err, err_cases[i].want) != 0)
            fail_msg("'%s':\n got: %s\nwant: %s", err_cases[i].text, err, err_cases[i].want);
    }
}

/* authgate.conf(5) is generated from the table: every option has its
 * paragraph, with its real default and whether a reload applies it, and no
 * doc string can start a roff request. */
static void test_man_reference(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    ag_config_write_man(f);
    fclose(f);
    for (size_t i = 0; i < ag_config_option_count(); i++) {
        char want[128], name[64];
        size_t o = 0;
        /* the name as roff writes it: '-' escaped (no option has one today) */
        for (const char *p = ag_config_option_name(i); *p && o + 3 < sizeof name; p++) {
            if (*p == '-')
                name[o++] = '\\';
            name[o++] = *p;
        }
        name[o] = '\0';
        snprintf(want, sizeof want, ".TP\n.B %s\n", name);
        if (!strstr(text, want))
            fail_msg("authgate.conf(5) lacks a paragraph for '%s'", name);
    }
    assert_non_null(strstr(text, ".B header_max\nLargest request head accepted.\n.br\nType: size "
                                 "in bytes (k, m suffixes). Default: \\fB64k\\fR. Range: 4096 to "
                                 "262144. A reload (SIGHUP) applies it.\n"));
    assert_non_null(strstr(text, ".B metrics_listen\n"));
    assert_non_null(strstr(text, "Default: \\fB127.0.0.1:3128\\fR. Repeatable. Read at "
                                 "start\\-up only"));
    /* every line of the reference is a request we emit or plain text */
    for (char *line = text; line && *line;) {
        assert_false(line[0] == '\'');
        if (line[0] == '.')
            assert_true(strncmp(line, ".TP\n", 4) == 0 || strncmp(line, ".B ", 3) == 0 ||
                        strncmp(line, ".br\n", 4) == 0);
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    free(text);
}

/* A file in a fresh temporary directory, with mode; its path in out. */
static void temp_file(const char *name, const char *text, mode_t mode, char *out, size_t cap)
{
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/ag-test-config-XXXXXX");
        assert_non_null(mkdtemp(dir));
    }
    snprintf(out, cap, "%s/%s", dir, name);
    FILE *f = fopen(out, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(out, mode), 0);
}

/* "tls" and "ca=" land in the parent; parent_tls_ca is global; a parent
 * without tls has neither. */
static void test_parent_tls_fields(void **state)
{
    (void)state;
    char err[512];
    struct ag_config *c = parse("parent s s.example:3129 tls ca=/x/ca.pem\n"
                                "parent t t.example:1 tls\n"
                                "parent u u.example:2\n"
                                "parent_tls_ca /y/corp.pem\n",
                                err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    const struct ag_parent *s = ag_config_parent(c, "s"), *t = ag_config_parent(c, "t"),
                           *u = ag_config_parent(c, "u");
    assert_true(s && t && u);
    assert_true(s->tls);
    assert_string_equal(s->tls_ca, "/x/ca.pem");
    assert_true(t->tls);
    assert_null(t->tls_ca);
    assert_false(u->tls);
    assert_null(u->tls_ca);
    assert_string_equal(c->parent_tls_ca, "/y/corp.pem");
    ag_config_unref(c);
    c = parse("parent u u.example:2", err, sizeof err);
    assert_non_null(c);
    assert_null(c->parent_tls_ca); /* the system store */
    ag_config_unref(c);
}

/* The parent's password file is refused unless only the gateway can read
 * it; a good one becomes the Proxy-Authorization field sent to the parent. */
static void test_parent_basic_file(void **state)
{
    (void)state;
    char path[128], text[300], err[512];
    temp_file("cred", "gw:s3cret\n", 0640, path, sizeof path);
    snprintf(text, sizeof text, "parent p 127.0.0.1:3128 auth=basic:%s", path);
    assert_null(parse(text, err, sizeof err));
    char want[300];
    snprintf(want, sizeof want,
             "proxy.conf: %s: readable by group or others (mode 0640); the parent's password "
             "must be readable by the gateway alone (chmod 600)",
             path);
    assert_string_equal(err, want);
    assert_int_equal(chmod(path, 0600), 0);
    struct ag_config *c = parse(text, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    const struct ag_parent *p = ag_config_parent(c, "p");
    assert_non_null(p);
    assert_int_equal(p->port, 3128);
    /* base64("gw:s3cret") */
    assert_string_equal(p->basic_field, "Proxy-Authorization: Basic Z3c6czNjcmV0\r\n");
    assert_null(ag_config_parent(c, "q"));
    ag_config_unref(c);
    temp_file("cred2", "no-colon\n", 0600, path, sizeof path);
    snprintf(text, sizeof text, "parent p 127.0.0.1:3128 auth=basic:%s", path);
    assert_null(parse(text, err, sizeof err));
    assert_non_null(strstr(err, "must hold one user:password line"));
}

/* pac_file: read with the configuration; empty is refused; validators set. */
static void test_pac_file(void **state)
{
    (void)state;
    char path[128], text[200], err[512];
    temp_file("empty.pac", "", 0644, path, sizeof path);
    snprintf(text, sizeof text, "pac_file %s", path);
    assert_null(parse(text, err, sizeof err));
    assert_non_null(strstr(err, "pac_file is empty"));
    temp_file("p.pac", "function FindProxyForURL(u, h) { return \"DIRECT\"; }\n", 0644, path,
              sizeof path);
    snprintf(text, sizeof text, "pac_file %s", path);
    struct ag_config *c = parse(text, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    assert_int_equal(c->pac_len, 52);
    assert_memory_equal(c->pac_body, "function FindProxyForURL", 24);
    assert_true(c->pac_etag[0] == '"' && strlen(c->pac_etag) > 10);
    assert_non_null(strstr(c->pac_last_modified, " GMT"));
    ag_config_unref(c);
}

/* realm_domain: a lookup by realm, case-insensitive; none clears. */
static void test_realm_domain_lookup(void **state)
{
    (void)state;
    char err[256];
    struct ag_config *c = parse("realm_domain CORP.EXAMPLE CORP\n"
                                "realm_domain eu.corp.example EU\n",
                                err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    assert_int_equal(c->n_realm_domains, 2);
    assert_string_equal(ag_config_realm_domain(c, "corp.example"), "CORP");
    assert_string_equal(ag_config_realm_domain(c, "EU.CORP.EXAMPLE"), "EU");
    assert_null(ag_config_realm_domain(c, "corp.example.evil"));
    assert_null(ag_config_realm_domain(c, "EXAMPLE"));
    ag_config_unref(c);
    c = parse("realm_domain CORP.EXAMPLE CORP\nrealm_domain none\n", err, sizeof err);
    assert_non_null(c);
    assert_int_equal(c->n_realm_domains, 0);
    ag_config_unref(c);
}

/* Lists too long, lines too long, NUL bytes, files too large. */
static void test_error_caps(void **state)
{
    (void)state;
    char err[256];
    char *big = malloc(AG_CONFIG_MAX_BYTES + 64);
    assert_non_null(big);

    /* 17 listeners */
    size_t o = 0;
    for (int i = 0; i <= AG_MAX_LISTENERS; i++)
        o += (size_t)sprintf(big + o, "listen 127.0.0.1:%d\n", 1000 + i);
    assert_null(parse(big, err, sizeof err));
    assert_string_equal(err, "proxy.conf:17: listen: more than 16 addresses");
    /* 16 are fine */
    big[o - strlen("listen 127.0.0.1:1016\n")] = '\0';
    struct ag_config *c = parse(big, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(c->n_listen, AG_MAX_LISTENERS);
    ag_config_unref(c);

    /* 65 ports, then 64 */
    o = (size_t)sprintf(big, "connect_ports");
    for (int i = 0; i <= AG_MAX_CONNECT_PORTS; i++)
        o += (size_t)sprintf(big + o, " %d", 1000 + i);
    assert_null(parse(big, err, sizeof err));
    assert_string_equal(err, "proxy.conf:1: connect_ports: more than 64 ports");
    big[o - 5] = '\0';
    c = parse(big, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    assert_int_equal(c->n_connect_ports, AG_MAX_CONNECT_PORTS);
    ag_config_unref(c);

    /* too many values on one line */
    o = (size_t)sprintf(big, "connect_ports");
    for (int i = 0; i < AG_CONFIG_MAX_VALUES; i++)
        o += (size_t)sprintf(big + o, " 1");
    assert_null(parse(big, err, sizeof err));
    assert_string_equal(err, "proxy.conf:1: more than 128 values on one line");

    /* a line of exactly AG_CONFIG_LINE_MAX bytes is fine, one more is not */
    memset(big, '#', AG_CONFIG_LINE_MAX);
    strcpy(big + AG_CONFIG_LINE_MAX, "\nx_forwarded_for on\n");
    c = parse(big, err, sizeof err);
    assert_non_null(c);
    assert_true(c->x_forwarded_for);
    ag_config_unref(c);
    big[0] = '\n';
    memset(big + 1, '#', AG_CONFIG_LINE_MAX + 1);
    strcpy(big + AG_CONFIG_LINE_MAX + 2, "\n");
    assert_null(parse(big, err, sizeof err));
    assert_string_equal(err, "proxy.conf:2: line longer than 4096 bytes");

    /* NUL bytes */
    static const char nul[] = "x_forwarded_for on\nvia_pseudonym a\0b\n";
    assert_null(ag_config_parse(nul, sizeof nul - 1, "proxy.conf", NULL, err, sizeof err));
    assert_string_equal(err, "proxy.conf:2: NUL byte in line");

    /* the whole text */
    memset(big, '\n', AG_CONFIG_MAX_BYTES + 1);
    assert_null(ag_config_parse(big, AG_CONFIG_MAX_BYTES + 1, "proxy.conf", NULL, err, sizeof err));
    assert_string_equal(err, "proxy.conf: larger than 1048576 bytes");
    c = ag_config_parse(big, AG_CONFIG_MAX_BYTES, "proxy.conf", NULL, err, sizeof err);
    assert_non_null(c);
    ag_config_unref(c);

    /* err may be NULL */
    assert_null(ag_config_parse("bogus", 5, "x", NULL, NULL, 0));
    free(big);
}

/* ---- durations and sizes -------------------------------------------------- */

static const struct unit_case {
    const char *s;
    int rc;
    uint32_t want;
} duration_cases[] = {
    {"0", 0, 0},
    {"1", 0, 1000},
    {"30", 0, 30000},
    {"500ms", 0, 500},
    {"30s", 0, 30000},
    {"5m", 0, 300000},
    {"2h", 0, 7200000},
    {"007s", 0, 7000},
    {"0ms", 0, 0},
    {"4294967295ms", 0, UINT32_MAX},
    {"4294967296ms", AG_EINVAL, 0},
    {"4294967", 0, 4294967000u},
    {"4294968", AG_EINVAL, 0},
    {"4294967s", 0, 4294967000u},
    {"71582m", 0, 4294920000u},
    {"71583m", AG_EINVAL, 0},
    {"1193h", 0, 4294800000u},
    {"1194h", AG_EINVAL, 0},
    {"99999999999h", AG_EINVAL, 0},
    {"184467440737095516160ms", AG_EINVAL, 0},
    {"10x", AG_EINVAL, 0},
    {"", AG_EINVAL, 0},
    {"-1", AG_EINVAL, 0},
    {"+1", AG_EINVAL, 0},
    {" 1", AG_EINVAL, 0},
    {"1 ", AG_EINVAL, 0},
    {"1.5s", AG_EINVAL, 0},
    {"s", AG_EINVAL, 0},
    {"ms", AG_EINVAL, 0},
    {"5M", AG_EINVAL, 0},
    {"5sec", AG_EINVAL, 0},
    {"5mss", AG_EINVAL, 0},
    {"0x10", AG_EINVAL, 0},
    {"1h1m", AG_EINVAL, 0},
};

static const struct unit_case size_cases[] = {
    {"0", 0, 0},
    {"4096", 0, 4096},
    {"64k", 0, 65536},
    {"64K", 0, 65536},
    {"1m", 0, 1048576},
    {"1M", 0, 1048576},
    {"4294967295", 0, UINT32_MAX},
    {"4294967296", AG_EINVAL, 0},
    {"4194303k", 0, 4194303u * 1024u},
    {"4194304k", AG_EINVAL, 0},
    {"4095m", 0, 4095u * 1048576u},
    {"4096m", AG_EINVAL, 0},
    {"99999999999m", AG_EINVAL, 0},
    {"1g", AG_EINVAL, 0},
    {"1kb", AG_EINVAL, 0},
    {"1km", AG_EINVAL, 0},
    {"k", AG_EINVAL, 0},
    {"10x", AG_EINVAL, 0},
    {"", AG_EINVAL, 0},
    {"-1", AG_EINVAL, 0},
    {"+1", AG_EINVAL, 0},
    {"1.5k", AG_EINVAL, 0},
    {" 1", AG_EINVAL, 0},
};

static void test_durations(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(duration_cases); i++) {
        uint32_t v = 12345;
        int rc = ag_config_parse_duration_ms(duration_cases[i].s, &v);
        if (rc != duration_cases[i].rc)
            fail_msg("'%s': rc %d", duration_cases[i].s, rc);
        /* out written only on success */
        assert_int_equal(v, rc == 0 ? duration_cases[i].want : 12345);
    }
}

static void test_sizes(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(size_cases); i++) {
        uint32_t v = 12345;
        int rc = ag_config_parse_size(size_cases[i].s, &v);
        if (rc != size_cases[i].rc)
            fail_msg("'%s': rc %d", size_cases[i].s, rc);
        assert_int_equal(v, rc == 0 ? size_cases[i].want : 12345);
    }
}

/* ---- listen --------------------------------------------------------------- */

static const struct listen_case {
    const char *s;
    int family; /* 0 = must fail */
    const char *addr;
    int port;
} listen_cases[] = {
    {"1.2.3.4:80", AF_INET, "1.2.3.4", 80},
    {"127.0.0.1:3128", AF_INET, "127.0.0.1", 3128},
    {"*:80", AF_INET, "0.0.0.0", 80},
    {"0.0.0.0:65535", AF_INET, "0.0.0.0", 65535},
    {"[::1]:80", AF_INET6, "::1", 80},
    {"[::]:80", AF_INET6, "::", 80},
    {"[2001:db8::7]:8080", AF_INET6, "2001:db8::7", 8080},
    {"[::ffff:192.0.2.1]:1", AF_INET6, "::ffff:192.0.2.1", 1},
    {"1.2.3.4:080", AF_INET, "1.2.3.4", 80},
    {"", 0, NULL, 0},
    {":80", 0, NULL, 0},
    {"1.2.3.4", 0, NULL, 0},
    {"1.2.3.4:", 0, NULL, 0},
    {"1.2.3.4:0", 0, NULL, 0},
    {"1.2.3.4:65536", 0, NULL, 0},
    {"1.2.3.4:000080", 0, NULL, 0},
    {"1.2.3.4:+80", 0, NULL, 0},
    {"1.2.3.4:-80", 0, NULL, 0},
    {"1.2.3.4:80x", 0, NULL, 0},
    {"1.2.3.4: 80", 0, NULL, 0},
    {"1.2.3:80", 0, NULL, 0},
    {"1.2.3.256:80", 0, NULL, 0},
    {"localhost:80", 0, NULL, 0},
    {"::1:80", 0, NULL, 0},
    {"[::1]", 0, NULL, 0},
    {"[::1]80", 0, NULL, 0},
    {"[::1]:", 0, NULL, 0},
    {"[::1:80", 0, NULL, 0},
    {"[]:80", 0, NULL, 0},
    {"[*]:80", 0, NULL, 0},
    {"[1.2.3.4]:80", 0, NULL, 0},
    {"[fe80::1%eth0]:80", 0, NULL, 0},
    {"*:", 0, NULL, 0},
    {"**:80", 0, NULL, 0},
    {"[0000:0000:0000:0000:0000:0000:0000:0000000000000000]:80", 0, NULL, 0},
};

static void test_listen_forms(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(listen_cases); i++) {
        const struct listen_case *t = &listen_cases[i];
        struct ag_listen l;
        memset(&l, 0xa5, sizeof l);
        int rc = ag_config_parse_listen(t->s, &l);
        if (!t->family) {
            if (rc != AG_EINVAL)
                fail_msg("'%s' accepted", t->s);
            assert_int_equal((unsigned char)l.text[0], 0xa5); /* untouched */
            continue;
        }
        if (rc != 0)
            fail_msg("'%s' rejected", t->s);
        assert_string_equal(l.text, t->s);
        assert_int_equal(l.addr.ss_family, t->family);
        char buf[INET6_ADDRSTRLEN];
        if (t->family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&l.addr;
            assert_non_null(inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf));
            assert_int_equal(ntohs(a->sin_port), t->port);
        } else {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&l.addr;
            assert_non_null(inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf));
            assert_int_equal(ntohs(a->sin6_port), t->port);
        }
        assert_string_equal(buf, t->addr);
    }
    /* longer than the text field */
    assert_int_equal(ag_config_parse_listen("[0000:0000:0000:0000:0000:0000:0000:0001]:65535"
                                            "xxxxxxxxxxxxxxxxxxxxxx",
                                            &(struct ag_listen){0}),
                     AG_EINVAL);
    assert_int_equal(ag_config_parse_listen(NULL, &(struct ag_listen){0}), AG_EINVAL);
}

/* A listen line replaces the default rather than adding to it. */
static void test_listen_replaces_default(void **state)
{
    (void)state;
    char err[256];
    struct ag_config *c = parse("listen [::1]:3128 127.0.0.2:3128\nlisten *:8080", err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    assert_int_equal(c->n_listen, 3);
    assert_string_equal(c->listen[0].text, "[::1]:3128");
    assert_string_equal(c->listen[1].text, "127.0.0.2:3128");
    assert_string_equal(c->listen[2].text, "*:8080");
    ag_config_unref(c);
}

/* ---- tokenizer: quoting, escapes, comments -------------------------------- */

static void test_quoting_and_comments(void **state)
{
    (void)state;
    char err[256];
    const char *text = "# a comment line\n"
                       "   # an indented comment\n"
                       "\n"
                       "\t x_forwarded_for \t on   # trailing comment\n"
                       "basic_realm \"Corp # Proxy\"# comment right after a quote\n"
                       "via_pseudonym gw#comment without a blank\n"
                       "user_file \"/srv/a \\\"b\\\" \\\\c\"\n"
                       "access_log \"/var/log/with space.log\"\r\n"
                       "\"log_level\" \"debug\"\n"
                       "error_log /tmp/e.log"; /* no final newline */
    struct ag_config *c = parse(text, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    assert_true(c->x_forwarded_for);
    assert_string_equal(c->basic_realm, "Corp # Proxy");
    assert_string_equal(c->via_pseudonym, "gw");
    assert_string_equal(c->user_file, "/srv/a \"b\" \\c");
    assert_string_equal(c->access_log, "/var/log/with space.log");
    assert_int_equal(c->log_level, AG_LOG_DEBUG);
    assert_string_equal(c->error_log, "/tmp/e.log");
    char *d = dump_str(c);
    assert_true(has_line(d, "user_file \"/srv/a \\\"b\\\" \\\\c\""));
    assert_true(has_line(d, "access_log \"/var/log/with space.log\""));
    free(d);
    assert_round_trip(c);
    ag_config_unref(c);

    /* a quoted "none" is still the word none */
    c = parse("access_log \"none\"", err, sizeof err);
    assert_non_null(c);
    assert_null(c->access_log);
    ag_config_unref(c);
}

/* ---- auth schemes --------------------------------------------------------- */

static const struct scheme_case {
    const char *line;
    size_t n;
    enum ag_scheme s[3];
} scheme_cases[] = {
    {"auth_schemes negotiate ntlm basic",
     3,
     {AG_SCHEME_NEGOTIATE, AG_SCHEME_NTLM, AG_SCHEME_BASIC}},
    {"auth_schemes basic ntlm negotiate",
     3,
     {AG_SCHEME_BASIC, AG_SCHEME_NTLM, AG_SCHEME_NEGOTIATE}},
    {"auth_schemes Basic NEGOTIATE", 2, {AG_SCHEME_BASIC, AG_SCHEME_NEGOTIATE}},
    {"auth_schemes ntlm", 1, {AG_SCHEME_NTLM}},
    {"auth_schemes NONE", 0, {0}},
};

static void test_auth_schemes(void **state)
{
    (void)state;
    static const enum ag_scheme all[] = {AG_SCHEME_NEGOTIATE, AG_SCHEME_NTLM, AG_SCHEME_BASIC};
    char err[256];
    for (size_t i = 0; i < ARRAY_LEN(scheme_cases); i++) {
        const struct scheme_case *t = &scheme_cases[i];
        struct ag_config *c = parse(t->line, err, sizeof err);
        if (!c)
            fail_msg("'%s': %s", t->line, err);
        assert_int_equal(c->n_schemes, t->n);
        for (size_t k = 0; k < t->n; k++)
            assert_int_equal(c->schemes[k], t->s[k]);
        for (size_t k = 0; k < 3; k++) {
            bool want = false;
            for (size_t j = 0; j < t->n; j++)
                want |= t->s[j] == all[k];
            assert_int_equal(ag_config_scheme_enabled(c, all[k]), want);
        }
        assert_false(ag_config_scheme_enabled(c, AG_SCHEME_NONE));
        assert_round_trip(c);
        ag_config_unref(c);
    }
    assert_string_equal(ag_scheme_name(AG_SCHEME_NEGOTIATE), "Negotiate");
    assert_string_equal(ag_scheme_name(AG_SCHEME_NTLM), "NTLM");
    assert_string_equal(ag_scheme_name(AG_SCHEME_BASIC), "Basic");
    assert_string_equal(ag_scheme_name(AG_SCHEME_NONE), "-");
    assert_string_equal(ag_scheme_name((enum ag_scheme)42), "-");
}

/* ---- paths ---------------------------------------------------------------- */

static void test_relative_paths(void **state)
{
    (void)state;
    char err[256];
    const char *text = "user_file users\n"
                       "access_log logs/access.log\n"
                       "error_log /abs/error.log\n";
    struct ag_config *c =
        ag_config_parse(text, strlen(text), "p.conf", "/etc/authgate", err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    assert_string_equal(c->user_file, "/etc/authgate/users");
    assert_string_equal(c->access_log, "/etc/authgate/logs/access.log");
    assert_string_equal(c->error_log, "/abs/error.log");
    ag_config_unref(c);

    /* "-" keeps its meaning; "none" stays off; a basedir of "/" */
    text = "error_log -\naccess_log -\nuser_file ./u\n";
    c = ag_config_parse(text, strlen(text), "p.conf", "/", err, sizeof err);
    assert_non_null(c);
    assert_string_equal(c->error_log, "-");
    assert_string_equal(c->access_log, "-");
    assert_string_equal(c->user_file, "/./u");
    ag_config_unref(c);

    /* without a basedir, paths are kept as written */
    c = parse("user_file users", err, sizeof err);
    assert_non_null(c);
    assert_string_equal(c->user_file, "users");
    ag_config_unref(c);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_load(void **state)
{
    (void)state;
    char dir[] = "/tmp/ag-config-XXXXXX";
    char path[512], sub[512], want[1024], err[1024];
    assert_non_null(mkdtemp(dir));
    char *real = realpath(dir, NULL);
    assert_non_null(real);
    snprintf(sub, sizeof sub, "%s/sub", dir);
    assert_int_equal(mkdir(sub, 0700), 0);

    /* relative paths resolve against the file's directory, not the cwd */
    snprintf(path, sizeof path, "%s/sub/../sub/proxy.conf", dir);
    write_file(path, "user_file users\naccess_log ../access.log\n");
    struct ag_config *c = ag_config_load(path, err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    snprintf(want, sizeof want, "%s/sub/proxy.conf", real);
    assert_string_equal(c->path, want);
    snprintf(want, sizeof want, "%s/sub/users", real);
    assert_string_equal(c->user_file, want);
    snprintf(want, sizeof want, "%s/sub/../access.log", real);
    assert_string_equal(c->access_log, want);
    assert_true(c->loaded > 1600000000);
    ag_config_unref(c);

    /* errors name the file as given */
    write_file(path, "x_forwarded_for on\nlisen 1\n");
    assert_null(ag_config_load(path, err, sizeof err));
    snprintf(want, sizeof want, "%s:2: unknown option 'lisen'", path);
    assert_string_equal(err, want);

    snprintf(path, sizeof path, "%s/missing.conf", dir);
    assert_null(ag_config_load(path, err, sizeof err));
    snprintf(want, sizeof want, "%s: No such file or directory", path);
    assert_string_equal(err, want);

    assert_null(ag_config_load(sub, err, sizeof err));
    snprintf(want, sizeof want, "%s: not a regular file", sub);
    assert_string_equal(err, want);

    /* size is checked before reading */
    snprintf(path, sizeof path, "%s/big.conf", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, AG_CONFIG_MAX_BYTES + 1), 0);
    close(fd);
    assert_null(ag_config_load(path, err, sizeof err));
    snprintf(want, sizeof want, "%s: larger than 1048576 bytes", path);
    assert_string_equal(err, want);
    assert_null(ag_config_load(NULL, err, sizeof err));
    assert_null(ag_config_load(path, NULL, 0));
    unlink(path);

    snprintf(path, sizeof path, "%s/sub/proxy.conf", dir);
    unlink(path);
    rmdir(sub);
    rmdir(dir);
    free(real);
}

/* ---- refcount, reload helpers --------------------------------------------- */

static void test_ref_unref(void **state)
{
    (void)state;
    struct ag_config *c = ag_config_default();
    assert_ptr_equal(ag_config_ref(c), c);
    assert_int_equal(c->refs, 2);
    ag_config_unref(c);
    assert_int_equal(c->refs, 1);
    ag_config_unref(c); /* frees; ASan reports a leak or double free */
    ag_config_unref(NULL);
    assert_null(ag_config_ref(NULL));
}

static void test_fixed_changed(void **state)
{
    (void)state;
    char err[256];
    struct ag_config *a = ag_config_default();
    struct ag_config *b =
        parse("head_timeout 5s\nauth_schemes none\nuser_file /x", err, sizeof err);
    struct ag_config *l = parse("listen 127.0.0.1:3129", err, sizeof err);
    struct ag_config *t = parse("threadpool_size 3", err, sizeof err);
    struct ag_config *same = parse("listen 127.0.0.1:3128\nthreadpool_size 8", err, sizeof err);
    assert_non_null(b);
    assert_non_null(l);
    assert_non_null(t);
    assert_non_null(same);
    assert_null(ag_config_fixed_changed(a, b));
    assert_null(ag_config_fixed_changed(a, same));
    assert_string_equal(ag_config_fixed_changed(a, l), "listen");
    assert_string_equal(ag_config_fixed_changed(a, t), "threadpool_size");
    struct ag_config *wt = parse("winbind_threads 9", err, sizeof err);
    assert_non_null(wt);
    assert_string_equal(ag_config_fixed_changed(a, wt), "winbind_threads");
    ag_config_unref(wt);
    size_t n_fixed = 0;
    for (size_t i = 0; i < ag_config_option_count(); i++)
        n_fixed += !ag_config_option_reloadable(i);
    /* listen, workers, threadpool_size, {winbind,kerberos,local}_threads,
     * rcache_dir, status_socket{,_mode,_group}, metrics_listen */
    assert_int_equal(n_fixed, 11);
    struct ag_config *wk = parse("workers 2", err, sizeof err);
    assert_non_null(wk);
    assert_string_equal(ag_config_fixed_changed(a, wk), "workers");
    ag_config_unref(wk);
    /* 0 is not a loop count: auto says "one per CPU" */
    assert_null(parse("workers 0", err, sizeof err));
    assert_null(parse("workers 65", err, sizeof err));
    assert_false(ag_config_option_reloadable(ag_config_option_count()));
    ag_config_unref(a);
    ag_config_unref(b);
    ag_config_unref(l);
    ag_config_unref(t);
    ag_config_unref(same);
}

/* ---- the shipped sample --------------------------------------------------- */

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *buf = calloc(1, AG_CONFIG_MAX_BYTES + 1);
    assert_non_null(buf);
    size_t n = fread(buf, 1, AG_CONFIG_MAX_BYTES, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_sample_loads(void **state)
{
    (void)state;
    char err[512], want[PATH_MAX + 32];
    struct ag_config *c = ag_config_load(AG_SOURCE_DIR "/proxy.conf.sample", err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    char *root = realpath(AG_SOURCE_DIR, NULL);
    assert_non_null(root);
    assert_int_equal(c->n_listen, 1);
    assert_string_equal(c->listen[0].text, "127.0.0.1:3128");
    assert_int_equal(c->n_schemes, 3);
    assert_int_equal(c->schemes[0], AG_SCHEME_NEGOTIATE);
    assert_int_equal(c->schemes[1], AG_SCHEME_NTLM);
    assert_int_equal(c->schemes[2], AG_SCHEME_BASIC);
    assert_int_equal(c->basic_backend, AG_BACKEND_LOCAL);
    assert_int_equal(c->ntlm_backend, AG_BACKEND_LOCAL);
    snprintf(want, sizeof want, "%s/scripts/demo-users", root);
    assert_string_equal(c->user_file, want);
    assert_string_equal(c->access_log, "-");
    assert_string_equal(c->error_log, "-");
    assert_int_equal(c->head_timeout_ms, AG_HEAD_TIMEOUT_MS);
    assert_int_equal(c->header_max, AG_HEADER_MAX);
    snprintf(want, sizeof want, "%s/proxy.conf.sample", root);
    assert_string_equal(c->path, want);
    free(root);
    ag_config_unref(c);
}

/* Every option of the table appears in the sample, either set or as a
 * commented-out line "# name <default>" whose value is the real default: the
 * sample cannot drift from the table. */
static void test_sample_documents_every_option(void **state)
{
    (void)state;
    char *text = read_all(AG_SOURCE_DIR "/proxy.conf.sample");
    struct ag_config *d = ag_config_default();
    char *dd = dump_str(d);
    for (size_t i = 0; i < ag_config_option_count(); i++) {
        const char *name = ag_config_option_name(i);
        char def[4200], line[4300];
        assert_true(dump_value(dd, name, def, sizeof def));
        snprintf(line, sizeof line, "# %s %s", name, def);
        bool found = has_line(text, line);
        size_t n = strlen(name);
        /* or set for real */
        for (const char *p = text; !found && p && *p;) {
            if (strncmp(p, name, n) == 0 && p[n] == ' ')
                found = true;
            p = strchr(p, '\n');
            p = p ? p + 1 : NULL;
        }
        if (!found)
            fail_msg("proxy.conf.sample lacks '%s' (or a line '%s')", name, line);
    }
    free(dd);
    ag_config_unref(d);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_match_limits),
        cmocka_unit_test(test_all_defaults_config),
        cmocka_unit_test(test_dump_table_order),
        cmocka_unit_test(test_numeric_options),
        cmocka_unit_test(test_every_option_round_trips),
        cmocka_unit_test(test_full_config_fields),
        cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_realm_domain_lookup),
        cmocka_unit_test(test_man_reference),
        cmocka_unit_test(test_error_caps),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_listen_forms),
        cmocka_unit_test(test_listen_replaces_default),
        cmocka_unit_test(test_quoting_and_comments),
        cmocka_unit_test(test_auth_schemes),
        cmocka_unit_test(test_relative_paths),
        cmocka_unit_test(test_parent_basic_file),
        cmocka_unit_test(test_parent_tls_fields),
        cmocka_unit_test(test_pac_file),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_ref_unref),
        cmocka_unit_test(test_fixed_changed),
        cmocka_unit_test(test_sample_loads),
        cmocka_unit_test(test_sample_documents_every_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
