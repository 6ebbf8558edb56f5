/* doctor.c - `authgate doctor -c FILE`: is this set-up going to work?
 *
 * One line per check, "OK", "WARN" or "FAIL", the check's name, what was
 * found and, when not OK, what to do about it ("INFO" lines are advice, the
 * browser policies to roll out). Runs in the foreground before (instead of)
 * the daemon, so blocking calls are fine here; those that do network I/O
 * (DNS, the KDC, winbindd and its domain controller) run in a child process
 * with a deadline (run_bounded), so a dead peer costs AG_DOCTOR_CHECK_TIMEOUT_MS
 * and a FAIL line, never a hang. Exit status: 0 nothing failed, 1 some check
 * failed, 2 the file does not parse or bad arguments. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdbool.h>
#include <limits.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <wbclient.h>

#include "auth/negotiate.h"
#include "auth/userfile.h"
#include "auth/verify_winbind.h"
#include "authgate/limits.h"
#include "ctl.h"
#include "doctor.h"
#include "util/util.h"

#define line doctor_line

void doctor_line(struct doc *d, const char *verdict, const char *check, const char *fmt, ...)
{
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* One line per check, whatever the messages of libraries hold. */
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    fprintf(d->out, "%-4s %s: %s\n", verdict, check, msg);
    if (strcmp(verdict, "FAIL") == 0)
        d->fails++;
    else if (strcmp(verdict, "WARN") == 0)
        d->warns++;
}

/* Whether addr is one of this machine's (any interface, loopback too). */
static bool is_local_addr(const struct sockaddr *sa)
{
    struct ifaddrs *ifs = NULL, *i;
    bool found = false;
    if (getifaddrs(&ifs) != 0)
        return false;
    for (i = ifs; i && !found; i = i->ifa_next) {
        const struct sockaddr *ia = i->ifa_addr;
        if (!ia || ia->sa_family != sa->sa_family)
            continue;
        if (sa->sa_family == AF_INET)
            found = memcmp(&((const struct sockaddr_in *)ia)->sin_addr,
                           &((const struct sockaddr_in *)sa)->sin_addr, 4) == 0;
        else if (sa->sa_family == AF_INET6)
            found = memcmp(&((const struct sockaddr_in6 *)ia)->sin6_addr,
                           &((const struct sockaddr_in6 *)sa)->sin6_addr, 16) == 0;
    }
    freeifaddrs(ifs);
    return found;
}

/* The proxy's name, no DNS: an IP address gets no Kerberos ticket. */
static bool host_is_name(struct doc *d, const struct ag_config *cfg, char *host, size_t cap)
{
    ag_config_proxy_host(cfg, host, cap);
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a6) == 1 || inet_pton(AF_INET6, host, &a6) == 1) {
        line(d, "FAIL", "proxy_host",
             "'%s' is an IP address: clients cannot get a Kerberos ticket for it -- set "
             "proxy_host to the DNS name clients use",
             host);
        return false;
    }
    return true;
}

/* The proxy's name in DNS (bounded: resolvers can hang). Browsers ask for
 * HTTP/<name> after canonicalizing it: a CNAME makes them ask for the
 * target's SPN (Chrome, Firefox, Windows), a PTR that names another host
 * does the same for MIT clients with rdns = true (its default); the name
 * must also lead to this machine, or to its load balancer. */
