/* ntlm_wire.c - NTLMSSP server-side codec (see ntlm_wire.h).
 *
 * Every byte of a received message is read through struct ag_cursor; every
 * {len16,maxlen16,off32} field is checked as off + len <= msglen in 64-bit
 * arithmetic before any pointer is formed.
 */
#include <string.h>

#include <nettle/arcfour.h>

#include "auth/ntcrypto.h"
#include "auth/ntlm_wire.h"
#include "authgate/err.h"
#include "util/cursor.h"
#include "util/util.h"

static const uint8_t ntlm_sig[NTLM_SIGNATURE_LEN] = {'N', 'T', 'L', 'M', 'S', 'S', 'P', 0};

/* Sent in the CHALLENGE Version field when VERSION is negotiated: purely
 * informational (MS-NLMP 2.2.2.10); 6.1 build 7601, NTLMSSP revision 15. */
static const uint8_t default_version[NTLM_VERSION_LEN] = {6, 1, 0xb1, 0x1d, 0, 0, 0, 15};

int ag_ntlm_message_type(const uint8_t *buf, size_t len)
{
    struct ag_cursor c;
    uint8_t sig[NTLM_SIGNATURE_LEN];
    uint32_t type;

    if (!buf)
        return AG_EINVAL;
    ag_cur_init(&c, buf, len);
    c.off = NTLM_SIGNATURE_OFFSET;
    if (!ag_cur_bytes(&c, sig, sizeof sig) || memcmp(sig, ntlm_sig, sizeof sig) != 0)
        return AG_EINVAL;
    c.off = NTLM_MSG_TYPE_OFFSET;
    if (!ag_cur_u32le(&c, &type) || type > INT32_MAX)
        return AG_EINVAL;
    return (int)type;
}

/* --- fields --------------------------------------------------------------- */

/* Reads the field descriptor at absolute offset `at`. A non-empty field must
 * lie inside the message and start at or after hdr; an empty one yields an
 * empty slice whatever its offset. *minoff is lowered to the field's offset
 * when non-empty. */
static int read_field(const struct ag_cursor *msg, size_t at, size_t hdr, struct ag_ntlm_slice *out,
                      uint64_t *minoff)
{
    struct ag_cursor c = *msg;
    uint16_t len, maxlen;
    uint32_t off;

    c.off = at + NTLM_FIELD_LEN_OFFSET;
    if (!ag_cur_u16le(&c, &len))
        return AG_EINVAL;
    c.off = at + NTLM_FIELD_MAXLEN_OFFSET;
    if (!ag_cur_u16le(&c, &maxlen))
        return AG_EINVAL;
    c.off = at + NTLM_FIELD_BUFFER_OFFSET;
    if (!ag_cur_u32le(&c, &off))
        return AG_EINVAL;
    (void)maxlen; /* ignored on receipt (MS-NLMP 2.2.1) */
    if (len == 0) {
        out->p = NULL;
        out->len = 0;
        return 0;
    }
    if ((uint64_t)off + (uint64_t)len > (uint64_t)msg->len || (uint64_t)off < (uint64_t)hdr)
        return AG_EINVAL;
    out->p = ag_cur_at(msg, off, len);
    if (!out->p)
        return AG_EINVAL;
    out->len = len;
    if (off < *minoff)
        *minoff = off;
    return 0;
}

/* --- AV pairs ------------------------------------------------------------- */

struct av_iter {
    struct ag_cursor c;
    size_t count;
};

/* Next pair: 1 with (id, val, vlen), 0 at MsvAvEOL (cursor just after it),
 * AG_EINVAL when truncated/AvLen past the end/EOL with a value, AG_ELIMIT
 * past AG_NTLM_MAX_AV_PAIRS pairs. */
static int av_next(struct av_iter *it, uint16_t *id, const uint8_t **val, uint16_t *vlen)
{
    uint16_t i, l;
    size_t save = it->c.off;

    if (!ag_cur_u16le(&it->c, &i) || !ag_cur_u16le(&it->c, &l)) {
        it->c.off = save;
        return AG_EINVAL; /* no EOL */
    }
    if (i == MSV_AV_EOL)
        return l == 0 ? 0 : AG_EINVAL;
    if (++it->count > AG_NTLM_MAX_AV_PAIRS)
        return AG_ELIMIT;
    *val = ag_cur_at(&it->c, it->c.off, l);
    if (!*val)
        return AG_EINVAL; /* AvLen past the end */
    it->c.off += l;
    *id = i;
    *vlen = l;
    return 1;
}

