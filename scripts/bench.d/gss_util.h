/* gss_util.h - what the two Kerberos tools of scripts/bench share
 * (gss_pair.c, negotiate_load.c): the SPNEGO mechanism OID and a GSS-API
 * status as one line of text. Header-only: each tool is one gcc command.
 */
#ifndef BENCH_GSS_UTIL_H
#define BENCH_GSS_UTIL_H

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_krb5.h>
#include <stdio.h>

static gss_OID_desc spnego_oid = {6, (void *)"\x2b\x06\x01\x05\x05\x02"};

/* "what: major text (minor text)" into err. */
static void gss_err(OM_uint32 maj, OM_uint32 min, const char *what, char *err, size_t cap)
{
    OM_uint32 m, ctx = 0;
    gss_buffer_desc a = GSS_C_EMPTY_BUFFER, b = GSS_C_EMPTY_BUFFER;
    gss_display_status(&m, maj, GSS_C_GSS_CODE, GSS_C_NO_OID, &ctx, &a);
    ctx = 0;
    gss_display_status(&m, min, GSS_C_MECH_CODE, (gss_OID)gss_mech_krb5, &ctx, &b);
    snprintf(err, cap, "%s: %.*s (%.*s)", what, (int)a.length, a.value ? (char *)a.value : "",
             (int)b.length, b.value ? (char *)b.value : "");
    gss_release_buffer(&m, &a);
    gss_release_buffer(&m, &b);
}

#endif
