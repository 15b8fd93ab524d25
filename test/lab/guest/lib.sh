# lib.sh — helpers for the lab's checks (sourced by test/lab/guest/init, bash). Every check prints
# exactly one line "LAB <name> PASS|FAIL <detail>" on the serial console; lab.test.ts turns each
# into one assertion. Details are one line: what was seen, with the kernel's audit line when one
# is the evidence.

VIRSH=/usr/bin/virsh
URI=qemu:///system
IMAGES=/var/lib/libvirt/images
HOOK_LOG=/var/log/libvirt/virt-aa-hook.log
LIBVIRTD_LOG=/var/log/libvirt/libvirtd-lab.log

now() { cut -d' ' -f1 /proc/uptime; }
oneline() { tr '\n\r' '  ' | sed 's/  */ /g; s/^ //; s/ $//' | cut -c1-900; }
verdict() { printf 'LAB %s %s %s\n' "$1" "$2" "$(printf '%s' "${3:-}" | oneline)"; }
# check NAME CMD...: PASS when CMD exits 0; the detail is CMD's output either way.
# The detail starts with the check's duration, "(1.2s)".
check() {
  local name=$1 out rc t0 d; shift
  t0=$(now)
  out=$("$@" 2>&1); rc=$?
  d=$(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}')
  if [ $rc -eq 0 ]; then verdict "$name" PASS "(${d}s) $out"; else verdict "$name" FAIL "(${d}s) (exit $rc) $out"; fi
  return $rc
}
v() { "$VIRSH" -q -c "$URI" "$@"; }
info() { printf 'INFO %s\n' "$(printf '%s' "$*" | oneline)"; }

# ---------------------------------------------------------------- guests

# Fixed guests: name and UUID (lower case, as libvirt prints it).
declare -A UUID=(
  [lab-a]=1ab0000a-0000-4000-8000-00000000000a
  [lab-b]=1ab0000b-0000-4000-8000-00000000000b
  [lab-n]=1ab0000e-0000-4000-8000-00000000000e
  [lab-auto]=1ab000a0-0000-4000-8000-0000000000a0
  [lab-u]=1ab000f0-0000-4000-8000-0000000000f0
  [lab-x]=1ab000c0-0000-4000-8000-0000000000c0
  [lab-o]=1ab000d0-0000-4000-8000-0000000000d0
  # guest/devices.sh (issue 18)
  [lab-f]=1ab000f9-0000-4000-8000-0000000000f9
  [lab-m]=1ab000e1-0000-4000-8000-0000000000e1
  [lab-s]=1ab000e5-0000-4000-8000-0000000000e5
  [lab-r]=1ab000e9-0000-4000-8000-0000000000e9
)
disk_of() { printf '%s/%s.qcow2' "$IMAGES" "$1"; }
profile_of() { printf 'libvirt-%s' "${UUID[$1]}"; }

# A guest that needs no OS: 64 MiB, one qcow2 disk nothing boots from, no network, TCG.
domain_xml() {
  cat <<XML
<domain type='qemu'>
  <name>$1</name>
  <uuid>${UUID[$1]}</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$(disk_of "$1")'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
XML
}

# define_guest NAME: its disk (mode 0644: readable by every QEMU user, so only AppArmor can refuse
# another guest's QEMU a read-only open of it) and `virsh define`.
define_guest() {
  local f; f=$(disk_of "$1")
  qemu-img create -q -f qcow2 "$f" 16M && chmod 0644 "$f" || return 1
  domain_xml "$1" > "/tmp/$1.xml"
  v define "/tmp/$1.xml"
}

qemu_pid() { cat "/run/libvirt/qemu/$1.pid" 2>/dev/null; }

# label_is NAME: the guest's QEMU runs as exactly "libvirt-<uuid> (enforce)".
label_is() {
  local pid want got
  pid=$(qemu_pid "$1"); want="$(profile_of "$1") (enforce)"
  [ -n "$pid" ] || { echo "no pid file /run/libvirt/qemu/$1.pid (state: $(v domstate "$1" 2>&1))"; return 1; }
  got=$(cat "/proc/$pid/attr/current" 2>&1)
  echo "pid $pid exe $(readlink "/proc/$pid/exe") label \"$got\""
  [ "$got" = "$want" ] || { echo "expected \"$want\""; return 1; }
}

