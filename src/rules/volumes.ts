import { PathError } from "../errors.js";
import { listDirectory, readAttribute } from "../host/sysfs.js";
import { isFileNameComponent } from "../names.js";
import { firstIllegalChar } from "../xml/chars.js";
import { XmlError, type XmlNode } from "../xml/reader.js";
import { readWellFormedXml } from "../xml/well-formed.js";
import type { RuleContext } from "./context.js";

/**
 * `<disk type='volume'><source pool=P volume=V [mode=host|direct]/>` → the host path QEMU opens,
 * or undefined when the volume is reached over the network (no host file, no rule).
 *
 * Hook XML keeps the pool/volume pair (libvirt translates it only in its own memory:
 * virStorageTranslateDiskSourcePool, src/storage/storage_driver.c... in libvirt 9 the function
 * lives in src/conf/domain_conf.c as virDomainDiskTranslateSourcePool), and the hook must never
 * ask libvirt (a hook that calls back into libvirtd deadlocks it). So we read the pool definition
 * ourselves: the running pool's state `/run/libvirt/storage/<pool>.xml` (`<poolstate><pool>`, what
 * libvirt uses while the pool is active; the only copy of a transient pool) or else the
 * persistent `/etc/libvirt/storage/<pool>.xml`, and derive the path the way libvirt's storage
 * backends name volumes (src/storage/storage_backend_*.c):
 *
 * | pool type | volume name | path QEMU opens (canonical) |
 * |---|---|---|
 * | dir, fs, netfs, vstorage | file name | `<target path>/<volume>` (virStorageBackendRefreshLocal) |
 * | logical | LV name | `/dev/<source name>/<volume>` (target path forced by virStoragePoolDefParseXML) |
 * | zfs | zvol name | `/dev/zvol/<source name>/<volume>` (ditto) |
 * | disk | partition name (`sdb1`) | the partition beside the pool's `<source><device>`: `/dev/<volume>` (virStorageBackendDiskMakeDataVol; the target dir holds a stable link to it) |
 * | iscsi, scsi | `unit:B:T:L` | `/dev/sdX` of SCSI address H:B:T:L, H the pool's SCSI host (virStorageBackendSCSINewLun, virStorageBackendISCSIGetHostNumber) |
 * | mpath | `dm-N` | `/dev/dm-N`, a multipath map (virStorageBackendMpathNewVol) |
 * | rbd, sheepdog, gluster, iscsi-direct; iscsi with mode='direct' | | none: QEMU talks to the server |
 *
 * Names from the domain XML are untrusted: they must be plain file names, and a block-device
 * volume must belong to the pool's own device (a disk pool's volume is a partition of that disk,
 * an iSCSI LUN is found under that pool's session), so no volume name reaches another device.
 * Every refusal names the disk, the pool and what to do.
 */

/** Pool definitions libvirt writes are a few hundred bytes; anything this large is not one. */
const MAX_POOL_XML_BYTES = 64 * 1024;

const DIR_LIKE_POOLS = new Set(["dir", "fs", "netfs", "vstorage"]);
/** Pools whose volumes QEMU reaches over the network: no host file (libvirt 9 refuses rbd, sheepdog and gluster volume disks itself). */
const NETWORK_POOLS = new Set(["rbd", "sheepdog", "gluster", "iscsi-direct"]);

export interface VolumeSource {
  pool: string;
  volume: string;
  mode?: string;
}

