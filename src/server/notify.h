/* notify.h - the service manager's notify protocol (systemd's sd_notify).
 *
 * Glossary: ready = the status socket exists and every listener accepts;
 * only then does the daemon say READY=1, so a supervisor (systemd with
 * Type=notify, or the test harness) that waits for it never finds the status
 * socket missing. Each message is one datagram to $NOTIFY_SOCKET (a path, or
 * an abstract name written with a leading '@'); without NOTIFY_SOCKET every
 * call is a no-op. Loop thread only; nothing blocks (a datagram socket).
 */
#ifndef AG_NOTIFY_H
#define AG_NOTIFY_H

/* READY=1 with our MAINPID and a STATUS line: start-up finished, or a reload
 * finished (successful or not: the daemon keeps serving either way). */
void ag_notify_ready(unsigned n_listeners);

/* RELOADING=1 with MONOTONIC_USEC: a reload begins (SIGHUP or "reload"). */
void ag_notify_reloading(void);

/* STOPPING=1: the graceful stop began; nothing is READY after it. */
void ag_notify_stopping(void);

#endif
