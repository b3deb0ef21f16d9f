#!/bin/sh
# musl.sh -- musl libc for a board's cross compiler, from Debian's musl and
# musl-dev packages for the target architecture (apt-get download into
# build-deps/, never installed), with a gcc specs file pointing at them.
#
#   sh board/tools/musl.sh CROSS_PREFIX     prints the specs file's path
#
# The board then compiles with `${CROSS_PREFIX}gcc -specs=THAT_FILE`:
# musl's headers and static libc instead of glibc's. A static musl binary
# is several hundred KiB smaller than a static glibc one and needs no NSS
# modules at run time.
set -eu
prefix=${1:?usage: musl.sh CROSS_PREFIX}
case "$prefix" in
    aarch64-linux-gnu-)    arch=arm64;  triplet=aarch64-linux-musl ;;
    arm-linux-gnueabihf-)  arch=armhf;  triplet=arm-linux-musleabihf ;;
    mipsel-linux-gnu-)     arch=mipsel; triplet=mipsel-linux-musl ;;
    mips-linux-gnu-)       arch=mips;   triplet=mips-linux-musl ;;
    x86_64-linux-gnu-|"")  arch=amd64;  triplet=x86_64-linux-musl ;;
    *) echo "musl.sh: no musl mapping for $prefix" >&2; exit 1 ;;
esac
dir=build-deps/musl/$arch
specs=$dir/musl-gcc.specs
if [ ! -f "$specs" ]; then
    sh board/tools/fetch-src.sh deb "$arch" musl musl-dev >&2
    rm -rf "$dir"
    mkdir -p "$dir"
    for f in build-deps/deb/$arch/musl_*.deb build-deps/deb/$arch/musl-dev_*.deb; do
        dpkg-deb -x "$f" "$dir"
    done
    abs=$(cd "$dir" && pwd)
    sed -e "s|/usr/include/$triplet|$abs/usr/include/$triplet|g" \
        -e "s|/usr/lib/$triplet|$abs/usr/lib/$triplet|g" \
        "$dir/usr/lib/$triplet/musl-gcc.specs" > "$specs.tmp"
    mv "$specs.tmp" "$specs"
fi
echo "$(cd "$dir" && pwd)/musl-gcc.specs"
