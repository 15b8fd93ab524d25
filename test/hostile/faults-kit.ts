/**
 * Shared by the faults-and-concurrency tests (crash, full-disk, concurrency, fail-closed): a
 * temporary root with the real hook installed (test/lifecycle's fixture and harness), the real
 * apparmor_parser loading into a fake securityfs, and small helpers to run the hook
 * asynchronously and to name a guest's files.
 */
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { Layout } from "../../src/layout.js";
import { buildProfile } from "../../src/pipeline.js";
import { renderProfile } from "../../src/render/index.js";
import { FAKE_SECURITYFS, makeTestRoot, type TestRoot } from "../lifecycle/fixture.js";
import { BUNDLE, domainXml, installHook, type HookRun } from "../lifecycle/harness.js";
import { TEST_NODE } from "../helpers/node.js";

export const LIBVIRT_DIR = "/etc/apparmor.d/libvirt";
export const STATE_DIR = "/var/lib/virt-aa-hook";
export const LOCK_DIR = "/run/virt-aa-hook/locks";
export const CACHE_DIR = "/var/cache/apparmor/virt-aa-hook";
export const REPLACE = `${FAKE_SECURITYFS}/.replace`;
export const REMOVE = `${FAKE_SECURITYFS}/.remove`;
export const IMAGES = "/var/lib/libvirt/images";

export interface Guest {
  name: string;
  uuid: string;
  profileName: string;
  /** Host paths. */
  profile: string;
  files: string;
  state: string;
  lock: string;
}

export function guest(name: string, uuid: string): Guest {
  const profileName = `libvirt-${uuid}`;
  return {
    name,
    uuid,
    profileName,
    profile: `${LIBVIRT_DIR}/${profileName}`,
    files: `${LIBVIRT_DIR}/${profileName}.files`,
    state: `${STATE_DIR}/${uuid}.json`,
    lock: `${LOCK_DIR}/${uuid}.lock`,
  };
}

/** A deterministic UUID for guest number i of a test. */
export function uuidFor(tag: string, i: number): string {
  const h = crypto.createHash("sha256").update(`${tag}-${i}`).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** A root with the hook installed as libvirt would run it. */
export function hookRoot(prefix: string): TestRoot {
  const t = makeTestRoot(prefix);
  installHook(t);
  fs.mkdirSync(t.at(IMAGES), { recursive: true });
  return t;
}

/** Version `v` of a guest's XML: v+1 raw disks, so every version's .files is distinguishable. */
export function versionXml(t: TestRoot, g: Guest, v: number, opts: { id?: number } = {}): string {
  const disks: string[] = [];
  for (let i = 0; i <= v; i++) {
    const p = `${IMAGES}/${g.name}-${i}.img`;
    if (!fs.existsSync(t.at(p))) fs.writeFileSync(t.at(p), Buffer.alloc(512));
    disks.push(p);
  }
  return domainXml({ name: g.name, uuid: g.uuid, id: opts.id ?? 5, disks });
}

/** The .files text the pipeline derives for this XML in this root. */
export function expectedFiles(t: TestRoot, xml: string): string {
  return buildProfile(xml, { layout: new Layout(t.root) }).filesText;
}

/** The per-guest profile the hook creates from the root's template. */
export function expectedProfile(t: TestRoot, g: Guest): string {
  return renderProfile(t.read(`${LIBVIRT_DIR}/TEMPLATE.qemu`), g.profileName, `libvirt/${g.profileName}.files`);
}

/** A hand-written per-guest profile (the admin's), including the generated rules. */
export function adminProfile(g: Guest): string {
  return `#include <tunables/global>\nprofile ${g.profileName} flags=(attach_disconnected) {\n  #include <abstractions/libvirt-qemu>\n  #include <libvirt/${g.profileName}.files>\n  # written by the admin\n}\n`;
}

export function readOrUndef(t: TestRoot, hostPath: string): Buffer | undefined {
  try {
    return fs.readFileSync(t.at(hostPath));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

export function sha256(b: Buffer | string): string {
  return crypto.createHash("sha256").update(b).digest("hex");
}

/** Everything of one guest on disk, to compare before/after. */
export function snapshot(t: TestRoot, g: Guest): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const p of [g.profile, g.files, g.state]) out[p] = readOrUndef(t, p)?.toString("utf8");
  return out;
}

export interface AsyncRun extends HookRun {
  ms: number;
}

/** One hook call through the root's hooks/qemu (as libvirtd runs it), without blocking the test process. */
export function callHookAsync(t: TestRoot, args: [string, string, string, string], xml: string, timeoutMs = 90_000): Promise<AsyncRun> {
  return runAsync(t.at("/etc/libvirt/hooks/qemu"), args, xml, timeoutMs);
}

/** `node dist/virt-aa-hook.cjs status --root ROOT --json` */
export async function statusJson(t: TestRoot): Promise<Array<Record<string, unknown>>> {
  const r = await runAsync(TEST_NODE, [BUNDLE, "status", "--root", t.root, "--json"], "", 30_000);
  if (r.status !== 0) throw new Error(`status failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Array<Record<string, unknown>>;
}

function runAsync(file: string, args: string[], input: string, timeoutMs: number): Promise<AsyncRun> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: { LC_ALL: "C" }, cwd: "/", stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ status: code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), ms: performance.now() - t0 });
    });
    child.stdin.on("error", () => {});
    child.stdin.end(input);
  });
}

/** Entries of the profiles directory, sorted. */
export function libvirtDirEntries(t: TestRoot): string[] {
  return fs.readdirSync(t.at(LIBVIRT_DIR)).sort();
}

export { FAKE_SECURITYFS, path };
