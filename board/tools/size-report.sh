#!/bin/sh
# size-report.sh -- stripped sizes of picoimapd per board, for the board's
# full configuration (its defconfig) and the minimal one (defconfig plus
# board/common/minimal.config), checked against board/size-budget.txt.
#
#   sh board/tools/size-report.sh [BOARD...]     default: every qemu-* board
#
# Builds into build-BOARD/ and build-BOARD-min/. Prints one line per build
# and exits 1 if any stripped binary is larger than its budget.
set -eu
[ $# -gt 0 ] || set -- qemu-aarch64 qemu-armhf qemu-mipsel
budget_file=board/size-budget.txt
export srctree="$(pwd)"
status=0
report=""
for board in "$@"; do
    for variant in full min; do
        build=build-$board
        [ "$variant" = min ] && build=build-$board-min
        mkdir -p "$build"
        sh board/tools/kconfig-wrap.sh "$build/Kconfig"
        cat "board/$board/defconfig" > "$build/defconfig.merged"
        [ "$variant" = min ] && cat board/common/minimal.config >> "$build/defconfig.merged"
        # Always: new Kconfig symbols must reach .config, which make reads.
        /usr/bin/python3 board/tools/genconfig.py defconfig "$build/Kconfig" \
            "$build/defconfig.merged" "$build/.config"
        m="make --no-print-directory BUILD=$build DOTCONFIG=$build/.config KCONFIG=$build/Kconfig"
        $m "$build/picoimapd" > "$build/build.log" 2>&1 || {
            echo "size-report: $board $variant: build failed (see $build/build.log)" >&2
            status=1
            continue
        }
        line=$($m sizes | tail -n 1)
        stripped=$(echo "$line" | sed -n 's/.*stripped=\([0-9]*\).*/\1/p')
        max=$(awk -v b="$board" -v v="$variant" '$1 == b && $2 == v { print $3 }' "$budget_file" 2>/dev/null || true)
        verdict=""
        if [ -n "$max" ]; then
            if [ "$stripped" -gt "$max" ]; then
                verdict="OVER BUDGET ($max)"
                status=1
            else
                verdict="budget $max"
            fi
        fi
        printf '%-14s %-4s %s  %s\n' "$board" "$variant" "$(echo "$line" | cut -d' ' -f3-)" "$verdict"
    done
done
exit $status
