/* passwd.h - "authgate passwd FILE USER": set a user's password in the
 * local user file (userfile.h) from the command line.
 *
 * Reads the password twice from the terminal (/dev/tty, echo off), or once
 * from stdin when stdin is not a terminal (scripts:
 * printf 'pw\n' | authgate passwd FILE USER). Runs in the CLI process only,
 * never in the daemon.
 */
#ifndef AG_AUTH_PASSWD_H
#define AG_AUTH_PASSWD_H

/* argv[0] is the subcommand name ("passwd"), argv[1] FILE, argv[2] USER
 * (borrowed). Messages go to stderr. Exit status: 0 done; 1 failed (empty
 * or mismatched password, unreadable or malformed file, I/O error,
 * interrupted); 2 usage error (wrong arguments, invalid user name). The
 * password is wiped from every buffer. */
int ag_passwd_main(int argc, char **argv);

#endif
