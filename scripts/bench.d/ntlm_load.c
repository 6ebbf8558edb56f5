/* ntlm_load.c - NTLM load generator for scripts/bench (see loadgen.h for the
 * engine, the modes and the output).
 *
 * A hand-rolled NTLMSSP client: Type 1 (Unicode, NTLM, ALWAYS_SIGN, ESS,
 * REQUEST_TARGET) -> the proxy's 407 with a Type 2 -> Type 3 with an NTLMv2
 * response (+ LMv2), the Type 2's target info echoed verbatim and its
 * timestamp reused, like curl 7.88 does; no MIC, no key exchange.  The
 * NTOWFv2 key is computed once (a real client caches it too); every
 * handshake computes a fresh client challenge, NTProofStr and LMv2.
 *
 *   ntlm_load -p PORT -U http://127.0.0.1:O/small -H 127.0.0.1:O -c 50 -t 2 \
 *             -d 5 -m new|ka -b 100 -u alice -P alice-Pass1 -D AUTHGATE
 *
 * Build: gcc -O2 -pthread -o ntlm_load ntlm_load.c $(pkg-config --cflags --libs nettle)
 */
#define _GNU_SOURCE
#include <nettle/hmac.h>
#include <nettle/md4.h>
#include <stdint.h>
#include <string.h>

#define MECH_SCHEME "NTLM"
static const int mech_max_legs = 2;

#include "loadgen.h"

#define F_UNICODE 0x00000001u
#define F_OEM 0x00000002u
#define F_REQUEST_TARGET 0x00000004u
#define F_NTLM 0x00000200u
#define F_ALWAYS_SIGN 0x00008000u
#define F_TARGET_TYPE_DOMAIN 0x00010000u
#define F_TARGET_TYPE_SERVER 0x00020000u
#define F_ESS 0x00080000u
#define F_TARGET_INFO 0x00800000u
#define F_VERSION 0x02000000u
#define F_KEY_EXCH 0x40000000u

static uint8_t g_ntowf[16];
static uint8_t g_user16[512], g_dom16[512], g_ws16[512];
static size_t g_user16_len, g_dom16_len, g_ws16_len;
static const char *g_user, *g_dom, *g_ws;

struct ntlm_state {
    uint64_t rng; /* xorshift64* for client challenges (a benchmark, not a product) */
};

static size_t to_utf16le(const char *s, bool upper, uint8_t *out, size_t cap)
{
    size_t n = 0; /* ASCII only: enough for the bench accounts */
    for (; *s && n + 2 <= cap; s++) {
        char ch = *s;
        if (upper && ch >= 'a' && ch <= 'z')
            ch = (char)(ch - 32);
        out[n++] = (uint8_t)ch;
        out[n++] = 0;
    }
    return n;
}

static int mech_global_init(struct lg_opts *o, char *err, size_t cap)
{
    if (strlen(o->user) > 200 || strlen(o->domain) > 200 || strlen(o->workstation) > 200 ||
        strlen(o->password) > 400) {
        snprintf(err, cap, "user, domain, workstation or password too long");
        return -1;
    }
    uint8_t pw[1024], buf[1024], nthash[16];
    size_t n = to_utf16le(o->password, false, pw, sizeof pw);
    struct md4_ctx md4;
    md4_init(&md4);
    md4_update(&md4, n, pw);
    md4_digest(&md4, MD4_DIGEST_SIZE, nthash);
    size_t a = to_utf16le(o->user, true, buf, sizeof buf);
    size_t b = to_utf16le(o->domain, false, buf + a, sizeof buf - a);
    struct hmac_md5_ctx h;
    hmac_md5_set_key(&h, 16, nthash);
    hmac_md5_update(&h, a + b, buf);
    hmac_md5_digest(&h, 16, g_ntowf);
    g_user = o->user;
    g_dom = o->domain;
    g_ws = o->workstation;
    g_user16_len = to_utf16le(o->user, false, g_user16, sizeof g_user16);
    g_dom16_len = to_utf16le(o->domain, false, g_dom16, sizeof g_dom16);
    g_ws16_len = to_utf16le(o->workstation, false, g_ws16, sizeof g_ws16);
    return 0;
}

static void *mech_thread_init(struct lg_opts *o, char *err, size_t cap)
{
    (void)o;
    struct ntlm_state *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    if (getrandom(&s->rng, sizeof s->rng, 0) != sizeof s->rng || !s->rng)
        s->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)now_ns();
    return s;
}

