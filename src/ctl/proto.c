/* proto.c - status-socket framing, command parsing and replies (see proto.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authgate/err.h"
#include "proto.h"

int ag_ctl_frame(const char *buf, size_t n, size_t *line_len)
{
    /* Only the first AG_CTL_LINE_MAX bytes can hold a valid line's newline. */
    size_t scan = n < AG_CTL_LINE_MAX ? n : AG_CTL_LINE_MAX;
    const char *nl = memchr(buf, '\n', scan);
    if (!nl)
        return n >= AG_CTL_LINE_MAX ? AG_ELIMIT : AG_EAGAIN;
    size_t len = (size_t)(nl - buf);
    if (len > 0 && buf[len - 1] == '\r')
        len--;
    *line_len = len;
    return 0;
}

int ag_ctl_parse(const char *line, size_t len, struct ag_ctl_cmd *out)
{
    struct ag_ctl_cmd c;
    if (len >= AG_CTL_LINE_MAX)
        return AG_ELIMIT;
    memset(&c, 0, sizeof c);
    size_t words = 0;
    bool in_word = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)line[i];
        if (ch == ' ' || ch == '\t') {
            c.buf[i] = '\0';
            in_word = false;
            continue;
        }
        if (ch < 0x21 || ch > 0x7e)
            return AG_EINVAL;
        c.buf[i] = (char)ch;
        if (!in_word) {
            if (words == 0)
                c.name = &c.buf[i];
            else if (words - 1 < AG_CTL_ARGS_MAX)
                c.argv[words - 1] = &c.buf[i];
            else
                return AG_ELIMIT;
            words++;
            in_word = true;
        }
    }
    if (words == 0)
        return AG_EINVAL;
    c.buf[len] = '\0';
    c.argc = words - 1;
    /* The pointers refer to c.buf: rebase them onto out->buf. */
    *out = c;
    out->name = out->buf + (c.name - c.buf);
    for (size_t i = 0; i < c.argc; i++)
        out->argv[i] = out->buf + (c.argv[i] - c.buf);
    return 0;
}

const char *ag_ctl_arg(const struct ag_ctl_cmd *c, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i < c->argc; i++)
        if (strncmp(c->argv[i], key, kl) == 0 && c->argv[i][kl] == '=')
            return c->argv[i] + kl + 1;
    return NULL;
}

void ag_ctl_reply_init(struct ag_ctl_reply *r)
{
    memset(r, 0, sizeof *r);
    ag_buf_init(&r->b, AG_CTL_REPLY_MAX);
}

void ag_ctl_reply_free(struct ag_ctl_reply *r)
{
    ag_buf_free(&r->b);
}

static void put(struct ag_ctl_reply *r, const char *s, size_t n)
{
    if (r->err == 0)
        r->err = ag_buf_append(&r->b, s, n);
}

void ag_ctl_kv(struct ag_ctl_reply *r, const char *key, const char *value)
{
    /* 4 bytes per escaped byte: a value up to a user name's size fits. */
    char enc[4 * (AG_USER_MAX + 1) + 2];
    if (r->b.len > 0 && r->b.data[r->b.len - 1] != '\n')
        put(r, " ", 1);
    put(r, key, strlen(key));
    put(r, "=", 1);
    ag_ctl_encode(enc, sizeof enc, value ? value : "", value ? strlen(value) : 0);
    put(r, enc, strlen(enc));
}

void ag_ctl_kvu(struct ag_ctl_reply *r, const char *key, uint64_t value)
{
    char num[24];
    snprintf(num, sizeof num, "%llu", (unsigned long long)value);
    ag_ctl_kv(r, key, num);
}

void ag_ctl_end(struct ag_ctl_reply *r)
{
    if (r->b.len > 0 && r->b.data[r->b.len - 1] != '\n')
        put(r, "\n", 1);
}

void ag_ctl_raw(struct ag_ctl_reply *r, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    put(r, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

void ag_ctl_reply_error(struct ag_ctl_reply *r, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* The message may quote a file name or the operator's argument: keep the
     * status line one line. */
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    r->failed = true;
    snprintf(r->status, sizeof r->status, "%s %s %s", AG_CTL_ERROR, code, msg);
}

char *ag_ctl_reply_finish(struct ag_ctl_reply *r, size_t *len)
{
    struct ag_buf out;
    const char *status = r->status;
    char lim[128];
    ag_buf_init(&out, AG_CTL_REPLY_MAX + sizeof r->status + 2);
    if (r->err) {
        snprintf(lim, sizeof lim, "%s %s reply larger than %d bytes", AG_CTL_ERROR, AG_CTL_E_LIMIT,
                 AG_CTL_REPLY_MAX);
        status = lim;
    } else {
        if (!r->failed)
            status = AG_CTL_OK;
        ag_ctl_end(r);
        if (r->b.len && ag_buf_append(&out, r->b.data, r->b.len) != 0)
            goto oom;
    }
    if (ag_buf_appendz(&out, status) != 0 || ag_buf_append(&out, "\n", 1) != 0)
        goto oom;
    return ag_buf_steal(&out, len);
oom:
    ag_buf_free(&out);
    return NULL;
}
