/* head.c - recording llhttp's head callbacks with ceilings (see head.h). */
#include <stdlib.h>
#include <string.h>

#include "authgate/limits.h"
#include "head.h"

void ag_head_init(struct ag_head *h, uint32_t limit)
{
    memset(h, 0, sizeof *h);
    h->limit = limit;
    ag_buf_init(&h->raw, limit);
}

void ag_head_reset(struct ag_head *h)
{
    /* The blocks stay for the next head: no allocation per request. */
    ag_buf_consume(&h->raw, h->raw.len); /* wipes: Proxy-Authorization */
    h->n_fields = 0;
    h->url_off = h->url_len = 0;
    h->in_field = h->in_value = false;
    h->conn_fields = h->conn_marked = false;
    h->err = 0;
}

void ag_head_release(struct ag_head *h)
{
    uint32_t limit = h->limit, max = (uint32_t)h->raw.max;
    ag_head_free(h);
    ag_head_init(h, limit);
    h->raw.max = max;
}

void ag_head_free(struct ag_head *h)
{
    /* Heads carry Proxy-Authorization: wipe, never just free. */
    ag_buf_free(&h->raw);
    free(h->fields);
    h->fields = NULL;
    h->n_fields = h->cap_fields = 0;
}

static int append(struct ag_head *h, const char *at, size_t len)
{
    if (h->err)
        return -1;
    if (ag_buf_append(&h->raw, at, len) != 0) {
        h->err = AG_ELIMIT;
        return -1;
    }
    return 0;
}

int ag_head_on_url(struct ag_head *h, const char *at, size_t len)
{
    if (h->url_len == 0)
        h->url_off = (uint32_t)h->raw.len;
    if (h->url_len + len > AG_URL_MAX) {
        h->err = AG_ELIMIT;
        return -1;
    }
    if (append(h, at, len))
        return -1;
    h->url_len += (uint32_t)len;
    return 0;
}

int ag_head_on_field(struct ag_head *h, const char *at, size_t len)
{
    if (!h->in_field) {
        if (h->n_fields == h->cap_fields) {
            if (h->cap_fields >= AG_HEADER_FIELDS_MAX) {
                h->err = AG_ELIMIT;
                return -1;
            }
            uint32_t ncap = h->cap_fields ? h->cap_fields * 2 : 16;
            if (ncap > AG_HEADER_FIELDS_MAX)
                ncap = AG_HEADER_FIELDS_MAX;
            struct ag_field *n = realloc(h->fields, ncap * sizeof *n);
            if (!n) {
                h->err = AG_ENOMEM;
                return -1;
            }
            h->fields = n;
            h->cap_fields = ncap;
        }
        struct ag_field *f = &h->fields[h->n_fields++];
        f->name_off = (uint32_t)h->raw.len;
        f->name_len = 0;
        f->val_off = f->val_len = 0;
        f->hop = false;
        h->in_field = true;
    }
    if (append(h, at, len))
        return -1;
    h->fields[h->n_fields - 1].name_len += (uint32_t)len;
    return 0;
}

static bool tchar(unsigned char c)
{
    /* Letters, digits and '-' first: nearly every byte of every name. */
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           (c && strchr("!#$%&'*+.^_`|~", c));
}

/* With their lengths: every field name of every head is checked here. */
#define HOP(s)                                                                                     \
    {                                                                                              \
        s, sizeof s - 1                                                                            \
    }
static const struct {
    const char *name;
    size_t len;
} hop_fields[] = {
    HOP("Connection"),
    HOP("Proxy-Connection"),
    HOP("Keep-Alive"),
    HOP("TE"),
    HOP("Trailer"),
    HOP("Upgrade"),
    HOP("Proxy-Authorization"),
    HOP("Proxy-Authenticate"),
};
#undef HOP

static bool fixed_hop(const char *nm, size_t nl)
{
    for (size_t i = 0; i < sizeof hop_fields / sizeof hop_fields[0]; i++)
        if (nl == hop_fields[i].len && ag_strnieq(nm, hop_fields[i].name, nl))
            return true;
    return false;
}

int ag_head_field_done(struct ag_head *h)
{
    h->in_field = false;
    /* An empty name (": v" after "CONNECT \r\n": nothing recorded yet, the
     * store still unallocated) is refused before its address is taken. */
    if (h->n_fields == 0 || h->fields[h->n_fields - 1].name_len == 0)
        return -1;
    size_t nl;
    const char *nm = ag_head_name(h, h->n_fields - 1, &nl);
    for (size_t i = 0; i < nl; i++)
        if (!tchar((unsigned char)nm[i]))
            return -1;
    if (ag_strieq(nm, nl, "Connection") || ag_strieq(nm, nl, "Proxy-Connection"))
        h->conn_fields = true;
    h->fields[h->n_fields - 1].hop = fixed_hop(nm, nl);
    return 0;
}

int ag_head_on_value(struct ag_head *h, const char *at, size_t len)
{
    if (h->n_fields == 0)
        return -1;
    struct ag_field *f = &h->fields[h->n_fields - 1];
    if (!h->in_value) {
        f->val_off = (uint32_t)h->raw.len;
        h->in_value = true;
    }
    if (append(h, at, len))
        return -1;
    f->val_len += (uint32_t)len;
    return 0;
}

