/* log.h - the error log (key=value lines) and the access log.
 *
 * One line per event: "<ISO time> level=<l> <key=value...>". Callers escape
 * untrusted strings with ag_escape() before passing them; tokens, challenges
 * and passwords are never passed here. Loop thread only (the pool threads
 * return results to the loop and the loop logs them).
 */
#ifndef AG_LOG_H
#define AG_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ag_log_level { AG_LOG_ERROR = 0, AG_LOG_WARN, AG_LOG_INFO, AG_LOG_DEBUG };

/* Opens (or reopens, for SIGUSR1/logrotate) the logs. "-" means stderr for the
 * error log and stdout for the access log; NULL/"" disables the access log. */
int ag_log_open(const char *error_path, const char *access_path);
void ag_log_close(void);
void ag_log_set_level(enum ag_log_level lvl);
enum ag_log_level ag_log_get_level(void);
int ag_log_level_parse(const char *s, enum ag_log_level *out);
const char *ag_log_level_name(enum ag_log_level lvl);

/* Buffered logs (log_buffer): lines collect in one buffer per log, shared
 * by every loop, written by size (the buffer is full), by age (the oldest
 * line waited AG_LOG_FLUSH_MS: checked on every line and by ag_log_flush
 * from a timer), on a reopen, at ag_log_close, after every error-level line
 * and at exit(). size 0: every line is one write(2), as it is written. */
int ag_log_set_buffer(size_t size);
/* Writes whatever is buffered (the loop's once-a-second timer, shutdown). */
void ag_log_flush(void);

void ag_log(enum ag_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One access-log line already built (ag_line_*, no printf), its '\n'
 * included. */
void ag_access_line(const char *line, size_t n);
bool ag_access_enabled(void);
/* Log lines lost to failed writes since start (both logs); each failing
 * spell is said once on stderr, and its end once in the error log. */
uint64_t ag_log_write_failures(void);

/* A line built in a caller's bounded buffer without printf (the access
 * log's per-request path): appends stop at cap and set cut. */
struct ag_line {
    char *p;
    size_t len, cap;
    bool cut;
};
void ag_line_mem(struct ag_line *l, const char *s, size_t n);
void ag_line_str(struct ag_line *l, const char *s);
void ag_line_ch(struct ag_line *l, char ch);
/* v in decimal, right-aligned in width with pad (' ' or '0'): %6llu, %03d. */
void ag_line_u64(struct ag_line *l, uint64_t v, unsigned width, char pad);
/* s as the inside of a JSON string: '"' and '\\' escaped, control bytes,
 * DEL and every byte >= 0x80 as \u00XX (a non-UTF-8 byte becomes its
 * Latin-1 code point: the line stays valid JSON whatever s holds). At most
 * AG_LINE_JSON_GROWTH bytes per byte of s. */
void ag_line_json(struct ag_line *l, const char *s);
#define AG_LINE_JSON_GROWTH 6

#define ag_err(...) ag_log(AG_LOG_ERROR, __VA_ARGS__)
#define ag_warn(...) ag_log(AG_LOG_WARN, __VA_ARGS__)
#define ag_info(...) ag_log(AG_LOG_INFO, __VA_ARGS__)
#define ag_debug(...)                                                                              \
    do {                                                                                           \
        if (ag_log_get_level() >= AG_LOG_DEBUG)                                                    \
            ag_log(AG_LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)

#endif
