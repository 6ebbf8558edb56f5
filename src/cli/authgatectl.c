/* authgatectl.c - the operator's client of authgate's status socket.
 *
 * authgatectl [-s SOCKET] [-j|--json] [-T SECONDS] COMMAND [ARG...]
 * authgatectl --help | --version
 *
 * Sends one command line, reads the reply up to its status line (see
 * authgate/ctl_proto.h, the only thing shared with the daemon) and shows it
 * as a table for humans or as JSON for scripts. Exit codes are those of enum
 * ag_ctl_exit, so scripts can tell "daemon down" from "access denied" from
 * "the command failed". */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "authgate/ctl_proto.h"
#include "cli.h"

/* A reply larger than this is not from authgate (its own cap, AG_CTL_REPLY_MAX, is lower). */
#define REPLY_MAX (64u * 1024 * 1024)
#define MAX_RECORDS 200000
#define MAX_PAIRS 24

static const char *prog = "authgatectl";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s [-s SOCKET] [-j|--json] [-T SECONDS] COMMAND [ARG...]\n"
            "       %s --help | --version\n"
            "\n"
            "commands:\n"
            "  status                          version, uptime, connections, backend health\n"
            "  sessions [user=U] [addr=IP] [scheme=S] [state=S]\n"
            "                                  one line per client connection\n"
            "  stats                           counters since start, latency histograms\n"
            "  metrics                         the same in Prometheus text format\n"
            "  kick id=N | user=U | addr=IP    close those client connections\n"
            "  reload                          re-read the configuration (like SIGHUP)\n"
            "  loglevel [error|warn|info|debug] show or set the error log level\n"
            "  trace addr=IP [seconds=N] | off  log every auth decision of one client\n"
            "  help                            the daemon's command list\n"
            "  top [--iterations N]            live view, refreshed every second (q quits);\n"
            "                                  plain snapshots when stdout is not a terminal\n"
            "\n"
            "  -s SOCKET  status socket (default $AUTHGATE_SOCKET or %s)\n"
            "  -j, --json JSON output for scripts\n"
            "  -T SECONDS give up after this long (default 15)\n"
            "  -V, --version  print the version and exit\n"
            "  -h, --help     print this help and exit\n"
            "\n"
            "exit status: 0 ok, 1 the command failed, 2 usage, 3 daemon not running,\n"
            "4 access denied. See authgatectl(8).\n",
            prog, prog, AG_CTL_DEFAULT_SOCKET);
}

struct pair {
    char *key, *val;
};

struct record {
    struct pair p[MAX_PAIRS];
    int n;
};

