/* negotiate.c - the GSS-API acceptor (see negotiate.h). */
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <krb5/krb5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authgate/err.h"
#include "negotiate.h"
#include "util/util.h"

struct ag_gss_acceptor {
    int refs; /* atomic: held by jobs of every event loop */
    gss_cred_id_t cred;
    char name[300];
};

struct ag_gss_ctx {
    gss_ctx_id_t ctx;
};

/* "major text (minor text)", the one formatter for every GSS error. */
static void format_status(OM_uint32 major, OM_uint32 minor, char *out, size_t cap)
{
    char maj[256] = "", min[256] = "";
    OM_uint32 mctx = 0, m;
    gss_buffer_desc b;
    size_t o = 0;
    do {
        if (GSS_ERROR(gss_display_status(&m, major, GSS_C_GSS_CODE, GSS_C_NO_OID, &mctx, &b)))
            break;
        o += (size_t)snprintf(maj + o, o < sizeof maj ? sizeof maj - o : 0, "%s%.*s", o ? "; " : "",
                              (int)b.length, (char *)b.value);
        gss_release_buffer(&m, &b);
    } while (mctx && o < sizeof maj);
    mctx = 0;
    o = 0;
    if (minor) {
        do {
            if (GSS_ERROR(gss_display_status(&m, minor, GSS_C_MECH_CODE, (gss_OID)gss_mech_krb5,
                                             &mctx, &b)))
                break;
            o += (size_t)snprintf(min + o, o < sizeof min ? sizeof min - o : 0, "%s%.*s",
                                  o ? "; " : "", (int)b.length, (char *)b.value);
            gss_release_buffer(&m, &b);
        } while (mctx && o < sizeof min);
    }
    char esc1[256], esc2[256];
    snprintf(out, cap, "%s (%s)", ag_escape(esc1, sizeof esc1, maj, strlen(maj)),
             ag_escape(esc2, sizeof esc2, min, strlen(min)));
}

/* The krb5 error codes (MIT's krb5 error table, <krb5/krb5.h>) that have a
 * failure class of their own; any other code is AG_GSS_FAIL_OTHER. */
static const struct {
    krb5_error_code code;
    enum ag_gss_fail fail;
} krb5_classes[] = {
    {KRB5KRB_AP_ERR_REPEAT, AG_GSS_FAIL_REPLAY},
    {KRB5KRB_AP_ERR_SKEW, AG_GSS_FAIL_SKEW},
    {KRB5KRB_AP_ERR_TKT_EXPIRED, AG_GSS_FAIL_EXPIRED},
    {KRB5KRB_AP_ERR_BADKEYVER, AG_GSS_FAIL_KEY},
    {KRB5_KT_NOTFOUND, AG_GSS_FAIL_KEY},
    {KRB5_KT_KVNONOTFOUND, AG_GSS_FAIL_KEY},
};

/* The krb5 mechanism's text for a minor status (its first message), or
 * false when GSS does not know the status. */
static bool krb5_minor_text(OM_uint32 minor, char *out, size_t cap)
{
    OM_uint32 m, mctx = 0;
    gss_buffer_desc b = GSS_C_EMPTY_BUFFER;
    if (GSS_ERROR(
            gss_display_status(&m, minor, GSS_C_MECH_CODE, (gss_OID)gss_mech_krb5, &mctx, &b)))
        return false;
    snprintf(out, cap, "%.*s", (int)b.length, (const char *)b.value);
    gss_release_buffer(&m, &b);
    return true;
}

/* The class of a failed step, from its minor status. A bare krb5 token
 * gives the krb5 error code itself. Under SPNEGO, MIT's mechanism glue
 * hands back a process-local number standing for (krb5, code) instead: the
 * code is then the one whose entry in the krb5 error table reads the same
 * as this status (GSS knows only codes it has seen, so a code that did not
 * occur never matches). Pool thread. */
