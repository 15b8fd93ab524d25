#!/bin/bash
# run.sh [--out DIR] [--append "KERNEL ARGS"] — the whole enforcement run: cached base image,
# this checkout's overlay, one boot. Leaves DIR/serial.log (the verdict lines) and DIR/timings
# (seconds per step), and exits 0 when the guest reported every check PASS and ENFORCE-DONE.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PROJECT=$(cd "$HERE/../.." && pwd)
OUT=$PROJECT/.cache/enforce/run
APPEND=""
while [ $# -gt 0 ]; do
  case $1 in
    --out) OUT=$2; shift 2 ;;
    --append) APPEND=$2; shift 2 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"; : > "$OUT/timings"
t() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(t)" 'BEGIN{printf "%.1f", b-a}'; }

t0=$(t)
eval "$(bash "$HERE/build-image.sh" | grep -E '^(KERNEL|BASE)=')"
echo "image $(took "$t0")" >> "$OUT/timings"

t0=$(t)
bash "$HERE/stage.sh" "$OUT/overlay.cpio" "$BASE"
cat "$BASE" "$OUT/overlay.cpio" > "$OUT/initrd.cpio"
echo "stage $(took "$t0")" >> "$OUT/timings"

t0=$(t)
rc=0; bash "$HERE/boot.sh" "$KERNEL" "$OUT/initrd.cpio" "$OUT/serial.log" "$APPEND" || rc=$?
echo "boot $(took "$t0")" >> "$OUT/timings"
echo "qemu-exit $rc" >> "$OUT/timings"
rm -f "$OUT/initrd.cpio"

tr -d '\r' < "$OUT/serial.log" | grep -E '^(ENFORCE|INFO)' >&2 || true
cat "$OUT/timings" >&2
grep -q '^ENFORCE-DONE' "$OUT/serial.log" && ! grep -q '^ENFORCE [^ ]* FAIL' "$OUT/serial.log"
