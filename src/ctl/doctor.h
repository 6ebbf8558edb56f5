/* doctor.h - the checks of `authgate doctor` (private to src/ctl).
 *
 * Glossary: check = one named diagnosis printed as "OK|WARN|FAIL|INFO
 * name: what was found -- what to do"; bounded check = one that does network
 * I/O, run in a child process with a deadline (doctor.c, run_bounded).
 * Foreground program, one thread: blocking calls are fine here.
 */
#ifndef AG_CTL_DOCTOR_H
#define AG_CTL_DOCTOR_H

#include <stdio.h>

#include "config/config.h"

struct doc {
    FILE *out;
    int fails, warns;
};

/* One line: verdict "OK", "WARN", "FAIL" (counted) or "INFO". */
void doctor_line(struct doc *d, const char *verdict, const char *check, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The Kerberos checks (doctor_krb.c): the KDC of the keytab's realm answers,
 * the clock agrees with it, the SPN HTTP/host exists and the keytab holds its
 * current key (a ticket from the KDC decrypts with the keytab). Network I/O:
 * run bounded. */
void doctor_kerberos(struct doc *d, const struct ag_config *cfg, const char *host);

#endif
