/* wbclient_bench.c - measure winbindd's own authentication ceiling.
 *
 * N threads, each with its own wbcContext, call wbcCtxAuthenticateUserEx in a
 * loop for T seconds, either with the plaintext password (what Basic does,
 * WBC_AUTH_USER_LEVEL_PLAIN) or with a freshly computed NTLMv2 response to a
 * random server challenge (what NTLM does, WBC_AUTH_USER_LEVEL_RESPONSE; this
 * goes through winbindd's privileged pipe).  Output, one line per mode:
 *
 *   mode=plain threads=4 seconds=5 ok=... fail=... per_sec=... avg_ms=... max_ms=...
 *
 * For NTLMv2 the user_session_key winbindd returns is compared with the
 * NTLMv2 session base key computed here; a mismatch counts as a failure.
 *
 * Run it with the environment of Winbind.gateway_env() (and its
 * client_prefix()), e.g. from tests/integration/peers.  Exit status: 0 if
 * every call succeeded, 1 if any failed, 2 on usage or set-up errors.
 *
 * Build: gcc -O2 -pthread -o wbclient_bench wbclient_bench.c \
 *            $(pkg-config --cflags --libs wbclient nettle)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <nettle/hmac.h>
#include <nettle/md4.h>
#include <wbclient.h>

enum mode { MODE_PLAIN, MODE_NTLMV2 };

struct opts {
    const char *user;
    const char *password;
    const char *domain;
    const char *workstation;
    int threads;
    double seconds;
};

struct worker {
    pthread_t tid;
    const struct opts *o;
    enum mode mode;
    const uint8_t *nthash; /* 16 bytes, shared read-only */
    uint64_t ok, fail, key_mismatch;
    double sum_ms, max_ms;
    char first_error[160];
};

static atomic_bool g_stop;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fill_random(void *p, size_t n)
{
    uint8_t *b = p;
    while (n) {
        ssize_t r = getrandom(b, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            perror("getrandom");
            exit(2);
        }
        b += r;
        n -= (size_t)r;
    }
}

/* UTF-8 -> UTF-16LE (BMP only; enough for test accounts).  upper: ASCII upper-case.
 * Returns the number of bytes written, or -1 if out does not fit. */
static ssize_t utf16le(const char *s, bool upper, uint8_t *out, size_t cap)
{
    size_t n = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t c;
        if (*p < 0x80) {
            c = *p++;
        } else if ((*p & 0xe0) == 0xc0 && p[1]) {
            c = ((uint32_t)(p[0] & 0x1f) << 6) | (p[1] & 0x3f);
            p += 2;
        } else if ((*p & 0xf0) == 0xe0 && p[1] && p[2]) {
            c = ((uint32_t)(p[0] & 0x0f) << 12) | ((uint32_t)(p[1] & 0x3f) << 6) | (p[2] & 0x3f);
            p += 3;
        } else {
            return -1;
        }
        if (upper && c >= 'a' && c <= 'z')
            c -= 32;
        if (n + 2 > cap)
            return -1;
        out[n++] = (uint8_t)(c & 0xff);
        out[n++] = (uint8_t)(c >> 8);
    }
    return (ssize_t)n;
}

static void nt_hash(const char *password, uint8_t out[16])
{
    uint8_t buf[1024];
    ssize_t n = utf16le(password, false, buf, sizeof buf);
    if (n < 0) {
        fprintf(stderr, "password too long or not UTF-8\n");
        exit(2);
    }
    struct md4_ctx md4;
    md4_init(&md4);
    md4_update(&md4, (size_t)n, buf);
    md4_digest(&md4, MD4_DIGEST_SIZE, out);
    memset(buf, 0, sizeof buf);
}

/* NTOWFv2 = HMAC_MD5(nthash, UTF16LE(UPPER(user)) || UTF16LE(domain)) */
static void ntowf_v2(const uint8_t nthash[16], const char *user, const char *domain,
                     uint8_t out[16])
{
    uint8_t buf[1024];
    ssize_t a = utf16le(user, true, buf, sizeof buf);
    ssize_t b = a < 0 ? -1 : utf16le(domain, false, buf + a, sizeof buf - (size_t)a);
    if (a < 0 || b < 0) {
        fprintf(stderr, "user/domain too long or not UTF-8\n");
        exit(2);
    }
    struct hmac_md5_ctx h;
    hmac_md5_set_key(&h, 16, nthash);
    hmac_md5_update(&h, (size_t)(a + b), buf);
    hmac_md5_digest(&h, 16, out);
}

static size_t put_av(uint8_t *p, uint16_t id, const uint8_t *val, uint16_t len)
{
    p[0] = (uint8_t)(id & 0xff);
    p[1] = (uint8_t)(id >> 8);
    p[2] = (uint8_t)(len & 0xff);
    p[3] = (uint8_t)(len >> 8);
    if (len)
        memcpy(p + 4, val, len);
    return 4u + len;
}

