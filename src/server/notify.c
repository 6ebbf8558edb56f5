/* notify.c - sd_notify messages at the daemon's state changes (see notify.h).
 *
 * libsystemd implements the protocol (abstract '@' names, credentials,
 * $NOTIFY_SOCKET parsing); we only choose the messages and log a failure.
 * The environment variable is kept (unset_environment 0): reloads and the
 * stop notify later through the same socket.
 */
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "notify.h"
#include "util/log.h"

static void send_state(const char *what, const char *msg)
{
    int rc = sd_notify(0, msg);
    if (rc < 0)
        ag_warn("event=notify_failed state=%s error=\"%s\"", what, strerror(-rc));
    else if (rc > 0)
        ag_debug("event=notified state=%s", what);
}

void ag_notify_ready(unsigned n_listeners)
{
    char msg[128];
    snprintf(msg, sizeof msg, "READY=1\nMAINPID=%d\nSTATUS=listening on %u address%s",
             (int)getpid(), n_listeners, n_listeners == 1 ? "" : "es");
    send_state("ready", msg);
}

void ag_notify_reloading(void)
{
    /* MONOTONIC_USEC lets systemd >= 253 (Type=notify-reload) match this
     * RELOADING=1 to the reload it asked for; older managers ignore it. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char msg[96];
    snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000u);
    send_state("reloading", msg);
}

void ag_notify_stopping(void)
{
    send_state("stopping", "STOPPING=1");
}
