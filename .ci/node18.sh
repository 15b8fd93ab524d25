#!/bin/bash
# Debian 12's own node 18 (packages nodejs 18.x and libnode108), for running the hook and the CLI
# on the node a stock Debian hypervisor has, without installing it over this machine's node:
#
#   .ci/node18.sh fetch          download and extract it into .cache/node18/ (once), print the
#                                path of its launcher, .cache/node18/node
#   .ci/node18.sh exec CMD...    run CMD where that node works, with VIRT_AA_HOOK_TEST_NODE set to
#                                the launcher (test/run.mjs runs the node 18 suites this way)
#
# Debian's node is a small binary linked with libnode.so.108 (package libnode108): the launcher
# sets LD_LIBRARY_PATH, so hooks/qemu's NODE= may name it although libvirt's (and the tests')
# environment is minimal. libnode also reads three of its builtins (acorn, cjs-module-lexer,
# undici) from /usr/share/nodejs at start-up and aborts without them (Debian builds node with
# NODE_SHARED_BUILTIN_*_PATH; the packages node-acorn, node-cjs-module-lexer and node-undici hold
# them). Where this host has no /usr/share/nodejs of its own, `exec` runs CMD in a private mount
# namespace with the extracted /usr/share/nodejs laid over /usr/share (an overlay only CMD and its
# children see): that needs root, as CI is. Nothing is installed; the host's node is untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=$PWD/.cache/node18
LAUNCHER=$DIR/node
LEXER=usr/share/nodejs/cjs-module-lexer/lexer.js

die() { echo "node18: error: $*" >&2; exit 1; }

fetch() {
    if [ -x "$LAUNCHER" ] && [ -f "$DIR/root/$LEXER" ]; then echo "$LAUNCHER"; return; fi
    command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || die "needs apt-get and dpkg-deb (a Debian host)"
    # The newest 18.x the apt sources have (bookworm: 18.20.4 with its security updates).
    local version
    version=$(apt-cache show nodejs 2>/dev/null | sed -n 's/^Version: \(18\..*\)$/\1/p' | sort -V | tail -n 1)
    [ -n "$version" ] || die "no nodejs 18.x in the apt sources (a Debian 12 host with apt-get update done?)"
    local libnode
    libnode=$(apt-cache show "nodejs=$version" | sed -n 's/^Depends:.*\(libnode[0-9]*\).*$/\1/p' | head -n 1)
    [ -n "$libnode" ] || die "nodejs $version depends on no libnode package: not Debian's packaging?"
    # libnode's dependencies this host lacks (e.g. libc-ares2), and the three builtins' packages.
    local pkgs=("nodejs=$version" "$libnode=$version") dep
    for dep in $(apt-cache show "$libnode=$version" | sed -n 's/^Depends: //p' | head -n 1 | tr ',' '\n' | sed 's/[(|].*//; s/ //g'); do
        case $dep in
            node-acorn|node-cjs-module-lexer|node-undici) pkgs+=("$dep") ;;
            node-*) ;;
            *) dpkg -s "$dep" 2>/dev/null | grep -q '^Status: install ok installed' || pkgs+=("$dep") ;;
        esac
    done
    local tmp
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' RETURN
    # As root, apt would hand the download to its _apt user, who cannot write the temp dir.
    (cd "$tmp" && apt-get -q -o APT::Sandbox::User="$(id -un)" download "${pkgs[@]}" >&2) || die "apt-get download ${pkgs[*]} failed"
    rm -rf "$DIR"
    mkdir -p "$DIR/root"
    local deb
    for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$DIR/root"; done
    local lib
    lib=$(dirname "$(find "$DIR/root" -name 'libnode.so.*' | head -n 1)")
    cat >"$LAUNCHER" <<EOF
#!/bin/sh
# Debian's node $version from its packages (${pkgs[*]}), extracted by .ci/node18.sh.
LD_LIBRARY_PATH=$lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH} exec $DIR/root/usr/bin/node "\$@"
EOF
    chmod 755 "$LAUNCHER"
    echo "$LAUNCHER"
}

run() {
    [ $# -gt 0 ] || die "exec: name a command"
    fetch >/dev/null
    export VIRT_AA_HOOK_TEST_NODE=$LAUNCHER
    if [ -f "/$LEXER" ]; then exec "$@"; fi
    [ "$(id -u)" = 0 ] || die "this host has no /usr/share/nodejs: Debian's node 18 needs its builtins there; run as root (a private mount namespace lays ours over /usr/share), or install node-acorn node-cjs-module-lexer node-undici"
    exec unshare --mount --propagation private -- /bin/sh -c \
        'mount -t overlay overlay -o "lowerdir=$1:/usr/share" /usr/share && shift && exec "$@"' \
        sh "$DIR/root/usr/share" "$@"
}

case ${1:-} in
    fetch) fetch ;;
    exec) shift; run "$@" ;;
    *) die "usage: .ci/node18.sh fetch | exec CMD..." ;;
esac
