/* parent.h - health of parent proxies, shared by every event loop.
 *
 * Glossary: parent = an upstream proxy of the configuration (parent NAME
 * HOST:PORT); slot = its health record, keyed by name and address, kept for
 * the life of the process (a reload that keeps a parent keeps its state);
 * back-off = the period a parent that refused a connection (or did not
 * answer within connect_timeout) is skipped.
 *
 * Thread-safety: loops read and write slots with atomics only; a new slot
 * is appended under a mutex and published with a release store of the
 * count, so the lookup on the request path takes no lock.
 */
#ifndef AG_PROXY_PARENT_H
#define AG_PROXY_PARENT_H

#include <stdbool.h>
#include <stdint.h>

struct ag_parent_health;

/* The slot of (name, host, port), created on first use; NULL when every
 * slot is taken (AG_PARENT_SLOTS): such a parent is then never skipped. */
struct ag_parent_health *ag_parent_health(const char *name, const char *host, uint16_t port);
/* True when h may be tried at now_ms (not in back-off). NULL: true. */
bool ag_parent_usable(struct ag_parent_health *h, uint64_t now_ms);
/* A connection to the parent failed: back-off until now_ms + backoff_ms.
 * True when the parent was up before (the caller logs the change once). */
bool ag_parent_mark_down(struct ag_parent_health *h, uint64_t now_ms, uint32_t backoff_ms);
/* A connection succeeded. True when the parent was down before. */
bool ag_parent_mark_up(struct ag_parent_health *h);
/* Failures counted since start (for authgatectl). */
uint64_t ag_parent_failures(const struct ag_parent_health *h);
bool ag_parent_is_down(const struct ag_parent_health *h);

#endif
