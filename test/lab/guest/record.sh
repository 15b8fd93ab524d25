# record.sh — the lab's "record" mode (sourced by test/lab/guest/init, one boot): libvirt 9.0 with
# its OWN AppArmor driver and dynamic labels (qemu.conf untouched: security_driver unset, so
# "apparmor"), no virt-aa-hook at all. /usr/lib/libvirt/virt-aa-helper is diverted
# (dpkg-divert --rename, as helper mode does) and replaced by a recording sh wrapper that saves
# each call's argv, stdin, environment, stderr and exit code and runs the real helper. A recording
# network hook saves what libvirt hands /etc/libvirt/hooks/network. Then one guest goes through
# every operation of issue 17; per operation: virsh's answer, the helper calls in order, the
# kernel's new AppArmor lines, .files afterwards, QEMU's label. test/lab/record-to-fixtures.mjs
# turns $REC into test/fixtures/libvirt-helper-calls/<operation>.json on the host.
#
# The wrapper runs where libvirt's helper runs: libvirtd's "/usr/lib/libvirt/* PUxr" puts it in
# the virt-aa-helper profile (attached by the path /usr/lib/libvirt/virt-aa-helper). That profile
# lets it do nothing a shell script needs, so the VM's local include gets what the RECORDING needs
# (the shell, cat, the real helper inherited, the result share); the real helper keeps every rule
# it has. Nothing else in libvirt's policy changes.

REC=$OUT/record
REAL=/usr/lib/libvirt/virt-aa-helper.real
RIMG=/var/lib/libvirt/images
RNAME=rec-a
RUUID=1ab00a11-0000-4000-8000-0000000000a1
RPROF=libvirt-$RUUID

