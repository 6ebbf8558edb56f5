/* top.c - `authgatectl top`: a live view of a running authgate.
 *
 * Every second it asks the daemon for "stats" and "sessions" (the same
 * commands an operator can run) and shows what changed in that second:
 * requests and 407s per second, handshakes started, succeeded and failed
 * per scheme, verification latency p50/p99 per scheme and backend (from the
 * daemon's cumulative histograms: the difference of two snapshots is the
 * histogram of that second), the gauges (connections, tunnels, jobs in
 * flight) and the users and client addresses that sent the most requests.
 *
 * On a terminal it redraws the screen and reads keys in raw mode ("q"
 * quits); the terminal is restored on every way out, signals included. When
 * stdout is not a terminal it prints one plain-text snapshot per second
 * (--iterations N stops after N, for scripts and tests). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "authgate/ctl_proto.h"
#include "cli.h"

/* Rows of "busiest users/addresses" shown. */
#define TOP_ROWS 5
/* Connections followed between two snapshots (more are still counted in
 * the totals, their per-user split is cut). */
#define TOP_CONNS_MAX 100000
/* Histogram buckets the daemon reports (le_1 ... le_inf). */
#define TOP_BUCKETS 32
#define TOP_SERIES 16

struct series {
    char scheme[16], backend[16];
    int nb;
    unsigned le[TOP_BUCKETS]; /* upper bounds in ms; UINT32_MAX = +Inf */
    uint64_t cum[TOP_BUCKETS];
    uint64_t count;
};

struct conn {
    uint64_t id, requests;
    char user[128], peer[64];
};

struct snap {
    double t; /* monotonic seconds */
    uint64_t uptime, requests, c407, started[3], ok[3], failed[3];
    uint64_t connections, authenticated, handshakes, tunnels, jobs;
    struct series s[TOP_SERIES];
    int ns;
    bool in_hist; /* parsing: inside a histogram record */
    struct conn *conns;
    size_t nc;
};

static const char *const schemes[3] = {"negotiate", "ntlm", "basic"};

static volatile sig_atomic_t stop_sig;
static struct termios saved_tio;
static bool raw_on;

static void on_stop(int sig)
{
    stop_sig = sig;
}

static void raw_restore(void)
{
    if (raw_on) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
        fputs("\033[?25h\n", stdout); /* cursor back */
        fflush(stdout);
        raw_on = false;
    }
}

/* Keys without Enter and without echo; output processing stays on. */
static void raw_enter(void)
{
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_tio) != 0)
        return;
    struct termios t = saved_tio;
    t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    t.c_cc[VMIN] = 0;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) == 0) {
        raw_on = true;
        atexit(raw_restore);
    }
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The reply's records, parsed in place: calls fn(key, val, arg) per pair and
 * end(arg) after each record. 0 or an exit code. */
static int each_record(const char *sock, int timeout_s, const char *cmd,
                       void (*fn)(const char *, const char *, void *), void (*end)(void *),
                       void *arg)
{
    char *reply = NULL;
    size_t len = 0;
    int rc = ctl_exchange(sock, cmd, timeout_s, &reply, &len);
    if (rc != AG_CTL_EXIT_OK)
        return rc;
    rc = AG_CTL_EXIT_FAILED;
    char *save = NULL;
    for (char *line = strtok_r(reply, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '.') {
            if (strcmp(line, AG_CTL_OK) == 0)
                rc = AG_CTL_EXIT_OK;
            else
                fprintf(stderr, "authgatectl top: %s\n", line);
            break;
        }
        char *ws = NULL;
        for (char *w = strtok_r(line, " ", &ws); w; w = strtok_r(NULL, " ", &ws)) {
            char *eq = strchr(w, '=');
            if (!eq)
                continue;
            *eq = '\0';
            ag_ctl_decode(eq + 1);
            fn(w, eq + 1, arg);
        }
        end(arg);
    }
    free(reply);
    return rc;
}

static uint64_t u64(const char *v)
{
    return strtoull(v, NULL, 10);
}

