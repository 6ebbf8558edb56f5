/* files.c - the PAC file and the parents' credentials (see files.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "authgate/err.h"
#include "files.h"
#include "util/util.h"

static bool name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '-' || ch == '.';
}

/* "host:port", "[v6]:port": the host is kept without brackets. */
static int parse_hostport(const char *v, struct ag_parent *p)
{
    const char *colon, *hs = v;
    size_t hl;
    if (v[0] == '[') {
        const char *rb = strchr(v, ']');
        if (!rb || rb[1] != ':')
            return AG_EINVAL;
        hs = v + 1;
        hl = (size_t)(rb - hs);
        colon = rb + 1;
    } else {
        colon = strrchr(v, ':');
        if (!colon)
            return AG_EINVAL;
        hl = (size_t)(colon - v);
        if (memchr(v, ':', hl))
            return AG_EINVAL; /* a bare IPv6 address needs brackets */
    }
    uint64_t port;
    if (hl == 0 || hl > AG_HOST_MAX ||
        ag_parse_dec(colon + 1, strlen(colon + 1), 65535, &port) != 0 || port == 0)
        return AG_EINVAL;
    for (size_t i = 0; i < hl; i++)
        if (!name_char(hs[i]) && hs[i] != ':')
            return AG_EINVAL;
    memcpy(p->host, hs, hl);
    p->host[hl] = '\0';
    p->port = (uint16_t)port;
    return 0;
}

static char *resolve(const char *basedir, const char *v)
{
    if (v[0] == '/' || !basedir)
        return strdup(v);
    size_t bl = strlen(basedir), vl = strlen(v);
    if (bl + vl + 2 > PATH_MAX)
        return NULL;
    size_t sep = bl && basedir[bl - 1] == '/' ? 0 : 1;
    char *s = malloc(bl + sep + vl + 1);
    if (s) {
        memcpy(s, basedir, bl);
        s[bl] = '/';
        memcpy(s + bl + sep, v, vl + 1);
    }
    return s;
}

int ag_cfg_parent_parse(char **argv, size_t argc, const char *basedir, struct ag_parent *out,
                        char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    if (argc < 2) {
        snprintf(why, whylen, "needs a name and HOST:PORT");
        return AG_EINVAL;
    }
    size_t nl = strlen(argv[0]);
    bool ok = nl > 0 && nl < sizeof out->name && strcmp(argv[0], "direct") != 0;
    for (size_t i = 0; ok && i < nl; i++)
        ok = name_char(argv[0][i]);
    if (!ok) {
        snprintf(why, whylen, "name must be 1-63 of [A-Za-z0-9_.-] and not 'direct'");
        return AG_EINVAL;
    }
    memcpy(out->name, argv[0], nl + 1);
    if (parse_hostport(argv[1], out) != 0) {
        snprintf(why, whylen, "'%.64s' is not HOST:PORT", argv[1]);
        return AG_EINVAL;
    }
    for (size_t i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (out->auth == AG_PARENT_AUTH_NONE && strncmp(a, "auth=basic:", 11) == 0 && a[11]) {
            out->auth = AG_PARENT_AUTH_BASIC;
            if (!(out->cred_file = resolve(basedir, a + 11))) {
                snprintf(why, whylen, "credentials path too long");
                return AG_EINVAL;
            }
        } else if (out->auth == AG_PARENT_AUTH_NONE && strncmp(a, "auth=negotiate:", 15) == 0 &&
                   a[15]) {
            out->auth = AG_PARENT_AUTH_NEGOTIATE;
            if (!(out->principal = strdup(a + 15))) {
                snprintf(why, whylen, "out of memory");
                return AG_EINVAL;
            }
        } else if (strcmp(a, "tls") == 0 && !out->tls) {
            out->tls = true;
        } else if (strncmp(a, "ca=", 3) == 0 && a[3] && !out->tls_ca) {
            if (!(out->tls_ca = resolve(basedir, a + 3))) {
                snprintf(why, whylen, "ca= path too long");
                return AG_EINVAL;
            }
        } else {
            snprintf(why, whylen,
                     "'%.64s' is not auth=basic:FILE, auth=negotiate:PRINCIPAL, tls or ca=FILE "
                     "(each at most once)",
                     a);
            return AG_EINVAL;
        }
    }
    if (out->tls_ca && !out->tls) {
        /* A CA for a parent spoken to in clear would verify nothing. */
        snprintf(why, whylen, "ca= needs tls");
        return AG_EINVAL;
    }
    return 0;
}

