#!/bin/bash
# run.sh -- picoimapd against Dovecot, side by side in one run (`make bench`).
#
# Starts Dovecot (maildir users bench<N>, mbox users mb<N>, one instance under
# a temporary folder, loopback ports) and picoimapd (built with
# build-bench/.config: MAX_CONNS raised for the 10,000-connection test), runs
# the same workloads against each in alternation, measures PSS per idle
# connection and start-up footprint, and writes everything to
# tests/bench/results/<stamp>/ plus tests/bench/results/summary.md and bench.png.
#
# Environment:
#   BENCH_QUICK=1      one short round, no session/100, no 1,000/10,000 idle (<2 min)
#   BENCH_ROUNDS=N     rounds of the throughput workloads (default 3)
#   BENCH_SECS=S       measured seconds per run (default 8; quick 3)
#   BENCH_BIG_IDLE=N   idle connections for the big picoimapd test (default 10000; 0 skips)
#   PICOIMAPD=path     use this binary instead of building build-bench/picoimapd
#   BENCH_KEEP=1       keep the temporary folder (stores, logs)
#   BENCH_PERF=1       perf record picoimapd during its 100-client runs
#   BENCH_MIX=...      override the mix (loadgen --mix syntax)
#   BENCH_DV_FSYNC=always  Dovecot syncs flag changes and expunges too (default optimized)
#   BENCH_NICE=-10     run both servers and the load generator at this niceness
#                      (the machine is shared: see the run-queue wait column)
#   BENCH_WORKLOADS="persist/10 persist/100"  only these throughput runs
#                      (and then no TLS round; default: all of them)
#   BENCH_SERVERS="pico"  only these servers in the throughput runs (pico dvmd dvmb)
#   BENCH_MEM=0        skip the idle-memory measurements
#   BENCH_PICO_CONF="compact_ratio = 0.5"  extra lines for picoimapd's config
#   BENCH_PICO_LOG=info  picoimapd's log_level (default warn; info shows its
#                      slow loop turns, CONFIG_SLOW_TURN_MS, in pico.log)
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH=$ROOT/tests/bench
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
    ROUNDS=${BENCH_ROUNDS:-1}; SECS=${BENCH_SECS:-3}; WARM=1; PRELOAD=20
    IDLE_SET="10 100"; BIG_IDLE=0
else
    ROUNDS=${BENCH_ROUNDS:-3}; SECS=${BENCH_SECS:-8}; WARM=2; PRELOAD=60
    IDLE_SET="10 100 1000"; BIG_IDLE=${BENCH_BIG_IDLE:-10000}
fi
STAMP=$(date -u +%Y%m%d-%H%M%S)
RES=$BENCH/results/$STAMP
mkdir -p "$RES"
WORK=$(mktemp -d /var/tmp/picobench.XXXXXX)
chmod 755 "$WORK"
PIPORT=$((20000 + RANDOM % 20000)); DVPORT=$((PIPORT + 1)); DVSPORT=$((PIPORT + 2)); PITPORT=$((PIPORT + 3))
MIXFILE=$RES/mix.txt; MEMFILE=$RES/mem.txt; FOOTFILE=$RES/foot.txt
PI_PID=; DV_MASTER=; HOLD_PIDS=
T_START=$(date +%s)

log() { printf '[bench %3ds] %s\n' $(( $(date +%s) - T_START )) "$*" | tee -a "$RES/run.log" >&2; }

