#!/bin/bash
# boot.sh KERNEL INITRD STATE_IMG OUT_DIR SERIAL_LOG "KERNEL ARGS" — one TCG boot of the lab VM: this machine's
# root shared read-only (9p tag hostroot), OUT_DIR shared writable (tag labout: results, logs,
# capabilities cache), STATE_IMG as /dev/vda (the overlay's writable layer: /etc, /var, ... of the
# VM, kept across the boots of one run). Serial console in SERIAL_LOG. Exit: QEMU's
# (124: timed out).
set -euo pipefail
KERNEL=$1 INITRD=$2 STATE=$3 OUT=$4 SERIAL=$5 APPEND=$6
rm -f "$SERIAL"
set +e
# /dev/kvm is no help on these machines (a software virtualizer slower than TCG); tcg threads:
# the VM's 2 vCPUs run on the host's 2 cores.
timeout "${LAB_BOOT_TIMEOUT:-2000}" qemu-system-x86_64 -accel "${LAB_ACCEL:-tcg,thread=multi}" -cpu max \
  -m "${LAB_MEM:-4096}" -smp "${LAB_SMP:-2}" \
  -display none -no-reboot -nic none -monitor none -nodefaults \
  -kernel "$KERNEL" -initrd "$INITRD" \
  -append "console=ttyS0 panic=-1 quiet cryptomgr.notests log_buf_len=16M $APPEND" \
  -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap \
  -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
  -fsdev local,id=labout,path="$OUT",security_model=none,multidevs=remap \
  -device virtio-9p-pci,fsdev=labout,mount_tag=labout \
  -drive file="$STATE",if=none,id=state,format=raw,cache=unsafe \
  -device virtio-blk-pci,drive=state \
  -serial "file:$SERIAL" </dev/null
rc=$?
set -e
# QEMU's CPU time (user + sys, seconds: this shell's waited-for descendants) next to the serial log,
# for run.sh's timings: CPU seconds over wall seconds says how many of the host's cores a boot
# kept busy, i.e. whether running modes in parallel can gain anything on this machine.
CPU=$(dirname "$SERIAL")/qemu-cpu-seconds
times > "$CPU"   # not in a pipeline: a subshell's `times` has no children
awk 'NR == 2 { n = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); n += a[1] * 60 + a[2] } printf "%.0f\n", n }' "$CPU" > "$CPU.tmp" && mv "$CPU.tmp" "$CPU"
exit $rc
