/**
 * In-process part of the benchmark: how rule derivation and rendering grow with the number of
 * disks. bench/run.mjs bundles this file with esbuild (into .cache/bench/) and runs it with
 * `node derive.cjs ROOT DISKS RUNS`; it prints one JSON line of medians in milliseconds.
 *
 * The phases are the ones buildProfile (src/pipeline.ts) chains: parse the XML, derive the rules
 * (with the host reads of the disks, through --root ROOT), apply the policy (canonicalise, check
 * restricted locations, merge), render the `.files` text.
 */
import fs from "node:fs";
import path from "node:path";
import { parseDomain } from "../src/domain/index.js";
import { HostFs } from "../src/hostfs.js";
import { Layout } from "../src/layout.js";
import { imageChecks } from "../src/pipeline.js";
import { applyPolicy } from "../src/policy/index.js";
import { renderFiles } from "../src/render/index.js";
import { deriveRules } from "../src/rules/index.js";
import { runtimeOwnership } from "../src/rules/ownership.js";
import { defaultQemuConf } from "../src/host/qemu-conf.js";

const IMAGES = "/var/lib/libvirt/images/bench";

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** A guest with `n` raw disks (files that exist under the root), like test/lifecycle's domainXml. */
export function manyDisksXml(n: number): string {
  const disks: string[] = [];
  for (let i = 0; i < n; i++) {
    disks.push(`    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='${IMAGES}/disk${i}.img'/>
      <target dev='vd${i}' bus='virtio'/>
    </disk>`);
  }
  return `<domain type='kvm'>
  <name>scale${n}</name>
  <uuid>0b3a2c1d-4e5f-4a6b-8c7d-${String(n).padStart(12, "0")}</uuid>
  <memory unit='KiB'>1048576</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
${disks.join("\n")}
  </devices>
</domain>
`;
}

function main(): void {
  const [root, nArg, runsArg] = process.argv.slice(2);
  if (!root || !nArg) throw new Error("usage: derive.cjs ROOT DISKS [RUNS]");
  const n = Number(nArg);
  const runs = Number(runsArg ?? "9");
  const layout = new Layout(root);
  fs.mkdirSync(layout.host(IMAGES), { recursive: true });
  for (let i = 0; i < n; i++) {
    const f = layout.host(`${IMAGES}/disk${i}.img`);
    if (!fs.existsSync(f)) fs.writeFileSync(f, "");
  }
  const xml = manyDisksXml(n);
  const t = { parse: [] as number[], derive: [] as number[], policy: [] as number[], render: [] as number[], total: [] as number[] };
  let rules = 0;
  let bytes = 0;
  // One untimed warm-up run: the first call pays for compiling the code, not for the disks.
  for (let r = -1; r < runs; r++) {
    const t0 = performance.now();
    const domain = parseDomain(xml);
    const t1 = performance.now();
    const hostFs = new HostFs(layout);
    const raw = deriveRules({ domain, fs: hostFs, layout, qemu: defaultQemuConf(layout), maxBackingDepth: 64, images: imageChecks(hostFs, layout, domain.uuid) });
    const t2 = performance.now();
    const final = applyPolicy(hostFs, raw, runtimeOwnership(domain, layout, defaultQemuConf(layout)));
    const t3 = performance.now();
    const text = renderFiles(domain, final);
    const t4 = performance.now();
    if (r < 0) continue;
    t.parse.push(t1 - t0);
    t.derive.push(t2 - t1);
    t.policy.push(t3 - t2);
    t.render.push(t4 - t3);
    t.total.push(t4 - t0);
    rules = final.length;
    bytes = text.length;
  }
  const out = {
    disks: n,
    runs,
    rules,
    bytes,
    parse: median(t.parse),
    derive: median(t.derive),
    policy: median(t.policy),
    render: median(t.render),
    total: median(t.total),
    root: path.resolve(root),
  };
  process.stdout.write(JSON.stringify(out) + "\n");
}

main();
