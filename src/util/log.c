/* log.c - error and access logs (see log.h). */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "authgate/err.h"
#include "authgate/limits.h"
#include "log.h"
#include "util.h"

/* One log file and the lines waiting for it. fp NULL: stderr for the error
 * log, off for the access log. */
struct sink {
    const char *name; /* "error" or "access", for the failure lines */
    FILE *fp;
    bool owned;
    char *buf; /* buf_cap bytes, or NULL (line by line) */
    size_t len;
    uint64_t first_ms; /* when the oldest buffered line came in */
    /* Under mu: lines that did not reach the file (a full disk, /dev/full,
     * an I/O error) in the current failing spell, and whether one is on. */
    uint64_t lost;
    bool failing;
};

static struct sink err_s = {.name = "error"}, acc_s = {.name = "access"};
/* Lines lost in all (both logs), read by the stats without the lock. */
static uint64_t write_failures;
/* A spell that ended under mu, said by the next caller once mu is free
 * (ag_warn takes mu itself): the lines lost, 0 for none. */
static uint64_t resumed_lost[2];
static size_t buf_cap = AG_LOG_BUFFER; /* 0: every line is written at once */
/* access_fp != NULL, read without the lock on every request (atomic). */
static bool access_on;
static enum ag_log_level level = AG_LOG_INFO; /* atomic: set by one loop, read by all */
/* Every event loop logs (workers N) into the same two buffers: a line is
 * appended whole under mu, and a reopen (SIGUSR1) never swaps a FILE
 * another thread is writing to. One buffer under the lock, not one per
 * loop: the lock was taken per line already (it was the write's), a
 * buffered line holds it for a memcpy instead of a write(2), and lines of
 * every loop stay in the order they were made. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static const char *const names[] = {"error", "warn", "info", "debug"};

static FILE *sink_file(const struct sink *s)
{
    if (s->fp)
        return s->fp;
    return s == &err_s ? stderr : NULL;
}

static size_t count_lines(const char *p, size_t n)
{
    size_t k = 0;
    for (const char *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))); p++)
        k++;
    return k;
}

/* Under mu, after n bytes (lines of them) went to f: a failed write is
 * counted and said once per failing spell, on stderr (a full log disk must
 * neither stop the traffic nor turn into one message per request); the
 * first write that gets through again has the error log say how many lines
 * were lost (report_resumed, once mu is free). */
static void after_write(struct sink *s, FILE *f, const char *p, size_t n, size_t written)
{
    if (written < n || ferror(f)) {
        int e = errno;
        clearerr(f);
        size_t k = count_lines(p, n);
        __atomic_add_fetch(&write_failures, k, __ATOMIC_RELAXED);
        s->lost += k;
        if (!s->failing) {
            s->failing = true;
            if (f != stderr) {
                struct timeval tv;
                gettimeofday(&tv, NULL);
                struct tm tm;
                char ts[32];
                gmtime_r(&tv.tv_sec, &tm);
                strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
                fprintf(stderr,
                        "%s.%03dZ level=warn event=log_write_failed log=%s error=\"%s\" "
                        "note=\"lines are dropped until the log takes writes again\"\n",
                        ts, (int)(tv.tv_usec / 1000), s->name, strerror(e));
            }
        }
        return;
    }
    if (s->failing) {
        s->failing = false;
        resumed_lost[s == &acc_s] = s->lost ? s->lost : 1;
        s->lost = 0;
    }
}

/* Outside mu: the end of a failing spell, in the error log. */
static void report_resumed(void)
{
    for (int i = 0; i < 2; i++) {
        uint64_t n = __atomic_exchange_n(&resumed_lost[i], 0, __ATOMIC_RELAXED);
        if (n)
            ag_warn("event=log_write_resumed log=%s lost=%llu", i ? "access" : "error",
                    (unsigned long long)n);
    }
}

uint64_t ag_log_write_failures(void)
{
    return __atomic_load_n(&write_failures, __ATOMIC_RELAXED);
}

