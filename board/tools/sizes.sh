#!/bin/sh
# sizes.sh -- text/data/bss and stripped size of a picoimapd binary.
#
#   sh board/tools/sizes.sh CROSS_PREFIX BINARY [LABEL]
#
# One line, easy to compare and to grep:
#   LABEL  text=N data=N bss=N stripped=N (N KiB) static|dynamic
set -eu
prefix=$1
bin=$2
label=${3:-$bin}
size=${prefix}size
strip=${prefix}strip
command -v "$size" >/dev/null 2>&1 || size=size
command -v "$strip" >/dev/null 2>&1 || strip=strip
set -- $("$size" "$bin" | awk 'NR == 2 { print $1, $2, $3 }')
tmp=$(mktemp)
"$strip" -o "$tmp" "$bin"
stripped=$(wc -c < "$tmp")
rm -f "$tmp"
kind=dynamic
if ! "${prefix}readelf" -l "$bin" 2>/dev/null | grep -q INTERP; then
    kind=static
fi
printf '%s  text=%s data=%s bss=%s stripped=%s (%s KiB) %s\n' \
    "$label" "$1" "$2" "$3" "$stripped" $(( (stripped + 1023) / 1024 )) "$kind"