export function resolveVolume(ctx: RuleContext, element: string, source: VolumeSource): string | undefined {
  const { pool, volume } = source;
  const fail = (why: string) => new PathError(element, `volume ${volume} in pool ${pool}: ${why}`);

  // Both names are guest input that become path components: neither may climb out or add levels.
  if (!isFileNameComponent(pool)) throw fail("pool name is not a plain file name");
  if (!isFileNameComponent(volume)) throw fail("volume name is not a plain file name");

  const def = readPool(ctx, pool, fail);
  const type = def.type;
  if (NETWORK_POOLS.has(type)) return undefined;
  if (type === "iscsi" && source.mode === "direct") return undefined;
  if (DIR_LIKE_POOLS.has(type)) {
    if (!def.targetPath?.startsWith("/")) throw fail(`the ${type} pool's definition (${def.file}) has no absolute <target><path>`);
    return `${def.targetPath.replace(/\/+$/, "")}/${volume}`;
  }
  switch (type) {
    case "logical": {
      // virStoragePoolDefParseXML: a logical pool's target path is /dev/<source name>, and the
      // source name defaults to the pool's name.
      const vg = def.sourceName ?? def.name ?? pool;
      if (!isFileNameComponent(vg)) throw fail(`volume group name ${JSON.stringify(vg)} in ${def.file} is not a plain file name`);
      return `/dev/${vg}/${volume}`;
    }
    case "zfs": {
      // /dev/zvol/<source name>/<volume>; a dataset name may have levels ("tank/vms").
      const dataset = def.sourceName ?? def.name ?? pool;
      if (!dataset.split("/").every(isFileNameComponent)) throw fail(`ZFS dataset name ${JSON.stringify(dataset)} in ${def.file} is not a dataset path`);
      return `/dev/zvol/${dataset}/${volume}`;
    }
    case "disk":
      return diskPartition(ctx, def, volume, fail);
    case "iscsi":
    case "scsi":
      return scsiLun(ctx, def, volume, fail);
    case "mpath":
      return multipathMap(ctx, volume, fail);
    default:
      throw fail(`pool type ${JSON.stringify(type)} (in ${def.file}) is not one libvirt's storage driver has; fix the pool definition`);
  }
}

// ---- disk pools ------------------------------------------------------------------------------

/**
 * A disk pool's volumes are the partitions of its `<source><device path>`; libvirt names each by
 * the base name of the partition's device node (`sdb1`, `nvme0n1p1`, `mpatha1`), which sits
 * beside the disk's node. The name must be the disk's own name plus a partition number, so a
 * guest cannot name another disk's partition through this pool. When the disk's name ends in a
 * digit the kernel puts a `p` before the number (add_partition() in the kernel's block/partitions/
 * core.c: nvme0n1p1, loop1p1, md1p1; udev's by-id links use `-part<N>`): `nvme0n10`, `loop10`,
 * `md12` are other devices, not partitions of nvme0n1, loop1, md1, and are refused.
 */
function diskPartition(ctx: RuleContext, def: PoolDefinition, volume: string, fail: Fail): string {
  const device = def.devicePaths[0];
  if (device === undefined || !device.startsWith("/")) throw fail(`the disk pool's definition (${def.file}) has no absolute <source><device path>`);
  // The name as the pool names the disk first (/dev/sdb → sdb1, /dev/disk/by-id/X → X-part1),
  // then its canonical node (libvirt_parthelper may print that: by-id/X → sdb1).
  for (const disk of [device, canonicalOrUndefined(ctx, device)]) {
    if (disk === undefined) continue;
    const slash = disk.lastIndexOf("/");
    const base = disk.slice(slash + 1);
    const suffix = /[0-9]$/.test(base) ? /^(?:p|-part)[0-9]+$/ : /^(?:p|-part)?[0-9]+$/;
    if (volume.length > base.length && volume.startsWith(base) && suffix.test(volume.slice(base.length))) {
      return `${disk.slice(0, slash)}/${volume}`;
    }
  }
  const name = device.slice(device.lastIndexOf("/") + 1);
  throw fail(`not a partition of the pool's disk ${device} (a disk pool's volumes are named after it, e.g. ${name}${/[0-9]$/.test(name) ? "p" : ""}1)`);
}

// ---- iscsi and scsi pools ---------------------------------------------------------------------

/**
 * `unit:B:T:L` → the block device at SCSI address H:B:T:L, H being the pool's SCSI host: the host
 * of the iSCSI session to the pool's target IQN (iscsi), or the pool's `<adapter>` (scsi).
 * libvirt reads the same sysfs directories (virStorageBackendSCSIFindLUs, getBlockDevice).
 */
function scsiLun(ctx: RuleContext, def: PoolDefinition, volume: string, fail: Fail): string {
  const unit = /^unit:([0-9]+):([0-9]+):([0-9]+)$/.exec(volume);
  if (unit === null) throw fail(`${def.type} pool volumes are named unit:<bus>:<target>:<lun> (see virsh vol-list ${def.name ?? "<pool>"})`);
  const hosts = def.type === "iscsi" ? iscsiHosts(ctx, def, fail) : [scsiHost(ctx, def, fail)];
  const { sysfsScsiDevices } = ctx.layout;
  const found = new Set<string>();
  for (const host of hosts) {
    const address = `${host}:${Number(unit[1])}:${Number(unit[2])}:${Number(unit[3])}`;
    for (const name of listDirectory(ctx.fs, `${sysfsScsiDevices}/${address}/block`) ?? []) {
      if (isFileNameComponent(name) && /^[a-z][a-z0-9]*$/.test(name)) found.add(`/dev/${name}`);
    }
  }
  if (found.size === 0) {
    throw fail(`no block device for that LUN on SCSI host ${hosts.map((h) => `host${h}`).join(", ")} (${sysfsScsiDevices}/<host>:${unit.slice(1).join(":")}/block); is the pool started and the LUN there?`);
  }
  if (found.size > 1) throw fail(`more than one block device for that LUN (${[...found].join(", ")})`);
  return [...found][0]!;
}

