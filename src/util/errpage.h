/* errpage.h - the HTML pages a person in a browser sees when the gateway
 * refuses a request (403, 407, 502, 503, 504 and the other refusals).
 *
 * Glossary: template = an HTML file with {{name}} placeholders; page set =
 * the templates of one error_templates directory, each optional, the
 * built-in template (src/util/error_page.html, embedded at build time) in
 * the place of any file that is missing.
 *
 * Every placeholder value is HTML-escaped when it is put in (& < > " ' and
 * control bytes): a host name or user name from the network can never become
 * markup. A template may use only the names below; an unknown one is an
 * error when the directory is loaded, so a typo shows at reload, not as a
 * blank on a user's screen.
 *
 * Placeholders: status, reason, message (what happened, in plain words),
 * detail (the gateway's specific reason), user, client, host, time,
 * request_id, contact.
 *
 * Pure; any thread (loaded where the config is, rendered on the loop).
 */
#ifndef AG_UTIL_ERRPAGE_H
#define AG_UTIL_ERRPAGE_H

#include <stddef.h>

#include "util.h"

/* The templates a directory may hold, by file name: 403.html ... 504.html,
 * and error.html for every other status (and for a missing NNN.html). */
enum ag_errpage_slot {
    AG_ERRPAGE_403 = 0,
    AG_ERRPAGE_407,
    AG_ERRPAGE_502,
    AG_ERRPAGE_503,
    AG_ERRPAGE_504,
    AG_ERRPAGE_OTHER,
    AG_ERRPAGE_SLOTS
};

/* One loaded directory; a NULL slot falls back to error.html, then to the
 * built-in template. Owns its strings. */
struct ag_errpages {
    char *tpl[AG_ERRPAGE_SLOTS];
    size_t len[AG_ERRPAGE_SLOTS];
};

/* What one page shows; NULL fields render as empty. All borrowed. */
struct ag_errpage_vars {
    int status;
    const char *reason;     /* "Forbidden" */
    const char *message;    /* what happened, in plain words */
    const char *detail;     /* the gateway's own reason (rule name, DNS failure) */
    const char *user;       /* the identity the gateway saw, or NULL */
    const char *client;     /* the client address */
    const char *host;       /* the requested host (from the network) */
    const char *time;       /* "2026-12-05 12:00:00 UTC" */
    const char *request_id; /* the req= of the error log line */
    const char *contact;    /* error_contact */
};

/* Reads dir/{403,407,502,503,504,error}.html (each optional, each at most
 * AG_ERROR_TEMPLATE_MAX bytes, regular files, no NUL byte, only known
 * placeholders). 0 and *out (owned by the caller), or -1 with a message
 * "dir/file: why" in err. */
int ag_errpages_load(const char *dir, struct ag_errpages **out, char *err, size_t errlen);
/* Accepts NULL. */
void ag_errpages_free(struct ag_errpages *p);

/* 0 when every "{{" of tpl opens a known placeholder closed by "}}", else
 * AG_EINVAL with the reason in why. */
int ag_errpage_check(const char *tpl, size_t len, char *why, size_t whylen);

/* Appends the page for v->status to out (p may be NULL: built-in). Each
 * value is cut at AG_ERROR_VALUE_MAX bytes before escaping; out's ceiling
 * bounds the whole page (AG_ELIMIT: the caller sends the plain body). */
int ag_errpage_render(const struct ag_errpages *p, const struct ag_errpage_vars *v,
                      struct ag_buf *out);

/* The built-in template (generated from src/util/error_page.html). */
extern const char ag_errpage_builtin[];
extern const size_t ag_errpage_builtin_len;

#endif
