# ops.sh — issue 17 "Done when", sourced by checks-boot1.sh in every attach mode: on a running
# guest lab-o, disk hotplug and unplug (file and block device), cdrom media changes, a disk-only
# snapshot + active commit with pivot, a block copy with pivot, NIC hotplug and unplug on a
# libvirt network, save/restore. After each operation: it succeeded, QEMU is still exactly
# libvirt-<uuid> (enforce); after each addition QEMU opens the new path (the grant is in the
# loaded profile); after each removal QEMU's open of the removed path is refused by the KERNEL
# (Permission denied + apparmor="DENIED" … profile="libvirt-<uuid of lab-o>" name="<path>"),
# which proves the grant left the loaded profile, not only the file.
#
# Who grants, per attach mode:
#   helper:            libvirt's own AppArmor driver calls /usr/lib/libvirt/virt-aa-helper (ours)
#                      with -F before each new open and regenerates after each removal: the lab
#                      only drives virsh.
#   seclabel, wrapper: libvirt calls nothing; the admin runs `virt-aa-hook grant lab-o PATH
#                      [--read-only]` before an operation that opens a new file and `virt-aa-hook
#                      sync lab-o` after it (the live XML then names it, or no longer does).
# Negative controls: seclabel/wrapper: attach-disk without a grant fails with the kernel's DENIED
# line; a grant of another running guest's disk is refused. helper: an attach of another running
# guest's disk is refused by our helper (libvirt's attach fails, QEMU never opens it).

OG=lab-o
OIMG=/var/lib/libvirt/images
OLOOP=

ops_domain_xml() {
  cat <<XML
<domain type='qemu'>
  <name>$OG</name>
  <uuid>${UUID[$OG]}</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <features><acpi/></features>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$OIMG/$OG.qcow2'/>
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

# The admin's side in seclabel/wrapper mode (helper mode: libvirt calls our helper instead).
admin_grant() {
  [ "$LAB_ATTACH" = helper ] && return 0
  echo "grant: $(vah grant "$OG" "$@" 2>&1)" || return 1
}
admin_sync() {
  [ "$LAB_ATTACH" = helper ] && return 0
  local out rc; out=$(vah sync "$OG" 2>&1); rc=$?; echo "sync: $out"; return $rc
}
# do_op [GRANT-ARGS...] -- CMD...: the grant (if any), CMD, the sync.
do_op() {
  local g=() out rc
  while [ "$1" != -- ]; do g+=("$1"); shift; done; shift
  if [ ${#g[@]} -gt 0 ] && [ "$LAB_ATTACH" != helper ]; then
    out=$(vah grant "$OG" "${g[@]}" 2>&1) || { echo "grant ${g[*]} failed: $out"; return 1; }
    echo "grant: $out |"
  fi
  out=$("$@" 2>&1); rc=$?; echo "$*: $out"
  [ $rc = 0 ] || return 1
  admin_sync
}
hmp_o() { v qemu-monitor-command "$OG" --hmp "$1" 2>&1 | tr -d '\r'; }

# qemu_writes DEV: QEMU writes 4 KiB at offset 0 of the SCSI disk DEV through the fd it holds
# (HMP qemu-io; its report goes to QEMU's stdout, i.e. the guest's log), and the kernel logs no
# denial.
qemu_writes() {
  local mark lmark out log lines i qlog=/var/log/libvirt/qemu/$OG.log
  mark=$(dmesg | wc -l); lmark=$(wc -l < "$qlog")
  out=$(hmp_o "qemu-io -d $1 \"write -P 0x5a 0 4k\""; hmp_o "qemu-io -d $1 \"flush\"")
  # QEMU's report reaches its log through virtlogd: wait for it (up to 3 s), not a fixed time.
  for i in $(seq 1 30); do
    log=$(tail -n +$((lmark + 1)) "$qlog" | grep -v '^$')
    case $log in *wrote*|*rror*|*denied*|*failed*) break ;; esac
    sleep 0.1
  done
  lines=$(dmesg | tail -n +$((mark + 1)) | grep 'apparmor="DENIED"')
  echo "monitor: ${out:-(nothing)} | qemu: $log${lines:+ | kernel: $lines}"
  case $log in *"wrote 4096/4096"*) ;; *) return 1 ;; esac
  case "$out $log" in *rror*|*denied*|*failed*) return 1 ;; esac
  [ -z "$lines" ]
}

