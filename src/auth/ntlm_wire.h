/* ntlm_wire.h - the pure NTLMSSP codec of the server side (MS-NLMP 2.2).
 *
 * Glossary: NEGOTIATE/CHALLENGE/AUTHENTICATE = message types 1/2/3;
 * field = a {len16, maxlen16, off32} descriptor pointing into the payload
 * (maxlen is ignored on receipt); AV pair = {AvId16, AvLen16, value} in a
 * target info list ended by MsvAvEOL; blob = the NTLMv2 client challenge
 * ("temp" in MS-NLMP 3.3.2) after the 16-byte NTProofStr of an NT response;
 * MIC = HMAC-MD5(ExportedSessionKey, NEGOTIATE||CHALLENGE||AUTHENTICATE with
 * the MIC zeroed), 16 bytes at offset 72 of the AUTHENTICATE.
 *
 * Ownership: every parser reads the caller's message through a cursor and
 * never allocates. struct ag_ntlm_slice and every `const uint8_t *` in an
 * output struct are BORROWED from the message buffer given to the parser:
 * they are valid only while that buffer lives and is unchanged (the caller
 * keeps the raw bytes anyway for the MIC). Arrays inside output structs
 * (user/domain/workstation as UTF-8, user16/domain16) are owned copies.
 * Output structs are written only on success.
 *
 * Threads: pure, no globals but const tables, no libuv; any thread,
 * including pool threads.
 *
 * Errors: AG_EINVAL malformed; AG_EUNSUPP well-formed but refused (anonymous,
 * LM-only, NTLMv1, NTLMv1-ESS); AG_ELIMIT a size or count cap; AG_EAUTH a
 * proof (NTProofStr, MIC) does not match.
 */
#ifndef AG_AUTH_NTLM_WIRE_H
#define AG_AUTH_NTLM_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "authgate/limits.h"

/* --- NegotiateFlags (MS-NLMP 2.2.2.5) ------------------------------------ */

#define NTLMSSP_NEGOTIATE_UNICODE 0x00000001u
#define NTLMSSP_NEGOTIATE_OEM 0x00000002u
#define NTLMSSP_REQUEST_TARGET 0x00000004u
#define NTLMSSP_NEGOTIATE_SIGN 0x00000010u
#define NTLMSSP_NEGOTIATE_SEAL 0x00000020u
#define NTLMSSP_NEGOTIATE_DATAGRAM 0x00000040u
#define NTLMSSP_NEGOTIATE_LM_KEY 0x00000080u
#define NTLMSSP_NEGOTIATE_NTLM 0x00000200u
#define NTLMSSP_NEGOTIATE_ANONYMOUS 0x00000800u
#define NTLMSSP_NEGOTIATE_OEM_DOMAIN_SUPPLIED 0x00001000u
#define NTLMSSP_NEGOTIATE_OEM_WORKSTATION_SUPPLIED 0x00002000u
#define NTLMSSP_NEGOTIATE_ALWAYS_SIGN 0x00008000u
#define NTLMSSP_TARGET_TYPE_DOMAIN 0x00010000u
#define NTLMSSP_TARGET_TYPE_SERVER 0x00020000u
#define NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY 0x00080000u
#define NTLMSSP_NEGOTIATE_IDENTIFY 0x00100000u
#define NTLMSSP_REQUEST_NON_NT_SESSION_KEY 0x00400000u
#define NTLMSSP_NEGOTIATE_TARGET_INFO 0x00800000u
#define NTLMSSP_NEGOTIATE_VERSION 0x02000000u
#define NTLMSSP_NEGOTIATE_128 0x20000000u
#define NTLMSSP_NEGOTIATE_KEY_EXCH 0x40000000u
#define NTLMSSP_NEGOTIATE_56 0x80000000u

/* Message types. */
#define NTLMSSP_NEGOTIATE_MSG 1
#define NTLMSSP_CHALLENGE_MSG 2
#define NTLMSSP_AUTHENTICATE_MSG 3

