#!/bin/bash
# uninstall.sh: remove virt-aa-hook and put back exactly what install.sh found.
#
# Works from /var/lib/virt-aa-hook/install-manifest, last entry first: files and links install.sh
# created are removed, files it changed are restored from their backups, a foreign qemu hook it
# moved aside is moved back, and directories it created are removed when empty. Per-guest profiles
# in /etc/apparmor.d/libvirt/ are left alone: they are the admin's.
#
# Usage: uninstall.sh [--root DIR] [--dry-run] [--reload] [--force]
set -eu
umask 022

PROG="virt-aa-hook uninstall"
say() { printf '%s: %s\n' "$PROG" "$*"; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

ROOT=/
DRY_RUN=0
RELOAD=0
FORCE=0
while [ $# -gt 0 ]; do
    case $1 in
        --root) [ $# -ge 2 ] || die "--root needs a directory"; ROOT=$2; shift 2 ;;
        --root=*) ROOT=${1#--root=}; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        --reload) RELOAD=1; shift ;;
        --force) FORCE=1; shift ;;
        -h|--help) echo "Usage: uninstall.sh [--root DIR] [--dry-run] [--reload] [--force]"; exit 0 ;;
        *) die "unknown argument: $1" ;;
    esac
done
case $ROOT in /*) ;; *) die "--root $ROOT: must be an absolute path" ;; esac
[ -d "$ROOT" ] || die "--root $ROOT: not a directory"
R=$(cd "$ROOT" && pwd -P)
[ "$R" = / ] && R=
p() { printf '%s%s' "$R" "$1"; }

STATE=/var/lib/virt-aa-hook
MANIFEST=$STATE/install-manifest
BACKUPS=$STATE/backup
PRISTINE=$STATE/pristine
WRAPPER_BIN=/usr/lib/virt-aa-hook/bin
HOOK_PROFILE=/etc/apparmor.d/usr.lib.virt-aa-hook.qemu-hook
LIBVIRTD_LOCAL=/etc/apparmor.d/local/usr.sbin.libvirtd
PARSER=/usr/sbin/apparmor_parser
DROPIN=/etc/systemd/system/libvirtd.service.d/virt-aa-hook.conf
DROPIN_REMOVED=0
BEGIN_MARK="# BEGIN virt-aa-hook"
END_MARK="# END virt-aa-hook"

[ -f "$(p "$MANIFEST")" ] || die "$MANIFEST: not found: virt-aa-hook was not installed by install.sh here"

# A guest whose <emulator> is the wrapper would no longer start.
adopted=$(grep -l -F "<emulator>$WRAPPER_BIN/" "$(p /etc/libvirt/qemu)"/*.xml 2>/dev/null || true)
if [ -n "$adopted" ] && [ "$FORCE" = 0 ]; then
    names=$(for f in $adopted; do basename "$f" .xml; done | tr '\n' ' ')
    die "guests still use the emulator wrapper ($names): run 'virt-aa-hook adopt --all --undo' first, or pass --force"
fi
# A guest with our static label: libvirt refuses it once nothing loads its profile at boot.
labelled=$(grep -l -F "<seclabel type='static' model='apparmor' relabel='no'>" "$(p /etc/libvirt/qemu)"/*.xml 2>/dev/null || true)
if [ -n "$labelled" ] && [ "$FORCE" = 0 ]; then
    names=$(for f in $labelled; do basename "$f" .xml; done | tr '\n' ' ')
    die "guests still carry virt-aa-hook's static AppArmor label ($names): run 'virt-aa-hook adopt --all --undo' first, or pass --force"
fi

act() {
    if [ "$DRY_RUN" = 1 ]; then say "would $*"; else say "$*"; fi
}
exists() { [ -e "$(p "$1")" ] || [ -L "$(p "$1")" ]; }

# Profiles release kept loaded for adopted domains: released now that no domain is adopted (as
# `virt-aa-hook load-adopted` does for domains no longer defined with our label). Running guests
# keep theirs.
BUNDLE=/usr/lib/virt-aa-hook/virt-aa-hook.cjs
NODE_BIN=$(sed -n 's/^NODE=//p' "$(p /usr/lib/virt-aa-hook/qemu-hook)" 2>/dev/null | head -n 1)
if [ "$DRY_RUN" = 0 ] && [ -n "$NODE_BIN" ] && [ -x "$NODE_BIN" ] && [ -f "$(p "$BUNDLE")" ]; then
    "$NODE_BIN" "$(p "$BUNDLE")" --root "${R:-/}" load-adopted --release-only | sed "s/^/$PROG: /" \
        || say "warning: virt-aa-hook load-adopted failed: kept profiles may be left in /etc/apparmor.d/libvirt"
fi

# Unload our profile while its file is still there (only on this host, only with AppArmor).
if [ -z "$R" ] && [ "$DRY_RUN" = 0 ] && [ -d /sys/kernel/security/apparmor ] && [ -x "$PARSER" ] && [ -f "$HOOK_PROFILE" ]; then
    "$PARSER" -R "$HOOK_PROFILE" || say "warning: cannot unload $HOOK_PROFILE"
fi

# The local override without our block: what it should be unless the admin edited it meanwhile.
without_block() {
    awk -v b="$BEGIN_MARK" -v e="$END_MARK" '
        index($0, b) == 1 { skip = 1; next }
        skip && index($0, e) == 1 { skip = 0; next }
        !skip { print }' "$1"
}

STATE_CREATED=0
mapfile -t entries < <(tac "$(p "$MANIFEST")")
for entry in "${entries[@]}"; do
    kind=${entry%% *}
    rest=${entry#* }
    case $kind in
        created)
            if [ -f "$(p "$PRISTINE$rest")" ] && [ -f "$(p "$rest")" ] && ! cmp -s "$(p "$PRISTINE$rest")" "$(p "$rest")"; then
                say "kept $rest: edited since install"
            elif exists "$rest"; then
                act "remove $rest"
                [ "$DRY_RUN" = 1 ] || rm -f "$(p "$rest")"
                [ "$rest" = "$DROPIN" ] && DROPIN_REMOVED=1
            fi
            ;;
        modified)
            backup=$BACKUPS$rest
            exists "$backup" || die "$backup: backup of $rest is missing; nothing restored from here on"
            if [ "$rest" = "$LIBVIRTD_LOCAL" ] && [ -f "$(p "$rest")" ] \
                && ! without_block "$(p "$rest")" | cmp -s - "$(p "$backup")"; then
                # Edited since install: take out only our block, keep the admin's lines.
                act "remove the virt-aa-hook block from $rest (keeping lines added since install)"
                if [ "$DRY_RUN" = 0 ]; then
                    without_block "$(p "$rest")" > "$(p "$rest").virt-aa-hook-new"
                    chmod --reference="$(p "$rest")" "$(p "$rest").virt-aa-hook-new"
                    mv -f "$(p "$rest").virt-aa-hook-new" "$(p "$rest")"
                fi
            else
                act "restore $rest from $backup"
                if [ "$DRY_RUN" = 0 ]; then
                    rm -f "$(p "$rest")"
                    cp -a "$(p "$backup")" "$(p "$rest")"
                fi
            fi
            ;;
        moved)
            from=${rest%% *}
            to=${rest#* }
            exists "$to" || die "$to: missing, cannot move it back to $from"
            exists "$from" && die "$from: exists, cannot move $to back there"
            act "move $to back to $from"
            [ "$DRY_RUN" = 1 ] || mv "$(p "$to")" "$(p "$from")"
            ;;
        created-dir)
            if [ "$rest" = "$STATE" ]; then
                STATE_CREATED=1
            elif [ "$STATE_CREATED" = 1 ] && [ "${STATE#"$rest"/}" != "$STATE" ]; then
                : # a parent of the state directory: removed with it, below
            elif [ -d "$(p "$rest")" ]; then
                if [ -z "$(ls -A "$(p "$rest")")" ]; then
                    act "remove directory $rest"
                    [ "$DRY_RUN" = 1 ] || rmdir "$(p "$rest")"
                elif [ "${rest#"$STATE"/}" = "$rest" ]; then
                    say "kept $rest: not empty"
                fi
            fi
            ;;
        *) die "$MANIFEST: unknown entry: $entry" ;;
    esac
done

# The state directory holds the manifest, the backups and the hook's own state.
if [ "$STATE_CREATED" = 1 ]; then
    act "remove $STATE"
    [ "$DRY_RUN" = 1 ] || rm -rf "$(p "$STATE")"
    # Its parents, when install.sh made them too (deepest first: the entries are reversed).
    while IFS= read -r entry; do
        case $entry in
            "created-dir $STATE") ;;
            created-dir\ *)
                d=${entry#created-dir }
                case $STATE in "$d"/*) ;; *) continue ;; esac
                if [ -d "$(p "$d")" ] && [ -z "$(ls -A "$(p "$d")")" ]; then
                    act "remove directory $d"
                    [ "$DRY_RUN" = 1 ] || rmdir "$(p "$d")"
                fi
                ;;
        esac
    done < <(printf '%s\n' "${entries[@]}")
else
    act "remove $MANIFEST, $BACKUPS and $PRISTINE"
    [ "$DRY_RUN" = 1 ] || rm -rf "$(p "$MANIFEST")" "$(p "$BACKUPS")" "$(p "$PRISTINE")"
fi

# What the hook made at run time (never recorded in the manifest): its parser cache at the default
# place (a configured cache_dir may be shared, so it is left alone) and its lock directory.
for d in /var/cache/apparmor/virt-aa-hook /run/virt-aa-hook; do
    if [ -d "$(p "$d")" ] && [ ! -L "$(p "$d")" ]; then
        act "remove $d (the hook's parser cache and locks)"
        [ "$DRY_RUN" = 1 ] || rm -rf "$(p "$d")"
    fi
done

if [ -z "$R" ] && [ "$DRY_RUN" = 0 ] && [ -d /sys/kernel/security/apparmor ] && [ -x "$PARSER" ] \
    && [ -f /etc/apparmor.d/usr.sbin.libvirtd ]; then
    "$PARSER" -r /etc/apparmor.d/usr.sbin.libvirtd || say "warning: cannot reload libvirtd's profile"
fi

if [ -z "$R" ] && [ "$DRY_RUN" = 0 ] && [ "$DROPIN_REMOVED" = 1 ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || say "warning: systemctl daemon-reload failed"
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
        say "sent SIGHUP to libvirtd (pid $pid)"
    fi
else
    say "reload libvirtd so it forgets the hook: systemctl reload libvirtd, or kill -HUP \$(cat /run/libvirtd.pid)"
fi
say "per-guest profiles in /etc/apparmor.d/libvirt/ were left in place"
if [ "$DRY_RUN" = 1 ]; then say "dry run: nothing was changed"; else say "done"; fi