# No runtime grant from the network hook (or libvirt's tap fd) is left in lab-o's record.
no_nic_grants() {
  node -e '
    const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const g = s.grants || [];
    console.log("grants now: " + (JSON.stringify(g.map((x) => [x.path, x.by, x.source])) || "[]"));
    process.exit(g.some((x) => x.by === "network" || /^\/dev\/(net\/tun|tap|vhost)/.test(x.path)) ? 1 : 0);
  ' "/var/lib/virt-aa-hook/${UUID[$OG]}.json"
}

nic_slot_o() {
  v dumpxml "$OG" | awk -v mac="$1" '/<interface/{i=1;m=0} i&&index($0,mac){m=1}
    i&&m&&/<address type=.pci./{match($0,/slot=.0x[0-9a-f]+/); print substr($0,RSTART+6,RLENGTH-6); exit} /<\/interface>/{i=0}'
}
# detach_nic_o MAC: detach-interface, then what the guest's OS would do (lab-o has none): eject
# the PCI slot through piix4's ACPI hotplug register (0xae08, one bit per slot of bus 0; HMP "o").
detach_nic_o() {
  local slot i; slot=$(nic_slot_o "$1")
  v detach-interface "$OG" network --mac "$1" --live || return 1
  [ -n "$slot" ] && hmp_o "o /w 0xae08 $((1 << slot))" >/dev/null
  for i in $(seq 1 150); do v domiflist "$OG" | grep -qF "$1" || { echo "removed (slot $slot ejected)"; return 0; }; sleep 0.2; done
  echo "$1 still there after the eject of slot $slot"; return 1
}
nic_mac() { v domiflist "$OG" | awk -v m="$1" '$4 == m {print $5}' | tail -n 1; }

ops_setup() {
  qemu-img create -q -f qcow2 "$OIMG/$OG.qcow2" 16M || return 1
  qemu-img create -q -f qcow2 "$OIMG/$OG-hot.qcow2" 16M || return 1
  qemu-img create -q -f qcow2 "$OIMG/$OG-nogrant.qcow2" 16M || return 1
  truncate -s 1M "$OIMG/$OG-cd1.iso" "$OIMG/$OG-cd2.iso" || return 1
  chmod 0644 "$OIMG/$OG"*
  ops_domain_xml > "/tmp/$OG.xml"
  v define "/tmp/$OG.xml" >/dev/null || return 1
  if [ "$LAB_ATTACH" != helper ]; then lab_adopt "$OG" >/dev/null || return 1; fi
  lab_net_up || return 1
  v start "$OG" || return 1
  echo "block device $OLOOP; lab-o started"
}
# (check runs its command in a subshell: the loop device is set up here, where OLOOP stays set.)
truncate -s 16M "$OIMG/$OG-blk.raw"; modprobe loop 2>/dev/null
OLOOP=$(losetup -f --show "$OIMG/$OG-blk.raw" 2>&1) || info "losetup: $OLOOP"

# ---------------------------------------------------------------- the operations
check ops-setup ops_setup
check ops-label label_is "$OG"
ops_label() { check "ops-$1-label" label_is "$OG"; }

# Disk hotplug, a file.
check ops-attach-disk-file do_op "$OIMG/$OG-hot.qcow2" -- v attach-disk "$OG" "$OIMG/$OG-hot.qcow2" sdb --driver qemu --subdriver qcow2 --targetbus scsi --live
ops_label attach-disk-file
check ops-attach-disk-file-opens expect_opens "$OG" "$OIMG/$OG-hot.qcow2"
check ops-attach-disk-file-writes qemu_writes scsi0-0-0-1
check ops-detach-disk-file do_op -- v detach-disk "$OG" sdb --live
ops_label detach-disk-file
check ops-detach-disk-file-denied expect_denied "$OG" "$OIMG/$OG-hot.qcow2"

