/* uvguard.c - an LD_PRELOAD guard around libuv's handle life cycle, for
 * chaos runs (tests/tools/chaos.py --uvguard) and for hunting a handle bug.
 *
 * libuv reports a handle closed twice only at the end of the loop turn, far
 * from the cause (uv__finish_close: Assertion `!(handle->flags &
 * UV_HANDLE_CLOSED)'). This guard stops the daemon at the faulty call
 * instead, with a backtrace:
 *   - a handle initialised again while it is live or still closing (its
 *     close callback has not run: it is on the loop's closing queue);
 *   - free() of a block holding a live or closing handle;
 *   - uv_close of a handle already closing;
 *   - uv_close, or an init, start or stop, from a thread other than the one
 *     running the handle's loop.
 * It records every handle made through the interposed init calls (timer,
 * tcp, pipe, poll, async, signal) and wraps each close callback to learn
 * when libuv is done with the handle.
 *
 *   cc -shared -fPIC -O1 -g -o uvguard.so tests/tools/uvguard.c -ldl -lpthread
 *   LD_PRELOAD=./uvguard.so UVGUARD_LOG=/tmp/uvguard.log authgate -c ...
 *
 * A finding is written (one line, then the backtrace) to $UVGUARD_LOG, or to
 * stderr, and the process aborts. Not for sanitizer builds (ASan owns
 * free). Diagnostics only: a global lock around every free(). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

extern void __libc_free(void *);
extern void *__libc_malloc(size_t);

struct ent {
    uintptr_t addr; /* the handle */
    uv_loop_t *loop;
    int closing;
    uv_close_cb cb; /* the caller's close callback */
    struct ent *next;
};

/* Handles by the 4 KiB page they start in: free() looks up only the pages
 * of the block it frees. */
#define BUCKETS 65536
static struct ent *table[BUCKETS];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long recorded; /* free() skips the lookup while nothing is recorded */
static struct {
    uv_loop_t *loop;
    pthread_t thread;
} runners[64];
static int n_runners;

static unsigned bucket_of_page(uintptr_t page)
{
    return (unsigned)(page * 2654435761u) % BUCKETS;
}

static struct ent **slot(uintptr_t addr)
{
    struct ent **pp = &table[bucket_of_page(addr >> 12)];
    while (*pp && (*pp)->addr != addr)
        pp = &(*pp)->next;
    return pp;
}

/* Called with mu held; releases it, reports and aborts. */
__attribute__((noreturn, format(printf, 1, 2))) static void finding(const char *fmt, ...)
{
    pthread_mutex_unlock(&mu);
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    const char *path = getenv("UVGUARD_LOG");
    int fd = path ? open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644) : -1;
    if (fd < 0)
        fd = 2;
    dprintf(fd, "UVGUARD pid=%d tid=%d: %.*s\n", (int)getpid(), (int)gettid(), n, line);
    void *frames[64];
    backtrace_symbols_fd(frames, backtrace(frames, 64), fd);
    abort();
}

/* With mu held: whether the calling thread may touch loop's handles (a loop
 * not running yet may be set up from any thread). */
static int on_loop_thread(const uv_loop_t *loop)
{
    for (int i = 0; i < n_runners; i++)
        if (runners[i].loop == loop)
            return pthread_equal(runners[i].thread, pthread_self());
    return 1;
}

/* Before an init: the memory must hold no recorded handle. */
static void check_fresh(const void *h, const uv_loop_t *loop, const char *what)
{
    pthread_mutex_lock(&mu);
    struct ent *e = *slot((uintptr_t)h);
    if (e)
        finding("%s(%p): the handle is %s", what, h,
                e->closing ? "still closing (its close callback has not run)" : "live");
    if (!on_loop_thread(loop))
        finding("%s(%p) on loop %p from another thread", what, h, (const void *)loop);
    pthread_mutex_unlock(&mu);
}

static void record(void *h, uv_loop_t *loop)
{
    struct ent *e = __libc_malloc(sizeof *e);
    if (!e)
        return;
    *e = (struct ent){(uintptr_t)h, loop, 0, NULL, NULL};
    pthread_mutex_lock(&mu);
    struct ent **pp = slot((uintptr_t)h);
    e->next = *pp;
    *pp = e;
    __atomic_add_fetch(&recorded, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&mu);
}

#define REAL(name)                                                                                 \
    static __typeof__(name) *real;                                                                 \
    if (!real)                                                                                     \
    real = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

#define GUARDED_INIT(what, call)                                                                   \
    do {                                                                                           \
        check_fresh(h, loop, what);                                                                \
        int rc = call;                                                                             \
        if (rc == 0)                                                                               \
            record(h, loop);                                                                       \
        return rc;                                                                                 \
    } while (0)

int uv_timer_init(uv_loop_t *loop, uv_timer_t *h)
{
    REAL(uv_timer_init);
    GUARDED_INIT("uv_timer_init", real(loop, h));
}

int uv_tcp_init(uv_loop_t *loop, uv_tcp_t *h)
{
    REAL(uv_tcp_init);
    GUARDED_INIT("uv_tcp_init", real(loop, h));
}

int uv_pipe_init(uv_loop_t *loop, uv_pipe_t *h, int ipc)
{
    REAL(uv_pipe_init);
    GUARDED_INIT("uv_pipe_init", real(loop, h, ipc));
}

