/*
 * tls_mbedtls.c -- port/tls.h over mbedTLS 2.28, non-blocking.
 *
 * mbedTLS never touches a socket here: its bio callbacks call port_read()
 * and port_write(), and "would block" comes back as WANT_READ/WANT_WRITE,
 * which the core maps onto poll events. That keeps this file usable over
 * any network port (BSD sockets today, lwIP raw later).
 *
 * Policy (fixed here, not configurable, because every client we care
 * about speaks it): TLS 1.2 only, ECDHE key exchange (forward secrecy)
 * with AEAD ciphers (AES-GCM, ChaCha20-Poly1305). No renegotiation, no
 * session cache (resumption would cost memory per past client).
 *
 * The server configuration (certificate, key, mbedtls_ssl_config) is
 * reference-counted: SIGHUP builds a new one, new sessions take it, and
 * sessions already running keep the one they started with until they end.
 */
#include "tls.h"

#if CONFIG_TLS

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/version.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#if MBEDTLS_VERSION_MAJOR != 2
#error "port/tls_mbedtls.c is written for mbedTLS 2.x (2.28 LTS)"
#endif

/* Largest certificate chain or key file we read. A chain of four 4096-bit
 * RSA certificates in PEM is about 8 KiB; 256 KiB catches a wrong path
 * (a log file, a device) without limiting any real chain. */
#define TLS_FILE_MAX (256 * 1024)

/* One loaded server configuration; shared by every session started while
 * it was current. */
typedef struct tls_conf {
    mbedtls_ssl_config conf;   /* what mbedtls_ssl_setup() points sessions at */
    mbedtls_x509_crt   chain;  /* our certificate first, then intermediates */
    mbedtls_pk_context key;    /* private key matching chain's first cert */
    unsigned           refs;   /* sessions using it, +1 while current */
} tls_conf;

struct port_tls {
    mbedtls_ssl_context ssl;   /* the session; holds the record buffers */
    port_conn          *pc;    /* the byte stream under it */
    tls_conf           *conf;  /* configuration it started with (ref held) */
    size_t              wpend; /* bytes in a record mbedTLS could not send yet */
};

static tls_conf *cur;                    /* configuration for new sessions */
static mbedtls_ctr_drbg_context drbg;    /* one RNG for all sessions (one thread) */
static int drbg_ready;                   /* drbg seeded */
static char *cert_path, *key_path;       /* remembered for port_tls_reload */
static volatile sig_atomic_t hup_flag;   /* SIGHUP seen, not yet reported */

/* Forward-secret AEAD suites only, strongest first; the server's order
 * wins (mbedTLS picks by server preference). */
static const int suites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    0,
};

static void on_hup(int sig)
{
    (void)sig;
    hup_flag = 1;
}

int port_tls_hup_requested(void)
{
    if (!hup_flag) {
        return 0;
    }
    hup_flag = 0;
    return 1;
}

/* The DRBG's entropy source: the port's getrandom wrapper. */
static int entropy(void *ctx, unsigned char *buf, size_t n)
{
    (void)ctx;
    port_random(buf, n);
    return 0;
}

static void tls_errstr(int ret, char *buf, size_t n)
{
    mbedtls_strerror(ret, buf, n);
}

/* Read a whole file and NUL-terminate it (mbedTLS wants the NUL counted in
 * the length for PEM). Errors name the file and say what went wrong. */
static unsigned char *read_file(const char *what, const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return NULL;
    }
    unsigned char *buf = malloc(TLS_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        snprintf(err, errlen, "%s %s: out of memory", what, path);
        return NULL;
    }
    size_t n = fread(buf, 1, TLS_FILE_MAX + 1, f);
    int bad = ferror(f);
    int e = errno;
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(e));
    } else if (n > TLS_FILE_MAX) {
        snprintf(err, errlen, "%s %s: larger than %d bytes; not a PEM file?", what, path, TLS_FILE_MAX);
    } else if (n == 0) {
        snprintf(err, errlen, "%s %s: file is empty", what, path);
    } else {
        buf[n] = 0;
        *len = n + 1;
        return buf;
    }
    mbedtls_platform_zeroize(buf, n > TLS_FILE_MAX ? TLS_FILE_MAX + 1 : n);
    free(buf);
    return NULL;
}

static void conf_unref(tls_conf *tc)
{
    if (tc && --tc->refs == 0) {
        mbedtls_ssl_config_free(&tc->conf);
        mbedtls_x509_crt_free(&tc->chain);
        mbedtls_pk_free(&tc->key);
        free(tc);
    }
}

