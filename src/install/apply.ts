/**
 * Carrying out a plan (plan.ts) on the host under the layout: every file written atomically
 * (store/atomic.ts), every manifest entry appended right after (or, for a new file, right before)
 * what it records, so an interrupted run leaves a manifest uninstall can work from.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { Layout } from "../layout.js";
import { fsyncDir, writeFileAtomic } from "../store/atomic.js";
import { describeStep, Refusal, type HostView, type HostNode, type Step } from "./plan.js";
import { PROGRAM_ENV } from "./probes.js";

/** The host under the layout, as the planner sees it. */
export function hostView(layout: Layout): HostView {
  return {
    stat(p) {
      const st = fs.lstatSync(layout.host(p), { throwIfNoEntry: false });
      if (!st) return undefined;
      const kind: HostNode["kind"] = st.isSymbolicLink() ? "link" : st.isDirectory() ? "dir" : st.isFile() ? "file" : "other";
      return { kind, mode: st.mode & 0o7777 };
    },
    read: (p) => fs.readFileSync(layout.host(p)),
    readlink: (p) => fs.readlinkSync(layout.host(p)),
    list: (p) => fs.readdirSync(layout.host(p)),
  };
}

/**
 * Say each step (`out`), and unless `dryRun`, do it. `manifest` is the host path of the manifest:
 * entries made before it exists (the state directory's own parents) are written when it is created.
 * `unload` unloads a profile by name (uninstall); a failure is said as a warning and the run goes on.
 */
export async function applySteps(
  layout: Layout,
  steps: readonly Step[],
  opts: { dryRun: boolean; manifest: string; out: (line: string) => void; unload?: (profileName: string) => Promise<void> },
): Promise<void> {
  const real = (p: string) => layout.host(p);
  const manifest = real(opts.manifest);
  const pending: string[] = [];
  const record = (entry: string) => {
    if (!fs.existsSync(manifest)) pending.push(entry);
    else fs.appendFileSync(manifest, `${entry}\n`);
  };
  for (const step of steps) {
    const line = describeStep(step, opts.dryRun);
    if (line !== undefined) opts.out(line);
    if (opts.dryRun) continue;
    switch (step.do) {
      case "mkdir":
        fs.mkdirSync(real(step.path), { mode: 0o755 });
        fs.chmodSync(real(step.path), 0o755);
        record(`created-dir ${step.path}`);
        break;
      case "manifest":
        if (!fs.existsSync(manifest)) {
          fs.writeFileSync(manifest, pending.map((e) => `${e}\n`).join(""), { mode: 0o644 });
          fs.chmodSync(manifest, 0o644);
          pending.length = 0;
        }
        break;
      case "record":
        record(step.entry);
        break;
      case "backup":
        copyPreserving(real(step.path), real(step.to));
        record(`modified ${step.path}`);
        break;
      case "write":
        writeFileAtomic(real(step.path), step.content, { mode: step.mode });
        break;
      case "pristine":
        fs.mkdirSync(path.dirname(real(step.copy)), { recursive: true, mode: 0o755 });
        fs.writeFileSync(real(step.copy), step.content, { mode: 0o644 });
        break;
      case "link":
        fs.rmSync(real(step.path), { force: true });
        fs.symlinkSync(step.target, real(step.path));
        fsyncDir(path.dirname(real(step.path)));
        break;
      case "move":
        fs.renameSync(real(step.from), real(step.to));
        break;
      case "remove":
        fs.rmSync(real(step.path), { force: true });
        break;
      case "rmdir":
        fs.rmdirSync(real(step.path));
        break;
      case "remove-tree":
        for (const p of step.paths) fs.rmSync(real(p), { recursive: true, force: true });
        break;
      case "restore":
        fs.rmSync(real(step.path), { force: true });
        copyPreserving(real(step.from), real(step.path));
        break;
      case "unblock":
        writeFileAtomic(real(step.path), step.content, { mode: step.mode });
        break;
      case "divert":
        dpkgDivert(layout, ["--package", step.package, "--rename", "--divert", step.to, "--add", step.path]);
        if (step.record) record(`diverted ${step.path} ${step.to}`);
        break;
      case "undivert":
        dpkgDivert(layout, ["--package", step.package, "--rename", "--divert", step.to, "--remove", step.path]);
        break;
      case "unload":
        try {
          if (!opts.unload) throw new Error("no load target");
          await opts.unload(step.profile);
        } catch (err) {
          opts.out(`warning: ${(err as Error).message}`);
        }
        break;
      case "note":
        break;
    }
  }
}

/**
 * Run this machine's dpkg-divert (absolute path, no shell, the fixed environment) on the root's
 * files and dpkg database: `--instdir` is the root, `--admindir` its /var/lib/dpkg (for the real
 * root, dpkg's own defaults spelled out). A failure ends the run with dpkg-divert's words; what
 * was done before it is in the manifest.
 */
function dpkgDivert(layout: Layout, args: string[]): void {
  const full = ["--instdir", layout.root, "--admindir", layout.host(layout.dpkgAdminDir), ...args];
  const r = spawnSync(layout.dpkgDivert, full, { env: PROGRAM_ENV, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 });
  if (r.status === 0) return;
  const why = r.error ? r.error.message : `exit ${r.status ?? r.signal}: ${(r.stderr || r.stdout).trim().split("\n")[0] ?? ""}`;
  throw new Refusal(`${layout.dpkgDivert} ${args.join(" ")} failed (${why})`);
}

/** `cp -a` of one file or link: content, mode, owner and times (a link as a link). */
function copyPreserving(from: string, to: string): void {
  const st = fs.lstatSync(from);
  if (st.isSymbolicLink()) {
    fs.symlinkSync(fs.readlinkSync(from), to);
    return;
  }
  fs.copyFileSync(from, to);
  fs.chmodSync(to, st.mode & 0o7777);
  try {
    fs.chownSync(to, st.uid, st.gid);
  } catch {
    // not root: the copy is ours, as cp -a without privileges leaves it
  }
  fs.utimesSync(to, st.atime, st.mtime);
}
