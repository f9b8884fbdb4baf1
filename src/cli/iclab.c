/* The iclab command: dispatches to subcommands. */
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        printf("usage: iclab <command> [options]\n");
        return argc < 2 ? 2 : 0;
    }
    fprintf(stderr, "iclab: unknown command '%s' (see iclab --help)\n", argv[1]);
    return 2;
}
