#!/bin/sh
# endian.sh -- big-endian checks under qemu-user (issue 7, item 5):
#   1. the unit tests, cross-built for board qemu-mips (big-endian MIPS),
#      run under qemu-mips-static;
#   2. tests/boards/test_endian.py: a store written by the big-endian binary
#      opens on the host's little-endian one and back.
# Ends with "endian: N passed, N failed". Needs qemu-user-static (installed
# when missing, as root).
set -u
board=qemu-mips
emu=qemu-mips-static
if ! command -v $emu >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends qemu-user-static >/dev/null
fi
command -v $emu >/dev/null 2>&1 || { echo "endian.sh: needs qemu-user-static" >&2; exit 1; }
passed=0
failed=0
sh board/tools/build-board.sh $board > /dev/null 2>&1 || { echo "endian.sh: $board build failed" >&2; exit 1; }
build=build-$board
m="make --no-print-directory BUILD=$build DOTCONFIG=$build/.config KCONFIG=$build/Kconfig"
# The unit-test link line has no $(LDFLAGS), so -static rides in CC.
prefix=$(sed -n 's/^CONFIG_CROSS_COMPILE="\(.*\)"$/\1/p' board/$board/defconfig)
units=$(ls tests/unit/test_*.c | sed "s|tests/unit/\(.*\)\.c|$build/tests/\1|")
if SRCTREE=. srctree=$(pwd) $m CC="${prefix}gcc -static" $units > $build/unit-build.log 2>&1; then
    wrappers=""
    mkdir -p $build/emu
    for u in $units; do
        w=$build/emu/$(basename "$u")
        printf '#!/bin/sh\nexec %s %s "$@"\n' "$emu" "$(pwd)/$u" > "$w"
        chmod +x "$w"
        wrappers="$wrappers $w"
    done
    if sh tests/run-unit.sh $wrappers; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
else
    echo "endian.sh: unit tests did not build for $board (see $build/unit-build.log)" >&2
    failed=$((failed + 1))
fi
# A little-endian host binary of the same sources, in a folder of its own.
hb=build-endian-host
mkdir -p $hb
[ -f $hb/.config ] || /usr/bin/python3 board/tools/genconfig.py defconfig Kconfig board/host/defconfig $hb/.config
if make --no-print-directory BUILD=$hb DOTCONFIG=$hb/.config $hb/picoimapd > $hb/build.log 2>&1 &&
   PICOIMAPD_BE="$emu $(pwd)/$build/picoimapd" PICOIMAPD_LE="$(pwd)/$hb/picoimapd" \
   /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/boards/test_endian.py; then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
fi
echo "endian: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
