/**
 * Property: random `<vah:allow>` entries (the domain's metadata, docs/metadata.md) never yield a
 * grant outside what a pre-authorised path may have, judged on the compiled expressions of the
 * real apparmor_parser.
 *
 * Each domain holds one or two entries (random access, random tree) naming paths drawn from the
 * fake host's interesting files (test/policy/fakehost.ts: device nodes, a PCI device's sysfs
 * files, block devices, a swap file, another guest's runtime files, daemons' sockets, restricted
 * places, another guest's NVRAM and QEMU log), directories above them (libvirt's shared NVRAM
 * and log directories among them), libvirt's images directory, ordinary files and directories,
 * and hostile paths. The oracle, written independently of src/policy: an entry may have none of
 * the samples (no device node of any kind, no sysfs file, nothing of another guest or the host),
 * a tree never covers libvirt's images directory, and no rule of an entry lies in /dev, /sys or
 * /proc.
 */
import fs from "node:fs";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Layout } from "../../src/layout.js";
import { buildProfile, type ProfileBuild } from "../../src/pipeline.js";
import { exprMatches, guestRuleExprs } from "../helpers/apparmor.js";
import { makeTestRoot, type TestRoot } from "../lifecycle/fixture.js";
import { canMknod, GUEST_UUID, guestXml, OTHER_UUID, plantHost } from "../policy/fakehost.js";
import { announceSeed, ERROR_LINE, hostilePath, isUnder, outcomeOf, seedRuns, xmlAttr } from "./arbitraries.js";

const PCI3 = "/sys/devices/pci0000:00/0000:00:02.0/0000:03:00.0";
const IMAGES = "/var/lib/libvirt/images";

/** Files no `<vah:allow>` may reach (plantHost's, plus the restricted ones created below). */
const NEVER = [
  "/dev/pts/3", "/dev/tty1", "/dev/ttyS0", "/dev/console", "/dev/vfio/17", "/dev/vfio/vfio", "/dev/input/event3", "/dev/sg2",
  "/dev/sdb", "/dev/sdb1", "/dev/sdc", "/dev/sdc1", "/dev/dm-0", "/dev/dm-1", "/swapfile",
  `${PCI3}/config`, `${PCI3}/resource0`, `${PCI3}/remove`,
  "/var/lib/libvirt/qemu/domain-3-other/monitor.sock", "/run/libvirt/qemu/other.xml", "/run/libvirt/libvirt-sock",
  `/var/lib/libvirt/swtpm/${OTHER_UUID}/tpm2/tpm2-00.permall`, "/dev/hugepages/libvirt/qemu/3-other/qemu_back_mem.pc.ram",
  "/var/lib/dpkg/info/bash.postinst", "/run/systemd/system/x.service", "/etc/shadow", "/root/.ssh/authorized_keys", "/home/alice/.bashrc",
  "/dev/shm/pulse-shm-1",
  // Another guest's UEFI variables and QEMU log (review findings #2, #5).
  "/var/lib/libvirt/qemu/nvram/other_VARS.fd", "/var/log/libvirt/qemu/other.log",
];
/** Created as directories, so trees over them are judged on a real directory. */
const DIRS = ["/srv/share", "/srv/snap", `${IMAGES}/vm1-snapshots`, "/home/alice", "/srv/share/sub"];
const FILES = [`${IMAGES}/vm1.img`, `${IMAGES}/other.img`, "/srv/share/readme", "/srv/snap/overlay.qcow2", "/srv/iso.img"];

const pathArb = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...NEVER, "/dev/mapper/vg-root", "/sys/bus/pci/devices/0000:03:00.0/config") },
  { weight: 2, arbitrary: fc.constantFrom("/dev", "/dev/input", "/dev/shm", "/run/libvirt", "/var/lib/libvirt", "/var/lib/libvirt/qemu", "/var/lib/libvirt/qemu/nvram", "/var/log/libvirt", "/var/log/libvirt/qemu", IMAGES, "/var", "/srv", "/home", "/", "/sys", "/proc/1") },
  { weight: 1, arbitrary: hostilePath },
  { weight: 14, arbitrary: fc.constantFrom(...DIRS, ...FILES, "/srv/not-yet.qcow2", `${IMAGES}/vm1-snapshots/new.qcow2`) },
);
const entryArb = fc.record({ path: pathArb, rw: fc.boolean(), tree: fc.boolean() });
const domainArb = fc.array(entryArb, { minLength: 1, maxLength: 2 });