/** The SCSI hosts of the iSCSI sessions logged in to the pool's target (by its IQN). */
function iscsiHosts(ctx: RuleContext, def: PoolDefinition, fail: Fail): number[] {
  const iqn = def.devicePaths[0];
  if (iqn === undefined) throw fail(`the iscsi pool's definition (${def.file}) has no <source><device path> (the target IQN)`);
  const sessions = `${ctx.layout.sysfsDir}/class/iscsi_session`;
  const hosts: number[] = [];
  for (const session of listDirectory(ctx.fs, sessions) ?? []) {
    if (!/^session[0-9]+$/.test(session)) continue;
    if (readAttribute(ctx.fs, `${sessions}/${session}/targetname`) !== iqn) continue;
    // virStorageBackendISCSIGetHostNumber: the session's device dir holds "targetH:B:T".
    for (const entry of listDirectory(ctx.fs, `${sessions}/${session}/device`) ?? []) {
      const m = /^target([0-9]+):[0-9]+:[0-9]+$/.exec(entry);
      if (m) hosts.push(Number(m[1]));
    }
  }
  if (hosts.length === 0) throw fail(`no iSCSI session to ${iqn} (${sessions}); start the pool (virsh pool-start ${def.name ?? "<pool>"})`);
  return [...new Set(hosts)];
}

/** The SCSI host of a scsi pool's `<adapter>`: `name='hostN'`, or an `fc_host` vHBA by its WWNN/WWPN. */
function scsiHost(ctx: RuleContext, def: PoolDefinition, fail: Fail): number {
  const adapter = def.adapter;
  if (adapter === undefined) throw fail(`the scsi pool's definition (${def.file}) has no <source><adapter>`);
  const type = adapter.type ?? (adapter.wwpn !== undefined ? "fc_host" : "scsi_host");
  if (type === "scsi_host" && adapter.name !== undefined) {
    const m = /^(?:scsi_)?host([0-9]+)$/.exec(adapter.name);
    if (m === null) throw fail(`adapter name ${JSON.stringify(adapter.name)} in ${def.file} is not hostN`);
    return Number(m[1]);
  }
  if (type === "fc_host" && adapter.wwnn !== undefined && adapter.wwpn !== undefined) {
    const dir = `${ctx.layout.sysfsDir}/class/fc_host`;
    const want = (w: string) => `0x${w.toLowerCase().replace(/^0x/, "")}`;
    for (const host of listDirectory(ctx.fs, dir) ?? []) {
      const m = /^host([0-9]+)$/.exec(host);
      if (m === null) continue;
      if (readAttribute(ctx.fs, `${dir}/${host}/port_name`)?.toLowerCase() === want(adapter.wwpn) && readAttribute(ctx.fs, `${dir}/${host}/node_name`)?.toLowerCase() === want(adapter.wwnn)) {
        return Number(m[1]);
      }
    }
    throw fail(`no fc_host with wwnn ${adapter.wwnn} and wwpn ${adapter.wwpn} (${dir}); start the pool (it creates the vHBA)`);
  }
  throw fail(`the scsi pool's <adapter> in ${def.file} is neither name='hostN' nor an fc_host with wwnn and wwpn; name the SCSI host with <adapter name='hostN'/>`);
}

// ---- mpath pools ------------------------------------------------------------------------------

/** `dm-N` → `/dev/dm-N` (what `/dev/mapper/<map>` links to), only a multipath map's node. */
function multipathMap(ctx: RuleContext, volume: string, fail: Fail): string {
  if (!/^dm-[0-9]+$/.test(volume)) throw fail("mpath pool volumes are named dm-<minor>");
  const uuid = readAttribute(ctx.fs, `${ctx.layout.sysfsDir}/block/${volume}/dm/uuid`);
  if (uuid === undefined) throw fail(`no device-mapper device ${volume} (${ctx.layout.sysfsDir}/block/${volume}/dm/uuid)`);
  // multipathd names its maps' uuids "mpath-<wwid>" (libvirt asks device-mapper for the target type).
  if (!uuid.startsWith("mpath-")) throw fail(`${volume} is not a multipath map (its device-mapper uuid is ${JSON.stringify(uuid.slice(0, 64))})`);
  return `/dev/${volume}`;
}

