/* verify_winbind.c - libwbclient calls, one context per thread (see .h). */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <wbclient.h>

#include <stdlib.h>

#include "authgate/err.h"
#include "authgate/limits.h"
#include "ntlm_wire.h"
#include "util/util.h"
#include "verify_winbind.h"

static pthread_key_t ctx_key;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;

static void ctx_free(void *p)
{
    wbcCtxFree(p);
}

static void ctx_key_init(void)
{
    pthread_key_create(&ctx_key, ctx_free);
}

static struct wbcContext *thread_ctx(void)
{
    pthread_once(&ctx_once, ctx_key_init);
    struct wbcContext *ctx = pthread_getspecific(ctx_key);
    if (!ctx) {
        /* A context reconnects by itself after winbindd restarts. */
        ctx = wbcCtxCreate();
        if (ctx)
            pthread_setspecific(ctx_key, ctx);
    }
    return ctx;
}

/* The two NTSTATUS values the throttle and the counters tell apart
 * (MS-ERREF 2.3.1). */
#define NT_STATUS_WRONG_PASSWORD 0xc000006aU
#define NT_STATUS_NO_SUCH_USER 0xc0000064U

const char *ag_wb_status_text(uint32_t s)
{
    switch (s) {
    case NT_STATUS_WRONG_PASSWORD:
        return "wrong password";
    case NT_STATUS_NO_SUCH_USER:
        return "unknown user";
    case 0xc000005e:
        return "unknown domain";
    case 0xc0000072:
        return "account disabled";
    case 0xc0000234:
        return "account locked out";
    case 0xc0000071:
        return "password expired";
    case 0xc000006d:
        return "logon failure";
    case 0xc0000193:
        return "account expired";
    case 0xc000006f:
        return "logon hours";
    case 0xc0000070:
        return "workstation restriction";
    case 0xc0000198: /* NOLOGON_INTERDOMAIN_TRUST_ACCOUNT */
    case 0xc0000199: /* NOLOGON_WORKSTATION_TRUST_ACCOUNT */
    case 0xc000019a:
        return "machine account"; /* NOLOGON_SERVER_TRUST_ACCOUNT */
    default:
        return NULL;
    }
}

/* Trust accounts (HOST$ of a workstation or server, another domain) are
 * computers, not people. */
static bool machine_account(const struct wbcAuthUserInfo *info, bool allow_machine)
{
    uint32_t refused = WBC_ACB_DOMTRUST;
    if (!allow_machine)
        refused |= WBC_ACB_WSTRUST | WBC_ACB_SVRTRUST;
    return (info->acct_flags & refused) != 0;
}

static int finish(wbcErr rc, struct wbcAuthUserInfo *info, struct wbcAuthErrorInfo *err,
                  bool allow_machine, struct ag_wb_result *out)
{
    int ret;
    if (rc == WBC_ERR_SUCCESS && info) {
        if (info->user_flags & (WBC_AUTH_USER_INFO_GUEST | WBC_AUTH_USER_INFO_USED_LM_PASSWORD)) {
            /* A guest mapping is not an identity; LM is never acceptable. */
            snprintf(out->reason, sizeof out->reason, "%s",
                     (info->user_flags & WBC_AUTH_USER_INFO_GUEST) ? "guest" : "used LM");
            ret = AG_EAUTH;
        } else if (machine_account(info, allow_machine)) {
            /* Also checked here, not only through parameter_control: a DC
             * that ignores it must not let a computer account through. */
            snprintf(out->reason, sizeof out->reason, "machine account");
            ret = AG_EAUTH;
        } else {
            snprintf(out->id.user, sizeof out->id.user, "%s",
                     info->account_name ? info->account_name : "");
            snprintf(out->id.domain, sizeof out->id.domain, "%s",
                     info->domain_name ? info->domain_name : "");
            memcpy(out->session_key, info->user_session_key, sizeof out->session_key);
            struct ag_buf sids;
            ag_buf_init(&sids, 64 * 1024);
            for (uint32_t i = 0; i < info->num_sids; i++) {
                char s[WBC_SID_STRING_BUFLEN];
                wbcSidToStringBuf(&info->sids[i].sid, s, sizeof s);
                if (ag_buf_printf(&sids, "%s%s", i ? "," : "", s) != 0)
                    break;
            }
            if (ag_buf_append(&sids, "", 1) == 0)
                out->id.sids = ag_buf_steal(&sids, NULL);
            else
                ag_buf_free(&sids);
            ret = out->id.user[0] ? 0 : AG_EAUTH;
        }
    } else if (rc == WBC_ERR_AUTH_ERROR) {
        out->nt_status = err ? err->nt_status : 0;
        out->refusal = out->nt_status == NT_STATUS_WRONG_PASSWORD ? AG_REFUSED_PASSWORD
                       : out->nt_status == NT_STATUS_NO_SUCH_USER ? AG_REFUSED_UNKNOWN_USER
                                                                  : AG_REFUSED_OTHER;
        const char *t = ag_wb_status_text(out->nt_status);
        if (t)
            snprintf(out->reason, sizeof out->reason, "%s", t);
        else
            snprintf(out->reason, sizeof out->reason, "nt_status 0x%08x", out->nt_status);
        ret = AG_EAUTH;
    } else if (rc == WBC_ERR_DOMAIN_NOT_FOUND) {
        snprintf(out->reason, sizeof out->reason, "unknown domain");
        ret = AG_EAUTH;
    } else {
        snprintf(out->reason, sizeof out->reason, "winbind: %s", wbcErrorString(rc));
        ret = AG_EBACKEND;
    }
    if (info) {
        ag_wipe(info->user_session_key, sizeof info->user_session_key);
        ag_wipe(info->lm_session_key, sizeof info->lm_session_key);
        wbcFreeMemory(info);
    }
    if (err)
        wbcFreeMemory(err);
    return ret;
}

