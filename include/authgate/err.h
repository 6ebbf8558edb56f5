/* err.h - the project's error codes.
 *
 * Every fallible function returns 0 or a negative AG_E* code; out-parameters
 * are written only on success. libuv's own negative codes never cross into
 * this space: callers translate them at the boundary. Any thread.
 */
#ifndef AUTHGATE_ERR_H
#define AUTHGATE_ERR_H

enum ag_err {
    AG_OK = 0,
    AG_ENOMEM = -1,    /* allocation failed */
    AG_ELIMIT = -2,    /* a configured or built-in ceiling was hit */
    AG_EINVAL = -3,    /* malformed input (from the network or a file) */
    AG_EIO = -4,       /* a system call failed */
    AG_ENOTFOUND = -5, /* lookup found nothing */
    AG_EAUTH = -6,     /* credentials were checked and are wrong */
    AG_EBACKEND = -7,  /* a verifier backend is unavailable: fail closed */
    AG_EUNSUPP = -8,   /* well-formed but refused by policy */
    AG_EAGAIN = -9,    /* a busy cap: try later (503) */
};

/* Returns a static string for code; never NULL. */
const char *ag_strerror(int code);

#endif
