#!/usr/bin/busybox sh
# The checks of the enforcement VM, run by /init with the kernel enforcing AppArmor.
#
# Everything runs as libvirt would run it: the installed hook (XML on stdin, minimal environment,
# cwd /), the installed emulator wrapper exec'ing /usr/bin/qemu-system-x86_64 (here: stand-in-qemu,
# which opens the files it is told to and reports ok/EACCES per file). Each check prints exactly
# one line "ENFORCE <name> PASS|FAIL <detail>"; the last line is "ENFORCE-DONE". Checks never
# stop the script: the host side counts on every line being there, failing or not.
#
# Proof of a denial is always two things together: the open failed with EACCES, and the kernel
# logged apparmor="DENIED" for that path under the guest's own profile. (An open can fail for
# other reasons; an audit line cannot come from anything but AppArmor.)
set -u
set -f   # disk names carry * [ ] { }: never let the shell glob them

. /enforce/env            # HOOK, WRAP, EMULATOR (written by stage.sh)
FIX=/enforce/fixtures
T=/tmp/enforce; mkdir -p "$T"
PROFILES=/sys/kernel/security/apparmor/profiles
CONF=/etc/libvirt/virt-aa-hook.conf

report() { # NAME PASS|FAIL DETAIL...
    n=$1; r=$2; shift 2
    echo "ENFORCE $n $r $*"
}
info() { echo "INFO $*"; }
now() { cut -d' ' -f1 /proc/uptime; }

# ------------------------------------------------------------------ guests and their files

while read -r k n u i d; do
    case $k in ''|\#*) continue ;; esac
    eval "NAME_$k=\$n UUID_$k=\$u DISK_$k=\$d"
done < "$FIX/guests.list"
v() { eval "printf '%s' \"\$$1_$2\""; }   # v NAME A -> guest-a

# The files a guest's XML names (see fixtures/guest.xml.in), as F_* variables.
files_of() {
    fn=$(v NAME "$1")
    F_DISK=$(v DISK "$1")
    F_ISO=/srv/iso/$fn-install.iso
    F_NVRAM=/var/lib/libvirt/qemu/nvram/${fn}_VARS.fd
    F_SERIAL=/var/log/guests/$fn-serial.log
    F_SOCK=/run/guests/$fn.agent.sock
}

setup_files() {
    mkdir -p /var/lib/libvirt/images /var/lib/libvirt/qemu/nvram /srv/iso /var/log/guests \
        /run/guests /var/log/libvirt/qemu /run/libvirt/qemu /var/cache/apparmor \
        /usr/share/OVMF /etc/libvirt
    printf 'OVMF code stand-in\n' > /usr/share/OVMF/OVMF_CODE_4M.fd
    socks=""
    for k in A B W G C L N D K; do
        files_of "$k"
        dd if=/dev/zero of="$F_DISK" bs=1k count=64 2>/dev/null
        printf 'iso of %s\n' "$k" > "$F_ISO"
        printf 'nvram of %s\n' "$k" > "$F_NVRAM"
        : > "$F_SERIAL"
        socks="$socks $F_SOCK"
    done
    # D's disk is a qcow2 image (made by stage.sh) whose external data file lies beside it.
    cp /enforce/images/D-good.qcow2 "$(v DISK D)"
    dd if=/dev/zero of="$(v DISK D | sed 's/\.[^.]*$//').data" bs=1k count=64 2>/dev/null
    # Files next to the pattern-named disks that an unescaped rule would also match.
    for f in web1.img webX.img diska.img diskb-other.img 'disk{a,b}X.img'; do
        dd if=/dev/zero of="/var/lib/libvirt/images/$f" bs=1k count=4 2>/dev/null
    done
    # Real unix sockets (QEMU would bind them; dash cannot): node binds and leaves them behind.
    node -e '
        const net = require("node:net");
        const paths = process.argv.slice(1);
        let left = paths.length;
        for (const p of paths) net.createServer().listen(p, () => { if (--left === 0) process.exit(0); });
    ' $socks
}

write_config() { # MODE
    cat > "$CONF" <<CONF
# written by the enforcement checks
mode = "$1"
started_check = "enforce"
attach = "wrapper"
log_level = "debug"
CONF
}

# ------------------------------------------------------------------ running things

# hook KEY OP SUB [XML]: the installed hook as libvirtd runs it (XML: $FIX/KEY.xml unless given);
# sets HOOK_RC, stderr in $T/hook.err.
hook() {
    t0=$(now)
    ( cd / && env -i LC_ALL=C "$HOOK" "$(v NAME "$1")" "$2" "$3" - < "${4:-$FIX/$1.xml}" > "$T/hook.out" 2> "$T/hook.err" )
    HOOK_RC=$?
    info "hook $(v NAME "$1") $2 $3: rc=$HOOK_RC in $(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.2f", b-a}')s $(head -c 300 "$T/hook.err" | tr '\n' ' ')"
}