/* Clears out and returns this thread's context, or NULL with the reason set. */
static struct wbcContext *begin(struct ag_wb_result *out)
{
    memset(out, 0, sizeof *out);
    struct wbcContext *ctx = thread_ctx();
    if (!ctx)
        snprintf(out->reason, sizeof out->reason, "winbind: no context");
    return ctx;
}

/* One logon through winbindd with the parameters the caller filled. */
static int authenticate(const struct wbcAuthUserParams *p, bool allow_machine,
                        struct ag_wb_result *out)
{
    struct wbcContext *ctx = begin(out);
    if (!ctx)
        return AG_EBACKEND;
    struct wbcAuthUserInfo *info = NULL;
    struct wbcAuthErrorInfo *err = NULL;
    wbcErr rc = wbcCtxAuthenticateUserEx(ctx, p, &info, &err);
    return finish(rc, info, err, allow_machine, out);
}

int ag_wb_plain_blocking(const char *domain, const char *user, const char *password,
                         struct ag_wb_result *out)
{
    struct wbcAuthUserParams p = {
        .account_name = user,
        .domain_name = domain && *domain ? domain : NULL,
        .level = WBC_AUTH_USER_LEVEL_PLAIN,
    };
    p.password.plaintext = password;
    return authenticate(&p, false, out);
}

int ag_wb_response_blocking(const char *domain, const char *user, const char *workstation,
                            const uint8_t challenge[NTLM_SERVER_CHALLENGE_LEN], const uint8_t *nt,
                            size_t nt_len, const uint8_t *lm, size_t lm_len, bool allow_machine,
                            struct ag_wb_result *out)
{
    struct wbcAuthUserParams p = {
        .account_name = user,
        .domain_name = domain,
        .workstation_name = workstation,
        .level = WBC_AUTH_USER_LEVEL_RESPONSE,
    };
    /* Without these bits Samba (and a Windows DC) refuses a workstation or
     * server trust account (HOST$) with NOLOGON_*_TRUST_ACCOUNT; they are set
     * only with ntlm_allow_machine_accounts. */
    if (allow_machine)
        p.parameter_control =
            WBC_MSV1_0_ALLOW_SERVER_TRUST_ACCOUNT | WBC_MSV1_0_ALLOW_WORKSTATION_TRUST_ACCOUNT;
    memcpy(p.password.response.challenge, challenge, NTLM_SERVER_CHALLENGE_LEN);
    p.password.response.nt_length = (uint32_t)nt_len;
    p.password.response.nt_data = (uint8_t *)nt;
    /* An NTLMv2 response (longer than NTLMv1's 24 bytes) goes alone: given
     * an LM field too, Samba falls back to LMv2 when NTProofStr fails, and
     * LMv2 binds none of the blob's AV pairs (target name, MIC flag), so a
     * relay could alter them and still log in. */
    if (nt_len > NTLM_V1_RESPONSE_LEN) {
        lm = NULL;
        lm_len = 0;
    }
    p.password.response.lm_length = (uint32_t)lm_len;
    p.password.response.lm_data = (uint8_t *)lm;
    return authenticate(&p, allow_machine, out);
}

