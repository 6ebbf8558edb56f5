/* doctor_krb.c - the Kerberos checks of `authgate doctor` (see doctor.h).
 *
 * The failures users meet as a silent fall-back to NTLM or a password prompt,
 * each found here before a user does:
 *   kdc        the realm's KDC answers (an AS exchange for our own service
 *              principal, with the keytab's key);
 *   clock      the KDC's clock (the authtime it stamps) against ours;
 *   spn        HTTP/<proxy_host> is a principal the KDC issues tickets for;
 *   keytab_key a ticket the KDC issues for it now decrypts with the keytab:
 *              the kvno the KDC uses is in the keytab and its key is the
 *              same (the "kvno N not found" of every user after a password
 *              change or a re-export elsewhere).
 * The service ticket is asked for with the TGT the keytab itself yields, or,
 * where the KDC does not let the service principal be a client (an AD SPN on
 * a machine account), with the TGT in the caller's ccache (kinit first). */
#include <gssapi/gssapi_krb5.h>
#include <krb5.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/negotiate.h"
#include "authgate/limits.h"
#include "doctor.h"

struct kstate {
    krb5_context ctx;
    krb5_keytab kt;
    krb5_principal sp; /* HTTP/host@REALM as the keytab names it */
    char sname[512];   /* its text */
    char ktname[600];
    krb5_kvno kt_kvno; /* the highest kvno the keytab holds for sp */
};

static const char *kmsg(struct kstate *k, krb5_error_code rc, char *buf, size_t cap)
{
    const char *m = krb5_get_error_message(k->ctx, rc);
    snprintf(buf, cap, "%s", m ? m : "unknown error");
    krb5_free_error_message(k->ctx, m);
    return buf;
}

/* Finds HTTP/host@ANY-REALM in the keytab (host compared without case, as
 * the acceptor does) and the highest kvno it has. 0 or -1. */
static int find_service(struct kstate *k, const char *host)
{
    krb5_kt_cursor cur;
    krb5_keytab_entry e;
    if (krb5_kt_start_seq_get(k->ctx, k->kt, &cur) != 0)
        return -1;
    while (krb5_kt_next_entry(k->ctx, k->kt, &e, &cur) == 0) {
        const krb5_principal p = e.principal;
        bool match = krb5_princ_size(k->ctx, p) == 2 &&
                     krb5_princ_component(k->ctx, p, 0)->length == 4 &&
                     strncmp(krb5_princ_component(k->ctx, p, 0)->data, "HTTP", 4) == 0 &&
                     krb5_princ_component(k->ctx, p, 1)->length == strlen(host) &&
                     strncasecmp(krb5_princ_component(k->ctx, p, 1)->data, host, strlen(host)) == 0;
        if (match && !k->sp)
            krb5_copy_principal(k->ctx, p, &k->sp);
        if (match && k->sp && krb5_principal_compare(k->ctx, p, k->sp) && e.vno > k->kt_kvno)
            k->kt_kvno = e.vno;
        krb5_free_keytab_entry_contents(k->ctx, &e);
    }
    krb5_kt_end_seq_get(k->ctx, k->kt, &cur);
    return k->sp ? 0 : -1;
}

/* Whether the caller's credential cache holds a ticket (kinit was run). */
static bool have_default_tgt(struct kstate *k)
{
    krb5_ccache cc = NULL;
    krb5_principal who = NULL;
    bool ok = krb5_cc_default(k->ctx, &cc) == 0 && krb5_cc_get_principal(k->ctx, cc, &who) == 0;
    krb5_free_principal(k->ctx, who);
    if (cc)
        krb5_cc_close(k->ctx, cc);
    return ok;
}

/* The clock against the KDC's: authtime is the KDC's clock when it issued
 * the TGT, between our t0 and t1. */
