#!/bin/bash
# install.sh: install (or upgrade) virt-aa-hook on a libvirt host.
#
# Everything it creates or changes is recorded in /var/lib/virt-aa-hook/install-manifest, with a
# backup of every file it modifies, so that uninstall.sh can put back exactly what was there.
# Running it again changes nothing unless a shipped file changed (upgrade). Nothing on the host is
# touched before every AppArmor file it would install or change has compiled with apparmor_parser.
#
# The host-dependent parts are decided by the bundle being installed (`virt-aa-hook install-files`,
# src/install/): the attach mode from qemu.conf's security_driver and the kernel, and the NVRAM-safe
# abstraction and template derived from the host's libvirt files. It ends by printing what is
# confined and what is not (`virt-aa-hook install-summary`).
#
# Usage: install.sh [--root DIR] [--dry-run] [--reload] [--adopt-all] [--node PATH]
#                   [--libvirt-version X.Y.Z] [--source DIR]
set -eu
umask 022

PROG="virt-aa-hook install"
say() { printf '%s: %s\n' "$PROG" "$*"; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

usage() {
    cat <<'EOF'
Usage: install.sh [options]
  --root DIR              install under DIR as if it were / (packaging, tests); nothing is loaded
  --dry-run               print what would be done, change nothing
  --reload                send SIGHUP to libvirtd (its pidfile) so it finds the hook now
  --adopt-all             then switch every defined domain to the configured attach mode
                          (virt-aa-hook adopt --all: profiles are loaded before libvirt sees the
                          new XML); running guests are confined from their next start
  --node PATH             node binary the hook runs (default: node on PATH); Node >= 20.19
  --libvirt-version X.Y.Z skip detecting the libvirt version with `libvirtd --version`
  --source DIR            source tree holding dist/, hooks/ and install/ (default: this script's)
EOF
}

ROOT=/
DRY_RUN=0
RELOAD=0
ADOPT_ALL=0
NODE_BIN=
LIBVIRT_VERSION=
SRC=$(cd "$(dirname "$0")/.." && pwd -P)
while [ $# -gt 0 ]; do
    case $1 in
        --root) [ $# -ge 2 ] || die "--root needs a directory"; ROOT=$2; shift 2 ;;
        --root=*) ROOT=${1#--root=}; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        --reload) RELOAD=1; shift ;;
        --adopt-all) ADOPT_ALL=1; shift ;;
        --node) [ $# -ge 2 ] || die "--node needs a path"; NODE_BIN=$2; shift 2 ;;
        --node=*) NODE_BIN=${1#--node=}; shift ;;
        --libvirt-version) [ $# -ge 2 ] || die "--libvirt-version needs X.Y.Z"; LIBVIRT_VERSION=$2; shift 2 ;;
        --libvirt-version=*) LIBVIRT_VERSION=${1#--libvirt-version=}; shift ;;
        --source) [ $# -ge 2 ] || die "--source needs a directory"; SRC=$2; shift 2 ;;
        --source=*) SRC=${1#--source=}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

case $ROOT in /*) ;; *) die "--root $ROOT: must be an absolute path" ;; esac
[ -d "$ROOT" ] || die "--root $ROOT: not a directory"
R=$(cd "$ROOT" && pwd -P)
[ "$R" = / ] && R=
# adopt talks to the running libvirtd (virsh): it has no meaning for a root other than this host's.
[ "$ADOPT_ALL" = 1 ] && [ -n "$R" ] && die "--adopt-all adopts this host's domains through virsh: not with --root"
# Host path -> path on this filesystem.
p() { printf '%s%s' "$R" "$1"; }

# Host paths of everything we install.
LIB=/usr/lib/virt-aa-hook
BUNDLE=$LIB/virt-aa-hook.cjs
LAUNCHER=$LIB/qemu-hook
WRAPPER=$LIB/qemu-wrapper
WRAPPER_BIN=$LIB/bin
HOOKS=/etc/libvirt/hooks
HOOK_D_LINK=$HOOKS/qemu.d/virt-aa-hook
HOOK_MAIN=$HOOKS/qemu
CHAINED=$HOOKS/qemu.virt-aa-hook-chained
CONFIG=/etc/libvirt/virt-aa-hook.conf
AA=/etc/apparmor.d
HOOK_PROFILE=$AA/usr.lib.virt-aa-hook.qemu-hook
LIBVIRTD_LOCAL=$AA/local/usr.sbin.libvirtd
TEMPLATE=$AA/libvirt/TEMPLATE.qemu
ABSTRACTION=$AA/abstractions/libvirt-qemu
OUR_ABSTRACTION=$AA/abstractions/virt-aa-hook-qemu
OUR_TEMPLATE=$AA/libvirt/TEMPLATE.virt-aa-hook-qemu
COMMAND=/usr/sbin/virt-aa-hook
DROPIN=/etc/systemd/system/libvirtd.service.d/virt-aa-hook.conf
STATE=/var/lib/virt-aa-hook
MANIFEST=$STATE/install-manifest
PRISTINE=$STATE/pristine
BACKUPS=$STATE/backup
PARSER=/usr/sbin/apparmor_parser
BEGIN_MARK="# BEGIN virt-aa-hook"
END_MARK="# END virt-aa-hook"

# ---------------------------------------------------------------- checks (nothing changes yet)

for f in dist/virt-aa-hook.cjs hooks/qemu hooks/qemu-wrapper install/virt-aa-hook.conf \
         install/apparmor/usr.lib.virt-aa-hook.qemu-hook install/apparmor/usr.sbin.libvirtd.local \
         install/apparmor/libvirt/TEMPLATE.qemu install/apparmor/abstractions/libvirt-qemu; do
    [ -f "$SRC/$f" ] || die "$SRC/$f: missing from the source tree (run 'npm run build' for dist/)"
done
for key in NODE BUNDLE; do
    n=$(grep -c "^$key=" "$SRC/hooks/qemu" || true)
    [ "$n" = 1 ] || die "$SRC/hooks/qemu: expected exactly one $key= line to rewrite, found $n"
done
n=$(grep -c '^ALLOW_ENV_OVERRIDES=yes$' "$SRC/hooks/qemu-wrapper" || true)
[ "$n" = 1 ] || die "$SRC/hooks/qemu-wrapper: expected exactly one ALLOW_ENV_OVERRIDES=yes line, found $n"

# Node: an absolute path without characters that need quoting in sh or AppArmor, new enough.
if [ -z "$NODE_BIN" ]; then
    NODE_BIN=$(command -v node || true)
    [ -n "$NODE_BIN" ] || die "no node on PATH: pass --node /path/to/node (Node >= 20.19)"
fi
case $NODE_BIN in /*) ;; *) die "--node $NODE_BIN: must be an absolute path" ;; esac
case $NODE_BIN in *[!A-Za-z0-9/._+-]*) die "--node $NODE_BIN: path has characters the hook launcher cannot carry" ;; esac
[ -f "$NODE_BIN" ] && [ -x "$NODE_BIN" ] || die "--node $NODE_BIN: not an executable file"
NODE_REAL=$(readlink -f "$NODE_BIN")
case $NODE_REAL in *[!A-Za-z0-9/._+-]*) die "$NODE_REAL (real path of $NODE_BIN): has characters AppArmor rules cannot carry" ;; esac
NODE_VERSION=$("$NODE_BIN" -e 'process.stdout.write(process.versions.node)' 2>/dev/null || true)
case $NODE_VERSION in
    [0-9]*.[0-9]*.[0-9]*) ;;
    *) die "$NODE_BIN: cannot tell its version (is it node?)" ;;
esac
node_major=${NODE_VERSION%%.*}
node_minor=${NODE_VERSION#*.}; node_minor=${node_minor%%.*}
if [ "$node_major" -lt 20 ] || { [ "$node_major" -eq 20 ] && [ "$node_minor" -lt 19 ]; }; then
    die "$NODE_BIN is Node $NODE_VERSION; virt-aa-hook needs Node >= 20.19 (pass --node with a newer one)"
fi

# libvirt: qemu.d/ hook directories exist since 6.5.
if [ -z "$LIBVIRT_VERSION" ]; then
    for daemon in /usr/sbin/libvirtd /usr/sbin/virtqemud; do
        if [ -x "$daemon" ]; then
            LIBVIRT_VERSION=$("$daemon" --version 2>/dev/null | sed -n 's/.* \([0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' | head -n 1)
            [ -n "$LIBVIRT_VERSION" ] && break
        fi
    done
    [ -n "$LIBVIRT_VERSION" ] || die "cannot detect the libvirt version (no /usr/sbin/libvirtd or virtqemud): pass --libvirt-version"
fi
case $LIBVIRT_VERSION in
    [0-9]*.[0-9]*) ;;
    *) die "--libvirt-version $LIBVIRT_VERSION: expected X.Y or X.Y.Z" ;;
esac
lv_major=${LIBVIRT_VERSION%%.*}
lv_minor=${LIBVIRT_VERSION#*.}; lv_minor=${lv_minor%%.*}
if [ "$lv_major" -gt 6 ] || { [ "$lv_major" -eq 6 ] && [ "$lv_minor" -ge 5 ]; }; then
    HOOK_DIRS=1
else
    HOOK_DIRS=0
fi

# The emulator directory the wrapper links stand in for: from an existing config, else /usr/bin.
EMULATOR_DIR=/usr/bin
if [ -f "$(p "$CONFIG")" ]; then
    v=$(sed -n 's/^[ \t]*emulator_dir[ \t]*=[ \t]*"\{0,1\}\([^"]*\)"\{0,1\}[ \t]*$/\1/p' "$(p "$CONFIG")" | tail -n 1)
    [ -n "$v" ] && EMULATOR_DIR=$v
fi
case $EMULATOR_DIR in /*) ;; *) die "$CONFIG: emulator_dir $EMULATOR_DIR is not absolute" ;; esac

# The admin command on PATH is ours to write only if it is ours already, or absent.
if { [ -e "$(p "$COMMAND")" ] || [ -L "$(p "$COMMAND")" ]; } && ! grep -q '^# virt-aa-hook command' "$(p "$COMMAND")" 2>/dev/null; then
    die "$COMMAND exists and is not virt-aa-hook's: move it away and run again"
fi

# ---------------------------------------------------------------- content we install

WORK=$(mktemp -d "${TMPDIR:-/tmp}/virt-aa-hook-install.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

sed -e "s|^NODE=.*|NODE=$NODE_BIN|" -e "s|^BUNDLE=.*|BUNDLE=$BUNDLE|" "$SRC/hooks/qemu" > "$WORK/qemu-hook"
sed -e 's|^ALLOW_ENV_OVERRIDES=yes$|ALLOW_ENV_OVERRIDES=no|' "$SRC/hooks/qemu-wrapper" > "$WORK/qemu-wrapper"
sed -e "s|^@{virt_aa_hook_node}=.*|@{virt_aa_hook_node}=$NODE_REAL|" \
    "$SRC/install/apparmor/usr.lib.virt-aa-hook.qemu-hook" > "$WORK/hook-profile"
grep -qx "@{virt_aa_hook_node}=$NODE_REAL" "$WORK/hook-profile" \
    || die "$SRC/install/apparmor/usr.lib.virt-aa-hook.qemu-hook: no @{virt_aa_hook_node}= line to rewrite"

# The command admins run, on PATH: node and the bundle by absolute path, like the hook launcher.
cat > "$WORK/command" <<EOF
#!/bin/sh
# virt-aa-hook command (installed by virt-aa-hook install.sh; uninstall.sh removes it).
exec $NODE_BIN $BUNDLE "\$@"
EOF

# libvirtd (systemd): load the profiles adopted domains' static labels name before libvirtd reads
# their definitions, or it drops them (src/adopted/load.ts). "-": a failure must not stop libvirtd.
cat > "$WORK/dropin" <<EOF
# Installed by virt-aa-hook install.sh (uninstall.sh removes it). libvirt refuses a domain whose
# static AppArmor label names a profile that is not loaded: load them before libvirtd starts.
[Unit]
After=apparmor.service

[Service]
ExecStartPre=-$COMMAND load-adopted
EOF

# Config (used only where none exists), abstraction and template derived from this host.
mkdir "$WORK/derived"
"$NODE_BIN" "$SRC/dist/virt-aa-hook.cjs" --root "${R:-/}" install-files --out "$WORK/derived" \
    --shipped-config "$SRC/install/virt-aa-hook.conf" \
    --fallback-abstraction "$SRC/install/apparmor/abstractions/libvirt-qemu" \
    --fallback-template "$SRC/install/apparmor/libvirt/TEMPLATE.qemu" \
    || die "cannot derive the config, abstraction and template for this host"

# libvirt < 6.5 runs one qemu hook only: a foreign one is kept running through this chain.
cat > "$WORK/chain" <<EOF
#!/bin/sh
# virt-aa-hook chain (written by virt-aa-hook install.sh; uninstall.sh restores the original hook).
# This libvirt runs only /etc/libvirt/hooks/qemu, so this runs the hook that was here before
# ($CHAINED) and then virt-aa-hook, with the same arguments and the same XML on stdin. For
# migrate and restore, XML printed by the first is what the second gets, and the last XML printed
# is what libvirt gets.
set -eu
tmp=\$(/bin/mktemp)
trap '/bin/rm -f "\$tmp" "\$tmp.out"' EXIT
/bin/cat > "\$tmp"
$CHAINED "\$@" < "\$tmp" > "\$tmp.out"
case \${2:-} in
    migrate|restore)
        if [ -s "\$tmp.out" ]; then /bin/cat "\$tmp.out" > "\$tmp"; fi
        $LAUNCHER "\$@" < "\$tmp" > "\$tmp.out.2" || { rc=\$?; /bin/rm -f "\$tmp.out.2"; exit "\$rc"; }
        if [ -s "\$tmp.out.2" ]; then /bin/cat "\$tmp.out.2"; else /bin/cat "\$tmp.out"; fi
        /bin/rm -f "\$tmp.out.2"
        ;;
    *) $LAUNCHER "\$@" < "\$tmp" ;;
esac
EOF

# local/usr.sbin.libvirtd with our block replaced (or appended), everything else as it was.
local_with_block() {
    if [ -f "$(p "$LIBVIRTD_LOCAL")" ]; then
        awk -v b="$BEGIN_MARK" -v e="$END_MARK" '
            index($0, b) == 1 { skip = 1; next }
            skip && index($0, e) == 1 { skip = 0; next }
            !skip { print }' "$(p "$LIBVIRTD_LOCAL")"
    fi
    cat "$SRC/install/apparmor/usr.sbin.libvirtd.local"
}
local_with_block > "$WORK/libvirtd-local"

# ---------------------------------------------------------------- compile before touching anything

if [ -x "$PARSER" ]; then
    if [ -d /sys/kernel/security/apparmor/features ]; then
        FEATURES=()
    elif [ -f /usr/share/apparmor-features/features ]; then
        FEATURES=(-M /usr/share/apparmor-features/features)
    else
        FEATURES=()
    fi
    STAGE=$WORK/apparmor.d
    if [ -d "$(p "$AA")" ]; then cp -a "$(p "$AA")" "$STAGE"; else mkdir -p "$STAGE"; fi
    for d in tunables abstractions abi; do
        # A root without the base policy (a bare packaging root) borrows the host's to compile.
        [ -e "$STAGE/$d" ] || { [ -d "$AA/$d" ] && cp -a "$AA/$d" "$STAGE/$d"; } || true
    done
    mkdir -p "$STAGE/libvirt" "$STAGE/abstractions" "$STAGE/local"
    [ -e "$STAGE/libvirt/TEMPLATE.qemu" ] || cp "$SRC/install/apparmor/libvirt/TEMPLATE.qemu" "$STAGE/libvirt/TEMPLATE.qemu"
    [ -e "$STAGE/abstractions/libvirt-qemu" ] || cp "$SRC/install/apparmor/abstractions/libvirt-qemu" "$STAGE/abstractions/libvirt-qemu"
    cp "$WORK/derived/virt-aa-hook-qemu" "$STAGE/abstractions/virt-aa-hook-qemu"
    cp "$WORK/derived/TEMPLATE.virt-aa-hook-qemu" "$STAGE/libvirt/TEMPLATE.virt-aa-hook-qemu"
    sed 's/LIBVIRT_TEMPLATE/libvirt-00000000-0000-4000-8000-000000000001/' "$STAGE/libvirt/TEMPLATE.virt-aa-hook-qemu" \
        > "$STAGE/libvirt/virt-aa-hook-install-check-ours"
    cp "$WORK/hook-profile" "$STAGE/usr.lib.virt-aa-hook.qemu-hook"
    cp "$WORK/libvirtd-local" "$STAGE/local/usr.sbin.libvirtd"
    sed 's/LIBVIRT_TEMPLATE/libvirt-00000000-0000-4000-8000-000000000000/' "$STAGE/libvirt/TEMPLATE.qemu" \
        > "$STAGE/libvirt/virt-aa-hook-install-check"
    checks=(usr.lib.virt-aa-hook.qemu-hook libvirt/virt-aa-hook-install-check libvirt/virt-aa-hook-install-check-ours)
    [ -f "$STAGE/usr.sbin.libvirtd" ] && checks+=(usr.sbin.libvirtd)
    for prof in "${checks[@]}"; do
        if ! out=$(cd "$STAGE" && "$PARSER" -QK "${FEATURES[@]}" -I "$STAGE" --base "$STAGE" "$prof" 2>&1); then
            die "AppArmor policy would not compile ($prof): $(printf '%s' "$out" | tr '\n' ' ')"
        fi
    done
else
    say "warning: $PARSER not found: AppArmor files installed without a compile check"
fi

# ---------------------------------------------------------------- actions (recorded in the manifest)

CHANGED=0
act() {
    CHANGED=1
    if [ "$DRY_RUN" = 1 ]; then say "would $*"; else say "$*"; fi
}

in_manifest() { [ -f "$(p "$MANIFEST")" ] && grep -Fxq -- "$1" "$(p "$MANIFEST")"; }

record() {
    [ "$DRY_RUN" = 1 ] && return 0
    in_manifest "$1" || printf '%s\n' "$1" >> "$(p "$MANIFEST")"
}

# Was this path put there (or taken over) by an earlier run?
ours() { in_manifest "created $1" || in_manifest "modified $1"; }

PENDING_DIRS=()
ensure_dir() {
    local host=$1
    [ -d "$(p "$host")" ] && return 0
    ensure_dir "$(dirname "$host")"
    act "create directory $host"
    [ "$DRY_RUN" = 1 ] && return 0
    mkdir -m 0755 "$(p "$host")"
    # Directories made before the manifest exists (the state directory and its parents) are
    # recorded as soon as it does.
    if [ -f "$(p "$MANIFEST")" ]; then record "created-dir $host"; else PENDING_DIRS+=("$host"); fi
}

# Back up a file we are about to change for the first time; record what uninstall must undo.
take_over() {
    local host=$1
    ours "$host" && return 0
    if [ -e "$(p "$host")" ] || [ -L "$(p "$host")" ]; then
        ensure_dir "$(dirname "$BACKUPS$host")"
        act "back up $host to $BACKUPS$host"
        [ "$DRY_RUN" = 1 ] && return 0
        cp -a "$(p "$host")" "$(p "$BACKUPS$host")"
        record "modified $host"
    else
        record "created $host"
    fi
}

# Install file content (from a file) with a mode, atomically, only when something differs.
put_file() {
    local from=$1 host=$2 mode=$3 dest
    dest=$(p "$host")
    if [ -f "$dest" ] && [ ! -L "$dest" ] && cmp -s "$from" "$dest" \
        && [ "$(stat -c %a "$dest")" = "${mode#0}" ]; then
        return 0
    fi
    ensure_dir "$(dirname "$host")"
    take_over "$host"
    act "install $host (mode $mode)"
    [ "$DRY_RUN" = 1 ] && return 0
    cp "$from" "$dest.virt-aa-hook-new"
    chmod "$mode" "$dest.virt-aa-hook-new"
    mv -f "$dest.virt-aa-hook-new" "$dest"
}

put_link() {
    local target=$1 host=$2 dest
    dest=$(p "$host")
    [ -L "$dest" ] && [ "$(readlink "$dest")" = "$target" ] && return 0
    ensure_dir "$(dirname "$host")"
    take_over "$host"
    act "link $host -> $target"
    [ "$DRY_RUN" = 1 ] && return 0
    rm -f "$dest"
    ln -s "$target" "$dest"
}

# Files the host may already have (its own, or edited by the admin): installed only when absent.
# A copy of what we installed is kept in $PRISTINE, so uninstall can tell an edited file (kept)
# from an untouched one (removed).
put_if_absent() {
    local from=$1 host=$2 mode=$3
    if [ -e "$(p "$host")" ] || [ -L "$(p "$host")" ]; then
        ours "$host" || say "kept existing $host"
        return 0
    fi
    put_file "$from" "$host" "$mode"
    [ "$DRY_RUN" = 1 ] && return 0
    mkdir -p "$(p "$(dirname "$PRISTINE$host")")"
    cp "$from" "$(p "$PRISTINE$host")"
}

# The manifest first, so that everything after it is recorded as it happens.
ensure_dir "$STATE"
if [ "$DRY_RUN" = 0 ] && [ ! -f "$(p "$MANIFEST")" ]; then
    : > "$(p "$MANIFEST")"
    for d in "${PENDING_DIRS[@]}"; do record "created-dir $d"; done
fi

put_file "$SRC/dist/virt-aa-hook.cjs" "$BUNDLE" 0644
# The loader hooks/qemu runs the bundle through, beside it (its LOADER= line follows BUNDLE=);
# optional like the caches: without it the hook runs the bundle directly.
if [ -f "$SRC/dist/loader.cjs" ]; then
    put_file "$SRC/dist/loader.cjs" "$LIB/loader.cjs" 0644
fi
# The V8 code caches `npm run build` made for this bundle (docs/performance.md); optional: without
# them, or with a different node, the hook compiles the bundle as usual.
for cache in "$SRC"/dist/virt-aa-hook.cjs.*.v8cache; do
    [ -f "$cache" ] || continue
    put_file "$cache" "$LIB/${cache##*/}" 0644
done
put_file "$WORK/qemu-hook" "$LAUNCHER" 0755
put_file "$WORK/qemu-wrapper" "$WRAPPER" 0755
ensure_dir "$WRAPPER_BIN"
found=0
for emu in "$(p "$EMULATOR_DIR")"/qemu-system-* "$(p "$EMULATOR_DIR")"/qemu-kvm "$(p "$EMULATOR_DIR")"/kvm; do
    [ -f "$emu" ] && [ -x "$emu" ] || continue
    found=1
    put_link ../qemu-wrapper "$WRAPPER_BIN/${emu##*/}"
done
[ "$found" = 1 ] || say "warning: no QEMU emulator in $EMULATOR_DIR: no wrapper links made (run again after installing QEMU)"

CONFIG_WRITTEN=0
if [ ! -e "$(p "$CONFIG")" ] && [ ! -L "$(p "$CONFIG")" ]; then CONFIG_WRITTEN=1; fi
put_if_absent "$WORK/derived/virt-aa-hook.conf" "$CONFIG" 0644
put_if_absent "$SRC/install/apparmor/libvirt/TEMPLATE.qemu" "$TEMPLATE" 0644
put_if_absent "$SRC/install/apparmor/abstractions/libvirt-qemu" "$ABSTRACTION" 0644
# Ours, derived from the host's files at every run: an upgraded libvirt abstraction is followed.
put_file "$WORK/derived/virt-aa-hook-qemu" "$OUR_ABSTRACTION" 0644
put_file "$WORK/derived/TEMPLATE.virt-aa-hook-qemu" "$OUR_TEMPLATE" 0644
put_file "$WORK/command" "$COMMAND" 0755
DROPIN_CHANGED=0
if [ -d "$(p /etc/systemd/system)" ]; then
    before=$CHANGED; CHANGED=0
    put_file "$WORK/dropin" "$DROPIN" 0644
    DROPIN_CHANGED=$CHANGED
    [ "$before" = 1 ] && CHANGED=1
fi
put_file "$WORK/hook-profile" "$HOOK_PROFILE" 0644
if [ -f "$(p "$LIBVIRTD_LOCAL")" ]; then
    put_file "$WORK/libvirtd-local" "$LIBVIRTD_LOCAL" "0$(stat -c %a "$(p "$LIBVIRTD_LOCAL")")"
else
    put_file "$WORK/libvirtd-local" "$LIBVIRTD_LOCAL" 0644
fi

# The hook itself: a link to the launcher, so libvirtd's "/etc/libvirt/hooks/** rmix" never
# matches it and the local override can send it to its own profile.
is_our_hook() {
    local f
    f=$(p "$1")
    { [ -L "$f" ] && [ "$(readlink "$f")" = "$LAUNCHER" ]; } || { [ -f "$f" ] && grep -q '^# virt-aa-hook chain' "$f"; }
}
if [ "$HOOK_DIRS" = 1 ]; then
    if { [ -e "$(p "$HOOK_D_LINK")" ] || [ -L "$(p "$HOOK_D_LINK")" ]; } && ! is_our_hook "$HOOK_D_LINK"; then
        die "$HOOK_D_LINK exists and is not virt-aa-hook's: move it away and run again"
    fi
    put_link "$LAUNCHER" "$HOOK_D_LINK"
    if { [ -e "$(p "$HOOK_MAIN")" ] || [ -L "$(p "$HOOK_MAIN")" ]; } && ! is_our_hook "$HOOK_MAIN"; then
        say "kept $HOOK_MAIN (not ours): libvirt $LIBVIRT_VERSION runs it, then $HOOK_D_LINK"
    fi
elif { [ -e "$(p "$HOOK_MAIN")" ] || [ -L "$(p "$HOOK_MAIN")" ]; } && ! is_our_hook "$HOOK_MAIN"; then
    # libvirt < 6.5 runs this one hook only: move the foreign hook aside and chain it.
    [ -e "$(p "$CHAINED")" ] && die "$CHAINED already exists: cannot move $HOOK_MAIN there"
    act "move $HOOK_MAIN (not ours) to $CHAINED; $HOOK_MAIN now runs it, then virt-aa-hook"
    if [ "$DRY_RUN" = 0 ]; then
        mv "$(p "$HOOK_MAIN")" "$(p "$CHAINED")"
        record "moved $HOOK_MAIN $CHAINED"
    fi
    put_file "$WORK/chain" "$HOOK_MAIN" 0755
elif [ -e "$(p "$CHAINED")" ]; then
    put_file "$WORK/chain" "$HOOK_MAIN" 0755
else
    put_link "$LAUNCHER" "$HOOK_MAIN"
fi

# ---------------------------------------------------------------- load and reload

if [ -z "$R" ] && [ "$DRY_RUN" = 0 ] && [ "$CHANGED" = 1 ]; then
    if [ -d /sys/kernel/security/apparmor ] && [ -x "$PARSER" ]; then
        "$PARSER" -r "$HOOK_PROFILE" || die "cannot load $HOOK_PROFILE"
        if [ -f "$AA/usr.sbin.libvirtd" ]; then
            "$PARSER" -r "$AA/usr.sbin.libvirtd" || die "cannot reload $AA/usr.sbin.libvirtd"
        fi
        say "loaded the virt-aa-hook profile and reloaded libvirtd's"
    else
        say "AppArmor is not enabled in this kernel: profiles installed, not loaded"
    fi
fi

if [ -z "$R" ] && [ "$DRY_RUN" = 0 ] && [ "$DROPIN_CHANGED" = 1 ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || say "warning: systemctl daemon-reload failed: libvirtd.service reads $DROPIN at its next reload"
fi

if [ "$RELOAD" = 1 ]; then
    pid=
    for pf in /run/libvirtd.pid /var/run/libvirtd.pid /run/virtqemud.pid; do
        if [ -f "$(p "$pf")" ]; then pid=$(head -n 1 "$(p "$pf")"); break; fi
    done
    case $pid in
        ''|*[!0-9]*) die "cannot reload libvirtd: no usable pidfile (/run/libvirtd.pid, /run/virtqemud.pid)" ;;
    esac
    if [ "$DRY_RUN" = 1 ]; then
        say "would send SIGHUP to libvirtd (pid $pid)"
    else
        kill -HUP "$pid" || die "cannot send SIGHUP to libvirtd (pid $pid)"
        say "sent SIGHUP to libvirtd (pid $pid): it now runs the hook"
    fi
elif [ "$CHANGED" = 1 ]; then
    say "reload libvirtd so it finds the hook: systemctl reload libvirtd, or kill -HUP \$(cat /run/libvirtd.pid)"
fi

if [ "$ADOPT_ALL" = 1 ]; then
    if [ "$DRY_RUN" = 1 ]; then
        say "would run: $COMMAND adopt --all"
    else
        say "running: $COMMAND adopt --all"
        "$COMMAND" adopt --all || die "virt-aa-hook adopt --all failed for the domains named above (the others are adopted)"
    fi
fi

if [ "$DRY_RUN" = 1 ]; then
    [ "$CHANGED" = 0 ] && say "already installed, nothing to do"
    say "dry run: nothing was changed"
    exit 0
fi
written=()
[ "$CONFIG_WRITTEN" = 1 ] && written=(--config-written)
"$NODE_BIN" "$(p "$BUNDLE")" --root "${R:-/}" install-summary "${written[@]}" \
    || say "warning: cannot tell what is confined: run virt-aa-hook doctor"
if [ "$CHANGED" = 0 ]; then
    say "already installed, nothing to do"
else
    say "done; check with: virt-aa-hook status; virt-aa-hook doctor"
fi
