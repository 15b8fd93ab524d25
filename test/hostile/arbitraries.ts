/**
 * Shared generators and seed handling for the hostile-input property tests.
 *
 * Every property runs twice: once with FIXED_SEED (the same inputs on every CI run, so a failure
 * there is reproducible by anyone) and once with a fresh seed, printed in the test name, so CI
 * keeps exploring. Replay a failing random run with
 *   VIRT_AA_HOOK_SEED=<seed> npm run test:hostile
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { GuestError } from "../../src/errors.js";
import { qcow2Header } from "../images/helpers.js";

export const FIXED_SEED = 20261129;

function randomSeed(): number {
  const fromEnv = process.env.VIRT_AA_HOOK_SEED;
  if (fromEnv !== undefined && fromEnv !== "") {
    const seed = Number(fromEnv);
    if (!Number.isSafeInteger(seed)) throw new Error(`VIRT_AA_HOOK_SEED must be an integer, not ${JSON.stringify(fromEnv)}`);
    return seed;
  }
  return (Date.now() ^ Math.floor(Math.random() * 0x7fffffff)) | 0;
}

/** The seed of this test file's random runs (one per vitest worker unless VIRT_AA_HOOK_SEED is set). */
export const RANDOM_SEED = randomSeed();

export interface SeedRun {
  /** Goes into the test name, so the seed is printed with every result. */
  label: string;
  seed: number;
  numRuns: number;
}

/** A fixed-seed run of `fixedRuns` inputs and a random-seed run of `randomRuns` inputs. */
export function seedRuns(fixedRuns: number, randomRuns: number): SeedRun[] {
  return [
    { label: `fixed seed ${FIXED_SEED}`, seed: FIXED_SEED, numRuns: fixedRuns },
    { label: `random seed ${RANDOM_SEED} (replay: VIRT_AA_HOOK_SEED=${RANDOM_SEED} npm run test:hostile)`, seed: RANDOM_SEED, numRuns: randomRuns },
  ];
}

/** Announce the random seed once per file, so it is in the log even when names are cut. */
export function announceSeed(file: string): void {
  console.log(`${file}: fixed seed ${FIXED_SEED}, random seed ${RANDOM_SEED} (replay with VIRT_AA_HOOK_SEED=${RANDOM_SEED} npm run test:hostile)`);
}

// ---------------------------------------------------------------------------------------------
// Paths

/** Symlinks planted in every property root (see plantLinks): names the path generator uses. */
export const LINKS: Record<string, string> = {
  "/srv/lnk-etc": "/etc",
  "/srv/lnk-up": "../../../../etc/shadow",
  "/srv/lnk-img": "/var/lib/libvirt/images",
  "/srv/lnk-loop": "/srv/lnk-loop",
  "/srv/lnk-ovmf": "../usr/share/OVMF",
  "/var/lib/libvirt/images/lnk-root": "/",
  "/var/lib/libvirt/images/lnk-dot": ".",
};

/** Files and directories that exist in every property root. */
export const EXISTING = ["/etc/shadow", "/usr/share/OVMF/OVMF_CODE.fd", "/var/lib/libvirt/images/web01.qcow2", "/srv/data.img", "/boot/vmlinuz"];

/** A fresh root holding EXISTING, LINKS and what the seed domains need; removed by the returned cleanup. */
export function propertyRoot(): { root: string; cleanup: () => void } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "virt-aa-hostile-"));
  const write = (file: string, data: string | Buffer) => {
    fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    fs.writeFileSync(path.join(root, file), data);
  };
  for (const file of EXISTING) write(file, "");
  // The seed domains (examples/) name qcow2 images and a volume in the "default" pool.
  for (const image of ["/var/lib/libvirt/images/web01.qcow2", "/var/lib/libvirt/images/data.qcow2", "/var/lib/libvirt/images/top.qcow2"]) {
    write(image, qcow2Header({ length: 1024 }));
  }
  write("/etc/libvirt/storage/default.xml", "<pool type='dir'><name>default</name><target><path>/var/lib/libvirt/images</path></target></pool>");
  for (const [link, target] of Object.entries(LINKS)) {
    fs.mkdirSync(path.dirname(path.join(root, link)), { recursive: true });
    fs.symlinkSync(target, path.join(root, link));
  }
  return { root, cleanup: () => fs.rmSync(root, { recursive: true, force: true }) };
}

