#!/bin/sh
# run-unit.sh BIN... -- run each unit test program, show its output, and add
# up the "<name>: N passed, N failed" lines into one total:
#   unit: N passed, N failed
# Exits nonzero if any test failed, any program exited nonzero or crashed,
# or a program printed no summary line.
set -u

total_pass=0
total_fail=0
bad=0

for bin in "$@"; do
    out=$("$bin" 2>&1)
    rc=$?
    [ -n "$out" ] && printf '%s\n' "$out"
    line=$(printf '%s\n' "$out" | grep -E '^[^ ]+: [0-9]+ passed, [0-9]+ failed$' | tail -n 1)
    if [ -n "$line" ]; then
        p=$(printf '%s\n' "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\1/')
        f=$(printf '%s\n' "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed$/\2/')
        total_pass=$((total_pass + p))
        total_fail=$((total_fail + f))
    fi
    if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
        if [ -z "$line" ] || [ "$rc" -gt 1 ]; then
            # Crashed (signal, sanitizer abort) or never printed its summary:
            # count the program itself as one failure.
            echo "run-unit.sh: $bin exited with status $rc without a clean summary" >&2
            total_fail=$((total_fail + 1))
        fi
        bad=1
    fi
done

echo "unit: $total_pass passed, $total_fail failed"
[ "$bad" -eq 0 ] && [ "$total_fail" -eq 0 ]