static enum ag_gss_fail fail_class(OM_uint32 minor)
{
    size_t n = sizeof krb5_classes / sizeof krb5_classes[0];
    for (size_t i = 0; i < n; i++)
        if ((krb5_error_code)(int32_t)minor == krb5_classes[i].code)
            return krb5_classes[i].fail;
    char text[512], known[512];
    if (!krb5_minor_text(minor, text, sizeof text))
        return AG_GSS_FAIL_OTHER;
    for (size_t i = 0; i < n; i++)
        if (krb5_minor_text((OM_uint32)krb5_classes[i].code, known, sizeof known) &&
            strcmp(text, known) == 0)
            return krb5_classes[i].fail;
    return AG_GSS_FAIL_OTHER;
}

/* "svc@host" as a host-based service, anything else as a Kerberos
 * principal ("HTTP/host@REALM"). */
static OM_uint32 import_name(OM_uint32 *minor, const char *name, gss_name_t *out)
{
    gss_buffer_desc nb = {strlen(name), (void *)name};
    gss_OID type = (strchr(name, '@') && !strchr(name, '/')) ? GSS_C_NT_HOSTBASED_SERVICE
                                                             : (gss_OID)GSS_KRB5_NT_PRINCIPAL_NAME;
    return gss_import_name(minor, &nb, type, out);
}