# Disk hotplug, a block device (a loop device). libvirt's DAC driver chowns it while attached and
# back to root after, in QEMU's own /dev (libvirt's mount namespace for the guest): made 0644
# there for the denial check, so only AppArmor can refuse.
check ops-attach-disk-block do_op "$OLOOP" -- v attach-disk "$OG" "$OLOOP" sdc --sourcetype block --driver qemu --subdriver raw --targetbus scsi --live
ops_label attach-disk-block
check ops-attach-disk-block-opens expect_opens "$OG" "$OLOOP"
check ops-detach-disk-block do_op -- v detach-disk "$OG" sdc --live
ops_label detach-disk-block
chmod 0644 "$OLOOP"; nsenter -t "$(qemu_pid "$OG")" -m chmod 0644 "$OLOOP" 2>/dev/null
info "lab-o's $OLOOP in QEMU's mount namespace: $(nsenter -t "$(qemu_pid "$OG")" -m ls -l "$OLOOP" 2>&1)"
check ops-detach-disk-block-denied expect_denied "$OG" "$OLOOP"

# cdrom: insert, update (the old medium's grant goes), eject (the last one's goes).
check ops-change-media-insert do_op "$OIMG/$OG-cd1.iso" --read-only -- v change-media "$OG" hdc "$OIMG/$OG-cd1.iso" --insert --live
ops_label change-media-insert
check ops-change-media-insert-opens expect_opens "$OG" "$OIMG/$OG-cd1.iso"
check ops-change-media-update do_op "$OIMG/$OG-cd2.iso" --read-only -- v change-media "$OG" hdc "$OIMG/$OG-cd2.iso" --update --live
ops_label change-media-update
check ops-change-media-update-opens expect_opens "$OG" "$OIMG/$OG-cd2.iso"
check ops-change-media-update-old-denied expect_denied "$OG" "$OIMG/$OG-cd1.iso"
check ops-change-media-eject do_op -- v change-media "$OG" hdc --eject --live
ops_label change-media-eject
check ops-change-media-eject-denied expect_denied "$OG" "$OIMG/$OG-cd2.iso"

# External disk-only snapshot, then an active commit of the overlay back into the old top, pivot.
# The old top is a read-only backing layer between the two (QEMU may not open it for writing),
# writable for the commit, the top again after; the overlay's grant goes.
check ops-snapshot-create do_op "$OIMG/$OG.snap1.qcow2" -- v snapshot-create-as "$OG" --disk-only --no-metadata --diskspec "sda,file=$OIMG/$OG.snap1.qcow2" --diskspec hdc,snapshot=no
ops_label snapshot-create
check ops-snapshot-writes-overlay qemu_writes scsi0-0-0-0
check ops-snapshot-base-write-denied expect_write_denied "$OG" "$OIMG/$OG.qcow2"
check ops-blockcommit-pivot do_op "$OIMG/$OG.qcow2" -- v blockcommit "$OG" sda --active --shallow --pivot --wait
ops_label blockcommit-pivot
check ops-blockcommit-writes-base qemu_writes scsi0-0-0-0
chmod 0644 "$OIMG/$OG.snap1.qcow2"   # libvirt made the overlay 0600 and DAC-restored it to root: only AppArmor may refuse now
check ops-blockcommit-overlay-denied expect_denied "$OG" "$OIMG/$OG.snap1.qcow2"

# Block copy to a new image, pivot: QEMU keeps writing the copy; the old image's grant goes.
check ops-blockcopy-pivot do_op "$OIMG/$OG.copy.qcow2" -- v blockcopy "$OG" sda "$OIMG/$OG.copy.qcow2" --format qcow2 --wait --pivot --transient-job
ops_label blockcopy-pivot
check ops-blockcopy-writes-copy qemu_writes scsi0-0-0-0
check ops-blockcopy-old-denied expect_denied "$OG" "$OIMG/$OG.qcow2"

# NIC hotplug on a libvirt network (NAT), twice: the default model and virtio.
for model in default virtio; do
  margs=(); [ $model = virtio ] && margs=(--model virtio)
  check "ops-attach-interface-$model" do_op -- v attach-interface "$OG" network labnat "${margs[@]}" --live
  ops_label "attach-interface-$model"
  mac=$(nic_mac "$([ $model = virtio ] && echo virtio || echo rtl8139)")
  check "ops-detach-interface-$model" do_op -- detach_nic_o "$mac"
  ops_label "detach-interface-$model"
  check "ops-detach-interface-$model-no-grant" no_nic_grants
done

# Negative controls.
if [ "$LAB_ATTACH" = helper ]; then
  # Our helper refuses libvirt's -F for another running guest's disk: the attach fails and the
  # guest has no such disk.
  neg_helper_attach() {
    local out; out=$(v attach-disk "$OG" "$(disk_of lab-b)" sdd --driver qemu --subdriver qcow2 --targetbus scsi --live 2>&1) && { echo "attached: $out"; return 1; }
    echo "virsh: $out | disks: $(v domblklist "$OG" | tr '\n' ' ')"
    ! v domblklist "$OG" | grep -qF "$(disk_of lab-b)"
  }
  check ops-negative-attach-other-guest-disk-refused neg_helper_attach
