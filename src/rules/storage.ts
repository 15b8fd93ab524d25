import { PathError } from "../errors.js";
import type { BackingLayer, Disk } from "../domain/model.js";
import { discoverChain, type BeforeTouch, type ChainEntry } from "../images/index.js";
import { checkRule } from "../policy/index.js";
import { absolute } from "./absolute.js";
import { ruleOf, type RuleContext, type RuleFamily } from "./context.js";
import type { OriginRule as Rule } from "./ir.js";
import { resolveVolume } from "./volumes.js";

const rule = ruleOf("disk");

/**
 * Disks: the image QEMU writes, everything it reads beneath it, and the sockets a disk talks to.
 *
 * The top image is read-write-lock (`rwk`; `rk` when the disk is read-only; `shareable` changes
 * nothing, QEMU still writes it). Every deeper backing layer is `rk` with no `deny w`, so
 * block-commit and backups keep working (DESIGN §2). Files that belong to the top image itself
 * (a qcow2 external data-file, vmdk extents) carry the top's permissions.
 */
export const diskRules: RuleFamily = (ctx) =>
  ctx.domain.devices.disks.flatMap((disk, index) => rulesForDisk(ctx, disk, `disk ${disk.target ?? index}`));

function rulesForDisk(ctx: RuleContext, disk: Disk, element: string): Rule[] {
  const out: Rule[] = [];
  const topPerms = disk.readonly ? "rk" : "rwk";

  switch (disk.type) {
    case "file":
    case "block":
      if (disk.path !== undefined) out.push(...imageRules(ctx, disk, absolute(disk.path), element, topPerms));
      break;
    case "volume":
      if (disk.volume) {
        const path = resolveVolume(ctx, element, disk.volume.pool, disk.volume.volume);
        out.push(...imageRules(ctx, disk, path, element, topPerms));
      }
      break;
    case "dir":
      // A directory exported as a virtual FAT disk: QEMU reads (and may write) the whole tree.
      if (disk.path !== undefined) out.push(rule(absolute(disk.path), topPerms, element, "{,/**}"));
      break;
    case "vhostuser":
      // QEMU only connects to the external vhost-user-blk backend's socket.
      if (disk.path !== undefined) out.push(rule(absolute(disk.path), "rw", element));
      break;
    // network: QEMU talks to a server, no host file. nvme: a host device (the hostdev family).
    default:
      break;
  }

  // Persistent reservations: QEMU connects to qemu-pr-helper's socket whatever the disk type.
  if (disk.reservationsSocket !== undefined) {
    out.push(rule(absolute(disk.reservationsSocket), "rw", `${element} reservations`));
  }
  return out;
}

/** A local top image (file or block device) plus its data file and backing chain. */
function imageRules(ctx: RuleContext, disk: Disk, top: string, element: string, topPerms: string): Rule[] {
  const out: Rule[] = [rule(top, topPerms, element)];

  if (disk.dataStore) out.push(...layerRules([disk.dataStore], ctx, element, () => [topPerms, `${element} data-file`]));

  if (disk.backingStore !== undefined) {
    // libvirt already walked the chain (start XML): trust its layers, but the top's own files are
    // not part of <backingStore>, so read them from the top's header.
    out.push(...topOwnFiles(ctx, disk, top, element).map((e) => chainRule(e, element, topPerms)));
    out.push(...layerRules(disk.backingStore, ctx, element, (n) => ["rk", `${element} backing ${n}`]));
  } else {
    out.push(...headerChain(ctx, disk, top, element).map((e) => chainRule(e, element, topPerms)));
  }
  return out;
}

/**
 * Rules for XML-described layers, outermost first, numbered from 1. A network layer ends the
 * chain: what lies beneath it is named relative to that server, not to this host.
 */
function layerRules(
  layers: BackingLayer[],
  ctx: RuleContext,
  element: string,
  permsAndSource: (n: number) => [string, string],
): Rule[] {
  if (layers.length > ctx.maxBackingDepth) {
    throw new PathError(element, `backing chain is deeper than ${ctx.maxBackingDepth} layers`);
  }
  const out: Rule[] = [];
  for (const [i, layer] of layers.entries()) {
    if (layer.type === "network") break;
    if (layer.path === undefined) continue;
    const [perms, source] = permsAndSource(i + 1);
    out.push(rule(absolute(layer.path), perms, source));
  }
  return out;
}

function chainRule(entry: Omit<ChainEntry, "format">, element: string, topPerms: string): Rule {
  const owner = entry.depth === 0 ? element : `${element} backing ${entry.depth}`;
  const source = entry.kind === "backing" ? owner : `${owner} ${entry.kind}`;
  return rule(entry.path, entry.depth === 0 ? topPerms : "rk", source);
}

/**
 * The policy check, run before the chain walk stats or reads a file (as read-only access: the
 * final rule gets its real permissions checked again by the policy stage). Without it a hostile
 * XML or image header naming `/root/secret` as a qcow2 layer would learn the file's type and size
 * from the "corrupt qcow2 header" error, since the hook reads as root.
 */
function policyBeforeRead(ctx: RuleContext, element: string): BeforeTouch {
  return (entry) => {
    checkRule(ctx.fs, { ...chainRule(entry, element, "r"), perms: "r" });
  };
}

/**
 * Whether QEMU will interpret the top image's header at all. libvirt's qemu driver turns a missing
 * `<driver type>` into raw, and QEMU never follows anything from a raw image; reading its header
 * anyway would let a guest that writes a fake qcow2 header into its own disk claim host files.
 * (discoverChain refuses raw tops too; checking here as well keeps that rule visible where disks
 * are decided.) A top that does not exist (an optional cdrom that is gone) has no header: QEMU
 * will not open it either, so it gets its own rule and nothing else instead of an error.
 */
function hasHeaderToRead(ctx: RuleContext, disk: Disk, top: string): boolean {
  if (disk.format === undefined || disk.format === "raw") return false;
  return ctx.fs.stat(top) !== undefined;
}

/** The whole chain from image headers (prepare XML carries no `<backingStore>`). */
function headerChain(ctx: RuleContext, disk: Disk, top: string, element: string): ChainEntry[] {
  if (!hasHeaderToRead(ctx, disk, top)) return [];
  return discoverChain(ctx.fs, top, disk.format, ctx.maxBackingDepth, policyBeforeRead(ctx, element));
}

/**
 * Files that belong to the top image itself (depth 0: qcow2 data-file, vmdk extents), when the
 * backing layers come from the XML. discoverChain with maxDepth 0 is documented as the "top only"
 * walk: it reads just the top's header and never opens a backing layer, so a chain libvirt has
 * already described is not walked (or second-guessed) again.
 */
function topOwnFiles(ctx: RuleContext, disk: Disk, top: string, element: string): ChainEntry[] {
  if (!hasHeaderToRead(ctx, disk, top)) return [];
  return discoverChain(ctx.fs, top, disk.format, 0, policyBeforeRead(ctx, element)).filter((e) => e.depth === 0);
}