static void stats_kv(const char *k, const char *v, void *arg)
{
    struct snap *s = arg;
    if (strcmp(k, "histogram") == 0) {
        s->in_hist = s->ns < TOP_SERIES;
        if (s->in_hist)
            memset(&s->s[s->ns], 0, sizeof s->s[s->ns]);
        return;
    }
    if (s->in_hist) {
        struct series *h = &s->s[s->ns];
        if (strcmp(k, "scheme") == 0) {
            snprintf(h->scheme, sizeof h->scheme, "%s", v);
            for (char *c = h->scheme; *c; c++) /* "Basic" in stats, "basic" in the table */
                if (*c >= 'A' && *c <= 'Z')
                    *c = (char)(*c - 'A' + 'a');
        } else if (strcmp(k, "backend") == 0)
            snprintf(h->backend, sizeof h->backend, "%s", v);
        else if (strcmp(k, "count") == 0)
            h->count = u64(v);
        else if (strncmp(k, "le_", 3) == 0 && h->nb < TOP_BUCKETS) {
            h->le[h->nb] =
                strcmp(k, "le_inf") == 0 ? UINT32_MAX : (unsigned)strtoul(k + 3, NULL, 10);
            h->cum[h->nb++] = u64(v);
        }
        return;
    }
    uint64_t n = u64(v);
    if (strcmp(k, "uptime_s") == 0)
        s->uptime = n;
    else if (strcmp(k, "requests") == 0)
        s->requests = n;
    else if (strcmp(k, "auth_407_sent") == 0)
        s->c407 = n;
    else if (strcmp(k, "connections") == 0)
        s->connections = n;
    else if (strcmp(k, "authenticated") == 0)
        s->authenticated = n;
    else if (strcmp(k, "handshakes") == 0)
        s->handshakes = n;
    else if (strcmp(k, "tunnels_open") == 0)
        s->tunnels = n;
    else if (strcmp(k, "jobs_in_flight") == 0)
        s->jobs = n;
    for (int i = 0; i < 3; i++) {
        char key[48];
        snprintf(key, sizeof key, "auth_%s_started", schemes[i]);
        if (strcmp(k, key) == 0)
            s->started[i] = n;
        snprintf(key, sizeof key, "auth_%s_succeeded", schemes[i]);
        if (strcmp(k, key) == 0)
            s->ok[i] = n;
        snprintf(key, sizeof key, "auth_%s_failed", schemes[i]);
        if (strcmp(k, key) == 0)
            s->failed[i] = n;
    }
}

static void stats_end(void *arg)
{
    struct snap *s = arg;
    if (s->in_hist && s->s[s->ns].scheme[0] && s->s[s->ns].nb > 0)
        s->ns++;
    s->in_hist = false;
}

struct sess_ctx {
    struct snap *s;
    size_t cap;
    struct conn cur;
};

static void sess_kv(const char *k, const char *v, void *arg)
{
    struct sess_ctx *x = arg;
    if (strcmp(k, "id") == 0)
        x->cur.id = u64(v);
    else if (strcmp(k, "requests") == 0)
        x->cur.requests = u64(v);
    else if (strcmp(k, "user") == 0)
        snprintf(x->cur.user, sizeof x->cur.user, "%s", v);
    else if (strcmp(k, "peer") == 0)
        snprintf(x->cur.peer, sizeof x->cur.peer, "%s", v);
}

static void sess_end(void *arg)
{
    struct sess_ctx *x = arg;
    if (x->cur.id && x->s->nc < TOP_CONNS_MAX) {
        if (x->s->nc == x->cap) {
            size_t nc = x->cap ? x->cap * 2 : 256;
            struct conn *n = realloc(x->s->conns, nc * sizeof *n);
            if (!n)
                return;
            x->s->conns = n;
            x->cap = nc;
        }
        x->s->conns[x->s->nc++] = x->cur;
    }
    memset(&x->cur, 0, sizeof x->cur);
}

