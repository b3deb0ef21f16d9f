#!/bin/sh
# build-board.sh -- cross build of one board into build-BOARD/, leaving the
# top-level .config and build/ alone.
#
#   sh board/tools/build-board.sh BOARD      e.g. qemu-aarch64
#
# Installs the board's Debian cross compiler (gcc-<triplet>) if it is
# missing (as root; otherwise says what to install), configures from
# board/BOARD/defconfig and builds build-BOARD/picoimapd, then prints its
# sizes. Equivalent, once the top-level Kconfig sources board/Kconfig.boards,
# to `make BOARD_defconfig && make` in a clean tree.
set -eu
board=${1:?usage: build-board.sh BOARD}
def=board/$board/defconfig
[ -f "$def" ] || { echo "build-board.sh: no $def" >&2; exit 1; }
build=build-$board

prefix=$(sed -n 's/^CONFIG_CROSS_COMPILE="\(.*\)"$/\1/p' "$def")
if [ -n "$prefix" ] && ! command -v "${prefix}gcc" >/dev/null 2>&1; then
    # Without --no-install-recommends: gcc-<triplet> recommends the
    # libc6-dev-<arch>-cross headers and libraries the build needs.
    pkgs="gcc-${prefix%-} binutils-${prefix%-}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "build-board.sh: needs ${prefix}gcc; run as root: apt-get install $pkgs" >&2
        exit 1
    fi
    echo "build-board.sh: installing $pkgs"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $pkgs ||
        { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $pkgs; }
fi

sh board/tools/kconfig-wrap.sh "$build/Kconfig"
export srctree="$(pwd)"
m="make --no-print-directory BUILD=$build DOTCONFIG=$build/.config KCONFIG=$build/Kconfig"
$m "${board}_defconfig"
$m "$build/picoimapd"
$m sizes