int ag_wb_names_blocking(char *nb_domain, char *dns_domain, char *nb_name, size_t cap)
{
    struct wbcContext *ctx = thread_ctx();
    struct wbcInterfaceDetails *d = NULL;
    if (!ctx || wbcCtxInterfaceDetails(ctx, &d) != WBC_ERR_SUCCESS || !d) {
        if (d)
            wbcFreeMemory(d);
        return AG_EBACKEND;
    }
    snprintf(nb_domain, cap, "%s", d->netbios_domain ? d->netbios_domain : "");
    snprintf(dns_domain, cap, "%s", d->dns_domain ? d->dns_domain : "");
    snprintf(nb_name, cap, "%s", d->netbios_name ? d->netbios_name : "");
    wbcFreeMemory(d);
    return 0;
}

/* --- the group-SID cache ----------------------------------------------------
 * A small open list under one mutex: lookups are rare (once per Kerberos
 * handshake of a user, when rules name groups) next to the winbind round
 * trip they save. Full: everything is dropped (entries are cheap to refill). */

struct gentry {
    char name[AG_USER_MAX + 1];
    char *sids;
    uint64_t expires_ms;
    struct gentry *next;
};

static pthread_mutex_t gcache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gentry *gcache;
static size_t gcache_n;
/* winbind's own domain names, under the same lock and TTL (0 = not known) */
static char own_nb[256], own_dns[256];
static uint64_t own_expires_ms;

static void gcache_drop_all(void)
{
    for (struct gentry *e = gcache, *n; e; e = n) {
        n = e->next;
        free(e->sids);
        free(e);
    }
    gcache = NULL;
    gcache_n = 0;
}

void ag_wb_user_sids_cache_clear(void)
{
    pthread_mutex_lock(&gcache_lock);
    gcache_drop_all();
    own_expires_ms = 0;
    pthread_mutex_unlock(&gcache_lock);
}

int ag_wb_realm_domain_cached_blocking(const char *realm, uint64_t now_ms, char *nb_domain,
                                       size_t cap)
{
    char nb[256], dns[256], name[256];
    pthread_mutex_lock(&gcache_lock);
    bool fresh = own_expires_ms > now_ms;
    if (fresh) {
        memcpy(nb, own_nb, sizeof nb);
        memcpy(dns, own_dns, sizeof dns);
    }
    pthread_mutex_unlock(&gcache_lock);
    if (!fresh) {
        if (ag_wb_names_blocking(nb, dns, name, sizeof nb) != 0)
            return AG_EBACKEND;
        pthread_mutex_lock(&gcache_lock);
        memcpy(own_nb, nb, sizeof nb);
        memcpy(own_dns, dns, sizeof dns);
        own_expires_ms = now_ms + AG_GROUP_CACHE_TTL_MS;
        pthread_mutex_unlock(&gcache_lock);
    }
    /* A standalone winbindd has no DNS name: no realm is its own. */
    if (!dns[0] || !nb[0] || !ag_strieq(dns, strlen(dns), realm))
        return AG_ENOTFOUND;
    snprintf(nb_domain, cap, "%s", nb);
    return 0;
}

int ag_wb_user_sids_cached_blocking(const char *name, uint64_t now_ms, char **out)
{
    pthread_mutex_lock(&gcache_lock);
    for (struct gentry **p = &gcache; *p;) {
        struct gentry *e = *p;
        if (e->expires_ms <= now_ms) {
            *p = e->next;
            free(e->sids);
            free(e);
            gcache_n--;
            continue;
        }
        if (ag_strieq(e->name, strlen(e->name), name)) {
            *out = strdup(e->sids);
            pthread_mutex_unlock(&gcache_lock);
            return *out ? 0 : AG_ENOMEM;
        }
        p = &e->next;
    }
    pthread_mutex_unlock(&gcache_lock);
    int rc = ag_wb_user_sids_blocking(name, out);
    if (rc != 0 || strlen(name) > AG_USER_MAX)
        return rc;
    struct gentry *e = calloc(1, sizeof *e);
    if (!e || !(e->sids = strdup(*out))) {
        free(e);
        return 0; /* the answer stands; only the caching failed */
    }
    snprintf(e->name, sizeof e->name, "%s", name);
    e->expires_ms = now_ms + AG_GROUP_CACHE_TTL_MS;
    pthread_mutex_lock(&gcache_lock);
    if (gcache_n >= AG_GROUP_CACHE_MAX)
        gcache_drop_all();
    e->next = gcache;
    gcache = e;
    gcache_n++;
    pthread_mutex_unlock(&gcache_lock);
    return 0;
}

