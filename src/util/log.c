/* log.c - error and access logs (see log.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "authgate/err.h"
#include "log.h"

static FILE *err_fp;    /* NULL means stderr */
static FILE *access_fp; /* NULL means disabled */
static bool err_owned, access_owned;
static enum ag_log_level level = AG_LOG_INFO;

static const char *const names[] = {"error", "warn", "info", "debug"};

/* Lines that did not reach their log (a full disk, /dev/full, an I/O
 * error), in total and in the current failing spell of each log. */
enum { LOG_ERROR_FILE, LOG_ACCESS_FILE };
static const char *const file_names[] = {"error", "access"};
static _Atomic uint64_t write_failures;
static _Atomic uint64_t lost[2];
static atomic_bool failing[2]; /* atomics: every worker loop thread logs */

static void timestamp(char *out, size_t n)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%s.%03dZ", ts, (int)(tv.tv_usec / 1000));
}

/* After a line went to f: a failed write is counted and said once per
 * failing spell, on stderr (a full log disk must neither stop the traffic
 * nor turn into one message per request); the first line that gets through
 * again says how many were lost. */
static void after_write(FILE *f, int which, int rc)
{
    if (rc < 0 || ferror(f)) {
        int e = errno;
        clearerr(f);
        atomic_fetch_add(&write_failures, 1);
        atomic_fetch_add(&lost[which], 1);
        if (!atomic_exchange(&failing[which], true)) {
            if (f != stderr) {
                char ts[48];
                timestamp(ts, sizeof ts);
                fprintf(stderr,
                        "%s level=warn event=log_write_failed log=%s error=\"%s\" "
                        "note=\"lines are dropped until the log takes writes again\"\n",
                        ts, file_names[which], strerror(e));
            }
        }
        return;
    }
    if (atomic_load(&failing[which]) && atomic_exchange(&failing[which], false)) {
        uint64_t n = atomic_exchange(&lost[which], 0);
        ag_warn("event=log_write_resumed log=%s lost=%llu", file_names[which],
                (unsigned long long)n);
    }
}

uint64_t ag_log_write_failures(void)
{
    return atomic_load(&write_failures);
}

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
    close_files();
    err_fp = e;
    err_owned = eo;
    access_fp = a;
    access_owned = ao;
    if (access_fp)
        setvbuf(access_fp, NULL, _IOLBF, 0);
    if (err_fp)
        setvbuf(err_fp, NULL, _IOLBF, 0);
    return 0;
}

void ag_log_close(void)
{
    close_files();
}

void ag_log_set_level(enum ag_log_level lvl)
{
    level = lvl;
}

enum ag_log_level ag_log_get_level(void)
{
    return level;
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
    if (lvl > level)
        return;
    FILE *f = err_fp ? err_fp : stderr;
    char ts[48];
    timestamp(ts, sizeof ts);
    char line[2048];
    int n = snprintf(line, sizeof line, "%s level=%s ", ts, names[lvl]);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    after_write(f, LOG_ERROR_FILE, fprintf(f, "%s\n", line));
}

bool ag_access_enabled(void)
{
    return access_fp != NULL;
}

void ag_access(const char *fmt, ...)
{
    if (!access_fp)
        return;
    va_list ap;
    va_start(ap, fmt);
    int rc = vfprintf(access_fp, fmt, ap);
    va_end(ap);
    if (fputc('\n', access_fp) == EOF)
        rc = -1;
    after_write(access_fp, LOG_ACCESS_FILE, rc);
}
