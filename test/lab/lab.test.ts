// The real-stack lab (issue 15): Debian's AppArmor kernel under QEMU TCG on this machine's own root
// (Debian's libvirt-daemon-system, qemu-system-x86, node), a real libvirtd in its enforcing
// profile starting real QEMUs, virt-aa-hook installed with install/install.sh, guests driven with
// virsh, in both attach modes, each over two boots of one persistent state disk (test/lab/run.sh).
// Every verdict line the VM prints on its serial console becomes one assertion here; a check the
// VM never reported fails as surely as one it reported FAIL.
//
// Slow (six TCG boots, several minutes each; one VM at a time unless VIRT_AA_HOOK_LAB_JOBS > 1):
// runs when CI=true or VIRT_AA_HOOK_LAB=1.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PROJECT = path.resolve(HERE, "../..");
const OUT = path.join(PROJECT, ".cache/lab/run");
const ENABLED = process.env.CI === "true" || process.env.VIRT_AA_HOOK_LAB === "1";
/**
 * VIRT_AA_HOOK_LAB_ONLY=ops: boot 1 only, with just the issue-17 scenario (run.sh --only ops);
 * =devices: boot 1 of helper mode only, with just issue 18's device guests (run.sh --only devices);
 * =denials: boot 1 of seclabel mode only, two guests, their isolation and issue 19's `denials`.
 */
const ONLY = ["ops", "devices", "denials"].includes(process.env.VIRT_AA_HOOK_LAB_ONLY ?? "") ? process.env.VIRT_AA_HOOK_LAB_ONLY : undefined;
const ONLY_OPS = ONLY === "ops";
/** Judge the last run's logs again instead of booting (after editing this file's expectations). */
const REUSE = process.env.VIRT_AA_HOOK_LAB_REUSE === "1";
const HOW = "set VIRT_AA_HOOK_LAB=1 (or CI=true) to boot the lab VM: VIRT_AA_HOOK_LAB=1 npx vitest run test/lab";
/** VMs at once (run.sh --jobs): modes run in parallel, each mode's boot 2 after its own boot 1. */
const JOBS = Math.max(1, Number.parseInt(process.env.VIRT_AA_HOOK_LAB_JOBS ?? "1", 10) || 1);

type Mode = "seclabel" | "wrapper" | "helper";
/**
 * Longest boot first: with VIRT_AA_HOOK_LAB_JOBS=2, helper (devices, ops) runs beside seclabel (ops,
 * the negative control, the tripwire) and the short wrapper mode follows seclabel.
 */
const ALL_MODES: Mode[] = ["helper", "seclabel", "wrapper"];
/** VIRT_AA_HOOK_LAB_MODES="helper" (space separated): boot and judge only these modes. */
const MODES: Mode[] = process.env.VIRT_AA_HOOK_LAB_MODES
  ? ALL_MODES.filter((m) => process.env.VIRT_AA_HOOK_LAB_MODES!.split(/[\s,]+/).includes(m))
  : ONLY === "devices"
    ? ["helper"]
    : ONLY === "denials"
      ? ["seclabel"]
      : ALL_MODES;
// run.sh's own limits end every boot first (boot.sh: LAB_BOOT_TIMEOUT, 2000 s per boot, over the
// guest's lab.timeout of 1800 s), so a hung VM leaves its logs for the assertions below: this is
// only the backstop. Waves of at most JOBS modes, two boots each, at the per-boot limit, plus the
// image build. With parallel VMs on 2 cores a boot takes longer than alone (both share the CPUs),
// which the per-boot limit (4x an unloaded boot 1 of ~450 s) absorbs.
const BOOT_LIMIT_S = Number.parseInt(process.env.LAB_BOOT_TIMEOUT ?? "2000", 10) || 2000;
const RUN_TIMEOUT_MS = (Math.ceil(MODES.length / JOBS) * (ONLY ? 1 : 2) * BOOT_LIMIT_S + 600) * 1000;

