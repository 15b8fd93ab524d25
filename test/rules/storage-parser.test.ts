/**
 * Volumes of every pool type, a network disk with a local backing layer and a vDPA disk, from
 * domain XML through the whole pipeline (policy included) to the `.files`, compiled by the real
 * apparmor_parser: each rule is the exact literal path, nothing wider.
 */
import { afterEach, describe, expect, it } from "vitest";
import { Layout } from "../../src/layout.js";
import { buildProfile } from "../../src/pipeline.js";
import { compileGuest, exprLiteral, guestRuleExprs } from "../helpers/apparmor.js";
import { tempRoot, TEST_UUID } from "./fixtures.js";
import { poolRoot } from "./pools.js";

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

const vol = (dev: string, pool: string, volume: string, extra = "") =>
  `<disk type='volume' device='disk'><driver name='qemu' type='raw'/><source pool='${pool}' volume='${volume}'${extra}/><target dev='${dev}' bus='virtio'/></disk>`;

/** Every disk below, as in the domain XML helper "corpus" may reuse. */
export const STORAGE_DISKS = [
  vol("vda", "default", "vm1.qcow2"),
  vol("vdb", "nfs", "b.raw"),
  vol("vdc", "lvm", "vm1-root"),
  vol("vdd", "zpool", "vm1"),
  vol("vde", "sdc", "sdc1"),
  vol("vdf", "san", "unit:0:0:1", " mode='host'"),
  vol("vdg", "hba", "unit:0:1:0"),
  vol("vdh", "vhba", "unit:0:0:0"),
  vol("vdi", "mp", "dm-3"),
  vol("vdj", "ceph", "vm1-disk"),
  vol("vdk", "gv", "vm1.qcow2"),
  vol("vdl", "direct", "unit:0:0:1"),
  vol("vdm", "san", "unit:0:0:1", " mode='direct'"),
  `<disk type='network' device='disk'><driver name='qemu' type='qcow2'/><source protocol='nbd' name='overlay'><host name='192.0.2.20' port='10809'/></source>` +
    `<backingStore type='file'><format type='raw'/><source file='/var/lib/libvirt/images/golden.raw'/><backingStore/></backingStore><target dev='vdn' bus='virtio'/></disk>`,
  `<disk type='vhostvdpa' device='disk'><driver name='qemu' type='raw' cache='none' io='threads'/><source dev='/dev/vhost-vdpa-0'/><target dev='vdo' bus='virtio'/></disk>`,
];

const domainXml = (disks: string[]) =>
  `<domain type='kvm' id='7'><name>vm1</name><uuid>${TEST_UUID}</uuid><memory>1048576</memory><os><type arch='x86_64' machine='q35'>hvm</type></os><devices>${disks.join("")}</devices></domain>`;

describe("storage rules through the pipeline and the real parser", () => {
  it("every pool type, a local layer under a network disk and a vDPA disk: exact rules", async () => {
    const t = tempRoot();
    cleanups.push(t.cleanup);
    poolRoot(t.root);
    const built = buildProfile(domainXml(STORAGE_DISKS), { layout: new Layout(t.root) });
    const disks = built.rules.filter((r) => r.source.startsWith("disk "));
    expect(disks.map((r) => `${r.path} ${r.perms} ${r.suffix} # ${r.source}`)).toEqual([
      "/var/lib/libvirt/images/vm1.qcow2 rwk  # disk vda",
      "/mnt/nfs/b.raw rwk  # disk vdb",
      "/dev/dm-4 rwk  # disk vdc",
      "/dev/zvol/tank/vms/vm1 rwk  # disk vdd",
      "/dev/sdc1 rwk  # disk vde",
      "/dev/sdf rwk  # disk vdf",
      "/dev/sdg rwk  # disk vdg",
      "/dev/sdh rwk  # disk vdh",
      "/dev/dm-3 rwk  # disk vdi",
      "/var/lib/libvirt/images/golden.raw rk  # disk vdn backing 1",
      "/dev/vhost-vdpa-0 rw  # disk vdo",
    ]);
    expect(await compileGuest(TEST_UUID, built.filesText)).toEqual({ ok: true, stderr: "" });
    const literals = (await guestRuleExprs(TEST_UUID, built.filesText)).map(exprLiteral);
    for (const r of disks) expect(literals).toContain(r.path);
  });

  it("negative control: a vhostvdpa disk on a block device is refused by the hook, naming the disk", () => {
    const t = tempRoot();
    cleanups.push(t.cleanup);
    expect(() =>
      buildProfile(
        domainXml([`<disk type='vhostvdpa' device='disk'><driver name='qemu' type='raw'/><source dev='/dev/sda'/><target dev='vdo' bus='virtio'/></disk>`]),
        { layout: new Layout(t.root) },
      ),
    ).toThrow("/dev/sda: disk vdo: a vhostvdpa disk's source must be a vhost-vdpa device (/dev/vhost-vdpa-N)");
  });
});