cleanup() {
    for p in $HOLD_PIDS; do kill "$p" 2>/dev/null; done
    [ -n "$PI_PID" ] && kill "$PI_PID" 2>/dev/null
    if [ -n "$DV_MASTER" ]; then
        kill "$DV_MASTER" 2>/dev/null
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$DV_MASTER" 2>/dev/null || break; sleep 0.3; done
    fi
    cp "$WORK"/dovecot.log "$RES/" 2>/dev/null
    cp "$WORK"/pico.log "$RES/" 2>/dev/null
    if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- dependencies ----
need=
command -v dovecot >/dev/null 2>&1 && [ -x /usr/lib/dovecot/imap ] || need="$need dovecot-imapd"
command -v gnuplot >/dev/null 2>&1 || need="$need gnuplot-nox"
command -v openssl >/dev/null 2>&1 || need="$need openssl"
[ -e /usr/include/openssl/ssl.h ] || need="$need libssl-dev"
[ -x /usr/bin/time ] || need="$need time"
command -v strip >/dev/null 2>&1 && command -v strings >/dev/null 2>&1 || need="$need binutils"
if [ -n "$need" ]; then
    if [ "$(id -u)" = 0 ]; then
        log "installing:$need"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need >"$RES/apt.log" 2>&1 ||
            { apt-get update -q >>"$RES/apt.log" 2>&1 &&
              DEBIAN_FRONTEND=noninteractive apt-get install -y -q $need >>"$RES/apt.log" 2>&1; } ||
            { log "apt-get failed, see $RES/apt.log"; exit 1; }
        # The package starts the system Dovecot; the bench does not need it.
        systemctl stop dovecot >/dev/null 2>&1 || true
    else
        echo "bench: please install (as root): apt-get install$need" >&2; exit 1
    fi
fi

# ---- builds ----
LG=$ROOT/build-bench/loadgen
mkdir -p "$ROOT/build-bench"
if [ -e /usr/include/openssl/ssl.h ]; then LGTLS="-DLG_TLS=1"; LGLIBS="-lssl -lcrypto"; else LGTLS=; LGLIBS=; fi
cc -O2 -g -Wall -Wextra $LGTLS -o "$LG" "$BENCH/loadgen.c" $LGLIBS -lm || { log "loadgen build failed"; exit 1; }

if [ -n "${PICOIMAPD:-}" ]; then
    PI_BIN=$PICOIMAPD
else
    # The bench build: the default .config with the connection limits raised
    # so 10,000 idle clients fit (the defaults are 1024 / 64 per address).
    cfg=$ROOT/build-bench/.config
    base=$ROOT/.config; [ -e "$base" ] || base=$ROOT/board/host/defconfig
    sed -e '/^CONFIG_MAX_CONNS=/d; /^CONFIG_MAX_CONNS_PER_IP=/d; /^CONFIG_MAX_PREAUTH_CONNS=/d' "$base" > "$cfg.new"
    printf 'CONFIG_MAX_CONNS=12000\nCONFIG_MAX_CONNS_PER_IP=12000\nCONFIG_MAX_PREAUTH_CONNS=256\n' >> "$cfg.new"
    cmp -s "$cfg.new" "$cfg" 2>/dev/null && rm -f "$cfg.new" || mv "$cfg.new" "$cfg"
    /usr/bin/python3 "$ROOT/board/tools/genconfig.py" olddefconfig "$ROOT/Kconfig" "$cfg"
    if ! make -C "$ROOT" --no-print-directory BUILD=build-bench DOTCONFIG="$cfg" build-bench/picoimapd \
            >"$RES/build.log" 2>&1; then
        log "picoimapd build failed (see $RES/build.log):"; tail -5 "$RES/build.log" >&2; exit 1
    fi
    PI_BIN=$ROOT/build-bench/picoimapd
fi
cp "$PI_BIN" "$WORK/picoimapd"
PI_TLS=0
strings "$WORK/picoimapd" | grep -qi 'mbedtls' && PI_TLS=1

# ---- fd limit ----
ulimit -Hn 1048576 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
log "fd limit $(ulimit -n); work dir $WORK; results $RES"

# ---- users, certificate ----
NUSERS=1100
cd "$WORK" || exit 1
openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 30 -subj /CN=localhost \
    >/dev/null 2>&1
chmod 644 key.pem cert.pem
: > pico.passwd; : > dv.passwd
for i in $(seq 1 $NUSERS); do
    echo "bench$i:{PLAIN}pw$i" >> pico.passwd
    echo "bench$i:{PLAIN}pw$i::::::" >> dv.passwd
    echo "mb$i:{PLAIN}pw$i::::::userdb_mail=mbox:~/mail:INBOX=~/mail/inbox" >> dv.passwd
done
chmod 644 pico.passwd dv.passwd
mkdir -p home pistore

if [ "$(id -u)" = 0 ]; then
    MAILUSER=nobody; MAILGROUP=$(id -gn nobody)
    INTUSER=dovecot; INTGROUP=dovecot; LOGINUSER=dovenull
    id dovecot >/dev/null 2>&1 || { INTUSER=nobody; INTGROUP=$MAILGROUP; }
    id dovenull >/dev/null 2>&1 || LOGINUSER=nobody
    chown -R "$MAILUSER:$MAILGROUP" home pistore
    PI_USERLINE="user = $MAILUSER"
else
    MAILUSER=$(id -un); MAILGROUP=$(id -gn); INTUSER=$MAILUSER; INTGROUP=$MAILGROUP; LOGINUSER=$MAILUSER
    PI_USERLINE=
fi

# PSS and RSS (kB) summed over a process and all its descendants.
tree_pids() {
    local all=" $1 " changed=1
    while [ $changed = 1 ]; do
        changed=0
        for st in /proc/[0-9]*/stat; do
            read -r line < "$st" 2>/dev/null || continue
            local pid=${line%% *} rest=${line##*) }
            set -- $rest
            case "$all" in *" $2 "*) case "$all" in *" $pid "*) ;; *) all="$all$pid "; changed=1;; esac;; esac
        done
    done
    echo $all
}
mem_of() { # prints "pss_kb rss_kb nprocs"
    local pss=0 rss=0 n=0 p v
    for p in $(tree_pids "$1"); do
        [ -r /proc/$p/smaps_rollup ] || continue
        v=$(awk '/^Pss:/{p=$2} /^Rss:/{r=$2} END{print p+0, r+0}' /proc/$p/smaps_rollup 2>/dev/null) || continue
        set -- $v; pss=$((pss + $1)); rss=$((rss + $2)); n=$((n + 1))
    done
    echo "$pss $rss $n"
}