/** Isolation of guest `me` from guest `other` (guest/lib.sh `isolation`). */
const isolation = (prefix: string, me: string, other: string) => [
  `${prefix}${me}-opens-own-disk`,
  `${prefix}${me}-denied-${other}-disk`,
  `${prefix}${me}-denied-etc-shadow`,
];

const DAEMONS = ["kernel-apparmor", "libvirtd-profile-enforce", "libvirtd-start", "libvirtd-confined"];

/**
 * Issue 17 (guest/ops.sh): guest lab-o's hotplug, media, snapshot, block jobs, NICs, save/restore;
 * after each operation QEMU's label, after each addition an open, after each removal the kernel's
 * denial.
 */
function opsChecks(mode: Mode): string[] {
  const op = (name: string, ...after: string[]) => [`ops-${name}`, `ops-${name}-label`, ...after.map((a) => `ops-${name}-${a}`)];
  return [
    "ops-setup",
    "ops-label",
    ...op("attach-disk-file", "opens", "writes"),
    ...op("detach-disk-file", "denied"),
    ...op("attach-disk-block", "opens"),
    ...op("detach-disk-block", "denied"),
    ...op("change-media-insert", "opens"),
    ...op("change-media-update", "opens", "old-denied"),
    ...op("change-media-eject", "denied"),
    ...op("snapshot-create"),
    "ops-snapshot-writes-overlay",
    "ops-snapshot-base-write-denied",
    ...op("blockcommit-pivot"),
    "ops-blockcommit-writes-base",
    "ops-blockcommit-overlay-denied",
    ...op("blockcopy-pivot"),
    "ops-blockcopy-writes-copy",
    "ops-blockcopy-old-denied",
    ...["default", "virtio"].flatMap((m) => [...op(`attach-interface-${m}`), ...op(`detach-interface-${m}`), `ops-detach-interface-${m}-no-grant`]),
    ...(mode === "helper"
      ? ["ops-negative-attach-other-guest-disk-refused"]
      : ["ops-negative-attach-without-grant-denied", "ops-negative-grant-other-guest-disk-refused"]),
    "ops-after-negative-label",
    "ops-save",
    "ops-save-image-foreign",
    "ops-restore",
    "ops-restore-adopted",
    "ops-restore-label",
  ];
}

/**
 * Issue 18 (guest/devices.sh, helper mode only): guests whose QEMU uses a device family libvirt 9.0
 * runs under TCG start confined; lab-f's 9p share is its own (negative control: lab-s's is denied).
 */
const DEVICES = [
  "dev-define",
  ...["lab-f", "lab-r", "lab-m", "lab-s"].flatMap((g) => [`dev-${g}-start`, `dev-${g}-label`]),
  "dev-lab-f-9p-opens-own",
  "dev-lab-f-denied-lab-s-9p",
  "dev-lab-f-macvtap",
  "dev-lab-r-rom-write-denied",
  "dev-lab-m-memory-file",
  "dev-lab-s-dbus",
];

/**
 * Issue 19 (guest/denials.sh, seclabel mode, right after the isolation checks): `virt-aa-hook
 * denials` maps the kernel's real DENIED lines of lab-a to lab-a and explains them; lab-b's
 * allowed open of its own disk is reported for nobody (negative control).
 */
const DENIALS = ["denials-lab-a-json", "denials-lab-a-text", "denials-negative-own-disk"];

/** lab-a and lab-b started, confined, isolated; then, in seclabel mode, DENIALS (checks-boot1.sh pair_started_isolated). */
const pairStartedIsolated = (mode: Mode) => [
  "start-lab-a",
  "start-lab-b",
  "lab-a-label",
  "lab-b-label",
  ...isolation("", "lab-a", "lab-b"),
  ...isolation("", "lab-b", "lab-a"),
  ...(mode === "seclabel" ? DENIALS : []),
];

