/**
 * The corpus loader: real-world domain XMLs (test/corpus/domains/), the expected outcome of each
 * (test/corpus/expected.json) and, per entry, a temporary host root holding exactly the host files
 * that XML needs. docs/corpus.md says how to add an entry.
 *
 * Every root gets the base host (BASE_HOST: libvirt's directories, and those of its firmware and
 * emulator files the XML names), the pool definitions of test/corpus/pools/ the XML names (under
 * /etc/libvirt/storage), the guest's own `/var/lib/libvirt/images/<name>.qcow2` (a qcow2 without
 * backing file), then what the entry's `host` adds. Device nodes are plain files or absent: no
 * root needed, and the tests elsewhere fake them the same way (test/rules/hosttree.ts).
 */
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { GuestError } from "../../src/errors.js";
import { Layout } from "../../src/layout.js";
import { buildProfile } from "../../src/pipeline.js";
import { qcow2Header } from "../images/helpers.js";
import { fakePciDevice, fakeUsbDevice, link, mkdir } from "../rules/hosttree.js";
import { writeHostFile } from "../rules/fixtures.js";

/** The qcow2 header extension that names an external data file (QEMU docs/interop/qcow2.txt). */
const QCOW2_DATA_FILE = 0x44415441;

export const CORPUS_DIR = path.dirname(fileURLToPath(import.meta.url));
export const DOMAINS_DIR = path.join(CORPUS_DIR, "domains");
const POOLS_DIR = path.join(CORPUS_DIR, "pools");

/** Host files an entry needs beyond the base host. Paths are host paths (as the XML names them). */
export interface HostSpec {
  /** Empty regular files (raw images, ISOs, firmware, sockets libvirt would have made, device stand-ins). */
  files?: string[];
  /** Regular files with this text. */
  text?: Record<string, string>;
  dirs?: string[];
  /** Symlinks: path → target, kept verbatim (relative targets resolve inside the root). */
  links?: Record<string, string>;
  /**
   * qcow2 images: path → backing file name in the header (null: no backing file), or
   * `{ backing?, dataFile? }` for an image with an external data file (incompatible bit 2 and the
   * data-file header extension, as `qemu-img create -o data_file=` writes them).
   */
  qcow2?: Record<string, string | null | { backing?: string; dataFile?: string }>;
  /** VFIO-bound PCI devices: address → IOMMU group (test/rules/hosttree.ts fakePciDevice). */
  pci?: Record<string, number>;
  /** USB devices in sysfs: name (e.g. "1-2") → ids (hosttree.ts fakeUsbDevice). */
  usb?: Record<string, { vendor: string; product: string; bus: number; dev: number }>;
}

/**
 * What an entry must give. `pending` marks an outcome that is TODAY's and known wrong: the named
 * helper's work changes it, the test then fails and says to flip the entry (docs/corpus.md).
 */
export interface Expectation {
  /** Which kind of real-world guest this is (the report groups by it). */
  kind: string;
  host?: HostSpec;
  outcome: "ok" | "refused";
  /** refused: the exact line the admin sees, `virt-aa-hook: error: <guest>: <path>: <reason>`. */
  error?: string;
  /** refused on purpose (no `pending`): why the policy refuses this guest. */
  why?: string;
  /** "<helper>: <what is missing>": this outcome is today's, not the intended one. */
  pending?: string;
  /** ok: the exact rule lines of the `.files` (header comments left out), for chosen entries. */
  rules?: string[];
  /** Oracle: libvirt's rule path (as it prints it) → why our generator does not grant it. */
  libvirtOnly?: Record<string, string>;
  /** Oracle: why libvirt 9.0's generator is not compared for this entry. */
  oracleSkip?: string;
}

export type Manifest = Record<string, Expectation>;

export function loadManifest(): Manifest {
  const raw = JSON.parse(fs.readFileSync(path.join(CORPUS_DIR, "expected.json"), "utf8")) as Record<string, unknown>;
  const out: Manifest = {};
  for (const [file, entry] of Object.entries(raw)) if (!file.startsWith("//")) out[file] = entry as Expectation;
  return out;
}

export function corpusFiles(): string[] {
  return fs.readdirSync(DOMAINS_DIR).filter((f) => f.endsWith(".xml")).sort();
}

export function readDomain(file: string): string {
  return fs.readFileSync(path.join(DOMAINS_DIR, file), "utf8");
}

/** The guest name as written in the XML (for the base image); undefined if there is none. */
function guestName(xml: string): string | undefined {
  return /<name>([^<]*)<\/name>/.exec(xml)?.[1];
}

/** What every root has: what a Debian host with libvirt, QEMU and firmware packages has. */
const BASE_HOST: HostSpec = {
  files: [
    "/usr/bin/qemu-system-x86_64",
    "/usr/bin/qemu-system-aarch64",
    "/usr/bin/qemu-system-riscv64",
    "/usr/share/OVMF/OVMF_CODE_4M.fd",
    "/usr/share/OVMF/OVMF_CODE_4M.ms.fd",
    "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
    "/usr/share/OVMF/OVMF_VARS_4M.fd",
    "/usr/share/OVMF/OVMF_VARS_4M.ms.fd",
    "/usr/share/AAVMF/AAVMF_CODE.fd",
    "/usr/share/AAVMF/AAVMF_VARS.fd",
    "/usr/share/seabios/bios-256k.bin",
  ],
  dirs: ["/var/lib/libvirt/images", "/var/lib/libvirt/qemu/nvram", "/var/log/libvirt/qemu", "/run/libvirt/qemu", "/etc/apparmor.d/libvirt"],
};