static int take(const char *sock, int timeout_s, struct snap *s)
{
    memset(s, 0, sizeof *s);
    s->t = mono();
    int rc = each_record(sock, timeout_s, "stats\n", stats_kv, stats_end, s);
    if (rc)
        return rc;
    struct sess_ctx x = {s, 0, {0}};
    return each_record(sock, timeout_s, "sessions\n", sess_kv, sess_end, &x);
}

/* The upper bound (ms) under which a fraction q of this interval's
 * samples fell, from the difference of two cumulative histograms. */
static const char *quantile(const struct series *a, const struct series *b, double q, char *buf,
                            size_t cap)
{
    uint64_t total = b->count - (a ? a->count : 0);
    if (total == 0)
        return "-";
    double want = q * (double)total;
    for (int i = 0; i < b->nb; i++) {
        uint64_t c = b->cum[i] - (a && i < a->nb ? a->cum[i] : 0);
        if ((double)c >= want) {
            if (b->le[i] == UINT32_MAX)
                snprintf(buf, cap, ">%ums", i ? b->le[i - 1] : 0);
            else
                snprintf(buf, cap, "<=%ums", b->le[i]);
            return buf;
        }
    }
    return "-";
}

struct tally {
    char key[128];
    uint64_t n;
};

static void tally_add(struct tally *t, size_t *n, size_t cap, const char *key, uint64_t v)
{
    if (!v)
        return;
    for (size_t i = 0; i < *n; i++)
        if (strcmp(t[i].key, key) == 0) {
            t[i].n += v;
            return;
        }
    if (*n < cap) {
        snprintf(t[*n].key, sizeof t[*n].key, "%s", key);
        t[(*n)++].n = v;
    }
}

static int tally_cmp(const void *a, const void *b)
{
    const struct tally *x = a, *y = b;
    return x->n < y->n ? 1 : x->n > y->n ? -1 : strcmp(x->key, y->key);
}

/* Requests each connection sent since the previous snapshot (all of them
 * for a new one), summed by user and by address. */
static void busiest(const struct snap *a, struct snap *b, struct tally *users, size_t *nu,
                    struct tally *addrs, size_t *na, size_t cap)
{
    *nu = *na = 0;
    for (size_t i = 0; i < b->nc; i++) {
        uint64_t before = 0;
        for (size_t k = 0; k < a->nc; k++)
            if (a->conns[k].id == b->conns[i].id) {
                before = a->conns[k].requests;
                /* A Basic connection between two verifications shows no
                 * user: its requests stay with the user it last had. */
                if ((!b->conns[i].user[0] || !strcmp(b->conns[i].user, "-")) &&
                    a->conns[k].user[0] && strcmp(a->conns[k].user, "-"))
                    memcpy(b->conns[i].user, a->conns[k].user, sizeof b->conns[i].user);
                break;
            }
        uint64_t d = b->conns[i].requests >= before ? b->conns[i].requests - before : 0;
        const char *u = b->conns[i].user;
        tally_add(users, nu, cap, u[0] && strcmp(u, "-") ? u : "(none)", d);
        tally_add(addrs, na, cap, b->conns[i].peer, d);
    }
    qsort(users, *nu, sizeof *users, tally_cmp);
    qsort(addrs, *na, sizeof *addrs, tally_cmp);
}

static double rate(uint64_t a, uint64_t b, double dt)
{
    return b >= a && dt > 0 ? (double)(b - a) / dt : 0;
}

