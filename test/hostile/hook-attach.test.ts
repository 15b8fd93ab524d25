/**
 * require_attach, the started check's exact label and the hook's argument count, through the real
 * hook as libvirtd runs it (hooks/qemu in a temporary root). Needs `npm run build`.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { defaultTestConfig, makeTestRoot, type TestRoot } from "../lifecycle/fixture.js";
import { BUNDLE, callHook, installHook } from "../lifecycle/harness.js";
import { guestXml, op, UUID_A } from "../lifecycle/guests.js";
import { TEST_NODE } from "../helpers/node.js";

const DISK = "/var/lib/libvirt/images/a.img";
const WRAPPER = "/usr/lib/virt-aa-hook/bin/qemu-system-x86_64";
const PROFILE = `libvirt-${UUID_A}`;
const OUR_LABEL = `<seclabel type='static' model='apparmor' relabel='no'><label>${PROFILE}</label></seclabel>`;

let t: TestRoot;
beforeEach(() => {
  t = makeTestRoot("vaah-attach-");
  installHook(t);
  fs.mkdirSync(t.at("/var/lib/libvirt/images"), { recursive: true });
  fs.writeFileSync(t.at(DISK), Buffer.alloc(4096));
});
afterEach(() => t.remove());

const xml = (over: { name?: string; emulator?: string; extra?: string } = {}) =>
  guestXml({ name: over.name ?? "vm1", uuid: UUID_A, id: 4, disks: [DISK], ...(over.emulator ? { emulator: over.emulator } : {}), ...(over.extra ? { extra: over.extra } : {}) });

function result(r: { status: number | null; stdout: string; stderr: string }) {
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
const OK = { status: 0, stdout: "", stderr: "" };
const nothingWritten = () => {
  expect(t.exists(`/etc/apparmor.d/libvirt/${PROFILE}`)).toBe(false);
  expect(t.exists(`/var/lib/virt-aa-hook/${UUID_A}.json`)).toBe(false);
};

describe("require_attach = yes with attach = wrapper", () => {
  beforeEach(() => t.writeConfig({ ...defaultTestConfig(), attach: "wrapper", require_attach: "yes" }));

  it("refuses at prepare a domain whose <emulator> is the real QEMU, naming the fixing command", () => {
    expect(result(callHook(t, op("vm1", "prepare"), xml()))).toEqual({
      status: 1,
      stdout: "",
      stderr:
        'virt-aa-hook: error: vm1: <emulator>: <emulator> /usr/bin/qemu-system-x86_64 is not the virt-aa-hook wrapper (/usr/lib/virt-aa-hook/bin/<emulator name>) (attach = "wrapper", require_attach = "yes"); run: virt-aa-hook adopt vm1\n',
    });
    nothingWritten();
  });

  it("refuses at start too (the XML libvirt starts with may differ from the prepared one)", () => {
    expect(result(callHook(t, op("vm1", "prepare"), xml({ emulator: WRAPPER })))).toEqual(OK);
    const r = callHook(t, op("vm1", "start"), xml());
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("virt-aa-hook: error: vm1: <emulator>: <emulator> /usr/bin/qemu-system-x86_64 is not the virt-aa-hook wrapper");
  });

  it("quotes a hostile name in the fixing command", () => {
    const r = callHook(t, op("x; rm -rf ~", "prepare"), xml({ name: "x; rm -rf ~" }));
    expect(r.stderr).toContain(`; run: virt-aa-hook adopt 'x; rm -rf ~'\n`);
  });

  it("negative controls: the wrapper as <emulator> prepares; require_attach = no lets the real QEMU prepare", () => {
    expect(result(callHook(t, op("vm1", "prepare"), xml({ emulator: WRAPPER })))).toEqual(OK);
    t.writeConfig({ ...defaultTestConfig(), attach: "wrapper", require_attach: "no" });
    expect(result(callHook(t, op("vm1", "prepare"), xml()))).toEqual(OK);
  });
});

describe("require_attach = yes with attach = seclabel", () => {
  beforeEach(() => t.writeConfig({ ...defaultTestConfig(), attach: "seclabel", require_attach: "yes" }));

  it("refuses <seclabel type='none'/>", () => {
    expect(result(callHook(t, op("vm1", "prepare"), xml({ extra: "<seclabel type='none'/>" })))).toEqual({
      status: 1,
      stdout: "",
      stderr: "virt-aa-hook: error: vm1: <seclabel>: type='none' turns AppArmor off for this guest and require_attach is yes; run: virt-aa-hook adopt vm1\n",
    });
    nothingWritten();
  });

  it("refuses a domain without our static label", () => {
    expect(result(callHook(t, op("vm1", "prepare"), xml()))).toEqual({
      status: 1,
      stdout: "",
      stderr: `virt-aa-hook: error: vm1: <seclabel>: no <seclabel type='static' model='apparmor' relabel='no'><label>${PROFILE}</label> (attach = "seclabel", require_attach = "yes"); run: virt-aa-hook adopt vm1\n`,
    });
  });

  it("negative control: our static label prepares and starts", () => {
    expect(result(callHook(t, op("vm1", "prepare"), xml({ extra: OUR_LABEL })))).toEqual(OK);
    expect(result(callHook(t, op("vm1", "start"), xml({ extra: OUR_LABEL })))).toEqual(OK);
  });
});

describe("started accepts only the profile in the configured mode", () => {
  function qemuLabel(label: string): void {
    fs.mkdirSync(t.at("/run/libvirt/qemu"), { recursive: true });
    fs.writeFileSync(t.at("/run/libvirt/qemu/vm1.pid"), "4242\n");
    fs.mkdirSync(t.at("/proc/4242/attr/apparmor"), { recursive: true });
    fs.writeFileSync(t.at("/proc/4242/attr/apparmor/current"), label);
  }
  const refused = (label: string, mode: string) => ({
    status: 1,
    stdout: "",
    stderr: `virt-aa-hook: error: vm1: /proc/4242/attr/apparmor/current: QEMU (pid 4242) runs as ${JSON.stringify(label)}, not in its profile ${PROFILE} (${mode})\n`,
  });

  it.each(["complain", "unconfined", "kill"])("mode = enforce: refuses %s", (flag) => {
    t.writeConfig({ ...defaultTestConfig(), started_check: "enforce" });
    expect(result(callHook(t, op("vm1", "prepare"), xml()))).toEqual(OK);
    qemuLabel(`${PROFILE} (${flag})\n`);
    expect(result(callHook(t, op("vm1", "started"), xml()))).toEqual(refused(`${PROFILE} (${flag})`, "enforce"));
  });

  it("mode = enforce: accepts (enforce) (negative control)", () => {
    t.writeConfig({ ...defaultTestConfig(), started_check: "enforce" });
    expect(result(callHook(t, op("vm1", "prepare"), xml()))).toEqual(OK);
    qemuLabel(`${PROFILE} (enforce)\n`);
    expect(result(callHook(t, op("vm1", "started"), xml()))).toEqual(OK);
  });

  it("mode = complain: accepts (complain), refuses (enforce) and unconfined", () => {
    t.writeConfig({ ...defaultTestConfig(), started_check: "enforce", mode: "complain" });
    expect(result(callHook(t, op("vm1", "prepare"), xml()))).toEqual(OK);
    qemuLabel(`${PROFILE} (complain)\n`);
    expect(result(callHook(t, op("vm1", "started"), xml()))).toEqual(OK);
    qemuLabel(`${PROFILE} (enforce)\n`);
    expect(result(callHook(t, op("vm1", "started"), xml()))).toEqual(refused(`${PROFILE} (enforce)`, "complain"));
    qemuLabel("unconfined\n");
    expect(result(callHook(t, op("vm1", "started"), xml()))).toEqual(refused("unconfined", "complain"));
  });
});

describe("the hook's command line", () => {
  const run = (args: string[]) => spawnSync(TEST_NODE, [BUNDLE, "hook", "--root", t.root, "--", ...args], { input: xml(), env: { LC_ALL: "C" } });
  it.each([
    [["vm1", "prepare"], 2],
    [["vm1", "prepare", "begin"], 3],
    [["vm1", "prepare", "begin", "-", "extra"], 5],
  ])("refuses %j (exit 2, nothing written)", (args, n) => {
    const r = run(args as string[]);
    expect({ status: r.status, stderr: r.stderr.toString().split("\n")[0] }).toEqual({
      status: 2,
      stderr: `virt-aa-hook: error: -: -: expected 4 arguments after the options, got ${n}`,
    });
    nothingWritten();
  });

  it("negative control: four arguments prepare", () => {
    expect(run(["vm1", "prepare", "begin", "-"]).status).toBe(0);
  });
});
