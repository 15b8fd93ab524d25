# checks-boot2.sh — second boot of a mode on the same state disk: a host reboot. The guests the
# first boot defined are still there, the autostart guest came up confined, others start confined.
listed() {
  local all n; all=$(v list --all --name)
  echo "defined: $(echo $all)"
  for n in "$@"; do printf '%s\n' "$all" | grep -qx "$n" || { echo "$n missing"; return 1; }; done
}
check reboot-domains-listed listed lab-a lab-b lab-auto
check reboot-autostart-running wait_state lab-auto running 120
check reboot-lab-auto-label label_is lab-auto
check reboot-start-lab-a v start lab-a
check reboot-lab-a-label label_is lab-a
# lab-b stays stopped: its start after the reboot would be lab-a's again (same mode, same path),
# and lab-a's denial of lab-b's disk does not depend on lab-b running (README "Deliberate cuts").
isolation "reboot-" lab-a lab-b
