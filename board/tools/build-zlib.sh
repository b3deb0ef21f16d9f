#!/bin/sh
# build-zlib.sh -- zlib from Debian's source package, compiled for a board
# (COMPRESS=DEFLATE needs it; a cross toolchain has no zlib of its own).
#
#   sh board/tools/build-zlib.sh CC AR OUTDIR [CFLAGS]
#
# Leaves OUTDIR/include/{zlib.h,zconf.h} and OUTDIR/libz.a with only the
# raw deflate/inflate code (no gz* file functions).
set -eu
cc=$1
ar=$2
out=$3
extra=${4:-}
sh board/tools/fetch-src.sh src zlib >&2
src=$(ls -d build-deps/src/zlib-[0-9]* | head -n 1)
mkdir -p "$out/include" "$out/obj"
cp "$src/zlib.h" "$src/zconf.h" "$out/include/"
echo "  ZLIB    $out"
objs=""
for f in adler32 crc32 deflate inflate inffast inftrees trees zutil; do
    $cc -Os $extra -D_FILE_OFFSET_BITS=64 -I"$src" -c -o "$out/obj/$f.o" "$src/$f.c"
    objs="$objs $out/obj/$f.o"
done
rm -f "$out/libz.a"
$ar rcs "$out/libz.a" $objs
