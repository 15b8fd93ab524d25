#!/bin/bash
# run.sh [--out DIR] [--modes "seclabel wrapper helper"] (or "record": guest/record.sh) [--jobs N] — the whole lab: the cached
# kernel + initramfs, then per attach mode a fresh state disk and two boots on it (setup + checks,
# then a "host reboot"). Modes may run side by side, at most N VMs at once (--jobs, else
# $VIRT_AA_HOOK_LAB_JOBS, default 1: see README); a mode's boot 2 always follows its own boot 1. Leaves
# DIR/<mode>-boot<N>/serial.log (the verdict lines), the VM's logs next to it, and DIR/timings
# (per boot: wall seconds, QEMU's CPU seconds, the host's 1-minute load at its end; "lab-total":
# wall clock, the job count). Exit 0 when every boot reached
# LAB-DONE (verdicts are judged by lab.test.ts).
#
# What parallel VMs must not share, and do not: the state disk (DIR/<mode>-state.img), the output
# dir (DIR/<mode>-boot<N>), libvirt's capabilities cache (DIR/caps/<mode>, seeded from
# .cache/lab/caps, merged back at the end). The VMs have no network (-nic none), no monitor and no
# sockets (serial to a file); each runs its own kernel, libvirtd and /run, /tmp (tmpfs). The kernel
# and initramfs are built once, before any VM starts.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PROJECT=$(cd "$HERE/../.." && pwd)
OUT=$PROJECT/.cache/lab/run
MODES="helper seclabel wrapper"   # longest first (with --jobs 2: helper beside seclabel, then wrapper)
ONLY=
JOBS=${VIRT_AA_HOOK_LAB_JOBS:-1}
while [ $# -gt 0 ]; do
  case $1 in
    --out) OUT=$2; shift 2 ;;
    --modes) MODES=$2; shift 2 ;;
    # --only ops|devices|denials: boot 1 only, with just the issue-17 scenario (guest/ops.sh), issue 18's
    # device guests (guest/devices.sh) or issue 19's denials (guest/denials.sh) and what they need.
    --only) ONLY=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case $JOBS in ''|*[!0-9]*|0) echo "run.sh: job count must be a positive integer, not '$JOBS'" >&2; exit 2 ;; esac
# vCPUs per VM (boot.sh): 2 for one VM at a time; with N VMs at once 1 each unless LAB_SMP says
# otherwise: two-vCPU TCG VMs side by side on 2 cores overcommit and spin (README "Parallel modes").
if [ "$JOBS" -gt 1 ]; then export LAB_SMP=${LAB_SMP:-1}; else export LAB_SMP=${LAB_SMP:-2}; fi
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
# One copy per mode: VMs running at the same time never write the same file.
CAPS=$PROJECT/.cache/lab/caps
for mode in $MODES; do mkdir -p "$OUT/caps/$mode"; cp -f "$CAPS"/*.xml "$OUT/caps/$mode/" 2>/dev/null || true; done
tall=$(t); t0=$tall
eval "$(bash "$HERE/build-initrd.sh" | grep -E '^(KERNEL|INITRD)=')"
echo "image $(took "$t0")" >> "$OUT/timings"

# One mode: a fresh state disk, boot 1, then boot 2 on the same disk. Runs as a background job;
# its lines in timings are single short appends (atomic), its verdict lines go to stderr in one
# block per boot.
run_mode() {
  local mode=$1 STATE=$OUT/$1-state.img boots="1 2" boot dir t0 rc
  truncate -s 4G "$STATE"; mkfs.ext4 -q -F -E lazy_itable_init=1 "$STATE"
  { [ "$mode" = record ] || [ -n "$ONLY" ]; } && boots=1   # record, --only: one boot
  for boot in $boots; do
    dir=$OUT/$mode-boot$boot; mkdir -p "$dir"
    t0=$(t); rc=0
    bash "$HERE/boot.sh" "$KERNEL" "$INITRD" "$STATE" "$OUT" "$dir/serial.log" \
      "lab.init=$PROJECT/test/lab/guest/init lab.modules=$(dirname "$KERNEL")/lib/modules lab.project=$PROJECT lab.mode=$mode lab.boot=$boot lab.timeout=${LAB_GUEST_TIMEOUT:-1800} lab.baseline=${LAB_RECORD_BASELINE:-1} lab.only=$ONLY lab.caps=caps/$mode" || rc=$?
    echo "$mode-boot$boot $(took "$t0") qemu-exit=$rc cpu=$(cat "$dir/qemu-cpu-seconds" 2>/dev/null) load=$(cut -d' ' -f1 /proc/loadavg)" >> "$OUT/timings"
    { tr -d '\r' < "$dir/serial.log" | grep -E '^(LAB|INFO)' || true; } | sed "s/^/[$mode-boot$boot] /" >&2
    grep -q '^LAB-DONE' "$dir/serial.log" || { echo "run.sh: $mode boot $boot did not reach LAB-DONE" >&2; break; }
  done
  rm -f "$STATE"
}

running=0
for mode in $MODES; do
  if [ "$running" -ge "$JOBS" ]; then wait -n || true; running=$((running - 1)); fi
  run_mode "$mode" & running=$((running + 1))
done
wait || true
ok=1
for mode in $MODES; do
  boots="1 2"; { [ "$mode" = record ] || [ -n "$ONLY" ]; } && boots=1
  for boot in $boots; do grep -qs '^LAB-DONE' "$OUT/$mode-boot$boot/serial.log" || ok=0; done
done
echo "lab-total $(took "$tall") jobs=$JOBS smp=$LAB_SMP modes=${MODES// /,} load=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/timings"
mkdir -p "$CAPS"; for mode in $MODES; do cp -f "$OUT/caps/$mode"/*.xml "$CAPS/" 2>/dev/null || true; done
cat "$OUT/timings" >&2
echo $((1 - ok)) > "$OUT/exit-code"
[ $ok = 1 ]