static void check_dns(struct doc *d, const struct ag_config *cfg, const char *host)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_flags = AI_CANONNAME;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        line(d, "FAIL", "proxy_host",
             "'%s' does not resolve (%s): browsers cannot find the proxy by the name its "
             "tickets are for -- add an A (or AAAA) record, not a CNAME",
             host, gai_strerror(rc));
        return;
    }
    const char *canon = res->ai_canonname;
    bool bad = false;
    if (canon && strcasecmp(canon, host) != 0 &&
        !(strncasecmp(canon, host, strlen(host)) == 0 && canon[strlen(host)] == '.')) {
        line(d, "FAIL", "proxy_host",
             "'%s' is an alias (CNAME) of '%s': browsers canonicalize it and ask for "
             "HTTP/%s, which the keytab does not serve -- make '%s' an A record, or set "
             "proxy_host to '%s' and export that SPN",
             host, canon, canon, host, canon);
        bad = true;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        char num[INET6_ADDRSTRLEN + 1] = "?", rev[NI_MAXHOST];
        getnameinfo(ai->ai_addr, ai->ai_addrlen, num, sizeof num, NULL, 0, NI_NUMERICHOST);
        if (ai != res && ai->ai_family == res->ai_family && ai->ai_addrlen == res->ai_addrlen &&
            memcmp(ai->ai_addr, res->ai_addr, ai->ai_addrlen) == 0)
            continue;
        if (!is_local_addr(ai->ai_addr)) {
            line(d, "WARN", "proxy_host",
                 "'%s' resolves to %s, not an address of this machine -- fix the A record, "
                 "unless %s is the load balancer in front of this gateway",
                 host, num, num);
            bad = true;
        }
        int r = getnameinfo(ai->ai_addr, ai->ai_addrlen, rev, sizeof rev, NULL, 0, NI_NAMEREQD);
        if (r == 0 && strcasecmp(rev, host) != 0 &&
            !(strncasecmp(rev, host, strlen(host)) == 0 && rev[strlen(host)] == '.')) {
            line(d, "WARN", "proxy_host",
                 "the reverse lookup of %s gives '%s', not '%s': clients with rdns = true (MIT's "
                 "default) ask for HTTP/%s -- fix the PTR record",
                 num, rev, host, rev);
            bad = true;
        }
    }
    freeaddrinfo(res);
    if (bad)
        return;
    if (!strchr(host, '.'))
        line(d, "WARN", "proxy_host",
             "'%s' is not fully qualified -- set proxy_host to the FQDN clients use", host);
    else
        line(d, "OK", "proxy_host", "%s resolves forward and back to this machine", host);
    (void)cfg;
}

/* Runs fn in a child process with AG_DOCTOR_CHECK_TIMEOUT_MS: its lines are
 * copied here (and counted); a child that does not finish is killed and
 * the check fails with the remedy given. */