// ---- pool definitions ---------------------------------------------------------------------------

type Fail = (why: string) => PathError;

interface PoolDefinition {
  /** The file the definition was read from (host path), for messages. */
  file: string;
  type: string;
  name?: string;
  targetPath?: string;
  sourceName?: string;
  /** `<source><device path>` values: a disk's node (disk), the target IQN (iscsi). */
  devicePaths: string[];
  adapter?: { type?: string; name?: string; wwnn?: string; wwpn?: string };
}

/**
 * The running pool's state if libvirt has one (`/run/libvirt/storage/<pool>.xml`, beside the qemu
 * driver's run dir), else its persistent definition. A pool in neither is an error naming both.
 */
function readPool(ctx: RuleContext, pool: string, fail: Fail): PoolDefinition {
  const stateDir = `${ctx.layout.libvirtRunDir.replace(/\/[^/]+$/, "")}/storage`;
  const state = `${stateDir}/${pool}.xml`;
  if (ctx.fs.stat(state)?.isFile() === true) return readPoolDefinition(ctx, state, fail);
  const persistent = `${ctx.layout.libvirtStorageDir}/${pool}.xml`;
  if (ctx.fs.stat(persistent) === undefined) {
    throw fail(`pool definition not found in ${ctx.layout.libvirtStorageDir} or ${stateDir}; define the pool (virsh pool-define) or use a <disk type='file'|'block'> with the volume's path`);
  }
  return readPoolDefinition(ctx, persistent, fail);
}

function readPoolDefinition(ctx: RuleContext, hostPath: string, fail: Fail): PoolDefinition {
  const st = ctx.fs.stat(hostPath);
  if (!st) throw fail(`pool definition ${hostPath} not found`);
  if (!st.isFile()) throw fail(`pool definition ${hostPath} is not a regular file`);
  if (st.size > MAX_POOL_XML_BYTES) throw fail(`pool definition ${hostPath} is larger than ${MAX_POOL_XML_BYTES} bytes`);
  const text = ctx.fs.readHead(hostPath, MAX_POOL_XML_BYTES).toString("utf8");
  // libvirt never writes a DTD; refusing one keeps entity expansion out entirely.
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) throw fail(`pool definition ${hostPath} carries a DTD`);
  const illegal = firstIllegalChar(text);
  if (illegal) throw fail(`pool definition ${hostPath} is not well-formed XML: character ${illegal.codePoint} is not allowed in XML`);

  try {
    let root = readWellFormedXml(text).roots[0];
    // The state file wraps the live definition: <poolstate><pool ...>...</pool></poolstate>.
    if (root?.name === "poolstate") root = root.childrenNamed("pool")[0];
    if (root?.name !== "pool") throw fail(`pool definition ${hostPath} has no <pool> element`);
    const source = root.childrenNamed("source")[0];
    const adapter = source?.childrenNamed("adapter")[0];
    return {
      file: hostPath,
      type: root.attribute("type")?.trim() ?? "",
      name: root.childrenNamed("name")[0]?.text()?.trim(),
      targetPath: textAt(root, "target", "path"),
      sourceName: textAt(root, "source", "name"),
      devicePaths: (source?.childrenNamed("device") ?? []).map((d) => d.attribute("path")?.trim()).filter((p): p is string => p !== undefined && p !== ""),
      adapter: adapter && {
        type: adapter.attribute("type")?.trim(),
        name: adapter.attribute("name")?.trim(),
        wwnn: adapter.attribute("wwnn")?.trim(),
        wwpn: adapter.attribute("wwpn")?.trim(),
      },
    };
  } catch (err) {
    if (err instanceof XmlError) throw fail(`pool definition ${hostPath} is not well-formed XML: ${err.reason}`);
    throw err;
  }
}

/** The trimmed text of `<outer><inner>` (the first of each when repeated), or undefined. */
function textAt(root: XmlNode, outer: string, inner: string): string | undefined {
  return root.childrenNamed(outer)[0]?.childrenNamed(inner)[0]?.text()?.trim();
}

function canonicalOrUndefined(ctx: RuleContext, p: string): string | undefined {
  try {
    return ctx.images.canonical(p);
  } catch {
    return undefined;
  }
}