else
  # Without a grant, the attach fails and the kernel says why.
  neg_attach() {
    local mark out lines prof; prof=$(profile_of "$OG"); mark=$(dmesg | wc -l)
    out=$(v attach-disk "$OG" "$OIMG/$OG-nogrant.qcow2" sdd --driver qemu --subdriver qcow2 --targetbus scsi --live 2>&1) && { echo "attached without a grant: $out"; return 1; }
    lines=$(denied_since "$mark" "$prof" "$OIMG/$OG-nogrant.qcow2")
    echo "virsh: $out | kernel: ${lines:-no DENIED line}"
    [ -n "$lines" ]
  }
  check ops-negative-attach-without-grant-denied neg_attach
  # The admin's grant is judged by the same policy: another running guest's disk is refused.
  neg_grant() {
    local out; out=$(vah grant "$OG" "$(disk_of lab-b)" 2>&1) && { echo "granted: $out"; return 1; }
    echo "$out"; printf '%s' "$out" | grep -q 'virt-aa-hook: error:'
  }
  check ops-negative-grant-other-guest-disk-refused neg_grant
fi
ops_label after-negative

# Save and restore (the guest's own save image).
check ops-save v save "$OG" "/var/lib/libvirt/qemu/save/$OG.save"
# Issue 21: an image saved on a host with another attach mode. At restore our hook's `restore
# begin` (src/hook/incoming.ts) adopts its XML for this host's mode, and libvirt 9.0 runs what it
# printed. seclabel: our static label taken out of the image (virsh save-image-define) comes back,
# so libvirt's driver makes the transition to libvirt-<uuid> and runs no generator of its own
# (no-virt-aa-helper-after-ops fails otherwise). helper: our static label put into the image (as
# a seclabel host saves it) is taken out, so libvirt labels the domain dynamically and its helper
# (ours) keeps getting hotplug calls.
RESTORE_XML=$(mktemp)
save_image_edit() { # IMG PERL-EXPRESSION
  v save-image-dumpxml --security-info "$1" | perl -0pe "$2" > "$RESTORE_XML" && v save-image-define "$1" --xml "$RESTORE_XML" &&
    v save-image-dumpxml --security-info "$1" | grep -F "<seclabel" || true
}
OURS="<seclabel type='static' model='apparmor' relabel='no'>"
restore_adopted() { # WANT-IN-LOG WANT-IN-XML
  grep -F 'op="restore"' "$HOOK_LOG" | tail -n 1 | grep -F "exit=0" | grep -F "$1" && v dumpxml "$OG" | grep -F "$2"
}
if [ "$LAB_ATTACH" = seclabel ]; then
  check ops-save-image-foreign save_image_edit "/var/lib/libvirt/qemu/save/$OG.save" "s{<seclabel type='static' model='apparmor'.*?</seclabel>\\s*}{}gs"
elif [ "$LAB_ATTACH" = helper ]; then
  check ops-save-image-foreign save_image_edit "/var/lib/libvirt/qemu/save/$OG.save" \
    "s{<seclabel type='dynamic' model='apparmor'(?:[^>]*/>|.*?</seclabel>)\\s*}{}gs; s{</devices>}{</devices>\\n  $OURS<label>libvirt-${UUID[$OG]}</label></seclabel>}"
fi
check ops-restore v restore "/var/lib/libvirt/qemu/save/$OG.save"
if [ "$LAB_ATTACH" = seclabel ]; then
  check ops-restore-adopted restore_adopted "added <seclabel type='static' model='apparmor'> label libvirt-${UUID[$OG]}" "$OURS"
elif [ "$LAB_ATTACH" = helper ]; then
  check ops-restore-adopted restore_adopted "removed <seclabel type='static' model='apparmor'> label libvirt-${UUID[$OG]}" "<seclabel type='dynamic' model='apparmor'"
fi
rm -f "$RESTORE_XML"
ops_label restore
rm -f "/var/lib/libvirt/qemu/save/$OG.save"
v destroy "$OG" >/dev/null 2>&1
losetup -d "$OLOOP" 2>/dev/null