/* Build nt_response = NTProofStr || blob for server_challenge; returns its length.
 * session_key receives the NTLMv2 session base key HMAC_MD5(NTOWFv2, NTProofStr). */
static size_t ntlmv2_response(const uint8_t ntowf[16], const uint8_t server_challenge[8],
                              const char *domain, const char *workstation, uint8_t *out, size_t cap,
                              uint8_t session_key[16])
{
    uint8_t *blob = out + 16;
    size_t n = 0;
    blob[n++] = 0x01;       /* RespType */
    blob[n++] = 0x01;       /* HiRespType */
    memset(blob + n, 0, 6); /* Reserved1 (2), Reserved2 (4) */
    n += 6;
    /* FILETIME: 100 ns ticks since 1601-01-01 */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ft =
        ((uint64_t)ts.tv_sec + 11644473600ull) * 10000000ull + (uint64_t)ts.tv_nsec / 100u;
    for (int i = 0; i < 8; i++)
        blob[n++] = (uint8_t)(ft >> (8 * i));
    fill_random(blob + n, 8); /* client challenge */
    n += 8;
    memset(blob + n, 0, 4); /* Reserved3 */
    n += 4;
    uint8_t tmp[512];
    ssize_t l = utf16le(domain, true, tmp, sizeof tmp);
    if (l > 0)
        n += put_av(blob + n, 2 /* MsvAvNbDomainName */, tmp, (uint16_t)l);
    l = utf16le(workstation, true, tmp, sizeof tmp);
    if (l > 0)
        n += put_av(blob + n, 1 /* MsvAvNbComputerName */, tmp, (uint16_t)l);
    n += put_av(blob + n, 0 /* MsvAvEOL */, NULL, 0);
    memset(blob + n, 0, 4); /* trailing Reserved4 */
    n += 4;
    if (16 + n > cap) {
        fprintf(stderr, "response buffer too small\n");
        exit(2);
    }
    struct hmac_md5_ctx h;
    hmac_md5_set_key(&h, 16, ntowf);
    hmac_md5_update(&h, 8, server_challenge);
    hmac_md5_update(&h, n, blob);
    hmac_md5_digest(&h, 16, out); /* NTProofStr */
    hmac_md5_set_key(&h, 16, ntowf);
    hmac_md5_update(&h, 16, out);
    hmac_md5_digest(&h, 16, session_key);
    return 16 + n;
}

/* One authentication.  Returns true on success; on failure describes it in err. */
static bool auth_once(struct wbcContext *ctx, const struct opts *o, enum mode mode,
                      const uint8_t nthash[16], bool *key_mismatch, char *err, size_t errlen)
{
    struct wbcAuthUserParams p;
    struct wbcAuthUserInfo *info = NULL;
    struct wbcAuthErrorInfo *einfo = NULL;
    uint8_t nt[1024], key[16];

    memset(&p, 0, sizeof p);
    p.account_name = o->user;
    p.domain_name = o->domain;
    p.workstation_name = o->workstation;
    *key_mismatch = false;
    if (mode == MODE_PLAIN) {
        p.level = WBC_AUTH_USER_LEVEL_PLAIN;
        p.password.plaintext = o->password;
    } else {
        uint8_t ntowf[16];
        p.level = WBC_AUTH_USER_LEVEL_RESPONSE;
        fill_random(p.password.response.challenge, 8);
        ntowf_v2(nthash, o->user, o->domain, ntowf);
        p.password.response.nt_length = (uint32_t)ntlmv2_response(
            ntowf, p.password.response.challenge, o->domain, o->workstation, nt, sizeof nt, key);
        p.password.response.nt_data = nt;
        p.password.response.lm_length = 0;
        p.password.response.lm_data = NULL;
    }
    wbcErr r = wbcCtxAuthenticateUserEx(ctx, &p, &info, &einfo);
    bool ok = WBC_ERROR_IS_OK(r);
    if (!ok) {
        if (einfo)
            snprintf(err, errlen, "%s nt_status=0x%08" PRIx32 " %s", wbcErrorString(r),
                     einfo->nt_status, einfo->nt_string ? einfo->nt_string : "");
        else
            snprintf(err, errlen, "%s", wbcErrorString(r));
    } else if (mode == MODE_NTLMV2 && info &&
               memcmp(info->user_session_key, key, sizeof key) != 0) {
        *key_mismatch = true;
        ok = false;
        snprintf(err, errlen, "user_session_key differs from the NTLMv2 session base key");
    }
    wbcFreeMemory(info);
    wbcFreeMemory(einfo);
    return ok;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct wbcContext *ctx = wbcCtxCreate();
    if (!ctx) {
        snprintf(w->first_error, sizeof w->first_error, "wbcCtxCreate failed");
        w->fail++;
        return NULL;
    }
    while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        char err[160];
        bool mismatch;
        double t0 = now_s();
        bool ok = auth_once(ctx, w->o, w->mode, w->nthash, &mismatch, err, sizeof err);
        double ms = (now_s() - t0) * 1e3;
        w->sum_ms += ms;
        if (ms > w->max_ms)
            w->max_ms = ms;
        if (ok) {
            w->ok++;
        } else {
            w->fail++;
            w->key_mismatch += mismatch;
            if (!w->first_error[0])
                snprintf(w->first_error, sizeof w->first_error, "%s", err);
        }
    }
    wbcCtxFree(ctx);
    return NULL;
}

