/* ctl.h - the status socket: authgatectl's way into the daemon.
 *
 * Glossary: control connection = one accepted connection on the socket, one
 * command, one reply, then closed; allow-list = status_allow_users and
 * status_allow_groups, matched against the peer's SO_PEERCRED uid and gid;
 * ping = the winbind health check "status" runs on the thread pool.
 *
 * The socket is created at start-up (umask 0177, then chmod to
 * status_socket_mode and chown to status_socket_group), served on the loop,
 * and closed and unlinked when the server stops (main.c sets srv->on_stop
 * to ag_ctl_stop). Commands only read the
 * session table, the config and the counters, except kick (closes
 * connections), reload and loglevel. Loop thread only.
 */
#ifndef AG_CTL_CTL_H
#define AG_CTL_CTL_H

#include "server/server.h"

/* Opens the status socket of srv->cfg (nothing when status_socket is none)
 * and the metrics listener (metrics_listen, src/ctl/metrics_http.c).
 * 0, or a negative AG_E* with one error line logged. */
int ag_ctl_start(struct ag_server *srv);
/* Closes the metrics listener, the socket and every control connection,
 * unlinks the path. The
 * memory goes with the last close callback. Safe when never started. */
void ag_ctl_stop(struct ag_server *srv);

/* `authgate doctor -c FILE`: checks a set-up, one line per check on out;
 * returns 0 when nothing FAILed, 1 otherwise, 2 when the file does not
 * parse. Blocking: runs before (and instead of) the daemon. */
int ag_doctor_main(int argc, char **argv);

#endif