# ---- Dovecot ----
sed -e "s|@PASSWD@|$WORK/dv.passwd|g; s|@BASE@|$WORK|g; s|@PORT@|$DVPORT|g; s|@SSLPORT@|$DVSPORT|g; s|@INTUSER@|$INTUSER|; \
s|@INTGROUP@|$INTGROUP|; s|@LOGINUSER@|$LOGINUSER|; s|@MAILUSER@|$MAILUSER|; s|@MAILGROUP@|$MAILGROUP|; \
s|@SSL@|yes|; s|@FSYNC@|${BENCH_DV_FSYNC:-optimized}|" "$BENCH/dovecot.conf.in" > dovecot.conf
if [ "$(id -u)" != 0 ]; then
    sed -i '/^mail_uid/d; /^mail_gid/d' dovecot.conf
fi
dovecot -c "$WORK/dovecot.conf" 2>"$RES/dovecot-start.err" || { log "dovecot failed to start"; cat "$RES/dovecot-start.err" >&2; exit 1; }
for _ in $(seq 1 50); do [ -s "$WORK/run/master.pid" ] && break; sleep 0.1; done
DV_MASTER=$(cat "$WORK/run/master.pid")
NICE=${BENCH_NICE:-0}
# Children forked from now on inherit the master's niceness.
[ "$NICE" != 0 ] && renice -n "$NICE" -p "$DV_MASTER" $(tree_pids "$DV_MASTER") >/dev/null 2>&1

# ---- picoimapd ----
{
    echo "listen = 127.0.0.1:$PIPORT"
    [ "$PI_TLS" = 1 ] && printf 'listen_tls = 127.0.0.1:%s\ntls_cert = %s\ntls_key = %s\n' "$PITPORT" "$WORK/cert.pem" "$WORK/key.pem"
    echo "store = $WORK/pistore"
    echo "passwd = $WORK/pico.passwd"
    echo "log = stderr"
    echo "log_level = ${BENCH_PICO_LOG:-warn}"
    echo "allow_plaintext = yes"
    [ -n "$PI_USERLINE" ] && echo "$PI_USERLINE"
    [ -n "${BENCH_PICO_CONF:-}" ] && printf '%s\n' "$BENCH_PICO_CONF"
} > pico.conf
start_pico() {
    # setsid: a session (and so a scheduler autogroup) of its own, as the
    # daemonized Dovecot master has; otherwise it shares one with the loadgen.
    nice -n "$NICE" setsid "$WORK/picoimapd" -c "$WORK/pico.conf" >>"$WORK/pico.log" 2>&1 &
    PI_PID=$!
    for _ in $(seq 1 50); do
        (exec 3<>/dev/tcp/127.0.0.1/$PIPORT) 2>/dev/null && return 0
        kill -0 "$PI_PID" 2>/dev/null || break
        sleep 0.1
    done
    return 1
}
if ! start_pico; then
    if [ "$PI_TLS" = 1 ]; then
        log "picoimapd refused the TLS config; running without TLS"
        sed -i '/^listen_tls/d; /^tls_/d' pico.conf; PI_TLS=0
        start_pico || { log "picoimapd failed to start:"; tail -5 pico.log >&2; exit 1; }
    else
        log "picoimapd failed to start:"; tail -5 pico.log >&2; exit 1
    fi
