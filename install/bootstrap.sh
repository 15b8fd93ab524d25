# bootstrap.sh: sourced by install.sh and uninstall.sh. The installer itself is TypeScript, in the
# bundle of this source tree (src/install/: `virt-aa-hook install` / `uninstall`); this finds a
# node that can run it and hands over every other argument unchanged.
#
# --node PATH (default: node on PATH) is the node that runs the bundle, and for install also the
# one the hook will run: an absolute path to Node >= 18.19 (Debian 12's nodejs). --source DIR (default: this script's
# tree) holds dist/virt-aa-hook.cjs.
bootstrap() {
    local command=$1 node= src args=()
    shift
    die() { printf 'virt-aa-hook %s: error: %s\n' "$command" "$*" >&2; exit 1; }
    # Builtins only until node is found: no PATH needed to get this far.
    src=${BASH_SOURCE[0]%/*}
    [ "$src" != "${BASH_SOURCE[0]}" ] || src=.
    src=$(cd "$src/.." && pwd -P)
    while [ $# -gt 0 ]; do
        case $1 in
            --node) [ $# -ge 2 ] || die "--node needs a path"; node=$2; shift 2 ;;
            --node=*) node=${1#--node=}; shift ;;
            --source) [ $# -ge 2 ] || die "--source needs a directory"; src=$2; shift 2 ;;
            --source=*) src=${1#--source=}; shift ;;
            -h) args+=(--help); shift ;;
            *) args+=("$1"); shift ;;
        esac
    done
    if [ -z "$node" ]; then
        node=$(command -v node || true)
        [ -n "$node" ] || die "no node on PATH: pass --node /path/to/node (Node >= 18.19)"
    fi
    case $node in /*) ;; *) die "--node $node: must be an absolute path" ;; esac
    [ -f "$node" ] && [ -x "$node" ] || die "--node $node: not an executable file"
    local version
    version=$("$node" -e 'process.stdout.write(process.versions.node)' 2>/dev/null || true)
    case $version in [0-9]*.[0-9]*.[0-9]*) ;; *) die "$node: cannot tell its version (is it node?)" ;; esac
    local major=${version%%.*} minor=${version#*.}
    minor=${minor%%.*}
    # The bundle runs on Debian 12's and Ubuntu 24.04's node 18 (build.mjs targets it).
    if [ "$major" -lt 18 ] || { [ "$major" -eq 18 ] && [ "$minor" -lt 19 ]; }; then
        die "$node is Node $version; virt-aa-hook needs Node >= 18.19 (pass --node with a newer one)"
    fi
    [ -f "$src/dist/virt-aa-hook.cjs" ] || die "$src/dist/virt-aa-hook.cjs: missing from the source tree (run 'npm run build' for dist/)"
    [ "$command" = install ] && args=(--node "$node" --source "$src" "${args[@]}")
    umask 022
    exec "$node" "$src/dist/virt-aa-hook.cjs" "$command" "${args[@]}"
}