static void check_clock(struct doc *d, const char *realm, krb5_timestamp authtime, time_t t0,
                        time_t t1)
{
    long long skew = (long long)(uint32_t)authtime - ((long long)t0 + (long long)t1) / 2;
    long long a = skew < 0 ? -skew : skew;
    const char *dir = skew > 0 ? "behind" : "ahead of";
    if (a > AG_DOCTOR_SKEW_FAIL_S)
        doctor_line(d, "FAIL", "clock",
                    "this machine is %lld s %s the KDC of %s (Kerberos refuses beyond %d s): "
                    "every Negotiate login fails -- synchronize the clock with the domain "
                    "(chrony/systemd-timesyncd against the domain controllers)",
                    a, dir, realm, AG_DOCTOR_SKEW_FAIL_S);
    else if (a > AG_DOCTOR_SKEW_WARN_S)
        doctor_line(d, "WARN", "clock",
                    "this machine is %lld s %s the KDC of %s (Kerberos refuses beyond %d s) -- "
                    "check NTP before the drift reaches the limit",
                    a, dir, realm, AG_DOCTOR_SKEW_FAIL_S);
    else
        doctor_line(d, "OK", "clock", "within %lld s of the KDC of %s", a, realm);
}

/* A ticket the KDC issues for sp now, against the keytab. */
static bool check_ticket(struct doc *d, struct kstate *k, krb5_ccache cc)
{
    bool ok = false;
    char m[400];
    krb5_creds in, *out = NULL;
    krb5_ticket *tkt = NULL;
    memset(&in, 0, sizeof in);
    krb5_error_code rc = krb5_cc_get_principal(k->ctx, cc, &in.client);
    if (rc == 0) {
        in.server = k->sp;
        rc = krb5_get_credentials(k->ctx, 0, cc, &in, &out);
        in.server = NULL;
    }
    if (rc == KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN) {
        doctor_line(d, "FAIL", "spn",
                    "the KDC knows no %s: browsers get no ticket for the proxy and fall back "
                    "to NTLM or a prompt -- register it on the proxy's account (AD: setspn -S "
                    "HTTP/<proxy_host> ACCOUNT; MIT: kadmin addprinc -randkey), then export the "
                    "keytab again",
                    k->sname);
        goto out;
    }
    if (rc != 0) {
        doctor_line(d, "FAIL", "spn", "no ticket for %s: %s -- check the KDC log", k->sname,
                    kmsg(k, rc, m, sizeof m));
        goto out;
    }
    doctor_line(d, "OK", "spn", "the KDC issues tickets for %s", k->sname);
    if ((rc = krb5_decode_ticket(&out->ticket, &tkt)) != 0) {
        doctor_line(d, "FAIL", "keytab_key", "cannot decode the ticket: %s",
                    kmsg(k, rc, m, sizeof m));
        goto out;
    }
    krb5_kvno kvno = tkt->enc_part.kvno;
    krb5_enctype et = tkt->enc_part.enctype;
    char etname[64];
    if (krb5_enctype_to_name(et, 0, etname, sizeof etname) != 0)
        snprintf(etname, sizeof etname, "%d", (int)et);
    krb5_keytab_entry e;
    rc = krb5_kt_get_entry(k->ctx, k->kt, k->sp, kvno, et, &e);
    if (rc == KRB5_KT_KVNONOTFOUND || (rc == KRB5_KT_NOTFOUND && k->kt_kvno != kvno)) {
        doctor_line(d, "FAIL", "keytab_key",
                    "the KDC encrypts tickets for %s with kvno %u, the keytab %s holds kvno %u: "
                    "every Negotiate login fails with \"kvno %u not found\" -- export the "
                    "current key again (AD: ktpass or net ads keytab create after a password "
                    "change; MIT: kadmin ktadd -norandkey) and restart or reload authgate",
                    k->sname, (unsigned)kvno, k->ktname, (unsigned)k->kt_kvno, (unsigned)kvno);
        goto out;
    }
    if (rc != 0) {
        doctor_line(d, "FAIL", "keytab_key",
                    "the keytab %s has no %s key (kvno %u) for %s: %s -- export a key of "
                    "that type (the account's msDS-SupportedEncryptionTypes and the keytab must "
                    "agree)",
                    k->ktname, etname, (unsigned)kvno, k->sname, kmsg(k, rc, m, sizeof m));
        goto out;
    }
    krb5_free_keytab_entry_contents(k->ctx, &e);
    rc = krb5_server_decrypt_ticket_keytab(k->ctx, k->kt, tkt);
    if (rc != 0) {
        doctor_line(d, "FAIL", "keytab_key",
                    "the keytab's kvno %u key for %s does not decrypt the KDC's ticket (%s): "
                    "the key changed without a new kvno -- export the current key again",
                    (unsigned)kvno, k->sname, kmsg(k, rc, m, sizeof m));
        goto out;
    }
    doctor_line(d, "OK", "keytab_key",
                "a ticket the KDC issued now for %s (kvno %u, %s) decrypts with %s", k->sname,
                (unsigned)kvno, etname, k->ktname);
    ok = true;
out:
    krb5_free_ticket(k->ctx, tkt);
    krb5_free_creds(k->ctx, out);
    krb5_free_principal(k->ctx, in.client);
    return ok;
}