static void run_bounded(struct doc *d, const char *check, const char *remedy,
                        void (*fn)(struct doc *, const struct ag_config *, const char *),
                        const struct ag_config *cfg, const char *host)
{
    int p[2];
    fflush(d->out);
    if (pipe2(p, O_CLOEXEC) != 0) {
        line(d, "FAIL", check, "pipe: %s", strerror(errno));
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        line(d, "FAIL", check, "fork: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        close(p[0]);
        FILE *f = fdopen(p[1], "w");
        if (!f)
            _exit(1);
        struct doc cd = {f, 0, 0};
        fn(&cd, cfg, host);
        fclose(f);
        _exit(0);
    }
    close(p[1]);
    struct ag_buf out;
    ag_buf_init(&out, AG_DOCTOR_OUTPUT_MAX);
    uint64_t deadline = ag_now_ms() + AG_DOCTOR_CHECK_TIMEOUT_MS;
    bool timed_out = false;
    for (;;) {
        uint64_t now = ag_now_ms();
        if (now >= deadline) {
            timed_out = true;
            break;
        }
        struct pollfd pf = {p[0], POLLIN, 0};
        int n = poll(&pf, 1, (int)(deadline - now));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            timed_out = n == 0;
            break;
        }
        char buf[4096];
        ssize_t r = read(p[0], buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        ag_buf_append(&out, buf, (size_t)r); /* past the cap: cut */
    }
    close(p[0]);
    if (timed_out)
        kill(pid, SIGKILL);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    /* The child's lines, counted as if printed here. */
    for (size_t o = 0; o < out.len;) {
        const char *nl = memchr(out.data + o, '\n', out.len - o);
        size_t n = nl ? (size_t)(nl - (out.data + o)) + 1 : out.len - o;
        fwrite(out.data + o, 1, n, d->out);
        if (!nl)
            fputc('\n', d->out);
        if (n >= 4 && memcmp(out.data + o, "FAIL", 4) == 0)
            d->fails++;
        else if (n >= 4 && memcmp(out.data + o, "WARN", 4) == 0)
            d->warns++;
        o += n;
    }
    ag_buf_free(&out);
    if (timed_out)
        line(d, "FAIL", check, "no answer within %d s -- %s", AG_DOCTOR_CHECK_TIMEOUT_MS / 1000,
             remedy);
    else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        line(d, "FAIL", check, "the check itself crashed (status %d) -- report a bug", st);
}

static void check_keytab(struct doc *d, const struct ag_config *cfg, const char *host)
{
    if (!ag_config_scheme_enabled(cfg, AG_SCHEME_NEGOTIATE)) {
        line(d, "OK", "keytab", "negotiate is not in auth_schemes");
        return;
    }
    const char *kt = cfg->keytab ? cfg->keytab : getenv("KRB5_KTNAME");
    if (kt && strncmp(kt, "FILE:", 5) == 0)
        kt += 5;
    if (!kt)
        kt = "/etc/krb5.keytab";
    if (access(kt, R_OK) != 0) {
        line(d, "FAIL", "keytab",
             "%s is not readable (%s): Negotiate will not be offered -- export the "
             "HTTP/%s key (ktpass, or net ads keytab add HTTP) and let the daemon's user read it",
             kt, strerror(errno), host);
        return;
    }
    char name[300], err[700];
    ag_config_acceptor_name(cfg, name, sizeof name);
    struct ag_gss_acceptor *a = ag_gss_acceptor_new(cfg->keytab, name, err, sizeof err);
    if (!a) {
        line(d, "FAIL", "keytab", "%s: %s -- add a key for %s to the keytab", kt, err,
             name[0] ? name : "the acceptor");
        return;
    }
    line(d, "OK", "keytab", "%s holds keys for %s", kt, ag_gss_acceptor_name(a));
    ag_gss_acceptor_unref(a);
}

static void check_winbind(struct doc *d, const struct ag_config *cfg)
{
    if (ag_wb_ping_blocking() != 0) {
        line(d, "FAIL", "winbind",
             "winbindd does not answer -- start it (systemctl start winbind) and check the "
             "domain join (wbinfo -t)");
        return;
    }
    struct wbcInterfaceDetails *det = NULL;
    if (wbcInterfaceDetails(&det) != WBC_ERR_SUCCESS || !det || !det->netbios_domain) {
        line(d, "OK", "winbind", "winbindd answers");
        wbcFreeMemory(det);
        return;
    }
    line(d, "OK", "winbind", "winbindd answers, domain %s (%s)", det->netbios_domain,
         det->dns_domain && det->dns_domain[0] ? det->dns_domain : "no DNS domain");
    /* winbindd answering is not the domain answering: NTLM and Basic need
     * a domain controller and a valid machine trust (the machine account's
     * password as the DC knows it). */
    struct wbcAuthErrorInfo *err = NULL;
    wbcErr rc = wbcPingDc(det->netbios_domain, &err);
    if (rc != WBC_ERR_SUCCESS)
        line(d, "FAIL", "domain_controller",
             "winbindd reaches no domain controller of %s (%s%s%s): every NTLM and Basic "
             "login fails -- check DNS (the _ldap._tcp.dc._msdcs SRV records), the network to "
             "the DCs, and wbinfo --ping-dc",
             det->netbios_domain, wbcErrorString(rc), err ? ", " : "",
             err && err->nt_string ? err->nt_string : "");
    else
        line(d, "OK", "domain_controller", "a domain controller of %s answers",
             det->netbios_domain);
    wbcFreeMemory(err);
    err = NULL;
    rc = wbcCheckTrustCredentials(det->netbios_domain, &err);
    if (rc != WBC_ERR_SUCCESS)
        line(d, "FAIL", "machine_trust",
             "the machine trust with %s is not valid (%s%s%s): the DC refuses this machine's "
             "logons on behalf of users -- rejoin (net ads join -U admin) or reset the "
             "machine password (net ads changetrustpw), then wbinfo -t",
             det->netbios_domain, wbcErrorString(rc), err ? ", " : "",
             err && err->nt_string ? err->nt_string : "");
    else
        line(d, "OK", "machine_trust", "the machine account's trust with %s is valid",
             det->netbios_domain);
    wbcFreeMemory(err);
    wbcFreeMemory(det);
}

/* winbind, bounded: winbindd or its DC may hang. */
static void winbind_bounded(struct doc *d, const struct ag_config *cfg, const char *host)
{
    (void)host;
    check_winbind(d, cfg);
}

static void dns_and_kerberos(struct doc *d, const struct ag_config *cfg, const char *host)
{
    check_dns(d, cfg, host);
    doctor_kerberos(d, cfg, host);
}

/* What browsers need to sign on to this proxy without a prompt: the policy
 * lines for the configured name (advice, not a check). */
static void print_browser_policies(struct doc *d, const struct ag_config *cfg, const char *host)
{
    if (!ag_config_scheme_enabled(cfg, AG_SCHEME_NEGOTIATE) &&
        !ag_config_scheme_enabled(cfg, AG_SCHEME_NTLM))
        return;
    line(d, "INFO", "browser",
         "Chrome/Edge: policy AuthServerAllowlist = \"%s\" (Windows GPO: "
         "HKLM\\SOFTWARE\\Policies\\Google\\Chrome and ...\\Microsoft\\Edge; Linux: "
         "/etc/opt/chrome/policies/managed/authgate.json {\"AuthServerAllowlist\": \"%s\"}); "
         "on Windows the proxy must also be in the Local intranet zone",
         host, host);
    line(d, "INFO", "browser",
         "Firefox: about:config network.negotiate-auth.trusted-uris = %s and "
         "network.automatic-ntlm-auth.trusted-uris = %s, or policies.json {\"policies\": "
         "{\"Authentication\": {\"SPNEGO\": [\"%s\"], \"NTLM\": [\"%s\"], "
         "\"AllowProxies\": {\"SPNEGO\": true, \"NTLM\": true}}}}",
         host, host, host, host);
    line(d, "INFO", "browser",
         "proxy setting (PAC, WPAD or GPO): PROXY %s:PORT -- the name, never an IP address, "
         "or no Kerberos ticket is asked for",
         host);
}

static void check_userfile(struct doc *d, const struct ag_config *cfg)
{
    if (!ag_config_uses_backend(cfg, AG_BACKEND_LOCAL))
        return;
    if (!cfg->user_file) {
        line(d, "FAIL", "user_file",
             "a backend is local but user_file is none -- set user_file or use winbind");
        return;
    }
    char err[600];
    struct ag_userfile *uf = ag_userfile_load(cfg->user_file, err, sizeof err);
    if (!uf) {
        line(d, "FAIL", "user_file", "%s -- fix the file (authgate passwd FILE USER)", err);
        return;
    }
    line(d, "OK", "user_file", "%s: %zu users", cfg->user_file, ag_userfile_count(uf));
    ag_userfile_free(uf);
}

static void check_listeners(struct doc *d, const struct ag_config *cfg)
{
    for (size_t i = 0; i < cfg->n_listen; i++) {
        const struct sockaddr *sa = (const struct sockaddr *)&cfg->listen[i].addr;
        int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1, rc = -1, e = 0;
        if (fd >= 0) {
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            rc = bind(fd, sa,
                      sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                : sizeof(struct sockaddr_in));
            e = errno;
            close(fd);
        } else {
            e = errno;
        }
        if (rc == 0)
            line(d, "OK", "listen", "%s is free", cfg->listen[i].text);
        else if (e == EADDRINUSE)
            line(d, "WARN", "listen", "%s is in use -- is authgate (or another proxy) running?",
                 cfg->listen[i].text);
        else if (e == EACCES)
            line(d, "FAIL", "listen",
                 "%s: permission denied -- ports below 1024 need CAP_NET_BIND_SERVICE",
                 cfg->listen[i].text);
        else
            line(d, "FAIL", "listen", "%s: %s -- use an address of this machine",
                 cfg->listen[i].text, strerror(e));
    }
}

/* A TCP connection to host:port within ms: 0, or an errno. */
static int tcp_probe(const char *host, uint16_t port, int ms)
{
    char ps[8];
    snprintf(ps, sizeof ps, "%u", (unsigned)port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, ps, &hints, &res) != 0 || !res)
        return EHOSTUNREACH;
    int e = ECONNREFUSED;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            e = 0;
        } else if (errno == EINPROGRESS) {
            struct pollfd pf = {fd, POLLOUT, 0};
            socklen_t sl = sizeof e;
            if (poll(&pf, 1, ms) != 1)
                e = ETIMEDOUT;
            else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) != 0)
                e = errno;
        } else {
            e = errno;
        }
        close(fd);
        if (e == 0)
            break;
    }
    freeaddrinfo(res);
    return e;
}

