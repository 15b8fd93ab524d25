/**
 * Property: random element kinds × random paths never yield a grant outside the policy by
 * provenance, judged on the compiled expressions of the real apparmor_parser.
 *
 * Each generated domain holds one to three elements of random kinds (disks, chardevs of every
 * path type, logs, 9p shares, inputs, hostdevs, nvdimms, TPMs, NICs, graphics sockets, firmware),
 * each naming a path drawn from the fake host's interesting files (test/policy/fakehost.ts: host
 * terminals, VFIO groups, a PCI device's sysfs files, block devices the host uses and free ones,
 * a swap file, another guest's runtime files, daemons' sockets, restricted places), their
 * aliases through symlinks, directories above them, and hostile paths. Each domain is built
 * in-process; an accepted profile is compiled through the real TEMPLATE.qemu (`-D rule-exprs`) and
 * no expression of its `.files` may match a sample file that no element of the domain may have.
 *
 * The oracle (`mayHave`) is the contract of docs/threat-model.md ("Policy by provenance"), written
 * again here, independently of src/policy: which kinds of element may be granted which sample.
 */
import fs from "node:fs";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Layout } from "../../src/layout.js";
import { buildProfile, type ProfileBuild } from "../../src/pipeline.js";
import { exprMatches, guestRuleExprs } from "../helpers/apparmor.js";
import { makeTestRoot, type TestRoot } from "../lifecycle/fixture.js";
import { canMknod, GUEST_UUID, guestXml, OTHER_UUID, plantHost } from "../policy/fakehost.js";
import { announceSeed, ERROR_LINE, hostilePath, outcomeOf, seedRuns, xmlAttr, xmlText } from "./arbitraries.js";

const PCI3 = "/sys/devices/pci0000:00/0000:00:02.0/0000:03:00.0";
const PCI4 = "/sys/devices/pci0000:00/0000:00:02.0/0000:04:00.0";

/** Element kinds the generator uses, as the XML it writes for a path. */
const ELEMENTS: Record<string, (p: string) => string> = {
  "disk-file": (p) => `<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${xmlAttr(p)}'/><target dev='vdX' bus='virtio'/></disk>`,
  "disk-block": (p) => `<disk type='block' device='disk'><driver name='qemu' type='raw'/><source dev='${xmlAttr(p)}'/><target dev='vdX' bus='virtio'/></disk>`,
  "disk-dir": (p) => `<disk type='dir' device='floppy'><source dir='${xmlAttr(p)}'/><target dev='fdX' bus='fdc'/><readonly/></disk>`,
  "serial-file": (p) => `<serial type='file'><source path='${xmlAttr(p)}'/><target port='0'/></serial>`,
  "serial-dev": (p) => `<serial type='dev'><source path='${xmlAttr(p)}'/><target port='0'/></serial>`,
  "serial-pipe": (p) => `<serial type='pipe'><source path='${xmlAttr(p)}'/><target port='0'/></serial>`,
  "serial-log": (p) => `<serial type='pty'><log file='${xmlAttr(p)}'/><target port='0'/></serial>`,
  "channel-unix": (p) => `<channel type='unix'><source mode='connect' path='${xmlAttr(p)}'/><target type='virtio' name='org.example.X'/></channel>`,
  "share-9p": (p) => `<filesystem type='mount' accessmode='passthrough'><source dir='${xmlAttr(p)}'/><target dir='tX'/></filesystem>`,
  "share-9p-ro": (p) => `<filesystem type='mount' accessmode='passthrough'><source dir='${xmlAttr(p)}'/><target dir='tX'/><readonly/></filesystem>`,
  "input-evdev": (p) => `<input type='evdev'><source dev='${xmlAttr(p)}'/></input>`,
  "input-passthrough": (p) => `<input type='passthrough' bus='virtio'><source evdev='${xmlAttr(p)}'/></input>`,
  "hostdev-storage": (p) => `<hostdev mode='capabilities' type='storage'><source><block>${xmlText(p)}</block></source></hostdev>`,
  "hostdev-misc": (p) => `<hostdev mode='capabilities' type='misc'><source><char>${xmlText(p)}</char></source></hostdev>`,
  nvdimm: (p) => `<memory model='nvdimm'><source><path>${xmlText(p)}</path></source><target><size unit='KiB'>524288</size></target></memory>`,
  "tpm-passthrough": (p) => `<tpm model='tpm-tis'><backend type='passthrough'><device path='${xmlAttr(p)}'/></backend></tpm>`,
  "tpm-external": (p) => `<tpm model='tpm-crb'><backend type='external'><source type='unix' mode='connect' path='${xmlAttr(p)}'/></backend></tpm>`,
  "rng-random": (p) => `<rng model='virtio'><backend model='random'>${xmlText(p)}</backend></rng>`,
  "net-vhostuser": (p) => `<interface type='vhostuser'><source type='unix' path='${xmlAttr(p)}' mode='client'/><model type='virtio'/></interface>`,
  "net-vdpa": (p) => `<interface type='vdpa'><source dev='${xmlAttr(p)}'/></interface>`,
  "graphics-socket": (p) => `<graphics type='vnc' socket='${xmlAttr(p)}'/>`,
  "rendernode": (p) => `<graphics type='spice'><gl enable='yes' rendernode='${xmlAttr(p)}'/></graphics>`,
  "hostdev-pci-03": () => `<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x03' slot='0x00' function='0x0'/></source></hostdev>`,
  "hostdev-scsi-1": () => `<hostdev mode='subsystem' type='scsi'><source><adapter name='scsi_host0'/><address bus='0' target='0' unit='1'/></source></hostdev>`,
  "hostdev-scsi-2": () => `<hostdev mode='subsystem' type='scsi'><source><adapter name='scsi_host0'/><address bus='0' target='0' unit='2'/></source></hostdev>`,
  "hostdev-pci-04": () => `<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x04' slot='0x00' function='0x0'/></source></hostdev>`,
};
/** Firmware and boot files live in <os>, not <devices>. */
const OS_ELEMENTS: Record<string, (p: string) => string> = {
  kernel: (p) => `<kernel>${xmlText(p)}</kernel>`,
  nvram: (p) => `<nvram>${xmlText(p)}</nvram>`,
};

