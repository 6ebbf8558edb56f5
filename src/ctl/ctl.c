/* ctl.c - the status socket: listener, peer check, framing, dispatch (see ctl.h).
 *
 * Lifetime: struct ag_ctl owns the listening pipe and a list of control
 * connections; it counts its references (the pipe, plus one per connection)
 * and is freed by the close callback that drops the last one. A control
 * connection owns a pipe and a deadline timer (counted in handles) and is
 * freed by the last of their close callbacks. A winbind ping (a job on the
 * winbind worker pool) is detached from a connection that goes away, or at
 * its deadline, and then frees itself (src/server/work.h).
 */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth/verify_winbind.h"
#include "authgate/err.h"
#include "authgate/limits.h"
#include "commands.h"
#include "ctl.h"
#include "util/list.h"
#include "util/log.h"

struct ctl_ping;

struct ctl_conn {
    uv_pipe_t pipe;
    uv_timer_t timer; /* AG_CTL_TIMEOUT_MS for the whole exchange */
    uv_write_t wreq;
    int handles;              /* open handles; freed at 0 */
    struct ag_ctl *ctl;       /* borrowed; holds a reference for us */
    struct ag_list_node node; /* in ctl->conns */
    uint64_t id;
    uint32_t uid, gid;
    int pid;
    char in[AG_CTL_LINE_MAX]; /* bytes of the command line so far */
    size_t in_len;
    bool answered; /* a reply is queued: ignore input, close after it */
    bool closing;
    char *out;             /* the reply being written (owned) */
    struct ctl_ping *ping; /* in flight for this connection, or NULL */
    struct ag_ctl_cmd cmd; /* the command waiting for the ping */
};

struct ctl_ping {
    struct ag_job base; /* on the winbind pool; owner: the connection */
    int rc;             /* written on the worker thread */
};

struct ag_ctl {
    uv_pipe_t pipe;
    struct ag_server *srv; /* borrowed */
    char *path;            /* owned: unlinked at stop */
    struct ag_list conns;  /* of ctl_conn.node, newest first */
    unsigned n_conns;
    int refs; /* the listening pipe + one per connection */
    uint64_t next_id;
};

static void ctl_unref(struct ag_ctl *ctl)
{
    if (--ctl->refs == 0) {
        free(ctl->path);
        free(ctl);
    }
}

static void on_ctl_pipe_closed(uv_handle_t *h)
{
    ctl_unref(h->data);
}

/* --- one control connection --------------------------------------------------- */

static void on_cc_closed(uv_handle_t *h)
{
    struct ctl_conn *cc = h->data;
    if (--cc->handles > 0)
        return;
    struct ag_ctl *ctl = cc->ctl;
    ag_list_remove(&ctl->conns, &cc->node);
    ctl->n_conns--;
    free(cc->out);
    free(cc);
    ctl_unref(ctl);
}

static void cc_close(struct ctl_conn *cc)
{
    if (cc->closing)
        return;
    cc->closing = true;
    if (cc->ping) {
        /* Detached, the ping frees itself and never finds us. */
        ag_job_detach(&cc->ping->base);
        cc->ping = NULL;
    }
    uv_close((uv_handle_t *)&cc->timer, on_cc_closed);
    uv_close((uv_handle_t *)&cc->pipe, on_cc_closed);
}

static void on_cc_written(uv_write_t *w, int status)
{
    struct ctl_conn *cc = w->data;
    /* One exchange per connection: closing tells the client the reply is
     * complete even if it did not parse the status line. */
    cc_close(cc);
}

/* Sends the reply (consumed) and closes after it. */
static void cc_send(struct ctl_conn *cc, struct ag_ctl_reply *r)
{
    size_t len = 0;
    char *data = ag_ctl_reply_finish(r, &len);
    ag_ctl_reply_free(r);
    cc->answered = true;
    uv_read_stop((uv_stream_t *)&cc->pipe);
    if (!data) {
        cc_close(cc);
        return;
    }
    cc->out = data;
    uv_buf_t b = uv_buf_init(data, (unsigned)len);
    cc->wreq.data = cc;
    if (uv_write(&cc->wreq, (uv_stream_t *)&cc->pipe, &b, 1, on_cc_written) != 0)
        cc_close(cc);
}

