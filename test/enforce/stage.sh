#!/bin/bash
# stage.sh OUT.cpio BASE.cpio — the per-run half of the enforcement VM: a second initramfs
# archive, unpacked by the kernel over the base one, holding what this checkout built and what
# the checks need: the bundle, hook and wrapper as install/install.sh installs them, the
# stand-in emulator, the guest fixtures, /init and the checks.
set -euo pipefail

OUT=$1 BASE=$2
HERE=$(cd "$(dirname "$0")" && pwd)
PROJECT=$(cd "$HERE/../.." && pwd)
log() { printf 'stage: %s\n' "$*" >&2; }

# The bundle of this checkout: a stale dist/ would prove nothing about the source. Rebuilt only
# when older than a source file, because other suites may be running dist/ right now (npm test
# has just built it; rewriting it under them would make their runs flaky).
BUNDLE=$PROJECT/dist/virt-aa-hook.cjs
if [ ! -s "$BUNDLE" ] || [ -n "$(find "$PROJECT/src" "$PROJECT/build.mjs" -newer "$BUNDLE" -print -quit)" ]; then
  log "dist/virt-aa-hook.cjs missing or older than src/: building it"
  (cd "$PROJECT" && node build.mjs >&2)
fi
[ -s "$PROJECT/dist/virt-aa-hook.cjs" ] || { log "no dist/virt-aa-hook.cjs (npm run build)"; exit 1; }

S=$(mktemp -d "${TMPDIR:-/tmp}/enforce-stage.XXXXXX")
trap 'rm -rf "$S"' EXIT

# The installer must see the host as Debian has it (libvirt's template, abstraction, libvirtd's
# profile and its empty local override), so it keeps libvirt's files and edits the override.
( cd "$S" && cpio -id --quiet 'etc/apparmor.d/*' < "$BASE" )
mkdir -p "$S/enforce/pristine" "$S/enforce/fixtures" "$S/usr/bin"
cp "$S/etc/apparmor.d/local/usr.sbin.libvirtd" "$S/enforce/pristine/local-usr.sbin.libvirtd"

# The stand-in takes the real emulator's place, so the installer links the wrapper to it.
EMULATOR=/usr/bin/qemu-system-x86_64
install -m 0755 "$HERE/guest/stand-in-qemu" "$S$EMULATOR"

if [ -f "$PROJECT/install/install.sh" ]; then
  bash "$PROJECT/install/install.sh" --root "$S" --node /usr/bin/node --libvirt-version 9.0.0 >&2
else
  # Until the installer exists: the same files by hand, in the places it is meant to use.
  log "install/install.sh missing: installing by hand"
  L=$S/usr/lib/virt-aa-hook; mkdir -p "$L/bin" "$S/etc/libvirt/hooks"
  cp "$PROJECT/dist/virt-aa-hook.cjs" "$L/"
  sed -e 's|^NODE=.*|NODE=/usr/bin/node|' -e 's|^BUNDLE=.*|BUNDLE=/usr/lib/virt-aa-hook/virt-aa-hook.cjs|' \
    "$PROJECT/hooks/qemu" > "$L/qemu-hook"
  sed 's|^ALLOW_ENV_OVERRIDES=yes$|ALLOW_ENV_OVERRIDES=no|' "$PROJECT/hooks/qemu-wrapper" > "$L/qemu-wrapper"
  chmod 755 "$L/qemu-hook" "$L/qemu-wrapper"
  ln -s ../qemu-wrapper "$L/bin/qemu-system-x86_64"
  ln -s /usr/lib/virt-aa-hook/qemu-hook "$S/etc/libvirt/hooks/qemu"
fi



# The hook as libvirt 9.0 finds it: qemu.d/ when the installer used it, else the main hook.
HOOK=/etc/libvirt/hooks/qemu.d/virt-aa-hook
[ -e "$S$HOOK" ] || [ -L "$S$HOOK" ] || HOOK=/etc/libvirt/hooks/qemu
if [ "${ENFORCE_HOOK:-real}" = reference ]; then
  # Outside /usr/lib/virt-aa-hook, so the hook's own profile does not attach to it.
  log "ENFORCE_HOOK=reference: checks run selftest/reference-hook instead of the real hook"
  install -m 0755 "$HERE/selftest/reference-hook" "$S/enforce/reference-hook"
  HOOK=/enforce/reference-hook
