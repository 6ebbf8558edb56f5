/* head.h - HTTP head collection on top of llhttp, and the request model.
 *
 * Glossary: head = start line + header section of one message; field = one
 * header line (name, value); hop-by-hop = fields that describe one connection
 * and never cross the proxy (RFC 9110 §7.6.1).
 *
 * llhttp parses; this module only records what its callbacks report, with a
 * ceiling on the bytes and the number of fields. The ag_head is owned by the
 * connection that reads it. Loop thread only.
 */
#ifndef AG_HTTP_HEAD_H
#define AG_HTTP_HEAD_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

struct ag_field {
    uint32_t name_off, name_len;
    uint32_t val_off, val_len;
    /* Hop-by-hop: a name of the fixed list, set when the name ends, or one
     * the sender listed in Connection, set by the head's first hop query.
     * Both once per field, not once per field per query: every request and
     * every response asks of each of its fields. */
    bool hop;
};

struct ag_head {
    struct ag_buf raw;       /* url/status text, names and values, back to back */
    struct ag_field *fields; /* owned; grows up to AG_HEADER_FIELDS_MAX */
    uint32_t n_fields, cap_fields;
    uint32_t url_off, url_len; /* request target or response reason */
    uint32_t limit;            /* header_max of the config in force */
    bool in_field, in_value;   /* which span the last callback extended */
    bool conn_fields;          /* a Connection or Proxy-Connection field is present */
    bool conn_marked;          /* the fields named in them have hop set */
    int err;                   /* AG_ELIMIT once a ceiling was hit */
};

void ag_head_init(struct ag_head *h, uint32_t limit);
/* Forgets the contents (wiped) and keeps the blocks for the next head:
 * parsing a request on a kept-alive connection allocates nothing. */
void ag_head_reset(struct ag_head *h);
/* Forgets the contents and frees the blocks (an idle connection holds no
 * head memory). */
void ag_head_release(struct ag_head *h);
void ag_head_free(struct ag_head *h);

/* llhttp callbacks feed these; each returns 0 or -1 (ceiling hit: h->err). */
int ag_head_on_url(struct ag_head *h, const char *at, size_t len);
int ag_head_on_field(struct ag_head *h, const char *at, size_t len);
int ag_head_on_value(struct ag_head *h, const char *at, size_t len);
/* Ends a field name; -1 unless it is a token (RFC 9110 §5.1): llhttp 8
 * accepts "Name : value", which would smuggle a second meaning past us. */
int ag_head_field_done(struct ag_head *h);
void ag_head_value_done(struct ag_head *h);

static inline const char *ag_head_name(const struct ag_head *h, uint32_t i, size_t *len)
{
    *len = h->fields[i].name_len;
    return h->raw.data + h->fields[i].name_off;
}
static inline const char *ag_head_value(const struct ag_head *h, uint32_t i, size_t *len)
{
    *len = h->fields[i].val_len;
    return h->raw.data + h->fields[i].val_off;
}
static inline const char *ag_head_url(const struct ag_head *h, size_t *len)
{
    *len = h->url_len;
    return h->url_len ? h->raw.data + h->url_off : "";
}

/* Number of fields called name (case-insensitive); the first one's value in
 * val and len when there is at least one. */
int ag_head_find(const struct ag_head *h, const char *name, const char **val, size_t *len);

/* True if the comma-separated list in the named fields contains token
 * (case-insensitive), e.g. Connection: close. */
bool ag_head_has_token(const struct ag_head *h, const char *name, const char *token);
/* Whether an Accept field lists the media range text/html (a browser). */
bool ag_head_accepts_html(const struct ag_head *h);

/* What llhttp 8 accepts even in strict mode and we refuse, both ways for a
 * recipient to read a head differently from the origin behind us: obs-fold
 * (a line starting with SP/HTAB once a field was read), which llhttp joins
 * silently (RFC 9112 §5.2), and a bare LF ending the request line, a field
 * line or the head (§2.2). Scans n head bytes that follow the ones scanned
 * before with the same *last_lf / *last_cr (false at a head's start);
 * have_fields: the head has a field already. NULL, or the defect's name. */
const char *ag_head_scan_defects(const char *data, size_t n, bool have_fields, bool *last_lf,
                                 bool *last_cr);

/* The framing checks of a whole request head, before anything else reads
 * it (RFC 9112 §6.1, §3.2): Transfer-Encoding only as one "chunked" field on
 * HTTP/1.1 (a coding we would not re-frame, or TE on HTTP/1.0, is how
 * requests get smuggled) and at most one Host. 0 when the head passes, or
 * the status to refuse it with (400, 501) and *why. llhttp itself refuses
 * Content-Length with Transfer-Encoding and duplicate Content-Length. */
int ag_head_check_framing(const struct ag_head *h, bool http10, const char **why);

/* True when field i must not be forwarded: the fixed hop-by-hop set, any
 * field named in Connection / Proxy-Connection, Proxy-Authorization, and
 * the configured identity header (may be NULL). Call on a complete head:
 * the first call marks the fields that Connection names (non-const). */
bool ag_head_is_hop(struct ag_head *h, uint32_t i, const char *identity_header);

#endif