int uv_poll_init_socket(uv_loop_t *loop, uv_poll_t *h, uv_os_sock_t sock)
{
    REAL(uv_poll_init_socket);
    GUARDED_INIT("uv_poll_init_socket", real(loop, h, sock));
}

int uv_async_init(uv_loop_t *loop, uv_async_t *h, uv_async_cb cb)
{
    REAL(uv_async_init);
    GUARDED_INIT("uv_async_init", real(loop, h, cb));
}

int uv_signal_init(uv_loop_t *loop, uv_signal_t *h)
{
    REAL(uv_signal_init);
    GUARDED_INIT("uv_signal_init", real(loop, h));
}

/* libuv is done with h: forget it, then the caller's callback. */
static void closed(uv_handle_t *h)
{
    pthread_mutex_lock(&mu);
    struct ent **pp = slot((uintptr_t)h);
    struct ent *e = *pp;
    if (!e || !e->closing)
        finding("close callback of %p, which was not closing", (void *)h);
    uv_close_cb cb = e->cb;
    *pp = e->next;
    __atomic_sub_fetch(&recorded, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&mu);
    __libc_free(e);
    if (cb)
        cb(h);
}

void uv_close(uv_handle_t *h, uv_close_cb cb)
{
    REAL(uv_close);
    pthread_mutex_lock(&mu);
    struct ent *e = *slot((uintptr_t)h);
    if (e && e->closing)
        finding("uv_close(%p): already closing", (void *)h);
    if (!on_loop_thread(h->loop))
        finding("uv_close(%p) of loop %p from another thread", (void *)h, (void *)h->loop);
    if (e) {
        e->closing = 1;
        e->cb = cb;
    }
    pthread_mutex_unlock(&mu);
    real(h, e ? closed : cb);
}

int uv_run(uv_loop_t *loop, uv_run_mode mode)
{
    REAL(uv_run);
    pthread_mutex_lock(&mu);
    int i = 0;
    while (i < n_runners && runners[i].loop != loop)
        i++;
    if (i < 64) {
        runners[i].loop = loop;
        runners[i].thread = pthread_self();
        if (i == n_runners)
            n_runners++;
    }
    pthread_mutex_unlock(&mu);
    return real(loop, mode);
}

/* A closed loop's internal handles never pass through our uv_close. */
int uv_loop_close(uv_loop_t *loop)
{
    REAL(uv_loop_close);
    int rc = real(loop);
    pthread_mutex_lock(&mu);
    for (unsigned b = 0; b < BUCKETS; b++) {
        struct ent **pp = &table[b];
        while (*pp) {
            struct ent *e = *pp;
            if (e->loop == loop) {
                *pp = e->next;
                __atomic_sub_fetch(&recorded, 1, __ATOMIC_RELAXED);
                __libc_free(e);
            } else {
                pp = &e->next;
            }
        }
    }
    for (int i = 0; i < n_runners; i++)
        if (runners[i].loop == loop)
            runners[i].loop = NULL;
    pthread_mutex_unlock(&mu);
    return rc;
}

/* A libuv call on handle h, allowed from its loop's thread only. */
#define ON_LOOP_THREAD(ret, name, params, args)                                                    \
    ret name params                                                                                \
    {                                                                                              \
        REAL(name);                                                                                \
        pthread_mutex_lock(&mu);                                                                   \
        if (!on_loop_thread(((uv_handle_t *)(h))->loop))                                           \
            finding("%s(%p) from another thread", #name, (void *)(h));                             \
        pthread_mutex_unlock(&mu);                                                                 \
        return real args;                                                                          \
    }

ON_LOOP_THREAD(int, uv_timer_start, (uv_timer_t * h, uv_timer_cb cb, uint64_t t, uint64_t r),
               (h, cb, t, r))
ON_LOOP_THREAD(int, uv_timer_stop, (uv_timer_t * h), (h))
ON_LOOP_THREAD(int, uv_read_start, (uv_stream_t * h, uv_alloc_cb a, uv_read_cb r), (h, a, r))
ON_LOOP_THREAD(int, uv_read_stop, (uv_stream_t * h), (h))
ON_LOOP_THREAD(int, uv_poll_start, (uv_poll_t * h, int events, uv_poll_cb cb), (h, events, cb))
ON_LOOP_THREAD(int, uv_poll_stop, (uv_poll_t * h), (h))

void free(void *p)
{
    if (p && __atomic_load_n(&recorded, __ATOMIC_RELAXED) > 0) {
        uintptr_t lo = (uintptr_t)p, hi = lo + malloc_usable_size(p);
        pthread_mutex_lock(&mu);
        for (uintptr_t page = lo >> 12; page <= (hi - 1) >> 12; page++)
            for (const struct ent *e = table[bucket_of_page(page)]; e; e = e->next)
                if (e->addr >= lo && e->addr < hi)
                    finding("free(%p) of %zu bytes holding handle %p, which is %s", p,
                            (size_t)(hi - lo), (void *)e->addr,
                            e->closing ? "still closing (its close callback has not run)" : "live");
        pthread_mutex_unlock(&mu);
    }
    __libc_free(p);
}