/* The daemon's own path end to end: a GSS initiator with the ticket in cc
 * makes a token for the service, and the acceptor the daemon would build
 * from this configuration (keytab, acceptor name, replay cache) accepts it. */
static void check_gss(struct doc *d, struct kstate *k, krb5_ccache cc, const struct ag_config *cfg,
                      const char *host)
{
    OM_uint32 minor;
    gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
    gss_name_t target = GSS_C_NO_NAME;
    gss_ctx_id_t ictx = GSS_C_NO_CONTEXT;
    gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
    struct ag_gss_acceptor *a = NULL;
    struct ag_gss_ctx *actx = NULL;
    struct ag_gss_step step;
    memset(&step, 0, sizeof step);
    gss_buffer_desc tn = {strlen(k->sname), k->sname};
    gss_OID_desc krb5_oid = {9, (void *)"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02"};
    if (gss_krb5_import_cred(&minor, cc, NULL, NULL, &cred) != GSS_S_COMPLETE ||
        gss_import_name(&minor, &tn, (gss_OID)GSS_KRB5_NT_PRINCIPAL_NAME, &target) !=
            GSS_S_COMPLETE) {
        doctor_line(d, "WARN", "gss_accept", "could not set up a GSS initiator: not checked");
        goto out;
    }
    OM_uint32 maj =
        gss_init_sec_context(&minor, cred, &ictx, target, &krb5_oid, 0, 0,
                             GSS_C_NO_CHANNEL_BINDINGS, GSS_C_NO_BUFFER, NULL, &out, NULL, NULL);
    if (GSS_ERROR(maj) || !out.length) {
        doctor_line(d, "WARN", "gss_accept", "the initiator made no token: not checked");
        goto out;
    }
    char name[300], err[700];
    ag_config_acceptor_name(cfg, name, sizeof name);
    if (!(a = ag_gss_acceptor_new(cfg->keytab, name, err, sizeof err)))
        goto out; /* the keytab check said why */
    ag_gss_accept_blocking(a, &actx, out.value, out.length, NULL, 0, &step);
    if (step.status == AG_GSS_DONE)
        doctor_line(d, "OK", "gss_accept",
                    "the daemon's acceptor (%s) accepts a fresh ticket for %s (client %s)",
                    ag_gss_acceptor_name(a), k->sname, step.principal);
    else if (step.status == AG_GSS_FAILED)
        doctor_line(d, "FAIL", "gss_accept",
                    "the daemon's acceptor (%s) refuses a fresh ticket for %s: %s -- %s",
                    ag_gss_acceptor_name(a), k->sname, step.error,
                    step.fail == AG_GSS_FAIL_REPLAY ? "the replay cache (rcache_dir) is shared "
                                                      "or broken"
                    : step.fail == AG_GSS_FAIL_SKEW ? "synchronize the clock"
                                                    : "check negotiate_acceptor and the keytab");
    else
        doctor_line(d, "WARN", "gss_accept", "the acceptor asked for another round: unexpected");
out:
    ag_gss_step_clear(&step);
    ag_gss_ctx_free(actx);
    ag_gss_acceptor_unref(a);
    gss_release_buffer(&minor, &out);
    if (ictx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&minor, &ictx, GSS_C_NO_BUFFER);
    gss_release_name(&minor, &target);
    gss_release_cred(&minor, &cred);
}