/* Each parent answers a TCP connection (its credentials were checked when
 * the file parsed); the PAC file was read then too. */
static void check_parents(struct doc *d, const struct ag_config *cfg)
{
    for (size_t i = 0; i < cfg->n_parents; i++) {
        const struct ag_parent *p = &cfg->parents[i];
        int e = tcp_probe(p->host, p->port, 3000);
        if (e == 0)
            line(d, "OK", "parent", "%s %s:%u accepts connections", p->name, p->host,
                 (unsigned)p->port);
        else
            line(d, "FAIL", "parent",
                 "%s %s:%u: %s -- routes through it will skip it (502 when it is the last)",
                 p->name, p->host, (unsigned)p->port, strerror(e));
    }
    if (cfg->pac_body)
        line(d, "OK", "pac_file", "%s: %zu bytes, served as /proxy.pac and /wpad.dat",
             cfg->pac_file, cfg->pac_len);
}

static void check_dir_writable(struct doc *d, const char *check, const char *path, bool parent)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    if (parent) {
        char *slash = strrchr(dir, '/');
        if (slash == dir)
            slash[1] = '\0';
        else if (slash)
            *slash = '\0';
        else
            snprintf(dir, sizeof dir, ".");
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        line(d, "FAIL", check,
             "directory %s does not exist -- create it (systemd: "
             "RuntimeDirectory=authgate)",
             dir);
        return;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        line(d, "FAIL", check,
             "directory %s is not writable -- give the daemon's user write "
             "access",
             dir);
        return;
    }
    line(d, "OK", check, "%s can be created", path);
}