struct ag_gss_acceptor *ag_gss_acceptor_new(const char *keytab, const char *name, char *err,
                                            size_t errlen)
{
    OM_uint32 major, minor;
    gss_name_t gname = GSS_C_NO_NAME;
    if (name && *name) {
        major = import_name(&minor, name, &gname);
        if (GSS_ERROR(major)) {
            char e[512];
            format_status(major, minor, e, sizeof e);
            snprintf(err, errlen, "acceptor name '%s': %s", name, e);
            return NULL;
        }
    }
    gss_key_value_element_desc el = {"keytab", keytab};
    gss_key_value_set_desc store = {1, &el};
    gss_OID_desc krb5 = *gss_mech_krb5;
    gss_OID_set_desc mechs = {1, &krb5};
    gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
    /* Acquired for every mechanism (SPNEGO included, or its negotiation
     * could not be restricted below); the result's mech is checked anyway. */
    major = gss_acquire_cred_from(&minor, gname, GSS_C_INDEFINITE, GSS_C_NO_OID_SET, GSS_C_ACCEPT,
                                  keytab ? &store : GSS_C_NO_CRED_STORE, &cred, NULL, NULL);
    if (gname != GSS_C_NO_NAME)
        gss_release_name(&minor, &gname);
    if (GSS_ERROR(major)) {
        char e[512];
        format_status(major, minor, e, sizeof e);
        snprintf(err, errlen, "keytab %s, acceptor %s: %s", keytab ? keytab : "(default)",
                 name && *name ? name : "any", e);
        return NULL;
    }
    /* SPNEGO may choose only krb5: never an NTLM GSS mechanism. */
    major = gss_set_neg_mechs(&minor, cred, &mechs);
    if (GSS_ERROR(major)) {
        char e[512];
        format_status(major, minor, e, sizeof e);
        snprintf(err, errlen, "gss_set_neg_mechs: %s", e);
        gss_release_cred(&minor, &cred);
        return NULL;
    }
    /* acquire_cred is lazy about the keytab: probe that a key exists now,
     * so a missing or empty keytab is reported at start-up, not per client. */
    gss_name_t probe = GSS_C_NO_NAME;
    major = gss_inquire_cred(&minor, cred, &probe, NULL, NULL, NULL);
    if (probe != GSS_C_NO_NAME)
        gss_release_name(&minor, &probe);
    struct ag_gss_acceptor *a = calloc(1, sizeof *a);
    if (!a) {
        gss_release_cred(&minor, &cred);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->refs = 1;
    a->cred = cred;
    snprintf(a->name, sizeof a->name, "%s", name && *name ? name : "any");
    return a;
}

struct ag_gss_acceptor *ag_gss_acceptor_ref(struct ag_gss_acceptor *a)
{
    /* Atomic: jobs of every event loop (workers N) hold references. */
    if (a)
        __atomic_add_fetch(&a->refs, 1, __ATOMIC_RELAXED);
    return a;
}

void ag_gss_acceptor_unref(struct ag_gss_acceptor *a)
{
    OM_uint32 minor;
    if (a && __atomic_sub_fetch(&a->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        gss_release_cred(&minor, &a->cred);
        free(a);
    }
}

const char *ag_gss_acceptor_name(const struct ag_gss_acceptor *a)
{
    return a ? a->name : "-";
}

/* The outer DER header of a token (X.690 8.1): tag byte, then a length in
 * short form (< 0x80) or long form (0x80 | count, then count big-endian
 * bytes; more than 4 would exceed any token we accept). */
#define DER_TAG_OFFSET 0
#define DER_LEN_OFFSET 1
#define DER_HDR_MIN 2                /* tag + short-form length */
#define DER_TAG_GSS_INITIAL 0x60     /* [APPLICATION 0] constructed: InitialContextToken */
#define DER_TAG_SPNEGO_RESPONSE 0xa1 /* [1] constructed: NegTokenResp */
#define DER_LEN_LONG_FORM 0x80
#define DER_LEN_COUNT_MASK 0x7f
#define DER_LEN_COUNT_MAX 4

int ag_gss_token_precheck(const uint8_t *t, size_t len)
{
    if (len < DER_HDR_MIN ||
        (t[DER_TAG_OFFSET] != DER_TAG_GSS_INITIAL && t[DER_TAG_OFFSET] != DER_TAG_SPNEGO_RESPONSE))
        return AG_EINVAL;
    size_t n, hdr;
    if (t[DER_LEN_OFFSET] < DER_LEN_LONG_FORM) {
        n = t[DER_LEN_OFFSET];
        hdr = DER_HDR_MIN;
    } else {
        size_t k = t[DER_LEN_OFFSET] & DER_LEN_COUNT_MASK;
        if (k == 0 || k > DER_LEN_COUNT_MAX || len < DER_HDR_MIN + k)
            return AG_EINVAL;
        n = 0;
        for (size_t i = 0; i < k; i++)
            n = (n << 8) | t[DER_HDR_MIN + i];
        hdr = DER_HDR_MIN + k;
    }
    return n == len - hdr ? 0 : AG_EINVAL;
}

uint8_t *ag_gss_token_decode(const char *b64, size_t len, size_t *cap, size_t *outlen)
{
    *cap = len / 4 * 3 + 3;
    uint8_t *tok = malloc(*cap);
    if (!tok)
        return NULL;
    if (ag_b64_decode(b64, len, tok, *cap, outlen) != 0 ||
        ag_gss_token_precheck(tok, *outlen) != 0) {
        ag_wipe(tok, *cap);
        free(tok);
        return NULL;
    }
    return tok;
}

void ag_gss_ctx_free(void *p)
{
    struct ag_gss_ctx *c = p;
    OM_uint32 minor;
    if (!c)
        return;
    if (c->ctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&minor, &c->ctx, GSS_C_NO_BUFFER);
    free(c);
}

void ag_gss_step_clear(struct ag_gss_step *s)
{
    free(s->out);
    memset(s, 0, sizeof *s);
}

void ag_gss_accept_blocking(struct ag_gss_acceptor *a, struct ag_gss_ctx **ctxp, const uint8_t *in,
                            size_t inlen, const uint8_t *cb, size_t cblen, struct ag_gss_step *out)
{
    OM_uint32 major, minor, flags = 0, m;
    memset(out, 0, sizeof *out);
    struct ag_gss_ctx *c = *ctxp;
    if (!c && !(c = calloc(1, sizeof *c))) {
        out->status = AG_GSS_FAILED;
        snprintf(out->error, sizeof out->error, "out of memory");
        return;
    }
    gss_buffer_desc ib = {inlen, (void *)in}, ob = GSS_C_EMPTY_BUFFER;
    gss_name_t src = GSS_C_NO_NAME;
    gss_OID mech = GSS_C_NO_OID;
    gss_cred_id_t deleg = GSS_C_NO_CREDENTIAL;
    /* Addresses unset (RFC 5929 bindings carry only application data). */
    struct gss_channel_bindings_struct cbs = {0};
    cbs.application_data.length = cblen;
    cbs.application_data.value = (void *)cb;
    major =
        gss_accept_sec_context(&minor, &c->ctx, a->cred, &ib, cb ? &cbs : GSS_C_NO_CHANNEL_BINDINGS,
                               &src, &mech, &ob, &flags, NULL, &deleg);
    /* Delegated credentials are never used: released at once. */
    if (deleg != GSS_C_NO_CREDENTIAL)
        gss_release_cred(&m, &deleg);
    if (ob.length) {
        out->out = malloc(ob.length);
        if (out->out) {
            memcpy(out->out, ob.value, ob.length);
            out->outlen = ob.length;
        }
    }
    gss_release_buffer(&m, &ob);
    if (major == GSS_S_CONTINUE_NEEDED) {
        out->status = AG_GSS_CONTINUE;
        *ctxp = c;
        if (src != GSS_C_NO_NAME)
            gss_release_name(&m, &src);
        return;
    }
    if (GSS_ERROR(major)) {
        format_status(major, minor, out->error, sizeof out->error);
        out->status = AG_GSS_FAILED;
        out->fail = GSS_ROUTINE_ERROR(major) == GSS_S_BAD_BINDINGS ? AG_GSS_FAIL_BINDINGS
                                                                   : fail_class(minor);
    } else if (!mech || !gss_oid_equal(mech, gss_mech_krb5)) {
        snprintf(out->error, sizeof out->error, "mechanism is not Kerberos 5");
        out->status = AG_GSS_FAILED;
        out->fail = AG_GSS_FAIL_REFUSED;
    } else if (flags & GSS_C_ANON_FLAG) {
        snprintf(out->error, sizeof out->error, "anonymous Kerberos refused");
        out->status = AG_GSS_FAILED;
        out->fail = AG_GSS_FAIL_REFUSED;
    } else {
        gss_buffer_desc nb = GSS_C_EMPTY_BUFFER;
        if (GSS_ERROR(gss_display_name(&m, src, &nb, NULL)) || nb.length == 0 ||
            nb.length >= sizeof out->principal) {
            snprintf(out->error, sizeof out->error, "client name unavailable");
            out->status = AG_GSS_FAILED;
        } else {
            memcpy(out->principal, nb.value, nb.length);
            out->principal[nb.length] = '\0';
            out->status = AG_GSS_DONE;
            out->channel_bound = (flags & GSS_C_CHANNEL_BOUND_FLAG) != 0;
        }
        gss_release_buffer(&m, &nb);
    }
    if (src != GSS_C_NO_NAME)
        gss_release_name(&m, &src);
    ag_gss_ctx_free(c);
    *ctxp = NULL;
}

int ag_gss_map_name(const char *principal, enum ag_gss_name_format fmt, const char *realms,
                    struct ag_identity *out)
{
    const char *at = strrchr(principal, '@');
    if (!at || at == principal || !at[1])
        return AG_EINVAL;
    for (const char *p = principal; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return AG_EINVAL;
    const char *realm = at + 1;
    size_t ul = (size_t)(at - principal), rl = strlen(realm);
    if (realms && *realms) {
        bool ok = false;
        const char *r = realms;
        while (*r && !ok) {
            const char *e = strchr(r, ',');
            size_t l = e ? (size_t)(e - r) : strlen(r);
            const char *t = r;
            while (l && (*t == ' ' || *t == '\t')) { /* "A.TEST, B.TEST" */
                t++;
                l--;
            }
            while (l && (t[l - 1] == ' ' || t[l - 1] == '\t'))
                l--;
            ok = l == rl && ag_strieq(t, l, realm);
            r = e ? e + 1 : r + strlen(r);
        }
        if (!ok)
            return AG_EUNSUPP;
    }
    if (ul >= sizeof out->user || rl >= sizeof out->domain)
        return AG_EINVAL;
    memset(out, 0, sizeof *out);
    switch (fmt) {
    case AG_GSS_NAME_KEEP:
        snprintf(out->user, sizeof out->user, "%s", principal);
        break;
    case AG_GSS_NAME_STRIP:
        memcpy(out->user, principal, ul);
        out->user[ul] = '\0';
        break;
    case AG_GSS_NAME_BACKSLASH:
        memcpy(out->user, principal, ul);
        out->user[ul] = '\0';
        memcpy(out->domain, realm, rl);
        break;
    }
    return 0;
}

int ag_gss_initiate_blocking(const char *client_keytab, const char *target, char **field, char *err,
                             size_t errlen)
{
    OM_uint32 major, minor;
    char e[512];
    int rc = AG_EBACKEND;
    gss_name_t tname = GSS_C_NO_NAME;
    gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
    gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
    gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
    *field = NULL;

    major = import_name(&minor, target, &tname);
    if (GSS_ERROR(major)) {
        format_status(major, minor, e, sizeof e);
        snprintf(err, errlen, "parent principal '%s': %s", target, e);
        goto done;
    }
    /* A memory ccache of its own: the gateway's tickets never land in a
     * file, and KRB5CCNAME (an operator's, or the acceptor's) is left alone. */
    gss_key_value_element_desc el[2] = {{"ccache", "MEMORY:authgate-parent"},
                                        {"client_keytab", client_keytab}};
    gss_key_value_set_desc store = {client_keytab ? 2 : 1, el};
    gss_OID_desc krb5 = *gss_mech_krb5;
    gss_OID_set_desc mechs = {1, &krb5};
    major = gss_acquire_cred_from(&minor, GSS_C_NO_NAME, GSS_C_INDEFINITE, GSS_C_NO_OID_SET,
                                  GSS_C_INITIATE, &store, &cred, NULL, NULL);
    if (!GSS_ERROR(major))
        major = gss_set_neg_mechs(&minor, cred, &mechs);
    if (GSS_ERROR(major)) {
        format_status(major, minor, e, sizeof e);
        snprintf(err, errlen, "client keytab %s: %s", client_keytab ? client_keytab : "(default)",
                 e);
        goto done;
    }
    static gss_OID_desc spnego = {6, (void *)"\x2b\x06\x01\x05\x05\x02"};
    major =
        gss_init_sec_context(&minor, cred, &ctx, tname, &spnego, 0, GSS_C_INDEFINITE,
                             GSS_C_NO_CHANNEL_BINDINGS, GSS_C_NO_BUFFER, NULL, &out, NULL, NULL);
    if (GSS_ERROR(major) || out.length == 0) {
        format_status(major, minor, e, sizeof e);
        snprintf(err, errlen, "gss_init_sec_context for %s: %s", target, e);
        goto done;
    }
    if (!(*field = ag_b64_field("Proxy-Authorization: Negotiate ", out.value, out.length))) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    rc = 0;
done:
    if (out.value) {
        ag_wipe(out.value, out.length);
        gss_release_buffer(&minor, &out);
    }
    if (ctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&minor, &ctx, GSS_C_NO_BUFFER);
    if (cred != GSS_C_NO_CREDENTIAL)
        gss_release_cred(&minor, &cred);
    if (tname != GSS_C_NO_NAME)
        gss_release_name(&minor, &tname);
    return rc;
}