static void render(FILE *f, const struct snap *a, struct snap *b, bool tty)
{
    double dt = b->t - a->t;
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    if (tty)
        fputs("\033[H\033[2J", f);
    fprintf(f, "authgate top  %s  uptime %llus%s\n", when, (unsigned long long)b->uptime,
            tty ? "  (q quits)" : "");
    fprintf(f,
            "requests/s %.1f  407/s %.1f  connections %llu  authenticated %llu  tunnels %llu  "
            "handshakes %llu  jobs_in_flight %llu\n",
            rate(a->requests, b->requests, dt), rate(a->c407, b->c407, dt),
            (unsigned long long)b->connections, (unsigned long long)b->authenticated,
            (unsigned long long)b->tunnels, (unsigned long long)b->handshakes,
            (unsigned long long)b->jobs);
    fprintf(f, "\n%-10s %12s %12s %12s\n", "scheme", "started/s", "ok/s", "failed/s");
    for (int i = 0; i < 3; i++)
        fprintf(f, "%-10s %12.1f %12.1f %12.1f\n", schemes[i],
                rate(a->started[i], b->started[i], dt), rate(a->ok[i], b->ok[i], dt),
                rate(a->failed[i], b->failed[i], dt));
    fprintf(f, "\n%-10s %-10s %10s %10s %10s\n", "latency", "backend", "verified", "p50", "p99");
    for (int i = 0; i < b->ns; i++) {
        const struct series *pa = NULL;
        for (int k = 0; k < a->ns; k++)
            if (!strcmp(a->s[k].scheme, b->s[i].scheme) &&
                !strcmp(a->s[k].backend, b->s[i].backend))
                pa = &a->s[k];
        char q1[24], q2[24];
        fprintf(f, "%-10s %-10s %10llu %10s %10s\n", b->s[i].scheme, b->s[i].backend,
                (unsigned long long)(b->s[i].count - (pa ? pa->count : 0)),
                quantile(pa, &b->s[i], 0.50, q1, sizeof q1),
                quantile(pa, &b->s[i], 0.99, q2, sizeof q2));
    }
    static struct tally users[512], addrs[512];
    size_t nu, na;
    busiest(a, b, users, &nu, addrs, &na, 512);
    fprintf(f, "\n%-32s %8s   %-40s %8s\n", "busiest users", "req/s", "busiest addresses", "req/s");
    for (size_t i = 0; i < TOP_ROWS && (i < nu || i < na); i++) {
        if (i < nu)
            fprintf(f, "%-32.32s %8.1f   ", users[i].key, (double)users[i].n / (dt > 0 ? dt : 1));
        else
            fprintf(f, "%-32s %8s   ", "", "");
        if (i < na)
            fprintf(f, "%-40.40s %8.1f", addrs[i].key, (double)addrs[i].n / (dt > 0 ? dt : 1));
        fputc('\n', f);
    }
    if (!tty)
        fputs("--\n", f);
    fflush(f);
}

/* Waits up to ms, or until 'q' on a raw terminal; true when asked to quit. */
static bool wait_or_quit(int ms)
{
    double end = mono() + ms / 1000.0;
    for (;;) {
        if (stop_sig)
            return true;
        double left = end - mono();
        if (left <= 0)
            return false;
        struct pollfd p = {raw_on ? STDIN_FILENO : -1, POLLIN, 0};
        int r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r > 0 && (p.revents & POLLIN)) {
            char c;
            if (read(STDIN_FILENO, &c, 1) == 1 && (c == 'q' || c == 'Q'))
                return true;
        }
    }
}

int ag_top_main(const char *sock, int timeout_s, int argc, char **argv)
{
    long iterations = -1;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--iterations") == 0 && i + 1 < argc) {
            iterations = strtol(argv[++i], &end, 10);
            if (*end || iterations <= 0) {
                fprintf(stderr, "authgatectl top: --iterations takes a positive number\n");
                return AG_CTL_EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "usage: authgatectl [-s SOCKET] top [--iterations N]\n");
            return AG_CTL_EXIT_USAGE;
        }
    }
    bool tty = isatty(STDOUT_FILENO);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    struct snap a, b;
    int rc = take(sock, timeout_s, &a);
    if (rc)
        return rc;
    if (tty) {
        raw_enter();
        fputs("\033[?25l", stdout); /* no cursor while redrawing */
    }
    for (long n = 0; iterations < 0 || n < iterations; n++) {
        if (wait_or_quit(1000))
            break;
        if ((rc = take(sock, timeout_s, &b)) != 0) {
            free(b.conns);
            break;
        }
        render(stdout, &a, &b, tty);
        free(a.conns);
        a = b;
    }
    free(a.conns);
    raw_restore();
    if (tty && !raw_on)
        fputs("\033[?25h", stdout);
    return rc;
}
