/* passwd.c - "authgate passwd FILE USER" (see passwd.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "auth/passwd.h"
#include "auth/userfile.h"
#include "authgate/err.h"
#include "authgate/limits.h"
#include "util/util.h"

#define PROG "authgate passwd"

/* Set by the signal handler while echo is off, so we restore the terminal
 * instead of leaving the operator's shell without echo. */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

enum { LINE_OK = 0, LINE_EOF = 1, LINE_TOOLONG = 2, LINE_ERR = 3, LINE_INTR = 4 };

/* Reads one line from fd byte by byte (no stdio: its buffers would keep
 * copies of the password we could not wipe). buf holds cap bytes; the line
 * is NUL-terminated without its "\n" or "\r\n". LINE_EOF when nothing was
 * read before end of file. A longer line is consumed to its end and
 * reported as LINE_TOOLONG. */
static int read_line(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    int toolong = 0, any = 0;
    for (;;) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR) {
            if (interrupted)
                return LINE_INTR;
            continue;
        }
        if (r < 0)
            return LINE_ERR;
        if (r == 0) {
            if (!any)
                return LINE_EOF;
            break;
        }
        any = 1;
        if (c == '\n')
            break;
        if (n + 1 < cap)
            buf[n++] = c;
        else
            toolong = 1;
    }
    if (n && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    return toolong ? LINE_TOOLONG : LINE_OK;
}

/* Prompts on the terminal tty with echo off and reads a line. */
static int tty_read(int tty, const char *prompt, char *buf, size_t cap)
{
    struct termios old, quiet;
    int rc, have_tio = tcgetattr(tty, &old) == 0;

    if (have_tio) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        quiet.c_lflag |= ECHONL;
        (void)tcsetattr(tty, TCSAFLUSH, &quiet);
    }
    (void)!write(tty, prompt, strlen(prompt));
    rc = read_line(tty, buf, cap);
    if (have_tio)
        (void)tcsetattr(tty, TCSAFLUSH, &old);
    if (rc == LINE_INTR)
        (void)!write(tty, "\n", 1);
    return rc;
}

static int line_error(int rc)
{
    switch (rc) {
    case LINE_EOF:
        fprintf(stderr, "%s: no password given (end of input)\n", PROG);
        break;
    case LINE_TOOLONG:
        fprintf(stderr, "%s: password longer than %u bytes\n", PROG, (unsigned)AG_PASSWORD_MAX);
        break;
    case LINE_INTR:
        fprintf(stderr, "%s: interrupted, nothing changed\n", PROG);
        break;
    default:
        fprintf(stderr, "%s: cannot read the password: %s\n", PROG, strerror(errno));
        break;
    }
    return 1;
}

/* The password rules beyond the user file's: Basic refuses CTLs (RFC 7617),
 * so a password holding one could never be used; an empty one is refused
 * outright. */
static int password_ok(const char *pw)
{
    if (pw[0] == '\0') {
        fprintf(stderr, "%s: empty password refused\n", PROG);
        return 0;
    }
    for (const unsigned char *p = (const unsigned char *)pw; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            fprintf(stderr, "%s: control characters are not allowed in a password\n", PROG);
            return 0;
        }
    }
    return 1;
}

