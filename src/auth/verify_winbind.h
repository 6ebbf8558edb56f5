/* verify_winbind.h - verification through Samba winbindd (libwbclient).
 *
 * Every function here blocks (a hung winbindd made one call wait ~65 s), so
 * they run only on pool threads (*_blocking). Each thread has its own
 * wbcContext (a context has no lock), created on first use and freed by a
 * thread-key destructor. Any pool thread.
 */
#ifndef AG_AUTH_VERIFY_WINBIND_H
#define AG_AUTH_VERIFY_WINBIND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "identity.h"

/* Why a verification failed, for the log line and the counters. */
struct ag_wb_result {
    struct ag_identity id;   /* filled on success */
    uint8_t session_key[16]; /* user session key (NTLM: session base key); secret */
    uint32_t nt_status;      /* on AG_EAUTH: e.g. 0xc000006a wrong password */
    char reason[64];         /* short text: "wrong password", "winbind unavailable" */
    enum ag_refusal refusal; /* on AG_EAUTH: what the throttle and counters need */
};

/* Plaintext (Basic): user and domain exactly as the client sent them (domain
 * may be "" for winbind's default). 0, AG_EAUTH (refused, incl. guest and
 * machine accounts, reason "machine account"),
 * AG_EBACKEND (winbindd not reachable or failing: fail closed). */
int ag_wb_plain_blocking(const char *domain, const char *user, const char *password,
                         struct ag_wb_result *out);

/* NTLM challenge/response. nt/lm are the responses as received; lm is
 * ignored (never sent to winbind) when nt is an NTLMv2 response (> 24 bytes):
 * the caller passes it only for NTLMv1 (ntlm_allow_v1). Workstation and
 * server trust accounts (HOST$) are refused ("machine account") unless
 * allow_machine (ntlm_allow_machine_accounts); inter-domain trusts always. */
int ag_wb_response_blocking(const char *domain, const char *user, const char *workstation,
                            const uint8_t challenge[8], const uint8_t *nt, size_t nt_len,
                            const uint8_t *lm, size_t lm_len, bool allow_machine,
                            struct ag_wb_result *out);

/* Resolves "DOMAIN\name" or "name" (winbind's default domain) to a SID
 * string. 0, AG_ENOTFOUND, AG_EBACKEND. For group names in access rules. */
int ag_wb_name_to_sid_blocking(const char *name, char *sid, size_t cap);

/* The SIDs of a user (its own, then its groups) as a comma-separated string
 * (malloc'd into *out), for identities that did not come from winbind
 * (Kerberos). 0, AG_ENOTFOUND (no such account), AG_EBACKEND (winbind
 * unreachable, or the account exists but its groups cannot be listed). */
int ag_wb_user_sids_blocking(const char *name, char **out);

/* The same through a cache shared by the pool threads (mutex), entries kept
 * AG_GROUP_CACHE_TTL_MS; now_ms is the caller's monotonic clock. */
int ag_wb_user_sids_cached_blocking(const char *name, uint64_t now_ms, char **out);
/* Forgets every cached entry (reload), the own-domain names included. Any
 * thread. */
void ag_wb_user_sids_cache_clear(void);

/* Whether realm is winbind's own domain by its DNS name (case-insensitive),
 * from winbind's interface details, cached like the SIDs. 0 with the NetBIOS
 * domain in nb_domain, AG_ENOTFOUND (another realm), AG_EBACKEND. */
int ag_wb_realm_domain_cached_blocking(const char *realm, uint64_t now_ms, char *nb_domain,
                                       size_t cap);

/* winbindd's own names (NetBIOS domain, DNS domain, NetBIOS name), for the
 * NTLM CHALLENGE's target info. Each buffer gets "" when unknown. 0 or
 * AG_EBACKEND. */
int ag_wb_names_blocking(char *nb_domain, char *dns_domain, char *nb_name, size_t cap);

/* 0 when winbindd answers a ping. */
int ag_wb_ping_blocking(void);

/* "0xc000006a" -> "wrong password" etc.; NULL when not known. */
const char *ag_wb_status_text(uint32_t nt_status);

#endif
