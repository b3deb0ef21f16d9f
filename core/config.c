/* config.c -- the runtime config file: "key = value" lines. */
#include "imap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *path_join(const char *base, const char *v)
{
    if (v[0] == '/' || !base || !base[0] || strcmp(base, ".") == 0) {
        return xstrdup(v);
    }
    dbuf b = {0};
    dbuf_printf(&b, "%s/%s", base, v);
    return b.p;
}

static int yesno(const char *v)
{
    return ascii_casecmp(v, "yes") == 0 || ascii_casecmp(v, "true") == 0 || strcmp(v, "1") == 0 ||
           ascii_casecmp(v, "on") == 0;
}

int cfg_parse(imap_cfg *cfg, const char *text, const char *basedir, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->log_level = LOG_INFO_;
    cfg->allow_plaintext = CONFIG_ALLOW_PLAINTEXT_DEFAULT;
    cfg->plaintext_loopback = 1;
    cfg->tls_handshake_timeout = CONFIG_TLS_HANDSHAKE_TIMEOUT;
    cfg->compact_permille = 300;
    cfg->special_folders = 1;
    /* owner and group may connect: with lmtp_group = postfix that is the
     * MTA and nobody else (connecting needs write permission) */
    cfg->lmtp_mode = 0660;
    int lineno = 0;
    const char *p = text;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char line[1024];
        lineno++;
        if (n >= sizeof line) {
            snprintf(err, errlen, "line %d too long", lineno);
            return -1;
        }
        memcpy(line, p, n);
        line[n] = 0;
        p += n + (e ? 1 : 0);
        char *h = strchr(line, '#');
        if (h) {
            *h = 0;
        }
        char *k = line;
        while (*k == ' ' || *k == '\t') {
            k++;
        }
        if (!*k || *k == '\r') {
            continue;
        }
        char *eq = strchr(k, '=');
        if (!eq) {
            snprintf(err, errlen, "line %d: expected key = value", lineno);
            return -1;
        }
        char *ke = eq;
        while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t')) {
            ke--;
        }
        *ke = 0;
        char *v = eq + 1;
        while (*v == ' ' || *v == '\t') {
            v++;
        }
        char *ve = v + strlen(v);
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '\r')) {
            *--ve = 0;
        }
        if (strcmp(k, "listen") == 0) {
            if (cfg->nlisten >= sizeof cfg->listen / sizeof cfg->listen[0]) {
                snprintf(err, errlen, "line %d: too many listen lines", lineno);
                return -1;
            }
            cfg->listen[cfg->nlisten++] = xstrdup(v);
        } else if (strcmp(k, "store") == 0) {
            free(cfg->store);
            cfg->store = path_join(basedir, v);
        } else if (strcmp(k, "passwd") == 0) {
            free(cfg->passwd);
            cfg->passwd = path_join(basedir, v);
        } else if (strcmp(k, "log") == 0) {
            if (strcmp(v, "stderr") != 0 && strcmp(v, "syslog") != 0) {
                snprintf(err, errlen, "line %d: log is stderr or syslog", lineno);
                return -1;
            }
            free(cfg->log);
            cfg->log = xstrdup(v);
        } else if (strcmp(k, "log_level") == 0) {
            static const char *const lv[] = {"err", "warn", "info", "debug", "trace"};
            int found = -1;
            for (int i = 0; i < 5; i++) {
                if (strcmp(v, lv[i]) == 0) {
                    found = i;
                }
            }
            if (found < 0) {
                snprintf(err, errlen, "line %d: log_level is err, warn, info, debug or trace", lineno);
                return -1;
            }
            cfg->log_level = found;
        } else if (strcmp(k, "allow_plaintext") == 0) {
            cfg->allow_plaintext = yesno(v);
        } else if (strcmp(k, "plaintext_loopback") == 0) {
            cfg->plaintext_loopback = yesno(v);
        } else if (strcmp(k, "listen_tls") == 0) {
            if (cfg->nlisten_tls >= sizeof cfg->listen_tls / sizeof cfg->listen_tls[0]) {
                snprintf(err, errlen, "line %d: too many listen_tls lines", lineno);
                return -1;
            }
            cfg->listen_tls[cfg->nlisten_tls++] = xstrdup(v);
        } else if (strcmp(k, "tls_cert") == 0 || strcmp(k, "tls_key") == 0) {
            char **dst = k[4] == 'c' ? &cfg->tls_cert : &cfg->tls_key;
            free(*dst);
            *dst = path_join(basedir, v);
        } else if (strcmp(k, "tls_handshake_timeout") == 0) {
            uint32_t t;
            if (parse_u32(v, strlen(v), &t) < 0 || t < 1 || t > 600) {
                snprintf(err, errlen, "line %d: tls_handshake_timeout is 1 to 600 seconds", lineno);
                return -1;
            }
            cfg->tls_handshake_timeout = t;
        } else if (strcmp(k, "user") == 0) {
            free(cfg->user);
            cfg->user = xstrdup(v);
        } else if (strcmp(k, "chroot") == 0) {
            free(cfg->chroot);
            cfg->chroot = path_join(basedir, v);
        } else if (strcmp(k, "allow_root") == 0) {
            cfg->allow_root = yesno(v);
        } else if (strcmp(k, "special_folders") == 0) {
            cfg->special_folders = yesno(v);
        } else if (strcmp(k, "lmtp") == 0) {
            if (cfg->nlmtp >= sizeof cfg->lmtp / sizeof cfg->lmtp[0]) {
                snprintf(err, errlen, "line %d: too many lmtp lines", lineno);
                return -1;
            }
            if (strncmp(v, "unix:", 5) == 0) {
                /* a relative socket path is relative to the config file too */
                char *path = path_join(basedir, v + 5);
                dbuf b = {0};
                dbuf_printf(&b, "unix:%s", path);
                free(path);
                cfg->lmtp[cfg->nlmtp++] = b.p;
            } else {
                cfg->lmtp[cfg->nlmtp++] = xstrdup(v);
            }
        } else if (strcmp(k, "lmtp_mode") == 0) {
            /* octal, as chmod takes it: 0660, 660, 0666 */
            unsigned m = 0;
            const char *q = v;
            while (*q >= '0' && *q <= '7' && m <= 07777) {
                m = m * 8 + (unsigned)(*q++ - '0');
            }
            if (q == v || *q || m > 07777) {
                snprintf(err, errlen, "line %d: lmtp_mode: expected octal permission bits (0660)", lineno);
                return -1;
            }
            cfg->lmtp_mode = m;
        } else if (strcmp(k, "lmtp_group") == 0) {
            free(cfg->lmtp_group);
            cfg->lmtp_group = xstrdup(v);
        } else if (strcmp(k, "quota") == 0) {
            /* bytes, or with a K/M/G suffix (powers of 1024) */
            size_t vl = strlen(v), sh = 0;
            char u = vl ? (char)ascii_upper((unsigned char)v[vl - 1]) : 0;
            if (u == 'K' || u == 'M' || u == 'G') {
                sh = u == 'K' ? 10 : u == 'M' ? 20 : 30;
                vl--;
            }
            uint64_t q;
            if (parse_u64(v, vl, &q) < 0 || q > (UINT64_MAX >> sh)) {
                snprintf(err, errlen, "line %d: quota: expected bytes, or a number and K, M or G", lineno);
                return -1;
            }
            cfg->quota = q << sh;
        } else if (strcmp(k, "compact_ratio") == 0) {
            /* a fraction with up to three decimals: 0.3, 0.25, 1 */
            unsigned pm = 0, scale = 1000;
            const char *q = v;
            while (*q >= '0' && *q <= '9') {
                pm = pm * 10 + (unsigned)(*q++ - '0') * 1000;
                if (pm > 1000) {
                    break;
                }
            }
            if (*q == '.') {
                for (q++; *q >= '0' && *q <= '9' && scale > 1; q++) {
                    scale /= 10;
                    pm += (unsigned)(*q - '0') * scale;
                }
            }
            if (q == v || *q || pm > 1000) {
                snprintf(err, errlen, "line %d: compact_ratio: expected a fraction from 0 to 1", lineno);
                return -1;
            }
            cfg->compact_permille = pm;
        } else {
            snprintf(err, errlen, "line %d: unknown key '%s'", lineno, k);
            return -1;
        }
    }
    if (!cfg->nlisten) {
        cfg->listen[cfg->nlisten++] = xstrdup("127.0.0.1:143");
    }
    if (!cfg->store) {
        snprintf(err, errlen, "no store = ... line");
        return -1;
    }
    if (!cfg->passwd) {
        snprintf(err, errlen, "no passwd = ... line");
        return -1;
    }
    if (!cfg->log) {
        cfg->log = xstrdup("stderr");
    }
    if ((cfg->nlisten_tls || cfg->tls_cert || cfg->tls_key) && !CONFIG_TLS) {
        snprintf(err, errlen, "TLS settings given but this build has no TLS (CONFIG_TLS)");
        return -1;
    }
    if (cfg->nlisten_tls && (!cfg->tls_cert || !cfg->tls_key)) {
        snprintf(err, errlen, "listen_tls needs tls_cert = ... and tls_key = ...");
        return -1;
    }
    if ((cfg->user || cfg->chroot) && !CONFIG_PRIV_DROP) {
        /* Never run as root when the operator asked us not to. */
        snprintf(err, errlen, "user/chroot given but this build cannot drop privileges (CONFIG_PRIV_DROP)");
        return -1;
    }
    if (!cfg->tls_cert != !cfg->tls_key) {
        snprintf(err, errlen, "tls_cert and tls_key go together");
        return -1;
    }
    return 0;
}

void cfg_free(imap_cfg *cfg)
{
    for (unsigned i = 0; i < cfg->nlisten; i++) {
        free(cfg->listen[i]);
    }
    free(cfg->store);
    free(cfg->passwd);
    free(cfg->log);
    for (unsigned i = 0; i < cfg->nlisten_tls; i++) {
        free(cfg->listen_tls[i]);
    }
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->user);
    free(cfg->chroot);
    for (unsigned i = 0; i < cfg->nlmtp; i++) {
        free(cfg->lmtp[i]);
    }
    free(cfg->lmtp_group);
    memset(cfg, 0, sizeof *cfg);
}
