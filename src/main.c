/* main.c - argv, start-up order, signals, the loop, orderly shutdown.
 *
 * authgate -c FILE        run in the foreground
 * authgate -t -c FILE     check the file and exit (0 valid, 1 not)
 * authgate passwd FILE USER   add or change a user of a local user file
 * authgate doctor -c FILE     check keytab, host name, winbind, listeners, socket
 * authgate import-squid [-o DIR] squid.conf   translate a Squid configuration
 * authgate --help | --version
 * Exit status 2 and the usage on stderr for an unknown option or subcommand
 * syntax error, as getopt-style tools do.
 */
#include <getopt.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "authgate/limits.h"
#include "auth/passwd.h"
#include "config/squid.h"
#include "ctl/ctl.h"
#include "server/auth.h"
#include "server/notify.h"
#include "server/server.h"
#include "util/log.h"

/* Subcommands: the first argument names one; it gets argv from its name on.
 * A new subcommand is one row here and one line of usage(). */
static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} subcommands[] = {
    {"passwd", ag_passwd_main},
    {"doctor", ag_doctor_main},
    {"import-squid", ag_squid_import_main},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: authgate [-t] [-v] -c FILE\n"
               "       authgate passwd FILE USER\n"
               "       authgate doctor -c FILE\n"
               "       authgate import-squid [-o DIR] squid.conf\n"
               "       authgate --help | --version\n"
               "  -c, --config FILE  configuration file (authgate.conf(5))\n"
               "  -t, --test         check the configuration and exit\n"
               "  -v, --verbose      with -t: print the effective configuration\n"
               "  -V, --version      print the version and exit\n"
               "  -h, --help         print this help and exit\n"
               "See authgate(8).\n");
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct ag_server *srv = h->data;
    char err[512];
    switch (signum) {
    case SIGTERM:
    case SIGINT:
        ag_server_drain(srv);
        break;
    case SIGHUP:
        ag_server_reload(srv, err, sizeof err);
        break;
    case SIGUSR1:
        if (ag_log_open(srv->cfg->error_log, srv->cfg->access_log) != 0)
            ag_err("event=log_reopen_failed");
        else
            ag_info("event=logs_reopened");
        break;
    }
}

static void on_log_timer(uv_timer_t *t)
{
    ag_log_flush();
}

/* Every client and every pooled upstream holds a descriptor: take the hard
 * limit as the soft one, and remember it for the pooling budget. */
static uint64_t raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY ? (1u << 20) : (uint64_t)rl.rlim_cur;
}

static void set_threadpool_size(uint32_t n)
{
    /* libuv reads UV_THREADPOOL_SIZE once, at the first use of the pool:
     * set it before anything queues work (DNS included). */
    char v[16];
    snprintf(v, sizeof v, "%u", n);
    setenv("UV_THREADPOOL_SIZE", v, 1);
}

