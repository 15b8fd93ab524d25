/**
 * `virt-aa-hook grant|revoke|sync` through the built bundle, in temporary roots, with the real
 * domain parser, policy and apparmor_parser (loading into a stand-in securityfs).
 *
 * virsh is the one fake: a fixture script at <root>/usr/bin/virsh (where `--root` makes the
 * commands look for it) that prints the "live XML" the test put in <root>/live/<name>.xml and logs
 * its arguments. libvirt itself, and what a real `virsh dumpxml` prints, is covered by the system
 * suite and the lab.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readState } from "../../src/store/state.js";
import { makeTestRoot, type TestRoot } from "../lifecycle/fixture.js";
import { BUNDLE, callBundle, domainXml, UUID } from "../lifecycle/harness.js";
import { FAKE_VIRSH } from "../helpers/virsh.js";
import { TEST_NODE } from "../helpers/node.js";

const NAME = `libvirt-${UUID}`;
const FILES = `/etc/apparmor.d/libvirt/${NAME}.files`;
const STATE = `/var/lib/virt-aa-hook/${UUID}.json`;
const IMG = "/var/lib/libvirt/images";
const NEW = `${IMG}/new.img`;


let t: TestRoot;
beforeEach(() => {
  t = makeTestRoot("vaah-admin-");
  fs.mkdirSync(t.at(IMG), { recursive: true });
  for (const f of ["vm1.img", "new.img", "other.img"]) fs.writeFileSync(t.at(`${IMG}/${f}`), Buffer.alloc(4096));
  fs.mkdirSync(t.at("/usr/bin"), { recursive: true });
  fs.writeFileSync(t.at("/usr/bin/virsh"), FAKE_VIRSH, { mode: 0o755 });
  fs.mkdirSync(t.at("/live"));
  live(domainXml());
});
afterEach(() => t.remove());

/** What the fake virsh prints for vm1 from now on. */
function live(xml: string, name = "vm1"): void {
  fs.writeFileSync(t.at(`/live/${name}.xml`), xml);
}
function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(TEST_NODE, [BUNDLE, ...args, "--root", t.root], { encoding: "utf8", env: { LC_ALL: "C" }, timeout: 60_000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
function prepare(): string {
  const r = callBundle(t, ["vm1", "prepare", "begin", "-"], domainXml());
  expect(r.status).toBe(0);
  return t.read(FILES);
}
const calls = () => (t.exists("/virsh-calls") ? t.read("/virsh-calls") : "");
const grants = () => readState(t.at(STATE))?.grants;
const ok = (stdout: string) => ({ status: 0, stdout: `${stdout}\n`, stderr: "" });

describe("grant", () => {
  it("grants a path read-write, then read-only, through the live XML, and refuses what the policy refuses", () => {
    const clean = prepare();
    expect(cli("grant", "vm1", NEW)).toEqual(ok(`granted ${NEW} read-write to vm1: ${NAME}: loaded new rules`));
    expect(calls()).toBe("--connect qemu:///system dumpxml --security-info -- vm1\n");
    expect(t.read(FILES)).toBe(`${clean}  "${NEW}" rwk,  # admin grant\n`);
    expect(grants()).toEqual([{ path: NEW, write: true, by: "admin", source: "admin grant" }]);

    expect(cli("grant", "vm1", NEW, "--read-only")).toEqual(ok(`granted ${NEW} read-only to vm1: ${NAME}: loaded new rules`));
    expect(t.read(FILES)).toBe(`${clean}  "${NEW}" rk,  # admin grant\n`);

    const before = [t.read(FILES), t.read(STATE)];
    expect(cli("grant", "vm1", "/etc/shadow")).toEqual({
      status: 1,
      stdout: "",
      stderr: "virt-aa-hook: error: cannot grant /etc/shadow to vm1: admin grant: restricted location /etc is never granted to guests\n",
    });
    expect(cli("grant", "vm1", "/dev/kvm").stderr).toMatch(/^virt-aa-hook: error: cannot grant \/dev\/kvm to vm1: admin grant: \/dev\/kvm is not a device node a runtime grant may use \(allowed: .*\n$/);
    expect([t.read(FILES), t.read(STATE)]).toEqual(before);
  });

  it("resolves `..` after the symlink before it, as QEMU's open does (review finding #8)", () => {
    const clean = prepare();
    // /srv/link -> /var/lib/libvirt/images/sub: /srv/link/../new.img is images/new.img, not /srv/new.img.
    fs.mkdirSync(t.at(`${IMG}/sub`));
    fs.mkdirSync(t.at("/srv"), { recursive: true });
    fs.symlinkSync(`${IMG}/sub`, t.at("/srv/link"));
    fs.writeFileSync(t.at("/srv/new.img"), "");
    expect(cli("grant", "vm1", "/srv/link/../new.img")).toEqual(ok(`granted ${NEW} read-write to vm1: ${NAME}: loaded new rules`));
    expect(t.read(FILES)).toBe(`${clean}  "${NEW}" rwk,  # admin grant\n`);
    expect(grants()).toEqual([{ path: NEW, write: true, by: "admin", source: "admin grant" }]);
    // Revoked by either spelling.
    expect(cli("revoke", "vm1", "/srv/link/../new.img").status).toBe(0);
    expect(t.read(FILES)).toBe(clean);
  });

  it("usage errors exit 2, an unknown or stopped guest exits 1, each with one line", () => {
    expect(cli("grant", "vm1", "images/new.img")).toEqual({ status: 2, stdout: "", stderr: "virt-aa-hook: error: cannot grant images/new.img to vm1: not an absolute path\n" });
    expect(cli("grant", "vm1").status).toBe(2);
    // no record: not started (or not ours); virsh is not even asked
    const none = cli("grant", "vm1", NEW);
    expect(none.status).toBe(1);
    expect(none.stderr).toBe(
      `virt-aa-hook: error: cannot grant ${NEW} to vm1: no running guest of that name has a profile of ours (no record in /var/lib/virt-aa-hook): start it first, or check the name (a guest left to libvirt's own AppArmor driver is not managed here)\n`,
    );
    expect(calls()).toBe("");
    // a record from a run that never released, and no QEMU: not running
    prepare();
    const rec = JSON.parse(t.read(STATE)) as { prepared: string };
    rec.prepared = new Date(Date.now() - 3600_000).toISOString();
    fs.writeFileSync(t.at(STATE), JSON.stringify(rec));
    const stale = cli("grant", "vm1", NEW);
    expect(stale.status).toBe(1);
    expect(stale.stderr).toBe(
      `virt-aa-hook: error: cannot grant ${NEW} to vm1: not running: /run/libvirt/qemu/vm1.pid names no live QEMU and our record is older than a start (a record left by a host that went down; the next start replaces it)\n`,
    );
    expect(grants()).toBeUndefined();
  });

  it("virsh failing, or a live XML of another domain, is refused with one line", () => {
    prepare();
    fs.rmSync(t.at("/live/vm1.xml"));
    expect(cli("grant", "vm1", NEW)).toEqual({
      status: 1,
      stdout: "",
      stderr: `virt-aa-hook: error: cannot grant ${NEW} to vm1: cannot read its live XML: virsh dumpxml: error: failed to get domain 'vm1'\n`,
    });
    const otherUuid = "11111111-2222-4333-8444-555555555555";
    live(domainXml({ uuid: otherUuid }));
    expect(cli("grant", "vm1", NEW).stderr).toBe(
      `virt-aa-hook: error: cannot grant ${NEW} to vm1: its live XML has UUID ${otherUuid}, but our record of vm1 is of ${UUID}: a different domain of that name runs; restart it\n`,
    );
    expect(grants()).toBeUndefined();
  });
});

describe("revoke", () => {
  it("removes an admin grant and reloads; a path never granted is refused", () => {
    const clean = prepare();
    expect(cli("revoke", "vm1", NEW)).toEqual({
      status: 1,
      stdout: "",
      stderr: `virt-aa-hook: error: cannot revoke ${NEW} from vm1: no admin grant of it (the guest has none)\n`,
    });
    expect(cli("grant", "vm1", NEW).status).toBe(0);
    expect(cli("revoke", "vm1", `${IMG}/other.img`).stderr).toBe(
      `virt-aa-hook: error: cannot revoke ${IMG}/other.img from vm1: no admin grant of it (admin grants: ${NEW})\n`,
    );
    // named through a symlink: the same file
    fs.symlinkSync(NEW, t.at(`${IMG}/alias.img`));
    expect(cli("revoke", "vm1", `${IMG}/alias.img`)).toEqual(ok(`revoked ${IMG}/alias.img from vm1: ${NAME}: loaded new rules`));
    expect(t.read(FILES)).toBe(clean);
    expect(grants()).toBeUndefined();
  });
});

describe("sync", () => {
  it("after attach the XML keeps the disk and the grant goes; after detach the profile shrinks", () => {
    const clean = prepare();
    expect(cli("grant", "vm1", NEW).status).toBe(0);
    // virsh attach-disk --live: the live XML names the disk now
    live(domainXml({ disks: [`${IMG}/vm1.img`, NEW] }));
    expect(cli("sync", "vm1")).toEqual(ok(`synced vm1 from its live XML, dropped 1 admin grant (${NEW}): ${NAME}: loaded new rules`));
    const vda = `  "${IMG}/vm1.img" rwk,  # disk vda\n`;
    expect(t.read(FILES)).toBe(clean.replace(vda, `${vda}  "${NEW}" rwk,  # disk vdb\n`));
    expect(grants()).toBeUndefined();
    // virsh detach-disk --live
    live(domainXml());
    expect(cli("sync", "vm1")).toEqual(ok(`synced vm1 from its live XML: ${NAME}: loaded new rules`));
    expect(t.read(FILES)).toBe(clean);
    // nothing changed: nothing written; loaded again only because the stand-in securityfs cannot
    // say the profile is loaded (sync makes sure the kernel has it, as reconnect does)
    const mtime = fs.statSync(t.at(FILES)).mtimeMs;
    expect(cli("sync", "vm1")).toEqual(ok(`synced vm1 from its live XML: ${NAME}: loaded unchanged rules`));
    expect(fs.statSync(t.at(FILES)).mtimeMs).toBe(mtime);
  });

  it("keeps admin grants the live XML does not name (or names read-only), --revoke-all drops them", () => {
    const clean = prepare();
    expect(cli("grant", "vm1", `${IMG}/other.img`).status).toBe(0);
    // a read-only disk in the XML does not cover a read-write grant (a commit base made writable)
    live(domainXml({ disks: [`${IMG}/vm1.img`] }).replace("</devices>", `<disk type='file' device='cdrom'><source file='${IMG}/other.img'/><target dev='sda' bus='sata'/><readonly/></disk>\n  </devices>`));
    expect(cli("sync", "vm1")).toEqual(
      ok(`synced vm1 from its live XML, kept 1 admin grant the live XML does not name (${IMG}/other.img; revoke when done): ${NAME}: loaded new rules`),
    );
    expect(t.read(FILES)).toContain(`  "${IMG}/other.img" rwk,  # disk sda, admin grant\n`);
    live(domainXml());
    expect(cli("sync", "vm1", "--revoke-all")).toEqual(ok(`synced vm1 from its live XML, dropped 1 admin grant (${IMG}/other.img): ${NAME}: loaded new rules`));
    expect(t.read(FILES)).toBe(clean);
    expect(grants()).toBeUndefined();
  });

  it("helper mode: libvirt's -F grants the live XML covers go (a snapshot's overlay, a copy after its pivot); others stay", () => {
    prepare();
    const helper = (...args: string[]) => spawnSync(TEST_NODE, [BUNDLE, "virt-aa-helper", "--root", t.root, "--", ...args], { input: domainXml(), encoding: "utf8", env: {}, timeout: 60_000 });
    for (const p of [NEW, `${IMG}/other.img`]) expect(helper("-r", "-u", NAME, "-F", p).status).toBe(0);
    expect(grants()?.map((g) => [g.by, g.path])).toEqual([["libvirt", NEW], ["libvirt", `${IMG}/other.img`]]);
    // libvirt sent no regeneration; the live XML names the new image as a disk now
    live(domainXml({ disks: [`${IMG}/vm1.img`, NEW] }));
    expect(cli("sync", "vm1")).toEqual(ok(`synced vm1 from its live XML, dropped 1 libvirt grant the live XML covers (${NEW}): ${NAME}: loaded new rules`));
    expect(grants()?.map((g) => [g.by, g.path])).toEqual([["libvirt", `${IMG}/other.img`]]);
    expect(t.read(FILES)).toContain(`  "${NEW}" rwk,  # disk vdb\n`);
    expect(t.read(FILES)).toContain(`  "${IMG}/other.img" rwk,  # libvirt virt-aa-helper -F\n`);
  });

  it("a live XML the policy refuses changes nothing", () => {
    prepare();
    const before = [t.read(FILES), t.read(STATE)];
    live(domainXml({ disks: ["/etc/shadow"] }));
    expect(cli("sync", "vm1")).toEqual({
      status: 1,
      stdout: "",
      stderr: "virt-aa-hook: error: cannot sync vm1: /etc/shadow: disk vda: restricted location /etc is never granted to guests\n",
    });
    expect([t.read(FILES), t.read(STATE)]).toEqual(before);
  });
});

describe("help", () => {
  it.each(["grant", "revoke", "sync"])("%s --help shows the workflow", (cmd) => {
    const r = cli(cmd, "--help");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("virsh attach-disk web1 /var/lib/libvirt/images/data.img vdb --live");
    expect(r.stdout).toContain("virt-aa-hook revoke web1 /var/lib/libvirt/images/base.qcow2");
  });
});