static void cc_error(struct ctl_conn *cc, const char *code, const char *msg)
{
    struct ag_ctl_reply r;
    ag_ctl_reply_init(&r);
    ag_ctl_reply_error(&r, code, "%s", msg);
    cc_send(cc, &r);
}

static void cc_run(struct ctl_conn *cc, enum ag_ctl_wb wb)
{
    struct ag_server *srv = cc->ctl->srv;
    struct ag_ctl_reply r;
    ag_ctl_reply_init(&r);
    ag_ctl_run(srv, &cc->cmd, wb, &r);
    ag_info("event=ctl_command ctl=%llu uid=%u pid=%d command=%s result=%s",
            (unsigned long long)cc->id, cc->uid, cc->pid, cc->cmd.name, r.failed ? "error" : "ok");
    cc_send(cc, &r);
}

static void on_cc_deadline(uv_timer_t *t);

/* winbind ping on the winbind worker pool: "status" must not block the loop
 * on winbindd, nor take a DNS thread. */
static void ping_run(struct ag_job *j)
{
    struct ctl_ping *p = (struct ctl_ping *)j;
    p->rc = ag_wb_ping_blocking();
}

/* The ping's answer, or its deadline: the rest of the exchange gets the
 * usual deadline for the reply to be read. */
static void ping_end(struct ctl_conn *cc, enum ag_ctl_wb wb)
{
    cc->ping = NULL;
    uv_timer_start(&cc->timer, on_cc_deadline, AG_CTL_TIMEOUT_MS, 0);
    cc_run(cc, wb);
}

static void ping_done(struct ag_job *j, void *owner)
{
    ping_end(owner, ((struct ctl_ping *)j)->rc == 0 ? AG_CTL_WB_OK : AG_CTL_WB_DOWN);
}

static void ping_release(struct ag_job *j)
{
    (void)j;
}

static const struct ag_job_ops ping_ops = {"ctl_ping", ping_run, ping_done, ping_release};

/* A stalled winbindd: "status" says so instead of waiting with it. */
static void on_ping_deadline(uv_timer_t *t)
{
    struct ctl_conn *cc = t->data;
    if (!cc->ping)
        return;
    ag_job_detach(&cc->ping->base);
    ping_end(cc, AG_CTL_WB_DOWN);
}

static void cc_dispatch(struct ctl_conn *cc, const char *line, size_t len)
{
    struct ag_server *srv = cc->ctl->srv;
    int rc = ag_ctl_parse(line, len, &cc->cmd);
    if (rc != 0) {
        srv->stats.ctl_bad++;
        char shown[96];
        ag_escape(shown, sizeof shown, line, len);
        ag_warn("event=ctl_bad_command ctl=%llu uid=%u line=\"%s\"", (unsigned long long)cc->id,
                cc->uid, shown);
        cc_error(cc, rc == AG_ELIMIT ? AG_CTL_E_LIMIT : AG_CTL_E_USAGE,
                 rc == AG_ELIMIT ? "too many arguments" : "not a command line");
        return;
    }
    srv->stats.ctl_commands++;
    uv_read_stop((uv_stream_t *)&cc->pipe);
    cc->answered = true;
    if (ag_ctl_needs_ping(srv, &cc->cmd)) {
        struct ctl_ping *p = calloc(1, sizeof *p);
        if (p) {
            p->base.ops = &ping_ops;
            p->base.uncounted = true; /* diagnostics, not verification load */
            if (ag_job_submit(&srv->workers, AG_POOL_WINBIND, &p->base, cc) == 0) {
                cc->ping = p;
                uv_timer_start(&cc->timer, on_ping_deadline, AG_CTL_PING_TIMEOUT_MS, 0);
                return;
            }
            free(p);
        }
        cc_run(cc, AG_CTL_WB_DOWN);
        return;
    }
    cc_run(cc, AG_CTL_WB_UNUSED);
}