/* AV pair ids (MS-NLMP 2.2.2.1). */
#define MSV_AV_EOL 0
#define MSV_AV_NB_COMPUTER_NAME 1
#define MSV_AV_NB_DOMAIN_NAME 2
#define MSV_AV_DNS_COMPUTER_NAME 3
#define MSV_AV_DNS_DOMAIN_NAME 4
#define MSV_AV_DNS_TREE_NAME 5
#define MSV_AV_FLAGS 6
#define MSV_AV_TIMESTAMP 7
#define MSV_AV_SINGLE_HOST 8
#define MSV_AV_TARGET_NAME 9
#define MSV_AV_CHANNEL_BINDINGS 10

/* MsvAvFlags bits. */
#define MSV_AV_FLAG_ACCOUNT_CONSTRAINED 0x1u
#define MSV_AV_FLAG_MIC_PRESENT 0x2u
#define MSV_AV_FLAG_UNTRUSTED_SPN 0x4u

/* --- wire layout (MS-NLMP 2.2) ---------------------------------------------
 *
 * Byte offsets from the start of a message, and fixed sizes. A *_FIELD is
 * the offset of a {len16, maxlen16, off32} descriptor; *_HDR_LEN is where
 * the payload may start in each form of a message (fields point at or after
 * it). Read with the cursor and little-endian readers, never a struct
 * overlay: a received message has no alignment and any length. */

/* Every message: "NTLMSSP\0", then the 32-bit MessageType. */
#define NTLM_SIGNATURE_OFFSET 0
#define NTLM_SIGNATURE_LEN 8
#define NTLM_MSG_TYPE_OFFSET 8
#define NTLM_MSG_PREFIX_LEN 12 /* signature + MessageType */

/* A field descriptor: Len, MaxLen (ignored on receipt), BufferOffset. */
#define NTLM_FIELD_LEN_OFFSET 0
#define NTLM_FIELD_MAXLEN_OFFSET 2
#define NTLM_FIELD_BUFFER_OFFSET 4
#define NTLM_FIELD_SIZE 8

/* VERSION (2.2.2.10): major, minor, build16, reserved[3], NTLMRevision. */
#define NTLM_VERSION_LEN 8

/* Sizes of the fixed-length values. */
#define NTLM_SERVER_CHALLENGE_LEN 8
#define NTLM_CLIENT_CHALLENGE_LEN 8
#define NTLM_SESSION_KEY_LEN 16 /* EncryptedRandomSessionKey, under KEY_EXCH */
#define NTLM_MIC_LEN 16
#define NTLM_NT_PROOF_LEN 16 /* NTProofStr before the NTLMv2 blob */

/* NEGOTIATE (2.2.1.1): 16 bytes with flags only (old clients), 32 with the
 * DomainName/Workstation fields (curl), 40 with VERSION (Windows). */
#define NTLM_NEG_FLAGS_OFFSET 12
#define NTLM_NEG_FLAGS_ONLY_LEN 16
#define NTLM_NEG_DOMAIN_FIELD 16
#define NTLM_NEG_WORKSTATION_FIELD 24
#define NTLM_NEG_HDR_LEN 32
#define NTLM_NEG_VERSION_OFFSET 32
#define NTLM_NEG_HDR_VERSION_LEN 40

/* CHALLENGE (2.2.1.2): 48 bytes, 56 with the VERSION field. */
#define NTLM_CHAL_TARGET_NAME_FIELD 12
#define NTLM_CHAL_FLAGS_OFFSET 20
#define NTLM_CHAL_SERVER_CHALLENGE_OFFSET 24
#define NTLM_CHAL_RESERVED_OFFSET 32
#define NTLM_CHAL_RESERVED_LEN 8
#define NTLM_CHAL_TARGET_INFO_FIELD 40
#define NTLM_CHAL_HDR_LEN 48
#define NTLM_CHAL_VERSION_OFFSET 48
#define NTLM_CHAL_HDR_VERSION_LEN 56 /* the form we build: Version always present */

