/**
 * Runs the real hook the way libvirtd does: the unmodified in-repo `hooks/qemu`, placed at
 * `<root>/etc/libvirt/hooks/qemu` (so it serves that root) next to a link to the built bundle
 * where its `BUNDLE=${0%/*}/../dist/...` line looks; four arguments, the XML on stdin, and
 * libvirt's minimal environment `{LC_ALL: "C"}`. Needs `npm run build` first. Its NODE= line names
 * the node under test (test/helpers/node.ts), as an installer rewrites it.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { TEST_NODE, withTestNode } from "../helpers/node.js";
import type { TestRoot } from "./fixture.js";

const REPO = path.resolve(new URL("../..", import.meta.url).pathname);
export const BUNDLE = path.join(REPO, "dist/virt-aa-hook.cjs");
export const HOOK_SOURCE = path.join(REPO, "hooks/qemu");

export interface HookRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function installHook(t: TestRoot): string {
  if (!fs.existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run npm run build first`);
  const hook = t.at("/etc/libvirt/hooks/qemu");
  fs.mkdirSync(path.dirname(hook), { recursive: true });
  fs.writeFileSync(hook, withTestNode(fs.readFileSync(HOOK_SOURCE, "utf8")));
  fs.chmodSync(hook, 0o755);
  fs.mkdirSync(t.at("/etc/libvirt/dist"), { recursive: true });
  fs.symlinkSync(BUNDLE, t.at("/etc/libvirt/dist/virt-aa-hook.cjs"));
  fs.symlinkSync(path.join(path.dirname(BUNDLE), "loader.cjs"), t.at("/etc/libvirt/dist/loader.cjs"));
  return hook;
}

/** One hook call as libvirtd makes it. */
export function callHook(t: TestRoot, args: [string, string, string, string], xml: string): HookRun {
  const r = spawnSync(t.at("/etc/libvirt/hooks/qemu"), args, {
    input: xml,
    env: { LC_ALL: "C" },
    cwd: "/",
    timeout: 60_000,
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

/** The same call through `node dist/virt-aa-hook.cjs hook --root ROOT ...`. */
export function callBundle(t: TestRoot, args: [string, string, string, string], xml: string): HookRun {
  const r = spawnSync(TEST_NODE, [BUNDLE, "hook", "--root", t.root, "--", ...args], {
    input: xml,
    env: { LC_ALL: "C" },
    cwd: "/",
    timeout: 60_000,
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

export interface DomainSpec {
  name?: string;
  uuid?: string;
  id?: number;
  disks?: string[];
  /** Emit `<backingStore/>` for each disk, as the start XML does. */
  backingStore?: boolean;
}

export const UUID = "6a1e3c2b-9d84-4f0a-b1c2-d3e4f5a6b7c8";

export function domainXml(spec: DomainSpec = {}): string {
  const name = spec.name ?? "vm1";
  const disks = (spec.disks ?? ["/var/lib/libvirt/images/vm1.img"])
    .map(
      (p, i) => `    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='${p}'/>${spec.backingStore ? "\n      <backingStore/>" : ""}
      <target dev='vd${String.fromCharCode(97 + i)}' bus='virtio'/>
    </disk>`,
    )
    .join("\n");
  return `<domain type='kvm'${spec.id !== undefined ? ` id='${spec.id}'` : ""}>
  <name>${name}</name>
  <uuid>${spec.uuid ?? UUID}</uuid>
  <memory unit='KiB'>1048576</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
${disks}
  </devices>
</domain>
`;
}

/** Every file and directory under the root, relative, sorted (links not followed). */
export function tree(t: TestRoot): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(t.root, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      out.push(e.isDirectory() ? `${r}/` : r);
      if (e.isDirectory()) walk(r);
    }
  };
  walk("/");
  return out.sort();
}