static void on_cc_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct ctl_conn *cc = h->data;
    *buf = uv_buf_init(cc->in + cc->in_len, (unsigned)(sizeof cc->in - cc->in_len));
}

static void on_cc_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct ctl_conn *cc = s->data;
    struct ag_server *srv = cc->ctl->srv;
    if (cc->answered || cc->closing)
        return;
    if (n < 0) {
        /* EOF before a whole line: nothing to answer. */
        if (cc->in_len > 0)
            srv->stats.ctl_bad++;
        cc_close(cc);
        return;
    }
    cc->in_len += (size_t)n;
    size_t len;
    int rc = ag_ctl_frame(cc->in, cc->in_len, &len);
    if (rc == AG_EAGAIN)
        return;
    if (rc == AG_ELIMIT) {
        srv->stats.ctl_bad++;
        ag_warn("event=ctl_line_too_long ctl=%llu uid=%u max=%d", (unsigned long long)cc->id,
                cc->uid, AG_CTL_LINE_MAX);
        cc_error(cc, AG_CTL_E_LIMIT, "command line too long");
        return;
    }
    cc_dispatch(cc, cc->in, len);
}

static void on_cc_deadline(uv_timer_t *t)
{
    struct ctl_conn *cc = t->data;
    ag_warn("event=ctl_timeout ctl=%llu uid=%u", (unsigned long long)cc->id, cc->uid);
    cc_close(cc);
}

static bool peer_allowed(const struct ag_config *cfg, uint32_t uid, uint32_t gid)
{
    for (size_t i = 0; i < cfg->status_allow_users.n; i++)
        if (cfg->status_allow_users.id[i] == uid)
            return true;
    for (size_t i = 0; i < cfg->status_allow_groups.n; i++)
        if (cfg->status_allow_groups.id[i] == gid)
            return true;
    return false;
}

static void on_ctl_connection(uv_stream_t *s, int status)
{
    struct ag_ctl *ctl = s->data;
    struct ag_server *srv = ctl->srv;
    if (status < 0)
        return;
    struct ctl_conn *cc = calloc(1, sizeof *cc);
    if (!cc)
        return; /* the kernel keeps the connection in the backlog */
    uv_pipe_init(srv->loop, &cc->pipe, 0);
    uv_timer_init(srv->loop, &cc->timer);
    cc->pipe.data = cc->timer.data = cc;
    cc->handles = 2;
    cc->ctl = ctl;
    cc->id = ++ctl->next_id;
    ctl->refs++;
    ag_list_push_first(&ctl->conns, &cc->node);
    ctl->n_conns++;
    if (uv_accept(s, (uv_stream_t *)&cc->pipe) != 0) {
        cc_close(cc);
        return;
    }
    uv_timer_start(&cc->timer, on_cc_deadline, AG_CTL_TIMEOUT_MS, 0);
    if (ctl->n_conns > AG_CTL_MAX_CONNS) {
        srv->stats.ctl_limit++;
        cc_error(cc, AG_CTL_E_LIMIT, "too many control connections");
        return;
    }
    uv_os_fd_t fd;
    struct ucred cred;
    socklen_t cl = sizeof cred;
    if (uv_fileno((uv_handle_t *)&cc->pipe, &fd) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0) {
        ag_warn("event=ctl_peercred_failed ctl=%llu error=\"%s\"", (unsigned long long)cc->id,
                strerror(errno));
        cc_close(cc);
        return;
    }
    cc->uid = (uint32_t)cred.uid;
    cc->gid = (uint32_t)cred.gid;
    cc->pid = (int)cred.pid;
    if (!peer_allowed(srv->cfg, cc->uid, cc->gid)) {
        srv->stats.ctl_denied++;
        ag_warn("event=ctl_denied ctl=%llu uid=%u gid=%u pid=%d", (unsigned long long)cc->id,
                cc->uid, cc->gid, cc->pid);
        char msg[96];
        snprintf(msg, sizeof msg, "access denied for uid %u", cc->uid);
        cc_error(cc, AG_CTL_E_DENIED, msg);
        return;
    }
    if (uv_read_start((uv_stream_t *)&cc->pipe, on_cc_alloc, on_cc_read) != 0)
        cc_close(cc);
}