fi
for _ in $(seq 1 30); do (exec 3<>/dev/tcp/127.0.0.1/$DVPORT) 2>/dev/null && break; sleep 0.1; done

# Servers that died (or were killed by something else on the machine) are
# logged in incidents.txt and restarted, so one incident costs one run.
ensure_up() {
    if ! kill -0 "$PI_PID" 2>/dev/null; then
        echo "$(date -u +%T) picoimapd (pid $PI_PID) was gone before '$1'; log tail: $(tail -3 "$WORK/pico.log" | tr '\n' ' ')" >> "$RES/incidents.txt"
        log "picoimapd was gone before $1: restarting (see incidents.txt)"
        start_pico || { log "picoimapd does not start again"; exit 1; }
    fi
    if ! kill -0 "$DV_MASTER" 2>/dev/null; then
        echo "$(date -u +%T) Dovecot master (pid $DV_MASTER) was gone before '$1'" >> "$RES/incidents.txt"
        log "Dovecot was gone before $1: restarting (see incidents.txt)"
        rm -f "$WORK/run/master.pid"
        dovecot -c "$WORK/dovecot.conf" 2>>"$RES/dovecot-start.err" || { log "Dovecot does not start again"; exit 1; }
        for _ in $(seq 1 50); do [ -s "$WORK/run/master.pid" ] && break; sleep 0.1; done
        DV_MASTER=$(cat "$WORK/run/master.pid")
        for _ in $(seq 1 30); do (exec 3<>/dev/tcp/127.0.0.1/$DVPORT) 2>/dev/null && break; sleep 0.1; done
    fi
}

# server name -> port, user format
port_of() { case $1 in pico) echo $PIPORT;; pico-tls) echo $PITPORT;; dv-tls) echo $DVSPORT;; *) echo $DVPORT;; esac; }
ufmt_of() { case $1 in dvmb) echo 'mb%d';; *) echo 'bench%d';; esac; }
tls_of() { case $1 in *-tls) echo --tls;; esac; }

# ---- footprint ----
strip -o "$WORK/pico.stripped" "$WORK/picoimapd" 2>/dev/null || cp "$WORK/picoimapd" "$WORK/pico.stripped"
pisize=$(stat -c %s "$WORK/pico.stripped")
dvfiles="/usr/sbin/dovecot /usr/lib/dovecot/imap /usr/lib/dovecot/imap-login /usr/lib/dovecot/auth \
/usr/lib/dovecot/anvil /usr/lib/dovecot/log /usr/lib/dovecot/config /usr/lib/dovecot/stats \
/usr/lib/dovecot/libdovecot.so.0 /usr/lib/dovecot/libdovecot-storage.so.0 /usr/lib/dovecot/libdovecot-login.so.0"
dvsize=0
for f in $dvfiles; do [ -e "$f" ] && dvsize=$((dvsize + $(stat -L -c %s "$f"))); done
sleep 1
read -r pp pr pn <<< "$(mem_of "$PI_PID")"
read -r dp dr dn <<< "$(mem_of "$DV_MASTER")"
# Shared libraries beyond libc that each links (not in the sizes above).
libs_of() { ldd "$1" 2>/dev/null | awk '$3 ~ /^\// && $1 !~ /^(libc\.so|ld-linux|linux-vdso)/ {print $3}' | sort -u; }
libsize() { local t=0 f; for f in "$@"; do t=$((t + $(stat -L -c %s "$f"))); done; echo $t; }
pilibs=$(libs_of "$WORK/picoimapd"); dvlibs=$(for f in $dvfiles; do libs_of "$f"; done | grep -v /usr/lib/dovecot/ | sort -u)
{
    echo "F server=pico stripped_bytes=$pisize pss_kb=$pp rss_kb=$pr procs=$pn shared_libs_bytes=$(libsize $pilibs) shared_libs=$(echo $pilibs | tr ' ' , | sed 's|/[^,]*/||g')"
    echo "F server=dovecot stripped_bytes=$dvsize pss_kb=$dp rss_kb=$dr procs=$dn shared_libs_bytes=$(libsize $dvlibs) shared_libs=$(echo $dvlibs | tr ' ' , | sed 's|/[^,]*/||g') files=$(echo $dvfiles | tr ' ' ,)"
} >> "$FOOTFILE"
log "footprint: picoimapd $pisize B stripped, PSS ${pp} kB; Dovecot $dvsize B (imap set), PSS ${dp} kB in $dn processes"