/** Lay `spec` out under `root`. */
export function buildHost(root: string, spec: HostSpec): void {
  for (const d of spec.dirs ?? []) mkdir(root, d);
  for (const f of spec.files ?? []) writeHostFile(root, f, "");
  for (const [f, text] of Object.entries(spec.text ?? {})) writeHostFile(root, f, text);
  for (const [f, image] of Object.entries(spec.qcow2 ?? {})) {
    const { backing, dataFile } = image === null ? {} : typeof image === "string" ? { backing: image } : image;
    writeHostFile(
      root,
      f,
      qcow2Header({
        ...(backing === undefined ? {} : { backingOffset: 512n, backingSize: Buffer.byteLength(backing), backingName: Buffer.from(backing) }),
        ...(dataFile === undefined ? {} : { incompatible: 4n, extensions: [[QCOW2_DATA_FILE, Buffer.from(dataFile)]] }),
      }),
    );
  }
  for (const [addr, group] of Object.entries(spec.pci ?? {})) {
    // Two functions of one device share a group: the group directory may exist already.
    fakePciDevice(root, addr, group);
  }
  for (const [name, ids] of Object.entries(spec.usb ?? {})) fakeUsbDevice(root, name, ids);
  for (const [at, target] of Object.entries(spec.links ?? {})) link(root, at, target);
}

/** A fresh root for one corpus entry: base host, pools, the guest's base image, the entry's files. */
export function hostRootFor(parent: string, file: string, xml: string, entry: Expectation | undefined): string {
  const root = fs.mkdtempSync(path.join(parent, `${file.replace(/\.xml$/, "")}-`));
  // Only the base files and pools this XML names: fewer files, a faster run on a loaded machine.
  buildHost(root, { dirs: BASE_HOST.dirs, files: BASE_HOST.files?.filter((f) => xml.includes(f)) });
  for (const pool of fs.readdirSync(POOLS_DIR)) {
    if (!xml.includes(`pool='${pool.replace(/\.xml$/, "")}'`)) continue;
    writeHostFile(root, `/etc/libvirt/storage/${pool}`, fs.readFileSync(path.join(POOLS_DIR, pool)));
  }
  const name = guestName(xml);
  if (name !== undefined && /^[A-Za-z0-9._-]+$/.test(name)) writeHostFile(root, `/var/lib/libvirt/images/${name}.qcow2`, qcow2Header({}));
  if (entry?.host) buildHost(root, entry.host);
  return root;
}

export type Outcome = { outcome: "ok"; rules: string[]; paths: OurRule[] } | { outcome: "refused"; error: string };

export interface OurRule {
  path: string;
  suffix: string;
  perms: string;
}

/** Our generator over one XML in `root`, as the hook's prepare builds it (src/pipeline.ts). */
export function generate(xml: string, root: string): Outcome {
  try {
    const built = buildProfile(xml, { layout: new Layout(root) });
    const rules = built.filesText.split("\n").filter((l) => l !== "" && !l.startsWith("#"));
    return { outcome: "ok", rules, paths: built.rules.map((r) => ({ path: r.path, suffix: r.suffix, perms: r.perms })) };
  } catch (err) {
    // Only a GuestError (a refusal with its reason) is an outcome; anything else is a crash.
    if (err instanceof GuestError) return { outcome: "refused", error: err.toLine() };
    throw err;
  }
}

/** A temporary parent directory for the roots of one run (under the run's TMPDIR). */
export function tempParent(): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "virt-aa-hook-corpus-"));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

// ---- the oracle: libvirt's own generator ---------------------------------------------------------

/**
 * libvirt's virt-aa-helper, if this machine has libvirt's own (an ELF binary, not virt-aa-hook's
 * launcher: an install diverts libvirt's to `.real` and links ours in its place).
 */
export function libvirtHelper(): string | undefined {
  for (const p of ["/usr/lib/libvirt/virt-aa-helper.real", "/usr/lib/libvirt/virt-aa-helper"]) {
    try {
      const fd = fs.openSync(p, "r");
      const head = Buffer.alloc(4);
      fs.readSync(fd, head, 0, 4, 0);
      fs.closeSync(fd);
      if (head.toString("latin1") === "\x7fELF") return p;
    } catch {
      // not there
    }
  }
  return undefined;
}

export interface LibvirtRule {
  /** As libvirt prints it, between the quotes (its own globs, no escaping). */
  path: string;
  perms: string;
}

export type LibvirtOutcome = { ok: true; rules: LibvirtRule[] } | { ok: false; error: string };