/* --- the listening socket -------------------------------------------------- */

/* A leftover socket file from a daemon that died is replaced; a live one
 * (something accepts on it) is not: two daemons must not share a path. */
static int clear_stale(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : AG_EIO;
    if (!S_ISSOCK(st.st_mode)) {
        errno = EEXIST;
        return AG_EINVAL;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return AG_EIO;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    close(fd);
    if (rc == 0) {
        errno = EADDRINUSE;
        return AG_EINVAL;
    }
    return unlink(path) == 0 ? 0 : AG_EIO;
}

static int socket_start(struct ag_server *srv)
{
    const struct ag_config *cfg = srv->cfg;
    if (!cfg->status_socket)
        return 0;
    const char *path = cfg->status_socket;
    if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        ag_err("event=status_socket_failed path=%s error=\"path too long\"", path);
        return AG_EINVAL;
    }
    gid_t gid = (gid_t)-1;
    if (cfg->status_socket_group) {
        struct group gr, *res = NULL;
        char buf[4096];
        if (getgrnam_r(cfg->status_socket_group, &gr, buf, sizeof buf, &res) != 0 || !res) {
            ag_err("event=status_socket_failed path=%s error=\"unknown group %s\"", path,
                   cfg->status_socket_group);
            return AG_EINVAL;
        }
        gid = res->gr_gid;
    }
    if (clear_stale(path) != 0) {
        ag_err("event=status_socket_failed path=%s error=\"%s\"", path, strerror(errno));
        return AG_EIO;
    }
    struct ag_ctl *ctl = calloc(1, sizeof *ctl);
    if (!ctl || !(ctl->path = strdup(path))) {
        free(ctl);
        return AG_ENOMEM;
    }
    ctl->srv = srv;
    ctl->refs = 1;
    uv_pipe_init(srv->loop, &ctl->pipe, 0);
    ctl->pipe.data = ctl;
    /* Created owner-only, so nobody can connect between bind and chmod. */
    mode_t old = umask(0177);
    int rc = uv_pipe_bind(&ctl->pipe, path);
    umask(old);
    const char *step = "bind";
    if (rc == 0 && chmod(path, (mode_t)cfg->status_socket_mode) != 0) {
        step = "chmod";
        rc = -errno;
    }
    if (rc == 0 && gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) != 0) {
        step = "chown";
        rc = -errno;
    }
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&ctl->pipe, 16, on_ctl_connection);
    if (rc != 0) {
        ag_err("event=status_socket_failed path=%s step=%s error=\"%s\"", path, step,
               uv_strerror(rc));
        if (strcmp(step, "bind") != 0)
            unlink(path);
        uv_close((uv_handle_t *)&ctl->pipe, on_ctl_pipe_closed);
        return AG_EIO;
    }
    srv->ctl = ctl;
    ag_info("event=status_socket path=%s mode=0%03o", path, (unsigned)cfg->status_socket_mode);
    return 0;
}

/* The status socket, then the metrics listener: both are ways for an
 * operator's tools into the daemon, opened before the proxy listeners. */
int ag_ctl_start(struct ag_server *srv)
{
    int rc = socket_start(srv);
    return rc == 0 ? ag_metrics_http_start(srv) : rc;
}

void ag_ctl_stop(struct ag_server *srv)
{
    ag_metrics_http_stop(srv);
    struct ag_ctl *ctl = srv->ctl;
    if (!ctl)
        return;
    srv->ctl = NULL;
    unlink(ctl->path);
    ag_list_for_each (cc, &ctl->conns, struct ctl_conn, node)
        cc_close(cc);
    uv_close((uv_handle_t *)&ctl->pipe, on_ctl_pipe_closed);
}