int main(int argc, char **argv)
{
    for (size_t i = 0; argc >= 2 && i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (strcmp(argv[1], subcommands[i].name) == 0)
            return subcommands[i].run(argc - 1, argv + 1);
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"test", no_argument, NULL, 't'},
        {"verbose", no_argument, NULL, 'v'},      {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    bool check = false, verbose = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:tvVh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 't':
            check = true;
            break;
        case 'v':
            verbose = true;
            break;
        case 'V':
            printf("authgate %s\n", AG_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "authgate: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    char err[512];
    struct ag_config *cfg = ag_config_load(path, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (check) {
        /* The files the configuration names are part of it: a rules file
         * or user file that start-up would refuse fails the check too. */
        if (ag_auth_check_files(cfg, err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            ag_config_unref(cfg);
            return 1;
        }
        if (verbose)
            ag_config_dump(cfg, stdout);
        else
            printf("%s: configuration ok\n", cfg->path);
        ag_config_unref(cfg);
        return 0;
    }
    if (ag_log_open(cfg->error_log, cfg->access_log) != 0) {
        fprintf(stderr, "authgate: cannot open the logs (%s, %s)\n", cfg->error_log,
                cfg->access_log ? cfg->access_log : "none");
        ag_config_unref(cfg);
        return 1;
    }
    ag_log_set_level((enum ag_log_level)cfg->log_level);
    if (ag_log_set_buffer(cfg->log_buffer) != 0) {
        fprintf(stderr, "authgate: no memory for log_buffer %u\n", cfg->log_buffer);
        ag_config_unref(cfg);
        return 1;
    }
    set_threadpool_size(cfg->threadpool_size);
    signal(SIGPIPE, SIG_IGN);

    static struct ag_server srv;
    uv_loop_t loop;
    uv_loop_init(&loop);
    srv.loop = &loop;
    srv.main = &srv;
    srv.cfg = cfg;
    /* Our own copy: the first config is freed once nothing holds it. */
    srv.config_path = strdup(cfg->path);
    srv.started_ms = uv_now(&loop);
    srv.fd_limit = raise_fd_limit();
    if (srv.fd_limit < (uint64_t)cfg->max_connections + 64)
        ag_warn("event=fd_limit_low limit=%llu max_connections=%u note=\"raise LimitNOFILE\"",
                (unsigned long long)srv.fd_limit, cfg->max_connections);
    uv_timer_init(&loop, &srv.shutdown_timer);
    srv.shutdown_timer.data = &srv;
    uv_timer_init(&loop, &srv.reload_timer);
    srv.reload_timer.data = &srv;
    uv_timer_init(&loop, &srv.trim_timer);
    srv.trim_timer.data = &srv;
    uv_timer_init(&loop, &srv.drain_timer);
    srv.drain_timer.data = &srv;
    uv_signal_t *sigs[] = {&srv.sig_term, &srv.sig_int, &srv.sig_hup, &srv.sig_usr1};
    int signums[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};
    for (int i = 0; i < 4; i++) {
        uv_signal_init(&loop, sigs[i]);
        sigs[i]->data = &srv;
        uv_signal_start(sigs[i], on_signal, signums[i]);
    }
    /* Buffered log lines wait at most AG_LOG_FLUSH_MS, also when no new
     * line comes to push them out. Unreferenced: it never keeps the loop
     * alive at shutdown. */
    static uv_timer_t log_timer;
    uv_timer_init(&loop, &log_timer);
    uv_timer_start(&log_timer, on_log_timer, AG_LOG_FLUSH_MS, AG_LOG_FLUSH_MS);
    uv_unref((uv_handle_t *)&log_timer);
    int rc = ag_auth_init(&srv, err, sizeof err);
    if (rc != 0)
        ag_err("event=startup_failed error=\"%s\"", err);
    /* The status socket before the listeners: a client (or a supervisor)
     * that sees a listener accept may use authgatectl at once. It closes
     * when the server stops: main wires the two, as src/server does not
     * know src/ctl. */
    srv.on_stop = ag_ctl_stop;
    if (rc == 0)
        rc = ag_ctl_start(&srv);
    if (rc == 0)
        rc = ag_server_listen(&srv);
    /* workers N: the other loops, each with listeners of its own. */
    if (rc == 0)
        rc = ag_server_start_loops(&srv);
    if (rc == 0) {
        ag_info("event=started version=%s pid=%d config=%s", AG_VERSION, (int)getpid(), cfg->path);
        /* Both exist and the kernel queues connections from here on: the
         * loop serves them as soon as it runs. */
        ag_notify_ready(srv.n_listeners);
        uv_run(&loop, UV_RUN_DEFAULT);
    } else {
        srv.exit_code = 1;
        ag_server_stop(&srv);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    uv_close((uv_handle_t *)&log_timer, NULL);
    uv_run(&loop, UV_RUN_DEFAULT); /* its close callback */
    int lc = uv_loop_close(&loop);
    if (lc != 0) {
        ag_err("event=loop_close_failed error=\"%s\"", uv_strerror(lc));
        srv.exit_code = 3;
    } else {
        ag_info("event=stopped");
    }
    ag_server_loops_free(&srv);
    ag_auth_shutdown(&srv);
    free(srv.config_path);
    ag_config_unref(srv.cfg);
    ag_log_close();
    return srv.exit_code;
}