/* Splits a record line in place into key=value pairs (values decoded). */
static int parse_record(char *line, struct record *r)
{
    r->n = 0;
    char *save = NULL;
    for (char *w = strtok_r(line, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(w, '=');
        if (!eq || r->n == MAX_PAIRS)
            return -1;
        *eq = '\0';
        r->p[r->n].key = w;
        r->p[r->n].val = eq + 1;
        ag_ctl_decode(eq + 1);
        r->n++;
    }
    return 0;
}

static bool is_number(const char *s)
{
    if (!*s || strlen(s) > 19)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static void json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void json_value(const char *s)
{
    if (is_number(s))
        fputs(s, stdout);
    else
        json_string(s);
}

/* The name of the array of multi-pair records in JSON output. */
static const char *rows_name(const char *cmd)
{
    if (strcmp(cmd, "sessions") == 0)
        return "sessions";
    if (strcmp(cmd, "stats") == 0)
        return "histograms";
    if (strcmp(cmd, "kick") == 0)
        return "kicked_connections";
    if (strcmp(cmd, "help") == 0)
        return "commands";
    if (strcmp(cmd, "status") == 0)
        return "workers_detail"; /* one row per event loop (workers N > 1) */
    return "rows";
}

/* One multi-pair record as a JSON object on a line of its own. */
static void json_row(const struct record *r)
{
    printf("\n    {");
    for (int k = 0; k < r->n; k++) {
        printf("%s", k ? ", " : "");
        json_string(r->p[k].key);
        printf(": ");
        json_value(r->p[k].val);
    }
    printf("}");
}

/* A row of "status" describing a parent proxy (its first key is "parent"). */
static bool is_parent_row(const struct record *r)
{
    return r->n > 1 && strcmp(r->p[0].key, "parent") == 0;
}

static void show_json(const char *cmd, struct record *recs, size_t n)
{
    bool first = true, rows = false;
    printf("{");
    for (size_t i = 0; i < n; i++) {
        if (recs[i].n != 1) {
            rows = rows || !is_parent_row(&recs[i]);
            continue;
        }
        printf("%s\n  ", first ? "" : ",");
        json_string(recs[i].p[0].key);
        printf(": ");
        json_value(recs[i].p[0].val);
        first = false;
    }
    /* sessions always has its array, even empty: scripts index it. */
    if (rows || strcmp(cmd, "sessions") == 0) {
        printf("%s\n  ", first ? "" : ",");
        json_string(rows_name(cmd));
        printf(": [");
        bool rfirst = true;
        for (size_t i = 0; i < n; i++) {
            if (recs[i].n == 1 || is_parent_row(&recs[i]))
                continue;
            printf("%s", rfirst ? "" : ",");
            json_row(&recs[i]);
            rfirst = false;
        }
        printf("%s]", rfirst ? "" : "\n  ");
        first = false;
    }
    /* status: the parents' rows have an array of their own. */
    bool pfirst = true;
    for (size_t i = 0; i < n; i++) {
        if (!is_parent_row(&recs[i]))
            continue;
        printf("%s", pfirst ? ",\n  \"parents\": [" : ",");
        json_row(&recs[i]);
        pfirst = false;
    }
    if (!pfirst)
        printf("\n  ]");
    printf("%s}\n", first ? "" : "\n");
}

static void show_table(struct record *recs, size_t n)
{
    size_t kw = 0;
    for (size_t i = 0; i < n; i++)
        if (recs[i].n == 1 && strlen(recs[i].p[0].key) > kw)
            kw = strlen(recs[i].p[0].key);
    for (size_t i = 0; i < n; i++)
        if (recs[i].n == 1)
            printf("%-*s  %s\n", (int)kw, recs[i].p[0].key,
                   recs[i].p[0].val[0] ? recs[i].p[0].val : "-");
    /* Multi-pair records: one table per run of records with the same keys. */
    size_t i = 0;
    bool printed = false;
    while (i < n) {
        if (recs[i].n == 1) {
            i++;
            continue;
        }
        size_t j = i + 1;
        while (j < n && recs[j].n == recs[i].n) {
            bool same = true;
            for (int k = 0; k < recs[i].n && same; k++)
                same = strcmp(recs[j].p[k].key, recs[i].p[k].key) == 0;
            if (!same)
                break;
            j++;
        }
        size_t w[MAX_PAIRS];
        for (int k = 0; k < recs[i].n; k++) {
            w[k] = strlen(recs[i].p[k].key);
            for (size_t r = i; r < j; r++) {
                size_t l = strlen(recs[r].p[k].val);
                if (l > w[k])
                    w[k] = l;
            }
        }
        if (printed || kw)
            putchar('\n');
        for (int k = 0; k < recs[i].n; k++)
            printf("%-*s%s", k + 1 < recs[i].n ? (int)w[k] : 0, recs[i].p[k].key,
                   k + 1 < recs[i].n ? "  " : "\n");
        for (size_t r = i; r < j; r++)
            for (int k = 0; k < recs[r].n; k++) {
                const char *v = recs[r].p[k].val[0] ? recs[r].p[k].val : "-";
                printf("%-*s%s", k + 1 < recs[r].n ? (int)w[k] : 0, v,
                       k + 1 < recs[r].n ? "  " : "\n");
            }
        printed = true;
        i = j;
    }
}

/* Connects, sends line, reads the whole reply into *out. Returns an exit
 * code (0 when a reply arrived). */
int ctl_exchange(const char *path, const char *line, int timeout_s, char **out, size_t *outlen)
{
    struct sockaddr_un sa;
    if (strlen(path) >= sizeof sa.sun_path) {
        fprintf(stderr, "%s: socket path too long: %s\n", prog, path);
        return AG_CTL_EXIT_USAGE;
    }
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "%s: socket: %s\n", prog, strerror(errno));
        return AG_CTL_EXIT_FAILED;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        close(fd);
        if (e == EACCES || e == EPERM) {
            fprintf(stderr,
                    "%s: access denied to %s (%s): ask for membership of the socket's "
                    "group, or run as root\n",
                    prog, path, strerror(e));
            return AG_CTL_EXIT_DENIED;
        }
        if (e == ENOENT || e == ECONNREFUSED || e == ENOTDIR) {
            fprintf(stderr,
                    "%s: authgate is not running (%s: %s); is status_socket set in its "
                    "configuration?\n",
                    prog, path, strerror(e));
            return AG_CTL_EXIT_NOT_RUNNING;
        }
        fprintf(stderr, "%s: cannot connect to %s: %s\n", prog, path, strerror(e));
        return AG_CTL_EXIT_NOT_RUNNING;
    }
    size_t ll = strlen(line), off = 0;
    while (off < ll) {
        ssize_t w = send(fd, line + off, ll - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            break; /* the daemon may have refused us already: read its reply */
        off += (size_t)w;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return AG_CTL_EXIT_FAILED;
    }
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int pr = poll(&p, 1, timeout_s * 1000);
        if (pr == 0) {
            fprintf(stderr, "%s: no reply within %d s\n", prog, timeout_s);
            free(buf);
            close(fd);
            return AG_CTL_EXIT_FAILED;
        }
        if (pr < 0 && errno == EINTR)
            continue;
        if (len + 1 >= cap) {
            if (cap >= REPLY_MAX) {
                fprintf(stderr, "%s: reply larger than %u bytes\n", prog, REPLY_MAX);
                free(buf);
                close(fd);
                return AG_CTL_EXIT_FAILED;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                close(fd);
                return AG_CTL_EXIT_FAILED;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break; /* ECONNRESET after a refusal still leaves what was read */
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return AG_CTL_EXIT_OK;
}

int main(int argc, char **argv)
{
    const char *sock = getenv("AUTHGATE_SOCKET");
    bool json = false;
    int timeout_s = 15;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
            sock = argv[++i];
        else if (strcmp(argv[i], "-j") == 0 || strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "-T") == 0 && i + 1 < argc)
            timeout_s = atoi(argv[++i]);
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return AG_CTL_EXIT_OK;
        } else if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0) {
            printf("authgatectl %s\n", AG_VERSION);
            return AG_CTL_EXIT_OK;
        } else {
            fprintf(stderr, "%s: unknown option or missing value: '%s'\n", prog, argv[i]);
            usage(stderr);
            return AG_CTL_EXIT_USAGE;
        }
    }
    if (i >= argc || timeout_s <= 0) {
        usage(stderr);
        return AG_CTL_EXIT_USAGE;
    }
    if (!sock || !*sock)
        sock = AG_CTL_DEFAULT_SOCKET;
    const char *cmd = argv[i];
    if (strcmp(cmd, "top") == 0)
        return ag_top_main(sock, timeout_s, argc - i, argv + i);
    char line[AG_CTL_LINE_MAX + 1];
    size_t o = 0;
    for (int k = i; k < argc; k++) {
        size_t l = strlen(argv[k]);
        if (l == 0 || strpbrk(argv[k], " \t\r\n")) {
            fprintf(stderr, "%s: arguments cannot be empty or hold blanks: '%s'\n", prog, argv[k]);
            return AG_CTL_EXIT_USAGE;
        }
        if (o + l + 2 > AG_CTL_LINE_MAX) {
            fprintf(stderr, "%s: command longer than %d bytes\n", prog, AG_CTL_LINE_MAX - 1);
            return AG_CTL_EXIT_USAGE;
        }
        if (k > i)
            line[o++] = ' ';
        memcpy(line + o, argv[k], l);
        o += l;
    }
    line[o++] = '\n';
    line[o] = '\0';

    char *reply = NULL;
    size_t len = 0;
    int rc = ctl_exchange(sock, line, timeout_s, &reply, &len);
    if (rc != AG_CTL_EXIT_OK)
        return rc;

    /* Split into lines; the last must be the status line. */
    size_t nlines = 0;
    for (size_t k = 0; k < len; k++)
        nlines += reply[k] == '\n';
    char **lines = calloc(nlines + 1, sizeof *lines);
    if (!lines) {
        free(reply);
        return AG_CTL_EXIT_FAILED;
    }
    size_t n = 0;
    for (char *p = reply, *nl; (nl = memchr(p, '\n', len - (size_t)(p - reply))); p = nl + 1) {
        *nl = '\0';
        lines[n++] = p;
    }
    const char *status = n ? lines[n - 1] : NULL;
    if (!status || status[0] != '.') {
        fprintf(stderr, "%s: the daemon closed the connection without a complete reply\n", prog);
        free(lines);
        free(reply);
        return AG_CTL_EXIT_FAILED;
    }
    n--;
    if (strncmp(status, AG_CTL_ERROR " ", sizeof AG_CTL_ERROR) == 0) {
        const char *code = status + sizeof AG_CTL_ERROR;
        const char *msg = strchr(code, ' ');
        size_t cl = msg ? (size_t)(msg - code) : strlen(code);
        msg = msg ? msg + 1 : "";
        bool denied = cl == strlen(AG_CTL_E_DENIED) && strncmp(code, AG_CTL_E_DENIED, cl) == 0;
        if (json) {
            char c[32];
            snprintf(c, sizeof c, "%.*s", (int)(cl < 31 ? cl : 31), code);
            printf("{\"error\": {\"code\": ");
            json_string(c);
            printf(", \"message\": ");
            json_string(msg);
            printf("}}\n");
        }
        fprintf(stderr, "%s: %s: %s\n", prog, cmd, msg);
        free(lines);
        free(reply);
        return denied ? AG_CTL_EXIT_DENIED : AG_CTL_EXIT_FAILED;
    }
    if (strcmp(status, AG_CTL_OK) != 0) {
        fprintf(stderr, "%s: unexpected status line from the daemon\n", prog);
        free(lines);
        free(reply);
        return AG_CTL_EXIT_FAILED;
    }
    if (strcmp(cmd, "metrics") == 0) {
        /* Prometheus text goes out as it came, for a scraper or a file. */
        for (size_t k = 0; k < n; k++)
            puts(lines[k]);
        free(lines);
        free(reply);
        return AG_CTL_EXIT_OK;
    }
    if (n > MAX_RECORDS)
        n = MAX_RECORDS;
    struct record *recs = calloc(n ? n : 1, sizeof *recs);
    if (!recs) {
        free(lines);
        free(reply);
        return AG_CTL_EXIT_FAILED;
    }
    size_t nr = 0;
    for (size_t k = 0; k < n; k++)
        if (parse_record(lines[k], &recs[nr]) == 0 && recs[nr].n > 0)
            nr++;
    if (json)
        show_json(cmd, recs, nr);
    else
        show_table(recs, nr);
    free(recs);
    free(lines);
    free(reply);
    return AG_CTL_EXIT_OK;
}