loaded() { grep -q "^libvirt-$1 (" "$PROFILES" 2>/dev/null; }
mode_of() { sed -n "s/^libvirt-$1 (\(.*\))\$/\1/p" "$PROFILES" 2>/dev/null; }

# Kernel log position: audit lines are only looked for after it, so a line from an earlier
# check can never prove a later one.
mark() { MARK=$(dmesg | wc -l); }
audited() { # DENIED|ALLOWED UUID PATH
    dmesg | tail -n +$((MARK + 1)) | grep -F "apparmor=\"$1\"" | grep -F "profile=\"libvirt-$2\"" \
        | grep -Fq "name=\"$3\""
}

# standin KEY ACTION PROBE...: start the stand-in for guest KEY through the real wrapper, the way
# libvirt starts QEMU (argv with -name and -uuid, minimal environment). Its stdout/stderr is an
# anonymous pipe, and its stdin too: AppArmor re-checks inherited files against the new profile at
# exec, and a path-named file the guest may not use would be swapped for nothing. While it waits
# after its probes, its label is read from outside (and ACTION, if any, runs with its pid); then
# its stdin is closed and it ends; lines ACTION left in $T/late.KEY are probed first, by the same
# process. Output in $T/KEY.out.
standin() {
    key=$1; action=$2; shift 2
    rel=$T/release.$key; rm -f "$rel" "$T/late.$key"; mkfifo "$rel"
    { read -r _ < "$rel"; [ -f "$T/late.$key" ] && cat "$T/late.$key"; } \
        | env -i LC_ALL=C "$WRAP" -name "guest=$(v NAME "$key"),debug-threads=on" \
            -uuid "$(v UUID "$key")" -nodefaults -- "$@" 2>&1 \
        | consume "$action" "$rel" > "$T/$key.out"
}
consume() { # ACTION FIFO
    released=no
    while IFS= read -r line; do
        echo "$line"
        case $line in
            "READY "*)
                pid=${line#READY }
                echo "LABEL $(cat "/proc/$pid/attr/current" 2>&1)"
                [ -n "$1" ] && $1 "$pid"
                echo > "$2"; released=yes ;;
        esac
    done
    [ "$released" = yes ] || echo > "$2"
}
label_in() { sed -n 's/^LABEL //p' "$1"; }
probe_is() { grep -Fxq "PROBE $2 $3 $4" "$1"; }   # FILE MODE RESULT PATH
show() { tr '\n' '|' < "$1" | head -c 600; }

# ------------------------------------------------------------------ check building blocks

check_prepare() { # KEY MODE: prepare as libvirt runs it; the profile is loaded in MODE
    hook "$1" prepare begin
    u=$(v UUID "$1")
    p=/etc/apparmor.d/libvirt/libvirt-$u
    if [ "$HOOK_RC" = 0 ] && [ "$(mode_of "$u")" = "$2" ] && [ -s "$p" ] && [ -s "$p.files" ]; then
        report "$1-prepare" PASS "hook exit 0; libvirt-$u loaded ($2); $p and .files written"
    else
        report "$1-prepare" FAIL "hook exit $HOOK_RC; kernel mode '$(mode_of "$u")' (want $2); files: $(ls "$p" "$p.files" 2>&1 | tr '\n' ' '); stderr: $(head -c 400 "$T/hook.err" | tr '\n' ' ')"
    fi
}

check_label() { # KEY OUTFILE MODE
    want="libvirt-$(v UUID "$1") ($3)"
    got=$(label_in "$2")
    if [ "$got" = "$want" ]; then report "$1-label" PASS "stand-in runs as '$got'"
    else report "$1-label" FAIL "stand-in label '$got', want '$want'; output: $(show "$2")"; fi
}

# own_probes KEY: the probes of all of KEY's files, and what each must give when allowed.
own_probes() {
    files_of "$1"
    PROBES="rw:$F_DISK r:$F_ISO rw:$F_NVRAM w:$F_SERIAL rw:$F_SOCK"
}
check_own() { # KEY OUTFILE
    files_of "$1"
    bad=""
    probe_is "$2" rw ok "$F_DISK" || bad="$bad disk"
    probe_is "$2" r ok "$F_ISO" || bad="$bad cdrom"
    probe_is "$2" rw ok "$F_NVRAM" || bad="$bad nvram"
    probe_is "$2" w ok "$F_SERIAL" || bad="$bad serial-log"
    # ENXIO: the open passed AppArmor and failed only because a socket cannot be open()ed.
    probe_is "$2" rw ENXIO "$F_SOCK" || bad="$bad socket"
    if [ -z "$bad" ]; then report "$1-own-files" PASS "disk rw, cdrom r, nvram rw, serial log w, socket rw all allowed"
    else report "$1-own-files" FAIL "not allowed:$bad; output: $(show "$2")"; fi
}

