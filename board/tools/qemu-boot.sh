#!/bin/sh
# qemu-boot.sh -- boot a board's picoimapd under qemu-system, with user
# networking that forwards loopback ports of the host to the guest's IMAP
# (143) and IMAPS (993) ports.
#
#   sh board/tools/qemu-boot.sh BOARD start [PORT TLSPORT] boot, wait until IMAP answers
#        (free loopback ports are chosen when none are given; the ones in use
#        are written to build-BOARD/qemu/ports as "PORT TLSPORT")
#   sh board/tools/qemu-boot.sh BOARD stop                 power it off
#   sh board/tools/qemu-boot.sh BOARD image                only build the initramfs
#
# The image: Debian's kernel for the board's architecture and busybox-static
# (both fetched with `apt-get download` into build-deps/, never installed),
# the virtio modules the kernel needs for its NIC (loaded by /init), the
# board's static picoimapd (build-BOARD/picoimapd; built if missing), a
# config, a users file (demo/demo) and a self-signed certificate. The store
# is a tmpfs: every boot starts empty. Files: build-BOARD/qemu/.
set -eu
board=${1:?usage: qemu-boot.sh BOARD start PORT TLSPORT | stop | image}
action=${2:?action}
. "board/$board/qemu.sh"
build=build-$board
q=$build/qemu
mkdir -p "$q"

qemu_bin=${QEMU_CMD%% *}
need_host_tools() {
    missing=""
    command -v "$qemu_bin" >/dev/null 2>&1 || missing="$missing qemu-system-$(echo "$qemu_bin" | sed 's/qemu-system-//; s/aarch64/arm/; s/mipsel/mips/')"
    command -v cpio >/dev/null 2>&1 || missing="$missing cpio"
    command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "qemu-boot.sh: needs:$missing (apt-get install$missing)" >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing ||
        { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing; }
}

# Modules to load, dependencies first, from each .ko's depends= field
# (read from its .modinfo strings, so no depmod/modinfo for the target).
order_modules() {
    /usr/bin/python3 - "$@" <<'PY'
import os, re, sys
moddir, wanted = sys.argv[1], sys.argv[2:]
files = {}
for d, _, fs in os.walk(moddir):
    for f in fs:
        if f.endswith(".ko"):
            files.setdefault(f[:-3].replace("-", "_"), os.path.join(d, f))
order = []
def add(m):
    m = m.replace("-", "_")
    if m in order:
        return
    if m not in files:
        sys.stderr.write("qemu-boot.sh: no module %s (built in?)\n" % m)
        return
    data = open(files[m], "rb").read()
    dep = re.search(rb"depends=([^\0]*)\0", data)
    for d in (dep.group(1).decode().split(",") if dep and dep.group(1) else []):
        add(d)
    order.append(m)
for m in wanted:
    add(m)
print("\n".join(files[m] for m in order))
PY
}

