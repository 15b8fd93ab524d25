#!/usr/bin/env node
// node test/helper/bench-regen.mjs [ROUNDS]: the cost of libvirt's first virt-aa-helper -r after the hook's
// prepare (docs/helper.md "Cost"). Real launchers, loader and bundle (npm run build first) in a
// throwaway root with the real apparmor_parser loading into a stand-in securityfs; per round:
// hook prepare, helper -r, hook start, hook stopped (the floor), same XML; then up to 10 rounds of
// a -F that adds a grant and the -r that drops it. CPU=1 reports the
// CPU time (user + sys, /usr/bin/time) instead of wall time; NO_LOADER=1 runs the helper without
// the loader. Not a test: prints numbers.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const N = Number(process.argv[2] ?? 20);
const root = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-bench-"));
const at = (p) => path.join(root, p);
for (const sub of ["tunables", "abstractions", "abi", "local"]) fs.cpSync(`/etc/apparmor.d/${sub}`, at(`/etc/apparmor.d/${sub}`), { recursive: true });
fs.mkdirSync(at("/etc/apparmor.d/libvirt"), { recursive: true });
fs.copyFileSync("/etc/apparmor.d/libvirt/TEMPLATE.qemu", at("/etc/apparmor.d/libvirt/TEMPLATE.qemu"));
fs.cpSync("/usr/share/apparmor-features/features", at("/usr/share/apparmor-features/features"), { recursive: true });
fs.mkdirSync(at("/run/fake-securityfs"), { recursive: true });
fs.writeFileSync(at("/run/fake-securityfs/.replace"), "");
fs.writeFileSync(at("/run/fake-securityfs/.remove"), "");
fs.mkdirSync(at("/etc/libvirt/hooks"), { recursive: true });
fs.writeFileSync(at("/etc/libvirt/virt-aa-hook.conf"), 'subdomainfs = "/run/fake-securityfs"\nfeatures_file = "/usr/share/apparmor-features/features"\n');
fs.copyFileSync(`${REPO}/hooks/qemu`, at("/etc/libvirt/hooks/qemu"));
fs.mkdirSync(at("/etc/libvirt/dist"));
fs.symlinkSync(`${REPO}/dist/virt-aa-hook.cjs`, at("/etc/libvirt/dist/virt-aa-hook.cjs"));
fs.symlinkSync(`${REPO}/dist/loader.cjs`, at("/etc/libvirt/dist/loader.cjs"));
fs.mkdirSync(at("/usr/lib/virt-aa-hook"), { recursive: true });
fs.mkdirSync(at("/usr/lib/libvirt"), { recursive: true });
fs.mkdirSync(at("/usr/lib/dist"), { recursive: true });
fs.copyFileSync(`${REPO}/hooks/virt-aa-helper`, at("/usr/lib/virt-aa-hook/virt-aa-helper"));
fs.chmodSync(at("/usr/lib/virt-aa-hook/virt-aa-helper"), 0o755);
fs.symlinkSync("../virt-aa-hook/virt-aa-helper", at("/usr/lib/libvirt/virt-aa-helper"));
fs.symlinkSync(`${REPO}/dist/virt-aa-hook.cjs`, at("/usr/lib/dist/virt-aa-hook.cjs"));
if (process.env.NO_LOADER !== "1") fs.symlinkSync(`${REPO}/dist/loader.cjs`, at("/usr/lib/dist/loader.cjs"));
fs.mkdirSync(at("/var/lib/libvirt/images"), { recursive: true });
for (const f of ["vm1.qcow2", "base.qcow2"]) fs.writeFileSync(at(`/var/lib/libvirt/images/${f}`), Buffer.alloc(4096));
const UUID = "6a1e3c2b-9d84-4f0a-b1c2-d3e4f5a6b7c8";
const xml = `<domain type='kvm' id='7'><name>vm1</name><uuid>${UUID}</uuid><memory unit='KiB'>1048576</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os><devices><emulator>/usr/bin/qemu-system-x86_64</emulator>
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/var/lib/libvirt/images/vm1.qcow2'/><backingStore type='file'><format type='qcow2'/><source file='/var/lib/libvirt/images/base.qcow2'/><backingStore/></backingStore><target dev='vda' bus='virtio'/></disk>
<graphics type='vnc' port='5900' autoport='yes' passwd='x'/></devices></domain>`;
const CPU = process.env.CPU === "1";
const run = (cmd, args) => {
  const t0 = process.hrtime.bigint();
  const r = CPU ? spawnSync("/usr/bin/time", ["-f", "CPU %U %S", cmd, ...args], { input: xml, env: {}, cwd: "/" }) : spawnSync(cmd, args, { input: xml, env: {}, cwd: "/" });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.status} ${r.stderr}`);
  if (CPU) { const m = /CPU ([0-9.]+) ([0-9.]+)/.exec(r.stderr.toString()); return (Number(m[1]) + Number(m[2])) * 1000; }
  return ms;
};
const hook = at("/etc/libvirt/hooks/qemu");
const helper = at("/usr/lib/libvirt/virt-aa-helper");
run(hook, ["vm1", "prepare", "begin", "-"]);
run(helper, ["-r", "-u", `libvirt-${UUID}`]);
const stats = (xs) => { const s = [...xs].sort((a, b) => a - b); return `median ${s[Math.floor(s.length / 2)].toFixed(1)} ms, min ${s[0].toFixed(1)}, max ${s[s.length - 1].toFixed(1)} (n=${s.length})`; };
const prep = [], regen = [], start = [], floor = [];
for (let i = 0; i < N; i++) {
  prep.push(run(hook, ["vm1", "prepare", "begin", "-"]));
  regen.push(run(helper, ["-r", "-u", `libvirt-${UUID}`]));
  start.push(run(hook, ["vm1", "start", "begin", "-"]));
  floor.push(run(hook, ["vm1", "stopped", "end", "-"]));
}
// A -F that changes the profile (recompile + load), then the regeneration that drops it again.
const grant = [], drop = [];
for (let i = 0; i < Math.min(N, 10); i++) {
  grant.push(run(helper, ["-r", "-u", `libvirt-${UUID}`, "-F", "/var/lib/libvirt/images/hotplug.qcow2"]));
  drop.push(run(helper, ["-r", "-u", `libvirt-${UUID}`]));
}
console.log(`hook prepare (unchanged, parser cache hit): ${stats(prep)}`);
console.log(`helper -r (unchanged XML):                 ${stats(regen)}`);
console.log(`hook start (unchanged):                    ${stats(start)}`);
console.log(`helper -r -F (new grant: compile + load):  ${stats(grant)}`);
console.log(`helper -r (drops it: compile + load):      ${stats(drop)}`);
console.log(`hook stopped (does nothing: the floor):   ${stats(floor)}`);
fs.rmSync(root, { recursive: true, force: true });
