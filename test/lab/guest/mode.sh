# mode.sh — THE one place that says how the lab's "host" is set up for an attach mode, and how
# virt-aa-hook is installed and guests adopted. Sourced by test/lab/guest/init. When the installer
# learns to detect the security driver, set the attach mode itself or adopt (--adopt-all), this
# is the file to change.
#
#   seclabel: libvirt's AppArmor driver (security_driver = "apparmor", Debian's default) makes the
#             transition, guests carry a static label libvirt-<uuid> (`virt-aa-hook adopt`).
#   wrapper:  libvirt has no AppArmor driver (security_driver = "none"); the guest's <emulator> is
#             the wrapper, which requests the transition when it execs QEMU.
#   helper:   libvirt's AppArmor driver with dynamic labels (security_driver = "apparmor"), its
#             /usr/lib/libvirt/virt-aa-helper diverted by install.sh to ours: no adoption.
#
# install.sh chooses the mode itself from security_driver (apparmor → helper, none → wrapper);
# for seclabel the lab writes virt-aa-hook.conf with attach = "seclabel" BEFORE install.sh (an
# admin's existing config is kept: no diversion), so the installer's choice is checked there too.

lab_mode() {
  LAB_REAL_HELPER=/usr/lib/libvirt/virt-aa-helper   # libvirt's own generator (the tripwire's path)
  [ "$1" = helper ] && LAB_REAL_HELPER=/usr/lib/libvirt/virt-aa-helper.real
  case $1 in
    seclabel) LAB_SECURITY_DRIVER=apparmor; LAB_ATTACH=seclabel ;;
    wrapper) LAB_SECURITY_DRIVER=none; LAB_ATTACH=wrapper ;;
    helper) LAB_SECURITY_DRIVER=apparmor; LAB_ATTACH=helper ;;
    # guest/record.sh: libvirt's own driver and helper, no virt-aa-hook (qemu.conf untouched).
    record) LAB_SECURITY_DRIVER=apparmor; LAB_ATTACH=none ;;
    *) echo "unknown lab mode \"$1\""; return 1 ;;
  esac
}

# The admin's command, as the installer leaves it: on PATH when it puts it there, else the bundle.
vah() {
  if [ -x /usr/sbin/virt-aa-hook ]; then /usr/sbin/virt-aa-hook "$@"
  else /usr/bin/node /usr/lib/virt-aa-hook/virt-aa-hook.cjs "$@"; fi
}

# qemu.conf's security_driver, before libvirtd first starts.
lab_qemu_conf() {
  sed -i '/^[[:space:]]*security_driver[[:space:]]*=/d' /etc/libvirt/qemu.conf
  echo "security_driver = \"$LAB_SECURITY_DRIVER\"" >> /etc/libvirt/qemu.conf
  # helper mode: a NON-default memory_backing_dir (issue 18: the hook reads qemu.conf's per-guest
  # dirs; guest lab-m of guest/devices.sh has file-backed RAM there).
  if [ "$LAB_ATTACH" = helper ]; then
    sed -i '/^[[:space:]]*memory_backing_dir[[:space:]]*=/d' /etc/libvirt/qemu.conf
    echo 'memory_backing_dir = "/srv/lab-ram"' >> /etc/libvirt/qemu.conf
  fi
  echo "qemu.conf: $(grep '^security_driver\|^memory_backing_dir' /etc/libvirt/qemu.conf)"
}

# The project's own installer, as an admin runs it on this host (not --root: it loads profiles).
lab_install() {
  [ "$LAB_ATTACH" = seclabel ] && lab_hook_conf
  bash "$PROJECT/install/install.sh" --node /usr/bin/node
}

# What install.sh chose on its own from qemu.conf and the kernel (the admin's quick start): the
# command on PATH, attach mode matching security_driver, started_check = "enforce".
lab_installer_choice() {
  [ -x /usr/sbin/virt-aa-hook ] || { echo "no /usr/sbin/virt-aa-hook"; return 1; }
  out=$(/usr/sbin/virt-aa-hook install-summary 2>&1); echo "$out"
  printf '%s\n' "$out" | grep -qF "attach = \"$LAB_ATTACH\", started_check = \"enforce\""
}

# virt-aa-hook.conf written whole afterwards, so the checks below do not depend on the installer's
# defaults (install-chose-attach-mode checks those) and the hook logs at debug level.
lab_hook_conf() {
  cat > /etc/libvirt/virt-aa-hook.conf <<CONF
# written by the virt-aa-hook lab (test/lab/guest/mode.sh)
mode = "enforce"
attach = "$LAB_ATTACH"
started_check = "enforce"
log_level = "debug"
CONF
  echo "virt-aa-hook.conf: attach=$LAB_ATTACH started_check=enforce mode=enforce"
}

# adopt NAME...: what an admin runs for a guest defined before (or without) the hook (helper
# mode: nothing, libvirt's dynamic label is the guest's profile).
lab_adopt() { [ "$LAB_ATTACH" = helper ] && return 0; vah adopt -c "$URI" "$@"; }

# What the host's boot does before libvirtd starts: Debian's apparmor.service (loads every profile
# directly in /etc/apparmor.d; not the per-guest ones in libvirt/), then the daemons.
lab_boot_services() {
  /lib/apparmor/apparmor.systemd reload || echo "apparmor.systemd reload failed (exit $?)"
  start_virtlogd
}