void ag_head_value_done(struct ag_head *h)
{
    h->in_value = false;
    h->in_field = false;
}

int ag_head_find(const struct ag_head *h, const char *name, const char **val, size_t *len)
{
    int n = 0;
    for (uint32_t i = 0; i < h->n_fields; i++) {
        size_t nl;
        const char *nm = ag_head_name(h, i, &nl);
        if (ag_strieq(nm, nl, name)) {
            if (n == 0 && val) {
                *val = ag_head_value(h, i, len);
            }
            n++;
        }
    }
    return n;
}

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

/* The next element of the comma-separated list v from *pos: its bounds
 * [*s, *e), OWS-trimmed and never empty; false at the end of the list. */
static bool next_element(const char *v, size_t vl, size_t *pos, size_t *s, size_t *e)
{
    size_t i = *pos;
    while (i < vl && (ows(v[i]) || v[i] == ','))
        i++;
    if (i >= vl) {
        *pos = i;
        return false;
    }
    *s = i;
    while (i < vl && v[i] != ',')
        i++;
    *pos = i;
    while (i > *s && ows(v[i - 1]))
        i--;
    *e = i;
    return true;
}

/* Whether an element of v is token; with params, an element's
 * ";parameters" are cut first (media ranges). */
static bool list_contains(const char *v, size_t vl, const char *token, size_t tl, bool params)
{
    size_t pos = 0, s, e;
    while (next_element(v, vl, &pos, &s, &e)) {
        if (params) {
            const char *semi = memchr(v + s, ';', e - s);
            if (semi)
                e = (size_t)(semi - v);
            while (e > s && ows(v[e - 1]))
                e--;
        }
        if (e - s == tl && ag_strnieq(v + s, token, tl))
            return true;
    }
    return false;
}

static bool has_element(const struct ag_head *h, const char *name, const char *token, bool params)
{
    size_t tl = strlen(token);
    for (uint32_t i = 0; i < h->n_fields; i++) {
        size_t nl, vl;
        const char *nm = ag_head_name(h, i, &nl);
        if (!ag_strieq(nm, nl, name))
            continue;
        const char *v = ag_head_value(h, i, &vl);
        if (list_contains(v, vl, token, tl, params))
            return true;
    }
    return false;
}

bool ag_head_has_token(const struct ag_head *h, const char *name, const char *token)
{
    return has_element(h, name, token, false);
}

bool ag_head_accepts_html(const struct ag_head *h)
{
    /* A browser names text/html in Accept; curl (star/star) and API clients
     * do not, and keep the plain body they can log. q-values are not
     * weighed: a browser never sends text/html with q=0. */
    return has_element(h, "Accept", "text/html", true);
}

/* Sets hop on every field whose name an element of a Connection or
 * Proxy-Connection field lists: elements times fields, once per head. */
static void mark_conn_named(struct ag_head *h)
{
    for (uint32_t i = 0; i < h->n_fields; i++) {
        size_t nl, vl;
        const char *nm = ag_head_name(h, i, &nl);
        if (!ag_strieq(nm, nl, "Connection") && !ag_strieq(nm, nl, "Proxy-Connection"))
            continue;
        const char *v = ag_head_value(h, i, &vl);
        size_t pos = 0, s, e;
        while (next_element(v, vl, &pos, &s, &e))
            for (uint32_t j = 0; j < h->n_fields; j++) {
                size_t jl;
                const char *jn = ag_head_name(h, j, &jl);
                if (jl == e - s && ag_strnieq(jn, v + s, jl))
                    h->fields[j].hop = true;
            }
    }
    h->conn_marked = true;
}

bool ag_head_is_hop(struct ag_head *h, uint32_t i, const char *identity_header)
{
    if (h->conn_fields && !h->conn_marked)
        mark_conn_named(h);
    if (h->fields[i].hop)
        return true;
    size_t nl;
    const char *nm = ag_head_name(h, i, &nl);
    return identity_header && ag_strieq(nm, nl, identity_header);
}

const char *ag_head_scan_defects(const char *data, size_t n, bool have_fields, bool *last_lf,
                                 bool *last_cr)
{
    const char *defect = NULL;
    for (size_t i = 0; i < n && !defect; i++) {
        if (*last_lf && (data[i] == ' ' || data[i] == '\t') && have_fields)
            defect = "obs-fold";
        else if (data[i] == '\n' && !*last_cr)
            defect = "bare LF";
        *last_lf = data[i] == '\n';
        *last_cr = data[i] == '\r';
    }
    return defect;
}

int ag_head_check_framing(const struct ag_head *h, bool http10, const char **why)
{
    const char *te;
    size_t tel;
    int nte = ag_head_find(h, "Transfer-Encoding", &te, &tel);
    if (nte > 0) {
        if (http10) {
            *why = "Transfer-Encoding on HTTP/1.0";
            return 400;
        }
        if (nte != 1 || !ag_strieq(te, tel, "chunked")) {
            *why = "transfer coding not supported";
            return 501;
        }
    }
    if (ag_head_find(h, "Host", NULL, NULL) > 1) {
        *why = "several Host fields";
        return 400;
    }
    return 0;
}