/** The checks of the first boot (guest/init + guest/checks-boot1.sh), in their order. */
function boot1Checks(mode: Mode): string[] {
  if (ONLY === "denials") {
    return ["install", "install-chose-attach-mode", ...DAEMONS, "define-guests", "adopt", ...pairStartedIsolated(mode)];
  }
  if (ONLY === "devices") {
    return ["install", "install-chose-attach-mode", ...DAEMONS, ...DEVICES, "no-virt-aa-helper-after-devices"];
  }
  if (ONLY_OPS) {
    return [
      "install",
      "install-chose-attach-mode",
      ...DAEMONS,
      "define-guests",
      ...(mode === "helper" ? [] : ["adopt"]),
      "start-lab-b",
      "lab-b-label",
      ...opsChecks(mode),
      "no-virt-aa-helper-after-ops",
    ];
  }
  return [
    "install",
    "install-chose-attach-mode",
    ...DAEMONS,
    "define-guests",
    "define-guests-listed",
    ...(mode === "helper" ? [] : ["adopt", "adopt-xml-lab-a"]),
    ...pairStartedIsolated(mode),
    "lab-a-files-ours",
    "lab-b-files-ours",
    "no-virt-aa-helper",
    "exclusive-lab-x-refused-lab-a-disk",
    "libvirtd-restart-running",
    "reconnect-guests-kept",
    "lab-a-label-after-reconnect",
    "lab-b-label-after-reconnect",
    "lab-a-denied-lab-b-disk-after-reconnect",
    "managedsave-lab-a",
    "managedsave-start-lab-a",
    "lab-a-label-after-managedsave",
    "lab-a-denied-lab-b-disk-after-managedsave",
    "libvirtd-restart-stopped",
    "stopped-domains-listed",
    "stopped-dumpxml-lab-a",
    "stopped-edit-lab-a",
    "stopped-define-lab-a",
    "stopped-start-lab-a",
    "lab-a-label-after-stopped-restart",
    "lab-b-label-after-stopped-restart",
    "autostart-lab-auto",
    "lab-auto-label",
    // The probe's own negative control: seclabel mode only (README "Deliberate cuts").
    ...(mode === "seclabel"
      ? ["negative-control-start", "negative-control-label", "negative-control-widen", ...isolation("negative-control-", "lab-n", "lab-b")]
      : []),
    "no-virt-aa-helper-after-lifecycle",
    // Issue 17's operations: not in wrapper mode, whose grant/sync is seclabel mode's (README "Deliberate cuts").
    ...(mode === "wrapper" ? [] : opsChecks(mode)),
    ...(mode === "helper" ? DEVICES : []),
    "no-virt-aa-helper-after-ops",
    ...(mode === "seclabel" ? ["tripwire-fires-for-unadopted-guest"] : []),
  ];
}

/** The checks of the second boot (a host reboot on the same state disk: guest/checks-boot2.sh). */
const BOOT2 = [
  ...DAEMONS,
  "reboot-domains-listed",
  "reboot-autostart-running",
  "reboot-lab-auto-label",
  "reboot-start-lab-a",
  "reboot-lab-a-label",
  ...isolation("reboot-", "lab-a", "lab-b"),
];

/**
 * The negative control: guest lab-n's own profile widened by `/** rwk,`. The very same isolation
 * checks must report FAIL (lab-n opened lab-b's disk and /etc/shadow), or they cannot fail at all.
 */
const MUST_FAIL = new Set(["negative-control-lab-n-denied-lab-b-disk", "negative-control-lab-n-denied-etc-shadow"]);

/**
 * Checks that fail today because of a product gap, found by this lab: each is asserted to still
 * FAIL, so the day it is fixed the test says so and the entry must go. Everything else (and
 * these, once removed) expects the correct behaviour.
 */