static int run_mode(const struct opts *o, enum mode mode, const uint8_t nthash[16])
{
    const char *name = mode == MODE_PLAIN ? "plain" : "ntlmv2";
    /* One call first: a broken environment should say why, not print zeros. */
    struct wbcContext *ctx = wbcCtxCreate();
    char err[160] = "";
    bool mismatch;
    if (!ctx || !auth_once(ctx, o, mode, nthash, &mismatch, err, sizeof err)) {
        fprintf(stderr, "mode=%s: first authentication of %s\\%s failed: %s\n", name, o->domain,
                o->user, ctx ? err : "wbcCtxCreate failed");
        if (ctx)
            wbcCtxFree(ctx);
        return 2;
    }
    wbcCtxFree(ctx);

    struct worker *ws = calloc((size_t)o->threads, sizeof *ws);
    if (!ws)
        return 2;
    atomic_store(&g_stop, false);
    double t0 = now_s();
    for (int i = 0; i < o->threads; i++) {
        ws[i].o = o;
        ws[i].mode = mode;
        ws[i].nthash = nthash;
        if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0) {
            perror("pthread_create");
            exit(2);
        }
    }
    struct timespec ts = {(time_t)o->seconds,
                          (long)((o->seconds - (double)(time_t)o->seconds) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    atomic_store(&g_stop, true);
    for (int i = 0; i < o->threads; i++)
        pthread_join(ws[i].tid, NULL);
    double elapsed = now_s() - t0;

    uint64_t ok = 0, fail = 0, mism = 0;
    double sum = 0, max = 0;
    const char *first = NULL;
    for (int i = 0; i < o->threads; i++) {
        ok += ws[i].ok;
        fail += ws[i].fail;
        mism += ws[i].key_mismatch;
        sum += ws[i].sum_ms;
        if (ws[i].max_ms > max)
            max = ws[i].max_ms;
        if (!first && ws[i].first_error[0])
            first = ws[i].first_error;
    }
    printf("mode=%s threads=%d seconds=%g ok=%" PRIu64 " fail=%" PRIu64 " per_sec=%.0f"
           " avg_ms=%.3f max_ms=%.3f\n",
           name, o->threads, o->seconds, ok, fail, (double)ok / elapsed,
           ok + fail ? sum / (double)(ok + fail) : 0.0, max);
    if (first)
        fprintf(stderr, "mode=%s: first failure: %s (key mismatches: %" PRIu64 ")\n", name, first,
                mism);
    fflush(stdout);
    free(ws);
    return fail ? 1 : 0;
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [-m plain|ntlmv2|both] [-t threads] [-s seconds] [-u user]\n"
            "          [-p password] [-d domain] [-w workstation]\n"
            "defaults: -m both -t 4 -s 5 -u alice -p alice-Pass1 -d AUTHGATE -w BENCH\n"
            "(the password may also come from WBBENCH_PASSWORD)\n",
            argv0);
}

int main(int argc, char **argv)
{
    struct opts o = {"alice", "alice-Pass1", "AUTHGATE", "BENCH", 4, 5.0};
    const char *modes = "both";
    const char *envpw = getenv("WBBENCH_PASSWORD");
    if (envpw)
        o.password = envpw;
    int c;
    while ((c = getopt(argc, argv, "m:t:s:u:p:d:w:h")) != -1) {
        switch (c) {
        case 'm':
            modes = optarg;
            break;
        case 't':
            o.threads = atoi(optarg);
            break;
        case 's':
            o.seconds = atof(optarg);
            break;
        case 'u':
            o.user = optarg;
            break;
        case 'p':
            o.password = optarg;
            break;
        case 'd':
            o.domain = optarg;
            break;
        case 'w':
            o.workstation = optarg;
            break;
        default:
            usage(argv[0]);
            return 2;
        }
    }
    bool plain = !strcmp(modes, "plain") || !strcmp(modes, "both");
    bool ntlm = !strcmp(modes, "ntlmv2") || !strcmp(modes, "both");
    if ((!plain && !ntlm) || o.threads < 1 || o.threads > 1024 || !(o.seconds > 0)) {
        usage(argv[0]);
        return 2;
    }
    uint8_t nthash[16];
    nt_hash(o.password, nthash);
    int rc = 0, r;
    if (plain && (r = run_mode(&o, MODE_PLAIN, nthash)) > rc)
        rc = r;
    if (ntlm && (r = run_mode(&o, MODE_NTLMV2, nthash)) > rc)
        rc = r;
    memset(nthash, 0, sizeof nthash);
    return rc;
}