record_setup() {
  mkdir -p "$REC/calls" "$REC/ops" "$REC/nethook"
  dpkg-divert --quiet --rename --divert "$REAL" --add /usr/lib/libvirt/virt-aa-helper \
    || { echo "dpkg-divert failed: moving by hand"; mv /usr/lib/libvirt/virt-aa-helper "$REAL"; }
  cat > /usr/lib/libvirt/virt-aa-helper <<WRAP
#!/bin/sh
# virt-aa-hook lab: recording wrapper for libvirt's virt-aa-helper (test/lab/guest/record.sh)
read up _ < /proc/uptime
up=\$(printf '%012d' "\${up%.*}\${up#*.}")
n=$REC/calls/\$up-\$\$
for a in "\$0" "\$@"; do printf '%s\n' "\$a"; done > "\$n.argv"
export -p > "\$n.env"
cat > "\$n.stdin"
$REAL "\$@" < "\$n.stdin" 2> "\$n.stderr"
rc=\$?
echo \$rc > "\$n.rc"
cat "\$n.stderr" >&2
exit \$rc
WRAP
  chmod 0755 /usr/lib/libvirt/virt-aa-helper
  cat >> /etc/apparmor.d/local/usr.lib.libvirt.virt-aa-helper <<'RULES'
# virt-aa-hook lab (record mode): what the recording wrapper itself needs
/usr/bin/dash mrix,
/usr/bin/cat mrix,
/usr/lib/libvirt/virt-aa-helper r,
/usr/lib/libvirt/virt-aa-helper.real mrix,
@{PROC}/uptime r,
/mnt/lab-out/ r,
/mnt/lab-out/** rw,
RULES
  # The network hook libvirt runs (in libvirtd's own profile: /etc/libvirt/hooks/** rmix).
  mkdir -p /etc/libvirt/hooks
  cat > /etc/libvirt/hooks/network <<HOOK
#!/bin/sh
read up _ < /proc/uptime
up=\$(printf '%012d' "\${up%.*}\${up#*.}")
n=$REC/nethook/\$up-\$\$
for a in "\$0" "\$@"; do printf '%s\n' "\$a"; done > "\$n.argv"
cat > "\$n.stdin"
exit 0
HOOK
  chmod 0755 /etc/libvirt/hooks/network
  echo "diverted: $(dpkg-divert --list /usr/lib/libvirt/virt-aa-helper)"
}

# ---------------------------------------------------------------- per operation

OPN=0
# op NAME CMD...: run CMD (a virsh call, usually), then file what happened under $REC/ops/NN-NAME.
op() {
  local name=$1 dir mark t0 out rc d; shift
  OPN=$((OPN + 1)); dir=$REC/ops/$(printf %02d $OPN)-$name; mkdir -p "$dir"
  mark=$(dmesg | wc -l); t0=$(now)
  out=$("$@" 2>&1); rc=$?
  sleep 2   # block job completions run their regeneration from libvirt's event thread
  d=$(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}')
  printf '%s\n' "$*" > "$dir/command"; printf '%s\n' "$out" > "$dir/output"; echo $rc > "$dir/exit"
  mv "$REC"/calls/* "$dir/" 2>/dev/null
  ls "$REC"/nethook/*.argv >/dev/null 2>&1 && { mkdir -p "$dir/nethook"; mv "$REC"/nethook/* "$dir/nethook/"; }
  dmesg | tail -n +$((mark + 1)) | grep 'apparmor=' > "$dir/apparmor.log"
  cp "/etc/apparmor.d/libvirt/$RPROF.files" "$dir/files-after" 2>/dev/null
  label_of > "$dir/label"
  local calls; calls=$(ls "$dir" | grep -c '\.argv$')
  verdict "record-$name" "$([ $rc = 0 ] && echo PASS || echo FAIL)" "(${d}s) exit $rc, $calls helper calls: $(for f in "$dir"/*.argv; do [ -f "$f" ] && printf '[%s rc=%s] ' "$(tail -n +2 "$f" | tr '\n' ' ')" "$(cat "${f%.argv}.rc" 2>/dev/null)"; done) | $out | label $(cat "$dir/label") | $(grep -c DENIED "$dir/apparmor.log") DENIED"
  return $rc
}
qemu_fds() { local p; p=$(qemu_pid "$RNAME"); for f in /proc/$p/fd/*; do readlink "$f"; done | sort | uniq -c | grep -v 'socket:\|anon_inode\|pipe:'; }
label_of() { local p; p=$(qemu_pid "$RNAME"); [ -n "$p" ] && cat "/proc/$p/attr/current" 2>&1 || echo "(not running)"; }

# probe NAME CMD...: a check whose output (with the kernel's new AppArmor lines) is filed, no op.
probe() {
  local name=$1 dir mark out rc; shift
  dir=$REC/probes; mkdir -p "$dir"
  mark=$(dmesg | wc -l)
  out=$("$@" 2>&1); rc=$?
  sleep 0.3
  local k; k=$(dmesg | tail -n +$((mark + 1)) | grep 'apparmor=')
  printf '%s\n' "$out" "--- kernel:" "$k" > "$dir/$name"
  info "probe $name: rc $rc: $out | kernel: ${k:-none}"
}
hmp() { v qemu-monitor-command "$RNAME" --hmp "$1" 2>&1 | tr -d '\r'; }
# qemu_write DEV: QEMU writes 4 KiB at offset 0 of the disk with that qdev id (through its open fd).
# (qemu-io reports on QEMU's stdout: the guest's log, whose new lines are shown.)
qlog_since() { tail -n +$(($1 + 1)) "/var/log/libvirt/qemu/$RNAME.log"; }
qemu_write() { local m; m=$(wc -l < "/var/log/libvirt/qemu/$RNAME.log"); hmp "qemu-io -d $1 \"write -P 0x5a 0 4k\""; hmp "qemu-io -d $1 \"flush\""; sleep 0.3; qlog_since "$m"; }
qemu_read() { local m; m=$(wc -l < "/var/log/libvirt/qemu/$RNAME.log"); hmp "qemu-io -d $1 \"read 0 4k\""; sleep 0.3; qlog_since "$m"; }

rec_domain_xml() {
  cat <<XML
<domain type='qemu'>
  <name>$RNAME</name>
  <uuid>$RUUID</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <features><acpi/></features>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$RIMG/$RNAME.qcow2'/>
      <target dev='sda' bus='scsi'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>
    <controller type='scsi' index='0' model='virtio-scsi'/>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
XML
}

# detach_nic MAC: virsh detach-interface, then what the guest's OS would do (this guest has none):
# eject the PCI slot through the piix4 ACPI hotplug register (0xae08, one bit per slot of bus 0;
# HMP "o"), so QEMU unplugs the NIC and libvirt finishes the removal; waits until it is gone.
nic_slot() {
  v dumpxml "$RNAME" | awk -v mac="$1" '/<interface/{i=1;m=0} i&&index($0,mac){m=1}
    i&&m&&/<address type=.pci./{match($0,/slot=.0x[0-9a-f]+/); print substr($0,RSTART+6,RLENGTH-6); exit} /<\/interface>/{i=0}'
}
detach_nic() {
  local slot i; slot=$(nic_slot "$1")
  v detach-interface "$RNAME" "${2:-network}" --mac "$1" --live || return 1
  [ -n "$slot" ] && hmp "o /w 0xae08 $((1 << slot))"
  for i in $(seq 1 60); do v domiflist "$RNAME" | grep -qF "$1" || { echo "removed (slot $slot ejected)"; return 0; }; sleep 0.5; done
  echo "still there after the eject of slot $slot"; return 1
}
mac_of_model() { v domiflist "$RNAME" | awk -v m="$1" '$4 == m {print $5}' | tail -n 1; }

record_ops() {
  local f
  # Images: a qcow2 chain (rec-a.qcow2 -> base.qcow2), a hotplug qcow2, a block device (loop),
  # two "cdrom" media, all 0644 so only AppArmor can refuse QEMU.
  qemu-img create -q -f qcow2 "$RIMG/base.qcow2" 16M
  qemu-img create -q -f qcow2 -b "$RIMG/base.qcow2" -F qcow2 "$RIMG/$RNAME.qcow2"
  qemu-img create -q -f qcow2 "$RIMG/hot.qcow2" 16M
  truncate -s 1M "$RIMG/cd1.iso" "$RIMG/cd2.iso"
  truncate -s 16M "$RIMG/blk.raw"
  chmod 0644 "$RIMG"/*
  modprobe loop 2>/dev/null
  LOOP=$(losetup -f --show "$RIMG/blk.raw" 2>&1); info "block device: $LOOP ($(ls -l "$LOOP" 2>&1))"
  info "network: $(lab_net_up 2>&1)"
  rec_domain_xml > /tmp/$RNAME.xml

  op define v define /tmp/$RNAME.xml
  op start v start "$RNAME"
  probe start-files cat "/etc/apparmor.d/libvirt/$RPROF.files"
  probe start-write-vda qemu_write scsi0-0-0-0

  op attach-disk-file v attach-disk "$RNAME" "$RIMG/hot.qcow2" sdb --driver qemu --subdriver qcow2 --targetbus scsi --live
  probe attach-disk-file-write qemu_write scsi0-0-0-1
  op detach-disk-file v detach-disk "$RNAME" sdb --live
  sleep 2
  probe detach-disk-file-open-after hmp "drive_add 0 if=none,id=p1,file=$RIMG/hot.qcow2,readonly=on,file.locking=off"

  op attach-disk-block v attach-disk "$RNAME" "$LOOP" sdc --sourcetype block --driver qemu --subdriver raw --targetbus scsi --live
  probe attach-disk-block-write qemu_write scsi0-0-0-2
  op detach-disk-block v detach-disk "$RNAME" sdc --live
  sleep 2
  chmod 0644 "$LOOP"   # libvirt's DAC restore made it root 0600: only AppArmor may refuse now
  probe detach-disk-block-open-after hmp "drive_add 0 if=none,id=p2,file=$LOOP,format=raw,readonly=on,file.locking=off"

  op change-media-insert v change-media "$RNAME" hdc "$RIMG/cd1.iso" --insert --live
  op change-media-update v change-media "$RNAME" hdc "$RIMG/cd2.iso" --update --live
  probe change-media-update-open-cd1 hmp "drive_add 0 if=none,id=p3,file=$RIMG/cd1.iso,format=raw,readonly=on,file.locking=off"
  op change-media-eject v change-media "$RNAME" hdc --eject --live
  probe change-media-eject-open-cd2 hmp "drive_add 0 if=none,id=p4,file=$RIMG/cd2.iso,format=raw,readonly=on,file.locking=off"

  op snapshot-create-disk-only v snapshot-create-as "$RNAME" --disk-only --no-metadata --diskspec "sda,file=$RIMG/$RNAME.snap1.qcow2" --diskspec hdc,snapshot=no
  probe snapshot-write-overlay qemu_write scsi0-0-0-0
  probe snapshot-domblklist v domblklist "$RNAME" --details
  op blockcommit-active-pivot v blockcommit "$RNAME" sda --active --shallow --pivot --wait --verbose
  probe blockcommit-write-base qemu_write scsi0-0-0-0
  probe blockcommit-open-overlay hmp "drive_add 0 if=none,id=p5,file=$RIMG/$RNAME.snap1.qcow2,readonly=on,file.locking=off"
  probe blockcommit-domblklist v domblklist "$RNAME" --details

  op blockcopy-pivot v blockcopy "$RNAME" sda "$RIMG/$RNAME.copy.qcow2" --format qcow2 --wait --pivot --verbose --transient-job
  sleep 2
  probe blockcopy-domblklist v domblklist "$RNAME" --details
  probe blockcopy-files-has-copy grep -F "$RNAME.copy.qcow2" "/etc/apparmor.d/libvirt/$RPROF.files"
  probe blockcopy-write-copy qemu_write scsi0-0-0-0
  probe blockcopy-read-copy qemu_read scsi0-0-0-0
  probe blockcopy-open-copy-by-path hmp "drive_add 0 if=none,id=p6,file=$RIMG/$RNAME.copy.qcow2,readonly=on,file.locking=off"
  # Open question b, straight in the kernel: the loaded profile replaced WITHOUT the copy's rule
  # (what a regeneration that forgets the new top would load): can QEMU still write through the
  # fd it holds? Then the rule back.
  cp "/etc/apparmor.d/libvirt/$RPROF.files" /tmp/files.keep
  grep -vF "$RNAME.copy.qcow2" /tmp/files.keep > "/etc/apparmor.d/libvirt/$RPROF.files"
  probe revalidate-reload apparmor_parser -r "/etc/apparmor.d/libvirt/$RPROF"
  probe revalidate-write-copy-without-rule qemu_write scsi0-0-0-0
  probe revalidate-read-copy-without-rule qemu_read scsi0-0-0-0
  probe revalidate-open-copy-by-path-without-rule hmp "drive_add 0 if=none,id=p7,file=$RIMG/$RNAME.copy.qcow2,readonly=on,file.locking=off"
  cp /tmp/files.keep "/etc/apparmor.d/libvirt/$RPROF.files"
  probe revalidate-restore apparmor_parser -r "/etc/apparmor.d/libvirt/$RPROF"
  probe revalidate-write-copy-with-rule qemu_write scsi0-0-0-0
  # A regeneration (any Restore* callback: here a disk hotplug + unplug) after the pivot: does the
  # copy, now the top, come back into .files, and can QEMU still write it?
  op attach-disk-file-after-copy v attach-disk "$RNAME" "$RIMG/hot.qcow2" sdb --driver qemu --subdriver qcow2 --targetbus scsi --live
  op detach-disk-file-after-copy v detach-disk "$RNAME" sdb --live
  probe after-copy-regen-files-has-copy grep -F "$RNAME.copy.qcow2" "/etc/apparmor.d/libvirt/$RPROF.files"
  probe after-copy-regen-write-copy qemu_write scsi0-0-0-0

  op attach-interface-network v attach-interface "$RNAME" network labnat --live
  probe attach-interface-network-iflist v domiflist "$RNAME"
  probe attach-interface-network-qemu-fds qemu_fds
  probe attach-interface-network-files cat "/etc/apparmor.d/libvirt/$RPROF.files"
  f=$(mac_of_model rtl8139); [ -n "$f" ] || f=$(v domiflist "$RNAME" | awk 'NR==1{print $5}')
  op detach-interface-network detach_nic "$f"
  op attach-interface-network-virtio v attach-interface "$RNAME" network labnat --model virtio --live
  probe attach-interface-network-virtio-iflist v domiflist "$RNAME"
  probe attach-interface-network-virtio-qemu-fds qemu_fds
  probe attach-interface-network-virtio-files cat "/etc/apparmor.d/libvirt/$RPROF.files"
  f=$(mac_of_model virtio)
  op detach-interface-network-virtio detach_nic "$f"

  # macvtap (type='direct' on a dummy link): libvirt opens /dev/tapN itself and hands QEMU the fd.
  modprobe dummy; modprobe macvtap
  ip link add labdummy0 type dummy && ip link set labdummy0 up
  op attach-interface-direct v attach-interface "$RNAME" direct labdummy0 --model virtio --live
  probe attach-interface-direct-iflist v domiflist "$RNAME"
  probe attach-interface-direct-qemu-fds qemu_fds
  probe attach-interface-direct-files cat "/etc/apparmor.d/libvirt/$RPROF.files"
  f=$(mac_of_model virtio)
  op detach-interface-direct detach_nic "$f" direct
  probe detach-interface-direct-files cat "/etc/apparmor.d/libvirt/$RPROF.files"

  mkdir -p /var/lib/libvirt/qemu/save
  op save v save "$RNAME" "/var/lib/libvirt/qemu/save/$RNAME.save"
  op restore v restore "/var/lib/libvirt/qemu/save/$RNAME.save"
  op destroy v destroy "$RNAME"
  # The network hook's own record: which calls reached /etc/libvirt/hooks/network, per operation.
  info "network hook calls: $(for f in "$REC"/nethook/*.argv "$REC"/ops/*/nethook/*.argv; do [ -f "$f" ] && printf '[%s: %s] ' "$(basename "$(dirname "$(dirname "$f")")")" "$(tail -n +2 "$f" | tr '\n' ' ')"; done)"
  cp -f "$LIBVIRTD_LOG" "$REC/" 2>/dev/null
  info "profile file kept after destroy: $(ls -l /etc/apparmor.d/libvirt/ 2>&1 | tr '\n' ' ')"
}