/** Characters with a meaning to AppArmor's parser, to XML, to shells or to path resolution. */
const SPECIAL = [..."*?[]{}^,\"'\\@#$!~%&=<>:;`|()+.- "];

const oddUnit = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...SPECIAL) },
  { weight: 4, arbitrary: fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 1 }) },
  { weight: 2, arbitrary: fc.constantFrom("é", "雪", "😀", "\u00a0", "\u2028", "\ufeff", "\ufffd", "\u0085") },
  { weight: 2, arbitrary: fc.constantFrom("\n", "\r", "\t", "\0", "\x7f", "\x1b", "\x01") },
  { weight: 1, arbitrary: fc.constantFrom("\ud800", "\udfff") }, // lone surrogates: not encodable as UTF-8
  { weight: 1, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }) },
);

/** One path component (may be empty, ".", "..", a planted link, or any odd text). */
export const component: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom("", ".", "..", "...") },
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      "etc", "shadow", "passwd", "proc", "self", "mem", "usr", "share", "OVMF", "lib", "bin", "dev", "var", "libvirt", "images",
      "virt-aa-hook", "root", "boot", "sys", "web01.qcow2", "data.img", "srv", "vmlinuz",
    ),
  },
  { weight: 3, arbitrary: fc.constantFrom("lnk-etc", "lnk-up", "lnk-img", "lnk-loop", "lnk-ovmf", "lnk-root", "lnk-dot") },
  {
    weight: 3,
    arbitrary: fc.constantFrom("@{HOME}", "@{VAR}", "@{}", "{,/**}", "**", "*", "[0-9]*", "\\x41", "\\0", "\\\\", "\\\"", "a\\", "${x}", "#c", "\"", "'", "&amp;"),
  },
  { weight: 8, arbitrary: fc.string({ unit: oddUnit, minLength: 1, maxLength: 8 }).map((s) => s.replaceAll("/", "_")) },
  { weight: 1, arbitrary: fc.integer({ min: 200, max: 300 }).map((n) => "x".repeat(n)) },
);

/** Where a generated path starts. */
const prefix = fc.constantFrom(
  "/", "/", "//", "/./", "/../", "/var/lib/libvirt/images/", "/srv/", "/etc/", "/usr/share/OVMF/", "/boot/", "/dev/", "/proc/self/",
  "/sys/", "/root/", "/var/lib/virt-aa-hook/", "/run/libvirt/qemu/", "", "./", "~/", "file:/",
);

/** Paths as hostile XML may name them: absolute or not, with every kind of odd component. */
export const hostilePath: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 20,
    arbitrary: fc
      .tuple(prefix, fc.array(component, { minLength: 1, maxLength: 6 }), fc.constantFrom("", "", "", "/", "//", "/."))
      .map(([p, parts, end]) => p + parts.join("/") + end),
  },
  // Around PATH_MAX (4096 characters): some just under, some over.
  { weight: 1, arbitrary: fc.integer({ min: 4080, max: 4100 }).map((n) => `/srv/${"y".repeat(n - 7)}/z`) },
);

/**
 * Text as an XML attribute value that decodes to exactly `s`: markup characters as entities,
 * every control character and anything XML cannot carry literally as a character reference
 * (attribute-value normalisation would otherwise turn tabs and newlines into spaces). Lone
 * surrogates become `&#xD800;`, which the parser must refuse.
 */
export function xmlAttr(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    const code = s.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < s.length && s.charCodeAt(i + 1) >= 0xdc00 && s.charCodeAt(i + 1) <= 0xdfff) {
      out += c + s[++i];
    } else if (c === "&") out += "&amp;";
    else if (c === "<") out += "&lt;";
    else if (c === ">") out += "&gt;";
    else if (c === "'") out += "&apos;";
    else if (c === '"') out += "&quot;";
    else if (code < 0x20 || code === 0x7f || (code >= 0xd800 && code <= 0xdfff) || code === 0xfffe || code === 0xffff) {
      out += `&#x${code.toString(16).toUpperCase()};`;
    } else out += c;
  }
  return out;
}

/** Element text: the same encoding works (quotes as entities are fine in text too). */
export const xmlText = xmlAttr;

