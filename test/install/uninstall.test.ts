/**
 * uninstall.sh and what the hook made while guests ran: install.sh into a temp root, guests
 * prepared by the real bundle (the real apparmor_parser loading into a fake securityfs), then
 * uninstall. Asserts the refusal while a managed guest runs, the --force warning, that the dry
 * run lists exactly what the real run then does, and the exact tree left: what install found,
 * plus only what an admin edited.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { capsCacheEntry } from "../../src/install/hook-files.js";
import { hostRoot, REPO, runScript, sha, sourceTree, tree, write, type Entry } from "./helpers.js";

vi.setConfig({ testTimeout: 180_000 });

const NODE = "/usr/bin/node";
const BUNDLE = path.join(REPO, "dist/virt-aa-hook.cjs");
const FAKE_FS = "/run/fake-securityfs";
const FEATURES = "/usr/share/apparmor-features/features";
const U1 = "11111111-1111-4111-8111-111111111111";
const U2 = "22222222-2222-4222-8222-222222222222";
const U3 = "33333333-3333-4333-8333-333333333333";
const WRAPPED = "/usr/lib/virt-aa-hook/bin/qemu-system-x86_64";
const OTHER_CAPS = capsCacheEntry("/usr/bin/qemu-system-x86_64");

let src: string;
let root: string;
beforeEach(() => {
  src = sourceTree();
  root = hostRoot();
  // What a libvirt host has before virt-aa-hook: directories the hook writes into, logrotate,
  // libvirt's capabilities cache (an entry for the real emulator, which must stay).
  for (const d of ["/var/log/libvirt", "/var/cache/apparmor", "/run/libvirt/qemu", "/etc/logrotate.d", FAKE_FS]) fs.mkdirSync(at(d), { recursive: true });
  write(at(OTHER_CAPS), "<qemuCaps/>\n");
  write(at(FEATURES), fs.readFileSync(FEATURES, "utf8"));
  write(at(`${FAKE_FS}/.replace`), "");
  write(at(`${FAKE_FS}/.remove`), "");
});
afterEach(() => {
  fs.rmSync(src, { recursive: true, force: true });
  fs.rmSync(root, { recursive: true, force: true });
});

function at(p: string): string {
  return path.join(root, p);
}
const install = () => runScript("install.sh", src, ["--root", root, "--node", NODE, "--libvirt-version", "9.0.0"]);
const uninstall = (...args: string[]) => runScript("uninstall.sh", src, ["--root", root, ...args]);
const xml = (name: string, uuid: string) =>
  `<domain type='kvm'><name>${name}</name><uuid>${uuid}</uuid><memory unit='KiB'>1048576</memory>` +
  `<os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os><devices><emulator>/usr/bin/qemu-system-x86_64</emulator>` +
  `<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/var/lib/libvirt/images/${name}.img'/><target dev='vda' bus='virtio'/></disk>` +
  `</devices></domain>\n`;
function prepare(name: string, uuid: string): void {
  write(at(`/var/lib/libvirt/images/${name}.img`), "");
  const r = spawnSync(process.execPath, [BUNDLE, "hook", "--root", root, "--", name, "prepare", "begin", "-"], { input: xml(name, uuid), encoding: "utf8", env: { LC_ALL: "C" } });
  expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
  // Loaded: the parser wrote the compiled profile (which names it) to the fake .replace.
  expect(fs.readFileSync(at(`${FAKE_FS}/.replace`)).includes(`libvirt-${uuid}`)).toBe(true);
}
/** The tree without the fake securityfs's load records (what the parser sent is asserted apart). */
const treeOf = () => tree(root).filter((e) => !e.path.startsWith(FAKE_FS.slice(1)));
const byPath = (entries: Entry[]) => new Map(entries.map((e) => [e.path, JSON.stringify({ ...e, mtime: undefined })]));
/** Paths whose entry differs between two trees, or that only one of them has. */
function differing(a: Entry[], b: Entry[]): string[] {
  const ma = byPath(a);
  const mb = byPath(b);
  return [...new Set([...ma.keys(), ...mb.keys()])].filter((p) => ma.get(p) !== mb.get(p)).sort();
}