# ---- probe: which commands each server answers ----
excluded=
for s in pico dvmd dvmb; do
    out=$("$LG" --port "$(port_of $s)" --user-fmt "$(ufmt_of $s)" --user-base $((NUSERS)) --mode probe 2>>"$RES/probe.err")
    echo "$s $out" >> "$RES/probe.txt"
    for kv in ${out#PROBE }; do
        [ "${kv#*=}" = ok ] || excluded="$excluded ${kv%%=*}"
    done
done
excluded=$(echo $excluded | tr ' ' '\n' | sort -u | tr '\n' ' '); excluded=${excluded% }
MIX=${BENCH_MIX:-}
if [ -z "$MIX" ]; then
    MIX=
    for kv in append=8 fetch_flags=6 fetch_hdr=12 fetch_bs=8 fetch_body=15 store=12 search=8 search_hdr=2 \
              expunge=4 idle=3 noop=10; do
        case " $excluded " in *" ${kv%%=*} "*) continue;; esac
        MIX="$MIX${MIX:+,}$kv"
    done
fi
log "probe: $(tr '\n' ';' < "$RES/probe.txt")"
[ -n "$excluded" ] && log "left out of the mix for every server (not answered OK by one of them): $excluded"
echo "mix $MIX" > "$RES/mix-used.txt"; echo "excluded $excluded" >> "$RES/mix-used.txt"

# ---- preload: every active user's INBOX gets $PRELOAD messages ----
for s in pico dvmd dvmb; do
    ensure_up "preload $s"
    t0=$(date +%s)
    "$LG" --port "$(port_of $s)" --user-fmt "$(ufmt_of $s)" --clients 100 --mode preload --preload $PRELOAD \
        --max-pending 16 --timeout 60 --deadline 180 >"$RES/preload-$s.txt" 2>&1
    log "preload $s: $(tail -1 "$RES/preload-$s.txt") in $(( $(date +%s) - t0 ))s"
done

