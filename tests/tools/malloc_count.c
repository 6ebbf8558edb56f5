/* malloc_count.c - an LD_PRELOAD allocation counter for the integration
 * tests (test_proxy_alloc.py): proves that a keep-alive request which needs
 * no new upstream connection makes no allocation.
 *
 *   cc -O2 -shared -fPIC -o malloc_count.so malloc_count.c
 *   LD_PRELOAD=./malloc_count.so AG_MALLOC_COUNT_FILE=/path authgate -c ...
 *   kill -USR2 PID   -> /path holds "allocs N\n", "live BYTES\n" (heap
 *                       held now, usable sizes) and, for the busiest
 *                       callers, "caller 0xADDR N\n" (addr2line -e authgate
 *                       after subtracting the load base from /proc/PID/maps)
 *
 * Counts malloc, calloc, realloc (a growth), posix_memalign, aligned_alloc,
 * memalign and valloc in every thread, through glibc's own __libc_*
 * entry points (no dlsym, which allocates). Not for the ASan build (ASan
 * interposes the same functions). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);
size_t malloc_usable_size(void *);

static unsigned long allocs;
/* Bytes held now (the allocator's usable size of every live block): what
 * idle connections keep (test_idle_connection_footprint). */
static long live;

static void *held(void *p)
{
    if (p)
        __atomic_add_fetch(&live, (long)malloc_usable_size(p), __ATOMIC_RELAXED);
    return p;
}

void free(void *p)
{
    if (p)
        __atomic_sub_fetch(&live, (long)malloc_usable_size(p), __ATOMIC_RELAXED);
    __libc_free(p);
}
#define SLOTS 256
static struct {
    void *caller;
    unsigned long n;
} callers[SLOTS];

static void count(void *caller)
{
    __atomic_add_fetch(&allocs, 1, __ATOMIC_RELAXED);
    size_t h = ((uintptr_t)caller >> 3) % SLOTS;
    for (size_t i = 0; i < SLOTS; i++) {
        size_t k = (h + i) % SLOTS;
        void *cur = __atomic_load_n(&callers[k].caller, __ATOMIC_RELAXED);
        if (cur == NULL) {
            void *expect = NULL;
            if (!__atomic_compare_exchange_n(&callers[k].caller, &expect, caller, false,
                                             __ATOMIC_RELAXED, __ATOMIC_RELAXED) &&
                expect != caller)
                continue;
            cur = caller;
        }
        if (cur == caller) {
            __atomic_add_fetch(&callers[k].n, 1, __ATOMIC_RELAXED);
            return;
        }
    }
}

void *malloc(size_t n)
{
    count(__builtin_return_address(0));
    return held(__libc_malloc(n));
}

void *calloc(size_t a, size_t b)
{
    count(__builtin_return_address(0));
    return held(__libc_calloc(a, b));
}

void *realloc(void *p, size_t n)
{
    count(__builtin_return_address(0));
    long before = p ? (long)malloc_usable_size(p) : 0;
    void *q = __libc_realloc(p, n);
    if (q || !n) {
        __atomic_sub_fetch(&live, before, __ATOMIC_RELAXED);
        held(q);
    }
    return q;
}

int posix_memalign(void **out, size_t align, size_t n)
{
    count(__builtin_return_address(0));
    void *p = held(__libc_memalign(align, n));
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

void *aligned_alloc(size_t align, size_t n)
{
    count(__builtin_return_address(0));
    return held(__libc_memalign(align, n));
}

void *memalign(size_t align, size_t n)
{
    count(__builtin_return_address(0));
    return held(__libc_memalign(align, n));
}

void *valloc(size_t n)
{
    count(__builtin_return_address(0));
    return held(__libc_memalign((size_t)sysconf(_SC_PAGESIZE), n));
}

/* Async-signal-safe number formatting. */
static size_t put_num(char *p, unsigned long v, int base)
{
    char d[32];
    size_t n = 0;
    do {
        d[n++] = "0123456789abcdef"[v % (unsigned long)base];
        v /= (unsigned long)base;
    } while (v);
    for (size_t i = 0; i < n; i++)
        p[i] = d[n - 1 - i];
    return n;
}

static void on_usr2(int sig)
{
    (void)sig;
    int saved = errno;
    const char *path = getenv("AG_MALLOC_COUNT_FILE");
    int fd = path ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
    if (fd >= 0) {
        char line[96];
        size_t n = 0;
        memcpy(line, "allocs ", 7);
        n = 7 + put_num(line + 7, __atomic_load_n(&allocs, __ATOMIC_RELAXED), 10);
        line[n++] = '\n';
        (void)!write(fd, line, n);
        long l = __atomic_load_n(&live, __ATOMIC_RELAXED);
        memcpy(line, "live ", 5);
        n = 5 + put_num(line + 5, l > 0 ? (unsigned long)l : 0, 10);
        line[n++] = '\n';
        (void)!write(fd, line, n);
        for (size_t i = 0; i < SLOTS; i++) {
            void *c = __atomic_load_n(&callers[i].caller, __ATOMIC_RELAXED);
            if (!c)
                continue;
            memcpy(line, "caller 0x", 9);
            n = 9 + put_num(line + 9, (unsigned long)(uintptr_t)c, 16);
            line[n++] = ' ';
            n += put_num(line + n, __atomic_load_n(&callers[i].n, __ATOMIC_RELAXED), 10);
            line[n++] = '\n';
            (void)!write(fd, line, n);
        }
        close(fd);
    }
    errno = saved;
}

__attribute__((constructor)) static void init(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, NULL);
}
