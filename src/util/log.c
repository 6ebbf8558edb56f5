/* log.c - error and access logs (see log.h). */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "authgate/err.h"
#include "log.h"

static FILE *err_fp;    /* NULL means stderr */
static FILE *access_fp; /* NULL means disabled */
static bool err_owned, access_owned;
/* access_fp != NULL, read without the lock on every request (atomic). */
static bool access_on;
static enum ag_log_level level = AG_LOG_INFO; /* atomic: set by one loop, read by all */
/* Every event loop logs (workers N): a line is written whole under mu, and
 * a reopen (SIGUSR1) never swaps a FILE another thread is writing to. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static const char *const names[] = {"error", "warn", "info", "debug"};

static void close_files(void)
{
    if (err_fp && err_owned)
        fclose(err_fp);
    if (access_fp && access_owned)
        fclose(access_fp);
    err_fp = access_fp = NULL;
    err_owned = access_owned = false;
}

int ag_log_open(const char *error_path, const char *access_path)
{
    FILE *e = NULL, *a = NULL;
    bool eo = false, ao = false;
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
    if (a)
        setvbuf(a, NULL, _IOLBF, 0);
    if (e)
        setvbuf(e, NULL, _IOLBF, 0);
    pthread_mutex_lock(&mu);
    close_files();
    err_fp = e;
    err_owned = eo;
    access_fp = a;
    access_owned = ao;
    __atomic_store_n(&access_on, a != NULL, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&mu);
    return 0;
}

void ag_log_close(void)
{
    pthread_mutex_lock(&mu);
    close_files();
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

void ag_log(enum ag_log_level lvl, const char *fmt, ...)
{
    if (lvl > ag_log_get_level())
        return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    char line[2048];
    int n =
        snprintf(line, sizeof line, "%s.%03dZ level=%s ", ts, (int)(tv.tv_usec / 1000), names[lvl]);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&mu);
    fprintf(err_fp ? err_fp : stderr, "%s\n", line);
    pthread_mutex_unlock(&mu);
}

bool ag_access_enabled(void)
{
    /* No lock: every loop asks once per request. */
    return __atomic_load_n(&access_on, __ATOMIC_RELAXED);
}

void ag_access(const char *fmt, ...)
{
    if (!ag_access_enabled())
        return;
    pthread_mutex_lock(&mu);
    if (access_fp) {
        va_list ap;
        va_start(ap, fmt);
        vfprintf(access_fp, fmt, ap);
        va_end(ap);
        fputc('\n', access_fp);
    }
    pthread_mutex_unlock(&mu);
}