/* Opens a regular file for reading; fills st. -1 with why set. */
static int open_regular(const char *path, struct stat *st, char *why, size_t whylen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        snprintf(why, whylen, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads exactly len bytes (the size fstat gave) into a new buffer. */
static char *read_all(int fd, size_t len, const char *path, char *why, size_t whylen)
{
    char *b = malloc(len + 1);
    size_t n = 0;
    if (!b) {
        snprintf(why, whylen, "%s: out of memory", path);
        return NULL;
    }
    while (n < len) {
        ssize_t r = read(fd, b + n, len - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(why, whylen, "%s: %s", path, r < 0 ? strerror(errno) : "changed while read");
            ag_wipe(b, len + 1);
            free(b);
            return NULL;
        }
        n += (size_t)r;
    }
    b[len] = '\0';
    return b;
}

/* The gateway's own password for a parent: the file must be readable by
 * the gateway alone, as a keytab would be (Squid's cache_peer login= puts
 * it in squid.conf; a separate 0600 file keeps it out of config dumps,
 * backups of the config and "authgate -t -v"). */
static int load_basic(struct ag_parent *p, char *why, size_t whylen)
{
    struct stat st;
    int fd = open_regular(p->cred_file, &st, why, whylen);
    if (fd < 0)
        return AG_EINVAL;
    int rc = AG_EINVAL;
    char *text = NULL;
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        snprintf(why, whylen,
                 "%s: readable by group or others (mode %04o); the parent's password must be "
                 "readable by the gateway alone (chmod 600)",
                 p->cred_file, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    if (st.st_size <= 0 || st.st_size > AG_PARENT_CRED_MAX) {
        snprintf(why, whylen, "%s: must hold one user:password line (1 to %d bytes)", p->cred_file,
                 AG_PARENT_CRED_MAX);
        goto out;
    }
    size_t len = (size_t)st.st_size;
    if (!(text = read_all(fd, len, p->cred_file, why, whylen)))
        goto out;
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';
    const char *colon = memchr(text, ':', len);
    if (!colon || colon == text || memchr(text, '\n', len) || memchr(text, '\0', len)) {
        snprintf(why, whylen, "%s: must hold one user:password line", p->cred_file);
        goto out;
    }
    if (!(p->basic_field =
              ag_b64_field("Proxy-Authorization: Basic ", (const uint8_t *)text, len))) {
        snprintf(why, whylen, "%s: out of memory", p->cred_file);
        goto out;
    }
    rc = 0;
out:
    if (text) {
        ag_wipe(text, (size_t)st.st_size);
        free(text);
    }
    close(fd);
    return rc;
}

static int load_pac(struct ag_config *c, char *why, size_t whylen)
{
    struct stat st;
    int fd = open_regular(c->pac_file, &st, why, whylen);
    if (fd < 0)
        return AG_EINVAL;
    int rc = AG_EINVAL;
    if (st.st_size == 0) {
        snprintf(why, whylen, "%s: pac_file is empty", c->pac_file);
        goto out;
    }
    if (st.st_size > AG_PAC_MAX) {
        snprintf(why, whylen, "%s: pac_file larger than %d bytes", c->pac_file, AG_PAC_MAX);
        goto out;
    }
    c->pac_len = (size_t)st.st_size;
    if (!(c->pac_body = read_all(fd, c->pac_len, c->pac_file, why, whylen)))
        goto out;
    /* A strong validator of the content (FNV-1a, 64 bits, and the length):
     * equal files give equal tags across gateways behind one balancer,
     * which an inode or mtime would not. Not a security property. */
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < c->pac_len; i++) {
        h ^= (unsigned char)c->pac_body[i];
        h *= 1099511628211ULL;
    }
    snprintf(c->pac_etag, sizeof c->pac_etag, "\"%zx-%016llx\"", c->pac_len, (unsigned long long)h);
    c->pac_mtime = (int64_t)st.st_mtime;
    struct tm tm;
    time_t t = st.st_mtime;
    gmtime_r(&t, &tm);
    strftime(c->pac_last_modified, sizeof c->pac_last_modified, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    rc = 0;
out:
    close(fd);
    return rc;
}

int ag_cfg_files_load(struct ag_config *c, char *why, size_t whylen)
{
    for (size_t i = 0; i < c->n_parents; i++)
        if (c->parents[i].auth == AG_PARENT_AUTH_BASIC &&
            load_basic(&c->parents[i], why, whylen) != 0)
            return AG_EINVAL;
    if (c->pac_file && load_pac(c, why, whylen) != 0)
        return AG_EINVAL;
    return 0;
}

void ag_cfg_files_free(struct ag_config *c)
{
    for (size_t i = 0; i < c->n_parents; i++) {
        struct ag_parent *p = &c->parents[i];
        if (p->basic_field) {
            ag_wipe(p->basic_field, strlen(p->basic_field));
            free(p->basic_field);
        }
        free(p->cred_file);
        free(p->principal);
        free(p->tls_ca);
        p->basic_field = p->cred_file = p->principal = p->tls_ca = NULL;
    }
    free(c->pac_body);
    c->pac_body = NULL;
}
