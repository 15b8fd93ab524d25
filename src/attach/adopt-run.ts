/**
 * `virt-aa-hook adopt`: switch defined domains to the configured attach mode through virsh.
 * Runs as an admin command, never inside the hook (calling libvirt from a hook deadlocks), so
 * it may use virsh; always by absolute path, with the XML passed as a file, never a shell. virsh
 * runs through execa (install/probes.ts), like the installer's and doctor's programs.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { runProgram } from "../install/probes.js";
import { AttachError, adoptXml, undoXml, type AttachMode, type AttachPaths } from "./index.js";

export interface Virsh {
  /** Names of every defined domain. */
  list(): Promise<string[]>;
  /** `virsh dumpxml --inactive --security-info NAME` */
  dumpxml(name: string): Promise<string>;
  /** `virsh define FILE` */
  define(xml: string): Promise<void>;
}

/** Loads (or replaces) the guest's profile before the domain that names it is defined. */
export type ProfileLoader = (name: string, xml: string) => void;

export class VirshError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "VirshError";
  }
}

/**
 * virsh at `virshPath` (absolute, never looked up in PATH). `tmpDir` is where `define` writes its
 * XML file (default: the system's temporary directory); `adopt --root DIR` passes DIR/tmp.
 */
export function virshAt(virshPath: string, uri?: string, tmpDir?: string): Virsh {
  const base = uri ? ["-c", uri] : [];
  if (!virshPath.startsWith("/")) throw new VirshError(`cannot run ${virshPath}: not an absolute path`);
  const run = async (args: string[]): Promise<string> => {
    const r = await runProgram(virshPath, [...base, ...args]);
    if (r.failure !== undefined) throw new VirshError(`cannot run ${virshPath}: ${r.failure}`);
    if (r.exitCode !== 0) {
      const why = (r.stderr || r.stdout).trim().split("\n").filter(Boolean).join(" ") || `exit ${r.exitCode}`;
      throw new VirshError(`virsh ${args.join(" ")}: ${why}`);
    }
    return r.stdout;
  };
  return {
    list: async () => (await run(["list", "--all", "--name"])).split("\n").map((s) => s.trim()).filter(Boolean),
    dumpxml: (name) => run(["dumpxml", "--inactive", "--security-info", name]),
    define: async (xml) => {
      const parent = tmpDir ?? os.tmpdir();
      fs.mkdirSync(parent, { recursive: true, mode: 0o700 });
      const dir = fs.mkdtempSync(path.join(parent, "virt-aa-hook-adopt-"));
      try {
        const file = path.join(dir, "domain.xml");
        fs.writeFileSync(file, xml, { mode: 0o600 });
        await run(["define", file]);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

export interface AdoptRequest {
  names: string[];
  all: boolean;
  undo: boolean;
  mode: AttachMode;
  paths: AttachPaths;
  virsh: Virsh;
  /** Called before `define` when the new XML names a profile libvirt checks at define time. */
  loadProfile: ProfileLoader;
  /** Checks the wrapper link for an emulator name exists (wrapper mode). */
  wrapperExists: (emulatorName: string) => boolean;
  out: (line: string) => void;
}

export interface AdoptOutcome {
  changed: string[];
  unchanged: string[];
  failed: string[];
}

/** Adopt (or undo) each domain; one failure does not stop the others. */
export async function adopt(req: AdoptRequest): Promise<AdoptOutcome> {
  const names = req.all ? await req.virsh.list() : req.names;
  const outcome: AdoptOutcome = { changed: [], unchanged: [], failed: [] };
  const verb = req.undo ? "undo" : `adopt (attach = ${req.mode})`;
  for (const name of names) {
    try {
      const before = await req.virsh.dumpxml(name);
      const after = req.undo ? undoXml(before, req.paths) : adoptXml(before, req.mode, req.paths);
      if (after === before) {
        req.out(`${name}: already ${req.undo ? "not adopted" : `adopted (attach = ${req.mode})`}`);
        outcome.unchanged.push(name);
        continue;
      }
      if (!req.undo && req.mode === "wrapper") {
        const emu = /<emulator>([^<]*)<\/emulator>/.exec(after.slice(after.indexOf("<devices")))?.[1] ?? "";
        const emuName = emu.slice(emu.lastIndexOf("/") + 1);
        if (!req.wrapperExists(emuName)) {
          throw new AttachError(`${req.paths.wrapperDir}/${emuName}: wrapper link missing: run install.sh again after installing this QEMU`);
        }
      }
      // libvirt refuses to define a static AppArmor label whose profile is not loaded.
      if (!req.undo && req.mode === "seclabel") req.loadProfile(name, after);
      await req.virsh.define(after);
      req.out(`${name}: ${req.undo ? "undone" : `adopted (attach = ${req.mode})`}`);
      outcome.changed.push(name);
    } catch (err) {
      // AttachError, VirshError and loader failures all name what and why; report and go on.
      if (!(err instanceof Error)) throw err;
      req.out(`${name}: cannot ${verb}: ${err.message}`);
      outcome.failed.push(name);
    }
  }
  return outcome;
}
