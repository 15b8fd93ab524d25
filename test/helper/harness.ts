/**
 * Runs our virt-aa-helper the way libvirt's AppArmor driver does: the unmodified in-repo
 * `hooks/virt-aa-helper`, installed in a temp root as the installer lays it out
 * (`<root>/usr/lib/virt-aa-hook/virt-aa-helper`, and `<root>/usr/lib/libvirt/virt-aa-helper` a
 * symlink to it, which is the name libvirt runs), next to links to the built bundle and loader
 * where its `BUNDLE=${0%/*}/../dist/...` line looks; libvirt's words, the live XML on stdin for
 * -c/-r, and libvirt's environment (only LIBVIRT_LOG_OUTPUTS). The qemu hook is installed too
 * (lifecycle/harness.ts), since it keeps running in helper mode. Needs `npm run build` first.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import type { TestRoot } from "../lifecycle/fixture.js";
import { BUNDLE, installHook } from "../lifecycle/harness.js";

const REPO = path.resolve(new URL("../..", import.meta.url).pathname);
export const LAUNCHER_SOURCE = path.join(REPO, "hooks/virt-aa-helper");
export const LIBVIRT_HELPER = "/usr/lib/libvirt/virt-aa-helper";
export const OUR_HELPER = "/usr/lib/virt-aa-hook/virt-aa-helper";

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function installHelper(t: TestRoot): void {
  installHook(t);
  fs.mkdirSync(t.at("/usr/lib/virt-aa-hook"), { recursive: true });
  fs.mkdirSync(t.at("/usr/lib/libvirt"), { recursive: true });
  fs.copyFileSync(LAUNCHER_SOURCE, t.at(OUR_HELPER));
  fs.chmodSync(t.at(OUR_HELPER), 0o755);
  // Relative, so the link resolves inside the root as the absolute one does on a host.
  fs.symlinkSync("../virt-aa-hook/virt-aa-helper", t.at(LIBVIRT_HELPER));
  fs.mkdirSync(t.at("/usr/lib/dist"), { recursive: true });
  fs.symlinkSync(BUNDLE, t.at("/usr/lib/dist/virt-aa-hook.cjs"));
  fs.symlinkSync(path.join(path.dirname(BUNDLE), "loader.cjs"), t.at("/usr/lib/dist/loader.cjs"));
}

/** One call as libvirt makes it: `/usr/lib/libvirt/virt-aa-helper ARGS < xml`. */
export function callHelper(t: TestRoot, args: string[], xml?: string, via: string = LIBVIRT_HELPER): Run {
  const r = spawnSync(t.at(via), args, {
    input: xml ?? "",
    env: { LIBVIRT_LOG_OUTPUTS: "3:stderr" },
    cwd: "/",
    timeout: 60_000,
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

/** A call with one recorded argv/stdin pair (test/fixtures/libvirt-helper-calls/*.json). */
export interface RecordedCall {
  argv: string[];
  stdin: string;
}
