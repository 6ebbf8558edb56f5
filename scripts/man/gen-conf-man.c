/* gen-conf-man.c - writes authgate.conf(5) from its template at build time.
 *
 * gen-conf-man TEMPLATE OUTPUT
 *
 * Copies TEMPLATE to OUTPUT, replacing @VERSION@ with the version and the
 * line ".\" @OPTIONS@" with the option reference that ag_config_write_man()
 * draws from the option table in src/config/config.c: the page lists
 * exactly the options the daemon parses, with their real defaults, bounds
 * and reload behaviour. */
#include <stdio.h>
#include <string.h>

#include "config/config.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: gen-conf-man TEMPLATE OUTPUT\n");
        return 2;
    }
    FILE *in = fopen(argv[1], "r");
    FILE *out = in ? fopen(argv[2], "w") : NULL;
    if (!in || !out) {
        perror(in ? argv[2] : argv[1]);
        return 1;
    }
    char line[4096];
    int options = 0;
    while (fgets(line, sizeof line, in)) {
        if (strcmp(line, ".\\\" @OPTIONS@\n") == 0) {
            ag_config_write_man(out);
            options++;
            continue;
        }
        for (char *p = line, *v; *p; p = v + strlen("@VERSION@")) {
            v = strstr(p, "@VERSION@");
            if (!v) {
                fputs(p, out);
                break;
            }
            fwrite(p, 1, (size_t)(v - p), out);
            fputs(AG_VERSION, out);
        }
    }
    int bad = ferror(in) || options != 1;
    fclose(in);
    if (fclose(out) != 0 || bad) {
        fprintf(stderr, "gen-conf-man: %s: %s\n", argv[1],
                options != 1 ? "needs exactly one '.\\\" @OPTIONS@' line" : "read error");
        remove(argv[2]);
        return 1;
    }
    return 0;
}