static uint64_t rnd(struct ntlm_state *s)
{
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return s->rng * 0x2545F4914F6CDD1Dull;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int type1(char *out, size_t cap)
{
    uint8_t m[32];
    memcpy(m, "NTLMSSP\0", 8);
    put32(m + 8, 1);
    put32(m + 12, F_UNICODE | F_OEM | F_REQUEST_TARGET | F_NTLM | F_ALWAYS_SIGN | F_ESS);
    memset(m + 16, 0, 16); /* no domain, no workstation */
    if (cap < 5 + 48)
        return -1;
    memcpy(out, "NTLM ", 5);
    return 5 + (int)b64_encode(m, sizeof m, out + 5);
}

static int type3(struct ntlm_state *s, const char *chal, size_t chal_len, char *out, size_t cap,
                 char *err, size_t errcap)
{
    uint8_t t2[8192];
    long n = b64_decode(chal, chal_len, t2, sizeof t2);
    if (n < 48 || memcmp(t2, "NTLMSSP\0", 8) != 0 || get32(t2 + 8) != 2) {
        snprintf(err, errcap, "not a CHALLENGE message (%ld bytes)", n);
        return -1;
    }
    uint32_t flags = get32(t2 + 20);
    const uint8_t *server_chal = t2 + 24;
    uint16_t ti_len = get16(t2 + 40);
    uint32_t ti_off = get32(t2 + 44);
    if (!(flags & F_TARGET_INFO) || ti_len == 0 || (size_t)ti_off + ti_len > (size_t)n) {
        snprintf(err, errcap, "CHALLENGE without target info (flags 0x%08x)", flags);
        return -1;
    }
    const uint8_t *ti = t2 + ti_off;
    /* the server's timestamp (MsvAvTimestamp) if any, else now */
    uint8_t ts[8];
    bool have_ts = false;
    for (size_t i = 0; i + 4 <= ti_len;) {
        uint16_t id = get16(ti + i), len = get16(ti + i + 2);
        if (id == 0 || i + 4 + len > ti_len)
            break;
        if (id == 7 && len == 8) {
            memcpy(ts, ti + i + 4, 8);
            have_ts = true;
        }
        i += 4u + len;
    }
    if (!have_ts) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        uint64_t ft =
            ((uint64_t)now.tv_sec + 11644473600ull) * 10000000ull + (uint64_t)now.tv_nsec / 100u;
        for (int i = 0; i < 8; i++)
            ts[i] = (uint8_t)(ft >> (8 * i));
    }
    uint64_t cc64 = rnd(s);
    uint8_t cc[8];
    memcpy(cc, &cc64, 8);

    /* NTLMv2 response: NTProofStr || temp */
    uint8_t nt[16 + 28 + 8192 + 4];
    uint8_t *temp = nt + 16;
    size_t tl = 0;
    temp[tl++] = 1;
    temp[tl++] = 1;
    memset(temp + tl, 0, 6);
    tl += 6;
    memcpy(temp + tl, ts, 8);
    tl += 8;
    memcpy(temp + tl, cc, 8);
    tl += 8;
    memset(temp + tl, 0, 4);
    tl += 4;
    memcpy(temp + tl, ti, ti_len);
    tl += ti_len;
    memset(temp + tl, 0, 4);
    tl += 4;
    struct hmac_md5_ctx h;
    hmac_md5_set_key(&h, 16, g_ntowf);
    hmac_md5_update(&h, 8, server_chal);
    hmac_md5_update(&h, tl, temp);
    hmac_md5_digest(&h, 16, nt);
    size_t nt_len = 16 + tl;
    /* LMv2 */
    uint8_t lm[24];
    hmac_md5_set_key(&h, 16, g_ntowf);
    hmac_md5_update(&h, 8, server_chal);
    hmac_md5_update(&h, 8, cc);
    hmac_md5_digest(&h, 16, lm);
    memcpy(lm + 16, cc, 8);

    bool uni = flags & F_UNICODE;
    const uint8_t *dom = uni ? g_dom16 : (const uint8_t *)g_dom;
    size_t dom_len = uni ? g_dom16_len : strlen(g_dom);
    const uint8_t *usr = uni ? g_user16 : (const uint8_t *)g_user;
    size_t usr_len = uni ? g_user16_len : strlen(g_user);
    const uint8_t *ws = uni ? g_ws16 : (const uint8_t *)g_ws;
    size_t ws_len = uni ? g_ws16_len : strlen(g_ws);

    uint32_t f3 = flags & ~(F_TARGET_TYPE_DOMAIN | F_TARGET_TYPE_SERVER | F_KEY_EXCH | F_VERSION |
                            F_UNICODE | F_OEM);
    f3 |= uni ? F_UNICODE : F_OEM;

    uint8_t m[64 + 24 + sizeof nt + 3 * 512];
    size_t off = 64;
    memcpy(m, "NTLMSSP\0", 8);
    put32(m + 8, 3);
    struct {
        const uint8_t *p;
        size_t len;
        int at;
    } fields[6] = {{lm, 24, 12},       {nt, nt_len, 20}, {dom, dom_len, 28},
                   {usr, usr_len, 36}, {ws, ws_len, 44}, {NULL, 0, 52}};
    for (int i = 0; i < 6; i++) {
        put16(m + fields[i].at, (uint16_t)fields[i].len);
        put16(m + fields[i].at + 2, (uint16_t)fields[i].len);
        put32(m + fields[i].at + 4, fields[i].len ? (uint32_t)off : 0);
        if (fields[i].len) {
            memcpy(m + off, fields[i].p, fields[i].len);
            off += fields[i].len;
        }
    }
    put32(m + 60, f3);
    if (cap < 5 + (off + 2) / 3 * 4 + 1) {
        snprintf(err, errcap, "AUTHENTICATE too large");
        return -1;
    }
    memcpy(out, "NTLM ", 5);
    return 5 + (int)b64_encode(m, off, out + 5);
}

static void mech_thread_free(void *st)
{
    free(st);
}

static int mech_step(void *st, int leg, const char *chal, size_t chal_len, char *out, size_t cap,
                     char *err, size_t errcap)
{
    if (leg == 0)
        return type1(out, cap);
    return type3(st, chal, chal_len, out, cap, err, errcap);
}

int main(int argc, char **argv)
{
    return lg_main(argc, argv);
}