const BLOCK_KINDS = ["disk-file", "disk-block", "hostdev-storage", "nvdimm"];

/**
 * The oracle: the sample files of the fake host and which element kinds may be granted each.
 * `never` files no element may have; the rest name the only kinds that may.
 */
const NEVER = [
  // Host terminals.
  "/dev/pts/3", "/dev/tty1", "/dev/vcs1", "/dev/console",
  // Block devices the host uses, and a swap file.
  "/dev/sdb", "/dev/sdb1", "/dev/sdd", "/dev/sde", "/dev/sde1", "/dev/dm-0", "/dev/sdf", "/swapfile", "/dev/sg1",
  // A PCI device's files assignment never uses.
  `${PCI3}/remove`, `${PCI4}/remove`, `${PCI3}/driver_override`,
  // Another guest's runtime files, libvirt's socket.
  "/var/lib/libvirt/qemu/domain-3-other/monitor.sock", "/var/lib/libvirt/qemu/channel/target/domain-3-other/org.qemu.guest_agent.0",
  "/run/libvirt/qemu/other.xml", "/run/libvirt/qemu/other.pid", "/run/libvirt/qemu/swtpm/3-other-swtpm.sock",
  `/var/lib/libvirt/swtpm/${OTHER_UUID}/tpm2/tpm2-00.permall`, "/dev/hugepages/libvirt/qemu/3-other/qemu_back_mem.pc.ram",
  "/var/lib/libvirt/qemu/ram/3-other/pc.ram", "/run/libvirt/libvirt-sock",
  // Restricted places and daemons' sockets.
  "/var/cache/apparmor/26b63962.0/libvirt-x", "/var/lib/apparmor/profiles/x", "/var/lib/snapd/apparmor/profiles/snap.x", "/var/spool/cron/crontabs/root",
  "/var/lib/dpkg/info/bash.postinst", "/run/systemd/system/x.service", "/run/udev/rules.d/99-x.rules", "/usr/local/etc/x.conf", "/run/dbus/system_bus_socket",
  "/run/docker.sock", "/run/containerd/containerd.sock", "/etc/shadow", "/proc/1/mem", "/root/.ssh/authorized_keys", "/home/alice/.bashrc",
  // Other processes' shared memory (only a <shmem> names /dev/shm objects; none is generated).
  "/dev/shm/pulse-shm-1",
];
const ONLY: Record<string, string[]> = {
  "/dev/vfio/17": ["hostdev-pci-03"],
  "/dev/vfio/18": ["hostdev-pci-04"],
  [`${PCI3}/resource0`]: ["hostdev-pci-03"],
  [`${PCI3}/config`]: ["hostdev-pci-03"],
  [`${PCI4}/resource0`]: ["hostdev-pci-04"],
  [`${PCI4}/config`]: ["hostdev-pci-04"],
  "/dev/ttyS0": ["serial-dev", "hostdev-misc"],
  "/dev/sg2": ["hostdev-scsi-2"],
  "/dev/input/event3": ["input-evdev", "input-passthrough", "hostdev-misc"],
  "/dev/sdc": BLOCK_KINDS,
  "/dev/sdc1": BLOCK_KINDS,
  "/dev/dm-1": BLOCK_KINDS,
};

