/* test_userfile.c - the local user file: parsing with file:line errors,
 * lookups, verify_local (and its same-answer rule for unknown users), the
 * atomic set() and the passwd subcommand's stdin path. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/ntcrypto.h"
#include "auth/passwd.h"
#include "auth/userfile.h"
#include "auth/verify_local.h"
#include "authgate/err.h"
#include "authgate/limits.h"
#include "util/util.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* NT hash of "Password" (MS-NLMP 4.2.2.1.2) and of "P@ssw0rd" (gss-ntlmssp
 * CBT example), from /work/shared/vectors/ms-nlmp-4.2.md sections 1 and 6. */
#define H_PASSWORD "a4f49c406510bdcab6824ee7c30fd852"
#define H_PASSW0RD "e19ccf75ee54e06b06a5907af13cef42"
/* NT hash of "authgate-demo" (scripts/demo-users), cross-checked with
 * OpenSSL's legacy MD4 over UTF-16LE. */
#define H_DEMO "624ca37328d7bca5ab9cfe08dffb595d"

static const uint8_t password_hash[16] = {0xa4, 0xf4, 0x9c, 0x40, 0x65, 0x10, 0xbd, 0xca,
                                          0xb6, 0x82, 0x4e, 0xe7, 0xc3, 0x0f, 0xd8, 0x52};

static const char good_file[] = "# users for the tests\n"
                                "\n"
                                "Alice:" H_PASSWORD "\n"
                                "   # an indented comment\n"
                                "CORP\\Bob:" H_PASSW0RD "\r\n"
                                "bob:" H_PASSWORD "\n"
                                "\t carol:"
                                "A4F49C406510BDCAB6824EE7C30FD852"
                                "  \n"
                                "j\xc3\xbcrgen:" H_PASSWORD "\n"
                                "dave with space:" H_PASSWORD; /* no final newline */

static struct ag_userfile *parse(const char *text, char *err, size_t errlen)
{
    return ag_userfile_parse(text, strlen(text), "users", err, errlen);
}

/* A fresh temp directory per test that needs files; removed by rmtree. */
static char *mktempdir(void)
{
    char *d = strdup("/tmp/ag-test-userfile-XXXXXX");
    assert_non_null(d);
    assert_non_null(mkdtemp(d));
    return d;
}

static void rmtree(char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[512];
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
    free(dir);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    char *s;
    long n;
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    s = calloc(1, (size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return s;
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    assert_non_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n - 2;
}

/* ---- parsing --------------------------------------------------------------- */

static void test_parse_good(void **state)
{
    (void)state;
    char err[256];
    struct ag_userfile *uf = parse(good_file, err, sizeof(err));
    if (!uf)
        fail_msg("%s", err);
    assert_int_equal(ag_userfile_count(uf), 6);
    ag_userfile_free(uf);

    uf = parse("", err, sizeof(err));
    assert_non_null(uf);
    assert_int_equal(ag_userfile_count(uf), 0);
    ag_userfile_free(uf);
    ag_userfile_free(NULL);
}

struct bad_file {
    const char *text;
    const char *err; /* exact message */
};

static const struct bad_file bad_files[] = {
    {"alice\n", "users:1: expected NAME:NTHASH"},
    {"# c\n\nalice:" H_PASSWORD "\nbob " H_PASSWORD "\n", "users:4: expected NAME:NTHASH"},
    {":" H_PASSWORD "\n", "users:1: empty user name"},
    {"alice:a4f49c406510bdcab6824ee7c30fd85\n", "users:1: NT hash must be exactly 32 hex digits"},
    {"alice:a4f49c406510bdcab6824ee7c30fd8520\n", "users:1: NT hash must be exactly 32 hex digits"},
    {"alice:g4f49c406510bdcab6824ee7c30fd852\n", "users:1: NT hash must be exactly 32 hex digits"},
    {"alice:" H_PASSWORD " # comment\n", "users:1: NT hash must be exactly 32 hex digits"},
    {"alice:\n", "users:1: NT hash must be exactly 32 hex digits"},
    {"\\alice:" H_PASSWORD "\n", "users:1: empty domain before '\\'"},
    {"CORP\\:" H_PASSWORD "\n", "users:1: empty account after '\\'"},
    {"al\x01ice:" H_PASSWORD "\n", "users:1: control character in user name"},
    {"j\xfcrgen:" H_PASSWORD "\n", "users:1: user name is not valid UTF-8"},
    {"alice :" H_PASSWORD "\n", "users:1: blank at the start or end of the user name"},
    {"a:b:" H_PASSWORD "\n", "users:1: NT hash must be exactly 32 hex digits"},
    {"alice:" H_PASSWORD "\n\nALICE:" H_PASSW0RD "\n",
     "users:3: duplicate user \"ALICE\" (first at line 1)"},
    {"corp\\bob:" H_PASSWORD "\nbob:" H_PASSWORD "\nCORP\\BOB:" H_PASSWORD "\n",
     "users:3: duplicate user \"CORP\\BOB\" (first at line 1)"},
};

static void test_parse_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(bad_files); i++) {
        char err[256] = "unset";
        struct ag_userfile *uf = parse(bad_files[i].text, err, sizeof(err));
        if (uf)
            fail_msg("case %zu parsed", i);
        if (strcmp(err, bad_files[i].err) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, err, bad_files[i].err);
    }

    /* a name one byte too long */
    char line[AG_USER_MAX + 64], err[256];
    memset(line, 'x', AG_USER_MAX + 1);
    snprintf(line + AG_USER_MAX + 1, sizeof(line) - AG_USER_MAX - 1, ":%s\n", H_PASSWORD);
    assert_null(parse(line, err, sizeof(err)));
    assert_string_equal(err, "users:1: user name longer than 255 bytes");
    /* and exactly at the limit is fine */
    memset(line, 'x', AG_USER_MAX);
    snprintf(line + AG_USER_MAX, sizeof(line) - AG_USER_MAX, ":%s\n", H_PASSWORD);
    struct ag_userfile *uf = parse(line, err, sizeof(err));
    assert_non_null(uf);
    ag_userfile_free(uf);
}

