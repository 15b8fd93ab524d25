#!/bin/bash
# run.sh [--out DIR] [--modes "seclabel wrapper helper"] (or "record": guest/record.sh) — the whole lab: the cached kernel + initramfs,
# then per attach mode a fresh state disk and two boots on it (setup + checks, then a "host
# reboot"). Leaves DIR/<mode>-boot<N>/serial.log (the verdict lines), the VM's logs next to it,
# and DIR/timings. Exit 0 when every boot reached LAB-DONE (verdicts are judged by lab.test.ts).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PROJECT=$(cd "$HERE/../.." && pwd)
OUT=$PROJECT/.cache/lab/run
MODES="seclabel wrapper helper"
ONLY=
while [ $# -gt 0 ]; do
  case $1 in
    --out) OUT=$2; shift 2 ;;
    --modes) MODES=$2; shift 2 ;;
    # --only ops: boot 1 only, with just the issue-17 scenario (guest/ops.sh) and what it needs.
    --only) ONLY=$2; shift 2 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
# The VM mounts its own /tmp, /run, /dev, /proc and /sys over this machine's: a checkout under
# one of them would be invisible in it.
case $PROJECT/ in
  /tmp/*|/run/*|/dev/*|/proc/*|/sys/*) echo "run.sh: $PROJECT: the lab VM cannot see a checkout under /tmp, /run, /dev, /proc or /sys" >&2; exit 2 ;;
esac
t() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(t)" 'BEGIN{printf "%.1f", b-a}'; }

# The VM runs this checkout's bundle: a stale dist/ would prove nothing about the source.
BUNDLE=$PROJECT/dist/virt-aa-hook.cjs
if [ ! -s "$BUNDLE" ] || [ -n "$(find "$PROJECT/src" "$PROJECT/build.mjs" -newer "$BUNDLE" -print -quit)" ]; then
  echo "run.sh: dist/virt-aa-hook.cjs missing or older than src/: building it" >&2
  (cd "$PROJECT" && node build.mjs >&2)
fi

rm -rf "$OUT"; mkdir -p "$OUT/caps"; : > "$OUT/timings"
# libvirt's QEMU capabilities cache from the last run (libvirt re-probes by itself whenever an
# entry no longer matches its binaries): saves libvirtd's first-start probe, 16 s+ under TCG.
CAPS=$PROJECT/.cache/lab/caps
cp -f "$CAPS"/*.xml "$OUT/caps/" 2>/dev/null || true
t0=$(t)
eval "$(bash "$HERE/build-initrd.sh" | grep -E '^(KERNEL|INITRD)=')"
echo "image $(took "$t0")" >> "$OUT/timings"

ok=1
for mode in $MODES; do
  STATE=$OUT/$mode-state.img
  truncate -s 4G "$STATE"; mkfs.ext4 -q -F -E lazy_itable_init=1 "$STATE"
  boots="1 2"; [ "$mode" = record ] || [ -n "$ONLY" ] && boots=1   # record, --only: one boot
  for boot in $boots; do
    dir=$OUT/$mode-boot$boot; mkdir -p "$dir"
    t0=$(t); rc=0
    bash "$HERE/boot.sh" "$KERNEL" "$INITRD" "$STATE" "$OUT" "$dir/serial.log" \
      "lab.init=$PROJECT/test/lab/guest/init lab.modules=$(dirname "$KERNEL")/lib/modules lab.project=$PROJECT lab.mode=$mode lab.boot=$boot lab.timeout=${LAB_GUEST_TIMEOUT:-1800} lab.baseline=${LAB_RECORD_BASELINE:-1} lab.only=$ONLY" || rc=$?
    echo "$mode-boot$boot $(took "$t0") qemu-exit=$rc" >> "$OUT/timings"
    tr -d '\r' < "$dir/serial.log" | grep -E '^(LAB|INFO)' >&2 || true
    grep -q '^LAB-DONE' "$dir/serial.log" || { ok=0; echo "run.sh: $mode boot $boot did not reach LAB-DONE" >&2; }
  done
  rm -f "$STATE"
done
mkdir -p "$CAPS"; cp -f "$OUT"/caps/*.xml "$CAPS/" 2>/dev/null || true
cat "$OUT/timings" >&2
echo $((1 - ok)) > "$OUT/exit-code"
[ $ok = 1 ]