/* Under mu: n bytes straight to the file. */
static void sink_write(struct sink *s, FILE *f, const char *p, size_t n)
{
    after_write(s, f, p, n, fwrite(p, 1, n, f));
}

/* Under mu: what is buffered goes out in one write(2) (the FILEs are
 * unbuffered). */
static void sink_flush(struct sink *s)
{
    FILE *f = sink_file(s);
    if (s->len && f)
        sink_write(s, f, s->buf, s->len);
    s->len = 0;
}

/* Under mu: one whole line (with its '\n'). */
static void sink_put(struct sink *s, const char *line, size_t n)
{
    FILE *f = sink_file(s);
    if (!f)
        return;
    if (!s->buf || n > buf_cap) {
        sink_flush(s);
        sink_write(s, f, line, n);
        return;
    }
    uint64_t now = ag_now_ms();
    if (s->len + n > buf_cap)
        sink_flush(s);
    if (s->len == 0)
        s->first_ms = now;
    memcpy(s->buf + s->len, line, n);
    s->len += n;
    if (now - s->first_ms >= AG_LOG_FLUSH_MS)
        sink_flush(s);
}

static void sink_close(struct sink *s)
{
    sink_flush(s);
    if (s->fp && s->owned)
        fclose(s->fp);
    s->fp = NULL;
    s->owned = false;
}

static void flush_all_atexit(void)
{
    ag_log_flush();
}

int ag_log_open(const char *error_path, const char *access_path)
{
    FILE *e = NULL, *a = NULL;
    bool eo = false, ao = false;
    static bool hooked;
    if (error_path && *error_path && strcmp(error_path, "-") != 0) {
        if (!(e = fopen(error_path, "a")))
            return AG_EIO;
        eo = true;
    }
    if (access_path && *access_path) {
        if (strcmp(access_path, "-") == 0) {
            a = stdout;
        } else if (!(a = fopen(access_path, "a"))) {
            if (e)
                fclose(e);
            return AG_EIO;
        } else {
            ao = true;
        }
    }
    /* Unbuffered: our buffer decides when a write happens. */
    if (a)
        setvbuf(a, NULL, _IONBF, 0);
    if (e)
        setvbuf(e, NULL, _IONBF, 0);
    pthread_mutex_lock(&mu);
    /* What was buffered belongs to the old files (logrotate renamed them). */
    sink_close(&err_s);
    sink_close(&acc_s);
    err_s.fp = e;
    err_s.owned = eo;
    acc_s.fp = a;
    acc_s.owned = ao;
    __atomic_store_n(&access_on, a != NULL, __ATOMIC_RELAXED);
    if (!hooked) {
        /* exit() paths (a fatal start-up error) lose no buffered line. */
        hooked = atexit(flush_all_atexit) == 0;
    }
    pthread_mutex_unlock(&mu);
    return 0;
}

int ag_log_set_buffer(size_t size)
{
    char *eb = NULL, *ab = NULL;
    if (size) {
        eb = malloc(size);
        ab = malloc(size);
        if (!eb || !ab) {
            free(eb);
            free(ab);
            return AG_ENOMEM;
        }
    }
    pthread_mutex_lock(&mu);
    sink_flush(&err_s);
    sink_flush(&acc_s);
    free(err_s.buf);
    free(acc_s.buf);
    err_s.buf = eb;
    acc_s.buf = ab;
    buf_cap = size;
    pthread_mutex_unlock(&mu);
    return 0;
}

void ag_log_flush(void)
{
    pthread_mutex_lock(&mu);
    sink_flush(&err_s);
    sink_flush(&acc_s);
    pthread_mutex_unlock(&mu);
    report_resumed();
}

void ag_log_close(void)
{
    pthread_mutex_lock(&mu);
    sink_close(&err_s);
    sink_close(&acc_s);
    free(err_s.buf);
    free(acc_s.buf);
    err_s.buf = acc_s.buf = NULL;
    __atomic_store_n(&access_on, false, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&mu);
}