ensure_running() { [ "$(v domstate "$1" 2>/dev/null)" = running ] || v start "$1" >/dev/null 2>&1; }
state_is() { local s; s=$(v domstate "$1" 2>&1); echo "$1: $s"; [ "$s" = "$2" ]; }

# ---------------------------------------------------------------- opening files through QEMU

HMP_N=0
# hmp_open NAME PATH: ask NAME's QEMU (HMP drive_add through libvirt's monitor) to open PATH
# read-only, without image locking (so the only difference between two paths is who may open
# them); prints QEMU's answer ("OK" when it opened). An opened drive is deleted again.
hmp_open() {
  HMP_N=$((HMP_N + 1))
  local id="labprobe$HMP_N" out
  out=$(v qemu-monitor-command "$1" --hmp "drive_add 0 if=none,id=$id,file=$2,readonly=on,file.locking=off" 2>&1 | tr -d '\r')
  printf '%s\n' "$out"
  if [ "$(printf '%s' "$out" | sed '/^$/d')" = OK ]; then v qemu-monitor-command "$1" --hmp "drive_del $id" >/dev/null 2>&1; fi
}

# denied_since MARK PROFILE PATH [MASK-RE]: the kernel's apparmor="DENIED" lines for PROFILE and
# PATH after dmesg line MARK, as soon as there is one, else after 1 s (kauditd prints them just
# after the syscall returned: the fixed 0.3 s this replaces was spent on every probe). A deadline,
# not a count of tries: a loaded machine makes each dmesg slower, not the kernel's line later.
denied_since() {
  local lines end; end=$(awk -v n="$(now)" 'BEGIN{print n + 1}')
  while :; do
    lines=$(dmesg | tail -n +$(($1 + 1)) | grep 'apparmor="DENIED"' | grep -F "profile=\"$2\"" | grep -F "name=\"$3\"" | grep -e "${4:-.}")
    [ -n "$lines" ] && break
    awk -v n="$(now)" -v e="$end" 'BEGIN{exit !(n < e)}' || break
    sleep 0.05
  done
  printf '%s' "$lines"
}

# expect_denied NAME PATH: NAME's QEMU gets "Permission denied" for PATH and the kernel logs
# apparmor="DENIED" for NAME's profile and PATH, after this attempt.
expect_denied() {
  local mark out lines prof
  prof=$(profile_of "$1")
  mark=$(dmesg | wc -l)
  out=$(hmp_open "$1" "$2")
  lines=$(denied_since "$mark" "$prof" "$2")
  echo "qemu: $out | kernel: ${lines:-no DENIED line for $prof and $2}"
  case $out in *"Permission denied"*) ;; *) return 1 ;; esac
  [ -n "$lines" ]
}

# expect_opens NAME PATH: NAME's QEMU opens PATH, and the kernel logs no denial for it.
expect_opens() {
  local mark out lines
  mark=$(dmesg | wc -l)
  out=$(hmp_open "$1" "$2")
  sleep 0.3
  lines=$(dmesg | tail -n +$((mark + 1)) | grep 'apparmor="DENIED"' | grep -F "name=\"$2\"")
  echo "qemu: $out${lines:+ | kernel: $lines}"
  [ "$(printf '%s' "$out" | sed '/^$/d')" = OK ] && [ -z "$lines" ]
}

# expect_write_denied NAME PATH: NAME's QEMU may not open PATH read-write (the kernel says so).
expect_write_denied() {
  local mark out lines prof
  prof=$(profile_of "$1"); mark=$(dmesg | wc -l); HMP_N=$((HMP_N + 1))
  out=$(v qemu-monitor-command "$1" --hmp "drive_add 0 if=none,id=labrw$HMP_N,file=$2,file.locking=off" 2>&1 | tr -d '\r')
  [ "$(printf '%s' "$out" | sed '/^$/d')" = OK ] && v qemu-monitor-command "$1" --hmp "drive_del labrw$HMP_N" >/dev/null 2>&1
  lines=$(denied_since "$mark" "$prof" "$2" 'denied_mask="[^"]*w')
  echo "qemu: $out | kernel: ${lines:-no DENIED write line for $prof and $2}"
  case $out in *"Permission denied"*) ;; *) return 1 ;; esac
  [ -n "$lines" ]
}

