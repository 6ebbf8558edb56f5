/* negotiate_load.c - Negotiate (Kerberos) load generator for scripts/bench
 * (see loadgen.h for the engine, the modes and the output).
 *
 * Like a browser or curl: SPNEGO with the Kerberos mechanism, mutual
 * authentication requested, the token sent pre-emptively with the first
 * request (one leg: a 200 is due at once).  Every handshake calls
 * gss_init_sec_context afresh, so every request carries a new AP-REQ (new
 * authenticator, new subkey); the reply token is not checked (curl does not
 * either).  The client's credentials come from the environment: with
 * KRB5CCNAME=MEMORY:... and KRB5_CLIENT_KTNAME=<user keytab> the TGT and the
 * service ticket are obtained once (the warm-up call in mech_global_init) and
 * kept in memory, so the per-handshake cost is init_sec_context only.
 *
 *   negotiate_load -p PORT -U http://127.0.0.1:O/small -H 127.0.0.1:O -c 50 -t 2 \
 *                  -d 5 -m new|ka -b 100 -S HTTP@localhost
 *
 * Build: gcc -O2 -pthread -o negotiate_load negotiate_load.c -lgssapi_krb5
 */
#define _GNU_SOURCE
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_krb5.h>
#include <stdint.h>
#include <string.h>

#define MECH_SCHEME "Negotiate"
static const int mech_max_legs = 1;

#include "gss_util.h"
#include "loadgen.h"

struct neg_state {
    gss_name_t target;
};

static gss_name_t import_target(const char *service, char *err, size_t cap)
{
    OM_uint32 maj, min;
    gss_buffer_desc nb = {strlen(service), (void *)service};
    gss_name_t n = GSS_C_NO_NAME;
    maj = gss_import_name(&min, &nb, GSS_C_NT_HOSTBASED_SERVICE, &n);
    if (GSS_ERROR(maj)) {
        gss_err(maj, min, "gss_import_name", err, cap);
        return GSS_C_NO_NAME;
    }
    return n;
}

/* One fresh token: returns its length as "Negotiate <b64>" in out, or -1. */
static int make_token(gss_name_t target, char *out, size_t cap, char *err, size_t errcap)
{
    OM_uint32 maj, min, m;
    gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
    gss_buffer_desc tok = GSS_C_EMPTY_BUFFER;
    maj = gss_init_sec_context(&min, GSS_C_NO_CREDENTIAL, &ctx, target, &spnego_oid,
                               GSS_C_MUTUAL_FLAG, 0, GSS_C_NO_CHANNEL_BINDINGS, GSS_C_NO_BUFFER,
                               NULL, &tok, NULL, NULL);
    int r = -1;
    if (GSS_ERROR(maj)) {
        gss_err(maj, min, "gss_init_sec_context", err, errcap);
    } else if (10 + (tok.length + 2) / 3 * 4 + 1 > cap) {
        snprintf(err, errcap, "token of %zu bytes too large", tok.length);
    } else {
        memcpy(out, "Negotiate ", 10);
        r = 10 + (int)b64_encode(tok.value, tok.length, out + 10);
    }
    gss_release_buffer(&m, &tok);
    if (ctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&m, &ctx, GSS_C_NO_BUFFER);
    return r;
}

static int mech_global_init(struct lg_opts *o, char *err, size_t cap)
{
    /* Warm-up: gets the TGT (client keytab) and the service ticket into the
     * (memory) ccache before the clock starts. */
    gss_name_t t = import_target(o->service, err, cap);
    if (t == GSS_C_NO_NAME)
        return -1;
    static char buf[LG_REQ];
    int r = make_token(t, buf, sizeof buf, err, cap);
    OM_uint32 m;
    gss_release_name(&m, &t);
    return r < 0 ? -1 : 0;
}

static void *mech_thread_init(struct lg_opts *o, char *err, size_t cap)
{
    struct neg_state *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    s->target = import_target(o->service, err, cap);
    if (s->target == GSS_C_NO_NAME) {
        free(s);
        return NULL;
    }
    return s;
}

static void mech_thread_free(void *st)
{
    struct neg_state *s = st;
    OM_uint32 m;
    if (!s)
        return;
    gss_release_name(&m, &s->target);
    free(s);
}

static int mech_step(void *st, int leg, const char *chal, size_t chal_len, char *out, size_t cap,
                     char *err, size_t errcap)
{
    (void)leg;
    (void)chal;
    (void)chal_len;
    struct neg_state *s = st;
    return make_token(s->target, out, cap, err, errcap);
}

int main(int argc, char **argv)
{
    return lg_main(argc, argv);
}
