/* userfile.c - the local user file: parser, hash table, atomic update
 * (see userfile.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/ntcrypto.h"
#include "auth/userfile.h"
#include "authgate/err.h"
#include "authgate/limits.h"
#include "util/util.h"

#define NO_ENTRY UINT32_MAX

/* One line of the file, parsed. Names live in the table's arena. */
struct uf_entry {
    uint32_t name_off; /* offset of the canonical NAME in the arena */
    uint16_t name_len; /* its length (<= AG_USER_MAX) */
    uint16_t acct_off; /* account = name + acct_off; domain = name[0..acct_off-1) */
    uint32_t next;     /* next entry in the same bucket, NO_ENTRY ends */
    uint32_t line;     /* line number, for duplicate messages */
    uint8_t hash[16];  /* secret: wiped on free */
};

struct ag_userfile {
    struct uf_entry *ents; /* owned, n used */
    size_t n;
    uint32_t *buckets; /* owned, nbuckets heads (entry indices) */
    size_t mask;       /* nbuckets - 1 (a power of two) */
    char *arena;       /* owned: the NAMEs, each NUL-terminated */
};

/* The parts of one entry line while parsing; pointers into the line. */
struct line_ent {
    const char *name;
    size_t name_len;
    size_t acct_off; /* 0 = no domain */
    uint8_t hash[16];
};

static unsigned char lower(unsigned char c)
{
    return (unsigned char)ag_ascii_lower((char)c);
}

/* FNV-1a of the lower-cased account. The keys come from the (trusted) file
 * and lookups cannot add any, so an attacker cannot lengthen a chain: no
 * need for a keyed hash here. */
static uint32_t hash_acct(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= lower((unsigned char)s[i]);
        h *= 16777619u;
    }
    return h;
}

static int ieq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return 0;
    for (size_t i = 0; i < alen; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return 0;
    return 1;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

int ag_userfile_check_name(const char *name, size_t len, const char **msg)
{
    const char *why = NULL;
    int rc = AG_EINVAL;
    const char *bs;
    uint8_t scratch[2 * AG_USER_MAX];
    size_t o;

    if (len == 0) {
        why = "empty user name";
    } else if (len > AG_USER_MAX) {
        why = "user name longer than 255 bytes";
        rc = AG_ELIMIT;
    } else if (is_blank(name[0]) || is_blank(name[len - 1])) {
        why = "blank at the start or end of the user name";
    } else {
        for (size_t i = 0; i < len && !why; i++) {
            unsigned char c = (unsigned char)name[i];
            if (c < 0x20 || c == 0x7f)
                why = "control character in user name";
            else if (c == ':')
                why = "':' in user name";
        }
        if (!why && ag_utf8_to_utf16le(name, len, scratch, sizeof(scratch), &o) < 0)
            why = "user name is not valid UTF-8";
        if (!why && (bs = memchr(name, '\\', len)) != NULL) {
            if (bs == name)
                why = "empty domain before '\\'";
            else if (bs == name + len - 1)
                why = "empty account after '\\'";
        }
    }
    if (!why)
        return 0;
    if (msg)
        *msg = why;
    return rc;
}

/* Parses one line (n bytes, no LF). Returns 1 for an entry (e filled), 0 for
 * a blank or comment line, AG_EINVAL with *msg set for a malformed one. */
static int parse_line(const char *p, size_t n, struct line_ent *e, const char **msg)
{
    const char *colon, *hex, *bs;
    size_t i, hexlen;

    while (n && (is_blank(p[n - 1]) || p[n - 1] == '\r'))
        n--;
    while (n && is_blank(*p)) {
        p++;
        n--;
    }
    if (n == 0 || *p == '#')
        return 0;

    colon = memchr(p, ':', n);
    if (!colon) {
        *msg = "expected NAME:NTHASH";
        return AG_EINVAL;
    }
    e->name = p;
    e->name_len = (size_t)(colon - p);
    if (ag_userfile_check_name(e->name, e->name_len, msg) < 0)
        return AG_EINVAL;
    bs = memchr(e->name, '\\', e->name_len);
    e->acct_off = bs ? (size_t)(bs - e->name) + 1 : 0;

    hex = colon + 1;
    hexlen = n - e->name_len - 1;
    if (hexlen != 32) {
        *msg = "NT hash must be exactly 32 hex digits";
        return AG_EINVAL;
    }
    for (i = 0; i < 16; i++) {
        int hi = ag_hexval(hex[2 * i]), lo = ag_hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            ag_wipe(e->hash, sizeof(e->hash));
            *msg = "NT hash must be exactly 32 hex digits";
            return AG_EINVAL;
        }
        e->hash[i] = (uint8_t)(hi << 4 | lo);
    }
    return 1;
}