/* Walks a whole AV list; *used = bytes up to and including EOL. */
static int av_validate(const uint8_t *p, size_t len, size_t *used, size_t *count)
{
    struct av_iter it;
    uint16_t id, vl;
    const uint8_t *v;
    int rc;

    ag_cur_init(&it.c, p, len);
    it.count = 0;
    while ((rc = av_next(&it, &id, &v, &vl)) == 1)
        ;
    if (rc < 0)
        return rc;
    *used = it.c.off;
    *count = it.count;
    return 0;
}

/* --- strings -------------------------------------------------------------- */

static bool is_ctl(uint32_t c)
{
    return c < 0x20 || (c >= 0x7f && c <= 0x9f);
}

/* A received string to NUL-terminated UTF-8 (at most max bytes) and, when
 * u16 is not NULL, to UTF-16LE (capacity 2*max). UNICODE: even length,
 * surrogates paired; OEM: printable ASCII only. NUL and control characters
 * refused everywhere. AG_ELIMIT when over max. */
static int conv_string(struct ag_ntlm_slice s, bool unicode, char *u8, size_t max, uint8_t *u16,
                       size_t *u16len)
{
    size_t o = 0;
    struct ag_cursor c;

    ag_cur_init(&c, s.p, s.len);
    if (!unicode) {
        if (s.len > max)
            return AG_ELIMIT;
        for (size_t i = 0; i < s.len; i++) {
            uint8_t b = s.p[i];
            if (b >= 0x80 || is_ctl(b))
                return AG_EINVAL;
            u8[i] = (char)b;
            if (u16)
                ag_put_u16le(u16 + 2 * i, b);
        }
        u8[s.len] = '\0';
        if (u16len)
            *u16len = 2 * s.len;
        return 0;
    }
    if (s.len & 1)
        return AG_EINVAL;
    /* UTF-16 bytes <= 2 * UTF-8 bytes, so a longer input is over max. */
    if (s.len > 2 * max)
        return AG_ELIMIT;
    while (ag_cur_left(&c) > 0) {
        uint16_t w, w2;
        uint32_t cp;
        if (!ag_cur_u16le(&c, &w))
            return AG_EINVAL;
        if (w >= 0xdc00 && w <= 0xdfff)
            return AG_EINVAL; /* lone low surrogate */
        if (w >= 0xd800 && w <= 0xdbff) {
            if (!ag_cur_u16le(&c, &w2) || w2 < 0xdc00 || w2 > 0xdfff)
                return AG_EINVAL; /* unpaired high surrogate */
            cp = 0x10000 + (((uint32_t)w - 0xd800) << 10) + ((uint32_t)w2 - 0xdc00);
        } else {
            cp = w;
        }
        if (is_ctl(cp))
            return AG_EINVAL;
        if (cp < 0x80) {
            if (max - o < 1)
                return AG_ELIMIT;
            u8[o++] = (char)cp;
        } else if (cp < 0x800) {
            if (max - o < 2)
                return AG_ELIMIT;
            u8[o++] = (char)(0xc0 | (cp >> 6));
            u8[o++] = (char)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            if (max - o < 3)
                return AG_ELIMIT;
            u8[o++] = (char)(0xe0 | (cp >> 12));
            u8[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            u8[o++] = (char)(0x80 | (cp & 0x3f));
        } else {
            if (max - o < 4)
                return AG_ELIMIT;
            u8[o++] = (char)(0xf0 | (cp >> 18));
            u8[o++] = (char)(0x80 | ((cp >> 12) & 0x3f));
            u8[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            u8[o++] = (char)(0x80 | (cp & 0x3f));
        }
    }
    u8[o] = '\0';
    if (u16) {
        if (s.len)
            memcpy(u16, s.p, s.len);
        *u16len = s.len;
    }
    return 0;
}

/* --- NEGOTIATE ------------------------------------------------------------ */

/* Decoders below share one shape (gss-ntlmssp's ntlm_decode_chal_msg): the
 * result is built in a local, every failed step sets rc and jumps to done:,
 * and only done: settles it, so a caller never sees a half-parsed message. */

/* The done: of every decoder: on success copies the local result (n bytes)
 * to out, on failure wipes it (an AUTHENTICATE holds copies of the names). */
static int settle(int rc, void *out, void *local, size_t n)
{
    if (rc == 0)
        memcpy(out, local, n);
    else
        ag_wipe(local, n);
    return rc;
}

int ag_ntlm_parse_negotiate(const uint8_t *msg, size_t len, struct ag_ntlm_negotiate *out)
{
    struct ag_cursor c;
    struct ag_ntlm_negotiate n;
    struct ag_ntlm_slice dom, wks;
    uint64_t minoff = UINT64_MAX;
    int rc;

    memset(&n, 0, sizeof n);
    rc = AG_ELIMIT;
    if (len > AG_NTLM_MAX_DECODED)
        goto done;
    rc = AG_EINVAL;
    if (ag_ntlm_message_type(msg, len) != NTLMSSP_NEGOTIATE_MSG)
        goto done;
    ag_cur_init(&c, msg, len);
    c.off = NTLM_NEG_FLAGS_OFFSET;
    if (!ag_cur_u32le(&c, &n.flags))
        goto done;
    if (len > NTLM_NEG_FLAGS_ONLY_LEN) {
        /* Fields present: the 32-byte form at least. */
        if (len < NTLM_NEG_HDR_LEN)
            goto done;
        if ((rc = read_field(&c, NTLM_NEG_DOMAIN_FIELD, NTLM_NEG_HDR_LEN, &dom, &minoff)) < 0 ||
            (rc = read_field(&c, NTLM_NEG_WORKSTATION_FIELD, NTLM_NEG_HDR_LEN, &wks, &minoff)) < 0)
            goto done;
        if ((n.flags & NTLMSSP_NEGOTIATE_VERSION) && len >= NTLM_NEG_HDR_VERSION_LEN &&
            minoff >= NTLM_NEG_HDR_VERSION_LEN) {
            rc = AG_EINVAL;
            c.off = NTLM_NEG_VERSION_OFFSET;
            if (!ag_cur_bytes(&c, n.version, sizeof n.version))
                goto done;
            n.has_version = true;
        }
    }
    rc = 0;
done:
    return settle(rc, out, &n, sizeof n);
}

/* --- CHALLENGE ------------------------------------------------------------ */

uint32_t ag_ntlm_challenge_flags(uint32_t cf)
{
    uint32_t f = NTLMSSP_NEGOTIATE_NTLM | NTLMSSP_NEGOTIATE_TARGET_INFO |
                 NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY;

    f |= (cf & NTLMSSP_NEGOTIATE_UNICODE) ? NTLMSSP_NEGOTIATE_UNICODE : NTLMSSP_NEGOTIATE_OEM;
    if (cf & NTLMSSP_REQUEST_TARGET)
        f |= NTLMSSP_REQUEST_TARGET | NTLMSSP_TARGET_TYPE_DOMAIN;
    f |= cf & (NTLMSSP_NEGOTIATE_ALWAYS_SIGN | NTLMSSP_NEGOTIATE_SIGN | NTLMSSP_NEGOTIATE_SEAL |
               NTLMSSP_NEGOTIATE_128 | NTLMSSP_NEGOTIATE_56 | NTLMSSP_NEGOTIATE_KEY_EXCH |
               NTLMSSP_NEGOTIATE_VERSION);
    return f;
}

/* Writes a field descriptor at p (MaxLen = Len, as Windows sends). */
static void put_field(uint8_t *p, size_t len, size_t off)
{
    ag_put_u16le(p + NTLM_FIELD_LEN_OFFSET, (uint16_t)len);
    ag_put_u16le(p + NTLM_FIELD_MAXLEN_OFFSET, (uint16_t)len);
    ag_put_u32le(p + NTLM_FIELD_BUFFER_OFFSET, (uint32_t)off);
}

/* Writes an AV pair header at p; the value follows at p + NTLM_AV_HDR_LEN. */
static void put_av_hdr(uint8_t *p, uint16_t id, uint16_t vlen)
{
    ag_put_u16le(p + NTLM_AV_ID_OFFSET, id);
    ag_put_u16le(p + NTLM_AV_LEN_OFFSET, vlen);
}

/* Appends one AV pair with a UTF-16LE value converted from UTF-8 s. */
static int put_av_str(uint8_t *out, size_t cap, size_t *off, uint16_t id, const char *s)
{
    size_t n;
    int rc;

    if (cap - *off < NTLM_AV_HDR_LEN)
        return AG_ELIMIT;
    rc = ag_utf8_to_utf16le(s, strlen(s), out + *off + NTLM_AV_HDR_LEN,
                            cap - *off - NTLM_AV_HDR_LEN, &n);
    if (rc < 0)
        return rc;
    if (n > UINT16_MAX)
        return AG_ELIMIT;
    put_av_hdr(out + *off, id, (uint16_t)n);
    *off += NTLM_AV_HDR_LEN + n;
    return 0;
}

int ag_ntlm_build_challenge(const struct ag_ntlm_challenge_params *p, uint8_t *out, size_t cap,
                            size_t *outlen, uint32_t *out_flags)
{
    uint32_t flags;
    size_t off = NTLM_CHAL_HDR_VERSION_LEN, tn_off, tn_len = 0, ti_off, ti_len;
    int rc;

    if (!p || !out || !p->server_challenge || !p->nb_domain || !*p->nb_domain || !p->nb_computer ||
        !*p->nb_computer)
        return AG_EINVAL;
    if (cap < NTLM_CHAL_HDR_VERSION_LEN)
        return AG_ELIMIT;
    flags = ag_ntlm_challenge_flags(p->client_flags);

    tn_off = off;
    if (flags & NTLMSSP_REQUEST_TARGET) {
        const char *tn = p->target_name ? p->target_name : p->nb_domain;
        size_t n = strlen(tn);
        if (flags & NTLMSSP_NEGOTIATE_UNICODE) {
            rc = ag_utf8_to_utf16le(tn, n, out + off, cap - off, &tn_len);
            if (rc < 0)
                return rc;
        } else {
            for (size_t i = 0; i < n; i++)
                if ((uint8_t)tn[i] < 0x20 || (uint8_t)tn[i] > 0x7e)
                    return AG_EINVAL;
            if (n > cap - off)
                return AG_ELIMIT;
            memcpy(out + off, tn, n);
            tn_len = n;
        }
        if (tn_len > UINT16_MAX)
            return AG_ELIMIT;
        off += tn_len;
    }

    ti_off = off;
    if ((rc = put_av_str(out, cap, &off, MSV_AV_NB_DOMAIN_NAME, p->nb_domain)) < 0 ||
        (rc = put_av_str(out, cap, &off, MSV_AV_NB_COMPUTER_NAME, p->nb_computer)) < 0)
        return rc;
    if (p->dns_domain && *p->dns_domain &&
        (rc = put_av_str(out, cap, &off, MSV_AV_DNS_DOMAIN_NAME, p->dns_domain)) < 0)
        return rc;
    if (p->dns_computer && *p->dns_computer &&
        (rc = put_av_str(out, cap, &off, MSV_AV_DNS_COMPUTER_NAME, p->dns_computer)) < 0)
        return rc;
    if (!p->omit_timestamp) {
        if (cap - off < NTLM_AV_HDR_LEN + NTLM_AV_TIMESTAMP_LEN)
            return AG_ELIMIT;
        put_av_hdr(out + off, MSV_AV_TIMESTAMP, NTLM_AV_TIMESTAMP_LEN);
        /* A 64-bit little-endian FILETIME: low half first. */
        ag_put_u32le(out + off + NTLM_AV_HDR_LEN, (uint32_t)p->timestamp);
        ag_put_u32le(out + off + NTLM_AV_HDR_LEN + 4, (uint32_t)(p->timestamp >> 32));
        off += NTLM_AV_HDR_LEN + NTLM_AV_TIMESTAMP_LEN;
    }
    if (cap - off < NTLM_AV_HDR_LEN)
        return AG_ELIMIT;
    put_av_hdr(out + off, MSV_AV_EOL, 0);
    off += NTLM_AV_HDR_LEN;
    ti_len = off - ti_off;
    if (ti_len > UINT16_MAX)
        return AG_ELIMIT;

    memcpy(out + NTLM_SIGNATURE_OFFSET, ntlm_sig, NTLM_SIGNATURE_LEN);
    ag_put_u32le(out + NTLM_MSG_TYPE_OFFSET, NTLMSSP_CHALLENGE_MSG);
    put_field(out + NTLM_CHAL_TARGET_NAME_FIELD, tn_len, tn_off);
    ag_put_u32le(out + NTLM_CHAL_FLAGS_OFFSET, flags);
    memcpy(out + NTLM_CHAL_SERVER_CHALLENGE_OFFSET, p->server_challenge, NTLM_SERVER_CHALLENGE_LEN);
    memset(out + NTLM_CHAL_RESERVED_OFFSET, 0, NTLM_CHAL_RESERVED_LEN);
    put_field(out + NTLM_CHAL_TARGET_INFO_FIELD, ti_len, ti_off);
    if (flags & NTLMSSP_NEGOTIATE_VERSION)
        memcpy(out + NTLM_CHAL_VERSION_OFFSET, p->version ? p->version : default_version,
               NTLM_VERSION_LEN);
    else
        memset(out + NTLM_CHAL_VERSION_OFFSET, 0, NTLM_VERSION_LEN);

    *outlen = off;
    if (out_flags)
        *out_flags = flags;
    return 0;
}

int ag_ntlm_parse_challenge(const uint8_t *msg, size_t len, struct ag_ntlm_challenge *out)
{
    struct ag_cursor c;
    struct ag_ntlm_challenge ch;
    uint64_t minoff = UINT64_MAX;
    size_t used, count;
    int rc;

    memset(&ch, 0, sizeof ch);
    rc = AG_ELIMIT;
    if (len > AG_NTLM_MAX_DECODED)
        goto done;
    rc = AG_EINVAL;
    if (ag_ntlm_message_type(msg, len) != NTLMSSP_CHALLENGE_MSG)
        goto done;
    if (len < NTLM_CHAL_HDR_LEN)
        goto done;
    ag_cur_init(&c, msg, len);
    c.off = NTLM_CHAL_FLAGS_OFFSET;
    if (!ag_cur_u32le(&c, &ch.flags))
        goto done;
    c.off = NTLM_CHAL_SERVER_CHALLENGE_OFFSET;
    if (!ag_cur_bytes(&c, ch.server_challenge, sizeof ch.server_challenge))
        goto done;
    if ((rc = read_field(&c, NTLM_CHAL_TARGET_NAME_FIELD, NTLM_CHAL_HDR_LEN, &ch.target_name,
                         &minoff)) < 0 ||
        (rc = read_field(&c, NTLM_CHAL_TARGET_INFO_FIELD, NTLM_CHAL_HDR_LEN, &ch.target_info,
                         &minoff)) < 0)
        goto done;
    rc = AG_EINVAL;
    if ((ch.flags & NTLMSSP_NEGOTIATE_UNICODE) && (ch.target_name.len & 1))
        goto done;
    if (ch.target_info.len &&
        (rc = av_validate(ch.target_info.p, ch.target_info.len, &used, &count)) < 0)
        goto done;
    rc = 0;
done:
    return settle(rc, out, &ch, sizeof ch);
}

/* --- NTLMv2 response ------------------------------------------------------ */

int ag_ntlm_nt_response_kind(size_t len)
{
    if (len == 0 || len == NTLM_V1_RESPONSE_LEN)
        return AG_EUNSUPP;
    if (len < NTLMV2_RESPONSE_MIN_LEN)
        return AG_EINVAL;
    return 0;
}

/* One AV pair of a received blob into b (value v of vlen bytes, borrowed);
 * AG_EINVAL for a known id with the wrong length. */
static int blob_av(struct ag_ntlmv2_blob *b, uint16_t id, const uint8_t *v, uint16_t vlen)
{
    struct ag_cursor vc;

    ag_cur_init(&vc, v, vlen);
    switch (id) {
    case MSV_AV_FLAGS:
        if (vlen != NTLM_AV_FLAGS_LEN || !ag_cur_u32le(&vc, &b->av_flags))
            return AG_EINVAL;
        b->has_av_flags = true;
        break;
    case MSV_AV_TIMESTAMP:
        if (vlen != NTLM_AV_TIMESTAMP_LEN || !ag_cur_u64le(&vc, &b->timestamp))
            return AG_EINVAL;
        b->has_timestamp = true;
        break;
    case MSV_AV_TARGET_NAME:
        if (vlen & 1)
            return AG_EINVAL;
        b->target_name.p = v;
        b->target_name.len = vlen;
        break;
    case MSV_AV_CHANNEL_BINDINGS:
        if (vlen != NTLM_AV_CHANNEL_BINDINGS_LEN)
            return AG_EINVAL;
        b->channel_bindings = v;
        break;
    default:
        break;
    }
    return 0;
}

int ag_ntlmv2_parse_response(const uint8_t *nt, size_t len, struct ag_ntlmv2_blob *out)
{
    struct ag_ntlmv2_blob b;
    struct av_iter it;
    uint8_t resp, hiresp;
    uint32_t seen = 0;
    uint16_t id, vl;
    const uint8_t *v;
    int rc;

    memset(&b, 0, sizeof b);
    if ((rc = ag_ntlm_nt_response_kind(len)) < 0)
        goto done;
    rc = AG_EINVAL;
    if (!nt)
        goto done;
    b.proof = nt;
    b.blob.p = nt + NTLM_NT_PROOF_LEN;
    b.blob.len = len - NTLM_NT_PROOF_LEN;

    /* The blob header; the Reserved fields are not looked at. */
    ag_cur_init(&it.c, b.blob.p, b.blob.len);
    it.count = 0;
    it.c.off = NTLMV2_BLOB_RESP_TYPE_OFFSET;
    if (!ag_cur_u8(&it.c, &resp))
        goto done;
    it.c.off = NTLMV2_BLOB_HI_RESP_TYPE_OFFSET;
    if (!ag_cur_u8(&it.c, &hiresp))
        goto done;
    if (resp != NTLMV2_BLOB_RESP_TYPE || hiresp != NTLMV2_BLOB_RESP_TYPE)
        goto done;
    it.c.off = NTLMV2_BLOB_TIMESTAMP_OFFSET;
    if (!ag_cur_u64le(&it.c, &b.time))
        goto done;
    b.client_chal =
        ag_cur_at(&it.c, NTLMV2_BLOB_CLIENT_CHALLENGE_OFFSET, NTLM_CLIENT_CHALLENGE_LEN);
    if (!b.client_chal || !ag_cur_has(&it.c, NTLMV2_BLOB_AV_PAIRS_OFFSET, 0))
        goto done;

    it.c.off = NTLMV2_BLOB_AV_PAIRS_OFFSET;
    while ((rc = av_next(&it, &id, &v, &vl)) == 1) {
        if (id <= MSV_AV_CHANNEL_BINDINGS) {
            /* A repeated known id could make two readers disagree. */
            rc = AG_EINVAL;
            if (seen & (1u << id))
                goto done;
            seen |= 1u << id;
        }
        if ((rc = blob_av(&b, id, v, vl)) < 0)
            goto done;
    }
    if (rc < 0)
        goto done;
    b.av.p = b.blob.p + NTLMV2_BLOB_AV_PAIRS_OFFSET;
    b.av.len = it.c.off - NTLMV2_BLOB_AV_PAIRS_OFFSET;
    b.av_count = it.count;
    rc = 0;
done:
    return settle(rc, out, &b, sizeof b);
}

int ag_ntlmv2_check_av_echo(const uint8_t *target_info, size_t ti_len,
                            const struct ag_ntlmv2_blob *b)
{
    struct av_iter sent;
    uint16_t id, vl;
    const uint8_t *v;
    int rc;

    if (!b || (!target_info && ti_len))
        return AG_EINVAL;
    ag_cur_init(&sent.c, target_info, ti_len);
    sent.count = 0;
    while ((rc = av_next(&sent, &id, &v, &vl)) == 1) {
        struct av_iter got;
        uint16_t gid, gvl;
        const uint8_t *gv;
        int grc;
        bool found = false;

        ag_cur_init(&got.c, b->av.p, b->av.len);
        got.count = 0;
        while ((grc = av_next(&got, &gid, &gv, &gvl)) == 1) {
            if (gid == id && gvl == vl && (vl == 0 || memcmp(gv, v, vl) == 0)) {
                found = true;
                break;
            }
        }
        if (grc < 0)
            return AG_EINVAL;
        if (!found)
            return AG_EINVAL;
    }
    return rc < 0 ? AG_EINVAL : 0;
}

/* --- AUTHENTICATE --------------------------------------------------------- */

static int parse_authenticate(const uint8_t *msg, size_t len, bool allow_v1,
                              struct ag_ntlm_auth *out);

int ag_ntlm_parse_authenticate(const uint8_t *msg, size_t len, struct ag_ntlm_auth *out)
{
    return parse_authenticate(msg, len, false, out);
}

int ag_ntlm_parse_authenticate_legacy(const uint8_t *msg, size_t len, struct ag_ntlm_auth *out)
{
    return parse_authenticate(msg, len, true, out);
}

/* The six field descriptors of an AUTHENTICATE, in wire order. */
static int auth_fields(const struct ag_cursor *c, struct ag_ntlm_auth *a, uint64_t *minoff)
{
    const struct {
        size_t at;
        struct ag_ntlm_slice *out;
    } f[] = {
        {NTLM_AUTH_LM_RESPONSE_FIELD, &a->lm},
        {NTLM_AUTH_NT_RESPONSE_FIELD, &a->nt},
        {NTLM_AUTH_DOMAIN_FIELD, &a->domain_raw},
        {NTLM_AUTH_USER_FIELD, &a->user_raw},
        {NTLM_AUTH_WORKSTATION_FIELD, &a->workstation_raw},
        {NTLM_AUTH_SESSION_KEY_FIELD, &a->enc_key},
    };
    int rc;

    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if ((rc = read_field(c, f[i].at, NTLM_AUTH_HDR_LEN, f[i].out, minoff)) < 0)
            return rc;
    return 0;
}

static int parse_authenticate(const uint8_t *msg, size_t len, bool allow_v1,
                              struct ag_ntlm_auth *out)
{
    struct ag_cursor c;
    struct ag_ntlm_auth a;
    uint64_t minoff = UINT64_MAX;
    int rc;

    memset(&a, 0, sizeof a);
    rc = AG_EINVAL;
    if (!out)
        goto done;
    rc = AG_ELIMIT;
    if (len > AG_NTLM_MAX_DECODED)
        goto done;
    rc = AG_EINVAL;
    if (ag_ntlm_message_type(msg, len) != NTLMSSP_AUTHENTICATE_MSG)
        goto done;
    if (len < NTLM_AUTH_HDR_LEN)
        goto done;

    ag_cur_init(&c, msg, len);
    c.off = NTLM_AUTH_FLAGS_OFFSET;
    if (!ag_cur_u32le(&c, &a.flags))
        goto done;
    if ((rc = auth_fields(&c, &a, &minoff)) < 0)
        goto done;

    a.header_len = NTLM_AUTH_HDR_LEN;
    if (a.flags & NTLMSSP_NEGOTIATE_VERSION) {
        rc = AG_EINVAL;
        if (len < NTLM_AUTH_HDR_VERSION_LEN || minoff < NTLM_AUTH_HDR_VERSION_LEN)
            goto done;
        c.off = NTLM_AUTH_VERSION_OFFSET;
        if (!ag_cur_bytes(&c, a.version, sizeof a.version))
            goto done;
        a.has_version = true;
        a.header_len = NTLM_AUTH_HDR_VERSION_LEN;
    }

    /* Refused by policy: anonymous, LM-only, NTLMv1 and NTLMv1-ESS. */
    rc = AG_EUNSUPP;
    if (a.flags & NTLMSSP_NEGOTIATE_ANONYMOUS)
        goto done;
    a.v1 = allow_v1 && a.nt.len == NTLM_V1_RESPONSE_LEN;
    if (!a.v1 && (rc = ag_ntlm_nt_response_kind(a.nt.len)) < 0)
        goto done;
    rc = AG_EUNSUPP;
    if (a.user_raw.len == 0)
        goto done;
    rc = AG_EINVAL;
    if ((a.flags & NTLMSSP_NEGOTIATE_KEY_EXCH) && a.enc_key.len != NTLM_SESSION_KEY_LEN)
        goto done;

    if (!a.v1 && (rc = ag_ntlmv2_parse_response(a.nt.p, a.nt.len, &a.v2)) < 0)
        goto done;
    if (a.v2.has_av_flags && (a.v2.av_flags & MSV_AV_FLAG_MIC_PRESENT)) {
        /* The MIC window must exist and hold no payload. */
        rc = AG_EINVAL;
        if (len < NTLM_AUTH_HDR_MIC_LEN || minoff < NTLM_AUTH_HDR_MIC_LEN)
            goto done;
        a.mic = ag_cur_at(&c, NTLM_AUTH_MIC_OFFSET, NTLM_MIC_LEN);
        if (!a.mic)
            goto done;
        a.mic_present = true;
        a.header_len = NTLM_AUTH_HDR_MIC_LEN;
    }

    a.unicode = (a.flags & NTLMSSP_NEGOTIATE_UNICODE) != 0;
    if ((rc = conv_string(a.user_raw, a.unicode, a.user, AG_USER_MAX, a.user16, &a.user16_len)) <
            0 ||
        (rc = conv_string(a.domain_raw, a.unicode, a.domain, AG_NTLM_NAME_MAX, a.domain16,
                          &a.domain16_len)) < 0 ||
        (rc = conv_string(a.workstation_raw, a.unicode, a.workstation, AG_NTLM_NAME_MAX, NULL,
                          NULL)) < 0)
        goto done;
    rc = 0;
done:
    return settle(rc, out, &a, sizeof a);
}

int ag_ntlm_flags_subset(uint32_t auth_flags, uint32_t chal_flags)
{
    uint32_t extra = (auth_flags & ~(uint32_t)AG_NTLM_FLAGS_INFORMATIONAL) & ~chal_flags;
    return extra ? AG_EINVAL : 0;
}

/* --- verification --------------------------------------------------------- */

/* NTProofStr under key ntowf; 0 if it equals the one that opens nt. */
static int proof_matches(const uint8_t ntowf[16], const uint8_t chal[NTLM_SERVER_CHALLENGE_LEN],
                         const uint8_t *nt, size_t ntlen)
{
    uint8_t proof[NTLM_NT_PROOF_LEN];
    const uint8_t *parts[2] = {chal, nt + NTLM_NT_PROOF_LEN};
    const size_t lens[2] = {NTLM_SERVER_CHALLENGE_LEN, ntlen - NTLM_NT_PROOF_LEN};
    int r;

    ag_hmac_md5(ntowf, 16, parts, lens, 2, proof);
    r = ag_ct_memcmp(proof, nt, NTLM_NT_PROOF_LEN);
    ag_wipe(proof, sizeof proof);
    return r;
}

int ag_ntlmv2_verify_local(const uint8_t nt_hash[16], const uint8_t *user16, size_t ulen,
                           const uint8_t *dom16, size_t dlen, const uint8_t server_challenge[8],
                           const uint8_t *nt, size_t ntlen, uint8_t out_session_base_key[16])
{
    uint8_t key[16];
    int rc;

    if ((rc = ag_ntlm_nt_response_kind(ntlen)) < 0)
        return rc;
    if (!nt_hash || !server_challenge || !nt || !out_session_base_key)
        return AG_EINVAL;
    if ((rc = ag_ntowfv2(nt_hash, user16, ulen, dom16, dlen, key)) < 0)
        return rc;
    rc = proof_matches(key, server_challenge, nt, ntlen) == 0 ? 0 : AG_EAUTH;
    if (rc == AG_EAUTH && dlen > 0) {
        ag_wipe(key, sizeof key);
        if ((rc = ag_ntowfv2(nt_hash, user16, ulen, NULL, 0, key)) < 0)
            goto out;
        rc = proof_matches(key, server_challenge, nt, ntlen) == 0 ? 0 : AG_EAUTH;
    }
    if (rc == 0) {
        const uint8_t *parts[1] = {nt};
        const size_t lens[1] = {NTLM_NT_PROOF_LEN};
        ag_hmac_md5(key, 16, parts, lens, 1, out_session_base_key);
    }
out:
    ag_wipe(key, sizeof key);
    return rc;
}

int ag_ntlm_exported_session_key(const uint8_t session_base_key[16], uint32_t flags,
                                 const uint8_t *enc_key, size_t enc_len, uint8_t out[16])
{
    struct arcfour_ctx rc4;

    if (!(flags & NTLMSSP_NEGOTIATE_KEY_EXCH)) {
        memcpy(out, session_base_key, 16);
        return 0;
    }
    if (!enc_key || enc_len != NTLM_SESSION_KEY_LEN)
        return AG_EINVAL;
    arcfour_set_key(&rc4, 16, session_base_key);
    arcfour_crypt(&rc4, NTLM_SESSION_KEY_LEN, out, enc_key);
    ag_wipe(&rc4, sizeof rc4);
    return 0;
}

int ag_ntlm_mic_verify(const uint8_t exported_session_key[16], const uint8_t *neg, size_t neglen,
                       const uint8_t *chal, size_t chlen, const uint8_t *auth, size_t authlen)
{
    static const uint8_t zero_mic[NTLM_MIC_LEN];
    uint8_t mic[NTLM_MIC_LEN];
    int r;

    if (!exported_session_key || !auth || authlen < NTLM_AUTH_HDR_MIC_LEN || (!neg && neglen) ||
        (!chal && chlen))
        return AG_EINVAL;
    {
        /* auth with its MIC zeroed: the bytes before it, 16 zeros, the rest. */
        const uint8_t *parts[5] = {neg, chal, auth, zero_mic,
                                   auth + NTLM_AUTH_MIC_OFFSET + NTLM_MIC_LEN};
        const size_t lens[5] = {neglen, chlen, NTLM_AUTH_MIC_OFFSET, sizeof zero_mic,
                                authlen - NTLM_AUTH_MIC_OFFSET - NTLM_MIC_LEN};
        ag_hmac_md5(exported_session_key, 16, parts, lens, 5, mic);
    }
    r = ag_ct_memcmp(mic, auth + NTLM_AUTH_MIC_OFFSET, NTLM_MIC_LEN);
    ag_wipe(mic, sizeof mic);
    return r == 0 ? 0 : AG_EAUTH;
}