/* AUTHENTICATE (2.2.1.3): 64 bytes, 72 with VERSION, 88 with the MIC. */
#define NTLM_AUTH_LM_RESPONSE_FIELD 12
#define NTLM_AUTH_NT_RESPONSE_FIELD 20
#define NTLM_AUTH_DOMAIN_FIELD 28
#define NTLM_AUTH_USER_FIELD 36
#define NTLM_AUTH_WORKSTATION_FIELD 44
#define NTLM_AUTH_SESSION_KEY_FIELD 52
#define NTLM_AUTH_FLAGS_OFFSET 60
#define NTLM_AUTH_HDR_LEN 64
#define NTLM_AUTH_VERSION_OFFSET 64
#define NTLM_AUTH_HDR_VERSION_LEN 72
#define NTLM_AUTH_MIC_OFFSET 72
#define NTLM_AUTH_HDR_MIC_LEN 88

/* AV_PAIR (2.2.2.1): AvId16, AvLen16, then AvLen bytes of value. */
#define NTLM_AV_ID_OFFSET 0
#define NTLM_AV_LEN_OFFSET 2
#define NTLM_AV_HDR_LEN 4 /* also the whole MsvAvEOL pair */
#define NTLM_AV_FLAGS_LEN 4
#define NTLM_AV_TIMESTAMP_LEN 8
#define NTLM_AV_CHANNEL_BINDINGS_LEN 16

/* NTLMv2_CLIENT_CHALLENGE (2.2.2.7), offsets from the blob's start (just
 * after NTProofStr): RespType, HiRespType, Reserved1(2), Reserved2(4),
 * TimeStamp(8), ChallengeFromClient(8), Reserved3(4), then AvPairs. */
#define NTLMV2_BLOB_RESP_TYPE_OFFSET 0
#define NTLMV2_BLOB_HI_RESP_TYPE_OFFSET 1
#define NTLMV2_BLOB_RESERVED1_OFFSET 2 /* 2 bytes, then Reserved2, 4 bytes */
#define NTLMV2_BLOB_TIMESTAMP_OFFSET 8
#define NTLMV2_BLOB_CLIENT_CHALLENGE_OFFSET 16
#define NTLMV2_BLOB_RESERVED3_OFFSET 24
#define NTLMV2_BLOB_AV_PAIRS_OFFSET 28
#define NTLMV2_BLOB_RESP_TYPE 1 /* the only RespType and HiRespType defined */

/* An NTLMv2 NT response: NTProofStr + blob header + MsvAvEOL. */
#define NTLMV2_RESPONSE_MIN_LEN (NTLM_NT_PROOF_LEN + NTLMV2_BLOB_AV_PAIRS_OFFSET + NTLM_AV_HDR_LEN)
/* A 24-byte NT response is NTLMv1 or NTLMv1-ESS (and a 24-byte LM
 * response under ESS carries the client challenge: NTLM2 session). */
#define NTLM_V1_RESPONSE_LEN 24

/* A borrowed byte range inside a parsed message (p is NULL when len is 0). */
struct ag_ntlm_slice {
    const uint8_t *p;
    size_t len;
};

/* Returns the message type (1, 2, 3, or any other value found) after
 * checking the "NTLMSSP\0" signature and len >= 12, or AG_EINVAL. Does not
 * validate the rest: the caller checks the type is the one it expects. */
int ag_ntlm_message_type(const uint8_t *buf, size_t len);

/* --- NEGOTIATE ----------------------------------------------------------- */

struct ag_ntlm_negotiate {
    uint32_t flags;
    bool has_version;                  /* VERSION flag set and the 40-byte form received */
    uint8_t version[NTLM_VERSION_LEN]; /* zero unless has_version */
};

/* Parses a NEGOTIATE of len bytes (<= AG_NTLM_MAX_DECODED, else AG_ELIMIT).
 * Accepts the 16-byte form (flags only), curl's 32-byte form without Version
 * and Windows' 40-byte form; DomainName/Workstation fields are bounds-checked
 * (inside the message, not inside the header) and otherwise ignored. */
int ag_ntlm_parse_negotiate(const uint8_t *msg, size_t len, struct ag_ntlm_negotiate *out);

/* --- CHALLENGE ----------------------------------------------------------- */