static void test_load_errors(void **state)
{
    (void)state;
    char *dir = mktempdir(), path[256], err[512], want[600];
    struct ag_userfile *uf;

    snprintf(path, sizeof(path), "%s/missing", dir);
    assert_null(ag_userfile_load(path, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s: No such file or directory", path);
    assert_string_equal(err, want);

    /* a directory is not a user file */
    assert_null(ag_userfile_load(dir, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s: not a regular file", dir);
    assert_string_equal(err, want);

    snprintf(path, sizeof(path), "%s/users", dir);
    write_file(path, "# x\nalice:" H_PASSWORD "\nbroken\n");
    assert_null(ag_userfile_load(path, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s:3: expected NAME:NTHASH", path);
    assert_string_equal(err, want);

    write_file(path, good_file);
    uf = ag_userfile_load(path, err, sizeof(err));
    assert_non_null(uf);
    assert_int_equal(ag_userfile_count(uf), 6);
    ag_userfile_free(uf);

    /* above the size cap (sparse file: no disk used) */
    int fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, AG_USERFILE_MAX_BYTES + 1), 0);
    close(fd);
    assert_null(ag_userfile_load(path, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s: larger than %u bytes", path, (unsigned)AG_USERFILE_MAX_BYTES);
    assert_string_equal(err, want);
    rmtree(dir);
}

/* ---- lookups --------------------------------------------------------------- */

struct lookup_case {
    const char *domain;
    const char *user;
    int rc;
    const char *canonical;
    const char *hash; /* hex */
};

static const struct lookup_case lookups[] = {
    {NULL, "Alice", 0, "Alice", H_PASSWORD},
    {NULL, "alice", 0, "Alice", H_PASSWORD},
    {"", "ALICE", 0, "Alice", H_PASSWORD},
    {"ANYDOMAIN", "alice", 0, "Alice", H_PASSWORD}, /* no domain in file: any */
    {"corp", "BOB", 0, "CORP\\Bob", H_PASSW0RD},    /* domain entry wins */
    {"CORP", "bob", 0, "CORP\\Bob", H_PASSW0RD},
    {"OTHER", "bob", 0, "bob", H_PASSWORD}, /* falls back to "bob" */
    {NULL, "bob", 0, "bob", H_PASSWORD},
    {NULL, "carol", 0, "carol", H_PASSWORD}, /* upper-case hex, trimmed */
    {NULL, "J\xc3\xbcrgen", 0, "j\xc3\xbcrgen", H_PASSWORD},
    {NULL, "dave with space", 0, "dave with space", H_PASSWORD},
    {NULL, "mallory", AG_ENOTFOUND, NULL, NULL},
    {NULL, "alic", AG_ENOTFOUND, NULL, NULL},
    {NULL, "alicee", AG_ENOTFOUND, NULL, NULL},
    {NULL, "J\xc3\x9crgen", AG_ENOTFOUND, NULL, NULL}, /* non-ASCII case differs */
    {NULL, "CORP\\Bob", AG_ENOTFOUND, NULL, NULL},     /* user is the account only */
};

static void hex_to_bytes(const char *hex, uint8_t out[16])
{
    for (int i = 0; i < 16; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

static void test_lookup(void **state)
{
    (void)state;
    char err[256];
    struct ag_userfile *uf = parse(good_file, err, sizeof(err));
    assert_non_null(uf);

    for (size_t i = 0; i < ARRAY_LEN(lookups); i++) {
        const struct lookup_case *c = &lookups[i];
        uint8_t h[16], want[16];
        char canon[AG_USER_MAX + 1] = "unchanged";
        memset(h, 0x5a, sizeof(h));
        int rc = ag_userfile_lookup(uf, c->domain, c->user, h, canon, sizeof(canon));
        if (rc != c->rc)
            fail_msg("case %zu (%s): rc %d want %d", i, c->user, rc, c->rc);
        if (rc == 0) {
            assert_string_equal(canon, c->canonical);
            hex_to_bytes(c->hash, want);
            assert_memory_equal(h, want, 16);
        } else {
            assert_string_equal(canon, "unchanged");
        }
    }

    /* canonical buffer too small: nothing written */
    uint8_t h[16] = {0};
    char small[5] = "xxxx";
    assert_int_equal(ag_userfile_lookup(uf, NULL, "alice", h, small, sizeof(small)), AG_ELIMIT);
    assert_string_equal(small, "xxxx");
    char six[6];
    assert_int_equal(ag_userfile_lookup(uf, NULL, "alice", h, six, sizeof(six)), 0);
    assert_string_equal(six, "Alice");
    assert_int_equal(ag_userfile_lookup(NULL, NULL, "alice", h, six, sizeof(six)), AG_EINVAL);
    /* the hash alone (the NTLM engine's use) */
    memset(h, 0, sizeof(h));
    assert_int_equal(ag_userfile_lookup(uf, "CORP", "bob", h, NULL, 0), 0);
    uint8_t want[16];
    hex_to_bytes(H_PASSW0RD, want);
    assert_memory_equal(h, want, 16);
    ag_userfile_free(uf);
}

/* Many users: every one is found (the table's chains work at scale). */
static void test_lookup_many(void **state)
{
    (void)state;
    const size_t n = 5000;
    char *text = malloc(n * 48), err[256], name[32], canon[64];
    size_t off = 0;
    uint8_t h[16];
    assert_non_null(text);
    for (size_t i = 0; i < n; i++)
        off += (size_t)sprintf(text + off, "User%zu:%032zx\n", i, i);
    struct ag_userfile *uf = ag_userfile_parse(text, off, "many", err, sizeof(err));
    assert_non_null(uf);
    assert_int_equal(ag_userfile_count(uf), n);
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "user%zu", i);
        assert_int_equal(ag_userfile_lookup(uf, NULL, name, h, canon, sizeof(canon)), 0);
        assert_int_equal(h[15], (uint8_t)i);
        assert_int_equal(h[14], (uint8_t)(i >> 8));
    }
    assert_int_equal(ag_userfile_lookup(uf, NULL, "user5000", h, canon, sizeof(canon)),
                     AG_ENOTFOUND);
    ag_userfile_free(uf);
    free(text);
}

/* ---- verify_local ---------------------------------------------------------- */

static void test_nt_hash_vector(void **state)
{
    (void)state;
    uint8_t h[16];
    assert_int_equal(ag_nt_hash("Password", 8, h), 0);
    assert_memory_equal(h, password_hash, 16);
}

struct verify_case {
    const char *user;
    const char *password;
    int rc;
    const char *canonical;
};

static const struct verify_case verifies[] = {
    {"alice", "Password", 0, "Alice"},
    {"ALICE", "Password", 0, "Alice"},
    {"WHATEVER\\alice", "Password", 0, "Alice"},
    {"corp\\bob", "P@ssw0rd", 0, "CORP\\Bob"},
    {"corp\\bob", "Password", AG_EAUTH, NULL}, /* CORP's bob has another password */
    {"bob", "Password", 0, "bob"},
    {"bob", "P@ssw0rd", AG_EAUTH, NULL},
    {"alice", "password", AG_EAUTH, NULL}, /* passwords are case-sensitive */
    {"alice", "Password ", AG_EAUTH, NULL},
    {"alice", "", AG_EAUTH, NULL},
    {"mallory", "Password", AG_EAUTH, NULL}, /* unknown: same code as wrong pw */
    {"CORP\\", "Password", AG_EAUTH, NULL},
    {"", "Password", AG_EAUTH, NULL},
    {"alice", "Pass\xffword", AG_EINVAL, NULL},
};

static void test_verify_local(void **state)
{
    (void)state;
    char err[256];
    struct ag_userfile *uf = parse(good_file, err, sizeof(err));
    assert_non_null(uf);
    for (size_t i = 0; i < ARRAY_LEN(verifies); i++) {
        const struct verify_case *c = &verifies[i];
        char canon[AG_USER_MAX + 1] = "unchanged";
        int rc = ag_verify_basic_local_blocking(uf, c->user, c->password, canon, sizeof(canon));
        if (rc != c->rc)
            fail_msg("case %zu (%s/%s): rc %d want %d", i, c->user, c->password, rc, c->rc);
        assert_string_equal(canon, rc == 0 ? c->canonical : "unchanged");
    }

    /* a name longer than any the file can hold is just unknown */
    char longname[AG_USER_MAX + 10];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    char canon[AG_USER_MAX + 1];
    assert_int_equal(ag_verify_basic_local_blocking(uf, longname, "Password", canon, sizeof(canon)),
                     AG_EAUTH);
    /* no user file: fail closed */
    assert_int_equal(
        ag_verify_basic_local_blocking(NULL, "alice", "Password", canon, sizeof(canon)),
        AG_EBACKEND);
    /* too small for the canonical name */
    assert_int_equal(ag_verify_basic_local_blocking(uf, "alice", "Password", canon, 3), AG_ELIMIT);
    ag_userfile_free(uf);
}

/* ---- set ------------------------------------------------------------------- */

static void test_set(void **state)
{
    (void)state;
    char *dir = mktempdir(), path[256], err[256], canon[64];
    struct ag_userfile *uf;
    struct stat st;
    char *text;

    snprintf(path, sizeof(path), "%s/users", dir);
    /* a missing file is created, mode 0600 */
    assert_int_equal(ag_userfile_set(path, "alice", "Password"), 0);
    text = read_text(path);
    assert_string_equal(text, "alice:" H_PASSWORD "\n");
    free(text);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);

    /* comments, blank lines, CRLF and odd spacing survive; a replaced line
     * keeps its place and takes the new spelling */
    write_file(path, "# header\n\nALICE:" H_PASSW0RD "\r\n  # mid comment\nbob:" H_PASSWORD
                     "\nCORP\\alice:" H_PASSWORD "\n# tail");
    chmod(path, 0640);
    assert_int_equal(ag_userfile_set(path, "Alice", "Password"), 0);
    text = read_text(path);
    assert_string_equal(text, "# header\n\nAlice:" H_PASSWORD "\n  # mid comment\nbob:" H_PASSWORD
                              "\nCORP\\alice:" H_PASSWORD "\n# tail");
    free(text);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640); /* group read kept, nothing for others */

    /* a new user is appended after a last line without newline */
    assert_int_equal(ag_userfile_set(path, "carol", "authgate-demo"), 0);
    text = read_text(path);
    assert_string_equal(text, "# header\n\nAlice:" H_PASSWORD "\n  # mid comment\nbob:" H_PASSWORD
                              "\nCORP\\alice:" H_PASSWORD "\n# tail\ncarol:" H_DEMO "\n");
    free(text);

    /* "CORP\alice" is its own entry, separate from "alice" */
    assert_int_equal(ag_userfile_set(path, "corp\\ALICE", "P@ssw0rd"), 0);
    uf = ag_userfile_load(path, err, sizeof(err));
    assert_non_null(uf);
    assert_int_equal(ag_userfile_count(uf), 4);
    assert_int_equal(
        ag_verify_basic_local_blocking(uf, "CORP\\alice", "P@ssw0rd", canon, sizeof(canon)), 0);
    assert_string_equal(canon, "corp\\ALICE");
    assert_int_equal(ag_verify_basic_local_blocking(uf, "alice", "Password", canon, sizeof(canon)),
                     0);
    assert_string_equal(canon, "Alice");
    assert_int_equal(
        ag_verify_basic_local_blocking(uf, "carol", "authgate-demo", canon, sizeof(canon)), 0);
    ag_userfile_free(uf);

    /* refusals leave the file alone */
    char *before = read_text(path);
    assert_int_equal(ag_userfile_set(path, "", "x"), AG_EINVAL);
    assert_int_equal(ag_userfile_set(path, "a:b", "x"), AG_EINVAL);
    assert_int_equal(ag_userfile_set(path, "bad\nname", "x"), AG_EINVAL);
    assert_int_equal(ag_userfile_set(path, "alice", ""), AG_EINVAL);
    assert_int_equal(ag_userfile_set(path, "alice", "\xff"), AG_EINVAL);
    text = read_text(path);
    assert_string_equal(text, before);
    free(text);
    free(before);

    /* a malformed file is not rewritten */
    write_file(path, "alice:" H_PASSWORD "\nbroken\n");
    assert_int_equal(ag_userfile_set(path, "bob", "x"), AG_EINVAL);
    text = read_text(path);
    assert_string_equal(text, "alice:" H_PASSWORD "\nbroken\n");
    free(text);

    /* no temporary file is left behind */
    assert_int_equal(count_entries(dir), 1);

    /* a directory that does not exist: AG_EIO */
    char bad[300];
    snprintf(bad, sizeof(bad), "%s/nodir/users", dir);
    assert_int_equal(ag_userfile_set(bad, "alice", "x"), AG_EIO);
    rmtree(dir);
}

/* The demo user file shipped for scripts/run holds demo/authgate-demo. */
static void test_demo_users(void **state)
{
    (void)state;
    char err[512], canon[64];
    struct ag_userfile *uf =
        ag_userfile_load(AG_SOURCE_DIR "/scripts/demo-users", err, sizeof(err));
    if (!uf)
        fail_msg("%s", err);
    assert_int_equal(
        ag_verify_basic_local_blocking(uf, "demo", "authgate-demo", canon, sizeof(canon)), 0);
    assert_string_equal(canon, "demo");
    ag_userfile_free(uf);
}

/* ---- authgate passwd (the stdin path; the tty path needs a terminal) ------- */

/* Runs ag_passwd_main with input on stdin (a pipe). */
static int run_passwd(const char *file, const char *user, const char *input)
{
    int p[2], saved_in = dup(0), saved_err = dup(2), devnull, rc;
    char *argv[] = {"passwd", (char *)file, (char *)user, NULL};
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], input, strlen(input)), (ssize_t)strlen(input));
    close(p[1]);
    dup2(p[0], 0);
    close(p[0]);
    devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2); /* its messages are for people */
    close(devnull);
    rc = ag_passwd_main(user ? 3 : 2, argv);
    dup2(saved_in, 0);
    dup2(saved_err, 2);
    close(saved_in);
    close(saved_err);
    return rc;
}

