#!/bin/bash
# build-image.sh — the cached half of the enforcement VM: Debian's kernel and a base initramfs.
#
# The base archive holds only what comes from packages and this machine's node; everything the
# project builds or the test decides (bundle, hooks, fixtures, /init) goes into a second archive
# per run (stage.sh), so the expensive part is rebuilt only when its inputs change.
#
# Output (paths printed as KEY=VALUE on stdout, everything else on stderr):
#   KERNEL=<.cache/enforce/base-KEY/vmlinux>   ELF vmlinux, entered through PVH (no XZ unpack per boot)
#   BASE=<.cache/enforce/base-KEY/base.cpio>   uncompressed newc archive (unpacking gzip under TCG
#                                               costs more than reading the larger file)
# The KEY hashes this script, the candidate version of every package and the node binary.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
PROJECT=$(cd "$HERE/../.." && pwd)
CACHE=${ENFORCE_CACHE:-$PROJECT/.cache/enforce}
NODE_BIN=$(readlink -f "${ENFORCE_NODE:-$(command -v node)}")
APT=(apt-get -o DPkg::Lock::Timeout=900 -q)
log() { printf 'build-image: %s\n' "$*" >&2; }

# Packages, each for one reason:
#   kernel: AppArmor built in and the default LSM; busybox-static: the guest's toolbox;
#   dash: /bin/sh as on Debian, and the shell libvirt's qemu abstraction lets a guest run
#   (/{usr/,}bin/dash rmix), so the stand-in emulator can be a dash script;
#   apparmor: parser, aa-exec, base abstractions, tunables, abi, parser.conf + features;
#   libvirt-daemon-system: TEMPLATE.qemu, abstractions/libvirt-qemu, usr.sbin.libvirtd;
#   libc6, libstdc++6, libgcc-s1: what the binaries above and node link against.
PKGS=(busybox-static dash apparmor libvirt-daemon-system libc6 libstdc++6 libgcc-s1)

candidate() { apt-cache show --no-all-versions "$1" 2>/dev/null | awk '/^Version:/{print $2; exit}'; }

if [ -z "$(candidate linux-image-amd64)" ]; then
  log "apt lists have no linux-image-amd64: running apt-get update"
  "${APT[@]}" update >&2
fi
KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
[ -n "$KPKG" ] || { log "cannot resolve the kernel package behind linux-image-amd64"; exit 1; }
PKGS+=("$KPKG")

# One apt-cache call for all candidate versions (it is the slow part of a cache hit).
declare -A VER
while read -r p v; do VER[$p]=$v; done < <(apt-cache show --no-all-versions "${PKGS[@]}" 2>/dev/null \
  | awk '/^Package:/{p=$2} /^Version:/{print p, $2}')
candidate() { printf '%s' "${VER[$1]:-}"; }
VERSIONS=""
for p in "${PKGS[@]}"; do
  v=$(candidate "$p"); [ -n "$v" ] || { log "no candidate version for $p"; exit 1; }
  VERSIONS+="$p=$v "
done
KEY=$( { sha256sum "$0" | cut -d' ' -f1; echo "$VERSIONS"; sha256sum "$NODE_BIN" | cut -d' ' -f1; } \
       | sha256sum | cut -c1-16)
OUT=$CACHE/base-$KEY
if [ -s "$OUT/base.cpio" ] && [ -s "$OUT/vmlinux" ]; then
  log "cached: $OUT"
  echo "KERNEL=$OUT/vmlinux"; echo "BASE=$OUT/base.cpio"; exit 0
fi
log "building $OUT from: $VERSIONS node=$NODE_BIN"

# ---------------------------------------------------------------- download + unpack the .debs
DEBS=$CACHE/debs; mkdir -p "$DEBS"
for p in "${PKGS[@]}"; do
  v=$(candidate "$p"); f=$(ls "$DEBS/${p}_${v/:/%3a}_"*.deb 2>/dev/null | head -1 || true)
  [ -n "$f" ] || ( cd "$DEBS" && "${APT[@]}" download "$p" 2>&1 | grep -v 'unsandboxed' >&2 || true )
  ls "$DEBS/${p}_${v/:/%3a}_"*.deb >/dev/null 2>&1 || { log "download of $p=$v failed"; exit 1; }
