import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { HostFs } from "../../src/hostfs.js";
import { Layout } from "../../src/layout.js";
import { PathError } from "../../src/errors.js";
import type { ChainWalk } from "../../src/images/index.js";
import { canonicalise } from "../../src/policy/index.js";

export const QEMU_IMG = "/usr/bin/qemu-img";

/** A temporary directory used as the Layout root; host paths like "/images/a.qcow2" live under it. */
export class ImageRoot {
  readonly dir: string;
  readonly fs: HostFs;

  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "virt-aa-images-"));
    this.fs = new HostFs(new Layout(this.dir));
  }

  /** Host path → real path under the root. */
  real(hostPath: string): string {
    return path.join(this.dir, hostPath);
  }

  mkdir(hostDir: string): void {
    fs.mkdirSync(this.real(hostDir), { recursive: true });
  }

  write(hostPath: string, data: string | Buffer): void {
    this.mkdir(path.posix.dirname(hostPath));
    fs.writeFileSync(this.real(hostPath), data);
  }

  /**
   * Run qemu-img with the working directory set to the real directory of `hostDir`, so relative
   * names behave as they would on the host.
   */
  qemuImg(hostDir: string, ...args: string[]): void {
    this.mkdir(hostDir);
    execFileSync(QEMU_IMG, args, { cwd: this.real(hostDir), stdio: ["ignore", "ignore", "pipe"] });
  }

  info(hostPath: string): Record<string, unknown> {
    return JSON.parse(execFileSync(QEMU_IMG, ["info", "--output=json", this.real(hostPath)], { encoding: "utf8" })) as Record<string, unknown>;
  }

  cleanup(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Run fn and return the PathError it throws (fails the test if it throws nothing else). */
export function pathErrorOf(fn: () => unknown): { path: string; reason: string } {
  try {
    fn();
  } catch (e) {
    if (e instanceof PathError) return { path: e.path, reason: e.reason };
    throw e;
  }
  throw new Error("expected a PathError, got none");
}

/**
 * qemu-img 7.2 always records the backing format; rename the backing-format header extension to
 * an unknown type (which QEMU skips) so the image has a backing file of unrecorded format.
 */
export function forgetBackingFormat(realPath: string): void {
  const buf = fs.readFileSync(realPath);
  const at = buf.subarray(0, 4096).indexOf(Buffer.from([0xe2, 0x79, 0x2a, 0xca]));
  if (at < 0) throw new Error(`no backing format extension in ${realPath}`);
  Buffer.from([0x0b, 0xad, 0xf0, 0x0d]).copy(buf, at);
  fs.writeFileSync(realPath, buf);
}

export interface Qcow2HeaderSpec {
  version?: number;
  clusterBits?: number;
  backingOffset?: bigint;
  backingSize?: number;
  incompatible?: bigint;
  headerLength?: number;
  /** Extensions written right after the header: [type, data]; the end marker is appended. */
  extensions?: Array<[number, Buffer]>;
  /** Raw bytes placed at backingOffset (when it is small enough to place). */
  backingName?: Buffer;
  /** Total file length (default 64 KiB). */
  length?: number;
}

/** A hand-made qcow2 header for corrupt-input tests (only the fields the reader looks at). */
export function qcow2Header(spec: Qcow2HeaderSpec): Buffer {
  const version = spec.version ?? 3;
  const buf = Buffer.alloc(spec.length ?? 65536);
  buf.write("QFI\xfb", 0, "latin1");
  buf.writeUInt32BE(version, 4);
  buf.writeBigUInt64BE(spec.backingOffset ?? 0n, 8);
  buf.writeUInt32BE(spec.backingSize ?? 0, 16);
  buf.writeUInt32BE(spec.clusterBits ?? 16, 20);
  let offset = 72;
  if (version === 3) {
    buf.writeBigUInt64BE(spec.incompatible ?? 0n, 72);
    buf.writeUInt32BE(4, 96);
    buf.writeUInt32BE(spec.headerLength ?? 104, 100);
    offset = spec.headerLength ?? 104;
  }
  for (const [type, data] of spec.extensions ?? []) {
    buf.writeUInt32BE(type, offset);
    buf.writeUInt32BE(data.length, offset + 4);
    data.copy(buf, offset + 8);
    offset += 8 + ((data.length + 7) & ~7);
  }
  if (spec.backingName !== undefined && spec.backingOffset !== undefined && spec.backingOffset < BigInt(buf.length)) {
    spec.backingName.copy(buf, Number(spec.backingOffset));
  }
  return buf;
}

/**
 * The walk as the pipeline runs it, minus the policy verdict: every path is canonicalised inside
 * the root (symlinks resolved) and nothing is refused. Unit tests of discoverChain use it.
 */
export function walkOf(hostFs: HostFs, extra: Partial<ChainWalk> = {}): ChainWalk {
  return { touch: (entry) => canonicalise(hostFs, entry.path), canonical: (p) => canonicalise(hostFs, p), ...extra };
}