static void check_status_socket(struct doc *d, const struct ag_config *cfg)
{
    if (!cfg->status_socket) {
        line(d, "OK", "status_socket", "off (authgatectl cannot reach the daemon)");
        return;
    }
    if (strlen(cfg->status_socket) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        line(d, "FAIL", "status_socket", "path longer than %zu bytes -- use a shorter path",
             sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
        return;
    }
    check_dir_writable(d, "status_socket", cfg->status_socket, true);
}

int ag_doctor_main(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            path = argv[++i];
        else {
            fprintf(stderr, "usage: authgate doctor -c FILE\n");
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "usage: authgate doctor -c FILE\n");
        return 2;
    }
    struct doc d = {stdout, 0, 0};
    char err[600];
    struct ag_config *cfg = ag_config_load(path, err, sizeof err);
    if (!cfg) {
        line(&d, "FAIL", "config", "%s", err);
        return 2;
    }
    line(&d, "OK", "config", "%s parses", cfg->path);
    if (cfg->rcache_dir)
        setenv("KRB5RCACHEDIR", cfg->rcache_dir, 1);
    char host[256];
    bool named = host_is_name(&d, cfg, host, sizeof host);
    check_keytab(&d, cfg, host);
    if (named)
        run_bounded(&d, "kdc",
                    "DNS or a KDC does not answer: check /etc/resolv.conf, the kdc lines of "
                    "krb5.conf and the network to port 88",
                    dns_and_kerberos, cfg, host);
    if (ag_config_uses_backend(cfg, AG_BACKEND_WINBIND))
        run_bounded(&d, "winbind",
                    "winbindd or its domain controller hangs: systemctl restart winbind, then "
                    "wbinfo --ping-dc",
                    winbind_bounded, cfg, host);
    else
        line(&d, "OK", "winbind", "no backend uses winbind");
    check_userfile(&d, cfg);
    check_listeners(&d, cfg);
    check_status_socket(&d, cfg);
    check_parents(&d, cfg);
    if (cfg->rcache_dir)
        check_dir_writable(&d, "rcache_dir", cfg->rcache_dir, false);
    if (named)
        print_browser_policies(&d, cfg, host);
    fprintf(d.out, "%d failed, %d warnings\n", d.fails, d.warns);
    ag_config_unref(cfg);
    return d.fails ? 1 : 0;
}