static void fmt_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fmt_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const char *ent_name(const struct ag_userfile *uf, const struct uf_entry *e)
{
    return uf->arena + e->name_off;
}

/* The entry for exactly this NAME key (same account, same domain or both
 * without one), or NULL: used to refuse duplicates. */
static const struct uf_entry *find_same(const struct ag_userfile *uf, const char *dom,
                                        size_t domlen, const char *acct, size_t acctlen)
{
    uint32_t i = uf->buckets[hash_acct(acct, acctlen) & uf->mask];
    for (; i != NO_ENTRY; i = uf->ents[i].next) {
        const struct uf_entry *e = &uf->ents[i];
        const char *nm = ent_name(uf, e);
        size_t edomlen = e->acct_off ? (size_t)e->acct_off - 1 : 0;
        if (ieq(nm + e->acct_off, e->name_len - e->acct_off, acct, acctlen) &&
            ieq(nm, edomlen, dom, domlen))
            return e;
    }
    return NULL;
}

struct ag_userfile *ag_userfile_parse(const char *text, size_t len, const char *name, char *err,
                                      size_t errlen)
{
    struct ag_userfile *uf = NULL;
    size_t maxents = 1, nb = 16, arena_used = 0, off = 0;
    uint32_t lineno = 0;

    fmt_err(err, errlen, "%s", "");
    if (len > AG_USERFILE_MAX_BYTES) {
        fmt_err(err, errlen, "%s: larger than %u bytes", name, (unsigned)AG_USERFILE_MAX_BYTES);
        return NULL;
    }
    /* Every entry line holds a name, ':' and 32 digits (34 bytes at least),
     * so len/34 bounds the entries (a file of empty lines costs nothing) and
     * len+1 bounds the arena of NUL-terminated names. */
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\n')
            maxents++;
    if (maxents > len / 34 + 1)
        maxents = len / 34 + 1;
    while (nb < 2 * maxents && nb < ((size_t)1 << 30))
        nb <<= 1;

    uf = calloc(1, sizeof(*uf));
    if (!uf)
        goto nomem;
    uf->ents = calloc(maxents, sizeof(*uf->ents));
    uf->buckets = malloc(nb * sizeof(*uf->buckets));
    uf->arena = malloc(len + 1);
    if (!uf->ents || !uf->buckets || !uf->arena)
        goto nomem;
    memset(uf->buckets, 0xff, nb * sizeof(*uf->buckets));
    uf->mask = nb - 1;

    while (off < len) {
        const char *line = text + off, *nl = memchr(line, '\n', len - off);
        size_t n = nl ? (size_t)(nl - line) : len - off;
        struct line_ent le;
        const char *msg = NULL;
        int rc;

        off += n + (nl ? 1 : 0);
        lineno++;
        rc = parse_line(line, n, &le, &msg);
        if (rc == 0)
            continue;
        if (rc < 0) {
            fmt_err(err, errlen, "%s:%u: %s", name, (unsigned)lineno, msg);
            goto fail;
        }

        size_t domlen = le.acct_off ? le.acct_off - 1 : 0;
        const char *acct = le.name + le.acct_off;
        size_t acctlen = le.name_len - le.acct_off;
        const struct uf_entry *dup = find_same(uf, le.name, domlen, acct, acctlen);
        if (dup) {
            /* The name passed check_name (UTF-8, no CTL): safe to print. */
            fmt_err(err, errlen, "%s:%u: duplicate user \"%.*s\" (first at line %u)", name,
                    (unsigned)lineno, (int)le.name_len, le.name, (unsigned)dup->line);
            ag_wipe(le.hash, sizeof(le.hash));
            goto fail;
        }

        struct uf_entry *e = &uf->ents[uf->n];
        uint32_t b = hash_acct(acct, acctlen) & (uint32_t)uf->mask;
        memcpy(uf->arena + arena_used, le.name, le.name_len);
        uf->arena[arena_used + le.name_len] = '\0';
        e->name_off = (uint32_t)arena_used;
        e->name_len = (uint16_t)le.name_len;
        e->acct_off = (uint16_t)le.acct_off;
        e->line = lineno;
        memcpy(e->hash, le.hash, sizeof(e->hash));
        ag_wipe(le.hash, sizeof(le.hash));
        e->next = uf->buckets[b];
        uf->buckets[b] = (uint32_t)uf->n;
        uf->n++;
        arena_used += le.name_len + 1;
    }
    return uf;

nomem:
    fmt_err(err, errlen, "%s: out of memory", name);
fail:
    ag_userfile_free(uf);
    return NULL;
}

/* Reads the whole regular file at path into a malloc'd buffer (caller wipes
 * and frees). AG_ENOTFOUND when it does not exist, AG_ELIMIT above the cap,
 * AG_EINVAL when it is not a regular file, AG_EIO with errno otherwise. */