/* Inputs of ag_ntlm_build_challenge; every pointer borrowed for the call. */
struct ag_ntlm_challenge_params {
    uint32_t client_flags;           /* NegotiateFlags of the received NEGOTIATE */
    const uint8_t *server_challenge; /* NTLM_SERVER_CHALLENGE_LEN bytes from a CSPRNG */
    const char *target_name;         /* NetBIOS domain (UTF-8; ASCII when OEM) */
    const char *nb_domain;           /* MsvAvNbDomainName: required */
    const char *nb_computer;         /* MsvAvNbComputerName: required */
    const char *dns_domain;          /* MsvAvDnsDomainName: NULL or "" omits it */
    const char *dns_computer;        /* MsvAvDnsComputerName: NULL or "" omits it */
    uint64_t timestamp;              /* MsvAvTimestamp, FILETIME (100 ns since 1601) */
    bool omit_timestamp;             /* tests/interop only: a real server sends the
                                        timestamp so that Windows clients add a MIC */
    const uint8_t *version;          /* 8-byte VERSION sent when negotiated; NULL =
                                        6.1.7601 rev 15 (informational only) */
};

/* The NegotiateFlags ag_ntlm_build_challenge answers client_flags with
 * (PROTOCOL.md "NTLM server"): UNICODE if offered else OEM; NTLM,
 * TARGET_INFO and EXTENDED_SESSIONSECURITY always (curl sends OEM flags and
 * needs ESS to answer with NTLMv2); REQUEST_TARGET + TARGET_TYPE_DOMAIN when
 * REQUEST_TARGET; ALWAYS_SIGN, SIGN, SEAL, 128, 56, KEY_EXCH, VERSION echoed
 * if offered; never LM_KEY, DATAGRAM, ANONYMOUS, NON_NT_SESSION_KEY. */
uint32_t ag_ntlm_challenge_flags(uint32_t client_flags);

/* Builds a CHALLENGE into out (cap bytes): header 56 (Version field always
 * present, zero unless VERSION is negotiated), then TargetName (only with
 * REQUEST_TARGET; UTF-16LE when UNICODE else ASCII) and TargetInfo (AV pairs
 * always UTF-16LE): NbDomain, NbComputer, DnsDomain, DnsComputer, Timestamp,
 * EOL. *outlen = bytes written; *out_flags (may be NULL) = the flags sent.
 * AG_EINVAL for bad UTF-8, non-ASCII target name under OEM, or a missing
 * required name; AG_ELIMIT if it does not fit cap or a field exceeds 65535.
 * The caller keeps out (the exact bytes sent) for the MIC and echo check. */
int ag_ntlm_build_challenge(const struct ag_ntlm_challenge_params *p, uint8_t *out, size_t cap,
                            size_t *outlen, uint32_t *out_flags);

struct ag_ntlm_challenge {
    uint32_t flags;
    uint8_t server_challenge[NTLM_SERVER_CHALLENGE_LEN];
    struct ag_ntlm_slice target_name; /* borrowed */
    struct ag_ntlm_slice target_info; /* borrowed; AV pairs, EOL-terminated */
};

/* Parses a CHALLENGE (ours, kept since it was sent; or a test vector):
 * fields bounds-checked, target info walked (AV count cap, EOL required). */
int ag_ntlm_parse_challenge(const uint8_t *msg, size_t len, struct ag_ntlm_challenge *out);

/* --- NTLMv2 response ----------------------------------------------------- */

struct ag_ntlmv2_blob {
    const uint8_t *proof;       /* NTProofStr, 16 bytes, borrowed */
    struct ag_ntlm_slice blob;  /* "temp": RespType .. end of the NT response */
    uint64_t time;              /* blob TimeStamp (FILETIME) */
    const uint8_t *client_chal; /* 8 bytes, borrowed */
    struct ag_ntlm_slice av;    /* AV pairs up to and including MsvAvEOL */
    size_t av_count;            /* pairs before EOL */
    bool has_av_flags;
    uint32_t av_flags; /* MsvAvFlags (MIC present = 0x2) */
    bool has_timestamp;
    uint64_t timestamp;               /* MsvAvTimestamp */
    struct ag_ntlm_slice target_name; /* MsvAvTargetName, UTF-16LE, borrowed */
    const uint8_t *channel_bindings;  /* MsvAvChannelBindings, 16 bytes, or NULL */
};