fi
WRAP=/usr/lib/virt-aa-hook/bin/qemu-system-x86_64
for f in "$HOOK" "$WRAP"; do [ -L "$S$f" ] || [ -e "$S$f" ] || { log "installer left no $f"; exit 1; }; done
printf 'HOOK=%s\nWRAP=%s\nEMULATOR=%s\n' "$HOOK" "$WRAP" "$EMULATOR" > "$S/enforce/env"

# Guest fixtures: one XML per line of guests.list.
cp "$HERE/fixtures/guests.list" "$S/enforce/fixtures/"
# A guest with its own template (fixtures/KEY.xml.in) also gets KEY-live.xml: the XML libvirt
# hands start and reconnect, with the complete chain (<backingStore/>).
grep -v '^#' "$HERE/fixtures/guests.list" | while read -r key name uuid id disk; do
  [ -n "$key" ] || continue
  subst=(-e "s|@NAME@|$name|g" -e "s|@UUID@|$uuid|g" -e "s|@ID@|$id|g" -e "s|@DISK@|$disk|g" -e "s|@DATA@|${disk%.*}.data|g")
  if [ -f "$HERE/fixtures/$key.xml.in" ]; then
    sed "${subst[@]}" -e "s|@CHAIN@||" "$HERE/fixtures/$key.xml.in" > "$S/enforce/fixtures/$key.xml"
    sed "${subst[@]}" -e "s|@CHAIN@|<backingStore/>|" "$HERE/fixtures/$key.xml.in" > "$S/enforce/fixtures/$key-live.xml"
  else
    sed "${subst[@]}" "$HERE/fixtures/guest.xml.in" > "$S/enforce/fixtures/$key.xml"
  fi
done

# Guest D's qcow2 headers, made by this machine's qemu-img (the VM has none): the one it starts
# with (data file "<disk>.data", relative) and the one it rewrites its disk to while running
# (data file: guest B's disk). qemu-img creates a data file where the name points, so the hostile
# name is written over a same-length relative placeholder.
read -r _ _ _ _ DISK_D < <(grep '^D ' "$HERE/fixtures/guests.list")
read -r _ _ _ _ DISK_B < <(grep '^B ' "$HERE/fixtures/guests.list")
IMG=$(mktemp -d "${TMPDIR:-/tmp}/enforce-img.XXXXXX")
DATA_NAME=$(basename "${DISK_D%.*}.data")
PLACEHOLDER=$(printf 'p%.0s' $(seq 1 $(( ${#DISK_B} - 4 )))).img
( cd "$IMG" && qemu-img create -q -f qcow2 -o "data_file=$DATA_NAME,data_file_raw=on" good.qcow2 64K \
    && qemu-img create -q -f qcow2 -o "data_file=$PLACEHOLDER,data_file_raw=on" evil.qcow2 64K )
node -e '
  const fs = require("fs");
  const [file, from, to] = process.argv.slice(1);
  const b = fs.readFileSync(file);
  const at = b.indexOf(from);
  if (at < 0 || from.length !== to.length || b.indexOf(from, at + 1) >= 0) { console.error("stage: cannot patch " + file); process.exit(1); }
  b.write(to, at, "latin1");
  fs.writeFileSync(file, b);
' "$IMG/evil.qcow2" "$PLACEHOLDER" "$DISK_B"
mkdir -p "$S/enforce/images"
cp "$IMG/good.qcow2" "$S/enforce/images/D-good.qcow2"
cp "$IMG/evil.qcow2" "$S/enforce/images/D-evil.qcow2"
rm -rf "$IMG"

# Issue 20: src/apparmor/kernel-load.ts bundled alone, and the script that loads a compiled
# policy with it (checks K-*: the kernel takes the blob the parser's cache stores).
"$PROJECT/node_modules/.bin/esbuild" "$PROJECT/src/apparmor/kernel-load.ts" --bundle --platform=node \
  --format=cjs --target=node18 --log-level=warning --outfile="$S/enforce/kernel-load.cjs" >&2
install -m 0644 "$HERE/guest/load-blob.cjs" "$S/enforce/load-blob.cjs"

install -m 0755 "$HERE/guest/init" "$S/init"
install -m 0755 "$HERE/guest/checks.sh" "$S/enforce/checks.sh"

( cd "$S" && find . -mindepth 1 -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet ) > "$OUT"
log "overlay $(du -h "$OUT" | cut -f1): hook $HOOK, wrapper $WRAP"
