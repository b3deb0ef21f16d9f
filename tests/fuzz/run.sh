#!/bin/sh
# run.sh SECONDS FILES... -- build and run libFuzzer targets.
#
# Each tests/fuzz/fuzz_NAME.c defines LLVMFuzzerTestOneInput. It is linked
# with every core/*.c and storage/*.c that does not define main(), built with
# clang -fsanitize=fuzzer,address,undefined into build-fuzz/, and run for
# SECONDS seconds. The port layer is never linked: tests/fuzz/port_stub.c
# provides weak no-op versions of the port_* functions (a target may define
# its own to override them).
#
# Corpus: build-fuzz/corpus/NAME/ (kept between runs, grows); seeds from
# tests/fuzz/corpus/NAME/ if present; dictionary tests/fuzz/NAME.dict if
# present. Crash reproducers land in build-fuzz/crash-NAME-*.
#
# Prints per target "fuzz NAME: ok|FAILED" and finally
#   fuzz: N passed, N failed
# exits nonzero if any target failed to build or found a problem.
set -u

if [ $# -lt 1 ]; then
    echo "usage: $0 SECONDS [tests/fuzz/fuzz_*.c...]" >&2
    exit 2
fi
secs=$1
shift

CLANG=${CLANG:-clang}
OUT=${FUZZ_OUT:-build-fuzz}
CONFIG_DIR=${CONFIG_DIR:-build}
CFLAGS="-std=c11 -D_GNU_SOURCE -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION=1 -g -O1 \
 -fno-omit-frame-pointer -Wall -Wextra -Wno-unused-parameter -Wundef \
 -Icore -Iport -Istorage -I$CONFIG_DIR"
SAN_LIB="-fsanitize=fuzzer-no-link,address,undefined"
SAN_BIN="-fsanitize=fuzzer,address,undefined"

pass=0
fail=0
summary() {
    echo "fuzz: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    exit $?
}

if [ $# -eq 0 ]; then
    echo "fuzz: no targets (tests/fuzz/fuzz_*.c)"
    summary
fi

if ! command -v "$CLANG" >/dev/null 2>&1; then
    echo "fuzz: $CLANG not found (run: sh board/tools/deps.sh test)" >&2
    fail=$#
    summary
fi
if [ ! -f "$CONFIG_DIR/config.h" ]; then
    echo "fuzz: $CONFIG_DIR/config.h missing (run make first)" >&2
    fail=$#
    summary
fi

mkdir -p "$OUT/obj"

# Library objects: every core/ and storage/ source without a main().
# Rebuilt only when the source, the config header, or any header is newer.
objs=""
lib_ok=1
newest_hdr=$(ls -t core/*.h port/*.h storage/*.h "$CONFIG_DIR/config.h" 2>/dev/null | head -n 1)
for src in core/*.c storage/*.c tests/fuzz/port_stub.c; do
    [ -f "$src" ] || continue
    if grep -Eq '^[[:space:]]*(int|void)?[[:space:]]*main[[:space:]]*\(' "$src"; then
        continue
    fi
    obj="$OUT/obj/$(echo "$src" | tr '/' '_' | sed 's/\.c$/.o/')"
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || \
       { [ -n "$newest_hdr" ] && [ "$newest_hdr" -nt "$obj" ]; }; then
        echo "  CC(fuzz) $src"
        if ! $CLANG $CFLAGS $SAN_LIB -c -o "$obj" "$src"; then
            lib_ok=0
            continue
        fi
    fi
    objs="$objs $obj"
done

for t in "$@"; do
    name=$(basename "$t" .c)
    bin="$OUT/$name"
    if [ "$lib_ok" -ne 1 ]; then
        echo "fuzz $name: FAILED (library did not build)"
        fail=$((fail + 1))
        continue
    fi
    echo "  LD(fuzz) $bin"
    if ! $CLANG $CFLAGS $SAN_BIN -o "$bin" "$t" $objs -lz; then
        echo "fuzz $name: FAILED (did not build)"
        fail=$((fail + 1))
        continue
    fi
    corpus="$OUT/corpus/$name"
    mkdir -p "$corpus"
    seeds=""
    [ -d "tests/fuzz/corpus/$name" ] && seeds="tests/fuzz/corpus/$name"
    dict=""
    [ -f "tests/fuzz/$name.dict" ] && dict="-dict=tests/fuzz/$name.dict"
    log="$OUT/$name.log"
    echo "  FUZZ     $name for ${secs}s"
    # -rss_limit_mb: the server's own caps keep memory small; 2 GiB catches
    # a runaway. -timeout: one input taking 10 s is a hang.
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$OUT/crash-$name-" $dict \
        "$corpus" $seeds > "$log" 2>&1
    rc=$?
    if [ "$rc" -eq 0 ]; then
        runs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
        echo "fuzz $name: ok (${runs:-?} runs, corpus $(ls "$corpus" | wc -l) inputs)"
        pass=$((pass + 1))
    else
        echo "fuzz $name: FAILED (exit $rc); last lines of $log:"
        tail -n 40 "$log"
        fail=$((fail + 1))
    fi
done

summary
