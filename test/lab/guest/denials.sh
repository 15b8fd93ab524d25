# denials.sh — issue 19's `virt-aa-hook denials` on the kernel's real audit lines (sourced by
# checks-boot1.sh in seclabel mode, right after the isolation checks, and by run.sh --only denials).
# At this point the kernel has logged apparmor="DENIED" lines for lab-a's opens of lab-b's disk and
# /etc/shadow and for lab-b's of lab-a's disk and /etc/shadow; lab-a's and lab-b's opens of their
# own disks were allowed and logged nothing. The VM has no auditd, journal or kern.log: the
# command reads dmesg, as on a host without them.
#
#   denials-lab-a-json     `denials lab-a --json` holds exactly lab-a's DENIED lines of dmesg
#                          (per operation and path, the same counts), all mapped to lab-a and its
#                          UUID; lab-b's disk and /etc/shadow are each "nothing in lab-a's XML asks
#                          for" it, lab-b's disk with lab-b named as the guest whose XML has it
#   denials-lab-a-text     the text form says the same: the finding line, the explanation, a fix
#   denials-negative-own-disk  negative control: lab-b's allowed open of its own disk is in no
#                          kernel line, and neither `denials lab-b` nor `denials lab-a` reports lab-b's
#                          disk as lab-b's; lab-b's own denial (lab-a's disk) is reported for lab-b
#                          only, never for lab-a

# kernel_denials PROFILE: "operation path" of every DENIED line of PROFILE in dmesg, one per line.
kernel_denials() {
  dmesg | grep 'apparmor="DENIED"' | grep -F "profile=\"$1\"" |
    sed -n 's/.*operation="\([^"]*\)".*name="\([^"]*\)".*/\1 \2/p'
}

# denials_json_judge NAME: reads `denials NAME --json` on stdin, the kernel's lines of NAME's
# profile in $KLINES; exit 0 when they agree as the header says.
denials_json_judge() {
  KLINES=$(kernel_denials "$(profile_of "$1")") node -e '
    const [name, uuid, profile, ownDisk, otherDisk, other] = process.argv.slice(1);
    const lines = require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean);
    const fail = (why) => { console.log(why); process.exit(1); };
    const found = lines.map((l) => JSON.parse(l));
    const want = new Map();
    for (const l of (process.env.KLINES || "").split("\n").filter(Boolean)) want.set(l, (want.get(l) || 0) + 1);
    const got = new Map();
    for (const f of found) {
      if (f.guest !== name || f.uuid !== uuid || f.profile !== profile || f.decision !== "DENIED")
        fail(`a finding not mapped to ${name} (${uuid}): ${JSON.stringify(f)}`);
      const k = `${f.operation} ${f.path ?? f.capability}`;   // kernel_denials: capname="..." ends in name="
      got.set(k, (got.get(k) || 0) + f.count);
    }
    const show = (m) => JSON.stringify([...m].sort());
    console.log(`kernel: ${show(want)} | denials: ${show(got)}`);
    if (show(want) !== show(got)) fail("the findings are not the kernel'"'"'s DENIED lines of " + profile);
    for (const p of [otherDisk, "/etc/shadow"]) {
      const f = found.find((x) => x.path === p && x.operation === "open");
      if (!f) fail(`no finding for ${name}'"'"'s open of ${p}`);
      if (!new RegExp(`^nothing in ${name}'"'"'s (live )?XML asks for ${p.replace(/[.]/g, "[.]")}`).test(f.explanation) || f.elements.length !== 0)
        fail(`${p}: ${f.class}: ${f.explanation}`);
      console.log(`${p}: ${f.class}: ${f.explanation} | fix: ${f.fix}`);
    }
    const o = found.find((x) => x.path === otherDisk);
    if (!o.others.some((x) => x.startsWith(`${other} `))) fail(`${otherDisk}: ${other} not named among the guests whose XML has it: ${JSON.stringify(o.others)}`);
    if (found.some((x) => x.path === ownDisk)) fail(`${name}'"'"'s own disk ${ownDisk} reported as denied`);
  ' "$1" "${UUID[$1]}" "$(profile_of "$1")" "$(disk_of "$1")" "$(disk_of "$2")" "$2"
}

denials_json() {
  local out; out=$(vah denials "$1" --json 2>&1) || { echo "exit $?: $out"; return 1; }
  printf '%s\n' "$out" | denials_json_judge "$1" "$2"
}

denials_text() {
  local out d; out=$(vah denials "$1" 2>&1) || { echo "exit $?: $out"; return 1; }
  d=$(disk_of "$2")
  echo "$out" | head -c 1500
  printf '%s\n' "$out" | grep -qF "$1: DENIED open \"$d\"" || { echo "| no finding line for $1's open of $d"; return 1; }
  printf '%s\n' "$out" | grep -qE "^  nothing in $1's (live )?XML asks for $d" || { echo "| no explanation for $d"; return 1; }
  printf '%s\n' "$out" | grep -qF "$1: DENIED open \"/etc/shadow\"" || { echo "| no finding line for /etc/shadow"; return 1; }
  printf '%s\n' "$out" | grep -q '^  fix: ' || { echo "| no fix line"; return 1; }
  ! printf '%s\n' "$out" | grep -qE "^$2: " || { echo "| a finding of $2 in $1's denials"; return 1; }
}

# lab-b's own disk: allowed, so no kernel line and no finding, for lab-b or for lab-a; lab-b's own
# denial of lab-a's disk is lab-b's finding (positive control of the same command), not lab-a's.
denials_negative() {
  local a b bd ad kb
  bd=$(disk_of lab-b); ad=$(disk_of lab-a)
  kb=$(dmesg | grep 'apparmor="DENIED"' | grep -F "profile=\"$(profile_of lab-b)\"" | grep -F "name=\"$bd\"")
  [ -z "$kb" ] || { echo "the kernel denied lab-b its own disk: $kb"; return 1; }
  b=$(vah denials lab-b --json 2>&1) || { echo "denials lab-b: $b"; return 1; }
  a=$(vah denials lab-a --json 2>&1) || { echo "denials lab-a: $a"; return 1; }
  printf '%s\n' "$b" | node -e '
    const [bd, ad, buuid] = process.argv.slice(1);
    const f = require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
    const own = f.filter((x) => x.path === bd);
    const theirs = f.filter((x) => x.path === ad && x.guest === "lab-b" && x.uuid === buuid);
    console.log(`denials lab-b: ${f.length} findings, ${own.length} for its own disk, ${theirs.length} for lab-a'"'"'s disk`);
    process.exit(own.length === 0 && theirs.length === 1 ? 0 : 1);
  ' "$bd" "$ad" "${UUID[lab-b]}" || return 1
  printf '%s\n' "$a" | node -e '
    const [ad, buuid] = process.argv.slice(1);
    const f = require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
    const bad = f.filter((x) => x.guest !== "lab-a" || x.uuid === buuid || x.path === ad);
    console.log(`denials lab-a: ${f.length} findings, ${bad.length} of lab-b or for lab-a'"'"'s own disk`);
    process.exit(bad.length === 0 ? 0 : 1);
  ' "$ad" "${UUID[lab-b]}"
}

check denials-lab-a-json denials_json lab-a lab-b
check denials-lab-a-text denials_text lab-a lab-b
check denials-negative-own-disk denials_negative