function domainOf(entries: Array<{ path: string; rw: boolean; tree: boolean }>): string {
  const allows = entries.map((e) => `<vah:allow path='${xmlAttr(e.path)}' access='${e.rw ? "rw" : "r"}'${e.tree ? " tree='yes'" : ""}/>`).join("");
  return guestXml("", `<metadata><vah:guest xmlns:vah='https://virt-aa-hook.org/xmlns/guest/1'>${allows}</vah:guest></metadata>`);
}

let t: TestRoot;
beforeAll(() => {
  t = makeTestRoot("vaah-metadata-prop-");
  plantHost(t.root);
  for (const f of [...NEVER.filter((p) => !t.exists(p) && !p.startsWith("/dev/") && !p.startsWith("/sys/")), ...FILES]) {
    fs.mkdirSync(t.at(f.slice(0, f.lastIndexOf("/"))), { recursive: true });
    fs.writeFileSync(t.at(f), "");
  }
  for (const d of DIRS) fs.mkdirSync(t.at(d), { recursive: true });
  announceSeed("metadata.property");
});
afterAll(() => t.remove());

describe.skipIf(!canMknod)("property: random <vah:allow> entries never yield a grant outside what a pre-authorised path may have", () => {
  for (const run of seedRuns(150, 150)) {
    it(`${run.label}: ${run.numRuns} domains`, async () => {
      const layout = new Layout(t.root);
      const accepted: Array<{ xml: string; built: ProfileBuild }> = [];
      let rejected = 0;
      for (const entries of fc.sample(domainArb, { seed: run.seed, numRuns: run.numRuns })) {
        const xml = domainOf(entries);
        const out = outcomeOf(() => buildProfile(xml, { layout }));
        if (!out.ok) {
          expect(out.error.toLine(), `${run.label}: ${xml}`).toMatch(ERROR_LINE);
          rejected++;
          continue;
        }
        for (const r of out.value.rules.filter((x) => x.source.includes("metadata allow "))) {
          const tree = r.suffix !== "" && r.suffix !== "/";
          const why = `${run.label}: rule ${r.path}${r.suffix} (${r.source}) of ${xml}`;
          expect(["/dev", "/sys", "/proc"].some((d) => isUnder(r.path, d)), why).toBe(false);
          expect(tree && isUnder(IMAGES, r.path), why).toBe(false);
          expect(NEVER.filter((s) => s === r.path || (tree && isUnder(s, r.path))), why).toEqual([]);
          expect(r.perms === "rk" || r.perms === "rwk", why).toBe(true);
        }
        accepted.push({ xml, built: out.value });
      }
      console.log(`metadata.property ${run.label}: ${accepted.length} accepted, ${rejected} rejected`);
      expect(accepted.length).toBeGreaterThan(run.numRuns / 10);
      expect(rejected).toBeGreaterThan(run.numRuns / 4);

      // Compiled by the real parser (at most 30 profiles: one parser run each).
      const baseline = await guestRuleExprs(GUEST_UUID, "");
      const check = async ({ xml, built }: (typeof accepted)[number]) => {
        const exprs = await guestRuleExprs(GUEST_UUID, built.filesText);
        for (const b of baseline) {
          const at = exprs.indexOf(b);
          if (at >= 0) exprs.splice(at, 1);
        }
        for (const sample of [...NEVER, `${IMAGES}/other.img`]) {
          // other.img may be named on its own (like any disk); only a tree must not reach it.
          if (sample === `${IMAGES}/other.img` && built.rules.some((r) => r.path === sample)) continue;
          const hits = exprs.filter((e) => exprMatches(e, sample));
          expect(hits, `${run.label}: ${sample} is reached by ${hits.join(" | ")} for ${xml}`).toEqual([]);
        }
      };
      const some = accepted.slice(0, 30);
      for (let i = 0; i < some.length; i += 2) await Promise.all(some.slice(i, i + 2).map(check));
    }, 300_000);
  }
});
