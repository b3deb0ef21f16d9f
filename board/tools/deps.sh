#!/bin/sh
# deps.sh -- make sure what a stage needs is installed (Debian 12).
#
#   sh board/tools/deps.sh build|test|bench [more stages...]
#
# Fast no-op when everything is there (one dpkg-query call). Otherwise, as
# root: one `apt-get update`, then `apt-get install -y` of what is missing.
# Not root: prints the exact command to run and exits 1.
set -eu

# libmbedtls-dev: CONFIG_TLS (default y) links Debian's mbedTLS 2.28 on the host.
pkgs_build="gcc libc6-dev make python3 python3-kconfiglib libmbedtls-dev zlib1g-dev openssl"
pkgs_test="python3-pytest curl clang libclang-rt-14-dev openssl"
# Real clients driven by tests/integration/test_clients_*.py (issue 5).
pkgs_test="$pkgs_test isync offlineimap3 mutt fetchmail tmux nodejs"
# Debian's npm package conflicts with NodeSource's nodejs, which has npm in it.
command -v npm >/dev/null 2>&1 || pkgs_test="$pkgs_test npm"
# Real clients for interoperability tests and the bench (later issues).
pkgs_bench="isync offlineimap3 mutt dovecot-imapd"

if [ $# -eq 0 ]; then
    echo "usage: $0 build|test|bench..." >&2
    exit 2
fi

want=""
for stage in "$@"; do
    case "$stage" in
        build) want="$want $pkgs_build" ;;
        test)  want="$want $pkgs_build $pkgs_test" ;;
        bench) want="$want $pkgs_build $pkgs_test $pkgs_bench" ;;
        *) echo "deps.sh: unknown stage '$stage' (build, test, bench)" >&2; exit 2 ;;
    esac
done

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps.sh: not a Debian system (no dpkg-query); install by hand:$want" >&2
    exit 1
fi

# One dpkg-query for all packages; unknown packages make it print nothing
# for them (and complain on stderr), which we treat as missing.
installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' $want 2>/dev/null \
            | awk '$2 == "ii" { print $1 }') || true
missing=""
for p in $want; do
    case " $(echo $installed) " in
        *" $p "*) ;;
        *) case " $missing " in *" $p "*) ;; *) missing="$missing $p" ;; esac ;;
    esac
done

# The build insists on Debian's interpreter (kconfiglib lives there, not in
# a pyenv or venv python that may come first on PATH).
if [ -z "$missing" ] && [ -x /usr/bin/python3 ] \
   && /usr/bin/python3 -c 'import kconfiglib' 2>/dev/null; then
    exit 0
fi
if [ -z "$missing" ]; then
    # Packages are marked installed but the module does not import: reinstall.
    missing=" python3-kconfiglib"
fi

cmd="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "picoimapd needs these Debian packages:$missing" >&2
    echo "run as root:" >&2
    echo "    apt-get update && $cmd" >&2
    exit 1
fi

echo "deps.sh: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# DEPS_APT_UPDATED=1: the caller (.ci/run) already ran apt-get update.
if [ "${DEPS_APT_UPDATED:-0}" != 1 ]; then
    apt-get update -q
fi
$cmd