image() {
    need_host_tools
    [ -x "$build/picoimapd" ] || sh board/tools/build-board.sh "$board"
    kpkg=$(sh board/tools/fetch-src.sh dep "$DEB_ARCH" "$KERNEL_META")
    sh board/tools/fetch-src.sh deb "$DEB_ARCH" "$kpkg" busybox-static >&2
    debs=build-deps/deb/$DEB_ARCH
    ex=$q/extract
    if [ ! -d "$ex/boot" ]; then
        rm -rf "$ex"
        mkdir -p "$ex"
        dpkg-deb -x "$(ls "$debs/${kpkg}"_*.deb | head -n 1)" "$ex"
        dpkg-deb -x "$(ls "$debs"/busybox-static_*.deb | head -n 1)" "$ex"
    fi
    kernel=$(ls "$ex"/boot/vmlinu[xz]-* | head -n 1)
    cp "$kernel" "$q/kernel"

    root=$q/root
    rm -rf "$root"
    mkdir -p "$root/bin" "$root/sbin" "$root/etc" "$root/proc" "$root/sys" "$root/dev" \
             "$root/tmp" "$root/var/mail" "$root/modules"
    cp "$ex/bin/busybox" "$root/bin/busybox"
    cp "$build/picoimapd" "$root/bin/picoimapd"
    : > "$root/modules/order"
    for f in $(order_modules "$ex/lib/modules" $MODULES); do
        cp "$f" "$root/modules/"
        basename "$f" >> "$root/modules/order"
    done
    if [ ! -f "$q/tls-key.pem" ]; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -keyout "$q/tls-key.pem" -out "$q/tls-cert.pem" -days 825 \
            -subj "/CN=picoimapd-$board" -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
    fi
    cp "$q/tls-key.pem" "$q/tls-cert.pem" "$root/etc/"
    printf 'demo:{PLAIN}demo\nalice:{PLAIN}alicepw\n' > "$root/etc/picoimapd.passwd"
    cat > "$root/etc/picoimapd.conf" <<CONF
# picoimapd in the $board QEMU image. Clients arrive through QEMU's user
# network from 10.0.2.2, not loopback: plaintext login is allowed for tests.
listen = 0.0.0.0:143
listen_tls = 0.0.0.0:993
tls_cert = /etc/tls-cert.pem
tls_key = /etc/tls-key.pem
store = /var/mail
passwd = /etc/picoimapd.passwd
log = stderr
log_level = ${GUEST_LOG_LEVEL:-info}
allow_plaintext = yes
allow_root = yes
CONF
    cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /var/mail
for m in $(cat /modules/order); do
    insmod /modules/$m || echo "init: insmod $m failed"
done
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
echo "init: $(uname -m) $(uname -r), starting picoimapd"
/bin/picoimapd -c /etc/picoimapd.conf &
pid=$!
echo "PICOIMAPD-STARTED pid $pid"
wait $pid
echo "PICOIMAPD-EXITED status $?"
poweroff -f
INIT
    chmod 755 "$root/init"
    (cd "$root" && find . | cpio -o -H newc --quiet) | gzip -1 > "$q/initramfs.gz"
    echo "qemu-boot.sh: image $q/initramfs.gz ($(wc -c < "$q/initramfs.gz") bytes), kernel $(basename "$kernel")" >&2
}

free_ports() {
    /usr/bin/python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))'
}

start() {
    if [ $# -ge 2 ]; then
        port=$1
        tlsport=$2
    else
        set -- $(free_ports)
        port=$1
        tlsport=$2
    fi
    stop
    image
    : > "$q/console.log"
    # -no-reboot: a kernel panic ends QEMU instead of looping.
    $QEMU_CMD -nographic -no-reboot -kernel "$q/kernel" -initrd "$q/initramfs.gz" \
        -append "console=$CONSOLE panic=1 quiet loglevel=4" \
        -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:143,hostfwd=tcp:127.0.0.1:$tlsport-:993" \
        -device "$NET_DEVICE,netdev=n0,romfile=" \
        -monitor none -serial "file:$q/console.log" -display none \
        < /dev/null > "$q/qemu.log" 2>&1 &
    echo $! > "$q/qemu.pid"
    echo "$port $tlsport" > "$q/ports"
    deadline=$(( $(date +%s) + BOOT_TIMEOUT ))
    t0=$(date +%s)
    while [ "$(date +%s)" -lt "$deadline" ]; do
        sleep 1
        if /usr/bin/python3 - "$port" <<'PY' 2>/dev/null
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.settimeout(2)
g = b""
while b"\r\n" not in g:
    d = s.recv(512)
    if not d:
        break
    g += d
sys.exit(0 if g.startswith(b"* OK") and b"picoimapd" in g else 1)
PY
        then
            echo "qemu-boot.sh: $board up after $(( $(date +%s) - t0 )) s: IMAP 127.0.0.1:$port, IMAPS 127.0.0.1:$tlsport" >&2
            return 0
        fi
        if ! kill -0 "$(cat "$q/qemu.pid")" 2>/dev/null; then
            echo "qemu-boot.sh: QEMU exited; console:" >&2
            tail -n 40 "$q/console.log" "$q/qemu.log" >&2
            return 1
        fi
    done
    echo "qemu-boot.sh: $board did not answer in ${BOOT_TIMEOUT} s; console:" >&2
    tail -n 40 "$q/console.log" >&2
    stop
    return 1
}

stop() {
    if [ -f "$q/qemu.pid" ]; then
        pid=$(cat "$q/qemu.pid")
        kill "$pid" 2>/dev/null || true
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$q/qemu.pid"
    fi
}

case "$action" in
    image) image ;;
    start) shift 2; start "$@" ;;
    stop) stop ;;
    *) echo "qemu-boot.sh: unknown action $action" >&2; exit 2 ;;
esac