interface KnownBroken {
  mode: Mode;
  boot: 1 | 2;
  checks: string[];
  reason: string;
}
// The first gap this lab found (QEMU could not read the save image libvirt hands it at `virsh
// restore` / a start from `managedsave`: apparmor="DENIED" operation="file_perm" in seclabel mode,
// "file_inherit" in wrapper mode) is closed by the runtime rule for the guest's own managed save
// image (src/rules/runtime.ts). Issue 17's scenario found the two below (helper mode, measured
// 06:05 on main after MAIN-READY; seclabel/wrapper mode shrink there through the admin's sync).
// A new entry names the checks, the mode and boot, and the reason.
const KNOWN_BROKEN: KnownBroken[] = [
  {
    mode: "helper",
    boot: 1,
    checks: ["ops-snapshot-base-write-denied"],
    reason:
      "helper mode: libvirt 9.0 calls its helper only with -F <overlay> before a disk-only snapshot, whose XML still has the old top as the disk's source, and nothing after it; the old top stays writable (QEMU opens it read-write) until the next regeneration",
  },
  {
    mode: "helper",
    boot: 1,
    checks: ["ops-blockcopy-old-denied"],
    reason:
      "helper mode: the regeneration libvirt 9.0 sends at a block copy's pivot still names the OLD image as the disk's <source> (the copy only in <mirror>), and nothing follows; the old image stays allowed until the next regeneration",
  },
  {
    mode: "helper",
    boot: 1,
    checks: ["ops-detach-interface-default-no-grant", "ops-detach-interface-virtio-no-grant"],
    reason:
      "helper mode: libvirt 9.0 calls its helper with -F /dev/net/tun (the tap fd) at attach-interface and nothing at all at detach-interface, so that grant stays in the record until the next regeneration (harmless for /dev/net/tun, which libvirt's abstraction grants anyway; a macvtap NIC's /dev/tapN would stay too)",
  },
  {
    mode: "helper",
    boot: 1,
    checks: ["dev-lab-s-start", "dev-lab-s-label", "dev-lab-s-dbus"],
    reason:
      "<graphics type='dbus'>: libvirt 9.0 runs the guest's dbus-daemon under the guest's own label (apparmor=\"DENIED\" operation=\"exec\" profile=\"libvirt-<uuid>\" name=\"/usr/bin/dbus-daemon\"): the profile has no exec rule for /usr/bin/dbus-daemon (nor what dbus-daemon opens), so the guest does not start. libvirt's own AppArmor support fails the same way on Debian 12 (abstractions/libvirt-qemu of libvirt 9.0 has no dbus-daemon rule either); giving the guest's profile an exec of dbus-daemon is a decision left open (docs/graphics.md)",
  },
];
function knownBroken(mode: Mode, boot: 1 | 2, name: string): string | undefined {
  return KNOWN_BROKEN.find((k) => k.mode === mode && k.boot === boot && k.checks.includes(name))?.reason;
}

interface Verdict {
  pass: boolean;
  detail: string;
}
interface Boot {
  serial: string;
  verdicts: Map<string, Verdict>;
  duplicates: string[];
  done: boolean;
}

function parseSerial(serial: string): Boot {
  const verdicts = new Map<string, Verdict>();
  const duplicates: string[] = [];
  let done = false;
  for (const raw of serial.split("\n")) {
    const line = raw.replace(/\r$/, "");
    if (line === "LAB-DONE") done = true;
    const m = /^LAB (\S+) (PASS|FAIL)(?: (.*))?$/.exec(line);
    if (!m) continue;
    const [, name, verdict, detail] = m as unknown as [string, string, string, string | undefined];
    if (verdicts.has(name)) duplicates.push(name);
    verdicts.set(name, { pass: verdict === "PASS", detail: detail ?? "" });
  }
  return { serial, verdicts, duplicates, done };
}

interface LabRun {
  exitCode: number;
  output: string;
  timings: string;
  boots: Map<string, Boot>;
}

function read(file: string): string {
  try {
    return readFileSync(file, "utf8").replace(/\r/g, "");
  } catch {
    return "";
  }
}

function collect(exitCode: number, output: string): LabRun {
  const boots = new Map<string, Boot>();
  for (const mode of MODES) {
    for (const boot of [1, 2]) boots.set(`${mode}-boot${boot}`, parseSerial(read(path.join(OUT, `${mode}-boot${boot}`, "serial.log"))));
  }
  return { exitCode, output, timings: read(path.join(OUT, "timings")), boots };
}