# ---- throughput and latency, in alternation ----
# CPU time (clock ticks) of a server: every live process of its tree plus
# the children it has already reaped (Dovecot's imap processes come and go).
cpu_of() {
    local t=0 p v
    for p in $(tree_pids "$1"); do
        v=$(awk '{print $14 + $15}' /proc/$p/stat 2>/dev/null) && t=$((t + v))
    done
    v=$(awk '{print $16 + $17}' /proc/$1/stat 2>/dev/null) && t=$((t + v))
    echo $t
}
# Time spent runnable but waiting for a CPU (ns), live processes only.
runq_of() {
    local t=0 p v
    for p in $(tree_pids "$1"); do
        v=$(awk '{print $2}' /proc/$p/schedstat 2>/dev/null) && t=$((t + v))
    done
    echo $t
}
# Bytes written to storage (write_bytes of /proc/PID/io), live processes
# only: exact for picoimapd and for Dovecot's persistent sessions, an
# undercount for its session workload (exited imap processes take theirs).
wbytes_of() {
    local t=0 p v
    for p in $(tree_pids "$1"); do
        v=$(awk '/^write_bytes/{print $2}' /proc/$p/io 2>/dev/null) && t=$((t + ${v:-0}))
    done
    echo $t
}
HZ=$(getconf CLK_TCK)
run_mix() { # server workload clients round [label-server]
    local s=$1 wl=$2 n=$3 r=$4 extra= master ls=${5:-$1}
    [ "$wl" = session ] && extra="--per-session 20"
    ensure_up "$ls/$wl/$n/$r"
    case $s in pico*) master=$PI_PID;; *) master=$DV_MASTER;; esac
    local perf=
    if [ "${BENCH_PERF:-0}" = 1 ] && [ "$s" = pico ] && [ "$n" = 100 ] && [ "$wl" = persist ]; then
        perf record -g -o "$RES/perf-pico-$r.data" -p "$PI_PID" -- sleep $((SECS + WARM)) >/dev/null 2>&1 &
        perf=$!
    fi
    local c0 q0 c1 q1 la w0 w1
    c0=$(cpu_of "$master"); q0=$(runq_of "$master"); la=$(cut -d' ' -f1 /proc/loadavg); w0=$(wbytes_of "$master")
    nice -n "$NICE" /usr/bin/time -f "LGCPU %U %S %e" "$LG" --port "$(port_of $s)" $(tls_of $s) --user-fmt "$(ufmt_of $s)" \
        --clients "$n" --duration "$SECS" --warmup "$WARM" --mix "$MIX" --max-msgs $((PRELOAD * 3)) \
        --min-msgs $((PRELOAD / 3)) $extra --label "$ls/$wl/$n/$r" --out "$MIXFILE" > "$RES/mix-$s-$wl-$n-$r.txt" 2>&1
    c1=$(cpu_of "$master"); q1=$(runq_of "$master"); w1=$(wbytes_of "$master")
    [ -n "$perf" ] && wait "$perf"
    # Server CPU seconds and run-queue wait over the whole run (ramp and
    # warm-up included), the load average before it, the loadgen's CPU.
    awk -v l="$ls/$wl/$n/$r" -v c=$(( c1 - c0 )) -v hz="$HZ" -v q=$(( q1 - q0 )) -v la="$la" -v w=$(( w1 - w0 )) \
        '/^LGCPU/{lg=$2+$3; wall=$4} /^TOTAL/{ok=$2}
         END{printf "S label=%s server_cpu_s=%.2f runq_wait_s=%.2f loadavg=%s loadgen_cpu_s=%.2f wall_s=%.2f write_bytes=%d\n", l, c/hz, q/1e9, la, lg, wall, w}' \
        "$RES/mix-$s-$wl-$n-$r.txt" >> "$MIXFILE"
    awk -v l="$ls/$wl/$n/$r" -v c=$(( c1 - c0 )) -v hz="$HZ" '$1=="TOTAL"{printf "  %-22s %8.0f cmd/s  p50 %7.2f ms  p99 %7.2f ms  errors %s  server cpu %.1fs\n", l, $4, $5, $6, $3, c/hz}' \
        "$RES/mix-$s-$wl-$n-$r.txt" | tee -a "$RES/run.log" >&2
}
SERVERS=${BENCH_SERVERS:-pico dvmd dvmb}
WORKLOADS="persist/10 persist/100 session/10 session/100"
[ "$QUICK" = 1 ] && WORKLOADS="persist/10 persist/100 session/10"
[ -n "${BENCH_WORKLOADS:-}" ] && WORKLOADS=$BENCH_WORKLOADS
for r in $(seq 1 "$ROUNDS"); do
    log "round $r of $ROUNDS"
    for w in $WORKLOADS; do
        # Rotate the order each round so no server always runs first.
        set -- $SERVERS
        order=$SERVERS
        if [ $# = 3 ]; then
            [ $((r % 3)) = 2 ] && order="$2 $3 $1"
            [ $((r % 3)) = 0 ] && order="$3 $1 $2"
        fi
        for s in $order; do run_mix "$s" "${w%/*}" "${w#*/}" "$r"; done
    done
done

# The persistent mix over TLS (implicit TLS: Dovecot's imaps, picoimapd's
# listen_tls), one round, when picoimapd has TLS.
if [ "$PI_TLS" = 1 ] && [ -z "${BENCH_WORKLOADS:-}" ]; then
    log "TLS round"
    run_mix pico-tls persist-tls 10 1 pico
    run_mix dv-tls persist-tls 10 1 dvmd
fi

# ---- memory per idle connection ----
hold_wait() { # file timeout_s
    local i
    for i in $(seq 1 $(($2 * 10))); do
        grep -q '^READY' "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
mem_run() { # server-label port-server conns [extra loadgen args]
    local lab=$1 s=$2 n=$3; shift 3
    local pid master f=$RES/hold-$lab-$n.txt
    ensure_up "memory $lab $n"
    case $s in
    pico*)
        # A fresh process, so the heap grown by the throughput runs does
        # not hide what the idle connections cost.
        kill "$PI_PID"; wait "$PI_PID" 2>/dev/null
        start_pico || { log "picoimapd did not restart"; return; }
        sleep 0.5
        master=$PI_PID;;
    *) master=$DV_MASTER;;
    esac
    read -r p0 r0 n0 <<< "$(mem_of "$master")"
    "$LG" --port "$(port_of $s)" $(tls_of $s) --user-fmt "$(ufmt_of $s)" --clients "$n" --users 1000 --mode hold \
        --max-pending 64 --timeout 120 --deadline $((120 + n / 10 + SECS * 3)) "$@" > "$f" 2>&1 &
    pid=$!; HOLD_PIDS="$HOLD_PIDS $pid"
    if hold_wait "$f" $((30 + n / 20)); then
        sleep 1
        read -r p1 r1 n1 <<< "$(mem_of "$master")"
        echo "M server=$lab conns=$n pss_kb=$p1 rss_kb=$r1 procs=$n1 base_pss_kb=$p0 base_rss_kb=$r0 per_conn_kb=$(( (p1 - p0) * 100 / n ))e-2" >> "$MEMFILE"
        log "memory $lab $n idle: PSS $p0 -> $p1 kB in $n1 processes, $(awk -v a=$p0 -v b=$p1 -v n=$n 'BEGIN{printf "%.2f", (b-a)/n}') kB/conn"
        if [ -n "${ACTIVE_WHILE_HOLD:-}" ]; then
            local c0 c1 q0 q1 la
            c0=$(cpu_of "$master"); q0=$(runq_of "$master"); la=$(cut -d' ' -f1 /proc/loadavg)
            "$LG" --port "$(port_of $s)" --clients 10 --duration "$SECS" --warmup "$WARM" --mix "$MIX" \
                --max-msgs $((PRELOAD * 3)) --min-msgs $((PRELOAD / 3)) --user-base 1 \
                --label "$lab/persist+idle$n/10/1" --out "$MIXFILE" > "$RES/mix-$lab-with-$n-idle.txt" 2>&1
            c1=$(cpu_of "$master"); q1=$(runq_of "$master")
            echo "S label=$lab/persist+idle$n/10/1 server_cpu_s=$(awk -v c=$((c1 - c0)) -v hz="$HZ" 'BEGIN{printf "%.2f", c/hz}') runq_wait_s=$(awk -v q=$((q1 - q0)) 'BEGIN{printf "%.2f", q/1e9}') loadavg=$la" >> "$MIXFILE"
            awk -v l="$lab 10 active + $n idle" '$1=="TOTAL"{printf "  %-30s %8.0f cmd/s  p50 %7.2f ms  p99 %7.2f ms  errors %s\n", l, $4, $5, $6, $3}' \
                "$RES/mix-$lab-with-$n-idle.txt" | tee -a "$RES/run.log" >&2
        fi
    else
        log "memory $lab $n: clients did not all get ready: $(tail -2 "$f" | tr '\n' ' ')"
        echo "M server=$lab conns=$n failed=1 $(grep -c . "$f")" >> "$MEMFILE"
    fi
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    sleep 2   # let Dovecot reap its imap processes
}
[ "${BENCH_MEM:-1}" = 0 ] && IDLE_SET= && BIG_IDLE=0
for n in $IDLE_SET; do
    mem_run pico pico "$n"
    mem_run dovecot dvmd "$n"
done
if [ "${BENCH_MEM:-1}" != 0 ]; then
    mem_run dovecot-tls dv-tls 100
    [ "$PI_TLS" = 1 ] && mem_run pico-tls pico-tls 100
fi
if [ "$BIG_IDLE" -gt 0 ]; then
    ACTIVE_WHILE_HOLD=1 mem_run pico pico "$BIG_IDLE" --src-ips 20
fi

# ---- summary ----
kill -0 "$PI_PID" 2>/dev/null || log "picoimapd is no longer running!"
/usr/bin/python3 "$BENCH/summarize.py" "$RES" "$BENCH/results" | tee -a "$RES/run.log"
log "done in $(( $(date +%s) - T_START ))s; results in $RES"