// ---------------------------------------------------------------------------------------------
// Restricted locations: an oracle written independently of src/policy.

/** Locations no guest may be granted anything in (a subset of src/policy's list, written out again). */
export const RESTRICTED = [
  "/etc", "/proc", "/sys", "/bin", "/sbin", "/lib", "/lib64", "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/libexec", "/usr/share",
  "/usr/local/bin", "/usr/local/sbin", "/usr/local/lib", "/usr/local/share", "/boot", "/root", "/dev/mem", "/dev/kmem", "/dev/port",
  "/dev/cpu", "/dev/kmsg", "/var/lib/virt-aa-hook", "/run/virt-aa-hook", "/var/log/libvirt/virt-aa-hook.log",
];

/** Where read-only grants are allowed inside a restricted location (firmware, kernels). */
export const READ_ONLY_EXCEPTIONS = [
  "/boot", "/usr/share/OVMF", "/usr/share/ovmf", "/usr/share/AAVMF", "/usr/share/edk2", "/usr/share/edk2-ovmf", "/usr/share/qemu-efi",
  "/usr/share/qemu-efi-aarch64", "/usr/share/qemu-efi-riscv64", "/usr/share/qemu", "/usr/share/seabios", "/usr/share/ipxe",
  "/usr/share/opensbi", "/usr/share/virtio-win", "/usr/lib/u-boot", "/usr/lib/ipxe/qemu",
];

/** Sample files in restricted locations: no compiled guest rule may match any of them with write access. */
export const RESTRICTED_SAMPLES = [
  "/etc/shadow", "/etc/passwd", "/etc/apparmor.d/libvirt/TEMPLATE.qemu", "/etc/libvirt/virt-aa-hook.conf", "/proc/1/mem",
  "/proc/self/environ", "/sys/kernel/security/apparmor/.replace", "/bin/sh", "/usr/bin/qemu-system-x86_64", "/usr/lib/x86_64-linux-gnu/libc.so.6",
  "/usr/share/OVMF/OVMF_CODE.fd", "/boot/vmlinuz", "/boot/grub/grub.cfg", "/root/.ssh/authorized_keys", "/dev/mem", "/dev/cpu/0/msr",
  "/var/lib/virt-aa-hook/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0.json", "/run/virt-aa-hook/locks/x.lock", "/var/log/libvirt/virt-aa-hook.log",
];

export function isUnder(p: string, location: string): boolean {
  return p === location || p.startsWith(location === "/" ? "/" : `${location}/`);
}

/**
 * Why a granted (path, perms, suffix) breaks the restricted-location guarantee, or undefined when
 * it does not. sysfs files of one PCI device or TPM are the documented exception (checked by
 * shape only: a plain file below /sys/devices or /sys/bus/pci, never recursive).
 */
export function restrictedViolation(p: string, perms: string, suffix: string): string | undefined {
  const recursive = suffix !== "" && suffix !== "/";
  const readOnly = [...perms].every((c) => "rkm".includes(c));
  // Read-only anywhere inside a read-only exception is allowed, the whole tree included.
  if (readOnly && READ_ONLY_EXCEPTIONS.some((loc) => isUnder(p, loc))) return undefined;
  if (recursive) {
    const reached = RESTRICTED.find((loc) => isUnder(loc, p));
    if (reached !== undefined) return `recursive grant on ${p} reaches ${reached}`;
  }
  const location = RESTRICTED.find((loc) => isUnder(p, loc));
  if (location === undefined) return undefined;
  if (/^\/sys\/(devices|bus\/pci\/devices|class)\//.test(p) && !recursive) return undefined;
  return `${p} (${perms}) is under ${location}`;
}

// ---------------------------------------------------------------------------------------------
// Outcomes

/** The one-line error shape every rejection must have. */
export const ERROR_LINE = /^virt-aa-hook: error: [^\n]*: [^\n]*: [^\n]+$/;

/** Run fn; a GuestError is a clean rejection, anything else thrown is a crash and rethrown. */
export function outcomeOf<T>(fn: () => T): { ok: true; value: T } | { ok: false; error: GuestError } {
  try {
    return { ok: true, value: fn() };
  } catch (err) {
    if (err instanceof GuestError) return { ok: false, error: err };
    throw err;
  }
}