# check_denied NAME UUID OUTFILE MODE PATH: the open failed with EACCES and the kernel logged it
# as DENIED under libvirt-UUID.
check_denied() {
    if probe_is "$3" "$4" EACCES "$5" && audited DENIED "$2" "$5"; then
        report "$1" PASS "EACCES on $4 $5 and apparmor=\"DENIED\" for libvirt-$2"
    else
        got=$(grep -F " $5" "$3" | grep "^PROBE $4 " | head -1)
        audited DENIED "$2" "$5" && a=yes || a=no
        report "$1" FAIL "open $4 $5 gave '${got:-no probe line}', DENIED audit line: $a"
    fi
}

# isolation KEY OTHER ACTION: run KEY's stand-in on its own files, every file of OTHER's and
# /etc/shadow, and check each. Returns non-zero if any check failed (the negative control needs it).
isolation() {
    key=$1; other=$2; u=$(v UUID "$key")
    own_probes "$key"; mine=$PROBES; MY_ISO=$F_ISO
    files_of "$other"
    O_DISK=$F_DISK O_ISO=$F_ISO O_NVRAM=$F_NVRAM O_SERIAL=$F_SERIAL O_SOCK=$F_SOCK
    mark
    standin "$key" "$3" $mine "w:$MY_ISO" "r:$O_DISK" "w:$O_DISK" "r:$O_ISO" "r:$O_NVRAM" "r:$O_SERIAL" \
        "rw:$O_SOCK" "r:/etc/shadow"
    out=$T/$key.out
    { check_label "$key" "$out" enforce
      check_own "$key" "$out"
      # A read-only disk stays read-only: writing its own cdrom image is denied too.
      check_denied "$key-own-cdrom-not-writable" "$u" "$out" w "$MY_ISO"
      check_denied "$key-denied-$other-disk" "$u" "$out" r "$O_DISK"
      check_denied "$key-denied-$other-disk-write" "$u" "$out" w "$O_DISK"
      check_denied "$key-denied-$other-cdrom" "$u" "$out" r "$O_ISO"
      check_denied "$key-denied-$other-nvram" "$u" "$out" r "$O_NVRAM"
      check_denied "$key-denied-$other-serial-log" "$u" "$out" r "$O_SERIAL"
      check_denied "$key-denied-$other-socket" "$u" "$out" rw "$O_SOCK"
      check_denied "$key-denied-etc-shadow" "$u" "$out" r /etc/shadow
    } > "$T/$key.checks"
    cat "$T/$key.checks"
    ! grep -q "^ENFORCE [^ ]* FAIL" "$T/$key.checks"
}

# ACTION for A's stand-in: libvirt writes QEMU's pid file, then runs `started`.
started_action() {
    echo "$1" > "/run/libvirt/qemu/$(v NAME A).pid"
    hook A started begin
    echo "STARTED $HOOK_RC $(head -c 300 "$T/hook.err" | tr '\n' ' ')"
}

# ================================================================== the checks

info "checks start at $(now)s"
setup_files
write_config enforce

