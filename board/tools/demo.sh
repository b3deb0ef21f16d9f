#!/bin/sh
# demo.sh -- write a demo config and users file under ./demo/ for `make run`.
# Never overwrites anything that is already there, so local edits survive.
set -eu

dir=${1:-demo}
mkdir -p "$dir"

# A self-signed certificate for the IMAPS listener (127.0.0.1:1993), made
# once; clients will warn that it is self-signed, which is expected.
tls=no
if grep -qs '^#define CONFIG_TLS 1$' build/config.h && command -v openssl >/dev/null 2>&1; then
    tls=yes
    if [ ! -e "$dir/tls-cert.pem" ] || [ ! -e "$dir/tls-key.pem" ]; then
        (umask 077; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -keyout "$dir/tls-key.pem" -out "$dir/tls-cert.pem" -days 825 \
            -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null)
        echo "demo.sh: wrote a self-signed certificate $dir/tls-cert.pem"
    fi
fi

if [ ! -e "$dir/picoimapd.conf" ]; then
    cat > "$dir/picoimapd.conf" <<'CONF'
# picoimapd demo configuration (written by board/tools/demo.sh).
# Relative paths are relative to this file's folder.
listen = 127.0.0.1:1143
store = mail
passwd = passwd
log = stderr
log_level = info
# Plaintext LOGIN is allowed from loopback only (plaintext_loopback = yes
# is the default); other addresses must use TLS.
allow_plaintext = no
CONF
    if [ "$tls" = yes ]; then
        printf 'listen_tls = 127.0.0.1:1993\ntls_cert = tls-cert.pem\ntls_key = tls-key.pem\n' \
            >> "$dir/picoimapd.conf"
    fi
    if [ "$(id -u)" -eq 0 ]; then
        # The demo keeps its files owned by whoever ran make; a real
        # install sets user = NAME instead.
        echo 'allow_root = yes' >> "$dir/picoimapd.conf"
    fi
    echo "demo.sh: wrote $dir/picoimapd.conf"
fi

if [ ! -e "$dir/passwd" ]; then
    # Dovecot passwd-file format: user:{SCHEME}hash
    umask 077
    echo 'demo:{PLAIN}demo' > "$dir/passwd"
    echo "demo.sh: wrote $dir/passwd (user demo, password demo)"
fi

echo "demo.sh: connect to 127.0.0.1:1143 as demo/demo (Ctrl-C stops the server)"
if [ "$tls" = yes ]; then
    echo "demo.sh: IMAPS on 127.0.0.1:1993 (self-signed certificate $dir/tls-cert.pem)"
fi
