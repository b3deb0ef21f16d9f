#!/bin/sh
# build-mbedtls.sh -- mbedTLS 2.28 from Debian's source package, compiled
# for a board with the board's own configuration header.
#
#   sh board/tools/build-mbedtls.sh CC AR CONFIG_HEADER OUTDIR [CFLAGS]
#
# Leaves OUTDIR/include (headers) and OUTDIR/library/lib{mbedtls,mbedx509,
# mbedcrypto}.a. The source is copied to OUTDIR so boards never share
# objects. Rebuilt from scratch when the configuration header changes.
set -eu
cc=$1
ar=$2
config=$(cd "$(dirname "$3")" && pwd)/$(basename "$3")
out=$4
extra=${5:-}

sh board/tools/fetch-src.sh src mbedtls
src=$(ls -d build-deps/src/mbedtls-2.28* | head -n 1)
stamp=$out/.config-stamp
want=$(cat "$config" "$(dirname "$config")"/../common/mbedtls-small.h 2>/dev/null | cksum)
want="$cc $extra $want"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    rm -rf "$out"
    mkdir -p "$out"
    cp -r "$src/include" "$src/library" "$src/3rdparty" "$out/"
fi
echo "  MBEDTLS $out ($(basename "$(dirname "$config")"))"
make -s -C "$out/library" libmbedcrypto.a libmbedx509.a libmbedtls.a \
    CC="$cc" AR="$ar" \
    CFLAGS="-Os $extra -DMBEDTLS_CONFIG_FILE='\"$config\"'" \
    WARNING_CFLAGS="-Wall -Wno-unused-function"
echo "$want" > "$stamp"