describe("uninstall.sh with guests the hook manages", () => {
  it("refuses while one runs, then with --force removes all the hook made but what the admin edited; the dry run lists exactly that", () => {
    const before = treeOf();
    expect(install().status).toBe(0);
    expect(fs.readFileSync(at("/etc/logrotate.d/virt-aa-hook"), "utf8")).toContain("/var/log/libvirt/virt-aa-hook.log {\n");
    // Load into the fake securityfs (an edit of the installed config: uninstall keeps it).
    fs.appendFileSync(at("/etc/libvirt/virt-aa-hook.conf"), `subdomainfs = "${FAKE_FS}"\nfeatures_file = "${FEATURES}"\n`);
    prepare("vm1", U1);
    prepare("vm2", U2);
    prepare("vm3", U3);
    // vm2 runs (libvirt's status XML); vm3's profile was edited by the admin.
    write(at("/run/libvirt/qemu/vm2.xml"), `<domstatus state='running'>\n  <domain type='kvm' id='7'>\n    <name>vm2</name>\n    <uuid>${U2}</uuid>\n  </domain>\n</domstatus>\n`);
    fs.appendFileSync(at(`/etc/apparmor.d/libvirt/libvirt-${U3}`), "# the admin was here\n");
    // Rotated logs, an interrupted write, and libvirt's cache entry for the wrapper's path.
    write(at("/var/log/libvirt/virt-aa-hook.log.1"), "old\n");
    write(at("/var/log/libvirt/virt-aa-hook.log.2.gz"), "older\n");
    write(at("/var/log/libvirt/virt-aa-hook.log.keep"), "not a rotation\n");
    fs.mkdirSync(at(`/etc/apparmor.d/libvirt/.virt-aa-hook-stage-${U1}-abc123`));
    write(at(capsCacheEntry(WRAPPED)), "<qemuCaps/>\n");
    const edited = {
      config: fs.readFileSync(at("/etc/libvirt/virt-aa-hook.conf")),
      profile3: fs.readFileSync(at(`/etc/apparmor.d/libvirt/libvirt-${U3}`)),
      files3: fs.readFileSync(at(`/etc/apparmor.d/libvirt/libvirt-${U3}.files`)),
    };
    const installed = treeOf();
    const P = "virt-aa-hook uninstall: ";

    // Refused, with what to do, and nothing changed (dry run or not).
    for (const args of [[], ["--dry-run"]]) {
      const r = uninstall(...args);
      expect(r.stdout).toBe("");
      expect(r.stderr).toBe(
        `${P}error: managed guests are running (vm2): shut them down (virsh shutdown NAME) and run uninstall again, or pass --force (they keep their loaded profiles until they stop; their files are removed)\n`,
      );
      expect(r.status).toBe(1);
      expect(treeOf()).toEqual(installed);
    }

    fs.writeFileSync(at(`${FAKE_FS}/.remove`), "");
    const dry = uninstall("--force", "--dry-run");
    expect(dry.stderr).toBe("");
    expect(dry.status).toBe(0);
    expect(treeOf()).toEqual(installed);
    expect(fs.readFileSync(at(`${FAKE_FS}/.remove`), "latin1")).toBe("");
    const guestLines = [
      `${P}warning: managed guests are running (vm2): --force: their profiles stay loaded while they run, their files are removed`,
      `${P}would unload libvirt-${U1}`,
      `${P}would remove /etc/apparmor.d/libvirt/libvirt-${U1}`,
      `${P}would remove /etc/apparmor.d/libvirt/libvirt-${U1}.files`,
      `${P}kept libvirt-${U2} loaded: vm2 is running (unloading it would leave its QEMU unconfined); the kernel forgets it at the next reboot`,
      `${P}would remove /etc/apparmor.d/libvirt/libvirt-${U2}`,
      `${P}would remove /etc/apparmor.d/libvirt/libvirt-${U2}.files`,
      `${P}would unload libvirt-${U3}`,
      `${P}kept /etc/apparmor.d/libvirt/libvirt-${U3}: edited since virt-aa-hook wrote it`,
      `${P}kept /etc/apparmor.d/libvirt/libvirt-${U3}.files: the kept /etc/apparmor.d/libvirt/libvirt-${U3} includes it`,
      `${P}would remove /etc/apparmor.d/libvirt/.virt-aa-hook-stage-${U1}-abc123 (an interrupted profile write)`,
      `${P}would remove /var/log/libvirt/virt-aa-hook.log`,
      `${P}would remove /var/log/libvirt/virt-aa-hook.log.1`,
      `${P}would remove /var/log/libvirt/virt-aa-hook.log.2.gz`,
      `${P}would remove ${capsCacheEntry(WRAPPED)} (libvirt's cached capabilities of ${WRAPPED})`,
    ];
    const dryLines = dry.stdout.trimEnd().split("\n");
    expect(dryLines.slice(0, guestLines.length)).toEqual(guestLines);
    expect(dryLines).toContain(`${P}would remove /etc/logrotate.d/virt-aa-hook`);
    expect(dryLines).toContain(`${P}kept /etc/libvirt/virt-aa-hook.conf: edited since install`);
    expect(dryLines.at(-1)).toBe(`${P}dry run: nothing was changed`);
    expect(new Set(dryLines).size).toBe(dryLines.length);

    const real = uninstall("--force");
    expect(real.stderr).toBe("");
    expect(real.status).toBe(0);
    // The real run did exactly what the dry run listed, in the same order.
    const realLines = real.stdout.trimEnd().split("\n");
    expect(realLines.slice(0, -1)).toEqual(dryLines.slice(0, -1).map((l) => l.replace(`${P}would `, P)));
    expect(realLines.at(-1)).toBe(`${P}done`);
    // Each unload rewrites the fake .remove: the last one (vm3's) is what it holds. The lines say
    // vm1's and vm3's were unloaded without a warning, and vm2's (running) was not.
    expect(fs.readFileSync(at(`${FAKE_FS}/.remove`), "latin1").split("\0")[0]!.trim()).toBe(`libvirt-${U3}`);
    expect(realLines.filter((l) => l.startsWith(`${P}unload`))).toEqual([`${P}unload libvirt-${U1}`, `${P}unload libvirt-${U3}`]);
    expect(realLines.filter((l) => l.includes("warning:"))).toEqual([guestLines[0]]);

    // What is left: what install found, plus the admin's edits, the file beside the log that is
    // not a rotation, the running guest's status XML and the test's disk images (var/lib: install
    // made it, and it is not empty).
    expect(differing(before, treeOf())).toEqual([
      `etc/apparmor.d/libvirt/libvirt-${U3}`,
      `etc/apparmor.d/libvirt/libvirt-${U3}.files`,
      "etc/libvirt/virt-aa-hook.conf",
      "run/libvirt/qemu/vm2.xml",
      "var/lib",
      "var/lib/libvirt",
      "var/lib/libvirt/images",
      "var/lib/libvirt/images/vm1.img",
      "var/lib/libvirt/images/vm2.img",
      "var/lib/libvirt/images/vm3.img",
      "var/log/libvirt/virt-aa-hook.log.keep",
    ]);
    expect(sha(fs.readFileSync(at("/etc/libvirt/virt-aa-hook.conf")))).toBe(sha(edited.config));
    expect(sha(fs.readFileSync(at(`/etc/apparmor.d/libvirt/libvirt-${U3}`)))).toBe(sha(edited.profile3));
    expect(sha(fs.readFileSync(at(`/etc/apparmor.d/libvirt/libvirt-${U3}.files`)))).toBe(sha(edited.files3));
    expect(fs.existsSync(at(OTHER_CAPS))).toBe(true);
  });
});

describe("install.sh --dry-run", () => {
  it("says each thing once: fresh, again after install, and for an upgrade", () => {
    const once = (stdout: string) => {
      const lines = stdout.trimEnd().split("\n");
      expect(lines.filter((l, i) => lines.indexOf(l) !== i)).toEqual([]);
    };
    const dry = () => runScript("install.sh", src, ["--root", root, "--node", NODE, "--libvirt-version", "9.0.0", "--dry-run"]);
    once(dry().stdout);
    expect(install().status).toBe(0);
    once(dry().stdout);
    fs.appendFileSync(path.join(src, "dist/virt-aa-hook.cjs"), "// a new build\n");
    const upgrade = dry();
    once(upgrade.stdout);
    expect(upgrade.stdout).toContain("would install /usr/lib/virt-aa-hook/virt-aa-hook.cjs (mode 0644)\n");
  });
});
