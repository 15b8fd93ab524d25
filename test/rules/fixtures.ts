/**
 * Shared test helpers for rule families: Domain objects built directly (no XML parser), and rule
 * contexts whose Layout root is a fresh temporary directory, so no test reads the real host.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, expect } from "vitest";
import type { Devices, Disk, Domain, MemoryBacking, OsConfig } from "../../src/domain/model.js";
import { emptyDevices } from "../../src/domain/index.js";
import { PathError } from "../../src/errors.js";
import { HostFs } from "../../src/hostfs.js";
import { Layout } from "../../src/layout.js";
import { defaultQemuConf, parseQemuConf } from "../../src/host/qemu-conf.js";
import type { RuleContext, RuleFamily } from "../../src/rules/context.js";
import type { Rule } from "../../src/ir.js";
import { canonicalise, checkRule } from "../../src/policy/index.js";

export const TEST_UUID = "6a1b9c3e-2f4d-4e5a-8b7c-0d1e2f3a4b5c";

export interface DomainOverrides extends Partial<Omit<Domain, "os" | "devices" | "memoryBacking">> {
  os?: Partial<OsConfig>;
  devices?: Partial<Devices>;
  memoryBacking?: Partial<MemoryBacking>;
}

/** A minimal running guest ("vm1", id 7, no devices); nested parts are merged, not replaced. */
export function baseDomain(overrides: DomainOverrides = {}): Domain {
  const { os: osOverrides, devices, memoryBacking, ...top } = overrides;
  return {
    name: "vm1",
    uuid: TEST_UUID,
    id: 7,
    type: "kvm",
    fwcfgFiles: [],
    seclabels: [],
    ...top,
    os: { acpiTables: [], ...osOverrides },
    memoryBacking: { hugepages: false, ...memoryBacking },
    devices: { ...emptyDevices(), ...devices },
  };
}

/** A writable virtio disk "vda" (file type, raw), with overrides. */
export function fileDisk(overrides: Partial<Disk> = {}): Disk {
  return { type: "file", device: "disk", format: "raw", readonly: false, shareable: false, target: "vda", ...overrides };
}

/** A temporary directory used as the Layout root; removed by the returned cleanup. */
export function tempRoot(): { root: string; cleanup: () => void } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "virt-aa-hook-rules-"));
  return { root, cleanup: () => fs.rmSync(root, { recursive: true, force: true }) };
}

/**
 * Call at a test file's top level: returns a maker of fresh temp roots, each removed after the
 * test that made it (registers its own afterEach).
 */
export function tempRootsPerTest(): () => string {
  const cleanups: (() => void)[] = [];
  afterEach(() => cleanups.splice(0).forEach((c) => c()));
  return () => {
    const t = tempRoot();
    cleanups.push(t.cleanup);
    return t.root;
  };
}

/** A root that does not exist: every host read through it finds nothing. */
export const ABSENT_ROOT = "/nonexistent/virt-aa-hook-test-root";

/**
 * A rule context over `domain` whose host reads go under `root` (ABSENT_ROOT if omitted), with
 * libvirt's default qemu.conf unless `qemu` (a qemu.conf text, parsed by the real parser) is given.
 */
export function ruleContext(domain: Domain, root = ABSENT_ROOT, maxBackingDepth = 64, qemu?: string): RuleContext {
  const layout = new Layout(root);
  const fs = new HostFs(layout);
  const images = { vet: (r: Rule) => checkRule(fs, r), canonical: (p: string) => canonicalise(fs, p), writableByOtherGuest: () => undefined };
  const conf = qemu === undefined ? defaultQemuConf(layout) : parseQemuConf(qemu, layout);
  return { domain, fs, layout, qemu: conf, maxBackingDepth, images };
}

/** Write `content` at host path `hostPath` under `root`, creating parent directories. */
export function writeHostFile(root: string, hostPath: string, content: string | Buffer): string {
  const real = path.join(root, hostPath);
  fs.mkdirSync(path.dirname(real), { recursive: true });
  fs.writeFileSync(real, content);
  return real;
}

/** Run `fn`, which must throw a PathError with exactly this path and reason. */
export function expectPathError(fn: () => unknown, path: string, reason: string): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(PathError);
  expect({ path: (thrown as PathError).path, reason: (thrown as PathError).reason }).toEqual({ path, reason });
}

/**
 * A rule family whose rules come without their origin: most tests check paths, permissions and
 * sources; the origin of every family's rules is checked once, exactly, in origins.test.ts.
 */
export function withoutOrigins(family: RuleFamily): (ctx: RuleContext) => Rule[] {
  return (ctx) => family(ctx).map(({ origin: _origin, ...rule }) => rule);
}