/* Build a configuration from the two files; NULL and err on failure. */
static tls_conf *conf_load(const char *cert, const char *key, char *err, size_t errlen)
{
    char es[128];
    size_t len = 0;
    tls_conf *tc = calloc(1, sizeof *tc);
    if (!tc) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    tc->refs = 1;
    mbedtls_ssl_config_init(&tc->conf);
    mbedtls_x509_crt_init(&tc->chain);
    mbedtls_pk_init(&tc->key);

    unsigned char *buf = read_file("tls_cert", cert, &len, err, errlen);
    if (!buf) {
        goto fail;
    }
    int ret = mbedtls_x509_crt_parse(&tc->chain, buf, len);
    free(buf);
    if (ret != 0) {
        /* >0: some certificates in the chain did not parse; refuse, so a
         * half-broken chain is found at start-up, not by a phone later. */
        if (ret > 0) {
            snprintf(err, errlen, "tls_cert %s: %d certificate(s) in it could not be parsed", cert, ret);
        } else {
            tls_errstr(ret, es, sizeof es);
            snprintf(err, errlen, "tls_cert %s: not a valid PEM certificate: %s", cert, es);
        }
        goto fail;
    }
    buf = read_file("tls_key", key, &len, err, errlen);
    if (!buf) {
        goto fail;
    }
    ret = mbedtls_pk_parse_key(&tc->key, buf, len, NULL, 0);
    mbedtls_platform_zeroize(buf, len);
    free(buf);
    if (ret != 0) {
        if (ret == MBEDTLS_ERR_PK_PASSWORD_REQUIRED) {
            snprintf(err, errlen, "tls_key %s: the key is encrypted; store it without a passphrase", key);
        } else {
            tls_errstr(ret, es, sizeof es);
            snprintf(err, errlen, "tls_key %s: not a valid PEM private key: %s", key, es);
        }
        goto fail;
    }
    if (!mbedtls_pk_can_do(&tc->key, MBEDTLS_PK_RSA) && !mbedtls_pk_can_do(&tc->key, MBEDTLS_PK_ECKEY)) {
        snprintf(err, errlen, "tls_key %s: only RSA and ECDSA keys are supported", key);
        goto fail;
    }
    ret = mbedtls_pk_check_pair(&tc->chain.pk, &tc->key);
    if (ret != 0) {
        snprintf(err, errlen, "tls_key %s does not match the certificate in tls_cert %s", key, cert);
        goto fail;
    }
    ret = mbedtls_ssl_config_defaults(&tc->conf, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                      MBEDTLS_SSL_PRESET_DEFAULT);
    if (ret != 0) {
        tls_errstr(ret, es, sizeof es);
        snprintf(err, errlen, "TLS configuration: %s", es);
        goto fail;
    }
    mbedtls_ssl_conf_rng(&tc->conf, mbedtls_ctr_drbg_random, &drbg);
    mbedtls_ssl_conf_min_version(&tc->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(&tc->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_ciphersuites(&tc->conf, suites);
#if defined(MBEDTLS_SSL_RENEGOTIATION)
    mbedtls_ssl_conf_renegotiation(&tc->conf, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
#endif
    ret = mbedtls_ssl_conf_own_cert(&tc->conf, &tc->chain, &tc->key);
    if (ret != 0) {
        tls_errstr(ret, es, sizeof es);
        snprintf(err, errlen, "tls_cert %s: %s", cert, es);
        goto fail;
    }
    return tc;
fail:
    conf_unref(tc);
    return NULL;
}

int port_tls_setup(const char *cert, const char *key, char *err, size_t errlen)
{
    if (!cert || !key) {
        snprintf(err, errlen, "TLS needs both tls_cert and tls_key");
        return -1;
    }
    if (!drbg_ready) {
        mbedtls_ctr_drbg_init(&drbg);
        static const char pers[] = "picoimapd";
        int ret = mbedtls_ctr_drbg_seed(&drbg, entropy, NULL, (const unsigned char *)pers, sizeof pers - 1);
        if (ret != 0) {
            snprintf(err, errlen, "cannot seed the TLS random generator");
            return -1;
        }
        drbg_ready = 1;
        /* No SA_RESTART: the signal must interrupt poll() so the loop
         * notices it at once. */
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_hup;
        sigaction(SIGHUP, &sa, NULL);
    }
    tls_conf *tc = conf_load(cert, key, err, errlen);
    if (!tc) {
        return -1;
    }
    if (cert != cert_path) {
        char *c2 = strdup(cert), *k2 = strdup(key);
        if (!c2 || !k2) {
            free(c2);
            free(k2);
            conf_unref(tc);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        free(cert_path);
        free(key_path);
        cert_path = c2;
        key_path = k2;
    }
    conf_unref(cur);
    cur = tc;
    return 0;
}

int port_tls_reload(char *err, size_t errlen)
{
    if (!cert_path) {
        snprintf(err, errlen, "TLS is not configured");
        return -1;
    }
    return port_tls_setup(cert_path, key_path, err, errlen);
}

void port_tls_shutdown(void)
{
    conf_unref(cur);
    cur = NULL;
    if (drbg_ready) {
        mbedtls_ctr_drbg_free(&drbg);
        drbg_ready = 0;
    }
    free(cert_path);
    free(key_path);
    cert_path = key_path = NULL;
}

/* ---- the byte stream under mbedTLS ---- */

static int bio_send(void *ctx, const unsigned char *buf, size_t n)
{
    port_tls *t = ctx;
    long w = port_write(t->pc, buf, n);
    if (w < 0) {
        return MBEDTLS_ERR_NET_CONN_RESET;
    }
    return w == 0 ? MBEDTLS_ERR_SSL_WANT_WRITE : (int)w;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t n)
{
    port_tls *t = ctx;
    long r = port_read(t->pc, buf, n);
    if (r < 0) {
        return MBEDTLS_ERR_NET_CONN_RESET;
    }
    return r == 0 ? MBEDTLS_ERR_SSL_WANT_READ : (int)r;
}

port_tls *port_tls_new(port_conn *pc)
{
    if (!cur) {
        return NULL;
    }
    port_tls *t = calloc(1, sizeof *t);
    if (!t) {
        return NULL;
    }
    t->pc = pc;
    mbedtls_ssl_init(&t->ssl);
    /* mbedtls_ssl_setup allocates the record buffers; this is where the
     * per-connection TLS memory comes from. */
    if (mbedtls_ssl_setup(&t->ssl, &cur->conf) != 0) {
        mbedtls_ssl_free(&t->ssl);
        free(t);
        return NULL;
    }
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
    t->conf = cur;
    cur->refs++;
    return t;
}

int port_tls_handshake(port_tls *t, int *want)
{
    int ret = mbedtls_ssl_handshake(&t->ssl);
    if (ret == 0) {
        log_debug("TLS: %s with %s", mbedtls_ssl_get_version(&t->ssl), mbedtls_ssl_get_ciphersuite(&t->ssl));
        return PORT_TLS_DONE;
    }
    if (ret == MBEDTLS_ERR_SSL_WANT_READ) {
        *want = PORT_EV_READ;
        return PORT_TLS_AGAIN;
    }
    if (ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
        *want = PORT_EV_WRITE;
        return PORT_TLS_AGAIN;
    }
    char es[128];
    tls_errstr(ret, es, sizeof es);
    log_debug("TLS handshake failed: %s", es);
    return PORT_TLS_FAILED;
}

long port_tls_read(port_tls *t, void *buf, size_t n)
{
    int ret = mbedtls_ssl_read(&t->ssl, buf, n);
    if (ret > 0) {
        return ret;
    }
    if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
        return 0;
    }
    /* 0, PEER_CLOSE_NOTIFY, CONN_RESET or a bad record: the stream is
     * over. A close_notify from the peer is honoured by closing. */
    return -1;
}

long port_tls_write(port_tls *t, const void *buf, size_t n)
{
    if (n == 0) {
        return 0;
    }
    /* After WANT_WRITE, mbedTLS holds an encrypted record of exactly the
     * bytes it was given and, once that is sent, reports success for
     * whatever length the retry passes. The core's queue may have grown
     * meanwhile, so retry with the original length, or bytes would be
     * acknowledged that were never encrypted. */
    size_t len = n;
    int maxp = mbedtls_ssl_get_max_out_record_payload(&t->ssl);
    if (maxp > 0 && len > (size_t)maxp) {
        len = (size_t)maxp;
    }
    if (t->wpend) {
        if (n < t->wpend) {
            return -1;   /* caller broke the contract: fail, never corrupt */
        }
        len = t->wpend;
    }
    int ret = mbedtls_ssl_write(&t->ssl, buf, len);
    if (ret > 0) {
        t->wpend = 0;
        return ret;
    }
    if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
        t->wpend = len;
        return 0;
    }
    return -1;
}

int port_tls_pending(const port_tls *t)
{
    return mbedtls_ssl_get_bytes_avail(&t->ssl) > 0 || mbedtls_ssl_check_pending(&t->ssl);
}

void port_tls_close(port_tls *t)
{
    if (!t) {
        return;
    }
    /* One try: a peer that does not read does not get to delay us. */
    if (t->ssl.state == MBEDTLS_SSL_HANDSHAKE_OVER) {
        (void)mbedtls_ssl_close_notify(&t->ssl);
    }
    mbedtls_ssl_free(&t->ssl);
    conf_unref(t->conf);
    free(t);
}

#endif /* CONFIG_TLS */
