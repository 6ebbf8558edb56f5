/* tls_load.c - load client for an HTTPS proxy (TLS to the proxy itself), for
 * scripts/bench's tls section. wrk and h2load cannot use an HTTPS proxy.
 *
 *   tls_load -p PORT -u URL [-c CONNS] [-d SECONDS] [-m ka|new|resume]
 *            [-C CAFILE] [-n SERVERNAME] [-b BODYLEN]
 *
 * CONNS threads, each with one blocking TLS connection to 127.0.0.1:PORT
 * (OpenSSL, TLS 1.3, the proxy's certificate verified against CAFILE when
 * given), sending "GET URL" (absolute form) until SECONDS pass:
 *   ka      keep-alive: every request on the same TLS connection;
 *   new     every request on a new TCP connection with a full handshake
 *           (Connection: close);
 *   resume  like new, but resuming the previous TLS session (a ticket).
 * A response counts only when it is a 200 with a body of BODYLEN bytes
 * (Content-Length). Output: one line "LOADJSON {...}" on stdout; exit 0 when
 * something completed and nothing failed, 1 otherwise, 2 on bad usage. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { MODE_KA, MODE_NEW, MODE_RESUME };

static int port, conns = 8, seconds = 5;
static long body_len = -1;
static enum mode mode = MODE_KA;
static const char *url, *cafile, *sni = "localhost";
static SSL_CTX *ctx;
static char request_ka[2048], request_close[2048];
static size_t request_ka_len, request_close_len;
static atomic_uint_fast64_t n_ok, n_fail, n_handshakes, n_resumed;
static atomic_bool stop;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* A TLS connection to the proxy, resuming *sess when given; NULL on failure. */
static SSL *dial(SSL_SESSION *sess)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return NULL;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return NULL;
    }
    SSL *ssl = SSL_new(ctx);
    if (!ssl) {
        close(fd);
        return NULL;
    }
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, sni);
    SSL_set1_host(ssl, sni);
    if (sess)
        SSL_set_session(ssl, sess);
    if (SSL_connect(ssl) != 1) {
        SSL_free(ssl);
        close(fd);
        return NULL;
    }
    atomic_fetch_add(&n_handshakes, 1);
    if (SSL_session_reused(ssl))
        atomic_fetch_add(&n_resumed, 1);
    return ssl;
}

static void hangup(SSL *ssl)
{
    int fd = SSL_get_fd(ssl);
    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(fd);
}