int ag_passwd_main(int argc, char **argv)
{
    /* One byte for the NUL, one to notice a line that is too long. */
    char pw1[AG_PASSWORD_MAX + 2], pw2[AG_PASSWORD_MAX + 2], err[512];
    struct sigaction sa, old_int, old_term, old_hup, old_quit;
    const char *file, *user, *msg = NULL;
    struct ag_userfile *uf = NULL;
    int status = 1, rc, tty = -1, exists = 0;
    uint8_t h[16];
    char canon[AG_USER_MAX + 1];

    pw1[0] = pw2[0] = '\0';
    if (argc != 3 || !argv[1][0] || !argv[2][0]) {
        fprintf(stderr, "usage: authgate passwd FILE USER\n"
                        "  sets USER's password in the user file FILE (created if missing);\n"
                        "  USER is \"name\" or \"DOMAIN\\name\". The password is read twice from\n"
                        "  the terminal, or once from stdin when stdin is not a terminal.\n");
        return 2;
    }
    file = argv[1];
    user = argv[2];
    if (ag_userfile_check_name(user, strlen(user), &msg) < 0) {
        fprintf(stderr, "%s: invalid user name: %s\n", PROG, msg);
        return 2;
    }

    /* A file that does not load is not rewritten: say why now, before
     * asking for a password. */
    if (access(file, F_OK) == 0) {
        uf = ag_userfile_load(file, err, sizeof(err));
        if (!uf) {
            fprintf(stderr, "%s: %s\n", PROG, err);
            return 1;
        }
        /* Same entry = the lookup lands on a name spelled like ours. */
        const char *bs = strchr(user, '\\');
        char dom[AG_USER_MAX + 1] = "";
        if (bs) {
            memcpy(dom, user, (size_t)(bs - user));
            dom[bs - user] = '\0';
        }
        exists = ag_userfile_lookup(uf, dom, bs ? bs + 1 : user, h, canon, sizeof(canon)) == 0 &&
                 ag_strieq(canon, strlen(canon), user);
        ag_wipe(h, sizeof(h));
        ag_userfile_free(uf);
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: read() must return EINTR */
    sigemptyset(&sa.sa_mask);
    interrupted = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGHUP, &sa, &old_hup);
    sigaction(SIGQUIT, &sa, &old_quit);

    if (!isatty(STDIN_FILENO)) {
        rc = read_line(STDIN_FILENO, pw1, sizeof(pw1));
        if (rc != LINE_OK) {
            line_error(rc);
            goto out;
        }
    } else {
        char prompt[AG_USER_MAX * 4 + 64], esc[AG_USER_MAX * 4 + 8];
        tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (tty < 0) {
            fprintf(stderr, "%s: cannot open /dev/tty: %s\n", PROG, strerror(errno));
            goto out;
        }
        ag_escape(esc, sizeof(esc), user, strlen(user));
        snprintf(prompt, sizeof(prompt), "New password for %s: ", esc);
        rc = tty_read(tty, prompt, pw1, sizeof(pw1));
        if (rc != LINE_OK) {
            line_error(rc);
            goto out;
        }
        if (!password_ok(pw1))
            goto out;
        rc = tty_read(tty, "Retype the password: ", pw2, sizeof(pw2));
        if (rc != LINE_OK) {
            line_error(rc);
            goto out;
        }
        if (strlen(pw1) != strlen(pw2) || ag_ct_memcmp(pw1, pw2, strlen(pw1)) != 0) {
            fprintf(stderr, "%s: the passwords do not match, nothing changed\n", PROG);
            goto out;
        }
    }
    if (!password_ok(pw1))
        goto out;

    rc = ag_userfile_set(file, user, pw1);
    switch (rc) {
    case 0:
        fprintf(stderr, "%s: %s user \"%s\" in %s\n", PROG, exists ? "updated" : "added", user,
                file);
        status = 0;
        break;
    case AG_EINVAL:
        fprintf(stderr, "%s: %s: refused (password not valid UTF-8, or the file is malformed)\n",
                PROG, file);
        break;
    case AG_ELIMIT:
        fprintf(stderr, "%s: %s: too large, or password too long\n", PROG, file);
        break;
    case AG_EIO:
        fprintf(stderr, "%s: cannot write %s: %s\n", PROG, file, strerror(errno));
        break;
    default:
        fprintf(stderr, "%s: %s: %s\n", PROG, file, ag_strerror(rc));
        break;
    }
out:
    if (tty >= 0)
        close(tty);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    ag_wipe(pw1, sizeof(pw1));
    ag_wipe(pw2, sizeof(pw2));
    return status;
}