function mayHave(kinds: readonly string[], sample: string): boolean {
  if (NEVER.includes(sample)) return false;
  const only = ONLY[sample];
  return only === undefined || kinds.some((k) => only.includes(k));
}

/** Paths: the samples, their aliases, directories above them, and hostile paths. */
const samplePath = fc.constantFrom(
  ...NEVER,
  ...Object.keys(ONLY),
  "/dev/mapper/vg-root", "/dev/mapper/vg-free", "/dev/vg/free", "/sys/bus/pci/devices/0000:03:00.0/resource0", "/sys/bus/pci/devices/0000:04:00.0/config",
  "/sys/bus/pci/devices/0000:03:00.0/remove", "/var/run/docker.sock", "/dev/vfio/vfio",
);
const aboveSample = fc.constantFrom(
  "/dev", "/dev/input", "/dev/vfio", "/dev/pts", "/dev/shm", "/dev/hugepages", "/dev/hugepages/libvirt", "/run", "/run/libvirt", "/run/libvirt/qemu",
  "/var/lib/libvirt", "/var/lib/libvirt/qemu", "/var/lib/libvirt/qemu/channel", "/var/lib/libvirt/swtpm", "/var", "/var/spool", "/srv", "/srv/share",
  "/home/alice", "/sys/bus/pci/devices/0000:03:00.0", PCI3,
);
/** Paths some element kind may legitimately have: without them few domains would be accepted. */
const legitPath = fc.constantFrom(
  "/var/lib/libvirt/images/vm1.img", "/srv/share", "/srv/share/readme", "/srv/new.log", "/dev/sdc", "/dev/sdc1", "/dev/mapper/vg-free", "/dev/ttyS0",
  "/dev/input/event3", "/dev/null", "/dev/urandom", "/dev/tpm0", "/dev/vhost-vdpa-0", "/dev/dri/renderD128", "/dev/dax0.0",
  "/var/lib/libvirt/qemu/domain-7-vm1/x.sock", "/var/lib/libvirt/qemu/channel/target/domain-7-vm1/org.example.0",
  "/run/libvirt/qemu/swtpm/7-vm1-swtpm.sock", "/dev/hugepages/libvirt/qemu/7-vm1/ram", "/var/lib/libvirt/qemu/nvram/vm1_VARS.fd",
);
const pathArb = fc.oneof(
  { weight: 5, arbitrary: samplePath },
  { weight: 2, arbitrary: aboveSample },
  { weight: 1, arbitrary: hostilePath },
  { weight: 8, arbitrary: legitPath },
);

const elementArb = fc.oneof(
  { weight: 10, arbitrary: fc.tuple(fc.constantFrom(...Object.keys(ELEMENTS)), pathArb) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...Object.keys(OS_ELEMENTS)), pathArb) },
);
const domainArb = fc.array(elementArb, { minLength: 1, maxLength: 3 });