/* One request and its response on ssl; true for a 200 of the right size. */
static bool exchange(SSL *ssl, const char *req, size_t reqlen)
{
    if (SSL_write(ssl, req, (int)reqlen) != (int)reqlen)
        return false;
    char buf[65536];
    size_t have = 0;
    char *end = NULL;
    while (!end) {
        if (have == sizeof buf)
            return false;
        int n = SSL_read(ssl, buf + have, (int)(sizeof buf - have));
        if (n <= 0)
            return false;
        have += (size_t)n;
        end = memmem(buf, have, "\r\n\r\n", 4);
    }
    size_t head = (size_t)(end - buf) + 4;
    if (have < 12 || memcmp(buf + 9, "200", 3) != 0)
        return false;
    long cl = -1;
    for (char *p = buf; p < end; p++) {
        if ((p == buf || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0) {
            cl = strtol(p + 15, NULL, 10);
            break;
        }
    }
    if (cl < 0 || (body_len >= 0 && cl != body_len))
        return false;
    size_t got = have - head;
    while (got < (size_t)cl) {
        int n = SSL_read(ssl, buf, (int)sizeof buf);
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    return got == (size_t)cl;
}

static void *worker(void *arg)
{
    (void)arg;
    SSL *ssl = NULL;
    SSL_SESSION *sess = NULL;
    while (!atomic_load(&stop)) {
        if (mode == MODE_KA) {
            if (!ssl && !(ssl = dial(NULL))) {
                atomic_fetch_add(&n_fail, 1);
                continue;
            }
            if (exchange(ssl, request_ka, request_ka_len)) {
                atomic_fetch_add(&n_ok, 1);
            } else {
                if (!atomic_load(&stop))
                    atomic_fetch_add(&n_fail, 1);
                hangup(ssl);
                ssl = NULL;
            }
            continue;
        }
        ssl = dial(mode == MODE_RESUME ? sess : NULL);
        if (!ssl) {
            atomic_fetch_add(&n_fail, 1);
            continue;
        }
        bool ok = exchange(ssl, request_close, request_close_len);
        if (ok && mode == MODE_RESUME) {
            /* TLS 1.3 tickets arrive after the handshake: read with the
             * response, so the session is resumable now. */
            SSL_SESSION *s = SSL_get1_session(ssl);
            if (s) {
                SSL_SESSION_free(sess);
                sess = s;
            }
        }
        atomic_fetch_add(ok ? &n_ok : &n_fail, 1);
        hangup(ssl);
        ssl = NULL;
    }
    if (ssl)
        hangup(ssl);
    SSL_SESSION_free(sess);
    return NULL;
}

static int usage(void)
{
    fprintf(stderr, "usage: tls_load -p PORT -u URL [-c CONNS] [-d SECONDS] [-m ka|new|resume] "
                    "[-C CAFILE] [-n SERVERNAME] [-b BODYLEN]\n");
    return 2;
}

int main(int argc, char **argv)
{
    int o;
    while ((o = getopt(argc, argv, "p:u:c:d:m:C:n:b:")) != -1) {
        switch (o) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'u':
            url = optarg;
            break;
        case 'c':
            conns = atoi(optarg);
            break;
        case 'd':
            seconds = atoi(optarg);
            break;
        case 'm':
            mode = strcmp(optarg, "ka") == 0    ? MODE_KA
                   : strcmp(optarg, "new") == 0 ? MODE_NEW
                                                : MODE_RESUME;
            break;
        case 'C':
            cafile = optarg;
            break;
        case 'n':
            sni = optarg;
            break;
        case 'b':
            body_len = atol(optarg);
            break;
        default:
            return usage();
        }
    }
    if (!port || !url || conns < 1 || conns > 4096 || seconds < 1)
        return usage();
    const char *hp = strstr(url, "://");
    const char *host = hp ? hp + 3 : url;
    size_t hl = strcspn(host, "/");
    request_ka_len = (size_t)snprintf(request_ka, sizeof request_ka,
                                      "GET %s HTTP/1.1\r\nHost: %.*s\r\n\r\n", url, (int)hl, host);
    request_close_len = (size_t)snprintf(
        request_close, sizeof request_close,
        "GET %s HTTP/1.1\r\nHost: %.*s\r\nConnection: close\r\n\r\n", url, (int)hl, host);
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (cafile) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
            fprintf(stderr, "tls_load: cannot read %s\n", cafile);
            return 2;
        }
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    pthread_t *th = calloc((size_t)conns, sizeof *th);
    if (!th)
        return 2;
    uint64_t t0 = now_us();
    for (int i = 0; i < conns; i++)
        pthread_create(&th[i], NULL, worker, NULL);
    struct timespec d = {seconds, 0};
    nanosleep(&d, NULL);
    atomic_store(&stop, true);
    uint64_t t1 = now_us();
    for (int i = 0; i < conns; i++)
        pthread_join(th[i], NULL);
    free(th);
    SSL_CTX_free(ctx);
    uint64_t ok = atomic_load(&n_ok), fail = atomic_load(&n_fail);
    printf("LOADJSON {\"requests\":%llu,\"failed\":%llu,\"handshakes\":%llu,\"resumed\":%llu,"
           "\"duration_us\":%llu}\n",
           (unsigned long long)ok, (unsigned long long)fail,
           (unsigned long long)atomic_load(&n_handshakes),
           (unsigned long long)atomic_load(&n_resumed), (unsigned long long)(t1 - t0));
    return ok > 0 && fail == 0 ? 0 : 1;
}