# --- the kernel really enforces (everything below means nothing otherwise)
if [ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" = Y ] && [ -w /sys/kernel/security/apparmor/.replace ]; then
    report kernel-apparmor PASS "AppArmor enabled; LSMs: $(cat /sys/kernel/security/lsm)"
else
    report kernel-apparmor FAIL "AppArmor not enabled (parameters/enabled=$(cat /sys/module/apparmor/parameters/enabled 2>&1)); cmdline: $(cat /proc/cmdline)"
fi

# --- the hook started from inside libvirtd's own profile (first: nothing has loaded the hook's
# profile yet). libvirtd runs hooks by exec from its own process; here a dash in profile libvirtd
# does the same exec. The libvirtd profile forbids apparmor_parser: only the installer's local
# override (Px to the hook's own profile) lets the hook work.
libvirtd_hook() {
    mark
    ( cd / && env -i LC_ALL=C aa-exec -p libvirtd -- /bin/dash -c 'exec "$0" "$@"' \
        "$HOOK" "$(v NAME L)" prepare begin - < "$FIX/L.xml" > /dev/null 2> "$T/libvirtd-hook.err" )
    LRC=$?
    info "hook under libvirtd: rc=$LRC $(head -c 300 "$T/libvirtd-hook.err" | tr '\n' ' ')"
}
uL=$(v UUID L)
LOCAL=/etc/apparmor.d/local/usr.sbin.libvirtd
cp "$LOCAL" "$T/local.installed"
cp /enforce/pristine/local-usr.sbin.libvirtd "$LOCAL"
if apparmor_parser -r /etc/apparmor.d/usr.sbin.libvirtd 2> "$T/aa.err"; then
    libvirtd_hook
    if [ "$LRC" != 0 ] && ! loaded "$uL" && dmesg | tail -n +$((MARK + 1)) | grep -F 'apparmor="DENIED"' | grep -Fq 'profile="libvirtd"'; then
        report L-libvirtd-without-install-fails PASS "hook exit $LRC and libvirt-$uL not loaded; libvirtd's profile denied it"
    else
        report L-libvirtd-without-install-fails FAIL "hook exit $LRC, libvirt-$uL loaded: $(loaded "$uL" && echo yes || echo no); stderr: $(head -c 300 "$T/libvirtd-hook.err" | tr '\n' ' ')"
    fi
else
    report L-libvirtd-without-install-fails FAIL "cannot load libvirtd's stock profile: $(head -c 300 "$T/aa.err" | tr '\n' ' ')"
fi
cp "$T/local.installed" "$LOCAL"
if apparmor_parser -r /etc/apparmor.d/usr.lib.virt-aa-hook.qemu-hook /etc/apparmor.d/usr.sbin.libvirtd 2> "$T/aa.err"; then
    libvirtd_hook
    if [ "$LRC" = 0 ] && [ "$(mode_of "$uL")" = enforce ]; then
        report L-libvirtd-with-install-succeeds PASS "hook exit 0 from profile libvirtd; libvirt-$uL loaded (enforce)"
    else
        report L-libvirtd-with-install-succeeds FAIL "hook exit $LRC, libvirt-$uL mode '$(mode_of "$uL")'; stderr: $(head -c 300 "$T/libvirtd-hook.err" | tr '\n' ' '); denials: $(dmesg | tail -n +$((MARK + 1)) | grep -F 'apparmor="DENIED"' | head -3 | tr '\n' ' ')"
    fi
else
    report L-libvirtd-with-install-succeeds FAIL "installed profiles do not load: $(head -c 300 "$T/aa.err" | tr '\n' ' ')"
fi

# --- two guests, each confined to its own files
check_prepare A enforce
check_prepare B enforce
isolation A B started_action
if grep -q '^STARTED 0' "$T/A.out"; then
    report A-started-confined-passes PASS "started hook exit 0 for the confined stand-in"
else
    report A-started-confined-passes FAIL "started hook: $(grep '^STARTED' "$T/A.out" || echo 'never ran')"
fi
isolation B A ""

# --- `started` refuses a QEMU outside its profile: the stand-in exec'd directly, not via the wrapper
unconfined_action() {
    echo "$1" > "/run/libvirt/qemu/$(v NAME A).pid"
    hook A started begin
    echo "STARTED $HOOK_RC $(head -c 300 "$T/hook.err" | tr '\n' ' ')"
}
WRAP_SAVED=$WRAP; WRAP=$EMULATOR
standin A unconfined_action
WRAP=$WRAP_SAVED
# The refusal must be about the label (started.ts words it 'runs as "unconfined", not in its
# profile libvirt-<uuid>'), not any other error that also exits non-zero.
if [ "$(label_in "$T/A.out")" = unconfined ] && grep '^STARTED [1-9]' "$T/A.out" | grep -F '"unconfined"' \
    | grep -Fq "libvirt-$(v UUID A)"; then
    report A-started-unconfined-fails PASS "label unconfined; started hook: $(grep '^STARTED' "$T/A.out")"
else
    report A-started-unconfined-fails FAIL "label '$(label_in "$T/A.out")'; started hook: $(grep '^STARTED' "$T/A.out" || echo 'never ran')"
fi

# --- image contents are untrusted (issue 14): guest D rewrites its own qcow2 header while it
# runs, pointing the external data file at B's disk. Neither reconnect (libvirtd restarted) nor a
# restart (release, prepare, start) may put B's disk into D's profile: the XML's <dataStore> is
# what QEMU gets, and a complete XML chain means no header is read. (The rewrite is done by this
# script on D's behalf; D-own-files-qcow2 shows D's profile lets it write its disk.)
uD=$(v UUID D); D_DISK=$(v DISK D); D_DATA=${D_DISK%.*}.data; B_DISK=$(v DISK B)
D_FILES=/etc/apparmor.d/libvirt/libvirt-$uD.files
check_prepare D enforce
hook D start begin "$FIX/D-live.xml"
cp "$D_FILES" "$T/D.files.before"
rewrite_action() {
    cp /enforce/images/D-evil.qcow2 "$D_DISK"
    hook D reconnect begin "$FIX/D-live.xml"
    echo "RECONNECT $HOOK_RC $(head -c 300 "$T/hook.err" | tr '\n' ' ')"
    printf 'r:%s\nw:%s\n' "$B_DISK" "$B_DISK" > "$T/late.D"
}
mark
standin D rewrite_action "rw:$D_DISK" "rw:$D_DATA"
out=$T/D.out
if probe_is "$out" rw ok "$D_DISK" && probe_is "$out" rw ok "$D_DATA" && [ "$(label_in "$out")" = "libvirt-$uD (enforce)" ]; then
    report D-own-files-qcow2 PASS "D opened its qcow2 disk and its data file rw in libvirt-$uD (enforce)"
else
    report D-own-files-qcow2 FAIL "label '$(label_in "$out")'; output: $(show "$out")"
fi
if grep -q '^RECONNECT 0 *$' "$out" && cmp -s "$T/D.files.before" "$D_FILES" && ! grep -Fq "$B_DISK" "$D_FILES"; then
    report D-reconnect-after-rewrite-keeps-rules PASS "reconnect exit 0, .files unchanged, no $B_DISK in it"
else
    cmp -s "$T/D.files.before" "$D_FILES" && same=yes || same=no
    report D-reconnect-after-rewrite-keeps-rules FAIL "reconnect: $(grep '^RECONNECT' "$out" || echo 'never ran'); .files unchanged: $same; now: $(grep -F '# disk' "$D_FILES" | tr '\n' ' ')"
fi
check_denied D-denied-B-disk-after-reconnect "$uD" "$out" r "$B_DISK"
check_denied D-denied-B-disk-write-after-reconnect "$uD" "$out" w "$B_DISK"
hook D release end "$FIX/D-live.xml"
hook D prepare begin
D_PREPARE_RC=$HOOK_RC
hook D start begin "$FIX/D-live.xml"
if [ "$D_PREPARE_RC" = 0 ] && [ "$HOOK_RC" = 0 ] && [ "$(mode_of "$uD")" = enforce ] && ! grep -Fq "$B_DISK" "$D_FILES"; then
    report D-restart-ignores-header PASS "prepare and start exit 0 with the rewritten header; libvirt-$uD (enforce) has no $B_DISK"
else
    report D-restart-ignores-header FAIL "prepare exit $D_PREPARE_RC, start exit $HOOK_RC, mode '$(mode_of "$uD")'; .files: $(grep -F '# disk' "$D_FILES" | tr '\n' ' ')"
fi
mark
standin D "" "rw:$D_DATA" "r:$B_DISK" "w:$B_DISK"
out=$T/D.out
if probe_is "$out" rw ok "$D_DATA"; then report D-restart-own-data-file PASS "after the restart D still opens $D_DATA rw"
else report D-restart-own-data-file FAIL "output: $(show "$out")"; fi
check_denied D-denied-B-disk-after-restart "$uD" "$out" r "$B_DISK"
check_denied D-denied-B-disk-write-after-restart "$uD" "$out" w "$B_DISK"

# --- issue 20: a compiled policy written straight to .replace (src/apparmor/kernel-load.ts
# writeBinaryPolicy, no parser) is accepted by the kernel and enforces exactly what the parser's
# own load of the same profile enforces: guest K's probes run once after each load and their
# outcomes must be identical, every denial with its DENIED line. The blob is what
# `apparmor_parser -S` prints for K's profile (what the parser's cache stores), the same bytes as
# the hook's compiled store holds for K.
# Negative controls: a blob of a wider profile (same name) gives different outcomes, and a
# truncated or damaged blob is refused by the kernel, leaves the loaded profile as it was, and the
# fallback (the parser) loads K as before.
uK=$(v UUID K); pK=/etc/apparmor.d/libvirt/libvirt-$uK
files_of B; KB_DISK=$F_DISK; KB_ISO=$F_ISO
files_of K; K_DISK=$F_DISK; K_ISO=$F_ISO
K_DENIED="w:$K_ISO r:$KB_DISK w:$KB_DISK r:$KB_ISO r:/etc/shadow"
k_probe() { # TAG: K's stand-in on its probes; outcomes in $T/K.TAG.result; K_VERDICT says what failed
    mark
    standin K "" "rw:$K_DISK" "r:$K_ISO" $K_DENIED
    cp "$T/K.out" "$T/K.$1.out"
    grep '^PROBE ' "$T/K.out" > "$T/K.$1.result"
    K_VERDICT=""
    [ "$(label_in "$T/K.out")" = "libvirt-$uK (enforce)" ] || K_VERDICT="$K_VERDICT label '$(label_in "$T/K.out")'"
    probe_is "$T/K.out" rw ok "$K_DISK" || K_VERDICT="$K_VERDICT own-disk"
    probe_is "$T/K.out" r ok "$K_ISO" || K_VERDICT="$K_VERDICT own-cdrom"
    for p in $K_DENIED; do
        probe_is "$T/K.out" "${p%%:*}" EACCES "${p#*:}" && audited DENIED "$uK" "${p#*:}" || K_VERDICT="$K_VERDICT not-denied:$p"
    done
}
k_load() { # BLOB: writeBinaryPolicy in node; K_LOAD_RC, output in $T/K.load
    ( cd / && env -i LC_ALL=C /usr/bin/node /enforce/load-blob.cjs "$1" > "$T/K.load" 2>&1 )
    K_LOAD_RC=$?
    info "load-blob $1: rc=$K_LOAD_RC $(head -c 300 "$T/K.load" | tr '\n' ' ')"
}
# The loaded policy's hash (securityfs policy/profiles/<name>.<n>/sha1, else raw_sha1). No glob:
# this script runs with set -f.
k_policy_sha() {
    kd=/sys/kernel/security/apparmor/policy/profiles
    kn=$(ls "$kd" 2>/dev/null | grep -m1 "^libvirt-$uK\.")
    [ -n "$kn" ] || return 0
    ks=$(cat "$kd/$kn/sha1" 2>/dev/null)
    [ -n "$ks" ] || ks=$(cat "$kd/$kn/raw_sha1" 2>/dev/null)
    printf '%s' "$ks"
}

k_t0=$(now)
check_prepare K enforce
# The hook's prepare already loaded K (through its compiled store); the reference is the parser's
# own load of the same profile file, replacing it.
apparmor_parser -r "$pK" 2> "$T/aa.err"; k_parser_rc=$?
k_probe parser
if [ "$k_parser_rc" = 0 ] && [ -z "$K_VERDICT" ]; then
    report K-parser-load-enforces PASS "after the parser's load: own disk rw and cdrom r open; $(echo $K_DENIED | wc -w) opens denied with DENIED lines"
else
    report K-parser-load-enforces FAIL "apparmor_parser -r exit $k_parser_rc $(head -c 200 "$T/aa.err" | tr '\n' ' '); after the parser's load:$K_VERDICT; output: $(show "$T/K.parser.out")"
fi

# The blob: what `apparmor_parser -S` prints for K's profile (the bytes the parser's cache stores),
# a compiled policy whose first profile is K's. (The hook's compiled store holds its own compile of
# K; its size is shown for comparison, not asserted: the store compiles with its own flags.)
K_STORED=$(find /var/cache/virt-aa-hook/entries -type f -name "libvirt-$uK.*" 2>/dev/null | head -1)
info "K's compile in the hook's store: '$K_STORED' $(wc -c < "$K_STORED" 2>/dev/null) bytes"
if apparmor_parser -Q -S "$pK" > "$T/K.blob" 2> "$T/aa.err" && [ -s "$T/K.blob" ] && grep -aq "libvirt-$uK" "$T/K.blob"; then
    report K-blob-is-parser-output PASS "apparmor_parser -S of $pK: $(wc -c < "$T/K.blob") bytes naming libvirt-$uK"
else
    report K-blob-is-parser-output FAIL "-S: $(wc -c < "$T/K.blob" 2>&1) bytes, $(head -c 200 "$T/aa.err" | tr '\n' ' ')"
fi

# Unload first, so the blob's load is seen to load (not a profile left from the parser's).
printf 'profile libvirt-%s {}\n' "$uK" | apparmor_parser -R > /dev/null 2>&1
loaded "$uK" && k_unloaded=no || k_unloaded=yes
k_load "$T/K.blob"
if [ "$k_unloaded" = yes ] && [ "$K_LOAD_RC" = 0 ] && [ "$(mode_of "$uK")" = enforce ]; then
    report K-blob-load PASS "libvirt-$uK unloaded, then loaded (enforce) by writeBinaryPolicy: $(cat "$T/K.load")"
else
    report K-blob-load FAIL "unloaded before: $k_unloaded; load-blob exit $K_LOAD_RC: $(head -c 300 "$T/K.load" | tr '\n' ' '); mode '$(mode_of "$uK")'"
fi
k_probe blob
if [ -z "$K_VERDICT" ] && cmp -s "$T/K.parser.result" "$T/K.blob.result"; then
    report K-blob-enforces-same PASS "the same $(wc -l < "$T/K.blob.result") probe outcomes as after the parser's load, each denial with its DENIED line"
else
    report K-blob-enforces-same FAIL "after the blob's load:$K_VERDICT; parser: $(show "$T/K.parser.result"); blob: $(show "$T/K.blob.result")"
fi

# Negative control: a wider profile of the same name, compiled to a blob and loaded the same way.
sed 's|^}$|  /** rwk,  # negative control: deliberately too wide\n}|' "$pK" > "$T/K.wide.profile"
apparmor_parser -Q -S --base /etc/apparmor.d "$T/K.wide.profile" > "$T/K.wide.blob" 2> "$T/aa.err"
k_load "$T/K.wide.blob"
k_probe wide
if [ "$K_LOAD_RC" = 0 ] && ! cmp -s "$T/K.parser.result" "$T/K.wide.result" && probe_is "$T/K.wide.out" r ok "$KB_DISK"; then
    report K-wide-blob-differs PASS "a blob with '/** rwk,' loads and changes the outcomes (B's disk opens): the comparison can fail"
else
    report K-wide-blob-differs FAIL "load-blob exit $K_LOAD_RC; outcomes: $(show "$T/K.wide.result")"
fi

# Damaged blobs: the kernel refuses them (the write fails), the loaded profile is untouched (its
# sha1 in securityfs stays the wide one's), and the fallback, the parser, loads K's own profile.
sha_before=$(k_policy_sha)
# (No K.blob when an earlier K check failed: an empty size must not end the script, as an
# arithmetic error in sh would.)
k_size=$(wc -c < "$T/K.blob" 2>/dev/null); k_size=${k_size:-0}
head -c $(( k_size / 2 )) "$T/K.blob" > "$T/K.truncated.blob" 2>/dev/null
k_load "$T/K.truncated.blob"; trunc_rc=$K_LOAD_RC; trunc_msg=$(head -c 200 "$T/K.load" | tr '\n' ' ')
{ printf 'XXXXXXXXXXXXXXXX'; tail -c +17 "$T/K.blob" 2>/dev/null; } > "$T/K.damaged.blob"
k_load "$T/K.damaged.blob"; dmg_rc=$K_LOAD_RC; dmg_msg=$(head -c 200 "$T/K.load" | tr '\n' ' ')
sha_after=$(k_policy_sha)
if [ "$trunc_rc" = 3 ] && [ "$dmg_rc" = 3 ] && [ -n "$sha_before" ] && [ "$sha_before" = "$sha_after" ] \
    && echo "$trunc_msg" | grep -q "^REFUSED HostError: cannot load .*/.replace: E" && echo "$dmg_msg" | grep -q "^REFUSED HostError: cannot load .*/.replace: E"; then
    report K-damaged-blob-refused PASS "truncated: $trunc_msg; damaged header: $dmg_msg; loaded policy unchanged (sha1 $sha_after)"
else
    report K-damaged-blob-refused FAIL "truncated: rc $trunc_rc '$trunc_msg'; damaged: rc $dmg_rc '$dmg_msg'; sha1 before '$sha_before' after '$sha_after'"
fi
apparmor_parser -r "$pK" 2> "$T/aa.err"
k_probe fallback
if [ -z "$K_VERDICT" ] && cmp -s "$T/K.parser.result" "$T/K.fallback.result"; then
    report K-fallback-parser-enforces-same PASS "after the refusal the parser's load enforces the same $(wc -l < "$T/K.fallback.result") outcomes again"
else
    report K-fallback-parser-enforces-same FAIL "after the fallback:$K_VERDICT; $(head -c 200 "$T/aa.err" | tr '\n' ' '); outcomes: $(show "$T/K.fallback.result")"
fi
# The hook's own path (src/apparmor/store-load.ts): K shut down (release) and started again with
# the same XML is a compiled-store hit, loaded by writeBinaryPolicy with no parser run; the log's
# debug line says so, and the probes give the parser's outcomes again.
HOOK_LOG=/var/log/libvirt/virt-aa-hook.log
hook K release end
loaded "$uK" && k_released=no || k_released=yes
k_log_before=$(wc -l < "$HOOK_LOG" 2>/dev/null || echo 0)
hook K prepare begin
k_hit=$(tail -n +$(( ${k_log_before:-0} + 1 )) "$HOOK_LOG" 2>/dev/null | grep -F "libvirt-$uK" | grep -m1 'without compiling')
info "compiled store notes for K: $(tail -n +$(( ${k_log_before:-0} + 1 )) "$HOOK_LOG" 2>/dev/null | grep -F 'compiled store' | tail -3 | cut -c1-400 | tr '\n' ' ')"
k_probe storehit
if [ "$k_released" = yes ] && [ "$HOOK_RC" = 0 ] && [ -n "$k_hit" ] && [ -z "$K_VERDICT" ] && cmp -s "$T/K.parser.result" "$T/K.storehit.result"; then
    report K-hook-store-hit-enforces-same PASS "after release, prepare loaded K from the compiled store without the parser and the same $(wc -l < "$T/K.storehit.result") outcomes hold"
else
    report K-hook-store-hit-enforces-same FAIL "unloaded by release: $k_released; prepare exit $HOOK_RC; log: '${k_hit:-no store-hit line}'; probes:$K_VERDICT; outcomes: $(show "$T/K.storehit.result")"
fi
info "K checks took $(awk -v a="$k_t0" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}')s"

# --- escaping holds in the kernel: pattern characters in a file name match only themselves
escape_check() { # KEY SIBLING...
    key=$1; shift
    u=$(v UUID "$key"); d=$(v DISK "$key")
    check_prepare "$key" enforce
    set --; for s in $SIBLINGS; do set -- "$@" "r:/var/lib/libvirt/images/$s"; done
    mark
    standin "$key" "" "rw:$d" "$@"
    out=$T/$key.out
    if probe_is "$out" rw ok "$d" && [ "$(label_in "$out")" = "libvirt-$u (enforce)" ]; then
        report "$key-escaped-name-opens" PASS "$d opened rw in libvirt-$u (enforce)"
    else
        report "$key-escaped-name-opens" FAIL "$d: $(show "$out")"
    fi
    for s in $SIBLINGS; do
        check_denied "$key-escaped-sibling-denied:$s" "$u" "$out" r "/var/lib/libvirt/images/$s"
    done
}
SIBLINGS="web1.img"; escape_check W
SIBLINGS="diska.img diskb-other.img disk{a,b}X.img"; escape_check G

# --- complain mode: the same forbidden opens succeed and are logged ALLOWED
write_config complain
check_prepare C complain
uC=$(v UUID C); files_of B
mark
standin C "" "r:/etc/shadow" "r:$F_DISK"
out=$T/C.out
if [ "$(label_in "$out")" = "libvirt-$uC (complain)" ]; then
    report C-complain-label PASS "stand-in runs as libvirt-$uC (complain)"
else
    report C-complain-label FAIL "label '$(label_in "$out")'"
fi
if probe_is "$out" r ok /etc/shadow && probe_is "$out" r ok "$F_DISK" \
    && audited ALLOWED "$uC" /etc/shadow && audited ALLOWED "$uC" "$F_DISK"; then
    report C-complain-allowed-logged PASS "/etc/shadow and $F_DISK opened, both logged apparmor=\"ALLOWED\""
else
    report C-complain-allowed-logged FAIL "output: $(show "$out"); ALLOWED lines: $(dmesg | tail -n +$((MARK + 1)) | grep -c 'apparmor="ALLOWED"')"
fi
write_config enforce

# --- negative control: a deliberately too-wide rule in N's own profile file (the admin's file,
# which the hook never overwrites) must make the same isolation checks report FAIL.
check_prepare N enforce
uN=$(v UUID N)
sed -i 's|^}$|  /** rwk,  # negative control: deliberately too wide\n}|' "/etc/apparmor.d/libvirt/libvirt-$uN"
hook N prepare begin
if [ "$HOOK_RC" = 0 ] && grep -q 'deliberately too wide' "/etc/apparmor.d/libvirt/libvirt-$uN"; then
    if isolation N B "" > "$T/N.verdict"; then
        report negative-control-wide-rule FAIL "isolation checks still PASS with '/** rwk,' in libvirt-$uN: they cannot fail"
    elif grep -q '^ENFORCE N-label PASS' "$T/N.verdict" && probe_is "$T/N.out" r ok "$(v DISK B)"; then
        report negative-control-wide-rule PASS "with '/** rwk,' the checks report: $(grep -c '^ENFORCE [^ ]* FAIL' "$T/N.verdict") FAIL, e.g. $(grep -m1 '^ENFORCE [^ ]* FAIL' "$T/N.verdict" | cut -c1-160)"
    else
        report negative-control-wide-rule FAIL "the checks failed, but not because the wide rule let N in: $(grep '^ENFORCE' "$T/N.verdict" | head -3 | tr '\n' ' ')"
    fi
else
    report negative-control-wide-rule FAIL "could not reload N with the wide rule: hook exit $HOOK_RC"
fi

# --- release unloads (only its own guest), and the wrapper then refuses to start it unconfined
uA=$(v UUID A); uB=$(v UUID B)
loaded "$uA" && before=yes || before=no
hook A release end
if [ "$before" = yes ] && [ "$HOOK_RC" = 0 ] && ! loaded "$uA" && loaded "$uB"; then
    report A-release-unloads PASS "libvirt-$uA was loaded, is gone from $PROFILES after release; libvirt-$uB still loaded"
    released=yes
else
    report A-release-unloads FAIL "A loaded before release: $before; hook exit $HOOK_RC; A loaded after: $(loaded "$uA" && echo yes || echo no); B loaded: $(loaded "$uB" && echo yes || echo no)"
    released=no
fi
standin A ""
# Only meaningful after a real unload: a profile that was never loaded proves nothing here.
if [ "$released" = yes ] && ! grep -q '^READY' "$T/A.out" && grep -q 'not loaded' "$T/A.out"; then
    report A-wrapper-refuses-after-release PASS "$(grep -m1 'wrapper' "$T/A.out" | cut -c1-200)"
else
    report A-wrapper-refuses-after-release FAIL "release ok: $released; wrapper output: $(show "$T/A.out")"
fi

info "checks end at $(now)s"
echo "ENFORCE-DONE"