int ag_wb_ping_blocking(void)
{
    struct wbcContext *ctx = thread_ctx();
    return ctx && wbcCtxPing(ctx) == WBC_ERR_SUCCESS ? 0 : AG_EBACKEND;
}

static int split_name(const char *name, char *dom, size_t dcap, char *acct, size_t acap)
{
    const char *bs = strchr(name, '\\');
    if (bs) {
        if ((size_t)(bs - name) >= dcap || strlen(bs + 1) >= acap)
            return AG_EINVAL;
        memcpy(dom, name, (size_t)(bs - name));
        dom[bs - name] = '\0';
        snprintf(acct, acap, "%s", bs + 1);
    } else {
        dom[0] = '\0';
        if (strlen(name) >= acap)
            return AG_EINVAL;
        snprintf(acct, acap, "%s", name);
    }
    return 0;
}

static int lookup_sid(struct wbcContext *ctx, const char *name, struct wbcDomainSid *sid)
{
    char dom[256], acct[256];
    if (split_name(name, dom, sizeof dom, acct, sizeof acct) != 0)
        return AG_EINVAL;
    if (!dom[0]) {
        /* LookupName needs a domain: a bare name is in winbind's own. */
        struct wbcInterfaceDetails *d = NULL;
        wbcErr e = wbcCtxInterfaceDetails(ctx, &d);
        if (e != WBC_ERR_SUCCESS || !d || !d->netbios_domain) {
            if (d)
                wbcFreeMemory(d);
            return AG_EBACKEND;
        }
        snprintf(dom, sizeof dom, "%s", d->netbios_domain);
        wbcFreeMemory(d);
    }
    enum wbcSidType type;
    wbcErr rc = wbcCtxLookupName(ctx, dom, acct, sid, &type);
    if (rc == WBC_ERR_SUCCESS)
        return 0;
    return (rc == WBC_ERR_WINBIND_NOT_AVAILABLE || rc == WBC_ERR_UNKNOWN_FAILURE) ? AG_EBACKEND
                                                                                  : AG_ENOTFOUND;
}

int ag_wb_name_to_sid_blocking(const char *name, char *sid, size_t cap)
{
    struct wbcContext *ctx = thread_ctx();
    if (!ctx)
        return AG_EBACKEND;
    struct wbcDomainSid s;
    int rc = lookup_sid(ctx, name, &s);
    if (rc)
        return rc;
    char buf[WBC_SID_STRING_BUFLEN];
    wbcSidToStringBuf(&s, buf, sizeof buf);
    snprintf(sid, cap, "%s", buf);
    return 0;
}

int ag_wb_user_sids_blocking(const char *name, char **out)
{
    struct wbcContext *ctx = thread_ctx();
    if (!ctx)
        return AG_EBACKEND;
    struct wbcDomainSid user;
    int rc = lookup_sid(ctx, name, &user);
    if (rc)
        return rc;
    uint32_t n = 0;
    struct wbcDomainSid *sids = NULL;
    wbcErr w = wbcCtxLookupUserSids(ctx, &user, false, &n, &sids);
    /* The account exists (its SID resolved): not knowing its groups is a
     * failed lookup, never "no groups" (a group= deny would fail open). */
    if (w != WBC_ERR_SUCCESS)
        return AG_EBACKEND;
    struct ag_buf b;
    ag_buf_init(&b, 64 * 1024);
    char s[WBC_SID_STRING_BUFLEN];
    wbcSidToStringBuf(&user, s, sizeof s);
    int e = ag_buf_appendz(&b, s);
    for (uint32_t i = 0; i < n && !e; i++) {
        wbcSidToStringBuf(&sids[i], s, sizeof s);
        e = ag_buf_printf(&b, ",%s", s);
    }
    wbcFreeMemory(sids);
    if (e || ag_buf_append(&b, "", 1) != 0) {
        ag_buf_free(&b);
        return AG_EBACKEND; /* a partial list is no list */
    }
    *out = ag_buf_steal(&b, NULL);
    return 0;
}