function runLab(): Promise<LabRun> {
  if (REUSE) {
    const code = Number(read(path.join(OUT, "exit-code")).trim() || "-1");
    return Promise.resolve(collect(code, `(VIRT_AA_HOOK_LAB_REUSE=1: judged the logs in ${OUT} again)`));
  }
  return new Promise((resolve, reject) => {
    const args = [path.join(HERE, "run.sh"), "--out", OUT, "--modes", MODES.join(" "), "--jobs", String(JOBS), ...(ONLY ? ["--only", ONLY] : [])];
    const child = spawn("bash", args, { cwd: PROJECT, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve(collect(code ?? -1, output)));
  });
}

/** The part of a boot's serial log worth reading when something failed: the VM's own lines. */
function guestLog(run: LabRun, key: string): string {
  const serial = run.boots.get(key)?.serial ?? "";
  const lines = serial.split("\n").filter((l) => /^(LAB|INFO|LAB-)/.test(l) || /DENIED|Kernel panic|error/i.test(l));
  return `--- ${key}: serial log (.cache/lab/run/${key}/serial.log, VM lines) ---\n${lines.join("\n")}\n--- run.sh output (tail) ---\n${run.output.slice(-2000)}`;
}

describe.skipIf(!ENABLED)("real-stack lab: libvirtd + QEMU on an AppArmor kernel", () => {
  let run: LabRun;

  beforeAll(async () => {
    run = await runLab();
    process.stdout.write(`lab timings (s):\n${run.timings}`);
  }, RUN_TIMEOUT_MS);

  for (const mode of MODES) {
    for (const [boot, checks] of ([
      [1, boot1Checks(mode)],
      [2, BOOT2],
    ] as const).filter(([boot]) => !ONLY || boot === 1)) {
      const key = `${mode}-boot${boot}`;
      describe(`${mode} mode, boot ${boot}`, () => {
        it("the VM ran every check to the end", () => {
          const b = run.boots.get(key)!;
          expect(b.done, `no LAB-DONE on the serial console (VM crashed, hung or timed out)\n${guestLog(run, key)}`).toBe(true);
          expect(b.duplicates, "checks reported more than once").toEqual([]);
          const unknown = [...b.verdicts.keys()].filter((n) => !checks.includes(n));
          expect(unknown, "checks the VM reports but this file does not know (add them)").toEqual([]);
        });
        for (const name of checks) {
          const broken = knownBroken(mode, boot, name);
          const mustFail = MUST_FAIL.has(name) && !broken;
          const title = mustFail
            ? `${name} reports FAIL (negative control: lab-n's profile widened by /** rwk)`
            : broken
              ? `${name} (known broken, expected FAIL: ${broken})`
              : name;
          it(title, () => {
            const v = run.boots.get(key)!.verdicts.get(name);
            expect(v, `the VM never reported "${name}"\n${guestLog(run, key)}`).toBeDefined();
            if (mustFail) {
              expect(v!.pass, `${name} PASSED with a widened profile: the check cannot fail\n${v!.detail}`).toBe(false);
              // It must fail because the open succeeded, not because something else broke.
              expect(v!.detail).toMatch(/qemu: OK/);
            } else if (broken) {
              expect(v!.pass, `${name} now PASSES: remove it from KNOWN_BROKEN\n${v!.detail}`).toBe(false);
            } else {
              expect(v!.pass, `${name}: ${v!.detail}\n${guestLog(run, key)}`).toBe(true);
            }
          });
        }
      });
    }
  }

  it("run.sh exits 0 (every boot reached LAB-DONE)", () => {
    expect(run.exitCode, run.output.slice(-3000)).toBe(0);
  });
});

// Only when not opted in: a visible skip that says how to run it.
if (!ENABLED) {
  describe("real-stack lab: libvirtd + QEMU on an AppArmor kernel", () => {
    it.skip(`skipped: ${HOW}`, () => {});
  });
}

afterAll(() => {
  if (!ENABLED) process.stdout.write(`test/lab skipped: ${HOW}\n`);
});
