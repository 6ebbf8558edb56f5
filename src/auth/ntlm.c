/* ntlm.c - the NTLM server handshake (see ntlm.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nettle/md5.h>

#include "authgate/err.h"
#include "ntcrypto.h"
#include "ntlm.h"
#include "util/util.h"

void ag_ntlm_state_free(void *p)
{
    struct ag_ntlm_state *st = p;
    if (!st)
        return;
    free(st->neg);
    free(st->chal);
    ag_wipe(st, sizeof *st);
    free(st);
}

void ag_ntlm2_session_challenge(const uint8_t server[8], const uint8_t client[8], uint8_t out[8])
{
    struct md5_ctx m;
    uint8_t d[MD5_DIGEST_SIZE];
    md5_init(&m);
    md5_update(&m, 8, server);
    md5_update(&m, 8, client);
    md5_digest(&m, sizeof d, d);
    memcpy(out, d, 8);
}

uint32_t ag_ntlm_negotiate_flags(const uint8_t *neg, size_t len)
{
    struct ag_ntlm_negotiate n;
    return ag_ntlm_parse_negotiate(neg, len, &n) == 0 ? n.flags : 0;
}

int ag_ntlm_challenge(const uint8_t *neg, size_t neglen, const struct ag_ntlm_server *srv,
                      uint64_t filetime_now, struct ag_ntlm_state **out, uint8_t *chal,
                      size_t chalcap, size_t *chal_len)
{
    struct ag_ntlm_negotiate n;
    if (ag_ntlm_message_type(neg, neglen) != NTLMSSP_NEGOTIATE_MSG ||
        ag_ntlm_parse_negotiate(neg, neglen, &n) != 0)
        return AG_EINVAL;
    struct ag_ntlm_state *st = calloc(1, sizeof *st);
    if (!st)
        return AG_ENOMEM;
    /* A CSPRNG challenge, fresh per handshake: predictable ones enable
     * precomputed-response attacks. */
    if (ag_random(st->server_challenge, 8) != 0) {
        ag_ntlm_state_free(st);
        return AG_EIO;
    }
    struct ag_ntlm_challenge_params p = {
        .client_flags = n.flags,
        .server_challenge = st->server_challenge,
        .target_name = srv->nb_domain,
        .nb_domain = srv->nb_domain,
        .nb_computer = srv->nb_computer,
        .dns_domain = srv->dns_domain,
        .dns_computer = srv->dns_computer,
        .timestamp = filetime_now,
    };
    size_t cl;
    int rc = ag_ntlm_build_challenge(&p, chal, chalcap, &cl, &st->chal_flags);
    if (rc != 0) {
        ag_ntlm_state_free(st);
        return rc;
    }
    st->neg = malloc(neglen);
    st->chal = malloc(cl);
    if (!st->neg || !st->chal) {
        ag_ntlm_state_free(st);
        return AG_ENOMEM;
    }
    memcpy(st->neg, neg, neglen);
    st->neglen = neglen;
    memcpy(st->chal, chal, cl);
    st->challen = cl;
    *chal_len = cl;
    *out = st;
    return 0;
}

void ag_ntlm_verify_free(struct ag_ntlm_verify *v)
{
    if (!v)
        return;
    if (v->msg) {
        ag_wipe(v->msg, v->len);
        free(v->msg);
    }
    ag_ntlm_state_free(v->st);
    ag_wipe(&v->a, sizeof v->a);
    free(v);
}

static bool ascii_ieq(const char *a, const char *b)
{
    return ag_strieq(a, strlen(a), b);
}