# isolation PREFIX ME OTHER: the isolation checks of guest ME against guest OTHER (running).
isolation() {
  check "$1$2-opens-own-disk" expect_opens "$2" "$(disk_of "$2")"
  check "$1$2-denied-$3-disk" expect_denied "$2" "$(disk_of "$3")"
  check "$1$2-denied-etc-shadow" expect_denied "$2" /etc/shadow
}

# ---------------------------------------------------------------- daemons

start_virtlogd() { virtlogd -d && sleep 0.3; }

# start_libvirtd: libvirtd -d with its log, then wait until it answers.
start_libvirtd() {
  local t0 i; t0=$(now)
  rm -f /run/libvirtd.pid
  # Logging set in libvirtd.conf, not in libvirtd's environment: libvirt runs virt-aa-helper -D
  # with its own environment inherited, and a LIBVIRT_LOG_OUTPUTS naming this file made libvirt's
  # helper fail (its profile may not open the file).
  grep -q '^# virt-aa-hook lab logging' /etc/libvirt/libvirtd.conf ||
    printf '# virt-aa-hook lab logging\nlog_filters = "1:util.hook 1:security 3:*"\nlog_outputs = "1:file:%s"\n' "$LIBVIRTD_LOG" >> /etc/libvirt/libvirtd.conf
  libvirtd -d || return 1
  i=$(awk -v n="$t0" 'BEGIN{print n + 300}')
  while awk -v n="$(now)" -v e="$i" 'BEGIN{exit !(n < e)}'; do v version >/dev/null 2>&1 && break; sleep 0.2; done
  v version >/dev/null 2>&1 || { echo "libvirtd does not answer"; return 1; }
  echo "libvirtd pid $(cat /run/libvirtd.pid) answers after $(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}')s"
}

stop_libvirtd() {
  local pid i; pid=$(cat /run/libvirtd.pid 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  echo "libvirtd $pid did not stop in 30 s: SIGKILL"; kill -9 "$pid"; sleep 0.5
}

libvirtd_label_is() {
  local got; got=$(cat "/proc/$(cat /run/libvirtd.pid)/attr/current")
  echo "libvirtd label \"$got\""; [ "$got" = "libvirtd (enforce)" ]
}

# wait_state NAME STATE SECONDS
wait_state() {
  local end; end=$(awk -v n="$(now)" -v s="$3" 'BEGIN{print n + s}')
  while awk -v n="$(now)" -v e="$end" 'BEGIN{exit !(n < e)}'; do
    [ "$(v domstate "$1" 2>/dev/null)" = "$2" ] && break; sleep 0.5
  done
  state_is "$1" "$2"
}

# ---------------------------------------------------------------- a libvirt network

# lab_net_up: network "labnat" (NAT, bridge virbr9, no DHCP/DNS: this machine has no dnsmasq),
# defined and started once; libvirt creates a port on it (network hook port-created/-deleted)
# for every <interface type='network'>. Falls back to forward mode 'open' (no firewall) if NAT
# cannot start, and says so.
lab_net_up() {
  local out
  [ "$(v net-info labnat 2>/dev/null | awk '/^Active:/{print $2}')" = yes ] && return 0
  mkdir -p /var/lib/libvirt/dnsmasq   # dnsmasq-base (not installed here) would have made it
  # /dev/net/tun exists only once tun is loaded (no systemd-tmpfiles static nodes in the VM).
  modprobe tun; modprobe bridge; modprobe vhost_net 2>/dev/null
  echo "<network><name>labnat</name><forward mode='nat'/><bridge name='virbr9' stp='off'/><dns enable='no'/><ip address='192.168.199.1' netmask='255.255.255.0'/></network>" > /tmp/labnat.xml
  v net-define /tmp/labnat.xml >/dev/null && out=$(v net-start labnat 2>&1) && { echo "NAT network labnat started"; return 0; }
  echo "NAT network failed: $out"
  v net-undefine labnat >/dev/null 2>&1
  sed -i "s|<forward mode='nat'/>|<forward mode='open'/>|" /tmp/labnat.xml
  v net-define /tmp/labnat.xml >/dev/null && v net-start labnat >/dev/null && echo "forward mode='open' network labnat started instead"
}
