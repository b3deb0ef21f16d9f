/*
 * mbedtls-small.h -- mbedTLS 2.28 configuration for the router/NAS boards:
 * exactly what port/tls_mbedtls.c's policy needs (TLS 1.2 server, ECDHE
 * with ECDSA or RSA certificates, AES-GCM and ChaCha20-Poly1305, PEM
 * certificates and keys), nothing else.
 *
 * Memory per TLS session: the output record buffer is 4 KiB instead of
 * 16 KiB (records we send are at most 4 KiB of plaintext; every client
 * takes that). The input buffer stays 16 KiB: a client may send a full
 * record unless it negotiated max_fragment_length, which we accept.
 * Session: about 16 + 4 + ~3 KiB of state = ~23 KiB instead of ~35 KiB.
 */
#ifndef PICO_MBEDTLS_SMALL_H
#define PICO_MBEDTLS_SMALL_H

/* ---- system ---- */
#define MBEDTLS_HAVE_ASM
#define MBEDTLS_HAVE_TIME
#define MBEDTLS_PLATFORM_C
#define MBEDTLS_NO_PLATFORM_ENTROPY      /* the port feeds the DRBG (getrandom) */
#define MBEDTLS_DEPRECATED_REMOVED

/* ---- TLS ---- */
#define MBEDTLS_SSL_TLS_C
#define MBEDTLS_SSL_SRV_C
#define MBEDTLS_SSL_PROTO_TLS1_2
#define MBEDTLS_SSL_MAX_FRAGMENT_LENGTH
#define MBEDTLS_SSL_ENCRYPT_THEN_MAC
#define MBEDTLS_SSL_EXTENDED_MASTER_SECRET
#define MBEDTLS_SSL_SERVER_NAME_INDICATION
#define MBEDTLS_KEY_EXCHANGE_ECDHE_ECDSA_ENABLED
#define MBEDTLS_KEY_EXCHANGE_ECDHE_RSA_ENABLED
#define MBEDTLS_SSL_IN_CONTENT_LEN       16384 /* a full record from any client */
#define MBEDTLS_SSL_OUT_CONTENT_LEN      4096  /* our records: 12 KiB saved per session */

/* ---- certificates and keys ---- */
#define MBEDTLS_X509_USE_C
#define MBEDTLS_X509_CRT_PARSE_C
#define MBEDTLS_PK_C
#define MBEDTLS_PK_PARSE_C
#define MBEDTLS_PEM_PARSE_C
#define MBEDTLS_BASE64_C
#define MBEDTLS_ASN1_PARSE_C
#define MBEDTLS_ASN1_WRITE_C
#define MBEDTLS_OID_C
#define MBEDTLS_RSA_C
#define MBEDTLS_PKCS1_V15
#define MBEDTLS_PKCS1_V21
#define MBEDTLS_BIGNUM_C
#define MBEDTLS_ECP_C
#define MBEDTLS_ECDH_C
#define MBEDTLS_ECDSA_C
#define MBEDTLS_ECP_DP_SECP256R1_ENABLED
#define MBEDTLS_ECP_DP_SECP384R1_ENABLED
#define MBEDTLS_ECP_DP_CURVE25519_ENABLED
#define MBEDTLS_ECP_NIST_OPTIM
#define MBEDTLS_ECP_WINDOW_SIZE          4     /* 2 KiB less RAM than 6, ~10% slower */
#define MBEDTLS_ECP_FIXED_POINT_OPTIM    0     /* saves ~9 KiB of RAM tables */
#define MBEDTLS_MPI_MAX_SIZE             512   /* 4096-bit RSA keys */

/* ---- ciphers and hashes ---- */
#define MBEDTLS_CIPHER_C
#define MBEDTLS_AES_C
#define MBEDTLS_AES_ROM_TABLES                 /* tables in flash, not RAM */
#define MBEDTLS_AES_FEWER_TABLES               /* 6 KiB less */
#define MBEDTLS_GCM_C
#define MBEDTLS_CHACHA20_C
#define MBEDTLS_POLY1305_C
#define MBEDTLS_CHACHAPOLY_C
#define MBEDTLS_MD_C
#define MBEDTLS_SHA1_C                         /* X.509 signatures of older CAs */
#define MBEDTLS_SHA256_C
#define MBEDTLS_SHA512_C                       /* SHA-384 suites */
#define MBEDTLS_CTR_DRBG_C
#define MBEDTLS_ERROR_C                        /* readable errors in the log */

#include "mbedtls/check_config.h"

#endif
