/* doctor.c - `authgate doctor -c FILE`: is this set-up going to work?
 *
 * One line per check, "OK", "WARN" or "FAIL", the check's name, what was
 * found and, when not OK, what to do about it. Runs in the foreground before
 * (instead of) the daemon, so blocking calls (GSS, winbind, DNS) are fine
 * here. Exit status: 0 nothing failed, 1 some check failed, 2 the file does
 * not parse or bad arguments. */
#include <arpa/inet.h>
#include <errno.h>
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
#include "ctl.h"

struct doc {
    FILE *out;
    int fails, warns;
};

static void line(struct doc *d, const char *verdict, const char *check, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void line(struct doc *d, const char *verdict, const char *check, const char *fmt, ...)
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

/* The proxy's name: what Kerberos clients ask a ticket for. */
static void check_host(struct doc *d, const struct ag_config *cfg, char *host, size_t cap)
{
    ag_config_proxy_host(cfg, host, cap);
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a6) == 1 || inet_pton(AF_INET6, host, &a6) == 1) {
        line(d, "FAIL", "proxy_host",
             "'%s' is an IP address: clients cannot get a Kerberos ticket for it -- set "
             "proxy_host to the DNS name clients use",
             host);
        return;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_flags = AI_CANONNAME;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        line(d, "WARN", "proxy_host",
             "'%s' does not resolve (%s) -- add it to DNS (an A record, not a CNAME)", host,
             gai_strerror(rc));
        return;
    }
    const char *canon = res->ai_canonname;
    if (canon && strcasecmp(canon, host) != 0 &&
        !(strncasecmp(canon, host, strlen(host)) == 0 && canon[strlen(host)] == '.')) {
        line(d, "WARN", "proxy_host",
             "'%s' is an alias of '%s': clients that canonicalize ask for HTTP/%s -- use the "
             "canonical name or give the keytab both names",
             host, canon, canon);
    } else if (!strchr(host, '.')) {
        line(d, "WARN", "proxy_host",
             "'%s' is not fully qualified -- set proxy_host to the FQDN clients use", host);
    } else {
        line(d, "OK", "proxy_host", "%s resolves", host);
    }
    freeaddrinfo(res);
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
    if (cfg->negotiate_acceptor && strcmp(cfg->negotiate_acceptor, "any") == 0)
        name[0] = '\0';
    else if (cfg->negotiate_acceptor)
        snprintf(name, sizeof name, "%s", cfg->negotiate_acceptor);
    else
        snprintf(name, sizeof name, "HTTP@%s", host);
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
    if (!ag_config_uses_backend(cfg, AG_BACKEND_WINBIND)) {
        line(d, "OK", "winbind", "no backend uses winbind");
        return;
    }
    if (ag_wb_ping_blocking() != 0) {
        line(d, "FAIL", "winbind",
             "winbindd does not answer -- start it (systemctl start winbind) and check the "
             "domain join (wbinfo -t)");
        return;
    }
    struct wbcInterfaceDetails *det = NULL;
    if (wbcInterfaceDetails(&det) == WBC_ERR_SUCCESS && det) {
        line(d, "OK", "winbind", "winbindd answers, domain %s (%s)",
             det->netbios_domain ? det->netbios_domain : "?",
             det->dns_domain ? det->dns_domain : "no DNS domain");
        wbcFreeMemory(det);
    } else {
        line(d, "OK", "winbind", "winbindd answers");
    }
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
    check_host(&d, cfg, host, sizeof host);
    check_keytab(&d, cfg, host);
    check_winbind(&d, cfg);
    check_userfile(&d, cfg);
    check_listeners(&d, cfg);
    check_status_socket(&d, cfg);
    check_parents(&d, cfg);
    if (cfg->rcache_dir)
        check_dir_writable(&d, "rcache_dir", cfg->rcache_dir, false);
    fprintf(d.out, "%d failed, %d warnings\n", d.fails, d.warns);
    ag_config_unref(cfg);
    return d.fails ? 1 : 0;
}
