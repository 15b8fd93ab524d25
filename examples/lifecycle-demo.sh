#!/bin/bash
# Runs one guest's whole hook lifecycle (prepare → start → started → stopped → release) inside a
# temporary root, with the real apparmor_parser "loading" into a directory instead of the kernel.
# Touches nothing on the host. Usage: bash examples/lifecycle-demo.sh [DOMAIN.xml]
set -euo pipefail
cd "$(dirname "$0")/.."
xml=${1:-examples/basic.xml}
[ -f dist/virt-aa-hook.cjs ] || npm run build >/dev/null
R=$(mktemp -d /tmp/virt-aa-hook-demo.XXXXXX)
mkdir -p "$R/etc/apparmor.d/libvirt" "$R/etc/libvirt" "$R/fs"
cp -r /etc/apparmor.d/tunables /etc/apparmor.d/abstractions /etc/apparmor.d/abi /etc/apparmor.d/local "$R/etc/apparmor.d/"
cp /etc/apparmor.d/libvirt/TEMPLATE.qemu "$R/etc/apparmor.d/libvirt/"
cp -r /usr/share/apparmor-features/features "$R/features"
: > "$R/fs/.replace"; : > "$R/fs/.remove"
printf 'subdomainfs = "/fs"\nfeatures_file = "/features"\n' > "$R/etc/libvirt/virt-aa-hook.conf"
name=$(sed -n 's:.*<name>\(.*\)</name>.*:\1:p' "$xml" | head -1)
for op in "prepare begin" "start begin" "started begin"; do
  # shellcheck disable=SC2086
  node dist/virt-aa-hook.cjs hook --root "$R" "$name" $op - < "$xml"; echo "== $op: exit $?"
done
echo "== files written under $R/etc/apparmor.d/libvirt:"; ls -1 "$R/etc/apparmor.d/libvirt"
echo "== loaded (compiled profile bytes in the fake securityfs): $(wc -c < "$R/fs/.replace")"
for op in "stopped end" "release end"; do
  # shellcheck disable=SC2086
  node dist/virt-aa-hook.cjs hook --root "$R" "$name" $op - < "$xml"; echo "== $op: exit $?"
done
echo "== after release:"; ls -1 "$R/etc/apparmor.d/libvirt"
echo "== hook log:"; cat "$R/var/log/libvirt/virt-aa-hook.log"
rm -rf "$R"