static int read_capped(const char *path, char **bufp, size_t *lenp)
{
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    int fd, rc, saved;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return errno == ENOENT ? AG_ENOTFOUND : AG_EIO;
    if (fstat(fd, &st) < 0) {
        rc = AG_EIO;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = AG_EINVAL;
        goto out;
    }
    if (st.st_size > AG_USERFILE_MAX_BYTES) {
        rc = AG_ELIMIT;
        goto out;
    }
    /* One byte more than the cap: a file that grew since fstat is caught. */
    buf = malloc(AG_USERFILE_MAX_BYTES + 1);
    if (!buf) {
        rc = AG_ENOMEM;
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, buf + len, AG_USERFILE_MAX_BYTES + 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = AG_EIO;
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
        if (len > AG_USERFILE_MAX_BYTES) {
            rc = AG_ELIMIT;
            goto out;
        }
    }
    *bufp = buf;
    *lenp = len;
    buf = NULL;
    rc = 0;
out:
    saved = errno;
    if (buf) {
        ag_wipe(buf, len);
        free(buf);
    }
    close(fd);
    errno = saved;
    return rc;
}

struct ag_userfile *ag_userfile_load(const char *path, char *err, size_t errlen)
{
    struct ag_userfile *uf;
    char *buf = NULL;
    size_t len = 0;
    int rc = read_capped(path, &buf, &len);

    if (rc < 0) {
        if (rc == AG_ELIMIT)
            fmt_err(err, errlen, "%s: larger than %u bytes", path, (unsigned)AG_USERFILE_MAX_BYTES);
        else if (rc == AG_EINVAL)
            fmt_err(err, errlen, "%s: not a regular file", path);
        else if (rc == AG_ENOMEM)
            fmt_err(err, errlen, "%s: out of memory", path);
        else
            fmt_err(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    uf = ag_userfile_parse(buf, len, path, err, errlen);
    ag_wipe(buf, len);
    free(buf);
    return uf;
}

int ag_userfile_lookup(const struct ag_userfile *uf, const char *domain, const char *user,
                       uint8_t nt_hash_out[16], char *canonical_user_out, size_t cap)
{
    const struct uf_entry *any = NULL, *exact = NULL, *e;
    size_t ulen, dlen;

    if (!uf || !user)
        return AG_EINVAL;
    ulen = strlen(user);
    dlen = domain ? strlen(domain) : 0;

    for (uint32_t i = uf->buckets[hash_acct(user, ulen) & uf->mask]; i != NO_ENTRY;
         i = uf->ents[i].next) {
        const struct uf_entry *c = &uf->ents[i];
        const char *nm = ent_name(uf, c);
        if (!ieq(nm + c->acct_off, c->name_len - c->acct_off, user, ulen))
            continue;
        if (c->acct_off == 0)
            any = c;
        else if (dlen && ieq(nm, (size_t)c->acct_off - 1, domain, dlen))
            exact = c;
    }
    e = exact ? exact : any;
    if (!e)
        return AG_ENOTFOUND;
    if (canonical_user_out) {
        if ((size_t)e->name_len + 1 > cap)
            return AG_ELIMIT;
        memcpy(canonical_user_out, ent_name(uf, e), (size_t)e->name_len + 1);
    }
    memcpy(nt_hash_out, e->hash, 16);
    return 0;
}

size_t ag_userfile_count(const struct ag_userfile *uf)
{
    return uf ? uf->n : 0;
}

void ag_userfile_free(struct ag_userfile *uf)
{
    if (!uf)
        return;
    if (uf->ents) {
        ag_wipe(uf->ents, uf->n * sizeof(*uf->ents));
        free(uf->ents);
    }
    free(uf->buckets);
    free(uf->arena);
    free(uf);
}

/* --- atomic update ------------------------------------------------------ */

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return AG_EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes data to a temp file beside path and renames it over path; see
 * ag_userfile_set for the mode and owner rules. old is the stat of the file
 * being replaced, or NULL for a new file. */
static int replace_file(const char *path, const char *data, size_t len, const struct stat *old)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + sizeof(".tmp.XXXXXX"));
    char *dir = malloc(plen + 2);
    mode_t mode = 0600;
    int fd = -1, dfd, rc = AG_EIO, saved;
    char *slash;

