#!/bin/sh
# fetch-src.sh -- unpack Debian's source packages of lwIP and mbedTLS (and,
# with -d, download binary packages such as a target kernel or busybox) using
# a private apt state folder, so the host's apt sources and lists stay
# untouched.
#
#   sh board/tools/fetch-src.sh [-o DIR] src PKG...      -> DIR/src/PKG-VERSION/
#   sh board/tools/fetch-src.sh [-o DIR] deb ARCH PKG... -> DIR/deb/ARCH/*.deb
#   sh board/tools/fetch-src.sh [-o DIR] dep ARCH PKG    -> prints the package
#        PKG (a metapackage such as linux-image-arm64) depends on first
#
# DIR defaults to build-deps (kept by make clean).
# Idempotent: a package already unpacked or
# downloaded is not fetched again. Needs dpkg-dev (dpkg-source) and apt.
set -eu

out=build-deps
if [ "${1:-}" = "-o" ]; then
    out=$2
    shift 2
fi
mode=${1:?usage: fetch-src.sh [-o DIR] src PKG... | deb ARCH PKG...}
shift
mkdir -p "$out"
out=$(cd "$out" && pwd)
apt_dir=$out/apt

# The private apt tree: our own sources (deb and deb-src for bookworm), lists,
# cache and status. The host's keyring is used to check signatures.
setup_apt() {
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" \
             "$apt_dir/etc/sources.list.d" "$apt_dir/etc/preferences.d" \
             "$apt_dir/etc/apt.conf.d"
    : > "$apt_dir/status"
    : > "$apt_dir/etc/sources.list"
    mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    archs="amd64 arm64 armhf mipsel mips"
    cat > "$apt_dir/etc/sources.list.d/bookworm.sources" <<SRC
Types: deb deb-src
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Architectures: $archs
Signed-By: $keyring
SRC
    # APT_CONFIG points apt at a config that names only the private tree;
    # the host's /etc/apt/apt.conf.d is not read.
    cat > "$apt_dir/apt.conf" <<CONF
Dir::Etc "$apt_dir/etc";
Dir::Etc::sourcelist "$apt_dir/etc/sources.list";
Dir::Etc::sourceparts "$apt_dir/etc/sources.list.d";
Dir::Etc::parts "$apt_dir/etc/apt.conf.d";
Dir::Etc::preferencesparts "$apt_dir/etc/preferences.d";
Dir::State "$apt_dir";
Dir::State::lists "$apt_dir/lists";
Dir::State::status "$apt_dir/status";
Dir::Cache "$apt_dir/cache";
Dir::Cache::archives "$apt_dir/cache/archives";
APT::Architecture "amd64";
APT::Architectures { "amd64"; "arm64"; "armhf"; "mipsel"; "mips"; };
APT::Sandbox::User "root";
Acquire::Languages "none";
CONF
}

apt_priv() {
    APT_CONFIG=$apt_dir/apt.conf apt-get -q "$@"
}

update_once() {
    stamp=$apt_dir/updated
    setup_apt
    # Lists older than a day are refreshed.
    if [ -f "$stamp" ] && [ -n "$(find "$stamp" -mtime -1 2>/dev/null)" ]; then
        return
    fi
    apt_priv update
    touch "$stamp"
}

case "$mode" in
src)
    if ! command -v dpkg-source >/dev/null; then
        if [ "$(id -u)" -ne 0 ]; then
            echo "fetch-src.sh: needs dpkg-dev (apt-get install dpkg-dev)" >&2
            exit 1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends dpkg-dev >&2
    fi
    mkdir -p "$out/src"
    for pkg in "$@"; do
        if ls -d "$out/src/$pkg"-[0-9]* >/dev/null 2>&1; then
            continue
        fi
        update_once
        dl=$out/src/.dl-$pkg
        rm -rf "$dl"
        mkdir -p "$dl"
        (cd "$dl" && APT_CONFIG=$apt_dir/apt.conf apt-get -q source --download-only "$pkg")
        dsc=$(ls "$dl"/*.dsc | head -n 1)
        (cd "$out/src" && dpkg-source --no-check -x "$dsc" >/dev/null)
        echo "fetch-src.sh: unpacked $(ls -d "$out/src/$pkg"-[0-9]*)"
    done
    ;;
deb)
    arch=${1:?arch}
    shift
    mkdir -p "$out/deb/$arch"
    for pkg in "$@"; do
        if ls "$out/deb/$arch/${pkg}"_*.deb >/dev/null 2>&1; then
            continue
        fi
        update_once
        (cd "$out/deb/$arch" && APT_CONFIG=$apt_dir/apt.conf apt-get -q download "$pkg:$arch")
    done
    ;;
dep)
    arch=${1:?arch}
    update_once >&2
    APT_CONFIG=$apt_dir/apt.conf apt-cache depends "$2:$arch" 2>/dev/null |
        sed -n 's/^ *Depends: \([^:]*\).*/\1/p' | head -n 1
    ;;
*)
    echo "fetch-src.sh: unknown mode $mode" >&2
    exit 2
    ;;
esac