void doctor_kerberos(struct doc *d, const struct ag_config *cfg, const char *host)
{
    if (!ag_config_scheme_enabled(cfg, AG_SCHEME_NEGOTIATE))
        return;
    struct kstate k;
    memset(&k, 0, sizeof k);
    char m[400];
    krb5_get_init_creds_opt *opt = NULL;
    krb5_ccache cc = NULL;
    bool own_cc = false; /* a memory ccache of ours, destroyed; else the caller's, closed */
    krb5_creds creds;
    bool have_creds = false;
    krb5_error_code rc = krb5_init_context(&k.ctx);
    if (rc != 0) {
        doctor_line(d, "FAIL", "kdc",
                    "cannot read the Kerberos configuration (krb5.conf) -- fix "
                    "its syntax");
        return;
    }
    if (cfg->keytab) {
        snprintf(k.ktname, sizeof k.ktname, "FILE:%s", cfg->keytab);
        rc = krb5_kt_resolve(k.ctx, k.ktname, &k.kt);
    } else {
        rc = krb5_kt_default(k.ctx, &k.kt);
        if (rc == 0)
            krb5_kt_get_name(k.ctx, k.kt, k.ktname, sizeof k.ktname);
    }
    if (rc != 0 || find_service(&k, host) != 0)
        goto done; /* the keytab check has said why already */
    char *un = NULL;
    if (krb5_unparse_name(k.ctx, k.sp, &un) == 0) {
        snprintf(k.sname, sizeof k.sname, "%s", un);
        krb5_free_unparsed_name(k.ctx, un);
    }
    char realm[AG_REALM_NAME_MAX + 1];
    snprintf(realm, sizeof realm, "%.*s", (int)krb5_princ_realm(k.ctx, k.sp)->length,
             krb5_princ_realm(k.ctx, k.sp)->data);

    /* The AS exchange: our own service principal as the client, with the
     * keytab's key (the KDC answers, and it takes that key). */
    memset(&creds, 0, sizeof creds);
    if ((rc = krb5_get_init_creds_opt_alloc(k.ctx, &opt)) != 0)
        goto done;
    krb5_get_init_creds_opt_set_tkt_life(opt, 600);
    krb5_get_init_creds_opt_set_forwardable(opt, 0);
    time_t t0 = time(NULL);
    rc = krb5_get_init_creds_keytab(k.ctx, &creds, k.sp, k.kt, 0, NULL, opt);
    time_t t1 = time(NULL);
    switch (rc) {
    case 0:
        have_creds = true;
        doctor_line(d, "OK", "kdc", "a KDC of %s answers and accepts the keytab's key for %s",
                    realm, k.sname);
        check_clock(d, realm, creds.times.authtime, t0, t1);
        break;
    case KRB5_KDC_UNREACH:
        doctor_line(d, "FAIL", "kdc",
                    "no KDC of realm %s answers (%s): no browser can get a ticket either -- "
                    "check the kdc lines of [realms] %s in krb5.conf (or the DNS SRV records "
                    "_kerberos._udp/_tcp.%s) and that port 88 (UDP and TCP) is open",
                    realm, kmsg(&k, rc, m, sizeof m), realm, realm);
        goto done;
    case KRB5_REALM_UNKNOWN:
    case KRB5_REALM_CANT_RESOLVE:
        doctor_line(d, "FAIL", "kdc",
                    "no KDC is known for realm %s (%s) -- add it to [realms] in krb5.conf or "
                    "set dns_lookup_kdc = true with SRV records",
                    realm, kmsg(&k, rc, m, sizeof m));
        goto done;
    case KRB5KRB_AP_ERR_SKEW:
        doctor_line(d, "OK", "kdc", "a KDC of %s answers", realm);
        doctor_line(d, "FAIL", "clock",
                    "the KDC of %s says the clocks differ beyond its limit (%s): every "
                    "Negotiate login fails -- synchronize the clock with the domain",
                    realm, kmsg(&k, rc, m, sizeof m));
        goto done;
    case KRB5KDC_ERR_PREAUTH_FAILED:
    case KRB5KRB_AP_ERR_BAD_INTEGRITY:
        doctor_line(d, "OK", "kdc", "a KDC of %s answers", realm);
        /* With a user's ticket at hand, the ticket check below names the
         * kvno the KDC uses against the keytab's. */
        if (have_default_tgt(&k))
            break;
        doctor_line(d, "FAIL", "keytab_key",
                    "the KDC refuses the keytab's key for %s (kvno %u in %s: %s): the key "
                    "changed since the keytab was written, and every Negotiate login fails "
                    "with \"kvno not found\" or an integrity error -- export the current key "
                    "again (AD: ktpass or net ads keytab create; MIT: kadmin ktadd)",
                    k.sname, (unsigned)k.kt_kvno, k.ktname, kmsg(&k, rc, m, sizeof m));
        goto done;
    default:
        /* The KDC answered but will not make our service principal a
         * client (AD: an SPN is no logon name): the caller's TGT asks. */
        doctor_line(d, "OK", "kdc", "a KDC of %s answers (%s as a client: %s)", realm, k.sname,
                    kmsg(&k, rc, m, sizeof m));
        break;
    }
    if (have_creds) {
        rc = krb5_cc_new_unique(k.ctx, "MEMORY", NULL, &cc);
        own_cc = rc == 0;
        if (rc == 0)
            rc = krb5_cc_initialize(k.ctx, cc, k.sp);
        if (rc == 0)
            rc = krb5_cc_store_cred(k.ctx, cc, &creds);
        if (rc != 0) {
            doctor_line(d, "FAIL", "keytab_key", "memory ccache: %s", kmsg(&k, rc, m, sizeof m));
            goto done;
        }
    } else {
        krb5_principal who = NULL;
        if (krb5_cc_default(k.ctx, &cc) != 0 || krb5_cc_get_principal(k.ctx, cc, &who) != 0) {
            doctor_line(d, "WARN", "keytab_key",
                        "not checked: the KDC does not let %s log on, and there is no ticket "
                        "in the credential cache -- kinit as any domain user and run the "
                        "doctor again",
                        k.sname);
            krb5_free_principal(k.ctx, who);
            goto done;
        }
        krb5_free_principal(k.ctx, who);
        doctor_line(d, "INFO", "clock", "not measured (no fresh ticket of our own)");
    }
    if (check_ticket(d, &k, cc))
        check_gss(d, &k, cc, cfg, host);
done:
    if (cc && own_cc)
        krb5_cc_destroy(k.ctx, cc);
    else if (cc)
        krb5_cc_close(k.ctx, cc);
    if (have_creds)
        krb5_free_cred_contents(k.ctx, &creds);
    krb5_get_init_creds_opt_free(k.ctx, opt);
    krb5_free_principal(k.ctx, k.sp);
    if (k.kt)
        krb5_kt_close(k.ctx, k.kt);
    krb5_free_context(k.ctx);
}
