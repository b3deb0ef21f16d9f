/* main.c -- command line of the picoimapd binary on POSIX hosts. */
#include "imap.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(void)
{
    fprintf(stderr,
            "usage: picoimapd [-c CONFIG]      run the server in the foreground\n"
            "       picoimapd -V               print the version\n"
            "       picoimapd passwd [-s SCRAM-SHA-256|SHA512-CRYPT] [USER]\n"
            "                                  print a passwd-file line\n"
            "       picoimapd deliver|import|export|check ...\n"
            "                                  store tools (run one for its usage)\n");
    exit(2);
}

int posix_passwd_main(int argc, char **argv);   /* passwd_cmd.c */
int posix_store_main(int argc, char **argv);    /* store_cmd.c */

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "passwd") == 0) {
        return posix_passwd_main(argc - 1, argv + 1);
    }
    if (argc >= 2 && (strcmp(argv[1], "deliver") == 0 || strcmp(argv[1], "import") == 0 ||
                      strcmp(argv[1], "export") == 0 || strcmp(argv[1], "check") == 0)) {
        return posix_store_main(argc - 1, argv + 1);
    }
    const char *conf = "/etc/picoimapd.conf";
    int opt;
    while ((opt = getopt(argc, argv, "c:Vh")) != -1) {
        switch (opt) {
        case 'c':
            conf = optarg;
            break;
        case 'V':
            printf("picoimapd 0.1\n");
            return 0;
        default:
            usage();
        }
    }
    port_log_setup("stderr", LOG_INFO_);
    char *text = NULL;
    size_t len = 0;
    int rc = st_slurp(st_vfs_posix(), conf, &text, &len, 1 << 20);
    if (rc < 0) {
        port_fatal("cannot read config %s: %s", conf, rc == ST_ENOENT ? "no such file" : st_strerror(rc));
    }
    char *dup = xstrdup(conf);
    char err[256];
    imap_cfg cfg;
    if (cfg_parse(&cfg, text, dirname(dup), err, sizeof err) < 0) {
        port_fatal("%s: %s", conf, err);
    }
    free(dup);
    free(text);
    port_log_setup(cfg.log, cfg.log_level);
    rc = imap_server_run(&cfg);
    cfg_free(&cfg);
    return rc;
}
