# devices.sh — issue 18 "Done when … where it can be done in the enforcement lab, a QEMU that uses
# the device starts confined": guests using the device families libvirt 9.0 (Debian 12) can run
# under TCG, each started by libvirt in `helper` mode (sourced by checks-boot1.sh in helper mode
# only, and by run.sh --only devices). Per guest: it starts, its QEMU is exactly
# libvirt-<uuid> (enforce), and what the device needs is in use; one negative control.
#
#   lab-f  <filesystem type='mount' accessmode='mapped'> (9p, /srv/lab-9p/lab-f) and
#          <interface type='direct'> (macvtap on the dummy link labdummy0)
#   lab-r  <loader type='rom'> from /usr/local/share/qemu (a copy of Debian's SeaBIOS)
#   lab-m  file-backed RAM (<memoryBacking><source type='file'/>) in qemu.conf's NON-default
#          memory_backing_dir = "/srv/lab-ram" (mode.sh lab_qemu_conf writes it in helper mode)
#   lab-s  <graphics type='dbus'/> (libvirt 9.0 starts a per-guest dbus-daemon; QEMU connects to
#          its socket), and a 9p share of its own (/srv/lab-9p/lab-s: lab-f's negative control)
# One family or two per guest, so that one missing rule does not hide the others (a QEMU that is
# refused one file does not start, and opens nothing after it). No guest has a disk.
# Not here: passt (`<backend type='passt'/>`): libvirt 9.0 rejects the XML ("Invalid value for
# attribute 'type' in element 'backend': 'passt'", measured in this VM): libvirt 9.2+ only.
#
# Checks (lab.test.ts DEVICES): dev-define; per guest dev-<g>-start, dev-<g>-label; lab-f:
# dev-lab-f-9p-opens-own (QEMU opens a file in its own share), dev-lab-f-denied-lab-s-9p (negative
# control: a file in lab-s's share, 0644, Permission denied + the kernel's DENIED line for lab-f's
# profile), dev-lab-f-macvtap (QEMU holds the macvtap's /dev/tapN); lab-r: dev-lab-r-rom-write-denied
# (the ROM is read-only in the profile: an O_RDWR open of it is denied by the kernel, the file
# being 0666 so only AppArmor can refuse; rom_write_denied, not lib.sh's expect_write_denied); lab-m: dev-lab-m-memory-file (QEMU maps a file under
# /srv/lab-ram); lab-s: dev-lab-s-dbus (QEMU's command line has -display dbus, its log no error).

DEV_ROM=/usr/local/share/qemu/lab-bios.bin
DEV_9P=/srv/lab-9p
DEV_RAM=/srv/lab-ram

# dev_xml NAME EXTRA_OS EXTRA_DEVICES [EXTRA_DOMAIN]: lib.sh's guest with elements added.
dev_xml() {
  domain_xml "$1" | sed -e '/<disk /,/<\/disk>/d' -e "s|<boot dev='hd'/>|$2<boot dev='hd'/>|" -e "s|</devices>|$3</devices>|" \
    -e "s|<vcpu>1</vcpu>|<vcpu>1</vcpu>${4:-}|"
}

dev_setup() {
  local g
  modprobe dummy; modprobe macvtap; modprobe tun
  ip link show labdummy0 >/dev/null 2>&1 || { ip link add labdummy0 type dummy && ip link set labdummy0 up; } || return 1
  mkdir -p /usr/local/share/qemu && cp /usr/share/seabios/bios-256k.bin "$DEV_ROM" && chmod 0666 "$DEV_ROM" || return 1
  for g in lab-f lab-s; do
    mkdir -p "$DEV_9P/$g" && chmod 0777 "$DEV_9P/$g" && truncate -s 64K "$DEV_9P/$g/probe.img" && chmod 0644 "$DEV_9P/$g/probe.img" || return 1
  done
  mkdir -p "$DEV_RAM" || return 1
  dev_xml lab-f "" \
    "<filesystem type='mount' accessmode='mapped'><source dir='$DEV_9P/lab-f'/><target dir='labshare'/></filesystem><interface type='direct'><source dev='labdummy0' mode='bridge'/><model type='virtio'/></interface>" > /tmp/lab-f.xml
  dev_xml lab-r "<loader type='rom'>$DEV_ROM</loader>" "" > /tmp/lab-r.xml
  dev_xml lab-m "" "" "<memoryBacking><source type='file'/><access mode='shared'/></memoryBacking>" > /tmp/lab-m.xml
  dev_xml lab-s "" "<filesystem type='mount' accessmode='mapped'><source dir='$DEV_9P/lab-s'/><target dir='labshare'/></filesystem><graphics type='dbus'/>" > /tmp/lab-s.xml
  for g in lab-f lab-r lab-m lab-s; do v define "/tmp/$g.xml" >/dev/null || return 1; done
  echo "qemu.conf: $(grep '^memory_backing_dir' /etc/libvirt/qemu.conf); defined lab-f lab-r lab-m lab-s; dbus-daemon: $(command -v dbus-daemon || echo none)"
}