void ag_log_set_level(enum ag_log_level lvl)
{
    __atomic_store_n(&level, lvl, __ATOMIC_RELAXED);
}

enum ag_log_level ag_log_get_level(void)
{
    return __atomic_load_n(&level, __ATOMIC_RELAXED);
}

int ag_log_level_parse(const char *s, enum ag_log_level *out)
{
    for (int i = 0; i <= AG_LOG_DEBUG; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (enum ag_log_level)i;
            return 0;
        }
    return AG_EINVAL;
}

const char *ag_log_level_name(enum ag_log_level lvl)
{
    return (unsigned)lvl <= AG_LOG_DEBUG ? names[lvl] : "?";
}

/* --- the line formatter ----------------------------------------------------- */

void ag_line_mem(struct ag_line *l, const char *s, size_t n)
{
    size_t room = l->cap - l->len;
    if (n > room) {
        n = room;
        l->cut = true;
    }
    memcpy(l->p + l->len, s, n);
    l->len += n;
}

void ag_line_str(struct ag_line *l, const char *s)
{
    ag_line_mem(l, s, strlen(s));
}

void ag_line_ch(struct ag_line *l, char ch)
{
    ag_line_mem(l, &ch, 1);
}

void ag_line_u64(struct ag_line *l, uint64_t v, unsigned width, char pad)
{
    char d[24];
    size_t n = 0;
    do {
        d[sizeof d - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n < width && n < sizeof d)
        d[sizeof d - 1 - n++] = pad;
    ag_line_mem(l, d + sizeof d - n, n);
}

void ag_line_json(struct ag_line *l, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            ag_line_mem(l, e, sizeof e);
        } else if (*p < 0x20 || *p >= 0x7f) {
            char e[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
            ag_line_mem(l, e, sizeof e);
        } else {
            ag_line_mem(l, (const char *)p, 1);
        }
    }
}

/* "YYYY-mm-ddTHH:MM:SS" of the second sec: gmtime and strftime once a
 * second per thread, not per line. */
static const char *utc_second(time_t sec)
{
    static __thread time_t last = (time_t)-1;
    static __thread char text[32];
    if (sec != last) {
        struct tm tm;
        gmtime_r(&sec, &tm);
        strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
        last = sec;
    }
    return text;
}

void ag_log(enum ag_log_level lvl, const char *fmt, ...)
{
    if (lvl > ag_log_get_level())
        return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char buf[2048];
    struct ag_line l = {.p = buf, .cap = sizeof buf - 1}; /* room for the '\n' */
    ag_line_str(&l, utc_second(tv.tv_sec));
    ag_line_ch(&l, '.');
    ag_line_u64(&l, (uint64_t)(tv.tv_usec / 1000), 3, '0');
    ag_line_str(&l, "Z level=");
    ag_line_str(&l, names[lvl]);
    ag_line_ch(&l, ' ');
    /* The event text itself: every caller passes a printf format. */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + l.len, l.cap - l.len + 1, fmt, ap);
    va_end(ap);
    if (n > 0)
        l.len += (size_t)n < l.cap - l.len ? (size_t)n : l.cap - l.len;
    buf[l.len++] = '\n';
    pthread_mutex_lock(&mu);
    sink_put(&err_s, buf, l.len);
    if (lvl == AG_LOG_ERROR) {
        /* An error may be the last thing before an exit: on disk now. */
        sink_flush(&err_s);
        sink_flush(&acc_s);
    }
    pthread_mutex_unlock(&mu);
    report_resumed();
}

bool ag_access_enabled(void)
{
    /* No lock: every loop asks once per request. */
    return __atomic_load_n(&access_on, __ATOMIC_RELAXED);
}

void ag_access_line(const char *line, size_t n)
{
    if (!ag_access_enabled())
        return;
    pthread_mutex_lock(&mu);
    sink_put(&acc_s, line, n);
    pthread_mutex_unlock(&mu);
    report_resumed();
}