/* Classifies an NT response by length: 0 = anonymous or LM-only and 24 =
 * NTLMv1/NTLMv1-ESS give AG_EUNSUPP; 1..23 and 25..47 give AG_EINVAL; >= 48
 * gives 0 (a candidate NTLMv2 response). */
int ag_ntlm_nt_response_kind(size_t len);

/* Parses an NTLMv2 NT response: length rule above, RespType = HiRespType =
 * 1, AV pairs walked (at most AG_NTLM_MAX_AV_PAIRS, else AG_ELIMIT), each
 * AvLen inside the blob, MsvAvEOL (AvLen 0) required; bytes after EOL are
 * allowed (Windows pads). Known ids (1..10) may appear once; MsvAvFlags must
 * be 4 bytes, MsvAvTimestamp 8, MsvAvChannelBindings 16. */
int ag_ntlmv2_parse_response(const uint8_t *nt, size_t len, struct ag_ntlmv2_blob *out);

/* 0 if every AV pair of the target info we sent (except EOL) appears in the
 * blob with the same id and an identical value, AG_EINVAL otherwise or if
 * target_info is malformed. */
int ag_ntlmv2_check_av_echo(const uint8_t *target_info, size_t ti_len,
                            const struct ag_ntlmv2_blob *b);

/* --- AUTHENTICATE -------------------------------------------------------- */

struct ag_ntlm_auth {
    uint32_t flags;
    bool unicode;            /* strings were UTF-16LE (else OEM/ASCII) */
    struct ag_ntlm_slice lm; /* LmChallengeResponse, borrowed, unchecked */
    struct ag_ntlm_slice nt; /* NtChallengeResponse, borrowed */
    struct ag_ntlm_slice domain_raw, user_raw, workstation_raw; /* as on the wire */
    struct ag_ntlm_slice enc_key; /* EncryptedRandomSessionKey, borrowed */
    bool has_version;
    uint8_t version[NTLM_VERSION_LEN];
    size_t header_len;        /* 64, 72 (Version) or 88 (MIC) */
    bool mic_present;         /* MsvAvFlags has MIC_PRESENT */
    const uint8_t *mic;       /* 16 bytes at offset 72 when mic_present, else NULL */
    struct ag_ntlmv2_blob v2; /* the parsed NT response (borrowed pointers) */
    bool v1;                  /* a 24-byte NTLMv1/NTLM2-session response, accepted only
                                 through ag_ntlm_parse_authenticate_legacy (v2 is empty) */
    /* Owned, NUL-terminated UTF-8 copies (control characters refused). */
    char user[AG_USER_MAX + 1];
    char domain[AG_NTLM_NAME_MAX + 1];
    char workstation[AG_NTLM_NAME_MAX + 1];
    /* Owned UTF-16LE forms for NTOWFv2 (converted from OEM when needed). */
    uint8_t user16[2 * AG_USER_MAX];
    size_t user16_len;
    uint8_t domain16[2 * AG_NTLM_NAME_MAX];
    size_t domain16_len;
};

/* Parses and validates an AUTHENTICATE of len bytes (<= AG_NTLM_MAX_DECODED):
 * every non-empty field lies inside the message (64-bit arithmetic) and
 * starts at or after the header (64; 72 with VERSION; 88 when the blob says
 * a MIC is present, and then len >= 88); an empty field's offset is ignored
 * (curl sends 0). Strings: UTF-16LE when the AUTHENTICATE has UNICODE (odd
 * length, unpaired surrogates refused), else ASCII (non-ASCII refused); NUL
 * and control characters (C0, DEL, C1) refused: AG_EINVAL; user over
 * AG_USER_MAX, domain/workstation over AG_NTLM_NAME_MAX UTF-8 bytes:
 * AG_ELIMIT (before any backend sees them). Refused as AG_EUNSUPP: the
 * ANONYMOUS flag, an empty user, an empty NT response (anonymous, LM-only),
 * a 24-byte NT response; the NT response must parse as NTLMv2
 * (ag_ntlmv2_parse_response: AG_EINVAL, AG_ELIMIT for too many AV pairs).
 * With KEY_EXCH the encrypted session key must be 16 bytes (AG_EINVAL).
 * LM response contents are not looked at. Does not check anything that
 * needs the CHALLENGE: the caller then runs ag_ntlm_flags_subset,
 * ag_ntlmv2_check_av_echo, MsvAvTargetName/channel-binding policy, the
 * verifier (ag_ntlmv2_verify_local or winbind with a.nt) and, when
 * a.mic_present, ag_ntlm_exported_session_key + ag_ntlm_mic_verify.
 * Any negative return means: answer a fresh 407 and drop the handshake. */
