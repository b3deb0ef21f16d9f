#!/bin/sh
# run.sh -- build a board, boot it under QEMU and run the integration subset
# (tests/boards/test_board.py) against it through loopback port forwards.
#
#   sh tests/boards/run.sh [BOARD...]        default: qemu-aarch64
#
# Ends with a line "N passed, N failed" over the boards run. KEEP=1 leaves
# the guests running (stop them with board/tools/qemu-boot.sh BOARD stop);
# NOBUILD=1 boots the binary already in build-BOARD/ without rebuilding.
set -u
[ $# -gt 0 ] || set -- qemu-aarch64
passed=0
failed=0
for board in "$@"; do
    echo "== $board"
    if [ "${NOBUILD:-0}" = 1 ] && [ -x "build-$board/picoimapd" ]; then
        :
    elif ! sh board/tools/build-board.sh "$board" >/dev/null; then
        echo "tests/boards: $board: build failed" >&2
        failed=$((failed + 1))
        continue
    fi
    if ! sh board/tools/qemu-boot.sh "$board" start; then
        failed=$((failed + 1))
        continue
    fi
    set -- $(cat "build-$board/qemu/ports")
    if PICOIMAPD_REMOTE=127.0.0.1:$1 PICOIMAPD_REMOTE_TLS=127.0.0.1:$2 \
        /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/boards/test_board.py; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        tail -n 30 "build-$board/qemu/console.log"
    fi
    [ "${KEEP:-0}" = 1 ] || sh board/tools/qemu-boot.sh "$board" stop
done
echo "boards: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