int ag_ntlm_spns_build(struct ag_ntlm_spns *out, const char *const *names, size_t n_names,
                       const uint16_t *ports, size_t n_ports)
{
    memset(out, 0, sizeof *out);
    if (n_names > AG_NTLM_SPN_NAMES_MAX || n_ports > AG_MAX_LISTENERS)
        return AG_ELIMIT;
    for (size_t i = 0; i < n_names; i++) {
        const char *name = names[i];
        if (!name || !*name)
            continue;
        if (strlen(name) > 253) {
            memset(out, 0, sizeof *out);
            return AG_ELIMIT;
        }
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = names[k] && ascii_ieq(names[k], name);
        if (seen)
            continue;
        /* Within the caps by construction: names x (1 + ports). */
        snprintf(out->text[out->n], AG_NTLM_SPN_LEN_MAX, "HTTP/%s", name);
        out->list[out->n] = out->text[out->n];
        out->n++;
        for (size_t p = 0; p < n_ports; p++) {
            bool dup = ports[p] == 0;
            for (size_t k = 0; k < p && !dup; k++)
                dup = ports[k] == ports[p];
            if (dup)
                continue;
            snprintf(out->text[out->n], AG_NTLM_SPN_LEN_MAX, "HTTP/%s:%u", name,
                     (unsigned)ports[p]);
            out->list[out->n] = out->text[out->n];
            out->n++;
        }
    }
    out->list[out->n] = NULL;
    return 0;
}

bool ag_ntlm_spn_ok(const struct ag_ntlm_slice *tn, const char *const *spns)
{
    if (!spns || !tn->len)
        return true;
    for (; *spns; spns++) {
        size_t l = strlen(*spns);
        if (tn->len != 2 * l)
            continue;
        bool eq = true;
        for (size_t i = 0; i < l && eq; i++) {
            uint8_t lo = tn->p[2 * i], hi = tn->p[2 * i + 1];
            eq = hi == 0 && ag_ascii_lower((char)lo) == ag_ascii_lower((*spns)[i]);
        }
        if (eq)
            return true;
    }
    return false;
}

const char ag_ntlm_cb_mismatch[] = "MsvAvChannelBindings of another TLS channel";
const char ag_ntlm_cb_missing[] = "MsvAvChannelBindings required but absent";

/* The AUTHENTICATE's MsvAvChannelBindings (NULL or 16 bytes; zeros mean
 * unbound, MS-NLMP 2.2.2.1) against this connection: NULL when it passes,
 * else why not. The value sits in the NTLMv2 blob, which the NT proof
 * covers: the backend's verification proves it came from the client. */
static const char *cb_verdict(const uint8_t *got, const struct ag_ntlm_server *srv)
{
    static const uint8_t unbound[16];
    bool bound = got && memcmp(got, unbound, sizeof unbound) != 0;
    if (!srv->cb)
        return bound ? "channel bindings on plain HTTP" : NULL;
    if (!srv->cb_check)
        return NULL;
    if (!bound)
        return srv->cb_required ? ag_ntlm_cb_missing : NULL;
    return memcmp(got, srv->cb, 16) == 0 ? NULL : ag_ntlm_cb_mismatch;
}