static void test_passwd_stdin(void **state)
{
    (void)state;
    char *dir = mktempdir(), path[256], *text;
    snprintf(path, sizeof(path), "%s/users", dir);

    assert_int_equal(run_passwd(path, "alice", "Password\n"), 0);
    text = read_text(path);
    assert_string_equal(text, "alice:" H_PASSWORD "\n");
    free(text);
    assert_int_equal(run_passwd(path, "alice", "P@ssw0rd\r\n"), 0); /* CRLF input */
    text = read_text(path);
    assert_string_equal(text, "alice:" H_PASSW0RD "\n");
    free(text);
    assert_int_equal(run_passwd(path, "bob", "Password"), 0); /* no newline */

    assert_int_equal(run_passwd(path, "carol", "\n"), 1);     /* empty */
    assert_int_equal(run_passwd(path, "carol", ""), 1);       /* EOF */
    assert_int_equal(run_passwd(path, "carol", "a\tb\n"), 1); /* CTL */
    assert_int_equal(run_passwd(path, "carol", "\xff\n"), 1); /* bad UTF-8 */
    char *big = malloc(AG_PASSWORD_MAX + 3);
    assert_non_null(big);
    memset(big, 'x', AG_PASSWORD_MAX + 1);
    strcpy(big + AG_PASSWORD_MAX + 1, "\n");
    assert_int_equal(run_passwd(path, "carol", big), 1); /* too long */
    free(big);
    assert_int_equal(run_passwd(path, "bad:name", "x\n"), 2);
    assert_int_equal(run_passwd(path, NULL, "x\n"), 2); /* usage */

    text = read_text(path);
    assert_string_equal(text, "alice:" H_PASSW0RD "\nbob:" H_PASSWORD "\n");
    free(text);
    rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),   cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_load_errors),  cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_lookup_many),  cmocka_unit_test(test_nt_hash_vector),
        cmocka_unit_test(test_verify_local), cmocka_unit_test(test_set),
        cmocka_unit_test(test_demo_users),   cmocka_unit_test(test_passwd_stdin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
