# mode.sh — THE one place that says how the lab's "host" is set up for an attach mode, and how
# virt-aa-hook is installed and guests adopted. Sourced by test/lab/guest/init. When the installer
# learns to detect the security driver, set the attach mode itself or adopt (--adopt-all), this
# is the file to change.
#
#   seclabel: libvirt's AppArmor driver (security_driver = "apparmor", Debian's default) makes the
#             transition, guests carry a static label libvirt-<uuid> (`virt-aa-hook adopt`).
#   wrapper:  libvirt has no AppArmor driver (security_driver = "none"); the guest's <emulator> is
#             the wrapper, which requests the transition when it execs QEMU.

lab_mode() {
  case $1 in
    seclabel) LAB_SECURITY_DRIVER=apparmor; LAB_ATTACH=seclabel ;;
    wrapper) LAB_SECURITY_DRIVER=none; LAB_ATTACH=wrapper ;;
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
  echo "qemu.conf: $(grep '^security_driver' /etc/libvirt/qemu.conf)"
}

# The project's own installer, as an admin runs it on this host (not --root: it loads profiles).
lab_install() {
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

# adopt NAME...: what an admin runs for a guest defined before (or without) the hook.
lab_adopt() { vah adopt -c "$URI" "$@"; }

# What the host's boot does before libvirtd starts: Debian's apparmor.service (loads every profile
# directly in /etc/apparmor.d; not the per-guest ones in libvirt/), then the daemons.
lab_boot_services() {
  /lib/apparmor/apparmor.systemd reload || echo "apparmor.systemd reload failed (exit $?)"
  start_virtlogd
}