int ag_ntlm_check(const uint8_t *msg, size_t len, struct ag_ntlm_state *st,
                  const struct ag_ntlm_server *srv, struct ag_ntlm_verify **out,
                  const char **reason)
{
    const char *cbr;
    struct ag_ntlm_verify *v = calloc(1, sizeof *v);
    if (!v) {
        ag_ntlm_state_free(st);
        *reason = "out of memory";
        return AG_ENOMEM;
    }
    v->st = st; /* consumed whatever happens: a challenge is single-use */
    v->require_mic = srv->require_mic;
    v->allow_machine_accounts = srv->allow_machine_accounts;
    v->msg = malloc(len ? len : 1);
    if (!v->msg) {
        ag_ntlm_verify_free(v);
        *reason = "out of memory";
        return AG_ENOMEM;
    }
    memcpy(v->msg, msg, len);
    v->len = len;
    int rc = srv->allow_ntlmv1 ? ag_ntlm_parse_authenticate_legacy(v->msg, len, &v->a)
                               : ag_ntlm_parse_authenticate(v->msg, len, &v->a);
    if (rc != 0) {
        *reason = rc == AG_EUNSUPP ? "NTLMv1, LM or anonymous refused" : "malformed AUTHENTICATE";
        ag_ntlm_verify_free(v);
        return rc == AG_EUNSUPP ? AG_EUNSUPP : AG_EINVAL;
    }
    struct ag_ntlm_challenge ch;
    if (ag_ntlm_parse_challenge(st->chal, st->challen, &ch) != 0) {
        *reason = "internal: own challenge unreadable";
        ag_ntlm_verify_free(v);
        return AG_EINVAL;
    }
    memcpy(v->wb_challenge, st->server_challenge, NTLM_SERVER_CHALLENGE_LEN);
    if (v->a.v1) {
        /* Legacy response: none of NTLMv2's protections (target info, MIC)
         * exist to check. NTLM2-session (ESS with the client challenge in
         * the LM field) answers a derived challenge. */
        if (ag_ntlm_flags_subset(v->a.flags, st->chal_flags) != 0) {
            *reason = "AUTHENTICATE flags not offered in CHALLENGE";
        } else if (srv->require_mic) {
            *reason = "MIC required but NTLMv1 has none";
        } else if (srv->cb && srv->cb_check && srv->cb_required) {
            *reason = ag_ntlm_cb_missing; /* NTLMv1 cannot carry a binding */
        } else {
            if ((v->a.flags & NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY) &&
                v->a.lm.len == NTLM_V1_RESPONSE_LEN) {
                v->ntlm2_session = true;
                ag_ntlm2_session_challenge(st->server_challenge, v->a.lm.p, v->wb_challenge);
            }
            *out = v;
            return 0;
        }
        ag_ntlm_verify_free(v);
        return AG_EINVAL;
    }
    if (ag_ntlm_flags_subset(v->a.flags, st->chal_flags) != 0) {
        *reason = "AUTHENTICATE flags not offered in CHALLENGE";
    } else if (ag_ntlmv2_check_av_echo(ch.target_info.p, ch.target_info.len, &v->a.v2) != 0) {
        *reason = "server AV pairs missing or altered";
    } else if (!ag_ntlm_spn_ok(&v->a.v2.target_name, srv->spns)) {
        *reason = "MsvAvTargetName is not one of our SPNs";
    } else if ((cbr = cb_verdict(v->a.v2.channel_bindings, srv)) != NULL) {
        *reason = cbr;
    } else if (srv->require_mic && !v->a.mic_present) {
        *reason = "MIC required but absent";
    } else {
        *out = v;
        return 0;
    }
    ag_ntlm_verify_free(v);
    return AG_EINVAL;
}

int ag_ntlm_verify_mic(struct ag_ntlm_verify *v, const uint8_t session_base_key[16],
                       const char **reason)
{
    if (!v->a.mic_present)
        return 0;
    uint8_t exported[16];
    int rc = ag_ntlm_exported_session_key(session_base_key, v->a.flags, v->a.enc_key.p,
                                          v->a.enc_key.len, exported);
    if (rc == 0)
        rc = ag_ntlm_mic_verify(exported, v->st->neg, v->st->neglen, v->st->chal, v->st->challen,
                                v->msg, v->len);
    ag_wipe(exported, sizeof exported);
    if (rc != 0) {
        *reason = "MIC mismatch";
        return AG_EAUTH;
    }
    return 0;
}

int ag_ntlm_verify_local_blocking(struct ag_ntlm_verify *v, const struct ag_userfile *uf,
                                  struct ag_identity *id, const char **reason)
{
    uint8_t hash[16], key[16];
    char canon[AG_USER_MAX + 1];
    const struct ag_ntlm_auth *a = &v->a;
    if (a->v1) {
        *reason = "NTLMv1 is verified only through winbind";
        return AG_EAUTH;
    }
    /* An unknown user costs the same HMAC work as a known one. */
    int found = ag_userfile_lookup(uf, a->domain, a->user, hash, canon, sizeof canon);
    if (found != 0)
        memset(hash, 0xa5, sizeof hash);
    int rc = ag_ntlmv2_verify_local(hash, a->user16, a->user16_len, a->domain16, a->domain16_len,
                                    v->st->server_challenge, a->nt.p, a->nt.len, key);
    ag_wipe(hash, sizeof hash);
    if (found != 0 || rc != 0) {
        ag_wipe(key, sizeof key);
        *reason = "wrong password or unknown user";
        v->refusal = AG_REFUSED_PASSWORD;
        return AG_EAUTH;
    }
    rc = ag_ntlm_verify_mic(v, key, reason);
    ag_wipe(key, sizeof key);
    if (rc != 0)
        return rc;
    ag_identity_from_entry(id, canon);
    return 0;
}