int ag_ntlm_parse_authenticate(const uint8_t *msg, size_t len, struct ag_ntlm_auth *out);
/* The same, but a 24-byte NT response (NTLMv1 or NTLM2-session) is accepted
 * and marked v1 instead of refused: for sites that enable legacy clients
 * (ntlm_allow_v1). LM-only and anonymous stay refused. */
int ag_ntlm_parse_authenticate_legacy(const uint8_t *msg, size_t len, struct ag_ntlm_auth *out);

/* Flags that say nothing about what was negotiated and that clients set
 * freely in an AUTHENTICATE: ignored by the subset check (MS-NLMP 4.2.4's
 * own AUTHENTICATE sets REQUEST_TARGET that its CHALLENGE does not). */
#define AG_NTLM_FLAGS_INFORMATIONAL                                                                \
    (NTLMSSP_REQUEST_TARGET | NTLMSSP_NEGOTIATE_OEM_DOMAIN_SUPPLIED |                              \
     NTLMSSP_NEGOTIATE_OEM_WORKSTATION_SUPPLIED | NTLMSSP_TARGET_TYPE_DOMAIN |                     \
     NTLMSSP_TARGET_TYPE_SERVER)

/* 0 if auth_flags (minus AG_NTLM_FLAGS_INFORMATIONAL) is a subset of
 * chal_flags, AG_EINVAL otherwise. */
int ag_ntlm_flags_subset(uint32_t auth_flags, uint32_t chal_flags);

/* --- verification -------------------------------------------------------- */

/* Local NTLMv2 check (MS-NLMP 3.3.2): NTOWFv2 from nt_hash and the received
 * user (upper-cased) and domain, NTProofStr = HMAC_MD5(NTOWFv2,
 * server_challenge || blob), constant-time compare with nt[0..15]; on a
 * mismatch retried with an empty domain (clients that hash without one).
 * On success writes SessionBaseKey = HMAC_MD5(NTOWFv2, NTProofStr) and
 * returns 0; AG_EAUTH on mismatch; ag_ntlm_nt_response_kind errors for a
 * bad length. Intermediates wiped. user16/dom16 as in ag_ntowfv2. */
int ag_ntlmv2_verify_local(const uint8_t nt_hash[16], const uint8_t *user16, size_t ulen,
                           const uint8_t *dom16, size_t dlen, const uint8_t server_challenge[8],
                           const uint8_t *nt, size_t ntlen, uint8_t out_session_base_key[16]);

/* ExportedSessionKey (MS-NLMP 3.2.5.1.2 for NTLMv2, where KeyExchangeKey =
 * SessionBaseKey): with KEY_EXCH in flags, RC4(SessionBaseKey, enc_key) and
 * enc_key must be 16 bytes (else AG_EINVAL); without it, SessionBaseKey. */
int ag_ntlm_exported_session_key(const uint8_t session_base_key[16], uint32_t flags,
                                 const uint8_t *enc_key, size_t enc_len, uint8_t out[16]);

/* 0 if the MIC at offset 72 of auth equals HMAC_MD5(exported_session_key,
 * neg || chal || auth with bytes 72..87 zeroed), compared in constant time;
 * AG_EAUTH if not; AG_EINVAL if authlen < 88. neg/chal/auth are the exact
 * bytes received and sent. */
int ag_ntlm_mic_verify(const uint8_t exported_session_key[16], const uint8_t *neg, size_t neglen,
                       const uint8_t *chal, size_t chlen, const uint8_t *auth, size_t authlen);

#endif
