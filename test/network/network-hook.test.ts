/**
 * libvirt's network hook as libvirtd runs it: the in-repo `hooks/network` placed at
 * <root>/etc/libvirt/hooks/network (so it serves that root) next to the built bundle, four
 * arguments, the hook data on stdin, libvirt's minimal environment. Real parser, temp roots.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readState } from "../../src/store/state.js";
import { defaultTestConfig, makeTestRoot, type TestRoot } from "../lifecycle/fixture.js";
import { BUNDLE, callBundle, domainXml, installHook, tree, UUID } from "../lifecycle/harness.js";
import { TEST_NODE } from "../helpers/node.js";

const REPO = path.resolve(new URL("../..", import.meta.url).pathname);
const NAME = `libvirt-${UUID}`;
const FILES = `/etc/apparmor.d/libvirt/${NAME}.files`;
const STATE = `/var/lib/virt-aa-hook/${UUID}.json`;
const PORT = "8f2a4c1e-5b6d-4e7f-9a0b-1c2d3e4f5a6b";
const PORT2 = "9a2a4c1e-5b6d-4e7f-9a0b-1c2d3e4f5a6b";
const LOG = "/var/log/libvirt/virt-aa-hook.log";

let t: TestRoot;
beforeEach(() => {
  t = makeTestRoot("vaah-net-");
  fs.mkdirSync(t.at("/var/lib/libvirt/images"), { recursive: true });
  fs.writeFileSync(t.at("/var/lib/libvirt/images/vm1.img"), Buffer.alloc(4096));
  installHook(t); // the qemu hook and the bundle links under <root>/etc/libvirt
  fs.copyFileSync(path.join(REPO, "hooks/network"), t.at("/etc/libvirt/hooks/network"));
  fs.chmodSync(t.at("/etc/libvirt/hooks/network"), 0o755);
  expect(fs.existsSync(BUNDLE)).toBe(true);
});
afterEach(() => t.remove());

function hookData(opts: { port?: string; owner?: string; plug?: string } = {}): string {
  const plug = opts.plug === undefined ? "<plug type='network' bridge='virbr0'/>" : opts.plug === "" ? "" : `<plug type='${opts.plug}' bridge='br0' dev='ens3'/>`;
  return `<hookData>
  <network><name>default</name><uuid>11111111-2222-4333-8444-555555555555</uuid><forward mode='nat'/><bridge name='virbr0'/></network>
  <networkport>
    <uuid>${opts.port ?? PORT}</uuid>
    <owner><uuid>${opts.owner ?? UUID}</uuid><name>vm1</name></owner>
    <mac address='52:54:00:aa:bb:cc'/>
    ${plug}
  </networkport>
</hookData>
`;
}
function net(op: string, input: string, sub = "begin"): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(t.at("/etc/libvirt/hooks/network"), ["default", op, sub, "-"], { input, env: { LC_ALL: "C" }, cwd: "/", timeout: 60_000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}
const ok = { status: 0, stdout: "", stderr: "" };
const VIRTIO_NIC = "<interface type='network'><source network='default'/><model type='virtio'/></interface>";
const withNic = () => domainXml().replace("  </devices>", `    ${VIRTIO_NIC}\n  </devices>`);
function prepare(xml = domainXml()): string {
  expect(callBundle(t, ["vm1", "prepare", "begin", "-"], xml).status).toBe(0);
  return t.read(FILES);
}
const grants = () => readState(t.at(STATE))?.grants;
const lastLog = () => t.read(LOG).trim().split("\n").pop();

describe("network hook: port-created / port-deleted", () => {
  it("grants /dev/vhost-net for the port of a guest whose profile lacks it, and drops it with the port", () => {
    const clean = prepare();
    expect(clean).not.toContain("vhost-net");
    expect(net("port-created", hookData())).toEqual(ok);
    expect(t.read(FILES)).toBe(`${clean}  "/dev/vhost-net" rwk,  # network port ${PORT}\n`);
    expect(grants()).toEqual([{ path: "/dev/vhost-net", write: true, by: "network", source: `network port ${PORT}`, port: PORT }]);
    expect(lastLog()).toMatch(new RegExp(`guest="vm1" op="port-created" exit=0 ms=[0-9.]+ result="${NAME}: granted /dev/vhost-net: loaded new rules"$`));

    // a second port: the profile grants it already; nothing changes
    expect(net("port-created", hookData({ port: PORT2 }))).toEqual(ok);
    expect(lastLog()).toContain("nothing to do: the profile grants /dev/vhost-net already");
    expect(grants()).toHaveLength(1);

    // the qemu hook's start rebuilds from the XML and the grants: the same text
    expect(callBundle(t, ["vm1", "start", "begin", "-"], domainXml()).status).toBe(0);
    expect(t.read(FILES)).toBe(`${clean}  "/dev/vhost-net" rwk,  # network port ${PORT}\n`);

    // the other port goes: nothing of ours; then ours goes: back to the XML's rules
    expect(net("port-deleted", hookData({ port: PORT2 }))).toEqual(ok);
    expect(t.read(FILES)).toContain("vhost-net");
    expect(net("port-deleted", hookData())).toEqual(ok);
    expect(t.read(FILES)).toBe(clean);
    expect(grants()).toBeUndefined();
  });

  it("reloads in the guest's recorded mode, not the config's (review finding #4)", () => {
    // vm1 prepared in enforce; the config now says complain: the port change keeps enforce.
    prepare();
    expect(readState(t.at(STATE))?.loadedAs).toBe("enforce");
    const conf = t.read("/etc/libvirt/virt-aa-hook.conf");
    t.writeConfig({ ...defaultTestConfig(), mode: "complain" });
    expect(net("port-created", hookData())).toEqual(ok);
    expect(t.read(FILES)).toContain("/dev/vhost-net");
    expect(readState(t.at(STATE))?.loadedAs).toBe("enforce");
    // Control: a guest prepared in complain stays complain under an enforce config.
    fs.writeFileSync(t.at("/etc/libvirt/virt-aa-hook.conf"), conf);
    expect(net("port-deleted", hookData())).toEqual(ok);
    t.writeConfig({ ...defaultTestConfig(), mode: "complain" });
    prepare();
    expect(readState(t.at(STATE))?.loadedAs).toBe("complain");
    fs.writeFileSync(t.at("/etc/libvirt/virt-aa-hook.conf"), conf);
    expect(net("port-created", hookData())).toEqual(ok);
    expect(readState(t.at(STATE))?.loadedAs).toBe("complain");
  });

  it("adds nothing when the XML's virtio NIC already has vhost-net", () => {
    const clean = prepare(withNic());
    expect(clean).toContain(`  "/dev/vhost-net" rw,  # interface 0 vhost-net\n`);
    const state = t.read(STATE);
    expect(net("port-created", hookData())).toEqual(ok);
    expect([t.read(FILES), t.read(STATE)]).toEqual([clean, state]);
  });

  it("does nothing for a guest we do not manage, other plugs, other operations, or unreadable data", () => {
    const before = tree(t);
    expect(net("port-created", hookData({ owner: "0f9e8d7c-6b5a-4938-a271-605f4e3d2c1b" }))).toEqual(ok);
    expect(net("port-deleted", hookData({ owner: "0f9e8d7c-6b5a-4938-a271-605f4e3d2c1b" }))).toEqual(ok);
    // nothing but the log line
    expect(tree(t).filter((f) => !before.includes(f))).toEqual(["/var/log/", "/var/log/libvirt/", LOG].filter((f) => !before.includes(f)));
    const clean = prepare();
    const state = t.read(STATE);
    for (const [op, input, sub] of [
      ["port-created", hookData({ plug: "hostdev-pci" }), "begin"],
      ["port-created", hookData({ plug: "" }), "begin"],
      ["port-created", "<hookData><network/></hookData>", "begin"],
      ["port-created", "not xml <", "begin"],
      ["port-created", hookData({ owner: "not-a-uuid" }), "begin"],
      ["start", hookData(), "begin"],
      ["started", hookData(), "begin"],
      ["stopped", hookData(), "end"],
      ["updated", hookData(), "begin"],
    ] as const) {
      expect(net(op, input, sub)).toEqual(ok);
    }
    expect([t.read(FILES), t.read(STATE)]).toEqual([clean, state]);
  });

  it("a port-created whose grant cannot be loaded fails the port with one line and changes nothing", () => {
    const clean = prepare();
    const state = t.read(STATE);
    // The per-guest profile no longer compiles: the load fails.
    fs.appendFileSync(t.at(`/etc/apparmor.d/libvirt/${NAME}`), "\nthis is not apparmor\n");
    const r = net("port-created", hookData());
    expect(r.status).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(new RegExp(`^virt-aa-hook: error: vm1: /etc/apparmor\\.d/libvirt/${NAME}: [^\\n]+\\n$`));
    expect([t.read(FILES), t.read(STATE)]).toEqual([clean, state]);
    // port-deleted never fails
    expect(net("port-deleted", hookData()).status).toBe(0);
  });

  it("the bundle command refuses a wrong command line with exit 2", () => {
    const r = spawnSync(TEST_NODE, [BUNDLE, "network-hook", "--root", t.root, "--", "default", "port-created"], { encoding: "utf8" });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("virt-aa-hook: error: -: -: expected 4 arguments after the options, got 2");
  });
});
