#!/bin/bash
# boot.sh KERNEL INITRD SERIAL_LOG [EXTRA_KERNEL_ARGS] — boot the enforcement VM once under TCG,
# with the serial console in SERIAL_LOG. Returns QEMU's exit code (124: timed out).
set -euo pipefail
KERNEL=$1 INITRD=$2 SERIAL=$3 EXTRA=${4:-}
# /dev/kvm is no help here: the machine's kvm is a software virtualizer slower than TCG.
ACCEL=${ENFORCE_ACCEL:-tcg}
rm -f "$SERIAL"
set +e
timeout "${ENFORCE_BOOT_TIMEOUT:-900}" qemu-system-x86_64 -accel "$ACCEL" -m "${ENFORCE_MEM:-1024}" -smp 1 \
  -display none -no-reboot -nic none -monitor none \
  -kernel "$KERNEL" -initrd "$INITRD" \
  -append "console=ttyS0 panic=-1 quiet cryptomgr.notests log_buf_len=4M $EXTRA" \
  -serial "file:$SERIAL" </dev/null
rc=$?
set -e
exit $rc
