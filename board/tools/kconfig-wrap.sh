#!/bin/sh
# kconfig-wrap.sh -- write OUT, a Kconfig that is the top-level Kconfig plus
# the board options (board/Kconfig.boards) and the PORT_LWIP choice entry,
# for as long as the top-level Kconfig does not have them itself. Once it
# does, OUT just sources it.
#
#   sh board/tools/kconfig-wrap.sh OUT
set -eu
out=${1:?usage: kconfig-wrap.sh OUT}
mkdir -p "$(dirname "$out")"
tmp=$out.tmp
if grep -q '^config PORT_LWIP' Kconfig; then
    cp Kconfig "$tmp"
else
    # Add the lwIP entry to the "Network port" choice, just before endchoice.
    awk '
        /^config PORT_POSIX/ { inchoice = 1 }
        inchoice && /^endchoice/ {
            print "config PORT_LWIP"
            print "\tbool \"lwIP raw API over a TAP device (NO_SYS=1)\""
            print "\thelp"
            print "\t  lwIP 2.1.3 built from source with the board'"'"'s lwipopts.h,"
            print "\t  one thread, the TAP fd polled by the same loop."
            print ""
            inchoice = 0
        }
        { print }
    ' Kconfig > "$tmp"
fi
if ! grep -q 'source "board/Kconfig.boards"' "$tmp"; then
    printf '\nsource "board/Kconfig.boards"\n' >> "$tmp"
fi
if [ -f "$out" ] && cmp -s "$tmp" "$out"; then
    rm -f "$tmp"
else
    mv "$tmp" "$out"
fi