# dev_start NAME: virsh start; on failure the kernel's DENIED lines for its profile and the tail
# of its QEMU log name what was missing.
dev_start() {
  local mark out rc
  mark=$(dmesg | wc -l)
  out=$(v start "$1" 2>&1); rc=$?
  echo "$out"
  [ $rc -eq 0 ] && return 0
  echo "| kernel: $(dmesg | tail -n +$((mark + 1)) | grep 'apparmor="DENIED"' | tail -n 5)"
  echo "| qemu log: $(tail -n 3 "/var/log/libvirt/qemu/$1.log" 2>/dev/null)"
  return $rc
}

# rom_write_denied NAME PATH: NAME's QEMU may not open the raw file PATH read-write. HMP drive_add
# defaults to auto-read-only=on, and for a raw file nothing asks for write permission, so QEMU
# would open it read-only and never try (measured: "OK" and no kernel line even with a rw grant
# in doubt): file.auto-read-only=off makes it open O_RDWR at once.
rom_write_denied() {
  local mark out lines prof
  prof=$(profile_of "$1"); mark=$(dmesg | wc -l); HMP_N=$((HMP_N + 1))
  out=$(v qemu-monitor-command "$1" --hmp "drive_add 0 if=none,id=labrw$HMP_N,format=raw,file=$2,file.auto-read-only=off,file.locking=off" 2>&1 | tr -d '\r')
  [ "$(printf '%s' "$out" | sed '/^$/d')" = OK ] && v qemu-monitor-command "$1" --hmp "drive_del labrw$HMP_N" >/dev/null 2>&1
  lines=$(denied_since "$mark" "$prof" "$2" 'denied_mask="[^"]*w')
  echo "qemu: $out | kernel: ${lines:-no DENIED write line for $prof and $2}"
  case $out in *"Permission denied"*) ;; *) return 1 ;; esac
  [ -n "$lines" ]
}

qemu_holds_tap() {
  local p f l; p=$(qemu_pid "$1"); [ -n "$p" ] || { echo "not running"; return 1; }
  for f in /proc/"$p"/fd/*; do l=$(readlink "$f"); case $l in /dev/tap*) echo "QEMU fd $(basename "$f") -> $l; $(ip -o link show type macvtap | cut -d' ' -f2-3)"; return 0 ;; esac; done
  echo "QEMU holds no /dev/tapN: $(ls -l /proc/"$p"/fd | grep -v 'socket:\|anon_inode\|pipe:' | awk '{print $NF}' | tr '\n' ' ')"; return 1
}
qemu_maps_under() {
  local p l; p=$(qemu_pid "$1"); [ -n "$p" ] || { echo "not running"; return 1; }
  l=$(grep -F " $2/" "/proc/$p/maps" | awk '{print $NF}' | sort -u)
  echo "mapped under $2: ${l:-nothing}; dir: $(find "$2" -maxdepth 3 2>/dev/null | tr '\n' ' ')"
  [ -n "$l" ]
}
qemu_has_dbus() {
  local p; p=$(qemu_pid "$1"); [ -n "$p" ] || { echo "not running"; return 1; }
  tr '\0' ' ' < "/proc/$p/cmdline" | grep -o -- '-display dbus[^ ]*' || { echo "no -display dbus"; return 1; }
  ! grep -i 'error\|denied' "/var/log/libvirt/qemu/$1.log" | tail -n 3 | grep . || return 1
  echo "dbus-daemon for it: $(pgrep -a dbus-daemon | grep -c "$1") process(es)"
}

check dev-define dev_setup
for g in lab-f lab-r lab-m lab-s; do
  check "dev-$g-start" dev_start "$g"
  check "dev-$g-label" label_is "$g"
  case $g in
    lab-f)
      check dev-lab-f-9p-opens-own expect_opens lab-f "$DEV_9P/lab-f/probe.img"
      check dev-lab-f-denied-lab-s-9p expect_denied lab-f "$DEV_9P/lab-s/probe.img"
      check dev-lab-f-macvtap qemu_holds_tap lab-f ;;
    lab-r) check dev-lab-r-rom-write-denied rom_write_denied lab-r "$DEV_ROM" ;;
    lab-m) check dev-lab-m-memory-file qemu_maps_under lab-m "$DEV_RAM" ;;
    lab-s) check dev-lab-s-dbus qemu_has_dbus lab-s ;;
  esac
  v destroy "$g" >/dev/null 2>&1
done
