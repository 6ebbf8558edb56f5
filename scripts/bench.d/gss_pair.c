/* gss_pair.c - the machine's Negotiate ceiling for scripts/bench: N threads,
 * each in a loop
 *     gss_init_sec_context   (SPNEGO/krb5, mutual requested: what
 *                             negotiate_load sends)
 *     gss_accept_sec_context (acceptor credentials for the service from the
 *                             keytab, SPNEGO restricted to krb5 like the
 *                             gateway, replay cache on)
 *     gss_display_name of the client (what a gateway needs for the user name)
 * in one process, no network, no HTTP.  Prints
 *     PAIRJSON {"threads":N,"seconds":S,"pairs":P,"per_sec":R,"failures":F,...}
 *
 * Environment: KRB5_CONFIG, KRB5_KTNAME (acceptor keytab), KRB5RCACHEDIR,
 * KRB5CCNAME=MEMORY:... and KRB5_CLIENT_KTNAME (the initiator's keys).
 *
 *   gss_pair [-t threads] [-d seconds] [-S HTTP@localhost]
 *
 * Build: gcc -O2 -pthread -o gss_pair gss_pair.c -lgssapi_krb5
 */
#define _GNU_SOURCE
#include <errno.h>
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gss_util.h"
#include "json_text.h"

static atomic_bool g_stop;
static const char *g_service = "HTTP@localhost";

struct worker {
    pthread_t tid;
    gss_cred_id_t acred;
    gss_name_t target;
    uint64_t pairs, fail;
    char first_error[300];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int setup(struct worker *w, char *err, size_t cap)
{
    OM_uint32 maj, min;
    gss_buffer_desc nb = {strlen(g_service), (void *)g_service};
    maj = gss_import_name(&min, &nb, GSS_C_NT_HOSTBASED_SERVICE, &w->target);
    if (GSS_ERROR(maj)) {
        gss_err(maj, min, "gss_import_name", err, cap);
        return -1;
    }
    gss_OID_set_desc mechs = {1, &spnego_oid};
    maj = gss_acquire_cred(&min, w->target, GSS_C_INDEFINITE, &mechs, GSS_C_ACCEPT, &w->acred, NULL,
                           NULL);
    if (GSS_ERROR(maj)) {
        gss_err(maj, min, "gss_acquire_cred (acceptor)", err, cap);
        return -1;
    }
    gss_OID_set_desc krb5 = {1, (gss_OID)gss_mech_krb5};
    maj = gss_set_neg_mechs(&min, w->acred, &krb5);
    if (GSS_ERROR(maj)) {
        gss_err(maj, min, "gss_set_neg_mechs", err, cap);
        return -1;
    }
    return 0;
}

static int one_pair(struct worker *w, char *err, size_t cap)
{
    OM_uint32 maj, min, m;
    gss_ctx_id_t ictx = GSS_C_NO_CONTEXT, actx = GSS_C_NO_CONTEXT;
    gss_buffer_desc tok = GSS_C_EMPTY_BUFFER, rep = GSS_C_EMPTY_BUFFER, dn = GSS_C_EMPTY_BUFFER;
    gss_name_t src = GSS_C_NO_NAME;
    int r = -1;
    maj = gss_init_sec_context(&min, GSS_C_NO_CREDENTIAL, &ictx, w->target, &spnego_oid,
                               GSS_C_MUTUAL_FLAG, 0, GSS_C_NO_CHANNEL_BINDINGS, GSS_C_NO_BUFFER,
                               NULL, &tok, NULL, NULL);
    if (GSS_ERROR(maj)) {
        gss_err(maj, min, "gss_init_sec_context", err, cap);
        goto out;
    }
    maj = gss_accept_sec_context(&min, &actx, w->acred, &tok, GSS_C_NO_CHANNEL_BINDINGS, &src, NULL,
                                 &rep, NULL, NULL, NULL);
    if (maj != GSS_S_COMPLETE) {
        gss_err(maj, min, "gss_accept_sec_context", err, cap);
        goto out;
    }
    maj = gss_display_name(&min, src, &dn, NULL);
    if (GSS_ERROR(maj) || dn.length == 0) {
        gss_err(maj, min, "gss_display_name", err, cap);
        goto out;
    }
    r = 0;
out:
    gss_release_buffer(&m, &tok);
    gss_release_buffer(&m, &rep);
    gss_release_buffer(&m, &dn);
    gss_release_name(&m, &src);
    if (ictx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&m, &ictx, GSS_C_NO_BUFFER);
    if (actx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&m, &actx, GSS_C_NO_BUFFER);
    return r;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        char err[300];
        if (one_pair(w, err, sizeof err) == 0) {
            w->pairs++;
        } else {
            w->fail++;
            if (!w->first_error[0])
                snprintf(w->first_error, sizeof w->first_error, "%s", err);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = 2;
    double seconds = 5;
    int c;
    while ((c = getopt(argc, argv, "t:d:S:h")) != -1) {
        switch (c) {
        case 't':
            threads = atoi(optarg);
            break;
        case 'd':
            seconds = atof(optarg);
            break;
        case 'S':
            g_service = optarg;
            break;
        default:
            fprintf(stderr, "usage: %s [-t threads] [-d seconds] [-S HTTP@localhost]\n", argv[0]);
            return 2;
        }
    }
    if (threads < 1 || threads > 256 || !(seconds > 0))
        return 2;
    struct worker *ws = calloc((size_t)threads, sizeof *ws);
    if (!ws)
        return 2;
    char err[300] = "";
    for (int i = 0; i < threads; i++)
        if (setup(&ws[i], err, sizeof err) != 0) {
            fprintf(stderr, "set-up: %s\n", err);
            return 2;
        }
    /* warm-up (TGT, service ticket, keytab, replay cache) and a clear error */
    if (one_pair(&ws[0], err, sizeof err) != 0) {
        fprintf(stderr, "first pair failed: %s\n", err);
        return 2;
    }
    double t0 = now_s();
    for (int i = 0; i < threads; i++)
        if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0) {
            perror("pthread_create");
            return 2;
        }
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    atomic_store(&g_stop, true);
    uint64_t pairs = 0, fail = 0;
    const char *first = "";
    for (int i = 0; i < threads; i++) {
        pthread_join(ws[i].tid, NULL);
        pairs += ws[i].pairs;
        fail += ws[i].fail;
        if (!*first && ws[i].first_error[0])
            first = ws[i].first_error;
    }
    double el = now_s() - t0;
    char esc[700];
    json_text(esc, sizeof esc, first);
    printf("PAIRJSON {\"threads\":%d,\"seconds\":%.3f,\"pairs\":%" PRIu64 ",\"per_sec\":%.1f,"
           "\"failures\":%" PRIu64 ",\"first_error\":\"%s\"}\n",
           threads, el, pairs, (double)pairs / el, fail, esc);
    fflush(stdout);
    for (int i = 0; i < threads; i++) {
        OM_uint32 m;
        gss_release_cred(&m, &ws[i].acred);
        gss_release_name(&m, &ws[i].target);
    }
    free(ws);
    return fail ? 1 : 0;
}