    if (!tmp || !dir) {
        free(tmp);
        free(dir);
        return AG_ENOMEM;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", sizeof(".tmp.XXXXXX"));
    memcpy(dir, path, plen + 1);
    slash = strrchr(dir, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';

    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        tmp[0] = '\0';
        goto out;
    }
    if (old) {
        /* Keep the owner and group so a daemon reading the file through its
         * group still can; EPERM (not root) leaves us the owner, harmless. */
        if (fchown(fd, old->st_uid, old->st_gid) < 0 && errno != EPERM)
            goto out;
        mode |= old->st_mode & 0040;
    }
    if (fchmod(fd, mode) < 0)
        goto out;
    if ((rc = write_all(fd, data, len)) < 0)
        goto out;
    rc = AG_EIO;
    if (fsync(fd) < 0)
        goto out;
    if (close(fd) < 0) {
        fd = -1;
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) < 0)
        goto out;
    tmp[0] = '\0'; /* renamed: nothing left to unlink */
    /* The rename is durable only once the directory is synced. */
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    rc = 0;
out:
    saved = errno;
    if (fd >= 0)
        close(fd);
    if (tmp[0])
        unlink(tmp);
    free(tmp);
    free(dir);
    errno = saved;
    return rc;
}

static void hex16(const uint8_t h[16], char out[33])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = digits[h[i] >> 4];
        out[2 * i + 1] = digits[h[i] & 15];
    }
    out[32] = '\0';
}

/* Appends n bytes to a buffer sized in advance (see ag_userfile_set). */
static void put(char *dst, size_t *len, const char *p, size_t n)
{
    memcpy(dst + *len, p, n);
    *len += n;
}

int ag_userfile_set(const char *path, const char *user, const char *password)
{
    struct ag_userfile *check = NULL;
    struct stat st;
    char *old = NULL, *out = NULL, hex[33];
    uint8_t hash[16];
    size_t oldlen = 0, outlen = 0, outcap, ulen, off = 0, udomlen, uacctoff;
    const char *bs;
    int rc, have_old, replaced = 0, saved;

    if (!path || !user || !password)
        return AG_EINVAL;
    ulen = strlen(user);
    if ((rc = ag_userfile_check_name(user, ulen, NULL)) < 0)
        return rc;
    if (password[0] == '\0')
        return AG_EINVAL;
    if ((rc = ag_nt_hash(password, strlen(password), hash)) < 0)
        return rc;
    hex16(hash, hex);
    ag_wipe(hash, sizeof(hash));
    bs = memchr(user, '\\', ulen);
    uacctoff = bs ? (size_t)(bs - user) + 1 : 0;
    udomlen = bs ? uacctoff - 1 : 0;

    rc = read_capped(path, &old, &oldlen);
    have_old = rc == 0;
    if (rc < 0 && rc != AG_ENOTFOUND)
        goto out;
    if (have_old && stat(path, &st) < 0) {
        rc = AG_EIO;
        goto out;
    }
    /* Refuse to rewrite a file that would not load: we would carry its
     * defect along and the operator would learn of it only at reload. */
    check = ag_userfile_parse(old ? old : "", oldlen, path, NULL, 0);
    if (!check) {
        rc = AG_EINVAL;
        goto out;
    }

    /* Sized once, never grown: a realloc would leave copies of the hashes
     * in freed memory. Worst case = old file + "\n" + the new line. */
    outcap = oldlen + 1 + ulen + 1 + 32 + 1;
    out = malloc(outcap);
    if (!out) {
        rc = AG_ENOMEM;
        goto out;
    }
    while (off < oldlen) {
        const char *line = old + off, *nl = memchr(line, '\n', oldlen - off);
        size_t n = nl ? (size_t)(nl - line) + 1 : oldlen - off;
        struct line_ent le;
        const char *msg;

        off += n;
        if (!replaced && parse_line(line, nl ? n - 1 : n, &le, &msg) == 1) {
            ag_wipe(le.hash, sizeof(le.hash));
            if (ieq(le.name + le.acct_off, le.name_len - le.acct_off, user + uacctoff,
                    ulen - uacctoff) &&
                ieq(le.name, le.acct_off ? le.acct_off - 1 : 0, user, udomlen)) {
                put(out, &outlen, user, ulen);
                put(out, &outlen, ":", 1);
                put(out, &outlen, hex, 32);
                put(out, &outlen, "\n", 1);
                replaced = 1;
                continue;
            }
        }
        put(out, &outlen, line, n);
    }
    if (!replaced) {
        if (outlen && out[outlen - 1] != '\n')
            put(out, &outlen, "\n", 1);
        put(out, &outlen, user, ulen);
        put(out, &outlen, ":", 1);
        put(out, &outlen, hex, 32);
        put(out, &outlen, "\n", 1);
    }
    if (outlen > AG_USERFILE_MAX_BYTES) {
        rc = AG_ELIMIT;
        goto out;
    }
    rc = replace_file(path, out, outlen, have_old ? &st : NULL);
out:
    saved = errno;
    ag_wipe(hex, sizeof(hex));
    if (old) {
        ag_wipe(old, oldlen);
        free(old);
    }
    if (out) {
        ag_wipe(out, outcap);
        free(out);
    }
    ag_userfile_free(check);
    errno = saved;
    return rc;
}