/**
 * `virt-aa-helper -r -d -u libvirt-<uuid>` with the XML on stdin: a dry run prints the `.files`
 * it would write on stderr and writes nothing (src/security/virt-aa-helper.c, main(): `if
 * (ctl->dryrun) { vah_info(include_file); vah_info(included_files); }`). It reads the real host
 * (its disk type checks, backing-chain probing, sysfs), never our temp root: paths the corpus names
 * do not exist there, which it only warns about. Runs as any user.
 */
export function runLibvirt(helper: string, xml: string, uuid: string): Promise<LibvirtOutcome> {
  return new Promise((resolve) => {
    const child = execFile(helper, ["-r", "-d", "-u", `libvirt-${uuid}`], { encoding: "utf8", timeout: 30_000, env: { LC_ALL: "C" } }, (err, _stdout, stderr) => {
      if (err) resolve({ ok: false, error: `exit ${String(err.code ?? err.signal)}: ${stderr.trim().split("\n").pop() ?? ""}` });
      else resolve({ ok: true, rules: parseLibvirtRules(stderr) });
    });
    child.stdin?.end(xml);
  });
}

/** The rule lines of a dry run's output, `  "<path>" <perms>,`. */
export function parseLibvirtRules(stderr: string): LibvirtRule[] {
  const rules: LibvirtRule[] = [];
  for (const line of stderr.split("\n")) {
    const m = /^\s+"(.*)" ([a-z]+),$/.exec(line);
    if (m) rules.push({ path: m[1]!, perms: m[2]! });
  }
  return rules;
}

/** Does one of our rules grant the literal path `p` (no glob syntax in it)? */
function grantsLiteral(ours: readonly OurRule[], p: string): boolean {
  return ours.some((r) => {
    switch (r.suffix) {
      case "":
        return p === r.path;
      case "/":
        return p === `${r.path}/` || p === r.path;
      case "/**":
        return p.startsWith(`${r.path}/`) && p.length > r.path.length + 1;
      case "{,/**}":
        return p === r.path || p === `${r.path}/` || p.startsWith(`${r.path}/`);
      case "/*":
        return p.startsWith(`${r.path}/`) && !p.slice(r.path.length + 1).includes("/") && p.length > r.path.length + 1;
      default:
        return false;
    }
  });
}

/**
 * Whether our rules cover libvirt's rule `l`: the same pattern, or (for a literal) a rule of ours
 * that matches it, or (for libvirt's `<dir>/**`, `<dir>/*`) ours granting that tree or more.
 */
export function covers(ours: readonly OurRule[], l: string): boolean {
  if (ours.some((r) => r.path + r.suffix === l)) return true;
  const tree = /^(.*)\/\*\*?$/.exec(l);
  if (tree) {
    const dir = tree[1]!;
    if (!/[*?[\]{}]/.test(dir) && ours.some((r) => (r.suffix === "{,/**}" || r.suffix === "/**") && (dir === r.path || dir.startsWith(`${r.path}/`)))) return true;
  }
  if (/[*?[\]{}]/.test(l)) return false;
  return grantsLiteral(ours, l);
}

// ---- verdicts (pure, so harness.test.ts can show they fail) --------------------------------------

/** What is wrong with `out` against the entry; [] when it is what the manifest says. */
export function outcomeProblems(e: Expectation, out: Outcome): string[] {
  const flip = e.pending ? ` [pending "${e.pending}": if the helper's work changed this, review the new outcome and flip the entry (docs/corpus.md)]` : "";
  if (out.outcome !== e.outcome) {
    return [`expected ${e.outcome}, got ${out.outcome === "refused" ? `refused: ${out.error}` : "ok"}${flip}`];
  }
  if (out.outcome === "refused" && out.error !== e.error) return [`refused with "${out.error}", expected "${e.error}"${flip}`];
  if (out.outcome === "ok" && e.rules !== undefined) {
    const added = out.rules.filter((r) => !e.rules!.includes(r));
    const gone = e.rules.filter((r) => !out.rules.includes(r));
    if (added.length || gone.length) return [`rules differ: new ${JSON.stringify(added)}, gone ${JSON.stringify(gone)}${flip}`];
    if (out.rules.join("\n") !== e.rules.join("\n")) return [`rules in another order${flip}`];
  }
  return [];
}

/**
 * libvirt's rules ours does not cover against the entry's `libvirtOnly`: exact both ways, except
 * that a "(host-dependent)" one may be absent (libvirt's helper adds it only on some hosts).
 */
export function oracleProblems(e: Expectation, uncovered: readonly string[]): string[] {
  const listed = e.libvirtOnly ?? {};
  const problems: string[] = [];
  for (const p of uncovered) if (!(p in listed)) problems.push(`libvirt grants ${p}, ours does not: grant it, or list it in libvirtOnly with the reason`);
  for (const [p, why] of Object.entries(listed)) {
    if (!uncovered.includes(p) && !why.startsWith("(host-dependent)")) problems.push(`libvirtOnly lists ${p}, but ours covers it now (or libvirt no longer grants it): drop it${why.startsWith("pending") ? " and flip the pending entry" : ""}`);
  }
  return problems;
}
