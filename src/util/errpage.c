/* errpage.c - error page templates: load, check, render (see errpage.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "authgate/limits.h"
#include "errpage.h"

static const char *const slot_file[AG_ERRPAGE_SLOTS] = {
    "403.html", "407.html", "502.html", "503.html", "504.html", "error.html",
};

/* The placeholder names, in the order of struct ag_errpage_vars' fields
 * (value_of maps one to the other). */
static const char *const names[] = {"status", "reason", "message", "detail",     "user",
                                    "client", "host",   "time",    "request_id", "contact"};
#define N_NAMES (sizeof names / sizeof names[0])

/* The index of the placeholder at tpl[off] ("{{name}}"), its full length in
 * *plen; -1 when "{{" opens no known name. */
static int placeholder_at(const char *tpl, size_t len, size_t off, size_t *plen)
{
    if (len - off < 4 || tpl[off] != '{' || tpl[off + 1] != '{')
        return -1;
    for (size_t k = 0; k < N_NAMES; k++) {
        size_t nl = strlen(names[k]);
        if (len - off - 2 >= nl + 2 && memcmp(tpl + off + 2, names[k], nl) == 0 &&
            tpl[off + 2 + nl] == '}' && tpl[off + 3 + nl] == '}') {
            *plen = nl + 4;
            return (int)k;
        }
    }
    return -1;
}

int ag_errpage_check(const char *tpl, size_t len, char *why, size_t whylen)
{
    if (len > AG_ERROR_TEMPLATE_MAX) {
        snprintf(why, whylen, "larger than %d bytes", AG_ERROR_TEMPLATE_MAX);
        return AG_EINVAL;
    }
    if (memchr(tpl, '\0', len)) {
        snprintf(why, whylen, "NUL byte in template");
        return AG_EINVAL;
    }
    for (size_t off = 0; off + 1 < len; off++) {
        if (tpl[off] != '{' || tpl[off + 1] != '{')
            continue;
        size_t pl;
        if (placeholder_at(tpl, len, off, &pl) < 0) {
            size_t n = len - off < 24 ? len - off : 24;
            char shown[24 * 4 + 1];
            snprintf(why, whylen,
                     "unknown placeholder at byte %zu: \"%s\" (known: status reason message "
                     "detail user client host time request_id contact)",
                     off, ag_escape(shown, sizeof shown, tpl + off, n));
            return AG_EINVAL;
        }
        off += pl - 1;
    }
    return 0;
}

/* Reads one template: absent is fine (*out stays NULL), anything else that
 * is not a small regular file with known placeholders is an error. */
static int read_template(const char *dir, const char *file, char **out, size_t *outlen, char *err,
                         size_t errlen)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path) {
        snprintf(err, errlen, "%s: path too long", dir);
        return -1;
    }
    size_t n;
    char *buf = ag_file_read(path, AG_ERROR_TEMPLATE_MAX, &n, err, errlen);
    if (!buf)
        return errno == ENOENT ? 0 : -1;
    char why[256];
    if (ag_errpage_check(buf, n, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: %s", path, why);
        free(buf);
        return -1;
    }
    *out = buf;
    *outlen = n;
    return 0;
}

int ag_errpages_load(const char *dir, struct ag_errpages **out, char *err, size_t errlen)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: not a directory", dir);
        return -1;
    }
    struct ag_errpages *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "%s: out of memory", dir);
        return -1;
    }
    for (int i = 0; i < AG_ERRPAGE_SLOTS; i++) {
        if (read_template(dir, slot_file[i], &p->tpl[i], &p->len[i], err, errlen) != 0) {
            ag_errpages_free(p);
            return -1;
        }
    }
    *out = p;
    return 0;
}

void ag_errpages_free(struct ag_errpages *p)
{
    if (!p)
        return;
    for (int i = 0; i < AG_ERRPAGE_SLOTS; i++)
        free(p->tpl[i]);
    free(p);
}

/* Appends s HTML-escaped: the five markup characters as entities, control
 * bytes (which have no business on a page) as '?'. Bytes above 0x7f pass:
 * a user name may be UTF-8, and no byte above 0x7f can open markup. */
static int append_escaped(struct ag_buf *out, const char *s)
{
    size_t n = strnlen(s, AG_ERROR_VALUE_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        const char *e = NULL;
        switch (ch) {
        case '&':
            e = "&amp;";
            break;
        case '<':
            e = "&lt;";
            break;
        case '>':
            e = "&gt;";
            break;
        case '"':
            e = "&quot;";
            break;
        case '\'':
            e = "&#39;";
            break;
        default:
            if (ch < 0x20 || ch == 0x7f)
                e = "?";
        }
        int rc = e ? ag_buf_appendz(out, e) : ag_buf_append(out, &s[i], 1);
        if (rc)
            return rc;
    }
    return 0;
}

static const char *value_of(const struct ag_errpage_vars *v, int k, char *num, size_t numcap)
{
    switch (k) {
    case 0:
        snprintf(num, numcap, "%d", v->status);
        return num;
    case 1:
        return v->reason;
    case 2:
        return v->message;
    case 3:
        return v->detail;
    case 4:
        return v->user;
    case 5:
        return v->client;
    case 6:
        return v->host;
    case 7:
        return v->time;
    case 8:
        return v->request_id;
    default:
        return v->contact;
    }
}

static enum ag_errpage_slot slot_of(int status)
{
    switch (status) {
    case 403:
        return AG_ERRPAGE_403;
    case 407:
        return AG_ERRPAGE_407;
    case 502:
        return AG_ERRPAGE_502;
    case 503:
        return AG_ERRPAGE_503;
    case 504:
        return AG_ERRPAGE_504;
    default:
        return AG_ERRPAGE_OTHER;
    }
}

int ag_errpage_render(const struct ag_errpages *p, const struct ag_errpage_vars *v,
                      struct ag_buf *out)
{
    const char *tpl = ag_errpage_builtin;
    size_t len = ag_errpage_builtin_len;
    enum ag_errpage_slot s = slot_of(v->status);
    if (p && p->tpl[s]) {
        tpl = p->tpl[s];
        len = p->len[s];
    } else if (p && p->tpl[AG_ERRPAGE_OTHER]) {
        tpl = p->tpl[AG_ERRPAGE_OTHER];
        len = p->len[AG_ERRPAGE_OTHER];
    }
    size_t lit = 0; /* start of the literal run not yet copied */
    for (size_t off = 0; off < len; off++) {
        size_t pl;
        int k = tpl[off] == '{' ? placeholder_at(tpl, len, off, &pl) : -1;
        if (k < 0)
            continue;
        int rc = ag_buf_append(out, tpl + lit, off - lit);
        char num[16];
        const char *val = value_of(v, k, num, sizeof num);
        if (!rc && val)
            rc = append_escaped(out, val);
        if (rc)
            return rc;
        off += pl - 1;
        lit = off + 1;
    }
    return ag_buf_append(out, tpl + lit, len - lit);
}
