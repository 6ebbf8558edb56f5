/* ctl_reply_text.h - for unit tests of status-socket replies: the finished
 * reply (records and status line) as one NUL-terminated string. Include
 * after cmocka.h and ctl/proto.h. */
#ifndef AG_TEST_CTL_REPLY_TEXT_H
#define AG_TEST_CTL_REPLY_TEXT_H

#include <stdlib.h>
#include <string.h>

/* Frees r; the caller frees the string. */
static char *finish(struct ag_ctl_reply *r)
{
    size_t len;
    char *s = ag_ctl_reply_finish(r, &len);
    ag_ctl_reply_free(r);
    assert_non_null(s);
    char *z = malloc(len + 1);
    assert_non_null(z);
    memcpy(z, s, len);
    z[len] = '\0';
    free(s);
    return z;
}

#endif