function domainOf(elements: Array<[string, string]>): { xml: string; kinds: string[] } {
  const devices: string[] = [];
  const os: string[] = [];
  elements.forEach(([kind, p], i) => {
    const device = ELEMENTS[kind];
    if (device !== undefined) devices.push(device(p).replaceAll("vdX", `vd${String.fromCharCode(98 + i)}`).replaceAll("fdX", `fd${i}`).replaceAll("tX", `t${i}`).replaceAll("org.example.X", `org.example.${i}`));
    else os.push(OS_ELEMENTS[kind]!(p));
  });
  const osBlock = os.length === 0 ? "" : `<os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type>${os.join("")}</os>`;
  return { xml: guestXml(devices.join(""), osBlock), kinds: elements.map(([k]) => k) };
}

let t: TestRoot;
beforeAll(() => {
  t = makeTestRoot("vaah-provenance-prop-");
  plantHost(t.root);
  // Files the samples name that plantHost leaves out.
  for (const f of NEVER.filter((p) => p.startsWith("/var/") || p.startsWith("/run/") || p.startsWith("/home/") || p.startsWith("/dev/shm/"))) {
    if (!t.exists(f)) {
      fs.mkdirSync(path.dirname(t.at(f)), { recursive: true });
      fs.writeFileSync(t.at(f), "");
    }
  }
  announceSeed("policy-provenance.property");
});
afterAll(() => t.remove());

describe.skipIf(!canMknod)("property: random element kinds × random paths never yield a grant outside the policy", () => {
  // 200 random domains, not 80: about 19% are accepted, so with 80 the "> 10% accepted" bound
  // below failed on ~3% of random seeds (seed 1874144391: exactly 8); with 200 it is ~3 sd away.
  for (const run of seedRuns(200, 200)) {
    it(`${run.label}: ${run.numRuns} domains`, async () => {
      const layout = new Layout(t.root);
      const accepted: Array<{ xml: string; kinds: string[]; built: ProfileBuild }> = [];
      let rejected = 0;
      for (const elements of fc.sample(domainArb, { seed: run.seed, numRuns: run.numRuns })) {
        const { xml, kinds } = domainOf(elements);
        const out = outcomeOf(() => buildProfile(xml, { layout }));
        if (!out.ok) {
          expect(out.error.toLine(), `${run.label}: ${xml}`).toMatch(ERROR_LINE);
          rejected++;
          continue;
        }
        // In-process: no rule names a sample the domain's elements may not have.
        for (const r of out.value.rules) {
          const bad = [...NEVER, ...Object.keys(ONLY)].filter((s) => (r.path === s || (r.suffix !== "" && r.suffix !== "/" && s.startsWith(`${r.path}/`))) && !mayHave(kinds, s));
          expect(bad, `${run.label}: rule ${r.path}${r.suffix} (${r.source}) of ${xml}`).toEqual([]);
        }
        accepted.push({ xml, kinds, built: out.value });
      }
      console.log(`policy-provenance.property ${run.label}: ${accepted.length} accepted, ${rejected} rejected`);
      // Both outcomes must be reached, or the property proves little.
      expect(accepted.length).toBeGreaterThan(run.numRuns / 10);
      expect(rejected).toBeGreaterThan(run.numRuns / 4);

      // Compiled by the real parser: no expression of the .files matches a sample the domain may not have.
      const baseline = await guestRuleExprs(GUEST_UUID, "");
      const samples = [...NEVER, ...Object.keys(ONLY)];
      const check = async ({ xml, kinds, built }: (typeof accepted)[number]) => {
        const exprs = await guestRuleExprs(GUEST_UUID, built.filesText);
        for (const b of baseline) {
          const at = exprs.indexOf(b);
          if (at >= 0) exprs.splice(at, 1);
        }
        for (const sample of samples) {
          if (mayHave(kinds, sample)) continue;
          const hits = exprs.filter((e) => exprMatches(e, sample));
          expect(hits, `${run.label}: ${sample} is reached by ${hits.join(" | ")} for ${xml}`).toEqual([]);
        }
      };
      for (let i = 0; i < accepted.length; i += 2) await Promise.all(accepted.slice(i, i + 2).map(check));
    }, 300_000);
  }
});