done
WORK=$(mktemp -d "$CACHE/.build-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
X=$WORK/x; R=$WORK/root; mkdir -p "$X" "$R"
for p in "${PKGS[@]}"; do v=$(candidate "$p"); dpkg-deb -x "$DEBS/${p}_${v/:/%3a}_"*.deb "$X"; done

# ---------------------------------------------------------------- kernel: bzImage -> vmlinux
VMLINUZ=$(ls "$X"/boot/vmlinuz-*); KCONFIG=$(ls "$X"/boot/config-*)
grep -q '^CONFIG_SECURITY_APPARMOR=y' "$KCONFIG" || { log "$KPKG has no AppArmor"; exit 1; }
grep -q '^CONFIG_PVH=y' "$KCONFIG" || { log "$KPKG cannot boot through PVH"; exit 1; }
# The bzImage payload is XZ; decompressing it once here saves seconds on every TCG boot.
OFF=$(LC_ALL=C grep -abo $'\xfd7zXZ' "$VMLINUZ" | head -1 | cut -d: -f1)
tail -c +$((OFF + 1)) "$VMLINUZ" | xz -dc --single-stream > "$WORK/vmlinux" 2>/dev/null || true
head -c 4 "$WORK/vmlinux" | grep -q ELF || { log "cannot extract vmlinux from $VMLINUZ"; exit 1; }

# ---------------------------------------------------------------- root filesystem (merged /usr)
mkdir -p "$R"/usr/{bin,sbin,lib/x86_64-linux-gnu,lib64,share} "$R"/{etc,proc,sys,dev,tmp,run,var/log,root}
ln -s usr/bin "$R/bin"; ln -s usr/sbin "$R/sbin"; ln -s usr/lib "$R/lib"; ln -s usr/lib64 "$R/lib64"
cp "$X/bin/busybox" "$R/usr/bin/busybox"
cp "$X/bin/dash" "$R/usr/bin/dash"; ln -s dash "$R/usr/bin/sh"
cp "$X/sbin/apparmor_parser" "$R/usr/sbin/"
cp "$X/usr/bin/aa-exec" "$X/usr/bin/aa-enabled" "$R/usr/bin/"
cp "$NODE_BIN" "$R/usr/bin/node"
# Busybox applets fill every name no real binary took (the real dash/sh must stay real).
for a in $("$R/usr/bin/busybox" --list); do
  for d in usr/bin usr/sbin; do [ -e "$R/$d/$a" ] && continue 2; done
  ln -s busybox "$R/usr/bin/$a"
done
# Shared libraries: exactly those the ELF binaries ask for, taken from the .debs (not the host).
for bin in "$R/usr/sbin/apparmor_parser" "$R/usr/bin/aa-exec" "$R/usr/bin/aa-enabled" \
           "$R/usr/bin/dash" "$R/usr/bin/node"; do
  for lib in $(ldd "$bin" | awk '/=>/{print $1}'); do
    [ -e "$R/usr/lib/x86_64-linux-gnu/$lib" ] && continue
    f=$(find "$X" -name "$lib" | head -1)
    [ -n "$f" ] || { log "$(basename "$bin") needs $lib, which no package in the list ships"; exit 1; }
    cp -L "$f" "$R/usr/lib/x86_64-linux-gnu/"
  done
done
cp -L "$X/lib64/ld-linux-x86-64.so.2" "$R/usr/lib64/"

# AppArmor policy as Debian installs it: apparmor's base files, libvirt's profiles, and the
# empty local/ overrides the packages' postinst scripts create (their #includes are mandatory).
mkdir -p "$R/etc/apparmor" "$R/etc/apparmor.d"
cp "$X/etc/apparmor/parser.conf" "$R/etc/apparmor/"      # names the features file: ship both
cp -a "$X/usr/share/apparmor-features" "$R/usr/share/"
cp -a "$X/etc/apparmor.d/." "$R/etc/apparmor.d/"
mkdir -p "$R/etc/apparmor.d/local/abstractions" "$R/var/cache/apparmor"
for f in usr.sbin.libvirtd usr.lib.libvirt.virt-aa-helper abstractions/libvirt-qemu abstractions/libvirt-lxc; do
  [ -e "$R/etc/apparmor.d/local/$f" ] || : > "$R/etc/apparmor.d/local/$f"
done
for f in TEMPLATE.qemu; do [ -s "$R/etc/apparmor.d/libvirt/$f" ] || { log "libvirt-daemon-system lacks $f"; exit 1; }; done
[ -s "$R/etc/apparmor.d/usr.sbin.libvirtd" ] && [ -s "$R/etc/apparmor.d/abstractions/libvirt-qemu" ] \
  || { log "libvirt's AppArmor files missing from the .debs"; exit 1; }

# The accounts nameservice lookups read, plus a shadow file the guests must never open.
printf 'root:x:0:0:root:/root:/bin/sh\nlibvirt-qemu:x:64055:994::/var/lib/libvirt:/usr/sbin/nologin\n' > "$R/etc/passwd"
printf 'root:x:0:\nkvm:x:994:\nlibvirt:x:995:\n' > "$R/etc/group"
printf 'root:$6$enforce-test-secret::0:99999:7:::\n' > "$R/etc/shadow"; chmod 640 "$R/etc/shadow"

( cd "$R" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet ) > "$WORK/base.cpio"
mkdir -p "$OUT.tmp"; mv "$WORK/vmlinux" "$WORK/base.cpio" "$OUT.tmp/"
echo "$VERSIONS node=$NODE_BIN" > "$OUT.tmp/inputs"
rm -rf "$OUT"; mv "$OUT.tmp" "$OUT"
# Older images (other inputs) are never used again: keep only this one.
for old in "$CACHE"/base-*; do [ "$old" = "$OUT" ] || rm -rf "$old"; done
log "built $OUT: base.cpio $(du -h "$OUT/base.cpio" | cut -f1), vmlinux $(du -h "$OUT/vmlinux" | cut -f1)"
echo "KERNEL=$OUT/vmlinux"; echo "BASE=$OUT/base.cpio"
