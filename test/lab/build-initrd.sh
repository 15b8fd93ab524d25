#!/bin/bash
# build-initrd.sh — the cached part of the lab VM: Debian's kernel (as an ELF vmlinux, entered
# through PVH) and a tiny initramfs (busybox + the kernel's own 9p/overlay/virtio/ext4 modules and
# test/lab/guest/stage1). Everything else the VM runs comes from this machine's root, shared
# read-only over virtio-9p: Debian's libvirt, QEMU, OVMF, AppArmor and node as installed here.
#
# Prints KERNEL=... and INITRD=... on stdout (logs on stderr). Cached in .cache/lab/kernel-KEY/,
# KEY = this script, stage1, the kernel package's version and busybox.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PROJECT=$(cd "$HERE/../.." && pwd)
CACHE=${LAB_CACHE:-$PROJECT/.cache/lab}
APT=(apt-get -o DPkg::Lock::Timeout=900 -q)
log() { printf 'build-initrd: %s\n' "$*" >&2; }
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || { log "no $BUSYBOX (apt-get install busybox-static)"; exit 1; }
"$BUSYBOX" --list | grep -qx switch_root || { log "$BUSYBOX has no switch_root applet"; exit 1; }

KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
if [ -z "$KPKG" ]; then
  log "apt lists have no linux-image-amd64: running apt-get update"
  "${APT[@]}" update >&2
  KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
fi
[ -n "$KPKG" ] || { log "cannot resolve the kernel package behind linux-image-amd64"; exit 1; }
KVER=$(apt-cache show --no-all-versions "$KPKG" | awk '/^Version:/{print $2; exit}')
KEY=$( { sha256sum "$0" "$HERE/guest/stage1" "$BUSYBOX" | cut -d' ' -f1; echo "$KPKG=$KVER"; } | sha256sum | cut -c1-16)
OUT=$CACHE/kernel-$KEY
if [ -s "$OUT/vmlinux" ] && [ -s "$OUT/initrd.cpio" ]; then
  log "cached: $OUT"; echo "KERNEL=$OUT/vmlinux"; echo "INITRD=$OUT/initrd.cpio"; exit 0
fi
log "building $OUT from $KPKG=$KVER"
DEBS=$CACHE/debs; mkdir -p "$DEBS"
deb=$(ls "$DEBS/${KPKG}_${KVER/:/%3a}_"*.deb 2>/dev/null | head -1 || true)
if [ -z "$deb" ]; then
  ( cd "$DEBS" && "${APT[@]}" download "$KPKG=$KVER" 2>&1 | grep -v unsandboxed >&2 || true )
  deb=$(ls "$DEBS/${KPKG}_${KVER/:/%3a}_"*.deb 2>/dev/null | head -1 || true)
  [ -n "$deb" ] || { log "download of $KPKG=$KVER failed"; exit 1; }
fi
WORK=$(mktemp -d "$CACHE/.build-XXXXXX"); trap 'rm -rf "$WORK"' EXIT
X=$WORK/x; R=$WORK/root; mkdir -p "$X" "$R"
dpkg-deb -x "$deb" "$X"

VMLINUZ=$(ls "$X"/boot/vmlinuz-*); KCONFIG=$(ls "$X"/boot/config-*)
grep -q '^CONFIG_SECURITY_APPARMOR=y' "$KCONFIG" || { log "$KPKG has no AppArmor"; exit 1; }
grep -q '^CONFIG_PVH=y' "$KCONFIG" || { log "$KPKG cannot boot through PVH"; exit 1; }
OFF=$(LC_ALL=C grep -abo $'\xfd7zXZ' "$VMLINUZ" | head -1 | cut -d: -f1)
tail -c +$((OFF + 1)) "$VMLINUZ" | xz -dc --single-stream > "$WORK/vmlinux" 2>/dev/null || true
head -c 4 "$WORK/vmlinux" | grep -q ELF || { log "cannot extract vmlinux from $VMLINUZ"; exit 1; }

# Modules: what the VM needs to reach its roots, with their dependencies (read from each module's
# own depends= field: there is no depmod here), in load order.
MODDIR=$(ls -d "$X"/lib/modules/*/kernel)
mkdir -p "$R/modules"
declare -A SEEN=(); ORDER=()
modpath() { find "$MODDIR" -name "$1.ko" -o -name "$(printf %s "$1" | tr _ -).ko" | head -1; }
add() {
  local m=$1 f deps d
  [ -n "${SEEN[$m]:-}" ] && return 0
  SEEN[$m]=1
  f=$(modpath "$m"); [ -n "$f" ] || { log "module $m not in $KPKG"; exit 1; }
  deps=$(grep -a -o 'depends=[a-z0-9_,-]*' "$f" | head -1 | cut -d= -f2)
  for d in ${deps//,/ }; do add "$d"; done
  ORDER+=("$m"); cp "$f" "$R/modules/$m.ko"
}
# virtio_pci: the bus; 9p + 9pnet_virtio: this machine's root and the result share; overlay: the
# writable root; virtio_blk + ext4 (+ crc32c for its checksums): the persistent state disk.
for m in virtio_pci virtio_blk 9pnet_virtio 9p overlay crc32c_generic ext4; do add "$m"; done
printf '%s\n' "${ORDER[@]}" > "$R/modules/order"
mkdir -p "$R"/{bin,dev,proc,sys,lower,state,newroot}
cp "$BUSYBOX" "$R/bin/busybox"; ln -s busybox "$R/bin/sh"
install -m 0755 "$HERE/guest/stage1" "$R/init"
( cd "$R" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet ) > "$WORK/initrd.cpio"
mkdir -p "$OUT.tmp"; mv "$WORK/vmlinux" "$WORK/initrd.cpio" "$OUT.tmp/"
# The kernel's whole module tree (with busybox's modules.dep), for what the VM loads on demand
# through the kernel's modprobe: loop, tun, bridge, vhost_net, nf_tables for libvirt's networks.
# Stage 2 bind-mounts it at /lib/modules/<version> (this machine's root has no such directory).
KREL=$(basename "$(dirname "$MODDIR")")
mkdir -p "$OUT.tmp/lib/modules"; mv "$(dirname "$MODDIR")" "$OUT.tmp/lib/modules/$KREL"
"$BUSYBOX" depmod -b "$OUT.tmp" "$KREL" >&2
[ -s "$OUT.tmp/lib/modules/$KREL/modules.dep" ] || { log "busybox depmod wrote no modules.dep"; exit 1; }
echo "$KREL" > "$OUT.tmp/krel"
echo "$KPKG=$KVER modules: ${ORDER[*]}" > "$OUT.tmp/inputs"
rm -rf "$OUT"; mv "$OUT.tmp" "$OUT"
for old in "$CACHE"/kernel-*; do [ "$old" = "$OUT" ] || rm -rf "$old"; done
log "built $OUT: initrd $(du -h "$OUT/initrd.cpio" | cut -f1) (${ORDER[*]}), vmlinux $(du -h "$OUT/vmlinux" | cut -f1)"
echo "KERNEL=$OUT/vmlinux"; echo "INITRD=$OUT/initrd.cpio"
