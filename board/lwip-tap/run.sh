#!/bin/sh
# run.sh -- picoimapd on lwIP in a network namespace of its own.
#
#   sh board/lwip-tap/run.sh up   [-n NS] [-d DIR] [-b BINARY]
#   sh board/lwip-tap/run.sh down [-n NS] [-d DIR]
#   sh board/lwip-tap/run.sh exec [-n NS] COMMAND...   (run a client in NS)
#
# up: creates namespace NS (default pimap-lwip), a persistent TAP device in
# it (pimap0, 10.213.7.1/24 on the Linux side), writes a config, store and
# users file under DIR (default build-lwip/run) unless DIR already has a
# picoimapd.conf, and starts BINARY (default build-lwip/picoimapd-lwip)
# inside NS on that TAP with lwIP's own address 10.213.7.2. It returns once
# the server answers on 10.213.7.2:143 and leaves it running (pid in
# DIR/server.pid, log in DIR/server.log); IMAPS is on port 993 when the
# binary has TLS. Clients reach it with `ip netns exec NS ...`.
# down: stops the server and deletes the namespace with everything in it.
#
# Every address lives inside NS only; nothing is routed to or from the
# host's own network. Needs root and /dev/net/tun.
set -eu

cmd=${1:-}
[ $# -gt 0 ] && shift
ns=pimap-lwip
dir=build-lwip/run
bin=build-lwip/picoimapd-lwip
while [ $# -gt 0 ]; do
    case "$1" in
        -n) ns=$2; shift 2 ;;
        -d) dir=$2; shift 2 ;;
        -b) bin=$2; shift 2 ;;
        *) break ;;
    esac
done
tap=pimap0
host_ip=10.213.7.1
lwip_ip=10.213.7.2

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "run.sh: needs root (network namespaces, TAP devices)" >&2
        exit 1
    fi
    if [ ! -c /dev/net/tun ]; then
        echo "run.sh: no /dev/net/tun" >&2
        exit 1
    fi
}

write_config() {
    mkdir -p "$dir"
    [ -e "$dir/picoimapd.conf" ] && return
    cat > "$dir/picoimapd.conf" <<CONF
# picoimapd on lwIP (board/lwip-tap/run.sh). Clients come from $host_ip,
# not loopback, so plaintext login is allowed explicitly for the tests.
listen = 0.0.0.0:143
store = mail
passwd = passwd
log = stderr
log_level = info
allow_plaintext = yes
allow_root = yes
CONF
    if command -v openssl >/dev/null 2>&1 && strings "$bin" 2>/dev/null | grep -q mbedtls; then
        (umask 077; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -keyout "$dir/tls-key.pem" -out "$dir/tls-cert.pem" -days 825 \
            -subj /CN=picoimapd-lwip -addext subjectAltName=IP:$lwip_ip 2>/dev/null)
        printf 'listen_tls = 0.0.0.0:993\ntls_cert = tls-cert.pem\ntls_key = tls-key.pem\n' \
            >> "$dir/picoimapd.conf"
    fi
    (umask 077; printf 'demo:{PLAIN}demo\nalice:{PLAIN}alicepw\n' > "$dir/passwd")
}

wait_port() {
    i=0
    while [ $i -lt 100 ]; do
        if ip netns exec "$ns" /usr/bin/python3 -c "
import socket,sys
s=socket.create_connection(('$lwip_ip',143),timeout=1)
sys.exit(0 if s.recv(100).startswith(b'* OK') else 1)" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$(cat "$dir/server.pid")" 2>/dev/null; then
            echo "run.sh: server exited; log:" >&2
            cat "$dir/server.log" >&2
            return 1
        fi
        sleep 0.1
        i=$((i + 1))
    done
    echo "run.sh: server does not answer on $lwip_ip:143" >&2
    return 1
}

down() {
    if [ -f "$dir/server.pid" ]; then
        pid=$(cat "$dir/server.pid")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            i=0
            while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
                sleep 0.1
                i=$((i + 1))
            done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$dir/server.pid"
    fi
    if ip netns list | grep -qw "^$ns"; then
        ip netns del "$ns"
    fi
}

case "$cmd" in
up)
    need_root
    [ -x "$bin" ] || { echo "run.sh: no $bin (make lwip)" >&2; exit 1; }
    down
    write_config
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$ns" tuntap add dev $tap mode tap
    ip -n "$ns" addr add $host_ip/24 dev $tap
    ip -n "$ns" link set $tap up
    abs_bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
    PICOIMAPD_LWIP_IF=$tap PICOIMAPD_LWIP_ADDR=$lwip_ip/24 \
        ip netns exec "$ns" "$abs_bin" -c "$dir/picoimapd.conf" \
        > "$dir/server.log" 2>&1 &
    echo $! > "$dir/server.pid"
    if ! wait_port; then
        down
        exit 1
    fi
    echo "run.sh: picoimapd on lwIP at $lwip_ip:143 in namespace $ns (pid $(cat "$dir/server.pid"))"
    ;;
down)
    need_root
    down
    ;;
exec)
    exec ip netns exec "$ns" "$@"
    ;;
*)
    sed -n '2,20p' "$0" >&2
    exit 2
    ;;
esac
