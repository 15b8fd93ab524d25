/**
 * A temporary host root for lifecycle and parser tests: enough of /etc/apparmor.d for the real
 * apparmor_parser to compile libvirt profiles against it (`--base <root>/etc/apparmor.d`), a
 * `--subdomainfs` directory that stands in for the kernel, and a config pointing at both.
 *
 * The machine's /etc/apparmor.d is copied once per test process (tunables, abstractions, abi,
 * local: what abstractions/libvirt-qemu includes) and linked into each root, so the parser reads
 * nothing of the machine's /etc; the features file is copied into the root too.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export const PARSER = "/usr/sbin/apparmor_parser";
const SYSTEM_APPARMOR = "/etc/apparmor.d";
const SYSTEM_FEATURES = "/usr/share/apparmor-features/features";
/** Inside the root: where the parser "loads" (has .replace and .remove, like securityfs). */
export const FAKE_SECURITYFS = "/run/fake-securityfs";
export const FEATURES = "/usr/share/apparmor-features/features";

const INCLUDE_DIRS = ["tunables", "abstractions", "abi", "local"];
let sharedCopy: string | undefined;

/** Read-only copy of the include directories, shared by every root of this test process. */
function sharedApparmorCopy(): string {
  if (sharedCopy) return sharedCopy;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-apparmor-base-"));
  for (const sub of INCLUDE_DIRS) fs.cpSync(path.join(SYSTEM_APPARMOR, sub), path.join(dir, sub), { recursive: true });
  process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
  sharedCopy = dir;
  return dir;
}

export interface TestRoot {
  root: string;
  /** Real path under the root. */
  at(hostPath: string): string;
  writeConfig(lines: Record<string, string>): void;
  read(hostPath: string): string;
  exists(hostPath: string): boolean;
  remove(): void;
}

export function makeTestRoot(prefix = "vaah-root-"): TestRoot {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const at = (p: string) => path.join(root, p);
  const shared = sharedApparmorCopy();
  fs.mkdirSync(at("/etc/apparmor.d"), { recursive: true });
  for (const sub of INCLUDE_DIRS) fs.symlinkSync(path.join(shared, sub), at(`/etc/apparmor.d/${sub}`));
  fs.mkdirSync(at("/etc/apparmor.d/libvirt"), { recursive: true });
  fs.copyFileSync(path.join(SYSTEM_APPARMOR, "libvirt/TEMPLATE.qemu"), at("/etc/apparmor.d/libvirt/TEMPLATE.qemu"));
  fs.mkdirSync(path.dirname(at(FEATURES)), { recursive: true });
  fs.cpSync(SYSTEM_FEATURES, at(FEATURES), { recursive: true });
  fs.mkdirSync(at(FAKE_SECURITYFS), { recursive: true });
  fs.writeFileSync(at(`${FAKE_SECURITYFS}/.replace`), "");
  fs.writeFileSync(at(`${FAKE_SECURITYFS}/.remove`), "");
  fs.mkdirSync(at("/etc/libvirt"), { recursive: true });
  const t: TestRoot = {
    root,
    at,
    writeConfig(lines) {
      const text = Object.entries(lines).map(([k, v]) => `${k} = "${v}"\n`).join("");
      fs.writeFileSync(at("/etc/libvirt/virt-aa-hook.conf"), text);
    },
    read: (p) => fs.readFileSync(at(p), "utf8"),
    exists: (p) => fs.existsSync(at(p)),
    remove: () => fs.rmSync(root, { recursive: true, force: true }),
  };
  t.writeConfig(defaultTestConfig());
  return t;
}

/** Load into the fake securityfs, compile against the copied features. */
export function defaultTestConfig(): Record<string, string> {
  return { subdomainfs: FAKE_SECURITYFS, features_file: FEATURES };
}
